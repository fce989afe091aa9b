/*
 * time.c - clocks and ISO 8601 UTC timestamps as the REST API shows them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common.h"

/* clk's reading in microseconds (0 when it cannot be read). */
static int64_t
clock_us(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
time_now_ms(void)
{
	return clock_us(CLOCK_REALTIME) / 1000;
}

int64_t
time_mono_ms(void)
{
	return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t
time_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

int64_t
time_thread_cpu_us(void)
{
	return clock_us(CLOCK_THREAD_CPUTIME_ID);
}

void
time_iso8601(int64_t ms, char *buf, size_t size)
{
	struct tm tm;
	time_t t;

	if (ms <= 0) {
		if (size)
			buf[0] = '\0';
		return;
	}
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Reads exactly n digits at *p into *v; -1 otherwise. */
static int
digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

static int
expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

int
time_parse_iso8601(const char *s, int64_t *ms)
{
	struct tm tm;
	int frac_ms = 0, off_h = 0, off_m = 0, sign = 0, digits_n = 0;
	const char *p = s;

	memset(&tm, 0, sizeof(tm));
	if (digits(&p, 4, &tm.tm_year) || expect(&p, '-') ||
	    digits(&p, 2, &tm.tm_mon) || expect(&p, '-') ||
	    digits(&p, 2, &tm.tm_mday) || (*p != 'T' && *p != ' ') ||
	    !++p || digits(&p, 2, &tm.tm_hour) || expect(&p, ':') ||
	    digits(&p, 2, &tm.tm_min) || expect(&p, ':') ||
	    digits(&p, 2, &tm.tm_sec))
		return -1;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits_n++)
			if (digits_n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (digits_n == 0)
			return -1;
		for (; digits_n < 3; digits_n++)
			frac_ms *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &off_h) || expect(&p, ':') ||
		    digits(&p, 2, &off_m) || off_h > 23 || off_m > 59)
			return -1;
	}
	if (*p != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = ((int64_t)timegm(&tm) - sign * (off_h * 3600 + off_m * 60)) *
	      1000 + frac_ms;
	return 0;
}
