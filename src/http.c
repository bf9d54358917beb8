/*-------------------------------------------------------------------------
 *
 * http.c
 *	  The worker's HTTP engine: libcurl multi, waited on together with the
 *	  worker's latch.
 *
 * Only the background worker uses this file.  Up to asr.max_concurrent_requests
 * transfers run at once over reused connections; TLS verification is always
 * on (asr.ca_file or the system's CAs), only https is spoken except to the
 * managed-identity endpoint, redirects are never followed, and a response
 * body larger than ASR_HTTP_MAX_BODY fails the transfer.
 *
 * libcurl callbacks never ereport and never palloc (both may longjmp
 * through libcurl's frames): they write into malloc'd buffers and set
 * flags.  Every transfer is tied to a memory context of its caller through
 * a reset callback, so an ERROR anywhere in the worker releases the easy
 * handle, its header list and its buffers with the context.
 *
 * IDENTIFICATION
 *	  src/http.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/formatting.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "asr.h"
#include "http.h"

#define ASR_USER_AGENT "asr/1.0 (PostgreSQL extension; Azure Site Recovery)"
#define MAX_SOCKETS 1024

struct AsrHttpTransfer
{
	CURL	   *easy;
	struct curl_slist *header_list;
	MemoryContext cxt;
	MemoryContextCallback cb;
	void	   *tag;
	bool		in_multi;
	bool		done;
	bool		sensitive;
	bool		secret_response;
	char	   *request_body;	/* our copy, wiped when sensitive */
	size_t		request_body_len;
	/* filled by callbacks (malloc'd) */
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	char	   *raw_headers;
	size_t		raw_len;
	size_t		raw_cap;
	bool		too_big;
	bool		oom;
	char		errbuf[CURL_ERROR_SIZE];
	CURLcode	result;
	AsrHttpResponse *response;
};

typedef struct SocketWatch
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} SocketWatch;

static CURLM *multi = NULL;
static int	in_flight = 0;
static SocketWatch sockets[MAX_SOCKETS];
static int	nsockets = 0;
static long curl_timeout_ms = -1;
static List *done_list = NIL;
static MemoryContext http_context = NULL;

static int	socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
static int	timer_cb(CURLM *m, long timeout_ms, void *userp);
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
static bool buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n);
static void transfer_release_cb(void *arg);
static void collect_finished(void);
static void finish_transfer(AsrHttpTransfer *t, CURLcode result);
static void publish_in_flight(void);

/*
 * Set up libcurl and the multi handle once per worker process.
 */
void
asr_http_init(void)
{
	if (multi != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libcurl")));
	multi = curl_multi_init();
	if (multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) 64);
	http_context = AllocSetContextCreate(TopMemoryContext, "asr http",
										 ALLOCSET_SMALL_SIZES);
}

/*
 * libcurl tells us which sockets to watch; we remember them and build a
 * WaitEventSet from them in asr_http_wait().  No allocation, no ereport.
 */
static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == s)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsockets)
			sockets[i] = sockets[--nsockets];
		return 0;
	}
	if (i == nsockets)
	{
		if (nsockets >= MAX_SOCKETS)
			return -1;			/* libcurl fails this transfer */
		nsockets++;
	}
	sockets[i].fd = s;
	sockets[i].what = what;
	return 0;
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	curl_timeout_ms = timeout_ms;
	return 0;
}

/*
 * Grow a malloc'd buffer.  Returns false on out-of-memory; the caller turns
 * that into a failed transfer.
 */
static bool
buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
	if (*len + n + 1 > *cap)
	{
		size_t		newcap = Max(*cap * 2, *len + n + 1);
		char	   *p;

		newcap = Max(newcap, 4096);
		p = realloc(*buf, newcap);
		if (p == NULL)
			return false;
		*buf = p;
		*cap = newcap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	AsrHttpTransfer *t = (AsrHttpTransfer *) userdata;
	size_t		n = size * nmemb;

	if (t->body_len + n > ASR_HTTP_MAX_BODY)
	{
		t->too_big = true;
		return 0;				/* aborts the transfer */
	}
	if (!buf_append(&t->body, &t->body_len, &t->body_cap, ptr, n))
	{
		t->oom = true;
		return 0;
	}
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	AsrHttpTransfer *t = (AsrHttpTransfer *) userdata;
	size_t		n = size * nmemb;

	/* A new status line (e.g. after "100 Continue") restarts the block. */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		t->raw_len = 0;
	if (t->raw_len + n > 256 * 1024)
	{
		t->too_big = true;
		return 0;
	}
	if (!buf_append(&t->raw_headers, &t->raw_len, &t->raw_cap, ptr, n))
	{
		t->oom = true;
		return 0;
	}
	return n;
}

/*
 * Release everything a transfer holds outside palloc.  Runs when the
 * caller's memory context is reset or deleted, including during error
 * recovery, so nothing leaks and no handle outlives its owner.
 */
static void
transfer_release_cb(void *arg)
{
	AsrHttpTransfer *t = (AsrHttpTransfer *) arg;

	if (t->in_multi)
	{
		curl_multi_remove_handle(multi, t->easy);
		t->in_multi = false;
		in_flight--;
		publish_in_flight();
	}
	if (t->done)
	{
		MemoryContext old = MemoryContextSwitchTo(http_context);

		done_list = list_delete_ptr(done_list, t);
		MemoryContextSwitchTo(old);
	}
	if (t->easy)
		curl_easy_cleanup(t->easy);
	t->easy = NULL;
	curl_slist_free_all(t->header_list);
	t->header_list = NULL;
	if (t->body)
	{
		if (t->sensitive)
			explicit_bzero(t->body, t->body_cap);
		free(t->body);
		t->body = NULL;
	}
	if (t->raw_headers)
	{
		if (t->sensitive)
			explicit_bzero(t->raw_headers, t->raw_cap);
		free(t->raw_headers);
		t->raw_headers = NULL;
	}
	if (t->request_body && t->sensitive)
		explicit_bzero(t->request_body, t->request_body_len);
	if (t->response && t->secret_response)
	{
		ListCell   *lc;

		/* a token response holds the token: leave no copy behind */
		explicit_bzero(t->response->body, t->response->body_len);
		foreach(lc, t->response->headers)
		{
			AsrHttpHeader *h = (AsrHttpHeader *) lfirst(lc);

			explicit_bzero(h->value, strlen(h->value));
		}
	}
}

static void
publish_in_flight(void)
{
	if (asr_shared == NULL)
		return;
	SpinLockAcquire(&asr_shared->mutex);
	asr_shared->requests_in_flight = in_flight;
	SpinLockRelease(&asr_shared->mutex);
}

/*
 * Start a request.  Refuses (with an ERROR the caller's per-job handling
 * catches) URLs that are not https, unless the request allows plain http.
 */
AsrHttpTransfer *
asr_http_start(const AsrHttpRequest *req, MemoryContext cxt, void *tag)
{
	AsrHttpTransfer *t;
	CURL	   *easy;
	ListCell   *lc;
	CURLMcode	mc;

	Assert(multi != NULL);

	t = MemoryContextAllocZero(cxt, sizeof(AsrHttpTransfer));
	t->cxt = cxt;
	t->tag = tag;
	t->sensitive = req->sensitive || req->secret_response;
	t->secret_response = req->secret_response;
	t->cb.func = transfer_release_cb;
	t->cb.arg = t;
	MemoryContextRegisterResetCallback(cxt, &t->cb);

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	t->easy = easy;

	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR,
					 req->allow_plain_http ? "http" : "https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) asr_http_timeout * 1000L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
					 (long) Min(asr_http_timeout, 30) * 1000L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (asr_ca_file && asr_ca_file[0] != '\0')
		curl_easy_setopt(easy, CURLOPT_CAINFO, asr_ca_file);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) ASR_HTTP_MAX_BODY);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, ASR_USER_AGENT);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	if (req->no_proxy)
		curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);

	if (strcmp(req->method, "POST") == 0)
	{
		t->request_body_len = req->body ? req->body_len : 0;
		t->request_body = MemoryContextAlloc(cxt, t->request_body_len + 1);
		if (t->request_body_len > 0)
			memcpy(t->request_body, req->body, t->request_body_len);
		t->request_body[t->request_body_len] = '\0';
		curl_easy_setopt(easy, CURLOPT_POST, 1L);

		/*
		 * A POST gets a connection of its own: libcurl silently re-sends a
		 * request whose reused connection died before any answer, and an
		 * action must never reach Azure twice.
		 */
		curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->request_body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
						 (curl_off_t) t->request_body_len);
	}
	else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);

	/* No "Expect: 100-continue" round trip; no implicit form content type. */
	t->header_list = curl_slist_append(t->header_list, "Expect:");
	if (strcmp(req->method, "POST") == 0 && t->request_body_len == 0)
		t->header_list = curl_slist_append(t->header_list, "Content-Type:");
	foreach(lc, req->headers)
	{
		struct curl_slist *nl = curl_slist_append(t->header_list,
												  (const char *) lfirst(lc));

		if (nl == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory building HTTP headers")));
		t->header_list = nl;
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->header_list);

	mc = curl_multi_add_handle(multi, easy);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start an HTTP request: %s", curl_multi_strerror(mc))));
	t->in_multi = true;
	in_flight++;
	publish_in_flight();
	return t;
}

int
asr_http_in_flight(void)
{
	return in_flight;
}

/*
 * Turn a finished easy handle into an AsrHttpResponse (palloc'd in the
 * transfer's context) and queue it for asr_http_next_done().
 */
static void
finish_transfer(AsrHttpTransfer *t, CURLcode result)
{
	AsrHttpResponse *r;
	MemoryContext old;
	long		status = 0;
	double		total = 0;

	curl_multi_remove_handle(multi, t->easy);
	t->in_multi = false;
	in_flight--;
	publish_in_flight();
	t->result = result;

	old = MemoryContextSwitchTo(t->cxt);
	r = palloc0(sizeof(AsrHttpResponse));
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
	r->elapsed_ms = total * 1000.0;
	r->body = t->body ? pnstrdup(t->body, t->body_len) : pstrdup("");
	r->body_len = t->body_len;

	if (result != CURLE_OK || t->too_big || t->oom)
	{
		r->status = 0;
		r->timed_out = (result == CURLE_OPERATION_TIMEDOUT);
		r->never_sent = (result == CURLE_COULDNT_CONNECT ||
						 result == CURLE_COULDNT_RESOLVE_HOST ||
						 result == CURLE_COULDNT_RESOLVE_PROXY ||
						 result == CURLE_SSL_CONNECT_ERROR ||
						 result == CURLE_PEER_FAILED_VERIFICATION ||
						 result == CURLE_SSL_CACERT_BADFILE ||
						 result == CURLE_UNSUPPORTED_PROTOCOL);
		if (t->too_big)
			r->transport_error = psprintf("response larger than %d bytes", ASR_HTTP_MAX_BODY);
		else if (t->oom)
			r->transport_error = pstrdup("out of memory receiving the response");
		else
			r->transport_error = psprintf("%s%s%s", curl_easy_strerror(result),
										  t->errbuf[0] ? ": " : "", t->errbuf);
	}
	else
		r->status = status;

	/* parse "Name: value" lines of the final response */
	if (t->raw_headers)
	{
		char	   *copy = pnstrdup(t->raw_headers, t->raw_len);
		char	   *save = NULL;
		char	   *line;

		for (line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
		{
			char	   *colon = strchr(line, ':');
			AsrHttpHeader *h;
			char	   *v;
			char	   *end;

			if (colon == NULL || strncmp(line, "HTTP/", 5) == 0)
				continue;
			*colon = '\0';
			v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			end = v + strlen(v);
			while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
				*--end = '\0';
			h = palloc(sizeof(AsrHttpHeader));
			h->name = asc_tolower(line, strlen(line));
			h->value = pstrdup(v);
			r->headers = lappend(r->headers, h);
		}
		if (t->sensitive)
			explicit_bzero(copy, t->raw_len);
	}
	MemoryContextSwitchTo(old);

	t->response = r;
	t->done = true;
	old = MemoryContextSwitchTo(http_context);
	done_list = lappend(done_list, t);
	MemoryContextSwitchTo(old);
}

static void
collect_finished(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		AsrHttpTransfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		if (t != NULL && t->in_multi)
			finish_transfer(t, msg->data.result);
	}
}

/*
 * Sleep until the latch is set, a socket is ready, libcurl's timer fires
 * or timeout_ms passes, and let libcurl make progress.  Interrupts
 * (SIGTERM, ProcSignalBarriers of DROP DATABASE) are serviced on every
 * return, so nothing waits on the worker while requests are in flight.
 */
bool
asr_http_wait(long timeout_ms)
{
	WaitEventSet *set;
	WaitEvent	events[MAX_SOCKETS + 2];
	int			nevents;
	int			i;
	int			running;
	bool		latch_set = false;
	long		wait_ms = timeout_ms;

	if (list_length(done_list) > 0)
		wait_ms = 0;
	if (in_flight > 0 && curl_timeout_ms >= 0 && curl_timeout_ms < wait_ms)
		wait_ms = curl_timeout_ms;

	set = CreateWaitEventSet(CurrentMemoryContext, nsockets + 2);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < nsockets; i++)
	{
		uint32		ev = 0;

		if (sockets[i].what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (sockets[i].what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		if (ev == 0)
			continue;
		AddWaitEventToSet(set, ev, sockets[i].fd, NULL, NULL);
	}

	nevents = WaitEventSetWait(set, wait_ms, events, lengthof(events),
							   PG_WAIT_EXTENSION);
	FreeWaitEventSet(set);

	for (i = 0; i < nevents; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
			continue;
		}
		if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
		{
			int			mask = 0;

			if (events[i].events & WL_SOCKET_READABLE)
				mask |= CURL_CSELECT_IN;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				mask |= CURL_CSELECT_OUT;
			curl_multi_socket_action(multi, events[i].fd, mask, &running);
		}
	}
	/* let libcurl handle its timeouts (and start newly added handles) */
	if (in_flight > 0)
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_finished();

	CHECK_FOR_INTERRUPTS();
	return latch_set;
}

AsrHttpTransfer *
asr_http_next_done(void)
{
	AsrHttpTransfer *t;
	MemoryContext old;

	if (done_list == NIL)
		return NULL;
	t = (AsrHttpTransfer *) linitial(done_list);
	old = MemoryContextSwitchTo(http_context);
	done_list = list_delete_first(done_list);
	MemoryContextSwitchTo(old);
	t->done = false;
	return t;
}

void *
asr_http_tag(AsrHttpTransfer *t)
{
	return t->tag;
}

AsrHttpResponse *
asr_http_response(AsrHttpTransfer *t)
{
	return t->response;
}

/*
 * Release a transfer before its context goes away (connections stay in
 * the multi handle's pool for reuse).
 */
void
asr_http_release(AsrHttpTransfer *t)
{
	/* idempotent: the reset callback finds nothing left to release */
	transfer_release_cb(t);
}

const char *
asr_http_header(const AsrHttpResponse *resp, const char *name)
{
	ListCell   *lc;
	const char *found = NULL;

	foreach(lc, resp->headers)
	{
		AsrHttpHeader *h = (AsrHttpHeader *) lfirst(lc);

		if (pg_strcasecmp(h->name, name) == 0)
			found = h->value;
	}
	return found;
}

/*
 * Does url point at the same scheme, host and port as base, without
 * userinfo?  Used on every URL taken from a response (Location,
 * Azure-AsyncOperation, nextLink) before a bearer token goes to it.  On
 * false, *why says what was wrong, in words fit for a job's error (the
 * URL itself is never quoted: it may carry a signature).
 */
bool
asr_url_same_origin(const char *url, const char *base, bool allow_http,
					const char **why)
{
	CURLU	   *u = curl_url();
	CURLU	   *b = curl_url();
	char	   *scheme = NULL,
			   *host = NULL,
			   *port = NULL,
			   *user = NULL,
			   *bhost = NULL,
			   *bport = NULL;
	bool		ok = false;

	*why = NULL;
	if (u == NULL || b == NULL)
	{
		*why = "out of memory";
		goto done;
	}
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
	{
		*why = "the URL Azure returned is not a valid absolute URL";
		goto done;
	}
	if (curl_url_set(b, CURLUPART_URL, base, 0) != CURLUE_OK)
	{
		*why = "the configured endpoint is not a valid URL";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		!(pg_strcasecmp(scheme, "https") == 0 ||
		  (allow_http && pg_strcasecmp(scheme, "http") == 0)))
	{
		*why = "the URL Azure returned is not https";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
	{
		*why = "the URL Azure returned carries user information";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		curl_url_get(b, CURLUPART_HOST, &bhost, 0) != CURLUE_OK ||
		pg_strcasecmp(host, bhost) != 0)
	{
		*why = "the URL Azure returned is on another host than the configured ARM endpoint";
		goto done;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
		curl_url_get(b, CURLUPART_PORT, &bport, CURLU_DEFAULT_PORT) != CURLUE_OK ||
		strcmp(port, bport) != 0)
	{
		*why = "the URL Azure returned is on another port than the configured ARM endpoint";
		goto done;
	}
	ok = true;

done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(bhost);
	curl_free(bport);
	curl_url_cleanup(u);
	curl_url_cleanup(b);
	return ok;
}
