/* Promises that no step settles: settle-by-hand promises (create, resolve, reject) settled from
 * any thread, their races with cancel, their lifetimes, combinators over them, delays on the
 * timer service cut by breakers and cancels, and pool shutdown with both pending. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/promise.h>

#define MS 1000000ll

TU_POOL_FIXTURE(3)

/* ---- helpers ---------------------------------------------------------------------------------- */

/* last + arg. */
static int add_arg(sx_ctx *ctx, void *last, void **out)
{
	*out = (void *)((intptr_t)last + (intptr_t)ctx->arg);
	return 0;
}

static int ret_arg(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = ctx->arg;
	return 0;
}

/* Counts its calls in *arg and records the outcome it saw: for "each told exactly once". */
struct seen {
	atomic_uint calls;
	atomic_int err;
};

static int note(sx_ctx *ctx, int err, void *value)
{
	struct seen *s = ctx->arg;

	(void)value;
	atomic_store(&s->err, err);
	atomic_fetch_add(&s->calls, 1);
	return 0;
}

static void seen_init(struct seen *s)
{
	atomic_init(&s->calls, 0);
	atomic_init(&s->err, 1);
}

/* The outcome of a settled p: 0 with *v, or its error. */
static int outcome(sx_promise *p, void **v)
{
	assert_true(sx_promise_settled(p));
	return sx_promise_get(p, 0, v);
}

/* The outcome of p once it has settled: in a cancelled chain sx_promise_get returns at the
 * trip, maybe before p's own step (a finally) has run. */
static int final(sx_promise *p, void **v)
{
	TU_WAIT_FOR(sx_promise_settled(p));
	return outcome(p, v);
}

struct settler {
	sx_promise *p;
	void *value;
	int err;   /* 0: resolve with value, else reject with it */
	int rc;
};

static void *settle_main(void *arg)
{
	struct settler *s = arg;

	s->rc = s->err == 0 ? sx_promise_resolve(s->p, s->value) : sx_promise_reject(s->p, s->err);
	return NULL;
}

/* Settle from a new thread (outside the pool) and join it; returns the call's result. */
static int settle_on_thread(sx_promise *p, void *value, int err)
{
	struct settler s = { p, value, err, 1 };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, settle_main, &s), 0);
	pthread_join(th, NULL);
	return s.rc;
}

/* ---- settle-by-hand -------------------------------------------------------------------------- */

static void test_create_bad_input(void **state)
{
	sx_promise *p = (sx_promise *)1;

	(void)state;
	assert_int_equal(sx_promise_create(NULL, &p), -EINVAL);
	assert_int_equal(sx_promise_create(pool, NULL), -EINVAL);
	assert_ptr_equal(p, (sx_promise *)1);
	assert_int_equal(sx_promise_resolve(NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_reject(NULL, -EIO), -EINVAL);
}

static void test_pending_until_settled(void **state)
{
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_false(sx_promise_settled(p));
	assert_int_equal(sx_promise_get(p, 0, &v), -ETIMEDOUT);
	assert_int_equal(sx_promise_get(p, 5 * MS, &v), -ETIMEDOUT);
	assert_int_equal(sx_promise_resolve(p, (void *)9), 0);
	assert_int_equal(outcome(p, &v), 0);
	assert_ptr_equal(v, (void *)9);
	sx_promise_release(p);
}

static void test_resolve_from_outside_thread(void **state)
{
	sx_promise *p, *t;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)1, &t), 0);
	assert_int_equal(settle_on_thread(p, (void *)41, 0), 0);
	assert_int_equal(sx_promise_get(t, -1, &v), 0);
	assert_ptr_equal(v, (void *)42);
	sx_promise_release(p);
	sx_promise_release(t);
}

static void test_reject_from_outside_thread_skips_then(void **state)
{
	struct seen s;
	sx_promise *p, *t, *c;
	void *v = NULL;

	(void)state;
	seen_init(&s);
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_finally(t, note, &s, &c), 0);
	assert_int_equal(settle_on_thread(p, NULL, -EPIPE), 0);
	assert_int_equal(sx_promise_get(c, -1, &v), -EPIPE);
	assert_int_equal(atomic_load(&s.calls), 1);
	assert_int_equal(atomic_load(&s.err), -EPIPE);
	assert_int_equal(outcome(t, &v), -EPIPE);
	assert_int_equal(outcome(p, &v), -EPIPE);
	sx_promise_release(p);
	sx_promise_release(t);
	sx_promise_release(c);
}

/* A step of another chain settles the hand promise, on a worker. */
static int resolve_step(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = NULL;
	return sx_promise_resolve(ctx->arg, (void *)7);
}

static void test_resolve_from_worker(void **state)
{
	sx_promise *p, *t, *r;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)3, &t), 0);
	assert_int_equal(sx_promise_run(pool, resolve_step, p, &r), 0);
	assert_int_equal(sx_promise_get(r, -1, NULL), 0); /* its resolve returned 0 */
	assert_int_equal(sx_promise_get(t, -1, &v), 0);
	assert_ptr_equal(v, (void *)10);
	sx_promise_release(r);
	sx_promise_release(p);
	sx_promise_release(t);
}

/* A step waits (helping) on a hand promise that an outside thread settles later. */
static int wait_step(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	return sx_promise_get(ctx->arg, -1, out);
}

static void test_worker_waits_for_hand(void **state)
{
	sx_promise *p, *r;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_run(pool, wait_step, p, &r), 0);
	assert_int_equal(sx_promise_get(r, 2 * MS, &v), -ETIMEDOUT);
	assert_int_equal(settle_on_thread(p, (void *)5, 0), 0);
	assert_int_equal(sx_promise_get(r, -1, &v), 0);
	assert_ptr_equal(v, (void *)5);
	sx_promise_release(r);
	sx_promise_release(p);
}

/* then-chains built before the settle, their handles released at once: the settle runs them. */
static void test_then_chain_settled_later(void **state)
{
	sx_promise *p, *a, *b, *c;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)10, &a), 0);
	assert_int_equal(sx_promise_then(a, add_arg, (void *)100, &b), 0);
	assert_int_equal(sx_promise_then(b, add_arg, (void *)1000, &c), 0);
	sx_promise_release(a);
	sx_promise_release(b);
	assert_int_equal(sx_promise_get(c, 1 * MS, &v), -ETIMEDOUT);
	assert_int_equal(sx_promise_resolve(p, (void *)1), 0);
	assert_int_equal(sx_promise_get(c, -1, &v), 0);
	assert_ptr_equal(v, (void *)1111);
	sx_promise_release(p);
	sx_promise_release(c);
}

/* A second settle call, in every order, is -EALREADY and changes nothing. */
static void test_second_settle_ealready(void **state)
{
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0); /* resolve, then reject, resolve */
	assert_int_equal(sx_promise_resolve(p, (void *)1), 0);
	assert_int_equal(sx_promise_reject(p, -EIO), -EALREADY);
	assert_int_equal(sx_promise_resolve(p, (void *)2), -EALREADY);
	assert_int_equal(outcome(p, &v), 0);
	assert_ptr_equal(v, (void *)1);
	sx_promise_release(p);

	assert_int_equal(sx_promise_create(pool, &p), 0); /* reject, then resolve, reject */
	assert_int_equal(sx_promise_reject(p, -EIO), 0);
	assert_int_equal(sx_promise_resolve(p, (void *)2), -EALREADY);
	assert_int_equal(sx_promise_reject(p, -EPIPE), -EALREADY);
	assert_int_equal(outcome(p, &v), -EIO);
	sx_promise_release(p);
}

static void test_reject_needs_an_error(void **state)
{
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_reject(p, 0), -EINVAL);
	assert_int_equal(sx_promise_reject(p, 5), -EINVAL);
	assert_false(sx_promise_settled(p)); /* nothing changed: the settle right is kept */
	assert_int_equal(sx_promise_reject(p, SX_EREJECTED), 0);
	assert_int_equal(outcome(p, &v), SX_EREJECTED);
	sx_promise_release(p);
}

/* Only hand promises may be settled from outside: the others are refused, unchanged. */
static void test_settle_refused_for_other_kinds(void **state)
{
	sx_promise *r, *t, *d, *a, *list[1];
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)3, &r), 0);
	assert_int_equal(sx_promise_then(r, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_delay(pool, 60000 * MS, NULL, &d), 0);
	list[0] = d;
	assert_int_equal(sx_promise_race(pool, list, 1, &a), 0);
	assert_int_equal(sx_promise_resolve(r, NULL), -EPERM);
	assert_int_equal(sx_promise_reject(t, -EIO), -EPERM);
	assert_int_equal(sx_promise_resolve(d, NULL), -EPERM);
	assert_int_equal(sx_promise_reject(a, -EIO), -EPERM);
	assert_int_equal(sx_promise_get(t, -1, &v), 0);
	assert_ptr_equal(v, (void *)4);
	assert_false(sx_promise_settled(d));
	assert_false(sx_promise_settled(a));
	assert_int_equal(sx_promise_cancel(a), 0); /* cancels d too */
	assert_int_equal(outcome(d, &v), -ECANCELED);
	sx_promise_release(r);
	sx_promise_release(t);
	sx_promise_release(d);
	sx_promise_release(a);
}

static void test_recover_and_retry_refuses_hand(void **state)
{
	sx_promise *p, *r = (sx_promise *)1;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, NULL, NULL, NULL, &r), -EINVAL);
	assert_ptr_equal(r, (sx_promise *)1);
	assert_int_equal(sx_promise_resolve(p, NULL), 0);
	sx_promise_release(p);
}

static void test_cancel_pending_hand(void **state)
{
	struct seen s;
	sx_promise *p, *t, *f;
	void *v = NULL;

	(void)state;
	seen_init(&s);
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_finally(t, note, &s, &f), 0);
	assert_int_equal(sx_promise_cancel(t), 0); /* cancels the chain: its root settles now */
	assert_int_equal(outcome(p, &v), -ECANCELED);
	assert_int_equal(final(f, &v), -ECANCELED);
	assert_int_equal(atomic_load(&s.calls), 1);
	assert_int_equal(atomic_load(&s.err), -ECANCELED);
	assert_int_equal(sx_promise_resolve(p, (void *)1), -EALREADY); /* uses up the right */
	assert_int_equal(sx_promise_cancel(p), -EALREADY);
	assert_int_equal(atomic_load(&s.calls), 1);
	sx_promise_release(p);
	sx_promise_release(t);
	sx_promise_release(f);
}

/* A cancel after the settle leaves the hand's value and cancels what follows it. */
static void test_cancel_after_settle_keeps_value(void **state)
{
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_resolve(p, (void *)8), 0);
	assert_int_equal(sx_promise_cancel(p), 0);
	assert_int_equal(outcome(p, &v), 0);
	assert_ptr_equal(v, (void *)8);
	sx_promise_release(p);
}

/* Cancel and settle race from two threads: exactly one wins, the continuation runs once. */
struct race {
	sx_promise *p, *t;
	pthread_barrier_t go;
	int rc;
};

static void *race_settle(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->rc = sx_promise_resolve(r->p, (void *)1);
	return NULL;
}

static void test_cancel_vs_settle_race(void **state)
{
	unsigned won = 0, lost = 0;

	(void)state;
	for (unsigned i = 0; i < 300; i++) {
		struct race r;
		struct seen s;
		sx_promise *f;
		pthread_t th;
		void *v = NULL;
		int rc;

		seen_init(&s);
		assert_int_equal(sx_promise_create(pool, &r.p), 0);
		assert_int_equal(sx_promise_then(r.p, add_arg, (void *)1, &r.t), 0);
		assert_int_equal(sx_promise_finally(r.t, note, &s, &f), 0);
		pthread_barrier_init(&r.go, NULL, 2);
		assert_int_equal(pthread_create(&th, NULL, race_settle, &r), 0);
		pthread_barrier_wait(&r.go);
		assert_int_equal(sx_promise_cancel(i % 2 ? r.p : r.t), 0);
		pthread_join(th, NULL);
		pthread_barrier_destroy(&r.go);
		rc = final(f, &v);
		assert_int_equal(atomic_load(&s.calls), 1);
		if (r.rc == 0) { /* the settle won: the hand keeps its value; what follows is cancelled
		                  * unless its step had started */
			assert_int_equal(outcome(r.p, &v), 0);
			assert_ptr_equal(v, (void *)1);
			assert_true(rc == 0 || rc == -ECANCELED);
			won++;
		} else {
			assert_int_equal(r.rc, -EALREADY);
			assert_int_equal(outcome(r.p, &v), -ECANCELED);
			assert_int_equal(rc, -ECANCELED);
			lost++;
		}
		sx_promise_release(r.p);
		sx_promise_release(r.t);
		sx_promise_release(f);
	}
	print_message("settle won %u, cancel won %u\n", won, lost);
}

/* The creator chains and releases every handle; the settler comes later and holds the only
 * right. Nothing is touched after it is freed (ASan) and nothing leaks (LSan). */
static void test_release_before_settle(void **state)
{
	struct seen s1, s2;
	sx_promise *p, *q, *t, *f;

	(void)state;
	seen_init(&s1);
	seen_init(&s2);
	assert_int_equal(sx_promise_create(pool, &p), 0);
	assert_int_equal(sx_promise_then(p, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_finally(t, note, &s1, &f), 0);
	sx_promise_release(t);
	sx_promise_release(f);
	sx_promise_release(p); /* only the settle right keeps p now */
	assert_int_equal(settle_on_thread(p, (void *)1, 0), 0);
	TU_WAIT_FOR(atomic_load(&s1.calls) == 1);
	assert_int_equal(atomic_load(&s1.err), 0);

	/* Cancelled while the settler still owes its call: the right outlives the cancel. */
	assert_int_equal(sx_promise_create(pool, &q), 0);
	assert_int_equal(sx_promise_finally(q, note, &s2, &f), 0);
	assert_int_equal(sx_promise_cancel(f), 0);
	sx_promise_release(f);
	sx_promise_release(q);
	TU_WAIT_FOR(atomic_load(&s2.calls) == 1);
	assert_int_equal(atomic_load(&s2.err), -ECANCELED);
	assert_int_equal(settle_on_thread(q, NULL, -EIO), -EALREADY); /* frees q */
}

/* ---- combinators over hand promises ---------------------------------------------------------- */

static void test_all_over_hand(void **state)
{
	sx_promise *h[3], *a;
	void *v = NULL;
	void **vals;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_promise_create(pool, &h[i]), 0);
	assert_int_equal(sx_promise_all(pool, h, 3, &a), 0);
	assert_int_equal(settle_on_thread(h[2], (void *)30, 0), 0);
	assert_int_equal(sx_promise_resolve(h[0], (void *)10), 0);
	assert_false(sx_promise_settled(a));
	assert_int_equal(settle_on_thread(h[1], (void *)20, 0), 0);
	assert_int_equal(sx_promise_get(a, -1, &v), 0);
	vals = v;
	assert_ptr_equal(vals[0], (void *)10);
	assert_ptr_equal(vals[1], (void *)20);
	assert_ptr_equal(vals[2], (void *)30);
	sx_promise_release(a);
	for (int i = 0; i < 3; i++)
		sx_promise_release(h[i]);
}

/* all fails fast: the other hand inputs are rejected with -ECANCELED, their settlers told. */
static void test_all_over_hand_fails_fast(void **state)
{
	sx_promise *h[3], *a;
	void *v = NULL;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_promise_create(pool, &h[i]), 0);
	assert_int_equal(sx_promise_all(pool, h, 3, &a), 0);
	assert_int_equal(sx_promise_resolve(h[0], (void *)1), 0);
	assert_int_equal(settle_on_thread(h[1], NULL, -EIO), 0);
	assert_int_equal(sx_promise_get(a, -1, &v), -EIO);
	assert_int_equal(final(h[2], &v), -ECANCELED); /* after a settled */
	assert_int_equal(sx_promise_resolve(h[2], (void *)3), -EALREADY);
	assert_int_equal(outcome(h[0], &v), 0); /* settled before the failure: kept */
	sx_promise_release(a);
	for (int i = 0; i < 3; i++)
		sx_promise_release(h[i]);
}

static void test_any_and_race_over_hand(void **state)
{
	sx_promise *h[3], *a, *r;
	void *v = NULL;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_promise_create(pool, &h[i]), 0);
	assert_int_equal(sx_promise_any(pool, h, 3, &a), 0);
	assert_int_equal(sx_promise_reject(h[0], -EIO), 0);
	assert_int_equal(settle_on_thread(h[2], (void *)3, 0), 0);
	assert_int_equal(sx_promise_get(a, -1, &v), 0);
	assert_ptr_equal(v, (void *)3);
	assert_int_equal(final(h[1], &v), -ECANCELED); /* the rest cancelled */
	assert_int_equal(sx_promise_resolve(h[1], NULL), -EALREADY);
	sx_promise_release(a);
	for (int i = 0; i < 3; i++)
		sx_promise_release(h[i]);

	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_promise_create(pool, &h[i]), 0);
	assert_int_equal(sx_promise_race(pool, h, 3, &r), 0);
	assert_int_equal(settle_on_thread(h[1], NULL, -EPIPE), 0);
	assert_int_equal(sx_promise_get(r, -1, &v), -EPIPE);
	for (int i = 0; i < 3; i += 2) {
		assert_int_equal(final(h[i], &v), -ECANCELED);
		assert_int_equal(sx_promise_reject(h[i], -EIO), -EALREADY);
	}
	sx_promise_release(r);
	for (int i = 0; i < 3; i++)
		sx_promise_release(h[i]);
}

/* A hand promise raced against a delay: the timeout pattern. */
static void test_race_hand_against_delay(void **state)
{
	sx_promise *in[2], *r;
	void *v = (void *)1;

	(void)state;
	assert_int_equal(sx_promise_create(pool, &in[0]), 0);
	assert_int_equal(sx_promise_delay(pool, 5 * MS, NULL, &in[1]), 0);
	assert_int_equal(sx_promise_race(pool, in, 2, &r), 0);
	assert_int_equal(sx_promise_get(r, -1, &v), 0);
	assert_null(v); /* the delay's value */
	assert_int_equal(final(in[0], &v), -ECANCELED);
	assert_int_equal(settle_on_thread(in[0], (void *)1, 0), -EALREADY);
	sx_promise_release(r);
	sx_promise_release(in[0]);
	sx_promise_release(in[1]);
}

/* ---- delays ---------------------------------------------------------------------------------- */

static void test_delay_bad_input(void **state)
{
	sx_promise *d = (sx_promise *)1;

	(void)state;
	assert_int_equal(sx_promise_delay(NULL, 1, NULL, &d), -EINVAL);
	assert_int_equal(sx_promise_delay(pool, -1, NULL, &d), -EINVAL);
	assert_int_equal(sx_promise_delay(pool, INT64_MIN, NULL, &d), -EINVAL);
	assert_int_equal(sx_promise_delay(pool, 1, NULL, NULL), -EINVAL);
	assert_ptr_equal(d, (sx_promise *)1);
}

static void test_delay_fulfils(void **state)
{
	sx_promise *d, *t;
	uint64_t t0 = tu_now_ns(), dt;
	void *v = (void *)1;

	(void)state;
	assert_int_equal(sx_promise_delay(pool, 20 * MS, NULL, &d), 0);
	assert_int_equal(sx_promise_then(d, add_arg, (void *)5, &t), 0);
	assert_int_equal(sx_promise_get(t, -1, &v), 0);
	dt = tu_now_ns() - t0;
	assert_ptr_equal(v, (void *)5); /* NULL + 5: the delay's value is NULL */
	assert_true(dt >= 20 * MS);     /* never early */
	assert_true(dt < 20000 * MS);   /* generous: a shared machine, sanitizers */
	assert_int_equal(outcome(d, &v), 0);
	assert_null(v);
	sx_promise_release(d);
	sx_promise_release(t);
}

static void test_delay_zero_fulfils_at_once(void **state)
{
	sx_promise *d;
	void *v = (void *)1;

	(void)state;
	assert_int_equal(sx_promise_delay(pool, 0, NULL, &d), 0);
	assert_int_equal(outcome(d, &v), 0);
	assert_null(v);
	assert_int_equal(sx_promise_cancel(d), 0); /* keeps its outcome */
	assert_int_equal(outcome(d, &v), 0);
	sx_promise_release(d);
}

/* A delay waited on from a worker: the step helps meanwhile, then goes on. */
static int delay_step(sx_ctx *ctx, void *last, void **out)
{
	sx_promise *d;
	int rc;

	(void)last;
	assert_int_equal(sx_promise_delay(pool, (int64_t)(intptr_t)ctx->arg, NULL, &d), 0);
	rc = sx_promise_get(d, -1, out);
	sx_promise_release(d);
	*out = (void *)77;
	return rc;
}

static void test_delay_inside_step(void **state)
{
	sx_promise *r;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_run(pool, delay_step, (void *)(intptr_t)(2 * MS), &r), 0);
	assert_int_equal(sx_promise_get(r, -1, &v), 0);
	assert_ptr_equal(v, (void *)77);
	sx_promise_release(r);
}

/* stop trips before the timer: rejected with stop's code, and the chain after it is cancelled. */
static void test_delay_cut_by_breaker(void **state)
{
	struct seen s;
	sx_breaker *b;
	sx_promise *d, *t, *f;
	uint64_t t0 = tu_now_ns();
	void *v = NULL;

	(void)state;
	seen_init(&s);
	assert_int_equal(sx_breaker_timeout(pool, 5 * MS, &b), 0);
	assert_int_equal(sx_promise_delay(pool, 60000 * MS, b, &d), 0);
	assert_int_equal(sx_promise_then(d, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_finally(t, note, &s, &f), 0);
	assert_int_equal(sx_promise_get(f, -1, &v), -ETIMEDOUT); /* at the trip */
	assert_true(tu_now_ns() - t0 < 30000 * MS);
	assert_int_equal(final(d, &v), -ETIMEDOUT);
	assert_int_equal(final(f, &v), -ETIMEDOUT);
	assert_int_equal(atomic_load(&s.calls), 1);
	assert_int_equal(atomic_load(&s.err), -ETIMEDOUT);
	sx_promise_release(d);
	sx_promise_release(t);
	sx_promise_release(f);
	sx_breaker_release(b);

	/* A stop that has tripped already: rejected before the call returns, no timer. */
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_promise_delay(pool, 60000 * MS, b, &d), 0);
	assert_int_equal(outcome(d, &v), -ECANCELED);
	sx_promise_release(d);
	sx_breaker_release(b);
}

/* A stop that never trips: the timer decides, and the breaker callback is withdrawn (LSan). */
static void test_delay_with_stop_fulfils(void **state)
{
	sx_breaker *b;
	sx_promise *d;
	void *v = (void *)1;

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_promise_delay(pool, 2 * MS, b, &d), 0);
	assert_int_equal(sx_promise_get(d, -1, &v), 0);
	assert_null(v);
	sx_promise_release(d);
	sx_breaker_release(b);
}

/* sx_promise_cancel on the delay or on a promise after it: rejected at once, exactly once. */
static void test_delay_cut_by_cancel(void **state)
{
	(void)state;
	for (int k = 0; k < 4; k++) {
		struct seen s;
		sx_breaker *b = NULL;
		sx_promise *d, *t, *f;
		void *v = NULL;

		seen_init(&s);
		if (k >= 2)
			assert_int_equal(sx_breaker_create(&b), 0);
		assert_int_equal(sx_promise_delay(pool, 60000 * MS, b, &d), 0);
		assert_int_equal(sx_promise_then(d, add_arg, (void *)1, &t), 0);
		assert_int_equal(sx_promise_finally(t, note, &s, &f), 0);
		assert_int_equal(sx_promise_cancel(k % 2 ? t : d), 0);
		assert_int_equal(outcome(d, &v), -ECANCELED); /* on the cancelling thread */
		assert_int_equal(final(f, &v), -ECANCELED);
		assert_int_equal(atomic_load(&s.calls), 1);
		assert_int_equal(atomic_load(&s.err), -ECANCELED);
		assert_int_equal(sx_promise_cancel(d), -EALREADY);
		sx_promise_release(d);
		sx_promise_release(t);
		sx_promise_release(f);
		if (b != NULL) { /* a trip now finds nothing to do */
			assert_int_equal(sx_breaker_trip(b), 0);
			sx_breaker_release(b);
		}
	}
}

/* A delay released at once still fires; its chain runs and everything is freed. */
static void test_delay_released_at_once(void **state)
{
	struct seen s;
	sx_promise *d, *f;

	(void)state;
	seen_init(&s);
	assert_int_equal(sx_promise_delay(pool, 1 * MS, NULL, &d), 0);
	assert_int_equal(sx_promise_finally(d, note, &s, &f), 0);
	sx_promise_release(d);
	sx_promise_release(f);
	TU_WAIT_FOR(atomic_load(&s.calls) == 1);
	assert_int_equal(atomic_load(&s.err), 0);
}

/* Many delays cancelled while they fire, and tripped while they fire: one outcome each. */
static void test_delay_cancel_vs_fire(void **state)
{
	enum { N = 200 };
	sx_breaker *b[N];
	sx_promise *d[N];
	unsigned fired = 0, cut = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		assert_int_equal(sx_breaker_create(&b[i]), 0);
		assert_int_equal(sx_promise_delay(pool, (i % 5) * 100000, i % 3 ? b[i] : NULL, &d[i]),
		    0);
	}
	for (int i = 0; i < N; i++) {
		if (i % 2)
			sx_promise_cancel(d[i]);
		else
			sx_breaker_trip(b[i]);
	}
	for (int i = 0; i < N; i++) {
		void *v = (void *)1;
		int rc;

		rc = final(d[i], &v);
		if (rc == 0) {
			assert_null(v);
			fired++;
		} else {
			assert_int_equal(rc, -ECANCELED);
			cut++;
		}
		if (i % 3 == 0 && i % 2 == 0) /* no stop, only tripped its unrelated breaker */
			assert_int_equal(rc, 0);
		sx_promise_release(d[i]);
		sx_breaker_release(b[i]);
	}
	print_message("fired %u, cut %u\n", fired, cut);
}

/* ---- shutdown -------------------------------------------------------------------------------- */

struct blocked {
	sx_promise *p;
	atomic_int in;
};

static int blocked_get(sx_ctx *ctx, void *last, void **out)
{
	struct blocked *b = ctx->arg;

	(void)last;
	atomic_store(&b->in, 1);
	return sx_promise_get(b->p, -1, out);
}

/*
 * Shutdown with a pending hand promise and a pending delay. The delay is rejected with
 * -ESHUTDOWN by the timer service's flush; the hand promise stays pending (not the pool's), a
 * worker waiting on it returns -ESHUTDOWN under SX_CANCEL, SX_DRAIN does not wait for it, and
 * its settler settles it afterwards: its continuations, which can no longer run, settle with
 * -ESHUTDOWN - but a finally is cleanup and runs anyway, on the settling thread, seeing that
 * error. Each is told once; nothing leaks.
 */
static void shutdown_with_pending(int mode)
{
	struct seen sd, sh;
	struct blocked blk;
	sx_pool *sp = tu_pool(2);
	sx_promise *h, *t, *fh, *d, *fd, *w = NULL;
	void *v = NULL;

	seen_init(&sd);
	seen_init(&sh);
	assert_int_equal(sx_promise_create(sp, &h), 0);
	assert_int_equal(sx_promise_then(h, add_arg, (void *)1, &t), 0);
	assert_int_equal(sx_promise_finally(t, note, &sh, &fh), 0);
	assert_int_equal(sx_promise_delay(sp, 60000 * MS, NULL, &d), 0);
	assert_int_equal(sx_promise_finally(d, note, &sd, &fd), 0);
	if (mode == SX_CANCEL) {
		blk.p = h;
		atomic_init(&blk.in, 0);
		assert_int_equal(sx_promise_run(sp, blocked_get, &blk, &w), 0);
		TU_WAIT_FOR(atomic_load(&blk.in) == 1);
	}
	assert_int_equal(sx_pool_shutdown(sp, mode), 0);
	assert_int_equal(outcome(d, &v), -ESHUTDOWN);
	assert_int_equal(sx_promise_get(fd, -1, &v), -ESHUTDOWN); /* it passed the error on */
	assert_int_equal(atomic_load(&sd.calls), 1);             /* the finally still ran */
	assert_int_equal(atomic_load(&sd.err), -ESHUTDOWN);
	if (w != NULL)
		assert_int_equal(sx_promise_get(w, -1, &v), -ESHUTDOWN);
	assert_false(sx_promise_settled(h));
	assert_int_equal(sx_promise_get(h, 1 * MS, &v), -ETIMEDOUT);
	assert_int_equal(settle_on_thread(h, (void *)1, 0), 0); /* the settler, after shutdown */
	assert_int_equal(outcome(h, &v), 0);
	assert_int_equal(sx_promise_get(t, -1, &v), -ESHUTDOWN);
	assert_int_equal(sx_promise_get(fh, -1, &v), -ESHUTDOWN);
	assert_int_equal(atomic_load(&sh.calls), 1);
	assert_int_equal(atomic_load(&sh.err), -ESHUTDOWN);
	assert_int_equal(sx_promise_create(sp, &h), -ESHUTDOWN);
	assert_int_equal(sx_promise_delay(sp, 0, NULL, &d), -ESHUTDOWN);
	sx_promise_release(h);
	sx_promise_release(t);
	sx_promise_release(fh);
	sx_promise_release(d);
	sx_promise_release(fd);
	sx_promise_release(w);
	sx_pool_destroy(sp);
}

static void test_shutdown_cancel_with_pending(void **state)
{
	(void)state;
	shutdown_with_pending(SX_CANCEL);
}

static void test_shutdown_drain_with_pending(void **state)
{
	(void)state;
	shutdown_with_pending(SX_DRAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bad_input),
		cmocka_unit_test(test_pending_until_settled),
		cmocka_unit_test(test_resolve_from_outside_thread),
		cmocka_unit_test(test_reject_from_outside_thread_skips_then),
		cmocka_unit_test(test_resolve_from_worker),
		cmocka_unit_test(test_worker_waits_for_hand),
		cmocka_unit_test(test_then_chain_settled_later),
		cmocka_unit_test(test_second_settle_ealready),
		cmocka_unit_test(test_reject_needs_an_error),
		cmocka_unit_test(test_settle_refused_for_other_kinds),
		cmocka_unit_test(test_recover_and_retry_refuses_hand),
		cmocka_unit_test(test_cancel_pending_hand),
		cmocka_unit_test(test_cancel_after_settle_keeps_value),
		cmocka_unit_test(test_cancel_vs_settle_race),
		cmocka_unit_test(test_release_before_settle),
		cmocka_unit_test(test_all_over_hand),
		cmocka_unit_test(test_all_over_hand_fails_fast),
		cmocka_unit_test(test_any_and_race_over_hand),
		cmocka_unit_test(test_race_hand_against_delay),
		cmocka_unit_test(test_delay_bad_input),
		cmocka_unit_test(test_delay_fulfils),
		cmocka_unit_test(test_delay_zero_fulfils_at_once),
		cmocka_unit_test(test_delay_inside_step),
		cmocka_unit_test(test_delay_cut_by_breaker),
		cmocka_unit_test(test_delay_with_stop_fulfils),
		cmocka_unit_test(test_delay_cut_by_cancel),
		cmocka_unit_test(test_delay_released_at_once),
		cmocka_unit_test(test_delay_cancel_vs_fire),
		cmocka_unit_test(test_shutdown_cancel_with_pending),
		cmocka_unit_test(test_shutdown_drain_with_pending),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
