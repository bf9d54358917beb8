/*-------------------------------------------------------------------------
 *
 * auth.c
 *	  Azure AD (Entra ID) tokens: the per-credential cache and the refresh
 *	  policy; token requests for a client secret, a certificate assertion
 *	  or a managed identity.
 *
 * Everything here is data in, data out: the worker hands us a credential
 * (credlookup.c), asks for a token request, sends it with its HTTP engine
 * and hands back the response.  Nothing here runs SQL, touches the network
 * or the file system, or ereports except when palloc runs out of memory; a
 * failure becomes the state's last_error, in words a DBA can act on.
 * This file decides when to ask (refresh margin, back-off, one request in
 * flight, a 401 from ARM) and what to keep; authreq.c builds what is sent
 * for each source of credentials, authresp.c reads what Entra ID or IMDS
 * answered.
 *
 * Secrets never leave this file except in request bodies, which are
 * zeroed when the caller's memory context goes.  Every buffer that held a
 * secret, a private key, an assertion or a token is allocated at its final
 * size (so no realloc leaves copies behind) and zeroed before release;
 * the certificate's key lives in a signer (jwt.c) in the state's context.
 * Every message is redacted of the secrets its state knows before it is
 * kept (set_error).
 *
 * Arrows: called by creds.c (the worker's token bridge), worker.c (exit),
 * fdw.c and credlookup.c (the cloud table) and the unit and fuzz tests;
 * calls authreq.c (requests), authresp.c (answers) and jwt.c
 * (certificates and assertions).
 *
 * IDENTIFICATION
 *	  src/auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "auth.h"
#include "authreq.h"
#include "authresp.h"
#include "jwt.h"

/* a request in flight longer than this is taken as lost */
#define ASR_AUTH_REQUEST_STALE_S 600
/* longest error text kept */
#define ASR_AUTH_MAX_ERROR 1000

static const AsrCloud clouds[] = {
	{"AzureCloud",
		"https://login.microsoftonline.com",
		"https://management.azure.com",
		"https://management.azure.com/.default",
	"https://management.azure.com/"},
	{"AzureUSGovernment",
		"https://login.microsoftonline.us",
		"https://management.usgovcloudapi.net",
		"https://management.core.usgovcloudapi.net/.default",
	"https://management.core.usgovcloudapi.net/"},
	{"AzureChinaCloud",
		"https://login.chinacloudapi.cn",
		"https://management.chinacloudapi.cn",
		"https://management.chinacloudapi.cn/.default",
	"https://management.chinacloudapi.cn/"},
	{NULL, NULL, NULL, NULL, NULL}
};

struct AsrTokenState
{
	Oid			server_id;
	Oid			mapping_user;
	char		fingerprint[65];
	MemoryContext cxt;			/* everything below; reset on change */
	MemoryContextCallback cb;

	AsrCredential *cred;		/* our copy */

	AsrSigner  *signer;			/* certificate and key, loaded on first use */

	char	   *assertion;
	int64		assertion_exp;	/* unix seconds */

	char	   *token;
	TimestampTz expires_at;
	TimestampTz refresh_at;
	uint64		generation;

	bool		in_flight;
	TimestampTz sent_at;
	TimestampTz next_attempt;
	TimestampTz next_attempt_tokenless; /* the same, had we no token */
	int			failures;		/* permanent ones since the last token */
	int			transient_failures; /* transient ones since the last token */
	bool		transient;		/* the last failure was transient */

	char	   *last_error;
	char	   *last_error_code;
};

static MemoryContext auth_context = NULL;
static List *states = NIL;

static void state_setup(AsrTokenState *st, const AsrCredential *cred);
static void state_reset_callback(void *arg);
static void set_error(AsrTokenState *st, const char *code, const char *fmt,...)
			pg_attribute_printf(3, 4);
static void fail(AsrTokenState *st, TimestampTz now, long retry_after_s,
				 bool transient);
static bool build_assertion(AsrTokenState *st, TimestampTz now);

/*
 * The cloud table, by case-insensitive name.
 */
const AsrCloud *
asr_cloud_lookup(const char *name)
{
	const AsrCloud *c;

	for (c = clouds; c->name; c++)
		if (pg_strcasecmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* the valid cloud names, for the validator's hints */
const char *
asr_cloud_names(void)
{
	return "AzureCloud, AzureUSGovernment, AzureChinaCloud";
}

/*
 * Find or create the state of a credential.  A state is never freed while
 * the worker runs (callers keep pointers to it); a changed credential
 * resets it in place.
 */
AsrTokenState *
asr_auth_for(const AsrCredential *cred)
{
	ListCell   *lc;
	AsrTokenState *st = NULL;
	MemoryContext old;

	if (auth_context == NULL)
		auth_context = AllocSetContextCreate(TopMemoryContext, "asr auth",
											 ALLOCSET_SMALL_SIZES);

	foreach(lc, states)
	{
		AsrTokenState *s = (AsrTokenState *) lfirst(lc);

		if (s->server_id == cred->server_id &&
			s->mapping_user == cred->mapping_user)
		{
			st = s;
			break;
		}
	}

	if (st != NULL)
	{
		if (strcmp(st->fingerprint, cred->fingerprint) == 0)
			return st;
		/* wipes the old secrets, token and keys; runs the callback */
		MemoryContextReset(st->cxt);
		state_setup(st, cred);
		return st;
	}

	old = MemoryContextSwitchTo(auth_context);
	st = palloc0(sizeof(AsrTokenState));
	st->server_id = cred->server_id;
	st->mapping_user = cred->mapping_user;
	st->cxt = AllocSetContextCreate(auth_context, "asr token state",
									ALLOCSET_SMALL_SIZES);
	states = lappend(states, st);
	MemoryContextSwitchTo(old);
	state_setup(st, cred);
	return st;
}

/*
 * Fill a fresh (or just reset) state: copy the credential into the
 * state's context and arm the callback that wipes it.
 */
static void
state_setup(AsrTokenState *st, const AsrCredential *cred)
{
	MemoryContext old = MemoryContextSwitchTo(st->cxt);
	AsrCredential *c = palloc0(sizeof(AsrCredential));

#define COPY(f) (c->f = cred->f ? pstrdup(cred->f) : NULL)
	*c = *cred;
	COPY(server_name);
	COPY(tenant_id);
	COPY(cloud);
	COPY(arm_endpoint);
	COPY(login_endpoint);
	COPY(imds_endpoint);
	COPY(scope);
	COPY(imds_resource);
	COPY(token_url);
	COPY(client_id);
	COPY(client_secret);
	COPY(client_secret_file);
	COPY(certificate_file);
	COPY(certificate_password);
#undef COPY
	if (cred->certificate_data)
	{
		c->certificate_data = palloc(cred->certificate_len + 1);
		memcpy(c->certificate_data, cred->certificate_data,
			   cred->certificate_len);
		c->certificate_data[cred->certificate_len] = '\0';
	}
	MemoryContextSwitchTo(old);

	st->cred = c;
	memcpy(st->fingerprint, cred->fingerprint, sizeof(st->fingerprint));
	st->signer = NULL;
	st->assertion = NULL;
	st->assertion_exp = 0;
	st->token = NULL;
	st->expires_at = st->refresh_at = 0;
	st->in_flight = false;
	st->sent_at = 0;
	st->next_attempt = st->next_attempt_tokenless = 0;
	st->failures = st->transient_failures = 0;
	st->transient = false;
	st->last_error = st->last_error_code = NULL;

	st->cb.func = state_reset_callback;
	st->cb.arg = st;
	MemoryContextRegisterResetCallback(st->cxt, &st->cb);
}

/*
 * Runs when the state's context is reset or deleted: zero every secret.
 */
static void
state_reset_callback(void *arg)
{
	AsrTokenState *st = (AsrTokenState *) arg;

	if (st->cred)
		asr_credential_wipe(st->cred);
	if (st->token)
		explicit_bzero(st->token, strlen(st->token));
	if (st->assertion)
		explicit_bzero(st->assertion, strlen(st->assertion));
	/* the signer has its own callback on the same context */
	st->signer = NULL;
	st->cred = NULL;
	st->token = NULL;
	st->assertion = NULL;
}

/*
 * Wipe every state (worker exit, tests).
 */
void
asr_auth_forget_all(void)
{
	if (auth_context != NULL)
		MemoryContextDelete(auth_context);
	auth_context = NULL;
	states = NIL;
}

/*
 * A token about to expire is not sent: it could expire on the way and
 * earn a 401 that costs a resend.
 */
bool
asr_auth_token_usable(AsrTokenState *st, TimestampTz now)
{
	return st->token != NULL &&
		now < st->expires_at - ASR_AUTH_EXPIRY_SKEW_S * USECS_PER_SEC;
}

/*
 * The refresh policy in one place: at most one request in flight (one
 * that was never answered is abandoned after ASR_AUTH_REQUEST_STALE_S),
 * the back-off respected, and a request only when there is no token or
 * it has reached its refresh time.
 */
bool
asr_auth_needs_refresh(AsrTokenState *st, TimestampTz now)
{
	if (st->in_flight)
	{
		if (now - st->sent_at < ASR_AUTH_REQUEST_STALE_S * USECS_PER_SEC)
			return false;
		asr_auth_abandon_request(st, now, "the token request was never answered");
	}
	if (now < st->next_attempt)
		return false;
	return st->token == NULL || now >= st->refresh_at ||
		!asr_auth_token_usable(st, now);
}

/*
 * Accessors for the worker and the status display: callers never see the
 * state's layout, so the policy cannot be bypassed from outside.
 */
TimestampTz
asr_auth_next_attempt(AsrTokenState *st)
{
	return st->next_attempt;
}

const char *
asr_auth_bearer(AsrTokenState *st)
{
	return st->token;
}

uint64
asr_auth_generation(AsrTokenState *st)
{
	return st->generation;
}

const char *
asr_auth_last_error(AsrTokenState *st)
{
	return st->last_error;
}

const char *
asr_auth_last_error_code(AsrTokenState *st)
{
	return st->last_error_code;
}

bool
asr_auth_failure_transient(AsrTokenState *st)
{
	return st->last_error != NULL && st->transient;
}

TimestampTz
asr_auth_expires_at(AsrTokenState *st)
{
	return st->token ? st->expires_at : 0;
}

/*
 * ARM said 401.  Drop the token that was used unless a newer one already
 * replaced it; the back-off after a failed refresh still applies, but as
 * for a state without a token: after an outage the next attempt no longer
 * waits 30 s for the sake of a token we do not have any more.
 */
bool
asr_auth_invalidate(AsrTokenState *st, uint64 gen)
{
	if (st->token != NULL && gen == st->generation)
	{
		asr_wipe_free(&st->token);
		st->expires_at = st->refresh_at = 0;
		st->next_attempt = Min(st->next_attempt, st->next_attempt_tokenless);
	}
	return true;
}

/*
 * A request that will never be answered (the transfer was dropped, or it
 * went stale) counts as a failed attempt, a transient one like a dropped
 * connection, so the back-off applies and the DBA sees why no token came.
 */
void
asr_auth_abandon_request(AsrTokenState *st, TimestampTz now, const char *why)
{
	if (!st->in_flight)
		return;
	st->in_flight = false;
	set_error(st, "token_request_lost",
			  "could not obtain a token for server \"%s\": %s",
			  st->cred->server_name, why);
	fail(st, now, 0, true);
}

/*
 * The token request for the credential's mode (authreq.c), built with a
 * fresh client assertion for a certificate; a failure is the state's
 * error.  The request belongs to cxt.
 */
AsrHttpRequest *
asr_auth_build_request(AsrTokenState *st, TimestampTz now, MemoryContext cxt)
{
	AsrCredential *c = st->cred;
	AsrHttpRequest *req;

	if (c->auth == ASR_AUTH_CERTIFICATE && !build_assertion(st, now))
	{
		fail(st, now, 0, false);
		return NULL;
	}
	req = asr_auth_token_request(c, st->assertion, cxt);
	if (req == NULL)
	{
		set_error(st, "out_of_memory",
				  "could not build the token request for server \"%s\": out of memory",
				  c->server_name);
		fail(st, now, 0, false);
		return NULL;
	}
	st->in_flight = true;
	st->sent_at = now;
	return req;
}

/*
 * Replace every occurrence of secret in msg by "[redacted]": an endpoint
 * that echoes what it was sent must not make us print it.
 */
static char *
redact(char *msg, const char *secret)
{
	StringInfoData out;
	size_t		n;
	char	   *p;
	char	   *hit;

	if (secret == NULL || (n = strlen(secret)) < 4 || strstr(msg, secret) == NULL)
		return msg;
	initStringInfo(&out);
	for (p = msg; (hit = strstr(p, secret)) != NULL; p = hit + n)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, "[redacted]");
	}
	appendStringInfoString(&out, p);
	explicit_bzero(msg, strlen(msg));
	pfree(msg);
	return out.data;
}

/*
 * Consume the answer to the last request: authresp.c reads it, and here
 * the token is stored with its refresh time, or the error recorded with
 * its back-off.
 */
void
asr_auth_handle_response(AsrTokenState *st, const AsrHttpResponse *resp,
						 TimestampTz now)
{
	AsrTokenAnswer answer;
	TimestampTz lifetime;
	TimestampTz margin;

	if (!st->in_flight)
		return;					/* the credential changed meanwhile */
	st->in_flight = false;

	asr_token_answer_read(st->cred, resp, st->sent_at, now, &answer);

	if (answer.outcome != ASR_TOKEN_ISSUED)
	{
		set_error(st, answer.error_code, "%s", answer.error);
		asr_wipe_free(&answer.error);
		if (answer.outcome == ASR_TOKEN_REFUSED)
		{
			/* a refused assertion is not offered again */
			asr_wipe_free(&st->assertion);
			fail(st, now, answer.retry_after_s, answer.transient);
		}
		else
			fail(st, now, 0, answer.transient);
		return;
	}

	asr_wipe_free(&st->token);
	st->token = MemoryContextStrdup(st->cxt, answer.access_token);
	asr_wipe_free(&answer.access_token);
	st->expires_at = answer.expires_at;
	lifetime = answer.expires_at - st->sent_at;
	margin = Min((TimestampTz) ASR_AUTH_REFRESH_MARGIN_S * USECS_PER_SEC,
				 lifetime / 2);
	st->refresh_at = answer.expires_at - margin;
	if (answer.refresh_in_s > 0)
		st->refresh_at = Min(st->refresh_at,
							 st->sent_at + (TimestampTz) answer.refresh_in_s * USECS_PER_SEC);
	st->generation++;
	st->failures = st->transient_failures = 0;
	st->transient = false;
	st->next_attempt = st->next_attempt_tokenless = 0;
	if (st->last_error)
		pfree(st->last_error);
	if (st->last_error_code)
		pfree(st->last_error_code);
	st->last_error = st->last_error_code = NULL;
}

/*
 * Record last_error (formatted, shortened, printable, and redacted of
 * every secret this state knows) and its code.
 */
static void
set_error(AsrTokenState *st, const char *code, const char *fmt,...)
{
	MemoryContext old = MemoryContextSwitchTo(st->cxt);
	StringInfoData buf;
	char	   *p;
	char	   *q;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	/* redact first: truncation could cut an echoed secret in half */
	p = buf.data;
	if (st->cred)
	{
		p = redact(p, st->cred->client_secret);
		p = redact(p, st->cred->certificate_password);
	}
	p = redact(p, st->assertion);
	p = redact(p, st->token);
	if (strlen(p) > ASR_AUTH_MAX_ERROR)
		p[ASR_AUTH_MAX_ERROR] = '\0';
	/* one line of ASCII: safe in any database encoding and any log */
	for (q = p; *q; q++)
	{
		if ((unsigned char) *q < 0x20)
			*q = ' ';
		else if ((unsigned char) *q >= 0x7f)
			*q = '?';
	}

	if (st->last_error)
		pfree(st->last_error);
	if (st->last_error_code)
		pfree(st->last_error_code);
	st->last_error = p;
	st->last_error_code = pstrdup(code);
	MemoryContextSwitchTo(old);
}

/*
 * A failed attempt: when to try again (the policy in auth.h).  A
 * transient failure (an outage, throttling) is tried again after 1 s,
 * doubling up to 30 s, as MSAL and azure-identity do, so that a worker
 * started during a short Entra ID or IMDS outage has its token seconds
 * after the endpoint is back rather than minutes; while a token that
 * stays usable for the next 30 s is in hand there is no hurry, and the
 * attempts stay 30 s apart (arm-client.md §4.6).  A permanent failure
 * needs the DBA: 30 s, doubling up to 5 min, so that a wrong secret does
 * not hammer Entra ID.  Retry-After wins when longer (at most an hour).
 * A token that is still valid stays usable.
 */
static void
fail(AsrTokenState *st, TimestampTz now, long retry_after_s, bool transient)
{
	long		delay;
	long		max;
	int			n;
	int			i;

	if (transient)
	{
		delay = ASR_AUTH_TRANSIENT_MIN_S;
		max = ASR_AUTH_TRANSIENT_MAX_S;
		n = st->transient_failures++;
	}
	else
	{
		delay = ASR_AUTH_RETRY_MIN_S;
		max = ASR_AUTH_RETRY_MAX_S;
		n = st->failures++;
	}
	for (i = 0; i < n && delay < max; i++)
		delay *= 2;
	delay = Min(delay, max);
	if (retry_after_s > delay)
		delay = Min(retry_after_s, ASR_AUTH_RETRY_AFTER_MAX_S);
	st->transient = transient;
	st->next_attempt_tokenless = now + (TimestampTz) delay * USECS_PER_SEC;

	if (transient && delay < ASR_AUTH_RETRY_MIN_S &&
		asr_auth_token_usable(st, now + (TimestampTz) ASR_AUTH_RETRY_MIN_S * USECS_PER_SEC))
		delay = ASR_AUTH_RETRY_MIN_S;
	st->next_attempt = now + (TimestampTz) delay * USECS_PER_SEC;
}

/* ---- certificates and assertions ---- */

/*
 * The client assertion, built or reused until 60 s before it expires as
 * MSAL does; the certificate is loaded on first use.
 */
static bool
build_assertion(AsrTokenState *st, TimestampTz now)
{
	AsrCredential *c = st->cred;
	int64		t = (int64) timestamptz_to_time_t(now);
	char	   *error = NULL;

	if (st->assertion && t < st->assertion_exp - ASR_AUTH_ASSERTION_MARGIN_S)
		return true;
	asr_wipe_free(&st->assertion);

	if (st->signer == NULL)
	{
		if (c->certificate_data == NULL || c->certificate_len == 0)
			error = psprintf("certificate_file \"%s\" is empty",
							 c->certificate_file ? c->certificate_file : "");
		else
			st->signer = asr_signer_load(c->certificate_data,
										 c->certificate_len,
										 c->certificate_password,
										 c->certificate_file, st->cxt,
										 &error);
		if (st->signer == NULL)
		{
			set_error(st, "certificate_unusable",
					  "could not use the certificate of server \"%s\": %s",
					  c->server_name, error);
			return false;
		}
	}

	st->assertion = asr_jwt_assertion(st->signer, c->jwt_algorithm,
									  c->send_certificate_chain,
									  c->token_url, c->client_id, t,
									  ASR_AUTH_ASSERTION_LIFE_S, st->cxt,
									  &error);
	if (st->assertion == NULL)
	{
		set_error(st, "signing_failed",
				  "could not sign the client assertion for server \"%s\": %s",
				  c->server_name, error);
		return false;
	}
	st->assertion_exp = t + ASR_AUTH_ASSERTION_LIFE_S;
	return true;
}

/*
 * Test hook (auth.h): lets the unit tests check the assertion a
 * certificate credential would send, without a token endpoint.
 */
const char *
asr_auth_client_assertion(AsrTokenState *st, TimestampTz now)
{
	if (st->cred->auth != ASR_AUTH_CERTIFICATE)
		return NULL;
	return build_assertion(st, now) ? st->assertion : NULL;
}
