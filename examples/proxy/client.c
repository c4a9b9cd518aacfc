/*
 * A client connection: a state machine that serves one request at a time (pipelined requests
 * wait in the input buffer for their turn). This file has the connection, its requests, the
 * attempts and retries and the request body; response.c the response (client.h).
 *
 *   head      read until a request head parses (http_parse_request); a bad one gets 400 / 431 /
 *             505 and the connection closes; GET /metrics is answered here
 *   admit     --max-inflight (503), --rate-limit (429), --client-rate-limit (429)
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

#include "client.h"

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void read_head(struct px_client *c);
static void parse_head(struct px_client *c);
static void attempt(struct px_client *c);
static void pump_request(struct px_client *c);

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
	    inet_ntop(AF_INET, &a.sin_addr, c->peer, sizeof(c->peer)) == NULL) {
		strcpy(c->peer, "unknown");
		c->peer_key = UINT64_MAX - 1; /* every peer of unknown address shares one limit */
	} else {
		c->peer_key = ntohl(a.sin_addr.s_addr);
	}
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
void px_client_close(struct px_client *c)
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

void px_count_status(int status)
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
int64_t px_wait_limit(const struct px_client *c, int64_t limit)
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
void px_wait_read(struct px_client *c, struct px_sock *s, int64_t limit, sx_io_fn fn)
{
	if (px_wait(s, SX_IO_READABLE, limit, fn, c) != 0)
		px_client_close(c);
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
				px_client_close(c);
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
		px_client_close(c);
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
int px_send_try(struct px_client *c, struct px_sock *s, const char *p, size_t len,
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
void px_send_then(struct px_client *c, struct px_sock *s, const char *p, size_t len,
    int64_t limit, px_next next)
{
	int rc = px_send_try(c, s, p, len, limit, next);

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
		px_client_close(c);
		return;
	}
	read_head(c);
}

static void read_head(struct px_client *c)
{
	ssize_t n = px_read(&c->s, c->in + c->in_len, c->in_cap - c->in_len);

	if (n == -EAGAIN) {
		px_wait_read(c, &c->s, px.cfg.client_idle_ns, on_head_ready);
		return;
	}
	if (n <= 0) {           /* end of file or an error */
		px_client_close(c);
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
		px_client_close(c);
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
			px_client_close(c);
			return;
		}
		if (n == -EAGAIN) {
			px_wait_read(c, &c->s, (int64_t)(c->deadline - now), on_linger_ready);
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
void px_next_request(struct px_client *c)
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
		px_client_close(c);
}

/* ---- answers of our own ---------------------------------------------------------------------- */

static void own_sent(struct px_client *c, int err)
{
	if (err != 0) {
		px_client_close(c);
		return;
	}
	px_next_request(c);
}

/* Sends out[at, at + len), a complete answer of status (counted), then goes on to the next request
 * or closes (c->keep). */
static void send_own(struct px_client *c, size_t at, size_t len, int status)
{
	px_count_status(status);
	c->in_request = false;
	c->answered = true;
	px_send_then(c, &c->s, c->out + at, len, px.cfg.client_idle_ns, own_sent);
}

/*
 * Answers with a short response of status. The connection stays open only if the client wants
 * it, it is not HTTP/1.0 (this answer has no keep-alive field) and the request's body has been
 * read to its end (else where the next request starts is unknown); close forces the end.
 */
void px_answer(struct px_client *c, int status, bool close)
{
	size_t len;

	if (c->answered) {      /* a 1xx went out already: the client must not get a second head */
		px_client_close(c);
		return;
	}
	c->keep = !close && c->req.keep_alive && c->req.minor > 0 && c->body_done;
	if (http_simple_response(status, !c->keep, c->out, c->out_cap, &len) != HTTP_OK) {
		px_client_close(c);
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
		px_answer(c, 500, false);
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
			px_answer(c, 400, true);
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
		px_answer(c, 503, false);
		return;
	}
	if (px.rate != NULL && sx_ratelimit_try(px.rate, 1) != 0) {
		px_count(PX_RATE_LIMITED, 1);
		px_answer(c, 429, false);
		return;
	}
	/* Per client: refused (SX_ERATE_LIMITED) or no room to track one more address (-ENOSPC,
	 * more clients active than --client-rate-keys): 429 either way, fail closed. */
	if (px.client_rate != NULL && sx_ratelimit_keyed_try(px.client_rate, c->peer_key, 1) != 0) {
		px_count(PX_CLIENT_LIMITED, 1);
		px_answer(c, 429, false);
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
		px_answer(c, http_error_status(rc, true), true);
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
		px_respond(c);
		return;
	}
	if (deadline_passed(c) && c->fail != F_TIMEOUT && c->fail != F_CONNECT_TIMEOUT)
		px_count(PX_TIMEOUTS, 1);
	if (c->fail == F_NONE)          /* no attempt could begin: every upstream open or full */
		px_answer(c, 503, false);
	else if (c->fail == F_TIMEOUT || c->fail == F_CONNECT_TIMEOUT || deadline_passed(c))
		px_answer(c, 504, false);
	else
		px_answer(c, 502, false);
}

/*
 * A reused connection that ends before any byte of the response, with an end of file or EPIPE
 * (a reset after the upstream's FIN), was closed by the upstream while it sat idle: the same
 * attempt goes on with a fresh connection (for a request that may be sent again). Anything else,
 * a reset of a connection the upstream still had open above all, is the attempt's failure.
 */
static void connect_upstream(struct px_client *c);

void px_upstream_broke(struct px_client *c, int code)
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
	px_attempt_failed(c, F_RESET, code == 0 ? -ECONNRESET : code);
}

static void request_sent(struct px_client *c, int err)
{
	if (err == -ETIMEDOUT) {
		px_attempt_failed(c, F_TIMEOUT, err);
		return;
	}
	if (err < 0) {
		px_upstream_broke(c, err);
		return;
	}
	if (c->body_done)
		px_read_response(c);
	else
		pump_request(c);
}

static void send_request(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	http_forward f = HTTP_FORWARD_INIT;
	size_t len, body = c->body_end - c->req.head_len;
	int64_t limit = px_wait_limit(c, px.cfg.attempt_timeout_ns);

	if (limit == 0) {
		px_attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
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
		px_answer(c, 431, true);
		return;
	}
	memcpy(uc->buf + len, c->in + c->req.head_len, body);
	c->sent = true;
	px_send_then(c, &uc->s, uc->buf, len + body, limit, request_sent);
}

static void on_connected(sx_io *io, int64_t rc, void *arg)
{
	struct px_client *c = arg;
	int one = 1;

	if (rc == -ESHUTDOWN) {
		px_client_close(c);
		return;
	}
	if (rc < 0) {
		px_attempt_failed(c, rc == -ETIMEDOUT ? F_CONNECT_TIMEOUT : F_CONNECT, (int)rc);
		return;
	}
	if ((c->uc = px_uconn_new(c->permit.up, c->s.pool, io)) == NULL) {
		px_attempt_failed(c, F_CONNECT, -ENOMEM);
		return;
	}
	(void)setsockopt(c->uc->s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	send_request(c);
}

static void connect_upstream(struct px_client *c)
{
	const struct sockaddr_in *a = px_upstream_addr(c->permit.up);
	int64_t limit = px_wait_limit(c, px.cfg.connect_timeout_ns);
	int rc;

	if (limit == 0) {
		px_attempt_failed(c, F_CONNECT_TIMEOUT, -ETIMEDOUT);
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
		px_client_close(c);
		return;
	}
	attempt(c);
}

/*
 * The attempt failed before its answer reached the client: the permits go back with the
 * failure, the connection is closed (or held, with a retryable response), and the request is
 * retried if the rules and the budget allow, else answered.
 */
void px_attempt_failed(struct px_client *c, enum fail kind, int code)
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
			px_client_close(c);
			return;
		}
	}
	attempt(c);
}

/* ---- the request body ------------------------------------------------------------------------ */

static void body_sent(struct px_client *c, int err)
{
	if (err != 0) {
		px_attempt_failed(c, err == -ETIMEDOUT ? F_TIMEOUT : F_RESET, err);
		return;
	}
	if (c->body_done)
		px_read_response(c);
	else
		pump_request(c);
}

static void on_body_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->s);

	(void)io;
	if (result < 0 || late) {
		px_client_close(c);
		return;
	}
	pump_request(c);
}

static void continue_sent(struct px_client *c, int err)
{
	if (err != 0) {
		px_client_close(c);
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
		px_send_then(c, &c->s, continue_100, sizeof(continue_100) - 1, px.cfg.client_idle_ns,
		    continue_sent);
		return;
	}
	for (;;) {
		ssize_t n = px_read(&c->s, c->in, c->in_cap);
		int64_t limit;
		size_t k;
		int rc;

		if (n == -EAGAIN) {
			px_wait_read(c, &c->s, px.cfg.client_idle_ns, on_body_ready);
			return;
		}
		if (n <= 0) {           /* the client left in the middle of its body */
			px_client_close(c);
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
				px_answer(c, 400, true);
				return;
			}
			c->body_done = rc == HTTP_OK;
		}
		c->body_end = k;
		if ((limit = px_wait_limit(c, px.cfg.attempt_timeout_ns)) == 0) {
			px_attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
			return;
		}
		rc = px_send_try(c, &c->uc->s, c->in, k, limit, body_sent);
		if (rc == 0)
			return;
		if (rc < 0) {
			body_sent(c, rc);
			return;
		}
		if (c->body_done) {
			px_read_response(c);
			return;
		}
	}
}

