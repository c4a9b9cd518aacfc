/*
 * Retry: the backoff iterator, the retry budget and the blocking retry loop. The formulas are in
 * include/strix/retry.h; the decision "one more attempt, after how long" (sx__retry_next) is
 * shared with the promise form, which waits on timers instead of sleeping.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <time.h>

#include <ck_pr.h>

#include <strix/breaker.h>
#include <strix/retry.h>

#include "cancel/cancel.h"

/* ---- policy and backoff --------------------------------------------------------------------- */

int sx_retry_policy_check(const sx_retry_policy *p)
{
	if (p == NULL || !SX__RESERVED_CLEAR(p))
		return -EINVAL;
	if (p->backoff < SX_BACKOFF_NONE || p->backoff > SX_BACKOFF_DECORRELATED)
		return -EINVAL;
	if (p->jitter < SX_JITTER_NONE || p->jitter > SX_JITTER_DECORRELATED)
		return -EINVAL;
	if (p->base_ns < 0 || p->cap_ns < 0)
		return -EINVAL;
	if (isnan(p->factor) || (p->factor != 0.0 && p->factor < 1.0) || isinf(p->factor))
		return -EINVAL;
	if (isnan(p->deviation) || p->deviation < 0.0 || p->deviation > 1.0)
		return -EINVAL;
	if (p->clock != NULL && p->clock->now_ns == NULL)
		return -EINVAL;
	return 0;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double unit(uint64_t *s)
{
	return (double)(splitmix64(s) >> 11) * 0x1p-53;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Truncate to ns, saturating (NaN and negatives give 0). */
static uint64_t to_ns(double d)
{
	if (!(d > 0.0))
		return 0;
	if (d >= 0x1p64)
		return UINT64_MAX;
	return (uint64_t)d;
}

/* Uniform in [lo, hi) (lo when hi <= lo). */
static uint64_t between(uint64_t *rng, uint64_t lo, uint64_t hi)
{
	double u = unit(rng);

	if (hi <= lo)
		return lo;
	return sat_add(lo, to_ns((double)(hi - lo) * u));
}

int sx_backoff_init(sx_backoff *bo, const sx_retry_policy *policy)
{
	int rc;

	if (bo == NULL)
		return -EINVAL;
	if ((rc = sx_retry_policy_check(policy)) != 0)
		return rc;
	bo->policy = policy;
	bo->rng = policy->seed;
	bo->prev = (uint64_t)policy->base_ns;
	bo->fib_a = 1;
	bo->fib_b = 1;
	bo->mult = 1.0;
	bo->n = 0;
	return 0;
}

uint64_t sx_backoff_next(sx_backoff *bo)
{
	const sx_retry_policy *p;
	uint64_t base, cap, b = 0, f;

	if (bo == NULL || (p = bo->policy) == NULL)
		return 0;
	base = (uint64_t)p->base_ns;
	cap = (uint64_t)p->cap_ns;
	if (bo->n < UINT_MAX) /* the linear curve stays at its largest, never wraps to 0 */
		bo->n++;
	switch (p->backoff) {
	case SX_BACKOFF_CONSTANT:
		b = base;
		break;
	case SX_BACKOFF_LINEAR:
		b = sat_mul(base, bo->n);
		break;
	case SX_BACKOFF_EXPONENTIAL:
		b = to_ns((double)base * bo->mult);
		if (bo->mult < 0x1p64) /* past that every product saturates anyway */
			bo->mult *= p->factor == 0.0 ? 2.0 : p->factor;
		break;
	case SX_BACKOFF_FIBONACCI:
		b = sat_mul(base, bo->fib_a);
		f = sat_add(bo->fib_a, bo->fib_b);
		bo->fib_a = bo->fib_b;
		bo->fib_b = f;
		break;
	case SX_BACKOFF_DECORRELATED:
		b = between(&bo->rng, base, sat_mul(bo->prev, 3));
		if (cap != 0 && b > cap)
			b = cap;
		bo->prev = b;
		return b;
	default:
		break;
	}
	if (cap != 0 && b > cap)
		b = cap;
	switch (p->jitter) {
	case SX_JITTER_FULL:
		return to_ns((double)b * unit(&bo->rng));
	case SX_JITTER_EQUAL:
		return b / 2 + to_ns((double)(b / 2) * unit(&bo->rng));
	case SX_JITTER_DEVIATION:
		return to_ns((double)b * (1.0 - p->deviation + 2.0 * p->deviation * unit(&bo->rng)));
	case SX_JITTER_DECORRELATED:
		f = between(&bo->rng, base, sat_mul(bo->prev, 3));
		bo->prev = f < b ? f : b;
		return bo->prev;
	default:
		return b;
	}
}

/* ---- budget --------------------------------------------------------------------------------- */

#define MAX_TOKENS (UINT64_C(1) << 40)

int sx_retry_budget_init(sx_retry_budget *b, uint64_t max_tokens, double per_success)
{
	if (b == NULL || max_tokens == 0 || max_tokens > MAX_TOKENS || isnan(per_success) ||
	    per_success < 0.0 || per_success > (double)max_tokens)
		return -EINVAL;
	b->max_milli = (int64_t)max_tokens * 1000;
	b->refill_milli = (int64_t)(per_success * 1000.0 + 0.5);
	ck_pr_store_64((uint64_t *)&b->milli, (uint64_t)b->max_milli);
	return 0;
}

bool sx_retry_budget_withdraw(sx_retry_budget *b)
{
	uint64_t v;

	if (b == NULL)
		return false;
	v = ck_pr_load_64((uint64_t *)&b->milli);
	do {
		if ((int64_t)v < 1000)
			return false;
	} while (!ck_pr_cas_64_value((uint64_t *)&b->milli, v, v - 1000, &v));
	return true;
}

void sx_retry_budget_deposit(sx_retry_budget *b)
{
	uint64_t v, n;

	if (b == NULL)
		return;
	v = ck_pr_load_64((uint64_t *)&b->milli);
	do {
		if ((int64_t)v >= b->max_milli || b->refill_milli == 0)
			return;
		n = (uint64_t)((int64_t)v + b->refill_milli);
		if ((int64_t)n > b->max_milli)
			n = (uint64_t)b->max_milli;
	} while (!ck_pr_cas_64_value((uint64_t *)&b->milli, v, n, &v));
}

uint64_t sx_retry_budget_tokens(const sx_retry_budget *b)
{
	int64_t v;

	if (b == NULL)
		return 0;
	v = (int64_t)ck_pr_load_64((const uint64_t *)&b->milli);
	return v > 0 ? (uint64_t)v / 1000 : 0;
}

/* ---- the decision ----------------------------------------------------------------------------- */

bool sx__retry_next(const sx_retry_policy *p, sx_backoff *bo, int err, unsigned attempt,
    uint64_t start_ns, int64_t override, uint64_t *delay)
{
	uint64_t d, now;

	if (p->max_attempts != 0 && attempt >= p->max_attempts)
		return false;
	if (p->retry_if != NULL && !p->retry_if(err, p->retry_if_ctx))
		return false;
	d = sx_backoff_next(bo);
	if (override >= 0)
		d = (uint64_t)override;
	/* A clock that went back (a virtual one reset) counts as no time elapsed, not 2^64. */
	if (p->max_elapsed_ns > 0 && (now = sx__policy_now(p),
	    sat_add(now > start_ns ? now - start_ns : 0, d) >= (uint64_t)p->max_elapsed_ns))
		return false;
	if (p->budget != NULL && !sx_retry_budget_withdraw(p->budget))
		return false;
	*delay = d;
	return true;
}

/* ---- the blocking form ------------------------------------------------------------------------ */

struct sx_retrier {
	unsigned iteration;
	bool stopped;
	int64_t delay; /* -1: the policy's */
};

unsigned sx_retrier_iteration(const sx_retrier *r)
{
	return r != NULL ? r->iteration : 0;
}

void sx_retrier_stop(sx_retrier *r)
{
	if (r != NULL)
		r->stopped = true;
}

int sx_retrier_set_delay(sx_retrier *r, int64_t ns)
{
	if (r == NULL || ns < 0)
		return -EINVAL;
	r->delay = ns;
	return 0;
}

int sx__pause(const sx_clock *clock, uint64_t d, sx_breaker *stop)
{
	struct timespec ts;
	uint64_t until;

	if (clock != NULL && clock->sleep_ns != NULL) {
		clock->sleep_ns(clock->ctx, d > INT64_MAX ? INT64_MAX : (int64_t)d);
		return stop != NULL ? sx_breaker_err(stop) : 0;
	}
	if (stop != NULL) {
		while (d > 0) { /* sx_breaker_wait takes a signed timeout */
			int64_t step = d > INT64_MAX ? INT64_MAX : (int64_t)d;

			if (sx_breaker_wait(stop, step) == 0)
				return sx_breaker_err(stop);
			d -= (uint64_t)step;
		}
		return sx_breaker_err(stop);
	}
	if (d == 0)
		return 0;
	until = sat_add(sx__now_ns(), d);
	ts.tv_sec = (time_t)(until / 1000000000u);
	ts.tv_nsec = (long)(until % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return 0;
}

int sx_retry(int (*fn)(sx_retrier *r, void *arg), void *arg, const sx_retry_policy *policy,
    sx_breaker *stop)
{
	static const sx_retry_policy no_limits = SX_RETRY_POLICY_INIT;
	sx_retrier r = { 0, false, -1 };
	sx_backoff bo;
	uint64_t start, delay;
	int rc;

	if (policy == NULL)
		policy = &no_limits;
	if (fn == NULL || sx_backoff_init(&bo, policy) != 0)
		return -EINVAL;
	start = sx__policy_now(policy);
	for (;;) {
		int64_t override;

		if (stop != NULL && (rc = sx_breaker_err(stop)) != 0)
			return rc;
		r.iteration++;
		rc = fn(&r, arg);
		if (rc == 0) {
			if (policy->budget != NULL)
				sx_retry_budget_deposit(policy->budget);
			return 0;
		}
		if (r.stopped)
			return rc;
		override = r.delay;
		r.delay = -1;
		if (!sx__retry_next(policy, &bo, rc, r.iteration, start, override, &delay))
			return rc;
		if ((rc = sx__pause(policy->clock, delay, stop)) != 0)
			return rc;
	}
}
