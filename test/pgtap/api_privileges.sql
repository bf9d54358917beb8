-- Privileges: nothing for PUBLIC; a role without grants is denied every
-- function and table; the README's reader reads and cannot act; the
-- README's operator acts through the functions only, recorded as itself.
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;
\i test/fixtures/items.sql
SELECT no_plan();

CREATE ROLE asr_test_nobody;
CREATE ROLE asr_test_reader;
CREATE ROLE asr_test_operator;

-- The README's GRANTs.
GRANT SELECT ON asr_vaults, asr_items, asr_recovery_points, asr_jobs, asr_job_events,
                asr_item_status, asr_worker_status TO asr_test_reader;
GRANT EXECUTE ON FUNCTION asr_wait(bigint, interval), asr_allowed_actions(text[], text),
                          asr_worker_status_internal() TO asr_test_reader;
GRANT asr_test_reader TO asr_test_operator;
GRANT EXECUTE ON FUNCTION asr_failover(text, text, boolean), asr_test_failover(text, text, text),
                          asr_test_failover_cleanup(text, text), asr_change_recovery_point(text, text),
                          asr_commit(text), asr_reprotect(text, jsonb), asr_reprotect_preview(text, jsonb),
                          asr_cancel(bigint), asr_restart(bigint), asr_resume(bigint, text),
                          asr_sync(text, interval) TO asr_test_operator;

-- Run sql as role r (session user, as a login would be) and roll it back;
-- 'ok' or 'SQLSTATE: message'.
CREATE FUNCTION pg_temp.outcome_as(r name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL SESSION AUTHORIZATION %I', r);
        EXECUTE sql;
        RAISE EXCEPTION 'asr-test: ok';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    RETURN CASE WHEN msg = 'asr-test: ok' THEN 'ok' ELSE st || ': ' || msg END;
END $$;

-- Run sql as role r and keep what it did; returns its first column.
CREATE FUNCTION pg_temp.value_as(r name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SET LOCAL SESSION AUTHORIZATION %I', r);
    EXECUTE sql INTO v;
    RESET SESSION AUTHORIZATION;
    RETURN v;
END $$;

-- Every function of the extension, called with NULLs of its argument types.
CREATE TEMP TABLE asr_functions AS
SELECT p.oid::regprocedure::text AS signature,
       format('SELECT %s(%s)', p.oid::regproc,
              (SELECT string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY i)
                 FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i))) AS call
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE NOT (p.proisstrict AND p.pronargs > 0);
-- A strict function called with NULLs is folded away before the privilege
-- check; the FDW validator gets real arguments.
INSERT INTO asr_functions VALUES ('asr_azure_validator(text[],oid)', 'SELECT asr_azure_validator(''{}''::text[], 0)');
SELECT cmp_ok((SELECT count(*)::int FROM asr_functions), '>=', 20, 'the extension has its functions');

CREATE TEMP TABLE asr_relations AS
SELECT c.oid::regclass::text AS rel, c.relkind
  FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE c.relkind IN ('r', 'v');
SELECT is((SELECT count(*)::int FROM asr_relations), 7, 'five tables and two views');

-- A role without grants: denied every function and every table.
SELECT matches(pg_temp.outcome_as('asr_test_nobody', call), '^42501: permission denied for function',
               'no grants: ' || signature || ' is denied')
  FROM asr_functions ORDER BY signature;
SELECT matches(pg_temp.outcome_as('asr_test_nobody', format('SELECT * FROM %s', rel)),
               '^42501: permission denied for (table|view)', 'no grants: SELECT on ' || rel || ' is denied')
  FROM asr_relations ORDER BY rel;

-- Nobody writes the tables directly, not even the operator.
SELECT matches(pg_temp.outcome_as(r, s), '^42501: permission denied for table', r || ': ' || s || ' is denied')
  FROM unnest(ARRAY['asr_test_nobody', 'asr_test_reader', 'asr_test_operator']) AS r,
       unnest(ARRAY[
         'INSERT INTO asr_jobs (item_id, action, requested_by) SELECT item_id, ''failover'', ''x'' FROM asr_items LIMIT 1',
         'UPDATE asr_jobs SET state = ''succeeded''',
         'DELETE FROM asr_job_events',
         'UPDATE asr_items SET allowed_operations = ''{UnplannedFailover}''',
         'INSERT INTO asr_recovery_points (item_id, name, arm_id, point_time, point_type) SELECT item_id, ''x'', ''/x'', now(), ''x'' FROM asr_items LIMIT 1',
         'DELETE FROM asr_vaults',
         'UPDATE asr_vaults SET paused = false',
         'TRUNCATE asr_jobs']) AS s
 ORDER BY r, s;

-- The reader reads everything...
SELECT is(pg_temp.outcome_as('asr_test_reader', format('SELECT * FROM %s', rel)), 'ok',
          'reader: SELECT on ' || rel)
  FROM asr_relations ORDER BY rel;
SELECT is(pg_temp.value_as('asr_test_reader',
            'SELECT array_to_string(allowed_actions, '','') FROM asr_item_status WHERE name = ''vm-protected'''),
          'asr_failover,asr_test_failover', 'reader: asr_item_status shows the allowed actions');
-- ...and cannot act.
SELECT matches(pg_temp.outcome_as('asr_test_reader', c), '^42501: permission denied for function', 'reader: ' || c)
  FROM unnest(ARRAY[
    'SELECT asr_failover(''vm-protected'')', 'SELECT asr_test_failover(''vm-protected'')',
    'SELECT asr_test_failover_cleanup(''vm-tfo-pending'')',
    'SELECT asr_change_recovery_point(''vm-failed-over'', ''latest_processed'')',
    'SELECT asr_commit(''vm-failed-over'')', 'SELECT asr_reprotect(''vm-committed'')',
    'SELECT asr_reprotect_preview(''vm-committed'')', 'SELECT asr_cancel(1)', 'SELECT asr_restart(1)',
    'SELECT asr_resume(1)', 'SELECT asr_sync()',
    'SELECT asr_add_vault(''v'', ''asr_fixture_azure'', gen_random_uuid(), ''rg'', ''v1'')',
    'SELECT asr_job_transition(1, ''failed'')']) AS c
 ORDER BY c;

-- The operator acts through the functions; the job records who asked.
SELECT pg_temp.value_as('asr_test_operator', 'SELECT asr_failover(''vm-protected'')') AS job \gset
SELECT is(requested_by::text, 'asr_test_operator', 'operator: requested_by is the session user')
  FROM asr_jobs WHERE job_id = :job;
SELECT is(actor::text, 'asr_test_operator', 'operator: the queued event names the session user')
  FROM asr_job_events WHERE job_id = :job;
SELECT is(pg_temp.outcome_as('asr_test_operator', format('SELECT asr_cancel(%s)', :job)), 'ok',
          'operator: asr_cancel');
SELECT is(pg_temp.outcome_as('asr_test_operator', 'SELECT asr_reprotect_preview(''vm-west-committed'')'), 'ok',
          'operator: asr_reprotect_preview');
SELECT matches(pg_temp.outcome_as('asr_test_operator', c), '^42501: permission denied for function', 'operator: ' || c)
  FROM unnest(ARRAY[
    'SELECT asr_job_transition(1, ''failed'')',
    'SELECT asr_item_upsert(1, ''{}'')',
    'SELECT asr_recovery_points_replace(1, ''[]'')',
    'SELECT asr_add_vault(''v'', ''asr_fixture_azure'', gen_random_uuid(), ''rg'', ''v1'')']) AS c
 ORDER BY c;
-- The reader may wait for a job (here created in this very transaction,
-- which asr_wait refuses, after the privilege check).
SELECT matches(pg_temp.outcome_as('asr_test_reader', format('SELECT asr_wait(%s, ''1 s'')', :job)),
               '^55000: cannot wait for job', 'reader: asr_wait is allowed');

-- SECURITY DEFINER functions pin search_path; none trusts the caller's.
SELECT is(count(*)::int, 0, 'every SECURITY DEFINER function pins search_path')
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE p.prosecdef AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

SELECT * FROM finish();
ROLLBACK;
