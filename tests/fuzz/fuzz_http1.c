/*
 * fuzz_http1.c - libFuzzer target for the edge's HTTP/1.1 parser
 * (edge/http1.c): request and response heads found incrementally, then the
 * body decoded in pieces and re-chunked the way the edge forwards it; the
 * re-chunked body must parse back, whole and done, to the same bytes.
 * `make fuzz` runs it under ASan/UBSan next to fuzz_request.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../edge/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The edge's re-framing of decoded data, then a strict re-parse. */
static void
rechunk_roundtrip(const char *d, size_t n)
{
	char *enc = malloc(n + 64);
	size_t len = 0, out = 0;
	struct h1_body b;
	int done = 0;
	long k;

	if (n)
		len += (size_t)snprintf(enc, 32, "%zx\r\n", n);
	memcpy(enc + len, d, n);
	len += n;
	if (n) {
		memcpy(enc + len, "\r\n", 2);
		len += 2;
	}
	memcpy(enc + len, "0\r\n\r\n", 5);
	len += 5;
	h1_body_init(&b, H1_CHUNKED, 0);
	k = h1_body_decode(&b, enc, len, &out, &done);
	if (k != (long)len || !done || out != n || memcmp(enc, d, n) != 0)
		abort();
	free(enc);
}

static void
body(enum h1_mode mode, uint64_t length, char *p, size_t n, size_t step)
{
	struct h1_body b;
	char *all = malloc(n + 1);
	size_t i = 0, got = 0, out;
	int done = 0;

	h1_body_init(&b, mode, length);
	while (i < n && !done) {
		size_t len = n - i < step ? n - i : step;
		long k = h1_body_decode(&b, p + i, len, &out, &done);

		if (k < 0)
			break;
		if ((size_t)k > len || out > (size_t)k)
			abort();
		memcpy(all + got, p + i, out);
		got += out;
		i += (size_t)k;
		if ((size_t)k < len && !done)
			abort();	/* stopped early without an end */
	}
	if (done)
		rechunk_roundtrip(all, got);
	free(all);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h1_request rq;
	static struct h1_response rs;
	size_t step, scan = 0, n;
	char *p;
	long end = 0;

	if (size < 2)
		return 0;
	step = (size_t)(data[0] % 16) + 1;
	n = size - 1;
	p = malloc(n);
	memcpy(p, data + 1, n);
	/* the head arrives in pieces: the resumed scan must agree */
	for (size_t have = step < n ? step : n; end == 0;
	    have = have + step < n ? have + step : n) {
		end = h1_head_end(p, have, &scan);
		if (have == n)
			break;
	}
	if (end > 0) {
		char *copy = malloc((size_t)end);

		memcpy(copy, p, (size_t)end);
		if (data[0] & 0x80) {
			if (h1_parse_response(copy, (size_t)end, &rs) == 0)
				body(rs.mode, rs.length, p + end,
				     n - (size_t)end, step);
		} else if (h1_parse_request(copy, (size_t)end, &rq) == 0) {
			if (rq.target[0] != '/' && rq.target[0] != '*')
				abort();
			body(rq.mode, rq.length, p + end, n - (size_t)end,
			     step);
		}
		free(copy);
	} else if (data[0] & 0x40) {
		body(H1_CHUNKED, 0, p, n, step);
	}
	free(p);
	return 0;
}
