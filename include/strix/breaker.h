/**
 * @file
 * <strix/breaker.h>: the declarations of the breakers module (group strix_breaker).
 *
 * @defgroup strix_breaker Breakers
 * @ingroup strix
 *
 * strix breakers - cancellation signals (in the manner of Go's kamilsk/breaker).
 *
 * A breaker starts armed and trips once, for good, with an error code that never changes
 * afterwards. It can be tripped by hand (sx_breaker_create + sx_breaker_trip), by a timeout or a
 * deadline (on a pool's timer service), by an OS signal, by the first of several other breakers
 * (multiplex), or by its parent (child). Any code can check it in one atomic load
 * (sx_breaker_done), block on it (sx_breaker_wait), or ask to be called back (sx_breaker_on_done).
 *
 * State: one 32-bit atomic word (tripped flag, error code, signal number), changed by one CAS;
 * tripping is async-signal-safe and cancels a timeout breaker's timer on the spot. Callbacks: a
 * lock-free list of reference-counted nodes, closed by the trip; they run on strix's notifier
 * thread (one per process, started by the first breaker that needs it), never inside the code
 * that trips, so a trip from a signal handler or from a timer stays tiny. The same thread
 * detaches a tripped breaker from its other sources (withdraws from its inputs, restores signal
 * dispositions). A timeout or deadline breaker may outlive its pool: the pool's shutdown trips
 * it with -ESHUTDOWN.
 *
 * Error codes: -ECANCELED (sx_breaker_trip, sx_breaker_release, an empty multiplex or signal
 * set), -ETIMEDOUT (timeout, deadline), SX_ESIGNAL (signal; sx_breaker_signo tells which),
 * -ESHUTDOWN (the pool whose timer a timeout breaker used was shut down first), or the code of
 * the input that tripped a multiplex or child.
 *
 * Cancellation is synchronous: when sx_breaker_trip (or any other trip: a timer, a signal, a
 * release) has happened, every breaker derived from the tripped one - children, multiplexes,
 * grandchildren, a promise chain started with sx_promise_run_with, a fan-out's stop breaker -
 * reads as done on its next sx_breaker_done, on any thread, also when the trip was made by a
 * signal handler. A derived breaker checks its ancestors' words as well as its own; its own word
 * takes the ancestor's code the first time anything reads its code, so sx_breaker_err never
 * changes once read. Waking its sx_breaker_wait callers and running its callbacks happen a
 * moment later, on the notifier thread.
 *
 * Lifetime: every breaker a create function returns is the caller's reference; give it back
 * with sx_breaker_release once, after the last use. strix keeps internal references while a
 * timer, signal or input may still trip it, so release may be called at any time. A derived
 * breaker keeps its inputs' memory (not their armed state) until it is freed itself. "Trip, then
 * the waiter frees" is safe: a thread may release a breaker as soon as it sees it tripped, while
 * the thread that tripped it is still inside sx_breaker_trip (the trip holds its own reference
 * for as long as it touches the breaker).
 * @{
 */
#ifndef STRIX_BREAKER_H
#define STRIX_BREAKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <strix/error.h>

/* sigset_t is POSIX: strict ISO C modes (-std=c11 without a feature macro) hide it. */
#if !defined(_POSIX_C_SOURCE)
#error "strix's headers need POSIX: compile with -D_POSIX_C_SOURCE=200809L, or -std=gnu11"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** @cond */ /* declared here too, so that this header compiles alone */
typedef struct sx_pool sx_pool;
/** @endcond */
/** A breaker (opaque): made by the sx_breaker_* create functions, ended by sx_breaker_release. */
typedef struct sx_breaker sx_breaker;
/** A registered callback (opaque): sx_breaker_on_done fills it, sx_breaker_withdraw frees it. */
typedef struct sx_breaker_cb sx_breaker_cb;

/**
 * sx_breaker_create - a manual breaker: armed until sx_breaker_trip or sx_breaker_release.
 * Returns 0; -EINVAL for NULL out; -ENOMEM; -EAGAIN (strix's notifier thread, started by the
 * first breaker of the process, could not start). Cold path (allocates); never blocks but
 * for that first start (thread creation); lock-free. Any thread.
 */
SX_API int sx_breaker_create(sx_breaker **out);

/**
 * sx_breaker_timeout - a breaker that trips with -ETIMEDOUT ns nanoseconds from now, on pool's
 * timer service (its callback runs inline on the timer thread: one CAS). If the pool shuts down
 * first, it trips with -ESHUTDOWN. ns == 0 gives a breaker that is already tripped (-ETIMEDOUT);
 * ns < 0 means no time limit: a breaker that only sx_breaker_trip or sx_breaker_release ends,
 * like sx_breaker_create's (no timer, so the pool's shutdown does not trip it either).
 * Returns 0; -EINVAL for NULL pool or out; -ESHUTDOWN if pool is shut down (ns > 0); -ENOMEM;
 * -EAGAIN (the pool's timer thread, or strix's notifier thread, could not start). Nothing is
 * created on failure.
 * Allocates; never blocks but for the first use of a pool's timers; lock-free. Any thread.
 */
SX_API int sx_breaker_timeout(sx_pool *pool, int64_t ns, sx_breaker **out);

/**
 * sx_breaker_deadline - as sx_breaker_timeout, at an absolute CLOCK_MONOTONIC time in ns; a
 * deadline not in the future gives a breaker already tripped with -ETIMEDOUT (UINT64_MAX is a
 * deadline that never comes: the breaker then trips only by hand or at the pool's shutdown).
 * Same returns, blocking, progress and threads.
 */
SX_API int sx_breaker_deadline(sx_pool *pool, uint64_t abs_ns, sx_breaker **out);

/**
 * sx_breaker_signal - a breaker that trips with SX_ESIGNAL when any signal in set is delivered
 * to the process. While at least one signal breaker waits for a signal, strix's handler replaces
 * that signal's disposition (the default action, e.g. termination by SIGINT, does not happen);
 * when the last one trips or is released, the previous disposition is restored. An empty set
 * gives a breaker already tripped with -ECANCELED.
 * Returns 0; -EINVAL for NULL set or out, or a set holding a signal strix cannot catch for you
 * (SIGKILL, SIGSTOP, the synchronous SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, or the
 * C library's reserved real-time signals); -ENOMEM; -EAGAIN. Nothing changes on failure.
 * Cold path: blocks only on strix's signal registry lock. Any thread (not from a signal
 * handler).
 */
SX_API int sx_breaker_signal(const sigset_t *set, sx_breaker **out);

/**
 * sx_breaker_multiplex - a breaker that trips as soon as any of the n inputs does, with that
 * input's code (and signal number): it reads as done from the moment the input's trip has
 * happened (see the top of this file). Inputs already tripped trip it at once; n == 0 gives a
 * breaker already tripped with -ECANCELED. Tripping or releasing the multiplex does not touch
 * the inputs; the inputs may be released before it (releasing one trips it, -ECANCELED); their
 * memory is kept until the multiplex is freed.
 * Returns 0; -EINVAL for NULL out, NULL list with n > 0, or a NULL input; -ENOMEM; -EAGAIN.
 * Allocates; never blocks. Any thread.
 */
SX_API int sx_breaker_multiplex(sx_breaker *const *list, size_t n, sx_breaker **out);

/**
 * sx_breaker_child - a breaker that trips when parent does (with its code), or on its own
 * (tripping the child never trips the parent). Same as sx_breaker_multiplex(&parent, 1, out):
 * returns 0; -EINVAL for NULL parent or out; -ENOMEM; -EAGAIN. Allocates; never blocks;
 * lock-free. Any thread.
 */
SX_API int sx_breaker_child(sx_breaker *parent, sx_breaker **out);

/**
 * sx_breaker_done - whether b has tripped, or any breaker it derives from has. One atomic load
 * (acquire) for a breaker with no inputs, one more per ancestor for a derived one; never
 * blocks; wait-free; any thread and signal handlers. b must not be NULL.
 */
SX_API bool sx_breaker_done(const sx_breaker *b);

/**
 * sx_breaker_err - 0 while b is armed, then its error code, stable forever (see the top of this
 * file): for a derived breaker whose ancestor has tripped, the ancestor's code, which this call
 * makes b's own. Wait-free while b is armed or its own word is set; the call that takes an
 * ancestor's code is a trip (lock-free). Never blocks. Any thread and signal handlers. NULL:
 * -EINVAL.
 */
SX_API int sx_breaker_err(const sx_breaker *b);

/** sx_breaker_signo - the signal that tripped b, or 0 (armed, or tripped otherwise, or NULL).
 * Reads the code as sx_breaker_err does: never blocks, the same progress, any thread and
 * signal handlers. */
SX_API int sx_breaker_signo(const sx_breaker *b);

/**
 * sx_breaker_wait - block until b trips or timeout_ns passes (timeout_ns < 0: no timeout; 0:
 * just check). Returns 0 once b has tripped (read the code with sx_breaker_err); -ETIMEDOUT if
 * it is still armed when the timeout passes; -EINVAL for NULL.
 * Blocks: spins briefly, then sleeps on a futex on the breaker's word. On a pool's worker it runs
 * that pool's other tasks while it waits, as sx_promise_get does. Any thread, concurrently.
 */
SX_API int sx_breaker_wait(sx_breaker *b, int64_t timeout_ns);

/**
 * sx_breaker_on_done - call fn(b, arg) once, after b trips, on strix's notifier thread (fn must
 * not block for long: it delays other breakers' callbacks; rarely, when the trip races with a
 * sweep of withdrawn callbacks, it runs on the thread that is registering another callback).
 * If handle is not NULL it receives a handle for sx_breaker_withdraw, which must then be called
 * exactly once (also after the callback ran) to free it.
 * Returns 0; -EALREADY if b has already tripped or reads as done through an ancestor (fn is not
 * registered and never runs: check sx_breaker_err); -EINVAL for NULL b or fn; -ENOMEM; -EAGAIN
 * (notifier thread).
 * Lock-free (one CAS; now and then an amortized O(1) sweep of withdrawn callbacks); allocates
 * one node. Any thread, also from a callback.
 */
SX_API int sx_breaker_on_done(sx_breaker *b, void (*fn)(sx_breaker *b, void *arg), void *arg,
    sx_breaker_cb **handle);

/**
 * sx_breaker_withdraw - withdraw a callback and free its handle. Returns 0 if it was withdrawn
 * before it started (it will never run); -EALREADY if it has started (it runs or ran exactly
 * once; this does not wait for it); -EINVAL for NULL. Never blocks; lock-free (one CAS); any
 * thread, also from the callback itself.
 */
SX_API int sx_breaker_withdraw(sx_breaker_cb *handle);

/**
 * sx_breaker_trip - trip b with -ECANCELED. Idempotent: returns 0 if this call tripped it,
 * -EALREADY if it had tripped before or read as done through an ancestor (its code stays, or is
 * the ancestor's); -EINVAL for NULL. When it returns, b and every breaker derived from it read
 * as done on any thread. b may be released by another thread the moment it reads as done.
 * Wakes sx_breaker_wait callers, then hands callbacks and detaching to the notifier thread.
 * Lock-free, never blocks, async-signal-safe (atomics and futex wakes only). Any thread,
 * concurrently, and from signal handlers.
 */
SX_API int sx_breaker_trip(sx_breaker *b);

/**
 * sx_breaker_release - give back the caller's reference. If b is still armed it trips with
 * -ECANCELED first (so multiplexes and callbacks waiting on it hear of it). Its timer is
 * cancelled and its signal dispositions are restored before this returns; the memory goes when
 * the last internal reference does. NULL is a no-op. b must not be used afterwards.
 * Never blocks but on the signal registry lock (signal breakers). Any thread, not a handler.
 */
SX_API void sx_breaker_release(sx_breaker *b);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_BREAKER_H */
