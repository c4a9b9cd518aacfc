/**
 * @file
 * <strix/group.h>: the declarations of the run groups and loops module (group strix_group).
 *
 * @defgroup strix_group Run groups and loops
 * @ingroup strix
 *
 * strix run groups and loops - start a process's long-lived actors together and stop them
 * together (in the manner of Go's oklog/run).
 *
 * An actor is three functions and an argument: execute blocks doing the actor's work and returns
 * 0 or a negative error code; interrupt(err, arg) makes a running execute return (close the
 * listener, trip the breaker the actor waits on) and should be sticky, since it may run before
 * execute has even started; on_failure(err, arg), optional, runs on the actor's own thread after
 * every non-zero return of execute.
 *
 * A group (sx_group_run): every actor runs on a thread of its own (actors block; they never take
 * a pool's workers). The first actor to return, with or without an error, starts the shutdown:
 * every started actor's interrupt runs once, on the thread that called sx_group_run, with that
 * actor's return value, in the order the actors were added (SX_GROUP_REVERSE: last added first;
 * SX_GROUP_SEQUENTIAL: each interrupt waits for its actor to end before the next runs, an ordered
 * shutdown). Run then waits for every actor and returns the first one's value. Which actor that
 * was, and what every actor returned, is readable afterwards (sx_group_cause, sx_group_actor).
 *
 * A shutdown deadline (opts.shutdown_ns, counted from the first return): actors still running
 * when it passes are marked stuck, reported through opts.on_stuck and sx_group_actor, and run
 * returns without them. They are never abandoned silently: sx_group_wait joins them later, and
 * sx_group_destroy leaves their threads to free the group when the last of them ends.
 *
 * A loop (sx_loop_run): the same actors, each restarted every time it returns, until a stop
 * breaker trips. A non-zero return calls on_failure and waits a backoff delay before the restart
 * (opts.backoff, a retry policy of <strix/retry.h>; by default 1 ms doubling to 1 s with equal jitter); a zero
 * return restarts at once and starts the backoff sequence afresh. When the policy says no more
 * (max_attempts consecutive failures, retry_if false, max_elapsed_ns, budget), the actor gives up
 * and stays ended. When stop trips, every interrupt runs once with stop's code and run returns
 * when every current run has ended.
 *
 * Built-in actors: sx_group_add_signals (ends on an OS signal with SX_ESIGNAL, the signal number
 * readable) and sx_group_add_breaker (ends when a breaker trips, with its code).
 *
 * Threads: create, add, run, wait and destroy are the owner's calls, one at a time and never from
 * inside an actor's functions; the read-outs (sx_group_cause, sx_group_actor) may be called from
 * any thread once run has been called (before that, not concurrently with an add).
 * Progress: adds and read-outs never block (read-outs are wait-free); run and wait block on a
 * futex, never spinning; the actors' own threads coordinate through atomics only. A group runs
 * once (by sx_group_run or sx_loop_run).
 * None of this is a hot path: creation allocates, run creates threads and blocks.
 * @{
 */
#ifndef STRIX_GROUP_H
#define STRIX_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <strix/error.h>
#include <strix/retry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A run group (opaque): sx_group_create makes one, sx_group_destroy ends it. */
typedef struct sx_group sx_group;
/** @cond */ /* declared here too, so that this header compiles alone */
typedef struct sx_breaker sx_breaker;
/** @endcond */

/** The flags of sx_group_opts. */
enum sx_group_flags {
	SX_GROUP_REVERSE = 1u << 0,    /**< interrupt the last added actor first */
	SX_GROUP_SEQUENTIAL = 1u << 1, /**< each interrupt waits for its actor to end (or the
	                                    deadline) before the next interrupt runs */
};

/** The options of a group or loop. */
typedef struct sx_group_opts {
	unsigned flags;              /**< enum sx_group_flags */
	/** How long the shutdown may take, from the first return (loop: from stop's trip) until
	 * every actor has ended; 0 or < 0: no deadline (wait for ever). */
	int64_t shutdown_ns;
	/** Called on run's thread, once per actor still running when the deadline passes, before
	 * run returns. Must not call the group's owner functions. NULL: none. */
	void (*on_stuck)(sx_group *g, unsigned actor, void *ctx);
	/** Passed to on_stuck. */
	void *ctx;
	/** sx_loop_run only: the delays between restarts after failures, and when to give up
	 * (copied at create; its clock and budget must outlive the group). NULL: the default. */
	const sx_retry_policy *backoff;
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_group_opts;

/** An sx_group_opts with every default. */
#if SX_DESIGNATED_INIT
#define SX_GROUP_OPTS_INIT { .flags = 0 }
#else
#define SX_GROUP_OPTS_INIT { 0, 0, NULL, NULL, NULL, {} }
#endif

/** The state of one actor, as sx_group_actor reports it. */
enum sx_actor_state {
	SX_ACTOR_IDLE = 0, /**< not started (run not called yet, or its thread could not start) */
	SX_ACTOR_RUNNING,  /**< its thread runs (execute, on_failure, or a loop's backoff wait) */
	SX_ACTOR_ENDED,    /**< its thread has ended (or is about to: nothing of the actor runs) */
	SX_ACTOR_STUCK,    /**< still running after the shutdown deadline passed */
};

/** One actor's state and counts (sx_group_actor). */
typedef struct sx_actor_info {
	int state;          /**< enum sx_actor_state */
	int err;            /**< execute's last return (0 before the first) */
	int signo;          /**< a signal actor's signal when err is SX_ESIGNAL, else 0 */
	bool stuck;         /**< it was still running when the deadline passed (stays true after it
	                         ends late) */
	bool gave_up;       /**< loop: the backoff policy ended its restarts */
	uint64_t runs;      /**< calls of execute so far */
	uint64_t failures;  /**< non-zero returns so far (= on_failure calls) */
	uint64_t reserved[4];        /**< set to zero: room for later fields (strix_error, "Growing structs") */
} sx_actor_info;

/**
 * sx_group_create - an empty group. opts NULL: SX_GROUP_OPTS_INIT.
 * Returns 0; -EINVAL for NULL out, unknown flags, or a backoff policy sx_retry_policy_check
 * refuses; -ENOMEM. Allocates; never blocks. Any thread.
 */
SX_API int sx_group_create(const sx_group_opts *opts, sx_group **out);

/**
 * sx_group_add - add an actor. interrupt is required (without one nothing could stop execute);
 * on_failure may be NULL. Returns the actor's index (0, 1, ... in the order added) for
 * sx_group_actor and on_stuck; -EINVAL for NULL g, execute or interrupt; -EBUSY once run has
 * been called; -ENOMEM. Nothing is added on failure. Owner thread; never blocks.
 */
SX_API int sx_group_add(sx_group *g, int (*execute)(void *arg),
    void (*interrupt)(int err, void *arg), void (*on_failure)(int err, void *arg), void *arg);

/**
 * sx_group_add_signals - add an actor that returns SX_ESIGNAL when one of the n signals in sigs
 * arrives (its number in sx_actor_info.signo and sx_group_cause), and -ECANCELED when it is
 * interrupted. sigs NULL with n 0: SIGINT and SIGTERM.
 * From the moment run starts (before any actor thread does) until the actor's thread ends,
 * strix's handler is the disposition of those signals (so SIGINT no longer kills the process);
 * the previous disposition is restored when the actor ends: after the first signal of a group,
 * or when a loop stops (a loop's actor sees every signal, also one arriving while it restarts).
 * The signals are caught by a handler that only posts them to strix's notifier thread, the one
 * thread that serves signals for the whole process; unlike sigwait or signalfd this needs no
 * signal mask in the application's other threads.
 * Returns the actor's index; -EINVAL for NULL g, NULL sigs with n > 0, sigs with n 0, or a
 * signal strix cannot catch (see sx_breaker_signal); -EBUSY once run has been called; -ENOMEM;
 * -EAGAIN (strix's notifier thread could not start). Nothing is added on
 * failure. Allocates; never blocks (its signals are caught from run on). Owner thread.
 */
SX_API int sx_group_add_signals(sx_group *g, const int *sigs, size_t n);

/**
 * sx_group_add_breaker - add an actor that returns b's code when b trips (oklog's context
 * actor), and -ECANCELED when it is interrupted (b itself is never tripped by the group).
 * The group keeps b's memory valid until it is destroyed, but releasing b trips it (see
 * sx_breaker_release): keep the caller's reference until run has returned.
 * Returns the actor's index; -EINVAL for NULL g or b; -EBUSY once run has been called; -ENOMEM;
 * -EAGAIN (strix's notifier thread could not start).
 * Nothing is added on failure. Allocates; never blocks. Owner thread.
 */
SX_API int sx_group_add_breaker(sx_group *g, sx_breaker *b);

/**
 * sx_group_run - run the group as described at the top of this file. Blocks until every actor
 * has ended or the shutdown deadline has passed.
 * Returns 0 at once for an empty group; otherwise the first actor's return value (0 when it
 * returned 0), or, when an actor's thread could not start, -EAGAIN after the actors already
 * started were interrupted (with -EAGAIN) and have ended; -EINVAL for NULL; -EBUSY if the group
 * has already run; or a built-in actor's setup error (-ENOMEM, -EAGAIN) before anything started.
 * Owner thread; blocks.
 */
SX_API int sx_group_run(sx_group *g);

/**
 * sx_loop_run - run the group as a loop (see the top of this file) until stop trips; a stop
 * already tripped starts nothing; a loop without actors just waits for stop. Returns 0 when stop
 * ended it; when every actor has given up before stop tripped, the error of the last one to give
 * up (the interrupts still run once); -EINVAL for NULL g or stop; -EBUSY if the group has already
 * run; -EAGAIN (a thread could not start: the actors already started are interrupted and not
 * restarted) or -ENOMEM as sx_group_run. Whatever ends the loop, no actor restarts once its
 * shutdown has begun. The caller keeps its reference on stop. Owner thread; blocks.
 */
SX_API int sx_loop_run(sx_group *g, sx_breaker *stop);

/**
 * sx_group_cause - which actor ended the group: its index (>= 0), with its return value in *err
 * and its signal number (SX_ESIGNAL) in *signo (either pointer may be NULL); for a loop whose
 * actors all gave up, the last one to give up. -ENOENT while no actor has (before run, an empty
 * group, a loop ended by its stop, or a thread that could not start): *err and *signo are then
 * left as they were. -EINVAL for NULL g. Never blocks; wait-free; any thread.
 */
SX_API int sx_group_cause(const sx_group *g, int *err, int *signo);

/**
 * sx_group_actor - fill *out with actor's state and counts. Returns 0; -EINVAL for NULL g or out;
 * -ENOENT for an index not added. Never blocks; wait-free; any thread (counts read while the
 * actor runs are a snapshot).
 */
SX_API int sx_group_actor(const sx_group *g, unsigned actor, sx_actor_info *out);

/**
 * sx_group_wait - wait for actors left stuck by the shutdown deadline to end, and join their
 * threads. timeout_ns < 0: no timeout; 0: just check. Returns 0 once no actor thread is left
 * (also before run and when none was stuck); -ETIMEDOUT if one still runs; -EINVAL for NULL g;
 * -EBUSY while run is in progress. Owner thread; blocks.
 */
SX_API int sx_group_wait(sx_group *g, int64_t timeout_ns);

/**
 * sx_group_destroy - free the group (NULL: no-op). Not while run is in progress. Actors still
 * running (stuck) keep the group alive: their threads are detached and the last one to end frees
 * it. Built-in actors' resources (the breaker reference) go with the group. Never blocks; owner.
 */
SX_API void sx_group_destroy(sx_group *g);

/** A loop is a group run with sx_loop_run; these names read better in loop code. */
typedef sx_group sx_loop;

/** sx_loop_create - sx_group_create, for a loop. */
static inline int sx_loop_create(const sx_group_opts *opts, sx_loop **out)
{
	return sx_group_create(opts, out);
}

/** sx_loop_add - sx_group_add, for a loop. */
static inline int sx_loop_add(sx_loop *l, int (*execute)(void *arg),
    void (*interrupt)(int err, void *arg), void (*on_failure)(int err, void *arg), void *arg)
{
	return sx_group_add(l, execute, interrupt, on_failure, arg);
}

/** sx_loop_destroy - sx_group_destroy, for a loop. */
static inline void sx_loop_destroy(sx_loop *l)
{
	sx_group_destroy(l);
}

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_GROUP_H */
