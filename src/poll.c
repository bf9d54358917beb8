/*-------------------------------------------------------------------------
 *
 * poll.c
 *	  Following an ASR job to its end: polls, cancel and resume requests,
 *	  the final re-read of the item, and polling a whole vault through its
 *	  job list.
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
 *	  src/poll.c
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
#include "sync.h"
#include "txn.h"
#include "util.h"

static MemoryContext poll_context = NULL;
static List *vault_polls = NIL; /* of VaultPoll * */

static void on_vault_list(AsrCall *call, AsrHttpResponse *resp, void *arg);

/*
 * A poll of the ASR job: progress and tasks go to the table; a final
 * state leads to the re-read of the item before the job is finished.
 */
void
asr_dx_answer_poll(JobCtx *jc, AsrHttpResponse *resp)
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
			asr_dx_fail(jc, "JobNotFound",
					 psprintf("Azure no longer knows ASR job %s.", jc->job.azure_job));
		else
			asr_dx_fail_azure(jc, resp, "reading the ASR job failed");
		return;
	}
	if (asr_arm_classify(resp) == ASR_RETRY)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3), psprintf("polling: HTTP %ld", resp->status));
		return;
	}
	doc = asr_arm_parse_job(resp->body, resp->body_len, &perr);
	if (doc == NULL)
	{
		asr_dx_wait(jc, asr_arm_backoff_ms(3), psprintf("polling: %s", perr));
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
			asr_dx_fail(jc, "JobTimeout",
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
		asr_dx_update(jc->job_id, NULL, &u);
		jc->finished = true;
		return;
	}

	/* finished in Azure: record, then re-read the item before finishing */
	asr_dx_update(jc->job_id, NULL, &u);
	jc->doc = doc;
	jc->phase = PH_FINAL;
	{
		AsrVault   *v = asr_dx_vault(jc);
		const char *arm_id = doc->new_item_id && outcome == ASR_JOB_SUCCEEDED
			? doc->new_item_id : jc->job.item_arm_id;

		asr_sync_item(v, jc->job.item_id, arm_id, jc->cxt, asr_dx_on_final_synced, jc);
	}
}

void
asr_dx_answer_control(JobCtx *jc, AsrHttpResponse *resp)
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
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
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
		asr_dx_wait(jc, asr_arm_backoff_ms(3),
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
	asr_dx_update(jc->job_id, NULL, &u);
	jc->finished = true;
}

void
asr_dx_on_final_synced(void *arg, const char *error)
{
	JobCtx	   *jc = (JobCtx *) arg;

	if (jc->finished)
		return;
	asr_dx_run_step(jc, final_step, (void *) error);
}

/* ----------------------------------------------------------------
 * polling a vault through its job list
 * ---------------------------------------------------------------- */


static void
start_step(JobCtx *jc, void *arg)
{
	asr_dx_start_phase(jc);
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
		asr_dx_run_step(jc, start_step, NULL);
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
	/*
	 * A page of a busy vault's job list runs to megabytes: each page has a
	 * context of its own, let go once it has been read.
	 */
	vp->page_cxt = AllocSetContextCreate(vp->cxt, "asr vault poll page",
										 ALLOCSET_DEFAULT_SIZES);
	asr_vault_call_spec(v, &spec, "GET", url, false);
	spec.max_attempts = READ_ATTEMPTS;
	(void) asr_client_call(&spec, vp->page_cxt, on_vault_list, vp);
	return true;
}

typedef struct NextPage
{
	VaultPoll  *vp;
	const char *url;
} NextPage;

/* send the next page of a vault's job list (asr_tx_try) */
static bool
next_page_fn(void *arg)
{
	NextPage   *np = (NextPage *) arg;

	return vault_poll_send(np->vp, np->url);
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
		asr_dx_run_step(jc, asr_dx_answer_step, &one);
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
 * The page's context, which holds this call, is deleted last.
 */
static void
on_vault_list(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	VaultPoll  *vp = (VaultPoll *) arg;
	MemoryContext old = CurrentMemoryContext;
	MemoryContext page = vp->page_cxt;
	char	   *next = NULL;
	volatile bool sent = false;

	if (vp->finished)
		return;
	PG_TRY();
	{
		/* the page is read in its own context */
		MemoryContextSwitchTo(page);
		vault_list_step(vp, resp, &next);
		MemoryContextSwitchTo(old);
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
		NextPage	np = {vp, next};

		sent = asr_tx_try("asr: reading the next page of a job list", next_page_fn, &np);
	}
	if (!sent)
		vault_poll_fallback(vp);
	/* this page's call and answer (the next page has a context of its own) */
	MemoryContextDelete(page);
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

	for (i = 0; i < (uint64) n && asr_dispatch_active() < MAX_ACTIVE_JOBS; i++)
	{
		JobCtx	   *jc;

		if (asr_dx_is_active(ids[i]))
			continue;
		jc = asr_dx_new_ctx(ids[i]);
		if (!asr_dx_load(jc) || jc->job.azure_job == NULL || jc->job.control != NULL)
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
void
asr_dx_start_polls(List *polls)
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
			MemoryContext old = MemoryContextSwitchTo(poll_context);
			VaultPoll  *vp = palloc0(sizeof(VaultPoll));

			vp->cxt = AllocSetContextCreate(poll_context, "asr vault poll",
											ALLOCSET_SMALL_SIZES);
			vp->vault_id = vault_id;
			vp->jobs = list_copy(mine);
			vault_polls = lappend(vault_polls, vp);
			foreach(lc2, mine)
				((JobCtx *) lfirst(lc2))->vp = vp;
			MemoryContextSwitchTo(vp->cxt);
			(void) vault_poll_send(vp, asr_dx_job_list_url(v, since));
			MemoryContextSwitchTo(old);
		}
		else
		{
			foreach(lc2, mine)
				asr_dx_start_phase((JobCtx *) lfirst(lc2));
		}
	}
}


/*
 * Delete finished job-list polls (never from inside a completion).
 */
void
asr_dx_reap_polls(void)
{
	ListCell   *lc;
	List	   *keep = NIL;
	MemoryContext old;

	if (poll_context == NULL)
		poll_context = AllocSetContextCreate(TopMemoryContext, "asr polls",
											 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(poll_context);
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
