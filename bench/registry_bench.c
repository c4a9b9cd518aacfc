/*
 * B13 registry: keyed guard lookup. A registry of bulkheads (one sx_sem per key) is filled with
 * `keys` keys; then each of `threads` threads makes n lookups (sx_registry_get and sx_registry_put)
 * of keys drawn uniformly from them. churn: half the lookups are of a key never seen before (a
 * create), under a bound of `keys` keys, so as many entries are evicted as made. The peer is what a
 * C service usually writes: an open-addressing hash map (linear probing, backward-shift deletion)
 * of heap objects under one pthread_mutex, the lookup taking a reference under the lock and the put
 * dropping it with an atomic; under churn it evicts its oldest key that nobody holds (a FIFO of
 * insertions) to stay at `keys`. Each of its objects holds an sx_sem too, as strix's entries do;
 * its bytes_per_key counts its table and objects but not the semaphores (strix's counts everything,
 * its semaphore included). ns_per_task is the wall time over n (the cost of one lookup on one
 * thread); bytes_per_key what the structure holds per key after the fill (guards or objects
 * included).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strix/registry.h>
#include <strix/sem.h>

#include "workloads.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- the peer: a mutex-protected open-addressing map ---------------------------------------- */

typedef struct obj {
	uint64_t key;
	uint32_t refs;
	uint32_t permits;
	sx_sem *guard;        /* the same guard as strix's entries hold */
} obj;

typedef struct mmap_ {
	pthread_mutex_t lock;
	uint64_t mask, count, bound;
	obj **slots;
	uint64_t *fifo;       /* keys in insertion order (churn), a ring of bound entries */
	uint64_t head, tail;
} mmap_;

static uint64_t mh(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return k;
}

static void mm_grow(mmap_ *m)
{
	uint64_t n = (m->mask + 1) * 2;
	obj **s = calloc(n, sizeof(*s));

	for (uint64_t i = 0; i <= m->mask; i++) {
		obj *o = m->slots[i];

		if (o != NULL) {
			uint64_t j = mh(o->key) & (n - 1);

			while (s[j] != NULL)
				j = (j + 1) & (n - 1);
			s[j] = o;
		}
	}
	free(m->slots);
	m->slots = s;
	m->mask = n - 1;
}

static void mm_delete(mmap_ *m, uint64_t key)
{
	uint64_t i = mh(key) & m->mask, j;

	while (m->slots[i] != NULL && m->slots[i]->key != key)
		i = (i + 1) & m->mask;
	if (m->slots[i] == NULL)
		return;
	sx_sem_destroy(m->slots[i]->guard);
	free(m->slots[i]);
	m->slots[i] = NULL;
	m->count--;
	/* Backward shift: pull later entries of the run into the hole. */
	for (j = (i + 1) & m->mask; m->slots[j] != NULL; j = (j + 1) & m->mask) {
		uint64_t h = mh(m->slots[j]->key) & m->mask;

		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			m->slots[i] = m->slots[j];
			m->slots[j] = NULL;
			i = j;
		}
	}
}

/* The oldest key that nobody holds (a held one goes to the back of the queue). */
static void mm_evict_oldest(mmap_ *m)
{
	for (uint64_t tries = 0; tries < m->bound; tries++) {
		uint64_t key = m->fifo[m->head++ % (m->bound + 2)], i;
		obj *o;

		for (i = mh(key) & m->mask; (o = m->slots[i]) != NULL && o->key != key;
		    i = (i + 1) & m->mask)
			;
		if (o != NULL && __atomic_load_n(&o->refs, __ATOMIC_ACQUIRE) == 0) {
			mm_delete(m, key);
			return;
		}
		m->fifo[m->tail++ % (m->bound + 2)] = key;
	}
}

static obj *mm_get(mmap_ *m, uint64_t key)
{
	uint64_t i;
	obj *o;

	pthread_mutex_lock(&m->lock);
	for (i = mh(key) & m->mask; (o = m->slots[i]) != NULL; i = (i + 1) & m->mask)
		if (o->key == key)
			goto found;
	o = calloc(1, sizeof(*o));
	o->key = key;
	o->permits = 1;
	if (sx_sem_create(NULL, 1, &o->guard) != 0)
		o->permits = 0; /* counted as a failed lookup */
	m->slots[i] = o;
	m->count++;
	if (m->bound != 0) {
		m->fifo[m->tail++ % (m->bound + 2)] = key;
		if (m->count > m->bound)
			mm_evict_oldest(m);
	}
	if (m->count * 2 > m->mask + 1)
		mm_grow(m);
	/* o may have moved, but not been freed: it is the newest key */
found:
	__atomic_add_fetch(&o->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&m->lock);
	return o;
}

static void mm_put(obj *o)
{
	__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL);
}

/* ---- the runs ----------------------------------------------------------------------------- */

struct reg_run {
	bool strix, churn;
	sx_registry *reg;
	mmap_ *mm;
	uint64_t keys, n;
	unsigned threads;
	unsigned ready, go;
	uint64_t failed, fresh_base;
};

struct reg_thread {
	struct reg_run *r;
	unsigned id;
};

static void *reg_thread(void *arg)
{
	struct reg_thread *t = arg;
	struct reg_run *r = t->r;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (t->id + 1), fresh = 0, failed = 0;

	__atomic_add_fetch(&r->ready, 1, __ATOMIC_ACQ_REL);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	for (uint64_t i = 0; i < r->n; i++) {
		uint64_t x = xs(&rng), key;

		if (r->churn && (x & 1))
			key = r->fresh_base + (fresh++) * r->threads + t->id;
		else
			key = (x >> 1) % r->keys;
		if (r->strix) {
			sx_registry_ref *ref;

			if (sx_registry_get(r->reg, key, &ref) != 0) {
				failed++;
				continue;
			}
			failed += sx_registry_guard(ref) == NULL;
			sx_registry_put(ref);
		} else {
			obj *o = mm_get(r->mm, key);

			failed += o->permits != 1;
			mm_put(o);
		}
	}
	__atomic_add_fetch(&r->failed, failed, __ATOMIC_ACQ_REL);
	return NULL;
}

int registry_lookup(bool strix, unsigned threads, uint64_t keys, bool churn, uint64_t n,
    double *bytes_per_key, bench_out *o)
{
	struct reg_run r = { .strix = strix, .churn = churn, .keys = keys, .n = n,
	    .threads = threads, .fresh_base = keys };
	struct reg_thread th[8];
	pthread_t t[8];
	uint64_t t0;
	int rc = 0;

	if (threads > 8)
		threads = 8;
	if (strix) {
		sx_registry_opts ro = SX_REGISTRY_OPTS_INIT;

		ro.kind = SX_REGISTRY_BULKHEAD;
		ro.permits = 1;
		ro.max_keys = churn ? keys : 0;
		if ((rc = sx_registry_create(NULL, &ro, &r.reg)) != 0) {
			snprintf(o->err, sizeof(o->err), "sx_registry_create: %d", rc);
			return -1;
		}
	} else {
		r.mm = calloc(1, sizeof(*r.mm));
		pthread_mutex_init(&r.mm->lock, NULL);
		r.mm->mask = 63;
		r.mm->slots = calloc(64, sizeof(obj *));
		r.mm->bound = churn ? keys : 0;
		r.mm->fifo = churn ? calloc(keys + 2, sizeof(uint64_t)) : NULL;
	}
	for (uint64_t k = 0; k < keys; k++) {
		if (strix) {
			sx_registry_ref *ref;

			if (sx_registry_get(r.reg, k, &ref) != 0) {
				snprintf(o->err, sizeof(o->err), "fill failed at key %llu",
				    (unsigned long long)k);
				return -1;
			}
			sx_registry_put(ref);
		} else {
			mm_put(mm_get(r.mm, k));
		}
	}
	if (strix) {
		sx_registry_counters c;

		sx_registry_stats(r.reg, &c);
		*bytes_per_key = (double)c.bytes / (double)c.keys;
	} else {
		*bytes_per_key = (double)((r.mm->mask + 1) * sizeof(obj *)) / (double)keys +
		    (double)((sizeof(obj) + 15) & ~(size_t)15);
	}
	for (unsigned i = 0; i < threads; i++) {
		th[i].r = &r;
		th[i].id = i;
		pthread_create(&t[i], NULL, reg_thread, &th[i]);
	}
	while (__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE) != threads)
		;
	t0 = now_ns();
	__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	o->seconds = (double)(now_ns() - t0) / 1e9;
	o->tasks = n;
	if (r.failed != 0) {
		snprintf(o->err, sizeof(o->err), "%llu lookups failed", (unsigned long long)r.failed);
		rc = -1;
	}
	if (strix && churn) {
		sx_registry_counters c;

		sx_registry_stats(r.reg, &c);
		if (c.created < keys + n / 4) {
			snprintf(o->err, sizeof(o->err), "churn made only %llu keys",
			    (unsigned long long)c.created);
			rc = -1;
		}
	}
	if (strix) {
		sx_registry_destroy(r.reg);
	} else {
		for (uint64_t i = 0; i <= r.mm->mask; i++) {
			if (r.mm->slots[i] != NULL)
				sx_sem_destroy(r.mm->slots[i]->guard);
			free(r.mm->slots[i]);
		}
		free(r.mm->slots);
		free(r.mm->fifo);
		pthread_mutex_destroy(&r.mm->lock);
		free(r.mm);
	}
	return rc;
}
