/*
 * consumer - a program that uses strix only through its installed headers and libraries
 * (tests/install/run.sh builds it against a temporary prefix with pkg-config and with CMake).
 * Runs a small pool, counts the tasks it ran and checks the header and library versions agree.
 * Exit 0 on success.
 */
#include <strix.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define TASKS 1000

static atomic_int ran;

static void task(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
}

int main(void)
{
	if (strcmp(sx_version(), STRIX_VERSION_STRING) != 0) {
		fprintf(stderr, "consumer: library %s, header %s\n", sx_version(), STRIX_VERSION_STRING);
		return 1;
	}
	sx_pool_opts opts = SX_POOL_OPTS_INIT;
	opts.workers = 2;
	sx_pool *pool;
	int rc = sx_pool_create(&opts, &pool);
	if (rc != 0) {
		fprintf(stderr, "consumer: sx_pool_create: %d\n", rc);
		return 1;
	}
	for (int i = 0; i < TASKS; i++) {
		rc = sx_pool_submit(pool, task, NULL);
		if (rc != 0) {
			fprintf(stderr, "consumer: sx_pool_submit: %d\n", rc);
			return 1;
		}
	}
	rc = sx_pool_wait_idle(pool);
	if (rc == 0)
		rc = sx_pool_shutdown(pool, SX_DRAIN);
	sx_pool_destroy(pool);
	if (rc != 0 || atomic_load(&ran) != TASKS) {
		fprintf(stderr, "consumer: rc %d, %d of %d tasks ran\n", rc, atomic_load(&ran), TASKS);
		return 1;
	}
	return 0;
}
