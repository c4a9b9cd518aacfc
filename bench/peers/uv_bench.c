/*
 * libuv's thread pool (uv_queue_work), used as its documentation shows. Work can only be queued
 * from the loop's thread, so for uv both B1 and B1r submit from the loop thread (there is no
 * "from inside a worker" path); the after-work callbacks run on the loop thread, as they must.
 * The pool size is UV_THREADPOOL_SIZE, which bench_main sets to the worker count before libuv
 * starts its threads.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "../workloads.h"

static atomic_uint_fast64_t countdown;

static void work_cb(uv_work_t *req)
{
	(void)req;
	atomic_fetch_sub_explicit(&countdown, 1, memory_order_acq_rel);
}

static void after_cb(uv_work_t *req, int status)
{
	(void)req;
	(void)status;
}

static int run(uint64_t n, bench_out *o)
{
	uv_work_t *reqs = calloc(n, sizeof(*reqs));
	uv_loop_t loop;
	uint64_t t0;
	int rc = 0;

	if (reqs == NULL || uv_loop_init(&loop) != 0) {
		free(reqs);
		snprintf(o->err, sizeof(o->err), "uv: setup failed");
		return -1;
	}
	atomic_store(&countdown, n);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (uv_queue_work(&loop, &reqs[i], work_cb, after_cb) != 0) {
			rc = -1;
			atomic_fetch_sub(&countdown, 1);
		}
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - atomic_load(&countdown);
	uv_loop_close(&loop);
	free(reqs);
	if (rc != 0 || o->tasks != n) {
		snprintf(o->err, sizeof(o->err), "uv: %llu of %llu tasks ran",
		    (unsigned long long)o->tasks, (unsigned long long)n);
		rc = -1;
	}
	return rc;
}

int uv_spawn_many(unsigned workers, uint64_t n, bench_out *o)
{
	(void)workers;
	return run(n, o);
}

int uv_spawn_remote(unsigned workers, uint64_t n, bench_out *o)
{
	(void)workers;
	return run(n, o);
}
