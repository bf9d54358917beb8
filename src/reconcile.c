/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  Looking for jobs of unknown fate in their vault's job list: one
 *	  listing for every job of a vault that reconciles at the same time.
 *
 * A job whose POST has no known outcome (the answer was lost, ARM answered
 * a 5xx, the worker died with it in flight) is reconciled before anything
 * is sent again: Azure's job list, from a little before the job was
 * requested, is searched for a job whose activityId starts with the
 * request's x-ms-client-request-id (submit.c says what follows).  After a
 * restart, or a burst of 5xx, tens or hundreds of jobs of one vault
 * reconcile together; each reading the job list on its own multiplied the
 * pages read by the number of jobs -- a busy vault's list runs to many
 * pages of a thousand jobs -- against a read budget of 250 + 25/s, and
 * every reconciling job kept the pages it had read.  So jobs wait here to
 * be looked for together: asr_dx_start_lookups(), called each turn of the
 * worker loop, starts one listing per vault for all jobs waiting for it
 * (jobs that come while a vault is being listed wait for the next one).
 * A page is read and let go before the next is asked for; a job is told as
 * soon as a page names it, and the rest once the list ends.
 *
 * Arrows: submit.c queues a job (asr_dx_look_for_job) and is told the
 * outcome through asr_dx_answer_lookup, run as a step of the job (its own
 * transaction, dispatch.c); this file calls client.c.  It reads no table.
 *
 * IDENTIFICATION
 *	  src/reconcile.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dispatch_int.h"
#include "txn.h"

/* One listing of a vault's job list standing for many jobs. */
typedef struct Lookup
{
	MemoryContext cxt;			/* the lookup's: its jobs, their crids */
	MemoryContext page_cxt;		/* the page being asked for: its call */
	int			vault_id;
	int			njobs;
	JobCtx	  **jobs;			/* NULL once told */
	char	  **crids;			/* the jobs' client request ids */
	int			pages;
} Lookup;

static MemoryContext lookup_context = NULL;
static List *waiting = NIL;		/* of JobCtx *, in lookup_context */
static List *lookups = NIL;		/* of Lookup *, in lookup_context */

static void ask_page(Lookup *l, AsrVault *v, const char *url);
static bool ask_next_page(Lookup *l, const char *next);
static void on_page(AsrCall *call, AsrHttpResponse *resp, void *arg);


static void
ensure_context(void)
{
	if (lookup_context == NULL)
		lookup_context = AllocSetContextCreate(TopMemoryContext, "asr job lookups",
											   ALLOCSET_SMALL_SIZES);
}

/*
 * Queue a job to be looked for in its vault's job list.  The job keeps
 * jc->lookup set (so that it is not reaped) until it has been told.
 */
void
asr_dx_look_for_job(JobCtx *jc)
{
	MemoryContext old;

	ensure_context();
	old = MemoryContextSwitchTo(lookup_context);
	jc->lookup = true;
	waiting = lappend(waiting, jc);
	MemoryContextSwitchTo(old);
}

bool
asr_dx_lookups_pending(void)
{
	return waiting != NIL || lookups != NIL;
}

static bool
vault_listing(int vault_id)
{
	ListCell   *lc;

	foreach(lc, lookups)
		if (((Lookup *) lfirst(lc))->vault_id == vault_id)
			return true;
	return false;
}

/*
 * Start one listing per vault for the jobs waiting for one, unless that
 * vault is being listed already (its jobs wait for the next turn).  Inside
 * a transaction (a job whose vault cannot be read records why and waits).
 */
void
asr_dx_start_lookups(void)
{
	List	   *todo = waiting;
	MemoryContext old;

	if (todo == NIL)
		return;
	waiting = NIL;
	old = MemoryContextSwitchTo(lookup_context);
	while (todo != NIL)
	{
		JobCtx	   *first = (JobCtx *) linitial(todo);
		int			vault_id = first->vault_id;
		List	   *mine = NIL;
		List	   *rest = NIL;
		ListCell   *lc;
		AsrVault   *v;

		foreach(lc, todo)
		{
			JobCtx	   *jc = (JobCtx *) lfirst(lc);

			if (jc->vault_id == vault_id)
				mine = lappend(mine, jc);
			else
				rest = lappend(rest, jc);
		}
		list_free(todo);
		todo = rest;

		v = asr_vault_get(vault_id, false);
		if (vault_listing(vault_id))
			waiting = list_concat(waiting, mine);
		else if (v == NULL || v->auth == NULL)
		{
			/* asr_dx_start_phase says why, and the job waits */
			MemoryContextSwitchTo(old);
			foreach(lc, mine)
			{
				JobCtx	   *jc = (JobCtx *) lfirst(lc);

				jc->lookup = false;
				if (!jc->finished)
					asr_dx_start_phase(jc);
			}
			MemoryContextSwitchTo(lookup_context);
		}
		else
		{
			MemoryContext cxt = AllocSetContextCreate(lookup_context, "asr job lookup",
													  ALLOCSET_SMALL_SIZES);
			Lookup	   *l = MemoryContextAllocZero(cxt, sizeof(Lookup));
			TimestampTz since = DT_NOEND;
			int			i = 0;

			l->cxt = cxt;
			l->vault_id = vault_id;
			l->jobs = MemoryContextAlloc(cxt, sizeof(JobCtx *) * list_length(mine));
			l->crids = MemoryContextAlloc(cxt, sizeof(char *) * list_length(mine));
			foreach(lc, mine)
			{
				JobCtx	   *jc = (JobCtx *) lfirst(lc);

				if (jc->finished)
				{
					jc->lookup = false;
					continue;
				}
				l->jobs[i] = jc;
				l->crids[i] = MemoryContextStrdup(cxt, jc->job.client_request_id);
				since = Min(since, jc->job.requested_at);
				i++;
			}
			l->njobs = i;
			if (l->njobs == 0)
				MemoryContextDelete(cxt);
			else
			{
				lookups = lappend(lookups, l);
				ask_page(l, v, asr_dx_job_list_url(v, since));
			}
		}
		list_free(mine);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Ask for a page in a context of its own: the page before it (whose call
 * is answering now) is let go by the caller.
 */
static void
ask_page(Lookup *l, AsrVault *v, const char *url)
{
	AsrCallSpec spec;
	MemoryContext old;

	l->page_cxt = AllocSetContextCreate(l->cxt, "asr job lookup page",
										ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(l->page_cxt);
	asr_vault_call_spec(v, &spec, "GET", url, false);
	/* a list that keeps failing: the jobs say why and try again later */
	spec.max_attempts = READ_ATTEMPTS;
	(void) asr_client_call(&spec, l->page_cxt, on_page, l);
	MemoryContextSwitchTo(old);
}

typedef struct NextPage
{
	Lookup	   *l;
	const char *url;
} NextPage;

/* ask for a next page, inside a transaction (asr_tx_try) */
static bool
next_page_fn(void *arg)
{
	NextPage   *np = (NextPage *) arg;
	AsrVault   *v = asr_vault_get(np->l->vault_id, false);

	if (v == NULL || v->auth == NULL)
		return false;
	ask_page(np->l, v, np->url);
	return true;
}

/*
 * Ask for the next page from a page's completion, which runs outside any
 * transaction: reading the vault (its cached row is reloaded once it is a
 * minute old or after a SIGHUP) needs one.  False when the page could not
 * be asked for (the vault or the extension is gone, its credentials
 * cannot be used, an ERROR): a call queued before an ERROR is cancelled
 * with the lookup's context.
 */
static bool
ask_next_page(Lookup *l, const char *next)
{
	NextPage	np = {l, next};

	return asr_tx_try("asr: reading the next page of a job list", next_page_fn, &np);
}

/* tell a job what the list said of it: its ASR job's name, or why not */
static void
tell(Lookup *l, int i, const char *found, const char *error)
{
	JobCtx	   *jc = l->jobs[i];
	AsrLookupResult res;

	l->jobs[i] = NULL;
	jc->lookup = false;
	if (jc->finished)
		return;
	res.found = found;
	res.error = error;
	asr_dx_run_step(jc, asr_dx_answer_lookup, &res);
}

/*
 * Which of the waiting jobs this listed ASR job belongs to: ASR keeps the
 * request's x-ms-client-request-id at the start of the job's activityId.
 */
static int
owner(Lookup *l, JsonbContainer *jobdoc)
{
	char	   *activity = asr_json_path_string(jobdoc, "properties", "activityId", NULL);
	int			i;

	if (activity == NULL)
		return -1;
	for (i = 0; i < l->njobs; i++)
		if (l->jobs[i] != NULL &&
			pg_strncasecmp(activity, l->crids[i], strlen(l->crids[i])) == 0)
			return i;
	return -1;
}

static void
lookup_done(Lookup *l)
{
	MemoryContext old = MemoryContextSwitchTo(lookup_context);

	lookups = list_delete_ptr(lookups, l);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(l->cxt);
}

/*
 * A page of the job list: the jobs it names are told at once; the next
 * page is asked for while some job has not been found, and when the list
 * ends (or fails) the others are told.  Runs from the worker loop, outside
 * a transaction; the page's context (holding this call and its answer) is
 * deleted last.
 */
static void
on_page(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	Lookup	   *l = (Lookup *) arg;
	MemoryContext page = l->page_cxt;
	MemoryContext old = MemoryContextSwitchTo(page);
	char	   *perr = NULL;
	Jsonb	   *doc = NULL;
	JsonbContainer *value = NULL;
	char	   *next = NULL;
	char	   *error = NULL;
	int			left = 0;
	int			i;

	if (asr_arm_classify(resp) != ASR_OK)
		error = psprintf("Azure's job list answered HTTP %ld%s%s", resp->status,
						 resp->transport_error ? ": " : "",
						 resp->transport_error ? resp->transport_error : "");
	else if ((doc = asr_json_parse(resp->body, resp->body_len, &perr)) == NULL)
		error = psprintf("Azure's job list could not be read: %s", perr);
	else if ((value = asr_json_array(&doc->root, "value")) == NULL)
		error = "Azure's job list has no \"value\"";
	if (error != NULL)
	{
		/* every job still waiting says so, and tries again later */
		for (i = 0; i < l->njobs; i++)
			if (l->jobs[i] != NULL)
				tell(l, i, NULL, error);
		MemoryContextSwitchTo(old);
		lookup_done(l);
		return;
	}

	/* the jobs this page names are told at once */
	l->pages++;
	for (i = 0; i < asr_json_array_size(value); i++)
	{
		JsonbContainer *j = asr_json_array_container(value, i);
		int			k = j ? owner(l, j) : -1;
		char	   *name;

		if (k < 0)
			continue;
		name = asr_json_string(j, "name");
		tell(l, k, name ? name : "", NULL);
	}
	next = asr_json_string(&doc->root, "nextLink");
	MemoryContextSwitchTo(old);
	for (i = 0; i < l->njobs; i++)
		if (l->jobs[i] != NULL)
			left++;

	if (left > 0 && next != NULL && next[0] != '\0')
	{
		if (!ask_next_page(l, next))
		{
			/* not "not found": the rest of the list was not read */
			for (i = 0; i < l->njobs; i++)
				if (l->jobs[i] != NULL)
					tell(l, i, NULL, "the next page of the vault's job list could not be asked for (the vault or its credentials could not be read)");
			lookup_done(l);
			return;
		}
		MemoryContextDelete(page);
		return;
	}
	/* the list ends here: Azure has no job for the others */
	for (i = 0; i < l->njobs; i++)
		if (l->jobs[i] != NULL)
			tell(l, i, NULL, NULL);
	lookup_done(l);
}
