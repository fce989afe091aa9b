/*
 * fuzz_request.c - libFuzzer target for what the hub parses from requests:
 * JSON bodies (json_parse_object), url-encoded forms (form_value),
 * usernames, ISO 8601 times, UTF-8 checks and the Cookie header
 * (cookie_copy must say what cookie_value says, or refuse a long value). `make fuzz` builds and runs
 * it under ASan/UBSan for FUZZ_SECONDS (default 30).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = { "usernames", "admin", "name",
		"password", "note", "expires_in", "scopes", NULL };
	static const char *const keys[] = { "username", "password", "_xsrf" };
	char *s = malloc(size + 1);
	char name[USER_NAME_MAX + 1], cookie[65], *cv;
	struct err e = { 0 };
	json_t *j = NULL;
	int64_t ms;

	memcpy(s, data, size);
	s[size] = '\0';
	log_set_level(LOG_ERROR);
	if (json_parse_object(s, size, allowed, &j, &e) == 0)
		json_decref(j);
	for (size_t i = 0; i < 3; i++)
		free(form_value(s, size, keys[i]));
	(void)user_name_normalize(s, name, &e);
	(void)time_parse_iso8601(s, &ms);
	(void)str_utf8_ok(s, size);
	cv = cookie_value(s, SESSION_COOKIE);
	if (cookie_copy(s, SESSION_COOKIE, cookie, sizeof(cookie)) == 0) {
		if (cv == NULL || strcmp(cv, cookie) != 0)
			abort();
	} else if (cv && strlen(cv) < sizeof(cookie)) {
		abort();
	}
	free(cv);
	free(s);
	return 0;
}
