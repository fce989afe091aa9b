/*
 * log.c - logfmt on stderr, one write(2) per event.
 *
 * ts=... level=... event=... then the caller's fields. The caller's format
 * is interpreted here, not by printf: every %s value is quoted when it holds
 * a space, '=', '"' or is empty, and control characters are escaped, so a
 * username cannot forge a field or a line.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

static enum log_level min_level = LOG_INFO;

void
log_set_level(enum log_level level)
{
	min_level = level;
}

int
log_level_parse(const char *s)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void
put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (o->len + 1 < o->size)
			o->buf[o->len] = s[i];
		o->len++;
	}
	if (o->size)
		o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
}

static int
needs_quote(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '=' || *s == '"' ||
		    *s == '\\' || (unsigned char)*s == 0x7f)
			return 1;
	return 0;
}

static void
put_value(struct out *o, const char *s)
{
	char esc[8];

	if (s == NULL)
		s = "(null)";
	if (!needs_quote(s)) {
		put(o, s, strlen(s));
		return;
	}
	put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			put(o, esc, 4);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

/* Copies one conversion spec (starting at '%') into spec; returns length. */
static size_t
conv_spec(const char *f, char *spec, size_t size)
{
	size_t n = 1;

	while (f[n] && strchr("0123456789.-+ #lz", f[n]) && n + 2 < size)
		n++;
	if (f[n] == '\0')
		return 0;
	n++;
	memcpy(spec, f, n);
	spec[n] = '\0';
	return n;
}

static void
put_conv(struct out *o, const char *spec, size_t n, va_list *ap)
{
	char num[64];
	char last = spec[n - 1];
	int l = 0;

	for (size_t i = 0; i < n; i++)
		l += spec[i] == 'l';
	if (last == 's') {
		put_value(o, va_arg(*ap, const char *));
		return;
	}
	if (last == 'f' || last == 'g')
		snprintf(num, sizeof(num), spec, va_arg(*ap, double));
	else if (strchr(spec, 'z'))
		snprintf(num, sizeof(num), spec, va_arg(*ap, size_t));
	else if (l >= 2)
		snprintf(num, sizeof(num), spec, va_arg(*ap, long long));
	else if (l == 1)
		snprintf(num, sizeof(num), spec, va_arg(*ap, long));
	else
		snprintf(num, sizeof(num), spec, va_arg(*ap, int));
	put(o, num, strlen(num));
}

size_t
log_format(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	char spec[16];
	va_list aq;

	va_copy(aq, ap);
	if (size)
		buf[0] = '\0';
	for (const char *f = fmt; *f; ) {
		size_t n;

		if (*f != '%') {
			put(&o, f++, 1);
			continue;
		}
		if (f[1] == '%') {
			put(&o, "%", 1);
			f += 2;
			continue;
		}
		n = conv_spec(f, spec, sizeof(spec));
		if (n == 0)
			break;
		put_conv(&o, spec, n, &aq);
		f += n;
	}
	va_end(aq);
	return o.len;
}

static void
log_line(enum log_level level, const char *event, uint64_t suppressed,
	 const char *fmt, va_list ap)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char line[2048], ts[32];
	size_t n;

	time_iso8601(time_now_ms(), ts, sizeof(ts));
	n = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s event=%s",
			     ts, names[level], event);
	if (fmt && *fmt && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		n += log_format(line + n, sizeof(line) - n, fmt, ap);
	}
	if (suppressed && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      " suppressed=%llu",
				      (unsigned long long)suppressed);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	log_line(level, event, 0, fmt, ap);
	va_end(ap);
}

void
log_event_limited(struct log_limit *l, enum log_level level,
		  const char *event, const char *fmt, ...)
{
	int64_t sec = time_mono_ms() / 1000, last;
	va_list ap;

	if (level < min_level)
		return;
	last = atomic_load_explicit(&l->sec, memory_order_relaxed);
	if (last == sec || !atomic_compare_exchange_strong(&l->sec, &last,
	    sec)) {
		atomic_fetch_add_explicit(&l->held, 1, memory_order_relaxed);
		return;
	}
	va_start(ap, fmt);
	log_line(level, event, atomic_exchange(&l->held, 0), fmt, ap);
	va_end(ap);
}
