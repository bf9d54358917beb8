/*-------------------------------------------------------------------------
 *
 * authresp.h
 *	  Reading the answers of Microsoft Entra ID's token endpoint and of the
 *	  instance metadata service (managed identity).
 *
 * auth.c sends a token request and hands the answer here; what comes back
 * is either a usable Bearer token with its expiry, or an error in words a
 * DBA can act on (the AADSTS code, Entra's own description, and advice for
 * the well-known codes).  No state, no SQL, no network: the cache and the
 * refresh policy stay in auth.c.
 *
 * IDENTIFICATION
 *	  src/authresp.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_AUTHRESP_H
#define ASR_AUTHRESP_H

#include "datatype/timestamp.h"

#include "fdw.h"
#include "http.h"

typedef enum AsrTokenOutcome
{
	ASR_TOKEN_ISSUED,			/* a Bearer token that has not expired */
	ASR_TOKEN_UNANSWERED,		/* no answer at all (status 0) */
	ASR_TOKEN_UNUSABLE,			/* a token, but not Bearer or expired */
	ASR_TOKEN_REFUSED			/* an error answer, or one that is not JSON */
} AsrTokenOutcome;

typedef struct AsrTokenAnswer
{
	AsrTokenOutcome outcome;

	/* ASR_TOKEN_ISSUED */
	char	   *access_token;	/* palloc'd; the caller wipes it */
	TimestampTz expires_at;
	int64		refresh_in_s;	/* the endpoint's refresh_in, 0 when none */

	/* every other outcome */
	bool		transient;		/* worth trying again soon: no answer, 408,
								 * 429, 5xx, IMDS updating, or Entra's
								 * temporarily_unavailable / server_error */
	long		retry_after_s;	/* Retry-After, 0 when none */
	char	   *error_code;		/* AADSTS code, OAuth error, or asr code */
	char	   *error;			/* the message, NOT yet redacted: the caller
								 * redacts the secrets it knows */
} AsrTokenAnswer;

/*
 * Read the answer to a token request sent at sent_at for credential c
 * (status 0 = transport failure).  Everything is palloc'd in the current
 * memory context; every scalar of the body other than the fields kept is
 * zeroed, since some (refresh tokens, id tokens) may be secrets.  Never
 * ereports except when palloc runs out of memory.
 */
extern void asr_token_answer_read(const AsrCredential *c,
								  const AsrHttpResponse *resp,
								  TimestampTz sent_at, TimestampTz now,
								  AsrTokenAnswer *answer);

/* zero a NUL-terminated palloc'd string, free it, and clear the pointer */
extern void asr_wipe_free(char **p);

#endif							/* ASR_AUTHRESP_H */
