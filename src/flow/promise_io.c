/*
 * sx_io_wait_promise: an I/O readiness wait as a promise. The promise is a deferred root
 * (flow/flow.h) whose chain breaker - a child of the caller's stop, or a manual one - is the
 * wait's breaker, so stop, a timeout on it and sx_promise_cancel all end the wait. The wait ends
 * exactly once, and its callback settles the promise then: fulfilled with the ready events as
 * its value (the mask, cast to a pointer), or rejected with the wait's code.
 */
#include <errno.h>
#include <stdint.h>

#include <strix/io.h>

#include "flow/promise_impl.h"

static void wait_done(sx_io *io, int result, void *arg)
{
	sx_promise *p = arg;

	(void)io;
	if (result > 0)
		sx__promise_settle_with(p, 0, (void *)(uintptr_t)(unsigned)result, NULL);
	else
		sx__promise_settle_with(p, result, NULL, NULL);
}

int sx_io_wait_promise(sx_io *io, unsigned events, sx_breaker *stop, sx_promise **out)
{
	sx_promise *p;
	int rc;

	if (io == NULL || out == NULL || (events != SX_IO_READABLE && events != SX_IO_WRITABLE))
		return -EINVAL;
	if ((rc = sx__promise_deferred(io->pool, stop, NULL, NULL, &p)) != 0)
		return rc;
	if ((rc = sx_io_wait(io, events, sx__promise_breaker(p), wait_done, p)) != 0) {
		sx__promise_settle(p, rc); /* the pending reference: nobody else has seen p */
		sx_promise_release(p);
		return rc;
	}
	*out = p;
	return 0;
}
