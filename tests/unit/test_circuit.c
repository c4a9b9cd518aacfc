/* Circuit breaker: Workshop's breaker behaviours on a virtual clock, half-open probes under racing
 * threads, probe leases, stale generations, slow calls, consecutive failures, time windows,
 * growing open durations, forced states, callbacks that call back in, timer-driven half-open on a
 * real pool, and a many-thread stress run. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../testutil.h"

#include <strix/circuit.h>

#define MS 1000000ull
#define SEC 1000000000ull

static sx_circuit_opts base_opts(void)
{
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;

	o.clock = &tu_vclock;
	return o;
}

static sx_circuit *circuit(const sx_circuit_opts *o)
{
	sx_circuit *c = NULL;

	assert_int_equal(sx_circuit_create(o, &c), 0);
	assert_non_null(c);
	return c;
}

/* One call through c: 0 if it was let through (and reported with result), else the refusal. */
static int call(sx_circuit *c, int result, uint64_t latency)
{
	sx_circuit_permit p;
	int rc = sx_circuit_acquire(c, &p);

	if (rc != 0) {
		assert_int_equal(rc, SX_ECIRCUIT_OPEN);
		assert_true(p == 0);
		return rc;
	}
	assert_int_equal(sx_circuit_release(c, p, result, latency), 0);
	return 0;
}

/* Workshop's breaker: window 6, rate 0.6, open 1 s. */
static sx_circuit *workshop(void)
{
	sx_circuit_opts o = base_opts();

	o.window_size = 6;
	o.min_calls = 6;
	o.failure_rate = 0.6;
	o.open_ns = SEC;
	return circuit(&o);
}

static void test_workshop_three_successes_then_failures_open(void **state)
{
	sx_circuit *c;
	sx_circuit_metrics m;
	int i, passed = 0;

	(void)state;
	tu_vnow = 10 * SEC;
	c = workshop();
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	for (i = 0; i < 3; i++)
		assert_int_equal(call(c, 0, 0), 0);
	for (i = 0; i < 8; i++)
		passed += call(c, -EIO, 0) == 0;
	/* SSSFFF is 3/6 = 50% (closed); SSFFFF is 4/6 >= 60%: the 4th failure opens it. */
	assert_int_equal(passed, 4);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_int_equal(m.state, SX_CIRCUIT_OPEN);
	assert_int_equal(m.rejected, 4);
	assert_int_equal(m.until_ns, 11 * SEC);
	sx_circuit_destroy(c);
}

static void test_workshop_alternating_stays_closed(void **state)
{
	sx_circuit *c;
	sx_circuit_metrics m;

	(void)state;
	tu_vnow = 0;
	c = workshop();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(call(c, i % 2 ? -EIO : 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 6);
	assert_int_equal(m.failures, 3);
	sx_circuit_destroy(c);
}

static void test_workshop_open_half_open_reopen_close(void **state)
{
	sx_circuit *c;
	sx_circuit_permit p;

	(void)state;
	tu_vnow = 5 * SEC + 123;
	c = workshop();
	assert_int_equal(sx_circuit_force(c, SX_CIRCUIT_OPEN), 0);
	tu_vadvance(SEC - 1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	assert_int_equal(call(c, 0, 0), SX_ECIRCUIT_OPEN);
	tu_vadvance(1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	/* A failed probe reopens it for another period. */
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	tu_vadvance(SEC / 2);
	assert_int_equal(sx_circuit_acquire(c, &p), SX_ECIRCUIT_OPEN);
	tu_vadvance(SEC / 2);
	/* The next acquire moves it to half-open itself (no pool, nobody called state). */
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(sx_circuit_release(c, p, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	/* A fresh window: five failures do not reach min_calls. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(c);
}

static void test_bad_options_create_nothing(void **state)
{
	sx_circuit *c = (sx_circuit *)&c;
	sx_circuit_opts o;
	sx_clock noclock = { NULL, NULL, NULL };

	(void)state;
#define BAD(stmt)                                                          \
	do {                                                               \
		o = base_opts();                                           \
		stmt;                                                      \
		assert_int_equal(sx_circuit_create(&o, &c), -EINVAL);      \
		assert_ptr_equal(c, (sx_circuit *)&c);                     \
	} while (0)
	BAD(o.failure_rate = 1.01);
	BAD(o.failure_rate = -0.5);
	BAD(o.failure_rate = 0.0 / 0.0);
	BAD(o.slow_rate = 2.0);
	BAD(o.window_size = SX_CIRCUIT_MAX_WINDOW + 1);
	BAD(o.window = 7);
	BAD((o.window = SX_CIRCUIT_WINDOW_TIME, o.window_buckets = 65));
	BAD((o.window = SX_CIRCUIT_WINDOW_TIME, o.window_ns = 5, o.window_buckets = 10));
	BAD((o.window = SX_CIRCUIT_WINDOW_TIME, o.window_ns = -10 * (int64_t)SEC));
	BAD(o.half_open_permits = SX_CIRCUIT_MAX_PERMITS + 1);
	BAD(o.half_open_successes = 2);
	BAD(o.open_ns = SX_CIRCUIT_MAX_DURATION_NS + 1);
	BAD(o.open_ns = -(int64_t)SEC);
	BAD(o.probe_lease_ns = 999999);
	BAD(o.probe_lease_ns = -(int64_t)SEC);
	BAD(o.slow_call_ns = -1);
	BAD(o.open_backoff = 0.5);
	BAD(o.open_max_ns = o.open_ns - 1);
	BAD(o.open_max_ns = -1);
	BAD(o.clock = &noclock);
	/* Zero is a default, not an error, in every field (test_zero_options_take_the_defaults). */
	BAD((o.half_open_permits = 0, o.half_open_successes = 2)); /* 0: 1 permit, below 2 */
#undef BAD
	assert_int_equal(sx_circuit_create(NULL, &c), -EINVAL);
	o = base_opts();
	assert_int_equal(sx_circuit_create(&o, NULL), -EINVAL);
	assert_ptr_equal(c, (sx_circuit *)&c);
	/* Calls on NULL or with a zero permit. */
	assert_int_equal(sx_circuit_acquire(NULL, NULL), -EINVAL);
	assert_int_equal(sx_circuit_state(NULL), -EINVAL);
	assert_int_equal(sx_circuit_force(NULL, 0), -EINVAL);
	c = circuit(&o);
	assert_int_equal(sx_circuit_acquire(c, NULL), -EINVAL);
	assert_int_equal(sx_circuit_release(c, 0, 0, 0), -EINVAL);
	assert_int_equal(sx_circuit_force(c, 6), -EINVAL);
	assert_int_equal(sx_circuit_force(c, -1), -EINVAL);
	assert_int_equal(sx_circuit_snapshot(c, NULL), -EINVAL);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	assert_string_equal(sx_circuit_state_name(SX_CIRCUIT_HALF_OPEN), "half-open");
	assert_string_equal(sx_circuit_state_name(42), "unknown");
	sx_circuit_destroy(c);
	sx_circuit_destroy(NULL);
}

/* ---- half-open probes under racing threads -------------------------------------------------- */

#define RACERS 8

static sx_circuit *race_c;
static unsigned race_go, race_admitted, race_round;

static void *racer(void *arg)
{
	unsigned seen = 0;

	(void)arg;
	for (;;) {
		unsigned r;
		sx_circuit_permit p;

		while ((r = __atomic_load_n(&race_go, __ATOMIC_ACQUIRE)) == seen)
			sched_yield();
		if (r == UINT32_MAX)
			return NULL;
		seen = r;
		for (int i = 0; i < 50; i++)
			if (sx_circuit_acquire(race_c, &p) == 0)
				__atomic_add_fetch(&race_admitted, 1, __ATOMIC_ACQ_REL);
		__atomic_add_fetch(&race_round, 1, __ATOMIC_ACQ_REL);
	}
}

/* A zero-filled options struct is SX_CIRCUIT_OPTS_INIT's circuit but for min_calls (1): a count
 * window of 100, 50% failures, open for 10 s, one probe that closes it. */
static void test_zero_options_take_the_defaults(void **state)
{
	sx_circuit_opts o;
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.clock = &tu_vclock;
	tu_vnow = 10 * SEC;
	c = circuit(&o);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(call(c, -EIO, 0), 0);     /* 1 of 2: 50% opens it */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_int_equal(m.until_ns, 20 * SEC);    /* open 10 s */
	tu_vadvance(10 * SEC - 1);
	assert_int_equal(call(c, 0, 0), SX_ECIRCUIT_OPEN);
	tu_vadvance(1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(call(c, 0, 0), 0);        /* one probe, and it closes the circuit */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(c);

	/* A time window: 10 buckets of 1 s, 10 s in all. */
	memset(&o, 0, sizeof(o));
	o.clock = &tu_vclock;
	o.window = SX_CIRCUIT_WINDOW_TIME;
	o.min_calls = 3;
	c = circuit(&o);
	assert_int_equal(call(c, -EIO, 0), 0);
	tu_vadvance(10 * SEC);                     /* the failure leaves the window */
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(call(c, -EIO, 0), 0);     /* 1 of 2 in the window: below min_calls */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	assert_int_equal(call(c, -EIO, 0), 0);     /* 2 of 3: open */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);

	/* open_ns 0 with a shorter cap: the cap. */
	memset(&o, 0, sizeof(o));
	o.clock = &tu_vclock;
	o.open_max_ns = 2 * (int64_t)SEC;
	o.consecutive_failures = 1;
	c = circuit(&o);
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_int_equal(m.state, SX_CIRCUIT_OPEN);
	assert_int_equal(m.until_ns, tu_vnow + 2 * SEC);
	sx_circuit_destroy(c);
}

static void test_half_open_admits_exactly_the_permits(void **state)
{
	pthread_t t[RACERS];
	sx_circuit_opts o = base_opts();
	unsigned rounds = 50 * tu_stress_scale();

	(void)state;
	tu_vnow = SEC;
	o.half_open_permits = 3;
	race_c = circuit(&o);
	race_go = race_round = 0;
	for (int i = 0; i < RACERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, racer, NULL), 0);
	for (unsigned r = 1; r <= rounds; r++) {
		assert_int_equal(sx_circuit_force(race_c, SX_CIRCUIT_HALF_OPEN), 0);
		race_admitted = 0;
		__atomic_store_n(&race_round, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&race_go, r, __ATOMIC_RELEASE);
		TU_WAIT_FOR(__atomic_load_n(&race_round, __ATOMIC_ACQUIRE) == RACERS);
		assert_int_equal(__atomic_load_n(&race_admitted, __ATOMIC_ACQUIRE), 3);
	}
	__atomic_store_n(&race_go, UINT32_MAX, __ATOMIC_RELEASE);
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	sx_circuit_destroy(race_c);
}

static void test_probe_lease_expires(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_permit lost, again;
	sx_circuit *c;

	(void)state;
	tu_vnow = 3 * SEC;
	o.open_ns = SEC;
	o.probe_lease_ns = 500 * MS;
	o.half_open_permits = 2;
	c = circuit(&o);
	sx_circuit_force(c, SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(sx_circuit_acquire(c, &lost), 0);
	tu_vadvance(400 * MS); /* one probe out, one left: no lease runs yet */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(sx_circuit_acquire(c, &again), 0);
	assert_int_equal(sx_circuit_release(c, again, 0, 0), 0); /* one success of two needed */
	assert_int_equal(sx_circuit_acquire(c, &again), SX_ECIRCUIT_OPEN);
	/* Every probe out, and the lost one never reports: 500 ms after the last went out it is
	 * taken back as failed, the circuit opens again instead of sticking half-open. */
	tu_vadvance(499 * MS);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	tu_vadvance(MS);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	/* The lost probe reporting late changes nothing. */
	assert_int_equal(sx_circuit_release(c, lost, 0, 0), -ESTALE);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	tu_vadvance(SEC);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(c);
}

static void test_stale_generation_changes_nothing(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_permit old[10];
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 10;
	c = circuit(&o);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_circuit_acquire(c, &old[i]), 0);
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_force(c, SX_CIRCUIT_CLOSED);
	/* Ten failures measured before the transitions: none counts in the new window. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_circuit_release(c, old[i], -EIO, 0), -ESTALE);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 0);
	assert_int_equal(m.consecutive_failures, 0);
	/* A half-open probe's permit from before a forced close is stale too. */
	sx_circuit_force(c, SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(sx_circuit_acquire(c, &old[0]), 0);
	sx_circuit_force(c, SX_CIRCUIT_CLOSED);
	assert_int_equal(sx_circuit_release(c, old[0], -EIO, 0), -ESTALE);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(c);
}

static void test_slow_calls_trip(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 10;
	o.slow_call_ns = 100 * MS;
	o.slow_rate = 0.5;
	c = circuit(&o);
	for (int i = 0; i < 9; i++)
		assert_int_equal(call(c, 0, i < 4 ? 200 * MS : 99 * MS), 0);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.slow, 4);
	assert_int_equal(m.failures, 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	/* The tenth call is slow (and successful): 5 of 10 slow reaches 50%. */
	assert_int_equal(call(c, 0, 100 * MS), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	/* A slow probe counts as a failed one. */
	tu_vadvance(10 * SEC);
	assert_int_equal(call(c, 0, 150 * MS), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);
}

static void test_consecutive_failures_and_ignored_results(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit_permit p;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.consecutive_failures = 5;
	c = circuit(&o); /* window 100, min 100: only the run of failures can trip it */
	for (int i = 0; i < 4; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(call(c, 0, 0), 0); /* breaks the run */
	for (int i = 0; i < 4; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	/* The caller's own cancellation is not the dependency's failure: not counted at all. */
	assert_int_equal(call(c, -ECANCELED, 0), 0);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 9);
	assert_int_equal(m.failures, 8);
	assert_int_equal(m.consecutive_failures, 4);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	/* An ignored probe gives its permit back. */
	tu_vadvance(10 * SEC);
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	assert_int_equal(sx_circuit_acquire(c, &p), SX_ECIRCUIT_OPEN);
	assert_int_equal(sx_circuit_release(c, p, -ECANCELED, 0), -EINVAL); /* p is 0 now */
	sx_circuit_force(c, SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	assert_int_equal(sx_circuit_release(c, p, -ECANCELED, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(c);
}

static int only_eio_fails(int result, void *ctx)
{
	(void)ctx;
	if (result == -EIO)
		return SX_CIRCUIT_FAILURE;
	return result == -EAGAIN ? SX_CIRCUIT_IGNORE : SX_CIRCUIT_SUCCESS;
}

static void test_custom_classify(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 4;
	o.min_calls = 4;
	o.classify = only_eio_fails;
	c = circuit(&o);
	assert_int_equal(call(c, -ENOENT, 0), 0); /* a "not found" answer is a success here */
	assert_int_equal(call(c, -EAGAIN, 0), 0); /* ignored */
	assert_int_equal(call(c, -ECANCELED, 0), 0); /* a failure to this classifier */
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 2);
	assert_int_equal(m.failures, 0);
	sx_circuit_destroy(c);
}

static void test_time_window_forgets_bucket_by_bucket(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = 100 * SEC;
	o.window = SX_CIRCUIT_WINDOW_TIME;
	o.window_ns = 10 * SEC;
	o.window_buckets = 10;
	o.min_calls = 10;
	o.failure_rate = 0.5;
	c = circuit(&o);
	/* One second apart: 4 failures, then 5 successes. */
	for (int i = 0; i < 9; i++) {
		assert_int_equal(call(c, i < 4 ? -EIO : 0, 0), 0);
		tu_vadvance(SEC);
	}
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 9);
	assert_int_equal(m.failures, 4);
	/* The window slides one bucket at a time: 10 s after the first call it is forgotten. */
	tu_vadvance(SEC);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 8);
	assert_int_equal(m.failures, 3);
	/* 3 + 2 failures of 10 calls: 50% trips it (min_calls reached). */
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 0); /* a new generation's window is empty */
	sx_circuit_destroy(c);
}

static void test_open_duration_grows_and_resets(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;
	const uint64_t want[] = { SEC, 2 * SEC, 4 * SEC, 5 * SEC, 5 * SEC };

	(void)state;
	tu_vnow = SEC;
	o.open_ns = SEC;
	o.open_backoff = 2.0;
	o.open_max_ns = 5 * SEC;
	c = circuit(&o);
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	for (unsigned i = 0; i < 5; i++) {
		sx_circuit_snapshot(c, &m);
		assert_int_equal(m.until_ns - tu_vnow, want[i]);
		tu_vadvance(want[i] - 1);
		assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
		tu_vadvance(1);
		assert_int_equal(call(c, -EIO, 0), 0); /* the probe fails: open again, longer */
	}
	tu_vadvance(5 * SEC);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.until_ns - tu_vnow, SEC); /* a close resets the growth */
	sx_circuit_destroy(c);
}

static void test_forced_disabled_metrics_only(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 1;
	c = circuit(&o);
	sx_circuit_force(c, SX_CIRCUIT_FORCED_OPEN);
	tu_vadvance(1000 * SEC);
	assert_int_equal(call(c, 0, 0), SX_ECIRCUIT_OPEN);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_FORCED_OPEN);
	sx_circuit_force(c, SX_CIRCUIT_DISABLED);
	for (int i = 0; i < 20; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 0);
	assert_int_equal(m.state, SX_CIRCUIT_DISABLED);
	sx_circuit_force(c, SX_CIRCUIT_METRICS_ONLY);
	for (int i = 0; i < 20; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 10);
	assert_int_equal(m.failures, 10);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_METRICS_ONLY);
	sx_circuit_destroy(c);
}

/* ---- callbacks ------------------------------------------------------------------------------ */

struct seen {
	int from[16], to[16];
	sx_circuit_metrics m[16];
	unsigned n;
};

static void on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	struct seen *s = arg;
	sx_circuit_metrics now;
	sx_circuit_permit p;

	s->from[s->n] = from;
	s->to[s->n] = to;
	s->m[s->n] = *m;
	s->n++;
	/* Calling back in: reads, an acquire, and a transition of its own. */
	assert_int_equal(sx_circuit_snapshot(c, &now), 0);
	assert_int_equal(now.state, to);
	if (to == SX_CIRCUIT_HALF_OPEN && s->n == 2) {
		assert_int_equal(sx_circuit_acquire(c, &p), 0);
		assert_int_equal(sx_circuit_release(c, p, 0, 0), 0); /* closes it, nested */
	}
}

static void test_callbacks_see_snapshots_and_may_call_back(void **state)
{
	sx_circuit_opts o = base_opts();
	struct seen s = { .n = 0 };
	sx_circuit *c;

	(void)state;
	tu_vnow = 7 * SEC;
	o.window_size = 6;
	o.min_calls = 6;
	o.failure_rate = 0.6;
	o.open_ns = SEC;
	o.on_state = on_state;
	o.on_state_arg = &s;
	c = circuit(&o);
	for (int i = 0; i < 3; i++)
		call(c, 0, 0);
	for (int i = 0; i < 4; i++)
		call(c, -EIO, 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.from[0], SX_CIRCUIT_CLOSED);
	assert_int_equal(s.to[0], SX_CIRCUIT_OPEN);
	assert_int_equal(s.m[0].calls, 6);
	assert_int_equal(s.m[0].failures, 4);
	assert_int_equal(s.m[0].generation, 0);
	tu_vadvance(SEC);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED); /* the callback closed it */
	assert_int_equal(s.n, 3);
	assert_int_equal(s.to[1], SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(s.from[2], SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(s.to[2], SX_CIRCUIT_CLOSED);
	assert_int_equal(s.m[2].half_open_issued, 1);
	assert_int_equal(s.m[2].half_open_successes, 0);
	assert_int_equal(s.m[2].generation, 2);
	sx_circuit_destroy(c);
}

/* ---- the timer service drives OPEN -> HALF_OPEN on a real pool ------------------------------ */

static unsigned half_opened;

static void note_half_open(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c, (void)from, (void)m, (void)arg;
	if (to == SX_CIRCUIT_HALF_OPEN)
		__atomic_add_fetch(&half_opened, 1, __ATOMIC_ACQ_REL);
}

static void test_timer_drives_half_open_without_callers(void **state)
{
	sx_pool *pool = tu_pool(2);
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	sx_circuit *c;
	uint64_t t0;

	(void)state;
	o.pool = pool;
	o.open_ns = 50 * MS;
	o.on_state = note_half_open;
	c = circuit(&o);
	t0 = tu_now_ns();
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	TU_WAIT_FOR(__atomic_load_n(&half_opened, __ATOMIC_ACQUIRE) == 1);
	assert_true(tu_now_ns() - t0 >= 50 * MS);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	/* A circuit destroyed while its timer is pending: the timer only drops its reference. */
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);
	tu_sleep_ns(80 * MS);
	assert_int_equal(__atomic_load_n(&half_opened, __ATOMIC_ACQUIRE), 1);
	sx_pool_destroy(pool);
}

/* ---- stress: many threads, random outcomes and forced transitions --------------------------- */

#define STRESSERS 12

static sx_circuit *st_c;
static unsigned st_half_issued_max;

static void st_on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c, (void)to, (void)arg;
	unsigned cur = __atomic_load_n(&st_half_issued_max, __ATOMIC_RELAXED);

	while (from == SX_CIRCUIT_HALF_OPEN && m->half_open_issued > cur &&
	    !__atomic_compare_exchange_n(&st_half_issued_max, &cur, m->half_open_issued, false,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void *stresser(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 7919 + 1;
	unsigned n = 20000 * tu_stress_scale();

	for (unsigned i = 0; i < n; i++) {
		uint64_t r = tu_rand(&rng);
		sx_circuit_permit p;

		if (r % 997 == 0) {
			sx_circuit_force(st_c, (int)(r % 6));
			continue;
		}
		if (r % 13 == 0)
			tu_vadvance(MS);
		if (sx_circuit_acquire(st_c, &p) != 0)
			continue;
		int rc = sx_circuit_release(st_c, p, r % 3 == 0 ? -EIO : r % 11 == 0 ? -ECANCELED : 0,
		    (r >> 8) % 200 * MS);
		assert_true(rc == 0 || rc == -ESTALE);
	}
	return NULL;
}

static void test_stress_many_threads(void **state)
{
	pthread_t t[STRESSERS];
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 50;
	o.min_calls = 20;
	o.slow_call_ns = 150 * MS;
	o.slow_rate = 0.9;
	o.consecutive_failures = 6;
	o.open_ns = 5 * MS;
	o.probe_lease_ns = 20 * MS;
	o.half_open_permits = 4;
	o.half_open_successes = 3;
	o.on_state = st_on_state;
	st_c = circuit(&o);
	for (uintptr_t i = 0; i < STRESSERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stresser, (void *)i), 0);
	for (int i = 0; i < STRESSERS; i++)
		pthread_join(t[i], NULL);
	assert_true(__atomic_load_n(&st_half_issued_max, __ATOMIC_RELAXED) <= 4);
	assert_int_equal(sx_circuit_snapshot(st_c, &m), 0);
	assert_true(m.failures <= m.calls && m.slow <= m.calls);
	assert_true(m.calls <= 16 * 50);
	sx_circuit_destroy(st_c);
}

/* Exact counts with several threads: METRICS_ONLY, each thread its own stripe. */
static sx_circuit *ex_c;

static void *exact_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 40; i++)
		call(ex_c, i % 4 == 0 ? -EIO : 0, 0);
	return NULL;
}

static void test_counts_merge_across_threads(void **state)
{
	pthread_t t[8];
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 100;
	ex_c = circuit(&o);
	sx_circuit_force(ex_c, SX_CIRCUIT_METRICS_ONLY);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, exact_worker, NULL), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	sx_circuit_snapshot(ex_c, &m);
	assert_int_equal(m.calls, 320);
	assert_int_equal(m.failures, 80);
	sx_circuit_destroy(ex_c);
}

/* ---- full windows: the successes that change nothing --------------------------------------- */

/* A COUNT window as a model: the last `size` recorded outcomes, the run of failures, and whether
 * the options would trip on the latest one (as strix/circuit.h states the rule). */
struct wmodel {
	uint32_t size, n, pos;
	bool fail[SX_CIRCUIT_MAX_WINDOW], slow[SX_CIRCUIT_MAX_WINDOW];
	uint64_t consec;
};

static void wm_reset(struct wmodel *m, uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->size = size;
}

static void wm_push(struct wmodel *m, bool fail, bool slow)
{
	m->fail[m->pos] = fail;
	m->slow[m->pos] = slow;
	m->pos = (m->pos + 1) % m->size;
	if (m->n < m->size)
		m->n++;
	m->consec = fail ? m->consec + 1 : 0;
}

static uint64_t wm_count(const struct wmodel *m, const bool *bits)
{
	uint64_t k = 0;

	for (uint32_t i = 0; i < m->n; i++)
		k += bits[i];
	return k;
}

/* Whether o trips on the result just pushed (fail, slow) into m. */
static bool wm_trips(const struct wmodel *m, const sx_circuit_opts *o, bool fail, bool slow)
{
	uint64_t f = wm_count(m, m->fail), sl = wm_count(m, m->slow);

	if (!fail && !slow)
		return false;
	if (fail && o->consecutive_failures != 0 && m->consec >= o->consecutive_failures)
		return true;
	if (m->n < o->min_calls)
		return false;
	return f * 1000000 >= (uint64_t)llround(o->failure_rate * 1e6) * m->n ||
	    sl * 1000000 >= (uint64_t)llround(o->slow_rate * 1e6) * m->n;
}

static void wm_check(sx_circuit *c, const struct wmodel *m)
{
	sx_circuit_metrics s;

	assert_int_equal(sx_circuit_snapshot(c, &s), 0);
	assert_int_equal(s.calls, m->n);
	assert_int_equal(s.failures, wm_count(m, m->fail));
	assert_int_equal(s.slow, wm_count(m, m->slow));
	assert_int_equal(s.consecutive_failures, m->consec);
}

/* After a window full of successes, one failure (or one slow call) stays counted for exactly
 * window_size results, its own included, whatever the ring position; the window stays full. */
static void test_full_window_keeps_a_failure_for_its_size(void **state)
{
	static const uint32_t sizes[] = { 1, 2, 10, 63, 64, 65, 100, 4096 };

	(void)state;
	tu_vnow = SEC;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		sx_circuit_opts o = base_opts();
		uint32_t size = sizes[k];
		struct wmodel *m = malloc(sizeof(*m));
		sx_circuit *c;

		assert_non_null(m);
		o.window_size = size;
		o.min_calls = size + 1; /* the rates never trip it */
		o.slow_call_ns = MS;
		c = circuit(&o);
		wm_reset(m, size);
		for (uint32_t i = 0; i < 2 * size + 3; i++) { /* full, and the ring turned */
			assert_int_equal(call(c, 0, 0), 0);
			wm_push(m, false, false);
		}
		wm_check(c, m);
		for (int round = 0; round < 3; round++) {
			bool fail = round != 1, slow = round != 0;

			assert_int_equal(call(c, fail ? -EIO : 0, slow ? MS : 0), 0);
			wm_push(m, fail, slow);
			for (uint32_t i = 1; i < size; i++) {
				wm_check(c, m);
				assert_int_equal(call(c, 0, 0), 0);
				wm_push(m, false, false);
			}
			wm_check(c, m); /* window_size - 1 successes on: still counted */
			assert_int_equal(call(c, 0, 0), 0);
			wm_push(m, false, false);
			wm_check(c, m); /* one more: gone */
			assert_int_equal(wm_count(m, m->fail) + wm_count(m, m->slow), 0);
		}
		sx_circuit_destroy(c);
		free(m);
	}
}

/* Random results, in spells of nearly all successes (full windows of them) and of many failures
 * and slow calls, against the model: the snapshot after every call, and every trip exactly when
 * the model trips (then a forced close starts both over). The same again in METRICS_ONLY, which
 * never trips. */
static void test_window_agrees_with_a_model(void **state)
{
	static const uint32_t sizes[] = { 1, 7, 64, 100, SX_CIRCUIT_MAX_WINDOW };

	(void)state;
	tu_vnow = SEC;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		sx_circuit_opts o = base_opts();
		struct wmodel *m = malloc(sizeof(*m));
		uint64_t seed = 0x9e3779b97f4a7c15ull + k;
		unsigned trips = 0;
		sx_circuit *c;

		assert_non_null(m);
		o.window_size = sizes[k];
		o.min_calls = sizes[k] / 2;
		o.failure_rate = 0.25;
		o.slow_call_ns = MS;
		o.slow_rate = 0.3;
		o.consecutive_failures = 4;
		c = circuit(&o);
		for (int metrics_only = 0; metrics_only < 2; metrics_only++) {
			wm_reset(m, sizes[k]);
			if (metrics_only)
				sx_circuit_force(c, SX_CIRCUIT_METRICS_ONLY);
			for (int i = 0; i < 12000; i++) {
				unsigned r = (unsigned)(tu_rand(&seed) % 100);
				unsigned bad = (i / 400) % 3 == 2 ? 30 : 1; /* percent, per spell */
				bool fail = r < bad, ignored = r == 99;
				bool slow = r >= 99 - bad && r < 99;

				assert_int_equal(call(c, ignored ? -ECANCELED : fail ? -EIO : 0,
				    slow ? MS + r : MS - 1), 0);
				if (!ignored)
					wm_push(m, fail, slow);
				if (!metrics_only && !ignored && wm_trips(m, &o, fail, slow)) {
					assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
					sx_circuit_force(c, SX_CIRCUIT_CLOSED);
					wm_reset(m, sizes[k]);
					trips++;
				}
				assert_int_equal(sx_circuit_state(c),
				    metrics_only ? SX_CIRCUIT_METRICS_ONLY : SX_CIRCUIT_CLOSED);
				wm_check(c, m);
			}
		}
		assert_true(trips > 10);
		sx_circuit_destroy(c);
		free(m);
	}
}

/* The reports a full window of successes would take without a write are checked all the same:
 * a negative latency or a permit never handed out is -EINVAL, an older generation's -ESTALE,
 * and none of them counts. */
static void test_full_window_still_checks_every_report(void **state)
{
	static const int64_t slow_ns[] = { 0, (int64_t)MS };

	(void)state;
	tu_vnow = SEC;
	for (size_t k = 0; k < 2; k++) {
		sx_circuit_opts o = base_opts();
		sx_circuit_metrics m;
		sx_circuit_permit p, old;
		sx_circuit *c;

		o.window_size = 4;
		o.min_calls = 5;
		o.slow_call_ns = slow_ns[k];
		c = circuit(&o);
		assert_int_equal(sx_circuit_acquire(c, &old), 0);
		sx_circuit_force(c, SX_CIRCUIT_CLOSED); /* old is stale now */
		for (int i = 0; i < 9; i++)
			assert_int_equal(call(c, 0, 0), 0);
		assert_int_equal(sx_circuit_acquire(c, &p), 0);
		assert_int_equal(sx_circuit_release(c, p, 0, -1), -EINVAL);
		assert_int_equal(sx_circuit_release(c, p, 0, INT64_MIN), -EINVAL);
		assert_int_equal(sx_circuit_release(c, p | UINT64_C(1) << 50, 0, 0), -EINVAL);
		assert_int_equal(sx_circuit_release(c, p & ~(UINT64_C(1) << 63), 0, 0), -EINVAL);
		assert_int_equal(sx_circuit_release(c, 0, 0, 0), -EINVAL);
		assert_int_equal(sx_circuit_release(NULL, p, 0, 0), -EINVAL);
		assert_int_equal(sx_circuit_release(c, old, 0, 0), -ESTALE);
		assert_int_equal(sx_circuit_release(c, old, -EIO, 0), -ESTALE);
		assert_int_equal(sx_circuit_release(c, p, 0, INT64_MAX), 0); /* slow, if any is */
		sx_circuit_snapshot(c, &m);
		assert_int_equal(m.calls, 4);
		assert_int_equal(m.failures, 0);
		assert_int_equal(m.slow, k);
		assert_int_equal(m.generation, 1);
		sx_circuit_destroy(c);
	}
}

/* A success on a full window of successes still ends a run of failures that another thread
 * (another stripe) began, so that the run has to start over. */
static sx_circuit *other_c;

static void *fail_once(void *arg)
{
	(void)arg;
	call(other_c, -EIO, 0);
	return NULL;
}

static void test_success_ends_another_threads_run_of_failures(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	pthread_t t;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 11;
	o.consecutive_failures = 2;
	other_c = circuit(&o);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 25; i++)
			assert_int_equal(call(other_c, 0, 0), 0);
		assert_int_equal(pthread_create(&t, NULL, fail_once, NULL), 0);
		pthread_join(t, NULL);
		sx_circuit_snapshot(other_c, &m);
		assert_int_equal(m.consecutive_failures, 1);
	}
	assert_int_equal(call(other_c, 0, 0), 0);
	sx_circuit_snapshot(other_c, &m);
	assert_int_equal(m.consecutive_failures, 0);
	assert_int_equal(sx_circuit_state(other_c), SX_CIRCUIT_CLOSED);
	sx_circuit_destroy(other_c);
}

/* Threads that each fill their window with successes, fail once and go on: the merged window
 * holds every thread's failure until window_size results of its own thread pushed it out. */
static sx_circuit *full_c;
static unsigned full_go;

static void *full_worker(void *arg)
{
	unsigned after = (unsigned)(uintptr_t)arg;

	while (!__atomic_load_n(&full_go, __ATOMIC_ACQUIRE))
		;
	for (int i = 0; i < 250; i++)
		call(full_c, 0, 0);
	call(full_c, -EIO, 0);
	for (unsigned i = 0; i < after; i++)
		call(full_c, 0, 0);
	return NULL;
}

static void test_full_windows_merge_across_threads(void **state)
{
	pthread_t t[4];
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 100;
	o.min_calls = 101;
	full_c = circuit(&o);
	full_go = 0;
	/* Two threads push their failure out (100 successes after it), two keep it (99). */
	for (uintptr_t i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, full_worker, (void *)(99 + i % 2)), 0);
	__atomic_store_n(&full_go, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	sx_circuit_snapshot(full_c, &m);
	assert_int_equal(m.calls, 400);
	assert_int_equal(m.failures, 2);
	assert_int_equal(m.consecutive_failures, 0);
	sx_circuit_destroy(full_c);
}

/* ---- long lives: many transitions, long idle spells, exact deadlines ------------------------ */

/* A window written long ago, 2,100 open/half-open cycles before the close, counts again after. */
static void test_window_counts_after_thousands_of_transitions(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 20;
	o.min_calls = 20;
	o.open_ns = MS;
	c = circuit(&o);
	assert_int_equal(call(c, 0, 0), 0); /* this thread's stripe holds generation 0 */
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	for (int i = 0; i < 2100; i++) {
		tu_vadvance(MS);
		assert_int_equal(call(c, -EIO, 0), 0); /* a failed probe: open again */
		assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	}
	tu_vadvance(MS);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	for (int i = 0; i < 19; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.calls, 19);
	assert_int_equal(m.failures, 19);
	assert_int_equal(m.generation, 1 + 2 * 2100 + 2);
	assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);
}

/* A permit outlives 32,768 transitions (and 65,536): still stale, nothing counted. */
static void test_permit_stays_stale_across_many_transitions(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_permit p;
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 1;
	c = circuit(&o);
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	for (unsigned n = 1; n <= 2; n++) {
		for (int i = 0; i < 32768; i++)
			sx_circuit_force(c, SX_CIRCUIT_CLOSED);
		assert_int_equal(sx_circuit_release(c, p, -EIO, 0), -ESTALE);
		sx_circuit_snapshot(c, &m);
		assert_int_equal(m.generation, 32768 * n);
		assert_int_equal(m.calls, 0);
		assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	}
	sx_circuit_destroy(c);
}

/* Not called for 25 days (no pool): the first acquire after the duration half-opens it. */
static void test_open_circuit_idle_for_weeks_half_opens(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_permit p;
	sx_circuit *c;

	(void)state;
	tu_vnow = 3 * SEC;
	o.open_ns = SEC;
	c = circuit(&o);
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	tu_vadvance(249 * 86400 * SEC / 10); /* 24.9 days: past 2^31 ms */
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	assert_int_equal(sx_circuit_release(c, p, 0, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	/* The same with sx_circuit_state, after 50 days. */
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	tu_vadvance(50 * 86400 * SEC);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	sx_circuit_destroy(c);
}

/* The longest duration lasts exactly that long; its deadline reads back unwrapped. */
static void test_max_duration_lasts_its_full_length(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;
	uint64_t t0 = 7 * SEC + 123;

	(void)state;
	tu_vnow = t0;
	o.open_ns = SX_CIRCUIT_MAX_DURATION_NS;
	c = circuit(&o);
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_true(m.until_ns == t0 + SX_CIRCUIT_MAX_DURATION_NS);
	tu_vadvance(1000);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	tu_vnow = t0 + SX_CIRCUIT_MAX_DURATION_NS - 1;
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	tu_vadvance(1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	sx_circuit_destroy(c);
}

/* 1.5 ms ends at 1.5 ms, to the ns, for the open duration and the probe lease alike. */
static void test_deadlines_are_exact_to_the_ns(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_permit p;
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = 5 * SEC;
	o.open_ns = 1500 * 1000;
	o.probe_lease_ns = 2500 * 1000 + 7;
	c = circuit(&o);
	tu_vnow = 9 * SEC + 777777; /* not on a ms boundary of anything */
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.until_ns, 9 * SEC + 777777 + 1500000);
	tu_vadvance(1500000 - 1);
	assert_int_equal(sx_circuit_acquire(c, &p), SX_ECIRCUIT_OPEN);
	tu_vadvance(1);
	assert_int_equal(sx_circuit_acquire(c, &p), 0); /* the only probe: its lease starts */
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.state, SX_CIRCUIT_HALF_OPEN);
	assert_int_equal(m.until_ns, tu_vnow + 2500007);
	tu_vadvance(2500007 - 1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_HALF_OPEN);
	tu_vadvance(1);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	assert_int_equal(sx_circuit_release(c, p, 0, 0), -ESTALE);
	sx_circuit_destroy(c);
}

/* A deadline beyond the clock's range saturates: the circuit stays open, never wraps shut. */
static void test_deadline_saturates_at_the_end_of_the_clock(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = 0;
	o.open_ns = 10 * SEC;
	c = circuit(&o);
	tu_vnow = UINT64_MAX - 1000;
	sx_circuit_force(c, SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_true(m.until_ns == UINT64_MAX);
	tu_vadvance(999);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);
}

/* ---- trips: constant cost, growth, callbacks ------------------------------------------------ */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* 100,000 trips without a close: the duration stays (backoff 1) or stays capped (backoff 1.5),
 * and a trip costs the same at the end as at the start (a generous bound on the whole run). */
static void test_many_trips_cost_the_same(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m;
	sx_circuit *c;
	uint64_t t0 = mono_ns();

	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		tu_vnow = SEC;
		o.open_ns = MS;
		o.open_backoff = pass == 0 ? 1.0 : 1.5;
		o.open_max_ns = pass == 0 ? 0 : 7 * MS;
		c = circuit(&o);
		sx_circuit_force(c, SX_CIRCUIT_OPEN);
		for (int i = 0; i < 100000; i++) {
			sx_circuit_snapshot(c, &m);
			tu_vnow = m.until_ns;
			assert_int_equal(call(c, -EIO, 0), 0);
		}
		sx_circuit_snapshot(c, &m);
		assert_int_equal(m.state, SX_CIRCUIT_OPEN);
		assert_int_equal(m.until_ns - tu_vnow, pass == 0 ? MS : 7 * MS);
		sx_circuit_destroy(c);
	}
	assert_true(mono_ns() - t0 < 3 * SEC);
}

struct consec_seen {
	unsigned n;
	uint64_t consec;
	uint64_t until;
};

static void note_consec(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	struct consec_seen *s = arg;

	(void)c;
	if (from == SX_CIRCUIT_CLOSED && to == SX_CIRCUIT_OPEN) {
		s->n++;
		s->consec = m->consecutive_failures;
	}
}

static void test_callback_reports_consecutive_failures(void **state)
{
	sx_circuit_opts o = base_opts();
	struct consec_seen s = { 0, 0, 0 };
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.consecutive_failures = 5;
	o.on_state = note_consec;
	o.on_state_arg = &s;
	c = circuit(&o);
	for (int i = 0; i < 5; i++)
		assert_int_equal(call(c, -EIO, 0), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.consec, 5);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.consecutive_failures, 0); /* the new generation's run starts over */
	sx_circuit_destroy(c);
}

/* ---- bad input: the documented error, and nothing changes ----------------------------------- */

static void test_absurd_calls_change_nothing(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit_metrics m, before;
	sx_circuit_permit p = 12345;
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 1;
	o.failure_rate = 1.0;
	c = circuit(&o);
	assert_int_equal(call(c, 0, 0), 0);
	sx_circuit_snapshot(c, &before);
	/* Permits no acquire hands out: stray bits above the generation, all bits, no valid bit. */
	assert_int_equal(sx_circuit_release(c, (UINT64_C(1) << 63) | (UINT64_C(1) << 50), -EIO, 0),
	    -EINVAL);
	assert_int_equal(sx_circuit_release(c, UINT64_MAX, -EIO, 0), -EINVAL);
	assert_int_equal(sx_circuit_release(c, 1, -EIO, 0), -EINVAL);
	assert_int_equal(sx_circuit_release(NULL, p, -EIO, 0), -EINVAL);
	assert_int_equal(sx_circuit_acquire(NULL, &p), -EINVAL);
	assert_true(p == 12345);
	assert_int_equal(sx_circuit_force(c, 99), -EINVAL);
	assert_int_equal(sx_circuit_force(c, -7), -EINVAL);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(sx_circuit_snapshot(NULL, &m), -EINVAL);
	assert_int_equal(m.state, 0x5a5a5a5a);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.state, SX_CIRCUIT_CLOSED);
	assert_int_equal(m.generation, before.generation);
	assert_int_equal(m.calls, before.calls);
	assert_int_equal(m.failures, 0);
	sx_circuit_destroy(c);
}

/* A rate below one millionth is one millionth: a failure without a slow call never trips the
 * slow-call rate. */
static void test_tiny_rates_trip_only_on_their_own_count(void **state)
{
	sx_circuit_opts o = base_opts();
	sx_circuit *c;

	(void)state;
	tu_vnow = SEC;
	o.window_size = 10;
	o.min_calls = 2;
	o.failure_rate = 1.0;
	o.slow_call_ns = SEC;
	o.slow_rate = 1e-9;
	c = circuit(&o);
	assert_int_equal(call(c, 0, 0), 0);
	assert_int_equal(call(c, -EIO, 0), 0); /* 50% failures, no slow call */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	assert_int_equal(call(c, 0, SEC), 0); /* one slow call of three: over 1e-9 */
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workshop_three_successes_then_failures_open),
		cmocka_unit_test(test_workshop_alternating_stays_closed),
		cmocka_unit_test(test_workshop_open_half_open_reopen_close),
		cmocka_unit_test(test_bad_options_create_nothing),
		cmocka_unit_test(test_zero_options_take_the_defaults),
		cmocka_unit_test(test_half_open_admits_exactly_the_permits),
		cmocka_unit_test(test_probe_lease_expires),
		cmocka_unit_test(test_stale_generation_changes_nothing),
		cmocka_unit_test(test_slow_calls_trip),
		cmocka_unit_test(test_consecutive_failures_and_ignored_results),
		cmocka_unit_test(test_custom_classify),
		cmocka_unit_test(test_time_window_forgets_bucket_by_bucket),
		cmocka_unit_test(test_open_duration_grows_and_resets),
		cmocka_unit_test(test_forced_disabled_metrics_only),
		cmocka_unit_test(test_callbacks_see_snapshots_and_may_call_back),
		cmocka_unit_test(test_timer_drives_half_open_without_callers),
		cmocka_unit_test(test_stress_many_threads),
		cmocka_unit_test(test_counts_merge_across_threads),
		cmocka_unit_test(test_full_window_keeps_a_failure_for_its_size),
		cmocka_unit_test(test_window_agrees_with_a_model),
		cmocka_unit_test(test_full_window_still_checks_every_report),
		cmocka_unit_test(test_success_ends_another_threads_run_of_failures),
		cmocka_unit_test(test_full_windows_merge_across_threads),
		cmocka_unit_test(test_window_counts_after_thousands_of_transitions),
		cmocka_unit_test(test_permit_stays_stale_across_many_transitions),
		cmocka_unit_test(test_open_circuit_idle_for_weeks_half_opens),
		cmocka_unit_test(test_max_duration_lasts_its_full_length),
		cmocka_unit_test(test_deadlines_are_exact_to_the_ns),
		cmocka_unit_test(test_deadline_saturates_at_the_end_of_the_clock),
		cmocka_unit_test(test_many_trips_cost_the_same),
		cmocka_unit_test(test_callback_reports_consecutive_failures),
		cmocka_unit_test(test_absurd_calls_change_nothing),
		cmocka_unit_test(test_tiny_rates_trip_only_on_their_own_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
