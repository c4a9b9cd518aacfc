/**
 * @file
 * <strix/events.h>: the declarations of the event stream (group strix_events).
 *
 * @defgroup strix_events Events
 * @ingroup strix
 *
 * strix events - what the resilience policies did (a circuit changed state, a call was refused,
 * retried, hedged, timed out, replaced by a fallback), as a stream that a dashboard, a log or an
 * alert reads off the hot path.
 *
 * An event ring has a fixed number of slots. Any thread emits (one CAS to claim a slot, a few
 * stores, one release store to publish it); when the ring is full the event is dropped and
 * counted, never waited for, so a slow reader can lose events but never slows the calls. One
 * thread at a time reads them, oldest first (sx_events_poll). A producer that is preempted
 * between claiming and publishing holds back the reader at its slot, not the other producers.
 *
 * Emitters: sx_pipeline_set_events (every layer's refusals, retries, timeouts and fallbacks),
 * sx_hedge_opts.events (hedges started), sx_events_on_circuit as a circuit's state callback,
 * and sx_events_emit for the application's own.
 * @{
 */
#ifndef STRIX_EVENTS_H
#define STRIX_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <strix/circuit.h>
#include <strix/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An event ring (opaque): sx_events_create makes one. */
typedef struct sx_events sx_events;

/** The kinds of event. */
enum sx_event_kind {
	SX_EVENT_CIRCUIT_STATE = 1,  /**< value: from << 8 | to (enum sx_circuit_state) */
	SX_EVENT_REJECTED = 2,       /**< a policy refused a call; code: its error */
	SX_EVENT_RETRY = 3,          /**< a retry begins; value: its attempt number; code: the error
	                                  that caused it */
	SX_EVENT_TIMEOUT = 4,        /**< a call's time limit passed */
	SX_EVENT_FALLBACK = 5,       /**< a fallback replaced a failure; code: the failure */
	SX_EVENT_HEDGE = 6,          /**< a hedge started; value: its number (1, 2, ...) */
	SX_EVENT_USER = 100          /**< kinds from here up are the application's */
};

/** One event. */
typedef struct sx_event {
	uint64_t time_ns;            /**< CLOCK_MONOTONIC when it was emitted */
	int kind;                    /**< enum sx_event_kind */
	int code;                    /**< an error code, or 0 */
	uint64_t value;              /**< as the kind says */
	const char *source;          /**< the emitter's name (borrowed: it outlives the ring), or
	                                  NULL */
} sx_event;

/**
 * sx_events_create - a ring of capacity slots (a power of two, 2 .. 2^24).
 * Returns 0; -EINVAL for NULL out or a capacity out of range; -ENOMEM. Cold path (allocates);
 * never blocks; any thread.
 */
SX_API int sx_events_create(size_t capacity, sx_events **out);

/** sx_events_destroy - free ev (NULL: no-op); never fails. No emit or poll may be in progress
 * or follow (detach it from the pipelines, hedges and circuits first). Never blocks. */
SX_API void sx_events_destroy(sx_events *ev);

/**
 * sx_events_emit - append an event (its time is taken now). Returns 0; -ENOSPC when the ring is
 * full (the event is dropped and counted); -EINVAL for NULL ev or kind <= 0.
 * Never blocks; lock-free (a CAS on the ring's tail, retried only when another emit claimed the
 * slot first); any thread, concurrently, also from a circuit's callback.
 */
SX_API int sx_events_emit(sx_events *ev, int kind, int code, uint64_t value, const char *source);

/**
 * sx_events_poll - move up to max events, oldest first, into out. Returns how many (0: none
 * published yet, or NULL ev / out). Never blocks; wait-free; one thread at a time.
 */
SX_API size_t sx_events_poll(sx_events *ev, sx_event *out, size_t max);

/** sx_events_dropped - events dropped because the ring was full, since create (0 for NULL).
 * One load; wait-free; any thread. */
SX_API uint64_t sx_events_dropped(const sx_events *ev);

/** Where a circuit's state changes go: give sx_events_on_circuit as sx_circuit_opts' state
 * callback and a pointer to one of these (caller storage, alive as long as the circuit) as its
 * argument. */
typedef struct sx_event_source {
	sx_events *events;           /**< the ring */
	const char *name;            /**< the events' source */
} sx_event_source;

/** sx_events_on_circuit - a circuit state callback (sx_circuit_state_fn) that emits
 * SX_EVENT_CIRCUIT_STATE into ((sx_event_source *)arg)->events. */
SX_API void sx_events_on_circuit(sx_circuit *c, int from, int to, const sx_circuit_metrics *m,
    void *arg);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_EVENTS_H */
