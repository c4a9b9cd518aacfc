/* Hedging as a pipeline layer: a total timeout, then a hedge after 5 ms, then the backend call.
 * The first attempt hangs; the hedge (the same inner layers, on the pool) answers; the first
 * is cancelled through its breaker, and the call returns once both have ended. */
#include <stdatomic.h>
#include <stdio.h>
#include <strix.h>

static atomic_uint attempts;

/* The backend: the first attempt hangs until its breaker trips, the others answer at once. */
static int fetch(sx_call *call)
{
	static const char *names[] = { "first attempt", "hedge" };
	unsigned n = atomic_fetch_add(&attempts, 1);

	if (n == 0 && sx_breaker_wait(call->breaker, 2000000000) == 0) /* the hedge won */
		return sx_breaker_err(call->breaker);
	call->out = (void *)names[n == 0 ? 0 : 1];
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_hedge_opts ho = SX_HEDGE_OPTS_INIT;
	sx_hedge_metrics m;
	sx_pipeline *pl;
	sx_pool *pool;
	sx_hedge *h;
	void *v;
	int rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0)
		return fail("sx_pool_create", rc);
	ho.delay_ns = 5000000;                  /* or 0: wait for the observed p95 latency */
	if ((rc = sx_hedge_create(pool, &ho, &h)) != 0)
		return fail("sx_hedge_create", rc);
	po.pool = pool;
	if ((rc = sx_pipeline_create(&po, &pl)) != 0 ||
	    (rc = sx_pipeline_add_timeout(pl, 1000000000)) != 0 ||  /* the whole call: 1 s */
	    (rc = sx_pipeline_add_hedge(pl, h)) != 0)
		return fail("building the pipeline", rc);
	if ((rc = sx_pipeline_call(pl, fetch, NULL, NULL, &v)) != 0)
		return fail("sx_pipeline_call", rc);
	printf("the answer came from the %s\n", (const char *)v);
	if ((rc = sx_hedge_snapshot(h, &m)) != 0 || m.hedges != 1 || m.hedge_wins != 1)
		return fail("sx_hedge_snapshot", rc);
	printf("calls %llu, hedges %llu, won by a hedge %llu, attempts %u\n",
	    (unsigned long long)m.calls, (unsigned long long)m.hedges,
	    (unsigned long long)m.hedge_wins, atomic_load(&attempts));
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
	sx_pool_destroy(pool);
	return 0;
}
