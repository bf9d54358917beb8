-- asr demo, step 5: commit, and let a trigger start the reprotect as soon
-- as the commit succeeds -- no further SQL.
\pset footer off
CREATE TRIGGER reprotect_after_commit
    AFTER UPDATE OF state ON asr_jobs
    FOR EACH ROW EXECUTE FUNCTION asr_reprotect_after_commit();

SELECT asr_commit('app-vm-01') AS job \gset
SELECT asr_wait(:job, '5 min') AS commit_state;
SELECT count(*) AS recovery_points_left FROM asr_recovery_points p
  JOIN asr_items i USING (item_id) WHERE i.name = 'app-vm-01';

SELECT job_id AS reprotect_job FROM asr_jobs j JOIN asr_items i USING (item_id)
 WHERE i.name = 'app-vm-01' AND action = 'reprotect' ORDER BY job_id DESC LIMIT 1 \gset
SELECT asr_wait(:reprotect_job, '5 min') AS reprotect_state;
SELECT name, protection_state, primary_region, recovery_region, arm_id
  FROM asr_items WHERE name = 'app-vm-01';
