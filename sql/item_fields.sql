-- The sync stores Azure's item documents and recovery point listings field
-- by field: one field asr cannot read is NULL in its column (the item is
-- stored, with Azure's whole properties document), one unreadable recovery
-- point is skipped (the others are stored).  asr_item_upsert and
-- asr_recovery_points_replace are the functions the worker calls.
-- (The extension may be there from an earlier test: this one removes what
-- it adds.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS asr;
RESET client_min_messages;
\pset null '(null)'
SET timezone = 'UTC';
CREATE SERVER fields_azure FOREIGN DATA WRAPPER asr_azure
  OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47');
-- paused: the worker leaves the vault alone
INSERT INTO asr_vaults (name, server, subscription_id, resource_group, vault_name, paused)
  VALUES ('fields', 'fields_azure', '7c943c1b-5122-4097-90c8-861411bdd574', 'rg-fields', 'vault1', true)
  RETURNING vault_id AS vault \gset

-- An item document as Azure returns it, item "rpi-<n>", with the members of
-- patch replacing those of a well-formed properties object (a member set to
-- the SQL NULL is removed; pass JSON null to send null).
CREATE FUNCTION pg_temp.doc(n int, patch jsonb DEFAULT '{}', a2a_patch jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'id', '/Subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/rg-fields/providers/Microsoft.RecoveryServices/vaults/vault1/replicationFabrics/asr-a2a-default-uksouth/replicationProtectionContainers/asr-a2a-default-uksouth-container/replicationProtectedItems/rpi-' || n,
    'name', 'rpi-' || n,
    'type', 'Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems',
    'properties', jsonb_strip_nulls(jsonb_build_object(
      'friendlyName', 'vm-' || n,
      'protectionState', 'Protected',
      'protectionStateDescription', 'Protected',
      'activeLocation', 'Primary',
      'replicationHealth', 'Normal',
      'testFailoverState', 'None',
      'allowedOperations', '["UnplannedFailover", "TestFailover", "DisableProtection"]'::jsonb,
      'lastSuccessfulFailoverTime', '2025-04-09T08:37:42.6483072Z',
      'providerSpecificDetails', jsonb_build_object(
        'instanceType', 'A2A', 'primaryFabricLocation', 'uksouth',
        'recoveryFabricLocation', 'ukwest', 'rpoInSeconds', 46) || a2a_patch) || patch)) $$;

-- Store the document and show its row (properties: is it Azure's document,
-- unchanged?).
CREATE FUNCTION pg_temp.store(d jsonb, vault int DEFAULT :vault)
RETURNS TABLE (name text, protection_state text, active_location text,
               replication_health text, test_failover_state text,
               allowed_operations text[], primary_region text, rpo_seconds integer,
               last_failover_at timestamptz, properties_as_sent boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  id bigint := asr_item_upsert(vault, d);
BEGIN
  RETURN QUERY
  SELECT i.name, i.protection_state, i.active_location, i.replication_health,
         i.test_failover_state, i.allowed_operations, i.primary_region,
         i.rpo_seconds, i.last_failover_at, i.properties = d->'properties'
    FROM asr_items i WHERE i.item_id = id;
END $$;

-- A well-formed document: every column.
SELECT * FROM pg_temp.store(pg_temp.doc(1));

-- rpoInSeconds: a fraction is rounded to the nearest second (half away
-- from zero, as PostgreSQL casts numeric to integer); negative, null, a
-- string, a boolean or a value beyond the integer column is NULL.
SELECT v AS rpo_in_seconds, (SELECT rpo_seconds FROM pg_temp.store(pg_temp.doc(2, '{}', jsonb_build_object('rpoInSeconds', v))))
  FROM unnest(ARRAY['46.4', '46.5', '0.2', '0', '2147483647', '2147483647.5', '1e12', '-1', '-0.2', 'null', '"46"', 'true', '[46]']::jsonb[]) v;
-- without the member
SELECT rpo_seconds FROM pg_temp.store(pg_temp.doc(2, '{}', '{"rpoInSeconds": 46}') #- '{properties,providerSpecificDetails,rpoInSeconds}');
-- without providerSpecificDetails, or with one that is no object
SELECT rpo_seconds, primary_region FROM pg_temp.store(pg_temp.doc(2) #- '{properties,providerSpecificDetails}');
SELECT rpo_seconds, primary_region FROM pg_temp.store(pg_temp.doc(2, '{"providerSpecificDetails": [1]}'));

-- lastSuccessfulFailoverTime: anything but an ISO 8601 time is NULL, and so
-- is Azure's "never" (0001-01-01T00:00:00).
SELECT v AS last_successful_failover_time,
       (SELECT last_failover_at FROM pg_temp.store(pg_temp.doc(3, jsonb_build_object('lastSuccessfulFailoverTime', v))))
  FROM unnest(ARRAY['"2025-04-09T08:37:42+02:00"', '"2025-04-09 08:37:42Z"', '"2025-04-09T08:37"',
                '"2025-04-09T08:37:42.6483072"', '"2025-02-30T00:00:00Z"', '"2025-13-01T00:00:00Z"',
                '"2025-04-09T25:00:00Z"', '"0000-01-01T00:00:00Z"', '"yesterday"', '"infinity"', '"epoch"',
                '"2025-04-09T08:00:00 Europe/Nowhere"', '"2025-04-09T08:00:00 Europe/Paris"',
                '"0001-01-01T00:00:00"', '"0001-01-01T00:00:00Z"', '""', '1744188000', 'null', '{}']::jsonb[]) v;

-- allowedOperations: what is not a string is left out; not an array: none.
SELECT allowed_operations FROM pg_temp.store(pg_temp.doc(4, '{"allowedOperations": [null, "Commit", 5, {"op": "x"}, ["y"], true, "ChangePit"]}'));
SELECT allowed_operations FROM pg_temp.store(pg_temp.doc(4, '{"allowedOperations": [null]}'));
SELECT allowed_operations FROM pg_temp.store(pg_temp.doc(4, '{"allowedOperations": "Commit"}'));
SELECT allowed_operations FROM pg_temp.store(pg_temp.doc(4, '{"allowedOperations": null}'));

-- The name: friendlyName, else Azure's name, else the last segment of the
-- ARM id.
SELECT name FROM pg_temp.store(pg_temp.doc(5) #- '{properties,friendlyName}');
SELECT name FROM pg_temp.store(pg_temp.doc(5, '{"friendlyName": ""}') || '{"name": 7}');
SELECT name FROM pg_temp.store(pg_temp.doc(5, '{"friendlyName": 5}') - 'name');
SELECT name FROM pg_temp.store(pg_temp.doc(5, '{"friendlyName": null}') || '{"name": ""}');
SELECT name FROM pg_temp.store(pg_temp.doc(5, '{"friendlyName": "vm-5"}'));
SELECT count(*) AS items_named_5 FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-5';

-- The other columns take strings only: an unreadable protectionState is
-- 'Unknown', the others are NULL.
SELECT * FROM pg_temp.store(pg_temp.doc(6, '{"protectionState": 5, "activeLocation": ["Primary"], "replicationHealth": {"h": 1}, "testFailoverState": false}', '{"primaryFabricLocation": 1}'));
SELECT protection_state, active_location FROM pg_temp.store(pg_temp.doc(6, '{"protectionState": "", "activeLocation": "Elsewhere"}'));

-- Every bad field at once, on an item already stored: the row follows
-- Azure (NULL, not the old value), nothing else of the item is lost.
SELECT * FROM pg_temp.store(pg_temp.doc(1, '{"lastSuccessfulFailoverTime": "not a time", "allowedOperations": [null, "TestFailover"], "friendlyName": null}', '{"rpoInSeconds": -5}') - 'name');
SELECT count(*) AS items_1 FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-1';

-- Still refused: a document without an item's ARM id, or without a
-- properties object (it is no item document; the worker records the error).
SELECT asr_item_upsert(:vault, pg_temp.doc(7) - 'id');
SELECT asr_item_upsert(:vault, pg_temp.doc(7) || '{"id": 7}');
SELECT asr_item_upsert(:vault, pg_temp.doc(7) || '{"id": "/subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/rg"}');
SELECT asr_item_upsert(:vault, pg_temp.doc(7) || '{"properties": "Protected"}');
SELECT asr_item_upsert(:vault, '[1]');
SELECT count(*) AS items_7 FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-7';

-- Recovery points: one without a name (a non-empty string), an ARM id (a
-- string) or a valid recoveryPointTime is skipped, the others are stored;
-- the function returns how many were stored.  A point type that is no
-- string is 'unknown'.
CREATE FUNCTION pg_temp.point(name jsonb, t jsonb, kind jsonb DEFAULT '"CrashConsistent"')
RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('id', (SELECT arm_id FROM asr_items WHERE arm_id LIKE '%/rg-fields/%/rpi-1') || '/recoveryPoints/' || (name #>> '{}'),
    'name', name, 'properties', jsonb_build_object('recoveryPointTime', t, 'recoveryPointType', kind,
      'providerSpecificDetails', '{"instanceType": "A2A"}'::jsonb)) $$;
SELECT asr_recovery_points_replace(item_id, jsonb_build_object('value', jsonb_build_array(
         pg_temp.point('"p1"', '"2025-04-10T10:00:00Z"', '"ApplicationConsistent"'),
         pg_temp.point('null', '"2025-04-10T10:01:00Z"'),
         pg_temp.point('""', '"2025-04-10T10:02:00Z"'),
         pg_temp.point('5', '"2025-04-10T10:03:00Z"'),
         pg_temp.point('"p-bad-time"', '"2025-04-31T10:04:00Z"'),
         pg_temp.point('"p-no-time"', 'null'),
         pg_temp.point('"p-number-time"', '1744279500'),
         pg_temp.point('"p-no-id"', '"2025-04-10T10:05:00Z"') - 'id',
         pg_temp.point('"p-empty-id"', '"2025-04-10T10:05:30Z"') || '{"id": ""}',
         pg_temp.point('"p-no-properties"', '"2025-04-10T10:06:00Z"') - 'properties',
         42, 'null'::jsonb, '"p9"'::jsonb,
         pg_temp.point('"p2"', '"2025-04-10T10:07:00.1234567+01:00"', '7'),
         pg_temp.point('"p1"', '"2025-04-10T11:00:00Z"')))) AS stored
  FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-1';
SELECT p.name, p.point_time, p.point_type, p.properties->>'recoveryPointType' AS azure_type
  FROM asr_recovery_points p JOIN asr_items USING (item_id) WHERE vault_id = :vault ORDER BY p.name;
-- A bare array is a listing too; a listing of only bad points leaves none
-- (the item's points are what Azure listed last).
SELECT asr_recovery_points_replace(item_id, jsonb_build_array(pg_temp.point('"p3"', '"2025-04-10T12:00:00Z"'))) AS stored
  FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-1';
SELECT p.name, p.point_time FROM asr_recovery_points p JOIN asr_items USING (item_id) WHERE vault_id = :vault ORDER BY p.name;
SELECT asr_recovery_points_replace(item_id, jsonb_build_object('value', jsonb_build_array(pg_temp.point('"p4"', '"soon"')))) AS stored
  FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-1';
SELECT count(*) AS points FROM asr_recovery_points JOIN asr_items USING (item_id) WHERE vault_id = :vault;
-- The listing's array is "value" (the sync passes a bare array of every
-- page's points); anything else lists no point.
SELECT asr_recovery_points_replace(item_id, jsonb_build_object('Value', jsonb_build_array(pg_temp.point('"p5"', '"2025-04-10T12:00:00Z"')))) AS stored,
       asr_recovery_points_replace(item_id, '"p5"') AS stored_from_a_string,
       asr_recovery_points_replace(item_id, '{"value": {"p5": 1}}') AS stored_from_an_object
  FROM asr_items WHERE vault_id = :vault AND arm_id LIKE '%/rpi-1';

DELETE FROM asr_items WHERE vault_id = :vault;
DELETE FROM asr_vaults WHERE vault_id = :vault;
DROP SERVER fields_azure;

