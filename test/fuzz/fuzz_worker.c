/*-------------------------------------------------------------------------
 *
 * fuzz_worker.c
 *	  libFuzzer targets over the worker's own readers of Azure's documents:
 *	  replicated item documents, recovery point listings and list pages
 *	  (the vault's job list, its item list), fed to the real submit.c,
 *	  poll.c, sync.c (and itemread.c when the tree has it) and stored with
 *	  the real items.c in the tables of a real CREATE EXTENSION asr.
 *
 * The engine around those files is replaced by stubs (fuzz_stubs.c):
 * asr_client_call() queues the call instead of sending it, the target
 * answers the queue (the fuzzed document for the URLs it is about, fixed
 * answers for the rest), and asr_tx_begin/commit/abort are subtransactions
 * of the single-user backend's transaction.  Every input runs in a
 * subtransaction that is rolled back, so the tables are the same for every
 * input.
 *
 * An ERROR the worker contains (asr_dx_run_step and sync.c's store_step
 * catch it and the job or vault records it) is not a crash; it is a
 * finding only when it comes from code that promises not to raise one on a
 * bad document (json.c, arm.c, the readers), i.e. when it is not raised by
 * an SQL statement or by items.c.  Contained ERRORs are printed once per
 * distinct message ("asr_fuzz: contained ERROR: ...") so that the run shows
 * which documents the tables refuse.
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "arm.h"
#include "asr.h"
#include "client.h"
#include "creds.h"
#include "dispatch.h"
#include "dispatch_int.h"
#include "items.h"
#include "json.h"
#include "jobs.h"
#include "sync.h"
#include "txn.h"

#include "fuzz_worker.h"

/*
 * Present in one version of the tree and not in another (the item reads
 * moved from submit.c to itemread.c): called only when linked.
 */
extern void asr_item_read_flush(void);
extern bool asr_item_read_pending(void);

#pragma weak asr_item_read_flush
#pragma weak asr_item_read_pending

/* what fuzz_setup.sql creates: one vault, FUZZ_ITEMS items, a running job each */
#define FUZZ_ITEMS 6
#define SUB "c183865e-6077-46f2-a3b1-deb0f4f4650a"
#define VAULT_PATH "/subscriptions/" SUB "/resourceGroups/rg1/providers/" \
	"Microsoft.RecoveryServices/vaults/vault1"
#define CONTAINER_PATH VAULT_PATH "/replicationFabrics/asr-a2a-default-eastus/" \
	"replicationProtectionContainers/asr-a2a-default-eastus-container"
#define ARM_BASE "https://management.azure.com"
#define DISK_ID "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Compute/disks/vm%d-osdisk"

/* ----------------------------------------------------------------
 * answering the queue
 * ---------------------------------------------------------------- */

typedef enum UrlKind
{
	URL_ITEM,					/* GET one item */
	URL_POINTS,					/* GET an item's recovery points */
	URL_ITEM_LIST,				/* GET the vault's items */
	URL_JOB_LIST,				/* GET the vault's job list */
	URL_JOB,					/* GET one ASR job */
	URL_NEXT,					/* the nextLink of the fuzzed document */
	URL_POST,					/* an action, cancel or resume */
	URL_OTHER
} UrlKind;

typedef struct Feed
{
	const char *data;			/* the fuzzed document */
	size_t		size;
	char	   *next_link;		/* its nextLink, if any */
	uint32		kinds;			/* bit per UrlKind answered with data */
	int			budget;			/* how many more times */
	const char *job_state;		/* of the ASR jobs not fuzzed */
	bool		items_gone;		/* items not fuzzed answer 404 (cheaper) */
} Feed;

static UrlKind
url_kind(const FuzzCall *c, const Feed *f)
{
	const char *q = strchr(c->url, '?');
	size_t		n = q ? (size_t) (q - c->url) : strlen(c->url);

#define ENDS(s) (n >= strlen(s) && pg_strncasecmp(c->url + n - strlen(s), s, strlen(s)) == 0)
	if (f->next_link && strcmp(c->url, f->next_link) == 0)
		return URL_NEXT;
	if (strcmp(c->method, "POST") == 0)
		return URL_POST;
	if (ENDS("/recoveryPoints"))
		return URL_POINTS;
	if (ENDS("/replicationProtectedItems"))
		return URL_ITEM_LIST;
	if (ENDS("/replicationJobs"))
		return URL_JOB_LIST;
	if (strstr(c->url, "/replicationJobs/"))
		return URL_JOB;
	if (strstr(c->url, "/replicationProtectedItems/"))
		return URL_ITEM;
	return URL_OTHER;
#undef ENDS
}

static AsrHttpResponse *
answer(long status, const char *body, size_t len, List *headers)
{
	AsrHttpResponse *r = palloc0(sizeof(AsrHttpResponse));

	r->status = status;
	r->body = palloc(len + 1);
	memcpy(r->body, body, len);
	r->body[len] = '\0';
	r->body_len = len;
	r->headers = headers;
	return r;
}

static char *
item_id_of(int i)
{
	return psprintf(CONTAINER_PATH "/replicationProtectedItems/item%d", i);
}

/* a well-formed item document (the answer when the item is not fuzzed) */
static char *
item_doc(const char *url)
{
	const char *q = strchr(url, '?');
	char	   *id = q ? pnstrdup(url, q - url) : pstrdup(url);
	const char *path = strstr(id, "/subscriptions/");
	int			i = 1;
	const char *last = strrchr(id, '/');

	if (last && sscanf(last, "/item%d", &i) != 1)
		i = 1;
	return psprintf("{\"id\": \"%s\", \"name\": \"item%d\", \"properties\": {"
					"\"friendlyName\": \"vm%d\", \"protectionState\": \"Protected\", "
					"\"allowedOperations\": [\"UnplannedFailover\", \"TestFailover\", \"ChangePit\", "
					"\"Commit\", \"SwitchProtection\", \"TestFailoverCleanup\", \"CancelFailover\"], "
					"\"currentScenario\": {\"scenarioName\": \"None\", \"jobId\": \"None\"}, "
					"\"providerSpecificDetails\": {\"instanceType\": \"A2A\", "
					"\"protectedManagedDisks\": [{\"diskId\": \"" DISK_ID "\"}], "
					"\"rpoInSeconds\": 30}}}",
					path ? path : id, i, i, i);
}

static AsrHttpResponse *
fixed_answer(FuzzCall *c, UrlKind kind, const Feed *f)
{
	static const char empty[] = "{\"value\": []}";

	switch (kind)
	{
		case URL_ITEM:
			if (f->items_gone)
				break;
			{
				char	   *d = item_doc(c->url);

				return answer(200, d, strlen(d), NIL);
			}
		case URL_POINTS:
		case URL_ITEM_LIST:
		case URL_JOB_LIST:
		case URL_NEXT:
			return answer(200, empty, strlen(empty), NIL);
		case URL_JOB:
			{
				const char *name = strrchr(c->url, '/') + 1;
				const char *q = strchr(name, '?');
				char	   *d = psprintf("{\"name\": \"%.*s\", \"properties\": {\"state\": \"%s\", "
										 "\"activityId\": \"00000000-0000-0000-0000-000000000000 ActivityId: x\", "
										 "\"tasks\": []}}",
										 q ? (int) (q - name) : (int) strlen(name), name,
										 f->job_state);

				return answer(200, d, strlen(d), NIL);
			}
		case URL_POST:
			{
				AsrHttpHeader *h = palloc(sizeof(AsrHttpHeader));

				h->name = "location";
				h->value = ARM_BASE VAULT_PATH "/replicationJobs/6d1e9d3b-7a3c-4b05-a4ad-6c7b0a52f0c1"
					"/operationresults/6d1e9d3b-7a3c-4b05-a4ad-6c7b0a52f0c1?api-version=2022-10-01";
				return answer(202, "", 0, list_make1(h));
			}
		case URL_OTHER:
			break;
	}
	{
		static const char notfound[] = "{\"error\": {\"code\": \"NotFound\", \"message\": \"fuzz\"}}";

		return answer(404, notfound, strlen(notfound), NIL);
	}
}

/*
 * Answer the queued fuzz_calls until none is left (flushing queued item reads
 * first, as the worker loop does): the fuzzed document for the URLs the
 * target is about, a fixed answer for the others.  Bounded: a document
 * whose nextLink points to itself is answered a few times only.
 */
static void
pump(Feed *f)
{
	int			round;

	for (round = 0; round < 400; round++)
	{
		FuzzCall   *c;
		UrlKind		kind;
		AsrHttpResponse *r;
		const char *why = NULL;

		if (asr_item_read_flush)
			asr_item_read_flush();
		/* the jobs looked for in their vault's job list, as collect does */
		asr_tx_begin("fuzz collect");
		asr_dx_start_lookups();
		asr_tx_commit();
		if (fuzz_calls == NIL && asr_item_read_pending && asr_item_read_pending())
		{
			/* reads held back for more of their kind: let the time pass */
			fuzz_clock_skew += (TimestampTz) 60 * USECS_PER_SEC;
			continue;
		}
		if (fuzz_calls == NIL)
			return;
		c = (FuzzCall *) linitial(fuzz_calls);
		fuzz_calls = list_delete_first(fuzz_calls);
		kind = url_kind(c, f);
		if (!asr_url_same_origin(c->url, c->arm_base ? c->arm_base : ARM_BASE, false, &why))
		{
			/* client.c sends nothing to a foreign URL */
			r = answer(0, "", 0, NIL);
			r->never_sent = true;
			r->transport_error = psprintf("not sent: %s", why ? why : "foreign URL");
		}
		else if ((f->kinds & (1u << kind)) && f->budget > 0)
		{
			f->budget--;
			r = answer(200, f->data, f->size, NIL);
		}
		else
			r = fixed_answer(c, kind, f);
		if (fuzz_debug)
			fprintf(stderr, "asr_fuzz: %s %s -> kind %d, HTTP %ld, %zu bytes\n",
					c->method, c->url, (int) kind, r->status, r->body_len);
		c->done((AsrCall *) c, r, c->arg);
	}
	elog(ERROR, "the worker kept making fuzz_calls (%d answered)", round);
}

/* ----------------------------------------------------------------
 * jobs and targets
 * ---------------------------------------------------------------- */

static const char *const actions[] = {"failover", "test_failover", "test_failover_cleanup",
"change_recovery_point", "commit", "reprotect", "cancel_failover"};

static JobCtx *
new_job(int i, Phase phase, const char *action)
{
	JobCtx	   *jc = palloc0(sizeof(JobCtx));
	char	   *arm_id = item_id_of(i);
	char	   *req = psprintf("{\"method\": \"POST\", \"path\": \"%s/unplannedFailover\", "
							   "\"body\": {\"properties\": {\"failoverDirection\": \"PrimaryToRecovery\"}}}",
							   arm_id);

	jc->job_id = i;
	jc->cxt = AllocSetContextCreate(CurrentMemoryContext, "fuzz job", ALLOCSET_SMALL_SIZES);
	jc->phase = phase;
	jc->vault_id = fuzz_vault->vault_id;
	jc->job.job_id = i;
	jc->job.item_id = i;
	jc->job.item_name = psprintf("vm%d", i);
	jc->job.item_arm_id = arm_id;
	jc->job.action = (char *) action;
	jc->job.state = phase == PH_POLL ? "running" : "submitting";
	jc->job.progress = 0;
	jc->job.azure_job = psprintf("%08d-0000-4000-8000-00000000000%d", i, i);
	jc->job.requested_by = "postgres";
	jc->job.requested_at = GetCurrentTimestamp();
	jc->job.client_request_id = psprintf("%08d-aaaa-4bbb-8ccc-dddddddddddd", i);
	jc->job.request = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(req)));
	return jc;
}

/*
 * The end of an item's refresh (asr_sync_item's callback): exactly once
 * per refresh.  What the tables refused is listed.
 */
typedef struct Refresh
{
	int			item;
	int			answers;
	char	   *error;			/* what the refresh reported, in fuzz_input_cxt */
} Refresh;

static List *refreshes = NIL;	/* of Refresh *, in fuzz_input_cxt */

static void
sync_done(void *arg, const char *error)
{
	Refresh    *r = (Refresh *) arg;

	if (++r->answers > 1)
	{
		fprintf(stderr, "asr_fuzz: the refresh of item%d was answered twice\n", r->item);
		fflush(stderr);
		abort();
	}
	if (error)
	{
		r->error = MemoryContextStrdup(fuzz_input_cxt, error);
		fuzz_note_refusal(error);
	}
}

/*
 * A refresh that read its documents must store them: items.c reads every
 * field on its own and refuses only a document without an item's ARM id
 * or a properties object.  An error other than a failed read (or that
 * refusal, for a fuzzed item document) is a finding.
 */
static void
check_stored(int item, bool item_fuzzed)
{
	ListCell   *lc;

	foreach(lc, refreshes)
	{
		Refresh    *r = (Refresh *) lfirst(lc);

		if (r->item != item || r->error == NULL ||
			strncmp(r->error, "reading the item", 16) == 0 ||
			strncmp(r->error, "listing recovery points", 23) == 0 ||
			(item_fuzzed && strcmp(r->error, "not a replication protected item document") == 0))
			continue;
		fprintf(stderr, "asr_fuzz: target: the refresh of item%d did not store what it read: %s\n",
				item, r->error);
		fflush(stderr);
		abort();
	}
}

static void
refresh(int i)
{
	MemoryContext old = MemoryContextSwitchTo(fuzz_input_cxt);
	Refresh    *r = palloc0(sizeof(Refresh));

	r->item = i;
	refreshes = lappend(refreshes, r);
	MemoryContextSwitchTo(old);
	/* as a job's final step asks for it: inside the step's transaction */
	asr_tx_begin("fuzz refresh");
	asr_sync_item(fuzz_vault, i, item_id_of(i), CurrentMemoryContext, sync_done, r);
	asr_tx_commit();
}

/* a job's phase starts inside the transaction of dispatch.c's collect */
static void
start_phase(JobCtx *jc)
{
	asr_tx_begin("fuzz collect");
	asr_dx_start_phase(jc);
	asr_tx_commit();
}

static void
setup_vault(void)
{
	MemoryContext old;

	if (fuzz_vault)
		return;
	fuzz_debug = getenv("ASR_FUZZ_DEBUG") != NULL;
	old = MemoryContextSwitchTo(TopMemoryContext);
	fuzz_vault = palloc0(sizeof(AsrVault));
	fuzz_vault->vault_id = 1;
	fuzz_vault->name = "vault1";
	fuzz_vault->server = "fuzz";
	fuzz_vault->subscription = SUB;
	fuzz_vault->resource_group = "rg1";
	fuzz_vault->vault_name = "vault1";
	fuzz_vault->vault_path = VAULT_PATH;
	fuzz_vault->arm_endpoint = ARM_BASE;
	fuzz_vault->auth = (AsrTokenState *) palloc0(64);	/* never looked into */
	fuzz_vault->loaded_at = GetCurrentTimestamp();
	MemoryContextSwitchTo(old);
	/* poll.c keeps its context from the first reap on */
	asr_dx_reap_polls();
}

/*
 * Run one scenario in a subtransaction that is rolled back: the tables
 * stay as fuzz_setup.sql left them.
 */
static void
run_rolled_back(void (*fn) (const char *data, size_t size), const char *data, size_t size)
{
	MemoryContext old = CurrentMemoryContext;

	setup_vault();
	fuzz_input_cxt = CurrentMemoryContext;
	fuzz_calls = NIL;
	fuzz_posts = NIL;
	refreshes = NIL;
	fuzz_clock_skew = 0;
	fuzz_tx_depth = 0;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		fn(data, size);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(old);
		e = CopyErrorData();
		fprintf(stderr, "asr_fuzz: ERROR escaped the worker: %s (%s:%d)\n",
				e->message ? e->message : "(no message)",
				e->filename ? e->filename : "?", e->lineno);
		fflush(stderr);
		abort();
	}
	PG_END_TRY();
	if (asr_item_read_pending && asr_item_read_pending())
	{
		fprintf(stderr, "asr_fuzz: item reads left queued after the input\n");
		abort();
	}
	{
		ListCell   *lc;

		foreach(lc, refreshes)
			if (((Refresh *) lfirst(lc))->answers != 1)
			{
				fprintf(stderr, "asr_fuzz: the refresh of item%d was never answered\n",
						((Refresh *) lfirst(lc))->item);
				abort();
			}
	}
	if (fuzz_tx_depth != 0)
	{
		fprintf(stderr, "asr_fuzz: %d worker transactions left open\n", fuzz_tx_depth);
		abort();
	}
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(old);
	asr_dx_reap_polls();
	fuzz_calls = NIL;
	fuzz_posts = NIL;
	refreshes = NIL;
}

static char *
next_link_of(const char *data, size_t size)
{
	char	   *perr = NULL;
	Jsonb	   *doc = asr_json_parse(data, size, &perr);

	return doc ? asr_json_string(&doc->root, "nextLink") : NULL;
}

/*
 * item: Azure's document of one item, as read before an action (the
 * allowedOperations gate), when reconciling (currentScenario) and by the
 * sync (stored by asr_item_upsert, then its recovery points).
 */
static void
item_scenarios(const char *data, size_t size)
{
	Feed		f = {data, size, NULL, 1u << URL_ITEM, 8, "Succeeded", false};
	JobCtx	   *check = new_job(1, PH_CHECK_ITEM, actions[size % lengthof(actions)]);
	JobCtx	   *reconcile = new_job(2, PH_RECONCILE_ITEM, "failover");
	JobCtx	   *poll = new_job(3, PH_POLL, "failover");

	start_phase(check);
	start_phase(reconcile);
	start_phase(poll);			/* Succeeded: the final re-read of the item */
	refresh(4);
	pump(&f);
	check_stored(4, true);
}

void
fuzz_target_item(const char *data, size_t size)
{
	run_rolled_back(item_scenarios, data, size);
}

/* points: the recovery point listing of an item, page after page */
static void
points_scenario(const char *data, size_t size)
{
	Feed		f = {data, size, next_link_of(data, size),
	(1u << URL_POINTS) | (1u << URL_NEXT), 3, "Succeeded", false};

	refresh(1);
	pump(&f);
	check_stored(1, false);
}

void
fuzz_target_points(const char *data, size_t size)
{
	run_rolled_back(points_scenario, data, size);
}

/*
 * list: a page of a list with nextLink, as the vault's job list when a
 * job is reconciled (our client request id in activityId) and when many
 * jobs are polled at once, and as the vault's item list (the sync, and
 * the item reads of many jobs at once).  The ASR jobs the page does not
 * show are still running, the items it does not show are gone (404): the
 * item target covers what follows a read item, at a fraction of the cost.
 */
static void
list_scenarios(const char *data, size_t size)
{
	Feed		f = {data, size, next_link_of(data, size),
	(1u << URL_JOB_LIST) | (1u << URL_ITEM_LIST) | (1u << URL_NEXT), 12, "InProgress", true};
	JobCtx	   *reconcile = new_job(1, PH_LIST_JOBS, "failover");
	List	   *polls = NIL;
	int			i;

	start_phase(reconcile);
	for (i = 2; i <= FUZZ_ITEMS; i++)
		polls = lappend(polls, new_job(i, PH_POLL, "failover"));
	asr_tx_begin("fuzz collect");
	asr_dx_start_polls(polls);
	asr_tx_commit();
	(void) asr_sync_collect();
	for (i = 1; i <= FUZZ_ITEMS; i++)
		refresh(i);
	pump(&f);
}

void
fuzz_target_list(const char *data, size_t size)
{
	run_rolled_back(list_scenarios, data, size);
}
