-- asr demo, step 4: before committing, move to an older recovery point
-- (the second newest).
\pset footer off
SELECT p.name AS point FROM asr_recovery_points p JOIN asr_items i USING (item_id)
 WHERE i.name = 'app-vm-01' ORDER BY p.point_time DESC OFFSET 1 LIMIT 1 \gset
SELECT asr_change_recovery_point('app-vm-01', :'point') AS job \gset
SELECT asr_wait(:job, '5 min') AS final_state;
SELECT right(properties #>> '{failoverRecoveryPointId}', 36) AS point_in_use
  FROM asr_items WHERE name = 'app-vm-01';
