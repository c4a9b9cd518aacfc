/*
 * guard: admission and composition (sem.c, ratelimit.c, circuit.c, registry.c, pipeline.c,
 * group.c); the
 * internals the policy pipeline reads from the limiter and the circuit. Includes flow (and
 * cancel, time, exec, base through it). Nothing here is public API.
 */
#ifndef STRIX_SRC_GUARD_H
#define STRIX_SRC_GUARD_H

#include "flow/flow.h"

/* ratelimit.c: sx_ratelimit_try with the CLOCK_MONOTONIC time the caller has already read (used
 * only if rl runs on that clock). circuit.c: the circuit's slow-call threshold (0: none). chaos.c:
 * an injected delay on its clock, cut short by the call's breaker (its code; 0 after the delay). */
struct sx_ratelimit;
struct sx_ratelimit_opts;
struct sx_circuit;
struct sx_chaos;
int sx__chaos_delay(struct sx_chaos *ch, int64_t ns, sx_breaker *stop);
struct sx_registry;
int sx__ratelimit_try_mono(struct sx_ratelimit *rl, uint32_t n, uint64_t mono_now);
uint64_t sx__circuit_slow_ns(const struct sx_circuit *c);

/* The bytes a guard holds, for the registry's bound: a circuit (its stripes included), any
 * semaphore, any limiter. */
size_t sx__circuit_bytes(const struct sx_circuit *c);
size_t sx__sem_bytes(void);
size_t sx__ratelimit_bytes(void);
/* ratelimit.c, for the registry: a keyed limiter's per-key limiter, as sx_ratelimit_create makes
 * but without counters of its own (sx__ratelimit_bytes is its size). */
int sx__ratelimit_create_keyed(const struct sx_ratelimit_opts *opts, struct sx_ratelimit **out);

/* ratelimit.c, for the registry: seal rl if its bucket is full at its clock's now (its state is
 * then a fresh limiter's): true, and every later event on rl is refused as LOST by the keyed
 * limiter's own admission (sx__ratelimit_try_sealable); false (an event is due or was admitted
 * meanwhile: nothing changed). The registry seals a limiter only once no reference to it is
 * held, so only keyed admissions inside an epoch section can still meet it. */
bool sx__ratelimit_seal(struct sx_ratelimit *rl);

/* registry.c, for the keyed limiter and the pipeline's keyed layers. */
/* The calling thread's record in reg's pool (NULL: its first record could not be allocated). */
sx__tcache *sx__registry_cache(const struct sx_registry *reg);
/* key's guard, or NULL if key has no live entry; inside an epoch section of c's (the caller's
 * sx__epoch_begin on sx__registry_cache's record). No reference is taken: the guard may be
 * evicted once the section ends. Marks the entry used. Lock-free; allocation-free. */
void *sx__registry_peek(struct sx_registry *reg, uint64_t key);
/* reg's kind (enum sx_registry_kind) and, for circuits, the slow-call threshold (0: none). */
int sx__registry_kind(const struct sx_registry *reg);
uint64_t sx__registry_slow_ns(const struct sx_registry *reg);

/* hedge.c, for the pipeline's hedge layer: the policy's pool (its tasks and timers), its
 * max_hedges; its fixed delay (0: it learns the delay from samples, sx__hedge_sample: a first
 * attempt's latency); whether a success deposits into a budget; its count of calls (to add to
 * atomically); hedge k asking the budget (0, counted and sent as SX_EVENT_HEDGE; SX_EREJECTED,
 * counted and sent as refused); a call that succeeded (the budget's deposit unless no_deposit;
 * a hedge's win counted if by_hedge). Never block; lock-free; any thread. */
struct sx_hedge;
struct sx_pool;
struct sx_pool *sx__hedge_pool(const struct sx_hedge *h);
unsigned sx__hedge_max(const struct sx_hedge *h);
int64_t sx__hedge_fixed_ns(const struct sx_hedge *h);
bool sx__hedge_deposits(const struct sx_hedge *h);
/* The hedge's counters (base's striped sets), by these slots; the pipeline counts its calls. */
enum { SX__HEDGE_CALLS, SX__HEDGE_HEDGES, SX__HEDGE_REFUSED, SX__HEDGE_WINS };
struct sx__counters *sx__hedge_stats(struct sx_hedge *h);
void sx__hedge_sample(struct sx_hedge *h, uint64_t ns);
int sx__hedge_admit(struct sx_hedge *h, unsigned k);
void sx__hedge_succeeded(struct sx_hedge *h, bool by_hedge);

#endif /* STRIX_SRC_GUARD_H */
