/* strix behind the shared harness: the public API only, default options but the worker count. */
#include <stdio.h>

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
