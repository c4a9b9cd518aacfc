// strix-bench: Google Benchmark registration for the suite that bench/README.md describes.
// The bodies are C (harness.c, peers/*); this file only registers them as <workload>/<impl>
// and turns their results into the counters the report reads.
//
// Extra flags (removed before Google Benchmark sees argv):
//   --smoke        every benchmark once at tiny sizes (make bench-smoke)
//   --workers=N    worker count for every impl (default: online CPUs)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "workloads.h"
#include "peers/asio.h"

namespace {

unsigned g_workers;
bool g_smoke;

uint64_t size(uint64_t full, uint64_t smoke) { return g_smoke ? smoke : full; }
int reps(int full) { return g_smoke ? 1 : full; }

using spawn_body = int (*)(unsigned, uint64_t, bench_out *);
using latency_body = int (*)(unsigned, uint64_t, bench_hist *, bench_out *);
using wake_body = int (*)(unsigned, uint64_t, uint64_t, double, bench_hist *, bench_out *);

void set_latency(benchmark::State &st, const bench_hist &h)
{
	st.counters["p50_ns"] = (double)hist_quantile(&h, 0.50);
	st.counters["p99_ns"] = (double)hist_quantile(&h, 0.99);
	st.counters["p999_ns"] = (double)hist_quantile(&h, 0.999);
	st.counters["max_ns"] = (double)h.max;
}

// Runs `body(o)` once per iteration; ns_per_task over every task the iterations ran.
template <typename F>
bool run_counted(benchmark::State &st, F body)
{
	double ns = 0;
	uint64_t tasks = 0;

	for (auto _ : st) {
		bench_out o{};
		if (body(&o) != 0) {
			st.SkipWithError(o.err);
			return false;
		}
		st.SetIterationTime(o.seconds);
		ns += o.seconds * 1e9;
		tasks += o.tasks;
	}
	st.counters["ns_per_task"] = ns / (double)tasks;
	st.counters["workers"] = g_workers;
	return true;
}

void run_spawn(benchmark::State &st, spawn_body body, uint64_t n)
{
	run_counted(st, [&](bench_out *o) { return body(g_workers, n, o); });
}

// A latency workload (ping_pong, group_signal): `rounds` samples into one histogram per run.
void run_latency(benchmark::State &st, latency_body body, uint64_t rounds)
{
	static bench_hist h;

	hist_reset(&h);
	for (auto _ : st) {
		bench_out o{};
		if (body(g_workers, rounds, &h, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	set_latency(st, h);
	st.counters["workers"] = g_workers;
}

void run_wake(benchmark::State &st, wake_body body, uint64_t samples)
{
	static bench_hist h;
	double idle = 0;

	hist_reset(&h);
	for (auto _ : st) {
		bench_out o{};
		if (body(g_workers, samples, 200000, g_smoke ? 0.2 : 2.0, &h, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
		idle = o.idle_cpu_pct;
	}
	set_latency(st, h);
	st.counters["idle_cpu_pct"] = idle;
	st.counters["workers"] = g_workers;
}

// blocking: CPU task latency beside blocking calls (none, on the workers, on the side threads).
void run_blocking(benchmark::State &st, int mode, uint64_t samples)
{
	static bench_hist h;

	hist_reset(&h);
	for (auto _ : st) {
		bench_out o{};
		if (bench_blocking(g_workers, mode, samples, 50000, &h, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	set_latency(st, h);
	st.counters["workers"] = g_workers;
}

void run_timers(benchmark::State &st, uint64_t n)
{
	bench_timers t{};

	for (auto _ : st) {
		bench_out o{};
		if (wheel_timers(n, &t, &o) != 0 ||
		    service_timers(n, g_smoke ? 200 : 5000, g_smoke ? 0.05 : 1.0, &t, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	st.counters["insert_ns"] = t.insert_ns;
	st.counters["cancel_ns"] = t.cancel_ns;
	st.counters["expiry_ns"] = t.expiry_ns;
	st.counters["bytes_per_timer"] = t.bytes_per_timer;
	st.counters["svc_insert_ns"] = t.svc_insert_ns;
	st.counters["svc_cancel_ns"] = t.svc_cancel_ns;
	st.counters["svc_bytes_per_timer"] = t.svc_bytes_per_timer;
	st.counters["lateness_p99_ticks"] = t.lateness_p99_ticks;
	st.counters["svc_idle_cpu_pct"] = t.svc_idle_cpu_pct;
}

void run_breaker(benchmark::State &st, uint64_t ms)
{
	double done_ns = 0;

	for (auto _ : st) {
		bench_out o{};
		if (breaker_poll(ms, &done_ns, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	st.counters["done_ns"] = done_ns;
}

using fib_body = int (*)(unsigned, unsigned, bench_out *);

// ns_per_task on all workers; speedup = the same run on 1 worker / on all workers.
void run_fib(benchmark::State &st, fib_body body, unsigned n)
{
	double ns = 0, ns1 = 0;
	uint64_t tasks = 0, tasks1 = 0;

	for (auto _ : st) {
		bench_out o{}, o1{};
		if (body(g_workers, n, &o) != 0 || body(1, n, &o1) != 0) {
			st.SkipWithError(o.err[0] ? o.err : o1.err);
			return;
		}
		st.SetIterationTime(o.seconds);
		ns += o.seconds * 1e9;
		tasks += o.tasks;
		ns1 += o1.seconds * 1e9;
		tasks1 += o1.tasks;
	}
	st.counters["ns_per_task"] = ns / (double)tasks;
	st.counters["speedup"] = (ns1 / (double)tasks1) / (ns / (double)tasks);
	st.counters["workers"] = g_workers;
}

void run_skynet(benchmark::State &st, uint64_t leaves)
{
	double rss = 0;

	if (run_counted(st, [&](bench_out *o) { return strix_skynet(g_workers, leaves, &rss, o); }))
		st.counters["rss_kib"] = rss;
}

using fanout_body = int (*)(unsigned, uint64_t, unsigned, uint64_t, bench_fanout *, bench_out *);

void run_fanout(benchmark::State &st, fanout_body body, uint64_t n, uint64_t work_ns)
{
	bench_fanout r{};

	if (run_counted(st, [&](bench_out *o) { return body(g_workers, n, 64, work_ns, &r, o); })) {
		st.counters["max_inflight"] = r.max_inflight;
		st.counters["rss_kib"] = r.rss_kib;
	}
}

void run_retry_storm(benchmark::State &st, uint64_t n)
{
	static bench_hist idle, busy;
	bench_retry_storm r{};

	hist_reset(&idle);
	hist_reset(&busy);
	for (auto _ : st) {
		bench_out o{};
		if (strix_retry_storm(g_workers, n, 5, &idle, &busy, &r, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	set_latency(st, busy);
	st.counters["idle_p50_ns"] = (double)hist_quantile(&idle, 0.50);
	st.counters["idle_p99_ns"] = (double)hist_quantile(&idle, 0.99);
	st.counters["lost"] = (double)r.lost;
	st.counters["duplicated"] = (double)r.duplicated;
	st.counters["handoffs"] = (double)r.handoffs;
	st.counters["workers"] = g_workers;
}

// B9: ns_per_task per call (of one thread), allocs_per_call.
template <typename F>
void run_policy(benchmark::State &st, F body)
{
	double allocs = 0;

	if (run_counted(st, [&](bench_out *o) { return body(&allocs, o); }))
		st.counters["allocs_per_call"] = allocs;
}

template <typename F>
void add(const std::string &name, int repetitions, F f)
{
	auto *b = benchmark::RegisterBenchmark(name.c_str(), f);
	b->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
	if (repetitions > 1)
		b->Repetitions(repetitions)->ReportAggregatesOnly(true);
}

// ---- Steady state (harness.c): one pool for the whole run, for every pool behind
// bench_pool_api. spawn_many_reused / spawn_remote_reused: 30 bursts of the spawn_many /
// spawn_remote burst (smoke: 3), ns_per_task the median of the last 10; sustained: 50 tasks every
// 1 ms from an outside thread for 5 s (smoke: 0.2 s), submit -> start latency and resident memory
// sampled every 100 ms. ------------------------------------------------------------------------
struct steady_pool {
	const char *impl;
	const bench_pool_api *api;
};
// Another pool behind bench_pool_api gets these rows by a line here.
const steady_pool steady_pools[] = {
	{ "strix", &bench_strix_api },
	{ "thpool", &bench_thpool_api },
	{ "asio", &bench_asio_api },
};

void run_reused(benchmark::State &st, const bench_pool_api *api, bool remote, uint64_t n,
    unsigned bursts)
{
	double ns = 0;

	for (auto _ : st) {
		bench_out o{};
		if (harness_spawn_reused(api, g_workers, remote, n, bursts, 10, &ns, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	st.counters["ns_per_task"] = ns;
	st.counters["bursts"] = bursts;
	st.counters["workers"] = g_workers;
}

void run_sustained(benchmark::State &st, const bench_pool_api *api, uint64_t ticks)
{
	static bench_hist h;
	bench_sustained r{};

	hist_reset(&h);
	for (auto _ : st) {
		bench_out o{};
		if (harness_sustained(api, g_workers, 50, 1000000, ticks, 100, &h, &r, &o) != 0) {
			st.SkipWithError(o.err);
			return;
		}
		st.SetIterationTime(o.seconds);
	}
	set_latency(st, h);
	st.counters["rss_start_kib"] = r.rss_start_kib;
	st.counters["rss_end_kib"] = r.rss_end_kib;
	st.counters["rss_max_kib"] = r.rss_max_kib;
	st.counters["tasks"] = (double)h.count;
	st.counters["workers"] = g_workers;
}

// Latency: registered with the other latency rows, before any peer's threads are around.
void register_steady_latency()
{
	const uint64_t ticks = size(5000, 200);

	for (const auto &p : steady_pools)
		add(std::string("sustained/") + p.impl, 1,
		    [p, ticks](benchmark::State &st) { run_sustained(st, p.api, ticks); });
}

void register_steady_spawn()
{
	const uint64_t n = size(1000000, 2000);
	const unsigned bursts = g_smoke ? 3 : 30;

	for (const auto &p : steady_pools)
		add(std::string("spawn_many_reused/") + p.impl, 1,
		    [p, n, bursts](benchmark::State &st) { run_reused(st, p.api, false, n, bursts); });
	for (const auto &p : steady_pools)
		add(std::string("spawn_remote_reused/") + p.impl, 1,
		    [p, n, bursts](benchmark::State &st) { run_reused(st, p.api, true, n, bursts); });
}
// ---- end of the steady-state rows --------------------------------------------------------------

void register_all()
{
	// Latency first, while no peer's threads (OpenMP and TBB spin after their work) are around.
	const uint64_t samples = size(20000, 100);
	add("wake/futex", 1, [samples](benchmark::State &st) { run_wake(st, futex_wake, samples); });
	add("blocking/strix/none", 1, [samples](benchmark::State &st) {
		run_blocking(st, BENCH_BLOCKING_NONE, samples); });
	add("blocking/strix/workers", 1, [samples](benchmark::State &st) {
		run_blocking(st, BENCH_BLOCKING_WORKERS, samples); });
	add("blocking/strix/side", 1, [samples](benchmark::State &st) {
		run_blocking(st, BENCH_BLOCKING_SIDE, samples); });
	add("wake/strix", 1, [samples](benchmark::State &st) {
		run_wake(st, [](unsigned w, uint64_t s, uint64_t g, double i, bench_hist *h,
				 bench_out *o) {
			return harness_wake(&bench_strix_api, w, s, g, i, h, o); }, samples);
	});
	add("wake/thpool", 1, [samples](benchmark::State &st) {
		run_wake(st, [](unsigned w, uint64_t s, uint64_t g, double i, bench_hist *h,
				 bench_out *o) {
			return harness_wake(&bench_thpool_api, w, s, g, i, h, o); }, samples);
	});
	add("wake/asio", 1, [samples](benchmark::State &st) {
		run_wake(st, [](unsigned w, uint64_t s, uint64_t g, double i, bench_hist *h,
				 bench_out *o) {
			return harness_wake(&bench_asio_api, w, s, g, i, h, o); }, samples);
	});

	const uint64_t rounds = size(100000, 300);
	add("ping_pong/strix", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, [](unsigned w, uint64_t r, bench_hist *h, bench_out *o) {
			return harness_ping_pong(&bench_strix_api, w, r, h, o); }, rounds);
	});
	add("ping_pong/thpool", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, [](unsigned w, uint64_t r, bench_hist *h, bench_out *o) {
			return harness_ping_pong(&bench_thpool_api, w, r, h, o); }, rounds);
	});
	add("ping_pong/asio", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, [](unsigned w, uint64_t r, bench_hist *h, bench_out *o) {
			return harness_ping_pong(&bench_asio_api, w, r, h, o); }, rounds);
	});

	// Strands: 10^6 tasks over 64 strands from inside a worker; two strands as actors.
	const uint64_t strand_tasks = size(1000000, 2000);
	add("strand_spawn/strix", reps(5), [strand_tasks](benchmark::State &st) {
		run_spawn(st, [](unsigned w, uint64_t k, bench_out *o) {
			return strix_strand_spawn(w, k, 64, o); }, strand_tasks);
	});
	add("strand_spawn/asio", reps(5), [strand_tasks](benchmark::State &st) {
		run_spawn(st, [](unsigned w, uint64_t k, bench_out *o) {
			return asio_strand_spawn(w, k, 64, o); }, strand_tasks);
	});
	add("strand_pingpong/strix", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, strix_strand_pingpong, rounds);
	});
	add("strand_pingpong/asio", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, asio_strand_pingpong, rounds);
	});

	// io_pingpong: one byte back and forth over a TCP connection on 127.0.0.1, each end's handler
	// on the pool (strix: a readiness wait's callback, only when strix-bench is built with the I/O
	// module; uv: a loop per end); futex: the floor, two threads and a futex word, no socket.
	add("io_pingpong/futex", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, futex_io_pingpong, rounds);
	});
#ifdef STRIX_HAVE_IO
	add("io_pingpong/strix", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, strix_io_pingpong, rounds);
	});
#endif
	add("io_pingpong/uv", reps(3), [rounds](benchmark::State &st) {
		run_latency(st, uv_io_pingpong, rounds);
	});

	register_steady_latency(); // sustained/<impl>

	const uint64_t timers = size(1000000, 10000);
	add("timers/strix", reps(5), [timers](benchmark::State &st) { run_timers(st, timers); });
	const uint64_t poll_ms = size(200, 5);
	add("breaker/strix", reps(3), [poll_ms](benchmark::State &st) { run_breaker(st, poll_ms); });

	// Promises: chain (with and without a chain breaker), skynet, fib against omp and tbb.
	const uint64_t hops = size(1000000, 2000);
	add("chain/strix", reps(5), [hops](benchmark::State &st) {
		run_spawn(st, [](unsigned w, uint64_t k, bench_out *o) {
			return strix_chain(w, k, false, o); }, hops);
	});
	add("chain/strix/breaker", reps(5), [hops](benchmark::State &st) {
		run_spawn(st, [](unsigned w, uint64_t k, bench_out *o) {
			return strix_chain(w, k, true, o); }, hops);
	});
	add("chain/asio", reps(5), [hops](benchmark::State &st) { run_spawn(st, asio_chain, hops); });
	// yield: 200 tasks from outside, each queued again behind the queued work after every run.
	const uint64_t yields = size(200000, 2000);
	add("yield/strix", reps(5), [yields](benchmark::State &st) { run_spawn(st, strix_yield, yields); });
	add("yield/asio", reps(5), [yields](benchmark::State &st) { run_spawn(st, asio_yield, yields); });
	const uint64_t leaves = size(1000000, 1000);
	add("skynet/strix", reps(3), [leaves](benchmark::State &st) { run_skynet(st, leaves); });
	struct fib_impl {
		const char *impl;
		fib_body body;
	};
	static const fib_impl fibs[] = {
		{ "strix", strix_fib }, { "omp", omp_fib }, { "tbb", tbb_fib },
	};
	for (unsigned fn : { 25u, 30u }) {
		unsigned n = g_smoke ? fn - 10 : fn;
		for (const auto &f : fibs)
			add(std::string("fib/") + f.impl + "/" + std::to_string(fn), reps(3),
			    [f, n](benchmark::State &st) { run_fib(st, f.body, n); });
	}
	// B7 fanout_limit: limit 64, empty calls at 10^5 and 10^7, 10 us calls at 10^5.
	struct fanout_impl {
		const char *impl;
		fanout_body body;
	};
	static const fanout_impl fanouts[] = { { "strix", strix_fanout }, { "thpool", thpool_fanout } };
	struct fanout_case {
		const char *name;
		uint64_t n, work_ns;
		int reps;
	};
	const fanout_case cases[] = {
		{ "empty/1e5", size(100000, 1000), 0, reps(3) },
		{ "empty/1e7", size(10000000, 2000), 0, 1 },
		{ "work10us/1e5", size(100000, 200), 10000, reps(3) },
	};
	for (const auto &c : cases)
		for (const auto &f : fanouts)
			add(std::string("fanout_limit/") + f.impl + "/" + c.name, c.reps,
			    [f, c](benchmark::State &st) { run_fanout(st, f.body, c.n, c.work_ns); });

	// B9 circuit (1 and 2 threads, strix and the mutex peer) and the 5-policy pipeline.
	const uint64_t calls = size(10000000, 5000);
	for (unsigned t : { 1u, 2u }) {
		add("circuit/strix/" + std::to_string(t), reps(5), [t, calls](benchmark::State &st) {
			run_policy(st, [&](double *a, bench_out *o) {
				return strix_circuit(t, calls, a, o); });
		});
		add("circuit/mutex/" + std::to_string(t), reps(5), [t, calls](benchmark::State &st) {
			run_policy(st, [&](double *a, bench_out *o) {
				return mutex_circuit_bench(t, calls, a, o); });
		});
	}
	// ratelimit/<threads>: one shared limiter that refuses nothing, 1 and 2 threads.
	for (unsigned t : { 1u, 2u }) {
		add("ratelimit/strix/" + std::to_string(t), reps(5), [t, calls](benchmark::State &st) {
			double refused = 0;

			if (run_counted(st, [&](bench_out *o) {
				    return strix_ratelimit(t, calls, &refused, o); }))
				st.counters["false_refusals"] = refused;
		});
	}
	add("pipeline/strix", reps(5), [calls](benchmark::State &st) {
		run_policy(st, [&](double *a, bench_out *o) { return strix_pipeline(calls, a, o); });
	});
	// pipeline6: issue 23's six: rate limit, total timeout, hedge, retry, circuit, adaptive
	// limit; pipeline7: the same with fault injection (off) innermost; policy/<layer>: each
	// policy alone around an empty call, its cost when it admits (idle: no hedge fires).
	add("pipeline6/strix", reps(5), [calls](benchmark::State &st) {
		run_policy(st, [&](double *a, bench_out *o) {
			return strix_pipeline_of("rthyca", calls, a, o); });
	});
	add("pipeline7/strix", reps(5), [calls](benchmark::State &st) {
		run_policy(st, [&](double *a, bench_out *o) {
			return strix_pipeline_of("rthycax", calls, a, o); });
	});
	{
		struct policy_row {
			const char *name, *layers;
		};
		static const policy_row rows[] = { { "none", "" }, { "ratelimit", "r" },
			{ "timeout", "t" }, { "retry", "y" }, { "circuit", "c" }, { "bulkhead", "b" },
			{ "adaptive", "a" }, { "chaos_off", "x" }, { "hedge", "h" },
			{ "timeout_hedge", "th" } };
		for (const auto &r : rows)
			add(std::string("policy/strix/") + r.name, reps(3),
			    [r, calls](benchmark::State &st) {
				run_policy(st, [&](double *a, bench_out *o) {
					return strix_pipeline_of(r.layers, calls, a, o); });
			});
	}

	// B14 adaptive (strix's adaptive limit, a fixed bulkhead) and hedge (hedged, plain calls).
	for (bool adaptive : { true, false })
		add(std::string("adaptive/") + (adaptive ? "strix" : "fixed"), 1,
		    [adaptive](benchmark::State &st) {
			static bench_hist h;
			bench_adaptive_out r{};

			for (auto _ : st) {
				bench_out o{};
				if (bench_adaptive(adaptive, g_smoke, &h, &r, &o) != 0) {
					st.SkipWithError(o.err);
					return;
				}
				st.SetIterationTime(o.seconds);
			}
			set_latency(st, h);
			st.counters["limit_before"] = r.limit_before;
			st.counters["limit_after"] = r.limit_after;
			st.counters["converge_ns"] = r.converge_ns;
			st.counters["rejected_pct"] = r.rejected_pct;
			st.counters["calls_per_s"] = r.calls_per_s;
		});
	for (bool hedged : { true, false })
		add(std::string("hedge/") + (hedged ? "strix" : "plain"), 1,
		    [hedged](benchmark::State &st) {
			static bench_hist h;
			double extra = 0;

			for (auto _ : st) {
				bench_out o{};
				if (bench_hedge(hedged, g_smoke, &h, &extra, &o) != 0) {
					st.SkipWithError(o.err);
					return;
				}
				st.SetIterationTime(o.seconds);
			}
			set_latency(st, h);
			st.counters["extra_load_pct"] = extra * 100.0;
		});

	// B13 registry: keyed lookups over 10^3, 10^5, 10^6 keys, 1 and 2 threads, and churn (half
	// the lookups make a new key, evicting as many), strix against a mutex-protected map.
	const uint64_t lookups = size(2000000, 2000);
	struct reg_case {
		const char *name;
		uint64_t keys;
		bool churn;
	};
	const reg_case reg_cases[] = {
		{ "1e3", 1000, false }, { "1e5", size(100000, 1000), false },
		{ "1e6", size(1000000, 1000), false }, { "churn1e5", size(100000, 1000), true },
	};
	for (const auto &c : reg_cases)
		for (unsigned t : { 1u, 2u })
			for (bool strix : { true, false })
				add(std::string("registry/") + (strix ? "strix/" : "mutex/") + c.name +
				    "/" + std::to_string(t), reps(3), [c, t, strix, lookups](
				    benchmark::State &st) {
					double bpk = 0;

					if (run_counted(st, [&](bench_out *o) {
						return registry_lookup(strix, t, c.keys, c.churn,
						    lookups, &bpk, o); }))
						st.counters["bytes_per_key"] = bpk;
				});

	// Run groups: signal -> sx_group_run returning.
	const uint64_t stops = size(300, 5);
	add("group_signal/strix", 1, [stops](benchmark::State &st) {
		run_latency(st, [](unsigned, uint64_t s, bench_hist *h, bench_out *o) {
			return strix_group_signal(s, h, o); }, stops);
	});

	const uint64_t storm = size(100000, 500);
	add("retry_storm/strix", 1, [storm](benchmark::State &st) { run_retry_storm(st, storm); });

	const uint64_t n = size(1000000, 2000);
	struct spawn_impl {
		const char *impl;
		spawn_body many, remote;
	};
	static const spawn_impl spawns[] = {
		{ "strix",
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_many(&bench_strix_api, w, k, o); },
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_remote(&bench_strix_api, w, k, o); } },
		{ "thpool",
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_many(&bench_thpool_api, w, k, o); },
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_remote(&bench_thpool_api, w, k, o); } },
		{ "uv", uv_spawn_many, uv_spawn_remote },
		{ "omp", omp_spawn_many, nullptr },
		{ "tbb", tbb_spawn_many, tbb_spawn_remote },
		{ "asio",
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_many(&bench_asio_api, w, k, o); },
		  [](unsigned w, uint64_t k, bench_out *o) {
			  return harness_spawn_remote(&bench_asio_api, w, k, o); } },
	};

	for (const auto &s : spawns)
		add(std::string("spawn_many/") + s.impl, reps(5),
		    [s, n](benchmark::State &st) { run_spawn(st, s.many, n); });
	for (const auto &s : spawns)
		if (s.remote != nullptr)
			add(std::string("spawn_remote/") + s.impl, reps(5),
			    [s, n](benchmark::State &st) { run_spawn(st, s.remote, n); });

	register_steady_spawn(); // spawn_many_reused/<impl>, spawn_remote_reused/<impl>
	// spawn_many on a pool resized every 10 ms while it runs (beside spawn_many/strix).
	add("spawn_many_resized/strix", reps(5), [n](benchmark::State &st) {
		run_spawn(st, [](unsigned w, uint64_t k, bench_out *o) {
			return harness_spawn_many(&bench_strix_resized_api, w, k, o); }, n);
	});
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<char *> args;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	g_workers = ncpu > 0 ? (unsigned)ncpu : 1;
	for (int i = 0; i < argc; i++) {
		if (std::strcmp(argv[i], "--smoke") == 0)
			g_smoke = true;
		else if (std::strncmp(argv[i], "--workers=", 10) == 0)
			g_workers = (unsigned)std::atoi(argv[i] + 10);
		else
			args.push_back(argv[i]);
	}
	// libuv sizes its pool from the environment when it first starts its threads.
	setenv("UV_THREADPOOL_SIZE", std::to_string(g_workers).c_str(), 1);
	int n = (int)args.size();
	benchmark::Initialize(&n, args.data());
	register_all();
	benchmark::AddCustomContext("workers", std::to_string(g_workers));
	benchmark::AddCustomContext("smoke", g_smoke ? "yes" : "no");
	// Whether strix's rows on its I/O module are in this build (the report reads it).
#ifdef STRIX_HAVE_IO
	benchmark::AddCustomContext("strix_io", "yes");
#else
	benchmark::AddCustomContext("strix_io", "no");
#endif
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
