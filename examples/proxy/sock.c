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

int px_sock_open(struct px_sock *s, int fd, void (*free_fn)(struct px_sock *s))
{
	int rc = sx_io_register(px.pool, fd, &s->io);

	if (rc != 0)
		return rc;
	s->fd = fd;
	atomic_init(&s->refs, 1);
	s->watched = false;
	s->free_fn = free_fn;
	return 0;
}

void px_sock_adopt(struct px_sock *s, sx_io *io, void (*free_fn)(struct px_sock *s))
{
	s->io = io;
	s->fd = sx_io_fd(io);
	atomic_init(&s->refs, 1);
	s->watched = false;
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
	rc = sx_timer_add(px.pool, ns, SX_TIMER_INLINE, watchdog, s, &s->timer);
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
