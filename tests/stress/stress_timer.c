/*
 * Randomized torture of timers and breakers: 8 threads (on 2 cores) add and cancel timers
 * (inline and pool-dispatched) while the timer thread fires them; create breakers of every kind
 * under one shared parent, register and withdraw callbacks, and trip them from several threads
 * and from timers at once; a shutdown flushes timers that threads are still adding. Every check
 * is an exact count per timer or callback: run twice, never run, or run after a successful
 * cancel/withdraw fails the test. STRESS=N multiplies the rounds by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <strix.h>

#include "testutil.h"

#define THREADS 8
#define OPS 1500
#define MS 1000000ull

struct slot {
	atomic_uchar ran;
	atomic_int status;
	unsigned char gone; /* not expected to run: unused (3), refused (2), cancelled or
	                       withdrawn (1); 0 once added or registered. Owner thread only. */
};

static sx_pool *pool;
static struct slot *tslots[THREADS];  /* per thread, one per timer */
static struct slot *cslots[THREADS];  /* per thread, one per callback */
static sx_breaker *shared_parent;

static void timer_cb(void *arg, int status)
{
	struct slot *s = arg;

	atomic_store(&s->status, status);
	atomic_fetch_add(&s->ran, 1);
}

static void breaker_cb(sx_breaker *b, void *arg)
{
	struct slot *s = arg;

	assert_true(sx_breaker_done(b));
	assert_int_not_equal(sx_breaker_err(b), 0);
	atomic_fetch_add(&s->ran, 1);
}

struct worker_arg {
	unsigned idx;
};

static void *timer_thread(void *p)
{
	struct worker_arg *a = p;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (a->idx + 1);
	sx_timer *h = calloc(OPS, sizeof(*h));
	struct slot *slots = tslots[a->idx];

	for (unsigned i = 0; i < OPS; i++) {
		uint64_t r = tu_rand(&seed);
		unsigned flags = (r & 1) ? SX_TIMER_INLINE : 0;
		int rc = sx_timer_add(pool, (r >> 8) % (3 * MS), flags, timer_cb, &slots[i], &h[i]);

		if (rc == -ESHUTDOWN) {
			slots[i].gone = 2; /* refused: must never run */
			continue;
		}
		assert_int_equal(rc, 0);
		slots[i].gone = 0;
		if ((r >> 4) % 3 == 0) {
			unsigned j = i - (unsigned)((r >> 32) % (i + 1));

			if (slots[j].gone == 0 && sx_timer_cancel(&h[j]) == 0)
				slots[j].gone = 1;
		}
		if (r % 512 == 0)
			sched_yield();
	}
	free(h);
	return NULL;
}

static void *breaker_thread(void *p)
{
	struct worker_arg *a = p;
	uint64_t seed = 0x2545f4914f6cdd1dull * (a->idx + 1);
	struct slot *slots = cslots[a->idx];
	unsigned used = 0;

	for (unsigned i = 0; i < OPS / 10; i++) {
		uint64_t r = tu_rand(&seed);
		sx_breaker *b, *own, *in[2];
		sx_breaker_cb *h[8];
		int rc;

		switch (r % 4) {
		case 0:
			assert_int_equal(sx_breaker_create(&b), 0);
			break;
		case 1:
			assert_int_equal(sx_breaker_timeout(pool, (int64_t)((r >> 8) % (2 * MS)), &b),
			    0);
			break;
		case 2:
			assert_int_equal(sx_breaker_child(shared_parent, &b), 0);
			break;
		default:
			assert_int_equal(sx_breaker_create(&own), 0);
			in[0] = own;
			in[1] = shared_parent;
			assert_int_equal(sx_breaker_multiplex(in, 2, &b), 0);
			sx_breaker_release(own); /* trips b with -ECANCELED, or loses to the parent */
			break;
		}
		for (unsigned k = 0; k < 8; k++) {
			struct slot *s = &slots[used + k];

			rc = sx_breaker_on_done(k & 1 ? b : shared_parent, breaker_cb, s, &h[k]);
			if (rc == -EALREADY) {
				s->gone = 2;
				h[k] = NULL;
				continue;
			}
			assert_int_equal(rc, 0);
			s->gone = 0;
		}
		/* Withdraw some before the trip, the rest after: each handle exactly once. */
		for (unsigned k = 0; k < 8; k++) {
			if (h[k] == NULL || ((r >> (24 + k)) & 1))
				continue;
			rc = sx_breaker_withdraw(h[k]);
			assert_true(rc == 0 || rc == -EALREADY);
			slots[used + k].gone = rc == 0;
			h[k] = NULL;
		}
		if ((r >> 20) & 1)
			sx_breaker_trip(b);
		for (unsigned k = 0; k < 8; k++) {
			if (h[k] == NULL)
				continue;
			rc = sx_breaker_withdraw(h[k]);
			assert_true(rc == 0 || rc == -EALREADY);
			slots[used + k].gone = rc == 0;
		}
		used += 8;
		if (r % 7 == 0)
			sched_yield();
		sx_breaker_release(b);
	}
	return NULL;
}

static void check_slots(struct slot *slots, unsigned n, const char *what)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned want = slots[i].gone ? 0u : 1u;
		uint64_t t0 = tu_now_ns();

		while (atomic_load(&slots[i].ran) < want) {
			if (tu_now_ns() - t0 > TU_DEADLINE_NS)
				fail_msg("%s %u never ran (gone %d)", what, i, slots[i].gone);
			sched_yield();
		}
	}
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(atomic_load(&slots[i].ran), slots[i].gone ? 0u : 1u);
}

static struct slot *new_slots(void)
{
	struct slot *s = calloc(OPS, sizeof(struct slot));

	for (unsigned i = 0; i < OPS; i++)
		s[i].gone = 3;
	return s;
}

static void test_timers_and_breakers_from_eight_threads(void **state)
{
	unsigned rounds = tu_stress_scale();

	(void)state;
	for (unsigned round = 0; round < rounds; round++) {
		pthread_t th[THREADS];
		struct worker_arg args[THREADS];

		pool = tu_pool(3);
		assert_int_equal(sx_breaker_create(&shared_parent), 0);
		memset(args, 0, sizeof(args));
		for (unsigned t = 0; t < THREADS; t++) {
			tslots[t] = new_slots();
			cslots[t] = new_slots();
			args[t].idx = t;
			assert_int_equal(pthread_create(&th[t], NULL,
			    t % 2 ? breaker_thread : timer_thread, &args[t]), 0);
		}
		/* The shared parent trips while children and callbacks come and go. */
		tu_sleep_ns(2 * MS);
		assert_int_equal(sx_breaker_trip(shared_parent), 0);
		for (unsigned t = 0; t < THREADS; t++)
			pthread_join(th[t], NULL);
		for (unsigned t = 0; t < THREADS; t++) {
			check_slots(tslots[t], OPS, "timer");
			check_slots(cslots[t], OPS, "callback");
			for (unsigned i = 0; i < OPS; i++)
				if (atomic_load(&tslots[t][i].ran))
					assert_int_equal(atomic_load(&tslots[t][i].status), 0);
		}
		sx_breaker_release(shared_parent);
		sx_pool_destroy(pool);
		for (unsigned t = 0; t < THREADS; t++) {
			free(tslots[t]);
			free(cslots[t]);
		}
	}
}

/* Shutdown while four threads keep adding: every timer is refused, cancelled, fired (0) or
 * flushed (-ESHUTDOWN, or -ECANCELED never: DRAIN runs queued callbacks) exactly once. */
static void test_shutdown_racing_with_adders(void **state)
{
	unsigned rounds = tu_stress_scale();

	(void)state;
	for (unsigned round = 0; round < rounds; round++) {
		pthread_t th[4];
		struct worker_arg args[4];

		pool = tu_pool(3);
		memset(args, 0, sizeof(args));
		for (unsigned t = 0; t < 4; t++) {
			tslots[t] = new_slots();
			args[t].idx = t;
			assert_int_equal(pthread_create(&th[t], NULL, timer_thread, &args[t]), 0);
		}
		tu_sleep_ns((round % 4) * MS);
		assert_int_equal(sx_pool_shutdown(pool, SX_DRAIN), 0);
		for (unsigned t = 0; t < 4; t++)
			pthread_join(th[t], NULL);
		for (unsigned t = 0; t < 4; t++) {
			for (unsigned i = 0; i < OPS; i++) {
				struct slot *s = &tslots[t][i];
				int st = atomic_load(&s->status);

				assert_int_equal(atomic_load(&s->ran), s->gone ? 0u : 1u);
				if (atomic_load(&s->ran))
					assert_true(st == 0 || st == -ESHUTDOWN);
			}
			free(tslots[t]);
		}
		sx_pool_destroy(pool);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_and_breakers_from_eight_threads),
		cmocka_unit_test(test_shutdown_racing_with_adders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
