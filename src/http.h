/*-------------------------------------------------------------------------
 *
 * http.h
 *	  The worker's HTTP engine (libcurl multi) as its neighbours see it.
 *
 * Callers describe a request (AsrHttpRequest), start it, and later collect
 * the finished transfer with its AsrHttpResponse.  The engine never runs
 * SQL and never ereports from inside a libcurl callback; transport
 * failures come back as data (status 0 and a message), so one bad request
 * never stops the others.
 *
 * IDENTIFICATION
 *	  src/http.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_HTTP_H
#define ASR_HTTP_H

#include "nodes/pg_list.h"

/* Largest response body kept; anything longer fails the transfer. */
#define ASR_HTTP_MAX_BODY (8 * 1024 * 1024)

typedef struct AsrHttpRequest
{
	const char *method;			/* "GET" or "POST" */
	const char *url;			/* absolute URL */
	List	   *headers;		/* of char *, each "Name: value" */
	const char *body;			/* NULL for none */
	size_t		body_len;
	bool		allow_plain_http;	/* only the IMDS endpoint */
	bool		no_proxy;		/* IMDS: never through a proxy */
	bool		sensitive;		/* body or headers carry a secret: wipe
								 * our copies when the transfer ends */
	bool		secret_response;	/* the answer carries a secret (a token):
									 * wipe it when the transfer is released */
} AsrHttpRequest;

typedef struct AsrHttpHeader
{
	char	   *name;			/* lower-cased */
	char	   *value;			/* trimmed */
} AsrHttpHeader;

typedef struct AsrHttpResponse
{
	long		status;			/* HTTP status; 0 = no response */
	char	   *body;			/* NUL-terminated, may be "" */
	size_t		body_len;
	List	   *headers;		/* of AsrHttpHeader * */
	bool		timed_out;
	bool		never_sent;		/* failed before any byte of the request
								 * could reach the server (connect, DNS,
								 * TLS handshake): safe to send again */
	char	   *transport_error;	/* NULL, or what went wrong before a
									 * response arrived (for a DBA) */
	double		elapsed_ms;
} AsrHttpResponse;

typedef struct AsrHttpTransfer AsrHttpTransfer;

/* worker start-up */
extern void asr_http_init(void);

/* start a request; it belongs to memory context cxt */
extern AsrHttpTransfer *asr_http_start(const AsrHttpRequest *req,
									   MemoryContext cxt, void *tag);
extern int	asr_http_in_flight(void);

/*
 * Wait until a transfer finishes, the latch is set, or timeout_ms passes;
 * also services postmaster death and interrupts.  Returns true when the
 * latch was set.
 */
extern bool asr_http_wait(long timeout_ms);

/* finished transfers, one at a time; NULL when none is ready */
extern AsrHttpTransfer *asr_http_next_done(void);
extern void *asr_http_tag(AsrHttpTransfer *t);
extern AsrHttpResponse *asr_http_response(AsrHttpTransfer *t);
extern void asr_http_release(AsrHttpTransfer *t);

/* response helpers */
extern const char *asr_http_header(const AsrHttpResponse *resp,
								   const char *name);

/*
 * URL checks with libcurl's URL API.  asr_url_same_origin() is true when
 * url is https (or http when allow_http), has no userinfo, and has the
 * same host and port as base; every URL taken from a response must pass
 * it before a token is sent to it.
 */
extern bool asr_url_same_origin(const char *url, const char *base,
								bool allow_http, const char **why);

#endif							/* ASR_HTTP_H */
