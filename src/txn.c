/*-------------------------------------------------------------------------
 *
 * txn.c
 *	  The worker's short transactions: begin, commit, abort, and back to
 *	  the memory context the caller was in.
 *
 * The worker never keeps a transaction open across network I/O: every
 * answer from Azure is recorded in a transaction of its own.  Commit and
 * abort leave CurrentMemoryContext at TopMemoryContext, where whatever the
 * caller allocates next would stay for the life of the worker (a leak of
 * megabytes per job at scale); these helpers return to the caller's
 * context instead, and say in pg_stat_activity what the worker does.
 * Transactions of the worker do not nest.
 *
 * IDENTIFICATION
 *	  src/txn.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "asr.h"
#include "txn.h"

static MemoryContext caller_context = NULL;

/*
 * Start a transaction with a snapshot; what is reported in
 * pg_stat_activity while it runs.
 */
void
asr_tx_begin(const char *what)
{
	caller_context = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

/*
 * Commit, flush statistics (so autovacuum sees the job tables' churn) and
 * go back to the caller's memory context.
 */
void
asr_tx_commit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (caller_context)
		MemoryContextSwitchTo(caller_context);
	caller_context = NULL;
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * After an ERROR was caught: abort and go back to the caller's context.
 */
void
asr_tx_abort(void)
{
	AbortCurrentTransaction();
	if (caller_context)
		MemoryContextSwitchTo(caller_context);
	caller_context = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Inside a transaction: is the extension still installed (and will it stay
 * until the transaction ends)?  DROP EXTENSION
 * may come between a request and its answer; the answer then has nowhere
 * to go, and the worker must drop it quietly instead of raising an ERROR
 * for every table it can no longer find.
 */
bool
asr_tx_extension_present(void)
{
	Oid			extoid = get_extension_oid(ASR_EXTENSION_NAME, true);

	if (!OidIsValid(extoid))
		return false;

	/*
	 * DROP EXTENSION takes this object's lock exclusively: holding it for
	 * the rest of the transaction, and looking again once it is held, means
	 * the tables cannot go away under the statements that follow.
	 */
	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	return get_extension_oid(ASR_EXTENSION_NAME, true) == extoid;
}
