/* Fan-out: the alloter seed's behaviours, the limit under load, fail-fast, cancel, a million
 * calls exactly once each, errors collected, nesting inside workers, bad input. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/fanout.h>
#include <strix/promise.h>

#define MS 1000000ull

/* The pool: more workers than cores: calls really overlap */
TU_POOL_FIXTURE(8)

/* ---- calls -------------------------------------------------------------------------------- */

static uint32_t running, high_water, started, ran;

static void enter(void)
{
	uint32_t now = __atomic_add_fetch(&running, 1, __ATOMIC_ACQ_REL);
	uint32_t hw = __atomic_load_n(&high_water, __ATOMIC_RELAXED);

	while (now > hw && !__atomic_compare_exchange_n(&high_water, &hw, now, false,
	    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
	__atomic_add_fetch(&started, 1, __ATOMIC_RELAXED);
}

static void leave(void)
{
	__atomic_add_fetch(&ran, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&running, 1, __ATOMIC_ACQ_REL);
}

static void reset(void)
{
	running = high_water = started = ran = 0;
}

/* Sleeps arg ms (not watching the breaker), returns 0. */
static int sleep_ms(sx_breaker *stop, void *arg)
{
	(void)stop;
	enter();
	tu_sleep_ns((uint64_t)(uintptr_t)arg * MS);
	leave();
	return 0;
}

/* Returns -(intptr_t)arg at once. */
static int fail_now(sx_breaker *stop, void *arg)
{
	(void)stop;
	enter();
	leave();
	return -(int)(intptr_t)arg;
}

/* Waits up to arg ms for the stop breaker, returns its code (0 if it never tripped). */
static int watch_stop(sx_breaker *stop, void *arg)
{
	uint64_t end = tu_now_ns() + (uint64_t)(uintptr_t)arg * MS;

	enter();
	while (!sx_breaker_done(stop) && tu_now_ns() < end)
		tu_sleep_ns(100000);
	leave();
	return sx_breaker_err(stop);
}

#define TASK(fn, a) { fn, (void *)(uintptr_t)(a) }

/* ---- the seed's behaviours ------------------------------------------------------------------- */

static void test_timeout_gives_etimedout_after_running_calls(void **state)
{
	sx_fanout_task t[] = { TASK(sleep_ms, 100), TASK(sleep_ms, 0), TASK(sleep_ms, 200) };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	uint64_t t0 = tu_now_ns();

	(void)state;
	reset();
	o.timeout_ns = 50 * MS;
	assert_int_equal(sx_fanout_exec(pool, t, 3, &o), -ETIMEDOUT);
	/* No call outlives the fan-out: the 200 ms one was waited for. */
	assert_int_equal(ran, 3);
	assert_true(tu_now_ns() - t0 >= 200 * MS);
}

static void test_first_error_among_slow_calls_comes_back_quickly(void **state)
{
	sx_fanout_task t[] = { TASK(watch_stop, 5000), TASK(watch_stop, 5000), TASK(fail_now, EIO),
		               TASK(watch_stop, 5000) };
	uint64_t t0 = tu_now_ns();

	(void)state;
	reset();
	assert_int_equal(sx_fanout_exec(pool, t, 4, NULL), -EIO);
	assert_true(tu_now_ns() - t0 < 4000 * MS); /* the others saw the stop, not their 5 s */
	assert_int_equal(running, 0);
}

static void test_101_errors_give_that_error(void **state)
{
	sx_fanout_task t[101];

	(void)state;
	for (int i = 0; i < 101; i++)
		t[i] = (sx_fanout_task)TASK(fail_now, EPROTO);
	assert_int_equal(sx_fanout_exec(pool, t, 101, NULL), -EPROTO);
}

static void test_normal_calls_and_empty_list_give_zero(void **state)
{
	sx_fanout_task t[] = { TASK(sleep_ms, 1), TASK(sleep_ms, 0), TASK(sleep_ms, 2) };
	sx_promise *p = NULL;

	(void)state;
	reset();
	assert_int_equal(sx_fanout_exec(pool, t, 3, NULL), 0);
	assert_int_equal(ran, 3);
	assert_int_equal(sx_fanout_exec(pool, NULL, 0, NULL), 0);
	assert_int_equal(sx_fanout_map(pool, 0, NULL, NULL, NULL), 0);
	assert_int_equal(sx_fanout_exec_async(pool, NULL, 0, NULL, &p), 0);
	assert_true(sx_promise_settled(p));
	assert_int_equal(sx_promise_get(p, 0, NULL), 0);
	sx_promise_release(p);
}

static void test_limit_one_serializes_limit_three_overlaps(void **state)
{
	sx_fanout_task t[] = { TASK(sleep_ms, 20), TASK(sleep_ms, 20), TASK(sleep_ms, 20) };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	uint64_t t0, one, three;

	(void)state;
	reset();
	o.limit = 1;
	t0 = tu_now_ns();
	assert_int_equal(sx_fanout_exec(pool, t, 3, &o), 0);
	one = tu_now_ns() - t0;
	assert_int_equal(high_water, 1);
	reset();
	o.limit = 3;
	t0 = tu_now_ns();
	assert_int_equal(sx_fanout_exec(pool, t, 3, &o), 0);
	three = tu_now_ns() - t0;
	assert_true(one >= 60 * MS);
	assert_true(three >= 20 * MS);
	/* Three in flight at once is the proof of overlap; the time only has to show it paid off
	 * (against the serial run just before, not a fixed bound: the machine is shared). */
	assert_int_equal(high_water, 3);
	assert_true(three < one);
}

static void test_reusable_after_a_failed_call(void **state)
{
	sx_fanout_task bad[] = { TASK(fail_now, EIO), TASK(sleep_ms, 5), TASK(sleep_ms, 5) };
	sx_fanout_task good[] = { TASK(sleep_ms, 1), TASK(sleep_ms, 1), TASK(sleep_ms, 1) };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;

	(void)state;
	o.limit = 1;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(sx_fanout_exec(pool, bad, 3, &o), -EIO);
		reset();
		assert_int_equal(sx_fanout_exec(pool, good, 3, &o), 0);
		assert_int_equal(ran, 3);
	}
}

/* ---- limits, fail-fast, cancel, scale ------------------------------------------------------ */

static int spin_random(sx_breaker *stop, size_t i, void *arg)
{
	uint64_t s = i * 0x9e3779b97f4a7c15ull + 1, end;

	(void)stop;
	(void)arg;
	enter();
	end = tu_now_ns() + tu_rand(&s) % 20000;
	while (tu_now_ns() < end)
		;
	leave();
	return 0;
}

static void test_inflight_never_exceeds_limit(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;

	(void)state;
	for (unsigned limit = 1; limit <= 13; limit += 4) {
		reset();
		o.limit = limit;
		assert_int_equal(sx_fanout_map(pool, 3000, spin_random, NULL, &o), 0);
		assert_int_equal(ran, 3000);
		assert_true(high_water <= limit);
		assert_true(high_water >= 1);
	}
}

static uint32_t late;

/*
 * A call that finds the stop breaker already tripped is late: its lane checked the breaker just
 * before the trip. The failing call's return is what trips it, so "late" is measured against the
 * breaker, not against the moment the failing call decided to fail (other lanes may run several
 * calls between that decision and the trip, however slow the machine).
 */
static int fail_at_100(sx_breaker *stop, size_t i, void *arg)
{
	(void)arg;
	if (sx_breaker_done(stop))
		__atomic_add_fetch(&late, 1, __ATOMIC_RELAXED);
	enter();
	leave();
	return i == 100 ? -EIO : 0;
}

static void test_fail_fast_starts_nothing_after_the_error(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	int *errs = calloc(100000, sizeof(int));
	size_t cancelled = 0;

	(void)state;
	reset();
	late = 0;
	o.limit = 6;
	o.errors = errs;
	assert_int_equal(sx_fanout_map(pool, 100000, fail_at_100, NULL, &o), -EIO);
	/* A lane that had checked the breaker just before the trip may start one more call. */
	assert_true(late <= o.limit - 1);
	assert_true(started < 100 + 64 * 16);
	assert_int_equal(errs[100], -EIO);
	for (size_t i = 0; i < 100000; i++) {
		assert_true(errs[i] == 0 || errs[i] == -EIO || errs[i] == -ECANCELED);
		cancelled += errs[i] == -ECANCELED;
	}
	assert_int_equal(cancelled, 100000 - started);
	free(errs);
}

static int fail_every_third(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	(void)arg;
	return i % 3 == 1 ? -(int)(1000 + i) : 0;
}

static void test_no_fail_fast_collects_every_error(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	int errs[300];
	int rc;

	(void)state;
	o.flags = SX_FANOUT_NO_FAIL_FAST;
	o.errors = errs;
	o.limit = 4;
	rc = sx_fanout_map(pool, 300, fail_every_third, NULL, &o);
	assert_true(rc <= -1000 && rc > -1300 && (-rc - 1000) % 3 == 1);
	for (int i = 0; i < 300; i++)
		assert_int_equal(errs[i], i % 3 == 1 ? -(1000 + i) : 0);
}

static void test_cancel_midway(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	sx_fanout_task t[40];
	sx_promise *p;

	(void)state;
	reset();
	for (int i = 0; i < 40; i++)
		t[i] = (sx_fanout_task)TASK(watch_stop, 10000);
	o.limit = 4;
	assert_int_equal(sx_fanout_exec_async(pool, t, 40, &o, &p), 0);
	TU_WAIT_FOR(__atomic_load_n(&started, __ATOMIC_ACQUIRE) >= 2);
	assert_int_equal(sx_promise_cancel(p), 0);
	TU_WAIT_FOR(sx_promise_settled(p));
	assert_int_equal(running, 0); /* settled only after the running calls returned */
	assert_true(started <= 8);
	assert_int_equal(sx_promise_get(p, 0, NULL), -ECANCELED);
	sx_promise_release(p);
}

/* A negative timeout is no timeout (every call runs to its end); a breaker stops the fan-out. */
static void test_breaker_stops_it_and_negative_timeout_is_none(void **state)
{
	sx_fanout_task t[] = { TASK(watch_stop, 10000), TASK(watch_stop, 10000) };
	sx_fanout_task quick[] = { TASK(watch_stop, 20), TASK(watch_stop, 20) };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	sx_breaker *b;
	sx_promise *p;

	(void)state;
	reset();
	o.timeout_ns = -1;
	assert_int_equal(sx_fanout_exec(pool, quick, 2, &o), 0);
	assert_int_equal(started, 2);
	reset();
	o.timeout_ns = INT64_MIN;
	assert_int_equal(sx_fanout_exec(pool, quick, 2, &o), 0);
	assert_int_equal(started, 2);
	reset();

	o.timeout_ns = 0;
	assert_int_equal(sx_breaker_create(&b), 0);
	o.breaker = b;
	assert_int_equal(sx_fanout_exec_async(pool, t, 2, &o, &p), 0);
	TU_WAIT_FOR(__atomic_load_n(&started, __ATOMIC_ACQUIRE) == 2);
	assert_int_equal(sx_breaker_trip(b), 0);
	TU_WAIT_FOR(sx_promise_settled(p));
	assert_int_equal(sx_promise_get(p, 0, NULL), -ECANCELED);
	assert_int_equal(running, 0);
	sx_promise_release(p);
	/* A breaker already tripped: nothing starts. */
	reset();
	assert_int_equal(sx_fanout_exec(pool, t, 2, &o), -ECANCELED);
	assert_int_equal(started, 0);
	sx_breaker_release(b);
}

/* A call that trips the breaker given in the options: the fan-out's stop breaker derives from it,
 * so with one lane no later call starts (each checks stop before it runs). Repeated, since the
 * race it guards against (the stop breaker learning of the trip later) needs a loaded machine. */
static int trip_given(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	(void)i;
	enter();
	sx_breaker_trip(arg);
	leave();
	return 0;
}

static void test_call_tripping_the_given_breaker_stops_the_rest(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;

	(void)state;
	o.limit = 1;
	for (int r = 0; r < 500; r++) {
		sx_breaker *b;

		reset();
		assert_int_equal(sx_breaker_create(&b), 0);
		o.breaker = b;
		assert_int_equal(sx_fanout_map(pool, 100, trip_given, b, &o), -ECANCELED);
		assert_int_equal(started, 1);
		sx_breaker_release(b);
	}
}

static uint8_t *once;

static int mark(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	(void)arg;
	__atomic_add_fetch(&once[i], 1, __ATOMIC_RELAXED);
	return 0;
}

static void test_million_calls_limit_64_exactly_once(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	size_t n = 1000000;

	(void)state;
	once = calloc(n, 1);
	o.limit = 64;
	assert_int_equal(sx_fanout_map(pool, n, mark, NULL, &o), 0);
	for (size_t i = 0; i < n; i++)
		if (once[i] != 1)
			fail_msg("call %zu ran %u times", i, once[i]);
	free(once);
}

/* A call that fans out itself, on a one-worker pool: the blocking form helps, no deadlock. */
static sx_pool *solo;

static int inner(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop;
	__atomic_add_fetch((uint32_t *)arg, (uint32_t)i + 1, __ATOMIC_RELAXED);
	return 0;
}

static int outer(sx_breaker *stop, size_t i, void *arg)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;

	(void)stop;
	(void)i;
	o.limit = 3;
	return sx_fanout_map(solo, 10, inner, arg, &o);
}

static void test_nested_inside_a_worker(void **state)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	uint32_t sum = 0;

	(void)state;
	solo = tu_pool(1);
	o.limit = 4;
	assert_int_equal(sx_fanout_map(solo, 20, outer, &sum, &o), 0);
	assert_int_equal(sum, 20 * 55);
	sx_pool_destroy(solo);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_bad_input_changes_nothing(void **state)
{
	sx_fanout_task t[] = { TASK(sleep_ms, 0), { NULL, NULL } };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	sx_promise *p = (sx_promise *)&o;

	(void)state;
	reset();
	assert_int_equal(sx_fanout_map(NULL, 1, mark, NULL, NULL), -EINVAL);
	assert_int_equal(sx_fanout_map(pool, 1, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_fanout_exec(pool, NULL, 1, NULL), -EINVAL);
	assert_int_equal(sx_fanout_exec(pool, t, 2, NULL), -EINVAL); /* t[1] has no fn */
	assert_int_equal(sx_fanout_map(pool, (size_t)SX_FANOUT_MAX_TASKS + 1, mark, NULL, NULL),
	    -EINVAL);
	o.limit = SX_FANOUT_MAX_LIMIT + 1;
	assert_int_equal(sx_fanout_exec(pool, t, 1, &o), -EINVAL);
	o.limit = 0;
	o.flags = 0x80;
	assert_int_equal(sx_fanout_exec(pool, t, 1, &o), -EINVAL);
	assert_int_equal(sx_fanout_exec_async(pool, t, 2, NULL, &p), -EINVAL);
	assert_int_equal(sx_fanout_exec_async(pool, t, 1, NULL, NULL), -EINVAL);
	assert_ptr_equal(p, (sx_promise *)&o);
	assert_int_equal(started, 0);
}

static void test_shut_down_pool(void **state)
{
	sx_fanout_task t[] = { TASK(sleep_ms, 0) };
	sx_pool *dead = tu_pool(1);
	sx_promise *p = NULL;

	(void)state;
	assert_int_equal(sx_pool_shutdown(dead, SX_DRAIN), 0);
	assert_int_equal(sx_fanout_exec(dead, t, 1, NULL), -ESHUTDOWN);
	assert_int_equal(sx_fanout_exec_async(dead, t, 1, NULL, &p), -ESHUTDOWN);
	assert_null(p);
	sx_pool_destroy(dead);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_gives_etimedout_after_running_calls),
		cmocka_unit_test(test_first_error_among_slow_calls_comes_back_quickly),
		cmocka_unit_test(test_101_errors_give_that_error),
		cmocka_unit_test(test_normal_calls_and_empty_list_give_zero),
		cmocka_unit_test(test_limit_one_serializes_limit_three_overlaps),
		cmocka_unit_test(test_reusable_after_a_failed_call),
		cmocka_unit_test(test_inflight_never_exceeds_limit),
		cmocka_unit_test(test_fail_fast_starts_nothing_after_the_error),
		cmocka_unit_test(test_no_fail_fast_collects_every_error),
		cmocka_unit_test(test_cancel_midway),
		cmocka_unit_test(test_breaker_stops_it_and_negative_timeout_is_none),
		cmocka_unit_test(test_call_tripping_the_given_breaker_stops_the_rest),
		cmocka_unit_test(test_million_calls_limit_64_exactly_once),
		cmocka_unit_test(test_nested_inside_a_worker),
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_shut_down_pool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
