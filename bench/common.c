#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void bench_reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f != NULL) {
		fputs("5", f);
		fclose(f);
	}
}

static double status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	size_t len = strlen(field);
	char line[256];
	double kib = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, len) == 0)
			kib = strtod(line + len, NULL);
	fclose(f);
	return kib;
}

double bench_peak_rss_kib(void)
{
	return status_kib("VmHWM:");
}

double bench_rss_kib(void)
{
	return status_kib("VmRSS:");
}
