/*
 * HTTP/1.1 heads and framing for the proxy: the contracts are in http.h.
 *
 * A head is parsed in two passes. The scan looks for the empty line that ends it, one memchr per
 * line, and keeps its place in the message between calls, so bytes that arrive in many reads are
 * looked at once each; it also rejects a bare LF at once (the only line end it knows is CRLF).
 * Once the end is found, one pass over the complete head checks and indexes every line. Errors
 * depend only on the bytes, never on how they were split into calls: the scan meets them in the
 * same order whatever the split, and the second pass always sees the whole head.
 *
 * The chunked scanner is a byte-at-a-time state machine except inside chunk data, which it skips
 * (or moves, when decoding) in one step; its state is a few words, so a body can span any number
 * of buffers.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"

/* ---- characters ----------------------------------------------------------------------------- */

/* tchar (RFC 9110 section 5.6.2): the characters of a token. */
static bool is_tchar(unsigned char c)
{
	unsigned char l = (unsigned char)(c | 0x20);

	if ((l >= 'a' && l <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field value's characters: HTAB, SP, VCHAR and obs-text; no other control. */
static bool is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* A request-target's: anything visible (obs-text included), no space or control. */
static bool is_target_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Whether s[0..n) equals lit (lower case) ignoring case. */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (lit[i] == '\0')
			return false;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c | 0x20);
		if (c != (unsigned char)lit[i])
			return false;
	}
	return lit[n] == '\0';
}

/* Whether a[0..n) equals b[0..n) ignoring ASCII case. */
static bool ieq_n(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x | 0x20);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y | 0x20);
		if (x != y)
			return false;
	}
	return true;
}

/*
 * The next element of the comma-separated list v[0..n) from *pos, without the whitespace around
 * it; empty elements are skipped (RFC 9110 section 5.6.1 asks recipients to accept them). False
 * when there is none left.
 */
static bool next_element(const char *v, size_t n, size_t *pos, const char **e, size_t *elen)
{
	size_t i = *pos, s, end;

	while (i < n && (is_ows(v[i]) || v[i] == ','))
		i++;
	if (i >= n) {
		*pos = n;
		return false;
	}
	s = i;
	while (i < n && v[i] != ',')
		i++;
	end = i;
	while (end > s && is_ows(v[end - 1]))
		end--;
	*e = v + s;
	*elen = end - s;
	*pos = i;
	return true;
}

static bool list_has(const char *v, size_t n, const char *tok, size_t tlen)
{
	size_t pos = 0, elen;
	const char *e;

	while (next_element(v, n, &pos, &e, &elen))
		if (elen == tlen && ieq_n(e, tok, tlen))
			return true;
	return false;
}

bool http_list_has(const char *value, size_t len, const char *token)
{
	if (value == NULL || token == NULL)
		return false;
	return list_has(value, len, token, strlen(token));
}

/* ---- messages ------------------------------------------------------------------------------- */

int http_msg_init(http_msg *m, http_header *headers, uint32_t max_headers, uint32_t max_head)
{
	if (m == NULL || headers == NULL || max_headers == 0)
		return HTTP_EINVAL;
	m->headers = headers;
	m->max_headers = max_headers;
	m->max_head = max_head != 0 ? max_head : HTTP_HEAD_MAX;
	http_msg_reset(m);
	return HTTP_OK;
}

void http_msg_reset(http_msg *m)
{
	http_header *headers = m->headers;
	uint32_t max_headers = m->max_headers, max_head = m->max_head;

	memset(m, 0, sizeof(*m));
	m->headers = headers;
	m->max_headers = max_headers;
	m->max_head = max_head;
}

/*
 * Looks for the empty line that ends the head, from where the last call stopped. Only the first
 * max_head bytes count. A request's leading empty lines are skipped (lead_ moves past them).
 */
static int scan_head(http_msg *m, const char *buf, size_t len, bool request)
{
	size_t end = len < m->max_head ? len : m->max_head;
	size_t i = m->scan_, line = m->line_;

	while (i < end) {
		const char *nl = memchr(buf + i, '\n', end - i);

		if (nl == NULL) {
			i = end;
			break;
		}
		i = (size_t)(nl - buf);
		if (i == line || buf[i - 1] != '\r')
			return HTTP_ESYNTAX;                /* a bare LF */
		if (i - 1 == line) {                        /* an empty line */
			if (line != m->lead_) {
				m->head_len = (uint32_t)(i + 1);
				m->scan_ = (uint32_t)(i + 1);
				m->line_ = (uint32_t)(i + 1);
				return HTTP_OK;
			}
			if (!request)
				return HTTP_ESYNTAX;
			m->lead_ = (uint32_t)(i + 1);
		}
		line = ++i;
	}
	m->scan_ = (uint32_t)i;
	m->line_ = (uint32_t)line;
	return len >= m->max_head ? HTTP_ETOOLARGE : HTTP_INCOMPLETE;
}

static int parse_version(http_msg *m, const char *p, size_t n)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
	    p[7] < '0' || p[7] > '9')
		return HTTP_ESYNTAX;
	if (p[5] != '1')
		return HTTP_EVERSION;
	m->minor = p[7] == '0' ? 0 : 1;
	return HTTP_OK;
}

/* request-line = method SP request-target SP HTTP-version (n: without CRLF) */
static int parse_request_line(http_msg *m, const char *p, size_t n)
{
	size_t i = 0, t;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ' ')
		return HTTP_ESYNTAX;
	m->method = p;
	m->method_len = (uint32_t)i;
	t = ++i;
	while (i < n && is_target_char((unsigned char)p[i]))
		i++;
	if (i == t || i == n || p[i] != ' ')
		return HTTP_ESYNTAX;
	m->target = p + t;
	m->target_len = (uint32_t)(i - t);
	m->head_method = m->method_len == 4 && memcmp(m->method, "HEAD", 4) == 0;
	return parse_version(m, p + i + 1, n - i - 1);
}

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing last SP is accepted. */
static int parse_status_line(http_msg *m, const char *p, size_t n)
{
	size_t i;
	int rc;

	if (n < 12 || p[8] != ' ')
		return HTTP_ESYNTAX;
	if ((rc = parse_version(m, p, 8)) != HTTP_OK)
		return rc;
	if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return HTTP_ESYNTAX;
	m->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	m->reason = p + n;
	if (n == 12)
		return HTTP_OK;
	if (p[12] != ' ')
		return HTTP_ESYNTAX;
	for (i = 13; i < n; i++)
		if (!is_vchar((unsigned char)p[i]))
			return HTTP_ESYNTAX;
	m->reason = p + 13;
	m->reason_len = (uint32_t)(n - 13);
	return HTTP_OK;
}

/* What the framing fields said, gathered over every line before the body is decided. */
struct facts {
	uint64_t length;
	unsigned hosts;
	bool has_length;
	bool has_coding;
	bool chunked_seen;
	bool chunked_last;
};

/* Content-Length = 1*DIGIT; a list of equal values, or equal values on several lines, is one. */
static int parse_length(struct facts *f, const char *v, size_t n)
{
	size_t pos = 0, elen, i;
	const char *e;
	bool any = false;

	while (next_element(v, n, &pos, &e, &elen)) {
		uint64_t x = 0;

		for (i = 0; i < elen; i++) {
			unsigned d = (unsigned)(unsigned char)e[i] - '0';

			if (d > 9 || x > (UINT64_C(0x7fffffffffffffff) - d) / 10)
				return HTTP_EFRAMING;
			x = x * 10 + d;
		}
		if (f->has_length && x != f->length)
			return HTTP_EFRAMING;
		f->has_length = true;
		f->length = x;
		any = true;
	}
	return any ? HTTP_OK : HTTP_EFRAMING;
}

/* Transfer-Encoding: codings in order over every line; chunked at most once, without parameters. */
static int parse_codings(struct facts *f, const char *v, size_t n)
{
	size_t pos = 0, elen, k;
	const char *e;
	bool any = false;

	while (next_element(v, n, &pos, &e, &elen)) {
		bool chunked;

		for (k = 0; k < elen && is_tchar((unsigned char)e[k]); k++)
			;
		if (k == 0 || (k < elen && !is_ows(e[k]) && e[k] != ';'))
			return HTTP_EFRAMING;
		chunked = ieq(e, k, "chunked");
		if (chunked && (f->chunked_seen || k != elen))
			return HTTP_EFRAMING;
		f->chunked_seen |= chunked;
		f->chunked_last = chunked;
		any = true;
	}
	f->has_coding = true;
	return any ? HTTP_OK : HTTP_EFRAMING;
}

/* The fields the parser acts on, picked by length first. */
static int interpret(http_msg *m, struct facts *f, const http_header *h, bool request)
{
	const char *n = h->name, *v = h->value;
	size_t nl = h->name_len, vl = h->value_len;

	switch (nl) {
	case 4:
		if (request && ieq(n, nl, "host") && f->hosts++ == 0)
			m->host = h;
		break;
	case 6:
		if (request && ieq(n, nl, "expect") && ieq(v, vl, "100-continue"))
			m->expect_continue = true;
		break;
	case 10:
		if (ieq(n, nl, "connection")) {
			m->conn_close |= list_has(v, vl, "close", 5);
			m->conn_keep_alive |= list_has(v, vl, "keep-alive", 10);
			m->conn_upgrade |= list_has(v, vl, "upgrade", 7);
		}
		break;
	case 14:
		if (ieq(n, nl, "content-length"))
			return parse_length(f, v, vl);
		break;
	case 17:
		if (ieq(n, nl, "transfer-encoding"))
			return parse_codings(f, v, vl);
		break;
	default:
		break;
	}
	return HTTP_OK;
}

/* field-line = field-name ":" OWS field-value OWS, every line from pos to the empty one. */
static int parse_fields(http_msg *m, struct facts *f, const char *buf, size_t pos, bool request)
{
	for (;;) {
		const char *p = buf + pos;
		const char *lf = memchr(p, '\n', m->head_len - pos);
		size_t n = (size_t)(lf - p) - 1, i, vs, ve;
		http_header *h;
		int rc;

		if (n == 0)
			return HTTP_OK;
		if (is_ows(p[0]))
			return HTTP_ESYNTAX;                /* obs-fold, or space before a name */
		for (i = 0; i < n && is_tchar((unsigned char)p[i]); i++)
			;
		if (i == 0 || i == n || p[i] != ':')
			return HTTP_ESYNTAX;
		for (vs = i + 1; vs < n && is_ows(p[vs]); vs++)
			;
		for (ve = vs; ve < n; ve++)
			if (!is_vchar((unsigned char)p[ve]))
				return HTTP_ESYNTAX;
		while (ve > vs && is_ows(p[ve - 1]))
			ve--;
		if (m->nheaders == m->max_headers)
			return HTTP_ETOOMANY;
		h = &m->headers[m->nheaders++];
		h->name = p;
		h->name_len = (uint32_t)i;
		h->value = p + vs;
		h->value_len = (uint32_t)(ve - vs);
		h->line_len = (uint32_t)(n + 2);
		if ((rc = interpret(m, f, h, request)) != HTTP_OK)
			return rc;
		pos += n + 2;
	}
}

/* RFC 9112 section 6.3 for a request: a body only when the fields say so. */
static int request_framing(http_msg *m, const struct facts *f)
{
	if (f->hosts > 1 || (f->hosts == 0 && m->minor == 1))
		return HTTP_EHOST;
	if (f->has_coding) {
		if (m->minor == 0 || f->has_length || !f->chunked_last)
			return HTTP_EFRAMING;
		m->body = HTTP_BODY_CHUNKED;
	} else if (f->has_length && f->length > 0) {
		m->body = HTTP_BODY_LENGTH;
		m->content_length = f->length;
	}
	return HTTP_OK;
}

/* The same for a response: none for HEAD, 1xx, 204, 304; chunked; a length; else until close. */
static int response_framing(http_msg *m, const struct facts *f, bool head_request)
{
	if (f->has_coding && f->has_length)
		return HTTP_EFRAMING;
	if (head_request || m->status < 200 || m->status == 204 || m->status == 304)
		m->body = HTTP_BODY_NONE;
	else if (f->has_coding)
		m->body = f->chunked_last && m->minor == 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
	else if (!f->has_length)
		m->body = HTTP_BODY_EOF;
	else if (f->length > 0) {
		m->body = HTTP_BODY_LENGTH;
		m->content_length = f->length;
	}
	return HTTP_OK;
}

static int parse_head(http_msg *m, const char *buf, size_t len, bool request, bool head_request)
{
	struct facts f = { 0, 0, false, false, false, false };
	const char *p, *lf;
	size_t n;
	int rc;

	if (m == NULL || (buf == NULL && len > 0) || m->headers == NULL)
		return HTTP_EINVAL;
	if (m->head_len == 0 && (rc = scan_head(m, buf, len, request)) != HTTP_OK)
		return rc;
	if (len < m->head_len)
		return HTTP_EINVAL;
	/* A call after HTTP_OK parses the same head again: start from clean results. */
	m->nheaders = 0;
	m->method = m->target = m->reason = NULL;
	m->method_len = m->target_len = m->reason_len = 0;
	m->status = m->minor = 0;
	m->host = NULL;
	m->body = HTTP_BODY_NONE;
	m->content_length = 0;
	m->keep_alive = m->conn_close = m->conn_keep_alive = m->conn_upgrade = false;
	m->expect_continue = m->head_method = false;
	p = buf + m->lead_;
	lf = memchr(p, '\n', m->head_len - m->lead_);
	n = (size_t)(lf - p) - 1;
	rc = request ? parse_request_line(m, p, n) : parse_status_line(m, p, n);
	if (rc == HTTP_OK)
		rc = parse_fields(m, &f, buf, m->lead_ + n + 2, request);
	if (rc == HTTP_OK)
		rc = request ? request_framing(m, &f) : response_framing(m, &f, head_request);
	if (rc != HTTP_OK)
		return rc;
	m->keep_alive = !m->conn_close && (m->minor == 1 || m->conn_keep_alive) &&
	    m->body != HTTP_BODY_EOF;
	return HTTP_OK;
}

int http_parse_request(http_msg *m, const char *buf, size_t len)
{
	return parse_head(m, buf, len, true, false);
}

int http_parse_response(http_msg *m, const char *buf, size_t len, bool head_request)
{
	return parse_head(m, buf, len, false, head_request);
}

const http_header *http_find(const http_msg *m, const char *name, unsigned n)
{
	size_t len;
	uint32_t i;

	if (m == NULL || name == NULL)
		return NULL;
	len = strlen(name);
	for (i = 0; i < m->nheaders; i++)
		if (m->headers[i].name_len == len && ieq_n(m->headers[i].name, name, len) &&
		    n-- == 0)
			return &m->headers[i];
	return NULL;
}

/* ---- chunked bodies ------------------------------------------------------------------------- */

enum {
	C_SIZE0,        /* the first hex digit of a chunk size */
	C_SIZE,         /* more hex digits */
	C_BWS,          /* whitespace after the size: a ';' or the CR must follow */
	C_EXT,          /* chunk extensions, up to the CR */
	C_SIZE_LF,      /* the LF of the size line */
	C_DATA,         /* chunk data (left bytes) */
	C_DATA_CR,      /* the CRLF after the data */
	C_DATA_LF,
	C_TRAILER,      /* the start of a trailer line, or the CR of the final empty line */
	C_TNAME,        /* a trailer field's name, up to ':' */
	C_TVALUE,       /* its value, up to the CR */
	C_TLF,
	C_END_LF,       /* the LF that ends the body */
	C_DONE,
	C_ERROR
};

void http_chunked_init(http_chunked *c)
{
	c->left = 0;
	c->line = 0;
	c->trailer = 0;
	c->state = C_SIZE0;
}

bool http_chunked_done(const http_chunked *c)
{
	return c != NULL && c->state == C_DONE;
}

/* One step of the state machine on a byte outside chunk data: false when the byte is wrong. */
static bool chunked_byte(http_chunked *c, unsigned char ch)
{
	int d;

	switch (c->state) {
	case C_SIZE0:
		if (hex_value(ch) < 0)
			return false;
		c->left = 0;
		c->line = 0;
		c->state = C_SIZE;
		/* fall through */
	case C_SIZE:
		if ((d = hex_value(ch)) >= 0) {
			if (c->left > (UINT64_MAX >> 4))
				return false;
			c->left = c->left << 4 | (uint64_t)d;
		} else if (is_ows((char)ch)) {
			c->state = C_BWS;
		} else if (ch == ';') {
			c->state = C_EXT;
		} else if (ch == '\r') {
			c->state = C_SIZE_LF;
		} else {
			return false;
		}
		return ++c->line <= HTTP_CHUNK_LINE_MAX;
	case C_BWS:
		if (ch == ';')
			c->state = C_EXT;
		else if (ch == '\r')
			c->state = C_SIZE_LF;
		else if (!is_ows((char)ch))
			return false;
		return ++c->line <= HTTP_CHUNK_LINE_MAX;
	case C_EXT:
		if (ch == '\r')
			c->state = C_SIZE_LF;
		else if (!is_vchar(ch))
			return false;
		return ++c->line <= HTTP_CHUNK_LINE_MAX;
	case C_SIZE_LF:
		if (ch != '\n')
			return false;
		c->state = c->left > 0 ? C_DATA : C_TRAILER;
		return true;
	case C_DATA_CR:
		c->state = C_DATA_LF;
		return ch == '\r';
	case C_DATA_LF:
		c->state = C_SIZE0;
		return ch == '\n';
	case C_TRAILER:
		if (ch == '\r')
			c->state = C_END_LF;
		else if (is_tchar(ch))
			c->state = C_TNAME;
		else
			return false;
		return ++c->trailer <= HTTP_TRAILER_MAX;
	case C_TNAME:
		if (ch == ':')
			c->state = C_TVALUE;
		else if (!is_tchar(ch))
			return false;
		return ++c->trailer <= HTTP_TRAILER_MAX;
	case C_TVALUE:
		if (ch == '\r')
			c->state = C_TLF;
		else if (!is_vchar(ch))
			return false;
		return ++c->trailer <= HTTP_TRAILER_MAX;
	case C_TLF:
		c->state = C_TRAILER;
		return ch == '\n' && ++c->trailer <= HTTP_TRAILER_MAX;
	case C_END_LF:
		c->state = C_DONE;
		return ch == '\n';
	default:
		return false;
	}
}

/* The scanner; out (NULL: scan only) receives the data bytes, moved forward in place. */
static int chunked_run(http_chunked *c, const char *in, size_t len, size_t *used, char *out,
    size_t *data)
{
	size_t i = 0, o = 0;
	int rc = HTTP_INCOMPLETE;

	if (c == NULL || used == NULL || (in == NULL && len > 0)) {
		if (used != NULL)
			*used = 0;
		return HTTP_EINVAL;
	}
	if (c->state == C_ERROR)
		rc = HTTP_ECHUNK;
	else if (c->state == C_DONE)
		rc = HTTP_OK;
	while (rc == HTTP_INCOMPLETE && i < len) {
		if (c->state == C_DATA) {
			size_t n = len - i;

			if (n > c->left)
				n = (size_t)c->left;
			if (out != NULL)
				memmove(out + o, in + i, n);
			o += n;
			i += n;
			c->left -= n;
			if (c->left == 0)
				c->state = C_DATA_CR;
		} else if (!chunked_byte(c, (unsigned char)in[i])) {
			c->state = C_ERROR;
			rc = HTTP_ECHUNK;
		} else {
			i++;
			if (c->state == C_DONE)
				rc = HTTP_OK;
		}
	}
	*used = i;
	if (data != NULL)
		*data = o;
	return rc;
}

int http_chunked_scan(http_chunked *c, const char *buf, size_t len, size_t *used)
{
	return chunked_run(c, buf, len, used, NULL, NULL);
}

int http_chunked_decode(http_chunked *c, char *buf, size_t len, size_t *used, size_t *data)
{
	if (data == NULL) {
		if (used != NULL)
			*used = 0;
		return HTTP_EINVAL;
	}
	*data = 0;
	return chunked_run(c, buf, len, used, buf, data);
}

/* ---- forwarding ----------------------------------------------------------------------------- */

struct out {
	char *p;
	size_t cap;
	size_t n;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n > o->cap - o->n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Whether a Connection line of m names the field h. */
static bool named_by_connection(const http_msg *m, const http_header *h)
{
	uint32_t i;

	for (i = 0; i < m->nheaders; i++) {
		const http_header *c = &m->headers[i];

		if (ieq(c->name, c->name_len, "connection") &&
		    list_has(c->value, c->value_len, h->name, h->name_len))
			return true;
	}
	return false;
}

static bool leave_out(const http_msg *m, const http_forward *f, const http_header *h)
{
	const char *n = h->name;
	size_t l = h->name_len;

	if (ieq(n, l, "content-length") || ieq(n, l, "transfer-encoding"))
		return f->drop_framing;
	if (ieq(n, l, "host"))
		return false;
	if (ieq(n, l, "connection") || ieq(n, l, "keep-alive") || ieq(n, l, "proxy-connection") ||
	    ieq(n, l, "te") || ieq(n, l, "upgrade"))
		return true;
	if (f->client != NULL && ieq(n, l, "x-forwarded-for"))
		return true;
	return named_by_connection(m, h);
}

int http_forward_head(const http_msg *m, const http_forward *f, char *out, size_t cap,
    size_t *len)
{
	struct out o = { out, cap, 0, false };
	uint32_t i;

	if (m == NULL || f == NULL || out == NULL || len == NULL || m->head_len == 0 ||
	    (m->method == NULL && m->status == 0))
		return HTTP_EINVAL;
	if (m->method != NULL) {
		put(&o, m->method, m->method_len);
		put(&o, " ", 1);
		put(&o, m->target, m->target_len);
		put_str(&o, " HTTP/1.1\r\n");
	} else {
		char code[4] = { (char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10),
		                 (char)('0' + m->status % 10), ' ' };

		put_str(&o, "HTTP/1.1 ");
		put(&o, code, 4);
		put(&o, m->reason, m->reason_len);
		put_str(&o, "\r\n");
	}
	for (i = 0; i < m->nheaders; i++)
		if (!leave_out(m, f, &m->headers[i]))
			put(&o, m->headers[i].name, m->headers[i].line_len);
	if (f->client != NULL) {
		put_str(&o, "X-Forwarded-For: ");
		for (i = 0; i < m->nheaders; i++) {
			const http_header *h = &m->headers[i];

			if (h->value_len > 0 && ieq(h->name, h->name_len, "x-forwarded-for")) {
				put(&o, h->value, h->value_len);
				put_str(&o, ", ");
			}
		}
		put_str(&o, f->client);
		put_str(&o, "\r\n");
	}
	if (m->method != NULL && m->host == NULL) {
		put_str(&o, "Host: ");
		put_str(&o, f->host != NULL ? f->host : "");
		put_str(&o, "\r\n");
	}
	if (f->connection == HTTP_CONN_CLOSE)
		put_str(&o, "Connection: close\r\n");
	else if (f->connection == HTTP_CONN_KEEP_ALIVE)
		put_str(&o, "Connection: keep-alive\r\n");
	if (f->extra != NULL)
		put_str(&o, f->extra);
	put_str(&o, "\r\n");
	if (o.full)
		return HTTP_ESPACE;
	*len = o.n;
	return HTTP_OK;
}

/* ---- answers -------------------------------------------------------------------------------- */

int http_error_status(int err, bool request)
{
	if (err >= 0 || err <= HTTP_ESPACE)
		return 500;
	if (!request)
		return 502;
	switch (err) {
	case HTTP_ETOOLARGE:
	case HTTP_ETOOMANY:
		return 431;
	case HTTP_EVERSION:
		return 505;
	default:
		return 400;
	}
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

int http_simple_response(int status, bool close, char *out, size_t cap, size_t *len)
{
	const char *reason = http_reason(status);
	const char *conn = close ? "Connection: close\r\n" : "";
	int n;

	if (out == NULL || len == NULL || status < 100 || status > 599)
		return HTTP_EINVAL;
	if (status < 200 || status == 204 || status == 304)
		n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%s\r\n", status, reason, conn);
	else
		n = snprintf(out, cap,
		    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s\n",
		    status, reason, strlen(reason) + 1, conn, reason);
	if (n < 0 || (size_t)n >= cap)
		return HTTP_ESPACE;
	*len = (size_t)n;
	return HTTP_OK;
}

const char *http_strerror(int err)
{
	switch (err) {
	case HTTP_OK: return "complete";
	case HTTP_INCOMPLETE: return "incomplete: more bytes needed";
	case HTTP_ETOOLARGE: return "message head too large";
	case HTTP_ETOOMANY: return "too many header fields";
	case HTTP_ESYNTAX: return "malformed start line or header field";
	case HTTP_EVERSION: return "HTTP version not supported";
	case HTTP_EFRAMING: return "message length cannot be determined";
	case HTTP_EHOST: return "missing or repeated Host";
	case HTTP_ECHUNK: return "malformed chunked body";
	case HTTP_ESPACE: return "output buffer too small";
	case HTTP_EINVAL: return "invalid argument";
	default: return "unknown error";
	}
}
