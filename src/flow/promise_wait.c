/*
 * Waiting for a promise: sx_promise_settled, _get, _get_until, and sx__promise_join (flow/flow.h),
 * which waits whatever the chain's breaker says.
 *
 * A wait ends when the promise settles, its chain's breaker or the caller's stop trips, or the
 * deadline passes; wait_check looks at them in that order, so an outcome wins over a trip that
 * came after it (a join looks at the outcome only). Every wait is sx__wait (exec/exec.h) on the
 * state word, a waiting word (base/base.h) whose flag is WAITERS: settling wakes it only then,
 * and a sleep is conditional on the word loaded before the check, so a settle or a kick after
 * the check makes it return at once.
 *
 * Off the pool the waiter blocks: a callback on the chain's breaker (and on stop) ors KICK into
 * the word and wakes it, so a trip ends the sleep; each callback holds a reference on the promise
 * until it runs or is withdrawn.
 *
 * On a worker of the promise's pool the waiter helps instead: first the promise's kind may run
 * its work right there (its ops' help: the run kind's step, if nobody started it), then the
 * worker runs other tasks from its queues (so recursive fork-join cannot deadlock), and with
 * nothing to run it dozes in short slices (sx__wait's), since new work may reach its queues
 * without a wake-up.
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

struct waiting {
	sx_promise *p;
	sx_breaker *stop;
};

/* Why the wait should end now: 1 settled, else the error, else 0 (keep waiting). The deadline is
 * sx__wait's to check, after this. */
static int wait_check(const sx_promise *p, sx_breaker *stop)
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
	return 0;
}

/* sx__wait's question. The word it loaded before asking is the one a sleep is conditional on:
 * a settle or a kick after this check changes it (a kick sets KICK only after its breaker
 * tripped, so a word that had KICK when loaded comes with a trip this check saw). */
static int wait_done(void *arg, uint32_t seen)
{
	const struct waiting *wt = arg;

	(void)seen;
	return wait_check(wt->p, wt->stop);
}

static int wait_on(sx__worker *w, sx_promise *p, sx_breaker *stop, uint64_t deadline)
{
	struct waiting wt = { p, stop };

	return sx__wait(w, &p->state, S_WAITERS, wait_done, &wt, deadline);
}

/* On a worker of p's pool: run other tasks until p settles. */
static int wait_helping(sx__worker *w, sx_promise *p, sx_breaker *stop, uint64_t deadline)
{
	int rc;

	if (p->ops->help != NULL) /* p's own work first, if it can run here (run kind) */
		p->ops->help(w, p);
	rc = wait_on(w, p, stop, deadline);
	if (rc == -ESHUTDOWN && sx__promise_outcome(p) != S_PENDING)
		return 1; /* settled as the pool stopped */
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
	rc = wait_on(NULL, p, stop, deadline);
	unwatch(p, h1);
	unwatch(p, h2);
	return rc;
}

static int get(sx_promise *p, sx_breaker *stop, int64_t timeout_ns, void **value)
{
	uint64_t deadline;
	sx__worker *w;
	int rc;

	if (p == NULL)
		return -EINVAL;
	rc = wait_check(p, stop);
	if (rc == 0 && timeout_ns == 0)
		rc = -ETIMEDOUT;
	if (rc == 0) {
		deadline = sx__deadline_in(timeout_ns);
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
		(void)wait_on(NULL, p, JOIN, UINT64_MAX);
	}
	return result(p, NULL);
}
