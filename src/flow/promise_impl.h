/*
 * The promise's insides, shared by the promise_*.c files of flow and included by them only (the
 * rest of strix sees sx_promise through strix/promise.h and flow/flow.h).
 *
 *   promise_core.c   memory, references, settling, scheduling, continuations, the kinds run,
 *                    then, catch and finally, cancel, deferred promises (flow/flow.h)
 *   promise_retry.c  recover_and_retry: the retry kind and its delay protocol
 *   promise_comb.c   all, any, race
 *   promise_settle.c settle-by-hand promises and delays: roots that something other than a
 *                    step settles, the first of several parties winning
 *   promise_wait.c   settled, get, get_until, sx__promise_join
 *   promise_blocking.c a root whose step runs on the pool's side threads for blocking work
 *
 * A kind of promise is its ops: one const struct sx__promise_ops in the file of the kind's job,
 * which every promise of that kind points at. The shared code never asks which kind it holds; it
 * calls the kind's entry, and a NULL entry means the default written beside it. So a new kind is
 * a new table (and its constructor) in one file.
 */
#ifndef STRIX_SRC_FLOW_PROMISE_IMPL_H
#define STRIX_SRC_FLOW_PROMISE_IMPL_H

#include "flow/flow.h"

/* The state word: PENDING until one exchange stores FULFILLED or REJECTED. WAITERS: a getter
 * sleeps (or is about to) on the word's futex; KICK: a breaker a getter watches has tripped
 * (promise_wait.c). */
#define S_PENDING   0u
#define S_FULFILLED 1u
#define S_REJECTED  2u
#define S_OUTCOME   3u
#define S_WAITERS   4u
#define S_KICK      8u

/* An entry on a promise's continuation list (promise_core.c). */
struct sx__cont {
	sx__link link;                    /* in the parent's closable stack (base/base.h) */
	void (*fire)(struct sx__cont *c); /* NULL: schedule the promise this cont is embedded in */
};

struct sx__promise_ops {
	/* Its task runs: do the kind's work and settle q (which drops the pending reference). NULL
	 * for kinds whose task is never queued (deferred, the combinators). */
	void (*run)(sx_promise *q);
	/* A shutdown with SX_CANCEL discarded its queued task. NULL: q settles with err. */
	void (*discard)(sx_promise *q, int err);
	/* A getter on worker w of q's pool is about to wait for q: run q's work here, on its stack,
	 * if nobody has started it (the run kind). NULL: there is nothing to run. */
	void (*help)(sx__worker *w, sx_promise *q);
	/* Kinds whose fn is an sx_step_fn that recover_and_retry may run again (run, then): the
	 * `last` that q's step was given. NULL: recover_and_retry refuses q (-EINVAL). */
	void *(*step_input)(const sx_promise *q);
	/* Combinators: input idx, in, of combinator a settled (fulfilled if ok; last if no input is
	 * pending any more). Settles a if this input decides it, and cancels the other inputs. */
	void (*decide)(sx_promise *a, sx_promise *in, size_t idx, bool ok, bool last);
	/* sx_promise_cancel tripped the breaker of q, a chain's root: cancel what else q waits on
	 * (a combinator's inputs). NULL: nothing. */
	void (*cancel)(sx_promise *q);
	/* q is being freed, its value destroyed already: give back what the kind owns, before q
	 * drops its root (or, a root, releases the chain's breaker). NULL: nothing. */
	void (*release)(sx_promise *q);
	/* The size of q's ext, which it was allocated with. NULL: 0. */
	size_t (*ext_size)(const sx_promise *q);
};

struct sx_promise {
	sx_task task;              /* this promise's work, queued on the pool */
	struct sx__cont cont;      /* this promise in its parent's list */
	uint32_t state;
	uint32_t refs;
	int err;
	uint32_t claim;            /* run kind: 1 once its queued task or a getter started the step;
	                            * hand and delay kinds: who settles it (promise_settle.c) */
	const struct sx__promise_ops *ops; /* its kind */
	void *value;
	void (*dtor)(void *);
	sx__link *conts;           /* closable stack of dependents' sx__cont; closed by the settle */
	sx_promise *parent;        /* reference held (NULL for roots, and once a `then` is done) */
	sx_promise *root;          /* the chain's root (self); reference held by non-roots */
	sx_pool *pool;
	void *fn;                  /* sx_step_fn, sx_recover_fn or sx_finally_fn */
	void *arg;
	sx_breaker *brk;           /* root only: the chain's breaker, created lazily */
	void *ext;                 /* the kind's state (retry, combinator), in the same allocation */
};

static inline uint32_t sx__promise_outcome(const sx_promise *q)
{
	return ck_pr_load_32(&((sx_promise *)q)->state) & S_OUTCOME;
}

/* One more reference; the caller holds one already (sx__promise_ref's body, inline here). */
static inline void sx__promise_incref(sx_promise *q)
{
	ck_pr_inc_32(&q->refs);
}

/* 0 while the chain of root runs, else its breaker's error. One or two loads. */
static inline int sx__promise_chain_err(const sx_promise *root)
{
	sx_breaker *b = ck_pr_load_ptr(&((sx_promise *)root)->brk);

	return b != NULL ? sx_breaker_err(b) : 0;
}

/* ---- promise_core.c ---- */

/* A new promise of the given kind with extra bytes of ext, zeroed; the caller's reference and
 * the pending one; a root (root = itself). NULL if memory ran out. */
sx_promise *sx__promise_alloc(const struct sx__promise_ops *ops, size_t extra);
/* Drop a reference; the last one frees the promise, and then the references it held. */
void sx__promise_unref(sx_promise *q);
/* The chain's breaker, created and installed in root on first use; NULL if memory ran out. */
sx_breaker *sx__promise_chain_breaker(sx_promise *root);
/* Publish q's outcome (a failed outcome's value is destroyed with dtor at once), wake its
 * getters, schedule or fire its dependents, drop the pending reference. */
void sx__promise_settle_with(sx_promise *q, int err, void *value, void (*dtor)(void *));
/* q settles as p did; p's value stays owned by p, which q keeps alive. */
void sx__promise_pass_on(sx_promise *q, const sx_promise *p);
/* List c on p's continuations (one CAS); false if p has settled (c must then run at once). */
bool sx__promise_push_cont(sx_promise *p, struct sx__cont *c);
/* A dependent of p of the given kind, not yet visible (the caller fills its ext, extra bytes):
 * holds nothing yet; NULL if memory ran out. sx__promise_attach then makes it p's. */
sx_promise *sx__promise_dependent(sx_promise *p, const struct sx__promise_ops *ops, void *fn,
    void *arg, size_t extra);
/* Take q's references on its parent and root and list it on the parent (or schedule it, if the
 * parent has settled): 0 and the caller's reference in *out, or the pool's error with q freed. */
int sx__promise_attach(sx_promise *q, sx_promise **out);

#endif /* STRIX_SRC_FLOW_PROMISE_IMPL_H */
