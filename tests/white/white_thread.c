/*
 * White-box tests of base's thread indexes and striped counters, and of the pipeline's and the
 * rate limiter's counts built on them: more threads alive at once than there are stripes (the
 * shared line), threads that exit and hand their index on while others keep counting, and sums
 * that must come out exact. A lost update (two live threads owning one stripe, or a new owner
 * not seeing its predecessor's last store) shows as a sum short of the events counted. The
 * updates are relaxed atomics, so ThreadSanitizer reports no race for them: the exact sums are
 * what catches a broken hand-over.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "testutil.h"
#include "base/base.h"

#include <strix/pipeline.h>
#include <strix/ratelimit.h>

#define WIDE 48u               /* threads alive at once: more than SX__STRIPES */
#define CALLS 2000u
#define SEC 1000000000ull

static pthread_barrier_t together;
static atomic_uint seen[WIDE + 1];
static uint32_t index_of[WIDE];
/* A check that failed on another thread (its line): cmocka's asserts belong to the main one. */
static atomic_int bad;
#define CHECK(x) do { if (!(x)) atomic_store(&bad, __LINE__); } while (0)

static void *note_index(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	index_of[me] = sx__thread_index();
	CHECK(sx__thread_index() == index_of[me]); /* stable while the thread lives */
	pthread_barrier_wait(&together); /* all alive at once before any exits */
	return NULL;
}

static void run_wide(unsigned n, void *(*fn)(void *))
{
	pthread_t t[WIDE];

	assert_int_equal(pthread_barrier_init(&together, NULL, n), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&together);
	assert_int_equal(atomic_load(&bad), 0);
}

/* Live threads never share an index; exited threads' indexes are handed on, so a second wave
 * of as many threads gets the same set of numbers instead of new ones. */
static void test_indexes_are_unique_among_live_threads_and_reused(void **state)
{
	uint32_t first[WIDE], main_index = sx__thread_index();

	(void)state;
	assert_int_equal(main_index, 0); /* the first thread of the program to ask */
	for (int wave = 0; wave < 3; wave++) {
		for (unsigned i = 0; i <= WIDE; i++)
			atomic_store(&seen[i], 0);
		run_wide(WIDE, note_index);
		for (unsigned i = 0; i < WIDE; i++) {
			assert_int_not_equal(index_of[i], SX__THREAD_NONE);
			assert_int_not_equal(index_of[i], main_index);
			/* the main thread and WIDE others: numbers 0 .. WIDE */
			assert_true(index_of[i] <= WIDE);
			assert_int_equal(atomic_fetch_add(&seen[index_of[i]], 1), 0);
			if (wave == 0)
				first[i] = index_of[i];
		}
		if (wave > 0) {
			uint64_t a = 0, b = 0;

			for (unsigned i = 0; i < WIDE; i++) {
				a += first[i];
				b += index_of[i];
			}
			assert_int_equal(a, b); /* the same numbers, handed on */
		}
	}
}

/* ---- striped counters ---------------------------------------------------------------------- */

static sx__counters *ctr;

static void *count_wide(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	pthread_barrier_wait(&together);
	for (unsigned i = 0; i < CALLS; i++) {
		sx__count(ctr, 0);
		if (i % (me + 1) == 0)
			sx__count(ctr, SX__STRIPE_N - 1);
	}
	return NULL;
}

static uint64_t expected_last(unsigned n)
{
	uint64_t sum = 0;

	for (unsigned me = 0; me < n; me++)
		sum += (CALLS + me) / (me + 1);
	return sum;
}

/* More live threads than stripes: the first ones own a line each, the rest share the atomic
 * line; the sums are exact and the other counters untouched. */
static void test_counts_are_exact_past_the_stripes(void **state)
{
	(void)state;
	ctr = sx__zalloc(sizeof(*ctr), SX__CACHELINE);
	assert_non_null(ctr);
	run_wide(WIDE, count_wide);
	assert_int_equal(sx__count_sum(ctr, 0), (uint64_t)WIDE * CALLS);
	assert_int_equal(sx__count_sum(ctr, SX__STRIPE_N - 1), expected_last(WIDE));
	for (unsigned k = 1; k < SX__STRIPE_N - 1; k++)
		assert_int_equal(sx__count_sum(ctr, k), 0);
	sx__dfree(ctr, sizeof(*ctr), SX__CACHELINE);
}

/* Threads that come and go, each counting a little and exiting while the others count: every
 * new thread takes over a stripe another left, and must go on from that thread's last value. */
static atomic_uint churned;

static void *count_and_exit(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 100; i++)
		sx__count(ctr, 1);
	atomic_fetch_add(&churned, 1);
	return NULL;
}

static void *churner(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&together);
	for (unsigned i = 0; i < 40; i++) {
		pthread_t t;

		CHECK(pthread_create(&t, NULL, count_and_exit, NULL) == 0);
		CHECK(pthread_join(t, NULL) == 0);
		sx__count(ctr, 2);
	}
	return NULL;
}

static void test_counts_survive_thread_churn(void **state)
{
	(void)state;
	ctr = sx__zalloc(sizeof(*ctr), SX__CACHELINE);
	assert_non_null(ctr);
	atomic_store(&churned, 0);
	run_wide(8, churner);
	assert_int_equal(atomic_load(&churned), 8 * 40);
	assert_int_equal(sx__count_sum(ctr, 1), 8 * 40 * 100);
	assert_int_equal(sx__count_sum(ctr, 2), 8 * 40);
	sx__dfree(ctr, sizeof(*ctr), SX__CACHELINE);
}

/* ---- the pipeline's and the limiter's counts ------------------------------------------------ */

static sx_pipeline *pl;
static sx_ratelimit *rl;

/* Fails every seventh call of its thread. */
static int seventh_fails(sx_call *call)
{
	unsigned *n = call->arg;

	return ++*n % 7 == 0 ? -EIO : 0;
}

static unsigned ran_of[WIDE];

static void *call_wide(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg, n = 0;

	pthread_barrier_wait(&together);
	for (unsigned i = 0; i < CALLS; i++)
		(void)sx_pipeline_call(pl, seventh_fails, &n, NULL, NULL);
	ran_of[me] = n;
	return NULL;
}

/* WIDE threads through one pipeline whose limiter (on a frozen virtual clock) admits exactly its
 * burst: calls, failures and refusals add up to the last one, in the pipeline and the limiter. */
static void test_pipeline_and_limiter_counts_are_exact(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_pipeline_metrics m;
	sx_ratelimit_metrics r;
	uint64_t total = (uint64_t)WIDE * CALLS, admitted = 5000, ran = 0, failed = 0;

	(void)state;
	tu_vnow = SEC;
	ro.rate = 1;
	ro.burst = (uint32_t)admitted;
	ro.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	assert_int_equal(sx_pipeline_create(&po, &pl), 0);
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, 0), 0);
	run_wide(WIDE, call_wide);
	assert_int_equal(sx_pipeline_snapshot(pl, &m), 0);
	assert_int_equal(sx_ratelimit_snapshot(rl, &r), 0);
	assert_int_equal(m.calls, total);
	assert_int_equal(m.rejected, total - admitted);
	assert_int_equal(r.refused, total - admitted);
	assert_int_equal(r.available, 0);
	assert_int_equal(r.burst, admitted);
	/* The action ran admitted times, each thread failing every seventh of its own runs. */
	for (unsigned i = 0; i < WIDE; i++) {
		ran += ran_of[i];
		failed += ran_of[i] / 7;
	}
	assert_int_equal(ran, admitted);
	assert_int_equal(m.failed, m.rejected + failed);
	assert_int_equal(m.retries + m.timeouts + m.hedges + m.fallbacks, 0);
	sx_pipeline_destroy(pl);
	sx_ratelimit_destroy(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_indexes_are_unique_among_live_threads_and_reused),
		cmocka_unit_test(test_counts_are_exact_past_the_stripes),
		cmocka_unit_test(test_counts_survive_thread_churn),
		cmocka_unit_test(test_pipeline_and_limiter_counts_are_exact),
	};

	tu_white_setup();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
