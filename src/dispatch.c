/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *	  Jobs in flight: submission, reconciliation, polling, cancel/resume,
 *	  and the final re-read of the item.
 *
 * Each job the worker works on has a JobCtx with its own memory context
 * and a phase.  A phase sends one ARM call; its completion (run from the
 * worker loop, never from libcurl) records what Azure said in a short
 * transaction and picks the next phase.  A job leaves the set of active
 * jobs whenever it has to wait (until its next poll, say); the tables
 * hold everything needed to pick it up again, so a restarted worker
 * continues exactly where the last one stopped.
 *
 * At most once: a queued job is marked 'submitting' and committed before
 * its POST is sent.  A job found 'submitting' with nobody working on it
 * (the worker died, PostgreSQL restarted or failed over) is reconciled
 * with Azure -- the vault's job list matched on the x-ms-client-request-id
 * that ASR keeps at the start of the job's activityId, then the item's
 * currentScenario -- before anything is sent again.
 *
 * Long-running operations (arm-client.md sections 1 and 2).  An ASR action
 * answers 202 with Azure-AsyncOperation (replicationOperationStatus/{job})
 * and Location (operationresults/{job}); both name the ASR job, and so
 * does x-ms-request-id.  The ASR job is the operation: its document carries
 * the state the status document would give, plus tasks, progress and
 * Azure's errors with possible causes and recommended actions.  So:
 *
 *	- the job name is taken from Location, then Azure-AsyncOperation, then
 *	  x-ms-request-id (arm.c), and the worker polls replicationJobs/{name},
 *	  carrying the action's x-ms-client-request-id like an SDK poller;
 *	- Azure-AsyncOperation and Location are checked with
 *	  asr_url_same_origin() (https, no userinfo, the configured ARM host
 *	  and port; relative URLs are joined to the ARM endpoint) and stored
 *	  only when they pass; a foreign URL is named in the job's detail and
 *	  nothing is ever sent to it (client.c checks every URL again);
 *	- the status URLs themselves are never read: an unreachable, foreign
 *	  or unreadable one changes nothing.  When no job name can be derived
 *	  (202 with neither header nor request id), the vault's job list
 *	  matched on the client request id finds the job; a 200/201/204
 *	  without any of them finished synchronously;
 *	- terminal states are compared case-insensitively, Canceled and
 *	  Cancelled alike, unknown states keep polling; Retry-After (seconds or
 *	  HTTP-date), retry-after-ms and x-ms-retry-after-ms set the next poll;
 *	- a restarted worker resumes from the stored job name (and next_poll_at);
 *	  nothing is re-sent.
 *
 * Polling at scale: while more than VAULT_LIST_THRESHOLD jobs of one vault
 * run, one GET of the vault's job list ($filter StartTime, following
 * nextLink) updates every job of the vault due for a poll (or due within
 * the next poll interval); a job the list does not show is polled on its
 * own.  Transient answers (408, 429, 5xx, transport errors) never fail a
 * job: client.c retries them with back-off honouring Retry-After, a poll
 * gives up after READ_ATTEMPTS tries and its job records the error, waits
 * and polls again.  A malformed, truncated or huge
 * body only delays the job it belongs to.  A Suspended job becomes
 * 'suspended' and waits for asr_resume or asr_cancel; it is never resumed
 * by the worker.  A job still running or suspended in Azure after
 * asr.job_timeout (from its request) fails with JobTimeout; Azure's job is
 * left alone.
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

#include "arm.h"
#include "asr.h"
#include "client.h"
#include "creds.h"
#include "dispatch.h"
#include "jobs.h"
#include "json.h"
#include "sync.h"
#include "util.h"

/* How many jobs the worker works on at once (the rest wait in the table). */
#define MAX_ACTIVE_JOBS 2000
/* Look this far before a job's request time in Azure's job list. */
#define RECONCILE_WINDOW_S 600
/* Tries of a poll before its job records the error and waits. */
#define READ_ATTEMPTS 4
/* Poll a vault through its job list while more jobs than this run. */
#define VAULT_LIST_THRESHOLD 5

typedef enum Phase
{
	PH_CHECK_ITEM,				/* GET the item, check allowedOperations */
	PH_POST,					/* send the action */
	PH_LIST_JOBS,				/* reconcile: the vault's job list */
	PH_RECONCILE_ITEM,			/* reconcile: the item's currentScenario */
	PH_SCENARIO_JOB,			/* reconcile: the job named there */
	PH_POLL,					/* GET replicationJobs/{name} */
	PH_CONTROL,					/* cancel / resume the ASR job */
	PH_FINAL					/* re-read the item, then finish */
} Phase;

typedef struct JobCtx
{
	int64		job_id;
	MemoryContext cxt;
	Phase		phase;
	bool		finished;
	AsrJob		job;
	int			vault_id;
	char	   *list_url;		/* next page of the job list */
	bool		conflict_seen;	/* a 409 was already reconciled once */
	AsrJobDoc  *doc;			/* the finished ASR job */
	struct VaultPoll *vp;		/* the job list polling for this job */
} JobCtx;

/* One GET of a vault's job list standing for the polls of many jobs. */
typedef struct VaultPoll
{
	MemoryContext cxt;
	int			vault_id;
	List	   *jobs;			/* of JobCtx *, all in PH_POLL */
	List	   *seen;			/* of JobCtx * the list has answered for */
	bool		finished;
} VaultPoll;

static MemoryContext dispatch_context = NULL;
static List *active = NIL;		/* of JobCtx * */
static List *vault_polls = NIL; /* of VaultPoll * */

static void start_phase(JobCtx *jc);
static bool is_active(int64 job_id);
static JobCtx *new_ctx(int64 job_id);
static bool ctx_load(JobCtx *jc);
static void on_response(AsrCall *call, AsrHttpResponse *resp, void *arg);
static void on_final_synced(void *arg, const char *error);

/* ----------------------------------------------------------------
 * transactions
 * ---------------------------------------------------------------- */

static void
tx_begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
tx_commit(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Record a local error on a job and let it wait before the next try.  Used
 * when a step of one job raised an ERROR: the transaction is gone, the job
 * stays where it was, and the other jobs go on.
 */
static void
job_step_failed(JobCtx *jc, ErrorData *edata)
{
	AsrJobUpdate u = {0};

	u.progress = -1;
	u.last_error = psprintf("asr worker: %s", edata->message);
	u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 asr_arm_backoff_ms(4));
	tx_begin("asr: recording a job error");
	(void) asr_job_transition(jc->job_id, NULL, &u);
	tx_commit();
	asr_worker_set_error(u.last_error);
	jc->finished = true;
}

/*
 * Run fn for one job in its own transaction; an ERROR is contained to that
 * job (per-job error handling: the transaction is aborted, the job
 * records the error and waits, the worker goes on).
 */
static void
run_job_step(JobCtx *jc, void (*fn) (JobCtx *jc, void *arg), void *arg)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		tx_begin("asr: recording Azure's answer");
		/* what a step keeps (the job, Azure's document) lives with the job */
		MemoryContextSwitchTo(jc->cxt);
		fn(jc, arg);
		tx_commit();
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		job_step_failed(jc, edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* ----------------------------------------------------------------
 * helpers
 * ---------------------------------------------------------------- */

static const char *
required_operation(const char *action)
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

static AsrVault *
job_vault(JobCtx *jc)
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

static void
update_job(int64 job_id, const char *expected, AsrJobUpdate *u)
{
	(void) asr_job_transition(job_id, expected, u);
}

/* finish a job with an error of ours or Azure's */
static void
fail_job(JobCtx *jc, const char *code, const char *message)
{
	AsrJobUpdate u = {0};

	u.state = "failed";
	u.progress = -1;
	u.error_code = code;
	u.error_message = message;
	u.detail = psprintf("%s: %s", code, message);
	u.last_error = "";
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

static void
wait_until(JobCtx *jc, long ms, const char *last_error)
{
	AsrJobUpdate u = {0};

	u.progress = -1;
	u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	u.last_error = last_error;
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

static char *
json_text_value(JsonbContainer *c, const char *key)
{
	return c ? asr_json_string(c, key) : NULL;
}

/* ----------------------------------------------------------------
 * phases: sending
 * ---------------------------------------------------------------- */

static char *
request_path(JobCtx *jc, char **body)
{
	Jsonb	   *req = jc->job.request;

	*body = NULL;
	if (req == NULL)
	{
		/* asr_restart: the ASR job itself is restarted */
		AsrVault   *v = job_vault(jc);

		return psprintf("%s/replicationJobs/%s/restart", v->vault_path, jc->job.azure_job);
	}
	{
		JsonbValue *b = asr_json_member(&req->root, "body");

		if (b != NULL && b->type == jbvBinary)
			*body = asr_json_container_text(b->val.binary.data);
		else if (b != NULL && b->type == jbvString)
			*body = pnstrdup(b->val.string.val, b->val.string.len);
	}
	return asr_json_string(&req->root, "path");
}

/* the DBA's comment on a pending resume (asr_resume), or NULL */
static char *
control_comment(int64 job_id)
{
	Oid			type = INT8OID;
	Datum		val = Int64GetDatum(job_id);
	char	   *comment = NULL;
	int			nestlevel;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT control_comment FROM %s WHERE job_id = $1", asr_rel("asr_jobs")),
			1, &type, &val, NULL, true, 1);
	if (SPI_processed == 1 && !asr_spi_isnull(0, 1))
	{
		char	   *text = asr_spi_text(0, 1);

		comment = MemoryContextStrdup(caller, text);
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();
	return comment;
}

/*
 * The vault's job list from a little before since, in PowerShell's form:
 * StartTime eq '<UTC round-trip time>' (ASR reads eq as "at or after").
 */
static char *
job_list_url(AsrVault *v, TimestampTz since)
{
	struct pg_tm tm;
	fsec_t		fsec;

	since = TimestampTzPlusMilliseconds(since, -RECONCILE_WINDOW_S * 1000L);
	if (timestamp2tm(since, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	return psprintf("%s&$filter=StartTime%%20eq%%20%%27%04d-%02d-%02dT%02d:%02d:%02d.0000000Z%%27",
					asr_arm_url(v->arm_endpoint, v->vault_path, "/replicationJobs"),
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * Send this job's next call.  Calls are queued with the client; they go
 * out when the token, the budget and the concurrency limit allow.
 */
static void
start_phase(JobCtx *jc)
{
	AsrVault   *v = job_vault(jc);
	AsrCallSpec spec;
	char	   *url = NULL;
	char	   *body = NULL;
	char	   *path;
	bool		write = false;
	const char *method = "GET";
	const char *crid = NULL;

	if (v == NULL)
	{
		fail_job(jc, "VaultNotFound", "the vault of this job's item no longer exists in asr_vaults");
		return;
	}
	if (v->auth == NULL)
	{
		wait_until(jc, 30000, psprintf("cannot use the credentials of server \"%s\": %s",
									   v->server, v->error ? v->error : "unknown error"));
		return;
	}

	switch (jc->phase)
	{
		case PH_CHECK_ITEM:
		case PH_RECONCILE_ITEM:
			url = asr_arm_url(v->arm_endpoint, jc->job.item_arm_id, NULL);
			break;
		case PH_POST:
			path = request_path(jc, &body);
			if (path == NULL)
			{
				fail_job(jc, "InvalidRequest", "the job has no request to send");
				return;
			}
			{
				/* no reconciliation before this request can have landed */
				AsrJobUpdate u = {0};

				u.progress = -1;
				u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 ((int64) asr_http_timeout + 10) * 1000);
				update_job(jc->job_id, NULL, &u);
			}
			url = asr_arm_url(v->arm_endpoint, path, NULL);
			method = "POST";
			write = true;
			break;
		case PH_LIST_JOBS:
			if (jc->list_url)
				url = jc->list_url;
			else
				url = job_list_url(v, jc->job.requested_at);
			break;
		case PH_SCENARIO_JOB:
		case PH_POLL:
			url = asr_arm_url(v->arm_endpoint, v->vault_path,
							  psprintf("/replicationJobs/%s", jc->job.azure_job));
			/* like an SDK poller: the action's own x-ms-client-request-id */
			if (jc->phase == PH_POLL)
				crid = jc->job.client_request_id;
			break;
		case PH_CONTROL:
			method = "POST";
			write = true;
			if (strcmp(jc->job.control, "resume") == 0)
			{
				url = asr_arm_url(v->arm_endpoint, v->vault_path,
								  psprintf("/replicationJobs/%s/resume", jc->job.azure_job));
				body = asr_arm_resume_body(control_comment(jc->job_id));
			}
			else
				url = asr_arm_url(v->arm_endpoint, v->vault_path,
								  psprintf("/replicationJobs/%s/cancel", jc->job.azure_job));
			break;
		case PH_FINAL:
			return;
	}

	asr_vault_call_spec(v, &spec, method, url, write);
	spec.body = body;
	/*
	 * A poll that keeps failing comes back to the job, which says why and
	 * may then be polled through its vault's job list; other reads are
	 * retried until they succeed (nothing is gained by starting over).
	 */
	if (jc->phase == PH_POLL)
		spec.max_attempts = READ_ATTEMPTS;
	if (jc->phase == PH_POST)
		crid = jc->job.client_request_id;
	spec.client_request_id = crid;
	(void) asr_client_call(&spec, jc->cxt, on_response, jc);
}

/* ----------------------------------------------------------------
 * phases: Azure's answers
 * ---------------------------------------------------------------- */

typedef struct Answer
{
	AsrHttpResponse *resp;
	AsrCall    *call;
} Answer;

/* Azure refused the request for good: the job fails with Azure's words. */
static void
fail_with_azure_error(JobCtx *jc, AsrHttpResponse *resp, const char *doing)
{
	AsrArmError *err = asr_arm_parse_error(resp);

	fail_job(jc, err->code, psprintf("%s: %s", doing, asr_arm_error_text(err)));
}

static void
answer_check_item(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc = asr_json_parse(resp->body, resp->body_len, &perr);
	JsonbContainer *props = doc ? asr_json_object(&doc->root, "properties") : NULL;
	JsonbContainer *ops = props ? asr_json_array(props, "allowedOperations") : NULL;
	const char *needed = required_operation(jc->job.action);
	bool		allowed = false;
	int			i;

	if (props == NULL)
	{
		wait_until(jc, asr_arm_backoff_ms(3),
				   psprintf("Azure's item document could not be read: %s",
							perr ? perr : "no properties"));
		return;
	}
	/* the table learns the item's current state either way */
	(void) asr_sync_store_item(jc->vault_id, jc->job.item_id, doc);

	for (i = 0; i < asr_json_array_size(ops); i++)
	{
		char	   *op = asr_json_array_string(ops, i);

		if (op && needed && pg_strcasecmp(op, needed) == 0)
			allowed = true;
	}
	if (!allowed)
	{
		fail_job(jc, "OperationNotAllowed",
				 psprintf("Azure does not allow %s on \"%s\" now: protection state %s, allowed operations [%s].",
						  needed ? needed : jc->job.action, jc->job.item_name,
						  json_text_value(props, "protectionState") ?
						  json_text_value(props, "protectionState") : "unknown",
						  ops ? asr_json_container_text(ops) : ""));
		return;
	}
	jc->phase = PH_POST;
	start_phase(jc);
}

/*
 * An LRO URL from a response (Azure-AsyncOperation or Location), made
 * absolute against the ARM endpoint when relative, and kept only when it
 * passes the origin check: https, no userinfo, the ARM host and port.  A
 * rejected URL is named (without its query, which may be signed) in notes.
 */
static char *
checked_async_url(AsrVault *v, AsrHttpResponse *resp, const char *header, char **notes)
{
	const char *value = asr_http_header(resp, header);
	char	   *url;
	const char *why = NULL;

	if (value == NULL || value[0] == '\0')
		return NULL;
	if (value[0] == '/' && value[1] != '/')
	{
		size_t		blen = strlen(v->arm_endpoint);

		while (blen > 0 && v->arm_endpoint[blen - 1] == '/')
			blen--;
		url = psprintf("%.*s%s", (int) blen, v->arm_endpoint, value);
	}
	else
		url = pstrdup(value);
	if (asr_url_same_origin(url, v->arm_endpoint, false, &why))
		return url;
	*notes = psprintf("%s; the %s URL was not followed (%s)",
					  *notes ? *notes : "",
					  strcmp(header, "location") == 0 ? "Location" : "Azure-AsyncOperation",
					  why ? why : "not on the ARM endpoint");
	return NULL;
}

/*
 * The answer to an action POST.  202 (or 200/201) with a job name: the
 * job runs.  A refusal: the job fails with Azure's error.  Anything that
 * leaves the outcome unknown (a 5xx, a timeout after the request left):
 * reconcile before deciding, never send blindly again.
 */
static void
answer_post(JobCtx *jc, AsrHttpResponse *resp)
{
	AsrRetryClass cls = asr_arm_classify(resp);
	AsrJobUpdate u = {0};
	char	   *name;
	AsrVault   *v;
	char	   *operation_url;
	char	   *location_url;
	char	   *notes = NULL;

	if (cls == ASR_FATAL && resp->status != 409)
	{
		fail_with_azure_error(jc, resp, "Azure refused the request");
		return;
	}
	if (cls == ASR_FATAL && !jc->conflict_seen)
	{
		/*
		 * 409: an operation runs on the item.  It may be ours (a request
		 * that reached Azure before we lost its answer): look before
		 * failing.
		 */
		jc->conflict_seen = true;
		jc->phase = PH_LIST_JOBS;
		jc->list_url = NULL;
		start_phase(jc);
		return;
	}
	if (cls == ASR_FATAL)
	{
		fail_with_azure_error(jc, resp, "Azure refused the request");
		return;
	}
	if (cls == ASR_RETRY)
	{
		/* sent, outcome unknown: look for the job Azure may have created */
		jc->phase = PH_LIST_JOBS;
		jc->list_url = NULL;
		u.progress = -1;
		u.last_error = resp->status == 0
			? psprintf("request outcome unknown (%s); reconciling with Azure's job list",
					   resp->transport_error ? resp->transport_error : "no response")
			: psprintf("request outcome unknown (HTTP %ld); reconciling with Azure's job list",
					   resp->status);
		update_job(jc->job_id, NULL, &u);
		start_phase(jc);
		return;
	}

	name = asr_arm_job_name(resp);
	v = job_vault(jc);
	operation_url = checked_async_url(v, resp, "azure-asyncoperation", &notes);
	location_url = checked_async_url(v, resp, "location", &notes);
	if (name == NULL && resp->status != 202 &&
		asr_http_header(resp, "azure-asyncoperation") == NULL &&
		asr_http_header(resp, "location") == NULL)
	{
		/* 200/201/204 without LRO headers: finished synchronously */
		AsrJobDoc  *doc = palloc0(sizeof(AsrJobDoc));

		doc->state = "Succeeded";
		doc->state_description = psprintf("finished synchronously (HTTP %ld)", resp->status);
		jc->doc = doc;
		u.state = "running";
		u.detail = psprintf("Azure finished the request synchronously (HTTP %ld)", resp->status);
		u.progress = -1;
		u.last_error = "";
		u.count_attempt = true;
		update_job(jc->job_id, NULL, &u);
		jc->phase = PH_FINAL;
		asr_sync_item(v, jc->job.item_id, jc->job.item_arm_id, jc->cxt, on_final_synced, jc);
		return;
	}
	if (name == NULL)
	{
		/* accepted, but Azure did not say which job: find it */
		u.progress = -1;
		u.last_error = psprintf("Azure accepted the request (HTTP %ld) without naming its job%s; "
								"looking for it in the vault's job list",
								resp->status, notes ? notes : "");
		update_job(jc->job_id, NULL, &u);
		jc->phase = PH_LIST_JOBS;
		jc->list_url = NULL;
		start_phase(jc);
		return;
	}
	u.state = "running";
	u.detail = psprintf("Azure accepted the request (HTTP %ld); ASR job %s%s", resp->status, name,
						notes ? notes : "");
	u.progress = -1;
	u.azure_job = name;
	u.operation_url = operation_url;
	u.location_url = location_url;
	u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 asr_arm_retry_after_ms(resp, asr_poll_interval * 1000L));
	u.last_error = "";
	u.count_attempt = true;
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

/* does this ASR job carry our client request id? */
static bool
job_is_ours(JobCtx *jc, JsonbContainer *jobdoc)
{
	char	   *activity = asr_json_path_string(jobdoc, "properties", "activityId", NULL);
	size_t		n = strlen(jc->job.client_request_id);

	return activity != NULL && pg_strncasecmp(activity, jc->job.client_request_id, n) == 0;
}

static void
adopt_job(JobCtx *jc, const char *name, const char *how)
{
	AsrJobUpdate u = {0};

	u.state = "running";
	u.detail = psprintf("found ASR job %s %s; not sent again", name, how);
	u.progress = -1;
	u.azure_job = name;
	u.next_poll_at = GetCurrentTimestamp();
	u.last_error = "";
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

static void
answer_list_jobs(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *value;
	char	   *next;
	int			i;

	if (asr_arm_classify(resp) != ASR_OK)
	{
		wait_until(jc, asr_arm_backoff_ms(3),
				   psprintf("reconciling: Azure's job list answered HTTP %ld", resp->status));
		return;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	if (doc == NULL)
	{
		wait_until(jc, asr_arm_backoff_ms(3), psprintf("reconciling: %s", perr));
		return;
	}
	value = asr_json_array(&doc->root, "value");
	for (i = 0; i < asr_json_array_size(value); i++)
	{
		JsonbContainer *j = asr_json_array_container(value, i);

		if (j != NULL && job_is_ours(jc, j))
		{
			adopt_job(jc, asr_json_string(j, "name"), "in the vault's job list");
			return;
		}
	}
	next = asr_json_string(&doc->root, "nextLink");
	if (next != NULL && next[0] != '\0')
	{
		jc->list_url = MemoryContextStrdup(jc->cxt, next);
		start_phase(jc);
		return;
	}
	if (jc->job.request == NULL)
	{
		/* a restart of an ASR job that left no trace: send it again */
		jc->phase = PH_POST;
		start_phase(jc);
		return;
	}
	jc->phase = PH_RECONCILE_ITEM;
	start_phase(jc);
}

static void
answer_reconcile_item(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *props;
	char	   *scenario;
	char	   *job_id;

	if (asr_arm_classify(resp) != ASR_OK)
	{
		wait_until(jc, asr_arm_backoff_ms(3),
				   psprintf("reconciling: reading the item answered HTTP %ld", resp->status));
		return;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	props = doc ? asr_json_object(&doc->root, "properties") : NULL;
	if (props == NULL)
	{
		wait_until(jc, asr_arm_backoff_ms(3), "reconciling: unreadable item document");
		return;
	}
	(void) asr_sync_store_item(jc->vault_id, jc->job.item_id, doc);
	scenario = asr_json_path_string(props, "currentScenario", "scenarioName", NULL);
	job_id = asr_json_path_string(props, "currentScenario", "jobId", NULL);
	if (scenario && pg_strcasecmp(scenario, "None") != 0 && job_id && job_id[0])
	{
		char	   *slash = strrchr(job_id, '/');

		jc->job.azure_job = MemoryContextStrdup(jc->cxt, slash ? slash + 1 : job_id);
		jc->phase = PH_SCENARIO_JOB;
		start_phase(jc);
		return;
	}
	/* no trace of our request anywhere: it never reached ASR */
	jc->phase = PH_CHECK_ITEM;
	answer_check_item(jc, resp);
}

static void
answer_scenario_job(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc;

	if (asr_arm_classify(resp) != ASR_OK ||
		(doc = asr_json_parse(resp->body, resp->body_len, &perr)) == NULL)
	{
		wait_until(jc, asr_arm_backoff_ms(3), "reconciling: the item's current job could not be read");
		return;
	}
	if (job_is_ours(jc, &doc->root))
	{
		adopt_job(jc, jc->job.azure_job, "as the item's current scenario");
		return;
	}
	fail_job(jc, "ItemBusy",
			 psprintf("Azure is running another job (%s) on \"%s\"; this request was not sent again.",
					  jc->job.azure_job, jc->job.item_name));
}

/*
 * A poll of the ASR job: progress and tasks go to the table; a final
 * state leads to the re-read of the item before the job is finished.
 */
static void
answer_poll(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	AsrJobDoc  *doc;
	AsrJobOutcome outcome;
	AsrJobUpdate u = {0};
	char	   *perr2 = NULL;
	Jsonb	   *tasks;

	if (asr_arm_classify(resp) == ASR_FATAL)
	{
		if (resp->status == 404)
			fail_job(jc, "JobNotFound",
					 psprintf("Azure no longer knows ASR job %s.", jc->job.azure_job));
		else
			fail_with_azure_error(jc, resp, "reading the ASR job failed");
		return;
	}
	if (asr_arm_classify(resp) == ASR_RETRY)
	{
		wait_until(jc, asr_arm_backoff_ms(3), psprintf("polling: HTTP %ld", resp->status));
		return;
	}
	doc = asr_arm_parse_job(resp->body, resp->body_len, &perr);
	if (doc == NULL)
	{
		wait_until(jc, asr_arm_backoff_ms(3), psprintf("polling: %s", perr));
		return;
	}
	outcome = asr_arm_job_outcome(doc->state);
	tasks = asr_json_parse(doc->tasks_json, strlen(doc->tasks_json), &perr2);

	u.progress = doc->progress;
	u.tasks = tasks;
	u.azure_state = doc->state;
	u.last_error = "";
	if (doc->new_item_id)
		u.new_item_arm_id = doc->new_item_id;

	if (outcome == ASR_JOB_RUNNING || outcome == ASR_JOB_SUSPENDED)
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(jc->job.requested_at,
														   (int64) asr_job_timeout * 1000);

		if (GetCurrentTimestamp() > deadline)
		{
			fail_job(jc, "JobTimeout",
					 psprintf("ASR job %s is still %s after asr.job_timeout (%d s); it was not cancelled in Azure.",
							  jc->job.azure_job, doc->state, asr_job_timeout));
			return;
		}
		if (outcome == ASR_JOB_SUSPENDED && strcmp(jc->job.state, "suspended") != 0)
		{
			u.state = "suspended";
			u.detail = psprintf("Azure suspended the job (%s); it waits for asr_resume or asr_cancel",
								doc->state_description ? doc->state_description : "Suspended");
		}
		else if (outcome == ASR_JOB_RUNNING && strcmp(jc->job.state, "suspended") == 0)
		{
			u.state = "running";
			u.detail = "Azure resumed the job";
		}
		u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 asr_arm_retry_after_ms(resp, asr_poll_interval * 1000L));
		update_job(jc->job_id, NULL, &u);
		jc->finished = true;
		return;
	}

	/* finished in Azure: record, then re-read the item before finishing */
	update_job(jc->job_id, NULL, &u);
	jc->doc = doc;
	jc->phase = PH_FINAL;
	{
		AsrVault   *v = job_vault(jc);
		const char *arm_id = doc->new_item_id && outcome == ASR_JOB_SUCCEEDED
			? doc->new_item_id : jc->job.item_arm_id;

		asr_sync_item(v, jc->job.item_id, arm_id, jc->cxt, on_final_synced, jc);
	}
}

static void
answer_control(JobCtx *jc, AsrHttpResponse *resp)
{
	AsrJobUpdate u = {0};

	u.progress = -1;
	u.clear_control = true;
	u.next_poll_at = GetCurrentTimestamp();
	if (asr_arm_classify(resp) == ASR_OK)
		u.last_error = "";
	else
	{
		AsrArmError *err = asr_arm_parse_error(resp);

		u.last_error = psprintf("Azure refused to %s ASR job %s: %s", jc->job.control,
								jc->job.azure_job, asr_arm_error_text(err));
	}
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

static void
answer_step(JobCtx *jc, void *arg)
{
	AsrHttpResponse *resp = (AsrHttpResponse *) arg;

	if (!asr_job_load(jc->job_id, true, &jc->job) ||
		asr_job_state_is_final(jc->job.state))
	{
		jc->finished = true;	/* cancelled or gone meanwhile */
		return;
	}
	if (resp->status == 0 && resp->never_sent && resp->transport_error != NULL)
	{
		/*
		 * The request never left this machine (no token: Microsoft Entra ID
		 * or IMDS refused us...), so nothing happened in Azure: keep the
		 * client's words, which say what to fix, and try this step later.
		 */
		wait_until(jc, asr_arm_backoff_ms(3), resp->transport_error);
		return;
	}
	switch (jc->phase)
	{
		case PH_CHECK_ITEM:
			if (asr_arm_classify(resp) == ASR_OK)
				answer_check_item(jc, resp);
			else if (asr_arm_classify(resp) == ASR_FATAL)
				fail_with_azure_error(jc, resp, "reading the item failed");
			else
				wait_until(jc, asr_arm_backoff_ms(3), psprintf("reading the item: HTTP %ld", resp->status));
			break;
		case PH_POST:
			answer_post(jc, resp);
			break;
		case PH_LIST_JOBS:
			answer_list_jobs(jc, resp);
			break;
		case PH_RECONCILE_ITEM:
			answer_reconcile_item(jc, resp);
			break;
		case PH_SCENARIO_JOB:
			answer_scenario_job(jc, resp);
			break;
		case PH_POLL:
			answer_poll(jc, resp);
			break;
		case PH_CONTROL:
			answer_control(jc, resp);
			break;
		case PH_FINAL:
			break;
	}
}

static void
on_response(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	JobCtx	   *jc = (JobCtx *) arg;

	if (jc->finished)
		return;
	run_job_step(jc, answer_step, resp);
}

/* ----------------------------------------------------------------
 * the final step: the item has been re-read
 * ---------------------------------------------------------------- */

static void
final_step(JobCtx *jc, void *arg)
{
	const char *error = (const char *) arg;
	AsrJobDoc  *doc = jc->doc;
	AsrJobOutcome outcome = asr_arm_job_outcome(doc->state);
	AsrJobUpdate u = {0};
	char	   *used_point = NULL;

	if (!asr_job_load(jc->job_id, true, &jc->job) || asr_job_state_is_final(jc->job.state))
	{
		jc->finished = true;
		return;
	}
	if (error != NULL)
	{
		/* the item could not be re-read: try again later, the job waits */
		wait_until(jc, asr_arm_backoff_ms(3),
				   psprintf("re-reading the item after the job: %s", error));
		return;
	}
	used_point = doc->failover_point_id;
	if (used_point == NULL)
	{
		/* the item's failoverRecoveryPointId, as stored by the sync */
		Oid			type = INT8OID;
		Datum		val = Int64GetDatum(jc->job.item_id);

		SPI_connect();
		asr_spi(psprintf("SELECT properties #>> '{failoverRecoveryPointId}' "
						 "FROM %s WHERE item_id = $1", asr_rel("asr_items")),
				1, &type, &val, NULL, true, 1);
		if (SPI_processed == 1 && !asr_spi_isnull(0, 1))
			used_point = pstrdup(asr_spi_text(0, 1));
		SPI_finish();
	}

	u.progress = -1;
	u.last_error = "";
	switch (outcome)
	{
		case ASR_JOB_SUCCEEDED:
			u.state = "succeeded";
			u.detail = psprintf("ASR job %s %s%s",
								doc->name ? doc->name : jc->job.azure_job ? jc->job.azure_job : "(unnamed)",
								doc->state_description ? doc->state_description : "Succeeded",
								doc->new_item_id ? "; the item now lives at its new path" : "");
			if (strcmp(jc->job.action, "failover") == 0 ||
				strcmp(jc->job.action, "test_failover") == 0 ||
				strcmp(jc->job.action, "change_recovery_point") == 0)
				u.used_recovery_point = used_point;
			break;
		case ASR_JOB_CANCELLED:
			u.state = "cancelled";
			u.detail = psprintf("ASR job %s was cancelled", jc->job.azure_job);
			break;
		default:
			u.state = "failed";
			u.error_code = doc->error ? doc->error->code : "AsrJobFailed";
			u.error_message = doc->error ? asr_arm_error_text(doc->error)
				: psprintf("ASR job %s failed", jc->job.azure_job);
			u.detail = psprintf("%s: %s", u.error_code, u.error_message);
			break;
	}
	update_job(jc->job_id, NULL, &u);
	jc->finished = true;
}

static void
on_final_synced(void *arg, const char *error)
{
	JobCtx	   *jc = (JobCtx *) arg;

	if (jc->finished)
		return;
	run_job_step(jc, final_step, (void *) error);
}

/* ----------------------------------------------------------------
 * polling a vault through its job list
 * ---------------------------------------------------------------- */

static void on_vault_list(AsrCall *call, AsrHttpResponse *resp, void *arg);

static void
start_step(JobCtx *jc, void *arg)
{
	start_phase(jc);
}

/* the list could not answer for these jobs: poll each on its own */
static void
vault_poll_fallback(VaultPoll *vp)
{
	ListCell   *lc;

	vp->finished = true;
	foreach(lc, vp->jobs)
	{
		JobCtx	   *jc = (JobCtx *) lfirst(lc);

		jc->vp = NULL;
		if (jc->finished || list_member_ptr(vp->seen, jc))
			continue;
		run_job_step(jc, start_step, NULL);
	}
}

/* send (the next page of) a vault's job list, inside a transaction */
static bool
vault_poll_send(VaultPoll *vp, const char *url)
{
	AsrVault   *v = asr_vault_get(vp->vault_id, false);
	AsrCallSpec spec;

	if (v == NULL || v->auth == NULL)
		return false;
	asr_vault_call_spec(v, &spec, "GET", url, false);
	spec.max_attempts = READ_ATTEMPTS;
	(void) asr_client_call(&spec, vp->cxt, on_vault_list, vp);
	return true;
}

/*
 * Hand one job document of the list to its job as if it were the answer
 * of its own poll (same status and headers, so Retry-After still counts).
 */
static void
vault_poll_dispatch(VaultPoll *vp, AsrHttpResponse *resp, JsonbContainer *jobdoc)
{
	char	   *name = asr_json_string(jobdoc, "name");
	ListCell   *lc;

	if (name == NULL)
		return;
	foreach(lc, vp->jobs)
	{
		JobCtx	   *jc = (JobCtx *) lfirst(lc);
		AsrHttpResponse one;

		if (jc->finished || list_member_ptr(vp->seen, jc) ||
			pg_strcasecmp(jc->job.azure_job, name) != 0)
			continue;
		{
			MemoryContext old = MemoryContextSwitchTo(vp->cxt);

			vp->seen = lappend(vp->seen, jc);
			MemoryContextSwitchTo(old);
		}
		one = *resp;
		one.body = asr_json_container_text(jobdoc);
		one.body_len = strlen(one.body);
		run_job_step(jc, answer_step, &one);
		return;
	}
}

static void
vault_list_step(VaultPoll *vp, AsrHttpResponse *resp, char **next)
{
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *value;
	int			i;

	*next = NULL;
	if (asr_arm_classify(resp) != ASR_OK)
		return;
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	if (doc == NULL)
		return;
	value = asr_json_array(&doc->root, "value");
	for (i = 0; i < asr_json_array_size(value); i++)
	{
		JsonbContainer *j = asr_json_array_container(value, i);

		if (j != NULL)
			vault_poll_dispatch(vp, resp, j);
	}
	*next = asr_json_string(&doc->root, "nextLink");
	if (*next != NULL)
		*next = MemoryContextStrdup(vp->cxt, *next);
}

/*
 * A page of the vault's job list: update every job it shows, follow
 * nextLink while some job has not been seen, then poll the rest one by one.
 */
static void
on_vault_list(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	VaultPoll  *vp = (VaultPoll *) arg;
	MemoryContext old = CurrentMemoryContext;
	char	   *next = NULL;
	volatile bool sent = false;

	if (vp->finished)
		return;
	PG_TRY();
	{
		vault_list_step(vp, resp, &next);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		FlushErrorState();
		next = NULL;
	}
	PG_END_TRY();
	if (next != NULL && next[0] != '\0' &&
		list_length(vp->seen) < list_length(vp->jobs))
	{
		PG_TRY();
		{
			tx_begin("asr: reading the next page of a job list");
			sent = vault_poll_send(vp, next);
			tx_commit();
			MemoryContextSwitchTo(old);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(old);
			FlushErrorState();
			AbortCurrentTransaction();
			sent = false;
		}
		PG_END_TRY();
	}
	if (!sent)
		vault_poll_fallback(vp);
}

/*
 * Polls of one vault come due a little apart (their jobs were accepted a
 * little apart, a transient error delayed some), so few are due at any one
 * moment.  When the vault has more than VAULT_LIST_THRESHOLD jobs running
 * (*running), the jobs due within the next poll interval join the due
 * ones: the job list answers for them at no extra request.  Returns mine
 * with those added; inside a transaction.
 */
static List *
add_soon_due(int vault_id, List *mine, int *running)
{
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	int			nestlevel;
	uint64		i;
	int			n = 0;
	int64	   *ids;

	values[0] = Int32GetDatum(vault_id);
	values[1] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																 (int64) asr_poll_interval * 1000));
	SPI_connect();
	nestlevel = asr_pin_search_path();
	asr_spi(psprintf("SELECT j.job_id, j.next_poll_at <= $2 FROM %s j JOIN %s i USING (item_id) "
					 "WHERE i.vault_id = $1 AND j.state = ANY ('{running,suspended}') "
					 "  AND j.azure_job IS NOT NULL AND j.control IS NULL",
					 asr_rel("asr_jobs"), asr_rel("asr_items")),
			2, types, values, NULL, true, 0);
	*running = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (SPI_processed + 1));
	if (SPI_processed > VAULT_LIST_THRESHOLD)
	{
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			bool		soon = DatumGetBool(asr_spi_datum(i, 2, &isnull));

			if (!isnull && soon)
				ids[n++] = DatumGetInt64(asr_spi_datum(i, 1, &isnull));
		}
	}
	asr_unpin_search_path(nestlevel);
	SPI_finish();

	for (i = 0; i < (uint64) n && list_length(active) < MAX_ACTIVE_JOBS; i++)
	{
		JobCtx	   *jc;

		if (is_active(ids[i]))
			continue;
		jc = new_ctx(ids[i]);
		if (!ctx_load(jc) || jc->job.azure_job == NULL || jc->job.control != NULL)
		{
			jc->finished = true;
			continue;
		}
		jc->phase = PH_POLL;
		mine = lappend(mine, jc);
	}
	return mine;
}

/*
 * Start the polls of due jobs: one job-list GET for a vault with more than
 * VAULT_LIST_THRESHOLD jobs running (and more than one poll to make now),
 * a GET per job otherwise.  Inside a transaction.
 */
static void
start_polls(List *polls)
{
	List	   *vaults = NIL;
	ListCell   *lc;
	ListCell   *lc2;

	foreach(lc, polls)
	{
		JobCtx	   *jc = (JobCtx *) lfirst(lc);

		if (!list_member_int(vaults, jc->vault_id))
			vaults = lappend_int(vaults, jc->vault_id);
	}
	foreach(lc, vaults)
	{
		int			vault_id = lfirst_int(lc);
		List	   *mine = NIL;
		int			running = 0;
		TimestampTz since = DT_NOEND;
		AsrVault   *v = asr_vault_get(vault_id, false);

		foreach(lc2, polls)
		{
			JobCtx	   *jc = (JobCtx *) lfirst(lc2);

			if (jc->vault_id == vault_id)
				mine = lappend(mine, jc);
		}
		if (v != NULL && v->auth != NULL)
			mine = add_soon_due(vault_id, mine, &running);
		foreach(lc2, mine)
			since = Min(since, ((JobCtx *) lfirst(lc2))->job.requested_at);
		if (running > VAULT_LIST_THRESHOLD && list_length(mine) > 1 &&
			v != NULL && v->auth != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(dispatch_context);
			VaultPoll  *vp = palloc0(sizeof(VaultPoll));

			vp->cxt = AllocSetContextCreate(dispatch_context, "asr vault poll",
											ALLOCSET_SMALL_SIZES);
			vp->vault_id = vault_id;
			vp->jobs = list_copy(mine);
			vault_polls = lappend(vault_polls, vp);
			foreach(lc2, mine)
				((JobCtx *) lfirst(lc2))->vp = vp;
			MemoryContextSwitchTo(vp->cxt);
			(void) vault_poll_send(vp, job_list_url(v, since));
			MemoryContextSwitchTo(old);
		}
		else
		{
			foreach(lc2, mine)
				start_phase((JobCtx *) lfirst(lc2));
		}
	}
}

/* ----------------------------------------------------------------
 * picking up work
 * ---------------------------------------------------------------- */

static bool
is_active(int64 job_id)
{
	ListCell   *lc;

	foreach(lc, active)
		if (((JobCtx *) lfirst(lc))->job_id == job_id)
			return true;
	return false;
}

static JobCtx *
new_ctx(int64 job_id)
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
static bool
ctx_load(JobCtx *jc)
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

		/* a vault's job-list poll may still name it: keep it until then */
		if (jc->finished && jc->vp == NULL)
		{
			MemoryContextDelete(jc->cxt);
			pfree(jc);
		}
		else
			keep = lappend(keep, jc);
	}
	list_free(active);
	active = keep;

	keep = NIL;
	foreach(lc, vault_polls)
	{
		VaultPoll  *vp = (VaultPoll *) lfirst(lc);

		if (vp->finished)
		{
			MemoryContextDelete(vp->cxt);
			pfree(vp);
		}
		else
			keep = lappend(keep, vp);
	}
	list_free(vault_polls);
	vault_polls = keep;
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

	tx_begin("asr: claiming queued jobs");
	while (list_length(active) < MAX_ACTIVE_JOBS)
	{
		int64		job_id = asr_job_claim_next();
		JobCtx	   *jc;
		AsrJobUpdate u = {0};

		if (job_id == 0)
			break;
		jc = new_ctx(job_id);
		if (!ctx_load(jc))
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
		u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 ((int64) asr_http_timeout + 10) * 1000);
		update_job(job_id, "queued", &u);
		jc->phase = jc->job.request == NULL ? PH_POST : PH_CHECK_ITEM;
		{
			/* the list must outlive this transaction */
			MemoryContext old = MemoryContextSwitchTo(caller);

			started = lappend(started, jc);
			MemoryContextSwitchTo(old);
		}
	}
	tx_commit();

	/* the 'submitting' marks are committed: now, and only now, send */
	tx_begin("asr: starting requests");
	foreach(lc, started)
		start_phase((JobCtx *) lfirst(lc));

	due = palloc(sizeof(int64) * 256);
	n = asr_jobs_due(GetCurrentTimestamp(), due, 256);
	for (i = 0; i < n && list_length(active) < MAX_ACTIVE_JOBS; i++)
	{
		JobCtx	   *jc;

		if (is_active(due[i]))
			continue;
		jc = new_ctx(due[i]);
		if (!ctx_load(jc))
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
			jc->phase = PH_POLL;
		start_phase(jc);
	}
	start_polls(polls);
	next = next_due();
	tx_commit();
	return next;
}
