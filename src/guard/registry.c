/*
 * Keyed registries (strix/registry.h): a ck_hs set of entries, read without a lock inside the
 * pool's epoch sections, written by one thread at a time under reg->lock.
 *
 * reg->lock is the registry's cold-path lock: it serialises every change of the set (listing an
 * entry, the set's growth and rebuilds, eviction, removal) and the writer-only fields (the sweep's
 * ring, the counters). A new key's entry and guard are allocated before the lock is taken, and the
 * entries evicted under it are retired after it is released. ck_hs allows one writer with any
 * number of concurrent readers (CK_HS_MODE_SPMC); the lock is that one writer. A get that finds its
 * key's entry never takes it.
 *
 * An entry's count, refs, is 1 for the table while the entry is listed plus 1 per reference
 * handed out. A reader inside an epoch section finds the entry and takes a reference with a CAS
 * that never raises a count of 0 (take). Eviction, under the lock, CASes refs from 1 to 0: it
 * succeeds only when no reference is out, and afterwards no reader can take one (a reader that
 * meets 0 goes to the slow path, which waits for the lock and then finds the key gone). The
 * entry is then unlisted and retired to the epoch domain: readers that found it in the set
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
 * Tables: ck_hs allocates its maps through hs_alloc; each map carries an epoch entry in a
 * header, and a map ck_hs replaces (growth, rebuild) is retired to the epoch domain by the
 * writer, whose record w_tc names (set while the lock is held). Every retirement's callback
 * frees memory and ends a guard and nothing else, so it may run after the registry is gone.
 *
 * Eviction order: CLOCK. A get or a put sets its entry's used flag (a store only when it was
 * clear); the hand walks the ring of entries (writer-only links; a new entry goes just behind the
 * hand), clearing used flags and stamping `seen` with the clock, and evicts entries it finds unused
 * when the bound needs room or when idle_ns has passed since `seen`. A new key walks a few steps
 * (more while over the bound); sx_registry_sweep walks once round.
 *
 * Thread-sanitizer builds: ck_hs lives in libck, which the sanitizer does not see; an entry is
 * released (SX__TSAN_RELEASE) before it is published and acquired after it is found, and its
 * key is written and read with atomics because ck_hs's compare reads it before that.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <ck_hs.h>
#include <ck_pr.h>
#include <ck_stack.h>

#include <strix/registry.h>

#include "guard/guard.h"

struct sx_registry_ref {
	uint64_t key;             /* first: the set's hash and compare read it (atomically) */
	uint32_t refs;            /* 1 for the table while listed, + 1 per reference; 0: going */
	uint8_t used;             /* set by gets, cleared by the sweep */
	uint8_t kind;
	void *guard;
	struct sx_registry *reg;
	uint64_t seen;            /* writer: when the sweep last found it used, or it was made */
	struct sx_registry_ref *prev, *next; /* writer: the sweep's ring */
	ck_epoch_entry_t ep;      /* its retirement; before that, its link in reg->orphans */
};

typedef struct sx_registry_ref entry;

/* What one entry costs (the allocator's 16-byte classes). */
#define ENTRY_BYTES ((sizeof(entry) + 15) & ~(size_t)15)
/* Steps of the hand per new key: AGE_STEPS for ageing; while over the bound, up to two rounds
 * of the ring (CLOCK: the first may only clear marks), or ROOM_STEPS after a walk that found
 * nothing to evict (every entry busy), so that a registry of busy keys does not cost a walk of
 * the whole ring per new key. */
#define AGE_STEPS 4u
#define ROOM_STEPS 64u

struct sx_registry {
	/* Read by every get. */
	ck_hs_t hs;
	sx_pool *pool;
	unsigned long seed;
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
	uint64_t dead;            /* removals since the set was last rebuilt (its tombstones) */
	bool futile;              /* the last walk for room evicted nothing */
	entry *grave;             /* evicted under the lock, retired after it (linked by next) */
	/* Entries whose last put found no epoch record to retire them on (its thread's first record
	 * could not be allocated): the writer retires them. */
	SX__ALIGNED ck_stack_t orphans;
};

/* ---- the set's memory ------------------------------------------------------------------------ */

typedef struct map_hdr {
	ck_epoch_entry_t ep;
	size_t bytes;             /* the whole block, header included */
} map_hdr;
#define MAP_HDR ((size_t)SX__CACHELINE)

/* The writer holding the lock, and its epoch record: whom the set's allocations are charged to
 * and where a replaced map is retired. */
static __thread sx_registry *w_reg;
static __thread sx__tcache *w_tc;

static void set64(uint64_t *p, uint64_t v)
{
	ck_pr_store_64(p, v);
}

static void *hs_malloc(size_t size)
{
	map_hdr *h = sx__zalloc(MAP_HDR + size, SX__CACHELINE);

	if (h == NULL)
		return NULL;
	h->bytes = MAP_HDR + size;
	if (w_reg != NULL)
		set64(&w_reg->table_bytes, w_reg->table_bytes + h->bytes);
	return (char *)h + MAP_HDR;
}

static void map_free(ck_epoch_entry_t *ep)
{
	map_hdr *h = SX_CONTAINER_OF(ep, map_hdr, ep);

	sx__dfree(h, h->bytes, SX__CACHELINE);
}

static void hs_free(void *p, size_t size, bool defer)
{
	map_hdr *h = (map_hdr *)((char *)p - MAP_HDR);

	(void)size;
	if (w_reg != NULL)
		set64(&w_reg->table_bytes, w_reg->table_bytes - h->bytes);
	if (defer && w_tc != NULL)
		sx__epoch_retire(w_tc, &h->ep, map_free);
	else
		map_free(&h->ep);
}

static struct ck_malloc hs_alloc = { .malloc = hs_malloc, .free = hs_free };

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64_C(0xc4ceb9fe1a85ec53);
	return k ^ (k >> 33);
}

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
	return (unsigned long)mix(ck_pr_load_64((const uint64_t *)obj) ^ seed);
}

/* An entry and a probe (a bare uint64_t key) both start with the key. */
static bool hs_cmp(const void *a, const void *b)
{
	return ck_pr_load_64((const uint64_t *)a) == ck_pr_load_64((const uint64_t *)b);
}

static inline unsigned long hash_of(const sx_registry *reg, uint64_t key)
{
	return (unsigned long)mix(key ^ reg->seed);
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
		return sx_ratelimit_create(&reg->ropts, (sx_ratelimit **)out);
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

static void entry_free(ck_epoch_entry_t *ep)
{
	entry *e = SX_CONTAINER_OF(ep, entry, ep);

	guard_free(e->kind, e->guard);
	sx__dfree(e, sizeof(*e), SX__SMALL_ALIGN);
}

/* e is unlisted and unreferenced: free it once no epoch section can still see it. */
static void retire(sx__tcache *c, entry *e)
{
	if (c != NULL)
		sx__epoch_retire(c, &e->ep, entry_free);
	else
		ck_stack_push_upmc(&e->reg->orphans, &e->ep.stack_entry);
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void wlock(sx_registry *reg, sx__tcache *c)
{
	pthread_mutex_lock(&reg->lock);
	w_reg = reg;
	w_tc = c;
	if (c != NULL && CK_STACK_FIRST(&reg->orphans) != NULL) {
		ck_stack_entry_t *s = ck_stack_batch_pop_upmc(&reg->orphans), *next;

		for (; s != NULL; s = next) {
			next = CK_STACK_NEXT(s);
			retire(c, SX_CONTAINER_OF(s, entry, ep.stack_entry));
		}
	}
}

/* Unlock, then retire what was evicted meanwhile: the epoch's bookkeeping and the frees it
 * may run stay out of the critical section. */
static void wunlock(sx_registry *reg)
{
	sx__tcache *c = w_tc;
	entry *e = reg->grave, *next;

	reg->grave = NULL;
	w_reg = NULL;
	w_tc = NULL;
	pthread_mutex_unlock(&reg->lock);
	for (; e != NULL; e = next) {
		next = e->next;
		retire(c, e);
	}
}

static uint64_t clock_now(const sx_registry *reg)
{
	return reg->clock.now_ns(reg->clock.ctx);
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

/* Take e out of the set and the ring (under the lock). */
static void unlist(sx_registry *reg, entry *e)
{
	(void)ck_hs_remove(&reg->hs, hash_of(reg, e->key), e);
	ring_remove(reg, e);
	set64(&reg->keys, reg->keys - 1);
	set64(&reg->bytes, reg->bytes - ENTRY_BYTES - reg->guard_bytes);
	/* Removals leave tombstones, which lengthen probes until a put reuses them: rebuild the set
	 * (a copy, retired like a grown one) once they pass a quarter of the keys. */
	if (++reg->dead > reg->keys / 4 + 64) {
		if (ck_hs_rebuild(&reg->hs))
			reg->dead = 0;
	}
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
	e->next = reg->grave; /* retired by wunlock */
	reg->grave = e;
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
	entry *e = sx__zalloc(sizeof(*e), SX__SMALL_ALIGN);

	if (e == NULL)
		return NULL;
	if (guard_new(reg, &e->guard) != 0) { /* -ENOMEM: the options were checked at create */
		sx__dfree(e, sizeof(*e), SX__SMALL_ALIGN);
		return NULL;
	}
	e->kind = (uint8_t)reg->kind;
	e->reg = reg;
	return e;
}

static void discard(entry *e)
{
	guard_free(e->kind, e->guard);
	sx__dfree(e, sizeof(*e), SX__SMALL_ALIGN);
}

/* List e, prepared, as key's entry with one reference for the caller (under the lock; key has
 * none). Makes room first. 0, or -ENOMEM (the set could not take it; e is the caller's). */
static int install(sx_registry *reg, entry *e, uint64_t key, unsigned long h)
{
	uint64_t now = clock_now(reg), bytes = ENTRY_BYTES + reg->guard_bytes;

	if (over(reg, 1, bytes))
		reg->futile = walk(reg, now, reg->futile ? ROOM_STEPS : 2 * reg->keys + 1, true,
		    1, bytes) == 0;
	else
		(void)walk(reg, now, AGE_STEPS, true, 1, bytes);
	e->refs = 2;
	e->seen = now;
	ck_pr_store_64(&e->key, key);
	SX__TSAN_RELEASE(e);
	ck_pr_fence_store(); /* the entry before the slot that publishes it */
	if (!ck_hs_put(&reg->hs, h, e))
		return -ENOMEM;
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
    unsigned long h, entry **out)
{
	entry *e, *spare = prepare(reg); /* outside the lock; NULL: the key may exist after all */
	int rc = 0;

	wlock(reg, c);
	e = ck_hs_get(&reg->hs, h, &key);
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
	wunlock(reg);
	if (spare != NULL)
		discard(spare); /* another thread made the key first, or the set refused it */
	return rc;
}

int sx_registry_get(sx_registry *reg, uint64_t key, sx_registry_ref **ref)
{
	unsigned long h;
	sx__tcache *c;
	entry *e;

	if (SX__UNLIKELY(reg == NULL || ref == NULL))
		return -EINVAL;
	c = sx__tcache_get(reg->pool);
	if (SX__UNLIKELY(c == NULL))
		return -ENOMEM;
	h = hash_of(reg, key);
	sx__epoch_begin(c);
	e = ck_hs_get(&reg->hs, h, &key);
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
	entry *e = ck_hs_get(&reg->hs, hash_of(reg, key), &key);

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
	e = ck_hs_get(&reg->hs, hash_of(reg, key), &key);
	if (e == NULL) {
		rc = -ENOENT;
	} else {
		unlist(reg, e);
		set64(&reg->removed, reg->removed + 1);
		if (ck_pr_faa_32(&e->refs, (uint32_t)-1) == 1)
			retire(c, e);
	}
	wunlock(reg);
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
	wunlock(reg);
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
	reg->seed = (unsigned long)mix((uintptr_t)reg ^ sx__now_ns());
	if ((rc = pthread_mutex_init(&reg->lock, NULL)) != 0) {
		rc = -rc;
		goto fail;
	}
	w_reg = reg;
	w_tc = NULL;
	if (!ck_hs_init(&reg->hs, CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT, hs_hash, hs_cmp, &hs_alloc,
	    64, reg->seed)) {
		w_reg = NULL;
		pthread_mutex_destroy(&reg->lock);
		rc = -ENOMEM;
		goto fail;
	}
	w_reg = NULL;
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
		entry_free(&e->ep);
	}
	for (s = ck_stack_batch_pop_upmc(&reg->orphans); s != NULL; s = next) {
		next = CK_STACK_NEXT(s);
		entry_free(SX_CONTAINER_OF(s, ck_epoch_entry_t, stack_entry));
	}
	w_reg = NULL;
	w_tc = NULL;
	ck_hs_destroy(&reg->hs);
	pthread_mutex_destroy(&reg->lock);
	sx__dfree(reg, sizeof(*reg), SX__CACHELINE);
}
