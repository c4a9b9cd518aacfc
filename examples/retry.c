/* Blocking retries: a capped exponential backoff with full jitter (its delays printed first), and
 * a predicate that retries transient errors only, so a permanent one ends the loop at once. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <strix.h>

static bool transient(int err, void *ctx) { (void)ctx; return err == -EAGAIN || err == -EBUSY; }

static int send_order(sx_retrier *r, void *arg)
{
	int *busy = arg;         /* times the exchange is still busy; < 0: it rejects the order */
	int rc = *busy < 0 ? -EPERM : (*busy)-- > 0 ? -EAGAIN : 0;

	printf("  attempt %u: %s\n", sx_retrier_iteration(r), sx_strerror(rc));
	return rc;               /* -EPERM is not transient: retry_if ends the loop */
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_backoff bo;
	int rc, busy = 2, rejected = -1;

	pol.max_attempts = 4;                   /* the first call counts */
	pol.backoff = SX_BACKOFF_EXPONENTIAL;   /* 1, 2, 4 ms ... (factor 0: 2) */
	pol.base_ns = 1000000;
	pol.cap_ns = 8000000;                   /* never more than 8 ms */
	pol.jitter = SX_JITTER_FULL;            /* each delay uniform in [0, backoff) */
	pol.seed = 42;                          /* same seed, same delays */
	pol.retry_if = transient;
	if ((rc = sx_backoff_init(&bo, &pol)) != 0)  /* the same delays sx_retry waits */
		return fail("sx_backoff_init", rc);
	printf("delays (ms):");
	for (int i = 0; i < 5; i++)
		printf(" %.2f", (double)sx_backoff_next(&bo) / 1e6);
	printf("\n");
	rc = sx_retry(send_order, &busy, &pol, NULL);  /* no stop breaker */
	if (rc != 0)
		return fail("sx_retry", rc);
	if ((rc = sx_retry(send_order, &rejected, &pol, NULL)) != -EPERM)  /* one attempt only */
		return fail("sx_retry (rejected order)", rc);
	return 0;
}
