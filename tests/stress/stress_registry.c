/*
 * Randomized torture of a keyed registry: more threads than cores (outside threads and pool
 * workers) looking keys up, making new ones, holding references across evictions and removals,
 * sweeping and removing, against a bound far below the keys in play so entries come and go all
 * the time. Checks: every guard a reference reaches is alive and whole (its capacity, a permit
 * taken and given back; ASan sees a use after free, TSan a race), the counters add up at the end,
 * and no permit is left out. A keyed limiter is hammered alongside with a frozen clock: no key
 * admits more than its burst, however its entries are evicted and remade. STRESS=N scales the
 * rounds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

#define THREADS 6
#define WORKERS 2
#define TASKS 64
#define PERMITS 1000u
#define HOT 64u           /* keys looked up all the time */
#define SPACE 4096u       /* keys made now and then */
#define BOUND 256u
#define HOLD 4
#define RL_KEYS 512u
#define RL_BURST 3u

static sx_pool *pool;
static sx_registry *reg;
static sx_ratelimit_keyed *kl;
static unsigned rounds;
static atomic_int bad;
static atomic_uint rl_admitted[RL_KEYS];
static atomic_int stop_sweeper;

static void check_guard(sx_registry_ref *r)
{
	sx_sem *s = sx_registry_guard(r);

	if (s == NULL || sx_sem_capacity(s) != PERMITS) {
		atomic_store(&bad, 1);
		return;
	}
	if (sx_sem_try_acquire(s, 1) == 0 && sx_sem_release(s, 1) != 0)
		atomic_store(&bad, 2);
}

/* One round of a client: mostly hot lookups, some new keys, references held for a while. */
static void client(uint64_t *rng, sx_registry_ref **held, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t x = tu_rand(rng), key;
		sx_registry_ref *r;
		unsigned slot = (unsigned)(x >> 40) % HOLD;

		key = (x & 7) < 6 ? (x >> 8) % HOT : HOT + (x >> 8) % SPACE;
		if (sx_registry_get(reg, key, &r) != 0) {
			atomic_store(&bad, 3);
			continue;
		}
		check_guard(r);
		if ((x & 31) == 0) { /* keep it across whatever happens next; let an older one go */
			if (held[slot] != NULL) {
				check_guard(held[slot]);
				sx_registry_put(held[slot]);
			}
			held[slot] = r;
		} else {
			sx_registry_put(r);
		}
		if ((x & 1023) == 1)
			(void)sx_registry_remove(reg, key);
		/* The keyed limiter: time is frozen, so each key admits its burst once, at most. */
		if ((x & 3) == 0) {
			unsigned k = (unsigned)(x >> 20) % RL_KEYS;

			if (sx_ratelimit_keyed_try(kl, k, 1) == 0 &&
			    atomic_fetch_add(&rl_admitted[k], 1) + 1 > RL_BURST)
				atomic_store(&bad, 4);
		}
	}
}

static void *client_thread(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	sx_registry_ref *held[HOLD] = { 0 };

	for (unsigned r = 0; r < rounds; r++) {
		client(&rng, held, 200);
		if ((tu_rand(&rng) & 7) == 0)
			sched_yield();
	}
	for (int i = 0; i < HOLD; i++)
		sx_registry_put(held[i]);
	return NULL;
}

static atomic_uint tasks_done;

static void client_task(void *arg)
{
	uint64_t rng = 0xdeadbeefull * ((uintptr_t)arg + 7);
	sx_registry_ref *held[HOLD] = { 0 };

	client(&rng, held, 50 * rounds / 10 + 50);
	for (int i = 0; i < HOLD; i++)
		sx_registry_put(held[i]);
	atomic_fetch_add(&tasks_done, 1);
}

static void *sweeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_sweeper)) {
		if (sx_registry_sweep(reg) < 0)
			atomic_store(&bad, 5);
		tu_sleep_ns(200000);
	}
	return NULL;
}

int main(void)
{
	sx_registry_opts o = SX_REGISTRY_OPTS_INIT;
	sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;
	pthread_t t[THREADS], sw;
	sx_registry_counters c;
	uint64_t t0 = tu_now_ns();

	rounds = 400 * tu_stress_scale();
#if defined(__SANITIZE_THREAD__)
	rounds = 40 * tu_stress_scale();
#endif
	pool = tu_pool(WORKERS);
	o.kind = SX_REGISTRY_BULKHEAD;
	o.permits = PERMITS;
	o.max_keys = BOUND;
	o.idle_ns = 1000000; /* 1 ms, real clock */
	if (sx_registry_create(pool, &o, &reg) != 0)
		return 1;
	tu_vnow = 1000000000ull;
	ro.rate = 1;
	ro.period_ns = 1000000000ll;
	ro.burst = RL_BURST;
	ro.clock = &tu_vclock; /* frozen */
	if (sx_ratelimit_keyed_create(&ro, 64, &kl) != 0)
		return 1;
	pthread_create(&sw, NULL, sweeper, NULL);
	for (uintptr_t i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, client_thread, (void *)i);
	for (uintptr_t i = 0; i < TASKS; i++)
		if (sx_pool_submit(pool, client_task, (void *)i) != 0)
			atomic_store(&bad, 6);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	while (atomic_load(&tasks_done) != TASKS)
		sched_yield();
	atomic_store(&stop_sweeper, 1);
	pthread_join(sw, NULL);

	sx_registry_stats(reg, &c);
	if (c.created - c.evicted - c.removed != c.keys) {
		fprintf(stderr, "counters: created %llu evicted %llu removed %llu keys %llu\n",
		    (unsigned long long)c.created, (unsigned long long)c.evicted,
		    (unsigned long long)c.removed, (unsigned long long)c.keys);
		atomic_store(&bad, 7);
	}
	if (c.evicted == 0 || c.removed == 0)
		atomic_store(&bad, 8); /* the run must have exercised both */
	for (uint64_t k = 0; k < HOT + SPACE; k++) {
		sx_registry_ref *r;

		if (sx_registry_get(reg, k, &r) != 0 || sx_sem_in_use(sx_registry_guard(r)) != 0)
			atomic_store(&bad, 9);
		sx_registry_put(r);
	}
	printf("stress_registry: %u rounds, created %llu, evicted %llu, removed %llu, %.2f s\n",
	    rounds, (unsigned long long)c.created, (unsigned long long)c.evicted,
	    (unsigned long long)c.removed, (double)(tu_now_ns() - t0) / 1e9);
	sx_ratelimit_keyed_destroy(kl);
	sx_registry_destroy(reg);
	sx_pool_destroy(pool);
	if (atomic_load(&bad) != 0) {
		fprintf(stderr, "stress_registry: failed (%d)\n", atomic_load(&bad));
		return 1;
	}
	return 0;
}
