/*
 * str.c - growable buffers, escaping, parsing and username rules.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

void
sb_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void
sb_release(struct strbuf *sb)
{
	free(sb->buf);
	sb_init(sb);
}

static void
grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	sb->cap = sb->cap ? sb->cap : 256;
	while (sb->cap < need)
		sb->cap *= 2;
	sb->buf = xrealloc(sb->buf, sb->cap);
}

void
sb_add(struct strbuf *sb, const char *s, size_t n)
{
	grow(sb, n);
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void
sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void
sb_addc(struct strbuf *sb, char c)
{
	sb_add(sb, &c, 1);
}

void
sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	grow(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void
sb_add_html(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': sb_adds(sb, "&amp;"); break;
		case '<': sb_adds(sb, "&lt;"); break;
		case '>': sb_adds(sb, "&gt;"); break;
		case '"': sb_adds(sb, "&quot;"); break;
		case '\'': sb_adds(sb, "&#39;"); break;
		default: sb_addc(sb, *s);
		}
	}
}

void
sb_add_pct(struct strbuf *sb, const char *s, const char *keep)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-_.~", c) ||
		    (keep && strchr(keep, c)))
			sb_addc(sb, (char)c);
		else
			sb_addf(sb, "%%%02X", c);
	}
}

void
sb_add_json(struct strbuf *sb, const char *s)
{
	sb_addc(sb, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			sb_addc(sb, '\\');
			sb_addc(sb, (char)c);
		} else if (c == '\n') {
			sb_adds(sb, "\\n");
		} else if (c < 0x20 || c == 0x7f) {
			sb_addf(sb, "\\u%04x", c);
		} else if (c == '<') {
			sb_adds(sb, "\\u003c");	/* safe inside <script> */
		} else {
			sb_addc(sb, (char)c);
		}
	}
	sb_addc(sb, '"');
}

char *
sb_detach(struct strbuf *sb, size_t *len)
{
	char *p;

	grow(sb, 0);
	p = sb->buf;
	if (len)
		*len = sb->len;
	sb_init(sb);
	return p;
}

char *
str_trim(char *s)
{
	size_t n;
	char *p = s;

	while (*p && isspace((unsigned char)*p))
		p++;
	n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	memmove(s, p, n);
	s[n] = '\0';
	return s;
}

static int
utf8_len(const unsigned char *p, size_t left)
{
	int n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return -1;
	}
	if ((size_t)n > left)
		return -1;
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	return n;
}

int
str_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		int l;

		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return 0;
		l = utf8_len(p + i, n - i);
		if (l < 0)
			return 0;
		i += (size_t)l;
	}
	return 1;
}

int
str_ct_eq(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

int
user_name_normalize(const char *in, char *out, struct err *e)
{
	size_t i = 0, n;
	const char *p = in;

	while (*p && isspace((unsigned char)*p))
		p++;
	n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	if (n == 0)
		return err_set(e, ERR_INVALID, "username is empty");
	if (n > USER_NAME_MAX)
		return err_set(e, ERR_INVALID,
		    "username is longer than %d characters", USER_NAME_MAX);
	for (i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)p[i]);

		if (!(isalnum((unsigned char)c) && (unsigned char)c < 0x80) &&
		    c != '.' && c != '_' && c != '-' && c != '@')
			return err_set(e, ERR_INVALID, "invalid username: only "
			    "letters, digits, '.', '_', '-' and '@' are allowed");
		out[i] = c;
	}
	out[n] = '\0';
	if (!isalnum((unsigned char)out[0]))
		return err_set(e, ERR_INVALID,
		    "invalid username: must start with a letter or digit");
	if (strstr(out, "..") != NULL)
		return err_set(e, ERR_INVALID,
		    "invalid username: '..' is not allowed");
	return 0;
}

char **
str_split(const char *s, char sep, size_t *np)
{
	size_t n = 0, cap = 4;
	char **v = xmalloc(cap * sizeof(*v));

	while (s && *s) {
		const char *end = strchr(s, sep);
		size_t len = end ? (size_t)(end - s) : strlen(s);
		char *item = str_trim(xstrndup(s, len));

		if (*item == '\0') {
			free(item);
		} else {
			if (n + 2 > cap)
				v = xrealloc(v, (cap *= 2) * sizeof(*v));
			v[n++] = item;
		}
		s = end ? end + 1 : NULL;
	}
	v[n] = NULL;
	if (np)
		*np = n;
	return v;
}

void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int
str_to_long(const char *s, long min, long max, long *out, const char *what,
	    struct err *e)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0)
		return err_set(e, ERR_INVALID, "%s: '%.40s' is not a number",
			       what, s);
	if (v < min || v > max)
		return err_set(e, ERR_INVALID,
		    "%s: %ld is outside the range %ld..%ld", what, v, min, max);
	*out = v;
	return 0;
}

int
str_to_duration(const char *s, long *seconds, const char *what,
		struct err *e)
{
	char *end;
	long v, mult = 1;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno != 0 || v < 0)
		goto bad;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: goto bad;
	}
	if (*end && end[1] != '\0')
		goto bad;
	if (v > 100L * 365 * 86400 / mult)
		goto bad;
	*seconds = v * mult;
	return 0;
bad:
	return err_set(e, ERR_INVALID, "%s: '%.40s' is not a duration "
	    "(use a number of seconds, or 90s, 15m, 2h, 30d)", what, s);
}
