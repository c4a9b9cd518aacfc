/**
 * @file
 * <strix/circuit.h>: the declarations of the circuit breakers module (group strix_circuit).
 *
 * @defgroup strix_circuit Circuit breakers
 * @ingroup strix
 *
 * strix circuit breakers - stop calling a dependency that keeps failing, and probe it before
 * letting traffic back (after Hystrix, Resilience4j, Polly and Workshop's breaker middle).
 *
 * A call asks for a permit (sx_circuit_acquire) and reports how it went (sx_circuit_release with
 * its result and latency). States:
 *
 * @code{.unparsed}
 *   CLOSED      calls pass; results go into a sliding window. Each failed or slow result is
 *               checked: the circuit opens after consecutive_failures failures in a row, or when,
 *               with at least min_calls results in the window, the failure rate or the slow-call
 *               rate reaches its threshold (rates are compared to the millionth, a rate below
 *               one millionth as one millionth; a success is never checked, so a success that
 *               brings the window to min_calls does not open it).
 *   OPEN        calls fail at once with SX_ECIRCUIT_OPEN for the open duration, to the ns: the
 *               first trip after a close (or after create) lasts open_ns, each later one the
 *               previous one's duration times open_backoff (rounded down to the ns), at most
 *               open_max_ns. A deadline past the clock's range is the clock's last value.
 *               Then HALF_OPEN: on the pool's timer service when the options name a pool (no
 *               caller needed), and in any case at the first acquire or sx_circuit_state that
 *               finds the duration over (sx_circuit_snapshot only reports).
 *   HALF_OPEN   exactly half_open_permits probes are let through, no more, however many threads
 *               race for them. half_open_successes successful probes close the circuit; one failed
 *               or slow probe opens it again (a trip: the open duration grows). An ignored probe
 *               gives its permit back. If every probe has been handed out and none has reported
 *               for probe_lease_ns since the last one went out, the unreported probes count as
 *               failed: the circuit opens again instead of sticking half-open.
 *   FORCED_OPEN every call is refused until sx_circuit_force moves it elsewhere.
 *   DISABLED    every call passes and nothing is recorded.
 *   METRICS_ONLY every call passes, results are recorded, the state never changes by itself.
 * @endcode
 *
 * Generations: every transition bumps the circuit's generation (42 bits), and a permit remembers
 * the generation it was issued in. A result reported with a permit of any other generation is
 * ignored (-ESTALE), so results of calls that began before a transition never flip the new state.
 * Generations are compared only for equality: a permit could be taken for a current one only
 * after exactly a multiple of 2^42 transitions.
 *
 * Outcomes: opts.classify maps a call's result to success, failure or "ignore" (not counted at
 * all; a probe that reports it gives its permit back). The default: 0 is a success, -ECANCELED
 * (the caller's own cancellation) is ignored, any other value is a failure. A call is slow when
 * slow_call_ns is set and its latency is at least that, whatever its outcome. A classify result
 * other than those three counts as a success. consecutive_failures counts failures recorded in
 * CLOSED and METRICS_ONLY; a success resets it, an ignored result leaves it as it is, and every
 * transition except one to HALF_OPEN resets it.
 *
 * State: one 64-bit atomic word (state, generation, half-open probes issued and succeeded, and
 * which of a few cells holds the open-until or lease deadline, in ns of the circuit's clock),
 * changed only by CAS; a transition that sets a deadline claims a free cell first (there are
 * 31: claiming waits only while 30 other threads are suspended between their claim and their
 * CAS at once). Results are recorded in per-thread stripes (a thread's calls always land in the
 * same stripe) and merged only when a failure or slow call asks whether to trip, or when metrics
 * are read: on the closed fast path acquire is one load and a successful release writes only
 * the calling thread's stripe. No lock anywhere.
 *
 * Windows: SX_CIRCUIT_WINDOW_COUNT keeps, per stripe, the outcomes of the last window_size calls
 * (with one calling thread that is exactly the last window_size calls; with several, each
 * thread's last window_size calls). SX_CIRCUIT_WINDOW_TIME keeps window_buckets buckets of
 * window_ns / window_buckets each and forgets one bucket at a time, never the whole window at
 * once; it reads the clock on every release. Bucket k holds the results released at clock values
 * in [k * b, (k + 1) * b), b = window_ns / window_buckets (integer division); the window at time
 * t is the window_buckets buckets up to t's. Windows are per generation: each transition starts
 * an empty one.
 *
 * Callbacks: opts.on_state runs after each transition, outside any critical section, on the
 * thread that made it (a pool worker for timer-driven ones), with a snapshot of the generation
 * that just ended: its state, generation, window counts, probes, deadline, and the
 * consecutive-failure count at the transition. It may call back into the circuit. Two
 * transitions in quick succession may have their callbacks run concurrently; the snapshot's
 * generation orders them.
 * @{
 */
#ifndef STRIX_CIRCUIT_H
#define STRIX_CIRCUIT_H

#include <stdint.h>

#include <strix/error.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond */ /* declared here too, so that this header compiles alone */
typedef struct sx_pool sx_pool;
/** @endcond */
/** A circuit breaker (opaque): sx_circuit_create makes one. */
typedef struct sx_circuit sx_circuit;

/** The states (see above). */
enum sx_circuit_state {
	SX_CIRCUIT_CLOSED = 0,       /**< calls pass; results go into a sliding window */
	SX_CIRCUIT_OPEN = 1,         /**< calls fail at once with SX_ECIRCUIT_OPEN */
	SX_CIRCUIT_HALF_OPEN = 2,    /**< half_open_permits probes are let through */
	SX_CIRCUIT_FORCED_OPEN = 3,  /**< every call is refused until sx_circuit_force */
	SX_CIRCUIT_DISABLED = 4,     /**< every call passes and nothing is recorded */
	SX_CIRCUIT_METRICS_ONLY = 5, /**< every call passes, results are recorded */
};

/** The kinds of sliding window (see above). */
enum sx_circuit_window {
	SX_CIRCUIT_WINDOW_COUNT = 0,  /**< the last window_size calls */
	SX_CIRCUIT_WINDOW_TIME = 1,   /**< window_buckets buckets over window_ns */
};

/** What opts.classify returns. */
enum sx_circuit_outcome {
	SX_CIRCUIT_SUCCESS = 0, /**< a success */
	SX_CIRCUIT_FAILURE = 1, /**< a failure */
	SX_CIRCUIT_IGNORE = 2,  /**< not counted at all */
};

#define SX_CIRCUIT_MAX_WINDOW 4096u          /**< window_size, at most */
#define SX_CIRCUIT_MAX_BUCKETS 64u           /**< window_buckets, at most */
#define SX_CIRCUIT_MAX_PERMITS 127u          /**< half_open_permits, at most */
#define SX_CIRCUIT_MAX_DURATION_NS (((int64_t)1 << 31) * 1000000) /**< 24.8 days */

/** A permit: 0 is never a valid one. Copy it freely; report it once. */
typedef uint64_t sx_circuit_permit;

/** Counts of the current window (or, in a callback, of the generation that just ended). */
typedef struct sx_circuit_metrics {
	int state;                   /**< enum sx_circuit_state */
	uint64_t generation;         /**< 42 bits, wraps */
	uint64_t calls;              /**< results in the window */
	/** failed results in the window */
	uint64_t failures;
	/** slow results in the window */
	uint64_t slow;
	double failure_rate;         /**< failures / calls, 0 when calls is 0 */
	/** slow / calls, 0 when calls is 0 */
	double slow_rate;
	/** failures in a row (see Outcomes above) */
	uint64_t consecutive_failures;
	unsigned half_open_issued;   /**< probes handed out in this half-open spell */
	/** successful probes in this half-open spell */
	unsigned half_open_successes;
	uint64_t rejected;           /**< calls refused since create (monotone) */
	uint64_t until_ns;           /**< OPEN: when it may half-open; HALF_OPEN with every probe
	                                  out: the lease deadline; ns on the circuit's clock
	                                  (saturated); 0 otherwise */
	uint64_t reserved[4];        /**< set to zero: room for later fields (strix_error, "Growing structs") */
} sx_circuit_metrics;

/** A state-change callback: the transition from -> to has happened; m describes it. */
typedef void (*sx_circuit_state_fn)(sx_circuit *c, int from, int to, const sx_circuit_metrics *m,
    void *arg);

/** Zero means a default in every field, given with each (SX_CIRCUIT_OPTS_INIT spells the same
 * values out, but for min_calls: 100 there, 1 for a zero). */
typedef struct sx_circuit_opts {
	int window;                  /**< enum sx_circuit_window; 0: COUNT */
	uint32_t window_size;        /**< COUNT: calls remembered, 1 .. SX_CIRCUIT_MAX_WINDOW; 0: 100 */
	int64_t window_ns;           /**< TIME: window length, >= window_buckets ns; 0: 10 s */
	uint32_t window_buckets;     /**< TIME: 1 .. SX_CIRCUIT_MAX_BUCKETS; 0: 10 */
	uint32_t min_calls;          /**< results needed before a rate counts; 0: 1 (above a COUNT
	                                  window's window_size: the rates never trip it) */
	double failure_rate;         /**< trip at this failure rate, in (0, 1]; 0: 0.5 */
	int64_t slow_call_ns;        /**< a call at least this long is slow, >= 0; 0: none is */
	double slow_rate;            /**< trip at this slow-call rate, in (0, 1]; 0: 1 */
	uint32_t consecutive_failures; /**< trip after this many failures in a row; 0: never */
	int64_t open_ns;             /**< open duration, 1 ms .. SX_CIRCUIT_MAX_DURATION_NS; 0: 10 s,
	                                  or open_max_ns when that is shorter */
	double open_backoff;         /**< each trip after a trip (no close between) multiplies the
	                                  open duration by this, >= 1 (infinity: straight to the cap);
	                                  0: 1 (a fixed duration) */
	int64_t open_max_ns;         /**< cap of the growing duration, open_ns .. SX_CIRCUIT_MAX_DURATION_NS;
	                                  0: SX_CIRCUIT_MAX_DURATION_NS */
	uint32_t half_open_permits;  /**< probes per half-open spell, 1 .. SX_CIRCUIT_MAX_PERMITS;
	                                  0: 1 */
	uint32_t half_open_successes;/**< successful probes that close it, 1 .. permits; 0: permits */
	int64_t probe_lease_ns;      /**< 1 ms .. SX_CIRCUIT_MAX_DURATION_NS; 0: 10 s */
	int (*classify)(int result, void *ctx); /**< NULL: the default above; must not block */
	/** Passed to classify. */
	void *classify_ctx;
	sx_circuit_state_fn on_state;/**< NULL: none */
	/** Passed to on_state. */
	void *on_state_arg;
	sx_pool *pool;               /**< timer service for OPEN -> HALF_OPEN and lease expiry; NULL:
	                                  those happen when a caller looks. Must outlive the circuit's
	                                  pending timers (its shutdown ends them) */
	const sx_clock *clock;       /**< NULL: CLOCK_MONOTONIC */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_circuit_opts;

/** Defaults: a count window of 100 calls, min_calls 100, trip at 50% failures, no slow-call
 * detection (slow rate 100% once slow_call_ns is set), no consecutive-failure trip, open 10 s,
 * fixed, 1 probe, a 10 s probe lease, default classify, no callback, no pool, CLOCK_MONOTONIC.
 * A zero-filled struct gives the same, but for min_calls (1). */
#if SX_DESIGNATED_INIT
#define SX_CIRCUIT_OPTS_INIT { .window = SX_CIRCUIT_WINDOW_COUNT, .window_size = 100, \
	.window_ns = INT64_C(10000000000), .window_buckets = 10, .min_calls = 100, \
	.failure_rate = 0.5, .slow_rate = 1.0, .open_ns = INT64_C(10000000000), .open_backoff = 1.0, \
	.half_open_permits = 1, .probe_lease_ns = INT64_C(10000000000) }
#else
#define SX_CIRCUIT_OPTS_INIT { SX_CIRCUIT_WINDOW_COUNT, 100, INT64_C(10000000000), 10, 100, 0.5, \
	0, 1.0, 0, INT64_C(10000000000), 1.0, 0, 1, 0, INT64_C(10000000000), NULL, NULL, NULL, \
	NULL, NULL, NULL, {} }
#endif

/**
 * sx_circuit_create - a closed circuit. Zero fields take their defaults first; then
 * returns 0; -EINVAL for NULL opts or out, an unknown window kind, window_size above the
 * maximum, window_ns < window_buckets (a negative one included), window_buckets above the
 * maximum, a failure or slow rate outside (0, 1] (or NaN), a negative slow_call_ns, open_ns or
 * probe_lease_ns outside [1 ms, max], open_backoff below 1 (or NaN), open_max_ns below open_ns
 * or above the maximum, half_open_permits above the maximum, half_open_successes above
 * half_open_permits, a clock without now_ns; -ENOMEM.
 * Nothing is created on failure. Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_circuit_create(const sx_circuit_opts *opts, sx_circuit **out);

/**
 * sx_circuit_destroy - end the circuit (NULL: no-op); never fails. No call on c may be in
 * progress or follow; permits still out are simply never counted. A pending timer keeps the
 * memory until it fires and then does nothing; a timer-driven transition that had already begun
 * may still finish and run its callback. Never blocks; any thread.
 */
SX_API void sx_circuit_destroy(sx_circuit *c);

/**
 * sx_circuit_acquire - ask to make a call. On 0, *permit is to be passed to sx_circuit_release
 * once the call has ended, whatever happened. An OPEN circuit whose duration is over moves to
 * HALF_OPEN first, and a HALF_OPEN one whose lease expired back to OPEN (running the callback).
 * Returns 0; SX_ECIRCUIT_OPEN (OPEN, FORCED_OPEN, or HALF_OPEN with every probe out: the call
 * must not be made; *permit is set to 0 and nothing needs releasing); -EINVAL for NULL c or
 * permit (nothing written).
 * Never blocks. CLOSED, DISABLED, METRICS_ONLY: one atomic load (wait-free). HALF_OPEN: one CAS
 * per probe, and a cell claimed for the last one's lease (lock-free). OPEN: a clock read, a load
 * of the deadline and a per-stripe count. Any thread, concurrently.
 */
SX_API int sx_circuit_acquire(sx_circuit *c, sx_circuit_permit *permit);

/**
 * sx_circuit_release - report the call made with permit: result is the call's return code
 * (classified by opts.classify), latency_ns how long it took, >= 0 (only compared with
 * slow_call_ns).
 * May trip, close or reopen the circuit; the callback then runs on this thread before return.
 * Returns 0 (counted, or ignored by classify, or DISABLED); -ESTALE when the circuit changed
 * generation since the permit was issued (nothing counted); -EINVAL for NULL c, a negative
 * latency_ns, or a permit that sx_circuit_acquire never hands out (0, or any bit set outside its
 * valid bit and generation; nothing counted).
 * Never blocks (apart from the callback). CLOSED: a load and one CAS on this thread's stripe,
 * plus a merge of the stripes when the call failed or was slow; lock-free. Any thread,
 * concurrently; each permit once.
 */
SX_API int sx_circuit_release(sx_circuit *c, sx_circuit_permit permit, int result,
    int64_t latency_ns);

/**
 * sx_circuit_state - the current state (enum sx_circuit_state), after moving an OPEN circuit
 * whose duration is over to HALF_OPEN, or a HALF_OPEN one whose lease expired back to OPEN (and
 * running the callback). -EINVAL for NULL. Never blocks (apart from the callback); lock-free;
 * any thread.
 */
SX_API int sx_circuit_state(sx_circuit *c);

/**
 * sx_circuit_force - move c to state by hand: CLOSED (a fresh window, the open duration starts
 * over), OPEN (for the open duration, as a trip), HALF_OPEN, FORCED_OPEN, DISABLED or
 * METRICS_ONLY. Always a transition (new generation, callback), even to the state c is in.
 * Returns 0; -EINVAL for NULL c or an unknown state (nothing changes). Never blocks (apart from
 * the callback, run on this thread); lock-free; any thread, also from a callback.
 */
SX_API int sx_circuit_force(sx_circuit *c, int state);

/**
 * sx_circuit_snapshot - fill *m with the state and the merged counts of the current window.
 * A snapshot: counts recorded concurrently may or may not be in it; no transition is made (an
 * OPEN circuit past its deadline still reads OPEN). Returns 0; -EINVAL for NULL c or m (nothing
 * written).
 * Never blocks; lock-free; touches every stripe (cold path); any thread.
 */
SX_API int sx_circuit_snapshot(sx_circuit *c, sx_circuit_metrics *m);

/** sx_circuit_state_name - the name of a state ("closed", "open", ...), or "unknown" for any
 * other value; a static string. Never fails or blocks; wait-free; any thread. */
SX_API const char *sx_circuit_state_name(int state);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_CIRCUIT_H */
