/* sx_join and scopes: results, the stolen and the taken-back paths, outside callers, bad input,
 * shutdowns. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

static sx_pool *pool;

struct on_pool {
	void (*fn)(void *);
	void *arg;
	sem_t done;
};

static void on_pool_run(void *p)
{
	struct on_pool *o = p;

	o->fn(o->arg);
	sem_post(&o->done);
}

/* Run fn(arg) as a task of the pool and wait for it. */
static void run_on_pool(void (*fn)(void *), void *arg)
{
	struct on_pool o = { .fn = fn, .arg = arg };

	sem_init(&o.done, 0, 0);
	assert_int_equal(sx_pool_submit(pool, on_pool_run, &o), 0);
	while (sem_wait(&o.done) != 0)
		;
	sem_destroy(&o.done);
}

static void test_fib_on_every_worker_count(void **state)
{
	(void)state;
	for (unsigned w = 1; w <= 5; w += 2) {
		struct tu_fib f;

		pool = tu_pool(w);
		f = (struct tu_fib){ pool, 22, 0 };
		run_on_pool(tu_fib, &f);
		assert_int_equal(f.r, 17711);
		sx_pool_destroy(pool);
	}
}

static atomic_int a_ran, b_ran;
static atomic_int a_thread_differs;
static pthread_t b_thread;

static void a_mark(void *arg)
{
	(void)arg;
	if (!pthread_equal(pthread_self(), b_thread))
		atomic_store(&a_thread_differs, 1);
	atomic_fetch_add(&a_ran, 1);
}

/* b waits until a has run: a must have been stolen and run by the other worker, and the join
 * must then wait for it rather than run it again. */
static void b_waits_for_a(void *arg)
{
	(void)arg;
	TU_WAIT_FOR(atomic_load(&a_ran) == 1);
	atomic_fetch_add(&b_ran, 1);
}

static void join_stolen(void *arg)
{
	(void)arg;
	b_thread = pthread_self(); /* b runs inline, on this thread; a reads it once forked */
	assert_int_equal(sx_join(pool, a_mark, NULL, b_waits_for_a, NULL), 0);
	assert_int_equal(atomic_load(&a_ran), 1);
	assert_int_equal(atomic_load(&b_ran), 1);
}

static void test_stolen_fork_runs_once_elsewhere(void **state)
{
	(void)state;
	pool = tu_pool(2);
	atomic_store(&a_ran, 0);
	atomic_store(&b_ran, 0);
	atomic_store(&a_thread_differs, 0);
	run_on_pool(join_stolen, NULL);
	assert_int_equal(atomic_load(&a_thread_differs), 1);
	sx_pool_destroy(pool);
}

static void b_mark(void *arg)
{
	(void)arg;
	atomic_fetch_add(&b_ran, 1);
}

static void test_from_outside_the_pool(void **state)
{
	struct tu_fib f;

	(void)state;
	pool = tu_pool(2);
	f = (struct tu_fib){ pool, 18, 0 };
	atomic_store(&a_ran, 0);
	atomic_store(&b_ran, 0);
	atomic_store(&a_thread_differs, 0);
	b_thread = pthread_self();
	assert_int_equal(sx_join(pool, a_mark, NULL, b_mark, NULL), 0);
	assert_int_equal(atomic_load(&a_ran), 1);
	assert_int_equal(atomic_load(&b_ran), 1);
	/* a ran on a worker, b on this thread */
	assert_int_equal(atomic_load(&a_thread_differs), 1);
	tu_fib(&f); /* the root join from outside, the rest on the workers */
	assert_int_equal(f.r, 2584);
	sx_pool_destroy(pool);
}

static void test_bad_input_runs_nothing(void **state)
{
	sx_scope s;
	sx_job j;

	(void)state;
	pool = tu_pool(1);
	atomic_store(&a_ran, 0);
	atomic_store(&b_ran, 0);
	assert_int_equal(sx_join(NULL, a_mark, NULL, b_mark, NULL), -EINVAL);
	assert_int_equal(sx_join(pool, NULL, NULL, b_mark, NULL), -EINVAL);
	assert_int_equal(sx_join(pool, a_mark, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sx_scope_init(NULL, pool), -EINVAL);
	assert_int_equal(sx_scope_init(&s, NULL), -EINVAL);
	assert_int_equal(sx_scope_init(&s, pool), 0);
	assert_int_equal(sx_scope_spawn(NULL, &j, a_mark, NULL), -EINVAL);
	assert_int_equal(sx_scope_spawn(&s, NULL, a_mark, NULL), -EINVAL);
	assert_int_equal(sx_scope_spawn(&s, &j, NULL, NULL), -EINVAL);
	assert_int_equal(sx_scope_wait(NULL), -EINVAL);
	assert_int_equal(sx_scope_wait(&s), 0);
	assert_int_equal(sx_pool_shutdown(pool, SX_DRAIN), 0);
	assert_int_equal(sx_join(pool, a_mark, NULL, b_mark, NULL), -ESHUTDOWN);
	assert_int_equal(sx_scope_spawn(&s, &j, a_mark, NULL), -ESHUTDOWN);
	assert_int_equal(sx_scope_wait(&s), 0);
	assert_int_equal(atomic_load(&a_ran), 0);
	assert_int_equal(atomic_load(&b_ran), 0);
	sx_pool_destroy(pool);
}

#define KIDS 1000

static atomic_int kid_ran[KIDS];

static void kid(void *arg)
{
	atomic_fetch_add(&kid_ran[(uintptr_t)arg], 1);
}

static void many_kids(void *arg)
{
	static sx_job jobs[KIDS];
	sx_scope s;

	(void)arg;
	assert_int_equal(sx_scope_init(&s, pool), 0);
	for (int round = 0; round < 3; round++) {
		for (uintptr_t i = 0; i < KIDS; i++)
			assert_int_equal(sx_scope_spawn(&s, &jobs[i], kid, (void *)i), 0);
		assert_int_equal(sx_scope_wait(&s), 0);
		for (int i = 0; i < KIDS; i++)
			assert_int_equal(atomic_load(&kid_ran[i]), round + 1);
	}
}

static void test_scope_joins_every_child_and_is_reusable(void **state)
{
	(void)state;
	pool = tu_pool(3);
	memset(kid_ran, 0, sizeof(kid_ran));
	run_on_pool(many_kids, NULL); /* from a worker: ring overflow and stealing on the way */
	memset(kid_ran, 0, sizeof(kid_ran));
	many_kids(NULL);              /* from outside: the injector */
	sx_pool_destroy(pool);
}

struct tree {
	unsigned depth;
	uint64_t leaves;
};

static void tree(void *p)
{
	struct tree *t = p, kids[4];
	sx_job jobs[4];
	sx_scope s;

	if (t->depth == 0) {
		t->leaves = 1;
		return;
	}
	sx_scope_init(&s, pool);
	for (int i = 0; i < 4; i++) {
		kids[i].depth = t->depth - 1;
		assert_int_equal(sx_scope_spawn(&s, &jobs[i], tree, &kids[i]), 0);
	}
	assert_int_equal(sx_scope_wait(&s), 0);
	t->leaves = 0;
	for (int i = 0; i < 4; i++)
		t->leaves += kids[i].leaves;
}

static void test_nested_scopes(void **state)
{
	struct tree t = { 8, 0 };

	(void)state;
	pool = tu_pool(4);
	run_on_pool(tree, &t);
	assert_int_equal(t.leaves, 65536);
	sx_pool_destroy(pool);
}

/* SX_CANCEL while an outside scope's children are queued behind a running task: each child
 * either ran or was cancelled, and the wait reports -ECANCELED. */
static void test_cancel_discards_outside_children(void **state)
{
	static sx_job jobs[10];
	struct tu_held held;
	sx_scope s;
	int ran = 0;

	(void)state;
	pool = tu_pool(1);
	memset(kid_ran, 0, sizeof(kid_ran));
	tu_hold(&held, pool);
	assert_int_equal(sx_scope_init(&s, pool), 0);
	for (uintptr_t i = 0; i < 10; i++)
		assert_int_equal(sx_scope_spawn(&s, &jobs[i], kid, (void *)i), 0);
	tu_shutdown_held(&held, SX_CANCEL);
	atomic_store(&held.release, 1); /* the scope's wait ends only once the cancel pass ran */
	assert_int_equal(sx_scope_wait(&s), -ECANCELED);
	for (int i = 0; i < 10; i++)
		ran += atomic_load(&kid_ran[i]);
	assert_int_equal(ran, 0);
	tu_release(&held);
	sx_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fib_on_every_worker_count),
		cmocka_unit_test(test_stolen_fork_runs_once_elsewhere),
		cmocka_unit_test(test_from_outside_the_pool),
		cmocka_unit_test(test_bad_input_runs_nothing),
		cmocka_unit_test(test_scope_joins_every_child_and_is_reusable),
		cmocka_unit_test(test_nested_scopes),
		cmocka_unit_test(test_cancel_discards_outside_children),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
