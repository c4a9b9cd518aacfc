/* Rate limiting: 5 requests a second in bursts of up to 3 (GCRA), refusing or waiting for the
 * turn; then a keyed limiter that gives each client a limit of its own. */
#include <stdint.h>
#include <stdio.h>
#include <strix.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit_keyed *per_client;
	sx_ratelimit *rl;
	int rc;

	o.rate = 5;                             /* 5 per period_ns (1 s): one each 200 ms */
	o.burst = 3;
	if ((rc = sx_ratelimit_create(&o, &rl)) != 0)
		return fail("sx_ratelimit_create", rc);
	for (int i = 0; i < 3; i++)             /* it starts full: the burst passes at once */
		if ((rc = sx_ratelimit_try(rl, 1)) != 0)
			return fail("sx_ratelimit_try", rc);
	if ((rc = sx_ratelimit_try(rl, 1)) != SX_ERATE_LIMITED)  /* a server replies 429 here */
		return fail("sx_ratelimit_try (4th)", rc);
	printf("3 passed, the 4th was refused; the next turn is in %.1f ms\n",
	    (double)sx_ratelimit_delay_ns(rl, 1) / 1e6);
	if ((rc = sx_ratelimit_wait(rl, 1, NULL)) != 0)  /* sleeps until then, at most 200 ms */
		return fail("sx_ratelimit_wait", rc);
	printf("the 5th waited for its turn\n");
	sx_ratelimit_destroy(rl);

	if ((rc = sx_ratelimit_keyed_create(&o, 1024, &per_client)) != 0)  /* 1024 active clients */
		return fail("sx_ratelimit_keyed_create", rc);
	for (int i = 0; i < 3; i++)
		if ((rc = sx_ratelimit_keyed_try(per_client, 7, 1)) != 0)
			return fail("sx_ratelimit_keyed_try (client 7)", rc);
	if ((rc = sx_ratelimit_keyed_try(per_client, 7, 1)) != SX_ERATE_LIMITED ||
	    (rc = sx_ratelimit_keyed_try(per_client, 8, 1)) != 0)
		return fail("sx_ratelimit_keyed_try", rc);
	printf("client 7 is limited, client 8 is not\n");
	sx_ratelimit_keyed_destroy(per_client);
	return 0;
}
