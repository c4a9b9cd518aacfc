/**
 * @file
 * <strix/pool.h>: the declarations of the pool module (group strix_pool).
 *
 * @defgroup strix_pool Pool
 * @ingroup strix
 *
 * strix pool - a lock-free, work-stealing task executor.
 *
 * A pool owns N worker threads. Each worker has a local queue (a ck_ring used single-producer /
 * multi-consumer) plus a one-task LIFO slot for the task that should run next. Tasks submitted from
 * threads outside the pool go through a lock-free injector (an intrusive ck_stack). Idle workers
 * steal about half of another worker's queue in one CAS, spin for a configurable budget, then
 * park on a futex.
 *
 * Two ways to hand work to a pool:
 *   - sx_pool_submit(pool, fn, arg): strix supplies the task node from per-thread magazines of
 *     free nodes (no malloc per task in steady state);
 *   - sx_pool_submit_task(pool, &task): the caller embeds an sx_task in its own struct; strix
 *     allocates nothing.
 *
 * Guarantee: a task that was accepted (submit returned 0) either runs exactly once, or - only
 * under sx_pool_shutdown(SX_CANCEL) - is handed exactly once to its cancel callback with
 * -ECANCELED. Nothing is dropped silently.
 *
 * Thread-safety summary: every function may be called from any thread concurrently, except
 * sx_pool_destroy, which must be the last call on the pool. Calls made from inside one of the
 * pool's own workers take the local (faster) path automatically.
 * @{
 */
#ifndef STRIX_POOL_H
#define STRIX_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <strix/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A pool (opaque): sx_pool_create makes one, sx_pool_destroy ends it. */
typedef struct sx_pool sx_pool;
typedef struct sx_task sx_task;

/**
 * An intrusive task: embed it in your own struct and recover the struct in run() with
 * SX_CONTAINER_OF. While the task is queued its first two fields belong to strix; the caller
 * must not touch the task from submit until run() or cancel() is called. After that the memory
 * is the caller's again (it may be freed or resubmitted from inside run()).
 */
struct sx_task {
	struct sx_task *sx_next;         /**< private: queue link (the next task queued) */
	struct sx_task *sx_chain_tail;   /**< private: set on the head of an injector chain */
	/** Runs the task (required). */
	void (*run)(struct sx_task *task);
	/** Called instead of run() with -ECANCELED when the pool is shut down with SX_CANCEL before
	 * the task ran. May be NULL: the task is then counted in sx_pool_stats' cancelled. */
	void (*cancel)(struct sx_task *task, int err);
};

/** An initializer for an sx_task: SX_TASK_INIT(run, cancel). */
#define SX_TASK_INIT(run_fn, cancel_fn) { NULL, NULL, (run_fn), (cancel_fn) }
/** The struct of type `type` whose member `member` is at ptr (an sx_task, an sx_wheel_timer). */
#define SX_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/**
 * A memory allocator for the pool's own structures and its task-node slabs. alloc returns memory
 * aligned to `align` (a power of two, at most 4096) or NULL; free receives the size and alignment
 * that were allocated. Both may be called from any worker or submitting thread concurrently, but
 * never on the path of a single task in steady state (only when the free nodes run dry, when an
 * outside thread first submits, and at create/destroy).
 */
typedef struct sx_allocator {
	/** Returns size bytes aligned to align, or NULL (see above). */
	void *(*alloc)(void *ctx, size_t size, size_t align);
	/** Frees ptr, with the size and alignment it was allocated with. */
	void (*free)(void *ctx, void *ptr, size_t size, size_t align);
	/** Passed to alloc and free. */
	void *ctx;
} sx_allocator;

/** The default allocator: jemalloc's mallocx/sdallocx, linked privately into strix so that linking
 * strix never replaces the application's malloc. (Sanitizer builds use the C library instead.) */
SX_API extern const sx_allocator sx_allocator_default;

/**
 * sx_allocations - how many blocks sx_allocator_default has handed out on the calling thread so
 * far (every module's memory, and pools that use the default allocator). Take it before and
 * after a code path to check that the path allocates nothing in steady state. Never fails or
 * blocks; wait-free; any thread (each sees its own count).
 */
SX_API uint64_t sx_allocations(void);

#define SX_SPIN_DEFAULT INT64_C(0)    /**< 50 microseconds */
#define SX_SPIN_NONE    INT64_C(-1)   /**< park as soon as a search for work fails */
#define SX_SPIN_FOREVER INT64_C(-2)   /**< never park: busy-poll (lowest latency, burns a core per
                                           worker) */

#define SX_POOL_PIN 0x1u /**< pin worker i to CPU (i mod number of online CPUs) */

#define SX_POOL_MAX_WORKERS   1024u      /**< sx_pool_opts.workers and max_workers, at most */
/** sx_pool_opts.max_workers when 0: 4 times the initial workers, but at least this (and at most
 * SX_POOL_MAX_WORKERS). */
#define SX_POOL_DEFAULT_MAX_WORKERS 256u
#define SX_POOL_MIN_RING      4u         /**< sx_pool_opts.ring_size, at least */
#define SX_POOL_MAX_RING      (1u << 20) /**< sx_pool_opts.ring_size, at most */
#define SX_POOL_DEFAULT_RING  256u       /**< sx_pool_opts.ring_size when 0 */
#define SX_POOL_BLOCKING_MAX_THREADS 4096u /**< sx_pool_opts.blocking_max_threads, at most */
#define SX_POOL_BLOCKING_DEFAULT_THREADS 512u /**< sx_pool_opts.blocking_max_threads when 0 */
#define SX_POOL_BLOCKING_DEFAULT_IDLE_NS INT64_C(10000000000) /**< blocking_idle_ns when 0 */
#define SX_POOL_BLOCKING_QUEUE 16384u    /**< blocking tasks that may wait for a side thread */

/** The options of sx_pool_create; a zero field takes its default. */
typedef struct sx_pool_opts {
	unsigned workers;        /**< 0: number of online CPUs; at most SX_POOL_MAX_WORKERS */
	unsigned ring_size;      /**< local ring slots, a power of two in [MIN_RING, MAX_RING]; 0: 256 */
	int64_t spin_ns;         /**< idle spin before parking, at most: > 0 ns, or an SX_SPIN_*
	                              value (other negative values are refused); 0: SX_SPIN_DEFAULT.
	                              Each worker spins less while spinning does not pay: work
	                              that turns up during a spin or within spin_ns of parking
	                              doubles its budget (up to spin_ns), a longer sleep halves it
	                              (to 0: park at once), so a mostly idle pool stops burning
	                              CPU and bursty work keeps its hand-offs without wake-ups */
	unsigned lifo_cap;       /**< max consecutive runs from the LIFO slot, at most 1024; 0: 4 */
	unsigned flags;          /**< SX_POOL_* */
	const sx_allocator *allocator; /**< NULL: sx_allocator_default; copied at create */
	/** Called for every fn-form task (sx_pool_submit) that SX_CANCEL discards, with -ECANCELED,
	 * on the thread calling sx_pool_shutdown. NULL: such tasks are only counted. */
	void (*on_cancel)(void (*fn)(void *), void *arg, int err);
	/** Resolution of the pool's timer service (sx_timer_add), in [SX_WHEEL_TICK_MIN_NS,
	 * SX_WHEEL_TICK_MAX_NS] of <strix/timer.h>; 0: 1 ms. */
	int64_t timer_tick_ns;
	/** The most side threads for blocking work (sx_pool_spawn_blocking) alive at once, at most
	 * SX_POOL_BLOCKING_MAX_THREADS; 0: SX_POOL_BLOCKING_DEFAULT_THREADS. */
	unsigned blocking_max_threads;
	/** The most workers the pool may ever have at once (sx_pool_resize, and the compensating
	 * workers of sx_pool_block_in_place), at least workers and at most SX_POOL_MAX_WORKERS;
	 * worker indices stay below it. 0: SX_POOL_DEFAULT_MAX_WORKERS's rule. */
	unsigned max_workers;
	/** How long a side thread waits for blocking work before it exits, > 0 ns; 0:
	 * SX_POOL_BLOCKING_DEFAULT_IDLE_NS (10 s); negative values are refused. */
	int64_t blocking_idle_ns;
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_pool_opts;

/** An sx_pool_opts with every default. */
#if SX_DESIGNATED_INIT
#define SX_POOL_OPTS_INIT { .spin_ns = SX_SPIN_DEFAULT }
#else
#define SX_POOL_OPTS_INIT { 0, 0, SX_SPIN_DEFAULT, 0, 0, NULL, NULL, 0, 0, 0, 0, {} }
#endif

/** Per-worker counters. Each is written only by its worker; a snapshot taken while the pool runs
 * is approximate but every counter is monotone. */
typedef struct sx_worker_counters {
	uint64_t executed;       /**< tasks this worker ran */
	uint64_t stolen;         /**< tasks it took from other workers' rings or LIFO slots */
	uint64_t steals;         /**< successful steal operations (each takes about half a ring) */
	uint64_t steal_attempts; /**< steal operations it tried on a victim */
	uint64_t parks;          /**< times it went to sleep on its futex */
	uint64_t wakeups;        /**< times another thread woke it */
	uint64_t injected;       /**< tasks it took out of the injector */
	uint64_t overflowed;     /**< tasks it moved from its full ring to the injector */
	uint64_t lifo_runs;      /**< tasks it ran from its LIFO slot */
	uint64_t reserved[4];        /**< set to zero: room for later fields (strix_error, "Growing structs") */
} sx_worker_counters;

/** The pool's counters, as sx_pool_stats fills them in. */
typedef struct sx_pool_counters {
	/** the pool's worker count now: the workers taking tasks (sx_pool_workers) */
	unsigned workers;
	uint64_t submitted;      /**< tasks accepted, from anywhere */
	uint64_t remote;         /**< of those, submitted from outside the pool (via the injector) */
	uint64_t executed;       /**< sum of workers' executed */
	uint64_t cancelled;      /**< tasks handed to cancel at SX_CANCEL shutdown (or only counted) */
	uint64_t timers_pending; /**< timers in the timer service's wheel as of its last wake-up
	                              (cancels are unlinked when it next wakes) */
	sx_worker_counters total;   /**< the per-worker counters summed */
	uint64_t blocking_threads;  /**< side threads for blocking work alive now (counted while they
	                                 may take work; one that retires stops counting first) */
	uint64_t blocking_queued;   /**< blocking tasks waiting for a side thread now */
	uint64_t retired;        /**< workers retired so far (sx_pool_resize, sx_pool_block_in_place) */
	/** worker slots used so far (at most max_workers): per_worker entries worth asking for */
	unsigned slots;
	unsigned max_workers;    /**< the pool's max_workers (sx_pool_opts) */
	uint64_t reserved[4];        /**< set to zero: room for later fields (strix_error, "Growing structs") */
} sx_pool_counters;

/** The modes of sx_pool_shutdown: SX_DRAIN runs what is queued first, SX_CANCEL hands it to
 * the cancel callbacks (see sx_pool_shutdown). */
enum { SX_DRAIN = 1, SX_CANCEL = 2 };

/**
 * sx_pool_create - start a pool.
 *
 * opts may be NULL (all defaults). Starts the workers before returning; on success *out holds the
 * pool. Returns 0; -EINVAL for NULL out, a worker count above SX_POOL_MAX_WORKERS, a ring size
 * that is not a power of two in range, a negative spin other than SX_SPIN_*, unknown flags or a
 * timer_tick_ns out of range; -ENOMEM if the allocator fails; -EAGAIN if a thread or a
 * thread-specific key cannot be created.
 * On failure nothing is left allocated or running and *out is unchanged.
 * Blocking (thread creation); cold path, takes no pool lock. Any thread.
 */
SX_API int sx_pool_create(const sx_pool_opts *opts, sx_pool **out);

/**
 * sx_pool_submit - run fn(arg) on the pool.
 *
 * From a worker of this pool the task goes to that worker's LIFO slot if the slot is empty (it
 * runs next: a continuation or a message hand-off stays on the worker, hot in cache), otherwise
 * to the tail of its local ring; from any other thread it goes to the injector and wakes a
 * parked worker if none is searching. The task node comes from a per-thread magazine of free
 * nodes; only when none is left anywhere is the allocator called (one slab for many tasks).
 * Returns 0; -EINVAL for a NULL pool or fn; -ESHUTDOWN once sx_pool_shutdown has begun (from a
 * worker of a pool that is draining, spawning still succeeds: drain runs what tasks spawn);
 * -ENOMEM if no free node is left and the allocator fails (the pool stays usable).
 * Never blocks. Lock-free (wait-free on the local path but for the wake-up hint).
 * Any thread, concurrently.
 */
SX_API int sx_pool_submit(sx_pool *pool, void (*fn)(void *arg), void *arg);

/**
 * sx_pool_submit_task - run an intrusive task: task->run(task). Allocates nothing.
 *
 * task->run must be set; task->cancel may be NULL. The task must not be queued already.
 * Returns 0; -EINVAL for a NULL pool, task or run; -ESHUTDOWN as for sx_pool_submit; -ENOMEM only
 * the first time a thread outside the pool submits to it (its per-thread record is allocated).
 * Never blocks. Lock-free. Any thread, concurrently.
 */
SX_API int sx_pool_submit_task(sx_pool *pool, sx_task *task);

/**
 * sx_pool_yield_task - queue an intrusive task behind the work already queued on this worker.
 *
 * From a worker of this pool the task goes to the tail of that worker's local ring (never its
 * LIFO slot), so every task queued there before it runs first and other workers may steal it: a
 * long computation that resubmits its own task this way after each slice yields the worker, as
 * tokio's yield_now or Go's runtime.Gosched do. From any other thread it is sx_pool_submit_task.
 * The rules for task and the return codes are sx_pool_submit_task's.
 * Never blocks. Lock-free (wait-free on the local path but for an overflowing ring and the
 * wake-up hint). Any thread, concurrently.
 */
SX_API int sx_pool_yield_task(sx_pool *pool, sx_task *task);

/**
 * sx_pool_spawn_blocking - run fn(arg) on one of the pool's side threads for blocking work
 * (a blocking system call, a sleep, a library without a non-blocking API), so that it does not
 * hold a worker: the workers keep running the pool's tasks meanwhile, as with tokio's
 * spawn_blocking.
 *
 * Side threads are created on demand: the first spawn starts the side pool (a pool that never
 * blocks has none); a spawn that finds no side thread waiting for work starts one, as long as
 * fewer than opts.blocking_max_threads are alive; otherwise the task waits in the side pool's
 * FIFO queue (at most SX_POOL_BLOCKING_QUEUE tasks) until a side thread is free. A side thread
 * that finds no work for opts.blocking_idle_ns exits. At most blocking_max_threads blocking
 * tasks run at any instant. If no side thread can be created at all (the system refuses), the
 * task stays queued until a later spawn's thread, or the shutdown, runs it.
 *
 * Shutdown: from the moment sx_pool_shutdown begins, every spawn returns -ESHUTDOWN (from
 * workers and side threads too). SX_DRAIN then runs every queued blocking task before the
 * workers stop (side threads may submit pool tasks meanwhile: they run too); SX_CANCEL lets
 * running blocking tasks finish and hands each queued one, exactly once on the thread calling
 * shutdown, to opts.on_cancel(fn, arg, -ECANCELED) (counted in sx_pool_stats' cancelled; only
 * counted if on_cancel is NULL), as for a cancelled sx_pool_submit task. Side threads are joined
 * before sx_pool_shutdown returns.
 *
 * fn may block for as long as it likes; it must not wait for the pool's shutdown or destroy.
 * Returns 0; -EINVAL for a NULL pool or fn; -ESHUTDOWN as above; -EAGAIN when
 * SX_POOL_BLOCKING_QUEUE tasks wait already (or the first spawn could not start the side pool's
 * thread-local key); -ENOMEM if no task node or the side pool's memory can be had.
 * Never blocks but for a thread start. Lock-free, except where a side thread must be started:
 * the first spawn and a spawn that starts a thread take the side pool's cold-path lock and call
 * pthread_create. Any thread, concurrently.
 */
SX_API int sx_pool_spawn_blocking(sx_pool *pool, void (*fn)(void *arg), void *arg);

/**
 * sx_pool_spawn_blocking_task - the intrusive form of sx_pool_spawn_blocking: a side thread calls
 * task->run(task). Under SX_CANCEL a task no side thread took is handed to task->cancel(task,
 * -ECANCELED) instead (only counted if cancel is NULL), exactly once, on the shutdown thread.
 * The task rules are sx_pool_submit_task's (run set, not queued already, the caller's memory
 * again once run or cancel is called). Returns as sx_pool_spawn_blocking (-EINVAL also for a NULL
 * task or run). Allocates nothing but the side pool itself on the first call. Lock-free as
 * sx_pool_spawn_blocking. Any thread, concurrently.
 */
SX_API int sx_pool_spawn_blocking_task(sx_pool *pool, sx_task *task);

/**
 * sx_pool_wait_idle - wait until no task is queued or running.
 *
 * Returns 0 once the pool was observed idle at one instant (every accepted task had finished,
 * including the tasks they spawned; blocking work on side threads is not waited for); -EINVAL for NULL; -EDEADLK when called from one of the
 * pool's own workers (it would wait for itself); -ESHUTDOWN if the pool was shut down with
 * SX_CANCEL. Other threads may keep submitting; the call then returns at some idle instant or
 * keeps waiting.
 * Blocks (futex), without spinning a core. Any thread outside the pool, concurrently.
 */
SX_API int sx_pool_wait_idle(sx_pool *pool);

/**
 * sx_pool_shutdown - stop the pool's timer service (pending timers get their callback with
 * -ESHUTDOWN, on the calling thread or the timer thread), then exactly one of:
 * @code{.unparsed}
 *   SX_DRAIN:  refuse new submissions from outside, run everything queued and everything those
 *              tasks spawn, then stop the workers.
 *   SX_CANCEL: refuse new submissions, let running tasks finish, stop the workers, then hand every
 *              task that never ran to its cancel callback (or opts.on_cancel for the fn form) with
 *              -ECANCELED, exactly once, on the calling thread.
 * @endcode
 * Blocking work (sx_pool_spawn_blocking) is settled after the timer service and before the
 * workers: SX_DRAIN runs what is queued, SX_CANCEL hands it to its cancel callbacks (see there).
 * Afterwards every submit returns -ESHUTDOWN. Worker and side threads are joined before it
 * returns. Returns 0; -EINVAL for a NULL pool or a mode that is not exactly one of the two;
 * -EDEADLK from one of the pool's own workers or side threads; -ESHUTDOWN if a shutdown was
 * already started (that one wins).
 * Blocks until the workers have exited (a worker inside sx_pool_block_in_place exits once its
 * fn has returned). Any thread outside the pool.
 */
SX_API int sx_pool_shutdown(sx_pool *pool, int mode);

/**
 * sx_pool_destroy - shut down (SX_DRAIN, unless already shut down) and free everything.
 *
 * destroy(NULL) is a no-op. Must be the last call on the pool: no other thread may use it
 * concurrently or afterwards. Blocking. Any thread outside the pool.
 */
SX_API void sx_pool_destroy(sx_pool *pool);

/**
 * sx_pool_stats - snapshot the counters.
 *
 * Fills *out (totals) and, when per_worker is not NULL, the first min(n, out->slots) entries of
 * per_worker: entry i is worker slot i's (the worker whose sx_pool_worker_index is i; a slot's
 * counters carry on from a retired worker to the next one that takes its index). Returns 0;
 * -EINVAL for a NULL pool or out. Never blocks; wait-free (reads only). Any thread,
 * concurrently with everything but destroy.
 */
SX_API int sx_pool_stats(sx_pool *pool, sx_pool_counters *out, sx_worker_counters *per_worker, unsigned n);

/**
 * sx_pool_worker_index - the index of the calling worker within pool, or -1 when the caller is
 * not one of pool's workers (or pool is NULL): a value, not an error. A pool that is never
 * resized numbers its workers 0..workers-1; indices are always below the pool's max_workers
 * (so arrays sized by it at create stay valid), fixed for a worker's life, and a retired
 * worker's index may be taken by a later one. Never blocks; wait-free; any thread.
 */
SX_API int sx_pool_worker_index(const sx_pool *pool);

/**
 * sx_pool_workers - the pool's worker count now (0 for NULL): the workers taking tasks, which
 * sx_pool_resize sets; a worker inside sx_pool_block_in_place is not counted, its compensating
 * worker is. Never blocks; wait-free; any thread.
 */
SX_API unsigned sx_pool_workers(const sx_pool *pool);

/**
 * sx_pool_resize - change the pool's worker count while it runs.
 *
 * Growing starts new worker threads, which steal, park and poll like the others. Shrinking asks
 * the workers of the highest indices to retire: each sees the request between two tasks (at its
 * next look at the injector, every few dozen tasks, or when its own queues run dry), takes no
 * new one, hands what is queued on it (its ring and LIFO slot) to the injector, where the
 * remaining workers find it, and exits; its memory is reclaimed once no other thread can read it (the
 * pool's epoch domain). No task is lost or run twice; the caller's own worker may be one of
 * those that retire (after its current task). Workers inside sx_pool_block_in_place are not
 * counted and never asked to retire.
 *
 * From a thread outside the pool the call blocks until the retiring workers have exited (each
 * finishes its current task first; a task that waits for the caller deadlocks it) and, when
 * growing needs the slots of retirements still under way, until those have. From one of the
 * pool's own workers it never waits for a task to end: retirement is asynchronous (the workers
 * are joined by a later resize or by shutdown; a grow may take back a retirement not begun yet,
 * or join a worker that has run its last task), and a grow that finds too few free slots fails
 * with -EAGAIN. Slots are held by live workers, by workers blocked in place, and (from a worker)
 * by retirements still finishing their current task. Either way it takes the pool's resize lock, a cold-path mutex,
 * and starts threads.
 * Returns 0; -EINVAL for a NULL pool, 0 workers or more than the pool's max_workers (nothing
 * changes); -ESHUTDOWN once sx_pool_shutdown has begun; -EAGAIN when no thread can be started or
 * (from a worker) too few slots are free; -ENOMEM when a worker's memory cannot be allocated.
 * On -EAGAIN or -ENOMEM the workers started before the failure stay (sx_pool_workers tells).
 * Any thread, concurrently with everything but destroy.
 */
SX_API int sx_pool_resize(sx_pool *pool, unsigned workers);

/**
 * sx_pool_block_in_place - run fn(arg), a call that blocks, on the calling worker without
 * stalling the tasks queued behind it.
 *
 * On one of the pool's workers: first its queued tasks (its ring and LIFO slot) go to the
 * injector, and a compensating worker starts in its place (when a slot below max_workers is
 * free and the pool is not shutting down), so the pool keeps its worker count while fn blocks;
 * then fn(arg) runs on this thread, which stays the pool's worker (tasks fn submits queue on it
 * and other workers steal them). When fn returns, the worker counts again and one worker beyond
 * the count asked for - the compensating one, if it still runs - retires as sx_pool_resize's do
 * (asynchronously: this call does not wait for it). Without a free slot fn still runs, and the
 * handed-off tasks wait for the other workers (with none, until fn returns). Calls nest: only the outermost hands off
 * and compensates. From any other thread (or with pool not the caller's pool) it just runs
 * fn(arg). fn must not call sx_pool_wait_idle or sx_pool_shutdown on this pool.
 * Returns 0 once fn has returned; -EINVAL for a NULL pool or fn (fn is not called).
 * Blocks for as long as fn does; around it, takes the pool's resize lock and may start a
 * thread. Any thread.
 */
SX_API int sx_pool_block_in_place(sx_pool *pool, void (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_POOL_H */
