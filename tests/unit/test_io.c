/*
 * Unit tests of I/O readiness (sx_io_*): registrations on socketpairs, pipes and loopback TCP,
 * waits that end exactly once (readiness, breakers, shutdown, deregistration), the remembered
 * readiness and its tick, and the helpers. Real time: bounds are generous, "exactly once" and
 * "never after deregister" are exact. Callbacks only record what they saw; the test thread
 * asserts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <strix.h>

#include "testutil.h"

#define MS 1000000ull

/* What one wait's callback saw. */
struct probe {
	atomic_int calls;
	atomic_int result;
	atomic_int late;       /* called after the test said no callback may come */
	atomic_int no_more;    /* set by the test after sx_io_deregister returned */
	atomic_int worker;     /* sx_pool_worker_index on the thread that ran it */
	sx_pool *pool;
};

static void probe_cb(sx_io *io, int result, void *arg)
{
	struct probe *p = arg;

	(void)io;
	if (atomic_load(&p->no_more))
		atomic_fetch_add(&p->late, 1);
	atomic_store(&p->result, result);
	atomic_store(&p->worker, p->pool != NULL ? sx_pool_worker_index(p->pool) : -2);
	atomic_fetch_add(&p->calls, 1);
}

struct done {
	atomic_int calls;
	atomic_llong result;
	sx_io *io;
};

static void done_cb(sx_io *io, int64_t result, void *arg)
{
	struct done *d = arg;

	d->io = io;
	atomic_store(&d->result, (long long)result);
	atomic_fetch_add(&d->calls, 1);
}

static void nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Read everything fd holds now. */
static size_t drain(int fd)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

static void wait_events(sx_io *io, unsigned ev)
{
	TU_WAIT_FOR((sx_io_token_events(sx_io_readiness(io)) & ev) == ev);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_bad_input_changes_nothing(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe pr = { 0 };
	struct done d = { 0 };
	sx_io *io = NULL, *io2 = NULL;
	int sv[2], blk[2], fd;
	char buf[8];
	char path[] = "/tmp/strix-test-io-XXXXXX";

	(void)state;
	pair(sv);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, blk), 0);
	assert_int_equal(sx_io_register(NULL, sv[0], &io), -EINVAL);
	assert_int_equal(sx_io_register(p, sv[0], NULL), -EINVAL);
	assert_int_equal(sx_io_register(p, -1, &io), -EINVAL);
	assert_int_equal(sx_io_register(p, blk[0], &io), -EINVAL); /* blocking */
	fd = dup(sv[1]);
	close(fd);
	assert_int_equal(sx_io_register(p, fd, &io), -EBADF);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	nonblock(fd);
	assert_int_equal(sx_io_register(p, fd, &io), -EPERM); /* a regular file */
	close(fd);
	assert_null(io);

	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_register(p, sv[0], &io2), -EEXIST);
	assert_null(io2);
	assert_int_equal(sx_io_fd(io), sv[0]);
	assert_int_equal(sx_io_fd(NULL), -EINVAL);
	assert_int_equal(sx_io_readiness(NULL), 0);

	assert_int_equal(sx_io_wait(NULL, SX_IO_READABLE, NULL, probe_cb, &pr), -EINVAL);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, NULL, &pr), -EINVAL);
	assert_int_equal(sx_io_wait(io, 0, NULL, probe_cb, &pr), -EINVAL);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE | SX_IO_WRITABLE, NULL, probe_cb, &pr),
	    -EINVAL);
	assert_int_equal(sx_io_wait(io, SX_IO_HUP, NULL, probe_cb, &pr), -EINVAL);
	assert_int_equal(sx_io_clear(NULL, 0, SX_IO_READABLE), -EINVAL);
	assert_int_equal(sx_io_clear(io, 0, 0), -EINVAL);
	assert_int_equal(sx_io_clear(io, 0, SX_IO_HUP), -EINVAL);
	assert_int_equal(sx_io_clear(io, 0, SX_IO_READABLE | SX_IO_ERROR), -EINVAL);

	assert_int_equal(sx_io_read(NULL, buf, 8, 1, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_read(io, NULL, 8, 1, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_read(io, buf, 8, 1, NULL, NULL, &d), -EINVAL);
	assert_int_equal(sx_io_read(io, buf, 8, 0, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_read(io, buf, 8, 9, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_read(io, buf, (size_t)SSIZE_MAX + 1, 1, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_write(io, buf, 0, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_write(io, NULL, 8, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_write(NULL, buf, 8, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_write(io, buf, 8, NULL, NULL, &d), -EINVAL);
	assert_int_equal(sx_io_accept(NULL, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_accept(io, NULL, NULL, &d), -EINVAL);
	assert_int_equal(sx_io_connect(NULL, (struct sockaddr *)buf, 8, -1, NULL, done_cb, &d),
	    -EINVAL);
	assert_int_equal(sx_io_connect(p, NULL, 8, -1, NULL, done_cb, &d), -EINVAL);
	assert_int_equal(sx_io_connect(p, (struct sockaddr *)buf, 1, -1, NULL, done_cb, &d),
	    -EINVAL);
	assert_int_equal(sx_io_deregister(NULL), -EINVAL);

	/* Still usable: a wait works and nothing was called. */
	assert_int_equal(sx_io_wait(io, SX_IO_WRITABLE, NULL, probe_cb, &pr), 0);
	TU_WAIT_FOR(atomic_load(&pr.calls) == 1);
	assert_int_equal(atomic_load(&d.calls), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
	close(blk[0]);
	close(blk[1]);
}

/* ---- readiness ---------------------------------------------------------------------------- */

static void test_socketpair_readable_and_writable(void **state)
{
	sx_pool *p = tu_pool(2);
	struct probe r = { .pool = p }, w = { .pool = p };
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_WRITABLE, NULL, probe_cb, &w), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	TU_WAIT_FOR(atomic_load(&w.calls) == 1);
	assert_int_equal(atomic_load(&w.result), SX_IO_WRITABLE);
	assert_true(atomic_load(&w.worker) >= 0); /* a task on the pool */
	assert_int_equal(atomic_load(&r.calls), 0);
	put(sv[1], "hello");
	TU_WAIT_FOR(atomic_load(&r.calls) == 1);
	assert_int_equal(atomic_load(&r.result), SX_IO_READABLE);
	assert_true(atomic_load(&r.worker) >= 0);

	/* A hang-up: readable with SX_IO_HUP. */
	assert_int_equal(drain(sv[0]), 5);
	assert_int_equal(sx_io_clear(io, sx_io_readiness(io), SX_IO_READABLE), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	close(sv[1]);
	TU_WAIT_FOR(atomic_load(&r.calls) == 2);
	assert_int_equal(atomic_load(&r.result) & (SX_IO_READABLE | SX_IO_HUP),
	    SX_IO_READABLE | SX_IO_HUP);
	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	sx_pool_destroy(p);
}

/* The promise form: fulfilled with the ready events, rejected by its breaker, by a cancel of the
 * promise (which ends the wait: the slot is free again), and refused like sx_io_wait. */
static void test_wait_as_a_promise(void **state)
{
	sx_pool *p = tu_pool(2);
	sx_promise *pr, *again;
	sx_breaker *b;
	void *v = NULL;
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_wait_promise(NULL, SX_IO_READABLE, NULL, &pr), -EINVAL);
	assert_int_equal(sx_io_wait_promise(io, SX_IO_READABLE | SX_IO_WRITABLE, NULL, &pr),
	    -EINVAL);
	assert_int_equal(sx_io_wait_promise(io, SX_IO_READABLE, NULL, NULL), -EINVAL);

	assert_int_equal(sx_io_wait_promise(io, SX_IO_READABLE, NULL, &pr), 0);
	assert_int_equal(sx_io_wait_promise(io, SX_IO_READABLE, NULL, &again), -EBUSY);
	assert_false(sx_promise_settled(pr));
	put(sv[1], "x");
	assert_int_equal(sx_promise_get(pr, 10000 * MS, &v), 0);
	assert_true(((unsigned)(uintptr_t)v & SX_IO_READABLE) != 0);
	sx_promise_release(pr);
	assert_int_equal(drain(sv[0]), 1);
	assert_int_equal(sx_io_clear(io, sx_io_readiness(io), SX_IO_READABLE), 0);

	/* A breaker given as stop ends the wait with its code. */
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_io_wait_promise(io, SX_IO_READABLE, b, &pr), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_promise_get(pr, 10000 * MS, &v), -ECANCELED);
	sx_promise_release(pr);
	sx_breaker_release(b);

	/* Cancelling the promise ends the wait: the direction takes a new wait afterwards (a get
	 * returns as soon as the chain's breaker trips; the wait's end follows on its own). */
	TU_WAIT_FOR(sx_io_wait_promise(io, SX_IO_READABLE, NULL, &pr) == 0);
	assert_int_equal(sx_promise_cancel(pr), 0);
	assert_int_equal(sx_promise_get(pr, 10000 * MS, &v), -ECANCELED);
	sx_promise_release(pr);
	TU_WAIT_FOR(sx_io_wait_promise(io, SX_IO_READABLE, NULL, &pr) == 0);
	put(sv[1], "y");
	assert_int_equal(sx_promise_get(pr, 10000 * MS, &v), 0);
	sx_promise_release(pr);

	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

static void test_pipe_read_and_write_ends(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe r = { .pool = p }, w = { .pool = p };
	sx_io *rio, *wio;
	int fds[2];
	char big[4096];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(sx_io_register(p, fds[0], &rio), 0);
	assert_int_equal(sx_io_register(p, fds[1], &wio), 0);
	assert_int_equal(sx_io_wait(rio, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	wait_events(wio, SX_IO_WRITABLE); /* its first event is in: no other comes while full */
	/* Fill the pipe: the write end stops being writable; the wait ends once there is room. */
	memset(big, 'x', sizeof(big));
	while ((n = write(fds[1], big, sizeof(big))) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	TU_WAIT_FOR(atomic_load(&r.calls) == 1);
	assert_int_equal(atomic_load(&r.result), SX_IO_READABLE);
	assert_int_equal(sx_io_clear(wio, sx_io_readiness(wio), SX_IO_WRITABLE), 0);
	assert_int_equal(sx_io_wait(wio, SX_IO_WRITABLE, NULL, probe_cb, &w), 0);
	assert_int_equal(atomic_load(&w.calls), 0);
	drain(fds[0]);
	TU_WAIT_FOR(atomic_load(&w.calls) == 1);
	assert_int_equal(atomic_load(&w.result), SX_IO_WRITABLE);
	assert_int_equal(sx_io_deregister(rio), 0);
	assert_int_equal(sx_io_deregister(wio), 0);
	close(fds[0]);
	close(fds[1]);
	sx_pool_destroy(p);
}

/*
 * A wait on a direction the registration remembers as ready ends from that memory: the data
 * is read behind the reactor's back, so the kernel has nothing to report, and the wait still
 * ends at once with READABLE (a look at the kernel would have found nothing). After
 * sx_io_clear the same wait waits for the kernel again.
 */
static void test_remembered_readiness_needs_no_poll(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe r = { .pool = p };
	sx_io *io;
	sx_io_token t;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	put(sv[1], "x");
	wait_events(io, SX_IO_READABLE);
	assert_int_equal(drain(sv[0]), 1);
	t = sx_io_readiness(io);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	TU_WAIT_FOR(atomic_load(&r.calls) == 1);
	assert_int_equal(atomic_load(&r.result), SX_IO_READABLE);
	assert_int_equal(sx_io_readiness(io), t); /* no event since */

	assert_int_equal(sx_io_clear(io, t, SX_IO_READABLE), 0);
	assert_int_equal(sx_io_token_events(sx_io_readiness(io)) & SX_IO_READABLE, 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	tu_sleep_ns(20 * MS); /* a chance to end wrongly */
	assert_int_equal(atomic_load(&r.calls), 1);
	put(sv[1], "y");
	TU_WAIT_FOR(atomic_load(&r.calls) == 2);
	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* The waiter of a pool whose only worker helps while it waits (sx_breaker_wait): the wait on a
 * remembered readiness is queued and run by that same worker with no poll in between. */
struct inworker {
	sx_io *io;
	sx_breaker *b;
	int wait_rc, got;
	atomic_int done;
};

static void trip_cb(sx_io *io, int result, void *arg)
{
	struct inworker *w = arg;

	(void)io;
	w->got = result;
	sx_breaker_trip(w->b);
}

static void inworker_task(void *arg)
{
	struct inworker *w = arg;

	w->wait_rc = sx_io_wait(w->io, SX_IO_READABLE, NULL, trip_cb, w);
	if (w->wait_rc == 0)
		w->wait_rc = sx_breaker_wait(w->b, (int64_t)(10000 * MS));
	atomic_store(&w->done, 1);
}

static void test_ready_wait_from_a_worker_runs_on_it(void **state)
{
	sx_pool *p = tu_pool(1);
	struct inworker w = { 0 };
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &w.io), 0);
	put(sv[1], "x");
	wait_events(w.io, SX_IO_READABLE);
	assert_int_equal(sx_breaker_create(&w.b), 0);
	assert_int_equal(sx_pool_submit(p, inworker_task, &w), 0);
	TU_WAIT_FOR(atomic_load(&w.done) == 1);
	assert_int_equal(w.wait_rc, 0);
	assert_int_equal(w.got, SX_IO_READABLE);
	sx_breaker_release(w.b);
	assert_int_equal(sx_io_deregister(w.io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* sx_io_clear refuses when the reactor recorded an event after the token was read. */
static void test_clear_follows_the_tick(void **state)
{
	sx_pool *p = tu_pool(1);
	sx_io *io;
	sx_io_token t0, t1;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	wait_events(io, SX_IO_WRITABLE);
	t0 = sx_io_readiness(io);
	put(sv[1], "a");
	TU_WAIT_FOR((sx_io_readiness(io) >> 16) != (t0 >> 16));
	assert_int_equal(sx_io_clear(io, t0, SX_IO_READABLE), -EAGAIN);
	assert_int_equal(sx_io_clear(io, t0, SX_IO_WRITABLE), -EAGAIN);
	t1 = sx_io_readiness(io);
	assert_int_equal(sx_io_token_events(t1) & (SX_IO_READABLE | SX_IO_WRITABLE),
	    SX_IO_READABLE | SX_IO_WRITABLE);
	assert_int_equal(sx_io_clear(io, t1, SX_IO_READABLE), 0);
	assert_int_equal(sx_io_token_events(sx_io_readiness(io)), SX_IO_WRITABLE);
	assert_int_equal(sx_io_clear(io, t1, SX_IO_READABLE), 0); /* nothing left: still 0 */
	assert_int_equal(sx_io_clear(io, sx_io_readiness(io), SX_IO_READABLE | SX_IO_WRITABLE), 0);
	assert_int_equal(sx_io_token_events(sx_io_readiness(io)), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

static void test_one_wait_per_direction(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe a = { 0 }, b = { 0 };
	struct done d = { 0 };
	char buf[4];
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &a), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &b), -EBUSY);
	assert_int_equal(sx_io_read(io, buf, 4, 1, NULL, done_cb, &d), -EBUSY);
	assert_int_equal(sx_io_accept(io, NULL, done_cb, &d), -EBUSY);
	put(sv[1], "x");
	TU_WAIT_FOR(atomic_load(&a.calls) == 1);
	/* The callback has run: the slot is free again. */
	assert_int_equal(sx_io_read(io, buf, 4, 1, NULL, done_cb, &d), 0);
	TU_WAIT_FOR(atomic_load(&d.calls) == 1);
	assert_int_equal(atomic_load(&d.result), 1);
	assert_int_equal(atomic_load(&b.calls), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* ---- breakers ----------------------------------------------------------------------------- */

static void test_breakers_end_waits(void **state)
{
	sx_pool *p = tu_pool(2);
	struct probe t = { 0 }, m = { 0 }, pre = { 0 };
	sx_breaker *to, *man, *tripped;
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_breaker_timeout(p, (int64_t)(20 * MS), &to), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, to, probe_cb, &t), 0);
	TU_WAIT_FOR(atomic_load(&t.calls) == 1);
	assert_int_equal(atomic_load(&t.result), -ETIMEDOUT);

	assert_int_equal(sx_breaker_create(&man), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, man, probe_cb, &m), 0);
	assert_int_equal(sx_breaker_trip(man), 0);
	TU_WAIT_FOR(atomic_load(&m.calls) == 1);
	assert_int_equal(atomic_load(&m.result), -ECANCELED);

	assert_int_equal(sx_breaker_create(&tripped), 0);
	assert_int_equal(sx_breaker_trip(tripped), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, tripped, probe_cb, &pre), 0);
	TU_WAIT_FOR(atomic_load(&pre.calls) == 1);
	assert_int_equal(atomic_load(&pre.result), -ECANCELED);

	/* The same tripped breaker again on a later wait, and readiness with a live breaker. */
	assert_int_equal(sx_io_wait(io, SX_IO_WRITABLE, man, probe_cb, &pre), 0);
	TU_WAIT_FOR(atomic_load(&pre.calls) == 2);
	assert_int_equal(atomic_load(&pre.result), -ECANCELED);
	sx_breaker_release(to);
	assert_int_equal(sx_breaker_timeout(p, (int64_t)(10000 * MS), &to), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_WRITABLE, to, probe_cb, &pre), 0);
	TU_WAIT_FOR(atomic_load(&pre.calls) == 3);
	assert_int_equal(atomic_load(&pre.result), SX_IO_WRITABLE);
	assert_int_equal(sx_io_deregister(io), 0);
	assert_int_equal(atomic_load(&t.calls) + atomic_load(&m.calls), 2);
	sx_breaker_release(to);
	sx_breaker_release(man);
	sx_breaker_release(tripped);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* A trip and readiness race for the same wait, many rounds: one end each, never two. */
struct racer {
	sx_breaker *b;
	int fd;
	atomic_int go;
	int what;
};

static void *race_side(void *arg)
{
	struct racer *r = arg;

	while (atomic_load(&r->go) == 0)
		;
	if (r->what == 0)
		sx_breaker_trip(r->b);
	else
		put(r->fd, "z");
	return NULL;
}

static void test_trip_races_readiness_exactly_once(void **state)
{
	const unsigned rounds = 300;
	sx_pool *p = tu_pool(2);
	unsigned ready = 0, tripped = 0;

	(void)state;
	for (unsigned i = 0; i < rounds; i++) {
		struct probe pr = { 0 };
		struct racer a = { 0 }, b = { 0 };
		pthread_t ta, tb;
		sx_io *io;
		int sv[2];

		pair(sv);
		assert_int_equal(sx_io_register(p, sv[0], &io), 0);
		assert_int_equal(sx_breaker_create(&a.b), 0);
		a.what = 0;
		b.what = 1;
		b.fd = sv[1];
		assert_int_equal(sx_io_wait(io, SX_IO_READABLE, a.b, probe_cb, &pr), 0);
		pthread_create(&ta, NULL, race_side, &a);
		pthread_create(&tb, NULL, race_side, &b);
		atomic_store(&a.go, 1);
		atomic_store(&b.go, 1);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		TU_WAIT_FOR(atomic_load(&pr.calls) >= 1);
		/* deregister waits for every callback that could still come */
		assert_int_equal(sx_io_deregister(io), 0);
		assert_int_equal(atomic_load(&pr.calls), 1);
		if (atomic_load(&pr.result) == -ECANCELED)
			tripped++;
		else if (atomic_load(&pr.result) == SX_IO_READABLE)
			ready++;
		else
			fail_msg("round %u: result %d", i, atomic_load(&pr.result));
		sx_breaker_release(a.b);
		close(sv[0]);
		close(sv[1]);
	}
	assert_int_equal(ready + tripped, rounds);
	sx_pool_destroy(p);
}

/* ---- deregistration ----------------------------------------------------------------------- */

/* A reader that keeps waiting: each callback drains the fd, clears and waits again. */
struct reader {
	struct probe pr;
	sx_io *io;
	int fd;
	atomic_int cancelled;
};

static void reader_cb(sx_io *io, int result, void *arg)
{
	struct reader *r = arg;

	if (atomic_load(&r->pr.no_more))
		atomic_fetch_add(&r->pr.late, 1);
	atomic_fetch_add(&r->pr.calls, 1);
	if (result < 0) {
		atomic_fetch_add(&r->cancelled, 1);
		return;
	}
	for (;;) {
		sx_io_token t = sx_io_readiness(io);

		drain(r->fd);
		if (sx_io_clear(io, t, SX_IO_READABLE) == 0)
			break;
	}
	sx_io_wait(io, SX_IO_READABLE, NULL, reader_cb, r);
}

struct writer {
	int fd;
	atomic_int stop;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&w->stop)) {
		if (write(w->fd, "w", 1) < 0 && errno != EAGAIN)
			break;
		sched_yield();
	}
	return NULL;
}

/* Events keep arriving from another thread while the registration goes: after
 * sx_io_deregister returns, no callback runs (the callback checks a flag set right after). */
static void test_deregister_races_events(void **state)
{
	const unsigned rounds = 200;
	sx_pool *p = tu_pool(2);
	unsigned late = 0, calls = 0;

	(void)state;
	for (unsigned i = 0; i < rounds; i++) {
		struct reader r = { 0 };
		struct writer w = { 0 };
		pthread_t t;
		int sv[2];

		pair(sv);
		r.fd = sv[0];
		w.fd = sv[1];
		assert_int_equal(sx_io_register(p, sv[0], &r.io), 0);
		assert_int_equal(sx_io_wait(r.io, SX_IO_READABLE, NULL, reader_cb, &r), 0);
		pthread_create(&t, NULL, writer_main, &w);
		for (unsigned spin = 0; spin < (i % 7) * 50; spin++)
			sched_yield();
		assert_int_equal(sx_io_deregister(r.io), 0);
		atomic_store(&r.pr.no_more, 1);
		atomic_store(&w.stop, 1);
		pthread_join(t, NULL);
		/* Give a wrong late callback time to show itself. */
		if (i % 50 == 0)
			tu_sleep_ns(5 * MS);
		late += (unsigned)atomic_load(&r.pr.late);
		calls += (unsigned)atomic_load(&r.pr.calls);
		close(sv[0]);
		close(sv[1]);
	}
	assert_int_equal(late, 0);
	assert_true(calls >= rounds); /* at least the -ECANCELED or a readiness per round */
	sx_pool_destroy(p);
}

/* A pending wait ends with -ECANCELED before sx_io_deregister returns. */
static void test_deregister_cancels_pending_waits(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe r = { 0 };
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_int_equal(atomic_load(&r.result), -ECANCELED);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* A callback deregisters its own registration; the other direction's pending wait has ended
 * (-ECANCELED) when the call returns, and nothing runs afterwards. */
struct selfdereg {
	struct probe other;
	atomic_int calls, rc, other_seen;
	atomic_int after;
};

static void selfdereg_cb(sx_io *io, int result, void *arg)
{
	struct selfdereg *s = arg;

	(void)result;
	if (atomic_load(&s->after))
		atomic_fetch_add(&s->other.late, 1);
	atomic_fetch_add(&s->calls, 1);
	atomic_store(&s->rc, sx_io_deregister(io));
	atomic_store(&s->other_seen, atomic_load(&s->other.calls));
	atomic_store(&s->after, 1);
}

static void test_deregister_from_inside_a_callback(void **state)
{
	sx_pool *p = tu_pool(2);
	struct selfdereg s = { 0 };
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	wait_events(io, SX_IO_WRITABLE);
	/* Fill the socket so writable is pending, then let readable end the other wait. */
	{
		char big[4096];

		memset(big, 'x', sizeof(big));
		while (write(sv[0], big, sizeof(big)) > 0)
			;
	}
	assert_int_equal(sx_io_clear(io, sx_io_readiness(io), SX_IO_WRITABLE), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_WRITABLE, NULL, probe_cb, &s.other), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, selfdereg_cb, &s), 0);
	put(sv[1], "x");
	TU_WAIT_FOR(atomic_load(&s.after) == 1);
	assert_int_equal(atomic_load(&s.calls), 1);
	assert_int_equal(atomic_load(&s.rc), 0);
	assert_int_equal(atomic_load(&s.other_seen), 1);
	assert_int_equal(atomic_load(&s.other.result), -ECANCELED);
	drain(sv[1]); /* room to write: no callback may come of it */
	tu_sleep_ns(20 * MS);
	assert_int_equal(atomic_load(&s.other.calls), 1);
	assert_int_equal(atomic_load(&s.other.late), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* ---- many fds ----------------------------------------------------------------------------- */

static void test_thousands_of_fds(void **state)
{
	const unsigned n = 2000;
	struct rlimit rl;
	sx_pool *p;
	sx_io **ios;
	int *fds;
	struct probe *pr;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * n + 64) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_cur < 2 * n + 64) {
		print_message("skipped: RLIMIT_NOFILE is %llu, the test needs %u\n",
		    (unsigned long long)rl.rlim_cur, 2 * n + 64);
		skip();
	}
	p = tu_pool(2);
	ios = calloc(n, sizeof(*ios));
	fds = calloc(2 * n, sizeof(*fds));
	pr = calloc(n, sizeof(*pr));
	assert_non_null(ios);
	assert_non_null(fds);
	assert_non_null(pr);
	for (unsigned i = 0; i < n; i++) {
		pair(&fds[2 * i]);
		assert_int_equal(sx_io_register(p, fds[2 * i], &ios[i]), 0);
		assert_int_equal(sx_io_wait(ios[i], SX_IO_READABLE, NULL, probe_cb, &pr[i]), 0);
	}
	for (unsigned i = 0; i < n; i++)
		put(fds[2 * i + 1], "k");
	for (unsigned i = 0; i < n; i++) {
		TU_WAIT_FOR(atomic_load(&pr[i].calls) == 1);
		assert_int_equal(atomic_load(&pr[i].result), SX_IO_READABLE);
	}
	for (unsigned i = 0; i < n; i++) {
		if (i % 2 == 0)
			assert_int_equal(sx_io_deregister(ios[i]), 0);
	}
	/* The other half stays registered: destroy frees them (the fds are ours to close). */
	sx_pool_destroy(p);
	for (unsigned i = 0; i < 2 * n; i++)
		close(fds[i]);
	free(ios);
	free(fds);
	free(pr);
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void shutdown_with_waits(int mode)
{
	enum { N = 8 };
	sx_pool *p = tu_pool(2);
	struct probe pr[N], w2 = { 0 };
	sx_io *io[N];
	int sv[N][2];

	memset(pr, 0, sizeof(pr));
	for (unsigned i = 0; i < N; i++) {
		pair(sv[i]);
		assert_int_equal(sx_io_register(p, sv[i][0], &io[i]), 0);
		assert_int_equal(sx_io_wait(io[i], SX_IO_READABLE, NULL, probe_cb, &pr[i]), 0);
	}
	assert_int_equal(sx_pool_shutdown(p, mode), 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(atomic_load(&pr[i].calls), 1);
		assert_int_equal(atomic_load(&pr[i].result), -ESHUTDOWN);
	}
	assert_int_equal(sx_io_wait(io[0], SX_IO_READABLE, NULL, probe_cb, &w2), -ESHUTDOWN);
	assert_int_equal(sx_io_wait(io[0], SX_IO_WRITABLE, NULL, probe_cb, &w2), -ESHUTDOWN);
	assert_int_equal(sx_io_register(p, sv[0][1], &io[0]), -ESHUTDOWN);
	for (unsigned i = 0; i < N; i += 2)
		assert_int_equal(sx_io_deregister(io[i]), 0);
	sx_pool_destroy(p); /* frees the odd ones */
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(atomic_load(&pr[i].calls), 1);
		close(sv[i][0]);
		close(sv[i][1]);
	}
	assert_int_equal(atomic_load(&w2.calls), 0);
}

static void test_shutdown_drain_ends_waits_once(void **state)
{
	(void)state;
	shutdown_with_waits(SX_DRAIN);
}

static void test_shutdown_cancel_ends_waits_once(void **state)
{
	(void)state;
	shutdown_with_waits(SX_CANCEL);
}

/* A wait that readiness ended and whose task SX_CANCEL then discards reports -ESHUTDOWN
 * through the task's cancel path, on the shutting-down thread, once. */
static void test_cancel_discards_a_ready_callback(void **state)
{
	sx_pool *p = tu_pool(1);
	struct probe r = { .pool = p };
	struct tu_held h;
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	put(sv[1], "x");
	wait_events(io, SX_IO_READABLE);
	tu_hold(&h, p);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0); /* queued */
	tu_shutdown_held(&h, SX_CANCEL);
	tu_release(&h);
	assert_int_equal(atomic_load(&r.calls), 1);
	assert_int_equal(atomic_load(&r.result), -ESHUTDOWN);
	assert_int_equal(atomic_load(&r.worker), -1); /* not a worker: the shutdown's thread */
	assert_int_equal(sx_io_deregister(io), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* ---- a busy pool -------------------------------------------------------------------------- */

/* Every worker runs tasks that respawn themselves until the I/O callback says stop: the pool
 * never idles, so only the run loop's periodic poll can deliver the readiness. */
struct busy {
	sx_pool *pool;
	atomic_int stop;
	atomic_long spawned;
};

static void busy_task(void *arg)
{
	struct busy *b = arg;
	uint64_t t0 = tu_now_ns();

	while (tu_now_ns() - t0 < 20000)
		;
	if (!atomic_load(&b->stop)) {
		atomic_fetch_add(&b->spawned, 1);
		sx_pool_submit(b->pool, busy_task, b);
	}
}

static void busy_io_cb(sx_io *io, int result, void *arg)
{
	struct busy *b = arg;

	(void)io;
	if (result == SX_IO_READABLE)
		atomic_store(&b->stop, 1);
}

static void test_busy_pool_still_sees_readiness(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct busy b = { 0 };
	sx_pool *p;
	sx_io *io;
	int sv[2];

	(void)state;
	o.workers = 2;
	o.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	b.pool = p;
	pair(sv);
	for (unsigned i = 0; i < 2 * o.workers; i++)
		assert_int_equal(sx_pool_submit(p, busy_task, &b), 0);
	TU_WAIT_FOR(atomic_load(&b.spawned) > 100);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, busy_io_cb, &b), 0);
	put(sv[1], "x");
	TU_WAIT_FOR(atomic_load(&b.stop) == 1);
	assert_int_equal(sx_io_deregister(io), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* A pool that never parks sees readiness from its searching workers' polls. */
static void test_spinning_pool_sees_readiness(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct probe r = { 0 };
	sx_worker_counters wc[2];
	sx_pool_counters pc;
	sx_pool *p;
	sx_io *io;
	int sv[2];

	(void)state;
	o.workers = 2;
	o.spin_ns = SX_SPIN_FOREVER;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, probe_cb, &r), 0);
		put(sv[1], "x");
		TU_WAIT_FOR(atomic_load(&r.calls) == i + 1);
		assert_int_equal(drain(sv[0]), 1);
		TU_WAIT_FOR(sx_io_clear(io, sx_io_readiness(io), SX_IO_READABLE) == 0);
	}
	assert_int_equal(sx_pool_stats(p, &pc, wc, 2), 0);
	assert_int_equal(pc.total.parks, 0);
	assert_int_equal(sx_io_deregister(io), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* ---- allocation --------------------------------------------------------------------------- */

struct allocs {
	sx_io *io;
	bool in_worker;
	uint64_t before, after;
	atomic_int calls;
	atomic_int done;
};

/* On the pool's only worker: each callback starts the next wait on the same (ready) direction;
 * the count of allocations on that thread is taken after the first and after the last. */
static void allocs_cb(sx_io *io, int result, void *arg)
{
	struct allocs *a = arg;
	int n = atomic_fetch_add(&a->calls, 1) + 1;

	(void)result;
	if (!a->in_worker)
		return;
	if (n == 2)
		a->before = sx_allocations();
	if (n < 102 && sx_io_wait(io, SX_IO_WRITABLE, NULL, allocs_cb, a) == 0)
		return;
	a->after = sx_allocations();
	atomic_store(&a->done, 1);
}

static void allocs_task(void *arg)
{
	struct allocs *a = arg;

	a->in_worker = true;
	if (sx_io_wait(a->io, SX_IO_WRITABLE, NULL, allocs_cb, a) != 0)
		atomic_store(&a->done, 1);
}

/* Waits that end at once (the direction is ready) allocate nothing, from a thread outside the
 * pool (once its record exists) and from a worker: their records live in the registration and
 * their tasks are embedded in it. */
static void test_waits_allocate_nothing(void **state)
{
	sx_pool *p = tu_pool(1);
	struct allocs a = { 0 };
	uint64_t before;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &a.io), 0);
	wait_events(a.io, SX_IO_WRITABLE);
	/* From this thread: warm the per-thread record once, then count. */
	assert_int_equal(sx_io_wait(a.io, SX_IO_WRITABLE, NULL, allocs_cb, &a), 0);
	TU_WAIT_FOR(atomic_load(&a.calls) == 1);
	before = sx_allocations();
	for (int i = 0; i < 100; i++) {
		while (sx_io_wait(a.io, SX_IO_WRITABLE, NULL, allocs_cb, &a) == -EBUSY)
			sched_yield();
	}
	assert_int_equal(sx_allocations(), before);
	TU_WAIT_FOR(atomic_load(&a.calls) == 101);
	atomic_store(&a.calls, 0);
	assert_int_equal(sx_pool_submit(p, allocs_task, &a), 0);
	TU_WAIT_FOR(atomic_load(&a.done) == 1);
	assert_int_equal(atomic_load(&a.calls), 102);
	assert_int_equal(a.after, a.before);
	assert_int_equal(sx_io_deregister(a.io), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void test_read_min_len_and_eof(void **state)
{
	sx_pool *p = tu_pool(2);
	struct done d = { 0 };
	char buf[16];
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sx_io_read(io, buf, 10, 5, NULL, done_cb, &d), 0);
	put(sv[1], "abc");
	tu_sleep_ns(20 * MS);
	assert_int_equal(atomic_load(&d.calls), 0); /* 3 < min */
	put(sv[1], "defg");
	TU_WAIT_FOR(atomic_load(&d.calls) == 1);
	assert_int_equal(atomic_load(&d.result), 7);
	assert_memory_equal(buf, "abcdefg", 7);
	assert_ptr_equal(d.io, io);

	/* Bytes already there: done at once (still in a task), up to len. */
	put(sv[1], "0123456789AB");
	wait_events(io, SX_IO_READABLE);
	assert_int_equal(sx_io_read(io, buf, 10, 1, NULL, done_cb, &d), 0);
	TU_WAIT_FOR(atomic_load(&d.calls) == 2);
	assert_int_equal(atomic_load(&d.result), 10);
	assert_memory_equal(buf, "0123456789", 10);

	/* End of file after some bytes: fewer than min; then end of file before any. */
	shutdown(sv[1], SHUT_WR);
	assert_int_equal(sx_io_read(io, buf, 10, 5, NULL, done_cb, &d), 0);
	TU_WAIT_FOR(atomic_load(&d.calls) == 3);
	assert_int_equal(atomic_load(&d.result), 2);
	assert_memory_equal(buf, "AB", 2);
	assert_int_equal(sx_io_read(io, buf, 10, 5, NULL, done_cb, &d), 0);
	TU_WAIT_FOR(atomic_load(&d.calls) == 4);
	assert_int_equal(atomic_load(&d.result), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

static void test_read_ends_by_breaker_and_deregister(void **state)
{
	sx_pool *p = tu_pool(2);
	struct done d = { 0 };
	sx_breaker *b;
	char buf[8];
	sx_io *io;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	assert_int_equal(sx_breaker_timeout(p, (int64_t)(20 * MS), &b), 0);
	assert_int_equal(sx_io_read(io, buf, 8, 8, b, done_cb, &d), 0);
	put(sv[1], "abc"); /* a round that reads 3 and waits again: the breaker still holds */
	TU_WAIT_FOR(atomic_load(&d.calls) == 1);
	assert_int_equal(atomic_load(&d.result), -ETIMEDOUT);
	sx_breaker_release(b);
	assert_int_equal(sx_io_read(io, buf, 8, 8, NULL, done_cb, &d), 0);
	assert_int_equal(sx_io_deregister(io), 0);
	assert_int_equal(atomic_load(&d.calls), 2);
	assert_int_equal(atomic_load(&d.result), -ECANCELED);
	close(sv[0]);
	close(sv[1]);
	sx_pool_destroy(p);
}

/* 4 MiB through a socket whose buffers are a few KiB: many rounds of EAGAIN, clear, wait. */
static void test_write_large_through_small_buffer(void **state)
{
	const size_t len = 4u << 20;
	sx_pool *p = tu_pool(2);
	struct done wd = { 0 }, rd = { 0 };
	unsigned char *out = malloc(len), *in = malloc(len);
	int sz = 4096, sv[2];
	sx_io *wio, *rio;

	(void)state;
	assert_non_null(out);
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 131 + (i >> 12));
	pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	assert_int_equal(sx_io_register(p, sv[0], &wio), 0);
	assert_int_equal(sx_io_register(p, sv[1], &rio), 0);
	assert_int_equal(sx_io_write(wio, out, len, NULL, done_cb, &wd), 0);
	assert_int_equal(sx_io_read(rio, in, len, len, NULL, done_cb, &rd), 0);
	TU_WAIT_FOR(atomic_load(&wd.calls) == 1 && atomic_load(&rd.calls) == 1);
	assert_int_equal(atomic_load(&wd.result), (long long)len);
	assert_int_equal(atomic_load(&rd.result), (long long)len);
	assert_memory_equal(in, out, len);
	assert_int_equal(sx_io_deregister(wio), 0);
	assert_int_equal(sx_io_deregister(rio), 0);
	/* The peer gone: a write ends with -EPIPE (no SIGPIPE: MSG_NOSIGNAL). */
	close(sv[1]);
	assert_int_equal(sx_io_register(p, sv[0], &wio), 0);
	assert_int_equal(sx_io_write(wio, out, len, NULL, done_cb, &wd), 0);
	TU_WAIT_FOR(atomic_load(&wd.calls) == 2);
	assert_true(atomic_load(&wd.result) == -EPIPE || atomic_load(&wd.result) == -ECONNRESET);
	assert_int_equal(sx_io_deregister(wio), 0);
	close(sv[0]);
	free(out);
	free(in);
	sx_pool_destroy(p);
}

static int listener(struct sockaddr_in *sa, int backlog)
{
	socklen_t l = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &l), 0);
	return fd;
}

static void test_accept_and_connect_on_loopback(void **state)
{
	sx_pool *p = tu_pool(2);
	struct done a = { 0 }, c = { 0 }, w = { 0 }, r = { 0 };
	struct sockaddr_in sa;
	sx_io *lio, *sio;
	char buf[8];
	int lfd, fl;

	(void)state;
	lfd = listener(&sa, 16);
	assert_int_equal(sx_io_register(p, lfd, &lio), 0);
	assert_int_equal(sx_io_accept(lio, NULL, done_cb, &a), 0);
	assert_int_equal(sx_io_connect(p, (struct sockaddr *)&sa, sizeof(sa), (int64_t)(5000 * MS),
	    NULL, done_cb, &c), 0);
	TU_WAIT_FOR(atomic_load(&a.calls) == 1 && atomic_load(&c.calls) == 1);
	assert_true(atomic_load(&a.result) >= 0);
	assert_int_equal(atomic_load(&c.result), 0);
	assert_non_null(c.io);
	fl = fcntl((int)atomic_load(&a.result), F_GETFL);
	assert_true(fl & O_NONBLOCK);
	assert_true(fcntl((int)atomic_load(&a.result), F_GETFD) & FD_CLOEXEC);

	assert_int_equal(sx_io_register(p, (int)atomic_load(&a.result), &sio), 0);
	assert_int_equal(sx_io_write(c.io, "ping", 4, NULL, done_cb, &w), 0);
	assert_int_equal(sx_io_read(sio, buf, 4, 4, NULL, done_cb, &r), 0);
	TU_WAIT_FOR(atomic_load(&w.calls) == 1 && atomic_load(&r.calls) == 1);
	assert_int_equal(atomic_load(&r.result), 4);
	assert_memory_equal(buf, "ping", 4);

	{
		int cfd = sx_io_fd(c.io);

		assert_int_equal(sx_io_deregister(c.io), 0);
		close(cfd);
	}
	assert_int_equal(sx_io_deregister(sio), 0);
	close((int)atomic_load(&a.result));

	/* Nobody listens any more: refused. */
	assert_int_equal(sx_io_deregister(lio), 0);
	close(lfd);
	c.calls = 0;
	c.io = (sx_io *)&c;
	{
		int rc = sx_io_connect(p, (struct sockaddr *)&sa, sizeof(sa), -1, NULL, done_cb, &c);

		if (rc == 0) {
			TU_WAIT_FOR(atomic_load(&c.calls) == 1);
			assert_int_equal(atomic_load(&c.result), -ECONNREFUSED);
			assert_null(c.io);
		} else {
			assert_int_equal(rc, -ECONNREFUSED);
		}
	}
	sx_pool_destroy(p);
}

/* A connect stopped by a breaker: already tripped, or tripped while the connect is pending
 * (a listener whose queue is full leaves a loopback connect in SYN_SENT; if the system does not,
 * that half is skipped). */
static void test_connect_ends_by_breaker_and_timeout(void **state)
{
	sx_pool *p = tu_pool(2);
	struct done c = { 0 }, t = { 0 };
	struct sockaddr_in sa;
	sx_breaker *b;
	int lfd, fill[32], nfill = 0;
	bool pending = false;

	(void)state;
	lfd = listener(&sa, 0);
	assert_int_equal(sx_breaker_create(&b), 0);
	assert_int_equal(sx_breaker_trip(b), 0);
	assert_int_equal(sx_io_connect(p, (struct sockaddr *)&sa, sizeof(sa), -1, b, done_cb, &c),
	    0);
	TU_WAIT_FOR(atomic_load(&c.calls) == 1);
	assert_int_equal(atomic_load(&c.result), -ECANCELED);
	assert_null(c.io);
	sx_breaker_release(b);

	/* Fill the accept queue until a connect stays pending. */
	while (nfill < 32 && !pending) {
		struct pollfd pf;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		assert_true(fd >= 0);
		fill[nfill++] = fd;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			continue;
		pf.fd = fd;
		pf.events = POLLOUT;
		pending = poll(&pf, 1, 200) == 0;
	}
	if (pending) {
		assert_int_equal(sx_io_connect(p, (struct sockaddr *)&sa, sizeof(sa),
		    (int64_t)(30 * MS), NULL, done_cb, &t), 0);
		TU_WAIT_FOR(atomic_load(&t.calls) == 1);
		assert_int_equal(atomic_load(&t.result), -ETIMEDOUT);
		assert_null(t.io);
		assert_int_equal(sx_breaker_create(&b), 0);
		assert_int_equal(sx_io_connect(p, (struct sockaddr *)&sa, sizeof(sa), -1, b, done_cb,
		    &t), 0);
		tu_sleep_ns(10 * MS);
		assert_int_equal(sx_breaker_trip(b), 0);
		TU_WAIT_FOR(atomic_load(&t.calls) == 2);
		assert_int_equal(atomic_load(&t.result), -ECANCELED);
		sx_breaker_release(b);
	} else {
		print_message("no pending loopback connect on this system: timeout half skipped\n");
	}
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
	sx_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_socketpair_readable_and_writable),
		cmocka_unit_test(test_pipe_read_and_write_ends),
		cmocka_unit_test(test_wait_as_a_promise),
		cmocka_unit_test(test_remembered_readiness_needs_no_poll),
		cmocka_unit_test(test_ready_wait_from_a_worker_runs_on_it),
		cmocka_unit_test(test_clear_follows_the_tick),
		cmocka_unit_test(test_one_wait_per_direction),
		cmocka_unit_test(test_breakers_end_waits),
		cmocka_unit_test(test_trip_races_readiness_exactly_once),
		cmocka_unit_test(test_deregister_races_events),
		cmocka_unit_test(test_deregister_cancels_pending_waits),
		cmocka_unit_test(test_deregister_from_inside_a_callback),
		cmocka_unit_test(test_thousands_of_fds),
		cmocka_unit_test(test_shutdown_drain_ends_waits_once),
		cmocka_unit_test(test_shutdown_cancel_ends_waits_once),
		cmocka_unit_test(test_cancel_discards_a_ready_callback),
		cmocka_unit_test(test_busy_pool_still_sees_readiness),
		cmocka_unit_test(test_spinning_pool_sees_readiness),
		cmocka_unit_test(test_waits_allocate_nothing),
		cmocka_unit_test(test_read_min_len_and_eof),
		cmocka_unit_test(test_read_ends_by_breaker_and_deregister),
		cmocka_unit_test(test_write_large_through_small_buffer),
		cmocka_unit_test(test_accept_and_connect_on_loopback),
		cmocka_unit_test(test_connect_ends_by_breaker_and_timeout),
	};

	return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
