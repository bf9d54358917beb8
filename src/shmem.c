/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The worker's shared-memory block: who it is, how to wake it, and the
 *	  status it publishes for asr_worker_status.
 *
 * Backends never talk to Azure; they record jobs and wake the worker.  The
 * wake-up happens at commit (an XactCallback registered once per backend),
 * so a rolled-back transaction sends nothing and does not even disturb the
 * worker.  Only shared data lives here: the latch pointer belongs to the
 * worker's PGPROC and is cleared by the worker before it exits.
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "asr.h"

AsrSharedState *asr_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool wake_at_commit = false;
static bool wake_waiters_at_commit = false;
static bool xact_callback_registered = false;

static void asr_shmem_request(void);
static void asr_shmem_startup(void);
static void asr_xact_callback(XactEvent event, void *arg);
static void asr_worker_detach(int code, Datum arg);

/*
 * Chain our hooks; called from _PG_init while the postmaster loads us.
 */
void
asr_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = asr_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = asr_shmem_startup;
}

/*
 * PostgreSQL 15 accepts space requests only from this hook.
 */
static void
asr_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AsrSharedState)));
}

/*
 * Create or attach to the block.  Runs in the postmaster and, on
 * EXEC_BACKEND builds, in every child.
 */
static void
asr_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	asr_shared = ShmemInitStruct("asr", sizeof(AsrSharedState), &found);
	if (!found)
	{
		memset(asr_shared, 0, sizeof(AsrSharedState));
		SpinLockInit(&asr_shared->mutex);
		ConditionVariableInit(&asr_shared->job_cv);
		ConditionVariableInit(&asr_shared->sync_cv);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Wake the worker now, if one runs.  Cheap and safe to call from any
 * backend; a missing worker is not an error (the worker sweeps the queue
 * when it starts).
 */
void
asr_wake_worker(void)
{
	Latch	   *latch;

	if (asr_shared == NULL)
		return;
	SpinLockAcquire(&asr_shared->mutex);
	latch = asr_shared->worker_latch;
	asr_shared->wakeups++;
	SpinLockRelease(&asr_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Ask for a wake-up when the current transaction commits.  Used by every
 * function that queues work: the worker must not see (or look for) a job
 * before the transaction that created it is visible.  PREPARE TRANSACTION
 * does not wake the worker; its periodic sweep picks such jobs up.
 */
void
asr_wake_worker_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(asr_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * Ask for asr_wait callers to be woken when the current transaction
 * commits: a job changed, and they must see the change only once it is
 * visible.  Nobody is woken for a rollback.
 */
void
asr_wake_waiters_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(asr_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_waiters_at_commit = true;
}

/*
 * asr_sync: ask the worker to refresh one vault (vault_id) or all (0) and
 * wake it now, outside any transaction's visibility: the caller waits for
 * the answer inside its transaction.  Two different vaults requested
 * before the worker gets to them merge into "all".  Returns the generation
 * to wait for with asr_sync_finished's broadcast.
 */
uint64
asr_sync_request(int32 vault_id)
{
	uint64		generation;

	SpinLockAcquire(&asr_shared->mutex);
	if (asr_shared->sync_requested == asr_shared->sync_done)
		asr_shared->sync_vault_id = vault_id;
	else if (asr_shared->sync_vault_id != vault_id)
		asr_shared->sync_vault_id = 0;
	generation = ++asr_shared->sync_requested;
	SpinLockRelease(&asr_shared->mutex);
	asr_wake_worker();
	return generation;
}

/*
 * The worker: is a refresh requested?  Returns the generation to pass to
 * asr_sync_finished() once done, and the vault (0 = all).
 */
bool
asr_sync_pending(uint64 *generation, int32 *vault_id)
{
	bool		pending;

	SpinLockAcquire(&asr_shared->mutex);
	pending = asr_shared->sync_requested != asr_shared->sync_done;
	*generation = asr_shared->sync_requested;
	*vault_id = asr_shared->sync_vault_id;
	SpinLockRelease(&asr_shared->mutex);
	return pending;
}

/*
 * The worker: the refresh asked for up to this generation is committed
 * (asr_vaults.synced_at / sync_error written); wake the asr_sync callers.
 */
void
asr_sync_finished(uint64 generation)
{
	SpinLockAcquire(&asr_shared->mutex);
	if (generation > asr_shared->sync_done)
		asr_shared->sync_done = generation;
	SpinLockRelease(&asr_shared->mutex);
	ConditionVariableBroadcast(&asr_shared->sync_cv);
}

static void
asr_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				asr_wake_worker();
			if (wake_waiters_at_commit && asr_shared != NULL)
				ConditionVariableBroadcast(&asr_shared->job_cv);
			wake_at_commit = false;
			wake_waiters_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			wake_waiters_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * Called by the worker once connected: publish its pid and latch, and
 * make sure they are withdrawn however the worker exits.
 */
void
asr_worker_publish_start(void)
{
	SpinLockAcquire(&asr_shared->mutex);
	asr_shared->worker_pid = MyProcPid;
	asr_shared->worker_latch = MyLatch;
	asr_shared->started_at = GetCurrentTimestamp();
	asr_shared->last_poll_at = 0;
	asr_shared->requests_in_flight = 0;
	asr_shared->throttled_until = 0;
	asr_shared->last_error[0] = '\0';
	strlcpy(asr_shared->phase, "starting", sizeof(asr_shared->phase));
	SpinLockRelease(&asr_shared->mutex);

	before_shmem_exit(asr_worker_detach, (Datum) 0);
}

static void
asr_worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&asr_shared->mutex);
	if (asr_shared->worker_pid == MyProcPid)
	{
		asr_shared->worker_pid = 0;
		asr_shared->worker_latch = NULL;
		asr_shared->requests_in_flight = 0;
		strlcpy(asr_shared->phase, "stopped", sizeof(asr_shared->phase));
	}
	SpinLockRelease(&asr_shared->mutex);
}

/*
 * Publish what the worker is doing, for asr_worker_status.
 */
void
asr_worker_set_phase(const char *phase)
{
	SpinLockAcquire(&asr_shared->mutex);
	strlcpy(asr_shared->phase, phase, sizeof(asr_shared->phase));
	SpinLockRelease(&asr_shared->mutex);
}

/*
 * Publish the worker's last error (NULL clears it).  Callers pass text fit
 * for a DBA's eyes: never a token, a secret or a signed URL.
 */
void
asr_worker_set_error(const char *error)
{
	SpinLockAcquire(&asr_shared->mutex);
	strlcpy(asr_shared->last_error, error ? error : "",
			sizeof(asr_shared->last_error));
	SpinLockRelease(&asr_shared->mutex);
}
