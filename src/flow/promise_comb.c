/*
 * Combinators: all, any, race. A combinator a is a root promise with no task of its own; its ext
 * holds one join per input, a cont embedded in it and listed on that input, which fires inline on
 * the thread that settles the input (a few atomics). A join records the input's value, counts the
 * input off (`remaining`), and asks a's kind (its ops' decide) whether this input decides a: all
 * on the first error or the last value, any on the first value or the last error, race on the
 * first outcome. Only the input that wins the CAS on `decided` settles a, so a settles once and
 * without a lock; the inputs still pending then are cancelled.
 *
 * Cancelling them must not need memory at that point (a join may fire on any thread, inside a
 * settle), so combine gives each pending input's chain its breaker up front; a cancel of an
 * input that settled meanwhile changes nothing. Cancelling a trips its own breaker and cancels
 * every input (its ops' cancel). a holds a reference on each input, released when a is freed,
 * and one per join, dropped when the join has fired: a join may fire after a has settled.
 */
#include <errno.h>

#include <strix/promise.h>

#include "flow/promise_impl.h"

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

static size_t join_ext_size(size_t n)
{
	return sizeof(struct join_ext) + n * (sizeof(struct join) + 2 * sizeof(void *));
}

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
	ok = sx__promise_outcome(in) == S_FULFILLED;
	if (ok)
		x->values[j->idx] = in->value;
	last = ck_pr_faa_32(&x->remaining, (uint32_t)-1) == 1;
	a->ops->decide(a, in, j->idx, ok, last);
	sx__promise_unref(a); /* this join's reference */
}

/* all: the first error, or the last value (then the array of every input's value). */
static void all_decide(sx_promise *a, sx_promise *in, size_t idx, bool ok, bool last)
{
	struct join_ext *x = a->ext;

	if ((!ok || last) && ck_pr_cas_32(&x->decided, 0, 1)) {
		if (ok) {
			sx__promise_settle_with(a, 0, x->values, NULL);
		} else {
			sx__promise_settle_with(a, in->err, NULL, NULL);
			cancel_others(x, idx);
		}
	}
}

/* any: the first value, or the last error. */
static void any_decide(sx_promise *a, sx_promise *in, size_t idx, bool ok, bool last)
{
	struct join_ext *x = a->ext;

	if ((ok || last) && ck_pr_cas_32(&x->decided, 0, 1)) {
		sx__promise_settle_with(a, ok ? 0 : in->err, ok ? in->value : NULL, NULL);
		if (ok)
			cancel_others(x, idx);
	}
}

/* race: the first outcome. */
static void race_decide(sx_promise *a, sx_promise *in, size_t idx, bool ok, bool last)
{
	struct join_ext *x = a->ext;

	(void)last;
	if (ck_pr_cas_32(&x->decided, 0, 1)) {
		sx__promise_settle_with(a, ok ? 0 : in->err, ok ? in->value : NULL, NULL);
		cancel_others(x, idx);
	}
}

/* sx_promise_cancel tripped a's breaker: cancel every input. */
static void comb_cancel(sx_promise *a)
{
	struct join_ext *x = a->ext;

	cancel_others(x, x->n);
}

static void comb_release(sx_promise *a)
{
	struct join_ext *x = a->ext;

	for (size_t i = 0; i < x->n; i++)
		sx__promise_unref(x->in[i]);
}

static size_t comb_ext_size(const sx_promise *a)
{
	return join_ext_size(((struct join_ext *)a->ext)->n);
}

static const struct sx__promise_ops all_ops = {
	.decide = all_decide,
	.cancel = comb_cancel,
	.release = comb_release,
	.ext_size = comb_ext_size,
};

static const struct sx__promise_ops any_ops = {
	.decide = any_decide,
	.cancel = comb_cancel,
	.release = comb_release,
	.ext_size = comb_ext_size,
};

static const struct sx__promise_ops race_ops = {
	.decide = race_decide,
	.cancel = comb_cancel,
	.release = comb_release,
	.ext_size = comb_ext_size,
};

static int combine(const struct sx__promise_ops *ops, sx_pool *pool, sx_promise *const *list,
    size_t n, sx_promise **out)
{
	struct join_ext *x;
	sx_promise *a;

	if (pool == NULL || out == NULL || (n > 0 && list == NULL) || (n == 0 && ops != &all_ops))
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
		if (sx__promise_outcome(list[i]) == S_PENDING &&
		    sx__promise_chain_breaker(list[i]->root) == NULL)
			return -ENOMEM;
	a = sx__promise_alloc(ops, join_ext_size(n));
	if (a == NULL)
		return -ENOMEM;
	x = a->ext;
	x->n = n;
	x->remaining = (uint32_t)n;
	x->in = (sx_promise **)(void *)&x->joins[n];
	x->values = (void **)(x->in + n);
	a->pool = pool;
	*out = a;
	if (n == 0) {
		sx__promise_settle_with(a, 0, NULL, NULL); /* all of nothing */
		return 0;
	}
	a->refs += (uint32_t)n; /* one per join, which may still fire after a has settled */
	for (size_t i = 0; i < n; i++) {
		x->in[i] = list[i];
		sx__promise_incref(list[i]);
		x->joins[i].a = a;
		x->joins[i].idx = i;
		x->joins[i].cont.fire = join_fire;
	}
	/* Attach last: a join may fire (and decide) at once; every input is recorded by then. */
	for (size_t i = 0; i < n; i++)
		if (!sx__promise_push_cont(list[i], &x->joins[i].cont))
			join_fire(&x->joins[i].cont);
	return 0;
}

int sx_promise_all(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(&all_ops, pool, list, n, out);
}

int sx_promise_any(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(&any_ops, pool, list, n, out);
}

int sx_promise_race(sx_pool *pool, sx_promise *const *list, size_t n, sx_promise **out)
{
	return combine(&race_ops, pool, list, n, out);
}
