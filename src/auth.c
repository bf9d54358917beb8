/*-------------------------------------------------------------------------
 *
 * auth.c
 *	  Azure AD (Entra ID) tokens: client secret, certificate assertion,
 *	  managed identity, and the per-credential cache.
 *
 * Everything here is data in, data out: the worker hands us a credential
 * (fdw.c), asks for a token request, sends it with its HTTP engine and
 * hands back the response.  Nothing here runs SQL, touches the network or
 * the file system, or ereports except when palloc runs out of memory; a
 * failure becomes the state's last_error, in words a DBA can act on.
 *
 * Secrets never leave this file except in request bodies, which are
 * zeroed when the caller's memory context goes.  Every buffer that held a
 * secret, a private key, an assertion or a token is allocated at its final
 * size (so no realloc leaves copies behind) and zeroed before release;
 * the certificate's key lives in a signer (jwt.c) in the state's context.
 * JSON is read with PostgreSQL's own JSON parser (common/jsonapi.h, the
 * one under jsonb), which reports malformed input as a return code
 * instead of an ERROR.
 *
 * IDENTIFICATION
 *	  src/auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "auth.h"
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
	int			failures;

	char	   *last_error;
	char	   *last_error_code;
};

static MemoryContext auth_context = NULL;
static List *states = NIL;

static void state_setup(AsrTokenState *st, const AsrCredential *cred);
static void state_reset_callback(void *arg);
static void wipe_free(char **p);
static char *concat_n(MemoryContext cxt, int n,...);
static char *host_of(const char *url);
static void set_error(AsrTokenState *st, const char *code, const char *fmt,...)
			pg_attribute_printf(3, 4);
static void fail(AsrTokenState *st, TimestampTz now, long retry_after_s);
static bool build_assertion(AsrTokenState *st, TimestampTz now);
static void wipe_request_callback(void *arg);

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
	st->next_attempt = 0;
	st->failures = 0;
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

bool
asr_auth_token_usable(AsrTokenState *st, TimestampTz now)
{
	return st->token != NULL &&
		now < st->expires_at - ASR_AUTH_EXPIRY_SKEW_S * USECS_PER_SEC;
}

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

TimestampTz
asr_auth_expires_at(AsrTokenState *st)
{
	return st->token ? st->expires_at : 0;
}

/*
 * ARM said 401.  Drop the token that was used unless a newer one already
 * replaced it; the back-off after a failed refresh still applies.
 */
bool
asr_auth_invalidate(AsrTokenState *st, uint64 gen)
{
	if (st->token != NULL && gen == st->generation)
	{
		wipe_free(&st->token);
		st->expires_at = st->refresh_at = 0;
	}
	return true;
}

void
asr_auth_abandon_request(AsrTokenState *st, TimestampTz now, const char *why)
{
	if (!st->in_flight)
		return;
	st->in_flight = false;
	set_error(st, "token_request_lost",
			  "could not obtain a token for server \"%s\": %s",
			  st->cred->server_name, why);
	fail(st, now, 0);
}

/*
 * The token request for the credential's mode.  The form body holds the
 * secret or the assertion: it is sized once and zeroed by a callback on
 * cxt, so no copy outlives the transfer.
 */
AsrHttpRequest *
asr_auth_build_request(AsrTokenState *st, TimestampTz now, MemoryContext cxt)
{
	AsrCredential *c = st->cred;
	AsrHttpRequest *req;
	MemoryContextCallback *cb;
	MemoryContext old;
	char	   *e_client = NULL;
	char	   *e_scope = NULL;
	char	   *e_secret = NULL;
	char	   *body = NULL;
	char	   *url = NULL;

	if (c->auth == ASR_AUTH_CERTIFICATE)
	{
		if (!build_assertion(st, now))
		{
			fail(st, now, 0);
			return NULL;
		}
	}

	/* libcurl ignores the handle argument of curl_easy_escape since 7.82 */
	if (c->client_id)
		e_client = curl_easy_escape(NULL, c->client_id, 0);
	if (c->auth == ASR_AUTH_MANAGED_IDENTITY)
		e_scope = curl_easy_escape(NULL, c->imds_resource, 0);
	else
		e_scope = curl_easy_escape(NULL, c->scope, 0);
	if (c->auth == ASR_AUTH_CLIENT_SECRET)
		e_secret = curl_easy_escape(NULL, c->client_secret, 0);
	if ((c->client_id && e_client == NULL) || e_scope == NULL ||
		(c->auth == ASR_AUTH_CLIENT_SECRET && e_secret == NULL))
	{
		if (e_secret)
			explicit_bzero(e_secret, strlen(e_secret));
		curl_free(e_secret);
		curl_free(e_client);
		curl_free(e_scope);
		set_error(st, "out_of_memory",
				  "could not build the token request for server \"%s\": out of memory",
				  c->server_name);
		fail(st, now, 0);
		return NULL;
	}

	old = MemoryContextSwitchTo(cxt);
	req = palloc0(sizeof(AsrHttpRequest));
	req->sensitive = true;		/* the answer carries a token */
	switch (c->auth)
	{
		case ASR_AUTH_CLIENT_SECRET:
			body = concat_n(cxt, 6,
							"grant_type=client_credentials&client_id=", e_client,
							"&scope=", e_scope,
							"&client_secret=", e_secret);
			break;
		case ASR_AUTH_CERTIFICATE:
			body = concat_n(cxt, 6,
							"grant_type=client_credentials&client_id=", e_client,
							"&scope=", e_scope,
							"&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
							"&client_assertion=", st->assertion);
			break;
		case ASR_AUTH_MANAGED_IDENTITY:
			if (e_client)
				url = psprintf("%s?api-version=%s&resource=%s&client_id=%s",
							   c->token_url, ASR_IMDS_API_VERSION, e_scope,
							   e_client);
			else
				url = psprintf("%s?api-version=%s&resource=%s",
							   c->token_url, ASR_IMDS_API_VERSION, e_scope);
			break;
	}
	if (e_secret)
		explicit_bzero(e_secret, strlen(e_secret));
	curl_free(e_secret);
	curl_free(e_client);
	curl_free(e_scope);

	if (c->auth == ASR_AUTH_MANAGED_IDENTITY)
	{
		req->method = "GET";
		req->url = url;
		req->headers = list_make2(pstrdup("Metadata: true"),
								  pstrdup("Accept: application/json"));
		req->allow_plain_http = true;
		req->no_proxy = true;
	}
	else
	{
		req->method = "POST";
		req->url = pstrdup(c->token_url);
		req->headers = list_make2(pstrdup("Content-Type: application/x-www-form-urlencoded"),
								  pstrdup("Accept: application/json"));
		req->body = body;
		req->body_len = strlen(body);
		cb = palloc0(sizeof(MemoryContextCallback));
		cb->func = wipe_request_callback;
		cb->arg = req;
		MemoryContextRegisterResetCallback(cxt, cb);
	}
	MemoryContextSwitchTo(old);

	st->in_flight = true;
	st->sent_at = now;
	return req;
}

static void
wipe_request_callback(void *arg)
{
	AsrHttpRequest *req = (AsrHttpRequest *) arg;

	if (req->body)
		explicit_bzero((char *) req->body, req->body_len);
}

/* ---- reading the answer ---- */

typedef struct TokenFields
{
	int			depth;
	char	   *field;			/* current top-level field */
	bool		in_codes;		/* inside "error_codes" */
	char	   *access_token;
	char	   *token_type;
	char	   *expires_in;
	char	   *expires_on;
	char	   *refresh_in;
	char	   *error;
	char	   *error_description;
	char	   *error_code;		/* first of error_codes */
	char	   *trace_id;
	char	   *correlation_id;
} TokenFields;

static void
tf_struct_start(void *state)
{
	((TokenFields *) state)->depth++;
}

static void
tf_struct_end(void *state)
{
	TokenFields *tf = (TokenFields *) state;

	tf->depth--;
	if (tf->depth == 1)
		tf->in_codes = false;
}

static void
tf_field(void *state, char *fname, bool isnull)
{
	TokenFields *tf = (TokenFields *) state;

	if (tf->depth != 1)
	{
		pfree(fname);
		return;
	}
	if (tf->field)
		pfree(tf->field);
	tf->field = fname;
	tf->in_codes = (strcmp(fname, "error_codes") == 0);
}

static void
tf_keep(char **slot, char *token)
{
	if (*slot)
		wipe_free(slot);
	*slot = token;
}

/*
 * Keep the fields we read; zero and drop every other scalar, since some
 * of them (refresh_token, id tokens) may be secrets too.
 */
static void
tf_scalar(void *state, char *token, JsonTokenType tokentype)
{
	TokenFields *tf = (TokenFields *) state;
	const char *f = tf->field;

	if (tf->depth == 1 && f && tokentype != JSON_TOKEN_NULL)
	{
		char	  **slot = NULL;

		if (strcmp(f, "access_token") == 0)
			slot = &tf->access_token;
		else if (strcmp(f, "token_type") == 0)
			slot = &tf->token_type;
		else if (strcmp(f, "expires_in") == 0)
			slot = &tf->expires_in;
		else if (strcmp(f, "expires_on") == 0)
			slot = &tf->expires_on;
		else if (strcmp(f, "refresh_in") == 0)
			slot = &tf->refresh_in;
		else if (strcmp(f, "error") == 0)
			slot = &tf->error;
		else if (strcmp(f, "error_description") == 0)
			slot = &tf->error_description;
		else if (strcmp(f, "trace_id") == 0)
			slot = &tf->trace_id;
		else if (strcmp(f, "correlation_id") == 0)
			slot = &tf->correlation_id;
		if (slot)
		{
			tf_keep(slot, token);
			return;
		}
	}
	if (tf->depth == 2 && tf->in_codes && tf->error_code == NULL &&
		tokentype == JSON_TOKEN_NUMBER)
	{
		tf->error_code = token;
		return;
	}
	wipe_free(&token);
}

static void
tf_wipe(TokenFields *tf)
{
	wipe_free(&tf->field);
	wipe_free(&tf->access_token);
	wipe_free(&tf->token_type);
	wipe_free(&tf->expires_in);
	wipe_free(&tf->expires_on);
	wipe_free(&tf->refresh_in);
	wipe_free(&tf->error);
	wipe_free(&tf->error_description);
	wipe_free(&tf->error_code);
	wipe_free(&tf->trace_id);
	wipe_free(&tf->correlation_id);
}

/*
 * Parse a token endpoint's answer into tf.  The lexer's de-escaping
 * buffer is sized to the whole body first, so it is never reallocated
 * (which would leave pieces of the token in freed memory), and is zeroed
 * afterwards.
 */
static bool
parse_token_body(const AsrHttpResponse *resp, TokenFields *tf)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	JsonParseErrorType rc;

	memset(tf, 0, sizeof(TokenFields));
	if (resp->body == NULL || resp->body_len == 0)
		return false;

	lex = makeJsonLexContextCstringLen(resp->body, (int) resp->body_len,
									  GetDatabaseEncoding(), true);
	enlargeStringInfo(lex->strval, (int) resp->body_len + 1);

	memset(&sem, 0, sizeof(sem));
	sem.semstate = tf;
	sem.object_start = tf_struct_start;
	sem.object_end = tf_struct_end;
	sem.array_start = tf_struct_start;
	sem.array_end = tf_struct_end;
	sem.object_field_start = tf_field;
	sem.scalar = tf_scalar;
	rc = pg_parse_json(lex, &sem);

	explicit_bzero(lex->strval->data, lex->strval->maxlen);
	pfree(lex->strval->data);
	pfree(lex->strval);
	pfree(lex);

	if (rc != JSON_SUCCESS)
	{
		tf_wipe(tf);
		return false;
	}
	return true;
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
 * What to do about a well-known Entra or IMDS error, for the DBA.
 */
static const char *
advice(const AsrCredential *c, long status, const char *code,
	   const char *oauth_error)
{
	static const char *const bad_resource =
		"Microsoft Entra ID does not know the resource asked for: check cloud and arm_scope of the server.";

	/* a cloud's scope sent to another cloud's login or IMDS */
	if ((code && (strcmp(code, "AADSTS500011") == 0 ||
				  strcmp(code, "AADSTS1002012") == 0)) ||
		(oauth_error && (strcmp(oauth_error, "invalid_resource") == 0 ||
						 strcmp(oauth_error, "invalid_scope") == 0)))
		return bad_resource;
	if (c->auth == ASR_AUTH_MANAGED_IDENTITY)
	{
		if (status == 400)
			return "Assign a managed identity to this virtual machine, or correct the client_id of the user mapping to name one of its user-assigned identities.";
		if (status == 404 || status == 410)
			return "The instance metadata service is being updated; asr tries again.";
		if (status == 429)
			return "The instance metadata service is throttling requests; asr tries again.";
		if (status >= 500)
			return "The instance metadata service failed; asr tries again.";
		return NULL;
	}
	if (code == NULL)
		return status >= 500 || status == 429 ?
			"Microsoft Entra ID is unavailable or throttling; asr tries again." : NULL;
	if (strcmp(code, "AADSTS7000215") == 0)
		return "Check client_secret (or client_secret_file) of the user mapping: it must be the secret's value, not its ID.";
	if (strcmp(code, "AADSTS7000222") == 0)
		return "The client secret has expired: create a new one for the app registration and ALTER USER MAPPING with it.";
	if (strcmp(code, "AADSTS700027") == 0)
		return "Upload this certificate to the app registration (Certificates & secrets), or check jwt_algorithm: some tenants accept only RS256.";
	if (strcmp(code, "AADSTS700024") == 0)
		return "The client assertion is outside its time window: check the server's clock.";
	if (strcmp(code, "AADSTS700016") == 0)
		return "No application with this client_id exists in the tenant: check client_id of the user mapping and tenant_id of the server.";
	if (strcmp(code, "AADSTS90002") == 0)
		return "The tenant does not exist: check tenant_id and cloud of the server.";
	if (strcmp(code, "AADSTS70011") == 0)
		return "The scope is not valid: check arm_scope and cloud of the server.";
	return NULL;
}

/*
 * A number of seconds from a token response, bounded: the fields are text
 * from the network, and an absurd value must not overflow the timestamp
 * arithmetic (a week is far longer than any token lives; 2100-01-01 is
 * later than any expires_on).
 */
#define ASR_AUTH_MAX_LIFETIME_S		(7 * 24 * 3600)
#define ASR_AUTH_MAX_EXPIRES_ON		INT64CONST(4102444800)

static int64
seconds_in(const char *s, int64 lo, int64 hi)
{
	long long	v = strtoll(s, NULL, 10);

	return Max(lo, Min((int64) v, hi));
}

/*
 * Consume the answer to the last request.
 */
void
asr_auth_handle_response(AsrTokenState *st, const AsrHttpResponse *resp,
						 TimestampTz now)
{
	AsrCredential *c = st->cred;
	bool		imds = (c->auth == ASR_AUTH_MANAGED_IDENTITY);
	const char *who = imds ? "the managed identity endpoint" : "Microsoft Entra ID";
	char	   *host = host_of(c->token_url);
	TokenFields tf;
	bool		parsed;
	long		retry_after = 0;
	const char *ra;

	if (!st->in_flight)
		return;					/* the credential changed meanwhile */
	st->in_flight = false;

	ra = asr_http_header(resp, "retry-after");
	if (ra)
		retry_after = strtol(ra, NULL, 10);

	if (resp->status == 0)
	{
		set_error(st, imds ? "imds_unavailable" : "login_unreachable",
				  "could not obtain a token for server \"%s\": %s (%s) did not answer: %s",
				  c->server_name, who, host,
				  resp->transport_error ? resp->transport_error :
				  (resp->timed_out ? "timed out" : "no response"));
		fail(st, now, 0);
		return;
	}

	parsed = parse_token_body(resp, &tf);

	if (resp->status == 200 && parsed && tf.access_token &&
		tf.access_token[0] != '\0')
	{
		TimestampTz expires = 0;
		TimestampTz lifetime;
		TimestampTz margin;

		if (tf.expires_on)
			expires = time_t_to_timestamptz((pg_time_t) seconds_in(tf.expires_on, 0,
																   ASR_AUTH_MAX_EXPIRES_ON));
		else if (tf.expires_in)
			expires = st->sent_at +
				seconds_in(tf.expires_in, 0, ASR_AUTH_MAX_LIFETIME_S) * USECS_PER_SEC;

		if (tf.token_type && pg_strcasecmp(tf.token_type, "Bearer") != 0)
		{
			set_error(st, "unexpected_token_type",
					  "could not obtain a token for server \"%s\": %s (%s) issued a token of type \"%.40s\", not Bearer",
					  c->server_name, who, host, tf.token_type);
			tf_wipe(&tf);
			fail(st, now, 0);
			return;
		}
		if (expires <= now)
		{
			set_error(st, "token_expired_on_arrival",
					  "could not obtain a token for server \"%s\": the token from %s (%s) has no expiry or has already expired",
					  c->server_name, who, host);
			tf_wipe(&tf);
			fail(st, now, 0);
			return;
		}

		wipe_free(&st->token);
		st->token = MemoryContextStrdup(st->cxt, tf.access_token);
		st->expires_at = expires;
		lifetime = expires - st->sent_at;
		margin = Min((TimestampTz) ASR_AUTH_REFRESH_MARGIN_S * USECS_PER_SEC,
					 lifetime / 2);
		st->refresh_at = expires - margin;
		if (tf.refresh_in)
		{
			long		r = (long) seconds_in(tf.refresh_in, 0, ASR_AUTH_MAX_LIFETIME_S);

			if (r > 0)
				st->refresh_at = Min(st->refresh_at,
									 st->sent_at + (TimestampTz) r * USECS_PER_SEC);
		}
		st->generation++;
		st->failures = 0;
		st->next_attempt = 0;
		if (st->last_error)
			pfree(st->last_error);
		if (st->last_error_code)
			pfree(st->last_error_code);
		st->last_error = st->last_error_code = NULL;
		tf_wipe(&tf);
		return;
	}

	if (!parsed)
		set_error(st, psprintf("http_%ld", resp->status),
				  "could not obtain a token for server \"%s\": %s (%s) answered HTTP %ld with a body that is not JSON",
				  c->server_name, who, host, resp->status);
	else
	{
		char	   *code = NULL;
		StringInfoData msg;
		const char *desc = tf.error_description;
		const char *hint;

		if (tf.error_code)
			code = psprintf("AADSTS%s", tf.error_code);
		initStringInfo(&msg);
		appendStringInfo(&msg, "%s (%s) refused the token request for server \"%s\" (HTTP %ld",
						 who, host, c->server_name, resp->status);
		if (tf.error)
			appendStringInfo(&msg, " %s", tf.error);
		appendStringInfoString(&msg, ")");
		if (resp->status == 200)
			appendStringInfoString(&msg, ": the answer holds no access_token");
		if (desc)
		{
			/* the first line: the rest is trace and correlation ids */
			size_t		n = strcspn(desc, "\r\n");

			appendStringInfoString(&msg, ": ");
			if (code && strncmp(desc, "AADSTS", 6) != 0)
				appendStringInfo(&msg, "%s: ", code);
			appendBinaryStringInfo(&msg, desc, (int) n);
		}
		else if (code)
			appendStringInfo(&msg, ": %s", code);
		if (tf.trace_id || tf.correlation_id)
			appendStringInfo(&msg, " (trace ID %.64s, correlation ID %.64s)",
							 tf.trace_id ? tf.trace_id : "none",
							 tf.correlation_id ? tf.correlation_id : "none");
		hint = advice(c, resp->status, code, tf.error);
		if (hint)
			appendStringInfo(&msg, ". %s", hint);
		set_error(st, code ? code : (tf.error ? tf.error :
									 psprintf("http_%ld", resp->status)),
				  "%s", msg.data);
		pfree(msg.data);
	}
	tf_wipe(&tf);
	/* a refused assertion is not offered again */
	wipe_free(&st->assertion);
	fail(st, now, retry_after);
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
 * A failed attempt: the next one waits 30 s, doubling up to 5 min, or as
 * long as Retry-After asks (at most an hour).  A token that is still
 * valid stays usable.
 */
static void
fail(AsrTokenState *st, TimestampTz now, long retry_after_s)
{
	long		delay = ASR_AUTH_RETRY_MIN_S;
	int			i;

	for (i = 0; i < st->failures && delay < ASR_AUTH_RETRY_MAX_S; i++)
		delay *= 2;
	delay = Min(delay, ASR_AUTH_RETRY_MAX_S);
	if (retry_after_s > delay)
		delay = Min(retry_after_s, 3600);
	st->failures++;
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
	wipe_free(&st->assertion);

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

const char *
asr_auth_client_assertion(AsrTokenState *st, TimestampTz now)
{
	if (st->cred->auth != ASR_AUTH_CERTIFICATE)
		return NULL;
	return build_assertion(st, now) ? st->assertion : NULL;
}

/* ---- small helpers ---- */

/* zero a NUL-terminated palloc'd string, free it, and clear the pointer */
static void
wipe_free(char **p)
{
	if (*p)
	{
		explicit_bzero(*p, strlen(*p));
		pfree(*p);
		*p = NULL;
	}
}

/*
 * Concatenate n strings into one allocation of exactly the right size in
 * cxt: secrets pass through here, and a growing buffer would leave copies
 * of them in freed memory.
 */
static char *
concat_n(MemoryContext cxt, int n,...)
{
	va_list		args;
	size_t		total = 0;
	char	   *out;
	char	   *p;
	int			i;

	va_start(args, n);
	for (i = 0; i < n; i++)
	{
		const char *s = va_arg(args, const char *);

		total += s ? strlen(s) : 0;
	}
	va_end(args);

	out = MemoryContextAlloc(cxt, total + 1);
	p = out;
	va_start(args, n);
	for (i = 0; i < n; i++)
	{
		const char *s = va_arg(args, const char *);
		size_t		len = s ? strlen(s) : 0;

		memcpy(p, s ? s : "", len);
		p += len;
	}
	va_end(args);
	*p = '\0';
	return out;
}

/*
 * The host[:port] of a URL for messages: enough for a DBA to know which
 * endpoint failed, never a query string.
 */
static char *
host_of(const char *url)
{
	const char *p = strstr(url, "://");
	size_t		n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	return pnstrdup(p, n);
}
