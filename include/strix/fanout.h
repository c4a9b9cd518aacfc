/**
 * @file
 * <strix/fanout.h>: the declarations of the fan-out module (group strix_fanout).
 *
 * @defgroup strix_fanout Fan-out
 * @ingroup strix
 *
 * strix fan-out - run n calls on a pool with at most `limit` in flight, stop early on the first
 * failure, and hold memory for the calls in flight only (in the manner of Go's alloter and
 * errgroup with SetLimit).
 *
 * A fan-out runs `limit` lanes: pool tasks that each claim the next few indices (one
 * fetch-and-add takes a share of what is left, a single index near the end), run those calls one
 * after the other, and go on, resubmitting themselves every few calls so other work
 * on the pool gets its turn. No worker ever waits for a permit: a call starts when one before it
 * on its lane finished. Memory is one allocation of O(limit) per fan-out, whatever n is.
 *
 * Every fan-out has a stop breaker, handed to each call: it trips on the first error (fail-fast),
 * on the overall timeout (-ETIMEDOUT), when the breaker given in the options trips (its code), or
 * on sx_promise_cancel of the asynchronous form's promise (-ECANCELED). Once it has tripped no
 * call starts; calls that are running see it through sx_breaker_done and may return early.
 * Calls already running are always waited for: no call outlives the fan-out.
 *
 * The result: 0 if every call ran and returned 0 and the stop breaker never tripped; else the
 * first error by a fixed precedence: the error a call returned (the first one recorded), then the
 * pool's shutdown (-ESHUTDOWN), then the stop breaker's code (timeout, the given breaker, a
 * cancel). An error is never lost.
 * @{
 */
#ifndef STRIX_FANOUT_H
#define STRIX_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include <strix/breaker.h>
#include <strix/pool.h>
#include <strix/promise.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A call of sx_fanout_map: index i of n. Return 0 or an error code (negative errno or SX_E*). */
typedef int (*sx_fanout_fn)(sx_breaker *stop, size_t i, void *arg);

/** A call of sx_fanout_exec. */
typedef struct sx_fanout_task {
	/** The call: returns 0 or an error code, as an sx_fanout_fn. */
	int (*fn)(sx_breaker *stop, void *arg);
	/** Passed to fn. */
	void *arg;
} sx_fanout_task;

#define SX_FANOUT_MAX_LIMIT 65536u          /**< lanes */
#define SX_FANOUT_MAX_TASKS (UINT64_C(1) << 48) /**< calls (n) per fan-out, at most */

#define SX_FANOUT_NO_FAIL_FAST 0x1u /**< an error does not stop the others; all calls run */

/** The options of a fan-out; a zero field takes its default. */
typedef struct sx_fanout_opts {
	unsigned limit;        /**< at most this many calls in flight; 0: the pool's worker count */
	sx_breaker *breaker;   /**< NULL, or a breaker whose trip stops the fan-out with its code */
	int64_t timeout_ns;    /**< > 0: stop with -ETIMEDOUT after this long; 0 or < 0: none */
	unsigned flags;        /**< SX_FANOUT_* */
	int *errors;           /**< NULL, or n ints: collect every call's outcome. errors[i] is what
	                            call i returned, or why it never ran (the stop breaker's code,
	                            -ECANCELED after a fail-fast stop, -ESHUTDOWN) */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_fanout_opts;

/** An sx_fanout_opts with every default. */
#if SX_DESIGNATED_INIT
#define SX_FANOUT_OPTS_INIT { .limit = 0 }
#else
#define SX_FANOUT_OPTS_INIT { 0, NULL, 0, 0, NULL, {} }
#endif

/**
 * sx_fanout_map - call fn(stop, i, arg) for i in [0, n) on pool, at most opts->limit at once,
 * and wait until every call that started has returned. opts may be NULL (all defaults).
 *
 * Returns 0 or the first error as the header comment orders them; -EINVAL (before anything
 * starts) for a NULL pool, a NULL fn with n > 0, n above SX_FANOUT_MAX_TASKS, a limit above
 * SX_FANOUT_MAX_LIMIT or unknown flags; -ENOMEM or -EAGAIN (memory, or strix's notifier thread
 * for the stop breaker: nothing started). n == 0 returns 0 at once.
 * Blocks the caller until done; on a worker of pool it runs other tasks meanwhile (the fan-out's
 * own calls among them), so calling it from a task cannot deadlock. Lock-free: no lock on any
 * path, one load per call and one fetch-and-add per claim of indices; allocates once per fan-out (O(limit)), never per
 * call. Any thread; the same options may be used by many fan-outs at once and again after a
 * failed one.
 */
SX_API int sx_fanout_map(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_opts *opts);

/**
 * sx_fanout_exec - sx_fanout_map over an array: tasks[i].fn(stop, tasks[i].arg). Same returns;
 * -EINVAL also for NULL tasks with n > 0 or a task with a NULL fn (checked before anything
 * starts). Blocks, makes progress and may be called exactly as sx_fanout_map.
 */
SX_API int sx_fanout_exec(sx_pool *pool, const sx_fanout_task *tasks, size_t n,
    const sx_fanout_opts *opts);

/** @{ */
/**
 * sx_fanout_map_async, sx_fanout_exec_async - start the fan-out and return at once with a promise
 * (strix/promise.h) that settles when every call that started has returned: fulfilled (value
 * NULL) on 0, rejected with the error otherwise. sx_promise_cancel stops the fan-out
 * (-ECANCELED); sx_promise_get may return before the calls finished (its own timeout, or the
 * cancel), the promise itself settles only after them. tasks, arg and opts->errors must stay
 * valid until it has settled; opts itself is copied. The caller releases the promise.
 * Same argument errors as the blocking forms, with nothing started and *out unchanged.
 * Never blocks; lock-free (one allocation, then one submit per lane). Any thread.
 */
SX_API int sx_fanout_map_async(sx_pool *pool, size_t n, sx_fanout_fn fn, void *arg,
    const sx_fanout_opts *opts, sx_promise **out);
SX_API int sx_fanout_exec_async(sx_pool *pool, const sx_fanout_task *tasks, size_t n,
    const sx_fanout_opts *opts, sx_promise **out);
/** @} */

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_FANOUT_H */
