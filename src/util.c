/*-------------------------------------------------------------------------
 *
 * util.c
 *	  The extension's schema, a pinned search_path and SPI shorthands.
 *
 * The extension is installed into a schema chosen at CREATE EXTENSION, so
 * every statement names its tables through asr_rel(), which finds that
 * schema in pg_extension.  Code reached from the worker (which runs with
 * the database's default search_path) pins search_path to pg_catalog,
 * pg_temp before running SQL, so that operators and functions can only
 * resolve to the system's.
 *
 * IDENTIFICATION
 *	  src/util.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "asr.h"
#include "util.h"

/*
 * The schema of an extension (PostgreSQL 15 does not export
 * get_extension_schema): an index scan of pg_extension, as extension.c does.
 */
static Oid
extension_schema(Oid extoid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			result = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		result = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * "schema".relname for one of the extension's relations.  Looked up on
 * every call: DROP/CREATE EXTENSION may move it between two calls.
 */
char *
asr_rel(const char *relname)
{
	Oid			extoid = get_extension_oid(ASR_EXTENSION_NAME, true);
	Oid			nspoid;
	char	   *nspname;

	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"%s\" is not installed in this database",
						ASR_EXTENSION_NAME)));
	nspoid = extension_schema(extoid);
	nspname = get_namespace_name(nspoid);
	if (nspname == NULL)
		elog(ERROR, "schema of extension \"%s\" not found", ASR_EXTENSION_NAME);
	return psprintf("%s.%s", quote_identifier(nspname), quote_identifier(relname));
}

/*
 * Run the following SQL with search_path = pg_catalog, pg_temp.  Returns
 * the GUC nest level to hand to asr_unpin_search_path(); an error unwinds
 * the setting with the transaction or subtransaction.
 */
int
asr_pin_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
asr_unpin_search_path(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * SPI_execute_with_args that raises on failure.  Callers are connected.
 *
 * Every statement runs with a fresh snapshot (read_only is only a hint of
 * the caller's intent): asr_wait and asr_sync re-read rows that other
 * sessions commit while they wait, and the action functions must see a job
 * committed by a session they waited for on the item's row lock.
 */
int
asr_spi(const char *query, int nargs, Oid *argtypes, Datum *values,
		const char *nulls, bool read_only, long count)
{
	int			rc;

	(void) read_only;
	rc = SPI_execute_with_args(query, nargs, argtypes, values, nulls,
							   false, count);
	if (rc < 0)
		elog(ERROR, "asr: SPI failed (%s) for: %s",
			 SPI_result_code_string(rc), query);
	return rc;
}

/*
 * Text of a column of the last result (1-based column), NULL for NULL;
 * palloc'd in the current (SPI) context.
 */
char *
asr_spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

bool
asr_spi_isnull(int row, int col)
{
	bool		isnull;

	(void) SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, &isnull);
	return isnull;
}

Datum
asr_spi_datum(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

/*
 * Refuse to record anything on a hot standby or in a read-only
 * transaction, before any validation: the DBA must learn first that the
 * call cannot work here at all.
 */
void
asr_check_writable(const char *function_name)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s() during recovery", function_name),
				 errdetail("This server is a hot standby; asr jobs are recorded and sent by the primary."),
				 errhint("Call %s() on the primary server.", function_name)));
	PreventCommandIfReadOnly(psprintf("%s()", function_name));
}

/*
 * Column col of the first result row as a string in cxt (NULL for NULL):
 * SPI results die with SPI_finish, what callers keep must be copied out.
 */
char *
asr_spi_copy_text(MemoryContext cxt, int col)
{
	char	   *s = asr_spi_text(0, col);

	return s ? MemoryContextStrdup(cxt, s) : NULL;
}

/* Column col of the first result row as a jsonb in cxt (NULL for NULL). */
Jsonb *
asr_spi_copy_jsonb(MemoryContext cxt, int col)
{
	bool		isnull;
	Datum		d = asr_spi_datum(0, col, &isnull);
	Jsonb	   *j;
	Jsonb	   *copy;

	if (isnull)
		return NULL;
	j = DatumGetJsonbP(d);
	copy = MemoryContextAlloc(cxt, VARSIZE(j));
	memcpy(copy, j, VARSIZE(j));
	return copy;
}
