/*
 * B8 timers, the wheel's share: 1,000,000 timers with deadlines log-uniform over 1 ms .. 60 s
 * (every level up to 3 is used), 90% cancelled, the rest expired by advancing the wheel past
 * 60 s. Costs are per operation, amortized; the expiry figure includes every cascade.
 * The timer service's share (service_timers): the same deadlines through sx_timer_add and
 * sx_timer_cancel from one outside thread (the timer thread working beside it), and the lateness
 * of inline callbacks, wake-up included; the process's CPU while the service waits for a timer an
 * hour away (no periodic tick). And the cost of sx_breaker_done in a hot loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <strix.h>

#include "workloads.h"

static uint64_t fired;

/* B8's deadlines, log-uniform over 1 ms .. 60 s: 2^(0..15) ms plus a uniform part of as much
 * again, capped at 60 s; the same sequence for the wheel and the service from the same seed. */
static uint64_t b8_delay_ns(uint64_t *seed)
{
	uint64_t ms, r;

	*seed ^= *seed << 13, *seed ^= *seed >> 7, *seed ^= *seed << 17;
	r = *seed;
	ms = (UINT64_C(1) << (r % 16)) + (r >> 20) % (UINT64_C(1) << (r % 16));
	return (ms > 60000 ? 60000 : ms) * 1000000u;
}

static void on_fire(sx_wheel_timer *t)
{
	(void)t;
	fired++;
}

int wheel_timers(uint64_t n, bench_timers *out, bench_out *o)
{
	sx_wheel_timer *t = malloc(n * sizeof(*t));
	uint64_t *deadline = malloc(n * sizeof(*deadline));
	sx_wheel_opts opts = SX_WHEEL_OPTS_INIT;
	uint64_t seed = 0x5eed, t0, t1, t2, t3, origin, kept = 0;
	sx_wheel *w = NULL;
	int rc = -1;

	if (t == NULL || deadline == NULL || sx_wheel_create(&opts, &w) != 0)
		goto out;
	origin = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		deadline[i] = origin + b8_delay_ns(&seed);
		sx_wheel_timer_init(&t[i], on_fire);
	}
	fired = 0;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++)
		sx_wheel_add(w, &t[i], deadline[i]);
	t1 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++)
		if (i % 10 != 0)
			sx_wheel_cancel(w, &t[i]);
	t2 = bench_now_ns();
	sx_wheel_advance_to(w, origin + 61 * 1000000000ull);
	t3 = bench_now_ns();
	kept = (n + 9) / 10;
	o->seconds = (double)(t3 - t0) * 1e-9;
	o->tasks = fired;
	out->insert_ns = (double)(t1 - t0) / (double)n;
	out->cancel_ns = (double)(t2 - t1) / (double)(n - kept);
	out->expiry_ns = (double)(t3 - t2) / (double)kept;
	out->bytes_per_timer = (double)sizeof(sx_wheel_timer);
	if (fired != kept || sx_wheel_count(w) != 0) {
		snprintf(o->err, sizeof(o->err), "wheel: %llu of %llu timers fired, %zu left",
		    (unsigned long long)fired, (unsigned long long)kept, sx_wheel_count(w));
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && o->err[0] == '\0')
		snprintf(o->err, sizeof(o->err), "wheel: setup failed");
	sx_wheel_destroy(w);
	free(t);
	free(deadline);
	return rc;
}

/* ---- the timer service and breakers ---------------------------------------------------------- */

struct late {
	uint64_t deadline;
	uint64_t fired;
	unsigned *left;
};

static void late_cb(void *arg, int status)
{
	struct late *l = arg;

	l->fired = status == 0 ? bench_now_ns() : 0;
	__atomic_fetch_sub(l->left, 1, __ATOMIC_RELEASE);
}

static void count_cb(void *arg, int status)
{
	(void)status;
	__atomic_fetch_add((uint64_t *)arg, 1, __ATOMIC_RELAXED);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Lateness: `k` inline timers added over about span ns, each due 1..50 ms after it was added
 * (an absolute deadline), each recording when its callback ran; p99 of (ran - deadline) in
 * ticks. Includes the timer thread's wake-up. */
static int service_lateness(sx_pool *p, unsigned k, uint64_t span, double *p99, bench_out *o)
{
	struct late *l = calloc(k, sizeof(*l));
	double *ticks = malloc(k * sizeof(double));
	unsigned left = k;
	uint64_t seed = 0x1a7e;
	int rc = -1;

	if (l == NULL || ticks == NULL)
		goto out;
	for (unsigned i = 0; i < k; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		l[i].deadline = bench_now_ns() + 1000000 + seed % 49000000;
		l[i].left = &left;
		if (sx_timer_add_at(p, l[i].deadline, SX_TIMER_INLINE, late_cb, &l[i], NULL) != 0)
			goto out;
		if (i % 64 == 63)
			bench_sleep_ns(span / k * 64); /* add while the service sleeps and fires */
	}
	while (__atomic_load_n(&left, __ATOMIC_ACQUIRE) != 0)
		bench_sleep_ns(1000000);
	for (unsigned i = 0; i < k; i++) {
		if (l[i].fired < l[i].deadline) {
			snprintf(o->err, sizeof(o->err), "timer %u fired early or not at all", i);
			goto out;
		}
		ticks[i] = (double)(l[i].fired - l[i].deadline) / 1e6; /* 1 ms tick */
	}
	qsort(ticks, k, sizeof(double), cmp_double);
	*p99 = ticks[(size_t)((double)k * 0.99)];
	rc = 0;
out:
	free(l);
	free(ticks);
	return rc;
}

int service_timers(uint64_t n, unsigned lateness_samples, double idle_s, bench_timers *out,
    bench_out *o)
{
	sx_timer *h = malloc(n * sizeof(*h));
	uint64_t *delay = malloc(n * sizeof(*delay));
	uint64_t seed = 0x5eed, t0, t1, t2, flushed = 0;
	sx_pool_opts po = SX_POOL_OPTS_INIT;
	sx_pool *p = NULL;
	int rc = -1;

	po.workers = 1;
	if (h == NULL || delay == NULL || sx_pool_create(&po, &p) != 0)
		goto out;
	for (uint64_t i = 0; i < n; i++)
		delay[i] = b8_delay_ns(&seed);
	if (service_lateness(p, lateness_samples, 200000000u, &out->lateness_p99_ticks, o))
		goto out;
	/* One warm-up round so the node slabs exist, as in a steady state. */
	for (int round = 0; round < 2; round++) {
		t0 = bench_now_ns();
		for (uint64_t i = 0; i < n; i++)
			if (sx_timer_add(p, delay[i], 0, count_cb, &flushed, &h[i]) != 0)
				goto out;
		t1 = bench_now_ns();
		/* Timers of a few ms may fire before their cancel: -EALREADY, counted the same. */
		for (uint64_t i = 0; i < n; i++)
			if (i % 10 != 0)
				sx_timer_cancel(&h[i]);
		t2 = bench_now_ns();
		for (uint64_t i = 0; i < n; i += 10)
			sx_timer_cancel(&h[i]);
	}
	out->svc_insert_ns = (double)(t1 - t0) / (double)n;
	out->svc_cancel_ns = (double)(t2 - t1) / (double)(n - (n + 9) / 10);
	out->svc_bytes_per_timer = 64; /* one cache line per node, from the pool's slabs */
	o->seconds += (double)(t2 - t0) * 1e-9;
	/* Idle: one timer an hour away. The thread's next wake (at the earliest cancelled deadline,
	 * a few ms away) unlinks the cancelled timers; after that it should sleep the whole hour. */
	if (sx_timer_add(p, 3600 * UINT64_C(1000000000), 0, count_cb, &flushed, NULL) != 0)
		goto out;
	bench_sleep_ns(300000000u);
	out->svc_idle_cpu_pct = bench_idle_cpu_pct(idle_s);
	rc = 0;
out:
	if (rc != 0 && o->err[0] == '\0')
		snprintf(o->err, sizeof(o->err), "timer service: setup failed");
	sx_pool_destroy(p);
	free(h);
	free(delay);
	return rc;
}

/* The cost of polling a breaker in a hot loop: iterations of `while (!done) count++`, the loop
 * ending when another thread trips it; reported per check. */
struct poll_arg {
	sx_breaker *b;
	uint64_t after_ns;
};

static void *trip_later(void *arg)
{
	struct poll_arg *a = arg;

	bench_sleep_ns(a->after_ns);
	sx_breaker_trip(a->b);
	return NULL;
}

int breaker_poll(uint64_t ms, double *done_ns, bench_out *o)
{
	struct poll_arg a = { NULL, ms * 1000000u };
	uint64_t count = 0, t0, t1;
	pthread_t th;

	if (sx_breaker_create(&a.b) != 0 || pthread_create(&th, NULL, trip_later, &a) != 0) {
		snprintf(o->err, sizeof(o->err), "breaker: setup failed");
		return -1;
	}
	t0 = bench_now_ns();
	while (!sx_breaker_done(a.b))
		count++;
	t1 = bench_now_ns();
	pthread_join(th, NULL);
	sx_breaker_release(a.b);
	*done_ns = (double)(t1 - t0) / (double)count;
	o->seconds = (double)(t1 - t0) * 1e-9;
	o->tasks = count;
	return 0;
}
