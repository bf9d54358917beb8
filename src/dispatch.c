/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *	  Jobs in flight: their contexts, their transactions, and picking up
 *	  work from the tables.
 *
 * Each job the worker works on has a JobCtx with its own memory context
 * and a phase.  A phase sends one ARM call (submit.c, poll.c); its
 * completion (run from the worker loop, never from libcurl) records what
 * Azure said in a short transaction of its own -- an ERROR there is
 * contained to that job, which records it and waits -- and picks the next
 * phase.  A job leaves the set of active jobs whenever it has to wait
 * (until its next poll, say); the tables hold everything needed to pick it
 * up again, so a restarted worker continues exactly where the last one
 * stopped.  Finished contexts are reaped here, never from inside a
 * completion.
 *
 * IDENTIFICATION
 *	  src/dispatch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "asr.h"
#include "dispatch.h"
#include "dispatch_int.h"
#include "sync.h"
#include "txn.h"
#include "util.h"

static MemoryContext dispatch_context = NULL;
static List *active = NIL;		/* of JobCtx * */

static void job_step_failed(JobCtx *jc, ErrorData *edata);




/*
 * Record a local error on a job and let it wait before the next try.  Used
 * when a step of one job raised an ERROR: the transaction is gone, the job
 * stays where it was, and the other jobs go on.
 */
static void
job_step_failed(JobCtx *jc, ErrorData *cause)
{
	AsrJobUpdate u = {0};
	MemoryContext old = CurrentMemoryContext;
	ErrorData  *edata;

	u.progress = -1;
	u.last_error = psprintf("asr worker: %s", cause->message);
	u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 asr_arm_backoff_ms(4));
	jc->finished = true;
	PG_TRY();
	{
		asr_tx_begin("asr: recording a job error");
		if (asr_tx_extension_present())
			(void) asr_job_transition(jc->job_id, NULL, &u);
		asr_tx_commit();
		asr_worker_set_error(u.last_error);
	}
	PG_CATCH();
	{
		/*
		 * Not even the error could be recorded (the tables are gone or
		 * broken): say so in the log; the job, if it still exists, is picked
		 * up again at its next due time.
		 */
		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		asr_tx_abort();
		ereport(LOG,
				(errmsg("asr: could not record an error on job " INT64_FORMAT ": %s",
						jc->job_id, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Run fn for one job in its own transaction; an ERROR is contained to that
 * job (per-job error handling: the transaction is aborted, the job
 * records the error and waits, the worker goes on).
 */
void
asr_dx_run_step(JobCtx *jc, void (*fn) (JobCtx *jc, void *arg), void *arg)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		asr_tx_begin("asr: recording Azure's answer");
		/* what a step keeps (the job, Azure's document) lives with the job */
		MemoryContextSwitchTo(jc->cxt);
		if (asr_tx_extension_present())
			fn(jc, arg);
		else
			jc->finished = true;	/* DROP EXTENSION: the job is gone */
		asr_tx_commit();
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		asr_tx_abort();
		job_step_failed(jc, edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* ----------------------------------------------------------------
 * helpers
 * ---------------------------------------------------------------- */

const char *
asr_dx_required_operation(const char *action)
{
	if (strcmp(action, "failover") == 0)
		return "UnplannedFailover";
	if (strcmp(action, "test_failover") == 0)
		return "TestFailover";
	if (strcmp(action, "test_failover_cleanup") == 0)
		return "TestFailoverCleanup";
	if (strcmp(action, "change_recovery_point") == 0)
		return "ChangePit";
	if (strcmp(action, "commit") == 0)
		return "Commit";
	if (strcmp(action, "reprotect") == 0)
		return "SwitchProtection";
	if (strcmp(action, "cancel_failover") == 0)
		return "CancelFailover";
	return NULL;
}

AsrVault *
asr_dx_vault(JobCtx *jc)
{
	return asr_vault_get(jc->vault_id, false);
}

/* the vault of an item, inside a transaction */
static int
item_vault_id(int64 item_id)
{
	Oid			type = INT8OID;
	Datum		val = Int64GetDatum(item_id);
	int			nestlevel;
	int			vault_id = 0;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT vault_id FROM %s WHERE item_id = $1", asr_rel("asr_items")),
			1, &type, &val, NULL, true, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;

		vault_id = DatumGetInt32(asr_spi_datum(0, 1, &isnull));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return vault_id;
}

void
asr_dx_update(int64 job_id, const char *expected, AsrJobUpdate *u)
{
	(void) asr_job_transition(job_id, expected, u);
}

/* finish a job with an error of ours or Azure's */
void
asr_dx_fail(JobCtx *jc, const char *code, const char *message)
{
	AsrJobUpdate u = {0};

	u.state = "failed";
	u.progress = -1;
	u.error_code = code;
	u.error_message = message;
	u.detail = psprintf("%s: %s", code, message);
	u.last_error = "";
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

void
asr_dx_wait(JobCtx *jc, long ms, const char *last_error)
{
	AsrJobUpdate u = {0};

	u.progress = -1;
	u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	u.last_error = last_error;
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

char *
asr_dx_json_text(JsonbContainer *c, const char *key)
{
	return c ? asr_json_string(c, key) : NULL;
}

/* ----------------------------------------------------------------
 * picking up work
 * ---------------------------------------------------------------- */

bool
asr_dx_is_active(int64 job_id)
{
	ListCell   *lc;

	foreach(lc, active)
		if (((JobCtx *) lfirst(lc))->job_id == job_id)
			return true;
	return false;
}

JobCtx *
asr_dx_new_ctx(int64 job_id)
{
	MemoryContext old = MemoryContextSwitchTo(dispatch_context);
	JobCtx	   *jc = palloc0(sizeof(JobCtx));

	jc->job_id = job_id;
	jc->cxt = AllocSetContextCreate(dispatch_context, "asr job", ALLOCSET_SMALL_SIZES);
	active = lappend(active, jc);
	MemoryContextSwitchTo(old);
	return jc;
}

/* load the job into its context and choose the phase it resumes at */
bool
asr_dx_load(JobCtx *jc)
{
	MemoryContext old = MemoryContextSwitchTo(jc->cxt);
	bool		ok = asr_job_load(jc->job_id, true, &jc->job);

	MemoryContextSwitchTo(old);
	if (!ok || asr_job_state_is_final(jc->job.state))
		return false;
	jc->vault_id = item_vault_id(jc->job.item_id);
	return true;
}

/* delete finished contexts (never from inside a call's completion) */
static void
reap(void)
{
	ListCell   *lc;
	List	   *keep = NIL;
	MemoryContext old = MemoryContextSwitchTo(dispatch_context);

	foreach(lc, active)
	{
		JobCtx	   *jc = (JobCtx *) lfirst(lc);

		/*
		 * a vault's job-list poll or lookup may still name it: keep it until
		 * then
		 */
		if (jc->finished && jc->vp == NULL && !jc->lookup)
		{
			MemoryContextDelete(jc->cxt);
			pfree(jc);
		}
		else
			keep = lappend(keep, jc);
	}
	list_free(active);
	active = keep;

	asr_dx_reap_polls();
	MemoryContextSwitchTo(old);
}

/*
 * When the next waiting job comes due (its next_poll_at), inside a
 * transaction; far in the future when none waits.
 */
static TimestampTz
next_due(void)
{
	TimestampTz next = DT_NOEND;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT min(next_poll_at) FROM %s "
					 "WHERE state = ANY ('{submitting,running,suspended}')",
					 asr_rel("asr_jobs")),
			0, NULL, NULL, NULL, true, 1);
	if (SPI_processed == 1 && !asr_spi_isnull(0, 1))
	{
		bool		isnull;

		next = DatumGetTimestampTz(asr_spi_datum(0, 1, &isnull));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return next;
}

int
asr_dispatch_active(void)
{
	return list_length(active);
}

/*
 * Claim queued jobs (each marked 'submitting' and committed before any
 * byte goes to Azure) and pick up jobs due for a poll, a cancel/resume or
 * a reconciliation.  Runs outside a transaction.
 */
TimestampTz
asr_dispatch_collect(void)
{
	int64	   *due;
	int			n;
	int			i;
	TimestampTz next;
	List	   *started = NIL;
	List	   *polls = NIL;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	if (dispatch_context == NULL)
		dispatch_context = AllocSetContextCreate(TopMemoryContext, "asr dispatch",
												 ALLOCSET_DEFAULT_SIZES);
	reap();
	if (list_length(active) >= MAX_ACTIVE_JOBS)
		return GetCurrentTimestamp();

	asr_tx_begin("asr: claiming queued jobs");
	if (!asr_tx_extension_present())
	{
		/* dropped since the worker looked: nothing to claim */
		asr_tx_commit();
		return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	}
	while (list_length(active) < MAX_ACTIVE_JOBS && list_length(started) < CLAIM_PER_TURN)
	{
		int64		job_id = asr_job_claim_next();
		JobCtx	   *jc;
		AsrJobUpdate u = {0};

		if (job_id == 0)
			break;
		jc = asr_dx_new_ctx(job_id);
		if (!asr_dx_load(jc))
		{
			jc->finished = true;
			continue;
		}
		u.state = "submitting";
		u.detail = psprintf("sending to Azure with client request id %s", jc->job.client_request_id);
		u.progress = -1;

		/*
		 * If this worker dies with the request in flight, the next one must
		 * not reconcile before the request has either reached Azure or
		 * timed out: only then does "not in Azure's job list" mean "never
		 * arrived".
		 */
		u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECONCILE_DELAY_MS());
		asr_dx_update(job_id, "queued", &u);
		jc->phase = jc->job.request == NULL ? PH_POST : PH_CHECK_ITEM;
		{
			/* the list must outlive this transaction */
			MemoryContext old = MemoryContextSwitchTo(caller);

			started = lappend(started, jc);
			MemoryContextSwitchTo(old);
		}
	}
	asr_tx_commit();

	/* the 'submitting' marks are committed: now, and only now, send */
	asr_tx_begin("asr: starting requests");
	if (!asr_tx_extension_present())
	{
		foreach(lc, started)
			((JobCtx *) lfirst(lc))->finished = true;
		asr_tx_commit();
		return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	}
	foreach(lc, started)
		asr_dx_start_phase((JobCtx *) lfirst(lc));

	due = palloc(sizeof(int64) * 256);
	n = asr_jobs_due(GetCurrentTimestamp(), due, 256);
	for (i = 0; i < n && list_length(active) < MAX_ACTIVE_JOBS; i++)
	{
		JobCtx	   *jc;

		if (asr_dx_is_active(due[i]))
			continue;
		jc = asr_dx_new_ctx(due[i]);
		if (!asr_dx_load(jc))
		{
			jc->finished = true;
			continue;
		}
		if (strcmp(jc->job.state, "submitting") == 0)
			jc->phase = PH_LIST_JOBS;
		else if (jc->job.control != NULL && jc->job.azure_job != NULL)
			jc->phase = PH_CONTROL;
		else if (jc->job.azure_job != NULL)
		{
			/* polls wait here to be grouped by vault */
			MemoryContext old = MemoryContextSwitchTo(caller);

			jc->phase = PH_POLL;
			polls = lappend(polls, jc);
			MemoryContextSwitchTo(old);
			continue;
		}
		else
			jc->phase = PH_LIST_JOBS;	/* accepted, its job not known yet */
		asr_dx_start_phase(jc);
	}
	asr_dx_start_polls(polls);
	/* the jobs looked for since the last turn, one listing per vault */
	asr_dx_start_lookups();
	next = next_due();
	asr_tx_commit();
	return next;
}
