/*
 * What a client and an upstream connection share: the registration, the reference count and the
 * watchdog.
 *
 * The watchdog is how a wait gets a time limit without a breaker per wait: before a read or a
 * write the owner adds a timer (sx_timer_add: a node from the thread's free list, one CAS), and
 * after the wait it cancels it. sx_timer_cancel decides exactly once between the two: 0, the
 * timer never runs; -EALREADY, it runs or ran. When it runs it shuts the socket down, which ends
 * the pending wait at once (end of file or an error), and the owner, cancelling too late, learns
 * that the wait timed out. The timer callback runs on the timer thread (SX_TIMER_INLINE: one
 * shutdown(2) and a reference drop), so a timeout costs no task hop and no allocation.
 *
 * The timer holds a reference while it is pending, and the fd is closed only when the last one
 * goes: a watchdog that fires while its owner closes the connection shuts down this connection's
 * socket, never a recycled fd number. A connection is deregistered by its owner before that last
 * drop, so nothing of the reactor sees it once the fd is closed.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

int px_sock_open(struct px_sock *s, sx_pool *pool, int fd, void (*free_fn)(struct px_sock *s))
{
	int rc = sx_io_register(pool, fd, &s->io);

	if (rc != 0)
		return rc;
	s->pool = pool;
	s->fd = fd;
	atomic_init(&s->refs, 1);
	s->watched = false;
	s->cleared = false;
	s->free_fn = free_fn;
	return 0;
}

void px_sock_adopt(struct px_sock *s, sx_pool *pool, sx_io *io,
    void (*free_fn)(struct px_sock *s))
{
	s->pool = pool;
	s->io = io;
	s->fd = sx_io_fd(io);
	atomic_init(&s->refs, 1);
	s->watched = false;
	s->cleared = false;
	s->free_fn = free_fn;
}

static void sock_unref(struct px_sock *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		close(s->fd);
		s->free_fn(s);
	}
}

void px_sock_close(struct px_sock *s)
{
	/* A watchdog still armed here means an error path skipped px_unwatch: disarm it first. */
	if (s->watched)
		(void)px_unwatch(s);
	sx_io_deregister(s->io);
	s->io = NULL;
	sock_unref(s);
}

/* The watchdog fired (status 0), or the pool's shutdown flushed it (the waits end anyway). */
static void watchdog(void *arg, int status)
{
	struct px_sock *s = arg;

	if (status == 0)
		(void)shutdown(s->fd, SHUT_RDWR);
	sock_unref(s);
}

int px_watch(struct px_sock *s, int64_t ns)
{
	int rc;

	if (ns <= 0)
		return 0;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	rc = sx_timer_add(s->pool, ns, SX_TIMER_INLINE, watchdog, s, &s->timer);
	if (rc != 0) {
		atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
		return rc;
	}
	s->watched = true;
	return 0;
}

bool px_unwatch(struct px_sock *s)
{
	if (!s->watched)
		return false;
	s->watched = false;
	if (sx_timer_cancel(&s->timer) == 0) {
		/* The timer never runs: its reference is ours to drop; ours is still held. */
		atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed);
		return false;
	}
	return true; /* it ran or runs: it drops its own reference */
}

/* ---- I/O ------------------------------------------------------------------------------------- */

/*
 * The edge-triggered contract of strix/io.h, done here rather than by sx_io_read / sx_io_write so
 * that a step which can go on at once does (no task per I/O) and only a real wait costs a wait
 * and a watchdog: take the readiness token, do the I/O, and when it could not be done (EAGAIN)
 * clear the readiness seen in the token. A read that returned less than asked for, or a write
 * that took less than given, emptied the socket's buffer (filled it) at that moment just as well,
 * so it clears the readiness too: a byte that arrives afterwards is a new event, whose new tick
 * makes the clear fail or, if it comes later still, sets the readiness again. The next read then
 * waits for the event without a system call.
 */
ssize_t px_read(struct px_sock *s, void *buf, size_t cap)
{
	for (;;) {
		sx_io_token t = sx_io_readiness(s->io);
		ssize_t n;

		/* Once cleared by us, the readiness is the whole truth (before that it may not have
		 * been polled yet): nothing to read until it says so. */
		if (s->cleared &&
		    (sx_io_token_events(t) & (SX_IO_READABLE | SX_IO_HUP | SX_IO_ERROR)) == 0)
			return -EAGAIN;
		n = read(s->fd, buf, cap);
		if (n > 0) {
			if ((size_t)n < cap && sx_io_clear(s->io, t, SX_IO_READABLE) == 0)
				s->cleared = true;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (sx_io_clear(s->io, t, SX_IO_READABLE) == 0) {
			s->cleared = true;
			return -EAGAIN;
		}
		/* an event came since the token: try again */
	}
}

ssize_t px_write(struct px_sock *s, const void *buf, size_t len)
{
	for (;;) {
		sx_io_token t = sx_io_readiness(s->io);
		ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0) {
			if ((size_t)n < len)
				(void)sx_io_clear(s->io, t, SX_IO_WRITABLE);
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (sx_io_clear(s->io, t, SX_IO_WRITABLE) == 0)
			return -EAGAIN;
	}
}

int px_wait(struct px_sock *s, unsigned events, int64_t limit, sx_io_fn fn, void *arg)
{
	int rc = px_watch(s, limit);

	if (rc != 0)
		return rc;
	if ((rc = sx_io_wait(s->io, events, NULL, fn, arg)) != 0)
		(void)px_unwatch(s);
	return rc;
}
