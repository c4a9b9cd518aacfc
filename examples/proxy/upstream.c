/*
 * proxy-upstream: the HTTP/1.1 server the proxy benchmark puts behind each proxy. It listens on
 * 127.0.0.1 only, keeps connections alive, answers every request with 200 and a small body with
 * its Content-Length, and can misbehave on purpose: answer late, fail a share of requests with a
 * 5xx, reset a share of connections, go down and come back. At exit it writes what it did (the
 * requests it received, i.e. the attempts the proxy made) to a JSON file, so the benchmark can
 * tell how many upstream attempts each client request cost.
 *
 * One thread, one epoll loop, non-blocking sockets: it must serve tens of thousands of requests a
 * second on a shared core and still answer in order when it delays. Delayed answers wait in one
 * FIFO (every answer is delayed by the same time, so the queue is sorted by its due time without
 * any effort); a connection closed meanwhile is recognised by its id and its answers dropped.
 * Requests are parsed with the proxy's own parser (http.c), bodies (Content-Length or chunked)
 * read and thrown away. It is a test's server, not a product: no TLS, no files, no limits but
 * the ones a benchmark needs.
 *
 * Exit status: 0 after --duration-s or SIGTERM / SIGINT (the stats written), 1 when it cannot
 * listen or write its files, 2 for a bad command line (with the usage).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define IN_CAP      (32u * 1024u)         /* a connection's input buffer: a head fits twice */
#define OUT_PAUSE   (4u * 1024u * 1024u)  /* stop reading while this much output is unsent */
#define MAX_HEADERS 64u

static const char usage_text[] =
	"usage: proxy-upstream --port N [options]\n"
	"  --port N          TCP port on 127.0.0.1 (0: any free port, see --ready-file)\n"
	"  --ready-file F    write the port to F (atomically) once listening\n"
	"  --stats F         write the counts as JSON to F at exit (default: stdout)\n"
	"  --body-bytes N    size of the 200 response body (default 64, at most 1048576)\n"
	"  --delay-ms N      answer every request N ms after it arrived (default 0, at most 60000)\n"
	"  --fail-rate P     answer a share P (0..1) of requests with --fail-status (default 0)\n"
	"  --fail-status S   the failure status, 400..599 (default 503)\n"
	"  --reset-rate P    reset the connection (SO_LINGER 0) instead of answering, share P\n"
	"  --flap-ms N       alternately up and down for N ms each (down: listener and every\n"
	"                    connection closed); 0: always up (default), else 10..600000\n"
	"  --duration-s N    exit after N s (default 300, 1..3600)\n"
	"  --seed N          seed of the fault draws (default 1)\n";

struct options {
	long port;
	const char *ready_file;
	const char *stats_file;
	long body_bytes;
	long delay_ms;
	double fail_rate;
	long fail_status;
	double reset_rate;
	long flap_ms;
	long duration_s;
	unsigned long long seed;
};

struct stats {
	unsigned long long requests;     /* request heads received: the proxy's attempts */
	unsigned long long ok;           /* answered 200 */
	unsigned long long failed;       /* answered --fail-status */
	unsigned long long resets;       /* connections reset instead of an answer */
	unsigned long long bad;          /* unparsable requests (answered 400 or 431, closed) */
	unsigned long long connections;  /* connections accepted */
	unsigned long long downs;        /* times it went down (--flap-ms) */
	unsigned long long dropped;      /* connections closed by going down */
};

enum action { ACT_OK, ACT_FAIL, ACT_RESET };

struct conn {
	int fd;
	unsigned long long id;
	char in[IN_CAP];
	size_t in_len;
	char *out;
	size_t out_len;
	size_t out_off;
	size_t out_cap;
	http_msg msg;
	http_header headers[MAX_HEADERS];
	bool in_body;              /* reading (and dropping) a request body */
	bool chunked;
	uint64_t body_left;
	http_chunked chunk;
	unsigned queued;           /* answers waiting in the delay queue */
	bool close_after;          /* close once every answer is out; read nothing more */
	bool want_out;             /* EPOLLOUT is on */
	bool paused;               /* EPOLLIN is off (too much unsent output) */
};

struct pending {
	int fd;
	unsigned long long id;
	long long due_ns;
	enum action act;
	bool head;                 /* the request was HEAD: no body */
	bool close;                /* the request asked to close (after this answer) */
};

static struct {
	struct options o;
	struct stats st;
	int ep;
	int listener;                  /* -1 while down */
	int port;
	struct conn **conns;           /* by fd */
	size_t nconns;
	unsigned long long next_id;
	struct pending *q;             /* the delay FIFO, a ring */
	size_t q_head, q_len, q_cap;
	uint64_t rng;
	char *ok_head, *ok_head_close, *body, *fail, *fail_close;
	size_t ok_head_len, ok_head_close_len, body_len, fail_len, fail_close_len;
} S;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("proxy-upstream: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("proxy-upstream: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fputs(usage_text, stderr);
	exit(2);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64*: a uniform draw in [0, 1). */
static double draw(void)
{
	S.rng ^= S.rng >> 12;
	S.rng ^= S.rng << 25;
	S.rng ^= S.rng >> 27;
	return (double)((S.rng * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

/* ---- command line --------------------------------------------------------------------------- */

static long parse_long(const char *flag, const char *v, long lo, long hi)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
		usage_error("%s wants an integer in %ld..%ld, not '%s'", flag, lo, hi, v);
	return x;
}

static double parse_rate(const char *flag, const char *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(x >= 0.0 && x <= 1.0))
		usage_error("%s wants a share in 0..1, not '%s'", flag, v);
	return x;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	bool have_port = false;
	int i;

	*o = (struct options){ 0, NULL, NULL, 64, 0, 0.0, 503, 0.0, 0, 300, 1 };
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v, *eq = strchr(a, '=');
		char flag[32];
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
		if (strcmp(flag, "--port") == 0) {
			o->port = parse_long(flag, v, 0, 65535);
			have_port = true;
		} else if (strcmp(flag, "--ready-file") == 0) {
			o->ready_file = v;
		} else if (strcmp(flag, "--stats") == 0) {
			o->stats_file = v;
		} else if (strcmp(flag, "--body-bytes") == 0) {
			o->body_bytes = parse_long(flag, v, 0, 1048576);
		} else if (strcmp(flag, "--delay-ms") == 0) {
			o->delay_ms = parse_long(flag, v, 0, 60000);
		} else if (strcmp(flag, "--fail-rate") == 0) {
			o->fail_rate = parse_rate(flag, v);
		} else if (strcmp(flag, "--fail-status") == 0) {
			o->fail_status = parse_long(flag, v, 400, 599);
		} else if (strcmp(flag, "--reset-rate") == 0) {
			o->reset_rate = parse_rate(flag, v);
		} else if (strcmp(flag, "--flap-ms") == 0) {
			o->flap_ms = parse_long(flag, v, 0, 600000);
			if (o->flap_ms != 0 && o->flap_ms < 10)
				usage_error("--flap-ms wants 0 or 10..600000, not '%s'", v);
		} else if (strcmp(flag, "--duration-s") == 0) {
			o->duration_s = parse_long(flag, v, 1, 3600);
		} else if (strcmp(flag, "--seed") == 0) {
			o->seed = (unsigned long long)parse_long(flag, v, 0, LONG_MAX);
		} else {
			usage_error("unknown flag '%s'", flag);
		}
	}
	if (!have_port)
		usage_error("--port is required");
}

/* ---- listener ------------------------------------------------------------------------------- */

/* Listens on 127.0.0.1:port (0: any): the socket, or -1 with errno. */
static int listen_on(int port, int *bound)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

static void epoll_set(int op, int fd, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.fd = fd;
	if (epoll_ctl(S.ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
		die("epoll_ctl: %s", strerror(errno));
}

static void write_file_atomically(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		die("path too long: %s", path);
	if ((f = fopen(tmp, "w")) == NULL)
		die("%s: %s", tmp, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		die("%s: %s", path, strerror(errno));
}

/* ---- connections ---------------------------------------------------------------------------- */

static struct conn *conn_of(int fd)
{
	return fd >= 0 && (size_t)fd < S.nconns ? S.conns[fd] : NULL;
}

static void conn_close(struct conn *c, bool reset)
{
	if (reset) {
		struct linger l = { 1, 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	epoll_set(EPOLL_CTL_DEL, c->fd, 0);
	close(c->fd);
	S.conns[c->fd] = NULL;
	free(c->out);
	free(c);
}

static void conn_accept(void)
{
	for (;;) {
		int fd = accept4(S.listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "proxy-upstream: accept: %s\n", strerror(errno));
			return;
		}
		if ((size_t)fd >= S.nconns) {
			size_t n = (size_t)fd * 2 + 64;
			struct conn **p = realloc(S.conns, n * sizeof(*p));

			if (p == NULL)
				die("out of memory");
			memset(p + S.nconns, 0, (n - S.nconns) * sizeof(*p));
			S.conns = p;
			S.nconns = n;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL)
			die("out of memory");
		c->fd = fd;
		c->id = ++S.next_id;
		http_msg_init(&c->msg, c->headers, MAX_HEADERS, 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		S.conns[fd] = c;
		S.st.connections++;
		epoll_set(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP);
	}
}

static void out_add(struct conn *c, const char *p, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap * 2 + n + 4096;
		char *q = realloc(c->out, cap);

		if (q == NULL)
			die("out of memory");
		c->out = q;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void update_events(struct conn *c)
{
	bool want_out = c->out_off < c->out_len;
	bool paused = c->out_len - c->out_off > OUT_PAUSE || c->close_after;

	if (want_out != c->want_out || paused != c->paused) {
		c->want_out = want_out;
		c->paused = paused;
		epoll_set(EPOLL_CTL_MOD, c->fd, (paused ? 0u : (uint32_t)(EPOLLIN | EPOLLRDHUP)) |
		    (want_out ? (uint32_t)EPOLLOUT : 0u));
	}
}

/* Sends what it can; closes the connection when it is done with it. False: c is gone. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c, false);
			return false;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len && c->close_after && c->queued == 0) {
		conn_close(c, false);
		return false;
	}
	update_events(c);
	return true;
}

/* The answer to one request, now. False when it reset the connection. */
static bool answer(struct conn *c, enum action act, bool head, bool close_conn)
{
	switch (act) {
	case ACT_RESET:
		S.st.resets++;
		conn_close(c, true);
		return false;
	case ACT_FAIL:
		S.st.failed++;
		if (close_conn)
			out_add(c, S.fail_close, S.fail_close_len);
		else
			out_add(c, S.fail, S.fail_len);
		return true;
	default:
		S.st.ok++;
		if (close_conn)
			out_add(c, S.ok_head_close, S.ok_head_close_len);
		else
			out_add(c, S.ok_head, S.ok_head_len);
		if (!head)
			out_add(c, S.body, S.body_len);
		return true;
	}
}

static void queue_push(const struct pending *p)
{
	if (S.q_len == S.q_cap) {
		size_t cap = S.q_cap * 2 + 1024, i;
		struct pending *q = malloc(cap * sizeof(*q));

		if (q == NULL)
			die("out of memory");
		for (i = 0; i < S.q_len; i++)
			q[i] = S.q[(S.q_head + i) % S.q_cap];
		free(S.q);
		S.q = q;
		S.q_cap = cap;
		S.q_head = 0;
	}
	S.q[(S.q_head + S.q_len++) % S.q_cap] = *p;
}

/* One complete request head in c->msg: draw its fate, answer it or queue the answer. */
static bool on_request(struct conn *c)
{
	enum action act = ACT_OK;
	bool close_conn = !c->msg.keep_alive;

	S.st.requests++;
	if (S.o.reset_rate > 0 && draw() < S.o.reset_rate)
		act = ACT_RESET;
	else if (S.o.fail_rate > 0 && draw() < S.o.fail_rate)
		act = ACT_FAIL;
	if (close_conn)
		c->close_after = true;
	if (S.o.delay_ms == 0)
		return answer(c, act, c->msg.head_method, close_conn);
	queue_push(&(struct pending){ c->fd, c->id, now_ns() + S.o.delay_ms * 1000000LL, act,
	                              c->msg.head_method, close_conn });
	c->queued++;
	return true;
}

/* Answers a request that could not be parsed, then closes. */
static void on_bad_request(struct conn *c, int err)
{
	char buf[256];
	size_t n;

	S.st.bad++;
	c->close_after = true;
	if (http_simple_response(http_error_status(err, true), true, buf, sizeof(buf), &n) ==
	    HTTP_OK)
		out_add(c, buf, n);
}

/* Consumes the buffered input: bodies skipped, heads answered. False: c is gone. */
static bool conn_process(struct conn *c)
{
	size_t at = 0;

	while (at < c->in_len && !c->close_after) {
		if (c->in_body) {
			size_t n = c->in_len - at;

			if (c->chunked) {
				size_t used;
				int rc = http_chunked_scan(&c->chunk, c->in + at, n, &used);

				at += used;
				if (rc == HTTP_ECHUNK) {
					on_bad_request(c, rc);
					break;
				}
				c->in_body = rc != HTTP_OK;
			} else {
				if (n > c->body_left)
					n = (size_t)c->body_left;
				at += n;
				c->body_left -= n;
				c->in_body = c->body_left > 0;
			}
			continue;
		}
		{
			int rc = http_parse_request(&c->msg, c->in + at, c->in_len - at);

			if (rc == HTTP_INCOMPLETE)
				break;
			if (rc != HTTP_OK) {
				on_bad_request(c, rc);
				break;
			}
			at += c->msg.head_len;
			c->in_body = c->msg.body != HTTP_BODY_NONE;
			c->chunked = c->msg.body == HTTP_BODY_CHUNKED;
			c->body_left = c->msg.content_length;
			if (c->chunked)
				http_chunked_init(&c->chunk);
			if (!on_request(c))
				return false;
			http_msg_reset(&c->msg);
		}
	}
	/* What is left is the start of a head (or nothing): move it to the front. The parser's
	 * scan state counts from the head's first byte, so the move does not disturb it. */
	if (at > 0) {
		memmove(c->in, c->in + at, c->in_len - at);
		c->in_len -= at;
	}
	if (c->in_len == IN_CAP && !c->close_after)
		on_bad_request(c, HTTP_ETOOLARGE);
	return conn_flush(c);
}

static void conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->close_after) {
			/* Nothing more is read: drop what comes, so the peer's close is seen. */
			char sink[4096];

			n = recv(c->fd, sink, sizeof(sink), 0);
		} else {
			n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
		}
		if (n == 0) {
			conn_close(c, false);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(c, false);
			else
				conn_flush(c);
			return;
		}
		if (c->close_after)
			continue;
		c->in_len += (size_t)n;
		if (!conn_process(c))
			return;
		if (c->paused || c->close_after)
			return;
	}
}

/* Answers whose time has come. */
static void run_queue(long long now)
{
	while (S.q_len > 0) {
		struct pending *p = &S.q[S.q_head];
		struct conn *c;

		if (p->due_ns > now)
			break;
		S.q_head = (S.q_head + 1) % S.q_cap;
		S.q_len--;
		c = conn_of(p->fd);
		if (c == NULL || c->id != p->id)
			continue;                   /* the connection went away meanwhile */
		c->queued--;
		if (answer(c, p->act, p->head, p->close))
			conn_flush(c);
	}
}

/* ---- up and down ---------------------------------------------------------------------------- */

static void go_down(void)
{
	size_t i;

	S.st.downs++;
	epoll_set(EPOLL_CTL_DEL, S.listener, 0);
	close(S.listener);
	S.listener = -1;
	for (i = 0; i < S.nconns; i++)
		if (S.conns[i] != NULL) {
			S.st.dropped++;
			conn_close(S.conns[i], false);
		}
}

static bool go_up(void)
{
	int bound;
	int fd = listen_on(S.port, &bound);

	if (fd < 0) {
		fprintf(stderr, "proxy-upstream: listen on 127.0.0.1:%d again: %s\n", S.port,
		    strerror(errno));
		return false;
	}
	S.listener = fd;
	epoll_set(EPOLL_CTL_ADD, fd, EPOLLIN);
	return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void make_answers(void)
{
	char head[256];
	size_t n;
	int len;

	S.body_len = (size_t)S.o.body_bytes;
	if ((S.body = malloc(S.body_len + 1)) == NULL)
		die("out of memory");
	memset(S.body, 'x', S.body_len);
	if (S.body_len > 0)
		S.body[S.body_len - 1] = '\n';
	len = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nX-Upstream: %d\r\n\r\n", S.body_len, S.port);
	S.ok_head = strdup(head);
	S.ok_head_len = (size_t)len;
	len = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nX-Upstream: %d\r\nConnection: close\r\n\r\n", S.body_len,
	    S.port);
	S.ok_head_close = strdup(head);
	S.ok_head_close_len = (size_t)len;
	if (http_simple_response((int)S.o.fail_status, false, head, sizeof(head), &n) != HTTP_OK)
		die("cannot build the failure answer");
	S.fail = strdup(head);
	S.fail_len = n;
	if (http_simple_response((int)S.o.fail_status, true, head, sizeof(head), &n) != HTTP_OK)
		die("cannot build the failure answer");
	S.fail_close = strdup(head);
	S.fail_close_len = n;
	if (S.ok_head == NULL || S.ok_head_close == NULL || S.fail == NULL || S.fail_close == NULL)
		die("out of memory");
}

static void write_stats(void)
{
	char text[1024];

	snprintf(text, sizeof(text),
	    "{\"port\": %d, \"requests\": %llu, \"ok\": %llu, \"failed\": %llu, \"resets\": %llu, "
	    "\"bad\": %llu, \"connections\": %llu, \"downs\": %llu, \"dropped\": %llu}\n",
	    S.port, S.st.requests, S.st.ok, S.st.failed, S.st.resets, S.st.bad, S.st.connections,
	    S.st.downs, S.st.dropped);
	if (S.o.stats_file != NULL)
		write_file_atomically(S.o.stats_file, text);
	else
		fputs(text, stdout);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	long long start, end;
	bool down = false;

	parse_args(argc, argv, &S.o);
	S.rng = S.o.seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((S.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	if ((S.listener = listen_on((int)S.o.port, &S.port)) < 0)
		die("listen on 127.0.0.1:%ld: %s", S.o.port, strerror(errno));
	epoll_set(EPOLL_CTL_ADD, S.listener, EPOLLIN);
	make_answers();
	if (S.o.ready_file != NULL) {
		char text[32];

		snprintf(text, sizeof(text), "%d\n", S.port);
		write_file_atomically(S.o.ready_file, text);
	}
	start = now_ns();
	end = start + S.o.duration_s * 1000000000LL;
	while (!stop_flag) {
		struct epoll_event ev[256];
		long long now = now_ns(), wake = end;
		int n, i, timeout;

		if (now >= end)
			break;
		if (S.o.flap_ms > 0) {
			long long period = S.o.flap_ms * 1000000LL;
			long long phase = (now - start) / period;
			bool want_down = phase % 2 == 1;

			if (want_down && !down) {
				go_down();
				down = true;
			} else if (!want_down && down) {
				down = !go_up();
			}
			wake = start + (phase + 1) * period;
			if (down && !want_down)
				wake = now + 10000000LL;        /* could not listen: try again soon */
		}
		run_queue(now);
		if (S.q_len > 0 && S.q[S.q_head].due_ns < wake)
			wake = S.q[S.q_head].due_ns;
		timeout = wake <= now ? 0 : (int)((wake - now + 999999) / 1000000);
		n = epoll_wait(S.ep, ev, 256, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			struct conn *c;

			if (fd == S.listener) {
				conn_accept();
				continue;
			}
			if ((c = conn_of(fd)) == NULL)
				continue;               /* closed earlier in this batch */
			if (ev[i].events & EPOLLOUT) {
				if (!conn_flush(c))
					continue;
			}
			if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_readable(c);
		}
	}
	write_stats();
	return 0;
}
