/* A circuit breaker around a backend that is down: 3 failures in a row open the circuit, calls
 * are refused without reaching the backend, and after 20 ms one probe that succeeds closes it. */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <strix.h>

static int backend_up;                          /* the dependency: down at first */

static void on_state(sx_circuit *c, int from, int to, const sx_circuit_metrics *m, void *arg)
{
	(void)c; (void)m; (void)arg;
	printf("  circuit %s -> %s\n", sx_circuit_state_name(from), sx_circuit_state_name(to));
}

static uint64_t now(void) { return sx_clock_monotonic.now_ns(sx_clock_monotonic.ctx); }

static int guarded_call(sx_circuit *c)
{
	sx_circuit_permit permit;
	int rc = sx_circuit_acquire(c, &permit);

	if (rc != 0)
		return rc;                      /* SX_ECIRCUIT_OPEN: the backend is not called */
	uint64_t t0 = now();
	int result = backend_up ? 0 : -EIO;     /* the call itself */
	rc = sx_circuit_release(c, permit, result, (int64_t)(now() - t0));  /* report it, always */
	return rc != 0 ? rc : result;
}

int main(void)
{
	sx_circuit_opts o = SX_CIRCUIT_OPTS_INIT;
	const int want[6] = { -EIO, -EIO, -EIO, SX_ECIRCUIT_OPEN, 0, 0 };
	sx_circuit *c;
	int rc;

	o.consecutive_failures = 3;             /* open after 3 failures in a row */
	o.open_ns = 20000000;                   /* for 20 ms, then let one probe through */
	o.on_state = on_state;
	if ((rc = sx_circuit_create(&o, &c)) != 0) {
		fprintf(stderr, "sx_circuit_create: %s\n", sx_strerror(rc));
		return 1;
	}
	for (int i = 0; i < 6; i++) {
		if (i == 4) {                   /* the backend is back; the open time passes */
			backend_up = 1;
			nanosleep(&(struct timespec){ 0, 25000000 }, NULL);
		}
		rc = guarded_call(c);
		printf("call %d: %s\n", i + 1, sx_strerror(rc));
		if (rc != want[i])
			return 1;
	}
	rc = sx_circuit_state(c);
	sx_circuit_destroy(c);
	return rc == SX_CIRCUIT_CLOSED ? 0 : 1;
}
