/**
 * @file
 * <strix/hedge.h>: the declarations of hedged calls (group strix_hedge).
 *
 * @defgroup strix_hedge Hedging
 * @ingroup strix
 *
 * strix hedging - when a call has not succeeded after a delay, start another attempt of the same
 * call beside it; the first attempt that succeeds wins, the others are cancelled through their
 * chain's breaker and their values discarded (destroyed with their dtor) exactly once. Against a
 * backend with a slow tail, the tail of the calls becomes the tail of the fastest of a few
 * attempts (Dean and Barroso, "The Tail at Scale"; Polly's hedging strategy).
 *
 * The delay is fixed (opts.delay_ns), or a percentile of the latency the policy observes
 * (opts.percentile, e.g. 0.95): the latency of each call's first attempt, from the call's start
 * to that attempt's end; a first attempt cancelled because a hedge won counts with the time it
 * had run then, a lower bound that still sorts it among the slow ones, so the percentile stays
 * on the fast side of a slow tail instead of following the hedged latencies down. Until
 * opts.window samples are in, and whenever the percentile is below it, the delay is
 * opts.min_delay_ns. The observed latencies live in a log-scale histogram (8 buckets per power
 * of two, atomic counts); every opts.window samples the sample that completes the window
 * recomputes the delay and halves the counts, so old latencies fade.
 *
 * Load: at most opts.max_hedges extra attempts per call, attempt k starting k delays after the
 * call; each one first withdraws a token from opts.budget (a sx_retry_budget, which a retry policy
 * may share: then hedges and retries together are bounded by it, failsafe-go's rule); refused,
 * it does not start. A call that succeeds deposits into the budget, unless opts.no_deposit (set
 * it when a retry layer over the same calls deposits already).
 *
 * sx_pipeline_add_hedge (<strix/pipeline.h>) hedges the inner layers of a pipeline with a
 * policy, on the calling thread and without a promise.
 *
 * A step must be written for hedging: it may run more than once for one call, concurrently, and
 * should poll its chain's breaker (sx_ctx_cancelled) or wait on it, so that a losing attempt
 * ends soon.
 * @{
 */
#ifndef STRIX_HEDGE_H
#define STRIX_HEDGE_H

#include <stdbool.h>
#include <stdint.h>

#include <strix/error.h>
#include <strix/promise.h>
#include <strix/retry.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sx_events; /* <strix/events.h> */

/** A hedging policy (opaque): sx_hedge_create makes one; many calls share it. */
typedef struct sx_hedge sx_hedge;

#define SX_HEDGE_MAX_HEDGES 8 /**< max_hedges, at most */

/** The options of sx_hedge_create; zero fields take the defaults given. */
typedef struct sx_hedge_opts {
	int64_t delay_ns;         /**< > 0: a fixed delay; 0: the percentile below */
	double percentile;        /**< the observed latency percentile to wait for, in (0, 1);
	                               0: 0.95 (used only when delay_ns is 0) */
	int64_t min_delay_ns;     /**< the least delay, and the delay before enough samples are in
	                               (>= 0; 0: 1 ms) */
	uint32_t window;          /**< samples per recomputation of the percentile (0: 256) */
	uint32_t max_hedges;      /**< extra attempts per call, 1 .. SX_HEDGE_MAX_HEDGES (0: 1) */
	sx_retry_budget *budget;  /**< NULL: hedges are bounded by max_hedges only */
	bool no_deposit;          /**< a successful call does not deposit into budget */
	struct sx_events *events; /**< NULL: none; else each hedge started is an SX_EVENT_HEDGE
	                               (<strix/events.h>), each refused an SX_EVENT_REJECTED */
	const char *name;         /**< the events' source (borrowed; may be NULL) */
	uint64_t reserved[4];     /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_hedge_opts;

/** Every default: a delay at the observed p95, one hedge per call, no budget. */
#if SX_DESIGNATED_INIT
#define SX_HEDGE_OPTS_INIT { .delay_ns = 0 }
#else
#define SX_HEDGE_OPTS_INIT { 0, 0.0, 0, 0, 0, NULL, false, NULL, NULL, {} }
#endif

/** The counts of a policy (sx_hedge_snapshot). */
typedef struct sx_hedge_metrics {
	uint64_t calls;           /**< calls started */
	uint64_t hedges;          /**< extra attempts started */
	uint64_t refused;         /**< extra attempts the budget refused */
	uint64_t hedge_wins;      /**< calls whose value came from an extra attempt */
	int64_t delay_ns;         /**< the delay now */
	uint64_t reserved[4];     /**< set to zero */
} sx_hedge_metrics;

/**
 * sx_hedge_create - a hedging policy for calls on pool (its timer service waits the delays).
 * Returns 0 and *out; -EINVAL for NULL pool or out, a negative delay_ns or min_delay_ns, a
 * percentile outside [0, 1) (or NaN), max_hedges above SX_HEDGE_MAX_HEDGES, reserved words not
 * zero; -ENOMEM. Nothing is created on failure. Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_hedge_create(sx_pool *pool, const sx_hedge_opts *opts, sx_hedge **out);

/** sx_hedge_destroy - free h (NULL: no-op); never fails. Every call made with h must have
 * settled (its promise, and the attempts it cancelled: sx_pool_wait_idle after the last one
 * settled is enough). Never blocks; any thread. */
SX_API void sx_hedge_destroy(sx_hedge *h);

/**
 * sx_hedge_run - a hedged call of step(ctx, NULL, &out) with arg, as a promise: fulfilled with the
 * value of the first attempt that succeeds (the other attempts cancelled, their values
 * destroyed); rejected with the error of the attempt that failed last when every attempt that
 * started failed. Cancelling the promise cancels every attempt, and the delays not yet over.
 * Returns 0 and the caller's reference in *out; -EINVAL for NULL h, step or out; -ESHUTDOWN if
 * the pool no longer accepts tasks or timers; -ENOMEM; -EAGAIN (the timer thread could not
 * start). Nothing runs on failure. Allocates the call's promises (one per attempt and delay,
 * and the combined one) and a small record; never blocks; lock-free; any thread, concurrently.
 */
SX_API int sx_hedge_run(sx_hedge *h, sx_step_fn step, void *arg, sx_promise **out);

/** sx_hedge_delay_ns - the delay a call started now would wait before its first hedge (-EINVAL
 * for NULL). One load; wait-free; any thread. */
SX_API int64_t sx_hedge_delay_ns(const sx_hedge *h);

/** sx_hedge_snapshot - h's counts into *m. Returns 0; -EINVAL for NULL. Never blocks; wait-free;
 * any thread. */
SX_API int sx_hedge_snapshot(const sx_hedge *h, sx_hedge_metrics *m);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_HEDGE_H */
