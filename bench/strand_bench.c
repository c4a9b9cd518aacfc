/*
 * The strand workloads for strix, public API only; each checks its own result.
 *
 * strand_spawn: from inside one worker, n empty tasks posted round-robin to `strands` strands;
 * each task checks that its strand runs one task at a time (a per-strand flag that must be clear
 * on entry) and in posting order (a per-strand sequence number); a countdown ends the run.
 * strand_pingpong: two strands as actors; a task of one stamps the time and submits the next
 * hand-off to the other, whose task records the latency; one sample per hand-off, the first 1%
 * of round trips not recorded.
 */
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <strix.h>

#include "workloads.h"

/* ---- strand_spawn ---------------------------------------------------------------------------- */

struct lane {
	sx_strand *s;
	atomic_int running;
	uint64_t seq;       /* the next task's number: only the strand's tasks touch it */
	uint64_t bad;
} __attribute__((aligned(64)));

struct spawn_run {
	struct lane *lanes;
	unsigned strands;
	uint64_t n;
	atomic_uint_fast64_t left;
	int rc;
	sem_t done;
};

static struct spawn_run *sr;

static void lane_task(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	struct lane *l = &sr->lanes[v % sr->strands];

	if (atomic_exchange_explicit(&l->running, 1, memory_order_acquire) != 0)
		l->bad++;
	if (l->seq++ != v / sr->strands)
		l->bad++;
	atomic_store_explicit(&l->running, 0, memory_order_release);
	if (atomic_fetch_sub_explicit(&sr->left, 1, memory_order_acq_rel) == 1)
		sem_post(&sr->done);
}

static void spawner(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < sr->n; i++) {
		if (sx_strand_submit(sr->lanes[i % sr->strands].s, lane_task, (void *)(uintptr_t)i)) {
			sr->rc = -1;
			abort(); /* the countdown could not end: nothing sensible to report */
		}
	}
}

int strix_strand_spawn(unsigned workers, uint64_t n, unsigned strands, bench_out *o)
{
	struct spawn_run run = { .strands = strands, .n = n };
	uint64_t t0, bad = 0;
	sx_pool *pool;
	int rc = 0;

	if ((pool = bench_strix_pool(workers, o)) == NULL)
		return -1;
	run.lanes = aligned_alloc(64, sizeof(struct lane) * strands);
	for (unsigned i = 0; i < strands; i++) {
		run.lanes[i] = (struct lane){ 0 };
		if (sx_strand_create(pool, &run.lanes[i].s) != 0)
			abort();
	}
	atomic_store(&run.left, n);
	sem_init(&run.done, 0, 0);
	sr = &run;
	t0 = bench_now_ns();
	if (sx_pool_submit(pool, spawner, NULL) != 0)
		abort();
	while (sem_wait(&run.done) != 0)
		;
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_wait_idle(pool);
	for (unsigned i = 0; i < strands; i++) {
		bad += run.lanes[i].bad;
		sx_strand_destroy(run.lanes[i].s);
	}
	sx_pool_destroy(pool);
	free(run.lanes);
	sem_destroy(&run.done);
	if (bad != 0 || run.rc != 0) {
		snprintf(o->err, sizeof(o->err), "strix strand_spawn: %llu tasks out of turn",
		    (unsigned long long)bad);
		rc = -1;
	}
	o->tasks = n;
	return rc;
}

/* ---- strand_pingpong -------------------------------------------------------------------------- */

struct pp {
	sx_strand *side[2];
	bench_hist *h;
	uint64_t total, warmup, handoffs, recorded, wrong_side;
	uint64_t t_send;
	sem_t done;
};

static struct pp *pp;

/* arg: the actor this task runs on (0: A, 1: B). Only one hand-off is ever in flight, so the
 * shared fields are written by one task at a time, each after the submission of the last. */
static void receive(void *arg)
{
	int me = (int)(uintptr_t)arg;
	uint64_t t = bench_now_ns();

	if (pp->handoffs++ >= pp->warmup) {
		hist_record(pp->h, t - pp->t_send);
		pp->recorded++;
	}
	if ((int)(pp->handoffs & 1) != me) /* hand-off 1 goes A -> B */
		pp->wrong_side++;
	if (pp->handoffs == pp->total) {
		sem_post(&pp->done);
		return;
	}
	pp->t_send = bench_now_ns();
	if (sx_strand_submit(pp->side[!me], receive, (void *)(uintptr_t)!me) != 0)
		abort();
}

static void start_pp(void *arg)
{
	(void)arg;
	pp->t_send = bench_now_ns();
	if (sx_strand_submit(pp->side[1], receive, (void *)(uintptr_t)1) != 0)
		abort();
}

int strix_strand_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o)
{
	uint64_t warm = rounds / 100, t0;
	struct pp p = { .h = h, .total = 2 * (rounds + warm), .warmup = 2 * warm };
	sx_pool *pool;
	int rc = 0;

	if ((pool = bench_strix_pool(workers, o)) == NULL)
		return -1;
	if (sx_strand_create(pool, &p.side[0]) != 0 || sx_strand_create(pool, &p.side[1]) != 0)
		abort();
	sem_init(&p.done, 0, 0);
	pp = &p;
	t0 = bench_now_ns();
	if (sx_strand_submit(p.side[0], start_pp, NULL) != 0)
		abort();
	while (sem_wait(&p.done) != 0)
		;
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	sx_pool_wait_idle(pool);
	sx_strand_destroy(p.side[0]);
	sx_strand_destroy(p.side[1]);
	sx_pool_destroy(pool);
	sem_destroy(&p.done);
	if (p.wrong_side != 0 || p.handoffs != p.total) {
		snprintf(o->err, sizeof(o->err), "strix strand_pingpong: %llu hand-offs on the wrong "
		    "side, %llu of %llu", (unsigned long long)p.wrong_side,
		    (unsigned long long)p.handoffs, (unsigned long long)p.total);
		rc = -1;
	}
	o->tasks = p.recorded;
	return rc;
}
