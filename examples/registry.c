/* Keyed guards: a circuit breaker per backend, made on first use and dropped when idle. Backend 7
 * keeps failing and trips its own circuit; backend 8 is not affected. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <strix.h>

static uint64_t backend_of(const sx_call *call) { return *(const uint64_t *)call->arg; }

static int fetch(sx_call *call)                 /* backend 7 is down */
{
	return backend_of(call) == 7 ? -EIO : 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_registry_opts ro = SX_REGISTRY_OPTS_INIT;
	sx_registry_counters n;
	sx_registry *circuits;
	sx_pipeline *pl;
	sx_pool *pool;
	int rc;

	co.consecutive_failures = 3;            /* every backend's circuit opens after 3 in a row */
	ro.kind = SX_REGISTRY_CIRCUIT;
	ro.circuit = &co;
	ro.max_keys = 10000;                    /* at most this many kept once idle */
	ro.idle_ns = 60 * INT64_C(1000000000);  /* a backend unused for a minute is forgotten */
	if ((rc = sx_pool_create(NULL, &pool)) != 0 ||
	    (rc = sx_registry_create(pool, &ro, &circuits)) != 0 ||
	    (rc = sx_pipeline_create(NULL, &pl)) != 0 ||
	    (rc = sx_pipeline_add_circuit_keyed(pl, circuits, backend_of)) != 0)
		return fail("setting up", rc);
	for (int i = 0; i < 5; i++) {
		uint64_t down = 7, up = 8;
		int a = sx_pipeline_call(pl, fetch, &down, NULL, NULL);
		int b = sx_pipeline_call(pl, fetch, &up, NULL, NULL);

		printf("call %d: backend 7 -> %s, backend 8 -> %s\n", i + 1, sx_strerror(a),
		    sx_strerror(b));
		if (b != 0 || a != (i < 3 ? -EIO : SX_ECIRCUIT_OPEN))
			return fail("calling", i < 3 ? a : b);
	}
	sx_registry_stats(circuits, &n);
	printf("%llu backends, %llu bytes\n", (unsigned long long)n.keys,
	    (unsigned long long)n.bytes);
	sx_pipeline_destroy(pl);
	sx_registry_destroy(circuits);
	sx_pool_destroy(pool);
	return 0;
}
