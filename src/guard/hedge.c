/*
 * Hedged calls (strix/hedge.h). A call is a record shared by its attempts and n chains built
 * from public promise parts:
 *
 *   chain 0:  run(attempt 0) -> finally(drop)
 *   chain k:  delay(k * delay_ns) -> then(attempt k) -> finally(drop)      k = 1 .. max_hedges
 *   result:   any(the n finally promises)
 *
 * any settles with the first value and cancels the other chains: a delay not yet over is
 * withdrawn with them, so its attempt never runs; an attempt running is told through its chain's
 * breaker and its value, if it still makes one, is destroyed with its chain. finally runs once
 * for every chain whatever happened (cancel included), so the record's reference count (one per
 * chain and one for the builder) frees it exactly when no attempt can touch it any more.
 *
 * The percentile: a histogram of first-attempt latencies, 8 log-scale buckets per power of two,
 * each an atomic count; `samples` counts the open window, and the sample that fills it takes
 * `recomputing` (a CAS; others go on adding) to walk the histogram, store the new delay and
 * halve every count. Adds racing the halving land before or after it: either is a fair count.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#include <strix/events.h>
#include <strix/hedge.h>

#include "guard/guard.h"

#define NBUCKETS 496 /* 8 exact values below 8, then 8 per power of two from 2^3 to 2^63 */

struct sx_hedge {
	sx_pool *pool;
	int64_t fixed_ns, min_ns;
	double pct;
	uint32_t window, max_hedges;
	sx_retry_budget *budget;
	bool no_deposit;
	sx_events *events;
	const char *name;
	SX__ALIGNED int64_t delay_ns;   /* the delay now */
	uint64_t samples;               /* in the open window */
	uint32_t recomputing;
	sx__counters stats;             /* SX__HEDGE_* slots (guard.h): calls count on every call */
	SX__ALIGNED uint32_t hist[NBUCKETS];
};

struct hcall;
struct attempt {
	struct hcall *c;
	unsigned k;                     /* 0: the first attempt */
};

struct hcall {
	sx_hedge *h;
	sx_step_fn step;
	void *arg;
	uint64_t t0;                    /* CLOCK_MONOTONIC at the call's start */
	uint32_t refs;
	struct attempt att[SX_HEDGE_MAX_HEDGES + 1];
};

static unsigned bucket_of(uint64_t v)
{
	unsigned e;

	if (v < 8)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return 8u + (e - 3u) * 8u + (unsigned)((v >> (e - 3u)) & 7u);
}

/* The upper end of bucket i (the largest value it holds, saturating at INT64_MAX). */
static int64_t bucket_top(unsigned i)
{
	unsigned e, sub;
	uint64_t top;

	if (i < 8)
		return (int64_t)i;
	e = (i - 8u) / 8u + 3u;
	sub = (i - 8u) % 8u;
	if (e >= 62)
		return INT64_MAX;
	top = ((uint64_t)(8u + sub + 1u) << (e - 3u)) - 1u;
	return (int64_t)top;
}

static void recompute(sx_hedge *h)
{
	uint64_t total = 0, want, run = 0;
	int64_t d = h->min_ns;
	unsigned i;

	for (i = 0; i < NBUCKETS; i++)
		total += ck_pr_load_32(&h->hist[i]);
	if (total == 0)
		return;
	want = (uint64_t)(h->pct * (double)total);
	if (want < 1)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		run += ck_pr_load_32(&h->hist[i]);
		if (run >= want) {
			if (bucket_top(i) > d)
				d = bucket_top(i);
			break;
		}
	}
	ck_pr_store_64((uint64_t *)&h->delay_ns, (uint64_t)d);
	for (i = 0; i < NBUCKETS; i++) {
		uint32_t v = ck_pr_load_32(&h->hist[i]);

		if (v > 1)
			ck_pr_sub_32(&h->hist[i], v / 2);
	}
}

static void sample(sx_hedge *h, uint64_t ns)
{
	if (h->fixed_ns > 0)
		return;
	ck_pr_inc_32(&h->hist[bucket_of(ns)]);
	if (ck_pr_faa_64(&h->samples, 1) + 1 < h->window ||
	    ck_pr_load_32(&h->recomputing) != 0 || !ck_pr_cas_32(&h->recomputing, 0, 1))
		return;
	ck_pr_store_64(&h->samples, 0);
	recompute(h);
	ck_pr_store_32(&h->recomputing, 0);
}

int sx_hedge_create(sx_pool *pool, const sx_hedge_opts *opts, sx_hedge **out)
{
	static const sx_hedge_opts defaults = SX_HEDGE_OPTS_INIT;
	const sx_hedge_opts *o = opts != NULL ? opts : &defaults;
	sx_hedge *h;

	if (pool == NULL || out == NULL || !SX__RESERVED_CLEAR(o) || o->delay_ns < 0 ||
	    o->min_delay_ns < 0 || !(o->percentile >= 0.0 && o->percentile < 1.0) ||
	    o->max_hedges > SX_HEDGE_MAX_HEDGES)
		return -EINVAL;
	h = sx__zalloc(sizeof(*h), SX__CACHELINE);
	if (h == NULL)
		return -ENOMEM;
	h->pool = pool;
	h->fixed_ns = o->delay_ns;
	h->min_ns = o->min_delay_ns != 0 ? o->min_delay_ns : INT64_C(1000000);
	h->pct = o->percentile != 0.0 ? o->percentile : 0.95;
	h->window = o->window != 0 ? o->window : 256;
	h->max_hedges = o->max_hedges != 0 ? o->max_hedges : 1;
	h->budget = o->budget;
	h->no_deposit = o->no_deposit;
	h->events = o->events;
	h->name = o->name;
	h->delay_ns = h->fixed_ns > 0 ? h->fixed_ns : h->min_ns;
	*out = h;
	return 0;
}

void sx_hedge_destroy(sx_hedge *h)
{
	if (h != NULL)
		sx__dfree(h, sizeof(*h), SX__CACHELINE);
}

int64_t sx_hedge_delay_ns(const sx_hedge *h)
{
	return h != NULL ? (int64_t)ck_pr_load_64((const uint64_t *)&h->delay_ns) : -EINVAL;
}

int sx_hedge_snapshot(const sx_hedge *h, sx_hedge_metrics *m)
{
	if (h == NULL || m == NULL)
		return -EINVAL;
	*m = (sx_hedge_metrics){ 0 };
	m->calls = sx__count_sum(&h->stats, SX__HEDGE_CALLS);
	m->hedges = sx__count_sum(&h->stats, SX__HEDGE_HEDGES);
	m->refused = sx__count_sum(&h->stats, SX__HEDGE_REFUSED);
	m->hedge_wins = sx__count_sum(&h->stats, SX__HEDGE_WINS);
	m->delay_ns = sx_hedge_delay_ns(h);
	return 0;
}

static void call_put(struct hcall *c)
{
	if (ck_pr_faa_32(&c->refs, (uint32_t)-1) == 1)
		sx__dfree(c, sizeof(*c), SX__SMALL_ALIGN);
}

/* ---- what the pipeline's hedge layer shares with the promise form (guard.h) ----------------- */

sx_pool *sx__hedge_pool(const sx_hedge *h)
{
	return h->pool;
}

unsigned sx__hedge_max(const sx_hedge *h)
{
	return h->max_hedges;
}

int64_t sx__hedge_fixed_ns(const sx_hedge *h)
{
	return h->fixed_ns;
}

bool sx__hedge_deposits(const sx_hedge *h)
{
	return h->budget != NULL && !h->no_deposit;
}

sx__counters *sx__hedge_stats(sx_hedge *h)
{
	return &h->stats;
}

void sx__hedge_sample(sx_hedge *h, uint64_t ns)
{
	sample(h, ns);
}

int sx__hedge_admit(sx_hedge *h, unsigned k)
{
	if (h->budget != NULL && !sx_retry_budget_withdraw(h->budget)) {
		sx__count(&h->stats, SX__HEDGE_REFUSED);
		if (h->events != NULL)
			(void)sx_events_emit(h->events, SX_EVENT_REJECTED, SX_EREJECTED, k, h->name);
		return SX_EREJECTED;
	}
	sx__count(&h->stats, SX__HEDGE_HEDGES);
	if (h->events != NULL)
		(void)sx_events_emit(h->events, SX_EVENT_HEDGE, 0, k, h->name);
	return 0;
}

void sx__hedge_succeeded(sx_hedge *h, bool by_hedge)
{
	if (!h->no_deposit)
		sx_retry_budget_deposit(h->budget);
	if (by_hedge)
		sx__count(&h->stats, SX__HEDGE_WINS);
}

/* Attempt a->k of the call: a hedge first asks the budget; then the user's step runs with the
 * call's argument (the dtor it sets is the chain's). */
static int attempt_step(sx_ctx *ctx, void *last, void **out)
{
	struct attempt *a = ctx->arg;
	struct hcall *c = a->c;
	sx_hedge *h = c->h;
	int rc;

	(void)last;
	if (a->k > 0 && (rc = sx__hedge_admit(h, a->k)) != 0)
		return rc;
	ctx->arg = c->arg;
	rc = c->step(ctx, NULL, out);
	if (a->k == 0)
		sample(h, sx__now_ns() - c->t0);
	if (rc == 0)
		sx__hedge_succeeded(h, a->k > 0 && !sx_ctx_cancelled(ctx));
	return rc;
}

static int drop_step(sx_ctx *ctx, int err, void *value)
{
	(void)err;
	(void)value;
	call_put(ctx->arg);
	return 0;
}

/* One chain: attempt k after k delays (none for k == 0), then the drop. On success *out is the
 * chain's last promise and the chain holds a reference on c. */
static int chain(struct hcall *c, unsigned k, int64_t delay, sx_promise **out)
{
	sx_promise *d = NULL, *a = NULL;
	int rc;

	if (k == 0) {
		rc = sx_promise_run(c->h->pool, attempt_step, &c->att[0], &a);
	} else {
		int64_t when = delay > INT64_MAX / (int64_t)k ? INT64_MAX : delay * (int64_t)k;

		rc = sx_promise_delay(c->h->pool, when, NULL, &d);
		if (rc == 0)
			rc = sx_promise_then(d, attempt_step, &c->att[k], &a);
		if (rc != 0 && d != NULL)
			sx_promise_cancel(d);
		sx_promise_release(d);
	}
	if (rc != 0)
		return rc;
	ck_pr_inc_32(&c->refs);
	rc = sx_promise_finally(a, drop_step, c, out);
	if (rc != 0) {
		/* No drop will run for this chain: its attempt may have started already (the first
		 * at once, a hedge after a short delay), so wait until it has ended or been skipped
		 * before taking back the reference it uses (a join ignores the tripped breaker and
		 * helps on a worker; a pool that stopped meanwhile leaves a poll). */
		(void)sx_promise_cancel(a);
		if (sx__promise_join(a) == -ESHUTDOWN)
			while (!sx_promise_settled(a))
				sched_yield();
		ck_pr_dec_32(&c->refs);
	}
	sx_promise_release(a);
	return rc;
}

int sx_hedge_run(sx_hedge *h, sx_step_fn step, void *arg, sx_promise **out)
{
	sx_promise *list[SX_HEDGE_MAX_HEDGES + 1];
	struct hcall *c;
	int64_t delay;
	unsigned n = 0, i;
	bool first = false;
	int rc = 0;

	if (h == NULL || step == NULL || out == NULL)
		return -EINVAL;
	c = sx__zalloc(sizeof(*c), SX__SMALL_ALIGN);
	if (c == NULL)
		return -ENOMEM;
	c->h = h;
	c->step = step;
	c->arg = arg;
	c->refs = 1;
	c->t0 = sx__now_ns();
	for (i = 0; i <= h->max_hedges; i++)
		c->att[i] = (struct attempt){ c, i };
	delay = sx_hedge_delay_ns(h);
	/* The hedges' delays first: if one cannot be made, nothing has run yet. */
	for (i = 1; i <= h->max_hedges && rc == 0; i++)
		if ((rc = chain(c, i, delay, &list[i])) == 0)
			n = i;
	if (rc == 0 && (rc = chain(c, 0, delay, &list[0])) == 0)
		first = true;
	if (rc == 0)
		rc = sx_promise_any(h->pool, list, h->max_hedges + 1u, out);
	if (rc != 0) {
		/* Cancel what was built: a delay shorter than this path, or the first attempt, may
		 * have started a step already, which the cancel then tells. */
		for (i = 1; i <= n; i++)
			sx_promise_cancel(list[i]);
		if (first)
			sx_promise_cancel(list[0]);
	} else {
		sx__count(&h->stats, SX__HEDGE_CALLS);
	}
	for (i = 1; i <= n; i++)
		sx_promise_release(list[i]);
	if (first)
		sx_promise_release(list[0]);
	call_put(c);
	return rc;
}
