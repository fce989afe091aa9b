/*
 * common.h - the shared helpers of every swarmhub module (libc only).
 *
 * Errors: functions return 0 on success and -1 on failure, filling a
 * struct err (when not NULL) with a code and a human message.
 * Logging: one logfmt line per event on stderr; every %s value is quoted and
 * escaped by the logger, so input can forge neither a field nor a line.
 * Settings: SWARMHUB_<NAME> or SWARMHUB_<NAME>_FILE (Docker secrets).
 * Allocation: x* wrappers log event=oom and abort; never return NULL.
 */
#ifndef SWARMHUB_COMMON_H
#define SWARMHUB_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------- */
enum err_code {
	ERR_OK, ERR_INVALID, ERR_NOTFOUND, ERR_CONFLICT, ERR_AUTH, ERR_FORBIDDEN,
	ERR_TIMEOUT, ERR_UNAVAILABLE, ERR_UPSTREAM, ERR_INTERNAL, ERR_TOOMANY
};
struct err {
	enum err_code code;
	char msg[256];
};

/* Fills *e (if e is not NULL) and returns -1. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *err_code_name(enum err_code code);

/* ---- allocation ------------------------------------------------------ */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies at most n bytes of s (stops at a NUL), like strndup. */
char *xstrndup(const char *s, size_t n);
/* Returns a heap string formatted like printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- logging --------------------------------------------------------- */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s);
/*
 * log_event(LOG_INFO, "spawn.ready", "user=%s ms=%ld", name, ms);
 * Supported conversions: %s %d %u %ld %lu %lld %llu %zu %f %.Nf %%.
 * %s values are quoted when needed and control characters escaped.
 */
void log_event(enum log_level level, const char *event, const char *fmt, ...);
/*
 * A log site that writes at most one line a second (for failures an
 * attacker can repeat at will); each line counts the ones held back since
 * the last as suppressed=N. Zero-initialise: static struct log_limit l;
 */
struct log_limit {
	_Atomic int64_t sec;
	_Atomic uint64_t held;
};
void log_event_limited(struct log_limit *l, enum log_level level,
		       const char *event, const char *fmt, ...);
/* Formats like log_event's field part into buf (for tests); returns length. */
size_t log_format(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- strings --------------------------------------------------------- */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};
void sb_init(struct strbuf *sb);
void sb_release(struct strbuf *sb);
void sb_add(struct strbuf *sb, const char *s, size_t n);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addc(struct strbuf *sb, char c);
void sb_addf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s HTML-escaped (& < > " ' escaped). */
void sb_add_html(struct strbuf *sb, const char *s);
/* Appends s percent-encoded: only ASCII letters, digits, "-_.~" and the
 * bytes in keep (may be NULL; "/" keeps a path's slashes) stay as they are. */
void sb_add_pct(struct strbuf *sb, const char *s, const char *keep);
/* Appends s as a JSON string literal, quotes included. */
void sb_add_json(struct strbuf *sb, const char *s);
/* Takes the buffer over: returns it (NUL-terminated), sb is emptied. */
char *sb_detach(struct strbuf *sb, size_t *len);

/* Removes leading and trailing ASCII whitespace in place; returns s. */
char *str_trim(char *s);
/* 1 if s is valid UTF-8 with no NUL and no C0 control except \t\n\r. */
int str_utf8_ok(const char *s, size_t n);
/* Constant-time comparison of two buffers of length n; 1 if equal. */
int str_ct_eq(const void *a, const void *b, size_t n);

/*
 * Usernames: trimmed, ASCII-lowercased, then 1..64 characters of
 * [a-z0-9._@-], starting with a letter or digit, no "..".
 * Writes the normalized name into out (size >= USER_NAME_MAX + 1).
 */
#define USER_NAME_MAX 64
int user_name_normalize(const char *in, char *out, struct err *e);

/* Splits a comma list (entries trimmed, empty ones dropped); *n entries.
 * Returns a NULL-terminated heap array; free with strv_free. */
char **str_split(const char *s, char sep, size_t *n);
void strv_free(char **v);

/* Parses a decimal long in [min, max]; -1 with a message naming what. */
int str_to_long(const char *s, long min, long max, long *out,
		const char *what, struct err *e);
/* Parses a duration "90", "90s", "15m", "2h", "30d" into seconds. */
int str_to_duration(const char *s, long *seconds, const char *what,
		    struct err *e);

/* ---- time ------------------------------------------------------------ */
/* Milliseconds since the epoch (wall clock) and monotonic. */
int64_t time_now_ms(void);
int64_t time_mono_ms(void);
/* Monotonic microseconds; CPU microseconds the calling thread has used. */
int64_t time_mono_us(void);
int64_t time_thread_cpu_us(void);
/* ISO 8601 UTC with milliseconds and Z; buf >= 32 bytes. 0 -> "" */
void time_iso8601(int64_t ms, char *buf, size_t size);
/* Parses ISO 8601 ("2024-05-01T10:00:00Z", fractions, +00:00); -1 bad. */
int time_parse_iso8601(const char *s, int64_t *ms);

/* ---- settings -------------------------------------------------------- */
/*
 * cfg_get("DB", def): the value of SWARMHUB_DB, or the contents of the
 * file named by SWARMHUB_DB_FILE (trailing newline removed), or def.
 * Both set is an error. Returns a borrowed string (valid for the process),
 * or NULL with *e filled when the file cannot be read.
 */
const char *cfg_get(const char *name, const char *def, struct err *e);
int cfg_long(const char *name, long def, long min, long max, long *out,
	     struct err *e);
int cfg_bool(const char *name, int def, int *out, struct err *e);
int cfg_duration(const char *name, long def_s, long *out_s, struct err *e);

#endif
