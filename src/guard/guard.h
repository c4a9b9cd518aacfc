/*
 * guard: admission and composition (sem.c, ratelimit.c, circuit.c, pipeline.c, group.c); the
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
struct sx_circuit;
struct sx_chaos;
int sx__chaos_delay(struct sx_chaos *ch, int64_t ns, sx_breaker *stop);
int sx__ratelimit_try_mono(struct sx_ratelimit *rl, uint32_t n, uint64_t mono_now);
uint64_t sx__circuit_slow_ns(const struct sx_circuit *c);

#endif /* STRIX_SRC_GUARD_H */
