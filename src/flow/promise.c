/*
 * Promises: a state word, a continuation list, a reference count; every step is a pool task.
 *
 * State word: PENDING, then FULFILLED or REJECTED by one exchange (only the promise's own task,
 * or a combinator's one deciding input, settles it, so there is no settle race to arbitrate).
 * WAITERS is set by a getter before it sleeps on the word (futex); KICK is or-ed in by a
 * breaker callback so that a getter's futex wait fails and it looks at the chain's breaker.
 *
 * Continuations: a Treiber stack of sx__cont (CAS push) that settling swaps for CLOSED with one
 * exchange; a push that finds CLOSED schedules its continuation at once instead. A dependent
 * promise's cont is embedded in it, so scheduling it allocates nothing: it becomes an intrusive
 * pool task (from a worker: that worker's LIFO slot, so a chain runs hop after hop on one core).
 * Combinators embed one cont per input, which fires inline (a few atomics) on the settling thread.
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
 * Retry delays (recover_and_retry): the retry promise registers a callback on the chain's breaker
 * and adds a timer, then marks the wait ARMED. Timer (TFIRE) and breaker callback (BFIRE) each
 * or their bit into the wait word; the first of them that finds ARMED set and the other bit clear
 * goes on with the retry, and if either fired before ARMED the registering thread goes on
 * itself. Whoever goes on withdraws the breaker callback; whoever wins against a pending timer
 * cancels it. Each side drops the reference it held, so exactly one continuation, no leak.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <strix/promise.h>
#include <strix/timer.h>

#include "flow/flow.h"

enum { K_RUN, K_THEN, K_CATCH, K_FINALLY, K_RETRY, K_DEFERRED, K_ALL, K_ANY, K_RACE };

#define S_PENDING   0u
#define S_FULFILLED 1u
#define S_REJECTED  2u
#define S_OUTCOME   3u
#define S_WAITERS   4u
#define S_KICK      8u

struct sx__cont {
	struct sx__cont *next;
	void (*fire)(struct sx__cont *c); /* NULL: schedule the promise this cont is embedded in */
};

#define CLOSED ((struct sx__cont *)1)

struct retry_ext;
struct join_ext;

struct sx_promise {
	sx_task task;              /* this promise's work, queued on the pool */
	struct sx__cont cont;      /* this promise in its parent's list */
	uint32_t state;
	uint32_t refs;
	int err;
	int kind;
	uint32_t claim;            /* K_RUN: 1 once its queued task or a getter started the step */
	void *value;
	void (*dtor)(void *);
	struct sx__cont *conts;    /* dependents; CLOSED once settled */
	sx_promise *parent;        /* reference held (NULL for roots, and once a `then` is done) */
	sx_promise *root;          /* the chain's root (self); reference held by non-roots */
	sx_pool *pool;
	void *fn;                  /* sx_step_fn, sx_recover_fn or sx_finally_fn */
	void *arg;
	sx_breaker *brk;           /* root only: the chain's breaker, created lazily */
	void *ext;                 /* retry or combinator state, in the same allocation */
};

/* Retry state. */
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

/* Combinator state. */
struct join {
	struct sx__cont cont;
	sx_promise *a;
	size_t idx;
};

struct join_ext {
	size_t n;
	uint32_t remaining;
	uint32_t decided;
	sx_promise **in;
	void **values;
	struct join joins[];
};

static void p_run(sx_task *t);
static void p_cancel(sx_task *t, int err);
static void settle(sx_promise *q, int err, void *value, void (*dtor)(void *));
static void settle_ref(sx_promise *q, int err, void *value, void (*dtor)(void *), bool drop);

/* ---- memory and references ----------------------------------------------------------------- */

static sx_promise *p_alloc(size_t extra)
{
	sx_promise *q = sx_allocator_default.alloc(sx_allocator_default.ctx, sizeof(*q) + extra,
	    SX__SMALL_ALIGN);

	if (q != NULL) {
		memset(q, 0, sizeof(*q) + extra);
		q->task.run = p_run;
		q->task.cancel = p_cancel;
		q->refs = 2; /* the caller's and the pending one */
		q->root = q;
		if (extra != 0)
			q->ext = q + 1;
	}
	return q;
}

static size_t ext_size(const sx_promise *q)
{
	if (q->kind == K_RETRY)
		return sizeof(struct retry_ext);
	if (q->kind >= K_ALL) {
		size_t n = ((struct join_ext *)q->ext)->n;

		return sizeof(struct join_ext) + n * (sizeof(struct join) + 2 * sizeof(void *));
	}
	return 0;
}

static inline void ref(sx_promise *q)
{
	ck_pr_inc_32(&q->refs);
}

static void unref(sx_promise *q);

/* Free q; returns the parent whose reference q held (the caller drops it). */
static sx_promise *p_free(sx_promise *q)
{
	sx_promise *parent = q->parent;

	if (q->dtor != NULL)
		q->dtor(q->value);
	if (q->kind == K_RETRY) {
		struct retry_ext *x = q->ext;

		if (x->rv_dtor != NULL)
			x->rv_dtor(x->rv);
	} else if (q->kind >= K_ALL) {
		struct join_ext *x = q->ext;

		for (size_t i = 0; i < x->n; i++)
			unref(x->in[i]);
	}
	if (q->root != q)
		unref(q->root);
	else if (q->brk != NULL)
		sx_breaker_release(q->brk);
	if (q->kind == K_DEFERRED && q->fn != NULL)
		((void (*)(void *))q->fn)(q->arg); /* the owner's state, after the breaker it used */
	sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q) + ext_size(q), SX__SMALL_ALIGN);
	return parent;
}

static void unref(sx_promise *q)
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
		unref(p);
}

/* ---- the chain's breaker ------------------------------------------------------------------- */

static sx_breaker *chain_breaker(sx_promise *root)
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

/* 0 while the chain runs, else the breaker's error. */
static inline int chain_err(const sx_promise *root)
{
	sx_breaker *b = ck_pr_load_ptr(&((sx_promise *)root)->brk);

	return b != NULL ? sx_breaker_err(b) : 0;
}

sx_breaker *sx_ctx_breaker(sx_ctx *ctx)
{
	return ctx != NULL ? chain_breaker(ctx->promise->root) : NULL;
}

bool sx_ctx_cancelled(const sx_ctx *ctx)
{
	return ctx != NULL && chain_err(ctx->promise->root) != 0;
}

/* ---- settling and scheduling --------------------------------------------------------------- */

static inline sx_promise *of_cont(struct sx__cont *c)
{
	return SX_CONTAINER_OF(c, sx_promise, cont);
}

static inline uint32_t outcome(const sx_promise *q)
{
	return ck_pr_load_32(&((sx_promise *)q)->state) & S_OUTCOME;
}

/*
 * Publish q's outcome, wake its getters, schedule its dependents, drop the pending reference.
 * A dependent that cannot be scheduled (the pool stopped, or a thread with no record could not
 * allocate one) settles with the pool's error, on a worklist linked through its cont, so a long
 * chain at shutdown never recurses.
 */
static void settle_ref(sx_promise *q, int err, void *value, void (*dtor)(void *), bool drop)
{
	sx_promise *todo = NULL;
	int todo_err = -ESHUTDOWN;

	for (;;) {
		struct sx__cont *list, *fifo = NULL;
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
		list = ck_pr_fas_ptr(&q->conts, CLOSED);
		while (list != NULL) { /* LIFO -> FIFO: dependents run in the order they were added */
			struct sx__cont *next = list->next;

			list->next = fifo;
			fifo = list;
			list = next;
		}
		while (fifo != NULL) {
			struct sx__cont *c = fifo;

			fifo = c->next;
			if (c->fire != NULL) {
				c->fire(c);
				continue;
			}
			if ((rc = sx_pool_submit_task(of_cont(c)->pool, &of_cont(c)->task)) != 0) {
				todo_err = rc; /* what the pool said: -ESHUTDOWN once it stops */
				c->next = (struct sx__cont *)todo;
				todo = of_cont(c);
			}
		}
		if (drop)
			unref(q);
		drop = true;
		if (todo == NULL)
			return;
		q = todo;
		todo = (sx_promise *)q->cont.next;
		err = todo_err;
		value = NULL;
		dtor = NULL;
	}
}

static void settle(sx_promise *q, int err, void *value, void (*dtor)(void *))
{
	settle_ref(q, err, value, dtor, true);
}

/* List c on p's continuations (one CAS); false if p has settled (c must then run at once). */
static bool push_cont(sx_promise *p, struct sx__cont *c)
{
	struct sx__cont *h = ck_pr_load_ptr(&p->conts);

	do {
		if (h == CLOSED)
			return false;
		c->next = h;
	} while (!ck_pr_cas_ptr_value(&p->conts, h, c, &h));
	return true;
}

/* A dependent q of p: listed on p, or scheduled now if p settled. */
static int attach(sx_promise *p, sx_promise *q)
{
	return push_cont(p, &q->cont) ? 0 : sx_pool_submit_task(q->pool, &q->task);
}

/* q passes p's outcome on; p's value stays owned by p, which q keeps alive. */
static void pass_on(sx_promise *q, const sx_promise *p)
{
	settle(q, outcome(p) == S_FULFILLED ? 0 : p->err, p->value, NULL);
}

/* Run q's step; settling drops the pending reference if drop (else the caller keeps it). */
static void run_step_ref(sx_promise *q, sx_step_fn step, void *last, unsigned attempt, bool drop)
{
	sx_ctx ctx = { q->arg, attempt, q, NULL };
	void *out = NULL;
	int rc = chain_err(q->root);

	if (rc == 0)
		rc = step(&ctx, last, &out);
	settle_ref(q, rc, out, ctx.dtor, drop);
}

static void run_step(sx_promise *q, sx_step_fn step, void *last, unsigned attempt)
{
	run_step_ref(q, step, last, attempt, true);
}

static void retry_start(sx_promise *r);
static void retry_resume(sx_promise *r);

static void p_run(sx_task *t)
{
	sx_promise *q = SX_CONTAINER_OF(t, sx_promise, task), *p = q->parent;
	int rc;

	switch (q->kind) {
	case K_RUN:
		if (ck_pr_load_32(&q->claim) != 0 || !ck_pr_cas_32(&q->claim, 0, 1)) {
			/* A getter ran it inline and left us the pending reference. */
			unref(q);
			break;
		}
		run_step(q, (sx_step_fn)q->fn, NULL, 1);
		break;
	case K_THEN:
		if (outcome(p) != S_FULFILLED) {
			settle(q, p->err, NULL, NULL);
			break;
		}
		/* Keep the pending reference through the settle: we still touch q below. */
		run_step_ref(q, (sx_step_fn)q->fn, p->value, 1, false);
		if (outcome(q) == S_FULFILLED) { /* nothing reads p again: let the chain behind go */
			q->parent = NULL;
			unref(p);
		}
		unref(q);
		break;
	case K_CATCH: {
		sx_ctx ctx = { q->arg, 1, q, NULL };
		void *out = NULL;

		if (outcome(p) == S_FULFILLED || chain_err(q->root) != 0) {
			pass_on(q, p); /* a value, or a cancelled chain: handlers are skipped */
			break;
		}
		rc = ((sx_recover_fn)q->fn)(&ctx, p->err, NULL, &out);
		settle(q, rc, out, ctx.dtor);
		break;
	}
	case K_FINALLY: {
		sx_ctx ctx = { q->arg, 1, q, NULL };

		rc = ((sx_finally_fn)q->fn)(&ctx, outcome(p) == S_FULFILLED ? 0 : p->err,
		    outcome(p) == S_FULFILLED ? p->value : NULL);
		if (rc == 0)
			pass_on(q, p);
		else
			settle(q, rc, NULL, NULL);
		break;
	}
	case K_RETRY:
		if (((struct retry_ext *)q->ext)->resume)
			retry_resume(q);
		else
			retry_start(q);
		break;
	default:
		break;
	}
}

/* SX_CANCEL shutdown discarded q's task. */
static void p_cancel(sx_task *t, int err)
{
	sx_promise *q = SX_CONTAINER_OF(t, sx_promise, task);

	if (q->kind == K_RUN && !ck_pr_cas_32(&q->claim, 0, 1))
		unref(q); /* ran inline by a getter, which left us the pending reference */
	else
		settle(q, err, NULL, NULL);
}

/* ---- creating ------------------------------------------------------------------------------ */

int sx_promise_run_with(sx_pool *pool, sx_breaker *stop, sx_step_fn step, void *arg,
    sx_promise **out)
{
	sx_promise *q;
	int rc;

	if (pool == NULL || step == NULL || out == NULL)
		return -EINVAL;
	q = p_alloc(0);
	if (q == NULL)
		return -ENOMEM;
	q->kind = K_RUN;
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

/* A dependent of p of the given kind; attached (or scheduled) before it returns. */
static int dependent(sx_promise *p, int kind, void *fn, void *arg, size_t extra,
    const sx_retry_policy *policy, sx_promise **out)
{
	sx_promise *q;
	int rc;

	if (p == NULL || fn == NULL || out == NULL)
		return -EINVAL;
	q = p_alloc(extra);
	if (q == NULL)
		return -ENOMEM;
	q->kind = kind;
	q->pool = p->pool;
	q->fn = fn;
	q->arg = arg;
	q->parent = p;
	q->root = p->root;
	if (policy != NULL) {
		struct retry_ext *x = q->ext;

		x->policy = *policy;
		sx_backoff_init(&x->bo, &x->policy); /* checked by the caller */
	}
	ref(p);
	ref(q->root);
	if ((rc = attach(p, q)) != 0) {
		/* p had settled and the pool refused the task: undo (q was never visible). */
		ck_pr_dec_32(&q->root->refs); /* p holds one too: never the last */
		ck_pr_dec_32(&p->refs);
		sx_allocator_default.free(sx_allocator_default.ctx, q, sizeof(*q) + extra, SX__SMALL_ALIGN);
		return rc;
	}
	*out = q;
	return 0;
}

int sx_promise_then(sx_promise *p, sx_step_fn step, void *arg, sx_promise **out)
{
	return dependent(p, K_THEN, (void *)step, arg, 0, NULL, out);
}

int sx_promise_catch(sx_promise *p, sx_recover_fn fn, void *arg, sx_promise **out)
{
	return dependent(p, K_CATCH, (void *)fn, arg, 0, NULL, out);
}

int sx_promise_finally(sx_promise *p, sx_finally_fn fn, void *arg, sx_promise **out)
{
	return dependent(p, K_FINALLY, (void *)fn, arg, 0, NULL, out);
}

int sx_promise_recover_and_retry(sx_promise *p, sx_recover_fn recover, void *arg,
    const sx_retry_policy *policy, sx_promise **out)
{
	static const sx_retry_policy seed_like = SX_RETRY_POLICY_INIT;

	if (policy == NULL)
		policy = &seed_like;
	if (p == NULL || (p->kind != K_RUN && p->kind != K_THEN) ||
	    sx_retry_policy_check(policy) != 0)
		return -EINVAL;
	return dependent(p, K_RETRY, (void *)recover, arg, sizeof(struct retry_ext), policy, out);
}

/* ---- retry ----------------------------------------------------------------------------------- */

static void retry_failed(sx_promise *r, int err);

static void retry_start(sx_promise *r)
{
	struct retry_ext *x = r->ext;
	sx_promise *p = r->parent;

	if (outcome(p) == S_FULFILLED) {
		if (x->policy.budget != NULL) /* a success refills the budget, as in sx_retry */
			sx_retry_budget_deposit(x->policy.budget);
		pass_on(r, p);
		return;
	}
	x->attempt = 1;
	x->start = sx__policy_now(&x->policy);
	/* What p's step was given: its parent's value (a `then` that failed keeps its parent). */
	if (p->kind == K_THEN && p->parent != NULL && outcome(p->parent) == S_FULFILLED)
		x->last = p->parent->value;
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
			unref(r); /* the callback's reference: it will never run */
		if (status != 0)
			settle(r, status, NULL, NULL);
		else
			retry_resume(r);
	}
	unref(r); /* the timer's reference */
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
			unref(r); /* the timer's reference: it will never run */
		x->resume = true; /* the task settles r with the breaker's error */
		if ((rc = sx_pool_submit_task(r->pool, &r->task)) != 0)
			settle(r, rc, NULL, NULL);
	}
	unref(r); /* the callback's reference */
}

/* Wait d ns before the next round; r's task (the caller) returns right after. */
static void retry_wait(sx_promise *r, uint64_t d)
{
	struct retry_ext *x = r->ext;
	sx_breaker *b = chain_breaker(r->root);
	uint32_t prev;
	int rc;

	if (b == NULL) {
		settle(r, -ENOMEM, NULL, NULL);
		return;
	}
	ck_pr_store_32(&x->wst, 0);
	x->tstatus = 0;
	ref(r); /* the callback's */
	rc = sx_breaker_on_done(b, wait_tripped, r, &x->bh);
	if (rc != 0) {
		ck_pr_dec_32(&r->refs); /* the task holds the pending reference: never the last */
		if (rc == -EALREADY)
			retry_resume(r); /* settles with the breaker's error */
		else
			settle(r, rc, NULL, NULL);
		return;
	}
	ref(r); /* the timer's */
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
		settle(r, x->tstatus, NULL, NULL);
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
	if ((rc = chain_err(r->root)) != 0) {
		settle(r, rc, NULL, NULL);
		return;
	}
	x->err = err;
	if (!sx__retry_next(&x->policy, &x->bo, err, x->attempt, x->start, -1, &d)) {
		settle(r, err, NULL, NULL);
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
		if ((rc = chain_err(r->root)) != 0) {
			settle(r, rc, NULL, NULL);
			return;
		}
		rc = ((sx_recover_fn)r->fn)(&rctx, x->err, x->last, &v);
		if (rc != 0) {
			settle(r, rc, v, rctx.dtor); /* settle destroys a failed call's value */
			return;
		}
		if (x->rv_dtor != NULL && x->rv != v)
			x->rv_dtor(x->rv);
		x->rv = v;
		x->rv_dtor = rctx.dtor;
		x->last = v;
		sctx.attempt = ++x->attempt;
		if ((rc = chain_err(r->root)) == 0)
			rc = ((sx_step_fn)p->fn)(&sctx, v, &out);
		if (rc == 0) {
			if (x->policy.budget != NULL)
				sx_retry_budget_deposit(x->policy.budget);
			settle(r, 0, out, sctx.dtor);
			return;
		}
		if (sctx.dtor != NULL && out != NULL)
			sctx.dtor(out);
		{
			int stop = chain_err(r->root);

			if (stop != 0 ||
			    !sx__retry_next(&x->policy, &x->bo, rc, x->attempt, x->start, -1, &d)) {
				settle(r, stop != 0 ? stop : rc, NULL, NULL);
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

/* ---- combinators ------------------------------------------------------------------------------ */

/* Cancel every input but one. Allocates nothing: combine gave each pending input's chain its
 * breaker, and a chain that has settled needs no cancel. */
static void cancel_others(struct join_ext *x, size_t except)
{
	for (size_t i = 0; i < x->n; i++)
		if (i != except)
			sx_promise_cancel(x->in[i]);
}

/* Input j->idx settled: on the thread that settled it. */
static void join_fire(struct sx__cont *c)
{
	struct join *j = SX_CONTAINER_OF(c, struct join, cont);
	sx_promise *a = j->a, *in;
	struct join_ext *x = a->ext;
	bool ok, last;

	in = x->in[j->idx];
	ok = outcome(in) == S_FULFILLED;
	if (ok)
		x->values[j->idx] = in->value;
	last = ck_pr_faa_32(&x->remaining, (uint32_t)-1) == 1;
	switch (a->kind) {
	case K_ALL:
		if ((!ok || last) && ck_pr_cas_32(&x->decided, 0, 1)) {
			if (ok) {
				settle(a, 0, x->values, NULL);
			} else {
				settle(a, in->err, NULL, NULL);
				cancel_others(x, j->idx);
			}
		}
		break;
	case K_ANY:
		if ((ok || last) && ck_pr_cas_32(&x->decided, 0, 1)) {
			settle(a, ok ? 0 : in->err, ok ? in->value : NULL, NULL);
			if (ok)
				cancel_others(x, j->idx);
		}
		break;
	default: /* K_RACE */
		if (ck_pr_cas_32(&x->decided, 0, 1)) {
			settle(a, ok ? 0 : in->err, ok ? in->value : NULL, NULL);
			cancel_others(x, j->idx);
		}
		break;
	}
	unref(a); /* this join's reference */
}

static int combine(int kind, sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	struct join_ext *x;
	sx_promise *a;
	size_t extra;

	if (pool == NULL || out == NULL || (n > 0 && list == NULL) || (n == 0 && kind != K_ALL))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (list[i] == NULL)
			return -EINVAL;
	if (n > (SIZE_MAX - sizeof(struct join_ext)) / (sizeof(struct join) + 2 * sizeof(void *)) ||
	    n >= UINT32_MAX)
		return -EINVAL;
	/* Deciding cancels the other inputs, which must not need memory then: each pending input's
	 * chain gets its breaker now (kept on failure: it is the chain's own, made on first use). */
	for (size_t i = 0; i < n; i++)
		if (outcome(list[i]) == S_PENDING && chain_breaker(list[i]->root) == NULL)
			return -ENOMEM;
	extra = sizeof(struct join_ext) + n * (sizeof(struct join) + 2 * sizeof(void *));
	a = p_alloc(extra);
	if (a == NULL)
		return -ENOMEM;
	x = a->ext;
	x->n = n;
	x->remaining = (uint32_t)n;
	x->in = (sx_promise **)(void *)&x->joins[n];
	x->values = (void **)(x->in + n);
	a->kind = kind;
	a->pool = pool;
	*out = a;
	if (n == 0) {
		settle(a, 0, NULL, NULL); /* all of nothing */
		return 0;
	}
	a->refs += (uint32_t)n; /* one per join, which may still fire after a has settled */
	for (size_t i = 0; i < n; i++) {
		x->in[i] = list[i];
		ref(list[i]);
		x->joins[i].a = a;
		x->joins[i].idx = i;
		x->joins[i].cont.fire = join_fire;
	}
	/* Attach last: a join may fire (and decide) at once; every input is recorded by then. */
	for (size_t i = 0; i < n; i++)
		if (!push_cont(list[i], &x->joins[i].cont))
			join_fire(&x->joins[i].cont);
	return 0;
}

int sx_promise_all(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(K_ALL, pool, list, n, out);
}

int sx_promise_any(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(K_ANY, pool, list, n, out);
}

int sx_promise_race(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(K_RACE, pool, list, n, out);
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
	b = chain_breaker(root);
	if (b == NULL)
		return -ENOMEM;
	rc = sx_breaker_trip(b);
	if (rc == 0 && root->kind >= K_ALL) {
		struct join_ext *x = root->ext;

		cancel_others(x, x->n);
	}
	return rc;
}

/* ---- waiting --------------------------------------------------------------------------------- */

bool sx_promise_settled(const sx_promise *p)
{
	return p != NULL && outcome(p) != S_PENDING;
}

static int result(const sx_promise *p, void **value)
{
	if (outcome(p) == S_FULFILLED) {
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

	if (outcome(p) != S_PENDING)
		return 1;
	if (stop == JOIN)
		return 0;
	if ((rc = chain_err(p->root)) != 0)
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

	/* The task we wait for, if nobody has started it: run it here, on this stack (nesting
	 * follows the dependency, so the depth is the program's own recursion depth). If it is
	 * still where this worker queued it last (fork-join: it usually is), it comes out of the
	 * queue and runs as if popped. Otherwise its queue entry stays where it is, keeps the
	 * pending reference and drops it when it comes up. */
	if (p->kind == K_RUN && ck_pr_load_32(&p->claim) == 0) {
		if (sx__untake(w, &p->task)) {
			p->task.run(&p->task);
			sx__stat_add(&w->stats.executed, 1);
		} else if (ck_pr_cas_32(&p->claim, 0, 1)) {
			run_step_ref(p, (sx_step_fn)p->fn, NULL, 1, false);
		}
	}
	while ((s = ck_pr_load_32(&p->state), rc = wait_check(p, stop, deadline)) == 0) {
		int ran = sx__help_one(w);

		if (ran < 0)
			return outcome(p) != S_PENDING ? 1 : ran;
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
	unref(p);
}

/* Register kick on b for p; *h NULL if b has tripped already (nothing to withdraw then). */
static int watch(sx_breaker *b, sx_promise *p, sx_breaker_cb **h)
{
	int rc;

	*h = NULL;
	ref(p);
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
	sx_breaker *cb = chain_breaker(p->root);
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

/* ---- internal: promises settled by other modules (flow/flow.h) ------------------------------- */

int sx__promise_deferred(sx_pool *pool, sx_breaker *parent, void (*cleanup)(void *), void *arg,
    sx_promise **out)
{
	sx_promise *q = p_alloc(0);
	int rc;

	if (q == NULL)
		return -ENOMEM;
	q->kind = K_DEFERRED;
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
	ref(p);
}

void sx__promise_settle(sx_promise *p, int err)
{
	settle(p, err, NULL, NULL);
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

			if (outcome(p) != S_PENDING)
				break;
			doze(p, s, UINT64_MAX);
		}
	}
	return result(p, NULL);
}
