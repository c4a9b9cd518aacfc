/*
 * Randomized torture of I/O readiness: more workers than cores, many socketpairs, outside
 * threads writing at random, waits with no breaker, a timeout or a manual breaker that a
 * tripper thread trips, callbacks that deregister and re-register their own registration, and
 * an outside thread that deregisters registrations whose wait is pending. Every check is exact:
 * each wait ends once (a per-connection pending count), no callback of a registration runs
 * after its deregistration returned, and every byte written is read once.
 * STRESS=N multiplies the run time by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strix.h>

#include "testutil.h"

#define NCONN 96
#define NBRK 16
#define MAXBRK 4096

/* A connection's owner: STARTING (its owner is starting a wait), WAITING (a wait is pending; the
 * killer may take it by CAS), RUNNING (a callback owns it), KILLING (the killer deregisters it),
 * IDLE (stopped, the test owns it). */
enum { STARTING, WAITING, RUNNING, KILLING, IDLE };

struct conn {
	int fd[2];
	sx_io *_Atomic io;
	atomic_int state;
	atomic_int pending;        /* waits started and not yet ended: 0 or 1 */
	atomic_int gen;            /* registrations so far */
	sx_breaker *to;            /* the pending wait's timeout breaker, released at its end */
	char buf[64];
	uint64_t seed;
};

static sx_pool *pool;
static struct conn conns[NCONN];
static sx_breaker *_Atomic brks[NBRK];
static sx_breaker *graveyard[MAXBRK];
static atomic_uint ngrave;
static atomic_int stopping;
static atomic_llong written, readb;
static atomic_long started, ended, doubled, stale, cancelled, tripped, timedout, rereg, kills;
static atomic_long refused;

static bool start_wait(struct conn *c);

/* The caller owns c: start its next wait, then let the killer or the wait's callback take it. */
static void start_owned(struct conn *c)
{
	atomic_store(&c->state, STARTING);
	atomic_store(&c->state, start_wait(c) ? WAITING : IDLE);
}

/* A callback takes c from its pending wait: false if the killer has it (this is the wait its
 * deregistration ended). A wait that ends while its starter is still inside start_owned waits
 * for it to finish. */
static bool take(struct conn *c)
{
	for (;;) {
		int st = WAITING;

		if (atomic_compare_exchange_strong(&c->state, &st, RUNNING))
			return true;
		if (st == KILLING)
			return false;
		sched_yield();
	}
}

/* The end of a wait or a read, once per start: the pending count says so. */
static void ended_once(struct conn *c)
{
	sx_breaker *to = c->to;

	c->to = NULL;
	sx_breaker_release(to);
	if (atomic_fetch_sub(&c->pending, 1) != 1)
		atomic_fetch_add(&doubled, 1);
	atomic_fetch_add(&ended, 1);
}

static void count_code(int64_t result)
{
	if (result == -ECANCELED)
		atomic_fetch_add(&cancelled, 1);
	else if (result == -ETIMEDOUT)
		atomic_fetch_add(&timedout, 1);
}

static void drain(struct conn *c, sx_io *io)
{
	for (;;) {
		sx_io_token t = sx_io_readiness(io);
		ssize_t n;

		while ((n = read(c->fd[0], c->buf, sizeof(c->buf))) > 0)
			atomic_fetch_add(&readb, n);
		if (sx_io_clear(io, t, SX_IO_READABLE) == 0)
			return;
	}
}

/* What a callback does next with the connection it owns (state RUNNING). */
static void carry_on(struct conn *c, sx_io *io)
{
	uint64_t r = tu_rand(&c->seed);

	if (atomic_load(&stopping)) {
		atomic_store(&c->state, IDLE);
		return;
	}
	if (r % 16 == 0) {
		/* Deregister from inside its own callback, then register the fd again. */
		sx_io *fresh;

		if (sx_io_deregister(io) != 0 ||
		    sx_io_register(pool, c->fd[0], &fresh) != 0) {
			atomic_store(&c->state, IDLE);
			return;
		}
		atomic_store(&c->io, fresh);
		atomic_fetch_add(&c->gen, 1);
		atomic_fetch_add(&rereg, 1);
	}
	start_owned(c);
}

static void wait_cb(sx_io *io, int result, void *arg)
{
	struct conn *c = arg;

	if (!take(c)) {
		ended_once(c); /* the killer's -ECANCELED; it owns c */
		count_code(result);
		return;
	}
	if (io != atomic_load(&c->io))
		atomic_fetch_add(&stale, 1); /* a callback of a registration already gone */
	ended_once(c);
	count_code(result);
	if (result > 0)
		drain(c, io);
	carry_on(c, io);
}

static void read_cb(sx_io *io, int64_t result, void *arg)
{
	struct conn *c = arg;
	bool mine = take(c);

	if (mine && io != atomic_load(&c->io))
		atomic_fetch_add(&stale, 1);
	ended_once(c);
	count_code(result);
	if (result > 0)
		atomic_fetch_add(&readb, result);
	if (mine)
		carry_on(c, io);
}

/* Start the next wait on c, owned by the caller: true if a callback will come. */
static bool start_wait(struct conn *c)
{
	uint64_t r = tu_rand(&c->seed);
	sx_breaker *b = NULL, *to = NULL;
	sx_io *io = atomic_load(&c->io);
	int rc;

	if (r % 4 == 1)
		b = atomic_load(&brks[tu_rand(&c->seed) % NBRK]);
	else if (r % 4 == 2 && sx_breaker_timeout(pool, (int64_t)(tu_rand(&c->seed) % 3000000),
	    &to) == 0)
		b = to;
	c->to = to;
	atomic_fetch_add(&c->pending, 1);
	atomic_fetch_add(&started, 1);
	if (r % 8 < 3)
		rc = sx_io_read(io, c->buf, sizeof(c->buf), 1, b, read_cb, c);
	else
		rc = sx_io_wait(io, SX_IO_READABLE, b, wait_cb, c);
	if (rc != 0) {
		/* No callback comes (the caller owns c, so neither the killer nor a shutdown can have
		 * begun: this would be a failure the counts show). */
		c->to = NULL;
		sx_breaker_release(to);
		atomic_fetch_sub(&c->pending, 1);
		atomic_fetch_sub(&started, 1);
		atomic_fetch_add(&refused, 1);
		return false;
	}
	return true;
}

struct writer {
	pthread_t t;
	uint64_t seed;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&stopping)) {
		struct conn *c = &conns[tu_rand(&w->seed) % NCONN];
		size_t n = 1 + tu_rand(&w->seed) % 32;
		char b[32];
		ssize_t k;

		memset(b, 'w', n);
		k = write(c->fd[1], b, n);
		if (k > 0)
			atomic_fetch_add(&written, k);
		if (tu_rand(&w->seed) % 64 == 0)
			sched_yield();
	}
	return NULL;
}

static void *tripper_main(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;

	while (!atomic_load(&stopping)) {
		unsigned i = (unsigned)(tu_rand(&seed) % NBRK), g;
		sx_breaker *fresh;

		if (sx_breaker_create(&fresh) != 0)
			continue;
		g = atomic_fetch_add(&ngrave, 1);
		if (g >= MAXBRK) {
			sx_breaker_release(fresh);
			break;
		}
		/* The old one is tripped, never released before the end: waits may still hold it. */
		graveyard[g] = atomic_exchange(&brks[i], fresh);
		sx_breaker_trip(graveyard[g]);
		atomic_fetch_add(&tripped, 1);
		tu_sleep_ns(100000 + tu_rand(&seed) % 400000);
	}
	return NULL;
}

/* Deregister connections whose wait is pending, from outside the pool, and register again. */
static void *killer_main(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;

	while (!atomic_load(&stopping)) {
		struct conn *c = &conns[tu_rand(&seed) % NCONN];
		int st = WAITING;
		sx_io *fresh;

		if (!atomic_compare_exchange_strong(&c->state, &st, KILLING)) {
			sched_yield();
			continue;
		}
		assert_int_equal(sx_io_deregister(atomic_load(&c->io)), 0);
		assert_int_equal(sx_io_register(pool, c->fd[0], &fresh), 0);
		atomic_store(&c->io, fresh);
		atomic_fetch_add(&c->gen, 1);
		atomic_fetch_add(&kills, 1);
		start_owned(c);
		tu_sleep_ns(50000 + tu_rand(&seed) % 200000);
	}
	return NULL;
}

static void test_random_io_counts_exact(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct writer w[3];
	pthread_t tripper, killer;
	uint64_t t0, run_ns = 1500 * 1000000ull * tu_stress_scale();
	long long rest = 0;

	(void)state;
	o.workers = 6;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	for (unsigned i = 0; i < NBRK; i++) {
		sx_breaker *b;

		assert_int_equal(sx_breaker_create(&b), 0);
		atomic_store(&brks[i], b);
	}
	for (unsigned i = 0; i < NCONN; i++) {
		struct conn *c = &conns[i];
		sx_io *io;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c->fd), 0);
		c->seed = 0x9e3779b97f4a7c15ull * (i + 1);
		assert_int_equal(sx_io_register(pool, c->fd[0], &io), 0);
		atomic_store(&c->io, io);
		start_owned(c);
	}
	for (unsigned i = 0; i < 3; i++) {
		w[i].seed = 12345 + i;
		pthread_create(&w[i].t, NULL, writer_main, &w[i]);
	}
	pthread_create(&tripper, NULL, tripper_main, (void *)(uintptr_t)777);
	pthread_create(&killer, NULL, killer_main, (void *)(uintptr_t)999);
	t0 = tu_now_ns();
	while (tu_now_ns() - t0 < run_ns)
		tu_sleep_ns(10000000);
	atomic_store(&stopping, 1);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(w[i].t, NULL);
	pthread_join(tripper, NULL);
	pthread_join(killer, NULL);

	/* Each connection: take it from a pending wait (deregistering ends that wait), or wait for
	 * its callback to stop (stopping is set, so it goes IDLE); then nothing of it runs. */
	for (unsigned i = 0; i < NCONN; i++) {
		struct conn *c = &conns[i];

		for (;;) {
			int st = WAITING;

			if (atomic_compare_exchange_strong(&c->state, &st, KILLING) || st == IDLE)
				break;
			sched_yield();
		}
		assert_int_equal(sx_io_deregister(atomic_load(&c->io)), 0);
		atomic_store(&c->io, NULL);
	}
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	for (unsigned i = 0; i < NCONN; i++) {
		char b[4096];
		ssize_t n;

		assert_int_equal(atomic_load(&conns[i].pending), 0);
		while ((n = read(conns[i].fd[0], b, sizeof(b))) > 0)
			rest += n;
		close(conns[i].fd[0]);
		close(conns[i].fd[1]);
	}
	print_message("io stress: %ld waits, %ld cancelled, %ld timed out, %ld trips, %ld re-registered "
	    "inside, %ld killed outside, %lld bytes\n", atomic_load(&started),
	    atomic_load(&cancelled), atomic_load(&timedout), atomic_load(&tripped),
	    atomic_load(&rereg), atomic_load(&kills), atomic_load(&written));
	assert_int_equal(atomic_load(&doubled), 0);
	assert_int_equal(atomic_load(&refused), 0);
	assert_int_equal(atomic_load(&stale), 0);
	assert_int_equal(atomic_load(&started), atomic_load(&ended));
	assert_int_equal(atomic_load(&readb) + rest, atomic_load(&written));
	assert_true(atomic_load(&written) > 0);
	sx_pool_destroy(pool);
	for (unsigned i = 0; i < NBRK; i++)
		sx_breaker_release(atomic_load(&brks[i]));
	for (unsigned i = 0; i < atomic_load(&ngrave) && i < MAXBRK; i++)
		sx_breaker_release(graveyard[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_io_counts_exact),
	};

	return cmocka_run_group_tests_name("stress_io", tests, NULL, NULL);
}
