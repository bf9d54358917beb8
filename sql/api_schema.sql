-- The tables, views and functions of DESIGN.md §5-6 exist with their
-- columns, are documented, keep nothing for PUBLIC, and survive pg_dump.
CREATE EXTENSION asr;

-- Every DESIGN column, in order, with its type.
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relname IN ('asr_vaults', 'asr_items', 'asr_recovery_points', 'asr_jobs',
                     'asr_job_events', 'asr_item_status')
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;

-- Keys, foreign keys and CHECK constraints.
SELECT conrelid::regclass AS rel, conname, contype
  FROM pg_constraint
 WHERE conrelid::regclass::text LIKE 'asr\_%'
 ORDER BY 1, 2;

-- Indexes for the worker's and the DBAs' queries.
SELECT indexrelid::regclass AS index, indisunique
  FROM pg_index WHERE indrelid::regclass::text LIKE 'asr\_%'
 ORDER BY 1;

-- Every function, table, view (and the non-obvious columns) has a comment.
SELECT p.proname AS undocumented_function
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname AS undocumented_relation
  FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT count(*) AS documented_columns
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relname LIKE 'asr\_%' AND col_description(c.oid, a.attnum) IS NOT NULL;

-- Nothing for PUBLIC: no function EXECUTE, no table or view privilege.
SELECT p.proname, p.proacl
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) x WHERE x.grantee = 0);
SELECT c.relname, c.relacl
  FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asr'
 WHERE c.relacl IS NOT NULL AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee = 0);

-- Action functions run with the owner's rights and a pinned search_path.
SELECT proname, prosecdef, proconfig
  FROM pg_proc WHERE proname LIKE 'asr\_%' AND proname NOT LIKE 'asr\_azure%'
 ORDER BY proname;

-- pg_dump keeps vaults, items, jobs, events and their sequences.
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'asr' ORDER BY 1;

DROP EXTENSION asr;
