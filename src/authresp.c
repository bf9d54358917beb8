/*-------------------------------------------------------------------------
 *
 * authresp.c
 *	  Reading token answers: Microsoft Entra ID's token endpoint (OAuth 2.0
 *	  client credentials, AADSTS errors) and the instance metadata service
 *	  (managed identity).
 *
 * An answer becomes either a Bearer token with its expiry, or a message a
 * DBA can act on: who refused (Entra or IMDS, and its host), the HTTP
 * status and OAuth error, the first line of Entra's description with its
 * AADSTS code, trace and correlation ids for a support case, and advice
 * for the well-known codes -- and whether the failure is transient (an
 * outage or throttling: ask again soon) or needs the DBA.  Numbers are bounded before any timestamp
 * arithmetic: the body is text from the network.
 *
 * JSON is read with PostgreSQL's own JSON parser (common/jsonapi.h, the
 * one under jsonb), which reports malformed input as a return code
 * instead of an ERROR.  Every scalar not kept is zeroed at once, and the
 * lexer's buffer is sized once and zeroed, so no piece of a token
 * survives in freed memory.
 *
 * Arrows: called by auth.c (asr_auth_handle_response), which keeps the
 * cache and the policy and redacts the messages; calls the JSON parser
 * and asr_http_header (http.c).  No state, no SQL, no network.
 *
 * IDENTIFICATION
 *	  src/authresp.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/timestamp.h"

#include "authresp.h"

/*
 * A number of seconds from a token response, bounded: the fields are text
 * from the network, and an absurd value must not overflow the timestamp
 * arithmetic (a week is far longer than any token lives; 2100-01-01 is
 * later than any expires_on).
 */
#define ASR_AUTH_MAX_LIFETIME_S		(7 * 24 * 3600)
#define ASR_AUTH_MAX_EXPIRES_ON		INT64CONST(4102444800)

/*
 * The fields of a token answer we use, as the JSON parser hands them over
 * (each palloc'd, each zeroed by tf_wipe), and where the parser is.
 */
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

static char *host_of(const char *url);
static bool transient_failure(const AsrCredential *c, long status,
							  const char *oauth_error);

/*
 * Parser callbacks: objects and arrays only move the depth, since the
 * fields we keep are at the top level and the AADSTS code is the first
 * element of the top-level "error_codes" array.
 */
static void
tf_struct_start(void *state)
{
	((TokenFields *) state)->depth++;
}

/* leaving "error_codes" (or any nested value) at the top level */
static void
tf_struct_end(void *state)
{
	TokenFields *tf = (TokenFields *) state;

	tf->depth--;
	if (tf->depth == 1)
		tf->in_codes = false;
}

/* remember the current top-level field name, for tf_scalar */
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

/* a field that appears twice: the last wins, the first is zeroed */
static void
tf_keep(char **slot, char *token)
{
	if (*slot)
		asr_wipe_free(slot);
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
	asr_wipe_free(&token);
}

/* zero and free every field kept, on every path out of a parse */
static void
tf_wipe(TokenFields *tf)
{
	asr_wipe_free(&tf->field);
	asr_wipe_free(&tf->access_token);
	asr_wipe_free(&tf->token_type);
	asr_wipe_free(&tf->expires_in);
	asr_wipe_free(&tf->expires_on);
	asr_wipe_free(&tf->refresh_in);
	asr_wipe_free(&tf->error);
	asr_wipe_free(&tf->error_description);
	asr_wipe_free(&tf->error_code);
	asr_wipe_free(&tf->trace_id);
	asr_wipe_free(&tf->correlation_id);
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
 * A number of seconds from a token response, bounded to [lo, hi] (see
 * ASR_AUTH_MAX_LIFETIME_S): garbage reads as 0, never as an overflow.
 */
static int64
seconds_in(const char *s, int64 lo, int64 hi)
{
	long long	v = strtoll(s, NULL, 10);

	return Max(lo, Min((int64) v, hi));
}

/*
 * Read the answer to a token request.  The decision whether a token is
 * usable lives here with the parsing, so that auth.c only has to store a
 * token or record an error; the order of the checks (type, then expiry)
 * decides which error a DBA sees when both are wrong.
 */
void
asr_token_answer_read(const AsrCredential *c, const AsrHttpResponse *resp,
					  TimestampTz sent_at, TimestampTz now,
					  AsrTokenAnswer *answer)
{
	bool		imds = (c->auth == ASR_AUTH_MANAGED_IDENTITY);
	const char *who = imds ? "the managed identity endpoint" : "Microsoft Entra ID";
	char	   *host = host_of(c->token_url);
	TokenFields tf;
	bool		parsed;
	const char *ra;

	memset(answer, 0, sizeof(AsrTokenAnswer));
	ra = asr_http_header(resp, "retry-after");
	if (ra)
		answer->retry_after_s = strtol(ra, NULL, 10);

	if (resp->status == 0)
	{
		answer->outcome = ASR_TOKEN_UNANSWERED;
		answer->transient = true;
		answer->error_code = pstrdup(imds ? "imds_unavailable" : "login_unreachable");
		answer->error = psprintf("could not obtain a token for server \"%s\": %s (%s) did not answer: %s",
								 c->server_name, who, host,
								 resp->transport_error ? resp->transport_error :
								 (resp->timed_out ? "timed out" : "no response"));
		return;
	}

	parsed = parse_token_body(resp, &tf);

	if (resp->status == 200 && parsed && tf.access_token &&
		tf.access_token[0] != '\0')
	{
		TimestampTz expires = 0;

		if (tf.expires_on)
			expires = time_t_to_timestamptz((pg_time_t) seconds_in(tf.expires_on, 0,
																   ASR_AUTH_MAX_EXPIRES_ON));
		else if (tf.expires_in)
			expires = sent_at +
				seconds_in(tf.expires_in, 0, ASR_AUTH_MAX_LIFETIME_S) * USECS_PER_SEC;

		if (tf.token_type && pg_strcasecmp(tf.token_type, "Bearer") != 0)
		{
			answer->outcome = ASR_TOKEN_UNUSABLE;
			answer->error_code = pstrdup("unexpected_token_type");
			answer->error = psprintf("could not obtain a token for server \"%s\": %s (%s) issued a token of type \"%.40s\", not Bearer",
									 c->server_name, who, host, tf.token_type);
		}
		else if (expires <= now)
		{
			answer->outcome = ASR_TOKEN_UNUSABLE;
			answer->error_code = pstrdup("token_expired_on_arrival");
			answer->error = psprintf("could not obtain a token for server \"%s\": the token from %s (%s) has no expiry or has already expired",
									 c->server_name, who, host);
		}
		else
		{
			answer->outcome = ASR_TOKEN_ISSUED;
			answer->access_token = tf.access_token;
			tf.access_token = NULL;
			answer->expires_at = expires;
			if (tf.refresh_in)
				answer->refresh_in_s = seconds_in(tf.refresh_in, 0,
												  ASR_AUTH_MAX_LIFETIME_S);
		}
		tf_wipe(&tf);
		return;
	}

	answer->outcome = ASR_TOKEN_REFUSED;
	answer->transient = transient_failure(c, resp->status,
										  parsed ? tf.error : NULL);
	if (!parsed)
	{
		answer->error_code = psprintf("http_%ld", resp->status);
		answer->error = psprintf("could not obtain a token for server \"%s\": %s (%s) answered HTTP %ld with a body that is not JSON",
								 c->server_name, who, host, resp->status);
	}
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
		answer->error_code = code ? code : (tf.error ? pstrdup(tf.error) :
											psprintf("http_%ld", resp->status));
		answer->error = msg.data;
	}
	tf_wipe(&tf);
}

/*
 * Whether a refusal is worth asking again soon (arm-client.md §3, §4.5):
 * what MSAL and azure-identity retry by themselves.  For Entra ID that is
 * 408, 429 and the 5xx codes of the SDK's retry policy (not 501 or 505,
 * which no retry changes); for IMDS also 404 and 410 (it is being
 * updated) and every 5xx, as its own retry policy has it; for both, an
 * answer whose OAuth error says the failure is temporary
 * (temporarily_unavailable, server_error), whatever its status.  Anything
 * else -- invalid_client, a wrong or expired secret, an unknown tenant or
 * application, a refused assertion, no identity on the VM -- needs the
 * DBA, and asking again soon would only hammer the endpoint.
 */
static bool
transient_failure(const AsrCredential *c, long status, const char *oauth_error)
{
	if (status >= 400 && oauth_error &&
		(strcmp(oauth_error, "temporarily_unavailable") == 0 ||
		 strcmp(oauth_error, "server_error") == 0))
		return true;
	if (status == 408 || status == 429)
		return true;
	if (c->auth == ASR_AUTH_MANAGED_IDENTITY)
		return status == 404 || status == 410 || (status >= 500 && status <= 599);
	return status >= 500 && status <= 599 && status != 501 && status != 505;
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

/*
 * Every buffer that held a token or a secret goes through here, in this
 * file and in auth.c, so that none is freed with its content.
 */
void
asr_wipe_free(char **p)
{
	if (*p)
	{
		explicit_bzero(*p, strlen(*p));
		pfree(*p);
		*p = NULL;
	}
}
