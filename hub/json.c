/*
 * json.c - parsing of request bodies: JSON objects with a known set of keys
 * and application/x-www-form-urlencoded forms. Pure functions; the fuzz
 * target (tests/fuzz/fuzz_request.c) drives both.
 */
#include <jansson.h>
#include <string.h>
#include "hub.h"

int
json_parse_object(const char *body, size_t len, const char *const *allowed,
		  json_t **out, struct err *e)
{
	json_error_t je;
	json_t *j;
	const char *key;
	json_t *v;

	*out = NULL;
	if (!str_utf8_ok(body, len))
		return err_set(e, ERR_INVALID, "request body is not valid "
		    "UTF-8 text");
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return err_set(e, ERR_INVALID, "request body is not valid "
		    "JSON: %s (line %d, column %d)", je.text, je.line,
		    je.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, ERR_INVALID, "request body must be a JSON "
		    "object");
	}
	json_object_foreach(j, key, v) {
		int ok = 0;

		for (const char *const *a = allowed; a && *a; a++)
			ok |= strcmp(*a, key) == 0;
		if (!ok) {
			err_set(e, ERR_INVALID, "unknown field '%.60s'", key);
			json_decref(j);
			return -1;
		}
	}
	*out = j;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) (+ is space, %XX); NULL when malformed or NUL inside. */
static char *
url_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[j++] = ' ';
		} else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				goto bad;
			out[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *
form_value(const char *body, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *p = body, *end = body + len;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));

		if (eq && (size_t)(eq - p) == klen && memcmp(p, key, klen) == 0)
			return url_decode(eq + 1, (size_t)(pair_end - eq - 1));
		p = pair_end + 1;
	}
	return NULL;
}
