/*-------------------------------------------------------------------------
 *
 * client.h
 *	  ARM calls with retries, throttling and tokens, on top of http.c.
 *
 * The worker hands the client an AsrCall (method, URL, body, whose token,
 * read or write) and a completion callback.  The client waits for a token,
 * paces the call by the subscription's read/write budget, sends it,
 * retries transport errors, 408, 429 and 5xx with back-off honouring
 * Retry-After (never a POST whose request may have reached Azure, unless
 * Azure said 429 or 503, which mean it was not processed), drops the token
 * and retries once on 401, and finally calls the callback from the
 * worker's loop (never from a libcurl callback) with the last response.
 * A done callback must not delete or reset the call's memory context; it
 * may mark its owner finished and let the owner be reaped afterwards.
 *
 * IDENTIFICATION
 *	  src/client.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_CLIENT_H
#define ASR_CLIENT_H

#include "datatype/timestamp.h"

#include "http.h"

typedef struct AsrCall AsrCall;
typedef void (*AsrCallDone) (AsrCall *call, AsrHttpResponse *resp, void *arg);

/*
 * How the client obtains tokens; the worker plugs auth.c in here.  cred
 * is opaque to the client.
 */
typedef struct AsrTokenSource
{
	/* a usable bearer token, or NULL when one must be fetched first */
	const char *(*bearer) (void *cred, TimestampTz now);
	/* the request that fetches one (NULL: wait, e.g. back-off after failure) */
	AsrHttpRequest *(*token_request) (void *cred, TimestampTz now);
	void		(*token_response) (void *cred, const AsrHttpResponse *resp, TimestampTz now);
	/* should a (new) token be fetched now, e.g. 5 minutes before expiry? */
	bool		(*needs_refresh) (void *cred, TimestampTz now);
	/* which token a request is sent with, so a 401 drops only that one */
	uint64		(*generation) (void *cred);
	void		(*invalidate) (void *cred, uint64 generation);
	/* why no token can be had right now (for the job), or NULL */
	const char *(*token_error) (void *cred);
	/* earliest time a new token request makes sense */
	TimestampTz (*token_retry_at) (void *cred);
} AsrTokenSource;

typedef struct AsrCallSpec
{
	const char *method;
	const char *url;
	const char *body;			/* NULL: none */
	const char *client_request_id;	/* NULL: a fresh one */
	const char *subscription;	/* budget key */
	bool		is_write;
	bool		retry_post;		/* a POST that may be re-sent (none) */
	const char *arm_base;		/* origin every URL must match */
	void	   *cred;
	int			max_attempts;	/* 0: until job deadline (caller) */
} AsrCallSpec;

extern void asr_client_init(const AsrTokenSource *tokens);
extern AsrCall *asr_client_call(const AsrCallSpec *spec, MemoryContext cxt,
								AsrCallDone done, void *arg);
extern void asr_client_cancel(AsrCall *call);

/* run the engine: start what is due, wait up to timeout_ms, finish what is done */
extern bool asr_client_pump(long timeout_ms);
extern int	asr_client_pending(void);

/* the attempt count and last transient error of a call, for the job row */
extern int	asr_call_attempts(AsrCall *call);
extern const char *asr_call_last_error(AsrCall *call);

#endif							/* ASR_CLIENT_H */
