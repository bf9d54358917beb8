/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Is an action allowed on an item in its last known state?
 *
 * Azure's allowedOperations is the authoritative gate (asr-rest.md §7.5,
 * §9): each action needs one operation in it.  On top of it, the side the
 * VM runs on (activeLocation) must fit the action, and an item has at most
 * one unfinished job.  A refusal says, in a DBA's words, what state the
 * item is in and which asr functions are allowed instead; the same table
 * answers asr_allowed_actions() for the asr_item_status view.
 *
 * IDENTIFICATION
 *	  src/validate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "validate.h"

typedef struct ActionRule
{
	const char *action;			/* asr_jobs.action */
	const char *function;		/* the asr function a DBA calls */
	const char *operation;		/* what Azure's allowedOperations must list */
	const char *location;		/* required activeLocation, NULL = any */
	const char *verb;			/* "cannot <verb> \"vm\"" */
} ActionRule;

/*
 * Commit needs "Commit": the committed state lists "CompleteMigration"
 * too, which belongs to migration flows and must not let a commit through
 * twice.  Reprotect of an A2A item is Azure's switchprotection, gated by
 * "SwitchProtection" (ReverseReplicate is the reProtect call, which cannot
 * carry managed disks).
 */
static const ActionRule rules[] = {
	{"failover", "asr_failover", "UnplannedFailover", "Primary", "fail over"},
	{"test_failover", "asr_test_failover", "TestFailover", "Primary", "start a test failover of"},
	{"test_failover_cleanup", "asr_test_failover_cleanup", "TestFailoverCleanup", NULL,
	"clean up the test failover of"},
	{"change_recovery_point", "asr_change_recovery_point", "ChangePit", "Recovery",
	"change the recovery point of"},
	{"commit", "asr_commit", "Commit", "Recovery", "commit the failover of"},
	{"reprotect", "asr_reprotect", "SwitchProtection", "Recovery", "reprotect"},
	{"cancel_failover", "asr_cancel", "CancelFailover", "Recovery", "cancel the failover of"},
};

/* The rule of an action; an unknown action is a programming error. */
static const ActionRule *
rule_for(const char *action)
{
	size_t		i;

	for (i = 0; i < (int) lengthof(rules); i++)
		if (strcmp(rules[i].action, action) == 0)
			return &rules[i];
	elog(ERROR, "asr: unknown action \"%s\"", action);
	return NULL;				/* keep compiler quiet */
}

const char *
asr_action_function(const char *action)
{
	return rule_for(action)->function;
}

/* Does Azure's allowedOperations list op (compared without case)? */
static bool
ops_contain(char **ops, int nops, const char *op)
{
	int			i;

	for (i = 0; i < nops; i++)
		if (pg_strcasecmp(ops[i], op) == 0)
			return true;
	return false;
}

/*
 * The asr functions allowed by an allowedOperations list, in the order of
 * the workflow, or NULL when none.
 */
static char *
allowed_functions(char **ops, int nops, const char *active_location)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < (int) lengthof(rules); i++)
	{
		if (!ops_contain(ops, nops, rules[i].operation))
			continue;
		if (rules[i].location && active_location &&
			strcmp(rules[i].location, active_location) != 0)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", rules[i].function);
	}
	return buf.len ? buf.data : NULL;
}

/* s, or the given words when s is NULL or empty. */
static const char *
or_unknown(const char *s, const char *unknown)
{
	return (s && *s) ? s : unknown;
}

/*
 * The item's state in a DBA's words: where the VM runs and what is
 * pending, not Azure's state names (errdetail adds those).
 */
char *
asr_describe_item(const AsrItem *item)
{
	const char *ps = item->protection_state;
	const char *primary = or_unknown(item->primary_region, "its primary region");
	const char *recovery = or_unknown(item->recovery_region, "its recovery region");
	const char *here = (item->active_location &&
						strcmp(item->active_location, "Recovery") == 0) ? recovery : primary;
	bool		tfo_pending = item->test_failover_state &&
		strcmp(item->test_failover_state, "WaitingForCompletion") == 0;
	bool		tfo_cleaning = item->test_failover_state &&
		strcmp(item->test_failover_state, "MarkedForDeletion") == 0;

	if (strcmp(ps, "Protected") == 0)
	{
		if (tfo_pending)
			return psprintf("protected (it runs in %s and replicates to %s), and a test failover in %s is waiting for cleanup",
							here, recovery, recovery);
		if (tfo_cleaning)
			return psprintf("protected (it runs in %s and replicates to %s), and its test failover is being cleaned up",
							here, recovery);
		return psprintf("protected: it runs in %s and replicates to %s", here, recovery);
	}
	if (strcmp(ps, "UnplannedFailoverCommitPendingStatesBegin") == 0)
		return psprintf("failed over to %s and not yet committed", here);
	if (strcmp(ps, "UnplannedFailoverCommitted") == 0)
		return psprintf("failed over to %s and committed; it does not replicate until it is reprotected", here);
	if (strcmp(ps, "InitialReplicationInProgress") == 0)
		return psprintf("in initial replication from %s to %s", primary, recovery);
	if (strcmp(ps, "InitialReplicationRecoveryCompletionPending") == 0)
		return psprintf("replicating from %s to %s and waiting for its first recovery point", primary, recovery);
	if (strcmp(ps, "UnplannedFailoverFailed") == 0)
		return psprintf("running in %s after a failed failover", here);
	return psprintf("running in %s, in protection state \"%s\"", here,
					or_unknown(item->protection_state_description, ps));
}

/* allowedOperations as "A, B, C" ("none" when empty), for errdetail. */
static char *
ops_text(const AsrItem *item)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < item->nops; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", item->allowed_operations[i]);
	return buf.len ? buf.data : "none";
}

/*
 * The errhint of a refusal: which asr functions Azure allows now.
 */
char *
asr_allowed_hint(const AsrItem *item)
{
	char	   *allowed = allowed_functions(item->allowed_operations, item->nops,
											item->active_location);

	if (allowed)
		return psprintf("Allowed now: %s.", allowed);
	return pstrdup("No action is allowed now; run asr_sync() to refresh the item's state, or wait until Azure's current operation on it ends.");
}

/*
 * Refuse an action because the item already has an unfinished job.
 */
void
asr_refuse_unfinished(const AsrItem *item, const char *action, const AsrJob *job)
{
	const ActionRule *r = rule_for(action);

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s \"%s\"", r->verb, item->name),
			 errdetail("Job %lld (%s) on this item is %s (%d%% done), requested by %s; an item has at most one unfinished job.",
					   (long long) job->job_id, job->action, job->state,
					   job->progress, job->requested_by),
			 strcmp(job->state, "suspended") == 0 ?
			 errhint("Resume it with asr_resume(%lld) or cancel it with asr_cancel(%lld).",
					 (long long) job->job_id, (long long) job->job_id) :
			 errhint("Wait for it with asr_wait(%lld), or cancel it with asr_cancel(%lld).",
					 (long long) job->job_id, (long long) job->job_id)));
}

/*
 * Raise a refusal unless the action is allowed on the item now.  The
 * caller holds the item row locked, so the answer holds until commit.
 */
void
asr_validate_action(const AsrItem *item, const char *action)
{
	const ActionRule *r = rule_for(action);
	AsrJob		job;
	bool		op_ok;
	bool		location_ok;
	char	   *scenario;

	if (asr_job_unfinished_for_item(item->item_id, &job))
		asr_refuse_unfinished(item, action, &job);

	op_ok = ops_contain(item->allowed_operations, item->nops, r->operation);
	location_ok = r->location == NULL || item->active_location == NULL ||
		strcmp(r->location, item->active_location) == 0;
	if (op_ok && location_ok)
		return;
	scenario = asr_item_scenario(item);

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s \"%s\"", r->verb, item->name),
			 errdetail("The VM \"%s\" is %s.%s%s Azure reports protection state %s, active location %s, allowed operations: %s.",
					   item->name, asr_describe_item(item),
					   scenario ? psprintf(" Azure is running a %s operation on it.", scenario) : "",
					   op_ok ? psprintf(" %s needs the VM to run on its %s side.", r->function,
										strcmp(r->location, "Primary") == 0 ? "primary" : "recovery") : "",
					   item->protection_state,
					   or_unknown(item->active_location, "unknown"),
					   ops_text(item)),
			 errhint("%s", asr_allowed_hint(item))));
}

PG_FUNCTION_INFO_V1(asr_allowed_actions);

/*
 * SQL: asr_allowed_actions(allowed_operations text[], unfinished_job_state
 * text) -> text[], for asr_item_status.  While a job is unfinished only
 * waiting for, cancelling or resuming it is possible.
 */
Datum
asr_allowed_actions(PG_FUNCTION_ARGS)
{
	Datum	   *elems;
	bool	   *enulls;
	int			n = 0,
				i,
				nout = 0;
	char	  **ops;
	Datum		out[lengthof(rules) + 3];

	if (!PG_ARGISNULL(1))
	{
		out[nout++] = CStringGetTextDatum("asr_wait");
		out[nout++] = CStringGetTextDatum("asr_cancel");
		if (strcmp(text_to_cstring(PG_GETARG_TEXT_PP(1)), "suspended") == 0)
			out[nout++] = CStringGetTextDatum("asr_resume");
		PG_RETURN_ARRAYTYPE_P(construct_array(out, nout, TEXTOID, -1, false, TYPALIGN_INT));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, &n);
	ops = palloc0(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		ops[i] = enulls[i] ? "" : TextDatumGetCString(elems[i]);
	for (i = 0; i < (int) lengthof(rules); i++)
	{
		int			k;
		bool		dup = false;

		if (!ops_contain(ops, n, rules[i].operation))
			continue;
		for (k = 0; k < nout; k++)
			if (strcmp(TextDatumGetCString(out[k]), rules[i].function) == 0)
				dup = true;
		if (!dup)
			out[nout++] = CStringGetTextDatum(rules[i].function);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nout, TEXTOID, -1, false, TYPALIGN_INT));
}
