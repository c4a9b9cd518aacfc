/* Unit tests of the side pool for blocking work: sx_pool_spawn_blocking, its task form and
 * sx_promise_blocking - results, where they run, the thread cap, idle retirement, shutdown
 * (drain and cancel, each task told once), bad input, the promise's cancel before start. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* A gate blocking tasks wait on until the test opens it. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;
};

static struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

static void gate_close(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.open = false;
	pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.open = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

static void gate_pass(void)
{
	pthread_mutex_lock(&gate.mu);
	while (!gate.open)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static sx_pool *make_pool(unsigned workers, unsigned max_threads, int64_t idle_ns,
    void (*on_cancel)(void (*)(void *), void *, int))
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	o.workers = workers;
	o.blocking_max_threads = max_threads;
	o.blocking_idle_ns = idle_ns;
	o.on_cancel = on_cancel;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	return p;
}

static sx_pool_counters stats(sx_pool *p)
{
	sx_pool_counters c;

	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	return c;
}

/* Per-task records: how often each ran or was cancelled, and where it ran. */
#define NREC 64
static atomic_int ran[NREC], told[NREC], told_err[NREC], where[NREC];
static atomic_int running, running_max;
static sx_pool *cur_pool;

static void reset(sx_pool *p)
{
	for (int i = 0; i < NREC; i++) {
		atomic_store(&ran[i], 0);
		atomic_store(&told[i], 0);
		atomic_store(&told_err[i], 0);
		atomic_store(&where[i], -2);
	}
	atomic_store(&running, 0);
	atomic_store(&running_max, 0);
	cur_pool = p;
	gate_close();
}

static void note_running(void)
{
	int n = atomic_fetch_add(&running, 1) + 1;
	int m = atomic_load(&running_max);

	while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n))
		;
}

/* The blocking task: records itself, then waits at the gate. */
static void blocker(void *arg)
{
	int i = (int)(intptr_t)arg;

	note_running();
	atomic_store(&where[i], sx_pool_worker_index(cur_pool));
	gate_pass();
	atomic_fetch_add(&ran[i], 1);
	atomic_fetch_sub(&running, 1);
}

static void quick(void *arg)
{
	int i = (int)(intptr_t)arg;

	atomic_store(&where[i], sx_pool_worker_index(cur_pool));
	atomic_fetch_add(&ran[i], 1);
}

static void noop(void *arg)
{
	(void)arg;
}

static atomic_int probes;   /* shut_start's spawns accepted and not yet run or told */
static int probes_accepted; /* shut_start's spawns accepted */

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	int i = (int)(intptr_t)arg;

	if (fn == noop) {
		atomic_fetch_sub(&probes, 1);
		return;
	}
	assert_true(fn == blocker || fn == quick);
	atomic_fetch_add(&told[i], 1);
	atomic_store(&told_err[i], err);
}

/* Task form. */
struct rec_task {
	sx_task task;
	int i;
};

static void rt_run(sx_task *t)
{
	quick((void *)(intptr_t)SX_CONTAINER_OF(t, struct rec_task, task)->i);
}

static void rt_cancel(sx_task *t, int err)
{
	int i = SX_CONTAINER_OF(t, struct rec_task, task)->i;

	atomic_fetch_add(&told[i], 1);
	atomic_store(&told_err[i], err);
}

static int sum(atomic_int *a, int from, int to)
{
	int s = 0;

	for (int i = from; i < to; i++)
		s += atomic_load(&a[i]);
	return s;
}

/* Shutdown on a thread of its own: the test keeps the gate meanwhile. */
struct shut {
	pthread_t th;
	sx_pool *p;
	int mode, rc;
};

static void *shut_main(void *arg)
{
	struct shut *s = arg;

	s->rc = sx_pool_shutdown(s->p, s->mode);
	return NULL;
}

/* Start a shutdown and return once it has begun (spawns are refused from then on; the probes
 * accepted before are counted in `probes`). */
static void shut_start(struct shut *s, sx_pool *p, int mode)
{
	s->p = p;
	s->mode = mode;
	s->rc = 1;
	assert_int_equal(pthread_create(&s->th, NULL, shut_main, s), 0);
	atomic_store(&probes, 0);
	for (;;) {
		int rc = sx_pool_spawn_blocking(p, noop, NULL);

		if (rc == -ESHUTDOWN)
			break;
		assert_int_equal(rc, 0);
		atomic_fetch_add(&probes, 1);
		sched_yield();
	}
	probes_accepted = atomic_load(&probes);
}

/* ---- bad input and laziness ---------------------------------------------------------------- */

static int step_nothing(sx_ctx *ctx, void *last, void **out)
{
	(void)ctx;
	(void)last;
	*out = NULL;
	return 0;
}

static void test_bad_input(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;
	sx_promise *pr = NULL;
	struct rec_task rt = { SX_TASK_INIT(NULL, NULL), 0 };

	(void)state;
	o.blocking_max_threads = SX_POOL_BLOCKING_MAX_THREADS + 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.blocking_max_threads = SX_POOL_BLOCKING_MAX_THREADS;
	o.blocking_idle_ns = -1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	assert_null(p);

	p = make_pool(1, 0, 0, NULL);
	assert_int_equal(sx_pool_spawn_blocking(NULL, noop, NULL), -EINVAL);
	assert_int_equal(sx_pool_spawn_blocking(p, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pool_spawn_blocking_task(NULL, &rt.task), -EINVAL);
	assert_int_equal(sx_pool_spawn_blocking_task(p, NULL), -EINVAL);
	assert_int_equal(sx_pool_spawn_blocking_task(p, &rt.task), -EINVAL); /* run NULL */
	assert_int_equal(sx_promise_blocking(NULL, step_nothing, NULL, &pr), -EINVAL);
	assert_int_equal(sx_promise_blocking(p, NULL, NULL, &pr), -EINVAL);
	assert_int_equal(sx_promise_blocking(p, step_nothing, NULL, NULL), -EINVAL);
	assert_null(pr);
	/* Nothing was queued and nothing started: a pool that never blocks has no side thread. */
	assert_int_equal(stats(p).blocking_threads, 0);
	assert_int_equal(stats(p).blocking_queued, 0);
	sx_pool_destroy(p);
}

/* ---- results ------------------------------------------------------------------------------- */

static void spawn_from_worker(void *arg)
{
	int i = (int)(intptr_t)arg;

	assert_int_equal(sx_pool_spawn_blocking(cur_pool, quick, (void *)(intptr_t)i), 0);
}

static void test_every_task_runs_once_off_the_workers(void **state)
{
	sx_pool *p = make_pool(2, 0, 0, NULL);
	struct rec_task rt[8];

	(void)state;
	reset(p);
	for (int i = 0; i < 16; i++)
		assert_int_equal(sx_pool_spawn_blocking(p, quick, (void *)(intptr_t)i), 0);
	for (int i = 16; i < 24; i++) {
		rt[i - 16] = (struct rec_task){ SX_TASK_INIT(rt_run, rt_cancel), i };
		assert_int_equal(sx_pool_spawn_blocking_task(p, &rt[i - 16].task), 0);
	}
	for (int i = 24; i < 32; i++)
		assert_int_equal(sx_pool_submit(p, spawn_from_worker, (void *)(intptr_t)i), 0);
	TU_WAIT_FOR(sum(ran, 0, 32) == 32);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(atomic_load(&ran[i]), 1);
		assert_int_equal(atomic_load(&where[i]), -1); /* a side thread, not a worker */
	}
	assert_true(stats(p).blocking_threads >= 1);
	sx_pool_destroy(p);
	for (int i = 0; i < 32; i++)
		assert_int_equal(atomic_load(&ran[i]), 1);
	assert_int_equal(sum(told, 0, NREC), 0);
}

/* A blocked side thread leaves the only worker free: pool tasks still run. */
static void test_blocking_work_does_not_hold_a_worker(void **state)
{
	sx_pool *p = make_pool(1, 0, 0, NULL);

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)0), 0);
	TU_WAIT_FOR(atomic_load(&running) == 1);
	assert_int_equal(sx_pool_submit(p, quick, (void *)1), 0);
	TU_WAIT_FOR(atomic_load(&ran[1]) == 1);
	assert_int_equal(atomic_load(&where[1]), 0);
	assert_int_equal(atomic_load(&ran[0]), 0);
	gate_open();
	TU_WAIT_FOR(atomic_load(&ran[0]) == 1);
	sx_pool_destroy(p);
}

/* ---- the cap and idle retirement ------------------------------------------------------------ */

static void test_cap_is_never_exceeded(void **state)
{
	sx_pool *p = make_pool(2, 3, 0, NULL);
	sx_pool_counters c;

	(void)state;
	reset(p);
	for (int i = 0; i < 20; i++)
		assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)(intptr_t)i), 0);
	TU_WAIT_FOR(atomic_load(&running) == 3);
	c = stats(p);
	assert_int_equal(c.blocking_threads, 3);
	assert_int_equal(c.blocking_queued, 17);
	gate_open();
	TU_WAIT_FOR(sum(ran, 0, 20) == 20);
	assert_int_equal(atomic_load(&running_max), 3);
	c = stats(p);
	assert_int_equal(c.blocking_queued, 0);
	assert_int_equal(c.blocking_threads, 3); /* the default idle time (10 s) has not passed */
	sx_pool_destroy(p);
}

static void test_idle_threads_retire(void **state)
{
	sx_pool *p = make_pool(1, 8, 20 * 1000000, NULL);

	(void)state;
	reset(p);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)(intptr_t)i), 0);
	TU_WAIT_FOR(atomic_load(&running) == 4);
	assert_int_equal(stats(p).blocking_threads, 4);
	gate_open();
	TU_WAIT_FOR(sum(ran, 0, 4) == 4);
	TU_WAIT_FOR(stats(p).blocking_threads == 0);
	/* A later spawn starts a thread again. */
	assert_int_equal(sx_pool_spawn_blocking(p, quick, (void *)4), 0);
	TU_WAIT_FOR(atomic_load(&ran[4]) == 1);
	assert_int_equal(stats(p).blocking_threads, 1);
	sx_pool_destroy(p);
}

/* ---- shutdown -------------------------------------------------------------------------------- */

static int step_value(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	atomic_fetch_add(&ran[(intptr_t)ctx->arg], 1);
	*out = ctx->arg;
	return 0;
}

static int then_on_worker(sx_ctx *ctx, void *last, void **out)
{
	int i = (int)(intptr_t)ctx->arg;

	atomic_store(&where[i], sx_pool_worker_index(cur_pool));
	atomic_fetch_add(&ran[i], 1);
	*out = last;
	return 0;
}

static void test_drain_runs_queued_blocking_work(void **state)
{
	sx_pool *p = make_pool(1, 1, 0, NULL);
	sx_promise *pr, *next;
	struct shut s;
	void *v = NULL;

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)0), 0);
	TU_WAIT_FOR(atomic_load(&running) == 1);
	for (int i = 1; i < 11; i++)
		assert_int_equal(sx_pool_spawn_blocking(p, quick, (void *)(intptr_t)i), 0);
	assert_int_equal(sx_promise_blocking(p, step_value, (void *)11, &pr), 0);
	assert_int_equal(sx_promise_then(pr, then_on_worker, (void *)12, &next), 0);
	shut_start(&s, p, SX_DRAIN);
	assert_int_equal(sx_promise_blocking(p, step_value, (void *)13, &pr), -ESHUTDOWN);
	assert_int_equal(sum(ran, 1, 13), 0);
	gate_open();
	pthread_join(s.th, NULL);
	assert_int_equal(s.rc, 0);
	for (int i = 0; i < 13; i++)
		assert_int_equal(atomic_load(&ran[i]), 1);
	assert_int_equal(atomic_load(&ran[13]), 0);
	assert_int_equal(atomic_load(&where[12]), 0); /* the continuation ran on the worker */
	assert_int_equal(sx_promise_get(next, 0, &v), 0);
	assert_ptr_equal(v, (void *)11);
	assert_int_equal(sum(told, 0, NREC), 0);
	assert_int_equal(stats(p).blocking_threads, 0);
	assert_int_equal(sx_pool_spawn_blocking(p, quick, (void *)20), -ESHUTDOWN);
	sx_promise_release(pr);
	sx_promise_release(next);
	sx_pool_destroy(p);
}

static void test_cancel_tells_each_unstarted_task_once(void **state)
{
	sx_pool *p = make_pool(1, 1, 0, on_cancel);
	struct rec_task rt[5];
	sx_promise *pr[3];
	sx_pool_counters c;
	struct shut s;

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)0), 0);
	TU_WAIT_FOR(atomic_load(&running) == 1);
	for (int i = 1; i < 6; i++)
		assert_int_equal(sx_pool_spawn_blocking(p, quick, (void *)(intptr_t)i), 0);
	for (int i = 6; i < 11; i++) {
		rt[i - 6] = (struct rec_task){ SX_TASK_INIT(rt_run, rt_cancel), i };
		assert_int_equal(sx_pool_spawn_blocking_task(p, &rt[i - 6].task), 0);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(sx_promise_blocking(p, step_value, (void *)(intptr_t)(11 + i),
		    &pr[i]), 0);
	shut_start(&s, p, SX_CANCEL);
	gate_open();
	pthread_join(s.th, NULL);
	assert_int_equal(s.rc, 0);
	assert_int_equal(atomic_load(&ran[0]), 1); /* started: runs to its end */
	assert_int_equal(atomic_load(&told[0]), 0);
	for (int i = 1; i < 11; i++) {
		assert_int_equal(atomic_load(&ran[i]), 0);
		assert_int_equal(atomic_load(&told[i]), 1);
		assert_int_equal(atomic_load(&told_err[i]), -ECANCELED);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&ran[11 + i]), 0);
		assert_int_equal(sx_promise_get(pr[i], 0, NULL), -ESHUTDOWN);
		sx_promise_release(pr[i]);
	}
	c = stats(p);
	assert_int_equal(c.cancelled, 13 + probes_accepted);
	assert_int_equal(atomic_load(&probes), 0); /* every accepted probe was told too */
	assert_int_equal(c.blocking_queued, 0);
	sx_pool_destroy(p);
}

static void shutdown_here(void *arg)
{
	(void)arg;
	atomic_store(&told_err[0], sx_pool_shutdown(cur_pool, SX_DRAIN));
	atomic_fetch_add(&ran[0], 1);
}

static void test_shutdown_from_a_side_thread_is_edeadlk(void **state)
{
	sx_pool *p = make_pool(1, 0, 0, NULL);

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, shutdown_here, NULL), 0);
	TU_WAIT_FOR(atomic_load(&ran[0]) == 1);
	assert_int_equal(atomic_load(&told_err[0]), -EDEADLK);
	sx_pool_destroy(p);
}

static void test_a_full_queue_refuses(void **state)
{
	sx_pool *p = make_pool(1, 1, 0, NULL);
	unsigned accepted = 0;
	int rc;

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)0), 0);
	TU_WAIT_FOR(atomic_load(&running) == 1);
	while ((rc = sx_pool_spawn_blocking(p, noop, NULL)) == 0)
		accepted++;
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(accepted, SX_POOL_BLOCKING_QUEUE);
	assert_int_equal(stats(p).blocking_queued, SX_POOL_BLOCKING_QUEUE);
	gate_open();
	sx_pool_destroy(p);
}

/* ---- the promise form ------------------------------------------------------------------------ */

static void test_promise_step_on_a_side_thread_continuation_on_the_pool(void **state)
{
	sx_pool *p = make_pool(2, 0, 0, NULL);
	sx_promise *pr, *next;
	void *v = NULL;

	(void)state;
	reset(p);
	assert_int_equal(sx_promise_blocking(p, step_value, (void *)3, &pr), 0);
	assert_int_equal(sx_promise_then(pr, then_on_worker, (void *)4, &next), 0);
	assert_int_equal(sx_promise_get(next, -1, &v), 0);
	assert_ptr_equal(v, (void *)3);
	assert_int_equal(atomic_load(&ran[3]), 1);
	assert_true(atomic_load(&where[4]) >= 0);
	assert_int_equal(sx_promise_get(pr, 0, &v), 0);
	sx_promise_release(pr);
	sx_promise_release(next);
	sx_pool_destroy(p);
}

static void test_promise_cancelled_before_start_never_runs(void **state)
{
	sx_pool *p = make_pool(1, 1, 0, NULL);
	sx_promise *pr, *next;

	(void)state;
	reset(p);
	assert_int_equal(sx_pool_spawn_blocking(p, blocker, (void *)0), 0);
	TU_WAIT_FOR(atomic_load(&running) == 1);
	assert_int_equal(sx_promise_blocking(p, step_value, (void *)5, &pr), 0);
	assert_int_equal(sx_promise_then(pr, then_on_worker, (void *)6, &next), 0);
	assert_false(sx_promise_settled(pr));
	assert_int_equal(sx_promise_cancel(next), 0);
	assert_true(sx_promise_settled(pr)); /* settled on this thread, the step still queued */
	assert_int_equal(sx_promise_get(pr, 0, NULL), -ECANCELED);
	assert_int_equal(sx_promise_get(next, -1, NULL), -ECANCELED);
	sx_promise_release(pr);
	sx_promise_release(next);
	gate_open();
	sx_pool_destroy(p); /* drains: the queued entry finds the promise settled */
	assert_int_equal(atomic_load(&ran[5]), 0);
	assert_int_equal(atomic_load(&ran[6]), 0);
}

static atomic_int step_started, step_ended;

static int step_until_cancelled(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = NULL;
	atomic_store(&step_started, 1);
	while (!sx_ctx_cancelled(ctx))
		sched_yield();
	atomic_store(&step_ended, 1);
	return -EINTR;
}

static void test_promise_started_runs_to_its_end(void **state)
{
	sx_pool *p = make_pool(1, 0, 0, NULL);
	sx_promise *pr;
	int rc;

	(void)state;
	atomic_store(&step_started, 0);
	atomic_store(&step_ended, 0);
	assert_int_equal(sx_promise_blocking(p, step_until_cancelled, NULL, &pr), 0);
	TU_WAIT_FOR(atomic_load(&step_started) == 1);
	assert_int_equal(sx_promise_cancel(pr), 0);
	rc = sx_promise_get(pr, -1, NULL);
	assert_true(rc == -ECANCELED || rc == -EINTR); /* the breaker's code, or the outcome */
	TU_WAIT_FOR(sx_promise_settled(pr));
	assert_int_equal(atomic_load(&step_ended), 1);
	assert_int_equal(sx_promise_get(pr, 0, NULL), -EINTR); /* the step settled it, at its end */
	sx_promise_release(pr);
	sx_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_every_task_runs_once_off_the_workers),
		cmocka_unit_test(test_blocking_work_does_not_hold_a_worker),
		cmocka_unit_test(test_cap_is_never_exceeded),
		cmocka_unit_test(test_idle_threads_retire),
		cmocka_unit_test(test_drain_runs_queued_blocking_work),
		cmocka_unit_test(test_cancel_tells_each_unstarted_task_once),
		cmocka_unit_test(test_shutdown_from_a_side_thread_is_edeadlk),
		cmocka_unit_test(test_a_full_queue_refuses),
		cmocka_unit_test(test_promise_step_on_a_side_thread_continuation_on_the_pool),
		cmocka_unit_test(test_promise_cancelled_before_start_never_runs),
		cmocka_unit_test(test_promise_started_runs_to_its_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
