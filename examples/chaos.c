/* Fault injection: a pipeline with a retry around an injector that fails 30% of the attempts
 * (seeded, so every run injects the same faults). The retry hides every one of them; switched
 * off, the injector costs a load and injects nothing. */
#include <errno.h>
#include <stdio.h>
#include <strix.h>

static int fetch(sx_call *call)
{
	(void)call;
	return 0;                       /* the real backend always answers */
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_chaos_opts co = SX_CHAOS_OPTS_INIT;
	sx_retry_policy retry = SX_RETRY_POLICY_INIT;
	sx_chaos_metrics m;
	sx_pipeline *pl;
	sx_chaos *chaos;
	int rc, i;

	co.error_rate = 0.3;
	co.error = -ECONNRESET;
	co.seed = 42;
	if ((rc = sx_chaos_create(&co, &chaos)) != 0)
		return fail("sx_chaos_create", rc);
	retry.max_attempts = 8;
	if ((rc = sx_pipeline_create(NULL, &pl)) != 0 ||
	    (rc = sx_pipeline_add_retry(pl, &retry, 0)) != 0 ||
	    (rc = sx_pipeline_add_chaos(pl, chaos)) != 0)   /* inside the retry: per attempt */
		return fail("building the pipeline", rc);
	for (i = 0; i < 1000; i++)
		if ((rc = sx_pipeline_call(pl, fetch, NULL, NULL, NULL)) != 0)
			return fail("sx_pipeline_call", rc);
	if ((rc = sx_chaos_snapshot(chaos, &m)) != 0)
		return fail("sx_chaos_snapshot", rc);
	printf("1000 calls succeeded; %llu of %llu attempts had an injected error\n",
	    (unsigned long long)m.errors, (unsigned long long)m.draws);
	if ((rc = sx_chaos_enable(chaos, false)) != 0)
		return fail("sx_chaos_enable", rc);
	for (i = 0; i < 1000; i++)
		if ((rc = sx_pipeline_call(pl, fetch, NULL, NULL, NULL)) != 0)
			return fail("sx_pipeline_call (off)", rc);
	if ((rc = sx_chaos_snapshot(chaos, &m)) != 0 || m.draws != 1000 + m.errors)
		return fail("drawn while off", rc);
	printf("switched off: 1000 more calls, nothing drawn\n");
	sx_pipeline_destroy(pl);
	sx_chaos_destroy(chaos);
	return 0;
}
