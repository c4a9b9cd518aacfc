/*
 * The helpers a proxy needs, on the waits of reactor.c: sx_io_read, sx_io_write, sx_io_accept and
 * sx_io_connect. Each is one operation on its direction's slot (io/io.h): it tries its system
 * call on the calling thread when the remembered readiness says it may succeed, and otherwise,
 * or after EAGAIN (then it clears the readiness it saw, sx_io_clear's rule), arms the slot and
 * tries again in the slot's task at each readiness, until it is done; then its caller's fn runs
 * in that task. The breaker's callback is registered once per operation, not per round. A
 * result found by the starter is still told in a task (has_final), never inside the call.
 *
 * Nothing is allocated per call but the breaker's callback node, except by sx_io_connect: its
 * registration, and with a limit the timer of the pool's timer service (a node from the
 * service's free lists), whose callback claims the wait with -ETIMEDOUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strix/timer.h>

#include "io/io.h"

/* The end of a helper: the slot's next operation may start, then its caller hears result. */
static bool finish(sx_io *io, struct sx__io_slot *s, int64_t result)
{
	sx_io_done_fn done = s->done;
	void *arg = s->done_arg;

	sx__io_op_end(io, s);
	done(io, result, arg);
	return true;
}

/* One attempt's outcome: DONE with s->final set, or WAIT (the readiness it saw is cleared). */
enum { DONE, WAIT };

static int done_with(struct sx__io_slot *s, int64_t result)
{
	s->final = result;
	return DONE;
}

/* After EAGAIN on a token t read before the call: WAIT if the readiness was cleared, or retry
 * (-1) because an event came since. */
static int would_block(sx_io *io, sx_io_token t, unsigned dir)
{
	return sx_io_clear(io, t, dir) == 0 ? WAIT : -1;
}

static int read_try(sx_io *io, struct sx__io_slot *s)
{
	for (;;) {
		sx_io_token t = sx_io_readiness(io);
		ssize_t n = read(io->fd, s->buf + s->got, s->len - s->got);
		int rc;

		if (n > 0) {
			s->got += (size_t)n;
			if (s->got >= s->min)
				return done_with(s, (int64_t)s->got);
			continue;
		}
		if (n == 0)
			return done_with(s, (int64_t)s->got); /* end of file */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return done_with(s, -errno);
		if ((rc = would_block(io, t, SX_IO_READABLE)) >= 0)
			return rc;
	}
}

static int write_try(sx_io *io, struct sx__io_slot *s)
{
	while (s->got < s->len) {
		sx_io_token t = sx_io_readiness(io);
		ssize_t n = io->sock ? send(io->fd, s->buf + s->got, s->len - s->got, MSG_NOSIGNAL)
		                     : write(io->fd, s->buf + s->got, s->len - s->got);
		int rc;

		if (n >= 0) {
			s->got += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return done_with(s, -errno);
		if ((rc = would_block(io, t, SX_IO_WRITABLE)) >= 0)
			return rc;
	}
	return done_with(s, (int64_t)s->len);
}

static int accept_try(sx_io *io, struct sx__io_slot *s)
{
	for (;;) {
		sx_io_token t = sx_io_readiness(io);
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int rc;

		if (fd >= 0)
			return done_with(s, fd);
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return done_with(s, -errno);
		if ((rc = would_block(io, t, SX_IO_READABLE)) >= 0)
			return rc;
	}
}

typedef int (*try_fn)(sx_io *io, struct sx__io_slot *s);

/* A step of read, write or accept: the next round after a claim. */
static bool step_with(sx_io *io, struct sx__io_slot *s, int result, try_fn try)
{
	int rc;

	if (s->has_final) {
		s->has_final = false;
		return finish(io, s, s->final);
	}
	if (result < 0)
		return finish(io, s, result);
	if (try(io, s) == DONE)
		return finish(io, s, s->final);
	if ((rc = sx__io_op_arm(io, s, NULL)) != 0)
		return finish(io, s, rc);
	return false; /* armed: s may be queued already */
}

static bool read_step(sx_io *io, struct sx__io_slot *s, int result)
{
	return step_with(io, s, result, read_try);
}

static bool write_step(sx_io *io, struct sx__io_slot *s, int result)
{
	return step_with(io, s, result, write_try);
}

static bool accept_step(sx_io *io, struct sx__io_slot *s, int result)
{
	return step_with(io, s, result, accept_try);
}

/*
 * Start a helper on io's slot for dir, with the caller's fields once the slot is ours. The
 * first attempt runs here when the readiness says it may succeed; its result, a trip, or a
 * refusal to arm (shutdown, deregistration) that comes after bytes moved is told in the slot's
 * task; a refusal before any is returned.
 */
static int helper_start(sx_io *io, unsigned dir, sx__io_step_fn step, try_fn try,
    sx_breaker *stop, sx_io_done_fn fn, void *arg, void *buf, size_t len, size_t min)
{
	struct sx__io_slot *s = sx__io_slot_of(io, dir);
	struct sx__io_entry e;
	int rc;

	if ((rc = sx__io_op_begin(io, s)) != 0)
		return rc;
	s->step = step;
	ck_pr_store_uint(&s->op, SX__IO_OP_HELPER);
	s->done = fn;
	s->done_arg = arg;
	s->buf = buf;
	s->len = len;
	s->min = min;
	s->got = 0;
	rc = sx__io_op_stop_on(io, s, stop);
	if (rc < 0 || (rc = sx__io_enter(io->pool, &e)) != 0) {
		sx__io_op_undo(io, s);
		return rc;
	}
	if (stop != NULL && s->cb == NULL) {
		sx__io_op_fire(s, sx_breaker_err(stop));
		sx__io_queue(&e, s);
	} else if (sx__io_ready_mask(ck_pr_load_64(&io->ready), dir) != 0 && try(io, s) == DONE) {
		s->has_final = true;
		sx__io_op_fire(s, 0);
		sx__io_queue(&e, s);
	} else if ((rc = sx__io_op_arm(io, s, &e)) != 0) {
		if (s->got == 0) {
			sx__io_op_undo(io, s); /* nothing happened yet: refuse */
		} else {
			s->has_final = true; /* bytes moved: tell them through fn */
			s->final = rc;
			sx__io_op_fire(s, 0);
			sx__io_queue(&e, s);
			rc = 0;
		}
	}
	sx__io_leave(&e);
	return rc;
}

int sx_io_read(sx_io *io, void *buf, size_t len, size_t min, sx_breaker *stop,
    sx_io_done_fn fn, void *arg)
{
	if (io == NULL || buf == NULL || fn == NULL || min == 0 || min > len ||
	    len > (size_t)SSIZE_MAX)
		return -EINVAL;
	return helper_start(io, SX_IO_READABLE, read_step, read_try, stop, fn, arg, buf, len, min);
}

int sx_io_write(sx_io *io, const void *buf, size_t len, sx_breaker *stop, sx_io_done_fn fn,
    void *arg)
{
	if (io == NULL || buf == NULL || fn == NULL || len == 0 || len > (size_t)SSIZE_MAX)
		return -EINVAL;
	return helper_start(io, SX_IO_WRITABLE, write_step, write_try, stop, fn, arg, (void *)buf,
	    len, len);
}

int sx_io_accept(sx_io *listener, sx_breaker *stop, sx_io_done_fn fn, void *arg)
{
	if (listener == NULL || fn == NULL)
		return -EINVAL;
	return helper_start(listener, SX_IO_READABLE, accept_step, accept_try, stop, fn, arg, NULL,
	    0, 0);
}

/* ---- connect ------------------------------------------------------------------------------ */

static bool is_connect(struct sx__io_slot *s, const void *key)
{
	(void)key;
	return ck_pr_load_uint(&s->op) == SX__IO_OP_CONNECT;
}

/* The limit passed (SX_TIMER_INLINE: on the timer thread). Ends the operation only if it is
 * still the connect (the slot's later operations are the caller's). */
static void connect_timeout(void *arg, int status)
{
	struct sx__io_slot *s = arg;
	sx_io *io = s->io;

	if (status == 0 && sx__io_trip(s, -ETIMEDOUT, is_connect, NULL)) {
		sx__io_live_dec(io); /* the timer's; the claimed operation keeps io */
		sx__io_deliver(io, s);
		return;
	}
	sx__io_live_dec(io);
}

/* The socket is writable (or in error): SO_ERROR says how the connect ended (a hang-up that
 * follows a connect that succeeded is the caller's first read's to see). */
static int connect_result(sx_io *io)
{
	int err = 0;
	socklen_t l = sizeof(err);

	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
		return -errno;
	return -err;
}

static bool connect_step(sx_io *io, struct sx__io_slot *s, int result)
{
	sx_io_done_fn done = s->done;
	void *arg = s->done_arg;
	int fd = io->fd;

	if (s->has_final) {
		s->has_final = false;
		result = (int)s->final;
	} else if (result > 0) {
		result = connect_result(io);
	}
	sx__io_op_end(io, s);
	if (result == 0) {
		done(io, 0, arg);
		return true;
	}
	/* Inside this task's frame: deregister does not wait for it, and the frame is not touched
	 * again (the count goes with the registration). */
	sx_io_deregister(io);
	close(fd);
	done(NULL, result, arg);
	return true;
}

static int connect_fail(sx_io *io, int fd, int rc)
{
	if (io != NULL)
		sx_io_deregister(io);
	close(fd);
	return rc;
}

int sx_io_connect(sx_pool *pool, const struct sockaddr *addr, socklen_t len, int64_t timeout_ns,
    sx_breaker *stop, sx_io_done_fn fn, void *arg)
{
	struct sx__io_slot *s;
	struct sx__io_entry e;
	sx_io *io = NULL;
	bool now;
	int fd, rc;

	if (pool == NULL || addr == NULL || fn == NULL || len < sizeof(sa_family_t))
		return -EINVAL;
	if (!sx__pool_running(pool))
		return -ESHUTDOWN;
	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	now = connect(fd, addr, len) == 0;
	if (!now && errno != EINPROGRESS)
		return connect_fail(NULL, fd, -errno);
	if ((rc = sx_io_register(pool, fd, &io)) != 0)
		return connect_fail(NULL, fd, rc);
	s = sx__io_slot_of(io, SX_IO_WRITABLE);
	if ((rc = sx__io_op_begin(io, s)) != 0)
		return connect_fail(io, fd, rc);
	s->step = connect_step;
	s->done = fn;
	s->done_arg = arg;
	ck_pr_store_uint(&s->op, SX__IO_OP_CONNECT);
	if ((rc = sx__io_op_stop_on(io, s, stop)) < 0) {
		sx__io_op_undo(io, s);
		return connect_fail(io, fd, rc);
	}
	if (!now && (stop == NULL || s->cb != NULL) && timeout_ns >= 0) {
		sx__io_live_inc(io); /* the timer callback's */
		rc = sx_timer_add(pool, timeout_ns, SX_TIMER_INLINE, connect_timeout, s, &s->timer);
		if (rc != 0) {
			sx__io_live_dec(io);
			sx__io_op_undo(io, s);
			return connect_fail(io, fd, rc);
		}
		s->timer_on = true;
	}
	if ((rc = sx__io_enter(pool, &e)) != 0) {
		if (s->timer_on && sx_timer_cancel(&s->timer) == 0)
			sx__io_live_dec(io);
		s->timer_on = false;
		sx__io_op_undo(io, s);
		return connect_fail(io, fd, rc);
	}
	if (stop != NULL && s->cb == NULL) {
		sx__io_op_fire(s, sx_breaker_err(stop));
		sx__io_queue(&e, s);
	} else if (now) {
		s->has_final = true;
		s->final = 0;
		sx__io_op_fire(s, 0);
		sx__io_queue(&e, s);
	} else if ((rc = sx__io_op_arm(io, s, &e)) != 0) {
		/* The pool began to shut down since: the connect is told through fn. */
		s->has_final = true;
		s->final = rc;
		sx__io_op_fire(s, 0);
		sx__io_queue(&e, s);
	}
	sx__io_leave(&e);
	return 0;
}
