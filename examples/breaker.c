/* Breakers: a work loop that stops at the first of a 20 ms timeout and SIGINT (a multiplex), and
 * a child breaker for a sub-task, which its parent's trip ends too. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <strix.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_breaker *deadline, *sigint, *stop, *upload;
	sx_pool *pool;
	sigset_t set;
	int rc, steps = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	if ((rc = sx_pool_create(NULL, &pool)) != 0)    /* its timer service runs the timeout */
		return fail("sx_pool_create", rc);
	if ((rc = sx_breaker_timeout(pool, 20000000, &deadline)) != 0 ||  /* -ETIMEDOUT in 20 ms */
	    (rc = sx_breaker_signal(&set, &sigint)) != 0 ||               /* SX_ESIGNAL on Ctrl-C */
	    (rc = sx_breaker_multiplex((sx_breaker *[]){ deadline, sigint }, 2, &stop)) != 0 ||
	    (rc = sx_breaker_child(stop, &upload)) != 0)
		return fail("creating the breakers", rc);
	while (!sx_breaker_done(stop) && steps < 1000) {     /* one load per check */
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL); /* a step of work: 1 ms */
		steps++;
	}
	rc = sx_breaker_err(stop);
	printf("stopped after %d steps: %s\n", steps, sx_strerror(rc));
	if (rc != -ETIMEDOUT)
		return fail("sx_breaker_err", rc);
	if ((rc = sx_breaker_wait(upload, 0)) != 0 || (rc = sx_breaker_err(upload)) != -ETIMEDOUT)
		return fail("the child breaker", rc);     /* the child took its parent's code */
	if ((rc = sx_breaker_trip(upload)) != -EALREADY)  /* tripped once, for good */
		return fail("sx_breaker_trip", rc);
	sx_breaker_release(upload);
	sx_breaker_release(stop);
	sx_breaker_release(sigint);                   /* SIGINT's old disposition is back */
	sx_breaker_release(deadline);
	if ((rc = sx_pool_shutdown(pool, SX_DRAIN)) != 0)
		return fail("sx_pool_shutdown", rc);
	sx_pool_destroy(pool);
	return 0;
}
