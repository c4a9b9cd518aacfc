/*
 * Keyed registries (strix/registry.h): a hash table of entries, read without a lock inside the
 * pool's epoch sections, written by one thread at a time under reg->lock.
 *
 * reg->lock is the registry's cold-path lock: it serialises every change of the table (listing
 * an entry, the table's growth and rebuilds, eviction, removal) and the writer-only fields (the
 * sweep's ring, the counters). A new key's entry and guard are allocated before the lock is
 * taken, and the entries evicted under it are retired after it is released (GRAVE_BATCH at a
 * time: until then they wait, unlisted, in reg->grave; sx_registry_sweep and destroy take all
 * of them). The table allows one writer with any number of concurrent readers; the lock is that
 * one writer. A get that finds its key's entry never takes it.
 *
 * An entry's count, refs, is 1 for the table while the entry is listed plus 1 per reference
 * handed out. A reader inside an epoch section finds the entry and takes a reference with a CAS
 * that never raises a count of 0 (take). Eviction, under the lock, CASes refs from 1 to 0: it
 * succeeds only when no reference is out, and afterwards no reader can take one (a reader that
 * meets 0 goes to the slow path, which waits for the lock and then finds the key gone). The
 * entry is then unlisted and retired to the epoch domain: readers that found it in the table
 * before the unlink are inside sections that the retirement waits for. If the guard turns out
 * busy (its kind's idle test), refs goes back to 1 with a plain store: nobody else can change a
 * count of 0. sx_registry_remove unlists an entry whatever its count and drops the table's
 * unit; whoever brings the count to 0 (the remover or the last put) retires it.
 *
 * Rate limiters have a second way in: the keyed limiter admits inside an epoch section without
 * taking a reference (sx__registry_peek). For them the idle test seals the limiter (its state
 * word CASed from a full bucket to a mark no admission passes, ratelimit.c), after the count
 * went to 0: an admission racing with the eviction either lands first (the seal's CAS fails,
 * the entry stays) or meets the seal and looks the key up again, so a key never gets a fresh
 * bucket while its old one admits: never more than burst at once.
 *
 * The table: open addressing with linear probing over 8-byte slots, each an entry's address
 * (entries are line-aligned) and 6 bits of its key's hash, so that a probe dereferences no entry
 * but the one it finds, bar one in 64 of the others: a lookup reads one line of slots (rarely
 * two) and the entry's one line (an entry is 64 bytes; a get and a put touch its first 24).
 * (Not ck_hs: without pointer packing, which Debian's Concurrency Kit is built without, ck_hs
 * keeps no hash bits in its slots and compares every probed object through its pointer, a
 * cache miss per collision.) A slot goes from empty to an entry (stored after the
 * entry's fields, which the store publishes) to a tombstone, and is never reused in that table.
 * When live keys and tombstones would pass half the slots, the writer copies the live entries
 * into a new table (a quarter full at most, at least TAB_MIN slots), publishes it and retires
 * the old one to the epoch domain: readers still probing the old table are inside sections that
 * the retirement waits for, and at worst miss a key made since (the slow path finds it under
 * the lock) or find an entry unlisted since: an evicted one's count of 0 sends them to the slow
 * path too, and a removed one is what a get that overlaps the removal may return in any case.
 * Every retirement's callback frees memory and ends a guard and nothing else, so it may run
 * after the registry is gone.
 *
 * Eviction order: CLOCK. A get or a put sets its entry's used flag (a store only when it was
 * clear); the hand walks the ring of entries (writer-only links; a new entry goes just behind the
 * hand), clearing used flags and stamping `seen` with the clock, and evicts entries it finds unused
 * when the bound needs room or when idle_ns has passed since `seen`. A new key walks a few steps
 * (more while over the bound); sx_registry_sweep walks once round.
 *
 * Thread-sanitizer builds: the sanitizer does not see fences; an entry and a table are released
 * (SX__TSAN_RELEASE) before they are published and acquired after they are found, and slots are
 * written and read with atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_stack.h>

#include <strix/registry.h>

#include "guard/guard.h"

/* 64 bytes, one line in the allocator's 64-byte class: a get and a put touch the first 24. */
struct sx_registry_ref {
	SX__ALIGNED uint64_t key; /* written once, before the entry is published */
	uint32_t refs;            /* 1 for the table while listed, + 1 per reference; 0: going */
	uint8_t used;             /* set by gets, cleared by the sweep */
	uint8_t kind;
	void *guard;
	struct sx_registry *reg;
	union {
		/* Writer, while listed: the sweep's ring, and when the sweep last found the entry
		 * used (or it was made). */
		struct {
			struct sx_registry_ref *prev, *next;
			uint64_t seen;
		};
		/* Once unlisted (and unreferenced): its retirement, or its link in reg->orphans;
		 * chain: the entries retired with it (reg->grave's link until then). */
		struct {
			ck_epoch_entry_t ep;
			struct sx_registry_ref *chain;
		};
	};
};

typedef struct sx_registry_ref entry;

/* What one entry costs (the allocator's 16-byte classes). */
#define ENTRY_BYTES ((sizeof(entry) + 15) & ~(size_t)15)
_Static_assert(sizeof(entry) == SX__CACHELINE, "a registry entry is one cache line");

/* A slot: 0, empty; TOMB, its entry was unlisted; else the entry's address (entries are
 * line-aligned: 58 bits say where) with TAG_BITS of its key's hash above, so that a probe
 * dereferences an entry only when the tags match: the key's own, and one in 64 of the others. */
typedef uint64_t slot;

#define TAG_BITS 6u
#define TOMB ((slot)1)

typedef struct table {
	ck_epoch_entry_t ep;      /* its retirement, once replaced */
	uint64_t mask;            /* slots - 1 */
	unsigned shift;           /* 64 - log2(slots): a hash's top bits index it */
	uint64_t filled;          /* writer: live slots and tombstones */
	size_t bytes;             /* the whole block */
	SX__ALIGNED slot s[];     /* eight to a line */
} table;

#define TAB_MIN 64u
/* Steps of the hand per new key: AGE_STEPS for ageing; while over the bound, up to two rounds
 * of the ring (CLOCK: the first may only clear marks), or ROOM_STEPS after a walk that found
 * nothing to evict (every entry busy), so that a registry of busy keys does not cost a walk of
 * the whole ring per new key. */
#define AGE_STEPS 4u
#define ROOM_STEPS 64u
/* Evicted entries are retired in batches of GRAVE_BATCH, with one epoch entry: a retirement
 * costs a full fence and a scan of the pool's epoch records, more than the eviction. */
#define GRAVE_BATCH 32u

struct sx_registry {
	/* Read by every get. */
	table *tab;
	sx_pool *pool;
	uint64_t seed;
	int kind;
	/* Read by the writer (and sx__registry_slow_ns). */
	sx_circuit_opts copts;
	sx_ratelimit_opts ropts;
	uint32_t permits;
	uint64_t slow_ns;
	size_t guard_bytes;
	uint64_t max_keys, max_bytes, idle_ns;
	sx_clock clock;

	/* Writer side, under lock (counters stored atomically for sx_registry_stats). */
	SX__ALIGNED pthread_mutex_t lock;
	entry *hand;
	uint64_t keys, bytes, table_bytes, created, evicted, removed;
	bool futile;              /* the last walk for room evicted nothing */
	entry *grave;             /* evicted, not retired yet (linked by chain) */
	unsigned ngrave;
	/* Entries whose last put found no epoch record to retire them on (its thread's first record
	 * could not be allocated): the writer retires them. */
	SX__ALIGNED ck_stack_t orphans;
};

/* ---- the table ------------------------------------------------------------------------------ */

/* The writer holding the lock's epoch record: where a replaced table is retired (set while the
 * lock is held). */
static __thread sx__tcache *w_tc;

static void set64(uint64_t *p, uint64_t v)
{
	ck_pr_store_64(p, v);
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64_C(0xc4ceb9fe1a85ec53);
	return k ^ (k >> 33);
}

/* A key's hash: one fold and one multiply (Fibonacci hashing; the table takes the top bits,
 * which depend on every bit of the folded key), seeded per registry. */
static inline uint64_t hash_of(const sx_registry *reg, uint64_t key)
{
	uint64_t x = key ^ reg->seed;

	return (x ^ (x >> 32)) * UINT64_C(0x9e3779b97f4a7c15);
}

static void tab_free(ck_epoch_entry_t *ep)
{
	table *t = SX_CONTAINER_OF(ep, table, ep);

	sx__dfree(t, t->bytes, SX__CACHELINE);
}

/* An empty table of `slots` slots (a power of two), counted in reg's bytes. NULL: no memory. */
static table *tab_new(sx_registry *reg, uint64_t slots)
{
	size_t bytes = sizeof(table) + slots * sizeof(slot);
	table *t;

	if (slots > (SIZE_MAX - sizeof(table)) / sizeof(slot) ||
	    (t = sx__zalloc(bytes, SX__CACHELINE)) == NULL)
		return NULL;
	t->mask = slots - 1;
	t->shift = 64u - (unsigned)__builtin_ctzll(slots);
	t->bytes = bytes;
	set64(&reg->table_bytes, reg->table_bytes + bytes);
	return t;
}

/* Drop t from reg's bytes and free it once no reader can be probing it. */
static void tab_retire(sx_registry *reg, table *t, sx__tcache *c)
{
	set64(&reg->table_bytes, reg->table_bytes - t->bytes);
	if (c != NULL)
		sx__epoch_retire(c, &t->ep, tab_free);
	else
		tab_free(&t->ep); /* destroy: no reader is left */
}

static inline uint64_t tag_of(uint64_t h)
{
	return (h >> 20) & ((1u << TAG_BITS) - 1); /* below the index's bits in any real table */
}

static inline slot pack(const entry *e, uint64_t h)
{
	return (uint64_t)(uintptr_t)e >> TAG_BITS | tag_of(h) << (64u - TAG_BITS);
}

static inline entry *unpack(slot v)
{
	return (entry *)(uintptr_t)(v << TAG_BITS);
}

/* key's entry in the table now (NULL: none; the entry may be going). Inside an epoch section, or
 * under the lock. Lock-free: probes stop at an empty slot, and at most half the slots are full. */
static inline entry *tab_find(const sx_registry *reg, uint64_t key, uint64_t h)
{
	const table *t = ck_pr_load_ptr(&reg->tab);
	uint64_t i, tag = tag_of(h);

	SX__TSAN_ACQUIRE(t);
	for (i = h >> t->shift;; i = (i + 1) & t->mask) {
		slot v = ck_pr_load_64(&t->s[i]);
		entry *e;

		if (v == 0)
			return NULL;
		if (v >> (64u - TAG_BITS) != tag || v == TOMB)
			continue;
		/* The entry's key, like every field, was written before the slot published it. */
		e = unpack(v);
		SX__TSAN_ACQUIRE(e);
		if (ck_pr_load_64(&e->key) == key)
			return e;
	}
}

/* Store e in t's first empty slot on h's path (writer; the key is not in t). */
static void tab_place(table *t, entry *e, uint64_t h)
{
	uint64_t i = h >> t->shift;

	while (t->s[i] != 0)
		i = (i + 1) & t->mask;
	ck_pr_fence_store(); /* the entry's fields before the slot */
	ck_pr_store_64(&t->s[i], pack(e, h));
	t->filled++;
}

/* Make room for one more slot: if live slots and tombstones would pass half of them, copy the
 * live entries into a fresh table of at least four slots per key, publish it and retire the old
 * one on c (writer, c not NULL). false: no memory (nothing changed). */
static bool tab_reserve(sx_registry *reg, sx__tcache *c)
{
	table *t = reg->tab, *n;
	uint64_t slots = TAB_MIN, i;

	if ((t->filled + 1) * 2 <= t->mask + 1)
		return true;
	while (slots < reg->keys * 4)
		slots *= 2;
	if ((n = tab_new(reg, slots)) == NULL)
		return false;
	for (i = 0; i <= t->mask; i++) {
		slot v = t->s[i];

		if (v != 0 && v != TOMB)
			tab_place(n, unpack(v), hash_of(reg, unpack(v)->key));
	}
	SX__TSAN_RELEASE(n);
	ck_pr_fence_store(); /* the new table's slots before the pointer that publishes it */
	ck_pr_store_ptr(&reg->tab, n);
	tab_retire(reg, t, c);
	return true;
}

/* Replace e's slot by a tombstone (writer; e is listed). */
static void tab_unlist(sx_registry *reg, entry *e)
{
	table *t = reg->tab;
	uint64_t h = hash_of(reg, e->key), i = h >> t->shift;
	slot v = pack(e, h);

	while (t->s[i] != v)
		i = (i + 1) & t->mask;
	ck_pr_store_64(&t->s[i], TOMB);
}

/* ---- guards ---------------------------------------------------------------------------------- */

static int guard_new(const sx_registry *reg, void **out)
{
	switch (reg->kind) {
	case SX_REGISTRY_CIRCUIT:
		return sx_circuit_create(&reg->copts, (sx_circuit **)out);
	case SX_REGISTRY_BULKHEAD:
		return sx_sem_create(reg->pool, reg->permits, (sx_sem **)out);
	default:
		return sx__ratelimit_create_keyed(&reg->ropts, (sx_ratelimit **)out);
	}
}

static void guard_free(int kind, void *g)
{
	switch (kind) {
	case SX_REGISTRY_CIRCUIT:
		sx_circuit_destroy(g);
		break;
	case SX_REGISTRY_BULKHEAD:
		sx_sem_destroy(g);
		break;
	default:
		sx_ratelimit_destroy(g);
		break;
	}
}

/* Whether e's guard is idle, so that evicting it loses nothing (see strix/registry.h); aged:
 * unused for idle_ns. Called with refs at 0 (no reference out). A limiter is sealed here. */
static bool guard_idle(const sx_registry *reg, entry *e, bool aged)
{
	sx_circuit_metrics m;

	switch (reg->kind) {
	case SX_REGISTRY_CIRCUIT:
		if (aged)
			return true;
		/* A snapshot only reports: no transition, no callback under the lock. */
		if (sx_circuit_snapshot(e->guard, &m) != 0)
			return false;
		return m.state != SX_CIRCUIT_OPEN && m.state != SX_CIRCUIT_HALF_OPEN &&
		    m.state != SX_CIRCUIT_FORCED_OPEN;
	case SX_REGISTRY_BULKHEAD:
		return sx_sem_in_use(e->guard) == 0 && sx_sem_waiting(e->guard) == 0;
	default:
		return sx__ratelimit_seal(e->guard);
	}
}

/* Free ep's entry and those chained to it. */
static void entry_free(ck_epoch_entry_t *ep)
{
	entry *e = SX_CONTAINER_OF(ep, entry, ep), *next;

	for (; e != NULL; e = next) {
		next = e->chain;
		guard_free(e->kind, e->guard);
		sx__dfree(e, sizeof(*e), SX__CACHELINE);
	}
}

/* e is unlisted and unreferenced: free it once no epoch section can still see it. */
static void retire(sx__tcache *c, entry *e)
{
	e->chain = NULL;
	if (c != NULL)
		sx__epoch_retire(c, &e->ep, entry_free);
	else
		ck_stack_push_upmc(&e->reg->orphans, &e->ep.stack_entry);
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void wlock(sx_registry *reg, sx__tcache *c)
{
	pthread_mutex_lock(&reg->lock);
	w_tc = c;
	if (c != NULL && CK_STACK_FIRST(&reg->orphans) != NULL) {
		ck_stack_entry_t *s = ck_stack_batch_pop_upmc(&reg->orphans), *next;

		for (; s != NULL; s = next) {
			next = CK_STACK_NEXT(s);
			retire(c, SX_CONTAINER_OF(s, entry, ep.stack_entry));
		}
	}
}

/* Unlock, then retire the evicted entries as one batch once GRAVE_BATCH of them wait (or all
 * of them: flush), if the caller has an epoch record: the epoch's bookkeeping and the frees it
 * may run stay out of the critical section. */
static void wunlock(sx_registry *reg, bool flush)
{
	sx__tcache *c = w_tc;
	entry *e = NULL;

	if (c != NULL && reg->grave != NULL && (flush || reg->ngrave >= GRAVE_BATCH)) {
		e = reg->grave;
		reg->grave = NULL;
		reg->ngrave = 0;
	}
	w_tc = NULL;
	pthread_mutex_unlock(&reg->lock);
	if (e != NULL)
		sx__epoch_retire(c, &e->ep, entry_free);
}

/* The time `seen` is stamped with; only ageing reads it, so without idle_ns the clock is not
 * read (0). */
static uint64_t clock_now(const sx_registry *reg)
{
	return reg->idle_ns != 0 ? reg->clock.now_ns(reg->clock.ctx) : 0;
}

/* Whether adding keys more keys of `bytes` bytes passes the bound. */
static bool over(const sx_registry *reg, uint64_t keys, uint64_t bytes)
{
	return (reg->max_keys != 0 && reg->keys + keys > reg->max_keys) ||
	    (reg->max_bytes != 0 && reg->bytes + reg->table_bytes + bytes > reg->max_bytes);
}

static void ring_insert(sx_registry *reg, entry *e)
{
	entry *h = reg->hand;

	if (h == NULL) {
		e->prev = e->next = e;
		reg->hand = e;
		return;
	}
	/* Just behind the hand: the sweep comes to it last. */
	e->next = h;
	e->prev = h->prev;
	h->prev->next = e;
	h->prev = e;
}

static void ring_remove(sx_registry *reg, entry *e)
{
	if (e->next == e) {
		reg->hand = NULL;
	} else {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		if (reg->hand == e)
			reg->hand = e->next;
	}
	e->prev = e->next = NULL;
}

/* Take e out of the table and the ring (under the lock). */
static void unlist(sx_registry *reg, entry *e)
{
	tab_unlist(reg, e);
	ring_remove(reg, e);
	set64(&reg->keys, reg->keys - 1);
	set64(&reg->bytes, reg->bytes - ENTRY_BYTES - reg->guard_bytes);
}

/* Evict e if nobody holds it and its guard is idle; true if it went. */
static bool evict(sx_registry *reg, entry *e, bool aged)
{
	if (!ck_pr_cas_32(&e->refs, 1, 0))
		return false;
	if (!guard_idle(reg, e, aged)) {
		ck_pr_store_32(&e->refs, 1); /* no one else changes a count of 0 */
		return false;
	}
	unlist(reg, e);
	set64(&reg->evicted, reg->evicted + 1);
	e->chain = reg->grave; /* retired by wunlock */
	reg->grave = e;
	reg->ngrave++;
	return true;
}

/* Move the hand up to `steps` entries (see the top). room: evict unused entries while adding
 * `keys` keys of `bytes` bytes would pass the bound. Returns the evictions. */
static unsigned walk(sx_registry *reg, uint64_t now, uint64_t steps, bool room,
    uint64_t keys, uint64_t bytes)
{
	unsigned evicted = 0;

	while (steps-- > 0 && reg->hand != NULL) {
		entry *e = reg->hand;
		bool pressure = room && over(reg, keys, bytes), aged;

		if (!pressure && reg->idle_ns == 0)
			break;
		reg->hand = e->next;
		if (ck_pr_load_8(&e->used)) {
			ck_pr_store_8(&e->used, 0);
			e->seen = now;
			continue;
		}
		aged = reg->idle_ns != 0 && now >= e->seen && now - e->seen >= reg->idle_ns;
		if ((aged || pressure) && evict(reg, e, aged))
			evicted++;
	}
	return evicted;
}

/* A new entry and its guard, made before the lock is taken (NULL: no memory). */
static entry *prepare(sx_registry *reg)
{
	entry *e = sx__zalloc(sizeof(*e), SX__CACHELINE);

	if (e == NULL)
		return NULL;
	if (guard_new(reg, &e->guard) != 0) { /* -ENOMEM: the options were checked at create */
		sx__dfree(e, sizeof(*e), SX__CACHELINE);
		return NULL;
	}
	e->kind = (uint8_t)reg->kind;
	e->reg = reg;
	return e;
}

static void discard(entry *e)
{
	guard_free(e->kind, e->guard);
	sx__dfree(e, sizeof(*e), SX__CACHELINE);
}

/* List e, prepared, as key's entry with one reference for the caller (under the lock, with an
 * epoch record; key has none). Makes room first. 0, or -ENOMEM (the table could not grow; e is
 * the caller's). */
static int install(sx_registry *reg, entry *e, uint64_t key, uint64_t h)
{
	uint64_t now = clock_now(reg), bytes = ENTRY_BYTES + reg->guard_bytes;

	if (over(reg, 1, bytes))
		reg->futile = walk(reg, now, reg->futile ? ROOM_STEPS : 2 * reg->keys + 1, true,
		    1, bytes) == 0;
	else
		(void)walk(reg, now, AGE_STEPS, true, 1, bytes);
	if (!tab_reserve(reg, w_tc))
		return -ENOMEM;
	e->refs = 2;
	e->seen = now;
	ck_pr_store_64(&e->key, key); /* readers load it atomically */
	SX__TSAN_RELEASE(e);
	tab_place(reg->tab, e, h); /* publishes e, after its fields */
	ring_insert(reg, e);
	set64(&reg->keys, reg->keys + 1);
	set64(&reg->bytes, reg->bytes + bytes);
	set64(&reg->created, reg->created + 1);
	/* The put may have grown the table past the bound in bytes: make that room too. */
	if (over(reg, 0, 0) && !reg->futile)
		(void)walk(reg, now, 2 * reg->keys, true, 0, 0);
	return 0;
}

/* ---- readers --------------------------------------------------------------------------------- */

/* A reference to e, unless it is going (count 0). Inside an epoch section. */
static inline bool take(entry *e)
{
	uint32_t n;

	SX__TSAN_ACQUIRE(e);
	n = ck_pr_load_32(&e->refs);
	do {
		if (SX__UNLIKELY(n == 0))
			return false;
	} while (!ck_pr_cas_32_value(&e->refs, n, n + 1, &n));
	if (!ck_pr_load_8(&e->used))
		ck_pr_store_8(&e->used, 1);
	return true;
}

static __attribute__((noinline)) int get_slow(sx_registry *reg, sx__tcache *c, uint64_t key,
    uint64_t h, entry **out)
{
	entry *e, *spare = prepare(reg); /* outside the lock; NULL: the key may exist after all */
	int rc = 0;

	wlock(reg, c);
	e = tab_find(reg, key, h);
	if (e != NULL) {
		/* Listed entries have a count of at least 1 while the lock is held. */
		ck_pr_inc_32(&e->refs);
		ck_pr_store_8(&e->used, 1);
		*out = e;
	} else if (spare == NULL) {
		rc = -ENOMEM;
	} else if ((rc = install(reg, spare, key, h)) == 0) {
		*out = spare;
		spare = NULL;
	}
	wunlock(reg, false);
	if (spare != NULL)
		discard(spare); /* another thread made the key first, or the table could not grow */
	return rc;
}

int sx_registry_get(sx_registry *reg, uint64_t key, sx_registry_ref **ref)
{
	uint64_t h;
	sx__tcache *c;
	entry *e;

	if (SX__UNLIKELY(reg == NULL || ref == NULL))
		return -EINVAL;
	c = sx__tcache_get(reg->pool);
	if (SX__UNLIKELY(c == NULL))
		return -ENOMEM;
	h = hash_of(reg, key);
	sx__epoch_begin(c);
	e = tab_find(reg, key, h);
	if (SX__LIKELY(e != NULL) && SX__LIKELY(take(e))) {
		sx__epoch_end(c);
		*ref = e;
		return 0;
	}
	sx__epoch_end(c);
	return get_slow(reg, c, key, h, ref);
}

void *sx_registry_guard(const sx_registry_ref *ref)
{
	return ref != NULL ? ref->guard : NULL;
}

void sx_registry_put(sx_registry_ref *e)
{
	if (e == NULL)
		return;
	/* Holding a reference is using the key: its idle time starts at the put. */
	if (!ck_pr_load_8(&e->used))
		ck_pr_store_8(&e->used, 1);
	if (ck_pr_faa_32(&e->refs, (uint32_t)-1) == 1)
		retire(sx__tcache_get(e->reg->pool), e); /* unlisted meanwhile: the last one out */
}

void *sx__registry_peek(sx_registry *reg, uint64_t key)
{
	entry *e = tab_find(reg, key, hash_of(reg, key));

	if (e == NULL)
		return NULL;
	SX__TSAN_ACQUIRE(e);
	if (ck_pr_load_32(&e->refs) == 0)
		return NULL; /* going: the caller's slow path waits for it to be gone */
	if (!ck_pr_load_8(&e->used))
		ck_pr_store_8(&e->used, 1);
	return e->guard;
}

sx__tcache *sx__registry_cache(const sx_registry *reg)
{
	return sx__tcache_get(reg->pool);
}

int sx__registry_kind(const sx_registry *reg)
{
	return reg->kind;
}

uint64_t sx__registry_slow_ns(const sx_registry *reg)
{
	return reg->slow_ns;
}

/* ---- the rest of the API --------------------------------------------------------------------- */

int sx_registry_remove(sx_registry *reg, uint64_t key)
{
	sx__tcache *c;
	entry *e;
	int rc = 0;

	if (reg == NULL)
		return -EINVAL;
	c = sx__tcache_get(reg->pool);
	wlock(reg, c);
	e = tab_find(reg, key, hash_of(reg, key));
	if (e == NULL) {
		rc = -ENOENT;
	} else {
		unlist(reg, e);
		set64(&reg->removed, reg->removed + 1);
		if (ck_pr_faa_32(&e->refs, (uint32_t)-1) == 1)
			retire(c, e);
	}
	wunlock(reg, false);
	return rc;
}

int sx_registry_sweep(sx_registry *reg)
{
	sx__tcache *c;
	unsigned n;

	if (reg == NULL)
		return -EINVAL;
	c = sx__tcache_get(reg->pool);
	wlock(reg, c);
	n = walk(reg, clock_now(reg), reg->keys, true, 0, 0);
	wunlock(reg, true); /* what it evicted, and what waited for a batch */
	if (c != NULL)
		(void)sx__epoch_poll(c);
	return (int)(n > (unsigned)INT32_MAX ? INT32_MAX : n);
}

int sx_registry_stats(const sx_registry *reg, sx_registry_counters *out)
{
	if (reg == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->keys = ck_pr_load_64(&reg->keys);
	out->table_bytes = ck_pr_load_64(&reg->table_bytes);
	out->bytes = ck_pr_load_64(&reg->bytes) + out->table_bytes;
	out->created = ck_pr_load_64(&reg->created);
	out->evicted = ck_pr_load_64(&reg->evicted);
	out->removed = ck_pr_load_64(&reg->removed);
	return 0;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

/* The shared pool of registries made without one: its epoch domain is all they use of it.
 * shared_lock is a cold-path lock: it orders the pool's one creation. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static sx_pool *shared;

static int shared_pool(sx_pool **out)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = ck_pr_load_ptr(&shared);
	int rc = 0;

	if (p == NULL) {
		pthread_mutex_lock(&shared_lock);
		if ((p = shared) == NULL) {
			o.workers = 1;
			if ((rc = sx_pool_create(&o, &p)) == 0)
				ck_pr_store_ptr(&shared, p);
		}
		pthread_mutex_unlock(&shared_lock);
	}
	*out = p;
	return rc;
}

/* Check o's kind options by making one guard from them; its size is every key's. */
static int check_kind(sx_registry *reg, const sx_registry_opts *o)
{
	void *g;
	int rc;

	switch (o->kind) {
	case SX_REGISTRY_CIRCUIT:
		if (o->circuit != NULL) {
			reg->copts = *o->circuit;
		} else {
			sx_circuit_opts d = SX_CIRCUIT_OPTS_INIT;

			reg->copts = d;
		}
		break;
	case SX_REGISTRY_BULKHEAD:
		if (o->permits == 0 || o->permits > SX_SEM_MAX_CAPACITY)
			return -EINVAL;
		reg->permits = o->permits;
		break;
	case SX_REGISTRY_RATELIMIT:
		if (o->ratelimit == NULL)
			return -EINVAL;
		reg->ropts = *o->ratelimit;
		break;
	default:
		return -EINVAL;
	}
	reg->kind = o->kind;
	if ((rc = guard_new(reg, &g)) != 0)
		return rc;
	switch (o->kind) {
	case SX_REGISTRY_CIRCUIT:
		reg->guard_bytes = sx__circuit_bytes(g);
		reg->slow_ns = sx__circuit_slow_ns(g);
		break;
	case SX_REGISTRY_BULKHEAD:
		reg->guard_bytes = sx__sem_bytes();
		break;
	default:
		reg->guard_bytes = sx__ratelimit_bytes();
		break;
	}
	guard_free(o->kind, g);
	return 0;
}

int sx_registry_create(sx_pool *pool, const sx_registry_opts *o, sx_registry **out)
{
	sx_registry *reg;
	int rc;

	if (o == NULL || out == NULL || o->idle_ns < 0 || !SX__RESERVED_CLEAR(o) ||
	    (o->clock != NULL && o->clock->now_ns == NULL))
		return -EINVAL;
	reg = sx__zalloc(sizeof(*reg), SX__CACHELINE);
	if (reg == NULL)
		return -ENOMEM;
	if (pool == NULL && (rc = shared_pool(&pool)) != 0)
		goto fail;
	reg->pool = pool;
	if ((rc = check_kind(reg, o)) != 0)
		goto fail;
	reg->max_keys = o->max_keys;
	reg->max_bytes = o->max_bytes;
	reg->idle_ns = (uint64_t)o->idle_ns;
	reg->clock = o->clock != NULL ? *o->clock : sx_clock_monotonic;
	reg->seed = mix((uintptr_t)reg ^ sx__now_ns());
	if ((reg->tab = tab_new(reg, TAB_MIN)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = pthread_mutex_init(&reg->lock, NULL)) != 0) {
		tab_retire(reg, reg->tab, NULL);
		rc = -rc;
		goto fail;
	}
	*out = reg;
	return 0;
fail:
	sx__dfree(reg, sizeof(*reg), SX__CACHELINE);
	return rc;
}

void sx_registry_destroy(sx_registry *reg)
{
	ck_stack_entry_t *s, *next;

	if (reg == NULL)
		return;
	/* No reader is left (the contract): everything goes at once. */
	while (reg->hand != NULL) {
		entry *e = reg->hand;

		ring_remove(reg, e);
		e->chain = NULL;
		entry_free(&e->ep);
	}
	if (reg->grave != NULL)
		entry_free(&reg->grave->ep);
	for (s = ck_stack_batch_pop_upmc(&reg->orphans); s != NULL; s = next) {
		next = CK_STACK_NEXT(s);
		entry_free(SX_CONTAINER_OF(s, ck_epoch_entry_t, stack_entry));
	}
	tab_retire(reg, reg->tab, NULL);
	pthread_mutex_destroy(&reg->lock);
	sx__dfree(reg, sizeof(*reg), SX__CACHELINE);
}
