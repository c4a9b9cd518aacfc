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
/* strix with a thread resizing the pool every 10 ms (sx_pool_resize) between its worker count and
 * one while the workload runs (spawn_many_resized). */
extern const bench_pool_api bench_strix_resized_api;
/* A strix pool of `workers` with default options for the workloads that use strix's own API
 * (strix_impl.c); NULL, with a message in o->err, if it cannot be created. */
struct sx_pool;
struct sx_pool *bench_strix_pool(unsigned workers, bench_out *o);
extern const bench_pool_api bench_thpool_api;

int harness_spawn_many(const bench_pool_api *api, unsigned workers, uint64_t n, bench_out *o);
int harness_spawn_remote(const bench_pool_api *api, unsigned workers, uint64_t n, bench_out *o);
int harness_ping_pong(const bench_pool_api *api, unsigned workers, uint64_t rounds,
    bench_hist *h, bench_out *o);
int harness_wake(const bench_pool_api *api, unsigned workers, uint64_t samples, uint64_t gap_ns,
    double idle_s, bench_hist *h, bench_out *o);

/* Steady state, on one pool for the whole run (bench/README.md, "spawn_many_reused", "sustained").
 * harness_spawn_reused: `bursts` spawn_many bursts (remote: spawn_remote bursts) of n tasks each;
 *   *ns_per_task is the median over the last `tail` bursts (all of them when fewer).
 * harness_sustained: an outside thread submits `batch` tasks every period_ns, `ticks` times;
 *   one sample per task, submit -> start, into h; the resident memory is read before the first
 *   batch, every rss_every ticks and after the last task; every task must run exactly once. */
typedef struct bench_sustained {
	double rss_start_kib, rss_end_kib, rss_max_kib;
} bench_sustained;
int harness_spawn_reused(const bench_pool_api *api, unsigned workers, bool remote, uint64_t n,
    unsigned bursts, unsigned tail, double *ns_per_task, bench_out *o);
int harness_sustained(const bench_pool_api *api, unsigned workers, unsigned batch,
    uint64_t period_ns, uint64_t ticks, uint64_t rss_every, bench_hist *h, bench_sustained *r,
    bench_out *o);

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
	double svc_idle_cpu_pct; /* process CPU while the service waits for a timer an hour away */
} bench_timers;
int wheel_timers(uint64_t n, bench_timers *out, bench_out *o);
int service_timers(uint64_t n, unsigned lateness_samples, double idle_s, bench_timers *out,
    bench_out *o);
int breaker_poll(uint64_t ms, double *done_ns, bench_out *o);

/* B3 fib(n): recursive fork-join, every call a task (2*fib(n+1)-1 of them), no cutoff.
 * B2 skynet: a 10-ary tree of tasks down to `leaves` leaves, summed through promises (strix);
 *    rss_kib is the process's peak resident memory during the run.
 * B4 chain: n dependent continuations, each added by the step before it (then after then).
 * B8s retry_storm: n calls failing `retries` times, retried with exponential backoff (1 ms x2,
 *    full jitter) on timers, while a B5 hand-off runs on the same pool (histogram `busy`; the
 *    same hand-off alone first: `idle`). */
uint64_t bench_fib_expected(unsigned n);
uint64_t bench_fib_calls(unsigned n);
int strix_fib(unsigned workers, unsigned n, bench_out *o);
int omp_fib(unsigned workers, unsigned n, bench_out *o);
int tbb_fib(unsigned workers, unsigned n, bench_out *o);
int strix_skynet(unsigned workers, uint64_t leaves, double *rss_kib, bench_out *o);
int strix_chain(unsigned workers, uint64_t n, bool with_breaker, bench_out *o);
typedef struct bench_retry_storm {
	uint64_t lost, duplicated, handoffs;
} bench_retry_storm;
int strix_retry_storm(unsigned workers, uint64_t n, unsigned retries, bench_hist *idle,
    bench_hist *busy, bench_retry_storm *r, bench_out *o);

/* B7 fanout_limit: n calls with at most `limit` in flight, each empty (work_ns 0) or spinning
 * work_ns; every call moves an in-flight counter, whose high-water mark is max_inflight (the same
 * bookkeeping for every impl). strix: sx_fanout_map from outside the pool. thpool: the
 * pthread-pool way, a POSIX semaphore of `limit` permits taken before each thpool_add_work and
 * given back when the call ends. rss_kib: how far the peak resident memory during the run rose
 * above the resident memory before it (the growth the calls caused). */
typedef struct bench_fanout {
	double max_inflight, rss_kib;
} bench_fanout;
int strix_fanout(unsigned workers, uint64_t n, unsigned limit, uint64_t work_ns,
    bench_fanout *r, bench_out *o);
int thpool_fanout(unsigned workers, uint64_t n, unsigned limit, uint64_t work_ns,
    bench_fanout *r, bench_out *o);

/* B9 circuit / pipeline (pipeline_bench.c): `threads` threads making n calls each through one
 * closed circuit (strix, or the mutex-and-ring peer); a 5-policy pipeline around an empty call.
 * *allocs: allocations per call by strix's default allocator on the calling threads. */
int strix_circuit(unsigned threads, uint64_t n, double *allocs, bench_out *o);
int mutex_circuit_bench(unsigned threads, uint64_t n, double *allocs, bench_out *o);
int strix_pipeline(uint64_t n, double *allocs, bench_out *o);
/* A pipeline of the layers named by letters (pipeline_bench.c): r rate limit, t timeout, y retry,
 * c circuit, b bulkhead, a adaptive limit, x fault injection (off); "" is no layer at all. */
int strix_pipeline_of(const char *layers, uint64_t n, double *allocs, bench_out *o);

/* B14 adaptive / hedge (resilience_bench.c): a simulated backend in real time. adaptive: 64
 * clients through strix's adaptive limit (adaptive) or a fixed bulkhead sized for the first phase;
 * the backend loses half its servers half-way; h gets the second phase's latencies. hedge: 16
 * calls in flight against a 5%-slow backend, hedged (sx_hedge_run) or not; h gets every call's
 * latency, *extra_load the attempts per call - 1. */
typedef struct bench_adaptive_out {
	double limit_before, limit_after; /* the limit at the drop and at the end */
	double converge_ns;               /* after the drop, until the limit stays within 15% */
	double rejected_pct;              /* second phase: calls refused, % of tries */
	double calls_per_s;               /* second phase: calls completed per second */
} bench_adaptive_out;
int bench_adaptive(bool adaptive, bool smoke, bench_hist *h, bench_adaptive_out *out,
    bench_out *o);
int bench_hedge(bool hedged, bool smoke, bench_hist *h, double *extra_load, bench_out *o);

/* B13 registry (registry_bench.c): `threads` threads making n keyed lookups each (get and put)
 * over `keys` keys; churn: half of them new keys, under a bound of `keys`. strix's registry of
 * bulkheads, or (strix false) a mutex-protected open-addressing map of heap objects.
 * *bytes_per_key: memory per key after the fill, guard or object included. */
int registry_lookup(bool strix, unsigned threads, uint64_t keys, bool churn, uint64_t n,
    double *bytes_per_key, bench_out *o);

/* yield (tokio's yield_many): BENCH_YIELD_TASKS tasks submitted from outside the pool, each
 * yielding n / BENCH_YIELD_TASKS times (queued again behind the queued work: strix's
 * sx_pool_yield_task, a re-post for Asio) before it counts down; ns_per_task per yield. */
#define BENCH_YIELD_TASKS 200u
int strix_yield(unsigned workers, uint64_t n, bench_out *o);

/* strand_spawn, strand_pingpong (strand_bench.c; bench/README.md describes them). */
int strix_strand_spawn(unsigned workers, uint64_t n, unsigned strands, bench_out *o);
int strix_strand_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o);

/* ratelimit/<threads> (pipeline_bench.c): `threads` threads making n sx_ratelimit_try calls each
 * on one limiter whose rate refuses nothing; *false_refusals counts the refusals (must be 0). */
int strix_ratelimit(unsigned threads, uint64_t n, double *false_refusals, bench_out *o);

/* group_signal (group_bench.c): `samples` run groups (a signal actor and a blocking actor), each
 * ended by a SIGUSR1 sent to the process; one sample from kill() to sx_group_run's return. */
int strix_group_signal(uint64_t samples, bench_hist *h, bench_out *o);

/* io_pingpong (bench/README.md): one byte handed back and forth between the two ends of a TCP
 * connection over 127.0.0.1, `rounds` round trips after 1% more not recorded; one sample per
 * hand-off, from the write on one end to the other end's handler having read the byte. strix
 * (io_bench.c, built only with strix's I/O module: bench.mk): a wait callback per end on the pool.
 * uv (peers/uv_bench.c): a loop per end on its own thread. futex (peers/futex_bench.c): the
 * floor, two threads handing the byte through a futex word, no socket. Each checks every byte,
 * in order. */
int strix_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o);
int uv_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o);
int futex_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o);

#ifndef __cplusplus
/* The io_pingpong bookkeeping every implementation shares (common.c; C only, for _Atomic).
 * Hand-off k (from 1) carries the byte k & 0xff and goes from end 0 to end 1 when k is odd; end 0
 * sends the first. One hand-off is in flight at a time, so the fields are touched by one end at a
 * time: the sender's stamp is a release and the receiver's read of it an acquire, which orders
 * each end's updates before the other's, whatever carried the byte. */
typedef struct bench_relay {
	bench_hist *h;
	uint64_t total, warmup; /* hand-offs in all; the first ones, not recorded */
	uint64_t handoffs;      /* received so far */
	uint64_t recorded, bad; /* samples taken; bytes out of order or at the wrong end */
	_Atomic uint64_t t_send;
} bench_relay;
void bench_relay_init(bench_relay *r, uint64_t rounds, bench_hist *h);
/* Stamps the next hand-off's send; call it right before writing. Returns the hand-off's number
 * (its byte is the low 8 bits); the last one is r->total. */
uint64_t bench_relay_send(bench_relay *r);
/* End `me` read byte b at time t: checks it, records the sample. Returns the hand-off's number. */
uint64_t bench_relay_received(bench_relay *r, int me, unsigned char b, uint64_t t);
/* 0 when every hand-off arrived once, in order, at the right end; o->tasks = samples taken. */
int bench_relay_check(const bench_relay *r, const char *impl, bench_out *o);
#endif

/* A connected TCP pair over 127.0.0.1 (a listening socket on port 0 there, closed once the
 * connection is accepted), TCP_NODELAY and O_NONBLOCK on both ends: 0, or -1 with o->err. */
int bench_tcp_pair(int fd[2], bench_out *o);

/* blocking (blocking_bench.c): `samples` CPU tasks of about 1 us, one every gap_ns from an
 * outside thread, each one's submit -> start latency into h, beside 1 ms blocking calls (as many
 * in flight as workers) run nowhere, on the workers, or on the side threads. */
enum { BENCH_BLOCKING_NONE = 0, BENCH_BLOCKING_WORKERS = 1, BENCH_BLOCKING_SIDE = 2 };
int bench_blocking(unsigned workers, int mode, uint64_t samples, uint64_t gap_ns, bench_hist *h,
    bench_out *o);

/* Shared helpers (common.c). */
double bench_process_cpu_s(void);
void bench_sleep_ns(uint64_t ns);
/* Measure CPU used by the whole process over idle_s seconds of wall time, in % of one core. */
double bench_idle_cpu_pct(double idle_s);
/* Peak resident memory: reset the high-water mark (clear_refs), then read VmHWM in KiB. */
void bench_reset_peak_rss(void);
double bench_peak_rss_kib(void);
double bench_rss_kib(void); /* resident now */

#ifdef __cplusplus
}
#endif

#endif
