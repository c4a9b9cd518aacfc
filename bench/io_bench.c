/*
 * io_pingpong for strix, public API only (bench/README.md): the two ends of one TCP connection
 * over 127.0.0.1, each registered with the pool (sx_io_register); each end's handler is a
 * readiness wait's callback, a task on any worker, which reads the byte, writes the next one back
 * and waits again. Built only when strix has its I/O module (bench.mk: include/strix/io.h).
 *
 * The handler reads until EAGAIN and then forgets the readiness it saw (sx_io_clear with the
 * token taken before that read) before it waits again, as io.h tells a reader to; it writes the
 * byte back as soon as it has read it, before the read that finds the socket empty, so that
 * read is not between the two ends' hand-offs (a byte that is already back by then is handled
 * in the same callback).
 */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <strix.h>
#include <strix/io.h>

#include "workloads.h"

/* A run that sees no hand-off through for this long has lost a wake-up: it fails, not hangs. */
#define IO_STALL_S 60

struct io_run;

struct io_end {
	struct io_run *run;
	sx_io *io;
	int me;
};

struct io_run {
	struct io_end end[2];
	bench_relay relay;
	atomic_bool over; /* the run has ended (done posted); a wait ending after that is quiet */
	char err[120];
	sem_t done;
};

/* Ends the run once: what == NULL when every hand-off went through, else why it failed. */
static void finish(struct io_run *r, const char *what, long code)
{
	if (atomic_exchange(&r->over, true))
		return;
	if (what != NULL)
		snprintf(r->err, sizeof(r->err), "%s (%ld)", what, code);
	sem_post(&r->done);
}

static void on_readable(sx_io *io, int result, void *arg)
{
	struct io_end *e = arg;
	struct io_run *r = e->run;
	int fd = sx_io_fd(io), rc;

	if (result < 0) {
		/* After the run has ended, this is the teardown's sx_io_deregister. */
		finish(r, "the readiness wait ended without readiness", result);
		return;
	}
	if (!(result & SX_IO_READABLE)) {
		finish(r, "a readable wait ended without SX_IO_READABLE", result);
		return;
	}
	for (;;) {
		sx_io_token seen = sx_io_readiness(io);
		unsigned char b;
		ssize_t n = read(fd, &b, 1);

		if (n == 1) {
			uint64_t k = bench_relay_received(&r->relay, e->me, b, bench_now_ns());

			if (k == r->relay.total) {
				finish(r, NULL, 0);
				return;
			}
			k = bench_relay_send(&r->relay);
			b = (unsigned char)k;
			if (write(fd, &b, 1) != 1) {
				finish(r, "write", -errno);
				return;
			}
			if (k == r->relay.total) /* the other end reads the last one and ends the run */
				return;
			continue;
		}
		if (n == 0) {
			finish(r, "the other end closed the connection", 0);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			finish(r, "read", -errno);
			return;
		}
		/* -EAGAIN: readiness came in since `seen`: read again. */
		if ((rc = sx_io_clear(io, seen, SX_IO_READABLE)) == 0)
			break;
		if (rc != -EAGAIN) {
			finish(r, "sx_io_clear", rc);
			return;
		}
	}
	if ((rc = sx_io_wait(io, SX_IO_READABLE, NULL, on_readable, e)) != 0)
		finish(r, "sx_io_wait", rc);
}

/* Waits for the run's end; a run that does not end within IO_STALL_S fails. */
static void await_done(struct io_run *r)
{
	struct timespec limit;

	clock_gettime(CLOCK_MONOTONIC, &limit);
	limit.tv_sec += IO_STALL_S;
	while (sem_clockwait(&r->done, CLOCK_MONOTONIC, &limit) != 0) {
		if (errno != ETIMEDOUT)
			continue;
		if (!atomic_exchange(&r->over, true)) {
			snprintf(r->err, sizeof(r->err), "no end within %d s: a wake-up was lost",
			    IO_STALL_S);
			return;
		}
		/* A callback ended the run just now: its post follows. */
		while (sem_wait(&r->done) != 0)
			;
		return;
	}
}

int strix_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o)
{
	struct io_run r = { .err = "" };
	int fd[2], rc = 0;
	uint64_t t0, k;
	unsigned char b;
	sx_pool *pool;

	atomic_init(&r.over, false);
	bench_relay_init(&r.relay, rounds, h);
	if (bench_tcp_pair(fd, o) != 0)
		return -1;
	if ((pool = bench_strix_pool(workers < 2 ? 2 : workers, o)) == NULL) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	sem_init(&r.done, 0, 0);
	for (int i = 0; i < 2 && rc == 0; i++) {
		r.end[i] = (struct io_end){ .run = &r, .me = i };
		if ((rc = sx_io_register(pool, fd[i], &r.end[i].io)) != 0)
			snprintf(o->err, sizeof(o->err), "strix io_pingpong: sx_io_register: %d", rc);
	}
	for (int i = 0; i < 2 && rc == 0; i++)
		if ((rc = sx_io_wait(r.end[i].io, SX_IO_READABLE, NULL, on_readable, &r.end[i])) != 0)
			snprintf(o->err, sizeof(o->err), "strix io_pingpong: sx_io_wait: %d", rc);
	if (rc == 0) {
		t0 = bench_now_ns();
		k = bench_relay_send(&r.relay);
		b = (unsigned char)k;
		if (write(fd[0], &b, 1) != 1)
			finish(&r, "write", -errno);
		await_done(&r);
		o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	}
	/* A wait still pending (a failed run's) ends with -ECANCELED here, quietly: the run is over.
	 * Every callback of an end has returned once its deregistration has. */
	atomic_store(&r.over, true);
	for (int i = 0; i < 2; i++)
		if (r.end[i].io != NULL)
			sx_io_deregister(r.end[i].io);
	sx_pool_wait_idle(pool);
	sx_pool_destroy(pool);
	close(fd[0]);
	close(fd[1]);
	sem_destroy(&r.done);
	if (rc != 0)
		return -1;
	if (r.err[0] != '\0') {
		snprintf(o->err, sizeof(o->err), "strix io_pingpong: %s", r.err);
		return -1;
	}
	return bench_relay_check(&r.relay, "strix", o);
}
