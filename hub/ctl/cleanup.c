/*
 * cleanup.c - swarmhubctl cleanup: remove the users who left, in steps.
 *
 * First the plan: the users picked by --inactive-since (last activity, or
 * creation for users never active, older than the cutoff), --not-in-ldap
 * (POST /hub/api/swarmhub/ldap-check over every user) or by NAME, each with
 * its server state, token count and what happens to the home. --dry-run
 * stops there. Then, user by user and in order: stop the server (DELETE
 * .../server, then poll the user until it has none), delete the user
 * (revokes sessions and tokens), and archive or delete the home
 * (POST /hub/api/swarmhub/homes/<name>). Each step done is printed; a
 * failed step ends that user's sequence with one line on stderr naming
 * the steps done and not done, and the next user goes on. A NAME that is
 * no user but an orphan home (no user owns it) gets the home step only.
 * Ownership: the plan owns its names; JSON values are freed before return.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"

#define STOP_WAIT_MS	120000
#define STOP_POLL_MS	500

enum home_action { HOME_KEEP, HOME_ARCHIVE, HOME_DELETE };
static const char *const home_words[] = { "keep", "archive", "delete" };

struct victim {
	char *name;
	int user;		/* 0: no user, an orphan home only */
	char *server;		/* "ready", "starting", ... or NULL */
	long tokens;		/* -1: unknown */
};

struct plan {
	struct victim *v;
	size_t n, cap;
	enum home_action home;
	size_t failed;		/* NAMEs that could not be planned */
	json_t *homes;		/* orphan home names, fetched on demand */
};

static void
plan_add(struct plan *p, const char *name, int user, const char *server)
{
	struct victim *v;
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, name) == 0)
			return;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	v = &p->v[p->n++];
	v->name = xstrdup(name);
	v->user = user;
	v->server = server ? xstrdup(server) : NULL;
	v->tokens = -1;
}

static void
plan_release(struct plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].server);
	}
	free(p->v);
	json_decref(p->homes);
}

/* Reports a failure about one name and marks the plan failed. */
static void
plan_fail(struct plan *p, const struct err *e)
{
	ctl_report(e);
	p->failed++;
}

static void
plan_add_user(struct plan *p, const json_t *u)
{
	const char *name = json_str(u, "name");

	if (name != NULL)
		plan_add(p, name, 1, server_state(user_server(u)));
}

/* The name of the token's owner when it is a user (heap), else NULL. */
static char *
token_owner(struct ctl *c)
{
	json_t *me = NULL;
	struct err e;
	char *name = NULL;

	if (rest_call(c, "GET", "/hub/api/user", NULL, &me, NULL, "whoami",
	    &e) == 0 && json_str(me, "kind") != NULL &&
	    strcmp(json_str(me, "kind"), "user") == 0 &&
	    json_str(me, "name") != NULL)
		name = xstrdup(json_str(me, "name"));
	json_decref(me);
	return name;
}

/* Never active: judged by creation; no creation time: not picked. */
static int
inactive(const json_t *u, int64_t cutoff_ms)
{
	const json_t *last = json_object_get(u, "last_activity");

	if (json_is_string(last))
		return time_older(last, cutoff_ms);
	last = json_object_get(u, "created");
	return json_is_string(last) && time_older(last, cutoff_ms);
}

static int
pick_inactive(struct ctl *c, long secs, const char *self, struct plan *p,
	      struct err *e)
{
	int64_t cutoff = time_now_ms() - (int64_t)secs * 1000;
	json_t *all, *u;
	size_t i;

	if (rest_get_all(c, "/hub/api/users", NULL, &all, "list users",
	    e) < 0)
		return -1;
	json_array_foreach(all, i, u)
		if (inactive(u, cutoff) && (self == NULL ||
		    json_str(u, "name") == NULL ||
		    strcmp(self, json_str(u, "name")) != 0))
			plan_add_user(p, u);
	json_decref(all);
	return 0;
}

static int
listed(const json_t *names, const char *name)
{
	const json_t *n;
	size_t i;

	json_array_foreach(names, i, n)
		if (json_is_string(n) && name != NULL &&
		    strcmp(json_string_value(n), name) == 0)
			return 1;
	return 0;
}

static int
pick_not_in_ldap(struct ctl *c, const char *self, struct plan *p,
		 struct err *e)
{
	json_t *all, *u, *names, *body, *ans = NULL, *missing;
	size_t i;
	int rc;

	if (rest_get_all(c, "/hub/api/users", NULL, &all, "list users",
	    e) < 0)
		return -1;
	names = json_array();
	json_array_foreach(all, i, u)
		if (json_str(u, "name") != NULL)
			json_array_append_new(names,
			    json_string(json_str(u, "name")));
	body = json_pack("{s:o}", "users", names);
	rc = rest_call(c, "POST", "/hub/api/swarmhub/ldap-check", body, &ans,
	    NULL, "check users in LDAP", e);
	missing = json_object_get(ans, "missing");
	if (rc == 0 && !json_is_array(missing))
		rc = err_set(e, ERR_UPSTREAM, "check users in LDAP: the "
		    "answer has no \"missing\" list");
	json_array_foreach(all, i, u)
		if (rc == 0 && listed(missing, json_str(u, "name")) &&
		    (self == NULL || strcmp(self, json_str(u, "name")) != 0))
			plan_add_user(p, u);
	json_decref(ans);
	json_decref(body);
	json_decref(all);
	return rc;
}

/* 1 if name is an orphan home (fetches the list once), 0 if not, -1. */
static int
orphan_home(struct ctl *c, struct plan *p, const char *name, struct err *e)
{
	json_t *ans = NULL;

	if (p->homes == NULL) {
		if (rest_call(c, "GET", "/hub/api/swarmhub/orphans", NULL,
		    &ans, NULL, "list orphan homes", e) < 0)
			return -1;
		p->homes = json_incref(json_object_get(ans, "homes"));
		json_decref(ans);
		if (p->homes == NULL)
			p->homes = json_array();
	}
	return listed(p->homes, name);
}

/* A NAME that is no user: an orphan home when the home is to go. */
static void
pick_missing(struct ctl *c, struct plan *p, const char *name)
{
	struct err e;
	int r = 0;

	if (p->home != HOME_KEEP) {
		r = orphan_home(c, p, name, &e);
		if (r < 0) {
			plan_fail(p, &e);
			return;
		}
	}
	if (r == 1) {
		plan_add(p, name, 0, NULL);
		return;
	}
	err_set(&e, ERR_NOTFOUND, "cleanup '%s': no such user%s", name,
	    p->home != HOME_KEEP ? ", and no home without a user" : "");
	plan_fail(p, &e);
}

static void
pick_names(struct ctl *c, const struct args *a, struct plan *p)
{
	char what[128], *path;
	json_t *u;
	struct err e;
	size_t i;

	for (i = 0; i < a->npos; i++) {
		snprintf(what, sizeof(what), "cleanup '%s'", a->pos[i]);
		path = rest_pathf(c, "/hub/api/users/%s", a->pos[i]);
		u = NULL;
		if (rest_call(c, "GET", path, NULL, &u, NULL, what, &e) == 0)
			plan_add_user(p, u);
		else if (e.code == ERR_NOTFOUND)
			pick_missing(c, p, a->pos[i]);
		else
			plan_fail(p, &e);
		json_decref(u);
		free(path);
	}
}

static void
count_tokens(struct ctl *c, struct victim *v)
{
	json_t *ans = NULL, *list;
	char *path;
	struct err e;

	path = rest_pathf(c, "/hub/api/users/%s/tokens", v->name);
	if (rest_call(c, "GET", path, NULL, &ans, NULL, "list tokens",
	    &e) == 0) {
		list = json_object_get(ans, "api_tokens");
		if (json_is_array(list))
			v->tokens = (long)json_array_size(list);
	}
	json_decref(ans);
	free(path);
}

/* ---- the plan, shown --------------------------------------------------- */

static json_t *
plan_json(const struct plan *p)
{
	json_t *list = json_array();
	const struct victim *v;
	size_t i;

	for (i = 0; i < p->n; i++) {
		v = &p->v[i];
		json_array_append_new(list, json_pack("{s:s, s:b, s:s?, "
		    "s:o, s:s}", "user", v->name, "user_exists", v->user,
		    "server", v->server, "tokens", v->tokens < 0 ?
		    json_null() : json_integer(v->tokens), "home",
		    home_words[p->home]));
	}
	return list;
}

static void
plan_print(const struct plan *p)
{
	static const char *const head[] = { "USER", "SERVER", "TOKENS",
	    "HOME" };
	struct table t;
	const char *row[4];
	char tokens[24], user[96];
	size_t i;

	table_init(&t, 4, head);
	for (i = 0; i < p->n; i++) {
		snprintf(tokens, sizeof(tokens), "%ld", p->v[i].tokens);
		snprintf(user, sizeof(user), "%s%s", p->v[i].name,
		    p->v[i].user ? "" : " (no user)");
		row[0] = user;
		row[1] = p->v[i].user ? (p->v[i].server ? p->v[i].server :
		    "no") : "-";
		row[2] = !p->v[i].user ? "-" : p->v[i].tokens < 0 ? "?" :
		    tokens;
		row[3] = home_words[p->home];
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_release(&t);
}

/* ---- the steps --------------------------------------------------------- */

struct step {
	const char *name;	/* "stop server", for the report */
	int (*run)(struct ctl *c, const char *user, enum home_action home,
		   char *done, size_t size, struct err *e);
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Polls the user until it has no default server (or is gone). */
static int
stop_wait(struct ctl *c, const char *user, const char *path, struct err *e)
{
	int64_t deadline = time_mono_ms() + STOP_WAIT_MS;
	json_t *u;
	int gone;

	for (;;) {
		u = NULL;
		if (rest_call(c, "GET", path, NULL, &u, NULL, "wait for the "
		    "server to stop", e) < 0)
			return e->code == ERR_NOTFOUND ? 0 : -1;
		gone = user_server(u) == NULL;
		json_decref(u);
		if (gone)
			return 0;
		if (time_mono_ms() >= deadline)
			return err_set(e, ERR_TIMEOUT, "server of '%s' still "
			    "stopping after %d s", user, STOP_WAIT_MS / 1000);
		sleep_ms(STOP_POLL_MS);
	}
}

/* Asks the user first: a hub without spawning refuses DELETE .../server
 * even when there is nothing to stop. */
static int
step_stop(struct ctl *c, const char *user, enum home_action home,
	  char *done, size_t size, struct err *e)
{
	char *path, *upath;
	json_t *u = NULL;
	long status = 0;
	int rc, none;

	(void)home;
	path = rest_pathf(c, "/hub/api/users/%s/server", user);
	upath = rest_pathf(c, "/hub/api/users/%s", user);
	rc = rest_call(c, "GET", upath, NULL, &u, NULL, "stop server", e);
	none = rc == 0 && user_server(u) == NULL;
	json_decref(u);
	if (rc == 0 && !none)
		rc = rest_call(c, "DELETE", path, NULL, NULL, &status,
		    "stop server", e);
	if (rc == 0 && status == 202)
		rc = stop_wait(c, user, upath, e);
	if (rc == 0)
		snprintf(done, size, none ? "no server running" :
		    "server stopped");
	free(upath);
	free(path);
	return rc;
}

static int
step_delete_user(struct ctl *c, const char *user, enum home_action home,
		 char *done, size_t size, struct err *e)
{
	char *path = rest_pathf(c, "/hub/api/users/%s", user);
	int rc;

	(void)home;
	rc = rest_call(c, "DELETE", path, NULL, NULL, NULL, "delete user", e);
	if (rc == 0)
		snprintf(done, size, "user deleted (sessions and tokens "
		    "revoked)");
	free(path);
	return rc;
}

static int
step_home(struct ctl *c, const char *user, enum home_action home,
	  char *done, size_t size, struct err *e)
{
	json_t *body, *ans = NULL;
	char *path;
	int rc;

	if (home == HOME_KEEP) {
		snprintf(done, size, "home kept");
		return 0;
	}
	path = rest_pathf(c, "/hub/api/swarmhub/homes/%s", user);
	body = json_pack("{s:s}", "action", home_words[home]);
	rc = rest_call(c, "POST", path, body, &ans, NULL, home == HOME_ARCHIVE ?
	    "archive home" : "delete home", e);
	if (rc < 0 && e->code == ERR_NOTFOUND) {
		snprintf(done, size, "no home to %s", home_words[home]);
		rc = 0;
	} else if (rc == 0 && home == HOME_ARCHIVE)
		snprintf(done, size, "home archived to %s",
		    json_str(ans, "archived_to") ? json_str(ans,
		    "archived_to") : "?");
	else if (rc == 0)
		snprintf(done, size, "home deleted");
	json_decref(ans);
	json_decref(body);
	free(path);
	return rc;
}

static const struct step steps[] = {
	{ "stop server", step_stop },
	{ "delete user", step_delete_user },
	{ "home", step_home },
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static const char *
step_name(size_t k, enum home_action home)
{
	static const char *const homes[] = { "keep home", "archive home",
	    "delete home" };

	return k == NSTEPS - 1 ? homes[home] : steps[k].name;
}

/* "done: a, b; not done: c, d" for a sequence that stopped at step k. */
static void
report_failure(const struct victim *v, enum home_action home, size_t first,
	       size_t k, const struct err *e)
{
	struct strbuf sb;
	size_t i;

	fflush(stdout);
	sb_init(&sb);
	sb_addf(&sb, "cleanup of '%s' stopped: %s; done: ", v->name, e->msg);
	for (i = first; i < k; i++)
		sb_addf(&sb, "%s%s", i > first ? ", " : "", step_name(i,
		    home));
	if (k == first)
		sb_adds(&sb, "nothing");
	sb_adds(&sb, "; not done: ");
	for (i = k; i < NSTEPS; i++)
		sb_addf(&sb, "%s%s", i > k ? ", " : "", step_name(i, home));
	fprintf(stderr, "swarmhubctl: %s\n", sb.buf);
	sb_release(&sb);
}

/* Runs the steps for one user; returns 0 or -1 (reported). */
static int
run_one(struct ctl *c, const struct victim *v, enum home_action home,
	json_t *results)
{
	json_t *res, *done = json_array(), *todo = json_array();
	size_t first = v->user ? 0 : NSTEPS - 1, k, i;
	struct err e = { ERR_OK, "" };
	char msg[320];

	for (k = first; k < NSTEPS; k++) {
		if (steps[k].run(c, v->name, home, msg, sizeof(msg), &e) < 0)
			break;
		json_array_append_new(done, json_string(msg));
		if (!c->json)
			printf("%s: %s\n", v->name, msg);
	}
	if (k < NSTEPS)
		report_failure(v, home, first, k, &e);
	for (i = k; i < NSTEPS; i++)
		json_array_append_new(todo, json_string(step_name(i, home)));
	res = json_pack("{s:s, s:o, s:o, s:s?}", "user", v->name, "done",
	    done, "not_done", todo, "error", k < NSTEPS ? e.msg : NULL);
	json_array_append_new(results, res);
	fflush(stdout);
	return k < NSTEPS ? -1 : 0;
}

/* ---- the command ------------------------------------------------------- */

/* Asks on the terminal; 1 when the answer is "yes". */
static int
confirmed(size_t n)
{
	char line[64];

	fprintf(stderr, "This deletes the homes of %zu user%s for good (no "
	    "archive).\nType yes to go on: ", n, n == 1 ? "" : "s");
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return strcmp(str_trim(line), "yes") == 0;
}

static int
options(const struct args *a, enum home_action *home, long *secs,
	struct err *e)
{
	const char *h = args_get(a, "home"), *since = args_get(a,
	    "inactive-since");
	int modes = (since != NULL) + (args_get(a, "not-in-ldap") != NULL) +
	    (a->npos > 0);

	if (modes != 1)
		return usage_err(e, "give exactly one of --inactive-since, "
		    "--not-in-ldap or NAMEs");
	*home = HOME_KEEP;
	if (h != NULL && strcmp(h, "archive") == 0)
		*home = HOME_ARCHIVE;
	else if (h != NULL && strcmp(h, "delete") == 0)
		*home = HOME_DELETE;
	else if (h != NULL && strcmp(h, "keep") != 0)
		return usage_err(e, "--home: expected keep, archive or "
		    "delete, not '%.32s'", h);
	if (since != NULL && str_to_duration(since, secs, "--inactive-since",
	    e) < 0)
		return CTL_USAGE;
	if (*home == HOME_DELETE && args_get(a, "yes") == NULL &&
	    args_get(a, "dry-run") == NULL && !isatty(STDIN_FILENO))
		return usage_err(e, "--home delete removes homes for good: "
		    "add --yes, or run on a terminal to confirm");
	return 0;
}

static int
plan_make(struct ctl *c, const struct args *a, long secs, struct plan *p,
	  struct err *e)
{
	char *self = NULL;
	size_t i;
	int rc = 0;

	if (a->npos > 0)
		pick_names(c, a, p);
	else {
		self = token_owner(c);	/* never clean up oneself */
		if (args_get(a, "inactive-since") != NULL)
			rc = pick_inactive(c, secs, self, p, e);
		else
			rc = pick_not_in_ldap(c, self, p, e);
		free(self);
	}
	for (i = 0; rc == 0 && i < p->n; i++)
		if (p->v[i].user)
			count_tokens(c, &p->v[i]);
	return rc;
}

static int
execute(struct ctl *c, const struct plan *p, json_t *out)
{
	json_t *results = json_array();
	size_t i, ok = 0;

	for (i = 0; i < p->n; i++)
		if (run_one(c, &p->v[i], p->home, results) == 0)
			ok++;
	if (!c->json)
		printf("cleaned up %zu of %zu\n", ok, p->n + p->failed);
	json_object_set_new(out, "results", results);
	return ok == p->n ? 0 : -1;
}

int
cmd_cleanup(struct ctl *c, const struct args *a, struct err *e)
{
	struct plan p = { NULL, 0, 0, HOME_KEEP, 0, NULL };
	int dry = args_get(a, "dry-run") != NULL, rc;
	json_t *out;
	long secs = 0;

	rc = options(a, &p.home, &secs, e);
	if (rc < 0)
		return rc;
	if (plan_make(c, a, secs, &p, e) < 0) {
		plan_release(&p);
		return -1;
	}
	out = json_pack("{s:o, s:b}", "plan", plan_json(&p), "dry_run", dry);
	if (!c->json && p.n == 0)
		printf("nothing to clean up\n");
	else if (!c->json)
		plan_print(&p);
	rc = 0;
	if (!dry && p.n > 0 && p.home == HOME_DELETE &&
	    args_get(a, "yes") == NULL && !confirmed(p.n)) {
		fprintf(stderr, "swarmhubctl: cancelled: nothing was done\n");
		rc = -1;
	} else if (!dry && p.n > 0) {
		if (!c->json)
			putchar('\n');
		rc = execute(c, &p, out);
	}
	if (c->json)
		json_print(out);
	json_decref(out);
	if (p.failed)
		rc = -1;
	plan_release(&p);
	return rc < 0 ? CTL_REPORTED : 0;
}
