/*
 * Fault injection: adaptive limits, fault injectors, event rings, metrics sets and hedged calls.
 * Every allocation, thread and key creation fails in turn; each call returns its documented
 * error or succeeds, and again with faults off; a hedged call's record and promises are freed
 * however its building failed; nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/adaptive.h>
#include <strix/chaos.h>
#include <strix/events.h>
#include <strix/hedge.h>
#include <strix/metrics.h>
#include <strix/pool.h>
#include <strix/promise.h>
#include <strix/retry.h>

static void scenario_objects(void)
{
	sx_chaos_opts co = SX_CHAOS_OPTS_INIT;
	sx_retry_budget b;
	sx_adaptive *al;
	sx_chaos *ch;
	sx_chaos_fault f;
	sx_events *ev;
	sx_event out[4];
	sx_metrics *m;
	char text[4096];
	size_t len;

	FI_CREATE(al, sx_adaptive_create(NULL, &al), -ENOMEM);
	FI_CHECK(sx_adaptive_acquire(al) == 0);
	FI_CHECK(sx_adaptive_release(al, 0, 1000) == 0);
	co.error_rate = 1.0;
	FI_CREATE(ch, sx_chaos_create(&co, &ch), -ENOMEM);
	FI_CHECK(sx_chaos_draw(ch, &f) == 1 && f.error == -EIO);
	FI_CREATE(ev, sx_events_create(8, &ev), -ENOMEM);
	FI_CHECK(sx_events_emit(ev, SX_EVENT_USER, 0, 7, "x") == 0);
	FI_CHECK(sx_events_poll(ev, out, 4) == 1 && out[0].value == 7);
	FI_CHECK(sx_retry_budget_init(&b, 3, 0.0) == 0);
	FI_CREATE(m, sx_metrics_create(&m), -ENOMEM);
	/* The set grows its array on the first add and again past eight: both may fail. */
	FI_TRY(sx_metrics_add(m, SX_METRICS_ADAPTIVE, "a", al), -ENOMEM);
	FI_TRY(sx_metrics_add(m, SX_METRICS_CHAOS, "c", ch), -ENOMEM);
	FI_TRY(sx_metrics_add(m, SX_METRICS_RETRY_BUDGET, "b", &b), -ENOMEM);
	FI_CHECK(sx_metrics_render(m, SX_METRICS_OPENMETRICS, text, sizeof(text), &len) == 0);
	FI_CHECK(strstr(text, "strix_adaptive_limit{limit=\"a\"} 20\n") != NULL);
	FI_CHECK(sx_metrics_remove(m, ch) == 0);
	sx_metrics_destroy(m);
	sx_events_destroy(ev);
	sx_chaos_destroy(ch);
	sx_adaptive_destroy(al);
}

/* The first attempt is slow: it answers after 300 ms unless cancelled first (when the hedge
 * could not be made, it is the answer); a hedge after 1 ms answers at once. */
static int attempts;

static int hedged_step(sx_ctx *ctx, void *last, void **out)
{
	uint64_t t0 = fi_now_ns();

	(void)last;
	if (__atomic_fetch_add(&attempts, 1, __ATOMIC_SEQ_CST) == 0)
		while (fi_now_ns() - t0 < 300000000ull) {
			if (sx_ctx_cancelled(ctx))
				return -ECANCELED;
			sched_yield();
		}
	*out = ctx->arg;
	return 0;
}

static void scenario_hedge(void)
{
	sx_hedge_opts o = SX_HEDGE_OPTS_INIT;
	sx_pool *p = fi_make_pool(2, NULL);
	sx_promise *pr;
	sx_hedge *h;
	void *v = NULL;
	int rc;

	o.delay_ns = 1000000;
	FI_CREATE(h, sx_hedge_create(p, &o, &h), -ENOMEM);
	attempts = 0;
	rc = sx_hedge_run(h, hedged_step, &attempts, &pr);
	if (rc != 0) {
		/* Refused: what it had built is cancelled (a step may have started and is told). */
		FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "%d", rc);
		fi_off();
		FI_CHECK(sx_pool_wait_idle(p) == 0);
		attempts = 0;
		FI_CHECK(sx_hedge_run(h, hedged_step, &attempts, &pr) == 0);
	}
	rc = sx_promise_get(pr, -1, &v);
	/* An attempt's scheduling may have failed (its chain then rejects with -ENOMEM), or get's
	 * own breaker; the call is not made again. */
	FI_CHECK(rc == 0 || ((rc == -ENOMEM || rc == -EAGAIN) && fi_failed() > 0), "%d", rc);
	FI_CHECK(rc != 0 || v == &attempts);
	sx_promise_release(pr);
	fi_off();
	FI_CHECK(sx_pool_wait_idle(p) == 0);
	sx_hedge_destroy(h);
	sx_pool_destroy(p);
}

FI_TESTS(objects, scenario_objects)
FI_TESTS(hedge, scenario_hedge)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(objects),
		FI_TEST_PAIR(hedge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
