/* Internal: the retry decision shared by sx_retry (retry.c) and the promise form (promise.c),
 * and the interruptible pause that blocking waits share (sx_retry, sx_ratelimit_wait). */
#ifndef STRIX_SRC_RETRY_IMPL_H
#define STRIX_SRC_RETRY_IMPL_H

#include <strix/retry.h>

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

#endif
