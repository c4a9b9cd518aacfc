/*
 * compat: github.com/ITcathyh/conexec's test suite (the alloter seed's original), ported to
 * strix fan-out (strix/fanout.h).
 *
 * Upstream: github.com/ITcathyh/conexec @ edcacf96fad96a662b53ba516caa015bef96d116.
 *
 * Mapping: Actuator.Exec(tasks...) is sx_fanout_exec; an Actuator runs every task at once (a
 * goroutine each), so its port uses limit = number of tasks; PooledActuator(n) is limit n (n <= 0,
 * and the zero PooledActuator, use the default: the pool's worker count); WithPool(ants pool of
 * 5) is a fan-out on a separate strix pool of 5 workers; Options.TimeOut is timeout_ns and
 * ErrorTimeOut is -ETIMEDOUT; the package-level Exec/ExecWithError are a fan-out with default
 * options (Exec's bool is "returned 0"). errors.New("TestErr") is -EIO.
 *
 * Deliberate differences, pinned here:
 *  - strix waits for calls that are running when the fan-out stops (no call outlives it), while
 *    conexec returns and leaves its goroutines running. So the tasks' sleeps are waits on the
 *    fan-out's stop breaker (the C form of a cancellable sleep), and a stopped fan-out returns as
 *    soon as they notice; each task still returns what upstream's returns.
 *  - conexec's timeout restarts whenever a task finishes (time.After inside its select loop);
 *    strix's is one overall timeout, as the alloter seed documents. The tests' outcomes are the
 *    same.
 *
 * Go test               status
 * -------------------   -------------------------------------------------------------------
 * TestTimeOut           ported
 * TestError             ported
 * TestNormal            ported (without and with a 1 min timeout)
 * TestEmpty             ported
 * TestPanic             not applicable: recovering a goroutine's nil dereference; C has no
 *                       recoverable panic
 * TestManyError         ported (606 tasks)
 * TestExec              ported but for its panic task (as TestPanic)
 * TestExecWithError     ported but for its panic task
 * TestPooledTimeOut     ported (limit 5, and -1: the default)
 * TestPooledError       ported
 * TestPooledNormal      ported (limit 5, with a timeout, and the zero value: the default)
 * TestPooledEmpty       ported
 * TestPooledPanic       not applicable, as TestPanic
 * TestWithPool          ported (a pool of 5 workers)
 * TestDurationPtr       not applicable: a Go pointer helper
 */
#include <errno.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/fanout.h>

#define MS 1000000ll
#define SEC (1000 * MS)
#define TEST_ERR (-EIO)
#define NO_LIMIT 0xffffffffu   /* an Actuator: limit = number of tasks */

/* The pool: enough workers for upstream's six concurrent tasks */
TU_POOL_FIXTURE(8)

/* A task: wait `sleep` (cut short when the fan-out stops), then return `ret`. */
struct spec {
	int64_t sleep;
	int ret;
};

static int task_fn(sx_breaker *stop, void *arg)
{
	const struct spec *s = arg;

	if (s->sleep > 0)
		sx_breaker_wait(stop, s->sleep);
	return s->ret;
}

/* getTasks: 100 ms, at once, 200 ms; all nil. */
static const struct spec normal_specs[] = { { 100 * MS, 0 }, { 0, 0 }, { 200 * MS, 0 } };
/* getErrorTask: getTasks plus: at once te, 300 ms te, 1 s te. */
static const struct spec error_specs[] = {
	{ 100 * MS, 0 }, { 0, 0 }, { 200 * MS, 0 },
	{ 0, TEST_ERR }, { 300 * MS, TEST_ERR }, { 1 * SEC, TEST_ERR },
};

static size_t fill(sx_fanout_task *t, const struct spec *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		t[i].fn = task_fn;
		t[i].arg = (void *)&s[i];
	}
	return n;
}

static int exec(sx_pool *p, unsigned limit, int64_t timeout, const sx_fanout_task *t, size_t n)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;

	o.limit = limit == NO_LIMIT ? (unsigned)(n > 0 ? n : 1) : limit;
	o.timeout_ns = timeout;
	return sx_fanout_exec(p, t, n, &o);
}

/* ---- common_test.go's helpers ------------------------------------------------------------------- */

static void check_timeout(sx_pool *p, unsigned limit, int64_t timeout)
{
	sx_fanout_task t[3];
	uint64_t t0 = tu_now_ns();

	assert_int_equal(exec(p, limit, timeout, t, fill(t, normal_specs, 3)), -ETIMEDOUT);
	/* The running tasks see the stop and return at once (strix waits for them). */
	assert_true(tu_now_ns() - t0 < 5 * (uint64_t)SEC);
}

static void check_error(sx_pool *p, unsigned limit, int64_t timeout)
{
	sx_fanout_task t[6];

	assert_int_equal(exec(p, limit, timeout, t, fill(t, error_specs, 6)), TEST_ERR);
}

static void check_many_error(sx_pool *p, unsigned limit, int64_t timeout)
{
	enum { GROUPS = 101 };
	sx_fanout_task *t = calloc(GROUPS * 6, sizeof(*t));

	assert_non_null(t);
	for (size_t g = 0; g < GROUPS; g++)
		fill(t + 6 * g, error_specs, 6);
	assert_int_equal(exec(p, limit, timeout, t, GROUPS * 6), TEST_ERR);
	free(t);
}

static void check_normal(sx_pool *p, unsigned limit, int64_t timeout)
{
	sx_fanout_task t[3];

	assert_int_equal(exec(p, limit, timeout, t, fill(t, normal_specs, 3)), 0);
}

static void check_empty(sx_pool *p, unsigned limit)
{
	assert_int_equal(exec(p, limit, 0, NULL, 0), 0);
}

/* ---- actuator_test.go --------------------------------------------------------------------------- */

static void test_TimeOut(void **state)
{
	(void)state;
	check_timeout(pool, NO_LIMIT, 50 * MS);
}

static void test_Error(void **state)
{
	(void)state;
	check_error(pool, NO_LIMIT, 1 * SEC);
}

static void test_Normal(void **state)
{
	(void)state;
	check_normal(pool, NO_LIMIT, 0);
	check_normal(pool, NO_LIMIT, 60 * SEC);
}

static void test_Empty(void **state)
{
	(void)state;
	check_empty(pool, NO_LIMIT);
}

static void test_ManyError(void **state)
{
	(void)state;
	check_many_error(pool, NO_LIMIT, 1 * SEC);
}

/* ---- exec_test.go: the package-level functions, default options ------------------------------ */

static void test_Exec(void **state)
{
	sx_fanout_task t[6];

	(void)state;
	assert_true(sx_fanout_exec(pool, t, fill(t, normal_specs, 3), NULL) == 0);
	assert_false(sx_fanout_exec(pool, t, fill(t, error_specs, 6), NULL) == 0);
	assert_true(sx_fanout_exec(pool, NULL, 0, NULL) == 0);
}

static void test_ExecWithError(void **state)
{
	sx_fanout_task t[6];

	(void)state;
	assert_int_equal(sx_fanout_exec(pool, t, fill(t, normal_specs, 3), NULL), 0);
	assert_int_equal(sx_fanout_exec(pool, t, fill(t, error_specs, 6), NULL), TEST_ERR);
	assert_int_equal(sx_fanout_exec(pool, NULL, 0, NULL), 0);
}

/* ---- pooled_actuator_test.go -------------------------------------------------------------------- */

static void test_PooledTimeOut(void **state)
{
	(void)state;
	check_timeout(pool, 5, 50 * MS);
	check_timeout(pool, 0, 50 * MS);   /* NewPooledActuator(-1): the default */
}

static void test_PooledError(void **state)
{
	(void)state;
	check_error(pool, 5, 1 * SEC);
}

static void test_PooledNormal(void **state)
{
	(void)state;
	check_normal(pool, 5, 0);
	check_normal(pool, 5, 60 * SEC);
	check_normal(pool, 0, 0);          /* &PooledActuator{}: the default */
}

static void test_PooledEmpty(void **state)
{
	(void)state;
	check_empty(pool, 5);
}

static void test_WithPool(void **state)
{
	sx_pool *five = tu_pool(5);

	(void)state;
	check_normal(five, 5, 0);
	check_error(five, 5, 0);
	sx_pool_destroy(five);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_TimeOut),
		cmocka_unit_test(test_Error),
		cmocka_unit_test(test_Normal),
		cmocka_unit_test(test_Empty),
		cmocka_unit_test(test_ManyError),
		cmocka_unit_test(test_Exec),
		cmocka_unit_test(test_ExecWithError),
		cmocka_unit_test(test_PooledTimeOut),
		cmocka_unit_test(test_PooledError),
		cmocka_unit_test(test_PooledNormal),
		cmocka_unit_test(test_PooledEmpty),
		cmocka_unit_test(test_WithPool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
