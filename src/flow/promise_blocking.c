/*
 * sx_promise_blocking: a chain's root whose step runs on one of the pool's side threads
 * (sx_pool_spawn_blocking), while its continuations run on the pool as after any step. The
 * promise's own task is what the side pool queues: a side thread runs the kind's run (the
 * step, then the settle, which schedules the dependents through the pool's injector).
 *
 * Who settles it is decided by the claim word (0 -> 1), as for the run kind: the side thread
 * that starts the step, a cancel of the chain that finds the step not started yet (it settles
 * the promise with the breaker's code, on the cancelling thread), or an SX_CANCEL shutdown that
 * discards the queued task (-ESHUTDOWN). The queued task keeps the pending reference until a
 * side thread or the shutdown takes it out of the queue, so a cancel that wins the claim takes
 * a reference of its own for its settle.
 */
#include <errno.h>

#include <strix/promise.h>

#include "flow/promise_impl.h"

static bool blk_claim(sx_promise *q)
{
	return ck_pr_load_32(&q->claim) == 0 && ck_pr_cas_32(&q->claim, 0, 1);
}

/* On a side thread. */
static void blk_run(sx_promise *q)
{
	sx_ctx ctx = { q->arg, 1, q, NULL };
	void *out = NULL;
	int rc;

	if (!blk_claim(q)) {
		sx__promise_unref(q); /* a cancel settled it: the queue's pending reference */
		return;
	}
	rc = sx__promise_chain_err(q->root);
	if (rc == 0)
		rc = ((sx_step_fn)q->fn)(&ctx, NULL, &out);
	sx__promise_settle_with(q, rc, out, ctx.dtor);
}

/* SX_CANCEL discarded the queued task (the shutdown thread). */
static void blk_discard(sx_promise *q, int err)
{
	(void)err;
	if (!blk_claim(q))
		sx__promise_unref(q);
	else
		sx__promise_settle_with(q, -ESHUTDOWN, NULL, NULL);
}

/* sx_promise_cancel tripped the chain's breaker: a step not started yet never starts. */
static void blk_cancel(sx_promise *q)
{
	if (!blk_claim(q))
		return;
	sx__promise_incref(q); /* the settle's; the queue keeps the pending one */
	sx__promise_settle_with(q, sx__promise_chain_err(q), NULL, NULL);
}

static const struct sx__promise_ops blocking_ops = {
	.run = blk_run,
	.discard = blk_discard,
	.cancel = blk_cancel,
};

int sx_promise_blocking(sx_pool *pool, sx_step_fn step, void *arg, sx_promise **out)
{
	sx_promise *q;
	int rc;

	if (pool == NULL || step == NULL || out == NULL)
		return -EINVAL;
	q = sx__promise_alloc(&blocking_ops, 0);
	if (q == NULL)
		return -ENOMEM;
	q->pool = pool;
	q->fn = (void *)step;
	q->arg = arg;
	if ((rc = sx__blocking_submit(pool, &q->task)) != 0) {
		sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q), SX__SMALL_ALIGN);
		return rc;
	}
	*out = q; /* the caller's reference keeps q alive even if it settled already */
	return 0;
}
