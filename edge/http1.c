/*
 * http1.c - strict HTTP/1.1 heads and body framing (see http1.h).
 *
 * How: heads are checked byte by byte once (h1_head_end) and then split in
 * place into lines and headers; bodies go through a small state machine
 * that either passes bytes through (h1_body_scan) or decodes chunked
 * framing in place (h1_body_decode), so the edge can re-frame what it
 * forwards. Every rejection is final: the edge answers 400 and closes.
 * Ownership: none; all memory is the caller's.
 */
#include <string.h>
#include <strings.h>
#include "http1.h"

#define MAX_TRAILER_BYTES	(16 * 1024)
#define MAX_EXT_BYTES		4096

enum { CH_SIZE0, CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR,
	CH_DATA_LF, CH_TRAILER, CH_TNAME, CH_TVAL, CH_TLINE_LF, CH_END_LF,
	CH_DONE };

/* ---- characters ------------------------------------------------------ */

static int
tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* field-vchar, SP or HTAB (obs-text allowed): what a value may hold. */
static int
vchar(unsigned char ch)
{
	return ch == '\t' || (ch >= ' ' && ch != 0x7f);
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
h1_name_is(const struct h1_hdr *h, const char *name)
{
	return strlen(name) == h->nl && strncasecmp(h->n, name, h->nl) == 0;
}

static int
val_is(const char *v, size_t vl, const char *s)
{
	return strlen(s) == vl && strncasecmp(v, s, vl) == 0;
}

/* ---- heads ------------------------------------------------------------ */

long
h1_head_end(const char *p, size_t n, size_t *scan)
{
	size_t i;

	for (i = *scan; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\0')
			return -1;
		if (ch == '\r') {
			if (i + 1 == n)
				break;
			if (p[i + 1] != '\n')
				return -1;
		} else if (ch == '\n') {
			if (i == 0 || p[i - 1] != '\r')
				return -1;
			if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r') {
				*scan = 0;
				return (long)(i + 1);
			}
		}
	}
	*scan = i;
	return 0;
}

/*
 * Splits the header lines in [p, end) (each ending in CRLF, the last one
 * empty) into h[]; NUL-terminates values. Returns the count, -1 malformed,
 * -2 too many.
 */
static int
parse_headers(char *p, char *end, struct h1_hdr *h, int max)
{
	int n = 0;

	while (p < end) {
		char *eol = memchr(p, '\r', (size_t)(end - p));
		char *colon, *v, *ve;

		if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
			return -1;
		if (eol == p)
			return eol + 2 == end ? n : -1;
		if (n == max)
			return -2;
		colon = p;
		while (colon < eol && tchar((unsigned char)*colon))
			colon++;
		if (colon == p || colon == eol || *colon != ':')
			return -1;
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (char *s = v; s < ve; s++)
			if (!vchar((unsigned char)*s))
				return -1;
		h[n].n = p;
		h[n].nl = (uint32_t)(colon - p);
		h[n].v = v;
		h[n].vl = (uint32_t)(ve - v);
		*ve = '\0';
		n++;
		p = eol + 2;
	}
	return -1;
}

/* 1*DIGIT, at most 18 of them (no sign, no list, no spaces). */
static int
parse_length(const char *v, size_t vl, uint64_t *out)
{
	uint64_t x = 0;

	if (vl == 0 || vl > 18)
		return -1;
	for (size_t i = 0; i < vl; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

void
h1_conn_tokens(struct h1_ctoks *ct, const char *v, size_t vl)
{
	size_t i = 0;

	while (i < vl) {
		size_t s, e;

		while (i < vl && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
			i++;
		s = i;
		while (i < vl && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s)
			continue;
		if (val_is(v + s, e - s, "close"))
			ct->close = 1;
		else if (val_is(v + s, e - s, "keep-alive"))
			ct->keep = 1;
		else if (val_is(v + s, e - s, "upgrade"))
			ct->upgrade = 1;
		if (ct->n < H1_MAX_CTOKS) {
			ct->t[ct->n].n = v + s;
			ct->t[ct->n].nl = (uint32_t)(e - s);
			ct->n++;
		}
	}
}

/* A list of transfer-coding tokens ("gzip, chunked"): 1, else 0. */
static int
coding_list(const char *v, size_t vl)
{
	size_t i = 0;
	int tokens = 0;

	while (i < vl) {
		size_t s = i;

		while (i < vl && tchar((unsigned char)v[i]))
			i++;
		if (i == s)
			return 0;
		tokens++;
		while (i < vl && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == vl)
			break;
		if (v[i++] != ',')
			return 0;
		while (i < vl && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == vl)
			return 0;
	}
	return tokens > 0;
}

/* The headers the edge acts on; returns an HTTP status or 0. */
static int
request_headers(struct h1_request *rq)
{
	int nhost = 0, nauth = 0, ncl = 0, nte = 0;
	const struct h1_hdr *te = NULL;

	for (int i = 0; i < rq->nh; i++) {
		const struct h1_hdr *h = &rq->h[i];

		if (h1_name_is(h, "host")) {
			rq->host = h->v;
			nhost++;
		} else if (h1_name_is(h, "content-length")) {
			if (ncl++ || parse_length(h->v, h->vl, &rq->length) < 0)
				return 400;
		} else if (h1_name_is(h, "transfer-encoding")) {
			te = h;
			nte++;
		} else if (h1_name_is(h, "connection")) {
			h1_conn_tokens(&rq->ct, h->v, h->vl);
		} else if (h1_name_is(h, "cookie")) {
			if (rq->cookie == NULL)
				rq->cookie = h->v;
		} else if (h1_name_is(h, "authorization")) {
			rq->auth = h->v;
			nauth++;
		} else if (h1_name_is(h, "origin")) {
			rq->origin = h->v;
		} else if (h1_name_is(h, "x-forwarded-for")) {
			rq->xff = h->v;
		} else if (h1_name_is(h, "x-forwarded-proto")) {
			rq->xfp = h->v;
		} else if (h1_name_is(h, "upgrade")) {
			rq->upg = h->v;
		}
	}
	if (nhost > 1 || nauth > 1 || (!rq->http10 && nhost == 0))
		return 400;
	rq->mode = ncl && rq->length ? H1_LENGTH : H1_NONE;
	if (nte == 0)
		return 0;
	if (nte > 1 || ncl || rq->http10)
		return 400;
	if (!val_is(te->v, te->vl, "chunked"))
		return 400;	/* any other coding: refused as ambiguous */
	rq->mode = H1_CHUNKED;
	return 0;
}

/* "http://authority/path?q" -> "/path?q" in place; NULL if malformed. */
static char *
origin_form(char *t, size_t len)
{
	size_t skip = strncasecmp(t, "http://", 7) == 0 ? 7 : 8;
	size_t a = skip;

	while (a < len && t[a] != '/' && t[a] != '?')
		a++;
	if (a == skip)
		return NULL;
	if (a == len || t[a] == '?') {
		t[a - 1] = '/';
		return t + a - 1;
	}
	return t + a;
}

static int
request_target(char *t, size_t len, struct h1_request *rq)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)t[i];

		if (ch <= ' ' || ch >= 0x7f || ch == '#')
			return 400;
	}
	if (t[0] == '/') {
		rq->target = t;
	} else if (len == 1 && t[0] == '*') {
		if (strcmp(rq->method, "OPTIONS") != 0)
			return 400;
		rq->target = t;
	} else if ((len > 7 && strncasecmp(t, "http://", 7) == 0) ||
	    (len > 8 && strncasecmp(t, "https://", 8) == 0)) {
		rq->target = origin_form(t, len);
		if (rq->target == NULL)
			return 400;
	} else {
		return 400;
	}
	return 0;
}

static int
request_line(char *p, char *eol, struct h1_request *rq)
{
	char *sp1, *sp2;

	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (sp1 == NULL || sp1 == p)
		return 400;
	for (char *s = p; s < sp1; s++)
		if (!tchar((unsigned char)*s))
			return 400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return 400;
	if (eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 ||
	    sp2[7] != '.')
		return 400;
	if (sp2[6] == '1' && sp2[8] == '1')
		rq->http10 = 0;
	else if (sp2[6] == '1' && sp2[8] == '0')
		rq->http10 = 1;
	else if (sp2[6] >= '0' && sp2[6] <= '9' && sp2[8] >= '0' &&
	    sp2[8] <= '9')
		return 505;
	else
		return 400;
	*sp1 = '\0';
	*sp2 = '\0';
	rq->method = p;
	return request_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), rq);
}

int
h1_parse_request(char *p, size_t n, struct h1_request *rq)
{
	char *eol;
	int st, nh;

	memset(rq, 0, offsetof(struct h1_request, h));
	eol = memchr(p, '\r', n);
	if (eol == NULL || eol + 1 >= p + n || eol[1] != '\n')
		return 400;
	st = request_line(p, eol, rq);
	if (st)
		return st;
	nh = parse_headers(eol + 2, p + n, rq->h, H1_MAX_HDRS);
	if (nh < 0)
		return nh == -2 ? 431 : 400;
	rq->nh = nh;
	return request_headers(rq);
}

static int
response_headers(struct h1_response *rs)
{
	int chunked = 0;

	for (int i = 0; i < rs->nh; i++) {
		const struct h1_hdr *h = &rs->h[i];
		uint64_t v;

		if (h1_name_is(h, "connection")) {
			h1_conn_tokens(&rs->ct, h->v, h->vl);
		} else if (h1_name_is(h, "transfer-encoding")) {
			size_t vl = h->vl;

			if (!coding_list(h->v, vl))
				return -1;
			rs->has_te = 1;
			chunked = vl >= 7 && strncasecmp(h->v + vl - 7,
			    "chunked", 7) == 0 && (vl == 7 ||
			    h->v[vl - 8] == ' ' || h->v[vl - 8] == ',');
		} else if (h1_name_is(h, "content-length")) {
			if (parse_length(h->v, h->vl, &v) < 0 ||
			    (rs->has_length && v != rs->length))
				return -1;
			rs->has_length = 1;
			rs->length = v;
		}
	}
	rs->mode = rs->has_te ? (chunked ? H1_CHUNKED : H1_CLOSE) :
	    rs->has_length ? H1_LENGTH : H1_CLOSE;
	return 0;
}

int
h1_parse_response(char *p, size_t n, struct h1_response *rs)
{
	char *eol;
	int nh;

	memset(rs, 0, offsetof(struct h1_response, h));
	eol = memchr(p, '\r', n);
	if (eol == NULL || eol + 1 >= p + n || eol[1] != '\n' ||
	    eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
	    (p[12] != ' ' && p + 12 != eol))
		return -1;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	for (char *s = p + 12; s < eol; s++)
		if (!vchar((unsigned char)*s))
			return -1;
	rs->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (rs->status < 100)
		return -1;
	rs->http10 = p[7] == '0';
	nh = parse_headers(eol + 2, p + n, rs->h, H1_MAX_HDRS);
	if (nh < 0)
		return -1;
	*eol = '\0';
	rs->reason = p + 12 < eol ? p + 13 : "";
	rs->nh = nh;
	return response_headers(rs);
}

/* ---- bodies ----------------------------------------------------------- */

void
h1_body_init(struct h1_body *b, enum h1_mode mode, uint64_t len)
{
	memset(b, 0, sizeof(*b));
	b->mode = (uint8_t)mode;
	b->left = len;
	if (mode == H1_LENGTH && len == 0)
		b->mode = H1_NONE;
}

static int
size_byte(struct h1_body *b, unsigned char ch)
{
	int h = hexval(ch);

	if (h >= 0) {
		if (b->digits == 15)
			return -1;
		b->left = b->left * 16 + (uint64_t)h;
		b->digits++;
		b->cst = CH_SIZE;
		return 0;
	}
	if (b->cst == CH_SIZE0)
		return -1;
	if (ch == ';' || ch == ' ' || ch == '\t') {
		b->cst = CH_EXT;
		b->tline = 0;
	} else if (ch == '\r') {
		b->cst = CH_SIZE_LF;
	} else {
		return -1;
	}
	return 0;
}

static int
trailer_byte(struct h1_body *b, unsigned char ch)
{
	if (++b->trailer_bytes > MAX_TRAILER_BYTES)
		return -1;
	switch (b->cst) {
	case CH_TRAILER:
		if (ch == '\r')
			b->cst = CH_END_LF;
		else if (tchar(ch))
			b->cst = CH_TNAME;
		else
			return -1;
		return 0;
	case CH_TNAME:
		if (ch == ':')
			b->cst = CH_TVAL;
		else if (!tchar(ch))
			return -1;
		return 0;
	case CH_TVAL:
		if (ch == '\r')
			b->cst = CH_TLINE_LF;
		else if (!vchar(ch))
			return -1;
		return 0;
	case CH_TLINE_LF:
		b->cst = CH_TRAILER;
		return ch == '\n' ? 0 : -1;
	}
	return -1;
}

/* One framing byte of a chunked body: 0, or -1 on bad syntax. */
static int
chunk_byte(struct h1_body *b, unsigned char ch)
{
	switch (b->cst) {
	case CH_SIZE0:
	case CH_SIZE:
		return size_byte(b, ch);
	case CH_EXT:
		if (ch == '\r')
			b->cst = CH_SIZE_LF;
		else if (!vchar(ch) || ++b->tline > MAX_EXT_BYTES)
			return -1;
		return 0;
	case CH_SIZE_LF:
		if (ch != '\n')
			return -1;
		b->digits = 0;
		b->cst = b->left ? CH_DATA : CH_TRAILER;
		return 0;
	case CH_DATA_CR:
		b->cst = CH_DATA_LF;
		return ch == '\r' ? 0 : -1;
	case CH_DATA_LF:
		b->cst = CH_SIZE0;
		return ch == '\n' ? 0 : -1;
	case CH_END_LF:
		b->cst = CH_DONE;
		return ch == '\n' ? 0 : -1;
	}
	return trailer_byte(b, ch);
}

/* The chunked walk; with dec, data bytes are moved to p[*out). */
static long
chunked(struct h1_body *b, char *p, size_t n, int dec, size_t *out,
	int *done)
{
	size_t i = 0, k, o = 0;

	while (i < n && b->cst != CH_DONE) {
		if (b->cst == CH_DATA) {
			k = b->left < n - i ? (size_t)b->left : n - i;
			if (dec && o != i)
				memmove(p + o, p + i, k);
			o += k;
			b->left -= k;
			i += k;
			if (b->left == 0)
				b->cst = CH_DATA_CR;
			continue;
		}
		if (chunk_byte(b, (unsigned char)p[i++]) < 0)
			return -1;
	}
	*done = b->cst == CH_DONE;
	if (out)
		*out = o;
	return (long)i;
}

static long
plain(struct h1_body *b, size_t n, int *done)
{
	size_t k;

	switch (b->mode) {
	case H1_NONE:
		*done = 1;
		return 0;
	case H1_CLOSE:
		return (long)n;
	}
	k = b->left < n ? (size_t)b->left : n;
	b->left -= k;
	*done = b->left == 0;
	return (long)k;
}

long
h1_body_scan(struct h1_body *b, const char *p, size_t n, int *done)
{
	*done = 0;
	if (b->mode != H1_CHUNKED)
		return plain(b, n, done);
	/* not written to: dec is 0 */
	return chunked(b, (char *)(uintptr_t)p, n, 0, NULL, done);
}

long
h1_body_decode(struct h1_body *b, char *p, size_t n, size_t *out, int *done)
{
	long k;

	*done = 0;
	if (b->mode != H1_CHUNKED) {
		k = plain(b, n, done);
		*out = (size_t)k;
		return k;
	}
	return chunked(b, p, n, 1, out, done);
}

const char *
h1_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
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
