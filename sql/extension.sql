-- The extension installs, uninstalls and reinstalls cleanly in asr.database,
-- and is refused anywhere else.
CREATE EXTENSION asr;
SELECT extname, extrelocatable, extversion FROM pg_extension WHERE extname = 'asr';
DROP EXTENSION asr;
CREATE EXTENSION asr;

-- Another database: refused with a hint naming the setting.
CREATE DATABASE asr_elsewhere;
\c asr_elsewhere
\set SHOW_CONTEXT never
CREATE EXTENSION asr;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS asr_objects FROM pg_proc WHERE proname LIKE 'asr\_%';
\c asr_regression
-- DROP DATABASE of another database does not wait for the worker.
DROP DATABASE asr_elsewhere;

-- The library is loaded by the postmaster: LOAD is a no-op, never an error.
LOAD 'asr';
