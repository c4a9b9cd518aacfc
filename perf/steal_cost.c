/*
 * Two workers, A and B. B runs a gate task that blocks on a semaphore; then a task on A spawns N
 * empty tasks into A's own queue - each new one goes to A's LIFO slot and pushes the one before
 * it onto A's ring - opens the gate, and blocks on another semaphore without running any of
 * them. B, out of the gate, steals them all: about half of A's ring at a time (the first it runs
 * at once, the rest from its own ring), and at the end A's LIFO slot, since A makes no progress.
 * The last task posts A's semaphore.
 *
 * steal_cost N R runs one such round to warm up (the task nodes' slabs are allocated there, and
 * later rounds recycle them), then R more, and prints the pool's counters: tasks stolen (every
 * task: R + 1 rounds of N) and steal operations. perf/profile.sh runs it under callgrind with R
 * and with 0; the difference divided by the difference in tasks stolen is the cost of one task
 * moved by stealing: its spawn on A, its share of the steal, its run on B, and its share of a
 * round's fixed cost (two outside submits, the semaphores, B's search, wait_idle).
 *
 * The count is repeatable: valgrind runs one thread at a time (--fair-sched=yes hands its lock
 * round in a fixed order). While A spawns, B is busy in the gate, so no spawn wakes anyone (no
 * system call A could be switched out in) and B sees A's queue only once it is complete; no
 * worker spins on the clock (SX_SPIN_NONE).
 */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "perf_api.h"

struct job {
	sx_pool *pool;
	unsigned long n;
	unsigned long ran;
	sem_t gate_in, go, done;
};

static void wait_sem(sem_t *s)
{
	while (sem_wait(s) != 0)
		;
}

/* Give both workers time to park (in real time: a blocking call, the same instructions however
 * long it takes). Then every round starts the same way: the gate wakes worker 0 (the lowest
 * parked one), and the spawner the other, worker 1; so each worker's node lists, and the
 * allocator's caches, go through the same states in every run. */
static void settle(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void empty(void *arg)
{
	struct job *j = arg;

	if (__atomic_add_fetch(&j->ran, 1, __ATOMIC_ACQ_REL) == j->n)
		sem_post(&j->done);
}

/* On B: hold it until A's queue is full. */
static void gate(void *arg)
{
	struct job *j = arg;

	sem_post(&j->gate_in);
	wait_sem(&j->go);
}

/* On A. */
static void spawner(void *arg)
{
	struct job *j = arg;

	for (unsigned long i = 0; i < j->n; i++)
		if (sx_pool_submit(j->pool, empty, j) != 0)
			abort();
	sem_post(&j->go);
	if (j->n != 0)
		wait_sem(&j->done);
}

int main(int argc, char **argv)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool_counters c;
	sx_worker_counters wc[2];
	struct job j = { .n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000 };
	unsigned long rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;

	o.workers = 2;
	o.ring_size = 4096; /* room for N - 1 < 4096 tasks: none overflows to the injector */
	o.spin_ns = SX_SPIN_NONE;
	if (j.n >= o.ring_size || sem_init(&j.gate_in, 0, 0) != 0 || sem_init(&j.go, 0, 0) != 0 ||
	    sem_init(&j.done, 0, 0) != 0)
		return 1;
	if (perf_pool_create(&j.pool, &o) != 0)
		return 1;
	for (unsigned long r = 0; r <= rounds; r++) {
		settle();
		__atomic_store_n(&j.ran, 0, __ATOMIC_RELEASE);
		if (sx_pool_submit(j.pool, gate, &j) != 0)
			return 1;
		wait_sem(&j.gate_in);
		if (sx_pool_submit(j.pool, spawner, &j) != 0 || sx_pool_wait_idle(j.pool) != 0)
			return 1;
		if (__atomic_load_n(&j.ran, __ATOMIC_ACQUIRE) != j.n) {
			fprintf(stderr, "round %lu ran %lu of %lu\n", r, j.ran, j.n);
			return 1;
		}
	}
	if (sx_pool_stats(j.pool, &c, wc, 2) != 0)
		return 1;
	sx_pool_destroy(j.pool);
	/* roles: 1 when worker 0 stole every task, as settle() arranges; else the count may vary */
	printf("tasks=%lu stolen=%llu steals=%llu roles=%d\n", j.n * (rounds + 1),
	    (unsigned long long)c.total.stolen, (unsigned long long)c.total.steals,
	    wc[0].stolen == j.n * (rounds + 1));
	return 0;
}
