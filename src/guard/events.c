/*
 * The event ring (strix/events.h): base's sequenced ring (sx__ring_*) of events, many producers
 * and one reader. A producer that finds the ring full (the reader has not freed the slot from
 * the last lap) drops its event and counts it. Producers never wait for each other (ck_ring's
 * multi-producer enqueue would make each wait for the producers before it to commit, so one
 * preempted producer would stall every emit), and a producer preempted between its claim and
 * its publish only holds the reader at that slot.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#include <strix/events.h>

#include "guard/guard.h"

struct slot {
	uint64_t seq;
	sx_event e;
};

struct sx_events {
	SX__ALIGNED uint64_t tail;      /* the next position to claim (producers) */
	SX__ALIGNED uint64_t head;      /* the next position to read (the reader only) */
	SX__ALIGNED uint64_t dropped;
	uint64_t mask;
	struct slot *slots;
};

int sx_events_create(size_t capacity, sx_events **out)
{
	sx_events *ev;

	if (out == NULL || capacity < 2 || capacity > ((size_t)1 << 24) ||
	    (capacity & (capacity - 1)) != 0)
		return -EINVAL;
	ev = sx__zalloc(sizeof(*ev), SX__CACHELINE);
	if (ev == NULL)
		return -ENOMEM;
	ev->slots = sx__zalloc(capacity * sizeof(*ev->slots), SX__CACHELINE);
	if (ev->slots == NULL) {
		sx__dfree(ev, sizeof(*ev), SX__CACHELINE);
		return -ENOMEM;
	}
	sx__ring_init(ev->slots, sizeof(*ev->slots), capacity);
	ev->mask = capacity - 1;
	*out = ev;
	return 0;
}

void sx_events_destroy(sx_events *ev)
{
	if (ev == NULL)
		return;
	sx__dfree(ev->slots, (ev->mask + 1) * sizeof(*ev->slots), SX__CACHELINE);
	sx__dfree(ev, sizeof(*ev), SX__CACHELINE);
}

int sx_events_emit(sx_events *ev, int kind, int code, uint64_t value, const char *source)
{
	uint64_t p;
	struct slot *s;

	if (ev == NULL || kind <= 0)
		return -EINVAL;
	if (sx__ring_claim(&ev->tail, ev->slots, sizeof(*ev->slots), ev->mask, &p) != 0) {
		ck_pr_inc_64(&ev->dropped); /* the reader is a lap behind: full */
		return -ENOSPC;
	}
	s = &ev->slots[p & ev->mask];
	s->e.time_ns = sx__now_ns();
	s->e.kind = kind;
	s->e.code = code;
	s->e.value = value;
	s->e.source = source;
	sx__ring_publish(ev->slots, sizeof(*ev->slots), ev->mask, p);
	return 0;
}

size_t sx_events_poll(sx_events *ev, sx_event *out, size_t max)
{
	size_t n = 0;
	uint64_t r;

	if (ev == NULL || out == NULL)
		return 0;
	for (; n < max; n++) {
		if (!sx__ring_take(&ev->head, ev->slots, sizeof(*ev->slots), ev->mask, &r))
			break; /* empty, or not published yet */
		out[n] = ev->slots[r & ev->mask].e;
		sx__ring_release(ev->slots, sizeof(*ev->slots), ev->mask, r);
	}
	return n;
}

uint64_t sx_events_dropped(const sx_events *ev)
{
	return ev != NULL ? ck_pr_load_64(&ev->dropped) : 0;
}

void sx_events_on_circuit(sx_circuit *c, int from, int to, const sx_circuit_metrics *m,
    void *arg)
{
	const sx_event_source *src = arg;

	(void)c;
	(void)m;
	if (src != NULL)
		(void)sx_events_emit(src->events, SX_EVENT_CIRCUIT_STATE, 0,
		    ((uint64_t)(unsigned)from << 8) | (unsigned)to, src->name);
}
