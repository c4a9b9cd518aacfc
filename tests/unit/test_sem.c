/* Semaphores: counts, bad input, FIFO service, breakers against grants (exactly one outcome),
 * capacity changes, helping inside a worker, shut-down pools, and a many-thread torture run. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "../testutil.h"

#include <strix/breaker.h>
#include <strix/sem.h>

#define MS 1000000ll

TU_POOL_FIXTURE(4)

static sx_sem *sem_new(uint32_t cap)
{
	sx_sem *s = NULL;

	assert_int_equal(sx_sem_create(pool, cap, &s), 0);
	assert_non_null(s);
	return s;
}

/* Destroy once every breaker callback has been dealt with (they run on another thread). */
static void sem_done(sx_sem *s)
{
	TU_WAIT_FOR(sx_sem_waiting(s) == 0);
	assert_int_equal(sx_sem_in_use(s), 0);
	sx_sem_destroy(s);
}

/* ---- an asynchronous outcome ---------------------------------------------------------------- */

typedef struct outcome {
	uint32_t calls;
	int err;
	int worker;       /* sx_pool_worker_index where it ran */
	bool release;     /* give the permits back from the callback */
	uint32_t n;
} outcome;

#define OUTCOME_INIT { 0, 1, -2, false, 0 }

static void record(sx_sem *s, int err, void *arg)
{
	outcome *o = arg;

	o->err = err;
	o->worker = sx_pool_worker_index(pool);
	if (err == 0 && o->release)
		assert_int_equal(sx_sem_release(s, o->n), 0);
	__atomic_add_fetch(&o->calls, 1, __ATOMIC_RELEASE);
}

static uint32_t calls(outcome *o)
{
	return __atomic_load_n(&o->calls, __ATOMIC_ACQUIRE);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_bad_input_changes_nothing(void **state)
{
	sx_sem *s = sem_new(2), *bare = NULL, *out = (sx_sem *)&out;
	outcome o = OUTCOME_INIT;

	(void)state;
	assert_int_equal(sx_sem_create(pool, 1, NULL), -EINVAL);
	assert_int_equal(sx_sem_create(pool, SX_SEM_MAX_CAPACITY + 1u, &out), -EINVAL);
	assert_ptr_equal(out, (sx_sem *)&out);
	assert_int_equal(sx_sem_try_acquire(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_try_acquire(s, 0), -EINVAL);
	assert_int_equal(sx_sem_try_acquire(s, SX_SEM_MAX_CAPACITY + 1u), -EINVAL);
	assert_int_equal(sx_sem_acquire(NULL, 1, NULL), -EINVAL);
	assert_int_equal(sx_sem_acquire(s, 0, NULL), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(NULL, 1, NULL, record, &o), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, NULL, &o), -EINVAL);
	assert_int_equal(sx_sem_acquire_async(s, 0, NULL, record, &o), -EINVAL);
	assert_int_equal(sx_sem_release(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_release(s, 0), -EINVAL);
	assert_int_equal(sx_sem_set_capacity(NULL, 1), -EINVAL);
	assert_int_equal(sx_sem_set_capacity(s, SX_SEM_MAX_CAPACITY + 1u), -EINVAL);
	sx_sem_destroy(NULL); /* a no-op */
	/* No pool: the asynchronous form has nowhere to run its callback. */
	assert_int_equal(sx_sem_create(NULL, 1, &bare), 0);
	assert_int_equal(sx_sem_acquire_async(bare, 1, NULL, record, &o), -EINVAL);
	assert_int_equal(sx_sem_try_acquire(bare, 1), 0);
	assert_int_equal(sx_sem_release(bare, 1), 0);
	sx_sem_destroy(bare);

	assert_int_equal(sx_sem_capacity(s), 2);
	assert_int_equal(sx_sem_in_use(s), 0);
	assert_int_equal(sx_sem_waiting(s), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&o), 0);
	assert_int_equal(sx_sem_capacity(NULL), 0);
	assert_int_equal(sx_sem_in_use(NULL), 0);
	sem_done(s);
}

static void test_in_use_counts_and_release_on_empty_is_an_error(void **state)
{
	sx_sem *s = sem_new(5);

	(void)state;
	assert_int_equal(sx_sem_release(s, 1), -EINVAL); /* nothing held */
	assert_int_equal(sx_sem_in_use(s), 0);
	assert_int_equal(sx_sem_try_acquire(s, 2), 0);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_acquire(s, 3, NULL), 0);
	assert_int_equal(sx_sem_in_use(s), 5);
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN);
	assert_int_equal(sx_sem_try_acquire(s, 6), -EAGAIN);
	assert_int_equal(sx_sem_release(s, 2), 0);
	assert_int_equal(sx_sem_in_use(s), 3);
	assert_int_equal(sx_sem_release(s, 4), -EINVAL); /* more than held: no overflow */
	assert_int_equal(sx_sem_in_use(s), 3);
	assert_int_equal(sx_sem_release(s, 3), 0);
	assert_int_equal(sx_sem_release(s, 1), -EINVAL);
	assert_int_equal(sx_sem_in_use(s), 0);
	assert_int_equal(sx_sem_capacity(s), 5);
	sem_done(s);
}

static void test_capacity_zero_with_expired_breaker_fails_at_once(void **state)
{
	sx_sem *s = sem_new(0);
	sx_breaker *expired = NULL, *later = NULL, *manual = NULL;
	outcome o = OUTCOME_INIT;
	uint64_t t0;

	(void)state;
	assert_int_equal(sx_breaker_timeout(pool, 0, &expired), 0);
	t0 = tu_now_ns();
	assert_int_equal(sx_sem_acquire(s, 1, expired), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 < 1000 * MS); /* at once: no wait for anything */
	assert_int_equal(sx_sem_acquire_async(s, 1, expired, record, &o), 0);
	TU_WAIT_FOR(calls(&o) == 1);
	assert_int_equal(o.err, -ETIMEDOUT);
	assert_true(o.worker >= 0); /* delivered on the pool */

	/* A breaker that expires while the caller waits: its code, after it expired. */
	assert_int_equal(sx_breaker_timeout(pool, 30 * MS, &later), 0);
	t0 = tu_now_ns();
	assert_int_equal(sx_sem_acquire(s, 1, later), -ETIMEDOUT);
	assert_true(tu_now_ns() - t0 >= 25 * MS);

	/* A tripped breaker fails even when permits are free. */
	assert_int_equal(sx_sem_set_capacity(s, 3), 0);
	assert_int_equal(sx_breaker_create(&manual), 0);
	assert_int_equal(sx_breaker_trip(manual), 0);
	assert_int_equal(sx_sem_acquire(s, 1, manual), -ECANCELED);
	assert_int_equal(sx_sem_in_use(s), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&o), 1);
	sx_breaker_release(expired);
	sx_breaker_release(later);
	sx_breaker_release(manual);
	sem_done(s);
}

struct blocker {
	sx_sem *s;
	uint32_t n;
	sx_breaker *stop;
	int rc;
	uint32_t done;
};

static void *block_acquire(void *arg)
{
	struct blocker *b = arg;

	b->rc = sx_sem_acquire(b->s, b->n, b->stop);
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_blocking_acquire_waits_for_release(void **state)
{
	sx_sem *s = sem_new(1);
	struct blocker b = { s, 1, NULL, 1, 0 };
	pthread_t t;

	(void)state;
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, block_acquire, &b), 0);
	TU_WAIT_FOR(sx_sem_waiting(s) == 1);
	tu_sleep_ns(20 * MS); /* long enough for the waiter to go to sleep */
	assert_int_equal(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN);
	assert_int_equal(sx_sem_release(s, 1), 0);
	pthread_join(t, NULL);
	assert_int_equal(b.rc, 0);
	assert_int_equal(sx_sem_in_use(s), 1); /* handed over, not freed in between */
	assert_int_equal(sx_sem_waiting(s), 0);
	assert_int_equal(sx_sem_release(s, 1), 0);
	sem_done(s);
}

/* Waiters for 3, 1 and 2 permits of 4: served strictly in arrival order, even when permits for a
 * later, smaller one are free; try_acquire does not overtake them either. */
static void test_waiters_are_served_in_fifo_order(void **state)
{
	sx_sem *s = sem_new(4);
	outcome a = OUTCOME_INIT, b = OUTCOME_INIT, c = OUTCOME_INIT;

	(void)state;
	assert_int_equal(sx_sem_try_acquire(s, 4), 0);
	assert_int_equal(sx_sem_acquire_async(s, 3, NULL, record, &a), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &b), 0);
	assert_int_equal(sx_sem_acquire_async(s, 2, NULL, record, &c), 0);
	assert_int_equal(sx_sem_waiting(s), 3);

	assert_int_equal(sx_sem_release(s, 1), 0);  /* 1 free: a needs 3, b must not pass it */
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&a) + calls(&b) + calls(&c), 0);
	assert_int_equal(sx_sem_in_use(s), 3);

	assert_int_equal(sx_sem_release(s, 2), 0);  /* 3 free: a */
	TU_WAIT_FOR(calls(&a) == 1);
	assert_int_equal(a.err, 0);
	assert_int_equal(sx_sem_in_use(s), 4);
	assert_int_equal(sx_sem_waiting(s), 2);

	assert_int_equal(sx_sem_release(s, 1), 0);  /* our last: b */
	TU_WAIT_FOR(calls(&b) == 1);
	assert_int_equal(b.err, 0);
	assert_int_equal(sx_sem_in_use(s), 4);

	assert_int_equal(sx_sem_release(s, 3), 0);  /* a's three: c takes two */
	TU_WAIT_FOR(calls(&c) == 1);
	assert_int_equal(c.err, 0);
	assert_int_equal(sx_sem_in_use(s), 3);
	assert_int_equal(sx_sem_waiting(s), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0); /* nobody waits: try works again */
	assert_int_equal(sx_sem_release(s, 4), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&a) + calls(&b) + calls(&c), 3);
	sem_done(s);
}

/* A waiter at the head whose breaker trips does not block the ones behind it. */
static void test_cancelled_head_lets_the_next_through(void **state)
{
	sx_sem *s = sem_new(2);
	sx_breaker *stop = NULL;
	outcome big = OUTCOME_INIT, small = OUTCOME_INIT;

	(void)state;
	assert_int_equal(sx_breaker_create(&stop), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_sem_acquire_async(s, 2, stop, record, &big), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &small), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&small), 0); /* 1 free, but behind the head */
	assert_int_equal(sx_breaker_trip(stop), 0);
	TU_WAIT_FOR(calls(&big) == 1 && calls(&small) == 1);
	assert_int_equal(big.err, -ECANCELED);
	assert_int_equal(small.err, 0);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_release(s, 2), 0);
	sx_breaker_release(stop);
	sem_done(s);
}

/* Cancelled waiters behind a head that still waits do not pile up: they are swept out. */
static void test_cancelled_waiters_behind_a_blocked_head_are_swept(void **state)
{
	enum { N = 1000 };
	sx_sem *s = sem_new(1);
	sx_breaker *stop = NULL;
	static outcome many[N];
	outcome head = OUTCOME_INIT;
	unsigned i;

	(void)state;
	assert_int_equal(sx_breaker_create(&stop), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &head), 0);
	for (i = 0; i < N; i++) {
		many[i] = (outcome)OUTCOME_INIT;
		assert_int_equal(sx_sem_acquire_async(s, 1, stop, record, &many[i]), 0);
	}
	assert_int_equal(sx_sem_waiting(s), N + 1);
	assert_int_equal(sx_breaker_trip(stop), 0);
	TU_WAIT_FOR(sx_sem_waiting(s) == 1);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(calls(&many[i]), 1);
		assert_int_equal(many[i].err, -ECANCELED);
	}
	assert_int_equal(calls(&head), 0);
	assert_int_equal(sx_sem_release(s, 1), 0);
	TU_WAIT_FOR(calls(&head) == 1);
	assert_int_equal(head.err, 0);
	assert_int_equal(sx_sem_release(s, 1), 0);
	sx_breaker_release(stop);
	sem_done(s);
}

static void test_async_grant_runs_on_the_pool(void **state)
{
	sx_sem *s = sem_new(3);
	outcome now = OUTCOME_INIT, later = OUTCOME_INIT;

	(void)state;
	now.release = true;
	now.n = 3;
	assert_int_equal(sx_sem_acquire_async(s, 3, NULL, record, &now), 0);
	TU_WAIT_FOR(calls(&now) == 1);
	assert_int_equal(now.err, 0);
	assert_true(now.worker >= 0);
	TU_WAIT_FOR(sx_sem_in_use(s) == 0);
	assert_int_equal(sx_sem_try_acquire(s, 2), 0);
	assert_int_equal(sx_sem_acquire_async(s, 2, NULL, record, &later), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&later), 0);
	assert_int_equal(sx_sem_release(s, 2), 0);
	TU_WAIT_FOR(calls(&later) == 1);
	assert_int_equal(later.err, 0);
	assert_true(later.worker >= 0);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_release(s, 2), 0);
	sem_done(s);
}

/* ---- a breaker racing a grant: exactly one outcome ------------------------------------------- */

struct racer {
	sx_breaker *stop;
	sx_sem *s;
	unsigned what;      /* 0: trip, 1: release */
	uint32_t go;
};

static void *race_side(void *arg)
{
	struct racer *r = arg;

	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	if (r->what == 0)
		assert_int_equal(sx_breaker_trip(r->stop), 0);
	else
		assert_int_equal(sx_sem_release(r->s, 1), 0);
	return NULL;
}

static void test_async_acquire_racing_breaker_one_outcome(void **state)
{
	unsigned rounds = 600 * tu_stress_scale(), i, granted = 0, cancelled = 0;
	sx_sem *s = sem_new(1);

	(void)state;
	for (i = 0; i < rounds; i++) {
		outcome o = OUTCOME_INIT;
		struct racer trip = { NULL, s, 0, 0 }, rel = { NULL, s, 1, 0 };
		pthread_t t1, t2;

		o.release = true;
		o.n = 1;
		assert_int_equal(sx_breaker_create(&trip.stop), 0);
		assert_int_equal(sx_sem_try_acquire(s, 1), 0);
		assert_int_equal(sx_sem_acquire_async(s, 1, trip.stop, record, &o), 0);
		switch (i % 3) {
		case 0: /* trip first: the waiter must not get the permit */
			assert_int_equal(sx_breaker_trip(trip.stop), 0);
			assert_int_equal(sx_sem_release(s, 1), 0);
			TU_WAIT_FOR(calls(&o) == 1);
			assert_int_equal(o.err, -ECANCELED);
			break;
		case 1: /* release first, trip after the grant: granted */
			assert_int_equal(sx_sem_release(s, 1), 0);
			TU_WAIT_FOR(calls(&o) == 1);
			assert_int_equal(o.err, 0);
			assert_int_equal(sx_breaker_trip(trip.stop), 0);
			break;
		default: /* both at once, from two threads */
			assert_int_equal(pthread_create(&t1, NULL, race_side, &trip), 0);
			assert_int_equal(pthread_create(&t2, NULL, race_side, &rel), 0);
			__atomic_store_n(&trip.go, 1, __ATOMIC_RELEASE);
			__atomic_store_n(&rel.go, 1, __ATOMIC_RELEASE);
			pthread_join(t1, NULL);
			pthread_join(t2, NULL);
			TU_WAIT_FOR(calls(&o) == 1);
			assert_true(o.err == 0 || o.err == -ECANCELED);
			break;
		}
		if (o.err == 0)
			granted++;
		else
			cancelled++;
		TU_WAIT_FOR(sx_sem_waiting(s) == 0 && sx_sem_in_use(s) == 0);
		sx_breaker_release(trip.stop);
		assert_int_equal(sx_pool_wait_idle(pool), 0);
		assert_int_equal(calls(&o), 1); /* never a second call */
	}
	assert_int_equal(granted + cancelled, rounds);
	assert_true(granted >= rounds / 3 && cancelled >= rounds / 3);
	sem_done(s);
}

/* The same race against a blocking acquire: 0 (and the caller holds the permit) or the code. */
static void test_blocking_acquire_racing_breaker_one_outcome(void **state)
{
	unsigned rounds = 300 * tu_stress_scale(), i;
	sx_sem *s = sem_new(1);

	(void)state;
	for (i = 0; i < rounds; i++) {
		struct blocker b = { s, 1, NULL, 1, 0 };
		pthread_t t;

		assert_int_equal(sx_breaker_create(&b.stop), 0);
		assert_int_equal(sx_sem_try_acquire(s, 1), 0);
		assert_int_equal(pthread_create(&t, NULL, block_acquire, &b), 0);
		if (i & 1)
			TU_WAIT_FOR(sx_sem_waiting(s) == 1);
		if (i & 2) {
			assert_int_equal(sx_sem_release(s, 1), 0);
			(void)sx_breaker_trip(b.stop);
		} else {
			(void)sx_breaker_trip(b.stop);
			assert_int_equal(sx_sem_release(s, 1), 0);
		}
		pthread_join(t, NULL);
		if (b.rc == 0) {
			assert_int_equal(sx_sem_in_use(s), 1);
			assert_int_equal(sx_sem_release(s, 1), 0);
		} else {
			assert_int_equal(b.rc, -ECANCELED);
		}
		TU_WAIT_FOR(sx_sem_waiting(s) == 0);
		assert_int_equal(sx_sem_in_use(s), 0);
		sx_breaker_release(b.stop);
	}
	sem_done(s);
}

static void test_set_capacity_grants_and_shrinks(void **state)
{
	sx_sem *s = sem_new(0);
	outcome o = OUTCOME_INIT;

	(void)state;
	assert_int_equal(sx_sem_acquire_async(s, 2, NULL, record, &o), 0);
	assert_int_equal(sx_sem_set_capacity(s, 1), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&o), 0);
	assert_int_equal(sx_sem_set_capacity(s, 3), 0);
	TU_WAIT_FOR(calls(&o) == 1);
	assert_int_equal(o.err, 0);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_set_capacity(s, 1), 0); /* below what is held */
	assert_int_equal(sx_sem_capacity(s), 1);
	assert_int_equal(sx_sem_in_use(s), 2);
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN);
	assert_int_equal(sx_sem_release(s, 1), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), -EAGAIN); /* 1 held of 1 */
	assert_int_equal(sx_sem_release(s, 1), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_sem_release(s, 1), 0);
	sem_done(s);
}

struct blocked {
	sx_sem *s;
	uint32_t n;
	sx_breaker *stop;
	int rc;
};

static void *blocked_acquire(void *arg)
{
	struct blocked *b = arg;

	b->rc = sx_sem_acquire(b->s, b->n, b->stop);
	return NULL;
}

/* Destroy never fails and loses no wait: queued waiters (blocking, asynchronous, with a breaker
 * or without) are told -ESHUTDOWN exactly once; permits held at destroy are given back after it,
 * the last release freeing the semaphore (ASan checks that nothing leaks or is used after). */
static void test_destroy_cancels_waiters_and_keeps_held_permits(void **state)
{
	sx_sem *s = sem_new(1);
	sx_breaker *stop = NULL;
	outcome a = OUTCOME_INIT, b = OUTCOME_INIT;
	struct blocked t1, t2;
	pthread_t th1, th2;

	(void)state;
	assert_int_equal(sx_breaker_create(&stop), 0);
	assert_int_equal(sx_sem_try_acquire(s, 1), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, stop, record, &a), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &b), 0);
	t1 = (struct blocked){ s, 1, NULL, 1 };
	t2 = (struct blocked){ s, 1, stop, 1 };
	assert_int_equal(pthread_create(&th1, NULL, blocked_acquire, &t1), 0);
	assert_int_equal(pthread_create(&th2, NULL, blocked_acquire, &t2), 0);
	TU_WAIT_FOR(sx_sem_waiting(s) == 4);
	sx_sem_destroy(s);
	assert_int_equal(pthread_join(th1, NULL), 0);
	assert_int_equal(pthread_join(th2, NULL), 0);
	assert_int_equal(t1.rc, -ESHUTDOWN);
	assert_int_equal(t2.rc, -ESHUTDOWN);
	TU_WAIT_FOR(calls(&a) == 1 && calls(&b) == 1);
	assert_int_equal(a.err, -ESHUTDOWN);
	assert_int_equal(b.err, -ESHUTDOWN);
	assert_int_equal(sx_sem_in_use(s), 1); /* the permit held at destroy */
	assert_int_equal(sx_sem_waiting(s), 0);
	assert_int_equal(sx_breaker_trip(stop), 0); /* too late: no second outcome */
	assert_int_equal(sx_sem_release(s, 1), 0); /* the last permit: the memory goes */
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(calls(&a), 1);
	assert_int_equal(calls(&b), 1);
	sx_breaker_release(stop);

	/* A callback granted before destroy gives its permits back after it. */
	s = sem_new(2);
	a = (outcome)OUTCOME_INIT;
	assert_int_equal(sx_sem_acquire_async(s, 2, NULL, record, &a), 0);
	TU_WAIT_FOR(calls(&a) == 1);
	assert_int_equal(a.err, 0);
	sx_sem_destroy(s);
	assert_int_equal(sx_sem_release(s, 1), 0);
	assert_int_equal(sx_sem_release(s, 1), 0); /* the last one frees it */

	/* Nothing held, nobody waiting: destroy frees at once. */
	s = sem_new(3);
	assert_int_equal(sx_sem_try_acquire(s, 3), 0);
	assert_int_equal(sx_sem_release(s, 3), 0);
	sx_sem_destroy(s);
}

struct releaser {
	sx_sem *s;
	uint32_t n;
};

static void *release_one_by_one(void *arg)
{
	struct releaser *r = arg;

	for (uint32_t i = 0; i < r->n; i++) {
		assert_int_equal(sx_sem_release(r->s, 1), 0);
		if (i & 1)
			sched_yield();
	}
	return NULL;
}

/* Destroy racing with releases of held permits (each may grant a waiter, whose callback gives
 * its permit back after destroy) and with breakers that time out: every waiter is told exactly
 * once (granted, its breaker's code, or -ESHUTDOWN), and the last release frees the semaphore
 * (ASan and LSan: no use after free, no leak). */
static void test_destroy_races_releases_and_breakers(void **state)
{
	enum { ROUNDS = 200, W = 4 };

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		sx_sem *s = sem_new(W);
		outcome o[W];
		sx_breaker *t[W];
		struct releaser r = { s, W };
		pthread_t th;

		for (int i = 0; i < W; i++) {
			o[i] = (outcome)OUTCOME_INIT;
			o[i].release = true;
			o[i].n = 1;
		}
		assert_int_equal(sx_sem_try_acquire(s, W), 0);
		for (int i = 0; i < W; i++) {
			t[i] = NULL;
			if (i % 2 == 0)
				assert_int_equal(sx_breaker_timeout(pool, (round % 5) * 50000, &t[i]), 0);
			assert_int_equal(sx_sem_acquire_async(s, 1, t[i], record, &o[i]), 0);
		}
		assert_int_equal(pthread_create(&th, NULL, release_one_by_one, &r), 0);
		if (round % 3 == 1)
			sched_yield();
		sx_sem_destroy(s);
		assert_int_equal(pthread_join(th, NULL), 0);
		for (int i = 0; i < W; i++) {
			TU_WAIT_FOR(calls(&o[i]) == 1);
			assert_true(o[i].err == 0 || o[i].err == -ESHUTDOWN || o[i].err == -ETIMEDOUT);
			if (t[i] == NULL)
				assert_int_not_equal(o[i].err, -ETIMEDOUT);
		}
		assert_int_equal(sx_pool_wait_idle(pool), 0);
		for (int i = 0; i < W; i++) {
			assert_int_equal(calls(&o[i]), 1);
			sx_breaker_release(t[i]);
		}
	}
}

/* Once a timed-out (or cancelled) acquire has returned, its waiter is gone: the count is 0 at
 * once, every time, with another waiter queued ahead or not. */
static void test_destroy_right_after_a_timed_out_acquire(void **state)
{
	unsigned busy = 0;

	(void)state;
	for (int i = 0; i < 300; i++) {
		sx_sem *s = sem_new(0);
		sx_breaker *t = NULL;

		assert_int_equal(sx_breaker_timeout(pool, (int64_t)(i % 3) * 100000, &t), 0);
		assert_int_equal(sx_sem_acquire(s, 1 + (uint32_t)(i % 2), t), -ETIMEDOUT);
		sx_breaker_release(t);
		busy += sx_sem_waiting(s) != 0;
		sx_sem_destroy(s);
	}
	assert_int_equal(busy, 0);
}

/* A task blocked in acquire on the only worker runs the task that releases its permit. */
struct helper {
	sx_sem *s;
	int rc;
	uint32_t done;
};

static void release_one(void *arg)
{
	assert_int_equal(sx_sem_release(arg, 1), 0);
}

static void acquire_on_worker(void *arg)
{
	struct helper *h = arg;
	sx_breaker *limit = NULL;

	assert_int_equal(sx_breaker_timeout(pool, 30000 * MS, &limit), 0);
	assert_int_equal(sx_pool_submit(pool, release_one, h->s), 0); /* behind us, same worker */
	h->rc = sx_sem_acquire(h->s, 1, limit);
	if (h->rc == 0)
		assert_int_equal(sx_sem_release(h->s, 1), 0);
	sx_breaker_release(limit);
	__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
}

static void test_blocking_acquire_on_a_worker_helps(void **state)
{
	sx_pool *one = tu_pool(1), *saved = pool;
	struct helper h = { NULL, 1, 0 };

	(void)state;
	pool = one;
	h.s = sem_new(1);
	assert_int_equal(sx_sem_try_acquire(h.s, 1), 0);
	assert_int_equal(sx_pool_submit(one, acquire_on_worker, &h), 0);
	TU_WAIT_FOR(__atomic_load_n(&h.done, __ATOMIC_ACQUIRE));
	assert_int_equal(h.rc, 0);
	sem_done(h.s);
	pool = saved;
	sx_pool_destroy(one);
}

static void test_shut_down_pool(void **state)
{
	sx_pool *dead = tu_pool(1), *saved = pool;
	sx_sem *s = NULL;
	outcome o = OUTCOME_INIT, q = OUTCOME_INIT;

	(void)state;
	assert_int_equal(sx_sem_create(dead, 2, &s), 0);
	pool = dead;
	assert_int_equal(sx_sem_try_acquire(s, 2), 0);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &q), 0); /* queued */
	assert_int_equal(sx_pool_shutdown(dead, SX_DRAIN), 0);
	/* Refused at the call: fn never runs, no permit taken. */
	assert_int_equal(sx_sem_release(s, 1), 0);
	/* q was granted, but the pool refused its callback: it ran here, permit given back. */
	assert_int_equal(calls(&q), 1);
	assert_int_equal(q.err, -ESHUTDOWN);
	assert_int_equal(sx_sem_in_use(s), 1);
	assert_int_equal(sx_sem_acquire_async(s, 1, NULL, record, &o), -ESHUTDOWN);
	assert_int_equal(calls(&o), 0);
	assert_int_equal(sx_sem_in_use(s), 1);
	/* Blocking and try forms need no pool. */
	assert_int_equal(sx_sem_acquire(s, 1, NULL), 0);
	assert_int_equal(sx_sem_release(s, 2), 0);
	sem_done(s);
	pool = saved;
	sx_pool_destroy(dead);
}

/* ---- torture: many threads, every form, random sizes, random breakers ------------------------ */

#define T_THREADS 12
#define T_CAP 5

static sx_sem *tsem;
static uint32_t t_held, t_high, t_async_live;
static uint64_t t_ops, t_refused;

static void t_enter(uint32_t n)
{
	uint32_t now = __atomic_add_fetch(&t_held, n, __ATOMIC_ACQ_REL);
	uint32_t hw = __atomic_load_n(&t_high, __ATOMIC_RELAXED);

	while (now > hw && !__atomic_compare_exchange_n(&t_high, &hw, now, false,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void t_leave(uint32_t n)
{
	__atomic_sub_fetch(&t_held, n, __ATOMIC_ACQ_REL);
	assert_int_equal(sx_sem_release(tsem, n), 0);
}

struct t_req {
	uint32_t n;
	sx_breaker *stop;   /* released by the callback: releasing it earlier would trip it */
};

static void t_async_done(sx_sem *s, int err, void *arg)
{
	struct t_req *q = arg;
	uint32_t n = q->n;

	(void)s;
	sx_breaker_release(q->stop);
	free(q);
	if (err == 0) {
		t_enter(n);
		t_leave(n);
	} else {
		assert_int_equal(err, -ETIMEDOUT);
		__atomic_add_fetch(&t_refused, 1, __ATOMIC_RELAXED);
	}
	__atomic_sub_fetch(&t_async_live, 1, __ATOMIC_RELEASE);
}

static void *t_thread(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	unsigned i, iters = 3000 * tu_stress_scale();

	for (i = 0; i < iters; i++) {
		uint64_t r = tu_rand(&rng);
		uint32_t n = 1 + (uint32_t)(r % 3);
		sx_breaker *stop = NULL;
		int rc;

		/* A short timeout now and then; else a long one, which firing would mean a lost
		 * wake-up (the test then fails on -ETIMEDOUT). */
		bool short_to = (r >> 8) % 4 == 0;

		assert_int_equal(sx_breaker_timeout(pool, short_to ? 50000 : 30000 * MS, &stop), 0);
		switch ((r >> 4) % 3) {
		case 0:
			if (sx_sem_try_acquire(tsem, n) == 0) {
				t_enter(n);
				t_leave(n);
			}
			break;
		case 1:
			rc = sx_sem_acquire(tsem, n, stop);
			if (rc == 0) {
				t_enter(n);
				if ((r >> 12) % 8 == 0)
					sched_yield();
				t_leave(n);
			} else {
				assert_true(short_to);
				assert_int_equal(rc, -ETIMEDOUT);
				__atomic_add_fetch(&t_refused, 1, __ATOMIC_RELAXED);
			}
			break;
		default: {
			struct t_req *q = malloc(sizeof(*q));

			assert_non_null(q);
			q->n = n;
			q->stop = stop;
			stop = NULL;
			__atomic_add_fetch(&t_async_live, 1, __ATOMIC_RELAXED);
			assert_int_equal(sx_sem_acquire_async(tsem, n, short_to ? q->stop : NULL,
			    t_async_done, q), 0);
			break;
		}
		}
		sx_breaker_release(stop);
		__atomic_add_fetch(&t_ops, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_torture_many_threads(void **state)
{
	pthread_t t[T_THREADS];
	unsigned i;

	(void)state;
	tsem = sem_new(T_CAP);
	for (i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, t_thread, (void *)(uintptr_t)(i + 1)), 0);
	for (i = 0; i < T_THREADS; i++)
		pthread_join(t[i], NULL);
	TU_WAIT_FOR(__atomic_load_n(&t_async_live, __ATOMIC_ACQUIRE) == 0);
	assert_true(__atomic_load_n(&t_high, __ATOMIC_RELAXED) <= T_CAP);
	assert_true(__atomic_load_n(&t_high, __ATOMIC_RELAXED) >= 2);
	assert_int_equal(__atomic_load_n(&t_held, __ATOMIC_RELAXED), 0);
	print_message("torture: %llu ops, %llu refused by a timeout, high water %u of %u\n",
	    (unsigned long long)t_ops, (unsigned long long)t_refused, t_high, T_CAP);
	sem_done(tsem);
}

/* A waiter whose stop breaker derives from one that has just tripped is cancelled, not granted:
 * a permit released right after the trip returned stays free. */
struct derived_waiter {
	sx_sem *sem;
	sx_breaker *stop;
	int rc;
};

static void *acquire_with_stop(void *arg)
{
	struct derived_waiter *d = arg;

	d->rc = sx_sem_acquire(d->sem, 1, d->stop);
	return NULL;
}

static void test_waiter_of_a_derived_breaker_is_never_granted_after_the_trip(void **state)
{
	(void)state;
	for (int r = 0; r < 200; r++) {
		struct derived_waiter d;
		sx_breaker *parent;
		pthread_t th;

		assert_int_equal(sx_sem_create(NULL, 1, &d.sem), 0);
		assert_int_equal(sx_sem_try_acquire(d.sem, 1), 0);
		assert_int_equal(sx_breaker_create(&parent), 0);
		assert_int_equal(sx_breaker_child(parent, &d.stop), 0);
		assert_int_equal(pthread_create(&th, NULL, acquire_with_stop, &d), 0);
		TU_WAIT_FOR(sx_sem_waiting(d.sem) == 1);
		assert_int_equal(sx_breaker_trip(parent), 0);
		assert_int_equal(sx_sem_release(d.sem, 1), 0);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_int_equal(d.rc, -ECANCELED);
		assert_int_equal(sx_sem_in_use(d.sem), 0);
		sx_sem_destroy(d.sem);
		sx_breaker_release(d.stop);
		sx_breaker_release(parent);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_waiter_of_a_derived_breaker_is_never_granted_after_the_trip),
		cmocka_unit_test(test_in_use_counts_and_release_on_empty_is_an_error),
		cmocka_unit_test(test_capacity_zero_with_expired_breaker_fails_at_once),
		cmocka_unit_test(test_blocking_acquire_waits_for_release),
		cmocka_unit_test(test_waiters_are_served_in_fifo_order),
		cmocka_unit_test(test_cancelled_head_lets_the_next_through),
		cmocka_unit_test(test_cancelled_waiters_behind_a_blocked_head_are_swept),
		cmocka_unit_test(test_async_grant_runs_on_the_pool),
		cmocka_unit_test(test_async_acquire_racing_breaker_one_outcome),
		cmocka_unit_test(test_blocking_acquire_racing_breaker_one_outcome),
		cmocka_unit_test(test_set_capacity_grants_and_shrinks),
		cmocka_unit_test(test_destroy_cancels_waiters_and_keeps_held_permits),
		cmocka_unit_test(test_destroy_races_releases_and_breakers),
		cmocka_unit_test(test_destroy_right_after_a_timed_out_acquire),
		cmocka_unit_test(test_blocking_acquire_on_a_worker_helps),
		cmocka_unit_test(test_shut_down_pool),
		cmocka_unit_test(test_torture_many_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
