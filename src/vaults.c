/*-------------------------------------------------------------------------
 *
 * vaults.c
 *	  Vaults and the sync from SQL: asr_add_vault, asr_sync, and the
 *	  maintenance entries that store Azure documents the way the worker's
 *	  sync does.
 *
 * asr_sync cannot wait for the worker inside a transaction by way of the
 * tables (the worker would not see an uncommitted request), so the
 * request travels through shared memory (shmem.c) and the answer comes
 * back as a condition-variable broadcast plus asr_vaults.synced_at and
 * sync_error, which the worker commits before it broadcasts.
 *
 * IDENTIFICATION
 *	  src/vaults.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "armid.h"
#include "asr.h"
#include "items.h"
#include "reprotect.h"
#include "util.h"

PG_FUNCTION_INFO_V1(asr_add_vault);
PG_FUNCTION_INFO_V1(asr_sync);
PG_FUNCTION_INFO_V1(asr_item_upsert_sql);
PG_FUNCTION_INFO_V1(asr_recovery_points_replace_sql);

/* A required, non-empty text argument, or an error naming it. */
static char *
arg_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	return s;
}

/* Azure vault names: 2-50 letters, digits and hyphens, starting with a letter */
static bool
valid_vault_name(const char *s)
{
	size_t		len = strlen(s);
	size_t		i;

	if (len < 2 || len > 50 || !isalpha((unsigned char) s[0]))
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char) s[i]) && s[i] != '-')
			return false;
	return true;
}

/*
 * asr_add_vault(name, server, subscription_id, resource_group, vault,
 * reprotect_options DEFAULT '{}') -> vault_id
 */
Datum
asr_add_vault(PG_FUNCTION_ARGS)
{
	char	   *name = arg_text(fcinfo, 0, "name");
	char	   *server = arg_text(fcinfo, 1, "server");
	char	   *rg;
	char	   *vault;
	Jsonb	   *options;
	ForeignServer *srv;
	Oid			types[6] = {TEXTOID, TEXTOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[6];
	int			nestlevel;
	bool		isnull;
	int32		vault_id;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subscription_id must not be NULL")));
	rg = arg_text(fcinfo, 3, "resource_group");
	vault = arg_text(fcinfo, 4, "vault");
	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reprotect_options must not be NULL"),
				 errhint("Pass '{}' for no defaults.")));
	options = PG_GETARG_JSONB_P(5);
	asr_check_writable("asr_add_vault");

	if (strchr(name, '/') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("vault label \"%s\" must not contain \"/\"", name),
				 errdetail("Items are named \"vault/name\" when a VM name is ambiguous.")));
	if (!asr_arm_id_matches(psprintf("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/%s", rg),
							ARM_SHAPE_RESOURCE_GROUP))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid resource group name \"%s\"", rg),
				 errdetail("Azure resource group names have up to 90 letters, digits, underscores, hyphens, periods and parentheses, and do not end in a period.")));
	if (!valid_vault_name(vault))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid vault name \"%s\"", vault),
				 errdetail("Recovery Services vault names have 2 to 50 letters, digits and hyphens and start with a letter.")));
	srv = GetForeignServerByName(server, true);
	if (srv == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server),
				 errhint("Create it first: CREATE SERVER %s FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '...'), with a USER MAPPING holding the credentials.",
						 quote_identifier(server))));
	if (pg_foreign_server_aclcheck(srv->serverid, GetSessionUserId(), ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", server),
				 errdetail("Adding a vault lets the worker use the server's credentials; it needs USAGE on the server.")));
	asr_check_reprotect_options(options, "reprotect_options");

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(server);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = CStringGetTextDatum(rg);
	values[4] = CStringGetTextDatum(vault);
	values[5] = JsonbPGetDatum(options);

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT name, vault_name FROM %s WHERE name = $1 OR "
					 "(subscription_id = $3 AND lower(resource_group) = lower($4) "
					 " AND lower(vault_name) = lower($5)) ORDER BY name = $1 DESC",
					 asr_rel("asr_vaults")),
			6, types, values, NULL, false, 0);
	if (SPI_processed > 0)
	{
		char	   *existing = asr_spi_text(0, 1);

		if (strcmp(existing, name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("vault \"%s\" already exists", name),
					 errhint("Choose another label, or use the existing vault.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("vault %s is already added as \"%s\"", vault, existing),
				 errdetail("Subscription %s, resource group %s.",
						   DatumGetCString(DirectFunctionCall1(uuid_out, values[2])), rg)));
	}
	asr_spi(psprintf("INSERT INTO %s (name, server, subscription_id, resource_group, vault_name, "
					 "reprotect_options) VALUES ($1, $2, $3, $4, $5, $6) RETURNING vault_id",
					 asr_rel("asr_vaults")),
			6, types, values, NULL, false, 0);
	vault_id = DatumGetInt32(asr_spi_datum(0, 1, &isnull));
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	PG_RETURN_INT32(vault_id);
}

/*
 * asr_sync(vault DEFAULT NULL, timeout DEFAULT '5 min') -> items seen
 */
Datum
asr_sync(PG_FUNCTION_ARGS)
{
	char	   *vault = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		timeout;
	int32		vault_id = 0;
	uint64		generation;
	TimestampTz deadline;
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	int			nestlevel;
	bool		isnull;
	int64		nitems;

	timeout = asr_timeout_argument(fcinfo, 1);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute asr_sync() during recovery"),
				 errdetail("This server is a hot standby; the worker refreshes the tables on the primary."),
				 errhint("Call asr_sync() on the primary server.")));
	if (vault && vault[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("vault must not be empty"),
				 errhint("Pass NULL to refresh every vault.")));

	SPI_connect();
	nestlevel = asr_pin_search_path();
	if (vault)
	{
		Oid			t = TEXTOID;
		Datum		v = CStringGetTextDatum(vault);

		asr_spi(psprintf("SELECT vault_id, xmin FROM %s WHERE name = $1", asr_rel("asr_vaults")),
				1, &t, &v, NULL, true, 0);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("vault \"%s\" does not exist", vault),
					 errhint("asr_vaults lists the vaults; asr_add_vault() adds one.")));
		vault_id = DatumGetInt32(asr_spi_datum(0, 1, &isnull));
		if (TransactionIdIsCurrentTransactionId(DatumGetTransactionId(asr_spi_datum(0, 2, &isnull))))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot refresh vault \"%s\" in the transaction that added it", vault),
					 errhint("Commit first; the worker sees the vault only after that.")));
	}
	else
	{
		asr_spi(psprintf("SELECT count(*) FROM %s", asr_rel("asr_vaults")),
				0, NULL, NULL, NULL, true, 0);
		if (DatumGetInt64(asr_spi_datum(0, 1, &isnull)) == 0)
		{
			asr_unpin_search_path(nestlevel);
			SPI_finish();
			PG_RETURN_INT32(0);
		}
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();

	generation = asr_sync_request(vault_id);
	deadline = GetCurrentTimestamp() + timeout;
	ConditionVariablePrepareToSleep(&asr_shared->sync_cv);
	for (;;)
	{
		uint64		done;
		TimestampTz now;
		long		sleep_ms;

		SpinLockAcquire(&asr_shared->mutex);
		done = asr_shared->sync_done;
		SpinLockRelease(&asr_shared->mutex);
		if (done >= generation)
			break;
		now = GetCurrentTimestamp();
		if (now >= deadline)
		{
			pid_t		pid;
			char		last_error[256];

			ConditionVariableCancelSleep();
			SpinLockAcquire(&asr_shared->mutex);
			pid = asr_shared->worker_pid;
			strlcpy(last_error, asr_shared->last_error, sizeof(last_error));
			SpinLockRelease(&asr_shared->mutex);
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for the asr worker to refresh %s",
							vault ? psprintf("vault \"%s\"", vault) : "the vaults"),
					 pid == 0 ? errdetail("No asr worker is running.") :
					 last_error[0] ?
					 errdetail("The worker (pid %d) has not finished the refresh; its last error: %s", (int) pid, last_error) :
					 errdetail("The worker (pid %d) has not finished the refresh.", (int) pid),
					 errhint("The refresh goes on in the background; asr_worker_status shows the worker, asr_vaults.synced_at when it is done.")));
		}
		sleep_ms = (long) ((deadline - now + 999) / 1000);
		if (sleep_ms > 5000)
			sleep_ms = 5000;
		(void) ConditionVariableTimedSleep(&asr_shared->sync_cv, sleep_ms, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	/* the worker committed before it broadcast: a new snapshot sees it */
	values[0] = Int32GetDatum(vault_id);
	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT name, sync_error FROM %s WHERE ($1 = 0 OR vault_id = $1) "
					 "AND sync_error IS NOT NULL ORDER BY name LIMIT 1", asr_rel("asr_vaults")),
			1, types, values, NULL, false, 0);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("refresh of vault \"%s\" failed", asr_spi_text(0, 1)),
				 errdetail("%s", asr_spi_text(0, 2)),
				 errhint("asr_vaults.sync_error keeps the error until a refresh succeeds.")));
	asr_spi(psprintf("SELECT count(*) FROM %s WHERE ($1 = 0 OR vault_id = $1)", asr_rel("asr_items")),
			1, types, values, NULL, false, 0);
	nitems = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	PG_RETURN_INT32((int32) nitems);
}

/*
 * asr_item_upsert(vault, item) -> item_id: the sync's write, for a superuser.
 */
Datum
asr_item_upsert_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("vault and item must not be NULL")));
	asr_check_writable("asr_item_upsert");
	PG_RETURN_INT64(asr_item_upsert(PG_GETARG_INT32(0), PG_GETARG_JSONB_P(1)));
}

/*
 * asr_recovery_points_replace(item, points) -> number of points stored.
 */
Datum
asr_recovery_points_replace_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item and points must not be NULL")));
	asr_check_writable("asr_recovery_points_replace");
	PG_RETURN_INT32(asr_recovery_points_replace(PG_GETARG_INT64(0), PG_GETARG_JSONB_P(1)));
}
