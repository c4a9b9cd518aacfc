/*
 * B1, B1r, B5 and B6 for every pool with a "submit fn(arg) from any thread" API (strix, thpool),
 * written once over bench_pool_api so each implementation runs exactly the same harness.
 * Pool creation and destruction are outside the timed regions.
 */
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>

#include "workloads.h"

static const bench_pool_api *api;
static void *pool;
static atomic_uint_fast64_t countdown;
static sem_t done;

static void empty_task(void *arg)
{
	(void)arg;
	if (atomic_fetch_sub_explicit(&countdown, 1, memory_order_acq_rel) == 1)
		sem_post(&done);
}

static int start(const bench_pool_api *a, unsigned workers, bench_out *o)
{
	api = a;
	pool = a->create(workers);
	if (pool == NULL) {
		snprintf(o->err, sizeof(o->err), "%s: cannot create a pool", a->name);
		return -1;
	}
	sem_init(&done, 0, 0);
	return 0;
}

static int stop(int rc, uint64_t want, bench_out *o)
{
	api->wait_idle(pool);
	api->destroy(pool);
	sem_destroy(&done);
	if (rc == 0 && o->tasks != want) {
		snprintf(o->err, sizeof(o->err), "%s: %llu of %llu tasks ran", api->name,
		    (unsigned long long)o->tasks, (unsigned long long)want);
		rc = -1;
	}
	return rc;
}

/* Submit n empty tasks; a refused one is taken off the countdown so the run still ends. */
static int submit_n(uint64_t n)
{
	int bad = 0;

	for (uint64_t i = 0; i < n; i++) {
		if (api->submit(pool, empty_task, NULL) != 0) {
			bad = -1;
			empty_task(NULL);
		}
	}
	return bad;
}

static atomic_int spawner_rc;

static void spawner(void *arg)
{
	atomic_store(&spawner_rc, submit_n((uint64_t)(uintptr_t)arg));
}

static int countdown_run(bool remote, uint64_t n, bench_out *o)
{
	uint64_t t0;
	int rc;

	atomic_store(&countdown, n);
	atomic_store(&spawner_rc, 0);
	t0 = bench_now_ns();
	if (remote)
		rc = submit_n(n);
	else
		rc = api->submit(pool, spawner, (void *)(uintptr_t)n);
	if (rc == 0 || remote)
		sem_wait(&done);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - atomic_load(&countdown);
	return rc != 0 ? rc : atomic_load(&spawner_rc);
}

int harness_spawn_many(const bench_pool_api *a, unsigned workers, uint64_t n, bench_out *o)
{
	if (start(a, workers, o) != 0)
		return -1;
	return stop(countdown_run(false, n, o), n, o);
}

int harness_spawn_remote(const bench_pool_api *a, unsigned workers, uint64_t n, bench_out *o)
{
	if (start(a, workers, o) != 0)
		return -1;
	return stop(countdown_run(true, n, o), n, o);
}

/* ---- B5: a task on one worker hands a token to a new task, which only another worker can
 * start (the first one is busy waiting for the token to come back). One sample per hand-off:
 * submit -> start of the new task. ---------------------------------------------------------- */

struct pingpong {
	uint64_t rounds, warmup;
	bench_hist *h;
	atomic_int token;
	uint64_t t_submit;
	uint64_t ran;
	int rc;
};

static void pong(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t t = bench_now_ns();

	if (pp->ran++ >= pp->warmup)
		hist_record(pp->h, t - pp->t_submit);
	atomic_store_explicit(&pp->token, 1, memory_order_release);
}

static void ping(void *arg)
{
	struct pingpong *pp = arg;

	for (uint64_t r = 0; r < pp->rounds + pp->warmup; r++) {
		atomic_store_explicit(&pp->token, 0, memory_order_relaxed);
		pp->t_submit = bench_now_ns();
		if (api->submit(pool, pong, pp) != 0) {
			pp->rc = -1;
			break;
		}
		while (!atomic_load_explicit(&pp->token, memory_order_acquire))
			__builtin_ia32_pause();
	}
	sem_post(&done);
}

int harness_ping_pong(const bench_pool_api *a, unsigned workers, uint64_t rounds, bench_hist *h,
    bench_out *o)
{
	struct pingpong pp = { .rounds = rounds, .warmup = rounds / 100, .h = h };
	uint64_t t0;

	if (start(a, workers < 2 ? 2 : workers, o) != 0)
		return -1;
	t0 = bench_now_ns();
	pp.rc = api->submit(pool, ping, &pp);
	if (pp.rc == 0)
		sem_wait(&done);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	api->wait_idle(pool);
	o->tasks = pp.ran;
	return stop(pp.rc, rounds + pp.warmup, o);
}

/* ---- B6: an outside thread submits one task every gap_ns to an idle pool. -------------------- */

struct wake {
	bench_hist *h;
	_Atomic uint64_t t_submit;
	atomic_uint_fast64_t ran;
};

static void wake_task(void *arg)
{
	struct wake *w = arg;
	uint64_t t = bench_now_ns();

	hist_record(w->h, t - atomic_load_explicit(&w->t_submit, memory_order_relaxed));
	atomic_fetch_add_explicit(&w->ran, 1, memory_order_release);
}

int harness_wake(const bench_pool_api *a, unsigned workers, uint64_t samples, uint64_t gap_ns,
    double idle_s, bench_hist *h, bench_out *o)
{
	struct wake w = { .h = h };
	uint64_t t0;
	int rc = 0;

	if (start(a, workers, o) != 0)
		return -1;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < samples && rc == 0; i++) {
		bench_sleep_ns(gap_ns);
		while (atomic_load_explicit(&w.ran, memory_order_acquire) != i)
			bench_sleep_ns(1000);
		atomic_store_explicit(&w.t_submit, bench_now_ns(), memory_order_relaxed);
		rc = api->submit(pool, wake_task, &w);
	}
	api->wait_idle(pool);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = atomic_load(&w.ran);
	/* Idle now: any spin window ends at once, then the workers should sleep. */
	o->idle_cpu_pct = bench_idle_cpu_pct(idle_s);
	return stop(rc, samples, o);
}
