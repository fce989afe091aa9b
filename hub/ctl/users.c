/*
 * users.c - swarmhubctl users list|add|remove|set-admin|set-password.
 *
 * The list is every page of GET /hub/api/users, filtered here (activity,
 * group), as the hub's API has no such filters. Names go into URLs
 * percent-encoded (rest_pathf); passwords are wiped after use.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "ctl.h"

const char *
server_state(const json_t *s)
{
	const char *p = json_str(s, "pending");

	if (p != NULL && strcmp(p, "spawn") == 0)
		return "starting";
	if (p != NULL && strcmp(p, "stop") == 0)
		return "stopping";
	if (p != NULL)
		return p;
	if (json_is_true(json_object_get(s, "ready")))
		return "ready";
	return NULL;
}

json_t *
user_server(const json_t *u)
{
	return json_object_get(json_object_get(u, "servers"), "");
}

json_t *
names_json(const struct args *a, size_t from, struct err *e)
{
	json_t *names = json_array(), *s;
	size_t i;

	for (i = from; i < a->npos; i++) {
		s = json_string(a->pos[i]);
		if (s == NULL || *a->pos[i] == '\0') {
			json_decref(names);
			usage_err(e, "bad name '%.64s'", a->pos[i]);
			return NULL;
		}
		json_array_append_new(names, s);
	}
	return names;
}

/* The SERVER column: the default server's state, else the older top-level
 * fields (pending, server URL). */
static const char *
user_state(const json_t *u)
{
	const json_t *s = user_server(u);
	const char *st;

	st = server_state(s != NULL ? s : u);
	if (st == NULL && s == NULL && json_is_string(json_object_get(u,
	    "server")))
		st = "ready";
	return st != NULL ? st : "-";
}

static int
user_match(const json_t *u, const char *group, int inactive,
	   int64_t cutoff_ms)
{
	const json_t *g;
	size_t i;

	if (inactive && !time_older(json_object_get(u, "last_activity"),
	    cutoff_ms))
		return 0;
	if (group == NULL)
		return 1;
	json_array_foreach(json_object_get(u, "groups"), i, g)
		if (json_is_string(g) && strcmp(json_string_value(g),
		    group) == 0)
			return 1;
	return 0;
}

static void
users_table(const json_t *users)
{
	static const char *const head[] = { "NAME", "ADMIN", "GROUPS",
	    "SERVER", "LAST-ACTIVITY" };
	struct table t;
	struct strbuf groups;
	const json_t *u, *g;
	const char *row[5];
	char when[32];
	size_t i, k;

	table_init(&t, 5, head);
	sb_init(&groups);
	json_array_foreach(users, i, u) {
		groups.len = 0;
		sb_adds(&groups, "");
		json_array_foreach(json_object_get(u, "groups"), k, g) {
			if (k > 0)
				sb_addc(&groups, ',');
			sb_adds(&groups, json_is_string(g) ?
			    json_string_value(g) : "?");
		}
		row[0] = json_str(u, "name");
		row[1] = json_is_true(json_object_get(u, "admin")) ?
		    "yes" : "no";
		row[2] = groups.buf;
		row[3] = user_state(u);
		row[4] = fmt_time(json_object_get(u, "last_activity"), when,
		    sizeof(when));
		table_add(&t, row);
	}
	table_print(&t, stdout);
	sb_release(&groups);
	table_release(&t);
}

int
cmd_users_list(struct ctl *c, const struct args *a, struct err *e)
{
	const char *since = args_get(a, "inactive-since");
	const char *group = args_get(a, "group");
	json_t *all, *keep, *u;
	long secs = 0;
	int64_t cutoff;
	size_t i;

	if (since != NULL && str_to_duration(since, &secs,
	    "--inactive-since", e) < 0)
		return CTL_USAGE;
	cutoff = time_now_ms() - (int64_t)secs * 1000;
	if (rest_get_all(c, "/hub/api/users", NULL, &all, "list users",
	    e) < 0)
		return -1;
	keep = json_array();
	json_array_foreach(all, i, u)
		if (user_match(u, group, since != NULL, cutoff))
			json_array_append(keep, u);
	if (c->json)
		json_print(keep);
	else
		users_table(keep);
	json_decref(keep);
	json_decref(all);
	return 0;
}

static int
password_set(struct ctl *c, const char *name, const char *pw, struct err *e)
{
	json_t *body = json_pack("{s:s}", "password", pw);
	char *path = rest_pathf(c, "/hub/api/users/%s", name);
	char what[128];
	int rc;

	snprintf(what, sizeof(what), "set password of '%s'", name);
	rc = rest_call(c, "PATCH", path, body, NULL, NULL, what, e);
	json_decref(body);
	free(path);
	return rc;
}

static int
requested(const json_t *created, const char *name)
{
	const json_t *u;
	size_t i;

	json_array_foreach(created, i, u)
		if (json_str(u, "name") != NULL &&
		    strcasecmp(json_str(u, "name"), name) == 0)
			return 1;
	return 0;
}

/* Reports the created users, skipped names, and sets passwords. */
static int
added(struct ctl *c, const struct args *a, const json_t *created,
      const char *pw, struct err *e)
{
	const json_t *u;
	const char *name;
	int failed = 0;
	size_t i;

	for (i = 0; i < a->npos; i++)
		if (!requested(created, a->pos[i]))
			fprintf(stderr, "swarmhubctl: skipped '%s': it "
			    "already exists\n", a->pos[i]);
	json_array_foreach(created, i, u) {
		name = json_str(u, "name");
		if (name == NULL)
			continue;
		if (pw != NULL && password_set(c, name, pw, e) < 0) {
			ctl_report(e);
			failed = 1;
		}
		if (!c->json)
			printf("added user %s%s\n", name,
			    json_is_true(json_object_get(u, "admin")) ?
			    " (admin)" : "");
	}
	if (c->json)
		json_print(created);
	return failed ? CTL_REPORTED : 0;
}

int
cmd_users_add(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *names, *body, *created = NULL;
	char *pw = NULL;
	int rc;

	names = names_json(a, 0, e);
	if (names == NULL)
		return CTL_USAGE;
	if (args_get(a, "password-stdin") != NULL) {
		pw = password_read(e);
		if (pw == NULL) {
			json_decref(names);
			return -1;
		}
	}
	body = json_pack("{s:o, s:b}", "usernames", names, "admin",
	    args_get(a, "admin") != NULL);
	rc = rest_call(c, "POST", "/hub/api/users", body, &created, NULL,
	    a->npos == 1 ? "add user" : "add users", e);
	if (rc == 0)
		rc = added(c, a, created, pw, e);
	json_decref(created);
	json_decref(body);
	password_free(pw);
	return rc;
}

int
cmd_users_remove(struct ctl *c, const struct args *a, struct err *e)
{
	char what[128], *path;
	int failed = 0;
	size_t i;

	for (i = 0; i < a->npos; i++) {
		snprintf(what, sizeof(what), "remove user '%s'", a->pos[i]);
		path = rest_pathf(c, "/hub/api/users/%s", a->pos[i]);
		if (rest_call(c, "DELETE", path, NULL, NULL, NULL, what,
		    e) < 0) {
			ctl_report(e);
			failed = 1;
		} else if (!c->json)
			printf("removed user %s\n", a->pos[i]);
		free(path);
	}
	return failed ? CTL_REPORTED : 0;
}

static int
on_off(const char *s, int *on)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0 ||
	    strcmp(s, "yes") == 0)
		*on = 1;
	else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0 ||
	    strcmp(s, "no") == 0)
		*on = 0;
	else
		return -1;
	return 0;
}

int
cmd_users_set_admin(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *body, *user = NULL;
	char what[128], *path;
	int on, rc;

	if (on_off(a->pos[1], &on) < 0)
		return usage_err(e, "expected on or off, not '%.32s'",
		    a->pos[1]);
	snprintf(what, sizeof(what), "set admin of '%s'", a->pos[0]);
	body = json_pack("{s:b}", "admin", on);
	path = rest_pathf(c, "/hub/api/users/%s", a->pos[0]);
	rc = rest_call(c, "PATCH", path, body, &user, NULL, what, e);
	if (rc == 0 && c->json)
		json_print(user);
	else if (rc == 0)
		printf("%s: admin %s\n", a->pos[0], on ? "on" : "off");
	json_decref(user);
	json_decref(body);
	free(path);
	return rc;
}

int
cmd_users_set_password(struct ctl *c, const struct args *a, struct err *e)
{
	char *pw;
	int rc;

	pw = password_read(e);
	if (pw == NULL)
		return -1;
	rc = password_set(c, a->pos[0], pw, e);
	password_free(pw);
	if (rc == 0 && !c->json)
		printf("password set for %s\n", a->pos[0]);
	return rc;
}
