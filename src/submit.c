/*-------------------------------------------------------------------------
 *
 * submit.c
 *	  Sending a job's action to Azure, and reconciling a job whose fate is
 *	  unknown.
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
 * IDENTIFICATION
 *	  src/submit.c
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
#include "itemread.h"
#include "sync.h"
#include "txn.h"
#include "util.h"

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
		AsrVault   *v = asr_dx_vault(jc);

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
char *
asr_dx_job_list_url(AsrVault *v, TimestampTz since)
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
void
asr_dx_start_phase(JobCtx *jc)
{
	AsrVault   *v = asr_dx_vault(jc);
	AsrCallSpec spec;
	char	   *url = NULL;
	char	   *body = NULL;
	char	   *path;
	bool		write = false;
	const char *method = "GET";
	const char *crid = NULL;

	if (v == NULL)
	{
		asr_dx_fail(jc, "VaultNotFound", "the vault of this job's item no longer exists in asr_vaults");
		return;
	}
	if (v->auth == NULL)
	{
		asr_dx_wait(jc, 30000, psprintf("cannot use the credentials of server \"%s\": %s",
									   v->server, v->error ? v->error : "unknown error"));
		return;
	}

	switch (jc->phase)
	{
		case PH_CHECK_ITEM:
			/* queued: a wave of jobs of one vault shares its item listing */
			asr_item_read(v, jc->job.item_arm_id, false, jc->cxt, asr_dx_on_item_read, jc);
			return;
		case PH_RECONCILE_ITEM:
			url = asr_arm_url(v->arm_endpoint, jc->job.item_arm_id, NULL);
			break;
		case PH_POST:
			path = request_path(jc, &body);
			if (path == NULL)
			{
				asr_dx_fail(jc, "InvalidRequest", "the job has no request to send");
				return;
			}
			{
				/* no reconciliation before this request can have landed */
				AsrJobUpdate u = {0};

				u.progress = -1;
				u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECONCILE_DELAY_MS());
				asr_dx_update(jc->job_id, NULL, &u);
			}
			url = asr_arm_url(v->arm_endpoint, path, NULL);
			method = "POST";
			write = true;
			break;
		case PH_LIST_JOBS:
			/* looked for with the other jobs of its vault (reconcile.c) */
			asr_dx_look_for_job(jc);
			return;
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
	(void) asr_client_call(&spec, jc->cxt, asr_dx_on_response, jc);
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
void
asr_dx_fail_azure(JobCtx *jc, AsrHttpResponse *resp, const char *doing)
{
	AsrArmError *err = asr_arm_parse_error(resp);

	asr_dx_fail(jc, err->code, psprintf("%s: %s", doing, asr_arm_error_text(err)));
}

/* Azure's current document of the item (or why there is none) */
static void check_item_doc(JobCtx *jc, Jsonb *doc);

typedef struct ItemRead
{
	Jsonb	   *doc;
	AsrHttpResponse *resp;
	const char *error;
} ItemRead;

/*
 * The re-read before sending: the action is sent only if Azure still
 * allows it.  A read that failed for good fails the job with Azure's
 * words; any other failure lets the job wait and try again.
 */
static void
check_item_step(JobCtx *jc, void *arg)
{
	ItemRead   *ir = (ItemRead *) arg;
	Jsonb	   *doc = ir->doc;

	if (!asr_job_load(jc->job_id, true, &jc->job) ||
		asr_job_state_is_final(jc->job.state))
	{
		jc->finished = true;	/* cancelled or gone meanwhile */
		return;
	}
	if (doc == NULL)
	{
		AsrHttpResponse *resp = ir->resp;

		if (resp != NULL && resp->status == 0 && resp->never_sent && resp->transport_error)
			asr_dx_wait(jc, asr_arm_backoff_ms(3), resp->transport_error);
		else if (resp != NULL && asr_arm_classify(resp) == ASR_FATAL)
			asr_dx_fail_azure(jc, resp, "reading the item failed");
		else
			asr_dx_wait(jc, asr_arm_backoff_ms(3), psprintf("reading the item: %s", ir->error));
		return;
	}
	check_item_doc(jc, doc);
}

/*
 * Send the action if Azure's document of the item allows it; otherwise
 * the job fails with the item's state and the operations allowed.
 */
static void
check_item_doc(JobCtx *jc, Jsonb *doc)
{
	JsonbContainer *props = asr_json_object(&doc->root, "properties");
	JsonbContainer *ops = asr_json_array(props, "allowedOperations");
	const char *needed = asr_dx_required_operation(jc->job.action);
	bool		allowed = false;
	int			i;

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
		asr_dx_fail(jc, "OperationNotAllowed",
				 psprintf("Azure does not allow %s on \"%s\" now: protection state %s, allowed operations [%s].",
						  needed ? needed : jc->job.action, jc->job.item_name,
						  asr_dx_json_text(props, "protectionState") ?
						  asr_dx_json_text(props, "protectionState") : "unknown",
						  ops ? asr_json_container_text(ops) : ""));
		return;
	}
	jc->phase = PH_POST;
	asr_dx_start_phase(jc);
}

void
asr_dx_on_item_read(void *arg, Jsonb *doc, AsrHttpResponse *resp, const char *error)
{
	JobCtx	   *jc = (JobCtx *) arg;
	ItemRead	ir;

	if (jc->finished)
		return;
	ir.doc = doc;
	ir.resp = resp;
	ir.error = error;
	asr_dx_run_step(jc, check_item_step, &ir);
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
void
asr_dx_answer_post(JobCtx *jc, AsrHttpResponse *resp)
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
		asr_dx_fail_azure(jc, resp, "Azure refused the request");
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
		asr_dx_start_phase(jc);
		return;
	}
	if (cls == ASR_FATAL)
	{
		asr_dx_fail_azure(jc, resp, "Azure refused the request");
		return;
	}
	if (cls == ASR_RETRY && resp->status != 0 && resp->status != 408 && resp->status != 504)
	{
		/*
		 * Sent, and ARM answered an error of its own or of ASR's: whatever
		 * happened has happened.  Look for the job Azure may have created.
		 */
		jc->phase = PH_LIST_JOBS;
		u.progress = -1;
		u.last_error = psprintf("request outcome unknown (HTTP %ld); reconciling with Azure's job list",
								resp->status);
		asr_dx_update(jc->job_id, NULL, &u);
		asr_dx_start_phase(jc);
		return;
	}
	if (cls == ASR_RETRY)
	{
		/*
		 * Sent, and no answer (timeout, connection lost) or a gateway
		 * timeout: ASR may still act on the request, so look for the job it
		 * may have created only once the request can no longer land
		 * (listing at once finds nothing, and the item re-read that follows
		 * could send the action twice).  The job stays 'submitting' and is
		 * reconciled at its next due time.
		 */
		u.progress = -1;
		u.next_poll_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECONCILE_DELAY_MS());
		u.last_error = resp->status == 0
			? psprintf("request outcome unknown (%s); reconciling with Azure's job list once it can no longer land (%d s)",
					   resp->transport_error ? resp->transport_error : "no response",
					   (int) (RECONCILE_DELAY_MS() / 1000))
			: psprintf("request outcome unknown (HTTP %ld); reconciling with Azure's job list once it can no longer land (%d s)",
					   resp->status, (int) (RECONCILE_DELAY_MS() / 1000));
		asr_dx_update(jc->job_id, NULL, &u);
		jc->finished = true;
		return;
	}

	name = asr_arm_job_name(resp);
	v = asr_dx_vault(jc);
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
		asr_dx_update(jc->job_id, NULL, &u);
		jc->phase = PH_FINAL;
		asr_sync_item(v, jc->job.item_id, jc->job.item_arm_id, jc->cxt, asr_dx_on_final_synced, jc);
		return;
	}
	if (name == NULL)
	{
		/*
		 * Accepted, but Azure did not say which job: find it.  'running'
		 * records that it was accepted: from here on it is looked for,
		 * never sent again (also by a worker that restarts meanwhile).
		 */
		u.state = "running";
		u.detail = psprintf("Azure accepted the request (HTTP %ld) without naming its job", resp->status);
		u.progress = -1;
		u.last_error = psprintf("Azure accepted the request (HTTP %ld) without naming its job%s; "
								"looking for it in the vault's job list",
								resp->status, notes ? notes : "");
		asr_dx_update(jc->job_id, NULL, &u);
		jc->phase = PH_LIST_JOBS;
		asr_dx_start_phase(jc);
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
	asr_dx_update(jc->job_id, NULL, &u);
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
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

/*
 * What the vault's job list said of a job looked for (reconcile.c): its
 * ASR job is adopted; not there, the item's currentScenario is asked next
 * (an accepted request without a job name is only looked for again); the
 * list could not be read, the job waits and looks again.
 */
void
asr_dx_answer_lookup(JobCtx *jc, void *arg)
{
	AsrLookupResult *res = (AsrLookupResult *) arg;

	if (!asr_job_load(jc->job_id, true, &jc->job) ||
		(strcmp(jc->job.state, "submitting") != 0 && strcmp(jc->job.state, "running") != 0))
	{
		jc->finished = true;	/* cancelled or gone meanwhile */
		return;
	}
	if (res->found != NULL)
	{
		adopt_job(jc, pstrdup(res->found), "in the vault's job list");
		return;
	}
	if (strcmp(jc->job.state, "submitting") == 0 &&
		GetCurrentTimestamp() > TimestampTzPlusMilliseconds(jc->job.requested_at,
															(int64) asr_job_timeout * 1000))
	{
		/*
		 * DESIGN: a job unfinished after asr.job_timeout fails.  Whether
		 * Azure got the request is still unknown (the list cannot be read)
		 * or it did not: either way an action asked for that long ago is
		 * not sent now.
		 */
		asr_dx_fail(jc, "JobTimeout",
					res->error
					? psprintf("whether Azure received the request is still unknown after asr.job_timeout (%d s): %s; it was not sent again. Check the item in Azure before asking again.",
							   asr_job_timeout, res->error)
					: psprintf("Azure has no job for the request after asr.job_timeout (%d s): it never reached Azure, and it is not sent this late.",
							   asr_job_timeout));
		return;
	}
	if (res->error != NULL)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3), psprintf("reconciling: %s", res->error));
		return;
	}
	if (strcmp(jc->job.state, "running") == 0)
	{
		/*
		 * Azure accepted this request without naming its job: it is never
		 * sent again.  Look again later, until asr.job_timeout says enough.
		 */
		TimestampTz deadline = TimestampTzPlusMilliseconds(jc->job.requested_at,
														   (int64) asr_job_timeout * 1000);

		if (GetCurrentTimestamp() > deadline)
			asr_dx_fail(jc, "JobNotFound",
						"Azure accepted the request but its ASR job never appeared in the vault's job list "
						"before asr.job_timeout; it was not sent again.");
		else
			asr_dx_wait(jc, (long) asr_poll_interval * 1000L,
						"Azure accepted the request without naming its job, which is not in the vault's job list yet; looking again");
		return;
	}
	if (jc->job.request == NULL)
	{
		/* a restart of an ASR job that left no trace: send it again */
		jc->phase = PH_POST;
		asr_dx_start_phase(jc);
		return;
	}
	jc->phase = PH_RECONCILE_ITEM;
	asr_dx_start_phase(jc);
}

void
asr_dx_answer_reconcile_item(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *props;
	char	   *scenario;
	char	   *job_id;

	if (asr_arm_classify(resp) != ASR_OK)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3),
				   psprintf("reconciling: reading the item answered HTTP %ld", resp->status));
		return;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	props = doc ? asr_json_object(&doc->root, "properties") : NULL;
	if (props == NULL)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3), "reconciling: unreadable item document");
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
		asr_dx_start_phase(jc);
		return;
	}
	/* no trace of our request anywhere: it never reached ASR */
	jc->phase = PH_CHECK_ITEM;
	check_item_doc(jc, doc);
}

void
asr_dx_answer_scenario_job(JobCtx *jc, AsrHttpResponse *resp)
{
	char	   *perr = NULL;
	Jsonb	   *doc;

	if (asr_arm_classify(resp) != ASR_OK ||
		(doc = asr_json_parse(resp->body, resp->body_len, &perr)) == NULL)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3), "reconciling: the item's current job could not be read");
		return;
	}
	if (job_is_ours(jc, &doc->root))
	{
		adopt_job(jc, jc->job.azure_job, "as the item's current scenario");
		return;
	}
	asr_dx_fail(jc, "ItemBusy",
			 psprintf("Azure is running another job (%s) on \"%s\"; this request was not sent again.",
					  jc->job.azure_job, jc->job.item_name));
}

/* ----------------------------------------------------------------
 * Azure's answers, by phase
 * ---------------------------------------------------------------- */

/*
 * The answer to a job's own call, as a step of the job (its own
 * transaction, dispatch.c): the job is read again first (the DBA may have
 * cancelled it meanwhile), then the phase decides.
 */
void
asr_dx_answer_step(JobCtx *jc, void *arg)
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
		asr_dx_wait(jc, asr_arm_backoff_ms(3), resp->transport_error);
		return;
	}
	switch (jc->phase)
	{
		case PH_CHECK_ITEM:		/* answered through itemread.c */
			break;
		case PH_POST:
			asr_dx_answer_post(jc, resp);
			break;
		case PH_LIST_JOBS:		/* answered through reconcile.c */
			break;
		case PH_RECONCILE_ITEM:
			asr_dx_answer_reconcile_item(jc, resp);
			break;
		case PH_SCENARIO_JOB:
			asr_dx_answer_scenario_job(jc, resp);
			break;
		case PH_POLL:
			asr_dx_answer_poll(jc, resp);
			break;
		case PH_CONTROL:
			asr_dx_answer_control(jc, resp);
			break;
		case PH_FINAL:
			break;
	}
}

/* the client's completion for a job's own call */
void
asr_dx_on_response(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	JobCtx	   *jc = (JobCtx *) arg;

	if (jc->finished)
		return;
	asr_dx_run_step(jc, asr_dx_answer_step, resp);
}
