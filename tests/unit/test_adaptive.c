/* Adaptive concurrency limit: the window rules and the formula on a virtual clock (growth with
 * headroom, no growth when the callers limit the load, backoff on overload, convergence on a
 * simulated backend and again after its capacity halves), the one-word admission, racing
 * threads, bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/adaptive.h>

#define MS 1000000ull
#define SEC 1000000000ull

static sx_adaptive *make(uint32_t initial, uint32_t lo, uint32_t hi)
{
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive *al = NULL;

	o.initial_limit = initial;
	o.min_limit = lo;
	o.max_limit = hi;
	o.clock = &tu_vclock;
	assert_int_equal(sx_adaptive_create(&o, &al), 0);
	assert_non_null(al);
	return al;
}

static uint64_t windows(const sx_adaptive *al)
{
	sx_adaptive_metrics m;

	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	return m.windows;
}

/* Admit n calls and release them all with result and latency; returns how many were admitted. */
static unsigned round_trip(sx_adaptive *al, unsigned n, int result, int64_t lat)
{
	unsigned ok = 0, i;

	for (i = 0; i < n; i++)
		if (sx_adaptive_acquire(al) == 0)
			ok++;
	for (i = 0; i < ok; i++)
		assert_int_equal(sx_adaptive_release(al, result, lat), 0);
	return ok;
}

/* ---- a simulated backend -------------------------------------------------------------------- */

/* A backend serving `capacity` calls at once at base_ns each; beyond that, calls share it (a
 * call that starts with k in flight takes base_ns * k / capacity). Callers always want more than
 * the limit admits: every end is followed by as many acquires as the limit allows. */
#define SIM_MAX 4096
struct sim {
	sx_adaptive *al;
	uint64_t end[SIM_MAX], lat[SIM_MAX];
	unsigned n;
	unsigned capacity;
	uint64_t base_ns;
	uint64_t completed, rejected;
};

static void sim_fill(struct sim *s)
{
	while (s->n < SIM_MAX) {
		uint64_t lat;
		int rc = sx_adaptive_acquire(s->al);

		if (rc != 0) {
			assert_int_equal(rc, SX_EREJECTED);
			s->rejected++;
			return;
		}
		lat = s->base_ns;
		if (s->n + 1 > s->capacity)
			lat = s->base_ns * (s->n + 1) / s->capacity;
		s->lat[s->n] = lat;
		s->end[s->n++] = tu_vnow + lat;
	}
}

/* Run until the virtual clock reaches `until`; returns the limit then. */
static uint32_t sim_run(struct sim *s, uint64_t until)
{
	sim_fill(s);
	while (tu_vnow < until) {
		unsigned i, first = 0;

		for (i = 1; i < s->n; i++)
			if (s->end[i] < s->end[first])
				first = i;
		assert_true(s->n > 0);
		if (s->end[first] > tu_vnow)
			tu_vnow = s->end[first];
		assert_int_equal(sx_adaptive_release(s->al, 0, (int64_t)s->lat[first]), 0);
		s->n--;
		s->end[first] = s->end[s->n];
		s->lat[first] = s->lat[s->n];
		s->completed++;
		sim_fill(s);
	}
	return sx_adaptive_limit(s->al);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_defaults_and_admission(void **state)
{
	sx_adaptive *al = NULL;
	sx_adaptive_metrics m;
	unsigned i;

	(void)state;
	assert_int_equal(sx_adaptive_create(NULL, &al), 0);
	assert_int_equal(sx_adaptive_limit(al), 20);
	for (i = 0; i < 20; i++)
		assert_int_equal(sx_adaptive_acquire(al), 0);
	assert_int_equal(sx_adaptive_acquire(al), SX_EREJECTED);
	assert_int_equal(sx_adaptive_acquire(al), SX_EREJECTED);
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.limit, 20);
	assert_int_equal(m.inflight, 20);
	assert_int_equal(m.rejected, 2);
	assert_int_equal(sx_adaptive_release(al, 0, 1000), 0);
	assert_int_equal(sx_adaptive_acquire(al), 0); /* a permit back: one more admitted */
	for (i = 0; i < 20; i++)
		assert_int_equal(sx_adaptive_release(al, 0, 1000), 0);
	assert_int_equal(sx_adaptive_release(al, 0, 1000), -EINVAL); /* none in flight */
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.inflight, 0);
	sx_adaptive_destroy(al);
	sx_adaptive_destroy(NULL);
}

static void test_bad_input(void **state)
{
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive *al = (sx_adaptive *)&o;
	sx_adaptive_metrics m;
	sx_clock broken = { NULL, NULL, NULL };

	(void)state;
	assert_int_equal(sx_adaptive_create(&o, NULL), -EINVAL);
#define BAD(field, value)                                                              \
	do {                                                                           \
		sx_adaptive_opts b = SX_ADAPTIVE_OPTS_INIT;                            \
		b.field = value;                                                       \
		al = (sx_adaptive *)&o;                                                \
		assert_int_equal(sx_adaptive_create(&b, &al), -EINVAL);                \
		assert_ptr_equal(al, (sx_adaptive *)&o); /* untouched */               \
	} while (0)
	BAD(initial_limit, 2000);             /* above the default max */
	BAD(max_limit, SX_ADAPTIVE_MAX_LIMIT + 1);
	BAD(tolerance, 0.5);
	BAD(smoothing, 1.5);
	BAD(smoothing, -0.1);
	BAD(backoff, 1.0);
	BAD(backoff, -0.5);
	BAD(window_ns, -1);
	BAD(window_samples, 60001);
	BAD(clock, &broken);
	BAD(reserved[0], 1);
	{
		sx_adaptive_opts b = SX_ADAPTIVE_OPTS_INIT;

		b.min_limit = 50;
		b.max_limit = 10;
		assert_int_equal(sx_adaptive_create(&b, &al), -EINVAL);
		b.max_limit = 100;
		b.initial_limit = 40;
		assert_int_equal(sx_adaptive_create(&b, &al), -EINVAL); /* below min */
	}
#undef BAD
	assert_int_equal(sx_adaptive_acquire(NULL), -EINVAL);
	assert_int_equal(sx_adaptive_release(NULL, 0, 0), -EINVAL);
	assert_int_equal(sx_adaptive_limit(NULL), 0);
	assert_int_equal(sx_adaptive_snapshot(NULL, &m), -EINVAL);
	al = make(5, 1, 10);
	assert_int_equal(sx_adaptive_snapshot(al, NULL), -EINVAL);
	assert_int_equal(sx_adaptive_acquire(al), 0);
	assert_int_equal(sx_adaptive_release(al, 0, -2), -EINVAL); /* the call stays in flight */
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.inflight, 1);
	assert_int_equal(sx_adaptive_release(al, 0, 1), 0);
	sx_adaptive_destroy(al);
}

/* A min_limit above the default max with no max given raises the max with it; the default
 * initial limit is then clamped up to it. */
static void test_defaults_follow_min(void **state)
{
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive *al = NULL;

	(void)state;
	o.min_limit = 2000;
	assert_int_equal(sx_adaptive_create(&o, &al), 0);
	assert_int_equal(sx_adaptive_limit(al), 2000);
	sx_adaptive_destroy(al);
}

/* A window closes at the first 10th sample (window_samples) that finds window_ns elapsed, not
 * before. */
static void test_window_needs_samples_and_time(void **state)
{
	sx_adaptive *al;

	(void)state;
	tu_vnow = 1000 * SEC;
	al = make(20, 1, 100);
	assert_int_equal(round_trip(al, 9, 0, 1000), 9);
	tu_vadvance(SEC);
	assert_int_equal(windows(al), 0);    /* nine samples, however long ago */
	assert_int_equal(round_trip(al, 1, 0, 1000), 1);
	assert_int_equal(windows(al), 1);    /* the tenth closes it */
	assert_int_equal(round_trip(al, 20, 0, 1000), 20);
	assert_int_equal(windows(al), 1);    /* twenty more, but no time has passed */
	tu_vadvance(10 * MS);
	assert_int_equal(round_trip(al, 9, 0, 1000), 9);
	assert_int_equal(windows(al), 1);    /* the clock is looked at on every 10th sample only */
	assert_int_equal(round_trip(al, 1, 0, 1000), 1);
	assert_int_equal(windows(al), 2);
	sx_adaptive_destroy(al);
}

/* With every latency at the long-term level the gradient is 1: each window that used the limit
 * moves it by queue_size * smoothing (4 * 0.2) up, exactly as the formula says. */
static void test_grows_with_headroom(void **state)
{
	sx_adaptive *al;
	double est = 20.0;
	unsigned w;

	(void)state;
	tu_vnow = 1000 * SEC;
	al = make(20, 1, 1000);
	for (w = 0; w < 30; w++) {
		unsigned lim = sx_adaptive_limit(al);

		tu_vadvance(10 * MS);
		assert_int_equal(round_trip(al, lim, 0, 100000), lim);
		est = est * 0.8 + (est + 4.0) * 0.2;
		assert_int_equal(sx_adaptive_limit(al), (uint32_t)(est + 0.5));
	}
	assert_int_equal(sx_adaptive_limit(al), 44);
	sx_adaptive_destroy(al);
}

/* Callers that never use half of the limit give no evidence to grow on. */
static void test_app_limited_does_not_grow(void **state)
{
	sx_adaptive *al;
	unsigned w;

	(void)state;
	tu_vnow = 1000 * SEC;
	al = make(40, 1, 1000);
	for (w = 0; w < 20; w++) {
		unsigned i;

		tu_vadvance(10 * MS);
		for (i = 0; i < 10; i++) /* one call at a time */
			assert_int_equal(round_trip(al, 1, 0, 100000), 1);
	}
	assert_int_equal(windows(al), 20);
	assert_int_equal(sx_adaptive_limit(al), 40);
	sx_adaptive_destroy(al);
}

/* Overload errors back the limit off by the factor per window, down to min_limit; other errors
 * change nothing and close no window. */
static void test_overload_backs_off(void **state)
{
	sx_adaptive *al;
	sx_adaptive_metrics m;
	double est = 100.0;
	unsigned w;

	(void)state;
	tu_vnow = 1000 * SEC;
	al = make(100, 10, 1000);
	for (w = 0; w < 5; w++) {
		tu_vadvance(10 * MS);
		assert_int_equal(round_trip(al, 10, -EIO, 100000), 10);
	}
	assert_int_equal(windows(al), 0);    /* ignored: no window */
	assert_int_equal(sx_adaptive_limit(al), 100);
	for (w = 0; w < 10; w++) {
		tu_vadvance(10 * MS);
		assert_int_equal(round_trip(al, 10, w % 2 ? -ETIMEDOUT : SX_EREJECTED, 1), 10);
		est *= 0.9;
		assert_int_equal(sx_adaptive_limit(al), (uint32_t)(est + 0.5));
	}
	for (w = 0; w < 40; w++) {
		tu_vadvance(10 * MS);
		(void)round_trip(al, 10, -ETIMEDOUT, 1);
	}
	assert_int_equal(sx_adaptive_limit(al), 10);
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.drops, 500);
	sx_adaptive_destroy(al);
}

/* Untimed releases end their calls and count overloads, but give no latency sample: ten of them
 * close no window. */
static void test_untimed_releases(void **state)
{
	sx_adaptive *al;
	sx_adaptive_metrics m;

	(void)state;
	tu_vnow = 1000 * SEC;
	al = make(20, 1, 100);
	tu_vadvance(10 * MS);
	assert_int_equal(round_trip(al, 10, 0, SX_ADAPTIVE_UNTIMED), 10);
	assert_int_equal(windows(al), 0);
	assert_int_equal(round_trip(al, 10, -ETIMEDOUT, SX_ADAPTIVE_UNTIMED), 10);
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.inflight, 0);
	assert_int_equal(m.drops, 10);
	assert_int_equal(m.windows, 1);      /* the drops closed one, and backed the limit off */
	assert_int_equal(m.limit, 18);
	sx_adaptive_destroy(al);
}

/* A user's classification: here every error is an overload, and 0 a sample. */
static int all_errors_drop(int result, void *arg)
{
	(*(unsigned *)arg)++;
	return result == 0 ? SX_ADAPTIVE_SAMPLE : SX_ADAPTIVE_DROP;
}

static void test_classify(void **state)
{
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive *al = NULL;
	unsigned calls = 0;

	(void)state;
	tu_vnow = 1000 * SEC;
	o.initial_limit = 50;
	o.classify = all_errors_drop;
	o.classify_arg = &calls;
	o.clock = &tu_vclock;
	assert_int_equal(sx_adaptive_create(&o, &al), 0);
	tu_vadvance(10 * MS);
	assert_int_equal(round_trip(al, 10, -EIO, 1), 10);
	assert_int_equal(calls, 10);
	assert_int_equal(sx_adaptive_limit(al), 45);
	sx_adaptive_destroy(al);
}

/* On the simulated backend the limit climbs from 10 to where the backend's latency reaches
 * tolerance times its no-load latency (1.5 * capacity + queue_size: 64 for 40) within a second,
 * comes down to the new level within a second after the capacity halves (34 for 20), and goes
 * back up when it returns: the limit follows the backend, not a number set by hand. Probes keep
 * it there (a baseline taken from loaded windows would drift up without end). */
static void test_converges_and_follows_capacity(void **state)
{
	static struct sim s;
	sx_adaptive_metrics m;

	(void)state;
	tu_vnow = 1000 * SEC;
	memset(&s, 0, sizeof(s));
	s.al = make(10, 1, 1000);
	s.capacity = 40;
	s.base_ns = MS;
	assert_in_range(sim_run(&s, tu_vnow + SEC), 60, 68);
	assert_in_range(sim_run(&s, tu_vnow + 10 * SEC), 60, 68); /* ten probes later: no drift */
	assert_int_equal(sx_adaptive_snapshot(s.al, &m), 0);
	assert_int_equal(m.min_rtt_ns, MS);
	assert_in_range(m.windows, 1000, 1200);
	s.capacity = 20;
	assert_in_range(sim_run(&s, tu_vnow + SEC), 31, 37);
	assert_in_range(sim_run(&s, tu_vnow + 10 * SEC), 31, 37);
	s.capacity = 40;
	assert_in_range(sim_run(&s, tu_vnow + 2 * SEC), 60, 68);
	assert_true(s.completed > 0 && s.rejected > 0);
	sx_adaptive_destroy(s.al);
}

/* A limit far above what the backend serves (here 500 for 40) is walked down by the probes:
 * each relearns a lower baseline. And a backend that turns slower at the same concurrency (its
 * no-load latency doubles) keeps its limit: the probe relearns the slower baseline rather than
 * halving the limit for good. */
static void test_probes_relearn_the_baseline(void **state)
{
	static struct sim s;
	sx_adaptive_metrics m;

	(void)state;
	tu_vnow = 1000 * SEC;
	memset(&s, 0, sizeof(s));
	s.al = make(500, 1, 1000);
	s.capacity = 40;
	s.base_ns = MS;
	assert_in_range(sim_run(&s, tu_vnow + 30 * SEC), 60, 68);
	s.base_ns = 2 * MS;
	assert_in_range(sim_run(&s, tu_vnow + 10 * SEC), 60, 68);
	assert_int_equal(sx_adaptive_snapshot(s.al, &m), 0);
	assert_int_equal(m.min_rtt_ns, 2 * MS);
	sx_adaptive_destroy(s.al);
}

/* Without probes the least latency ever seen is the baseline: the same backend turning twice as
 * slow then reads as queueing at any load (gradient 1.5 / 2), and the limit falls to where
 * limit * 0.75 + queue_size = limit: 16. */
static void test_no_probe_keeps_the_first_baseline(void **state)
{
	static struct sim s;
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;

	(void)state;
	tu_vnow = 1000 * SEC;
	memset(&s, 0, sizeof(s));
	o.initial_limit = 10;
	o.probe_windows = SX_ADAPTIVE_NO_PROBE;
	o.clock = &tu_vclock;
	assert_int_equal(sx_adaptive_create(&o, &s.al), 0);
	s.capacity = 40;
	s.base_ns = MS;
	assert_in_range(sim_run(&s, tu_vnow + 5 * SEC), 60, 68);
	s.base_ns = 2 * MS;
	assert_in_range(sim_run(&s, tu_vnow + 10 * SEC), 15, 17);
	sx_adaptive_destroy(s.al);
}

/* Threads racing acquires and releases (real clock, short windows): every admitted call is
 * released once, the count never passes a limit by more than the callers' own races allow (it
 * never exceeds max_limit), and it ends at zero. */
#define RACE_THREADS 4
#define RACE_CALLS 20000
static sx_adaptive *race_al;
static unsigned race_peak;

static void *race_body(void *arg)
{
	unsigned i, ok = 0;

	(void)arg;
	for (i = 0; i < RACE_CALLS; i++) {
		if (sx_adaptive_acquire(race_al) != 0)
			continue;
		ok++;
		{
			sx_adaptive_metrics m;

			assert_int_equal(sx_adaptive_snapshot(race_al, &m), 0);
			assert_true(m.inflight <= 64);
			if (m.inflight > __atomic_load_n(&race_peak, __ATOMIC_RELAXED))
				__atomic_store_n(&race_peak, m.inflight, __ATOMIC_RELAXED);
		}
		assert_int_equal(sx_adaptive_release(race_al, i % 7 == 0 ? -ETIMEDOUT : 0,
		    (int64_t)(i % 13) * 1000), 0);
	}
	return (void *)(uintptr_t)ok;
}

static void test_racing_threads(void **state)
{
	sx_adaptive_opts o = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive_metrics m;
	pthread_t t[RACE_THREADS];
	uint64_t admitted = 0;
	unsigned i;

	(void)state;
	o.initial_limit = 8;
	o.max_limit = 64;
	o.window_ns = 1000;
	o.window_samples = 4;
	assert_int_equal(sx_adaptive_create(&o, &race_al), 0);
	for (i = 0; i < RACE_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_body, NULL), 0);
	for (i = 0; i < RACE_THREADS; i++) {
		void *r;

		assert_int_equal(pthread_join(t[i], &r), 0);
		admitted += (uintptr_t)r;
	}
	assert_int_equal(sx_adaptive_snapshot(race_al, &m), 0);
	assert_int_equal(m.inflight, 0);
	assert_int_equal(admitted + m.rejected, (uint64_t)RACE_THREADS * RACE_CALLS);
	assert_true(m.windows > 0);
	assert_in_range(m.limit, 1, 64);
	sx_adaptive_destroy(race_al);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_admission),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_defaults_follow_min),
		cmocka_unit_test(test_window_needs_samples_and_time),
		cmocka_unit_test(test_grows_with_headroom),
		cmocka_unit_test(test_app_limited_does_not_grow),
		cmocka_unit_test(test_overload_backs_off),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_untimed_releases),
		cmocka_unit_test(test_converges_and_follows_capacity),
		cmocka_unit_test(test_probes_relearn_the_baseline),
		cmocka_unit_test(test_no_probe_keeps_the_first_baseline),
		cmocka_unit_test(test_racing_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
