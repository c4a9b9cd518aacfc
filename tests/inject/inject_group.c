/*
 * Fault injection: run groups and loops. Every allocation, thread creation (one per actor) and
 * key creation fails in turn; each call returns its documented error or succeeds; a group whose
 * run failed interrupted every actor it had started exactly once and left none running; a fresh
 * group with faults off then runs to its normal end; nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/group.h>

struct actor {
	int execs, interrupts, failures;
	int ret;             /* what execute returns at once; 0: block until interrupted */
	sx_breaker *wake;
};

static int a_execute(void *arg)
{
	struct actor *a = arg;

	__atomic_add_fetch(&a->execs, 1, __ATOMIC_SEQ_CST);
	if (a->ret != 0)
		return a->ret;
	FI_CHECK(sx_breaker_wait(a->wake, -1) == 0);
	return -ECANCELED;
}

static void a_interrupt(int err, void *arg)
{
	struct actor *a = arg;

	(void)err;
	__atomic_add_fetch(&a->interrupts, 1, __ATOMIC_SEQ_CST);
	sx_breaker_trip(a->wake);
}

static void a_failure(int err, void *arg)
{
	struct actor *a = arg;

	(void)err;
	__atomic_add_fetch(&a->failures, 1, __ATOMIC_SEQ_CST);
}

#define NACT 3

/* One group run; returns run's code. */
static int group_once(struct actor *a, sx_breaker *ext)
{
	sx_group_opts o = SX_GROUP_OPTS_INIT;
	sx_actor_info info;
	sx_group *g;
	int rc, idx, err;

	memset(a, 0, NACT * sizeof(*a));
	for (int i = 0; i < NACT; i++)
		FI_CREATE(a[i].wake, sx_breaker_create(&a[i].wake), -ENOMEM, -EAGAIN);
	a[1].ret = -EIO;
	o.flags = SX_GROUP_REVERSE;
	FI_CREATE(g, sx_group_create(&o, &g), -ENOMEM);
	/* An add returns the index (>= 0) or -ENOMEM; a failed one is repeated with faults off. */
	for (int i = 0; i < NACT; i++) {
		rc = sx_group_add(g, a_execute, a_interrupt, a_failure, &a[i]);
		if (rc < 0) {
			FI_CHECK(rc == -ENOMEM, "add: %d", rc);
			fi_off();
			rc = sx_group_add(g, a_execute, a_interrupt, a_failure, &a[i]);
		}
		FI_CHECK(rc == i, "add: %d", rc);
	}
	rc = sx_group_add_breaker(g, ext);
	if (rc < 0) {
		FI_CHECK(rc == -ENOMEM, "add_breaker: %d", rc);
		fi_off();
		rc = sx_group_add_breaker(g, ext);
	}
	FI_CHECK(rc == NACT, "add_breaker: %d", rc);
	rc = sx_group_add_signals(g, (int[]){ SIGUSR2 }, 1);
	if (rc < 0) {
		FI_CHECK(rc == -ENOMEM, "add_signals: %d", rc);
		fi_off();
		rc = sx_group_add_signals(g, (int[]){ SIGUSR2 }, 1);
	}
	FI_CHECK(rc == NACT + 1, "add_signals: %d", rc);
	rc = sx_group_run(g);
	FI_CHECK(rc == -EIO || rc == -EAGAIN || rc == -ENOMEM, "run: %d (%s)", rc, sx_strerror(rc));
	for (int i = 0; i < NACT; i++) {
		FI_CHECK(a[i].execs <= 1, "actor %d ran %d times", i, a[i].execs);
		FI_CHECK(a[i].interrupts <= 1, "actor %d interrupted %d times", i, a[i].interrupts);
		FI_CHECK(sx_group_actor(g, (unsigned)i, &info) == 0);
		FI_CHECK(info.state == SX_ACTOR_ENDED || info.state == SX_ACTOR_IDLE,
		    "actor %d state %d", i, info.state);
		if (rc == -EIO)
			FI_CHECK(a[i].execs == 1 && a[i].interrupts == 1, "actor %d: %d execs, %d "
			    "interrupts", i, a[i].execs, a[i].interrupts);
		/* An actor that started is interrupted (blocking ones could not end otherwise). */
		if (a[i].execs == 1 && a[i].ret == 0)
			FI_CHECK(a[i].interrupts == 1, "started actor %d not interrupted", i);
	}
	idx = sx_group_cause(g, &err, NULL);
	if (rc == -EIO)
		FI_CHECK(idx == 1 && err == -EIO, "cause %d err %d", idx, err);
	FI_CHECK(sx_group_wait(g, 0) == 0);
	sx_group_destroy(g);
	for (int i = 0; i < NACT; i++)
		sx_breaker_release(a[i].wake);
	return rc;
}

static void scenario_group(void)
{
	struct actor a[NACT];
	sx_breaker *ext;

	FI_CREATE(ext, sx_breaker_create(&ext), -ENOMEM, -EAGAIN);
	if (group_once(a, ext) != -EIO) {
		fi_off();
		FI_CHECK(group_once(a, ext) == -EIO);
	}
	sx_breaker_release(ext);
}

/* ---- loop ---------------------------------------------------------------------------------- */

static sx_breaker *loop_stop;
static int l_runs, l_interrupts;

static int l_execute(void *arg)
{
	(void)arg;
	if (__atomic_add_fetch(&l_runs, 1, __ATOMIC_SEQ_CST) == 3) {
		sx_breaker_trip(loop_stop);
		return 0;
	}
	return -EIO;
}

static void l_interrupt(int err, void *arg)
{
	(void)err; (void)arg;
	__atomic_add_fetch(&l_interrupts, 1, __ATOMIC_SEQ_CST);
}

static int loop_once(void)
{
	sx_retry_policy bo = SX_RETRY_POLICY_INIT;
	sx_group_opts o = SX_GROUP_OPTS_INIT;
	sx_loop *l;
	int rc;

	l_runs = l_interrupts = 0;
	bo.backoff = SX_BACKOFF_CONSTANT;
	bo.base_ns = 100000;
	o.backoff = &bo;
	FI_CREATE(loop_stop, sx_breaker_create(&loop_stop), -ENOMEM, -EAGAIN);
	FI_CREATE(l, sx_loop_create(&o, &l), -ENOMEM);
	rc = sx_loop_add(l, l_execute, l_interrupt, NULL, NULL);
	if (rc < 0) {
		FI_CHECK(rc == -ENOMEM, "add: %d", rc);
		fi_off();
		rc = sx_loop_add(l, l_execute, l_interrupt, NULL, NULL);
	}
	FI_CHECK(rc == 0, "add: %d", rc);
	rc = sx_loop_run(l, loop_stop);
	FI_CHECK(rc == 0 || rc == -EAGAIN || rc == -ENOMEM, "loop: %d (%s)", rc, sx_strerror(rc));
	if (rc == 0)
		FI_CHECK(l_runs == 3 && l_interrupts == 1, "runs %d interrupts %d", l_runs,
		    l_interrupts);
	FI_CHECK(l_runs <= 3 && l_interrupts <= 1, "runs %d interrupts %d", l_runs, l_interrupts);
	sx_loop_destroy(l);
	sx_breaker_release(loop_stop);
	return rc;
}

static void scenario_loop(void)
{
	if (loop_once() != 0) {
		fi_off();
		FI_CHECK(loop_once() == 0);
	}
}

FI_TESTS(group, scenario_group)
FI_TESTS(loop, scenario_loop)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(group),
		FI_TEST_PAIR(loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
