/* A run group: a server actor and a feed actor start together; when the feed fails, every actor
 * is interrupted and the group returns the feed's error. SIGINT or SIGTERM would end it too. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <strix.h>

static int serve(void *quit)                    /* blocks until interrupted (at most 2 s here) */
{
	int rc = sx_breaker_wait(quit, 2000000000);

	return rc != 0 ? rc : sx_breaker_err(quit);
}

static void stop_serving(int err, void *quit) { (void)err; (void)sx_breaker_trip(quit); }

static int feed(void *arg)
{
	(void)arg;
	nanosleep(&(struct timespec){ 0, 10000000 }, NULL);  /* 10 ms, then the feed is lost */
	return -EPIPE;
}

static void stop_feed(int err, void *arg) { (void)err; (void)arg; }  /* it ends by itself */

static void feed_failed(int err, void *arg) { (void)arg; printf("feed: %s\n", sx_strerror(err)); }

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_group_opts go = SX_GROUP_OPTS_INIT;
	sx_actor_info server;
	sx_breaker *quit;
	sx_group *g;
	int rc, err, who, srv, fd;

	go.flags = SX_GROUP_REVERSE;            /* interrupt in reverse order of adding */
	go.shutdown_ns = 1000000000;            /* 1 s, then report who is stuck */
	if ((rc = sx_breaker_create(&quit)) != 0 || (rc = sx_group_create(&go, &g)) != 0)
		return fail("setting up", rc);
	if ((rc = srv = sx_group_add(g, serve, stop_serving, NULL, quit)) < 0 ||
	    (rc = fd = sx_group_add(g, feed, stop_feed, feed_failed, NULL)) < 0 ||
	    (rc = sx_group_add_signals(g, NULL, 0)) < 0)  /* SIGINT, SIGTERM */
		return fail("sx_group_add", rc);
	if ((rc = sx_group_run(g)) != -EPIPE)   /* the first actor's return value */
		return fail("sx_group_run", rc);
	if ((who = sx_group_cause(g, &err, NULL)) != fd)  /* which actor ended it, and how */
		return fail("sx_group_cause", who);
	if ((rc = sx_group_actor(g, (unsigned)srv, &server)) != 0)
		return fail("sx_group_actor", rc);
	printf("group: %s (actor %d); the server ended with %s\n", sx_strerror(err), who,
	    sx_strerror(server.err));
	sx_group_destroy(g);
	sx_breaker_release(quit);
	return err == -EPIPE && server.err == -ECANCELED ? 0 : 1;
}
