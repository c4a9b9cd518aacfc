/*
 * White-box tests of the timer wheel: src/time/wheel.c is compiled into this program, so the
 * tests read struct sx_wheel (levels, slots, lanes, bitmaps, the due / firing / far lists) and
 * every timer's word, on a virtual clock.
 *
 * After the operations the wheel's structure is checked against what wheel.c says of it
 * (check_wheel): every timer is on the list its word names, pending; a slot's lane is non-empty
 * exactly when its bit is set, a slot's bit is set exactly when one of its lanes is; a timer in
 * a slot of level L has its deadline inside that slot and inside level L's current window, and
 * the slot starts after the wheel's time (it would have cascaded or fired otherwise); due timers
 * are not after the wheel's time, far ones are beyond the top window; the count matches; and a
 * timer keeps its lane when it moves down.
 *
 * Then the rule of sx_wheel_add / sx_wheel_advance: a timer lands where the level rule puts it
 * (computed here independently: the lowest level whose window holds both the wheel's time and the
 * deadline), fires exactly once, never before its tick, at the first advance that reaches it (so
 * at most one tick after its deadline), in tick order within an advance, with the wheel's time at
 * its tick during its callback - for deadlines at every level's boundaries (last tick of a window
 * and the first beyond, a slot's first and last tick), across the top window's wrap onto the far
 * list, equal deadlines, deadlines in the past and at tick 0; cancels from callbacks during an
 * advance that cascades; and a reference model (per-timer state, the documented rule) over random
 * sequences from fixed seeds, callbacks that cancel and add included.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "time/wheel.c"

#include "testutil.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

#define TICK 1000000ull /* 1 ms */
#define NT 64u          /* timers of the model runs */
#define MAXT 4096u

/* ---- the clock, the wheel, the timers ----------------------------------------------------- */

static uint64_t vnow;

static uint64_t vclock_now(void *ctx)
{
	(void)ctx;
	return vnow;
}

static const sx_clock vclock = { vclock_now, NULL, NULL };

static sx_wheel *W;
static uint64_t origin;

struct wt {
	sx_wheel_timer t;
	unsigned id;
	int fires;
	uint64_t tick;       /* the tick it is due at (what the test expects) */
	uint64_t seen_time;  /* the wheel's time during its last callback */
	int lane;            /* its lane while in a slot, -1 elsewhere */
	void (*action)(struct wt *self);
	unsigned arg;
};

static struct wt timers[MAXT];
static unsigned fire_log[MAXT * 4], nfired;

static void on_fire(sx_wheel_timer *t);

static sx_wheel *make_wheel(uint64_t start_ns)
{
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel *w = NULL;

	vnow = origin = start_ns;
	o.tick_ns = TICK;
	o.clock = &vclock;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	memset(timers, 0, sizeof(timers));
	for (unsigned i = 0; i < MAXT; i++) {
		timers[i].id = i;
		timers[i].lane = -1;
		sx_wheel_timer_init(&timers[i].t, on_fire);
	}
	nfired = 0;
	W = w;
	return w;
}

static uint64_t ns_of(uint64_t tick)
{
	return origin + tick * TICK;
}

/* The wheel's last tick, as sx_wheel_add documents it. */
static uint64_t last_tick(void)
{
	uint64_t last = (UINT64_MAX - 1 - origin) / TICK;

	return last < DEADLINE_MAX ? last : DEADLINE_MAX;
}

/* ceil((ns - origin) / tick), 0 at or before the origin, clamped to the last tick. */
static uint64_t tick_of(uint64_t ns)
{
	uint64_t d, t;

	if (ns <= origin)
		return 0;
	d = ns - origin;
	t = d / TICK + (d % TICK != 0);
	return t < last_tick() ? t : last_tick();
}

/* ---- the structure ------------------------------------------------------------------------ */

static struct wt *wt_of(const sx_wheel_timer *t)
{
	return SX_CONTAINER_OF(t, struct wt, t);
}

static void check_wheel(const sx_wheel *w)
{
	size_t total = 0;

	for (unsigned l = 0; l < LISTS; l++) {
		const sx_wheel_timer *prev = NULL;

		for (const sx_wheel_timer *t = w->list[l]; t != NULL; prev = t, t = t->sx_next) {
			uint64_t when = deadline_of(t);
			struct wt *r = wt_of(t);

			if (++total > w->count)
				fail_msg("more timers on the lists than the count, %zu (a cycle?)",
				    w->count);
			if (!(t->sx_word & PENDING) || list_of(t) != l)
				fail_msg("timer %u on list %u: word %#llx", r->id, l,
				    (unsigned long long)t->sx_word);
			if (prev != NULL && t->sx_prev != prev)
				fail_msg("timer %u on list %u: sx_prev is not its predecessor", r->id, l);
			if (l < SLOT_LISTS) {
				unsigned at = l / LANES, level = at / SLOTS, slot = at % SLOTS;
				unsigned shift = level * SLOT_BITS;

				if (((when >> shift) & (SLOTS - 1)) != slot ||
				    ((when ^ w->elapsed) >> (shift + SLOT_BITS)) != 0)
					fail_msg("timer %u due at %llu in level %u slot %u at time %llu",
					    r->id, (unsigned long long)when, level, slot,
					    (unsigned long long)w->elapsed);
				if ((when >> shift << shift) <= w->elapsed && (level > 0 ||
				    when <= w->elapsed))
					fail_msg("timer %u due at %llu: its slot (level %u) is not after "
					    "time %llu", r->id, (unsigned long long)when, level,
					    (unsigned long long)w->elapsed);
				if (r->lane < 0)
					r->lane = (int)(l % LANES);
				else if (r->lane != (int)(l % LANES))
					fail_msg("timer %u moved from lane %d to lane %u", r->id, r->lane,
					    l % LANES);
			} else if (l == DUE) {
				if (when > w->elapsed)
					fail_msg("timer %u due at %llu on the due list at time %llu", r->id,
					    (unsigned long long)when, (unsigned long long)w->elapsed);
			} else if (l == FAR) {
				if ((when ^ w->elapsed) <= TOP_WINDOW)
					fail_msg("timer %u due at %llu on the far list at time %llu", r->id,
					    (unsigned long long)when, (unsigned long long)w->elapsed);
			} else {
				fail_msg("timer %u on the firing list outside an advance", r->id);
			}
		}
		if (l < SLOT_LISTS &&
		    (((w->lanes[l / LANES] >> (l % LANES)) & 1) != 0) != (w->list[l] != NULL))
			fail_msg("list %u: lane bit %u, list %s", l,
			    (w->lanes[l / LANES] >> (l % LANES)) & 1, w->list[l] ? "full" : "empty");
	}
	for (unsigned at = 0; at < LEVELS * SLOTS; at++)
		if ((((w->occupied[at / SLOTS] >> (at % SLOTS)) & 1) != 0) != (w->lanes[at] != 0))
			fail_msg("level %u slot %u: occupied bit and lanes %#x disagree", at / SLOTS,
			    at % SLOTS, w->lanes[at]);
	if (total != w->count)
		fail_msg("%zu timers on the lists, count %zu", total, w->count);
}

/* The list number a timer due at `when` belongs on at wheel time E, by the level rule: the due
 * list, the far list, or (level * SLOTS + slot) as a slot (times LANES for its lanes). */
#define EXPECT_DUE (~0u)
#define EXPECT_FAR (~0u - 1)

static unsigned expect_slot(uint64_t e, uint64_t when)
{
	if (when <= e)
		return EXPECT_DUE;
	for (unsigned level = 0; level < LEVELS; level++) {
		unsigned span = (level + 1) * SLOT_BITS;

		if ((when >> span) == (e >> span))
			return level * SLOTS + (unsigned)((when >> (level * SLOT_BITS)) & (SLOTS - 1));
	}
	return EXPECT_FAR;
}

static void check_placed(const struct wt *r)
{
	unsigned l = list_of(&r->t), want = expect_slot(W->elapsed, deadline_of(&r->t));

	if (want == EXPECT_DUE ? l != DUE : want == EXPECT_FAR ? l != FAR : l / LANES != want ||
	    l >= SLOT_LISTS)
		fail_msg("timer %u due at %llu, time %llu: on list %u, expected %s %u", r->id,
		    (unsigned long long)deadline_of(&r->t), (unsigned long long)W->elapsed, l,
		    want == EXPECT_DUE ? "due" : want == EXPECT_FAR ? "far" : "slot", want);
}

/* ---- firing ------------------------------------------------------------------------------- */

static void on_fire(sx_wheel_timer *t)
{
	struct wt *r = wt_of(t);

	if (t->sx_word & PENDING)
		fail_msg("timer %u still pending in its callback", r->id);
	r->fires++;
	r->lane = -1;
	r->seen_time = W->elapsed;
	if (nfired < sizeof(fire_log) / sizeof(fire_log[0]))
		fire_log[nfired++] = r->id;
	if (r->action != NULL)
		r->action(r);
}

static void add_at(struct wt *r, uint64_t deadline_ns)
{
	r->tick = tick_of(deadline_ns);
	r->lane = -1;
	assert_int_equal(sx_wheel_add(W, &r->t, deadline_ns), 0);
	check_placed(r);
}

static void cancel(struct wt *r)
{
	assert_int_equal(sx_wheel_cancel(W, &r->t), 0);
	r->lane = -1;
}

static size_t advance_to(uint64_t ns)
{
	size_t n;

	vnow = ns;
	n = sx_wheel_advance(W);
	check_wheel(W);
	return n;
}

/* Advance to just before tick t (its last ns), then to t: everything due at t fires in the
 * second step, nothing in the first unless it is due earlier. */
static void expect_fires_exactly_at(struct wt *r)
{
	uint64_t t = r->tick;
	int before = r->fires;

	if (t > W->elapsed) {
		advance_to(ns_of(t) - 1);
		if (r->fires != before)
			fail_msg("timer %u due at tick %llu fired at time %llu", r->id,
			    (unsigned long long)t, (unsigned long long)W->elapsed);
	}
	advance_to(ns_of(t));
	if (r->fires != before + 1)
		fail_msg("timer %u due at tick %llu: %d fires by tick %llu", r->id,
		    (unsigned long long)t, r->fires - before, (unsigned long long)W->elapsed);
}

/* ---- boundaries ---------------------------------------------------------------------------- */

/* The ticks that sit on level boundaries as seen from wheel time e, each at most once, after e
 * and before the last tick. */
static unsigned boundary_ticks(uint64_t e, uint64_t *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned level = 0; level <= LEVELS; level++) {
		uint64_t span = UINT64_C(1) << (level * SLOT_BITS);
		uint64_t win = level < LEVELS ? (UINT64_C(1) << ((level + 1) * SLOT_BITS)) - 1 : 0;
		uint64_t next_slot = ((e >> (level * SLOT_BITS)) + 1) << (level * SLOT_BITS);
		uint64_t cand[] = {
			e + span - 1, e + span, e + span + 1,   /* a slot's span from now */
			next_slot - 1, next_slot, next_slot + 1, /* the next slot's first tick */
			(e | win), (e | win) + 1,               /* the window's last, and beyond */
			next_slot + span - 1,                   /* that slot's last tick */
		};

		for (unsigned i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
			bool dup = false;

			if (cand[i] <= e || cand[i] >= last_tick())
				continue;
			for (unsigned j = 0; j < n; j++)
				dup |= out[j] == cand[i];
			if (!dup && n < max)
				out[n++] = cand[i];
		}
	}
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static const uint64_t starts[] = {
	0, 1, 62, 63, 64, 65, 4095, 4096, 262143, 262144, 16777215, 1234567,
	(UINT64_C(1) << 36) - 1, (UINT64_C(1) << 42) - 2, (UINT64_C(1) << 42) - 1,
	UINT64_C(1) << 42, (UINT64_C(1) << 42) + 63, 3 * (UINT64_C(1) << 42) - 5,
};

/* One timer at a time, each boundary from each start: it lands where the level rule puts it,
 * and fires at its tick, not one ns of virtual time earlier. Every deadline twice: at its tick's
 * boundary, and 1 ns after the boundary before (both round up to the tick). */
static void test_each_boundary_alone_lands_and_fires_on_its_tick(void **state)
{
	uint64_t ticks[128];

	(void)state;
	for (unsigned s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		unsigned n = boundary_ticks(starts[s], ticks, 128);

		for (unsigned i = 0; i < 2 * n; i++) {
			uint64_t t = ticks[i / 2];
			struct wt *r = &timers[0];

			make_wheel(7 * TICK + 123);
			advance_to(ns_of(starts[s]));
			assert_int_equal(W->elapsed, starts[s]);
			add_at(r, i % 2 == 0 ? ns_of(t) : ns_of(t - 1) + 1);
			assert_int_equal(r->tick, t);
			check_wheel(W);
			expect_fires_exactly_at(r);
			assert_int_equal(r->seen_time, t);
			assert_int_equal(sx_wheel_count(W), 0);
			assert_int_equal(sx_wheel_next_deadline(W), UINT64_MAX);
			sx_wheel_destroy(W);
		}
	}
}

/* All boundaries of a start in one wheel: then they fire in tick order, each exactly at its
 * tick, whatever the others' cascades do meanwhile. */
static void test_all_boundaries_together_fire_in_order(void **state)
{
	uint64_t ticks[128], sorted[128];

	(void)state;
	for (unsigned s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		unsigned n;

		make_wheel(3 * TICK);
		advance_to(ns_of(starts[s]));
		n = boundary_ticks(starts[s], ticks, 128);
		for (unsigned i = 0; i < n; i++) {
			add_at(&timers[i], ns_of(ticks[i]));
			check_wheel(W);
		}
		memcpy(sorted, ticks, n * sizeof(ticks[0]));
		qsort(sorted, n, sizeof(sorted[0]), cmp_u64);
		for (unsigned k = 0; k < n; k++) {
			advance_to(ns_of(sorted[k]) - 1);
			for (unsigned i = 0; i < n; i++)
				if (timers[i].fires != (ticks[i] < sorted[k]))
					fail_msg("start %llu, at tick %llu - 1: timer due at %llu fired "
					    "%d times", (unsigned long long)starts[s],
					    (unsigned long long)sorted[k], (unsigned long long)ticks[i],
					    timers[i].fires);
			advance_to(ns_of(sorted[k]));
			for (unsigned i = 0; i < n; i++)
				if (timers[i].fires != (ticks[i] <= sorted[k]))
					fail_msg("start %llu, at tick %llu: timer due at %llu fired %d "
					    "times", (unsigned long long)starts[s],
					    (unsigned long long)sorted[k], (unsigned long long)ticks[i],
					    timers[i].fires);
		}
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(timers[i].seen_time, ticks[i]);
		assert_int_equal(sx_wheel_count(W), 0);
		sx_wheel_destroy(W);
	}
}

/* The same boundaries, one advance past them all: callbacks in tick order, each with the wheel's
 * time at its own tick. */
static void test_one_advance_fires_in_tick_order(void **state)
{
	uint64_t ticks[128];

	(void)state;
	for (unsigned s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		uint64_t far = 0;
		unsigned n;

		make_wheel(0);
		advance_to(ns_of(starts[s]));
		n = boundary_ticks(starts[s], ticks, 128);
		for (unsigned i = 0; i < n; i++) {
			add_at(&timers[i], ns_of(ticks[i]));
			far = ticks[i] > far ? ticks[i] : far;
		}
		assert_int_equal(advance_to(ns_of(far)), n);
		assert_int_equal(nfired, n);
		for (unsigned k = 0; k < n; k++) {
			const struct wt *r = &timers[fire_log[k]];

			assert_int_equal(r->fires, 1);
			assert_int_equal(r->seen_time, r->tick);
			if (k > 0 && r->tick < timers[fire_log[k - 1]].tick)
				fail_msg("start %llu: tick %llu fired after tick %llu",
				    (unsigned long long)starts[s], (unsigned long long)r->tick,
				    (unsigned long long)timers[fire_log[k - 1]].tick);
		}
		sx_wheel_destroy(W);
	}
}

/* Many timers at one tick use every lane of their slot, at level 0 and above, and all fire in
 * the advance that reaches the tick, once; a cascade keeps each timer's lane. */
static void test_equal_deadlines_spread_over_lanes_and_fire_once(void **state)
{
	static const uint64_t at[] = { 1, 63, 64, 100, 4096, 300000 };

	(void)state;
	for (unsigned a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
		unsigned n = 1000, at_slot;

		make_wheel(TICK / 3);
		for (unsigned i = 0; i < n; i++)
			add_at(&timers[i], ns_of(at[a]));
		check_wheel(W);
		at_slot = list_of(&timers[0].t) / LANES;
		assert_int_equal(W->lanes[at_slot], UINT32_MAX);
		expect_fires_exactly_at(&timers[0]);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(timers[i].fires, 1);
			assert_int_equal(timers[i].seen_time, at[a]);
		}
		assert_int_equal(sx_wheel_count(W), 0);
		sx_wheel_destroy(W);
	}
}

/* A deadline at or before the wheel's time (tick 0 at creation, the origin itself, 1 ns before
 * it, the current tick later) goes on the due list and fires at the next advance, whatever it
 * reads - an earlier time too, which leaves the wheel's time where it was. 1 ns after the
 * origin is tick 1, a level-0 slot. */
static void test_past_and_tick_zero_deadlines(void **state)
{
	(void)state;
	make_wheel(50 * TICK + 7);
	add_at(&timers[0], origin);
	add_at(&timers[1], origin - 1);
	add_at(&timers[2], 0);
	add_at(&timers[3], origin + 1);
	assert_int_equal(list_of(&timers[0].t), DUE);
	assert_int_equal(list_of(&timers[2].t), DUE);
	assert_int_equal(list_of(&timers[3].t) / LANES, 1); /* level 0, slot 1 */
	check_wheel(W);
	assert_int_equal(sx_wheel_next_deadline(W), origin);
	assert_int_equal(advance_to(origin - 5), 3); /* before the origin: the due ones only */
	assert_int_equal(W->elapsed, 0);
	assert_int_equal(timers[3].fires, 0);
	expect_fires_exactly_at(&timers[3]);

	advance_to(ns_of(1000) + TICK / 2);
	add_at(&timers[4], ns_of(1000));     /* the current tick */
	add_at(&timers[5], ns_of(999) + 1);  /* the same, rounded up */
	add_at(&timers[6], ns_of(10));       /* long past */
	add_at(&timers[7], ns_of(1001));     /* the next tick: level 0 */
	check_wheel(W);
	assert_int_equal(advance_to(ns_of(3)), 3); /* earlier: time stays */
	assert_int_equal(W->elapsed, 1000);
	for (unsigned i = 4; i <= 6; i++)
		assert_int_equal(timers[i].seen_time, 1000);
	expect_fires_exactly_at(&timers[7]);
	sx_wheel_destroy(W);
}

/* The top window's wrap: from just before 2^42 ticks, deadlines past it wait on the far list;
 * entering the next window moves those inside it into the levels and keeps the ones still
 * beyond on the far list; each fires at its tick. The last tick (UINT64_MAX clamped) as well. */
static void test_far_list_across_the_top_window(void **state)
{
	const uint64_t top = UINT64_C(1) << 42;
	const uint64_t dl[] = { top - 1, top, top + 1, top + 4096, 2 * top - 1, 2 * top,
		                2 * top + 70, 3 * top + 1 };
	const unsigned n = sizeof(dl) / sizeof(dl[0]);

	(void)state;
	make_wheel(TICK);
	advance_to(ns_of(top - 3));
	for (unsigned i = 0; i < n; i++)
		add_at(&timers[i], ns_of(dl[i]));
	add_at(&timers[n], UINT64_MAX);
	assert_int_equal(timers[n].tick, last_tick());
	assert_int_equal(list_of(&timers[0].t) / LANES, 63); /* level 0: the same window */
	for (unsigned i = 1; i <= n; i++)
		assert_int_equal(list_of(&timers[i].t), FAR);
	check_wheel(W);
	expect_fires_exactly_at(&timers[0]);
	expect_fires_exactly_at(&timers[1]); /* the far list is drained as 2^42 begins */
	for (unsigned i = 2; i < n; i++)
		assert_int_equal(list_of(&timers[i].t) == FAR, dl[i] >= 2 * top);
	assert_int_equal(list_of(&timers[n].t), FAR);
	for (unsigned i = 2; i <= n; i++) {
		expect_fires_exactly_at(&timers[i]);
		for (unsigned j = i + 1; j <= n; j++)
			assert_int_equal(timers[j].fires, 0);
	}
	assert_int_equal(sx_wheel_count(W), 0);
	sx_wheel_destroy(W);
}

/* ---- cancels from callbacks while an advance cascades --------------------------------------- */

static void act_cancel_arg(struct wt *self)
{
	struct wt *o = &timers[self->arg];

	if (sx_wheel_timer_pending(&o->t))
		cancel(o);
}

static void act_cancel_range(struct wt *self)
{
	for (unsigned i = self->arg; i < self->arg + 8; i++)
		if (sx_wheel_timer_pending(&timers[i].t))
			cancel(&timers[i]);
}

/* Level 1, slot 1 (ticks 64..127) cascades into level 0 at tick 64 in the same advance that then
 * fires its timers: a callback at tick 99 cancels one that the cascade moved into level 0 (slot
 * 100) and one in a level-2 slot that the same advance cascades later (tick 4101); a callback at
 * tick 64 cancels timers of its own slot that have not fired yet. Nothing cancelled fires,
 * everything else fires once, at its tick, and the structure holds. */
static void test_cancel_from_callbacks_during_a_cascading_advance(void **state)
{
	(void)state;
	make_wheel(0);
	add_at(&timers[0], ns_of(99));
	add_at(&timers[1], ns_of(100));
	add_at(&timers[2], ns_of(110));
	add_at(&timers[3], ns_of(4101));
	add_at(&timers[4], ns_of(4102));
	timers[0].action = act_cancel_arg;
	timers[0].arg = 1;
	assert_int_equal(list_of(&timers[1].t) / LANES, SLOTS + 1);
	assert_int_equal(list_of(&timers[3].t) / LANES, 2 * SLOTS + 1);
	timers[2].action = act_cancel_arg; /* at 110: cancels 3, in level 2 until tick 4096 */
	timers[2].arg = 3;
	for (unsigned i = 10; i < 30; i++)
		add_at(&timers[i], ns_of(64));
	timers[10].action = act_cancel_range; /* at 64: 8 of the timers at 64 */
	timers[10].arg = 11;
	check_wheel(W);
	advance_to(ns_of(5000));
	assert_int_equal(timers[0].fires, 1);
	assert_int_equal(timers[1].fires, 0);
	assert_int_equal(timers[2].fires, 1);
	assert_int_equal(timers[3].fires, 0);
	assert_int_equal(timers[4].fires, 1);
	assert_int_equal(timers[4].seen_time, 4102);
	{
		unsigned cancelled = 0;

		for (unsigned i = 10; i < 30; i++) {
			assert_true(timers[i].fires <= 1);
			cancelled += timers[i].fires == 0;
		}
		/* those of the 8 that fired before timer 10 did escape its cancel */
		assert_true(cancelled >= 1 && cancelled <= 8);
		assert_int_equal(timers[10].fires, 1);
	}
	assert_int_equal(sx_wheel_count(W), 0);
	sx_wheel_destroy(W);
}

/* Right after a cascade (an advance that stops at the slot's start), the moved timers sit in
 * level 0 in their old lanes; cancelling them there clears their lane and slot bits. */
static void test_cancel_right_after_a_cascade(void **state)
{
	int lanes[40];

	(void)state;
	make_wheel(0);
	for (unsigned i = 0; i < 40; i++)
		add_at(&timers[i], ns_of(4096 + 64 + i % 3)); /* level 2, slot 1 */
	check_wheel(W);
	for (unsigned i = 0; i < 40; i++)
		lanes[i] = timers[i].lane;
	advance_to(ns_of(4096)); /* level 2 slot 1 -> level 1 slot 1 */
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(list_of(&timers[i].t) / LANES, SLOTS + 1);
	advance_to(ns_of(4096 + 64)); /* -> level 0; tick 4160 fires */
	for (unsigned i = 0; i < 40; i++) {
		assert_int_equal(timers[i].lane, i % 3 == 0 ? -1 : lanes[i]);
		if (i % 3 != 0)
			cancel(&timers[i]);
		check_wheel(W);
	}
	assert_int_equal(W->occupied[0], 0);
	assert_int_equal(sx_wheel_next_deadline(W), UINT64_MAX);
	advance_to(ns_of(10000));
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(timers[i].fires, i % 3 == 0);
	sx_wheel_destroy(W);
}

/* A timer that fires as the far list is drained (its deadline is the first tick of a top-level
 * window) cancels, from its callback, a far timer that the drain has already set aside because
 * it is still beyond the new window. Cancel returns 0, so that timer must never fire, and the
 * count must drop; another timer the drain moved into the levels must still fire. */
static void test_cancel_of_a_far_timer_from_a_callback_of_the_far_drain(void **state)
{
	const uint64_t top = UINT64_C(1) << 42;

	(void)state;
	make_wheel(0);
	add_at(&timers[0], ns_of(top));         /* A: fires in the drain at tick 2^42 */
	add_at(&timers[1], ns_of(2 * top + 5)); /* B: still beyond after it, set aside */
	add_at(&timers[2], ns_of(top + 7));     /* D: moved into the levels */
	add_at(&timers[3], ns_of(top + 7));     /* its neighbour in the same slot, maybe lane */
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(list_of(&timers[i].t), FAR);
	timers[0].action = act_cancel_arg; /* the drain takes D, B, then A: B is set aside */
	timers[0].arg = 1;
	advance_to(ns_of(top));
	assert_int_equal(timers[0].fires, 1);
	assert_false(sx_wheel_timer_pending(&timers[1].t));
	assert_int_equal(sx_wheel_count(W), 2);
	advance_to(ns_of(3 * top));
	assert_int_equal(timers[1].fires, 0); /* cancelled */
	assert_int_equal(timers[2].fires, 1);
	assert_int_equal(timers[3].fires, 1);
	assert_int_equal(sx_wheel_count(W), 0);
	sx_wheel_destroy(W);
}

/* ---- the reference model ----------------------------------------------------------------- */

/*
 * Per timer: pending, its tick, and whether it is due (its tick was not after the wheel's time
 * when it was added): due ones fire at the next advance, first; one made due by a callback waits
 * for the advance after. An advance to now takes the time T to max(T, floor((now - origin) /
 * tick)), fires the due ones, then every other pending timer with a tick up to T, in tick order;
 * a callback sees the wheel's time at its timer's tick (the old T for due ones). Callbacks may
 * cancel another timer or add one (or themselves) relative to that time: the model applies the
 * same call as the wheel, and checks each firing as it happens.
 */
struct mt {
	int pending;
	int due;      /* fires first at the next advance */
	int due_next; /* made due during this advance: fires at the one after */
	uint64_t tick;
	int act;      /* 0 none; 1 cancel arg; 2 add arg at +delta (once) */
	unsigned arg;
	uint64_t delta;
};

static struct mt model[NT];
static uint64_t m_time;         /* the model's wheel time */
static int m_in_advance, m_leveled_fired;
static uint64_t m_target, m_last_tick;
static unsigned m_callbacks;
static uint64_t m_seed;

static void m_add(unsigned j, uint64_t deadline_ns, uint64_t now_tick)
{
	struct mt *m = &model[j];
	int rc = sx_wheel_add(W, &timers[j].t, deadline_ns);

	if (m->pending) {
		if (rc != -EBUSY)
			fail_msg("seed %llu: add of pending timer %u: %d", (unsigned long long)m_seed, j,
			    rc);
		return;
	}
	if (rc != 0)
		fail_msg("seed %llu: add of timer %u: %d", (unsigned long long)m_seed, j, rc);
	timers[j].lane = -1;
	check_placed(&timers[j]);
	m->pending = 1;
	m->tick = tick_of(deadline_ns);
	m->due = m->due_next = 0;
	if (m->tick <= now_tick) {
		if (m_in_advance)
			m->due_next = 1;
		else
			m->due = 1;
	}
}

static void m_cancel(unsigned j)
{
	int rc = sx_wheel_cancel(W, &timers[j].t);

	if (rc != (model[j].pending ? 0 : -ENOENT))
		fail_msg("seed %llu: cancel of timer %u (pending %d): %d", (unsigned long long)m_seed,
		    j, model[j].pending, rc);
	model[j].pending = 0;
	timers[j].lane = -1;
}

static void m_fire(sx_wheel_timer *t)
{
	struct wt *r = wt_of(t);
	struct mt *m = &model[r->id];
	uint64_t now_tick;

	m_callbacks++;
	r->lane = -1;
	if (!m_in_advance || !m->pending)
		fail_msg("seed %llu: timer %u fired, pending %d", (unsigned long long)m_seed, r->id,
		    m->pending);
	if (m->due_next)
		fail_msg("seed %llu: timer %u made due in this advance fired in it",
		    (unsigned long long)m_seed, r->id);
	if (m->due) {
		if (m_leveled_fired)
			fail_msg("seed %llu: due timer %u fired after a timer of the levels",
			    (unsigned long long)m_seed, r->id);
		now_tick = m_time;
	} else {
		m_leveled_fired = 1;
		if (m->tick > m_target || m->tick < m_last_tick)
			fail_msg("seed %llu: timer %u due at %llu fired (advance to %llu, last fired "
			    "%llu)", (unsigned long long)m_seed, r->id, (unsigned long long)m->tick,
			    (unsigned long long)m_target, (unsigned long long)m_last_tick);
		for (unsigned j = 0; j < NT; j++)
			if (model[j].pending && (model[j].due || (!model[j].due_next &&
			    model[j].tick < m->tick)))
				fail_msg("seed %llu: timer %u (tick %llu) fired before timer %u (tick "
				    "%llu%s)", (unsigned long long)m_seed, r->id,
				    (unsigned long long)m->tick, j, (unsigned long long)model[j].tick,
				    model[j].due ? ", due" : "");
		m_last_tick = m->tick;
		now_tick = m->tick;
	}
	if (W->elapsed != now_tick)
		fail_msg("seed %llu: timer %u fired with the wheel's time %llu, expected %llu",
		    (unsigned long long)m_seed, r->id, (unsigned long long)W->elapsed,
		    (unsigned long long)now_tick);
	m->pending = 0;
	r->fires++;
	if (m->act == 1) {
		m_cancel(m->arg);
	} else if (m->act == 2) {
		uint64_t when = now_tick + m->delta;

		m->act = 0; /* once: a timer that re-adds itself must not keep an advance going */
		m_add(m->arg, when >= last_tick() ? UINT64_MAX : ns_of(when), now_tick);
	}
}

static size_t m_advance(uint64_t now_ns)
{
	uint64_t nt = now_ns > origin ? (now_ns - origin) / TICK : 0;
	size_t fired;

	m_in_advance = 1;
	m_leveled_fired = 0;
	m_callbacks = 0;
	m_target = nt > m_time ? nt : m_time;
	m_last_tick = 0;
	vnow = now_ns;
	fired = sx_wheel_advance(W);
	m_in_advance = 0;
	if (fired != m_callbacks)
		fail_msg("seed %llu: advance returned %zu, %u callbacks ran",
		    (unsigned long long)m_seed, fired, m_callbacks);
	m_time = m_target;
	for (unsigned j = 0; j < NT; j++) {
		struct mt *m = &model[j];

		if (m->pending && !m->due_next && (m->due || m->tick <= m_time))
			fail_msg("seed %llu: timer %u (tick %llu%s) did not fire by time %llu",
			    (unsigned long long)m_seed, j, (unsigned long long)m->tick,
			    m->due ? ", due" : "", (unsigned long long)m_time);
		if (m->due_next) {
			m->due = 1;
			m->due_next = 0;
		}
	}
	check_wheel(W);
	return fired;
}

static void m_check(void)
{
	uint64_t earliest = UINT64_MAX, next;
	size_t pending = 0;

	for (unsigned j = 0; j < NT; j++) {
		const struct mt *m = &model[j];

		if (sx_wheel_timer_pending(&timers[j].t) != (m->pending != 0))
			fail_msg("seed %llu: timer %u pending %d, model %d", (unsigned long long)m_seed,
			    j, sx_wheel_timer_pending(&timers[j].t), m->pending);
		if (!m->pending)
			continue;
		pending++;
		if (m->due)
			earliest = ns_of(m_time) < earliest ? ns_of(m_time) : earliest;
		else if (ns_of(m->tick) < earliest)
			earliest = ns_of(m->tick);
	}
	if (sx_wheel_count(W) != pending)
		fail_msg("seed %llu: count %zu, model %zu", (unsigned long long)m_seed,
		    sx_wheel_count(W), pending);
	next = sx_wheel_next_deadline(W);
	if ((pending == 0) != (next == UINT64_MAX) ||
	    (pending != 0 && (next > earliest || next < ns_of(m_time))))
		fail_msg("seed %llu: next deadline %llu, earliest timer %llu, time %llu",
		    (unsigned long long)m_seed, (unsigned long long)next,
		    (unsigned long long)earliest, (unsigned long long)ns_of(m_time));
}

/* A deadline tick as seen from time e: near, on a level boundary, log-uniform far, past, the
 * same as another timer's, or the end. */
static uint64_t pick_tick(uint64_t *s, uint64_t e)
{
	unsigned level = (unsigned)(tu_rand(s) % LEVELS);
	uint64_t t;

	switch (tu_rand(s) % 8) {
	case 0:
		t = e + 1 + tu_rand(s) % 64;
		break;
	case 1:
		t = e + tu_rand(s) % 4096;
		break;
	case 2:
		t = (((e >> (level * SLOT_BITS)) + tu_rand(s) % 3) << (level * SLOT_BITS)) +
		    tu_rand(s) % 3 - 1;
		break;
	case 3:
		t = (e | ((UINT64_C(1) << ((level + 1) * SLOT_BITS)) - 1)) + tu_rand(s) % 2;
		break;
	case 4:
		t = e + (UINT64_C(1) << (tu_rand(s) % 44)) + tu_rand(s) % 1000;
		break;
	case 5:
		t = e > 0 ? tu_rand(s) % (e + 1) : 0;
		break;
	case 6:
		t = model[tu_rand(s) % NT].tick;
		break;
	default:
		t = tu_rand(s) % 64 == 0 ? last_tick() : e + 1 + tu_rand(s) % 300;
		break;
	}
	return t < last_tick() ? t : last_tick();
}

/* A deadline ns that rounds up to tick t: its boundary, or anywhere in the tick before it. */
static uint64_t ns_in(uint64_t *s, uint64_t t)
{
	if (t == 0)
		return origin - (tu_rand(s) % 2) * (origin > 0);
	if (tu_rand(s) % 2 == 0)
		return ns_of(t);
	return ns_of(t) - tu_rand(s) % TICK;
}

static void model_sequence(uint64_t seed, unsigned steps)
{
	uint64_t s = seed;

	m_seed = seed;
	make_wheel((tu_rand(&s) % 4 == 0) ? 0 : tu_rand(&s) % (UINT64_C(1) << 40));
	memset(model, 0, sizeof(model));
	m_time = 0;
	for (unsigned j = 0; j < NT; j++)
		timers[j].t.fn = m_fire;
	for (unsigned step = 0; step < steps && m_time < last_tick(); step++) {
		unsigned j = (unsigned)(tu_rand(&s) % NT), op = (unsigned)(tu_rand(&s) % 20);
		uint64_t target;

		if (op < 8) {
			/* add, sometimes with an action for its callback */
			unsigned act = (unsigned)(tu_rand(&s) % 6);

			if (model[j].pending) {
				m_add(j, ns_of(m_time + 1), m_time); /* -EBUSY */
				continue;
			}
			model[j].act = act == 1 ? 1 : act == 2 ? 2 : 0;
			model[j].arg = act == 2 && tu_rand(&s) % 2 ? j : (unsigned)(tu_rand(&s) % NT);
			model[j].delta = tu_rand(&s) % 3 == 0 ? 0 : tu_rand(&s) % 5000;
			m_add(j, ns_in(&s, pick_tick(&s, m_time)), m_time);
		} else if (op < 11) {
			m_cancel(j);
		} else {
			switch (tu_rand(&s) % 7) {
			case 0:
				target = ns_of(m_time) + tu_rand(&s) % TICK; /* this tick */
				break;
			case 1:
				target = ns_of(m_time + 1 + tu_rand(&s) % 3) - tu_rand(&s) % 2;
				break;
			case 2:
				target = sx_wheel_next_deadline(W);
				if (target == UINT64_MAX)
					target = ns_of(m_time + 1);
				break;
			case 3:
				target = model[j].pending && !model[j].due ?
				    ns_of(model[j].tick) - (tu_rand(&s) % 3 == 0) : ns_of(m_time);
				break;
			case 4:
				target = ns_of(m_time) - tu_rand(&s) % (ns_of(m_time) + 1); /* earlier */
				break;
			case 5: {
				uint64_t t = m_time + (UINT64_C(1) << (tu_rand(&s) % 43));

				target = ns_of(t < last_tick() ? t : last_tick());
				break;
			}
			default:
				target = ns_of(m_time + 1 + tu_rand(&s) % 100);
				break;
			}
			m_advance(target); /* checks the structure */
		}
		if (step % 8 == 0)
			check_wheel(W); /* after adds and cancels too, now and then (it reads every list) */
		m_check();
	}
	/* run out as an owner would: to the next deadline until nothing is pending */
	for (unsigned k = 0; sx_wheel_count(W) > 0; k++) {
		uint64_t next = sx_wheel_next_deadline(W);

		if (k > 100000)
			fail_msg("seed %llu: the owner loop does not end", (unsigned long long)seed);
		m_advance(next > vnow ? next : vnow);
		m_check();
	}
	sx_wheel_destroy(W);
}

static void test_model_random_sequences(void **state)
{
	unsigned seqs = (SLOW_BUILD ? 100 : 1000) * tu_stress_scale();

	(void)state;
	for (uint64_t seed = 1; seed <= seqs; seed++)
		model_sequence(seed * 0x9e3779b97f4a7c15ull, 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_boundary_alone_lands_and_fires_on_its_tick),
		cmocka_unit_test(test_all_boundaries_together_fire_in_order),
		cmocka_unit_test(test_one_advance_fires_in_tick_order),
		cmocka_unit_test(test_equal_deadlines_spread_over_lanes_and_fire_once),
		cmocka_unit_test(test_past_and_tick_zero_deadlines),
		cmocka_unit_test(test_far_list_across_the_top_window),
		cmocka_unit_test(test_cancel_from_callbacks_during_a_cascading_advance),
		cmocka_unit_test(test_cancel_right_after_a_cascade),
		cmocka_unit_test(test_cancel_of_a_far_timer_from_a_callback_of_the_far_drain),
		cmocka_unit_test(test_model_random_sequences),
	};

	tu_white_setup();
	return cmocka_run_group_tests_name("white_wheel", tests, NULL, NULL);
}
