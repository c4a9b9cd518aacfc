/*
 * A client connection's state, shared by client.c (the connection, its requests, the attempts
 * and retries, the request body) and response.c (the response: its head, 1xx, the body, the end
 * of the request). Nothing else includes it. The functions below are the steps one file hands
 * over to the other; like every step they run in a task of the connection (or the step before)
 * and leave the connection to whatever wait they start.
 */
#ifndef STRIX_EXAMPLES_PROXY_CLIENT_H
#define STRIX_EXAMPLES_PROXY_CLIENT_H

#include <arpa/inet.h>

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
	uint64_t peer_key;          /* the peer's IPv4 address: its --client-rate-limit key */
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

/* ---- client.c -------------------------------------------------------------------------------- */

/* Ends the connection, whatever it was doing: permits back (uncounted), connections closed, an
 * unanswered request counted. */
void px_client_close(struct px_client *c);
/* Counts a final response of status by its class. */
void px_count_status(int status);
/* A wait on the upstream's limit: limit, or what is left of the request deadline; 0 if passed. */
int64_t px_wait_limit(const struct px_client *c, int64_t limit);
/* Waits until s is readable (limit without a byte at most), then fn; closes the client if the
 * wait cannot start (the pool stops). */
void px_wait_read(struct px_client *c, struct px_sock *s, int64_t limit, sx_io_fn fn);
/* Writes p[0..len) to s: 1, all of it went out at once (next not called); 0, it waits (next
 * will be called) or the client was closed; < 0, the write failed (next not called). */
int px_send_try(struct px_client *c, struct px_sock *s, const char *p, size_t len,
    int64_t limit, px_next next);
/* px_send_try, then next at once when it did not wait. */
void px_send_then(struct px_client *c, struct px_sock *s, const char *p, size_t len,
    int64_t limit, px_next next);
/* The request is answered: the next one, or the end (a lingering close). */
void px_next_request(struct px_client *c);
/* An answer of the proxy's own with status; close: the connection ends after it. */
void px_answer(struct px_client *c, int status, bool close);
/* The attempt failed (kind, code) before its answer reached the client: permits back, a retry
 * or the answer. */
void px_attempt_failed(struct px_client *c, enum fail kind, int code);
/* The upstream connection ended before the response head (code: -errno, 0 for end of file): a
 * stale kept connection's attempt goes on with a new one, else it failed. */
void px_upstream_broke(struct px_client *c, int code);

/* ---- response.c ------------------------------------------------------------------------------ */

/* The request went out: read the response head on c->uc. */
void px_read_response(struct px_client *c);
/* Sends the final response in c->resp (c->uc holds its bytes), then its body. */
void px_respond(struct px_client *c);

#endif
