/*
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
 * sx_wheel_create/destroy. (The timer service built on it, for use from any thread, is a later
 * part of this module.)
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

/* A source of time in nanoseconds, monotonic (never goes back). */
typedef struct sx_clock {
	uint64_t (*now_ns)(void *ctx);
	void *ctx;
} sx_clock;

/* CLOCK_MONOTONIC. */
SX_API extern const sx_clock sx_clock_monotonic;

#define SX_WHEEL_TICK_DEFAULT_NS 1000000ull /* 1 ms */
#define SX_WHEEL_TICK_MIN_NS     10000ull   /* 10 us */
#define SX_WHEEL_TICK_MAX_NS     1000000000ull /* 1 s */

typedef struct sx_wheel_opts {
	uint64_t tick_ns;       /* resolution, in [TICK_MIN, TICK_MAX]; 0: 1 ms */
	const sx_clock *clock;  /* NULL: sx_clock_monotonic; copied at create */
} sx_wheel_opts;

#define SX_WHEEL_OPTS_INIT { 0, NULL }

typedef struct sx_wheel sx_wheel;
typedef struct sx_wheel_timer sx_wheel_timer;

/*
 * A timer: caller storage, 48 bytes. Initialize with sx_wheel_timer_init; while it is pending
 * (added and neither fired nor cancelled) the wheel owns its links and it must not be moved,
 * freed or re-initialized.
 */
struct sx_wheel_timer {
	struct sx_wheel_timer *sx_next, *sx_prev; /* private */
	uint64_t sx_deadline;                     /* private: in ticks since the wheel's origin */
	void (*fn)(sx_wheel_timer *timer, void *arg);
	void *arg;
	uint8_t sx_level, sx_slot;                /* private */
	uint16_t sx_state;                        /* private */
	uint32_t sx_pad;
};

/*
 * sx_wheel_create - a wheel whose time starts now (on its clock).
 * Returns 0; -EINVAL for NULL out or a tick outside [SX_WHEEL_TICK_MIN_NS, SX_WHEEL_TICK_MAX_NS]
 * or a clock without now_ns; -ENOMEM. *out is unchanged on failure. Cold path, any thread.
 */
SX_API int sx_wheel_create(sx_wheel **out, const sx_wheel_opts *opts);

/*
 * sx_wheel_destroy - free the wheel. Timers still pending are abandoned without a callback
 * (their memory is the caller's; sx_wheel_count tells whether any are left). NULL is a no-op.
 */
SX_API void sx_wheel_destroy(sx_wheel *w);

/* sx_wheel_timer_init - prepare a timer that calls fn(timer, arg) when it expires. */
SX_API void sx_wheel_timer_init(sx_wheel_timer *t, void (*fn)(sx_wheel_timer *, void *),
    void *arg);

/*
 * sx_wheel_add - make t fire at the first sx_wheel_advance at or after deadline_ns (absolute, on
 * the wheel's clock). A deadline in the past fires at the next advance. Deadlines beyond the
 * wheel's range (2^42 ticks: 139 years at 1 ms, 1.4 years at 10 us) wait on a side list and
 * still fire on time. Returns 0; -EINVAL for NULL or a timer without fn; -EBUSY if t is
 * already pending. O(1), wait-free, never blocks; the wheel's owner only.
 */
SX_API int sx_wheel_add(sx_wheel *w, sx_wheel_timer *t, uint64_t deadline_ns);

/* sx_wheel_add_after - sx_wheel_add at the clock's now + delay_ns. Same returns. */
SX_API int sx_wheel_add_after(sx_wheel *w, sx_wheel_timer *t, uint64_t delay_ns);

/*
 * sx_wheel_cancel - withdraw a pending timer; its callback will not run.
 * Returns 0; -ENOENT if t is not pending (it already fired, was cancelled, or never added);
 * -EINVAL for NULL. O(1), wait-free; the wheel's owner only.
 */
SX_API int sx_wheel_cancel(sx_wheel *w, sx_wheel_timer *t);

/* sx_wheel_timer_pending - whether t is added and has neither fired nor been cancelled. */
SX_API bool sx_wheel_timer_pending(const sx_wheel_timer *t);

/*
 * sx_wheel_advance - read the clock and run the callback of every timer whose deadline has
 * passed, earliest first (timers of one tick in no particular order). Each timer is no longer
 * pending when its callback runs, so the callback may add it again (it then fires no earlier
 * than the next tick) or free it. Returns how many fired. Amortized O(1) per timer plus
 * O(levels) per occupied slot passed; never blocks; the owner only. A callback must not
 * destroy the wheel. NULL: returns 0.
 */
SX_API size_t sx_wheel_advance(sx_wheel *w);

/* sx_wheel_advance_to - sx_wheel_advance as if the clock read now_ns (earlier values are
 * ignored: wheel time never goes back). */
SX_API size_t sx_wheel_advance_to(sx_wheel *w, uint64_t now_ns);

/*
 * sx_wheel_next_deadline - the earliest time (absolute ns on the wheel's clock) at which
 * sx_wheel_advance has something to do: a timer to fire or to move to a lower level. UINT64_MAX
 * when nothing is pending (or w is NULL). A sleeping owner waits until then. O(levels).
 */
SX_API uint64_t sx_wheel_next_deadline(const sx_wheel *w);

/* sx_wheel_count - pending timers (0 for NULL). O(1). */
SX_API size_t sx_wheel_count(const sx_wheel *w);

/* sx_wheel_tick_ns - the wheel's tick (0 for NULL). */
SX_API uint64_t sx_wheel_tick_ns(const sx_wheel *w);

#ifdef __cplusplus
}
#endif

#endif /* STRIX_TIMER_H */
