-- fuzz_setup.sql: the tables the worker targets of test/fuzz (fuzz_worker.c) write to.
-- Run once by test/fuzz/run in a single-user postgres: one statement per line.
-- One vault, six items (item1..item6 in its A2A container) and a running job each.
CREATE EXTENSION asr
INSERT INTO asr_vaults (name, server, subscription_id, resource_group, vault_name) VALUES ('vault1', 'fuzz', 'c183865e-6077-46f2-a3b1-deb0f4f4650a', 'rg1', 'vault1')
INSERT INTO asr_items (vault_id, name, arm_id, protection_state, allowed_operations, properties) SELECT 1, 'vm' || i, '/subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/resourceGroups/rg1/providers/Microsoft.RecoveryServices/vaults/vault1/replicationFabrics/asr-a2a-default-eastus/replicationProtectionContainers/asr-a2a-default-eastus-container/replicationProtectedItems/item' || i, 'Protected', '{UnplannedFailover}', jsonb_build_object('providerSpecificDetails', jsonb_build_object('protectedManagedDisks', jsonb_build_array(jsonb_build_object('diskId', '/subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/resourceGroups/rg1/providers/Microsoft.Compute/disks/vm' || i || '-osdisk')))) FROM generate_series(1, 6) i
INSERT INTO asr_jobs (item_id, action, state, azure_job, requested_by, next_poll_at, client_request_id) SELECT i, 'failover', 'running', lpad(i::text, 8, '0') || '-0000-4000-8000-00000000000' || i, 'postgres', now() + interval '1 day', (lpad(i::text, 8, '0') || '-aaaa-4bbb-8ccc-dddddddddddd')::uuid FROM generate_series(1, 6) i
SELECT count(*) AS fuzz_setup_items FROM asr_items
