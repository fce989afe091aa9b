/*
 * router.c - maps a path to its handler. The paths are JupyterHub's.
 */
#include <string.h>
#include "web.h"

static int
is(const char *path, const char *want)
{
	return strcmp(path, want) == 0;
}

/* A user name as the last part of a page path ("alice", not "a/b"). */
static int
user_part(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= USER_NAME_MAX && strchr(s, '/') == NULL;
}

/* "<user>" or "<user>/<server>" (the pages check the server's name). */
static int
user_server_part(const char *s)
{
	const char *slash = strchr(s, '/');

	if (slash == NULL)
		return user_part(s);
	return slash > s && (size_t)(slash - s) <= USER_NAME_MAX &&
	       slash[1] != '\0' && strchr(slash + 1, '/') == NULL &&
	       strlen(slash + 1) <= SERVER_NAME_MAX + 1;
}

static void
health(struct req *r)
{
	char msg[256];
	int ok = hub_health(r->hub, msg, sizeof(msg));

	r->handler = "health";
	if (ok)
		req_json(r, 200, xstrdup("{\"status\": \"ok\"}"));
	else
		req_json_error(r, 503, "%s", msg);
}

/* METRICS_AUTH=admin: an admin's API token or ADMIN_TOKEN (a session
 * cookie does not do: scrapers send tokens). */
static int
metrics_allowed(struct req *r)
{
	const char *auth = req_header(r, "Authorization");
	struct who w;

	if (r->hub->cfg.metrics_open)
		return 1;
	who_from(r->hub, auth, NULL, &w);
	if (w.kind != WHO_NONE && w.admin)
		return 1;
	if (auth == NULL) {
		req_add_header(r, "WWW-Authenticate", "Bearer");
		req_json_error(r, 401, "metrics need an admin's API token: "
		    "send 'Authorization: Bearer <token>' "
		    "(or set SWARMHUB_METRICS_AUTH=none)");
	} else {
		req_json_error(r, 403, "metrics need an admin's API token");
	}
	return 0;
}

/* The gauges are collected here, from their owners, at each scrape. */
static void
metrics(struct req *r)
{
	struct hub *h = r->hub;
	struct metrics_gauges g = { 0 };
	struct strbuf sb;
	size_t len;
	char *text;

	r->handler = "metrics";
	if (!metrics_allowed(r))
		return;
	state_gauges(&h->state, &g);
	g.orphans = __atomic_load_n(&h->orphans, __ATOMIC_RELAXED);
	g.db_up = h->health_ok;
	sb_init(&sb);
	metrics_render(&sb, h->metrics, &g);
	cull_metrics(h, &sb);
	text = sb_detach(&sb, &len);
	req_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text,
		  len);
}

/*
 * Before any of the body is read: who may send one. Only the login form is
 * posted without credentials; anything else with a body and neither a
 * valid token nor a session is refused at once, so an anonymous caller
 * cannot make the hub buffer MAX_BODY_BYTES (libmicrohttpd then drops the
 * body and closes the connection). 0: go on reading.
 */
int
router_admit(struct req *r)
{
	struct who w;

	/* the OAuth token endpoint authenticates its client by the body */
	if (strcmp(r->path, "/hub/login") == 0 || !r->body_announced ||
	    strcmp(r->path, "/hub/api/oauth2/token") == 0)
		return 0;
	who_identify(r, &w);
	if (w.kind != WHO_NONE)
		return 0;
	r->handler = "refused";
	if (strncmp(r->path, "/hub/api", 8) == 0)
		req_json_error(r, 403, "missing or invalid credentials: send "
			       "'Authorization: token <token>' or log in");
	else
		pages_error(r, 403, "Not signed in", "Sign in first, then "
			    "send this form again.");
	return 1;
}

void
router_dispatch(struct req *r)
{
	const char *p = r->path;

	if (r->body_too_big) {
		req_json_error(r, 413, "request body is larger than %ld bytes",
			       r->hub->cfg.max_body_bytes);
		return;
	}
	if (strncmp(p, "/hub/api", 8) == 0 && (p[8] == '\0' || p[8] == '/')) {
		api_handle(r, p + 8);
		return;
	}
	if (is(p, "/hub/health")) {
		health(r);
	} else if (is(p, "/hub/metrics")) {
		metrics(r);
	} else if (is(p, "/hub/login")) {
		pages_login(r);
	} else if (is(p, "/hub/logout")) {
		pages_logout(r);
	} else if (is(p, "/hub/static/style.css") ||
		   is(p, "/hub/static/app.js")) {
		pages_static(r);
	} else if (is(p, "/hub/home")) {
		pages_home(r);
	} else if (is(p, "/hub/home/stop")) {
		pages_home_stop(r);
	} else if (is(p, "/hub/home/new")) {
		pages_home_new(r);
	} else if (is(p, "/hub/spawn")) {
		pages_spawn(r, NULL);
	} else if (strncmp(p, "/hub/spawn/", 11) == 0 &&
		   user_server_part(p + 11)) {
		pages_spawn(r, p + 11);
	} else if (strncmp(p, "/hub/spawn-pending/", 19) == 0 &&
		   user_server_part(p + 19)) {
		pages_spawn_pending(r, p + 19);
	} else if (is(p, "/hub/admin")) {
		pages_admin(r);
	} else if (is(p, "/hub/admin/nodes")) {
		pages_nodes(r);
	} else if (is(p, "/hub/token")) {
		pages_token(r);
	} else if (is(p, "/") || is(p, "/hub") || is(p, "/hub/")) {
		r->handler = "root";
		req_redirect(r, "/hub/home");
	} else {
		r->handler = "notfound";
		pages_error(r, 404, "Page not found",
			    "There is nothing at this address.");
	}
}
