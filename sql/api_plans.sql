-- The action functions prepare their statements once per session and find
-- the extension's schema once: both must follow the extension when it is
-- dropped and created again in another schema, and when that schema is
-- renamed, all within one session.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all
SET client_min_messages = warning;

-- Every statement of an enqueue, and of a refusal, prepared in public.
BEGIN;
SELECT asr_failover('east/vm-protected') > 0 AS queued;
SELECT asr_test_failover('vm-protected');
ROLLBACK;
SELECT count(*) AS jobs FROM asr_jobs;

-- The same session, the extension in another schema.
DROP EXTENSION asr CASCADE;
CREATE SCHEMA asr_elsewhere;
CREATE EXTENSION asr SCHEMA asr_elsewhere;
SET search_path = public, asr_elsewhere;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all
BEGIN;
SELECT asr_failover('east/vm-protected') > 0 AS queued;
SELECT count(*) AS jobs_in_elsewhere FROM asr_elsewhere.asr_jobs;
SELECT asr_test_failover('vm-protected');
ROLLBACK;

-- The schema renamed under the prepared statements.
ALTER SCHEMA asr_elsewhere RENAME TO asr_renamed;
SET search_path = public, asr_renamed;
BEGIN;
SELECT asr_failover('east/vm-protected') > 0 AS queued;
SELECT count(*) AS jobs_in_renamed FROM asr_renamed.asr_jobs;
SELECT state, detail FROM asr_renamed.asr_job_events;
ROLLBACK;

-- Back in public.
DROP EXTENSION asr CASCADE;
DROP SCHEMA asr_renamed;
RESET search_path;
CREATE EXTENSION asr;
SELECT count(*) AS jobs FROM asr_jobs;
DROP EXTENSION asr;
