/* asr--1.0.sql: Azure Site Recovery disaster recovery from SQL */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION asr" to load this file. \quit

-- The worker serves exactly one database (asr.database).  Installing the
-- extension anywhere else would queue jobs that nobody ever sends.
DO $asr_check$
BEGIN
    IF pg_catalog.current_setting('asr.database', true) IS NULL THEN
        RAISE EXCEPTION 'asr must be loaded via shared_preload_libraries'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'asr runs a background worker and needs shared memory reserved at server start.',
                  HINT = 'Add asr to shared_preload_libraries in postgresql.conf, set asr.database, and restart the server.';
    END IF;
    IF pg_catalog.current_database() OPERATOR(pg_catalog.<>)
       pg_catalog.current_setting('asr.database') THEN
        RAISE EXCEPTION 'asr can only be installed in database "%"',
                        pg_catalog.current_setting('asr.database')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('The asr worker connects to database "%s"; this is database "%s".',
                                             pg_catalog.current_setting('asr.database'),
                                             pg_catalog.current_database()),
                  HINT = 'Set asr.database in postgresql.conf to this database and restart the server, or run CREATE EXTENSION asr in that database.';
    END IF;
END
$asr_check$;

-- Worker status ------------------------------------------------------------

CREATE FUNCTION @extschema@.asr_worker_status_internal(
    OUT pid integer,
    OUT started_at timestamptz,
    OUT last_poll_at timestamptz,
    OUT requests_in_flight integer,
    OUT last_error text,
    OUT throttled_until timestamptz,
    OUT phase text)
RETURNS record
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'asr_worker_status_internal';
REVOKE ALL ON FUNCTION @extschema@.asr_worker_status_internal() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_worker_status_internal() IS
    'Internal: the asr worker''s shared-memory status; read asr_worker_status instead.';

CREATE VIEW @extschema@.asr_worker_status AS
    SELECT s.pid, s.started_at, s.last_poll_at, s.requests_in_flight,
           s.last_error, s.throttled_until, s.phase
      FROM @extschema@.asr_worker_status_internal() AS s;
REVOKE ALL ON @extschema@.asr_worker_status FROM PUBLIC;
COMMENT ON VIEW @extschema@.asr_worker_status IS
    'The asr background worker: pid (NULL when not running), when it started and last polled, HTTP requests in flight, last error, throttled_until (NULL when not throttled), phase.';

-- Tables ---------------------------------------------------------------------
--
-- Written only by the extension: the action functions (SECURITY DEFINER, in
-- the caller's transaction) and the background worker.  Nobody but the owner
-- may INSERT, UPDATE or DELETE; readers are granted SELECT by the DBA.
-- Expressions below name pg_catalog explicitly: the script runs with
-- search_path set to the target schema, which we do not trust.

CREATE TABLE @extschema@.asr_vaults (
    vault_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    server text NOT NULL,
    subscription_id uuid NOT NULL,
    resource_group text NOT NULL,
    vault_name text NOT NULL,
    reprotect_options jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by name NOT NULL DEFAULT pg_catalog."session_user"(),
    synced_at timestamptz,
    sync_error text,
    paused boolean NOT NULL DEFAULT false,
    CONSTRAINT asr_vaults_name_key UNIQUE (name),
    CONSTRAINT asr_vaults_name_check
        CHECK (name OPERATOR(pg_catalog.<>) '' AND pg_catalog.strpos(name, '/') OPERATOR(pg_catalog.=) 0),
    CONSTRAINT asr_vaults_server_check CHECK (server OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_vaults_resource_group_check CHECK (resource_group OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_vaults_vault_name_check CHECK (vault_name OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_vaults_reprotect_options_check
        CHECK (pg_catalog.jsonb_typeof(reprotect_options) OPERATOR(pg_catalog.=) 'object')
);
CREATE UNIQUE INDEX asr_vaults_arm_key ON @extschema@.asr_vaults
    (subscription_id, pg_catalog.lower(resource_group), pg_catalog.lower(vault_name));
COMMENT ON TABLE @extschema@.asr_vaults IS
    'Recovery Services vaults asr manages (asr_add_vault); one row per vault.';
COMMENT ON COLUMN @extschema@.asr_vaults.name IS
    'The DBA''s label for the vault, used as "vault/item" to disambiguate item names.';
COMMENT ON COLUMN @extschema@.asr_vaults.server IS
    'Foreign server (wrapper asr_azure) whose options and user mapping give the endpoints and credentials.';
COMMENT ON COLUMN @extschema@.asr_vaults.vault_name IS
    'The vault''s name in Azure (the last segment of its ARM id).';
COMMENT ON COLUMN @extschema@.asr_vaults.reprotect_options IS
    'Defaults for asr_reprotect of this vault''s items (cache_storage_account, resource_group, availability_set, proximity_placement_group, disk_type); call options override them key by key.';
COMMENT ON COLUMN @extschema@.asr_vaults.synced_at IS
    'When the worker last refreshed this vault''s items and recovery points successfully.';
COMMENT ON COLUMN @extschema@.asr_vaults.sync_error IS
    'Error of the last failed refresh, NULL after a successful one.';
COMMENT ON COLUMN @extschema@.asr_vaults.paused IS
    'When true the worker leaves the vault alone: it claims and polls none of its jobs (they stay as recorded) and does not refresh it (maintenance, tests without Azure).';

CREATE TABLE @extschema@.asr_items (
    item_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vault_id integer NOT NULL REFERENCES @extschema@.asr_vaults (vault_id),
    name text NOT NULL,
    arm_id text NOT NULL,
    protection_state text NOT NULL,
    protection_state_description text,
    active_location text,
    replication_health text,
    test_failover_state text,
    allowed_operations text[] NOT NULL DEFAULT '{}',
    primary_region text,
    recovery_region text,
    rpo_seconds integer,
    last_failover_at timestamptz,
    properties jsonb NOT NULL DEFAULT '{}',
    synced_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT asr_items_name_check CHECK (name OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_items_arm_id_check
        CHECK (pg_catalog.left(arm_id, 1) OPERATOR(pg_catalog.=) '/'),
    CONSTRAINT asr_items_protection_state_check
        CHECK (protection_state OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_items_active_location_check
        CHECK (active_location OPERATOR(pg_catalog.=) ANY ('{Primary,Recovery}'::pg_catalog.text[])),
    CONSTRAINT asr_items_rpo_seconds_check CHECK (rpo_seconds OPERATOR(pg_catalog.>=) 0),
    CONSTRAINT asr_items_allowed_operations_check
        CHECK (pg_catalog.array_position(allowed_operations, NULL) IS NULL),
    CONSTRAINT asr_items_properties_check
        CHECK (pg_catalog.jsonb_typeof(properties) OPERATOR(pg_catalog.=) 'object')
);
CREATE UNIQUE INDEX asr_items_arm_id_key ON @extschema@.asr_items (pg_catalog.lower(arm_id));
CREATE INDEX asr_items_name_idx ON @extschema@.asr_items (pg_catalog.lower(name), vault_id);
CREATE INDEX asr_items_vault_idx ON @extschema@.asr_items (vault_id);
COMMENT ON TABLE @extschema@.asr_items IS
    'Replicated VMs (Azure replication protected items) as the worker last read them; the state every action is validated against.';
COMMENT ON COLUMN @extschema@.asr_items.name IS
    'The VM''s name (Azure friendlyName; Azure''s item name, then the last segment of arm_id, when Azure sends none); the "item" argument of the action functions.';
COMMENT ON COLUMN @extschema@.asr_items.arm_id IS
    'ARM id of the replication protected item, as Azure spells it; compared case-insensitively. Changes after a reprotect (the item moves to the other region''s fabric and container).';
COMMENT ON COLUMN @extschema@.asr_items.protection_state IS
    'Azure''s protectionState (Protected, UnplannedFailoverCommitPendingStatesBegin, UnplannedFailoverCommitted, InitialReplicationInProgress, ...): a free string, unknown values are kept; Unknown when Azure sent none (or no string).';
COMMENT ON COLUMN @extschema@.asr_items.active_location IS
    'Primary or Recovery: where the VM runs, relative to this item''s primary_region and recovery_region.';
COMMENT ON COLUMN @extschema@.asr_items.test_failover_state IS
    'Azure''s testFailoverState: None, WaitingForCompletion (a test VM waits for cleanup), MarkedForDeletion.';
COMMENT ON COLUMN @extschema@.asr_items.allowed_operations IS
    'Azure''s allowedOperations as reported (UnplannedFailover, TestFailover, Commit, ChangePit, SwitchProtection, ...; an entry that is no string is left out): the gate of every action.';
COMMENT ON COLUMN @extschema@.asr_items.primary_region IS
    'Azure region the item replicates from (primaryFabricLocation); swaps with recovery_region after a reprotect.';
COMMENT ON COLUMN @extschema@.asr_items.rpo_seconds IS
    'Azure''s last computed RPO (rpoInSeconds, a fraction rounded to the nearest second); meaningful only while protection_state is Protected. NULL when Azure sent none, or a value that is not a number >= 0 within integer range (properties keeps what Azure sent).';
COMMENT ON COLUMN @extschema@.asr_items.last_failover_at IS
    'Azure''s lastSuccessfulFailoverTime; NULL when Azure sent none, no ISO 8601 time, or its "never" (0001-01-01T00:00:00).';
COMMENT ON COLUMN @extschema@.asr_items.properties IS
    'The item''s "properties" document as Azure last returned it (A2A replication details, managed disks, ...).';

CREATE TABLE @extschema@.asr_recovery_points (
    item_id bigint NOT NULL REFERENCES @extschema@.asr_items (item_id) ON DELETE CASCADE,
    name text NOT NULL,
    arm_id text NOT NULL,
    point_time timestamptz NOT NULL,
    point_type text NOT NULL,
    disks_covered smallint,
    disks_total smallint,
    properties jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (item_id, name),
    CONSTRAINT asr_recovery_points_point_type_check
        CHECK (point_type OPERATOR(pg_catalog.=) pg_catalog.lower(point_type)
               AND point_type OPERATOR(pg_catalog.<>) ''),
    CONSTRAINT asr_recovery_points_disks_check
        CHECK (disks_covered OPERATOR(pg_catalog.>=) 0
               AND disks_covered OPERATOR(pg_catalog.<=) disks_total)
);
CREATE INDEX asr_recovery_points_time_idx
    ON @extschema@.asr_recovery_points (item_id, point_time DESC);
COMMENT ON TABLE @extschema@.asr_recovery_points IS
    'Recovery points of each item as last listed by Azure; Azure deletes them all when a failover is committed. A listed point without a name, an ARM id or a valid recoveryPointTime cannot be chosen and is not stored.';
COMMENT ON COLUMN @extschema@.asr_recovery_points.name IS
    'The point''s name in Azure (a GUID); accepted as the "point" argument.';
COMMENT ON COLUMN @extschema@.asr_recovery_points.point_type IS
    'crash_consistent, app_consistent, or another Azure recoveryPointType lower-cased.';
COMMENT ON COLUMN @extschema@.asr_recovery_points.disks_covered IS
    'Protected disks of the item present in this point; NULL when Azure did not list the point''s disks (coverage unknown).';
COMMENT ON COLUMN @extschema@.asr_recovery_points.disks_total IS
    'Protected managed disks of the item when the point was listed.';

CREATE TABLE @extschema@.asr_jobs (
    job_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id bigint NOT NULL REFERENCES @extschema@.asr_items (item_id),
    action text NOT NULL,
    requested_point text,
    recovery_point text,
    recovery_point_time timestamptz,
    disks_covered smallint,
    disks_total smallint,
    options jsonb NOT NULL DEFAULT '{}',
    request jsonb,
    state text NOT NULL DEFAULT 'queued',
    progress smallint NOT NULL DEFAULT 0,
    tasks jsonb,
    azure_job text,
    azure_state text,
    error_code text,
    error_message text,
    used_recovery_point text,
    new_item_arm_id text,
    requested_by name NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    submitted_at timestamptz,
    finished_at timestamptz,
    control text,
    control_comment text,
    control_requested_by name,
    control_requested_at timestamptz,
    restart_of bigint,
    client_request_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    operation_url text,
    location_url text,
    next_poll_at timestamptz,
    last_error text,
    attempts integer NOT NULL DEFAULT 0,
    -- The CHECKs list their words as array literals ('{a,b}'), not as
    -- ARRAY['a', 'b']: every INSERT and UPDATE reads and plans the CHECKs
    -- again, and an ARRAY[] expression costs one node per word and a
    -- folding each time (9 % of an asr_failover call).
    CONSTRAINT asr_jobs_action_check
        CHECK (action OPERATOR(pg_catalog.=) ANY ('{failover,test_failover,test_failover_cleanup,change_recovery_point,commit,reprotect,cancel_failover}'::pg_catalog.text[])),
    CONSTRAINT asr_jobs_state_check
        CHECK (state OPERATOR(pg_catalog.=) ANY ('{queued,submitting,running,succeeded,failed,cancelled,suspended}'::pg_catalog.text[])),
    CONSTRAINT asr_jobs_progress_check
        CHECK (progress OPERATOR(pg_catalog.>=) 0 AND progress OPERATOR(pg_catalog.<=) 100),
    CONSTRAINT asr_jobs_finished_check
        CHECK ((finished_at IS NOT NULL) OPERATOR(pg_catalog.=)
               (state OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,cancelled}'::pg_catalog.text[]))),
    CONSTRAINT asr_jobs_control_check
        CHECK (control OPERATOR(pg_catalog.=) ANY ('{cancel,resume}'::pg_catalog.text[])),
    CONSTRAINT asr_jobs_disks_check
        CHECK (disks_covered OPERATOR(pg_catalog.>=) 0
               AND disks_covered OPERATOR(pg_catalog.<=) disks_total),
    CONSTRAINT asr_jobs_options_check
        CHECK (pg_catalog.jsonb_typeof(options) OPERATOR(pg_catalog.=) 'object'),
    CONSTRAINT asr_jobs_attempts_check CHECK (attempts OPERATOR(pg_catalog.>=) 0)
);
-- At most one unfinished job per item, whatever the concurrency.
CREATE UNIQUE INDEX asr_jobs_one_unfinished_per_item ON @extschema@.asr_jobs (item_id)
    WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'submitting', 'running', 'suspended']::pg_catalog.text[]);
-- The worker: queued jobs in order, unfinished jobs by next poll.
CREATE INDEX asr_jobs_queued_idx ON @extschema@.asr_jobs (job_id)
    WHERE state OPERATOR(pg_catalog.=) 'queued';
CREATE INDEX asr_jobs_poll_idx ON @extschema@.asr_jobs (next_poll_at)
    WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['submitting', 'running', 'suspended']::pg_catalog.text[]);
-- DBAs: an item's history; jobs by Azure job name.  The item index holds
-- item_id alone: with job_id in it too, the planner used it for the
-- foreign key check of every asr_job_events row ("job_id = $1", a walk
-- through the whole index) whenever the statistics said asr_jobs was empty.
CREATE INDEX asr_jobs_item_idx ON @extschema@.asr_jobs (item_id);
CREATE INDEX asr_jobs_azure_job_idx ON @extschema@.asr_jobs (pg_catalog.lower(azure_job));
CREATE INDEX asr_jobs_restart_of_idx ON @extschema@.asr_jobs (restart_of);
COMMENT ON TABLE @extschema@.asr_jobs IS
    'One row per action requested from SQL; visible to the worker once the requesting transaction commits. The worker sends it to Azure and records its progress here.';
COMMENT ON COLUMN @extschema@.asr_jobs.action IS
    'failover, test_failover, test_failover_cleanup, change_recovery_point, commit, reprotect or cancel_failover.';
COMMENT ON COLUMN @extschema@.asr_jobs.requested_point IS
    'The recovery point as the caller wrote it (latest, latest_processed, a point name, a timestamp, ...).';
COMMENT ON COLUMN @extschema@.asr_jobs.recovery_point IS
    'ARM id of the recovery point sent to Azure; NULL = latest (Azure processes pending data first).';
COMMENT ON COLUMN @extschema@.asr_jobs.recovery_point_time IS
    'Time of the chosen recovery point; NULL for latest.';
COMMENT ON COLUMN @extschema@.asr_jobs.disks_covered IS
    'Disks of the item the chosen recovery point covers; below disks_total means a partial point ("1 of 2 disks"); NULL when unknown or latest.';
COMMENT ON COLUMN @extschema@.asr_jobs.disks_total IS
    'Protected disks of the item when the job was requested.';
COMMENT ON COLUMN @extschema@.asr_jobs.options IS
    'The call''s options; for reprotect, the call options merged over the vault''s reprotect_options.';
COMMENT ON COLUMN @extschema@.asr_jobs.request IS
    'What the worker sends: {"method", "path" (ARM path without api-version), "body"}; NULL for a restart (replicationJobs/{azure_job}/restart).';
COMMENT ON COLUMN @extschema@.asr_jobs.state IS
    'queued -> submitting -> running -> succeeded | failed | cancelled; suspended while Azure waits for asr_resume.';
COMMENT ON COLUMN @extschema@.asr_jobs.progress IS
    'Percent of the Azure job''s tasks finished (group children counted), 0..100.';
COMMENT ON COLUMN @extschema@.asr_jobs.tasks IS
    'Azure''s properties.tasks of the ASR job as last seen.';
COMMENT ON COLUMN @extschema@.asr_jobs.azure_job IS
    'Name (GUID) of the ASR job in the vault''s replicationJobs.';
COMMENT ON COLUMN @extschema@.asr_jobs.azure_state IS
    'The ASR job''s state as Azure spells it (NotStarted, InProgress, Succeeded, ...).';
COMMENT ON COLUMN @extschema@.asr_jobs.error_code IS
    'Azure''s error code of a failed job, or the extension''s own code when the failure is local.';
COMMENT ON COLUMN @extschema@.asr_jobs.used_recovery_point IS
    'The recovery point Azure actually used (the item''s failoverRecoveryPointId after the job), also when latest was requested.';
COMMENT ON COLUMN @extschema@.asr_jobs.new_item_arm_id IS
    'For a reprotect: the item''s new ARM id (newReplicationProtectedItemId).';
COMMENT ON COLUMN @extschema@.asr_jobs.requested_by IS
    'session_user of the transaction that requested the job.';
COMMENT ON COLUMN @extschema@.asr_jobs.control IS
    'A pending request on the running ASR job for the worker: cancel (asr_cancel) or resume (asr_resume); NULL once handled.';
COMMENT ON COLUMN @extschema@.asr_jobs.control_comment IS
    'Comment sent with a resume.';
COMMENT ON COLUMN @extschema@.asr_jobs.restart_of IS
    'For a job created by asr_restart: the failed or cancelled job whose ASR job it restarts (no foreign key, so that pg_dump restores asr_jobs without a circular dependency).';
COMMENT ON COLUMN @extschema@.asr_jobs.client_request_id IS
    'Worker: x-ms-client-request-id sent with the request, to find the ASR job again after a crash (at-most-once sending).';
COMMENT ON COLUMN @extschema@.asr_jobs.operation_url IS
    'Worker: Azure-AsyncOperation URL of the accepted request.';
COMMENT ON COLUMN @extschema@.asr_jobs.location_url IS
    'Worker: Location URL of the accepted request.';
COMMENT ON COLUMN @extschema@.asr_jobs.next_poll_at IS
    'Worker: when the job is polled next.';
COMMENT ON COLUMN @extschema@.asr_jobs.last_error IS
    'Worker: last transient error (throttling, timeout, 5xx) while the job goes on.';
COMMENT ON COLUMN @extschema@.asr_jobs.attempts IS
    'Worker: requests made for this job so far (submission and polls that failed transiently).';

CREATE TABLE @extschema@.asr_job_events (
    event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES @extschema@.asr_jobs (job_id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    state text NOT NULL,
    progress smallint,
    detail text,
    actor name NOT NULL DEFAULT pg_catalog."session_user"(),
    CONSTRAINT asr_job_events_state_check
        CHECK (state OPERATOR(pg_catalog.=) ANY ('{queued,submitting,running,succeeded,failed,cancelled,suspended}'::pg_catalog.text[]))
);
CREATE INDEX asr_job_events_job_idx ON @extschema@.asr_job_events (job_id, event_id);
CREATE INDEX asr_job_events_at_idx ON @extschema@.asr_job_events (at);
COMMENT ON TABLE @extschema@.asr_job_events IS
    'Audit trail: one row per state change of a job, starting with queued, plus requests on it (cancel, resume).';
COMMENT ON COLUMN @extschema@.asr_job_events.state IS
    'The job''s state after the event.';
COMMENT ON COLUMN @extschema@.asr_job_events.detail IS
    'What happened, in words (who requested, Azure''s error, the task that ended, ...).';
COMMENT ON COLUMN @extschema@.asr_job_events.actor IS
    'session_user of the transaction that recorded the event (the worker''s role for Azure-side changes).';

REVOKE ALL ON TABLE @extschema@.asr_vaults, @extschema@.asr_items,
    @extschema@.asr_recovery_points, @extschema@.asr_jobs, @extschema@.asr_job_events
    FROM PUBLIC;

-- pg_dump keeps what cannot be re-read from Azure: vaults, jobs, the audit
-- trail, and the items the jobs refer to (the next sync refreshes them).
-- Recovery points are pure cache.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_vaults', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_vaults_vault_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_items', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_items_item_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_jobs_job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_job_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.asr_job_events_event_id_seq', '');

-- Functions --------------------------------------------------------------------
--
-- Every function is revoked from PUBLIC right after its CREATE; the README
-- shows the GRANTs for an operator and a reader role.  Action functions are
-- SECURITY DEFINER with a pinned search_path: they write the tables with the
-- extension owner's rights after validating the call, and record
-- session_user as the requester.

CREATE FUNCTION @extschema@.asr_allowed_actions(allowed_operations text[],
                                                unfinished_job_state text DEFAULT NULL)
RETURNS text[]
LANGUAGE C IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_allowed_actions';
REVOKE ALL ON FUNCTION @extschema@.asr_allowed_actions(text[], text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_allowed_actions(text[], text) IS
    'The asr functions Azure''s allowedOperations permit (asr_failover, asr_commit, ...), or asr_wait/asr_cancel(/asr_resume) while a job in the given state is unfinished.';

CREATE FUNCTION @extschema@.asr_add_vault(name text, server text, subscription_id uuid,
                                          resource_group text, vault text,
                                          reprotect_options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_add_vault';
REVOKE ALL ON FUNCTION @extschema@.asr_add_vault(text, text, uuid, text, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_add_vault(text, text, uuid, text, text, jsonb) IS
    'Register a Recovery Services vault under a label (name), reached through a foreign server; returns vault_id. Run asr_sync afterwards to read its items.';

CREATE FUNCTION @extschema@.asr_sync(vault text DEFAULT NULL, timeout interval DEFAULT '5 min')
RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_sync';
REVOKE ALL ON FUNCTION @extschema@.asr_sync(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_sync(text, interval) IS
    'Ask the worker to refresh items and recovery points of one vault (all when NULL) now, wait until it has, and return the number of items seen; a failed refresh raises its error, a refresh not done within timeout raises an error.';

CREATE FUNCTION @extschema@.asr_failover(item text, point text DEFAULT 'latest',
                                         shutdown_source boolean DEFAULT true)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_failover';
REVOKE ALL ON FUNCTION @extschema@.asr_failover(text, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_failover(text, text, boolean) IS
    'Queue a failover of a replicated VM (or a failback of a reprotected one) to the recovery point given (latest, latest_processed, latest_app_consistent, latest_crash_consistent, a point name or a timestamp); shutdown_source asks Azure to shut the source VM down first (best effort). Returns job_id; sent after commit.';

CREATE FUNCTION @extschema@.asr_test_failover(item text, point text DEFAULT 'latest_processed',
                                              network text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_test_failover';
REVOKE ALL ON FUNCTION @extschema@.asr_test_failover(text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_test_failover(text, text, text) IS
    'Queue a test failover (drill) into the virtual network given by ARM id (NULL: no network attached); clean up with asr_test_failover_cleanup. Returns job_id.';

CREATE FUNCTION @extschema@.asr_test_failover_cleanup(item text, notes text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_test_failover_cleanup';
REVOKE ALL ON FUNCTION @extschema@.asr_test_failover_cleanup(text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_test_failover_cleanup(text, text) IS
    'Queue the cleanup of a test failover (deletes the test VM); notes (at most 1024 characters) are kept by Azure. Returns job_id.';

CREATE FUNCTION @extschema@.asr_change_recovery_point(item text, point text)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_change_recovery_point';
REVOKE ALL ON FUNCTION @extschema@.asr_change_recovery_point(text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_change_recovery_point(text, text) IS
    'Queue a change of the recovery point of a failed-over, not yet committed VM. Returns job_id.';

CREATE FUNCTION @extschema@.asr_commit(item text)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_commit';
REVOKE ALL ON FUNCTION @extschema@.asr_commit(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_commit(text) IS
    'Queue the commit of a failover; Azure then deletes every recovery point of the item. Returns job_id.';

CREATE FUNCTION @extschema@.asr_reprotect(item text, options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_reprotect';
REVOKE ALL ON FUNCTION @extschema@.asr_reprotect(text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_reprotect(text, jsonb) IS
    'Queue the reprotect (switch protection) of a committed failover: replication reverses towards the original region. options (cache_storage_account, resource_group, availability_set, proximity_placement_group, disk_type) are merged over the vault''s reprotect_options. Returns job_id.';

CREATE FUNCTION @extschema@.asr_reprotect_preview(item text, options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE C STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_reprotect_preview';
REVOKE ALL ON FUNCTION @extschema@.asr_reprotect_preview(text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_reprotect_preview(text, jsonb) IS
    'What asr_reprotect would send (path and body, every derived value and where it comes from) and which resources Azure will create; sends and records nothing.';

CREATE FUNCTION @extschema@.asr_cancel(job bigint)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_cancel';
REVOKE ALL ON FUNCTION @extschema@.asr_cancel(bigint) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_cancel(bigint) IS
    'Cancel a job: a queued job is cancelled at once (nothing is sent), a running one by Azure''s replicationJobs/{job}/cancel; on a succeeded failover that Azure allows to cancel (CancelFailover) it queues a cancel_failover job. Returns the job_id acted on or created.';

CREATE FUNCTION @extschema@.asr_restart(job bigint)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_restart';
REVOKE ALL ON FUNCTION @extschema@.asr_restart(bigint) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_restart(bigint) IS
    'Restart the ASR job of a failed or cancelled job (Azure''s replicationJobs/{job}/restart) as a new job (restart_of = job); returns the new job_id.';

CREATE FUNCTION @extschema@.asr_resume(job bigint, comment text DEFAULT NULL)
RETURNS bigint
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_resume';
REVOKE ALL ON FUNCTION @extschema@.asr_resume(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_resume(bigint, text) IS
    'Resume a suspended job (Azure''s replicationJobs/{job}/resume, with the comment); returns job_id.';

CREATE FUNCTION @extschema@.asr_wait(job bigint, timeout interval DEFAULT '1 hour')
RETURNS text
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_wait';
REVOKE ALL ON FUNCTION @extschema@.asr_wait(bigint, interval) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_wait(bigint, interval) IS
    'Block until the job ends, with a NOTICE whenever its state, progress or current task changes; returns the final state (succeeded, failed, cancelled) or raises an error when timeout passes first. Needs READ COMMITTED and a committed job.';

CREATE FUNCTION @extschema@.asr_job_transition(job bigint, state text, detail text DEFAULT NULL,
                                               progress integer DEFAULT NULL,
                                               tasks jsonb DEFAULT NULL,
                                               azure_job text DEFAULT NULL,
                                               azure_state text DEFAULT NULL,
                                               error_code text DEFAULT NULL,
                                               error_message text DEFAULT NULL)
RETURNS boolean
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_job_transition_sql';
REVOKE ALL ON FUNCTION @extschema@.asr_job_transition(bigint, text, text, integer, jsonb, text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_job_transition(bigint, text, text, integer, jsonb, text, text, text, text) IS
    'Maintenance (granted to nobody): move a job to a new state the way the worker does, with its event row, NOTIFY asr_jobs and wake-up of asr_wait; refuses transitions out of a finished state. For repairing a stuck job and for tests.';

CREATE FUNCTION @extschema@.asr_item_upsert(vault integer, item jsonb)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_item_upsert_sql';
REVOKE ALL ON FUNCTION @extschema@.asr_item_upsert(integer, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_item_upsert(integer, jsonb) IS
    'Maintenance (granted to nobody): store an item document as Azure returns it (GET replicationProtectedItems/{name}), the way the worker''s sync does; returns item_id.';

CREATE FUNCTION @extschema@.asr_recovery_points_replace(item bigint, points jsonb)
RETURNS integer
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asr_recovery_points_replace_sql';
REVOKE ALL ON FUNCTION @extschema@.asr_recovery_points_replace(bigint, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_recovery_points_replace(bigint, jsonb) IS
    'Maintenance (granted to nobody): replace an item''s recovery points by the "value" array Azure lists, computing disk coverage, the way the worker''s sync does; returns the number of points.';

CREATE FUNCTION @extschema@.asr_reprotect_after_commit()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $asr_trigger$
DECLARE
    item_arm_id text;
    options jsonb := '{}';
    reprotect_job bigint;
BEGIN
    IF TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'ROW' OR TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'asr_reprotect_after_commit() must be an AFTER UPDATE ... FOR EACH ROW trigger'
            USING ERRCODE = 'triggered_action_exception';
    END IF;
    IF TG_TABLE_NAME <> 'asr_jobs' THEN
        RAISE EXCEPTION 'asr_reprotect_after_commit() can only be attached to asr_jobs'
            USING ERRCODE = 'triggered_action_exception';
    END IF;
    IF NEW.action <> 'commit' OR NEW.state <> 'succeeded'
       OR OLD.state = 'succeeded' THEN
        RETURN NULL;
    END IF;
    IF TG_NARGS > 0 THEN
        options := TG_ARGV[0]::jsonb;
    END IF;
    SELECT i.arm_id INTO item_arm_id
      FROM @extschema@.asr_items AS i WHERE i.item_id = NEW.item_id;
    BEGIN
        reprotect_job := @extschema@.asr_reprotect(item_arm_id, options);
        RAISE NOTICE 'commit job % succeeded: reprotect queued as job %', NEW.job_id, reprotect_job;
    EXCEPTION WHEN OTHERS THEN
        -- The commit itself stands; say on its audit trail why no reprotect follows.
        INSERT INTO @extschema@.asr_job_events (job_id, state, progress, detail)
            VALUES (NEW.job_id, NEW.state, NEW.progress,
                    'automatic reprotect refused: ' || SQLERRM);
        RAISE WARNING 'commit job % succeeded but the automatic reprotect was refused: %',
            NEW.job_id, SQLERRM;
    END;
    RETURN NULL;
END
$asr_trigger$;
REVOKE ALL ON FUNCTION @extschema@.asr_reprotect_after_commit() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_reprotect_after_commit() IS
    'Trigger function for AFTER UPDATE ON asr_jobs FOR EACH ROW: when a commit job turns succeeded, queue asr_reprotect of its item with the trigger argument (jsonb, optional) as options; does nothing for other actions and states. A refused reprotect leaves a WARNING and an event on the commit job.';

-- Views --------------------------------------------------------------------------

CREATE VIEW @extschema@.asr_item_status AS
    SELECT v.name AS vault,
           i.name,
           i.item_id,
           i.active_location,
           CASE WHEN i.active_location OPERATOR(pg_catalog.=) 'Recovery'
                THEN i.recovery_region ELSE i.primary_region END AS running_in,
           i.protection_state,
           i.protection_state_description,
           i.replication_health,
           i.rpo_seconds,
           p.name AS newest_point,
           p.point_time AS newest_point_time,
           p.point_type AS newest_point_type,
           pg_catalog.now() OPERATOR(pg_catalog.-) p.point_time AS newest_point_age,
           @extschema@.asr_allowed_actions(i.allowed_operations, j.state) AS allowed_actions,
           j.job_id AS unfinished_job,
           j.action AS unfinished_action,
           j.state AS unfinished_state,
           j.progress AS unfinished_progress,
           i.synced_at,
           i.arm_id
      FROM @extschema@.asr_items AS i
      JOIN @extschema@.asr_vaults AS v ON v.vault_id OPERATOR(pg_catalog.=) i.vault_id
      LEFT JOIN LATERAL (
            SELECT rp.name, rp.point_time, rp.point_type
              FROM @extschema@.asr_recovery_points AS rp
             WHERE rp.item_id OPERATOR(pg_catalog.=) i.item_id
             ORDER BY rp.point_time DESC
             LIMIT 1) AS p ON true
      LEFT JOIN @extschema@.asr_jobs AS j
             ON j.item_id OPERATOR(pg_catalog.=) i.item_id
            AND j.state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'submitting', 'running', 'suspended']::pg_catalog.text[]);
REVOKE ALL ON @extschema@.asr_item_status FROM PUBLIC;
COMMENT ON VIEW @extschema@.asr_item_status IS
    'One row per replicated VM: vault, where it runs, protection state, health, RPO, newest recovery point and its age, the asr functions allowed next, and the unfinished job if any.';
COMMENT ON COLUMN @extschema@.asr_item_status.running_in IS
    'The Azure region the VM runs in now (primary_region or recovery_region, by active_location).';
COMMENT ON COLUMN @extschema@.asr_item_status.newest_point_age IS
    'How old the newest recovery point is; grows without bound when replication stalls.';
COMMENT ON COLUMN @extschema@.asr_item_status.allowed_actions IS
    'The asr functions Azure allows now (asr_failover, asr_commit, ...); asr_wait and asr_cancel while a job is unfinished.';
COMMENT ON COLUMN @extschema@.asr_item_status.unfinished_job IS
    'job_id of the item''s unfinished job (at most one), NULL when none.';

-- Credentials: the asr_azure foreign-data wrapper (DESIGN.md §4) -----------
-- A SERVER holds the tenant, cloud and endpoints; a USER MAPPING for the
-- worker's role (or PUBLIC) holds the application and its secret.  The
-- validator refuses secrets on a server, unknown options and bad values.

CREATE FUNCTION @extschema@.asr_azure_validator(text[], oid)
RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'asr_azure_validator';
REVOKE ALL ON FUNCTION @extschema@.asr_azure_validator(text[], oid) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.asr_azure_validator(text[], oid) IS
    'Internal: option validator of foreign-data wrapper asr_azure.';

CREATE FOREIGN DATA WRAPPER asr_azure VALIDATOR @extschema@.asr_azure_validator;
COMMENT ON FOREIGN DATA WRAPPER asr_azure IS
    'Azure credentials for asr: servers name a tenant, cloud and endpoints; user mappings hold the application and its secret.';
