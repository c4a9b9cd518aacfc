/*
 * libFuzzer target: sx_backoff_next against a reference model of the curves and jitters that
 * include/strix/retry.h documents, computed independently (exact integers for the linear and
 * Fibonacci curves, long double for the rest, the documented splitmix64 generator and
 * u = top 53 bits * 2^-53), and against the invariants:
 *   - no wrap: a curve that grows past 2^64 saturates at UINT64_MAX (at any attempt count);
 *   - the cap bounds the curve (and every jitter but DEVIATION, which documents b +/- f*b);
 *   - each jitter stays in its documented range; the decorrelated forms stay >= base (capped);
 *   - deterministic: the same policy (seed) gives the same sequence;
 *   - policies sx_retry_policy_check refuses are refused by sx_backoff_init, bo untouched.
 * Floating forms are compared with a relative tolerance of a few ulps per attempt (the library
 * works in double). Any divergence aborts.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strix/retry.h>

#include "fuzz.h"

typedef unsigned __int128 u128;

/* ---- the model ------------------------------------------------------------------------------ */

struct ref {
	uint64_t rng, prev;
	u128 fa, fb;          /* Fibonacci, saturating at 2^64 */
	uint64_t n;           /* attempts so far (the linear curve's, saturating at UINT_MAX) */
	uint64_t calls;       /* attempts since init (the exponential curve's) */
};

static uint64_t r_splitmix(uint64_t *s)
{
	uint64_t z;

	*s += 0x9e3779b97f4a7c15ull;
	z = *s;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static long double r_unit(uint64_t *s)
{
	return (long double)(r_splitmix(s) >> 11) / 9007199254740992.0L; /* 2^53 */
}

#define TWO64 18446744073709551616.0L

/* A value with its tolerance: the library's answer must be within [lo, hi]. */
struct want {
	long double v;        /* exact, or nearly (may be >= 2^64: saturated) */
	long double tol;      /* absolute */
};

static uint64_t clamp_ns(long double v)
{
	if (!(v > 0))
		return 0;
	if (v >= TWO64)
		return UINT64_MAX;
	return (uint64_t)v;
}

static int within(uint64_t got, struct want w)
{
	long double lo = w.v - w.tol - 1, hi = w.v + w.tol + 1;

	if (lo >= TWO64)
		return got == UINT64_MAX;
	if (hi >= TWO64 - 4096 && got == UINT64_MAX)
		return 1;
	return (long double)got >= lo && (long double)got <= hi;
}

static long double ulps(const struct ref *r, long double v)
{
	return fabsl(v) * (long double)(r->calls + 8) * 0x1p-51L;
}

/* Uniform in [lo, hi) from u, lo when hi <= lo; hi given exactly (may be 3 * prev >= 2^64). */
static struct want r_between(const struct ref *r, long double u, uint64_t lo, long double hi)
{
	struct want w;

	if (hi > TWO64 - 1)
		hi = TWO64 - 1; /* 3 * prev saturates */
	if (hi <= (long double)lo) {
		w.v = lo;
		w.tol = 0;
		return w;
	}
	w.v = lo + floorl((hi - lo) * u);
	w.tol = ulps(r, hi) + 1;
	return w;
}

static long double r_next(const sx_retry_policy *p, struct ref *r, uint64_t got)
{
	uint64_t base = p->base_ns;
	long double b = 0;
	struct want w;
	long double f;

	if (r->n < UINT_MAX)
		r->n++;
	r->calls++;
	switch (p->backoff) {
	case SX_BACKOFF_CONSTANT:
		b = base;
		break;
	case SX_BACKOFF_LINEAR:
		b = (long double)((u128)base * r->n);
		break;
	case SX_BACKOFF_EXPONENTIAL:
		f = p->factor == 0.0 ? 2.0L : (long double)p->factor;
		b = base == 0 ? 0 : (long double)base * powl(f, (long double)(r->calls - 1));
		if (isinf(b) || b > 2 * TWO64)
			b = 2 * TWO64;
		break;
	case SX_BACKOFF_FIBONACCI: {
		u128 fa = r->fa, next = r->fa + r->fb;

		b = base == 0 ? 0 : (long double)((u128)base * (fa > UINT64_MAX ? (u128)UINT64_MAX + 1 :
		    fa));
		if (next > (u128)UINT64_MAX + 1)
			next = (u128)UINT64_MAX + 1;
		r->fa = r->fb;
		r->fb = next;
		break;
	}
	case SX_BACKOFF_DECORRELATED:
		w = r_between(r, r_unit(&r->rng), base, 3.0L * r->prev);
		if (p->cap_ns != 0 && w.v > p->cap_ns)
			w.tol = w.v - w.tol > p->cap_ns ? 0 : w.tol, w.v = p->cap_ns;
		if (!within(got, w))
			FAIL("decorrelated backoff: %llu, model %.1Lf +/- %.1Lf",
			    (unsigned long long)got, w.v, w.tol);
		if (got < base && (p->cap_ns == 0 || (uint64_t)p->cap_ns >= base))
			FAIL("decorrelated backoff %llu below base %llu", (unsigned long long)got,
			    (unsigned long long)base);
		r->prev = got; /* carry the library's value on: the next range depends on it */
		return -1;
	default:
		break;
	}
	if (p->cap_ns != 0 && b > p->cap_ns)
		b = p->cap_ns;
	return b;
}

/* Check one delay against the model; returns the model's jittered value (for the record). */
static void check(const sx_retry_policy *p, struct ref *r, uint64_t got, unsigned i)
{
	long double bf = r_next(p, r, got), u, btol;
	uint64_t b, half, bhi;
	struct want w;

	if (bf < 0)
		return; /* decorrelated backoff: checked in r_next */
	b = clamp_ns(bf);
	/* The library computes the exponential curve in double: its b may differ by a few ulps. */
	btol = p->backoff == SX_BACKOFF_EXPONENTIAL ? ulps(r, bf) + 1 : 0;
	bhi = clamp_ns((long double)b + btol);
	/* The curve (before jitter) must be exact for the integer forms and close for the rest,
	 * saturated when the model is past 2^64. */
	w.v = bf;
	w.tol = p->backoff == SX_BACKOFF_EXPONENTIAL ? ulps(r, bf) : 0;
	switch (p->jitter) {
	case SX_JITTER_NONE:
		if (!within(got, w))
			FAIL("attempt %u: backoff %d gave %llu, model %.1Lf", i, p->backoff,
			    (unsigned long long)got, bf);
		break;
	case SX_JITTER_FULL:
		u = r_unit(&r->rng);
		w.v = floorl(bf >= TWO64 ? (TWO64 - 1) * u : bf * u);
		w.tol += ulps(r, w.v) + 1;
		if (!within(got, w) || (btol == 0 && b > 0 && got >= b) || got > bhi ||
		    (bhi == 0 && got != 0))
			FAIL("attempt %u: full jitter of %llu gave %llu, model %.1Lf", i,
			    (unsigned long long)b, (unsigned long long)got, w.v);
		break;
	case SX_JITTER_EQUAL:
		u = r_unit(&r->rng);
		half = b / 2;
		w.v = half + floorl((long double)half * u);
		w.tol += ulps(r, w.v) + 1;
		if (!within(got, w) || (long double)got < half - btol ||
		    (btol == 0 && b > 1 && got >= b) || got > bhi || (bhi <= 1 && got != 0))
			FAIL("attempt %u: equal jitter of %llu gave %llu, model %.1Lf", i,
			    (unsigned long long)b, (unsigned long long)got, w.v);
		break;
	case SX_JITTER_DEVIATION: {
		long double f = p->deviation, lo = (long double)b * (1 - f), hi = (long double)b * (1 + f);

		u = r_unit(&r->rng);
		w.v = floorl((long double)b * (1 - f + 2 * f * u));
		w.tol = ulps(r, hi) + 2;
		if (!within(got, w) || (long double)got < floorl(lo) - w.tol ||
		    (long double)got > hi + w.tol)
			FAIL("attempt %u: deviation %g of %llu gave %llu, model %.1Lf", i,
			    p->deviation, (unsigned long long)b, (unsigned long long)got, w.v);
		break;
	}
	case SX_JITTER_DECORRELATED:
		u = r_unit(&r->rng);
		w = r_between(r, u, p->base_ns, 3.0L * r->prev);
		if (w.v > b) /* min(b, ...): b's own tolerance once the draw is clearly above it */
			w.tol = w.v - w.tol > bhi ? btol : w.tol + btol, w.v = b;
		if (!within(got, w) || got > bhi)
			FAIL("attempt %u: decorrelated jitter under %llu gave %llu, model %.1Lf", i,
			    (unsigned long long)b, (unsigned long long)got, w.v);
		r->prev = got;
		break;
	default:
		break;
	}
	if (p->cap_ns != 0 && p->jitter != SX_JITTER_DEVIATION && got > (uint64_t)p->cap_ns)
		FAIL("attempt %u: %llu above the cap %llu", i, (unsigned long long)got,
		    (unsigned long long)p->cap_ns);
}

static double factor_of(uint8_t f)
{
	switch (f & 7) {
	case 0: return 0.0;
	case 1: return 1.0;
	case 2: return 1.0 + (f >> 3) / 32.0;
	case 3: return 2.0;
	case 4: return 1.0 + 1e-9 * (f >> 3);
	case 5: return 1e10;
	case 6: return 1e300;
	default: return 1.0 + (f >> 3);
	}
}

/* A duration: small, 32-bit, any non-negative int64_t, or within 2^16 of INT64_MAX. */
static int64_t scaled(struct fz_in *in)
{
	unsigned sel = (unsigned)fz_take(in, 1);

	switch (sel & 3) {
	case 0: return (int64_t)fz_take(in, 1);
	case 1: return (int64_t)fz_take(in, 4);
	case 2: return (int64_t)(fz_take(in, 8) >> 1);
	default: return INT64_MAX - (int64_t)fz_take(in, 2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_backoff bo, again, untouched;
	struct ref r;
	unsigned count, bad;
	uint64_t nstart;
	uint8_t hdr;

	if (size < 8)
		return 0;
	hdr = (uint8_t)fz_take(&in, 1);
	p.backoff = hdr % 6;
	p.jitter = (hdr / 6) % 5;
	p.base_ns = scaled(&in);
	p.factor = factor_of((uint8_t)fz_take(&in, 1));
	p.cap_ns = (fz_take(&in, 1) & 1) ? scaled(&in) : 0;
	p.deviation = (double)fz_take(&in, 1) / 255.0;
	p.seed = fz_take(&in, 8);
	count = 1 + (unsigned)(fz_take(&in, 2) % 600);
	nstart = fz_take(&in, 1);
	bad = (unsigned)fz_take(&in, 1);

	/* Some policies out of range: init refuses them and writes nothing. */
	if ((bad & 0xf0) == 0xf0) {
		sx_retry_policy q = p;

		switch (bad & 7) {
		case 0: q.factor = 0.5; break;
		case 1: q.factor = NAN; break;
		case 2: q.factor = INFINITY; break;
		case 3: q.deviation = 1.5; break;
		case 4: q.deviation = NAN; break;
		case 5: q.backoff = SX_BACKOFF_DECORRELATED + 1 + (bad >> 3 & 1) * 100; break;
		case 6:
			if (bad & 8)
				q.base_ns = -1 - (int64_t)(bad >> 4 & 7); /* a negative duration */
			else
				q.jitter = -1;
			break;
		default:
			if (bad & 8)
				q.cap_ns = INT64_MIN + (int64_t)(bad >> 4 & 7);
			else
				q.backoff = -1;
			break;
		}
		memset(&untouched, 0xa5, sizeof(untouched));
		bo = untouched;
		if (sx_retry_policy_check(&q) != -EINVAL || sx_backoff_init(&bo, &q) != -EINVAL)
			FAIL("policy %u not refused", bad & 7);
		if (memcmp(&bo, &untouched, sizeof(bo)) != 0)
			FAIL("refused init wrote the iterator");
	}
	if (sx_backoff_init(&bo, &p) != 0 || sx_backoff_init(&again, &p) != 0)
		FAIL("valid policy refused");
	memset(&r, 0, sizeof(r));
	r.rng = p.seed;
	r.prev = p.base_ns;
	r.fa = r.fb = 1;
	/* Huge attempt counts: start the linear curve's count near its end. */
	if (nstart & 0x80) {
		bo.n = again.n = UINT_MAX - (nstart & 0x7f);
		r.n = bo.n;
	}
	for (unsigned i = 1; i <= count; i++) {
		uint64_t d = sx_backoff_next(&bo);

		if (sx_backoff_next(&again) != d)
			FAIL("attempt %u: not deterministic", i);
		check(&p, &r, d, i);
	}
	return 0;
}
