/*
 * Adaptive concurrency limits (strix/adaptive.h has the algorithm and its defaults).
 *
 * Words, each changed by atomic operations only:
 *   word      bits 32..63 the limit, bits 0..31 the calls in flight: acquire is one CAS that
 *             adds one to the count while it is below the limit, release one CAS that takes one
 *             off (refusing to go below zero), so the count never passes a limit it was admitted
 *             under. A window's close changes the limit bits by CAS, keeping the count.
 *   win       the open window's samples: bits 48..63 how many, bits 0..47 their latencies' sum
 *             (each sample at most 2^32 ns, so 2^16 of them fit). One add per sample, and the
 *             closer takes both halves at once by an exchange, so no sample is split between
 *             windows.
 *   drops     the open window's overload releases; peak the most in flight seen by a release of
 *             it. A release racing the close may land in the next window: a sample is late by
 *             one window at most, never lost twice or counted twice.
 *   closing   1 while one thread closes a window: the fractional estimate, the no-load
 *             latency and the probe schedule (est, min_rtt, since_probe, probe) are that
 *             thread's alone. A release that finds another
 *             closing goes on; the next release past the thresholds closes the window.
 * Only every window_samples-th sample of a window (by the count its add returned, so exactly one
 * release sees each multiple) and every overload release read the clock to see whether the
 * window is due: a clock read per window_samples calls, not per call.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#include <strix/adaptive.h>

#include "guard/guard.h"

#define INFLIGHT_MASK UINT64_C(0xffffffff)
#define LIMIT_SHIFT 32
#define WIN_ONE (UINT64_C(1) << 48)
#define WIN_SUM_MASK (WIN_ONE - 1)
#define SAMPLE_MAX_NS (UINT64_C(1) << 32)
#define WINDOW_SAMPLES_MAX 60000u /* well below 2^16: room for racing adds past the close */

enum { PROBE_NONE, PROBE_DRAIN, PROBE_MEASURE };

struct sx_adaptive {
	SX__ALIGNED uint64_t word;      /* limit << 32 | in flight */
	SX__ALIGNED uint64_t win;       /* samples << 48 | their latency sum */
	uint32_t drops;                 /* overload releases in the open window */
	uint32_t peak;                  /* most in flight seen by a release in the open window */
	uint64_t win_start;             /* clock when the open window opened */
	SX__ALIGNED uint32_t closing;   /* 1: a thread is closing the window */
	/* the closer's: */
	double est;                     /* the limit with its fraction */
	double min_rtt;                 /* no-load latency estimate, ns (0: none yet) */
	uint32_t since_probe;           /* windows closed since the last probe */
	unsigned probe;                 /* PROBE_*: the open window's part in a probe */
	uint64_t rtt_ns, min_rtt_ns;    /* the last close's figures, for snapshots */
	uint64_t rejected, n_drops, windows;

	/* the options, read only */
	uint32_t min_limit, max_limit, queue_size, window_samples, probe_windows;
	double tolerance, smoothing, backoff;
	uint64_t window_ns;
	int (*classify)(int result, void *arg);
	void *classify_arg;
	sx_clock clock;
};

static int classify_default(int result, void *arg)
{
	(void)arg;
	if (result == 0)
		return SX_ADAPTIVE_SAMPLE;
	if (result == -ETIMEDOUT || result == SX_EREJECTED || result == SX_ECIRCUIT_OPEN ||
	    result == SX_ERATE_LIMITED)
		return SX_ADAPTIVE_DROP;
	return SX_ADAPTIVE_IGNORE;
}

static uint32_t or_default(uint32_t v, uint32_t d)
{
	return v != 0 ? v : d;
}

static double or_default_real(double v, double d)
{
	return v != 0.0 ? v : d;
}

int sx_adaptive_create(const sx_adaptive_opts *opts, sx_adaptive **out)
{
	static const sx_adaptive_opts defaults = SX_ADAPTIVE_OPTS_INIT;
	const sx_adaptive_opts *o = opts != NULL ? opts : &defaults;
	sx_adaptive *al;
	uint32_t lo, hi, init;
	double tol, sm, bo;

	if (out == NULL || !SX__RESERVED_CLEAR(o) || o->window_ns < 0 ||
	    o->window_samples > WINDOW_SAMPLES_MAX || (o->clock != NULL && o->clock->now_ns == NULL))
		return -EINVAL;
	lo = or_default(o->min_limit, 1);
	hi = or_default(o->max_limit, 1000);
	init = or_default(o->initial_limit, 20);
	if (o->max_limit == 0 && hi < lo)
		hi = lo; /* a min_limit above the default max, with no max given */
	if (o->initial_limit == 0)
		init = init < lo ? lo : init > hi ? hi : init;
	tol = or_default_real(o->tolerance, 1.5);
	sm = or_default_real(o->smoothing, 0.2);
	bo = or_default_real(o->backoff, 0.9);
	/* The negated comparisons also refuse NaN. */
	if (hi > SX_ADAPTIVE_MAX_LIMIT || lo > hi || init < lo || init > hi || !(tol >= 1.0) ||
	    !(tol < 1e6) || !(sm > 0.0 && sm <= 1.0) || !(bo > 0.0 && bo < 1.0))
		return -EINVAL;
	al = sx__zalloc(sizeof(*al), SX__CACHELINE);
	if (al == NULL)
		return -ENOMEM;
	al->min_limit = lo;
	al->max_limit = hi;
	al->queue_size = or_default(o->queue_size, 4);
	al->window_samples = or_default(o->window_samples, 10);
	al->probe_windows = o->probe_windows == SX_ADAPTIVE_NO_PROBE ? 0 :
	    or_default(o->probe_windows, 100);
	al->tolerance = tol;
	al->smoothing = sm;
	al->backoff = bo;
	al->window_ns = o->window_ns != 0 ? (uint64_t)o->window_ns : UINT64_C(10000000);
	al->classify = o->classify != NULL ? o->classify : classify_default;
	al->classify_arg = o->classify_arg;
	al->clock = o->clock != NULL ? *o->clock : sx_clock_monotonic;
	al->est = init;
	al->word = (uint64_t)init << LIMIT_SHIFT;
	al->win_start = al->clock.now_ns(al->clock.ctx);
	*out = al;
	return 0;
}

void sx_adaptive_destroy(sx_adaptive *al)
{
	if (al != NULL)
		sx__dfree(al, sizeof(*al), SX__CACHELINE);
}

int sx_adaptive_acquire(sx_adaptive *al)
{
	uint64_t w;

	if (SX__UNLIKELY(al == NULL))
		return -EINVAL;
	w = ck_pr_load_64(&al->word);
	for (;;) {
		if ((w & INFLIGHT_MASK) >= w >> LIMIT_SHIFT) {
			ck_pr_inc_64(&al->rejected);
			return SX_EREJECTED;
		}
		/* On failure the CAS leaves the word it found in w. */
		if (ck_pr_cas_64_value(&al->word, w, w + 1, &w))
			return 0;
	}
}

/* Bound est to the options' range. */
static double clamp_limit(const sx_adaptive *al, double est)
{
	return est < al->min_limit ? al->min_limit : est > al->max_limit ? al->max_limit : est;
}

/* The next estimate from a closed window's figures (the formula in strix/adaptive.h). Only the
 * thread holding `closing` runs this. Returns the limit the word is to hold: the estimate, or
 * half of it while a probe runs. A probe is two windows at half the limit: the first lets the
 * calls admitted under the full limit drain (its figures judge nothing), the second measures
 * the latency at the lower load, which becomes min_rtt. */
static uint32_t next_limit(sx_adaptive *al, uint64_t samples, uint64_t sum, uint32_t drops,
    uint32_t peak)
{
	double est = al->est, rtt = samples > 0 ? (double)sum / (double)samples : 0.0, g;
	unsigned phase = al->probe;

	if (samples > 0) {
		if ((phase == PROBE_MEASURE && rtt > 0.0) || al->min_rtt == 0.0 || rtt < al->min_rtt)
			al->min_rtt = rtt;
		ck_pr_store_64(&al->rtt_ns, (uint64_t)(rtt + 0.5));
		ck_pr_store_64(&al->min_rtt_ns, (uint64_t)(al->min_rtt + 0.5));
	}
	if (drops > 0) {
		est *= al->backoff;
	} else if (phase == PROBE_NONE && samples > 0 && (double)peak >= est / 2.0) {
		g = rtt > 0.0 ? al->tolerance * al->min_rtt / rtt : 1.0;
		g = g < 0.5 ? 0.5 : g > 1.0 ? 1.0 : g;
		est = est * (1.0 - al->smoothing) + (est * g + al->queue_size) * al->smoothing;
	}
	al->est = est = clamp_limit(al, est);
	if (phase == PROBE_DRAIN) {
		al->probe = PROBE_MEASURE;
	} else if (phase == PROBE_MEASURE) {
		al->probe = PROBE_NONE;
	} else if (al->probe_windows != 0 && ++al->since_probe >= al->probe_windows) {
		al->since_probe = 0;
		al->probe = PROBE_DRAIN;
	}
	if (al->probe != PROBE_NONE)
		est = clamp_limit(al, est / 2.0);
	return (uint32_t)(est + 0.5);
}

/* Close the open window if it is due (releases of it so far, window_ns passed) and nobody else
 * is closing it. */
static void maybe_close(sx_adaptive *al, uint64_t releases)
{
	uint64_t now, w, fresh;
	uint32_t drops, peak, limit;

	if (releases < al->window_samples)
		return;
	now = al->clock.now_ns(al->clock.ctx);
	/* A window holding near 2^16 samples closes whatever the time: its count must not wrap. */
	if ((now - ck_pr_load_64(&al->win_start) < al->window_ns && releases < WINDOW_SAMPLES_MAX) ||
	    ck_pr_load_32(&al->closing) != 0 || !ck_pr_cas_32(&al->closing, 0, 1))
		return;
	ck_pr_fence_acquire(); /* the previous closer's state, published by its release */
	w = ck_pr_fas_64(&al->win, 0);
	drops = ck_pr_fas_32(&al->drops, 0);
	peak = ck_pr_fas_32(&al->peak, 0);
	ck_pr_store_64(&al->win_start, now);
	limit = next_limit(al, w / WIN_ONE, w & WIN_SUM_MASK, drops, peak);
	w = ck_pr_load_64(&al->word);
	do {
		fresh = ((uint64_t)limit << LIMIT_SHIFT) | (w & INFLIGHT_MASK);
	} while (!ck_pr_cas_64_value(&al->word, w, fresh, &w));
	ck_pr_inc_64(&al->windows);
	ck_pr_fence_release();
	ck_pr_store_32(&al->closing, 0);
}

int sx_adaptive_release(sx_adaptive *al, int result, int64_t latency_ns)
{
	uint64_t w, lat, releases;
	uint32_t inflight;
	int kind;

	if (SX__UNLIKELY(al == NULL || (latency_ns < 0 && latency_ns != SX_ADAPTIVE_UNTIMED)))
		return -EINVAL;
	w = ck_pr_load_64(&al->word);
	do {
		if ((w & INFLIGHT_MASK) == 0)
			return -EINVAL;
	} while (!ck_pr_cas_64_value(&al->word, w, w - 1, &w));
	inflight = (uint32_t)(w & INFLIGHT_MASK); /* in flight with this call, before it ended */
	if (inflight > ck_pr_load_32(&al->peak)) {
		uint32_t p = ck_pr_load_32(&al->peak);

		while (inflight > p && !ck_pr_cas_32_value(&al->peak, p, inflight, &p))
			;
	}
	kind = al->classify(result, al->classify_arg);
	if (kind == SX_ADAPTIVE_SAMPLE && latency_ns == SX_ADAPTIVE_UNTIMED)
		return 0;
	if (kind == SX_ADAPTIVE_SAMPLE) {
		lat = (uint64_t)latency_ns < SAMPLE_MAX_NS ? (uint64_t)latency_ns : SAMPLE_MAX_NS;
		w = (ck_pr_faa_64(&al->win, WIN_ONE + lat) + WIN_ONE) / WIN_ONE;
		if (w % al->window_samples != 0 && w < WINDOW_SAMPLES_MAX)
			return 0; /* not a sample that looks at the clock */
		releases = w + ck_pr_load_32(&al->drops);
	} else if (kind == SX_ADAPTIVE_DROP) {
		ck_pr_inc_64(&al->n_drops);
		releases = ck_pr_faa_32(&al->drops, 1) + 1u + ck_pr_load_64(&al->win) / WIN_ONE;
	} else {
		return 0;
	}
	maybe_close(al, releases);
	return 0;
}

uint32_t sx_adaptive_limit(const sx_adaptive *al)
{
	return al != NULL ? (uint32_t)(ck_pr_load_64(&al->word) >> LIMIT_SHIFT) : 0;
}

int sx_adaptive_snapshot(const sx_adaptive *al, sx_adaptive_metrics *m)
{
	uint64_t w;

	if (al == NULL || m == NULL)
		return -EINVAL;
	w = ck_pr_load_64(&al->word);
	*m = (sx_adaptive_metrics){ 0 };
	m->limit = (uint32_t)(w >> LIMIT_SHIFT);
	m->inflight = (uint32_t)(w & INFLIGHT_MASK);
	m->rejected = ck_pr_load_64(&al->rejected);
	m->drops = ck_pr_load_64(&al->n_drops);
	m->windows = ck_pr_load_64(&al->windows);
	m->rtt_ns = ck_pr_load_64(&al->rtt_ns);
	m->min_rtt_ns = ck_pr_load_64(&al->min_rtt_ns);
	return 0;
}
