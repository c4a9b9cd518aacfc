/* A pipeline: every call runs under a fallback, a 20 ms timeout, up to 3 attempts and a bulkhead
 * of 4. A flaky call succeeds on its second attempt; a hung one is cut off and falls back. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <strix.h>

static int fresh = 42, cached = 41;

static int flaky(sx_call *call)
{
	if (call->attempt == 1)
		return -EAGAIN;                 /* retried after 1 ms */
	call->out = &fresh;
	return 0;
}

static int hung(sx_call *call)                  /* returns when the timeout trips its breaker */
{
	int rc = sx_breaker_wait(call->breaker, 1000000000);

	return rc != 0 ? rc : sx_breaker_err(call->breaker);
}

static bool timed_out(int err, void *arg) { (void)arg; return err == -ETIMEDOUT; }

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

static int use_cache(sx_call *call, int err, void *arg)
{
	(void)arg;
	printf("  falling back after: %s\n", sx_strerror(err));
	call->out = &cached;
	return 0;                               /* the call's result */
}

int main(void)
{
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_retry_policy retry = SX_RETRY_POLICY_INIT;
	void *a = NULL, *b = NULL;
	sx_sem *db;
	sx_pipeline *pl;
	sx_pool *pool;
	int rc;

	retry.max_attempts = 3;
	retry.backoff = SX_BACKOFF_CONSTANT;
	retry.base_ns = 1000000;
	if ((rc = sx_pool_create(NULL, &pool)) != 0 || (rc = sx_sem_create(NULL, 4, &db)) != 0)
		return fail("setting up", rc);
	po.pool = pool;                         /* timeouts run on its timer service */
	if ((rc = sx_pipeline_create(&po, &pl)) != 0 ||  /* the first layer added is outermost */
	    (rc = sx_pipeline_add_fallback(pl, use_cache, timed_out, NULL)) != 0 ||
	    (rc = sx_pipeline_add_timeout(pl, 20000000)) != 0 ||  /* 20 ms, retries included */
	    (rc = sx_pipeline_add_retry(pl, &retry, 0)) != 0 ||
	    (rc = sx_pipeline_add_bulkhead(pl, db, 0)) != 0)  /* SX_EREJECTED beyond 4 at once */
		return fail("building the pipeline", rc);
	if ((rc = sx_pipeline_call(pl, flaky, NULL, NULL, &a)) != 0 || a != &fresh)
		return fail("the flaky call", rc);
	printf("flaky: %d\n", *(int *)a);
	if ((rc = sx_pipeline_call(pl, hung, NULL, NULL, &b)) != 0 || b != &cached)
		return fail("the hung call", rc);
	printf("hung: %d\n", *(int *)b);
	sx_pipeline_destroy(pl);
	sx_sem_destroy(db);
	sx_pool_destroy(pool);
	return 0;
}
