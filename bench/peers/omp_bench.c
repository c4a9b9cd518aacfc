/*
 * GCC OpenMP tasks (libgomp): one thread of a parallel region creates every task inside
 * `#pragma omp single`, the team runs them; the region's closing barrier waits for all of them.
 * OpenMP has no way to submit from a thread outside the team, so there is no B1r for omp.
 */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>

#include "../workloads.h"

static atomic_uint_fast64_t countdown;

int omp_spawn_many(unsigned workers, uint64_t n, bench_out *o)
{
	uint64_t t0;

	atomic_store(&countdown, n);
	t0 = bench_now_ns();
#pragma omp parallel num_threads((int)workers)
	{
#pragma omp single
		{
			for (uint64_t i = 0; i < n; i++) {
#pragma omp task
				atomic_fetch_sub_explicit(&countdown, 1, memory_order_acq_rel);
			}
		}
	}
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = n - atomic_load(&countdown);
	if (o->tasks != n) {
		snprintf(o->err, sizeof(o->err), "omp: %llu of %llu tasks ran",
		    (unsigned long long)o->tasks, (unsigned long long)n);
		return -1;
	}
	return 0;
}

/* B3: fib with both calls as tasks and a taskwait, as the OpenMP examples write it. */
static uint64_t fib(unsigned n)
{
	uint64_t x, y;

	if (n < 2)
		return n;
#pragma omp task shared(x)
	x = fib(n - 1);
#pragma omp task shared(y)
	y = fib(n - 2);
#pragma omp taskwait
	return x + y;
}

int omp_fib(unsigned workers, unsigned n, bench_out *o)
{
	uint64_t t0, r = 0;

	t0 = bench_now_ns();
#pragma omp parallel num_threads((int)workers)
	{
#pragma omp single
		r = fib(n);
	}
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	if (r != bench_fib_expected(n)) {
		snprintf(o->err, sizeof(o->err), "omp fib(%u) = %llu", n, (unsigned long long)r);
		return -1;
	}
	o->tasks = bench_fib_calls(n);
	return 0;
}
