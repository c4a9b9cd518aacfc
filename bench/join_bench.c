/*
 * The fork-join workloads for strix (B3 fib, B2 skynet) on sx_join and sx_scope, public API only:
 * every fork's record lives on the forking worker's stack. Each checks its own result.
 */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include <strix.h>

#include "workloads.h"

static sx_pool *jpool;

/* Run fn(arg) as one task of the pool and wait for it (the root of the recursion). */
struct root {
	void (*fn)(void *);
	void *arg;
	sem_t done;
};

static void root_run(void *p)
{
	struct root *r = p;

	r->fn(r->arg);
	sem_post(&r->done);
}

static int run_root(void (*fn)(void *), void *arg)
{
	struct root r = { .fn = fn, .arg = arg };
	int rc;

	sem_init(&r.done, 0, 0);
	rc = sx_pool_submit(jpool, root_run, &r);
	if (rc == 0)
		while (sem_wait(&r.done) != 0)
			;
	sem_destroy(&r.done);
	return rc;
}

/* ---- B3 fib: both calls forked with sx_join at every level, no cutoff ---------------------- */

struct fib {
	unsigned n;
	uint64_t r;
};

static void fib_task(void *p)
{
	struct fib *f = p, a, b;

	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	a.n = f->n - 1;
	b.n = f->n - 2;
	if (sx_join(jpool, fib_task, &a, fib_task, &b) != 0)
		abort();
	f->r = a.r + b.r;
}

int strix_fib(unsigned workers, unsigned n, bench_out *o)
{
	struct fib root = { n, 0 };
	uint64_t t0;
	int rc;

	if ((jpool = bench_strix_pool(workers, o)) == NULL)
		return -1;
	t0 = bench_now_ns();
	rc = run_root(fib_task, &root);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_destroy(jpool);
	if (rc != 0 || root.r != bench_fib_expected(n)) {
		snprintf(o->err, sizeof(o->err), "strix fib(%u) = %llu (rc %d), want %llu", n,
		    (unsigned long long)root.r, rc, (unsigned long long)bench_fib_expected(n));
		return -1;
	}
	o->tasks = bench_fib_calls(n);
	return 0;
}

/* ---- B2 skynet: a 10-ary tree, each node's children forked in one sx_scope ----------------- */

struct sky {
	uint64_t num, size, sum;
};

static void sky_task(void *p)
{
	struct sky *s = p, kids[10];
	sx_job jobs[10];
	sx_scope scope;

	if (s->size == 1) {
		s->sum = s->num;
		return;
	}
	sx_scope_init(&scope, jpool);
	for (int i = 0; i < 10; i++) {
		kids[i].num = s->num + (uint64_t)i * (s->size / 10);
		kids[i].size = s->size / 10;
		if (sx_scope_spawn(&scope, &jobs[i], sky_task, &kids[i]) != 0)
			abort();
	}
	if (sx_scope_wait(&scope) != 0)
		abort();
	s->sum = 0;
	for (int i = 0; i < 10; i++)
		s->sum += kids[i].sum;
}

int strix_skynet(unsigned workers, uint64_t leaves, double *rss_kib, bench_out *o)
{
	struct sky root = { 0, leaves, 0 };
	uint64_t t0, want = leaves * (leaves - 1) / 2, nodes = 0;
	int rc;

	for (uint64_t s = leaves; s >= 1; s /= 10)
		nodes += leaves / s;
	if ((jpool = bench_strix_pool(workers, o)) == NULL)
		return -1;
	bench_reset_peak_rss();
	t0 = bench_now_ns();
	rc = run_root(sky_task, &root);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	*rss_kib = bench_peak_rss_kib();
	sx_pool_destroy(jpool);
	if (rc != 0 || root.sum != want) {
		snprintf(o->err, sizeof(o->err), "strix skynet = %llu (rc %d), want %llu",
		    (unsigned long long)root.sum, rc, (unsigned long long)want);
		return -1;
	}
	o->tasks = nodes;
	return 0;
}
