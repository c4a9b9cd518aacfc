/*
 * Promises that something other than a step settles: settle-by-hand promises (sx_promise_create,
 * _resolve, _reject), which an event loop or another library's callback settles from any thread,
 * and delays (sx_promise_delay), which a timer settles. Both are chain roots with no task of
 * their own; their continuations are scheduled on the pool as for any promise.
 *
 * Several parties may try to settle one of these, so the promise's claim word decides. Each party
 * ors its own bit into it (claim_or), and the party whose bit lands on a word that holds no other
 * party's bit settles the promise; every later one finds it taken and changes nothing. So each
 * promise settles exactly once, without a lock, whatever the order.
 *
 * Hand promises. The parties are the settle call (H_CALLED) and sx_promise_cancel (the kind's
 * cancel, H_CANCEL). References: the caller's, the pending one (dropped by the settle, whoever
 * makes it), and the settle right, dropped by the first sx_promise_resolve or _reject call,
 * whatever that call returns. With the right, a settler may come long after the creator chained
 * and released its handle, and after a cancel got there first: the memory it touches is there
 * until its own call is over.
 *
 * Delays. The parties are the timer (D_TIMER: its callback runs as a pool task, or on the timer
 * thread with the status that kept it off the pool), the callback on the chain's breaker (D_TRIP:
 * only with a stop breaker, whose child that breaker is, so stop's trip reaches it), and
 * sx_promise_cancel (D_CANCEL). The timer and the callback each hold a reference while they are
 * registered. The winner withdraws the others (delay_withdraw): it cancels the timer and withdraws
 * the callback; a withdrawal that wins drops that party's reference, else the party is running or
 * ran, finds the promise taken, and drops its reference itself. The handles the withdrawal needs
 * are written while the creator registers the parties, so the creator ors D_ARMED when it is done:
 * a party that wins before D_ARMED leaves the withdrawal to the creator, which sees the winner's
 * bit in the word D_ARMED lands on. Exactly one of the two withdraws.
 */
#include <errno.h>

#include <strix/promise.h>
#include <strix/timer.h>

#include "flow/promise_impl.h"

enum { H_CALLED = 1u, H_CANCEL = 2u };
enum { D_TIMER = 1u, D_TRIP = 2u, D_CANCEL = 4u, D_PARTIES = 7u, D_ARMED = 8u };

/* Or bits into q's claim word; returns the word before. Lock-free (a CAS loop). */
static uint32_t claim_or(sx_promise *q, uint32_t bits)
{
	uint32_t old = ck_pr_load_32(&q->claim);

	while (!ck_pr_cas_32_value(&q->claim, old, old | bits, &old))
		;
	return old;
}

/* Free a promise of this file that nobody else has seen (a create that fails half-way): its
 * references are all ours, and freeing it releases the chain's breaker it may hold. */
static void discard(sx_promise *q)
{
	q->refs = 1;
	sx__promise_unref(q);
}

/* ---- settle-by-hand ------------------------------------------------------------------------- */

/* sx_promise_cancel tripped q's chain: reject q, unless a settle call came first. */
static void hand_cancel(sx_promise *q)
{
	if (claim_or(q, H_CANCEL) == 0)
		sx__promise_settle_with(q, -ECANCELED, NULL, NULL);
}

static const struct sx__promise_ops hand_ops = {
	.cancel = hand_cancel,
};

int sx_promise_create(sx_pool *pool, sx_promise **out)
{
	sx_promise *q;

	if (pool == NULL || out == NULL)
		return -EINVAL;
	if (!sx__pool_running(pool))
		return -ESHUTDOWN;
	q = sx__promise_alloc(&hand_ops, 0);
	if (q == NULL)
		return -ENOMEM;
	q->pool = pool;
	q->refs++; /* the settle right (nobody else sees q yet) */
	*out = q;
	return 0;
}

/* sx_promise_resolve and _reject, their arguments checked. */
static int hand_settle(sx_promise *p, int err, void *value)
{
	uint32_t old;

	if (p->ops != &hand_ops)
		return -EPERM;
	old = claim_or(p, H_CALLED);
	if (old & H_CALLED)
		return -EALREADY; /* the right is spent: the caller holds a reference of its own */
	if (!(old & H_CANCEL))
		sx__promise_settle_with(p, err, value, NULL);
	sx__promise_unref(p); /* the settle right: may free p */
	return (old & H_CANCEL) ? -EALREADY : 0;
}

int sx_promise_resolve(sx_promise *p, void *value)
{
	if (p == NULL)
		return -EINVAL;
	return hand_settle(p, 0, value);
}

int sx_promise_reject(sx_promise *p, int err)
{
	if (p == NULL || err >= 0)
		return -EINVAL;
	return hand_settle(p, err, NULL);
}

/* ---- delays --------------------------------------------------------------------------------- */

struct delay_ext {
	sx_timer timer;     /* the timer's handle, valid until the pool is destroyed */
	sx_breaker_cb *bh;  /* the callback on the chain's breaker; NULL: none registered */
};

/* The winner, or the creator after it: withdraw the parties still registered. A withdrawal that
 * wins drops that party's reference; the caller holds one of its own, so none is the last. */
static void delay_withdraw(sx_promise *q)
{
	struct delay_ext *x = q->ext;

	if (sx_timer_cancel(&x->timer) == 0)
		sx__promise_unref(q); /* the timer's: its callback will never run */
	if (x->bh != NULL && sx_breaker_withdraw(x->bh) == 0)
		sx__promise_unref(q); /* the breaker callback's */
}

/* Party `bit` has come: settle q with err if it is the first. The caller holds a reference. */
static void delay_end(sx_promise *q, uint32_t bit, int err)
{
	uint32_t old = claim_or(q, bit);

	if (old & D_PARTIES)
		return; /* another party settled q */
	sx__promise_settle_with(q, err, NULL, NULL);
	if (old & D_ARMED)
		delay_withdraw(q);
}

/* The timer: a pool task with status 0, else (shutdown, a discarded task, no memory to submit)
 * on the thread that says so. A trip of the chain's breaker before it counts even if the breaker
 * callback has not run yet: the breaker's word says it tripped first. */
static void delay_fired(void *arg, int status)
{
	sx_promise *q = arg;

	delay_end(q, D_TIMER, status != 0 ? status : sx__promise_chain_err(q));
	sx__promise_unref(q); /* the timer's */
}

/* The chain's breaker tripped (stop did, or sx_promise_cancel): on the notifier thread. */
static void delay_tripped(sx_breaker *b, void *arg)
{
	sx_promise *q = arg;

	delay_end(q, D_TRIP, sx_breaker_err(b));
	sx__promise_unref(q); /* the callback's */
}

/* sx_promise_cancel tripped q's chain: on its caller's thread, which holds a reference. */
static void delay_cancel(sx_promise *q)
{
	delay_end(q, D_CANCEL, -ECANCELED);
}

static size_t delay_ext_size(const sx_promise *q)
{
	(void)q;
	return sizeof(struct delay_ext);
}

static const struct sx__promise_ops delay_ops = {
	.cancel = delay_cancel,
	.ext_size = delay_ext_size,
};

/* Register the callback on q's chain breaker (stop's child). 0, or the error of a registration
 * that failed with the timer still pending: the caller then undoes the create. */
static int delay_watch(sx_promise *q)
{
	struct delay_ext *x = q->ext;
	int rc;

	sx__promise_incref(q); /* the callback's */
	rc = sx_breaker_on_done(q->brk, delay_tripped, q, &x->bh);
	if (rc == 0)
		return 0;
	x->bh = NULL;
	sx__promise_unref(q); /* the caller holds one: never the last */
	if (rc == -EALREADY) {
		/* stop tripped since we looked: the creator comes as the breaker's party */
		delay_end(q, D_TRIP, sx__promise_chain_err(q));
		return 0;
	}
	if (sx_timer_cancel(&x->timer) == 0) {
		sx__promise_unref(q); /* the timer's: never the last */
		return rc;
	}
	return 0; /* the timer fired already and decides: the call succeeds without the callback */
}

int sx_promise_delay(sx_pool *pool, int64_t ns, sx_breaker *stop, sx_promise **out)
{
	struct delay_ext *x;
	sx_promise *q;
	int rc;

	if (pool == NULL || ns < 0 || out == NULL)
		return -EINVAL;
	if (!sx__pool_running(pool))
		return -ESHUTDOWN;
	q = sx__promise_alloc(&delay_ops, sizeof(*x));
	if (q == NULL)
		return -ENOMEM;
	x = q->ext;
	q->pool = pool;
	if (stop != NULL && (rc = sx_breaker_child(stop, &q->brk)) != 0) {
		discard(q);
		return rc;
	}
	rc = sx__promise_chain_err(q);
	if (ns == 0 || rc != 0) {
		/* Nothing to wait for, or stop has tripped: settled here, so no party can win. */
		q->claim = D_ARMED | D_TIMER;
		sx__promise_settle_with(q, rc, NULL, NULL);
		*out = q;
		return 0;
	}
	q->refs++; /* the timer's (nobody else sees q yet) */
	if ((rc = sx_timer_add(pool, ns, 0, delay_fired, q, &x->timer)) != 0) {
		discard(q);
		return rc;
	}
	if (q->brk != NULL && (rc = delay_watch(q)) != 0) {
		discard(q);
		return rc;
	}
	if (claim_or(q, D_ARMED) & D_PARTIES)
		delay_withdraw(q); /* a party won while we registered: the withdrawal is ours */
	*out = q;
	return 0;
}
