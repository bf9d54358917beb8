/*-------------------------------------------------------------------------
 *
 * arm.c
 *	  Azure Resource Manager and Site Recovery protocol rules.
 *
 * What ASR expects and answers, as documented in asr-rest.md and seen in
 * Microsoft's recorded traffic: request bodies of the A2A actions, the job
 * name hidden in a 202's headers, the states of ASR jobs and operation
 * status documents, ARM's retry and throttling signals, and error bodies.
 * Nothing here talks to the network or runs SQL, so every function can be
 * fed hostile input by the fuzz harnesses.
 *
 * IDENTIFICATION
 *	  src/arm.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <math.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

#include "arm.h"
#include "armid.h"
#include "asr.h"
#include "json.h"

/* Bounds on Azure's Retry-After: at least 1 s, at most 10 min. */
#define RETRY_AFTER_MIN_MS 1000L
#define RETRY_AFTER_MAX_MS 600000L

/*
 * Split an item's ARM id into its segments.  Segment names are matched
 * case-insensitively: Azure writes both /Subscriptions/ and /subscriptions/.
 */
bool
asr_arm_parse_item_id(const char *arm_id, AsrItemPath *path)
{
	static const char *const names[] = {
		"subscriptions", NULL, "resourceGroups", NULL, "providers",
		"Microsoft.RecoveryServices", "vaults", NULL, "replicationFabrics", NULL,
		"replicationProtectionContainers", NULL, "replicationProtectedItems", NULL
	};
	char	   *copy;
	char	   *save = NULL;
	char	   *seg;
	char	   *values[lengthof(names)];
	int			n = 0;

	memset(path, 0, sizeof(AsrItemPath));
	if (arm_id == NULL || arm_id[0] != '/')
		return false;
	copy = pstrdup(arm_id);
	for (seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save))
	{
		if (n >= (int) lengthof(names))
			return false;
		if (names[n] != NULL && pg_strcasecmp(seg, names[n]) != 0)
			return false;
		values[n++] = seg;
	}
	if (n != (int) lengthof(names))
		return false;
	path->subscription = values[1];
	path->resource_group = values[3];
	path->vault = values[7];
	path->fabric = values[9];
	path->container = values[11];
	path->item = values[13];
	return true;
}

/*
 * ARM ids name the same resource whatever their case.
 */
bool
asr_arm_ids_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return false;
	return pg_strcasecmp(a, b) == 0;
}


/*
 * base + path + suffix + "?api-version=".  Paths come from Azure's own ids
 * and are used byte for byte; the suffix is ours ("/unplannedFailover").
 */
char *
asr_arm_url(const char *base, const char *path, const char *suffix)
{
	size_t		blen = strlen(base);

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	return psprintf("%.*s%s%s?api-version=%s", (int) blen, base, path,
					suffix ? suffix : "", asr_api_version);
}

char *
asr_arm_vault_path(const char *subscription, const char *rg, const char *vault)
{
	return psprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.RecoveryServices/vaults/%s",
					subscription, rg, vault);
}

/*
 * The container an item lives in: its id without the last two segments.
 * switchprotection is posted there.
 */
char *
asr_arm_container_path(const char *item_arm_id)
{
	char	   *copy = pstrdup(item_arm_id);
	int			i;

	for (i = 0; i < 2; i++)
	{
		char	   *slash = strrchr(copy, '/');

		if (slash == NULL)
			return NULL;
		*slash = '\0';
	}
	return copy;
}

static void
json_key_string(StringInfo buf, const char *key, const char *value, bool comma)
{
	if (comma)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

/*
 * Unplanned failover of an A2A item (asr-rest.md §3.2).  "latest" sends no
 * recoveryPointId: Azure then processes all pending data first.
 */
char *
asr_arm_failover_body(const char *point_id, bool shutdown_source)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"properties\":{");
	json_key_string(&buf, "failoverDirection", "PrimaryToRecovery", false);
	json_key_string(&buf, "sourceSiteOperations",
					shutdown_source ? "Required" : "NotRequired", true);
	appendStringInfoString(&buf, ",\"providerSpecificDetails\":{");
	json_key_string(&buf, "instanceType", "A2A", false);
	if (point_id)
		json_key_string(&buf, "recoveryPointId", point_id, true);
	appendStringInfoString(&buf, "}}}");
	return buf.data;
}

/*
 * Test failover (§3.3): into an isolated network, or with no network.
 */
char *
asr_arm_test_failover_body(const char *point_id, const char *network_id)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"properties\":{");
	json_key_string(&buf, "failoverDirection", "PrimaryToRecovery", false);
	if (network_id)
	{
		json_key_string(&buf, "networkType", "VmNetworkAsInput", true);
		json_key_string(&buf, "networkId", network_id, true);
	}
	else
		json_key_string(&buf, "networkType", "NoNetworkAttachAsInput", true);
	appendStringInfoString(&buf, ",\"providerSpecificDetails\":{");
	json_key_string(&buf, "instanceType", "A2A", false);
	if (point_id)
		json_key_string(&buf, "recoveryPointId", point_id, true);
	appendStringInfoString(&buf, "}}}");
	return buf.data;
}

/*
 * Test failover cleanup (§3.4): always with a comment, at most 1024 chars.
 */
char *
asr_arm_test_failover_cleanup_body(const char *notes)
{
	StringInfoData buf;
	char	   *text = pstrdup(notes && notes[0] ? notes : "Test failover cleanup by asr");

	if (strlen(text) > 1024)
		text[pg_mbcliplen(text, strlen(text), 1024)] = '\0';
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"properties\":{");
	json_key_string(&buf, "comments", text, false);
	appendStringInfoString(&buf, "}}");
	return buf.data;
}

/*
 * Change recovery point (§3.5).
 */
char *
asr_arm_apply_point_body(const char *point_id)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"properties\":{");
	json_key_string(&buf, "recoveryPointId", point_id, false);
	appendStringInfoString(&buf, ",\"providerSpecificDetails\":{\"instanceType\":\"A2A\"}}}");
	return buf.data;
}

char *
asr_arm_resume_body(const char *comment)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"properties\":{");
	json_key_string(&buf, "comments", comment && comment[0] ? comment : " ", false);
	appendStringInfoString(&buf, "}}");
	return buf.data;
}

/*
 * The path segment after marker in url (case-insensitive), or NULL.
 */
static char *
segment_after(const char *url, const char *marker)
{
	const char *p;
	size_t		mlen = strlen(marker);
	size_t		n;

	if (url == NULL)
		return NULL;
	for (p = url; *p; p++)
	{
		if (pg_strncasecmp(p, marker, mlen) == 0)
		{
			p += mlen;
			n = strcspn(p, "/?#");
			return pnstrdup(p, n);
		}
	}
	return NULL;
}

/*
 * The ASR job created by an action (asr-rest.md §5.2): from Location, else
 * Azure-AsyncOperation, else x-ms-request-id.  NULL when none of them
 * names a GUID.
 */
char *
asr_arm_job_name(const AsrHttpResponse *resp)
{
	char	   *name;
	const char *rid;

	name = segment_after(asr_http_header(resp, "location"), "/operationresults/");
	if (asr_is_guid(name))
		return name;
	name = segment_after(asr_http_header(resp, "azure-asyncoperation"),
						 "/replicationOperationStatus/");
	if (asr_is_guid(name))
		return name;
	rid = asr_http_header(resp, "x-ms-request-id");
	name = segment_after(rid, "/replicationJobs/");
	if (asr_is_guid(name))
		return name;
	return NULL;
}

/*
 * What to do with a response: ARM clients retry transport errors, 408,
 * 429 and 5xx except 501 and 505; everything else non-2xx is final.
 */
AsrRetryClass
asr_arm_classify(const AsrHttpResponse *resp)
{
	long		s = resp->status;

	if (s == 0)
		return ASR_RETRY;
	if (s >= 200 && s < 300)
		return ASR_OK;
	if (s == 408 || s == 429)
		return ASR_RETRY;
	if (s >= 500 && s != 501 && s != 505)
		return ASR_RETRY;
	return ASR_FATAL;
}

/*
 * How long Azure asks us to wait: Retry-After (seconds or HTTP-date), then
 * retry-after-ms, then x-ms-retry-after-ms; clamped to [1 s, 10 min].
 * fallback_ms when none is present or parsable.
 */
long
asr_arm_retry_after_ms(const AsrHttpResponse *resp, long fallback_ms)
{
	const char *v;
	long		ms = -1;

	v = asr_http_header(resp, "retry-after");
	if (v != NULL && v[0] != '\0')
	{
		char	   *end;
		double		secs = strtod(v, &end);

		if (end != v && *end == '\0' && secs >= 0 && isfinite(secs))
			ms = (long) Min(secs * 1000.0, (double) RETRY_AFTER_MAX_MS);
		else
		{
			time_t		when = curl_getdate(v, NULL);

			if (when != (time_t) -1)
			{
				double		delta = difftime(when, time(NULL)) * 1000.0;

				ms = (long) Max(0.0, Min(delta, (double) RETRY_AFTER_MAX_MS));
			}
		}
	}
	if (ms < 0)
	{
		const char *names[] = {"retry-after-ms", "x-ms-retry-after-ms"};
		int			i;

		for (i = 0; i < 2 && ms < 0; i++)
		{
			char	   *end;
			double		val;

			v = asr_http_header(resp, names[i]);
			if (v == NULL || v[0] == '\0')
				continue;
			val = strtod(v, &end);
			if (end != v && *end == '\0' && val >= 0 && isfinite(val))
				ms = (long) Min(val, (double) RETRY_AFTER_MAX_MS);
		}
	}
	if (ms < 0)
		ms = fallback_ms;
	return Max(RETRY_AFTER_MIN_MS, Min(ms, RETRY_AFTER_MAX_MS));
}

/*
 * Exponential back-off without a Retry-After: 1.6 s, 3.2 s, ... capped at
 * 120 s, as Azure's SDKs do, with ±20% jitter so that a thousand jobs
 * hit by the same outage do not come back in lockstep.
 */
long
asr_arm_backoff_ms(int attempt)
{
	double		ms = 800.0 * pow(2.0, Min(Max(attempt, 1), 8));
	double		jitter = 0.8 + 0.4 * pg_prng_double(&pg_global_prng_state);

	ms = Min(ms, 120000.0) * jitter;
	return (long) ms;
}

/*
 * x-ms-ratelimit-remaining-subscription-{reads,writes}.
 */
bool
asr_arm_ratelimit_remaining(const AsrHttpResponse *resp, const char *kind,
							long *remaining)
{
	char		name[80];
	const char *v;
	char	   *end;
	long		n;

	snprintf(name, sizeof(name), "x-ms-ratelimit-remaining-subscription-%s", kind);
	v = asr_http_header(resp, name);
	if (v == NULL)
		return false;
	n = strtol(v, &end, 10);
	if (end == v || *end != '\0' || n < 0)
		return false;
	*remaining = n;
	return true;
}

/*
 * ARM's {"error": {"code", "message", "details": [...]}}, with ASR's
 * possibleCauses / recommendedAction when present (they usually sit in
 * details[0]).  Falls back to the status line for bodies that are not
 * JSON (a proxy's HTML page).
 */
AsrArmError *
asr_arm_parse_error(const AsrHttpResponse *resp)
{
	AsrArmError *err = palloc0(sizeof(AsrArmError));
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *e;

	if (resp->status == 0)
	{
		err->code = pstrdup(resp->timed_out ? "Timeout" : "TransportError");
		err->message = pstrdup(resp->transport_error ? resp->transport_error : "no response");
		return err;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	e = doc ? asr_json_object(&doc->root, "error") : NULL;
	if (e == NULL && doc != NULL && asr_json_member(&doc->root, "code") != NULL)
		e = &doc->root;
	if (e != NULL)
	{
		JsonbContainer *details = asr_json_array(e, "details");
		JsonbContainer *d0 = asr_json_array_container(details, 0);

		err->code = asr_json_string(e, "code");
		err->message = asr_json_string(e, "message");
		err->possible_causes = asr_json_string(e, "possibleCauses");
		err->recommended_action = asr_json_string(e, "recommendedAction");
		if (d0 != NULL)
		{
			if (err->possible_causes == NULL)
				err->possible_causes = asr_json_string(d0, "possibleCauses");
			if (err->recommended_action == NULL)
				err->recommended_action = asr_json_string(d0, "recommendedAction");
			if (err->message == NULL)
				err->message = asr_json_string(d0, "message");
		}
	}
	if (err->code == NULL)
		err->code = psprintf("HTTP%ld", resp->status);
	if (err->message == NULL)
		err->message = psprintf("Azure answered HTTP status %ld", resp->status);
	return err;
}

/*
 * One line for a job's error_message: message, possible causes and
 * recommended action, as the portal shows them.
 */
char *
asr_arm_error_text(const AsrArmError *err)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, err->message ? err->message : "unknown error");
	if (err->possible_causes && err->possible_causes[0])
		appendStringInfo(&buf, " Possible causes: %s", err->possible_causes);
	if (err->recommended_action && err->recommended_action[0])
		appendStringInfo(&buf, " Recommended action: %s", err->recommended_action);
	return buf.data;
}

/*
 * A task is finished when it reached a final state (Skipped tasks are
 * reported as "Other").
 */
static bool
task_finished(const char *state)
{
	return state != NULL &&
		(pg_strcasecmp(state, "Succeeded") == 0 ||
		 pg_strcasecmp(state, "Failed") == 0 ||
		 pg_strcasecmp(state, "Cancelled") == 0 ||
		 pg_strcasecmp(state, "Canceled") == 0 ||
		 pg_strcasecmp(state, "Other") == 0 ||
		 pg_strcasecmp(state, "Skipped") == 0);
}

static AsrArmError *
job_error(JsonbContainer *errors)
{
	JsonbContainer *e0 = asr_json_array_container(errors, 0);
	JsonbContainer *se;
	JsonbContainer *pe;
	AsrArmError *err;

	if (e0 == NULL)
		return NULL;
	err = palloc0(sizeof(AsrArmError));
	se = asr_json_object(e0, "serviceErrorDetails");
	pe = asr_json_object(e0, "providerErrorDetails");
	if (se != NULL)
	{
		err->code = asr_json_string(se, "code");
		err->message = asr_json_string(se, "message");
		err->possible_causes = asr_json_string(se, "possibleCauses");
		err->recommended_action = asr_json_string(se, "recommendedAction");
	}
	if (err->message == NULL && pe != NULL)
	{
		err->code = asr_json_string(pe, "errorCode");
		err->message = asr_json_string(pe, "errorMessage");
		err->possible_causes = asr_json_string(pe, "possibleCauses");
		err->recommended_action = asr_json_string(pe, "recommendedAction");
	}
	if (err->code == NULL)
		err->code = pstrdup("AsrJobFailed");
	if (err->message == NULL)
		err->message = pstrdup("the Azure Site Recovery job reported an error");
	return err;
}

/*
 * Walk tasks (and the children of group tasks), counting leaves, finished
 * leaves, the first running task and the first error.
 */
static void
walk_tasks(JsonbContainer *tasks, int depth, int *total, int *finished,
		   char **current, AsrArmError **err)
{
	int			n = asr_json_array_size(tasks);
	int			i;

	if (depth > 8)
		return;
	for (i = 0; i < n; i++)
	{
		JsonbContainer *t = asr_json_array_container(tasks, i);
		JsonbContainer *children;
		char	   *state;

		if (t == NULL)
			continue;
		state = asr_json_string(t, "state");
		if (*err == NULL)
			*err = job_error(asr_json_array(t, "errors"));
		children = asr_json_path_container(t, "groupTaskCustomDetails", "childTasks", NULL);
		if (asr_json_array_size(children) > 0)
		{
			if (*current == NULL && state && pg_strcasecmp(state, "InProgress") == 0)
				*current = asr_json_string(t, "friendlyName");
			walk_tasks(children, depth + 1, total, finished, current, err);
			continue;
		}
		(*total)++;
		if (task_finished(state))
			(*finished)++;
		else if (*current == NULL && state && pg_strcasecmp(state, "InProgress") == 0)
			*current = asr_json_string(t, "friendlyName");
	}
}

/*
 * Parse an ASR job.  NULL with *error set when the body is not a job.
 */
AsrJobDoc *
asr_arm_parse_job(const char *body, size_t len, char **error)
{
	Jsonb	   *doc = asr_json_parse(body, len, error);
	JsonbContainer *props;
	JsonbContainer *tasks;
	JsonbContainer *details;
	JsonbContainer *actions;
	AsrJobDoc  *job;
	int			total = 0;
	int			finished = 0;
	int			i;

	if (doc == NULL)
		return NULL;
	props = asr_json_object(&doc->root, "properties");
	if (props == NULL || asr_json_string(props, "state") == NULL)
	{
		*error = pstrdup("the job document has no properties.state");
		return NULL;
	}
	job = palloc0(sizeof(AsrJobDoc));
	job->name = asr_json_string(&doc->root, "name");
	job->state = asr_json_string(props, "state");
	job->state_description = asr_json_string(props, "stateDescription");
	job->scenario = asr_json_string(props, "scenarioName");
	job->activity_id = asr_json_string(props, "activityId");

	tasks = asr_json_array(props, "tasks");
	job->tasks_json = tasks ? asr_json_container_text(tasks) : pstrdup("[]");
	job->error = job_error(asr_json_array(props, "errors"));
	walk_tasks(tasks, 0, &total, &finished, &job->current_task, &job->error);
	if (total > 0)
		job->progress = (int) ((finished * 100L) / total);
	if (asr_arm_job_outcome(job->state) == ASR_JOB_SUCCEEDED)
		job->progress = 100;

	details = asr_json_object(props, "customDetails");
	if (details != NULL)
	{
		JsonbContainer *items = asr_json_array(details, "protectedItemDetails");
		JsonbContainer *first = asr_json_array_container(items, 0);

		job->new_item_id = asr_json_string(details, "newReplicationProtectedItemId");
		if (first != NULL)
			job->failover_point_id = asr_json_string(first, "recoveryPointId");
	}
	actions = asr_json_array(props, "allowedActions");
	for (i = 0; i < asr_json_array_size(actions); i++)
	{
		char	   *a = asr_json_array_string(actions, i);

		if (a)
			job->allowed_actions = lappend(job->allowed_actions, a);
	}
	return job;
}

/*
 * Map an ASR job state to what the worker does with the job.  Unknown
 * states keep the job running (Azure adds states; polling is safe).
 */
AsrJobOutcome
asr_arm_job_outcome(const char *state)
{
	if (state == NULL)
		return ASR_JOB_RUNNING;
	if (pg_strcasecmp(state, "Succeeded") == 0)
		return ASR_JOB_SUCCEEDED;
	if (pg_strcasecmp(state, "Failed") == 0)
		return ASR_JOB_FAILED;
	if (pg_strcasecmp(state, "Cancelled") == 0 || pg_strcasecmp(state, "Canceled") == 0)
		return ASR_JOB_CANCELLED;
	if (pg_strcasecmp(state, "Suspended") == 0)
		return ASR_JOB_SUSPENDED;
	return ASR_JOB_RUNNING;
}

/*
 * An Azure-AsyncOperation status document: {"status": "..."}.  Terminal
 * spellings are compared case-insensitively, Canceled and Cancelled alike.
 */
AsrJobOutcome
asr_arm_operation_outcome(const char *body, size_t len, char **error)
{
	Jsonb	   *doc = asr_json_parse(body, len, error);
	char	   *status;

	if (doc == NULL)
		return ASR_JOB_RUNNING;
	status = asr_json_string(&doc->root, "status");
	if (status == NULL)
	{
		*error = pstrdup("the operation status document has no status");
		return ASR_JOB_RUNNING;
	}
	return asr_arm_job_outcome(status);
}
