/* Retry: backoff formulas, jitter on a fixed seed, the blocking loop on a virtual clock, the
 * retrier, budgets, breakers. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/retry.h>

/* ---- a virtual clock whose sleep advances it and records every wait ------------------------- */

typedef struct vclock {
	uint64_t now;
	unsigned nwaits;
	uint64_t waits[64];
} vclock;

static uint64_t v_now(void *ctx)
{
	return ((vclock *)ctx)->now;
}

static void v_sleep(void *ctx, int64_t ns)
{
	vclock *v = ctx;

	assert_true(ns >= 0);
	if (v->nwaits < 64)
		v->waits[v->nwaits] = (uint64_t)ns;
	v->nwaits++;
	v->now += (uint64_t)ns;
}

#define VCLOCK(name, vc) sx_clock name = { v_now, (vc), v_sleep }

#define MS 1000000ull

/* ---- an independent reference of the documented generator ----------------------------------- */

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

static void delays(const sx_retry_policy *p, uint64_t *out, unsigned n)
{
	sx_backoff bo;

	assert_int_equal(sx_backoff_init(&bo, p), 0);
	for (unsigned i = 0; i < n; i++)
		out[i] = sx_backoff_next(&bo);
}

/* ---- policy checks --------------------------------------------------------------------------- */

static void test_policy_check(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_backoff bo;

	(void)state;
	assert_int_equal(sx_retry_policy_check(&p), 0);
	assert_int_equal(sx_retry_policy_check(NULL), -EINVAL);
	p.backoff = 99;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.backoff = -1;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.factor = 0.5;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.factor = NAN;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.factor = 1.5;
	p.jitter = 42;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.jitter = SX_JITTER_DEVIATION;
	p.deviation = 1.5;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	p.deviation = -0.1;
	assert_int_equal(sx_backoff_init(&bo, &p), -EINVAL);
	p.deviation = 0.25;
	assert_int_equal(sx_retry_policy_check(&p), 0);
	assert_int_equal(sx_backoff_init(NULL, &p), -EINVAL);
	assert_int_equal(sx_backoff_init(&bo, NULL), -EINVAL);
}

/* ---- every backoff formula, attempts 1..10 --------------------------------------------------- */

static void test_backoff_formulas(void **state)
{
	static const uint64_t fib[10] = { 1, 1, 2, 3, 5, 8, 13, 21, 34, 55 };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[10];

	(void)state;
	p.base_ns = 10 * MS;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], 0);

	p.backoff = SX_BACKOFF_CONSTANT;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], 10 * MS);

	p.backoff = SX_BACKOFF_LINEAR;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], n * 10 * MS);

	p.backoff = SX_BACKOFF_EXPONENTIAL; /* factor 0: 2 */
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], (10 * MS) << (n - 1));
	p.factor = 3.0;
	delays(&p, d, 10);
	for (unsigned n = 1, m = 1; n <= 10; n++, m *= 3)
		assert_int_equal(d[n - 1], 10 * MS * m);
	p.factor = 1.0;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], 10 * MS);

	p.backoff = SX_BACKOFF_FIBONACCI;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], fib[n - 1] * 10 * MS);

	/* The cap holds for each curve. */
	p.cap_ns = 45 * MS;
	delays(&p, d, 10);
	for (unsigned n = 1; n <= 10; n++)
		assert_int_equal(d[n - 1], fib[n - 1] * 10 * MS < 45 * MS ? fib[n - 1] * 10 * MS : 45 * MS);
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.factor = 2.0;
	delays(&p, d, 10);
	assert_int_equal(d[0], 10 * MS);
	assert_int_equal(d[1], 20 * MS);
	assert_int_equal(d[2], 40 * MS);
	for (unsigned n = 4; n <= 10; n++)
		assert_int_equal(d[n - 1], 45 * MS);
}

static void test_backoff_saturates(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_backoff bo;
	uint64_t prev = 0;

	(void)state;
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.base_ns = UINT64_MAX / 4;
	assert_int_equal(sx_backoff_init(&bo, &p), 0);
	for (unsigned i = 0; i < 200; i++) {
		uint64_t d = sx_backoff_next(&bo);

		assert_true(d >= prev); /* never wraps to a small value */
		prev = d;
	}
	assert_int_equal(prev, UINT64_MAX);
	p.backoff = SX_BACKOFF_FIBONACCI;
	p.base_ns = 1ull << 40;
	assert_int_equal(sx_backoff_init(&bo, &p), 0);
	for (unsigned i = 0; i < 300; i++)
		prev = sx_backoff_next(&bo);
	assert_int_equal(prev, UINT64_MAX);
	p.backoff = SX_BACKOFF_LINEAR;
	assert_int_equal(sx_backoff_init(&bo, &p), 0);
	bo.n = UINT32_MAX - 1; /* base * 2^32 does not fit */
	assert_int_equal(sx_backoff_next(&bo), UINT64_MAX);
}

/* ---- jitter: exact delays for a fixed seed, against the documented formulas ----------------- */

static void test_jitter_exact(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t d[10], s, prev;

	(void)state;
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.base_ns = 1 * MS;
	p.cap_ns = 300 * MS;
	p.seed = 12345;

	p.jitter = SX_JITTER_FULL;
	delays(&p, d, 10);
	s = p.seed;
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t b = (MS << (n - 1)) < 300 * MS ? (MS << (n - 1)) : 300 * MS;

		assert_int_equal(d[n - 1], (uint64_t)((double)b * ref_u(&s)));
		assert_true(d[n - 1] < b);
	}

	p.jitter = SX_JITTER_EQUAL;
	delays(&p, d, 10);
	s = p.seed;
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t b = (MS << (n - 1)) < 300 * MS ? (MS << (n - 1)) : 300 * MS;

		assert_int_equal(d[n - 1], b / 2 + (uint64_t)((double)(b / 2) * ref_u(&s)));
		assert_true(d[n - 1] >= b / 2 && d[n - 1] < b);
	}

	p.jitter = SX_JITTER_DEVIATION;
	p.deviation = 0.2;
	delays(&p, d, 10);
	s = p.seed;
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t b = (MS << (n - 1)) < 300 * MS ? (MS << (n - 1)) : 300 * MS;

		assert_int_equal(d[n - 1], (uint64_t)((double)b * (0.8 + 0.4 * ref_u(&s))));
		assert_true(d[n - 1] >= b * 8 / 10 - 1 && d[n - 1] <= b * 12 / 10);
	}

	p.jitter = SX_JITTER_DECORRELATED;
	delays(&p, d, 10);
	s = p.seed;
	prev = p.base_ns;
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t b = (MS << (n - 1)) < 300 * MS ? (MS << (n - 1)) : 300 * MS;
		double u = ref_u(&s);
		uint64_t e = p.base_ns + (uint64_t)((double)(3 * prev - p.base_ns) * u);

		e = e < b ? e : b;
		assert_int_equal(d[n - 1], e);
		prev = e;
	}

	/* The decorrelated curve: in [base, 3 * previous], capped. */
	p.backoff = SX_BACKOFF_DECORRELATED;
	p.jitter = SX_JITTER_FULL; /* ignored */
	p.cap_ns = 50 * MS;
	delays(&p, d, 10);
	s = p.seed;
	prev = p.base_ns;
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t e = p.base_ns + (uint64_t)((double)(3 * prev - p.base_ns) * ref_u(&s));

		e = e < 50 * MS ? e : 50 * MS;
		assert_int_equal(d[n - 1], e);
		assert_true(e >= (uint64_t)p.base_ns);
		prev = e;
	}
}

/* The blocking loop waits exactly the policy's sequence, for every jitter, on the virtual clock. */
static int always_fails(sx_retrier *r, void *arg)
{
	(void)r;
	(void)arg;
	return -EIO;
}

static void test_retry_waits_are_the_sequence(void **state)
{
	static const int jitters[] = { SX_JITTER_NONE, SX_JITTER_FULL, SX_JITTER_EQUAL,
		                       SX_JITTER_DEVIATION, SX_JITTER_DECORRELATED };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t want[10];

	(void)state;
	p.max_attempts = 11;
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.base_ns = 1 * MS;
	p.cap_ns = 300 * MS;
	p.deviation = 0.3;
	p.seed = 99;
	for (unsigned j = 0; j < sizeof(jitters) / sizeof(jitters[0]); j++) {
		vclock vc = { 0 };
		VCLOCK(clk, &vc);
		uint64_t total = 0;

		p.jitter = jitters[j];
		p.clock = NULL;
		delays(&p, want, 10); /* checked against the formulas in test_jitter_exact */
		p.clock = &clk;
		assert_int_equal(sx_retry(always_fails, NULL, &p, NULL), -EIO);
		assert_int_equal(vc.nwaits, 10);
		for (unsigned i = 0; i < 10; i++) {
			assert_int_equal(vc.waits[i], want[i]);
			total += want[i];
		}
		assert_int_equal(vc.now, total);
	}
}

static void test_jitter_seeded(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	uint64_t a[10], b[10];
	unsigned same = 0;

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 100 * MS;
	p.jitter = SX_JITTER_FULL;
	p.seed = 7;
	delays(&p, a, 10);
	delays(&p, b, 10);
	assert_memory_equal(a, b, sizeof(a)); /* same seed, same delays */
	p.seed = 8;
	delays(&p, b, 10);
	for (unsigned i = 0; i < 10; i++)
		same += a[i] == b[i];
	assert_true(same < 10);
}

/* ---- the blocking form ------------------------------------------------------------------------ */

typedef struct calls {
	unsigned n;
	unsigned succeed_at; /* 0: never */
	unsigned stop_at;    /* 0: never */
	int err;
	unsigned iters[16];
	int64_t set_delay_at2;
} calls;

static int action(sx_retrier *r, void *arg)
{
	calls *c = arg;

	if (c->n < 16)
		c->iters[c->n] = sx_retrier_iteration(r);
	c->n++;
	if (c->stop_at != 0 && sx_retrier_iteration(r) == c->stop_at)
		sx_retrier_stop(r);
	if (c->set_delay_at2 >= 0 && sx_retrier_iteration(r) == 2)
		assert_int_equal(sx_retrier_set_delay(r, c->set_delay_at2), 0);
	if (c->succeed_at != 0 && c->n == c->succeed_at)
		return 0;
	return c->err;
}

static void test_retry_success_at_once(void **state)
{
	vclock vc = { 0 };
	VCLOCK(clk, &vc);
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .succeed_at = 1, .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 5 * MS;
	p.clock = &clk;
	assert_int_equal(sx_retry(action, &c, &p, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(vc.nwaits, 0);
	assert_int_equal(c.iters[0], 1);
}

static void test_retry_limit(void **state)
{
	vclock vc = { 0 };
	VCLOCK(clk, &vc);
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	p.max_attempts = 10;
	p.backoff = SX_BACKOFF_EXPONENTIAL;
	p.base_ns = 1 * MS;
	p.clock = &clk;
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(c.iters[i], i + 1);
	assert_int_equal(vc.nwaits, 9); /* between attempts only */
	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(vc.waits[i], MS << i);
	assert_int_equal(vc.now, (MS << 9) - MS);
}

static void test_retry_default_policy_no_limit(void **state)
{
	calls c = { .succeed_at = 1000, .err = -EAGAIN, .set_delay_at2 = -1 };

	(void)state;
	/* The seed's behaviour: no limit, no delay. */
	assert_int_equal(sx_retry(action, &c, NULL, NULL), 0);
	assert_int_equal(c.n, 1000);
}

static void test_retry_tripped_breaker(void **state)
{
	sx_breaker *b;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_retry(action, &c, NULL, b), -ECANCELED);
	assert_int_equal(c.n, 0);
	sx_breaker_release(b);
}

static void test_retrier_stop(void **state)
{
	calls c = { .stop_at = 3, .err = -EPIPE, .set_delay_at2 = -1 };

	(void)state;
	assert_int_equal(sx_retry(action, &c, NULL, NULL), -EPIPE);
	assert_int_equal(c.n, 3);
}

static void test_retrier_set_delay(void **state)
{
	vclock vc = { 0 };
	VCLOCK(clk, &vc);
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = 3 * 1000000000ll };

	(void)state;
	p.max_attempts = 4;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 10 * MS;
	p.clock = &clk;
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 4);
	assert_int_equal(vc.nwaits, 3);
	assert_int_equal(vc.waits[0], 10 * MS);
	assert_int_equal(vc.waits[1], 3000 * MS); /* the next wait only */
	assert_int_equal(vc.waits[2], 10 * MS);
	assert_int_equal(sx_retrier_set_delay(NULL, 1), -EINVAL);
}

static bool only_eagain(int err, void *ctx)
{
	(void)ctx;
	return err == -EAGAIN;
}

static void test_retry_predicate(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	p.retry_if = only_eagain;
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 1);
	c = (calls){ .succeed_at = 5, .err = -EAGAIN, .set_delay_at2 = -1 };
	assert_int_equal(sx_retry(action, &c, &p, NULL), 0);
	assert_int_equal(c.n, 5);
}

static void test_retry_max_elapsed(void **state)
{
	vclock vc = { .now = 1000 * MS };
	VCLOCK(clk, &vc);
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 30 * MS;
	p.max_elapsed_ns = 100 * MS;
	p.clock = &clk;
	/* Attempts at 0, 30, 60, 90 ms; the wait to 120 would pass 100. */
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 4);
	assert_int_equal(vc.now, 1090 * MS);
}

static void test_retry_bad_input(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	assert_int_equal(sx_retry(NULL, NULL, NULL, NULL), -EINVAL);
	p.jitter = 77;
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EINVAL);
	assert_int_equal(c.n, 0);
	assert_int_equal(sx_retrier_iteration(NULL), 0);
}

/* A trip ends a long real wait at once. */
static void *trip_later(void *arg)
{
	tu_sleep_ns(20 * MS);
	sx_breaker_trip(arg);
	return NULL;
}

static void test_retry_breaker_interrupts_wait(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };
	sx_breaker *b;
	pthread_t th;
	uint64_t t0;

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 3600ull * 1000 * MS; /* an hour */
	assert_int_equal(sx_breaker_create(&b), 0);
	t0 = tu_now_ns();
	assert_int_equal(pthread_create(&th, NULL, trip_later, b), 0);
	assert_int_equal(sx_retry(action, &c, &p, b), -ECANCELED);
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS);
	assert_int_equal(c.n, 1);
	pthread_join(th, NULL);
	sx_breaker_release(b);
}

/* Real short waits without a breaker. */
static void test_retry_real_wait(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .succeed_at = 3, .err = -EIO, .set_delay_at2 = -1 };
	uint64_t t0 = tu_now_ns();

	(void)state;
	p.backoff = SX_BACKOFF_CONSTANT;
	p.base_ns = 5 * MS;
	assert_int_equal(sx_retry(action, &c, &p, NULL), 0);
	assert_int_equal(c.n, 3);
	assert_true(tu_now_ns() - t0 >= 10 * MS);
}

/* ---- budget ---------------------------------------------------------------------------------- */

static void test_budget(void **state)
{
	sx_retry_budget b, before;
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	calls c = { .err = -EIO, .set_delay_at2 = -1 };

	(void)state;
	memset(&before, 0x5a, sizeof(before));
	b = before;
	assert_int_equal(sx_retry_budget_init(NULL, 1, 0), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&b, 0, 0), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&b, 10, 11), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&b, 10, -1), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&b, 10, NAN), -EINVAL);
	assert_memory_equal(&b, &before, sizeof(b)); /* refused: unchanged */

	assert_int_equal(sx_retry_budget_init(&b, 3, 0.5), 0);
	assert_int_equal(sx_retry_budget_tokens(&b), 3);
	p.budget = &b;
	/* Three retries allowed, then the budget refuses: 4 attempts. */
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 4);
	assert_int_equal(sx_retry_budget_tokens(&b), 0);
	assert_false(sx_retry_budget_withdraw(&b));
	/* Dry: no retry at all. */
	c.n = 0;
	assert_int_equal(sx_retry(action, &c, &p, NULL), -EIO);
	assert_int_equal(c.n, 1);
	/* Two successes refill one token; the cap holds. */
	sx_retry_budget_deposit(&b);
	sx_retry_budget_deposit(&b);
	assert_int_equal(sx_retry_budget_tokens(&b), 1);
	for (int i = 0; i < 100; i++)
		sx_retry_budget_deposit(&b);
	assert_int_equal(sx_retry_budget_tokens(&b), 3);
	/* A success through sx_retry deposits too. */
	for (int i = 0; i < 3; i++)
		assert_true(sx_retry_budget_withdraw(&b));
	c = (calls){ .succeed_at = 1, .err = -EIO, .set_delay_at2 = -1 };
	assert_int_equal(sx_retry(action, &c, &p, NULL), 0);
	sx_retry_budget_deposit(&b);
	assert_int_equal(sx_retry_budget_tokens(&b), 1);
}

/* Many threads sharing one budget: exactly the tokens there were are granted. */
static sx_retry_budget shared;
static unsigned granted;

static void *drain(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++)
		if (sx_retry_budget_withdraw(&shared))
			__atomic_add_fetch(&granted, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void test_budget_concurrent(void **state)
{
	pthread_t th[8];

	(void)state;
	assert_int_equal(sx_retry_budget_init(&shared, 5000, 1), 0);
	granted = 0;
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, drain, NULL), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(granted, 5000);
	assert_int_equal(sx_retry_budget_tokens(&shared), 0);
}

/* The linear curve at the end of the attempt count: it stays at base * UINT_MAX (found by
 * tests/fuzz/fuzz_backoff: the count wrapped to 0 and so did the delay). */
static void test_linear_never_wraps_at_huge_attempts(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_backoff bo;

	(void)state;
	p.backoff = SX_BACKOFF_LINEAR;
	p.base_ns = 3;
	assert_int_equal(sx_backoff_init(&bo, &p), 0);
	bo.n = UINT32_MAX - 1;
	for (int i = 0; i < 4; i++)
		assert_int_equal(sx_backoff_next(&bo), 3ull * UINT32_MAX);
}

/* NULL and never-initialized objects: documented answers, no crash, nothing written. */
static void test_null_contracts(void **state)
{
	static const sx_clock no_now = { NULL, NULL, NULL };
	sx_retry_policy p = SX_RETRY_POLICY_INIT;
	sx_backoff bo;

	(void)state;
	assert_false(sx_retry_budget_withdraw(NULL));
	sx_retry_budget_deposit(NULL);
	assert_int_equal(sx_retry_budget_tokens(NULL), 0);
	assert_int_equal(sx_backoff_next(NULL), 0);
	memset(&bo, 0, sizeof(bo));
	assert_int_equal(sx_backoff_next(&bo), 0); /* policy NULL: never initialized */
	assert_int_equal(bo.n, 0);
	p.clock = &no_now;
	assert_int_equal(sx_retry_policy_check(&p), -EINVAL);
	assert_int_equal(sx_backoff_init(&bo, &p), -EINVAL);
	assert_int_equal(sx_retry(NULL, NULL, &p, NULL), -EINVAL);
}

/* A clock that goes back between attempts (a virtual one reset) counts as no time elapsed: the
 * retry goes on instead of ending as if 2^64 ns had passed. */
static unsigned back_calls;

static int back_fn(sx_retrier *r, void *arg)
{
	(void)arg;
	back_calls++;
	if (sx_retrier_iteration(r) == 1)
		tu_vnow -= 5000000000ull;
	return sx_retrier_iteration(r) < 3 ? -EIO : 0;
}

static void test_clock_going_back_is_no_elapsed_time(void **state)
{
	sx_retry_policy p = SX_RETRY_POLICY_INIT;

	(void)state;
	tu_vnow = 100 * 1000000000ull;
	p.max_elapsed_ns = 1000000000ull;
	p.clock = &tu_vclock;
	back_calls = 0;
	assert_int_equal(sx_retry(back_fn, NULL, &p, NULL), 0);
	assert_int_equal(back_calls, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_check),
		cmocka_unit_test(test_backoff_formulas),
		cmocka_unit_test(test_backoff_saturates),
		cmocka_unit_test(test_jitter_exact),
		cmocka_unit_test(test_jitter_seeded),
		cmocka_unit_test(test_retry_waits_are_the_sequence),
		cmocka_unit_test(test_retry_success_at_once),
		cmocka_unit_test(test_retry_limit),
		cmocka_unit_test(test_retry_default_policy_no_limit),
		cmocka_unit_test(test_retry_tripped_breaker),
		cmocka_unit_test(test_retrier_stop),
		cmocka_unit_test(test_retrier_set_delay),
		cmocka_unit_test(test_retry_predicate),
		cmocka_unit_test(test_retry_max_elapsed),
		cmocka_unit_test(test_retry_bad_input),
		cmocka_unit_test(test_retry_breaker_interrupts_wait),
		cmocka_unit_test(test_retry_real_wait),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_budget_concurrent),
		cmocka_unit_test(test_null_contracts),
		cmocka_unit_test(test_linear_never_wraps_at_huge_attempts),
		cmocka_unit_test(test_clock_going_back_is_no_elapsed_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
