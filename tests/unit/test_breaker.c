/*
 * Unit tests of breakers: the seed's behaviours (github.com/kamilsk/breaker) in C, plus the
 * callback and lifetime rules. Timeouts run in real time with generous upper bounds; "never
 * early" and "exactly once" are exact.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ck_pr.h>
#include <strix.h>

#include "testutil.h"

#define MS 1000000ll
#define LATE_BOUND (2000 * MS)

struct seen {
	unsigned calls;
	int err;
	sx_breaker *b;
};

static void seen_cb(sx_breaker *b, void *arg)
{
	struct seen *s = arg;

	s->b = b;
	s->err = sx_breaker_err(b);
	ck_pr_inc_uint(&s->calls);
}

static void test_new_then_tripped(void **state)
{
	sx_breaker *b = NULL;

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_false(sx_breaker_done(b));
	assert_int_equal(sx_breaker_err(b), 0);
	assert_int_equal(sx_breaker_signo(b), 0);
	assert_int_equal(sx_breaker_wait(b, 0), -ETIMEDOUT);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_true(sx_breaker_done(b));
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	assert_int_equal(sx_breaker_trip(b), -EALREADY);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	assert_int_equal(sx_breaker_wait(b, -1), 0);
	sx_breaker_release(b);
}

static void test_bad_input(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *b = NULL, *ok;
	sx_breaker *list[2] = { NULL, NULL };
	sigset_t set;

	(void)state;
	assert_int_equal(sx_breaker_create(NULL), -EINVAL);
	assert_int_equal(sx_breaker_timeout(NULL, MS, &b), -EINVAL);
	assert_int_equal(sx_breaker_timeout(p, MS, NULL), -EINVAL);
	assert_int_equal(sx_breaker_deadline(NULL, 1, &b), -EINVAL);
	assert_int_equal(sx_breaker_signal(NULL, &b), -EINVAL);
	sigemptyset(&set);
	sigaddset(&set, SIGKILL);
	assert_int_equal(sx_breaker_signal(&set, &b), -EINVAL);
	sigemptyset(&set);
	sigaddset(&set, SIGSEGV);
	assert_int_equal(sx_breaker_signal(&set, &b), -EINVAL);
	assert_int_equal(sx_breaker_multiplex(NULL, 2, &b), -EINVAL);
	assert_int_equal(sx_breaker_multiplex(list, 2, &b), -EINVAL);
	assert_int_equal(sx_breaker_child(NULL, &b), -EINVAL);
	assert_null(b);
	assert_int_equal(sx_breaker_create(&ok), 0);
	assert_int_equal(sx_breaker_multiplex(&ok, 1, NULL), -EINVAL);
	assert_int_equal(sx_breaker_on_done(NULL, seen_cb, NULL, NULL), -EINVAL);
	assert_int_equal(sx_breaker_on_done(ok, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_breaker_withdraw(NULL), -EINVAL);
	assert_int_equal(sx_breaker_trip(NULL), -EINVAL);
	assert_int_equal(sx_breaker_err(NULL), -EINVAL);
	assert_int_equal(sx_breaker_wait(NULL, 0), -EINVAL);
	assert_false(sx_breaker_done(ok)); /* nothing above touched it */
	sx_breaker_release(ok);
	sx_breaker_release(NULL);
	/* A pool that is shut down takes no timeout breakers. */
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	assert_int_equal(sx_breaker_timeout(p, MS, &b), -ESHUTDOWN);
	assert_null(b);
	sx_pool_destroy(p);
}

/* 10 threads trip at once: exactly one wins, the callback runs once, the code is stable. */
static sx_breaker *race_b;
static unsigned race_go, race_wins;

static void *tripper(void *arg)
{
	(void)arg;
	while (!ck_pr_load_uint(&race_go))
		;
	if (sx_breaker_trip(race_b) == 0)
		ck_pr_inc_uint(&race_wins);
	return NULL;
}

static void test_ten_threads_trip_at_once(void **state)
{
	pthread_t th[10];
	struct seen s = { 0 };

	(void)state;
	for (int round = 0; round < 20; round++) {
		memset(&s, 0, sizeof(s));
		race_go = race_wins = 0;
		assert_int_equal(sx_breaker_create(&race_b), 0);
		assert_int_equal(sx_breaker_on_done(race_b, seen_cb, &s, NULL), 0);
		for (int i = 0; i < 10; i++)
			assert_int_equal(pthread_create(&th[i], NULL, tripper, NULL), 0);
		ck_pr_store_uint(&race_go, 1);
		for (int i = 0; i < 10; i++)
			pthread_join(th[i], NULL);
		assert_int_equal(race_wins, 1);
		assert_int_equal(sx_breaker_err(race_b), -ECANCELED);
		TU_WAIT_FOR(ck_pr_load_uint(&s.calls) == 1);
		sx_breaker_release(race_b);
		assert_int_equal(s.calls, 1);
	}
}

static void test_timeout_fires_on_time(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *b;
	uint64_t t0 = tu_now_ns(), t1;

	(void)state;
	assert_int_equal(sx_breaker_timeout(p, 50 * MS, &b), 0);
	assert_false(sx_breaker_done(b));
	assert_int_equal(sx_breaker_wait(b, -1), 0);
	t1 = tu_now_ns();
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	assert_true(t1 - t0 >= 50 * MS);
	assert_true(t1 - t0 < 50 * MS + LATE_BOUND);
	sx_breaker_release(b);

	/* A deadline in the future, the same way. */
	t0 = tu_now_ns();
	assert_int_equal(sx_breaker_deadline(p, t0 + 30 * MS, &b), 0);
	assert_int_equal(sx_breaker_wait(b, -1), 0);
	assert_true(tu_now_ns() >= t0 + 30 * MS);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	sx_breaker_release(b);
	sx_pool_destroy(p);
}

static void test_degenerate_inputs_trip_at_once(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *b;
	sigset_t empty;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(sx_breaker_timeout(p, 0, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &s, NULL), -EALREADY);
	sx_breaker_release(b);
	assert_int_equal(sx_breaker_deadline(p, tu_now_ns() - 1, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	sx_breaker_release(b);
	sigemptyset(&empty);
	assert_int_equal(sx_breaker_signal(&empty, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	sx_breaker_release(b);
	assert_int_equal(sx_breaker_multiplex(NULL, 0, &b), 0);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	sx_breaker_release(b);
	sx_pool_destroy(p);
	assert_int_equal(s.calls, 0);
}

/* A negative timeout is no limit: the breaker stays armed (a pool's shutdown does not trip it:
 * it has no timer) until a trip, like sx_breaker_create's. */
static void test_negative_timeout_is_no_limit(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *b, *c;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(sx_breaker_timeout(p, -5 * (int64_t)MS, &b), 0);
	assert_int_equal(sx_breaker_timeout(p, INT64_MIN, &c), 0);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &s, NULL), 0);
	assert_int_equal(sx_breaker_wait(b, 20 * (int64_t)MS), -ETIMEDOUT);
	assert_int_equal(sx_breaker_err(b), 0);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	assert_int_equal(sx_breaker_err(b), 0);
	assert_int_equal(sx_breaker_err(c), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	TU_WAIT_FOR(__atomic_load_n(&s.calls, __ATOMIC_ACQUIRE) == 1);
	sx_breaker_release(b);
	sx_breaker_release(c);
	sx_pool_destroy(p);
}

static void test_multiplex_of_five_fires_with_the_timeout(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *in[5], *m;
	uint64_t t0 = tu_now_ns(), t1;
	sigset_t set;

	(void)state;
	assert_int_equal(sx_breaker_create(&in[0]), 0);
	assert_int_equal(sx_breaker_timeout(p, 3600 * 1000 * MS, &in[1]), 0);
	assert_int_equal(sx_breaker_timeout(p, 50 * MS, &in[2]), 0);
	sigemptyset(&set);
	sigaddset(&set, SIGURG);
	assert_int_equal(sx_breaker_signal(&set, &in[3]), 0);
	assert_int_equal(sx_breaker_create(&in[4]), 0);
	assert_int_equal(sx_breaker_multiplex(in, 5, &m), 0);
	assert_int_equal(sx_breaker_wait(m, -1), 0);
	t1 = tu_now_ns();
	assert_int_equal(sx_breaker_err(m), -ETIMEDOUT);
	assert_true(t1 - t0 >= 50 * MS && t1 - t0 < 50 * MS + LATE_BOUND);
	/* The multiplex never trips its inputs. */
	assert_false(sx_breaker_done(in[0]));
	assert_false(sx_breaker_done(in[1]));
	assert_false(sx_breaker_done(in[3]));
	assert_false(sx_breaker_done(in[4]));
	sx_breaker_release(m);
	for (int i = 0; i < 5; i++)
		sx_breaker_release(in[i]);
	sx_pool_destroy(p);
}

static void test_child_follows_parent_not_back(void **state)
{
	sx_breaker *parent, *child, *child2, *grandchild;

	(void)state;
	assert_int_equal(sx_breaker_create(&parent), 0);
	assert_int_equal(sx_breaker_child(parent, &child), 0);
	assert_int_equal(sx_breaker_child(parent, &child2), 0);
	assert_int_equal(sx_breaker_child(child2, &grandchild), 0);
	assert_int_equal(sx_breaker_trip(child), 0);
	assert_false(sx_breaker_done(parent));
	assert_false(sx_breaker_done(child2));
	assert_int_equal(sx_breaker_trip(parent), 0);
	assert_int_equal(sx_breaker_wait(child2, -1), 0);
	assert_int_equal(sx_breaker_wait(grandchild, -1), 0);
	assert_int_equal(sx_breaker_err(child2), -ECANCELED);
	assert_int_equal(sx_breaker_err(grandchild), -ECANCELED);
	/* A child of a tripped parent is born tripped with the parent's code. */
	sx_breaker_release(grandchild);
	assert_int_equal(sx_breaker_child(parent, &grandchild), 0);
	assert_true(sx_breaker_done(grandchild));
	sx_breaker_release(grandchild);
	sx_breaker_release(child2);
	sx_breaker_release(child);
	sx_breaker_release(parent);
}

static void test_releasing_an_input_trips_the_multiplex(void **state)
{
	sx_breaker *a, *b, *m;
	sx_breaker *in[2];

	(void)state;
	assert_int_equal(sx_breaker_create(&a), 0);
	assert_int_equal(sx_breaker_create(&b), 0);
	in[0] = a;
	in[1] = b;
	assert_int_equal(sx_breaker_multiplex(in, 2, &m), 0);
	sx_breaker_release(a);
	assert_int_equal(sx_breaker_wait(m, -1), 0);
	assert_int_equal(sx_breaker_err(m), -ECANCELED);
	assert_false(sx_breaker_done(b));
	sx_breaker_release(m);
	sx_breaker_release(b);
}

static void test_callbacks_run_once_and_withdraw(void **state)
{
	sx_breaker *b;
	struct seen fired = { 0 }, gone = { 0 }, late = { 0 };
	sx_breaker_cb *hf, *hg;

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &fired, &hf), 0);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &gone, &hg), 0);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &fired, NULL), 0);
	assert_int_equal(sx_breaker_withdraw(hg), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&fired.calls) == 2);
	assert_int_equal(fired.err, -ECANCELED);
	assert_ptr_equal(fired.b, b);
	assert_int_equal(sx_breaker_withdraw(hf), -EALREADY);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &late, NULL), -EALREADY);
	sx_breaker_release(b);
	assert_int_equal(gone.calls, 0);
	assert_int_equal(late.calls, 0);
	assert_int_equal(fired.calls, 2);
}

/* Many callbacks registered and withdrawn on a long-lived breaker: swept, none runs. */
static void test_withdrawn_callbacks_are_swept(void **state)
{
	sx_breaker *b;
	struct seen s = { 0 }, keep = { 0 };
	sx_breaker_cb *h;

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_on_done(b, seen_cb, &keep, NULL), 0);
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(sx_breaker_on_done(b, seen_cb, &s, &h), 0);
		assert_int_equal(sx_breaker_withdraw(h), 0);
	}
	sx_breaker_release(b);
	TU_WAIT_FOR(ck_pr_load_uint(&keep.calls) == 1);
	assert_int_equal(s.calls, 0);
}

static void test_wait_times_out_and_wakes(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *b, *t;
	uint64_t t0 = tu_now_ns();

	(void)state;
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_wait(b, 20 * MS), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 >= 20 * MS);
	/* A waiter sleeping on b is woken by a trip from the timer thread, via a child. */
	assert_int_equal(sx_breaker_timeout(p, 10 * MS, &t), 0);
	sx_breaker_release(b);
	assert_int_equal(sx_breaker_child(t, &b), 0);
	assert_int_equal(sx_breaker_wait(b, 60000 * MS), 0);
	assert_int_equal(sx_breaker_err(b), -ETIMEDOUT);
	sx_breaker_release(b);
	sx_breaker_release(t);
	sx_pool_destroy(p);
}

/* A tripped or released breaker's timer is cancelled at once, not left to fire. */
static void nop_timer(void *arg, int status)
{
	(void)status;
	ck_pr_store_uint((unsigned *)arg, 1);
}

static void test_tripped_breaker_cancels_its_timer(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *a, *b;
	sx_pool_counters c;
	unsigned flag = 0;

	(void)state;
	assert_int_equal(sx_breaker_timeout(p, 3600 * 1000 * MS, &a), 0);
	assert_int_equal(sx_breaker_timeout(p, 3600 * 1000 * MS, &b), 0);
	assert_int_equal(sx_breaker_trip(a), 0);  /* detached by the notifier */
	sx_breaker_release(b);                     /* detached right here */
	/* Wake the timer thread (a short timer) so it unlinks the cancelled ones, then count;
	 * the notifier detaches a asynchronously, so repeat until it has. */
	for (int i = 0;; i++) {
		ck_pr_store_uint(&flag, 0);
		assert_int_equal(sx_timer_add(p, MS, SX_TIMER_INLINE, nop_timer, &flag, NULL), 0);
		TU_WAIT_FOR(ck_pr_load_uint(&flag) == 1);
		assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
		if (c.timers_pending == 0)
			break;
		assert_true(i < 10000);
	}
	sx_breaker_release(a);
	sx_pool_destroy(p);
}

/* A timeout breaker may outlive its pool: the shutdown trips it with -ESHUTDOWN. And a
 * tripped timeout breaker's timer is gone before the trip returns, so destroying the pool right
 * after is safe. */
static void test_timeout_breaker_outlives_its_pool(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_breaker *a, *b;

	(void)state;
	assert_int_equal(sx_breaker_timeout(p, 3600 * 1000 * MS, &a), 0);
	assert_int_equal(sx_breaker_timeout(p, 3600 * 1000 * MS, &b), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	sx_pool_destroy(p);
	assert_int_equal(sx_breaker_err(a), -ESHUTDOWN);
	assert_int_equal(sx_breaker_err(b), -ECANCELED);
	sx_breaker_release(a);
	sx_breaker_release(b);
}

/* Signals. */
static void test_signal_breaker_sigusr1(void **state)
{
	sx_breaker *b;
	sigset_t set;

	(void)state;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	assert_int_equal(sx_breaker_signal(&set, &b), 0);
	assert_false(sx_breaker_done(b));
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(sx_breaker_wait(b, 60000 * MS), 0);
	assert_int_equal(sx_breaker_err(b), SX_ESIGNAL);
	assert_int_equal(sx_breaker_signo(b), SIGUSR1);
	sx_breaker_release(b);
}

static void test_signal_breaker_sigchld(void **state)
{
	sx_breaker *b;
	sigset_t set;
	pid_t pid;

	(void)state;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	assert_int_equal(sx_breaker_signal(&set, &b), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(sx_breaker_wait(b, 60000 * MS), 0);
	assert_int_equal(sx_breaker_signo(b), SIGCHLD);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	sx_breaker_release(b);
}

static unsigned usr2_hits;
static void usr2_handler(int s)
{
	(void)s;
	ck_pr_inc_uint(&usr2_hits);
}

static void test_signal_disposition_restored(void **state)
{
	struct sigaction mine, now;
	sx_breaker *b1, *b2;
	sigset_t set;

	(void)state;
	memset(&mine, 0, sizeof(mine));
	mine.sa_handler = usr2_handler;
	assert_int_equal(sigaction(SIGUSR2, &mine, NULL), 0);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	assert_int_equal(sx_breaker_signal(&set, &b1), 0);
	assert_int_equal(sx_breaker_signal(&set, &b2), 0);
	sigaction(SIGUSR2, NULL, &now);
	assert_true(now.sa_handler != usr2_handler);
	sx_breaker_release(b1);
	sigaction(SIGUSR2, NULL, &now);
	assert_true(now.sa_handler != usr2_handler); /* b2 still listens */
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(sx_breaker_wait(b2, 60000 * MS), 0);
	assert_int_equal(usr2_hits, 0);
	sx_breaker_release(b2);
	sigaction(SIGUSR2, NULL, &now);
	assert_true(now.sa_handler == usr2_handler);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	TU_WAIT_FOR(ck_pr_load_uint(&usr2_hits) == 1);
	signal(SIGUSR2, SIG_DFL);
}

/* ---- cancellation is synchronous --------------------------------------------------------------- */

/* When sx_breaker_trip returns, every breaker derived from the tripped one reads as done, on this
 * thread and on any other that looks afterwards; the code is the parent's and never changes. */
struct sync_probe {
	sx_breaker *volatile derived[3];
	unsigned tripped;   /* round whose trip has returned (release store) */
	unsigned checked;   /* round the other thread has checked */
	unsigned rounds;
	unsigned late;      /* derived breakers seen armed after the trip returned */
};

static void *sync_reader(void *arg)
{
	struct sync_probe *sp = arg;

	for (unsigned r = 1; r <= sp->rounds; r++) {
		while (ck_pr_load_uint(&sp->tripped) != r)
			ck_pr_stall();
		ck_pr_fence_acquire();
		for (int i = 0; i < 3; i++)
			if (!sx_breaker_done(sp->derived[i]))
				sp->late++;
		ck_pr_fence_release();
		ck_pr_store_uint(&sp->checked, r);
	}
	return NULL;
}

static void test_derived_breakers_done_when_trip_returns(void **state)
{
	struct sync_probe sp = { .rounds = 2000 };
	pthread_t th;
	unsigned late_here = 0;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, sync_reader, &sp), 0);
	for (unsigned r = 1; r <= sp.rounds; r++) {
		sx_breaker *parent, *other, *child, *mux, *grandchild, *in[2];

		assert_int_equal(sx_breaker_create(&parent), 0);
		assert_int_equal(sx_breaker_create(&other), 0);
		assert_int_equal(sx_breaker_child(parent, &child), 0);
		in[0] = other;
		in[1] = parent;
		assert_int_equal(sx_breaker_multiplex(in, 2, &mux), 0);
		assert_int_equal(sx_breaker_child(child, &grandchild), 0);
		sp.derived[0] = child;
		sp.derived[1] = mux;
		sp.derived[2] = grandchild;
		assert_int_equal(sx_breaker_trip(parent), 0);
		ck_pr_fence_release();
		ck_pr_store_uint(&sp.tripped, r);
		for (int i = 0; i < 3; i++)
			if (!sx_breaker_done(sp.derived[i]))
				late_here++;
		while (ck_pr_load_uint(&sp.checked) != r)
			ck_pr_stall();
		ck_pr_fence_acquire();
		assert_int_equal(sx_breaker_err(child), -ECANCELED);
		assert_int_equal(sx_breaker_err(mux), -ECANCELED);
		assert_int_equal(sx_breaker_err(grandchild), -ECANCELED);
		/* A derived breaker that reads as done has tripped: tripping it again is not new. */
		assert_int_equal(sx_breaker_trip(grandchild), -EALREADY);
		assert_int_equal(sx_breaker_wait(grandchild, 0), 0);
		assert_int_equal(sx_breaker_err(grandchild), -ECANCELED);
		sx_breaker_release(grandchild);
		sx_breaker_release(mux);
		sx_breaker_release(child);
		sx_breaker_release(other);
		sx_breaker_release(parent);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(late_here, 0);
	assert_int_equal(sp.late, 0);
}

/* The same when the trip comes from a signal handler of the application's. */
static sx_breaker *volatile handler_target;

static void trip_in_handler(int signo)
{
	(void)signo;
	sx_breaker_trip(handler_target);
}

static void test_trip_from_a_signal_handler_is_synchronous(void **state)
{
	struct sigaction sa, old;
	unsigned late = 0;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = trip_in_handler;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGURG, &sa, &old), 0);
	for (int r = 0; r < 500; r++) {
		sx_breaker *parent, *child, *grandchild;

		assert_int_equal(sx_breaker_create(&parent), 0);
		assert_int_equal(sx_breaker_child(parent, &child), 0);
		assert_int_equal(sx_breaker_child(child, &grandchild), 0);
		handler_target = parent;
		assert_int_equal(raise(SIGURG), 0); /* the handler has run when raise returns */
		late += !sx_breaker_done(child) + !sx_breaker_done(grandchild);
		assert_int_equal(sx_breaker_err(grandchild), -ECANCELED);
		sx_breaker_release(grandchild);
		sx_breaker_release(child);
		sx_breaker_release(parent);
	}
	assert_int_equal(sigaction(SIGURG, &old, NULL), 0);
	assert_int_equal(late, 0);
}

/* "Trip, then the waiter frees": another thread trips a breaker; its owner waits for it and
 * releases it at once. The tripping thread must not touch it after the trip can be seen (ASan
 * reports a use after free if it does). The breaker has a callback and a child, so the trip has
 * work after its CAS. */
struct tripper {
	sx_breaker *volatile b;
	unsigned go, done, stop;
};

static void *tripper_main(void *arg)
{
	struct tripper *t = arg;
	unsigned seen = 0;

	for (;;) {
		unsigned g;

		while ((g = ck_pr_load_uint(&t->go)) == seen && !ck_pr_load_uint(&t->stop))
			ck_pr_stall();
		if (g == seen)
			return NULL;
		seen = g;
		ck_pr_fence_acquire();
		sx_breaker_trip(t->b);
		ck_pr_store_uint(&t->done, seen);
	}
}

static void noop_cb(sx_breaker *b, void *arg)
{
	(void)b;
	(void)arg;
}

static void test_trip_then_the_waiter_releases(void **state)
{
	struct tripper t = { 0 };
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, tripper_main, &t), 0);
	for (unsigned r = 1; r <= 5000; r++) {
		sx_breaker *b, *child;

		assert_int_equal(sx_breaker_create(&b), 0);
		assert_int_equal(sx_breaker_on_done(b, noop_cb, NULL, NULL), 0);
		assert_int_equal(sx_breaker_child(b, &child), 0);
		sx_breaker_release(child);
		t.b = b;
		ck_pr_fence_release();
		ck_pr_store_uint(&t.go, r);
		assert_int_equal(sx_breaker_wait(b, -1), 0);
		sx_breaker_release(b);
		while (ck_pr_load_uint(&t.done) != r)
			ck_pr_stall();
	}
	ck_pr_store_uint(&t.stop, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_then_tripped),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_ten_threads_trip_at_once),
		cmocka_unit_test(test_timeout_fires_on_time),
		cmocka_unit_test(test_degenerate_inputs_trip_at_once),
		cmocka_unit_test(test_negative_timeout_is_no_limit),
		cmocka_unit_test(test_multiplex_of_five_fires_with_the_timeout),
		cmocka_unit_test(test_child_follows_parent_not_back),
		cmocka_unit_test(test_releasing_an_input_trips_the_multiplex),
		cmocka_unit_test(test_callbacks_run_once_and_withdraw),
		cmocka_unit_test(test_withdrawn_callbacks_are_swept),
		cmocka_unit_test(test_wait_times_out_and_wakes),
		cmocka_unit_test(test_tripped_breaker_cancels_its_timer),
		cmocka_unit_test(test_timeout_breaker_outlives_its_pool),
		cmocka_unit_test(test_signal_breaker_sigusr1),
		cmocka_unit_test(test_signal_breaker_sigchld),
		cmocka_unit_test(test_signal_disposition_restored),
		cmocka_unit_test(test_derived_breakers_done_when_trip_returns),
		cmocka_unit_test(test_trip_from_a_signal_handler_is_synchronous),
		cmocka_unit_test(test_trip_then_the_waiter_releases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
