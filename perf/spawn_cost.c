/*
 * One pool worker spawns N empty tasks on its local path (LIFO slot + ring) and runs them; the
 * process does nothing else. Run under callgrind with N and with 0: the difference divided by N
 * is the instruction count of one spawn + run on the local path (perf/profile.sh does this).
 */
#include <stdio.h>
#include <stdlib.h>

#include "perf_api.h"

struct job {
	sx_pool *pool;
	unsigned long n;
	unsigned long ran; /* one worker: no atomics needed */
};

static void empty(void *arg)
{
	((struct job *)arg)->ran++;
}

static void spawner(void *arg)
{
	struct job *j = arg;

	for (unsigned long i = 0; i < j->n; i++)
		if (sx_pool_submit(j->pool, empty, j) != 0)
			abort();
}

int main(int argc, char **argv)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct job j = { NULL, argc > 1 ? strtoul(argv[1], NULL, 10) : 100000, 0 };

	o.workers = 1;
	o.spin_ns = SX_SPIN_NONE;
	if (perf_pool_create(&j.pool, &o) != 0)
		return 1;
	if (sx_pool_submit(j.pool, spawner, &j) != 0 || sx_pool_wait_idle(j.pool) != 0)
		return 1;
	sx_pool_destroy(j.pool);
	if (j.ran != j.n) {
		fprintf(stderr, "ran %lu of %lu\n", j.ran, j.n);
		return 1;
	}
	return 0;
}
