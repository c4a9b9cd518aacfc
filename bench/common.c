#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* ---- io_pingpong ----------------------------------------------------------------------------- */

void bench_relay_init(bench_relay *r, uint64_t rounds, bench_hist *h)
{
	uint64_t warm = rounds / 100;

	memset(r, 0, sizeof(*r));
	r->h = h;
	r->total = 2 * (rounds + warm);
	r->warmup = 2 * warm;
	atomic_init(&r->t_send, 0);
}

uint64_t bench_relay_send(bench_relay *r)
{
	uint64_t k = r->handoffs + 1;

	atomic_store_explicit(&r->t_send, bench_now_ns(), memory_order_release);
	return k;
}

uint64_t bench_relay_received(bench_relay *r, int me, unsigned char b, uint64_t t)
{
	uint64_t sent = atomic_load_explicit(&r->t_send, memory_order_acquire);
	uint64_t k = ++r->handoffs;

	if (k > r->warmup) {
		hist_record(r->h, t - sent);
		r->recorded++;
	}
	if (b != (unsigned char)k || (int)(k & 1) != me)
		r->bad++;
	return k;
}

int bench_relay_check(const bench_relay *r, const char *impl, bench_out *o)
{
	o->tasks = r->recorded;
	if (r->bad == 0 && r->handoffs == r->total && r->recorded == r->total - r->warmup)
		return 0;
	snprintf(o->err, sizeof(o->err), "%s io_pingpong: %llu of %llu hand-offs arrived, %llu out "
	    "of order or at the wrong end", impl, (unsigned long long)r->handoffs,
	    (unsigned long long)r->total, (unsigned long long)r->bad);
	return -1;
}

static int tcp_end_opts(int fd)
{
	int one = 1, fl = fcntl(fd, F_GETFL);

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 || fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int bench_tcp_pair(int fd[2], bench_out *o)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l, c = -1, s = -1, e;

	/* Blocking until both ends exist: the connect completes from the listen backlog. */
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) != 0)
		goto fail;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto fail;
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || tcp_end_opts(c) != 0 || tcp_end_opts(s) != 0)
		goto fail;
	close(l);
	fd[0] = c;
	fd[1] = s;
	return 0;
fail:
	e = errno;
	snprintf(o->err, sizeof(o->err), "a TCP connection over 127.0.0.1: %s", strerror(e));
	if (s >= 0)
		close(s);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	return -1;
}
