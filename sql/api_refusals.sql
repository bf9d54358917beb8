-- Bad inputs and refused actions: each raises its error (SQLSTATE, message,
-- detail, hint) and changes nothing.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all
SET timezone = 'UTC';

-- Run a statement, roll back whatever it did, and say how it ended.
CREATE FUNCTION pg_temp.try(sql text)
RETURNS TABLE (result text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE sql;
        RAISE EXCEPTION 'asr-test: call succeeded';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS result = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
        IF message = 'asr-test: call succeeded' THEN
            result := 'allowed';
            message := NULL;
        END IF;
    END;
    RETURN NEXT;
END $$;

CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
  SELECT md5(concat_ws('|',
    (SELECT string_agg(j::text, ',' ORDER BY job_id) FROM asr_jobs j),
    (SELECT string_agg(e::text, ',' ORDER BY event_id) FROM asr_job_events e),
    (SELECT string_agg(i::text, ',' ORDER BY item_id) FROM asr_items i),
    (SELECT string_agg(v::text, ',' ORDER BY vault_id) FROM asr_vaults v),
    (SELECT string_agg(p::text, ',' ORDER BY item_id, name) FROM asr_recovery_points p))) $$;
SELECT pg_temp.state() AS before \gset

CREATE TEMP TABLE bad_inputs (n serial, label text, sql text);
INSERT INTO bad_inputs (label, sql) VALUES
  ('NULL item (failover)', $$SELECT asr_failover(NULL)$$),
  ('NULL item (test failover)', $$SELECT asr_test_failover(NULL)$$),
  ('NULL item (cleanup)', $$SELECT asr_test_failover_cleanup(NULL)$$),
  ('NULL item (change point)', $$SELECT asr_change_recovery_point(NULL, 'latest_processed')$$),
  ('NULL item (commit)', $$SELECT asr_commit(NULL)$$),
  ('NULL item (reprotect)', $$SELECT asr_reprotect(NULL)$$),
  ('NULL item (preview)', $$SELECT asr_reprotect_preview(NULL)$$),
  ('NULL point', $$SELECT asr_failover('vm-protected', NULL)$$),
  ('NULL shutdown_source', $$SELECT asr_failover('vm-protected', 'latest', NULL)$$),
  ('NULL point (change point)', $$SELECT asr_change_recovery_point('vm-failed-over', NULL)$$),
  ('NULL options', $$SELECT asr_reprotect('vm-committed', NULL)$$),
  ('NULL options (preview)', $$SELECT asr_reprotect_preview('vm-committed', NULL)$$),
  ('NULL job (cancel)', $$SELECT asr_cancel(NULL)$$),
  ('NULL job (restart)', $$SELECT asr_restart(NULL)$$),
  ('NULL job (resume)', $$SELECT asr_resume(NULL)$$),
  ('NULL job (wait)', $$SELECT asr_wait(NULL)$$),
  ('NULL timeout (wait)', $$SELECT asr_wait(1, NULL)$$),
  ('NULL timeout (sync)', $$SELECT asr_sync('east', NULL)$$),
  ('NULL vault label', $$SELECT asr_add_vault(NULL, 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1')$$),
  ('NULL subscription', $$SELECT asr_add_vault('v', 'asr_fixture_azure', NULL, 'rg', 'v1')$$),
  ('NULL reprotect_options', $$SELECT asr_add_vault('v', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1', NULL)$$),
  ('empty item', $$SELECT asr_failover('')$$),
  ('blank item', $$SELECT asr_commit('   ')$$),
  ('empty point', $$SELECT asr_failover('vm-protected', '')$$),
  ('empty network', $$SELECT asr_test_failover('vm-protected', 'latest_processed', '')$$),
  ('empty vault (sync)', $$SELECT asr_sync('')$$),
  ('empty vault label', $$SELECT asr_add_vault('', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1')$$),
  ('unknown item', $$SELECT asr_failover('vm-nope')$$),
  ('unknown vault', $$SELECT asr_failover('south/vm-protected')$$),
  ('vault/name with a wrong vault', $$SELECT asr_failover('west/vm-protected')$$),
  ('ambiguous name', $$SELECT asr_failover('vm-dup')$$),
  ('unknown ARM id', $$SELECT asr_failover('/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.RecoveryServices/vaults/drvault-east/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/nope')$$),
  ('malformed ARM id: bad subscription', $$SELECT asr_failover('/subscriptions/not-a-guid/resourceGroups/dr-rg/providers/Microsoft.RecoveryServices/vaults/v/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/i')$$),
  ('malformed ARM id: truncated', $$SELECT asr_failover('/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg')$$),
  ('malformed ARM id: empty segment', $$SELECT asr_commit('/subscriptions//resourceGroups/dr-rg/providers/Microsoft.RecoveryServices/vaults/v/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/i')$$),
  ('malformed network id', $$SELECT asr_test_failover('vm-protected', 'latest_processed', '/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Storage/storageAccounts/x')$$),
  ('network that is not an id', $$SELECT asr_test_failover('vm-protected', 'latest_processed', 'iso-vnet')$$),
  ('bad point string', $$SELECT asr_failover('vm-protected', 'bogus')$$),
  ('misspelt choice', $$SELECT asr_failover('vm-protected', 'latest-processed')$$),
  ('special timestamp', $$SELECT asr_failover('vm-protected', 'infinity')$$),
  ('unknown point name', $$SELECT asr_failover('vm-protected', '0b1c2d3e-0000-4000-8000-00000000dead')$$),
  ('point of another item', $$SELECT asr_change_recovery_point('vm-failed-over', '0b1c2d3e-0000-4000-8000-000000000001')$$),
  ('future timestamp', $$SELECT asr_failover('vm-protected', '2999-01-01 00:00:00+00')$$),
  ('timestamp before every point', $$SELECT asr_test_failover('vm-protected', '2020-01-01')$$),
  ('latest for change point', $$SELECT asr_change_recovery_point('vm-failed-over', 'latest')$$),
  ('no points at all', $$SELECT asr_test_failover('east/vm-dup', 'latest_processed')$$),
  ('no app-consistent point', $$SELECT asr_test_failover('east/vm-dup', 'latest_app_consistent')$$),
  ('notes too long', $$SELECT asr_test_failover_cleanup('vm-tfo-pending', repeat('x', 1025))$$),
  ('options not an object', $$SELECT asr_reprotect('vm-committed', '[]')$$),
  ('unknown option', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": @cache@, "cache": 1}')$$),
  ('no cache storage account', $$SELECT asr_reprotect('vm-committed')$$),
  ('cache account for another region only', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": {"uksouth": @cache@}}')$$),
  ('malformed cache storage account', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": "/subscriptions/x/storageAccounts/c"}')$$),
  ('cache storage account of wrong type', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": 42}')$$),
  ('malformed resource group', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": @cache@, "resource_group": "dr-rg"}')$$),
  ('malformed availability set', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": @cache@, "availability_set": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Compute/virtualMachines/x"}')$$),
  ('unknown disk type', $$SELECT asr_reprotect('vm-committed', '{"cache_storage_account": @cache@, "disk_type": "Ultra_Fast"}')$$),
  ('unknown job (cancel)', $$SELECT asr_cancel(999999)$$),
  ('unknown job (restart)', $$SELECT asr_restart(999999)$$),
  ('unknown job (resume)', $$SELECT asr_resume(999999)$$),
  ('unknown job (wait)', $$SELECT asr_wait(999999)$$),
  ('negative timeout (wait)', $$SELECT asr_wait(1, '-1 s')$$),
  ('unknown vault (sync)', $$SELECT asr_sync('south')$$),
  ('unknown server', $$SELECT asr_add_vault('v', 'nosuchserver', gen_random_uuid(), 'rg', 'v1')$$),
  ('duplicate vault label', $$SELECT asr_add_vault('east', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1')$$),
  ('vault added twice', $$SELECT asr_add_vault('east2', 'asr_fixture_azure', '7c943c1b-5122-4097-90c8-861411bdd574', 'DR-RG', 'DRVAULT-EAST')$$),
  ('vault label with slash', $$SELECT asr_add_vault('a/b', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1')$$),
  ('bad resource group name', $$SELECT asr_add_vault('v', 'asr_fixture_azure', gen_random_uuid(), 'rg with blanks', 'v1')$$),
  ('bad vault name', $$SELECT asr_add_vault('v', 'asr_fixture_azure', gen_random_uuid(), 'rg', '1-vault_x')$$),
  ('bad vault reprotect_options', $$SELECT asr_add_vault('v', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1', '{"disk_type": "Fast"}')$$);

UPDATE bad_inputs SET sql = replace(sql, '@cache@',
  '"/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Storage/storageAccounts/ukwestcache"');
\x on
SELECT b.n, b.label, t.* FROM bad_inputs b, pg_temp.try(b.sql) t ORDER BY b.n;
\x off

-- Every action in every state where Azure does not allow it (and the ones
-- it does allow, rolled back), from the fixture's items.
CREATE TEMP TABLE calls (action text, sql text);
INSERT INTO calls VALUES
  ('failover', $$SELECT asr_failover(%L, 'latest')$$),
  ('test_failover', $$SELECT asr_test_failover(%L, 'latest')$$),
  ('test_failover_cleanup', $$SELECT asr_test_failover_cleanup(%L)$$),
  ('change_recovery_point', $$SELECT asr_change_recovery_point(%L, 'latest_processed')$$),
  ('commit', $$SELECT asr_commit(%L)$$),
  ('reprotect', $$SELECT asr_reprotect(%L, '{"cache_storage_account": {"ukwest": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Storage/storageAccounts/ukwestcache"}}')$$);
SELECT i.vault || '/' || i.name AS item, i.protection_state, c.action, t.result, t.message
  FROM asr_item_status i, calls c, pg_temp.try(format(c.sql, i.vault || '/' || i.name)) t
 ORDER BY i.vault, i.name, c.action;

-- What a refusal tells: the state in words, Azure's view, what is allowed.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT asr_commit('vm-protected');
SELECT asr_failover('vm-committed');
SELECT asr_reprotect('vm-failed-over');
SELECT asr_test_failover('vm-tfo-pending');
SELECT asr_failover('vm-initial');
SELECT asr_test_failover('vm-busy');
\set VERBOSITY default

SELECT pg_temp.state() = :'before' AS nothing_changed_by_refusals;

-- A second action while a job is unfinished, whatever its state.
SELECT asr_failover('vm-protected') AS j \gset
SELECT * FROM pg_temp.try('SELECT asr_test_failover(''vm-protected'')');
SELECT asr_job_transition(:j, 'submitting');
SELECT asr_job_transition(:j, 'running', NULL, 10, NULL, '6b9c6e46-2a3d-4a1e-9f77-6b3c0c5d7e10', 'InProgress');
SELECT * FROM pg_temp.try('SELECT asr_failover(''vm-protected'')');
SELECT asr_job_transition(:j, 'suspended', 'waiting for a manual action');
SELECT * FROM pg_temp.try('SELECT asr_failover(''vm-protected'')');

-- Job functions on jobs in the wrong state.
SELECT * FROM pg_temp.try(format('SELECT asr_restart(%s)', :j)) AS restart_suspended;
SELECT asr_resume(:j, 'checked the network');
SELECT * FROM pg_temp.try(format('SELECT asr_resume(%s)', :j)) AS resume_twice;
SELECT asr_job_transition(:j, 'running');
SELECT * FROM pg_temp.try(format('SELECT asr_resume(%s)', :j)) AS resume_running;
SELECT asr_cancel(:j);
SELECT * FROM pg_temp.try(format('SELECT asr_cancel(%s)', :j)) AS cancel_twice;
SELECT asr_job_transition(:j, 'succeeded', 'failover done');
SELECT * FROM pg_temp.try(format('SELECT asr_cancel(%s)', :j)) AS cancel_succeeded_failover;
SELECT * FROM pg_temp.try(format('SELECT asr_restart(%s)', :j)) AS restart_succeeded;
SELECT * FROM pg_temp.try(format('SELECT asr_job_transition(%s, ''running'')', :j)) AS leave_final_state;
SELECT * FROM pg_temp.try(format('SELECT asr_job_transition(%s, ''paused'')', :j)) AS no_such_state;
SELECT asr_commit('vm-failed-over') AS c \gset
SELECT asr_job_transition(:c, 'failed', 'local error', NULL, NULL, NULL, NULL, 'asr_local', 'the request was refused');
SELECT * FROM pg_temp.try(format('SELECT asr_restart(%s)', :c)) AS restart_never_sent;
SELECT * FROM pg_temp.try(format('SELECT asr_cancel(%s)', :c)) AS cancel_failed;
SELECT * FROM pg_temp.try(format('SELECT asr_job_transition(%s, ''queued'')', :j)) AS back_to_queued;
SELECT state, progress, detail FROM asr_job_events WHERE job_id IN (:j, :c) ORDER BY event_id;
SELECT pg_temp.state() AS before \gset

-- A read-only transaction (as on a hot standby) refuses every action first.
BEGIN READ ONLY;
SELECT f, t.result, t.message FROM unnest(ARRAY[
  $$SELECT asr_failover('vm-protected')$$, $$SELECT asr_test_failover('vm-protected')$$,
  $$SELECT asr_test_failover_cleanup('vm-tfo-pending')$$,
  $$SELECT asr_change_recovery_point('vm-failed-over', 'latest_processed')$$,
  $$SELECT asr_commit('vm-failed-over')$$, $$SELECT asr_reprotect('vm-committed')$$,
  $$SELECT asr_cancel(1)$$, $$SELECT asr_restart(1)$$, $$SELECT asr_resume(1)$$,
  $$SELECT asr_add_vault('v', 'asr_fixture_azure', gen_random_uuid(), 'rg', 'v1')$$,
  $$SELECT asr_job_transition(1, 'running')$$]) AS f, pg_temp.try(f) t;
ROLLBACK;

-- Nothing of all this changed a row.
SELECT pg_temp.state() = :'before' AS nothing_changed;
DROP EXTENSION asr CASCADE;
