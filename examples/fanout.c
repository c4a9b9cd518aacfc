/* Fan-out: a batch of 100 records on a pool, at most 4 calls in flight, within 1 s; a bad record
 * fails the second batch fast (no call starts after it) and every call's outcome is collected. */
#include <errno.h>
#include <stdio.h>
#include <strix.h>

#define N 100

struct batch { int in[N]; long out[N]; };

static int square(sx_breaker *stop, size_t i, void *arg)
{
	struct batch *b = arg;

	if (sx_breaker_done(stop))              /* a long call checks now and then */
		return sx_breaker_err(stop);
	if (b->in[i] < 0)
		return -EINVAL;                 /* a bad record: the fan-out stops */
	b->out[i] = (long)b->in[i] * b->in[i];
	return 0;
}

int main(void)
{
	static struct batch b;
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	int errors[N], rc, done = 0;
	long sum = 0;
	sx_pool *pool;

	if ((rc = sx_pool_create(NULL, &pool)) != 0) {
		fprintf(stderr, "sx_pool_create: %s\n", sx_strerror(rc));
		return 1;
	}
	for (int i = 0; i < N; i++)
		b.in[i] = i + 1;
	o.limit = 4;                            /* at most 4 calls at once */
	o.timeout_ns = 1000000000;              /* the whole batch within 1 s, else -ETIMEDOUT */
	rc = sx_fanout_map(pool, N, square, &b, &o);
	for (int i = 0; i < N; i++)
		sum += b.out[i];
	printf("batch 1: %s, sum of squares %ld\n", sx_strerror(rc), sum);
	b.in[37] = -1;
	o.errors = errors;                      /* what call i returned, or why it never ran */
	int rc2 = sx_fanout_map(pool, N, square, &b, &o);
	for (int i = 0; i < N; i++)
		done += errors[i] == 0;
	printf("batch 2: %s at record 37, %d of %d records done\n", sx_strerror(rc2), done, N);
	sx_pool_destroy(pool);
	return rc == 0 && sum == 338350 && rc2 == -EINVAL && errors[37] == -EINVAL ? 0 : 1;
}
