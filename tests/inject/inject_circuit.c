/*
 * Fault injection: circuit breakers (with a pool's timer service for half-open) and pipelines
 * (rate limit, bulkhead, circuit, timeout, retry, fallback, interceptor, promise steps). Every
 * allocation, thread and key creation fails in turn; each call returns its documented error or
 * succeeds, and again with faults off; every interceptor's after runs once per before, every
 * state callback once per transition; nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/breaker.h>
#include <strix/circuit.h>
#include <strix/error.h>
#include <strix/pipeline.h>
#include <strix/pool.h>
#include <strix/promise.h>
#include <strix/ratelimit.h>
#include <strix/retry.h>
#include <strix/sem.h>

#define MS 1000000ll

/* ---- circuit ------------------------------------------------------------------------------- */

static int transitions, last_to;
static uint32_t last_gen;

static void on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c; (void)from; (void)arg;
	__atomic_store_n(&last_to, to, __ATOMIC_SEQ_CST);
	__atomic_store_n(&last_gen, m->generation, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&transitions, 1, __ATOMIC_SEQ_CST);
}

static void scenario_circuit(void)
{
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	sx_circuit_permit pm;
	sx_circuit_metrics m;
	sx_pool *p = fi_make_pool(1, NULL);
	sx_circuit *c;

	transitions = 0;
	o.window_size = 4;
	o.min_calls = 4;
	o.failure_rate = 0.5;
	o.open_ns = 200 * MS; /* long enough to see it open on a slow machine */
	o.probe_lease_ns = 10000 * MS;
	o.on_state = on_state;
	o.pool = p;
	FI_CREATE(c, sx_circuit_create(&o, &c), -ENOMEM);
	for (int i = 0; i < 4; i++) {
		FI_CHECK(sx_circuit_acquire(c, &pm) == 0);
		FI_CHECK(sx_circuit_release(c, pm, i >= 2 ? -EIO : 0, 1000) == 0);
	}
	FI_CHECK(transitions == 1 && last_to == SX_CIRCUIT_OPEN, "%d %d", transitions, last_to);
	FI_CHECK(sx_circuit_acquire(c, &pm) == SX_ECIRCUIT_OPEN && pm == 0);
	/* Half-open: by the timer (its add may have failed: then the next look does it). */
	FI_WAIT_FOR(sx_circuit_state(c) == SX_CIRCUIT_HALF_OPEN);
	FI_CHECK(transitions == 2, "%d", transitions);
	FI_CHECK(sx_circuit_acquire(c, &pm) == 0);
	FI_CHECK(sx_circuit_release(c, pm, 0, 1000) == 0);
	FI_CHECK(sx_circuit_state(c) == SX_CIRCUIT_CLOSED);
	FI_CHECK(transitions == 3, "%d", transitions);
	FI_CHECK(sx_circuit_force(c, SX_CIRCUIT_FORCED_OPEN) == 0);
	FI_CHECK(sx_circuit_acquire(c, &pm) == SX_ECIRCUIT_OPEN);
	FI_CHECK(sx_circuit_snapshot(c, &m) == 0 && m.state == SX_CIRCUIT_FORCED_OPEN);
	FI_CHECK(sx_circuit_force(c, SX_CIRCUIT_CLOSED) == 0);
	FI_CHECK(transitions == 5, "%d", transitions);
	sx_circuit_destroy(c);
	sx_pool_destroy(p);
}

/* ---- pipeline ------------------------------------------------------------------------------ */

static int befores, afters, actions, fallbacks;

static int ic_before(void *self, sx_call *call, uint64_t *token)
{
	(void)self; (void)call;
	*token = 77;
	__atomic_add_fetch(&befores, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void ic_after(void *self, sx_call *call, uint64_t token, int result)
{
	(void)self; (void)call; (void)result;
	FI_CHECK(token == 77);
	__atomic_add_fetch(&afters, 1, __ATOMIC_SEQ_CST);
}

/* Fails on the first attempt (retried), succeeds on the second. */
static int action(sx_call *call)
{
	__atomic_add_fetch(&actions, 1, __ATOMIC_SEQ_CST);
	call->out = call->arg;
	return call->attempt == 1 ? -EIO : 0;
}

/* Waits until its timeout's breaker trips. */
static int slow_action(sx_call *call)
{
	__atomic_add_fetch(&actions, 1, __ATOMIC_SEQ_CST);
	FI_CHECK(call->breaker != NULL);
	FI_CHECK(sx_breaker_wait(call->breaker, -1) == 0);
	return sx_breaker_err(call->breaker);
}

static int fallback(sx_call *call, int err, void *arg)
{
	(void)call; (void)arg;
	__atomic_add_fetch(&fallbacks, 1, __ATOMIC_SEQ_CST);
	return err;
}

static int tag = 5;

static void scenario_policy(void)
{
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_retry_policy rp = SX_RETRY_POLICY_INIT;
	sx_interceptor ic = { ic_before, ic_after, NULL };
	sx_pipeline *pl, *slow;
	sx_ratelimit *rl;
	sx_circuit *c;
	sx_sem *sem;
	sx_pool *p = fi_make_pool(1, NULL);
	sx_promise *pr;
	sx_breaker *stop;
	void *out;
	int rc;

	befores = afters = actions = fallbacks = 0;
	ro.rate = 1000000;
	FI_CREATE(rl, sx_ratelimit_create(&ro, &rl), -ENOMEM);
	FI_CREATE(sem, sx_sem_create(p, 4, &sem), -ENOMEM);
	FI_CREATE(c, sx_circuit_create(&co, &c), -ENOMEM);
	rp.max_attempts = 3;
	po.pool = p;
	FI_CREATE(pl, sx_pipeline_create(&po, &pl), -ENOMEM);
	/* Adding documents no -ENOMEM: the layers live in the pipeline. */
	FI_CHECK(sx_pipeline_add_interceptor(pl, &ic) == 0);
	FI_CHECK(sx_pipeline_add_ratelimit(pl, rl, 0) == 0);
	FI_CHECK(sx_pipeline_add_timeout(pl, 10000 * MS) == 0);
	FI_CHECK(sx_pipeline_add_retry(pl, &rp, 0) == 0);
	FI_CHECK(sx_pipeline_add_fallback(pl, fallback, NULL, NULL) == 0);
	FI_CHECK(sx_pipeline_add_circuit(pl, c) == 0);
	FI_CHECK(sx_pipeline_add_bulkhead(pl, sem, 0) == 0);

	for (int i = 0; i < 3; i++) {
		int b0 = befores, a0 = actions;

		out = NULL;
		rc = sx_pipeline_call(pl, action, &tag, NULL, &out);
		if (rc != 0) {
			/* The timeout could not be set up: its inner layers did not run. */
			FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "call: %d (%s)", rc,
			    sx_strerror(rc));
			FI_CHECK(actions == a0, "the action ran although the call failed (%d)", rc);
			fi_off();
			FI_CHECK(befores == afters);
			b0 = befores;
			a0 = actions;
			rc = sx_pipeline_call(pl, action, &tag, NULL, &out);
		}
		FI_CHECK(rc == 0 && out == &tag, "call: %d", rc);
		FI_CHECK(actions == a0 + 2 && befores == b0 + 1, "actions %d befores %d",
		    actions - a0, befores - b0);
		FI_CHECK(befores == afters, "befores %d afters %d", befores, afters);
	}
	FI_CHECK(sx_sem_in_use(sem) == 0);

	/* A timeout that fires: the action is told, the call returns -ETIMEDOUT. */
	FI_CREATE(slow, sx_pipeline_create(&po, &slow), -ENOMEM);
	FI_CHECK(sx_pipeline_add_timeout(slow, 5 * MS) == 0);
	rc = sx_pipeline_call(slow, slow_action, NULL, NULL, NULL);
	if (rc != -ETIMEDOUT) {
		FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "slow call: %d (%s)", rc, sx_strerror(rc));
		fi_off();
		rc = sx_pipeline_call(slow, slow_action, NULL, NULL, NULL);
	}
	FI_CHECK(rc == -ETIMEDOUT, "slow call: %d", rc);

	/*
	 * A promise step through the pipeline. The chain has a breaker from the start (run_with),
	 * so the step's timeout links a child breaker to it and releases it: a step run without one
	 * would keep a breaker in its worker's per-thread record for the process's lifetime (by
	 * design), which the end-of-run block count would take for a leak.
	 */
	FI_CREATE(stop, sx_breaker_create(&stop), -ENOMEM, -EAGAIN);
	{
		static sx_pipeline_step_arg sa;

		sa = (sx_pipeline_step_arg){ pl, action, &tag };
		FI_CREATE(pr, sx_promise_run_with(p, stop, sx_pipeline_step, &sa, &pr), -ENOMEM,
		    -EAGAIN);
		rc = sx_promise_get(pr, -1, &out);
		if (rc == -ENOMEM || rc == -EAGAIN) {
			fi_off();
			rc = sx_promise_get(pr, -1, &out);
			if (rc != 0) {
				/* the step's own call could not set up its timeout */
				FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "%d", rc);
				sx_promise_release(pr);
				FI_CREATE(pr, sx_promise_run_with(p, stop, sx_pipeline_step, &sa,
				    &pr), -ENOMEM);
				rc = sx_promise_get(pr, -1, &out);
			}
		}
		FI_CHECK(rc == 0 && out == &tag, "step: %d", rc);
		sx_promise_release(pr);
	}
	sx_breaker_release(stop);
	FI_CHECK(befores == afters, "befores %d afters %d", befores, afters);
	FI_CHECK(sx_pool_wait_idle(p) == 0);
	sx_pipeline_destroy(slow);
	sx_pipeline_destroy(pl);
	sx_circuit_destroy(c);
	sx_sem_destroy(sem);
	sx_ratelimit_destroy(rl);
	sx_pool_destroy(p);
}

FI_TESTS(circuit, scenario_circuit)
FI_TESTS(policy, scenario_policy)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(circuit),
		FI_TEST_PAIR(policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
