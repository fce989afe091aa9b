/*
 * api.c - the REST API under /hub/api, in JupyterHub's dialect.
 *
 * Reads are answered from the in-memory state; writes go to PostgreSQL
 * first and change memory only when the database agreed, so a failed write
 * leaves both as they were. JSON is written by hand (strbuf) on the hot
 * paths and parsed with jansson. Errors: {"status": N, "message": "..."}.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

static void
add_time(struct strbuf *sb, int64_t ms)
{
	char ts[40];

	if (ms <= 0) {
		sb_adds(sb, "null");
		return;
	}
	time_iso8601(ms, ts, sizeof(ts));
	sb_addf(sb, "\"%s\"", ts);
}

/* The user model; servers are listed for admins and the user (all: the
 * stopped named servers too, ?include_stopped_servers). */
static void
user_model(struct strbuf *sb, const struct user *u, int all)
{
	int ready, pending;

	sb_adds(sb, "{\"kind\": \"user\", \"name\": ");
	sb_add_json(sb, u->name);
	sb_addf(sb, ", \"admin\": %s, \"roles\": [\"%s\"], \"groups\": [",
		u->admin ? "true" : "false", u->admin ? "admin" : "user");
	for (size_t i = 0; i < u->ngroups; i++) {
		if (i)
			sb_adds(sb, ", ");
		sb_add_json(sb, u->groups[i]);
	}
	sb_adds(sb, "], \"created\": ");
	add_time(sb, u->created_ms);
	sb_adds(sb, ", \"last_activity\": ");
	add_time(sb, __atomic_load_n(&u->last_activity_ms, __ATOMIC_RELAXED));
	sb_adds(sb, ", \"servers\": ");
	servers_model(sb, u, all, &ready, &pending);
	sb_adds(sb, ", \"server\": ");
	if (ready) {
		char *url = xasprintf("/user/%s/", u->name);

		sb_add_json(sb, url);
		free(url);
	} else {
		sb_adds(sb, "null");
	}
	sb_addf(sb, ", \"pending\": %s", !pending ? "null" :
		u->server->state == SRV_STARTING ? "\"spawn\"" : "\"stop\"");
	ids_model(sb, u);
	sb_adds(sb, "}");
}

/* JupyterHub's ?include_stopped_servers: any value (or none) means yes. */
static int
stopped_too(struct req *r)
{
	return req_has_query(r, "include_stopped_servers");
}

static void
reply_err(struct req *r, const struct err *e)
{
	req_json_error(r, err_http_status(e->code), "%s", e->msg);
}

/* ---- who may do what ------------------------------------------------- */
struct ctx {
	struct req *r;
	struct who who;
};

/* 0 when the caller is identified (and passed XSRF for changes). */
static int
need_auth(struct ctx *c)
{
	if (c->who.kind == WHO_NONE) {
		req_json_error(c->r, 403, "missing or invalid credentials: "
		    "send 'Authorization: token <token>' or log in");
		return -1;
	}
	if (c->who.by_cookie && c->r->method != M_GET &&
	    c->r->method != M_HEAD && !xsrf_ok(c->r, &c->who, NULL)) {
		req_json_error(c->r, 403, "XSRF token missing or invalid: send "
		    "the X-XSRFToken header");
		return -1;
	}
	return 0;
}

static int
need_admin(struct ctx *c)
{
	if (need_auth(c) < 0)
		return -1;
	if (!c->who.admin) {
		req_json_error(c->r, 403, "this action needs admin rights");
		return -1;
	}
	return 0;
}

/* Admin, or the user named name acting on themselves. */
static int
need_self_or_admin(struct ctx *c, const char *name)
{
	if (need_auth(c) < 0)
		return -1;
	if (!c->who.admin && (c->who.kind != WHO_USER ||
			      strcmp(c->who.name, name) != 0)) {
		req_json_error(c->r, 403, "you may only see and change your "
		    "own user");
		return -1;
	}
	return 0;
}

static const char *
actor(struct ctx *c)
{
	return c->who.name;
}

static int
parse_body(struct ctx *c, const char *const *allowed, json_t **j)
{
	struct err e = { 0 };
	const char *body = c->r->body_len ? c->r->body : "{}";

	if (json_parse_object(body, c->r->body_len ? c->r->body_len : 2,
			      allowed, j, &e) < 0) {
		reply_err(c->r, &e);
		return -1;
	}
	return 0;
}

static int
method_not_allowed(struct req *r)
{
	req_json_error(r, 405, "method not allowed here");
	return 0;
}

/* ---- GET /hub/api, /hub/api/user ------------------------------------- */
static void
api_root(struct req *r)
{
	r->handler = "api";
	req_json(r, 200, xstrdup("{\"version\": \"" HUB_API_VERSION "\"}"));
	/* jupyterhub-singleuser reads it at start (a warning without) */
	req_add_header(r, "X-JupyterHub-Version", HUB_API_VERSION);
}

/* Appends one scope string "<what>!<filter>=<name>[/<server>]". */
static void
add_scope(struct strbuf *sb, int *first, const char *what,
	  const char *filter, const char *name, const char *server)
{
	struct strbuf one;

	sb_init(&one);
	sb_addf(&one, "%s!%s=%s", what, filter, name);
	if (server)
		sb_addf(&one, "/%s", server);
	sb_adds(sb, *first ? "" : ", ");
	sb_add_json(sb, one.buf);
	sb_release(&one);
	*first = 0;
}

/*
 * , "scopes": [...] of the caller's model. A full token (or a session) is
 * JupyterHub's "inherit": the owner's role expanded ("self" filtered to
 * the user, plus the admin role's scopes for admins) and access to each
 * of the user's servers by name, so a jupyterhub-singleuser server that
 * asks for access:servers!server=<name>/<server> or
 * access:servers!user=<name> finds it. A server's own API token has the
 * "server" role's; an OAuth access token its client's access scopes and
 * the identify scopes.
 */
static void
add_scopes(struct strbuf *sb, const struct who *w, int admin_access)
{
	static const char *const self[] = {
		"access:servers", "delete:servers", "read:servers",
		"read:tokens", "read:users", "read:users:activity",
		"read:users:groups", "read:users:name", "servers", "tokens",
		"users:activity", NULL };
	static const char *const admin[] = {
		"admin-ui", "admin:groups", "admin:servers", "admin:users",
		"list:users", "read:hub", "read:metrics", "tokens", NULL };
	int first = 1;

	sb_adds(sb, ", \"scopes\": [");
	/* A user's own token opens their servers by its user filter alone
	 * (JupyterHub's expansion of the user's scopes): a server filter
	 * next to it, for a server other than the one a jupyterhub-
	 * singleuser 3.0 asks about, makes its scope intersection raise
	 * (AttributeError on a frozenset) and drop the connection. */
	if (w->limit != WHO_FULL) {
		add_scope(sb, &first, "access:servers", "server",
			  w->server_user, w->server);
		add_scope(sb, &first, "access:servers", "user",
			  w->server_user, NULL);
	}
	if (w->limit == WHO_SERVER_TOKEN) {
		add_scope(sb, &first, "read:users:name", "user", w->name, NULL);
		add_scope(sb, &first, "users:activity", "user", w->name, NULL);
	} else if (w->limit == WHO_OAUTH_TOKEN) {
		add_scope(sb, &first, "read:users:groups", "user", w->name,
			  NULL);
		add_scope(sb, &first, "read:users:name", "user", w->name, NULL);
	} else {
		for (size_t i = 0; self[i]; i++)
			add_scope(sb, &first, self[i], "user", w->name, NULL);
		for (size_t i = 0; w->admin && admin[i]; i++)
			sb_addf(sb, ", \"%s\"", admin[i]);
		if (w->admin && admin_access)
			sb_adds(sb, ", \"access:servers\"");
	}
	sb_adds(sb, "]");
}

/* The model a limited token sees: who it is, not the user's servers. */
static void
limited_model(struct strbuf *sb, const struct user *u, const struct who *w)
{
	sb_adds(sb, "{\"kind\": \"user\", \"name\": ");
	sb_add_json(sb, u->name);
	sb_adds(sb, ", \"admin\": false, \"roles\": [], \"groups\": [");
	for (size_t i = 0; i < u->ngroups; i++) {
		if (i)
			sb_adds(sb, ", ");
		sb_add_json(sb, u->groups[i]);
	}
	sb_adds(sb, "], \"server\": null");
	add_scopes(sb, w, 0);
	sb_adds(sb, "}");
}

/* GET /hub/api/info (admins): what jupyterhub-idle-culler reads first. */
static void
api_info(struct ctx *c)
{
	struct hub *h = c->r->hub;
	char *body;

	c->r->handler = "api_info";
	if (need_admin(c) < 0)
		return;
	body = xasprintf("{\"version\": \"%s\", \"swarmhub\": \"%s\", "
	    "\"spawner\": {\"class\": \"swarmhub\", \"version\": \"%s\"}, "
	    "\"authenticator\": {\"class\": \"%s\", \"version\": \"%s\"}, "
	    "\"named_servers\": {\"enabled\": true, \"limit_per_user\": "
	    "%ld}}", HUB_API_VERSION, HUB_VERSION, HUB_VERSION,
	    h->cfg.auth_ldap ? "ldap" : "local", HUB_VERSION,
	    h->cfg.named_server_limit);
	req_json(c->r, 200, body);
}

static void
api_whoami(struct ctx *c)
{
	struct hub *h = c->r->hub;
	struct strbuf sb;
	struct user *u;

	c->r->handler = "api_user";
	if (need_auth(c) < 0)
		return;
	sb_init(&sb);
	if (c->who.kind == WHO_SERVICE) {
		sb_adds(&sb, "{\"kind\": \"service\", \"name\": ");
		sb_add_json(&sb, c->who.name);
		sb_adds(&sb, ", \"admin\": true, \"roles\": [\"admin\"], "
			"\"scopes\": [\"admin:users\", \"admin:servers\"]}");
		req_json(c->r, 200, sb_detach(&sb, NULL));
		return;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, c->who.name);
	if (u && c->who.limit != WHO_FULL) {
		limited_model(&sb, u, &c->who);
	} else if (u) {
		user_model(&sb, u, stopped_too(c->r));
		sb.len--;	/* the closing brace */
		add_scopes(&sb, &c->who, h->cfg.admin_access);
		sb_adds(&sb, "}");
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (sb.len == 0) {
		sb_release(&sb);
		req_json_error(c->r, 403, "missing or invalid credentials");
		return;
	}
	req_json(c->r, 200, sb_detach(&sb, NULL));
}

/* ---- GET /hub/api/users ---------------------------------------------- */
static int
query_long(struct req *r, const char *name, long def, long max, long *out)
{
	const char *v = req_query(r, name);
	struct err e = { 0 };

	if (v == NULL || *v == '\0') {
		*out = def;
		return 0;
	}
	if (str_to_long(v, 0, 1L << 40, out, name, &e) < 0) {
		reply_err(r, &e);
		return -1;
	}
	if (*out > max)
		*out = max;
	return 0;
}

/* Users whose server matches want (NULL when want is 0: all users). */
static struct user **
filter_users(struct state *st, int want, long *total)
{
	struct user **v;
	long n = 0;

	if (want == 0) {
		*total = (long)st->nusers;
		return NULL;
	}
	v = xcalloc(st->nusers + 1, sizeof(*v));
	for (size_t i = 0; i < st->nusers; i++) {
		const struct user *u = st->user_list[i];
		int ready = 0, active = user_active_servers(u) > 0;

		for (size_t k = 0; k < user_nservers(u); k++)
			ready |= user_server_at(u, k) &&
				 user_server_at(u, k)->state == SRV_RUNNING;

		if ((want == 1 && active) || (want == 2 && ready) ||
		    (want == 3 && !active))
			v[n++] = st->user_list[i];
	}
	*total = n;
	return v;
}

/* JupyterHub gives an absolute URL (clients such as jupyterhub-idle-culler
 * request it as is): scheme from X-Forwarded-Proto, host from Host. */
static void
next_page(struct strbuf *sb, struct req *r, long offset, long limit,
	  const char *state)
{
	const char *host = req_header(r, "Host");
	char *url;

	if (host == NULL || *host == '\0' || strpbrk(host, "\"\\/ <>"))
		host = "localhost";
	url = xasprintf("%s://%s/hub/api/users?offset=%ld&limit=%ld%s%s",
			r->https ? "https" : "http", host, offset, limit,
			state ? "&state=" : "", state ? state : "");
	sb_addf(sb, "{\"offset\": %ld, \"limit\": %ld, \"url\": ", offset,
		limit);
	sb_add_json(sb, url);
	sb_adds(sb, "}");
	free(url);
}

static void
list_users(struct ctx *c)
{
	struct req *r = c->r;
	struct hub *h = r->hub;
	const char *accept = req_header(r, "Accept");
	const char *state = req_query(r, "state");
	int envelope = accept && strstr(accept,
	    "application/jupyterhub-pagination+json") != NULL;
	long offset, limit, total, end;
	struct strbuf sb;
	int want = 0;	/* 0 all, 1 active, 2 ready, 3 inactive */
	struct user **pick;

	if (need_admin(c) < 0)
		return;
	if (query_long(r, "offset", 0, 1L << 40, &offset) < 0 ||
	    query_long(r, "limit", envelope || req_query(r, "limit") ?
		       PAGE_DEFAULT : -1, PAGE_MAX, &limit) < 0)
		return;
	if (state && *state) {
		if (strcmp(state, "active") && strcmp(state, "ready") &&
		    strcmp(state, "inactive")) {
			req_json_error(r, 400, "state must be active, ready "
			    "or inactive, not '%.40s'", state);
			return;
		}
		want = state[0] == 'a' ? 1 : state[0] == 'r' ? 2 : 3;
	}
	if (limit == 0)
		limit = PAGE_DEFAULT;
	sb_init(&sb);
	pthread_rwlock_rdlock(&h->state.lock);
	pick = filter_users(&h->state, want, &total);
	end = limit < 0 ? total : offset + limit;
	if (end > total)
		end = total;
	sb_adds(&sb, envelope ? "{\"items\": [" : "[");
	for (long i = offset; i < end; i++) {
		if (i > offset)
			sb_adds(&sb, ", ");
		user_model(&sb, pick ? pick[i] : h->state.user_list[i],
			   stopped_too(r));
	}
	pthread_rwlock_unlock(&h->state.lock);
	free(pick);
	sb_adds(&sb, "]");
	if (envelope) {
		sb_addf(&sb, ", \"_pagination\": {\"offset\": %ld, \"limit\": "
			"%ld, \"total\": %ld, \"next\": ", offset, limit, total);
		if (end < total)
			next_page(&sb, r, end, limit, state);
		else
			sb_adds(&sb, "null");
		sb_adds(&sb, "}}");
	}
	req_json(r, 200, sb_detach(&sb, NULL));
}

/* ---- POST /hub/api/users, POST /hub/api/users/<name> ----------------- */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validates and dedupes names; fills *todo with the ones not yet known.
 * Returns -1 after replying on bad input. */
static int
names_to_create(struct ctx *c, json_t *list, char ***todo, size_t *ntodo)
{
	struct hub *h = c->r->hub;
	size_t n = json_array_size(list), k = 0, m;
	char **v = xcalloc(n + 1, sizeof(*v));
	struct err e = { 0 };

	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(list, i);
		char norm[USER_NAME_MAX + 1];

		if (!json_is_string(it) ||
		    user_name_normalize(json_string_value(it), norm, &e) < 0 ||
		    ids_reserved(h, norm, &e) < 0) {
			req_json_error(c->r, 400, "invalid username '%.64s': %s",
			    json_is_string(it) ? json_string_value(it) : "?",
			    json_is_string(it) ? e.msg : "not a string");
			strv_free(v);
			return -1;
		}
		v[k++] = xstrdup(norm);
	}
	qsort(v, k, sizeof(*v), cmp_str);
	/* each name once (sorted: repeats are neighbours) */
	m = 0;
	for (size_t i = 0; i < k; i++) {
		if (m && strcmp(v[i], v[m - 1]) == 0)
			free(v[i]);
		else
			v[m++] = v[i];
	}
	k = m;
	*ntodo = 0;
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < k; i++) {
		if (state_user(&h->state, v[i])) {
			free(v[i]);
			continue;
		}
		v[(*ntodo)++] = v[i];
	}
	pthread_rwlock_unlock(&h->state.lock);
	v[*ntodo] = NULL;
	*todo = v;
	return 0;
}

/* Creates names (already validated and new); replies 201 with the models. */
static void
create_users(struct ctx *c, const char *const *names, size_t n, int admin,
	     int as_list)
{
	struct hub *h = c->r->hub;
	struct users_by by = { actor(c), c->r->ip, NULL };
	struct err e = { 0 };
	struct strbuf sb;

	if (users_create(h, names, n, admin, &by, &e) < 0) {
		reply_err(c->r, &e);
		return;
	}
	sb_init(&sb);
	if (as_list)
		sb_adds(&sb, "[");
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_adds(&sb, ", ");
		user_model(&sb, state_user(&h->state, names[i]), 0);
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (as_list)
		sb_adds(&sb, "]");
	req_json(c->r, 201, sb_detach(&sb, NULL));
}

static int
json_admin_flag(struct ctx *c, json_t *j, int *admin)
{
	json_t *a = json_object_get(j, "admin");

	*admin = 0;
	if (a == NULL || json_is_null(a))
		return 0;
	if (!json_is_boolean(a)) {
		req_json_error(c->r, 400, "admin must be true or false");
		return -1;
	}
	*admin = json_is_true(a);
	return 0;
}

static void
post_users(struct ctx *c)
{
	static const char *const allowed[] = { "usernames", "admin", NULL };
	json_t *j = NULL, *list;
	char **todo = NULL;
	size_t ntodo = 0;
	int admin;

	if (need_admin(c) < 0 || parse_body(c, allowed, &j) < 0)
		return;
	list = json_object_get(j, "usernames");
	if (!json_is_array(list) || json_array_size(list) == 0) {
		req_json_error(c->r, 400, "usernames must be a non-empty list "
		    "of names");
	} else if (json_array_size(list) > 10000) {
		req_json_error(c->r, 400, "at most 10000 usernames at once");
	} else if (json_admin_flag(c, j, &admin) == 0 &&
		   names_to_create(c, list, &todo, &ntodo) == 0) {
		if (ntodo == 0)
			req_json_error(c->r, 409, "all %zu users already exist",
			    json_array_size(list));
		else
			create_users(c, (const char *const *)todo, ntodo,
				     admin, 1);
	}
	strv_free(todo);
	json_decref(j);
}

static void
post_user(struct ctx *c, const char *raw)
{
	static const char *const allowed[] = { "admin", NULL };
	json_t *j = NULL;
	char name[USER_NAME_MAX + 1];
	const char *names[2] = { name, NULL };
	struct err e = { 0 };
	int admin, exists;

	if (need_admin(c) < 0)
		return;
	if (user_name_normalize(raw, name, &e) < 0 ||
	    ids_reserved(c->r->hub, name, &e) < 0) {
		req_json_error(c->r, 400, "invalid username '%.64s': %s", raw,
			       e.msg);
		return;
	}
	if (parse_body(c, allowed, &j) < 0)
		return;
	if (json_admin_flag(c, j, &admin) == 0) {
		pthread_rwlock_rdlock(&c->r->hub->state.lock);
		exists = state_user(&c->r->hub->state, name) != NULL;
		pthread_rwlock_unlock(&c->r->hub->state.lock);
		if (exists)
			req_json_error(c->r, 409, "user %s already exists",
				       name);
		else
			create_users(c, names, 1, admin, 0);
	}
	json_decref(j);
}

/* ---- GET/PATCH/DELETE /hub/api/users/<name> -------------------------- */
static void
get_user(struct ctx *c, const char *name)
{
	struct hub *h = c->r->hub;
	struct strbuf sb;
	struct user *u;

	if (need_self_or_admin(c, name) < 0)
		return;
	sb_init(&sb);
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		user_model(&sb, u, stopped_too(c->r));
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL) {
		sb_release(&sb);
		req_json_error(c->r, 404, "user %s does not exist", name);
		return;
	}
	req_json(c->r, 200, sb_detach(&sb, NULL));
}

static int
user_exists(struct hub *h, const char *name)
{
	int ok;

	pthread_rwlock_rdlock(&h->state.lock);
	ok = state_user(&h->state, name) != NULL;
	pthread_rwlock_unlock(&h->state.lock);
	return ok;
}

/* PATCH's password part: admins only, local auth only. */
static int
patch_password(struct ctx *c, const char *name, json_t *pw, char **hash)
{
	struct err e = { 0 };

	*hash = NULL;
	if (pw == NULL)
		return 0;
	if (c->r->hub->ldap) {
		req_json_error(c->r, 400, "passwords are kept by the LDAP "
		    "directory: change them there (SWARMHUB_AUTH=ldap)");
		return -1;
	}
	if (!c->who.admin) {
		req_json_error(c->r, 403, "only admins may set passwords");
		return -1;
	}
	if (!json_is_string(pw) || !str_utf8_ok(json_string_value(pw),
						strlen(json_string_value(pw)))) {
		req_json_error(c->r, 400, "password must be a string");
		return -1;
	}
	*hash = auth_local_hash(json_string_value(pw), &e);
	if (*hash == NULL) {
		reply_err(c->r, &e);
		return -1;
	}
	(void)name;
	return 0;
}

static int
patch_fields(struct ctx *c, const char *name, json_t *j, char *new_name,
	     int *admin)
{
	json_t *nn = json_object_get(j, "name");
	struct err e = { 0 };

	*admin = -1;
	new_name[0] = '\0';
	if (json_admin_flag(c, j, admin) < 0)
		return -1;
	if (json_object_get(j, "admin") == NULL)
		*admin = -1;
	if (*admin != -1 && !c->who.admin) {
		req_json_error(c->r, 403, "only admins may change admin rights");
		return -1;
	}
	if (nn == NULL)
		return 0;
	if (!c->who.admin) {
		req_json_error(c->r, 403, "only admins may rename users");
		return -1;
	}
	if (!json_is_string(nn) ||
	    user_name_normalize(json_string_value(nn), new_name, &e) < 0 ||
	    ids_reserved(c->r->hub, new_name, &e) < 0) {
		req_json_error(c->r, 400, "invalid new name: %s",
			       json_is_string(nn) ? e.msg : "not a string");
		return -1;
	}
	if (strcmp(new_name, name) == 0) {
		new_name[0] = '\0';
	} else if (user_exists(c->r->hub, new_name)) {
		req_json_error(c->r, 400, "user %s already exists", new_name);
		return -1;
	}
	return 0;
}

/*
 * A rename starts only while the user's server is stopped, and marks the
 * user so that no start begins until it is over (claim_start); 409 with
 * the reason otherwise.
 */
static int
rename_begin(struct ctx *c, const char *name)
{
	struct hub *h = c->r->hub;
	enum srv_state st = SRV_STOPPED;
	struct user *u;
	int busy = 0;

	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		st = user_busiest_state(u);
	if (u && u->renaming)
		busy = 1;
	else if (u && st == SRV_STOPPED)
		u->renaming = 1;
	pthread_rwlock_unlock(&h->state.lock);
	if (busy)
		req_json_error(c->r, 409, "%s is being renamed already", name);
	else if (st != SRV_STOPPED)
		req_json_error(c->r, 409, "cannot rename %s while a server of "
		    "theirs is %s: stop it first", name, st == SRV_RUNNING ?
		    "running" : st == SRV_STARTING ? "starting" : "stopping");
	return busy || st != SRV_STOPPED ? -1 : 0;
}

static void
rename_end(struct hub *h, const char *name, const char *new_name, int done)
{
	struct user *u;

	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		u->renaming = 0;
		if (done)
			state_user_rename(&h->state, u, new_name);
	}
	pthread_rwlock_unlock(&h->state.lock);
}

/* The home goes with its user: 1 renamed, 0 none to rename, -1 replied
 * (a home of the new name exists: 409). */
static int
rename_home(struct ctx *c, const char *name, const char *new_name)
{
	struct hub *h = c->r->hub;
	struct err e = { 0 };

	if (h->spawner == NULL || !h->cfg.spawn.home || !*h->cfg.spawn.home)
		return 0;
	if (spawner_home_rename(h->spawner, name, new_name, &e) == 0)
		return 1;
	if (e.code == ERR_NOTFOUND)
		return 0;
	if (e.code == ERR_CONFLICT)
		req_json_error(c->r, 409, "cannot rename %s to %s: %s", name,
			       new_name, e.msg);
	else
		req_json_error(c->r, err_http_status(e.code), "cannot rename "
			       "%s's home: %s", name, e.msg);
	return -1;
}

static int
patch_store(struct ctx *c, const char *name, const char *new_name,
	    int admin, const char *hash)
{
	struct hub *h = c->r->hub;
	struct users_by by = { actor(c), c->r->ip, NULL };
	struct err e = { 0 }, ignore = { 0 };
	int home = 0;

	if (*new_name && (home = rename_home(c, name, new_name)) < 0)
		return -1;
	if (users_update(h, name, *new_name ? new_name : NULL, admin, hash,
			 &by, &e) < 0) {
		if (home && spawner_home_rename(h->spawner, new_name, name,
						&ignore) < 0)
			log_event(LOG_ERROR, "home.rename_back_failed",
				  "from=%s to=%s err=%s", new_name, name,
				  ignore.msg);
		reply_err(c->r, &e);
		return -1;
	}
	return 0;
}

static void
patch_user(struct ctx *c, const char *name)
{
	static const char *const allowed[] = { "name", "admin", "password",
					       NULL };
	struct hub *h = c->r->hub;
	char new_name[USER_NAME_MAX + 1];
	char *hash = NULL;
	json_t *j = NULL;
	int admin;

	if (need_self_or_admin(c, name) < 0 || parse_body(c, allowed, &j) < 0)
		return;
	if (!user_exists(h, name)) {
		req_json_error(c->r, 404, "user %s does not exist", name);
	} else if (patch_fields(c, name, j, new_name, &admin) == 0 &&
		   patch_password(c, name, json_object_get(j, "password"),
				  &hash) == 0 &&
		   (!*new_name || rename_begin(c, name) == 0)) {
		int ok = patch_store(c, name, new_name, admin, hash) == 0;

		if (*new_name)
			rename_end(h, name, new_name, ok);
		if (ok)
			get_user(c, *new_name ? new_name : name);
	}
	free(hash);
	json_decref(j);
}

/* A user's server goes before the user (as JupyterHub does). */
static int
stop_before_delete(struct ctx *c, const char *name)
{
	struct hub *h = c->r->hub;
	struct user *u;
	enum srv_state st = SRV_STOPPED;
	struct err e = { 0 };
	char **running = NULL;
	size_t n = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		st = user_busiest_state(u);
		running = xcalloc(user_nservers(u) + 1, sizeof(*running));
		for (size_t i = 0; i < user_nservers(u); i++) {
			struct server *s = user_server_at(u, i);

			if (s && s->state == SRV_RUNNING)
				running[n++] = xstrdup(s->name);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (st == SRV_STARTING || st == SRV_STOPPING) {
		req_json_error(c->r, 400, "a server of %s has a pending %s: "
		    "try again when it is done", name, st == SRV_STARTING ?
		    "start" : "stop");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && h->spawner && i < n; i++) {
		if (spawner_stop(h->spawner, name, running[i], &e) < 0) {
			req_json_error(c->r, err_http_status(e.code), "cannot "
			    "stop %s's server%s%s before deleting the user: %s",
			    name, *running[i] ? " " : "", running[i], e.msg);
			rc = -1;
		}
	}
	strv_free(running);
	return rc;
}

static void
delete_user(struct ctx *c, const char *name)
{
	struct hub *h = c->r->hub;
	struct users_by by = { actor(c), c->r->ip, NULL };
	struct err e = { 0 };

	if (need_admin(c) < 0)
		return;
	if (!user_exists(h, name)) {
		req_json_error(c->r, 404, "user %s does not exist", name);
		return;
	}
	if (stop_before_delete(c, name) < 0)
		return;
	if (users_delete(h, name, &by, &e) < 0) {
		reply_err(c->r, &e);
		return;
	}
	req_reply(c->r, 204, "application/json", xstrdup(""), 0);
}

/* ---- tokens ---------------------------------------------------------- */
static void
token_model(struct strbuf *sb, const struct token *t, const char *raw)
{
	sb_addf(sb, "{\"kind\": \"api_token\", \"id\": \"a%lld\", \"user\": ",
		(long long)t->id);
	sb_add_json(sb, t->user);
	sb_adds(sb, ", \"note\": ");
	sb_add_json(sb, t->note);
	sb_adds(sb, ", \"created\": ");
	add_time(sb, t->created_ms);
	sb_adds(sb, ", \"last_activity\": ");
	add_time(sb, __atomic_load_n(&t->last_used_ms, __ATOMIC_RELAXED));
	sb_adds(sb, ", \"expires_at\": ");
	add_time(sb, t->expires_ms);
	sb_adds(sb, ", \"scopes\": [\"inherit\"], \"roles\": [], "
		"\"oauth_client\": null, \"session_id\": null");
	if (raw) {
		sb_adds(sb, ", \"token\": ");
		sb_add_json(sb, raw);
	}
	sb_adds(sb, "}");
}

struct token_list {
	struct strbuf *sb;
	const char *user;
	int64_t id;		/* 0: all */
	int n;
};

static void
list_one_token(struct token_list *tl, const struct token *t, int64_t now)
{
	if (strcmp(t->user, tl->user) != 0 || (tl->id && t->id != tl->id) ||
	    (t->expires_ms && t->expires_ms <= now))
		return;
	if (tl->n++)
		sb_adds(tl->sb, ", ");
	token_model(tl->sb, t, NULL);
}

static int
collect_tokens(struct hub *h, struct token_list *tl)
{
	int64_t now = time_now_ms();
	struct token **mine;
	size_t n;

	pthread_rwlock_rdlock(&h->state.lock);
	mine = state_tokens_of(&h->state, tl->user, &n);
	for (size_t i = 0; i < n; i++)
		list_one_token(tl, mine[i], now);
	pthread_rwlock_unlock(&h->state.lock);
	free(mine);
	return tl->n;
}

static void
get_tokens(struct ctx *c, const char *name, int64_t id)
{
	struct strbuf sb;
	struct token_list tl = { &sb, name, id, 0 };

	if (need_self_or_admin(c, name) < 0)
		return;
	if (!user_exists(c->r->hub, name)) {
		req_json_error(c->r, 404, "user %s does not exist", name);
		return;
	}
	sb_init(&sb);
	if (id == 0)
		sb_adds(&sb, "{\"api_tokens\": [");
	if (collect_tokens(c->r->hub, &tl) == 0 && id) {
		sb_release(&sb);
		req_json_error(c->r, 404, "token a%lld not found",
			       (long long)id);
		return;
	}
	if (id == 0)
		sb_adds(&sb, "], \"oauth_tokens\": []}");
	req_json(c->r, 200, sb_detach(&sb, NULL));
}

static int
token_options(struct ctx *c, json_t *j, const char **note, int64_t *expires)
{
	json_t *n = json_object_get(j, "note");
	json_t *x = json_object_get(j, "expires_in");
	json_t *scopes = json_object_get(j, "scopes");
	json_t *roles = json_object_get(j, "roles");

	*note = "";
	*expires = 0;
	if (n && !json_is_null(n)) {
		if (!json_is_string(n) || json_string_length(n) > 1000) {
			req_json_error(c->r, 400, "note must be a string of at "
			    "most 1000 characters");
			return -1;
		}
		*note = json_string_value(n);
		if (strncmp(*note, OAUTH_TOKEN_NOTE,
			    strlen(OAUTH_TOKEN_NOTE)) == 0) {
			req_json_error(c->r, 400, "note may not start with "
			    "'" OAUTH_TOKEN_NOTE "' (the hub's OAuth tokens)");
			return -1;
		}
	}
	if (x && !json_is_null(x)) {
		if (!json_is_integer(x) || json_integer_value(x) <= 0 ||
		    json_integer_value(x) > 10L * 365 * 86400) {
			req_json_error(c->r, 400, "expires_in must be a number "
			    "of seconds between 1 and 10 years");
			return -1;
		}
		*expires = time_now_ms() + json_integer_value(x) * 1000;
	}
	if ((scopes && !json_is_null(scopes) && !(json_is_array(scopes) &&
	    (json_array_size(scopes) == 0 || (json_array_size(scopes) == 1 &&
	    json_is_string(json_array_get(scopes, 0)) && strcmp("inherit",
	    json_string_value(json_array_get(scopes, 0))) == 0)))) ||
	    (roles && !json_is_null(roles) && !(json_is_array(roles) &&
	    json_array_size(roles) == 0))) {
		req_json_error(c->r, 400, "scoped tokens are not supported: a "
		    "token has its owner's rights (scopes [\"inherit\"])");
		return -1;
	}
	return 0;
}

static void
post_token(struct ctx *c, const char *name)
{
	static const char *const allowed[] = { "note", "expires_in", "scopes",
					       "roles", NULL };
	struct hub *h = c->r->hub;
	struct users_by by = { actor(c), c->r->ip, NULL };
	char raw[65], hash[65];
	struct store_token st = { 0 };
	struct err e = { 0 };
	struct strbuf sb;
	json_t *j = NULL;
	const char *note;
	int64_t expires;

	if (need_self_or_admin(c, name) < 0 || parse_body(c, allowed, &j) < 0)
		return;
	if (!user_exists(h, name)) {
		req_json_error(c->r, 404, "user %s does not exist", name);
	} else if (token_options(c, j, &note, &expires) == 0) {
		crypto_token(raw);
		crypto_sha256_hex(raw, 64, hash);
		if (users_token_create(h, name, hash, note, expires, &by, &st,
				       &e) < 0) {
			reply_err(c->r, &e);
		} else {
			struct token t = { .id = st.id, .user = xstrdup(name),
				.note = xstrdup(note), .created_ms = st.created_ms,
				.expires_ms = expires };

			sb_init(&sb);
			token_model(&sb, &t, raw);
			free(t.user);
			free(t.note);
			req_json(c->r, 201, sb_detach(&sb, NULL));
		}
	}
	json_decref(j);
}

static void
delete_token(struct ctx *c, const char *name, int64_t id)
{
	struct hub *h = c->r->hub;
	struct users_by by = { actor(c), c->r->ip, NULL };
	struct err e = { 0 };

	if (need_self_or_admin(c, name) < 0)
		return;
	if (users_token_delete(h, name, id, &by, &e) < 0) {
		if (e.code == ERR_NOTFOUND)
			req_json_error(c->r, 404, "token a%lld of %s not found",
				       (long long)id, name);
		else
			reply_err(c->r, &e);
		return;
	}
	req_reply(c->r, 204, "application/json", xstrdup(""), 0);
}

/* ---- activity, groups, servers --------------------------------------- */
/* {"servers": {"<server>": {"last_activity": "<time>"}}}, as
 * jupyterhub-singleuser reports it: the server's own last activity (what
 * the culler reads). -1 when r was answered with a 400 naming the
 * field. */
static int
servers_activity(struct ctx *c, const char *name, json_t *servers)
{
	struct hub *h = c->r->hub;
	const char *key;
	json_t *v, *la;
	int64_t ms;
	struct user *u;

	if (servers == NULL || json_is_null(servers))
		return 0;
	if (!json_is_object(servers)) {
		req_json_error(c->r, 400, "servers must be an object of server "
			       "names");
		return -1;
	}
	json_object_foreach(servers, key, v) {
		struct server *s;
		int found;

		la = json_object_get(v, "last_activity");
		if (!json_is_string(la) ||
		    time_parse_iso8601(json_string_value(la), &ms) < 0) {
			req_json_error(c->r, 400, "servers.%.64s.last_activity "
			    "must be an ISO 8601 time such as "
			    "2026-01-31T10:00:00Z", key);
			return -1;
		}
		pthread_rwlock_rdlock(&h->state.lock);
		u = state_user(&h->state, name);
		s = u ? user_server(u, key) : NULL;
		found = s != NULL;
		if (s && ms <= time_now_ms() + 60000 &&
		    ms > __atomic_load_n(&s->last_activity_ms,
					 __ATOMIC_RELAXED)) {
			__atomic_store_n(&s->last_activity_ms, ms,
					 __ATOMIC_RELAXED);
			__atomic_store_n(&s->activity_dirty, 1,
					 __ATOMIC_RELAXED);
		}
		pthread_rwlock_unlock(&h->state.lock);
		if (!found) {
			req_json_error(c->r, 400, "servers: no server '%.64s' "
				       "for user %s", key, name);
			return -1;
		}
	}
	return 0;
}

static void
post_activity(struct ctx *c, const char *name)
{
	static const char *const allowed[] = { "last_activity", "servers",
					       NULL };
	struct hub *h = c->r->hub;
	json_t *j = NULL, *la;
	int64_t ms;
	struct user *u;

	if (need_self_or_admin(c, name) < 0 || parse_body(c, allowed, &j) < 0)
		return;
	la = json_object_get(j, "last_activity");
	if (la && (!json_is_string(la) ||
		   time_parse_iso8601(json_string_value(la), &ms) < 0)) {
		req_json_error(c->r, 400, "last_activity must be an ISO 8601 "
		    "time such as 2026-01-31T10:00:00Z");
	} else if (servers_activity(c, name, json_object_get(j, "servers")) <
		   0) {
		/* answered */
	} else if (!user_exists(h, name)) {
		req_json_error(c->r, 404, "user %s does not exist", name);
	} else {
		if (la) {
			pthread_rwlock_rdlock(&h->state.lock);
			u = state_user(&h->state, name);
			if (u && ms > u->last_activity_ms &&
			    ms <= time_now_ms() + 60000)
				state_touch_user(u, ms);
			pthread_rwlock_unlock(&h->state.lock);
		}
		req_reply(c->r, 204, "application/json", xstrdup(""), 0);
	}
	json_decref(j);
}

struct group_acc {
	char *name;
	struct strbuf users;
	int n;
};

static struct group_acc *
group_find(struct group_acc **v, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, name) == 0)
			return &(*v)[i];
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].name = xstrdup(name);
	sb_init(&(*v)[*n].users);
	(*v)[*n].n = 0;
	return &(*v)[(*n)++];
}

static void
get_groups(struct ctx *c, const char *only)
{
	struct hub *h = c->r->hub;
	struct group_acc *g = NULL;
	size_t ng = 0;
	struct strbuf sb;

	c->r->handler = "api_groups";
	if (need_admin(c) < 0)
		return;
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		for (size_t k = 0; k < u->ngroups; k++) {
			struct group_acc *a;

			if (only && strcmp(only, u->groups[k]) != 0)
				continue;
			a = group_find(&g, &ng, u->groups[k]);
			if (a->n++)
				sb_adds(&a->users, ", ");
			sb_add_json(&a->users, u->name);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	sb_init(&sb);
	sb_adds(&sb, only ? "" : "[");
	for (size_t i = 0; i < ng; i++) {
		sb_adds(&sb, i ? ", {\"kind\": \"group\", \"name\": " :
			"{\"kind\": \"group\", \"name\": ");
		sb_add_json(&sb, g[i].name);
		sb_adds(&sb, ", \"users\": [");
		sb_adds(&sb, g[i].users.buf ? g[i].users.buf : "");
		sb_adds(&sb, "], \"roles\": [], \"properties\": {}}");
		free(g[i].name);
		sb_release(&g[i].users);
	}
	free(g);
	if (only && ng == 0) {
		sb_release(&sb);
		req_json_error(c->r, 404, "group %s does not exist", only);
		return;
	}
	sb_adds(&sb, only ? "" : "]");
	req_json(c->r, 200, sb_detach(&sb, NULL));
}

static void
post_server(struct ctx *c, const char *name, const char *server)
{
	struct err e = { 0 };
	const char *body = c->r->body_len ? c->r->body : NULL;

	if (need_self_or_admin(c, name) < 0)
		return;
	if (body && !str_utf8_ok(body, c->r->body_len)) {
		req_json_error(c->r, 400, "request body is not valid UTF-8");
		return;
	}
	if (servers_start_named(c->r->hub, name, server, body, actor(c),
				&e) < 0) {
		int status = e.code == ERR_CONFLICT ? 400 :
			     err_http_status(e.code);

		if (e.code == ERR_TOOMANY && strstr(e.msg, "quota"))
			status = 403;
		if (status == 429)
			req_add_header(c->r, "Retry-After", "10");
		req_json_error(c->r, status, "%s", e.msg);
		return;
	}
	req_reply(c->r, 202, "application/json", xstrdup(""), 0);
}

/* The body of DELETE …/servers/<server>: {"remove": true|false}. */
static int
remove_flag(struct ctx *c, int *remove)
{
	static const char *const keys[] = { "remove", NULL };
	struct json_t *j = NULL;
	struct err e = { 0 };
	json_t *v;

	*remove = 0;
	if (c->r->body_len == 0)
		return 0;
	if (json_parse_object(c->r->body, c->r->body_len, keys, &j, &e) < 0) {
		reply_err(c->r, &e);
		return -1;
	}
	v = json_object_get(j, "remove");
	if (v && !json_is_boolean(v)) {
		json_decref(j);
		req_json_error(c->r, 400, "remove must be true or false");
		return -1;
	}
	*remove = v && json_is_true(v);
	json_decref(j);
	return 0;
}

static void
delete_server(struct ctx *c, const char *name, const char *server)
{
	struct err e = { 0 };
	char reason[128];
	int rc, remove = 0;

	if (need_self_or_admin(c, name) < 0)
		return;
	if (*server && remove_flag(c, &remove) < 0)
		return;
	snprintf(reason, sizeof(reason), "stopped by %s", actor(c));
	rc = servers_stop_named(c->r->hub, name, server, remove, actor(c),
				reason, &e);
	if (rc < 0)
		reply_err(c->r, &e);
	else
		req_reply(c->r, rc ? 202 : 204, "application/json",
			  xstrdup(""), 0);
}

/* ---- dispatch -------------------------------------------------------- */
static int
parse_token_id(const char *s, int64_t *id)
{
	long v;

	if (s[0] != 'a' || str_to_long(s + 1, 1, (1L << 62), &v, "token id",
					NULL) < 0)
		return -1;
	*id = v;
	return 0;
}

static void
server_routes(struct ctx *c, const char *name, const char *server)
{
	if (c->r->method == M_POST)
		post_server(c, name, server);
	else if (c->r->method == M_DELETE)
		delete_server(c, name, server);
	else
		method_not_allowed(c->r);
}

/* /hub/api/users/<name>/servers/<server>[/progress] */
static void
named_routes(struct ctx *c, const char *name, const char *rest)
{
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	char server[SERVER_NAME_MAX + 2];
	struct err e = { 0 };

	c->r->handler = "api_named_server";
	snprintf(server, sizeof(server), "%.*s", (int)(n > SERVER_NAME_MAX ?
		 SERVER_NAME_MAX + 1 : n), rest);
	if (n == 0 || (slash && strcmp(slash, "/progress") != 0)) {
		req_json_error(c->r, 404, "no such API path");
	} else if (n > SERVER_NAME_MAX || servers_name_check(server, &e) < 0) {
		if (n > SERVER_NAME_MAX)
			err_set(&e, ERR_INVALID, "server name is longer than "
				"%d characters", SERVER_NAME_MAX);
		reply_err(c->r, &e);
	} else if (slash) {
		c->r->handler = "api_named_progress";
		if (c->r->method != M_GET)
			method_not_allowed(c->r);
		else if (need_self_or_admin(c, name) == 0)
			events_progress(c->r, name, server);
	} else {
		server_routes(c, name, server);
	}
}

/* /hub/api/users/<name>[/<rest>] */
static void
user_routes(struct ctx *c, const char *name, const char *rest)
{
	enum method m = c->r->method;
	int64_t id = 0;

	c->r->handler = "api_user_one";
	if (*rest == '\0') {
		if (m == M_GET)
			get_user(c, name);
		else if (m == M_POST)
			post_user(c, name);
		else if (m == M_PATCH)
			patch_user(c, name);
		else if (m == M_DELETE)
			delete_user(c, name);
		else
			method_not_allowed(c->r);
		return;
	}
	if (strcmp(rest, "tokens") == 0) {
		c->r->handler = "api_tokens";
		if (m == M_GET)
			get_tokens(c, name, 0);
		else if (m == M_POST)
			post_token(c, name);
		else
			method_not_allowed(c->r);
	} else if (strncmp(rest, "tokens/", 7) == 0) {
		c->r->handler = "api_token_one";
		if (parse_token_id(rest + 7, &id) < 0)
			req_json_error(c->r, 404, "no token '%.40s'", rest + 7);
		else if (m == M_GET)
			get_tokens(c, name, id);
		else if (m == M_DELETE)
			delete_token(c, name, id);
		else
			method_not_allowed(c->r);
	} else if (strcmp(rest, "activity") == 0) {
		c->r->handler = "api_activity";
		if (m == M_POST)
			post_activity(c, name);
		else
			method_not_allowed(c->r);
	} else if (strcmp(rest, "server") == 0) {
		c->r->handler = "api_server";
		server_routes(c, name, "");
	} else if (strcmp(rest, "server/progress") == 0 && m == M_GET) {
		c->r->handler = "api_progress";
		if (need_self_or_admin(c, name) == 0)
			events_progress(c->r, name, "");
	} else if (strncmp(rest, "servers/", 8) == 0) {
		named_routes(c, name, rest + 8);
	} else {
		req_json_error(c->r, 404, "no such API path");
	}
}

/* A singleuser server's own token and OAuth access tokens reach only
 * /user, and the server's token also its owner's activity: 1 when r was
 * answered (refused). */
static int
limited_refused(struct ctx *c, const char *sub)
{
	const struct who *w = &c->who;
	char own[USER_NAME_MAX + 32];

	if (w->kind != WHO_USER || w->limit == WHO_FULL ||
	    strcmp(sub, "/user") == 0)
		return 0;
	snprintf(own, sizeof(own), "/users/%s/activity", w->name);
	if (w->limit == WHO_SERVER_TOKEN && strcmp(sub, own) == 0)
		return 0;
	req_json_error(c->r, 403, "this token only identifies %s and opens "
		       "their server", w->name);
	return 1;
}

void
api_handle(struct req *r, const char *sub)
{
	struct ctx c = { r, { 0 } };
	char name[USER_NAME_MAX + 1];
	const char *rest;
	size_t n;

	r->handler = "api";
	if (*sub == '\0' || strcmp(sub, "/") == 0) {
		api_root(r);
		return;
	}
	if (strcmp(sub, "/oauth2/authorize") == 0) {
		oauth_authorize(r);
		return;
	}
	if (strcmp(sub, "/oauth2/token") == 0) {
		oauth_token(r);
		return;
	}
	who_identify(r, &c.who);
	if (limited_refused(&c, sub))
		return;
	if (strcmp(sub, "/user") == 0) {
		api_whoami(&c);
	} else if (strcmp(sub, "/info") == 0 && r->method == M_GET) {
		api_info(&c);
	} else if (strcmp(sub, "/users") == 0) {
		r->handler = "api_users";
		if (r->method == M_GET)
			list_users(&c);
		else if (r->method == M_POST)
			post_users(&c);
		else
			method_not_allowed(r);
	} else if (strncmp(sub, "/users/", 7) == 0) {
		rest = strchr(sub + 7, '/');
		n = rest ? (size_t)(rest - sub - 7) : strlen(sub + 7);
		if (n == 0 || n > USER_NAME_MAX) {
			req_json_error(r, 404, "no such user");
			return;
		}
		memcpy(name, sub + 7, n);
		name[n] = '\0';
		user_routes(&c, name, rest ? rest + 1 : "");
	} else if (strncmp(sub, "/swarmhub/", 10) == 0) {
		if (need_admin(&c) == 0)
			api_admin_handle(r, &c.who, sub + 9);
	} else if (strcmp(sub, "/groups") == 0 ||
		   strncmp(sub, "/groups/", 8) == 0) {
		if (r->method != M_GET)
			method_not_allowed(r);
		else
			get_groups(&c, sub[7] == '/' ? sub + 8 : NULL);
	} else {
		req_json_error(r, 404, "no such API path: %.100s", sub);
	}
}
