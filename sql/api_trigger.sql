-- asr_reprotect_after_commit(): when a commit job turns succeeded, a
-- reprotect job is queued with no further SQL; nothing for other actions
-- or states.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all

-- The README's example: the cache storage account as the trigger argument.
CREATE TRIGGER asr_auto_reprotect
    AFTER UPDATE OF state ON asr_jobs
    FOR EACH ROW
    EXECUTE FUNCTION asr_reprotect_after_commit(
        '{"cache_storage_account": {"ukwest": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Storage/storageAccounts/ukwestcache"}}');

-- The worker's path, simulated: the commit job runs; Azure's item document
-- then says committed (the worker re-reads the item before it marks the
-- job finished), and the job succeeds.
SELECT asr_commit('vm-failed-over') AS c \gset
SELECT asr_job_transition(:c, 'submitting');
SELECT asr_job_transition(:c, 'running', NULL, 50);
SELECT count(*) AS jobs_while_running FROM asr_jobs;
UPDATE asr_items SET protection_state = 'UnplannedFailoverCommitted',
       protection_state_description = 'Failover committed',
       allowed_operations = '{CompleteMigration,DisableProtection,SwitchProtection}'
 WHERE name = 'vm-failed-over';
SELECT asr_job_transition(:c, 'succeeded', 'commit done');
SELECT j.action, j.state, i.name, j.options, j.requested_by,
       j.request->>'path' LIKE '%/asr-a2a-default-uksouth-container/switchprotection' AS switch_protection
  FROM asr_jobs j JOIN asr_items i USING (item_id) WHERE j.job_id > :c;
SELECT state, detail FROM asr_job_events WHERE job_id > :c;

-- Other actions succeeding, and commits failing, queue nothing.
SELECT asr_failover('vm-protected') AS f \gset
SELECT asr_job_transition(:f, 'submitting');
SELECT asr_job_transition(:f, 'succeeded');
UPDATE asr_items SET allowed_operations = '{Commit}', active_location = 'Recovery',
       protection_state = 'UnplannedFailoverCommitPendingStatesBegin'
 WHERE name = 'vm-dup' AND vault_id = (SELECT vault_id FROM asr_vaults WHERE name = 'east');
SELECT asr_commit('east/vm-dup') AS c2 \gset
SELECT asr_job_transition(:c2, 'failed', NULL, NULL, NULL, NULL, NULL, '150261', 'The commit failed.');
-- Progress of a running commit is not its success; a cancelled commit neither.
SELECT asr_commit('east/vm-dup') AS c3 \gset
SELECT asr_job_transition(:c3, 'submitting');
SELECT asr_job_transition(:c3, 'running', NULL, 10);
SELECT asr_job_transition(:c3, 'running', NULL, 60);
SELECT asr_cancel(:c3);
SELECT asr_job_transition(:c3, 'cancelled', 'cancelled in Azure');
SELECT action, state FROM asr_jobs WHERE job_id > :f ORDER BY job_id;

-- A reprotect Azure does not allow (the item was not re-read as committed):
-- the commit stands, a WARNING and an event on the commit job say why.
SELECT asr_commit('east/vm-dup') AS c4 \gset
SELECT asr_job_transition(:c4, 'submitting');
SELECT asr_job_transition(:c4, 'succeeded');
SELECT state, detail FROM asr_job_events WHERE job_id = :c4 ORDER BY event_id;
SELECT count(*) AS no_reprotect FROM asr_jobs WHERE action = 'reprotect' AND item_id =
  (SELECT item_id FROM asr_items WHERE name = 'vm-dup' AND vault_id = (SELECT vault_id FROM asr_vaults WHERE name = 'east'));

-- Misuse is refused.
\set SHOW_CONTEXT never
CREATE TRIGGER asr_wrong BEFORE INSERT ON asr_jobs
    FOR EACH ROW EXECUTE FUNCTION asr_reprotect_after_commit();
SELECT asr_failover('west/vm-dup');
DROP TRIGGER asr_wrong ON asr_jobs;
DROP EXTENSION asr CASCADE;
