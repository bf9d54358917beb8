/*-------------------------------------------------------------------------
 *
 * creds.c
 *	  Vaults as the worker sees them, and the bridge between the ARM client
 *	  and the token code.
 *
 * A vault row names a foreign server; the server and the worker's user
 * mapping give the endpoints and the credential (fdw.c), and auth.c keeps
 * one token state per credential.  Vaults are cached in the worker's
 * memory for a minute, and reloaded at once after SIGHUP or when a job
 * needs a vault whose credential could not be read, so that a DBA who
 * fixes a user mapping does not have to restart anything.
 *
 * A refused token request (wrong secret, unregistered certificate, IMDS
 * down) does not fail a job by itself: nothing was sent to Azure, and the
 * DBA can fix the mapping while the failover waits.  auth.c's words for
 * the refusal (OAuth error, AADSTS code, Entra's description, what to do;
 * never a secret) go to asr_worker_status at once and, through the
 * client's "no token: ..." answer, to the last_error of every job that
 * needed a token.
 *
 * IDENTIFICATION
 *	  src/creds.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "arm.h"
#include "asr.h"
#include "creds.h"
#include "fdw.h"
#include "util.h"

#define VAULT_CACHE_MS 60000

static MemoryContext vault_context = NULL;
static List *vaults = NIL;		/* of AsrVault * */

static const char *tok_bearer(void *cred, TimestampTz now);
static AsrHttpRequest *tok_request(void *cred, TimestampTz now);
static void tok_response(void *cred, const AsrHttpResponse *resp, TimestampTz now);
static bool tok_needs_refresh(void *cred, TimestampTz now);
static uint64 tok_generation(void *cred);
static void tok_invalidate(void *cred, uint64 generation);
static const char *tok_error(void *cred);
static TimestampTz tok_retry_at(void *cred);

const AsrTokenSource asr_token_source = {
	tok_bearer, tok_request, tok_response, tok_needs_refresh, tok_generation,
	tok_invalidate, tok_error, tok_retry_at
};

static const char *
tok_bearer(void *cred, TimestampTz now)
{
	AsrTokenState *st = (AsrTokenState *) cred;

	if (st == NULL || !asr_auth_token_usable(st, now))
		return NULL;
	return asr_auth_bearer(st);
}

static AsrHttpRequest *
tok_request(void *cred, TimestampTz now)
{
	AsrTokenState *st = (AsrTokenState *) cred;
	AsrHttpRequest *req;

	if (st == NULL || !asr_auth_needs_refresh(st, now))
		return NULL;
	req = asr_auth_build_request(st, now, CurrentMemoryContext);
	/* an unreadable certificate or a wrong password: the DBA sees it too */
	if (req == NULL && asr_auth_last_error(st))
		asr_worker_set_error(asr_auth_last_error(st));
	return req;
}

static void
tok_response(void *cred, const AsrHttpResponse *resp, TimestampTz now)
{
	AsrTokenState *st = (AsrTokenState *) cred;

	asr_auth_handle_response(st, resp, now);
	if (asr_auth_last_error(st))
		asr_worker_set_error(asr_auth_last_error(st));
}

static bool
tok_needs_refresh(void *cred, TimestampTz now)
{
	return cred != NULL && asr_auth_needs_refresh((AsrTokenState *) cred, now);
}

static uint64
tok_generation(void *cred)
{
	return cred ? asr_auth_generation((AsrTokenState *) cred) : 0;
}

static void
tok_invalidate(void *cred, uint64 generation)
{
	(void) asr_auth_invalidate((AsrTokenState *) cred, generation);
}

static const char *
tok_error(void *cred)
{
	return asr_auth_last_error((AsrTokenState *) cred);
}

static TimestampTz
tok_retry_at(void *cred)
{
	return asr_auth_next_attempt((AsrTokenState *) cred);
}

void
asr_vaults_invalidate(void)
{
	ListCell   *lc;

	foreach(lc, vaults)
		((AsrVault *) lfirst(lc))->loaded_at = 0;
}

/*
 * Resolve the credential of a vault.  Errors (no user mapping, a secret
 * file with loose permissions...) are caught and kept as the vault's
 * error: one misconfigured vault never stops the others.
 */
static void
vault_load_credential(AsrVault *v)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			role = GetUserId();

	v->auth = NULL;
	v->error = NULL;
	PG_TRY();
	{
		AsrCredential *cred;
		MemoryContext tmp = AllocSetContextCreate(cxt, "asr credential",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(tmp);

		cred = asr_credential_lookup(v->server, role);
		MemoryContextSwitchTo(vault_context);
		v->auth = asr_auth_for(cred);
		v->arm_endpoint = pstrdup(cred->arm_endpoint);
		MemoryContextSwitchTo(old);
		/* wipes the secrets of this copy; auth.c keeps its own */
		MemoryContextDelete(tmp);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		v->error = MemoryContextStrdup(vault_context, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * The vault with the given id, from the cache or the table.  Runs inside
 * the caller's transaction.  NULL when the vault no longer exists.
 */
AsrVault *
asr_vault_get(int vault_id, bool force_reload)
{
	ListCell   *lc;
	AsrVault   *v = NULL;
	TimestampTz now = GetCurrentTimestamp();
	Datum		arg = Int32GetDatum(vault_id);
	Oid			argtype = INT4OID;
	MemoryContext old;
	int			ret;

	if (vault_context == NULL)
		vault_context = AllocSetContextCreate(TopMemoryContext, "asr vaults",
											  ALLOCSET_SMALL_SIZES);
	foreach(lc, vaults)
	{
		AsrVault   *c = (AsrVault *) lfirst(lc);

		if (c->vault_id == vault_id)
			v = c;
	}
	if (v != NULL && !force_reload && v->auth != NULL &&
		!TimestampDifferenceExceeds(v->loaded_at, now, VAULT_CACHE_MS))
		return v;

	SPI_connect();
	ret = SPI_execute_with_args(psprintf("SELECT name, server, subscription_id::text, resource_group, vault_name"
										 "  FROM %s WHERE vault_id = $1", asr_rel("asr_vaults")),
								1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed == 0)
	{
		SPI_finish();
		if (v != NULL)
			vaults = list_delete_ptr(vaults, v);
		return NULL;
	}
	old = MemoryContextSwitchTo(vault_context);
	if (v == NULL)
	{
		v = palloc0(sizeof(AsrVault));
		v->vault_id = vault_id;
		vaults = lappend(vaults, v);
	}
	v->name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	v->server = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	v->subscription = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	v->resource_group = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	v->vault_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
	v->vault_path = asr_arm_vault_path(v->subscription, v->resource_group, v->vault_name);
	MemoryContextSwitchTo(old);
	SPI_finish();

	vault_load_credential(v);
	v->loaded_at = now;
	return v;
}

/*
 * Every vault id, inside the caller's transaction; the list is allocated
 * in cxt so that it outlives the transaction.
 */
List *
asr_vault_ids(MemoryContext cxt)
{
	List	   *ids = NIL;
	uint64		i;

	SPI_connect();
	if (SPI_execute(psprintf("SELECT vault_id FROM %s WHERE NOT paused ORDER BY vault_id", asr_rel("asr_vaults")),
					true, 0) == SPI_OK_SELECT)
	{
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			MemoryContext old = MemoryContextSwitchTo(cxt);

			ids = lappend_int(ids, DatumGetInt32(d));
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return ids;
}

void
asr_vault_call_spec(AsrVault *v, AsrCallSpec *spec, const char *method,
					const char *url, bool is_write)
{
	memset(spec, 0, sizeof(AsrCallSpec));
	spec->method = method;
	spec->url = url;
	spec->subscription = v->subscription;
	spec->is_write = is_write;
	spec->arm_base = v->arm_endpoint;
	spec->cred = v->auth;
}
