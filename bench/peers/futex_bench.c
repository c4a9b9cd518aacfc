/*
 * The floors, on bare futexes: no executor can start a sleeping thread faster than these.
 * B6 wake: the same outside thread and timing as harness_wake, but the "pool" is one bare thread
 * blocked in FUTEX_WAIT and woken with FUTEX_WAKE.
 * io_pingpong: two threads hand the one-byte token back and forth through a futex word, each
 * asleep in FUTEX_WAIT until the other stores the next byte and wakes it: the kernel's wake-up
 * with no socket and no runtime, what every implementation's hand-off has to pay at least.
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../workloads.h"

/* Sleeps until *w holds something other than seen; returns that value. */
static uint32_t await_change(_Atomic uint32_t *w, uint32_t seen)
{
	uint32_t v;

	while ((v = atomic_load_explicit(w, memory_order_acquire)) == seen)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
	return v;
}

static void wake_all(_Atomic uint32_t *w, int n)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

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
		seen = await_change(&f->word, seen);
		if (seen == UINT32_MAX)
			return NULL;
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
		wake_all(&f.word, 1);
	}
	while (atomic_load(&f.ran) != samples)
		bench_sleep_ns(1000);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	o->tasks = atomic_load(&f.ran);
	o->idle_cpu_pct = bench_idle_cpu_pct(idle_s);
	atomic_store(&f.word, UINT32_MAX);
	wake_all(&f.word, INT_MAX);
	pthread_join(th, NULL);
	return 0;
}

/* ---- io_pingpong: the token is the word's value, the byte of the hand-off; consecutive bytes
 * differ, so each end sleeps until the word changes from the byte it last saw or sent. --------- */

struct token {
	_Atomic uint32_t word;
	bench_relay relay;
};

struct token_end {
	struct token *t;
	int me;
};

static void *token_end(void *arg)
{
	struct token_end *e = arg;
	struct token *t = e->t;
	uint32_t seen = 0;
	uint64_t k;

	if (e->me == 0) {
		k = bench_relay_send(&t->relay);
		seen = (unsigned char)k;
		atomic_store_explicit(&t->word, seen, memory_order_release);
		wake_all(&t->word, 1);
	}
	for (;;) {
		seen = await_change(&t->word, seen);
		k = bench_relay_received(&t->relay, e->me, (unsigned char)seen, bench_now_ns());
		if (k == t->relay.total)
			return NULL;
		k = bench_relay_send(&t->relay);
		seen = (unsigned char)k;
		atomic_store_explicit(&t->word, seen, memory_order_release);
		wake_all(&t->word, 1);
		if (k == t->relay.total)
			return NULL;
	}
}

/* End 1 on a thread of its own, end 0 on the calling thread. */
int futex_io_pingpong(unsigned workers, uint64_t rounds, bench_hist *h, bench_out *o)
{
	struct token t;
	struct token_end ends[2] = { { &t, 0 }, { &t, 1 } };
	pthread_t th;
	uint64_t t0;

	(void)workers;
	atomic_init(&t.word, 0);
	bench_relay_init(&t.relay, rounds, h);
	if (pthread_create(&th, NULL, token_end, &ends[1]) != 0) {
		snprintf(o->err, sizeof(o->err), "futex: no thread");
		return -1;
	}
	t0 = bench_now_ns();
	token_end(&ends[0]);
	pthread_join(th, NULL);
	o->seconds = (double)(bench_now_ns() - t0) * 1e-9;
	return bench_relay_check(&t.relay, "futex", o);
}
