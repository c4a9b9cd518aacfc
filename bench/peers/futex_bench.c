/*
 * The floor for B6: the same outside thread and timing as harness_wake, but the "pool" is one
 * bare thread blocked in FUTEX_WAIT and woken with FUTEX_WAKE. No executor can start a sleeping
 * thread faster than this.
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../workloads.h"

struct floor {
	_Atomic uint32_t word;     /* bumped once per sample; UINT32_MAX: exit */
	_Atomic uint64_t t_submit;
	_Atomic uint64_t ran;
	bench_hist *h;
};

static void *sleeper(void *arg)
{
	struct floor *f = arg;
	uint32_t seen = 0;

	for (;;) {
		uint32_t v = atomic_load_explicit(&f->word, memory_order_acquire);

		if (v == seen) {
			syscall(SYS_futex, &f->word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
			continue;
		}
		if (v == UINT32_MAX)
			return NULL;
		seen = v;
		hist_record(f->h, bench_now_ns() - atomic_load(&f->t_submit));
		atomic_fetch_add_explicit(&f->ran, 1, memory_order_release);
	}
}

int futex_wake(unsigned workers, uint64_t samples, uint64_t gap_ns, double idle_s,
    bench_hist *h, bench_out *o)
{
	struct floor f = { .h = h };
	pthread_t th;
	uint64_t t0;

	(void)workers;
	if (pthread_create(&th, NULL, sleeper, &f) != 0) {
		snprintf(o->err, sizeof(o->err), "futex: no thread");
		return -1;
	}
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < samples; i++) {
		bench_sleep_ns(gap_ns);
		while (atomic_load_explicit(&f.ran, memory_order_acquire) != i)
			bench_sleep_ns(1000);
		atomic_store(&f.t_submit, bench_now_ns());
		atomic_fetch_add_explicit(&f.word, 1, memory_order_release);
		syscall(SYS_futex, &f.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
	while (atomic_load(&f.ran) != samples)
		bench_sleep_ns(1000);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = atomic_load(&f.ran);
	o->idle_cpu_pct = bench_idle_cpu_pct(idle_s);
	atomic_store(&f.word, UINT32_MAX);
	syscall(SYS_futex, &f.word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	pthread_join(th, NULL);
	return 0;
}
