/*
 * sx_wheel: a hierarchical timing wheel, the pure single-owner structure under strix's timers.
 *
 * Time is counted in ticks since the wheel was created. There are 7 levels of 64 slots; a slot
 * of level L spans 64^L ticks, so the level covers 64^(L+1) ticks. With the default 1 ms tick:
 *
 *   level | slot granularity | level range
 *   ------+------------------+-------------
 *     0   |   1 ms           |   64 ms
 *     1   |  64 ms           |  4.1 s
 *     2   | 4.1 s            |  4.4 min
 *     3   | 4.4 min          |  4.7 h
 *     4   | 4.7 h            | 12.4 days
 *     5   | 12.4 days        |  2.2 years
 *     6   | 2.2 years        |  139 years   (2^42 ticks; 1.4 years at the 10 us minimum tick)
 *
 * A timer goes to the lowest level whose current window (the 64^(L+1)-tick block holding `now`)
 * also holds its deadline: the level is the position of the highest bit in which now and the
 * deadline differ, divided by 6. Each level keeps a 64-bit occupancy bitmap, so the next slot to
 * process is found with one rotate and one count-trailing-zeros per level, and lower levels
 * always come due before higher ones. When time reaches the start of an occupied slot of level
 * L > 0, its timers cascade: each is re-inserted relative to the new time and so lands at a lower
 * level (or fires). A timer moves down at most 6 times in its life, so expiry is amortized O(1).
 * Deadlines beyond the top level's current window wait on a far list, looked at once per window.
 *
 * Each slot is 32 doubly linked lists ("lanes"). A timer's lane is picked when it is added, by a
 * multiplicative hash of the number of timers added so far (round-robin would let a regular
 * pattern, say keeping every 10th timer and cancelling the rest, use only some lanes), and kept
 * when it moves down. Insert and cancel stay O(1): the timer's word holds the number of its list;
 * a 32-bit mask per slot says which lanes hold timers. The lanes are for expiry: timers live
 * wherever their owners put them, so walking one list of a million scattered timers is one cache
 * miss after another, each waiting for the one before. Draining a slot takes a head from each
 * lane in turn and prefetches its successor, so up to 32 of those misses are in flight at once;
 * and when a slot is drained, the heads of the next occupied slot of its level are prefetched,
 * to be in cache when that slot comes due. A cascade runs no callback, so it walks the lanes
 * from local cursors with the slot already emptied; level 1's, most of them, go straight to the
 * level 0 slot of their deadline's low digit. More than 32 lanes would not help: a core keeps
 * no more misses in flight (the README's benchmark notes give the figures).
 *
 * A timer is 32 bytes: the links, the callback, and one word holding the deadline (48 bits of
 * ticks: deadlines are clamped to the wheel's last tick, at most 2^48 - 1 ticks after its
 * creation, 89 years at the smallest tick; see end_tick), its list, and whether it is pending.
 * Half a cache line, so an array of them never puts one across two lines when it starts on a
 * 32-byte boundary; for one that does, both lines are prefetched.
 *
 * Trade-off chosen: cascading, for precision. Linux's timer wheel skips cascading and lets a
 * timer fire up to 1/8 of its level's granularity late; strix's users put deadlines on trades
 * and requests, so here a timer fires at the first advance at or after its deadline tick: never
 * early, and at most one tick plus the owner's wake-up latency late, at every level. The price
 * is the re-insertion work, bounded as above.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <strix/pool.h>
#include <strix/timer.h>

#include "time/time_impl.h"

#define LEVELS 7u
#define SLOT_BITS 6u
#define SLOTS (1u << SLOT_BITS)
#define TOP_WINDOW ((UINT64_C(1) << (LEVELS * SLOT_BITS)) - 1)
#define LANE_BITS 5u
#define LANES (1u << LANE_BITS)

/* Every list a pending timer can be on, numbered: the lanes of the slots of the levels (lane
 * number: (level * SLOTS + slot) * LANES + lane), then three more. */
#define SLOT_LISTS (LEVELS * SLOTS * LANES)
#define DUE (SLOT_LISTS)        /* added with a deadline already passed: fire at next advance */
#define FIRING (SLOT_LISTS + 1) /* the due list an advance is working through */
#define FAR (SLOT_LISTS + 2)    /* deadlines beyond the top level's window: looked at again when
                                   time enters the next window (every 2^42 ticks) */
#define LISTS (SLOT_LISTS + 3)

/* A timer's sx_word: deadline tick in bits 0-47, the number of its list in bits 48-62, and the
 * top bit set while it is pending. */
#define DEADLINE_MAX ((UINT64_C(1) << 48) - 1)
#define LIST_SHIFT 48u
#define LIST_MASK 0x7fffu
#define PENDING (UINT64_C(1) << 63)

_Static_assert(LISTS - 1 <= LIST_MASK, "a timer's list number fits its word");

struct sx_wheel {
	uint64_t elapsed;           /* wheel time, ticks: every deadline <= elapsed has fired */
	uint64_t origin_ns;
	uint64_t tick_ns;
	uint64_t end;               /* the last tick: deadlines are clamped to it (see end_tick) */
	sx_clock clock;
	size_t count;
	unsigned placed;            /* timers placed so far: picks the lane of the next one */
	uint64_t occupied[LEVELS];  /* non-empty slots of each level */
	uint32_t lanes[LEVELS * SLOTS];      /* non-empty lanes of each slot */
	sx_wheel_timer *list[LISTS];         /* heads */
};

/* The wheel's last tick: 2^48 - 1 ticks after the origin (what a timer's word holds), or the last
 * tick boundary before UINT64_MAX ns, whichever comes first. A deadline clamped to it is reached
 * by an advance to UINT64_MAX ns, and every tick the wheel reports as a deadline (a timer's, or
 * a slot's start before one) converts back to ns without overflow and below UINT64_MAX, which
 * sx_wheel_next_deadline keeps for "nothing pending". (A clock at UINT64_MAX at create leaves
 * only tick 0: every timer is due at the next advance.) */
static uint64_t end_tick(uint64_t origin_ns, uint64_t tick_ns)
{
	uint64_t last = origin_ns < UINT64_MAX ? (UINT64_MAX - 1 - origin_ns) / tick_ns : 0;

	return last < DEADLINE_MAX ? last : DEADLINE_MAX;
}

static uint64_t mono_now(void *ctx)
{
	(void)ctx;
	return sx__now_ns();
}

const sx_clock sx_clock_monotonic = { mono_now, NULL, NULL };

int sx_wheel_create(const sx_wheel_opts *opts, sx_wheel **out)
{
	static const sx_wheel_opts defaults = SX_WHEEL_OPTS_INIT;
	const sx_clock *clock;
	uint64_t tick;
	sx_wheel *w;

	if (out == NULL)
		return -EINVAL;
	if (opts == NULL)
		opts = &defaults;
	tick = opts->tick_ns != 0 ? opts->tick_ns : SX_WHEEL_TICK_DEFAULT_NS;
	clock = opts->clock != NULL ? opts->clock : &sx_clock_monotonic;
	if (tick < SX_WHEEL_TICK_MIN_NS || tick > SX_WHEEL_TICK_MAX_NS || clock->now_ns == NULL ||
	    !SX__RESERVED_CLEAR(opts))
		return -EINVAL;
	w = sx_allocator_default.alloc(sx_allocator_default.ctx, sizeof(*w), 64);
	if (w == NULL)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->tick_ns = tick;
	w->clock = *clock;
	w->origin_ns = clock->now_ns(clock->ctx);
	w->end = end_tick(w->origin_ns, tick);
	*out = w;
	return 0;
}

void sx_wheel_destroy(sx_wheel *w)
{
	if (w != NULL)
		sx_allocator_default.free(sx_allocator_default.ctx, w, sizeof(*w), 64);
}

int sx_wheel_timer_init(sx_wheel_timer *t, void (*fn)(sx_wheel_timer *))
{
	if (t == NULL)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	return 0;
}

bool sx_wheel_timer_pending(const sx_wheel_timer *t)
{
	return t != NULL && (t->sx_word & PENDING) != 0;
}

/* ---- a timer's word -------------------------------------------------------------------------- */

static uint64_t deadline_of(const sx_wheel_timer *t)
{
	return t->sx_word & DEADLINE_MAX;
}

static unsigned list_of(const sx_wheel_timer *t)
{
	return (unsigned)(t->sx_word >> LIST_SHIFT) & LIST_MASK;
}

/* ---- lists --------------------------------------------------------------------------------- */

/* Put t, due at tick `when`, at the head of list `list`. The old head's sx_prev is set; the new
 * head's is never read (unlink_timer compares with the head instead), so it is left stale. */
static void push(sx_wheel *w, sx_wheel_timer *t, uint64_t when, unsigned list)
{
	sx_wheel_timer *old = w->list[list];

	t->sx_word = PENDING | when | (uint64_t)list << LIST_SHIFT;
	t->sx_next = old;
	if (old != NULL)
		old->sx_prev = t;
	w->list[list] = t;
}

static void unlink_timer(sx_wheel *w, sx_wheel_timer *t)
{
	unsigned list = list_of(t);
	sx_wheel_timer **head = &w->list[list];

	if (*head == t)
		*head = t->sx_next;
	else
		t->sx_prev->sx_next = t->sx_next;
	if (t->sx_next != NULL)
		t->sx_next->sx_prev = t->sx_prev;
	if (list < SLOT_LISTS && *head == NULL) {
		unsigned at = list / LANES; /* level * SLOTS + slot */

		w->lanes[at] &= ~(UINT32_C(1) << (list % LANES));
		if (w->lanes[at] == 0)
			w->occupied[at / SLOTS] &= ~(UINT64_C(1) << (at % SLOTS));
	}
}

/* ---- placement ------------------------------------------------------------------------------ */

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
	uint64_t masked = (elapsed ^ when) | (SLOTS - 1);
	unsigned significant = 63u - (unsigned)__builtin_clzll(masked);

	return significant / SLOT_BITS;
}

/* Put a timer due at tick `when`, not before elapsed and inside the top level's window, into its
 * slot of the levels, in the given lane (one due at elapsed goes to level 0's current slot).
 * elapsed is passed in: a caller in a loop keeps it in a register rather than reloading it after
 * every store through a timer. */
static inline __attribute__((always_inline)) void place_in(sx_wheel *w, sx_wheel_timer *t,
    uint64_t elapsed, uint64_t when, unsigned lane)
{
	unsigned level = level_for(elapsed, when);
	unsigned slot = (unsigned)(when >> (level * SLOT_BITS)) & (SLOTS - 1);
	unsigned at = level * SLOTS + slot;

	push(w, t, when, at * LANES + lane);
	w->lanes[at] |= UINT32_C(1) << lane;
	w->occupied[level] |= UINT64_C(1) << slot;
}

/* Place a timer due at tick `when`, after elapsed: in the levels, or on the far list. */
static void place(sx_wheel *w, sx_wheel_timer *t, uint64_t when)
{
	if ((when ^ w->elapsed) > TOP_WINDOW) {
		push(w, t, when, FAR);
		return;
	}
	place_in(w, t, w->elapsed, when, (w->placed++ * 0x9e3779b9u) >> (32 - LANE_BITS));
}

static uint64_t ns_to_tick_ceil(const sx_wheel *w, uint64_t ns)
{
	uint64_t d, tick;

	if (ns <= w->origin_ns)
		return 0;
	d = ns - w->origin_ns;
	tick = d / w->tick_ns + (d % w->tick_ns != 0);
	return tick < w->end ? tick : w->end;
}

int sx_wheel_add(sx_wheel *w, sx_wheel_timer *t, uint64_t deadline_ns)
{
	uint64_t when;

	if (w == NULL || t == NULL || t->fn == NULL)
		return -EINVAL;
	if (t->sx_word & PENDING)
		return -EBUSY;
	when = ns_to_tick_ceil(w, deadline_ns);
	w->count++;
	if (when <= w->elapsed) {
		push(w, t, when, DUE);
	} else {
		place(w, t, when);
	}
	return 0;
}

int sx_wheel_add_after(sx_wheel *w, sx_wheel_timer *t, int64_t delay_ns)
{
	uint64_t now;

	if (w == NULL || delay_ns < 0)
		return -EINVAL;
	now = w->clock.now_ns(w->clock.ctx);
	return sx_wheel_add(w, t, (uint64_t)delay_ns > UINT64_MAX - now ? UINT64_MAX :
	    now + (uint64_t)delay_ns);
}

int sx_wheel_cancel(sx_wheel *w, sx_wheel_timer *t)
{
	if (w == NULL || t == NULL)
		return -EINVAL;
	if (!(t->sx_word & PENDING))
		return -ENOENT;
	unlink_timer(w, t);
	t->sx_word = 0;
	w->count--;
	return 0;
}

/* ---- expiry -------------------------------------------------------------------------------- */

/* The next occupied slot at or after elapsed, lowest level first (lower levels always come due
 * first). Its start tick goes to *tick. */
/* The first slot set in a non-empty occupancy bitmap at or after pos, wrapping round. */
static unsigned first_occupied(uint64_t occ, unsigned pos)
{
	uint64_t rotated = pos == 0 ? occ : (occ >> pos) | (occ << (SLOTS - pos));

	return (pos + (unsigned)__builtin_ctzll(rotated)) & (SLOTS - 1);
}

static bool next_slot(const sx_wheel *w, unsigned *level, unsigned *slot, uint64_t *tick)
{
	for (unsigned l = 0; l < LEVELS; l++) {
		uint64_t occ = w->occupied[l];
		unsigned shift = l * SLOT_BITS, s;
		uint64_t level_start;

		if (occ == 0)
			continue;
		s = first_occupied(occ, (unsigned)((w->elapsed >> shift) & (SLOTS - 1)));
		level_start = w->elapsed & ~((UINT64_C(1) << (shift + SLOT_BITS)) - 1);
		*level = l;
		*slot = s;
		*tick = level_start + ((uint64_t)s << shift);
		return true;
	}
	if (w->list[FAR] != NULL) {
		/* Nothing in the levels: the far timers are due for a look when the next top-level
		 * window begins. */
		*level = FAR;
		*slot = 0;
		*tick = (w->elapsed | TOP_WINDOW) + 1;
		return true;
	}
	return false;
}

static void fire(sx_wheel *w, sx_wheel_timer *t)
{
	t->sx_word = 0; /* idle, as after init */
	w->count--;
	t->fn(t);
}

/* Both lines of a timer that straddles two (in an array of them not aligned to 32 bytes). t may
 * be NULL: a prefetch never faults (and the end's address is made as an integer, not by
 * arithmetic on a null pointer). */
static void prefetch_timer(const sx_wheel_timer *t)
{
	__builtin_prefetch(t, 1);
	__builtin_prefetch((const void *)((uintptr_t)t + sizeof(*t) - 1), 1);
}

/* The heads of the next occupied slot of a level after `slot`, to be in cache when it is
 * drained. */
static void prefetch_next_slot(const sx_wheel *w, unsigned level, unsigned slot)
{
	uint64_t occ = w->occupied[level] & ~(UINT64_C(1) << slot);
	unsigned next;

	if (occ == 0)
		return;
	next = first_occupied(occ, (slot + 1) & (SLOTS - 1));
	for (uint32_t bits = w->lanes[level * SLOTS + next]; bits != 0; bits &= bits - 1)
		prefetch_timer(w->list[(level * SLOTS + next) * LANES + __builtin_ctz(bits)]);
}

/* Fire every timer of a slot of level 0 (all due at its tick). The lanes are taken in turn, a
 * head from each, so the cache misses on the next timers of all lanes are in flight together
 * (one linked list would take them one at a time). A callback may cancel any timer, including
 * those still in this slot: the heads are read again for every timer. */
static size_t fire_slot(sx_wheel *w, unsigned slot)
{
	sx_wheel_timer **head = &w->list[slot * LANES];
	uint32_t *lanes = &w->lanes[slot];
	size_t fired = 0;

	prefetch_next_slot(w, 0, slot);
	while (*lanes != 0) {
		for (uint32_t bits = *lanes; bits != 0; bits &= bits - 1) {
			unsigned k = (unsigned)__builtin_ctz(bits);
			sx_wheel_timer *t = head[k], *n;

			if (t == NULL)
				continue; /* emptied by a callback's cancel */
			n = t->sx_next;
			head[k] = n; /* n->sx_prev goes stale: see push */
			prefetch_timer(n); /* in cache when this lane comes round again */
			if (n == NULL) {
				*lanes &= ~(UINT32_C(1) << k);
				if (*lanes == 0)
					w->occupied[0] &= ~(UINT64_C(1) << slot);
			}
			fire(w, t);
			fired++;
		}
	}
	return fired;
}

/* Move every timer of a slot of a level above 0 to the lower level its deadline now belongs to,
 * in the same lane; one due now goes to level 0's current slot, drained next. No callback runs,
 * so the slot is emptied first and its lists walked from local cursors, a head from each lane
 * in turn, as in fire_slot. A slot of level 1 spans level 0's window: its timers all go to
 * level 0, at the slot of their deadline's low digit (a shortcut for most cascades). */
static inline __attribute__((always_inline)) void cascade_lists(sx_wheel *w, unsigned level,
    unsigned slot, bool to_level0)
{
	unsigned at = level * SLOTS + slot;
	sx_wheel_timer **head = &w->list[at * LANES], *cur[LANES];
	uint32_t active = w->lanes[at];
	const uint64_t elapsed = w->elapsed;

	prefetch_next_slot(w, level, slot);
	w->lanes[at] = 0;
	w->occupied[level] &= ~(UINT64_C(1) << slot);
	for (uint32_t bits = active; bits != 0; bits &= bits - 1) {
		unsigned k = (unsigned)__builtin_ctz(bits);

		cur[k] = head[k];
		head[k] = NULL;
	}
	while (active != 0) {
		for (uint32_t bits = active; bits != 0; bits &= bits - 1) {
			unsigned k = (unsigned)__builtin_ctz(bits);
			sx_wheel_timer *t = cur[k], *n = t->sx_next;
			uint64_t when = deadline_of(t);

			cur[k] = n;
			prefetch_timer(n);
			active &= ~((uint32_t)(n == NULL) << k);
			if (to_level0) {
				unsigned s = (unsigned)when & (SLOTS - 1);

				push(w, t, when, s * LANES + k);
				w->lanes[s] |= UINT32_C(1) << k;
				w->occupied[0] |= UINT64_C(1) << s;
			} else {
				place_in(w, t, elapsed, when, k);
			}
		}
	}
}

static void cascade_slot(sx_wheel *w, unsigned level, unsigned slot)
{
	if (level == 1)
		cascade_lists(w, 1, slot, true);
	else
		cascade_lists(w, level, slot, false);
}

/* Make list `from` the firing list (empty before), relabelling its timers, so that callbacks
 * which cancel one of them unlink it from where it is. */
static void take_to_firing(sx_wheel *w, unsigned from)
{
	w->list[FIRING] = w->list[from];
	w->list[from] = NULL;
	for (sx_wheel_timer *t = w->list[FIRING]; t != NULL; t = t->sx_next)
		t->sx_word = (t->sx_word & ~((uint64_t)LIST_MASK << LIST_SHIFT)) |
		    (uint64_t)FIRING << LIST_SHIFT;
}

/* The far list, when time enters a new top-level window: its timers leave it, unless they are
 * still beyond the new window; those go back on it (place) for the next one. Taken onto the
 * firing list first: a callback fired here may cancel any of them. */
static size_t drain_far(sx_wheel *w)
{
	sx_wheel_timer *t;
	size_t fired = 0;

	take_to_firing(w, FAR);
	while ((t = w->list[FIRING]) != NULL) {
		unlink_timer(w, t);
		if (deadline_of(t) <= w->elapsed) {
			fire(w, t);
			fired++;
		} else {
			place(w, t, deadline_of(t));
		}
	}
	return fired;
}

/* Unlink and fire (or move down) timers one at a time from the live list head, so a callback
 * may cancel or add any timer, including those still waiting on the same list. */
size_t sx_wheel_advance_to(sx_wheel *w, uint64_t now_ns)
{
	sx_wheel_timer *t;
	unsigned level, slot;
	uint64_t tick, now;
	size_t fired = 0;

	if (w == NULL)
		return 0;
	now = now_ns > w->origin_ns ? (now_ns - w->origin_ns) / w->tick_ns : 0;
	/* Timers added with a deadline already passed. Callbacks that add such timers again put
	 * them on the fresh due list, for the next advance: no callback can make this loop. */
	take_to_firing(w, DUE);
	while ((t = w->list[FIRING]) != NULL) {
		unlink_timer(w, t);
		fire(w, t);
		fired++;
	}
	while (next_slot(w, &level, &slot, &tick) && tick <= now) {
		if (tick > w->elapsed)
			w->elapsed = tick;
		/* Nothing new can land in this slot while it is processed: a deadline inside its span
		 * now belongs to a lower level, and one not after elapsed goes to the due list. (The
		 * far list is only taken when the levels are empty, and its timers leave it unless
		 * they are still beyond the new window: then they wait for the next one.) */
		if (level == 0)
			fired += fire_slot(w, slot);
		else if (level == FAR)
			fired += drain_far(w);
		else
			cascade_slot(w, level, slot);
	}
	if (now > w->elapsed)
		w->elapsed = now;
	return fired;
}

size_t sx_wheel_advance(sx_wheel *w)
{
	if (w == NULL)
		return 0;
	return sx_wheel_advance_to(w, w->clock.now_ns(w->clock.ctx));
}

uint64_t sx_wheel_next_deadline(const sx_wheel *w)
{
	unsigned level, slot;
	uint64_t tick;

	if (w == NULL)
		return UINT64_MAX;
	if (w->list[DUE] != NULL) {
		/* Due now. The wheel's time is a boundary an advance reached, so this cannot
		 * overflow, but it may be UINT64_MAX itself (an advance to it): that value means
		 * nothing pending, so report the ns before (the owner advances then and fires
		 * them). */
		uint64_t now = w->origin_ns + w->elapsed * w->tick_ns;

		return now < UINT64_MAX ? now : UINT64_MAX - 1;
	}
	if (!next_slot(w, &level, &slot, &tick))
		return UINT64_MAX;
	return w->origin_ns + tick * w->tick_ns;
}

size_t sx_wheel_count(const sx_wheel *w)
{
	return w != NULL ? w->count : 0;
}

uint64_t sx_wheel_tick_ns(const sx_wheel *w)
{
	return w != NULL ? w->tick_ns : 0;
}
