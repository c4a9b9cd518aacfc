/* The event ring: order, a full ring dropping (counted, never blocking), many laps, the circuit
 * callback, producers racing each other and the reader (each event read once or counted as
 * dropped, each producer's events in its order), bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/circuit.h>
#include <strix/events.h>

static void test_order_and_full(void **state)
{
	sx_events *ev;
	sx_event out[8];
	unsigned i;

	(void)state;
	assert_int_equal(sx_events_create(4, &ev), 0);
	assert_int_equal(sx_events_poll(ev, out, 8), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(sx_events_emit(ev, SX_EVENT_RETRY, -EIO, i + 1, "db"), 0);
	assert_int_equal(sx_events_emit(ev, SX_EVENT_RETRY, 0, 99, "db"), -ENOSPC);
	assert_int_equal(sx_events_emit(ev, SX_EVENT_RETRY, 0, 99, "db"), -ENOSPC);
	assert_int_equal(sx_events_dropped(ev), 2);
	assert_int_equal(sx_events_poll(ev, out, 3), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(out[i].kind, SX_EVENT_RETRY);
		assert_int_equal(out[i].code, -EIO);
		assert_int_equal(out[i].value, i + 1);
		assert_string_equal(out[i].source, "db");
		assert_true(out[i].time_ns > 0);
		assert_true(i == 0 || out[i].time_ns >= out[i - 1].time_ns);
	}
	assert_int_equal(sx_events_emit(ev, SX_EVENT_TIMEOUT, -ETIMEDOUT, 0, NULL), 0);
	assert_int_equal(sx_events_poll(ev, out, 8), 2);
	assert_int_equal(out[0].value, 4);
	assert_int_equal(out[1].kind, SX_EVENT_TIMEOUT);
	assert_null(out[1].source);
	assert_int_equal(sx_events_poll(ev, out, 8), 0);
	sx_events_destroy(ev);
}

static void test_many_laps(void **state)
{
	sx_events *ev;
	sx_event out[3];
	uint64_t next = 0, i;

	(void)state;
	assert_int_equal(sx_events_create(8, &ev), 0);
	for (i = 0; i < 10000; i++) {
		size_t n, k;

		assert_int_equal(sx_events_emit(ev, SX_EVENT_USER, 0, i, NULL), 0);
		if (i % 3 == 2) {
			n = sx_events_poll(ev, out, 3);
			assert_int_equal(n, 3);
			for (k = 0; k < n; k++)
				assert_int_equal(out[k].value, next++);
		}
	}
	assert_int_equal(sx_events_poll(ev, out, 3), 1);
	assert_int_equal(out[0].value, next);
	assert_int_equal(sx_events_dropped(ev), 0);
	sx_events_destroy(ev);
}

static void test_circuit_callback(void **state)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_event_source src;
	sx_circuit *c;
	sx_events *ev;
	sx_event out[4];

	(void)state;
	assert_int_equal(sx_events_create(16, &ev), 0);
	src = (sx_event_source){ ev, "upstream-1" };
	co.on_state = sx_events_on_circuit;
	co.on_state_arg = &src;
	assert_int_equal(sx_circuit_create(&co, &c), 0);
	assert_int_equal(sx_circuit_force(c, SX_CIRCUIT_FORCED_OPEN), 0);
	assert_int_equal(sx_events_poll(ev, out, 4), 1);
	assert_int_equal(out[0].kind, SX_EVENT_CIRCUIT_STATE);
	assert_int_equal(out[0].value, (SX_CIRCUIT_CLOSED << 8) | SX_CIRCUIT_FORCED_OPEN);
	assert_string_equal(out[0].source, "upstream-1");
	sx_circuit_destroy(c);
	sx_events_destroy(ev);
}

#define PRODUCERS 3
#define PER_PRODUCER 100000
static sx_events *race_ev;
static uint64_t race_refused[PRODUCERS];

static void *producer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;

	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		int rc = sx_events_emit(race_ev, SX_EVENT_USER + (int)id, 0, i, NULL);

		assert_true(rc == 0 || rc == -ENOSPC);
		race_refused[id] += rc != 0;
	}
	return NULL;
}

static void test_racing_producers(void **state)
{
	pthread_t t[PRODUCERS];
	int64_t last[PRODUCERS];
	uint64_t got[PRODUCERS] = { 0 }, total = 0, refused = 0;
	sx_event out[64];
	unsigned i, alive = PRODUCERS;

	(void)state;
	assert_int_equal(sx_events_create(256, &race_ev), 0);
	for (i = 0; i < PRODUCERS; i++) {
		last[i] = -1;
		assert_int_equal(pthread_create(&t[i], NULL, producer, (void *)(uintptr_t)i), 0);
	}
	while (alive > 0 || total + refused < (uint64_t)PRODUCERS * PER_PRODUCER) {
		size_t n = sx_events_poll(race_ev, out, 64);

		for (size_t k = 0; k < n; k++) {
			unsigned id = (unsigned)(out[k].kind - SX_EVENT_USER);

			assert_true(id < PRODUCERS);
			assert_true((int64_t)out[k].value > last[id]); /* a producer's order kept */
			last[id] = (int64_t)out[k].value;
			got[id]++;
			total++;
		}
		if (alive > 0 && total + sx_events_dropped(race_ev) >=
		    (uint64_t)PRODUCERS * PER_PRODUCER) {
			for (i = 0; i < PRODUCERS; i++)
				assert_int_equal(pthread_join(t[i], NULL), 0);
			alive = 0;
		}
		if (alive == 0)
			refused = sx_events_dropped(race_ev);
	}
	for (i = 0; i < PRODUCERS; i++)
		assert_int_equal(got[i] + race_refused[i], PER_PRODUCER);
	assert_int_equal(total + sx_events_dropped(race_ev), (uint64_t)PRODUCERS * PER_PRODUCER);
	sx_events_destroy(race_ev);
}

static void test_bad_input(void **state)
{
	sx_events *ev = NULL;
	sx_event out[1];

	(void)state;
	assert_int_equal(sx_events_create(0, &ev), -EINVAL);
	assert_int_equal(sx_events_create(1, &ev), -EINVAL);
	assert_int_equal(sx_events_create(12, &ev), -EINVAL);
	assert_int_equal(sx_events_create((size_t)1 << 25, &ev), -EINVAL);
	assert_int_equal(sx_events_create(16, NULL), -EINVAL);
	assert_null(ev);
	assert_int_equal(sx_events_create(2, &ev), 0);
	assert_int_equal(sx_events_emit(NULL, SX_EVENT_USER, 0, 0, NULL), -EINVAL);
	assert_int_equal(sx_events_emit(ev, 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(sx_events_poll(NULL, out, 1), 0);
	assert_int_equal(sx_events_poll(ev, NULL, 1), 0);
	assert_int_equal(sx_events_dropped(NULL), 0);
	sx_events_on_circuit(NULL, 0, 1, NULL, NULL); /* no source: nothing */
	sx_events_destroy(ev);
	sx_events_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_full),
		cmocka_unit_test(test_many_laps),
		cmocka_unit_test(test_circuit_callback),
		cmocka_unit_test(test_racing_producers),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
