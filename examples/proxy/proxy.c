/*
 * proxy: an HTTP/1.1 reverse proxy on strix (examples/proxy/README.md describes its command line,
 * its answers and its --stats; tools/bench_proxy.sh measures it against nginx and HAProxy).
 *
 * Event-driven on strix pools, one per shard (proxy.h): each shard's listening socket and every
 * connection it accepts or opens are registered with its pool's reactor (strix/io.h); reads and
 * writes are non-blocking and whatever has to wait is a wait that ends in a task, so no thread
 * ever blocks on a socket and the workers are the only threads that serve requests (beside them
 * run strix's timer threads and this main thread, which only waits for the end). Each request
 * goes through the fault-tolerance toolkit: per-attempt time limits, retries on another upstream
 * under a shared retry budget (sx_retry_budget), a circuit breaker (sx_circuit) and a bulkhead
 * (sx_sem) per upstream, an admission rate limit (sx_ratelimit) and one per client address
 * (sx_ratelimit_keyed). No lock is taken on the request
 * path (the reactor's lock is taken when a connection is registered or deregistered: once per
 * connection, not per request).
 *
 * The end: SIGTERM, SIGINT or --duration-s. The main thread, which blocks those signals (so do
 * the pools' threads, which inherit its mask) and waits for them with sigtimedwait, stops every
 * pool with SX_DRAIN: every wait still pending ends with -ESHUTDOWN and each connection closes
 * down its error path, so the counts are final when --stats is written. Then the idle upstream
 * connections and the listeners are closed and everything is freed.
 *
 * Exit status: 0 after a signal or --duration-s, 1 when it cannot listen, an address is bad or
 * the stats cannot be written, 2 for a bad command line (with the usage).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"

struct px_state px;

static const char usage_text[] =
	"usage: proxy --listen ADDR:PORT --upstream ADDR:PORT [--upstream ...] [options]\n"
	"  --listen ADDR:PORT            numeric IPv4 address to listen on (port 0: any)\n"
	"  --upstream ADDR:PORT          an upstream (numeric IPv4); repeat for more, at most 64\n"
	"  --workers N                   worker threads (default: online CPUs)\n"
	"  --shards N                    pools the workers are split into, each with its own\n"
	"                                listener (default: one per worker; 1: one pool)\n"
	"  --connect-timeout-ms N        one connect to an upstream (default 1000)\n"
	"  --attempt-timeout-ms N        no byte from the upstream this long ends an attempt (1000)\n"
	"  --request-timeout-ms N        the whole request, every attempt included (default 0: none)\n"
	"  --attempts N                  attempts per request, the first included (default 3)\n"
	"  --retry-on LIST               connect,reset,timeout and statuses (default\n"
	"                                connect,reset,timeout,500,502,503,504)\n"
	"  --backoff-ms N                base of an exponential backoff with full jitter (default 0)\n"
	"  --retry-slow-ms N             a response head not there after N ms: retry elsewhere, when\n"
	"                                the request may be retried (default 0: off)\n"
	"  --retry-budget-tokens N       the shared retry budget's tokens (default 100)\n"
	"  --retry-budget-per-success F  tokens a success puts back (default 0.2)\n"
	"  --circuit-consecutive N       open after N failures in a row (default 5; 0: never)\n"
	"  --circuit-failure-rate F      ... or at this failure rate over the window (default 0.5)\n"
	"  --circuit-window N            the window: the last N attempts (default 100, at most 4096)\n"
	"  --circuit-min-calls N         attempts in the window before a rate counts (default 20)\n"
	"  --circuit-slow-ms N           an attempt this slow counts as slow (default 0: off)\n"
	"  --circuit-slow-rate F         ... and the circuit opens at this slow rate (default 0.5)\n"
	"  --circuit-open-ms N           how long it stays open (default 5000)\n"
	"  --circuit-half-open N         probes while half-open (default 1, at most 127)\n"
	"  --bulkhead N                  attempts in flight per upstream (default 0: none)\n"
	"  --max-inflight N              requests in flight in all; beyond: 503 (default 0: none)\n"
	"  --rate-limit N                requests admitted per second; beyond: 429 (default 0: none)\n"
	"  --rate-burst N                requests admitted at once (default: the rate)\n"
	"  --client-rate-limit N         requests admitted per second per client address; beyond:\n"
	"                                429 (default 0: none)\n"
	"  --client-rate-burst N         requests admitted at once per client (default: the rate)\n"
	"  --client-rate-keys N          client addresses limited at once (default 65536)\n"
	"  --keepalive N                 idle connections kept per upstream (default 64)\n"
	"  --client-idle-ms N            close an idle client connection after N ms (default 60000)\n"
	"  --max-head N                  head limit for requests and responses (default 16384)\n"
	"  --stats FILE                  write the counts as JSON to FILE at exit\n"
	"  --duration-s N                exit after N s (default 0: run until SIGTERM / SIGINT)\n"
	"  --ready-file FILE             write the listening port to FILE once listening\n";

uint64_t px_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int px_slot(void)
{
	static _Thread_local int slot = -1;   /* a worker's, once found: it never changes */

	if (slot < 0) {
		for (unsigned i = 0; i < px.n_shards; i++) {
			int w = sx_pool_worker_index(px.pools[i]);

			if (w >= 0)
				return slot = (int)px.shard_base[i] + w;
		}
	}
	return slot;
}

static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("proxy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("proxy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_text, stderr);
	exit(2);
}

/* ---- the command line ------------------------------------------------------------------------ */

static unsigned long long parse_uint(const char *flag, const char *v, unsigned long long hi)
{
	unsigned long long x;
	char *end;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || x > hi)
		usage_error("%s wants a whole number in 0..%llu, not '%s'", flag, hi, v);
	return x;
}

static double parse_real(const char *flag, const char *v, double hi)
{
	double x;
	char *end;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(x >= 0.0 && x <= hi))
		usage_error("%s wants a number in 0..%g, not '%s'", flag, hi, v);
	return x;
}

/* A numeric IPv4 ADDR:PORT; false when it is not one. */
static bool parse_addr(const char *v, struct sockaddr_in *a, char *name, size_t cap)
{
	const char *colon = strrchr(v, ':');
	char host[INET_ADDRSTRLEN];
	unsigned long port;
	char *end;

	if (colon == NULL || (size_t)(colon - v) >= sizeof(host) || colon[1] == '\0')
		return false;
	memcpy(host, v, (size_t)(colon - v));
	host[colon - v] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port > 65535 || colon[1] == '-')
		return false;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return false;
	if (name != NULL)
		snprintf(name, cap, "%s:%lu", host, port);
	return true;
}

static void parse_retry_on(struct px_config *cfg, const char *v)
{
	char buf[512], *save = NULL, *tok;

	if (strlen(v) >= sizeof(buf))
		usage_error("--retry-on: list too long");
	strcpy(buf, v);
	cfg->retry_on = 0;
	memset(cfg->retry_status, 0, sizeof(cfg->retry_status));
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long s;

		if (strcmp(tok, "connect") == 0) {
			cfg->retry_on |= PX_RETRY_CONNECT;
		} else if (strcmp(tok, "reset") == 0) {
			cfg->retry_on |= PX_RETRY_RESET;
		} else if (strcmp(tok, "timeout") == 0) {
			cfg->retry_on |= PX_RETRY_TIMEOUT;
		} else {
			s = strtol(tok, &end, 10);
			if (*end != '\0' || end == tok || s < 200 || s > 599)
				usage_error("--retry-on: '%s' is not connect, reset, timeout or a status "
				    "200..599", tok);
			cfg->retry_status[s] = true;
		}
	}
}

#define MS(x) ((int64_t)(x) * 1000000)

static void parse_args(int argc, char **argv, struct px_config *cfg)
{
	const char *listen_arg = NULL;

	memset(cfg, 0, sizeof(*cfg));
	parse_retry_on(cfg, "connect,reset,timeout,500,502,503,504");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v, *eq = strchr(a, '=');
		char flag[40];
		size_t n = eq != NULL ? (size_t)(eq - a) : strlen(a);

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0 || n >= sizeof(flag))
			usage_error("unknown argument '%s'", a);
		memcpy(flag, a, n);
		flag[n] = '\0';
		if (eq != NULL)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			usage_error("%s wants a value", flag);

		if (strcmp(flag, "--listen") == 0) {
			listen_arg = v;
		} else if (strcmp(flag, "--upstream") == 0) {
			if (cfg->n_up == PX_MAX_UPSTREAMS)
				usage_error("at most %u upstreams", PX_MAX_UPSTREAMS);
			if (!parse_addr(v, &cfg->up[cfg->n_up], cfg->up_name[cfg->n_up],
			    sizeof(cfg->up_name[0])))
				die(1, "--upstream: '%s' is not a numeric IPv4 ADDR:PORT", v);
			cfg->n_up++;
		} else if (strcmp(flag, "--workers") == 0) {
			cfg->workers = (unsigned)parse_uint(flag, v, SX_POOL_MAX_WORKERS);
		} else if (strcmp(flag, "--shards") == 0) {
			cfg->shards = (unsigned)parse_uint(flag, v, PX_MAX_SHARDS);
		} else if (strcmp(flag, "--connect-timeout-ms") == 0) {
			cfg->connect_timeout_ns = MS(parse_uint(flag, v, 3600000));
		} else if (strcmp(flag, "--attempt-timeout-ms") == 0) {
			cfg->attempt_timeout_ns = MS(parse_uint(flag, v, 3600000));
		} else if (strcmp(flag, "--request-timeout-ms") == 0) {
			cfg->request_timeout_ns = MS(parse_uint(flag, v, 3600000));
		} else if (strcmp(flag, "--attempts") == 0) {
			cfg->attempts = (unsigned)parse_uint(flag, v, 64);
		} else if (strcmp(flag, "--retry-on") == 0) {
			parse_retry_on(cfg, v);
		} else if (strcmp(flag, "--backoff-ms") == 0) {
			cfg->backoff_ns = MS(parse_uint(flag, v, 60000));
		} else if (strcmp(flag, "--retry-slow-ms") == 0) {
			cfg->retry_slow_ns = MS(parse_uint(flag, v, 3600000));
		} else if (strcmp(flag, "--retry-budget-tokens") == 0) {
			cfg->budget_tokens = parse_uint(flag, v, 1ull << 40);
		} else if (strcmp(flag, "--retry-budget-per-success") == 0) {
			cfg->budget_per_success = parse_real(flag, v, 1e12);
		} else if (strcmp(flag, "--circuit-consecutive") == 0) {
			cfg->circuit_consecutive = (unsigned)parse_uint(flag, v, UINT_MAX);
		} else if (strcmp(flag, "--circuit-failure-rate") == 0) {
			cfg->circuit_failure_rate = parse_real(flag, v, 1.0);
		} else if (strcmp(flag, "--circuit-window") == 0) {
			cfg->circuit_window = (unsigned)parse_uint(flag, v, SX_CIRCUIT_MAX_WINDOW);
		} else if (strcmp(flag, "--circuit-min-calls") == 0) {
			cfg->circuit_min_calls = (unsigned)parse_uint(flag, v, UINT_MAX);
		} else if (strcmp(flag, "--circuit-slow-ms") == 0) {
			cfg->circuit_slow_ns = MS(parse_uint(flag, v, 3600000));
		} else if (strcmp(flag, "--circuit-slow-rate") == 0) {
			cfg->circuit_slow_rate = parse_real(flag, v, 1.0);
		} else if (strcmp(flag, "--circuit-open-ms") == 0) {
			cfg->circuit_open_ns = MS(parse_uint(flag, v, 86400000));
		} else if (strcmp(flag, "--circuit-half-open") == 0) {
			cfg->circuit_half_open = (unsigned)parse_uint(flag, v, SX_CIRCUIT_MAX_PERMITS);
		} else if (strcmp(flag, "--bulkhead") == 0) {
			cfg->bulkhead = (unsigned)parse_uint(flag, v, SX_SEM_MAX_CAPACITY);
		} else if (strcmp(flag, "--max-inflight") == 0) {
			cfg->max_inflight = (unsigned)parse_uint(flag, v, UINT_MAX / 2);
		} else if (strcmp(flag, "--rate-limit") == 0) {
			cfg->rate_limit = parse_uint(flag, v, 1000000000);
		} else if (strcmp(flag, "--rate-burst") == 0) {
			cfg->rate_burst = (unsigned)parse_uint(flag, v, SX_RATELIMIT_MAX_BURST);
		} else if (strcmp(flag, "--client-rate-limit") == 0) {
			cfg->client_rate_limit = parse_uint(flag, v, 1000000000);
		} else if (strcmp(flag, "--client-rate-burst") == 0) {
			cfg->client_rate_burst = (unsigned)parse_uint(flag, v, SX_RATELIMIT_MAX_BURST);
		} else if (strcmp(flag, "--client-rate-keys") == 0) {
			cfg->client_rate_keys = (unsigned)parse_uint(flag, v, SX_RATELIMIT_MAX_KEYS);
		} else if (strcmp(flag, "--keepalive") == 0) {
			cfg->keepalive = (unsigned)parse_uint(flag, v, 1000000);
		} else if (strcmp(flag, "--client-idle-ms") == 0) {
			cfg->client_idle_ns = MS(parse_uint(flag, v, 86400000));
		} else if (strcmp(flag, "--max-head") == 0) {
			cfg->max_head = (unsigned)parse_uint(flag, v, 1u << 20);
			if (cfg->max_head != 0 && cfg->max_head < 256)
				usage_error("--max-head wants 0 or 256..1048576, not '%s'", v);
		} else if (strcmp(flag, "--stats") == 0) {
			cfg->stats_file = v;
		} else if (strcmp(flag, "--duration-s") == 0) {
			cfg->duration_s = (unsigned)parse_uint(flag, v, 86400u * 365);
		} else if (strcmp(flag, "--ready-file") == 0) {
			cfg->ready_file = v;
		} else {
			usage_error("unknown flag '%s'", flag);
		}
	}
	if (listen_arg == NULL)
		usage_error("--listen is required");
	if (cfg->n_up == 0)
		usage_error("at least one --upstream is required");
	if (!parse_addr(listen_arg, &cfg->listen, NULL, 0))
		die(1, "--listen: '%s' is not a numeric IPv4 ADDR:PORT", listen_arg);

	/* A zero takes the default where one is named. */
	if (cfg->connect_timeout_ns == 0)
		cfg->connect_timeout_ns = MS(1000);
	if (cfg->attempt_timeout_ns == 0)
		cfg->attempt_timeout_ns = MS(1000);
	if (cfg->attempts == 0)
		cfg->attempts = 3;
	if (cfg->budget_tokens == 0)
		cfg->budget_tokens = 100;
	if (cfg->budget_per_success == 0)
		cfg->budget_per_success = 0.2;
	if (cfg->budget_per_success > (double)cfg->budget_tokens)
		usage_error("--retry-budget-per-success is above the budget's tokens");
	if (cfg->circuit_failure_rate == 0)
		cfg->circuit_failure_rate = 0.5;
	if (cfg->circuit_window == 0)
		cfg->circuit_window = 100;
	if (cfg->circuit_min_calls == 0)
		cfg->circuit_min_calls = 20;
	if (cfg->circuit_slow_rate == 0)
		cfg->circuit_slow_rate = 0.5;
	if (cfg->circuit_open_ns == 0)
		cfg->circuit_open_ns = MS(5000);
	if (cfg->circuit_half_open == 0)
		cfg->circuit_half_open = 1;
	if (cfg->keepalive == 0)
		cfg->keepalive = 64;
	if (cfg->client_idle_ns == 0)
		cfg->client_idle_ns = MS(60000);
	if (cfg->max_head == 0)
		cfg->max_head = HTTP_HEAD_MAX;
	if (cfg->rate_burst == 0)
		cfg->rate_burst = cfg->rate_limit < SX_RATELIMIT_MAX_BURST ? (unsigned)cfg->rate_limit :
		    SX_RATELIMIT_MAX_BURST;
	if (cfg->client_rate_burst == 0)
		cfg->client_rate_burst = cfg->client_rate_limit < SX_RATELIMIT_MAX_BURST ?
		    (unsigned)cfg->client_rate_limit : SX_RATELIMIT_MAX_BURST;
	if (cfg->client_rate_keys == 0)
		cfg->client_rate_keys = 65536;
}

/* ---- start and end --------------------------------------------------------------------------- */

/* A listening socket on a; reuseport lets the other shards listen on the same port. */
static int listen_on(const struct sockaddr_in *a, bool reuseport, unsigned *port)
{
	struct sockaddr_in b;
	socklen_t blen = sizeof(b);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)a, sizeof(*a)) != 0 || listen(fd, SOMAXCONN) != 0 ||
	    getsockname(fd, (struct sockaddr *)&b, &blen) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	*port = ntohs(b.sin_port);
	return fd;
}

static int write_ready_file(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    (f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* A shard's listener and the pool whose reactor it is registered with. */
struct px_listener {
	sx_pool *pool;
	sx_io *io;
	int fd;
};

static struct px_listener listeners[PX_MAX_SHARDS];

static void on_accept(sx_io *io, int64_t fd, void *arg);

static void accept_again(void *arg, int status)
{
	struct px_listener *l = arg;

	if (status == 0)
		(void)sx_io_accept(l->io, NULL, on_accept, l); /* fails only when the pool stops */
}

/* One connection accepted (or why not); the next accept is started before it is served. */
static void on_accept(sx_io *io, int64_t fd, void *arg)
{
	struct px_listener *l = arg;

	if (fd == -ESHUTDOWN || fd == -ECANCELED)
		return;
	if (fd < 0) {
		/* Out of descriptors or memory: the listener stays readable, so accepting again at
		 * once would spin; try again a little later. */
		(void)sx_timer_add(l->pool, MS(10), 0, accept_again, l, NULL);
		return;
	}
	(void)sx_io_accept(io, NULL, on_accept, l);
	px_client_start(l->pool, (int)fd);
}

/* A 100 ms tick on a shard's timer service: it makes the timer thread take in the timers that
 * connections added and cancelled at least that often, so the nodes of cancelled timers go back
 * to the free lists even when no deadline is near (their memory is the pool's until then). */
static void tick(void *arg, int status)
{
	if (status == 0)
		(void)sx_timer_add(arg, MS(100), SX_TIMER_INLINE, tick, arg, NULL);
}

/* Waits for SIGTERM / SIGINT, or for --duration-s to pass (the signals are blocked in every
 * thread, so they wait here). */
static void wait_for_end(const sigset_t *set)
{
	uint64_t end = px.cfg.duration_s > 0 ?
	    px_now_ns() + (uint64_t)px.cfg.duration_s * 1000000000u : 0;

	for (;;) {
		int sig;

		if (end == 0) {
			sig = sigwaitinfo(set, NULL);
		} else {
			uint64_t now = px_now_ns();
			struct timespec ts;

			if (now >= end)
				return;
			ts.tv_sec = (time_t)((end - now) / 1000000000u);
			ts.tv_nsec = (long)((end - now) % 1000000000u);
			sig = sigtimedwait(set, NULL, &ts);
		}
		if (sig == SIGTERM || sig == SIGINT)
			return;
	}
}

/* The shards: pools, listeners (all on one port), accept loops, ticks. */
static void start_shards(void)
{
	unsigned w = px.cfg.workers > 0 ? px.cfg.workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = px.cfg.shards > 0 ? px.cfg.shards : w, port = 0;
	struct sockaddr_in a = px.cfg.listen;
	int rc;

	if (w == 0)
		w = 1;
	if (n > w)
		n = w;
	if (n > PX_MAX_SHARDS)
		n = PX_MAX_SHARDS;
	for (unsigned i = 0; i < n; i++) {
		sx_pool_opts po = SX_POOL_OPTS_INIT;
		struct px_listener *l = &listeners[i];

		if ((l->fd = listen_on(&a, n > 1, &port)) < 0)
			die(1, "cannot listen on %s:%u: %s", inet_ntoa(a.sin_addr), ntohs(a.sin_port),
			    strerror(errno));
		a.sin_port = htons((uint16_t)port);   /* port 0: the others join the first's */
		po.workers = w / n + (i < w % n ? 1 : 0);
		if ((rc = sx_pool_create(&po, &px.pools[i])) != 0)
			die(1, "sx_pool_create: %s", sx_strerror(rc));
		l->pool = px.pools[i];
		px.shard_base[i] = px.workers;
		px.workers += po.workers;
		px.n_shards = i + 1;
	}
	if (px.cfg.ready_file != NULL && write_ready_file(px.cfg.ready_file, port) != 0)
		die(1, "cannot write %s: %s", px.cfg.ready_file, strerror(errno));
}

static void serve(void)
{
	int rc;

	for (unsigned i = 0; i < px.n_shards; i++) {
		struct px_listener *l = &listeners[i];

		if ((rc = sx_io_register(l->pool, l->fd, &l->io)) != 0 ||
		    (rc = sx_io_accept(l->io, NULL, on_accept, l)) != 0 ||
		    (rc = sx_timer_add(l->pool, MS(100), SX_TIMER_INLINE, tick, l->pool, NULL)) != 0)
			die(1, "starting: %s", sx_strerror(rc));
	}
}

int main(int argc, char **argv)
{
	sigset_t set;
	int rc;

	parse_args(argc, argv, &px.cfg);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* before any thread: they all inherit it */
	atomic_init(&px.inflight, 0);
	atomic_init(&px.clients, 0);

	start_shards();
	if ((rc = px_stats_init(px.workers, px.cfg.n_up)) != 0 ||
	    (rc = px_backend_init()) != 0 ||
	    (rc = sx_retry_budget_init(&px.budget, px.cfg.budget_tokens,
	    px.cfg.budget_per_success)) != 0)
		die(1, "setting up: %s", sx_strerror(rc));
	if (px.cfg.rate_limit > 0) {
		sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;

		ro.rate = px.cfg.rate_limit;
		ro.burst = px.cfg.rate_burst;
		if ((rc = sx_ratelimit_create(&ro, &px.rate)) != 0)
			die(1, "sx_ratelimit_create: %s", sx_strerror(rc));
	}
	if (px.cfg.client_rate_limit > 0) {
		sx_ratelimit_opts ro = SX_RATELIMIT_OPTS_INIT;

		ro.rate = px.cfg.client_rate_limit;
		ro.burst = px.cfg.client_rate_burst;
		if ((rc = sx_ratelimit_keyed_create(&ro, px.cfg.client_rate_keys,
		    &px.client_rate)) != 0)
			die(1, "sx_ratelimit_keyed_create: %s", sx_strerror(rc));
	}
	{
		static char shard_name[PX_MAX_SHARDS][16];

		if ((rc = sx_metrics_create(&px.metrics)) != 0 ||
		    (rc = sx_metrics_add(px.metrics, SX_METRICS_RETRY_BUDGET, "retries",
		    &px.budget)) != 0 || (rc = px_backend_metrics(px.metrics)) != 0)
			die(1, "the metrics set: %s", sx_strerror(rc));
		for (unsigned i = 0; i < px.n_shards; i++) {
			snprintf(shard_name[i], sizeof(shard_name[i]), "shard%u", i);
			if ((rc = sx_metrics_add(px.metrics, SX_METRICS_POOL, shard_name[i],
			    px.pools[i])) != 0)
				die(1, "the metrics set: %s", sx_strerror(rc));
		}
		if ((px.rate != NULL && (rc = sx_metrics_add(px.metrics, SX_METRICS_RATELIMIT,
		    "admission", px.rate)) != 0) || (px.client_rate != NULL &&
		    (rc = sx_metrics_add(px.metrics, SX_METRICS_RATELIMIT_KEYED, "per-client",
		    px.client_rate)) != 0))
			die(1, "the metrics set: %s", sx_strerror(rc));
	}
	if (px.cfg.backoff_ns > 0) {
		sx_retry_policy p = SX_RETRY_POLICY_INIT;

		p.backoff = SX_BACKOFF_EXPONENTIAL;
		p.base_ns = px.cfg.backoff_ns;
		p.cap_ns = px.cfg.backoff_ns * 64;
		p.jitter = SX_JITTER_FULL;
		px.backoff = p;
	}
	serve();

	wait_for_end(&set);

	/* Every shard drains before anything shared goes: a client of one may still count, or use
	 * an upstream's circuit, while another stops. */
	for (unsigned i = 0; i < px.n_shards; i++)
		sx_pool_shutdown(px.pools[i], SX_DRAIN);
	for (unsigned i = 0; i < px.n_shards; i++) {
		sx_io_deregister(listeners[i].io);
		close(listeners[i].fd);
	}
	rc = 0;
	if (px.cfg.stats_file != NULL && (rc = px_stats_write(px.cfg.stats_file)) != 0)
		fprintf(stderr, "proxy: cannot write %s: %s\n", px.cfg.stats_file, strerror(-rc));
	sx_metrics_destroy(px.metrics);
	px_backend_fini();
	sx_ratelimit_destroy(px.rate);
	sx_ratelimit_keyed_destroy(px.client_rate);
	for (unsigned i = 0; i < px.n_shards; i++)
		sx_pool_destroy(px.pools[i]);
	px_stats_fini();
	return rc == 0 ? 0 : 1;
}
