/**
 * @file
 * <strix/adaptive.h>: the declarations of the adaptive concurrency limit (group strix_adaptive).
 *
 * @defgroup strix_adaptive Adaptive concurrency limit
 * @ingroup strix
 *
 * strix adaptive limits - a bulkhead whose limit follows the latency and the overload errors of
 * the calls it admits: the gradient algorithm of Netflix's concurrency-limits (its "Gradient"
 * form, judged against a no-load latency relearned by probes), with the multiplicative decrease
 * of AIMD on overload errors.
 *
 * sx_adaptive_acquire admits a call while fewer than the current limit are in flight (one CAS on
 * one word that holds the limit and the count in flight); sx_adaptive_release ends it and reports
 * its result and latency. Releases are gathered into windows: a window closes at the first
 * release that finds window_ns elapsed since it opened, among its overload releases and every
 * window_samples-th of its samples (so it holds at least window_samples releases, and the clock
 * is read once per window_samples calls). The closing thread computes the next limit from the window's average latency (rtt) and
 * the no-load latency (min_rtt: the least window rtt since the last probe):
 *
 *     overload errors in the window:  limit = limit * backoff
 *     else, if the most in flight during the window stayed under limit / 2 (the callers, not
 *     the backend, limited the load): the limit stays (no evidence to grow on)
 *     else:  gradient = clamp(tolerance * min_rtt / rtt, 0.5, 1)
 *            limit = limit * (1 - smoothing) + (limit * gradient + queue_size) * smoothing
 *     and the limit is kept within [min_limit, max_limit].
 *
 * With latencies at the no-load level (gradient 1) the limit grows by queue_size * smoothing
 * per window; once the backend queues (rtt past tolerance times min_rtt) it shrinks, and it
 * settles where rtt = tolerance * min_rtt / (1 - queue_size / limit): about tolerance times the
 * concurrency the backend serves at its no-load latency, plus queue_size. A baseline that
 * followed the loaded latency would drift up with it (the limit raises the latency it is judged
 * by), so min_rtt is relearned by a probe instead: every probe_windows windows, two windows admit
 * at most half the limit - the first lets the calls admitted before drain, the second's rtt
 * becomes the new min_rtt - and neither changes the limit, which is restored after them (only
 * overload errors still back it off). A probe that still finds the backend queueing (a limit
 * above twice what it serves) relearns a higher min_rtt, which lets the limit settle at three
 * quarters of where it was: probes walk an over-high limit down. Results are classified (opts.classify): success (a latency
 * sample), overload (the backend could not keep up: -ETIMEDOUT, SX_EREJECTED, SX_ECIRCUIT_OPEN,
 * SX_ERATE_LIMITED by default; counts as a drop) or ignored (any other error: a fast failure
 * says nothing about capacity). Time comes from the clock in the options: a virtual clock makes
 * tests deterministic.
 *
 * Defaults (zero in the options): initial_limit 20, min_limit 1, max_limit 1000, tolerance 1.5,
 * smoothing 0.2, queue_size 4, backoff 0.9, window_ns 10 ms, window_samples 10, probe_windows
 * 100 (a probe about once a second at full load).
 * @{
 */
#ifndef STRIX_ADAPTIVE_H
#define STRIX_ADAPTIVE_H

#include <stdint.h>

#include <strix/error.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An adaptive concurrency limit: library-allocated (sx_adaptive_create / _destroy). */
typedef struct sx_adaptive sx_adaptive;

#define SX_ADAPTIVE_MAX_LIMIT (1u << 30) /**< max_limit, at most */
#define SX_ADAPTIVE_NO_PROBE UINT32_MAX    /**< probe_windows: never probe */
#define SX_ADAPTIVE_UNTIMED INT64_C(-1)    /**< sx_adaptive_release: no latency measured */

/** What a release's result says (opts.classify). */
enum sx_adaptive_outcome {
	SX_ADAPTIVE_SAMPLE = 0,   /**< a success: its latency is a sample */
	SX_ADAPTIVE_DROP = 1,     /**< an overload error: the limit backs off */
	SX_ADAPTIVE_IGNORE = 2    /**< neither: only the count in flight changes */
};

/** Options; zero fields take the defaults named in the file comment. */
typedef struct sx_adaptive_opts {
	uint32_t initial_limit;   /**< the limit at create, within [min_limit, max_limit] */
	uint32_t min_limit;       /**< the limit never goes below (>= 1) */
	uint32_t max_limit;       /**< ... nor above (<= SX_ADAPTIVE_MAX_LIMIT) */
	double tolerance;         /**< rtt may reach min_rtt * tolerance before the limit shrinks
	                               (>= 1) */
	double smoothing;         /**< weight of a window's estimate in the limit, (0, 1] */
	uint32_t queue_size;      /**< calls allowed to queue beyond the estimate (the growth step) */
	double backoff;           /**< the limit's factor on overload, (0, 1) */
	int64_t window_ns;        /**< a window lasts at least this long (> 0) */
	uint32_t window_samples;  /**< ... and holds at least this many releases (1 .. 60000) */
	uint32_t probe_windows;   /**< windows between probes; SX_ADAPTIVE_NO_PROBE: never (min_rtt
	                               is then the least rtt ever seen) */
	/** Classifies a release's result (enum sx_adaptive_outcome); NULL: the default above. Must
	 * not block; called on the releasing thread. */
	int (*classify)(int result, void *arg);
	void *classify_arg;       /**< passed to classify */
	const sx_clock *clock;    /**< NULL: CLOCK_MONOTONIC */
	uint64_t reserved[4];     /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_adaptive_opts;

/** Every field zero: every default. */
#if SX_DESIGNATED_INIT
#define SX_ADAPTIVE_OPTS_INIT { .initial_limit = 0 }
#else
#define SX_ADAPTIVE_OPTS_INIT { 0, 0, 0, 0.0, 0.0, 0, 0.0, 0, 0, 0, NULL, NULL, NULL, {} }
#endif

/** A snapshot of an adaptive limit (sx_adaptive_snapshot). */
typedef struct sx_adaptive_metrics {
	uint32_t limit;           /**< the current limit */
	uint32_t inflight;        /**< calls admitted and not released */
	uint64_t rejected;        /**< sx_adaptive_acquire calls refused (SX_EREJECTED) */
	uint64_t drops;           /**< releases classified as overload */
	uint64_t windows;         /**< windows closed (limit updates) */
	uint64_t rtt_ns;          /**< the last closed window's average latency (0: none yet) */
	uint64_t min_rtt_ns;      /**< the no-load latency estimate, rounded (0: none yet) */
	uint64_t reserved[4];     /**< set to zero */
} sx_adaptive_metrics;

/**
 * sx_adaptive_create - an adaptive limit with opts (NULL: every default).
 * Returns 0 and *out; -EINVAL for NULL out, reserved words not zero, a field out of the ranges above (a limit outside
 * [min_limit, max_limit], min_limit above max_limit, max_limit above SX_ADAPTIVE_MAX_LIMIT, a
 * negative window_ns, window_samples above 60000, tolerance below 1, smoothing or backoff out of
 * range, a clock without now_ns); -ENOMEM. Nothing is created on failure.
 * Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_adaptive_create(const sx_adaptive_opts *opts, sx_adaptive **out);

/** sx_adaptive_destroy - free al (NULL: no-op); never fails. No call on al may be in progress or
 * follow. Never blocks; any thread. */
SX_API void sx_adaptive_destroy(sx_adaptive *al);

/**
 * sx_adaptive_acquire - admit one call if fewer than the limit are in flight.
 * Returns 0 (admitted: call sx_adaptive_release exactly once when it ends); SX_EREJECTED (at the
 * limit; nothing changes but the count of rejections); -EINVAL for NULL al.
 * Never blocks; lock-free (one load and one CAS, retried only when another call changed the word
 * meanwhile). Any thread, concurrently.
 */
SX_API int sx_adaptive_acquire(sx_adaptive *al);

/**
 * sx_adaptive_release - end a call sx_adaptive_acquire admitted: result is its return code
 * (classified by opts.classify), latency_ns how long it took (>= 0; a sample above 2^32 ns counts
 * as 2^32 ns), or SX_ADAPTIVE_UNTIMED for a call that was not timed (a caller that times one
 * call in a few, to spare clock reads): its overload still counts as a drop, but a success
 * gives no sample. The release that closes a window computes the next limit (see the file comment)
 * before it returns.
 * Returns 0; -EINVAL for NULL al, a negative latency_ns other than SX_ADAPTIVE_UNTIMED, or no
 * call in flight (nothing changes).
 * Never blocks; lock-free (an atomic add to the window, one CAS on the limit word; the thread
 * that closes a window does its arithmetic alone, others never wait for it). Any thread,
 * concurrently; once per admitted call.
 */
SX_API int sx_adaptive_release(sx_adaptive *al, int result, int64_t latency_ns);

/** sx_adaptive_limit - the current limit (0 for NULL). One load; wait-free; any thread. */
SX_API uint32_t sx_adaptive_limit(const sx_adaptive *al);

/**
 * sx_adaptive_snapshot - fill *m with al's current figures (each read atomically, not all at the
 * same instant). Returns 0; -EINVAL for NULL al or m. Never blocks; wait-free; any thread.
 */
SX_API int sx_adaptive_snapshot(const sx_adaptive *al, sx_adaptive_metrics *m);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_ADAPTIVE_H */
