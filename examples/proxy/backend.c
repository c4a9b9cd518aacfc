/*
 * The upstreams: one circuit breaker (sx_circuit) and, with --bulkhead, one semaphore (sx_sem)
 * each; the choice of the upstream for an attempt; the connections kept alive.
 *
 * Choosing: round robin from a cursor per worker (no shared counter on the request path), an
 * upstream taken only if its bulkhead has room (sx_sem_try_acquire) and its circuit gives a
 * permit (sx_circuit_acquire). The bulkhead is asked first because giving its permit back costs
 * nothing, while a circuit's permit may be a half-open probe (given back unused as "ignored").
 *
 * Idle connections: a list per upstream and per worker (px_slot), touched only by tasks running
 * on that worker, so pushing and popping are plain pointer moves: no lock and no atomic on the
 * request path; and a connection never leaves its shard, whose reactor it is registered with.
 * The price is that a connection parked by one worker is not found by another, so each
 * worker keeps its share of --keepalive (at least one) and opens its own when it has none. A
 * connection the upstream closed while it sat idle shows a hang-up in its readiness
 * (sx_io_readiness) and is dropped when popped; one that closed too recently for the reactor to
 * have seen it is caught by the client side (a reused connection that ends before any response
 * byte is retried on a fresh one).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy.h"

struct px_idle {
	_Alignas(64) struct px_uconn *head;
	unsigned n;
};

struct px_upstream {
	unsigned index;
	sx_circuit *circuit;
	sx_sem *bulkhead;
	atomic_ullong opens;       /* transitions to OPEN (the circuit's callback) */
	struct px_idle *idle;      /* one per worker */
};

/* The cursor of each worker (and one for threads outside the pool), a line each. */
struct px_cursor {
	_Alignas(64) unsigned next;
};

static struct px_cursor *cursors;
static unsigned idle_cap;          /* idle connections per upstream and worker */

static void on_circuit(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	struct px_upstream *up = arg;

	(void)c;
	(void)from;
	(void)m;
	if (to == SX_CIRCUIT_OPEN)
		atomic_fetch_add_explicit(&up->opens, 1, memory_order_relaxed);
}

int px_backend_init(void)
{
	const struct px_config *cfg = &px.cfg;
	unsigned w = px.workers;
	int rc;

	idle_cap = cfg->keepalive / w > 0 ? cfg->keepalive / w : 1;
	px.up = calloc(cfg->n_up, sizeof(*px.up));
	cursors = aligned_alloc(64, (size_t)(w + 1) * sizeof(*cursors));
	if (px.up == NULL || cursors == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i <= w; i++)
		cursors[i].next = i; /* workers start apart */
	for (unsigned i = 0; i < cfg->n_up; i++) {
		struct px_upstream *up = &px.up[i];
		sx_circuit_opts o = { 0 };

		up->index = i;
		atomic_init(&up->opens, 0);
		up->idle = aligned_alloc(64, (size_t)w * sizeof(*up->idle));
		if (up->idle == NULL)
			return -ENOMEM;
		memset(up->idle, 0, (size_t)w * sizeof(*up->idle));
		o.window = SX_CIRCUIT_WINDOW_COUNT;
		o.window_size = cfg->circuit_window;
		o.min_calls = cfg->circuit_min_calls;
		o.failure_rate = cfg->circuit_failure_rate;
		o.consecutive_failures = cfg->circuit_consecutive;
		o.slow_call_ns = cfg->circuit_slow_ns;
		o.slow_rate = cfg->circuit_slow_rate;
		o.open_ns = cfg->circuit_open_ns;
		o.half_open_permits = cfg->circuit_half_open;
		o.half_open_successes = cfg->circuit_half_open;
		o.on_state = on_circuit;
		o.on_state_arg = up;
		o.pool = px.pools[0];
		if ((rc = sx_circuit_create(&o, &up->circuit)) != 0)
			return rc;
		if (cfg->bulkhead > 0 && (rc = sx_sem_create(NULL, cfg->bulkhead, &up->bulkhead)) != 0)
			return rc;
	}
	return 0;
}

void px_backend_fini(void)
{
	unsigned w = px.workers;

	if (px.up == NULL)
		return;
	for (unsigned i = 0; i < px.cfg.n_up; i++) {
		struct px_upstream *up = &px.up[i];

		for (unsigned k = 0; up->idle != NULL && k < w; k++) {
			struct px_uconn *uc;

			while ((uc = up->idle[k].head) != NULL) {
				up->idle[k].head = uc->next;
				px_uconn_close(uc);
			}
		}
		free(up->idle);
		sx_circuit_destroy(up->circuit);
		sx_sem_destroy(up->bulkhead);
	}
	free(px.up);
	free(cursors);
	px.up = NULL;
}

unsigned px_upstream_index(const struct px_upstream *up)
{
	return up->index;
}

struct px_upstream *px_upstream_at(unsigned i)
{
	return &px.up[i];
}

const struct sockaddr_in *px_upstream_addr(const struct px_upstream *up)
{
	return &px.cfg.up[up->index];
}

const char *px_upstream_name(const struct px_upstream *up)
{
	return px.cfg.up_name[up->index];
}

int px_backend_metrics(sx_metrics *m)
{
	int rc = 0;

	for (unsigned i = 0; i < px.cfg.n_up && rc == 0; i++) {
		rc = sx_metrics_add(m, SX_METRICS_CIRCUIT, px.cfg.up_name[i], px.up[i].circuit);
		if (rc == 0 && px.up[i].bulkhead != NULL)
			rc = sx_metrics_add(m, SX_METRICS_BULKHEAD, px.cfg.up_name[i],
			    px.up[i].bulkhead);
	}
	return rc;
}

int px_upstream_state(struct px_upstream *up)
{
	return sx_circuit_state(up->circuit);
}

uint64_t px_upstream_opens(const struct px_upstream *up)
{
	return atomic_load_explicit(&up->opens, memory_order_relaxed);
}

/* ---- choosing -------------------------------------------------------------------------------- */

static bool take(struct px_upstream *up, struct px_permit *p)
{
	if (up->bulkhead != NULL && sx_sem_try_acquire(up->bulkhead, 1) != 0) {
		px_count(PX_BULKHEAD_REJECTS, 1);
		return false;
	}
	if (sx_circuit_acquire(up->circuit, &p->circuit) != 0) {
		if (up->bulkhead != NULL)
			sx_sem_release(up->bulkhead, 1);
		px_count(PX_CIRCUIT_REJECTS, 1);
		return false;
	}
	p->up = up;
	p->bulk = up->bulkhead != NULL;
	return true;
}

bool px_pick(bool first, unsigned after, uint64_t tried, struct px_permit *p)
{
	unsigned n = px.cfg.n_up, start;
	int w = px_slot();
	struct px_cursor *cur = NULL;

	if (first) {
		cur = &cursors[w >= 0 ? (unsigned)w : px.workers];
		start = cur->next % n;
	} else {
		start = (after + 1) % n;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			unsigned k = (start + i) % n;
			bool was_tried = (tried >> k) & 1u;

			if (was_tried != (pass == 1) || !take(&px.up[k], p))
				continue;
			/* The cursor moves past the one taken, not past the start: a skipped upstream's
			 * share goes round to all the others, not to its successor alone. */
			if (cur != NULL)
				cur->next = k + 1;
			return true;
		}
	}
	if (cur != NULL)
		cur->next = start + 1;
	return false;
}

void px_release(struct px_permit *p, int result, int64_t latency_ns)
{
	if (p->up == NULL)
		return;
	(void)sx_circuit_release(p->up->circuit, p->circuit, result, latency_ns < 0 ? 0 : latency_ns);
	if (p->bulk)
		sx_sem_release(p->up->bulkhead, 1);
	p->up = NULL;
	p->bulk = false;
}

/* ---- connections ----------------------------------------------------------------------------- */

static void uconn_free(struct px_sock *s)
{
	free(SX_CONTAINER_OF(s, struct px_uconn, s));
}

struct px_uconn *px_uconn_new(struct px_upstream *up, sx_pool *pool, sx_io *io)
{
	size_t cap = (size_t)px.cfg.max_head + PX_HEAD_SLACK + PX_CHUNK;
	struct px_uconn *uc = malloc(sizeof(*uc) + cap);

	if (uc == NULL) {
		int fd = sx_io_fd(io);

		sx_io_deregister(io);
		close(fd);
		return NULL;
	}
	px_sock_adopt(&uc->s, pool, io, uconn_free);
	uc->up = up;
	uc->next = NULL;
	uc->reused = false;
	uc->len = 0;
	uc->cap = cap;
	return uc;
}

void px_uconn_close(struct px_uconn *uc)
{
	px_sock_close(&uc->s);
}

struct px_uconn *px_idle_pop(struct px_upstream *up)
{
	int w = px_slot();
	struct px_idle *l;
	struct px_uconn *uc;

	if (w < 0)
		return NULL;
	l = &up->idle[w];
	while ((uc = l->head) != NULL) {
		/* Unlinked before anything that may run other tasks on this worker (a deregister). */
		l->head = uc->next;
		l->n--;
		uc->next = NULL;
		if ((sx_io_token_events(sx_io_readiness(uc->s.io)) & (SX_IO_HUP | SX_IO_ERROR)) == 0) {
			uc->reused = true;
			return uc;
		}
		px_count(PX_STALE, 1);
		px_uconn_close(uc);
	}
	return NULL;
}

void px_idle_push(struct px_uconn *uc)
{
	int w = px_slot();
	struct px_idle *l;

	if (w < 0 || uc->up->idle[w].n >= idle_cap) {
		px_uconn_close(uc);
		return;
	}
	l = &uc->up->idle[w];
	uc->len = 0;
	uc->next = l->head;
	l->head = uc;
	l->n++;
}
