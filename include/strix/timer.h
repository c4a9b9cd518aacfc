/**
 * @file
 * <strix/timer.h>: the declarations of the timers module (group strix_timer).
 *
 * @defgroup strix_timer Timers
 * @ingroup strix
 *
 * strix timers.
 *
 * sx_wheel is the pure data structure: a hierarchical timing wheel (levels of 64 slots with an
 * occupancy bitmap each) owned by one thread, reading time only through the sx_clock it was
 * given, so tests drive it with a virtual clock. Insert and cancel are O(1) (intrusive,
 * doubly linked timers), expiry is amortized O(1) (a timer moves down at most once per level),
 * and the next deadline is found from the bitmaps without scanning timers.
 *
 * Contract of every sx_wheel_* function: single owner. The wheel and its timers may be used by
 * one thread at a time (the caller serializes); none of them blocks or allocates, except
 * sx_wheel_create/destroy.
 *
 * sx_timer_* is the timer service built on it, for use from any thread: each pool gets one timer
 * thread (started by the pool's first sx_timer_add) that owns a wheel, advances it and sleeps
 * until the next expiry. Other threads add and cancel through a lock-free inbox and a CAS on the
 * timer's state word; see sx_timer_add below.
 * @{
 */
#ifndef STRIX_TIMER_H
#define STRIX_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <strix/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A source of time in nanoseconds, monotonic (never goes back). sleep_ns is optional: blocking
 * waits that take a clock (sx_retry, sx_ratelimit_wait) call it instead of sleeping, with a
 * duration >= 0, so a virtual clock can advance its time there; NULL means a real wait. The
 * wheel never sleeps and ignores it. */
typedef struct sx_clock {
	/** The time now, in ns (required). */
	uint64_t (*now_ns)(void *ctx);
	/** Passed to now_ns and sleep_ns. */
	void *ctx;
	/** Waits ns, or advances a virtual clock by ns; NULL: a real wait (see above). */
	void (*sleep_ns)(void *ctx, int64_t ns);
} sx_clock;

/** CLOCK_MONOTONIC. */
SX_API extern const sx_clock sx_clock_monotonic;

#define SX_WHEEL_TICK_DEFAULT_NS INT64_C(1000000)    /**< 1 ms */
#define SX_WHEEL_TICK_MIN_NS     INT64_C(10000)      /**< 10 us */
#define SX_WHEEL_TICK_MAX_NS     INT64_C(1000000000) /**< 1 s */

/** The options of sx_wheel_create. */
typedef struct sx_wheel_opts {
	int64_t tick_ns;        /**< resolution, in [TICK_MIN, TICK_MAX]; 0: 1 ms */
	const sx_clock *clock;  /**< NULL: sx_clock_monotonic; copied at create */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_wheel_opts;

/** An sx_wheel_opts with every default. */
#if SX_DESIGNATED_INIT
#define SX_WHEEL_OPTS_INIT { .tick_ns = 0 }
#else
#define SX_WHEEL_OPTS_INIT { 0, NULL, {} }
#endif

/** A timing wheel (opaque): sx_wheel_create makes one. */
typedef struct sx_wheel sx_wheel;
typedef struct sx_wheel_timer sx_wheel_timer;

/**
 * A timer: caller storage, 32 bytes (keep it 32-byte aligned and it sits in one cache line).
 * Embed it in the object the timer is about and get back to that object in the callback with
 * SX_CONTAINER_OF (strix/pool.h). Initialize with sx_wheel_timer_init; while it is pending (added
 * and neither fired nor cancelled) the wheel owns it: it must not be moved, freed or
 * re-initialized.
 */
struct sx_wheel_timer {
	/** private */
	struct sx_wheel_timer *sx_next, *sx_prev; /**< private */
	uint64_t sx_word;                         /**< private: deadline tick, place, pending */
	/** The callback, set by sx_wheel_timer_init. */
	void (*fn)(sx_wheel_timer *timer);
};

/**
 * sx_wheel_create - a wheel whose time starts now (on its clock). opts may be NULL (defaults).
 * Returns 0; -EINVAL for NULL out or a tick outside [SX_WHEEL_TICK_MIN_NS, SX_WHEEL_TICK_MAX_NS]
 * (a negative one included) or a clock without now_ns; -ENOMEM. *out is unchanged on failure.
 * Allocates; never blocks. Any thread.
 */
SX_API int sx_wheel_create(const sx_wheel_opts *opts, sx_wheel **out);

/**
 * sx_wheel_destroy - free the wheel; never fails. Timers still pending are abandoned without a
 * callback (their memory is the caller's; sx_wheel_count tells whether any are left). NULL is a
 * no-op. Never blocks; the wheel's owner, as its last call.
 */
SX_API void sx_wheel_destroy(sx_wheel *w);

/**
 * sx_wheel_timer_init - prepare a timer that calls fn(timer) when it expires (a NULL fn is
 * accepted here and refused by sx_wheel_add). Only for a timer that is not pending.
 * Returns 0; -EINVAL for a NULL t. Never blocks; wait-free; any thread (the timer is not in a
 * wheel yet).
 */
SX_API int sx_wheel_timer_init(sx_wheel_timer *t, void (*fn)(sx_wheel_timer *));

/**
 * sx_wheel_add - make t fire at the first tick boundary at or after deadline_ns (absolute, on the
 * wheel's clock). Tick boundaries are the times origin + k * tick, origin being the clock's
 * reading at sx_wheel_create; the wheel's time is the last boundary an advance has reached
 * (origin at first). t fires at the first advance whose time (the clock's reading, or now_ns)
 * is at or after its boundary; if that boundary is not after the wheel's time (a deadline in
 * the past, or in the current tick), at the next advance, whatever it reads.
 * Deadlines beyond the levels' range (2^42 ticks: 139 years at 1 ms, 1.4 years at 10 us) wait
 * on a side list and still fire on time. The wheel's time ends at its last tick: 2^48 - 1 ticks
 * after its creation (8,900 years at 1 ms, 89 years at 10 us) or the last tick boundary before
 * UINT64_MAX ns, whichever is earlier. A later deadline (UINT64_MAX included) is clamped
 * to that tick: it fires at the first advance that reaches it, at the latest at an advance to
 * UINT64_MAX ns.
 * Returns 0; -EINVAL for a NULL w or t, or a timer without fn; -EBUSY if t is already pending.
 * On failure nothing changes. O(1), wait-free, never blocks; the wheel's owner only.
 */
SX_API int sx_wheel_add(sx_wheel *w, sx_wheel_timer *t, uint64_t deadline_ns);

/** sx_wheel_add_after - sx_wheel_add at the clock's now + delay_ns (>= 0), saturating at
 * UINT64_MAX (which then fires at the wheel's last tick). Same returns, and -EINVAL for a
 * negative delay_ns (nothing changes); the clock is read only for valid arguments. */
SX_API int sx_wheel_add_after(sx_wheel *w, sx_wheel_timer *t, int64_t delay_ns);

/**
 * sx_wheel_cancel - withdraw a pending timer of w; its callback will not run.
 * Returns 0; -ENOENT if t is not pending (it already fired, was cancelled, or never added;
 * t must have been initialized); -EINVAL for a NULL w or t. A timer pending in another wheel
 * is the caller's error (not detected). O(1), never blocks, wait-free; the wheel's owner only.
 */
SX_API int sx_wheel_cancel(sx_wheel *w, sx_wheel_timer *t);

/** sx_wheel_timer_pending - whether t is added and has neither fired nor been cancelled (false
 * for NULL). Never blocks; wait-free; the wheel's owner (or any thread while t is in no wheel). */
SX_API bool sx_wheel_timer_pending(const sx_wheel_timer *t);

/**
 * sx_wheel_advance - read the clock and run the callback of every timer due by then (see
 * sx_wheel_add for the rule), earliest tick first (timers of one tick in no particular order).
 * Each timer is no longer pending when its callback runs, so the callback may add it again or
 * free it, and may add or cancel any other timer. The wheel's time during a callback is the
 * fired timer's tick: a timer added there with a later tick boundary that this advance reaches
 * fires in this advance; one whose boundary is not later fires at the next advance (so no
 * callback can keep an advance going). Returns how many fired (callbacks run).
 * Amortized O(1) per timer plus O(levels) per occupied slot passed; never blocks; the owner
 * only. A callback must not advance or destroy the wheel. NULL: returns 0.
 */
SX_API size_t sx_wheel_advance(sx_wheel *w);

/** sx_wheel_advance_to - sx_wheel_advance as if the clock read now_ns (any value; earlier ones
 * still fire the timers due at the wheel's time, but the wheel's time never goes back). Same
 * returns, cost, blocking and callers. */
SX_API size_t sx_wheel_advance_to(sx_wheel *w, uint64_t now_ns);

/**
 * sx_wheel_next_deadline - the earliest time (absolute ns on the wheel's clock) at which
 * sx_wheel_advance has something to do: a timer to fire or to move to a lower level; never later
 * than the earliest pending timer's tick boundary, and the wheel's time itself when a timer is
 * due at the next advance whatever it reads. It never wraps: a tick boundary an advance can
 * reach, except that a wheel time of exactly UINT64_MAX reads UINT64_MAX - 1. UINT64_MAX if and
 * only if nothing is pending (or w is NULL). A sleeping owner waits until then. O(levels), never
 * blocks, wait-free; the wheel's owner only.
 */
SX_API uint64_t sx_wheel_next_deadline(const sx_wheel *w);

/** sx_wheel_count - pending timers (0 for NULL). O(1), never blocks, wait-free; the owner only. */
SX_API size_t sx_wheel_count(const sx_wheel *w);

/** sx_wheel_tick_ns - the wheel's tick in ns (0 for NULL); fixed at create. Never blocks;
 * wait-free; any thread. */
SX_API uint64_t sx_wheel_tick_ns(const sx_wheel *w);

/* ---- the timer service ---------------------------------------------------------------------- */

/** @cond */ /* declared here too, so that this header compiles alone */
typedef struct sx_pool sx_pool;
/** @endcond */

/**
 * A timer callback. status is 0 when the timer expired, -ESHUTDOWN when the pool was shut down
 * before it could fire (the callback then runs on the thread that shuts the pool down, or on
 * the timer thread), -ECANCELED when SX_CANCEL shutdown discarded the task that was to run it,
 * -ENOMEM when it expired but could not be submitted as a pool task because the timer thread's
 * per-thread record in the pool could not be allocated (the callback then runs on the timer
 * thread; the pool and later timers go on). Exactly one call per accepted timer that was not
 * cancelled.
 */
typedef void (*sx_timer_fn)(void *arg, int status);

#define SX_TIMER_INLINE 0x2u /**< run the callback on the timer thread itself: only for tiny,
                                  non-blocking work (tripping a breaker, setting a flag). Without
                                  it the callback is submitted to the pool as a task. */

/** A handle to an added timer, filled by sx_timer_add or sx_timer_add_at; copy it freely. It
 * stays safe to pass to sx_timer_cancel until the pool is destroyed, even long after the timer
 * fired. */
typedef struct sx_timer {
	/** private */
	void *sx_node;
	/** private */
	void *sx_svc;
	/** private */
	uint32_t sx_key;
} sx_timer;

/** @{ */
/**
 * sx_timer_add - call fn(arg, 0) once delay_ns (>= 0; 0: at the next tick) has passed from now.
 * sx_timer_add_at - the same at an absolute CLOCK_MONOTONIC time abs_ns (one in the past fires
 * at once).
 * Any deadline is accepted: deadlines saturate at 2^63 - 1 ns (292 years), and one beyond the
 * wheel's last tick (sx_wheel_add: 89 years after the service started at the 10 us tick) fires
 * then.
 *
 * The timer fires at the first tick boundary at or after its deadline (tick: sx_pool_opts'
 * timer_tick_ns, default 1 ms), never early; late by at most one tick plus the timer thread's
 * wake-up latency. Without SX_TIMER_INLINE the callback then runs as a pool task.
 * If timer is not NULL it receives a handle for sx_timer_cancel.
 *
 * Returns 0; -EINVAL for a NULL pool or fn, unknown flags or a negative delay_ns; -ESHUTDOWN
 * once sx_pool_shutdown has begun (an add that races with shutdown either fails so, or succeeds
 * and its callback gets -ESHUTDOWN); -ENOMEM if no timer node could be allocated; -EAGAIN if the
 * pool's timer thread (started by the first add) could not be created. On failure nothing was
 * added, and *timer is unchanged, except after an -ESHUTDOWN from an add that raced with
 * shutdown: then it is zeroed (sx_timer_cancel on it returns -EINVAL).
 * Never blocks, except the very first add on a pool (it starts the timer thread under a mutex).
 * Lock-free: a node from a per-thread free list, one CAS onto the inbox, and a futex wake only
 * when the new deadline is earlier than the one the timer thread sleeps towards.
 * Any thread, concurrently, including pool workers and timer callbacks.
 */
SX_API int sx_timer_add(sx_pool *pool, int64_t delay_ns, unsigned flags, sx_timer_fn fn,
    void *arg, sx_timer *timer);
SX_API int sx_timer_add_at(sx_pool *pool, uint64_t abs_ns, unsigned flags, sx_timer_fn fn,
    void *arg, sx_timer *timer);
/** @} */

/**
 * sx_timer_cancel - withdraw a timer. Racing with expiry, exactly one side wins: either this
 * returns 0 and the callback never runs, or it returns -EALREADY and the callback runs (or ran)
 * exactly once with its status.
 *
 * Returns 0 (cancelled); -EALREADY when the timer already fired, was already cancelled, or was
 * flushed by shutdown; -EINVAL for NULL or a zero-filled handle (one sx_timer_add never
 * filled, if the caller zeroed it; other garbage is the caller's error, not detected).
 * Never blocks; lock-free (one CAS, plus one CAS to tell the timer thread to unlink it now).
 * Does not wait for a callback that is running. Any thread, concurrently, also from a callback
 * (and from a signal handler: it only touches atomics).
 */
SX_API int sx_timer_cancel(const sx_timer *timer);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_TIMER_H */
