/* Hedging: a call whose first attempt hangs gets a second attempt after 5 ms; the first success
 * wins and the hung attempt is cancelled through its breaker. A budget bounds the extra load. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <strix.h>

static atomic_uint attempts;

/* The backend: the first attempt hangs (until its breaker trips), the others answer at once. */
static int fetch(sx_ctx *ctx, void *last, void **out)
{
	static const char *names[] = { "first attempt", "hedge" };
	unsigned n = atomic_fetch_add(&attempts, 1);

	(void)last;
	if (n == 0) {
		sx_breaker *b = sx_ctx_breaker(ctx);

		if (b != NULL && sx_breaker_wait(b, 2000000000) == 0) /* cancelled: the hedge won */
			return sx_breaker_err(b);
	}
	*out = (void *)names[n == 0 ? 0 : 1];
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_retry_budget budget;
	sx_hedge_metrics m;
	sx_pool *pool;
	sx_hedge *h;
	sx_promise *p;
	void *v;
	int rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0)
		return fail("sx_pool_create", rc);
	/* Hedges (and retries, if they share it) spend tokens: 10 to start, 0.1 back per success. */
	if ((rc = sx_retry_budget_init(&budget, 10, 0.1)) != 0)
		return fail("sx_retry_budget_init", rc);
	o.delay_ns = 5000000;                   /* or 0: wait for the observed p95 latency */
	o.budget = &budget;
	if ((rc = sx_hedge_create(pool, &o, &h)) != 0)
		return fail("sx_hedge_create", rc);
	if ((rc = sx_hedge_run(h, fetch, NULL, &p)) != 0)
		return fail("sx_hedge_run", rc);
	if ((rc = sx_promise_get(p, 1000000000, &v)) != 0)
		return fail("sx_promise_get", rc);
	printf("the answer came from the %s\n", (const char *)v);
	sx_promise_release(p);
	sx_pool_wait_idle(pool);                /* the cancelled attempt has ended too */
	if ((rc = sx_hedge_snapshot(h, &m)) != 0 || m.hedges != 1 || m.hedge_wins != 1)
		return fail("sx_hedge_snapshot", rc);
	printf("calls %llu, hedges %llu, won by a hedge %llu, attempts %u\n",
	    (unsigned long long)m.calls, (unsigned long long)m.hedges,
	    (unsigned long long)m.hedge_wins, atomic_load(&attempts));
	sx_hedge_destroy(h);
	sx_pool_destroy(pool);
	return 0;
}
