/*
 * cancel: breakers (breaker.c: cancellation signals and their references; notifier.c: the
 * notifier thread that runs their callbacks; signal.c: the signal registry) and the retry
 * decision with the interruptible pause (retry.c), shared by sx_retry, the promise form and the
 * blocking waits of the layers above. Includes time (and exec, base through it).
 * The breaker files share breaker_impl.h, which only they include: struct sx_breaker stays
 * opaque here. Nothing here is public API.
 */
#ifndef STRIX_SRC_CANCEL_H
#define STRIX_SRC_CANCEL_H

#include <strix/breaker.h>
#include <strix/retry.h>

#include "time/time_impl.h"

/* breaker.c: trip b with err (a negative errno); -EALREADY if it had tripped. Signal-safe. */
struct sx_breaker;
int sx__breaker_trip_err(struct sx_breaker *b, int err);
/* breaker.c: a reference that keeps b's memory (for a module that reads b after its caller may
 * have released it); dropping it never trips b. */
void sx__breaker_ref(struct sx_breaker *b);
void sx__breaker_unref(struct sx_breaker *b);
/* signal.c: whether strix can catch signal s for a signal breaker. A hold keeps strix's handler
 * installed for the signals in sigs (bit s-1: signal s) with no breaker waiting; a signal that
 * arrives while held and no breaker waits for it is kept for the next signal breaker registered
 * for it, which trips at once. Cold (signal registry lock). hold: 0, -EINVAL (a signal strix cannot
 * catch, nothing held), -EAGAIN (notifier thread). */
bool sx__signal_catchable(int s);
int sx__signal_hold(uint64_t sigs);
void sx__signal_unhold(uint64_t sigs);

/* retry.c: the retry decision and the pause (sx_retry, the promise form, the blocking waits). */
static inline uint64_t sx__policy_now(const sx_retry_policy *p)
{
	const sx_clock *c = p->clock != NULL ? p->clock : &sx_clock_monotonic;

	return c->now_ns(c->ctx);
}

/*
 * After attempt `attempt` failed with err: true, with the delay to wait in *delay, if another
 * attempt may follow; false if the policy ends the retry (limit, predicate, elapsed time, budget).
 * `override` >= 0 replaces the policy's delay (the backoff sequence still advances). Takes a
 * budget token when it says yes. start_ns: when the first attempt began, on the policy's clock.
 */
bool sx__retry_next(const sx_retry_policy *p, sx_backoff *bo, int err, unsigned attempt,
    uint64_t start_ns, int64_t override, uint64_t *delay);

/*
 * Wait d ns, or until stop (may be NULL) trips: returns stop's code then, else 0. A clock with
 * sleep_ns (a virtual one) is asked to sleep instead, and stop is checked after it.
 */
int sx__pause(const sx_clock *clock, uint64_t d, sx_breaker *stop);

#endif /* STRIX_SRC_CANCEL_H */
