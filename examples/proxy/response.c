/*
 * A request's response (client.h): its head read from the upstream under the attempt's time
 * limit (or --retry-slow-ms), 1xx responses passed on, a retryable status handed back to the
 * retry rule (client.c), the final head forwarded with the body bytes that came with it, the rest
 * of the body pumped to the client in a loop, and the end: the permits released with the
 * attempt's result and latency, the upstream connection kept for reuse or closed, the next
 * request.
 */
#include <errno.h>
#include <string.h>

#include "client.h"

/* ---- the response head ----------------------------------------------------------------------- */

/*
 * --retry-slow-ms: while the request may still be retried elsewhere, an attempt waits that long
 * for its response head, not the whole attempt timeout; then it ends as a timeout and the retry
 * goes to the next upstream. So a client whose request went to an upstream that has turned slow
 * is not held for the slow px_answer (the circuit learns of it from the timeouts meanwhile).
 */
static int64_t head_limit(const struct px_client *c)
{
	int64_t limit = px_wait_limit(c, px.cfg.attempt_timeout_ns), left;

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
static void resp_head(struct px_client *c);
static void pump_response(struct px_client *c);

static void on_resp_ready(sx_io *io, int result, void *arg)
{
	struct px_client *c = arg;
	bool late = px_unwatch(&c->uc->s);

	(void)io;
	if (result < 0) {
		px_client_close(c);
		return;
	}
	if (late) {
		px_attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
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
			px_attempt_failed(c, F_TIMEOUT, -ETIMEDOUT);
		else
			px_wait_read(c, &uc->s, limit, on_resp_ready);
		return;
	}
	if (n <= 0) {           /* reset, or closed before the head was complete */
		px_upstream_broke(c, (int)n);     /* 0: end of file */
		return;
	}
	uc->len += (size_t)n;
	resp_head(c);
}

void px_read_response(struct px_client *c)
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
		px_client_close(c);
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
		px_attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (c->req.minor == 0 || (c->resp.status == 100 && c->own_100)) {
		interim_done(c);
		return;
	}
	if (http_forward_head(&c->resp, &f, c->out, c->out_cap, &len) != HTTP_OK) {
		px_attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	c->answered = true;
	px_send_then(c, &c->s, c->out, len, px.cfg.client_idle_ns, interim_sent);
}

static void resp_head(struct px_client *c)
{
	struct px_uconn *uc = c->uc;
	int rc = http_parse_response(&c->resp, uc->buf, uc->len, c->req.head_method);

	if (rc == HTTP_INCOMPLETE) {
		if (uc->len < uc->cap)
			resp_read(c);
		else
			px_attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (rc != HTTP_OK) {
		px_attempt_failed(c, F_BAD, -EPROTO);
		return;
	}
	if (c->resp.status < 200) {
		interim(c);
		return;
	}
	if (px.cfg.retry_status[c->resp.status]) {
		px_attempt_failed(c, F_STATUS, -EIO);
		return;
	}
	px_respond(c);
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
	px_next_request(c);
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
	px_client_close(c);
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
		px_client_close(c);
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
		px_client_close(c);
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
			if ((limit = px_wait_limit(c, px.cfg.attempt_timeout_ns)) == 0)
				broke_midway(c, F_TIMEOUT, -ETIMEDOUT);
			else
				px_wait_read(c, &uc->s, limit, on_pump_ready);
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
			rc = px_send_try(c, &c->s, uc->buf, k, px.cfg.client_idle_ns, resp_sent);
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
void px_respond(struct px_client *c)
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
			px_attempt_failed(c, F_BAD, -EPROTO);
		} else {                /* a held response: its attempt is counted already */
			px_uconn_close(uc);
			c->uc = NULL;
			px_answer(c, 502, false);
		}
		return;
	}
	memcpy(c->out + hlen, uc->buf + r->head_len, k);
	c->up_keep = r->keep_alive && !extra;
	px_count_status(r->status);
	c->in_request = false;
	c->answered = true;
	px_send_then(c, &c->s, c->out, hlen + k, px.cfg.client_idle_ns, resp_sent);
}
