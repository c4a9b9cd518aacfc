/*
 * Keyed registries: lookup and creation, references across eviction and removal, growth, the
 * memory bound, idle eviction on a virtual clock, each kind's idle test, bad input.
 */
#include <errno.h>
#include <string.h>

#include "../testutil.h"

#include <strix/circuit.h>
#include <strix/pool.h>
#include <strix/ratelimit.h>
#include <strix/registry.h>
#include <strix/sem.h>

#define MS 1000000ull
#define SEC (1000 * MS)

TU_POOL_FIXTURE(2)

static sx_registry *bulkheads(uint32_t permits, uint64_t max_keys, int64_t idle_ns)
{
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_registry *reg = NULL;

	o.kind = SX_REGISTRY_BULKHEAD;
	o.permits = permits;
	o.max_keys = max_keys;
	o.idle_ns = idle_ns;
	o.clock = &tu_vclock;
	assert_int_equal(sx_registry_create(pool, &o, &reg), 0);
	assert_non_null(reg);
	return reg;
}

static sx_registry_counters counters(const sx_registry *reg)
{
	sx_registry_counters c;

	assert_int_equal(sx_registry_stats(reg, &c), 0);
	return c;
}

/* get makes a key's guard once; later gets return the same one; each key has its own. */
static void test_get_makes_once_and_finds_again(void **state)
{
	sx_registry *reg = bulkheads(2, 0, 0);
	sx_registry_ref *a, *b, *c;

	(void)state;
	assert_int_equal(sx_registry_get(reg, 7, &a), 0);
	assert_int_equal(sx_registry_get(reg, 7, &b), 0);
	assert_int_equal(sx_registry_get(reg, 8, &c), 0);
	assert_ptr_equal(a, b);
	assert_ptr_equal(sx_registry_guard(a), sx_registry_guard(b));
	assert_ptr_not_equal(sx_registry_guard(a), sx_registry_guard(c));
	assert_int_equal(sx_sem_capacity(sx_registry_guard(a)), 2);
	/* State per key: key 7's permits do not touch key 8's. */
	assert_int_equal(sx_sem_try_acquire(sx_registry_guard(a), 2), 0);
	assert_int_equal(sx_sem_try_acquire(sx_registry_guard(b), 1), -EAGAIN);
	assert_int_equal(sx_sem_try_acquire(sx_registry_guard(c), 2), 0);
	assert_int_equal(sx_sem_release(sx_registry_guard(a), 2), 0);
	assert_int_equal(sx_sem_release(sx_registry_guard(c), 2), 0);
	assert_int_equal(counters(reg).keys, 2);
	assert_int_equal(counters(reg).created, 2);
	sx_registry_put(a);
	sx_registry_put(b);
	sx_registry_put(c);
	sx_registry_put(NULL);
	/* Any 64-bit key, 0 and UINT64_MAX included. */
	assert_int_equal(sx_registry_get(reg, 0, &a), 0);
	assert_int_equal(sx_registry_get(reg, UINT64_MAX, &b), 0);
	assert_ptr_not_equal(a, b);
	sx_registry_put(a);
	sx_registry_put(b);
	sx_registry_destroy(reg);
	sx_registry_destroy(NULL);
}

/* The set grows past any initial size; every key keeps its own guard. */
static void test_growth_keeps_every_key(void **state)
{
	enum { N = 20000 };
	sx_registry *reg = bulkheads(1, 0, 0);
	static void *guards[N];
	sx_registry_counters c;

	(void)state;
	for (uint64_t k = 0; k < N; k++) {
		sx_registry_ref *r;

		assert_int_equal(sx_registry_get(reg, k * 0x9e3779b97f4a7c15ull, &r), 0);
		guards[k] = sx_registry_guard(r);
		sx_registry_put(r);
	}
	c = counters(reg);
	assert_int_equal(c.keys, N);
	assert_int_equal(c.created, N);
	assert_true(c.table_bytes >= N * sizeof(void *));
	for (uint64_t k = 0; k < N; k++) {
		sx_registry_ref *r;

		assert_int_equal(sx_registry_get(reg, k * 0x9e3779b97f4a7c15ull, &r), 0);
		assert_ptr_equal(sx_registry_guard(r), guards[k]);
		sx_registry_put(r);
	}
	assert_int_equal(counters(reg).created, N);
	/* Memory per idle key: entry and table share within 128 bytes, plus the guard. */
	assert_true((c.bytes - (uint64_t)N * 64 /* at least the semaphore */) / N <= 128 + 192);
	sx_registry_destroy(reg);
}

/* The bound in keys: over it, idle keys go, least recently used first; held ones stay. */
static void test_max_keys_evicts_idle_lru(void **state)
{
	sx_registry *reg = bulkheads(1, 8, 0);
	sx_registry_ref *held, *r;
	sx_registry_counters c;
	void *g0;

	(void)state;
	assert_int_equal(sx_registry_get(reg, 0, &held), 0); /* held throughout */
	g0 = sx_registry_guard(held);
	for (uint64_t k = 1; k < 8; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
	}
	assert_int_equal(counters(reg).keys, 8);
	assert_int_equal(counters(reg).evicted, 0);
	/* Key 1 used again: keys 2.. are older. */
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	sx_registry_put(r);
	for (uint64_t k = 100; k < 140; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
		assert_true(counters(reg).keys <= 8);
	}
	c = counters(reg);
	assert_int_equal(c.keys, 8);
	assert_int_equal(c.created, 48);
	assert_int_equal(c.evicted, 40);
	/* The held key was never evicted: the same guard, not remade. */
	assert_int_equal(sx_registry_get(reg, 0, &r), 0);
	assert_ptr_equal(sx_registry_guard(r), g0);
	assert_int_equal(counters(reg).created, 48);
	sx_registry_put(r);
	sx_registry_put(held);
	sx_registry_destroy(reg);
}

/* A key whose guard is busy (a permit out) is not evicted even with no reference: the bound is
 * passed instead, and the key's state survives. */
static void test_busy_guard_is_kept_over_the_bound(void **state)
{
	sx_registry *reg = bulkheads(1, 2, 0);
	sx_registry_ref *r;
	sx_sem *s;

	(void)state;
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	s = sx_registry_guard(r);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0); /* a permit out past the reference */
	sx_registry_put(r);
	for (uint64_t k = 10; k < 20; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
	}
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	assert_ptr_equal(sx_registry_guard(r), s);
	assert_int_equal(sx_sem_in_use(s), 1);
	assert_int_equal(sx_sem_release(s, 1), 0);
	sx_registry_put(r);
	sx_registry_destroy(reg);
}

/* The bound in bytes works like the bound in keys. */
static void test_max_bytes_bounds_memory(void **state)
{
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_registry *reg;
	sx_registry_counters c;

	(void)state;
	o.kind = SX_REGISTRY_BULKHEAD;
	o.permits = 3;
	o.max_bytes = 64 * 1024;
	assert_int_equal(sx_registry_create(pool, &o, &reg), 0);
	for (uint64_t k = 0; k < 5000; k++) {
		sx_registry_ref *r;

		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
		assert_true(counters(reg).bytes <= 64 * 1024);
	}
	c = counters(reg);
	assert_true(c.keys > 50 && c.keys < 5000);
	assert_int_equal(c.created - c.evicted, c.keys);
	sx_registry_destroy(reg);
}

/* A reference held across an eviction attempt and across sx_registry_remove keeps a valid
 * guard; the entry is freed at the last put (ASan would see a use after free otherwise). */
static void test_reference_survives_remove(void **state)
{
	sx_registry *reg = bulkheads(2, 0, 0);
	sx_registry_ref *old, *again, *fresh;
	sx_sem *s;

	(void)state;
	assert_int_equal(sx_registry_get(reg, 5, &old), 0);
	assert_int_equal(sx_registry_get(reg, 5, &again), 0);
	s = sx_registry_guard(old);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_registry_remove(reg, 5), 0);
	assert_int_equal(sx_registry_remove(reg, 5), -ENOENT);
	assert_int_equal(counters(reg).keys, 0);
	assert_int_equal(counters(reg).removed, 1);
	/* A new get makes a fresh guard; the old one still works. */
	assert_int_equal(sx_registry_get(reg, 5, &fresh), 0);
	assert_ptr_not_equal(fresh, old);
	assert_int_equal(sx_sem_in_use(sx_registry_guard(fresh)), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_release(s, 2), 0);
	sx_registry_put(old);
	assert_int_equal(sx_sem_capacity(sx_registry_guard(again)), 2); /* still alive */
	sx_registry_put(again);                                          /* freed now */
	sx_registry_put(fresh);
	assert_int_equal(sx_registry_sweep(reg), 0); /* no idle_ns, no bound: nothing goes */
	sx_registry_destroy(reg);
}

/* idle_ns on a virtual clock: a key goes only once idle_ns has passed since its last get or put
 * (a sweep stamps the marks it clears), never while held. */
static void test_idle_eviction_on_virtual_clock(void **state)
{
	sx_registry *reg;
	sx_registry_ref *r, *held;
	void *g1;

	(void)state;
	tu_vnow = 10 * SEC;
	reg = bulkheads(1, 0, (int64_t)SEC);
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	g1 = sx_registry_guard(r);
	sx_registry_put(r);
	assert_int_equal(sx_registry_get(reg, 2, &r), 0);
	sx_registry_put(r);
	assert_int_equal(sx_registry_get(reg, 3, &held), 0);
	assert_int_equal(sx_registry_sweep(reg), 0);
	tu_vadvance(SEC - 1);
	assert_int_equal(sx_registry_sweep(reg), 0);
	/* Key 1 is used again just before its second: its idle time starts over. */
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	assert_ptr_equal(sx_registry_guard(r), g1);
	sx_registry_put(r);
	tu_vadvance(1);
	assert_int_equal(sx_registry_sweep(reg), 1); /* key 2 only; key 3 is held */
	assert_int_equal(counters(reg).keys, 2);
	tu_vadvance(SEC / 2);
	assert_int_equal(sx_registry_sweep(reg), 0);
	tu_vadvance(SEC / 2);
	assert_int_equal(sx_registry_sweep(reg), 1); /* key 1, idle for a second */
	tu_vadvance(100 * SEC);
	assert_int_equal(sx_registry_sweep(reg), 0);
	assert_int_equal(counters(reg).keys, 1);
	assert_int_equal(counters(reg).evicted, 2);
	sx_registry_put(held);
	assert_int_equal(sx_registry_sweep(reg), 0); /* a put is a use */
	tu_vadvance(SEC);
	assert_int_equal(sx_registry_sweep(reg), 1);
	assert_int_equal(counters(reg).keys, 0);
	/* Making keys ages the others a few steps at a time, without a sweep call. */
	for (uint64_t k = 10; k < 20; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
	}
	for (uint64_t round = 0; round < 4; round++) {
		tu_vadvance(2 * SEC);
		for (uint64_t k = 100 * (round + 1); k < 100 * (round + 1) + 20; k++) {
			assert_int_equal(sx_registry_get(reg, k, &r), 0);
			sx_registry_put(r);
		}
	}
	assert_true(counters(reg).evicted >= 3 + 10);
	sx_registry_destroy(reg);
}

/* Circuits: an open circuit is kept under the bound (evicting it would let calls through);
 * once idle for idle_ns it goes in any state. */
static void test_circuit_kind_keeps_open_circuits(void **state)
{
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_circuit_permit p;
	sx_registry_ref *r;
	sx_registry *reg;
	sx_circuit *c;

	(void)state;
	tu_vnow = 50 * SEC;
	co.consecutive_failures = 1;
	co.clock = &tu_vclock;
	o.kind = SX_REGISTRY_CIRCUIT;
	o.circuit = &co;
	o.max_keys = 2;
	o.idle_ns = 3600 * (int64_t)SEC;
	o.clock = &tu_vclock;
	assert_int_equal(sx_registry_create(pool, &o, &reg), 0);
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	c = sx_registry_guard(r);
	assert_int_equal(sx_circuit_acquire(c, &p), 0);
	assert_int_equal(sx_circuit_release(c, p, -EIO, 0), 0);
	assert_int_equal(sx_circuit_state(c), SX_CIRCUIT_OPEN);
	sx_registry_put(r);
	for (uint64_t k = 10; k < 30; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		assert_int_equal(sx_circuit_state(sx_registry_guard(r)), SX_CIRCUIT_CLOSED);
		sx_registry_put(r);
	}
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	assert_ptr_equal(sx_registry_guard(r), c);
	assert_int_equal(sx_circuit_acquire(c, &p), SX_ECIRCUIT_OPEN);
	sx_registry_put(r);
	tu_vadvance(3601 * SEC);
	(void)sx_registry_sweep(reg); /* clears the marks of the keys used since */
	tu_vadvance(3601 * SEC);
	assert_true(sx_registry_sweep(reg) >= 1); /* idle that long: open or not */
	assert_int_equal(counters(reg).keys, 0);
	assert_int_equal(sx_registry_get(reg, 1, &r), 0);
	assert_int_equal(sx_circuit_state(sx_registry_guard(r)), SX_CIRCUIT_CLOSED);
	sx_registry_put(r);
	sx_registry_destroy(reg);
}

/* Rate limiters: a key whose bucket is not full is never evicted (it would come back full). */
static void test_ratelimit_kind_keeps_partial_buckets(void **state)
{
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_registry_ref *r;
	sx_registry *reg;

	(void)state;
	tu_vnow = 5 * SEC;
	ro.rate = 10;
	ro.burst = 2;
	ro.clock = &tu_vclock;
	o.kind = SX_REGISTRY_RATELIMIT;
	o.ratelimit = &ro;
	o.max_keys = 1;
	assert_int_equal(sx_registry_create(NULL, &o, &reg), 0); /* the shared pool */
	for (uint64_t k = 0; k < 10; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		assert_int_equal(sx_ratelimit_try(sx_registry_guard(r), 2), 0);
		sx_registry_put(r);
	}
	assert_int_equal(counters(reg).keys, 10);
	for (uint64_t k = 0; k < 10; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		assert_int_equal(sx_ratelimit_try(sx_registry_guard(r), 1), SX_ERATE_LIMITED);
		sx_registry_put(r);
	}
	tu_vadvance(SEC); /* every bucket full again: now they may go */
	assert_int_equal(sx_registry_get(reg, 100, &r), 0);
	sx_registry_put(r);
	assert_true(counters(reg).evicted >= 1);
	sx_registry_destroy(reg);
}

static void test_bad_input(void **state)
{
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	sx_circuit_opts co = SX_CIRCUIT_OPTS_INIT;
	static const sx_clock no_now = { NULL, NULL, NULL };
	sx_registry *reg = (sx_registry *)&o, *good;
	sx_registry_ref *ref = (sx_registry_ref *)&o;
	sx_registry_counters c;

	(void)state;
	assert_int_equal(sx_registry_create(pool, NULL, &reg), -EINVAL);
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL); /* kind 0 */
	o.kind = 99;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.kind = SX_REGISTRY_BULKHEAD;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL); /* permits 0 */
	o.permits = SX_SEM_MAX_CAPACITY + 1;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.permits = 1;
	assert_int_equal(sx_registry_create(pool, &o, NULL), -EINVAL);
	o.idle_ns = -1;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.idle_ns = 0;
	o.clock = &no_now;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.clock = NULL;
	o.reserved[0] = 1;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.reserved[0] = 0;
	o.kind = SX_REGISTRY_RATELIMIT;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL); /* no ratelimit opts */
	ro.rate = 10;
	ro.burst = SX_RATELIMIT_MAX_BURST + 1;
	o.ratelimit = &ro;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	o.kind = SX_REGISTRY_CIRCUIT;
	co.failure_rate = 2.0;
	o.circuit = &co;
	assert_int_equal(sx_registry_create(pool, &o, &reg), -EINVAL);
	assert_ptr_equal(reg, (sx_registry *)&o); /* nothing written on failure */
	o.circuit = NULL; /* the defaults */
	assert_int_equal(sx_registry_create(pool, &o, &good), 0);
	assert_int_equal(sx_registry_get(NULL, 1, &ref), -EINVAL);
	assert_int_equal(sx_registry_get(good, 1, NULL), -EINVAL);
	assert_ptr_equal(ref, (sx_registry_ref *)&o);
	assert_null(sx_registry_guard(NULL));
	assert_int_equal(sx_registry_remove(NULL, 1), -EINVAL);
	assert_int_equal(sx_registry_sweep(NULL), -EINVAL);
	assert_int_equal(sx_registry_stats(NULL, &c), -EINVAL);
	assert_int_equal(sx_registry_stats(good, NULL), -EINVAL);
	assert_int_equal(counters(good).keys, 0);
	sx_registry_destroy(good);
}

/* A key with an entry costs no allocation. */
static void test_lookup_allocates_nothing(void **state)
{
	sx_registry *reg = bulkheads(1, 0, 0);
	sx_registry_ref *r;
	uint64_t before;

	(void)state;
	for (uint64_t k = 0; k < 64; k++) {
		assert_int_equal(sx_registry_get(reg, k, &r), 0);
		sx_registry_put(r);
	}
	before = sx_allocations();
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(sx_registry_get(reg, (uint64_t)i % 64, &r), 0);
		sx_registry_put(r);
	}
	assert_int_equal(sx_allocations(), before);
	sx_registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_makes_once_and_finds_again),
		cmocka_unit_test(test_growth_keeps_every_key),
		cmocka_unit_test(test_max_keys_evicts_idle_lru),
		cmocka_unit_test(test_busy_guard_is_kept_over_the_bound),
		cmocka_unit_test(test_max_bytes_bounds_memory),
		cmocka_unit_test(test_reference_survives_remove),
		cmocka_unit_test(test_idle_eviction_on_virtual_clock),
		cmocka_unit_test(test_circuit_kind_keeps_open_circuits),
		cmocka_unit_test(test_ratelimit_kind_keeps_partial_buckets),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_lookup_allocates_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
