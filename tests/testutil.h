/* Helpers shared by strix's tests: cmocka, time, waiting on a condition with a deadline. */
#ifndef STRIX_TESTUTIL_H
#define STRIX_TESTUTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include <strix/join.h>
#include <strix/pool.h>
#include <strix/timer.h>

static inline uint64_t tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void tu_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Generous bound for anything that "must happen": the machine is shared and sanitizers are slow. */
#define TU_DEADLINE_NS (60ull * 1000000000ull)

/* Spin (yielding) until cond holds; fail the test if it has not within TU_DEADLINE_NS. */
#define TU_WAIT_FOR(cond)                                                        \
	do {                                                                     \
		uint64_t tu_t0_ = tu_now_ns();                                   \
		while (!(cond)) {                                                \
			if (tu_now_ns() - tu_t0_ > TU_DEADLINE_NS)               \
				fail_msg("timed out waiting for: %s", #cond);    \
			sched_yield();                                           \
		}                                                                \
	} while (0)

static inline void tu_watchdog_fired(int sig)
{
	static const char msg[] = "watchdog: no end in sight, aborting\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	abort();
}

/* For the white-box programs, before running their cases: a loop that never ends (an advance
 * that keeps finding the same slot, a task that never comes) aborts the program instead of
 * hanging it, after WHITE_WATCHDOG seconds (600 by default); WHITE_FILTER (a cmocka pattern,
 * e.g. 'test_race*') runs only the matching cases. */
static inline void tu_white_setup(void)
{
	signal(SIGALRM, tu_watchdog_fired);
	alarm(getenv("WHITE_WATCHDOG") != NULL ? (unsigned)atoi(getenv("WHITE_WATCHDOG")) : 600);
	if (getenv("WHITE_FILTER") != NULL)
		cmocka_set_test_filter(getenv("WHITE_FILTER"));
}

static inline uint64_t tu_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A pool of `workers` that parks at once when idle (timer and breaker tests). */
static inline sx_pool *tu_pool(unsigned workers)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	o.workers = workers;
	o.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	return p;
}

/* A test file's one pool for a whole group: TU_POOL_FIXTURE(n) defines `pool` (n workers, as
 * tu_pool makes them) and the group's `setup` and `teardown` that make and destroy it. */
#define TU_POOL_FIXTURE(workers)                                                          \
	static sx_pool *pool;                                                             \
	static int setup(void **state)                                                    \
	{                                                                                 \
		(void)state;                                                              \
		pool = tu_pool(workers);                                                  \
		return 0;                                                                 \
	}                                                                                 \
	static int teardown(void **state)                                                 \
	{                                                                                 \
		(void)state;                                                              \
		sx_pool_destroy(pool);                                                    \
		return 0;                                                                 \
	}

/* Recursive fib(n) with both calls forked by sx_join on pool, at every level: the answer in r. */
struct tu_fib {
	sx_pool *pool;
	unsigned n;
	uint64_t r;
};

static inline void tu_fib(void *p)
{
	struct tu_fib *f = p, a, b;

	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	a = (struct tu_fib){ f->pool, f->n - 1, 0 };
	b = (struct tu_fib){ f->pool, f->n - 2, 0 };
	assert_int_equal(sx_join(f->pool, tu_fib, &a, tu_fib, &b), 0);
	f->r = a.r + b.r;
}

/*
 * A shutdown that meets queued work: tu_hold occupies the worker of a 1-worker pool with a task
 * that waits to be let go, so what the test queues next stays queued; tu_shutdown_held starts
 * sx_pool_shutdown(mode) on a thread of its own and returns once the shutdown has begun
 * (submissions are refused); tu_release lets the task end and joins that thread, so the
 * shutdown has finished when it returns.
 */
struct tu_held {
	sx_pool *pool;
	int mode;
	atomic_int release;
	pthread_t thread;
};

static inline void tu_held_task(void *arg)
{
	TU_WAIT_FOR(atomic_load(&((struct tu_held *)arg)->release) == 1);
}

static inline void tu_held_noop(void *arg)
{
	(void)arg;
}

static inline void *tu_held_shutdown(void *arg)
{
	struct tu_held *h = arg;

	assert_int_equal(sx_pool_shutdown(h->pool, h->mode), 0);
	return NULL;
}

static inline void tu_hold(struct tu_held *h, sx_pool *pool)
{
	h->pool = pool;
	atomic_store(&h->release, 0);
	assert_int_equal(sx_pool_submit(pool, tu_held_task, h), 0);
}

static inline void tu_shutdown_held(struct tu_held *h, int mode)
{
	h->mode = mode;
	assert_int_equal(pthread_create(&h->thread, NULL, tu_held_shutdown, h), 0);
	while (sx_pool_submit(h->pool, tu_held_noop, NULL) == 0)
		sched_yield();
}

static inline void tu_release(struct tu_held *h)
{
	atomic_store(&h->release, 1);
	pthread_join(h->thread, NULL);
}

/* STRESS=1 in the environment makes stress tests longer. */
static inline unsigned tu_stress_scale(void)
{
	const char *s = getenv("STRESS");

	return (s != NULL && atoi(s) > 0) ? (unsigned)atoi(s) * 10u : 1u;
}

/* A virtual clock: time moves only when the test (or a wait's sleep_ns) moves it. One per test
 * program; tests that use it set tu_vnow first. */
static uint64_t tu_vnow;

static inline uint64_t tu_vclock_now(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&tu_vnow, __ATOMIC_ACQUIRE);
}

static inline void tu_vadvance(uint64_t ns)
{
	__atomic_add_fetch(&tu_vnow, ns, __ATOMIC_ACQ_REL);
}

static inline void tu_vclock_sleep(void *ctx, int64_t ns)
{
	(void)ctx;
	tu_vadvance((uint64_t)ns); /* strix never asks for a negative sleep */
}

static const sx_clock tu_vclock __attribute__((unused)) = { tu_vclock_now, NULL, tu_vclock_sleep };

#endif
