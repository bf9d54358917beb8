/*-------------------------------------------------------------------------
 *
 * jobapi.c
 *	  The SQL functions that act on a job rather than an item: asr_cancel,
 *	  asr_restart, asr_resume, asr_wait, and the maintenance entry
 *	  asr_job_transition.
 *
 * asr_wait sleeps on a condition variable in shared memory that every
 * committed job change broadcasts (jobs.c, shmem.c); it re-reads the job
 * with a fresh snapshot after each wake-up, so it needs READ COMMITTED and
 * a job that is already committed.
 *
 * IDENTIFICATION
 *	  src/jobapi.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "asr.h"
#include "items.h"
#include "jobs.h"
#include "util.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(asr_cancel);
PG_FUNCTION_INFO_V1(asr_restart);
PG_FUNCTION_INFO_V1(asr_resume);
PG_FUNCTION_INFO_V1(asr_wait);
PG_FUNCTION_INFO_V1(asr_job_transition_sql);

/* longest sleep between two looks at the job, should a wake-up be missed */
#define ASR_WAIT_MAX_SLEEP_MS 30000L

/*
 * The job named by argument 0, loaded (and locked when lock) or an error.
 */
static void
job_argument(FunctionCallInfo fcinfo, bool lock, AsrJob *job)
{
	int64		job_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job must not be NULL"),
				 errhint("Give a job_id from asr_jobs.")));
	job_id = PG_GETARG_INT64(0);
	if (!asr_job_load(job_id, lock, job))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("job %lld does not exist", (long long) job_id),
				 errhint("asr_jobs lists the jobs.")));
}

/*
 * asr_cancel(job): a queued job is cancelled at once (nothing was sent);
 * a job Azure runs gets a cancel request for the worker; a succeeded
 * failover is cancelled by a cancel_failover job where Azure allows it.
 */
Datum
asr_cancel(PG_FUNCTION_ARGS)
{
	AsrJob		job;
	char	   *who;

	asr_check_writable("asr_cancel");
	job_argument(fcinfo, true, &job);
	who = GetUserNameFromId(GetSessionUserId(), false);

	if (strcmp(job.state, "queued") == 0)
	{
		AsrJobUpdate u = {0};

		u.state = "cancelled";
		u.progress = -1;
		u.detail = psprintf("cancelled by %s before it was sent to Azure", who);
		u.error_message = "cancelled before it was sent to Azure";
		(void) asr_job_transition(job.job_id, "queued", &u);
		PG_RETURN_INT64(job.job_id);
	}
	if (!asr_job_state_is_final(job.state))
	{
		if (job.control && strcmp(job.control, "cancel") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cancellation of job %lld is already requested", (long long) job.job_id),
					 errhint("Wait for it with asr_wait(%lld).", (long long) job.job_id)));
		asr_job_request_control(job.job_id, "cancel", NULL,
								psprintf("cancel requested by %s", who));
		PG_RETURN_INT64(job.job_id);
	}
	if (strcmp(job.action, "failover") == 0 && strcmp(job.state, "succeeded") == 0)
	{
		AsrItem		item;
		AsrJobRequest req = {0};
		StringInfoData path;

		if (!asr_item_load(job.item_id, true, &item))
			elog(ERROR, "asr: item " INT64_FORMAT " of job " INT64_FORMAT " vanished",
				 job.item_id, job.job_id);
		asr_validate_action(&item, "cancel_failover");
		initStringInfo(&path);
		appendStringInfoString(&path, "{\"method\": \"POST\", \"path\": ");
		escape_json(&path, psprintf("%s/failoverCancel", item.arm_id));
		appendStringInfoChar(&path, '}');
		req.item_id = item.item_id;
		req.item_name = item.name;
		req.action = "cancel_failover";
		req.disks_covered = req.disks_total = -1;
		req.request = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(path.data)));
		req.detail = psprintf("cancels the failover of job %lld", (long long) job.job_id);
		PG_RETURN_INT64(asr_job_insert(&req));
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot cancel job %lld", (long long) job.job_id),
			 errdetail("Job %lld (%s of \"%s\") is already %s; a finished job cannot be cancelled.",
					   (long long) job.job_id, job.action, job.item_name, job.state),
			 strcmp(job.state, "succeeded") == 0 ?
			 errhint("Query asr_item_status for what is allowed next.") :
			 errhint("asr_restart(%lld) restarts it.", (long long) job.job_id)));
	PG_RETURN_NULL();			/* not reached */
}

/*
 * asr_restart(job): Azure restarts a failed or cancelled ASR job under the
 * same name; asr records the restart as a new job (restart_of) so that the
 * finished one keeps its history.
 */
Datum
asr_restart(PG_FUNCTION_ARGS)
{
	AsrJob		job;
	AsrJob		other;
	AsrItem		item;
	AsrJobRequest req = {0};

	asr_check_writable("asr_restart");
	job_argument(fcinfo, true, &job);

	if (strcmp(job.state, "failed") != 0 && strcmp(job.state, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot restart job %lld", (long long) job.job_id),
				 errdetail("Job %lld (%s of \"%s\") is %s; only a failed or cancelled job can be restarted.",
						   (long long) job.job_id, job.action, job.item_name, job.state),
				 asr_job_state_is_final(job.state) ?
				 errhint("Query asr_item_status for what is allowed next.") :
				 errhint("Wait for it with asr_wait(%lld), or cancel it with asr_cancel(%lld).",
						 (long long) job.job_id, (long long) job.job_id)));
	if (job.azure_job == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot restart job %lld", (long long) job.job_id),
				 errdetail("Job %lld ended before Azure created an ASR job for it; there is nothing to restart.",
						   (long long) job.job_id),
				 errhint("Call %s() again.", asr_action_function(job.action))));

	if (!asr_item_load(job.item_id, true, &item))
		elog(ERROR, "asr: item " INT64_FORMAT " of job " INT64_FORMAT " vanished",
			 job.item_id, job.job_id);
	if (asr_job_unfinished_for_item(item.item_id, &other))
		asr_refuse_unfinished(&item, job.action, &other);

	req.item_id = job.item_id;
	req.item_name = item.name;
	req.action = job.action;
	req.recovery_point = job.recovery_point;
	req.disks_covered = req.disks_total = -1;
	req.options = job.options;
	req.restart_of = job.job_id;
	req.azure_job = job.azure_job;
	req.detail = psprintf("restart of job %lld (Azure job %s)",
						  (long long) job.job_id, job.azure_job);
	PG_RETURN_INT64(asr_job_insert(&req));
}

/*
 * asr_resume(job, comment): Azure suspends a job at a manual step of a
 * recovery plan; the worker sends the resume with the comment.
 */
Datum
asr_resume(PG_FUNCTION_ARGS)
{
	AsrJob		job;
	char	   *comment = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	asr_check_writable("asr_resume");
	job_argument(fcinfo, true, &job);
	if (strcmp(job.state, "suspended") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot resume job %lld", (long long) job.job_id),
				 errdetail("Job %lld (%s of \"%s\") is %s; only a suspended job can be resumed.",
						   (long long) job.job_id, job.action, job.item_name, job.state)));
	if (job.control && strcmp(job.control, "resume") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("resumption of job %lld is already requested", (long long) job.job_id),
				 errhint("Wait for it with asr_wait(%lld).", (long long) job.job_id)));
	asr_job_request_control(job.job_id, "resume", comment,
							psprintf("resume requested by %s%s%s",
									 GetUserNameFromId(GetSessionUserId(), false),
									 comment ? ": " : "", comment ? comment : ""));
	PG_RETURN_INT64(job.job_id);
}

/* "running, 40%, task \"...\"" */
static char *
job_progress_text(const AsrJob *job)
{
	bool		task = job->current_task && !asr_job_state_is_final(job->state);

	return psprintf("%s, %d%%%s%s%s", job->state, job->progress,
					task ? ", task \"" : "",
					task ? job->current_task : "",
					task ? "\"" : "");
}

/*
 * asr_wait(job, timeout DEFAULT '1 hour'): block until the job ends, with
 * a NOTICE whenever state, progress or the current task changes; return
 * the final state, or raise an error when the timeout passes first.
 */
Datum
asr_wait(PG_FUNCTION_ARGS)
{
	AsrJob		job;
	int64		timeout;
	TimestampTz deadline;
	char	   *last = NULL;

	timeout = asr_timeout_argument(fcinfo, 1);
	job_argument(fcinfo, false, &job);
	if (job.created_here)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot wait for job %lld in the transaction that created it",
						(long long) job.job_id),
				 errdetail("The worker sees the job only after this transaction commits."),
				 errhint("Commit first, then call asr_wait(%lld).", (long long) job.job_id)));
	if (IsolationUsesXactSnapshot() && !asr_job_state_is_final(job.state))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("asr_wait() needs a READ COMMITTED transaction"),
				 errdetail("In this isolation level the transaction would never see the job change."),
				 errhint("Call asr_wait() outside an explicit REPEATABLE READ or SERIALIZABLE transaction.")));

	deadline = GetCurrentTimestamp() + timeout;
	ConditionVariablePrepareToSleep(&asr_shared->job_cv);
	for (;;)
	{
		char	   *now_text = job_progress_text(&job);
		TimestampTz now;
		long		sleep_ms;

		if (last == NULL || strcmp(last, now_text) != 0)
		{
			ereport(NOTICE,
					(errmsg("job %lld (%s of \"%s\"): %s", (long long) job.job_id,
							job.action, job.item_name, now_text)));
			last = now_text;
		}
		if (asr_job_state_is_final(job.state))
			break;

		now = GetCurrentTimestamp();
		if (now >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for job %lld", (long long) job.job_id),
					 errdetail("The job is %s; it goes on without the wait.", now_text),
					 errhint("Call asr_wait(%lld) again, or follow it in asr_jobs and asr_job_events.",
							 (long long) job.job_id)));
		}
		sleep_ms = (long) ((deadline - now + 999) / 1000);
		if (sleep_ms > ASR_WAIT_MAX_SLEEP_MS)
			sleep_ms = ASR_WAIT_MAX_SLEEP_MS;
		(void) ConditionVariableTimedSleep(&asr_shared->job_cv, sleep_ms,
										   PG_WAIT_EXTENSION);
		if (!asr_job_load(job.job_id, false, &job))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("job %lld was deleted while waiting for it", (long long) job.job_id)));
	}
	ConditionVariableCancelSleep();
	PG_RETURN_TEXT_P(cstring_to_text(job.state));
}

/*
 * asr_job_transition(job, state, detail, progress, tasks, azure_job,
 * azure_state, error_code, error_message) -> boolean: the worker's
 * transition path for a superuser (repairs, tests).
 */
Datum
asr_job_transition_sql(PG_FUNCTION_ARGS)
{
	AsrJobUpdate u = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job must not be NULL")));
	asr_check_writable("asr_job_transition");
	u.state = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	u.detail = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	u.progress = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT32(3);
	if (!PG_ARGISNULL(3) && (u.progress < 0 || u.progress > 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job progress must be between 0 and 100, not %d", u.progress)));
	u.tasks = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	u.azure_job = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	u.azure_state = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	u.error_code = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
	u.error_message = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
	PG_RETURN_BOOL(asr_job_transition(PG_GETARG_INT64(0), NULL, &u));
}
