-- pg_dump and a restore into a freshly created extension keep vaults,
-- items, jobs and the audit trail; the restored sequences go on.
CREATE EXTENSION asr;
\set ECHO none
\i test/fixtures/items.sql
\set ECHO all
SELECT asr_failover('vm-protected', 'latest_app_consistent') AS failover_job \gset
SELECT asr_job_transition(:failover_job, 'submitting');
SELECT asr_commit('vm-failed-over') AS commit_job \gset
CREATE TEMP TABLE before AS
SELECT (SELECT md5(string_agg(v::text, ',' ORDER BY vault_id)) FROM asr_vaults v) AS vaults,
       (SELECT md5(string_agg(i::text, ',' ORDER BY item_id)) FROM asr_items i) AS items,
       (SELECT md5(string_agg(j::text, ',' ORDER BY job_id)) FROM asr_jobs j) AS jobs,
       (SELECT md5(string_agg(e::text, ',' ORDER BY event_id)) FROM asr_job_events e) AS events;
SELECT count(*) AS points_before FROM asr_recovery_points;

\! pg_dump --extension=asr --format=custom --file=results/asr_api_dump.dump asr_regression
DROP EXTENSION asr CASCADE;
\! pg_restore --dbname=asr_regression --exit-on-error results/asr_api_dump.dump && echo restored

SELECT (SELECT md5(string_agg(v::text, ',' ORDER BY vault_id)) FROM asr_vaults v) = b.vaults AS vaults_kept,
       (SELECT md5(string_agg(i::text, ',' ORDER BY item_id)) FROM asr_items i) = b.items AS items_kept,
       (SELECT md5(string_agg(j::text, ',' ORDER BY job_id)) FROM asr_jobs j) = b.jobs AS jobs_kept,
       (SELECT md5(string_agg(e::text, ',' ORDER BY event_id)) FROM asr_job_events e) = b.events AS events_kept
  FROM before b;
-- Recovery points are a cache the next sync refills.
SELECT count(*) AS points_after FROM asr_recovery_points;
-- New rows continue the sequences instead of colliding with restored ones.
SELECT asr_test_failover('east/vm-dup', 'latest') > :commit_job AS new_job_after_restored_ones;
SELECT count(*) AS one_more_event FROM asr_job_events;
DROP EXTENSION asr CASCADE;
