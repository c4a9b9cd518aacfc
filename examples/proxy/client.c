/*
 * A client connection: a state machine of I/O callbacks that serves one request at a time
 * (pipelined requests wait in the input buffer for their turn).
 *
 *   head      read until a request head parses (http_parse_request); a bad one gets 400 / 431 /
 *             505 and the connection closes; GET /metrics is answered here
 *   admit     --max-inflight (503), --rate-limit (429)
 *   attempt   an upstream and its permits (backend.c), an idle connection to it or a new one
 *             (sx_io_connect), the forwarded head with the body bytes that came with it in one
 *             write, then the rest of the body as it arrives from the client
 *   response  its head (http_parse_response), 1xx passed on, a retryable status or failure
 *             handed to the retry rule; the final head and body streamed to the client as they
 *             come from the upstream
 *   done      the permits released with the result, the upstream connection kept or closed, the
 *             next request or the end
 *
 * Every step that waits starts one I/O and returns; its callback is the next step. At most one
 * wait is pending per client, so a client's fields are touched by one task at a time. A step
 * whose I/O cannot start calls its own callback with the error at once, so every failure goes
 * down the same path. Waits on the client are limited by --client-idle-ms, waits on the upstream
 * by --attempt-timeout-ms (or what is left of --request-timeout-ms), both with the watchdog of
 * sock.c.
 *
 * Retries: an attempt that failed (connect, reset, timeout, a status in --retry-on) before any
 * byte of its answer reached the client is retried on another upstream, up to --attempts, if the
 * shared retry budget gives a token; a request whose method is not idempotent only when none of
 * it was sent, and a request whose body was streamed (no longer all in the buffer) only when
 * none of the body was. A retryable response is kept (its upstream connection held) until the
 * next attempt has an upstream, so that when no retry can happen the client gets it as it came.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

/* How an attempt failed. */
enum fail {
	F_NONE = 0,
	F_CONNECT,          /* the connect failed */
	F_CONNECT_TIMEOUT,  /* ... within --connect-timeout-ms */
	F_RESET,            /* reset or closed before the response head was complete */
	F_TIMEOUT,          /* no byte from the upstream for the attempt's time limit */
	F_STATUS,           /* a status listed in --retry-on */
	F_BAD               /* a response that does not parse, or a bad chunked body */
};

struct px_client {
	struct px_sock s;
	char peer[INET_ADDRSTRLEN];
	http_msg req;
	http_msg resp;

	/* the request in progress */
	bool in_request;        /* counted in PX_REQUESTS, not yet answered nor given up */
	bool inflight;          /* counted in px.inflight */
	bool idempotent;
	bool sent;              /* bytes of it went to an upstream */
	bool answered;          /* bytes of an answer went to the client: no retry, no own answer */
	bool replayable;        /* everything sent so far is still in `in` (not streamed past) */
	bool body_done;         /* the end of the request body has been read from the client */
	bool own_100;           /* this proxy sent 100 Continue: the upstream's is dropped */
	bool keep;              /* the client connection stays open after the answer */
	uint64_t deadline;      /* --request-timeout-ms (0: none); a lingering close's end */
	unsigned attempt;       /* attempts begun */
	uint64_t tried;         /* upstreams tried, by index */
	unsigned last_up;
	uint64_t body_left;     /* a Content-Length body: bytes not read from the client yet */
	http_chunked ck;        /* a chunked body's scan */
	size_t body_end;        /* where the request's bytes in `in` end (so far) */
	sx_retry_policy pol;    /* --backoff-ms, with this request's seed */
	sx_backoff bo;

	/* the attempt in progress */
	struct px_permit permit;/* permit.up is NULL when none is held */
	struct px_uconn *uc;
	struct px_uconn *held;  /* a retryable response kept while a retry looks for an upstream */
	uint64_t t_attempt;
	enum fail fail;         /* how the last failed attempt failed */

	/* the response */
	uint64_t resp_left;     /* a Content-Length body: bytes not read from the upstream yet */
	http_chunked rck;
	bool decode;            /* chunked to an HTTP/1.0 client: decoded, ended by closing */
	bool resp_done;         /* the whole response body has been read from the upstream */
	bool up_keep;           /* the upstream connection may carry another request */

	size_t in_len, in_cap, out_cap;
	char *in;               /* request bytes: the head, body bytes, pipelined requests */
	char *out;              /* our answers and the forwarded response heads */
	http_header req_h[PX_MAX_HEADERS];
	http_header resp_h[PX_MAX_HEADERS];
};

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void read_head(struct px_client *c);
static void parse_head(struct px_client *c);
static void attempt(struct px_client *c);
static void attempt_failed(struct px_client *c, enum fail kind, int code);
static void read_response(struct px_client *c);
static void resp_head(struct px_client *c);
static void respond(struct px_client *c);
static void body_read(struct px_client *c);

/* ---- life cycle ------------------------------------------------------------------------------- */

static void client_free(struct px_sock *s)
{
	struct px_client *c = SX_CONTAINER_OF(s, struct px_client, s);

	free(c->in);
	free(c->out);
	free(c);
	atomic_fetch_sub_explicit(&px.clients, 1, memory_order_relaxed);
}

void px_client_start(int fd)
{
	struct px_client *c = calloc(1, sizeof(*c));
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	size_t out = (size_t)px.cfg.max_head + 2 * PX_HEAD_SLACK + PX_CHUNK;
	int one = 1;

	px_count(PX_CONNECTIONS, 1);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->in_cap = (size_t)px.cfg.max_head + PX_CHUNK;
	c->out_cap = out > px_metrics_size() ? out : px_metrics_size();
	c->in = malloc(c->in_cap);
	c->out = malloc(c->out_cap);
	if (c->in == NULL || c->out == NULL ||
	    http_msg_init(&c->req, c->req_h, PX_MAX_HEADERS, px.cfg.max_head) != HTTP_OK ||
	    http_msg_init(&c->resp, c->resp_h, PX_MAX_HEADERS, px.cfg.max_head) != HTTP_OK ||
	    px_sock_open(&c->s, fd, client_free) != 0) {
		free(c->in);
		free(c->out);
		free(c);
		close(fd);
		return;
	}
	atomic_fetch_add_explicit(&px.clients, 1, memory_order_relaxed);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (getpeername(fd, (struct sockaddr *)&a, &alen) != 0 ||
	    inet_ntop(AF_INET, &a.sin_addr, c->peer, sizeof(c->peer)) == NULL)
		strcpy(c->peer, "unknown");
	read_head(c);
}

static void end_inflight(struct px_client *c)
{
	if (c->inflight) {
		atomic_fetch_sub_explicit(&px.inflight, 1, memory_order_relaxed);
		c->inflight = false;
	}
}

/* Ends the connection, whatever it was doing (no wait of it is pending): the attempt's permits
 * back (not counted: the upstream did nothing wrong), its connections closed, the request
 * counted as unanswered if it was not answered. */
static void client_close(struct px_client *c)
{
	px_release(&c->permit, -ECANCELED, 0);
	if (c->uc != NULL)
		px_uconn_close(c->uc);
	if (c->held != NULL)
		px_uconn_close(c->held);
	c->uc = c->held = NULL;
	if (c->in_request) {
		px_count(PX_UNANSWERED, 1);
		c->in_request = false;
	}
	end_inflight(c);
	px_sock_close(&c->s);
}

static void count_status(int status)
{
	if (status >= 200 && status < 600)
		px_count((enum px_counter)(PX_2XX + (status / 100 - 2)), 1);
}

static bool deadline_passed(const struct px_client *c)
{
	return c->deadline != 0 && px_now_ns() >= c->deadline;
}

/* A wait on the upstream may take limit ns, or less when the request's deadline comes first;
 * 0 when it has passed. */
static int64_t wait_limit(const struct px_client *c, int64_t limit)
{
	if (c->deadline != 0) {
		uint64_t now = px_now_ns();

		if (now >= c->deadline)
			return 0;
		if (c->deadline - now < (uint64_t)limit)
			return (int64_t)(c->deadline - now);
	}
	return limit;
}

/* ---- the next request ------------------------------------------------------------------------- */

static void on_head(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (n <= 0 || late) {   /* end of file, an error, or idle too long */
		client_close(c);
		return;
	}
	c->in_len += (size_t)n;
	parse_head(c);
}

static void read_head(struct px_client *c)
{
	int rc;

	if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
	    (rc = sx_io_read(c->s.io, c->in + c->in_len, c->in_cap - c->in_len, 1, NULL, on_head,
	    c)) != 0)
		on_head(c->s.io, rc, c);
}

/*
 * Closing after an answer: the write side is shut down first and what the client still sends is
 * read and dropped until it closes too (or for a second at most), so that unread request bytes
 * do not make the kernel reset the connection and destroy the answer before the client has read
 * it (a head too large, a body not read, pipelined requests after a "Connection: close").
 */
static void on_linger(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);
	uint64_t now = px_now_ns();
	int rc;

	(void)io;
	if (n <= 0 || late || now >= c->deadline) {
		client_close(c);
		return;
	}
	if ((rc = px_watch(&c->s, (int64_t)(c->deadline - now))) != 0 ||
	    (rc = sx_io_read(c->s.io, c->in, c->in_cap, 1, NULL, on_linger, c)) != 0)
		on_linger(c->s.io, rc, c);
}

static void linger(struct px_client *c)
{
	(void)shutdown(c->s.fd, SHUT_WR);
	c->deadline = px_now_ns() + 1000000000u;
	on_linger(c->s.io, 1, c);
}

/* The request is over (answered): the bytes after it are the next request's. */
static void next_request(struct px_client *c)
{
	size_t rest = c->in_len - c->body_end;

	end_inflight(c);
	if (!c->keep) {
		linger(c);
		return;
	}
	memmove(c->in, c->in + c->body_end, rest);
	c->in_len = rest;
	c->body_end = 0;
	http_msg_reset(&c->req);
	if (rest > 0)
		parse_head(c);
	else
		read_head(c);
}

/* ---- answers of our own ----------------------------------------------------------------------- */

static void on_own_sent(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (n < 0 || late) {
		client_close(c);
		return;
	}
	next_request(c);
}

/* Sends out[at, at + len), a complete answer of status (counted), then goes on to the next request
 * or closes (c->keep). */
static void send_own(struct px_client *c, size_t at, size_t len, int status)
{
	int rc;

	count_status(status);
	c->in_request = false;
	c->answered = true;
	if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
	    (rc = sx_io_write(c->s.io, c->out + at, len, NULL, on_own_sent, c)) != 0)
		on_own_sent(c->s.io, rc, c);
}

/*
 * Answers with a short response of status. The connection stays open only if the client wants
 * it, it is not HTTP/1.0 (this answer has no keep-alive field) and the request's body has been
 * read to its end (else where the next request starts is unknown); close forces the end.
 */
static void answer(struct px_client *c, int status, bool close)
{
	size_t len;

	if (c->answered) {      /* a 1xx went out already: the client must not get a second head */
		client_close(c);
		return;
	}
	c->keep = !close && c->req.keep_alive && c->req.minor > 0 && c->body_done;
	if (http_simple_response(status, !c->keep, c->out, c->out_cap, &len) != HTTP_OK) {
		client_close(c);
		return;
	}
	send_own(c, 0, len, status);
}

static bool is_metrics(const http_msg *m)
{
	return m->method_len == 3 && memcmp(m->method, "GET", 3) == 0 &&
	    ((m->target_len == 8 && memcmp(m->target, "/metrics", 8) == 0) ||
	    (m->target_len > 8 && memcmp(m->target, "/metrics?", 9) == 0));
}

/* GET /metrics: the counters, rendered behind room for the head, which then goes in front. */
static void metrics(struct px_client *c)
{
	enum { ROOM = 256 };
	char head[ROOM];
	size_t n = px_metrics(c->out + ROOM, c->out_cap - ROOM);
	int h;

	if (n == 0) {
		answer(c, 500, false);
		return;
	}
	c->keep = c->req.keep_alive && c->req.minor > 0 && c->body_done;
	h = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
	    "version=0.0.4\r\nContent-Length: %zu\r\n%s\r\n", n, c->keep ? "" : "Connection: close\r\n");
	memcpy(c->out + ROOM - (size_t)h, head, (size_t)h);
	send_own(c, ROOM - (size_t)h, (size_t)h + n, 200);
}

/* ---- a request -------------------------------------------------------------------------------- */

static bool method_is(const http_msg *m, const char *name)
{
	size_t n = strlen(name);

	return m->method_len == n && memcmp(m->method, name, n) == 0;
}

static bool idempotent(const http_msg *m)
{
	return method_is(m, "GET") || method_is(m, "HEAD") || method_is(m, "PUT") ||
	    method_is(m, "DELETE") || method_is(m, "OPTIONS") || method_is(m, "TRACE");
}

static void begin_request(struct px_client *c)
{
	const http_msg *m = &c->req;
	size_t avail = c->in_len - m->head_len, used;
	int rc;

	c->idempotent = idempotent(m);
	c->sent = c->answered = c->own_100 = false;
	c->replayable = true;
	c->attempt = 0;
	c->tried = 0;
	c->fail = F_NONE;
	c->body_end = m->head_len;
	c->deadline = px.cfg.request_timeout_ns > 0 ?
	    px_now_ns() + (uint64_t)px.cfg.request_timeout_ns : 0;
	switch (m->body) {
	case HTTP_BODY_LENGTH:
		used = avail < m->content_length ? avail : (size_t)m->content_length;
		c->body_left = m->content_length - used;
		c->body_end += used;
		c->body_done = c->body_left == 0;
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->ck);
		rc = http_chunked_scan(&c->ck, c->in + m->head_len, avail, &used);
		if (rc == HTTP_ECHUNK) {
			c->body_done = false;
			answer(c, 400, true);
			return;
		}
		c->body_end += used;
		c->body_done = rc == HTTP_OK;
		break;
	default:
		c->body_done = true;
		break;
	}
	if (is_metrics(m)) {
		metrics(c);
		return;
	}
	c->inflight = true;
	if (atomic_fetch_add_explicit(&px.inflight, 1, memory_order_relaxed) >=
	    px.cfg.max_inflight && px.cfg.max_inflight > 0) {
		px_count(PX_OVERLOADED, 1);
		answer(c, 503, false);
		return;
	}
	if (px.rate != NULL && sx_ratelimit_try(px.rate, 1) != 0) {
		px_count(PX_RATE_LIMITED, 1);
		answer(c, 429, false);
		return;
	}
	if (px.cfg.backoff_ns > 0) {
		c->pol = px.backoff;
		c->pol.seed = (uint64_t)(uintptr_t)c ^ px_now_ns();
		(void)sx_backoff_init(&c->bo, &c->pol);
	}
	attempt(c);
}

static void parse_head(struct px_client *c)
{
	int rc = http_parse_request(&c->req, c->in, c->in_len);

	if (rc == HTTP_INCOMPLETE) {
		if (c->in_len < c->in_cap) {
			read_head(c);
			return;
		}
		rc = HTTP_ETOOLARGE; /* cannot happen: the parser's limit is below the buffer's */
	}
	c->in_request = true;
	px_count(PX_REQUESTS, 1);
	if (rc != HTTP_OK) {
		answer(c, http_error_status(rc, true), true);
		return;
	}
	begin_request(c);
}

/* ---- attempts ----------------------------------------------------------------------------------- */

/* The held response is no longer needed: its connection is kept if the response was whole. */
static void drop_held(struct px_client *c)
{
	struct px_uconn *uc = c->held;
	const http_msg *r = &c->resp;
	bool whole = (r->body == HTTP_BODY_NONE && uc->len == r->head_len) ||
	    (r->body == HTTP_BODY_LENGTH && uc->len == r->head_len + r->content_length);

	c->held = NULL;
	if (whole && r->keep_alive)
		px_idle_push(uc);
	else
		px_uconn_close(uc);
}

/* No retry will come: the held response as it came, or an answer of our own. */
static void give_up(struct px_client *c)
{
	if (c->held != NULL) {
		c->uc = c->held;
		c->held = NULL;
		respond(c);
		return;
	}
	if (deadline_passed(c) && c->fail != F_TIMEOUT && c->fail != F_CONNECT_TIMEOUT)
		px_count(PX_TIMEOUTS, 1);
	if (c->fail == F_NONE)          /* no attempt could begin: every upstream open or full */
		answer(c, 503, false);
	else if (c->fail == F_TIMEOUT || c->fail == F_CONNECT_TIMEOUT || deadline_passed(c))
		answer(c, 504, false);
	else
		answer(c, 502, false);
}

static void on_sent(sx_io *io, int64_t n, void *arg);

static void send_request(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	http_forward f = HTTP_FORWARD_INIT;
	size_t len, body = c->body_end - c->req.head_len;
	int64_t limit = wait_limit(c, px.cfg.attempt_timeout_ns);
	int rc;

	if (limit == 0) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	f.client = c->peer;
	/* uc->cap holds max_head + PX_HEAD_SLACK + PX_CHUNK, c->in max_head + PX_CHUNK: the head
	 * as forwarded and every body byte that came with it fit. */
	if (http_forward_head(&c->req, &f, uc->buf, uc->cap, &len) != HTTP_OK ||
	    uc->cap - len < body) {
		px_release(&c->permit, -ECANCELED, 0);
		px_uconn_close(uc);
		c->uc = NULL;
		answer(c, 431, true);
		return;
	}
	memcpy(uc->buf + len, c->in + c->req.head_len, body);
	c->sent = true;
	if ((rc = px_watch(&uc->s, limit)) != 0 ||
	    (rc = sx_io_write(uc->s.io, uc->buf, len + body, NULL, on_sent, c)) != 0)
		on_sent(uc->s.io, rc, c);
}

static void on_connected(sx_io *io, int64_t rc, void *arg)
{
	struct px_client *c = arg;
	int one = 1;

	if (rc < 0) {
		attempt_failed(c, rc == -ETIMEDOUT ? F_CONNECT_TIMEOUT : F_CONNECT, (int)rc);
		return;
	}
	if ((c->uc = px_uconn_new(c->permit.up, io)) == NULL) {
		attempt_failed(c, F_CONNECT, -ENOMEM);
		return;
	}
	(void)setsockopt(c->uc->s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	send_request(c);
}

static void connect_upstream(struct px_client *c)
{
	const struct sockaddr_in *a = px_upstream_addr(c->permit.up);
	int64_t limit = wait_limit(c, px.cfg.connect_timeout_ns);
	int rc;

	if (limit == 0) {
		attempt_failed(c, F_CONNECT_TIMEOUT, -ETIMEDOUT);
		return;
	}
	rc = sx_io_connect(px.pool, (const struct sockaddr *)a, sizeof(*a), limit, NULL,
	    on_connected, c);
	if (rc != 0)
		on_connected(NULL, rc, c);
}

/* The next attempt: an upstream with its permits, then a connection to it. */
static void attempt(struct px_client *c)
{
	bool first = c->attempt == 0;
	unsigned k;

	if (!px_pick(first, c->last_up, c->tried, &c->permit)) {
		give_up(c);
		return;
	}
	k = px_upstream_index(c->permit.up);
	c->tried |= (uint64_t)1 << k;
	c->last_up = k;
	c->attempt++;
	px_count(PX_ATTEMPTS, 1);
	px_count_up(k, false);
	if (!first)
		px_count(PX_RETRIES, 1);
	if (c->held != NULL)
		drop_held(c);
	c->t_attempt = px_now_ns();
	if ((c->uc = px_idle_pop(c->permit.up)) != NULL)
		send_request(c);
	else
		connect_upstream(c);
}

static bool retryable(const struct px_client *c, enum fail kind)
{
	unsigned on = px.cfg.retry_on;

	if (c->answered || c->attempt >= px.cfg.attempts || deadline_passed(c))
		return false;
	switch (kind) {
	case F_CONNECT:
	case F_CONNECT_TIMEOUT:
		/* Nothing of the request went out on this attempt. */
		return (on & PX_RETRY_CONNECT) && c->replayable;
	case F_RESET:
		return (on & PX_RETRY_RESET) && c->idempotent && c->replayable;
	case F_TIMEOUT:
		return (on & PX_RETRY_TIMEOUT) && c->idempotent && c->replayable;
	case F_STATUS:
		return c->idempotent && c->replayable;
	default:
		return false;
	}
}

static void on_backoff(void *arg, int status)
{
	struct px_client *c = arg;

	if (status != 0) {      /* the pool is shutting down */
		client_close(c);
		return;
	}
	attempt(c);
}

/*
 * The attempt failed before its answer reached the client: the permits go back with the
 * failure, the connection is closed (or held, with a retryable response), and the request is
 * retried if the rules and the budget allow, else answered.
 */
static void attempt_failed(struct px_client *c, enum fail kind, int code)
{
	static const enum px_counter counter[] = {
		[F_CONNECT] = PX_ERR_CONNECT, [F_CONNECT_TIMEOUT] = PX_ERR_CONNECT,
		[F_RESET] = PX_ERR_RESET, [F_TIMEOUT] = PX_ERR_TIMEOUT, [F_STATUS] = PX_ERR_STATUS,
		[F_BAD] = PX_ERR_BAD_RESPONSE
	};
	unsigned k = px_upstream_index(c->permit.up);

	px_release(&c->permit, code < 0 ? code : -EIO, (int64_t)(px_now_ns() - c->t_attempt));
	px_count_up(k, true);
	px_count(counter[kind], 1);
	if (kind == F_TIMEOUT || kind == F_CONNECT_TIMEOUT)
		px_count(PX_TIMEOUTS, 1);
	c->fail = kind;
	if (c->uc != NULL) {
		if (kind == F_STATUS)
			c->held = c->uc;
		else
			px_uconn_close(c->uc);
		c->uc = NULL;
	}
	if (!retryable(c, kind)) {
		give_up(c);
		return;
	}
	if (!sx_retry_budget_withdraw(&px.budget)) {
		px_count(PX_RETRIES_REFUSED, 1);
		give_up(c);
		return;
	}
	if (px.cfg.backoff_ns > 0) {
		uint64_t delay = sx_backoff_next(&c->bo);

		if (delay > (uint64_t)INT64_MAX / 2)
			delay = (uint64_t)INT64_MAX / 2;
		if (c->deadline != 0 && px_now_ns() + delay >= c->deadline) {
			give_up(c);
			return;
		}
		if (delay > 0 && sx_timer_add(px.pool, (int64_t)delay, 0, on_backoff, c, NULL) == 0)
			return;
		if (delay > 0) {    /* the pool is shutting down */
			client_close(c);
			return;
		}
	}
	attempt(c);
}

/* A reused connection that ends before any byte of the response was probably closed by the
 * upstream while it sat idle: the same attempt goes on with a fresh connection (for a request
 * that may be sent again). Anything else is a reset. */
static void upstream_broke(struct px_client *c, int code)
{
	struct px_uconn *uc = c->uc;

	if (uc->reused && uc->len == 0 && c->idempotent && c->replayable && !c->answered) {
		px_count(PX_STALE, 1);
		px_uconn_close(uc);
		c->uc = NULL;
		connect_upstream(c);
		return;
	}
	attempt_failed(c, F_RESET, code);
}

/* ---- the request body ------------------------------------------------------------------------- */

static void on_body_sent(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (late) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if (n < 0) {
		attempt_failed(c, F_RESET, (int)n);
		return;
	}
	if (c->body_done)
		read_response(c);
	else
		body_read(c);
}

static void on_body(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);
	size_t k;
	int64_t limit;
	int rc;

	(void)io;
	if (n <= 0 || late) {       /* the client left in the middle of its body */
		client_close(c);
		return;
	}
	c->in_len = (size_t)n;
	if (c->req.body == HTTP_BODY_LENGTH) {
		k = (uint64_t)n < c->body_left ? (size_t)n : (size_t)c->body_left;
		c->body_left -= k;
		c->body_done = c->body_left == 0;
	} else {
		rc = http_chunked_scan(&c->ck, c->in, (size_t)n, &k);
		if (rc == HTTP_ECHUNK) {
			px_release(&c->permit, -ECANCELED, 0);
			px_uconn_close(c->uc);
			c->uc = NULL;
			answer(c, 400, true);
			return;
		}
		c->body_done = rc == HTTP_OK;
	}
	c->body_end = k;
	if ((limit = wait_limit(c, px.cfg.attempt_timeout_ns)) == 0) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if ((rc = px_watch(&c->uc->s, limit)) != 0 ||
	    (rc = sx_io_write(c->uc->s.io, c->in, k, NULL, on_body_sent, c)) != 0)
		on_body_sent(c->uc->s.io, rc, c);
}

static void on_continue_sent(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (n < 0 || late) {
		client_close(c);
		return;
	}
	body_read(c);
}

/* The body goes on past the bytes that came with the head: read it from the client into the
 * input buffer, from its start (the head is forwarded already), and pass it on as it comes. */
static void body_read(struct px_client *c)
{
	int rc;

	c->replayable = false;
	if (c->req.expect_continue && !c->own_100 && c->req.minor > 0) {
		/* The client waits for 100 before it sends the body; the upstream's comes only after
		 * the head went out, and this proxy reads the upstream only once the body has: say it
		 * ourselves, and drop the upstream's. */
		c->own_100 = true;
		if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
		    (rc = sx_io_write(c->s.io, continue_100, sizeof(continue_100) - 1, NULL,
		    on_continue_sent, c)) != 0)
			on_continue_sent(c->s.io, rc, c);
		return;
	}
	c->in_len = 0;
	c->body_end = 0;
	if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
	    (rc = sx_io_read(c->s.io, c->in, c->in_cap, 1, NULL, on_body, c)) != 0)
		on_body(c->s.io, rc, c);
}

static void on_sent(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (late) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if (n < 0) {
		upstream_broke(c, (int)n);
		return;
	}
	if (c->body_done)
		read_response(c);
	else
		body_read(c);
}

/* ---- the response head ------------------------------------------------------------------------ */

static void on_resp_head(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (late) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if (n <= 0) {           /* reset, or closed before the head was complete */
		upstream_broke(c, n < 0 ? (int)n : -ECONNRESET);
		return;
	}
	c->uc->len += (size_t)n;
	resp_head(c);
}

static void resp_read_more(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	int64_t limit = wait_limit(c, px.cfg.attempt_timeout_ns);
	int rc;

	if (limit == 0) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if ((rc = px_watch(&uc->s, limit)) != 0 ||
	    (rc = sx_io_read(uc->s.io, uc->buf + uc->len, uc->cap - uc->len, 1, NULL, on_resp_head,
	    c)) != 0)
		on_resp_head(uc->s.io, rc, c);
}

static void read_response(struct px_client *c)
{
	c->uc->len = 0;
	http_msg_reset(&c->resp);
	resp_read_more(c);
}

/* The interim response at the start of uc->buf has been dealt with: parse what follows. */
static void interim_done(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	size_t h = c->resp.head_len;

	memmove(uc->buf, uc->buf + h, uc->len - h);
	uc->len -= h;
	http_msg_reset(&c->resp);
	resp_head(c);
}

static void on_interim_sent(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (n < 0 || late) {
		client_close(c);
		return;
	}
	interim_done(c);
}

/* A 1xx: passed on (but not to an HTTP/1.0 client, nor a 100 when we sent our own). */
static void interim(struct px_client *c)
{
	http_forward f = HTTP_FORWARD_INIT;
	size_t len;
	int rc;

	if (c->resp.status == 101) {    /* never asked for: Upgrade is not forwarded */
		attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (c->req.minor == 0 || (c->resp.status == 100 && c->own_100)) {
		interim_done(c);
		return;
	}
	if (http_forward_head(&c->resp, &f, c->out, c->out_cap, &len) != HTTP_OK) {
		attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	c->answered = true;
	if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
	    (rc = sx_io_write(c->s.io, c->out, len, NULL, on_interim_sent, c)) != 0)
		on_interim_sent(c->s.io, rc, c);
}

static void resp_head(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	int rc = http_parse_response(&c->resp, uc->buf, uc->len, c->req.head_method);

	if (rc == HTTP_INCOMPLETE) {
		if (uc->len < uc->cap)
			resp_read_more(c);
		else
			attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (rc != HTTP_OK) {
		attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (c->resp.status < 200) {
		interim(c);
		return;
	}
	if (px.cfg.retry_status[c->resp.status]) {
		attempt_failed(c, F_STATUS, -EIO);
		return;
	}
	respond(c);
}

/* ---- the response body ------------------------------------------------------------------------ */

/*
 * Where the response body ends in the n bytes at p (read from the upstream): the bytes to pass
 * on (*k: for a decoded body the data moved to the front of p), whether the body is over
 * (c->resp_done) and whether bytes followed it (the upstream sent more than one response: its
 * connection is not reused). HTTP_OK, or HTTP_ECHUNK for a bad chunked body.
 */
static int frame(struct px_client *c, char *p, size_t n, size_t *k, bool *extra)
{
	size_t used, data;
	int rc;

	*extra = false;
	switch (c->resp.body) {
	case HTTP_BODY_NONE:
		*k = 0;
		*extra = n > 0;
		c->resp_done = true;
		return HTTP_OK;
	case HTTP_BODY_LENGTH:
		*k = n < c->resp_left ? n : (size_t)c->resp_left;
		c->resp_left -= *k;
		*extra = n > *k;
		c->resp_done = c->resp_left == 0;
		return HTTP_OK;
	case HTTP_BODY_CHUNKED:
		if (c->decode) {
			rc = http_chunked_decode(&c->rck, p, n, &used, &data);
			*k = data;
		} else {
			rc = http_chunked_scan(&c->rck, p, n, &used);
			*k = used;
		}
		if (rc == HTTP_ECHUNK)
			return rc;
		*extra = used < n;
		c->resp_done = rc == HTTP_OK;
		return HTTP_OK;
	default:                /* HTTP_BODY_EOF: everything until the upstream closes */
		*k = n;
		c->resp_done = false;
		return HTTP_OK;
	}
}

/* The response is over: the permits back with a success, the upstream connection kept or
 * closed, then the next request. */
static void finish(struct px_client *c)
{
	struct px_uconn *uc = c->uc;

	if (c->permit.up != NULL) {     /* not a held response, whose attempt failed */
		px_release(&c->permit, 0, (int64_t)(px_now_ns() - c->t_attempt));
		sx_retry_budget_deposit(&px.budget);
	}
	c->uc = NULL;
	if (c->up_keep)
		px_idle_push(uc);
	else
		px_uconn_close(uc);
	next_request(c);
}

/* The response broke after its head went to the client: nothing to answer, so both
 * connections close (the client sees a truncated response). */
static void broke_midway(struct px_client *c, enum fail kind, int code)
{
	if (c->permit.up != NULL) {     /* (a held response's attempt is counted already) */
		px_count_up(px_upstream_index(c->permit.up), true);
		px_release(&c->permit, code, (int64_t)(px_now_ns() - c->t_attempt));
		px_count(kind == F_TIMEOUT ? PX_ERR_TIMEOUT : kind == F_BAD ?
		    PX_ERR_BAD_RESPONSE : PX_ERR_RESET, 1);
		if (kind == F_TIMEOUT)
			px_count(PX_TIMEOUTS, 1);
	}
	client_close(c);
}

static void resp_body_read(struct px_client *c);

static void on_resp_written(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (n < 0 || late) {    /* the client is gone: the upstream did its part */
		if (c->resp_done && c->permit.up != NULL)
			px_release(&c->permit, 0, (int64_t)(px_now_ns() - c->t_attempt));
		if (c->resp_done && c->up_keep) {
			px_idle_push(c->uc);
			c->uc = NULL;
		}
		client_close(c);
		return;
	}
	if (c->resp_done)
		finish(c);
	else
		resp_body_read(c);
}

static void write_client(struct px_client *c, const char *p, size_t len)
{
	int rc;

	if ((rc = px_watch(&c->s, px.cfg.client_idle_ns)) != 0 ||
	    (rc = sx_io_write(c->s.io, p, len, NULL, on_resp_written, c)) != 0)
		on_resp_written(c->s.io, rc, c);
}

static void on_resp_body(sx_io *io, int64_t n, void *arg)
{
	struct px_client *c = arg;
	struct px_uconn *uc = c->uc;
	bool late = px_unwatch(&uc->s), extra;
	size_t k;

	(void)io;
	if (late) {
		broke_midway(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if (n < 0) {
		broke_midway(c, F_RESET, (int)n);
		return;
	}
	if (n == 0) {
		if (c->resp.body != HTTP_BODY_EOF) {
			broke_midway(c, F_RESET, -ECONNRESET);
			return;
		}
		c->resp_done = true;    /* a body read until close ends here */
		c->up_keep = false;
		finish(c);
		return;
	}
	if (frame(c, uc->buf, (size_t)n, &k, &extra) != HTTP_OK) {
		broke_midway(c, F_BAD, -EPROTO);
		return;
	}
	if (extra)
		c->up_keep = false;
	if (k > 0)
		write_client(c, uc->buf, k);
	else if (c->resp_done)
		finish(c);
	else
		resp_body_read(c);
}

static void resp_body_read(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	int64_t limit = wait_limit(c, px.cfg.attempt_timeout_ns);
	int rc;

	if (limit == 0) {
		broke_midway(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	if ((rc = px_watch(&uc->s, limit)) != 0 ||
	    (rc = sx_io_read(uc->s.io, uc->buf, uc->cap, 1, NULL, on_resp_body, c)) != 0)
		on_resp_body(uc->s.io, rc, c);
}

/* The final response (c->resp, in c->uc->buf): its head as forwarded, with the body bytes that
 * came with it, goes to the client in one write; the rest follows as it comes. */
static void respond(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	const http_msg *r = &c->resp;
	http_forward f = HTTP_FORWARD_INIT;
	bool v10 = c->req.minor == 0, extra;
	size_t hlen, k, avail = uc->len - r->head_len;

	c->decode = v10 && r->body == HTTP_BODY_CHUNKED;
	c->keep = c->req.keep_alive && c->body_done && r->body != HTTP_BODY_EOF && !c->decode;
	f.connection = !c->keep ? HTTP_CONN_CLOSE : v10 ? HTTP_CONN_KEEP_ALIVE : HTTP_CONN_NONE;
	f.drop_framing = c->decode;
	c->resp_left = r->content_length;
	if (r->body == HTTP_BODY_CHUNKED)
		http_chunked_init(&c->rck);
	if (http_forward_head(r, &f, c->out, c->out_cap, &hlen) != HTTP_OK ||
	    frame(c, uc->buf + r->head_len, avail, &k, &extra) != HTTP_OK ||
	    c->out_cap - hlen < k) {
		if (c->permit.up != NULL) {
			attempt_failed(c, F_BAD, -EPROTO);
		} else {                /* a held response: its attempt is counted already */
			px_uconn_close(uc);
			c->uc = NULL;
			answer(c, 502, false);
		}
		return;
	}
	memcpy(c->out + hlen, uc->buf + r->head_len, k);
	c->up_keep = r->keep_alive && !extra;
	count_status(r->status);
	c->in_request = false;
	c->answered = true;
	write_client(c, c->out, hlen + k);
}
