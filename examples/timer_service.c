/* The pool's timer service: callbacks run as pool tasks or inline on the timer thread, a cancel
 * that wins (or, after expiry, loses) cleanly, and a pending timer told at shutdown. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <strix.h>

static atomic_int fired, flushed;

static void ring(void *arg, int status)
{
	printf("%s: %s\n", (const char *)arg, status == 0 ? "fired" :
	    status == -ESHUTDOWN ? "never fired, the pool shut down" : sx_strerror(status));
	atomic_fetch_add(status == 0 ? &fired : &flushed, 1);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	const int64_t ms = 1000000, hour = 3600 * INT64_C(1000000000);
	sx_timer quick, retry, idle;       /* handles, for sx_timer_cancel */
	sx_pool *pool;
	int rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0)
		return fail("sx_pool_create", rc);
	if ((rc = sx_timer_add(pool, 5 * ms, 0, ring, "5 ms, pool task", &quick)) != 0 ||
	    (rc = sx_timer_add(pool, 10 * ms, SX_TIMER_INLINE, ring, "10 ms, inline", NULL)) != 0 ||
	    (rc = sx_timer_add(pool, hour, 0, ring, "retry in an hour", &retry)) != 0 ||
	    (rc = sx_timer_add(pool, hour, 0, ring, "idle check in an hour", &idle)) != 0)
		return fail("sx_timer_add", rc);
	if ((rc = sx_timer_cancel(&retry)) != 0)  /* 0: its callback will never run */
		return fail("sx_timer_cancel", rc);
	for (int i = 0; i < 1000 && atomic_load(&fired) < 2; i++)  /* at most about 1 s */
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	if ((rc = sx_timer_cancel(&quick)) != -EALREADY)  /* too late: it fired */
		return fail("sx_timer_cancel after expiry", rc);
	if ((rc = sx_pool_shutdown(pool, SX_DRAIN)) != 0)  /* the idle check gets -ESHUTDOWN */
		return fail("sx_pool_shutdown", rc);
	sx_pool_destroy(pool);
	return atomic_load(&fired) == 2 && atomic_load(&flushed) == 1 ? 0 : 1;
}
