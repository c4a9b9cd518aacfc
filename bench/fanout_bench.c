/*
 * B7 fanout_limit: strix's sx_fanout_map against the pthread-pool way (Pithikos thpool with a
 * POSIX semaphore in front), same calls, same in-flight bookkeeping. See workloads.h.
 */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include <cthreadpool/thpool.h>
#include <strix.h>

#include "workloads.h"

/* One word for the calls in flight (low 32 bits) and done (high 32; runs stay below 2^32 calls),
 * so a call costs two atomic adds on one line, and the high-water mark on a line of its own,
 * written only when it rises: the bookkeeping every implementation does (the Go and Rust peers
 * do the same). */
#define FAN_DONE_ONE (UINT64_C(1) << 32)

struct fan_state {
	double rss0;
	uint64_t work_ns;
	sem_t sem;
	_Alignas(64) uint64_t state;  /* done << 32 | in flight */
	_Alignas(64) uint32_t max;
};

static void call_body(struct fan_state *s)
{
	uint32_t now = (uint32_t)__atomic_add_fetch(&s->state, 1, __ATOMIC_RELAXED);
	uint32_t max = __atomic_load_n(&s->max, __ATOMIC_RELAXED);

	while (now > max && !__atomic_compare_exchange_n(&s->max, &max, now, true,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (s->work_ns != 0) {
		uint64_t end = bench_now_ns() + s->work_ns;

		while (bench_now_ns() < end)
			;
	}
	__atomic_add_fetch(&s->state, FAN_DONE_ONE - 1, __ATOMIC_RELAXED);
}

static int finish(struct fan_state *s, uint64_t n, uint64_t t0, bench_fanout *r, bench_out *o)
{
	uint64_t done = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) >> 32;

	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = done;
	r->max_inflight = s->max;
	r->rss_kib = bench_peak_rss_kib() - s->rss0;
	if (done != n) {
		snprintf(o->err, sizeof(o->err), "fanout: %llu of %llu calls ran",
		    (unsigned long long)done, (unsigned long long)n);
		return -1;
	}
	return 0;
}

static int strix_call(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	(void)i;
	call_body(arg);
	return 0;
}

int strix_fanout(unsigned workers, uint64_t n, unsigned limit, uint64_t work_ns,
    bench_fanout *r, bench_out *o)
{
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_fanout_opts fo = SX_FANOUT_OPTS_INIT;
	struct fan_state s = { .work_ns = work_ns };
	sx_pool *p;
	uint64_t t0;
	int rc;

	po.workers = workers;
	if (sx_pool_create(&po, &p) != 0) {
		snprintf(o->err, sizeof(o->err), "strix: pool");
		return -1;
	}
	fo.limit = limit;
	bench_reset_peak_rss();
	s.rss0 = bench_rss_kib();
	t0 = bench_now_ns();
	rc = sx_fanout_map(p, n, strix_call, &s, &fo);
	if (rc != 0)
		snprintf(o->err, sizeof(o->err), "sx_fanout_map: %d", rc);
	else
		rc = finish(&s, n, t0, r, o);
	sx_pool_destroy(p);
	return rc;
}

static void thp_call(void *arg)
{
	struct fan_state *s = arg;

	call_body(s);
	sem_post(&s->sem);
}

int thpool_fanout(unsigned workers, uint64_t n, unsigned limit, uint64_t work_ns,
    bench_fanout *r, bench_out *o)
{
	struct fan_state s = { .work_ns = work_ns };
	threadpool tp = thpool_init((int)workers);
	uint64_t t0;
	int rc;

	if (tp == NULL || sem_init(&s.sem, 0, limit) != 0) {
		snprintf(o->err, sizeof(o->err), "thpool: setup");
		return -1;
	}
	bench_reset_peak_rss();
	s.rss0 = bench_rss_kib();
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		while (sem_wait(&s.sem) != 0)
			;
		if (thpool_add_work(tp, thp_call, &s) != 0) {
			snprintf(o->err, sizeof(o->err), "thpool_add_work failed");
			thpool_destroy(tp);
			return -1;
		}
	}
	thpool_wait(tp);
	rc = finish(&s, n, t0, r, o);
	thpool_destroy(tp);
	sem_destroy(&s.sem);
	return rc;
}
