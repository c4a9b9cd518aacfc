/* Strands: one at a time and in order, from outside and from tasks, many submitters, fairness,
 * destroy with work pending, shutdowns, bad input. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

static sx_pool *pool;

#define STRANDS 16
#define SUBMITTERS 4

struct lane {
	sx_strand *s;
	atomic_int inside;                 /* tasks of this strand running now */
	uint64_t next[SUBMITTERS];         /* the sequence number expected per submitter */
	atomic_uint_fast64_t ran;
	atomic_int bad;
};

static struct lane lanes[STRANDS];

struct item {
	sx_task task;
	struct lane *lane;
	unsigned who;
	uint64_t seq;
	atomic_int runs, cancels;
};

static void check_and_count(struct lane *l, unsigned who, uint64_t seq)
{
	if (atomic_fetch_add(&l->inside, 1) != 0)
		atomic_store(&l->bad, 1);
	if (l->next[who] != seq)   /* plain: the strand's tasks are serial, the check is ours */
		atomic_store(&l->bad, 2);
	l->next[who] = seq + 1;
	atomic_fetch_sub(&l->inside, 1);
	atomic_fetch_add(&l->ran, 1);
}

static void item_run(sx_task *t)
{
	struct item *it = SX_CONTAINER_OF(t, struct item, task);

	atomic_fetch_add(&it->runs, 1);
	check_and_count(it->lane, it->who, it->seq);
}

static void item_cancel(sx_task *t, int err)
{
	struct item *it = SX_CONTAINER_OF(t, struct item, task);

	assert_int_equal(err, -ECANCELED);
	atomic_fetch_add(&it->cancels, 1);
}

static void setup_lanes(void)
{
	memset(lanes, 0, sizeof(lanes));
	for (int i = 0; i < STRANDS; i++)
		assert_int_equal(sx_strand_create(pool, &lanes[i].s), 0);
}

static void destroy_lanes(void)
{
	for (int i = 0; i < STRANDS; i++)
		sx_strand_destroy(lanes[i].s);
}

#define PER_SUBMITTER 20000

static struct item items[SUBMITTERS][PER_SUBMITTER];

static void *submitter(void *arg)
{
	unsigned who = (unsigned)(uintptr_t)arg;
	uint64_t seq[STRANDS] = { 0 }, seed = who + 1;

	for (unsigned k = 0; k < PER_SUBMITTER; k++) {
		struct item *it = &items[who][k];
		unsigned li = (unsigned)(tu_rand(&seed) % STRANDS);

		it->task = (sx_task)SX_TASK_INIT(item_run, item_cancel);
		it->lane = &lanes[li];
		it->who = who;
		it->seq = seq[li]++;
		assert_int_equal(sx_strand_submit_task(lanes[li].s, &it->task), 0);
	}
	return NULL;
}

static uint64_t total_ran(void)
{
	uint64_t n = 0;

	for (int i = 0; i < STRANDS; i++) {
		assert_int_equal(atomic_load(&lanes[i].bad), 0);
		n += atomic_load(&lanes[i].ran);
	}
	return n;
}

static void test_serial_and_in_order_per_submitter(void **state)
{
	pthread_t t[SUBMITTERS];

	(void)state;
	pool = tu_pool(4);
	memset(items, 0, sizeof(items));
	setup_lanes();
	for (uintptr_t i = 0; i < SUBMITTERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, submitter, (void *)i), 0);
	for (int i = 0; i < SUBMITTERS; i++)
		pthread_join(t[i], NULL);
	TU_WAIT_FOR(total_ran() == SUBMITTERS * PER_SUBMITTER);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	for (int w = 0; w < SUBMITTERS; w++)
		for (int k = 0; k < PER_SUBMITTER; k++)
			assert_int_equal(atomic_load(&items[w][k].runs), 1);
	destroy_lanes();
	sx_pool_destroy(pool);
}

/* Two actors on strands, each hop submitted from the other's task (the worker path). */
static sx_strand *ping, *pong;
static atomic_int hops, ping_inside, pong_inside, hop_bad;

#define HOPS 20000

static void hop(void *arg);

static void hop(void *arg)
{
	bool on_ping = arg == (void *)&ping;
	atomic_int *inside = on_ping ? &ping_inside : &pong_inside;

	if (atomic_fetch_add(inside, 1) != 0)
		atomic_store(&hop_bad, 1);
	atomic_fetch_sub(inside, 1);
	if (atomic_fetch_add(&hops, 1) + 1 < HOPS)
		assert_int_equal(sx_strand_submit(on_ping ? pong : ping, hop,
		    on_ping ? (void *)&pong : (void *)&ping), 0);
}

static void test_actors_hand_off_between_strands(void **state)
{
	(void)state;
	pool = tu_pool(2);
	atomic_store(&hops, 0);
	assert_int_equal(sx_strand_create(pool, &ping), 0);
	assert_int_equal(sx_strand_create(pool, &pong), 0);
	assert_int_equal(sx_strand_submit(ping, hop, &ping), 0);
	TU_WAIT_FOR(atomic_load(&hops) == HOPS);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(atomic_load(&hop_bad), 0);
	sx_strand_destroy(ping);
	sx_strand_destroy(pong);
	sx_pool_destroy(pool);
}

/* One worker: a strand task that keeps resubmitting itself must let a plain task through. */
static sx_strand *hog;
static atomic_int plain_ran, hog_runs;

static void hog_task(void *arg)
{
	(void)arg;
	atomic_fetch_add(&hog_runs, 1);
	if (atomic_load(&plain_ran) == 0)
		assert_int_equal(sx_strand_submit(hog, hog_task, NULL), 0);
}

static void plain(void *arg)
{
	(void)arg;
	atomic_store(&plain_ran, 1);
}

static void start_hog(void *arg)
{
	(void)arg;
	assert_int_equal(sx_strand_submit(hog, hog_task, NULL), 0);
	assert_int_equal(sx_pool_submit(pool, plain, NULL), 0);
}

static void test_a_busy_strand_yields_its_worker(void **state)
{
	(void)state;
	pool = tu_pool(1);
	atomic_store(&plain_ran, 0);
	atomic_store(&hog_runs, 0);
	assert_int_equal(sx_strand_create(pool, &hog), 0);
	assert_int_equal(sx_pool_submit(pool, start_hog, NULL), 0);
	TU_WAIT_FOR(atomic_load(&plain_ran) == 1);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_true(atomic_load(&hog_runs) >= 1);
	sx_strand_destroy(hog);
	sx_pool_destroy(pool);
}

/* Destroy right after submitting: everything still runs, then the strand frees itself (ASan
 * checks the memory). */
static atomic_int counted;

static void count(void *arg)
{
	(void)arg;
	atomic_fetch_add(&counted, 1);
}

static void test_destroy_with_work_pending(void **state)
{
	sx_strand *s;

	(void)state;
	pool = tu_pool(2);
	atomic_store(&counted, 0);
	for (int round = 0; round < 50; round++) {
		assert_int_equal(sx_strand_create(pool, &s), 0);
		for (int i = 0; i < 1000; i++)
			assert_int_equal(sx_strand_submit(s, count, NULL), 0);
		sx_strand_destroy(s);
	}
	assert_int_equal(sx_strand_create(pool, &s), 0);
	sx_strand_destroy(s); /* idle: freed at once */
	sx_strand_destroy(NULL);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	assert_int_equal(atomic_load(&counted), 50 * 1000);
	sx_pool_destroy(pool);
}

static void test_bad_input(void **state)
{
	sx_strand *s = (sx_strand *)&s;
	sx_task t = SX_TASK_INIT(NULL, NULL);

	(void)state;
	pool = tu_pool(1);
	assert_int_equal(sx_strand_create(NULL, &s), -EINVAL);
	assert_true(s == (sx_strand *)&s);
	assert_int_equal(sx_strand_create(pool, NULL), -EINVAL);
	assert_int_equal(sx_strand_create(pool, &s), 0);
	assert_int_equal(sx_strand_submit(NULL, count, NULL), -EINVAL);
	assert_int_equal(sx_strand_submit(s, NULL, NULL), -EINVAL);
	assert_int_equal(sx_strand_submit_task(s, NULL), -EINVAL);
	assert_int_equal(sx_strand_submit_task(s, &t), -EINVAL);
	assert_int_equal(sx_strand_submit_task(NULL, &t), -EINVAL);
	assert_int_equal(sx_pool_shutdown(pool, SX_DRAIN), 0);
	assert_int_equal(sx_strand_submit(s, count, NULL), -ESHUTDOWN);
	sx_strand_destroy(s);
	sx_pool_destroy(pool);
}

/* SX_DRAIN runs what strands hold; SX_CANCEL hands each task that did not run to its cancel
 * callback exactly once. */
static void shutdown_with_strands_queued(int mode)
{
	struct tu_held held;
	uint64_t ran = 0, cancels = 0;

	pool = tu_pool(1);
	memset(items, 0, sizeof(items));
	setup_lanes();
	tu_hold(&held, pool);
	submitter((void *)0);
	tu_shutdown_held(&held, mode);
	tu_release(&held);
	for (int k = 0; k < PER_SUBMITTER; k++) {
		int r = atomic_load(&items[0][k].runs), c = atomic_load(&items[0][k].cancels);

		assert_int_equal(r + c, 1);
		ran += (uint64_t)r;
		cancels += (uint64_t)c;
	}
	if (mode == SX_DRAIN)
		assert_int_equal(ran, PER_SUBMITTER);
	else
		assert_int_equal(cancels, PER_SUBMITTER);
	assert_int_equal(total_ran(), ran);
	destroy_lanes(); /* idle after either shutdown: freed at once */
	sx_pool_destroy(pool);
}

static void test_drain_runs_what_strands_hold(void **state)
{
	(void)state;
	shutdown_with_strands_queued(SX_DRAIN);
}

static void test_cancel_hands_each_task_to_its_callback(void **state)
{
	(void)state;
	shutdown_with_strands_queued(SX_CANCEL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_and_in_order_per_submitter),
		cmocka_unit_test(test_actors_hand_off_between_strands),
		cmocka_unit_test(test_a_busy_strand_yields_its_worker),
		cmocka_unit_test(test_destroy_with_work_pending),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_drain_runs_what_strands_hold),
		cmocka_unit_test(test_cancel_hands_each_task_to_its_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
