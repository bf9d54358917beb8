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
 * resolve to the system's; the pin also keeps the planner to index scans
 * (asr_pin_search_path says why).
 *
 * An action function runs a handful of statements per call, and parsing
 * and planning them again each time cost more than running them: the
 * schema's name is therefore kept per backend until a relation or schema
 * changes, and every statement asr_spi() runs is prepared once per backend
 * and kept (keyed by its text, which holds the schema's name, and its
 * argument types).  PostgreSQL's plan cache re-plans a kept statement when
 * a relation it uses changes or is dropped and created again.
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
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "common/hashfn.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

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
 * The extension's schema, quoted, kept until an invalidation says that a
 * relation or a schema changed: DROP/CREATE EXTENSION and ALTER EXTENSION
 * SET SCHEMA change the extension's tables, ALTER SCHEMA RENAME the
 * schema.  The callbacks only clear the flag, so that a name in use is
 * never freed under its user.
 */
static char *schema_quoted = NULL;
static bool schema_valid = false;
static bool schema_callbacks = false;

static void
schema_relcache_inval(Datum arg, Oid relid)
{
	schema_valid = false;
}

static void
schema_syscache_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	schema_valid = false;
}

/* The quoted name of the extension's schema, looked up when not valid. */
static const char *
extension_schema_quoted(void)
{
	Oid			extoid;
	char	   *nspname;

	if (!schema_callbacks)
	{
		CacheRegisterRelcacheCallback(schema_relcache_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, schema_syscache_inval, (Datum) 0);
		schema_callbacks = true;
	}
	if (schema_valid)
		return schema_quoted;

	extoid = get_extension_oid(ASR_EXTENSION_NAME, true);
	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"%s\" is not installed in this database",
						ASR_EXTENSION_NAME)));
	/* valid from before the lookup: an invalidation during it clears it */
	schema_valid = true;
	nspname = get_namespace_name(extension_schema(extoid));
	if (nspname == NULL)
	{
		schema_valid = false;
		elog(ERROR, "schema of extension \"%s\" not found", ASR_EXTENSION_NAME);
	}
	if (schema_quoted == NULL || strcmp(schema_quoted, quote_identifier(nspname)) != 0)
	{
		if (schema_quoted)
			pfree(schema_quoted);
		schema_quoted = MemoryContextStrdup(TopMemoryContext, quote_identifier(nspname));
	}
	return schema_quoted;
}

/*
 * "schema".relname for one of the extension's relations.
 */
char *
asr_rel(const char *relname)
{
	return psprintf("%s.%s", extension_schema_quoted(), quote_identifier(relname));
}

/*
 * Run the following SQL with search_path = pg_catalog, pg_temp and
 * enable_seqscan = off.  Returns the GUC nest level to hand to
 * asr_unpin_search_path(); an error unwinds the settings with the
 * transaction or subtransaction.
 *
 * Every statement asr runs finds rows by key, and each is planned once per
 * backend (see asr_spi) like the foreign key checks its inserts fire: a
 * plan made while asr_jobs was empty (a new installation, a VACUUM after
 * rolled-back calls) would otherwise be a sequential scan that every later
 * call repeats over a growing table, one statement over 9,000 items took
 * 2 ms a call instead of 0.2.  Inside the SQL functions (SET search_path)
 * only enable_seqscan needs setting; with both as wanted, nothing is set
 * and 0 says so.
 */
#define ASR_SEARCH_PATH "pg_catalog, pg_temp"

int
asr_pin_search_path(void)
{
	bool		path_pinned = namespace_search_path != NULL &&
		strcmp(namespace_search_path, ASR_SEARCH_PATH) == 0;
	int			nestlevel;

	if (path_pinned && !enable_seqscan)
		return 0;
	nestlevel = NewGUCNestLevel();
	if (!path_pinned)
		(void) set_config_option("search_path", ASR_SEARCH_PATH,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (enable_seqscan)
		(void) set_config_option("enable_seqscan", "off",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
asr_unpin_search_path(int nestlevel)
{
	if (nestlevel > 0)
		AtEOXact_GUC(true, nestlevel);
}

/*
 * The statements prepared in this backend: a chained hash table keyed by
 * the text and the argument types, in a context of its own (visible in
 * pg_backend_memory_contexts).  Every caller passes a fixed text (with the
 * schema's name in it), so the table holds a few dozen statements; a
 * statement whose schema is renamed away simply stays unused.
 */
#define PLAN_BUCKETS 128

typedef struct PlanEntry
{
	struct PlanEntry *next;
	uint32		hash;
	int			nargs;
	Oid		   *argtypes;
	char	   *query;
	SPIPlanPtr	plan;
} PlanEntry;

static MemoryContext plan_cxt = NULL;
static PlanEntry *plan_buckets[PLAN_BUCKETS];

/* The kept plan of a statement, prepared and kept at its first use. */
static SPIPlanPtr
kept_plan(const char *query, int nargs, Oid *argtypes)
{
	uint32		hash = hash_bytes((const unsigned char *) query, strlen(query));
	PlanEntry  *e;
	SPIPlanPtr	plan;

	if (nargs > 0)
		hash ^= hash_bytes((const unsigned char *) argtypes, nargs * sizeof(Oid));
	for (e = plan_buckets[hash % PLAN_BUCKETS]; e != NULL; e = e->next)
		if (e->hash == hash && e->nargs == nargs &&
			(nargs == 0 || memcmp(e->argtypes, argtypes, nargs * sizeof(Oid)) == 0) &&
			strcmp(e->query, query) == 0)
			return e->plan;

	plan = SPI_prepare(query, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "asr: SPI_prepare failed (%s) for: %s",
			 SPI_result_code_string(SPI_result), query);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "asr: SPI_keepplan failed for: %s", query);

	if (plan_cxt == NULL)
		plan_cxt = AllocSetContextCreate(TopMemoryContext, "asr SPI statements",
										 ALLOCSET_SMALL_SIZES);
	e = MemoryContextAllocZero(plan_cxt, sizeof(PlanEntry));
	e->hash = hash;
	e->nargs = nargs;
	if (nargs > 0)
	{
		e->argtypes = MemoryContextAlloc(plan_cxt, nargs * sizeof(Oid));
		memcpy(e->argtypes, argtypes, nargs * sizeof(Oid));
	}
	e->query = MemoryContextStrdup(plan_cxt, query);
	e->plan = plan;
	e->next = plan_buckets[hash % PLAN_BUCKETS];
	plan_buckets[hash % PLAN_BUCKETS] = e;
	return plan;
}

/*
 * Run a statement with arguments and raise on failure.  Callers are
 * connected.  The statement is prepared once per backend (see above).
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
	rc = SPI_execute_plan(kept_plan(query, nargs, argtypes), values, nulls,
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

/*
 * Columns first_col, first_col + 1, ... of the first result row as strings
 * in cxt, into the char * fields given, up to a NULL:
 * asr_spi_copy_texts(cxt, 3, &item->vault, &item->name, NULL).
 */
void
asr_spi_copy_texts(MemoryContext cxt, int first_col,...)
{
	va_list		args;
	char	  **dst;
	int			col = first_col;

	va_start(args, first_col);
	while ((dst = va_arg(args, char **)) != NULL)
		*dst = asr_spi_copy_text(cxt, col++);
	va_end(args);
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

/*
 * The timeout argument argno of asr_wait and asr_sync in microseconds (a
 * month counts 30 days); NULL and negative intervals are errors.
 */
int64
asr_timeout_argument(FunctionCallInfo fcinfo, int argno)
{
	Interval   *iv;
	int64		usecs;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be NULL")));
	iv = PG_GETARG_INTERVAL_P(argno);
	usecs = iv->time + (int64) iv->day * USECS_PER_DAY +
		(int64) iv->month * 30 * USECS_PER_DAY;
	if (usecs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	return usecs;
}

/*
 * A date and time read without raising: PostgreSQL's parser reports its
 * errors as codes.  Only real dates count (not "infinity", "epoch" or the
 * like).  tm and fsec, when given, receive the fields as written.  Release 15's
 * DecodeDateTime() still raises for an unknown time zone name: callers that
 * must never raise check the shape first (items.c).
 */
bool
asr_timestamp_in(const char *str, TimestampTz *result, struct pg_tm *tm, fsec_t *fsec_out)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz = 0;
	struct pg_tm tt;
	fsec_t		fsec;

	if (str == NULL || strlen(str) >= MAXDATELEN)
		return false;
	if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) != 0 ||
		dtype != DTK_DATE)
		return false;
	if (tm)
		*tm = tt;
	if (fsec_out)
		*fsec_out = fsec;
	return tm2timestamp(&tt, fsec, &tz, result) == 0;
}
