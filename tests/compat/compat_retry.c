/*
 * compat: github.com/kamilsk/retry's test suite (v5), ported to strix retry (strix/retry.h).
 *
 * Upstream: github.com/kamilsk/retry @ 0f199afc6bb27dac6e7953fe808839c0aa4e8976 (v5).
 *
 * Mapping: retry.Do(breaker, action, strategies...) is sx_retry(fn, arg, &policy, stop); a Go
 * attempt index a (0 for the first call) is strix iteration a + 1; strategy.Limit(n) is
 * max_attempts = n; strategy.Backoff(algorithm) is the policy's backoff curve, whose n-th delay
 * (after the n-th failure) comes before Go attempt n; strategy.Wait(d...) is the caller choosing
 * each wait with sx_retrier_set_delay. A cancelled context is a tripped manual breaker. Waits
 * run on a virtual clock (the policy's clock with sleep_ns), so every delay is checked exactly.
 *
 * Upstream tests the strategies as bare functions of (breaker, attempt, error); strix has no such
 * functions, so each table case runs the whole loop up to the attempt in question and checks
 * whether that attempt happens and what wait came before it. Where a strategy alone would
 * allow an attempt on an interrupted breaker, the loop does not: sx_retry checks its stop before
 * every attempt, as upstream's Do does too, so those cases pin "no attempt, the stop's code" and
 * the table says "loop level".
 *
 * Go test                                      status
 * ------------------------------------------   -----------------------------------------------
 * TestDo/successful action call                ported
 * TestDo/failed action call                    ported
 * TestDo/action call with interrupted breaker  ported
 * TestDo/have no action call                   deliberate difference: Limit(0) means no attempt
 *                                              upstream; in strix max_attempts 0 means no limit
 *                                              and the first call always happens (it is attempt
 *                                              1); pinned
 * TestDo/preserve context values               ported (fn's argument reaches every attempt)
 * TestGo (its cases and two panic cases)       not applicable: runs the action on a goroutine and
 *                                              recovers panics; C has no panics and the blocking
 *                                              form runs fn on the caller's thread (the
 *                                              asynchronous retry is Workshop's RecoverAndRetry,
 *                                              see compat_workshop.c)
 * TestContext, TestConvert                     not applicable: adapting Go channels to Go
 *                                              contexts
 * TestError, TestUnwrap (package retry)        not applicable: Go error types and unwrapping
 * TestConstant                                 ported
 * TestIncremental                              not applicable: strix's linear backoff has no
 *                                              offset (base * n only)
 * TestLinear                                   ported (index 0 is the first call: no wait)
 * TestExponential                              deliberate difference: strix's first delay is
 *                                              base (base * factor^(n-1)), upstream's first wait
 *                                              is base * factor; pinned: the same ten values,
 *                                              one attempt earlier
 * TestBinaryExponential                        as TestExponential (factor 0 means 2)
 * TestFibonacci (and /performance)             ported
 * TestFull, TestEqual, TestDeviation           deliberate difference: strix's generator is
 *                                              splitmix64 (documented, seeded by the caller), not
 *                                              Go's math/rand, so the five values differ; pinned
 *                                              to an independent splitmix64 reference, with the
 *                                              same inputs (seed 0, 1 ms, factor 0.5)
 * TestNormalDistribution                       not applicable: no normal-distribution jitter
 * TestLimit, all 9                             ported (three "interrupted" cases loop level)
 * TestDelay, all 6                             not applicable: strix never waits before the
 *                                              first attempt
 * TestWait, all 15                             ported (interrupted cases loop level)
 * TestBackoff, all 6                           ported with a linear (attempt * 1 ms) curve or a
 *                                              constant 1 h one (interrupted: loop level)
 * TestBackoffWithJitter/first call, /first
 *   call with error, /first call with
 *   interrupted breaker, /next call with
 *   interrupted breaker                        ported (full jitter on a 1 h curve)
 * TestBackoffWithJitter/next call, /next call
 *   with error                                 not applicable: a user-defined transformation
 *                                              (d - 1 h); strix's jitter kinds are fixed
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/retry.h>

#define MS 1000000ull
#define SEC (1000 * MS)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define FAILURE (-EIO)   /* the actions' Error("failure") */

/* ---- a virtual clock recording the last wait ------------------------------------------------- */

typedef struct vclock {
	uint64_t now;
	unsigned nwaits;
	uint64_t last;
} vclock;

static uint64_t v_now(void *ctx)
{
	return ((vclock *)ctx)->now;
}

static void v_sleep(void *ctx, int64_t ns)
{
	vclock *v = ctx;

	v->nwaits++;
	v->last = ns;
	v->now += ns;
}

/* ---- TestDo ------------------------------------------------------------------------------------ */

struct counted {
	unsigned attempts;
	int ret;               /* what every attempt returns */
	unsigned succeed_at;   /* 0: never; else the iteration that returns 0 */
	const void *expect_arg;
	bool arg_ok;
};

static int counted_fn(sx_retrier *r, void *arg)
{
	struct counted *c = arg;

	c->attempts++;
	assert_int_equal(sx_retrier_iteration(r), c->attempts);
	if (c->succeed_at != 0 && c->attempts == c->succeed_at)
		return 0;
	return c->ret;
}

static void test_Do__successful_action_call(void **state)
{
	struct counted c = { 0, 0, 0, NULL, false };
	vclock vc = { 0, 0, 0 };
	sx_clock clk = { v_now, &vc, v_sleep };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;   /* strategy.Wait(time.Hour) */
	p.base_ns = HOUR;
	p.clock = &clk;
	assert_int_equal(sx_retry(counted_fn, &c, &p, NULL), 0);
	assert_int_equal(c.attempts, 1);
	assert_int_equal(vc.nwaits, 0);
}

static void test_Do__failed_action_call(void **state)
{
	struct counted c = { 0, FAILURE, 0, NULL, false };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;

	(void)state;
	p.max_attempts = 10;               /* strategy.Limit(10) */
	assert_int_equal(sx_retry(counted_fn, &c, &p, NULL), FAILURE);
	assert_int_equal(c.attempts, 10);
}

static void test_Do__action_call_with_interrupted_breaker(void **state)
{
	struct counted c = { 0, FAILURE, 0, NULL, false };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_breaker *b = NULL;

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;   /* strategy.Delay(time.Hour) */
	p.base_ns = HOUR;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_retry(counted_fn, &c, &p, b), -ECANCELED);
	assert_int_equal(c.attempts, 0);
	sx_breaker_release(b);
}

static void test_Do__have_no_action_call(void **state)
{
	/* Deliberate difference: max_attempts 0 is "no limit", and there is no zero-attempt
	 * policy; the first call always happens. Pinned: 0 keeps retrying until success. */
	struct counted c = { 0, FAILURE, 5, NULL, false };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;

	(void)state;
	p.max_attempts = 0;
	assert_int_equal(sx_retry(counted_fn, &c, &p, NULL), 0);
	assert_int_equal(c.attempts, 5);
}

static int value_fn(sx_retrier *r, void *arg)
{
	const char *val = arg;

	(void)r;
	assert_string_equal(val, "value");
	return 0;
}

static void test_Do__preserve_context_values(void **state)
{
	char val[] = "value";

	(void)state;
	assert_int_equal(sx_retry(value_fn, val, NULL, NULL), 0);
}

/* ---- backoff ----------------------------------------------------------------------------------- */

static void delays(const sx_retry_policy *p, uint64_t *out, unsigned n)
{
	sx_backoff bo;

	assert_int_equal(sx_backoff_init(&bo, p), 0);
	for (unsigned i = 0; i < n; i++)
		out[i] = sx_backoff_next(&bo);
}

static void test_Constant(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[10];

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = MS;
	delays(&p, d, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(d[i], MS);
}

static void test_Linear(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[9];

	(void)state;
	p.backoff = SX_BACKOFF_LINEAR;
	p.base_ns = MS;
	delays(&p, d, 9);
	/* Upstream's i = 0 value (0) belongs to the first call, which never waits. */
	for (unsigned i = 1; i < 10; i++)
		assert_int_equal(d[i - 1], MS * i);
}

static void check_exponential(double factor, double base)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[10];

	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.base_ns = SEC;
	p.factor = factor;
	delays(&p, d, 10);
	/* Upstream's values for i = 0..9 are strix's first ten delays: strix's first delay is the
	 * base (deliberate difference: upstream's first wait, at attempt 1, is base * factor). */
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(d[i], (uint64_t)(SEC * pow(base, (double)i)));
}

static void test_Exponential(void **state)
{
	(void)state;
	check_exponential(3, 3);
}

static void test_BinaryExponential(void **state)
{
	(void)state;
	check_exponential(0, 2);   /* factor 0 means 2 */
	check_exponential(2, 2);
}

static void test_Fibonacci(void **state)
{
	static const unsigned seq[] = { 0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233 };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[9];

	(void)state;
	p.backoff = SX_BACKOFF_FIBONACCI;
	p.base_ns = MS;
	delays(&p, d, 9);
	for (unsigned i = 1; i < 10; i++)
		assert_int_equal(d[i - 1], MS * seq[i]);
}

static void test_Fibonacci__performance(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[50];

	(void)state;
	p.backoff = SX_BACKOFF_FIBONACCI;
	p.base_ns = MS;
	delays(&p, d, 50);
	assert_int_equal(d[49], MS * 12586269025ull);   /* F(50) */
}

/* ---- jitter: splitmix64 reference (deliberate difference from Go's math/rand) ----------------- */

static uint64_t ref_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double ref_u(uint64_t *s)
{
	return ldexp((double)(ref_mix(s) >> 11), -53);
}

static void jitter_delays(int kind, double f, uint64_t *d, unsigned n)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;

	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = MS;
	p.jitter = kind;
	p.deviation = f;
	p.seed = 0;
	delays(&p, d, n);
}

static void test_Full(void **state)
{
	uint64_t d[5], again[5], s = 0;

	(void)state;
	jitter_delays(SX_JITTER_FULL, 0, d, 5);
	jitter_delays(SX_JITTER_FULL, 0, again, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(d[i], (uint64_t)((double)MS * ref_u(&s)));
		assert_true(d[i] < MS);
		assert_int_equal(d[i], again[i]);   /* same seed, same delays */
	}
}

static void test_Equal(void **state)
{
	uint64_t d[5], s = 0;

	(void)state;
	jitter_delays(SX_JITTER_EQUAL, 0, d, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(d[i], MS / 2 + (uint64_t)((double)(MS / 2) * ref_u(&s)));
		assert_true(d[i] >= MS / 2 && d[i] < MS);
	}
}

static void test_Deviation(void **state)
{
	uint64_t d[5], s = 0;

	(void)state;
	jitter_delays(SX_JITTER_DEVIATION, 0.5, d, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(d[i], (uint64_t)((double)MS * (0.5 + 1.0 * ref_u(&s))));
		assert_true(d[i] >= MS / 2 && d[i] <= MS * 3 / 2);
	}
}

/* ---- strategy tables ---------------------------------------------------------------------------- */

enum strat { LIMIT2, WAIT, BACKOFF_LINEAR, BACKOFF_HOUR, JITTER_HOUR };

struct scase {
	enum strat strat;
	unsigned attempt;          /* Go attempt index in question */
	bool interrupted;          /* the breaker is done by that attempt */
	int err;                   /* the previous error (ignored by every strategy) */
	bool expected;             /* does attempt `attempt` happen (strix, loop level) */
	uint64_t wait;             /* the wait right before it (when it happens and attempt > 0) */
	unsigned ndur;             /* TestWait's durations */
	uint64_t dur[2];
};

struct srun {
	const struct scase *c;
	sx_breaker *stop;
	vclock *vc;
	unsigned calls;
	bool reached;
	uint64_t wait_before;
};

static int strat_fn(sx_retrier *r, void *arg)
{
	struct srun *s = arg;
	unsigned it = sx_retrier_iteration(r);   /* Go attempt it - 1 */

	s->calls++;
	if (it == s->c->attempt + 1) {
		s->reached = true;
		s->wait_before = it > 1 ? s->vc->last : 0;
		return 0;
	}
	if (s->c->interrupted && it == s->c->attempt)
		assert_int_equal(sx_breaker_trip(s->stop), 0);
	if (s->c->strat == WAIT && s->c->ndur > 0) {
		/* Go's Wait: before attempt k >= 1, durations[min(k, len) - 1]; k = it here. */
		unsigned k = it < s->c->ndur ? it : s->c->ndur;

		assert_int_equal(sx_retrier_set_delay(r, (int64_t)s->c->dur[k - 1]), 0);
	}
	return s->c->err != 0 ? s->c->err : FAILURE;
}

static void test_strategy_case(void **state)
{
	const struct scase *c = *state;
	vclock vc = { 0, 0, 0 };
	sx_clock clk = { v_now, &vc, v_sleep };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	struct srun s = { c, NULL, &vc, 0, false, 0 };
	uint64_t t0 = tu_now_ns();
	int rc;

	p.clock = &clk;
	switch (c->strat) {
	case LIMIT2:
		p.max_attempts = 2;
		break;
	case WAIT:
		break;
	case BACKOFF_LINEAR:
		p.backoff = SX_BACKOFF_LINEAR;   /* attempt * 1 ms */
		p.base_ns = MS;
		break;
	case BACKOFF_HOUR:
		p.backoff = SX_BACKOFF_CONSTANT;
		p.base_ns = HOUR;
		break;
	case JITTER_HOUR:
		p.backoff = SX_BACKOFF_CONSTANT;
		p.base_ns = HOUR;
		p.jitter = SX_JITTER_FULL;
		break;
	}
	assert_int_equal(sx_breaker_create(&s.stop), 0);
	if (c->interrupted && c->attempt == 0)
		assert_int_equal(sx_breaker_trip(s.stop), 0);

	rc = sx_retry(strat_fn, &s, &p, s.stop);

	assert_int_equal(s.reached, c->expected);
	if (c->expected) {
		assert_int_equal(rc, 0);
		assert_int_equal(s.calls, c->attempt + 1);
		assert_int_equal(s.wait_before, c->wait);
		if (c->attempt == 0)
			assert_int_equal(vc.nwaits, 0);
	} else if (c->strat == LIMIT2 && c->attempt >= 2) {
		/* the limit ends the loop before the attempt (and before any trip) */
		assert_int_equal(rc, c->err != 0 ? c->err : FAILURE);
		assert_int_equal(s.calls, 2);
	} else if (c->interrupted) {
		assert_int_equal(rc, -ECANCELED);
		assert_int_equal(s.calls, c->attempt);
	} else {
		assert_int_equal(rc, c->err != 0 ? c->err : FAILURE);
	}
	/* Nothing waited in real time (upstream: < 1 ms; widened). */
	assert_true(tu_now_ns() - t0 < 5 * SEC);
	sx_breaker_release(s.stop);
}

#define IGN (-EPROTO)   /* errors.New("ignored") */

static const struct scase
    /* TestLimit: Limit(2). */
    lim_first = { LIMIT2, 0, false, 0, true, 0, 0, { 0 } },
    lim_first_err = { LIMIT2, 0, false, IGN, true, 0, 0, { 0 } },
    lim_first_int = { LIMIT2, 0, true, 0, false, 0, 0, { 0 } },       /* loop level */
    lim_next = { LIMIT2, 1, false, 0, true, 0, 0, { 0 } },
    lim_next_err = { LIMIT2, 1, false, IGN, true, 0, 0, { 0 } },
    lim_next_int = { LIMIT2, 1, true, 0, false, 0, 0, { 0 } },        /* loop level */
    lim_last = { LIMIT2, 999, false, 0, false, 0, 0, { 0 } },
    lim_last_err = { LIMIT2, 999, false, IGN, false, 0, 0, { 0 } },
    lim_last_int = { LIMIT2, 999, true, 0, false, 0, 0, { 0 } },
    /* TestWait. */
    w_first_empty = { WAIT, 0, false, 0, true, 0, 0, { 0 } },
    w_first_empty_err = { WAIT, 0, false, IGN, true, 0, 0, { 0 } },
    w_first_empty_int = { WAIT, 0, true, 0, false, 0, 0, { 0 } },     /* loop level */
    w_next_empty = { WAIT, 999, false, 0, true, 0, 0, { 0 } },
    w_next_empty_err = { WAIT, 999, false, IGN, true, 0, 0, { 0 } },
    w_next_empty_int = { WAIT, 999, true, 0, false, 0, 0, { 0 } },    /* loop level */
    w_first_multi = { WAIT, 0, false, 0, true, 0, 2, { MINUTE, HOUR } },
    w_first_multi_err = { WAIT, 0, false, IGN, true, 0, 2, { MINUTE, HOUR } },
    w_first_multi_int = { WAIT, 0, true, 0, false, 0, 2, { MINUTE, HOUR } }, /* loop level */
    w_next_multi = { WAIT, 1, false, 0, true, MS, 2, { MS, HOUR } },
    w_next_multi_err = { WAIT, 1, false, IGN, true, MS, 2, { MS, HOUR } },
    w_next_multi_int = { WAIT, 1, true, 0, false, 0, 2, { MINUTE, HOUR } },
    w_last_multi = { WAIT, 999, false, 0, true, MS, 2, { HOUR, MS } },
    w_last_multi_err = { WAIT, 999, false, IGN, true, MS, 2, { HOUR, MS } },
    w_last_multi_int = { WAIT, 999, true, 0, false, 0, 2, { MINUTE, HOUR } },
    /* TestBackoff. */
    b_first = { BACKOFF_HOUR, 0, false, 0, true, 0, 0, { 0 } },
    b_first_err = { BACKOFF_HOUR, 0, false, IGN, true, 0, 0, { 0 } },
    b_first_int = { BACKOFF_HOUR, 0, true, 0, false, 0, 0, { 0 } },   /* loop level */
    b_next = { BACKOFF_LINEAR, 2, false, 0, true, 2 * MS, 0, { 0 } },
    b_next_err = { BACKOFF_LINEAR, 2, false, IGN, true, 2 * MS, 0, { 0 } },
    b_next_int = { BACKOFF_HOUR, 999, true, 0, false, 0, 0, { 0 } },
    /* TestBackoffWithJitter (the ported cases). */
    j_first = { JITTER_HOUR, 0, false, 0, true, 0, 0, { 0 } },
    j_first_err = { JITTER_HOUR, 0, false, IGN, true, 0, 0, { 0 } },
    j_first_int = { JITTER_HOUR, 0, true, 0, false, 0, 0, { 0 } },    /* loop level */
    j_next_int = { JITTER_HOUR, 999, true, 0, false, 0, 0, { 0 } };

#define CASE(name, c) { name, test_strategy_case, NULL, NULL, (void *)&(c) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_Do__successful_action_call),
		cmocka_unit_test(test_Do__failed_action_call),
		cmocka_unit_test(test_Do__action_call_with_interrupted_breaker),
		cmocka_unit_test(test_Do__have_no_action_call),
		cmocka_unit_test(test_Do__preserve_context_values),
		cmocka_unit_test(test_Constant),
		cmocka_unit_test(test_Linear),
		cmocka_unit_test(test_Exponential),
		cmocka_unit_test(test_BinaryExponential),
		cmocka_unit_test(test_Fibonacci),
		cmocka_unit_test(test_Fibonacci__performance),
		cmocka_unit_test(test_Full),
		cmocka_unit_test(test_Equal),
		cmocka_unit_test(test_Deviation),
		CASE("test_Limit__first_call", lim_first),
		CASE("test_Limit__first_call_with_error", lim_first_err),
		CASE("test_Limit__first_call_with_interrupted_breaker", lim_first_int),
		CASE("test_Limit__next_call", lim_next),
		CASE("test_Limit__next_call_with_error", lim_next_err),
		CASE("test_Limit__next_call_with_interrupted_breaker", lim_next_int),
		CASE("test_Limit__last_call", lim_last),
		CASE("test_Limit__last_call_with_error", lim_last_err),
		CASE("test_Limit__last_call_with_interrupted_breaker", lim_last_int),
		CASE("test_Wait__first_call_with_empty_durations", w_first_empty),
		CASE("test_Wait__first_call_with_empty_durations_and_error", w_first_empty_err),
		CASE("test_Wait__first_call_with_empty_durations_and_interrupted_breaker",
		    w_first_empty_int),
		CASE("test_Wait__next_call_with_empty_durations", w_next_empty),
		CASE("test_Wait__next_call_with_empty_durations_and_error", w_next_empty_err),
		CASE("test_Wait__next_call_with_empty_durations_and_interrupted_breaker",
		    w_next_empty_int),
		CASE("test_Wait__first_call_with_multiple_durations", w_first_multi),
		CASE("test_Wait__first_call_with_multiple_durations_and_error", w_first_multi_err),
		CASE("test_Wait__first_call_with_multiple_durations_and_interrupted_breaker",
		    w_first_multi_int),
		CASE("test_Wait__next_call_with_multiple_durations", w_next_multi),
		CASE("test_Wait__next_call_with_multiple_durations_and_error", w_next_multi_err),
		CASE("test_Wait__next_call_with_multiple_durations_and_interrupted_breaker",
		    w_next_multi_int),
		CASE("test_Wait__last_call_with_multiple_durations", w_last_multi),
		CASE("test_Wait__last_call_with_multiple_durations_and_error", w_last_multi_err),
		CASE("test_Wait__last_call_with_multiple_durations_and_interrupted_breaker",
		    w_last_multi_int),
		CASE("test_Backoff__first_call", b_first),
		CASE("test_Backoff__first_call_with_error", b_first_err),
		CASE("test_Backoff__first_call_with_interrupted_breaker", b_first_int),
		CASE("test_Backoff__next_call", b_next),
		CASE("test_Backoff__next_call_with_error", b_next_err),
		CASE("test_Backoff__next_call_with_interrupted_breaker", b_next_int),
		CASE("test_BackoffWithJitter__first_call", j_first),
		CASE("test_BackoffWithJitter__first_call_with_error", j_first_err),
		CASE("test_BackoffWithJitter__first_call_with_interrupted_breaker", j_first_int),
		CASE("test_BackoffWithJitter__next_call_with_interrupted_breaker", j_next_int),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
