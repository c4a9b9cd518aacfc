/* Pipelines with the newer policies: the adaptive limit layer (refusal, release with the
 * result), the fault injection layer (errors, delays on a virtual clock cut short by the call's
 * breaker, replaced outcomes, off), injected errors hidden by a retry, total and per-attempt
 * timeouts together, and the event ring (refusals, retries, timeouts, fallbacks). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/adaptive.h>
#include <strix/breaker.h>
#include <strix/chaos.h>
#include <strix/events.h>
#include <strix/pipeline.h>

#define MS 1000000ull

TU_POOL_FIXTURE(2)

static sx_pipeline *pipeline(void)
{
	sx_pipeline_opts o = SX_PIPELINE_OPTS_INIT;
	sx_pipeline *pl = NULL;

	o.pool = pool;
	assert_int_equal(sx_pipeline_create(&o, &pl), 0);
	return pl;
}

static unsigned runs;

/* Counts its runs; returns (intptr_t)arg. */
static int action(sx_call *call)
{
	runs++;
	return (int)(intptr_t)call->arg;
}

/* Hangs until its breaker trips on attempts below (intptr_t)arg, then succeeds. */
static int hang_then_ok(sx_call *call)
{
	runs++;
	if (call->attempt < (unsigned)(intptr_t)call->arg) {
		assert_non_null(call->breaker);
		assert_int_equal(sx_breaker_wait(call->breaker, 10000 * (int64_t)MS), 0);
		return sx_breaker_err(call->breaker);
	}
	return 0;
}

static void test_adaptive_layer(void **state)
{
	sx_adaptive_opts ao = SX_ADAPTIVE_OPTS_INIT;
	sx_adaptive_metrics m;
	sx_adaptive *al;
	sx_pipeline *pl = pipeline();

	(void)state;
	ao.initial_limit = 2;
	ao.max_limit = 2;
	assert_int_equal(sx_adaptive_create(&ao, &al), 0);
	assert_int_equal(sx_pipeline_add_adaptive(pl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_adaptive(pl, al), 0);
	runs = 0;
	assert_int_equal(sx_adaptive_acquire(al), 0);
	assert_int_equal(sx_adaptive_acquire(al), 0); /* the limit taken outside the pipeline */
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), SX_EREJECTED);
	assert_int_equal(runs, 0);
	assert_int_equal(sx_adaptive_release(al, 0, 1), 0);
	assert_int_equal(sx_pipeline_call(pl, action, (void *)(intptr_t)-ETIMEDOUT, NULL, NULL),
	    -ETIMEDOUT);
	assert_int_equal(runs, 1);
	assert_int_equal(sx_adaptive_snapshot(al, &m), 0);
	assert_int_equal(m.inflight, 1);              /* the call gave its permit back */
	assert_int_equal(m.drops, 1);                 /* and reported its overload */
	assert_int_equal(m.rejected, 1);
	assert_int_equal(sx_adaptive_release(al, 0, 1), 0);
	sx_pipeline_destroy(pl);
	sx_adaptive_destroy(al);
}

static void test_chaos_layer(void **state)
{
	sx_chaos_opts co = SX_CHAOS_OPTS_INIT;
	sx_breaker *stop;
	sx_chaos *ch;
	sx_pipeline *pl = pipeline();

	(void)state;
	co.error_rate = 1.0;
	co.error = -ECONNRESET;
	co.clock = &tu_vclock;
	assert_int_equal(sx_chaos_create(&co, &ch), 0);
	assert_int_equal(sx_pipeline_add_chaos(pl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_chaos(pl, ch), 0);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), -ECONNRESET);
	assert_int_equal(runs, 0);                    /* failed before the action */
	assert_int_equal(sx_chaos_enable(ch, false), 0);
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), 0);
	assert_int_equal(runs, 1);

	/* A delay on the virtual clock, then the action; then an outcome replacing its result. */
	co.error_rate = 0.0;
	co.latency_rate = 1.0;
	co.latency_ns = 250 * (int64_t)MS;
	assert_int_equal(sx_chaos_set(ch, &co), 0);
	tu_vnow = 1000 * MS;
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), 0);
	assert_int_equal(tu_vnow, 1250 * MS);
	assert_int_equal(runs, 2);
	/* A tripped stop ends the call with its code before the layer draws. */
	assert_int_equal(sx_breaker_create(&stop), 0);
	co.latency_rate = 0.0;
	co.outcome_rate = 1.0;
	co.outcome = -EPIPE;
	assert_int_equal(sx_chaos_set(ch, &co), 0);
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), -EPIPE);
	assert_int_equal(runs, 3);                    /* it ran; its 0 was replaced */
	co.outcome_rate = 0.0;
	co.latency_rate = 1.0;
	assert_int_equal(sx_chaos_set(ch, &co), 0);
	assert_int_equal(sx_breaker_trip(stop), 0);
	assert_int_equal(sx_pipeline_call(pl, action, NULL, stop, NULL), -ECANCELED);
	assert_int_equal(runs, 3);
	sx_breaker_release(stop);
	sx_pipeline_destroy(pl);
	sx_chaos_destroy(ch);
}

/* Half the attempts fail by injection; a retry of up to 10 attempts hides every one. */
static void test_chaos_under_retry(void **state)
{
	sx_chaos_opts co = SX_CHAOS_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_chaos_metrics m;
	sx_chaos *ch;
	sx_pipeline *pl = pipeline();
	unsigned i;

	(void)state;
	co.error_rate = 0.5;
	co.seed = 11;
	assert_int_equal(sx_chaos_create(&co, &ch), 0);
	rp.max_attempts = 10;
	rp.base_ns = 0;
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_chaos(pl, ch), 0);
	runs = 0;
	for (i = 0; i < 200; i++)
		assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), 0);
	assert_int_equal(runs, 200);
	assert_int_equal(sx_chaos_snapshot(ch, &m), 0);
	assert_int_equal(m.draws, 200 + m.errors);    /* every injected error cost one retry */
	assert_in_range(m.errors, 120, 280);
	sx_pipeline_destroy(pl);
	sx_chaos_destroy(ch);
}

/* A total timeout outside the retry and a per-attempt one inside it: two attempts hang and are
 * cut at 20 ms each, the third succeeds well within the total; with attempts that all hang, the
 * total ends the call first. */
static void test_total_and_attempt_timeouts(void **state)
{
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pipeline *pl = pipeline();
	uint64_t t0;

	(void)state;
	rp.max_attempts = 5;
	rp.base_ns = 0;
	assert_int_equal(sx_pipeline_add_timeout(pl, 2000 * (int64_t)MS), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 20 * (int64_t)MS), 0);
	runs = 0;
	t0 = tu_now_ns();
	assert_int_equal(sx_pipeline_call(pl, hang_then_ok, (void *)(intptr_t)3, NULL, NULL), 0);
	assert_int_equal(runs, 3);
	assert_true(tu_now_ns() - t0 >= 40 * MS);
	sx_pipeline_destroy(pl);

	pl = pipeline();
	assert_int_equal(sx_pipeline_add_timeout(pl, 150 * (int64_t)MS), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 100 * (int64_t)MS), 0);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, hang_then_ok, (void *)(intptr_t)99, NULL, NULL),
	    -ETIMEDOUT);
	assert_in_range(runs, 1, 2);                  /* the total cut the second attempt */
	sx_pipeline_destroy(pl);
}

static int fallback_ok(sx_call *call, int err, void *arg)
{
	(void)call, (void)err, (void)arg;
	return 0;
}

static void test_events(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_ratelimit *rl;
	sx_events *ev;
	sx_event out[16];
	sx_pipeline *pl = pipeline();
	size_t n;

	(void)state;
	assert_int_equal(sx_events_create(16, &ev), 0);
	ro.rate = 1;
	ro.burst = 1;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	rp.max_attempts = 3;
	rp.base_ns = 0;
	assert_int_equal(sx_pipeline_add_fallback(pl, fallback_ok, NULL, NULL), 0);
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, 0), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 10 * (int64_t)MS), 0);
	assert_int_equal(sx_pipeline_set_events(NULL, ev, "api"), -EINVAL);
	assert_int_equal(sx_pipeline_set_events(pl, ev, "api"), 0);

	/* One call: three attempts, each timing out (events: timeout, retry, timeout, retry,
	 * timeout), then the fallback. The next call: refused by the rate limit, then the
	 * fallback again. */
	assert_int_equal(sx_pipeline_call(pl, hang_then_ok, (void *)(intptr_t)99, NULL, NULL), 0);
	assert_int_equal(sx_pipeline_call(pl, action, NULL, NULL, NULL), 0);
	n = sx_events_poll(ev, out, 16);
	assert_int_equal(n, 8);
	assert_int_equal(out[0].kind, SX_EVENT_TIMEOUT);
	assert_int_equal(out[1].kind, SX_EVENT_RETRY);
	assert_int_equal(out[1].value, 2);
	assert_int_equal(out[1].code, -ETIMEDOUT);
	assert_int_equal(out[2].kind, SX_EVENT_TIMEOUT);
	assert_int_equal(out[3].kind, SX_EVENT_RETRY);
	assert_int_equal(out[3].value, 3);
	assert_int_equal(out[4].kind, SX_EVENT_TIMEOUT);
	assert_int_equal(out[5].kind, SX_EVENT_FALLBACK);
	assert_int_equal(out[5].code, -ETIMEDOUT);
	assert_int_equal(out[6].kind, SX_EVENT_REJECTED);
	assert_int_equal(out[6].code, SX_ERATE_LIMITED);
	assert_string_equal(out[6].source, "api");
	assert_int_equal(out[7].kind, SX_EVENT_FALLBACK);
	assert_int_equal(sx_pipeline_set_events(pl, NULL, NULL), -EBUSY);
	sx_pipeline_destroy(pl);
	sx_ratelimit_destroy(rl);
	sx_events_destroy(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adaptive_layer),
		cmocka_unit_test(test_chaos_layer),
		cmocka_unit_test(test_chaos_under_retry),
		cmocka_unit_test(test_total_and_attempt_timeouts),
		cmocka_unit_test(test_events),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
