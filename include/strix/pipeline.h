/**
 * @file
 * <strix/pipeline.h>: the declarations of the pipelines module (group strix_pipeline).
 *
 * @defgroup strix_pipeline Pipelines
 * @ingroup strix
 *
 * strix pipelines - resilience policies around a call: rate limiting, bulkheads, circuit
 * breakers, timeouts, retries, fallbacks and interceptors of your own (Workshop's "middles",
 * Polly's pipelines, Resilience4j's decorators).
 *
 * A pipeline is a list of policies; the first added is the outermost. sx_pipeline_call runs
 * them around an action, synchronously, on the calling thread:
 *
 * @code{.unparsed}
 *     rate limit  -> before: take a turn (SX_ERATE_LIMITED, or wait for it); a keyed limiter
 *                    takes the turn of the call's key (SX_ERATE_LIMITED, or -ENOMEM
 *                    when a new key's state cannot be allocated)
 *     bulkhead    -> before: take a permit (SX_EREJECTED, or wait for it); after: give it back
 *     circuit     -> before: sx_circuit_acquire (SX_ECIRCUIT_OPEN); after: sx_circuit_release
 *                    with the inner result and latency
 *     keyed circuit, keyed bulkhead -> the same on the call's key's guard in a registry
 *                    (<strix/registry.h>): before takes a reference to it (made on the key's
 *                    first call; -ENOMEM if it cannot be), after gives it back, so the key's
 *                    entry is never evicted while a call holds it
 *     timeout     -> the layers inside it get a breaker that trips with -ETIMEDOUT at the
 *                    deadline; the call then returns -ETIMEDOUT once the inner layers return
 *                    (the action is told, never abandoned: a bulkhead permit inside is held until
 *                    the action has really ended)
 *     retry       -> runs the layers inside it again while the retry policy (<strix/retry.h>) allows (its
 *                    backoff, jitter, limits, predicate and budget); waits block the calling
 *                    thread and end at once when the call's breaker trips. A circuit's
 *                    rejection (SX_ECIRCUIT_OPEN) is not retried unless the layer was added
 *                    with SX_PIPELINE_RETRY_CIRCUIT_OPEN
 *     fallback    -> when the layers inside fail (and `when` agrees), the fallback's result
 *                    replaces theirs
 *     adaptive    -> before: sx_adaptive_acquire (SX_EREJECTED); after: sx_adaptive_release
 *                    with the inner result and latency
 *     chaos       -> an injected error instead of the inner layers, a delay before them, or
 *                    an outcome in place of theirs (<strix/chaos.h>)
 *     hedge       -> the inner layers again, beside the first attempt, when it is slow; the
 *                    first success wins, the others are cancelled (<strix/hedge.h>)
 *     interceptor -> your before/after pair
 * @endcode
 *
 * A timeout outside a retry limits the whole call; one inside it limits each attempt (Polly's
 * and gRPC's total and per-attempt timeouts): add both for both.
 *
 * after runs exactly once for every before that succeeded, whatever the inner layers did:
 * success, error, timeout, cancellation, a retry. A before that fails ends the call with its
 * code; the layers inside it and the action do not run, the afters of the layers outside it do.
 *
 * Costs: no lock and no allocation per call in steady state. A timeout keeps a per-thread
 * record of the calls in progress (allocated once per thread) and its two breakers, used by
 * turns (each allocated once, and again only after a call timed out); one timer on the
 * pipeline's pool watches each thread's earliest deadline, so most calls arm no timer at all.
 * Exception: a call given a stop breaker through a timeout policy links a child breaker to it
 * (one allocation).
 *
 * Time: a call reads the clock once for its layers (the rate limit's admission, a timeout's
 * deadline, a hedge's start) and timed layers read it again when the inner layers return. Where
 * the kernel keeps CLOCK_MONOTONIC on the CPU's time-stamp counter (clocksource `tsc`), the
 * reading is that counter scaled by the calling thread against CLOCK_MONOTONIC about once a
 * millisecond: within about a microsecond of CLOCK_MONOTONIC, and never going back on one
 * thread; elsewhere it is clock_gettime(CLOCK_MONOTONIC). There, on a counter that runs at a
 * constant rate and through idle states (x86's constant_tsc and nonstop_tsc: most virtual
 * machines), the call's start may reuse the thread's latest clock_gettime reading while the
 * counter has moved less than 2048 ticks since it was taken (about a microsecond at 2 GHz): a
 * deadline or an admission may then be up to that much early, never late; latencies' ends are
 * always read afresh.
 * @{
 */
#ifndef STRIX_PIPELINE_H
#define STRIX_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include <strix/breaker.h>
#include <strix/circuit.h>
#include <strix/error.h>
#include <strix/promise.h>
#include <strix/ratelimit.h>
#include <strix/registry.h>
#include <strix/retry.h>
#include <strix/sem.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sx_adaptive; /* <strix/adaptive.h> */
struct sx_chaos;    /* <strix/chaos.h> */
struct sx_events;   /* <strix/events.h> */
struct sx_hedge;    /* <strix/hedge.h> */

/** A pipeline (opaque): sx_pipeline_create makes one. */
typedef struct sx_pipeline sx_pipeline;

/** What the action and the policies see of one call. Valid during the call only. */
typedef struct sx_call {
	void *arg;              /**< the action's argument */
	void *last;             /**< input value (a promise step's `last`; NULL for plain calls) */
	void *out;              /**< the action's value, if it has one (set it; a fallback may too) */
	sx_breaker *breaker;    /**< trips when the call must stop: the innermost timeout's breaker,
	                             else the caller's stop; NULL if neither. Poll, wait or register */
	unsigned attempt;       /**< 1, then 2, 3, ... under a retry policy */
	sx_ctx *ctx;            /**< the promise step's context (sx_pipeline_step), else NULL */
	uint64_t sx_now;        /**< private: the clock read once per attempt (see Time) */
} sx_call;

/** An action: returns 0 (its value, if any, in call->out) or an error code. */
typedef int (*sx_call_fn)(sx_call *call);

/** A custom interceptor. before returns 0 to let the call go on (it may store a word of its own
 * in *token) or an error code to end it; after receives that token and the inner result.
 * Both run on the calling thread and may be called concurrently for different calls. */
typedef struct sx_interceptor {
	/** Runs before the inner layers (see above). */
	int (*before)(void *self, sx_call *call, uint64_t *token);
	/** Runs after them, once for every before that returned 0. */
	void (*after)(void *self, sx_call *call, uint64_t token, int result);
	/** Passed to before and after. */
	void *self;
} sx_interceptor;

/** The options of sx_pipeline_create. */
typedef struct sx_pipeline_opts {
	sx_pool *pool;          /**< timer service for timeout policies; NULL: no timeouts allowed */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_pipeline_opts;

/** An sx_pipeline_opts with every default. */
#if SX_DESIGNATED_INIT
#define SX_PIPELINE_OPTS_INIT { .pool = NULL }
#else
#define SX_PIPELINE_OPTS_INIT { NULL, {} }
#endif
#define SX_PIPELINE_MAX 16          /**< policies per pipeline */

/** @name Flags of the sx_pipeline_add_* functions */
/** @{ */
#define SX_PIPELINE_WAIT 0x1u               /**< rate limit, bulkhead: wait (blocking, under the
                                                 call's breaker) instead of refusing at once */
#define SX_PIPELINE_RETRY_CIRCUIT_OPEN 0x2u /**< retry: also retry SX_ECIRCUIT_OPEN */
/** @} */

/**
 * sx_pipeline_create - an empty pipeline (a call through it just runs the action). opts may be
 * NULL (SX_PIPELINE_OPTS_INIT). Returns 0; -EINVAL for NULL out; -ENOMEM. Allocates; never
 * blocks; cold path; any thread.
 */
SX_API int sx_pipeline_create(const sx_pipeline_opts *opts, sx_pipeline **out);

/** sx_pipeline_destroy - free pl (NULL: no-op); never fails. No call may be in progress or
 * follow. The limiters, semaphores and circuits it refers to are the caller's and stay alive.
 * Never blocks; any thread. */
SX_API void sx_pipeline_destroy(sx_pipeline *pl);

/** @name Adding policies */
/** @{ */
/**
 * Adding policies: each appends one layer inside the ones already added. The objects passed
 * are borrowed (the caller keeps them alive while the pipeline is used); policy structs are
 * copied. Add everything before the first call.
 * Each returns 0; -EINVAL for NULL pl, object or key function, unknown flags, a retry policy
 * that fails sx_retry_policy_check, a timeout of 0 or a positive one on a pipeline without a
 * pool; -ENOSPC beyond SX_PIPELINE_MAX layers; -EBUSY once the pipeline has been called.
 * Nothing changes on failure. Never block; wait-free (a copy into the pipeline); cold path; one
 * thread at a time, not concurrent with calls.
 */
SX_API int sx_pipeline_add_ratelimit(sx_pipeline *pl, sx_ratelimit *rl, unsigned flags);
/** sx_pipeline_add_ratelimit_keyed: key(call) names the key a call is limited under (a client, a route); must not block.
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_ratelimit_keyed(sx_pipeline *pl, sx_ratelimit_keyed *kl,
    uint64_t (*key)(const sx_call *call));
SX_API int sx_pipeline_add_bulkhead(sx_pipeline *pl, sx_sem *sem, unsigned flags);
SX_API int sx_pipeline_add_circuit(sx_pipeline *pl, sx_circuit *c);
/** sx_pipeline_add_circuit_keyed: a circuit per key, from reg (a SX_REGISTRY_CIRCUIT registry,
 * else -EINVAL); key(call) names the call's key and must not block. A call whose key has no
 * entry yet makes one (the registry's slow path: its lock and an allocation).
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_circuit_keyed(sx_pipeline *pl, sx_registry *reg,
    uint64_t (*key)(const sx_call *call));
/** sx_pipeline_add_bulkhead_keyed: a bulkhead per key, from reg (a SX_REGISTRY_BULKHEAD
 * registry, else -EINVAL); key as sx_pipeline_add_circuit_keyed; flags as
 * sx_pipeline_add_bulkhead. @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_bulkhead_keyed(sx_pipeline *pl, sx_registry *reg,
    uint64_t (*key)(const sx_call *call), unsigned flags);
/** sx_pipeline_add_timeout: ns > 0: any length (a deadline past 2^63 ns of CLOCK_MONOTONIC is never reached: it
 * saturates); ns < 0: no limit, so nothing is added (no pool is needed, and no layer counted);
 * 0: -EINVAL (every call would time out before it began).
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_timeout(sx_pipeline *pl, int64_t ns);
SX_API int sx_pipeline_add_retry(sx_pipeline *pl, const sx_retry_policy *policy, unsigned flags);
/** sx_pipeline_add_fallback: fallback(call, err, arg) runs when the inner layers fail with err and when(err, arg) is true
 * (when NULL: every error); its return value becomes the call's result.
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_fallback(sx_pipeline *pl, int (*fallback)(sx_call *call, int err,
    void *arg), bool (*when)(int err, void *arg), void *arg);
SX_API int sx_pipeline_add_interceptor(sx_pipeline *pl, const sx_interceptor *ic);
/** sx_pipeline_add_adaptive: an adaptive concurrency limit (<strix/adaptive.h>): before,
 * sx_adaptive_acquire (SX_EREJECTED at the limit); after, sx_adaptive_release with the inner
 * result and latency.
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_adaptive(sx_pipeline *pl, struct sx_adaptive *al);
/** sx_pipeline_add_chaos: fault injection (<strix/chaos.h>), one draw per attempt: an injected
 * error ends the attempt at once, an injected delay waits first (a tripped breaker's code ends it
 * then), an injected outcome replaces the inner result. Off: one load.
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_chaos(sx_pipeline *pl, struct sx_chaos *ch);
/**
 * sx_pipeline_add_hedge: hedging (<strix/hedge.h>) with h's delay, max_hedges, budget, counts
 * and events. The layers inside it are one attempt, run on the calling thread; if it has no
 * result after the delay (fixed, or h's observed percentile, read when the call starts: its
 * samples are the first attempts' latencies), attempt k + 1 of the inner layers starts beside
 * it as a task on h's pool k delays after the call began, for k up to max_hedges, each first
 * taking a token from h's budget (refused: that hedge does not start, the next may) and counted
 * in sx_hedge_snapshot. Hedges start only while the first attempt runs and no attempt has
 * succeeded. Each attempt has its own call->breaker (tripped by the call's breaker too) and
 * call->out; with a promise step's context, its own copy of call->ctx (set call->ctx->dtor in
 * it: the copy's dtor is the one used; sx_ctx_breaker there is still the chain's, so poll
 * call->breaker instead). The first attempt that succeeds wins: its value is the call's, the
 * others are cancelled through their breakers (-ECANCELED) and their values, and the values
 * failed attempts left, destroyed with their ctx dtor exactly once (a plain call's are
 * dropped: free them in the action when its breaker has tripped). If every attempt started
 * fails, the call returns the code of the attempt that ended last. The call returns only once
 * every attempt it started has ended, so the action must end soon when its breaker trips (on a
 * worker of h's pool the wait runs other tasks meanwhile).
 * Costs: a call that ends before its delay, an exchange and a CAS on the thread's timeout
 * record, an atomic add to h's count of calls and, about once per delay per thread, a timer (the timeouts' watch, shared with every
 * timeout layer on the thread); its first attempt runs under the thread's reusable breaker, or,
 * directly inside a timeout layer, under that timeout's breaker; under any other breaker of the
 * call, a child of it (one allocation per call). A hedge that starts allocates its breaker, and
 * a first attempt it cancels makes the reusable breaker be replaced (one allocation). The
 * errors of a call are the timeout layer's when the timer or the thread's record cannot be set up
 * (-ENOMEM, -EAGAIN, -ESHUTDOWN; -EOVERFLOW past 8 nested timeout or hedge layers on a thread).
 * @copydoc sx_pipeline_add_ratelimit */
SX_API int sx_pipeline_add_hedge(sx_pipeline *pl, struct sx_hedge *h);

/**
 * sx_pipeline_set_events - send pl's events to ev (NULL: none, the default): the layers'
 * refusals (SX_EVENT_REJECTED with the policy's code), retries (SX_EVENT_RETRY: the attempt about
 * to begin, and the error before it), timeouts (SX_EVENT_TIMEOUT) and fallbacks
 * (SX_EVENT_FALLBACK: the failure replaced), with name (borrowed; may be NULL) as their source
 * (<strix/events.h>). Emitting never blocks: a full ring drops and counts. Costs nothing on a
 * call that none of those happen to.
 * Returns 0; -EINVAL for NULL pl; -EBUSY once the pipeline has been called. Cold path; one
 * thread at a time, not concurrent with calls.
 */
SX_API int sx_pipeline_set_events(sx_pipeline *pl, struct sx_events *ev, const char *name);
/** @} */

/**
 * sx_pipeline_call - run fn(call) through pl's policies on this thread. call->arg is arg; stop
 * (may be NULL) is the caller's breaker: a tripped stop ends the call before the next layer or
 * attempt with its code. If out is not NULL it receives call->out when the call returns 0.
 * Returns what the layers make of fn's result: 0; fn's error; SX_ERATE_LIMITED, SX_EREJECTED,
 * SX_ECIRCUIT_OPEN from the policies; -ENOMEM from a keyed policy whose new key's guard could
 * not be made; -ETIMEDOUT from a timeout; stop's code; -ENOMEM,
 * -EAGAIN or -ESHUTDOWN when a timeout could not be set up (its pool's timer service refused,
 * or, -EAGAIN or -ENOMEM, the thread-specific key for timeout records could not be created: a
 * later call tries again; the layers inside it did not run), and -ESHUTDOWN also when that pool
 * shuts down during the call; -EOVERFLOW when more than 8 timeout layers are in progress on
 * this thread at once (nested pipelines); a fallback's result; -EINVAL for NULL pl or fn.
 * Blocks only where the policies or fn do (SX_PIPELINE_WAIT, retry backoff). Lock-free apart from
 * that; no allocation in steady state (see above). Any thread, concurrently.
 */
SX_API int sx_pipeline_call(sx_pipeline *pl, sx_call_fn fn, void *arg, sx_breaker *stop,
    void **out);

/**
 * What sx_pipeline_snapshot reports: counters since the pipeline was created, monotone. A call
 * that tripped several policies counts in each (a retried call whose last attempt a circuit
 * refused: one call, its retries, one rejection, one failure).
 */
typedef struct sx_pipeline_metrics {
	uint64_t calls;       /**< sx_pipeline_call / sx_pipeline_step calls run (bad input aside) */
	uint64_t failed;      /**< of which returned non-zero (after any fallback) */
	uint64_t rejected;    /**< policies' refusals: rate limit, bulkhead, circuit, adaptive
	                           (SX_ERATE_LIMITED, SX_EREJECTED, SX_ECIRCUIT_OPEN, ...), per
	                           attempt; a tripped breaker's code or -ENOMEM is not one */
	uint64_t retries;     /**< attempts a retry layer started after the first */
	uint64_t timeouts;    /**< attempts a timeout layer ended with -ETIMEDOUT */
	uint64_t hedges;      /**< extra attempts a hedge layer started */
	uint64_t fallbacks;   /**< failures a fallback layer replaced */
	uint64_t reserved[4]; /**< zero */
} sx_pipeline_metrics;

/**
 * sx_pipeline_snapshot - pl's counters into *out. Each counter is read once, so a snapshot
 * taken during calls may count a call's layers but not yet the call (or the reverse); every
 * event that happened before the snapshot began is in it. Counting costs a call no locked
 * instruction and no shared write: each thread adds to a cache line of its own (from the 33rd
 * thread alive at once, to one shared line with atomic adds).
 * Returns 0; -EINVAL for NULL pl or out. Never blocks; wait-free; any thread, concurrently with
 * calls.
 */
SX_API int sx_pipeline_snapshot(const sx_pipeline *pl, sx_pipeline_metrics *out);

/**
 * Promise steps through a pipeline: fill a sx_pipeline_step_arg (caller storage, alive until
 * the step has run) and pass sx_pipeline_step with it to sx_promise_run / then:
 * @code
 *     static sx_pipeline_step_arg fetch = { pl, fetch_fn, &conn };
 *     sx_promise_then(p, sx_pipeline_step, &fetch, &next);
 * @endcode
 * The step runs fn through pl with call->last the chain's value, call->ctx the step's context
 * and the chain's breaker as stop; call->out becomes the step's value. A value left in call->out
 * by a call that failed is destroyed with ctx->dtor if fn set one. Returns what sx_pipeline_call
 * would; -EINVAL (nothing run) for a NULL ctx, out, step argument, pipeline or fn. Blocks and
 * makes progress as sx_pipeline_call (on the pool worker that runs the step); called by the
 * promise machinery, on any worker, concurrently.
 */
typedef struct sx_pipeline_step_arg {
	/** the pipeline to run fn through */
	sx_pipeline *pipeline;
	/** the action */
	sx_call_fn fn;
	/** call->arg */
	void *arg;
} sx_pipeline_step_arg;

/** sx_pipeline_step - the promise step of sx_pipeline_step_arg. @copydoc sx_pipeline_step_arg */
SX_API int sx_pipeline_step(sx_ctx *ctx, void *last, void **out);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_PIPELINE_H */
