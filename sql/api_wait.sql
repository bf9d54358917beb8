-- asr_wait returns the final state with NOTICEs of progress, refuses what
-- could never end, and times out with a clear error.  (Waking up on another
-- session's commit is in the isolation spec.)  asr_sync times out without
-- a worker that serves it.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all

SELECT asr_failover('vm-protected') AS j \gset
-- In the transaction that created the job: the worker cannot see it yet.
BEGIN;
SELECT asr_commit('vm-failed-over') AS c \gset
SELECT asr_wait(:c, '1 s');
ROLLBACK;

SELECT asr_job_transition(:j, 'submitting');
SELECT asr_job_transition(:j, 'running', 'accepted by Azure', 25,
  '[{"name": "FailoverPrerequisitesCheck", "friendlyName": "Prerequisites check for failover", "state": "Succeeded"},
    {"name": "FailoverVirtualMachine", "friendlyName": "Start failover", "state": "InProgress"}]',
  '6b9c6e46-2a3d-4a1e-9f77-6b3c0c5d7e10', 'InProgress');
SELECT azure_job, azure_state, progress, submitted_at IS NOT NULL AS submitted FROM asr_jobs WHERE job_id = :j;
-- Timeout: an error that says the job goes on.
SELECT asr_wait(:j, '50 ms');
-- REPEATABLE READ would never see the job end.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT asr_wait(:j, '1 s');
ROLLBACK;
SELECT asr_job_transition(:j, 'succeeded', 'failover done');
SELECT progress, finished_at IS NOT NULL AS finished FROM asr_jobs WHERE job_id = :j;
-- A finished job: its final state at once.
SELECT asr_wait(:j);
SELECT asr_wait(:j, '0 s');

-- asr_sync: a refresh not done within the timeout is an error naming it
-- (whether a worker runs or not, none finishes a refresh in no time).
\set VERBOSITY terse
SELECT asr_sync('east', '0 s');
SELECT asr_sync(NULL, '0 s');
\set VERBOSITY default
-- A vault added in the same transaction is not visible to the worker.
BEGIN;
SELECT asr_add_vault('north', 'asr_fixture_azure', '2f4b3c1d-9e8f-4a6b-8c7d-1e2f3a4b5c6d', 'dr-north', 'drvault-north') > 0 AS added;
SELECT asr_sync('north', '0 s');
ROLLBACK;
DROP EXTENSION asr CASCADE;
-- Without any vault there is nothing to wait for.
CREATE EXTENSION asr;
SELECT asr_sync();
DROP EXTENSION asr;
