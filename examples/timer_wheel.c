/* The timer wheel on its own: request timeouts embedded in the requests, on a virtual clock that
 * the owner moves from deadline to deadline (a real owner sleeps until the next deadline). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <strix.h>

static uint64_t now;                          /* the virtual clock, in ns */
static uint64_t read_now(void *ctx) { (void)ctx; return now; }

struct request { sx_wheel_timer timeout; const char *name; };

static int timed_out;

static void expired(sx_wheel_timer *t)
{
	struct request *r = SX_CONTAINER_OF(t, struct request, timeout);

	printf("%3llu ms: %s timed out\n", (unsigned long long)(now / 1000000), r->name);
	timed_out++;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	const sx_clock vclock = { read_now, NULL, NULL };
	sx_wheel_opts opts = SX_WHEEL_OPTS_INIT;  /* 1 ms tick */
	struct request req[3] = { { .name = "/a" }, { .name = "/b" }, { .name = "/c" } };
	sx_wheel *w;
	int rc;

	opts.clock = &vclock;
	if ((rc = sx_wheel_create(&opts, &w)) != 0)
		return fail("sx_wheel_create", rc);
	for (int i = 0; i < 3; i++) {         /* timeouts of 20, 40 and 60 ms */
		if ((rc = sx_wheel_timer_init(&req[i].timeout, expired)) != 0 ||
		    (rc = sx_wheel_add_after(w, &req[i].timeout, (i + 1) * INT64_C(20000000))) != 0)
			return fail("sx_wheel_add_after", rc);
	}
	if ((rc = sx_wheel_cancel(w, &req[1].timeout)) != 0)  /* /b was answered in time */
		return fail("sx_wheel_cancel", rc);
	while (sx_wheel_count(w) > 0) {
		now = sx_wheel_next_deadline(w);
		sx_wheel_advance(w);              /* runs the callbacks due by now */
	}
	if ((rc = sx_wheel_cancel(w, &req[0].timeout)) != -ENOENT)  /* it fired: not pending */
		return fail("sx_wheel_cancel after expiry", rc);
	sx_wheel_destroy(w);
	return timed_out == 2 && now == 60000000 ? 0 : 1;
}
