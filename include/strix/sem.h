/**
 * @file
 * <strix/sem.h>: the declarations of the semaphores module (group strix_sem).
 *
 * @defgroup strix_sem Semaphores
 * @ingroup strix
 *
 * strix semaphores - counting semaphores for bulkheads: at most `capacity` permits held at once
 * (in the manner of Go's kamilsk/semaphore, which pairs with kamilsk/breaker).
 *
 * A caller takes n permits and gives them back when done. sx_sem_try_acquire never waits;
 * sx_sem_acquire blocks the calling thread until the permits are granted or a breaker trips;
 * sx_sem_acquire_async never blocks anybody: the callback is scheduled on a pool once the
 * permits are granted, or once the breaker trips first. Waiters are served in FIFO order: a
 * waiter that asks for many permits is not overtaken by later ones that ask for few (and
 * sx_sem_try_acquire fails while anybody waits), so no waiter starves.
 *
 * State: one 64-bit atomic word holds the permits in use, the number of queued waiters and a
 * dispatch token. Try-acquire and release are one CAS on it while nobody waits; no lock anywhere.
 * A waiter is pushed on a lock-free stack (one CAS); whichever thread holds the dispatch token
 * (taken with the same CAS word, never waited for: a thread that finds it taken leaves a note and
 * returns, and the holder goes round once more) moves the stack to a FIFO list and grants
 * permits from its head. Granted waiters are woken, and callbacks scheduled, after the token is
 * handed back, so user code never runs inside the dispatch.
 *
 * Counting: "held" is counted per semaphore, not per caller: sx_sem_release gives back permits
 * that any thread took. Releasing more than are in use is an error that changes nothing.
 *
 * Lifetime: the caller owns what sx_sem_create returns and ends it with sx_sem_destroy, which
 * never fails: waiters still queued are cancelled with -ESHUTDOWN (told exactly once, like any
 * other outcome), and permits still held may be given back afterwards. Waiters, scheduled
 * callbacks and held permits keep the memory valid until the last of them is done.
 * @{
 */
#ifndef STRIX_SEM_H
#define STRIX_SEM_H

#include <stdint.h>

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A semaphore (opaque): sx_sem_create makes one, sx_sem_destroy ends it. */
typedef struct sx_sem sx_sem;

#define SX_SEM_MAX_CAPACITY 0x7fffffffu   /**< capacity and n, at most */
#define SX_SEM_MAX_WAITERS 0x1fffffffu    /**< waiters queued at once, at most */

/**
 * An sx_sem_acquire_async outcome: err 0, the permits were granted (give them back with
 * sx_sem_release); else why not: the breaker's code; -ESHUTDOWN when sx_sem_destroy cancelled
 * the request while it was queued; -ESHUTDOWN or -ENOMEM when the pool
 * refused to queue the callback after the call had returned (it then runs on the thread that
 * tried to queue it: the releasing thread or strix's breaker notifier, and permits it had been
 * granted are given back first); or -ECANCELED when the pool was shut down with SX_CANCEL while
 * the callback was queued (permits given back likewise). It runs exactly once in every case.
 */
typedef void (*sx_sem_fn)(sx_sem *sem, int err, void *arg);

/**
 * sx_sem_create - a semaphore with capacity permits (0 is allowed: every acquire waits until
 * sx_sem_set_capacity raises it, or its breaker trips). pool is where sx_sem_acquire_async
 * schedules its callbacks; it may be NULL if the asynchronous form is never used, and must
 * outlive the semaphore's callbacks otherwise.
 * Returns 0; -EINVAL for NULL out or capacity > SX_SEM_MAX_CAPACITY; -ENOMEM.
 * Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_sem_create(sx_pool *pool, uint32_t capacity, sx_sem **out);

/**
 * sx_sem_try_acquire - take n permits if they are free and nobody is waiting.
 * Returns 0 (the caller holds n permits); -EAGAIN if not (nothing changes); -EINVAL for NULL
 * sem, n == 0 or n > SX_SEM_MAX_CAPACITY.
 * Never blocks; lock-free (one CAS, retried only when another thread changed the word).
 * Any thread, concurrently; not from a signal handler.
 */
SX_API int sx_sem_try_acquire(sx_sem *sem, uint32_t n);

/**
 * sx_sem_acquire - take n permits, waiting in FIFO order until they are granted or stop trips.
 * A tripped stop fails at once, even if permits are free. stop may be NULL (wait as long as it
 * takes). n may exceed the capacity: the call then waits for sx_sem_set_capacity or stop.
 * Returns 0 (the caller holds n permits); stop's error code if it tripped first (-ETIMEDOUT for
 * a timeout breaker, ...); -ESHUTDOWN if sx_sem_destroy was called while it waited: exactly one
 * outcome, never two; -EINVAL for NULL sem, n == 0 or n > SX_SEM_MAX_CAPACITY; -EAGAIN if
 * SX_SEM_MAX_WAITERS are waiting already; -ENOMEM.
 * Blocks (a futex sleep after a short spin). On a pool worker it runs the worker's other tasks
 * while it waits, so the task that will release the permits is not stuck behind it. Lock-free
 * when the permits are free (one CAS); else allocates one waiter node and registers on stop.
 * Any thread, concurrently; not from a signal handler.
 */
SX_API int sx_sem_acquire(sx_sem *sem, uint32_t n, sx_breaker *stop);

/**
 * sx_sem_acquire_async - ask for n permits without blocking: fn(sem, err, arg) is scheduled on
 * the semaphore's pool exactly once, with err 0 when the permits are granted (in FIFO order with
 * every other waiter) or with stop's code when stop trips first (at once if it has tripped
 * already); see sx_sem_fn for the rest. stop may be NULL.
 * Returns 0 when the request is taken (fn will run exactly once); on any other return fn never
 * runs and nothing changes: -EINVAL for NULL sem or fn, n == 0, n > SX_SEM_MAX_CAPACITY, or a
 * semaphore created without a pool; -EAGAIN (SX_SEM_MAX_WAITERS waiting); -ENOMEM; -ESHUTDOWN
 * (the pool is shut down).
 * Never blocks; lock-free; allocates one node (and one breaker callback when it must wait).
 * Any thread, concurrently, also from pool tasks and sx_sem_fn callbacks.
 */
SX_API int sx_sem_acquire_async(sx_sem *sem, uint32_t n, sx_breaker *stop, sx_sem_fn fn,
    void *arg);

/**
 * sx_sem_release - give back n permits and grant them to the waiters at the head of the queue.
 * Returns 0; -EINVAL for NULL sem, n == 0, or n greater than the permits in use (nothing
 * changes: a release never overflows the count).
 * The one call allowed after sx_sem_destroy, for permits held when it was called; the release
 * that gives back the last of them frees the semaphore.
 * Never blocks; lock-free (one CAS while nobody waits; else also the dispatch, which does not
 * wait for anybody). Any thread, concurrently, also from a callback.
 */
SX_API int sx_sem_release(sx_sem *sem, uint32_t n);

/**
 * sx_sem_set_capacity - change the capacity. Growing it grants waiters at once; shrinking it
 * does not take permits back: acquisitions wait until the permits in use fall below the new
 * capacity. It applies to acquisitions that start after it returns.
 * Returns 0; -EINVAL for NULL sem or capacity > SX_SEM_MAX_CAPACITY.
 * Never blocks; lock-free. Any thread.
 */
SX_API int sx_sem_set_capacity(sx_sem *sem, uint32_t capacity);

/** sx_sem_capacity - the capacity (0 for NULL). Never blocks; wait-free; any thread. */
SX_API uint32_t sx_sem_capacity(const sx_sem *sem);

/** sx_sem_in_use - permits held right now (0 for NULL). One atomic load: never blocks,
 * wait-free; any thread. */
SX_API uint32_t sx_sem_in_use(const sx_sem *sem);

/** sx_sem_waiting - waiters queued right now (0 for NULL): neither granted nor cancelled yet. A
 * waiter whose acquire has returned is not counted. One atomic load: never blocks, wait-free;
 * any thread. */
SX_API uint32_t sx_sem_waiting(const sx_sem *sem);

/**
 * sx_sem_destroy - end the semaphore (NULL: no-op). It never fails, and loses no wait:
 *   - waiters still queued are cancelled: a thread blocked in sx_sem_acquire returns
 *     -ESHUTDOWN, a queued sx_sem_acquire_async request gets its callback with -ESHUTDOWN
 *     (exactly once, as every outcome; one whose breaker trips at the same moment may get the
 *     breaker's code instead);
 *   - permits still held stay held: their holders give them back with sx_sem_release, the one
 *     call allowed on sem afterwards (also from an sx_sem_fn callback that was granted them).
 * The memory goes when the last of these is done (destroy does not wait for them). No other
 * call may start on sem once destroy has begun, and none may run concurrently with it except
 * the blocked waits it cancels and releases of held permits (an acquire that has not started
 * waiting yet is use after destroy, as is a second destroy).
 * Never blocks; lock-free (one CAS and a dispatch that waits for nobody). Any thread, also a
 * pool task or an sx_sem_fn callback.
 */
SX_API void sx_sem_destroy(sx_sem *sem);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_SEM_H */
