/*
 * Fault injection: breakers (manual, timeout, deadline, signal, multiplex, child, callbacks).
 * Each allocation and thread creation (the notifier thread, the pool's timer thread) fails in
 * turn; every call returns its documented error or succeeds, and again with faults off; every
 * registered callback runs exactly once (or is withdrawn), and nothing leaks.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "testutil.h"
#include "faults.h"

#include <strix/breaker.h>
#include <strix/error.h>
#include <strix/pool.h>

#define MS 1000000ll

struct seen {
	int calls;
	int err;
};

static void seen_cb(sx_breaker *b, void *arg)
{
	struct seen *s = arg;

	__atomic_store_n(&s->err, sx_breaker_err(b), __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
}

static int calls(struct seen *s)
{
	return __atomic_load_n(&s->calls, __ATOMIC_SEQ_CST);
}

static void scenario_breaker(void)
{
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_breaker *man, *tmo, *dl, *sig, *mux, *child;
	sx_breaker_cb *h1, *h2;
	struct seen s_man = { 0, 0 }, s_gone = { 0, 0 }, s_mux = { 0, 0 }, s_child = { 0, 0 };
	struct seen s_tmo = { 0, 0 };
	sx_pool *p;
	sigset_t set;
	int rc;

	po.workers = 1;
	po.spin_ns = SX_SPIN_NONE;
	FI_CREATE(p, sx_pool_create(&po, &p), -ENOMEM, -EAGAIN);

	FI_CREATE(man, sx_breaker_create(&man), -ENOMEM, -EAGAIN);
	FI_CREATE(tmo, sx_breaker_timeout(p, 50 * MS, &tmo), -ENOMEM, -EAGAIN);
	FI_CREATE(dl, sx_breaker_deadline(p, tu_now_ns() + 3600000 * MS, &dl), -ENOMEM, -EAGAIN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	FI_CREATE(sig, sx_breaker_signal(&set, &sig), -ENOMEM, -EAGAIN);
	FI_CREATE(mux, sx_breaker_multiplex((sx_breaker *[]){ man, dl, sig }, 3, &mux), -ENOMEM,
	    -EAGAIN);
	FI_CREATE(child, sx_breaker_child(mux, &child), -ENOMEM, -EAGAIN);

	FI_TRY(sx_breaker_on_done(man, seen_cb, &s_man, &h1), -ENOMEM, -EAGAIN);
	FI_TRY(sx_breaker_on_done(man, seen_cb, &s_gone, &h2), -ENOMEM, -EAGAIN);
	FI_TRY(sx_breaker_on_done(mux, seen_cb, &s_mux, NULL), -ENOMEM, -EAGAIN);
	FI_TRY(sx_breaker_on_done(child, seen_cb, &s_child, NULL), -ENOMEM, -EAGAIN);
	/* The timeout may trip first (a slow machine): then -EALREADY and no callback. */
	rc = sx_breaker_on_done(tmo, seen_cb, &s_tmo, NULL);
	if (rc == -ENOMEM || rc == -EAGAIN) {
		fi_off();
		rc = sx_breaker_on_done(tmo, seen_cb, &s_tmo, NULL);
	}
	FI_CHECK(rc == 0 || rc == -EALREADY, "on_done(tmo): %d", rc);
	if (rc == -EALREADY)
		s_tmo.calls = 1;
	FI_CHECK(sx_breaker_withdraw(h2) == 0);

	FI_CHECK(sx_breaker_wait(tmo, -1) == 0);
	FI_CHECK(sx_breaker_err(tmo) == -ETIMEDOUT, "%d", sx_breaker_err(tmo));
	FI_CHECK(sx_breaker_trip(man) == 0);
	FI_CHECK(sx_breaker_wait(mux, -1) == 0 && sx_breaker_err(mux) == -ECANCELED);
	FI_CHECK(sx_breaker_wait(child, -1) == 0 && sx_breaker_err(child) == -ECANCELED);
	FI_WAIT_FOR(calls(&s_man) == 1 && calls(&s_mux) == 1 && calls(&s_child) == 1 &&
	    calls(&s_tmo) == 1);
	FI_CHECK(s_man.err == -ECANCELED && s_tmo.err == -ETIMEDOUT);
	FI_CHECK(sx_breaker_withdraw(h1) == -EALREADY);
	FI_CHECK(!sx_breaker_done(dl) && !sx_breaker_done(sig));

	sx_breaker_release(child);
	sx_breaker_release(mux);
	sx_breaker_release(sig);
	sx_breaker_release(man);
	sx_breaker_release(tmo);
	/* dl outlives its pool: the shutdown trips it with -ESHUTDOWN. */
	sx_pool_destroy(p);
	FI_CHECK(sx_breaker_err(dl) == -ESHUTDOWN, "%d", sx_breaker_err(dl));
	sx_breaker_release(dl);
	FI_CHECK(calls(&s_gone) == 0 && calls(&s_man) == 1 && calls(&s_mux) == 1 &&
	    calls(&s_child) == 1 && calls(&s_tmo) == 1);
}

FI_TESTS(breaker, scenario_breaker)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FI_TEST_PAIR(breaker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
