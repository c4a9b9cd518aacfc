/*
 * Randomized torture of the side pool for blocking work: more submitters than cores spawning
 * blocking tasks (fn, task and promise forms) onto a small thread cap with a tiny idle time, so
 * that spawns race with threads retiring and starting; blocking tasks that submit pool tasks;
 * shutdowns (SX_DRAIN, SX_CANCEL) racing with all of it. Every check is an exact count: a task
 * that runs twice, never runs, or is neither run, told nor refused fails the test, and so does
 * a moment with more blocking tasks running than the cap.
 * STRESS=N multiplies the sizes (and rounds) by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <strix.h>

#include "testutil.h"

#define MAX_IDS (1u << 19)
#define CAP 4u

static atomic_uchar ran[MAX_IDS];
static atomic_uchar told[MAX_IDS];    /* handed to on_cancel, a task's cancel, or -ESHUTDOWN */
static atomic_uchar refused[MAX_IDS]; /* spawn or submit returned an error */
static sx_promise *promises[MAX_IDS];
static struct idtask {
	sx_task task;
	unsigned id;
} tasks[MAX_IDS];
static atomic_uint next_id;
static atomic_int running, running_max;
static sx_pool *pool;

static void pause_randomly(uint64_t *seed)
{
	uint64_t r = tu_rand(seed);

	if (r % 256 == 0) {
		struct timespec ts = { 0, (long)(tu_rand(seed) % 100000) };

		nanosleep(&ts, NULL);
	} else if (r % 16 == 0) {
		sched_yield();
	}
}

static void enter(void)
{
	int n = atomic_fetch_add(&running, 1) + 1;
	int m = atomic_load(&running_max);

	while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n))
		;
}

static void leave(void)
{
	atomic_fetch_sub(&running, 1);
}

static void mark(void *arg)
{
	atomic_fetch_add(&ran[(unsigned)(uintptr_t)arg], 1);
}

/* A blocking task: marks itself, sometimes blocks a little, sometimes submits a pool task. */
static void blocking(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t seed = id * 0x9e3779b97f4a7c15ull + 1;

	enter();
	atomic_fetch_add(&ran[id], 1);
	if (tu_rand(&seed) % 8 == 0) {
		unsigned child = atomic_fetch_add(&next_id, 1);

		if (child < MAX_IDS && sx_pool_submit(pool, mark, (void *)(uintptr_t)child) != 0)
			atomic_fetch_add(&refused[child], 1);
	}
	pause_randomly(&seed);
	leave();
}

static void task_run(sx_task *t)
{
	blocking((void *)(uintptr_t)SX_CONTAINER_OF(t, struct idtask, task)->id);
}

static void task_cancel(sx_task *t, int err)
{
	assert_int_equal(err, -ECANCELED);
	atomic_fetch_add(&told[SX_CONTAINER_OF(t, struct idtask, task)->id], 1);
}

static int step(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	blocking(ctx->arg);
	*out = ctx->arg;
	return 0;
}

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	assert_int_equal(err, -ECANCELED);
	assert_true(fn == mark || fn == blocking);
	atomic_fetch_add(&told[(unsigned)(uintptr_t)arg], 1);
}

struct submitter {
	pthread_t th;
	unsigned count;      /* tasks to spawn; 0: until the pool refuses */
	uint64_t seed;
	unsigned accepted;
};

/* One spawn of id in a random form: 0, or the spawn's error. */
static int spawn(unsigned id, uint64_t *seed)
{
	switch (tu_rand(seed) % 4) {
	case 0:
		tasks[id] = (struct idtask){ SX_TASK_INIT(task_run, task_cancel), id };
		return sx_pool_spawn_blocking_task(pool, &tasks[id].task);
	case 1:
		return sx_promise_blocking(pool, step, (void *)(uintptr_t)id, &promises[id]);
	default:
		return sx_pool_spawn_blocking(pool, blocking, (void *)(uintptr_t)id);
	}
}

static void *submit_loop(void *arg)
{
	struct submitter *s = arg;

	for (unsigned i = 0; s->count == 0 || i < s->count; i++) {
		unsigned id = atomic_fetch_add(&next_id, 1);
		int rc;

		if (id >= MAX_IDS)
			break;
		while ((rc = spawn(id, &s->seed)) == -EAGAIN)
			sched_yield(); /* the queue is full: back off */
		if (rc == -ESHUTDOWN) {
			atomic_fetch_add(&refused[id], 1);
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
	memset(told, 0, sizeof(told));
	memset(refused, 0, sizeof(refused));
	memset(promises, 0, sizeof(promises));
	atomic_store(&next_id, 0);
	atomic_store(&running, 0);
	atomic_store(&running_max, 0);
}

/* The promises' outcomes: each settled, fulfilled with its id when it ran, -ESHUTDOWN (told)
 * when SX_CANCEL discarded it. */
static void collect_promises(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		void *v = NULL;
		int rc;

		if (promises[i] == NULL)
			continue;
		assert_true(sx_promise_settled(promises[i]));
		rc = sx_promise_get(promises[i], 0, &v);
		if (rc == 0) {
			assert_ptr_equal(v, (void *)(uintptr_t)i);
		} else {
			assert_int_equal(rc, -ESHUTDOWN);
			atomic_fetch_add(&told[i], 1);
		}
		sx_promise_release(promises[i]);
		promises[i] = NULL;
	}
}

static void check_each_id_once(bool allow_told)
{
	unsigned n = atomic_load(&next_id);

	if (n > MAX_IDS)
		n = MAX_IDS;
	collect_promises(n);
	for (unsigned i = 0; i < n; i++) {
		if (ran[i] + told[i] + refused[i] != 1)
			fail_msg("id %u: ran %u, told %u, refused %u times", i, ran[i], told[i],
			    refused[i]);
		if (!allow_told && told[i] != 0)
			fail_msg("id %u was told in a run that must not cancel", i);
	}
	if (atomic_load(&running_max) > (int)CAP)
		fail_msg("%d blocking tasks ran at once, the cap is %u", atomic_load(&running_max),
		    CAP);
}

static sx_pool *make(int64_t idle_ns)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;

	o.workers = 2;
	o.blocking_max_threads = CAP;
	o.blocking_idle_ns = idle_ns;
	o.on_cancel = on_cancel;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	return p;
}

static bool quiet(void)
{
	sx_pool_counters c;

	return sx_pool_stats(pool, &c, NULL, 0) == 0 && c.blocking_queued == 0 &&
	    atomic_load(&running) == 0;
}

/* Idle times that make threads retire between bursts, and one that never lets them. */
static const int64_t idle_times[] = { 1000, 50000, 2000000 };

static void test_spawns_racing_retirement_run_exactly_once(void **state)
{
	/* Ids for 8 submitters' tasks and the pool tasks an eighth of those submit. */
	const unsigned per_thread = 10000u * tu_stress_scale() > MAX_IDS / 10 ?
	    MAX_IDS / 10 : 10000u * tu_stress_scale();
	struct submitter s[8];

	(void)state;
	for (unsigned round = 0; round < 3; round++) {
		unsigned total = 0;

		reset_ids();
		pool = make(idle_times[round]);
		for (unsigned i = 0; i < 8; i++) {
			s[i] = (struct submitter){ .count = per_thread, .seed = 0x1234567u * (i + 1) };
			assert_int_equal(pthread_create(&s[i].th, NULL, submit_loop, &s[i]), 0);
		}
		for (unsigned i = 0; i < 8; i++) {
			assert_int_equal(pthread_join(s[i].th, NULL), 0);
			total += s[i].accepted;
		}
		assert_int_equal(total, 8 * per_thread);
		/* A lost wake-up leaves a task queued forever: wait with a deadline, then count. */
		TU_WAIT_FOR(quiet());
		sx_pool_destroy(pool);
		check_each_id_once(false);
	}
}

static void shutdown_race(int mode, unsigned rounds)
{
	for (unsigned round = 0; round < rounds; round++) {
		struct submitter s[6];
		uint64_t seed = 99 + round;
		sx_pool_counters c;
		struct timespec ts;

		reset_ids();
		pool = make(idle_times[round % 3]);
		for (unsigned i = 0; i < 6; i++) {
			s[i] = (struct submitter){ .count = 0, .seed = seed * (i + 7) };
			assert_int_equal(pthread_create(&s[i].th, NULL, submit_loop, &s[i]), 0);
		}
		ts = (struct timespec){ 0, (long)(tu_rand(&seed) % 20000000) };
		nanosleep(&ts, NULL);
		assert_int_equal(sx_pool_shutdown(pool, mode), 0);
		for (unsigned i = 0; i < 6; i++)
			assert_int_equal(pthread_join(s[i].th, NULL), 0);
		assert_int_equal(sx_pool_stats(pool, &c, NULL, 0), 0);
		assert_int_equal(c.blocking_threads, 0);
		assert_int_equal(c.blocking_queued, 0);
		assert_int_equal(atomic_load(&running), 0); /* every side thread was joined */
		if (mode == SX_DRAIN)
			assert_int_equal(c.cancelled, 0);
		check_each_id_once(mode == SX_CANCEL);
		sx_pool_destroy(pool);
	}
}

static void test_drain_racing_with_spawns_loses_nothing(void **state)
{
	(void)state;
	shutdown_race(SX_DRAIN, 6 * tu_stress_scale());
}

static void test_cancel_racing_with_spawns_tells_everything_once(void **state)
{
	(void)state;
	shutdown_race(SX_CANCEL, 6 * tu_stress_scale());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawns_racing_retirement_run_exactly_once),
		cmocka_unit_test(test_drain_racing_with_spawns_loses_nothing),
		cmocka_unit_test(test_cancel_racing_with_spawns_tells_everything_once),
	};

	return cmocka_run_group_tests_name("blocking stress", tests, NULL, NULL);
}
