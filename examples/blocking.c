/* Blocking work beside the pool: a blocking call (here a sleep standing for a read from a slow
 * disk) goes to the pool's side threads with sx_pool_spawn_blocking, so the workers keep
 * running tasks meanwhile; sx_promise_blocking does the same for a step whose value the chain's
 * next step, back on the pool, uses. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <strix.h>

static atomic_int slow_done, quick_done;

static void slow_read(void *arg)                 /* blocks: a side thread, never a worker */
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	(void)arg;
	nanosleep(&ts, NULL);
	atomic_fetch_add(&slow_done, 1);
}

static void quick(void *arg) { (void)arg; atomic_fetch_add(&quick_done, 1); }

static int load_config(sx_ctx *ctx, void *last, void **out)  /* a blocking step */
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	(void)ctx;
	(void)last;
	nanosleep(&ts, NULL);
	*out = "config loaded";
	return 0;
}

static int use_config(sx_ctx *ctx, void *last, void **out)   /* runs on a worker */
{
	(void)ctx;
	*out = last;
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_pool_opts opts = SX_POOL_OPTS_INIT;
	sx_promise *cfg, *used;
	sx_pool_counters st;
	void *value = NULL;
	sx_pool *pool;
	int rc;

	opts.workers = 1;                      /* one worker: a blocking task there would stall it */
	opts.blocking_max_threads = 8;         /* 0: 512 */
	opts.blocking_idle_ns = 100 * 1000 * 1000; /* an idle side thread exits after 100 ms */
	if ((rc = sx_pool_create(&opts, &pool)) != 0)
		return fail("sx_pool_create", rc);
	for (int i = 0; i < 4; i++)
		if ((rc = sx_pool_spawn_blocking(pool, slow_read, NULL)) != 0)
			return fail("sx_pool_spawn_blocking", rc);
	for (int i = 0; i < 100; i++)          /* the worker is free: these run at once */
		if ((rc = sx_pool_submit(pool, quick, NULL)) != 0)
			return fail("sx_pool_submit", rc);
	if ((rc = sx_pool_wait_idle(pool)) != 0) /* the pool's tasks, not the blocking ones */
		return fail("sx_pool_wait_idle", rc);
	printf("%d quick tasks ran while %d of 4 slow reads had finished\n",
	    atomic_load(&quick_done), atomic_load(&slow_done));

	if ((rc = sx_promise_blocking(pool, load_config, NULL, &cfg)) != 0)
		return fail("sx_promise_blocking", rc);
	if ((rc = sx_promise_then(cfg, use_config, NULL, &used)) != 0)
		return fail("sx_promise_then", rc);
	if ((rc = sx_promise_get(used, -1, &value)) != 0)
		return fail("sx_promise_get", rc);
	printf("%s\n", (const char *)value);
	sx_promise_release(cfg);
	sx_promise_release(used);

	if ((rc = sx_pool_shutdown(pool, SX_DRAIN)) != 0)  /* runs blocking work still queued */
		return fail("sx_pool_shutdown", rc);
	if ((rc = sx_pool_spawn_blocking(pool, slow_read, NULL)) != -ESHUTDOWN)
		return fail("sx_pool_spawn_blocking after shutdown", rc);
	if ((rc = sx_pool_stats(pool, &st, NULL, 0)) != 0)
		return fail("sx_pool_stats", rc);
	printf("%d slow reads done; side threads left: %llu\n", atomic_load(&slow_done),
	    (unsigned long long)st.blocking_threads);
	sx_pool_destroy(pool);
	return atomic_load(&quick_done) == 100 && atomic_load(&slow_done) == 4 &&
	    st.blocking_threads == 0 ? 0 : 1;
}
