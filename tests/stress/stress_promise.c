/*
 * Randomized torture of promises: 8 outside threads on a 4-worker pool (on 2 cores) build
 * chains, cancel them at random moments while they complete, add continuations while their
 * parent settles, wait on one promise from every thread at once, and retry with timer delays
 * under random cancels. Every check is exact: each step runs at most once and only when its
 * parent was fulfilled, each owned value is destroyed exactly once, each promise settles with a
 * value it may have, and nothing leaks (ASan). Settle-by-hand promises are settled from the
 * creating thread, from workers and from other outside threads (through mailboxes), cancelled at
 * random against those settles, chained, and raced against delays that breakers and cancels
 * cut. STRESS=N multiplies the rounds by 10*N.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <strix.h>

#include "testutil.h"

#define THREADS 8
#define ROUNDS 400
#define MS 1000000ll

static sx_pool *pool;
static atomic_long made, destroyed;

static void value_dtor(void *v)
{
	assert_non_null(v);
	atomic_fetch_add(&destroyed, 1);
}

/* last + arg, as an owned value (a distinct non-NULL pointer per run). */
static int add_step(sx_ctx *ctx, void *last, void **out)
{
	atomic_uint *runs = ctx->arg;

	atomic_fetch_add(runs, 1);
	*out = (void *)((uintptr_t)last + 1);
	ctx->dtor = value_dtor;
	atomic_fetch_add(&made, 1);
	return 0;
}

struct chain_job {
	atomic_uint runs[4];
	sx_promise *p[4];
};

static void *cancel_later(void *arg)
{
	struct chain_job *j = arg;
	uint64_t s = (uintptr_t)arg;

	for (unsigned spin = tu_rand(&s) % 2000; spin > 0; spin--)
		__asm__ volatile("" ::: "memory");
	sx_promise_cancel(j->p[tu_rand(&s) % 2 ? 0 : 3]); /* handles the test still holds */
	return NULL;
}

/* Cancel racing with completion: a 4-step chain and a thread that cancels one of its promises. */
static void cancel_vs_completion(uint64_t *seed)
{
	struct chain_job j;
	bool early;
	pthread_t th;
	void *v = NULL;
	int rc;

	for (int i = 0; i < 4; i++)
		atomic_init(&j.runs[i], 0);
	assert_int_equal(sx_promise_run(pool, add_step, &j.runs[0], &j.p[0]), 0);
	for (int i = 1; i < 4; i++)
		assert_int_equal(sx_promise_then(j.p[i - 1], add_step, &j.runs[i], &j.p[i]), 0);
	early = tu_rand(seed) % 2 == 0;
	if (early) /* the middle's handles go at once: the chain keeps what it needs */
		for (int i = 1; i < 3; i++)
			sx_promise_release(j.p[i]);
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &j), 0);
	rc = sx_promise_get(j.p[3], -1, &v);
	pthread_join(th, NULL);
	TU_WAIT_FOR(sx_promise_settled(j.p[0]) && sx_promise_settled(j.p[3]));
	/* Steps ran in order, each at most once, and a step ran only if the one before did. */
	for (int i = 0; i < 4; i++) {
		unsigned r = atomic_load(&j.runs[i]);

		assert_true(r <= 1);
		if (i > 0 && r == 1)
			assert_int_equal(atomic_load(&j.runs[i - 1]), 1);
	}
	if (rc == 0) {
		assert_ptr_equal(v, (void *)4);
		assert_int_equal(atomic_load(&j.runs[3]), 1);
	} else {
		assert_int_equal(rc, -ECANCELED);
	}
	for (int i = 0; i < 4; i++) {
		void *pv = NULL;
		int prc;

		if (early && (i == 1 || i == 2))
			continue;
		TU_WAIT_FOR(sx_promise_settled(j.p[i]));
		prc = sx_promise_get(j.p[i], 0, &pv);

		/* Settled: its outcome agrees with whether its step ran. */
		if (atomic_load(&j.runs[i]) == 1 && prc == 0)
			assert_ptr_equal(pv, (void *)(uintptr_t)(i + 1));
		else
			assert_true(prc == -ECANCELED || prc == 0);
		sx_promise_release(j.p[i]);
	}
}

struct then_race {
	sx_promise *p;
	atomic_uint runs[THREADS];
	sx_promise *q[THREADS];
	atomic_int go;
};

static int count_step(sx_ctx *ctx, void *last, void **out)
{
	atomic_fetch_add((atomic_uint *)ctx->arg, 1);
	*out = last;
	return 0;
}

static int value_step(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	*out = ctx->arg;
	return 0;
}

static struct then_race tr;
static pthread_barrier_t bar;

/* Every thread adds a continuation to tr.p while it settles, then all get the shared one. */
static void then_vs_completion(unsigned idx)
{
	void *v = NULL;

	pthread_barrier_wait(&bar); /* tr.p was started by thread 0 */
	assert_int_equal(sx_promise_then(tr.p, count_step, &tr.runs[idx], &tr.q[idx]), 0);
	assert_int_equal(sx_promise_get(tr.q[idx], -1, &v), 0);
	assert_ptr_equal(v, (void *)0x77);
	assert_int_equal(sx_promise_get(tr.p, -1, &v), 0); /* get from many threads at once */
	assert_ptr_equal(v, (void *)0x77);
	assert_int_equal(atomic_load(&tr.runs[idx]), 1);
	pthread_barrier_wait(&bar);
	sx_promise_release(tr.q[idx]);
}

static atomic_uint rec_calls;

static int flaky(sx_ctx *ctx, void *last, void **out)
{
	(void)last;
	if (ctx->attempt < (unsigned)(uintptr_t)ctx->arg)
		return -EAGAIN;
	*out = (void *)(uintptr_t)ctx->attempt;
	return 0;
}

static int recover_ok(sx_ctx *ctx, int err, void *last, void **out)
{
	(void)ctx;
	(void)err;
	*out = last;
	atomic_fetch_add(&rec_calls, 1);
	return 0;
}

/* Retry with timer delays under a random cancel: settles with success or -ECANCELED. */
static void retry_vs_cancel(uint64_t *seed)
{
	sx_retry_policy pol = SX_RETRY_POLICY_INIT;
	unsigned need = 1 + (unsigned)(tu_rand(seed) % 4);
	sx_promise *p, *r;
	void *v = NULL;
	int rc;

	pol.backoff = SX_BACKOFF_EXPONENTIAL;
	pol.base_ns = 100000; /* 0.1 ms, 0.2, 0.4 */
	pol.jitter = SX_JITTER_FULL;
	pol.seed = tu_rand(seed);
	assert_int_equal(sx_promise_run(pool, flaky, (void *)(uintptr_t)need, &p), 0);
	assert_int_equal(sx_promise_recover_and_retry(p, recover_ok, NULL, &pol, &r), 0);
	if (tu_rand(seed) % 2) {
		if (tu_rand(seed) % 2)
			tu_sleep_ns(tu_rand(seed) % 300000);
		sx_promise_cancel(r);
	}
	rc = sx_promise_get(r, -1, &v);
	TU_WAIT_FOR(sx_promise_settled(r));
	if (rc == 0)
		assert_ptr_equal(v, (void *)(uintptr_t)need);
	else
		assert_int_equal(rc, -ECANCELED);
	sx_promise_release(p);
	sx_promise_release(r);
}

static void *thread_main(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	uint64_t seed = 0x2545f4914f6cdd1dull * (idx + 1);
	unsigned rounds = ROUNDS * tu_stress_scale();

	for (unsigned i = 0; i < rounds; i++) {
		cancel_vs_completion(&seed);
		retry_vs_cancel(&seed);
		if (i % 20 == 0) {
			if (idx == 0) {
				for (unsigned t = 0; t < THREADS; t++)
					atomic_store(&tr.runs[t], 0);
				assert_int_equal(sx_promise_run(pool, value_step, (void *)0x77, &tr.p), 0);
			}
			then_vs_completion(idx);
			if (idx == 0)
				sx_promise_release(tr.p);
		}
	}
	return NULL;
}

static void test_promise_torture(void **state)
{
	pthread_t th[THREADS];
	sx_pool_opts o = SX_POOL_OPTS_INIT;

	(void)state;
	o.workers = 4;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	pthread_barrier_init(&bar, NULL, THREADS);
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	sx_pool_destroy(pool);
	/* Every owned value was destroyed exactly once (all promises are released and idle). */
	TU_WAIT_FOR(atomic_load(&destroyed) == atomic_load(&made));
	assert_true(atomic_load(&made) > 0);
	print_message("values made and destroyed: %ld; recover calls: %u\n", atomic_load(&made),
	    atomic_load(&rec_calls));
}

/* ---- settle-by-hand promises and delays ------------------------------------------------------ */

#define HAND_ROUNDS 300

/* One hand promise h, its chain h -> then -> finally (f), and what was done to it. */
struct hjob {
	sx_promise *h, *f;
	bool reject;            /* the settle it gets: reject with -EIO, or resolve with the job */
	bool keep_h;            /* the creator kept its handle on h (else only the settle right) */
	bool cut;               /* a cancel of the chain was made, or a race over h may cancel it */
	atomic_uint then_runs;
	atomic_uint fin_calls;
	atomic_int fin_err;
	atomic_int settle_rc;   /* 1 until the settle call has returned */
};

static _Atomic(struct hjob *) mailbox[THREADS];
static atomic_long hand_made, hand_won, hand_lost, then_ran, delays_cut;

static int hand_then(sx_ctx *ctx, void *last, void **out)
{
	struct hjob *j = ctx->arg;

	atomic_fetch_add(&j->then_runs, 1);
	*out = last;
	return 0;
}

static int hand_finally(sx_ctx *ctx, int err, void *value)
{
	struct hjob *j = ctx->arg;

	(void)value;
	atomic_store(&j->fin_err, err);
	atomic_fetch_add(&j->fin_calls, 1);
	return 0;
}

/* The settler's one call; j->h may be freed during it (when the creator released h). */
static void hand_settle(struct hjob *j)
{
	int rc = j->reject ? sx_promise_reject(j->h, -EIO) : sx_promise_resolve(j->h, j);

	atomic_store(&j->settle_rc, rc);
}

static void hand_settle_task(void *arg)
{
	hand_settle(arg);
}

/* Settle what another thread left in this thread's mailbox. */
static void hand_collect(unsigned idx)
{
	struct hjob *j = atomic_exchange(&mailbox[idx], NULL);

	if (j != NULL)
		hand_settle(j);
}

/* A delay of 0 to 300 us, with a stop breaker or none, cut at random by a trip or a cancel;
 * raced against a hand promise (when given), which the race may so cancel. */
struct hdelay {
	sx_promise *d, *r, *f;
	sx_breaker *stop;
	bool tried;             /* a trip, a cancel, or a race: it may end -ECANCELED */
	struct hjob fin;        /* its finally's calls and outcome */
};

static void hand_delay_start(uint64_t *seed, sx_promise *in, struct hdelay *x)
{
	unsigned cut = (unsigned)(tu_rand(seed) % 4);
	sx_promise *list[2];

	atomic_init(&x->fin.fin_calls, 0);
	atomic_init(&x->fin.fin_err, 1);
	x->stop = NULL;
	if (tu_rand(seed) % 2)
		assert_int_equal(sx_breaker_create(&x->stop), 0);
	assert_int_equal(sx_promise_delay(pool, (int64_t)(tu_rand(seed) % 300000), x->stop, &x->d),
	    0);
	assert_int_equal(sx_promise_finally(x->d, hand_finally, &x->fin, &x->f), 0);
	x->r = x->d;
	if (in != NULL) {
		list[0] = in;
		list[1] = x->d;
		assert_int_equal(sx_promise_race(pool, list, 2, &x->r), 0);
	}
	x->tried = in != NULL || cut >= 2 || (cut == 1 && x->stop != NULL);
	if (cut == 1 && x->stop != NULL)
		sx_breaker_trip(x->stop);
	else if (cut == 2)
		sx_promise_cancel(x->d);
	else if (cut == 3)
		sx_promise_cancel(x->r); /* a race: cancels both inputs */
}

/* The delay settled once, its finally told once, with a value only if nothing cut it. */
static void hand_delay_finish(struct hdelay *x)
{
	void *v = (void *)1;
	int rc;

	TU_WAIT_FOR(sx_promise_settled(x->r) && sx_promise_settled(x->f) &&
	    atomic_load(&x->fin.fin_calls) != 0);
	rc = sx_promise_get(x->d, 0, &v);
	assert_int_equal(atomic_load(&x->fin.fin_calls), 1);
	assert_int_equal(atomic_load(&x->fin.fin_err), rc);
	if (rc == 0) {
		assert_null(v);
	} else {
		assert_int_equal(rc, -ECANCELED);
		assert_true(x->tried);
		atomic_fetch_add(&delays_cut, 1);
	}
	if (x->r != x->d)
		sx_promise_release(x->r);
	sx_promise_release(x->f);
	sx_promise_release(x->d);
	sx_breaker_release(x->stop);
}

static void hand_round(unsigned idx, uint64_t *seed, struct hjob *j)
{
	sx_promise *t;
	unsigned how = (unsigned)(tu_rand(seed) % 4);
	bool raced = tu_rand(seed) % 4 == 0;
	struct hjob *old;
	struct hdelay x;

	hand_collect(idx);
	atomic_init(&j->then_runs, 0);
	atomic_init(&j->fin_calls, 0);
	atomic_init(&j->fin_err, 1);
	atomic_init(&j->settle_rc, 1);
	j->reject = tu_rand(seed) % 3 == 0;
	j->keep_h = tu_rand(seed) % 2;
	j->cut = raced || tu_rand(seed) % 3 == 0;
	assert_int_equal(sx_promise_create(pool, &j->h), 0);
	assert_int_equal(sx_promise_then(j->h, hand_then, j, &t), 0);
	assert_int_equal(sx_promise_finally(t, hand_finally, j, &j->f), 0);
	sx_promise_release(t);
	atomic_fetch_add(&hand_made, 1);
	if (j->cut && !raced && tu_rand(seed) % 4 == 0)
		sx_promise_cancel(j->f); /* before the settle: the settler hears -EALREADY */
	if (raced) /* the race over h and a delay may cancel h; it holds its own reference */
		hand_delay_start(seed, j->h, &x);
	if (!j->keep_h)
		sx_promise_release(j->h); /* only the settle right keeps it now */
	switch (how) {
	case 0: /* here */
		hand_settle(j);
		break;
	case 1: /* on a worker */
		assert_int_equal(sx_pool_submit(pool, hand_settle_task, j), 0);
		break;
	default: /* on the next thread, when it looks; what this thread finds there, it settles */
		old = atomic_exchange(&mailbox[(idx + 1) % THREADS], j);
		if (old != NULL)
			hand_settle(old);
		break;
	}
	if (j->cut && !raced)
		sx_promise_cancel(j->f); /* races the settler on the other thread or worker */
	if (!raced && tu_rand(seed) % 4 == 0) {
		hand_delay_start(seed, NULL, &x);
		raced = true;
	}
	if (raced)
		hand_delay_finish(&x);
}

/* Each job settled once, its finally told once, its outcome what its settle and cut allow. */
static void hand_check(struct hjob *j)
{
	void *v = NULL;
	int rc, src;

	TU_WAIT_FOR(atomic_load(&j->settle_rc) != 1 && sx_promise_settled(j->f));
	src = atomic_load(&j->settle_rc);
	rc = sx_promise_get(j->f, 0, &v);
	TU_WAIT_FOR(atomic_load(&j->fin_calls) != 0);
	assert_int_equal(atomic_load(&j->fin_calls), 1);
	assert_int_equal(atomic_load(&j->fin_err), rc);
	assert_true(atomic_load(&j->then_runs) <= 1);
	if (src == 0) {
		atomic_fetch_add(&hand_won, 1);
		if (j->reject) {
			assert_int_equal(rc, -EIO);
			assert_int_equal(atomic_load(&j->then_runs), 0);
		} else if (atomic_load(&j->then_runs) == 1) {
			assert_int_equal(rc, 0);
			assert_ptr_equal(v, j);
			atomic_fetch_add(&then_ran, 1);
		} else {
			assert_int_equal(rc, -ECANCELED);
			assert_true(j->cut);
		}
		if (j->keep_h)
			assert_int_equal(sx_promise_get(j->h, 0, &v), j->reject ? -EIO : 0);
	} else {
		atomic_fetch_add(&hand_lost, 1);
		assert_int_equal(src, -EALREADY);
		assert_true(j->cut);
		assert_int_equal(rc, -ECANCELED);
		assert_int_equal(atomic_load(&j->then_runs), 0);
		if (j->keep_h)
			assert_int_equal(sx_promise_get(j->h, 0, &v), -ECANCELED);
	}
	sx_promise_release(j->f);
	if (j->keep_h)
		sx_promise_release(j->h);
}

static void *hand_main(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (idx + 1);
	unsigned rounds = HAND_ROUNDS * tu_stress_scale();
	struct hjob *jobs = calloc(rounds, sizeof(*jobs));

	assert_non_null(jobs);
	for (unsigned i = 0; i < rounds; i++)
		hand_round(idx, &seed, &jobs[i]);
	pthread_barrier_wait(&bar); /* nobody posts any more */
	hand_collect(idx);
	for (unsigned i = 0; i < rounds; i++)
		hand_check(&jobs[i]);
	free(jobs);
	return NULL;
}

/* 8 outside threads and 4 workers settle, cancel and chain hand promises at random, race them
 * against delays that breakers and cancels cut: every count exact, nothing leaks. */
static void test_hand_torture(void **state)
{
	pthread_t th[THREADS];
	sx_pool_opts o = SX_POOL_OPTS_INIT;

	(void)state;
	o.workers = 4;
	assert_int_equal(sx_pool_create(&o, &pool), 0);
	pthread_barrier_init(&bar, NULL, THREADS);
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hand_main, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(sx_pool_wait_idle(pool), 0);
	sx_pool_destroy(pool);
	assert_int_equal(atomic_load(&hand_won) + atomic_load(&hand_lost), atomic_load(&hand_made));
	assert_true(atomic_load(&then_ran) <= atomic_load(&hand_won));
	print_message("hand promises: %ld (settle won %ld, cancel won %ld, then ran %ld); delays "
	    "cut %ld\n", atomic_load(&hand_made), atomic_load(&hand_won), atomic_load(&hand_lost),
	    atomic_load(&then_ran), atomic_load(&delays_cut));
}

/* Fork-join from inside the workers, deep: fib(20) through promises on 4 workers. */
static int fib(sx_ctx *ctx, void *last, void **out)
{
	intptr_t n = (intptr_t)ctx->arg;
	sx_promise *a, *b;
	void *x = NULL, *y = NULL;

	(void)last;
	if (n < 2) {
		*out = (void *)n;
		return 0;
	}
	assert_int_equal(sx_promise_run(pool, fib, (void *)(n - 1), &a), 0);
	assert_int_equal(sx_promise_run(pool, fib, (void *)(n - 2), &b), 0);
	assert_int_equal(sx_promise_get(b, -1, &y), 0);
	assert_int_equal(sx_promise_get(a, -1, &x), 0);
	sx_promise_release(a);
	sx_promise_release(b);
	*out = (void *)((intptr_t)x + (intptr_t)y);
	return 0;
}

/* fib through promises on 2, 4 and 8 workers (more than the cores: thieves race the owner for
 * the last task of its ring, which a waiting owner takes back to run inline), many rounds; every
 * value checked, and the pool's submitted and executed counts must meet (wait_idle returns). */
static void test_fork_join(void **state)
{
	static const unsigned workers[] = { 2, 4, 8 };
	unsigned rounds = 5 * tu_stress_scale();

	(void)state;
	for (unsigned k = 0; k < 3; k++) {
		sx_pool_opts o = SX_POOL_OPTS_INIT;
		sx_pool_counters c;

		o.workers = workers[k];
		assert_int_equal(sx_pool_create(&o, &pool), 0);
		for (unsigned r = 0; r < rounds; r++) {
			sx_promise *p;
			void *v = NULL;

			assert_int_equal(sx_promise_run(pool, fib, (void *)20, &p), 0);
			assert_int_equal(sx_promise_get(p, -1, &v), 0);
			assert_ptr_equal(v, (void *)6765);
			sx_promise_release(p);
		}
		assert_int_equal(sx_pool_wait_idle(pool), 0);
		assert_int_equal(sx_pool_stats(pool, &c, NULL, 0), 0);
		assert_true(c.executed == c.submitted);
		sx_pool_destroy(pool);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_promise_torture),
		cmocka_unit_test(test_hand_torture),
		cmocka_unit_test(test_fork_join),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
