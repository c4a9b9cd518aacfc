// oneTBB: a task_group inside a task_arena of the same worker count, as TBB's documentation shows.
// B1: one task of the group spawns n tasks into the group, the caller waits on the group.
// B1r: an outside thread enqueues n fire-and-forget tasks into the arena (task_arena::enqueue).
#include <atomic>
#include <cstdio>
#include <semaphore.h>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "../workloads.h"

static std::atomic<uint64_t> countdown;

extern "C" int tbb_spawn_many(unsigned workers, uint64_t n, bench_out *o)
{
	tbb::task_arena arena((int)workers);
	uint64_t t0;

	arena.initialize();
	countdown.store(n);
	t0 = bench_now_ns();
	arena.execute([&] {
		tbb::task_group tg;
		tg.run([&] {
			for (uint64_t i = 0; i < n; i++)
				tg.run([] { countdown.fetch_sub(1, std::memory_order_acq_rel); });
		});
		tg.wait();
	});
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - countdown.load();
	if (o->tasks != n) {
		std::snprintf(o->err, sizeof(o->err), "tbb: %llu of %llu tasks ran",
		    (unsigned long long)o->tasks, (unsigned long long)n);
		return -1;
	}
	return 0;
}

extern "C" int tbb_spawn_remote(unsigned workers, uint64_t n, bench_out *o)
{
	// No slot reserved for the submitting thread: it stays outside and `workers` TBB worker
	// threads run the tasks (TBB caps its workers at the CPU count - 1 unless told otherwise).
	tbb::global_control gc(tbb::global_control::max_allowed_parallelism, workers + 1);
	tbb::task_arena arena((int)workers, 0);
	sem_t done;
	uint64_t t0;

	arena.initialize();
	sem_init(&done, 0, 0);
	countdown.store(n);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		arena.enqueue([&done] {
			if (countdown.fetch_sub(1, std::memory_order_acq_rel) == 1)
				sem_post(&done);
		});
	}
	sem_wait(&done);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - countdown.load();
	sem_destroy(&done);
	if (o->tasks != n) {
		std::snprintf(o->err, sizeof(o->err), "tbb: %llu of %llu tasks ran",
		    (unsigned long long)o->tasks, (unsigned long long)n);
		return -1;
	}
	return 0;
}

// B3: fib with both calls as tasks of a task_group, as TBB's documentation writes it.
static uint64_t fib(unsigned n)
{
	if (n < 2)
		return n;
	uint64_t x, y;
	tbb::task_group g;
	g.run([&] { x = fib(n - 1); });
	g.run([&] { y = fib(n - 2); });
	g.wait();
	return x + y;
}

extern "C" int tbb_fib(unsigned workers, unsigned n, bench_out *o)
{
	tbb::global_control gc(tbb::global_control::max_allowed_parallelism, workers);
	tbb::task_arena arena((int)workers);
	uint64_t t0, r = 0;

	arena.initialize();
	t0 = bench_now_ns();
	arena.execute([&] { r = fib(n); });
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	if (r != bench_fib_expected(n)) {
		std::snprintf(o->err, sizeof(o->err), "tbb fib(%u) = %llu", n, (unsigned long long)r);
		return -1;
	}
	o->tasks = bench_fib_calls(n);
	return 0;
}
