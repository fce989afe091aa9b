/*
 * http1.h - strict HTTP/1.1 message framing for the edge.
 *
 * Everything the edge reads off the network goes through here before any
 * byte of it is forwarded: request and response heads, Content-Length,
 * Transfer-Encoding and chunked bodies. The rules are deliberately
 * narrower than RFC 9112 allows where leniency is what request smuggling
 * feeds on: lines end in CRLF only (a bare CR or LF anywhere in a head or
 * in chunk framing is an error), no obs-fold, no NUL or other control
 * bytes, one Content-Length at most, Transfer-Encoding exactly "chunked"
 * and never together with Content-Length, chunk sizes of at most 15 hex
 * digits, trailers only as well-formed "token: value" CRLF lines.
 * Pure functions over caller-owned memory: no I/O, no allocation, so unit
 * tests and the fuzzer (tests/fuzz/fuzz_http1.c) reach all of it.
 */
#ifndef SWARMHUB_HTTP1_H
#define SWARMHUB_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define H1_MAX_HDRS	128
#define H1_MAX_CTOKS	16

struct h1_hdr {
	const char *n, *v;		/* name, value (value NUL-terminated) */
	uint32_t nl, vl;
};

/* The tokens of the Connection headers. */
struct h1_ctoks {
	struct h1_hdr t[H1_MAX_CTOKS];
	int n, close, keep, upgrade;
};

/* How a body is delimited. */
enum h1_mode { H1_NONE, H1_LENGTH, H1_CHUNKED, H1_CLOSE };

struct h1_request {
	char *method;
	char *target;			/* origin-form ("/..." or "*") */
	int http10;
	int nh;
	enum h1_mode mode;
	uint64_t length;		/* H1_LENGTH */
	const char *host, *cookie, *auth, *origin, *xff, *xfp, *upg;
	struct h1_ctoks ct;
	struct h1_hdr h[H1_MAX_HDRS];
};

struct h1_response {
	int status;
	int http10;
	const char *reason;		/* after the code, NUL-terminated */
	int nh;
	enum h1_mode mode;		/* as the response says it */
	uint64_t length;
	int has_length, has_te;
	struct h1_ctoks ct;
	struct h1_hdr h[H1_MAX_HDRS];
};

/*
 * Looks for the end of a head ("\r\n\r\n") in p[0, n), resuming the scan
 * at *scan (0 the first time; updated so no byte is looked at twice).
 * Returns the length of the head, 0 when more bytes are needed, -1 when
 * the bytes cannot be a valid head (a bare LF, a CR not followed by LF,
 * a NUL): the caller answers 400 without waiting for more.
 */
long h1_head_end(const char *p, size_t n, size_t *scan);

/*
 * Parses a complete request head p[0, n) (as h1_head_end measured it),
 * in place: NUL-terminates method, target and header values. An
 * absolute-form target is rewritten to its origin-form. Returns 0, or the
 * HTTP status to answer (400, 431 too many headers, 505 an unknown
 * version); rq is undefined then. A Transfer-Encoding other than exactly
 * "chunked" (even a valid "gzip, chunked") is 400: the edge forwards no
 * coding it does not frame itself.
 */
int h1_parse_request(char *p, size_t n, struct h1_request *rq);

/* Parses a complete response head p[0, n) in place: 0 or -1. */
int h1_parse_response(char *p, size_t n, struct h1_response *rs);

/* Adds the comma-separated tokens of a Connection header value to ct. */
void h1_conn_tokens(struct h1_ctoks *ct, const char *v, size_t vl);

/* Case-insensitive header name comparison. */
int h1_name_is(const struct h1_hdr *h, const char *name);

/* Body framing state: one per message. */
struct h1_body {
	uint8_t mode;			/* enum h1_mode */
	uint8_t cst;			/* chunked parser state */
	uint8_t digits;
	uint64_t left;
	uint32_t tline;			/* bytes in the current trailer line */
	uint32_t trailer_bytes;		/* all trailer bytes so far */
};

/* H1_LENGTH with len 0 becomes H1_NONE. */
void h1_body_init(struct h1_body *b, enum h1_mode mode, uint64_t len);

/*
 * Frames n more bytes of a body, passing them through unchanged: returns
 * how many belong to the body (the rest follows it), sets *done at its
 * end; -1 on bad chunked syntax.
 */
long h1_body_scan(struct h1_body *b, const char *p, size_t n, int *done);

/*
 * Like h1_body_scan for a chunked body, but decodes in place: the chunk
 * data among the consumed bytes is moved to p[0, *out); chunk sizes,
 * extensions and trailers are dropped. Returns the bytes consumed, or -1.
 * For H1_LENGTH and H1_CLOSE bodies *out equals the return value.
 */
long h1_body_decode(struct h1_body *b, char *p, size_t n, size_t *out,
		    int *done);

/* A status line's reason phrase ("OK"), "Unknown" for other codes. */
const char *h1_reason(int status);

#endif
