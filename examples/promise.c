/* Promises: a chain of pool tasks. A flaky fetch is retried after 1 ms timers (no thread sleeps),
 * a second step computes from its value, and the caller waits for the end with a timeout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strix.h>

static int fetch(sx_ctx *ctx, void *last, void **out)
{
	static int quote = 21;

	(void)last;
	if (ctx->attempt < 3) {                 /* the feed is busy twice */
		printf("fetch, attempt %u: feed busy\n", ctx->attempt);
		return -EAGAIN;
	}
	*out = &quote;
	return 0;
}

static int reconnect(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx; (void)err;
	*out = last;                            /* fetch runs again with this as `last` */
	return 0;                               /* non-zero: give up with that error */
}

static int price(sx_ctx *ctx, void *quote, void **out)
{
	int *p = malloc(sizeof *p);

	if (p == NULL)
		return -ENOMEM;
	*p = 2 * *(int *)quote;
	*out = p;
	ctx->dtor = free;                       /* runs when the promise holding *p is freed */
	return 0;
}

int main(void)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_promise *a, *r, *b;
	sx_pool *pool;
	void *v;
	int rc, price_value = 0;

	pol.max_attempts = 5;                   /* the first run counts */
	pol.backoff = SX_BACKOFF_CONSTANT;
	pol.base_ns = 1000000;                  /* 1 ms between attempts */
	if ((rc = sx_pool_create(NULL, &pool)) != 0 ||
	    (rc = sx_promise_run(pool, fetch, NULL, &a)) != 0 ||
	    (rc = sx_promise_recover_and_retry(a, reconnect, NULL, &pol, &r)) != 0 ||
	    (rc = sx_promise_then(r, price, NULL, &b)) != 0) {
		fprintf(stderr, "building the chain: %s\n", sx_strerror(rc));
		return 1;
	}
	if ((rc = sx_promise_get(b, 1000000000, &v)) == 0)  /* or the error, or -ETIMEDOUT */
		price_value = *(int *)v;        /* borrowed from b: valid until b is released */
	printf("price: %d (%s)\n", price_value, sx_strerror(rc));
	sx_promise_release(a);
	sx_promise_release(r);
	sx_promise_release(b);
	sx_pool_destroy(pool);                  /* shuts down with SX_DRAIN */
	return rc == 0 && price_value == 42 ? 0 : 1;
}
