/**
 * @file
 * <strix/chaos.h>: the declarations of fault injection (group strix_chaos).
 *
 * @defgroup strix_chaos Fault injection
 * @ingroup strix
 *
 * strix chaos - faults injected into calls on purpose (Polly's chaos strategies, Simmy): a share
 * of calls fails at once with an error, a share is delayed, a share has its result replaced
 * after it ran. Use it to test that the policies around a call (timeouts, retries, circuits,
 * fallbacks) do what they should, in a test or in a staged rollout.
 *
 * Which calls get which fault comes from a seeded generator: draw k of a chaos object gives the
 * same faults for the same seed and rates, so a failing test replays. Each draw is one atomic
 * add on a counter and a hash of it (splitmix64); the three faults use separate bits of the
 * hash, so they are independent of each other. Rates are kept as fixed-point shares of 2^21
 * (a rate is rounded to the nearest 1 / 2097152).
 *
 * Everything can be switched at run time from any thread: sx_chaos_enable turns injection on and
 * off, sx_chaos_set changes the rates and faults (each field on its own: a call racing the
 * change may see some fields old and some new). A disabled chaos object costs a call one load.
 *
 * In a pipeline (sx_pipeline_add_chaos, <strix/pipeline.h>) the layer draws once per attempt:
 * an error ends the attempt with the error before the layers inside it run; a delay waits
 * latency_ns on the chaos object's clock before them (cut short by the call's breaker, whose
 * code then ends the attempt); an outcome replaces what the layers inside returned.
 * @{
 */
#ifndef STRIX_CHAOS_H
#define STRIX_CHAOS_H

#include <stdbool.h>
#include <stdint.h>

#include <strix/error.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A fault injector (opaque): sx_chaos_create makes one. */
typedef struct sx_chaos sx_chaos;

/** What to inject, and how often. Rates are shares of calls in [0, 1]. */
typedef struct sx_chaos_opts {
	double error_rate;      /**< calls failed at once with `error` */
	int error;              /**< the injected error (< 0); 0: -EIO */
	double latency_rate;    /**< calls delayed by latency_ns */
	int64_t latency_ns;     /**< the delay (>= 0) */
	double outcome_rate;    /**< calls whose result is replaced by `outcome` after they ran */
	int outcome;            /**< the replacing result (0 fakes a success; else < 0) */
	uint64_t seed;          /**< the generator's seed (0 is a seed like any other) */
	bool disabled;          /**< start switched off (sx_chaos_enable switches it on) */
	const sx_clock *clock;  /**< whose sleep_ns a delay waits on; NULL: CLOCK_MONOTONIC */
	uint64_t reserved[4];   /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_chaos_opts;

/** No fault at all, enabled. */
#if SX_DESIGNATED_INIT
#define SX_CHAOS_OPTS_INIT { .error_rate = 0.0 }
#else
#define SX_CHAOS_OPTS_INIT { 0.0, 0, 0.0, 0, 0.0, 0, 0, false, NULL, {} }
#endif

/** The faults one draw gives (sx_chaos_draw). */
typedef struct sx_chaos_fault {
	int error;              /**< the error to fail with at once; 0: none */
	int64_t latency_ns;     /**< the delay before the call; 0: none */
	bool replace;           /**< whether to replace the call's result ... */
	int outcome;            /**< ... with this */
} sx_chaos_fault;

/** The counts of a chaos object (sx_chaos_snapshot). */
typedef struct sx_chaos_metrics {
	uint64_t draws;         /**< draws made while enabled */
	uint64_t errors;        /**< of those, with an error */
	uint64_t delays;        /**< ... with a delay */
	uint64_t outcomes;      /**< ... with a replaced result */
	uint64_t reserved[4];   /**< set to zero */
} sx_chaos_metrics;

/**
 * sx_chaos_create - a fault injector with opts' rates and faults.
 * Returns 0 and *out; -EINVAL for NULL opts or out, a rate outside [0, 1] (or NaN), an error
 * that is positive, an outcome that is positive, a negative latency_ns, reserved words not zero,
 * a clock without now_ns; -ENOMEM. Nothing is created on failure.
 * Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_chaos_create(const sx_chaos_opts *opts, sx_chaos **out);

/** sx_chaos_destroy - free ch (NULL: no-op); never fails. No call on ch may be in progress or
 * follow (a pipeline that refers to it must not be called again). Never blocks; any thread. */
SX_API void sx_chaos_destroy(sx_chaos *ch);

/**
 * sx_chaos_set - change ch's rates and faults to opts' (opts.seed and opts.clock are ignored:
 * the generator goes on where it is; opts.disabled sets the switch as sx_chaos_enable would).
 * Returns 0; -EINVAL for NULL or for opts that sx_chaos_create would refuse (nothing changes).
 * Never blocks; wait-free (a store per field); any thread, concurrently with draws.
 */
SX_API int sx_chaos_set(sx_chaos *ch, const sx_chaos_opts *opts);

/** sx_chaos_enable - switch injection on (on true) or off. Returns 0; -EINVAL for NULL ch.
 * Never blocks; wait-free; any thread, concurrently with draws. */
SX_API int sx_chaos_enable(sx_chaos *ch, bool on);

/**
 * sx_chaos_draw - the faults for one call: fills *f (all zero: no fault). A disabled injector
 * fills zeros without drawing.
 * Returns 1 when some fault was drawn, 0 when none; -EINVAL for NULL ch or f.
 * Never blocks; wait-free (a load; enabled: one atomic add and a hash); any thread, concurrently.
 */
SX_API int sx_chaos_draw(sx_chaos *ch, sx_chaos_fault *f);

/** sx_chaos_snapshot - ch's counts into *m. Returns 0; -EINVAL for NULL. Never blocks;
 * wait-free; any thread. */
SX_API int sx_chaos_snapshot(const sx_chaos *ch, sx_chaos_metrics *m);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_CHAOS_H */
