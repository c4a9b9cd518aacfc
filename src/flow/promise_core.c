/*
 * Promises, the core: a state word, a continuation list, a reference count; every step is a pool
 * task. This file holds what every kind shares (memory, references, the chain's breaker, settling,
 * scheduling, cancel), the kinds that run one step (run, then, catch, finally) and the deferred
 * promises of flow/flow.h. The struct and the kinds' ops table are in promise_impl.h; retry,
 * combinators and waiting have files of their own.
 *
 * Kinds: the code here never switches on a kind. A promise's task calls its ops' run, a
 * discarded task its discard, a free its release and ext_size, a cancel its cancel; so a kind's
 * behaviour lives in one table, in the file of its job.
 *
 * State word: PENDING, then FULFILLED or REJECTED by one exchange (only the promise's own task,
 * a combinator's one deciding input, or the party that wins a hand or delay promise's claim word
 * in promise_settle.c settles it, so the exchange itself never races another settle).
 * The getters' WAITERS and KICK bits share the word (promise_wait.c): settling wakes the futex
 * when WAITERS was set.
 *
 * Continuations: a closable stack (base/base.h) of sx__cont that settling closes with one
 * exchange; a push that finds it closed schedules its continuation at once instead. A dependent
 * promise's cont is embedded in it, so scheduling it allocates nothing: it becomes an intrusive
 * pool task (from a worker: that worker's LIFO slot, so a chain runs hop after hop on one core).
 * A cont with a fire function (a combinator's input) fires inline on the settling thread instead.
 *
 * References: the caller's; one "pending" reference from creation until the promise settles (it
 * covers being listed on the parent and being queued); each dependent holds one on its parent (a
 * fulfilled `then` drops it after its step, since nothing will read the parent again, so a long
 * chain whose handles were released is freed behind its head) and one on the chain's root, which
 * owns the chain's breaker. Frees walk up the parent links iteratively, never recursively.
 *
 * The chain's breaker is created lazily and installed in the root with one CAS; "is the chain
 * cancelled" is a load of that pointer and, when set, a load of the breaker's word.
 *
 * The run kind's step runs exactly once: its queued task and a getter helping on a worker
 * (promise_wait.c) both try claim 0 -> 1; the loser's queue entry only drops the pending
 * reference when it comes up.
 */
#include <errno.h>
#include <string.h>

#include <strix/promise.h>

#include "flow/promise_impl.h"


static void p_run(sx_task *t);
static void p_cancel(sx_task *t, int err);
static void settle_ref(sx_promise *q, int err, void *value, void (*dtor)(void *), bool drop);

/* ---- memory and references ----------------------------------------------------------------- */

sx_promise *sx__promise_alloc(const struct sx__promise_ops *ops, size_t extra)
{
	sx_promise *q = sx_allocator_default.alloc(sx_allocator_default.ctx, sizeof(*q) + extra,
	    SX__SMALL_ALIGN);

	if (q != NULL) {
		memset(q, 0, sizeof(*q) + extra);
		q->task.run = p_run;
		q->task.cancel = p_cancel;
		q->refs = 2; /* the caller's and the pending one */
		q->ops = ops;
		q->root = q;
		if (extra != 0)
			q->ext = q + 1;
	}
	return q;
}

/* The size q was allocated with. */
static size_t p_size(const sx_promise *q)
{
	return sizeof(*q) + (q->ops->ext_size != NULL ? q->ops->ext_size(q) : 0);
}

/* Free q; returns the parent whose reference q held (the caller drops it). */
static sx_promise *p_free(sx_promise *q)
{
	sx_promise *parent = q->parent;

	if (q->dtor != NULL)
		q->dtor(q->value);
	if (q->ops->release != NULL)
		q->ops->release(q);
	if (q->root != q)
		sx__promise_unref(q->root);
	else if (q->brk != NULL)
		sx_breaker_release(q->brk);
	sx_allocator_default.free(sx_allocator_default.ctx, q, p_size(q), SX__SMALL_ALIGN);
	return parent;
}

void sx__promise_unref(sx_promise *q)
{
	bool zero;

	while (q != NULL) {
		/* The only reference left is ours: nobody else can take one, no atomic needed. */
		if (ck_pr_load_32(&q->refs) != 1) {
			ck_pr_dec_32_zero(&q->refs, &zero);
			if (!zero)
				return;
		}
		q = p_free(q);
	}
}

void sx_promise_release(sx_promise *p)
{
	if (p != NULL)
		sx__promise_unref(p);
}

/* ---- the chain's breaker ------------------------------------------------------------------- */

sx_breaker *sx__promise_chain_breaker(sx_promise *root)
{
	sx_breaker *b = ck_pr_load_ptr(&root->brk), *mine;

	if (b != NULL)
		return b;
	if (sx_breaker_create(&mine) != 0)
		return NULL;
	if (ck_pr_cas_ptr_value(&root->brk, NULL, mine, &b))
		return mine;
	sx_breaker_release(mine); /* another thread installed one first */
	return b;
}

sx_breaker *sx_ctx_breaker(sx_ctx *ctx)
{
	return ctx != NULL ? sx__promise_chain_breaker(ctx->promise->root) : NULL;
}

bool sx_ctx_cancelled(const sx_ctx *ctx)
{
	return ctx != NULL && sx__promise_chain_err(ctx->promise->root) != 0;
}

/* ---- settling and scheduling --------------------------------------------------------------- */

static inline sx_promise *of_cont(struct sx__cont *c)
{
	return SX_CONTAINER_OF(c, sx_promise, cont);
}

/*
 * Publish q's outcome, wake its getters, schedule its dependents, drop the pending reference.
 * A dependent that cannot be scheduled (the pool stopped, or a thread with no record could not
 * allocate one) settles with the pool's error, on a worklist linked through its cont, so a long
 * chain at shutdown never recurses.
 */
static const struct sx__promise_ops finally_ops;
static void finally_run(sx_promise *q);

static void settle_ref(sx_promise *q, int err, void *value, void (*dtor)(void *), bool drop)
{
	sx_promise *todo = NULL;
	int todo_err = -ESHUTDOWN;

	for (;;) {
		sx__link *fifo;
		uint32_t old;
		int rc;

		if (err != 0 && dtor != NULL && value != NULL)
			dtor(value); /* a failed step's value is nobody's */
		q->err = err;
		q->value = err == 0 ? value : NULL;
		q->dtor = err == 0 ? dtor : NULL;
		old = ck_pr_fas_32(&q->state, err == 0 ? S_FULFILLED : S_REJECTED);
		if (old & S_WAITERS)
			sx__futex_wake(&q->state);
		/* Oldest first: dependents run in the order they were added. */
		fifo = sx__list_reverse(sx__stack_close(&q->conts));
		while (fifo != NULL) {
			struct sx__cont *c = SX_CONTAINER_OF(fifo, struct sx__cont, link);

			fifo = fifo->next;
			if (c->fire != NULL) {
				c->fire(c);
				continue;
			}
			if ((rc = sx_pool_submit_task(of_cont(c)->pool, &of_cont(c)->task)) != 0) {
				todo_err = rc; /* what the pool said: -ESHUTDOWN once it stops */
				c->link.next = todo != NULL ? &todo->cont.link : NULL;
				todo = of_cont(c);
			}
		}
		if (drop)
			sx__promise_unref(q);
		drop = true;
		/* A finally is cleanup: it runs here, on this thread, rather than be skipped. */
		for (;;) {
			if (todo == NULL)
				return;
			q = todo;
			todo = q->cont.link.next != NULL ?
			    of_cont(SX_CONTAINER_OF(q->cont.link.next, struct sx__cont, link)) :
			    NULL;
			if (q->ops != &finally_ops)
				break;
			finally_run(q);
		}
		err = todo_err;
		value = NULL;
		dtor = NULL;
	}
}

void sx__promise_settle_with(sx_promise *q, int err, void *value, void (*dtor)(void *))
{
	settle_ref(q, err, value, dtor, true);
}

static void settle(sx_promise *q, int err, void *value, void (*dtor)(void *))
{
	settle_ref(q, err, value, dtor, true);
}

bool sx__promise_push_cont(sx_promise *p, struct sx__cont *c)
{
	return sx__stack_push(&p->conts, &c->link, &c->link);
}

/* A dependent q of p: listed on p, or scheduled now if p settled. */
static int attach(sx_promise *p, sx_promise *q)
{
	return sx__promise_push_cont(p, &q->cont) ? 0 : sx_pool_submit_task(q->pool, &q->task);
}

void sx__promise_pass_on(sx_promise *q, const sx_promise *p)
{
	settle(q, sx__promise_outcome(p) == S_FULFILLED ? 0 : p->err, p->value, NULL);
}

/* Run q's step; settling drops the pending reference if drop (else the caller keeps it). */
static void run_step_ref(sx_promise *q, sx_step_fn step, void *last, unsigned attempt, bool drop)
{
	sx_ctx ctx = { q->arg, attempt, q, NULL };
	void *out = NULL;
	int rc = sx__promise_chain_err(q->root);

	if (rc == 0)
		rc = step(&ctx, last, &out);
	settle_ref(q, rc, out, ctx.dtor, drop);
}

static void p_run(sx_task *t)
{
	sx_promise *q = SX_CONTAINER_OF(t, sx_promise, task);

	q->ops->run(q);
}

/* SX_CANCEL shutdown discarded q's task. */
static void p_cancel(sx_task *t, int err)
{
	sx_promise *q = SX_CONTAINER_OF(t, sx_promise, task);

	if (q->ops->discard != NULL)
		q->ops->discard(q, err);
	else
		settle(q, err, NULL, NULL);
}

/* ---- the kinds of one step: run, then, catch, finally ---------------------------------------- */

static void run_run(sx_promise *q)
{
	if (ck_pr_load_32(&q->claim) != 0 || !ck_pr_cas_32(&q->claim, 0, 1)) {
		/* A getter ran it inline and left us the pending reference. */
		sx__promise_unref(q);
		return;
	}
	run_step_ref(q, (sx_step_fn)q->fn, NULL, 1, true);
}

static void run_discard(sx_promise *q, int err)
{
	if (!ck_pr_cas_32(&q->claim, 0, 1))
		sx__promise_unref(q); /* ran inline by a getter, which left us the pending reference */
	else
		settle(q, err, NULL, NULL);
}

/* The task we wait for, if nobody has started it: run it here, on this stack (nesting follows
 * the dependency, so the depth is the program's own recursion depth). If it is still where this
 * worker queued it last (fork-join: it usually is), it comes out of the queue and runs as if
 * popped. Otherwise its queue entry stays where it is, keeps the pending reference and drops it
 * when it comes up. */
static void run_help(sx__worker *w, sx_promise *p)
{
	if (ck_pr_load_32(&p->claim) != 0)
		return;
	if (!sx__run_if_queued(w, &p->task) && ck_pr_cas_32(&p->claim, 0, 1)) {
		run_step_ref(p, (sx_step_fn)p->fn, NULL, 1, false);
	}
}

static void *run_input(const sx_promise *q)
{
	(void)q;
	return NULL;
}

static const struct sx__promise_ops run_ops = {
	.run = run_run,
	.discard = run_discard,
	.help = run_help,
	.step_input = run_input,
};

static void then_run(sx_promise *q)
{
	sx_promise *p = q->parent;

	if (sx__promise_outcome(p) != S_FULFILLED) {
		settle(q, p->err, NULL, NULL);
		return;
	}
	/* Keep the pending reference through the settle: we still touch q below. */
	run_step_ref(q, (sx_step_fn)q->fn, p->value, 1, false);
	if (sx__promise_outcome(q) == S_FULFILLED) {
		/* Nothing reads p again: let the chain behind go. */
		q->parent = NULL;
		sx__promise_unref(p);
	}
	sx__promise_unref(q);
}

/* What the step was given: its parent's value (a `then` that failed keeps its parent). */
static void *then_input(const sx_promise *q)
{
	const sx_promise *p = q->parent;

	return p != NULL && sx__promise_outcome(p) == S_FULFILLED ? p->value : NULL;
}

static const struct sx__promise_ops then_ops = {
	.run = then_run,
	.step_input = then_input,
};

static void catch_run(sx_promise *q)
{
	sx_promise *p = q->parent;
	sx_ctx ctx = { q->arg, 1, q, NULL };
	void *out = NULL;
	int rc;

	if (sx__promise_outcome(p) == S_FULFILLED || sx__promise_chain_err(q->root) != 0) {
		sx__promise_pass_on(q, p); /* a value, or a cancelled chain: handlers are skipped */
		return;
	}
	rc = ((sx_recover_fn)q->fn)(&ctx, p->err, NULL, &out);
	settle(q, rc, out, ctx.dtor);
}

static const struct sx__promise_ops catch_ops = {
	.run = catch_run,
};

static void finally_run(sx_promise *q)
{
	sx_promise *p = q->parent;
	sx_ctx ctx = { q->arg, 1, q, NULL };
	int rc;

	rc = ((sx_finally_fn)q->fn)(&ctx, sx__promise_outcome(p) == S_FULFILLED ? 0 : p->err,
	    sx__promise_outcome(p) == S_FULFILLED ? p->value : NULL);
	if (rc == 0)
		sx__promise_pass_on(q, p);
	else
		settle(q, rc, NULL, NULL);
}

/* A shutdown with SX_CANCEL discarded its task: a finally is cleanup, so it runs anyway, on the
 * discarding thread. */
static void finally_discard(sx_promise *q, int err)
{
	(void)err;
	finally_run(q);
}

static const struct sx__promise_ops finally_ops = {
	.run = finally_run,
	.discard = finally_discard,
};

/* ---- creating ------------------------------------------------------------------------------ */

int sx_promise_run_with(sx_pool *pool, sx_breaker *stop, sx_step_fn step, void *arg,
    sx_promise **out)
{
	sx_promise *q;
	int rc;

	if (pool == NULL || step == NULL || out == NULL)
		return -EINVAL;
	q = sx__promise_alloc(&run_ops, 0);
	if (q == NULL)
		return -ENOMEM;
	q->pool = pool;
	q->fn = (void *)step;
	q->arg = arg;
	if (stop != NULL && (rc = sx_breaker_child(stop, &q->brk)) != 0) {
		sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q), SX__SMALL_ALIGN);
		return rc;
	}
	if ((rc = sx_pool_submit_task(pool, &q->task)) != 0) {
		if (q->brk != NULL)
			sx_breaker_release(q->brk);
		sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q), SX__SMALL_ALIGN);
		return rc;
	}
	*out = q; /* the caller's reference keeps q alive even if it settled already */
	return 0;
}

int sx_promise_run(sx_pool *pool, sx_step_fn step, void *arg, sx_promise **out)
{
	return sx_promise_run_with(pool, NULL, step, arg, out);
}

sx_promise *sx__promise_dependent(sx_promise *p, const struct sx__promise_ops *ops, void *fn,
    void *arg, size_t extra)
{
	sx_promise *q = sx__promise_alloc(ops, extra);

	if (q == NULL)
		return NULL;
	q->pool = p->pool;
	q->fn = fn;
	q->arg = arg;
	q->parent = p;
	q->root = p->root;
	return q;
}

int sx__promise_attach(sx_promise *q, sx_promise **out)
{
	sx_promise *p = q->parent;
	int rc;

	sx__promise_incref(p);
	sx__promise_incref(q->root);
	if ((rc = attach(p, q)) != 0) {
		/* p had settled and the pool refused the task: undo (q was never visible). */
		ck_pr_dec_32(&q->root->refs); /* p holds one too: never the last */
		ck_pr_dec_32(&p->refs);
		sx_allocator_default.free(sx_allocator_default.ctx, q, p_size(q), SX__SMALL_ALIGN);
		return rc;
	}
	*out = q;
	return 0;
}

/* A dependent of p of a kind with no ext; attached (or scheduled) before it returns. */
static int dependent(sx_promise *p, const struct sx__promise_ops *ops, void *fn, void *arg,
    sx_promise **out)
{
	sx_promise *q;

	if (p == NULL || fn == NULL || out == NULL)
		return -EINVAL;
	q = sx__promise_dependent(p, ops, fn, arg, 0);
	if (q == NULL)
		return -ENOMEM;
	return sx__promise_attach(q, out);
}

int sx_promise_then(sx_promise *p, sx_step_fn step, void *arg, sx_promise **out)
{
	return dependent(p, &then_ops, (void *)step, arg, out);
}

int sx_promise_catch(sx_promise *p, sx_recover_fn fn, void *arg, sx_promise **out)
{
	return dependent(p, &catch_ops, (void *)fn, arg, out);
}

int sx_promise_finally(sx_promise *p, sx_finally_fn fn, void *arg, sx_promise **out)
{
	return dependent(p, &finally_ops, (void *)fn, arg, out);
}

/* ---- cancel ---------------------------------------------------------------------------------- */

int sx_promise_cancel(sx_promise *p)
{
	sx_promise *root;
	sx_breaker *b;
	int rc;

	if (p == NULL)
		return -EINVAL;
	root = p->root;
	b = sx__promise_chain_breaker(root);
	if (b == NULL)
		return -ENOMEM;
	rc = sx_breaker_trip(b);
	if (rc == 0 && root->ops->cancel != NULL)
		root->ops->cancel(root);
	return rc;
}

/* ---- internal: promises settled by other modules (flow/flow.h) ------------------------------- */

/* The owner's cleanup runs after the breaker its work used is released, so the deferred kind
 * releases the chain's breaker itself (a root, it holds it) and leaves none for p_free. */
static void deferred_release(sx_promise *q)
{
	if (q->brk != NULL) {
		sx_breaker_release(q->brk);
		q->brk = NULL;
	}
	if (q->fn != NULL)
		((void (*)(void *))q->fn)(q->arg);
}

static const struct sx__promise_ops deferred_ops = {
	.release = deferred_release,
};

int sx__promise_deferred(sx_pool *pool, sx_breaker *parent, void (*cleanup)(void *), void *arg,
    sx_promise **out)
{
	sx_promise *q = sx__promise_alloc(&deferred_ops, 0);
	int rc;

	if (q == NULL)
		return -ENOMEM;
	q->pool = pool;
	rc = parent != NULL ? sx_breaker_child(parent, &q->brk) : sx_breaker_create(&q->brk);
	if (rc != 0) {
		sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q), SX__SMALL_ALIGN);
		return rc;
	}
	q->fn = (void *)cleanup;
	q->arg = arg;
	*out = q;
	return 0;
}

sx_breaker *sx__promise_breaker(sx_promise *p)
{
	return p->root->brk;
}

void sx__promise_ref(sx_promise *p)
{
	sx__promise_incref(p);
}

void sx__promise_settle(sx_promise *p, int err)
{
	settle(p, err, NULL, NULL);
}
