/**
 * @file
 * <strix/strand.h>: the declarations of the strand module (group strix_strand).
 * @defgroup strix_strand Strand
 * @ingroup strix
 * strix strand - serial execution per key on a shared pool.
 *
 * Tasks submitted to one strand run one at a time, in submission order, each on whichever worker
 * of the pool the strand's turn lands on; tasks of different strands run in parallel. No worker
 * is ever tied up waiting for a strand and no lock is taken: a strand is one word (a closable
 * lock-free stack of its pending tasks) plus a task record of its own. Submitting to a strand
 * that has nothing to do schedules that record on the pool; the record runs the pending tasks
 * oldest first, a batch at a time, and goes idle when none are left. A strand is cheap enough to
 * have one per instrument, per connection, per actor.
 *
 * Order: if one submission happens before another (the same thread, or synchronized), the first
 * task runs first. A task's effects are visible to the strand's next task.
 *
 * Fairness: after SX_STRAND_BATCH tasks in a row a busy strand requeues itself behind the work
 * already queued on its worker, so one strand cannot keep a worker to itself.
 *
 * Shutdown: SX_DRAIN runs every task a strand holds; SX_CANCEL hands each task that did not run
 * to its cancel callback (or the pool's on_cancel for the fn form), exactly once, as for tasks
 * of the pool.
 * @{
 */
#ifndef STRIX_STRAND_H
#define STRIX_STRAND_H

#include <strix/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A strand (opaque): sx_strand_create makes one, sx_strand_destroy ends it. */
typedef struct sx_strand sx_strand;

/** Tasks a strand runs in a row before it lets its worker run other work. */
#define SX_STRAND_BATCH 64u

/**
 * sx_strand_create - make a strand whose tasks run on pool.
 * On success *out holds the strand (one small allocation from the pool's allocator; the pool
 * must outlive it). Returns 0; -EINVAL for a NULL pool or out; -ENOMEM. On failure *out is
 * unchanged. Never blocks; cold path. Any thread.
 */
SX_API int sx_strand_create(sx_pool *pool, sx_strand **out);

/**
 * sx_strand_submit - run fn(arg) on the strand, after every task submitted to it before.
 * The task node comes from the calling thread's free nodes of the pool (as sx_pool_submit).
 * Returns 0; -EINVAL for a NULL strand or fn; -ESHUTDOWN once the pool's shutdown has begun
 * (from a worker of a draining pool submission still succeeds, as for sx_pool_submit);
 * -ENOMEM if no node can be allocated. On an error nothing is queued.
 * Never blocks. Lock-free. Any thread, concurrently (also from the strand's own tasks).
 */
SX_API int sx_strand_submit(sx_strand *strand, void (*fn)(void *arg), void *arg);

/**
 * sx_strand_submit_task - run an intrusive task on the strand (task->run(task)), in order with
 * the strand's other tasks. Allocates nothing. task->run must be set; the task must not be queued
 * already; its first two fields are the strand's until run or cancel is called.
 * Returns as sx_strand_submit (-EINVAL also for a NULL task or run; -ENOMEM only for the first
 * submission of a thread outside the pool). Never blocks. Lock-free. Any thread, concurrently.
 */
SX_API int sx_strand_submit_task(sx_strand *strand, sx_task *task);

/**
 * sx_strand_destroy - end the strand once every task submitted to it has run (or been cancelled
 * by SX_CANCEL); the strand frees itself then, possibly before this call returns.
 * No submission may follow or race with this call. destroy(NULL) is a no-op. Never blocks;
 * lock-free. Any thread, including the strand's own tasks.
 */
SX_API void sx_strand_destroy(sx_strand *strand);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_STRAND_H */
