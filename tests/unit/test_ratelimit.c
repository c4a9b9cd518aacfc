/* Rate limiter (GCRA): Workshop's rate behaviour on a virtual clock, weights, steady rate, waits
 * (virtual and real, cancelled by a breaker), no over-admission under racing threads, bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/ratelimit.h>

#define MS 1000000ull
#define SEC 1000000000ull


static sx_ratelimit *limiter(uint64_t rate, uint64_t period, uint32_t burst)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit *rl = NULL;

	o.rate = rate;
	o.period_ns = period;
	o.burst = burst;
	o.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	assert_non_null(rl);
	return rl;
}

static unsigned admit_all(sx_ratelimit *rl, unsigned tries)
{
	unsigned ok = 0;

	while (tries-- > 0) {
		int rc = sx_ratelimit_try(rl, 1);

		if (rc == 0)
			ok++;
		else
			assert_int_equal(rc, SX_ERATE_LIMITED);
	}
	return ok;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_burst_six_at_six_per_second(void **state)
{
	sx_ratelimit *rl = limiter(6, SEC, 6);
	int i;

	(void)state;
	tu_vnow = 1000 * SEC;
	for (i = 0; i < 6; i++)
		assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED); /* refusals change nothing */
	tu_vadvance(SEC);
	assert_int_equal(sx_ratelimit_try(rl, 1), 0);                /* one second later: passes */
	assert_int_equal(admit_all(rl, 10), 5);                       /* and the rest of the burst */
	tu_vadvance(SEC / 6 - 1);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED); /* just before the interval */
	tu_vadvance(1);
	assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	sx_ratelimit_destroy(rl);
}

/* No window edge: at any moment, the events of the last second are at most burst + rate. Over a
 * long run with a call every millisecond, the admitted count is the burst plus the rate. */
static void test_steady_rate_and_no_window_edge(void **state)
{
	sx_ratelimit *rl = limiter(100, SEC, 10);
	unsigned ok = 0, ms, last_sec[1000] = { 0 }, in_window = 0;

	(void)state;
	tu_vnow = 5 * SEC;
	for (ms = 0; ms < 10000; ms++) {
		unsigned got = admit_all(rl, 3);

		ok += got;
		in_window += got;
		in_window -= last_sec[ms % 1000];
		last_sec[ms % 1000] = got;
		assert_true(in_window <= 10 + 100);
		tu_vadvance(MS);
	}
	/* 10 at once, then one every 10 ms: at 10, 20, ..., 9990 ms. */
	assert_int_equal(ok, 10 + 999);
	sx_ratelimit_destroy(rl);
}

static void test_weights_and_delay(void **state)
{
	sx_ratelimit *rl = limiter(6, SEC, 6);

	(void)state;
	tu_vnow = 0;
	assert_int_equal(sx_ratelimit_delay_ns(rl, 6), 0);
	assert_int_equal(sx_ratelimit_try(rl, 3), 0);
	assert_int_equal(sx_ratelimit_try(rl, 3), 0);
	assert_int_equal(sx_ratelimit_try(rl, 3), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_delay_ns(rl, 1), 166666666ull);
	assert_int_equal(sx_ratelimit_delay_ns(rl, 3), 3 * 166666666ull);
	tu_vadvance(2 * 166666666ull);
	assert_int_equal(sx_ratelimit_try(rl, 3), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_try(rl, 2), 0);
	assert_int_equal(sx_ratelimit_try(rl, 7), -EINVAL); /* above the burst: never passes */
	assert_int_equal(sx_ratelimit_try(rl, 0), -EINVAL);
	assert_int_equal(sx_ratelimit_try(NULL, 1), -EINVAL);
	assert_int_equal(sx_ratelimit_delay_ns(rl, 7), UINT64_MAX);
	assert_int_equal(sx_ratelimit_delay_ns(NULL, 1), UINT64_MAX);
	sx_ratelimit_destroy(rl);
}

static void test_bad_options_create_nothing(void **state)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit *rl = (sx_ratelimit *)&o;

	(void)state;
	assert_int_equal(sx_ratelimit_create(&o, &rl), -EINVAL); /* rate 0 */
	o.rate = 10;
	assert_int_equal(sx_ratelimit_create(NULL, &rl), -EINVAL);
	assert_int_equal(sx_ratelimit_create(&o, NULL), -EINVAL);
	o.period_ns = 0;
	assert_int_equal(sx_ratelimit_create(&o, &rl), -EINVAL);
	o.period_ns = 5;                                           /* 10 events in 5 ns */
	assert_int_equal(sx_ratelimit_create(&o, &rl), -EINVAL);
	o.period_ns = SEC;
	o.burst = SX_RATELIMIT_MAX_BURST + 1;
	assert_int_equal(sx_ratelimit_create(&o, &rl), -EINVAL);
	o.rate = 1;
	o.period_ns = UINT64_MAX;                                  /* burst * interval overflows */
	o.burst = 1000;
	assert_int_equal(sx_ratelimit_create(&o, &rl), -EINVAL);
	assert_ptr_equal(rl, (sx_ratelimit *)&o);
	/* The default burst is the rate, capped. */
	o.rate = 50;
	o.period_ns = SEC;
	o.burst = 0;
	o.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	tu_vnow = 0;
	assert_int_equal(admit_all(rl, 80), 50);
	sx_ratelimit_destroy(rl);
	sx_ratelimit_destroy(NULL);
}

/* Waits reserve turns in call order and sleep exactly until theirs (virtual clock). */
static void test_wait_sleeps_until_its_turn(void **state)
{
	sx_ratelimit *rl = limiter(10, SEC, 2);

	(void)state;
	tu_vnow = 0;
	assert_int_equal(sx_ratelimit_wait(rl, 2, NULL), 0); /* the burst: no sleep */
	assert_int_equal(tu_vnow, 0);
	assert_int_equal(sx_ratelimit_wait(rl, 1, NULL), 0);
	assert_int_equal(tu_vnow, 100 * MS);
	assert_int_equal(sx_ratelimit_wait(rl, 2, NULL), 0);
	assert_int_equal(tu_vnow, 300 * MS);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	sx_ratelimit_destroy(rl);
}

/* A wait ended by its breaker (real clock) returns the breaker's code and gives its turn back. */
static void test_wait_cancelled_by_breaker_gives_turn_back(void **state)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit *rl = NULL;
	sx_breaker *stop = NULL;
	sx_pool *pool = tu_pool(1);
	uint64_t t0;

	(void)state;
	o.rate = 1;
	o.period_ns = 10 * SEC; /* one event per 10 s */
	o.burst = 1;
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	assert_int_equal(sx_breaker_timeout(pool, 30 * MS, &stop), 0);
	t0 = tu_now_ns();
	assert_int_equal(sx_ratelimit_wait(rl, 1, stop), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 >= 25 * MS);
	/* Its reservation is gone: the next event is due in under 10 s, not under 20 s. */
	assert_true(sx_ratelimit_delay_ns(rl, 1) <= 10 * SEC - 25 * MS);
	/* A tripped breaker fails at once and reserves nothing. */
	t0 = sx_ratelimit_delay_ns(rl, 1);
	assert_int_equal(sx_ratelimit_wait(rl, 1, stop), -ETIMEDOUT);
	assert_true(sx_ratelimit_delay_ns(rl, 1) <= t0);
	sx_breaker_release(stop);
	sx_ratelimit_destroy(rl);
	sx_pool_destroy(pool);
}

/* Racing threads on a frozen clock: exactly the burst passes, then exactly one per interval. */
#define R_THREADS 8

static sx_ratelimit *rrl;
static sx_ratelimit_keyed *rkl; /* when set, the threads use key 42 of it instead of rrl */
static uint32_t r_go, r_ok;

static void *r_thread(void *arg)
{
	unsigned i;

	(void)arg;
	while (!__atomic_load_n(&r_go, __ATOMIC_ACQUIRE))
		;
	for (i = 0; i < 2000; i++)
		if ((rkl != NULL ? sx_ratelimit_keyed_try(rkl, 42, 1 + (i % 2)) :
		    sx_ratelimit_try(rrl, 1 + (i % 2))) == 0)
			__atomic_add_fetch(&r_ok, 1 + (i % 2), __ATOMIC_RELAXED);
	return NULL;
}

static void race_once(uint32_t expect)
{
	pthread_t t[R_THREADS];
	unsigned i;

	__atomic_store_n(&r_go, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&r_ok, 0, __ATOMIC_RELEASE);
	for (i = 0; i < R_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, r_thread, NULL), 0);
	__atomic_store_n(&r_go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < R_THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r_ok, expect);
}

static void test_no_over_admission_under_racing_threads(void **state)
{
	unsigned round;

	(void)state;
	tu_vnow = 77 * SEC;
	rrl = limiter(1000, SEC, 500);
	race_once(500);
	for (round = 0; round < 20 * tu_stress_scale(); round++) {
		tu_vadvance(37 * MS); /* 37 events' worth */
		race_once(37);
	}
	sx_ratelimit_destroy(rrl);
}

/* ---- keyed limiters ------------------------------------------------------------------------ */

static sx_ratelimit_keyed *keyed(uint64_t rate, uint32_t burst, uint32_t max_keys)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit_keyed *kl = NULL;

	o.rate = rate;
	o.burst = burst;
	o.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_keyed_create(&o, max_keys, &kl), 0);
	assert_non_null(kl);
	return kl;
}

static void test_keyed_limits_each_key_alone(void **state)
{
	sx_ratelimit_keyed *kl;

	(void)state;
	tu_vnow = 3 * SEC;
	kl = keyed(6, 6, 100);
	for (int i = 0; i < 6; i++)
		assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 1), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 1), SX_ERATE_LIMITED);
	/* Another key has its own burst, whatever key 1 did. */
	for (int i = 0; i < 6; i++)
		assert_int_equal(sx_ratelimit_keyed_try(kl, 0, 1), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 0, 1), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 7777, 6), 0);
	tu_vadvance(SEC / 6 + 1);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 1), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 1), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 0, 1), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 0, 1), SX_ERATE_LIMITED);
	sx_ratelimit_keyed_destroy(kl);
}

static void test_keyed_full_table_and_idle_slots(void **state)
{
	sx_ratelimit_keyed *kl;
	unsigned ok = 0, nospc = 0;

	(void)state;
	tu_vnow = SEC;
	kl = keyed(10, 2, 4); /* the smallest table: 16 slots */
	for (uint64_t k = 100; k < 140; k++) {
		int rc = sx_ratelimit_keyed_try(kl, k, 1);

		assert_true(rc == 0 || rc == -ENOSPC);
		ok += rc == 0;
		nospc += rc == -ENOSPC;
	}
	/* Every slot holds a key that has just been admitted: the rest find none. */
	assert_int_equal(ok, 16);
	assert_int_equal(nospc, 24);
	/* A key that has a slot keeps its own state. */
	for (uint64_t k = 100; k < 140; k++)
		if (sx_ratelimit_keyed_try(kl, k, 1) == 0)
			assert_int_equal(sx_ratelimit_keyed_try(kl, k, 1), SX_ERATE_LIMITED);
	/* Once their buckets have refilled, the slots go to whoever needs them. */
	tu_vadvance(SEC);
	for (uint64_t k = 1000; k < 1016; k++)
		assert_int_equal(sx_ratelimit_keyed_try(kl, k, 2), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 5000, 1), -ENOSPC);
	sx_ratelimit_keyed_destroy(kl);
}

static void test_keyed_bad_input(void **state)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit_keyed *kl = (sx_ratelimit_keyed *)&kl;

	(void)state;
	o.rate = 10;
	assert_int_equal(sx_ratelimit_keyed_create(&o, 0, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, SX_RATELIMIT_MAX_KEYS + 1, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(NULL, 10, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, 10, NULL), -EINVAL);
	o.rate = 0;
	assert_int_equal(sx_ratelimit_keyed_create(&o, 10, &kl), -EINVAL);
	assert_ptr_equal(kl, (sx_ratelimit_keyed *)&kl);
	tu_vnow = SEC;
	kl = keyed(10, 5, 10);
	assert_int_equal(sx_ratelimit_keyed_try(NULL, 1, 1), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_try(kl, UINT64_MAX, 1), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 0), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 6), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 5), 0); /* nothing was charged before */
	sx_ratelimit_keyed_destroy(kl);
	sx_ratelimit_keyed_destroy(NULL);
}

static void test_keyed_no_over_admission_under_racing_threads(void **state)
{
	(void)state;
	tu_vnow = 9 * SEC;
	rkl = keyed(1000, 500, 64);
	race_once(500);
	for (unsigned round = 0; round < 20 * tu_stress_scale(); round++) {
		tu_vadvance(37 * MS);
		race_once(37);
	}
	sx_ratelimit_keyed_destroy(rkl);
	rkl = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_six_at_six_per_second),
		cmocka_unit_test(test_steady_rate_and_no_window_edge),
		cmocka_unit_test(test_weights_and_delay),
		cmocka_unit_test(test_bad_options_create_nothing),
		cmocka_unit_test(test_wait_sleeps_until_its_turn),
		cmocka_unit_test(test_wait_cancelled_by_breaker_gives_turn_back),
		cmocka_unit_test(test_no_over_admission_under_racing_threads),
		cmocka_unit_test(test_keyed_limits_each_key_alone),
		cmocka_unit_test(test_keyed_full_table_and_idle_slots),
		cmocka_unit_test(test_keyed_bad_input),
		cmocka_unit_test(test_keyed_no_over_admission_under_racing_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
