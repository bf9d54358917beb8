-- asr_worker_status exists, reads shared memory, and is granted to nobody.
CREATE EXTENSION IF NOT EXISTS asr;
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid = 'asr_worker_status'::regclass AND attnum > 0
 ORDER BY attnum;
SELECT requests_in_flight >= 0 AS readable, throttled_until IS NULL AS not_throttled
  FROM asr_worker_status;

CREATE ROLE asr_status_nobody;
SET ROLE asr_status_nobody;
SELECT * FROM asr_worker_status;
SELECT * FROM asr_worker_status_internal();
RESET ROLE;
DROP ROLE asr_status_nobody;
