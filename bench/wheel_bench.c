/*
 * B8 timers, the wheel's share: 1,000,000 timers with deadlines log-uniform over 1 ms .. 60 s
 * (every level up to 3 is used), 90% cancelled, the rest expired by advancing the wheel past
 * 60 s. Costs are per operation, amortized; the expiry figure includes every cascade. Lateness
 * needs the timer service (a later part of issue 3) and is not measured here.
 */
#include <stdio.h>
#include <stdlib.h>

#include <strix.h>

#include "workloads.h"

static uint64_t fired;

static void on_fire(sx_wheel_timer *t, void *arg)
{
	(void)t;
	(void)arg;
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

	if (t == NULL || deadline == NULL || sx_wheel_create(&w, &opts) != 0)
		goto out;
	origin = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		/* log-uniform: 2^(0..16) ms times a uniform factor, capped at 60 s */
		uint64_t ms, r;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		r = seed;
		ms = (UINT64_C(1) << (r % 16)) + (r >> 20) % (UINT64_C(1) << (r % 16));
		deadline[i] = origin + (ms > 60000 ? 60000 : ms) * 1000000u;
		sx_wheel_timer_init(&t[i], on_fire, NULL);
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
