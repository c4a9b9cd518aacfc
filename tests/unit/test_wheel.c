/* Unit tests of the pure timer wheel, on a virtual clock: deterministic, no sleeping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

#define TICK 1000000ull /* 1 ms */

/* ---- a virtual clock ---------------------------------------------------------------------- */

static uint64_t vnow;

static uint64_t vclock_now(void *ctx)
{
	(void)ctx;
	return vnow;
}

static const sx_clock vclock = { vclock_now, NULL, NULL };

static sx_wheel *make_wheel(uint64_t start)
{
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel *w = NULL;

	vnow = start;
	o.tick_ns = TICK;
	o.clock = &vclock;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	return w;
}

/* A timer that records when (virtual time) and how often it fired. */
struct rec {
	sx_wheel_timer t;
	uint64_t deadline;
	uint64_t fired_at;
	int fires;
};

static void on_fire(sx_wheel_timer *t)
{
	struct rec *r = SX_CONTAINER_OF(t, struct rec, t);

	r->fired_at = vnow;
	r->fires++;
}

static void rec_add(sx_wheel *w, struct rec *r, uint64_t deadline)
{
	memset(r, 0, sizeof(*r));
	sx_wheel_timer_init(&r->t, on_fire);
	r->deadline = deadline;
	assert_int_equal(sx_wheel_add(w, &r->t, deadline), 0);
	assert_true(sx_wheel_timer_pending(&r->t));
}

/* Drive the wheel as its owner thread would: jump the clock to the next deadline, advance. */
static size_t run_until_empty(sx_wheel *w, size_t max_steps)
{
	size_t steps = 0;

	while (sx_wheel_count(w) > 0) {
		uint64_t next = sx_wheel_next_deadline(w);

		assert_true(next != UINT64_MAX);
		if (next > vnow)
			vnow = next;
		sx_wheel_advance(w);
		assert_true(++steps <= max_steps);
	}
	return steps;
}

static void assert_on_time(const struct rec *r)
{
	assert_int_equal(r->fires, 1);
	assert_true(r->fired_at >= r->deadline);      /* never early */
	assert_true(r->fired_at - r->deadline < TICK); /* at most one tick late */
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_create_rejects_bad_options(void **state)
{
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_clock broken = { NULL, NULL, NULL };
	sx_wheel *w = (sx_wheel *)0x1;

	(void)state;
	assert_int_equal(sx_wheel_create(NULL, NULL), -EINVAL);
	assert_int_equal(sx_wheel_create(&o, NULL), -EINVAL);
	o.tick_ns = SX_WHEEL_TICK_MIN_NS - 1;
	assert_int_equal(sx_wheel_create(&o, &w), -EINVAL);
	o.tick_ns = SX_WHEEL_TICK_MAX_NS + 1;
	assert_int_equal(sx_wheel_create(&o, &w), -EINVAL);
	o.tick_ns = 0;
	o.clock = &broken;
	assert_int_equal(sx_wheel_create(&o, &w), -EINVAL);
	assert_ptr_equal(w, (sx_wheel *)0x1);
	o.clock = NULL;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	assert_int_equal(sx_wheel_tick_ns(w), SX_WHEEL_TICK_DEFAULT_NS);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);
	sx_wheel_destroy(NULL);
}

static void test_bad_calls_change_nothing(void **state)
{
	sx_wheel *w = make_wheel(0);
	sx_wheel_timer t, nofn;
	struct rec r;

	(void)state;
	sx_wheel_timer_init(&nofn, NULL);
	assert_int_equal(sx_wheel_add(NULL, &nofn, 5), -EINVAL);
	assert_int_equal(sx_wheel_add(w, NULL, 5), -EINVAL);
	assert_int_equal(sx_wheel_add(w, &nofn, 5), -EINVAL);
	assert_int_equal(sx_wheel_cancel(w, NULL), -EINVAL);
	assert_int_equal(sx_wheel_cancel(NULL, &nofn), -EINVAL);
	sx_wheel_timer_init(&t, on_fire);
	assert_int_equal(sx_wheel_cancel(w, &t), -ENOENT); /* never added */
	assert_int_equal(sx_wheel_count(w), 0);
	rec_add(w, &r, 10 * TICK);
	assert_int_equal(sx_wheel_add(w, &r.t, 20 * TICK), -EBUSY);
	assert_int_equal(sx_wheel_count(w), 1);
	assert_int_equal(sx_wheel_advance(NULL), 0);
	assert_int_equal(sx_wheel_count(NULL), 0);
	run_until_empty(w, 10);
	assert_on_time(&r); /* still at its first deadline */
	sx_wheel_destroy(w);
}

/* Every entry point with NULL, zero and absurd values: a documented result, nothing changed. */
static void test_null_and_absurd_arguments(void **state)
{
	sx_wheel *w = make_wheel(7 * TICK);
	struct rec r, z;

	(void)state;
	assert_int_equal(sx_wheel_timer_init(NULL, on_fire), -EINVAL);
	assert_int_equal(sx_wheel_timer_init(&z.t, NULL), 0); /* refused by add */
	assert_int_equal(sx_wheel_add_after(NULL, &z.t, 1), -EINVAL);
	assert_int_equal(sx_wheel_add_after(w, NULL, UINT64_MAX), -EINVAL);
	assert_int_equal(sx_wheel_add_after(w, &z.t, 0), -EINVAL);
	assert_false(sx_wheel_timer_pending(NULL));
	assert_false(sx_wheel_timer_pending(&z.t));
	assert_int_equal(sx_wheel_advance_to(NULL, UINT64_MAX), 0);
	assert_int_equal(sx_wheel_next_deadline(NULL), UINT64_MAX);
	assert_int_equal(sx_wheel_tick_ns(NULL), 0);
	assert_int_equal(sx_wheel_count(w), 0);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);

	/* Deadlines 0 (before the origin) and INT64_MIN read as unsigned (2^63 ns, past the last
	 * tick at 1 ms from 7 ms: it is clamped there). */
	rec_add(w, &r, 0);
	assert_int_equal(sx_wheel_add(w, &r.t, (uint64_t)INT64_MIN), -EBUSY);
	assert_int_equal(sx_wheel_next_deadline(w), 7 * TICK); /* due at the next advance */
	assert_int_equal(sx_wheel_advance_to(w, 0), 1);         /* whatever it reads */
	assert_int_equal(r.fires, 1);
	rec_add(w, &r, (uint64_t)INT64_MIN);
	assert_int_equal(sx_wheel_cancel(w, &r.t), 0);
	assert_int_equal(sx_wheel_cancel(w, &r.t), -ENOENT);
	assert_int_equal(sx_wheel_count(w), 0);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);
}

/* Drive the wheel by its next deadline, as a sleeping owner does, checking that the deadline
 * never goes back (a wrapped one would make the owner spin). */
static size_t run_by_next_deadline(sx_wheel *w, size_t max_steps)
{
	size_t steps = 0;

	while (sx_wheel_count(w) > 0) {
		uint64_t next = sx_wheel_next_deadline(w);

		assert_true(next != UINT64_MAX);
		assert_true(next >= vnow);
		vnow = next;
		sx_wheel_advance(w);
		assert_true(++steps <= max_steps);
	}
	return steps;
}

/* At 1 ms from 0, the last tick boundary a uint64_t clock reaches (UINT64_MAX / tick) comes
 * before the 2^48 ticks: UINT64_MAX, from sx_wheel_add or a saturated sx_wheel_add_after, is
 * clamped to it, fires there, and no deadline on the way wraps. */
static void test_uint64_max_deadline_fires_at_the_last_tick(void **state)
{
	const uint64_t last = UINT64_MAX / TICK;
	sx_wheel *w = make_wheel(0);
	struct rec a, b;

	(void)state;
	rec_add(w, &a, UINT64_MAX);
	memset(&b, 0, sizeof(b));
	sx_wheel_timer_init(&b.t, on_fire);
	/* The longest delay (INT64_MAX) from a clock reading past 2^63 saturates; the wheel reads
	 * the clock only for this add, so the reading then goes back to where the wheel is. */
	vnow = (uint64_t)INT64_MAX + 3 * TICK;
	assert_int_equal(sx_wheel_add_after(w, &b.t, INT64_MAX), 0);
	vnow = 3 * TICK;
	assert_int_equal(sx_wheel_add_after(w, &a.t, -1), -EINVAL); /* a negative delay */
	run_by_next_deadline(w, 200);
	assert_int_equal(a.fires, 1);
	assert_int_equal(b.fires, 1);
	assert_int_equal(a.fired_at, last * TICK);
	assert_int_equal(b.fired_at, last * TICK);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);
}

/* A wheel created 5.x ticks before the clock's end: its last tick is 5, and every deadline after
 * it fires there, at an advance to that boundary or to UINT64_MAX. */
static void test_deadlines_at_the_end_of_the_clock(void **state)
{
	const uint64_t origin = UINT64_MAX - 5 * TICK - 17, last = origin + 5 * TICK;
	sx_wheel *w = make_wheel(origin);
	struct rec r[3];

	(void)state;
	rec_add(w, &r[0], UINT64_MAX);
	rec_add(w, &r[1], UINT64_MAX - 3);
	rec_add(w, &r[2], last - TICK + 1); /* boundary 5 by the ceiling rule */
	assert_int_equal(sx_wheel_next_deadline(w), last);
	assert_int_equal(sx_wheel_advance_to(w, last - 1), 0);
	assert_int_equal(sx_wheel_next_deadline(w), last);
	assert_int_equal(sx_wheel_advance_to(w, last), 3);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	rec_add(w, &r[0], UINT64_MAX);
	assert_int_equal(sx_wheel_next_deadline(w), last); /* at the last tick: due now */
	assert_int_equal(sx_wheel_advance_to(w, UINT64_MAX), 1);
	assert_int_equal(sx_wheel_count(w), 0);
	sx_wheel_destroy(w);
}

/* UINT64_MAX from sx_wheel_next_deadline means nothing pending, also when the clock's last value
 * is a tick boundary: 5 ticks before it the last tick is 4, and a timer due at a wheel time of
 * UINT64_MAX (or on a wheel created there) reports UINT64_MAX - 1 and fires when advanced. */
static void test_next_deadline_is_never_uint64_max_while_pending(void **state)
{
	const uint64_t origin = UINT64_MAX - 5 * TICK;
	sx_wheel *w = make_wheel(origin);
	struct rec r;

	(void)state;
	rec_add(w, &r, UINT64_MAX);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX - TICK);
	assert_int_equal(sx_wheel_advance_to(w, UINT64_MAX), 1);
	rec_add(w, &r, UINT64_MAX); /* the wheel's time is UINT64_MAX now: due */
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX - 1);
	assert_int_equal(sx_wheel_advance_to(w, UINT64_MAX - 1), 1);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);

	w = make_wheel(UINT64_MAX);
	rec_add(w, &r, 5);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX - 1);
	assert_int_equal(sx_wheel_advance(w), 1);
	rec_add(w, &r, UINT64_MAX);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX - 1);
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);
}

static void test_fires_at_or_after_deadline_within_one_tick(void **state)
{
	enum { N = 500 };
	static struct rec r[N];
	sx_wheel *w = make_wheel(12345);
	uint64_t seed = 7;

	(void)state;
	for (int i = 0; i < N; i++)
		rec_add(w, &r[i], 12345 + tu_rand(&seed) % (300 * TICK));
	/* Advance in steps smaller than a tick, as a real clock would: still on time. */
	while (sx_wheel_count(w) > 0) {
		vnow += TICK / 3;
		sx_wheel_advance(w);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].fires, 1);
		assert_true(r[i].fired_at >= r[i].deadline);
		assert_true(r[i].fired_at - r[i].deadline < TICK + TICK / 3);
	}
	sx_wheel_destroy(w);
}

static void test_timers_at_every_level_fire_on_time(void **state)
{
	const uint64_t ticks[] = { 1, 2, 63, 64, 65, 4095, 4096, 4097, 262143, 262144, 16777216,
		1073741824ull, 68719476736ull, (1ull << 42) - 1, (1ull << 42) + 5, (1ull << 45) + 3 };
	enum { N = sizeof(ticks) / sizeof(ticks[0]) };
	struct rec r[N];
	sx_wheel *w = make_wheel(5 * TICK);
	size_t steps;

	(void)state;
	for (unsigned i = 0; i < N; i++)
		rec_add(w, &r[i], 5 * TICK + ticks[i] * TICK - TICK / 2);
	assert_int_equal(sx_wheel_count(w), N);
	steps = run_until_empty(w, 1000);
	for (unsigned i = 0; i < N; i++)
		assert_on_time(&r[i]);
	/* Each timer moves down at most once per level: jumps are bounded, not one per tick. */
	assert_true(steps <= N * 8);
	sx_wheel_destroy(w);
}

static void test_past_deadline_fires_at_next_advance(void **state)
{
	sx_wheel *w = make_wheel(100 * TICK);
	struct rec r;

	(void)state;
	rec_add(w, &r, 3 * TICK); /* long gone */
	assert_int_equal(sx_wheel_next_deadline(w), 100 * TICK);
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_int_equal(r.fires, 1);
	assert_int_equal(r.fired_at, 100 * TICK);
	assert_int_equal(sx_wheel_cancel(w, &r.t), -ENOENT);
	sx_wheel_destroy(w);
}

static void test_cancel_before_and_after_expiry(void **state)
{
	sx_wheel *w = make_wheel(0);
	struct rec a, b;

	(void)state;
	rec_add(w, &a, 10 * TICK);
	rec_add(w, &b, 10 * TICK);
	assert_int_equal(sx_wheel_cancel(w, &a.t), 0);
	assert_false(sx_wheel_timer_pending(&a.t));
	assert_int_equal(sx_wheel_cancel(w, &a.t), -ENOENT);
	assert_int_equal(sx_wheel_count(w), 1);
	vnow = 10 * TICK;
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_int_equal(a.fires, 0);
	assert_int_equal(b.fires, 1);
	assert_int_equal(sx_wheel_cancel(w, &b.t), -ENOENT); /* after: it fired */
	/* A cancelled timer can be added again. */
	assert_int_equal(sx_wheel_add(w, &a.t, 20 * TICK), 0);
	a.deadline = 20 * TICK;
	run_until_empty(w, 10);
	assert_on_time(&a);
	sx_wheel_destroy(w);
}

/* Deadlines beyond the top level's window (2^42 ticks) wait on the far list and still fire on
 * time: one that enters the levels in the next window, one still far then (it waits two more
 * windows), and a near one beside them. */
static void test_far_deadlines_fire_on_time(void **state)
{
	const uint64_t window = UINT64_C(1) << 42;
	struct rec near, far1, far2;
	sx_wheel *w = make_wheel(0);

	(void)state;
	rec_add(w, &near, 70 * TICK);
	rec_add(w, &far1, (window + 5) * TICK);
	rec_add(w, &far2, (3 * window + 7) * TICK);
	vnow = 70 * TICK;
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_on_time(&near);
	assert_int_equal(sx_wheel_next_deadline(w), window * TICK); /* the far list's next look */
	vnow = window * TICK; /* the next window begins: far1 leaves the far list, far2 stays */
	assert_int_equal(sx_wheel_advance(w), 0);
	assert_int_equal(sx_wheel_next_deadline(w), (window + 5) * TICK);
	assert_int_equal(sx_wheel_count(w), 2);
	run_until_empty(w, 100);
	assert_on_time(&far1);
	assert_on_time(&far2);
	sx_wheel_destroy(w);
}

/* The wheel's time ends 2^48 ticks after its creation: at the 10 us tick, a deadline past that
 * (here UINT64_MAX ns) fires at tick 2^48 - 1, not before, and not never. */
static void test_deadline_past_the_wheels_time_fires_at_its_end(void **state)
{
	const uint64_t tick = SX_WHEEL_TICK_MIN_NS, end = (UINT64_C(1) << 48) - 1;
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel *w = NULL;
	struct rec r;

	(void)state;
	vnow = 0;
	o.tick_ns = tick;
	o.clock = &vclock;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	rec_add(w, &r, UINT64_MAX);
	vnow = (end - 1) * tick;
	assert_int_equal(sx_wheel_advance(w), 0);
	assert_int_equal(sx_wheel_next_deadline(w), end * tick);
	vnow = end * tick;
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_int_equal(r.fires, 1);
	assert_int_equal(r.fired_at, end * tick);
	assert_int_equal(sx_wheel_count(w), 0);
	sx_wheel_destroy(w);
}

/* During expiry: the first callback cancels the other timers of its own slot, in every lane of
 * it (GROUP is more than twice the 32 lanes), at level 0 and after a cascade from level 1. */
#define GROUP 80
static sx_wheel *cur;
static struct rec group[GROUP];

static void cancel_the_rest(sx_wheel_timer *t)
{
	on_fire(t);
	for (int i = 0; i < GROUP; i++)
		if (&group[i].t != t)
			sx_wheel_cancel(cur, &group[i].t);
}

static void test_cancel_during_expiry_from_a_callback(void **state)
{
	static const uint64_t at[] = { 7, 100 };

	(void)state;
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		int fired = 0;

		cur = make_wheel(0);
		for (int i = 0; i < GROUP; i++) {
			rec_add(cur, &group[i], at[k] * TICK);
			group[i].t.fn = cancel_the_rest;
		}
		vnow = at[k] * TICK;
		assert_int_equal(sx_wheel_advance(cur), 1);
		for (int i = 0; i < GROUP; i++)
			fired += group[i].fires;
		assert_int_equal(fired, 1);
		assert_int_equal(sx_wheel_count(cur), 0);
		assert_int_equal(sx_wheel_next_deadline(cur), UINT64_MAX);
		sx_wheel_destroy(cur);
	}
}

/* A callback that re-adds its timer fires once per advance, never in a loop. */
static void periodic(sx_wheel_timer *t)
{
	struct rec *r = SX_CONTAINER_OF(t, struct rec, t);

	on_fire(t);
	if (r->fires < 5)
		assert_int_equal(sx_wheel_add(cur, t, 0), 0); /* in the past: next advance */
}

static void test_callback_may_add_its_timer_again(void **state)
{
	struct rec r;

	(void)state;
	cur = make_wheel(0);
	rec_add(cur, &r, 3 * TICK);
	r.t.fn = periodic;
	vnow = 3 * TICK;
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(sx_wheel_advance(cur), 1);
		assert_int_equal(r.fires, i);
	}
	assert_int_equal(sx_wheel_advance(cur), 0);
	assert_int_equal(sx_wheel_count(cur), 0);
	sx_wheel_destroy(cur);
}

static void test_next_deadline_follows_the_earliest_timer(void **state)
{
	sx_wheel *w = make_wheel(0);
	struct rec far, near;
	uint64_t nd;

	(void)state;
	rec_add(w, &far, 5000 * TICK);
	nd = sx_wheel_next_deadline(w);
	assert_true(nd <= 5000 * TICK); /* a lower bound: the start of its slot */
	rec_add(w, &near, 3 * TICK);
	assert_int_equal(sx_wheel_next_deadline(w), 3 * TICK);
	assert_int_equal(sx_wheel_cancel(w, &near.t), 0);
	assert_int_equal(sx_wheel_next_deadline(w), nd);
	assert_int_equal(sx_wheel_cancel(w, &far.t), 0);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);
	sx_wheel_destroy(w);
}

static void test_add_after_reads_the_clock(void **state)
{
	sx_wheel *w = make_wheel(40 * TICK);
	struct rec r;

	(void)state;
	memset(&r, 0, sizeof(r));
	sx_wheel_timer_init(&r.t, on_fire);
	vnow = 50 * TICK;
	assert_int_equal(sx_wheel_add_after(w, &r.t, 2 * TICK), 0);
	r.deadline = 52 * TICK;
	vnow = 52 * TICK - 1;
	assert_int_equal(sx_wheel_advance(w), 0);
	vnow = 52 * TICK;
	assert_int_equal(sx_wheel_advance(w), 1);
	assert_on_time(&r);
	sx_wheel_destroy(w);
}

static void test_million_random_timers_with_random_cancels(void **state)
{
	const unsigned n = 1000000;
	struct rec *r = calloc(n, sizeof(*r));
	sx_wheel *w = make_wheel(0);
	uint64_t seed = 0xfeedbeef, cancelled = 0, fired = 0;

	(void)state;
	assert_non_null(r);
	for (unsigned i = 0; i < n; i++) {
		/* Log-uniform from 1 ms to about 18 hours: every level up to 4 is used. */
		uint64_t span = UINT64_C(1) << (tu_rand(&seed) % 27);
		uint64_t d = TICK + (tu_rand(&seed) % span) * TICK + tu_rand(&seed) % TICK;

		sx_wheel_timer_init(&r[i].t, on_fire);
		r[i].deadline = d;
		assert_int_equal(sx_wheel_add(w, &r[i].t, d), 0);
	}
	while (sx_wheel_count(w) > 0) {
		uint64_t next = sx_wheel_next_deadline(w);

		vnow = next > vnow ? next : vnow;
		fired += sx_wheel_advance(w);
		/* Between advances, cancel a few random timers, pending or not. */
		for (int k = 0; k < 2; k++) {
			unsigned i = (unsigned)(tu_rand(&seed) % n);

			if (sx_wheel_cancel(w, &r[i].t) == 0)
				r[i].fires = -1, cancelled++;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (r[i].fires == -1)
			continue;
		assert_on_time(&r[i]);
	}
	assert_int_equal(fired + cancelled, n);
	assert_true(cancelled > 1000);
	sx_wheel_destroy(w);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_options),
		cmocka_unit_test(test_bad_calls_change_nothing),
		cmocka_unit_test(test_null_and_absurd_arguments),
		cmocka_unit_test(test_uint64_max_deadline_fires_at_the_last_tick),
		cmocka_unit_test(test_deadlines_at_the_end_of_the_clock),
		cmocka_unit_test(test_next_deadline_is_never_uint64_max_while_pending),
		cmocka_unit_test(test_fires_at_or_after_deadline_within_one_tick),
		cmocka_unit_test(test_timers_at_every_level_fire_on_time),
		cmocka_unit_test(test_past_deadline_fires_at_next_advance),
		cmocka_unit_test(test_cancel_before_and_after_expiry),
		cmocka_unit_test(test_far_deadlines_fire_on_time),
		cmocka_unit_test(test_deadline_past_the_wheels_time_fires_at_its_end),
		cmocka_unit_test(test_cancel_during_expiry_from_a_callback),
		cmocka_unit_test(test_callback_may_add_its_timer_again),
		cmocka_unit_test(test_next_deadline_follows_the_earliest_timer),
		cmocka_unit_test(test_add_after_reads_the_clock),
		cmocka_unit_test(test_million_random_timers_with_random_cancels),
	};

	return cmocka_run_group_tests_name("wheel", tests, NULL, NULL);
}
