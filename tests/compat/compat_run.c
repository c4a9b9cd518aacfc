/*
 * compat: github.com/oklog/run's test suite, ported to strix run groups (strix/group.h).
 *
 * Upstream: github.com/oklog/run @ c769e58231538f7fd0d007938f68e8caae45608c.
 *
 * Mapping: run.Group is sx_group; Add(execute, interrupt) is sx_group_add; Run is sx_group_run.
 * Go errors are distinct negative codes. A context is a breaker: ContextHandler(ctx) is
 * sx_group_add_breaker(ctx); SignalHandler(ctx, sigs) is sx_group_add_signals (plus a breaker
 * actor for its context). Upstream's 100 ms / 1 s "timeout" bounds are widened to
 * TU_DEADLINE_NS.
 *
 * Go test                       status
 * ---------------------------   ----------------------------------------------------------------
 * TestZero                      ported
 * TestOne                       ported
 * TestMany                      ported
 * TestContextHandler            ported (the actor ends with the breaker's -ECANCELED)
 * TestSignalError               ported: upstream injects the signal through a test channel;
 *                               here a real SIGINT is sent once the actor runs. errors.As/Is
 *                               on SignalError become SX_ESIGNAL plus the signal number
 *                               (sx_group_cause, sx_actor_info.signo)
 * TestSignalHandlerNil          ported: the handler's cancelled context is a tripped breaker
 *                               actor beside the signal actor; upstream only logs the result,
 *                               here it must be the breaker's -ECANCELED
 * ExampleGroup_Add_basic        ported: the printed lines become an event log; the one line
 *                               whose place is a race upstream too ("The first actor was
 *                               canceled", printed by the actor's goroutine while Run goes on
 *                               interrupting) is checked for its order relative to its own
 *                               interrupt only
 * ExampleGroup_Add_context      ported
 * ExampleGroup_Add_listener     ported with a TCP listener on 127.0.0.1:0 and accept(2) in
 *                               place of http.Serve; interrupt shuts the socket down
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/group.h>

#define MY_ERROR (-EBADMSG)      /* errors.New("foobar") */
#define INTERRUPT (-ENOTCONN)    /* errors.New("interrupt") */
#define TEARDOWN (-EPIPE)        /* errors.New("immediate teardown") */

static void noop_interrupt(int err, void *arg)
{
	(void)err;
	(void)arg;
}

/* Run a group on a thread of its own, as upstream's `go func() { res <- g.Run() }()`. */
struct runner {
	sx_group *g;
	pthread_t t;
	int rc;
	int done;   /* atomic */
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;

	r->rc = sx_group_run(r->g);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void start(struct runner *r, sx_group *g)
{
	r->g = g;
	r->done = 0;
	assert_int_equal(pthread_create(&r->t, NULL, run_thread, r), 0);
}

static int finish(struct runner *r)
{
	TU_WAIT_FOR(__atomic_load_n(&r->done, __ATOMIC_ACQUIRE));
	pthread_join(r->t, NULL);
	return r->rc;
}

static sx_group *mk_group(void)
{
	sx_group *g = NULL;

	assert_int_equal(sx_group_create(NULL, &g), 0);
	return g;
}

static sx_breaker *mk_manual(void)
{
	sx_breaker *b = NULL;

	assert_int_equal(sx_breaker_create(&b), 0);
	return b;
}

/* ---- group_test.go ----------------------------------------------------------------------------- */

static void test_Zero(void **state)
{
	sx_group *g = mk_group();
	struct runner r;

	(void)state;
	start(&r, g);
	assert_int_equal(finish(&r), 0);
	sx_group_destroy(g);
}

static int ret_arg(void *arg)
{
	return (int)(intptr_t)arg;
}

static void test_One(void **state)
{
	sx_group *g = mk_group();
	struct runner r;

	(void)state;
	assert_int_equal(sx_group_add(g, ret_arg, noop_interrupt, NULL,
	    (void *)(intptr_t)MY_ERROR), 0);
	start(&r, g);
	assert_int_equal(finish(&r), MY_ERROR);
	sx_group_destroy(g);
}

/* An actor that blocks until its breaker (the `cancel` channel) trips. */
static int wait_cancel(void *arg)
{
	assert_int_equal(sx_breaker_wait(arg, -1), 0);
	return 0;
}

static void trip_cancel(int err, void *arg)
{
	(void)err;
	sx_breaker_trip(arg);
}

static void test_Many(void **state)
{
	sx_group *g = mk_group();
	sx_breaker *cancel = mk_manual();
	struct runner r;

	(void)state;
	assert_int_equal(sx_group_add(g, ret_arg, noop_interrupt, NULL,
	    (void *)(intptr_t)INTERRUPT), 0);
	assert_int_equal(sx_group_add(g, wait_cancel, trip_cancel, NULL, cancel), 1);
	start(&r, g);
	assert_int_equal(finish(&r), INTERRUPT);
	sx_group_destroy(g);
	sx_breaker_release(cancel);
}

/* ---- actors_test.go ---------------------------------------------------------------------------- */

static void test_ContextHandler(void **state)
{
	sx_group *g = mk_group();
	sx_breaker *ctx = mk_manual();
	struct runner r;

	(void)state;
	assert_int_equal(sx_group_add_breaker(g, ctx), 0);
	start(&r, g);
	assert_int_equal(sx_breaker_trip(ctx), 0);   /* cancel() */
	assert_int_equal(finish(&r), -ECANCELED);
	sx_group_destroy(g);
	sx_breaker_release(ctx);
}

static void test_SignalError(void **state)
{
	sx_group *g = mk_group();
	int sigs[] = { SIGINT };
	sx_actor_info info;
	struct runner r;
	int err = 0, signo = 0;

	(void)state;
	assert_int_equal(sx_group_add_signals(g, sigs, 1), 0);
	start(&r, g);
	/* Once its thread runs, strix's handler is in place (from the start of run). */
	do {
		assert_int_equal(sx_group_actor(g, 0, &info), 0);
		sched_yield();
	} while (info.state == SX_ACTOR_IDLE && !__atomic_load_n(&r.done, __ATOMIC_ACQUIRE));
	assert_int_equal(kill(getpid(), SIGINT), 0);
	assert_int_equal(finish(&r), SX_ESIGNAL);          /* errors.Is(err, ErrSignal) */
	assert_int_equal(sx_group_cause(g, &err, &signo), 0);
	assert_int_equal(err, SX_ESIGNAL);
	assert_int_equal(signo, SIGINT);                   /* sigerr.Signal == os.Interrupt */
	assert_int_equal(sx_group_actor(g, 0, &info), 0);
	assert_int_equal(info.signo, SIGINT);
	sx_group_destroy(g);
}

static void test_SignalHandlerNil(void **state)
{
	sx_group *g = mk_group();
	sx_breaker *ctx = mk_manual();
	int sigs[] = { SIGINT };
	int err = 0;

	(void)state;
	assert_int_equal(sx_group_add_signals(g, sigs, 1), 0);
	assert_int_equal(sx_group_add_breaker(g, ctx), 1);
	assert_int_equal(sx_breaker_trip(ctx), 0);         /* cancel() before Run */
	assert_int_equal(sx_group_run(g), -ECANCELED);     /* ctx.Err() */
	assert_int_equal(sx_group_cause(g, &err, NULL), 1);
	assert_int_equal(err, -ECANCELED);
	sx_group_destroy(g);
	sx_breaker_release(ctx);
}

/* ---- example_test.go ----------------------------------------------------------------------------- */

enum ev {
	EV_FIRST_ELAPSED = 1, EV_FIRST_CANCELED, EV_FIRST_INTERRUPTED, EV_SECOND_RETURNING,
	EV_SECOND_INTERRUPTED, EV_GROUP_DONE,
};

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int evlog[16];
static int evn;
static int ev_err[16];

static void log_ev(int ev, int err)
{
	pthread_mutex_lock(&log_mu);
	if (evn < 16) {
		ev_err[evn] = err;
		evlog[evn++] = ev;
	}
	pthread_mutex_unlock(&log_mu);
}

static int find_ev(int ev)
{
	for (int i = 0; i < evn; i++)
		if (evlog[i] == ev)
			return i;
	return -1;
}

static int basic_first(void *arg)
{
	/* select { case <-time.After(time.Second): ... case <-cancel: ... } (widened) */
	if (sx_breaker_wait(arg, (int64_t)TU_DEADLINE_NS) == 0)
		log_ev(EV_FIRST_CANCELED, 0);
	else
		log_ev(EV_FIRST_ELAPSED, 0);
	return 0;
}

static void basic_first_interrupt(int err, void *arg)
{
	log_ev(EV_FIRST_INTERRUPTED, err);
	sx_breaker_trip(arg);
}

static int basic_second(void *arg)
{
	(void)arg;
	log_ev(EV_SECOND_RETURNING, 0);
	return TEARDOWN;
}

static void basic_second_interrupt(int err, void *arg)
{
	(void)arg;
	log_ev(EV_SECOND_INTERRUPTED, err);
}

static void test_ExampleGroup_Add_basic(void **state)
{
	sx_group *g = mk_group();
	sx_breaker *cancel = mk_manual();
	int rc;

	(void)state;
	evn = 0;
	assert_int_equal(sx_group_add(g, basic_first, basic_first_interrupt, NULL, cancel), 0);
	assert_int_equal(sx_group_add(g, basic_second, basic_second_interrupt, NULL, NULL), 1);
	rc = sx_group_run(g);
	log_ev(EV_GROUP_DONE, rc);

	/* Output: second returning; first interrupted (teardown); second interrupted
	 * (teardown); first canceled; group terminated (teardown). */
	assert_int_equal(evn, 5);
	assert_int_equal(find_ev(EV_FIRST_ELAPSED), -1);
	assert_int_equal(find_ev(EV_SECOND_RETURNING), 0);
	assert_int_equal(find_ev(EV_FIRST_INTERRUPTED), 1);
	assert_int_equal(ev_err[1], TEARDOWN);
	assert_true(find_ev(EV_SECOND_INTERRUPTED) >= 2);
	assert_int_equal(ev_err[find_ev(EV_SECOND_INTERRUPTED)], TEARDOWN);
	assert_true(find_ev(EV_FIRST_CANCELED) > find_ev(EV_FIRST_INTERRUPTED));
	assert_int_equal(find_ev(EV_GROUP_DONE), 4);
	assert_int_equal(rc, TEARDOWN);
	sx_group_destroy(g);
	sx_breaker_release(cancel);
}

static int until_canceled(void *arg)
{
	assert_int_equal(sx_breaker_wait(arg, -1), 0);
	return sx_breaker_err(arg);
}

static void *trip_later(void *arg)
{
	sx_breaker_trip(arg);
	return NULL;
}

static void test_ExampleGroup_Add_context(void **state)
{
	sx_group *g = mk_group();
	sx_breaker *ctx = mk_manual(), *inner = NULL;
	pthread_t t;

	(void)state;
	assert_int_equal(sx_breaker_child(ctx, &inner), 0);   /* shadowed WithCancel(ctx) */
	assert_int_equal(sx_group_add(g, until_canceled, trip_cancel, NULL, inner), 0);
	assert_int_equal(pthread_create(&t, NULL, trip_later, ctx), 0);   /* go cancel() */
	assert_int_equal(sx_group_run(g), -ECANCELED);   /* "context canceled" */
	pthread_join(t, NULL);
	sx_group_destroy(g);
	sx_breaker_release(inner);
	sx_breaker_release(ctx);
}

static int serve_returned;

static int serve(void *arg)
{
	int fd = (int)(intptr_t)arg, c;

	while ((c = accept(fd, NULL, NULL)) >= 0)
		close(c);
	serve_returned = 1;   /* defer fmt.Printf("http.Serve returned\n") */
	return -errno;
}

static void close_listener(int err, void *arg)
{
	(void)err;
	shutdown((int)(intptr_t)arg, SHUT_RDWR);
}

static int teardown_now(void *arg)
{
	(void)arg;
	return TEARDOWN;
}

static void test_ExampleGroup_Add_listener(void **state)
{
	sx_group *g = mk_group();
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	serve_returned = 0;
	assert_int_equal(sx_group_add(g, serve, close_listener, NULL, (void *)(intptr_t)fd), 0);
	assert_int_equal(sx_group_add(g, teardown_now, noop_interrupt, NULL, NULL), 1);
	assert_int_equal(sx_group_run(g), TEARDOWN);
	assert_int_equal(serve_returned, 1);   /* before the group's line */
	sx_group_destroy(g);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_Zero),
		cmocka_unit_test(test_One),
		cmocka_unit_test(test_Many),
		cmocka_unit_test(test_ContextHandler),
		cmocka_unit_test(test_SignalError),
		cmocka_unit_test(test_SignalHandlerNil),
		cmocka_unit_test(test_ExampleGroup_Add_basic),
		cmocka_unit_test(test_ExampleGroup_Add_context),
		cmocka_unit_test(test_ExampleGroup_Add_listener),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
