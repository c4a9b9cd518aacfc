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
 * Each slot is 16 doubly linked lists ("lanes"), filled round-robin. Insert and cancel stay O(1)
 * (the timer remembers its level, slot and lane); a 16-bit mask per slot says which lanes hold
 * timers. The lanes are for expiry: timers live wherever their owners put them, so walking one
 * list of a million scattered timers is one cache miss after another, each waiting for the one
 * before. Draining a slot takes a head from each lane in turn, so 16 of those misses are in
 * flight at once (B8 on 1M timers: 200 ns per expired timer with one list, about 46 with 16;
 * past 16 lanes it no longer improves here: the misses are also TLB misses).
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

#define LEVELS 7u
#define SLOT_BITS 6u
#define SLOTS (1u << SLOT_BITS)
#define DUE LEVELS          /* sx_level of a timer on the due list */
#define FIRING (LEVELS + 1) /* sx_level of a timer on the list being fired */
#define FAR (LEVELS + 2)    /* sx_level of a timer beyond the top level's current window */
#define TOP_WINDOW ((UINT64_C(1) << (LEVELS * SLOT_BITS)) - 1)
#define LANE_BITS 4u
#define LANES (1u << LANE_BITS)

enum { T_IDLE = 0, T_PENDING = 1 };

struct sx_wheel {
	uint64_t elapsed;           /* wheel time, ticks: every deadline <= elapsed has fired */
	uint64_t origin_ns;
	uint64_t tick_ns;
	sx_clock clock;
	size_t count;
	sx_wheel_timer *due;        /* added with a deadline already passed: fire at next advance */
	sx_wheel_timer *firing;     /* the due list an advance is working through */
	sx_wheel_timer *far;        /* deadlines beyond the top level's window: looked at again
	                               when time enters the next window (every 2^42 ticks) */
	unsigned lane_rr;           /* lane of the next timer placed */
	uint64_t occupied[LEVELS];
	uint16_t lanes[LEVELS][SLOTS];       /* non-empty lanes of each slot */
	sx_wheel_timer *slot[LEVELS][SLOTS][LANES];
};

static uint64_t mono_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const sx_clock sx_clock_monotonic = { mono_now, NULL, NULL };

int sx_wheel_create(sx_wheel **out, const sx_wheel_opts *opts)
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
	if (tick < SX_WHEEL_TICK_MIN_NS || tick > SX_WHEEL_TICK_MAX_NS || clock->now_ns == NULL)
		return -EINVAL;
	w = sx_allocator_default.alloc(sx_allocator_default.ctx, sizeof(*w), 64);
	if (w == NULL)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->tick_ns = tick;
	w->clock = *clock;
	w->origin_ns = clock->now_ns(clock->ctx);
	*out = w;
	return 0;
}

void sx_wheel_destroy(sx_wheel *w)
{
	if (w != NULL)
		sx_allocator_default.free(sx_allocator_default.ctx, w, sizeof(*w), 64);
}

void sx_wheel_timer_init(sx_wheel_timer *t, void (*fn)(sx_wheel_timer *, void *), void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
}

bool sx_wheel_timer_pending(const sx_wheel_timer *t)
{
	return t != NULL && t->sx_state == T_PENDING;
}

/* ---- lists --------------------------------------------------------------------------------- */

static sx_wheel_timer **head_of(sx_wheel *w, const sx_wheel_timer *t)
{
	if (t->sx_level == DUE)
		return &w->due;
	if (t->sx_level == FIRING)
		return &w->firing;
	if (t->sx_level == FAR)
		return &w->far;
	return &w->slot[t->sx_level][t->sx_slot][t->sx_lane];
}

static void push(sx_wheel_timer **head, sx_wheel_timer *t)
{
	t->sx_prev = NULL;
	t->sx_next = *head;
	if (*head != NULL)
		(*head)->sx_prev = t;
	*head = t;
}

static void unlink_timer(sx_wheel *w, sx_wheel_timer *t)
{
	sx_wheel_timer **head = head_of(w, t);

	if (*head == t)
		*head = t->sx_next; /* a head's sx_prev is stale: see drain_slot */
	else
		t->sx_prev->sx_next = t->sx_next;
	if (t->sx_next != NULL)
		t->sx_next->sx_prev = t->sx_prev;
	if (t->sx_level < LEVELS && *head == NULL) {
		uint16_t *lanes = &w->lanes[t->sx_level][t->sx_slot];

		*lanes &= (uint16_t)~(1u << t->sx_lane);
		if (*lanes == 0)
			w->occupied[t->sx_level] &= ~(UINT64_C(1) << t->sx_slot);
	}
}

/* ---- placement ------------------------------------------------------------------------------ */

static unsigned level_for(uint64_t elapsed, uint64_t when)
{
	uint64_t masked = (elapsed ^ when) | (SLOTS - 1);
	unsigned significant = 63u - (unsigned)__builtin_clzll(masked);

	return significant / SLOT_BITS;
}

/* Place a timer whose deadline is after elapsed. */
static void place(sx_wheel *w, sx_wheel_timer *t)
{
	uint64_t when = t->sx_deadline;
	unsigned level;

	if ((when ^ w->elapsed) > TOP_WINDOW) {
		t->sx_level = FAR;
		push(&w->far, t);
		return;
	}
	level = level_for(w->elapsed, when);
	t->sx_level = (uint8_t)level;
	t->sx_slot = (uint8_t)((when >> (level * SLOT_BITS)) & (SLOTS - 1));
	t->sx_lane = (uint8_t)(w->lane_rr++ & (LANES - 1));
	push(&w->slot[level][t->sx_slot][t->sx_lane], t);
	w->lanes[level][t->sx_slot] |= (uint16_t)(1u << t->sx_lane);
	w->occupied[level] |= UINT64_C(1) << t->sx_slot;
}

static uint64_t ns_to_tick_ceil(const sx_wheel *w, uint64_t ns)
{
	uint64_t d;

	if (ns <= w->origin_ns)
		return 0;
	d = ns - w->origin_ns;
	return d / w->tick_ns + (d % w->tick_ns != 0);
}

int sx_wheel_add(sx_wheel *w, sx_wheel_timer *t, uint64_t deadline_ns)
{
	if (w == NULL || t == NULL || t->fn == NULL)
		return -EINVAL;
	if (t->sx_state == T_PENDING)
		return -EBUSY;
	t->sx_deadline = ns_to_tick_ceil(w, deadline_ns);
	t->sx_state = T_PENDING;
	w->count++;
	if (t->sx_deadline <= w->elapsed) {
		t->sx_level = DUE;
		push(&w->due, t);
	} else {
		place(w, t);
	}
	return 0;
}

int sx_wheel_add_after(sx_wheel *w, sx_wheel_timer *t, uint64_t delay_ns)
{
	uint64_t now;

	if (w == NULL)
		return -EINVAL;
	now = w->clock.now_ns(w->clock.ctx);
	return sx_wheel_add(w, t, delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns);
}

int sx_wheel_cancel(sx_wheel *w, sx_wheel_timer *t)
{
	if (w == NULL || t == NULL)
		return -EINVAL;
	if (t->sx_state != T_PENDING)
		return -ENOENT;
	unlink_timer(w, t);
	t->sx_state = T_IDLE;
	w->count--;
	return 0;
}

/* ---- expiry -------------------------------------------------------------------------------- */

/* The next occupied slot at or after elapsed, lowest level first (lower levels always come due
 * first). Its start tick goes to *tick. */
static bool next_slot(const sx_wheel *w, unsigned *level, unsigned *slot, uint64_t *tick)
{
	for (unsigned l = 0; l < LEVELS; l++) {
		uint64_t occ = w->occupied[l];
		unsigned shift = l * SLOT_BITS, pos, s;
		uint64_t rotated, level_start;

		if (occ == 0)
			continue;
		pos = (unsigned)((w->elapsed >> shift) & (SLOTS - 1));
		rotated = pos == 0 ? occ : (occ >> pos) | (occ << (SLOTS - pos));
		s = (pos + (unsigned)__builtin_ctzll(rotated)) & (SLOTS - 1);
		level_start = w->elapsed & ~((UINT64_C(1) << (shift + SLOT_BITS)) - 1);
		*level = l;
		*slot = s;
		*tick = level_start + ((uint64_t)s << shift);
		return true;
	}
	if (w->far != NULL) {
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
	t->sx_state = T_IDLE;
	w->count--;
	t->fn(t, t->arg);
}

/* A timer just taken off the list being processed: fire it if its tick has come, else place it
 * lower (a cascade). Returns 1 if it fired. */
static size_t fire_or_place(sx_wheel *w, sx_wheel_timer *t)
{
	if (t->sx_deadline <= w->elapsed) {
		fire(w, t);
		return 1;
	}
	place(w, t);
	return 0;
}

/* Fire or move down every timer of a slot of the levels. Its lanes are taken in turn, a head
 * from each, so the cache misses on the next timers of all lanes are in flight together (one
 * linked list would take them one at a time). A callback may cancel any timer, including those
 * still in this slot: the heads are read again for every timer. */
static size_t drain_slot(sx_wheel *w, unsigned level, unsigned slot)
{
	sx_wheel_timer **head = w->slot[level][slot];
	uint16_t *lanes = &w->lanes[level][slot];
	size_t fired = 0;

	while (*lanes != 0) {
		for (unsigned bits = *lanes; bits != 0; bits &= bits - 1) {
			unsigned k = (unsigned)__builtin_ctz(bits);
			sx_wheel_timer *t = head[k], *n;

			if (t == NULL)
				continue; /* emptied by a callback's cancel */
			n = t->sx_next;
			head[k] = n;
			/* Not n->sx_prev = NULL: that store would stall on n's line. A head's
			 * sx_prev is never read (unlink_timer compares with the head instead), so
			 * it is only fetched, to be in cache when this lane comes round again. */
			if (n != NULL) {
				__builtin_prefetch(n, 1);
			} else {
				*lanes &= (uint16_t)~(1u << k);
				if (*lanes == 0)
					w->occupied[level] &= ~(UINT64_C(1) << slot);
			}
			fired += fire_or_place(w, t);
		}
	}
	return fired;
}

/* The far list, when time enters a new top-level window: its timers leave it, unless they are
 * still beyond the new window; those wait for the next one. */
static size_t drain_far(sx_wheel *w)
{
	sx_wheel_timer *t, *stay = NULL;
	size_t fired = 0;

	while ((t = w->far) != NULL) {
		unlink_timer(w, t);
		if ((t->sx_deadline ^ w->elapsed) > TOP_WINDOW && t->sx_deadline > w->elapsed) {
			t->sx_next = stay; /* still far: set aside, relinked below */
			stay = t;
		} else {
			fired += fire_or_place(w, t);
		}
	}
	while ((t = stay) != NULL) {
		stay = t->sx_next;
		push(&w->far, t);
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
	w->firing = w->due;
	w->due = NULL;
	for (t = w->firing; t != NULL; t = t->sx_next)
		t->sx_level = FIRING;
	while ((t = w->firing) != NULL) {
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
		fired += level == FAR ? drain_far(w) : drain_slot(w, level, slot);
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
	if (w->due != NULL)
		return w->origin_ns + w->elapsed * w->tick_ns;
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
