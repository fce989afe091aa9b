/*
 * test_hub_parts.c - the hub's pure pieces: request-body parsing, form
 * decoding, the failed-login limiter, the in-memory state and local
 * password hashing.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/t.h"
#include "../../hub/web.h"

static const char *const allowed[] = { "usernames", "admin", NULL };

static int
parse(const char *body, struct err *e)
{
	json_t *j = NULL;
	int rc = json_parse_object(body, strlen(body), allowed, &j, e);

	json_decref(j);
	return rc;
}

static void
test_json(void)
{
	struct err e = { 0 };

	T_OK(parse("{\"usernames\": [\"a\"], \"admin\": true}", &e) == 0,
	     "known keys accepted");
	T_OK(parse("{\"usernames\": [], \"rm\": 1}", &e) < 0 &&
	     strstr(e.msg, "unknown field 'rm'"), "unknown key named");
	T_OK(parse("[1]", &e) < 0 && strstr(e.msg, "object"),
	     "non-object refused");
	T_OK(parse("{\"admin\": tru", &e) < 0 && strstr(e.msg, "not valid JSON"),
	     "malformed JSON explained");
	T_OK(parse("{\"admin\": \"\xff\"}", &e) < 0 && strstr(e.msg, "UTF-8"),
	     "non-UTF-8 refused");
	T_OK(parse("{\"admin\": 1, \"admin\": 2}", &e) < 0,
	     "duplicate keys refused");
	T_OK(parse("", &e) < 0 && e.code == ERR_INVALID, "empty body refused");
}

static void
test_form(void)
{
	const char *b = "username=Al%20ice+B&password=p%26w%3D&_xsrf=abc&e=";
	char *v;

	v = form_value(b, strlen(b), "username");
	T_STREQ(v, "Al ice B", "percent and plus decoded");
	free(v);
	v = form_value(b, strlen(b), "password");
	T_STREQ(v, "p&w=", "encoded separators decoded");
	free(v);
	v = form_value(b, strlen(b), "e");
	T_STREQ(v, "", "empty value");
	free(v);
	T_OK(form_value(b, strlen(b), "missing") == NULL, "missing key");
	T_OK(form_value("a=%zz", 5, "a") == NULL, "bad escape refused");
	T_OK(form_value("a=%0", 4, "a") == NULL, "short escape refused");
	T_OK(form_value("a=x%00y", 7, "a") == NULL, "NUL refused");
	T_OK(form_value("user=x", 6, "username") == NULL, "prefix not a match");
}

static void
add_user(struct state *s, const char *name, int64_t id)
{
	const char *g[] = { "ds", "team" };
	struct store_user su = { .id = id, .name = name, .created_ms = 1000,
				 .groups = g, .ngroups = 2 };

	state_user_add(s, &su);
}

static void
test_state(void)
{
	struct state s;
	struct store_token tk = { 7, "h1", "alice", "n", 1, 0, 0 };
	struct store_session ss = { "s1", "alice", 1, 1, 99, 1 };
	char name[16];
	size_t n;
	struct token **mine;

	T_OK(state_init(&s) == 0, "init");
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		add_user(&s, name, i + 10);
	}
	add_user(&s, "alice", 5);
	T_OK(s.nusers == 3001 && s.user_list[0] == state_user(&s, "alice"),
	     "list kept in id order");
	T_OK(state_user(&s, "u2999") != NULL && state_user(&s, "x") == NULL,
	     "lookup after growth");
	state_token_add(&s, &tk);
	state_session_add(&s, &ss);
	mine = state_tokens_of(&s, "alice", &n);
	T_OK(n == 1 && mine[0]->id == 7, "tokens of a user");
	free(mine);
	state_user_rename(&s, state_user(&s, "alice"), "alicia");
	T_OK(state_user(&s, "alice") == NULL && state_user(&s, "alicia"),
	     "rename moves the key");
	T_OK(!strcmp(state_token(&s, "h1")->user, "alicia") &&
	     !strcmp(state_session(&s, "s1")->user, "alicia"),
	     "rename follows tokens and sessions");
	state_user_remove(&s, "alicia");
	T_OK(state_token(&s, "h1") == NULL && state_session(&s, "s1") == NULL,
	     "removing a user forgets its tokens and sessions");
	T_OK(s.nusers == 3000 && s.user_list[0]->id == 10, "list compacted");
	state_token_add(&s, &(struct store_token){ 8, "h2", "u1", "", 1, 0, 0 });
	state_token_remove_id(&s, 8);
	T_OK(state_token(&s, "h2") == NULL, "remove token by id");
	state_touch_user(s.user_list[0], 5000);
	T_OK(s.user_list[0]->last_activity_ms == 5000 &&
	     s.user_list[0]->activity_dirty, "touch marks dirty");
	state_release(&s);
}

/* A user's servers: the default one and named ones, by name. */
static void
test_user_servers(void)
{
	struct user u = { 0 };
	struct err e = { 0 };

	T_OK(user_nservers(&u) == 1 && user_server_at(&u, 0) == NULL &&
	     user_server(&u, "") == NULL, "no server at first");
	user_server_add(&u, "")->state = SRV_RUNNING;
	user_server_add(&u, "gpu")->state = SRV_STARTING;
	user_server_add(&u, "cpu");
	T_OK(user_nservers(&u) == 3 && u.server == user_server(&u, "") &&
	     strcmp(user_server_at(&u, 1)->name, "gpu") == 0 &&
	     strcmp(user_server_at(&u, 2)->name, "cpu") == 0,
	     "default first, named in creation order");
	T_OK(user_active_servers(&u) == 2, "two not stopped");
	T_OK(user_busiest_state(&u) == SRV_STARTING,
	     "a pending state wins over running");
	user_server(&u, "gpu")->state = SRV_STOPPED;
	T_OK(user_busiest_state(&u) == SRV_RUNNING, "then running");
	user_server_remove(&u, "gpu");
	T_OK(u.nnamed == 1 && user_server(&u, "gpu") == NULL &&
	     user_server(&u, "cpu") != NULL, "remove forgets one named");
	user_server_remove(&u, "cpu");
	server_free(u.server);
	free(u.named);

	T_OK(servers_name_check("", &e) == 0, "\"\" is the default server");
	T_OK(servers_name_check("gpu", &e) == 0 &&
	     servers_name_check("0proj.v2_x-y", &e) == 0, "valid names");
	T_OK(servers_name_check("Gpu", &e) < 0 && e.code == ERR_INVALID &&
	     strstr(e.msg, "server name 'Gpu' is not valid: 1-63") != NULL,
	     "upper case refused, the rule named (%s)", e.msg);
	T_OK(servers_name_check("-x", &e) < 0 && servers_name_check(".x", &e)
	     < 0 && servers_name_check("a/b", &e) < 0 &&
	     servers_name_check("a b", &e) < 0, "bad first or other char");
	T_OK(servers_name_check("123456789012345678901234567890123456789012"
				"345678901234567890123", &e) == 0 &&
	     servers_name_check("123456789012345678901234567890123456789012"
				"3456789012345678901234", &e) < 0,
	     "63 characters at most");
	T_OK(servers_name_check("api", &e) < 0 &&
	     strstr(e.msg, "reserved") != NULL, "api is reserved (%s)", e.msg);
}

static void
test_passwords(void)
{
	struct err e = { 0 };
	char *h = auth_local_hash("correct horse", &e);

	T_OK(h && strncmp(h, "$y$", 3) == 0, "yescrypt hash");
	T_OK(auth_local_verify("correct horse", h), "right password");
	T_OK(!auth_local_verify("correct hors", h), "wrong password");
	T_OK(!auth_local_verify("", h), "empty password");
	T_OK(!auth_local_verify("x", NULL), "no hash");
	T_OK(!auth_local_verify("x", "garbage"), "bad hash");
	T_OK(auth_local_hash("", &e) == NULL && e.code == ERR_INVALID,
	     "empty password refused");
	free(h);
}

/* cookie_copy (the proxy's session cookie, no allocation) says what
 * cookie_value says, or -1 where the value does not fit. */
static void
test_cookies(void)
{
	static const char *const headers[] = {
		"a=1; swarmhub-session=abc; b=2", "swarmhub-session=x",
		"xswarmhub-session=no; swarmhub-session=yes",
		"swarmhub-session=first; swarmhub-session=second",
		"swarmhub-session=", "other=1", ";;  swarmhub-session=s ;",
		NULL };
	char out[8], *v;

	for (size_t i = 0; headers[i]; i++) {
		int rc = cookie_copy(headers[i], SESSION_COOKIE, out,
				     sizeof(out));

		v = cookie_value(headers[i], SESSION_COOKIE);
		T_OK(v ? rc == 0 && strcmp(out, v) == 0 : rc == -1,
		     "cookie_copy agrees with cookie_value on '%s'",
		     headers[i]);
		free(v);
	}
	T_OK(cookie_copy("swarmhub-session=1234567", SESSION_COOKIE, out,
			 sizeof(out)) == 0 && strcmp(out, "1234567") == 0,
	     "a value of size - 1 fits");
	T_OK(cookie_copy("swarmhub-session=12345678", SESSION_COOKIE, out,
			 sizeof(out)) == -1, "a longer one is refused");
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	test_json();
	test_form();
	test_state();
	test_user_servers();
	test_passwords();
	test_cookies();
	return t_done();
}
