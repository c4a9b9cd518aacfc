/*
 * The event ring (strix/events.h): a bounded ring of slots, each with a sequence word, for many
 * producers and one reader. Slot i of lap L is free for the producer of position p = L * cap + i
 * when its seq is p, and published when its seq is p + 1; the reader, at position r, takes the
 * slot when seq is r + 1 and frees it for the next lap by storing r + cap.
 *
 * A producer loads the tail, checks the slot's seq (p: free; below p: the reader has not freed
 * it from the last lap, so the ring is full and the event is dropped), claims the position with
 * a CAS on the tail, writes the event and publishes it with a release store of seq. Producers
 * never wait for each other (ck_ring's multi-producer enqueue would make each wait for the
 * producers before it to commit, so one preempted producer would stall every emit), and a
 * producer preempted between its CAS and its publish only holds the reader at that slot.
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
	for (size_t i = 0; i < capacity; i++)
		ev->slots[i].seq = i;
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
	p = ck_pr_load_64(&ev->tail);
	for (;;) {
		uint64_t seq;

		s = &ev->slots[p & ev->mask];
		seq = ck_pr_load_64(&s->seq);
		ck_pr_fence_load();
		if (seq == p) {
			if (ck_pr_cas_64_value(&ev->tail, p, p + 1, &p)) {
				SX__TSAN_ACQUIRE(&s->seq); /* the reader's copy of the last lap */
				break;
			}
		} else if (seq < p) {
			ck_pr_inc_64(&ev->dropped); /* the reader is a lap behind: full */
			return -ENOSPC;
		} else {
			p = ck_pr_load_64(&ev->tail); /* another producer took p */
		}
	}
	s->e.time_ns = sx__now_ns();
	s->e.kind = kind;
	s->e.code = code;
	s->e.value = value;
	s->e.source = source;
	ck_pr_fence_store();
	SX__TSAN_RELEASE(&s->seq); /* the sanitizer does not see fences: the publish releases */
	ck_pr_store_64(&s->seq, p + 1);
	return 0;
}

size_t sx_events_poll(sx_events *ev, sx_event *out, size_t max)
{
	size_t n = 0;

	if (ev == NULL || out == NULL)
		return 0;
	for (; n < max; n++) {
		uint64_t r = ev->head;
		struct slot *s = &ev->slots[r & ev->mask];

		if (ck_pr_load_64(&s->seq) != r + 1)
			break; /* not published yet */
		ck_pr_fence_load();
		SX__TSAN_ACQUIRE(&s->seq);
		out[n] = s->e;
		ck_pr_fence_load_store(); /* the copy is done before the slot is handed back */
		SX__TSAN_RELEASE(&s->seq);
		ck_pr_store_64(&s->seq, r + ev->mask + 1);
		ev->head = r + 1;
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
