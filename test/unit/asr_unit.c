/*-------------------------------------------------------------------------
 *
 * asr_unit.c
 *	  Unit tests of the token code (src/auth.c, src/authresp.c) and the
 *	  credential lookup (src/credlookup.c, src/fdw.c), run inside a
 *	  throwaway PostgreSQL instance.
 *
 * That code needs a backend (palloc, PostgreSQL's JSON parser,
 * catalogs), so this test module is built from the same source files and
 * loaded into a private instance by test/unit/run-tests; asr itself is not
 * loaded there.  asr_unit_run() runs the token-state scenarios and returns
 * one row per check; asr_unit_assertion() returns a freshly built client
 * assertion for an independent verifier (test/unit/verify.py); and
 * asr_unit_lookup() resolves a server like the worker does and returns
 * the non-secret fields.  Everything here is test-only: the module is
 * never installed, and the secrets it handles are throwaway fixtures.
 *
 * IDENTIFICATION
 *	  test/unit/asr_unit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "auth.h"
#include "fdw.h"
#include "http.h"

#include "asr_unit.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(asr_unit_run);
PG_FUNCTION_INFO_V1(asr_unit_assertion);
PG_FUNCTION_INFO_V1(asr_unit_lookup);

static Tuplestorestate *results;
static TupleDesc results_desc;
static int	next_server = 1000;

/* http.c is not linked in: the one helper authresp.c uses */
const char *
asr_http_header(const AsrHttpResponse *resp, const char *name)
{
	ListCell   *lc;

	foreach(lc, resp->headers)
	{
		AsrHttpHeader *h = (AsrHttpHeader *) lfirst(lc);

		if (pg_strcasecmp(h->name, name) == 0)
			return h->value;
	}
	return NULL;
}

void
check(const char *name, bool ok, const char *detail)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(name);
	values[1] = BoolGetDatum(ok);
	if (detail)
		values[2] = CStringGetTextDatum(detail);
	else
		nulls[2] = true;
	tuplestore_putvalues(results, results_desc, values, nulls);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = AllocateFile(path, PG_BINARY_R);
	StringInfoData buf;
	char		chunk[4096];
	size_t		n;

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open \"%s\": %m", path)));
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		appendBinaryStringInfo(&buf, chunk, n);
	FreeFile(f);
	*len = buf.len;
	return buf.data;
}

/* a credential as fdw.c would return it, with a fresh identity */
AsrCredential *
make_cred(AsrAuthMode auth)
{
	AsrCredential *c = palloc0(sizeof(AsrCredential));

	c->server_name = "unit";
	c->server_id = next_server++;
	c->mapping_user = InvalidOid;
	c->tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
	c->cloud = "AzureCloud";
	c->arm_endpoint = "https://management.azure.com";
	c->login_endpoint = "https://login.microsoftonline.com";
	c->imds_endpoint = "http://169.254.169.254";
	c->scope = "https://management.azure.com/.default";
	c->imds_resource = "https://management.azure.com/";
	c->auth = auth;
	c->client_id = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
	if (auth == ASR_AUTH_MANAGED_IDENTITY)
		c->token_url = "http://169.254.169.254/metadata/identity/oauth2/token";
	else
		c->token_url = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token";
	snprintf(c->fingerprint, sizeof(c->fingerprint), "unit-%d", c->server_id);
	return c;
}

AsrHttpResponse *
make_resp(long status, const char *body, const char *retry_after)
{
	AsrHttpResponse *r = palloc0(sizeof(AsrHttpResponse));

	r->status = status;
	r->body = pstrdup(body ? body : "");
	r->body_len = strlen(r->body);
	if (retry_after)
	{
		AsrHttpHeader *h = palloc(sizeof(AsrHttpHeader));

		h->name = "retry-after";
		h->value = pstrdup(retry_after);
		r->headers = list_make1(h);
	}
	return r;
}

bool
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static bool
has_header(const AsrHttpRequest *req, const char *header)
{
	ListCell   *lc;

	foreach(lc, req->headers)
		if (strcmp((const char *) lfirst(lc), header) == 0)
			return true;
	return false;
}

#define SECRET "unit-Secret&=+ %~value"
#define TOKEN_A "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.unit-token-a.sig"
#define TOKEN_B "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.unit-token-b.sig"

/*
 * The cloud table of arm-client.md §4.1.
 */
static void
test_clouds(void)
{
	const AsrCloud *c;

	c = asr_cloud_lookup("AzureCloud");
	check("cloud AzureCloud", c &&
		  strcmp(c->login_endpoint, "https://login.microsoftonline.com") == 0 &&
		  strcmp(c->arm_endpoint, "https://management.azure.com") == 0 &&
		  strcmp(c->scope, "https://management.azure.com/.default") == 0 &&
		  strcmp(c->imds_resource, "https://management.azure.com/") == 0, NULL);
	c = asr_cloud_lookup("azureusgovernment");
	check("cloud AzureUSGovernment (any case)", c &&
		  strcmp(c->name, "AzureUSGovernment") == 0 &&
		  strcmp(c->login_endpoint, "https://login.microsoftonline.us") == 0 &&
		  strcmp(c->arm_endpoint, "https://management.usgovcloudapi.net") == 0 &&
		  strcmp(c->scope, "https://management.core.usgovcloudapi.net/.default") == 0, NULL);
	c = asr_cloud_lookup("AzureChinaCloud");
	check("cloud AzureChinaCloud", c &&
		  strcmp(c->login_endpoint, "https://login.chinacloudapi.cn") == 0 &&
		  strcmp(c->arm_endpoint, "https://management.chinacloudapi.cn") == 0 &&
		  strcmp(c->scope, "https://management.chinacloudapi.cn/.default") == 0, NULL);
	check("cloud AzureGermanCloud is unknown", asr_cloud_lookup("AzureGermanCloud") == NULL, NULL);
}

/*
 * Client secret: the request, a token, the refresh policy, failures.
 */
static void
test_client_secret(void)
{
	AsrCredential *cred = make_cred(ASR_AUTH_CLIENT_SECRET);
	AsrTokenState *st;
	AsrHttpRequest *req;
	MemoryContext cxt;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz t0 = now;
	char	   *body_copy;
	const char *body_ptr;
	size_t		body_len;
	size_t		i;
	bool		zeroed = true;
	const char *err;

	cred->client_secret = pstrdup(SECRET);
	st = asr_auth_for(cred);
	check("secret: a new state has no token", !asr_auth_token_usable(st, now) &&
		  asr_auth_bearer(st) == NULL && asr_auth_last_error(st) == NULL, NULL);
	check("secret: a new state needs a token", asr_auth_needs_refresh(st, now), NULL);
	check("secret: asr_auth_for returns the same state for the same credential",
		  asr_auth_for(cred) == st, NULL);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request",
								8192, 8192, 8192);
	req = asr_auth_build_request(st, now, cxt);
	check("secret: request built", req != NULL, asr_auth_last_error(st));
	if (req == NULL)
		return;
	body_copy = pnstrdup(req->body, req->body_len);
	check("secret: POST to the exact token URL",
		  strcmp(req->method, "POST") == 0 && strcmp(req->url, cred->token_url) == 0, req->url);
	check("secret: form body, secret URL-encoded",
		  strcmp(body_copy,
				 "grant_type=client_credentials&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46"
				 "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
				 "&client_secret=unit-Secret%26%3D%2B%20%25~value") == 0, NULL);
	check("secret: form headers",
		  has_header(req, "Content-Type: application/x-www-form-urlencoded") &&
		  has_header(req, "Accept: application/json"), NULL);
	check("secret: request is sensitive, https only",
		  req->sensitive && !req->allow_plain_http && !req->no_proxy, NULL);
	check("secret: no second request while one is in flight",
		  !asr_auth_needs_refresh(st, now), NULL);

	/* the body is zeroed when the caller's context goes */
	body_ptr = req->body;
	body_len = req->body_len;
	MemoryContextReset(cxt);
	for (i = 0; i < body_len; i++)
		if (body_ptr[i] != '\0')
			zeroed = false;
	check("secret: request body zeroed when its context is reset", zeroed, NULL);
	explicit_bzero(body_copy, strlen(body_copy));

	/* a token arrives */
	asr_auth_handle_response(st,
							 make_resp(200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
									   "\"access_token\":\"" TOKEN_A "\",\"refresh_token\":\"rt-secret\"}", NULL),
							 now);
	check("secret: token usable", asr_auth_token_usable(st, now) &&
		  asr_auth_bearer(st) && strcmp(asr_auth_bearer(st), TOKEN_A) == 0,
		  asr_auth_last_error(st));
	check("secret: expiry = request time + expires_in",
		  asr_auth_expires_at(st) == t0 + SEC(3599), NULL);
	check("secret: no refresh until 5 minutes before expiry",
		  !asr_auth_needs_refresh(st, now + SEC(3599 - 301)), NULL);
	check("secret: refresh 5 minutes before expiry",
		  asr_auth_needs_refresh(st, now + SEC(3599 - 300)), NULL);

	/* the refresh fails: the old token stays usable, the next try waits */
	now += SEC(3599 - 290);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st,
							 make_resp(401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided. "
									   "Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '04b07795-8ddb-461a-bbee-02f9e1bf7b46'.\\r\\n"
									   "Trace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\\r\\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\","
									   "\"error_codes\":[7000215],\"timestamp\":\"2026-11-26 08:00:00Z\",\"trace_id\":\"0000aaaa-11bb-cccc-dd22-eeeeee333333\","
									   "\"correlation_id\":\"aaaa0000-bb11-2222-33cc-444444dddddd\"}", NULL),
							 now);
	MemoryContextDelete(cxt);
	err = asr_auth_last_error(st);
	check("secret: failed refresh reported with the AADSTS code",
		  contains(err, "AADSTS7000215: Invalid client secret provided") &&
		  contains(err, "HTTP 401 invalid_client") &&
		  contains(err, "server \"unit\"") &&
		  contains(err, "trace ID 0000aaaa-11bb-cccc-dd22-eeeeee333333") &&
		  contains(err, "not its ID"), err);
	check("secret: error code is the AADSTS code",
		  asr_auth_last_error_code(st) && strcmp(asr_auth_last_error_code(st), "AADSTS7000215") == 0,
		  asr_auth_last_error_code(st));
	check("secret: error text holds no secret", !contains(err, "unit-Secret") && !contains(err, TOKEN_A), NULL);
	check("secret: still-valid token kept after a failed refresh",
		  asr_auth_token_usable(st, now) && strcmp(asr_auth_bearer(st), TOKEN_A) == 0, NULL);
	check("secret: next attempt waits 30 s",
		  !asr_auth_needs_refresh(st, now + SEC(29)) &&
		  asr_auth_needs_refresh(st, now + SEC(30)) &&
		  asr_auth_next_attempt(st) == now + SEC(30), NULL);

	/* an outage while the token stays valid: transient, but no hurry */
	now += SEC(30);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st, make_resp(503, "<html>Service Unavailable</html>", NULL), now);
	MemoryContextDelete(cxt);
	err = asr_auth_last_error(st);
	check("secret: non-JSON answer reported without its body",
		  contains(err, "HTTP 503") && contains(err, "not JSON") && !contains(err, "html"), err);
	check("secret: a 503 while the token stays valid is transient and waits 30 s",
		  asr_auth_failure_transient(st) && asr_auth_next_attempt(st) == now + SEC(30), NULL);

	/* Retry-After longer than the back-off wins */
	now += SEC(60);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st, make_resp(429, "{\"error\":\"temporarily_unavailable\"}", "240"), now);
	MemoryContextDelete(cxt);
	check("secret: Retry-After honoured", asr_auth_next_attempt(st) == now + SEC(240),
		  asr_auth_last_error(st));

	/* the token expires meanwhile: not usable any more */
	check("secret: an expired token is not used",
		  !asr_auth_token_usable(st, t0 + SEC(3599 - ASR_AUTH_EXPIRY_SKEW_S)), NULL);

	/* success again: errors cleared, back-off reset, generation moves */
	now += SEC(240);
	{
		uint64		gen = asr_auth_generation(st);

		cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
		req = asr_auth_build_request(st, now, cxt);
		asr_auth_handle_response(st,
								 make_resp(200, "{\"token_type\":\"Bearer\",\"expires_in\":\"3599\",\"access_token\":\"" TOKEN_B "\"}", NULL),
								 now);
		MemoryContextDelete(cxt);
		check("secret: new token replaces the old, error cleared",
			  strcmp(asr_auth_bearer(st), TOKEN_B) == 0 && asr_auth_last_error(st) == NULL &&
			  asr_auth_generation(st) == gen + 1 && asr_auth_next_attempt(st) == 0, NULL);

		/* a 401 with an older generation keeps the new token */
		asr_auth_invalidate(st, gen);
		check("secret: 401 on an older token keeps the newer one",
			  asr_auth_token_usable(st, now), NULL);
		check("secret: 401 allows one resend", asr_auth_invalidate(st, gen + 1), NULL);
		check("secret: 401 on the current token drops it",
			  !asr_auth_token_usable(st, now) && asr_auth_bearer(st) == NULL, NULL);
		check("secret: after a 401 a new token is fetched at once",
			  asr_auth_needs_refresh(st, now), NULL);
	}

	/* an endpoint that echoes the secret does not make us print it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st,
							 make_resp(400, "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS900144: bad client_secret " SECRET " received\",\"error_codes\":[900144]}", NULL),
							 now);
	MemoryContextDelete(cxt);
	err = asr_auth_last_error(st);
	check("secret: an echoed secret is redacted",
		  contains(err, "[redacted]") && !contains(err, "unit-Secret"), err);

	/* a transport failure */
	now += SEC(30);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	{
		AsrHttpResponse *r = make_resp(0, NULL, NULL);

		r->transport_error = "Could not resolve host: login.microsoftonline.com";
		asr_auth_handle_response(st, r, now);
	}
	MemoryContextDelete(cxt);
	err = asr_auth_last_error(st);
	check("secret: transport failure reported",
		  contains(err, "did not answer: Could not resolve host") &&
		  contains(err, "login.microsoftonline.com") &&
		  strcmp(asr_auth_last_error_code(st), "login_unreachable") == 0, err);

	/* an answer with no request in flight is ignored */
	asr_auth_handle_response(st,
							 make_resp(200, "{\"expires_in\":3599,\"access_token\":\"stray\"}", NULL), now);
	check("secret: a stray answer is ignored", asr_auth_bearer(st) == NULL, NULL);

	/* the DBA rotates the secret: same state, token and error gone */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	now += SEC(600);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st,
							 make_resp(200, "{\"expires_in\":3599,\"access_token\":\"" TOKEN_A "\"}", NULL), now);
	MemoryContextDelete(cxt);
	cred->client_secret = pstrdup("unit-rotated");
	strlcpy(cred->fingerprint, "unit-rotated", sizeof(cred->fingerprint));
	check("secret: a changed credential resets the same state",
		  asr_auth_for(cred) == st && asr_auth_bearer(st) == NULL &&
		  asr_auth_needs_refresh(st, now), NULL);

	/* a short-lived token is refreshed at half its life */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st,
							 make_resp(200, "{\"expires_in\":120,\"access_token\":\"" TOKEN_A "\"}", NULL), now);
	MemoryContextDelete(cxt);
	check("secret: a 2-minute token is refreshed after 1 minute",
		  !asr_auth_needs_refresh(st, now + SEC(59)) && asr_auth_needs_refresh(st, now + SEC(60)) &&
		  asr_auth_token_usable(st, now + SEC(110)), NULL);

	/* 200 without a token, and a token of another type */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	now += SEC(60);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st, make_resp(200, "{\"expires_in\":120}", NULL), now);
	MemoryContextDelete(cxt);
	check("secret: 200 without access_token is a failure",
		  contains(asr_auth_last_error(st), "no access_token"), asr_auth_last_error(st));
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	now += SEC(60);
	req = asr_auth_build_request(st, now, cxt);
	asr_auth_handle_response(st, make_resp(200, "{\"token_type\":\"pop\",\"expires_in\":120,\"access_token\":\"x\"}", NULL), now);
	MemoryContextDelete(cxt);
	check("secret: a non-Bearer token is refused",
		  contains(asr_auth_last_error(st), "not Bearer"), asr_auth_last_error(st));
}

/*
 * Managed identity through IMDS.
 */
static void
test_managed_identity(void)
{
	AsrCredential *cred = make_cred(ASR_AUTH_MANAGED_IDENTITY);
	AsrTokenState *st;
	AsrHttpRequest *req;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
	TimestampTz now = GetCurrentTimestamp();
	pg_time_t	exp_on = timestamptz_to_time_t(now) + 86400;
	static const struct
	{
		long		status;
		const char *body;
		const char *expect;
		bool		transient;	/* tried again within 30 s */
	}			errors[] = {
		{400, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}", "Assign a managed identity", false},
		{404, "{\"error\":\"not_found\",\"error_description\":\"IMDS is updating\"}", "being updated", true},
		{429, "{\"error\":\"too_many_requests\",\"error_description\":\"Too many requests\"}", "throttling", true},
		{500, "{\"error\":\"unknown\",\"error_description\":\"Internal error\"}", "failed; asr tries again", true},
		{400, "{\"error\":\"invalid_resource\",\"error_description\":\"AADSTS500011: The resource principal named "
			"https://management.core.usgovcloudapi.net/ was not found in the tenant.\"}", "check cloud and arm_scope", false},
	};
	int			i;

	st = asr_auth_for(cred);
	req = asr_auth_build_request(st, now, cxt);
	check("imds: GET with api-version, resource and client_id",
		  req && strcmp(req->method, "GET") == 0 &&
		  strcmp(req->url, "http://169.254.169.254/metadata/identity/oauth2/token"
				 "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
				 "&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46") == 0,
		  req ? req->url : asr_auth_last_error(st));
	check("imds: Metadata: true, plain http allowed, never through a proxy",
		  req && has_header(req, "Metadata: true") && req->allow_plain_http &&
		  req->no_proxy && req->body == NULL && req->sensitive, NULL);
	asr_auth_handle_response(st,
							 make_resp(200, psprintf("{\"access_token\":\"" TOKEN_A "\",\"refresh_token\":\"\",\"expires_in\":\"86399\","
													 "\"expires_on\":\"%lld\",\"not_before\":\"0\",\"resource\":\"https://management.azure.com/\","
													 "\"token_type\":\"Bearer\"}", (long long) exp_on), NULL), now);
	check("imds: token with expires_on (a string of epoch seconds)",
		  asr_auth_token_usable(st, now) &&
		  asr_auth_expires_at(st) == time_t_to_timestamptz(exp_on), asr_auth_last_error(st));

	for (i = 0; i < (int) lengthof(errors); i++)
	{
		now += SEC(86400);
		req = asr_auth_build_request(st, now, cxt);
		asr_auth_handle_response(st, make_resp(errors[i].status, errors[i].body, NULL), now);
		check(psprintf("imds: HTTP %ld explained (%s)", errors[i].status, errors[i].expect),
			  contains(asr_auth_last_error(st), errors[i].expect) &&
			  contains(asr_auth_last_error(st), "managed identity endpoint") &&
			  asr_auth_failure_transient(st) == errors[i].transient &&
			  (errors[i].transient ? asr_auth_next_attempt(st) < now + SEC(30) :
			   asr_auth_next_attempt(st) >= now + SEC(30)),
			  asr_auth_last_error(st));
	}

	/* system-assigned: no client_id */
	cred = make_cred(ASR_AUTH_MANAGED_IDENTITY);
	cred->client_id = NULL;
	st = asr_auth_for(cred);
	req = asr_auth_build_request(st, now, cxt);
	check("imds: system-assigned identity sends no client_id",
		  req && !contains(req->url, "client_id"), req ? req->url : NULL);
	MemoryContextDelete(cxt);
}

/*
 * Certificate loading failures, and assertion reuse.
 */
static void
test_certificates(const char *dir)
{
	struct
	{
		const char *file;
		const char *password;
		const char *expect;		/* NULL: loads */
	}			cases[] = {
		{"leaf.pem", NULL, NULL},
		{"leaf.p12", "unit-p12-password", NULL},
		{"leaf.p12", "wrong-password", "Check certificate_password"},
		{"leaf.p12", NULL, "PKCS#12"},
		{"leaf-enc.pem", "unit-pem-password", NULL},
		{"leaf-enc.pem", NULL, "If the key is encrypted, set certificate_password"},
		{"leaf-enc.pem", "wrong-password", "Check certificate_password"},
		{"ec.pem", NULL, "not an RSA key"},
		{"mismatch.pem", NULL, "no certificate matching its private key"},
		{"cert-only.pem", NULL, "holds no private key"},
		{"garbage.bin", NULL, "neither a PEM file nor a PKCS#12 file"},
	};
	int			i;

	for (i = 0; i < (int) lengthof(cases); i++)
	{
		AsrCredential *cred = make_cred(ASR_AUTH_CERTIFICATE);
		AsrTokenState *st;
		const char *a;
		const char *err;

		cred->certificate_file = psprintf("%s/%s", dir, cases[i].file);
		cred->certificate_data = read_file(cred->certificate_file, &cred->certificate_len);
		cred->certificate_password = cases[i].password ? pstrdup(cases[i].password) : NULL;
		st = asr_auth_for(cred);
		a = asr_auth_client_assertion(st, GetCurrentTimestamp());
		err = asr_auth_last_error(st);
		if (cases[i].expect == NULL)
			check(psprintf("certificate: %s loads", cases[i].file), a != NULL, err);
		else
			check(psprintf("certificate: %s %s refused", cases[i].file,
						   cases[i].password ? cases[i].password : "(no password)"),
				  a == NULL && contains(err, cases[i].expect) &&
				  (cases[i].password == NULL || !contains(err, cases[i].password)), err);
	}

	/* reuse until 60 s before exp, then a new one; failures need a new one */
	{
		AsrCredential *cred = make_cred(ASR_AUTH_CERTIFICATE);
		AsrTokenState *st;
		TimestampTz now = GetCurrentTimestamp();
		char	   *a1;
		const char *a2;
		AsrHttpRequest *req;
		MemoryContext cxt;

		cred->certificate_file = psprintf("%s/leaf.pem", dir);
		cred->certificate_data = read_file(cred->certificate_file, &cred->certificate_len);
		st = asr_auth_for(cred);
		a1 = pstrdup(asr_auth_client_assertion(st, now));
		a2 = asr_auth_client_assertion(st, now + SEC(539));
		check("certificate: assertion reused until 60 s before it expires", strcmp(a1, a2) == 0, NULL);
		a2 = asr_auth_client_assertion(st, now + SEC(540));
		check("certificate: new assertion 60 s before expiry", strcmp(a1, a2) != 0, NULL);

		a1 = pstrdup(a2);
		cxt = AllocSetContextCreate(CurrentMemoryContext, "unit request", ALLOCSET_SMALL_SIZES);
		req = asr_auth_build_request(st, now + SEC(541), cxt);
		check("certificate: form with client_assertion_type and the assertion",
			  req && contains(req->body, "grant_type=client_credentials&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46"
							  "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
							  "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
							  "&client_assertion=") &&
			  contains(req->body, a1) && req->sensitive, NULL);
		asr_auth_handle_response(st,
								 make_resp(401, psprintf("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found.] %s\",\"error_codes\":[700027]}", a1), NULL),
								 now + SEC(541));
		check("certificate: refused assertion explained, never echoed",
			  contains(asr_auth_last_error(st), "AADSTS700027") &&
			  contains(asr_auth_last_error(st), "Upload this certificate") &&
			  contains(asr_auth_last_error(st), "[redacted]") &&
			  !contains(asr_auth_last_error(st), a1 + strlen(a1) - 16) &&
			  !contains(asr_auth_last_error(st), pnstrdup(a1, 16)), asr_auth_last_error(st));
		a2 = asr_auth_client_assertion(st, now + SEC(542));
		check("certificate: a refused assertion is not offered again", a2 && strcmp(a1, a2) != 0, NULL);
		MemoryContextDelete(cxt);
	}
}

/*
 * asr_unit_run(fixtures_dir): every scenario, one row per check.
 */
Datum
asr_unit_run(PG_FUNCTION_ARGS)
{
	char	   *dir = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	results = rsinfo->setResult;
	results_desc = rsinfo->setDesc;

	test_clouds();
	test_client_secret();
	test_managed_identity();
	test_certificates(dir);
	test_backoff();
	asr_auth_forget_all();

	return (Datum) 0;
}

/*
 * asr_unit_assertion(file, password, alg, chain, token_url, client_id):
 * a fresh client assertion, for test/unit/verify.py.
 */
Datum
asr_unit_assertion(PG_FUNCTION_ARGS)
{
	AsrCredential *cred = make_cred(ASR_AUTH_CERTIFICATE);
	AsrTokenState *st;
	const char *a;

	cred->certificate_file = text_to_cstring(PG_GETARG_TEXT_PP(0));
	cred->certificate_data = read_file(cred->certificate_file, &cred->certificate_len);
	cred->certificate_password = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	cred->jwt_algorithm = strcmp(text_to_cstring(PG_GETARG_TEXT_PP(2)), "PS256") == 0 ?
		ASR_JWT_PS256 : ASR_JWT_RS256;
	cred->send_certificate_chain = PG_GETARG_BOOL(3);
	cred->token_url = text_to_cstring(PG_GETARG_TEXT_PP(4));
	cred->client_id = text_to_cstring(PG_GETARG_TEXT_PP(5));
	st = asr_auth_for(cred);
	a = asr_auth_client_assertion(st, GetCurrentTimestamp());
	if (a == NULL)
		ereport(ERROR,
				(errmsg("%s", asr_auth_last_error(st))));
	PG_RETURN_TEXT_P(cstring_to_text(a));
}

/*
 * asr_unit_lookup(server, role): what the worker would get, without the
 * secrets (only their lengths).
 */
Datum
asr_unit_lookup(PG_FUNCTION_ARGS)
{
	char	   *server = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			role = PG_GETARG_OID(1);
	AsrCredential *c = asr_credential_lookup(server, role);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "cloud=%s arm=%s login=%s imds=%s scope=%s resource=%s token_url=%s auth=%d client_id=%s "
					 "public=%s secret_len=%d cert_len=%d password=%s chain=%s alg=%s fingerprint=%d",
					 c->cloud, c->arm_endpoint, c->login_endpoint, c->imds_endpoint,
					 c->scope, c->imds_resource, c->token_url, (int) c->auth,
					 c->client_id ? c->client_id : "none",
					 c->mapping_user == InvalidOid ? "yes" : "no",
					 c->client_secret ? (int) strlen(c->client_secret) : -1,
					 (int) c->certificate_len,
					 c->certificate_password ? "set" : "none",
					 c->send_certificate_chain ? "yes" : "no",
					 c->jwt_algorithm == ASR_JWT_PS256 ? "PS256" : "RS256",
					 (int) strlen(c->fingerprint));
	asr_credential_wipe(c);
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}
