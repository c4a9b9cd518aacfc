/*
 * Fault injection (strix/chaos.h). Every field a draw reads is its own atomic word, so that
 * sx_chaos_set and sx_chaos_enable can change them under running draws without a lock: a draw
 * sees each field either before or after a change. The draw counter is the generator's state:
 * draw k hashes seed + k (splitmix64's finalizer), and its 64 bits are cut into three 21-bit
 * uniforms, one per fault, compared with the rates in units of 2^-21.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#include <strix/chaos.h>

#include "guard/guard.h"

#define RATE_BITS 21
#define RATE_ONE (UINT32_C(1) << RATE_BITS)

struct sx_chaos {
	SX__ALIGNED uint32_t on;        /* read first by every draw */
	uint32_t error_share, latency_share, outcome_share; /* rates, in 2^-21 */
	int32_t error, outcome;
	uint64_t latency_ns;
	uint64_t seed;
	SX__ALIGNED uint64_t draws;     /* draws made: the generator's counter */
	uint64_t errors, delays, outcomes;
	sx_clock clock;
};

static bool rate_ok(double r)
{
	return r >= 0.0 && r <= 1.0; /* false for NaN too */
}

static uint32_t share_of(double r)
{
	return (uint32_t)lrint(r * RATE_ONE);
}

static bool opts_ok(const sx_chaos_opts *o)
{
	return o != NULL && SX__RESERVED_CLEAR(o) && rate_ok(o->error_rate) &&
	    rate_ok(o->latency_rate) && rate_ok(o->outcome_rate) && o->error <= 0 &&
	    o->outcome <= 0 && o->latency_ns >= 0;
}

static void store_opts(sx_chaos *ch, const sx_chaos_opts *o)
{
	ck_pr_store_32((uint32_t *)&ch->error, (uint32_t)(o->error != 0 ? o->error : -EIO));
	ck_pr_store_32((uint32_t *)&ch->outcome, (uint32_t)o->outcome);
	ck_pr_store_64(&ch->latency_ns, (uint64_t)o->latency_ns);
	ck_pr_store_32(&ch->error_share, share_of(o->error_rate));
	ck_pr_store_32(&ch->latency_share, share_of(o->latency_rate));
	ck_pr_store_32(&ch->outcome_share, share_of(o->outcome_rate));
	ck_pr_store_32(&ch->on, !o->disabled);
}

int sx_chaos_create(const sx_chaos_opts *opts, sx_chaos **out)
{
	sx_chaos *ch;

	if (out == NULL || !opts_ok(opts) || (opts->clock != NULL && opts->clock->now_ns == NULL))
		return -EINVAL;
	ch = sx__zalloc(sizeof(*ch), SX__CACHELINE);
	if (ch == NULL)
		return -ENOMEM;
	ch->seed = opts->seed;
	ch->clock = opts->clock != NULL ? *opts->clock : sx_clock_monotonic;
	store_opts(ch, opts);
	*out = ch;
	return 0;
}

void sx_chaos_destroy(sx_chaos *ch)
{
	if (ch != NULL)
		sx__dfree(ch, sizeof(*ch), SX__CACHELINE);
}

int sx_chaos_set(sx_chaos *ch, const sx_chaos_opts *opts)
{
	if (ch == NULL || !opts_ok(opts))
		return -EINVAL;
	store_opts(ch, opts);
	return 0;
}

int sx_chaos_enable(sx_chaos *ch, bool on)
{
	if (ch == NULL)
		return -EINVAL;
	ck_pr_store_32(&ch->on, on);
	return 0;
}

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

int sx_chaos_draw(sx_chaos *ch, sx_chaos_fault *f)
{
	uint64_t r;
	int hit = 0;

	if (SX__UNLIKELY(ch == NULL || f == NULL))
		return -EINVAL;
	*f = (sx_chaos_fault){ 0 };
	if (SX__LIKELY(ck_pr_load_32(&ch->on) == 0))
		return 0;
	r = mix(ch->seed + ck_pr_faa_64(&ch->draws, 1) * UINT64_C(0x9e3779b97f4a7c15));
	if ((uint32_t)(r & (RATE_ONE - 1)) < ck_pr_load_32(&ch->error_share)) {
		f->error = (int)ck_pr_load_32((uint32_t *)&ch->error);
		ck_pr_inc_64(&ch->errors);
		hit = 1;
	}
	if ((uint32_t)((r >> RATE_BITS) & (RATE_ONE - 1)) < ck_pr_load_32(&ch->latency_share)) {
		f->latency_ns = (int64_t)ck_pr_load_64(&ch->latency_ns);
		ck_pr_inc_64(&ch->delays);
		hit = 1;
	}
	if ((uint32_t)((r >> (2 * RATE_BITS)) & (RATE_ONE - 1)) <
	    ck_pr_load_32(&ch->outcome_share)) {
		f->replace = true;
		f->outcome = (int)ck_pr_load_32((uint32_t *)&ch->outcome);
		ck_pr_inc_64(&ch->outcomes);
		hit = 1;
	}
	return hit;
}

int sx_chaos_snapshot(const sx_chaos *ch, sx_chaos_metrics *m)
{
	if (ch == NULL || m == NULL)
		return -EINVAL;
	*m = (sx_chaos_metrics){ 0 };
	m->draws = ck_pr_load_64(&ch->draws);
	m->errors = ck_pr_load_64(&ch->errors);
	m->delays = ck_pr_load_64(&ch->delays);
	m->outcomes = ck_pr_load_64(&ch->outcomes);
	return 0;
}

/* The pipeline layer's delay (guard/guard.h): ns on ch's clock, cut short by stop (the
 * interruptible pause the retries wait with). */
int sx__chaos_delay(sx_chaos *ch, int64_t ns, sx_breaker *stop)
{
	return ns > 0 ? sx__pause(&ch->clock, (uint64_t)ns, stop) : 0;
}
