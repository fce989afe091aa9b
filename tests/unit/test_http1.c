/*
 * test_http1.c - the edge's strict HTTP/1.1 parser (edge/http1.c): heads,
 * framing headers, chunked bodies passed through and decoded, and a table
 * of request-smuggling classics, each with the answer it must get.
 */
#include <stdint.h>
#include "../../edge/http1.h"
#include "../lib/t.h"

/* Runs a whole head through h1_head_end and h1_parse_request: the status
 * the edge would answer (0: accepted), 400 when the head never ends. */
static int
request_status(const char *raw, struct h1_request *rq)
{
	static char buf[8192];
	size_t n = strlen(raw), scan = 0;
	long end;

	memcpy(buf, raw, n);
	end = h1_head_end(buf, n, &scan);
	if (end <= 0)
		return end < 0 ? 400 : -1;
	return h1_parse_request(buf, (size_t)end, rq);
}

struct row {
	const char *name;
	const char *raw;
	int want;		/* 0 accepted, -1 head incomplete */
};

static const struct row smuggling[] = {
	{ "issue 10: bare LF in a chunked trailer (body checked below)",
	  "POST /hub/health HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
	  "chunked\r\n\r\n", 0 },
	{ "CL.TE: both Content-Length and Transfer-Encoding",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", 400 },
	{ "TE.CL: the other order",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	  "Content-Length: 6\r\n\r\n", 400 },
	{ "TE.TE: two Transfer-Encoding headers",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	  "Transfer-Encoding: identity\r\n\r\n", 400 },
	{ "TE.TE: xchunked",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
	  400 },
	{ "TE.TE: chunked with a trailing comma",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n",
	  400 },
	{ "TE.TE: a vertical tab",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n",
	  400 },
	{ "TE.TE: space before the colon",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
	  400 },
	{ "TE.TE: quoted",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
	  400 },
	{ "TE.TE: gzip, chunked (valid but unsupported)",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n"
	  "\r\n", 400 },
	{ "Transfer-Encoding in HTTP/1.0",
	  "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
	{ "duplicate Content-Length, same value",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	  "Content-Length: 5\r\n\r\n", 400 },
	{ "duplicate Content-Length, other value",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	  "Content-Length: 6\r\n\r\n", 400 },
	{ "Content-Length list",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400 },
	{ "negative Content-Length",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400 },
	{ "signed Content-Length",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400 },
	{ "overflowing Content-Length",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
	  "18446744073709551617\r\n\r\n", 400 },
	{ "hex Content-Length",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400 },
	{ "empty Content-Length",
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400 },
	{ "obs-fold",
	  "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n b\r\n\r\n", 400 },
	{ "obs-fold of Transfer-Encoding",
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
	  400 },
	{ "NUL in a header value",
	  "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", -2 },
	{ "bare LF ending a header line",
	  "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", 400 },
	{ "bare LF head end",
	  "GET / HTTP/1.1\nHost: h\n\n", 400 },
	{ "bare CR in a header value",
	  "GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", 400 },
	{ "# in the request target",
	  "GET /hub/home#x HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "space in the request target",
	  "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "non-ASCII in the request target",
	  "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "two Host headers",
	  "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
	{ "no Host in HTTP/1.1",
	  "GET / HTTP/1.1\r\n\r\n", 400 },
	{ "HTTP/2.0 request line",
	  "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
	{ "lower-case version",
	  "GET / http/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "two spaces in the request line",
	  "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "authority-form",
	  "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "* with GET",
	  "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "a header name with a space",
	  "GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n", 400 },
	{ "leading empty line",
	  "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
	{ "a plain GET", "GET /hub/home HTTP/1.1\r\nHost: h\r\n\r\n", 0 },
	{ "HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0 },
	{ "OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 0 },
	{ NULL, NULL, 0 },
};

static void
test_table(void)
{
	struct h1_request rq;

	for (const struct row *r = smuggling; r->name; r++) {
		int got;

		if (r->want == -2) {	/* contains a NUL: measure by hand */
			char buf[128];
			size_t n = 0, scan = 0;

			memcpy(buf, "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n",
			       38);
			n = 38;
			T_OK(h1_head_end(buf, n, &scan) == -1, "%s: 400",
			     r->name);
			continue;
		}
		got = request_status(r->raw, &rq);
		T_OK(got == r->want, "%s: got %d, want %d", r->name, got,
		     r->want);
	}
}

static void
test_request_fields(void)
{
	struct h1_request rq;

	T_OK(request_status("POST http://evil.example:80/user/a/x?q=1 "
	     "HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
	     "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
	     "Cookie: a=1\r\nAuthorization: token t\r\n"
	     "X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n\r\n", &rq) == 0,
	     "absolute-form accepted");
	T_STREQ(rq.target, "/user/a/x?q=1", "absolute-form -> origin-form");
	T_STREQ(rq.method, "POST", "method");
	T_OK(rq.mode == H1_LENGTH && rq.length == 12, "Content-Length");
	T_OK(rq.ct.keep && rq.ct.upgrade && !rq.ct.close, "Connection tokens");
	T_STREQ(rq.upg, "websocket", "Upgrade");
	T_STREQ(rq.cookie, "a=1", "Cookie");
	T_STREQ(rq.auth, "token t", "Authorization");
	T_STREQ(rq.xff, "1.2.3.4, 5.6.7.8", "X-Forwarded-For");
	T_OK(request_status("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n",
	     &rq) == 0, "absolute-form without a path");
	T_STREQ(rq.target, "/", "empty path is /");
	T_OK(request_status("GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
	     &rq) == 0, "absolute-form with only a query");
	T_STREQ(rq.target, "/?x=1", "query keeps its path");
	T_OK(request_status("GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n",
	     &rq) == 400, "absolute-form without authority");
	T_OK(request_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:"
	     " CHUNKED \r\n\r\n", &rq) == 0 && rq.mode == H1_CHUNKED,
	     "chunked in any case, with spaces around");
	T_OK(request_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0"
	     "\r\n\r\n", &rq) == 0 && rq.mode == H1_NONE, "length 0: no body");
}

static void
test_head_end(void)
{
	const char *h = "GET / HTTP/1.1\r\nHost: h\r\n\r\nNEXT";
	size_t scan = 0, n = strlen(h);
	long end = 0;

	/* byte by byte: the scan resumes and finds the end once */
	for (size_t i = 1; i <= n && end == 0; i++)
		end = h1_head_end(h, i, &scan);
	T_OK(end == (long)(n - 4), "head end found incrementally (%ld)", end);
	scan = 0;
	T_OK(h1_head_end("GET / HTTP/1.1\r", 15, &scan) == 0 && scan == 14,
	     "a CR at the end waits for its LF");
	T_OK(h1_head_end("GET / HTTP/1.1\r\n\r", 17, &scan) == 0,
	     "incomplete");
	T_OK(h1_head_end("GET / HTTP/1.1\r\n\rX", 18, &scan) == -1,
	     "CR without LF");
}

/* Decodes a chunked body fed in pieces of `step` bytes. */
static long
decode_all(const char *body, size_t step, char *out, size_t *outlen,
	   size_t *consumed)
{
	struct h1_body b;
	char buf[4096];
	size_t n = strlen(body), i = 0, o = 0, got;
	int done = 0;

	h1_body_init(&b, H1_CHUNKED, 0);
	memcpy(buf, body, n);
	while (i < n && !done) {
		size_t len = n - i < step ? n - i : step;
		long k = h1_body_decode(&b, buf + i, len, &got, &done);

		if (k < 0)
			return -1;
		memcpy(out + o, buf + i, got);
		o += got;
		i += (size_t)k;
		if ((size_t)k < len && !done)
			return -2;
	}
	*outlen = o;
	*consumed = i;
	return done;
}

static void
test_chunked(void)
{
	static const struct {
		const char *name, *body;
		long want;		/* 1 done, 0 needs more, -1 bad */
		const char *data;
	} rows[] = {
		{ "two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 1,
		  "hello world" },
		{ "extension", "5;a=b\r\nhello\r\n0\r\n\r\n", 1, "hello" },
		{ "trailer", "1\r\nx\r\n0\r\nT: v\r\n\r\n", 1, "x" },
		{ "upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", 1,
		  "0123456789" },
		{ "issue 10: bare LF ending the last chunk", "0\r\n\nPOST", -1,
		  NULL },
		{ "0\\n\\n", "0\n\n", -1, NULL },
		{ "bare LF after a size", "5\nhello\r\n0\r\n\r\n", -1, NULL },
		{ "bare LF in an extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", -1,
		  NULL },
		{ "bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", -1,
		  NULL },
		{ "extension not ended yet", "5;a", 0, NULL },
		{ "bare LF in a trailer", "0\r\nT: v\nX: y\r\n\r\n", -1, NULL },
		{ "trailer without a colon", "0\r\nT v\r\n\r\n", -1, NULL },
		{ "trailer obs-fold", "0\r\nT: v\r\n w\r\n\r\n", -1, NULL },
		{ "data not ended by CRLF", "5\r\nhelloX\r\n0\r\n\r\n", -1,
		  NULL },
		{ "chunk-size overflow", "10000000000000001\r\nx\r\n", -1,
		  NULL },
		{ "sixteen zeros", "0000000000000000\r\n\r\n", -1, NULL },
		{ "negative size", "-1\r\n", -1, NULL },
		{ "space before the size", " 5\r\nhello\r\n0\r\n\r\n", -1,
		  NULL },
		{ "0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", -1, NULL },
		{ "no size", "\r\n", -1, NULL },
		{ "needs more", "5\r\nhel", 0, "hel" },
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		for (size_t step = 1; step <= 64; step *= 4) {
			char out[4096];
			size_t ol = 0, used = 0;
			long got = decode_all(rows[r].body, step, out, &ol,
					      &used);

			T_OK(got == rows[r].want, "%s (step %zu): got %ld",
			     rows[r].name, step, got);
			if (got >= 0 && rows[r].data)
				T_OK(ol == strlen(rows[r].data) &&
				     memcmp(out, rows[r].data, ol) == 0,
				     "%s (step %zu): data", rows[r].name, step);
		}
	}
	{
		/* pass-through scan stops exactly at the end of the body */
		const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
		struct h1_body b;
		int done;
		long k;

		h1_body_init(&b, H1_CHUNKED, 0);
		k = h1_body_scan(&b, s, strlen(s), &done);
		T_OK(done && k == 13, "scan ends at the body's end (%ld)", k);
		h1_body_init(&b, H1_LENGTH, 4);
		k = h1_body_scan(&b, "abcdefg", 7, &done);
		T_OK(done && k == 4, "Content-Length body ends after 4 bytes");
		h1_body_init(&b, H1_LENGTH, 0);
		T_OK(b.mode == H1_NONE, "length 0 is no body");
	}
	{
		/* trailers are bounded */
		struct h1_body b;
		char big[20000];
		int done;

		memcpy(big, "0\r\nX: ", 6);
		memset(big + 6, 'a', sizeof(big) - 6);
		h1_body_init(&b, H1_CHUNKED, 0);
		T_OK(h1_body_scan(&b, big, sizeof(big), &done) == -1,
		     "a trailer over 16 KiB is refused");
	}
}

static void
test_response(void)
{
	struct h1_response rs;
	char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Connection: close\r\nSet-Cookie: a=b\r\n\r\n";
	char r2[] = "HTTP/1.0 204\r\n\r\n";
	char r3[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"
	    "Content-Length: 3\r\n\r\n";
	char r4[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\n";
	char r5[] = "HTTP/1.1 20 OK\r\n\r\n";
	char r6[] = "HTTP/1.1 200 O\x01K\r\n\r\n";
	char r7[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
	char r8[] = "HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n";

	T_OK(h1_parse_response(r1, strlen(r1), &rs) == 0 && rs.status == 200 &&
	     rs.mode == H1_LENGTH && rs.length == 5 && rs.ct.close &&
	     rs.nh == 3, "a plain response");
	T_STREQ(rs.reason, "OK", "reason phrase");
	T_OK(h1_parse_response(r2, strlen(r2), &rs) == 0 && rs.status == 204 &&
	     rs.http10, "no reason phrase, HTTP/1.0");
	T_OK(h1_parse_response(r3, strlen(r3), &rs) == 0 &&
	     rs.mode == H1_CHUNKED && rs.has_te, "TE wins over CL");
	T_OK(h1_parse_response(r4, strlen(r4), &rs) == -1,
	     "conflicting Content-Length refused");
	T_OK(h1_parse_response(r5, strlen(r5), &rs) == -1, "bad status");
	T_OK(h1_parse_response(r6, strlen(r6), &rs) == -1,
	     "control byte in the reason");
	T_OK(h1_parse_response(r7, strlen(r7), &rs) == 0 &&
	     rs.mode == H1_CLOSE, "non-chunked coding: read to close");
	T_OK(h1_parse_response(r8, strlen(r8), &rs) == -1,
	     "bare LF in a response header");
}

int
main(void)
{
	test_table();
	test_request_fields();
	test_head_end();
	test_chunked();
	test_response();
	return t_done();
}
