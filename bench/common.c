#include <time.h>

#include "workloads.h"

double bench_process_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0)
		;
}

double bench_idle_cpu_pct(double idle_s)
{
	uint64_t t0 = bench_now_ns();
	double c0 = bench_process_cpu_s(), c1;

	bench_sleep_ns((uint64_t)(idle_s * 1e9));
	c1 = bench_process_cpu_s();
	return 100.0 * (c1 - c0) / ((double)(bench_now_ns() - t0) * 1e-9);
}
