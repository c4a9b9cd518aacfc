/**
 * @file
 * <strix/ratelimit.h>: the declarations of the rate limiters module (group strix_ratelimit).
 *
 * @defgroup strix_ratelimit Rate limiters
 * @ingroup strix
 *
 * strix rate limiter - GCRA (the generic cell rate algorithm) in one atomic word.
 *
 * A limiter admits `rate` events per `period_ns` on average and up to `burst` at once. Its whole
 * state is the theoretical arrival time (TAT): when the next event would be due if events came
 * exactly at the rate. An event of weight n is admitted when, after adding n emission intervals
 * (period_ns / rate) to max(TAT, now), the TAT is no further ahead of now than burst intervals;
 * admitting it is one CAS. Unlike a fixed window it never forgets everything at once and never
 * admits twice the burst across a window edge; unlike a token bucket it needs no refill task.
 *
 * Precision: the emission interval is period_ns / rate rounded down to the nanosecond, so rate
 * events always fit in one period, and the long-run rate is high by less than one nanosecond per
 * interval (under 1% at 10 million events a second, 6e-9 at six a second).
 *
 * A rate of 0 means no limit: every event passes at once, without a clock read or a write.
 *
 * Time comes from the clock in the options (a virtual clock makes tests deterministic); a
 * virtual clock's sleep_ns is what sx_ratelimit_wait calls to wait.
 * @{
 */
#ifndef STRIX_RATELIMIT_H
#define STRIX_RATELIMIT_H

#include <stdint.h>

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A rate limiter (opaque): sx_ratelimit_create makes one. */
typedef struct sx_ratelimit sx_ratelimit;

/** The options of a limiter (see each field for its default). */
typedef struct sx_ratelimit_opts {
	uint64_t rate;          /**< events per period, at most period_ns (1 ns apart); 0: no limit
	                             (every event of weight up to burst passes at once) */
	int64_t period_ns;      /**< > 0; 0: 1 s */
	uint32_t burst;         /**< events admitted at once; 0: min(rate, SX_RATELIMIT_MAX_BURST),
	                             or SX_RATELIMIT_MAX_BURST with no limit */
	const sx_clock *clock;  /**< NULL: CLOCK_MONOTONIC */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_ratelimit_opts;

/** No limit, over a period of 1 s. */
#if SX_DESIGNATED_INIT
#define SX_RATELIMIT_OPTS_INIT { .period_ns = INT64_C(1000000000) }
#else
#define SX_RATELIMIT_OPTS_INIT { 0, INT64_C(1000000000), 0, NULL, {} }
#endif
#define SX_RATELIMIT_MAX_BURST (1u << 20) /**< sx_ratelimit_opts.burst, at most */

/**
 * sx_ratelimit_create - a limiter that starts full: burst events pass at once.
 * Returns 0; -EINVAL for NULL opts or out, a negative period_ns, rate > period_ns, burst >
 * SX_RATELIMIT_MAX_BURST, burst * period_ns / rate above 2^61 ns (73 years), or a clock without
 * now_ns; -ENOMEM.
 * Nothing is created on failure.
 * Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_ratelimit_create(const sx_ratelimit_opts *opts, sx_ratelimit **out);

/** sx_ratelimit_destroy - free rl (NULL: no-op); never fails. No call on rl may be in progress
 * or follow. Never blocks; any thread. */
SX_API void sx_ratelimit_destroy(sx_ratelimit *rl);

/**
 * sx_ratelimit_try - admit an event of weight n now, or refuse it.
 * Returns 0 (admitted); SX_ERATE_LIMITED (refused; nothing changes); -EINVAL for NULL rl, n == 0
 * or n > burst (it could never pass).
 * A refusal is judged against a clock reading taken after the limiter's state was read, so a
 * thread delayed between reading the clock and deciding is never refused for it.
 * Never blocks; lock-free (one clock read and one CAS, retried only when another thread admitted
 * an event meanwhile; a second clock read before a refusal). Any thread, concurrently.
 */
SX_API int sx_ratelimit_try(sx_ratelimit *rl, uint32_t n);

/**
 * sx_ratelimit_wait - admit an event of weight n, waiting for its turn if need be. The turn is
 * reserved at once (one CAS), so waiters are admitted in the order they called, each as soon as
 * the rate allows; a wait that stop ends gives its reservation back. A tripped stop fails at once.
 * Returns 0 (admitted); stop's error code if it tripped first (the event was not admitted);
 * -EINVAL for NULL rl, n == 0 or n > burst.
 * Blocks the calling thread (a timed futex wait on stop, or a sleep when stop is NULL, or the
 * virtual clock's sleep_ns). Any thread, concurrently; on a pool worker it blocks that worker.
 */
SX_API int sx_ratelimit_wait(sx_ratelimit *rl, uint32_t n, sx_breaker *stop);

/**
 * sx_ratelimit_delay_ns - how long an event of weight n would wait right now (0: it would pass);
 * UINT64_MAX for NULL rl, n == 0 or n > burst. Changes nothing. Never blocks; wait-free; any
 * thread.
 */
SX_API uint64_t sx_ratelimit_delay_ns(const sx_ratelimit *rl, uint32_t n);

/** What sx_ratelimit_snapshot and sx_ratelimit_keyed_snapshot report. Counters are monotone
 * since the limiter was created; the rest is a reading. */
typedef struct sx_ratelimit_metrics {
	uint64_t refused;      /**< events sx_ratelimit_try (or a pipeline's rate layer) refused */
	uint64_t delayed;      /**< sx_ratelimit_wait calls that had to wait (0 for a keyed one) */
	uint64_t available;    /**< events of weight 1 that would pass now, 0 .. burst (a keyed
	                            limiter: 0, its keys differ) */
	uint64_t burst;        /**< the burst */
	uint64_t keys;         /**< a keyed limiter: keys held now (0 for a single limiter) */
	uint64_t reserved[4];  /**< zero */
} sx_ratelimit_metrics;

/**
 * sx_ratelimit_snapshot - rl's counters and its state now into *out. Counting costs a refusal
 * or a delayed wait no shared write: each thread adds to a cache line of its own. A limiter
 * from a keyed registry's sx_registry_guard counts nothing (its keyed limiter counts).
 * Returns 0; -EINVAL for NULL rl or out. Changes nothing. Never blocks; wait-free; any thread,
 * concurrently with admissions.
 */
SX_API int sx_ratelimit_snapshot(const sx_ratelimit *rl, sx_ratelimit_metrics *out);

/**
 * Keyed limiters: one GCRA limit per key (a client, a route, an address), like Workshop's rate
 * middle: a keyed registry of limiters (<strix/registry.h>) on the library's shared pool. A key
 * that has a limiter is admitted without a lock or an allocation; a new key's limiter is made on
 * its first event. Keys are dropped only when their bucket is full (their state is then a fresh
 * limiter's, so dropping loses nothing): when more than max_keys keys are held, and once a key
 * has been idle for its whole tolerance (burst intervals). Keys with events in flight are never
 * dropped, so any number of keys can be active at once: the table grows.
 */
typedef struct sx_ratelimit_keyed sx_ratelimit_keyed;

#define SX_RATELIMIT_MAX_KEYS (1u << 24) /**< max_keys of sx_ratelimit_keyed_create, at most */

/**
 * sx_ratelimit_keyed_create - a keyed limiter: every key gets opts' rate and burst (and clock).
 * max_keys: the memory bound, 1 .. SX_RATELIMIT_MAX_KEYS: beyond it, keys whose bucket is full
 * are evicted (least recently used first) to make room; keys still within their burst are kept,
 * so more keys than that may be held while they are active. About 200 bytes per key held.
 * Returns 0; -EINVAL for NULL out, max_keys out of range, or opts as sx_ratelimit_create;
 * -ENOMEM; the shared pool's sx_pool_create error (its first use). Nothing is created on
 * failure. Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_ratelimit_keyed_create(const sx_ratelimit_opts *opts, uint32_t max_keys,
    sx_ratelimit_keyed **out);

/** sx_ratelimit_keyed_destroy - free kl (NULL: no-op); never fails. No call on kl may be in
 * progress or follow. Never blocks; any thread. */
SX_API void sx_ratelimit_keyed_destroy(sx_ratelimit_keyed *kl);

/**
 * sx_ratelimit_keyed_try - admit an event of weight n for key now, or refuse it.
 * Returns 0 (admitted); SX_ERATE_LIMITED (refused; nothing changes); -ENOMEM (a new key whose
 * limiter could not be allocated, or the thread's first epoch record; not admitted, nothing
 * changed); -EINVAL for NULL kl, key UINT64_MAX (reserved), n == 0 or n > burst.
 * A key with a limiter: never blocks, lock-free and allocation-free (a clock read, an epoch
 * section, a hash probe and one CAS). A new key: the registry's slow path (its writer lock, an
 * allocation, possibly evictions). Any thread, concurrently. A key evicted while an event of it
 * races is charged to exactly one bucket: the eviction fails if the event lands first, and the
 * event looks the key up again if the eviction does; a key never admits more than burst at once,
 * across any number of evictions and remakes.
 * A clock whose readings come within burst intervals of 2^64 ns refuses events (SX_ERATE_LIMITED)
 * rather than wrap its state open; so does sx_ratelimit_try.
 */
SX_API int sx_ratelimit_keyed_try(sx_ratelimit_keyed *kl, uint64_t key, uint32_t n);

/**
 * sx_ratelimit_keyed_snapshot - kl's refusals (every key's together), burst and keys held now
 * into *out. Returns 0; -EINVAL for NULL kl or out. Changes nothing. Never blocks; wait-free;
 * any thread, concurrently with admissions.
 */
SX_API int sx_ratelimit_keyed_snapshot(const sx_ratelimit_keyed *kl, sx_ratelimit_metrics *out);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_RATELIMIT_H */
