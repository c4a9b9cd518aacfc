/* Fault injection: the rates as drawn (and independent of each other), replay from the seed,
 * switching on and off and changing rates at run time, racing draws, bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/chaos.h>

#define DRAWS 200000u

static sx_chaos *make(double err, double lat, double out, uint64_t seed)
{
	sx_chaos_opts o = SX_CHAOS_OPTS_INIT;
	sx_chaos *ch = NULL;

	o.error_rate = err;
	o.latency_rate = lat;
	o.latency_ns = 5000;
	o.outcome_rate = out;
	o.outcome = -ECONNRESET;
	o.seed = seed;
	assert_int_equal(sx_chaos_create(&o, &ch), 0);
	assert_non_null(ch);
	return ch;
}

/* Shares within 1% (absolute) of the rates over DRAWS draws, and the error and the delay of a
 * call independent (their joint share the product of the two). */
static void test_rates_as_drawn(void **state)
{
	sx_chaos *ch = make(0.30, 0.10, 0.05, 42);
	sx_chaos_metrics m;
	unsigned i, both = 0, hits = 0;

	(void)state;
	for (i = 0; i < DRAWS; i++) {
		sx_chaos_fault f;
		int rc = sx_chaos_draw(ch, &f);

		assert_true(rc == 0 || rc == 1);
		assert_int_equal(rc, f.error != 0 || f.latency_ns != 0 || f.replace);
		if (f.error != 0)
			assert_int_equal(f.error, -EIO); /* the default error */
		if (f.latency_ns != 0)
			assert_int_equal(f.latency_ns, 5000);
		if (f.replace)
			assert_int_equal(f.outcome, -ECONNRESET);
		both += f.error != 0 && f.latency_ns != 0;
		hits += (unsigned)rc;
	}
	assert_int_equal(sx_chaos_snapshot(ch, &m), 0);
	assert_int_equal(m.draws, DRAWS);
	assert_in_range(m.errors, DRAWS * 29 / 100, DRAWS * 31 / 100);
	assert_in_range(m.delays, DRAWS * 9 / 100, DRAWS * 11 / 100);
	assert_in_range(m.outcomes, DRAWS * 4 / 100, DRAWS * 6 / 100);
	assert_in_range(both, DRAWS * 25 / 1000, DRAWS * 35 / 1000); /* 0.3 * 0.1 */
	/* 1 - 0.7 * 0.9 * 0.95 of the calls get some fault */
	assert_in_range(hits, DRAWS * 39 / 100, DRAWS * 41 / 100);
	sx_chaos_destroy(ch);
}

/* Rates 0 and 1 are exact. */
static void test_rates_zero_and_one(void **state)
{
	sx_chaos *ch = make(1.0, 0.0, 1.0, 7);
	unsigned i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		sx_chaos_fault f;

		assert_int_equal(sx_chaos_draw(ch, &f), 1);
		assert_int_equal(f.error, -EIO);
		assert_int_equal(f.latency_ns, 0);
		assert_true(f.replace);
	}
	sx_chaos_destroy(ch);
}

/* The same seed replays the same faults, draw by draw; another seed gives others. */
static void test_seed_replays(void **state)
{
	sx_chaos *a = make(0.5, 0.5, 0.5, 1234), *b = make(0.5, 0.5, 0.5, 1234);
	sx_chaos *c = make(0.5, 0.5, 0.5, 1235);
	unsigned i, differ = 0;

	(void)state;
	for (i = 0; i < 1000; i++) {
		sx_chaos_fault fa, fb, fc;

		assert_int_equal(sx_chaos_draw(a, &fa), sx_chaos_draw(b, &fb));
		assert_memory_equal(&fa, &fb, sizeof(fa));
		(void)sx_chaos_draw(c, &fc);
		differ += memcmp(&fa, &fc, sizeof(fa)) != 0;
	}
	assert_true(differ > 500);
	sx_chaos_destroy(a);
	sx_chaos_destroy(b);
	sx_chaos_destroy(c);
}

/* Off: no fault, no draw counted; on again: the generator goes on where it was; sx_chaos_set
 * changes the rates and faults (and the switch) at once for the next draws. */
static void test_switch_and_set(void **state)
{
	sx_chaos_opts o = SX_CHAOS_OPTS_INIT;
	sx_chaos *ch = make(1.0, 0.0, 0.0, 3);
	sx_chaos_metrics m;
	sx_chaos_fault f;
	unsigned i;

	(void)state;
	assert_int_equal(sx_chaos_enable(ch, false), 0);
	for (i = 0; i < 100; i++) {
		memset(&f, 0xff, sizeof(f));
		assert_int_equal(sx_chaos_draw(ch, &f), 0);
		assert_int_equal(f.error, 0);
		assert_int_equal(f.latency_ns, 0);
		assert_false(f.replace);
	}
	assert_int_equal(sx_chaos_snapshot(ch, &m), 0);
	assert_int_equal(m.draws, 0);
	assert_int_equal(sx_chaos_enable(ch, true), 0);
	assert_int_equal(sx_chaos_draw(ch, &f), 1);
	assert_int_equal(f.error, -EIO);

	o.error_rate = 0.0;
	o.latency_rate = 1.0;
	o.latency_ns = 777;
	o.error = -ENOTCONN;
	assert_int_equal(sx_chaos_set(ch, &o), 0);
	assert_int_equal(sx_chaos_draw(ch, &f), 1);
	assert_int_equal(f.error, 0);
	assert_int_equal(f.latency_ns, 777);
	o.error_rate = 1.0;
	o.disabled = true;
	assert_int_equal(sx_chaos_set(ch, &o), 0);
	assert_int_equal(sx_chaos_draw(ch, &f), 0); /* switched off by set */
	assert_int_equal(sx_chaos_enable(ch, true), 0);
	assert_int_equal(sx_chaos_draw(ch, &f), 1);
	assert_int_equal(f.error, -ENOTCONN);
	assert_int_equal(sx_chaos_snapshot(ch, &m), 0);
	assert_int_equal(m.draws, 3);
	sx_chaos_destroy(ch);
}

static void test_bad_input(void **state)
{
	sx_chaos_opts o = SX_CHAOS_OPTS_INIT;
	sx_chaos *ch = (sx_chaos *)&o, *good;
	sx_chaos_fault f;
	sx_clock broken = { NULL, NULL, NULL };

	(void)state;
	assert_int_equal(sx_chaos_create(NULL, &ch), -EINVAL);
	assert_int_equal(sx_chaos_create(&o, NULL), -EINVAL);
#define BAD(field, value)                                                      \
	do {                                                                   \
		sx_chaos_opts b = SX_CHAOS_OPTS_INIT;                          \
		b.field = value;                                               \
		ch = (sx_chaos *)&o;                                           \
		assert_int_equal(sx_chaos_create(&b, &ch), -EINVAL);           \
		assert_ptr_equal(ch, (sx_chaos *)&o);                          \
		assert_int_equal(sx_chaos_set(good, &b), -EINVAL);             \
	} while (0)
	good = make(0.0, 0.0, 0.0, 0);
	BAD(error_rate, 1.5);
	BAD(latency_rate, -0.1);
	BAD(outcome_rate, 0.0 / 0.0);
	BAD(error, EIO);
	BAD(outcome, 1);
	BAD(latency_ns, -1);
	BAD(reserved[3], 9);
#undef BAD
	o.clock = &broken;
	assert_int_equal(sx_chaos_create(&o, &ch), -EINVAL);
	assert_int_equal(sx_chaos_draw(good, &f), 0); /* the refused sets changed nothing */
	assert_int_equal(sx_chaos_set(NULL, &o), -EINVAL);
	assert_int_equal(sx_chaos_set(good, NULL), -EINVAL);
	assert_int_equal(sx_chaos_enable(NULL, true), -EINVAL);
	assert_int_equal(sx_chaos_draw(NULL, &f), -EINVAL);
	assert_int_equal(sx_chaos_draw(good, NULL), -EINVAL);
	assert_int_equal(sx_chaos_snapshot(NULL, NULL), -EINVAL);
	sx_chaos_destroy(good);
	sx_chaos_destroy(NULL);
}

/* Draws racing each other and a thread that switches the injector and changes its rates: every
 * draw counted once, every fault one of the two configurations. */
#define RACE_THREADS 3
#define RACE_DRAWS 50000
static sx_chaos *race_ch;
static int race_stop;

static void *race_draw(void *arg)
{
	unsigned i, n = 0;

	(void)arg;
	for (i = 0; i < RACE_DRAWS; i++) {
		sx_chaos_fault f;
		int rc = sx_chaos_draw(race_ch, &f);

		assert_true(rc == 0 || rc == 1);
		assert_true(f.error == 0 || f.error == -EIO || f.error == -EPIPE);
		assert_true(f.latency_ns == 0 || f.latency_ns == 5000 || f.latency_ns == 9);
		n += rc;
	}
	return (void *)(uintptr_t)n;
}

static void *race_switch(void *arg)
{
	sx_chaos_opts o = SX_CHAOS_OPTS_INIT;
	unsigned k = 0;

	(void)arg;
	o.error_rate = 0.2;
	o.error = -EPIPE;
	o.latency_rate = 0.2;
	o.latency_ns = 9;
	while (!__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE)) {
		assert_int_equal(sx_chaos_enable(race_ch, ++k % 3 != 0), 0);
		if (k % 5 == 0)
			assert_int_equal(sx_chaos_set(race_ch, &o), 0);
	}
	return NULL;
}

static void test_racing_draws(void **state)
{
	pthread_t t[RACE_THREADS], sw;
	sx_chaos_metrics m;
	uint64_t hits = 0;
	unsigned i;

	(void)state;
	race_ch = make(0.3, 0.3, 0.0, 99);
	assert_int_equal(pthread_create(&sw, NULL, race_switch, NULL), 0);
	for (i = 0; i < RACE_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_draw, NULL), 0);
	for (i = 0; i < RACE_THREADS; i++) {
		void *r;

		assert_int_equal(pthread_join(t[i], &r), 0);
		hits += (uintptr_t)r;
	}
	__atomic_store_n(&race_stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(sw, NULL), 0);
	assert_int_equal(sx_chaos_snapshot(race_ch, &m), 0);
	assert_true(m.draws <= (uint64_t)RACE_THREADS * RACE_DRAWS);
	assert_true(hits <= m.draws);
	assert_true(hits >= m.errors && hits >= m.delays && hits <= m.errors + m.delays);
	sx_chaos_destroy(race_ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates_as_drawn),
		cmocka_unit_test(test_rates_zero_and_one),
		cmocka_unit_test(test_seed_replays),
		cmocka_unit_test(test_switch_and_set),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_racing_draws),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
