/* The pipeline's hedge layer: a fast first attempt starts no hedge; a slow one gets a hedge only
 * after the delay, and the first success wins while the loser is cancelled through its breaker
 * and its value destroyed exactly once; the budget refuses hedges; every attempt failing returns
 * the failure that came last; hedging inside a retry and inside a timeout (whose breaker the
 * first attempt then shares, and which stays usable after a hedge tripped it); the caller's
 * breaker cancels every attempt; no allocation per call in steady state; bad input. On a real
 * pool and its timers, as the hedge policy's own tests, with bounds generous for a shared
 * machine (a slow attempt waits on its breaker, never in a sleep). */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/events.h>
#include <strix/hedge.h>
#include <strix/pipeline.h>
#include <strix/promise.h>

#define MS 1000000ll

TU_POOL_FIXTURE(3)

/* What the action does, by the order its attempts start in: attempt i waits wait_ms[i] on its
 * breaker (-1: until it trips; a trip ends it with the breaker's code unless deaf[i], which
 * waits the time out on a breaker nothing trips), then returns rc[i], or 0 with a value that
 * names it (i + 1; malloc'd with a counting dtor when the call has a promise context). */
struct script {
	atomic_uint started, cancelled, values;
	int wait_ms[4];
	int rc[4];
	bool deaf[4];
	uint64_t t0, start_ns[4];
	unsigned attempt[4];
	sx_breaker *trip;       /* attempt 1 trips it (the caller's stop) before it waits */
	sx_breaker *never;
};

static atomic_uint dtor_count;
static int names[4] = { 1, 2, 3, 4 };

static void value_free(void *v)
{
	atomic_fetch_add(&dtor_count, 1);
	free(v);
}

static int act(sx_call *call)
{
	struct script *s = call->arg;
	unsigned i = atomic_fetch_add(&s->started, 1);
	sx_breaker *b = call->breaker;

	assert_true(i < 4);
	assert_non_null(b);
	s->start_ns[i] = tu_now_ns() - s->t0;
	s->attempt[i] = call->attempt;
	if (i == 1 && s->trip != NULL)
		assert_int_equal(sx_breaker_trip(s->trip), 0);
	if (s->wait_ms[i] != 0) {
		int64_t ns = s->wait_ms[i] < 0 ? -1 : s->wait_ms[i] * MS;

		if (s->deaf[i])
			(void)sx_breaker_wait(s->never, ns);
		else if (sx_breaker_wait(b, ns) == 0) {
			atomic_fetch_add(&s->cancelled, 1);
			return sx_breaker_err(b);
		}
	}
	if (s->rc[i] != 0)
		return s->rc[i];
	atomic_fetch_add(&s->values, 1);
	if (call->ctx != NULL) {
		int *v = malloc(sizeof(*v));

		assert_non_null(v);
		*v = (int)i + 1;
		call->ctx->dtor = value_free;
		call->out = v;
	} else {
		call->out = &names[i];
	}
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

static sx_pipeline *pipeline(void)
{
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_pipeline *pl = NULL;

	po.pool = pool;
	assert_int_equal(sx_pipeline_create(&po, &pl), 0);
	return pl;
}

/* One call of s through pl; its outcome, the winner's number in *who (0 on failure). */
static int call(sx_pipeline *pl, struct script *s, sx_breaker *stop, int *who)
{
	void *v = NULL;
	int rc;

	if (s->never == NULL)
		assert_int_equal(sx_breaker_create(&s->never), 0);
	s->t0 = tu_now_ns();
	rc = sx_pipeline_call(pl, act, s, stop, &v);
	*who = rc == 0 ? *(int *)v : 0;
	return rc;
}

static void done(struct script *s)
{
	sx_breaker_release(s->never);
	s->never = NULL;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_fast_first_attempt_no_hedge(void **state)
{
	sx_hedge *h = fixed(200 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { 0 };
	sx_hedge_metrics m;
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, NULL, &who), 0);
	assert_int_equal(who, 1);
	assert_int_equal(atomic_load(&s.started), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.hedges, 0);
	assert_int_equal(m.hedge_wins, 0);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* The first attempt hangs; the hedge starts no sooner than the delay and answers; the first is
 * cancelled through its breaker; the call returns the hedge's value once both have ended. */
static void test_slow_first_overtaken_after_delay(void **state)
{
	sx_hedge *h = fixed(20 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { .wait_ms = { -1, 0 } };
	sx_hedge_metrics m;
	sx_pipeline_metrics pm;
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, NULL, &who), 0);
	assert_int_equal(who, 2);
	assert_int_equal(atomic_load(&s.started), 2);
	assert_true(s.start_ns[1] >= 20 * (uint64_t)MS);
	assert_int_equal(atomic_load(&s.cancelled), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.calls, 1);
	assert_int_equal(m.hedges, 1);
	assert_int_equal(m.hedge_wins, 1);
	/* The thread's reusable breaker the hedge tripped is replaced: the next calls run clean. */
	for (int i = 0; i < 3; i++) {
		struct script f = { 0 };

		assert_int_equal(call(pl, &f, NULL, &who), 0);
		assert_int_equal(who, 1);
		done(&f);
	}
	/* The pipeline counts the hedge it started (counted on the timer thread, before the
	 * call could end). */
	assert_int_equal(sx_pipeline_snapshot(pl, &pm), 0);
	assert_int_equal(pm.calls, 4);
	assert_int_equal(pm.hedges, 1);
	assert_int_equal(pm.failed + pm.rejected + pm.retries + pm.timeouts + pm.fallbacks, 0);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* A first attempt slower than nothing but faster than the delay: no hedge. */
static void test_no_hedge_before_delay(void **state)
{
	sx_hedge *h = fixed(2000 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { .wait_ms = { 30 } };
	sx_hedge_metrics m;
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, NULL, &who), 0);
	assert_int_equal(who, 1);
	assert_int_equal(atomic_load(&s.started), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.hedges, 0);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* Both attempts succeed (the first is deaf to its breaker): the first value in wins, the
 * other is destroyed exactly once; a promise step's chain destroys the winner's value. */
static void test_step_values_once(void **state)
{
	sx_hedge *h = fixed(5 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { .wait_ms = { 200, 0 }, .deaf = { true } };
	sx_pipeline_step_arg sa = { pl, act, &s };
	sx_promise *p;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_breaker_create(&s.never), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	atomic_store(&dtor_count, 0);
	s.t0 = tu_now_ns();
	assert_int_equal(sx_promise_run(pool, sx_pipeline_step, &sa, &p), 0);
	assert_int_equal(sx_promise_get(p, 10000 * MS, &v), 0);
	assert_int_equal(*(int *)v, 2);
	assert_int_equal(atomic_load(&s.values), 2);
	assert_int_equal(atomic_load(&dtor_count), 1); /* the loser's, during the call */
	sx_promise_release(p);
	sx_pool_wait_idle(pool);
	assert_int_equal(atomic_load(&dtor_count), 2); /* the winner's, with the chain */
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* A promise step on the only worker of the hedge's pool: the hedge is queued behind the step
 * itself, and runs when the step waits for it (the wait helps); its value wins. */
static void test_one_worker_helps(void **state)
{
	sx_pool *one = tu_pool(1);
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_pipeline *pl = NULL;
	sx_hedge *h = NULL;
	struct script s = { .wait_ms = { 50, 0 }, .rc = { -EIO } };
	sx_pipeline_step_arg sa;
	sx_promise *p;
	void *v = NULL;

	(void)state;
	o.delay_ns = 5 * MS;
	assert_int_equal(sx_hedge_create(one, &o, &h), 0);
	po.pool = one;
	assert_int_equal(sx_pipeline_create(&po, &pl), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	sa = (sx_pipeline_step_arg){ pl, act, &s };
	assert_int_equal(sx_breaker_create(&s.never), 0);
	atomic_store(&dtor_count, 0);
	s.t0 = tu_now_ns();
	assert_int_equal(sx_promise_run(one, sx_pipeline_step, &sa, &p), 0);
	assert_int_equal(sx_promise_get(p, 10000 * MS, &v), 0);
	assert_int_equal(*(int *)v, 2);
	assert_int_equal(atomic_load(&s.started), 2);
	sx_promise_release(p);
	sx_pool_wait_idle(one);
	assert_int_equal(atomic_load(&dtor_count), 1);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
	sx_pool_destroy(one);
}

/* A percentile policy learns from the first attempts' latencies: after a window of fast calls
 * its delay is still its least (nothing slower seen), and calls go on unhedged. */
static void test_percentile_samples(void **state)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_pipeline *pl = pipeline();
	sx_hedge *h = NULL;
	sx_hedge_metrics m;
	int who;

	(void)state;
	o.min_delay_ns = 500 * MS;
	o.window = 16;
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	for (int i = 0; i < 40; i++) {
		struct script f = { 0 };

		assert_int_equal(call(pl, &f, NULL, &who), 0);
		assert_int_equal(who, 1);
		done(&f);
	}
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.calls, 40);
	assert_int_equal(m.hedges, 0);
	assert_int_equal(m.delay_ns, 500 * MS);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* A budget of one token: the first slow call hedges, the second's hedge is refused and it
 * waits for its first attempt; the refusal is counted and sent as an event. */
static void test_budget_refuses(void **state)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_retry_budget b;
	sx_events *ev;
	sx_event out[4];
	sx_pipeline *pl = pipeline();
	sx_hedge *h = NULL;
	struct script s1 = { .wait_ms = { -1, 0 } }, s2 = { .wait_ms = { 60, 0 } };
	sx_hedge_metrics m;
	sx_pipeline_metrics pm;
	int who;

	(void)state;
	assert_int_equal(sx_events_create(16, &ev), 0);
	assert_int_equal(sx_retry_budget_init(&b, 1, 0.0), 0);
	o.delay_ns = 5 * MS;
	o.budget = &b;
	o.events = ev;
	o.name = "reads";
	assert_int_equal(sx_hedge_create(pool, &o, &h), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s1, NULL, &who), 0);
	assert_int_equal(who, 2);
	assert_int_equal(call(pl, &s2, NULL, &who), 0);
	assert_int_equal(who, 1);
	assert_int_equal(atomic_load(&s2.started), 1);
	assert_int_equal(sx_hedge_snapshot(h, &m), 0);
	assert_int_equal(m.hedges, 1);
	assert_int_equal(m.refused, 1);
	/* The refused hedge is no hedge of the pipeline's, nor a refusal of its call. */
	assert_int_equal(sx_pipeline_snapshot(pl, &pm), 0);
	assert_int_equal(pm.calls, 2);
	assert_int_equal(pm.hedges, 1);
	assert_int_equal(pm.rejected + pm.failed, 0);
	assert_int_equal(sx_events_poll(ev, out, 4), 2);
	assert_int_equal(out[0].kind, SX_EVENT_HEDGE);
	assert_int_equal(out[0].value, 1);
	assert_string_equal(out[0].source, "reads");
	assert_int_equal(out[1].kind, SX_EVENT_REJECTED);
	assert_int_equal(out[1].code, SX_EREJECTED);
	done(&s1);
	done(&s2);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
	sx_events_destroy(ev);
}

/* Every attempt fails: the call returns the failure of the attempt that ended last, whichever
 * it is (the first here, then a hedge). */
static void test_all_fail_last_failure(void **state)
{
	sx_hedge *h = fixed(5 * MS, 2, NULL);
	sx_pipeline *pl = pipeline();
	struct script s1 = { .wait_ms = { 200, 0, 0 }, .rc = { -EIO, -ENOTCONN, -ENOTCONN },
	    .deaf = { true } };
	struct script s2 = { .wait_ms = { 20, 300, 0 }, .rc = { -ENOTCONN, -EIO, -ENOTCONN },
	    .deaf = { true, true } };
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s1, NULL, &who), -EIO);
	assert_int_equal(atomic_load(&s1.started), 3);
	assert_int_equal(call(pl, &s2, NULL, &who), -EIO);
	assert_true(atomic_load(&s2.started) >= 2); /* the second hedge is due before the first
	                                               * attempt ends, but a late timer may miss it */
	done(&s1);
	done(&s2);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* retry outside hedge: the first try fails at once (no hedge), the second is hedged; the
 * hedge sees the retry's attempt number. */
static void test_hedge_inside_retry(void **state)
{
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_hedge *h = fixed(5 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { .wait_ms = { 0, -1, 0 }, .rc = { -EIO } };
	int who;

	(void)state;
	rp.max_attempts = 3;
	rp.base_ns = 1 * MS;
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, NULL, &who), 0);
	assert_int_equal(who, 3);
	assert_int_equal(atomic_load(&s.started), 3);
	assert_int_equal(s.attempt[1], 2);
	assert_int_equal(s.attempt[2], 2);
	assert_int_equal(atomic_load(&s.cancelled), 1);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* timeout outside hedge: a hedge wins under the timeout (the first attempt shares its breaker,
 * which the win trips: later calls still run clean); a call whose attempts all hang times
 * out, every attempt told. */
static void test_hedge_inside_timeout(void **state)
{
	sx_hedge *h = fixed(5 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s1 = { .wait_ms = { -1, 0 } }, s2 = { .wait_ms = { -1, -1 } };
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(pl, 300 * MS), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	for (int round = 0; round < 3; round++) {
		struct script a = { .wait_ms = { -1, 0 } };

		assert_int_equal(call(pl, &a, NULL, &who), 0);
		assert_int_equal(who, 2);
		for (int i = 0; i < 3; i++) {
			struct script f = { 0 };

			assert_int_equal(call(pl, &f, NULL, &who), 0);
			assert_int_equal(who, 1);
			done(&f);
		}
		done(&a);
	}
	assert_int_equal(call(pl, &s1, NULL, &who), 0);
	assert_int_equal(call(pl, &s2, NULL, &who), -ETIMEDOUT);
	assert_int_equal(atomic_load(&s2.started), 2);
	assert_int_equal(atomic_load(&s2.cancelled), 2);
	done(&s1);
	done(&s2);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* The caller's breaker trips (from inside the hedge): every attempt ends with its code. */
static void test_cancel_the_call(void **state)
{
	sx_hedge *h = fixed(5 * MS, 2, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { .wait_ms = { -1, -1, -1 } };
	sx_breaker *stop;
	int who;

	(void)state;
	assert_int_equal(sx_breaker_create(&stop), 0);
	s.trip = stop;
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, stop, &who), -ECANCELED);
	assert_true(atomic_load(&s.started) >= 2);
	assert_int_equal(atomic_load(&s.cancelled), atomic_load(&s.started));
	sx_breaker_release(stop);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

/* Calls that end before their delay allocate nothing, alone, directly inside a timeout and
 * inside a rate limit / timeout / retry pipeline, after a warm-up that includes hedged calls. */
static void test_steady_state_no_allocation(void **state)
{
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_hedge *h = fixed(50 * MS, 1, NULL);
	sx_pipeline *pl[3] = { pipeline(), pipeline(), pipeline() };
	int who;

	(void)state;
	rp.max_attempts = 3;
	rp.base_ns = 1 * MS;
	assert_int_equal(sx_pipeline_add_hedge(pl[0], h), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl[1], 1000 * MS), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl[1], h), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl[2], 1000 * MS), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl[2], h), 0);
	assert_int_equal(sx_pipeline_add_retry(pl[2], &rp, 0), 0);
	for (int k = 0; k < 3; k++) {
		struct script a = { .wait_ms = { -1, 0 } }, f = { 0 };
		uint64_t a0;

		assert_int_equal(call(pl[k], &a, NULL, &who), 0);
		assert_int_equal(who, 2);
		for (int i = 0; i < 100; i++) {
			f.started = 0;
			assert_int_equal(call(pl[k], &f, NULL, &who), 0);
		}
		a0 = sx_allocations();
		for (int i = 0; i < 1000; i++) {
			f.started = 0;
			assert_int_equal(sx_pipeline_call(pl[k], act, &f, NULL, NULL), 0);
		}
		assert_int_equal(sx_allocations() - a0, 0);
		done(&a);
		done(&f);
		sx_pipeline_destroy(pl[k]);
	}
	sx_hedge_destroy(h);
}

static void test_bad_input(void **state)
{
	sx_hedge *h = fixed(5 * MS, 1, NULL);
	sx_pipeline *pl = pipeline();
	struct script s = { 0 };
	int who;

	(void)state;
	assert_int_equal(sx_pipeline_add_hedge(NULL, h), -EINVAL);
	assert_int_equal(sx_pipeline_add_hedge(pl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), 0);
	assert_int_equal(call(pl, &s, NULL, &who), 0);
	assert_int_equal(sx_pipeline_add_hedge(pl, h), -EBUSY);
	done(&s);
	sx_pipeline_destroy(pl);
	sx_hedge_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_first_attempt_no_hedge),
		cmocka_unit_test(test_slow_first_overtaken_after_delay),
		cmocka_unit_test(test_no_hedge_before_delay),
		cmocka_unit_test(test_step_values_once),
		cmocka_unit_test(test_one_worker_helps),
		cmocka_unit_test(test_percentile_samples),
		cmocka_unit_test(test_budget_refuses),
		cmocka_unit_test(test_all_fail_last_failure),
		cmocka_unit_test(test_hedge_inside_retry),
		cmocka_unit_test(test_hedge_inside_timeout),
		cmocka_unit_test(test_cancel_the_call),
		cmocka_unit_test(test_steady_state_no_allocation),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
