/*
 * White-box tests of the fast clock (sx__now_fast_ns): src/base/clock.c is compiled into this
 * program, so the tests read and bend a thread's anchor and the process's probe result.
 *
 * The rules (clock.c, base.h): where the kernel's clocksource is the time-stamp counter, a
 * reading extrapolates from the thread's anchor, retaken every SX__TSC_PERIOD ticks and whenever
 * the counter reads below it; readings agree with CLOCK_MONOTONIC to within about a microsecond
 * (checked here against a bracket of two clock_gettime readings with a generous margin, since a
 * preemption between the three reads widens the bracket, never narrows it); one thread's readings
 * never go back, even when a new anchor comes out below the last reading; anywhere else every
 * reading is clock_gettime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.c"

#include "testutil.h"

/* Readings may stray outside their bracket by the rate's error over one period and an anchor's
 * error: both well under a microsecond; the margin is far above that and far below the error of a
 * wrong rate (a wrong mult is off by milliseconds within a period). */
#define MARGIN_NS 20000u

static bool usable(void)
{
	(void)sx__now_fast_ns(); /* runs the probe */
	return ck_pr_load_int(&tsc_state) == TSC_USABLE;
}

/* Read until the process's rate is measured (MIN_BASELINE after the first anchor). */
static void warm_up(void)
{
	uint64_t until = sx__now_ns() + 100000000u;

	while (sx__now_ns() < until && ck_pr_load_64(&base_mult) == 0) {
		sx__tclock_mine.tsc = 0; /* force a new anchor: the one that measures the rate */
		(void)sx__now_fast_ns();
		usleep(1000);
	}
}

/* Readings over count iterations: each inside [before - margin, after + margin] and none below
 * the one before. Returns how many came from the thread's anchor (the fast path). */
static unsigned long check_readings(unsigned long count)
{
	uint64_t prev = 0;
	unsigned long fast = 0;

	for (unsigned long i = 0; i < count; i++) {
		uint64_t a = sx__now_ns(), anchor = sx__tclock_mine.tsc;
		uint64_t f = sx__now_fast_ns();
		uint64_t b = sx__now_ns();

		if (f + MARGIN_NS < a || f > b + MARGIN_NS) {
			fprintf(stderr, "reading %lu: %llu outside [%llu, %llu]\n", i,
			    (unsigned long long)f, (unsigned long long)a, (unsigned long long)b);
			fail();
		}
		assert_true(f >= prev);
		prev = f;
		fast += sx__tclock_mine.tsc == anchor;
	}
	return fast;
}

static void test_clocksource_names(void **state)
{
	char path[] = "/tmp/strix-clocksource-XXXXXX";
	static const struct {
		const char *text;
		bool tsc;
	} cases[] = { { "tsc\n", true }, { "tsc", true }, { "kvm-clock\n", false },
		{ "tscx\n", false }, { "ts\n", false }, { "", false }, { "hpet\n", false } };
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].text);

		assert_true((fd = mkstemp(path)) >= 0);
		assert_int_equal(write(fd, cases[i].text, n), (ssize_t)n);
		(void)close(fd);
		assert_int_equal(tsc_is_clocksource(path), cases[i].tsc);
		(void)unlink(path);
		memcpy(path + sizeof(path) - 7, "XXXXXX", 6);
	}
	assert_false(tsc_is_clocksource("/nonexistent/strix/clocksource"));
}

/* On this machine the probe agrees with the kernel's clocksource, and where it allowed the
 * counter, readings come from the anchor (the fast path is real, not always clock_gettime). */
static void test_fast_path_used_where_the_kernel_uses_the_counter(void **state)
{
	unsigned long fast;

	(void)state;
	assert_int_equal(usable(), tsc_is_clocksource(clocksource_path));
	if (!usable()) {
		skip(); /* another clocksource: every reading is clock_gettime (tested below) */
	}
	warm_up();
	assert_true(ck_pr_load_64(&base_mult) != 0);
	assert_true(ck_pr_load_64(&base_mult) < MULT_MAX);
	fast = check_readings(200000);
	assert_true(fast > 200000 / 2);
	assert_true(sx__tclock_mine.mult != 0);
}

/* Readings over several anchor periods stay within their brackets and never go back. */
static void test_readings_track_monotonic(void **state)
{
	uint64_t until = sx__now_ns() + 30000000u;

	(void)state;
	warm_up();
	while (sx__now_ns() < until)
		(void)check_readings(10000);
}

/* A new anchor below the last reading holds the readings at it until the clock passes it. */
static void test_anchor_below_the_last_reading_holds(void **state)
{
	uint64_t held, r;

	(void)state;
	warm_up();
	held = sx__now_fast_ns() + 2000000u;
	sx__tclock_mine.last = held;
	assert_int_equal(sx__now_fast_ns(), held);
	sx__tclock_mine.tsc = 0; /* and through a new anchor */
	assert_int_equal(sx__now_fast_ns(), held);
	while (sx__now_ns() < held + 1000000u)
		usleep(500);
	r = sx__now_fast_ns();
	assert_true(r > held);
}

/* A counter below the anchor (the thread moved to a CPU whose counter is behind) takes a new
 * anchor rather than extrapolating backwards or by a wrapped difference. */
static void test_counter_behind_the_anchor_reanchors(void **state)
{
	uint64_t a, f, b;

	(void)state;
	warm_up();
	if (!usable())
		skip();
	(void)sx__now_fast_ns();
	sx__tclock_mine.tsc = rdtsc() + (UINT64_C(1) << 30);
	sx__tclock_mine.ns += 5000000000u; /* were it used, the reading would be 5 s ahead */
	sx__tclock_mine.last = 0;
	a = sx__now_ns();
	f = sx__now_fast_ns();
	b = sx__now_ns();
	assert_true(f + MARGIN_NS >= a && f <= b + MARGIN_NS);
	assert_true(rdtsc() - sx__tclock_mine.tsc < SX__TSC_PERIOD);
}

/* Where the counter may not be used, every reading is clock_gettime: the anchor sends every
 * reading to the slow path. */
static void test_without_the_counter_every_reading_is_clock_gettime(void **state)
{
	int saved;

	(void)state;
	(void)usable();
	saved = ck_pr_load_int(&tsc_state);
	ck_pr_store_int(&tsc_state, TSC_UNUSABLE);
	sx__tclock_mine.tsc = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t a = sx__now_ns(), f = sx__now_fast_ns(), b = sx__now_ns();

		assert_true(a <= f && f <= b);
		assert_true(rdtsc() - sx__tclock_mine.tsc >= SX__TSC_PERIOD);
	}
	ck_pr_store_int(&tsc_state, saved);
	sx__tclock_mine.tsc = 0;
}

/* More threads than cores, each reading across many anchors and preemptions: every reading in
 * its bracket, none below its thread's last. */
static void *reader(void *arg)
{
	unsigned long *fast = arg;
	uint64_t until = sx__now_ns() + 200000000u;

	while (sx__now_ns() < until)
		*fast += check_readings(5000);
	return NULL;
}

static void test_threads_read_in_step(void **state)
{
	enum { N = 8 };
	pthread_t t[N];
	unsigned long fast[N] = { 0 };

	(void)state;
	warm_up();
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &fast[i]), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (usable())
			assert_true(fast[i] > 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clocksource_names),
		cmocka_unit_test(test_fast_path_used_where_the_kernel_uses_the_counter),
		cmocka_unit_test(test_readings_track_monotonic),
		cmocka_unit_test(test_anchor_below_the_last_reading_holds),
		cmocka_unit_test(test_counter_behind_the_anchor_reanchors),
		cmocka_unit_test(test_without_the_counter_every_reading_is_clock_gettime),
		cmocka_unit_test(test_threads_read_in_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
