/*
 * White-box test of the one claim that ends a wait (src/io/io.h): threads released together
 * try to end the same armed wait, some as readiness does (sx__io_claim on the state word they
 * read) and some as a breaker or the connect timer does (sx__io_trip); exactly one wins each
 * round, and the wait's callback runs exactly once. The unit and stress tests race these ends
 * through the kernel and the notifier thread, whose delays rarely let two of them meet inside
 * the few instructions between a load and the CAS; here they meet every round.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/io.h"

#include "testutil.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define ROUNDS 1000u
#else
#define ROUNDS 5000u
#endif
#define CLAIMERS 2u

static struct sx__io_slot *slot;
static sx_io *io;
static atomic_uint go, arrived, winners;
static _Atomic uint32_t armed;
static atomic_int calls, last;

static void ended(sx_io *i, int result, void *arg)
{
	(void)i;
	(void)arg;
	atomic_store(&last, result);
	atomic_fetch_add(&calls, 1);
}

static bool always(struct sx__io_slot *s, const void *key)
{
	(void)s;
	(void)key;
	return true;
}

static void *claimer(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	for (unsigned round = 1; round <= ROUNDS; round++) {
		bool won;

		/* Spin a little so that both arrive together, then yield (more threads than cores). */
		for (unsigned n = 0; atomic_load(&go) != round; n++)
			if (n > 4096)
				sched_yield();
		if (me % 2 == 0)
			won = sx__io_claim(slot, atomic_load(&armed), -1000 - (int)me);
		else
			won = sx__io_trip(slot, -2000 - (int)me, always, NULL);
		if (won) {
			atomic_fetch_add(&winners, 1);
			sx__io_deliver(io, slot);
		}
		atomic_fetch_add(&arrived, 1);
	}
	return NULL;
}

static void test_one_claim_wins(void **state)
{
	sx_pool *p = tu_pool(1);
	pthread_t th[CLAIMERS];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	slot = sx__io_slot_of(io, SX_IO_READABLE);
	for (unsigned i = 0; i < CLAIMERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, claimer, (void *)(uintptr_t)i), 0);
	for (unsigned round = 1; round <= ROUNDS; round++) {
		assert_int_equal(sx_io_wait(io, SX_IO_READABLE, NULL, ended, NULL), 0);
		atomic_store(&armed, ck_pr_load_32(&slot->state));
		assert_int_equal(atomic_load(&armed) & SX__IO_PHASE, SX__IO_ARMED);
		atomic_store(&go, round);
		while (atomic_load(&arrived) != CLAIMERS * round)
			sched_yield();
		TU_WAIT_FOR(atomic_load(&calls) == (int)round);
		if (atomic_load(&winners) != round)
			fail_msg("round %u: %u claims won in all", round, atomic_load(&winners));
		assert_true(atomic_load(&last) <= -1000);
	}
	for (unsigned i = 0; i < CLAIMERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(sx_io_deregister(io), 0);
	assert_int_equal(atomic_load(&calls), (int)ROUNDS);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

/* The bare claim, many times: the slot's state is set to an armed word by hand (no operation
 * behind it, so nothing is queued), two threads claim it at once, one must win. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define BARE_ROUNDS 20000u
#else
#define BARE_ROUNDS 400000u
#endif

static atomic_uint bare_go, bare_done, bare_won;

static void *bare_claimer(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	for (unsigned round = 1; round <= BARE_ROUNDS; round++) {
		for (unsigned n = 0; atomic_load(&bare_go) != round; n++)
			if (n > 4096)
				sched_yield();
		if (sx__io_claim(slot, atomic_load(&armed), -1 - (int)me))
			atomic_fetch_add(&bare_won, 1);
		atomic_fetch_add(&bare_done, 1);
	}
	return NULL;
}

static void test_bare_claims_race(void **state)
{
	sx_pool *p = tu_pool(1);
	pthread_t th[2];
	uint32_t idle;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(sx_io_register(p, sv[0], &io), 0);
	slot = sx__io_slot_of(io, SX_IO_READABLE);
	idle = ck_pr_load_32(&slot->state);
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, bare_claimer, (void *)(uintptr_t)i), 0);
	for (unsigned round = 1; round <= BARE_ROUNDS; round++) {
		uint32_t a = (idle & ~SX__IO_PHASE) + round * SX__IO_GEN_ONE * 2 + SX__IO_ARMED;

		ck_pr_store_32(&slot->state, a);
		atomic_store(&armed, a);
		atomic_store(&bare_go, round);
		for (unsigned n = 0; atomic_load(&bare_done) != 2 * round; n++)
			if (n > 4096)
				sched_yield();
		if (atomic_load(&bare_won) != round)
			fail_msg("round %u: %u claims won in all", round, atomic_load(&bare_won));
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_pr_store_32(&slot->state, idle);
	assert_int_equal(sx_io_deregister(io), 0);
	sx_pool_destroy(p);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_claim_wins),
		cmocka_unit_test(test_bare_claims_race),
	};

	tu_white_setup();
	return cmocka_run_group_tests_name("white_io", tests, NULL, NULL);
}
