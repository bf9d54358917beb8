/*-------------------------------------------------------------------------
 *
 * txtry.c
 *	  A piece of work of a network completion, in a short transaction of
 *	  its own, with an ERROR contained.
 *
 * The client's completions (a page of a list answered, say) run from the
 * worker loop, outside any transaction; when one must read a table (the
 * vault row, reloaded once its cached copy is a minute old or after a
 * SIGHUP) it needs a transaction, and an ERROR there must not escape into
 * the loop (it would end the worker).  Kept apart from txn.c because the
 * fuzz harness replaces txn.c's primitives with subtransactions and links
 * this file as it is.
 *
 * Arrows: called by poll.c and reconcile.c; calls txn.c.
 *
 * IDENTIFICATION
 *	  src/txtry.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "txn.h"

/*
 * Run fn(arg) in a transaction of its own (what: as pg_stat_activity
 * shows it).  False when fn says so, when the extension is gone, or when
 * an ERROR was raised: the caller says why in its own words, and whatever
 * fn queued in a memory context the caller deletes goes with it.
 */
bool
asr_tx_try(const char *what, bool (*fn) (void *arg), void *arg)
{
	MemoryContext old = CurrentMemoryContext;
	volatile bool ok = false;

	PG_TRY();
	{
		asr_tx_begin(what);
		ok = asr_tx_extension_present() && fn(arg);
		asr_tx_commit();
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		FlushErrorState();
		asr_tx_abort();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
