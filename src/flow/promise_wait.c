/*
 * Waiting for a promise: sx_promise_settled, _get, _get_until, and sx__promise_join (flow/flow.h),
 * which waits whatever the chain's breaker says.
 *
 * A wait ends when the promise settles, its chain's breaker or the caller's stop trips, or the
 * deadline passes; wait_check looks at them in that order, so an outcome wins over a trip that
 * came after it (a join looks at the outcome only). Between checks the waiter sleeps on the state
 * word's futex: it sets WAITERS before it sleeps (settling wakes the word only then), and every
 * sleep is conditional on the word it loaded before its check, so a settle or a kick after the
 * check makes the sleep return at once.
 *
 * Off the pool the waiter blocks: a callback on the chain's breaker (and on stop) ors KICK into
 * the word and wakes it, so a trip ends the sleep; each callback holds a reference on the promise
 * until it runs or is withdrawn.
 *
 * On a worker of the promise's pool the waiter helps instead: first the promise's kind may run
 * its work right there (its ops' help: the run kind's step, if nobody started it), then the
 * worker runs other tasks from its queues (so recursive fork-join cannot deadlock), and with
 * nothing to run it dozes in short slices, since new work may reach its queues without a wake-up.
 * No breaker callback there: the checks between tasks see a trip. A pool shutting down with
 * SX_CANCEL ends the help (-ESHUTDOWN) if the promise is still pending.
 */
#include <errno.h>

#include <strix/promise.h>

#include "flow/promise_impl.h"

bool sx_promise_settled(const sx_promise *p)
{
	return p != NULL && sx__promise_outcome(p) != S_PENDING;
}

static int result(const sx_promise *p, void **value)
{
	if (sx__promise_outcome(p) == S_FULFILLED) {
		if (value != NULL)
			*value = p->value;
		return 0;
	}
	return p->err;
}

/* As `stop`: wait for the promise to settle, whatever its chain's breaker says. */
#define JOIN ((sx_breaker *)1)

/* Why the wait should end now: 1 settled, else the error, else 0 (keep waiting). */
static int wait_check(const sx_promise *p, sx_breaker *stop, uint64_t deadline)
{
	int rc;

	if (sx__promise_outcome(p) != S_PENDING)
		return 1;
	if (stop == JOIN)
		return 0;
	if ((rc = sx__promise_chain_err(p->root)) != 0)
		return rc;
	if (stop != NULL && (rc = sx_breaker_err(stop)) != 0)
		return rc;
	if (deadline != UINT64_MAX && sx_clock_monotonic.now_ns(NULL) >= deadline)
		return -ETIMEDOUT;
	return 0;
}

/*
 * Sleep on p's word while it still holds s (loaded before the caller's wait_check, so a settle or
 * a kick after that check changes it and the sleep does not start or ends), until `until`
 * (UINT64_MAX: no limit). A kick sets KICK only after its breaker tripped, so a word that already
 * had KICK when loaded comes with a trip the check saw.
 */
static void doze(sx_promise *p, uint32_t s, uint64_t until)
{
	if (!(s & S_WAITERS) && !ck_pr_cas_32(&p->state, s, s | S_WAITERS))
		return; /* it changed: look again */
	sx__futex_wait_ns(&p->state, s | S_WAITERS, until);
}

#define HELP_SLICE_NS 200000u

/* On a worker of p's pool: run other tasks until p settles. */
static int wait_helping(sx__worker *w, sx_promise *p, sx_breaker *stop, uint64_t deadline)
{
	unsigned idle = 0;
	uint32_t s;
	int rc;

	if (p->ops->help != NULL) /* p's own work first, if it can run here (run kind) */
		p->ops->help(w, p);
	while ((s = ck_pr_load_32(&p->state), rc = wait_check(p, stop, deadline)) == 0) {
		int ran = sx__help_one(w);

		if (ran < 0)
			return sx__promise_outcome(p) != S_PENDING ? 1 : ran;
		if (ran > 0) {
			idle = 0;
			continue;
		}
		if (++idle < 64) {
			ck_pr_stall();
			continue;
		}
		{
			uint64_t until = sx_clock_monotonic.now_ns(NULL) + HELP_SLICE_NS;

			doze(p, s, until < deadline ? until : deadline);
		}
	}
	return rc;
}

static void kick(sx_breaker *b, void *arg)
{
	sx_promise *p = arg;

	(void)b;
	ck_pr_or_32(&p->state, S_KICK);
	sx__futex_wake(&p->state);
	sx__promise_unref(p);
}

/* Register kick on b for p; *h NULL if b has tripped already (nothing to withdraw then). */
static int watch(sx_breaker *b, sx_promise *p, sx_breaker_cb **h)
{
	int rc;

	*h = NULL;
	sx__promise_incref(p);
	rc = sx_breaker_on_done(b, kick, p, h);
	if (rc != 0) {
		ck_pr_dec_32(&p->refs); /* the caller holds one: never the last */
		*h = NULL;
		return rc == -EALREADY ? 0 : rc;
	}
	return 0;
}

static void unwatch(sx_promise *p, sx_breaker_cb *h)
{
	if (h != NULL && sx_breaker_withdraw(h) == 0)
		ck_pr_dec_32(&p->refs);
}

/* Off the pool: block on p's word, woken by its settling or by a kick from either breaker. */
static int wait_blocking(sx_promise *p, sx_breaker *stop, uint64_t deadline)
{
	sx_breaker *cb = sx__promise_chain_breaker(p->root);
	sx_breaker_cb *h1 = NULL, *h2 = NULL;
	int rc;

	if (cb == NULL)
		return -ENOMEM;
	if ((rc = watch(cb, p, &h1)) != 0)
		return rc;
	if (stop != NULL && (rc = watch(stop, p, &h2)) != 0) {
		unwatch(p, h1);
		return rc;
	}
	for (;;) {
		uint32_t s = ck_pr_load_32(&p->state);

		if ((rc = wait_check(p, stop, deadline)) != 0)
			break;
		doze(p, s, deadline);
	}
	unwatch(p, h1);
	unwatch(p, h2);
	return rc;
}

static int get(sx_promise *p, sx_breaker *stop, int64_t timeout_ns, void **value)
{
	uint64_t deadline = UINT64_MAX;
	sx__worker *w;
	int rc;

	if (p == NULL)
		return -EINVAL;
	if (timeout_ns >= 0) {
		uint64_t now = sx_clock_monotonic.now_ns(NULL);

		deadline = (uint64_t)timeout_ns > UINT64_MAX / 2 - now ? UINT64_MAX / 2
		                                                       : now + (uint64_t)timeout_ns;
	}
	rc = wait_check(p, stop, deadline);
	if (rc == 0 && timeout_ns == 0)
		rc = -ETIMEDOUT;
	if (rc == 0) {
		w = sx__worker_of(p->pool);
		rc = w != NULL ? wait_helping(w, p, stop, deadline) : wait_blocking(p, stop, deadline);
	}
	return rc == 1 ? result(p, value) : rc;
}

int sx_promise_get(sx_promise *p, int64_t timeout_ns, void **value)
{
	return get(p, NULL, timeout_ns, value);
}

int sx_promise_get_until(sx_promise *p, sx_breaker *stop, void **value)
{
	if (stop == NULL)
		return -EINVAL;
	return get(p, stop, -1, value);
}

int sx__promise_join(sx_promise *p)
{
	sx__worker *w = sx__worker_of(p->pool);

	if (w != NULL) {
		int rc = wait_helping(w, p, JOIN, UINT64_MAX);

		if (rc != 1)
			return rc; /* -ESHUTDOWN from helping: p still pending */
	} else {
		for (;;) {
			uint32_t s = ck_pr_load_32(&p->state);

			if (sx__promise_outcome(p) != S_PENDING)
				break;
			doze(p, s, UINT64_MAX);
		}
	}
	return result(p, NULL);
}
