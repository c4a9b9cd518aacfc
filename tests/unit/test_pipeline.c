/* Pipelines: order of layers, every after exactly once (errors, timeouts, cancels, refusals,
 * retries; one thread and many), each built-in policy, timeouts that hold inner permits until the
 * action ends, zero allocations per call in steady state, promise steps, bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/pipeline.h>
#include <strix/registry.h>

#define MS 1000000ull
#define SEC 1000000000ull

static sx_pipeline *pipeline(sx_pool *pool)
{
	sx_pipeline_opts o = SX_PIPELINE_OPTS_INIT;
	sx_pipeline *pl = NULL;

	o.pool = pool;
	assert_int_equal(sx_pipeline_create(&o, &pl), 0);
	assert_non_null(pl);
	return pl;
}

/* pl's counters, checked against the expected ones in sx_pipeline_metrics' order. */
static void expect_counts(const sx_pipeline *pl, uint64_t calls, uint64_t failed,
    uint64_t rejected, uint64_t retries, uint64_t timeouts, uint64_t fallbacks)
{
	sx_pipeline_metrics m;

	assert_int_equal(sx_pipeline_snapshot(pl, &m), 0);
	assert_int_equal(m.calls, calls);
	assert_int_equal(m.failed, failed);
	assert_int_equal(m.rejected, rejected);
	assert_int_equal(m.retries, retries);
	assert_int_equal(m.timeouts, timeouts);
	assert_int_equal(m.hedges, 0);
	assert_int_equal(m.fallbacks, fallbacks);
	for (int i = 0; i < 4; i++)
		assert_int_equal(m.reserved[i], 0);
}

static int ok_action(sx_call *call)
{
	call->out = call->arg;
	return 0;
}

/* Fails with (intptr_t)arg. */
static int fail_action(sx_call *call)
{
	return (int)(intptr_t)call->arg;
}

/* ---- a counting interceptor ----------------------------------------------------------------- */

struct counter {
	char name;
	unsigned refuse_every;   /* refuse every n-th before (0: never) */
	uint64_t befores, refused, afters, token_bad;
};

static int ic_before(void *self, sx_call *call, uint64_t *token)
{
	struct counter *c = self;
	uint64_t n = __atomic_add_fetch(&c->befores, 1, __ATOMIC_ACQ_REL);

	(void)call;
	if (c->refuse_every != 0 && n % c->refuse_every == 0) {
		__atomic_add_fetch(&c->refused, 1, __ATOMIC_ACQ_REL);
		return SX_EREJECTED;
	}
	*token = n * 7;
	return 0;
}

static void ic_after(void *self, sx_call *call, uint64_t token, int result)
{
	struct counter *c = self;

	(void)call, (void)result;
	if (token % 7 != 0 || token == 0)
		__atomic_add_fetch(&c->token_bad, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&c->afters, 1, __ATOMIC_ACQ_REL);
}

static sx_interceptor ic_of(struct counter *c)
{
	sx_interceptor ic = { ic_before, ic_after, c };

	return ic;
}

static void assert_balanced(const struct counter *c)
{
	assert_int_equal(c->afters + c->refused, c->befores);
	assert_int_equal(c->token_bad, 0);
}

/* ---- order and bad input -------------------------------------------------------------------- */

static char order_log[64];
static char *order_pos;

static int logging_action(sx_call *call)
{
	(void)call;
	*order_pos++ = '*';
	return 0;
}

/* An interceptor that logs to the shared cursor, to see the nesting. */
static int lg_before(void *self, sx_call *call, uint64_t *token)
{
	(void)call, (void)token;
	*order_pos++ = *(const char *)self;
	return 0;
}

static void lg_after(void *self, sx_call *call, uint64_t token, int result)
{
	(void)call, (void)token, (void)result;
	*order_pos++ = (char)(*(const char *)self - 'a' + 'A');
}

/* First added is outermost: befores outside-in, afters inside-out. */
static void test_nesting_order(void **state)
{
	static const char names[] = "abc";
	sx_pipeline *pl = pipeline(NULL);

	(void)state;
	for (int i = 0; i < 3; i++) {
		sx_interceptor ic = { lg_before, lg_after, (void *)&names[i] };

		assert_int_equal(sx_pipeline_add_interceptor(pl, &ic), 0);
	}
	memset(order_log, 0, sizeof(order_log));
	order_pos = order_log;
	assert_int_equal(sx_pipeline_call(pl, logging_action, NULL, NULL, NULL), 0);
	assert_string_equal(order_log, "abc*CBA");
	sx_pipeline_destroy(pl);
}

static void test_bad_input_changes_nothing(void **state)
{
	sx_pipeline *pl = pipeline(NULL), *pl2;
	sx_retry_policy bad = SX_RETRY_POLICY_INIT;
	struct counter a = { .name = 'a' };
	sx_interceptor ia = ic_of(&a), none = { NULL, NULL, NULL };
	void *out = (void *)&out;

	(void)state;
	assert_int_equal(sx_pipeline_create(NULL, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_timeout(pl, 10 * MS), -EINVAL); /* no pool */
	assert_int_equal(sx_pipeline_add_ratelimit(pl, NULL, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, NULL, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_circuit(pl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_fallback(pl, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_interceptor(pl, &none), -EINVAL);
	assert_int_equal(sx_pipeline_add_interceptor(pl, NULL), -EINVAL);
	bad.backoff = 99;
	assert_int_equal(sx_pipeline_add_retry(pl, &bad, 0), -EINVAL);
	bad.backoff = SX_BACKOFF_NONE;
	assert_int_equal(sx_pipeline_add_retry(pl, &bad, 0x80), -EINVAL);
	assert_int_equal(sx_pipeline_add_retry(NULL, &bad, 0), -EINVAL);
	assert_int_equal(sx_pipeline_call(NULL, ok_action, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_call(pl, NULL, NULL, NULL, NULL), -EINVAL);
	/* Nothing was added: a call is the bare action. */
	assert_int_equal(sx_pipeline_call(pl, fail_action, (void *)(intptr_t)-EIO, NULL, &out), -EIO);
	assert_ptr_equal(out, (void *)&out); /* untouched on failure */
	assert_int_equal(sx_pipeline_call(pl, ok_action, (void *)&a, NULL, &out), 0);
	assert_ptr_equal(out, &a);
	assert_int_equal(sx_pipeline_add_interceptor(pl, &ia), -EBUSY);
	sx_pipeline_destroy(pl);
	pl2 = pipeline(NULL);
	for (int i = 0; i < SX_PIPELINE_MAX; i++)
		assert_int_equal(sx_pipeline_add_interceptor(pl2, &ia), 0);
	assert_int_equal(sx_pipeline_add_interceptor(pl2, &ia), -ENOSPC);
	assert_int_equal(sx_pipeline_call(pl2, ok_action, NULL, NULL, NULL), 0);
	assert_int_equal(a.befores, SX_PIPELINE_MAX);
	assert_balanced(&a);
	sx_pipeline_destroy(pl2);
	sx_pipeline_destroy(NULL);
}

/* ---- built-in policies ---------------------------------------------------------------------- */

static unsigned runs;

static int counting_action(sx_call *call)
{
	runs++;
	return (int)(intptr_t)call->arg;
}

static void test_rate_limit_refuses_without_running(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit *rl;
	struct counter outer = { .name = 'o' };
	sx_interceptor io = ic_of(&outer);
	sx_pipeline *pl = pipeline(NULL);

	(void)state;
	tu_vnow = 50 * SEC;
	ro.rate = 6;
	ro.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	assert_int_equal(sx_pipeline_add_interceptor(pl, &io), 0);
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, 0), 0);
	runs = 0;
	for (int i = 0; i < 6; i++)
		assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), 0);
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), SX_ERATE_LIMITED);
	assert_int_equal(runs, 6);
	tu_vadvance(SEC / 6);
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), 0);
	assert_int_equal(runs, 7);
	assert_int_equal(outer.afters, 8); /* the outer layer's after ran for the refusal too */
	expect_counts(pl, 8, 1, 1, 0, 0, 0);
	assert_int_equal(sx_pipeline_snapshot(NULL, &(sx_pipeline_metrics){ 0 }), -EINVAL);
	assert_int_equal(sx_pipeline_snapshot(pl, NULL), -EINVAL);
	sx_pipeline_destroy(pl);
	sx_ratelimit_destroy(rl);
}

static uint64_t client_of(const sx_call *call)
{
	return (uint64_t)(uintptr_t)call->arg;
}

static void test_keyed_rate_limit_per_client(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit_keyed *kl;
	sx_pipeline *pl = pipeline(NULL);

	(void)state;
	tu_vnow = 70 * SEC;
	ro.rate = 2;
	ro.clock = &tu_vclock;
	assert_int_equal(sx_ratelimit_keyed_create(&ro, 16, &kl), 0);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(pl, kl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(pl, kl, client_of), 0);
	for (uintptr_t client = 0; client < 3; client++) {
		assert_int_equal(sx_pipeline_call(pl, ok_action, (void *)client, NULL, NULL), 0);
		assert_int_equal(sx_pipeline_call(pl, ok_action, (void *)client, NULL, NULL), 0);
		assert_int_equal(sx_pipeline_call(pl, ok_action, (void *)client, NULL, NULL),
		    SX_ERATE_LIMITED);
	}
	sx_pipeline_destroy(pl);
	sx_ratelimit_keyed_destroy(kl);
}

static sx_pipeline *bh_pl;
static sx_sem *bh_sem;

static int nested_call_action(sx_call *call)
{
	(void)call;
	assert_int_equal(sx_sem_in_use(bh_sem), 1);
	return sx_pipeline_call(bh_pl, ok_action, NULL, NULL, NULL);
}

static void test_bulkhead_rejects_and_gives_back(void **state)
{
	(void)state;
	bh_pl = pipeline(NULL);
	assert_int_equal(sx_sem_create(NULL, 1, &bh_sem), 0);
	assert_int_equal(sx_pipeline_add_bulkhead(bh_pl, bh_sem, 0), 0);
	assert_int_equal(sx_pipeline_call(bh_pl, nested_call_action, NULL, NULL, NULL), SX_EREJECTED);
	assert_int_equal(sx_sem_in_use(bh_sem), 0);
	assert_int_equal(sx_pipeline_call(bh_pl, fail_action, (void *)(intptr_t)-EIO, NULL, NULL),
	    -EIO);
	assert_int_equal(sx_sem_in_use(bh_sem), 0);
	sx_pipeline_destroy(bh_pl);
	sx_sem_destroy(bh_sem);
}

/* Keyed bulkhead and circuit: state per key, a reference held for each call and given back. */
static sx_pipeline *kb_pl;
static sx_registry *kb_sems;

static int kb_nested(sx_call *call)
{
	uintptr_t key = (uintptr_t)call->arg;

	/* The same key's bulkhead is full (1 permit); another key's is not. */
	assert_int_equal(sx_pipeline_call(kb_pl, ok_action, (void *)key, NULL, NULL),
	    SX_EREJECTED);
	return sx_pipeline_call(kb_pl, ok_action, (void *)(key + 100), NULL, NULL);
}

static void test_keyed_bulkhead_and_circuit(void **state)
{
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_registry *circuits;
	sx_registry_counters n;
	sx_registry_ref *r;

	(void)state;
	o.kind = SX_REGISTRY_BULKHEAD;
	o.permits = 1;
	o.max_keys = 1;
	assert_int_equal(sx_registry_create(NULL, &o, &kb_sems), 0);
	co.consecutive_failures = 1;
	o.kind = SX_REGISTRY_CIRCUIT;
	o.circuit = &co;
	assert_int_equal(sx_registry_create(NULL, &o, &circuits), 0);
	kb_pl = pipeline(NULL);
	assert_int_equal(sx_pipeline_add_circuit_keyed(kb_pl, kb_sems, client_of), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead_keyed(kb_pl, circuits, client_of, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead_keyed(kb_pl, kb_sems, NULL, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead_keyed(kb_pl, kb_sems, client_of, 0x80), -EINVAL);
	assert_int_equal(sx_pipeline_add_circuit_keyed(kb_pl, NULL, client_of), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead_keyed(kb_pl, kb_sems, client_of, 0), 0);
	assert_int_equal(sx_pipeline_add_circuit_keyed(kb_pl, circuits, client_of), 0);
	for (uintptr_t key = 1; key <= 3; key++)
		assert_int_equal(sx_pipeline_call(kb_pl, kb_nested, (void *)key, NULL, NULL), 0);
	/* Key 1 fails once: its circuit opens; key 2's stays closed. */
	assert_int_equal(sx_pipeline_call(kb_pl, fail_action, (void *)(intptr_t)-EIO, NULL, NULL),
	    -EIO);
	assert_int_equal(sx_registry_get(circuits, (uint64_t)(uintptr_t)-EIO, &r), 0);
	assert_int_equal(sx_circuit_state(sx_registry_guard(r)), SX_CIRCUIT_OPEN);
	sx_registry_put(r);
	assert_int_equal(sx_pipeline_call(kb_pl, fail_action, (void *)(intptr_t)-EIO, NULL, NULL),
	    SX_ECIRCUIT_OPEN);
	assert_int_equal(sx_pipeline_call(kb_pl, ok_action, (void *)2, NULL, NULL), 0);
	/* Every permit and every reference came back: with nothing held, one new key makes the
	 * bulkheads evict all the others (their bound is one key). */
	assert_int_equal(sx_registry_get(kb_sems, 999, &r), 0);
	assert_int_equal(sx_sem_in_use(sx_registry_guard(r)), 0);
	sx_registry_put(r);
	assert_int_equal(sx_registry_stats(kb_sems, &n), 0);
	assert_int_equal(n.keys, 1);
	assert_true(n.evicted >= 6);
	sx_pipeline_destroy(kb_pl);
	sx_registry_destroy(circuits);
	sx_registry_destroy(kb_sems);
}

static void test_circuit_and_retry(void **state)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_circuit *c;
	sx_pipeline *pl = pipeline(NULL), *pl2 = pipeline(NULL);
	sx_circuit_metrics m;

	(void)state;
	tu_vnow = SEC;
	co.clock = &tu_vclock;
	co.window_size = 4;
	co.min_calls = 4;
	co.failure_rate = 1.0;
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	rp.max_attempts = 3;
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_circuit(pl, c), 0);
	runs = 0;
	/* 3 failed attempts recorded; the 4th (second call's first attempt) opens the circuit,
	 * whose refusal is not retried. */
	assert_int_equal(sx_pipeline_call(pl, counting_action, (void *)(intptr_t)-EIO, NULL, NULL),
	    -EIO);
	assert_int_equal(runs, 3);
	assert_int_equal(sx_pipeline_call(pl, counting_action, (void *)(intptr_t)-EIO, NULL, NULL),
	    SX_ECIRCUIT_OPEN);
	assert_int_equal(runs, 4);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.rejected, 1);
	/* Asked to retry the circuit's refusal: all three attempts are refused. */
	assert_int_equal(sx_pipeline_add_retry(pl2, &rp, SX_PIPELINE_RETRY_CIRCUIT_OPEN), 0);
	assert_int_equal(sx_pipeline_add_circuit(pl2, c), 0);
	assert_int_equal(sx_pipeline_call(pl2, counting_action, NULL, NULL, NULL), SX_ECIRCUIT_OPEN);
	assert_int_equal(runs, 4);
	sx_circuit_snapshot(c, &m);
	assert_int_equal(m.rejected, 4);
	sx_pipeline_destroy(pl);
	sx_pipeline_destroy(pl2);
	sx_circuit_destroy(c);
}

static int flaky_action(sx_call *call)
{
	unsigned *fails_left = call->arg;

	assert_int_equal(call->attempt, runs + 1);
	runs++;
	if (*fails_left > 0) {
		(*fails_left)--;
		return -EAGAIN;
	}
	call->out = (void *)(uintptr_t)call->attempt;
	return 0;
}

static bool not_eagain(int err, void *arg)
{
	(void)arg;
	return err != -EAGAIN;
}

static int fallback_value(sx_call *call, int err, void *arg)
{
	(void)arg;
	call->out = (void *)(intptr_t)err;
	return 0;
}

static void test_retry_then_success_and_fallback(void **state)
{
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_retry_budget budget;
	sx_pipeline *pl = pipeline(NULL);
	unsigned fails = 2;
	void *out = NULL;

	(void)state;
	tu_vnow = 0;
	rp.max_attempts = 5;
	rp.backoff = SX_BACKOFF_CONSTANT;
	rp.base_ns = 10 * MS;
	rp.clock = &tu_vclock; /* waits advance the virtual clock */
	assert_int_equal(sx_retry_budget_init(&budget, 10, 1.0), 0);
	rp.budget = &budget;
	assert_int_equal(sx_pipeline_add_fallback(pl, fallback_value, not_eagain, NULL), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, flaky_action, &fails, NULL, &out), 0);
	assert_int_equal(runs, 3);
	assert_int_equal((uintptr_t)out, 3);
	assert_int_equal(tu_vnow, 20 * MS);
	assert_int_equal(sx_retry_budget_tokens(&budget), 9); /* two spent, one back */
	expect_counts(pl, 1, 0, 0, 2, 0, 0);
	/* Five failures: the retry gives up with -EAGAIN, which this fallback lets through. */
	fails = 10;
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, flaky_action, &fails, NULL, NULL), -EAGAIN);
	assert_int_equal(runs, 5);
	expect_counts(pl, 2, 1, 0, 6, 0, 0);
	/* Another error is replaced by the fallback's value. */
	assert_int_equal(sx_pipeline_call(pl, fail_action, (void *)(intptr_t)-EIO, NULL, &out), 0);
	assert_int_equal((intptr_t)out, -EIO);
	expect_counts(pl, 3, 1, 0, 10, 0, 1); /* replaced: not a failure */
	sx_pipeline_destroy(pl);
}

static void test_tripped_stop_ends_before_any_layer(void **state)
{
	struct counter a = { .name = 'a' };
	sx_interceptor ia = ic_of(&a);
	sx_pipeline *pl = pipeline(NULL);
	sx_breaker *stop;

	(void)state;
	assert_int_equal(sx_pipeline_add_interceptor(pl, &ia), 0);
	assert_int_equal(sx_breaker_create(&stop), 0);
	sx_breaker_trip(stop);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, stop, NULL), -ECANCELED);
	assert_int_equal(runs, 0);
	assert_int_equal(a.befores, 0);
	sx_breaker_release(stop);
	sx_pipeline_destroy(pl);
}

/* A retry does nothing before its first attempt: a tripped stop still ends the call before the
 * layer inside it, and is not retried, whether that layer is an interceptor or the action. */
static void test_tripped_stop_ends_a_retry_before_its_first_attempt(void **state)
{
	struct counter a = { .name = 'a' };
	sx_interceptor ia = ic_of(&a);
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_pipeline *pl = pipeline(NULL), *bare = pipeline(NULL);
	sx_breaker *stop;

	(void)state;
	rp.max_attempts = 5;
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_interceptor(pl, &ia), 0);
	assert_int_equal(sx_pipeline_add_retry(bare, &rp, 0), 0);
	assert_int_equal(sx_breaker_create(&stop), 0);
	sx_breaker_trip(stop);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, stop, NULL), -ECANCELED);
	assert_int_equal(sx_pipeline_call(bare, counting_action, NULL, stop, NULL), -ECANCELED);
	assert_int_equal(runs, 0);
	assert_int_equal(a.befores, 0);
	sx_breaker_release(stop);
	sx_pipeline_destroy(pl);
	sx_pipeline_destroy(bare);
}

/* Sleeps (intptr_t)arg ms: a call that is slow by its own length. */
static int sleeping_action(sx_call *call)
{
	tu_sleep_ns((uint64_t)(intptr_t)call->arg * MS);
	return 0;
}

/* A circuit layer reports the inner layers' latency when the circuit has a slow-call threshold:
 * a call longer than it is slow, one far shorter is not; without a threshold nothing is slow. */
static void test_circuit_layer_reports_latency(void **state)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_circuit *fast_c, *slow_c, *none_c;
	sx_pipeline *fast_pl = pipeline(NULL), *slow_pl = pipeline(NULL), *none_pl = pipeline(NULL);
	sx_circuit_metrics m;

	(void)state;
	co.min_calls = 101; /* the rates never trip it */
	co.slow_call_ns = MS;
	assert_int_equal(sx_circuit_create(&co, &slow_c), 0);
	co.slow_call_ns = 600 * SEC;
	assert_int_equal(sx_circuit_create(&co, &fast_c), 0);
	co.slow_call_ns = 0;
	assert_int_equal(sx_circuit_create(&co, &none_c), 0);
	assert_int_equal(sx_pipeline_add_circuit(slow_pl, slow_c), 0);
	assert_int_equal(sx_pipeline_add_circuit(fast_pl, fast_c), 0);
	assert_int_equal(sx_pipeline_add_circuit(none_pl, none_c), 0);
	for (int i = 0; i < 2; i++) {
		void *ms3 = (void *)(intptr_t)3;

		assert_int_equal(sx_pipeline_call(slow_pl, sleeping_action, ms3, NULL, NULL), 0);
		assert_int_equal(sx_pipeline_call(fast_pl, sleeping_action, ms3, NULL, NULL), 0);
		assert_int_equal(sx_pipeline_call(none_pl, sleeping_action, ms3, NULL, NULL), 0);
	}
	sx_circuit_snapshot(slow_c, &m);
	assert_int_equal(m.calls, 2);
	assert_int_equal(m.slow, 2);
	sx_circuit_snapshot(fast_c, &m);
	assert_int_equal(m.calls, 2);
	assert_int_equal(m.slow, 0);
	sx_circuit_snapshot(none_c, &m);
	assert_int_equal(m.calls, 2);
	assert_int_equal(m.slow, 0);
	sx_pipeline_destroy(slow_pl);
	sx_pipeline_destroy(fast_pl);
	sx_pipeline_destroy(none_pl);
	sx_circuit_destroy(slow_c);
	sx_circuit_destroy(fast_c);
	sx_circuit_destroy(none_c);
}

/* ---- timeouts ------------------------------------------------------------------------------- */

/* Waits on the call's breaker for up to 30 s; returns the breaker's code. */
static int waiting_action(sx_call *call)
{
	assert_non_null(call->breaker);
	assert_int_equal(sx_breaker_wait(call->breaker, 30 * (int64_t)SEC), 0);
	return sx_breaker_err(call->breaker);
}

static unsigned spin_seen_done;

/* Ignores the breaker for 100 ms (work that cannot be interrupted), noting when it tripped. */
static int stubborn_action(sx_call *call)
{
	uint64_t t0 = tu_now_ns();

	while (tu_now_ns() - t0 < 100 * MS)
		if (sx_breaker_done(call->breaker))
			__atomic_store_n(&spin_seen_done, 1, __ATOMIC_RELEASE);
	assert_int_equal(sx_sem_in_use(bh_sem), 1); /* still held */
	return 0;
}

static void test_timeout_trips_and_holds_inner_permits(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool);
	uint64_t t0;

	(void)state;
	assert_int_equal(sx_sem_create(NULL, 1, &bh_sem), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 30 * MS), 0);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, bh_sem, 0), 0);
	t0 = tu_now_ns();
	assert_int_equal(sx_pipeline_call(pl, waiting_action, NULL, NULL, NULL), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 >= 30 * MS);
	assert_true(tu_now_ns() - t0 < 10 * SEC);
	assert_int_equal(sx_sem_in_use(bh_sem), 0);
	/* An action that does not stop: the permit stays taken until it returns. */
	assert_int_equal(sx_pipeline_call(pl, stubborn_action, NULL, NULL, NULL), -ETIMEDOUT);
	assert_int_equal(__atomic_load_n(&spin_seen_done, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(sx_sem_in_use(bh_sem), 0);
	/* The thread's breaker was handed to the watch: the next call gets a fresh one. */
	assert_int_equal(sx_pipeline_call(pl, ok_action, NULL, NULL, NULL), 0);
	expect_counts(pl, 3, 2, 0, 0, 2, 0);
	sx_pipeline_destroy(pl);
	sx_sem_destroy(bh_sem);
	sx_pool_destroy(pool);
}

static sx_breaker *outer_stop;

static int trip_outer_then_wait(sx_call *call)
{
	assert_ptr_not_equal(call->breaker, outer_stop); /* the timeout's child of it */
	sx_breaker_trip(outer_stop);
	return waiting_action(call);
}

/* Returns 0 if the call's breaker has not tripped, else its code. */
static int untripped_action(sx_call *call)
{
	assert_non_null(call->breaker);
	return sx_breaker_err(call->breaker);
}

/* After each timeout, every later call (the thread's breakers alternate between calls, under a
 * caller's stop or not) runs under a breaker that has not tripped, and once both are made again
 * the calls allocate nothing. */
static void test_calls_after_timeouts_run_under_fresh_breakers(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool);
	sx_breaker *stop;
	uint64_t a0;

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(pl, 20 * MS), 0);
	assert_int_equal(sx_breaker_create(&stop), 0);
	for (int round = 0; round < 6; round++) {
		/* rounds 0..2 start on one slot, 3..5 on the other (one call more in between) */
		if (round == 3)
			assert_int_equal(sx_pipeline_call(pl, untripped_action, NULL, NULL, NULL),
			    0);
		assert_int_equal(sx_pipeline_call(pl, waiting_action, NULL, round % 2 ? stop : NULL,
		    NULL), -ETIMEDOUT);
		for (int i = 0; i < 5; i++)
			assert_int_equal(sx_pipeline_call(pl, untripped_action, NULL,
			    i == 2 ? stop : NULL, NULL), 0);
	}
	assert_false(sx_breaker_done(stop));
	a0 = sx_allocations();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sx_pipeline_call(pl, untripped_action, NULL, NULL, NULL), 0);
	assert_int_equal(sx_allocations() - a0, 0);
	sx_breaker_release(stop);
	sx_pipeline_destroy(pl);
	sx_pool_destroy(pool);
}

/* Spins for (intptr_t)arg us, or until its breaker trips: 0, or the breaker's code. */
static int spinning_action(sx_call *call)
{
	uint64_t t0 = tu_now_ns(), d = (uint64_t)(intptr_t)call->arg * 1000;

	while (tu_now_ns() - t0 < d)
		if (sx_breaker_done(call->breaker))
			return sx_breaker_err(call->breaker);
	return 0;
}

/* Calls that end about when the watch comes for them (so that claims land during, just after
 * and long after calls), between calls under a long timeout at the same depth of the same
 * thread: those never see a trip, and each short one ends in time or times out. */
static void test_late_claims_never_reach_a_later_call(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *quick = pipeline(pool), *slow = pipeline(pool);
	uint64_t seed = 7, t0 = tu_now_ns();
	unsigned timed_out = 0, n = 0;

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(quick, 300 * 1000), 0);
	assert_int_equal(sx_pipeline_add_timeout(slow, 600 * SEC), 0);
	while (tu_now_ns() - t0 < SEC || timed_out < 20) {
		intptr_t us = (intptr_t)(tu_rand(&seed) % 2000);
		int rc = sx_pipeline_call(quick, spinning_action, (void *)us, NULL, NULL);

		assert_true(rc == 0 || rc == -ETIMEDOUT);
		timed_out += rc == -ETIMEDOUT;
		assert_int_equal(sx_pipeline_call(slow, untripped_action, NULL, NULL, NULL), 0);
		n++;
		assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS);
	}
	assert_true(timed_out < n);
	sx_pipeline_destroy(quick);
	sx_pipeline_destroy(slow);
	sx_pool_destroy(pool);
}

static void test_timeout_under_a_stop_breaker(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool), *inner2 = pipeline(pool);

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(pl, 20 * SEC), 0);
	assert_int_equal(sx_breaker_create(&outer_stop), 0);
	/* The caller's stop trips during the call: the action's breaker follows it. */
	assert_int_equal(sx_pipeline_call(pl, trip_outer_then_wait, NULL, outer_stop, NULL),
	    -ECANCELED);
	sx_breaker_release(outer_stop);
	/* A stop that stays armed, and a call that times out under it. */
	assert_int_equal(sx_pipeline_add_timeout(inner2, 20 * MS), 0);
	assert_int_equal(sx_breaker_create(&outer_stop), 0);
	assert_int_equal(sx_pipeline_call(inner2, waiting_action, NULL, outer_stop, NULL),
	    -ETIMEDOUT);
	assert_false(sx_breaker_done(outer_stop));
	sx_breaker_release(outer_stop);
	sx_pipeline_destroy(pl);
	sx_pipeline_destroy(inner2);
	sx_pool_destroy(pool);
}

static void test_nested_timeouts_inner_first_and_depth_limit(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool), *deep = pipeline(pool);
	uint64_t t0;

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(pl, 20 * SEC), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 20 * MS), 0);
	t0 = tu_now_ns();
	assert_int_equal(sx_pipeline_call(pl, waiting_action, NULL, NULL, NULL), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 < 10 * SEC);
	for (int i = 0; i < 9; i++)
		assert_int_equal(sx_pipeline_add_timeout(deep, SEC), 0);
	assert_int_equal(sx_pipeline_call(deep, ok_action, NULL, NULL, NULL), -EOVERFLOW);
	sx_pipeline_destroy(pl);
	sx_pipeline_destroy(deep);
	sx_pool_destroy(pool);
}

static void test_shut_down_pool_fails_timeouts_cleanly(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool);

	(void)state;
	assert_int_equal(sx_pipeline_add_timeout(pl, 100 * SEC), 0);
	/* A watch is pending for this thread's record at +100 s: shutdown fires it. */
	assert_int_equal(sx_pipeline_call(pl, ok_action, NULL, NULL, NULL), 0);
	sx_pool_shutdown(pool, SX_DRAIN);
	runs = 0;
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), -ESHUTDOWN);
	assert_int_equal(runs, 0);
	sx_pipeline_destroy(pl);
	sx_pool_destroy(pool);
}

/* ---- thread-specific keys and far deadlines ------------------------------------------------ */

/* The link wraps pthread_key_create (Makefile: TEST_LDFLAGS_test_pipeline): fail_keys makes the
 * next creations fail, the library's included. */
int __real_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));
int __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));
static unsigned fail_keys;
static unsigned keys_failed;

int __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *))
{
	if (__atomic_load_n(&fail_keys, __ATOMIC_ACQUIRE) > 0) {
		__atomic_sub_fetch(&fail_keys, 1, __ATOMIC_ACQ_REL);
		__atomic_add_fetch(&keys_failed, 1, __ATOMIC_ACQ_REL);
		return EAGAIN;
	}
	return __real_pthread_key_create(key, dtor);
}

/* Runs first in this program: the library's thread-index key is created by the first counted
 * call, and the timeout layer's key by the first timeout call. A failed index key costs nothing
 * but the thread's own counter line (the call runs and is counted on the shared one; the next
 * call creates the key). A failed timeout key is an error of that call (nothing run, the
 * application's keys untouched), and the next call creates the key and works. */
static void test_timeout_key_creation_fails_cleanly(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool), *plain = pipeline(NULL);
	sx_pipeline_metrics m;
	pthread_key_t mine;
	int marker;

	(void)state;
	assert_int_equal(__real_pthread_key_create(&mine, NULL), 0);
	assert_int_equal(pthread_setspecific(mine, &marker), 0);
	runs = 0;
	__atomic_store_n(&fail_keys, 1, __ATOMIC_RELEASE);
	assert_int_equal(sx_pipeline_call(plain, counting_action, NULL, NULL, NULL), 0);
	assert_int_equal(keys_failed, 1);
	assert_int_equal(sx_pipeline_call(plain, counting_action, NULL, NULL, NULL), 0);
	assert_int_equal(runs, 2);
	assert_int_equal(sx_pipeline_snapshot(plain, &m), 0);
	assert_int_equal(m.calls, 2);
	assert_int_equal(m.failed, 0);
	assert_ptr_equal(pthread_getspecific(mine), &marker);
	sx_pipeline_destroy(plain);
	keys_failed = 0;
	assert_int_equal(sx_pipeline_add_timeout(pl, 10 * SEC), 0);
	runs = 0;
	__atomic_store_n(&fail_keys, 1, __ATOMIC_RELEASE);
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), -EAGAIN);
	assert_int_equal(keys_failed, 1);
	assert_int_equal(runs, 0);
	assert_ptr_equal(pthread_getspecific(mine), &marker);
	assert_int_equal(sx_pipeline_call(pl, counting_action, NULL, NULL, NULL), 0);
	assert_int_equal(runs, 1);
	assert_ptr_equal(pthread_getspecific(mine), &marker);
	sx_pipeline_destroy(pl);
	sx_pool_destroy(pool);
	assert_int_equal(pthread_key_delete(mine), 0);
}

/* Waits 50 ms and says whether its breaker tripped meanwhile. */
static int watch_50ms(sx_call *call)
{
	uint64_t t0 = tu_now_ns();

	while (tu_now_ns() - t0 < 50 * MS)
		if (call->breaker != NULL && sx_breaker_done(call->breaker))
			return -ETIMEDOUT;
	return 0;
}

/* A timeout too long to add to the clock is no timeout at all, not one in the past. */
static void test_huge_timeout_saturates(void **state)
{
	sx_pool *pool = tu_pool(1);
	uint64_t lengths[] = { UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / 2 + 12345 };

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		sx_pipeline *pl = pipeline(pool);

		assert_int_equal(sx_pipeline_add_timeout(pl, lengths[i]), 0);
		assert_int_equal(sx_pipeline_call(pl, watch_50ms, NULL, NULL, NULL), 0);
		sx_pipeline_destroy(pl);
	}
	sx_pool_destroy(pool);
}

/* ---- zero allocations per call -------------------------------------------------------------- */

static void test_five_policies_allocate_nothing_per_call(void **state)
{
	sx_pool *pool = tu_pool(1);
	sx_pipeline *pl = pipeline(pool);
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_ratelimit *rl;
	sx_circuit *c;
	sx_sem *sem;
	uint64_t a0;

	(void)state;
	ro.rate = 1000000000;
	ro.burst = SX_RATELIMIT_MAX_BURST;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	co.slow_call_ns = SEC;
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	assert_int_equal(sx_sem_create(NULL, 100, &sem), 0);
	rp.max_attempts = 3;
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, 0), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, SEC), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_circuit(pl, c), 0);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, sem, 0), 0);
	for (int i = 0; i < 1000; i++) /* warm up: the thread's record, breaker, timer nodes */
		assert_int_equal(sx_pipeline_call(pl, ok_action, NULL, NULL, NULL), 0);
	a0 = sx_allocations();
	for (int i = 0; i < 100000; i++)
		assert_int_equal(sx_pipeline_call(pl, ok_action, NULL, NULL, NULL), 0);
	assert_int_equal(sx_allocations() - a0, 0);
	sx_pipeline_destroy(pl);
	sx_ratelimit_destroy(rl);
	sx_circuit_destroy(c);
	sx_sem_destroy(sem);
	sx_pool_destroy(pool);
}

/* ---- promise steps -------------------------------------------------------------------------- */

static int add_one(sx_call *call)
{
	assert_non_null(call->ctx);
	call->out = (void *)((intptr_t)call->last + (intptr_t)call->arg);
	return 0;
}

static int first_step(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx, (void)last;
	*out = (void *)(intptr_t)40;
	return 0;
}

static void test_promise_steps_through_a_pipeline(void **state)
{
	sx_pool *pool = tu_pool(2);
	sx_pipeline *pl = pipeline(pool);
	struct counter a = { .name = 'a' };
	sx_interceptor ia = ic_of(&a);
	sx_pipeline_step_arg s1 = { pl, add_one, (void *)(intptr_t)1 };
	sx_pipeline_step_arg s2 = { pl, add_one, (void *)(intptr_t)1 };
	sx_promise *p, *q, *r;
	void *v = NULL;

	(void)state;
	assert_int_equal(sx_pipeline_add_interceptor(pl, &ia), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 10 * SEC), 0);
	assert_int_equal(sx_promise_run(pool, first_step, NULL, &p), 0);
	assert_int_equal(sx_promise_then(p, sx_pipeline_step, &s1, &q), 0);
	assert_int_equal(sx_promise_then(q, sx_pipeline_step, &s2, &r), 0);
	assert_int_equal(sx_promise_get(r, 30 * (int64_t)SEC, &v), 0);
	assert_int_equal((intptr_t)v, 42);
	assert_int_equal(a.befores, 2);
	assert_balanced(&a);
	sx_promise_release(p);
	sx_promise_release(q);
	sx_promise_release(r);
	sx_pipeline_destroy(pl);
	sx_pool_destroy(pool);
}

/* ---- every after exactly once, under everything, from many threads -------------------------- */

#define MIXERS 8

static sx_pipeline *mix_pl;
static sx_sem *mix_sem;
static struct counter mix_outer = { .name = 'o', .refuse_every = 13 };
static struct counter mix_mid = { .name = 'm', .refuse_every = 7 };
static struct counter mix_inner = { .name = 'i', .refuse_every = 11 };

/* arg: a seed. Sleeps, waits on the breaker, fails or succeeds at random. */
static int mixed_action(sx_call *call)
{
	uint64_t rng = (uintptr_t)call->arg * 2654435761u + call->attempt;
	uint64_t r = tu_rand(&rng);

	switch (r % 6) {
	case 0:
		return -EIO;
	case 1: /* outlives the 2 ms timeout unless told to stop */
		return sx_breaker_wait(call->breaker, 50 * (int64_t)MS) == 0 ?
		    sx_breaker_err(call->breaker) : 0;
	case 2:
		tu_sleep_ns((r >> 8) % 3000000);
		return 0;
	case 3:
		return -ECANCELED;
	default:
		return 0;
	}
}

static void *mixer(void *arg)
{
	uint64_t rng = (uintptr_t)arg + 1;
	unsigned n = 300 * tu_stress_scale();

	for (unsigned i = 0; i < n; i++) {
		sx_breaker *stop = NULL;
		int rc;

		if (tu_rand(&rng) % 5 == 0) {
			assert_int_equal(sx_breaker_create(&stop), 0);
			if (tu_rand(&rng) % 2 == 0)
				sx_breaker_trip(stop);
		}
		rc = sx_pipeline_call(mix_pl, mixed_action, (void *)(uintptr_t)tu_rand(&rng), stop,
		    NULL);
		assert_true(rc <= 0);
		if (stop != NULL)
			sx_breaker_release(stop);
	}
	return NULL;
}

static void test_every_after_exactly_once_many_threads(void **state)
{
	sx_pool *pool = tu_pool(2);
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_interceptor io = ic_of(&mix_outer), im = ic_of(&mix_mid), ii = ic_of(&mix_inner);
	pthread_t t[MIXERS];

	(void)state;
	mix_pl = pipeline(pool);
	assert_int_equal(sx_sem_create(NULL, 3, &mix_sem), 0);
	rp.max_attempts = 3;
	rp.backoff = SX_BACKOFF_CONSTANT;
	rp.base_ns = 100000;
	assert_int_equal(sx_pipeline_add_interceptor(mix_pl, &io), 0);
	assert_int_equal(sx_pipeline_add_timeout(mix_pl, 20 * MS), 0);
	assert_int_equal(sx_pipeline_add_retry(mix_pl, &rp, 0), 0);
	assert_int_equal(sx_pipeline_add_interceptor(mix_pl, &im), 0);
	assert_int_equal(sx_pipeline_add_timeout(mix_pl, 2 * MS), 0);
	assert_int_equal(sx_pipeline_add_bulkhead(mix_pl, mix_sem, SX_PIPELINE_WAIT), 0);
	assert_int_equal(sx_pipeline_add_interceptor(mix_pl, &ii), 0);
	for (uintptr_t i = 0; i < MIXERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, mixer, (void *)i), 0);
	for (int i = 0; i < MIXERS; i++)
		pthread_join(t[i], NULL);
	assert_balanced(&mix_outer);
	assert_balanced(&mix_mid);
	assert_balanced(&mix_inner);
	assert_true(mix_outer.befores > 0 && mix_inner.befores > mix_inner.refused);
	assert_int_equal(sx_sem_in_use(mix_sem), 0);
	sx_pipeline_destroy(mix_pl);
	sx_sem_destroy(mix_sem);
	sx_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_key_creation_fails_cleanly), /* first: see there */
		cmocka_unit_test(test_huge_timeout_saturates),
		cmocka_unit_test(test_nesting_order),
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_rate_limit_refuses_without_running),
		cmocka_unit_test(test_keyed_rate_limit_per_client),
		cmocka_unit_test(test_bulkhead_rejects_and_gives_back),
		cmocka_unit_test(test_keyed_bulkhead_and_circuit),
		cmocka_unit_test(test_circuit_and_retry),
		cmocka_unit_test(test_retry_then_success_and_fallback),
		cmocka_unit_test(test_tripped_stop_ends_before_any_layer),
		cmocka_unit_test(test_tripped_stop_ends_a_retry_before_its_first_attempt),
		cmocka_unit_test(test_circuit_layer_reports_latency),
		cmocka_unit_test(test_timeout_trips_and_holds_inner_permits),
		cmocka_unit_test(test_timeout_under_a_stop_breaker),
		cmocka_unit_test(test_calls_after_timeouts_run_under_fresh_breakers),
		cmocka_unit_test(test_late_claims_never_reach_a_later_call),
		cmocka_unit_test(test_nested_timeouts_inner_first_and_depth_limit),
		cmocka_unit_test(test_shut_down_pool_fails_timeouts_cleanly),
		cmocka_unit_test(test_five_policies_allocate_nothing_per_call),
		cmocka_unit_test(test_promise_steps_through_a_pipeline),
		cmocka_unit_test(test_every_after_exactly_once_many_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
