/*-------------------------------------------------------------------------
 *
 * auth.h
 *	  Azure AD (Entra ID) tokens for the worker: client secret, certificate
 *	  (private_key_jwt) and managed identity, with a per-credential cache.
 *
 * This is pure token logic: no SQL, no network, no file access (auth.c:
 * cache, policy and requests; authresp.c: reading the answers of Entra ID
 * and IMDS).  The worker drives it asynchronously through its HTTP engine:
 *
 *		st = asr_auth_for(cred);			-- once per credential lookup
 *		if (asr_auth_needs_refresh(st, now))
 *			req = asr_auth_build_request(st, now, cxt);	-- may be NULL
 *			... start req with http.c; when it finishes:
 *			asr_auth_handle_response(st, resp, now);
 *		if (asr_auth_token_usable(st, now))
 *			"Authorization: Bearer " + asr_auth_bearer(st)
 *		else if asr_auth_last_error(st) != NULL: fail or delay the job with it
 *		on a 401 from ARM: asr_auth_invalidate(st, generation used); resend
 *			the request once, with the next token.
 *
 * Policy (arm-client.md §3, §4.5, §4.6): a token is refreshed 5 minutes
 * before it expires (half its lifetime for short-lived tokens); at most
 * one token request per credential is in flight.  After a failure the
 * next attempt waits, depending on what failed:
 *	- transient (no answer, a timeout or a dropped connection; HTTP 408,
 *	  429, 5xx; IMDS 404/410 while it is updated; Entra's
 *	  temporarily_unavailable): 1 s, doubling up to 30 s, as MSAL and
 *	  azure-identity retry an outage -- but at least 30 s while a token
 *	  that stays valid that long is still in use;
 *	- permanent (a refusal the DBA has to fix: invalid_client, a wrong or
 *	  expired secret, a refused assertion, an unusable certificate...):
 *	  30 s, doubling up to 5 min, so that a wrong secret does not hammer
 *	  Entra ID;
 * each kind doubling over its own failures since the last token, and
 * longer when Retry-After says so (at most an hour).  A still-valid
 * token keeps being used while a refresh fails.
 *
 * Secrets, keys, assertions and tokens live only in the auth memory
 * context (a child of TopMemoryContext) and in request bodies handed to
 * the caller; every such buffer is zeroed before it is released, and
 * OpenSSL objects are freed by memory-context reset callbacks.  No message
 * built here ever contains one of them.
 *
 * IDENTIFICATION
 *	  src/auth.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_AUTH_H
#define ASR_AUTH_H

#include "datatype/timestamp.h"

#include "fdw.h"
#include "http.h"

/* arm-client.md §4.1 */
typedef struct AsrCloud
{
	const char *name;			/* AzureCloud, AzureUSGovernment, ... */
	const char *login_endpoint; /* https://login.microsoftonline.com */
	const char *arm_endpoint;	/* https://management.azure.com */
	const char *scope;			/* https://management.azure.com/.default */
	const char *imds_resource;	/* https://management.azure.com/ */
} AsrCloud;

#define ASR_DEFAULT_CLOUD "AzureCloud"
#define ASR_DEFAULT_IMDS_ENDPOINT "http://169.254.169.254"
#define ASR_IMDS_API_VERSION "2018-02-01"

#define ASR_AUTH_REFRESH_MARGIN_S	300 /* refresh 5 min before expiry */
#define ASR_AUTH_RETRY_MIN_S		30	/* back-off after a permanent failure */
#define ASR_AUTH_RETRY_MAX_S		300
#define ASR_AUTH_TRANSIENT_MIN_S	1	/* back-off after a transient one */
#define ASR_AUTH_TRANSIENT_MAX_S	30
#define ASR_AUTH_RETRY_AFTER_MAX_S	3600	/* longest Retry-After obeyed */
#define ASR_AUTH_ASSERTION_LIFE_S	600 /* exp - iat of a client assertion */
#define ASR_AUTH_ASSERTION_MARGIN_S 60	/* rebuild 60 s before its exp */
#define ASR_AUTH_EXPIRY_SKEW_S		5	/* a token this close to expiry is
										 * no longer sent */

/* the cloud table; NULL when name (case-insensitive) is unknown */
extern const AsrCloud *asr_cloud_lookup(const char *name);

/* "AzureCloud, AzureUSGovernment, AzureChinaCloud", for hints */
extern const char *asr_cloud_names(void);

typedef struct AsrTokenState AsrTokenState;

/*
 * The token state of a credential, created on first use.  States are
 * keyed by (server, mapping user); when the credential's fingerprint
 * changed (the DBA altered the mapping or rotated a secret file) the old
 * token and secrets are wiped and the state starts afresh.  cred is
 * copied: the caller may free it.  Lives until asr_auth_forget_all().
 */
extern AsrTokenState *asr_auth_for(const AsrCredential *cred);

/* true when a token exists that expires more than a few seconds after now */
extern bool asr_auth_token_usable(AsrTokenState *st, TimestampTz now);

/*
 * true when a token request should be sent now: no request in flight, the
 * back-off has passed, and there is no token or it is within its refresh
 * margin.
 */
extern bool asr_auth_needs_refresh(AsrTokenState *st, TimestampTz now);

/* when asr_auth_needs_refresh() may next be true (0 = now), for sleeping */
extern TimestampTz asr_auth_next_attempt(AsrTokenState *st);

/*
 * The token request, palloc'd in cxt and marked sensitive; its body and
 * headers are zeroed when cxt is reset or deleted.  Marks the state as
 * having a request in flight.  Returns NULL when the request cannot be
 * built (unreadable certificate, wrong password...): last_error says why
 * and the back-off starts as after a failed refresh.
 */
extern AsrHttpRequest *asr_auth_build_request(AsrTokenState *st,
											  TimestampTz now,
											  MemoryContext cxt);

/*
 * Consume the answer to the request built last (status 0 = transport
 * failure).  On success the token and its expiry replace the old ones and
 * the error is cleared; on failure last_error explains it and the old
 * token, if still valid, stays usable.  The caller should wipe resp's body
 * (http.c does for sensitive requests).
 */
extern void asr_auth_handle_response(AsrTokenState *st,
									 const AsrHttpResponse *resp,
									 TimestampTz now);

/* forget an in-flight request that will never be answered */
extern void asr_auth_abandon_request(AsrTokenState *st, TimestampTz now,
									 const char *why);

/* the access token, or NULL; valid until the next call into this module */
extern const char *asr_auth_bearer(AsrTokenState *st);

/* increases each time a new token is stored */
extern uint64 asr_auth_generation(AsrTokenState *st);

/*
 * ARM answered 401 to a request sent with token generation gen: drop that
 * token (unless a newer one is already there) so the next request fetches
 * a fresh one at once.  Returns true when the caller may resend once; the
 * caller must count its own resends (one per request).
 */
extern bool asr_auth_invalidate(AsrTokenState *st, uint64 gen);

/*
 * The last failure in words a DBA can act on, e.g. "Microsoft Entra ID
 * refused the token request for server \"azure\" (HTTP 401 invalid_client):
 * AADSTS7000215: Invalid client secret provided. ..."; NULL after a success.
 * last_error_code is the AADSTS code, the OAuth error, or an asr code
 * (e.g. "imds_unavailable"), for asr_jobs.error_code.
 */
extern const char *asr_auth_last_error(AsrTokenState *st);
extern const char *asr_auth_last_error_code(AsrTokenState *st);

/*
 * true when the last failure was transient (an outage or throttling, see
 * the policy above): the next attempt comes soon, so a caller may keep a
 * request waiting for the token instead of failing it.  false after a
 * success or a permanent failure.
 */
extern bool asr_auth_failure_transient(AsrTokenState *st);

/* token expiry, 0 when none: for status displays */
extern TimestampTz asr_auth_expires_at(AsrTokenState *st);

/* wipe and drop every state (worker exit, tests) */
extern void asr_auth_forget_all(void);

/*
 * Test hook: the client assertion a certificate credential would send at
 * now (built or reused), or NULL with last_error set.  Only for the unit
 * tests under test/unit; the worker never calls it.
 */
extern const char *asr_auth_client_assertion(AsrTokenState *st,
											 TimestampTz now);

#endif							/* ASR_AUTH_H */
