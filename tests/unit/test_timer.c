/*
 * Unit tests of the timer service (sx_timer_*): real time, so every bound on lateness is
 * generous (the machine is shared, sanitizers are slow); "never early" and "exactly once" are
 * exact.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <ck_pr.h>
#include <strix.h>

#include "testutil.h"

#define MS 1000000ull
#define LATE_BOUND (2000 * MS) /* generous: shared machine, sanitizers */

struct hit {
	unsigned calls;
	int status;
	uint64_t at;
	int worker;      /* sx_pool_worker_index on the thread that ran it */
	sx_pool *pool;
};

static void hit_cb(void *arg, int status)
{
	struct hit *h = arg;

	h->at = tu_now_ns();
	h->status = status;
	h->worker = h->pool != NULL ? sx_pool_worker_index(h->pool) : -2;
	ck_pr_store_uint(&h->calls, ck_pr_load_uint(&h->calls) + 1);
}

static void test_bad_input_changes_nothing(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;
	sx_timer t;
	struct hit h = { 0 };

	(void)state;
	o.timer_tick_ns = SX_WHEEL_TICK_MIN_NS - 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.timer_tick_ns = SX_WHEEL_TICK_MAX_NS + 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.timer_tick_ns = -SX_WHEEL_TICK_DEFAULT_NS;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	assert_null(p);

	p = tu_pool(1);
	assert_int_equal(sx_timer_add(NULL, MS, 0, hit_cb, &h, &t), -EINVAL);
	assert_int_equal(sx_timer_add(p, MS, 0, NULL, &h, &t), -EINVAL);
	assert_int_equal(sx_timer_add(p, MS, 0x80, hit_cb, &h, &t), -EINVAL);
	assert_int_equal(sx_timer_add(p, MS, SX_TIMER_INLINE << 1, hit_cb, &h, &t), -EINVAL);
	assert_int_equal(sx_timer_add(p, MS, ~0u, hit_cb, &h, &t), -EINVAL);
	assert_int_equal(sx_timer_cancel(NULL), -EINVAL);
	memset(&t, 0, sizeof(t));
	assert_int_equal(sx_timer_cancel(&t), -EINVAL);
	sx_pool_destroy(p);
	assert_int_equal(h.calls, 0);
}

/* Absurd deadlines are accepted and saturate: delays up to INT64_MAX and absolute times up to
 * UINT64_MAX wait (far in the future) until cancelled; a negative delay is refused; 0 fires at
 * once. */
static void test_absurd_deadlines_saturate(void **state)
{
	static const uint64_t whens[] = { UINT64_MAX, (uint64_t)INT64_MIN, (uint64_t)INT64_MAX };
	static const int64_t delays[] = { INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1 };
	sx_pool *p = tu_pool(1);
	struct hit h = { 0 }, now = { 0 };
	sx_timer t[6];

	(void)state;
	for (unsigned i = 0; i < 6; i++) {
		if (i & 1)
			assert_int_equal(sx_timer_add_at(p, whens[i / 2], 0, hit_cb, &h, &t[i]), 0);
		else
			assert_int_equal(sx_timer_add(p, delays[i / 2], 0, hit_cb, &h, &t[i]), 0);
	}
	assert_int_equal(sx_timer_add(p, -1, 0, hit_cb, &h, NULL), -EINVAL);
	assert_int_equal(sx_timer_add(p, INT64_MIN, SX_TIMER_INLINE, hit_cb, &h, NULL), -EINVAL);
	assert_int_equal(sx_timer_add(p, 0, SX_TIMER_INLINE, hit_cb, &now, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&now.calls) == 1);
	assert_int_equal(now.status, 0);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(sx_timer_cancel(&t[i]), 0);
	sx_pool_destroy(p);
	assert_int_equal(h.calls, 0);
}

/* An allocator that fails, once armed, every allocation made on a thread that is neither the
 * test's nor one of the pool's workers: the timer thread's. */
struct failing_alloc {
	sx_pool *pool;
	pthread_t main;
	unsigned armed;
	unsigned failed;
};

static void *fa_alloc(void *ctx, size_t size, size_t align)
{
	struct failing_alloc *fa = ctx;

	if (ck_pr_load_uint(&fa->armed) && !pthread_equal(pthread_self(), fa->main) &&
	    sx_pool_worker_index(ck_pr_load_ptr(&fa->pool)) < 0) {
		ck_pr_inc_uint(&fa->failed);
		return NULL;
	}
	return sx_allocator_default.alloc(sx_allocator_default.ctx, size, align);
}

static void fa_free(void *ctx, void *ptr, size_t size, size_t align)
{
	(void)ctx;
	sx_allocator_default.free(sx_allocator_default.ctx, ptr, size, align);
}

/* The timer thread cannot allocate what it needs to submit a callback as a pool task: the
 * callback hears -ENOMEM (not a shutdown that did not happen), on the timer thread, and the
 * pool and its timers go on once memory is back. */
static void test_allocation_failure_on_the_timer_thread_is_enomem(void **state)
{
	struct failing_alloc fa = { NULL, pthread_self(), 0, 0 };
	sx_allocator a = { fa_alloc, fa_free, &fa };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct hit h = { 0 }, later = { 0 };
	sx_pool *p = NULL;

	(void)state;
	o.workers = 1;
	o.spin_ns = SX_SPIN_NONE;
	o.allocator = &a;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	ck_pr_store_ptr(&fa.pool, p);
	ck_pr_store_uint(&fa.armed, 1);
	h.pool = p;
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &h, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&h.calls) == 1);
	assert_int_equal(h.status, -ENOMEM);
	assert_int_equal(h.worker, -1); /* on the timer thread */
	assert_true(ck_pr_load_uint(&fa.failed) >= 1);

	ck_pr_store_uint(&fa.armed, 0);
	later.pool = p;
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &later, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&later.calls) == 1);
	assert_int_equal(later.status, 0);
	assert_true(later.worker >= 0); /* a pool task again */
	sx_pool_destroy(p);
	assert_int_equal(h.calls, 1);
	assert_int_equal(later.calls, 1);
}

static void test_fires_once_never_early(void **state)
{
	sx_pool *p = tu_pool(2);
	struct hit a = { 0 }, b = { 0 };
	uint64_t t0;

	(void)state;
	b.pool = p;
	t0 = tu_now_ns();
	assert_int_equal(sx_timer_add(p, 20 * MS, SX_TIMER_INLINE, hit_cb, &a, NULL), 0);
	assert_int_equal(sx_timer_add(p, 30 * MS, 0, hit_cb, &b, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&a.calls) == 1 && ck_pr_load_uint(&b.calls) == 1);
	assert_true(a.at - t0 >= 20 * MS);
	assert_true(a.at - t0 < 20 * MS + LATE_BOUND);
	assert_true(b.at - t0 >= 30 * MS);
	assert_int_equal(a.status, 0);
	assert_int_equal(b.status, 0);
	assert_int_equal(a.worker, -2);  /* inline: on the timer thread */
	assert_true(b.worker >= 0);      /* default: a pool task */
	sx_pool_destroy(p);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
}

static void test_absolute_and_past_deadlines(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit past = { 0 }, abs = { 0 };
	uint64_t t0 = tu_now_ns();

	(void)state;
	assert_int_equal(sx_timer_add_at(p, t0 - 5 * MS, SX_TIMER_INLINE, hit_cb, &past, NULL), 0);
	assert_int_equal(sx_timer_add_at(p, 0, SX_TIMER_INLINE, hit_cb, &past, NULL), 0);
	assert_int_equal(sx_timer_add_at(p, t0 + 15 * MS, SX_TIMER_INLINE, hit_cb, &abs, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&past.calls) == 2);
	assert_true(past.at - t0 < LATE_BOUND);
	TU_WAIT_FOR(ck_pr_load_uint(&abs.calls) == 1);
	assert_true(abs.at >= t0 + 15 * MS);
	sx_pool_destroy(p);
}

static void test_cancel_before_and_after_expiry(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit a = { 0 }, b = { 0 };
	sx_timer ta, tb;

	(void)state;
	assert_int_equal(sx_timer_add(p, 30 * MS, SX_TIMER_INLINE, hit_cb, &a, &ta), 0);
	assert_int_equal(sx_timer_add(p, 1 * MS, SX_TIMER_INLINE, hit_cb, &b, &tb), 0);
	assert_int_equal(sx_timer_cancel(&ta), 0);
	assert_int_equal(sx_timer_cancel(&ta), -EALREADY);
	TU_WAIT_FOR(ck_pr_load_uint(&b.calls) == 1);
	assert_int_equal(sx_timer_cancel(&tb), -EALREADY);
	/* A later timer fires, so the cancelled one's deadline has long passed. */
	assert_int_equal(sx_timer_add(p, 60 * MS, SX_TIMER_INLINE, hit_cb, &b, &tb), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&b.calls) == 2);
	assert_int_equal(ck_pr_load_uint(&a.calls), 0);
	/* The old handle stays safe to use after its node was reused. */
	assert_int_equal(sx_timer_cancel(&ta), -EALREADY);
	sx_pool_destroy(p);
	assert_int_equal(a.calls, 0);
}

static void test_earlier_timer_wakes_the_service(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit far = { 0 }, near = { 0 };
	sx_timer tf;
	uint64_t t0;

	(void)state;
	assert_int_equal(sx_timer_add(p, 3600ull * 1000 * MS, SX_TIMER_INLINE, hit_cb, &far, &tf), 0);
	tu_sleep_ns(20 * MS); /* let the timer thread go to sleep towards the far deadline */
	t0 = tu_now_ns();
	assert_int_equal(sx_timer_add(p, 10 * MS, SX_TIMER_INLINE, hit_cb, &near, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&near.calls) == 1);
	assert_true(near.at - t0 >= 10 * MS && near.at - t0 < 10 * MS + LATE_BOUND);
	assert_int_equal(sx_timer_cancel(&tf), 0);
	sx_pool_destroy(p);
	assert_int_equal(far.calls, 0);
}

/* An idle service costs no CPU: with one timer an hour away, its thread sleeps until then (no
 * periodic tick). Counted in voluntary context switches of the whole process, each a sleep that
 * ended: a 1 ms tick would make about 500 in the half second, a 10 ms one 50. */
static void test_idle_service_sleeps_until_its_timer(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit far = { 0 };
	struct rusage r0, r1;
	sx_timer tf;
	long switches;

	(void)state;
	assert_int_equal(sx_timer_add(p, 3600ull * 1000 * MS, SX_TIMER_INLINE, hit_cb, &far, &tf), 0);
	tu_sleep_ns(50 * MS); /* the thread takes the timer and goes to sleep; the worker parks */
	assert_int_equal(getrusage(RUSAGE_SELF, &r0), 0);
	tu_sleep_ns(500 * MS);
	assert_int_equal(getrusage(RUSAGE_SELF, &r1), 0);
	switches = r1.ru_nvcsw - r0.ru_nvcsw;
	assert_true(switches < 25);
	assert_int_equal(sx_timer_cancel(&tf), 0);
	sx_pool_destroy(p);
	assert_int_equal(far.calls, 0);
}

static void test_shutdown_flushes_pending_with_eshutdown(void **state)
{
	sx_pool *p = tu_pool(2);
	struct hit h[3] = { { 0 } };
	sx_timer t;

	(void)state;
	assert_int_equal(sx_timer_add(p, 3600ull * 1000 * MS, 0, hit_cb, &h[0], NULL), 0);
	assert_int_equal(sx_timer_add(p, 50ull * 1000 * MS, SX_TIMER_INLINE, hit_cb, &h[1], &t), 0);
	assert_int_equal(sx_timer_add(p, 70ull * 1000 * MS, 0, hit_cb, &h[2], NULL), 0);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(h[i].calls, 1);
		assert_int_equal(h[i].status, -ESHUTDOWN);
	}
	assert_int_equal(sx_timer_cancel(&t), -EALREADY);
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &h[0], NULL), -ESHUTDOWN);
	sx_pool_destroy(p);
	assert_int_equal(h[0].calls, 1);
}

static void test_add_after_shutdown_without_timers(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit h = { 0 };
	sx_timer t, before;

	(void)state;
	assert_int_equal(sx_pool_shutdown(p, SX_CANCEL), 0);
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &h, NULL), -ESHUTDOWN);
	memset(&t, 0x5a, sizeof(t));
	before = t;
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &h, &t), -ESHUTDOWN);
	assert_memory_equal(&t, &before, sizeof(t)); /* unchanged on failure */
	sx_pool_destroy(p);
	assert_int_equal(h.calls, 0);
}

/* A fired timer whose pool task is discarded by SX_CANCEL hears -ECANCELED. */
static unsigned gate;
static void block_task(void *arg)
{
	(void)arg;
	while (ck_pr_load_uint(&gate) == 0)
		sched_yield();
}

static void *shutdown_cancel(void *arg)
{
	assert_int_equal(sx_pool_shutdown(arg, SX_CANCEL), 0);
	return NULL;
}

static void test_cancel_shutdown_reports_discarded_callbacks(void **state)
{
	sx_pool *p = tu_pool(1);
	struct hit h = { 0 }, probe = { 0 };
	sx_pool_counters c;
	pthread_t th;

	(void)state;
	gate = 0;
	assert_int_equal(sx_pool_submit(p, block_task, NULL), 0);
	assert_int_equal(sx_timer_add(p, MS, 0, hit_cb, &h, NULL), 0);
	/* The timer fired once its task is queued behind the blocker: 2 tasks submitted. */
	TU_WAIT_FOR(sx_pool_stats(p, &c, NULL, 0) == 0 && c.submitted == 2);
	assert_int_equal(pthread_create(&th, NULL, shutdown_cancel, p), 0);
	TU_WAIT_FOR(sx_timer_add(p, MS, 0, hit_cb, &probe, NULL) == -ESHUTDOWN);
	ck_pr_store_uint(&gate, 1);
	pthread_join(th, NULL);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.status, -ECANCELED);
	sx_pool_destroy(p);
}

/* Callbacks may add timers (inline and as pool tasks): a chain of 20 re-arms. */
struct chain {
	sx_pool *pool;
	unsigned left;
	unsigned flags;
	unsigned done;
};

static void chain_cb(void *arg, int status)
{
	struct chain *ch = arg;

	assert_int_equal(status, 0);
	if (--ch->left == 0)
		ck_pr_store_uint(&ch->done, 1);
	else
		assert_int_equal(sx_timer_add(ch->pool, MS, ch->flags, chain_cb, ch, NULL), 0);
}

static void test_callbacks_rearm(void **state)
{
	sx_pool *p = tu_pool(2);
	struct chain a = { p, 20, SX_TIMER_INLINE, 0 }, b = { p, 20, 0, 0 };

	(void)state;
	assert_int_equal(sx_timer_add(p, MS, a.flags, chain_cb, &a, NULL), 0);
	assert_int_equal(sx_timer_add(p, MS, b.flags, chain_cb, &b, NULL), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&a.done) && ck_pr_load_uint(&b.done));
	sx_pool_destroy(p);
}

/* Many timers with random delays, half cancelled: exactly the others fire, once each. */
static void count_cb(void *arg, int status)
{
	unsigned *slot = arg;

	assert_int_equal(status, 0);
	ck_pr_inc_uint(slot);
}

static void test_random_timers_counts_exact(void **state)
{
	enum { N = 20000 };
	sx_pool *p = tu_pool(2);
	unsigned *calls = calloc(N, sizeof(unsigned));
	sx_timer *t = calloc(N, sizeof(sx_timer));
	bool *cancelled = calloc(N, sizeof(bool));
	uint64_t rng = 88172645463325252ull;

	(void)state;
	for (unsigned i = 0; i < N; i++) {
		uint64_t delay = tu_rand(&rng) % (30 * MS);
		unsigned flags = (tu_rand(&rng) & 1) ? SX_TIMER_INLINE : 0;

		assert_int_equal(sx_timer_add(p, delay, flags, count_cb, &calls[i], &t[i]), 0);
		if (i >= 8 && (tu_rand(&rng) & 1)) {
			unsigned j = i - (unsigned)(tu_rand(&rng) % 8);

			if (!cancelled[j])
				cancelled[j] = sx_timer_cancel(&t[j]) == 0;
		}
	}
	for (unsigned i = 0; i < N; i++)
		TU_WAIT_FOR(ck_pr_load_uint(&calls[i]) == (cancelled[i] ? 0u : 1u) ||
		    ck_pr_load_uint(&calls[i]) > 1);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	tu_sleep_ns(40 * MS);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(calls[i], cancelled[i] ? 0u : 1u);
	sx_pool_destroy(p);
	free(calls);
	free(t);
	free(cancelled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_absurd_deadlines_saturate),
		cmocka_unit_test(test_allocation_failure_on_the_timer_thread_is_enomem),
		cmocka_unit_test(test_fires_once_never_early),
		cmocka_unit_test(test_absolute_and_past_deadlines),
		cmocka_unit_test(test_cancel_before_and_after_expiry),
		cmocka_unit_test(test_earlier_timer_wakes_the_service),
		cmocka_unit_test(test_idle_service_sleeps_until_its_timer),
		cmocka_unit_test(test_shutdown_flushes_pending_with_eshutdown),
		cmocka_unit_test(test_add_after_shutdown_without_timers),
		cmocka_unit_test(test_cancel_shutdown_reports_discarded_callbacks),
		cmocka_unit_test(test_callbacks_rearm),
		cmocka_unit_test(test_random_timers_counts_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
