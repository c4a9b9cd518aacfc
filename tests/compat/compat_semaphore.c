/*
 * compat: github.com/kamilsk/semaphore's test suite, ported to strix semaphores (strix/sem.h).
 *
 * Upstream: github.com/kamilsk/semaphore @ 91c10c6c3c9c7761288a824171c7a5a709784818 (v4).
 *
 * Mapping: New(n) is sx_sem_create(pool, n); Acquire(deadline) is sx_sem_acquire(sem, 1, stop)
 * with stop a breaker (a nil deadline channel is a NULL stop: wait as long as it takes) and the
 * ReleaseFunc is sx_sem_release(sem, 1); Capacity/Occupied are sx_sem_capacity/sx_sem_in_use;
 * Release on an empty semaphore ("semaphore is empty") is -EINVAL; IsTimeout is -ETIMEDOUT;
 * Signal(deadline) is sx_sem_acquire_async, whose callback gets the outcome the channel carries.
 * The package-level default semaphore (capacity GOMAXPROCS) has no strix counterpart: its tests
 * run on a semaphore created with the number of online CPUs. Every test ends with
 * sx_sem_destroy once every permit is given back.
 *
 * Go test                                   status
 * ---------------------------------------   ------------------------------------------------
 * TestSemaphore_Acquire_Timeout             ported (negative, zero and 1 ns timeouts)
 * TestSemaphore_Capacity_Immutability       ported
 * TestSemaphore_Occupied_Linearity          ported
 * TestSemaphore_Release_TryToGetDeadLock    ported (-EINVAL, nothing changes)
 * TestSemaphore_Signal                      ported (the callback gets -ETIMEDOUT)
 * TestSemaphore_Concurrently                ported
 * TestAcquire (default_test.go)             ported, on an explicit semaphore (see above)
 * TestCapacity (default_test.go)            ported, same
 * TestOccupied (default_test.go)            ported, same
 * TestRelease (default_test.go)             ported, same
 * TestSignal (default_test.go)              ported, same
 * draft_test.go                             no tests in it
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/sem.h>

#define MS 1000000ll

TU_POOL_FIXTURE(2)

static sx_sem *mk_sem(uint32_t capacity)
{
	sx_sem *s = NULL;

	assert_int_equal(sx_sem_create(pool, capacity, &s), 0);
	return s;
}

/* A Go timeout: a duration <= 0 has expired at once (time.After, context.WithTimeout), while
 * strix reads a negative timeout as no limit, so those map to 0. */
static sx_breaker *mk_timeout(int64_t ns)
{
	sx_breaker *b = NULL;

	assert_int_equal(sx_breaker_timeout(pool, ns < 0 ? 0 : ns, &b), 0);
	return b;
}

static uint32_t ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint32_t)n : 1u;
}

/* ---- semaphore_test.go -------------------------------------------------------------------------- */

static void test_Semaphore_Acquire_Timeout(void **state)
{
	static const int64_t timeouts[] = { -1000 * MS, 0, 1 };   /* -1 s, 0, 1 ns */

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		sx_sem *sem = mk_sem(0);
		sx_breaker *ctx = mk_timeout(timeouts[i]);

		assert_int_equal(sx_sem_acquire(sem, 1, ctx), -ETIMEDOUT);
		sx_breaker_release(ctx);   /* cancel() */
		assert_int_equal(sx_sem_in_use(sem), 0);
		/* The timed-out waiter is gone once sx_sem_acquire has returned (waiting for the
		 * dispatch to drop it would be a defect). */
		assert_int_equal(sx_sem_waiting(sem), 0);
		sx_sem_destroy(sem);
	}
}

static void test_Semaphore_Capacity_Immutability(void **state)
{
	uint32_t capacity = 7;
	sx_sem *sem = mk_sem(capacity);

	(void)state;
	assert_int_equal(sx_sem_capacity(sem), capacity);
	for (uint32_t i = 0; i < sx_sem_capacity(sem); i++)
		assert_int_equal(sx_sem_acquire(sem, 1, NULL), 0);
	assert_int_equal(sx_sem_capacity(sem), capacity);
	assert_int_equal(sx_sem_release(sem, capacity), 0);
	sx_sem_destroy(sem);
}

static void test_Semaphore_Occupied_Linearity(void **state)
{
	sx_sem *sem = mk_sem(7);

	(void)state;
	for (uint32_t i = 0; i < sx_sem_capacity(sem); i++) {
		assert_int_equal(sx_sem_in_use(sem), i);
		assert_int_equal(sx_sem_acquire(sem, 1, NULL), 0);
	}
	assert_int_equal(sx_sem_in_use(sem), sx_sem_capacity(sem));
	assert_int_equal(sx_sem_release(sem, 7), 0);
	sx_sem_destroy(sem);
}

static void test_Semaphore_Release_TryToGetDeadLock(void **state)
{
	sx_sem *sem = mk_sem(0);

	(void)state;
	assert_int_equal(sx_sem_release(sem, 1), -EINVAL);   /* "semaphore is empty" */
	assert_int_equal(sx_sem_in_use(sem), 0);
	sx_sem_destroy(sem);
}

struct signal_out {
	int calls;   /* atomic */
	int err;
};

static void on_signal(sx_sem *sem, int err, void *arg)
{
	struct signal_out *o = arg;

	(void)sem;
	o->err = err;
	__atomic_add_fetch(&o->calls, 1, __ATOMIC_RELEASE);
}

static void test_Semaphore_Signal(void **state)
{
	sx_sem *sem = mk_sem(0);
	sx_breaker *ctx = mk_timeout(0);
	struct signal_out o = { 0, 1 };

	(void)state;
	assert_int_equal(sx_sem_acquire_async(sem, 1, ctx, on_signal, &o), 0);
	TU_WAIT_FOR(__atomic_load_n(&o.calls, __ATOMIC_ACQUIRE) == 1);
	assert_int_equal(o.err, -ETIMEDOUT);   /* no release comes: the channel is closed */
	sx_breaker_release(ctx);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(__atomic_load_n(&o.calls, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(sx_sem_in_use(sem), 0);
	sx_sem_destroy(sem);
}

struct conc {
	sx_sem *sem;
	int go;        /* atomic: close(start) */
	int counter;   /* atomic */
	int errors;    /* atomic */
};

static void *conc_worker(void *arg)
{
	struct conc *c = arg;

	while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE))
		sched_yield();
	if (sx_sem_acquire(c->sem, 1, NULL) != 0) {
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	__atomic_add_fetch(&c->counter, 1, __ATOMIC_RELAXED);
	assert_int_equal(sx_sem_release(c->sem, 1), 0);
	return NULL;
}

static void test_Semaphore_Concurrently(void **state)
{
	uint32_t cap = ncpu() > 2 ? ncpu() : 2;
	struct conc c = { mk_sem(cap), 0, 0, 0 };
	pthread_t *t = calloc(cap, sizeof(*t));

	(void)state;
	assert_non_null(t);
	for (uint32_t i = 0; i < cap; i++)
		assert_int_equal(pthread_create(&t[i], NULL, conc_worker, &c), 0);
	__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < cap; i++)
		pthread_join(t[i], NULL);
	free(t);
	assert_int_equal(c.errors, 0);
	assert_int_equal(c.counter, (int)cap);
	assert_int_equal(sx_sem_in_use(c.sem), 0);
	sx_sem_destroy(c.sem);
}

/* ---- default_test.go, on an explicit semaphore of GOMAXPROCS (online CPUs) ------------------ */

static void test_Acquire(void **state)
{
	sx_sem *sem = mk_sem(ncpu());
	sx_breaker *ctx;

	(void)state;
	for (uint32_t i = 0; i < sx_sem_capacity(sem); i++)
		assert_int_equal(sx_sem_acquire(sem, 1, NULL), 0);
	ctx = mk_timeout(10 * MS);
	assert_int_equal(sx_sem_acquire(sem, 1, ctx), -ETIMEDOUT);   /* "operation timeout" */
	sx_breaker_release(ctx);
	assert_int_equal(sx_sem_release(sem, ncpu()), 0);            /* do() */
	ctx = mk_timeout(10 * MS);
	assert_int_equal(sx_sem_acquire(sem, 1, ctx), 0);
	assert_int_equal(sx_sem_release(sem, 1), 0);
	sx_breaker_release(ctx);
	assert_int_equal(sx_sem_in_use(sem), 0);
	sx_sem_destroy(sem);
}

static void test_Capacity(void **state)
{
	sx_sem *sem = mk_sem(ncpu());

	(void)state;
	assert_int_equal(sx_sem_capacity(sem), ncpu());
	sx_sem_destroy(sem);
}

static void test_Occupied(void **state)
{
	sx_sem *sem = mk_sem(ncpu());

	(void)state;
	assert_int_equal(sx_sem_in_use(sem), 0);
	sx_sem_destroy(sem);
}

static void test_Release(void **state)
{
	sx_sem *sem = mk_sem(ncpu());

	(void)state;
	assert_int_equal(sx_sem_release(sem, 1), -EINVAL);   /* "semaphore is empty" */
	sx_sem_destroy(sem);
}

static void test_Signal(void **state)
{
	sx_sem *sem = mk_sem(ncpu());
	struct signal_out o = { 0, 1 };

	(void)state;
	assert_int_equal(sx_sem_acquire_async(sem, 1, NULL, on_signal, &o), 0);
	TU_WAIT_FOR(__atomic_load_n(&o.calls, __ATOMIC_ACQUIRE) == 1);
	assert_int_equal(o.err, 0);   /* a release func came */
	assert_int_equal(sx_sem_in_use(sem), 1);
	assert_int_equal(sx_sem_release(sem, 1), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	sx_sem_destroy(sem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_Semaphore_Acquire_Timeout),
		cmocka_unit_test(test_Semaphore_Capacity_Immutability),
		cmocka_unit_test(test_Semaphore_Occupied_Linearity),
		cmocka_unit_test(test_Semaphore_Release_TryToGetDeadLock),
		cmocka_unit_test(test_Semaphore_Signal),
		cmocka_unit_test(test_Semaphore_Concurrently),
		cmocka_unit_test(test_Acquire),
		cmocka_unit_test(test_Capacity),
		cmocka_unit_test(test_Occupied),
		cmocka_unit_test(test_Release),
		cmocka_unit_test(test_Signal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
