/*
 * libFuzzer target: sx_wheel against a reference model, on a virtual clock.
 *
 * The input is decoded into wheel options (tick, and the clock's reading at create: the origin)
 * and a sequence of operations on NT timers: add at a deadline (near, far, past the levels'
 * 2^42-tick range, past the 2^48-tick end, near UINT64_MAX), add_after, cancel, re-init, advance
 * (through the clock or advance_to, to any time: earlier, the next deadline, one before it,
 * UINT64_MAX), and run as a sleeping owner would until nothing is pending. A timer may carry a
 * re-add: its callback adds it again, once, at a given deadline.
 *
 * The model keeps, per timer, whether it is pending and its tick, and applies the documented
 * rule (timer.h, sx_wheel_add): tick = ceil((deadline - origin) / tick_ns), 0 for a deadline at
 * or before the origin, clamped to the wheel's last tick, min(2^48 - 1, (UINT64_MAX - 1 -
 * origin) / tick_ns); an advance to now takes the wheel's time W to max(W, floor((now - origin) /
 * tick_ns)); it first fires every timer whose tick is at or before the old W, then the others
 * whose tick it reaches, tick by tick; a callback runs with the wheel's time at the fired
 * timer's tick (the old W for the first group), and a timer it adds with a tick not after that
 * time waits for the next advance.
 *
 * Checked after every operation: return codes, which timers fired in each advance and how often
 * (exactly), that they fired in tick order, sx_wheel_count, sx_wheel_timer_pending;
 * sx_wheel_next_deadline is UINT64_MAX exactly when nothing is pending, else a tick boundary
 * between the wheel's time and the model's earliest firing time (so it never wraps), and an
 * advance to it that fires nothing moves it forward (an owner never spins). Any divergence
 * aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix/pool.h>
#include <strix/timer.h>

#include "fuzz.h"

#define NT 16
#define MAX_FIRES 64 /* per advance: each timer fires at most twice (once more after a re-add) */
#define OWNER_STEPS 4096

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz_wheel: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                            \
		}                                                                           \
	} while (0)

/* ---- input ------------------------------------------------------------------------------ */

static uint64_t sat_sub(uint64_t a, uint64_t b)
{
	return b > a ? 0 : a - b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return a != 0 && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* ---- the wheel under test and the model ------------------------------------------------- */

struct ftimer {
	sx_wheel_timer t;
	int id;
};

struct mtimer {
	int pending;
	int due;            /* added during this advance with a tick not after the time then */
	uint64_t tick;
	int readd;          /* its next callback adds it again at readd_ns */
	uint64_t readd_ns;
};

static struct {
	uint64_t vnow;
	sx_wheel *w;
	struct ftimer ft[NT];
	/* the model */
	uint64_t origin, tick_ns, end, elapsed;
	struct mtimer m[NT];
	/* one advance: the model's firings (timer, time), then the wheel's, in callback order */
	int exp_n, got_n;
	int exp_id[MAX_FIRES], got_id[MAX_FIRES];
	uint64_t exp_at[MAX_FIRES];
	/* the wheel's re-adds, armed when the timer is added */
	int readd[NT];
	uint64_t readd_ns[NT];
} S;

static uint64_t vclock_now(void *ctx)
{
	(void)ctx;
	return S.vnow;
}

static const sx_clock vclock = { vclock_now, NULL, NULL };

static uint64_t model_tick_of(uint64_t ns)
{
	uint64_t d, t;

	if (ns <= S.origin)
		return 0;
	d = ns - S.origin;
	t = d / S.tick_ns + (d % S.tick_ns != 0);
	return t < S.end ? t : S.end;
}

static void on_fire(sx_wheel_timer *t)
{
	struct ftimer *f = SX_CONTAINER_OF(t, struct ftimer, t);

	CHECK(S.got_n < MAX_FIRES);
	CHECK(!sx_wheel_timer_pending(t));
	S.got_id[S.got_n++] = f->id;
	if (S.readd[f->id]) {
		S.readd[f->id] = 0;
		CHECK(sx_wheel_add(S.w, t, S.readd_ns[f->id]) == 0);
		CHECK(sx_wheel_timer_pending(t));
	}
}

static size_t model_count(void)
{
	size_t c = 0;

	for (int i = 0; i < NT; i++)
		c += S.m[i].pending != 0;
	return c;
}

/* Fire model timer i at wheel time `at` (ticks), running its callback's re-add. */
static void model_fire(int i, uint64_t at)
{
	struct mtimer *m = &S.m[i];

	CHECK(S.exp_n < MAX_FIRES);
	S.exp_id[S.exp_n] = i;
	S.exp_at[S.exp_n++] = at;
	m->pending = 0;
	m->due = 0;
	if (m->readd) {
		m->readd = 0;
		m->pending = 1;
		m->tick = model_tick_of(m->readd_ns);
		m->due = m->tick <= at;
	}
}

static void model_advance(uint64_t now_ns)
{
	uint64_t nt = now_ns > S.origin ? (now_ns - S.origin) / S.tick_ns : 0;
	uint64_t w_old = S.elapsed, w_new = nt > w_old ? nt : w_old;
	int first[NT], nfirst = 0;

	S.exp_n = 0;
	for (int i = 0; i < NT; i++)
		if (S.m[i].pending && S.m[i].tick <= w_old)
			first[nfirst++] = i;
	for (int k = 0; k < nfirst; k++)
		model_fire(first[k], w_old);
	for (;;) {
		uint64_t t = UINT64_MAX;

		for (int i = 0; i < NT; i++) {
			const struct mtimer *m = &S.m[i];

			if (m->pending && !m->due && m->tick <= w_new && m->tick < t)
				t = m->tick;
		}
		if (t == UINT64_MAX)
			break;
		CHECK(t > w_old);
		nfirst = 0;
		for (int i = 0; i < NT; i++)
			if (S.m[i].pending && !S.m[i].due && S.m[i].tick == t)
				first[nfirst++] = i;
		for (int k = 0; k < nfirst; k++)
			model_fire(first[k], t);
	}
	for (int i = 0; i < NT; i++)
		S.m[i].due = 0;
	S.elapsed = w_new;
}

/* The model's earliest firing time in ns; false when nothing is pending. */
static int model_earliest_ns(uint64_t *out)
{
	uint64_t best = UINT64_MAX;
	int any = 0;

	for (int i = 0; i < NT; i++) {
		uint64_t t;

		if (!S.m[i].pending)
			continue;
		t = S.m[i].tick > S.elapsed ? S.m[i].tick : S.elapsed;
		if (t < best)
			best = t;
		any = 1;
	}
	*out = any ? S.origin + best * S.tick_ns : UINT64_MAX;
	return any;
}

static void check_state(void)
{
	uint64_t nd = sx_wheel_next_deadline(S.w), earliest, now;

	CHECK(sx_wheel_count(S.w) == model_count());
	for (int i = 0; i < NT; i++)
		CHECK(sx_wheel_timer_pending(&S.ft[i].t) == (S.m[i].pending != 0));
	if (!model_earliest_ns(&earliest)) {
		CHECK(nd == UINT64_MAX);
		return;
	}
	now = S.origin + S.elapsed * S.tick_ns;
	CHECK(nd != UINT64_MAX);
	CHECK(nd <= earliest);
	if (now == UINT64_MAX && nd == UINT64_MAX - 1)
		return; /* the one time reported as the ns before */
	CHECK(nd >= now);
	CHECK((nd - S.origin) % S.tick_ns == 0);
}

/* Advance both; through the clock when via_clock (the clock then reads now_ns). */
static size_t advance(uint64_t now_ns, int via_clock)
{
	size_t fired;
	uint64_t last = 0;

	model_advance(now_ns);
	S.got_n = 0;
	if (via_clock) {
		S.vnow = now_ns;
		fired = sx_wheel_advance(S.w);
	} else {
		fired = sx_wheel_advance_to(S.w, now_ns);
		if (now_ns > S.vnow)
			S.vnow = now_ns;
	}
	CHECK(fired == (size_t)S.got_n);
	CHECK(S.got_n == S.exp_n);
	/* The same firings: match each of the wheel's to an unused one of the model's, and see
	 * that the model's times come in order. */
	{
		int used[MAX_FIRES] = { 0 };

		for (int g = 0; g < S.got_n; g++) {
			int k;

			for (k = 0; k < S.exp_n; k++)
				if (!used[k] && S.exp_id[k] == S.got_id[g])
					break;
			CHECK(k < S.exp_n);
			used[k] = 1;
			CHECK(S.exp_at[k] >= last);
			last = S.exp_at[k];
		}
	}
	check_state();
	return fired;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static uint64_t decode_deadline(struct fz_in *in)
{
	unsigned mode = (unsigned)fz_take(in, 1) % 9;
	uint64_t base = S.origin + S.elapsed * S.tick_ns;
	uint64_t a = fz_take(in, 1), b = fz_take(in, 1), c = fz_take(in, 4);

	switch (mode) {
	case 0: /* soon: whole ticks and a part of one from the clock */
		return sat_add(S.vnow, sat_add(sat_mul(a, S.tick_ns), c % S.tick_ns));
	case 1: /* around the wheel's time: a few ns either side of its boundary */
		return a & 1 ? sat_add(base, b) : sat_sub(base, b);
	case 2: /* near the end of the clock */
		return UINT64_MAX - c;
	case 3:
		return c << 32 | fz_take(in, 4);
	case 4: /* the top level's range: 2^42 ticks from now or from the origin */
	case 5: /* the end of a timer's word: 2^48 ticks */ {
		uint64_t span = sat_mul(UINT64_C(1) << (mode == 4 ? 42 : 48), S.tick_ns);
		uint64_t from = sat_add(a & 1 ? S.vnow : S.origin, span);
		uint64_t jitter = sat_add(sat_mul(b, S.tick_ns), c & 0xff);

		return a & 2 ? sat_add(from, jitter) : sat_sub(from, jitter);
	}
	case 6: /* the past */
		return a & 1 ? 0 : sat_sub(S.origin, c & 0xffff);
	case 7: /* log-uniform ahead, every level */
		return sat_add(S.vnow, sat_add(sat_mul(UINT64_C(1) << (a % 50), S.tick_ns), c));
	default: /* a delay used as a deadline: INT64_MIN and the like */
		return a & 1 ? (uint64_t)INT64_MIN : (uint64_t)INT64_MAX;
	}
}

static uint64_t decode_time(struct fz_in *in, int *via_clock)
{
	unsigned mode = (unsigned)fz_take(in, 1);
	uint64_t nd = sx_wheel_next_deadline(S.w), t, a = fz_take(in, 1);

	*via_clock = (mode & 0x80) != 0;
	switch (mode % 8) {
	case 0:
		t = sat_add(S.vnow, sat_mul(a, S.tick_ns / 4 + 1));
		break;
	case 1:
		t = nd;
		break;
	case 2:
		t = nd == UINT64_MAX ? nd : sat_sub(nd, 1);
		break;
	case 3:
		t = UINT64_MAX;
		break;
	case 4:
		t = fz_take(in, 8);
		break;
	case 5: /* earlier than the clock: the wheel's time stays */
		t = sat_sub(S.vnow, a << 24 | fz_take(in, 3));
		break;
	case 6:
		t = sat_add(S.origin, sat_mul(UINT64_C(1) << (a % 50), S.tick_ns));
		break;
	default:
		t = sat_add(S.vnow, S.tick_ns);
		break;
	}
	if (*via_clock && t < S.vnow)
		*via_clock = 0; /* the clock never goes back */
	return t;
}

/* A sleeping owner: advance to the next deadline until nothing is pending. */
static void run_owner(void)
{
	for (int steps = 0;; steps++) {
		uint64_t nd = sx_wheel_next_deadline(S.w), after;
		size_t fired;

		if (nd == UINT64_MAX)
			return;
		CHECK(steps < OWNER_STEPS);
		fired = advance(nd > S.vnow ? nd : S.vnow, 1);
		after = sx_wheel_next_deadline(S.w);
		CHECK(fired > 0 || after > nd);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t ticks[] = { SX_WHEEL_TICK_MIN_NS, SX_WHEEL_TICK_DEFAULT_NS,
		SX_WHEEL_TICK_MAX_NS };
	struct fz_in in = { data, size };
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	unsigned mode = (unsigned)fz_take(&in, 1);
	int ops = 0;

	memset(&S, 0, sizeof(S));
	S.tick_ns = mode % 4 < 3 ? ticks[mode % 4]
	                        : SX_WHEEL_TICK_MIN_NS + fz_take(&in, 4) % (SX_WHEEL_TICK_MAX_NS -
	                                                                  SX_WHEEL_TICK_MIN_NS + 1);
	switch ((mode >> 2) % 4) {
	case 0:
		S.origin = 0;
		break;
	case 1:
		S.origin = fz_take(&in, 4);
		break;
	case 2: /* a few ticks before the clock's end */
		S.origin = fz_take(&in, 1);
		S.origin = UINT64_MAX - S.origin * S.tick_ns - fz_take(&in, 4) % S.tick_ns;
		break;
	default:
		S.origin = fz_take(&in, 8);
		break;
	}
	S.vnow = S.origin;
	{
		uint64_t last = S.origin < UINT64_MAX ? (UINT64_MAX - 1 - S.origin) / S.tick_ns : 0;

		S.end = last < (UINT64_C(1) << 48) - 1 ? last : (UINT64_C(1) << 48) - 1;
	}
	o.tick_ns = S.tick_ns;
	o.clock = &vclock;
	CHECK(sx_wheel_create(&o, &S.w) == 0);
	for (int i = 0; i < NT; i++) {
		S.ft[i].id = i;
		CHECK(sx_wheel_timer_init(&S.ft[i].t, on_fire) == 0);
	}
	check_state();

	while (in.n > 0 && ops++ < 256) {
		unsigned op = (unsigned)fz_take(&in, 1);
		int i = (int)(fz_take(&in, 1) % NT), via_clock, rc;
		uint64_t d;

		switch (op % 8) {
		case 0: /* add */
		case 1: /* add with a re-add in its callback */
		case 2: /* add_after */
			if (op % 8 == 2) {
				uint64_t kind = fz_take(&in, 1), raw = fz_take(&in, 8) >> 1;
				int64_t delay = kind & 1 ? INT64_MAX : (int64_t)(raw >> (kind >> 1) % 64);

				if ((kind & 0x81) == 0x80) {
					/* A negative delay: refused, nothing changes. */
					delay = -1 - (int64_t)raw;
					CHECK(sx_wheel_add_after(S.w, &S.ft[i].t, delay) == -EINVAL);
					break;
				}
				d = sat_add(S.vnow, (uint64_t)delay);
				rc = sx_wheel_add_after(S.w, &S.ft[i].t, delay);
			} else {
				d = decode_deadline(&in);
				rc = sx_wheel_add(S.w, &S.ft[i].t, d);
			}
			if (S.m[i].pending) {
				CHECK(rc == -EBUSY);
				break;
			}
			CHECK(rc == 0);
			S.m[i].pending = 1;
			S.m[i].tick = model_tick_of(d);
			S.m[i].readd = 0;
			S.readd[i] = 0;
			if (op % 8 == 1) {
				uint64_t again = decode_deadline(&in);

				S.m[i].readd = S.readd[i] = 1;
				S.m[i].readd_ns = S.readd_ns[i] = again;
			}
			break;
		case 3: /* cancel */
			rc = sx_wheel_cancel(S.w, &S.ft[i].t);
			CHECK(rc == (S.m[i].pending ? 0 : -ENOENT));
			S.m[i].pending = 0;
			S.m[i].readd = 0;
			S.readd[i] = 0;
			break;
		case 4: /* re-initialize an idle timer */
			if (!S.m[i].pending)
				CHECK(sx_wheel_timer_init(&S.ft[i].t, on_fire) == 0);
			break;
		case 5:
		case 6: /* advance */
			d = decode_time(&in, &via_clock);
			advance(d, via_clock);
			break;
		default:
			run_owner();
			break;
		}
		check_state();
	}
	run_owner();
	CHECK(sx_wheel_count(S.w) == 0);
	sx_wheel_destroy(S.w);
	return 0;
}
