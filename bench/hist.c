#include <string.h>
#include <time.h>

#include "hist.h"

static unsigned bucket(uint64_t v)
{
	unsigned p;

	if (v < HIST_SUB)
		return (unsigned)v;
	p = 63u - (unsigned)__builtin_clzll(v); /* v in [2^p, 2^(p+1)), p >= 6 */
	if (p - 5 >= HIST_POW)
		return HIST_POW * HIST_SUB - 1;
	return (p - 5) * HIST_SUB + (unsigned)((v >> (p - 6)) - HIST_SUB);
}

static uint64_t bucket_top(unsigned i)
{
	unsigned p = i / HIST_SUB, s = i % HIST_SUB;

	if (p == 0)
		return s;
	p += 5;
	return ((uint64_t)(HIST_SUB + s + 1) << (p - 6)) - 1;
}

void hist_reset(bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_record(bench_hist *h, uint64_t v)
{
	h->b[bucket(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

uint64_t hist_quantile(const bench_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	for (unsigned i = 0; i < HIST_POW * HIST_SUB; i++) {
		seen += h->b[i];
		if (seen > rank) {
			uint64_t top = bucket_top(i);

			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
