-- asr demo, step 2: credentials as a foreign server + user mapping (the
-- secret is only readable by superusers), then the vault, then a refresh.
\pset footer off
-- (the statements that carry the secret are not echoed)
\set ECHO none
\set QUIET on
SELECT format($$CREATE SERVER azure FOREIGN DATA WRAPPER asr_azure OPTIONS (
    tenant_id %L, arm_endpoint %L, login_endpoint %L)$$,
    :'tenant_id', :'arm_endpoint', :'login_endpoint') \gexec
SELECT format($$CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS (
    auth 'client_secret', client_id %L, client_secret %L)$$,
    :'client_id', :'client_secret') \gexec
\set QUIET off
\set ECHO queries
\echo 'CREATE SERVER azure FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id, arm_endpoint, login_endpoint)'
\echo 'CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS (auth ''client_secret'', client_id, client_secret)'
SELECT srvname, srvoptions FROM pg_foreign_server WHERE srvname = 'azure';
-- a role without privileges cannot see the mapping's options
CREATE ROLE demo_nobody;
SET ROLE demo_nobody;
SELECT srvname, usename, umoptions FROM pg_user_mappings;
RESET ROLE;
DROP ROLE demo_nobody;

SELECT asr_add_vault('dr', 'azure', :'subscription_id', :'resource_group', :'vault',
    reprotect_options => jsonb_build_object('cache_storage_account', jsonb_build_object(
        'eastus',  format('/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/cacheeastus', :'subscription_id', :'resource_group'),
        'westus2', format('/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/cachewestus2', :'subscription_id', :'resource_group'))))
    AS vault_id;

-- ask the worker to read the vault now, and wait for it
SELECT asr_sync('dr') AS items_seen;

SELECT name, protection_state, active_location, primary_region, recovery_region,
       rpo_seconds, allowed_operations
  FROM asr_items ORDER BY name;
SELECT i.name, count(*) AS points, max(p.point_time) AS newest,
       min(p.disks_covered::text || ' of ' || p.disks_total) AS worst_coverage
  FROM asr_recovery_points p JOIN asr_items i USING (item_id)
 GROUP BY i.name ORDER BY i.name;
