/*
 * Fault injection: the pool and its timer service. Every allocation, thread creation and key
 * creation of each scenario fails in turn (faults.c); each call returns its documented error or
 * succeeds, a failed call succeeds when repeated with faults off, every accepted task and timer
 * runs (or is cancelled and told) exactly once, and nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/error.h>
#include <strix/pool.h>
#include <strix/timer.h>

#define NTASKS 40
#define MS 1000000ull

/* ---- pool --------------------------------------------------------------------------------- */

static sx_pool *pool;
static int runs[NTASKS], spawned_runs[NTASKS], cancels[NTASKS];
static int spawned_cancels[NTASKS];
static sx_task tasks[NTASKS];

static void spawned(void *arg)
{
	__atomic_add_fetch(&spawned_runs[(intptr_t)arg], 1, __ATOMIC_SEQ_CST);
}

/* A task that spawns one more from its worker (the local path, whose node slab may fail). */
static void task_fn(void *arg)
{
	intptr_t i = (intptr_t)arg;

	__atomic_add_fetch(&runs[i], 1, __ATOMIC_SEQ_CST);
	FI_TRY(sx_pool_submit(pool, spawned, arg), -ENOMEM);
}

static void itask_run(sx_task *t)
{
	__atomic_add_fetch(&runs[t - tasks], 1, __ATOMIC_SEQ_CST);
}

static void itask_cancel(sx_task *t, int err)
{
	FI_CHECK(err == -ECANCELED, "err %d", err);
	__atomic_add_fetch(&cancels[t - tasks], 1, __ATOMIC_SEQ_CST);
}

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	int *ctr = fn == task_fn ? &cancels[(intptr_t)arg] : &spawned_cancels[(intptr_t)arg];

	FI_CHECK((fn == task_fn || fn == spawned) && err == -ECANCELED);
	__atomic_add_fetch(ctr, 1, __ATOMIC_SEQ_CST);
}

static void reset(void)
{
	memset(runs, 0, sizeof(runs));
	memset(spawned_runs, 0, sizeof(spawned_runs));
	memset(cancels, 0, sizeof(cancels));
	memset(spawned_cancels, 0, sizeof(spawned_cancels));
}

/* create, submit (fn and intrusive forms, from outside and from workers), wait, drain, destroy;
 * then a second pool cancelled with tasks queued. */
static void scenario_pool(void)
{
	sx_pool_counters c;

	reset();
	pool = fi_make_pool(2, on_cancel);
	for (intptr_t i = 0; i < NTASKS / 2; i++)
		FI_TRY(sx_pool_submit(pool, task_fn, (void *)i), -ENOMEM);
	for (intptr_t i = NTASKS / 2; i < NTASKS; i++) {
		tasks[i] = (sx_task)SX_TASK_INIT(itask_run, itask_cancel);
		FI_TRY(sx_pool_submit_task(pool, &tasks[i]), -ENOMEM);
	}
	FI_CHECK(sx_pool_wait_idle(pool) == 0);
	for (int i = 0; i < NTASKS; i++) {
		FI_CHECK(runs[i] == 1, "task %d ran %d times", i, runs[i]);
		if (i < NTASKS / 2)
			FI_CHECK(spawned_runs[i] == 1, "spawned task %d ran %d times", i,
			    spawned_runs[i]);
	}
	FI_CHECK(sx_pool_stats(pool, &c, NULL, 0) == 0);
	FI_CHECK(c.executed == NTASKS + NTASKS / 2, "executed %llu",
	    (unsigned long long)c.executed);
	FI_CHECK(sx_pool_shutdown(pool, SX_DRAIN) == 0);
	FI_CHECK(sx_pool_submit(pool, task_fn, 0) == -ESHUTDOWN);
	sx_pool_destroy(pool);

	/* Cancel with work queued: every task runs or is cancelled, exactly once. */
	reset();
	pool = fi_make_pool(1, on_cancel);
	for (intptr_t i = 0; i < NTASKS / 2; i++)
		FI_TRY(sx_pool_submit(pool, task_fn, (void *)i), -ENOMEM);
	for (intptr_t i = NTASKS / 2; i < NTASKS; i++) {
		tasks[i] = (sx_task)SX_TASK_INIT(itask_run, itask_cancel);
		FI_TRY(sx_pool_submit_task(pool, &tasks[i]), -ENOMEM);
	}
	FI_CHECK(sx_pool_shutdown(pool, SX_CANCEL) == 0);
	for (int i = 0; i < NTASKS; i++) {
		FI_CHECK(runs[i] + cancels[i] == 1, "task %d: %d runs, %d cancels", i, runs[i],
		    cancels[i]);
		/* A task that ran spawned one more: it ran or was cancelled, once. */
		if (i < NTASKS / 2 && runs[i] == 1)
			FI_CHECK(spawned_runs[i] + spawned_cancels[i] == 1, "spawned task %d: %d "
			    "runs, %d cancels", i, spawned_runs[i], spawned_cancels[i]);
	}
	sx_pool_destroy(pool);
	pool = NULL;
}

/* ---- timer service ------------------------------------------------------------------------ */

#define NTIMERS 12

static int fired[NTIMERS], status_[NTIMERS];

static void timer_cb(void *arg, int status)
{
	intptr_t i = (intptr_t)arg;

	__atomic_store_n(&status_[i], status, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&fired[i], 1, __ATOMIC_SEQ_CST);
}

/* create, add timers (inline and as tasks, short and an hour away), cancel some, let the short
 * ones fire, shut down with the long ones pending (-ESHUTDOWN), destroy. */
static void scenario_timer(void)
{
	sx_timer t[NTIMERS];
	bool expect[NTIMERS];
	sx_pool *p;

	memset(fired, 0, sizeof(fired));
	p = fi_make_pool(1, on_cancel);
	for (intptr_t i = 0; i < NTIMERS; i++) {
		uint64_t when = (i % 3 == 2) ? 3600000 * MS : (uint64_t)(i + 1) * MS;
		unsigned fl = (i % 2) ? SX_TIMER_INLINE : 0;

		FI_TRY(sx_timer_add(p, when, fl, timer_cb, (void *)i, &t[i]), -ENOMEM, -EAGAIN);
		expect[i] = true;
	}
	for (int i = 0; i < NTIMERS; i += 4) {
		int rc = sx_timer_cancel(&t[i]);

		FI_CHECK(rc == 0 || rc == -EALREADY, "cancel %d", rc);
		if (rc == 0)
			expect[i] = false;
	}
	for (int i = 0; i < NTIMERS; i++)
		if (expect[i] && i % 3 != 2)
			FI_WAIT_FOR(__atomic_load_n(&fired[i], __ATOMIC_SEQ_CST) == 1);
	FI_CHECK(sx_pool_wait_idle(p) == 0);
	FI_CHECK(sx_pool_shutdown(p, SX_DRAIN) == 0);
	for (int i = 0; i < NTIMERS; i++) {
		FI_CHECK(fired[i] == (expect[i] ? 1 : 0), "timer %d fired %d times", i, fired[i]);
		if (expect[i] && i % 3 == 2)
			FI_CHECK(status_[i] == -ESHUTDOWN, "timer %d status %d", i, status_[i]);
		/* A callback the timer thread could not hand to the pool runs there with -ENOMEM. */
		if (expect[i] && i % 3 != 2)
			FI_CHECK(status_[i] == 0 || (status_[i] == -ENOMEM && fi_failed() > 0),
			    "timer %d status %d", i, status_[i]);
	}
	FI_CHECK(sx_timer_add(p, MS, 0, timer_cb, 0, NULL) == -ESHUTDOWN);
	sx_pool_destroy(p);
}

/* ---- wheel (single-owner structure: its create is the one allocation) ---------------------- */

static int wheel_fired;

static void wheel_cb(sx_wheel_timer *t)
{
	(void)t;
	wheel_fired++;
}

static void scenario_wheel(void)
{
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	sx_wheel_timer wt[4];
	sx_wheel *w;

	o.clock = &tu_vclock;
	tu_vnow = 1000 * MS;
	wheel_fired = 0;
	FI_CREATE(w, sx_wheel_create(&o, &w), -ENOMEM);
	for (int i = 0; i < 4; i++) {
		sx_wheel_timer_init(&wt[i], wheel_cb);
		FI_CHECK(sx_wheel_add_after(w, &wt[i], (uint64_t)(i + 1) * MS) == 0);
	}
	FI_CHECK(sx_wheel_advance_to(w, tu_vnow + 10 * MS) == 4);
	FI_CHECK(wheel_fired == 4);
	sx_wheel_destroy(w);
}

/* ---- cmocka -------------------------------------------------------------------------------- */

FI_TESTS(pool, scenario_pool)
FI_TESTS(timer, scenario_timer)
FI_TESTS(wheel, scenario_wheel)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(pool),
		FI_TEST_PAIR(timer),
		FI_TEST_PAIR(wheel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
