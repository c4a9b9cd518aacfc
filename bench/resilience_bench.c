/*
 * B14 adaptive and hedge (bench/README.md): the resilience policies against a simulated backend
 * in real time, each beside the same run without the policy.
 *
 * adaptive: a backend of `servers` parallel servers, each call service_ns long, FIFO when all
 *   are busy (a call's end is reserved on the earliest free server; the caller sleeps until
 *   then). 64 clients call it in a closed loop through a limit - strix's adaptive limit, or a
 *   fixed bulkhead (sx_sem) sized for the first phase as a careful operator would (1.5 x its
 *   capacity + 4, what the adaptive limit finds). Half-way the backend loses half its servers.
 *   A refused client waits one service time before it tries again. Figures of the second phase
 *   (after its first 300 ms): p99 latency of admitted calls, share refused, calls per second;
 *   and the limit at the end of each phase, and the time the adaptive limit took after the drop
 *   to come within 15% of where it ends.
 * hedge: a backend whose calls take 1 ms, except a seeded 5% that take 50 ms; callers keep 16
 *   calls in flight for the run, each a hedged promise (sx_hedge_run, the delay at the observed
 *   p90) or a plain one (sx_promise_run). A call sleeps in 100 us steps and stops when its chain
 *   is cancelled (a losing attempt ends). Figures: p50 / p99 of calls, and the extra load
 *   (attempts per call - 1). The pool has 64 workers: the calls block, as a thread-per-call
 *   client would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <strix/adaptive.h>
#include <strix/hedge.h>
#include <strix/pool.h>
#include <strix/promise.h>
#include <strix/sem.h>

#include "hist.h"
#include "workloads.h"

/* ---- adaptive ------------------------------------------------------------------------------- */

#define AD_CLIENTS 64
#define AD_SERVERS 32
#define AD_SERVICE_NS 1000000ull

struct ad_run {
	pthread_mutex_t mu;          /* the simulated backend's own lock (not under test) */
	uint64_t free_at[AD_SERVERS];
	atomic_uint servers;
	bool adaptive;
	sx_adaptive *al;
	sx_sem *sem;
	uint64_t t_start, t_drop, t_measure, t_end;
	atomic_uint_fast64_t ok2, refused2;
	bench_hist h[AD_CLIENTS];
};

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Reserve a server: the end time of this call. */
static uint64_t backend_reserve(struct ad_run *r, uint64_t now)
{
	unsigned n = atomic_load(&r->servers), best = 0, i;
	uint64_t end;

	pthread_mutex_lock(&r->mu);
	for (i = 1; i < n; i++)
		if (r->free_at[i] < r->free_at[best])
			best = i;
	end = (r->free_at[best] > now ? r->free_at[best] : now) + AD_SERVICE_NS;
	r->free_at[best] = end;
	pthread_mutex_unlock(&r->mu);
	return end;
}

struct ad_client {
	struct ad_run *r;
	unsigned id;
};

static void *ad_client(void *arg)
{
	struct ad_client *c = arg;
	struct ad_run *r = c->r;
	uint64_t now;

	while ((now = bench_now_ns()) < r->t_end) {
		int rc = r->adaptive ? sx_adaptive_acquire(r->al) : sx_sem_try_acquire(r->sem, 1);
		uint64_t end;

		if (rc != 0) {
			if (now >= r->t_measure)
				atomic_fetch_add(&r->refused2, 1);
			sleep_until(now + AD_SERVICE_NS);
			continue;
		}
		end = backend_reserve(r, now);
		sleep_until(end);
		end = bench_now_ns();
		if (r->adaptive)
			(void)sx_adaptive_release(r->al, 0, (int64_t)(end - now));
		else
			(void)sx_sem_release(r->sem, 1);
		if (now >= r->t_measure) {
			hist_record(&r->h[c->id], end - now);
			atomic_fetch_add(&r->ok2, 1);
		}
	}
	return NULL;
}

static uint32_t limit_now(const struct ad_run *r)
{
	return r->adaptive ? sx_adaptive_limit(r->al) : AD_SERVERS * 3 / 2 + 4;
}

int bench_adaptive(bool adaptive, bool smoke, bench_hist *h, bench_adaptive_out *out,
    bench_out *o)
{
	static struct ad_run r;
	static uint32_t samples[8192];
	static uint64_t sample_t[8192];
	struct ad_client cl[AD_CLIENTS];
	pthread_t t[AD_CLIENTS];
	uint64_t phase = smoke ? 200000000ull : 1500000000ull, settle = smoke ? 50000000ull :
	    300000000ull, total = 0;
	unsigned ns = 0, i, first_after = 0, k;
	uint32_t final;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	atomic_store(&r.servers, AD_SERVERS);
	r.adaptive = adaptive;
	if (adaptive) {
		sx_adaptive_opts ao = SX_ADAPTIVE_OPTS_INIT;

		ao.initial_limit = 8;
		if (sx_adaptive_create(&ao, &r.al) != 0) {
			snprintf(o->err, sizeof(o->err), "adaptive: create failed");
			return -1;
		}
	} else if (sx_sem_create(NULL, AD_SERVERS * 3 / 2 + 4, &r.sem) != 0) {
		snprintf(o->err, sizeof(o->err), "adaptive: sem create failed");
		return -1;
	}
	for (i = 0; i < AD_CLIENTS; i++)
		hist_reset(&r.h[i]);
	r.t_start = bench_now_ns();
	r.t_drop = r.t_start + phase;
	r.t_measure = r.t_drop + settle;
	r.t_end = r.t_drop + phase;
	for (i = 0; i < AD_CLIENTS; i++) {
		cl[i] = (struct ad_client){ &r, i };
		if (pthread_create(&t[i], NULL, ad_client, &cl[i]) != 0) {
			snprintf(o->err, sizeof(o->err), "adaptive: thread create failed");
			atomic_store(&r.servers, AD_SERVERS);
			r.t_end = 0;
			while (i-- > 0)
				pthread_join(t[i], NULL);
			return -1;
		}
	}
	/* The sampler: the limit every 1 ms; the drop at its time. */
	for (;;) {
		uint64_t now = bench_now_ns();

		if (now >= r.t_end)
			break;
		if (now >= r.t_drop && atomic_load(&r.servers) == AD_SERVERS) {
			out->limit_before = limit_now(&r);
			atomic_store(&r.servers, AD_SERVERS / 2);
		}
		if (now >= r.t_drop && ns < 8192) {
			if (first_after == 0 && ns > 0)
				first_after = ns;
			sample_t[ns] = now;
			samples[ns++] = limit_now(&r);
		}
		sleep_until(now + 1000000ull);
	}
	for (i = 0; i < AD_CLIENTS; i++)
		pthread_join(t[i], NULL);
	o->seconds = (double)(r.t_end - r.t_measure) / 1e9;
	o->tasks = atomic_load(&r.ok2);
	hist_reset(h);
	for (i = 0; i < AD_CLIENTS; i++) {
		for (k = 0; k < HIST_POW * HIST_SUB; k++)
			h->b[k] += r.h[i].b[k];
		h->count += r.h[i].count;
		if (r.h[i].max > h->max)
			h->max = r.h[i].max;
	}
	total = atomic_load(&r.ok2) + atomic_load(&r.refused2);
	final = limit_now(&r);
	out->limit_after = final;
	out->rejected_pct = total > 0 ? 100.0 * (double)atomic_load(&r.refused2) / (double)total : 0;
	out->calls_per_s = (double)atomic_load(&r.ok2) / o->seconds;
	/* Converged: the first sample after which every sample stays within 15% of the final. */
	out->converge_ns = 0;
	for (i = ns; i-- > 0;)
		if (samples[i] > final * 115 / 100 || samples[i] < final * 85 / 100) {
			out->converge_ns = (double)(sample_t[i] - r.t_drop);
			break;
		}
	sx_adaptive_destroy(r.al);
	sx_sem_destroy(r.sem);
	pthread_mutex_destroy(&r.mu);
	if (h->count == 0) {
		snprintf(o->err, sizeof(o->err), "adaptive: no call completed");
		return -1;
	}
	return 0;
}

/* ---- hedge ---------------------------------------------------------------------------------- */

#define HG_INFLIGHT 16
#define HG_FAST_NS 1000000ull
#define HG_SLOW_NS 50000000ull

#define HG_MAX_CALLS 131072

/* Each call's argument: the run, and where its first success writes its end time (a call is
 * timed from its start to that, not to when the caller got round to it). */
struct hg_run;
struct hg_call {
	struct hg_run *r;
	_Atomic uint64_t done;
};

struct hg_run {
	atomic_uint_fast64_t attempts, draws;
	uint64_t seed;
	struct hg_call calls[HG_MAX_CALLS];
};

static uint64_t splitmix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One attempt against the backend: 1 ms, or 50 ms for a seeded 5%; in 100 us steps, ending
 * early once the chain is cancelled. */
static int hg_step(sx_ctx *ctx, void *last, void **out)
{
	struct hg_call *c = ctx->arg;
	struct hg_run *r = c->r;
	uint64_t k = atomic_fetch_add(&r->draws, 1), none = 0;
	uint64_t ns = splitmix(r->seed + k) % 100 < 5 ? HG_SLOW_NS : HG_FAST_NS;
	uint64_t end = bench_now_ns() + ns;

	(void)last;
	atomic_fetch_add(&r->attempts, 1);
	while (bench_now_ns() < end) {
		if (sx_ctx_cancelled(ctx))
			return -ECANCELED;
		sleep_until(bench_now_ns() + 100000ull);
	}
	(void)atomic_compare_exchange_strong(&c->done, &none, bench_now_ns());
	*out = c;
	return 0;
}

/* Start call number n in slot i. */
static int hg_start(struct hg_run *r, sx_pool *pool, sx_hedge *hg, uint64_t n, sx_promise **p)
{
	struct hg_call *c = &r->calls[n];

	c->r = r;
	atomic_store(&c->done, 0);
	return hg != NULL ? sx_hedge_run(hg, hg_step, c, p) : sx_promise_run(pool, hg_step, c, p);
}

int bench_hedge(bool hedged, bool smoke, bench_hist *h, double *extra_load, bench_out *o)
{
	static struct hg_run r;
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_hedge_opts ho = SX_HEDGE_OPTS_INIT;
	sx_pool *pool = NULL;
	sx_hedge *hg = NULL;
	sx_promise *p[HG_INFLIGHT];
	uint64_t t0[HG_INFLIGHT], id[HG_INFLIGHT], start, until, calls = 0, started = 0;
	unsigned i, active;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.seed = 20261202;
	po.workers = 64;
	ho.percentile = 0.90;
	ho.min_delay_ns = 500000;
	if (sx_pool_create(&po, &pool) != 0 || (hedged && sx_hedge_create(pool, &ho, &hg) != 0)) {
		snprintf(o->err, sizeof(o->err), "hedge: setup failed");
		sx_pool_destroy(pool);
		return -1;
	}
	hist_reset(h);
	start = bench_now_ns();
	until = start + (smoke ? 200000000ull : 3000000000ull);
	memset(p, 0, sizeof(p));
	for (i = 0; i < HG_INFLIGHT && rc == 0; i++) {
		t0[i] = bench_now_ns();
		id[i] = started;
		rc = hg_start(&r, pool, hg, started++, &p[i]);
	}
	/* Keep 16 in flight: wait for each slot's call in turn and start the next one there,
	 * until the run's time is over; then let the slots empty. */
	for (i = 0, active = rc == 0 ? HG_INFLIGHT : 0; active > 0; i = (i + 1) % HG_INFLIGHT) {
		void *v;

		if (p[i] == NULL)
			continue;
		if ((rc = sx_promise_get(p[i], -1, &v)) == 0) {
			hist_record(h, atomic_load(&r.calls[id[i]].done) - t0[i]);
			calls++;
		}
		sx_promise_release(p[i]);
		p[i] = NULL;
		if (rc == 0 && bench_now_ns() < until && started < HG_MAX_CALLS) {
			t0[i] = bench_now_ns();
			id[i] = started;
			rc = hg_start(&r, pool, hg, started++, &p[i]);
		}
		if (p[i] == NULL)
			active--;
	}
	sx_pool_wait_idle(pool);
	o->seconds = (double)(bench_now_ns() - start) / 1e9;
	o->tasks = calls;
	*extra_load = calls > 0 ? (double)atomic_load(&r.attempts) / (double)calls - 1.0 : 0;
	sx_hedge_destroy(hg);
	sx_pool_destroy(pool);
	if (rc != 0 || calls == 0) {
		snprintf(o->err, sizeof(o->err), "hedge: a call failed (%d)", rc);
		return -1;
	}
	return 0;
}
