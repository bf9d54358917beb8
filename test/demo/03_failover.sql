-- asr demo, step 3: a regional outage.  Fail app-vm-01 over to the latest
-- processed recovery point.  The job is recorded in our transaction and
-- sent to Azure when we commit; asr_wait follows its progress.
\pset footer off
BEGIN;
SELECT asr_failover('app-vm-01', 'latest_processed') AS job \gset
SELECT job_id, action, state, requested_point, requested_by FROM asr_jobs WHERE job_id = :job;
COMMIT;
SELECT asr_wait(:job, '5 min') AS final_state;
SELECT job_id, state, progress, azure_state, error_code,
       right(used_recovery_point, 36) AS used_point
  FROM asr_jobs WHERE job_id = :job;
SELECT at::time(0), state, detail FROM asr_job_events WHERE job_id = :job ORDER BY event_id;
SELECT name, protection_state, active_location, allowed_operations
  FROM asr_items WHERE name = 'app-vm-01';
