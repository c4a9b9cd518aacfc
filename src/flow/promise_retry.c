/*
 * recover_and_retry: the retry kind. A retry promise r depends on p (a run or a `then`, whose fn
 * is a step); if p fails, r's task runs rounds of "decide (the policy), wait (the delay), recover,
 * run p's step again" on r's own task, until the step succeeds, recover or the policy says no, or
 * the chain is cancelled. p's step runs again with r as its ctx->promise: r settles with what
 * the last round gave. Rounds that need no delay loop inside one task run; a delay ends the task
 * run, and the round goes on from whichever side ends the delay.
 *
 * Delays: r registers a callback on the chain's breaker and adds a timer, then marks the wait
 * ARMED. Timer (TFIRE) and breaker callback (BFIRE) each or their bit into the wait word; the
 * first of them that finds ARMED set and the other bit clear goes on with the retry, and if
 * either fired before ARMED the registering thread goes on itself. Whoever goes on withdraws the
 * breaker callback; whoever wins against a pending timer cancels it. Each side drops the
 * reference it held, so exactly one continuation, no leak. The timer's callback runs as a pool
 * task, and so does the round after it (on the timer thread it only settles r with the error
 * that kept it off the pool); a trip resubmits r's task (resume set), which settles r with the
 * breaker's error.
 */
#include <errno.h>

#include <strix/promise.h>
#include <strix/timer.h>

#include "flow/promise_impl.h"

enum { W_ARMED = 1u, W_TFIRE = 2u, W_BFIRE = 4u };

struct retry_ext {
	sx_retry_policy policy;
	sx_backoff bo;
	unsigned attempt;          /* the attempt that ran last */
	int err;                   /* its error */
	uint64_t start;
	void *last;                /* what the failed step was given */
	void *rv;                  /* the last value recover returned, owned if rv_dtor */
	void (*rv_dtor)(void *);
	bool resume;               /* the task's next run goes on after a delay */
	uint32_t wst;              /* W_* bits of the current delay */
	int tstatus;               /* the timer's status */
	sx_timer timer;
	sx_breaker_cb *bh;
};

static void retry_failed(sx_promise *r, int err);
static void retry_resume(sx_promise *r);

static void retry_start(sx_promise *r)
{
	struct retry_ext *x = r->ext;
	sx_promise *p = r->parent;

	if (sx__promise_outcome(p) == S_FULFILLED) {
		if (x->policy.budget != NULL) /* a success refills the budget, as in sx_retry */
			sx_retry_budget_deposit(x->policy.budget);
		sx__promise_pass_on(r, p);
		return;
	}
	x->attempt = 1;
	x->start = sx__policy_now(&x->policy);
	x->last = p->ops->step_input(p); /* what p's step was given */
	retry_failed(r, p->err);
}

/* The timer of a delay: a pool task, or on the timer thread with the status that kept it from one
 * (-ESHUTDOWN: the pool is shutting down; -ENOMEM: its task could not be scheduled). */
static void wait_timer(void *arg, int status)
{
	sx_promise *r = arg;
	struct retry_ext *x = r->ext;
	uint32_t prev;

	x->tstatus = status;
	prev = ck_pr_faa_32(&x->wst, W_TFIRE);
	if ((prev & W_ARMED) && !(prev & W_BFIRE)) {
		if (sx_breaker_withdraw(x->bh) == 0)
			sx__promise_unref(r); /* the callback's reference: it will never run */
		if (status != 0)
			sx__promise_settle_with(r, status, NULL, NULL);
		else
			retry_resume(r);
	}
	sx__promise_unref(r); /* the timer's reference */
}

/* The chain's breaker tripped during a delay: on the notifier thread. */
static void wait_tripped(sx_breaker *b, void *arg)
{
	sx_promise *r = arg;
	struct retry_ext *x = r->ext;
	uint32_t prev = ck_pr_faa_32(&x->wst, W_BFIRE);
	int rc;

	(void)b;
	if ((prev & W_ARMED) && !(prev & W_TFIRE)) {
		sx_breaker_withdraw(x->bh); /* -EALREADY (we are running): frees the handle */
		if (sx_timer_cancel(&x->timer) == 0)
			sx__promise_unref(r); /* the timer's reference: it will never run */
		x->resume = true; /* the task settles r with the breaker's error */
		if ((rc = sx_pool_submit_task(r->pool, &r->task)) != 0)
			sx__promise_settle_with(r, rc, NULL, NULL);
	}
	sx__promise_unref(r); /* the callback's reference */
}

/* Wait d ns before the next round; r's task (the caller) returns right after. */
static void retry_wait(sx_promise *r, uint64_t d)
{
	struct retry_ext *x = r->ext;
	sx_breaker *b = sx__promise_chain_breaker(r->root);
	uint32_t prev;
	int rc;

	if (b == NULL) {
		sx__promise_settle_with(r, -ENOMEM, NULL, NULL);
		return;
	}
	ck_pr_store_32(&x->wst, 0);
	x->tstatus = 0;
	sx__promise_incref(r); /* the callback's */
	rc = sx_breaker_on_done(b, wait_tripped, r, &x->bh);
	if (rc != 0) {
		ck_pr_dec_32(&r->refs); /* the task holds the pending reference: never the last */
		if (rc == -EALREADY)
			retry_resume(r); /* settles with the breaker's error */
		else
			sx__promise_settle_with(r, rc, NULL, NULL);
		return;
	}
	sx__promise_incref(r); /* the timer's */
	rc = sx_timer_add(r->pool, d > INT64_MAX ? INT64_MAX : d, 0, wait_timer, r, &x->timer);
	if (rc != 0) { /* as if the timer fired at once, with the error */
		x->tstatus = rc;
		ck_pr_dec_32(&r->refs);
		ck_pr_or_32(&x->wst, W_TFIRE);
	}
	prev = ck_pr_faa_32(&x->wst, W_ARMED);
	if (!(prev & (W_TFIRE | W_BFIRE)))
		return; /* the timer or the breaker goes on */
	/* One of them fired before we armed: we go on. */
	if (!(prev & W_TFIRE) && sx_timer_cancel(&x->timer) == 0)
		ck_pr_dec_32(&r->refs);
	if (sx_breaker_withdraw(x->bh) == 0)
		ck_pr_dec_32(&r->refs);
	if (!(prev & W_BFIRE) && x->tstatus != 0)
		sx__promise_settle_with(r, x->tstatus, NULL, NULL);
	else
		retry_resume(r);
}

/* Attempt x->attempt failed with err: decide, then wait or go on at once. */
static void retry_failed(sx_promise *r, int err)
{
	struct retry_ext *x = r->ext;
	uint64_t d = 0;
	int rc;

	x->resume = false;
	if ((rc = sx__promise_chain_err(r->root)) != 0) {
		sx__promise_settle_with(r, rc, NULL, NULL);
		return;
	}
	x->err = err;
	if (!sx__retry_next(&x->policy, &x->bo, err, x->attempt, x->start, -1, &d)) {
		sx__promise_settle_with(r, err, NULL, NULL);
		return;
	}
	if (d > 0)
		retry_wait(r, d);
	else
		retry_resume(r);
}

/* After the delay: recover, then the step again; loops while retries need no delay. */
static void retry_resume(sx_promise *r)
{
	struct retry_ext *x = r->ext;
	sx_promise *p = r->parent;
	int rc;

	for (;;) {
		sx_ctx rctx = { r->arg, x->attempt, r, NULL };
		sx_ctx sctx = { p->arg, 0, r, NULL };
		void *v = NULL, *out = NULL;
		uint64_t d = 0;

		x->resume = false;
		if ((rc = sx__promise_chain_err(r->root)) != 0) {
			sx__promise_settle_with(r, rc, NULL, NULL);
			return;
		}
		rc = ((sx_recover_fn)r->fn)(&rctx, x->err, x->last, &v);
		if (rc != 0) { /* settling destroys a failed call's value */
			sx__promise_settle_with(r, rc, v, rctx.dtor);
			return;
		}
		if (x->rv_dtor != NULL && x->rv != v)
			x->rv_dtor(x->rv);
		x->rv = v;
		x->rv_dtor = rctx.dtor;
		x->last = v;
		sctx.attempt = ++x->attempt;
		if ((rc = sx__promise_chain_err(r->root)) == 0)
			rc = ((sx_step_fn)p->fn)(&sctx, v, &out);
		if (rc == 0) {
			if (x->policy.budget != NULL)
				sx_retry_budget_deposit(x->policy.budget);
			sx__promise_settle_with(r, 0, out, sctx.dtor);
			return;
		}
		if (sctx.dtor != NULL && out != NULL)
			sctx.dtor(out);
		{
			int stop = sx__promise_chain_err(r->root);

			if (stop != 0 ||
			    !sx__retry_next(&x->policy, &x->bo, rc, x->attempt, x->start, -1, &d)) {
				sx__promise_settle_with(r, stop != 0 ? stop : rc, NULL, NULL);
				return;
			}
		}
		x->err = rc;
		if (d > 0) {
			retry_wait(r, d);
			return;
		}
	}
}

/* r's task: the first round after p settled, or the next one after a delay's breaker trip. */
static void retry_run(sx_promise *r)
{
	if (((struct retry_ext *)r->ext)->resume)
		retry_resume(r);
	else
		retry_start(r);
}

static void retry_release(sx_promise *r)
{
	struct retry_ext *x = r->ext;

	if (x->rv_dtor != NULL)
		x->rv_dtor(x->rv);
}

static size_t retry_ext_size(const sx_promise *r)
{
	(void)r;
	return sizeof(struct retry_ext);
}

static const struct sx__promise_ops retry_ops = {
	.run = retry_run,
	.release = retry_release,
	.ext_size = retry_ext_size,
};

int sx_promise_recover_and_retry(sx_promise *p, sx_recover_fn recover, void *arg,
    const sx_retry_policy *policy, sx_promise **out)
{
	static const sx_retry_policy no_limits = SX_RETRY_POLICY_INIT;
	struct retry_ext *x;
	sx_promise *r;

	if (policy == NULL)
		policy = &no_limits;
	/* Only a kind with a step to run again (run, then) has a step_input. */
	if (p == NULL || p->ops->step_input == NULL || sx_retry_policy_check(policy) != 0 ||
	    recover == NULL || out == NULL)
		return -EINVAL;
	r = sx__promise_dependent(p, &retry_ops, (void *)recover, arg, sizeof(struct retry_ext));
	if (r == NULL)
		return -ENOMEM;
	x = r->ext;
	x->policy = *policy;
	sx_backoff_init(&x->bo, &x->policy); /* checked above */
	return sx__promise_attach(r, out);
}
