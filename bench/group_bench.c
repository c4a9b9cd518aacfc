/*
 * group_signal: how long a process takes to stop on a signal. Each sample is one run group of two
 * actors, strix's signal actor (SIGUSR1) and a blocking actor that ends when interrupted (as a
 * listener would). A sender thread waits until the blocking actor runs and the run's thread has
 * settled, reads the clock and sends SIGUSR1 to the process with kill(); the sample ends when
 * sx_group_run has returned, that is after the handler posted the signal to strix's notifier, the
 * signal actor woke and returned, every interrupt ran and both actor threads were joined. Checks
 * that every run ended with SX_ESIGNAL from SIGUSR1.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include <strix.h>

#include "workloads.h"

struct blocker {
	sx_breaker *wake;
	int running;
};

static int block_execute(void *arg)
{
	struct blocker *b = arg;

	__atomic_store_n(&b->running, 1, __ATOMIC_RELEASE);
	sx_breaker_wait(b->wake, -1);
	return -ECANCELED;
}

static void block_interrupt(int err, void *arg)
{
	(void)err;
	sx_breaker_trip(((struct blocker *)arg)->wake);
}

struct sender {
	struct blocker *b;
	uint64_t sent_ns;
};

static void *send_usr1(void *arg)
{
	struct sender *s = arg;

	while (!__atomic_load_n(&s->b->running, __ATOMIC_ACQUIRE))
		sched_yield();
	bench_sleep_ns(1000000); /* let run's thread go to sleep: measure a stop from idle */
	s->sent_ns = bench_now_ns();
	kill(getpid(), SIGUSR1);
	return NULL;
}

int strix_group_signal(uint64_t samples, bench_hist *h, bench_out *o)
{
	static const int usr1[] = { SIGUSR1 };

	for (uint64_t i = 0; i < samples; i++) {
		struct blocker b = { 0 };
		struct sender s = { &b, 0 };
		sx_group *g = NULL;
		pthread_t th;
		int rc, signo = 0;
		uint64_t end;

		if (sx_group_create(NULL, &g) != 0 || sx_breaker_create(&b.wake) != 0 ||
		    sx_group_add(g, block_execute, block_interrupt, NULL, &b) < 0 ||
		    sx_group_add_signals(g, usr1, 1) < 0 ||
		    pthread_create(&th, NULL, send_usr1, &s) != 0) {
			snprintf(o->err, sizeof(o->err), "group_signal: setup failed");
			return -1;
		}
		rc = sx_group_run(g);
		end = bench_now_ns();
		pthread_join(th, NULL);
		if (rc != SX_ESIGNAL || sx_group_cause(g, NULL, &signo) != 1 || signo != SIGUSR1) {
			snprintf(o->err, sizeof(o->err), "group_signal: run returned %d (signal %d)",
			    rc, signo);
			return -1;
		}
		hist_record(h, end - s.sent_ns);
		o->seconds += (double)(end - s.sent_ns) / 1e9;
		o->tasks++;
		sx_group_destroy(g);
		sx_breaker_release(b.wake);
	}
	return 0;
}
