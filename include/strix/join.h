/**
 * @file
 * <strix/join.h>: the declarations of the join module (group strix_join).
 * @defgroup strix_join Join
 * @ingroup strix
 * strix join - fork-join on the caller's stack, without allocation.
 *
 * sx_join(pool, a, a_arg, b, b_arg) runs a and b, possibly in parallel, and returns when both
 * have finished. b runs inline on the caller; a is queued as a task record that lives in
 * sx_join's own stack frame, where another worker may steal it. When b is done, a is taken back
 * and run inline if nobody took it (the common case: no atomic read-modify-write, one fence);
 * otherwise the caller runs other tasks until a's thief finishes it.
 *
 * An sx_scope forks any number of children the same way: each child's record is an sx_job that
 * the caller provides (typically an array on its stack), sx_scope_wait runs the children nobody
 * took, newest first, and helps until the rest are done.
 *
 * Recursion (fib, quicksort, tree walks) is the intended use: the records nest on the stacks of
 * the workers, as the calls do, and idle workers steal the oldest (largest) pieces first.
 *
 * Called from a worker of the pool, the fork is part of the task that worker runs: an
 * sx_pool_shutdown(SX_CANCEL) lets that task finish, so the fork still runs (the waiting worker
 * finds it wherever it is queued) and the call returns 0. Called from any other thread, the fork
 * goes to the pool's injector and the caller blocks (futex) while it waits; if SX_CANCEL discards
 * the fork before it ran, the call returns -ECANCELED.
 * @{
 */
#ifndef STRIX_JOIN_H
#define STRIX_JOIN_H

#include <stdint.h>

#include <strix/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * sx_join - run a(a_arg) and b(b_arg), possibly in parallel; return when both have finished.
 * b runs first, inline on the calling thread; a may run on another worker meanwhile, or inline
 * after b. Whatever a and b write is visible to the caller when sx_join returns.
 * Returns 0 when both ran; -EINVAL for a NULL pool, a or b (nothing runs); from a thread that is
 * not one of the pool's workers: -ESHUTDOWN once a shutdown of the pool has begun (nothing
 * runs), -ENOMEM when the thread's first submission record cannot be allocated (nothing runs),
 * -ECANCELED when sx_pool_shutdown(SX_CANCEL) discarded a before it ran (b ran).
 * Blocks until a is done: on a worker of the pool it runs other tasks meanwhile (lock-free), on
 * any other thread it sleeps on a futex. Allocates nothing. Any thread.
 */
SX_API int sx_join(sx_pool *pool, void (*a)(void *a_arg), void *a_arg, void (*b)(void *b_arg),
    void *b_arg);

/** Children a scope holds between two sx_scope_wait calls, at most. */
#define SX_SCOPE_MAX (UINT32_C(1) << 30)

/**
 * A child's task record in a scope: storage the caller provides, valid from sx_scope_spawn until
 * sx_scope_wait returns. Its fields are private; its size is part of the ABI.
 */
typedef struct sx_job {
	sx_task sx_run;              /**< private: the queued task */
	void (*sx_fn)(void *);       /**< private */
	void *sx_arg;                /**< private */
	struct sx_scope *sx_parent;  /**< private: the scope it belongs to */
	struct sx_job *sx_prev;      /**< private: the job spawned before it in its scope */
} sx_job;

/**
 * A fork-join scope: the children spawned into it since sx_scope_init (or the last
 * sx_scope_wait) are joined by sx_scope_wait. Caller storage, used by the one thread that
 * initialized it (its children may open scopes of their own). Its fields are private; its size
 * is part of the ABI.
 */
typedef struct sx_scope {
	sx_pool *sx_owner;           /**< private: the pool */
	sx_job *sx_last;             /**< private: the newest child not yet joined */
	uint32_t sx_spawned;         /**< private: children since the last wait (the owner's) */
	uint32_t sx_done;            /**< private: children finished, times 2, | a waiter flag */
	uint32_t sx_cancelled;       /**< private: children SX_CANCEL discarded */
	uint32_t sx_spare;           /**< private */
} sx_scope;

/**
 * sx_scope_init - prepare s for children run on pool.
 * Returns 0; -EINVAL for a NULL s or pool (s unchanged). Never blocks; wait-free. Any thread;
 * the scope then belongs to it.
 */
SX_API int sx_scope_init(sx_scope *s, sx_pool *pool);

/**
 * sx_scope_spawn - fork fn(arg) into s, with job as its record.
 * job must stay valid and untouched until sx_scope_wait returns. From a worker of the scope's
 * pool the child goes to the producer end of that worker's queue, where other workers may steal
 * it; from any other thread to the pool's injector.
 * Returns 0; -EINVAL for a NULL s, job or fn; -EOVERFLOW past SX_SCOPE_MAX; from outside the pool -ESHUTDOWN once its shutdown
 * has begun, -ENOMEM when the thread's first submission record cannot be allocated. On an error
 * nothing is queued and fn is never called. At most SX_SCOPE_MAX children between two waits
 * (-EOVERFLOW beyond).
 * Never blocks; wait-free on a worker but for the wake-up hint, lock-free elsewhere. Allocates
 * nothing. The scope's thread only.
 */
SX_API int sx_scope_spawn(sx_scope *s, sx_job *job, void (*fn)(void *arg), void *arg);

/**
 * sx_scope_wait - wait until every child spawned into s has finished; s is then empty and may be
 * used again (or dropped: it holds nothing).
 * Children nobody has taken run inline, newest first; on a worker of the pool the call runs other
 * tasks while stolen children finish. What the children wrote is visible when it returns.
 * Returns 0 when every child ran; -EINVAL for NULL; -ECANCELED when SX_CANCEL discarded some
 * (only possible when the scope's thread is not a worker of the pool; the others ran).
 * Blocks until the children are done (lock-free while it helps on a worker; a futex elsewhere).
 * The scope's thread only.
 */
SX_API int sx_scope_wait(sx_scope *s);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_JOIN_H */
