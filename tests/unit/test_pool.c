/* Unit tests of the work-stealing pool: behaviour, bad input, shutdown, allocation, stats. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <strix.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static atomic_uint counter;

static void bump(void *arg)
{
	(void)arg;
	atomic_fetch_add(&counter, 1);
}

static void bump_slot(void *arg)
{
	atomic_fetch_add((atomic_uchar *)arg, 1);
}

static sx_pool *make_pool(unsigned workers, unsigned ring, long long spin)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;

	o.workers = workers;
	o.ring_size = ring;
	o.spin_ns = spin;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	assert_non_null(p);
	return p;
}

/* An allocator that counts calls and can be told to fail. */
struct count_alloc {
	atomic_long allocs, frees, bytes;
	atomic_long fail_after; /* fail every alloc once allocs reaches this; < 0: never */
};

static void *ca_alloc(void *ctx, size_t size, size_t align)
{
	struct count_alloc *ca = ctx;
	long n = atomic_load(&ca->allocs);
	long f = atomic_load(&ca->fail_after);

	if (f >= 0 && n >= f)
		return NULL;
	atomic_fetch_add(&ca->allocs, 1);
	atomic_fetch_add(&ca->bytes, (long)size);
	return aligned_alloc(align, (size + align - 1) / align * align);
}

static void ca_free(void *ctx, void *ptr, size_t size, size_t align)
{
	struct count_alloc *ca = ctx;

	(void)size;
	(void)align;
	atomic_fetch_add(&ca->frees, 1);
	free(ptr);
}

/* ---- creation and bad input ---------------------------------------------------------------- */

static void test_create_defaults(void **state)
{
	sx_pool *p = NULL;

	(void)state;
	assert_int_equal(sx_pool_create(NULL, &p), 0);
	assert_int_equal(sx_pool_workers(p), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(sx_pool_worker_index(p), -1);
	sx_pool_destroy(p);
	sx_pool_destroy(NULL);
}

static void test_create_rejects_bad_options(void **state)
{
	sx_pool *p = (sx_pool *)0x1;
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_allocator half = { ca_alloc, NULL, NULL };

	(void)state;
	assert_int_equal(sx_pool_create(NULL, NULL), -EINVAL);
	assert_int_equal(sx_pool_create(&o, NULL), -EINVAL);
	o.workers = SX_POOL_MAX_WORKERS + 1;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.ring_size = 6;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.ring_size = 2;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o.ring_size = SX_POOL_MAX_RING * 2;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.spin_ns = -7;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.flags = 0x80;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	o = (sx_pool_opts)SX_POOL_OPTS_INIT;
	o.allocator = &half;
	assert_int_equal(sx_pool_create(&o, &p), -EINVAL);
	assert_ptr_equal(p, (sx_pool *)0x1); /* untouched on failure */
}

static void test_calls_reject_bad_input_and_change_nothing(void **state)
{
	sx_pool *p = make_pool(2, 0, 0);
	sx_task t = SX_TASK_INIT(NULL, NULL);
	sx_pool_counters c;

	(void)state;
	assert_int_equal(sx_pool_submit(NULL, bump, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit(p, NULL, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit_task(NULL, &t), -EINVAL);
	assert_int_equal(sx_pool_submit_task(p, NULL), -EINVAL);
	assert_int_equal(sx_pool_submit_task(p, &t), -EINVAL); /* run == NULL */
	assert_int_equal(sx_pool_wait_idle(NULL), -EINVAL);
	assert_int_equal(sx_pool_shutdown(NULL, SX_DRAIN), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, 0), -EINVAL);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN | SX_CANCEL), -EINVAL);
	assert_int_equal(sx_pool_stats(NULL, &c, NULL, 0), -EINVAL);
	assert_int_equal(sx_pool_stats(p, NULL, NULL, 0), -EINVAL);
	assert_int_equal(sx_pool_workers(NULL), 0);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.submitted, 0);
	/* Still fully usable. */
	atomic_store(&counter, 0);
	assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&counter), 1);
	sx_pool_destroy(p);
}

static void test_strerror_covers_every_code(void **state)
{
	const int codes[] = { -EINVAL, -ENOMEM, -EAGAIN, -ECANCELED, -ETIMEDOUT, -ESHUTDOWN,
		-EINTR, -EDEADLK, SX_ECIRCUIT_OPEN, SX_ERATE_LIMITED, SX_EREJECTED, SX_ESIGNAL };

	(void)state;
	assert_string_equal(sx_strerror(0), "success");
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_non_null(sx_strerror(codes[i]));
		assert_string_not_equal(sx_strerror(codes[i]), "unknown error");
	}
	assert_string_equal(sx_strerror(SX_ELAST - 1), "unknown error");
	assert_string_equal(sx_strerror(12345), "unknown error");
	assert_string_equal(sx_strerror(-ESHUTDOWN), strerror(ESHUTDOWN));
}

/* ---- execution --------------------------------------------------------------------------- */

static void test_remote_tasks_run_exactly_once(void **state)
{
	enum { N = 20000 };
	static atomic_uchar seen[N];
	sx_pool *p = make_pool(3, 0, 0);
	sx_pool_counters c;

	(void)state;
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < N; i++)
		assert_int_equal(sx_pool_submit(p, bump_slot, &seen[i]), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.submitted, N);
	assert_int_equal(c.remote, N);
	assert_int_equal(c.executed, N);
	sx_pool_destroy(p);
}

struct tree_arg {
	sx_pool *pool;
	int depth;
};

static struct tree_arg tree_args[8];

static void tree(void *arg)
{
	const struct tree_arg *a = arg;

	atomic_fetch_add(&counter, 1);
	if (a->depth > 0) {
		for (int i = 0; i < 4; i++)
			assert_int_equal(sx_pool_submit(a->pool, tree, &tree_args[a->depth - 1]), 0);
	}
}

static void test_spawned_tasks_run_exactly_once(void **state)
{
	sx_pool *p = make_pool(4, 16, 0);
	sx_pool_counters c;

	(void)state;
	atomic_store(&counter, 0);
	for (int d = 0; d < 8; d++)
		tree_args[d] = (struct tree_arg){ p, d };
	assert_int_equal(sx_pool_submit(p, tree, &tree_args[7]), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	/* 1 + 4 + ... + 4^7 */
	assert_int_equal(atomic_load(&counter), 21845);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.executed, 21845);
	assert_int_equal(c.submitted, 21845);
	assert_int_equal(c.remote, 1);
	sx_pool_destroy(p);
}

/* ---- intrusive tasks and allocation -------------------------------------------------------- */

struct job {
	sx_task task;
	atomic_int runs;
	atomic_int cancels;
	int err;
};

static void job_run(sx_task *t)
{
	atomic_fetch_add(&SX_CONTAINER_OF(t, struct job, task)->runs, 1);
}

static void job_cancel(sx_task *t, int err)
{
	struct job *j = SX_CONTAINER_OF(t, struct job, task);

	j->err = err;
	atomic_fetch_add(&j->cancels, 1);
}

static void test_intrusive_tasks_allocate_nothing(void **state)
{
	enum { N = 5000 };
	static struct job jobs[N];
	struct count_alloc ca = { 0, 0, 0, -1 };
	sx_allocator a = { ca_alloc, ca_free, &ca };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;
	long before;

	(void)state;
	o.workers = 2;
	o.allocator = &a;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	/* The first outside submission allocates this thread's record; nothing after that. */
	jobs[0].task = (sx_task)SX_TASK_INIT(job_run, job_cancel);
	assert_int_equal(sx_pool_submit_task(p, &jobs[0].task), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	before = atomic_load(&ca.allocs);
	for (int i = 1; i < N; i++) {
		jobs[i].task = (sx_task)SX_TASK_INIT(job_run, job_cancel);
		assert_int_equal(sx_pool_submit_task(p, &jobs[i].task), 0);
	}
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&ca.allocs), before);
	for (int i = 0; i < N; i++)
		assert_int_equal(atomic_load(&jobs[i].runs), 1);
	sx_pool_destroy(p);
	assert_int_equal(atomic_load(&ca.allocs), atomic_load(&ca.frees));
}

static void test_fn_tasks_stop_allocating_in_steady_state(void **state)
{
	struct count_alloc ca = { 0, 0, 0, -1 };
	sx_allocator a = { ca_alloc, ca_free, &ca };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;

	(void)state;
	o.workers = 2;
	o.allocator = &a;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	atomic_store(&counter, 0);
	for (int round = 0; round < 23; round++) {
		for (int i = 0; i < 5000; i++)
			assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
		assert_int_equal(sx_pool_wait_idle(p), 0);
	}
	/* Nodes circulate between the submitter and the workers; a new slab (255 nodes) is taken
	 * only when every node is in flight (at most 5000 here) or parked in a worker's local
	 * magazines (at most 2 x 256 each). The free nodes sit in magazines of 256: one per slab's
	 * worth of nodes, plus, per thread (3 here), the two it fills and empties and two empty ones
	 * it keeps. So after 115,000 tasks the pool made at most 6 structural allocations (pool,
	 * workers, bitmap, 2 rings, this thread's record) plus ceil((5000 + 2 * 512) / 255) = 24
	 * slabs and 24 + 3 * 4 magazines - not one allocation per task. */
	assert_true(atomic_load(&ca.allocs) <= 6 + 24 + 24 + 3 * 4);
	assert_int_equal(atomic_load(&counter), 23 * 5000);
	sx_pool_destroy(p);
	assert_int_equal(atomic_load(&ca.allocs), atomic_load(&ca.frees));
}

static void test_allocation_failure_is_enomem_and_pool_stays_usable(void **state)
{
	struct count_alloc ca = { 0, 0, 0, -1 };
	sx_allocator a = { ca_alloc, ca_free, &ca };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool_counters c;
	sx_pool *p = NULL;
	long need;

	(void)state;
	o.workers = 2;
	o.allocator = &a;
	/* Fail create at every allocation it makes, in turn: -ENOMEM, nothing leaked. */
	assert_int_equal(sx_pool_create(&o, &p), 0);
	sx_pool_destroy(p);
	need = atomic_load(&ca.allocs);
	for (long k = 0; k < need; k++) {
		sx_pool *q = (sx_pool *)0x1;

		atomic_store(&ca.allocs, 0);
		atomic_store(&ca.frees, 0);
		atomic_store(&ca.fail_after, k);
		assert_int_equal(sx_pool_create(&o, &q), -ENOMEM);
		assert_ptr_equal(q, (sx_pool *)0x1);
		assert_int_equal(atomic_load(&ca.allocs), atomic_load(&ca.frees));
	}
	atomic_store(&ca.fail_after, -1);
	assert_int_equal(sx_pool_create(&o, &p), 0);
	/* No per-thread record and no slab can be had: the submit fails and changes nothing. */
	atomic_store(&ca.fail_after, atomic_load(&ca.allocs));
	assert_int_equal(sx_pool_submit(p, bump, NULL), -ENOMEM);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.submitted, 0);
	/* The record but no slab. */
	atomic_store(&ca.fail_after, atomic_load(&ca.allocs) + 1);
	assert_int_equal(sx_pool_submit(p, bump, NULL), -ENOMEM);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.submitted, 0);
	/* Memory back: the same pool works. */
	atomic_store(&ca.fail_after, -1);
	atomic_store(&counter, 0);
	assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&counter), 1);
	sx_pool_destroy(p);
}

static atomic_int hold;

static void hold_worker(void *arg)
{
	(void)arg;
	while (atomic_load(&hold))
		sched_yield();
}

static void test_a_queued_task_costs_64_bytes(void **state)
{
	enum { N = 100000 };
	struct count_alloc ca = { 0, 0, 0, -1 };
	sx_allocator a = { ca_alloc, ca_free, &ca };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;
	long before;
	double per_task;

	(void)state;
	o.workers = 1;
	o.allocator = &a;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	atomic_store(&hold, 1);
	atomic_store(&counter, 0);
	assert_int_equal(sx_pool_submit(p, hold_worker, NULL), 0);
	assert_int_equal(sx_pool_submit(p, bump, NULL), 0); /* this thread's record, first slab */
	before = atomic_load(&ca.bytes);
	for (int i = 0; i < N; i++)
		assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
	/* All N are queued (the only worker is held): what did queueing them allocate? One 64-byte
	 * node each, plus one 64-byte slab header per 255 nodes. */
	per_task = (double)(atomic_load(&ca.bytes) - before) / N;
	print_message("bytes allocated per queued task: %.2f\n", per_task);
	assert_true(per_task <= 64.0 * 256 / 255 + 0.5);
	assert_true(per_task >= 64.0);
	atomic_store(&hold, 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&counter), N + 1);
	sx_pool_destroy(p);
}

/* ---- scheduling: steal-half, LIFO cap, overflow ------------------------------------------- */

static atomic_int gate;
static atomic_int y_started, spawned;

static void hold_until_spawned(void *arg)
{
	(void)arg;
	atomic_store(&y_started, 1);
	while (!atomic_load(&spawned))
		sched_yield();
}

static void spawner_then_block(void *arg)
{
	sx_pool *p = arg;

	/* Park the other worker in a task first (it steals it from our LIFO slot), then fill our
	 * own queue with 64 tasks and hold this worker until they are all done: only the other
	 * worker can run them, and only by stealing, starting from a full queue. */
	assert_int_equal(sx_pool_submit(p, hold_until_spawned, NULL), 0);
	while (!atomic_load(&y_started))
		sched_yield();
	for (int i = 0; i < 64; i++)
		assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
	atomic_store(&spawned, 1);
	while (atomic_load(&counter) < 64)
		sched_yield();
	atomic_store(&gate, sx_pool_worker_index(p));
}

static void test_idle_worker_steals_about_half_at_a_time(void **state)
{
	sx_pool *p = make_pool(2, 256, SX_SPIN_FOREVER);
	sx_worker_counters w[2];
	sx_pool_counters c;
	int owner, thief;

	(void)state;
	atomic_store(&counter, 0);
	atomic_store(&gate, -1);
	assert_int_equal(sx_pool_submit(p, spawner_then_block, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	owner = atomic_load(&gate);
	assert_true(owner == 0 || owner == 1);
	thief = 1 - owner;
	assert_int_equal(sx_pool_stats(p, &c, w, 2), 0);
	assert_int_equal(w[owner].executed, 1);
	assert_int_equal(w[owner].stolen, 0);
	/* The thief took the holding task from the LIFO slot, then the 63 queued tasks in halves
	 * (32, 16, 8, 4, 2, 1), then the last one from the LIFO slot: 8 steals for 65 tasks. */
	assert_int_equal(w[thief].executed, 65);
	assert_int_equal(w[thief].stolen, 65);
	assert_int_equal(w[thief].steals, 8);
	sx_pool_destroy(p);
}

static atomic_int respawns;
static atomic_int max_seen;

static void queued(void *arg)
{
	int r = atomic_load(&respawns);

	(void)arg;
	if (r > atomic_load(&max_seen))
		atomic_store(&max_seen, r);
	atomic_fetch_add(&counter, 1);
}

static void respawner(void *arg)
{
	if (atomic_fetch_add(&respawns, 1) < 1000)
		assert_int_equal(sx_pool_submit(arg, respawner, arg), 0);
}

static void lifo_root(void *arg)
{
	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_pool_submit(arg, queued, NULL), 0);
	assert_int_equal(sx_pool_submit(arg, respawner, arg), 0);
}

static void test_lifo_cap_keeps_queued_tasks_from_starving(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_worker_counters w;
	sx_pool_counters c;
	sx_pool *p;

	(void)state;
	o.workers = 1;
	o.lifo_cap = 4;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	atomic_store(&counter, 0);
	atomic_store(&respawns, 0);
	atomic_store(&max_seen, 0);
	assert_int_equal(sx_pool_submit(p, lifo_root, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&counter), 10);
	/* All ten queued tasks ran once the respawning task had used its LIFO streak, long before
	 * its 1000 respawns ended. */
	assert_true(atomic_load(&max_seen) <= 5);
	assert_int_equal(sx_pool_stats(p, &c, &w, 1), 0);
	assert_true(w.lifo_runs > 0);
	sx_pool_destroy(p);
}

/* sx_pool_yield_task: a yielding task runs after what was queued before it, never at once. */
struct yielder {
	sx_task task;
	sx_pool *pool;
	int runs;
};

static char order[16];
static atomic_int order_len;

static void note(char c)
{
	int i = atomic_fetch_add(&order_len, 1);

	if (i < (int)sizeof(order) - 1)
		order[i] = c;
}

static void note_a(void *arg)
{
	(void)arg;
	note('a');
}

static void note_b(void *arg)
{
	(void)arg;
	note('b');
}

static void yielder_run(sx_task *t)
{
	struct yielder *y = SX_CONTAINER_OF(t, struct yielder, task);

	note('Y');
	if (++y->runs < 3)
		assert_int_equal(sx_pool_yield_task(y->pool, &y->task), 0);
}

static struct yielder the_yielder;

static void yield_root(void *arg)
{
	sx_pool *p = arg;

	note('S');
	/* The yielder into the LIFO slot (it runs next), a and b onto the ring behind it. */
	assert_int_equal(sx_pool_submit_task(p, &the_yielder.task), 0);
	assert_int_equal(sx_pool_submit(p, note_a, NULL), 0);
	assert_int_equal(sx_pool_submit(p, note_b, NULL), 0);
}

static void test_yield_queues_behind_queued_work(void **state)
{
	sx_pool *p = make_pool(1, 0, 0);
	sx_task bad = SX_TASK_INIT(NULL, NULL);

	(void)state;
	assert_int_equal(sx_pool_yield_task(NULL, &the_yielder.task), -EINVAL);
	assert_int_equal(sx_pool_yield_task(p, NULL), -EINVAL);
	assert_int_equal(sx_pool_yield_task(p, &bad), -EINVAL);
	atomic_store(&order_len, 0);
	memset(order, 0, sizeof(order));
	the_yielder = (struct yielder){ .task = SX_TASK_INIT(yielder_run, NULL), .pool = p };
	assert_int_equal(sx_pool_submit(p, yield_root, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	/* A resubmission through sx_pool_submit_task would take the empty LIFO slot: "SYYYab". */
	assert_string_equal(order, "SYabYY");
	/* From outside the pool it is a plain submission. */
	atomic_store(&order_len, 0);
	memset(order, 0, sizeof(order));
	the_yielder.runs = 2;
	assert_int_equal(sx_pool_yield_task(p, &the_yielder.task), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_string_equal(order, "Y");
	sx_pool_destroy(p);
}

static void spawn_many(void *arg)
{
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sx_pool_submit(arg, bump, NULL), 0);
}

static void test_full_ring_overflows_to_injector(void **state)
{
	sx_pool *p = make_pool(1, 8, 0);
	sx_pool_counters c;

	(void)state;
	atomic_store(&counter, 0);
	assert_int_equal(sx_pool_submit(p, spawn_many, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&counter), 1000);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_true(c.total.overflowed >= 900);
	/* Everything that entered the injector came out of it exactly once. */
	assert_int_equal(c.total.injected, c.remote + c.total.overflowed);
	assert_int_equal(c.executed, 1001);
	sx_pool_destroy(p);
}

static struct job ovf_jobs[200];

static void spawn_intrusive(void *arg)
{
	for (int i = 0; i < 200; i++) {
		ovf_jobs[i].task = (sx_task)SX_TASK_INIT(job_run, job_cancel);
		assert_int_equal(sx_pool_submit_task(arg, &ovf_jobs[i].task), 0);
	}
}

static void test_overflow_without_memory_falls_back_to_chains(void **state)
{
	struct count_alloc ca = { 0, 0, 0, -1 };
	sx_allocator a = { ca_alloc, ca_free, &ca };
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool_counters c;
	sx_pool *p;

	(void)state;
	o.workers = 1;
	o.ring_size = 8;
	o.allocator = &a;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	assert_int_equal(sx_pool_submit(p, bump, NULL), 0); /* this thread's record, a slab */
	assert_int_equal(sx_pool_wait_idle(p), 0);
	/* From now on every allocation fails: overflowing halves cannot get a batch and must go to
	 * the injector as chains through the (intrusive) tasks. Nothing may be lost. */
	atomic_store(&ca.fail_after, atomic_load(&ca.allocs));
	assert_int_equal(sx_pool_submit(p, spawn_intrusive, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(atomic_load(&ovf_jobs[i].runs), 1);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_true(c.total.overflowed > 100);
	assert_int_equal(c.total.injected, c.remote + c.total.overflowed);
	sx_pool_destroy(p);
}

/* ---- parking ------------------------------------------------------------------------------ */

static void test_parked_workers_wake_for_each_submission(void **state)
{
	sx_pool *p = make_pool(2, 0, SX_SPIN_NONE);
	sx_pool_counters c;
	uint64_t seed = 42;

	(void)state;
	atomic_store(&counter, 0);
	for (unsigned i = 1; i <= 200; i++) {
		/* Let the workers fall asleep (or not) for a random while, then submit one task. */
		uint64_t until = tu_now_ns() + tu_rand(&seed) % 300000;

		while (tu_now_ns() < until)
			sched_yield();
		assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
		TU_WAIT_FOR(atomic_load(&counter) == i);
	}
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_true(c.total.parks > 0);
	assert_true(c.total.wakeups > 0);
	sx_pool_destroy(p);
}

/* ---- calls from inside a worker ------------------------------------------------------------ */

static atomic_int inside_rc[3];

static void call_from_inside(void *arg)
{
	atomic_store(&inside_rc[0], sx_pool_wait_idle(arg));
	atomic_store(&inside_rc[1], sx_pool_shutdown(arg, SX_DRAIN));
	atomic_store(&inside_rc[2], sx_pool_worker_index(arg));
}

static void test_blocking_calls_from_a_worker_are_edeadlk(void **state)
{
	sx_pool *p = make_pool(2, 0, 0);

	(void)state;
	assert_int_equal(sx_pool_submit(p, call_from_inside, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&inside_rc[0]), -EDEADLK);
	assert_int_equal(atomic_load(&inside_rc[1]), -EDEADLK);
	assert_true(atomic_load(&inside_rc[2]) >= 0 && atomic_load(&inside_rc[2]) < 2);
	sx_pool_destroy(p);
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void spawn_two(void *arg)
{
	atomic_fetch_add(&counter, 1);
	assert_int_equal(sx_pool_submit(arg, bump, NULL), 0);
	assert_int_equal(sx_pool_submit(arg, bump, NULL), 0);
}

static void test_drain_runs_queued_and_spawned_tasks(void **state)
{
	sx_pool *p = make_pool(2, 8, 0);
	sx_pool_counters c;

	(void)state;
	atomic_store(&counter, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sx_pool_submit(p, spawn_two, p), 0);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), 0);
	assert_int_equal(atomic_load(&counter), 3000);
	assert_int_equal(sx_pool_submit(p, bump, NULL), -ESHUTDOWN);
	assert_int_equal(sx_pool_shutdown(p, SX_DRAIN), -ESHUTDOWN);
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.executed, 3000);
	assert_int_equal(c.cancelled, 0);
	sx_pool_destroy(p);
}

enum { NJOBS = 1000 };
static struct job cjobs[NJOBS];
static atomic_uchar fn_ran[NJOBS], fn_cancelled[NJOBS];
static atomic_int late_spawned, bump_cancelled, gate_entered;

static void fn_mark(void *arg)
{
	atomic_fetch_add(&fn_ran[(atomic_uchar *)arg - fn_ran], 1);
}

static void on_cancel(void (*fn)(void *), void *arg, int err)
{
	assert_int_equal(err, -ECANCELED);
	if (fn == bump) {
		atomic_fetch_add(&bump_cancelled, 1);
		return;
	}
	assert_ptr_equal(fn, fn_mark);
	atomic_fetch_add(&fn_cancelled[(atomic_uchar *)arg - fn_ran], 1);
}

static void gatekeeper(void *arg)
{
	atomic_store(&gate_entered, 1);
	while (!atomic_load(&gate))
		sched_yield();
	/* Spawned while the pool is cancelling: accepted, and then cancelled, never lost. */
	for (int i = 0; i < 10; i++)
		if (sx_pool_submit(arg, bump, NULL) == 0)
			atomic_fetch_add(&late_spawned, 1);
}

static void *cancel_thread(void *arg)
{
	assert_int_equal(sx_pool_shutdown(arg, SX_CANCEL), 0);
	return NULL;
}

static void test_cancel_hands_every_unrun_task_over_exactly_once(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool_counters c;
	pthread_t th;
	sx_pool *p;
	unsigned cancelled = 0, bumps = 0;

	(void)state;
	o.workers = 1;
	o.on_cancel = on_cancel;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	atomic_store(&gate, 0);
	atomic_store(&gate_entered, 0);
	atomic_store(&late_spawned, 0);
	atomic_store(&bump_cancelled, 0);
	atomic_store(&counter, 0);
	assert_int_equal(sx_pool_submit(p, gatekeeper, p), 0);
	/* The one worker holds the gatekeeper while everything else is queued and cancelled: a
	 * gatekeeper still queued when the cancel begins would be cancelled itself. */
	TU_WAIT_FOR(atomic_load(&gate_entered));
	for (int i = 0; i < NJOBS; i++) {
		cjobs[i].task = (sx_task)SX_TASK_INIT(job_run, job_cancel);
		assert_int_equal(sx_pool_submit_task(p, &cjobs[i].task), 0);
		assert_int_equal(sx_pool_submit(p, fn_mark, &fn_ran[i]), 0);
	}
	assert_int_equal(pthread_create(&th, NULL, cancel_thread, p), 0);
	/* Once submissions are refused, the shutdown has begun: let the worker go. */
	while (sx_pool_submit(p, bump, NULL) == 0) {
		bumps++;
		sched_yield();
	}
	assert_int_equal(sx_pool_submit(p, bump, NULL), -ESHUTDOWN);
	atomic_store(&gate, 1);
	assert_int_equal(pthread_join(th, NULL), 0);

	for (int i = 0; i < NJOBS; i++) {
		int r = atomic_load(&cjobs[i].runs), k = atomic_load(&cjobs[i].cancels);

		assert_int_equal(r + k, 1);
		if (k)
			assert_int_equal(cjobs[i].err, -ECANCELED);
		assert_int_equal(fn_ran[i] + fn_cancelled[i], 1);
		cancelled += (unsigned)k + fn_cancelled[i];
	}
	assert_true(cancelled > 0);
	/* Every bump, including the ones spawned while cancelling, ran or was cancelled, once. */
	assert_int_equal(atomic_load(&counter) + atomic_load(&bump_cancelled),
	    bumps + (unsigned)atomic_load(&late_spawned));
	assert_int_equal(sx_pool_stats(p, &c, NULL, 0), 0);
	assert_int_equal(c.cancelled, cancelled + (unsigned)atomic_load(&bump_cancelled));
	assert_int_equal(c.executed + c.cancelled, c.submitted);
	assert_int_equal(sx_pool_wait_idle(p), -ESHUTDOWN);
	assert_int_equal(sx_pool_submit(p, bump, NULL), -ESHUTDOWN);
	sx_pool_destroy(p);
}

/* ---- pinning ---------------------------------------------------------------------------- */

static atomic_int wrong_cpu, pinned_runs;

static void check_cpu(void *arg)
{
	sx_pool *p = arg;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int idx = sx_pool_worker_index(p);

	if (idx < 0 || sched_getcpu() != (int)(idx % ncpu))
		atomic_fetch_add(&wrong_cpu, 1);
	atomic_fetch_add(&pinned_runs, 1);
}

static void test_pinned_workers_run_on_their_cpu(void **state)
{
	sx_pool_opts o = SX_POOL_OPTS_INIT;
	sx_pool *p;

	(void)state;
	o.workers = 3;
	o.flags = SX_POOL_PIN;
	assert_int_equal(sx_pool_create(&o, &p), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(sx_pool_submit(p, check_cpu, p), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(atomic_load(&pinned_runs), 300);
	assert_int_equal(atomic_load(&wrong_cpu), 0);
	sx_pool_destroy(p);
}

/* ---- stats ------------------------------------------------------------------------------- */

static void test_stats_add_up(void **state)
{
	sx_pool *p = make_pool(3, 16, 0);
	sx_worker_counters w[3];
	sx_pool_counters c;
	uint64_t executed = 0, injected = 0, overflowed = 0;

	(void)state;
	atomic_store(&counter, 0);
	for (int d = 0; d < 8; d++)
		tree_args[d] = (struct tree_arg){ p, d };
	for (int i = 0; i < 5; i++)
		assert_int_equal(sx_pool_submit(p, tree, &tree_args[6]), 0);
	for (int i = 0; i < 500; i++)
		assert_int_equal(sx_pool_submit(p, bump, NULL), 0);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(sx_pool_stats(p, &c, w, 3), 0);
	for (int i = 0; i < 3; i++) {
		executed += w[i].executed;
		injected += w[i].injected;
		overflowed += w[i].overflowed;
		assert_true(w[i].stolen >= w[i].steals);
		assert_true(w[i].steal_attempts >= w[i].steals);
	}
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.remote, 505);
	assert_int_equal(c.submitted, 505 + 5 * (5461 - 1));
	assert_int_equal(c.executed, c.submitted);
	assert_int_equal(executed, c.executed);
	assert_int_equal(injected, c.total.injected);
	assert_int_equal(overflowed, c.total.overflowed);
	assert_int_equal(c.total.injected, c.remote + c.total.overflowed);
	sx_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_defaults),
		cmocka_unit_test(test_create_rejects_bad_options),
		cmocka_unit_test(test_calls_reject_bad_input_and_change_nothing),
		cmocka_unit_test(test_strerror_covers_every_code),
		cmocka_unit_test(test_remote_tasks_run_exactly_once),
		cmocka_unit_test(test_spawned_tasks_run_exactly_once),
		cmocka_unit_test(test_intrusive_tasks_allocate_nothing),
		cmocka_unit_test(test_fn_tasks_stop_allocating_in_steady_state),
		cmocka_unit_test(test_allocation_failure_is_enomem_and_pool_stays_usable),
		cmocka_unit_test(test_a_queued_task_costs_64_bytes),
		cmocka_unit_test(test_idle_worker_steals_about_half_at_a_time),
		cmocka_unit_test(test_lifo_cap_keeps_queued_tasks_from_starving),
		cmocka_unit_test(test_yield_queues_behind_queued_work),
		cmocka_unit_test(test_full_ring_overflows_to_injector),
		cmocka_unit_test(test_overflow_without_memory_falls_back_to_chains),
		cmocka_unit_test(test_parked_workers_wake_for_each_submission),
		cmocka_unit_test(test_blocking_calls_from_a_worker_are_edeadlk),
		cmocka_unit_test(test_drain_runs_queued_and_spawned_tasks),
		cmocka_unit_test(test_cancel_hands_every_unrun_task_over_exactly_once),
		cmocka_unit_test(test_pinned_workers_run_on_their_cpu),
		cmocka_unit_test(test_stats_add_up),
	};

	return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
