/*
 * err.c - the small error struct every module fills on failure.
 */
#include <stdio.h>
#include "common.h"

int
err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

const char *
err_code_name(enum err_code code)
{
	static const char *const names[] = {
		"ok", "invalid", "notfound", "conflict", "auth", "forbidden",
		"timeout", "unavailable", "upstream", "internal", "toomany"
	};

	if ((size_t)code >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[code];
}
