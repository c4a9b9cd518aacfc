/* strix behind the shared harness: the public API only, default options but the worker count. */
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <strix.h>

#include "workloads.h"

struct sx_pool *bench_strix_pool(unsigned workers, bench_out *o)
{
	sx_pool_opts opts = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	opts.workers = workers;
	if (sx_pool_create(&opts, &p) != 0) {
		snprintf(o->err, sizeof(o->err), "strix: pool create failed");
		return NULL;
	}
	return p;
}

static void *strix_create(unsigned workers)
{
	bench_out unused;

	return bench_strix_pool(workers, &unused);
}

static int strix_submit(void *p, void (*fn)(void *), void *arg)
{
	return sx_pool_submit(p, fn, arg);
}

static void strix_wait_idle(void *p)
{
	sx_pool_wait_idle(p);
}

static void strix_destroy(void *p)
{
	sx_pool_destroy(p);
}

const bench_pool_api bench_strix_api = {
	"strix", strix_create, strix_submit, strix_wait_idle, strix_destroy,
};

/* ---- resized while it runs ---------------------------------------------------------------------
 * The same pool behind the harness, with a thread that resizes it every 10 ms between its worker
 * count and one (or two, for a one-worker run) while the workload runs: spawn_many_resized. */

struct resized {
	sx_pool *pool;
	pthread_t th;
	atomic_int stop;
	unsigned hi, lo;
	atomic_uint_fast64_t resizes;
};

static void *resizer(void *arg)
{
	struct resized *r = arg;
	struct timespec ts = { 0, 10000000 };

	for (unsigned i = 0; !atomic_load(&r->stop); i++) {
		nanosleep(&ts, NULL);
		if (sx_pool_resize(r->pool, i % 2 ? r->hi : r->lo) == 0)
			atomic_fetch_add(&r->resizes, 1);
	}
	return NULL;
}

static void *resized_create(unsigned workers)
{
	sx_pool_opts opts = SX_POOL_OPTS_INIT;
	struct resized *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->hi = workers > 1 ? workers : 2;
	r->lo = 1;
	opts.workers = workers;
	opts.max_workers = r->hi;
	if (sx_pool_create(&opts, &r->pool) != 0 ||
	    pthread_create(&r->th, NULL, resizer, r) != 0) {
		sx_pool_destroy(r->pool);
		free(r);
		return NULL;
	}
	return r;
}

static int resized_submit(void *p, void (*fn)(void *), void *arg)
{
	return sx_pool_submit(((struct resized *)p)->pool, fn, arg);
}

static void resized_wait_idle(void *p)
{
	sx_pool_wait_idle(((struct resized *)p)->pool);
}

static void resized_destroy(void *p)
{
	struct resized *r = p;

	atomic_store(&r->stop, 1);
	pthread_join(r->th, NULL);
	sx_pool_destroy(r->pool);
	free(r);
}

const bench_pool_api bench_strix_resized_api = {
	"strix (resized every 10 ms)", resized_create, resized_submit, resized_wait_idle,
	resized_destroy,
};

/* ---- yield ------------------------------------------------------------------------------------ */

struct yielder {
	sx_task task;
	sx_pool *pool;
	uint64_t left;              /* yields still to make: this task's alone */
	atomic_uint_fast64_t *live; /* tasks not finished */
	sem_t *done;
} __attribute__((aligned(64)));

static void yielder_run(sx_task *t)
{
	struct yielder *y = SX_CONTAINER_OF(t, struct yielder, task);

	if (y->left != 0) {
		y->left--;
		if (sx_pool_yield_task(y->pool, &y->task) == 0)
			return;
	}
	if (atomic_fetch_sub_explicit(y->live, 1, memory_order_acq_rel) == 1)
		sem_post(y->done);
}

int strix_yield(unsigned workers, uint64_t n, bench_out *o)
{
	static struct yielder ys[BENCH_YIELD_TASKS];
	uint64_t each = n / BENCH_YIELD_TASKS, t0, left = 0;
	atomic_uint_fast64_t live = BENCH_YIELD_TASKS;
	sx_pool *p;
	sem_t done;

	if (each == 0) {
		snprintf(o->err, sizeof(o->err), "yield: fewer yields than tasks");
		return -1;
	}
	if ((p = bench_strix_pool(workers, o)) == NULL)
		return -1;
	sem_init(&done, 0, 0);
	for (unsigned i = 0; i < BENCH_YIELD_TASKS; i++)
		ys[i] = (struct yielder){ .task = SX_TASK_INIT(yielder_run, NULL), .pool = p,
		                          .left = each, .live = &live, .done = &done };
	t0 = bench_now_ns();
	for (unsigned i = 0; i < BENCH_YIELD_TASKS; i++) {
		if (sx_pool_submit_task(p, &ys[i].task) != 0) {
			snprintf(o->err, sizeof(o->err), "yield: submit failed");
			abort(); /* the countdown could not end */
		}
	}
	sem_wait(&done);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_destroy(p);
	sem_destroy(&done);
	for (unsigned i = 0; i < BENCH_YIELD_TASKS; i++)
		left += ys[i].left;
	o->tasks = each * BENCH_YIELD_TASKS - left;
	if (left != 0) {
		snprintf(o->err, sizeof(o->err), "yield: %llu yields refused",
		    (unsigned long long)left);
		return -1;
	}
	return 0;
}
