/*
 * Torture of the elastic pool: resizes from outside and from inside the pool racing with
 * steals, local spawns, outside submissions and blocks in place, with more workers than cores.
 * Every check is an exact count: each task must run exactly once. STRESS=N multiplies the
 * rounds by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <strix.h>

#include "testutil.h"

#define MAX_IDS (1u << 20)
#define MAX_W 12u

static atomic_uchar ran[MAX_IDS];
static atomic_uchar kind[MAX_IDS]; /* 1: a parent (outside), 2: a child (spawned on a worker) */
static atomic_uint next_id;
static atomic_uint resized_inside;
static sx_pool *pool;

static unsigned new_id(void)
{
	unsigned id = atomic_fetch_add(&next_id, 1);

	assert_true(id < MAX_IDS);
	return id;
}

static void mark(void *arg)
{
	atomic_fetch_add(&ran[(uintptr_t)arg], 1);
}

static void block_fn(void *arg)
{
	struct timespec ts = { 0, 20000 + (long)((uintptr_t)arg % 50000) };

	nanosleep(&ts, NULL);
}

/* A parent marks itself, spawns children locally (LIFO slot and ring, stolen by others), and
 * now and then resizes the pool or blocks in place. */
static void parent(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ id;
	unsigned kids = 1 + (unsigned)(tu_rand(&seed) % 6);

	atomic_fetch_add(&ran[id], 1);
	for (unsigned i = 0; i < kids; i++) {
		unsigned kid = new_id();

		atomic_store(&kind[kid], 2);
		assert_int_equal(sx_pool_submit(pool, mark, (void *)(uintptr_t)kid), 0);
	}
	switch (tu_rand(&seed) % 64) {
	case 0: {
		int rc = sx_pool_resize(pool, 1 + (unsigned)(tu_rand(&seed) % MAX_W));

		/* -EAGAIN: slots held by blocked workers; -ESHUTDOWN: the cancel test's shutdown. */
		assert_true(rc == 0 || rc == -EAGAIN || rc == -ESHUTDOWN);
		atomic_fetch_add(&resized_inside, 1);
		break;
	}
	case 1:
		assert_int_equal(sx_pool_block_in_place(pool, block_fn, arg), 0);
		break;
	default:
		break;
	}
}

struct submitter {
	unsigned n;
	uint64_t seed;
};

static void *submit_loop(void *arg)
{
	struct submitter *s = arg;

	for (unsigned i = 0; i < s->n; i++) {
		unsigned id = new_id();

		atomic_store(&kind[id], 1);
		assert_int_equal(sx_pool_submit(pool, parent, (void *)(uintptr_t)id), 0);
		if (tu_rand(&s->seed) % 256 == 0)
			sched_yield();
	}
	return NULL;
}

/* Whether each of the first ids tasks ran exactly once; if not, what went wrong, printed. */
static bool all_ran_once(unsigned ids, const sx_pool_counters *c)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < ids; i++) {
		unsigned r = atomic_load(&ran[i]);

		if (r != 1 && bad++ < 20)
			print_message("task %u of %u (%s) ran %u times\n", i, ids,
			    atomic_load(&kind[i]) == 1 ? "parent" : "child", r);
	}
	if (bad == 0)
		return true;
	print_message("%u tasks wrong; submitted %llu (remote %llu), executed %llu, workers %u, "
	    "slots %u, retired %llu, stolen %llu, steals %llu, injected %llu, overflowed %llu, "
	    "lifo_runs %llu\n", bad, (unsigned long long)c->submitted,
	    (unsigned long long)c->remote, (unsigned long long)c->executed, c->workers, c->slots,
	    (unsigned long long)c->retired, (unsigned long long)c->total.stolen,
	    (unsigned long long)c->total.steals, (unsigned long long)c->total.injected,
	    (unsigned long long)c->total.overflowed, (unsigned long long)c->total.lifo_runs);
	return false;
}

/* One round of the race below: resizes from outside while three threads submit per parents
 * each (their children on the workers). The ids of a round stay below MAX_IDS. */
static void resize_race_round(unsigned per, uint64_t seed)
{
	struct submitter subs[3];
	pthread_t th[3];
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	unsigned rounds = 0, ids;
	sx_pool_counters c;

	memset(ran, 0, sizeof(ran));
	memset(kind, 0, sizeof(kind));
	atomic_store(&next_id, 0);
	o.workers = 3;
	o.max_workers = MAX_W;
	o.spin_ns = 20000;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	for (unsigned i = 0; i < 3; i++) {
		subs[i].n = per;
		subs[i].seed = seed + 77 + i;
		assert_int_equal(pthread_create(&th[i], NULL, submit_loop, &subs[i]), 0);
	}
	/* Resize from outside all along: between 1 and MAX_W (more workers than cores). */
	bool joined[3] = { false, false, false };

	for (bool busy = true; busy;) {
		int rc = sx_pool_resize(pool, 1 + (unsigned)(tu_rand(&seed) % MAX_W));

		assert_true(rc == 0 || rc == -EAGAIN); /* blocked workers may hold every slot */
		rounds++;
		if (tu_rand(&seed) % 4 == 0)
			sched_yield();
		busy = false;
		for (unsigned i = 0; i < 3; i++) {
			if (!joined[i])
				joined[i] = pthread_tryjoin_np(th[i], NULL) == 0;
			busy |= !joined[i];
		}
	}
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	ids = atomic_load(&next_id);
	assert_int_equal(sx_pool_stats(pool, &c, NULL, 0), 0);
	if (!all_ran_once(ids, &c))
		fail_msg("a task did not run exactly once");
	assert_int_equal(c.executed, c.submitted);
	assert_true(c.slots <= MAX_W);
	assert_true(rounds > 0);
	sx_pool_destroy(pool);
	pool = NULL;
}

/* STRESS=N runs 10*N rounds: a parent has at most 6 children, so a round of per parents on each
 * of three threads takes at most 21 * per ids, under MAX_IDS. */
static void test_resizes_race_steals_and_submissions(void **state)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
	unsigned per = 3000;
#else
	unsigned per = 30000;
#endif
	unsigned scale = tu_stress_scale();

	(void)state;
	_Static_assert(21u * 30000u < MAX_IDS, "a round's ids fit");
	for (unsigned r = 0; r < scale; r++)
		resize_race_round(per, 12345 + 1000 * (uint64_t)r);
}

/* Shrink-grow cycles on an idle pool that parks at once, racing single submissions. */
static void test_idle_cycles_lose_no_wakeup(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	unsigned n = 200 * tu_stress_scale();
	uint64_t seed = 99;

	(void)state;
	memset(ran, 0, sizeof(ran));
	atomic_store(&next_id, 0);
	o.workers = 2;
	o.max_workers = MAX_W;
	o.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	for (unsigned i = 0; i < n; i++) {
		unsigned id = new_id();

		assert_int_equal(sx_pool_submit(pool, mark, (void *)(uintptr_t)id), 0);
		assert_int_equal(sx_pool_resize(pool, 1 + (unsigned)(tu_rand(&seed) % MAX_W)), 0);
		TU_WAIT_FOR(atomic_load(&ran[id]) == 1);
	}
	sx_pool_destroy(pool);
	pool = NULL;
}

/* SX_CANCEL while resizes and blocks are under way: run or cancelled, each exactly once. */
static atomic_uchar cancelled[MAX_IDS];

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	assert_int_equal(err, -ECANCELED);
	assert_true(fn == mark || fn == parent);
	atomic_fetch_add(&cancelled[(uintptr_t)arg], 1);
}

static void test_cancel_during_resizes(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	struct submitter s = { 5000, 5 };
	pthread_t th;
	uint64_t seed = 7;
	unsigned ids;

	(void)state;
	memset(ran, 0, sizeof(ran));
	memset(cancelled, 0, sizeof(cancelled));
	atomic_store(&next_id, 0);
	o.workers = 2;
	o.max_workers = MAX_W;
	o.on_cancel = on_cancel;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	assert_int_equal(pthread_create(&th, NULL, submit_loop, &s), 0);
	pthread_join(th, NULL);
	for (unsigned i = 0; i < 20; i++) {
		int rc = sx_pool_resize(pool, 1 + (unsigned)(tu_rand(&seed) % MAX_W));

		assert_true(rc == 0 || rc == -EAGAIN);
	}
	assert_int_equal(sx_pool_shutdown(pool, SX_CANCEL), 0);
	assert_int_equal(sx_pool_resize(pool, 2), -ESHUTDOWN);
	ids = atomic_load(&next_id);
	for (unsigned i = 0; i < ids; i++)
		if (atomic_load(&ran[i]) + atomic_load(&cancelled[i]) != 1)
			fail_msg("task %u: ran %u, cancelled %u", i, atomic_load(&ran[i]),
			    atomic_load(&cancelled[i]));
	sx_pool_destroy(pool);
	pool = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resizes_race_steals_and_submissions),
		cmocka_unit_test(test_idle_cycles_lose_no_wakeup),
		cmocka_unit_test(test_cancel_during_resizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
