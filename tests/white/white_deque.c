/*
 * White-box tests of a worker's deque: src/exec/worker.c is compiled into this program, so its
 * static functions are called directly on sx__worker structs of the test's own (no pool around
 * them): the owner's take-back, sx__untake, against thieves' steal-half (sx__ring_steal_half) and
 * their takes of the LIFO slot.
 *
 * The claim under test (worker.c, the comment above sx__untake): a thief that snapshots
 * (c_head, p_tail) = (c, p) claims [c, c + k), k = n - n/2, n = p - c, with one CAS from c; the
 * owner takes its last slot back at once only when the slot lies beyond the longest claim any
 * snapshot with today's c_head could still make, and by a CAS on c_head when it is the only slot
 * left; so a slot it takes back and then rewrites is never inside a claim that can succeed.
 *
 *   - directed cases: the bound, exactly where the claim puts it (a slot beyond every possible
 *     claim comes back, one inside a possible claim does not), the last-slot CAS, and the reset
 *     of the bound when c_head has moved;
 *   - a retire request: reported to the worker's own loop with its queues as they were, never
 *     to a waiting task's help;
 *   - a model run: one thread plays the owner and up to four stalled thieves, each of which
 *     snapshots, copies and claims at steps of its own (the schedules a preempted thief sees),
 *     next to real steals, over many random sequences from fixed seeds; every task must run
 *     exactly once, and every claim that succeeds must hold what the slots held when it copied;
 *   - a race: the owner pushes, pops and takes back while more thieves than cores steal from it,
 *     on small rings that wrap (ring positions started near 2^32 in some rounds); every task runs
 *     exactly once, a steal's tasks are consecutive ring positions, and a steal never takes more
 *     than half (rounded up) of what it can have seen.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec/worker.c"

#include "testutil.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

#define MAX_RING 256u
#define MAX_TASKS 4096u
#define MAX_THIEVES 8u
#define OWNER 0xffffu

/* ---- tasks and workers -------------------------------------------------------------------- */

struct dtask {
	sx_task task;
	unsigned id;
	unsigned stamp; /* the ring position it was queued at (atomic) */
	unsigned runs;  /* atomic */
	unsigned by;    /* who ran it first */
};

static struct dtask tasks[MAX_TASKS];

static struct dtask *dt(sx_task *t)
{
	return SX_CONTAINER_OF(t, struct dtask, task);
}

/* A failure seen on any thread: the first one's message, asserted on the test's thread. */
static int failed;
static char failure[512];

static void record_failure(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&failed, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
}

/* Each test starts with no failure recorded. */
static int clear_failure(void **state)
{
	(void)state;
	__atomic_store_n(&failed, 0, __ATOMIC_RELEASE);
	failure[0] = '\0';
	return 0;
}

static void check_no_failure(void)
{
	if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
		fail_msg("%s", failure);
}

static unsigned consumed; /* tasks run (atomic) */

static void run(sx_task *t, unsigned who)
{
	struct dtask *d = dt(t);
	unsigned prev = __atomic_fetch_add(&d->runs, 1, __ATOMIC_ACQ_REL);

	if (prev == 0)
		__atomic_store_n(&d->by, who, __ATOMIC_RELEASE);
	else
		record_failure("task %u ran twice: by %u, then by %u", d->id,
		    __atomic_load_n(&d->by, __ATOMIC_ACQUIRE), who);
	__atomic_add_fetch(&consumed, 1, __ATOMIC_ACQ_REL);
}

static void reset_tasks(unsigned m)
{
	for (unsigned i = 0; i < m; i++) {
		memset(&tasks[i], 0, sizeof(tasks[i]));
		tasks[i].id = i;
	}
	__atomic_store_n(&consumed, 0, __ATOMIC_RELEASE);
}

static void check_exactly_once(unsigned m)
{
	check_no_failure();
	for (unsigned i = 0; i < m; i++)
		if (__atomic_load_n(&tasks[i].runs, __ATOMIC_ACQUIRE) != 1)
			fail_msg("task %u of %u ran %u times", i, m, tasks[i].runs);
}

static SX__ALIGNED sx__worker workers[1 + MAX_THIEVES];
static SX__ALIGNED ck_ring_buffer_t bufs[1 + MAX_THIEVES][MAX_RING];

/* A fresh worker whose ring of `size` slots starts at position `start`. */
/* The owner's take-back, made as the owner: sx__untake asserts (SX_DEBUG) that its caller is the
 * worker whose queues it touches, and here the test's thread plays that worker. */
static bool untake(sx__worker *v, sx_task *t)
{
	bool taken;

	sx__self = v;
	taken = sx__untake(v, t);
	sx__self = NULL;
	return taken;
}

static sx__worker *worker_init(unsigned i, unsigned size, unsigned start)
{
	sx__worker *w = &workers[i];

	memset(w, 0, sizeof(*w));
	memset(bufs[i], 0, sizeof(bufs[i]));
	ck_ring_init(&w->ring, size);
	w->ring.c_head = w->ring.p_tail = w->ring.p_head = start;
	w->buf = bufs[i];
	w->index = i;
	return w;
}

/* The highest p_tail the owner has published (atomic): no thief can have seen a higher one. */
static unsigned pub_max;

/* The owner's view of its ring: no claim ever passes the tail it published. */
static void check_ring(const sx__worker *v)
{
	unsigned tail = v->ring.p_tail, head = ck_pr_load_uint(&v->ring.c_head);

	if ((int)(tail - head) < 0 || tail - head > v->ring.mask)
		record_failure("c_head %u, p_tail %u: a claim went past the tail", head, tail);
}

/* The owner takes its next task: the LIFO slot's, else the ring's head - unless a claim went
 * past the tail, and popping would walk the whole index space. */
static sx_task *owner_take(sx__worker *v)
{
	sx_task *t = ck_pr_fas_ptr(&v->lifo, NULL);

	if (t != NULL)
		return t;
	check_ring(v);
	return __atomic_load_n(&failed, __ATOMIC_ACQUIRE) ? NULL : ring_pop(v);
}

/* The owner queues t at its ring's tail; a full ring runs its head first (the real owner would
 * move half of it to the injector). */
static void owner_put(sx__worker *v, struct dtask *t)
{
	for (;;) {
		unsigned pos = v->ring.p_tail;
		sx_task *h;

		__atomic_store_n(&t->stamp, pos, __ATOMIC_RELEASE);
		if ((int)(pos + 1 - __atomic_load_n(&pub_max, __ATOMIC_ACQUIRE)) > 0)
			__atomic_store_n(&pub_max, pos + 1, __ATOMIC_RELEASE);
		if (ck_ring_enqueue_spmc(&v->ring, v->buf, &t->task))
			return;
		if ((h = owner_take(v)) != NULL)
			run(h, OWNER);
		else if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
			return;
	}
}

/* local_push's order: t to the LIFO slot, the task it displaces to the ring's tail. */
static void owner_push_lifo(sx__worker *v, struct dtask *t)
{
	sx_task *old = ck_pr_fas_ptr(&v->lifo, &t->task);

	if (old != NULL)
		owner_put(v, dt(old));
}

static unsigned rnd(uint64_t *s, unsigned n)
{
	return (unsigned)(tu_rand(s) % n);
}

/* ---- directed cases ------------------------------------------------------------------------ */

/* A stalled thief, played by the test: it read (c, p), copies when told, then claims by CAS. */
struct ghost {
	int state; /* 0 idle, 1 snapshot taken, 2 slots copied */
	unsigned c, k;
	sx_task *copy[MAX_RING];
};

static void ghost_snap(struct ghost *g, const sx__worker *v)
{
	unsigned n;

	g->c = ck_pr_load_uint(&v->ring.c_head);
	n = ck_pr_load_uint(&v->ring.p_tail) - g->c;
	g->k = n - n / 2;
	g->state = n != 0 ? 1 : 0;
}

static void ghost_copy(struct ghost *g, const sx__worker *v)
{
	for (unsigned i = 0; i < g->k; i++)
		g->copy[i] = ck_pr_load_ptr(&v->buf[(g->c + i) & v->ring.mask].value);
	g->state = 2;
}

/* The claim; on success the copies run (ghost `who`). Returns whether it succeeded. */
static bool ghost_claim(struct ghost *g, sx__worker *v, unsigned who)
{
	bool won;

	if (g->state == 0)
		return false;
	if (g->state == 1)
		ghost_copy(g, v);
	g->state = 0;
	won = ck_pr_cas_uint(&v->ring.c_head, g->c, g->c + g->k);
	if (!won)
		return false;
	for (unsigned i = 0; i < g->k; i++) {
		sx_task *now = ck_pr_load_ptr(&v->buf[(g->c + i) & v->ring.mask].value);

		if (now != g->copy[i])
			record_failure("a claim of [%u, %u) succeeded, but slot %u was rewritten "
			    "after the thief copied it (task %u, now %u)", g->c, g->c + g->k,
			    g->c + i, dt(g->copy[i])->id, dt(now)->id);
		run(g->copy[i], who);
	}
	return true;
}

/* With a snapshot of 8 queued tasks outstanding, the owner gets back exactly the slots beyond
 * that snapshot's claim (positions 4..7 of 0..7), not the one at its edge; the thief then gets
 * its 4, and nothing runs twice. */
static void test_untake_stops_at_a_stalled_claim(void **state)
{
	static struct ghost g;
	sx__worker *v;

	(void)state;
	for (unsigned start = 0; start < 2; start++) {
		v = worker_init(0, 16, start == 0 ? 0 : UINT_MAX - 3);
		reset_tasks(8);
		for (unsigned i = 0; i < 8; i++)
			owner_put(v, &tasks[i]);
		ghost_snap(&g, v);
		assert_int_equal(g.k, 4);
		for (unsigned i = 7; i >= 4; i--) {
			assert_true(untake(v, &tasks[i].task));
			run(&tasks[i].task, OWNER);
		}
		assert_false(untake(v, &tasks[3].task)); /* inside [c, c + 4) */
		assert_int_equal(ck_ring_size(&v->ring), 4);
		assert_true(ghost_claim(&g, v, 1));
		assert_int_equal(ck_ring_size(&v->ring), 0);
		check_exactly_once(8);
		for (unsigned i = 0; i < 4; i++)
			assert_int_equal(tasks[i].by, 1);
	}
}

/* A stalled snapshot stays valid while c_head does not move, however far p_tail has dropped
 * since: the bound is the highest p_tail published since c_head took its value, not today's, and
 * a push into a slot taken back does not lower it. */
static void test_untake_bound_remembers_the_highest_tail(void **state)
{
	static struct ghost g;
	sx__worker *v = worker_init(0, 32, 100);

	(void)state;
	reset_tasks(12);
	for (unsigned i = 0; i < 10; i++)
		owner_put(v, &tasks[i]);
	ghost_snap(&g, v); /* (100, 110): claims [100, 105) */
	assert_true(untake(v, &tasks[9].task));
	run(&tasks[9].task, OWNER);
	assert_true(untake(v, &tasks[8].task));
	run(&tasks[8].task, OWNER);
	owner_put(v, &tasks[10]); /* position 108 again */
	assert_true(untake(v, &tasks[10].task));
	run(&tasks[10].task, OWNER);
	for (unsigned i = 7; i >= 5; i--) {
		assert_true(untake(v, &tasks[i].task));
		run(&tasks[i].task, OWNER);
	}
	/* position 104: inside the claim (a bound from today's p_tail, 105, would give it) */
	assert_false(untake(v, &tasks[4].task));
	owner_put(v, &tasks[11]); /* position 105, beyond it */
	ghost_copy(&g, v);
	assert_true(ghost_claim(&g, v, 1));
	assert_true(untake(v, &tasks[11].task));
	run(&tasks[11].task, OWNER);
	assert_int_equal(ck_ring_size(&v->ring), 0);
	check_exactly_once(12);
}

/* The last slot: owner and thief race for it with a CAS on c_head, and exactly one wins. */
static void test_untake_races_for_the_last_slot_by_cas(void **state)
{
	static struct ghost g;
	sx__worker *v;

	(void)state;
	for (int thief_first = 0; thief_first < 2; thief_first++) {
		v = worker_init(0, 4, UINT_MAX);
		reset_tasks(1);
		owner_put(v, &tasks[0]);
		ghost_snap(&g, v);
		ghost_copy(&g, v);
		assert_int_equal(g.k, 1);
		if (thief_first) {
			assert_true(ghost_claim(&g, v, 1));
			assert_false(untake(v, &tasks[0].task));
		} else {
			assert_true(untake(v, &tasks[0].task));
			run(&tasks[0].task, OWNER);
			assert_false(ghost_claim(&g, v, 1));
		}
		assert_int_equal(ck_ring_size(&v->ring), 0);
		check_exactly_once(1);
	}
}

/* Once c_head has moved, the snapshots taken before cannot succeed, and new ones see at most
 * the p_tail of that moment: the bound starts again from there. Here that gives the owner a slot
 * (position 7) that the old bound (from p_tail 10) would have kept back, and still not the one
 * a new snapshot's claim covers (position 6). */
static void test_untake_bound_restarts_when_c_head_moves(void **state)
{
	static struct ghost old, g;
	sx__worker *v = worker_init(0, 16, 0), *w = worker_init(1, 16, 0);
	sx_task *t;

	(void)state;
	reset_tasks(10);
	for (unsigned i = 0; i < 10; i++)
		owner_put(v, &tasks[i]);
	ghost_snap(&old, v); /* (0, 10): claims [0, 5) */
	assert_true(untake(v, &tasks[9].task));
	run(&tasks[9].task, OWNER);
	t = sx__ring_steal_half(w, v); /* sees (0, 9): takes [0, 5) */
	assert_non_null(t);
	assert_int_equal(ck_pr_load_uint(&v->ring.c_head), 5);
	run(t, 1);
	while ((t = ring_pop(w)) != NULL)
		run(t, 1);
	ghost_snap(&g, v); /* (5, 9): claims [5, 7) */
	assert_int_equal(g.k, 2);
	assert_true(untake(v, &tasks[8].task));
	run(&tasks[8].task, OWNER);
	assert_true(untake(v, &tasks[7].task)); /* beyond [5, 7); not beyond [5, 8) */
	run(&tasks[7].task, OWNER);
	assert_false(untake(v, &tasks[6].task)); /* inside */
	assert_false(ghost_claim(&old, v, 2));        /* c_head moved: fails */
	assert_true(ghost_claim(&g, v, 3));
	check_exactly_once(10);
	assert_int_equal(tasks[5].by, 3);
	assert_int_equal(tasks[6].by, 3);
}

/* A retire request is reported to the worker's own loop, at an injector look, with the tasks
 * still queued; it never makes the queues look empty to a task that waits and helps, which
 * would then steal on top of them (a steal fills only an empty ring). After the request is
 * taken back, the loop gets its own tasks again. */
static void test_retire_request_leaves_the_queues_to_their_owner(void **state)
{
	static sx_pool pool;
	sx__worker *w = worker_init(0, 16, UINT_MAX - 1);
	bool retire = false;
	sx_task *t;

	(void)state;
	memset(&pool, 0, sizeof(pool));
	pool.ring_size = 16;
	pool.lifo_cap = 4;
	w->pool = &pool;
	reset_tasks(4);
	for (unsigned i = 0; i < 4; i++)
		owner_put(w, &tasks[i]);
	ck_pr_store_int(&w->retire, 1);
	w->inject_in = 1;
	assert_null(next_local(w, &retire));
	assert_true(retire);
	assert_int_equal(ck_ring_size(&w->ring), 4);
	w->inject_in = 1;
	t = next_local(w, NULL); /* a waiting task's help */
	assert_ptr_equal(t, &tasks[0].task);
	run(t, OWNER);
	ck_pr_store_int(&w->retire, 0); /* a resizer took the request back */
	retire = false;
	w->inject_in = 1;
	while ((t = next_local(w, &retire)) != NULL)
		run(t, OWNER);
	assert_false(retire);
	assert_int_equal(ck_ring_size(&w->ring), 0);
	check_exactly_once(4);
}

/* ---- the model run ----------------------------------------------------------------------- */

#define GHOSTS 4u

/* One random sequence on one thread: the owner's pushes (to the ring, or LIFO-first), take-backs
 * of what it queued last, pops; real steals into another worker's ring; and stalled thieves
 * whose snapshot, copy and claim each happen at a step of their own. Returns the tasks used. */
static unsigned model_sequence(uint64_t seed, unsigned steps)
{
	static struct ghost ghosts[GHOSTS];
	static const unsigned sizes[] = { 4, 8, 16, 32 };
	uint64_t s = seed;
	unsigned size = sizes[rnd(&s, 4)], m = 0, sp = 0;
	unsigned start = rnd(&s, 3) == 0 ? UINT_MAX - rnd(&s, 2 * size) : (unsigned)tu_rand(&s);
	sx__worker *v = worker_init(0, size, start), *w = worker_init(1, size, (unsigned)tu_rand(&s));
	struct dtask *stack[MAX_TASKS];
	sx_task *t;

	memset(ghosts, 0, sizeof(ghosts));
	reset_tasks(MAX_TASKS);
	for (unsigned step = 0; step < steps && m < MAX_TASKS; step++) {
		struct ghost *g = &ghosts[rnd(&s, GHOSTS)];

		switch (rnd(&s, 12)) {
		case 0: case 1: case 2:
			owner_put(v, &tasks[m]);
			stack[sp++] = &tasks[m++];
			break;
		case 3:
			owner_push_lifo(v, &tasks[m]);
			stack[sp++] = &tasks[m++];
			break;
		case 4: case 5: case 6:
			/* what it queued last, or, some of the time, an older one (never taken back
			 * from inside the ring) */
			if (sp == 0)
				break;
			if (rnd(&s, 6) == 0 && sp > 1) {
				t = &stack[rnd(&s, sp - 1)]->task;
				if (t != ck_pr_load_ptr(&v->lifo) && t != v->buf[(v->ring.p_tail - 1) &
				    v->ring.mask].value && untake(v, t))
					record_failure("took back task %u from inside the ring", dt(t)->id);
				break;
			}
			t = &stack[--sp]->task;
			if (untake(v, t))
				run(t, OWNER);
			break;
		case 7:
			if ((t = owner_take(v)) != NULL)
				run(t, OWNER);
			break;
		case 8:
			if ((t = sx__ring_steal_half(w, v)) != NULL) {
				run(t, 1);
				while ((t = ring_pop(w)) != NULL)
					run(t, 1);
			}
			break;
		case 9:
			if (g->state == 0)
				ghost_snap(g, v);
			break;
		case 10:
			if (g->state == 1)
				ghost_copy(g, v);
			break;
		default:
			ghost_claim(g, v, 2 + (unsigned)(g - ghosts));
			break;
		}
		if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
			break;
	}
	for (unsigned i = 0; i < GHOSTS; i++)
		ghost_claim(&ghosts[i], v, 2 + i);
	while ((t = owner_take(v)) != NULL)
		run(t, OWNER);
	return m;
}

static void test_model_untake_against_stalled_thieves(void **state)
{
	unsigned seqs = SLOW_BUILD ? 3000 : 30000;

	(void)state;
	seqs *= tu_stress_scale();
	for (uint64_t seed = 1; seed <= seqs; seed++) {
		unsigned m = model_sequence(seed * 0x9e3779b97f4a7c15ull, 400);

		if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
			fail_msg("seed %llu: %s", (unsigned long long)seed, failure);
		for (unsigned i = 0; i < m; i++)
			if (tasks[i].runs != 1)
				fail_msg("seed %llu: task %u of %u ran %u times",
				    (unsigned long long)seed, i, m, tasks[i].runs);
	}
}

/* ---- the race ------------------------------------------------------------------------------ */

static unsigned nthieves;
static unsigned round_tasks;   /* tasks in this round (written between barriers) */
static unsigned round_active;  /* thieves that steal in this round (1..nthieves) */
static unsigned in_steal;      /* thieves inside sx__ring_steal_half now (atomic) */
static int race_over;          /* no more rounds (atomic) */
static pthread_barrier_t round_start, round_end;
static uint64_t thief_steals[MAX_THIEVES];
static uint64_t untaken; /* by the owner, in the race */

/* The round goes on until every task ran (or something failed). */
static bool round_on(unsigned m)
{
	return __atomic_load_n(&consumed, __ATOMIC_ACQUIRE) < m &&
	    !__atomic_load_n(&failed, __ATOMIC_ACQUIRE);
}

/* A thief: steal half of the owner's ring (sometimes its LIFO slot), check what came, run it
 * all, until every task of the round has run. */
static void *thief_main(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	uint64_t s = 0x7417u + i;

	for (;;) {
		sx__worker *v = &workers[0], *w = &workers[1 + i];
		unsigned m;

		pthread_barrier_wait(&round_start);
		if (__atomic_load_n(&race_over, __ATOMIC_ACQUIRE))
			return NULL;
		m = round_tasks;
		/* Thieves beyond this round's number only compete for the cores: a lone thief
		 * preempted inside a steal keeps a stale snapshot that nobody else's claim voids. */
		while (i >= round_active && round_on(m)) {
			const struct timespec nap = { 0, 20000 + rnd(&s, 80000) };

			for (unsigned p = rnd(&s, 256); p > 0; p--)
				ck_pr_stall();
			nanosleep(&nap, NULL);
		}
		while (round_on(m)) {
			unsigned wp = w->ring.p_tail, k, s0, pmax;
			sx_task *t;

			if (rnd(&s, 8) == 0 && ck_pr_load_ptr(&v->lifo) != NULL &&
			    (t = ck_pr_fas_ptr(&v->lifo, NULL)) != NULL)
				run(t, 1 + i);
			__atomic_add_fetch(&in_steal, 1, __ATOMIC_ACQ_REL);
			t = sx__ring_steal_half(w, v);
			__atomic_sub_fetch(&in_steal, 1, __ATOMIC_ACQ_REL);
			if (t != NULL) {
				k = w->ring.p_tail - wp + 1;
				pmax = __atomic_load_n(&pub_max, __ATOMIC_ACQUIRE);
				s0 = __atomic_load_n(&dt(t)->stamp, __ATOMIC_ACQUIRE);
				if (2 * k - 1 > pmax - s0)
					record_failure("a steal from position %u took %u tasks; the "
					    "highest p_tail published was %u", s0, k, pmax);
				for (unsigned j = 1; j < k; j++) {
					struct dtask *u = dt(w->buf[(wp + j - 1) & w->ring.mask].value);
					unsigned su = __atomic_load_n(&u->stamp, __ATOMIC_ACQUIRE);

					if (su != s0 + j)
						record_failure("a steal from position %u: its task %u "
						    "(task %u) was queued at %u", s0, j, u->id, su);
				}
				thief_steals[i]++;
				run(t, 1 + i);
				while ((t = ring_pop(w)) != NULL)
					run(t, 1 + i);
			}
			for (unsigned p = rnd(&s, 64); p > 0; p--)
				ck_pr_stall();
			if (rnd(&s, 64) == 0)
				sched_yield();
		}
		pthread_barrier_wait(&round_end);
	}
}

/* One round on the owner's side (the test's thread). */
static void race_round(uint64_t *s, unsigned r)
{
	static const unsigned sizes[] = { 4, 8, 16, 64, 256 };
	static struct dtask *stack[MAX_TASKS];
	unsigned size = sizes[rnd(s, 5)], m = 200 + rnd(s, 1800), next = 0, sp = 0;
	unsigned start = rnd(s, 4) == 0 ? UINT_MAX - rnd(s, 4 * size) : (unsigned)tu_rand(s);
	unsigned w_put = 1 + rnd(s, 6), w_untake = rnd(s, 8), w_pop = rnd(s, 3);
	sx__worker *v = worker_init(0, size, start);
	sx_task *t;

	for (unsigned i = 0; i < nthieves; i++)
		worker_init(1 + i, size, (unsigned)tu_rand(s));
	__atomic_store_n(&pub_max, start, __ATOMIC_RELEASE);
	reset_tasks(m);
	round_tasks = m;
	round_active = rnd(s, 2) == 0 ? 1 : 1 + rnd(s, nthieves);
	pthread_barrier_wait(&round_start);
	while (next < m && !__atomic_load_n(&failed, __ATOMIC_ACQUIRE)) {
		unsigned op = rnd(s, w_put + w_untake + w_pop + 1);

		if (rnd(s, 4) == 0 && sp > 0) {
			/* Aim: wait (briefly) for a thief to be between its snapshot and its claim,
			 * then take back and refill the newest slots - what a stale claim must not
			 * cover. */
			for (unsigned spin = 0; spin < 500; spin++) {
				if (__atomic_load_n(&in_steal, __ATOMIC_ACQUIRE) != 0)
					break;
				ck_pr_stall();
			}
			for (unsigned b = 1 + rnd(s, 3); b > 0 && sp > 0; b--) {
				t = &stack[--sp]->task;
				if (untake(v, t)) {
					run(t, OWNER);
					untaken++;
				}
			}
			check_ring(v);
			for (unsigned b = 1 + rnd(s, 3); b > 0 && next < m; b--) {
				owner_put(v, &tasks[next]);
				stack[sp++] = &tasks[next++];
			}
			continue;
		}
		if (op < w_put) {
			/* a burst of pushes, then (often) take-backs of the newest in a row */
			for (unsigned b = 1 + rnd(s, 8); b > 0 && next < m; b--) {
				if (rnd(s, 4) == 0)
					owner_push_lifo(v, &tasks[next]);
				else
					owner_put(v, &tasks[next]);
				stack[sp++] = &tasks[next++];
			}
		} else if (op < w_put + w_untake) {
			for (unsigned b = 1 + rnd(s, 4); b > 0 && sp > 0; b--) {
				t = &stack[--sp]->task;
				if (untake(v, t)) {
					run(t, OWNER);
					untaken++;
				}
			}
			check_ring(v);
		} else if (op < w_put + w_untake + w_pop) {
			if ((t = owner_take(v)) != NULL)
				run(t, OWNER);
		} else {
			for (unsigned p = rnd(s, 256); p > 0; p--)
				ck_pr_stall();
		}
	}
	while ((t = owner_take(v)) != NULL)
		run(t, OWNER);
	for (uint64_t t0 = tu_now_ns(); round_on(m); sched_yield())
		if (tu_now_ns() - t0 > TU_DEADLINE_NS)
			record_failure("%u of %u tasks ran: the rest were lost", consumed, m);
	pthread_barrier_wait(&round_end);
	if (__atomic_load_n(&failed, __ATOMIC_ACQUIRE))
		fail_msg("round %u (ring of %u, %u thieves stealing): %s", r, size, round_active,
		    failure);
	check_exactly_once(m);
	if (__atomic_load_n(&consumed, __ATOMIC_ACQUIRE) != m)
		fail_msg("%u runs of %u tasks", consumed, m);
}

static void test_race_untake_against_steal_half(void **state)
{
	unsigned rounds = (SLOW_BUILD ? 300 : 3000) * tu_stress_scale();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t th[MAX_THIEVES];
	uint64_t s = 0x5eedu, steals = 0;

	(void)state;
	nthieves = cpus + 2 > (long)MAX_THIEVES ? MAX_THIEVES : (unsigned)cpus + 2;
	if (nthieves < 3)
		nthieves = 3;
	assert_int_equal(pthread_barrier_init(&round_start, NULL, nthieves + 1), 0);
	assert_int_equal(pthread_barrier_init(&round_end, NULL, nthieves + 1), 0);
	for (unsigned i = 0; i < nthieves; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thief_main, (void *)(uintptr_t)i), 0);
	for (unsigned r = 0; r < rounds && !__atomic_load_n(&failed, __ATOMIC_ACQUIRE); r++)
		race_round(&s, r);
	__atomic_store_n(&race_over, 1, __ATOMIC_RELEASE);
	pthread_barrier_wait(&round_start);
	for (unsigned i = 0; i < nthieves; i++) {
		pthread_join(th[i], NULL);
		steals += thief_steals[i];
	}
	pthread_barrier_destroy(&round_start);
	pthread_barrier_destroy(&round_end);
	check_no_failure();
	if (getenv("WHITE_VERBOSE") != NULL)
		print_message("%u rounds, %u thieves: %llu steals, %llu tasks taken back\n", rounds,
		    nthieves, (unsigned long long)steals, (unsigned long long)untaken);
	assert_true(steals > rounds); /* the thieves did take part */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_untake_stops_at_a_stalled_claim, clear_failure),
		cmocka_unit_test_setup(test_untake_bound_remembers_the_highest_tail, clear_failure),
		cmocka_unit_test_setup(test_untake_races_for_the_last_slot_by_cas, clear_failure),
		cmocka_unit_test_setup(test_untake_bound_restarts_when_c_head_moves, clear_failure),
		cmocka_unit_test_setup(test_retire_request_leaves_the_queues_to_their_owner,
		    clear_failure),
		cmocka_unit_test_setup(test_model_untake_against_stalled_thieves, clear_failure),
		cmocka_unit_test_setup(test_race_untake_against_steal_half, clear_failure),
	};

	tu_white_setup();
	return cmocka_run_group_tests_name("white_deque", tests, NULL, NULL);
}
