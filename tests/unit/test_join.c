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

struct fib {
	unsigned n;
	uint64_t r;
};

static void fib(void *p)
{
	struct fib *f = p, a, b;

	if (f->n < 2) {
		f->r = f->n;
		return;
	}
	a.n = f->n - 1;
	b.n = f->n - 2;
	assert_int_equal(sx_join(pool, fib, &a, fib, &b), 0);
	f->r = a.r + b.r;
}

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
		struct fib f = { 22, 0 };

		pool = tu_pool(w);
		run_on_pool(fib, &f);
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
	struct fib f = { 18, 0 };

	(void)state;
	pool = tu_pool(2);
	atomic_store(&a_ran, 0);
	atomic_store(&b_ran, 0);
	atomic_store(&a_thread_differs, 0);
	b_thread = pthread_self();
	assert_int_equal(sx_join(pool, a_mark, NULL, b_mark, NULL), 0);
	assert_int_equal(atomic_load(&a_ran), 1);
	assert_int_equal(atomic_load(&b_ran), 1);
	/* a ran on a worker, b on this thread */
	assert_int_equal(atomic_load(&a_thread_differs), 1);
	fib(&f); /* the root join from outside, the rest on the workers */
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
static atomic_int release_blocker;

static void blocker(void *arg)
{
	(void)arg;
	TU_WAIT_FOR(atomic_load(&release_blocker) == 1);
}

static void noop(void *arg)
{
	(void)arg;
}

static void *shut_cancel(void *arg)
{
	(void)arg;
	assert_int_equal(sx_pool_shutdown(pool, SX_CANCEL), 0);
	return NULL;
}

static void test_cancel_discards_outside_children(void **state)
{
	static sx_job jobs[10];
	pthread_t t;
	sx_scope s;
	int ran = 0;

	(void)state;
	pool = tu_pool(1);
	memset(kid_ran, 0, sizeof(kid_ran));
	atomic_store(&release_blocker, 0);
	assert_int_equal(sx_pool_submit(pool, blocker, NULL), 0);
	assert_int_equal(sx_scope_init(&s, pool), 0);
	for (uintptr_t i = 0; i < 10; i++)
		assert_int_equal(sx_scope_spawn(&s, &jobs[i], kid, (void *)i), 0);
	assert_int_equal(pthread_create(&t, NULL, shut_cancel, NULL), 0);
	/* Wait until the shutdown has begun (submissions refused), then let the blocker end. */
	while (sx_pool_submit(pool, noop, NULL) == 0)
		sched_yield();
	atomic_store(&release_blocker, 1);
	assert_int_equal(sx_scope_wait(&s), -ECANCELED);
	for (int i = 0; i < 10; i++)
		ran += atomic_load(&kid_ran[i]);
	assert_int_equal(ran, 0);
	pthread_join(t, NULL);
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
