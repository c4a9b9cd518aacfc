/* strix behind the shared harness: the public API only, default options but the worker count. */
#include <strix.h>

#include "workloads.h"

static void *strix_create(unsigned workers)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	o.workers = workers;
	return sx_pool_create(&o, &p) == 0 ? p : NULL;
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
