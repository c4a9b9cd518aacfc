/*
 * White-box tests of base's waiting word, event word and closable stack, and of exec's helping
 * wait: the windows where a wake-up or a node could be lost.
 *
 * A lost wake-up shows as a sleep that never ends: every wait here has a deadline far in the
 * future (TU_DEADLINE_NS) and a test fails when a wait had to run into it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "testutil.h"
#include "exec/exec.h"

#define FLAG 0x80000000u

static uint64_t far(void)
{
	return tu_now_ns() + TU_DEADLINE_NS;
}

/* ---- the waiting word: the window between the check and the sleep ------------------------- */

/* The word changed after the waiter loaded it, without a wake (no flag yet): the doze returns at
 * once instead of sleeping on a value that is gone. */
static void test_doze_after_an_unflagged_change_returns(void **state)
{
	uint32_t word = 0, seen = ck_pr_load_32(&word);
	uint64_t t0;

	(void)state;
	ck_pr_fas_32(&word, 1); /* the changer: old word had no flag, so it makes no call */
	t0 = tu_now_ns();
	sx__doze(&word, seen, FLAG, far());
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS / 2);
	assert_int_equal(word, 1); /* the failed CAS did not set the flag on the new value */
}

/* Another waiter had set the flag; the change cleared it and woke before our sleep began: our
 * sleep expects the flagged value, which is gone, so it does not start. */
static void test_doze_after_a_flag_clearing_change_returns(void **state)
{
	uint32_t word = FLAG, seen = ck_pr_load_32(&word);
	uint64_t t0;

	(void)state;
	if (ck_pr_fas_32(&word, 2) & FLAG)
		sx__futex_wake(&word);
	t0 = tu_now_ns();
	sx__doze(&word, seen, FLAG, far());
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS / 2);
}

/* A doze with nothing changing sleeps until its deadline, and sets the flag for changers. */
static void test_doze_sleeps_until_its_deadline_and_flags_the_word(void **state)
{
	uint32_t word = 5;
	uint64_t t0 = tu_now_ns();

	(void)state;
	sx__doze(&word, 5, FLAG, t0 + 20000000u);
	assert_int_equal(word, 5 | FLAG);
	/* Early returns are allowed (signals), so only the flag is certain; a second doze on the
	 * flagged value sleeps too. */
	sx__doze(&word, 5 | FLAG, FLAG, tu_now_ns() + 1000000u);
	assert_int_equal(word, 5 | FLAG);
}

/* Ping-pong through two waiting words, more threads than cores: each side waits for its turn
 * with sx__doze and hands the turn over with one RMW and a wake when the flag was set. A lost
 * wake-up leaves both sides asleep until the deadline. */
#define PP_PAIRS 4
#define PP_ROUNDS 20000

struct pp {
	uint32_t turn;     /* low bits: whose turn (0 or 1) and the round; FLAG: somebody sleeps */
	int late;
};

static void pp_wait_for(struct pp *p, uint32_t want)
{
	for (;;) {
		uint32_t seen = ck_pr_load_32(&p->turn);
		uint64_t until;

		if ((seen & ~FLAG) == want)
			return;
		until = far();
		sx__doze(&p->turn, seen, FLAG, until);
		if (tu_now_ns() >= until)
			ck_pr_store_int(&p->late, 1);
		if (ck_pr_load_int(&p->late))
			return;
	}
}

static void pp_hand_over(struct pp *p, uint32_t next)
{
	if (ck_pr_fas_32(&p->turn, next) & FLAG)
		sx__futex_wake(&p->turn);
}

struct pp_arg {
	struct pp *p;
	uint32_t side;
};

static void *pp_run(void *arg)
{
	struct pp_arg *a = arg;

	for (uint32_t r = a->side; r < 2 * PP_ROUNDS; r += 2) {
		pp_wait_for(a->p, r);
		if (ck_pr_load_int(&a->p->late))
			return NULL;
		pp_hand_over(a->p, r + 1);
	}
	return NULL;
}

static void test_ping_pong_loses_no_wake_up(void **state)
{
	struct pp pp[PP_PAIRS] = { { 0, 0 } };
	struct pp_arg args[PP_PAIRS][2];
	pthread_t th[PP_PAIRS][2];

	(void)state;
	for (int i = 0; i < PP_PAIRS; i++)
		for (uint32_t s = 0; s < 2; s++) {
			args[i][s] = (struct pp_arg){ &pp[i], s };
			assert_int_equal(pthread_create(&th[i][s], NULL, pp_run, &args[i][s]), 0);
		}
	for (int i = 0; i < PP_PAIRS; i++) {
		pthread_join(th[i][0], NULL);
		pthread_join(th[i][1], NULL);
		assert_int_equal(pp[i].late, 0);
		assert_int_equal(pp[i].turn & ~FLAG, 2 * PP_ROUNDS);
	}
}

/* ---- the event word ------------------------------------------------------------------------ */

static void test_event_bump_between_read_and_wait_is_not_lost(void **state)
{
	uint32_t ev = 0, seen = sx__event_read(&ev);
	uint64_t t0;

	(void)state;
	sx__event_bump(&ev);
	t0 = tu_now_ns();
	sx__event_wait(&ev, seen, far());
	assert_true(tu_now_ns() - t0 < TU_DEADLINE_NS / 2);
	assert_int_equal(ev, SX__EVENT_STEP);
}

static void test_event_bump_clears_the_flag_it_woke_for(void **state)
{
	uint32_t ev = 0;

	(void)state;
	sx__event_wait(&ev, 0, tu_now_ns() + 1000000u); /* sets the flag, times out */
	assert_int_equal(ev, SX__EVENT_WAITERS);
	sx__event_bump(&ev);
	assert_int_equal(ev, SX__EVENT_STEP); /* the next bump makes no system call */
}

/* Waiters of a condition kept elsewhere: the changer stores it, then bumps. Many waiters, many
 * bumps, more threads than cores: every waiter sees the final value before the deadline. */
#define EV_WAITERS 6
#define EV_BUMPS 20000

static uint32_t ev_word;
static uint32_t ev_value;
static int ev_late;

static void *ev_waiter(void *arg)
{
	(void)arg;
	for (uint32_t want = 1; want <= EV_BUMPS; want++) {
		for (;;) {
			uint32_t seen = sx__event_read(&ev_word);
			uint64_t until;

			if (ck_pr_load_32(&ev_value) >= want)
				break;
			until = far();
			sx__event_wait(&ev_word, seen, until);
			if (tu_now_ns() >= until) {
				ck_pr_store_int(&ev_late, 1);
				return NULL;
			}
		}
	}
	return NULL;
}

static void test_event_waiters_see_every_change(void **state)
{
	pthread_t th[EV_WAITERS];

	(void)state;
	for (int i = 0; i < EV_WAITERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ev_waiter, NULL), 0);
	for (uint32_t v = 1; v <= EV_BUMPS; v++) {
		ck_pr_store_32(&ev_value, v);
		sx__event_bump(&ev_word);
		if ((v & 1023) == 0)
			sched_yield();
	}
	for (int i = 0; i < EV_WAITERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ev_late, 0);
}

/* ---- the closable stack ------------------------------------------------------------------- */

/* Pushers race a closer (and a grabbing sweeper that pushes back what it took, as the breaker's
 * callback sweep does): every node ends up exactly once either in what the close took or with
 * its pusher, told the stack was closed. */
#define CS_PUSHERS 4
#define CS_NODES 2000
#define CS_ROUNDS 200

struct cs_node {
	sx__link link;
	uint32_t seen;         /* times found in the closed list */
	int refused;           /* its push said closed */
};

static sx__link *cs_head;
static struct cs_node cs_nodes[CS_PUSHERS][CS_NODES];
static int cs_go;

static void *cs_pusher(void *arg)
{
	struct cs_node *mine = arg;

	while (!ck_pr_load_int(&cs_go))
		ck_pr_stall();
	for (int i = 0; i < CS_NODES; i++)
		if (!sx__stack_push(&cs_head, &mine[i].link, &mine[i].link))
			mine[i].refused = 1;
	return NULL;
}

static void *cs_sweeper(void *arg)
{
	(void)arg;
	while (!ck_pr_load_int(&cs_go))
		ck_pr_stall();
	for (int i = 0; i < 200 && !sx__stack_closed(&cs_head); i++) {
		sx__link *l = sx__stack_grab(&cs_head), *tail = l;

		if (l == NULL)
			continue;
		while (tail->next != NULL)
			tail = tail->next;
		if (!sx__stack_push(&cs_head, l, tail)) {
			/* Closed while held: these are ours to account for, as the sweep runs them. */
			for (; l != NULL; l = l->next)
				SX_CONTAINER_OF(l, struct cs_node, link)->seen++;
		}
	}
	return NULL;
}

static void test_close_loses_and_duplicates_nothing(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int round = 0; round < CS_ROUNDS; round++) {
		pthread_t th[CS_PUSHERS + 1];
		uint64_t spin = tu_rand(&seed) % 20000;
		sx__link *l;

		memset(cs_nodes, 0, sizeof(cs_nodes));
		cs_head = NULL;
		cs_go = 0;
		for (int i = 0; i < CS_PUSHERS; i++)
			assert_int_equal(pthread_create(&th[i], NULL, cs_pusher, cs_nodes[i]), 0);
		assert_int_equal(pthread_create(&th[CS_PUSHERS], NULL, cs_sweeper, NULL), 0);
		ck_pr_store_int(&cs_go, 1);
		for (uint64_t s = 0; s < spin; s++)
			ck_pr_stall();
		l = sx__stack_close(&cs_head);
		assert_true(sx__stack_closed(&cs_head));
		assert_null(sx__stack_grab(&cs_head)); /* a closed stack stays closed */
		assert_true(sx__stack_closed(&cs_head));
		for (int i = 0; i <= CS_PUSHERS; i++)
			pthread_join(th[i], NULL);
		for (; l != NULL; l = l->next)
			SX_CONTAINER_OF(l, struct cs_node, link)->seen++;
		for (int i = 0; i < CS_PUSHERS; i++)
			for (int j = 0; j < CS_NODES; j++) {
				struct cs_node *n = &cs_nodes[i][j];

				assert_int_equal(n->seen + (uint32_t)n->refused, 1);
			}
	}
}

/* A refused push hands the list back ended by NULL, whatever last->next held (a lost CAS leaves
 * it linked to the old head, which the closer took). */
static void test_refused_push_returns_a_terminated_list(void **state)
{
	struct cs_node a, b, other;
	sx__link *head = NULL;

	(void)state;
	a.link.next = &b.link;
	b.link.next = &other.link; /* as a lost CAS leaves it */
	assert_null(sx__stack_close(&head));
	assert_false(sx__stack_push(&head, &a.link, &b.link));
	assert_ptr_equal(a.link.next, &b.link);
	assert_null(b.link.next);
	assert_true(sx__stack_closed(&head));
}

static void test_reverse_restores_push_order(void **state)
{
	struct cs_node n[5];
	sx__link *head = NULL, *l;
	int i = 0;

	(void)state;
	for (int k = 0; k < 5; k++)
		assert_true(sx__stack_push(&head, &n[k].link, &n[k].link));
	for (l = sx__list_reverse(sx__stack_take(&head)); l != NULL; l = l->next, i++)
		assert_ptr_equal(l, &n[i].link);
	assert_int_equal(i, 5);
	assert_null(head);
	assert_null(sx__list_reverse(NULL));
}

/* ---- the helping wait --------------------------------------------------------------------- */

static int done_when_nonzero(void *arg, uint32_t seen)
{
	(void)arg;
	return (seen & ~FLAG) != 0 ? (int)(seen & ~FLAG) : 0;
}

static uint32_t hw_word;

static void *hw_setter(void *arg)
{
	(void)arg;
	tu_sleep_ns(2000000u);
	if (ck_pr_fas_32(&hw_word, 7) & FLAG)
		sx__futex_wake(&hw_word);
	return NULL;
}

static void test_wait_returns_the_answer_or_times_out(void **state)
{
	pthread_t th;

	(void)state;
	hw_word = 0;
	assert_int_equal(sx__wait(NULL, &hw_word, FLAG, done_when_nonzero, NULL, 0), -ETIMEDOUT);
	assert_int_equal(sx__wait(NULL, &hw_word, FLAG, done_when_nonzero, NULL,
	    tu_now_ns() + 3000000u), -ETIMEDOUT);
	assert_int_equal(pthread_create(&th, NULL, hw_setter, NULL), 0);
	assert_int_equal(sx__wait(NULL, &hw_word, FLAG, done_when_nonzero, NULL, far()), 7);
	pthread_join(th, NULL);
}

/* On the only worker of its pool, the wait runs the tasks queued behind it (nobody else could),
 * one of which sets the word. */
static uint32_t hw_ran;
static int hw_rc;
static int hw_finished;

static void set_word(void *arg)
{
	(void)arg;
	ck_pr_inc_32(&hw_ran);
	if (ck_pr_fas_32(&hw_word, 9) & FLAG)
		sx__futex_wake(&hw_word);
}

static void count(void *arg)
{
	(void)arg;
	ck_pr_inc_32(&hw_ran);
}

static void waiter_task(void *arg)
{
	sx_pool *p = arg;

	for (int i = 0; i < 10; i++)
		assert_int_equal(sx_pool_submit(p, count, NULL), 0);
	assert_int_equal(sx_pool_submit(p, set_word, NULL), 0);
	hw_rc = sx__wait(sx__worker_of(p), &hw_word, FLAG, done_when_nonzero, NULL, far());
	ck_pr_store_int(&hw_finished, 1);
}

static void test_wait_on_a_worker_runs_the_tasks_behind_it(void **state)
{
	sx_pool *p = tu_pool(1);

	(void)state;
	hw_word = 0;
	assert_int_equal(sx_pool_submit(p, waiter_task, p), 0);
	TU_WAIT_FOR(ck_pr_load_int(&hw_finished));
	/* The pool's only worker was the waiter: the word was set by a task it ran while waiting.
	 * Tasks it had not reached yet (set_word sat in its LIFO slot, run first) run after. */
	assert_int_equal(hw_rc, 9);
	assert_int_equal(sx_pool_wait_idle(p), 0);
	assert_int_equal(ck_pr_load_32(&hw_ran), 11);
	sx_pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doze_after_an_unflagged_change_returns),
		cmocka_unit_test(test_doze_after_a_flag_clearing_change_returns),
		cmocka_unit_test(test_doze_sleeps_until_its_deadline_and_flags_the_word),
		cmocka_unit_test(test_ping_pong_loses_no_wake_up),
		cmocka_unit_test(test_event_bump_between_read_and_wait_is_not_lost),
		cmocka_unit_test(test_event_bump_clears_the_flag_it_woke_for),
		cmocka_unit_test(test_event_waiters_see_every_change),
		cmocka_unit_test(test_close_loses_and_duplicates_nothing),
		cmocka_unit_test(test_refused_push_returns_a_terminated_list),
		cmocka_unit_test(test_reverse_restores_push_order),
		cmocka_unit_test(test_wait_returns_the_answer_or_times_out),
		cmocka_unit_test(test_wait_on_a_worker_runs_the_tasks_behind_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
