/* The pool: plain fn(arg) tasks and an intrusive sx_task embedded in the caller's struct, a wait
 * until every task has run, a draining shutdown, and the counters it leaves. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strix.h>

static atomic_int sum;

static void add(void *arg) { atomic_fetch_add(&sum, *(const int *)arg); }

struct job { sx_task task; int value; };      /* strix links the task in place: no allocation */

static void run_job(sx_task *t)
{
	atomic_fetch_add(&sum, SX_CONTAINER_OF(t, struct job, task)->value);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_pool_opts opts = SX_POOL_OPTS_INIT;
	struct job job = { SX_TASK_INIT(run_job, NULL), 1000 };
	static int values[100];
	sx_pool_counters st;
	sx_pool *pool;
	int rc;

	opts.workers = 2;                         /* 0: one per CPU */
	if ((rc = sx_pool_create(&opts, &pool)) != 0)
		return fail("sx_pool_create", rc);
	for (int i = 0; i < 100; i++) {
		values[i] = i + 1;
		if ((rc = sx_pool_submit(pool, add, &values[i])) != 0)  /* from any thread */
			return fail("sx_pool_submit", rc);
	}
	if ((rc = sx_pool_submit_task(pool, &job.task)) != 0)
		return fail("sx_pool_submit_task", rc);
	if ((rc = sx_pool_wait_idle(pool)) != 0)  /* every task, and what they spawned, has run */
		return fail("sx_pool_wait_idle", rc);
	if ((rc = sx_pool_shutdown(pool, SX_DRAIN)) != 0)  /* or SX_CANCEL: drop what has not run */
		return fail("sx_pool_shutdown", rc);
	if ((rc = sx_pool_submit(pool, add, &values[0])) != -ESHUTDOWN)
		return fail("sx_pool_submit after shutdown", rc);
	if ((rc = sx_pool_stats(pool, &st, NULL, 0)) != 0)  /* final: the workers are joined */
		return fail("sx_pool_stats", rc);
	printf("sum %d: %u workers ran %llu tasks\n", atomic_load(&sum), st.workers,
	    (unsigned long long)st.executed);
	sx_pool_destroy(pool);
	return atomic_load(&sum) == 5050 + 1000 && st.executed == 101 ? 0 : 1;
}
