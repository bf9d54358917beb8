/*-------------------------------------------------------------------------
 *
 * asr_fuzz.c
 *	  libFuzzer targets over the code of asr that reads what comes from the
 *	  network: ARM job, operation and error bodies, response headers,
 *	  ARM ids, URLs taken from responses, token responses; and, through
 *	  fuzz_worker.c, the worker's readers of item documents, recovery point
 *	  listings and list pages.
 *
 * The network-facing code runs on PostgreSQL's memory contexts and jsonb,
 * so it cannot live in a standalone binary.  This module is built from
 * asr's own sources with clang -fsanitize=fuzzer-no-link,address,undefined
 * and loaded into a single-user postgres with the ASan runtime preloaded;
 * asr_fuzz(target, args) hands libFuzzer's driver a callback that feeds
 * each input to the target inside a fresh memory context.  The code under
 * test promises never to raise an ERROR on a bad document (json.h), so an
 * ERROR is a finding: the callback aborts and libFuzzer keeps the input.
 * Never installed; test/fuzz/run loads it by path.
 *
 * IDENTIFICATION
 *	  test/fuzz/asr_fuzz.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "arm.h"
#include "armid.h"
#include "asr.h"
#include "auth.h"
#include "fdw.h"
#include "http.h"
#include "json.h"

#include "fuzz_worker.h"

PG_MODULE_MAGIC;

/* the settings asr.c owns (asr.c itself registers a worker: not linked) */
char	   *asr_database = NULL;
char	   *asr_worker_role = NULL;
int			asr_poll_interval = 30;
int			asr_sync_interval = 300;
int			asr_max_concurrent_requests = 16;
int			asr_http_timeout = 60;
char	   *asr_ca_file = NULL;
char	   *asr_api_version = "2022-10-01";
int			asr_job_timeout = 86400;
AsrSharedState *asr_shared = NULL;

#define ARM_BASE "https://management.azure.com"
#define EMU_BASE "https://127.0.0.1:8443"

extern int	LLVMFuzzerRunDriver(int *argc, char ***argv,
								int (*cb) (const uint8_t *data, size_t size));

PG_FUNCTION_INFO_V1(asr_fuzz);

typedef void (*FuzzTarget) (const char *data, size_t size);

/* the body as http.c hands it over: NUL-terminated, length known */
static char *
body_copy(const uint8_t *data, size_t size)
{
	char	   *s = palloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* the first n bytes up to a NUL or newline, as a C string */
static const char *
take_line(const char **p, const char *end)
{
	const char *s = *p;
	const char *e = s;

	while (e < end && *e != '\n' && *e != '\0')
		e++;
	*p = (e < end) ? e + 1 : e;
	return pnstrdup(s, e - s);
}

static AsrHttpResponse *
response(long status, const char *body, size_t len, List *headers)
{
	AsrHttpResponse *r = palloc0(sizeof(AsrHttpResponse));

	r->status = status;
	r->body = (char *) body;
	r->body_len = len;
	r->headers = headers;
	return r;
}

/*
 * What the readers hand on goes to the tables and to clients: it must be
 * valid in the database encoding whatever bytes Azure sent (json.c).
 */
static void
check_text(const char *s, const char *what)
{
	if (s && !pg_verify_mbstr(GetDatabaseEncoding(), s, strlen(s), true))
		elog(ERROR, "%s is not valid in the database encoding", what);
}

static void
check_error(const AsrArmError *err)
{
	check_text(err->code, "error code");
	check_text(asr_arm_error_text(err), "error text");
}

/* an ASR job document (replicationJobs/{name}), as the poller reads it */
static void
target_job(const char *data, size_t size)
{
	char	   *error = NULL;
	AsrJobDoc  *doc = asr_arm_parse_job(data, size, &error);

	if (doc)
	{
		ListCell   *lc;

		(void) asr_arm_job_outcome(doc->state);
		if (doc->error)
			check_error(doc->error);
		if (doc->progress < 0 || doc->progress > 100)
			elog(ERROR, "progress %d out of range", doc->progress);
		check_text(doc->name, "name");
		check_text(doc->state, "state");
		check_text(doc->state_description, "stateDescription");
		check_text(doc->scenario, "scenarioName");
		check_text(doc->activity_id, "activityId");
		check_text(doc->current_task, "current task");
		check_text(doc->tasks_json, "tasks");
		check_text(doc->new_item_id, "newReplicationProtectedItemId");
		check_text(doc->failover_point_id, "recoveryPointId");
		foreach(lc, doc->allowed_actions)
			check_text((char *) lfirst(lc), "allowedActions");
		if (doc->new_item_id)
		{
			AsrItemPath path;

			(void) asr_arm_parse_item_id(doc->new_item_id, &path);
		}
	}
}

/* an Azure-AsyncOperation status document */
static void
target_operation(const char *data, size_t size)
{
	char	   *error = NULL;

	(void) asr_arm_operation_outcome(data, size, &error);
	check_text(error, "operation error");
}

/* an ARM / ASR / Entra error body on a refused request */
static void
target_error(const char *data, size_t size)
{
	static const long statuses[] = {400, 401, 403, 404, 409, 429, 500, 503};
	int			i;

	for (i = 0; i < lengthof(statuses); i += 3)
	{
		AsrArmError *err = asr_arm_parse_error(response(statuses[i], data, size, NIL));

		if (err)
			check_error(err);
	}
}

/*
 * Response headers: the first byte picks the status, the rest is
 * "Name: value" lines, split as http.c's header callback does (name
 * lower-cased, value trimmed).  Then everything the client reads from an
 * answer: class, Retry-After, budgets, the job name and the LRO URLs.
 */
static void
target_headers(const char *data, size_t size)
{
	static const long statuses[] = {0, 200, 201, 202, 204, 400, 404, 408,
	409, 429, 500, 501, 503, 504};
	const char *p = data;
	const char *end = data + size;
	List	   *headers = NIL;
	AsrHttpResponse *resp;
	long		status;
	long		remaining;
	const char *url;
	const char *why;
	static const char *const kinds[] = {"reads", "writes", "deletes"};
	int			i;

	if (size == 0)
		return;
	status = statuses[(unsigned char) *p % lengthof(statuses)];
	p++;
	while (p < end)
	{
		const char *line = take_line(&p, end);
		const char *colon = strchr(line, ':');
		AsrHttpHeader *h;
		char	   *name;
		const char *v;
		size_t		vlen;

		if (colon == NULL || colon == line)
			continue;
		h = palloc(sizeof(AsrHttpHeader));
		name = pnstrdup(line, colon - line);
		for (char *c = name; *c; c++)
			*c = pg_tolower((unsigned char) *c);
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		vlen = strlen(v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
			vlen--;
		h->name = name;
		h->value = pnstrdup(v, vlen);
		headers = lappend(headers, h);
	}
	resp = response(status, "", 0, headers);

	(void) asr_arm_classify(resp);
	if (asr_arm_retry_after_ms(resp, 1000) < 0)
		elog(ERROR, "negative Retry-After delay");
	for (i = 0; i < lengthof(kinds); i++)
		(void) asr_arm_ratelimit_remaining(resp, kinds[i], &remaining);
	(void) asr_arm_job_name(resp);
	url = asr_http_header(resp, "azure-asyncoperation");
	if (url)
	{
		(void) asr_url_same_origin(url, ARM_BASE, false, &why);
		(void) asr_url_same_origin(url, EMU_BASE, false, &why);
	}
	url = asr_http_header(resp, "location");
	if (url)
		(void) asr_url_same_origin(url, ARM_BASE, false, &why);
}

/* ARM ids from documents: an item id (and a second id to compare) */
static void
target_armid(const char *data, size_t size)
{
	static const char *const shapes[] = {ARM_SHAPE_RESOURCE_GROUP, ARM_SHAPE_VNET,
		ARM_SHAPE_STORAGE, ARM_SHAPE_AVSET, ARM_SHAPE_PPG, ARM_SHAPE_ITEM};
	const char *p = data;
	const char *end = data + size;
	const char *a = take_line(&p, end);
	const char *b = take_line(&p, end);
	AsrItemPath path;
	int			i,
				n;

	if (asr_arm_parse_item_id(a, &path))
	{
		if (!path.subscription || !path.resource_group || !path.vault ||
			!path.fabric || !path.container || !path.item)
			elog(ERROR, "item id accepted with a missing segment");
		(void) asr_arm_container_path(a);
	}
	(void) asr_arm_ids_equal(a, b);
	(void) asr_is_guid(a);
	for (i = 0; i < lengthof(shapes); i++)
		(void) asr_arm_id_matches(a, shapes[i]);
	(void) asr_arm_id_equal(a, b);
	n = asr_arm_id_nsegments(a);
	for (i = 0; i <= n + 1 && i < 64; i++)
	{
		(void) asr_arm_id_segment(a, i);
		(void) asr_arm_id_prefix(a, i);
	}
}

/* URLs taken from responses (Location, Azure-AsyncOperation, nextLink) */
static void
target_url(const char *data, size_t size)
{
	const char *p = data;
	const char *end = data + size;
	const char *url = take_line(&p, end);
	const char *base = take_line(&p, end);
	const char *why;
	bool		ok;

	ok = asr_url_same_origin(url, ARM_BASE, false, &why);
	if (ok != (why == NULL))
		elog(ERROR, "same-origin answer and reason disagree");
	(void) asr_url_same_origin(url, EMU_BASE, false, &why);
	(void) asr_url_same_origin(url, "http://169.254.169.254", true, &why);
	if (*base)
		(void) asr_url_same_origin(url, base, false, &why);
}

/* a token response from Entra ID or IMDS, through the token state */
static AsrTokenState *token_state[2];

static AsrCredential *
fuzz_cred(AsrAuthMode auth)
{
	AsrCredential *c = palloc0(sizeof(AsrCredential));

	c->server_name = "fuzz";
	c->server_id = 1 + (Oid) auth;
	c->mapping_user = InvalidOid;
	c->tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
	c->cloud = "AzureCloud";
	c->arm_endpoint = ARM_BASE;
	c->login_endpoint = "https://login.microsoftonline.com";
	c->imds_endpoint = "http://169.254.169.254";
	c->scope = "https://management.azure.com/.default";
	c->imds_resource = "https://management.azure.com/";
	c->auth = auth;
	c->client_id = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
	if (auth == ASR_AUTH_MANAGED_IDENTITY)
		c->token_url = "http://169.254.169.254/metadata/identity/oauth2/token";
	else
	{
		c->token_url = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";
		c->client_secret = "fuzz-not-a-secret";
	}
	snprintf(c->fingerprint, sizeof(c->fingerprint), "fuzz-%d", (int) auth);
	return c;
}

static void
target_token(const char *data, size_t size)
{
	static const long statuses[] = {200, 400, 401, 429, 500, 503};
	TimestampTz now = GetCurrentTimestamp();
	AsrTokenState *st;
	AsrHttpRequest *req;
	int			which;

	if (size == 0)
		return;
	which = (unsigned char) data[0] & 1;
	if (token_state[which] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		token_state[which] = asr_auth_for(fuzz_cred(which ? ASR_AUTH_MANAGED_IDENTITY :
													ASR_AUTH_CLIENT_SECRET));
		MemoryContextSwitchTo(old);
	}
	st = token_state[which];
	/* a request in flight, as the client would have sent it */
	asr_auth_abandon_request(st, now, "fuzz");
	req = asr_auth_build_request(st, now, CurrentMemoryContext);
	if (req == NULL)
		elog(ERROR, "no token request: %s", asr_auth_last_error(st));
	asr_auth_handle_response(st,
							 response(statuses[((unsigned char) data[0] >> 1) % lengthof(statuses)],
									  body_copy((const uint8_t *) data + 1, size - 1),
									  size - 1, NIL),
							 now);
	(void) asr_auth_token_usable(st, now);
	(void) asr_auth_bearer(st);
	(void) asr_auth_last_error(st);
}

typedef struct FuzzTargetDef
{
	const char *name;
	FuzzTarget	fn;
} FuzzTargetDef;

static const FuzzTargetDef targets[] = {
	{"job", target_job},
	{"operation", target_operation},
	{"error", target_error},
	{"headers", target_headers},
	{"armid", target_armid},
	{"url", target_url},
	{"token", target_token},
	/* fuzz_worker.c: the worker's readers, with the tables */
	{"item", fuzz_target_item},
	{"points", fuzz_target_points},
	{"list", fuzz_target_list},
};

static const FuzzTargetDef *current;

/*
 * One input: a fresh context (deleted afterwards, so libFuzzer's leak check
 * sees only what the code under test mallocs and keeps), and an ERROR is a
 * finding.
 */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "asr fuzz input",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		current->fn(body_copy(data, size), size);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		fprintf(stderr, "asr_fuzz: target \"%s\" raised ERROR: %s\n",
				current->name, e->message ? e->message : "(no message)");
		fflush(stderr);
		abort();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}

/*
 * asr_fuzz(target text, args text[]): run libFuzzer's driver with args
 * (corpus directories, -max_total_time=..., ...).  libFuzzer ends the
 * process when it is done: this function does not return.
 */
Datum
asr_fuzz(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				argc;
	char	  **argv;

	current = NULL;
	for (i = 0; i < lengthof(targets); i++)
		if (strcmp(targets[i].name, name) == 0)
			current = &targets[i];
	if (current == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown fuzz target \"%s\"", name)));

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	argv = palloc0(sizeof(char *) * (n + 2));
	argv[0] = psprintf("asr_fuzz_%s", name);
	for (i = 0; i < n; i++)
		argv[i + 1] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	argc = n + 1;
	PG_RETURN_INT32(LLVMFuzzerRunDriver(&argc, &argv, fuzz_one));
}
