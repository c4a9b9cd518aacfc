/**
 * @file
 * <strix/registry.h>: the declarations of the keyed registries module (group strix_registry).
 *
 * @defgroup strix_registry Keyed registries
 * @ingroup strix
 *
 * strix keyed registries - one guard per key (a client, a route, an address): a circuit
 * breaker, a bulkhead or a rate limiter made on first use and dropped when idle.
 *
 * A registry holds guards of one kind, all made from the same options: SX_REGISTRY_CIRCUIT
 * (an sx_circuit per key), SX_REGISTRY_BULKHEAD (an sx_sem of `permits` per key) or
 * SX_REGISTRY_RATELIMIT (an sx_ratelimit per key). sx_registry_get returns a reference to the
 * key's guard, making it first if the key has none; sx_registry_put gives the reference back.
 * The guard stays valid while the reference is held, whatever happens to the key meanwhile.
 *
 * @code
 *     sx_registry_ref *ref;
 *     if (sx_registry_get(reg, client_id, &ref) == 0) {
 *             sx_circuit *c = sx_registry_guard(ref);
 *             ... sx_circuit_acquire(c, &permit), the call, sx_circuit_release ...
 *             sx_registry_put(ref);
 *     }
 * @endcode
 *
 * Keys live in a hash table of entries (open addressing, one writer, any number of readers);
 * finding a key that has an entry takes no lock and allocates nothing: an epoch section of the
 * registry's pool (its memory reclamation domain), a probe of the table's slots (which hold
 * hash bits beside each entry's address) and one CAS on the entry's reference count. Making an
 * entry, growing the table, evicting and removing are serialised by one lock per registry (a
 * cold path: it is taken only when a key has no entry). The table grows as keys come, without a
 * fixed size; replaced tables and evicted entries are freed through the pool's epoch domain
 * once no reader can still see them, and an entry only after its last reference was put.
 *
 * Eviction. An entry is evicted only when no reference to it is held and its guard is idle (a
 * bulkhead with no permit out or waiter, a circuit that is not OPEN, HALF_OPEN or FORCED_OPEN, a
 * rate limiter whose bucket is full), so an evicted key is remade exactly as it was: a circuit
 * closed with an empty window, a bulkhead with every permit free, a full bucket. (A circuit that
 * has been idle for idle_ns is evicted in any state.) The bound (max_keys, max_bytes) is a
 * target: when a new key would pass it, the registry first evicts idle entries, least recently
 * used first (a CLOCK sweep: each get and put marks its entry used, a sweep clears the mark and
 * evicts only unmarked entries). When nothing is idle the key is made anyway and the registry
 * holds more than the bound until entries become idle: the bound never refuses a key. With
 * idle_ns, entries unused that long are evicted too, by the incremental sweep each new key runs
 * and by sx_registry_sweep (call it from a timer to age a registry that gets no new keys). A key
 * is never evicted before idle_ns has passed since its last get or put, unless the bound needs
 * room.
 *
 * Memory per key: one entry (64 bytes: key, count, guard, the sweep's links, which the epoch
 * record reuses once the entry is unlisted) and 16 to 32 bytes of table (8-byte slots, a quarter
 * to a half of them in use, tombstones of evicted or removed keys included), plus the guard
 * (sx_registry_stats reports the bytes in use).
 *
 * Lifetime: the registry owns its guards. Guards never outlive sx_registry_destroy; every
 * reference must be put before it.
 * @{
 */
#ifndef STRIX_REGISTRY_H
#define STRIX_REGISTRY_H

#include <stdint.h>

#include <strix/circuit.h>
#include <strix/error.h>
#include <strix/pool.h>
#include <strix/ratelimit.h>
#include <strix/sem.h>
#include <strix/timer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A keyed registry (opaque): sx_registry_create makes one. */
typedef struct sx_registry sx_registry;
/** A held reference to one key's guard (opaque): sx_registry_get hands it out. */
typedef struct sx_registry_ref sx_registry_ref;

/** The kinds of guard a registry holds (sx_registry_opts.kind). */
enum sx_registry_kind {
	SX_REGISTRY_CIRCUIT = 1,     /**< an sx_circuit per key, made from opts.circuit */
	SX_REGISTRY_BULKHEAD = 2,    /**< an sx_sem of opts.permits per key (a bulkhead) */
	SX_REGISTRY_RATELIMIT = 3,   /**< an sx_ratelimit per key, made from opts.ratelimit */
};

/** The options of sx_registry_create. */
typedef struct sx_registry_opts {
	int kind;                             /**< enum sx_registry_kind */
	const sx_circuit_opts *circuit;       /**< CIRCUIT: every key's options, copied (the
	                                           pointers in it are borrowed); NULL: defaults */
	const sx_ratelimit_opts *ratelimit;   /**< RATELIMIT: every key's options, copied */
	uint32_t permits;                     /**< BULKHEAD: every key's capacity, >= 1 */
	uint64_t max_keys;                    /**< the bound in keys; 0: none */
	uint64_t max_bytes;                   /**< the bound in bytes (entries, guards, table);
	                                           0: none */
	int64_t idle_ns;                      /**< > 0: evict entries unused this long; 0: only
	                                           when the bound needs room */
	const sx_clock *clock;                /**< measures idle_ns; NULL: CLOCK_MONOTONIC */
	uint64_t reserved[4];        /**< zero: room for later fields (strix_error, "Growing structs") */
} sx_registry_opts;

/** A zero-filled sx_registry_opts (set kind and the kind's options). */
#if SX_DESIGNATED_INIT
#define SX_REGISTRY_OPTS_INIT { .kind = 0 }
#else
#define SX_REGISTRY_OPTS_INIT { 0, NULL, NULL, 0, 0, 0, 0, NULL, {} }
#endif

/** What sx_registry_stats reports. Counters are monotone; the rest is a snapshot. */
typedef struct sx_registry_counters {
	uint64_t keys;          /**< entries in the table */
	uint64_t bytes;         /**< entries, guards and table(s) not freed yet (the bound's measure) */
	uint64_t table_bytes;   /**< of which the table */
	uint64_t created;       /**< entries made */
	uint64_t evicted;       /**< entries evicted (idle) */
	uint64_t removed;       /**< entries removed by sx_registry_remove */
	uint64_t reserved[4];   /**< zero */
} sx_registry_counters;

/**
 * sx_registry_create - an empty registry whose readers use pool's epoch domain. pool NULL: the
 * library's shared pool (one worker thread, made on first use, never destroyed). A pool given
 * must outlive the registry. Each kind's options are checked by making one guard from them.
 * Returns 0; -EINVAL for NULL opts or out, an unknown kind, permits of 0 or above
 * SX_SEM_MAX_CAPACITY, a NULL ratelimit, options that sx_circuit_create or sx_ratelimit_create
 * refuses, a negative idle_ns, a clock without now_ns or reserved words set; -ENOMEM; the
 * shared pool's sx_pool_create error. Nothing is created on failure.
 * Cold path (allocates); never blocks; any thread.
 */
SX_API int sx_registry_create(sx_pool *pool, const sx_registry_opts *opts, sx_registry **out);

/**
 * sx_registry_destroy - end reg and every guard in it (NULL: no-op); never fails. No call on reg
 * may be in progress or follow, and every reference must have been put. Entries evicted earlier
 * may still be freed later, by the pool's epoch domain. Never blocks; any thread.
 */
SX_API void sx_registry_destroy(sx_registry *reg);

/**
 * sx_registry_get - a reference to key's guard in *ref, made if key has none (any 64-bit key).
 * Returns 0; -ENOMEM (key had no entry and none could be made, or the calling thread's first
 * epoch record could not be allocated; no reference is out, though idle entries may have been
 * evicted to make room); -EINVAL for NULL reg or ref.
 * A key with an entry: lock-free and allocation-free (an epoch section, a probe, one CAS on the
 * entry's count). A new key: takes the registry's writer lock (blocks while another thread makes,
 * evicts or removes an entry) and allocates; may evict idle entries (see the top).
 * Any thread, concurrently.
 */
SX_API int sx_registry_get(sx_registry *reg, uint64_t key, sx_registry_ref **ref);

/** sx_registry_guard - the guard ref refers to: sx_circuit *, sx_sem * or sx_ratelimit * by the
 * registry's kind; NULL for NULL ref. Valid until ref is put. Wait-free; any thread. */
SX_API void *sx_registry_guard(const sx_registry_ref *ref);

/**
 * sx_registry_put - give back a reference from sx_registry_get (NULL: no-op); never fails. The
 * entry of a key evicted or removed while it was held is freed here when the last reference
 * goes (through the epoch domain). Never blocks; lock-free; any thread (not necessarily the
 * getter's), before sx_registry_destroy.
 */
SX_API void sx_registry_put(sx_registry_ref *ref);

/**
 * sx_registry_remove - forget key now, idle or not: the next get makes a fresh guard; holders of
 * the old one keep a valid object until they put it (so the key may briefly have two guards).
 * Returns 0; -ENOENT (no entry); -EINVAL for NULL reg. Blocks on the writer lock; any thread.
 */
SX_API int sx_registry_remove(sx_registry *reg, uint64_t key);

/**
 * sx_registry_sweep - one full CLOCK sweep now: evicts the idle entries unused for idle_ns (and,
 * while the registry is over its bound, idle entries unused since the last sweep), and hands
 * every entry evicted so far to the pool's epoch domain to be freed (evictions are otherwise
 * freed in batches of a few dozen). Returns how many entries it evicted (>= 0); -EINVAL for
 * NULL reg. Blocks on the writer lock and runs in time linear in the keys; any thread.
 */
SX_API int sx_registry_sweep(sx_registry *reg);

/** sx_registry_stats - a snapshot of reg's counters in *out. Returns 0; -EINVAL for NULL reg or
 * out. Never blocks; wait-free; any thread. */
SX_API int sx_registry_stats(const sx_registry *reg, sx_registry_counters *out);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* STRIX_REGISTRY_H */
