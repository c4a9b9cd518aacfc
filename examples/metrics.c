/* Metrics and events: a circuit, a bulkhead and the pipeline over them exposed in the
 * OpenMetrics text format, and the events the pipeline emits (a refusal, the circuit's state
 * change) read from an event ring. */
#include <stdio.h>
#include <strix.h>

static char text[8192];

static int ok(sx_call *call)
{
	(void)call;
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: unexpected %d (%s)\n", what, rc, sx_strerror(rc));
	return 1;
}

int main(void)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_event_source src;
	sx_events *events;
	sx_event ev[8];
	sx_metrics *metrics;
	sx_pipeline_metrics counts;
	sx_pipeline *pl;
	sx_circuit *db;
	sx_sem *pool_of_conns;
	size_t len, n, i;
	int rc;

	if ((rc = sx_events_create(64, &events)) != 0)
		return fail("sx_events_create", rc);
	src = (sx_event_source){ events, "db" };
	co.on_state = sx_events_on_circuit;     /* state changes into the ring */
	co.on_state_arg = &src;
	if ((rc = sx_circuit_create(&co, &db)) != 0 ||
	    (rc = sx_sem_create(NULL, 4, &pool_of_conns)) != 0)
		return fail("creating the guards", rc);
	if ((rc = sx_pipeline_create(NULL, &pl)) != 0 ||
	    (rc = sx_pipeline_add_circuit(pl, db)) != 0 ||
	    (rc = sx_pipeline_add_bulkhead(pl, pool_of_conns, 0)) != 0 ||
	    (rc = sx_pipeline_set_events(pl, events, "db-calls")) != 0)
		return fail("building the pipeline", rc);
	if ((rc = sx_pipeline_call(pl, ok, NULL, NULL, NULL)) != 0)
		return fail("sx_pipeline_call", rc);
	if ((rc = sx_circuit_force(db, SX_CIRCUIT_FORCED_OPEN)) != 0)  /* an operator opens it */
		return fail("sx_circuit_force", rc);
	if ((rc = sx_pipeline_call(pl, ok, NULL, NULL, NULL)) != SX_ECIRCUIT_OPEN)
		return fail("sx_pipeline_call (open)", rc);

	if ((rc = sx_metrics_create(&metrics)) != 0 ||
	    (rc = sx_metrics_add(metrics, SX_METRICS_CIRCUIT, "db", db)) != 0 ||
	    (rc = sx_metrics_add(metrics, SX_METRICS_BULKHEAD, "db", pool_of_conns)) != 0 ||
	    (rc = sx_metrics_add(metrics, SX_METRICS_PIPELINE, "db-calls", pl)) != 0)
		return fail("the metrics set", rc);
	if ((rc = sx_metrics_render(metrics, SX_METRICS_OPENMETRICS, text, sizeof(text),
	    &len)) != 0)
		return fail("sx_metrics_render", rc);
	fputs(text, stdout);                    /* what GET /metrics would answer */
	/* The same counters, read directly: two calls, one refused by the open circuit. */
	if ((rc = sx_pipeline_snapshot(pl, &counts)) != 0 || counts.calls != 2 ||
	    counts.failed != 1 || counts.rejected != 1)
		return fail("sx_pipeline_snapshot", rc);

	n = sx_events_poll(events, ev, 8);
	for (i = 0; i < n; i++)
		printf("event %d from %s: code %d value %llu\n", ev[i].kind, ev[i].source,
		    ev[i].code, (unsigned long long)ev[i].value);
	if (n != 2 || ev[0].kind != SX_EVENT_CIRCUIT_STATE || ev[1].kind != SX_EVENT_REJECTED)
		return fail("the events", (int)n);
	sx_metrics_destroy(metrics);
	sx_pipeline_destroy(pl);
	sx_sem_destroy(pool_of_conns);
	sx_circuit_destroy(db);
	sx_events_destroy(events);
	return 0;
}
