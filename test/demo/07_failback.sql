-- asr demo, step 7: the primary region is back.  Fail back (the same
-- failover, now from the other region), commit -- the trigger reprotects.
\pset footer off
SELECT asr_failover('app-vm-01') AS job \gset
SELECT asr_wait(:job, '5 min') AS failback_state;
SELECT asr_commit('app-vm-01') AS job \gset
SELECT asr_wait(:job, '5 min') AS commit_state;
SELECT job_id AS reprotect_job FROM asr_jobs j JOIN asr_items i USING (item_id)
 WHERE i.name = 'app-vm-01' AND action = 'reprotect' ORDER BY job_id DESC LIMIT 1 \gset
SELECT asr_wait(:reprotect_job, '5 min') AS reprotect_state;

-- the whole story of app-vm-01, and where every VM stands now
SELECT j.job_id, j.action, j.state, j.progress, j.requested_point,
       j.submitted_at::time(0) AS submitted, j.finished_at::time(0) AS finished
  FROM asr_jobs j JOIN asr_items i USING (item_id)
 WHERE i.name = 'app-vm-01' ORDER BY j.job_id;
SELECT vault, name, running_in, protection_state, replication_health, allowed_actions, unfinished_job
  FROM asr_item_status ORDER BY vault, name;
SELECT pid IS NOT NULL AS worker_running, requests_in_flight, last_error, throttled_until
  FROM asr_worker_status;
