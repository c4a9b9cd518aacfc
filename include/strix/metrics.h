/**
 * @file
 * <strix/metrics.h>: the declarations of the metrics exposition (group strix_metrics).
 *
 * @defgroup strix_metrics Metrics
 * @ingroup strix
 *
 * strix metrics - the counters and states strix keeps, in the OpenMetrics text format (or the
 * Prometheus text format 0.0.4) for an application to serve on its /metrics endpoint.
 *
 * A metrics set lists the objects to expose, each under a name (a label value). One call,
 * sx_metrics_render, reads every object's own snapshot (the same figures its *_stats or
 * *_snapshot call gives) and writes the families below, each sample labelled with the object's
 * name (label pool, circuit, bulkhead, limit, hedge, chaos, budget, limiter, pipeline or
 * registry):
 *
 * @code{.unparsed}
 *   pools          strix_pool_workers (gauge), strix_pool_submitted, strix_pool_remote,
 *                  strix_pool_executed, strix_pool_stolen, strix_pool_parks (counters),
 *                  strix_pool_timers_pending (gauge)
 *   circuits       strix_circuit_state (stateset: closed, open, half_open, forced_open,
 *                  disabled, metrics_only), strix_circuit_window_calls,
 *                  strix_circuit_failure_rate, strix_circuit_slow_rate (gauges),
 *                  strix_circuit_rejected (counter)
 *   bulkheads      strix_bulkhead_in_use, strix_bulkhead_capacity, strix_bulkhead_waiting
 *                  (gauges)
 *   adaptive       strix_adaptive_limit, strix_adaptive_in_flight (gauges),
 *                  strix_adaptive_rejected, strix_adaptive_drops (counters),
 *                  strix_adaptive_rtt_seconds, strix_adaptive_min_rtt_seconds (gauges)
 *   hedging        strix_hedge_calls, strix_hedge_hedges, strix_hedge_refused,
 *                  strix_hedge_wins (counters), strix_hedge_delay_seconds (gauge)
 *   chaos          strix_chaos_draws, strix_chaos_errors, strix_chaos_delays,
 *                  strix_chaos_outcomes (counters)
 *   retry budgets  strix_retry_budget_tokens (gauge)
 *   rate limiters  strix_ratelimit_available, strix_ratelimit_burst (gauges),
 *                  strix_ratelimit_refused, strix_ratelimit_delayed (counters)
 *   keyed limiters strix_ratelimit_keyed_keys (gauge), strix_ratelimit_keyed_refused (counter)
 *   pipelines      strix_pipeline_calls, strix_pipeline_failed, strix_pipeline_rejected,
 *                  strix_pipeline_retries, strix_pipeline_timeouts, strix_pipeline_hedges,
 *                  strix_pipeline_fallbacks (counters)
 *   registries     strix_registry_keys, strix_registry_bytes (gauges), strix_registry_created,
 *                  strix_registry_evicted, strix_registry_removed (counters)
 * @endcode
 *
 * Counters are written with the _total suffix; in the Prometheus format the stateset becomes a
 * gauge of the same shape (one sample per state, 1 for the current one) and there is no final
 * "# EOF". The objects are borrowed: remove one (or destroy the set) before destroying it.
 * @{
 */
#ifndef STRIX_METRICS_H
#define STRIX_METRICS_H

#include <stddef.h>

#include <strix/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A metrics set (opaque): sx_metrics_create makes one. */
typedef struct sx_metrics sx_metrics;

/** The kinds of object a set exposes: what sx_metrics_add's obj points to. */
enum sx_metrics_kind {
	SX_METRICS_POOL = 1,          /**< sx_pool */
	SX_METRICS_CIRCUIT = 2,       /**< sx_circuit */
	SX_METRICS_BULKHEAD = 3,      /**< sx_sem */
	SX_METRICS_ADAPTIVE = 4,      /**< sx_adaptive */
	SX_METRICS_HEDGE = 5,         /**< sx_hedge */
	SX_METRICS_CHAOS = 6,         /**< sx_chaos */
	SX_METRICS_RETRY_BUDGET = 7,  /**< sx_retry_budget */
	SX_METRICS_RATELIMIT = 8,     /**< sx_ratelimit */
	SX_METRICS_RATELIMIT_KEYED = 9, /**< sx_ratelimit_keyed */
	SX_METRICS_PIPELINE = 10,     /**< sx_pipeline (its calls, rejections, retries, hedges...) */
	SX_METRICS_REGISTRY = 11      /**< sx_registry (keyed circuits or bulkheads) */
};

/** The formats of sx_metrics_render. */
enum sx_metrics_format {
	SX_METRICS_OPENMETRICS = 0,   /**< application/openmetrics-text; version=1.0.0 */
	SX_METRICS_PROMETHEUS = 1     /**< text/plain; version=0.0.4 */
};

#define SX_METRICS_MAX_NAME 64    /**< bytes of an object's name, at most (without the NUL) */

/** sx_metrics_create - an empty set. Returns 0; -EINVAL for NULL out; -ENOMEM. Cold path
 * (allocates); never blocks; any thread. */
SX_API int sx_metrics_create(sx_metrics **out);

/** sx_metrics_destroy - free m (NULL: no-op); never fails. The objects it listed stay the
 * caller's. No call on m may be in progress or follow. Never blocks; any thread. */
SX_API void sx_metrics_destroy(sx_metrics *m);

/**
 * sx_metrics_add - expose obj (of kind) under name (copied; 1 .. SX_METRICS_MAX_NAME bytes of
 * printable ASCII). Samples of one family come out in the order the objects were added.
 * Returns 0; -EINVAL for NULL m, obj or name, an unknown kind, a name empty, too long or not
 * printable; -EEXIST when obj is listed already; -ENOMEM. Nothing changes on failure.
 * Cold path: takes the set's lock (it may wait for a render in progress); allocates; any thread.
 */
SX_API int sx_metrics_add(sx_metrics *m, int kind, const char *name, const void *obj);

/** sx_metrics_remove - stop exposing obj. Returns 0; -EINVAL for NULL; -ENOENT when obj is not
 * listed. Once it returns, no render reads obj. Cold path: takes the set's lock; any thread. */
SX_API int sx_metrics_remove(sx_metrics *m, const void *obj);

/**
 * sx_metrics_render - write every listed object's figures into buf (cap bytes) in format, NUL
 * terminated. *len (not NULL) gets the length of the whole text without the NUL, also when it
 * did not fit, so a caller can retry with len + 1 bytes.
 * Returns 0; -ENOSPC when cap is not more than the text's length (buf holds a truncated,
 * NUL-terminated prefix if cap > 0); -EINVAL for NULL m or len, NULL buf with cap > 0, or an
 * unknown format.
 * Cold path: takes the set's lock while it reads the objects (each read is its own snapshot call:
 * wait-free or lock-free, never blocking the objects' users); any thread.
 */
SX_API int sx_metrics_render(sx_metrics *m, int format, char *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_METRICS_H */
