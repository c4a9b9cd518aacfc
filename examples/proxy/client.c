/*
 * A client connection: a state machine that serves one request at a time (pipelined requests
 * wait in the input buffer for their turn).
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
 * Each step does its I/O at once (px_read, px_write: non-blocking) and goes on to the next step
 * while it can; when the socket has nothing to give or no room it starts one wait (px_wait) and
 * returns, and the wait's callback, a task on the pool, resumes it. At most one wait is pending
 * per client, so a client's fields are touched by one task at a time. Waits on the client are
 * limited by --client-idle-ms, waits on the upstream by --attempt-timeout-ms (or what is left of
 * --request-timeout-ms, or --retry-slow-ms), both by the watchdog of sock.c. A wait that cannot
 * start, or that ends without readiness, means the pool is stopping: the client closes. Bodies
 * are pumped in loops (read a chunk, write it, read the next), so a long body never deepens the
 * stack; a pipelined request starts in a task of its own for the same reason.
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

struct px_client;
/* What follows a write: err 0 when every byte went out, else -errno or -ETIMEDOUT. */
typedef void (*px_next)(struct px_client *c, int err);

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

	/* the write in progress (send_try) */
	struct px_sock *w_sock;
	const char *w_p;
	size_t w_len;
	int64_t w_limit;
	px_next w_next;

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
static void pump_request(struct px_client *c);
static void pump_response(struct px_client *c);

/* ---- life cycle ------------------------------------------------------------------------------ */

static void client_free(struct px_sock *s)
{
	struct px_client *c = SX_CONTAINER_OF(s, struct px_client, s);

	free(c->in);
	free(c->out);
	free(c);
	atomic_fetch_sub_explicit(&px.clients, 1, memory_order_relaxed);
}

void px_client_start(sx_pool *pool, int fd)
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
	    px_sock_open(&c->s, pool, fd, client_free) != 0) {
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
		if (px.cfg.max_inflight > 0)
			atomic_fetch_sub_explicit(&px.inflight, 1, memory_order_relaxed);
		else
			px_count(PX_ENDED, 1);
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

/* ---- waits and writes ------------------------------------------------------------------------ */

/* Waits until s is readable (at most limit without a byte), then fn(io, events, c). A wait that
 * cannot start means the pool is stopping: the client closes instead. */
static void wait_read(struct px_client *c, struct px_sock *s, int64_t limit, sx_io_fn fn)
{
	if (px_wait(s, SX_IO_READABLE, limit, fn, c) != 0)
		client_close(c);
}

static void on_writable(sx_io *io, int result, void *arg);

/* Writes what is left of the write in progress. 1: all of it went out (w_next not called); 0:
 * it waits for room (w_next will be called), or the pool is stopping and the client closed; < 0:
 * the write failed (w_next not called). */
static int send_rest(struct px_client *c)
{
	while (c->w_len > 0) {
		ssize_t n = px_write(c->w_sock, c->w_p, c->w_len);

		if (n == -EAGAIN) {
			if (px_wait(c->w_sock, SX_IO_WRITABLE, c->w_limit, on_writable, c) != 0)
				client_close(c);
			return 0;
		}
		if (n < 0)
			return (int)n;
		c->w_p += n;
		c->w_len -= (size_t)n;
	}
	return 1;
}

static void on_writable(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(c->w_sock);
	int rc;

	(void)io;
	if (result < 0) {
		client_close(c);
		return;
	}
	if (late) {
		c->w_next(c, -ETIMEDOUT);
		return;
	}
	if ((rc = send_rest(c)) != 0)
		c->w_next(c, rc > 0 ? 0 : rc);
}

/* Starts writing p[0..len) to s, each wait for room limited by limit; next follows it. Returns
 * as send_rest: on 1 and < 0 the caller goes on itself (next is not called). */
static int send_try(struct px_client *c, struct px_sock *s, const char *p, size_t len,
    int64_t limit, px_next next)
{
	c->w_sock = s;
	c->w_p = p;
	c->w_len = len;
	c->w_limit = limit;
	c->w_next = next;
	return send_rest(c);
}

/* send_try, and next at once when the write did not wait. */
static void send_then(struct px_client *c, struct px_sock *s, const char *p, size_t len,
    int64_t limit, px_next next)
{
	int rc = send_try(c, s, p, len, limit, next);

	if (rc != 0)
		next(c, rc > 0 ? 0 : rc);
}

/* ---- the next request ------------------------------------------------------------------------ */

static void on_head_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (result < 0 || late) {       /* the pool is stopping, or idle too long */
		client_close(c);
		return;
	}
	read_head(c);
}

static void read_head(struct px_client *c)
{
	ssize_t n = px_read(&c->s, c->in + c->in_len, c->in_cap - c->in_len);

	if (n == -EAGAIN) {
		wait_read(c, &c->s, px.cfg.client_idle_ns, on_head_ready);
		return;
	}
	if (n <= 0) {           /* end of file or an error */
		client_close(c);
		return;
	}
	c->in_len += (size_t)n;
	parse_head(c);
}

/*
 * Closing after an answer: the write side is shut down first and what the client still sends is
 * read and dropped until it closes too (or for a second at most), so that unread request bytes
 * do not make the kernel reset the connection and destroy the answer before the client has read
 * it (a head too large, a body not read, pipelined requests after a "Connection: close").
 */
static void linger_read(struct px_client *c);

static void on_linger_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (result < 0 || late) {
		client_close(c);
		return;
	}
	linger_read(c);
}

static void linger_read(struct px_client *c)
{
	for (;;) {
		ssize_t n = px_read(&c->s, c->in, c->in_cap);
		uint64_t now = px_now_ns();

		if (n == 0 || (n < 0 && n != -EAGAIN) || now >= c->deadline) {
			client_close(c);
			return;
		}
		if (n == -EAGAIN) {
			wait_read(c, &c->s, (int64_t)(c->deadline - now), on_linger_ready);
			return;
		}
	}
}

static void linger(struct px_client *c)
{
	(void)shutdown(c->s.fd, SHUT_WR);
	c->deadline = px_now_ns() + 1000000000u;
	linger_read(c);
}

static void pipelined(void *arg)
{
	parse_head(arg);
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
	if (rest == 0) {
		read_head(c);
		return;
	}
	/* A pipelined request: in a task of its own, so that many of them do not nest. */
	if (sx_pool_submit(c->s.pool, pipelined, c) != 0)
		client_close(c);
}

/* ---- answers of our own ---------------------------------------------------------------------- */

static void own_sent(struct px_client *c, int err)
{
	if (err != 0) {
		client_close(c);
		return;
	}
	next_request(c);
}

/* Sends out[at, at + len), a complete answer of status (counted), then goes on to the next request
 * or closes (c->keep). */
static void send_own(struct px_client *c, size_t at, size_t len, int status)
{
	count_status(status);
	c->in_request = false;
	c->answered = true;
	send_then(c, &c->s, c->out + at, len, px.cfg.client_idle_ns, own_sent);
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

/* ---- a request ------------------------------------------------------------------------------- */

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
	if (px.cfg.max_inflight == 0) {
		px_count(PX_BEGUN, 1);
	} else if (atomic_fetch_add_explicit(&px.inflight, 1, memory_order_relaxed) >=
	    px.cfg.max_inflight) {
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

/* ---- attempts -------------------------------------------------------------------------------- */

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

/*
 * A reused connection that ends before any byte of the response, with an end of file or EPIPE
 * (a reset after the upstream's FIN), was closed by the upstream while it sat idle: the same
 * attempt goes on with a fresh connection (for a request that may be sent again). Anything else,
 * a reset of a connection the upstream still had open above all, is the attempt's failure.
 */
static void connect_upstream(struct px_client *c);

static void upstream_broke(struct px_client *c, int code)
{
	struct px_uconn *uc = c->uc;

	if (uc->reused && uc->len == 0 && (code == 0 || code == -EPIPE) && c->idempotent &&
	    c->replayable && !c->answered) {
		px_count(PX_STALE, 1);
		px_uconn_close(uc);
		c->uc = NULL;
		connect_upstream(c);
		return;
	}
	attempt_failed(c, F_RESET, code == 0 ? -ECONNRESET : code);
}

static void request_sent(struct px_client *c, int err)
{
	if (err == -ETIMEDOUT) {
		attempt_failed(c, F_TIMEOUT, err);
		return;
	}
	if (err < 0) {
		upstream_broke(c, err);
		return;
	}
	if (c->body_done)
		read_response(c);
	else
		pump_request(c);
}

static void send_request(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	http_forward f = HTTP_FORWARD_INIT;
	size_t len, body = c->body_end - c->req.head_len;
	int64_t limit = wait_limit(c, px.cfg.attempt_timeout_ns);

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
	send_then(c, &uc->s, uc->buf, len + body, limit, request_sent);
}

static void on_connected(sx_io *io, int64_t rc, void *arg)
{
	struct px_client *c = arg;
	int one = 1;

	if (rc == -ESHUTDOWN) {
		client_close(c);
		return;
	}
	if (rc < 0) {
		attempt_failed(c, rc == -ETIMEDOUT ? F_CONNECT_TIMEOUT : F_CONNECT, (int)rc);
		return;
	}
	if ((c->uc = px_uconn_new(c->permit.up, c->s.pool, io)) == NULL) {
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
	rc = sx_io_connect(c->s.pool, (const struct sockaddr *)a, sizeof(*a), limit, NULL,
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
		if (delay > 0 && sx_timer_add(c->s.pool, (int64_t)delay, 0, on_backoff, c, NULL) == 0)
			return;
		if (delay > 0) {    /* the pool is shutting down */
			client_close(c);
			return;
		}
	}
	attempt(c);
}

/* ---- the request body ------------------------------------------------------------------------ */

static void body_sent(struct px_client *c, int err)
{
	if (err != 0) {
		attempt_failed(c, err == -ETIMEDOUT ? F_TIMEOUT : F_RESET, err);
		return;
	}
	if (c->body_done)
		read_response(c);
	else
		pump_request(c);
}

static void on_body_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (result < 0 || late) {
		client_close(c);
		return;
	}
	pump_request(c);
}

static void continue_sent(struct px_client *c, int err)
{
	if (err != 0) {
		client_close(c);
		return;
	}
	pump_request(c);
}

/*
 * The body goes on past the bytes that came with the head: read it from the client into the
 * input buffer, from its start (the head is forwarded already), and pass each piece on as it
 * comes, in a loop until the body's end or a wait.
 */
static void pump_request(struct px_client *c)
{
	c->replayable = false;
	if (c->req.expect_continue && !c->own_100 && c->req.minor > 0) {
		/* The client waits for 100 before it sends the body; the upstream's comes only after
		 * the head went out, and this proxy reads the upstream only once the body has: say it
		 * ourselves, and drop the upstream's. */
		c->own_100 = true;
		send_then(c, &c->s, continue_100, sizeof(continue_100) - 1, px.cfg.client_idle_ns,
		    continue_sent);
		return;
	}
	for (;;) {
		ssize_t n = px_read(&c->s, c->in, c->in_cap);
		int64_t limit;
		size_t k;
		int rc;

		if (n == -EAGAIN) {
			wait_read(c, &c->s, px.cfg.client_idle_ns, on_body_ready);
			return;
		}
		if (n <= 0) {           /* the client left in the middle of its body */
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
		rc = send_try(c, &c->uc->s, c->in, k, limit, body_sent);
		if (rc == 0)
			return;
		if (rc < 0) {
			body_sent(c, rc);
			return;
		}
		if (c->body_done) {
			read_response(c);
			return;
		}
	}
}

/* ---- the response head ----------------------------------------------------------------------- */

/*
 * --retry-slow-ms: while the request may still be retried elsewhere, an attempt waits that long
 * for its response head, not the whole attempt timeout; then it ends as a timeout and the retry
 * goes to the next upstream. So a client whose request went to an upstream that has turned slow
 * is not held for the slow answer (the circuit learns of it from the timeouts meanwhile).
 */
static int64_t head_limit(const struct px_client *c)
{
	int64_t limit = wait_limit(c, px.cfg.attempt_timeout_ns), left;

	if (px.cfg.retry_slow_ns > 0 && limit > 0 && px.cfg.n_up > 1 && !c->answered &&
	    c->attempt < px.cfg.attempts && c->idempotent && c->replayable &&
	    (px.cfg.retry_on & PX_RETRY_TIMEOUT) && sx_retry_budget_tokens(&px.budget) > 0) {
		left = px.cfg.retry_slow_ns - (int64_t)(px_now_ns() - c->t_attempt);
		if (left < 1)
			left = 1;
		if (left < limit)
			limit = left;
	}
	return limit;
}

static void resp_read(struct px_client *c);

static void on_resp_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (result < 0) {
		client_close(c);
		return;
	}
	if (late) {
		attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	resp_read(c);
}

static void resp_read(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	ssize_t n = px_read(&uc->s, uc->buf + uc->len, uc->cap - uc->len);
	int64_t limit;

	if (n == -EAGAIN) {
		if ((limit = head_limit(c)) == 0)
			attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		else
			wait_read(c, &uc->s, limit, on_resp_ready);
		return;
	}
	if (n <= 0) {           /* reset, or closed before the head was complete */
		upstream_broke(c, (int)n);     /* 0: end of file */
		return;
	}
	uc->len += (size_t)n;
	resp_head(c);
}

static void read_response(struct px_client *c)
{
	c->uc->len = 0;
	http_msg_reset(&c->resp);
	resp_read(c);
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

static void interim_sent(struct px_client *c, int err)
{
	if (err != 0) {
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
	send_then(c, &c->s, c->out, len, px.cfg.client_idle_ns, interim_sent);
}

static void resp_head(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	int rc = http_parse_response(&c->resp, uc->buf, uc->len, c->req.head_method);

	if (rc == HTTP_INCOMPLETE) {
		if (uc->len < uc->cap)
			resp_read(c);
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

/* ---- the response body ----------------------------------------------------------------------- */

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

/* A write of the response to the client ended. */
static void resp_sent(struct px_client *c, int err)
{
	if (err != 0) {         /* the client is gone: the upstream did its part */
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
		pump_response(c);
}

static void on_pump_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (result < 0) {
		client_close(c);
		return;
	}
	if (late) {
		broke_midway(c, F_TIMEOUT, -ETIMEDOUT);
		return;
	}
	pump_response(c);
}

/* The body after the bytes that came with the head: read from the upstream and written to the
 * client piece by piece, in a loop until the body's end or a wait. */
static void pump_response(struct px_client *c)
{
	struct px_uconn *uc = c->uc;

	for (;;) {
		ssize_t n = px_read(&uc->s, uc->buf, uc->cap);
		int64_t limit;
		bool extra;
		size_t k;
		int rc;

		if (n == -EAGAIN) {
			if ((limit = wait_limit(c, px.cfg.attempt_timeout_ns)) == 0)
				broke_midway(c, F_TIMEOUT, -ETIMEDOUT);
			else
				wait_read(c, &uc->s, limit, on_pump_ready);
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
		if (k > 0) {
			rc = send_try(c, &c->s, uc->buf, k, px.cfg.client_idle_ns, resp_sent);
			if (rc == 0)
				return;
			if (rc < 0) {
				resp_sent(c, rc);
				return;
			}
		}
		if (c->resp_done) {
			finish(c);
			return;
		}
	}
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
	send_then(c, &c->s, c->out, hlen + k, px.cfg.client_idle_ns, resp_sent);
}
