/*
 * The single-owner timer wheel on a virtual clock: N timers with deadlines log-uniform over
 * 1 ms .. 60 s (bench/wheel_bench.c's B8 distribution, so every level up to 3 is used), added in
 * a fixed pseudo-random order, then one advance past 60 s fires them all, every cascade on the
 * way included. The process does nothing else. perf/profile.sh runs it under callgrind with N
 * and with 0: the difference divided by N is the instruction count of one timer's add and
 * expiry (callback included: it counts). "wheel_cost N add" stops before the advance, for the
 * add's share. The deadlines of all MAX_TIMERS timers are drawn whatever N is, so drawing them
 * is not part of the difference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_api.h"

#define MAX_TIMERS 100000u
#define MS 1000000ull

static _Alignas(32) sx_wheel_timer timers[MAX_TIMERS];
static uint64_t deadline[MAX_TIMERS];
static uint64_t vnow = 1000 * MS;
static unsigned long fired;

static uint64_t vclock_now(void *ctx)
{
	(void)ctx;
	return vnow;
}

static void on_fire(sx_wheel_timer *t)
{
	(void)t;
	fired++;
}

/* B8's deadlines: 2^(0..15) ms plus a uniform part of as much again, capped at 60 s. */
static uint64_t b8_delay_ns(uint64_t *seed)
{
	uint64_t ms, r;

	*seed ^= *seed << 13, *seed ^= *seed >> 7, *seed ^= *seed << 17;
	r = *seed;
	ms = (UINT64_C(1) << (r % 16)) + (r >> 20) % (UINT64_C(1) << (r % 16));
	return (ms > 60000 ? 60000 : ms) * MS;
}

int main(int argc, char **argv)
{
	const sx_clock clock = { vclock_now, NULL, NULL };
	sx_wheel_opts o = SX_WHEEL_OPTS_INIT;
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : MAX_TIMERS;
	int add_only = argc > 2 && strcmp(argv[2], "add") == 0;
	uint64_t seed = 0x5eed;
	sx_wheel *w = NULL;

	if (n > MAX_TIMERS)
		return 1;
	for (unsigned i = 0; i < MAX_TIMERS; i++)
		deadline[i] = vnow + b8_delay_ns(&seed);
	o.tick_ns = MS;
	o.clock = &clock;
	if (perf_wheel_create(&w, &o) != 0)
		return 1;
	for (unsigned long i = 0; i < n; i++) {
		sx_wheel_timer_init(&timers[i], on_fire);
		if (sx_wheel_add(w, &timers[i], deadline[i]) != 0)
			return 1;
	}
	if (!add_only) {
		vnow += 61000 * MS;
		sx_wheel_advance(w);
		if (fired != n || sx_wheel_count(w) != 0) {
			fprintf(stderr, "fired %lu of %lu, %zu left\n", fired, n, sx_wheel_count(w));
			return 1;
		}
	}
	sx_wheel_destroy(w);
	return 0;
}
