/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  Job rows: insert, claim, state transitions, the audit trail.
 *
 * Every change of a job's state goes through asr_job_transition(), so that
 * asr_job_events, NOTIFY asr_jobs and the wake-up of asr_wait cannot be
 * bypassed by another code path: the action functions use it through
 * asr_job_insert() and asr_job_request_control(), the worker calls it
 * directly, and asr_job_transition() in SQL exposes it to a superuser.
 *
 * NOTIFY and the wake-ups are transactional: listeners, waiters and the
 * worker hear of a change only once the transaction that made it commits.
 *
 * IDENTIFICATION
 *	  src/jobs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "asr.h"
#include "jobs.h"
#include "util.h"

/* states and the states each may move to */
typedef struct JobEdge
{
	const char *from;
	const char *to[6];
} JobEdge;

static const JobEdge job_edges[] = {
	{"queued", {"submitting", "cancelled", "failed", NULL}},
	{"submitting", {"running", "succeeded", "failed", "cancelled", "suspended", NULL}},
	{"running", {"succeeded", "failed", "cancelled", "suspended", NULL}},
	{"suspended", {"running", "succeeded", "failed", "cancelled", NULL}},
	{"succeeded", {NULL}},
	{"failed", {NULL}},
	{"cancelled", {NULL}},
};

/*
 * Finished states never change again.
 */
bool
asr_job_state_is_final(const char *state)
{
	return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
		strcmp(state, "cancelled") == 0;
}

/* The state machine's entry for a state, NULL for a word that is none. */
static const JobEdge *
job_edge(const char *state)
{
	size_t		i;

	for (i = 0; i < (int) lengthof(job_edges); i++)
		if (strcmp(job_edges[i].from, state) == 0)
			return &job_edges[i];
	return NULL;
}

/* May a job in state "from" move to state "to"? */
static bool
transition_allowed(const char *from, const char *to)
{
	const JobEdge *e = job_edge(from);
	int			i;

	if (e == NULL)
		return false;
	for (i = 0; e->to[i] != NULL; i++)
		if (strcmp(e->to[i], to) == 0)
			return true;
	return false;
}

/* A text Datum for SPI, setting its nulls[] flag when s is NULL. */
static Datum
text_or_null(const char *s, char *null)
{
	*null = (s == NULL) ? 'n' : ' ';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* the NOTIFY asr_jobs payload of job j (joined with its item i), as text */
#define JOB_NOTIFY_PAYLOAD \
	"json_build_object('job_id', j.job_id, 'item', i.name, 'action', j.action, 'state', j.state)::text"

/*
 * The same payload built here, for a job whose item name is known: what
 * json_build_object() writes, to the byte.
 */
static char *
job_payload(int64 job_id, const char *item, const char *action, const char *state)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"job_id\" : " INT64_FORMAT ", \"item\" : ", job_id);
	escape_json(&buf, item);
	appendStringInfoString(&buf, ", \"action\" : ");
	escape_json(&buf, action);
	appendStringInfoString(&buf, ", \"state\" : ");
	escape_json(&buf, state);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Write the event row of a job and NOTIFY asr_jobs, both in the current
 * transaction; callers are connected to SPI with search_path pinned.
 */
static void
job_event(int64 job_id, const char *detail)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[3] = "  ";

	values[0] = Int64GetDatum(job_id);
	values[1] = text_or_null(detail, &nulls[1]);
	asr_spi(psprintf("INSERT INTO %s (job_id, state, progress, detail) "
					 "SELECT j.job_id, j.state, j.progress, $2 FROM %s j "
					 "WHERE j.job_id = $1",
					 asr_rel("asr_job_events"), asr_rel("asr_jobs")),
			2, types, values, nulls, false, 0);

	asr_spi(psprintf("SELECT " JOB_NOTIFY_PAYLOAD " "
					 "FROM %s j JOIN %s i USING (item_id) WHERE j.job_id = $1",
					 asr_rel("asr_jobs"), asr_rel("asr_items")),
			1, types, values, nulls, true, 1);
	if (SPI_processed == 1)
		Async_Notify("asr_jobs", asr_spi_text(0, 1));
	asr_wake_waiters_at_commit();
}

/*
 * Record a new queued job and its first event; the worker is woken when
 * the caller's transaction commits, and never for a rollback.  Returns
 * job_id.  The caller has validated the action and holds a lock on the
 * item row; the unique index asr_jobs_one_unfinished_per_item backs the
 * "one unfinished job per item" rule even if it did not.
 *
 * One statement writes the job and its event: enqueueing is what DBAs and
 * scripts do in bulk.
 */
int64
asr_job_insert(const AsrJobRequest *req)
{
	Oid			types[13] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
		INT2OID, INT2OID, JSONBOID, JSONBOID, INT8OID, TEXTOID, TEXTOID,
	TEXTOID};
	Datum		values[13];
	char		nulls[14] = "             ";
	int64		job_id;
	bool		isnull;
	int			nestlevel;
	char	   *who = GetUserNameFromId(GetSessionUserId(), false);

	values[0] = Int64GetDatum(req->item_id);
	values[1] = CStringGetTextDatum(req->action);
	values[2] = text_or_null(req->requested_point, &nulls[2]);
	values[3] = text_or_null(req->recovery_point, &nulls[3]);
	values[4] = TimestampTzGetDatum(req->recovery_point_time);
	nulls[4] = req->recovery_point_time ? ' ' : 'n';
	values[5] = Int16GetDatum((int16) req->disks_covered);
	nulls[5] = req->disks_covered >= 0 ? ' ' : 'n';
	values[6] = Int16GetDatum((int16) req->disks_total);
	nulls[6] = req->disks_total >= 0 ? ' ' : 'n';
	values[7] = req->options ? JsonbPGetDatum(req->options) : (Datum) 0;
	nulls[7] = req->options ? ' ' : 'n';
	values[8] = req->request ? JsonbPGetDatum(req->request) : (Datum) 0;
	nulls[8] = req->request ? ' ' : 'n';
	values[9] = Int64GetDatum(req->restart_of);
	nulls[9] = req->restart_of ? ' ' : 'n';
	values[10] = text_or_null(req->azure_job, &nulls[10]);
	values[11] = CStringGetTextDatum(who);
	values[12] = CStringGetTextDatum(req->detail ?
									 psprintf("requested by %s; %s", who, req->detail) :
									 psprintf("requested by %s", who));

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("WITH j AS (INSERT INTO %s (item_id, action, requested_point, recovery_point, "
					 "recovery_point_time, disks_covered, disks_total, options, request, "
					 "restart_of, azure_job, requested_by) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, '{}'), $9, $10, $11, $12) "
					 "RETURNING job_id, state, progress), "
					 "e AS (INSERT INTO %s (job_id, state, progress, detail) "
					 "SELECT j.job_id, j.state, j.progress, $13 FROM j) "
					 "SELECT job_id, state FROM j",
					 asr_rel("asr_jobs"), asr_rel("asr_job_events")),
			13, types, values, nulls, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "asr: the job of item " INT64_FORMAT " was not recorded", req->item_id);
	job_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	Async_Notify("asr_jobs", job_payload(job_id, req->item_name, req->action,
										 asr_spi_text(0, 2)));
	asr_unpin_search_path(nestlevel);
	SPI_finish();

	asr_wake_waiters_at_commit();
	asr_wake_worker_at_commit();
	return job_id;
}

/*
 * Change a job: its state (checked against the state machine queued ->
 * submitting -> running -> succeeded | failed | cancelled, with suspended
 * while Azure waits) and any of the columns in *update.
 *
 * With expected_state, nothing happens and false is returned when the job
 * is no longer in that state (a DBA cancelled a queued job while the
 * worker was about to claim it, say); the row is locked first, so the
 * answer holds until commit.  A transition the state machine forbids, for
 * example out of a finished state, is an error.  Returns true when the job
 * was updated.
 */
bool
asr_job_transition(int64 job_id, const char *expected_state,
				   const AsrJobUpdate *update)
{
	Oid			types[16] = {INT8OID, TEXTOID, INT2OID, JSONBOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TEXTOID, INT4OID, BOOLOID};
	Datum		values[16];
	char		nulls[17] = "                ";
	Datum		id = Int64GetDatum(job_id);
	char	   *current;
	bool		new_state;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();

	asr_spi(psprintf("SELECT state FROM %s WHERE job_id = $1 FOR UPDATE",
					 asr_rel("asr_jobs")),
			1, types, &id, NULL, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("job %lld does not exist", (long long) job_id)));
	current = asr_spi_text(0, 1);

	if (expected_state && strcmp(current, expected_state) != 0)
	{
		asr_unpin_search_path(nestlevel);
		SPI_finish();
		return false;
	}

	new_state = update->state != NULL && strcmp(update->state, current) != 0;
	if (update->state && job_edge(update->state) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a job state", update->state),
				 errhint("Job states are queued, submitting, running, suspended, succeeded, failed and cancelled.")));
	if (asr_job_state_is_final(current) && new_state)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is already %s", (long long) job_id, current),
				 errdetail("A finished job never changes again.")));
	if (new_state && !transition_allowed(current, update->state))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot go from %s to %s",
						(long long) job_id, current, update->state)));
	if (update->progress > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job progress must be between 0 and 100, not %d",
						update->progress)));

	values[0] = id;
	values[1] = text_or_null(new_state ? update->state : NULL, &nulls[1]);
	values[2] = Int16GetDatum((int16) update->progress);
	nulls[2] = update->progress >= 0 ? ' ' : 'n';
	values[3] = update->tasks ? JsonbPGetDatum(update->tasks) : (Datum) 0;
	nulls[3] = update->tasks ? ' ' : 'n';
	values[4] = text_or_null(update->azure_job, &nulls[4]);
	values[5] = text_or_null(update->azure_state, &nulls[5]);
	values[6] = text_or_null(update->error_code, &nulls[6]);
	values[7] = text_or_null(update->error_message, &nulls[7]);
	values[8] = text_or_null(update->used_recovery_point, &nulls[8]);
	values[9] = text_or_null(update->new_item_arm_id, &nulls[9]);
	values[10] = text_or_null(update->operation_url, &nulls[10]);
	values[11] = text_or_null(update->location_url, &nulls[11]);
	values[12] = TimestampTzGetDatum(update->next_poll_at);
	nulls[12] = update->next_poll_at ? ' ' : 'n';
	values[13] = text_or_null(update->last_error, &nulls[13]);
	values[14] = Int32GetDatum(update->count_attempt ? 1 : 0);
	values[15] = BoolGetDatum(update->clear_control);

	asr_spi(psprintf("UPDATE %s SET "
					 "state = coalesce($2, state), "
					 "progress = CASE WHEN $2 = 'succeeded' THEN 100 ELSE coalesce($3, progress) END, "
					 "tasks = coalesce($4, tasks), "
					 "azure_job = coalesce($5, azure_job), "
					 "azure_state = coalesce($6, azure_state), "
					 "error_code = coalesce($7, error_code), "
					 "error_message = coalesce($8, error_message), "
					 "used_recovery_point = coalesce($9, used_recovery_point), "
					 "new_item_arm_id = coalesce($10, new_item_arm_id), "
					 "operation_url = coalesce($11, operation_url), "
					 "location_url = coalesce($12, location_url), "
					 "next_poll_at = CASE WHEN $2 = ANY ('{succeeded,failed,cancelled}') THEN NULL "
					 "  ELSE coalesce($13, next_poll_at) END, "
					 "last_error = CASE WHEN $14 IS NULL THEN last_error ELSE nullif($14, '') END, "
					 "attempts = attempts + $15, "
					 "control = CASE WHEN $16 OR $2 = ANY ('{succeeded,failed,cancelled}') "
					 "  THEN NULL ELSE control END, "
					 "submitted_at = CASE WHEN submitted_at IS NULL AND $2 = ANY ('{running,suspended,succeeded}') "
					 "  THEN clock_timestamp() ELSE submitted_at END, "
					 "finished_at = CASE WHEN $2 = ANY ('{succeeded,failed,cancelled}') "
					 "  THEN clock_timestamp() ELSE finished_at END "
					 "WHERE job_id = $1",
					 asr_rel("asr_jobs")),
			16, types, values, nulls, false, 0);

	if (new_state)
		job_event(job_id, update->detail);
	else
		asr_wake_waiters_at_commit();

	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return true;
}




#define JOB_COLUMNS \
	"j.job_id, j.item_id, i.name, i.arm_id, j.action, j.state, j.progress, " \
	"(SELECT t->>'friendlyName' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(j.tasks) = 'array' " \
	"  THEN j.tasks ELSE '[]' END) t WHERE t->>'state' = 'InProgress' LIMIT 1), " \
	"j.azure_job, j.azure_state, j.error_code, j.error_message, j.recovery_point, " \
	"j.control, j.requested_by, j.requested_at, j.restart_of, j.client_request_id, " \
	"j.request, j.options, j.xmin"

/* An AsrJob in cxt from the first result row of a JOB_COLUMNS query. */
static void
fill_job(MemoryContext cxt, AsrJob *job)
{
	bool		isnull;

	job->job_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	job->item_id = DatumGetInt64(asr_spi_datum(0, 2, &isnull));
	asr_spi_copy_texts(cxt, 3, &job->item_name, &job->item_arm_id, &job->action,
					   &job->state, NULL);
	job->progress = DatumGetInt16(asr_spi_datum(0, 7, &isnull));
	asr_spi_copy_texts(cxt, 8, &job->current_task, &job->azure_job, &job->azure_state,
					   &job->error_code, &job->error_message, &job->recovery_point,
					   &job->control, &job->requested_by, NULL);
	job->requested_at = DatumGetTimestampTz(asr_spi_datum(0, 16, &isnull));
	job->restart_of = DatumGetInt64(asr_spi_datum(0, 17, &isnull));
	if (isnull)
		job->restart_of = 0;
	job->client_request_id = asr_spi_copy_text(cxt, 18);
	job->request = asr_spi_copy_jsonb(cxt, 19);
	job->options = asr_spi_copy_jsonb(cxt, 20);
	job->created_here =
		TransactionIdIsCurrentTransactionId(DatumGetTransactionId(asr_spi_datum(0, 21, &isnull)));
}

/*
 * The first job of "SELECT JOB_COLUMNS FROM asr_jobs j JOIN asr_items i
 * USING (item_id) <tail>" with $1 = id, in the caller's memory context;
 * false when there is none.
 */
static bool
job_fetch(const char *tail, int64 id, AsrJob *job)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(id);
	bool		found;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	/* not read-only: SPI then takes a fresh snapshot (asr_wait relies on it) */
	asr_spi(psprintf("SELECT " JOB_COLUMNS " FROM %s j JOIN %s i USING (item_id) %s",
					 asr_rel("asr_jobs"), asr_rel("asr_items"), tail),
			1, &type, &value, NULL, false, 0);
	found = (SPI_processed == 1);
	if (found)
		fill_job(cxt, job);
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return found;
}

/*
 * Load a job (with its item's name and ARM id); false when it does not
 * exist.  With lock, the row stays locked FOR UPDATE until the end of the
 * transaction.
 */
bool
asr_job_load(int64 job_id, bool lock, AsrJob *job)
{
	return job_fetch(lock ? "WHERE j.job_id = $1 FOR UPDATE OF j" : "WHERE j.job_id = $1",
					 job_id, job);
}

/*
 * The unfinished job of an item, if any: there is at most one (the unique
 * index asr_jobs_one_unfinished_per_item), which is also how it is found.
 * (An "ORDER BY job_id LIMIT 1" here made the planner walk asr_jobs_pkey
 * through every job whenever the statistics said the table was small.)
 * Most calls find none, so the first look reads the index alone; a job
 * that finishes before it is loaded counts as none.
 */
bool
asr_job_unfinished_for_item(int64 item_id, AsrJob *job)
{
	Oid			type = INT8OID;
	Datum		id = Int64GetDatum(item_id);
	int64		job_id = 0;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT job_id FROM %s WHERE item_id = $1 AND state = ANY (" ASR_UNFINISHED_STATES ")",
					 asr_rel("asr_jobs")),
			1, &type, &id, NULL, false, 0);
	if (SPI_processed == 1)
	{
		bool		isnull;

		job_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return job_id != 0 && job_fetch("WHERE j.job_id = $1", job_id, job) &&
		!asr_job_state_is_final(job->state);
}

/*
 * The worker: the oldest queued job nobody else holds, locked until the
 * end of the transaction; 0 when there is none.  Jobs of paused vaults
 * are left alone.  The worker then moves it
 * to submitting with asr_job_transition(job_id, "queued", ...) and commits
 * before sending anything.
 */
int64
asr_job_claim_next(void)
{
	int64		job_id = 0;
	int			nestlevel;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT j.job_id FROM %s j JOIN %s i USING (item_id) JOIN %s v USING (vault_id) "
					 "WHERE j.state = 'queued' AND NOT v.paused "
					 "ORDER BY j.job_id LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
					 asr_rel("asr_jobs"), asr_rel("asr_items"), asr_rel("asr_vaults")),
			0, NULL, NULL, NULL, false, 0);
	if (SPI_processed == 1)
	{
		bool		isnull;

		job_id = DatumGetInt64(asr_spi_datum(0, 1, &isnull));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return job_id;
}

/*
 * The worker: up to max unfinished, already submitted jobs that are due
 * for a poll at "now" (next_poll_at NULL or passed) or carry a cancel or
 * resume request, oldest poll first; none of a paused vault.  Returns how many ids were stored.
 */
int
asr_jobs_due(TimestampTz now, int64 *job_ids, int max)
{
	Oid			types[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2];
	int			n = 0;
	int			nestlevel;
	uint64		i;

	values[0] = TimestampTzGetDatum(now);
	values[1] = Int32GetDatum(max);
	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT j.job_id FROM %s j JOIN %s i USING (item_id) JOIN %s v USING (vault_id) "
					 "WHERE j.state = ANY ('{submitting,running,suspended}') AND NOT v.paused "
					 "  AND (j.next_poll_at IS NULL OR j.next_poll_at <= $1 OR j.control IS NOT NULL) "
					 "ORDER BY j.next_poll_at NULLS FIRST, j.job_id LIMIT $2",
					 asr_rel("asr_jobs"), asr_rel("asr_items"), asr_rel("asr_vaults")),
			2, types, values, NULL, true, 0);
	for (i = 0; i < SPI_processed && n < max; i++)
	{
		bool		isnull;

		job_ids[n++] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 1,
												   &isnull));
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return n;
}

/*
 * Record a DBA's request on a running job (cancel, resume) for the worker,
 * with an event row on the audit trail; the worker is woken at commit and
 * clears the request with AsrJobUpdate.clear_control once it has sent it.
 */
void
asr_job_request_control(int64 job_id, const char *control,
						const char *comment, const char *detail)
{
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[6] = "     ";
	int			nestlevel;

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(control);
	values[2] = text_or_null(comment, &nulls[2]);
	values[3] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	values[4] = text_or_null(detail, &nulls[4]);

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("UPDATE %s SET control = $2, control_comment = $3, "
					 "control_requested_by = $4, control_requested_at = now() "
					 "WHERE job_id = $1", asr_rel("asr_jobs")),
			5, types, values, nulls, false, 0);
	asr_spi(psprintf("INSERT INTO %s (job_id, state, progress, detail) "
					 "SELECT job_id, state, progress, $5 FROM %s WHERE job_id = $1",
					 asr_rel("asr_job_events"), asr_rel("asr_jobs")),
			5, types, values, nulls, false, 0);
	asr_unpin_search_path(nestlevel);
	SPI_finish();

	asr_wake_worker_at_commit();
	asr_wake_waiters_at_commit();
}
