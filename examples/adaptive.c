/* An adaptive concurrency limit: the limit grows while latencies stay at their no-load level,
 * shrinks when the backend starts to queue, and backs off on overload errors. A clock of our own
 * makes time pass exactly as the comments say. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <strix.h>

static uint64_t now_ns = 1000000000;

static uint64_t clock_now(void *ctx)
{
	(void)ctx;
	return now_ns;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

/* One window (10 ms, 10 or more calls): as many calls as the limit admits, each taking lat_ns
 * and ending with result. */
static int window(sx_adaptive *al, int64_t lat_ns, int result)
{
	uint32_t n = sx_adaptive_limit(al), i;
	int rc;

	now_ns += 10000000;
	for (i = 0; i < n; i++)
		if ((rc = sx_adaptive_acquire(al)) != 0)
			return fail("sx_adaptive_acquire", rc);
	if ((rc = sx_adaptive_acquire(al)) != SX_EREJECTED) /* one more than the limit */
		return fail("sx_adaptive_acquire past the limit", rc);
	for (i = 0; i < n; i++)
		if ((rc = sx_adaptive_release(al, result, lat_ns)) != 0)
			return fail("sx_adaptive_release", rc);
	return 0;
}

int main(void)
{
	const sx_clock clock = { clock_now, NULL, NULL };
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive *al;
	uint32_t grown;
	int rc, i;

	o.initial_limit = 20;
	o.clock = &clock;
	if ((rc = sx_adaptive_create(&o, &al)) != 0)
		return fail("sx_adaptive_create", rc);
	for (i = 0; i < 20; i++)            /* 1 ms calls: the no-load latency */
		if (window(al, 1000000, 0) != 0)
			return 1;
	grown = sx_adaptive_limit(al);
	printf("latency steady at 1 ms: the limit grew from 20 to %u\n", grown);
	for (i = 0; i < 10; i++)            /* 4 ms: the backend queues */
		if (window(al, 4000000, 0) != 0)
			return 1;
	printf("latency at 4 ms: the limit came down to %u\n", sx_adaptive_limit(al));
	if (sx_adaptive_limit(al) >= grown)
		return fail("the limit did not shrink", 0);
	grown = sx_adaptive_limit(al);
	if (window(al, 1000000, -ETIMEDOUT) != 0)  /* timeouts: overload */
		return 1;
	printf("a window of timeouts: %u (x 0.9)\n", sx_adaptive_limit(al));
	if (sx_adaptive_limit(al) >= grown)
		return fail("the backoff", (int)sx_adaptive_limit(al));
	sx_adaptive_destroy(al);
	return 0;
}
