/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The asr background worker: the loop, its signals and its waits.
 *
 * One static worker serves the database named by asr.database.  It sleeps
 * on its latch (woken at commit by backends that queued jobs, by SIGHUP,
 * by SIGTERM and by ProcSignalBarriers such as DROP DATABASE's) and runs
 * one cycle per wake-up or timeout.  On a hot standby it only idles: it
 * writes nothing until the server is promoted, then works normally.
 *
 * Every error ends the process with exit code 1 (ERROR is promoted to
 * FATAL in a background worker without an exception stack), and the
 * postmaster starts a fresh worker after bgw_restart_time; the cluster
 * itself is never restarted by anything that goes wrong in here.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "asr.h"
#include "auth.h"
#include "client.h"
#include "creds.h"
#include "dispatch.h"
#include "http.h"
#include "itemread.h"
#include "sync.h"
#include "txn.h"

/*
 * Longest sleep between two looks at the tables when nothing wakes the
 * worker (a safety sweep: PREPARE TRANSACTION does not wake it), and how
 * often it looks while requests are in flight.
 */
#define ASR_WORKER_IDLE_SLEEP_MS 10000L
#define ASR_WORKER_BUSY_SLEEP_MS 250L
/* How often to look for CREATE EXTENSION while it is missing. */
#define ASR_WORKER_NO_EXTENSION_SLEEP_MS 2000L

static MemoryContext cycle_context = NULL;
static bool work_pending = true;	/* woken, or just started */
static TimestampTz next_collect = 0;	/* when jobs or a sync come due */
static TimestampTz last_collect = 0;

static long worker_cycle(bool work_pending);
static void worker_forget_secrets(int code, Datum arg);
static bool extension_installed(void);

/*
 * Entry point named in the BackgroundWorker registration.
 */
void
asr_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(asr_database,
										 asr_worker_role[0] != '\0' ? asr_worker_role : NULL,
										 0);

	asr_worker_publish_start();
	before_shmem_exit(worker_forget_secrets, (Datum) 0);
	asr_http_init();
	asr_client_init(&asr_token_source);
	cycle_context = AllocSetContextCreate(TopMemoryContext,
										  "asr worker cycle",
										  ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("asr worker started in database \"%s\"", asr_database)));

	for (;;)
	{
		long		sleep_ms;
		MemoryContext oldcontext;
		bool		latch_set;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a DBA may have fixed a credential or an endpoint */
			asr_vaults_invalidate();
		}

		MemoryContextReset(cycle_context);
		oldcontext = MemoryContextSwitchTo(cycle_context);

		if (RecoveryInProgress())
		{
			/* A standby: the primary's worker owns the jobs. Write nothing. */
			asr_worker_set_phase("standby");
			pgstat_report_activity(STATE_IDLE, "asr: hot standby, idle until promotion");
			sleep_ms = 1000L;
		}
		else
			sleep_ms = worker_cycle(work_pending);
		/* a commit in there leaves TopMemoryContext current: never keep it */
		MemoryContextSwitchTo(cycle_context);

		/*
		 * Sleep on the latch and the sockets of requests in flight together:
		 * SIGTERM, SIGHUP, postmaster death and DROP DATABASE's barrier are
		 * noticed while requests run.
		 */
		asr_item_read_flush();	/* the item reads asked for this turn */
		latch_set = asr_client_pump(sleep_ms);
		work_pending = latch_set;
		MemoryContextSwitchTo(oldcontext);
	}
}

/*
 * One pass of work.  Returns how long the worker may sleep before the next
 * pass.  Each unit of work runs in its own short transaction; none stays
 * open across network I/O.
 */
static long
worker_cycle(bool woken)
{
	bool		installed;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_jobs;
	TimestampTz next_sync;
	bool		busy = asr_client_pending() > 0 || asr_dispatch_active() > 0 ||
		asr_item_read_pending();

	/*
	 * Look at the tables only when woken at commit, when something comes
	 * due, or (while requests run) a few times a second: an idle worker
	 * runs no query at all between due times.
	 */
	if (!woken && now < next_collect &&
		!(busy && TimestampDifferenceExceeds(last_collect, now, ASR_WORKER_BUSY_SLEEP_MS)))
		return Min(TimestampDifferenceMilliseconds(now, next_collect),
				   busy ? ASR_WORKER_BUSY_SLEEP_MS : ASR_WORKER_IDLE_SLEEP_MS);
	last_collect = now;

	pgstat_report_activity(STATE_RUNNING, "asr: checking for work");
	installed = extension_installed();

	SpinLockAcquire(&asr_shared->mutex);
	asr_shared->last_poll_at = now;
	SpinLockRelease(&asr_shared->mutex);

	if (!installed)
	{
		asr_worker_set_phase("no extension");
		pgstat_report_activity(STATE_IDLE, "asr: waiting for CREATE EXTENSION asr");
		return ASR_WORKER_NO_EXTENSION_SLEEP_MS;
	}

	next_jobs = asr_dispatch_collect();
	next_sync = asr_sync_collect();
	next_collect = Min(next_jobs, next_sync);
	next_collect = Min(next_collect, TimestampTzPlusMilliseconds(now, ASR_WORKER_IDLE_SLEEP_MS));

	if (asr_client_pending() > 0 || asr_dispatch_active() > 0)
	{
		asr_worker_set_phase("working");
		pgstat_report_activity(STATE_IDLE, "asr: waiting for Azure");
		return ASR_WORKER_BUSY_SLEEP_MS;
	}
	asr_worker_set_phase("idle");
	pgstat_report_activity(STATE_IDLE, "asr: idle");
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_collect), 0);
}

/*
 * Tokens and the secrets behind them live only in this process: wipe them
 * however it exits.
 */
static void
worker_forget_secrets(int code, Datum arg)
{
	asr_auth_forget_all();
}

/*
 * Is the extension installed in our database?  DROP EXTENSION may happen at
 * any time; the worker then simply idles until it is created again.
 */
static bool
extension_installed(void)
{
	bool		installed;

	asr_tx_begin("asr: checking for work");
	installed = OidIsValid(get_extension_oid(ASR_EXTENSION_NAME, true));
	asr_tx_commit();
	return installed;
}
