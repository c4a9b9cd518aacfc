/*
 * B1, B1r, B5 and B6 for every pool with a "submit fn(arg) from any thread" API (strix, thpool),
 * written once over bench_pool_api so each implementation runs exactly the same harness; then
 * the steady-state workloads on the same API (one pool reused for many bursts, a fixed-rate
 * load from outside). Pool creation and destruction are outside the timed regions.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- Steady state, burst after burst: the spawn_many or spawn_remote burst, `bursts` times on
 * one pool created once. Each burst is timed on its own; between bursts the pool is waited idle
 * (untimed), as a fresh pool's run is before its destruction. The figure is the median of the
 * last `tail` bursts' ns per task: the pool after (bursts - tail) * n tasks, not its first use. */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int harness_spawn_reused(const bench_pool_api *a, unsigned workers, bool remote, uint64_t n,
    unsigned bursts, unsigned tail, double *ns_per_task, bench_out *o)
{
	double *ns;
	unsigned k = 0, m;
	int rc = 0;

	if (bursts == 0 || n == 0) {
		snprintf(o->err, sizeof(o->err), "%s: no burst to run", a->name);
		return -1;
	}
	ns = calloc(bursts, sizeof(*ns));
	if (ns == NULL) {
		snprintf(o->err, sizeof(o->err), "%s: out of memory", a->name);
		return -1;
	}
	if (start(a, workers, o) != 0) {
		free(ns);
		return -1;
	}
	for (; k < bursts && rc == 0; k++) {
		bench_out b = { 0 };

		rc = countdown_run(remote, n, &b);
		api->wait_idle(pool);
		o->seconds += b.seconds;
		o->tasks += b.tasks;
		ns[k] = b.seconds * 1e9 / (double)n;
		if (rc == 0 && b.tasks != n) {
			snprintf(o->err, sizeof(o->err), "%s: burst %u: %llu of %llu tasks ran",
			    a->name, k, (unsigned long long)b.tasks, (unsigned long long)n);
			rc = -1;
		}
	}
	/* The tail's median (the mean of the middle two for an even count). */
	m = tail < bursts ? tail : bursts;
	qsort(ns + bursts - m, m, sizeof(*ns), cmp_double);
	*ns_per_task = (ns[bursts - m + (m - 1) / 2] + ns[bursts - m + m / 2]) / 2;
	free(ns);
	return stop(rc, (uint64_t)bursts * n, o);
}

/* ---- Sustained load: an outside thread submits `batch` tasks every period_ns (absolute
 * deadlines on CLOCK_MONOTONIC, so a late tick does not shift the ones after it), `ticks` times.
 * Task i reads its submit time from t_submit[i] and writes its latency to lat[i] and its run
 * count to runs[i]: each slot has one writer, so the hot path takes no lock and shares no
 * counter; the submitter reads the slots after waiting the pool idle, which orders the tasks'
 * writes before its reads. The arrays are touched before the first RSS sample, so the RSS figures
 * show what the pool itself grew by. ---------------------------------------------------------- */

static struct {
	uint64_t *t_submit;
	uint64_t *lat;
	atomic_uint_least8_t *runs;
} sus;

static void sustained_task(void *arg)
{
	uint64_t i = (uint64_t)(uintptr_t)arg;
	uint64_t t = bench_now_ns();

	sus.lat[i] = t - sus.t_submit[i];
	atomic_fetch_add_explicit(&sus.runs[i], 1, memory_order_relaxed);
}

static void rss_sample(bench_sustained *r, bool first)
{
	double kib = bench_rss_kib();

	if (first)
		r->rss_start_kib = kib;
	r->rss_end_kib = kib;
	if (kib > r->rss_max_kib)
		r->rss_max_kib = kib;
}

int harness_sustained(const bench_pool_api *a, unsigned workers, unsigned batch,
    uint64_t period_ns, uint64_t ticks, uint64_t rss_every, bench_hist *h, bench_sustained *r,
    bench_out *o)
{
	uint64_t n = ticks * batch, once = 0, t0;
	struct timespec next;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	sus.t_submit = malloc(n * sizeof(*sus.t_submit));
	sus.lat = malloc(n * sizeof(*sus.lat));
	sus.runs = malloc(n * sizeof(*sus.runs));
	if (sus.t_submit == NULL || sus.lat == NULL || sus.runs == NULL) {
		snprintf(o->err, sizeof(o->err), "%s: out of memory", a->name);
		rc = -1;
		goto out;
	}
	memset(sus.t_submit, 0xff, n * sizeof(*sus.t_submit));
	memset(sus.lat, 0xff, n * sizeof(*sus.lat));
	for (uint64_t i = 0; i < n; i++)
		atomic_init(&sus.runs[i], 0);
	if (start(a, workers, o) != 0) {
		rc = -1;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	t0 = bench_now_ns();
	for (uint64_t tick = 0; tick < ticks && rc == 0; tick++) {
		if (tick % rss_every == 0)
			rss_sample(r, tick == 0);
		for (unsigned b = 0; b < batch; b++) {
			uint64_t i = tick * batch + b;

			sus.t_submit[i] = bench_now_ns();
			if (api->submit(pool, sustained_task, (void *)(uintptr_t)i) != 0) {
				snprintf(o->err, sizeof(o->err), "%s: submit %llu refused", a->name,
				    (unsigned long long)i);
				rc = -1;
				break;
			}
		}
		next.tv_nsec += (long)period_ns;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	api->wait_idle(pool);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	rss_sample(r, false);
	for (uint64_t i = 0; i < n; i++) {
		unsigned runs = atomic_load_explicit(&sus.runs[i], memory_order_relaxed);

		if (runs == 1) {
			once++;
			hist_record(h, sus.lat[i]);
		} else if (runs > 1 && rc == 0) {
			snprintf(o->err, sizeof(o->err), "%s: task %llu ran %u times", a->name,
			    (unsigned long long)i, runs);
			rc = -1;
		}
	}
	o->tasks = once;
	rc = stop(rc, n, o);
out:
	free(sus.t_submit);
	free(sus.lat);
	free(sus.runs);
	memset(&sus, 0, sizeof(sus));
	return rc;
}
