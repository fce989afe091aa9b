/*
 * test_common.c - common/: logfmt escaping, usernames, parsing, time,
 * settings from the environment and from *_FILE.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../lib/t.h"
#include "../../common/common.h"

static void
fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	log_format(buf, size, f, ap);
	va_end(ap);
}

static void
test_logfmt(void)
{
	char b[256];

	fmt(b, sizeof(b), "user=%s n=%d", "alice", 3);
	T_STREQ(b, "user=alice n=3", "plain values stay bare");
	fmt(b, sizeof(b), "user=%s", "bob smith");
	T_STREQ(b, "user=\"bob smith\"", "a space is quoted");
	fmt(b, sizeof(b), "user=%s", "x level=error");
	T_STREQ(b, "user=\"x level=error\"", "a forged field stays inside quotes");
	fmt(b, sizeof(b), "user=%s", "a\nts=1 level=error");
	T_OK(strchr(b, '\n') == NULL, "a newline cannot start a new line");
	fmt(b, sizeof(b), "v=%s", "q\"\\");
	T_STREQ(b, "v=\"q\\\"\\\\\"", "quotes and backslashes are escaped");
	fmt(b, sizeof(b), "v=%s", "");
	T_STREQ(b, "v=\"\"", "an empty value is quoted");
	fmt(b, sizeof(b), "v=%s", "\x01");
	T_STREQ(b, "v=\"\\x01\"", "control characters are escaped");
	fmt(b, sizeof(b), "a=%ld b=%zu c=%.2f d=%lld %%", 5L, (size_t)7, 1.5,
	    -2LL);
	T_STREQ(b, "a=5 b=7 c=1.50 d=-2 %", "numbers format as printf");
	fmt(b, 8, "v=%s", "abcdefghij");
	T_OK(strlen(b) == 7, "output is truncated to the buffer");
}

static void
test_usernames(void)
{
	char out[USER_NAME_MAX + 1];
	struct err e = { 0 };
	char long_name[100];

	T_OK(user_name_normalize("  Alice ", out, &e) == 0 &&
	     strcmp(out, "alice") == 0, "trimmed and lowercased");
	T_OK(user_name_normalize("a.b_c-d@x", out, &e) == 0, "punctuation ok");
	T_OK(user_name_normalize("", out, &e) < 0 && e.code == ERR_INVALID,
	     "empty refused");
	T_OK(user_name_normalize("../etc", out, &e) < 0, "dots first refused");
	T_OK(user_name_normalize("a..b", out, &e) < 0, "'..' refused");
	T_OK(user_name_normalize("a/b", out, &e) < 0, "slash refused");
	T_OK(user_name_normalize("<script>", out, &e) < 0, "markup refused");
	T_OK(user_name_normalize("x'; DROP TABLE users; --", out, &e) < 0,
	     "SQL metacharacters refused");
	T_OK(user_name_normalize("al\xc3\xa9", out, &e) < 0,
	     "non-ASCII refused");
	T_OK(user_name_normalize("a*", out, &e) < 0, "LDAP wildcard refused");
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	T_OK(user_name_normalize(long_name, out, &e) < 0, "65 chars refused");
	long_name[64] = '\0';
	T_OK(user_name_normalize(long_name, out, &e) == 0, "64 chars ok");
}

static void
test_parsing(void)
{
	struct err e = { 0 };
	long v;
	size_t n;
	char **parts;

	T_OK(str_to_duration("90", &v, "x", &e) == 0 && v == 90, "seconds");
	T_OK(str_to_duration("15m", &v, "x", &e) == 0 && v == 900, "minutes");
	T_OK(str_to_duration("2h", &v, "x", &e) == 0 && v == 7200, "hours");
	T_OK(str_to_duration("30d", &v, "x", &e) == 0 && v == 2592000, "days");
	T_OK(str_to_duration("3x", &v, "x", &e) < 0, "unknown unit refused");
	T_OK(str_to_duration("-1", &v, "x", &e) < 0, "negative refused");
	T_OK(str_to_duration("2hh", &v, "x", &e) < 0, "trailing junk refused");
	T_OK(str_to_long("12", 0, 20, &v, "n", &e) == 0 && v == 12, "long");
	T_OK(str_to_long("21", 0, 20, &v, "n", &e) < 0 &&
	     strstr(e.msg, "0..20") != NULL, "range named in the message");
	T_OK(str_to_long("1e3", 0, 9999, &v, "n", &e) < 0, "not a number");
	parts = str_split(" a, ,b ,c", ',', &n);
	T_OK(n == 3 && !strcmp(parts[0], "a") && !strcmp(parts[2], "c") &&
	     parts[3] == NULL, "split trims and drops empty entries");
	strv_free(parts);
	T_OK(str_utf8_ok("h\xc3\xa9", 3), "valid UTF-8");
	T_OK(!str_utf8_ok("\xc3", 1), "truncated UTF-8 refused");
	T_OK(!str_utf8_ok("\xc0\x80", 2), "overlong refused");
	T_OK(!str_utf8_ok("\xed\xa0\x80", 3), "surrogate refused");
	T_OK(!str_utf8_ok("a\0b", 3), "NUL refused");
	T_OK(str_ct_eq("abc", "abc", 3) && !str_ct_eq("abc", "abd", 3),
	     "constant-time compare");
}

static void
test_strbuf(void)
{
	struct strbuf sb;
	char *s;

	sb_init(&sb);
	sb_add_html(&sb, "<a href=\"x\">&'");
	T_STREQ(sb.buf, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;", "html escape");
	sb_release(&sb);
	sb_add_json(&sb, "a\"b\\\n\x01</script>");
	T_STREQ(sb.buf, "\"a\\\"b\\\\\\n\\u0001\\u003c/script>\"",
		"json escape, safe inside <script>");
	sb_release(&sb);
	sb_add_pct(&sb, "a-Z_0.~ /?&=%\xc3\xa9", NULL);
	T_STREQ(sb.buf, "a-Z_0.~%20%2F%3F%26%3D%25%C3%A9",
		"percent-encoding keeps only unreserved bytes");
	sb_release(&sb);
	sb_add_pct(&sb, "/user/a b/", "/");
	T_STREQ(sb.buf, "/user/a%20b/", "percent-encoding keeps the bytes asked");
	sb_release(&sb);
	for (int i = 0; i < 1000; i++)
		sb_addf(&sb, "%d,", i);
	s = sb_detach(&sb, NULL);
	T_OK(strncmp(s, "0,1,2,", 6) == 0 && strstr(s, "999,") != NULL,
	     "buffer grows");
	free(s);
}

static void
test_time(void)
{
	char b[40];
	int64_t ms;

	time_iso8601(1700000000123LL, b, sizeof(b));
	T_STREQ(b, "2023-11-14T22:13:20.123Z", "ISO 8601 with Z");
	time_iso8601(0, b, sizeof(b));
	T_STREQ(b, "", "zero is null");
	T_OK(time_parse_iso8601("2023-11-14T22:13:20.123Z", &ms) == 0 &&
	     ms == 1700000000123LL, "round trip");
	T_OK(time_parse_iso8601("2023-11-14T23:13:20+01:00", &ms) == 0 &&
	     ms == 1700000000000LL, "offsets");
	T_OK(time_parse_iso8601("2023-11-14T22:13:20.123456Z", &ms) == 0 &&
	     ms == 1700000000123LL, "microseconds truncated");
	T_OK(time_parse_iso8601("yesterday", &ms) < 0, "garbage refused");
	T_OK(time_parse_iso8601("2023-13-01T00:00:00Z", &ms) < 0,
	     "month 13 refused");
	T_OK(time_parse_iso8601("02-11-23T90:02:0.12322023505-23:0", &ms) < 0,
	     "short offset refused (found by the fuzzer)");
	T_OK(time_parse_iso8601("2023-11-14T22:13:20+01", &ms) < 0,
	     "offset without minutes refused");
	T_OK(time_parse_iso8601("2023-11-14T25:13:20Z", &ms) < 0,
	     "hour 25 refused");
}

static void
test_cfg(void)
{
	struct err e = { 0 };
	char path[] = "/tmp/swarmhub-cfg-XXXXXX";
	int fd = mkstemp(path);
	long v;
	int b;

	T_OK(fd >= 0 && write(fd, "s3cret\n", 7) == 7, "temp file");
	close(fd);
	setenv("SWARMHUB_T_SECRET_FILE", path, 1);
	T_STREQ(cfg_get("T_SECRET", "def", &e), "s3cret",
		"*_FILE read, newline removed");
	setenv("SWARMHUB_T_SECRET", "x", 1);
	T_OK(cfg_get("T_SECRET", "def", &e) == NULL &&
	     strstr(e.msg, "not both"), "both set is an error");
	unsetenv("SWARMHUB_T_SECRET");
	setenv("SWARMHUB_T_SECRET_FILE", "/nonexistent/x", 1);
	T_OK(cfg_get("T_SECRET", "def", &e) == NULL &&
	     strstr(e.msg, "/nonexistent/x"), "unreadable file named");
	unlink(path);
	T_STREQ(cfg_get("T_UNSET", "def", &e), "def", "default");
	setenv("SWARMHUB_T_N", "70", 1);
	T_OK(cfg_long("T_N", 5, 1, 50, &v, &e) < 0 &&
	     strstr(e.msg, "SWARMHUB_T_N"), "out of range names the variable");
	T_OK(cfg_long("T_NONE", 5, 1, 50, &v, &e) == 0 && v == 5,
	     "long default");
	setenv("SWARMHUB_T_B", "off", 1);
	T_OK(cfg_bool("T_B", 1, &b, &e) == 0 && b == 0, "bool off");
	setenv("SWARMHUB_T_B", "maybe", 1);
	T_OK(cfg_bool("T_B", 1, &b, &e) < 0, "bool garbage refused");
	setenv("SWARMHUB_T_D", "15m", 1);
	T_OK(cfg_duration("T_D", 1, &v, &e) == 0 && v == 900, "duration");
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	test_logfmt();
	test_usernames();
	test_parsing();
	test_strbuf();
	test_time();
	test_cfg();
	return t_done();
}
