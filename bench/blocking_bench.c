/*
 * blocking: short CPU tasks submitted at a steady rate from an outside thread (about 1 us of work
 * each, one every gap_ns), their submit -> start latency recorded, while a second outside thread
 * adds blocking calls (1 ms sleeps, one every 1 ms / workers: as many in flight as there are
 * workers) in one of three ways:
 *   none:    no blocking calls: the floor.
 *   workers: the calls run as ordinary pool tasks: they hold the workers, the CPU tasks queue
 *            behind them (the starvation a side pool prevents).
 *   side:    the calls go to the pool's side threads (sx_pool_spawn_blocking).
 * Checked: every CPU task and every blocking call ran exactly once.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <strix.h>

#include "hist.h"
#include "workloads.h"

#define BLOCK_NS 1000000u
#define WORK_NS 1000u

struct cpu_slot {
	uint64_t t_submit;
	uint64_t lat;
	atomic_uint ran;
};

struct blk {
	sx_pool *pool;
	int mode;                  /* BENCH_BLOCKING_* */
	unsigned workers;
	atomic_bool stop;
	atomic_uint_fast64_t calls_submitted, calls_ran;
	int rc;
};

static void cpu_task(void *arg)
{
	struct cpu_slot *s = arg;
	uint64_t t = bench_now_ns(), until = t + WORK_NS;

	s->lat = t - s->t_submit;
	while (bench_now_ns() < until)
		;
	atomic_fetch_add_explicit(&s->ran, 1, memory_order_release);
}

static void blocking_call(void *arg)
{
	struct blk *b = arg;
	struct timespec ts = { 0, BLOCK_NS };

	while (nanosleep(&ts, &ts) != 0)
		;
	atomic_fetch_add_explicit(&b->calls_ran, 1, memory_order_release);
}

static void *blocker_main(void *arg)
{
	struct blk *b = arg;
	uint64_t gap = BLOCK_NS / b->workers, next = bench_now_ns();

	while (!atomic_load_explicit(&b->stop, memory_order_acquire)) {
		int rc = b->mode == BENCH_BLOCKING_SIDE ? sx_pool_spawn_blocking(b->pool, blocking_call, b)
		                                        : sx_pool_submit(b->pool, blocking_call, b);

		if (rc != 0) {
			b->rc = rc;
			break;
		}
		atomic_fetch_add_explicit(&b->calls_submitted, 1, memory_order_relaxed);
		next += gap;
		uint64_t now = bench_now_ns();
		if (next > now)
			bench_sleep_ns(next - now);
	}
	return NULL;
}

int bench_blocking(unsigned workers, int mode, uint64_t samples, uint64_t gap_ns, bench_hist *h,
    bench_out *o)
{
	static const char *names[] = { "none", "workers", "side" };
	struct blk b = { .mode = mode, .workers = workers != 0 ? workers : 1 };
	struct cpu_slot *slots = calloc(samples, sizeof(*slots));
	pthread_t blocker;
	uint64_t t0, next;
	int rc = 0;

	if (slots == NULL || (b.pool = bench_strix_pool(workers, o)) == NULL) {
		free(slots);
		if (o->err[0] == 0)
			snprintf(o->err, sizeof(o->err), "blocking: out of memory");
		return -1;
	}
	if (mode != BENCH_BLOCKING_NONE && pthread_create(&blocker, NULL, blocker_main, &b) != 0) {
		snprintf(o->err, sizeof(o->err), "blocking: no blocker thread");
		sx_pool_destroy(b.pool);
		free(slots);
		return -1;
	}
	/* Let the blocking load reach its steady state (and the side threads start) first. */
	bench_sleep_ns(mode != BENCH_BLOCKING_NONE ? 20 * BLOCK_NS : 0);
	t0 = next = bench_now_ns();
	for (uint64_t i = 0; i < samples && rc == 0; i++) {
		uint64_t now;

		next += gap_ns;
		now = bench_now_ns();
		if (next > now)
			bench_sleep_ns(next - now);
		slots[i].t_submit = bench_now_ns();
		rc = sx_pool_submit(b.pool, cpu_task, &slots[i]);
	}
	for (uint64_t i = 0; i < samples && rc == 0; i++)
		while (atomic_load_explicit(&slots[i].ran, memory_order_acquire) == 0)
			bench_sleep_ns(10000);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	atomic_store_explicit(&b.stop, true, memory_order_release);
	if (mode != BENCH_BLOCKING_NONE)
		pthread_join(blocker, NULL);
	sx_pool_destroy(b.pool); /* drains what blocking calls are still queued */
	if (rc == 0)
		rc = b.rc;
	if (rc == 0 && atomic_load(&b.calls_ran) != atomic_load(&b.calls_submitted)) {
		snprintf(o->err, sizeof(o->err), "blocking/%s: %llu of %llu blocking calls ran",
		    names[mode], (unsigned long long)atomic_load(&b.calls_ran),
		    (unsigned long long)atomic_load(&b.calls_submitted));
		rc = -1;
	}
	for (uint64_t i = 0; i < samples && rc == 0; i++) {
		if (atomic_load(&slots[i].ran) != 1) {
			snprintf(o->err, sizeof(o->err), "blocking/%s: task %llu ran %u times",
			    names[mode], (unsigned long long)i, atomic_load(&slots[i].ran));
			rc = -1;
		}
		hist_record(h, slots[i].lat);
	}
	if (rc > 0 || (rc < 0 && o->err[0] == 0))
		snprintf(o->err, sizeof(o->err), "blocking/%s: submit failed (%d)", names[mode], rc);
	o->tasks = rc == 0 ? samples : 0;
	free(slots);
	return rc == 0 ? 0 : -1;
}
