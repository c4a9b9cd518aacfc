/*
 * Unit tests of the elastic pool: sx_pool_resize (grow, shrink, both while tasks run, from
 * outside and from a worker), sx_pool_block_in_place (the tasks queued behind a blocking worker
 * keep running), their bad input, and the counts sx_pool_stats reports.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <strix.h>

#include "testutil.h"

static sx_pool *make_pool(unsigned workers, unsigned max_workers)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	o.workers = workers;
	o.max_workers = max_workers;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	return p;
}

/* ---- tasks that meet: n of them running at once proves n workers ------------------------- */

struct meet {
	unsigned want;
	atomic_uint arrived;
};

static void meet_task(void *arg)
{
	struct meet *m = arg;

	atomic_fetch_add(&m->arrived, 1);
	TU_WAIT_FOR(atomic_load(&m->arrived) >= m->want);
}

/* Submit `n` tasks that each wait until all n run: only n workers at once can end them. */
static void meet_n(sx_pool *p, unsigned n)
{
	struct meet *m = calloc(1, sizeof(*m));

	m->want = n;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sx_pool_submit(p, meet_task, m), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&m->arrived), n);
	free(m);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void test_bad_input_changes_nothing(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool_counters c;
	sx_pool *p = NULL;

	(void)state;
	o.workers = 2;
	o.max_workers = 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.max_workers = SX_POOL_MAX_WORKERS + 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.max_workers = 0;
	o.reserved[0] = 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	assert_null(p);

	p = make_pool(2, 4);
	assert_int_equal(sx_pool_resize(NULL, 2), -EINVAL);
	assert_int_equal(sx_pool_resize(p, 0), -EINVAL);
	assert_int_equal(sx_pool_resize(p, 5), -EINVAL);
	assert_int_equal(sx_pool_workers(p), 2);
	assert_int_equal(sx_pool_block_in_place(NULL, tu_held_noop, NULL), -EINVAL);
	assert_int_equal(sx_pool_block_in_place(p, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.workers, 2);
	assert_int_equal(c.max_workers, 4);
	assert_int_equal(c.slots, 2);
	assert_int_equal(c.retired, 0);
	sx_pool_destroy(p);
}

static void test_default_max_workers(void **state)
{
	sx_pool_counters c;
	sx_pool *p = make_pool(1, 0);

	(void)state;
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.max_workers, SX_POOL_DEFAULT_MAX_WORKERS);
	assert_int_equal(sx_pool_resize(p, SX_POOL_DEFAULT_MAX_WORKERS + 1), -EINVAL);
	sx_pool_destroy(p);
}

/* ---- grow and shrink -------------------------------------------------------------------------- */

static void test_grow_then_shrink_to_one(void **state)
{
	sx_pool_counters c;
	sx_pool *p = make_pool(1, 8);

	(void)state;
	assert_int_equal(sx_pool_resize(p, 4), 0);
	assert_int_equal(sx_pool_workers(p), 4);
	meet_n(p, 4); /* four tasks at once: four workers */
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.slots, 4);

	assert_int_equal(sx_pool_resize(p, 1), 0);
	assert_int_equal(sx_pool_workers(p), 1);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.workers, 1);
	assert_int_equal(c.retired, 3);
	for (unsigned i = 0; i < 200; i++)
		assert_int_equal(sx_pool_submit(p, tu_held_noop, NULL), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(sx_pool_resize(p, 3), 0);
	meet_n(p, 3);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_true(c.slots <= 8);
	assert_int_equal(c.executed, c.submitted);
	sx_pool_destroy(p);
}

/* Every task records the worker it ran on: after a shrink to one from outside, one index. */
static atomic_uint ran_on[SX_POOL_DEFAULT_MAX_WORKERS];

static void record_index(void *arg)
{
	int i = sx_pool_worker_index(arg);

	assert_true(i >= 0 && i < 8);
	atomic_fetch_add(&ran_on[i], 1);
}

static void test_after_shrink_one_worker_runs_everything(void **state)
{
	sx_pool *p = make_pool(4, 8);
	unsigned used = 0;

	(void)state;
	meet_n(p, 4);
	assert_int_equal(sx_pool_resize(p, 1), 0);
	for (unsigned i = 0; i < 8; i++)
		atomic_store(&ran_on[i], 0);
	for (unsigned i = 0; i < 500; i++)
		assert_int_equal(sx_pool_submit(p, record_index, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	for (unsigned i = 0; i < 8; i++)
		used += atomic_load(&ran_on[i]) != 0;
	assert_int_equal(used, 1);
	assert_int_equal(atomic_load(&ran_on[0]), 500); /* the highest indices retire */
	sx_pool_destroy(p);
}

/* ---- exactly once while resizing ----------------------------------------------------------- */

#define ONCE_TASKS 20000u

static atomic_uchar once[ONCE_TASKS * 2];
static atomic_uint once_next;

static void once_leaf(void *arg)
{
	atomic_fetch_add(&once[(uintptr_t)arg], 1);
}

/* A parent marks itself and spawns a child locally (its LIFO slot or ring). */
static void once_parent(void *arg)
{
	sx_pool *p = *(sx_pool **)arg;
	unsigned child = atomic_fetch_add(&once_next, 1);

	(void)p;
	atomic_fetch_add(&once[child], 1);
	child = atomic_fetch_add(&once_next, 1);
	assert_int_equal(sx_pool_submit(p, once_leaf, (void *)(uintptr_t)child), 0);
}

struct submitter {
	sx_pool *p;
	unsigned n;
};

static void *submit_many(void *arg)
{
	struct submitter *s = arg;

	for (unsigned i = 0; i < s->n; i++)
		assert_int_equal(sx_pool_submit(s->p, once_parent, &s->p), 0);
	return NULL;
}

static void test_resizes_while_tasks_run_lose_nothing(void **state)
{
	struct submitter s;
	pthread_t t;
	unsigned sizes[] = { 4, 1, 3, 2, 1, 4, 1 }, k = 0;

	(void)state;
	memset(once, 0, sizeof(once));
	atomic_store(&once_next, 0);
	s.p = make_pool(2, 8);
	s.n = ONCE_TASKS;
	assert_int_equal(pthread_create(&t, NULL, submit_many, &s), 0);
	while (atomic_load(&once_next) < 2 * ONCE_TASKS - 2 * 200 || k < 7) {
		assert_int_equal(sx_pool_resize(s.p, sizes[k % 7]), 0);
		assert_int_equal(sx_pool_workers(s.p), sizes[k % 7]);
		k++;
		if (k > 10000)
			break;
	}
	pthread_join(t, NULL);
	assert_int_equal(sx_pool_wait_idle(s.p), 0);
	assert_int_equal(atomic_load(&once_next), 2 * ONCE_TASKS);
	for (unsigned i = 0; i < 2 * ONCE_TASKS; i++)
		if (atomic_load(&once[i]) != 1)
			fail_msg("task %u ran %u times", i, atomic_load(&once[i]));
	sx_pool_destroy(s.p);
}

/* ---- from a worker: asynchronous ---------------------------------------------------------- */

struct from_worker {
	sx_pool *p;
	unsigned to;
	int rc;
	atomic_int done;
};

static void resize_task(void *arg)
{
	struct from_worker *f = arg;

	f->rc = sx_pool_resize(f->p, f->to);
	atomic_store(&f->done, 1);
}

static void test_resize_from_a_worker_does_not_wait(void **state)
{
	struct from_worker f = { NULL, 1, -1, 0 };
	sx_pool_counters c;

	(void)state;
	f.p = make_pool(4, 8);
	meet_n(f.p, 4);
	/* Shrink to one from a worker, possibly the one that retires. */
	assert_int_equal(sx_pool_submit(f.p, resize_task, &f), 0);
	TU_WAIT_FOR(atomic_load(&f.done) == 1);
	assert_int_equal(f.rc, 0);
	assert_int_equal(sx_pool_workers(f.p), 1);
	assert_int_equal(sx_pool_wait_idle(f.p), 0);
	/* And grow from a worker again: the slots of finished retirements are free again. */
	f.to = 4;
	atomic_store(&f.done, 0);
	assert_int_equal(sx_pool_submit(f.p, resize_task, &f), 0);
	TU_WAIT_FOR(atomic_load(&f.done) == 1);
	assert_true(f.rc == 0 || f.rc == -EAGAIN);
	assert_int_equal(sx_pool_resize(f.p, 4), 0); /* from outside: waits for the slots */
	meet_n(f.p, 4);
	assert_int_equal(sx_pool_stats(f.p, &c, NULL, 0), 0);
	assert_true(c.slots <= 8);
	assert_int_equal(c.workers, 4);
	assert_true(c.retired <= 3); /* a grow takes back retirements not begun yet */
	sx_pool_destroy(f.p);
}

/* A worker asked to retire while tasks are queued on it hands them to the others: here slot 1
 * queues children and retires itself while slot 0 is held busy until the retirement is done,
 * so only the hand-off can get those children run. */
#define QUEUED_KIDS 200u

struct handoff {
	sx_pool *p;
	struct meet m;
	atomic_uint kids_ran;
	int rc;
};

static void handoff_kid(void *arg)
{
	atomic_fetch_add(&((struct handoff *)arg)->kids_ran, 1);
}

static void handoff_task(void *arg)
{
	struct handoff *h = arg;
	sx_pool_counters c;

	meet_task(&h->m); /* both workers are in a task now */
	if (sx_pool_worker_index(h->p) == 1) {
		for (unsigned i = 0; i < QUEUED_KIDS; i++)
			assert_int_equal(sx_pool_submit(h->p, handoff_kid, h), 0);
		h->rc = sx_pool_resize(h->p, 1); /* the highest index retires: this worker */
	} else {
		TU_WAIT_FOR(sx_pool_stats(h->p, &c, NULL, 0) == 0 && c.retired == 1);
	}
}

static void test_retiring_worker_hands_off_its_queue(void **state)
{
	struct handoff h;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.p = make_pool(2, 2);
	h.m.want = 2;
	h.rc = -1;
	assert_int_equal(sx_pool_submit(h.p, handoff_task, &h), 0);
	assert_int_equal(sx_pool_submit(h.p, handoff_task, &h), 0);
	TU_WAIT_FOR(atomic_load(&h.kids_ran) == QUEUED_KIDS);
	assert_int_equal(sx_pool_wait_idle(h.p), 0);
	assert_int_equal(h.rc, 0);
	assert_int_equal(atomic_load(&h.kids_ran), QUEUED_KIDS);
	assert_int_equal(sx_pool_workers(h.p), 1);
	sx_pool_destroy(h.p);
}

/* ---- after shutdown ------------------------------------------------------------------------ */

static void test_resize_after_shutdown(void **state)
{
	sx_pool *p = make_pool(2, 4);

	(void)state;
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	assert_int_equal(sx_pool_resize(p, 3), -ESHUTDOWN);
	assert_int_equal(sx_pool_resize(p, 1), -ESHUTDOWN);
	assert_int_equal(sx_pool_resize(p, 0), -EINVAL);
	sx_pool_destroy(p);
}

/* Growing and shrinking an idle pool over and over: every submission still wakes a worker. */
static void test_idle_resizes_keep_wakeups(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	(void)state;
	o.workers = 1;
	o.max_workers = 6;
	o.spin_ns = SX_SPIN_NONE;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	atomic_store(&once[0], 0);
	for (unsigned i = 0; i < 60; i++) {
		assert_int_equal(sx_pool_resize(p, 1 + i % 6), 0);
		assert_int_equal(sx_pool_submit(p, once_leaf, (void *)(uintptr_t)0), 0);
		TU_WAIT_FOR(atomic_load(&once[0]) == (unsigned char)(i + 1));
	}
	sx_pool_destroy(p);
}

/* ---- block in place ----------------------------------------------------------------------- */

struct blocker {
	sx_pool *p;
	atomic_int behind_ran;  /* the task queued behind the blocking one ran */
	atomic_int outside_ran;
	unsigned workers_inside; /* sx_pool_workers while blocked */
	int index_inside;
	int rc;
};

static void behind(void *arg)
{
	atomic_store(&((struct blocker *)arg)->behind_ran, 1);
}

static void wait_for_behind(void *arg)
{
	struct blocker *b = arg;

	/* Blocks this thread (no helping): only another worker can run `behind`. */
	TU_WAIT_FOR(atomic_load(&b->behind_ran) == 1);
	b->workers_inside = sx_pool_workers(b->p);
	b->index_inside = sx_pool_worker_index(b->p);
}

static void blocking_task(void *arg)
{
	struct blocker *b = arg;

	/* Queued on this worker (its LIFO slot), behind this task. */
	assert_int_equal(sx_pool_submit(b->p, behind, b), 0);
	b->rc = sx_pool_block_in_place(b->p, wait_for_behind, b);
}

static void test_block_in_place_keeps_queued_tasks_running(void **state)
{
	struct blocker b;
	sx_pool_counters c;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.p = make_pool(1, 2); /* one worker: without a compensating one, `behind` never runs */
	b.rc = -1;
	assert_int_equal(sx_pool_submit(b.p, blocking_task, &b), 0);
	assert_int_equal(sx_pool_wait_idle(b.p), 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(atomic_load(&b.behind_ran), 1);
	assert_int_equal(b.workers_inside, 1); /* the blocked one is not counted, its stand-in is */
	assert_int_equal(b.index_inside, 0);
	/* Back from blocking: the pool returns to one worker (the stand-in retires). */
	assert_int_equal(sx_pool_workers(b.p), 1);
	assert_int_equal(sx_pool_stats(b.p, &c, NULL, 0), 0);
	assert_int_equal(c.slots, 2);
	assert_int_equal(c.executed, 2);
	/* The next block gets a stand-in again at once: the retiring one, told to stay if it has
	 * not begun to leave, or a new one in its slot. */
	atomic_store(&b.behind_ran, 0);
	assert_int_equal(sx_pool_submit(b.p, blocking_task, &b), 0);
	assert_int_equal(sx_pool_wait_idle(b.p), 0);
	assert_int_equal(atomic_load(&b.behind_ran), 1);
	assert_int_equal(b.workers_inside, 1);
	TU_WAIT_FOR(sx_pool_stats(b.p, &c, NULL, 0) == 0 && c.retired >= 1);
	assert_int_equal(sx_pool_workers(b.p), 1);
	sx_pool_destroy(b.p);
}

static void set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
}

static void test_block_in_place_outside_just_runs(void **state)
{
	sx_pool *p = make_pool(1, 2);
	atomic_int flag = 0;
	sx_pool_counters c;

	(void)state;
	assert_int_equal(sx_pool_block_in_place(p, set_flag, &flag), 0);
	assert_int_equal(atomic_load(&flag), 1);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.slots, 1);
	assert_int_equal(c.workers, 1);
	sx_pool_destroy(p);
}

/* Nested blocks compensate once; a resize while a worker blocks leaves it alone. */
struct nest {
	sx_pool *p;
	atomic_int go;
	atomic_uint inner_workers;
	int rc_inner, rc_resize;
};

static void nest_inner(void *arg)
{
	struct nest *n = arg;

	atomic_store(&n->inner_workers, sx_pool_workers(n->p));
	TU_WAIT_FOR(atomic_load(&n->go) == 1);
}

static void nest_outer(void *arg)
{
	struct nest *n = arg;

	n->rc_inner = sx_pool_block_in_place(n->p, nest_inner, n);
}

static void nest_task(void *arg)
{
	struct nest *n = arg;

	(void)sx_pool_block_in_place(n->p, nest_outer, n);
}

static void test_block_in_place_nests_and_survives_resize(void **state)
{
	struct nest n;
	sx_pool_counters c;

	(void)state;
	memset(&n, 0, sizeof(n));
	n.p = make_pool(2, 4);
	assert_int_equal(sx_pool_submit(n.p, nest_task, &n), 0);
	TU_WAIT_FOR(atomic_load(&n.inner_workers) != 0);
	assert_int_equal(atomic_load(&n.inner_workers), 2);
	/* Shrink to one while blocked: the blocked worker is not one of those counted. */
	assert_int_equal(sx_pool_resize(n.p, 1), 0);
	assert_int_equal(sx_pool_workers(n.p), 1);
	atomic_store(&n.go, 1);
	assert_int_equal(sx_pool_wait_idle(n.p), 0);
	assert_int_equal(n.rc_inner, 0);
	/* Back, it counts again, and one beyond the count asked for retires. */
	assert_int_equal(sx_pool_workers(n.p), 1);
	meet_n(n.p, 1);
	TU_WAIT_FOR(sx_pool_stats(n.p, &c, NULL, 0) == 0 && c.retired == 2);
	sx_pool_destroy(n.p);
}

/* A shutdown while a worker blocks in place waits for it and runs what was queued. */
static void test_shutdown_while_blocked(void **state)
{
	struct nest n;

	(void)state;
	memset(&n, 0, sizeof(n));
	n.p = make_pool(1, 2);
	assert_int_equal(sx_pool_submit(n.p, nest_task, &n), 0);
	TU_WAIT_FOR(atomic_load(&n.inner_workers) != 0);
	atomic_store(&n.go, 1);
	assert_int_equal(sx_pool_shutdown(n.p, SX_DRAIN), 0);
	assert_int_equal(n.rc_inner, 0);
	sx_pool_destroy(n.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_default_max_workers),
		cmocka_unit_test(test_grow_then_shrink_to_one),
		cmocka_unit_test(test_after_shrink_one_worker_runs_everything),
		cmocka_unit_test(test_resizes_while_tasks_run_lose_nothing),
		cmocka_unit_test(test_resize_from_a_worker_does_not_wait),
		cmocka_unit_test(test_retiring_worker_hands_off_its_queue),
		cmocka_unit_test(test_resize_after_shutdown),
		cmocka_unit_test(test_idle_resizes_keep_wakeups),
		cmocka_unit_test(test_block_in_place_keeps_queued_tasks_running),
		cmocka_unit_test(test_block_in_place_outside_just_runs),
		cmocka_unit_test(test_block_in_place_nests_and_survives_resize),
		cmocka_unit_test(test_shutdown_while_blocked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
