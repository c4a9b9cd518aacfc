/*
 * Randomized torture of the pool: more workers than cores, several outside submitters with
 * random pauses, tasks spawning tasks, shutdowns racing with submissions. Every check is an exact
 * count: a task that runs twice, never runs, or is neither run nor cancelled fails the test.
 * STRESS=N multiplies the sizes (and rounds) by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <strix.h>

#include "testutil.h"

#define MAX_IDS (1u << 22)

static atomic_uchar ran[MAX_IDS];
static atomic_uchar cancelled[MAX_IDS]; /* handed to on_cancel */
static atomic_uchar refused[MAX_IDS];   /* submit returned -ESHUTDOWN */
static atomic_uint next_id;
static sx_pool *pool;

static void pause_randomly(uint64_t *seed)
{
	uint64_t r = tu_rand(seed);

	if (r % 1024 == 0) {
		struct timespec ts = { 0, (long)(tu_rand(seed) % 200000) };

		nanosleep(&ts, NULL);
	} else if (r % 64 == 0) {
		sched_yield();
	}
}

static void mark(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;

	atomic_fetch_add(&ran[id], 1);
}

/* A parent marks itself, then spawns one child (from inside the worker: the local path). */
static void parent(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	unsigned child = atomic_fetch_add(&next_id, 1);

	atomic_fetch_add(&ran[id], 1);
	if (child < MAX_IDS && sx_pool_submit(pool, mark, (void *)(uintptr_t)child) != 0)
		atomic_fetch_add(&refused[child], 1);
}

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	assert_int_equal(err, -ECANCELED);
	assert_true(fn == mark || fn == parent);
	atomic_fetch_add(&cancelled[(unsigned)(uintptr_t)arg], 1);
}

struct submitter {
	pthread_t th;
	unsigned count;      /* parents to submit; 0: until the pool refuses */
	uint64_t seed;
	unsigned accepted;
	unsigned refused;
};

static void *submit_loop(void *arg)
{
	struct submitter *s = arg;

	for (unsigned i = 0; s->count == 0 || i < s->count; i++) {
		unsigned id = atomic_fetch_add(&next_id, 1);
		int rc;

		if (id >= MAX_IDS)
			break;
		rc = sx_pool_submit(pool, parent, (void *)(uintptr_t)id);
		if (rc == -ESHUTDOWN) {
			atomic_fetch_add(&refused[id], 1);
			s->refused++;
			break;
		}
		assert_int_equal(rc, 0);
		s->accepted++;
		pause_randomly(&s->seed);
	}
	return NULL;
}

static void reset_ids(void)
{
	memset(ran, 0, sizeof(ran));
	memset(cancelled, 0, sizeof(cancelled));
	memset(refused, 0, sizeof(refused));
	atomic_store(&next_id, 0);
}

/* Every id handed out was run, cancelled or refused: exactly one of them, exactly once. */
static void check_each_id_once(bool allow_cancel)
{
	unsigned n = atomic_load(&next_id);

	if (n > MAX_IDS)
		n = MAX_IDS;
	for (unsigned i = 0; i < n; i++) {
		if (ran[i] + cancelled[i] + refused[i] != 1)
			fail_msg("id %u: ran %u, cancelled %u, refused %u times", i, ran[i],
			    cancelled[i], refused[i]);
		if (!allow_cancel && cancelled[i] != 0)
			fail_msg("id %u was cancelled in a run that must not cancel", i);
	}
}

static sx_pool *make(unsigned workers, unsigned ring, long long spin)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;

	o.workers = workers;
	o.ring_size = ring;
	o.spin_ns = spin;
	o.on_cancel = on_cancel;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	return p;
}

static void run_submitters(struct submitter *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_create(&s[i].th, NULL, submit_loop, &s[i]), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(pthread_join(s[i].th, NULL), 0);
}

static void test_million_tasks_from_four_threads_run_exactly_once(void **state)
{
	const unsigned per_thread = 125000u * tu_stress_scale() > MAX_IDS / 8 ?
	    MAX_IDS / 8 : 125000u * tu_stress_scale();
	struct submitter s[4];
	sx_pool_counters c;

	(void)state;
	reset_ids();
	pool = make(8, 64, 0);
	for (unsigned i = 0; i < 4; i++)
		s[i] = (struct submitter){ .count = per_thread, .seed = 0x1234567u * (i + 1) };
	run_submitters(s, 4);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	/* 4 x per_thread parents, each with one child: 1,000,000 tasks by default. */
	assert_int_equal(atomic_load(&next_id), 8 * per_thread);
	check_each_id_once(false);
	assert_int_equal(sx_pool_stats(pool, &c, NULL, 0), 0);
	assert_int_equal(c.submitted, 8 * per_thread);
	assert_int_equal(c.executed, 8 * per_thread);
	assert_int_equal(c.remote, 4 * per_thread);
	assert_int_equal(c.total.injected, c.remote + c.total.overflowed);
	sx_pool_destroy(pool);
}

static void test_park_and_wake_under_random_timing(void **state)
{
	struct submitter s[3];
	sx_pool_counters c;

	(void)state;
	for (unsigned round = 0; round < 2 * tu_stress_scale(); round++) {
		reset_ids();
		/* Park at once: nearly every submission must wake a sleeper. */
		pool = make(4, 0, round % 2 ? SX_SPIN_NONE : 2000);
		for (unsigned i = 0; i < 3; i++)
			s[i] = (struct submitter){ .count = 3000, .seed = 77u * (i + 1) + round };
		run_submitters(s, 3);
		/* A lost wake-up leaves a task unrun forever: wait with a deadline, then count. */
		TU_WAIT_FOR(sx_pool_stats(pool, &c, NULL, 0) == 0 && c.executed == 18000);
		assert_int_equal(sx_pool_wait_idle(pool), 0);
		check_each_id_once(false);
		assert_true(c.total.parks > 0);
		sx_pool_destroy(pool);
	}
}

/*
 * A task hands one task to the other worker and spins until it has run (a ping-pong between
 * workers), with workers that park as soon as a search fails and CPU hogs that preempt them at
 * random. The hand-off goes through the spinner's LIFO slot, which only a thief can take while
 * its owner spins: a parker and the spawner that miss each other's write (the parker's look at
 * the queues, the spawner's look at who is searching) leave it there forever. A hand-off that
 * has not run within the deadline fails the test instead of hanging it.
 */
struct handoff {
	atomic_int token;
	atomic_bool stop;
	unsigned rounds, done;
	bool lost;
};

static void handoff_pong(void *arg)
{
	atomic_store_explicit(&((struct handoff *)arg)->token, 1, memory_order_release);
}

static void handoff_ping(void *arg)
{
	struct handoff *h = arg;

	for (; h->done < h->rounds; h->done++) {
		uint64_t t0 = tu_now_ns();

		atomic_store_explicit(&h->token, 0, memory_order_relaxed);
		assert_int_equal(sx_pool_submit(pool, handoff_pong, h), 0);
		while (!atomic_load_explicit(&h->token, memory_order_acquire)) {
			if (tu_now_ns() - t0 > TU_DEADLINE_NS / 6) {
				h->lost = true;
				return;
			}
		}
	}
}

static void *cpu_hog(void *arg)
{
	struct handoff *h = arg;
	uint64_t seed = (uint64_t)(uintptr_t)&seed;

	while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
		uint64_t until = tu_now_ns() + tu_rand(&seed) % 200000;

		while (tu_now_ns() < until)
			;
		if (tu_rand(&seed) % 2)
			sched_yield();
		else
			tu_sleep_ns(tu_rand(&seed) % 100000);
	}
	return NULL;
}

static void test_handoff_to_a_parking_worker_is_never_missed(void **state)
{
	struct handoff h = { .rounds = 200000 * tu_stress_scale() };
	pthread_t hog[2];

	(void)state;
	pool = make(2, 0, SX_SPIN_NONE);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&hog[i], NULL, cpu_hog, &h), 0);
	assert_int_equal(sx_pool_submit(pool, handoff_ping, &h), 0);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	atomic_store(&h.stop, true);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_join(hog[i], NULL), 0);
	if (h.lost)
		fail_msg("hand-off %u of %u never ran", h.done, h.rounds);
	assert_int_equal(h.done, h.rounds);
	sx_pool_destroy(pool);
}

static void shutdown_race(int mode, unsigned rounds)
{
	for (unsigned round = 0; round < rounds; round++) {
		struct submitter s[3];
		uint64_t seed = 99 + round;
		sx_pool_counters c;
		unsigned accepted = 0;
		struct timespec ts;

		reset_ids();
		pool = make(6, 16, round % 3 == 0 ? SX_SPIN_NONE : 0);
		for (unsigned i = 0; i < 3; i++) {
			s[i] = (struct submitter){ .count = 0, .seed = seed * (i + 7) };
			assert_int_equal(pthread_create(&s[i].th, NULL, submit_loop, &s[i]), 0);
		}
		ts = (struct timespec){ 0, (long)(tu_rand(&seed) % 20000000) };
		nanosleep(&ts, NULL);
		assert_int_equal(sx_pool_shutdown(pool, mode), 0);
		for (unsigned i = 0; i < 3; i++) {
			assert_int_equal(pthread_join(s[i].th, NULL), 0);
			accepted += s[i].accepted;
		}
		check_each_id_once(mode == SX_CANCEL);
		assert_int_equal(sx_pool_stats(pool, &c, NULL, 0), 0);
		assert_int_equal(c.remote, accepted);
		assert_int_equal(c.executed + c.cancelled, c.submitted);
		if (mode == SX_DRAIN)
			assert_int_equal(c.cancelled, 0);
		sx_pool_destroy(pool);
	}
}

static void test_drain_racing_with_submitters_loses_nothing(void **state)
{
	(void)state;
	shutdown_race(SX_DRAIN, 5 * tu_stress_scale());
}

static void test_cancel_racing_with_submitters_hands_back_everything_once(void **state)
{
	(void)state;
	shutdown_race(SX_CANCEL, 5 * tu_stress_scale());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_million_tasks_from_four_threads_run_exactly_once),
		cmocka_unit_test(test_park_and_wake_under_random_timing),
		cmocka_unit_test(test_handoff_to_a_parking_worker_is_never_missed),
		cmocka_unit_test(test_drain_racing_with_submitters_loses_nothing),
		cmocka_unit_test(test_cancel_racing_with_submitters_hands_back_everything_once),
	};

	return cmocka_run_group_tests_name("pool stress", tests, NULL, NULL);
}
