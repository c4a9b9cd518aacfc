/*
 * libuv, used as its documentation shows.
 * B1, B1r: its thread pool (uv_queue_work). Work can only be queued from the loop's thread, so for
 * uv both submit from the loop thread (there is no "from inside a worker" path); the after-work
 * callbacks run on the loop thread, as they must. The pool size is UV_THREADPOOL_SIZE, which
 * bench_main sets to the worker count before libuv starts its threads.
 * io_pingpong: its event loop, one per end of the connection, each run by a thread of its own (a
 * loop belongs to one thread): the end is a uv_tcp_t opened on the socket, read with
 * uv_read_start, the byte sent back from the read callback with uv_try_write.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "../workloads.h"

static atomic_uint_fast64_t countdown;

static void work_cb(uv_work_t *req)
{
	(void)req;
	atomic_fetch_sub_explicit(&countdown, 1, memory_order_acq_rel);
}

static void after_cb(uv_work_t *req, int status)
{
	(void)req;
	(void)status;
}

static int run(uint64_t n, bench_out *o)
{
	uv_work_t *reqs = calloc(n, sizeof(*reqs));
	uv_loop_t loop;
	uint64_t t0;
	int rc = 0;

	if (reqs == NULL || uv_loop_init(&loop) != 0) {
		free(reqs);
		snprintf(o->err, sizeof(o->err), "uv: setup failed");
		return -1;
	}
	atomic_store(&countdown, n);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (uv_queue_work(&loop, &reqs[i], work_cb, after_cb) != 0) {
			rc = -1;
			atomic_fetch_sub(&countdown, 1);
		}
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - atomic_load(&countdown);
	uv_loop_close(&loop);
	free(reqs);
	if (rc != 0 || o->tasks != n) {
		snprintf(o->err, sizeof(o->err), "uv: %llu of %llu tasks ran",
		    (unsigned long long)o->tasks, (unsigned long long)n);
		rc = -1;
	}
	return rc;
}

int uv_spawn_many(unsigned workers, uint64_t n, bench_out *o)
{
	(void)workers;
	return run(n, o);
}

int uv_spawn_remote(unsigned workers, uint64_t n, bench_out *o)
{
	(void)workers;
	return run(n, o);
}

/* ---- io_pingpong ----------------------------------------------------------------------------- */

struct uv_io;

struct uv_end {
	uv_loop_t loop;
	uv_tcp_t tcp;
	struct uv_io *run;
	int me, fd;
	int rc;         /* the first libuv error this end met; 0 none */
	bool loop_ok, handle, owned; /* set up so far: the loop, the handle; the handle owns fd */
	char buf[64];
};

struct uv_io {
	struct uv_end end[2];
	bench_relay relay;
};

/* Ends this end's part: its loop returns once nothing is reading. On an error the socket is shut
 * down too, so the other end's read sees the end of the stream and stops as well. */
static void end_stop(struct uv_end *e, int rc)
{
	uv_read_stop((uv_stream_t *)&e->tcp);
	if (rc != 0) {
		if (e->rc == 0)
			e->rc = rc;
		shutdown(e->fd, SHUT_RDWR);
	}
}

/* Sends the next hand-off; stops this end once that was the last one. */
static void end_send(struct uv_end *e)
{
	uint64_t k = bench_relay_send(&e->run->relay);
	char b = (char)k;
	uv_buf_t ub = uv_buf_init(&b, 1);
	int n = uv_try_write((uv_stream_t *)&e->tcp, &ub, 1);

	if (n != 1)
		end_stop(e, n < 0 ? n : UV_EAGAIN);
	else if (k == e->run->relay.total)
		end_stop(e, 0);
}

static void end_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct uv_end *e = h->data;

	(void)size;
	*buf = uv_buf_init(e->buf, sizeof(e->buf));
}

static void end_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct uv_end *e = s->data;
	uint64_t t = bench_now_ns();

	if (n < 0) {
		end_stop(e, (int)n);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (bench_relay_received(&e->run->relay, e->me, (unsigned char)buf->base[i], t) ==
		    e->run->relay.total) {
			end_stop(e, 0);
			return;
		}
		end_send(e);
		if (e->rc != 0)
			return;
	}
}

static void *end_thread(void *arg)
{
	struct uv_end *e = arg;

	if (e->me == 0)
		end_send(e);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* Closes what setup made of the end: its handle (with its socket, once opened on it), its loop. */
static void end_close(struct uv_end *e)
{
	if (e->handle) {
		uv_close((uv_handle_t *)&e->tcp, NULL);
		uv_run(&e->loop, UV_RUN_DEFAULT);
	}
	if (e->loop_ok)
		uv_loop_close(&e->loop);
	if (!e->owned)
		close(e->fd);
}

static int end_open(struct uv_end *e)
{
	int rc;

	if ((rc = uv_loop_init(&e->loop)) != 0)
		return rc;
	e->loop_ok = true;
	if ((rc = uv_tcp_init(&e->loop, &e->tcp)) != 0)
		return rc;
	e->handle = true;
	e->tcp.data = e;
	if ((rc = uv_tcp_open(&e->tcp, e->fd)) != 0)
		return rc;
	e->owned = true;
	return uv_read_start((uv_stream_t *)&e->tcp, end_alloc, end_read);
}

int uv_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o)
{
	struct uv_io *r = calloc(1, sizeof(*r));
	pthread_t th[2];
	int fd[2], started = 0, rc = 0;
	uint64_t t0;

	(void)workers;
	if (r == NULL) {
		snprintf(o->err, sizeof(o->err), "uv: out of memory");
		return -1;
	}
	if (bench_tcp_pair(fd, o) != 0) {
		free(r);
		return -1;
	}
	bench_relay_init(&r->relay, rounds, h);
	for (int i = 0; i < 2; i++) {
		r->end[i].run = r;
		r->end[i].me = i;
		r->end[i].fd = fd[i];
	}
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = end_open(&r->end[i]);
	if (rc != 0) {
		snprintf(o->err, sizeof(o->err), "uv io_pingpong: setup: %s", uv_strerror(rc));
		goto out;
	}
	t0 = bench_now_ns();
	for (; started < 2; started++)
		if (pthread_create(&th[started], NULL, end_thread, &r->end[started]) != 0)
			break;
	if (started < 2) {
		/* An end already running stops at the end of the stream. */
		shutdown(fd[0], SHUT_RDWR);
		shutdown(fd[1], SHUT_RDWR);
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	if (started < 2) {
		snprintf(o->err, sizeof(o->err), "uv io_pingpong: no thread");
		rc = -1;
	} else if (r->end[0].rc != 0 || r->end[1].rc != 0) {
		/* The first cause: an end that only saw the other one shut down reports UV_EOF. */
		int e = r->end[0].rc;

		if (e == 0 || (e == UV_EOF && r->end[1].rc != 0))
			e = r->end[1].rc;
		snprintf(o->err, sizeof(o->err), "uv io_pingpong: %s", uv_strerror(e));
		rc = -1;
	} else {
		rc = bench_relay_check(&r->relay, "uv", o);
	}
out:
	end_close(&r->end[0]);
	end_close(&r->end[1]);
	free(r);
	return rc;
}
