/**
 * @file
 * <strix/retry.h>: the declarations of the retry module (group strix_retry).
 *
 * @defgroup strix_retry Retry
 * @ingroup strix
 *
 * strix retry - retry policies with backoff and jitter, a blocking retry loop with a retrier
 * (after oklog/run's Retry and kamilsk/retry), and a retry budget against retry storms.
 *
 * A policy says how often to try (max attempts: the first call counts as attempt 1; 0 means no
 * limit), how long to wait between attempts (a backoff curve, capped, with jitter drawn from a
 * generator seeded by the caller, so the same seed gives the same delays), for how long in all
 * (max elapsed time), which errors are worth retrying (a predicate), and optionally a budget
 * shared with other callers. SX_RETRY_POLICY_INIT retries every error, without limit or delay.
 *
 * The same policy drives the blocking sx_retry below and the asynchronous
 * sx_promise_recover_and_retry (strix/promise.h), where every delay is a timer on the pool's
 * timer service, never a sleeping thread.
 *
 * Backoff: the delay after the n-th failed attempt (n = 1, 2, ...), before the cap:
 * @code{.unparsed}
 *   SX_BACKOFF_NONE          0
 *   SX_BACKOFF_CONSTANT      base
 *   SX_BACKOFF_LINEAR        base * n
 *   SX_BACKOFF_EXPONENTIAL   base * factor^(n-1)        (factor 0 means 2)
 *   SX_BACKOFF_FIBONACCI     base * F(n), F = 1, 1, 2, 3, 5, 8, ...
 *   SX_BACKOFF_DECORRELATED  uniform in [base, 3 * previous delay], the first previous delay
 *                            being base (AWS's "decorrelated jitter"; random by itself, so the
 *                            jitter setting is ignored)
 * @endcode
 * then min(cap, that) when cap_ns > 0. Every product saturates instead of overflowing.
 *
 * Jitter, applied to the capped backoff b, with u uniform in [0, 1) from the generator:
 * @code{.unparsed}
 *   SX_JITTER_NONE           b
 *   SX_JITTER_FULL           b * u                      (in [0, b))
 *   SX_JITTER_EQUAL          b/2 + b/2 * u              (in [b/2, b))
 *   SX_JITTER_DEVIATION      b * (1 - f + 2 f u)        (b +/- f*b, f = deviation in [0, 1])
 *   SX_JITTER_DECORRELATED   min(b, base + (3 * previous delay - base) * u), the first previous
 *                            delay being base: consecutive delays are correlated, bounded by the
 *                            backoff curve
 * @endcode
 * Delays are truncated to whole nanoseconds. The generator is splitmix64 seeded with `seed`;
 * u is its top 53 bits times 2^-53.
 * @{
 */
#ifndef STRIX_RETRY_H
#define STRIX_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include <strix/error.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond */ /* declared here too, so that this header compiles alone */
typedef struct sx_breaker sx_breaker;
/** @endcond */

/** The backoff curves of sx_retry_policy.backoff (the formulas are above). */
enum sx_backoff_kind {
	SX_BACKOFF_NONE = 0,        /**< 0 */
	SX_BACKOFF_CONSTANT,        /**< base */
	SX_BACKOFF_LINEAR,          /**< base * n */
	SX_BACKOFF_EXPONENTIAL,     /**< base * factor^(n-1) */
	SX_BACKOFF_FIBONACCI,       /**< base * F(n) */
	SX_BACKOFF_DECORRELATED,    /**< uniform in [base, 3 * previous delay] */
};

/** The jitters of sx_retry_policy.jitter (the formulas are above). */
enum sx_jitter_kind {
	SX_JITTER_NONE = 0,         /**< b */
	SX_JITTER_FULL,             /**< b * u */
	SX_JITTER_EQUAL,            /**< b/2 + b/2 * u */
	SX_JITTER_DEVIATION,        /**< b * (1 - f + 2 f u) */
	SX_JITTER_DECORRELATED,     /**< min(b, base + (3 * previous delay - base) * u) */
};

/**
 * A retry budget: a token bucket shared by many callers (any threads). It starts full with
 * max_tokens; every retry (not a first attempt) takes one token and is refused when less than
 * one is left; every success puts back `per_success` tokens (a fraction: 0.1 lets one retry in
 * per ten successes once the bucket is dry), up to max_tokens. Tokens are kept in thousandths,
 * in one atomic word. Initialize with sx_retry_budget_init; no destroy is needed.
 */
typedef struct sx_retry_budget {
	int64_t milli;        /**< tokens * 1000 (atomic) */
	/** max_tokens * 1000 */
	int64_t max_milli;
	/** per_success * 1000 */
	int64_t refill_milli;
} sx_retry_budget;

/** A retry policy (see above); a zero field takes its default. */
typedef struct sx_retry_policy {
	unsigned max_attempts;  /**< attempts in all, the first included; 0: no limit */
	int backoff;            /**< enum sx_backoff_kind */
	int64_t base_ns;        /**< the backoff's unit, >= 0 */
	double factor;          /**< SX_BACKOFF_EXPONENTIAL's multiplier, >= 1 (0: 2) */
	int64_t cap_ns;         /**< the largest delay before jitter, >= 0; 0: no cap */
	int jitter;             /**< enum sx_jitter_kind */
	double deviation;       /**< SX_JITTER_DEVIATION's f, in [0, 1] */
	uint64_t seed;          /**< the jitter generator's seed */
	int64_t max_elapsed_ns; /**< no attempt starts this long after the first one began (a delay
	                             that would end past it ends the retry instead); 0 or < 0: no
	                             limit */
	/** Which errors are retried: NULL retries every error. Called on the thread that ran the
	 * attempt; must not block. */
	bool (*retry_if)(int err, void *ctx);
	/** Passed to retry_if. */
	void *retry_if_ctx;
	sx_retry_budget *budget;/**< shared budget, or NULL */
	/** Time source for max_elapsed_ns and, when its sleep_ns is set, for the blocking form's
	 * waits (tests drive both on a virtual clock). NULL: CLOCK_MONOTONIC and real waits. The
	 * asynchronous form always waits on real timers and reads this clock only for elapsed. */
	const sx_clock *clock;
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_retry_policy;

/** Retry every error, without limit or delay. */
#if SX_DESIGNATED_INIT
#define SX_RETRY_POLICY_INIT { .backoff = SX_BACKOFF_NONE, .jitter = SX_JITTER_NONE }
#else
#define SX_RETRY_POLICY_INIT { 0, SX_BACKOFF_NONE, 0, 0.0, 0, SX_JITTER_NONE, 0.0, 0, 0, NULL, NULL, \
	NULL, NULL, {} }
#endif

/**
 * sx_retry_policy_check - 0 if p is usable; -EINVAL for NULL, an unknown backoff or jitter kind,
 * a negative base_ns or cap_ns, a factor below 1 (other than 0) or infinite, a deviation
 * outside [0, 1] or NaN, or a clock without now_ns. Pure: never blocks, wait-free; any thread.
 */
SX_API int sx_retry_policy_check(const sx_retry_policy *p);

/**
 * The delay sequence of a policy, as an iterator: sx_backoff_init, then sx_backoff_next once per
 * failed attempt gives the delay to wait before the next attempt. Deterministic for a given
 * policy (seed included). The iterator reads *policy on every call: keep it alive and unchanged.
 */
typedef struct sx_backoff {
	/** the policy (borrowed) */
	const sx_retry_policy *policy;
	uint64_t rng;           /**< splitmix64 state */
	uint64_t prev;          /**< the previous delay (decorrelated forms) */
	/** Fibonacci state */
	uint64_t fib_a, fib_b;  /**< Fibonacci state */
	double mult;            /**< factor^(n-1) (exponential) */
	unsigned n;             /**< failed attempts so far (stays at UINT_MAX once there) */
} sx_backoff;

/** sx_backoff_init - start the sequence of policy in *bo. Returns 0; -EINVAL as
 * sx_retry_policy_check, or for NULL bo (nothing is written then). Pure: never blocks,
 * wait-free; any thread, for its own bo. */
SX_API int sx_backoff_init(sx_backoff *bo, const sx_retry_policy *policy);
/** sx_backoff_next - the next delay in ns: the formulas above, each saturating at UINT64_MAX
 * (never wrapping, at any attempt count); 0 for NULL bo or one whose policy is NULL (never
 * initialized). Never fails, never blocks; wait-free; touches only *bo. Single owner. */
SX_API uint64_t sx_backoff_next(sx_backoff *bo);

/**
 * sx_retry_budget_init - fill b: max_tokens tokens (1 .. 2^40), per_success in [0, max_tokens].
 * Returns 0; -EINVAL for NULL b or values out of range (b unchanged). Never blocks; wait-free;
 * not concurrent with other uses of b. No destroy is needed.
 */
SX_API int sx_retry_budget_init(sx_retry_budget *b, uint64_t max_tokens, double per_success);
/** sx_retry_budget_withdraw - take one token for a retry: true if granted; false when less than
 * one is left, or for NULL b. Never blocks; lock-free (one CAS loop); any thread. */
SX_API bool sx_retry_budget_withdraw(sx_retry_budget *b);
/** sx_retry_budget_deposit - a success: put back per_success tokens, up to the maximum (NULL b:
 * no-op). Never blocks; lock-free; any thread. */
SX_API void sx_retry_budget_deposit(sx_retry_budget *b);
/** sx_retry_budget_tokens - whole tokens left now (a snapshot; 0 for NULL b). Never blocks;
 * wait-free; any thread. */
SX_API uint64_t sx_retry_budget_tokens(const sx_retry_budget *b);

/* ---- the blocking form ---------------------------------------------------------------------- */

/** The state of a sx_retry loop (opaque), handed to its fn. */
typedef struct sx_retrier sx_retrier;

/**
 * sx_retry - call fn(retrier, arg) until it returns 0, under policy (NULL: SX_RETRY_POLICY_INIT)
 * and the breaker stop (NULL: none).
 *
 * Before every attempt stop is checked; a wait between attempts is a sx_breaker_wait on it, so a
 * trip ends the wait at once. The loop ends when:
 * @code{.unparsed}
 *   fn returns 0                              -> 0
 *   fn called sx_retrier_stop                 -> fn's return value
 *   the policy says no more (max attempts, max elapsed, retry_if false, budget refused)
 *                                             -> fn's last return value
 *   stop is (or becomes) tripped              -> sx_breaker_err(stop), with no further attempt
 *                                                (an already-tripped stop: 0 attempts)
 * @endcode
 * fn should return 0 or a negative error code; a positive return is treated as an error too.
 * Returns -EINVAL (and calls nothing) for a NULL fn or a policy sx_retry_policy_check refuses.
 * Blocks the calling thread between attempts (not for use on a pool worker: use the promise
 * form there). Any thread.
 */
SX_API int sx_retry(int (*fn)(sx_retrier *r, void *arg), void *arg, const sx_retry_policy *policy,
    sx_breaker *stop);

/** @name The retrier's calls
 * The retrier's calls, from inside fn only (on the thread running sx_retry); none blocks, all
 * are wait-free. */
/** @{ */
/** sx_retrier_iteration - the attempt in progress, from 1 (0 for NULL). */
SX_API unsigned sx_retrier_iteration(const sx_retrier *r);
/** sx_retrier_stop - no attempt after this one: sx_retry returns what fn returns now (NULL:
 * no-op). */
SX_API void sx_retrier_stop(sx_retrier *r);
/** sx_retrier_set_delay - wait ns (>= 0) before the next attempt instead of the policy's delay;
 * affects the next wait only (the policy's sequence goes on afterwards). Returns 0; -EINVAL for
 * NULL r or a negative ns (a delay, not a timeout: nothing changes). */
SX_API int sx_retrier_set_delay(sx_retrier *r, int64_t ns);
/** @} */

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_RETRY_H */
