/*
 * Bad-input sweep: every public function of the headers in include/strix/ called with NULL
 * pointers, zero and absurd sizes and counts, absurd durations (INT64_MIN, -1, 0, INT64_MAX,
 * UINT64_MAX) and unknown flag bits. Each must return the error its header documents, not crash,
 * and change nothing: output pointers stay untouched, and the object works as before afterwards.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

#define MS 1000000ull
#define SENT ((void *)(uintptr_t)0x5a5a5a5a5a5a5a50ull) /* an output nobody may write */

static const int64_t bad_i64[] = { INT64_MIN, -1, INT64_MIN + 1 };
static const int64_t big_i64[] = { INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1 };
static const uint64_t big_u64[] = { UINT64_MAX, UINT64_MAX - 1, (uint64_t)INT64_MAX,
	(uint64_t)INT64_MAX + 1 };

/* ---- error ---------------------------------------------------------------------------------- */

static void sweep_error(void **state)
{
	static const int codes[] = { INT_MIN, INT_MAX, 1, 4096, -4096, SX_ELAST - 1, SX_EBASE,
		SX_EBASE + 1, -1, 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_non_null(sx_strerror(codes[i]));
	assert_string_equal(sx_strerror(INT_MIN), "unknown error");
	assert_string_equal(sx_strerror(SX_ELAST - 1), "unknown error");
	assert_string_not_equal(sx_strerror(SX_ECIRCUIT_OPEN), "unknown error");
	(void)sx_allocations();
}

/* ---- pool ----------------------------------------------------------------------------------- */

static int ran;

static void count_fn(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&ran, 1, __ATOMIC_SEQ_CST);
}

static void count_task(sx_task *t)
{
	(void)t;
	__atomic_add_fetch(&ran, 1, __ATOMIC_SEQ_CST);
}

/* The pool still runs tasks: submit one, wait, see it ran. */
static void pool_works(sx_pool *p)
{
	int before = __atomic_load_n(&ran, __ATOMIC_SEQ_CST);

	assert_int_equal(sx_pool_submit(p, count_fn, NULL), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_SEQ_CST), before + 1);
}

static void *bad_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx; (void)size; (void)align;
	return NULL;
}

static void pool_create_rejects(const sx_pool_opts *o)
{
	sx_pool *p = SENT;

	assert_int_equal(sx_pool_create(o, &p), -EINVAL);
	assert_ptr_equal(p, SENT);
}

static void sweep_pool(void **state)
{
	static const unsigned bad_rings[] = { 1, 2, 3, 5, 255, SX_POOL_MAX_RING * 2, UINT_MAX,
		SX_POOL_MAX_RING + 1 };
	static const int64_t bad_spin[] = { -3, -4, INT64_MIN, INT64_MIN + 1 };
	sx_allocator half = { bad_alloc, NULL, NULL }, half2 = { NULL, NULL, NULL };
	sx_pool_counters c;
	sx_worker_counters wc[2];
	sx_task t = SX_TASK_INIT(NULL, NULL);
	sx_pool_opts o;
	sx_pool *p;

	(void)state;
	assert_int_equal(sx_pool_create(NULL, NULL), -EINVAL);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.workers = SX_POOL_MAX_WORKERS + 1;
	pool_create_rejects(&o);
	o.workers = UINT_MAX;
	pool_create_rejects(&o);
	for (size_t i = 0; i < sizeof(bad_rings) / sizeof(bad_rings[0]); i++) {
		o = (sx_pool_opts)SX_POOL_OPTS_INIT;
		o.ring_size = bad_rings[i];
		pool_create_rejects(&o);
	}
	for (size_t i = 0; i < sizeof(bad_spin) / sizeof(bad_spin[0]); i++) {
		o = (sx_pool_opts)SX_POOL_OPTS_INIT;
		o.spin_ns = bad_spin[i];
		pool_create_rejects(&o);
	}
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.flags = 0x80000000u;
	pool_create_rejects(&o);
	o.flags = ~0u;
	pool_create_rejects(&o);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.lifo_cap = 1025;
	pool_create_rejects(&o);
	o.lifo_cap = UINT_MAX;
	pool_create_rejects(&o);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.allocator = &half;
	pool_create_rejects(&o);
	o.allocator = &half2;
	pool_create_rejects(&o);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.timer_tick_ns = 1;
	pool_create_rejects(&o);
	o.timer_tick_ns = SX_WHEEL_TICK_MAX_NS + 1;
	pool_create_rejects(&o);
	o.timer_tick_ns = INT64_MAX;
	pool_create_rejects(&o);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		o.timer_tick_ns = bad_i64[i]; /* a negative duration */
		pool_create_rejects(&o);
	}

	p = tu_pool(2);
	assert_int_equal(sx_pool_submit(NULL, count_fn, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit(p, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit_task(NULL, &t), -EINVAL);
	assert_int_equal(sx_pool_submit_task(p, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit_task(p, &t), -EINVAL); /* run NULL */
	assert_int_equal(sx_pool_wait_idle(NULL), -EINVAL);
	assert_int_equal(sx_pool_shutdown(NULL, SX_DRAIN), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, 0), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN | SX_CANCEL), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, -1), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, INT_MAX), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, INT_MIN), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, 4), -EINVAL);
	assert_int_equal(sx_pool_stats(NULL, &c, NULL, 0), -EINVAL);
	assert_int_equal(sx_pool_stats(p, NULL, NULL, 0), -EINVAL);
	assert_int_equal(sx_pool_stats(p, &c, NULL, UINT_MAX), 0);
	memset(wc, 0xab, sizeof(wc));
	assert_int_equal(sx_pool_stats(p, &c, wc, 0), 0);
	assert_int_equal(wc[0].executed, 0xababababababababull); /* n 0: nothing written */
	assert_int_equal(sx_pool_stats(p, &c, wc, 1), 0);
	assert_int_equal(wc[1].executed, 0xababababababababull); /* only min(n, workers) */
	assert_int_equal(sx_pool_worker_index(NULL), -1);
	assert_int_equal(sx_pool_worker_index(p), -1);
	assert_int_equal(sx_pool_workers(NULL), 0);
	assert_int_equal(sx_pool_workers(p), 2);
	sx_pool_destroy(NULL);
	/* Nothing above changed the pool: it still runs tasks, both forms. */
	pool_works(p);
	t.run = count_task;
	assert_int_equal(sx_pool_submit_task(p, &t), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	assert_int_equal(sx_pool_shutdown(p, SX_CANCEL), -ESHUTDOWN);
	assert_int_equal(sx_pool_shutdown(p, 0), -EINVAL);
	sx_pool_destroy(p);
}

/* ---- wheel and timers ----------------------------------------------------------------------- */

static int wfired;

static void wheel_cb(sx_wheel_timer *t)
{
	(void)t;
	wfired++;
}

static uint64_t no_now(void *ctx)
{
	(void)ctx;
	return 0;
}

static sx_wheel *vwheel(void)
{
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel *w = NULL;

	tu_vnow = 1000 * MS;
	o.clock = &tu_vclock;
	assert_int_equal(sx_wheel_create(&o, &w), 0);
	return w;
}

static void sweep_wheel(void **state)
{
	static const int64_t bad_ticks[] = { 1, SX_WHEEL_TICK_MIN_NS - 1, SX_WHEEL_TICK_MAX_NS + 1,
		INT64_MAX, -1, -SX_WHEEL_TICK_DEFAULT_NS, INT64_MIN };
	sx_clock nonow = { NULL, NULL, NULL };
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel_timer t, u, nofn;
	sx_wheel *w = SENT;

	(void)state;
	(void)no_now;
	assert_int_equal(sx_wheel_create(NULL, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_ticks) / sizeof(bad_ticks[0]); i++) {
		o.tick_ns = bad_ticks[i];
		assert_int_equal(sx_wheel_create(&o, &w), -EINVAL);
		assert_ptr_equal(w, SENT);
	}
	o.tick_ns = 0;
	o.clock = &nonow;
	assert_int_equal(sx_wheel_create(&o, &w), -EINVAL);
	assert_ptr_equal(w, SENT);
	sx_wheel_destroy(NULL);

	w = vwheel();
	sx_wheel_timer_init(&t, wheel_cb);
	sx_wheel_timer_init(&u, wheel_cb);
	sx_wheel_timer_init(&nofn, NULL);
	assert_int_equal(sx_wheel_add(NULL, &t, 0), -EINVAL);
	assert_int_equal(sx_wheel_add(w, NULL, 0), -EINVAL);
	assert_int_equal(sx_wheel_add(w, &nofn, 0), -EINVAL);
	assert_int_equal(sx_wheel_add_after(NULL, &t, 0), -EINVAL);
	assert_int_equal(sx_wheel_add_after(w, NULL, 0), -EINVAL);
	assert_int_equal(sx_wheel_add_after(w, &nofn, 0), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++)
		assert_int_equal(sx_wheel_add_after(w, &t, bad_i64[i]), -EINVAL);
	assert_false(sx_wheel_timer_pending(&t));
	assert_false(sx_wheel_timer_pending(&nofn));
	assert_int_equal(sx_wheel_cancel(NULL, &t), -EINVAL);
	assert_int_equal(sx_wheel_cancel(w, NULL), -EINVAL);
	assert_int_equal(sx_wheel_cancel(w, &t), -ENOENT);
	assert_int_equal(sx_wheel_advance(NULL), 0);
	assert_int_equal(sx_wheel_advance_to(NULL, UINT64_MAX), 0);
	assert_int_equal(sx_wheel_next_deadline(NULL), UINT64_MAX);
	assert_int_equal(sx_wheel_count(NULL), 0);
	assert_int_equal(sx_wheel_tick_ns(NULL), 0);
	assert_int_equal(sx_wheel_count(w), 0);
	assert_int_equal(sx_wheel_next_deadline(w), UINT64_MAX);

	/* A deadline in the past (0) fires at the next advance; a second add is -EBUSY. */
	wfired = 0;
	assert_int_equal(sx_wheel_add(w, &t, 0), 0);
	assert_int_equal(sx_wheel_add(w, &t, 0), -EBUSY);
	assert_int_equal(sx_wheel_add_after(w, &t, 5), -EBUSY);
	assert_int_equal(sx_wheel_count(w), 1);
	/* Earlier times are ignored: time never goes back. */
	assert_int_equal(sx_wheel_advance_to(w, 0), 1);
	assert_int_equal(wfired, 1);
	assert_int_equal(sx_wheel_cancel(w, &t), -ENOENT);
	/* A delay of INT64_MAX (292 years): pending, and cancellable. */
	assert_int_equal(sx_wheel_add_after(w, &u, INT64_MAX), 0);
	assert_true(sx_wheel_timer_pending(&u));
	assert_int_equal(sx_wheel_advance_to(w, tu_vnow + 3600000 * MS), 0);
	assert_int_equal(sx_wheel_cancel(w, &u), 0);
	assert_false(sx_wheel_timer_pending(&u));
	assert_int_equal(sx_wheel_count(w), 0);
	/* The wheel still works. */
	assert_int_equal(sx_wheel_add_after(w, &t, 2 * MS), 0);
	assert_int_equal(sx_wheel_advance_to(w, tu_vnow + 3600000 * MS + 10 * MS), 1);
	assert_int_equal(wfired, 2);
	sx_wheel_destroy(w);
}

/* sx_wheel_timer_init(NULL, fn): -EINVAL. */
static void sweep_wheel_timer_init_null(void **state)
{
	(void)state;
	assert_int_equal(sx_wheel_timer_init(NULL, wheel_cb), -EINVAL);
}

/* "A later deadline fires then" (at the end of the wheel's time): a deadline of UINT64_MAX
 * fires too. */
static void sweep_wheel_uint64_max_fires(void **state)
{
	sx_wheel_timer t;
	sx_wheel *w;

	(void)state;
	w = vwheel();
	wfired = 0;
	sx_wheel_timer_init(&t, wheel_cb);
	assert_int_equal(sx_wheel_add(w, &t, UINT64_MAX), 0);
	assert_int_equal(sx_wheel_advance_to(w, UINT64_MAX), 1);
	assert_int_equal(wfired, 1);
	assert_false(sx_wheel_timer_pending(&t));
	sx_wheel_destroy(w);
}

static int tfired;

static void timer_cb(void *arg, int status)
{
	(void)arg; (void)status;
	__atomic_add_fetch(&tfired, 1, __ATOMIC_SEQ_CST);
}

static void sweep_timer(void **state)
{
	static const unsigned bad_flags[] = { 0x1, 0x4, 0x80, 0x80000000u, ~0u, ~0u & ~2u };
	sx_pool *p = tu_pool(1);
	sx_timer h, zero;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(sx_timer_add(NULL, MS, 0, timer_cb, NULL, &h), -EINVAL);
	assert_int_equal(sx_timer_add(p, MS, 0, NULL, NULL, &h), -EINVAL);
	assert_int_equal(sx_timer_add_at(NULL, MS, 0, timer_cb, NULL, &h), -EINVAL);
	assert_int_equal(sx_timer_add_at(p, MS, 0, NULL, NULL, &h), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		memset(&h, 0x5a, sizeof(h));
		assert_int_equal(sx_timer_add(p, MS, bad_flags[i], timer_cb, NULL, &h), -EINVAL);
		assert_int_equal(sx_timer_add_at(p, MS, bad_flags[i], timer_cb, NULL, &h), -EINVAL);
		assert_int_equal(((unsigned char *)&h)[0], 0x5a); /* handle untouched */
	}
	/* A negative delay is refused; nothing is added. */
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		memset(&h, 0x5a, sizeof(h));
		assert_int_equal(sx_timer_add(p, bad_i64[i], 0, timer_cb, NULL, &h), -EINVAL);
		assert_int_equal(((unsigned char *)&h)[0], 0x5a);
	}
	assert_int_equal(sx_timer_cancel(NULL), -EINVAL);
	assert_int_equal(sx_timer_cancel(&zero), -EINVAL);
	/* Absurd deadlines saturate at 2^63 ns: accepted, pending, cancellable. */
	for (size_t i = 0; i < sizeof(big_i64) / sizeof(big_i64[0]); i++) {
		assert_int_equal(sx_timer_add(p, big_i64[i], 0, timer_cb, NULL, &h), 0);
		assert_int_equal(sx_timer_cancel(&h), 0);
		assert_int_equal(sx_timer_cancel(&h), -EALREADY);
	}
	for (size_t i = 0; i < sizeof(big_u64) / sizeof(big_u64[0]); i++) {
		assert_int_equal(sx_timer_add_at(p, big_u64[i], 0, timer_cb, NULL, &h), 0);
		assert_int_equal(sx_timer_cancel(&h), 0);
	}
	/* A delay of 0 and an absolute time of 0 (the past) fire at once. */
	tfired = 0;
	assert_int_equal(sx_timer_add(p, 0, 0, timer_cb, NULL, NULL), 0);
	assert_int_equal(sx_timer_add_at(p, 0, SX_TIMER_INLINE, timer_cb, NULL, NULL), 0);
	TU_WAIT_FOR(__atomic_load_n(&tfired, __ATOMIC_SEQ_CST) == 2);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(tfired, 2); /* the cancelled ones never ran */
	sx_pool_destroy(p);
}

/* ---- breakers ------------------------------------------------------------------------------- */

static int bcalls;

static void bcb(sx_breaker *b, void *arg)
{
	(void)b; (void)arg;
	__atomic_add_fetch(&bcalls, 1, __ATOMIC_SEQ_CST);
}

static void sweep_breaker(void **state)
{
	static const int bad_sigs[] = { SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
		SIGSYS };
	sx_pool *p = tu_pool(1);
	sx_breaker *b = SENT, *ok, *list[2];
	sx_breaker_cb *h = SENT;
	sigset_t set;

	(void)state;
	assert_int_equal(sx_breaker_create(NULL), -EINVAL);
	assert_int_equal(sx_breaker_timeout(NULL, 1, &b), -EINVAL);
	assert_int_equal(sx_breaker_timeout(p, 1, NULL), -EINVAL);
	assert_int_equal(sx_breaker_deadline(NULL, 1, &b), -EINVAL);
	assert_int_equal(sx_breaker_deadline(p, 1, NULL), -EINVAL);
	assert_ptr_equal(b, SENT);
	/* ns < 0: no time limit, armed until a trip or the release. */
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		assert_int_equal(sx_breaker_timeout(p, bad_i64[i], &b), 0);
		assert_int_equal(sx_breaker_err(b), 0);
		assert_int_equal(sx_breaker_wait(b, 1000), -ETIMEDOUT);
		sx_breaker_release(b);
	}
	/* ns == 0 and past deadlines: already tripped with -ETIMEDOUT. */
	assert_int_equal(sx_breaker_timeout(p, 0, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	sx_breaker_release(b);
	assert_int_equal(sx_breaker_deadline(p, 0, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	sx_breaker_release(b);
	/* Far away: armed. */
	assert_int_equal(sx_breaker_timeout(p, INT64_MAX, &b), 0);
	assert_int_equal(sx_breaker_err(b), 0);
	assert_int_equal(sx_breaker_wait(b, 1000), -ETIMEDOUT);
	sx_breaker_release(b);
	for (size_t i = 0; i < sizeof(big_u64) / sizeof(big_u64[0]); i++) {
		assert_int_equal(sx_breaker_deadline(p, big_u64[i], &b), 0);
		assert_int_equal(sx_breaker_err(b), 0);
		sx_breaker_release(b);
	}

	b = SENT;
	sigemptyset(&set);
	assert_int_equal(sx_breaker_signal(NULL, &b), -EINVAL);
	assert_int_equal(sx_breaker_signal(&set, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_sigs) / sizeof(bad_sigs[0]); i++) {
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, bad_sigs[i]);
		assert_int_equal(sx_breaker_signal(&set, &b), -EINVAL);
		assert_ptr_equal(b, SENT);
	}
	/* Nothing changed on failure: SIGUSR1's disposition is still the default. */
	{
		struct sigaction now;

		sigaction(SIGUSR1, NULL, &now);
		assert_true(now.sa_handler == SIG_DFL);
	}
	sigemptyset(&set);
	assert_int_equal(sx_breaker_signal(&set, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	sx_breaker_release(b);

	b = SENT;
	assert_int_equal(sx_breaker_create(&ok), 0);
	list[0] = ok;
	list[1] = NULL;
	assert_int_equal(sx_breaker_multiplex(NULL, 1, &b), -EINVAL);
	assert_int_equal(sx_breaker_multiplex(NULL, SIZE_MAX, &b), -EINVAL);
	assert_int_equal(sx_breaker_multiplex(list, 2, &b), -EINVAL);
	assert_int_equal(sx_breaker_multiplex(list, 1, NULL), -EINVAL);
	assert_int_equal(sx_breaker_child(NULL, &b), -EINVAL);
	assert_int_equal(sx_breaker_child(ok, NULL), -EINVAL);
	assert_ptr_equal(b, SENT);
	assert_int_equal(sx_breaker_multiplex(NULL, 0, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	sx_breaker_release(b);

	assert_int_equal(sx_breaker_err(NULL), -EINVAL);
	assert_int_equal(sx_breaker_signo(NULL), 0);
	assert_int_equal(sx_breaker_wait(NULL, 0), -EINVAL);
	assert_int_equal(sx_breaker_wait(NULL, -1), -EINVAL);
	assert_int_equal(sx_breaker_wait(ok, 0), -ETIMEDOUT);
	assert_int_equal(sx_breaker_wait(ok, 1), -ETIMEDOUT);
	assert_int_equal(sx_breaker_on_done(NULL, bcb, NULL, &h), -EINVAL);
	assert_int_equal(sx_breaker_on_done(ok, NULL, NULL, &h), -EINVAL);
	assert_ptr_equal(h, SENT);
	assert_int_equal(sx_breaker_withdraw(NULL), -EINVAL);
	assert_int_equal(sx_breaker_trip(NULL), -EINVAL);
	sx_breaker_release(NULL);
	/* ok is still armed and works. */
	assert_int_equal(sx_breaker_err(ok), 0);
	bcalls = 0;
	assert_int_equal(sx_breaker_on_done(ok, bcb, NULL, NULL), 0);
	assert_int_equal(sx_breaker_trip(ok), 0);
	assert_int_equal(sx_breaker_trip(ok), -EALREADY);
	assert_int_equal(sx_breaker_err(ok), -ECANCELED);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++)
		assert_int_equal(sx_breaker_wait(ok, bad_i64[i]), 0); /* tripped: at once */
	assert_int_equal(sx_breaker_wait(ok, INT64_MAX), 0);
	assert_int_equal(sx_breaker_on_done(ok, bcb, NULL, &h), -EALREADY);
	TU_WAIT_FOR(__atomic_load_n(&bcalls, __ATOMIC_SEQ_CST) == 1);
	sx_breaker_release(ok);
	sx_pool_destroy(p);
}

/* ---- promises ------------------------------------------------------------------------------- */

static int steps;
static int value = 7;

static int step_ok(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx; (void)last;
	__atomic_add_fetch(&steps, 1, __ATOMIC_SEQ_CST);
	*out = &value;
	return 0;
}

static int recover_ok(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx; (void)err;
	*out = last;
	return 0;
}

static int fin_ok(sx_ctx *ctx, int err, void *v)
{
	(void)ctx; (void)v;
	return err;
}

/* Each a policy sx_retry_policy_check refuses. */
#define NBAD_POLICIES 14

static void bad_policies(sx_retry_policy *out, size_t *n)
{
	size_t i = 0;

	for (int k = 0; k < NBAD_POLICIES; k++)
		out[k] = (sx_retry_policy)SX_RETRY_POLICY_INIT;
	out[i++].backoff = -1;
	out[i++].backoff = SX_BACKOFF_DECORRELATED + 1;
	out[i++].jitter = -1;
	out[i++].jitter = SX_JITTER_DECORRELATED + 1;
	out[i++].factor = 0.5;
	out[i++].factor = NAN;
	out[i++].deviation = -0.1;
	out[i++].deviation = 1.1;
	out[i++].deviation = NAN;
	out[i++].factor = -INFINITY;
	out[i++].base_ns = -1;       /* negative durations */
	out[i++].base_ns = INT64_MIN;
	out[i++].cap_ns = -1;
	out[i++].cap_ns = INT64_MIN;
	*n = i;
}

static void sweep_promise(void **state)
{
	sx_retry_policy bad[NBAD_POLICIES];
	sx_pool *p = tu_pool(2);
	sx_promise *a, *c, *out = SENT, *list[2];
	size_t nbad;
	void *v = SENT;

	(void)state;
	bad_policies(bad, &nbad);
	steps = 0;
	assert_int_equal(sx_promise_run(NULL, step_ok, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_run(p, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_run(p, step_ok, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_run_with(NULL, NULL, step_ok, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_run_with(p, NULL, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_run_with(p, NULL, step_ok, NULL, NULL), -EINVAL);
	assert_ptr_equal(out, SENT);
	assert_int_equal(steps, 0); /* nothing ran */

	assert_int_equal(sx_promise_run(p, step_ok, NULL, &a), 0);
	assert_int_equal(sx_promise_then(NULL, step_ok, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_then(a, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_then(a, step_ok, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_catch(NULL, recover_ok, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_catch(a, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_catch(a, recover_ok, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_finally(NULL, fin_ok, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_finally(a, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_finally(a, fin_ok, NULL, NULL), -EINVAL);
	assert_int_equal(sx_promise_recover_and_retry(NULL, recover_ok, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_recover_and_retry(a, NULL, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_promise_recover_and_retry(a, recover_ok, NULL, NULL, NULL), -EINVAL);
	for (size_t i = 0; i < nbad; i++)
		assert_int_equal(sx_promise_recover_and_retry(a, recover_ok, NULL, &bad[i], &out),
		    -EINVAL);
	/* Only run, run_with and then have a step to run again. */
	assert_int_equal(sx_promise_catch(a, recover_ok, NULL, &c), 0);
	assert_int_equal(sx_promise_recover_and_retry(c, recover_ok, NULL, NULL, &out), -EINVAL);
	assert_ptr_equal(out, SENT);

	assert_int_equal(sx_promise_get(NULL, 0, &v), -EINVAL);
	assert_int_equal(sx_promise_get(NULL, -1, &v), -EINVAL);
	assert_int_equal(sx_promise_get_until(NULL, NULL, &v), -EINVAL);
	assert_ptr_equal(v, SENT);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		v = NULL;
		assert_int_equal(sx_promise_get(a, bad_i64[i], &v), 0); /* < 0: no timeout */
		assert_ptr_equal(v, &value);
	}
	assert_int_equal(sx_promise_get(a, INT64_MAX, &v), 0);
	assert_int_equal(sx_promise_get(c, INT64_MAX, NULL), 0);
	assert_false(sx_promise_settled(NULL));
	assert_true(sx_promise_settled(a));
	assert_int_equal(sx_promise_cancel(NULL), -EINVAL);
	sx_promise_release(NULL);

	list[0] = a;
	list[1] = NULL;
	out = SENT;
	assert_int_equal(sx_promise_all(NULL, list, 1, &out), -EINVAL);
	assert_int_equal(sx_promise_all(p, NULL, 1, &out), -EINVAL);
	assert_int_equal(sx_promise_all(p, NULL, SIZE_MAX, &out), -EINVAL);
	assert_int_equal(sx_promise_all(p, list, 2, &out), -EINVAL);
	assert_int_equal(sx_promise_all(p, list, 1, NULL), -EINVAL);
	assert_int_equal(sx_promise_any(p, list, 0, &out), -EINVAL);
	assert_int_equal(sx_promise_any(p, NULL, 0, &out), -EINVAL);
	assert_int_equal(sx_promise_any(p, list, 2, &out), -EINVAL);
	assert_int_equal(sx_promise_race(p, list, 0, &out), -EINVAL);
	assert_int_equal(sx_promise_race(p, list, 2, &out), -EINVAL);
	assert_int_equal(sx_promise_race(NULL, list, 1, &out), -EINVAL);
	assert_ptr_equal(out, SENT);
	assert_int_equal(sx_promise_all(p, NULL, 0, &out), 0);
	v = SENT;
	assert_int_equal(sx_promise_get(out, -1, &v), 0);
	assert_null(v);
	sx_promise_release(out);

	/* The chain still works: then on a, and the combinators over it. */
	assert_int_equal(sx_promise_then(a, step_ok, NULL, &out), 0);
	assert_int_equal(sx_promise_get(out, -1, &v), 0);
	assert_ptr_equal(v, &value);
	sx_promise_release(out);
	assert_int_equal(sx_promise_race(p, list, 1, &out), 0);
	assert_int_equal(sx_promise_get(out, -1, &v), 0);
	sx_promise_release(out);
	assert_int_equal(steps, 2);
	sx_promise_release(c);
	sx_promise_release(a);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	sx_pool_destroy(p);
}

/* ---- retry ---------------------------------------------------------------------------------- */

static int rcalls, set_delay_rc[4];

static int r_fn(sx_retrier *r, void *arg)
{
	(void)arg;
	rcalls++;
	set_delay_rc[0] = sx_retrier_set_delay(r, -1);
	set_delay_rc[1] = sx_retrier_set_delay(r, INT64_MIN);
	set_delay_rc[2] = sx_retrier_set_delay(r, 0);
	if (sx_retrier_iteration(r) == 2)
		return 0;
	return -EIO;
}

static void sweep_retry(void **state)
{
	sx_retry_policy bad[NBAD_POLICIES], pol = SX_RETRY_POLICY_INIT;
	sx_retry_budget bud, bud0;
	sx_backoff bo, bo0;
	sx_breaker *tripped;
	size_t nbad;

	(void)state;
	bad_policies(bad, &nbad);
	assert_int_equal(sx_retry_policy_check(NULL), -EINVAL);
	for (size_t i = 0; i < nbad; i++)
		assert_int_equal(sx_retry_policy_check(&bad[i]), -EINVAL);
	assert_int_equal(sx_retry_policy_check(&pol), 0);
	pol.factor = 0; /* 0 means 2 */
	assert_int_equal(sx_retry_policy_check(&pol), 0);

	assert_int_equal(sx_backoff_init(NULL, &pol), -EINVAL);
	memset(&bo, 0x5a, sizeof(bo));
	bo0 = bo;
	assert_int_equal(sx_backoff_init(&bo, NULL), -EINVAL);
	assert_memory_equal(&bo, &bo0, sizeof(bo));
	for (size_t i = 0; i < nbad; i++) {
		assert_int_equal(sx_backoff_init(&bo, &bad[i]), -EINVAL);
		assert_memory_equal(&bo, &bo0, sizeof(bo));
	}
	/* Absurd bases saturate, never wrap. */
	pol = (sx_retry_policy)SX_RETRY_POLICY_INIT;
	pol.backoff = SX_BACKOFF_EXPONENTIAL;
	pol.base_ns = INT64_MAX;
	pol.factor = 1e300;
	assert_int_equal(sx_backoff_init(&bo, &pol), 0);
	assert_true(sx_backoff_next(&bo) >= (uint64_t)INT64_MAX); /* the base, through a double */
	for (int i = 1; i < 70; i++)
		assert_int_equal(sx_backoff_next(&bo), UINT64_MAX);
	pol.backoff = SX_BACKOFF_LINEAR;
	pol.base_ns = INT64_MAX;
	assert_int_equal(sx_backoff_init(&bo, &pol), 0);
	assert_int_equal(sx_backoff_next(&bo), INT64_MAX);
	assert_int_equal(sx_backoff_next(&bo), UINT64_MAX - 1);
	assert_int_equal(sx_backoff_next(&bo), UINT64_MAX);
	pol.backoff = SX_BACKOFF_FIBONACCI;
	pol.base_ns = INT64_MAX / 3 * 2;
	assert_int_equal(sx_backoff_init(&bo, &pol), 0);
	for (int i = 0; i < 100; i++)
		assert_true(sx_backoff_next(&bo) >= (uint64_t)(INT64_MAX / 3 * 2));

	memset(&bud, 0x5a, sizeof(bud));
	bud0 = bud;
	assert_int_equal(sx_retry_budget_init(&bud, 0, 0.0), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, (UINT64_C(1) << 40) + 1, 0.0), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, UINT64_MAX, 0.0), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, 10, -0.1), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, 10, 10.5), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, 10, NAN), -EINVAL);
	assert_int_equal(sx_retry_budget_init(&bud, 10, INFINITY), -EINVAL);
	assert_memory_equal(&bud, &bud0, sizeof(bud));
	assert_int_equal(sx_retry_budget_init(&bud, 1, 1.0), 0);
	assert_true(sx_retry_budget_withdraw(&bud));
	assert_false(sx_retry_budget_withdraw(&bud));
	sx_retry_budget_deposit(&bud);
	assert_int_equal(sx_retry_budget_tokens(&bud), 1);

	/* sx_retry: NULL fn and bad policies call nothing. */
	rcalls = 0;
	assert_int_equal(sx_retry(NULL, NULL, NULL, NULL), -EINVAL);
	for (size_t i = 0; i < nbad; i++)
		assert_int_equal(sx_retry(r_fn, NULL, &bad[i], NULL), -EINVAL);
	assert_int_equal(rcalls, 0);
	assert_int_equal(sx_breaker_create(&tripped), 0);
	sx_breaker_trip(tripped);
	assert_int_equal(sx_retry(r_fn, NULL, NULL, tripped), -ECANCELED);
	assert_int_equal(rcalls, 0);
	sx_breaker_release(tripped);
	assert_int_equal(sx_retry(r_fn, NULL, NULL, NULL), 0);
	assert_int_equal(rcalls, 2);
	assert_int_equal(set_delay_rc[0], -EINVAL);
	assert_int_equal(set_delay_rc[1], -EINVAL);
	assert_int_equal(set_delay_rc[2], 0);
	assert_int_equal(sx_retrier_set_delay(NULL, 1), -EINVAL);
}

static int long_calls;

/* Always fails; asks for an absurd delay before the next attempt when arg says so. */
static int long_fn(sx_retrier *r, void *arg)
{
	long_calls++;
	if (arg != NULL)
		assert_int_equal(sx_retrier_set_delay(r, INT64_MAX), 0);
	return -EIO;
}

/* Absurd delays with a time limit: the retry ends instead of waiting (on a virtual clock, whose
 * time must not have moved by the absurd delay). */
static void sweep_retry_delays(void **state)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	uint64_t t0;

	(void)state;
	tu_vnow = 1000 * MS;
	t0 = tu_vnow;
	pol.clock = &tu_vclock;
	pol.max_elapsed_ns = 1000 * MS;
	pol.backoff = SX_BACKOFF_CONSTANT;
	pol.base_ns = INT64_MAX;
	long_calls = 0;
	assert_int_equal(sx_retry(long_fn, NULL, &pol, NULL), -EIO);
	assert_int_equal(long_calls, 1);
	assert_true(tu_vnow - t0 <= 1000 * MS);
	pol.base_ns = 0;
	pol.max_attempts = 5;
	long_calls = 0;
	assert_int_equal(sx_retry(long_fn, (void *)1, &pol, NULL), -EIO);
	assert_int_equal(long_calls, 1);
	assert_true(tu_vnow - t0 <= 1000 * MS);
	/* A negative time limit is none: every attempt runs, each delay (1 s) is waited. */
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		pol.max_elapsed_ns = bad_i64[i];
		pol.base_ns = 1000 * MS;
		long_calls = 0;
		t0 = tu_vnow;
		assert_int_equal(sx_retry(long_fn, NULL, &pol, NULL), -EIO);
		assert_int_equal(long_calls, 5);
		assert_int_equal(tu_vnow - t0, 4000 * MS);
	}
	/* Jitter on a saturated backoff stays saturated or below, never wraps to small values. */
	{
		sx_backoff bo;

		pol = (sx_retry_policy)SX_RETRY_POLICY_INIT;
		pol.backoff = SX_BACKOFF_LINEAR;
		pol.base_ns = INT64_MAX;
		pol.jitter = SX_JITTER_DEVIATION;
		pol.deviation = 0.0;
		assert_int_equal(sx_backoff_init(&bo, &pol), 0);
		assert_true(sx_backoff_next(&bo) >= (uint64_t)INT64_MAX);
		for (int i = 1; i < 50; i++)
			assert_int_equal(sx_backoff_next(&bo), UINT64_MAX);
		pol.backoff = SX_BACKOFF_DECORRELATED;
		pol.jitter = SX_JITTER_NONE;
		pol.base_ns = INT64_MAX;
		assert_int_equal(sx_backoff_init(&bo, &pol), 0);
		for (int i = 0; i < 50; i++)
			assert_true(sx_backoff_next(&bo) >= (uint64_t)INT64_MAX);
		pol.backoff = SX_BACKOFF_EXPONENTIAL;
		pol.jitter = SX_JITTER_DECORRELATED;
		pol.base_ns = INT64_MAX;
		assert_int_equal(sx_backoff_init(&bo, &pol), 0);
		for (int i = 0; i < 50; i++)
			assert_true(sx_backoff_next(&bo) >= (uint64_t)INT64_MAX);
	}
}

/* sx_retry_budget_init/withdraw/deposit/tokens and sx_backoff_next take NULL: -EINVAL, false,
 * nothing, 0, 0 as documented. */
static void sweep_retry_null(void **state)
{
	(void)state;
	assert_int_equal(sx_retry_budget_init(NULL, 1, 0.0), -EINVAL);
	assert_false(sx_retry_budget_withdraw(NULL));
	sx_retry_budget_deposit(NULL);
	assert_int_equal(sx_retry_budget_tokens(NULL), 0);
	(void)sx_backoff_next(NULL);
}

/* ---- fan-out -------------------------------------------------------------------------------- */

static int fcalls;

static int f_fn(sx_breaker *stop, size_t i, void *arg)
{
	(void)stop; (void)i; (void)arg;
	__atomic_add_fetch(&fcalls, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int t_fn(sx_breaker *stop, void *arg)
{
	(void)stop; (void)arg;
	__atomic_add_fetch(&fcalls, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void sweep_fanout(void **state)
{
	static const unsigned bad_flags[] = { 0x2, 0x80000000u, ~0u };
	sx_fanout_task tasks[3] = { { t_fn, NULL }, { NULL, NULL }, { t_fn, NULL } };
	sx_fanout_opts o = SX_FANOUT_OPTS_INIT;
	sx_pool *p = tu_pool(2);
	sx_promise *out = SENT;

	(void)state;
	fcalls = 0;
	assert_int_equal(sx_fanout_map(NULL, 1, f_fn, NULL, NULL), -EINVAL);
	assert_int_equal(sx_fanout_map(p, 1, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_fanout_map(p, SX_FANOUT_MAX_TASKS + 1, f_fn, NULL, NULL), -EINVAL);
	assert_int_equal(sx_fanout_map(p, SIZE_MAX, f_fn, NULL, NULL), -EINVAL);
	o.limit = SX_FANOUT_MAX_LIMIT + 1;
	assert_int_equal(sx_fanout_map(p, 4, f_fn, NULL, &o), -EINVAL);
	o.limit = UINT_MAX;
	assert_int_equal(sx_fanout_map(p, 4, f_fn, NULL, &o), -EINVAL);
	o.limit = 0;
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		o.flags = bad_flags[i];
		assert_int_equal(sx_fanout_map(p, 4, f_fn, NULL, &o), -EINVAL);
		assert_int_equal(sx_fanout_exec(p, tasks, 1, &o), -EINVAL);
		assert_int_equal(sx_fanout_map_async(p, 4, f_fn, NULL, &o, &out), -EINVAL);
	}
	o.flags = 0;
	assert_int_equal(sx_fanout_exec(NULL, tasks, 1, NULL), -EINVAL);
	assert_int_equal(sx_fanout_exec(p, NULL, 1, NULL), -EINVAL);
	assert_int_equal(sx_fanout_exec(p, NULL, SIZE_MAX, NULL), -EINVAL);
	assert_int_equal(sx_fanout_exec(p, tasks, 3, NULL), -EINVAL); /* tasks[1].fn NULL */
	assert_int_equal(sx_fanout_exec(p, tasks, SX_FANOUT_MAX_TASKS + 1, NULL), -EINVAL);
	assert_int_equal(sx_fanout_map_async(NULL, 1, f_fn, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_fanout_map_async(p, 1, NULL, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_fanout_map_async(p, SIZE_MAX, f_fn, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_fanout_exec_async(p, tasks, 3, NULL, &out), -EINVAL);
	assert_int_equal(sx_fanout_exec_async(p, NULL, 1, NULL, &out), -EINVAL);
	assert_int_equal(sx_fanout_exec_async(NULL, tasks, 1, NULL, &out), -EINVAL);
	assert_ptr_equal(out, SENT);
	assert_int_equal(fcalls, 0); /* nothing started */
	/* n == 0: 0 at once (fn may then be NULL). */
	assert_int_equal(sx_fanout_map(p, 0, NULL, NULL, NULL), 0);
	assert_int_equal(sx_fanout_exec(p, NULL, 0, NULL), 0);
	/* A negative timeout is no timeout: every call runs. */
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		o.timeout_ns = bad_i64[i];
		assert_int_equal(sx_fanout_map(p, 8, f_fn, NULL, &o), 0);
		assert_int_equal(fcalls, 8 * (int)(i + 1));
	}
	fcalls = 0;
	o.timeout_ns = INT64_MAX;
	assert_int_equal(sx_fanout_map(p, 8, f_fn, NULL, &o), 0);
	assert_int_equal(fcalls, 8);
	/* The largest limit, far above n: each call still runs once. */
	o.timeout_ns = 0;
	o.limit = SX_FANOUT_MAX_LIMIT;
	assert_int_equal(sx_fanout_map(p, 4, f_fn, NULL, &o), 0);
	assert_int_equal(fcalls, 12);
	fcalls = 8;
	assert_int_equal(sx_fanout_exec(p, tasks, 1, NULL), 0);
	assert_int_equal(fcalls, 9);
	sx_pool_destroy(p);
}

/* ---- semaphore ------------------------------------------------------------------------------ */

static int scalls;

static void s_fn(sx_sem *s, int err, void *arg)
{
	(void)s; (void)err; (void)arg;
	__atomic_add_fetch(&scalls, 1, __ATOMIC_SEQ_CST);
}

static void sweep_sem(void **state)
{
	static const uint32_t bad_n[] = { 0, SX_SEM_MAX_CAPACITY + 1, UINT32_MAX };
	sx_pool *p = tu_pool(1);
	sx_sem *s = SENT, *nopool;

	(void)state;
	scalls = 0;
	assert_int_equal(sx_sem_create(p, 1, NULL), -EINVAL);
	assert_int_equal(sx_sem_create(p, SX_SEM_MAX_CAPACITY + 1, &s), -EINVAL);
	assert_int_equal(sx_sem_create(p, UINT32_MAX, &s), -EINVAL);
	assert_ptr_equal(s, SENT);
	assert_int_equal(sx_sem_create(p, 2, &s), 0);
	assert_int_equal(sx_sem_create(NULL, 2, &nopool), 0);
	for (size_t i = 0; i < sizeof(bad_n) / sizeof(bad_n[0]); i++) {
		assert_int_equal(sx_sem_try_acquire(s, bad_n[i]), -EINVAL);
		assert_int_equal(sx_sem_acquire(s, bad_n[i], NULL), -EINVAL);
		assert_int_equal(sx_sem_acquire_async(s, bad_n[i], NULL, s_fn, NULL), -EINVAL);
		assert_int_equal(sx_sem_release(s, bad_n[i]), -EINVAL);
	}
	assert_int_equal(sx_sem_try_acquire(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_acquire(NULL, 1, NULL), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(NULL, 1, NULL, s_fn, NULL), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(nopool, 1, NULL, s_fn, NULL), -EINVAL);
	assert_int_equal(sx_sem_release(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_release(s, 1), -EINVAL); /* none in use */
	assert_int_equal(sx_sem_set_capacity(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_set_capacity(s, SX_SEM_MAX_CAPACITY + 1), -EINVAL);
	assert_int_equal(sx_sem_set_capacity(s, UINT32_MAX), -EINVAL);
	assert_int_equal(sx_sem_capacity(NULL), 0);
	assert_int_equal(sx_sem_in_use(NULL), 0);
	assert_int_equal(sx_sem_waiting(NULL), 0);
	sx_sem_destroy(NULL); /* a no-op */
	/* Unchanged: capacity 2, nothing in use, nobody waiting, no callback ran. */
	assert_int_equal(sx_sem_capacity(s), 2);
	assert_int_equal(sx_sem_in_use(s), 0);
	assert_int_equal(sx_sem_waiting(s), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(scalls, 0);
	/* A tripped stop fails at once, even with permits free, and takes nothing. */
	{
		sx_breaker *t;

		assert_int_equal(sx_breaker_create(&t), 0);
		sx_breaker_trip(t);
		assert_int_equal(sx_sem_acquire(s, 1, t), -ECANCELED);
		assert_int_equal(sx_sem_acquire(s, SX_SEM_MAX_CAPACITY, t), -ECANCELED);
		assert_int_equal(sx_sem_in_use(s), 0);
		sx_breaker_release(t);
	}
	assert_int_equal(sx_sem_try_acquire(s, 2), 0);
	assert_int_equal(sx_sem_release(s, 3), -EINVAL); /* more than in use */
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN);
	assert_int_equal(sx_sem_release(s, 2), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, s_fn, NULL), 0);
	TU_WAIT_FOR(__atomic_load_n(&scalls, __ATOMIC_SEQ_CST) == 1);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(sx_sem_release(s, 1), 0);
	sx_sem_destroy(s);
	sx_sem_destroy(nopool);
	sx_pool_destroy(p);
}

/* ---- rate limiters -------------------------------------------------------------------------- */

static void rl_rejects(const sx_ratelimit_opts *o)
{
	sx_ratelimit *rl = SENT;
	sx_ratelimit_keyed *kl = SENT;

	assert_int_equal(sx_ratelimit_create(o, &rl), -EINVAL);
	assert_ptr_equal(rl, SENT);
	assert_int_equal(sx_ratelimit_keyed_create(o, 4, &kl), -EINVAL);
	assert_ptr_equal(kl, SENT);
}

static sx_ratelimit_opts rl_opts(void)
{
	sx_ratelimit_opts o = SX_RATELIMIT_OPTS_INIT;

	o.rate = 10;
	o.burst = 2;
	o.clock = &tu_vclock;
	return o;
}

static void sweep_ratelimit(void **state)
{
	static const uint32_t bad_n[] = { 0, 3, SX_RATELIMIT_MAX_BURST + 1, UINT32_MAX };
	sx_ratelimit_opts o;
	sx_ratelimit *rl = SENT;
	sx_ratelimit_keyed *kl = SENT;
	uint64_t d;

	(void)state;
	tu_vnow = 1000 * MS;
	o = rl_opts();
	assert_int_equal(sx_ratelimit_create(NULL, &rl), -EINVAL);
	assert_int_equal(sx_ratelimit_create(&o, NULL), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(NULL, 4, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, 4, NULL), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, 0, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, SX_RATELIMIT_MAX_KEYS + 1, &kl), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_create(&o, UINT32_MAX, &kl), -EINVAL);
	assert_ptr_equal(rl, SENT);
	assert_ptr_equal(kl, SENT);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		o = rl_opts();
		o.period_ns = bad_i64[i]; /* a negative duration */
		rl_rejects(&o);
	}
	o = rl_opts();
	o.rate = (uint64_t)o.period_ns + 1; /* more than one a nanosecond */
	rl_rejects(&o);
	o = rl_opts();
	o.period_ns = 0; /* the default, 1 s: at most 10^9 events in it */
	o.rate = UINT64_C(1000000001);
	rl_rejects(&o);
	o.rate = UINT64_MAX;
	rl_rejects(&o);
	o = rl_opts();
	o.burst = SX_RATELIMIT_MAX_BURST + 1;
	rl_rejects(&o);
	o.burst = UINT32_MAX;
	rl_rejects(&o);
	o = rl_opts();
	o.rate = 1;
	o.period_ns = INT64_MAX; /* burst * period / rate above 2^61 */
	rl_rejects(&o);
	o.period_ns = (UINT64_C(1) << 61) / 2 + 1;
	rl_rejects(&o);
	sx_ratelimit_destroy(NULL);
	sx_ratelimit_keyed_destroy(NULL);

	o = rl_opts();
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	assert_int_equal(sx_ratelimit_keyed_create(&o, 4, &kl), 0);
	d = sx_ratelimit_delay_ns(rl, 1);
	for (size_t i = 0; i < sizeof(bad_n) / sizeof(bad_n[0]); i++) {
		assert_int_equal(sx_ratelimit_try(rl, bad_n[i]), -EINVAL);
		assert_int_equal(sx_ratelimit_wait(rl, bad_n[i], NULL), -EINVAL);
		assert_int_equal(sx_ratelimit_delay_ns(rl, bad_n[i]), UINT64_MAX);
		assert_int_equal(sx_ratelimit_keyed_try(kl, 1, bad_n[i]), -EINVAL);
	}
	assert_int_equal(sx_ratelimit_try(NULL, 1), -EINVAL);
	assert_int_equal(sx_ratelimit_wait(NULL, 1, NULL), -EINVAL);
	assert_int_equal(sx_ratelimit_delay_ns(NULL, 1), UINT64_MAX);
	assert_int_equal(sx_ratelimit_keyed_try(NULL, 1, 1), -EINVAL);
	assert_int_equal(sx_ratelimit_keyed_try(kl, UINT64_MAX, 1), -EINVAL);
	/* A tripped stop: its code, and nothing admitted. */
	{
		sx_breaker *t;

		assert_int_equal(sx_breaker_create(&t), 0);
		sx_breaker_trip(t);
		assert_int_equal(sx_ratelimit_wait(rl, 1, t), -ECANCELED);
		sx_breaker_release(t);
	}
	/* Nothing was admitted: the full burst still passes, then the limit holds. */
	assert_int_equal(sx_ratelimit_delay_ns(rl, 1), d);
	assert_int_equal(sx_ratelimit_try(rl, 2), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 2), 0);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 1, 1), SX_ERATE_LIMITED);
	assert_int_equal(sx_ratelimit_keyed_try(kl, 0, 2), 0);
	sx_ratelimit_keyed_destroy(kl);
	sx_ratelimit_destroy(rl);
}

/* A clock at absurd times, and the longest allowed intervals: the burst passes, then the limit
 * holds (no wrap admits more); delays are sane. */
static void sweep_ratelimit_time(void **state)
{
	static const uint64_t times[] = { 0, 1, (uint64_t)INT64_MAX, UINT64_MAX / 2,
		UINT64_MAX - 1000 * MS };
	sx_ratelimit_opts o;
	sx_ratelimit *rl;

	(void)state;
	for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
		tu_vnow = times[t];
		o = rl_opts();
		assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
		assert_int_equal(sx_ratelimit_try(rl, 2), 0);
		assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
		assert_true(sx_ratelimit_delay_ns(rl, 1) <= 100 * MS);
		assert_true(sx_ratelimit_delay_ns(rl, 1) > 0);
		sx_ratelimit_destroy(rl);
	}
	/* The longest emission interval allowed: burst * interval just under 2^61 ns. */
	tu_vnow = 1000 * MS;
	o = rl_opts();
	o.rate = 1;
	o.burst = 1;
	o.period_ns = UINT64_C(1) << 61;
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	assert_true(sx_ratelimit_delay_ns(rl, 1) > (UINT64_C(1) << 60));
	tu_vadvance(UINT64_C(1) << 61);
	assert_int_equal(sx_ratelimit_try(rl, 1), 0);
	sx_ratelimit_destroy(rl);
}

/*
 * A clock within (burst + n) intervals of 2^64: the header says the limiter refuses rather than
 * let its theoretical arrival time wrap to a small value (which would admit everything).
 */
static void sweep_ratelimit_clock_end(void **state)
{
	sx_ratelimit_opts o;
	sx_ratelimit *rl;

	(void)state;
	tu_vnow = UINT64_MAX - 1;
	o = rl_opts();
	assert_int_equal(sx_ratelimit_create(&o, &rl), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_ratelimit_try(rl, 1), SX_ERATE_LIMITED);
	sx_ratelimit_destroy(rl);
}

/* A clock without now_ns is refused at create (it would be called through NULL). */
static void sweep_ratelimit_clock_without_now(void **state)
{
	sx_clock nonow = { NULL, NULL, NULL };
	sx_ratelimit_opts o;

	(void)state;
	o = rl_opts();
	o.clock = &nonow;
	rl_rejects(&o);
}

/* ---- circuit -------------------------------------------------------------------------------- */

static int transitions;

static void on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c; (void)from; (void)to; (void)m; (void)arg;
	__atomic_add_fetch(&transitions, 1, __ATOMIC_SEQ_CST);
}

static void circuit_rejects(const sx_circuit_opts *o)
{
	sx_circuit *c = SENT;

	assert_int_equal(sx_circuit_create(o, &c), -EINVAL);
	assert_ptr_equal(c, SENT);
}

#define CIRCUIT_BAD(field, val)                                                    \
	do {                                                                       \
		sx_circuit_opts o_ = SX_CIRCUIT_OPTS_INIT;                         \
		o_.field = (val);                                                  \
		circuit_rejects(&o_);                                              \
	} while (0)

static void sweep_circuit(void **state)
{
	static const int bad_states[] = { -1, 6, INT_MAX, INT_MIN, 1000 };
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	sx_circuit_metrics m, m0;
	sx_circuit_permit pm = 12345;
	sx_circuit *c = SENT;
	int rc;

	(void)state;
	assert_int_equal(sx_circuit_create(NULL, &c), -EINVAL);
	assert_int_equal(sx_circuit_create(&o, NULL), -EINVAL);
	assert_ptr_equal(c, SENT);
	CIRCUIT_BAD(window, -1);
	CIRCUIT_BAD(window, 2);
	CIRCUIT_BAD(window, INT_MAX);
	/* (0 is no longer bad anywhere: it means the default.) */
	CIRCUIT_BAD(window_size, SX_CIRCUIT_MAX_WINDOW + 1);
	CIRCUIT_BAD(window_size, UINT32_MAX);
	CIRCUIT_BAD(failure_rate, -1.0);
	CIRCUIT_BAD(failure_rate, 1.0000001);
	CIRCUIT_BAD(failure_rate, NAN);
	CIRCUIT_BAD(failure_rate, INFINITY);
	CIRCUIT_BAD(slow_rate, 2.0);
	CIRCUIT_BAD(slow_rate, -0.5);
	CIRCUIT_BAD(slow_rate, NAN);
	CIRCUIT_BAD(slow_call_ns, -1);
	CIRCUIT_BAD(slow_call_ns, INT64_MIN);
	CIRCUIT_BAD(open_ns, 999999);
	CIRCUIT_BAD(open_ns, SX_CIRCUIT_MAX_DURATION_NS + 1);
	CIRCUIT_BAD(open_ns, INT64_MAX);
	CIRCUIT_BAD(open_ns, -1);
	CIRCUIT_BAD(open_ns, INT64_MIN);
	CIRCUIT_BAD(probe_lease_ns, 999999);
	CIRCUIT_BAD(probe_lease_ns, INT64_MAX);
	CIRCUIT_BAD(probe_lease_ns, -1);
	CIRCUIT_BAD(probe_lease_ns, INT64_MIN);
	CIRCUIT_BAD(open_backoff, 0.5);
	CIRCUIT_BAD(open_backoff, -1.0);
	CIRCUIT_BAD(open_backoff, NAN);
	CIRCUIT_BAD(open_backoff, -INFINITY);
	CIRCUIT_BAD(open_max_ns, 1000);                    /* below open_ns */
	CIRCUIT_BAD(open_max_ns, SX_CIRCUIT_MAX_DURATION_NS + 1);
	CIRCUIT_BAD(open_max_ns, INT64_MAX);
	CIRCUIT_BAD(open_max_ns, -1);
	CIRCUIT_BAD(open_max_ns, INT64_MIN);
	CIRCUIT_BAD(half_open_permits, SX_CIRCUIT_MAX_PERMITS + 1);
	CIRCUIT_BAD(half_open_permits, UINT32_MAX);
	CIRCUIT_BAD(half_open_successes, 2);               /* above permits (1) */
	CIRCUIT_BAD(half_open_successes, UINT32_MAX);
	o.window = SX_CIRCUIT_WINDOW_TIME;
	o.window_buckets = SX_CIRCUIT_MAX_BUCKETS + 1;
	circuit_rejects(&o);
	o.window_buckets = UINT32_MAX;
	circuit_rejects(&o);
	o.window_buckets = 10;
	o.window_ns = 9;                                   /* below window_buckets */
	circuit_rejects(&o);
	o.window_ns = -1;
	circuit_rejects(&o);
	o.window_ns = INT64_MIN;
	circuit_rejects(&o);
	o.window_ns = 0;                                   /* 0: 10 s, the default */
	o.window_buckets = 0;                              /* 0: 10 */
	assert_int_equal(sx_circuit_create(&o, &c), 0);
	sx_circuit_destroy(c);
	c = SENT;
	sx_circuit_destroy(NULL);

	o = (sx_circuit_opts)SX_CIRCUIT_OPTS_INIT;
	o.on_state = on_state;
	o.window_size = 4;
	o.min_calls = 4;
	assert_int_equal(sx_circuit_create(&o, &c), 0);
	transitions = 0;
	assert_int_equal(sx_circuit_acquire(NULL, &pm), -EINVAL);
	assert_int_equal(pm, 12345);
	assert_int_equal(sx_circuit_acquire(c, NULL), -EINVAL);
	assert_int_equal(sx_circuit_release(NULL, 1, 0, 0), -EINVAL);
	assert_int_equal(sx_circuit_release(c, 0, 0, 0), -EINVAL);
	assert_int_equal(sx_circuit_state(NULL), -EINVAL);
	assert_int_equal(sx_circuit_force(NULL, SX_CIRCUIT_CLOSED), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++) {
		assert_int_equal(sx_circuit_force(c, bad_states[i]), -EINVAL);
		assert_string_equal(sx_circuit_state_name(bad_states[i]), "unknown");
	}
	assert_int_equal(sx_circuit_snapshot(NULL, &m), -EINVAL);
	assert_int_equal(sx_circuit_snapshot(c, NULL), -EINVAL);
	/* A permit never issued, and absurd latencies: no crash, and nothing counted. */
	assert_int_equal(sx_circuit_snapshot(c, &m0), 0);
	rc = sx_circuit_release(c, UINT64_MAX, -EIO, INT64_MAX);
	assert_true(rc == -ESTALE || rc == -EINVAL);
	assert_int_equal(sx_circuit_acquire(c, &pm), 0);
	assert_int_equal(sx_circuit_release(c, pm, -EIO, -1), -EINVAL); /* a negative latency */
	assert_int_equal(sx_circuit_release(c, pm, -EIO, INT64_MIN), -EINVAL);
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_int_equal(m.calls, m0.calls);
	assert_int_equal(m.failures, m0.failures);
	assert_int_equal(m.generation, m0.generation);
	assert_int_equal(transitions, 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_CLOSED);
	/* It still works. */
	assert_int_equal(sx_circuit_acquire(c, &pm), 0);
	assert_int_equal(sx_circuit_release(c, pm, 0, INT64_MAX), 0);
	assert_int_equal(sx_circuit_snapshot(c, &m), 0);
	assert_int_equal(m.calls, m0.calls + 1);
	assert_int_equal(sx_circuit_force(c, SX_CIRCUIT_DISABLED), 0);
	assert_int_equal(transitions, 1);
	sx_circuit_destroy(c);
}

/* A time window of absurd length, and a clock at absurd times: no crash, sane counts. */
static void sweep_circuit_time(void **state)
{
	static const uint64_t times[] = { 0, 1, UINT64_MAX / 4, UINT64_MAX / 2, UINT64_MAX - 1 };
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	sx_circuit_permit pm;
	sx_circuit_metrics m;
	sx_circuit *c;

	(void)state;
	for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
		tu_vnow = times[t];
		o.window = SX_CIRCUIT_WINDOW_TIME;
		o.window_ns = INT64_MAX;
		o.window_buckets = SX_CIRCUIT_MAX_BUCKETS;
		o.min_calls = 1000;
		o.clock = &tu_vclock;
		assert_int_equal(sx_circuit_create(&o, &c), 0);
		for (int i = 0; i < 10; i++) {
			assert_int_equal(sx_circuit_acquire(c, &pm), 0);
			assert_int_equal(sx_circuit_release(c, pm, i & 1 ? -EIO : 0, INT64_MAX),
			    0);
		}
		assert_int_equal(sx_circuit_snapshot(c, &m), 0);
		assert_int_equal(m.calls, 10);
		assert_int_equal(m.failures, 5);
		sx_circuit_destroy(c);
	}
}

/* ---- pipelines ------------------------------------------------------------------------------ */

static int actions;

static int act(sx_call *call)
{
	(void)call;
	__atomic_add_fetch(&actions, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static uint64_t key_of(const sx_call *call)
{
	(void)call;
	return 1;
}

static int fb(sx_call *call, int err, void *arg)
{
	(void)call; (void)arg;
	return err;
}

static int ic_before(void *self, sx_call *call, uint64_t *token)
{
	(void)self; (void)call; (void)token;
	return 0;
}

static void ic_after(void *self, sx_call *call, uint64_t token, int result)
{
	(void)self; (void)call; (void)token; (void)result;
}

static void sweep_pipeline(void **state)
{
	static const unsigned bad_flags[] = { 0x4, 0x80000000u, ~0u };
	sx_retry_policy bad[NBAD_POLICIES], rp = SX_RETRY_POLICY_INIT;
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_interceptor ic = { ic_before, ic_after, NULL };
	sx_pipeline *pl = SENT, *nopool;
	sx_ratelimit_keyed *kl;
	sx_ratelimit *rl;
	sx_circuit *c;
	sx_sem *sem;
	sx_pool *p = tu_pool(1);
	size_t nbad;
	void *out = SENT;

	(void)state;
	bad_policies(bad, &nbad);
	ro.rate = 1000000;
	assert_int_equal(sx_ratelimit_create(&ro, &rl), 0);
	assert_int_equal(sx_ratelimit_keyed_create(&ro, 4, &kl), 0);
	assert_int_equal(sx_sem_create(p, 4, &sem), 0);
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	po.pool = p;
	assert_int_equal(sx_pipeline_create(&po, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_create(&(sx_pipeline_opts)SX_PIPELINE_OPTS_INIT, &nopool), 0);
	assert_int_equal(sx_pipeline_create(&po, &pl), 0);
	sx_pipeline_destroy(NULL);

	assert_int_equal(sx_pipeline_add_ratelimit(NULL, rl, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_ratelimit(pl, NULL, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(NULL, kl, key_of), -EINVAL);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(pl, NULL, key_of), -EINVAL);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(pl, kl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead(NULL, sem, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, NULL, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_circuit(NULL, c), -EINVAL);
	assert_int_equal(sx_pipeline_add_circuit(pl, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_timeout(NULL, MS), -EINVAL);
	assert_int_equal(sx_pipeline_add_timeout(pl, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_timeout(nopool, MS), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		/* No limit: accepted, nothing added, no pool needed. */
		assert_int_equal(sx_pipeline_add_timeout(NULL, bad_i64[i]), -EINVAL);
		assert_int_equal(sx_pipeline_add_timeout(nopool, bad_i64[i]), 0);
		assert_int_equal(sx_pipeline_add_timeout(pl, bad_i64[i]), 0);
	}
	assert_int_equal(sx_pipeline_add_retry(NULL, &rp, 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_retry(pl, NULL, 0), -EINVAL);
	for (size_t i = 0; i < nbad; i++)
		assert_int_equal(sx_pipeline_add_retry(pl, &bad[i], 0), -EINVAL);
	assert_int_equal(sx_pipeline_add_fallback(NULL, fb, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_fallback(pl, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pipeline_add_interceptor(NULL, &ic), -EINVAL);
	assert_int_equal(sx_pipeline_add_interceptor(pl, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, bad_flags[i]), -EINVAL);
		assert_int_equal(sx_pipeline_add_bulkhead(pl, sem, bad_flags[i]), -EINVAL);
		assert_int_equal(sx_pipeline_add_retry(pl, &rp, bad_flags[i]), -EINVAL);
	}
	/* The retry flag means nothing to a limiter or a bulkhead. */
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, SX_PIPELINE_RETRY_CIRCUIT_OPEN), -EINVAL);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, sem, SX_PIPELINE_RETRY_CIRCUIT_OPEN), -EINVAL);
	assert_int_equal(sx_pipeline_call(NULL, act, NULL, NULL, &out), -EINVAL);
	assert_int_equal(sx_pipeline_call(pl, NULL, NULL, NULL, &out), -EINVAL);
	assert_ptr_equal(out, SENT);

	/* Nothing was added by the failures: an empty pipeline just runs the action. */
	actions = 0;
	assert_int_equal(sx_pipeline_call(nopool, act, NULL, NULL, NULL), 0);
	assert_int_equal(actions, 1);
	/* Fill pl to SX_PIPELINE_MAX layers: then -ENOSPC; after a call, -EBUSY. */
	assert_int_equal(sx_pipeline_add_ratelimit(pl, rl, 0), 0);
	assert_int_equal(sx_pipeline_add_ratelimit_keyed(pl, kl, key_of), 0);
	assert_int_equal(sx_pipeline_add_bulkhead(pl, sem, 0), 0);
	assert_int_equal(sx_pipeline_add_circuit(pl, c), 0);
	assert_int_equal(sx_pipeline_add_timeout(pl, 10000 * MS), 0);
	assert_int_equal(sx_pipeline_add_retry(pl, &rp, SX_PIPELINE_RETRY_CIRCUIT_OPEN), 0);
	assert_int_equal(sx_pipeline_add_fallback(pl, fb, NULL, NULL), 0);
	for (int i = 7; i < SX_PIPELINE_MAX; i++)
		assert_int_equal(sx_pipeline_add_interceptor(pl, &ic), 0);
	assert_int_equal(sx_pipeline_add_interceptor(pl, &ic), -ENOSPC);
	assert_int_equal(sx_pipeline_add_timeout(pl, MS), -ENOSPC);
	assert_int_equal(sx_pipeline_add_timeout(pl, -1), 0); /* no limit: no layer */
	assert_int_equal(sx_pipeline_call(pl, act, NULL, NULL, NULL), 0);
	assert_int_equal(actions, 2);
	assert_int_equal(sx_pipeline_add_interceptor(nopool, &ic), -EBUSY);
	assert_int_equal(sx_pipeline_add_timeout(nopool, -1), -EBUSY);
	assert_int_equal(sx_pipeline_call(nopool, act, NULL, NULL, NULL), 0);
	assert_int_equal(actions, 3);
	assert_int_equal(sx_sem_in_use(sem), 0);

	sx_pipeline_destroy(pl);
	sx_pipeline_destroy(nopool);
	sx_circuit_destroy(c);
	sx_sem_destroy(sem);
	sx_ratelimit_keyed_destroy(kl);
	sx_ratelimit_destroy(rl);
	sx_pool_destroy(p);
}

/* Runs 50 ms unless its breaker trips first (then it returns the breaker's code). */
static int act_linger(sx_call *call)
{
	__atomic_add_fetch(&actions, 1, __ATOMIC_SEQ_CST);
	if (call->breaker == NULL)
		return -EINVAL;
	if (sx_breaker_wait(call->breaker, 50 * (int64_t)MS) == -ETIMEDOUT)
		return 0;
	return sx_breaker_err(call->breaker);
}

/* A timeout near INT64_MAX saturates its deadline (now + ns, past 2^63) instead of wrapping into
 * the past: the call runs. */
static void sweep_pipeline_timeout_saturates(void **state)
{
	static const int64_t huge[] = { INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1 };
	sx_pipeline_opts po = SX_PIPELINE_OPTS_INIT;
	sx_pool *p;

	(void)state;
	p = tu_pool(1);
	po.pool = p;
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		sx_pipeline *pl;

		assert_int_equal(sx_pipeline_create(&po, &pl), 0);
		assert_int_equal(sx_pipeline_add_timeout(pl, huge[i]), 0);
		actions = 0;
		assert_int_equal(sx_pipeline_call(pl, act_linger, NULL, NULL, NULL), 0);
		assert_int_equal(actions, 1);
		sx_pipeline_destroy(pl);
	}
	sx_pool_destroy(p);
}

/* ---- groups --------------------------------------------------------------------------------- */

static int g_exec(void *arg)
{
	(void)arg;
	return -EIO;
}

static void g_int(int err, void *arg)
{
	(void)err; (void)arg;
}

static void sweep_group(void **state)
{
	static const int bad_sigs[] = { SIGKILL, SIGSTOP, SIGSEGV, 0, -1, 65, INT_MAX };
	sx_retry_policy bad[NBAD_POLICIES];
	sx_group_opts o = SX_GROUP_OPTS_INIT;
	sx_actor_info info;
	sx_breaker *b;
	sx_group *g = SENT;
	size_t nbad;
	int err = 12345, signo = 12345;

	(void)state;
	bad_policies(bad, &nbad);
	assert_int_equal(sx_group_create(NULL, NULL), -EINVAL);
	o.flags = 0x4;
	assert_int_equal(sx_group_create(&o, &g), -EINVAL);
	o.flags = ~0u;
	assert_int_equal(sx_group_create(&o, &g), -EINVAL);
	o.flags = 0;
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++) {
		o.shutdown_ns = bad_i64[i]; /* a negative deadline: none */
		assert_int_equal(sx_group_create(&o, &g), 0);
		sx_group_destroy(g);
		g = SENT;
	}
	o.shutdown_ns = 0;
	for (size_t i = 0; i < nbad; i++) {
		o.backoff = &bad[i];
		assert_int_equal(sx_group_create(&o, &g), -EINVAL);
	}
	assert_ptr_equal(g, SENT);
	sx_group_destroy(NULL);

	assert_int_equal(sx_group_create(NULL, &g), 0);
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_group_add(NULL, g_exec, g_int, NULL, NULL), -EINVAL);
	assert_int_equal(sx_group_add(g, NULL, g_int, NULL, NULL), -EINVAL);
	assert_int_equal(sx_group_add(g, g_exec, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_group_add_signals(NULL, NULL, 0), -EINVAL);
	assert_int_equal(sx_group_add_signals(g, NULL, 1), -EINVAL);
	assert_int_equal(sx_group_add_signals(g, NULL, SIZE_MAX), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_sigs) / sizeof(bad_sigs[0]); i++)
		assert_int_equal(sx_group_add_signals(g, (int[]){ SIGUSR1, bad_sigs[i] }, 2),
		    -EINVAL);
	assert_int_equal(sx_group_add_breaker(NULL, b), -EINVAL);
	assert_int_equal(sx_group_add_breaker(g, NULL), -EINVAL);
	assert_int_equal(sx_group_run(NULL), -EINVAL);
	assert_int_equal(sx_loop_run(NULL, b), -EINVAL);
	assert_int_equal(sx_loop_run(g, NULL), -EINVAL);
	assert_int_equal(sx_group_cause(NULL, &err, &signo), -EINVAL);
	assert_int_equal(err, 12345);
	assert_int_equal(sx_group_cause(g, &err, &signo), -ENOENT);
	assert_int_equal(err, 12345); /* untouched while no actor ended the group */
	assert_int_equal(sx_group_cause(g, NULL, NULL), -ENOENT);
	assert_int_equal(sx_group_actor(NULL, 0, &info), -EINVAL);
	assert_int_equal(sx_group_actor(g, 0, NULL), -EINVAL);
	assert_int_equal(sx_group_actor(g, 0, &info), -ENOENT); /* nothing added by the failures */
	assert_int_equal(sx_group_actor(g, UINT_MAX, &info), -ENOENT);
	assert_int_equal(sx_group_wait(NULL, 0), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++)
		assert_int_equal(sx_group_wait(g, bad_i64[i]), 0); /* no actor thread: at once */
	/* The group still works: the first actor is index 0, its -EIO ends the run. */
	assert_int_equal(sx_group_add(g, g_exec, g_int, NULL, NULL), 0);
	assert_int_equal(sx_group_actor(g, 1, &info), -ENOENT);
	assert_int_equal(sx_group_run(g), -EIO);
	assert_int_equal(sx_group_run(g), -EBUSY);
	assert_int_equal(sx_loop_run(g, b), -EBUSY);
	assert_int_equal(sx_group_add(g, g_exec, g_int, NULL, NULL), -EBUSY);
	assert_int_equal(sx_group_add_breaker(g, b), -EBUSY);
	assert_int_equal(sx_group_add_signals(g, NULL, 0), -EBUSY);
	assert_int_equal(sx_group_cause(g, &err, NULL), 0);
	assert_int_equal(err, -EIO);
	assert_int_equal(sx_group_wait(g, INT64_MAX), 0);
	sx_group_destroy(g);
	/* An empty group runs to 0 at once. */
	assert_int_equal(sx_group_create(NULL, &g), 0);
	assert_int_equal(sx_group_run(g), 0);
	sx_group_destroy(g);
	sx_breaker_release(b);
}

int main(void)
{
	const struct CMUnitTest sweep[] = {
		cmocka_unit_test(sweep_error),
		cmocka_unit_test(sweep_pool),
		cmocka_unit_test(sweep_wheel),
		cmocka_unit_test(sweep_timer),
		cmocka_unit_test(sweep_breaker),
		cmocka_unit_test(sweep_promise),
		cmocka_unit_test(sweep_retry),
		cmocka_unit_test(sweep_retry_delays),
		cmocka_unit_test(sweep_circuit_time),
		cmocka_unit_test(sweep_fanout),
		cmocka_unit_test(sweep_sem),
		cmocka_unit_test(sweep_ratelimit),
		cmocka_unit_test(sweep_ratelimit_time),
		cmocka_unit_test(sweep_circuit),
		cmocka_unit_test(sweep_pipeline),
		cmocka_unit_test(sweep_group),
		cmocka_unit_test(sweep_wheel_timer_init_null),
		cmocka_unit_test(sweep_wheel_uint64_max_fires),
		cmocka_unit_test(sweep_retry_null),
		cmocka_unit_test(sweep_ratelimit_clock_without_now),
		cmocka_unit_test(sweep_ratelimit_clock_end),
		cmocka_unit_test(sweep_pipeline_timeout_saturates),
	};

	return cmocka_run_group_tests_name("sweep", sweep, NULL, NULL);
}
