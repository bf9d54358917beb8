/*-------------------------------------------------------------------------
 *
 * asr_unit_backoff.c
 *	  Unit tests of when auth.c asks again after a failed token request:
 *	  the short schedule of transient failures, the long one of permanent
 *	  failures, Retry-After, and a still-valid token.
 *
 * The schedules (src/auth.h): a transient failure (no answer, 408, 429,
 * 5xx, IMDS updating, Entra's temporarily_unavailable) waits 1 s, doubling
 * up to 30 s -- 30 s at least while a token valid that long is in use; a
 * permanent failure (a refusal the DBA has to fix) waits 30 s, doubling up
 * to 5 min; a longer Retry-After wins, up to an hour.  Each check drives
 * one fresh credential through asr_auth_build_request and
 * asr_auth_handle_response at the times the state itself allows, so every
 * delay read here is one the worker would honour.
 *
 * IDENTIFICATION
 *	  test/unit/asr_unit_backoff.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "auth.h"

#include "asr_unit.h"

#define TOKEN "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.unit-backoff-token.sig"

/* Entra's answers, as Microsoft documents them */
#define BUSY "{\"error\":\"temporarily_unavailable\",\"error_description\":\"AADSTS50196: The server is busy.\",\"error_codes\":[50196]}"
#define BAD_SECRET "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\",\"error_codes\":[7000215]}"
#define GRANTED(life) "{\"token_type\":\"Bearer\",\"expires_in\":" #life ",\"access_token\":\"" TOKEN "\"}"

/*
 * One token request at now, answered with resp (left in flight when resp
 * is NULL): the seconds until the next attempt allowed, or -1 when no
 * request could be built.
 */
static long
attempt(AsrTokenState *st, TimestampTz now, AsrHttpResponse *resp)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "unit request",
											  ALLOCSET_SMALL_SIZES);
	AsrHttpRequest *req = asr_auth_build_request(st, now, cxt);

	if (req != NULL && resp != NULL)
		asr_auth_handle_response(st, resp, now);
	MemoryContextDelete(cxt);
	if (req == NULL)
		return -1;
	return (long) ((asr_auth_next_attempt(st) - now) / USECS_PER_SEC);
}

/*
 * The same failure over and over, each attempt as soon as the state
 * allows it: the delays, as "1 2 4".  Stops with "early" when the state
 * would have allowed an attempt a microsecond before its own
 * next_attempt, and with "refused" when it does not allow one then.
 */
static char *
schedule(AsrTokenState *st, TimestampTz *now, int n, long status,
		 const char *body, const char *retry_after)
{
	StringInfoData out;
	int			i;

	initStringInfo(&out);
	for (i = 0; i < n; i++)
	{
		long		d;

		if (i > 0 && asr_auth_needs_refresh(st, *now - 1))
		{
			appendStringInfoString(&out, " early");
			break;
		}
		if (!asr_auth_needs_refresh(st, *now))
		{
			appendStringInfoString(&out, " refused");
			break;
		}
		d = attempt(st, *now, make_resp(status, body, retry_after));
		appendStringInfo(&out, "%s%ld", i ? " " : "", d);
		*now = asr_auth_next_attempt(st);
	}
	return out.data;
}

/* a fresh client-secret credential: no token, no back-off */
static AsrTokenState *
fresh(AsrAuthMode auth)
{
	AsrCredential *cred = make_cred(auth);

	if (auth == ASR_AUTH_CLIENT_SECRET)
		cred->client_secret = pstrdup("unit-backoff-secret");
	return asr_auth_for(cred);
}

/* check that a schedule came out as expected, showing it otherwise */
static void
check_schedule(const char *name, const char *got, const char *want)
{
	check(psprintf("%s: %s", name, want), strcmp(got, want) == 0, got);
}

/*
 * Which answers are transient, which are permanent: the first delay
 * after each, and how the state says it.
 */
static void
test_kinds(void)
{
	static const struct
	{
		AsrAuthMode auth;
		long		status;
		const char *body;
		bool		transient;
		const char *what;
	}			cases[] = {
		{ASR_AUTH_CLIENT_SECRET, 503, BUSY, true, "Entra 503 temporarily_unavailable"},
		{ASR_AUTH_CLIENT_SECRET, 503, "<html>Service Unavailable</html>", true, "Entra 503 with a body that is not JSON"},
		{ASR_AUTH_CLIENT_SECRET, 500, "{\"error\":\"server_error\"}", true, "Entra 500"},
		{ASR_AUTH_CLIENT_SECRET, 502, "", true, "Entra 502 from a proxy"},
		{ASR_AUTH_CLIENT_SECRET, 504, "", true, "Entra 504"},
		{ASR_AUTH_CLIENT_SECRET, 408, "", true, "Entra 408"},
		{ASR_AUTH_CLIENT_SECRET, 429, "{\"error\":\"temporarily_unavailable\"}", true, "Entra 429 without Retry-After"},
		{ASR_AUTH_CLIENT_SECRET, 400, "{\"error\":\"temporarily_unavailable\",\"error_codes\":[50196]}", true, "Entra 400 temporarily_unavailable"},
		{ASR_AUTH_CLIENT_SECRET, 401, BAD_SECRET, false, "Entra 401 AADSTS7000215 (wrong secret)"},
		{ASR_AUTH_CLIENT_SECRET, 401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000222: The provided client secret keys are expired.\",\"error_codes\":[7000222]}", false, "Entra 401 AADSTS7000222 (expired secret)"},
		{ASR_AUTH_CLIENT_SECRET, 400, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700027: Client assertion contains an invalid signature.\",\"error_codes\":[700027]}", false, "Entra 400 AADSTS700027 (assertion refused)"},
		{ASR_AUTH_CLIENT_SECRET, 400, "{\"error\":\"unauthorized_client\",\"error_description\":\"AADSTS700016: Application not found.\",\"error_codes\":[700016]}", false, "Entra 400 unauthorized_client"},
		{ASR_AUTH_CLIENT_SECRET, 400, "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS90002: Tenant not found.\",\"error_codes\":[90002]}", false, "Entra 400 invalid_request"},
		{ASR_AUTH_CLIENT_SECRET, 400, "{\"error\":\"invalid_scope\",\"error_codes\":[70011]}", false, "Entra 400 invalid_scope"},
		{ASR_AUTH_CLIENT_SECRET, 404, "", false, "Entra 404 (a wrong login endpoint)"},
		{ASR_AUTH_CLIENT_SECRET, 501, "", false, "Entra 501"},
		{ASR_AUTH_CLIENT_SECRET, 200, "{\"expires_in\":3599}", false, "Entra 200 without access_token"},
		{ASR_AUTH_CLIENT_SECRET, 200, "{\"token_type\":\"pop\",\"expires_in\":3599,\"access_token\":\"x\"}", false, "Entra 200 with a token that is not Bearer"},
		{ASR_AUTH_MANAGED_IDENTITY, 404, "{\"error\":\"not_found\"}", true, "IMDS 404 (updating)"},
		{ASR_AUTH_MANAGED_IDENTITY, 410, "", true, "IMDS 410 (updating)"},
		{ASR_AUTH_MANAGED_IDENTITY, 429, "{\"error\":\"too_many_requests\"}", true, "IMDS 429"},
		{ASR_AUTH_MANAGED_IDENTITY, 500, "{\"error\":\"unknown\"}", true, "IMDS 500"},
		{ASR_AUTH_MANAGED_IDENTITY, 501, "", true, "IMDS 501"},
		{ASR_AUTH_MANAGED_IDENTITY, 400, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}", false, "IMDS 400 (no identity)"},
		{ASR_AUTH_MANAGED_IDENTITY, 200, "{\"access_token\":\"x\",\"expires_on\":\"1000\",\"token_type\":\"Bearer\"}", false, "IMDS 200 with an expired token"},
	};
	int			i;

	for (i = 0; i < (int) lengthof(cases); i++)
	{
		AsrTokenState *st = fresh(cases[i].auth);
		TimestampTz now = GetCurrentTimestamp();
		long		d = attempt(st, now, make_resp(cases[i].status, cases[i].body, NULL));

		check(psprintf("backoff: %s is %s, next try after %s", cases[i].what,
					   cases[i].transient ? "transient" : "permanent",
					   cases[i].transient ? "1 s" : "30 s"),
			  asr_auth_last_error(st) != NULL &&
			  asr_auth_failure_transient(st) == cases[i].transient &&
			  d == (cases[i].transient ? 1 : 30),
			  psprintf("transient=%d, next try after %ld s: %s",
					   (int) asr_auth_failure_transient(st), d,
					   asr_auth_last_error(st)));
	}

	/* no answer at all: a timeout, a dropped connection */
	{
		AsrTokenState *st = fresh(ASR_AUTH_CLIENT_SECRET);
		AsrHttpResponse *r = make_resp(0, NULL, NULL);
		long		d;

		r->timed_out = true;
		d = attempt(st, GetCurrentTimestamp(), r);
		check("backoff: a timeout is transient, next try after 1 s",
			  asr_auth_failure_transient(st) && d == 1 &&
			  strcmp(asr_auth_last_error_code(st), "login_unreachable") == 0,
			  asr_auth_last_error(st));

		st = fresh(ASR_AUTH_MANAGED_IDENTITY);
		r = make_resp(0, NULL, NULL);
		r->transport_error = "Connection reset by peer";
		d = attempt(st, GetCurrentTimestamp(), r);
		check("backoff: IMDS dropping the connection is transient, next try after 1 s",
			  asr_auth_failure_transient(st) && d == 1 &&
			  strcmp(asr_auth_last_error_code(st), "imds_unavailable") == 0,
			  asr_auth_last_error(st));
	}

	/* a request that was never answered */
	{
		AsrTokenState *st = fresh(ASR_AUTH_CLIENT_SECRET);
		TimestampTz now = GetCurrentTimestamp();

		(void) attempt(st, now, NULL);
		asr_auth_abandon_request(st, now + SEC(3), "the transfer was dropped");
		check("backoff: an abandoned request is transient, next try 1 s later",
			  asr_auth_failure_transient(st) &&
			  asr_auth_next_attempt(st) == now + SEC(4) &&
			  strcmp(asr_auth_last_error_code(st), "token_request_lost") == 0,
			  asr_auth_last_error(st));

		st = fresh(ASR_AUTH_CLIENT_SECRET);
		(void) attempt(st, now, NULL);
		check("backoff: a request never answered for 10 minutes is abandoned, tried again 1 s later",
			  !asr_auth_needs_refresh(st, now + SEC(599)) &&
			  !asr_auth_needs_refresh(st, now + SEC(600)) &&
			  asr_auth_failure_transient(st) &&
			  asr_auth_needs_refresh(st, now + SEC(601)), asr_auth_last_error(st));
	}
}

/*
 * The schedules themselves, Retry-After, a mix of both kinds, a token
 * that stays valid, and the reset after a success.
 */
static void
test_schedules(void)
{
	AsrTokenState *st;
	TimestampTz now = GetCurrentTimestamp();
	char	   *got;

	st = fresh(ASR_AUTH_CLIENT_SECRET);
	check_schedule("backoff: Entra 503, no token", schedule(st, &now, 8, 503, BUSY, NULL),
				   "1 2 4 8 16 30 30 30");

	st = fresh(ASR_AUTH_MANAGED_IDENTITY);
	check_schedule("backoff: IMDS 410, no token",
				   schedule(st, &now, 6, 410, "{\"error\":\"gone\"}", NULL), "1 2 4 8 16 30");

	st = fresh(ASR_AUTH_CLIENT_SECRET);
	check_schedule("backoff: a wrong secret, no token", schedule(st, &now, 7, 401, BAD_SECRET, NULL),
				   "30 60 120 240 300 300 300");

	/* Retry-After: longer wins, up to an hour; shorter does not shorten */
	st = fresh(ASR_AUTH_CLIENT_SECRET);
	got = schedule(st, &now, 1, 503, BUSY, "20");
	got = psprintf("%s %s", got, schedule(st, &now, 1, 429, BUSY, "1"));
	got = psprintf("%s %s", got, schedule(st, &now, 1, 503, BUSY, "7200"));
	got = psprintf("%s %s", got, schedule(st, &now, 1, 503, BUSY, "Fri, 27 Nov 2026 08:00:00 GMT"));
	check_schedule("backoff: transient with Retry-After 20, 1, 7200, a date", got, "20 2 3600 8");

	st = fresh(ASR_AUTH_CLIENT_SECRET);
	got = schedule(st, &now, 1, 400, BAD_SECRET, "120");
	got = psprintf("%s %s", got, schedule(st, &now, 1, 400, BAD_SECRET, "5"));
	got = psprintf("%s %s", got, schedule(st, &now, 1, 400, BAD_SECRET, "100000"));
	check_schedule("backoff: permanent with Retry-After 120, 5, 100000", got, "120 60 3600");

	/* each kind doubles over its own failures since the last token */
	st = fresh(ASR_AUTH_CLIENT_SECRET);
	got = schedule(st, &now, 4, 503, BUSY, NULL);
	got = psprintf("%s %s", got, schedule(st, &now, 2, 401, BAD_SECRET, NULL));
	got = psprintf("%s %s", got, schedule(st, &now, 2, 503, "", NULL));
	got = psprintf("%s %s", got, schedule(st, &now, 1, 401, BAD_SECRET, NULL));
	check_schedule("backoff: 4 outages, 2 refusals, 2 outages, 1 refusal", got,
				   "1 2 4 8 30 60 16 30 120");

	/* a token resets both schedules */
	(void) attempt(st, now, make_resp(200, GRANTED(60), NULL));
	check("backoff: a token clears the error and the back-off",
		  asr_auth_next_attempt(st) == 0 && asr_auth_last_error(st) == NULL &&
		  !asr_auth_failure_transient(st) && asr_auth_token_usable(st, now),
		  asr_auth_last_error(st));
	now += SEC(56);				/* the token is no longer usable */
	got = schedule(st, &now, 3, 503, BUSY, NULL);
	got = psprintf("%s %s", got, schedule(st, &now, 1, 401, BAD_SECRET, NULL));
	check_schedule("backoff: after a token, an outage and a refusal start again", got,
				   "1 2 4 30");
}

/*
 * A refresh ahead of expiry that fails while the token stays valid: no
 * hurry for an outage either (arm-client.md §4.6, at least 30 s apart),
 * until the token is about to lapse; a 401 from ARM that drops the token
 * brings the short schedule back.
 */
static void
test_valid_token(void)
{
	AsrTokenState *st = fresh(ASR_AUTH_CLIENT_SECRET);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz t0 = now;
	char	   *got;
	long		d;

	(void) attempt(st, now, make_resp(200, GRANTED(3599), NULL));
	now = t0 + SEC(3599 - 300);
	got = schedule(st, &now, 3, 503, BUSY, NULL);
	check_schedule("backoff: an outage during a refresh, the token valid for minutes",
				   got, "30 30 30");
	check("backoff: ... the token stays in use", asr_auth_token_usable(st, now) &&
		  asr_auth_failure_transient(st), NULL);

	/* less than 30 s of validity left: the short schedule again */
	now = t0 + SEC(3599 - 30);
	got = schedule(st, &now, 2, 503, BUSY, NULL);
	check_schedule("backoff: an outage during a refresh, the token valid for 30 s more", got, "8 16");

	/* a permanent failure keeps its own schedule whatever the token */
	st = fresh(ASR_AUTH_CLIENT_SECRET);
	t0 = now;
	(void) attempt(st, now, make_resp(200, GRANTED(3599), NULL));
	now = t0 + SEC(3599 - 300);
	check_schedule("backoff: a refusal during a refresh, the token valid for minutes",
				   schedule(st, &now, 2, 401, BAD_SECRET, NULL), "30 60");

	/* ARM says 401: the token is gone, and the next attempt comes sooner */
	st = fresh(ASR_AUTH_CLIENT_SECRET);
	t0 = now;
	(void) attempt(st, now, make_resp(200, GRANTED(3599), NULL));
	now = t0 + SEC(3599 - 300);
	d = attempt(st, now, make_resp(503, BUSY, NULL));
	(void) asr_auth_invalidate(st, asr_auth_generation(st));
	check("backoff: a 401 from ARM after an outage: next try 1 s after the failure, not 30 s",
		  d == 30 && !asr_auth_token_usable(st, now) &&
		  asr_auth_next_attempt(st) == now + SEC(1), NULL);

	st = fresh(ASR_AUTH_CLIENT_SECRET);
	t0 = now;
	(void) attempt(st, now, make_resp(200, GRANTED(3599), NULL));
	now = t0 + SEC(3599 - 300);
	d = attempt(st, now, make_resp(401, BAD_SECRET, NULL));
	(void) asr_auth_invalidate(st, asr_auth_generation(st));
	check("backoff: a 401 from ARM after a refusal: the 30 s stay",
		  d == 30 && asr_auth_next_attempt(st) == now + SEC(30), NULL);
}

/*
 * Certificates that cannot be used are a permanent failure: the DBA has
 * to fix the file or its password.
 */
static void
test_unusable_certificate(void)
{
	AsrCredential *cred = make_cred(ASR_AUTH_CERTIFICATE);
	AsrTokenState *st;
	TimestampTz now = GetCurrentTimestamp();
	long		d;

	cred->certificate_file = "/nonexistent/unit.pem";
	cred->certificate_data = NULL;
	cred->certificate_len = 0;
	st = asr_auth_for(cred);
	d = attempt(st, now, NULL);
	check("backoff: an unusable certificate is permanent, next try after 30 s",
		  d == -1 && !asr_auth_failure_transient(st) &&
		  asr_auth_next_attempt(st) == now + SEC(30) &&
		  strcmp(asr_auth_last_error_code(st), "certificate_unusable") == 0,
		  asr_auth_last_error(st));
}

void
test_backoff(void)
{
	test_kinds();
	test_schedules();
	test_valid_token();
	test_unusable_certificate();
}
