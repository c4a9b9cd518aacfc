/*
 * libFuzzer target: the GCRA limiter (sx_ratelimit_*) and the keyed form on a virtual clock,
 * against a token bucket in exact integer arithmetic (include/strix/ratelimit.h's semantics):
 *
 *   interval I = period_ns / rate (floor), capacity C = burst * I ns of credit, level L <= C
 *   (starts full; negative while waits are owed); L grows by the time that passes, up to C.
 *   try(n):   admitted iff L >= n * I, then L -= n * I; refused: nothing changes
 *   delay(n): max(0, n * I - L)
 *   wait(n):  L -= n * I, then sleeps max(0, -L) on the clock (time moves that far)
 *   -EINVAL for n == 0 or n > burst. An event whose theoretical arrival time, now + (C - L) +
 *   n * I, is 2^64 - 1 or later is never due: refused, delay UINT64_MAX (the limiter stays shut
 *   near the clock's end).
 *
 * Keyed: each key its own bucket, exactly, whatever max_keys (a memory bound: keys are only
 * dropped with a full bucket, when dropping them loses nothing). Input: a header (rate, period, burst, start time, mode), then
 * operations of a byte each plus arguments. Any divergence aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix/breaker.h>
#include <strix/ratelimit.h>

#include "fuzz.h"

typedef __int128 i128;

static uint64_t vnow;

static uint64_t v_now(void *ctx)
{
	(void)ctx;
	return vnow;
}

static void v_sleep(void *ctx, int64_t ns)
{
	(void)ctx;
	vnow += ns; /* the target never asks for a sleep that would pass 2^64 (see wait below) */
}

static const sx_clock vclock = { v_now, NULL, v_sleep };

/* The model: a token bucket. */
struct bucket {
	i128 level;     /* ns of credit; <= cap */
	uint64_t at;    /* when level was last brought up to date */
};

struct model {
	uint64_t interval;
	i128 cap;
	uint32_t burst;
};

static void refill(const struct model *m, struct bucket *b, uint64_t now)
{
	if (now > b->at) {
		b->level += (i128)(now - b->at);
		if (b->level > m->cap)
			b->level = m->cap;
		b->at = now;
	}
}

/* The theoretical arrival time after an event of n would be past 2^64 - 1. */
static int never_due(const struct model *m, const struct bucket *b, uint64_t now, uint32_t n)
{
	i128 owed = m->cap - b->level; /* tat - now, when positive */

	if (owed < 0)
		owed = 0;
	return (i128)now + owed + (i128)n * m->interval >= (i128)UINT64_MAX;
}

static int model_try(const struct model *m, struct bucket *b, uint64_t now, uint32_t n)
{
	if (n == 0 || n > m->burst)
		return -EINVAL;
	refill(m, b, now);
	if (never_due(m, b, now, n) || b->level < (i128)n * m->interval)
		return SX_ERATE_LIMITED;
	b->level -= (i128)n * m->interval;
	return 0;
}

static uint64_t model_delay(const struct model *m, struct bucket *b, uint64_t now, uint32_t n)
{
	i128 d;

	if (n == 0 || n > m->burst)
		return UINT64_MAX;
	refill(m, b, now);
	if (never_due(m, b, now, n))
		return UINT64_MAX;
	d = (i128)n * m->interval - b->level;
	return d > 0 ? (uint64_t)d : 0;
}

#define KEYS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	struct model m;
	struct bucket one, keyb[KEYS];
	sx_ratelimit *rl = NULL;
	sx_ratelimit_keyed *kl = NULL;
	sx_breaker *tripped = NULL;
	unsigned mode, max_keys;
	uint64_t start;

	if (size < 12)
		return 0;
	o.rate = 1 + fz_take(&in, 2);                     /* 1 .. 65536 per period */
	o.period_ns = (fz_take(&in, 1) & 1) ? 1000000000ull : 1 + fz_take(&in, 3) * 64;
	o.burst = (uint32_t)fz_take(&in, 1);               /* 0: the default */
	mode = (unsigned)fz_take(&in, 1);
	switch (mode & 3) {
	case 0: start = 0; break;
	case 1: start = fz_take(&in, 4) * 1000; break;
	case 2: start = UINT64_MAX - 1 - fz_take(&in, 4) * 1000; break; /* the end of the clock */
	default: start = UINT64_MAX / 2 + fz_take(&in, 4); break;
	}
	max_keys = 1 + ((mode >> 2) & 7);
	o.clock = &vclock;
	vnow = start;
	if (sx_ratelimit_create(&o, &rl) != 0) {
		/* Refused options: the model agrees they are out of range. */
		uint64_t b = o.burst ? o.burst : (o.rate < SX_RATELIMIT_MAX_BURST ? o.rate :
		    SX_RATELIMIT_MAX_BURST);

		if (o.rate <= (uint64_t)o.period_ns && b <= SX_RATELIMIT_MAX_BURST &&
		    ((uint64_t)o.period_ns / o.rate) <= (UINT64_C(1) << 61) / b)
			FAIL("create refused rate %llu period %llu burst %u",
			    (unsigned long long)o.rate, (unsigned long long)o.period_ns, o.burst);
		return 0;
	}
	if (sx_ratelimit_keyed_create(&o, max_keys, &kl) != 0)
		FAIL("keyed create refused what create took");
	if (sx_breaker_create(&tripped) != 0 || sx_breaker_trip(tripped) != 0)
		FAIL("breaker");
	m.interval = o.period_ns / o.rate;
	m.burst = o.burst ? o.burst : (uint32_t)(o.rate < SX_RATELIMIT_MAX_BURST ? o.rate :
	    SX_RATELIMIT_MAX_BURST);
	m.cap = (i128)m.burst * m.interval;
	one.level = m.cap;
	one.at = start;
	for (unsigned k = 0; k < KEYS; k++)
		keyb[k] = one;

	while (in.n > 0) {
		unsigned op = (unsigned)fz_take(&in, 1);
		uint32_t n = (uint32_t)fz_take(&in, 1);
		uint64_t dt;
		int rc, want;

		/* n: mostly 1 .. burst, sometimes 0 or past the burst (bad input). */
		n = (n & 0xc0) == 0xc0 ? (n & 1 ? 0 : m.burst + 1 + (n & 7)) : 1 + n % m.burst;
		switch (op & 7) {
		case 0: case 1: /* time passes: a little, or a lot */
			dt = (op & 8) ? fz_take(&in, 1) * m.interval / 16 : fz_take(&in, 3) * (op & 16 ? 997 : 1);
			vnow = dt > UINT64_MAX - 1 - vnow ? UINT64_MAX - 1 : vnow + dt; /* vnow < 2^64 - 1 */
			break;
		case 2: case 3:
			want = model_try(&m, &one, vnow, n);
			rc = sx_ratelimit_try(rl, n);
			if (rc != want)
				FAIL("try(%u) at %llu: %d, model %d", n, (unsigned long long)vnow, rc, want);
			break;
		case 4: {
			uint64_t w = model_delay(&m, &one, vnow, n), got = sx_ratelimit_delay_ns(rl, n);

			if (got != w)
				FAIL("delay(%u) at %llu: %llu, model %llu", n, (unsigned long long)vnow,
				    (unsigned long long)got, (unsigned long long)w);
			break;
		}
		case 5: { /* a wait, if it could end before the clock does; or a tripped one */
			uint64_t d;

			if (op & 8) {
				rc = sx_ratelimit_wait(rl, n, tripped);
				want = (n == 0 || n > m.burst) ? -EINVAL : -ECANCELED;
				if (rc != want)
					FAIL("wait with a tripped stop: %d, model %d", rc, want);
				break;
			}
			if (n == 0 || n > m.burst) {
				if (sx_ratelimit_wait(rl, n, NULL) != -EINVAL)
					FAIL("wait(%u) not -EINVAL", n);
				break;
			}
			refill(&m, &one, vnow);
			if (never_due(&m, &one, vnow, n) || (i128)vnow + m.cap + 2 * (i128)n *
			    m.interval > (i128)UINT64_MAX / 2)
				break; /* keep waits well inside the clock's range */
			one.level -= (i128)n * m.interval;
			d = one.level < 0 ? (uint64_t)(-one.level) : 0;
			dt = vnow;
			rc = sx_ratelimit_wait(rl, n, NULL);
			if (rc != 0 || vnow - dt != d)
				FAIL("wait(%u) at %llu: rc %d slept %llu, model %llu", n,
				    (unsigned long long)dt, rc, (unsigned long long)(vnow - dt),
				    (unsigned long long)d);
			break;
		}
		default: { /* keyed */
			unsigned key = (op >> 3) % KEYS;

			want = model_try(&m, &keyb[key], vnow, n);
			rc = sx_ratelimit_keyed_try(kl, key, n);
			/* max_keys (1 .. 8 here, below KEYS) is a memory bound: keys are only ever
			 * dropped with a full bucket, so every key follows the model exactly, however
			 * many are active, and -ENOSPC is gone. */
			if (rc != want)
				FAIL("keyed try(%u, %u) at %llu: %d, model %d", key, n,
				    (unsigned long long)vnow, rc, want);
			break;
		}
		}
	}
	sx_breaker_release(tripped);
	sx_ratelimit_keyed_destroy(kl);
	sx_ratelimit_destroy(rl);
	return 0;
}
