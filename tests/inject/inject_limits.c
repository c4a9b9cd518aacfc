/*
 * Fault injection: semaphores, rate limiters and fan-outs. Every allocation, thread and key
 * creation fails in turn; each call returns its documented error or succeeds, and again with
 * faults off; every accepted async acquire and every fan-out call runs exactly once; nothing
 * leaks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/fanout.h>
#include <strix/pool.h>
#include <strix/promise.h>
#include <strix/ratelimit.h>
#include <strix/sem.h>

#define MS 1000000ll

/* ---- semaphore ----------------------------------------------------------------------------- */

#define NASYNC 6

static int async_calls[NASYNC], async_err[NASYNC];

static void async_cb(sx_sem *s, int err, void *arg)
{
	intptr_t i = (intptr_t)arg;

	async_err[i] = err;
	if (err == 0)
		FI_CHECK(sx_sem_release(s, 1) == 0);
	__atomic_add_fetch(&async_calls[i], 1, __ATOMIC_SEQ_CST);
}

static sx_sem *g_sem;
static int waiter_rc = 1;

static void *waiter(void *arg)
{
	sx_breaker *stop = arg;
	int rc = sx_sem_acquire(g_sem, 2, stop);

	/* -ENOMEM: its waiter node or breaker registration failed; the caller repeats it. */
	__atomic_store_n(&waiter_rc, rc, __ATOMIC_SEQ_CST);
	return NULL;
}

static void scenario_sem(void)
{
	sx_breaker *stop, *never;
	sx_pool *p = fi_make_pool(1, NULL);
	pthread_t th;
	sx_sem *s;
	int rc;

	memset(async_calls, 0, sizeof(async_calls));
	FI_CREATE(s, sx_sem_create(p, 2, &s), -ENOMEM);
	g_sem = s;
	FI_CHECK(sx_sem_try_acquire(s, 2) == 0);
	/* Async requests queue behind the held permits; one with a tripped breaker. */
	FI_CREATE(stop, sx_breaker_create(&stop), -ENOMEM, -EAGAIN);
	FI_CREATE(never, sx_breaker_create(&never), -ENOMEM, -EAGAIN);
	for (intptr_t i = 0; i < NASYNC; i++) {
		FI_TRY(sx_sem_acquire_async(s, 1, i == 0 ? stop : never, async_cb, (void *)i),
		    -ENOMEM, -EAGAIN);
	}
	FI_CHECK(sx_breaker_trip(stop) == 0);
	FI_WAIT_FOR(__atomic_load_n(&async_calls[0], __ATOMIC_SEQ_CST) == 1);
	/* -ENOMEM (documented in sx_sem_fn): the pool could not queue the callback. */
	FI_CHECK(async_err[0] == -ECANCELED || (async_err[0] == -ENOMEM && fi_failed() > 0), "%d",
	    async_err[0]);
	/* A blocking acquire on another thread, granted by the release below. */
	waiter_rc = 1;
	FI_CHECK(__real_pthread_create(&th, NULL, waiter, never) == 0);
	FI_WAIT_FOR(sx_sem_waiting(s) == NASYNC ||
	    __atomic_load_n(&waiter_rc, __ATOMIC_SEQ_CST) != 1);
	FI_CHECK(sx_sem_release(s, 2) == 0);
	pthread_join(th, NULL);
	rc = waiter_rc;
	if (rc != 0) {
		FI_CHECK(rc == -ENOMEM, "acquire: %d", rc);
		fi_off();
		FI_CHECK(sx_sem_acquire(s, 2, never) == 0);
	}
	FI_CHECK(sx_sem_release(s, 2) == 0);
	for (int i = 1; i < NASYNC; i++)
		FI_WAIT_FOR(__atomic_load_n(&async_calls[i], __ATOMIC_SEQ_CST) == 1);
	FI_CHECK(sx_pool_wait_idle(p) == 0);
	for (int i = 0; i < NASYNC; i++) {
		FI_CHECK(async_calls[i] == 1, "async %d called %d times", i, async_calls[i]);
		FI_CHECK(i == 0 || async_err[i] == 0 ||
		    (async_err[i] == -ENOMEM && fi_failed() > 0), "async %d: %d", i, async_err[i]);
	}
	FI_CHECK(sx_sem_set_capacity(s, 4) == 0); /* documents no -ENOMEM */
	FI_CHECK(sx_sem_in_use(s) == 0 && sx_sem_waiting(s) == 0);
	sx_sem_destroy(s);
	sx_breaker_release(stop);
	sx_breaker_release(never);
	sx_pool_destroy(p);
}

/* ---- rate limiters ------------------------------------------------------------------------- */

static void scenario_ratelimit(void)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;
	sx_ratelimit_keyed *kl;
	sx_ratelimit *rl;
	sx_breaker *stop;

	tu_vnow = 1000 * MS;
	o.rate = 10;
	o.burst = 2;
	o.clock = &tu_vclock;
	FI_CREATE(rl, sx_ratelimit_create(&o, &rl), -ENOMEM);
	FI_CHECK(sx_ratelimit_try(rl, 2) == 0);
	FI_CHECK(sx_ratelimit_try(rl, 1) == SX_ERATE_LIMITED);
	FI_CREATE(stop, sx_breaker_create(&stop), -ENOMEM, -EAGAIN);
	/* sx_ratelimit_wait documents no -ENOMEM or -EAGAIN: it must not fail here. */
	FI_CHECK(sx_ratelimit_wait(rl, 1, stop) == 0);
	FI_CHECK(sx_ratelimit_wait(rl, 1, NULL) == 0);
	sx_breaker_release(stop);
	sx_ratelimit_destroy(rl);

	/* The first keyed limiter starts the library's shared pool (a thread). */
	FI_CREATE(kl, sx_ratelimit_keyed_create(&o, 16, &kl), -ENOMEM, -EAGAIN);
	for (uint64_t k = 0; k < 8; k++) {
		/* A new key allocates its limiter: -ENOMEM admits nothing and changes nothing. */
		FI_TRY(sx_ratelimit_keyed_try(kl, k, 2), -ENOMEM);
		FI_CHECK(sx_ratelimit_keyed_try(kl, k, 1) == SX_ERATE_LIMITED);
	}
	sx_ratelimit_keyed_destroy(kl);
}

/* ---- fan-out ------------------------------------------------------------------------------- */

#define NCALLS 64

static int fan_calls[NCALLS];

static int fan_fn(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop; (void)arg;
	__atomic_add_fetch(&fan_calls[i], 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int fail_fn(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop; (void)arg;
	__atomic_add_fetch(&fan_calls[i], 1, __ATOMIC_SEQ_CST);
	return i == 5 ? -EIO : 0;
}

static int task_fn(sx_breaker *stop, void *arg)
{
	(void)stop;
	__atomic_add_fetch(&fan_calls[(intptr_t)arg], 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void expect_calls(int want, int upto)
{
	for (int i = 0; i < upto; i++)
		FI_CHECK(fan_calls[i] == want, "call %d ran %d times", i, fan_calls[i]);
}

/* A fan-out that failed: only -ENOMEM and -EAGAIN are documented, and then nothing started.
 * Returns true when it failed. */
static bool fan_failed(int rc, int upto)
{
	if (rc == 0)
		return false;
	FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "fan-out: %d (%s)", rc, sx_strerror(rc));
	for (int i = 0; i < upto; i++)
		FI_CHECK(fan_calls[i] == 0, "fan-out failed (%d) but call %d ran %d times", rc, i,
		    fan_calls[i]);
	return true;
}

static void scenario_fanout(void)
{
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	sx_fanout_task tasks[8];
	int errors[NCALLS];
	sx_promise *pr;
	sx_pool *p = fi_make_pool(2, NULL);
	int rc;

	/* map: every call once. */
	memset(fan_calls, 0, sizeof(fan_calls));
	o.limit = 4;
	rc = sx_fanout_map(p, NCALLS, fan_fn, NULL, &o);
	if (fan_failed(rc, NCALLS)) {
		fi_off();
		memset(fan_calls, 0, sizeof(fan_calls));
		FI_CHECK(sx_fanout_map(p, NCALLS, fan_fn, NULL, &o) == 0);
	}
	expect_calls(1, NCALLS);

	/* fail-fast with errors collected: call 5 fails, nothing runs twice. */
	memset(fan_calls, 0, sizeof(fan_calls));
	o.errors = errors;
	rc = sx_fanout_map(p, NCALLS, fail_fn, NULL, &o);
	if (rc != -EIO && fan_failed(rc, NCALLS)) {
		fi_off();
		memset(fan_calls, 0, sizeof(fan_calls));
		rc = sx_fanout_map(p, NCALLS, fail_fn, NULL, &o);
	}
	FI_CHECK(rc == -EIO, "%d", rc);
	FI_CHECK(errors[5] == -EIO && fan_calls[5] == 1);
	for (int i = 0; i < NCALLS; i++)
		FI_CHECK(fan_calls[i] <= 1 && (fan_calls[i] == 1 || errors[i] != 0),
		    "call %d: ran %d, error %d", i, fan_calls[i], errors[i]);
	o.errors = NULL;

	/* exec, async. */
	memset(fan_calls, 0, sizeof(fan_calls));
	for (intptr_t i = 0; i < 8; i++)
		tasks[i] = (sx_fanout_task){ task_fn, (void *)i };
	FI_CREATE(pr, sx_fanout_exec_async(p, tasks, 8, &o, &pr), -ENOMEM, -EAGAIN);
	rc = sx_promise_get(pr, -1, NULL);
	if (rc == -ENOMEM || rc == -EAGAIN) {
		/* get's own breaker or watch (see inject_promise), or a lane submit. */
		fi_off();
		rc = sx_promise_get(pr, -1, NULL);
		if (rc != 0) {
			FI_CHECK(rc == -ENOMEM || rc == -EAGAIN, "%d", rc);
			sx_promise_release(pr);
			memset(fan_calls, 0, sizeof(fan_calls));
			FI_CHECK(sx_fanout_exec(p, tasks, 8, &o) == 0);
			pr = NULL;
		}
	}
	FI_CHECK(rc == 0 || pr == NULL, "async: %d", rc);
	expect_calls(1, 8);
	sx_promise_release(pr);
	FI_CHECK(sx_pool_wait_idle(p) == 0);
	sx_pool_destroy(p);
}

FI_TESTS(sem, scenario_sem)
FI_TESTS(ratelimit, scenario_ratelimit)
FI_TESTS(fanout, scenario_fanout)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(sem),
		FI_TEST_PAIR(ratelimit),
		FI_TEST_PAIR(fanout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
