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
 * reading is clock_gettime. sx__now_lag_ns is the same reading where the counter is the
 * clocksource; elsewhere, on a steady counter (cpuinfo's constant_tsc and nonstop_tsc), it reuses
 * the thread's latest reading while the counter has moved less than SX__LAG_TICKS since just
 * before that reading, so it lags by at most that (checked against its bracket with the same
 * margin, which holds for any counter of 100 MHz or more), and never goes back.
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

/* Readings from read over count iterations: each inside [before - MARGIN_NS, after + over] and
 * none below the one before. Returns how many left the thread's clock word *kept (its anchor's
 * counter, or the counter of its latest kernel reading) as it was: readings that took no new
 * anchor or kernel reading. */
static unsigned long check_clock(uint64_t (*read)(void), const uint64_t *kept, uint64_t over,
    unsigned long count)
{
	uint64_t prev = 0;
	unsigned long same = 0;

	for (unsigned long i = 0; i < count; i++) {
		uint64_t a = sx__now_ns(), k = *kept;
		uint64_t f = read();
		uint64_t b = sx__now_ns();

		if (f + MARGIN_NS < a || f > b + over) {
			fprintf(stderr, "reading %lu: %llu outside [%llu - margin, %llu + %llu]\n", i,
			    (unsigned long long)f, (unsigned long long)a, (unsigned long long)b,
			    (unsigned long long)over);
			fail();
		}
		assert_true(f >= prev);
		prev = f;
		same += *kept == k;
	}
	return same;
}

/* Fast readings: how many came from the thread's anchor (the fast path). */
static unsigned long check_readings(unsigned long count)
{
	return check_clock(sx__now_fast_ns, &sx__tclock_mine.tsc, MARGIN_NS, count);
}

/* Lag readings: how many reused an earlier reading. Off the clocksource a reading is a kernel
 * reading already taken, so none is above its bracket; on it, it is the fast reading. */
static unsigned long check_lagged(unsigned long count)
{
	uint64_t over = ck_pr_load_int(&tsc_state) == TSC_USABLE ? MARGIN_NS : 0;

	return check_clock(sx__now_lag_ns, &sx__tclock_mine.lag, over, count);
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

static void test_cpuinfo_flags(void **state)
{
	char path[] = "/tmp/strix-cpuinfo-XXXXXX";
	static const struct {
		const char *text;
		bool steady;
	} cases[] = {
		{ "processor\t: 0\nflags\t\t: fpu tsc constant_tsc rep_good nonstop_tsc pni\n", true },
		{ "flags\t: nonstop_tsc constant_tsc\nflags\t: fpu\n", true },
		{ "flags\t: fpu tsc constant_tsc\n", false },       /* may stop in idle states */
		{ "flags\t: nonstop_tsc\n", false },                /* rate not constant */
		{ "flags\t: fpu\nflags\t: constant_tsc nonstop_tsc\n", false }, /* the first CPU's */
		{ "flags\t: constant_tscx nonstop_tsc\n", false },
		{ "flags\t: constant_tsc nonstop_tsc", false },      /* cut short: no end of line */
		{ "model name\t: constant_tsc nonstop_tsc\n", false },
		{ "", false },
	};
	int fd;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].text);

		assert_true((fd = mkstemp(path)) >= 0);
		assert_int_equal(write(fd, cases[i].text, n), (ssize_t)n);
		(void)close(fd);
		assert_int_equal(counter_steady(path), cases[i].steady);
		(void)unlink(path);
		memcpy(path + sizeof(path) - 7, "XXXXXX", 6);
	}
	assert_false(counter_steady("/nonexistent/strix/cpuinfo"));
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

/* Where the counter is the clocksource, sx__now_lag_ns is the fast path's reading: from the
 * anchor, in its bracket, never back. */
static void test_lag_is_the_fast_reading_on_the_clocksource(void **state)
{
	(void)state;
	if (!usable())
		skip();
	warm_up();
	assert_true(check_clock(sx__now_lag_ns, &sx__tclock_mine.tsc, MARGIN_NS, 200000) >
	    200000 / 2);
}

/* Off the clocksource (forced), lag readings on a steady counter mostly reuse a reading, and each
 * is within the window of the clock; without a steady counter every one is clock_gettime. */
static void test_lag_reuses_a_reading_within_the_window(void **state)
{
	int saved_state;
	bool saved_ok;
	unsigned long reused;

	(void)state;
	(void)usable();
	saved_state = ck_pr_load_int(&tsc_state);
	saved_ok = lag_ok;
	ck_pr_store_int(&tsc_state, TSC_UNUSABLE);
	sx__tclock_mine.tsc = 0;
	sx__tclock_mine.lag = 0;

	lag_ok = true;
	reused = check_lagged(200000);
	/* An iteration (three kernel reads around a lag reading) takes far fewer than 2^11 ticks
	 * even instrumented: most reuse the reading before unless the thread is preempted. */
	assert_true(reused > 200000 / 4);
	assert_true(rdtsc() - sx__tclock_mine.lag < (UINT64_C(1) << 40));

	lag_ok = false;
	sx__tclock_mine.lag = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t a = sx__now_ns(), f = sx__now_lag_ns(), b = sx__now_ns();

		assert_true(a <= f && f <= b);
		assert_true(rdtsc() - sx__tclock_mine.lag >= SX__LAG_TICKS);
	}
	lag_ok = saved_ok;
	ck_pr_store_int(&tsc_state, saved_state);
	sx__tclock_mine.tsc = 0;
	sx__tclock_mine.lag = UINT64_C(1) << 63;
}

/* A counter below the reading's (a move to a CPU whose counter is behind) or far past it (a jump)
 * takes a new reading rather than reusing an old one. */
static void test_lag_counter_outside_the_window_reads_again(void **state)
{
	int saved_state;
	bool saved_ok;
	uint64_t a, f, b;

	(void)state;
	(void)usable();
	saved_state = ck_pr_load_int(&tsc_state);
	saved_ok = lag_ok;
	ck_pr_store_int(&tsc_state, TSC_UNUSABLE);
	lag_ok = true;
	sx__tclock_mine.tsc = 0;
	(void)sx__now_lag_ns();
	for (int k = 0; k < 2; k++) {
		/* were the old reading reused, it would be 5 s behind */
		sx__tclock_mine.last -= 5000000000u;
		sx__tclock_mine.lag = k == 0 ? rdtsc() + (UINT64_C(1) << 30) :
		    rdtsc() - (UINT64_C(1) << 30);
		a = sx__now_ns();
		f = sx__now_lag_ns();
		b = sx__now_ns();
		assert_true(a <= f && f <= b);
		assert_true(rdtsc() - sx__tclock_mine.lag < (UINT64_C(1) << 30));
	}
	lag_ok = saved_ok;
	ck_pr_store_int(&tsc_state, saved_state);
	sx__tclock_mine.tsc = 0;
	sx__tclock_mine.lag = UINT64_C(1) << 63;
}

/* More threads than cores, each reading across many anchors and preemptions: every reading in
 * its bracket, none below its thread's last; and lag readings likewise. */
static void *reader(void *arg)
{
	unsigned long *fast = arg;
	uint64_t until = sx__now_ns() + 200000000u;

	while (sx__now_ns() < until) {
		*fast += check_readings(5000);
		(void)check_lagged(5000);
	}
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
		cmocka_unit_test(test_cpuinfo_flags),
		cmocka_unit_test(test_fast_path_used_where_the_kernel_uses_the_counter),
		cmocka_unit_test(test_readings_track_monotonic),
		cmocka_unit_test(test_anchor_below_the_last_reading_holds),
		cmocka_unit_test(test_counter_behind_the_anchor_reanchors),
		cmocka_unit_test(test_without_the_counter_every_reading_is_clock_gettime),
		cmocka_unit_test(test_lag_is_the_fast_reading_on_the_clocksource),
		cmocka_unit_test(test_lag_reuses_a_reading_within_the_window),
		cmocka_unit_test(test_lag_counter_outside_the_window_reads_again),
		cmocka_unit_test(test_threads_read_in_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
