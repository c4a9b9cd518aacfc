/*
 * The benchmark bodies, in C (the peers' that need C++ in C++), behind one calling convention so
 * bench_main.cc registers every <workload>/<impl> the same way.
 *
 * Every function runs one complete workload, checks its own result and returns 0, or a negative
 * value with a message in err. Times are measured inside, around the work only (pool creation and
 * teardown are outside the timed region).
 */
#ifndef STRIX_BENCH_WORKLOADS_H
#define STRIX_BENCH_WORKLOADS_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_out {
	double seconds;      /* timed region */
	uint64_t tasks;      /* tasks executed and checked */
	double idle_cpu_pct; /* wake only: CPU used while idle, % of one core */
	char err[160];
} bench_out;

/* B1 spawn_many: n empty tasks spawned from inside one worker, done when a countdown hits 0.
 * B1r spawn_remote: the same n tasks submitted from one thread outside the pool.
 * B5 ping_pong: `rounds` hand-offs between two workers, one latency sample each.
 * B6 wake: an outside thread submits one task every gap_ns to an idle pool; submit -> start. */

/* A pool with a plain "submit fn(arg)" API, run through the shared harness (harness.c). */
typedef struct bench_pool_api {
	const char *name;
	void *(*create)(unsigned workers);
	int (*submit)(void *pool, void (*fn)(void *), void *arg);
	void (*wait_idle)(void *pool);
	void (*destroy)(void *pool);
} bench_pool_api;

extern const bench_pool_api bench_strix_api;
extern const bench_pool_api bench_thpool_api;

int harness_spawn_many(const bench_pool_api *api, unsigned workers, uint64_t n, bench_out *o);
int harness_spawn_remote(const bench_pool_api *api, unsigned workers, uint64_t n, bench_out *o);
int harness_ping_pong(const bench_pool_api *api, unsigned workers, uint64_t rounds,
    bench_hist *h, bench_out *o);
int harness_wake(const bench_pool_api *api, unsigned workers, uint64_t samples, uint64_t gap_ns,
    double idle_s, bench_hist *h, bench_out *o);

int uv_spawn_many(unsigned workers, uint64_t n, bench_out *o);
int uv_spawn_remote(unsigned workers, uint64_t n, bench_out *o);

int omp_spawn_many(unsigned workers, uint64_t n, bench_out *o);

int tbb_spawn_many(unsigned workers, uint64_t n, bench_out *o);
int tbb_spawn_remote(unsigned workers, uint64_t n, bench_out *o);

/* The floor for B6: a bare thread blocked in FUTEX_WAIT, woken by FUTEX_WAKE. */
int futex_wake(unsigned workers, uint64_t samples, uint64_t gap_ns, double idle_s,
    bench_hist *h, bench_out *o);

/* B8 timers (wheel_bench.c): per-operation costs of the timer wheel, then of the timer service
 * (sx_timer_add/cancel) and its lateness; the cost of one sx_breaker_done in a hot loop. */
typedef struct bench_timers {
	double insert_ns, cancel_ns, expiry_ns, bytes_per_timer;
	double svc_insert_ns, svc_cancel_ns, svc_bytes_per_timer, lateness_p99_ticks;
} bench_timers;
int wheel_timers(uint64_t n, bench_timers *out, bench_out *o);
int service_timers(uint64_t n, bench_timers *out, bench_out *o);
int breaker_poll(uint64_t ms, double *done_ns, bench_out *o);

/* Shared helpers (common.c). */
double bench_process_cpu_s(void);
void bench_sleep_ns(uint64_t ns);
/* Measure CPU used by the whole process over idle_s seconds of wall time, in % of one core. */
double bench_idle_cpu_pct(double idle_s);

#ifdef __cplusplus
}
#endif

#endif
