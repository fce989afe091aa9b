/*
 * servers.c - swarmhubctl servers list|start|stop: users' servers, the
 * default one (servers[""] of the user model, named NAME) and named ones
 * (servers["gpu"], named NAME/gpu, as JupyterHub's idle culler logs them).
 *
 * The hub answers 201/204 when a start/stop is done and 202 while it is
 * still pending; both are success and printed as "ready"/"stopped" or
 * "pending". Idle means a server's last_activity (else started) is older
 * than the given duration, or absent.
 */
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

/* Users with a server that runs or is pending, from state=active. */
static int
active_users(struct ctl *c, json_t **out, struct err *e)
{
	json_t *all, *u, *s;
	const char *key;
	size_t i;

	if (rest_get_all(c, "/hub/api/users", "state=active", &all,
	    "list servers", e) < 0)
		return -1;
	*out = json_array();
	json_array_foreach(all, i, u) {
		int any = 0;

		json_object_foreach(json_object_get(u, "servers"), key, s)
			any |= server_state(s) != NULL;
		if (any)
			json_array_append(*out, u);
	}
	json_decref(all);
	return 0;
}

/* "NAME" or "NAME/SERVER" (heap), the way the commands take it. */
static char *
server_id(const char *user, const char *server)
{
	return *server ? xasprintf("%s/%s", user, server) : xstrdup(user);
}

/* The API path of NAME[/SERVER] (heap). */
static char *
server_path(struct ctl *c, const char *id)
{
	const char *slash = strchr(id, '/');
	char *user, *path;

	if (slash == NULL)
		return rest_pathf(c, "/hub/api/users/%s/server", id);
	user = xstrndup(id, (size_t)(slash - id));
	path = rest_pathf(c, "/hub/api/users/%s/servers/%s", user,
			  slash + 1);
	free(user);
	return path;
}

int
cmd_servers_list(struct ctl *c, const struct args *a, struct err *e)
{
	static const char *const head[] = { "NAME", "STATE", "IMAGE",
	    "STARTED", "LAST-ACTIVITY" };
	struct table t;
	json_t *users, *u, *s;
	const char *row[5];
	char started[32], last[32];
	size_t i;

	(void)a;
	if (active_users(c, &users, e) < 0)
		return -1;
	if (c->json) {
		json_print(users);
		json_decref(users);
		return 0;
	}
	table_init(&t, 5, head);
	json_array_foreach(users, i, u) {
		const char *key;

		json_object_foreach(json_object_get(u, "servers"), key, s) {
			char *id;

			if (server_state(s) == NULL || !json_str(u, "name"))
				continue;
			id = server_id(json_str(u, "name"), key);
			row[0] = id;
			row[1] = server_state(s);
			row[2] = json_str(json_object_get(s, "user_options"),
					  "image");
			row[3] = fmt_time(json_object_get(s, "started"),
			    started, sizeof(started));
			row[4] = fmt_time(json_object_get(s, "last_activity"),
			    last, sizeof(last));
			table_add(&t, row);
			free(id);
		}
	}
	table_print(&t, stdout);
	table_release(&t);
	json_decref(users);
	return 0;
}

/* Adds --name N as a positive number under key. */
static int
number_opt(const struct args *a, const char *name, const char *key,
	   json_t *o, struct err *e)
{
	const char *v = args_get(a, name);
	char *end;
	double d;

	if (v == NULL)
		return 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0' || !(d >= 0 && d < 1e6))
		return usage_err(e, "--%s: '%.32s' is not a number", name, v);
	json_object_set_new(o, key, json_real(d));
	return 0;
}

static int
string_opt(const struct args *a, const char *name, json_t *o,
	   struct err *e)
{
	const char *v = args_get(a, name);
	json_t *s;

	if (v == NULL)
		return 0;
	s = json_string(v);
	if (s == NULL)
		return usage_err(e, "--%s: not UTF-8", name);
	json_object_set_new(o, name, s);
	return 0;
}

/* The user options (JSON body of the start) from the command's options. */
static json_t *
user_options(const struct args *a, struct err *e)
{
	json_t *o = json_object();
	const char *gpus = args_get(a, "gpus");
	long n;

	if (string_opt(a, "profile", o, e) < 0 ||
	    string_opt(a, "image", o, e) < 0 ||
	    string_opt(a, "pool", o, e) < 0 ||
	    number_opt(a, "cpu", "cpu", o, e) < 0 ||
	    number_opt(a, "mem-gb", "mem_gb", o, e) < 0)
		goto bad;
	if (gpus != NULL) {
		if (str_to_long(gpus, 0, 1024, &n, "--gpus", e) < 0) {
			usage_err(e, "--gpus: '%.32s' is not a count", gpus);
			goto bad;
		}
		json_object_set_new(o, "gpus", json_integer(n));
	}
	return o;
bad:
	json_decref(o);
	return NULL;
}

/* Prints "NAME: state", or adds {"name", "state"} to results (--json). */
static void
result(const struct ctl *c, json_t *results, const char *name,
       const char *state)
{
	if (c->json)
		json_array_append_new(results, json_pack("{s:s, s:s}",
		    "name", name, "state", state));
	else
		printf("%s: %s\n", name, state);
}

int
cmd_servers_start(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *body, *results;
	char what[128], *path;
	long status;
	int rc;

	body = user_options(a, e);
	if (body == NULL)
		return CTL_USAGE;
	snprintf(what, sizeof(what), "start server '%s'", a->pos[0]);
	path = server_path(c, a->pos[0]);
	rc = rest_call(c, "POST", path, body, NULL, &status, what, e);
	results = json_array();
	if (rc == 0)
		result(c, results, a->pos[0], status == 202 ? "pending" :
		    "ready");
	if (rc == 0 && c->json)
		json_print(json_array_get(results, 0));
	json_decref(results);
	json_decref(body);
	free(path);
	return rc;
}

/* name: NAME or NAME/SERVER; remove: a named server's record goes too. */
static int
stop_one(struct ctl *c, const char *name, int remove, json_t *results,
	 struct err *e)
{
	char what[160], *path;
	json_t *body = remove && strchr(name, '/') ?
	    json_pack("{s:b}", "remove", 1) : NULL;
	long status;
	int rc;

	snprintf(what, sizeof(what), "stop server '%s'", name);
	path = server_path(c, name);
	rc = rest_call(c, "DELETE", path, body, NULL, &status, what, e);
	json_decref(body);
	if (rc == 0)
		result(c, results, name, status == 202 ? "pending" :
		    "stopped");
	else
		ctl_report(e);
	free(path);
	return rc;
}

static int
stop_idle(struct ctl *c, const char *idle, int dry, json_t *results,
	  struct err *e)
{
	json_t *users, *u, *s, *last;
	int64_t cutoff;
	long secs;
	int failed = 0;
	size_t i;

	if (str_to_duration(idle, &secs, "--idle-for", e) < 0)
		return CTL_USAGE;
	cutoff = time_now_ms() - (int64_t)secs * 1000;
	if (active_users(c, &users, e) < 0)
		return -1;
	json_array_foreach(users, i, u) {
		const char *key;

		json_object_foreach(json_object_get(u, "servers"), key, s) {
			char *id;

			last = json_object_get(s, "last_activity");
			if (!json_is_string(last))
				last = json_object_get(s, "started");
			if (server_state(s) == NULL ||
			    !time_older(last, cutoff) ||
			    json_str(u, "name") == NULL)
				continue;
			id = server_id(json_str(u, "name"), key);
			if (dry)
				result(c, results, id, "idle");
			else if (stop_one(c, id, 0, results, e) < 0)
				failed = 1;
			free(id);
		}
	}
	json_decref(users);
	return failed ? CTL_REPORTED : 0;
}

int
cmd_servers_stop(struct ctl *c, const struct args *a, struct err *e)
{
	const char *idle = args_get(a, "idle-for");
	int dry = args_get(a, "dry-run") != NULL;
	int remove = args_get(a, "remove") != NULL;
	json_t *results;
	int rc = 0;
	size_t i;

	if (idle != NULL && a->npos > 0)
		return usage_err(e, "give NAMEs or --idle-for, not both");
	if (idle == NULL && a->npos == 0)
		return usage_err(e, "missing NAME or --idle-for");
	if (dry && idle == NULL)
		return usage_err(e, "--dry-run needs --idle-for");
	if (remove && idle != NULL)
		return usage_err(e, "--remove takes NAME/SERVERs, not "
				 "--idle-for");
	results = json_array();
	if (idle != NULL)
		rc = stop_idle(c, idle, dry, results, e);
	for (i = 0; i < a->npos; i++)
		if (stop_one(c, a->pos[i], remove, results, e) < 0)
			rc = CTL_REPORTED;
	if (c->json && rc != CTL_USAGE)
		json_print(results);
	json_decref(results);
	return rc;
}
