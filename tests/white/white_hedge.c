/*
 * White-box tests of the hedging policy's percentile delay: src/guard/hedge.c is compiled into
 * this program, so the tests feed first-attempt latencies straight into the policy's histogram
 * (sample) and read its buckets, with no clock at all: what the delay becomes is a function of
 * the samples alone, checked exactly.
 *
 * The rules (hedge.c, hedge.h): a latency lands in a log-scale bucket (8 per power of two, the
 * values below 8 exact) whose top is at most 1/8 above it; the sample that completes a window
 * sets the delay to the top of the bucket where the running count reaches percentile * total
 * (never below min_delay_ns) and halves every count, so old latencies fade; a fixed delay
 * ignores samples.
 */
#include <stdlib.h>

#include "guard/hedge.c"

#include "testutil.h"

#define MS 1000000ull

static sx_pool *pool;

static sx_hedge *policy(double pct, uint32_t window, int64_t min_ns, int64_t fixed_ns)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = NULL;

	o.percentile = pct;
	o.window = window;
	o.min_delay_ns = min_ns;
	o.delay_ns = fixed_ns;
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	return h;
}

static uint64_t hist_total(const sx_hedge *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < NBUCKETS; i++)
		n += h->hist[i];
	return n;
}

/* Buckets are ordered, contiguous and at most 1/8 wide: every value v lands in the bucket whose
 * top is the least top >= v, and that top is within v + v/8. */
static void test_buckets_cover_every_value_tightly(void **state)
{
	uint64_t seed = 11;

	(void)state;
	/* Tops grow strictly until they saturate at INT64_MAX (from 2^62 on). */
	for (unsigned i = 1; i < NBUCKETS; i++)
		assert_true(bucket_top(i) > bucket_top(i - 1) || bucket_top(i) == INT64_MAX);
	assert_int_equal(bucket_top(bucket_of(UINT64_C(1) << 62)), INT64_MAX);
	for (uint64_t v = 0; v < 4096; v++) {
		unsigned b = bucket_of(v);

		assert_true((uint64_t)bucket_top(b) >= v);
		assert_true(b == 0 || (uint64_t)bucket_top(b - 1) < v);
		assert_true((uint64_t)bucket_top(b) <= v + v / 8);
	}
	for (int i = 0; i < 100000; i++) {
		uint64_t v = tu_rand(&seed) >> (1 + tu_rand(&seed) % 62); /* below 2^63 ns */
		unsigned b = bucket_of(v);

		assert_true(b < NBUCKETS);
		assert_true((uint64_t)bucket_top(b) >= v);
		if (v >= (1ull << 62))
			continue; /* the saturated top buckets */
		assert_true(b == 0 || (uint64_t)bucket_top(b - 1) < v);
		assert_true((uint64_t)bucket_top(b) <= v + v / 8);
	}
}

/* 90 fast calls and 10 slow ones, shuffled: p90 is the fast bucket's top, p95 the slow one's. */
static void test_delay_is_the_percentile_bucket_top(void **state)
{
	sx_hedge *p90 = policy(0.90, 100, 1000, 0), *p95 = policy(0.95, 100, 1000, 0);
	uint64_t lat[100], seed = 5;

	(void)state;
	for (unsigned i = 0; i < 100; i++)
		lat[i] = i < 90 ? 2 * MS + i * 1000 : 50 * MS + i;
	for (unsigned i = 99; i > 0; i--) {
		unsigned j = (unsigned)(tu_rand(&seed) % (i + 1));
		uint64_t t = lat[i];

		lat[i] = lat[j];
		lat[j] = t;
	}
	for (unsigned i = 0; i < 100; i++) {
		/* Before the window is full the delay is the floor. */
		assert_int_equal(sx_hedge_delay_ns(p90), 1000);
		sample(p90, lat[i]);
		sample(p95, lat[i]);
	}
	/* The 90th value in order is the slowest fast one, 2 ms + 89 us. */
	assert_int_equal(sx_hedge_delay_ns(p90), bucket_top(bucket_of(2 * MS + 89000)));
	assert_int_equal(sx_hedge_delay_ns(p95), bucket_top(bucket_of(50 * MS + 99)));
	/* The window closed: counts halved (a count of 1 stays), samples start again. */
	assert_int_equal(p90->samples, 0);
	assert_true(hist_total(p90) < 100 && hist_total(p90) >= 50);
	sx_hedge_destroy(p90);
	sx_hedge_destroy(p95);
}

/* Latencies under the floor leave the delay at min_delay_ns. */
static void test_floor_holds(void **state)
{
	sx_hedge *h = policy(0.95, 50, 3 * MS, 0);

	(void)state;
	for (unsigned i = 0; i < 500; i++)
		sample(h, 100000 + i);
	assert_int_equal(sx_hedge_delay_ns(h), 3 * MS);
	sx_hedge_destroy(h);
}

/* The backend slows down from 1 ms to 20 ms and recovers: halving makes old latencies fade, so
 * the delay follows both ways, quickly up (a slow share above 10% moves a p90) and more slowly
 * down (the slow share must fall under 10%). */
static void test_delay_follows_a_changed_backend(void **state)
{
	sx_hedge *h = policy(0.90, 64, 1000, 0);
	int64_t fast = bucket_top(bucket_of(1 * MS)), slow = bucket_top(bucket_of(20 * MS));
	unsigned windows;

	(void)state;
	for (unsigned i = 0; i < 64 * 4; i++)
		sample(h, 1 * MS);
	assert_int_equal(sx_hedge_delay_ns(h), fast);
	for (windows = 1; windows <= 8; windows++) {
		for (unsigned i = 0; i < 64; i++)
			sample(h, 20 * MS);
		if (sx_hedge_delay_ns(h) == slow)
			break;
	}
	/* 64 halved old counts and 64 new: half the window is slow. */
	assert_int_equal(windows, 1);
	for (windows = 1; windows <= 8; windows++) {
		for (unsigned i = 0; i < 64; i++)
			sample(h, 1 * MS);
		if (sx_hedge_delay_ns(h) == fast)
			break;
	}
	/* Slow counts 32, 16, 8 against 96, 112, 120 fast ones out of 128: under 10% at the third. */
	assert_int_equal(windows, 3);
	sx_hedge_destroy(h);
}

/* A fixed delay takes no samples. */
static void test_fixed_delay_ignores_samples(void **state)
{
	sx_hedge *h = policy(0.0, 10, 0, 7 * MS);

	(void)state;
	for (unsigned i = 0; i < 100; i++)
		sample(h, 100 * MS);
	assert_int_equal(sx_hedge_delay_ns(h), 7 * MS);
	assert_int_equal(hist_total(h), 0);
	sx_hedge_destroy(h);
}

/* Two threads sample at once: every sample is counted in some window, exactly one recompute per
 * full window runs at a time, and the delay ends at the one latency they all have. */
struct feeder {
	sx_hedge *h;
	unsigned n;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;

	for (unsigned i = 0; i < f->n; i++)
		sample(f->h, 4 * MS);
	return NULL;
}

static void test_concurrent_samples(void **state)
{
	sx_hedge *h = policy(0.5, 32, 1000, 0);
	struct feeder f = { h, 200000 };
	pthread_t th[3];

	(void)state;
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, feed, &f), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(sx_hedge_delay_ns(h), bucket_top(bucket_of(4 * MS)));
	assert_int_equal(h->recomputing, 0);
	/* Only one bucket ever counted, and halving keeps it bounded. */
	assert_true(hist_total(h) == h->hist[bucket_of(4 * MS)]);
	assert_true(hist_total(h) < 4 * 32);
	sx_hedge_destroy(h);
}

static int setup(void **state)
{
	(void)state;
	pool = tu_pool(1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sx_pool_destroy(pool);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_cover_every_value_tightly),
		cmocka_unit_test(test_delay_is_the_percentile_bucket_top),
		cmocka_unit_test(test_floor_holds),
		cmocka_unit_test(test_delay_follows_a_changed_backend),
		cmocka_unit_test(test_fixed_delay_ignores_samples),
		cmocka_unit_test(test_concurrent_samples),
	};

	return cmocka_run_group_tests_name("hedge (white-box)", tests, setup, teardown);
}
