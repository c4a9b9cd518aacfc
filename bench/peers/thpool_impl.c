/*
 * Pithikos C-Thread-Pool (Debian cthreadpool-dev) behind the shared harness, compiled from the
 * thpool.c the package ships and used as its README shows: thpool_init, thpool_add_work,
 * thpool_wait, thpool_destroy.
 */
#include <cthreadpool/thpool.h>

#include "../workloads.h"

static void *thp_create(unsigned workers)
{
	return thpool_init((int)workers);
}

static int thp_submit(void *p, void (*fn)(void *), void *arg)
{
	return thpool_add_work(p, fn, arg);
}

static void thp_wait_idle(void *p)
{
	thpool_wait(p);
}

static void thp_destroy(void *p)
{
	thpool_destroy(p);
}

const bench_pool_api bench_thpool_api = {
	"thpool", thp_create, thp_submit, thp_wait_idle, thp_destroy,
};
