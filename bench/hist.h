/*
 * A log-bucketed latency histogram (HDR style): every sample is recorded, percentiles are read
 * from the buckets. Buckets: values below 64 ns exactly; above, 64 sub-buckets per power of two
 * (relative error < 1.6%). Single-threaded: each recording thread owns its histogram.
 */
#ifndef STRIX_BENCH_HIST_H
#define STRIX_BENCH_HIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIST_SUB 64
#define HIST_POW 40
typedef struct bench_hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[HIST_POW * HIST_SUB];
} bench_hist;

void hist_reset(bench_hist *h);
void hist_record(bench_hist *h, uint64_t v);
/* The value at quantile q in [0, 1] (upper edge of its bucket; exact below 64). */
uint64_t hist_quantile(const bench_hist *h, double q);

uint64_t bench_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
