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
