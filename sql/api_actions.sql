-- Every action function records one queued job with what the worker will
-- send, in the caller's transaction, with its first audit event.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'

-- A job, its request and its events, compactly.
CREATE FUNCTION pg_temp.job(id bigint)
RETURNS TABLE (action text, state text, item text, requested_point text,
               recovery_point text, point_time timestamptz, coverage text,
               options jsonb, requested_by name)
LANGUAGE sql AS $$
  SELECT j.action, j.state, i.name, j.requested_point,
         regexp_replace(j.recovery_point, '^.*/recoveryPoints/', '.../'),
         j.recovery_point_time,
         j.disks_covered || ' of ' || j.disks_total, j.options, j.requested_by
    FROM asr_jobs j JOIN asr_items i USING (item_id) WHERE j.job_id = id $$;
CREATE FUNCTION pg_temp.req(id bigint) RETURNS TABLE (path_end text, body jsonb)
LANGUAGE sql AS $$
  SELECT regexp_replace(request->>'path', '^.*/', '.../'), request->'body'
         #- '{properties,providerSpecificDetails,recoveryPointId}'
    FROM asr_jobs WHERE job_id = id $$;
SET timezone = 'UTC';

-- Failover at the latest point: no recovery point is sent; the source VM is
-- shut down first by default.
SELECT asr_failover('vm-protected') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT * FROM pg_temp.req(:j);
SELECT state, progress, detail FROM asr_job_events WHERE job_id = :j;
-- A rollback records nothing (and wakes nobody).
SELECT asr_cancel(:j);
BEGIN;
SELECT asr_failover('vm-protected', 'latest_processed', false) IS NOT NULL AS queued;
ROLLBACK;
SELECT count(*) AS jobs_after_rollback FROM asr_jobs WHERE state = 'queued';

-- Each point choice picks the right point, by time.
SELECT asr_failover('vm-protected', 'latest_processed', false) AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT recovery_point ~ '/recoveryPoints/0b1c2d3e-0000-4000-8000-000000000004$' AS full_arm_id_sent,
       request->'body'->'properties'->'providerSpecificDetails'->>'recoveryPointId' = recovery_point AS body_has_it,
       request->'body'->'properties'->>'sourceSiteOperations' AS source_site
  FROM asr_jobs WHERE job_id = :j;
SELECT asr_cancel(:j);
SELECT asr_failover('vm-protected', 'latest_app_consistent') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT asr_cancel(:j);
SELECT asr_failover('vm-protected', 'LATEST_CRASH_CONSISTENT') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT asr_cancel(:j);
SELECT asr_failover('vm-protected', '0b1c2d3e-0000-4000-8000-000000000001') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT asr_cancel(:j);
-- A timestamp takes the newest point at or before it; this one covers 1 of
-- 2 disks: accepted with a WARNING, the coverage on the job.
SELECT asr_failover('vm-protected', '2025-04-09 08:22:00+00') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT asr_cancel(:j);
-- The point's full ARM id, in other letter case, is a name too.
SELECT asr_failover('vm-protected', upper(arm_id)) AS j FROM asr_recovery_points
 WHERE name = '0b1c2d3e-0000-4000-8000-000000000002' \gset
SELECT * FROM pg_temp.job(:j);
SELECT asr_cancel(:j);

-- Items by ARM id (any letter case), and vault/name.
SELECT asr_test_failover(lower(arm_id)) AS j FROM asr_items WHERE name = 'vm-protected' \gset
SELECT * FROM pg_temp.job(:j);
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);
SELECT asr_test_failover('west/vm-dup', 'latest',
  '/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-iso/providers/Microsoft.Network/virtualNetworks/iso-vnet') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);

SELECT asr_test_failover_cleanup('vm-tfo-pending', 'Drill 2025-04 passed') AS j \gset
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);
SELECT asr_test_failover_cleanup('vm-tfo-pending') AS j \gset
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);

SELECT asr_change_recovery_point('vm-failed-over', 'latest_app_consistent') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);

SELECT asr_commit('vm-failed-over') AS j \gset
SELECT * FROM pg_temp.job(:j);
SELECT request FROM asr_jobs WHERE job_id = :j AND request ? 'body';
SELECT * FROM pg_temp.req(:j);
SELECT asr_cancel(:j);

-- Reprotect: every value derived from the item but the cache storage
-- account; call options override the vault's reprotect_options.
SELECT asr_reprotect('vm-committed',
  '{"cache_storage_account": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.Storage/storageAccounts/ukwestcache", "disk_type": "standard_lrs"}') AS j \gset
SELECT options FROM asr_jobs WHERE job_id = :j;
SELECT request->>'method' AS method, regexp_replace(request->>'path', '^.*/vaults/', '.../') AS path,
       jsonb_pretty(request->'body') AS body
  FROM asr_jobs WHERE job_id = :j;
SELECT asr_cancel(:j);
-- The vault's default (a region -> account map) is enough for west's items.
SELECT jsonb_pretty(asr_reprotect_preview('vm-west-committed') - 'body') AS preview;
-- The preview sends nothing and records nothing.
SELECT count(*) AS jobs FROM asr_jobs;
SELECT asr_reprotect_preview('vm-west-committed', '{"resource_group": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/elsewhere"}')->'body'->'properties'->'providerSpecificDetails'->>'recoveryResourceGroupId' AS rg_override;
SELECT count(*) AS jobs FROM asr_jobs;
SELECT asr_reprotect('vm-west-committed') AS j \gset
SELECT request->'body'->'properties'->'providerSpecificDetails'->'vmManagedDisks'->0->>'primaryStagingAzureStorageAccountId' AS cache
  FROM asr_jobs WHERE job_id = :j;

-- asr_item_status: allowed actions in asr's words, the unfinished job.
SELECT vault, name, running_in, protection_state, rpo_seconds, newest_point, newest_point_type,
       allowed_actions, unfinished_job IS NOT NULL AS has_job, unfinished_state
  FROM asr_item_status ORDER BY vault, name;

-- Vaults: asr_add_vault checks and stores.
SELECT asr_add_vault('north', 'asr_fixture_azure', '2f4b3c1d-9e8f-4a6b-8c7d-1e2f3a4b5c6d', 'dr-north', 'drvault-north',
                     '{"disk_type": "Premium_LRS"}') > 0 AS added;
SELECT name, server, subscription_id, resource_group, vault_name, reprotect_options, created_by
  FROM asr_vaults WHERE name = 'north';

-- The sync path the worker will use: an item document and its points.
SELECT asr_item_upsert(vault_id, jsonb_build_object('id', arm_id, 'name', regexp_replace(arm_id, '^.*/', ''),
         'properties', properties || '{"protectionState": "UnplannedFailoverCommitPendingStatesBegin", "activeLocation": "Recovery", "allowedOperations": ["Commit", "ChangePit"]}'))
       = item_id AS same_item
  FROM asr_items WHERE name = 'vm-dup' AND vault_id = (SELECT vault_id FROM asr_vaults WHERE name = 'east');
SELECT i.protection_state, i.active_location, i.allowed_operations
  FROM asr_items i JOIN asr_vaults v USING (vault_id) WHERE v.name = 'east' AND i.name = 'vm-dup';
SELECT asr_recovery_points_replace(item_id, jsonb_build_object('value', jsonb_build_array(
         jsonb_build_object('id', arm_id || '/recoveryPoints/p1', 'name', 'p1', 'properties',
           jsonb_build_object('recoveryPointTime', '2025-04-10T10:00:00Z', 'recoveryPointType', 'ApplicationConsistent',
             'providerSpecificDetails', jsonb_build_object('instanceType', 'A2A',
               'disks', jsonb_build_array(upper(properties#>>'{providerSpecificDetails,protectedManagedDisks,0,diskId}'))))),
         jsonb_build_object('id', arm_id || '/recoveryPoints/p2', 'name', 'p2', 'properties',
           jsonb_build_object('recoveryPointTime', '2025-04-10T10:05:00Z', 'recoveryPointType', 'CrashConsistent')))))
  FROM asr_items WHERE name = 'vm-dup' AND vault_id = (SELECT vault_id FROM asr_vaults WHERE name = 'east');
SELECT name, point_time, point_type, disks_covered, disks_total FROM asr_recovery_points
 WHERE name IN ('p1', 'p2') ORDER BY name;

DROP EXTENSION asr CASCADE;
