/*
 * The promise workloads for strix (B4 chain, B8s retry_storm), public API only; fib's helpers.
 * Each checks its own result.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix.h>

#include "workloads.h"

uint64_t bench_fib_expected(unsigned n)
{
	uint64_t a = 0, b = 1;

	for (unsigned i = 0; i < n; i++) {
		uint64_t t = a + b;

		a = b;
		b = t;
	}
	return a;
}

uint64_t bench_fib_calls(unsigned n)
{
	return 2 * bench_fib_expected(n + 1) - 1;
}

/* ---- B4 chain: each hop's step adds the next hop to its own promise ------------------------- */

struct chain {
	uint64_t n;
	atomic_uint_fast64_t hops;
	atomic_int done;
};

static int hop(sx_ctx *ctx, void *last, void **out)
{
	struct chain *c = ctx->arg;
	uint64_t i = (uint64_t)(uintptr_t)last + 1;
	sx_promise *next;

	atomic_fetch_add_explicit(&c->hops, 1, memory_order_relaxed);
	*out = (void *)(uintptr_t)i;
	if (i == c->n) {
		atomic_store_explicit(&c->done, 1, memory_order_release);
		return 0;
	}
	/* `then` on the promise this step is settling: scheduled when we return. */
	if (sx_promise_then(ctx->promise, hop, c, &next) != 0)
		abort();
	sx_promise_release(next);
	return 0;
}

int strix_chain(unsigned workers, uint64_t n, bool with_breaker, bench_out *o)
{
	struct chain c = { .n = n };
	sx_breaker *b = NULL;
	sx_promise *p;
	sx_pool *pool;
	uint64_t t0;
	int rc;

	if ((pool = bench_strix_pool(workers, o)) == NULL)
		return -1;
	if (with_breaker && sx_breaker_create(&b) != 0) {
		sx_pool_destroy(pool);
		snprintf(o->err, sizeof(o->err), "strix chain: breaker create failed");
		return -1;
	}
	t0 = bench_now_ns();
	rc = sx_promise_run_with(pool, b, hop, &c, &p);
	if (rc == 0) {
		while (!atomic_load_explicit(&c.done, memory_order_acquire))
			bench_sleep_ns(20000);
	}
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_wait_idle(pool);
	if (rc == 0)
		sx_promise_release(p);
	sx_pool_destroy(pool);
	sx_breaker_release(b);
	o->tasks = atomic_load(&c.hops);
	if (rc != 0 || o->tasks != n) {
		snprintf(o->err, sizeof(o->err), "strix chain: %llu of %llu hops (rc %d)",
		    (unsigned long long)o->tasks, (unsigned long long)n, rc);
		return -1;
	}
	return 0;
}

/* ---- B8s retry_storm: many failing calls retried on timers, beside a ping-pong ------------- */

struct storm {
	uint64_t n;
	unsigned fail_first;
	atomic_uint_least8_t *succeeded; /* per task: successful runs of its step */
	atomic_uint_fast64_t settled;
};

static struct storm storm;

static int storm_step(sx_ctx *ctx, void *last, void **out)
{
	uintptr_t i = (uintptr_t)ctx->arg;

	(void)last;
	if (ctx->attempt <= storm.fail_first)
		return -EAGAIN;
	atomic_fetch_add_explicit(&storm.succeeded[i], 1, memory_order_relaxed);
	*out = (void *)(i + 1);
	return 0;
}

static int storm_recover(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx;
	(void)err;
	*out = last;
	return 0;
}

static int storm_done(sx_ctx *ctx, int err, void *value)
{
	(void)ctx;
	(void)err;
	(void)value;
	atomic_fetch_add_explicit(&storm.settled, 1, memory_order_release);
	return 0;
}

/* The B5 hand-off on `pool`: a task on one worker hands a token to a task on another. */
struct pp {
	bench_hist *h;
	atomic_int token;
	atomic_int stop;
	uint64_t t_submit, rounds, min_rounds;
	sx_pool *pool;
	atomic_int finished;
};

static void pong(void *arg)
{
	struct pp *pp = arg;

	hist_record(pp->h, bench_now_ns() - pp->t_submit);
	atomic_store_explicit(&pp->token, 1, memory_order_release);
}

static void ping(void *arg)
{
	struct pp *pp = arg;

	for (pp->rounds = 0; pp->rounds < pp->min_rounds ||
	     !atomic_load_explicit(&pp->stop, memory_order_acquire); pp->rounds++) {
		atomic_store_explicit(&pp->token, 0, memory_order_relaxed);
		pp->t_submit = bench_now_ns();
		if (sx_pool_submit(pp->pool, pong, pp) != 0)
			break;
		while (!atomic_load_explicit(&pp->token, memory_order_acquire))
			__builtin_ia32_pause();
	}
	atomic_store_explicit(&pp->finished, 1, memory_order_release);
}

static void run_pingpong(struct pp *pp)
{
	atomic_store(&pp->finished, 0);
	if (sx_pool_submit(pp->pool, ping, pp) != 0)
		return;
	while (!atomic_load_explicit(&pp->finished, memory_order_acquire))
		bench_sleep_ns(100000);
}

int strix_retry_storm(unsigned workers, uint64_t n, unsigned retries, bench_hist *idle,
    bench_hist *busy, bench_retry_storm *r, bench_out *o)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	struct pp pp = { .min_rounds = 20000 };
	sx_promise **fin;
	sx_pool *pool;
	uint64_t t0;
	int rc = 0;

	if ((pool = bench_strix_pool(workers < 2 ? 2 : workers, o)) == NULL)
		return -1;
	storm.n = n;
	storm.fail_first = retries;
	storm.succeeded = calloc(n, sizeof(*storm.succeeded));
	fin = calloc(n, sizeof(*fin));
	atomic_store(&storm.settled, 0);
	if (storm.succeeded == NULL || fin == NULL)
		abort();
	pp.pool = pool;

	/* The hand-off alone first, on the same pool. */
	pp.h = idle;
	atomic_store(&pp.stop, 1);
	run_pingpong(&pp);

	pol.max_attempts = retries + 1;
	pol.backoff = SX_BACKOFF_EXPONENTIAL;
	pol.base_ns = 1000000;
	pol.factor = 2.0;
	pol.jitter = SX_JITTER_FULL;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		sx_promise *p, *q;

		pol.seed = i;
		rc = sx_promise_run(pool, storm_step, (void *)(uintptr_t)i, &p);
		if (rc == 0)
			rc = sx_promise_recover_and_retry(p, storm_recover, NULL, &pol, &q);
		if (rc == 0)
			rc = sx_promise_finally(q, storm_done, NULL, &fin[i]);
		sx_promise_release(p);
		sx_promise_release(q);
	}
	/* The hand-off again, for as long as the storm lasts. */
	pp.h = busy;
	atomic_store(&pp.stop, 0);
	atomic_store(&pp.finished, 0);
	{
		struct pp *ppp = &pp;

		if (sx_pool_submit(pool, ping, ppp) != 0)
			rc = -1;
		while (rc == 0 && atomic_load_explicit(&storm.settled, memory_order_acquire) < n)
			bench_sleep_ns(200000);
		atomic_store_explicit(&pp.stop, 1, memory_order_release);
		while (rc == 0 && !atomic_load_explicit(&pp.finished, memory_order_acquire))
			bench_sleep_ns(100000);
	}
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_wait_idle(pool);
	r->lost = r->duplicated = 0;
	for (uint64_t i = 0; i < n; i++) {
		void *v = NULL;
		unsigned s = atomic_load(&storm.succeeded[i]);

		if (fin[i] == NULL || sx_promise_get(fin[i], 0, &v) != 0 || v != (void *)(i + 1) ||
		    s == 0)
			r->lost++;
		if (s > 1)
			r->duplicated++;
		sx_promise_release(fin[i]);
	}
	r->handoffs = pp.rounds;
	sx_pool_destroy(pool);
	free(storm.succeeded);
	free(fin);
	o->tasks = n * (retries + 1);
	if (rc != 0 || r->lost != 0 || r->duplicated != 0) {
		snprintf(o->err, sizeof(o->err), "strix retry_storm: lost %llu duplicated %llu (rc %d)",
		    (unsigned long long)r->lost, (unsigned long long)r->duplicated, rc);
		return -1;
	}
	return 0;
}
