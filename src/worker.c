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

/* Longest sleep between two cycles when nothing wakes the worker. */
#define ASR_WORKER_MAX_SLEEP_MS 10000L
/* How often to look for CREATE EXTENSION while it is missing. */
#define ASR_WORKER_NO_EXTENSION_SLEEP_MS 2000L

static MemoryContext cycle_context = NULL;

static long worker_cycle(void);
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
	cycle_context = AllocSetContextCreate(TopMemoryContext,
										  "asr worker cycle",
										  ALLOCSET_DEFAULT_SIZES);
	ereport(LOG,
			(errmsg("asr worker started in database \"%s\"", asr_database)));

	for (;;)
	{
		long		sleep_ms;
		MemoryContext oldcontext;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
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
			sleep_ms = worker_cycle();

		MemoryContextSwitchTo(oldcontext);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * One pass of work.  Returns how long the worker may sleep before the next
 * pass.  Each unit of work runs in its own short transaction; none stays
 * open across network I/O.
 */
static long
worker_cycle(void)
{
	bool		installed;

	pgstat_report_activity(STATE_RUNNING, "asr: checking for work");
	installed = extension_installed();

	SpinLockAcquire(&asr_shared->mutex);
	asr_shared->last_poll_at = GetCurrentTimestamp();
	SpinLockRelease(&asr_shared->mutex);

	if (!installed)
	{
		asr_worker_set_phase("no extension");
		pgstat_report_activity(STATE_IDLE, "asr: waiting for CREATE EXTENSION asr");
		return ASR_WORKER_NO_EXTENSION_SLEEP_MS;
	}

	asr_worker_set_phase("idle");
	pgstat_report_activity(STATE_IDLE, "asr: idle");
	return ASR_WORKER_MAX_SLEEP_MS;
}

/*
 * Is the extension installed in our database?  DROP EXTENSION may happen at
 * any time; the worker then simply idles until it is created again.
 */
static bool
extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid(ASR_EXTENSION_NAME, true));
	CommitTransactionCommand();
	pgstat_report_stat(false);
	return installed;
}
