/**
 * @file
 * <strix/io.h>: the declarations of the I/O readiness module (group strix_io).
 *
 * @defgroup strix_io I/O readiness
 * @ingroup strix
 *
 * strix I/O readiness - non-blocking file descriptors registered with a pool, and waits for
 * them to become readable or writable that end as tasks on the pool.
 *
 * Each pool gets one reactor, started by its first sx_io_register: an epoll set (edge-triggered:
 * every fd is added once for input, output and hang-up) with no thread of its own. A worker that
 * is about to park takes the poller role (one at a time) and sleeps in epoll_wait instead, so the
 * worker that readiness wakes runs the waiting task itself; busy workers look at the set without
 * sleeping every 61 tasks (at most once per 20 microseconds in the pool: each look is a system
 * call), and searching workers every few rounds (a pool that never parks, SX_SPIN_FOREVER,
 * every round). While the poller runs the tasks it found, readiness waits for the next look
 * (another worker parking, or a busy worker's).
 *
 * A registration remembers its readiness in one word (sx_io_readiness): the events seen so far
 * and a tick that every event from the kernel advances. A wait for a direction that is already
 * ready ends at once, without a system call; after a read or write returned EAGAIN, sx_io_clear
 * forgets the readiness, unless an event arrived since the token was read (then try the I/O
 * again). This is the contract of edge-triggered readiness: do I/O until EAGAIN, clear, wait.
 *
 * A wait (sx_io_wait, and the helpers built on it: sx_io_read, sx_io_write, sx_io_accept,
 * sx_io_connect) ends exactly once: with readiness, with the code of its breaker (any
 * sx_breaker: timeout, deadline, signal, manual, multiplex), with -ESHUTDOWN when the pool shuts
 * down (SX_DRAIN or SX_CANCEL), or with -ECANCELED when the registration is deregistered. Its
 * callback runs as a task on the pool, except in two cases at shutdown: a task that SX_CANCEL
 * discards calls it with -ESHUTDOWN on the thread in sx_pool_shutdown, and a wait that a breaker
 * or sx_io_deregister ends while the pool no longer takes tasks is told on the thread that ended
 * it (strix's notifier thread for a breaker).
 *
 * Each registration holds one wait per direction in its own memory: a wait allocates nothing
 * (a breaker allocates its callback node in sx_breaker_on_done). Registration and
 * deregistration are cold paths (a system call and the reactor's lock); waits, readiness and
 * clears take no lock. A registration's memory is reclaimed only once no poller can still see it
 * (epoch-based reclamation in the pool).
 *
 * Threads: every function may be called from any thread, concurrently, except that no call on a
 * registration may run concurrently with or after its sx_io_deregister (its own callbacks are
 * the exception: sx_io_deregister waits for them, or is called from one of them).
 * @{
 */
#ifndef STRIX_IO_H
#define STRIX_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <strix/breaker.h>
#include <strix/pool.h>
#include <strix/promise.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SX_IO_READABLE 0x1u /**< data, a pending connection, or end of file to read */
#define SX_IO_WRITABLE 0x2u /**< room to write, or a connect() finished */
#define SX_IO_HUP      0x4u /**< the peer hung up or shut down its writing side */
#define SX_IO_ERROR    0x8u /**< an error is pending on the fd (getsockopt SO_ERROR) */

/** A non-blocking fd registered with a pool (opaque): sx_io_register makes one,
 * sx_io_deregister ends it. */
typedef struct sx_io sx_io;
/** A snapshot of a registration's readiness: its events (sx_io_token_events) and its tick. */
typedef uint64_t sx_io_token;

/**
 * The end of a wait. result > 0: the ready events, a mask that always holds the direction waited
 * for, possibly with SX_IO_HUP and SX_IO_ERROR (a hang-up or an error makes both directions
 * ready: the I/O then reports it). result < 0: why the wait ended without readiness: the
 * breaker's code (sx_breaker_err: -ETIMEDOUT, -ECANCELED, SX_ESIGNAL, ...), -ESHUTDOWN (the pool
 * shut down) or -ECANCELED (sx_io_deregister ended it). Called exactly once per sx_io_wait that
 * returned 0, as a task on the pool (see the top of this file for the two exceptions).
 */
typedef void (*sx_io_fn)(sx_io *io, int result, void *arg);

/**
 * The end of a helper (sx_io_read, sx_io_write, sx_io_accept, sx_io_connect): result >= 0 is the
 * helper's result, result < 0 a negative code; see each helper. Called exactly once per helper
 * call that returned 0, as sx_io_fn is.
 */
typedef void (*sx_io_done_fn)(sx_io *io, int64_t result, void *arg);

/**
 * sx_io_register - register fd with pool's reactor, starting the reactor on first use (an epoll
 * set and an eventfd; no thread). fd must be open and non-blocking (O_NONBLOCK); it stays the
 * caller's: strix never closes it. Its readiness starts empty; what the fd already offers is
 * reported by the first poll. A registration still registered when the pool is destroyed is
 * freed by sx_pool_destroy (its fd stays open).
 * On success *out holds the registration. Returns 0; -EINVAL for a NULL pool or out, a negative
 * fd, or an fd without O_NONBLOCK; -EBADF if fd is not open; -ENOMEM; -ESHUTDOWN once the pool's
 * shutdown has begun; -EMFILE or -ENFILE if the reactor's own descriptors cannot be made; or
 * epoll_ctl's code: -EPERM for an fd epoll cannot watch (a regular file, a directory), -EEXIST if
 * fd is already registered with this pool, -ENOSPC past the user's epoll watch limit. Nothing
 * changes on failure.
 * Cold path: allocates, makes one system call (epoll_ctl) besides the checks, and takes the
 * reactor's lock. Any thread.
 */
SX_API int sx_io_register(sx_pool *pool, int fd, sx_io **out);

/**
 * sx_io_deregister - remove io's fd from the reactor and free the registration. Waits still
 * pending end with -ECANCELED; their callbacks, and any that readiness or a breaker had already
 * started, have returned when this returns, and no callback of io runs afterwards. Called from
 * inside one of io's callbacks it does not wait for that callback (nor for the others on the
 * calling thread's stack): they may go on using their arguments but not io. The memory is
 * reclaimed once no poller can still see it (or at sx_pool_destroy). The fd is not closed: call
 * this while fd is still open (an fd closed first may still be watched through a duplicate, and
 * its events would reach freed memory), then close it. Valid after the pool's shutdown too, not
 * after sx_pool_destroy (which has freed io). Returns 0; -EINVAL for NULL. io must not be used
 * afterwards.
 * Blocks until those callbacks have returned; on one of the pool's workers it runs other tasks
 * meanwhile (also through an SX_CANCEL shutdown, so the callbacks it waits for cannot be stuck
 * behind it). Never call it on io from two threads, or twice.
 */
SX_API int sx_io_deregister(sx_io *io);

/** sx_io_fd - the fd io was registered with; -EINVAL for NULL. Never blocks; wait-free; any
 * thread. */
SX_API int sx_io_fd(const sx_io *io);

/**
 * sx_io_readiness - a token holding io's readiness now: the events seen since they were last
 * cleared (sx_io_token_events) and the tick of the last event. Read it before the I/O whose
 * EAGAIN will make you call sx_io_clear. 0 for NULL. One atomic load; wait-free; any thread.
 */
SX_API sx_io_token sx_io_readiness(const sx_io *io);

/** sx_io_token_events - the SX_IO_* events a token holds. */
static inline unsigned sx_io_token_events(sx_io_token t)
{
	return (unsigned)(t & 0xfu);
}

/**
 * sx_io_clear - after a read or write returned EAGAIN, forget the readiness `events`
 * (SX_IO_READABLE and/or SX_IO_WRITABLE) that io had when `seen` was read (sx_io_readiness),
 * so that the next wait for them waits for the kernel. SX_IO_HUP and SX_IO_ERROR stay (a read or
 * write then reports them at once). If the reactor recorded an event since `seen` (its tick
 * moved on), nothing is cleared: the I/O may succeed now.
 * Returns 0 (cleared); -EAGAIN (a newer event arrived: try the I/O again); -EINVAL for NULL io,
 * events 0, or events outside SX_IO_READABLE | SX_IO_WRITABLE. Never blocks; lock-free (a CAS
 * loop on the readiness word). Any thread.
 */
SX_API int sx_io_clear(sx_io *io, sx_io_token seen, unsigned events);

/**
 * sx_io_wait - call fn(io, result, arg) once io is ready for `events` (exactly one of
 * SX_IO_READABLE, SX_IO_WRITABLE), or once stop trips (stop may be NULL: no limit), or the pool
 * shuts down, or io is deregistered (see sx_io_fn for the results). If that direction is already
 * ready (remembered readiness, see sx_io_clear) the wait ends at once: fn is queued with no
 * system call. At most one wait per direction is pending on a registration at a time (the
 * helpers count as waits of their direction); fn may start the next wait of its direction.
 * Returns 0 (fn will be called exactly once); -EINVAL for NULL io or fn, or events not exactly
 * one direction; -EBUSY if a wait of that direction is pending (a callback that has started no
 * longer counts); -ESHUTDOWN once the pool's shutdown has begun; -ECANCELED once io's
 * deregistration has begun (a callback racing sx_io_deregister); -ENOMEM (stop's callback node,
 * or, on a thread outside the pool, its first record in the pool, cannot be allocated); -EAGAIN
 * (strix's notifier thread could not start). fn is never called when it fails, and nothing
 * changes.
 * Never blocks. Lock-free; allocates nothing but stop's callback node. Any thread.
 */
SX_API int sx_io_wait(sx_io *io, unsigned events, sx_breaker *stop, sx_io_fn fn, void *arg);

/**
 * sx_io_wait_promise - sx_io_wait as a promise: *out settles once io is ready for `events`,
 * fulfilled with the ready events as its value (an unsigned mask cast to a pointer: read it with
 * (unsigned)(uintptr_t)value), or rejected with the code a wait's fn would get (stop's code,
 * -ESHUTDOWN, -ECANCELED for a deregistration). The promise's chain breaker is a child of stop
 * (stop may be NULL) and is the wait's breaker, so sx_promise_cancel on *out ends the wait too
 * (rejected with -ECANCELED). Chain then/catch/finally on it, or wait with sx_promise_get.
 * Returns 0 (*out holds the caller's reference: sx_promise_release it); -EINVAL for NULL io or
 * out, or events not exactly one direction; sx_io_wait's other codes (-EBUSY, -ESHUTDOWN,
 * -ECANCELED, -ENOMEM, -EAGAIN), or -ENOMEM for the promise. On failure nothing is left behind.
 * Never blocks. Lock-free; allocates the promise and its breaker. Any thread.
 */
SX_API int sx_io_wait_promise(sx_io *io, unsigned events, sx_breaker *stop, sx_promise **out);

/**
 * sx_io_read - read into buf until at least min bytes (1 <= min <= len) are there, or end of
 * file, or an error, or stop trips; then call fn. It reads what is there first (on the calling
 * thread, when io's readiness says it may succeed), waits for readable when a read would block,
 * and reads again on each readiness, as a task. fn's result: the bytes read (>= min; less only at
 * end of file, 0 for end of file before any byte), or a negative code: -errno of read(2)
 * (-ECONNRESET, ...), the breaker's code, -ESHUTDOWN, -ECANCELED (deregistered); bytes read
 * before such an end are in buf but not counted. fn always runs as a task (or as sx_io_fn says
 * at shutdown), never inside this call.
 * Returns 0 (fn will be called exactly once); -EINVAL for NULL io, buf or fn, min == 0, min >
 * len, or len > SSIZE_MAX; otherwise as sx_io_wait (-EBUSY: a wait for readable is pending).
 * Never blocks (non-blocking read(2) calls). Lock-free; allocates nothing but stop's callback
 * node. Any thread; buf must stay valid until fn runs.
 */
SX_API int sx_io_read(sx_io *io, void *buf, size_t len, size_t min, sx_breaker *stop,
    sx_io_done_fn fn, void *arg);

/**
 * sx_io_write - write all len bytes of buf (send(2) with MSG_NOSIGNAL for sockets, write(2)
 * otherwise: a pipe whose reader is gone raises SIGPIPE unless the process ignores it), waiting
 * for room as needed, then call fn. fn's result: len, or a negative code: -errno of the write
 * (-EPIPE, -ECONNRESET, ...), the breaker's code, -ESHUTDOWN, -ECANCELED (deregistered); bytes
 * written before such an end are gone, not counted. fn always runs as a task (or as sx_io_fn says
 * at shutdown), never inside this call.
 * Returns 0 (fn will be called exactly once); -EINVAL for NULL io, buf or fn, len == 0, or len >
 * SSIZE_MAX; otherwise as sx_io_wait (-EBUSY: a wait for writable is pending).
 * Never blocks. Lock-free; allocates nothing but stop's callback node. Any thread; buf must stay
 * valid until fn runs.
 */
SX_API int sx_io_write(sx_io *io, const void *buf, size_t len, sx_breaker *stop,
    sx_io_done_fn fn, void *arg);

/**
 * sx_io_accept - accept one connection on the listening socket listener, waiting for one as
 * needed, then call fn. fn's result: the new fd (non-blocking and close-on-exec; the caller owns
 * it and registers it if it wants), or a negative code: -errno of accept4(2) (-EMFILE, -ENFILE,
 * -ENOBUFS, -ENOMEM; a connection aborted before it was accepted is skipped), the breaker's
 * code, -ESHUTDOWN, -ECANCELED. fn always runs as a task (or as sx_io_fn says at shutdown).
 * Returns 0 (fn will be called exactly once); -EINVAL for NULL listener or fn; otherwise as
 * sx_io_wait (-EBUSY: a wait for readable is pending on listener).
 * Never blocks. Lock-free; allocates nothing but stop's callback node. Any thread.
 */
SX_API int sx_io_accept(sx_io *listener, sx_breaker *stop, sx_io_done_fn fn, void *arg);

/**
 * sx_io_connect - connect a new non-blocking stream socket (TCP or Unix) to addr, registered
 * with pool, then call fn: fn(io, 0, arg) with the registration of the connected socket (the
 * caller owns both: sx_io_deregister(io), then close the fd it reads with sx_io_fd), or
 * fn(NULL, code, arg) with the socket already closed: -ECONNREFUSED, -ENETUNREACH,
 * -EHOSTUNREACH, -ECONNRESET (any SO_ERROR the connect ends with), -ETIMEDOUT (timeout_ns
 * passed: 0 or more is a limit in ns, on the pool's timer service; negative means none), the
 * breaker's code, -ESHUTDOWN. fn always runs as a task (or as sx_io_fn says at shutdown), never
 * inside this call.
 * Returns 0 (fn will be called exactly once); -EINVAL for NULL pool, addr or fn, or len too
 * short for a family; -ENOMEM; -ESHUTDOWN; -EAGAIN (a Unix listener's backlog is full, or a
 * thread could not start); -errno of socket(2) (-EAFNOSUPPORT, -EMFILE, ...) or of a connect(2)
 * that failed at once (-ECONNREFUSED for a Unix path nobody listens on, -ENOENT, ...); or as
 * sx_io_register. fn is never called when it fails, and nothing is left open.
 * Never blocks. Allocates the registration (and, with a timeout, a timer node the first time);
 * otherwise lock-free but for sx_io_register's lock. Any thread.
 */
SX_API int sx_io_connect(sx_pool *pool, const struct sockaddr *addr, socklen_t len,
    int64_t timeout_ns, sx_breaker *stop, sx_io_done_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_IO_H */
