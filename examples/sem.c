/* A bulkhead of 2 permits: try_acquire refuses at once when it is full, acquire waits under a
 * timeout breaker, acquire_async queues a callback that runs on the pool once a permit frees. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strix.h>

static atomic_int queued_rc = 1;

static void queued(sx_sem *sem, int err, void *done)  /* runs on a pool worker */
{
	printf("queued request: %s\n", err == 0 ? "got a permit" : sx_strerror(err));
	atomic_store(&queued_rc, err != 0 ? err : sx_sem_release(sem, 1));  /* done: give it back */
	(void)sx_breaker_trip(done);            /* 0, or -EALREADY: tripped either way */
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_breaker *timeout, *done;
	sx_pool *pool;
	sx_sem *db;
	int rc;

	if ((rc = sx_pool_create(NULL, &pool)) != 0 || (rc = sx_sem_create(pool, 2, &db)) != 0 ||
	    (rc = sx_breaker_create(&done)) != 0)
		return fail("setting up", rc);
	if ((rc = sx_sem_try_acquire(db, 1)) != 0 || (rc = sx_sem_try_acquire(db, 1)) != 0)
		return fail("sx_sem_try_acquire", rc);
	if ((rc = sx_sem_try_acquire(db, 1)) != -EAGAIN)  /* both permits are held */
		return fail("sx_sem_try_acquire (full)", rc);
	if ((rc = sx_breaker_timeout(pool, 10000000, &timeout)) != 0)  /* 10 ms from now */
		return fail("sx_breaker_timeout", rc);
	if ((rc = sx_sem_acquire(db, 1, timeout)) != -ETIMEDOUT)  /* still full after 10 ms */
		return fail("sx_sem_acquire", rc);
	printf("full: try_acquire -EAGAIN, acquire -ETIMEDOUT after 10 ms\n");
	if ((rc = sx_sem_acquire_async(db, 1, NULL, queued, done)) != 0)
		return fail("sx_sem_acquire_async", rc);
	if ((rc = sx_sem_release(db, 1)) != 0)    /* the queued request gets this permit */
		return fail("sx_sem_release", rc);
	if ((rc = sx_breaker_wait(done, 1000000000)) != 0 || (rc = atomic_load(&queued_rc)) != 0)
		return fail("the queued request", rc);
	if ((rc = sx_sem_release(db, 1)) != 0 || (rc = (int)sx_sem_in_use(db)) != 0)
		return fail("releasing the last permit", rc);
	sx_sem_destroy(db);
	sx_breaker_release(timeout);
	sx_breaker_release(done);
	sx_pool_destroy(pool);
	return 0;
}
