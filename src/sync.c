/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Refreshing items and recovery points from Azure.
 *
 * A vault is refreshed every asr.sync_interval, when asr_sync() asks for
 * it, and an item alone after each of its jobs ends: the vault's item list
 * (following nextLink), then each item's recovery points.  What Azure says
 * is written through items.c (upsert by ARM id, following an item to its
 * new path after a reprotect; recovery points replaced with their disk
 * coverage), each page or item in its own short transaction.  Items Azure
 * no longer lists are forgotten only after a complete listing.
 *
 * IDENTIFICATION
 *	  src/sync.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "arm.h"
#include "asr.h"
#include "client.h"
#include "creds.h"
#include "itemread.h"
#include "items.h"
#include "json.h"
#include "sync.h"
#include "txn.h"

/* ---------------------------------------------------------------- */

typedef struct ItemSync
{
	AsrVault   *v;
	int64		item_id;
	char	   *arm_id;
	MemoryContext cxt;			/* its own: deleted when it is done */
	MemoryContext owner;		/* where the error handed to done lives */
	AsrSyncDone done;
	void	   *arg;
	StringInfoData points;		/* "[p1,p2,..." */
	int			npoints;
	bool		points_phase;
	struct VaultSync *vault_sync;	/* NULL for a single item */
} ItemSync;

typedef struct VaultSync
{
	int			vault_id;
	MemoryContext cxt;
	TimestampTz started;
	int			outstanding;	/* item point listings in flight */
	int			pages;			/* of the item list so far */
	bool		listing_done;
	bool		finished;
	char	   *error;
	uint64		generation;		/* asr_sync request served, 0 = none */
} VaultSync;

typedef struct VaultClock
{
	int			vault_id;
	TimestampTz last_started;
	VaultSync  *running;
} VaultClock;

static MemoryContext sync_context = NULL;
static List *clocks = NIL;		/* of VaultClock * */

static ItemSync *item_sync_new(AsrVault *v, const char *arm_id, MemoryContext owner,
								AsrSyncDone done, void *arg);
static void item_sync_done(ItemSync *s, const char *error);
static void points_get(ItemSync *s, const char *url);
static void on_item(void *arg, Jsonb *doc, AsrHttpResponse *resp, const char *error);
static void on_points(AsrCall *call, AsrHttpResponse *resp, void *arg);
static void vault_item_done(void *arg, const char *error);


/*
 * Run a store step in its own transaction; an ERROR becomes the returned
 * message (palloc'd in the caller's context) and is contained.
 */
static char *
store_step(void (*fn) (void *), void *arg)
{
	MemoryContext old = CurrentMemoryContext;
	char	   *volatile error = NULL;

	PG_TRY();
	{
		asr_tx_begin("asr: storing what Azure reported");
		if (asr_tx_extension_present())
			fn(arg);
		else
			error = "the extension was dropped";
		asr_tx_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		asr_tx_abort();
		error = pstrdup(edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return error;
}

int64
asr_sync_store_item(int vault_id, int64 item_id, Jsonb *doc)
{
	return asr_item_upsert(vault_id, doc);
}

void
asr_sync_store_points(int64 item_id, Jsonb *list)
{
	(void) asr_recovery_points_replace(item_id, list);
}

static char *
response_error(const char *what, AsrHttpResponse *resp)
{
	AsrArmError *err = asr_arm_parse_error(resp);

	return psprintf("%s: %s (%s)", what, asr_arm_error_text(err), err->code);
}

/* ----------------------------------------------------------------
 * one item: GET item, GET its recovery points
 * ---------------------------------------------------------------- */

void
asr_sync_item(AsrVault *v, int64 item_id, const char *arm_id,
			  MemoryContext cxt, AsrSyncDone done, void *arg)
{
	ItemSync   *s = item_sync_new(v, arm_id, cxt, done, arg);

	s->item_id = item_id;
	/* after a job: jobs of a wave end together and share a listing */
	asr_item_read(v, s->arm_id, true, s->cxt, on_item, s);
}

/*
 * A refresh of one item gets a context of its own: the recovery point
 * listing (pages, the assembled array, its jsonb: about a megabyte for a
 * VM with a day of points) is gone as soon as it is stored, not when the
 * job or the vault refresh that asked for it ends.
 */
static ItemSync *
item_sync_new(AsrVault *v, const char *arm_id, MemoryContext owner,
			  AsrSyncDone done, void *arg)
{
	MemoryContext cxt = AllocSetContextCreate(owner, "asr item refresh",
											  ALLOCSET_DEFAULT_SIZES);
	ItemSync   *s = MemoryContextAllocZero(cxt, sizeof(ItemSync));

	s->v = v;
	s->arm_id = MemoryContextStrdup(cxt, arm_id);
	s->cxt = cxt;
	s->owner = owner;
	s->done = done;
	s->arg = arg;
	return s;
}

/* hand the outcome to whoever asked, after freeing what the refresh held */
static void
item_sync_done(ItemSync *s, const char *error)
{
	AsrSyncDone done = s->done;
	void	   *arg = s->arg;
	char	   *err = error ? MemoryContextStrdup(s->owner, error) : NULL;

	MemoryContextDelete(s->cxt);
	done(arg, err);
}

static void
points_get(ItemSync *s, const char *url)
{
	AsrCallSpec spec;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	asr_vault_call_spec(s->v, &spec, "GET", url, false);
	(void) asr_client_call(&spec, s->cxt, on_points, s);
	MemoryContextSwitchTo(old);
}

typedef struct StoreItemArg
{
	ItemSync   *s;
	Jsonb	   *doc;
} StoreItemArg;

static void
store_item_fn(void *arg)
{
	StoreItemArg *a = (StoreItemArg *) arg;

	a->s->item_id = asr_item_upsert(a->s->v->vault_id, a->doc);
}

static void
on_item(void *arg, Jsonb *doc, AsrHttpResponse *resp, const char *error)
{
	ItemSync   *s = (ItemSync *) arg;
	StoreItemArg a;
	MemoryContext old;

	if (doc == NULL)
	{
		item_sync_done(s, resp ? response_error("reading the item", resp)
					   : psprintf("reading the item: %s", error));
		return;
	}
	a.s = s;
	a.doc = doc;
	old = MemoryContextSwitchTo(s->cxt);
	error = store_step(store_item_fn, &a);
	if (error)
	{
		MemoryContextSwitchTo(old);
		item_sync_done(s, error);
		return;
	}
	initStringInfo(&s->points);
	appendStringInfoChar(&s->points, '[');
	s->points_phase = true;
	points_get(s, asr_arm_url(s->v->arm_endpoint, s->arm_id, "/recoveryPoints"));
	MemoryContextSwitchTo(old);
}

static void
store_points_fn(void *arg)
{
	ItemSync   *s = (ItemSync *) arg;
	char	   *perr = NULL;
	Jsonb	   *list;

	appendStringInfoChar(&s->points, ']');
	list = asr_json_parse(s->points.data, s->points.len, &perr);
	if (list == NULL)
		elog(ERROR, "recovery point list could not be assembled: %s", perr);
	(void) asr_recovery_points_replace(s->item_id, list);
}

static void
on_points(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	ItemSync   *s = (ItemSync *) arg;
	char	   *perr = NULL;
	Jsonb	   *doc;
	JsonbContainer *value;
	char	   *next;
	int			i;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);

	if (asr_arm_classify(resp) != ASR_OK)
	{
		char	   *error = response_error("listing recovery points", resp);

		MemoryContextSwitchTo(old);
		item_sync_done(s, error);
		return;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	value = doc ? asr_json_array(&doc->root, "value") : NULL;
	if (doc == NULL || (value == NULL && asr_json_member(&doc->root, "value") != NULL))
	{
		char	   *error = psprintf("listing recovery points: %s", perr ? perr : "no value array");

		MemoryContextSwitchTo(old);
		item_sync_done(s, error);
		return;
	}
	for (i = 0; i < asr_json_array_size(value); i++)
	{
		JsonbContainer *p = asr_json_array_container(value, i);

		if (p == NULL)
			continue;
		if (s->npoints++ > 0)
			appendStringInfoChar(&s->points, ',');
		appendStringInfoString(&s->points, asr_json_container_text(p));
	}
	next = asr_json_string(&doc->root, "nextLink");
	if (next != NULL && next[0] != '\0')
	{
		points_get(s, next);
		MemoryContextSwitchTo(old);
		return;
	}
	{
		char	   *error = store_step(store_points_fn, s);

		MemoryContextSwitchTo(old);
		item_sync_done(s, error);
	}
}

/* ----------------------------------------------------------------
 * a whole vault: list items (paged), then each item's points
 * ---------------------------------------------------------------- */

static void list_items(VaultSync *vs, const char *url);
static void on_item_page(AsrCall *call, AsrHttpResponse *resp, void *arg);

typedef struct StorePageArg
{
	VaultSync  *vs;
	JsonbContainer *value;
	List	   *stored;			/* of ItemSync * to list points for */
} StorePageArg;

static void
store_page_fn(void *arg)
{
	StorePageArg *a = (StorePageArg *) arg;
	AsrVault   *v = asr_vault_get(a->vs->vault_id, false);
	int			i;

	if (v == NULL)
		elog(ERROR, "vault %d no longer exists", a->vs->vault_id);
	for (i = 0; i < asr_json_array_size(a->value); i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(a->value, i);
		char	   *arm_id;
		Jsonb	   *doc;
		ItemSync   *s;
		MemoryContext old;

		arm_id = NULL;
		doc = NULL;
		if (item != NULL && item->type == jbvBinary)
		{
			arm_id = asr_json_string(item->val.binary.data, "id");
			doc = JsonbValueToJsonb(item);
		}
		if (arm_id == NULL || !asr_item_is_document(doc))
		{
			/*
			 * Not an item asr can store (no object, no ARM id, no
			 * properties): the others are stored, and the refresh says so
			 * -- as an error, so that no item is forgotten for not having
			 * been seen.
			 */
			if (a->vs->error == NULL)
				a->vs->error = MemoryContextStrdup(a->vs->cxt,
												   psprintf("listing the vault's items: a document that is not a replication protected item (%s) was left out",
															arm_id ? arm_id : "no id"));
			continue;
		}
		old = MemoryContextSwitchTo(a->vs->cxt);
		s = item_sync_new(v, arm_id, a->vs->cxt, vault_item_done, a->vs);
		s->vault_sync = a->vs;
		/* the list outlives this transaction */
		a->stored = lappend(a->stored, s);
		MemoryContextSwitchTo(old);
		s->item_id = asr_item_upsert(v->vault_id, doc);
	}
}

static void
vault_finish_fn(void *arg)
{
	VaultSync  *vs = (VaultSync *) arg;

	if (vs->error == NULL)
		(void) asr_items_forget_unseen(vs->vault_id, vs->started);
	asr_vault_sync_result(vs->vault_id, vs->error);
}

/* all pages listed and all point listings answered: record the outcome */
static void
vault_maybe_finish(VaultSync *vs)
{
	char	   *error;

	if (!vs->listing_done || vs->outstanding > 0 || vs->finished)
		return;
	error = store_step(vault_finish_fn, vs);
	if (error)
		ereport(LOG, (errmsg("asr: could not record the refresh of vault %d: %s",
							 vs->vault_id, error)));
	vs->finished = true;
	if (vs->generation)
	{
		ListCell   *lc;

		/* asr_sync returns when every vault it asked for is refreshed */
		foreach(lc, clocks)
		{
			VaultClock *c = (VaultClock *) lfirst(lc);

			if (c->running && !c->running->finished &&
				c->running->generation >= vs->generation)
				return;
		}
		asr_sync_finished(vs->generation);
	}
}

static void
vault_item_done(void *arg, const char *error)
{
	VaultSync  *vs = (VaultSync *) arg;

	vs->outstanding--;
	if (error && vs->error == NULL)
		vs->error = MemoryContextStrdup(vs->cxt, error);
	vault_maybe_finish(vs);
}

static void
list_items(VaultSync *vs, const char *url)
{
	AsrVault   *v;
	AsrCallSpec spec;
	char	   *error = NULL;

	/* the vault's credential may need SQL (user mapping lookup) */
	PG_TRY();
	{
		asr_tx_begin("asr: storing what Azure reported");
		v = asr_vault_get(vs->vault_id, false);
		asr_tx_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(vs->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		asr_tx_abort();
		error = pstrdup(edata->message);
		v = NULL;
	}
	PG_END_TRY();
	if (v == NULL || v->auth == NULL)
	{
		vs->error = MemoryContextStrdup(vs->cxt,
										error ? error : v == NULL ? "the vault no longer exists"
										: psprintf("cannot use the credentials of server \"%s\": %s",
												   v->server, v->error ? v->error : "unknown error"));
		vs->listing_done = true;
		vault_maybe_finish(vs);
		return;
	}
	asr_vault_call_spec(v, &spec, "GET",
						url ? url : asr_arm_url(v->arm_endpoint, v->vault_path,
												"/replicationProtectedItems"),
						false);
	(void) asr_client_call(&spec, vs->cxt, on_item_page, vs);
}

static void
on_item_page(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	VaultSync  *vs = (VaultSync *) arg;
	char	   *perr = NULL;
	Jsonb	   *doc;
	StorePageArg a;
	char	   *error;
	char	   *next;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(vs->cxt);

	if (asr_arm_classify(resp) != ASR_OK)
	{
		vs->error = response_error("listing the vault's items", resp);
		vs->listing_done = true;
		vault_maybe_finish(vs);
		MemoryContextSwitchTo(old);
		return;
	}
	doc = asr_json_parse(resp->body, resp->body_len, &perr);
	if (doc == NULL || asr_json_array(&doc->root, "value") == NULL)
	{
		vs->error = psprintf("listing the vault's items: %s", perr ? perr : "no value array");
		vs->listing_done = true;
		vault_maybe_finish(vs);
		MemoryContextSwitchTo(old);
		return;
	}
	vs->pages++;
	a.vs = vs;
	a.value = asr_json_array(&doc->root, "value");
	a.stored = NIL;
	error = store_step(store_page_fn, &a);
	if (error)
	{
		vs->error = error;
		vs->listing_done = true;
		vault_maybe_finish(vs);
		MemoryContextSwitchTo(old);
		return;
	}
	foreach(lc, a.stored)
	{
		ItemSync   *s = (ItemSync *) lfirst(lc);

		MemoryContextSwitchTo(s->cxt);
		initStringInfo(&s->points);
		MemoryContextSwitchTo(vs->cxt);
		appendStringInfoChar(&s->points, '[');
		s->points_phase = true;
		vs->outstanding++;
		points_get(s, asr_arm_url(s->v->arm_endpoint, s->arm_id, "/recoveryPoints"));
	}
	next = asr_json_string(&doc->root, "nextLink");
	if (next != NULL && next[0] != '\0')
		list_items(vs, next);
	else
	{
		asr_item_read_note_pages(vs->vault_id, vs->pages);
		vs->listing_done = true;
		vault_maybe_finish(vs);
	}
	MemoryContextSwitchTo(old);
}

static VaultClock *
clock_for(int vault_id)
{
	ListCell   *lc;
	VaultClock *c;
	MemoryContext old;

	foreach(lc, clocks)
	{
		c = (VaultClock *) lfirst(lc);
		if (c->vault_id == vault_id)
			return c;
	}
	old = MemoryContextSwitchTo(sync_context);
	c = palloc0(sizeof(VaultClock));
	c->vault_id = vault_id;
	clocks = lappend(clocks, c);
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * Start the refreshes that are due: every vault each asr.sync_interval,
 * and the vaults asr_sync() asked for.  Finished refreshes are reaped
 * here (never from inside a completion).  Runs outside a transaction.
 */
TimestampTz
asr_sync_collect(void)
{
	List	   *ids;
	ListCell   *lc;
	uint64		generation = 0;
	int32		requested = -1;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = DT_NOEND;
	bool		pending;

	if (sync_context == NULL)
		sync_context = AllocSetContextCreate(TopMemoryContext, "asr sync",
											 ALLOCSET_DEFAULT_SIZES);
	pending = asr_sync_pending(&generation, &requested);

	{
		MemoryContext caller = CurrentMemoryContext;

		asr_tx_begin("asr: storing what Azure reported");
		ids = asr_tx_extension_present() ? asr_vault_ids(caller) : NIL;
		asr_tx_commit();
	}

	foreach(lc, clocks)
	{
		VaultClock *c = (VaultClock *) lfirst(lc);

		if (c->running && c->running->finished)
		{
			MemoryContextDelete(c->running->cxt);
			c->running = NULL;
		}
	}

	foreach(lc, ids)
	{
		int			vault_id = lfirst_int(lc);
		VaultClock *c = clock_for(vault_id);
		bool		asked = pending && (requested == 0 || requested == vault_id);
		VaultSync  *vs;
		MemoryContext cxt;

		/* a request made during a refresh gets a new one afterwards */
		if (c->running)
			continue;
		if (!asked && c->last_started != 0 &&
			!TimestampDifferenceExceeds(c->last_started, now, asr_sync_interval * 1000))
			continue;

		cxt = AllocSetContextCreate(sync_context, "asr vault sync", ALLOCSET_DEFAULT_SIZES);
		vs = MemoryContextAllocZero(cxt, sizeof(VaultSync));
		vs->cxt = cxt;
		vs->vault_id = vault_id;
		vs->started = now;
		vs->generation = asked ? generation : 0;
		c->running = vs;
		c->last_started = now;
		list_items(vs, NULL);
	}

	/* a request for vaults that do not exist (or none at all) is done */
	if (pending && ids == NIL)
		asr_sync_finished(generation);

	foreach(lc, clocks)
	{
		VaultClock *c = (VaultClock *) lfirst(lc);

		next = Min(next, TimestampTzPlusMilliseconds(c->last_started,
													 (int64) asr_sync_interval * 1000));
	}
	return next;
}
