/*
 * HTTP/1.1 message heads and body framing for a reverse proxy (RFC 9110, RFC 9112).
 *
 * Pure C11, no allocation: the caller gives the buffer that holds the bytes received and the
 * array the header lines are indexed into; everything the parser returns points into that buffer.
 * Nothing here reads or writes a socket, so the same code serves the proxy, its test upstream and
 * the unit tests.
 *
 * What it does:
 *   - http_parse_request / http_parse_response: one message head from the start of a buffer that
 *     may hold only part of it (HTTP_INCOMPLETE: call again with the same bytes and more after
 *     them; the scan resumes where it stopped, so a head that arrives byte by byte costs linear
 *     time, not quadratic). On HTTP_OK the head's length, the start line, the header lines and
 *     the body's framing (RFC 9112 section 6.3) are filled in; the bytes after the head belong to
 *     the body or to the next pipelined message and are not looked at.
 *   - http_chunked_scan / http_chunked_decode: where a chunked body ends, across any number of
 *     buffers (the state lives in a small struct), passing the bytes through unchanged or
 *     keeping only the data.
 *   - http_forward_head: the head to forward, with the proxy's own HTTP version, the hop-by-hop
 *     fields removed (RFC 9110 section 7.6.1) and X-Forwarded-For / Connection written.
 *
 * Strictness, on purpose, because a proxy and the server behind it must never disagree about
 * where a message ends (request smuggling): lines end in CRLF (a bare CR or LF is an error, not a
 * line end); no whitespace between a field name and its colon; no obs-fold; one SP between the
 * parts of a request line; Content-Length values all equal and decimal; a request with both
 * Content-Length and Transfer-Encoding, or Transfer-Encoding on HTTP/1.0, is refused; chunked
 * must be the last transfer coding and appear once. Empty lines before a request line are skipped
 * (RFC 9112 section 2.2).
 *
 * Return codes: HTTP_OK (0), HTTP_INCOMPLETE (positive: not an error, more bytes are needed) or
 * one of the negative HTTP_E* codes; http_error_status maps a code to the status a proxy answers
 * with. Every function may be called from any thread; a message or chunked state is used by one
 * thread at a time.
 */
#ifndef STRIX_EXAMPLES_PROXY_HTTP_H
#define STRIX_EXAMPLES_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX       16384u  /* default limit on a head (leading empty lines included) */
#define HTTP_CHUNK_LINE_MAX 4096u   /* a chunk-size line, extensions included, without CRLF */
#define HTTP_TRAILER_MAX    16384u  /* a chunked body's trailer section */

enum {
	HTTP_OK = 0,
	HTTP_INCOMPLETE = 1,     /* not an error: the head (or body) goes on past the bytes given */
	HTTP_ETOOLARGE = -1,     /* no end of head within the limit: 431 (request), 502 (response) */
	HTTP_ETOOMANY = -2,      /* more header lines than the caller's array: 431 / 502 */
	HTTP_ESYNTAX = -3,       /* a malformed start line or field line: 400 / 502 */
	HTTP_EVERSION = -4,      /* a version other than HTTP/1.x: 505 / 502 */
	HTTP_EFRAMING = -5,      /* the body's length cannot be told for sure: Content-Length
	                          * invalid, conflicting or beside Transfer-Encoding; chunked applied
	                          * twice, or (a request) not the last coding; Transfer-Encoding on
	                          * an HTTP/1.0 request: 400 / 502 */
	HTTP_EHOST = -6,         /* an HTTP/1.1 request without Host, or with more than one: 400 */
	HTTP_ECHUNK = -7,        /* a malformed chunked body: 400 / 502 */
	HTTP_ESPACE = -8,        /* http_forward_head: the output buffer is too small */
	HTTP_EINVAL = -9         /* a bad argument (NULL, a zero-sized array) */
};

/* How the body that follows a head is delimited (RFC 9112 section 6.3). */
enum http_body {
	HTTP_BODY_NONE = 0,      /* no body: the next message starts right after the head */
	HTTP_BODY_LENGTH,        /* exactly http_msg.content_length bytes (> 0) */
	HTTP_BODY_CHUNKED,       /* chunked: feed the bytes to http_chunked_scan */
	HTTP_BODY_EOF            /* a response read until the server closes (never persistent) */
};

/* One field line, as received: name and value point into the parser's buffer. */
typedef struct http_header {
	const char *name;        /* the field name (case as sent; compare case-insensitively) */
	const char *value;       /* the value, leading and trailing whitespace left out */
	uint32_t name_len;
	uint32_t value_len;
	uint32_t line_len;       /* the whole line from name, CRLF included (verbatim forwarding) */
} http_header;

/*
 * One message head. http_msg_init sets the caller's storage and limits; http_msg_reset makes it
 * ready for the next message on the same connection (pipelining) and keeps them. The results are
 * valid after HTTP_OK, as long as the buffer the head was parsed from holds it unchanged (between
 * HTTP_INCOMPLETE calls the buffer may move: only its bytes matter). Fields marked "request" or
 * "response" are zero in the other kind.
 */
typedef struct http_msg {
	/* storage and limits (http_msg_init) */
	http_header *headers;
	uint32_t max_headers;
	uint32_t max_head;

	/* the head */
	uint32_t head_len;       /* bytes from the buffer's start to the end of the empty line */
	uint32_t nheaders;
	const char *method;      /* request: the method token */
	const char *target;      /* request: the request-target */
	const char *reason;      /* response: the reason phrase (may be empty) */
	uint32_t method_len;
	uint32_t target_len;
	uint32_t reason_len;
	int status;              /* response: 100..599 */
	int minor;               /* 0 for HTTP/1.0, 1 for HTTP/1.1 (and any later 1.x, read as 1.1) */
	const http_header *host; /* request: the Host line (NULL: none, only on HTTP/1.0) */

	/* what the fields say */
	enum http_body body;
	uint64_t content_length; /* HTTP_BODY_LENGTH: the body's length */
	bool keep_alive;         /* the connection may carry another message after this one */
	bool conn_close;         /* Connection lists close */
	bool conn_keep_alive;    /* Connection lists keep-alive */
	bool conn_upgrade;       /* Connection lists upgrade */
	bool expect_continue;    /* request: Expect: 100-continue */
	bool head_method;        /* request: the method is HEAD (its response has no body) */

	/* the scan's resume point (private) */
	uint32_t scan_;
	uint32_t line_;
	uint32_t lead_;
} http_msg;

/*
 * Gives m its header array (max_headers entries, > 0) and head limit (0: HTTP_HEAD_MAX) and
 * resets it. HTTP_OK, or HTTP_EINVAL (m unchanged) for a NULL m or headers or max_headers 0.
 */
int http_msg_init(http_msg *m, http_header *headers, uint32_t max_headers, uint32_t max_head);

/* Forgets the last message (results and scan state), keeps the storage and limits. */
void http_msg_reset(http_msg *m);

/*
 * Parses a request head from the first len bytes of buf (which must start where the message, or
 * the empty lines before it, starts). HTTP_OK: m holds the head, its length is m->head_len and
 * the body (m->body, m->content_length) follows. HTTP_INCOMPLETE: no end of head yet; call again
 * with the same bytes and more (len only grows). Otherwise the error, the same whatever the split
 * of the bytes into calls: HTTP_ETOOLARGE, HTTP_ETOOMANY, HTTP_ESYNTAX, HTTP_EVERSION,
 * HTTP_EFRAMING, HTTP_EHOST (HTTP_EINVAL for a NULL argument). Never blocks.
 */
int http_parse_request(http_msg *m, const char *buf, size_t len);

/*
 * The same for a response head, to a request that was a HEAD request when head_request is true
 * (its response has no body whatever its fields say). A 1xx response is interim: its head has no
 * body and the final response follows on the same connection.
 */
int http_parse_response(http_msg *m, const char *buf, size_t len, bool head_request);

/* The n-th (0-based) field line named name (case-insensitive), or NULL when there are fewer. */
const http_header *http_find(const http_msg *m, const char *name, unsigned n);

/* Whether the comma-separated list value[0..len) has the element token (case-insensitive). */
bool http_list_has(const char *value, size_t len, const char *token);

/* ---- chunked bodies ------------------------------------------------------------------------- */

typedef struct http_chunked {
	uint64_t left;           /* data bytes left in the current chunk */
	uint32_t line;           /* bytes of the current size line so far */
	uint32_t trailer;        /* bytes of the trailer section so far */
	int state;
} http_chunked;

/* Ready to scan a new chunked body. */
void http_chunked_init(http_chunked *c);

/*
 * Scans the next len bytes of a chunked body (the bytes after the head, then whatever follows
 * them). Sets *used to the bytes that belong to the body, then returns: HTTP_OK, the body ended
 * with the last of them (the next message starts at buf + *used; later calls return HTTP_OK with
 * *used 0); HTTP_INCOMPLETE, all len bytes are body and it goes on; HTTP_ECHUNK, the body is
 * malformed (*used: the bytes before the first bad one; every later call fails too). The bytes
 * are not changed: a proxy forwards them as they came.
 */
int http_chunked_scan(http_chunked *c, const char *buf, size_t len, size_t *used);

/*
 * http_chunked_scan that also decodes: the chunks' data bytes among the *used bytes are moved,
 * in order, to the front of buf (*data of them), dropping sizes, extensions and trailers. For a
 * proxy that answers an HTTP/1.0 client, which cannot read chunked, with a body read until close.
 */
int http_chunked_decode(http_chunked *c, char *buf, size_t len, size_t *used, size_t *data);

/* Whether the body is complete (the last chunk and the trailer section have been read). */
bool http_chunked_done(const http_chunked *c);

/* ---- forwarding ----------------------------------------------------------------------------- */

enum http_conn_field {
	HTTP_CONN_NONE = 0,      /* write no Connection field (HTTP/1.1: persistent) */
	HTTP_CONN_CLOSE,         /* Connection: close */
	HTTP_CONN_KEEP_ALIVE     /* Connection: keep-alive (for an HTTP/1.0 peer) */
};

typedef struct http_forward {
	const char *client;      /* the client's address, appended to X-Forwarded-For (all received
	                          * X-Forwarded-For lines merged into one before it); NULL: the
	                          * received ones are forwarded untouched */
	const char *host;        /* the Host value written when a request has none (HTTP/1.0);
	                          * NULL: an empty Host */
	const char *extra;       /* complete field lines, each ending in CRLF, written as they are
	                          * (e.g. "Via: 1.1 strix\r\n"); NULL: none */
	int connection;          /* an enum http_conn_field */
	bool drop_framing;       /* leave out Content-Length and Transfer-Encoding (the caller
	                          * re-frames the body, e.g. decoded and read until close) */
} http_forward;

#define HTTP_FORWARD_INIT { NULL, NULL, NULL, HTTP_CONN_NONE, false }

/*
 * Writes m's head as a proxy forwards it into out[0..cap): the start line with HTTP/1.1 as the
 * version (a request: method, target; a response: status, reason), then every field line as
 * received except the hop-by-hop ones: Connection, Keep-Alive, Proxy-Connection, TE, Upgrade and
 * every field the Connection lines name (but never Content-Length, Transfer-Encoding or Host,
 * which frame and route the message: a client cannot make the proxy drop them), X-Forwarded-For
 * when f->client is set; then X-Forwarded-For, Host (a request without one), Connection as
 * f->connection says, f->extra, and the empty line. A chunked body is forwarded unchanged, so its
 * Transfer-Encoding line stays (unless f->drop_framing). HTTP_OK with *len the bytes written,
 * HTTP_ESPACE when cap is too small (out's contents then undefined), HTTP_EINVAL for NULL
 * arguments or an m not parsed. Never reads the body.
 */
int http_forward_head(const http_msg *m, const http_forward *f, char *out, size_t cap,
    size_t *len);

/* ---- answers -------------------------------------------------------------------------------- */

/*
 * The status a proxy answers with when parsing failed with err: for a request (from the client)
 * 431 (HTTP_ETOOLARGE, HTTP_ETOOMANY), 505 (HTTP_EVERSION), 400 (the rest); for a response
 * (from the upstream) always 502. 500 for a code that is not a parsing error.
 */
int http_error_status(int err, bool request);

/* The reason phrase of a status this proxy sends ("Bad Gateway"), "Unknown" for others. */
const char *http_reason(int status);

/*
 * A complete response with a short text body (the reason phrase and a newline) and its
 * Content-Length, "Connection: close" when close is true: HTTP_OK with *len, or HTTP_ESPACE /
 * HTTP_EINVAL (status outside 100..599).
 */
int http_simple_response(int status, bool close, char *out, size_t cap, size_t *len);

/* A short description of an HTTP_* code. */
const char *http_strerror(int err);

#endif
