-- The DESIGN.md §5-6 contract as pgTAP assertions: tables, views, keys,
-- columns and function signatures other engineers' code and tests use.
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
BEGIN;
SELECT no_plan();

SELECT has_table(t) FROM unnest(ARRAY['asr_vaults', 'asr_items', 'asr_recovery_points', 'asr_jobs', 'asr_job_events']::name[]) t;
SELECT has_view(v) FROM unnest(ARRAY['asr_item_status', 'asr_worker_status']::name[]) v;

SELECT col_is_pk('asr_vaults', 'vault_id');
SELECT col_is_pk('asr_items', 'item_id');
SELECT col_is_pk('asr_recovery_points', ARRAY['item_id', 'name']);
SELECT col_is_pk('asr_jobs', 'job_id');
SELECT col_is_pk('asr_job_events', 'event_id');
SELECT fk_ok('asr_items', 'vault_id', 'asr_vaults', 'vault_id');
SELECT fk_ok('asr_recovery_points', 'item_id', 'asr_items', 'item_id');
SELECT fk_ok('asr_jobs', 'item_id', 'asr_items', 'item_id');
SELECT fk_ok('asr_job_events', 'job_id', 'asr_jobs', 'job_id');
SELECT col_is_unique('asr_vaults', 'name');

-- DESIGN's columns and types.
SELECT col_type_is(t, c, ty) FROM (VALUES
  ('asr_vaults', 'name', 'text'), ('asr_vaults', 'server', 'text'),
  ('asr_vaults', 'subscription_id', 'uuid'), ('asr_vaults', 'resource_group', 'text'),
  ('asr_vaults', 'vault_name', 'text'), ('asr_vaults', 'reprotect_options', 'jsonb'),
  ('asr_vaults', 'synced_at', 'timestamp with time zone'), ('asr_vaults', 'sync_error', 'text'),
  ('asr_items', 'vault_id', 'integer'), ('asr_items', 'name', 'text'), ('asr_items', 'arm_id', 'text'),
  ('asr_items', 'protection_state', 'text'), ('asr_items', 'protection_state_description', 'text'),
  ('asr_items', 'active_location', 'text'), ('asr_items', 'replication_health', 'text'),
  ('asr_items', 'allowed_operations', 'text[]'), ('asr_items', 'primary_region', 'text'),
  ('asr_items', 'recovery_region', 'text'), ('asr_items', 'rpo_seconds', 'integer'),
  ('asr_items', 'last_failover_at', 'timestamp with time zone'), ('asr_items', 'properties', 'jsonb'),
  ('asr_items', 'synced_at', 'timestamp with time zone'),
  ('asr_recovery_points', 'arm_id', 'text'), ('asr_recovery_points', 'point_time', 'timestamp with time zone'),
  ('asr_recovery_points', 'point_type', 'text'), ('asr_recovery_points', 'disks_covered', 'smallint'),
  ('asr_recovery_points', 'disks_total', 'smallint'), ('asr_recovery_points', 'properties', 'jsonb'),
  ('asr_jobs', 'job_id', 'bigint'), ('asr_jobs', 'action', 'text'), ('asr_jobs', 'requested_point', 'text'),
  ('asr_jobs', 'recovery_point', 'text'), ('asr_jobs', 'options', 'jsonb'), ('asr_jobs', 'state', 'text'),
  ('asr_jobs', 'progress', 'smallint'), ('asr_jobs', 'tasks', 'jsonb'), ('asr_jobs', 'azure_job', 'text'),
  ('asr_jobs', 'azure_state', 'text'), ('asr_jobs', 'error_code', 'text'), ('asr_jobs', 'error_message', 'text'),
  ('asr_jobs', 'requested_by', 'name'), ('asr_jobs', 'requested_at', 'timestamp with time zone'),
  ('asr_jobs', 'submitted_at', 'timestamp with time zone'), ('asr_jobs', 'finished_at', 'timestamp with time zone'),
  ('asr_job_events', 'job_id', 'bigint'), ('asr_job_events', 'at', 'timestamp with time zone'),
  ('asr_job_events', 'state', 'text'), ('asr_job_events', 'detail', 'text')) AS x(t, c, ty);

-- DESIGN's function signatures and return types.
SELECT function_returns(f, args, ret) FROM (VALUES
  ('asr_add_vault', ARRAY['text', 'text', 'uuid', 'text', 'text', 'jsonb'], 'integer'),
  ('asr_sync', ARRAY['text', 'interval'], 'integer'),
  ('asr_failover', ARRAY['text', 'text', 'boolean'], 'bigint'),
  ('asr_test_failover', ARRAY['text', 'text', 'text'], 'bigint'),
  ('asr_test_failover_cleanup', ARRAY['text', 'text'], 'bigint'),
  ('asr_change_recovery_point', ARRAY['text', 'text'], 'bigint'),
  ('asr_commit', ARRAY['text'], 'bigint'),
  ('asr_reprotect', ARRAY['text', 'jsonb'], 'bigint'),
  ('asr_reprotect_preview', ARRAY['text', 'jsonb'], 'jsonb'),
  ('asr_cancel', ARRAY['bigint'], 'bigint'),
  ('asr_restart', ARRAY['bigint'], 'bigint'),
  ('asr_resume', ARRAY['bigint', 'text'], 'bigint'),
  ('asr_wait', ARRAY['bigint', 'interval'], 'text'),
  ('asr_reprotect_after_commit', ARRAY[]::text[], 'trigger')) AS x(f, args, ret);

-- The defaults DESIGN promises.
SELECT is((SELECT pg_get_function_arguments('asr_failover(text,text,boolean)'::regprocedure)),
          'item text, point text DEFAULT ''latest''::text, shutdown_source boolean DEFAULT true', 'asr_failover defaults');
SELECT is((SELECT pg_get_function_arguments('asr_test_failover(text,text,text)'::regprocedure)),
          'item text, point text DEFAULT ''latest_processed''::text, network text DEFAULT NULL::text', 'asr_test_failover defaults');
SELECT is((SELECT pg_get_function_arguments('asr_sync(text,interval)'::regprocedure)),
          'vault text DEFAULT NULL::text, timeout interval DEFAULT ''00:05:00''::interval', 'asr_sync defaults');
SELECT is((SELECT pg_get_function_arguments('asr_wait(bigint,interval)'::regprocedure)),
          'job bigint, timeout interval DEFAULT ''01:00:00''::interval', 'asr_wait defaults');

-- States and actions outside the contract are refused by the table itself.
\i test/fixtures/items.sql
SELECT throws_ok($$INSERT INTO asr_jobs (item_id, action, requested_by) SELECT item_id, 'planned_failover', 'x' FROM asr_items LIMIT 1$$,
                 '23514', NULL, 'an unknown action violates asr_jobs_action_check');
SELECT throws_ok($$INSERT INTO asr_jobs (item_id, action, state, requested_by) SELECT item_id, 'commit', 'paused', 'x' FROM asr_items LIMIT 1$$,
                 '23514', NULL, 'an unknown state violates asr_jobs_state_check');
SELECT throws_ok($$INSERT INTO asr_jobs (item_id, action, requested_by) SELECT item_id, 'commit', 'x' FROM asr_items WHERE name = 'vm-failed-over' UNION ALL SELECT item_id, 'commit', 'x' FROM asr_items WHERE name = 'vm-failed-over'$$,
                 '23505', NULL, 'two unfinished jobs of one item violate asr_jobs_one_unfinished_per_item');
SELECT throws_ok($$UPDATE asr_items SET active_location = 'Elsewhere'$$, '23514', NULL,
                 'active_location is Primary or Recovery');
SELECT throws_ok($$INSERT INTO asr_recovery_points (item_id, name, arm_id, point_time, point_type) SELECT item_id, 'x', '/x', now(), 'AppConsistent' FROM asr_items LIMIT 1$$,
                 '23514', NULL, 'point types are lower case');

SELECT * FROM finish();
ROLLBACK;
