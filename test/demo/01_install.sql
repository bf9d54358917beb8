-- asr demo, step 1: the extension is installed in asr.database and its
-- worker runs.
\pset footer off
SELECT name, setting, unit FROM pg_settings WHERE name LIKE 'asr.%' ORDER BY name;
SELECT extname, extversion FROM pg_extension WHERE extname = 'asr';
-- wait (at most 10 s) until the worker has seen the new extension
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN (SELECT phase FROM asr_worker_status) = 'idle';
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT pid IS NOT NULL AS worker_running, phase, started_at FROM asr_worker_status;
SELECT backend_type, state, query FROM pg_stat_activity WHERE backend_type = 'asr worker';
