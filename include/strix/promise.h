/**
 * @file
 * <strix/promise.h>: the declarations of the promises module (group strix_promise).
 *
 * @defgroup strix_promise Promises
 * @ingroup strix
 *
 * strix promises - chains of steps run as pool tasks (after Workshop's Promise, in Promises/A+
 * order), with cancellation checked at every step boundary and retries whose delays are timers.
 *
 * A step is `int step(sx_ctx *ctx, void *last, void **out)`: it gets the value of the step
 * before it (`last`, NULL for the first), stores its own value in *out and returns 0, or returns
 * an error code (negative errno or SX_E*; any non-zero value is an error). sx_promise_run starts
 * a chain on a pool; sx_promise_then, _catch, _finally and _recover_and_retry add steps, each
 * returning a new promise that settles with that step's outcome. Errors skip `then` steps until a
 * `catch` (or a recover_and_retry) handles them; `finally` runs whatever happened.
 *
 * A chain may also start from a promise that no step settles: sx_promise_create makes one that
 * any thread settles by hand (sx_promise_resolve, sx_promise_reject: how an event loop, a socket
 * callback or another library's completion feeds a chain), and sx_promise_delay one that a timer
 * fulfils. Their continuations run on the pool exactly as after a step.
 *
 * Every chain carries one breaker (strix/breaker.h), shared by all its promises. Before a step
 * runs, the worker checks it (one load when the chain has none yet, two when it has one): a
 * tripped breaker skips the step and settles its promise with the breaker's error (-ECANCELED
 * after sx_promise_cancel). A running step may poll sx_ctx_cancelled or block on
 * sx_ctx_breaker. The breaker is created when the chain is started with one (sx_promise_run_with:
 * the chain's breaker is then a child of the one given), cancelled, asked for by a step, waited on
 * by an outside sx_promise_get, or needed by a retry delay; chains that need none never pay for it.
 *
 * Values: `last` and the value sx_promise_get returns are borrowed: valid while the promise that
 * produced them lives (at least as long as the caller holds its reference on the promise it
 * asked, or while the step runs). A step may set ctx->dtor: the destructor then runs exactly once
 * on *out, when the promise that produced the value is freed (or at once, if the step failed).
 *
 * Memory: each promise is one allocation (combinators add their arrays to it); continuations are
 * the promises themselves, pushed with a CAS on their parent's list and scheduled as intrusive
 * pool tasks when it settles. No lock anywhere on these paths. Promises are reference counted:
 * every function that returns one gives the caller a reference; sx_promise_release gives it
 * back. A promise keeps what it depends on alive, so releasing the handles of a chain's middle
 * early is fine.
 *
 * Threads: every function may be called from any thread, workers included, unless it says
 * otherwise. A pool must outlive the promises that run on it; shutting it down settles what can
 * no longer run with -ESHUTDOWN (or -ECANCELED for tasks SX_CANCEL discards). Hand promises are
 * not the pool's to settle: see sx_promise_create.
 * @{
 */
#ifndef STRIX_PROMISE_H
#define STRIX_PROMISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/pool.h>
#include <strix/retry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A promise (opaque, reference counted): made by sx_promise_run and the functions that add
 * steps, given back with sx_promise_release. */
typedef struct sx_promise sx_promise;

/** What a step sees. Valid only during the call. */
typedef struct sx_ctx {
	void *arg;                 /**< the argument given with this step */
	unsigned attempt;          /**< 1 for a step's first run; 2, 3, ... for its retries */
	sx_promise *promise;       /**< the promise this call settles (borrowed) */
	void (*dtor)(void *value); /**< set it to have *out destroyed exactly once; NULL: not owned */
} sx_ctx;

/** A step (see above): stores its value in *out and returns 0, or returns an error code. */
typedef int (*sx_step_fn)(sx_ctx *ctx, void *last, void **out);
/** A handler of an error: err is the code the chain failed with; last is the value the failed
 * step was given (recover_and_retry) or NULL (catch). Returns 0 with a value in *out to recover,
 * or an error code. */
typedef int (*sx_recover_fn)(sx_ctx *ctx, int err, void *last, void **out);
/** Runs whatever happened: err is 0 and value the chain's value, or err the chain's error. Return
 * 0 to pass the outcome on unchanged, or an error code to fail with it instead. */
typedef int (*sx_finally_fn)(sx_ctx *ctx, int err, void *value);

/**
 * sx_ctx_breaker - the chain's breaker (created on first use), to block on or register with.
 * Borrowed: valid while the step runs. NULL only if it had to be created and memory ran out
 * (or ctx is NULL). Never blocks; lock-free; from inside the step that was given ctx.
 */
SX_API sx_breaker *sx_ctx_breaker(sx_ctx *ctx);
/** sx_ctx_cancelled - true once the chain's breaker has tripped (false for NULL). One or two
 * loads: never blocks, wait-free; from inside the step that was given ctx. */
SX_API bool sx_ctx_cancelled(const sx_ctx *ctx);

/** @{ */
/**
 * sx_promise_run - start a chain: step(ctx, NULL, &out) runs as a task on pool.
 * sx_promise_run_with - the same, with the chain's breaker a child of stop: when stop trips
 * (timeout, deadline, signal, multiplex, ...) the chain is cancelled with stop's error. The chain
 * holds no reference on stop: releasing stop trips it (-ECANCELED), and so cancels the chain;
 * release it once the chain has settled. stop NULL: as sx_promise_run.
 * Return 0 and the caller's reference in *out; -EINVAL for a NULL pool, step or out; -ESHUTDOWN
 * if pool no longer accepts tasks; -ENOMEM; -EAGAIN (the breaker's notifier thread could not
 * start). Nothing is created or run on failure. Allocates; never blocks; lock-free.
 */
SX_API int sx_promise_run(sx_pool *pool, sx_step_fn step, void *arg, sx_promise **out);
SX_API int sx_promise_run_with(sx_pool *pool, sx_breaker *stop, sx_step_fn step, void *arg,
    sx_promise **out);
/** @} */

/**
 * sx_promise_blocking - start a chain whose first step blocks: step(ctx, NULL, &out) runs on one
 * of pool's side threads for blocking work (sx_pool_spawn_blocking: created on demand up to
 * opts.blocking_max_threads, the task queued FIFO when all are busy), never on a worker; the
 * steps chained after it run on the pool's workers as after any step. The step may block as long
 * as it likes and may poll sx_ctx_cancelled or wait on sx_ctx_breaker.
 *
 * Cancel: sx_promise_cancel on the chain before the step has started settles the promise at
 * once, on the cancelling thread, with the breaker's code (-ECANCELED), and the step never runs;
 * once started, the step runs to its end. Shutdown: from the moment sx_pool_shutdown begins,
 * this returns -ESHUTDOWN; SX_DRAIN runs every queued step (and what it settles: its
 * continuations run on the pool before the workers stop); SX_CANCEL settles each step that had
 * not started with -ESHUTDOWN, exactly once, on the shutdown thread. recover_and_retry refuses
 * this promise (-EINVAL: retry the work inside the step).
 *
 * Returns 0 and the caller's reference in *out; -EINVAL for a NULL pool, step or out;
 * -ESHUTDOWN; -EAGAIN (SX_POOL_BLOCKING_QUEUE steps wait already, or the side pool could not
 * start); -ENOMEM. Nothing is created or run on failure. Allocates the promise; never blocks but
 * for a side thread's start; lock-free but for that start (a cold-path lock); any thread.
 */
SX_API int sx_promise_blocking(sx_pool *pool, sx_step_fn step, void *arg, sx_promise **out);

/**
 * sx_promise_create - a settle-by-hand promise on pool: pending, with no step, until
 * sx_promise_resolve or sx_promise_reject settles it (or sx_promise_cancel rejects it). It is a
 * chain's root like a run promise: then, catch, finally, all, any, race, get and get_until take
 * it, and its continuations run on pool as pool tasks. recover_and_retry refuses it (-EINVAL: it
 * has no step to run again).
 *
 * References. *out holds two: the caller's, given back with sx_promise_release as for any
 * promise, and the settle right, which the first sx_promise_resolve or sx_promise_reject call on
 * it uses up, whatever that call returns (0, or -EALREADY after a cancel). So the creator may
 * chain its continuations and release its handle at once, and the settler (a socket callback,
 * say) settle whenever it comes, on any thread: the promise lives until that call is over, even
 * if a cancel or a combinator rejected it meanwhile. Settle every hand promise exactly once
 * (reject it when its source goes away): one never settled keeps its memory and leaves its
 * dependents pending. A settle call after the first is valid only while its caller holds a
 * reference of its own (the creator's, kept until then); it returns -EALREADY.
 *
 * Shutdown. The pool does not track hand promises and never settles them: shutting it down
 * (SX_DRAIN or SX_CANCEL) leaves them pending, and SX_DRAIN does not wait for them. A getter on
 * one of the pool's workers returns -ESHUTDOWN under SX_CANCEL, as for every pending promise;
 * elsewhere sx_promise_get waits for the settle, a cancel, or its timeout. The settle right
 * stays valid after shutdown (until sx_pool_destroy): settling then still settles the promise,
 * and its continuations, which the pool can no longer run, settle with -ESHUTDOWN. So the
 * settler's shutdown (rejecting what it still owes) is what ends such waits.
 *
 * Returns 0 and the two references in *out; -EINVAL for a NULL pool or out; -ESHUTDOWN if pool no
 * longer accepts tasks; -ENOMEM. Allocates the promise and nothing else; never blocks;
 * lock-free; any thread.
 */
SX_API int sx_promise_create(sx_pool *pool, sx_promise **out);

/** @{ */
/**
 * sx_promise_resolve - fulfil the hand promise p (sx_promise_create) with value, which p borrows:
 * the settler keeps it valid while p lives (p never frees it).
 * sx_promise_reject - reject p with err (a negative errno or SX_E* code).
 * Settling wakes p's getters and schedules its dependents on its pool exactly as a step's end
 * does (from a worker of that pool, on that worker next; from elsewhere, through the pool's
 * injector). One settle wins: the first of these calls, unless sx_promise_cancel on p's chain (a
 * combinator over p included) rejected p with -ECANCELED before it. A cancel that comes after the
 * settle leaves p's outcome alone and cancels p's dependents only.
 *
 * The first call on p uses up its settle right (see sx_promise_create): p may be freed during
 * it, so the caller must not touch p afterwards unless it holds a reference of its own.
 * Returns 0 (this call settled p); -EALREADY if p was settled already (by an earlier call or a
 * cancel; its outcome and value are unchanged); -EINVAL for a NULL p or an err >= 0; -EPERM if p
 * was not made by sx_promise_create (no other promise may be settled from outside; use
 * sx_promise_cancel to stop one). Nothing changes on -EINVAL and -EPERM (the right is kept).
 * Never blocks; lock-free (a CAS on p's claim word, one exchange on its state, one pool
 * submission per dependent; an outside thread's first submission to a pool allocates its
 * per-thread record); any thread, concurrently with each other and with sx_promise_cancel: outside
 * the pool, on its workers, inside another promise's step, in timer and breaker callbacks (not a
 * signal handler).
 */
SX_API int sx_promise_resolve(sx_promise *p, void *value);
SX_API int sx_promise_reject(sx_promise *p, int err);
/** @} */

/**
 * sx_promise_delay - a promise that is fulfilled, with value NULL, once ns nanoseconds have
 * passed: a timer on pool's timer service (sx_timer_add: never early, late by up to a tick plus
 * the timer thread's wake-up), whose callback settles the promise as a pool task. ns == 0:
 * fulfilled before this returns, with no timer. The delay is a chain's root, like a run promise
 * (recover_and_retry refuses it: -EINVAL).
 *
 * stop may be NULL. Otherwise, as with sx_promise_run_with, the chain's breaker is a child of
 * stop: the rest of the chain is cancelled when stop trips, and the chain holds no reference on
 * stop (releasing stop trips it with -ECANCELED: release it once the chain has settled). If stop
 * trips before the timer fires, the timer is cancelled and the delay is rejected with stop's
 * code (-ETIMEDOUT, SX_ESIGNAL, ...; before this returns if stop had tripped already). If the
 * chain is cancelled first (sx_promise_cancel on the delay, on a promise chained after it, or on
 * a combinator over it), the timer is cancelled and the delay is rejected with -ECANCELED. The
 * first of these ends wins, checked with one claim word: the delay settles exactly once, and its
 * timer and breaker callback either are withdrawn or find it settled. A shutdown of the pool
 * stops the timer service first (SX_DRAIN too), so a delay still pending is rejected with
 * -ESHUTDOWN; -ECANCELED if SX_CANCEL discarded the task of a timer that had fired, -ENOMEM if
 * that task could not be submitted (see sx_timer_fn).
 *
 * Returns 0 and the caller's reference in *out; -EINVAL for a NULL pool or out, or ns < 0;
 * -ESHUTDOWN if pool no longer accepts tasks or timers; -ENOMEM; -EAGAIN (the pool's timer thread,
 * or strix's notifier thread for stop's child, could not start). Nothing is created on failure.
 * Allocates the promise (the timer's handle is inside it; the timer node comes from the timer
 * service's per-thread free list), and with stop the chain's breaker and one callback on it.
 * Never blocks, except that the first timer of a pool starts its timer thread (sx_timer_add);
 * lock-free; any thread.
 */
SX_API int sx_promise_delay(sx_pool *pool, int64_t ns, sx_breaker *stop, sx_promise **out);

/** @{ */
/**
 * sx_promise_then - step(ctx, p's value, &out) runs after p is fulfilled; if p is rejected (or the
 * chain cancelled) the step is skipped and the new promise takes p's error.
 * sx_promise_catch - fn(ctx, err, NULL, &out) runs if p is rejected (not after a cancel: a
 * cancelled chain's handlers are skipped too); a fulfilled p passes its value on unchanged.
 * sx_promise_finally - fn(ctx, err, value) runs after p settles, in every case (cancel included;
 * also when its task cannot be queued - the pool stopped, or an outside thread's record could not
 * be allocated - or a shutdown with SX_CANCEL discards it: then it runs on the thread that
 * settled p or that discarded the task, so a cleanup in it is never skipped).
 * If p has settled already, the new step is scheduled at once. Each returns 0 and the caller's
 * reference on the new promise in *out; -EINVAL for a NULL p, fn or out; -ESHUTDOWN if the step
 * must be scheduled now and the pool no longer accepts tasks; -ENOMEM. Nothing changes on
 * failure. Allocates; never blocks; lock-free.
 */
SX_API int sx_promise_then(sx_promise *p, sx_step_fn step, void *arg, sx_promise **out);
SX_API int sx_promise_catch(sx_promise *p, sx_recover_fn fn, void *arg, sx_promise **out);
SX_API int sx_promise_finally(sx_promise *p, sx_finally_fn fn, void *arg, sx_promise **out);
/** @} */

/**
 * sx_promise_recover_and_retry - if the step of p fails, recover(ctx, err, last, &v) runs and, if
 * it returns 0, p's step runs again with v as `last` (ctx->attempt 2, 3, ...); repeated until the
 * step succeeds (the new promise takes its value), recover fails (its error), the policy says no
 * more (the step's last error), or the chain is cancelled (the breaker's error). A fulfilled p
 * passes its value on. recover's ctx->attempt is the number of the attempt that failed.
 *
 * Each round: the policy decides (max attempts, counting p's own run as attempt 1; retry_if; max
 * elapsed, counted from p's failure; the budget), then the delay passes as a timer on the pool's
 * timer service (a trip of the chain's breaker ends it at once), then recover runs, then the step.
 * policy NULL: SX_RETRY_POLICY_INIT (no limit, no delay). The policy is
 * copied; its budget and clock must outlive the promise. A value recover returns with a
 * destructor is destroyed when the next one replaces it or when the new promise is freed.
 * Returns as sx_promise_then, and -EINVAL if p was not made by sx_promise_run, _run_with or _then
 * (only those have a step to run again) or the policy fails sx_retry_policy_check. Allocates;
 * never blocks (the delays are timers); lock-free; any thread.
 */
SX_API int sx_promise_recover_and_retry(sx_promise *p, sx_recover_fn recover, void *arg,
    const sx_retry_policy *policy, sx_promise **out);

/** @{ */
/**
 * sx_promise_get - wait for p to settle: 0 with its value in *value (value may be NULL), or the
 * error it was rejected with (whatever a step returned, or a code below that settled it). As
 * soon as the chain's breaker trips it returns that breaker's code, unless p had already settled
 * (then its outcome): -ECANCELED after sx_promise_cancel, or, for a chain started with
 * sx_promise_run_with, the stop breaker's code (-ETIMEDOUT, SX_ESIGNAL, -ECANCELED, ...).
 * Waits at most timeout_ns: < 0 forever, 0 just looks; -ETIMEDOUT when it runs out (the chain
 * keeps running; sx_promise_cancel it to stop it).
 * sx_promise_get_until - the same, waiting until stop trips instead: returns stop's error then.
 * Either also returns -ENOMEM or -EAGAIN when a caller off the pool could not register its wake-up
 * (the chain's breaker could not be created, or the notifier thread could not start); p is
 * unchanged then.
 *
 * Called on one of the pool's workers it runs other tasks while it waits (so recursive fork-join
 * cannot deadlock: the task it waits for is run by itself or by another worker), checking p, the
 * chain and the timeout between tasks; a task it runs may delay its return. It nests at most
 * 256 helped tasks on its stack (then it only waits; other workers take its queued tasks). With
 * nothing to run it sleeps in short slices (at most 200 us), in case new work arrives in its
 * queues. Returns -ESHUTDOWN there if the pool is being shut down with SX_CANCEL and p has not
 * settled.
 * Elsewhere it blocks on a futex, without spinning.
 * -EINVAL for a NULL p. Any thread, concurrently (many threads may wait on one promise).
 */
SX_API int sx_promise_get(sx_promise *p, int64_t timeout_ns, void **value);
SX_API int sx_promise_get_until(sx_promise *p, sx_breaker *stop, void **value);
/** @} */

/** sx_promise_settled - true once p is fulfilled or rejected (false for NULL). One load: never
 * blocks, wait-free; any thread. */
SX_API bool sx_promise_settled(const sx_promise *p);

/**
 * sx_promise_cancel - Workshop's Close: trip the chain's breaker with -ECANCELED. Steps not yet
 * started are skipped (their promises settle with -ECANCELED), a running step sees
 * sx_ctx_cancelled, retry delays end, and sx_promise_get returns -ECANCELED for every promise of
 * the chain that had not settled. Cancelling a promise made by sx_promise_all/_any/_race cancels
 * its inputs too. A chain whose root is a pending hand promise (sx_promise_create) or delay
 * (sx_promise_delay) rejects that root with -ECANCELED here, on the calling thread (a delay's
 * timer is cancelled); a root that settled first keeps its outcome. Returns 0; -EALREADY if the
 * chain's breaker had already tripped; -EINVAL for NULL; -ENOMEM (the breaker could not be
 * created). Never blocks; lock-free; any thread, concurrently (also from a step of the chain).
 */
SX_API int sx_promise_cancel(sx_promise *p);

/** @{ */
/**
 * Combinators: a new promise (a chain of its own, on pool) over list[0..n-1].
 * @code{.unparsed}
 *   all:  fulfilled when every input is, with a value that is an array of n values (input order,
 *         borrowed from the inputs, which it keeps alive); rejected with the first error, and then
 *         every other input is cancelled. n == 0: fulfilled at once with a NULL array.
 *   any:  fulfilled with the first value, then the other inputs are cancelled; rejected with the
 *         error of the input that failed last when all fail.
 *   race: settles like the first input to settle; the others are cancelled.
 * @endcode
 * Cancelling the new promise cancels every input. The caller keeps its own references on the
 * inputs. Return 0 and the caller's reference in *out; -EINVAL for a NULL pool, list (n > 0),
 * entry or out, or n == 0 for any and race; -ENOMEM (the new promise, or the breaker of a
 * pending input's chain, made here so that cancelling the inputs later needs no memory). Nothing
 * else changes on failure. Allocates; never blocks; lock-free; any thread.
 */
SX_API int sx_promise_all(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out);
SX_API int sx_promise_any(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out);
SX_API int sx_promise_race(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out);
/** @} */

/**
 * sx_promise_release - give back the caller's reference. The promise's work goes on; memory is
 * freed once nothing needs it (value destructors run then). NULL is a no-op. Use p no more
 * afterwards. Never blocks; lock-free; any thread.
 */
SX_API void sx_promise_release(sx_promise *p);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_PROMISE_H */
