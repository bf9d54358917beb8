/*-------------------------------------------------------------------------
 *
 * authreq.c
 *	  The token request for each source of credentials: a client secret
 *	  and a certificate's client assertion as a form POST to Microsoft
 *	  Entra ID, a managed identity as a GET of the instance metadata
 *	  service (IMDS).
 *
 * auth.c decides when to ask and hands over the credential (and, for a
 * certificate, the signed assertion); this builds the request.  The form
 * body holds the client secret or the assertion: it is allocated at its
 * final size (no growing buffer leaves copies in freed memory) and zeroed
 * by a callback when the caller's memory context goes, so no copy outlives
 * the transfer.  Values are escaped with libcurl.
 *
 * Arrows: called by auth.c; calls libcurl's URL escaping.
 *
 * IDENTIFICATION
 *	  src/authreq.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "utils/memutils.h"

#include "auth.h"
#include "authreq.h"

static char *concat_n(MemoryContext cxt, int n,...);
static void wipe_request_callback(void *arg);

/*
 * The token request for the credential's mode, in cxt; NULL when libcurl
 * could not escape a value (out of memory).  assertion is the signed
 * client assertion of a certificate credential, else unused.
 */
AsrHttpRequest *
asr_auth_token_request(const AsrCredential *c, const char *assertion,
					   MemoryContext cxt)
{
	AsrHttpRequest *req;
	MemoryContextCallback *cb;
	MemoryContext old;
	char	   *e_client = NULL;
	char	   *e_scope = NULL;
	char	   *e_secret = NULL;
	char	   *body = NULL;
	char	   *url = NULL;

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
							"&client_assertion=", assertion);
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
	return req;
}

/*
 * Runs when the request's memory context goes: the form body holds the
 * client secret or the assertion.
 */
static void
wipe_request_callback(void *arg)
{
	AsrHttpRequest *req = (AsrHttpRequest *) arg;

	if (req->body)
		explicit_bzero((char *) req->body, req->body_len);
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
