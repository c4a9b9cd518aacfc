/*
 * The strix reverse proxy's internal declarations, shared by its sources:
 *
 *   proxy.c    the command line, start-up, the wait for the end (signal or --duration-s), the
 *              orderly exit
 *   client.c   a client connection: a state machine of I/O steps and waits, one request at a time
 *              (client.h: its state; response.c: the response half of it)
 *   backend.c  the upstreams: choosing one under its circuit and bulkhead, the attempt's
 *              permits, connections kept alive per upstream and worker
 *   sock.c     what both kinds of connection share: the registration, the reference count, the
 *              non-blocking I/O and the watchdog that ends a wait which saw no byte for too long
 *   stats.c    the counters, the --stats JSON and the /metrics text
 *
 * Threads: every callback runs as a task on the connection's shard (any of its workers); a
 * connection has at most one wait pending at any time, so its fields need no synchronization of
 * their own (the pool's task hand-off orders one callback after the step that started its wait).
 * The exceptions are named where they are: the reference counts, the counters and the watchdog
 * timer.
 */
#ifndef STRIX_EXAMPLES_PROXY_PROXY_H
#define STRIX_EXAMPLES_PROXY_PROXY_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <strix.h>

#include "http.h"

#define PX_MAX_UPSTREAMS 64u      /* --upstream, at most (a request's tried set is one word) */
#define PX_MAX_SHARDS    256u     /* --shards, at most */
#define PX_MAX_HEADERS   128u     /* header lines per message */
#define PX_CHUNK         16384u   /* body bytes moved per read */
#define PX_HEAD_SLACK    1024u    /* what forwarding may add to a head (X-Forwarded-For, ...) */

/* ---- configuration (proxy.c fills it from the command line, then it is read-only) ---------- */

enum {
	PX_RETRY_CONNECT = 1u << 0,
	PX_RETRY_RESET = 1u << 1,
	PX_RETRY_TIMEOUT = 1u << 2
};

struct px_config {
	struct sockaddr_in listen;
	struct sockaddr_in up[PX_MAX_UPSTREAMS];
	char up_name[PX_MAX_UPSTREAMS][24];   /* "127.0.0.1:8080" */
	unsigned n_up;
	unsigned workers;                     /* 0: online CPUs */
	unsigned shards;                      /* 0: one per worker */
	int64_t connect_timeout_ns;
	int64_t attempt_timeout_ns;
	int64_t request_timeout_ns;           /* 0: none */
	unsigned attempts;
	unsigned retry_on;                    /* PX_RETRY_* */
	bool retry_status[600];               /* statuses that make an attempt retryable */
	int64_t backoff_ns;                   /* 0: none */
	int64_t retry_slow_ns;                /* 0: off */
	uint64_t budget_tokens;
	double budget_per_success;
	unsigned circuit_consecutive;
	double circuit_failure_rate;
	unsigned circuit_window;
	unsigned circuit_min_calls;
	int64_t circuit_open_ns;
	unsigned circuit_half_open;
	int64_t circuit_slow_ns;              /* 0: off */
	double circuit_slow_rate;
	unsigned bulkhead;                    /* 0: none */
	unsigned max_inflight;                /* 0: none */
	uint64_t rate_limit;                  /* 0: none */
	unsigned rate_burst;
	uint64_t client_rate_limit;           /* per client address; 0: none */
	unsigned client_rate_burst;
	unsigned client_rate_keys;            /* client addresses limited at once */
	unsigned keepalive;
	int64_t client_idle_ns;
	unsigned max_head;
	const char *stats_file;
	const char *ready_file;
	unsigned duration_s;                  /* 0: none */
};

/* ---- counters (stats.c) --------------------------------------------------------------------- */

enum px_counter {
	PX_REQUESTS,            /* request heads received (parsed or refused) */
	PX_2XX, PX_3XX, PX_4XX, PX_5XX,   /* final responses whose head went to the client */
	PX_UNANSWERED,          /* requests that ended without one (client gone, shutdown, ...) */
	PX_ATTEMPTS,            /* attempts begun on an upstream */
	PX_RETRIES,             /* of those, not a request's first */
	PX_RETRIES_REFUSED,     /* retries the retry budget refused */
	PX_CIRCUIT_REJECTS,     /* upstreams skipped because their circuit refused */
	PX_BULKHEAD_REJECTS,    /* upstreams skipped because their bulkhead was full */
	PX_RATE_LIMITED,        /* 429s of --rate-limit */
	PX_CLIENT_LIMITED,      /* 429s of --client-rate-limit */
	PX_OVERLOADED,          /* 503s for --max-inflight */
	PX_TIMEOUTS,            /* attempts ended by a time limit, requests by their deadline */
	PX_ERR_CONNECT,         /* failed attempts, by kind (upstream_errors) */
	PX_ERR_RESET,
	PX_ERR_TIMEOUT,
	PX_ERR_STATUS,
	PX_ERR_BAD_RESPONSE,
	PX_CONNECTIONS,         /* client connections accepted */
	PX_STALE,               /* kept-alive upstream connections found closed on reuse */
	PX_BEGUN,               /* requests that went to the upstreams ... */
	PX_ENDED,               /* ... and of those, the ones over: without --max-inflight the
	                         * in-flight gauge is their difference, no shared word */
	PX_NCOUNTERS
};

/* Adds n to a counter, in the calling worker's stripe. Lock-free (one relaxed atomic add on a
 * line that only this worker writes); any thread (threads outside the pool share one stripe). */
void px_count(enum px_counter k, uint64_t n);
void px_count_up(unsigned up, bool failure);   /* an attempt on upstream up, or its failure */
uint64_t px_counter_sum(enum px_counter k);
int px_stats_init(unsigned workers, unsigned n_up);
void px_stats_fini(void);
/* The counters as the --stats JSON (stats.c; 0, or -errno when the file cannot be written). */
int px_stats_write(const char *path);
/* The /metrics body (Prometheus text format) into out[0..cap): its length, or 0 if it does not
 * fit. */
size_t px_metrics(char *out, size_t cap);
size_t px_metrics_size(void);                  /* a cap px_metrics always fits in */

/* ---- connections (sock.c) ------------------------------------------------------------------ */

/*
 * What a client and an upstream connection share. The owner (the connection's state machine)
 * holds one reference; a watchdog timer that is pending holds another. The fd is closed and the
 * memory freed by whoever drops the last one, so a watchdog that fires while its owner tears
 * the connection down never shuts down a recycled fd number.
 */
struct px_sock {
	sx_pool *pool;          /* the shard's pool: the registration's, the watchdog's timers */
	sx_io *io;
	int fd;
	atomic_uint refs;
	bool watched;           /* owner-only: a watchdog is pending (timer holds its handle) */
	bool cleared;           /* owner-only: px_read has cleared the readiness once */
	sx_timer timer;
	void (*free_fn)(struct px_sock *s);
};

/* Registers fd with pool: 0, or the registration's error (fd untouched). */
int px_sock_open(struct px_sock *s, sx_pool *pool, int fd, void (*free_fn)(struct px_sock *s));
/* Takes over a registration made by sx_io_connect on pool. */
void px_sock_adopt(struct px_sock *s, sx_pool *pool, sx_io *io,
    void (*free_fn)(struct px_sock *s));
/* Deregisters (ending nothing: the owner has no wait pending) and drops the owner's reference. */
void px_sock_close(struct px_sock *s);
/*
 * Arms the watchdog before a wait: if the wait has not ended ns from now, the fd is shut down
 * (both directions), which ends the wait at once. ns <= 0: no limit. 0, or the timer service's
 * error (-ESHUTDOWN once the pool stops).
 */
int px_watch(struct px_sock *s, int64_t ns);
/* After the wait: disarms the watchdog. true when it had fired (the wait timed out; the
 * connection is shut down and must be closed). */
bool px_unwatch(struct px_sock *s);
/*
 * Non-blocking I/O on a registered socket, by the owner: bytes read (> 0; 0 at end of file) or
 * written (> 0, possibly fewer than len), -EAGAIN when nothing can be done now (the readiness is
 * cleared, so px_wait waits for the kernel), or -errno. Never blocks.
 */
ssize_t px_read(struct px_sock *s, void *buf, size_t cap);
ssize_t px_write(struct px_sock *s, const void *buf, size_t len);
/* A wait for events (one direction) under the watchdog: 0 (fn will run; it calls px_unwatch
 * first), or the error (fn will not run, nothing armed). */
int px_wait(struct px_sock *s, unsigned events, int64_t limit, sx_io_fn fn, void *arg);

/* ---- the proxy (proxy.c) -------------------------------------------------------------------- */

struct px_upstream;

/*
 * The shards: cfg.shards pools splitting cfg.workers workers among them, each with its own
 * listener (SO_REUSEPORT: the kernel spreads the connections), reactor and timer thread. A
 * connection lives on the shard that accepted it, upstream connections included, so its steps run
 * on that shard's workers and its memory and socket stay in their caches. With one shard, one
 * pool's workers share every connection (work stealing). A worker's slot is its index among all
 * the shards' workers (px_slot): the stripes of the counters and the idle lists go by it.
 */
struct px_state {
	struct px_config cfg;
	sx_pool *pools[PX_MAX_SHARDS];
	unsigned n_shards;
	unsigned workers;                     /* all shards' */
	unsigned shard_base[PX_MAX_SHARDS];   /* slot of each shard's first worker */
	struct px_upstream *up;               /* cfg.n_up of them */
	sx_retry_budget budget;
	sx_ratelimit *rate;                   /* NULL: no limit */
	sx_ratelimit_keyed *client_rate;      /* per client address; NULL: no limit */
	sx_metrics *metrics;                  /* strix's figures for /metrics: pools, circuits,
	                                       * bulkheads, the retry budget */
	sx_retry_policy backoff;              /* --backoff-ms as a policy (its seed per request) */
	atomic_uint inflight;                 /* requests in flight, kept for --max-inflight only */
	atomic_uint clients;                  /* client connections open */
};

extern struct px_state px;

uint64_t px_now_ns(void);
/* The calling thread's worker slot, 0 .. px.workers - 1, or -1 on a thread of no shard. Wait-free
 * (a thread-local after the first call). */
int px_slot(void);

/* ---- upstreams (backend.c) ------------------------------------------------------------------ */

/* A connection to an upstream. buf holds the forwarded request head, then the response. */
struct px_uconn {
	struct px_sock s;
	struct px_upstream *up;
	struct px_uconn *next;  /* in an idle list */
	bool reused;            /* taken from an idle list (it may have been closed meanwhile) */
	size_t len;             /* response bytes in buf */
	size_t cap;
	char buf[];
};

/* An attempt's permits: the circuit's, and the bulkhead's when there is one. */
struct px_permit {
	struct px_upstream *up;
	sx_circuit_permit circuit;
	bool bulk;
};

int px_backend_init(void);
void px_backend_fini(void);               /* after the pool's shutdown: idle connections closed */
unsigned px_upstream_index(const struct px_upstream *up);
struct px_upstream *px_upstream_at(unsigned i);
/*
 * Chooses the upstream for an attempt and takes its permits: a request's first attempt starts
 * where the calling worker's round robin is, a retry after `after`; upstreams not in `tried`
 * come first, then the tried ones. An upstream whose bulkhead is full or whose circuit refuses
 * is skipped (counted). true with *p filled, false when none would take it.
 */
bool px_pick(bool first, unsigned after, uint64_t tried, struct px_permit *p);
/* Gives the permits back: failure (a negative code; 0 is a success, -ECANCELED not counted) and
 * the attempt's latency go to the circuit. Exactly once per px_pick that returned true. */
void px_release(struct px_permit *p, int result, int64_t latency_ns);
/* An idle connection to up kept by the calling worker, or NULL. */
struct px_uconn *px_idle_pop(struct px_upstream *up);
/* Keeps uc for reuse by the calling worker, or closes it when that worker keeps enough. */
void px_idle_push(struct px_uconn *uc);
/* A new connection's state around a registration made by sx_io_connect (NULL: out of memory,
 * the registration then deregistered and its fd closed). */
struct px_uconn *px_uconn_new(struct px_upstream *up, sx_pool *pool, sx_io *io);
void px_uconn_close(struct px_uconn *uc);
const struct sockaddr_in *px_upstream_addr(const struct px_upstream *up);
const char *px_upstream_name(const struct px_upstream *up);
int px_upstream_state(struct px_upstream *up);     /* sx_circuit_state */
uint64_t px_upstream_opens(const struct px_upstream *up);
/* Lists every upstream's circuit and bulkhead in m, under the upstream's address. */
int px_backend_metrics(sx_metrics *m);

/* ---- clients (client.c) --------------------------------------------------------------------- */

/* Serves a connection accepted on pool's listener (fd non-blocking); closes fd on failure. */
void px_client_start(sx_pool *pool, int fd);

#endif
