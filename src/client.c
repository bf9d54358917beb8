/*-------------------------------------------------------------------------
 *
 * client.c
 *	  ARM calls with retries, throttling and tokens, on top of http.c.
 *
 * Azure's own clients retry transport errors, 408, 429 and 5xx with
 * exponential back-off and honour Retry-After; ARM throttles each
 * subscription and principal with read and write token buckets and says
 * how much is left in x-ms-ratelimit-remaining-subscription-* headers.
 * This file does the same for the worker, with one difference that
 * matters for disaster recovery: an action POST is never sent twice by the
 * client unless Azure said it was not processed (429) or the request
 * never left this machine; anything else goes back to the job layer,
 * which reconciles with Azure's job list before deciding.
 *
 * Every call carries its own memory context; resetting that context
 * cancels the call wherever it is (queued, in flight, or done).
 *
 * IDENTIFICATION
 *	  src/client.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/uuid.h"

#include "arm.h"
#include "asr.h"
#include "client.h"

/* what a transfer's tag points at */
typedef enum TagKind
{
	TAG_CALL,
	TAG_TOKEN
} TagKind;

struct AsrCall
{
	TagKind		kind;
	MemoryContext cxt;
	MemoryContextCallback cb;
	char	   *method;
	char	   *url;
	char	   *body;
	char	   *client_request_id;
	char	   *subscription;
	char	   *arm_base;
	bool		is_write;
	bool		retry_post;
	void	   *cred;
	int			max_attempts;
	AsrCallDone done;
	void	   *arg;
	/* state */
	int			attempts;
	bool		retried_401;
	uint64		token_generation;	/* of the token this attempt carries */
	bool		in_flight;
	bool		finished;
	TimestampTz not_before;
	AsrHttpTransfer *transfer;
	char	   *last_error;
};

typedef struct TokenFetch
{
	TagKind		kind;
	void	   *cred;
	MemoryContext cxt;
	AsrHttpTransfer *transfer;
} TokenFetch;

/* ARM's budget of one subscription, as last reported */
typedef struct Budget
{
	char	   *subscription;
	long		reads;			/* -1 = unknown */
	long		writes;
	TimestampTz reads_until;	/* throttled until (429) or paced */
	TimestampTz writes_until;
	int			reads_in_flight;	/* sent, not yet counted by a header */
	int			writes_in_flight;
} Budget;

/* Refill rates of ARM's buckets (per subscription and principal). */
#define READ_REFILL_PER_S 25
#define WRITE_REFILL_PER_S 10
/* Start pacing when this little is left. */
#define BUDGET_LOW_WATER 2

static const AsrTokenSource *tokens = NULL;
static MemoryContext client_context = NULL;
static List *calls = NIL;		/* of AsrCall *, not finished */
static List *fetches = NIL;		/* of TokenFetch * */
static List *budgets = NIL;		/* of Budget * */

static void call_forget(void *arg);
static Budget *budget_for(const char *subscription);
static void in_flight_done(Budget *b, bool is_write);
static void budget_update(Budget *b, const AsrHttpResponse *resp, bool is_write,
						  TimestampTz now);
static void start_due(TimestampTz now, TimestampTz *next_wake);
static void handle_done(AsrHttpTransfer *t, TimestampTz now);
static void finish_call(AsrCall *call, AsrHttpResponse *resp);
static void ensure_token(void *cred, TimestampTz now, TimestampTz *next_wake);
static bool fetch_in_flight(void *cred);
static AsrHttpResponse *local_failure(MemoryContext cxt, const char *why);

void
asr_client_init(const AsrTokenSource *source)
{
	tokens = source;
	if (client_context == NULL)
		client_context = AllocSetContextCreate(TopMemoryContext, "asr client",
											   ALLOCSET_DEFAULT_SIZES);
}

/*
 * Queue a call.  It is sent from asr_client_pump(); done is called exactly
 * once, unless cxt is reset first (which cancels the call silently).
 */
AsrCall *
asr_client_call(const AsrCallSpec *spec, MemoryContext cxt, AsrCallDone done,
				void *arg)
{
	AsrCall    *call = MemoryContextAllocZero(cxt, sizeof(AsrCall));
	MemoryContext old;

	call->kind = TAG_CALL;
	call->cxt = cxt;
	call->method = MemoryContextStrdup(cxt, spec->method);
	call->url = MemoryContextStrdup(cxt, spec->url);
	call->body = spec->body ? MemoryContextStrdup(cxt, spec->body) : NULL;
	if (spec->client_request_id)
		call->client_request_id = MemoryContextStrdup(cxt, spec->client_request_id);
	else
	{
		old = MemoryContextSwitchTo(cxt);
		call->client_request_id =
			DatumGetCString(DirectFunctionCall1(uuid_out,
												DirectFunctionCall1(gen_random_uuid, (Datum) 0)));
		MemoryContextSwitchTo(old);
	}
	call->subscription = MemoryContextStrdup(cxt, spec->subscription ? spec->subscription : "");
	call->arm_base = MemoryContextStrdup(cxt, spec->arm_base);
	call->is_write = spec->is_write;
	call->retry_post = spec->retry_post;
	call->cred = spec->cred;
	call->max_attempts = spec->max_attempts;
	call->done = done;
	call->arg = arg;
	call->not_before = 0;
	call->cb.func = call_forget;
	call->cb.arg = call;
	MemoryContextRegisterResetCallback(cxt, &call->cb);

	old = MemoryContextSwitchTo(client_context);
	calls = lappend(calls, call);
	MemoryContextSwitchTo(old);
	return call;
}

/*
 * The call's context goes away: forget the call.  Its transfer (allocated
 * in the same context) is released by http.c's own callback.
 */
static void
call_forget(void *arg)
{
	AsrCall    *call = (AsrCall *) arg;
	MemoryContext old = MemoryContextSwitchTo(client_context);

	if (call->in_flight)
		in_flight_done(budget_for(call->subscription), call->is_write);
	call->in_flight = false;
	calls = list_delete_ptr(calls, call);
	MemoryContextSwitchTo(old);
	call->finished = true;
}

void
asr_client_cancel(AsrCall *call)
{
	if (call->transfer)
		asr_http_release(call->transfer);
	call->transfer = NULL;
	call_forget(call);
}

int
asr_client_pending(void)
{
	return list_length(calls);
}

int
asr_call_attempts(AsrCall *call)
{
	return call->attempts;
}

const char *
asr_call_last_error(AsrCall *call)
{
	return call->last_error;
}

static Budget *
budget_for(const char *subscription)
{
	ListCell   *lc;
	Budget	   *b;
	MemoryContext old;

	foreach(lc, budgets)
	{
		b = (Budget *) lfirst(lc);
		if (pg_strcasecmp(b->subscription, subscription) == 0)
			return b;
	}
	old = MemoryContextSwitchTo(client_context);
	b = palloc0(sizeof(Budget));
	b->subscription = pstrdup(subscription);
	b->reads = b->writes = -1;
	budgets = lappend(budgets, b);
	MemoryContextSwitchTo(old);
	return b;
}

/*
 * Learn from a response how much budget is left.  When little is left,
 * pace the next request of that kind by the bucket's refill rate, so a
 * wave of a thousand failovers goes out as fast as ARM allows and no
 * faster; a 429 stops that kind until Retry-After has passed.
 */
static void
budget_update(Budget *b, const AsrHttpResponse *resp, bool is_write,
			  TimestampTz now)
{
	long		remaining;

	/*
	 * The header counts what ARM had received when it answered; requests
	 * still in flight will take from it too.  Without this, a wave with
	 * sixteen requests in flight overruns the bucket by sixteen and each
	 * 429 stops that kind of request for a second or more.
	 */
	if (asr_arm_ratelimit_remaining(resp, "reads", &remaining))
	{
		remaining = Max(remaining - b->reads_in_flight, 0);
		b->reads = remaining;
		if (remaining <= BUDGET_LOW_WATER)
			b->reads_until = Max(b->reads_until,
								 TimestampTzPlusMilliseconds(now, 1000 / READ_REFILL_PER_S));
	}
	if (asr_arm_ratelimit_remaining(resp, "writes", &remaining))
	{
		remaining = Max(remaining - b->writes_in_flight, 0);
		b->writes = remaining;
		if (remaining <= BUDGET_LOW_WATER)
			b->writes_until = Max(b->writes_until,
								  TimestampTzPlusMilliseconds(now, 1000 / WRITE_REFILL_PER_S));
	}
	if (resp->status == 429)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(now,
														asr_arm_retry_after_ms(resp, 5000));

		if (is_write)
			b->writes_until = Max(b->writes_until, until);
		else
			b->reads_until = Max(b->reads_until, until);
		SpinLockAcquire(&asr_shared->mutex);
		asr_shared->throttled_until = Max(asr_shared->throttled_until, until);
		SpinLockRelease(&asr_shared->mutex);
	}
}

/* a request of this kind is no longer in flight */
static void
in_flight_done(Budget *b, bool is_write)
{
	if (is_write && b->writes_in_flight > 0)
		b->writes_in_flight--;
	else if (!is_write && b->reads_in_flight > 0)
		b->reads_in_flight--;
}

static AsrHttpResponse *
local_failure(MemoryContext cxt, const char *why)
{
	AsrHttpResponse *r = MemoryContextAllocZero(cxt, sizeof(AsrHttpResponse));

	r->status = 0;
	r->body = MemoryContextStrdup(cxt, "");
	r->transport_error = MemoryContextStrdup(cxt, why);
	r->never_sent = true;
	return r;
}

static void
finish_call(AsrCall *call, AsrHttpResponse *resp)
{
	MemoryContext old = MemoryContextSwitchTo(client_context);

	calls = list_delete_ptr(calls, call);
	MemoryContextSwitchTo(old);
	call->finished = true;
	call->done(call, resp, call->arg);
}

static bool
fetch_in_flight(void *cred)
{
	ListCell   *lc;

	foreach(lc, fetches)
		if (((TokenFetch *) lfirst(lc))->cred == cred)
			return true;
	return false;
}

/*
 * Start a token request for cred unless one is in flight or auth.c asks
 * us to wait (back-off after a failure).
 */
static void
ensure_token(void *cred, TimestampTz now, TimestampTz *next_wake)
{
	ListCell   *lc;
	TokenFetch *f;
	AsrHttpRequest *req;
	MemoryContext old;
	TimestampTz retry_at;

	foreach(lc, fetches)
	{
		f = (TokenFetch *) lfirst(lc);
		if (f->cred == cred)
			return;
	}
	retry_at = tokens->token_retry_at(cred);
	if (retry_at > now)
	{
		*next_wake = Min(*next_wake, retry_at);
		return;
	}
	if (asr_http_in_flight() >= asr_max_concurrent_requests)
		return;
	old = MemoryContextSwitchTo(client_context);
	f = palloc0(sizeof(TokenFetch));
	f->kind = TAG_TOKEN;
	f->cred = cred;
	f->cxt = AllocSetContextCreate(client_context, "asr token fetch",
								   ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(f->cxt);
	req = tokens->token_request(cred, now);
	MemoryContextSwitchTo(old);
	if (req == NULL)
	{
		MemoryContextDelete(f->cxt);
		pfree(f);
		return;
	}
	req->secret_response = true;
	f->transfer = asr_http_start(req, f->cxt, f);
	old = MemoryContextSwitchTo(client_context);
	fetches = lappend(fetches, f);
	MemoryContextSwitchTo(old);
}

/*
 * Start every call that is due and allowed by the concurrency limit, the
 * subscription's budget and the availability of a token.
 */
static void
start_due(TimestampTz now, TimestampTz *next_wake)
{
	List	   *snapshot = list_copy(calls);
	ListCell   *lc;

	foreach(lc, snapshot)
	{
		AsrCall    *call = (AsrCall *) lfirst(lc);
		Budget	   *b;
		TimestampTz until;
		const char *bearer;
		const char *why = NULL;
		AsrHttpRequest req;
		MemoryContext old;

		if (call->in_flight || call->finished)
			continue;
		if (call->not_before > now)
		{
			*next_wake = Min(*next_wake, call->not_before);
			continue;
		}
		if (asr_http_in_flight() >= asr_max_concurrent_requests)
			break;

		if (!asr_url_same_origin(call->url, call->arm_base, false, &why))
		{
			/* never send a token anywhere but the configured ARM endpoint */
			finish_call(call, local_failure(call->cxt, why));
			continue;
		}

		b = budget_for(call->subscription);
		until = call->is_write ? b->writes_until : b->reads_until;
		if (until > now)
		{
			*next_wake = Min(*next_wake, until);
			continue;
		}

		bearer = tokens->bearer(call->cred, now);
		if (bearer == NULL)
		{
			const char *auth_error;

			ensure_token(call->cred, now, next_wake);
			auth_error = tokens->token_error(call->cred);
			if (auth_error != NULL && !fetch_in_flight(call->cred))
			{
				/* Entra refused us: the owner records why and waits */
				finish_call(call, local_failure(call->cxt,
												psprintf("no token: %s", auth_error)));
			}
			continue;
		}

		/* refresh ahead of expiry, while the current token still works */
		if (tokens->needs_refresh(call->cred, now))
			ensure_token(call->cred, now, next_wake);
		call->token_generation = tokens->generation(call->cred);

		old = MemoryContextSwitchTo(call->cxt);
		memset(&req, 0, sizeof(req));
		req.method = call->method;
		req.url = call->url;
		req.sensitive = true;
		req.headers = list_make3(psprintf("Authorization: Bearer %s", bearer),
								 psprintf("x-ms-client-request-id: %s", call->client_request_id),
								 pstrdup("Accept: application/json"));
		req.headers = lappend(req.headers, pstrdup("x-ms-return-client-request-id: true"));
		if (call->body)
		{
			req.body = call->body;
			req.body_len = strlen(call->body);
			req.headers = lappend(req.headers, pstrdup("Content-Type: application/json"));
		}
		call->transfer = asr_http_start(&req, call->cxt, call);
		/* the header copy with the token: wipe it now, libcurl has its own */
		explicit_bzero(linitial(req.headers), strlen(linitial(req.headers)));
		MemoryContextSwitchTo(old);
		call->in_flight = true;
		call->attempts++;
		if (call->is_write)
			b->writes_in_flight++;
		else
			b->reads_in_flight++;

		/*
		 * Spend the budget locally too, so a burst does not overrun it; once
		 * it is spent as far as we know, one request per refill interval
		 * until a response tells us more.
		 */
		if (call->is_write && b->writes > 0)
			b->writes--;
		else if (!call->is_write && b->reads > 0)
			b->reads--;
		else if (call->is_write && b->writes == 0)
			b->writes_until = Max(b->writes_until,
								  TimestampTzPlusMilliseconds(now, 1000 / WRITE_REFILL_PER_S));
		else if (!call->is_write && b->reads == 0)
			b->reads_until = Max(b->reads_until,
								 TimestampTzPlusMilliseconds(now, 1000 / READ_REFILL_PER_S));
	}
	list_free(snapshot);
}

/*
 * A transfer finished: feed a token response to auth, or decide for a
 * call whether to retry or to hand the response to its owner.
 */
static void
handle_done(AsrHttpTransfer *t, TimestampTz now)
{
	TagKind    *kind = (TagKind *) asr_http_tag(t);
	AsrHttpResponse *resp = asr_http_response(t);
	AsrCall    *call;
	AsrRetryClass cls;
	bool		is_post;
	bool		may_retry;
	long		delay;

	if (*kind == TAG_TOKEN)
	{
		TokenFetch *f = (TokenFetch *) kind;
		MemoryContext old;

		tokens->token_response(f->cred, resp, now);
		old = MemoryContextSwitchTo(client_context);
		fetches = list_delete_ptr(fetches, f);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(f->cxt);
		pfree(f);
		return;
	}

	call = (AsrCall *) kind;
	call->in_flight = false;
	call->transfer = NULL;
	in_flight_done(budget_for(call->subscription), call->is_write);
	budget_update(budget_for(call->subscription), resp, call->is_write, now);

	if (resp->status == 401 && !call->retried_401)
	{
		/* the token was revoked or expired early: fetch a new one, once */
		tokens->invalidate(call->cred, call->token_generation);
		call->retried_401 = true;
		call->not_before = 0;
		asr_http_release(t);
		return;
	}

	cls = asr_arm_classify(resp);
	is_post = (strcmp(call->method, "POST") == 0);
	may_retry = (cls == ASR_RETRY);
	if (may_retry && is_post && !call->retry_post)
		may_retry = (resp->status == 429 || resp->never_sent);
	if (may_retry && call->max_attempts > 0 && call->attempts >= call->max_attempts)
		may_retry = false;

	if (!may_retry)
	{
		/* release first: the owner may delete the call's context */
		asr_http_release(t);
		finish_call(call, resp);
		return;
	}

	/*
	 * The call's own context: the loop's context (current here) is reset
	 * before the next attempt.
	 */
	if (call->last_error)
		pfree(call->last_error);
	call->last_error = resp->status == 0
		? MemoryContextStrdup(call->cxt, resp->transport_error ? resp->transport_error : "no response")
		: MemoryContextStrdup(call->cxt,
							  psprintf("Azure answered HTTP %ld; retrying", resp->status));
	if (asr_http_header(resp, "retry-after") || asr_http_header(resp, "retry-after-ms") ||
		asr_http_header(resp, "x-ms-retry-after-ms"))
		delay = asr_arm_retry_after_ms(resp, 1000);
	else
		delay = asr_arm_backoff_ms(call->attempts);
	call->not_before = TimestampTzPlusMilliseconds(now, delay);
	asr_worker_set_error(call->last_error);
	asr_http_release(t);
}

/*
 * One turn of the engine.  Returns true when the worker's latch was set
 * (new work may be queued in the tables).
 */
bool
asr_client_pump(long timeout_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next_wake = TimestampTzPlusMilliseconds(now, timeout_ms);
	AsrHttpTransfer *t;
	bool		latch;
	long		wait_ms;

	start_due(now, &next_wake);
	wait_ms = TimestampDifferenceMilliseconds(now, next_wake);
	latch = asr_http_wait(Max(wait_ms, 0));
	now = GetCurrentTimestamp();
	while ((t = asr_http_next_done()) != NULL)
		handle_done(t, now);
	return latch;
}
