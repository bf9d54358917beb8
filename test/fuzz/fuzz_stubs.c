/*-------------------------------------------------------------------------
 *
 * fuzz_stubs.c
 *	  The worker's engine around submit.c, poll.c, sync.c and itemread.c,
 *	  replaced for the worker targets of fuzz_worker.c.
 *
 * asr_client_call() queues a call for fuzz_worker.c to answer (and fails
 * the input when an action, cancel or resume is POSTed twice);
 * asr_tx_begin/commit/abort are subtransactions of the input's; the job
 * steps of dispatch.c run in one, with an ERROR contained as the worker
 * contains it (and a finding when it does not come from SQL or items.c);
 * the vault, the shared-memory requests and the job table's writes are
 * fixed or checked, not stored.  The clock of the code under test can be
 * moved on (GetCurrentTimestamp), and the memory contexts it creates are
 * free()d on delete so that ASan sees a use after MemoryContextDelete().
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_stubs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "arm.h"
#include "asr.h"
#include "client.h"
#include "creds.h"
#include "dispatch.h"
#include "dispatch_int.h"
#include "items.h"
#include "json.h"
#include "jobs.h"
#include "sync.h"
#include "txn.h"

#include "fuzz_worker.h"

/* ----------------------------------------------------------------
 * the engine, stubbed
 * ---------------------------------------------------------------- */


List	   *fuzz_calls = NIL;
List	   *fuzz_posts = NIL;
MemoryContext fuzz_input_cxt = NULL;
AsrVault   *fuzz_vault = NULL;
bool		fuzz_debug = false;
TimestampTz fuzz_clock_skew = 0;
int			fuzz_tx_depth = 0;

static uint64 sync_generation = 0;

#define MAX_CONTAINED 64
static char *contained[MAX_CONTAINED];
static int	ncontained = 0;

AsrCall *
asr_client_call(const AsrCallSpec *spec, MemoryContext cxt, AsrCallDone done, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(fuzz_input_cxt);
	FuzzCall   *c = palloc0(sizeof(FuzzCall));

	if (spec->url == NULL || spec->method == NULL)
		elog(ERROR, "a call without a method or URL");
	/* at most once: an action, cancel or resume is never sent twice */
	if (strcmp(spec->method, "POST") == 0)
	{
		ListCell   *lc;

		foreach(lc, fuzz_posts)
			if (strcmp((char *) lfirst(lc), spec->url) == 0)
			{
				fprintf(stderr, "asr_fuzz: POST %s sent twice\n", spec->url);
				fflush(stderr);
				abort();
			}
		fuzz_posts = lappend(fuzz_posts, pstrdup(spec->url));
	}
	c->done = done;
	c->arg = arg;
	c->method = pstrdup(spec->method);
	c->url = pstrdup(spec->url);
	c->arm_base = spec->arm_base;
	fuzz_calls = lappend(fuzz_calls, c);
	MemoryContextSwitchTo(old);
	return (AsrCall *) c;
}

void
asr_vault_call_spec(AsrVault *v, AsrCallSpec *spec, const char *method,
					const char *url, bool is_write)
{
	memset(spec, 0, sizeof(*spec));
	spec->method = method;
	spec->url = url;
	spec->is_write = is_write;
	spec->subscription = v->subscription;
	spec->arm_base = v->arm_endpoint;
	spec->cred = v->auth;
}

/*
 * The real one reads asr_vaults whenever its cached row is a minute old or
 * a SIGHUP came, so it may only be called inside a worker transaction: a
 * call from a completion outside one crashed the worker (and took the
 * cluster through crash recovery) until reconcile.c's next-page fix.
 */
AsrVault *
asr_vault_get(int vault_id, bool force_reload)
{
	if (fuzz_tx_depth == 0)
	{
		fprintf(stderr, "asr_fuzz: asr_vault_get outside a worker transaction\n");
		fflush(stderr);
		abort();
	}
	return vault_id == fuzz_vault->vault_id ? fuzz_vault : NULL;
}

List *
asr_vault_ids(MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *l = list_make1_int(fuzz_vault->vault_id);

	MemoryContextSwitchTo(old);
	return l;
}

bool
asr_sync_pending(uint64 *generation, int32 *vault_id)
{
	*generation = ++sync_generation;
	*vault_id = 0;
	return true;
}

void
asr_sync_finished(uint64 generation)
{
}

void
asr_worker_set_error(const char *error)
{
}

/*
 * The clock of the code under test (asr_fuzz.so is linked with -Bsymbolic,
 * so its fuzz_calls come here; PostgreSQL's own go to PostgreSQL's): real time
 * plus a skew that pump() advances when the worker holds work back for a
 * while (item reads wait a moment for more reads of their vault).
 */

TimestampTz
GetCurrentTimestamp(void)
{
	struct timeval tp;

	gettimeofday(&tp, NULL);
	return (TimestampTz) (tp.tv_sec -
						  ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + tp.tv_usec + fuzz_clock_skew;
}

/*
 * Every memory context asr's code creates (the Makefile renames its fuzz_calls
 * to come here) is made a little off PostgreSQL's standard sizes, so that
 * MemoryContextDelete() frees it instead of keeping it on the freelist of
 * deleted contexts: a use after the delete is then a use after free() that
 * ASan reports.
 */
#undef AllocSetContextCreateInternal
extern MemoryContext AllocSetContextCreateInternal(MemoryContext parent, const char *name,
												   Size minContextSize, Size initBlockSize,
												   Size maxBlockSize);
extern MemoryContext fuzz_AllocSetContextCreateInternal(MemoryContext parent, const char *name,
														Size minContextSize, Size initBlockSize,
														Size maxBlockSize);

MemoryContext
fuzz_AllocSetContextCreateInternal(MemoryContext parent, const char *name,
								   Size minContextSize, Size initBlockSize, Size maxBlockSize)
{
	return AllocSetContextCreateInternal(parent, name, minContextSize,
										 initBlockSize + MAXIMUM_ALIGNOF,
										 Max(maxBlockSize, initBlockSize + MAXIMUM_ALIGNOF));
}

/* the worker's short transactions: subtransactions of the input's */
static MemoryContext tx_callers[32];

void
asr_tx_begin(const char *what)
{
	if (fuzz_tx_depth >= lengthof(tx_callers))
		elog(ERROR, "transactions nested %d deep", fuzz_tx_depth);
	tx_callers[fuzz_tx_depth++] = CurrentMemoryContext;
	BeginInternalSubTransaction(NULL);
}

void
asr_tx_commit(void)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(tx_callers[--fuzz_tx_depth]);
}

void
asr_tx_abort(void)
{
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(tx_callers[--fuzz_tx_depth]);
}

bool
asr_tx_extension_present(void)
{
	return true;
}

/*
 * A document the worker could not use, once per kind (the message up to
 * its first quote or digit): listed by test/fuzz/run, not a failure.
 */
void
fuzz_note_refusal(const char *msg)
{
	size_t		n = strcspn(msg, "\"0123456789");
	int			i;

	for (i = 0; i < ncontained; i++)
		if (strncmp(contained[i], msg, n) == 0 && contained[i][n] == '\0')
			return;
	if (ncontained < MAX_CONTAINED)
	{
		contained[ncontained++] = MemoryContextStrdup(TopMemoryContext, pnstrdup(msg, n));
		fprintf(stderr, "asr_fuzz: contained ERROR: %s\n", msg);
	}
}

/*
 * An ERROR caught where the worker catches it.  Raised by an SQL statement
 * (SPI's context line) or by the checks of items.c and itemstore.c: the
 * table refused the document, which the worker records; anything else
 * broke a promise.
 */
static void
caught(ErrorData *e)
{
	bool		sql = (e->context && strstr(e->context, "SQL statement") != NULL) ||
		(e->filename && (strcmp(e->filename, "items.c") == 0 ||
						 strcmp(e->filename, "itemstore.c") == 0 ||
						 strcmp(e->filename, "util.c") == 0));
	const char *msg = e->message ? e->message : "(no message)";

	if (!sql)
	{
		fprintf(stderr, "asr_fuzz: the worker raised ERROR: %s (%s:%d)\n",
				msg, e->filename ? e->filename : "?", e->lineno);
		fflush(stderr);
		abort();
	}
	fuzz_note_refusal(msg);
}

/* dispatch.c: a job's step in its own transaction, an ERROR contained */
void
asr_dx_run_step(JobCtx *jc, void (*fn) (JobCtx *jc, void *arg), void *arg)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		asr_tx_begin("fuzz step");
		MemoryContextSwitchTo(jc->cxt);
		fn(jc, arg);
		asr_tx_commit();
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(old);
		e = CopyErrorData();
		FlushErrorState();
		asr_tx_abort();
		caught(e);
		jc->finished = true;
	}
	PG_END_TRY();
}

const char *
asr_dx_required_operation(const char *action)
{
	static const char *const map[][2] = {
		{"failover", "UnplannedFailover"}, {"test_failover", "TestFailover"},
		{"test_failover_cleanup", "TestFailoverCleanup"},
		{"change_recovery_point", "ChangePit"}, {"commit", "Commit"},
		{"reprotect", "SwitchProtection"}, {"cancel_failover", "CancelFailover"}};
	int			i;

	for (i = 0; i < lengthof(map); i++)
		if (strcmp(action, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

AsrVault *
asr_dx_vault(JobCtx *jc)
{
	return asr_vault_get(jc->vault_id, false);
}

/* what would go to asr_jobs: every string must be readable */
void
asr_dx_update(int64 job_id, const char *expected, AsrJobUpdate *u)
{
	const char *const s[] = {u->state, u->detail, u->azure_job, u->azure_state,
		u->error_code, u->error_message, u->used_recovery_point, u->new_item_arm_id,
	u->operation_url, u->location_url, u->last_error};
	int			i;

	for (i = 0; i < lengthof(s); i++)
		if (s[i] && !pg_verify_mbstr(GetDatabaseEncoding(), s[i], strlen(s[i]), true))
			elog(ERROR, "a job update is not valid in the database encoding");
	if (u->progress < -1 || u->progress > 100)
		elog(ERROR, "progress %d out of range", u->progress);
	if (u->tasks)
	{
		char	   *t = JsonbToCString(NULL, &u->tasks->root, VARSIZE(u->tasks));

		if (!pg_verify_mbstr(GetDatabaseEncoding(), t, strlen(t), true))
			elog(ERROR, "a job's tasks are not valid in the database encoding");
	}
}

void
asr_dx_fail(JobCtx *jc, const char *code, const char *message)
{
	AsrJobUpdate u = {0};

	u.state = "failed";
	u.progress = -1;
	u.error_code = code;
	u.error_message = message;
	u.detail = psprintf("%s: %s", code, message);
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

void
asr_dx_wait(JobCtx *jc, long ms, const char *last_error)
{
	AsrJobUpdate u = {0};

	u.progress = -1;
	u.last_error = last_error;
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

char *
asr_dx_json_text(JsonbContainer *c, const char *key)
{
	return c ? asr_json_string(c, key) : NULL;
}

bool
asr_job_load(int64 job_id, bool lock, AsrJob *job)
{
	return true;				/* the harness filled jc->job */
}

bool
asr_job_state_is_final(const char *state)
{
	return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
		strcmp(state, "cancelled") == 0;
}

/* the vault poll must not take on more jobs than the harness made */
bool
asr_dx_is_active(int64 job_id)
{
	return true;
}

int
asr_dispatch_active(void)
{
	return 0;
}

JobCtx *
asr_dx_new_ctx(int64 job_id)
{
	elog(ERROR, "no new job contexts in the harness");
	return NULL;
}

bool
asr_dx_load(JobCtx *jc)
{
	return false;
}
