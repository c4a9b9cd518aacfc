/*
 * Fault injection for strix's tests (tests/inject). faults.c replaces the library's default
 * allocator (src/base/alloc_libc.c) and wraps pthread_create and pthread_key_create (the programs
 * are linked with -Wl,--wrap=...). Every allocation, thread creation and key creation is one
 * injection point; fi_arm tells it to fail the k-th point after the arm (FI_ONE), or the k-th and
 * every later one (FI_FROM). Counters are atomics: library threads allocate too.
 *
 * The runner (fi_run) forks one child per scenario run, so process-wide one-time state (the
 * breaker notifier thread, thread-specific keys) is fresh in every run and its failure points are
 * exercised too; a child that crashes, hangs (alarm) or leaks (LeakSanitizer at exit, with
 * ASAN_OPTIONS=detect_leaks=1:abort_on_error=1) fails the run for that k. Inside a scenario use
 * FI_CHECK / FI_TRY / FI_WAIT_FOR, never cmocka's asserts (the child must not return into cmocka).
 */
#ifndef STRIX_TESTS_FAULTS_H
#define STRIX_TESTS_FAULTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <strix/error.h>
#include <strix/pool.h>

enum fi_mode {
	FI_OFF = 0,  /* count only */
	FI_ONE = 1,  /* only the k-th point fails */
	FI_FROM = 2, /* the k-th and every later point fail */
};

enum fi_kind { FI_ALLOC = 0, FI_THREAD = 1, FI_KEY = 2, FI_NKINDS = 3 };

/* Reset the counters and fail as mode says from point k (1-based) on. */
void fi_arm(int mode, uint64_t k);
/* Stop failing (points are still counted). */
void fi_off(void);
/* Points seen since the last arm: all kinds, or one kind. */
uint64_t fi_points(void);
uint64_t fi_points_kind(int kind);
/* Points failed since the last arm. */
uint64_t fi_failed(void);
/* Blocks allocated and not yet freed, process-wide. */
int64_t fi_live(void);

/* Both of these are called by the library through --wrap. */
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __real_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));
int __wrap_pthread_key_create(pthread_key_t *key, void (*dtor)(void *));

/* ---- checks inside a scenario (in the child) ------------------------------------------------ */

/* Record a failure for the parent and end the child (exit status 3). */
__attribute__((noreturn, format(printf, 3, 4)))
void fi_fail(const char *file, int line, const char *fmt, ...);

#define FI_CHECK(cond, ...)                                                          \
	do {                                                                         \
		if (!(cond))                                                         \
			fi_fail(__FILE__, __LINE__, "check failed: " #cond " " __VA_ARGS__); \
	} while (0)

/* Whether rc is one of the n codes in allowed. */
bool fi_allowed(int rc, const int *allowed, size_t n);

/*
 * FI_TRY(expr, codes...) - evaluate expr (an int-returning call). 0: done. Otherwise its code
 * must be one of the codes given; then faults are turned off and expr is evaluated again, which
 * must now return 0 (a failed call changed nothing: the object is still usable). Evaluates to
 * the first return code, so callers can see whether the call failed.
 */
#define FI_TRY(expr, ...) FI_TRY_OUT_(expr, #expr, false, __VA_ARGS__)

/*
 * FI_CREATE(ptr, expr, codes...) - FI_TRY for a constructor that fills ptr: ptr is set to a
 * sentinel before each evaluation and must still hold it after a failure (*out unchanged).
 */
#define FI_SENTINEL ((void *)(uintptr_t)0x5a5a5a5a5a5a5a50ull)
#define FI_CREATE(ptr, expr, ...)                                                    \
	FI_TRY_OUT_(((ptr) = FI_SENTINEL, (expr)), #expr, (void *)(ptr) != FI_SENTINEL, __VA_ARGS__)

/* The body of both: what names the call; wrote, evaluated after a failed first call, says that
 * it wrote its output. */
#define FI_TRY_OUT_(expr, what, wrote, ...)                                                \
	({                                                                           \
		static const int fi_al_[] = { __VA_ARGS__ };                         \
		int fi_rc_ = (expr), fi_first_ = fi_rc_;                             \
		if (fi_rc_ != 0) {                                                   \
			if (!fi_allowed(fi_rc_, fi_al_, sizeof(fi_al_) / sizeof(int))) \
				fi_fail(__FILE__, __LINE__, "%s returned %d (%s), not a " \
				    "documented error", what, fi_rc_, sx_strerror(fi_rc_)); \
			if (wrote)                                                   \
				fi_fail(__FILE__, __LINE__, "%s failed (%d) but wrote " \
				    "its output", what, fi_rc_);                       \
			fi_off();                                                    \
			fi_rc_ = (expr);                                             \
			if (fi_rc_ != 0)                                             \
				fi_fail(__FILE__, __LINE__, "%s failed with %d (%s), " \
				    "then with faults off again %d (%s)", what,       \
				    fi_first_, sx_strerror(fi_first_), fi_rc_,         \
				    sx_strerror(fi_rc_));                              \
		}                                                                    \
		fi_first_;                                                           \
	})

/* A pool of `workers` that parks at once when idle, made under FI_CREATE's checks. */
static inline sx_pool *fi_make_pool(unsigned workers,
    void (*on_cancel)(void (*fn)(void *), void *arg, int err))
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;

	o.workers = workers;
	o.spin_ns = SX_SPIN_NONE;
	o.on_cancel = on_cancel;
	FI_CREATE(p, sx_pool_create(&o, &p), -ENOMEM, -EAGAIN);
	return p;
}

uint64_t fi_now_ns(void);

/* Spin (yielding) until cond holds; fail the run after 30 s. */
#define FI_WAIT_FOR(cond)                                                            \
	do {                                                                         \
		uint64_t fi_t0_ = fi_now_ns();                                       \
		while (!(cond)) {                                                    \
			if (fi_now_ns() - fi_t0_ > 30000000000ull)                   \
				fi_fail(__FILE__, __LINE__, "timed out waiting for: %s", #cond); \
			sched_yield();                                               \
		}                                                                    \
	} while (0)

/* ---- the runner (in the cmocka test, the parent) -------------------------------------------- */

typedef void (*fi_scenario)(void);

/*
 * fi_run - run scenario once with no fault in a child to count its injection points N, then once
 * per k = 1..N with the k-th point failing in mode (FI_ONE or FI_FROM), each in a child. Prints
 * the count and every failing k; returns how many runs failed (0: all passed). A run must end
 * with no more live blocks than the clean run left (its process-wide one-time state), besides
 * passing LeakSanitizer at the child's exit. Sets *npoints to N when npoints is not NULL.
 */
unsigned fi_run(const char *name, fi_scenario scenario, int mode, uint64_t *npoints);

/* Two cmocka tests, name_one and name_from, running scenario in each mode. */
#define FI_TESTS(name, scenario)                                              \
	static void name##_one(void **st)                                            \
	{                                                                            \
		(void)st;                                                            \
		assert_int_equal(fi_run(#name, scenario, FI_ONE, NULL), 0);   \
	}                                                                            \
	static void name##_from(void **st)                                           \
	{                                                                            \
		(void)st;                                                            \
		assert_int_equal(fi_run(#name, scenario, FI_FROM, NULL), 0);  \
	}
#define FI_TEST_PAIR(name) cmocka_unit_test(name##_one), cmocka_unit_test(name##_from)

#endif
