/* Promises: Workshop's behaviours, Promises/A+ order, cancellation at boundaries, retries with
 * timers, combinators, fork-join from inside workers, lifetimes and bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <ck_pr.h>
#include <strix/breaker.h>
#include <strix/promise.h>

#define MS 1000000ll

TU_POOL_FIXTURE(3)

/* ---- steps ------------------------------------------------------------------------------------ */

static int ret_arg(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = ctx->arg;
	return 0;
}

static int fail_with(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	(void)out;
	return (int)(intptr_t)ctx->arg;
}

static int fail_epipe(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx;
	(void)err;
	(void)last;
	(void)out;
	return -EPIPE;
}

/* Appends its digit: last * 10 + arg. */
static int append(sx_ctx *ctx, void *last, void **out)
{
	*out = (void *)((intptr_t)last * 10 + (intptr_t)ctx->arg);
	return 0;
}

static int sleep_then_value(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	tu_sleep_ns((uint64_t)(intptr_t)ctx->arg * MS);
	*out = (void *)(intptr_t)42;
	return 0;
}

static int handler_value(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)last;
	*out = (void *)(intptr_t)(-err * 1000 + (intptr_t)ctx->arg);
	return 0;
}

static unsigned finally_calls;
static int finally_seen;

static int note_finally(sx_ctx *ctx, int err, void *value)
{
	(void)value;
	__atomic_add_fetch(&finally_calls, 1, __ATOMIC_RELAXED);
	finally_seen = err;
	return (int)(intptr_t)ctx->arg;
}

static void *must_get(sx_promise *p)
{
	void *v = (void *)1;

	assert_int_equal(sx_promise_get(p, -1, &v), 0);
	return v;
}

/* ---- Workshop's behaviours ------------------------------------------------------------------- */

static void test_single_step_value(void **state)
{
	sx_promise *p;

	(void)state;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)7, &p), 0);
	assert_ptr_equal(must_get(p), (void *)7);
	assert_true(sx_promise_settled(p));
	sx_promise_release(p);
}

static void test_handled_error_gives_handler_value(void **state)
{
	sx_promise *p, *c;

	(void)state;
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EIO, &p), 0);
	assert_int_equal(sx_promise_catch(p, handler_value, (void *)3, &c), 0);
	assert_ptr_equal(must_get(c), (void *)(intptr_t)(EIO * 1000 + 3));
	assert_int_equal(sx_promise_get(p, -1, NULL), -EIO);
	sx_promise_release(p);
	sx_promise_release(c);
}

static void test_unhandled_error_exact(void **state)
{
	sx_promise *p, *t;

	(void)state;
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)SX_EREJECTED, &p), 0);
	assert_int_equal(sx_promise_then(p, ret_arg, NULL, &t), 0);
	assert_int_equal(sx_promise_get(t, -1, NULL), SX_EREJECTED);
	sx_promise_release(p);
	sx_promise_release(t);
}

static void test_three_steps_in_order(void **state)
{
	sx_promise *a, *b, *c;

	(void)state;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)1, &a), 0);
	assert_int_equal(sx_promise_then(a, append, (void *)2, &b), 0);
	sx_promise_release(a); /* the chain keeps what it needs */
	assert_int_equal(sx_promise_then(b, append, (void *)3, &c), 0);
	sx_promise_release(b);
	assert_ptr_equal(must_get(c), (void *)123);
	sx_promise_release(c);
}

static void test_get_timeout(void **state)
{
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_run(pool, sleep_then_value, (void *)100, &p), 0);
	assert_int_equal(sx_promise_get(p, 1 * MS, &v), -ETIMEDOUT);
	assert_false(sx_promise_settled(p)); /* the chain keeps running */
	assert_int_equal(sx_promise_get(p, 200 * MS * 50, &v), 0); /* generous: shared machine */
	assert_ptr_equal(v, (void *)42);
	sx_promise_release(p);
	/* 0 just looks. */
	assert_int_equal(sx_promise_run(pool, sleep_then_value, (void *)50, &p), 0);
	assert_int_equal(sx_promise_get(p, 0, &v), -ETIMEDOUT);
	assert_int_equal(sx_promise_get(p, -1, &v), 0);
	sx_promise_release(p);
}

static unsigned recovers;

static int fail_until_101(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	if (ctx->attempt <= 100)
		return -EAGAIN;
	*out = (void *)(intptr_t)ctx->attempt;
	return 0;
}

static int recover_count(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)last;
	assert_int_equal(err, -EAGAIN);
	recovers++;
	assert_int_equal(ctx->attempt, recovers); /* the attempt that failed */
	*out = (void *)(intptr_t)recovers;
	return recovers == (unsigned)(intptr_t)ctx->arg ? -ENOTRECOVERABLE : 0;
}

static void test_recover_and_retry_100(void **state)
{
	sx_promise *p, *r;

	(void)state;
	recovers = 0;
	assert_int_equal(sx_promise_run(pool, fail_until_101, NULL, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_count, (void *)0, NULL, &r), 0);
	assert_ptr_equal(must_get(r), (void *)101);
	assert_int_equal(recovers, 100);
	sx_promise_release(p);
	sx_promise_release(r);
}

static void test_recover_fails_on_100th(void **state)
{
	sx_promise *p, *r;

	(void)state;
	recovers = 0;
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EAGAIN, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_count, (void *)100, NULL, &r), 0);
	assert_int_equal(sx_promise_get(r, -1, NULL), -ENOTRECOVERABLE);
	assert_int_equal(recovers, 100);
	sx_promise_release(p);
	sx_promise_release(r);
}

static void *get_10ms(void *arg)
{
	return (void *)(intptr_t)sx_promise_get(arg, 10 * MS, NULL);
}

/* A step that returns only once the test opens its gate: "slow" whatever the machine's load. */
static unsigned gate;

static int wait_gate(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx;
	(void)last;
	while (!ck_pr_load_uint(&gate))
		tu_sleep_ns(100000);
	*out = (void *)(intptr_t)42;
	return 0;
}

static void test_twenty_slow_promises_time_out(void **state)
{
	sx_promise *p[20];
	pthread_t th[20];

	(void)state;
	ck_pr_store_uint(&gate, 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(sx_promise_run(pool, wait_gate, NULL, &p[i]), 0);
	/* Twenty callers, each waiting 10 ms (at once, as in the seed's test). */
	for (int i = 0; i < 20; i++)
		assert_int_equal(pthread_create(&th[i], NULL, get_10ms, p[i]), 0);
	for (int i = 0; i < 20; i++) {
		void *rc;

		pthread_join(th[i], &rc);
		assert_int_equal((intptr_t)rc, -ETIMEDOUT);
	}
	ck_pr_store_uint(&gate, 1);
	for (int i = 0; i < 20; i++) {
		assert_ptr_equal(must_get(p[i]), (void *)42);
		sx_promise_release(p[i]);
	}
}

static void test_ten_promises_two_workers(void **state)
{
	sx_pool *two = tu_pool(2);
	sx_promise *p[10];

	(void)state;
	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_promise_run(two, sleep_then_value, (void *)10, &p[i]), 0);
	for (int i = 0; i < 10; i++) {
		void *v = NULL;

		assert_int_equal(sx_promise_get(p[i], 60000 * MS, &v), 0);
		assert_ptr_equal(v, (void *)42);
		sx_promise_release(p[i]);
	}
	sx_pool_destroy(two);
}

/* ---- Promises/A+ order ----------------------------------------------------------------------- */

static void test_errors_skip_then_until_catch(void **state)
{
	sx_promise *a, *b, *c, *d, *e, *f;

	(void)state;
	finally_calls = 0;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)1, &a), 0);
	assert_int_equal(sx_promise_then(a, fail_with, (void *)(intptr_t)-EPIPE, &b), 0);
	assert_int_equal(sx_promise_then(b, append, (void *)9, &c), 0);       /* skipped */
	assert_int_equal(sx_promise_catch(c, handler_value, (void *)5, &d), 0); /* handles */
	assert_int_equal(sx_promise_then(d, append, (void *)7, &e), 0);       /* runs */
	assert_int_equal(sx_promise_finally(e, note_finally, NULL, &f), 0);
	assert_ptr_equal(must_get(f), (void *)(intptr_t)((EPIPE * 1000 + 5) * 10 + 7));
	assert_int_equal(sx_promise_get(c, -1, NULL), -EPIPE);
	assert_int_equal(finally_calls, 1);
	assert_int_equal(finally_seen, 0);
	sx_promise *all[] = { a, b, c, d, e, f };
	for (int i = 0; i < 6; i++)
		sx_promise_release(all[i]);
}

static void test_catch_passes_value_finally_on_error(void **state)
{
	sx_promise *a, *b, *c, *d;

	(void)state;
	finally_calls = 0;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)11, &a), 0);
	assert_int_equal(sx_promise_catch(a, handler_value, NULL, &b), 0);
	assert_ptr_equal(must_get(b), (void *)11);
	/* finally sees the error and passes it on; a failing finally replaces it. */
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EBADMSG, &c), 0);
	assert_int_equal(sx_promise_finally(c, note_finally, NULL, &d), 0);
	assert_int_equal(sx_promise_get(d, -1, NULL), -EBADMSG);
	assert_int_equal(finally_seen, -EBADMSG);
	sx_promise_release(d);
	assert_int_equal(sx_promise_finally(c, note_finally, (void *)(intptr_t)-EXDEV, &d), 0);
	assert_int_equal(sx_promise_get(d, -1, NULL), -EXDEV);
	assert_int_equal(finally_calls, 2);
	sx_promise *all[] = { a, b, c, d };
	for (int i = 0; i < 4; i++)
		sx_promise_release(all[i]);
}

static void test_then_after_settled_runs(void **state)
{
	sx_promise *a, *b;

	(void)state;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)4, &a), 0);
	must_get(a);
	assert_int_equal(sx_promise_then(a, append, (void *)2, &b), 0);
	assert_ptr_equal(must_get(b), (void *)42);
	sx_promise_release(b);
	/* Many dependents of one promise all run, in the order they were added. */
	sx_promise *d[50];
	for (int i = 0; i < 50; i++)
		assert_int_equal(sx_promise_then(a, append, (void *)(intptr_t)(i % 10), &d[i]), 0);
	for (int i = 0; i < 50; i++) {
		assert_ptr_equal(must_get(d[i]), (void *)(intptr_t)(40 + i % 10));
		sx_promise_release(d[i]);
	}
	sx_promise_release(a);
}

/* ---- values and destructors ------------------------------------------------------------------- */

static unsigned dtors;

static void count_dtor(void *v)
{
	assert_non_null(v);
	__atomic_add_fetch(&dtors, 1, __ATOMIC_ACQ_REL);
}

static int owned_value(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = ctx->arg;
	ctx->dtor = count_dtor;
	return 0;
}

static int owned_then_fail(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = ctx->arg;
	ctx->dtor = count_dtor;
	return -EIO;
}

static void test_value_destructor_once(void **state)
{
	sx_promise *a, *b, *c;

	(void)state;
	dtors = 0;
	assert_int_equal(sx_promise_run(pool, owned_value, (void *)5, &a), 0);
	assert_int_equal(sx_promise_catch(a, handler_value, NULL, &b), 0); /* passes it on */
	assert_int_equal(sx_promise_finally(b, note_finally, NULL, &c), 0);
	assert_ptr_equal(must_get(c), (void *)5);
	sx_promise_release(a);
	sx_promise_release(b);
	assert_int_equal(__atomic_load_n(&dtors, __ATOMIC_ACQUIRE), 0); /* c still shows it */
	sx_promise_release(c);
	/* The settling thread may still hold c's pending reference a moment. Acquire: the reads
	 * below must see that write (a relaxed load here let TSan report them racing with it). */
	TU_WAIT_FOR(__atomic_load_n(&dtors, __ATOMIC_ACQUIRE) == 1);
	/* A failed step's value is destroyed at once. */
	assert_int_equal(sx_promise_run(pool, owned_then_fail, (void *)6, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -EIO);
	assert_int_equal(__atomic_load_n(&dtors, __ATOMIC_ACQUIRE), 2);
	sx_promise_release(a);
	assert_int_equal(__atomic_load_n(&dtors, __ATOMIC_ACQUIRE), 2);
}

/* ---- cancellation ----------------------------------------------------------------------------- */

static int wait_for_cancel(sx_ctx *ctx, void *last, void **out)
{
	sx_breaker *b = sx_ctx_breaker(ctx);

	(void)last;
	assert_non_null(b);
	__atomic_store_n((int *)ctx->arg, 1, __ATOMIC_RELEASE); /* started */
	assert_int_equal(sx_breaker_wait(b, -1), 0); /* until the chain is cancelled */
	assert_true(sx_ctx_cancelled(ctx));
	__atomic_store_n((int *)ctx->arg, 2, __ATOMIC_RELEASE);
	*out = (void *)1;
	return sx_breaker_err(b);
}

static unsigned never_runs;

static int must_not_run(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx;
	(void)last;
	(void)out;
	__atomic_add_fetch(&never_runs, 1, __ATOMIC_RELAXED);
	return 0;
}

static int must_not_recover(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)err;
	return must_not_run(ctx, last, out);
}

static void test_cancel_chain(void **state)
{
	int saw = 0;
	sx_promise *a, *b, *c, *d;

	(void)state;
	never_runs = 0;
	finally_calls = 0;
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw, &a), 0);
	assert_int_equal(sx_promise_then(a, must_not_run, NULL, &b), 0);
	assert_int_equal(sx_promise_catch(b, must_not_recover, NULL, &c), 0);
	assert_int_equal(sx_promise_finally(c, note_finally, NULL, &d), 0);
	TU_WAIT_FOR(__atomic_load_n(&saw, __ATOMIC_ACQUIRE) == 1); /* the first step is running */
	assert_int_equal(sx_promise_get(b, 5 * MS, NULL), -ETIMEDOUT);
	assert_int_equal(sx_promise_cancel(b), 0); /* any promise of the chain */
	assert_int_equal(sx_promise_cancel(a), -EALREADY);
	assert_int_equal(sx_promise_get(c, -1, NULL), -ECANCELED);
	assert_int_equal(sx_promise_get(d, -1, NULL), -ECANCELED);
	TU_WAIT_FOR(sx_promise_settled(d)); /* get returned at the cancel, before the step ended */
	/* The running step saw its breaker trip. */
	assert_int_equal(__atomic_load_n(&saw, __ATOMIC_ACQUIRE), 2);
	assert_int_equal(never_runs, 0);
	assert_int_equal(finally_calls, 1); /* finally runs on cancel too */
	assert_int_equal(finally_seen, -ECANCELED);
	/* Already settled: cancel does not change the outcome. */
	sx_promise *e;
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)9, &e), 0);
	must_get(e);
	sx_promise_cancel(e);
	assert_ptr_equal(must_get(e), (void *)9);
	sx_promise *all[] = { a, b, c, d, e };
	for (int i = 0; i < 5; i++)
		sx_promise_release(all[i]);
}

static int spin_forever(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	(void)out;
	while (!sx_ctx_cancelled(ctx))
		tu_sleep_ns(100000);
	return sx_breaker_err(sx_ctx_breaker(ctx));
}

static void test_get_returns_at_cancel(void **state)
{
	sx_promise *a;
	uint64_t t0;

	(void)state;
	assert_int_equal(sx_promise_run(pool, spin_forever, NULL, &a), 0);
	tu_sleep_ns(2 * MS);
	t0 = tu_now_ns();
	assert_int_equal(sx_promise_cancel(a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -ECANCELED);
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS);
	TU_WAIT_FOR(sx_promise_settled(a));
	sx_promise_release(a);
}

static void test_run_with_timeout_breaker(void **state)
{
	sx_breaker *t;
	sx_promise *a, *b;

	(void)state;
	never_runs = 0;
	assert_int_equal(sx_breaker_timeout(pool, 20 * MS, &t), 0);
	assert_int_equal(sx_promise_run_with(pool, t, spin_forever, NULL, &a), 0);
	assert_int_equal(sx_promise_then(a, must_not_run, NULL, &b), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -ETIMEDOUT);
	assert_int_equal(sx_promise_get(b, -1, NULL), -ETIMEDOUT);
	TU_WAIT_FOR(sx_promise_settled(b));
	assert_int_equal(never_runs, 0);
	sx_breaker_release(t);
	sx_promise_release(a);
	sx_promise_release(b);
	/* A tripped breaker: the first step never runs. */
	assert_int_equal(sx_breaker_create(&t), 0);
	sx_breaker_trip(t);
	assert_int_equal(sx_promise_run_with(pool, t, must_not_run, NULL, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -ECANCELED);
	TU_WAIT_FOR(sx_promise_settled(a));
	assert_int_equal(never_runs, 0);
	sx_promise_release(a);
	sx_breaker_release(t);
}

/* A step that trips its chain's stop breaker: the next step never starts, since the chain's
 * breaker (a child of stop) is done when the trip returns. */
static unsigned next_ran;

static int trip_stop(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	(void)out;
	sx_breaker_trip(ctx->arg);
	return 0;
}

static int count_next(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx;
	(void)last;
	(void)out;
	ck_pr_inc_uint(&next_ran);
	return 0;
}

static void test_step_tripping_its_stop_skips_the_next(void **state)
{
	enum { CHAINS = 2000 };
	static sx_breaker *stop[CHAINS];
	static sx_promise *first[CHAINS], *second[CHAINS];

	(void)state;
	next_ran = 0;
	for (int i = 0; i < CHAINS; i++) {
		assert_int_equal(sx_breaker_create(&stop[i]), 0);
		assert_int_equal(sx_promise_run_with(pool, stop[i], trip_stop, stop[i], &first[i]), 0);
		assert_int_equal(sx_promise_then(first[i], count_next, NULL, &second[i]), 0);
	}
	for (int i = 0; i < CHAINS; i++) {
		/* The stop breaker's own code, not a generic -ECANCELED. */
		assert_int_equal(sx_promise_get(second[i], -1, NULL), -ECANCELED);
		sx_promise_release(second[i]);
		sx_promise_release(first[i]);
		sx_breaker_release(stop[i]);
	}
	assert_int_equal(ck_pr_load_uint(&next_ran), 0);
}

static void test_get_until(void **state)
{
	sx_breaker *t;
	sx_promise *a;

	(void)state;
	assert_int_equal(sx_promise_run(pool, sleep_then_value, (void *)200, &a), 0);
	assert_int_equal(sx_breaker_timeout(pool, 5 * MS, &t), 0);
	assert_int_equal(sx_promise_get_until(a, t, NULL), -ETIMEDOUT);
	sx_breaker_release(t);
	assert_int_equal(sx_promise_get_until(a, NULL, NULL), -EINVAL);
	assert_ptr_equal(must_get(a), (void *)42);
	sx_promise_release(a);
}

/* ---- retry with a policy ---------------------------------------------------------------------- */

static int recover_plain(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx;
	(void)err;
	*out = last;
	__atomic_add_fetch(&recovers, 1, __ATOMIC_RELAXED);
	return 0;
}

static void test_retry_policy_limit_and_delay(void **state)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_promise *p, *r;
	uint64_t t0 = tu_now_ns();

	(void)state;
	recovers = 0;
	pol.max_attempts = 4;
	pol.backoff = SX_BACKOFF_CONSTANT;
	pol.base_ns = 5 * MS;
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EAGAIN, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_plain, NULL, &pol, &r), 0);
	assert_int_equal(sx_promise_get(r, -1, NULL), -EAGAIN);
	assert_int_equal(recovers, 3);
	assert_true(tu_now_ns() - t0 >= 15 * (uint64_t)MS); /* three timer delays */
	sx_promise_release(r);
	/* A fulfilled step passes its value through. */
	sx_promise_release(p);
	assert_int_equal(sx_promise_run(pool, ret_arg, (void *)3, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_plain, NULL, &pol, &r), 0);
	assert_ptr_equal(must_get(r), (void *)3);
	assert_int_equal(recovers, 3);
	sx_promise_release(p);
	sx_promise_release(r);
}

static void test_retry_cancel_ends_delay(void **state)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_promise *p, *r;

	(void)state;
	recovers = 0;
	pol.backoff = SX_BACKOFF_CONSTANT;
	pol.base_ns = 3600ull * 1000 * MS; /* an hour */
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EAGAIN, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_plain, NULL, &pol, &r), 0);
	assert_int_equal(sx_promise_get(r, 20 * MS, NULL), -ETIMEDOUT); /* in its delay */
	assert_int_equal(sx_promise_cancel(r), 0);
	TU_WAIT_FOR(sx_promise_settled(r)); /* the delay ended at once */
	assert_int_equal(sx_promise_get(r, 0, NULL), -ECANCELED);
	assert_int_equal(recovers, 0);
	sx_promise_release(p);
	sx_promise_release(r);
}

static void test_retry_bad_input(void **state)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_promise *p, *c, *r = (sx_promise *)0x1;

	(void)state;
	assert_int_equal(sx_promise_run(pool, ret_arg, NULL, &p), 0);
	assert_int_equal(sx_promise_catch(p, handler_value, NULL, &c), 0);
	assert_int_equal(sx_promise_recover_and_retry(c, recover_plain, NULL, NULL, &r), -EINVAL);
	pol.backoff = 1234;
	assert_int_equal(sx_promise_recover_and_retry(p, recover_plain, NULL, &pol, &r), -EINVAL);
	assert_int_equal(sx_promise_recover_and_retry(p, NULL, NULL, NULL, &r), -EINVAL);
	assert_int_equal(sx_promise_recover_and_retry(NULL, recover_plain, NULL, NULL, &r), -EINVAL);
	assert_ptr_equal(r, (void *)0x1); /* unchanged */
	sx_promise_release(p);
	sx_promise_release(c);
}

/* ---- combinators ------------------------------------------------------------------------------ */

static void test_all(void **state)
{
	sx_promise *in[5], *a;
	void **vals = NULL;

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(sx_promise_run(pool, ret_arg, (void *)(intptr_t)(i + 1), &in[i]), 0);
	assert_int_equal(sx_promise_all(pool, in, 5, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, (void **)&vals), 0);
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(vals[i], (void *)(intptr_t)(i + 1));
	for (int i = 0; i < 5; i++)
		sx_promise_release(in[i]);
	sx_promise_release(a);
	assert_int_equal(sx_promise_all(pool, NULL, 0, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, (void **)&vals), 0);
	assert_null(vals);
	sx_promise_release(a);
}

static void test_all_fails_fast_and_cancels(void **state)
{
	int saw[2] = { 0, 0 };
	sx_promise *in[3], *a;
	uint64_t t0 = tu_now_ns();

	(void)state;
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw[0], &in[0]), 0);
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EIO, &in[1]), 0);
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw[1], &in[2]), 0);
	assert_int_equal(sx_promise_all(pool, in, 3, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -EIO);
	/* Cancelled: skipped if they had not started, or seen by the step if they had. */
	TU_WAIT_FOR(sx_promise_settled(in[0]) && sx_promise_settled(in[2]));
	assert_int_equal(sx_promise_get(in[0], -1, NULL), -ECANCELED);
	assert_int_equal(sx_promise_get(in[2], -1, NULL), -ECANCELED);
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS);
	for (int i = 0; i < 3; i++)
		sx_promise_release(in[i]);
	sx_promise_release(a);
}

static void test_any_and_race(void **state)
{
	int saw = 0;
	sx_promise *in[3], *a;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EIO, &in[0]), 0);
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw, &in[1]), 0);
	assert_int_equal(sx_promise_run(pool, sleep_then_value, (void *)5, &in[2]), 0);
	assert_int_equal(sx_promise_any(pool, in, 3, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, &v), 0);
	assert_ptr_equal(v, (void *)42);
	TU_WAIT_FOR(sx_promise_settled(in[1])); /* the loser was cancelled */
	assert_int_equal(sx_promise_get(in[1], -1, NULL), -ECANCELED);
	sx_promise_release(a);
	/* any: all fail -> the error of the last to fail. f[1] fails after f[0] has finished
	 * settling (it is f[0]'s dependent: it runs only once f[0] has handed its dependents on), so
	 * the order in which any hears them is fixed even when both had settled before any began (a
	 * getter returns as soon as the outcome is published, before the dependents are told). */
	sx_promise *f[2];
	assert_int_equal(sx_promise_run(pool, fail_with, (void *)(intptr_t)-EIO, &f[0]), 0);
	must_get(in[2]);
	assert_int_equal(sx_promise_get(f[0], -1, NULL), -EIO);
	assert_int_equal(sx_promise_catch(f[0], fail_epipe, NULL, &f[1]), 0);
	assert_int_equal(sx_promise_get(f[1], -1, NULL), -EPIPE);
	assert_int_equal(sx_promise_any(pool, f, 2, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -EPIPE);
	sx_promise_release(a);
	/* race: the first to settle, even an error. */
	sx_promise *r2[2] = { f[0], in[1] };
	assert_int_equal(sx_promise_race(pool, r2, 2, &a), 0);
	assert_int_equal(sx_promise_get(a, -1, NULL), -EIO);
	sx_promise_release(a);
	for (int i = 0; i < 3; i++)
		sx_promise_release(in[i]);
	sx_promise_release(f[0]);
	sx_promise_release(f[1]);
}

static void test_cancel_combinator_cancels_inputs(void **state)
{
	int saw[2] = { 0, 0 };
	sx_promise *in[2], *a, *t;

	(void)state;
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw[0], &in[0]), 0);
	assert_int_equal(sx_promise_run(pool, wait_for_cancel, (void *)&saw[1], &in[1]), 0);
	assert_int_equal(sx_promise_race(pool, in, 2, &a), 0);
	assert_int_equal(sx_promise_then(a, must_not_run, NULL, &t), 0);
	assert_int_equal(sx_promise_cancel(t), 0);
	assert_int_equal(sx_promise_get(t, -1, NULL), -ECANCELED);
	TU_WAIT_FOR(sx_promise_settled(in[0]) && sx_promise_settled(in[1]));
	assert_int_equal(sx_promise_get(in[0], -1, NULL), -ECANCELED);
	assert_int_equal(sx_promise_get(in[1], -1, NULL), -ECANCELED);
	for (int i = 0; i < 2; i++)
		sx_promise_release(in[i]);
	sx_promise_release(a);
	sx_promise_release(t);
}

/* ---- fork-join from inside workers ------------------------------------------------------------- */

static int fib_step(sx_ctx *ctx, void *last, void **out)
{
	intptr_t n = (intptr_t)ctx->arg, a;
	sx_promise *child;
	void *v = NULL;

	(void)last;
	if (n < 2) {
		*out = (void *)n;
		return 0;
	}
	assert_int_equal(sx_promise_run(pool, fib_step, (void *)(n - 1), &child), 0);
	fib_step(&(sx_ctx){ (void *)(n - 2), 1, ctx->promise, NULL }, NULL, out);
	a = (intptr_t)*out;
	assert_int_equal(sx_promise_get(child, -1, &v), 0); /* helps while it waits */
	sx_promise_release(child);
	*out = (void *)(a + (intptr_t)v);
	return 0;
}

static void test_fork_join_no_deadlock(void **state)
{
	sx_pool *saved = pool;
	sx_promise *p;

	(void)state;
	assert_int_equal(sx_promise_run(pool, fib_step, (void *)18, &p), 0);
	assert_ptr_equal(must_get(p), (void *)2584);
	sx_promise_release(p);
	/* One worker: every wait must run the awaited task itself. */
	pool = tu_pool(1);
	assert_int_equal(sx_promise_run(pool, fib_step, (void *)15, &p), 0);
	assert_ptr_equal(must_get(p), (void *)610);
	sx_promise_release(p);
	sx_pool_destroy(pool);
	pool = saved;
}

/* ---- bad input and shutdown ------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
	sx_promise *p, *q = (sx_promise *)0x1;

	(void)state;
	assert_int_equal(sx_promise_run(NULL, ret_arg, NULL, &q), -EINVAL);
	assert_int_equal(sx_promise_run(pool, NULL, NULL, &q), -EINVAL);
	assert_int_equal(sx_promise_run(pool, ret_arg, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_run(pool, ret_arg, NULL, &p), 0);
	assert_int_equal(sx_promise_then(NULL, ret_arg, NULL, &q), -EINVAL);
	assert_int_equal(sx_promise_then(p, NULL, NULL, &q), -EINVAL);
	assert_int_equal(sx_promise_catch(p, NULL, NULL, &q), -EINVAL);
	assert_int_equal(sx_promise_finally(p, note_finally, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_any(pool, NULL, 0, &q), -EINVAL);
	assert_int_equal(sx_promise_race(pool, &p, 1, NULL), -EINVAL);
	assert_int_equal(sx_promise_all(NULL, &p, 1, &q), -EINVAL);
	sx_promise *withnull[2] = { p, NULL };
	assert_int_equal(sx_promise_all(pool, withnull, 2, &q), -EINVAL);
	assert_ptr_equal(q, (void *)0x1);
	assert_int_equal(sx_promise_get(NULL, -1, NULL), -EINVAL);
	assert_int_equal(sx_promise_cancel(NULL), -EINVAL);
	assert_false(sx_promise_settled(NULL));
	assert_false(sx_ctx_cancelled(NULL));
	assert_null(sx_ctx_breaker(NULL));
	sx_promise_release(NULL);
	must_get(p);
	sx_promise_release(p);
}

static void test_shutdown(void **state)
{
	sx_pool *sp = tu_pool(2);
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	sx_promise *a, *p, *r, *q = (sx_promise *)0x1;

	(void)state;
	pol.backoff = SX_BACKOFF_CONSTANT;
	pol.base_ns = 3600ull * 1000 * MS;
	assert_int_equal(sx_promise_run(sp, ret_arg, (void *)1, &a), 0);
	must_get(a);
	assert_int_equal(sx_promise_run(sp, fail_with, (void *)(intptr_t)-EAGAIN, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_plain, NULL, &pol, &r), 0);
	assert_int_equal(sx_promise_get(r, 10 * MS, NULL), -ETIMEDOUT); /* in its hour-long delay */
	assert_int_equal(sx_pool_shutdown(sp, SX_DRAIN), 0);
	assert_int_equal(sx_promise_get(r, -1, NULL), -ESHUTDOWN); /* its timer was flushed */
	assert_int_equal(sx_promise_run(sp, ret_arg, NULL, &q), -ESHUTDOWN);
	assert_int_equal(sx_promise_then(a, ret_arg, NULL, &q), -ESHUTDOWN);
	assert_ptr_equal(q, (void *)0x1);
	assert_ptr_equal(must_get(a), (void *)1);
	sx_promise_release(a);
	sx_promise_release(p);
	sx_promise_release(r);
	sx_pool_destroy(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_step_value),
		cmocka_unit_test(test_handled_error_gives_handler_value),
		cmocka_unit_test(test_unhandled_error_exact),
		cmocka_unit_test(test_three_steps_in_order),
		cmocka_unit_test(test_get_timeout),
		cmocka_unit_test(test_recover_and_retry_100),
		cmocka_unit_test(test_recover_fails_on_100th),
		cmocka_unit_test(test_twenty_slow_promises_time_out),
		cmocka_unit_test(test_ten_promises_two_workers),
		cmocka_unit_test(test_errors_skip_then_until_catch),
		cmocka_unit_test(test_catch_passes_value_finally_on_error),
		cmocka_unit_test(test_then_after_settled_runs),
		cmocka_unit_test(test_value_destructor_once),
		cmocka_unit_test(test_cancel_chain),
		cmocka_unit_test(test_get_returns_at_cancel),
		cmocka_unit_test(test_run_with_timeout_breaker),
		cmocka_unit_test(test_get_until),
		cmocka_unit_test(test_retry_policy_limit_and_delay),
		cmocka_unit_test(test_retry_cancel_ends_delay),
		cmocka_unit_test(test_retry_bad_input),
		cmocka_unit_test(test_all),
		cmocka_unit_test(test_all_fails_fast_and_cancels),
		cmocka_unit_test(test_any_and_race),
		cmocka_unit_test(test_cancel_combinator_cancels_inputs),
		cmocka_unit_test(test_fork_join_no_deadlock),
		cmocka_unit_test(test_step_tripping_its_stop_skips_the_next),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_shutdown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
