/*-------------------------------------------------------------------------
 *
 * itemread.c
 *	  Re-reading replicated items: one GET each, or one vault listing for
 *	  many at once.
 *
 * The worker re-reads an item before it sends an action (is the action
 * still allowed?) and after the action's ASR job ends (DESIGN §7: the
 * DBA's next call is validated against the new state).  A wave of
 * failovers does both for hundreds of items of one vault within seconds:
 * one GET per item would spend ARM's read budget (250 + 25/s per
 * subscription) on documents that the vault's item list returns a page at
 * a time.  Reads are therefore queued here and sent once per turn of the
 * worker loop (asr_item_read_flush): a vault with more reads waiting than
 * its listing has pages is answered from the listing; items the listing
 * does not name (moved meanwhile, or the listing failed) and vaults with
 * few reads get the item's own GET, as before.
 *
 * Arrows: dispatch (submit.c) and sync.c ask; this file calls client.c
 * and answers through the reader's callback, outside any transaction.
 * It reads no table and writes none.
 *
 * IDENTIFICATION
 *	  src/itemread.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "arm.h"
#include "client.h"
#include "itemread.h"
#include "json.h"

/* Never list a vault for fewer reads than this (one GET each is as cheap). */
#define LIST_MIN_READS 5
/*
 * How long a read may wait for others to share a listing.  Jobs of a wave
 * end a few at a time (a page of the vault's job list each): half a second
 * gathers them, and is nothing next to the minutes a job takes.
 */
#define HOLD_MS 500

typedef struct Read
{
	AsrVault   *v;
	char	   *arm_id;			/* as the reader gave it */
	char	   *key;			/* lower case: Azure mixes the case of ids */
	MemoryContext cxt;			/* the reader's */
	AsrItemReadDone done;
	void	   *arg;
	TimestampTz asked;
	bool		gather;			/* may wait HOLD_MS for others */
} Read;

/* One listing of a vault's items standing for many reads. */
typedef struct Listing
{
	MemoryContext cxt;
	AsrVault   *v;
	Read	  **reads;			/* sorted by key */
	char	  **keys;			/* keys[i] = reads[i]->key, copied here */
	bool	   *answered;		/* answered[i]: reads[i] got its document */
	int			nreads;
	int			pages;
} Listing;

/* What is known of a vault: how many pages its item list has. */
typedef struct VaultPages
{
	int			vault_id;
	int			pages;
} VaultPages;

static MemoryContext read_context = NULL;
static List *queued = NIL;		/* of Read *, in read_context */
static List *vault_pages = NIL; /* of VaultPages * */

static void list_page(Listing *l, const char *url);
static void on_list_page(AsrCall *call, AsrHttpResponse *resp, void *arg);
static void get_one(Read *r);
static void on_get(AsrCall *call, AsrHttpResponse *resp, void *arg);


/* ARM ids compare case-insensitively (ASCII) */
static char *
lowercase(const char *s)
{
	char	   *out = pstrdup(s);
	char	   *p;

	for (p = out; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return out;
}

static void
ensure_context(void)
{
	if (read_context == NULL)
		read_context = AllocSetContextCreate(TopMemoryContext, "asr item reads",
											 ALLOCSET_SMALL_SIZES);
}

/*
 * Ask for Azure's current document of one item.  Nothing is sent before
 * the next asr_item_read_flush(), so that reads asked for in the same turn
 * can share a listing; a gathering read (the re-read after a job: jobs of
 * a wave end a page of the job list at a time) may also wait up to
 * HOLD_MS for reads asked for in the next turns.
 */
void
asr_item_read(AsrVault *v, const char *arm_id, bool gather, MemoryContext cxt,
			  AsrItemReadDone done, void *arg)
{
	Read	   *r;
	MemoryContext old;

	ensure_context();
	old = MemoryContextSwitchTo(cxt);
	r = palloc0(sizeof(Read));
	r->v = v;
	r->arm_id = pstrdup(arm_id);
	r->key = lowercase(arm_id);
	r->cxt = cxt;
	r->done = done;
	r->arg = arg;
	r->asked = GetCurrentTimestamp();
	r->gather = gather;
	MemoryContextSwitchTo(read_context);
	queued = lappend(queued, r);
	MemoryContextSwitchTo(old);
}

bool
asr_item_read_pending(void)
{
	return queued != NIL;
}

static VaultPages *
pages_for(int vault_id)
{
	ListCell   *lc;
	VaultPages *vp;
	MemoryContext old;

	foreach(lc, vault_pages)
	{
		vp = (VaultPages *) lfirst(lc);
		if (vp->vault_id == vault_id)
			return vp;
	}
	ensure_context();
	old = MemoryContextSwitchTo(read_context);
	vp = palloc0(sizeof(VaultPages));
	vp->vault_id = vault_id;
	vp->pages = 1;				/* until a listing says otherwise */
	vault_pages = lappend(vault_pages, vp);
	MemoryContextSwitchTo(old);
	return vp;
}

/*
 * Remember how many pages a complete listing of the vault's items took
 * (sync.c lists every vault each asr.sync_interval): a listing is worth it
 * only for more reads than that.
 */
void
asr_item_read_note_pages(int vault_id, int pages)
{
	if (pages > 0)
		pages_for(vault_id)->pages = pages;
}

static int
read_cmp(const void *a, const void *b)
{
	return strcmp((*(Read *const *) a)->key, (*(Read *const *) b)->key);
}

/*
 * Send what was asked for: a vault's reads go out together as a listing
 * when there are enough of them, else one GET each (a gathering read once
 * it has waited HOLD_MS).  Called by the worker loop every turn, before it waits,
 * outside a transaction.
 */
void
asr_item_read_flush(void)
{
	List	   *todo = queued;
	MemoryContext old;
	TimestampTz now = GetCurrentTimestamp();

	if (todo == NIL)
		return;
	queued = NIL;
	old = MemoryContextSwitchTo(read_context);
	while (todo != NIL)
	{
		Read	   *first = (Read *) linitial(todo);
		int			vault_id = first->v->vault_id;
		List	   *mine = NIL;
		List	   *rest = NIL;
		ListCell   *lc;

		foreach(lc, todo)
		{
			Read	   *r = (Read *) lfirst(lc);

			if (r->v->vault_id == vault_id)
				mine = lappend(mine, r);
			else
				rest = lappend(rest, r);
		}
		list_free(todo);
		todo = rest;

		if (list_length(mine) < Max(LIST_MIN_READS, pages_for(vault_id)->pages + 1))
		{
			/* too few for a listing: send, or let gathering reads wait */
			foreach(lc, mine)
			{
				Read	   *r = (Read *) lfirst(lc);

				if (r->gather && !TimestampDifferenceExceeds(r->asked, now, HOLD_MS))
					queued = lappend(queued, r);
				else
					get_one(r);
			}
		}
		else
		{
			MemoryContext cxt = AllocSetContextCreate(read_context, "asr item listing",
													  ALLOCSET_DEFAULT_SIZES);
			Listing    *l = MemoryContextAllocZero(cxt, sizeof(Listing));
			int			i = 0;

			l->cxt = cxt;
			l->v = first->v;
			l->nreads = list_length(mine);
			l->reads = MemoryContextAlloc(cxt, sizeof(Read *) * l->nreads);
			foreach(lc, mine)
				l->reads[i++] = (Read *) lfirst(lc);
			qsort(l->reads, l->nreads, sizeof(Read *), read_cmp);
			/*
			 * A read's done callback may free the read (its context is the
			 * reader's): what the listing needs afterwards lives here.
			 */
			l->keys = MemoryContextAlloc(cxt, sizeof(char *) * l->nreads);
			l->answered = MemoryContextAllocZero(cxt, sizeof(bool) * l->nreads);
			for (i = 0; i < l->nreads; i++)
				l->keys[i] = MemoryContextStrdup(cxt, l->reads[i]->key);
			list_page(l, NULL);
		}
		list_free(mine);
	}
	MemoryContextSwitchTo(old);
}

/* ----------------------------------------------------------------
 * one item: its own GET
 * ---------------------------------------------------------------- */

static void
get_one(Read *r)
{
	AsrCallSpec spec;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	asr_vault_call_spec(r->v, &spec, "GET",
						asr_arm_url(r->v->arm_endpoint, r->arm_id, NULL), false);
	(void) asr_client_call(&spec, r->cxt, on_get, r);
	MemoryContextSwitchTo(old);
}

static void
on_get(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	Read	   *r = (Read *) arg;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	char	   *perr = NULL;
	Jsonb	   *doc = NULL;

	if (asr_arm_classify(resp) == ASR_OK)
		doc = asr_json_parse(resp->body, resp->body_len, &perr);
	if (doc != NULL && asr_json_object(&doc->root, "properties") == NULL)
	{
		doc = NULL;
		perr = "no properties";
	}
	MemoryContextSwitchTo(old);
	if (doc != NULL)
		r->done(r->arg, doc, NULL, NULL);
	else if (asr_arm_classify(resp) != ASR_OK)
		r->done(r->arg, NULL, resp,
				psprintf("HTTP %ld%s%s", resp->status,
						 resp->transport_error ? ": " : "",
						 resp->transport_error ? resp->transport_error : ""));
	else
		r->done(r->arg, NULL, NULL,
				psprintf("Azure's item document could not be read: %s", perr));
}

/* ----------------------------------------------------------------
 * many items: the vault's item list, page by page
 * ---------------------------------------------------------------- */

static void
list_page(Listing *l, const char *url)
{
	AsrCallSpec spec;
	MemoryContext old = MemoryContextSwitchTo(l->cxt);

	asr_vault_call_spec(l->v, &spec, "GET",
						url ? url : asr_arm_url(l->v->arm_endpoint, l->v->vault_path,
												"/replicationProtectedItems"),
						false);
	(void) asr_client_call(&spec, l->cxt, on_list_page, l);
	MemoryContextSwitchTo(old);
}

/* the reads waiting for this key, in l->reads (sorted) */
static int
find_first(Listing *l, const char *key)
{
	int			lo = 0;
	int			hi = l->nreads;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (strcmp(l->keys[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * One listed item (a binary value of the page): a standalone copy for
 * every read waiting for it, in the reader's context.
 */
static void
answer_from_listing(Listing *l, JsonbValue *item)
{
	JsonbContainer *c = item->val.binary.data;
	char	   *id = asr_json_string(c, "id");
	char	   *key;
	int			i;

	if (id == NULL || asr_json_object(c, "properties") == NULL)
		return;
	key = lowercase(id);
	for (i = find_first(l, key); i < l->nreads && strcmp(l->keys[i], key) == 0; i++)
	{
		Read	   *r = l->reads[i];
		MemoryContext old;
		Jsonb	   *doc;

		if (l->answered[i])
			continue;
		old = MemoryContextSwitchTo(r->cxt);
		doc = JsonbValueToJsonb(item);
		MemoryContextSwitchTo(old);
		l->answered[i] = true;
		r->done(r->arg, doc, NULL, NULL);
	}
}

/*
 * A page of the listing: answer the reads it names; after the last page
 * (or a failed one) the reads it did not name get their own GET.  The
 * listing's context, which holds this call, is deleted last.
 */
static void
on_list_page(AsrCall *call, AsrHttpResponse *resp, void *arg)
{
	Listing    *l = (Listing *) arg;
	MemoryContext old = MemoryContextSwitchTo(l->cxt);
	char	   *perr = NULL;
	Jsonb	   *page = NULL;
	JsonbContainer *value = NULL;
	char	   *next = NULL;
	int			i;

	if (asr_arm_classify(resp) == ASR_OK)
		page = asr_json_parse(resp->body, resp->body_len, &perr);
	if (page != NULL)
		value = asr_json_array(&page->root, "value");
	MemoryContextSwitchTo(old);
	if (value != NULL)
	{
		l->pages++;
		for (i = 0; i < asr_json_array_size(value); i++)
		{
			JsonbValue *item = getIthJsonbValueFromContainer(value, i);

			if (item != NULL && item->type == jbvBinary)
				answer_from_listing(l, item);
		}
		next = asr_json_string(&page->root, "nextLink");
		if (next != NULL && next[0] != '\0')
		{
			for (i = 0; i < l->nreads; i++)
				if (!l->answered[i])
					break;
			if (i < l->nreads)
			{
				list_page(l, next);
				return;
			}
		}
		else
			asr_item_read_note_pages(l->v->vault_id, l->pages);
	}

	/* what the listing did not answer: one GET each */
	for (i = 0; i < l->nreads; i++)
		if (!l->answered[i])
			get_one(l->reads[i]);
	MemoryContextDelete(l->cxt);
}
