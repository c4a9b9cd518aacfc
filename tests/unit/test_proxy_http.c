/* The proxy's HTTP/1.1 parser (examples/proxy/http.c): heads split at every byte, pipelined
 * messages, the framing rules of RFC 9112 section 6.3, chunked bodies across buffers, bad input,
 * hop-by-hop rewriting; and randomized messages fed in random pieces, each checked against the
 * same bytes parsed whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

#include "../../examples/proxy/http.h"

#define NHDR 32

/* Everything a parse produced, as text: two parses agree when their texts are equal. Pointers
 * are given as offsets into the buffer, so a copy of the bytes parses to the same text. */
static void describe(const http_msg *m, const char *buf, int rc, char *out, size_t cap)
{
	size_t n = 0;
	uint32_t i;

#define ADD(...) (n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__))
	ADD("rc=%d", rc);
	if (rc == HTTP_OK) {
		ADD(" head=%u minor=%d status=%d body=%d len=%llu ka=%d cc=%d cka=%d up=%d ex=%d hm=%d",
		    m->head_len, m->minor, m->status, (int)m->body,
		    (unsigned long long)m->content_length, m->keep_alive, m->conn_close,
		    m->conn_keep_alive, m->conn_upgrade, m->expect_continue, m->head_method);
		if (m->method != NULL)
			ADD(" req=%ld:%.*s %ld:%.*s", (long)(m->method - buf), (int)m->method_len,
			    m->method, (long)(m->target - buf), (int)m->target_len, m->target);
		else
			ADD(" reason=%.*s", (int)m->reason_len, m->reason);
		ADD(" host=%ld", m->host != NULL ? (long)(m->host - m->headers) : -1L);
		for (i = 0; i < m->nheaders; i++)
			ADD(" [%ld %.*s=%.*s %u]", (long)(m->headers[i].name - buf),
			    (int)m->headers[i].name_len, m->headers[i].name,
			    (int)m->headers[i].value_len, m->headers[i].value, m->headers[i].line_len);
	}
#undef ADD
	assert_true(n < cap);
}

static int parse(http_msg *m, const char *buf, size_t len, bool request)
{
	return request ? http_parse_request(m, buf, len) : http_parse_response(m, buf, len, false);
}

static int parse_str(http_msg *m, http_header *h, const char *s, bool request)
{
	assert_int_equal(http_msg_init(m, h, NHDR, 0), HTTP_OK);
	return parse(m, s, strlen(s), request);
}

/* The bytes s[0..k) in a buffer of exactly k bytes, so a read past them is caught (ASan). */
static char *copy_of(const char *s, size_t k)
{
	char *p = malloc(k > 0 ? k : 1);

	assert_non_null(p);
	memcpy(p, s, k);
	return p;
}

/*
 * Parses s whole, then every prefix of it in a fresh message, then all prefixes in turn in one
 * message (each in a new copy: the buffer may move between calls). A prefix gives
 * HTTP_INCOMPLETE, or the whole buffer's result; once it gives that, every longer prefix does;
 * and the message one call at a time ends with exactly the whole buffer's result.
 */
static int check_splits(const char *s, size_t len, bool request, uint32_t max_head)
{
	http_header h1[NHDR], h2[NHDR];
	http_msg whole, part;
	char want[8192], got[8192];
	int rc, first = -1;
	size_t k;

	assert_int_equal(http_msg_init(&whole, h1, NHDR, max_head), HTTP_OK);
	rc = parse(&whole, s, len, request);
	describe(&whole, s, rc, want, sizeof(want));
	for (k = 0; k <= len; k++) {
		char *p = copy_of(s, k);
		int r;

		assert_int_equal(http_msg_init(&part, h2, NHDR, max_head), HTTP_OK);
		r = parse(&part, p, k, request);
		if (first < 0 && r != HTTP_INCOMPLETE)
			first = (int)k;
		if (first >= 0) {
			describe(&part, p, r, got, sizeof(got));
			if (strcmp(want, got) != 0)
				fail_msg("prefix %zu of %zu: %s\nwhole: %s", k, len, got, want);
		}
		free(p);
	}
	assert_int_equal(http_msg_init(&part, h2, NHDR, max_head), HTTP_OK);
	for (k = 0; k <= len; k++) {
		char *p = copy_of(s, k);
		int r = parse(&part, p, k, request);

		if (r != HTTP_INCOMPLETE || k == len) {
			describe(&part, p, r, got, sizeof(got));
			if (strcmp(want, got) != 0)
				fail_msg("fed up to %zu of %zu: %s\nwhole: %s", k, len, got, want);
			free(p);
			break;
		}
		free(p);
	}
	return rc;
}

/* ---- heads ---------------------------------------------------------------------------------- */

static void test_request_head_fields(void **state)
{
	static const char req[] = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\n"
	                          "User-Agent:  wrk \t\r\nAccept:*/*\r\nX-Empty:\r\n\r\nrest";
	http_header h[NHDR];
	http_msg m;

	(void)state;
	assert_int_equal(parse_str(&m, h, req, true), HTTP_OK);
	assert_int_equal(m.head_len, strlen(req) - 4);
	assert_int_equal(m.method_len, 3);
	assert_memory_equal(m.method, "GET", 3);
	assert_int_equal(m.target_len, 8);
	assert_memory_equal(m.target, "/a/b?c=d", 8);
	assert_int_equal(m.minor, 1);
	assert_int_equal(m.nheaders, 4);
	assert_ptr_equal(m.host, &h[0]);
	assert_int_equal(h[1].value_len, 3);                      /* whitespace trimmed both sides */
	assert_memory_equal(h[1].value, "wrk", 3);
	assert_int_equal(h[1].line_len, strlen("User-Agent:  wrk \t\r\n"));
	assert_int_equal(h[2].value_len, 3);
	assert_int_equal(h[3].value_len, 0);
	assert_int_equal(m.body, HTTP_BODY_NONE);
	assert_true(m.keep_alive);
	assert_false(m.head_method);
	assert_int_equal(m.status, 0);
}

static const char *const valid_requests[] = {
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
	"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"\r\n\r\nHEAD /x HTTP/1.1\r\nhost: b\r\nConnection: close, Upgrade\r\nUpgrade: h2c\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost:\r\nExpect: 100-Continue\r\nContent-Length: 3, 3\r\n\r\n",
};

static const char *const valid_responses[] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.0 200\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 503 \r\nServer: x\r\n\r\nbody until close",
};

static void test_every_split_point_of_valid_heads(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid_requests) / sizeof(valid_requests[0]); i++)
		assert_int_equal(check_splits(valid_requests[i], strlen(valid_requests[i]), true, 0),
		    HTTP_OK);
	for (i = 0; i < sizeof(valid_responses) / sizeof(valid_responses[0]); i++)
		assert_int_equal(check_splits(valid_responses[i], strlen(valid_responses[i]), false,
		    0), HTTP_OK);
}

struct bad_head {
	const char *text;
	int rc;
};

static const struct bad_head bad_requests[] = {
	{ "GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP_ESYNTAX },          /* bare LF */
	{ "GET / HTTP/1.1\r\nHost: a\n\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", HTTP_ESYNTAX },     /* bare CR */
	{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP_ESYNTAX },       /* space before the colon */
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", HTTP_ESYNTAX },   /* obs-fold */
	{ "GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },       /* two spaces */
	{ "GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET /\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },                 /* HTTP/0.9 style */
	{ "GET / http/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ " / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", HTTP_ESYNTAX },
	{ "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_ESYNTAX },
	{ "GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP_EVERSION },
	{ "GET / HTTP/0.9\r\nHost: a\r\n\r\n", HTTP_EVERSION },
	{ "GET / HTTP/1.1\r\n\r\n", HTTP_EHOST },
	{ "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HTTP_EHOST },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	  HTTP_EFRAMING },
	{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	  HTTP_EFRAMING },
	{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP_EFRAMING },
	{ "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_EFRAMING },
};

static void test_every_split_point_of_bad_heads(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
		int rc = check_splits(bad_requests[i].text, strlen(bad_requests[i].text), true, 0);

		if (rc != bad_requests[i].rc)
			fail_msg("%s: %d, want %d", bad_requests[i].text, rc, bad_requests[i].rc);
		assert_true(http_error_status(rc, true) >= 400);
		assert_int_equal(http_error_status(rc, false), 502);
	}
	assert_int_equal(http_error_status(HTTP_EVERSION, true), 505);
	assert_int_equal(http_error_status(HTTP_EHOST, true), 400);
}

static void test_leading_empty_lines_skipped_in_requests_only(void **state)
{
	http_header h[NHDR];
	http_msg m;

	(void)state;
	assert_int_equal(parse_str(&m, h, "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
	    HTTP_OK);
	assert_int_equal(m.head_len, 6 + 27);
	assert_memory_equal(m.method, "GET", 3);
	assert_int_equal(parse_str(&m, h, "\r\nHTTP/1.1 200 OK\r\n\r\n", false), HTTP_ESYNTAX);
	assert_int_equal(parse_str(&m, h, "\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
	    HTTP_ESYNTAX);
	assert_int_equal(parse_str(&m, h, "\r\n\r\n", true), HTTP_INCOMPLETE);
}

static void test_pipelined_requests_one_after_another(void **state)
{
	static const char in[] =
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nabc\r\n0\r\nChecksum: x\r\n\r\n"
		"\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	static const char *const targets[] = { "/1", "/2", "/3", "/4" };
	http_header h[NHDR];
	http_msg m;
	size_t at = 0, len = sizeof(in) - 1;
	int i;

	(void)state;
	assert_int_equal(http_msg_init(&m, h, NHDR, 0), HTTP_OK);
	for (i = 0; i < 4; i++) {
		http_msg_reset(&m);
		assert_int_equal(http_parse_request(&m, in + at, len - at), HTTP_OK);
		assert_int_equal(m.target_len, 2);
		assert_memory_equal(m.target, targets[i], 2);
		at += m.head_len;
		if (m.body == HTTP_BODY_LENGTH) {
			assert_int_equal(m.content_length, 5);
			assert_memory_equal(in + at, "hello", 5);
			at += m.content_length;
		} else if (m.body == HTTP_BODY_CHUNKED) {
			http_chunked c;
			size_t used;

			http_chunked_init(&c);
			assert_int_equal(http_chunked_scan(&c, in + at, len - at, &used), HTTP_OK);
			assert_int_equal(used, strlen("3\r\nabc\r\n0\r\nChecksum: x\r\n\r\n"));
			at += used;
		}
		assert_int_equal(m.keep_alive, i < 3);
	}
	assert_int_equal(at, len);
}

static void test_head_size_limit(void **state)
{
	char big[HTTP_HEAD_MAX + 64];
	http_header h[NHDR];
	http_msg m;
	size_t pad;

	(void)state;
	/* Exactly HTTP_HEAD_MAX bytes with the final CRLF: accepted; one more: refused. */
	pad = HTTP_HEAD_MAX - strlen("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n");
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n", (int)pad, 0);
	assert_int_equal(strlen(big), HTTP_HEAD_MAX);
	assert_int_equal(parse_str(&m, h, big, true), HTTP_OK);
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n", (int)pad + 1, 0);
	assert_int_equal(parse_str(&m, h, big, true), HTTP_ETOOLARGE);
	assert_int_equal(http_error_status(HTTP_ETOOLARGE, true), 431);
	/* No end in sight: refused as soon as the limit is reached, not before. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	assert_int_equal(http_msg_init(&m, h, NHDR, 0), HTTP_OK);
	assert_int_equal(http_parse_request(&m, big, HTTP_HEAD_MAX - 1), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_request(&m, big, HTTP_HEAD_MAX), HTTP_ETOOLARGE);
	/* A smaller limit of the caller's, checked at every split. */
	assert_int_equal(check_splits("GET / HTTP/1.1\r\nHost: abcdefgh\r\n\r\n", 34, true, 33),
	    HTTP_ETOOLARGE);
	assert_int_equal(check_splits("GET / HTTP/1.1\r\nHost: abcdefgh\r\n\r\n", 34, true, 34),
	    HTTP_OK);
}

static void test_too_many_headers(void **state)
{
	static const char four[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n";
	static const char five[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n";
	http_header h[4];
	http_msg m;

	(void)state;
	assert_int_equal(http_msg_init(&m, h, 4, 0), HTTP_OK);
	assert_int_equal(http_parse_request(&m, four, strlen(four)), HTTP_OK);
	assert_int_equal(m.nheaders, 4);
	http_msg_reset(&m);
	assert_int_equal(http_parse_request(&m, five, strlen(five)), HTTP_ETOOMANY);
	assert_int_equal(http_error_status(HTTP_ETOOMANY, true), 431);
}

struct length_case {
	const char *fields;
	int rc;
	enum http_body body;
	uint64_t length;
};

static void test_content_length_rules(void **state)
{
	static const struct length_case cases[] = {
		{ "Content-Length: 5\r\n", HTTP_OK, HTTP_BODY_LENGTH, 5 },
		{ "Content-Length: 005\r\n", HTTP_OK, HTTP_BODY_LENGTH, 5 },
		{ "Content-Length: 5, 5\r\n", HTTP_OK, HTTP_BODY_LENGTH, 5 },
		{ "Content-Length: 5\r\ncontent-length: 5\r\n", HTTP_OK, HTTP_BODY_LENGTH, 5 },
		{ "Content-Length: 0\r\n", HTTP_OK, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 9223372036854775807\r\n", HTTP_OK, HTTP_BODY_LENGTH,
		  UINT64_C(9223372036854775807) },
		{ "Content-Length: 9223372036854775808\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 99999999999999999999\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 5\r\nContent-Length: 6\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 5, 6\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: -1\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: +5\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 0x5\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: 5 5\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length:\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
		{ "Content-Length: ,\r\n", HTTP_EFRAMING, HTTP_BODY_NONE, 0 },
	};
	char req[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_header h[NHDR];
		http_msg m;
		int rc;

		snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n", cases[i].fields);
		rc = parse_str(&m, h, req, true);
		if (rc != cases[i].rc)
			fail_msg("%s: %d, want %d", cases[i].fields, rc, cases[i].rc);
		if (rc != HTTP_OK)
			continue;
		assert_int_equal(m.body, cases[i].body);
		assert_true(m.content_length == cases[i].length);
		/* The same field in a response frames it the same way (an error is a 502). */
		snprintf(req, sizeof(req), "HTTP/1.1 200 OK\r\n%s\r\n", cases[i].fields);
		assert_int_equal(parse_str(&m, h, req, false), HTTP_OK);
		assert_int_equal(m.body, cases[i].body);
	}
}

struct coding_case {
	const char *fields;
	int req_rc;             /* as a request's fields */
	enum http_body req_body;
	int resp_rc;            /* as an HTTP/1.1 200 response's */
	enum http_body resp_body;
};

static void test_transfer_encoding_rules(void **state)
{
	static const struct coding_case cases[] = {
		{ "Transfer-Encoding: chunked\r\n", HTTP_OK, HTTP_BODY_CHUNKED, HTTP_OK,
		  HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: CHUNKED\r\n", HTTP_OK, HTTP_BODY_CHUNKED, HTTP_OK,
		  HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: gzip, chunked\r\n", HTTP_OK, HTTP_BODY_CHUNKED, HTTP_OK,
		  HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HTTP_OK,
		  HTTP_BODY_CHUNKED, HTTP_OK, HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: ,chunked,\r\n", HTTP_OK, HTTP_BODY_CHUNKED, HTTP_OK,
		  HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: chunked, gzip\r\n", HTTP_EFRAMING, 0, HTTP_OK, HTTP_BODY_EOF },
		{ "Transfer-Encoding: gzip\r\n", HTTP_EFRAMING, 0, HTTP_OK, HTTP_BODY_EOF },
		{ "Transfer-Encoding: x;q=1, chunked\r\n", HTTP_OK, HTTP_BODY_CHUNKED, HTTP_OK,
		  HTTP_BODY_CHUNKED },
		{ "Transfer-Encoding: chunked, chunked\r\n", HTTP_EFRAMING, 0, HTTP_EFRAMING, 0 },
		{ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HTTP_EFRAMING, 0,
		  HTTP_EFRAMING, 0 },
		{ "Transfer-Encoding: chunked;x=1\r\n", HTTP_EFRAMING, 0, HTTP_EFRAMING, 0 },
		{ "Transfer-Encoding: chunkedx\r\n", HTTP_EFRAMING, 0, HTTP_OK, HTTP_BODY_EOF },
		{ "Transfer-Encoding: \"chunked\"\r\n", HTTP_EFRAMING, 0, HTTP_EFRAMING, 0 },
		{ "Transfer-Encoding:\r\n", HTTP_EFRAMING, 0, HTTP_EFRAMING, 0 },
		{ "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", HTTP_EFRAMING, 0,
		  HTTP_EFRAMING, 0 },
	};
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_header h[NHDR];
		http_msg m;
		int rc;

		snprintf(msg, sizeof(msg), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n", cases[i].fields);
		rc = parse_str(&m, h, msg, true);
		if (rc != cases[i].req_rc)
			fail_msg("request %s: %d, want %d", cases[i].fields, rc, cases[i].req_rc);
		if (rc == HTTP_OK)
			assert_int_equal(m.body, cases[i].req_body);
		snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\n%s\r\n", cases[i].fields);
		rc = parse_str(&m, h, msg, false);
		if (rc != cases[i].resp_rc)
			fail_msg("response %s: %d, want %d", cases[i].fields, rc, cases[i].resp_rc);
		if (rc == HTTP_OK) {
			assert_int_equal(m.body, cases[i].resp_body);
			assert_int_equal(m.keep_alive, m.body != HTTP_BODY_EOF);
		}
	}
}

static void test_http10_transfer_encoding(void **state)
{
	http_header h[NHDR];
	http_msg m;

	(void)state;
	assert_int_equal(parse_str(&m, h, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	    true), HTTP_EFRAMING);
	/* A response's faulty framing: read until close (RFC 9112 section 6.1). */
	assert_int_equal(parse_str(&m, h, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", false), HTTP_OK);
	assert_int_equal(m.body, HTTP_BODY_EOF);
	assert_false(m.keep_alive);
}

static void test_connection_persistence(void **state)
{
	static const struct {
		const char *head;
		bool keep_alive, close, ka, upgrade;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false, false, false },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, true, false, false },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, Upgrade\r\n\r\n", true, false,
		  true, true },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: CLOSE\r\n\r\n", false,
		  true, false, false },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true, false, false, false },
		{ "GET / HTTP/1.0\r\n\r\n", false, false, false, false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, true, false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, true, true, false },
		{ "GET / HTTP/1.2\r\nHost: a\r\n\r\n", true, false, false, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_header h[NHDR];
		http_msg m;

		assert_int_equal(parse_str(&m, h, cases[i].head, true), HTTP_OK);
		if (m.keep_alive != cases[i].keep_alive)
			fail_msg("%s: keep_alive %d", cases[i].head, m.keep_alive);
		assert_int_equal(m.conn_close, cases[i].close);
		assert_int_equal(m.conn_keep_alive, cases[i].ka);
		assert_int_equal(m.conn_upgrade, cases[i].upgrade);
	}
}

static void test_host_rules(void **state)
{
	http_header h[NHDR];
	http_msg m;

	(void)state;
	assert_int_equal(parse_str(&m, h, "GET / HTTP/1.1\r\nX: 1\r\nHOST: a:8080\r\n\r\n", true),
	    HTTP_OK);
	assert_ptr_equal(m.host, &h[1]);
	assert_int_equal(parse_str(&m, h, "GET / HTTP/1.0\r\n\r\n", true), HTTP_OK);
	assert_null(m.host);
	assert_int_equal(parse_str(&m, h, "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", true),
	    HTTP_EHOST);
	assert_int_equal(parse_str(&m, h, "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", true),
	    HTTP_EHOST);
	/* Responses carry no Host rule. */
	assert_int_equal(parse_str(&m, h, "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n", false),
	    HTTP_OK);
	assert_null(m.host);
}

static void test_response_framing(void **state)
{
	static const struct {
		const char *head;
		bool head_request;
		int rc;
		enum http_body body;
		bool keep_alive;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false, HTTP_OK, HTTP_BODY_LENGTH,
		  true },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, HTTP_OK, HTTP_BODY_NONE,
		  true },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, HTTP_OK,
		  HTTP_BODY_NONE, true },
		{ "HTTP/1.1 100 Continue\r\n\r\n", false, HTTP_OK, HTTP_BODY_NONE, true },
		{ "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 4\r\n\r\n", false, HTTP_OK,
		  HTTP_BODY_NONE, true },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n", false, HTTP_OK,
		  HTTP_BODY_NONE, true },
		{ "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, HTTP_OK,
		  HTTP_BODY_NONE, true },
		{ "HTTP/1.1 200 OK\r\n\r\n", false, HTTP_OK, HTTP_BODY_EOF, false },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, HTTP_OK, HTTP_BODY_NONE,
		  true },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, HTTP_OK, HTTP_BODY_LENGTH,
		  false },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false,
		  HTTP_OK, HTTP_BODY_LENGTH, true },
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false, HTTP_OK,
		  HTTP_BODY_LENGTH, false },
		{ "HTTP/1.1 200\r\n\r\n", true, HTTP_OK, HTTP_BODY_NONE, true },
		{ "HTTP/1.1 099 x\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/1.1 600 x\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/1.1 2000 OK\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/1.1 20 OK\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/1.1  200 OK\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/1.1 200 O\x01K\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "HTTP/2.0 200 OK\r\n\r\n", false, HTTP_EVERSION, 0, false },
		{ "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
		{ "ICY 200 OK\r\n\r\n", false, HTTP_ESYNTAX, 0, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_header h[NHDR];
		http_msg m;
		int rc;

		assert_int_equal(http_msg_init(&m, h, NHDR, 0), HTTP_OK);
		rc = http_parse_response(&m, cases[i].head, strlen(cases[i].head),
		    cases[i].head_request);
		if (rc != cases[i].rc)
			fail_msg("%s: %d, want %d", cases[i].head, rc, cases[i].rc);
		if (rc != HTTP_OK)
			continue;
		if (m.body != cases[i].body || m.keep_alive != cases[i].keep_alive)
			fail_msg("%s: body %d keep_alive %d", cases[i].head, (int)m.body, m.keep_alive);
	}
}

static void test_status_line_fields(void **state)
{
	http_header h[NHDR];
	http_msg m;

	(void)state;
	assert_int_equal(parse_str(&m, h, "HTTP/1.1 503 Service  Unavailable\r\n\r\n", false),
	    HTTP_OK);
	assert_int_equal(m.status, 503);
	assert_int_equal(m.reason_len, 20);
	assert_memory_equal(m.reason, "Service  Unavailable", 20);
	assert_null(m.method);
	assert_int_equal(parse_str(&m, h, "HTTP/1.1 200\r\n\r\n", false), HTTP_OK);
	assert_int_equal(m.reason_len, 0);
	assert_int_equal(m.status, 200);
}

static void test_find_and_lists(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n"
	                          "Connection: keep-alive,  Foo ,,bar\r\n\r\n";
	http_header h[NHDR];
	http_msg m;
	const http_header *x;

	(void)state;
	assert_int_equal(parse_str(&m, h, req, true), HTTP_OK);
	x = http_find(&m, "x-a", 0);
	assert_non_null(x);
	assert_memory_equal(x->value, "1", 1);
	x = http_find(&m, "X-A", 1);
	assert_non_null(x);
	assert_memory_equal(x->value, "2", 1);
	assert_null(http_find(&m, "x-a", 2));
	assert_null(http_find(&m, "x-", 0));
	x = http_find(&m, "connection", 0);
	assert_true(http_list_has(x->value, x->value_len, "foo"));
	assert_true(http_list_has(x->value, x->value_len, "BAR"));
	assert_true(http_list_has(x->value, x->value_len, "keep-alive"));
	assert_false(http_list_has(x->value, x->value_len, "keep"));
	assert_false(http_list_has(x->value, x->value_len, ""));
	assert_false(http_list_has(NULL, 0, "x"));
}

static void test_bad_arguments(void **state)
{
	http_header h[2];
	http_msg m;
	http_chunked c;
	size_t used = 7, data;
	char out[64];

	(void)state;
	assert_int_equal(http_msg_init(NULL, h, 2, 0), HTTP_EINVAL);
	assert_int_equal(http_msg_init(&m, NULL, 2, 0), HTTP_EINVAL);
	assert_int_equal(http_msg_init(&m, h, 0, 0), HTTP_EINVAL);
	assert_int_equal(http_msg_init(&m, h, 2, 0), HTTP_OK);
	assert_int_equal(m.max_head, HTTP_HEAD_MAX);
	assert_int_equal(http_parse_request(NULL, "x", 1), HTTP_EINVAL);
	assert_int_equal(http_parse_request(&m, NULL, 1), HTTP_EINVAL);
	assert_int_equal(http_parse_request(&m, NULL, 0), HTTP_INCOMPLETE);
	assert_int_equal(http_chunked_scan(NULL, "0", 1, &used), HTTP_EINVAL);
	assert_int_equal(used, 0);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_scan(&c, "0", 1, NULL), HTTP_EINVAL);
	assert_int_equal(http_chunked_decode(&c, out, 1, &used, NULL), HTTP_EINVAL);
	assert_int_equal(http_chunked_decode(&c, NULL, 1, &used, &data), HTTP_EINVAL);
	assert_int_equal(http_forward_head(&m, NULL, out, sizeof(out), &used), HTTP_EINVAL);
	{
		http_forward f = HTTP_FORWARD_INIT;

		/* A message never parsed: nothing to forward. */
		assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &used), HTTP_EINVAL);
	}
	assert_int_equal(http_simple_response(99, false, out, sizeof(out), &used), HTTP_EINVAL);
	assert_int_equal(http_error_status(HTTP_OK, true), 500);
	assert_int_equal(http_error_status(HTTP_ESPACE, false), 500);
	assert_string_equal(http_strerror(HTTP_ECHUNK), "malformed chunked body");
	assert_string_equal(http_strerror(42), "unknown error");
}

/* ---- chunked bodies ------------------------------------------------------------------------- */

static const char chunked_body[] =
	"5\r\nhello\r\n"
	"6;name=value;x=\"q;\"\r\n world\r\n"
	"A  ; y\r\n0123456789\r\n"
	"000\r\n"
	"Checksum: abc\r\nX-T:\r\n"
	"\r\n";

/* Scans s[0..len) in pieces that end at the given cut points (ascending, < len). */
static int scan_pieces(const char *s, size_t len, const size_t *cuts, size_t ncuts,
    size_t *total, char *decoded, size_t *dlen)
{
	http_chunked c, d;
	size_t at = 0, i;
	int rc = HTTP_INCOMPLETE;

	http_chunked_init(&c);
	http_chunked_init(&d);
	*total = 0;
	*dlen = 0;
	for (i = 0; i <= ncuts && rc == HTTP_INCOMPLETE; i++) {
		size_t end = i < ncuts ? cuts[i] : len, used, used2, data;
		char *p = copy_of(s + at, end - at);
		int rc2;

		rc = http_chunked_scan(&c, p, end - at, &used);
		assert_memory_equal(p, s + at, end - at);       /* the scan changes nothing */
		rc2 = http_chunked_decode(&d, p, end - at, &used2, &data);
		assert_int_equal(rc2, rc);
		assert_int_equal(used2, used);
		memcpy(decoded + *dlen, p, data);
		*dlen += data;
		*total += used;
		if (rc == HTTP_INCOMPLETE)
			assert_int_equal(used, end - at);
		free(p);
		at = end;
	}
	assert_int_equal(http_chunked_done(&c), rc == HTTP_OK);
	return rc;
}

static void test_chunked_every_split_point(void **state)
{
	char in[256], out[256];
	size_t body = sizeof(chunked_body) - 1, len, i, j, total, dlen;

	(void)state;
	/* The body, then the start of the next message: the scan stops exactly at the end. */
	len = (size_t)snprintf(in, sizeof(in), "%sGET / HTTP/1.1\r\n", chunked_body);
	assert_int_equal(scan_pieces(in, len, NULL, 0, &total, out, &dlen), HTTP_OK);
	assert_int_equal(total, body);
	assert_int_equal(dlen, 21);
	assert_memory_equal(out, "hello world0123456789", 21);
	for (i = 1; i < len; i++) {
		assert_int_equal(scan_pieces(in, len, &i, 1, &total, out, &dlen), HTTP_OK);
		assert_int_equal(total, body);
		assert_memory_equal(out, "hello world0123456789", 21);
		for (j = i + 1; j < len; j += 7) {
			size_t cuts[2] = { i, j };

			assert_int_equal(scan_pieces(in, len, cuts, 2, &total, out, &dlen), HTTP_OK);
			assert_int_equal(total, body);
			assert_int_equal(dlen, 21);
		}
	}
	/* Byte by byte. */
	{
		size_t cuts[sizeof(in)];

		for (i = 0; i + 1 < len; i++)
			cuts[i] = i + 1;
		assert_int_equal(scan_pieces(in, len, cuts, len - 1, &total, out, &dlen), HTTP_OK);
		assert_int_equal(total, body);
		assert_memory_equal(out, "hello world0123456789", 21);
	}
	/* Any prefix of the body is incomplete. */
	for (i = 0; i < body; i++)
		assert_int_equal(scan_pieces(in, i, NULL, 0, &total, out, &dlen), HTTP_INCOMPLETE);
}

static void test_chunked_done_stays_done(void **state)
{
	http_chunked c;
	size_t used;

	(void)state;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_scan(&c, "0\r\n\r\n", 5, &used), HTTP_OK);
	assert_int_equal(used, 5);
	assert_int_equal(http_chunked_scan(&c, "more", 4, &used), HTTP_OK);
	assert_int_equal(used, 0);
	assert_true(http_chunked_done(&c));
}

static void test_chunked_bad_bodies(void **state)
{
	static const struct {
		const char *text;
		size_t bad_at;          /* where the scan stops: the first byte that is wrong */
	} cases[] = {
		{ "\r\n", 0 },                          /* no size */
		{ "g\r\n", 0 },
		{ "-1\r\n", 0 },
		{ "0x5\r\n", 1 },
		{ "5\nhello\r\n", 1 },                  /* LF without CR */
		{ "5\r\r\nhello", 2 },
		{ "5\r\nhelloX\r\n", 8 },               /* data longer than its size */
		{ "5\r\nhello\r\r", 9 },
		{ "5\r\nhello\n0\r\n\r\n", 8 },
		{ "5 6\r\nhello\r\n", 2 },              /* a second number after whitespace */
		{ "5;a\x01\r\n", 3 },                   /* a control in an extension */
		{ "5;a\nb\r\n", 3 },
		{ "10000000000000000\r\n", 16 },        /* 17 hex digits: over 64 bits */
		{ "0\r\n\n", 3 },
		{ "0\r\n x: 1\r\n\r\n", 3 },            /* obs-fold in the trailer */
		{ "0\r\nNoColon\r\n\r\n", 10 },
		{ "0\r\nX: a\x01\r\n\r\n", 7 },
		{ "0\r\nX: 1\r\r\n", 8 },
		{ "0\r\n\r\r", 4 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i].text;
		size_t len = strlen(s), used, k, data;
		http_chunked c;
		char buf[64];

		http_chunked_init(&c);
		if (http_chunked_scan(&c, s, len, &used) != HTTP_ECHUNK || used != cases[i].bad_at)
			fail_msg("case %zu: used %zu, want an error at %zu", i, used, cases[i].bad_at);
		assert_int_equal(http_chunked_scan(&c, "0\r\n\r\n", 5, &used), HTTP_ECHUNK);
		assert_int_equal(used, 0);
		assert_false(http_chunked_done(&c));
		/* The same error at the same byte when the body comes one byte at a time. */
		http_chunked_init(&c);
		for (k = 0; k < len; k++) {
			memcpy(buf, s + k, 1);
			if (http_chunked_decode(&c, buf, 1, &used, &data) != HTTP_INCOMPLETE)
				break;
		}
		if (k != cases[i].bad_at || used != 0)
			fail_msg("case %zu byte by byte: failed at %zu", i, k);
	}
}

static void test_chunked_line_and_trailer_limits(void **state)
{
	static char line[HTTP_CHUNK_LINE_MAX + 16], trailer[HTTP_TRAILER_MAX + 16];
	http_chunked c;
	size_t used;

	(void)state;
	/* The size line counts its CR: HTTP_CHUNK_LINE_MAX bytes before the LF pass. */
	memset(line, 'a', sizeof(line));
	line[0] = '1';
	line[1] = ';';
	line[HTTP_CHUNK_LINE_MAX - 1] = '\r';
	line[HTTP_CHUNK_LINE_MAX] = '\n';
	http_chunked_init(&c);
	assert_int_equal(http_chunked_scan(&c, line, HTTP_CHUNK_LINE_MAX + 1, &used),
	    HTTP_INCOMPLETE);
	line[HTTP_CHUNK_LINE_MAX - 1] = 'a';
	line[HTTP_CHUNK_LINE_MAX] = '\r';
	http_chunked_init(&c);
	assert_int_equal(http_chunked_scan(&c, line, HTTP_CHUNK_LINE_MAX + 1, &used), HTTP_ECHUNK);
	assert_int_equal(used, HTTP_CHUNK_LINE_MAX);
	/* A trailer section larger than HTTP_TRAILER_MAX. */
	memset(trailer, 'x', sizeof(trailer));
	memcpy(trailer, "0\r\nX: ", 6);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_scan(&c, trailer, sizeof(trailer), &used), HTTP_ECHUNK);
	assert_int_equal(used, 3 + HTTP_TRAILER_MAX);
}

/* ---- forwarding ----------------------------------------------------------------------------- */

static void test_forward_request_drops_hop_by_hop(void **state)
{
	static const char req[] =
		"GET /p HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Secret, content-length, "
		"Host\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nTE: trailers\r\nUpgrade: h2c\r\n"
		"Proxy-Connection: close\r\nX-Forwarded-For: 10.0.0.1\r\nAccept:  */*\r\n"
		"x-forwarded-for: 10.0.0.2\r\nContent-Length: 2\r\n\r\nhi";
	static const char want[] =
		"GET /p HTTP/1.1\r\nHost: svc\r\nAccept:  */*\r\nContent-Length: 2\r\n"
		"X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nVia: 1.1 strix\r\n\r\n";
	http_forward f = HTTP_FORWARD_INIT;
	http_header h[NHDR];
	http_msg m;
	char out[512];
	size_t len, cap;

	(void)state;
	assert_int_equal(parse_str(&m, h, req, true), HTTP_OK);
	f.client = "127.0.0.1";
	f.extra = "Via: 1.1 strix\r\n";
	assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &len), HTTP_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	/* Exactly enough room is enough; one byte less is not. */
	for (cap = 0; cap < len; cap++)
		assert_int_equal(http_forward_head(&m, &f, out, cap, &len), HTTP_ESPACE);
	assert_int_equal(http_forward_head(&m, &f, out, cap, &len), HTTP_OK);
	/* What was forwarded parses, as the upstream will parse it. */
	{
		http_header h2[NHDR];
		http_msg m2;

		assert_int_equal(parse_str(&m2, h2, want, true), HTTP_OK);
		assert_int_equal(m2.body, HTTP_BODY_LENGTH);
		assert_int_equal(m2.content_length, 2);
	}
}

static void test_forward_http10_request_and_options(void **state)
{
	static const char req[] = "POST /q HTTP/1.0\r\nConnection: keep-alive\r\n"
	                          "X-Forwarded-For: 1.2.3.4\r\nContent-Length: 0\r\n\r\n";
	static const char want[] = "POST /q HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n"
	                           "Host: up:80\r\nConnection: close\r\n\r\n";
	static const char want2[] = "POST /q HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n"
	                            "Content-Length: 0\r\nHost: \r\n\r\n";
	http_forward f = HTTP_FORWARD_INIT;
	http_header h[NHDR];
	http_msg m;
	char out[256];
	size_t len;

	(void)state;
	assert_int_equal(parse_str(&m, h, req, true), HTTP_OK);
	f.host = "up:80";
	f.connection = HTTP_CONN_CLOSE;
	f.drop_framing = true;
	assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &len), HTTP_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	f = (http_forward)HTTP_FORWARD_INIT;
	assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &len), HTTP_OK);
	assert_int_equal(len, strlen(want2));
	assert_memory_equal(out, want2, len);
}

static void test_forward_response(void **state)
{
	static const char resp[] = "HTTP/1.0 200 Fine\r\nConnection: keep-alive, X-Hop\r\n"
	                           "X-Hop: 1\r\nTransfer-Encoding: chunked\r\nServer: up\r\n\r\n";
	static const char want[] = "HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n"
	                           "Server: up\r\nConnection: keep-alive\r\n\r\n";
	http_forward f = HTTP_FORWARD_INIT;
	http_header h[NHDR];
	http_msg m;
	char out[256];
	size_t len;

	(void)state;
	assert_int_equal(parse_str(&m, h, resp, false), HTTP_OK);
	f.connection = HTTP_CONN_KEEP_ALIVE;
	f.client = NULL;
	assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &len), HTTP_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	assert_int_equal(parse_str(&m, h, "HTTP/1.1 204\r\n\r\n", false), HTTP_OK);
	assert_int_equal(http_forward_head(&m, &f, out, sizeof(out), &len), HTTP_OK);
	assert_int_equal(len, strlen("HTTP/1.1 204 \r\nConnection: keep-alive\r\n\r\n"));
	assert_memory_equal(out, "HTTP/1.1 204 \r\nConnection: keep-alive\r\n\r\n", len);
}

static void test_simple_responses_parse_back(void **state)
{
	static const int statuses[] = { 100, 200, 204, 400, 431, 502, 503, 504, 599 };
	size_t i, len;
	char out[256];

	(void)state;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		http_header h[NHDR];
		http_msg m;

		assert_int_equal(http_simple_response(statuses[i], i % 2 == 0, out, sizeof(out), &len),
		    HTTP_OK);
		assert_int_equal(http_msg_init(&m, h, NHDR, 0), HTTP_OK);
		assert_int_equal(http_parse_response(&m, out, len, false), HTTP_OK);
		assert_int_equal(m.status, statuses[i]);
		assert_int_equal(m.keep_alive, i % 2 != 0);
		assert_int_equal(m.head_len + m.content_length, len);
		assert_int_equal(http_simple_response(statuses[i], i % 2 == 0, out, len - 1, &len),
		    HTTP_ESPACE);
	}
	assert_string_equal(http_reason(502), "Bad Gateway");
	assert_string_equal(http_reason(299), "Unknown");
}

/* ---- randomized: pieces against the whole --------------------------------------------------- */

static uint64_t rnd(uint64_t *s, uint64_t n)
{
	return tu_rand(s) % n;
}

/* A random message head from pieces that are valid, odd or wrong, then a little of what follows. */
static size_t random_head(uint64_t *s, char *out, size_t cap, bool request)
{
	static const char *const methods[] = { "GET", "POST", "HEAD", "PUT", "G T", "" };
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0",
	                                        "HTTP/1.", "HTTP/1.1 " };
	static const char *const fields[] = {
		"Host: a", "Host: b:80", "Content-Length: 3", "Content-Length: 3, 3",
		"Content-Length: 4", "Content-Length: x", "Transfer-Encoding: chunked",
		"Transfer-Encoding: gzip", "Connection: close", "Connection: keep-alive, X-A",
		"X-A: 1", "X-Forwarded-For: 10.1.1.1", "Expect: 100-continue", "Empty:",
		"Spaces:   v  ", "Bad Name: v", "Fold: a\r\n b", "Bare: a\nb", "Cr: a\rb",
		"Obs: caf\xc3\xa9", "Ctl: \x01", "Upgrade: h2c", "TE: trailers", ":nameless",
	};
	static const char *const statuses[] = { "200 OK", "204 No Content", "304 Not Modified",
	                                        "100 Continue", "503 Service Unavailable", "200",
	                                        "99 x", "2000 x" };
	size_t n = 0, i, nf = rnd(s, 8);

#define ADD(...) (n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__))
	if (request) {
		if (rnd(s, 4) == 0)
			ADD("\r\n");
		ADD("%s /%llu %s\r\n", methods[rnd(s, 6)], (unsigned long long)rnd(s, 1000),
		    versions[rnd(s, 100) < 90 ? rnd(s, 2) : rnd(s, 6)]);
	} else {
		ADD("%s %s\r\n", versions[rnd(s, 100) < 90 ? rnd(s, 2) : rnd(s, 6)],
		    statuses[rnd(s, 100) < 90 ? rnd(s, 6) : rnd(s, 8)]);
	}
	for (i = 0; i < nf; i++)
		ADD("%s\r\n", fields[rnd(s, 100) < 80 ? rnd(s, 15) : rnd(s, 24)]);
	ADD("\r\nabc");
#undef ADD
	assert_true(n < cap);
	/* Now and then a byte changed at random. */
	if (rnd(s, 5) == 0)
		out[rnd(s, n)] = (char)rnd(s, 256);
	return n;
}

static void test_random_heads_in_pieces_parse_as_whole(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15u;
	unsigned iter, ok = 0, bad = 0;
	char msg[1024];

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		bool request = iter % 2 == 0;
		size_t len = random_head(&seed, msg, sizeof(msg), request), k = 0;
		uint32_t limit = rnd(&seed, 8) == 0 ? (uint32_t)(16 + rnd(&seed, len)) : 0;
		http_header h1[NHDR], h2[NHDR];
		http_msg whole, part;
		char want[8192], got[8192];
		int rc, r = HTTP_INCOMPLETE;

		assert_int_equal(http_msg_init(&whole, h1, NHDR, limit), HTTP_OK);
		rc = parse(&whole, msg, len, request);
		describe(&whole, msg, rc, want, sizeof(want));
		rc == HTTP_OK ? ok++ : bad++;
		/* The same bytes arriving in random pieces, each call with everything so far. */
		assert_int_equal(http_msg_init(&part, h2, NHDR, limit), HTTP_OK);
		while (r == HTTP_INCOMPLETE && k < len) {
			char *p;

			k += 1 + rnd(&seed, rnd(&seed, 4) == 0 ? 64 : 8);
			if (k > len)
				k = len;
			p = copy_of(msg, k);
			r = parse(&part, p, k, request);
			if (r != HTTP_INCOMPLETE || k == len) {
				describe(&part, p, r, got, sizeof(got));
				if (strcmp(want, got) != 0)
					fail_msg("iteration %u, %zu of %zu bytes:\n%.*s\npieces: %s\n"
					    "whole: %s", iter, k, len, (int)len, msg, got, want);
			}
			free(p);
		}
	}
	/* Both kinds of outcome were exercised in numbers. */
	assert_true(ok > 2000);
	assert_true(bad > 2000);
}

/* A random chunked body (sizes, extensions, trailers), its data in data, then "NEXT". */
static size_t random_chunked(uint64_t *s, char *out, size_t cap, char *data, size_t *dlen)
{
	size_t n = 0, chunks = rnd(s, 6), i, j;

#define ADD(...) (n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__))
	*dlen = 0;
	for (i = 0; i < chunks; i++) {
		size_t size = 1 + rnd(s, rnd(s, 4) == 0 ? 300 : 20);

		ADD(rnd(s, 2) ? "%zx" : "%zX", size);
		if (rnd(s, 3) == 0)
			ADD(rnd(s, 2) ? ";ext=%llu" : " ; e", (unsigned long long)rnd(s, 99));
		ADD("\r\n");
		for (j = 0; j < size; j++) {
			char c = (char)rnd(s, 256);

			data[(*dlen)++] = c;
			if (n < cap)
				out[n] = c;
			n++;
		}
		ADD("\r\n");
	}
	ADD(rnd(s, 2) ? "0\r\n" : "00;last\r\n");
	if (rnd(s, 3) == 0)
		ADD("X-Sum: %llu\r\n", (unsigned long long)rnd(s, 1000));
	ADD("\r\nNEXT");
#undef ADD
	assert_true(n < cap);
	return n;
}

static void test_random_chunked_in_pieces_scan_as_whole(void **state)
{
	static char body[4096], data[4096], decoded[4096];
	uint64_t seed = 12345;
	unsigned iter;

	(void)state;
	for (iter = 0; iter < 5000; iter++) {
		size_t dlen, len = random_chunked(&seed, body, sizeof(body), data, &dlen);
		size_t cuts[64], ncuts = 0, total, got, at = 0;
		bool corrupt = rnd(&seed, 4) == 0;
		http_chunked c;
		size_t whole_used;
		int whole, rc;

		if (corrupt)
			body[rnd(&seed, len - 4)] ^= (char)(1u << rnd(&seed, 8));
		http_chunked_init(&c);
		whole = http_chunked_scan(&c, body, len, &whole_used);
		while (ncuts < 64) {
			at += 1 + rnd(&seed, 40);
			if (at >= len)
				break;
			cuts[ncuts++] = at;
		}
		rc = scan_pieces(body, len, cuts, ncuts, &total, decoded, &got);
		if (rc != whole || total != whole_used)
			fail_msg("iteration %u: pieces %d at %zu, whole %d at %zu", iter, rc, total,
			    whole, whole_used);
		if (!corrupt) {
			assert_int_equal(whole, HTTP_OK);
			assert_int_equal(whole_used, len - 4);
			assert_int_equal(got, dlen);
			assert_memory_equal(decoded, data, dlen);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_head_fields),
		cmocka_unit_test(test_every_split_point_of_valid_heads),
		cmocka_unit_test(test_every_split_point_of_bad_heads),
		cmocka_unit_test(test_leading_empty_lines_skipped_in_requests_only),
		cmocka_unit_test(test_pipelined_requests_one_after_another),
		cmocka_unit_test(test_head_size_limit),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_content_length_rules),
		cmocka_unit_test(test_transfer_encoding_rules),
		cmocka_unit_test(test_http10_transfer_encoding),
		cmocka_unit_test(test_connection_persistence),
		cmocka_unit_test(test_host_rules),
		cmocka_unit_test(test_response_framing),
		cmocka_unit_test(test_status_line_fields),
		cmocka_unit_test(test_find_and_lists),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_chunked_every_split_point),
		cmocka_unit_test(test_chunked_done_stays_done),
		cmocka_unit_test(test_chunked_bad_bodies),
		cmocka_unit_test(test_chunked_line_and_trailer_limits),
		cmocka_unit_test(test_forward_request_drops_hop_by_hop),
		cmocka_unit_test(test_forward_http10_request_and_options),
		cmocka_unit_test(test_forward_response),
		cmocka_unit_test(test_simple_responses_parse_back),
		cmocka_unit_test(test_random_heads_in_pieces_parse_as_whole),
		cmocka_unit_test(test_random_chunked_in_pieces_scan_as_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
