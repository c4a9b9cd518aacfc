/*
 * Randomized torture of strands and joins: more workers than cores, outside submitters with
 * random pauses, strand tasks that submit to other strands and fork with sx_join, and a shutdown
 * (drain or cancel, at random) racing with all of it. Exact checks: every submission ran, was
 * cancelled or was refused - exactly one of the three; a strand never ran two tasks at once; each
 * submitter's tasks on one strand ran in submission order. STRESS=N multiplies the sizes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

#define STRANDS 32
#define SUBMITTERS 3
#define WORKERS 6

struct lane {
	sx_strand *s;
	atomic_int inside;
	uint64_t next[SUBMITTERS];
	atomic_int bad;
};

struct item {
	sx_task task;
	struct lane *lane;
	int who;             /* submitter, or -1 for a child submitted by a task */
	uint64_t seq;
	atomic_int runs, cancels, refused;
};

static sx_pool *pool;
static struct lane lanes[STRANDS];
static struct item *items, *kids;
static unsigned per_submitter, max_kids;
static atomic_uint nkids;

static void item_run(sx_task *t);
static void item_cancel(sx_task *t, int err);

static void item_run(sx_task *t)
{
	struct item *it = SX_CONTAINER_OF(t, struct item, task);
	struct lane *l = it->lane;
	uint64_t seed = (uint64_t)(uintptr_t)it * 2654435761u + 1;

	atomic_fetch_add(&it->runs, 1);
	if (atomic_fetch_add(&l->inside, 1) != 0)
		atomic_store(&l->bad, 1);
	if (it->who >= 0) {
		if (l->next[it->who] != it->seq)
			atomic_store(&l->bad, 2);
		l->next[it->who] = it->seq + 1;
	}
	if (tu_rand(&seed) % 4 == 0) { /* some work, so queues build up for the shutdown to meet */
		uint64_t t0 = tu_now_ns();

		while (tu_now_ns() - t0 < 2000)
			;
	}
	atomic_fetch_sub(&l->inside, 1);
	if (tu_rand(&seed) % 16 == 0) {
		struct tu_fib f = { pool, 10, 0 };

		tu_fib(&f);
		assert_int_equal(f.r, 55);
	}
	if (tu_rand(&seed) % 8 == 0) {
		unsigned k = atomic_fetch_add(&nkids, 1);

		if (k < max_kids) {
			struct item *c = &kids[k];

			c->task = (sx_task)SX_TASK_INIT(item_run, item_cancel);
			c->lane = &lanes[tu_rand(&seed) % STRANDS];
			c->who = -1;
			if (sx_strand_submit_task(c->lane->s, &c->task) != 0)
				atomic_fetch_add(&c->refused, 1);
		}
	}
}

static void item_cancel(sx_task *t, int err)
{
	assert_int_equal(err, -ECANCELED);
	atomic_fetch_add(&SX_CONTAINER_OF(t, struct item, task)->cancels, 1);
}

static void *submitter(void *arg)
{
	int who = (int)(uintptr_t)arg;
	uint64_t seq[STRANDS] = { 0 }, seed = (uint64_t)who * 7919 + 17;

	for (unsigned k = 0; k < per_submitter; k++) {
		struct item *it = &items[(unsigned)who * per_submitter + k];
		unsigned li = (unsigned)(tu_rand(&seed) % STRANDS);
		uint64_t r = tu_rand(&seed);

		it->task = (sx_task)SX_TASK_INIT(item_run, item_cancel);
		it->lane = &lanes[li];
		it->who = who;
		it->seq = seq[li];
		if (sx_strand_submit_task(lanes[li].s, &it->task) == 0)
			seq[li]++;
		else
			atomic_fetch_add(&it->refused, 1);
		if (r % 4096 == 0)
			tu_sleep_ns(r % 300000);
		else if (r % 128 == 0)
			sched_yield();
	}
	return NULL;
}

static void one_round(uint64_t *seed)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	pthread_t t[SUBMITTERS];
	int mode = tu_rand(seed) % 2 ? SX_DRAIN : SX_CANCEL;
	unsigned n = SUBMITTERS * per_submitter, made;

	o.workers = WORKERS;
	o.spin_ns = (int64_t)(tu_rand(seed) % 3) * 20000 - 1; /* none, ~20 us, ~40 us */
	if (o.spin_ns < 0)
		o.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	memset(lanes, 0, sizeof(lanes));
	memset(items, 0, sizeof(*items) * n);
	memset(kids, 0, sizeof(*kids) * max_kids);
	atomic_store(&nkids, 0);
	for (int i = 0; i < STRANDS; i++)
		assert_int_equal(sx_strand_create(pool, &lanes[i].s), 0);
	for (uintptr_t i = 0; i < SUBMITTERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, submitter, (void *)i), 0);
	tu_sleep_ns(tu_rand(seed) % 20000000);
	assert_int_equal(sx_pool_shutdown(pool, mode), 0);
	for (int i = 0; i < SUBMITTERS; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < n; i++) {
		struct item *it = &items[i];
		int sum = atomic_load(&it->runs) + atomic_load(&it->cancels) +
		    atomic_load(&it->refused);

		if (sum != 1)
			fail_msg("item %u: ran %d, cancelled %d, refused %d", i,
			    atomic_load(&it->runs), atomic_load(&it->cancels),
			    atomic_load(&it->refused));
		if (mode == SX_DRAIN)
			assert_int_equal(atomic_load(&it->cancels), 0);
	}
	if (getenv("STRESS_VERBOSE") != NULL) {
		unsigned ran = 0, can = 0;

		for (unsigned i = 0; i < n; i++) {
			ran += (unsigned)atomic_load(&items[i].runs);
			can += (unsigned)atomic_load(&items[i].cancels);
		}
		print_message("%s: %u ran, %u cancelled, %u refused, %u children\n",
		    mode == SX_DRAIN ? "drain" : "cancel", ran, can, n - ran - can,
		    atomic_load(&nkids));
	}
	made = atomic_load(&nkids) < max_kids ? atomic_load(&nkids) : max_kids;
	for (unsigned i = 0; i < made; i++) {
		struct item *c = &kids[i];

		assert_int_equal(atomic_load(&c->runs) + atomic_load(&c->cancels) +
		    atomic_load(&c->refused), 1);
	}
	for (int i = 0; i < STRANDS; i++) {
		assert_int_equal(atomic_load(&lanes[i].bad), 0);
		sx_strand_destroy(lanes[i].s);
	}
	sx_pool_destroy(pool);
}

static void test_strands_and_joins_under_shutdown(void **state)
{
	unsigned rounds = 6 * tu_stress_scale();
	uint64_t seed = 12345;

	(void)state;
	per_submitter = 20000 * (tu_stress_scale() > 4 ? 4 : tu_stress_scale());
	max_kids = SUBMITTERS * per_submitter;
	items = calloc(SUBMITTERS * per_submitter, sizeof(*items));
	kids = calloc(max_kids, sizeof(*kids));
	for (unsigned r = 0; r < rounds; r++)
		one_round(&seed);
	free(items);
	free(kids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strands_and_joins_under_shutdown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
