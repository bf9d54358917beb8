-- asr demo, step 6: initial replication in the reverse direction until the
-- item is Protected again (the worker follows the item to its new path).
\pset footer off
DO $$
BEGIN
    FOR i IN 1..120 LOOP
        PERFORM asr_sync('dr');
        EXIT WHEN (SELECT protection_state FROM asr_items WHERE name = 'app-vm-01') = 'Protected';
        RAISE NOTICE 'app-vm-01: %', (SELECT protection_state FROM asr_items WHERE name = 'app-vm-01');
        PERFORM pg_sleep(1);
    END LOOP;
END $$;
SELECT name, protection_state, active_location, primary_region, recovery_region, allowed_operations
  FROM asr_items WHERE name = 'app-vm-01';
