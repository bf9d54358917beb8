-- Every setting of DESIGN.md §3 exists with its default, is superuser-only,
-- and the asr prefix is reserved.
SELECT name, setting, unit, context, boot_val
  FROM pg_settings WHERE name LIKE 'asr.%' ORDER BY name;
SHOW asr.job_timeout;

-- Typos in the reserved prefix are refused rather than silently accepted.
SET asr.polling_interval = '5s';

-- Reload-level settings cannot be changed in a session, even by a superuser.
SET asr.poll_interval = '5s';

-- A role without privileges sees none of them and cannot change them.
CREATE ROLE asr_settings_nobody;
SET ROLE asr_settings_nobody;
SELECT count(*) AS visible_asr_settings FROM pg_settings WHERE name LIKE 'asr.%';
SHOW asr.ca_file;
SET asr.poll_interval = '5s';
ALTER SYSTEM SET asr.poll_interval = '5s';
RESET ROLE;
DROP ROLE asr_settings_nobody;
