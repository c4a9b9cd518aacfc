/*
 * proxy-client: the HTTP/1.1 client of the proxy's smoke test (tests/proxy/smoke.sh).
 *
 *   proxy-client free-port                 a TCP port on 127.0.0.1 free right now
 *   proxy-client PORT [--from ADDR] [--body-to FILE] [--pipeline] REQ...
 *                                          one connection to 127.0.0.1:PORT (from the loopback
 *                                          address ADDR, 127.0.0.1 unless given); each REQ is
 *                                          sent and its response read before the next is sent
 *                                          (with --pipeline all are sent in one write first);
 *                                          --body-to appends each Content-Length body to FILE
 *
 * A REQ is the request's bytes with the escapes \r \n \\ and these tokens:
 *   {xN}      N bytes of 'x' (a Content-Length body)
 *   {cN}      a chunked body of N data bytes (chunks of 4000 and the last chunk)
 *   {1xx}     send what came before, then read one interim (1xx) response before going on
 * Prints one line per response, "STATUS BODY-BYTES" ("interim STATUS" for a 1xx), then "closed"
 * if the server closed the connection after the last response or "open" if it kept it (open:
 * nothing within 300 ms after a response that allows more, 2 s after one that does not).
 * Responses are parsed with the proxy's parser (examples/proxy/http.c), bodies framed
 * by Content-Length, chunked or the end of the connection. Exit status 0; 1 on a connection error
 * or a response that does not parse (the line says why); 2 for bad arguments. Every wait is
 * bounded (10 s).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../examples/proxy/http.h"

#define WAIT_MS 10000

static FILE *body_to; /* --body-to: where Content-Length bodies go (NULL: nowhere) */

struct buf {
	char *p;
	size_t len, cap;
};

static void fail(const char *what)
{
	printf("error: %s\n", what);
	exit(1);
}

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			fail("out of memory");
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("send");
		p += k;
		n -= (size_t)k;
	}
}

/* Reads more bytes into b: how many, 0 at end of file; fails after WAIT_MS without any. */
static size_t recv_more(int fd, struct buf *b, int wait_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char tmp[65536];
	ssize_t k;

	if (poll(&pfd, 1, wait_ms) <= 0)
		return (size_t)-1;
	k = recv(fd, tmp, sizeof(tmp), 0);
	if (k < 0)
		return errno == ECONNRESET ? 0 : (size_t)-1;
	put(b, tmp, (size_t)k);
	return (size_t)k;
}

/* Reads one response from in (more from fd as needed), prints its line and drops its bytes from
 * in. interim: the response must be a 1xx. Returns whether the connection may carry more. */
static bool read_response(int fd, struct buf *in, bool head, bool interim)
{
	http_header hs[128];
	http_msg m;
	size_t body = 0;
	int rc;

	http_msg_init(&m, hs, 128, 0);
	for (;;) {
		rc = http_parse_response(&m, in->p, in->len, head);
		if (rc != HTTP_INCOMPLETE)
			break;
		size_t k = recv_more(fd, in, WAIT_MS);
		if (k == 0 || k == (size_t)-1)
			fail(k == 0 ? "closed before a response head" : "no response head in time");
	}
	if (rc != HTTP_OK)
		fail(http_strerror(rc));
	if (interim) {
		if (m.status >= 200)
			fail("a final response where an interim one was expected");
		printf("interim %d\n", m.status);
		memmove(in->p, in->p + m.head_len, in->len - m.head_len);
		in->len -= m.head_len;
		return true;
	}
	if (m.status < 200) {   /* an interim response we did not ask for: show it, read on */
		printf("interim %d\n", m.status);
		memmove(in->p, in->p + m.head_len, in->len - m.head_len);
		in->len -= m.head_len;
		return read_response(fd, in, head, false);
	}
	size_t at = m.head_len, end;
	if (m.body == HTTP_BODY_LENGTH) {
		while (in->len - at < m.content_length)
			if (recv_more(fd, in, WAIT_MS) + 1 <= 1)
				fail("body cut short");
		body = (size_t)m.content_length;
		end = at + body;
		if (body_to != NULL && fwrite(in->p + at, 1, body, body_to) != body)
			fail("writing the body");
	} else if (m.body == HTTP_BODY_CHUNKED) {
		http_chunked ck;
		size_t used, data;

		http_chunked_init(&ck);
		end = at;
		for (;;) {
			rc = http_chunked_decode(&ck, in->p + end, in->len - end, &used, &data);
			body += data;
			/* decoded data moved to the front of the scanned span: drop what was used */
			memmove(in->p + end, in->p + end + used, in->len - end - used);
			in->len -= used;
			if (rc == HTTP_OK)
				break;
			if (rc != HTTP_INCOMPLETE)
				fail("bad chunked body");
			if (recv_more(fd, in, WAIT_MS) + 1 <= 1)
				fail("chunked body cut short");
		}
	} else if (m.body == HTTP_BODY_EOF) {
		while (recv_more(fd, in, WAIT_MS) + 1 > 1)
			;
		body = in->len - at;
		end = in->len;
	} else {
		end = at;
	}
	printf("%d %zu\n", m.status, body);
	memmove(in->p, in->p + end, in->len - end);
	in->len -= end;
	return m.keep_alive;
}

/* Expands a REQ into out; the split point of {1xx} (or SIZE_MAX) in *split. */
static void expand(const char *s, struct buf *out, size_t *split)
{
	*split = (size_t)-1;
	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			char c = s[1] == 'r' ? '\r' : s[1] == 'n' ? '\n' : s[1];

			put(out, &c, 1);
			s++;
		} else if (*s == '{') {
			const char *close = strchr(s, '}');
			unsigned long n;

			if (close == NULL)
				exit(2);
			if (strncmp(s, "{1xx}", 5) == 0) {
				*split = out->len;
			} else if (s[1] == 'x' || s[1] == 'c') {
				n = strtoul(s + 2, NULL, 10);
				for (unsigned long i = 0; i < n;) {
					unsigned long k = s[1] == 'c' && n - i > 4000 ? 4000 : n - i;
					char line[32];

					if (s[1] == 'c') {
						snprintf(line, sizeof(line), "%lx\r\n", k);
						put(out, line, strlen(line));
					}
					for (unsigned long j = 0; j < k; j++)
						put(out, "x", 1);
					if (s[1] == 'c')
						put(out, "\r\n", 2);
					i += k;
				}
				if (s[1] == 'c')
					put(out, "0\r\n\r\n", 5);
			} else {
				exit(2);
			}
			s = close;
		} else {
			put(out, s, 1);
		}
	}
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return 1;
	printf("%u\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct buf in = { 0 }, all = { 0 };
	bool pipeline = false, alive = true;
	int first = 2, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "free-port") == 0)
		return free_port();
	if (argc < 3)
		return 2;
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	if (first + 1 < argc && strcmp(argv[first], "--from") == 0) {
		if (inet_pton(AF_INET, argv[first + 1], &from.sin_addr) != 1)
			return 2;
		first += 2;
	}
	if (first + 1 < argc && strcmp(argv[first], "--body-to") == 0) {
		if ((body_to = fopen(argv[first + 1], "a")) == NULL)
			return 2;
		first += 2;
	}
	if (first < argc && strcmp(argv[first], "--pipeline") == 0) {
		pipeline = true;
		first++;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		fail("connect");
	if (pipeline) {
		for (int i = first; i < argc; i++) {
			size_t split;

			expand(argv[i], &all, &split);
		}
		send_all(fd, all.p, all.len);
	}
	for (int i = first; i < argc && alive; i++) {
		bool head = strncmp(argv[i], "HEAD ", 5) == 0;

		if (!pipeline) {
			struct buf req = { 0 };
			size_t split;

			expand(argv[i], &req, &split);
			if (split != (size_t)-1) {
				send_all(fd, req.p, split);
				read_response(fd, &in, head, true);
				send_all(fd, req.p + split, req.len - split);
			} else {
				send_all(fd, req.p, req.len);
			}
			free(req.p);
		}
		alive = read_response(fd, &in, head, false);
	}
	/* Did the server close after the last response? (Unread bytes would be a protocol error.) */
	for (;;) {
		size_t k = recv_more(fd, &in, alive ? 300 : 2000);

		if (k == 0) {
			puts("closed");
			break;
		}
		if (k == (size_t)-1) {
			puts("open");
			break;
		}
	}
	if (in.len > 0)
		fail("bytes after the last response");
	close(fd);
	free(in.p);
	free(all.p);
	if (body_to != NULL && fclose(body_to) != 0)
		fail("closing the body file");
	return 0;
}
