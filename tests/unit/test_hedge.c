/* Hedged calls: a fast first attempt starts no hedge; a slow one is overtaken by a hedge and
 * cancelled through its breaker; the budget bounds hedges; every attempt failing rejects with
 * the last error; values of losing attempts destroyed exactly once; cancelling the call cancels
 * every attempt and the delays; the observed percentile sets the delay; bad input. On a real
 * pool and its timers, with bounds generous for a shared machine. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/events.h>
#include <strix/hedge.h>
#include <strix/promise.h>

#define MS 1000000ll

TU_POOL_FIXTURE(3)

/* What a test's step does, by the order its attempts start in: attempt i (0-based, in start
 * order) waits wait_ms[i] on its breaker (-1: until cancelled), then returns rc[i] with a value
 * that names it (i + 1, malloc'd, with a dtor that counts). */
struct script {
	atomic_uint started;
	atomic_uint cancelled;     /* attempts that saw their breaker trip */
	atomic_uint values, freed;
	int wait_ms[4];
	int rc[4];
};

static atomic_uint dtor_count;

static void value_free(void *v)
{
	atomic_fetch_add(&dtor_count, 1);
	free(v);
}

static int scripted(sx_ctx *ctx, void *last, void **out)
{
	struct script *s = ctx->arg;
	unsigned i = atomic_fetch_add(&s->started, 1);
	sx_breaker *b = sx_ctx_breaker(ctx);
	int *v;

	(void)last;
	assert_true(i < 4);
	assert_non_null(b);
	if (s->wait_ms[i] != 0 &&
	    sx_breaker_wait(b, s->wait_ms[i] < 0 ? -1 : s->wait_ms[i] * MS) == 0) {
		atomic_fetch_add(&s->cancelled, 1);
		return sx_breaker_err(b);
	}
	if (s->rc[i] != 0)
		return s->rc[i];
	v = malloc(sizeof(*v));
	assert_non_null(v);
	*v = (int)i + 1;
	atomic_fetch_add(&s->values, 1);
	ctx->dtor = value_free;
	*out = v;
	return 0;
}

static sx_hedge *fixed(int64_t delay, unsigned hedges, sx_retry_budget *budget)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = NULL;

	o.delay_ns = delay;
	o.max_hedges = hedges;
	o.budget = budget;
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	return h;
}

/* Run one hedged call of s through h; returns its outcome, the winner's number in *who. */
static int call(sx_hedge *h, struct script *s, int *who)
{
	sx_promise *p;
	void *v = NULL;
	int rc;

	assert_int_equal(sx_hedge_run(h, scripted, s, &p), 0);
	rc = sx_promise_get(p, 10000 * MS, &v);
	*who = rc == 0 ? *(int *)v : 0;
	sx_promise_release(p);
	return rc;
}

/* Every attempt of the calls so far has ended and every record and value is freed. */
static void settle_all(void)
{
	sx_pool_wait_idle(pool);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_fast_first_attempt_no_hedge(void **state)
{
	sx_hedge *h = fixed(200 * MS, 1, NULL);
	struct script s = { 0 };
	sx_hedge_metrics m;
	int who;

	(void)state;
	atomic_store(&dtor_count, 0);
	assert_int_equal(call(h, &s, &who), 0);
	assert_int_equal(who, 1);
	settle_all();
	assert_int_equal(atomic_load(&s.started), 1); /* the hedge's delay was withdrawn */
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.hedges, 0);
	assert_int_equal(m.delay_ns, 200 * MS);
	assert_int_equal(atomic_load(&dtor_count), 1);
	sx_hedge_destroy(h);
}

/* The first attempt hangs; the hedge after 5 ms answers; the first is cancelled through its
 * breaker; the call took nowhere near the first attempt's time. */
static void test_slow_first_overtaken(void **state)
{
	sx_hedge *h = fixed(5 * MS, 1, NULL);
	struct script s = { .wait_ms = { -1, 0 } };
	sx_hedge_metrics m;
	uint64_t t0 = tu_now_ns();
	int who;

	(void)state;
	atomic_store(&dtor_count, 0);
	assert_int_equal(call(h, &s, &who), 0);
	assert_int_equal(who, 2);
	assert_true(tu_now_ns() - t0 < 5000 * (uint64_t)MS);
	settle_all();
	assert_int_equal(atomic_load(&s.started), 2);
	assert_int_equal(atomic_load(&s.cancelled), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.hedges, 1);
	assert_int_equal(m.hedge_wins, 1);
	assert_int_equal(atomic_load(&dtor_count), 1);
	sx_hedge_destroy(h);
}

/* A budget of one token: the first call's hedge takes it, the second call's hedge is refused
 * and the slow first attempt's answer is the result. */
static void test_budget_bounds_hedges(void **state)
{
	sx_retry_budget b;
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = NULL;
	struct script s1 = { .wait_ms = { 300, 0 } }, s2 = { .wait_ms = { 100, 0 } };
	sx_hedge_metrics m;
	int who;

	(void)state;
	assert_int_equal(sx_retry_budget_init(&b, 1, 0.0), 0);
	o.delay_ns = 5 * MS;
	o.budget = &b;
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	assert_int_equal(call(h, &s1, &who), 0);
	assert_int_equal(who, 2);
	assert_int_equal(call(h, &s2, &who), 0);
	assert_int_equal(who, 1);
	settle_all();
	assert_int_equal(atomic_load(&s2.started), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.hedges, 1);
	assert_int_equal(m.refused, 1);
	sx_hedge_destroy(h);
}

/* Events: the hedge started, then (budget empty) one refused. */
static void test_events(void **state)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_retry_budget b;
	sx_events *ev;
	sx_event out[4];
	sx_hedge *h = NULL;
	struct script s1 = { .wait_ms = { -1, 0 } }, s2 = { .wait_ms = { 100, 0 } };
	int who;

	(void)state;
	assert_int_equal(sx_events_create(16, &ev), 0);
	assert_int_equal(sx_retry_budget_init(&b, 1, 0.0), 0);
	o.delay_ns = 5 * MS;
	o.budget = &b;
	o.events = ev;
	o.name = "reads";
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	assert_int_equal(call(h, &s1, &who), 0);
	assert_int_equal(call(h, &s2, &who), 0);
	settle_all();
	assert_int_equal(sx_events_poll(ev, out, 4), 2);
	assert_int_equal(out[0].kind, SX_EVENT_HEDGE);
	assert_int_equal(out[0].value, 1);
	assert_string_equal(out[0].source, "reads");
	assert_int_equal(out[1].kind, SX_EVENT_REJECTED);
	assert_int_equal(out[1].code, SX_EREJECTED);
	sx_hedge_destroy(h);
	sx_events_destroy(ev);
}

/* Every attempt fails: rejected with the error of the one that failed last. */
static void test_all_fail(void **state)
{
	sx_hedge *h = fixed(5 * MS, 2, NULL);
	struct script s = { .wait_ms = { 1000, 0, 0 }, .rc = { -EIO, -ENOTCONN, -ENOTCONN } };
	int who;

	(void)state;
	assert_int_equal(call(h, &s, &who), -EIO);
	settle_all();
	assert_int_equal(atomic_load(&s.started), 3);
	sx_hedge_destroy(h);
}

/* Three hedges, started a delay apart; the third answers. The values of attempts that finished
 * too late (the others, told by their breaker) are never made; every value made is destroyed
 * exactly once. */
static void test_many_hedges_and_values(void **state)
{
	sx_hedge *h = fixed(10 * MS, 3, NULL);
	struct script s = { .wait_ms = { -1, -1, 0, -1 } };
	sx_hedge_metrics m;
	int who;

	(void)state;
	atomic_store(&dtor_count, 0);
	assert_int_equal(call(h, &s, &who), 0);
	assert_int_equal(who, 3);
	settle_all();
	assert_int_equal(atomic_load(&s.started), 3); /* the fourth's delay was withdrawn */
	assert_int_equal(atomic_load(&s.cancelled), 2);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.hedges, 2);
	assert_int_equal(atomic_load(&dtor_count), atomic_load(&s.values));
	sx_hedge_destroy(h);
}

/* Both attempts succeed at about the same time: one value wins, the other is destroyed; both
 * exactly once. */
static void test_both_succeed_values_once(void **state)
{
	sx_hedge *h = fixed(1 * MS, 1, NULL);
	unsigned round;

	(void)state;
	atomic_store(&dtor_count, 0);
	for (round = 0; round < 50; round++) {
		struct script s = { .wait_ms = { 2, 1 } };
		int who;

		assert_int_equal(call(h, &s, &who), 0);
		assert_true(who == 1 || who == 2);
		settle_all();
		assert_int_equal(atomic_load(&dtor_count), atomic_load(&s.values));
		atomic_store(&dtor_count, 0);
	}
	sx_hedge_destroy(h);
}

/* Cancelling the call cancels the attempt running and the hedge still waiting for its delay. */
static void test_cancel_the_call(void **state)
{
	sx_hedge *h = fixed(300 * MS, 1, NULL);
	struct script s = { .wait_ms = { -1, 0 } };
	sx_promise *p;
	void *v;

	(void)state;
	assert_int_equal(sx_hedge_run(h, scripted, &s, &p), 0);
	while (atomic_load(&s.started) == 0)
		sched_yield();
	assert_int_equal(sx_promise_cancel(p), 0);
	assert_int_equal(sx_promise_get(p, 10000 * MS, &v), -ECANCELED);
	sx_promise_release(p);
	settle_all();
	tu_sleep_ns(400 * (uint64_t)MS); /* past the hedge's delay: it must not start */
	settle_all();
	assert_int_equal(atomic_load(&s.started), 1);
	assert_int_equal(atomic_load(&s.cancelled), 1);
	sx_hedge_destroy(h);
}

/* Percentile delay: first attempts that take 8 ms (their hedges fail at once) put the p95 in the
 * bucket of 8 ms after one window; before, the delay is min_delay_ns. */
static void test_percentile_delay(void **state)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = NULL;
	unsigned i;

	(void)state;
	o.min_delay_ns = 1 * MS;
	o.window = 10;
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	assert_int_equal(sx_hedge_delay_ns(h), 1 * MS);
	for (i = 0; i < 10; i++) {
		struct script s = { .wait_ms = { 8, 0 }, .rc = { 0, -EIO } };
		int who;

		assert_int_equal(call(h, &s, &who), 0);
		assert_int_equal(who, 1);
	}
	settle_all();
	/* 8 ms and a scheduling delay, in a log bucket 1/8 of a power of two wide */
	assert_in_range(sx_hedge_delay_ns(h), 8 * MS, 40 * MS);
	sx_hedge_destroy(h);
}

static void test_bad_input(void **state)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_hedge *h = (sx_hedge *)&o;
	sx_promise *p = NULL;
	sx_hedge_metrics m;

	(void)state;
	assert_int_equal(sx_hedge_create(NULL, &o, &h), -EINVAL);
	assert_int_equal(sx_hedge_create(pool, &o, NULL), -EINVAL);
	o.delay_ns = -1;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	o.delay_ns = 0;
	o.percentile = 1.0;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	o.percentile = 0.0 / 0.0;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	o.percentile = 0.0;
	o.max_hedges = SX_HEDGE_MAX_HEDGES + 1;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	o.max_hedges = 0;
	o.min_delay_ns = -5;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	o.min_delay_ns = 0;
	o.reserved[1] = 1;
	assert_int_equal(sx_hedge_create(pool, &o, &h), -EINVAL);
	assert_ptr_equal(h, (sx_hedge *)&o); /* untouched */
	assert_int_equal(sx_hedge_create(pool, NULL, &h), 0);
	assert_int_equal(sx_hedge_run(NULL, scripted, NULL, &p), -EINVAL);
	assert_int_equal(sx_hedge_run(h, NULL, NULL, &p), -EINVAL);
	assert_int_equal(sx_hedge_run(h, scripted, NULL, NULL), -EINVAL);
	assert_null(p);
	assert_int_equal(sx_hedge_delay_ns(NULL), -EINVAL);
	assert_int_equal(sx_hedge_snapshot(NULL, &m), -EINVAL);
	assert_int_equal(sx_hedge_snapshot(h, NULL), -EINVAL);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.calls, 0);
	assert_int_equal(m.delay_ns, 1 * MS); /* the default min delay, before any sample */
	sx_hedge_destroy(h);
	sx_hedge_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_first_attempt_no_hedge),
		cmocka_unit_test(test_slow_first_overtaken),
		cmocka_unit_test(test_budget_bounds_hedges),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_all_fail),
		cmocka_unit_test(test_many_hedges_and_values),
		cmocka_unit_test(test_both_succeed_values_once),
		cmocka_unit_test(test_cancel_the_call),
		cmocka_unit_test(test_percentile_delay),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
