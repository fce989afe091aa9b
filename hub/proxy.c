/*
 * proxy.c - where the edge sends each request: the edge_hooks the hub
 * gives edge/ (as cull.c gives the culler its culler_ops).
 *
 * /user/<name>/... goes to that user's server when the caller may use it
 * (/user/<name>/<server>/... to a named server when <server> names one of
 * theirs, as JupyterHub routes)
 * (the owner by cookie or token; admins with ADMIN_ACCESS), with the hub's
 * credentials removed and the server token added; a jupyterhub-singleuser
 * server (kind singleuser) gets the caller's own Authorization header
 * instead and checks it with the hub itself. The hub's session cookie is
 * never passed on. Everything else goes to
 * the hub's own HTTP server (libmicrohttpd) on its internal unix socket.
 * An image's "headers" are set on its requests. A web app (an image of kind
 * "web") gets no server token: the hub's login is its only gate; its
 * prefix may be stripped.
 * Answers come from memory only: session and token maps, server addresses.
 * The hot path allocates nothing and computes no HMAC (struct memo).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include "../edge/edge.h"
#include "hub.h"

static void
respond(struct edge_target *t, int status, const char *type, char *body)
{
	t->action = EDGE_RESPOND;
	t->status = status;
	t->content_type = type;
	t->body = body;
	t->body_len = strlen(body);
}

static void
redirect(struct edge_target *t, const char *location)
{
	respond(t, 302, "text/plain", xstrdup(""));
	snprintf(t->location, sizeof(t->location), "%s", location);
}

static void
json_error(struct edge_target *t, int status, const char *msg)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_addf(&sb, "{\"status\": %d, \"message\": ", status);
	sb_add_json(&sb, msg);
	sb_adds(&sb, "}");
	respond(t, status, "application/json", sb_detach(&sb, NULL));
}

static void
page_error(struct hub *h, struct edge_target *t, int status,
	   const char *title, const char *msg)
{
	size_t len;
	char *html = h->error_page(h, status, title, msg, &len);

	respond(t, status, "text/html; charset=utf-8", html);
	t->body_len = len;
}

/* Percent-encodes s for a query value ('/' too, as the login page does). */
static void
url_escape(struct strbuf *sb, const char *s)
{
	sb_add_pct(sb, s, NULL);
}

/* Origin must be this hub's own (scheme://Host) when present. */
static int
origin_ok(const struct edge_request *rq)
{
	char own[300];

	if (rq->origin == NULL)
		return 1;
	snprintf(own, sizeof(own), "%s://%s", rq->https ? "https" : "http",
		 rq->host);
	return strcasecmp(own, rq->origin) == 0;
}

static int
state_changing(const char *method)
{
	return strcmp(method, "GET") && strcmp(method, "HEAD") &&
	       strcmp(method, "OPTIONS");
}

/* The part after /user/<name>/ names an API call (…/api/…). */
static int
is_api(const char *rest)
{
	return strncmp(rest, "api/", 4) == 0 || strstr(rest, "/api/") != NULL;
}

static void
not_running(struct hub *h, struct edge_target *t, const char *name,
	    const char *server, const char *rest, enum srv_state st,
	    const char *target)
{
	struct strbuf sb;

	if (is_api(rest)) {
		char *msg = *server ? xasprintf("%s's server '%s' is not "
						"running", name, server)
				    : xasprintf("%s's server is not running",
						name);

		json_error(t, 503, msg);
		free(msg);
		return;
	}
	sb_init(&sb);
	sb_adds(&sb, st == SRV_STARTING ? "/hub/spawn-pending/" : "/hub/spawn/");
	url_escape(&sb, name);
	if (*server) {
		sb_addc(&sb, '/');
		url_escape(&sb, server);
	}
	if (st != SRV_STARTING) {
		sb_adds(&sb, "?next=");
		url_escape(&sb, target);
	}
	redirect(t, sb.buf);
	sb_release(&sb);
	(void)h;
}

/*
 * What each edge thread remembers between requests (heap, one per thread
 * that routes, freed when it ends: static TLS would cost every thread of
 * the process its size): the last server tokens (an HMAC of name, server
 * and nonce: the same until the server restarts) and image entries (the
 * same until the profiles are reloaded).
 */
#define IMAGE_MEMO 4
#define TOKEN_MEMO 8
struct memo {
	struct {
		const struct hub *h;
		unsigned long gen;
		char key[64];
		struct spawner_image im;
	} image[IMAGE_MEMO];
	unsigned image_next;
	struct {
		const struct hub *h;
		char name[USER_NAME_MAX + 1], server[SERVER_NAME_MAX + 1];
		char nonce[33], token[65];
	} token[TOKEN_MEMO];
	unsigned token_next;
};
static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;

static void
memo_key_init(void)
{
	if (pthread_key_create(&memo_key, free) != 0)
		abort();
}

static struct memo *
memo_get(void)
{
	struct memo *m;

	pthread_once(&memo_once, memo_key_init);
	m = pthread_getspecific(memo_key);
	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		if (pthread_setspecific(memo_key, m) != 0)
			abort();
	}
	return m;
}

/* The image's per-image keys (kind, prefix, headers), or NULL when the
 * profiles no longer name it (then: a Jupyter server, no headers).
 * Borrowed from this thread's memo, good until its next call; an entry
 * counts for its image key and profiles generation only, so a reload is
 * seen at once. */
static const struct spawner_image *
image_info(struct hub *h, const char *image)
{
	struct memo *m;
	unsigned long gen;
	unsigned i;

	if (*image == '\0' || h->spawner == NULL)
		return NULL;
	m = memo_get();
	gen = spawner_profiles_generation(h->spawner);
	for (i = 0; i < IMAGE_MEMO; i++)
		if (m->image[i].h == h && m->image[i].gen == gen &&
		    strcmp(m->image[i].key, image) == 0)
			return &m->image[i].im;
	i = m->image_next++ % IMAGE_MEMO;
	m->image[i].h = NULL;
	if (strlen(image) >= sizeof(m->image[i].key) ||
	    spawner_image_info(h->spawner, image, &m->image[i].im, NULL) < 0)
		return NULL;	/* not kept: asked again next time */
	m->image[i].h = h;
	m->image[i].gen = gen;
	strcpy(m->image[i].key, image);
	return &m->image[i].im;
}

/* servers_token_for (an HMAC) from this thread's memo. */
static void
server_token(struct hub *h, const char *name, const char *server,
	     const char *nonce, char *out)
{
	struct memo *m = memo_get();
	unsigned i;

	for (i = 0; i < TOKEN_MEMO; i++)
		if (m->token[i].h == h &&
		    strcmp(m->token[i].nonce, nonce) == 0 &&
		    strcmp(m->token[i].name, name) == 0 &&
		    strcmp(m->token[i].server, server) == 0) {
			memcpy(out, m->token[i].token, 65);
			return;
		}
	servers_token_for(h, name, server, nonce, out);
	if (strlen(name) > USER_NAME_MAX || strlen(server) > SERVER_NAME_MAX ||
	    strlen(nonce) > 32)
		return;
	i = m->token_next++ % TOKEN_MEMO;
	m->token[i].h = h;
	strcpy(m->token[i].name, name);
	strcpy(m->token[i].server, server);
	strcpy(m->token[i].nonce, nonce);
	memcpy(m->token[i].token, out, 65);
}

/* The image's headers name Authorization (then they replace the token). */
static int
sets_authorization(const struct spawner_image *im)
{
	for (size_t i = 0; i < im->nheaders; i++)
		if (strcasecmp(im->header_name[i], "authorization") == 0)
			return 1;
	return 0;
}

/*
 * The image's headers, with {base_url}, {user} and {token} expanded, and
 * for a web app (kind "web"): no Jupyter token and none of the hub's
 * credentials (its Authorization; the session cookie goes for all), the
 * prefix stripped when the image says "strip". prefix: the server's
 * ("/user/alice/"), as in the path. -1 when a header does not fit.
 */
static int
image_target(const struct spawner_image *im, const char *prefix,
	     const char *name, const char *token, struct edge_target *t)
{
	t->strip_authorization = 1;
	if (im->kind == SPAWNER_KIND_WEB) {
		t->authorization[0] = '\0';
		if (im->strip_prefix)
			t->strip_target = strlen(prefix) - 1;
	} else if (im->kind == SPAWNER_KIND_SINGLEUSER) {
		/* jupyterhub-singleuser authenticates each caller through
		 * the hub: it gets the caller's own Authorization and its
		 * cookies (as JupyterHub's proxy passes them), never a token
		 * of ours */
		t->authorization[0] = '\0';
		t->strip_authorization = 0;
	} else if (!sets_authorization(im)) {
		snprintf(t->authorization, sizeof(t->authorization),
			 "token %s", token);
	}
	for (size_t i = 0; i < im->nheaders && i < EDGE_HEADERS_MAX; i++) {
		if (spawner_expand(im->header_value[i], prefix, name, token,
				   t->header_value[i],
				   sizeof(t->header_value[i])) < 0)
			return -1;
		snprintf(t->header_name[i], sizeof(t->header_name[i]), "%s",
			 im->header_name[i]);
		t->nheaders = (int)i + 1;
	}
	return 0;
}

/* Fills t for a running server of name (server "" the default one, prefix
 * its path: "/user/alice/gpu/"); 0, or -1 when not running, -2 when a
 * header of its image does not fit. */
static int
to_server(struct hub *h, const char *name, const char *server,
	  const char *prefix,
	  struct edge_target *t, enum srv_state *st)
{
	struct user *u;
	struct server *s;
	static const struct spawner_image plain;	/* Jupyter, no headers */
	const struct spawner_image *known;
	struct spawner_image im;
	char nonce[33] = "", image[64] = "", token[65];
	int ok = 0, singleuser = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? user_server(u, server) : NULL;
	*st = s ? s->state : SRV_STOPPED;
	if (s && s->state == SRV_RUNNING && *s->ip) {
		snprintf(t->host, sizeof(t->host), "%s", s->ip);
		t->port = s->addr.port;
		memcpy(nonce, s->nonce, sizeof(nonce));
		if (s->has_opts)
			memcpy(image, s->opts.image, sizeof(image));
		singleuser = s->kind == SPAWNER_KIND_SINGLEUSER;
		ok = 1;
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (!ok)
		return -1;
	server_token(h, name, server, nonce, token);
	known = image_info(h, image);
	if (known == NULL)
		known = &plain;
	/* the kind the server was started as, whatever the profiles say now
	 * (a copy only then) */
	if (singleuser != (known->kind == SPAWNER_KIND_SINGLEUSER)) {
		im = *known;
		im.kind = singleuser ? SPAWNER_KIND_SINGLEUSER :
		    SPAWNER_KIND_JUPYTER;
		known = &im;
	}
	if (image_target(known, prefix, name, token, t) < 0)
		return -2;
	t->action = EDGE_PROXY;
	snprintf(t->strip_cookie, sizeof(t->strip_cookie), "%s",
		 SESSION_COOKIE);
	snprintf(t->activity, sizeof(t->activity), "%s%s%s", name,
		 *server ? "/" : "", server);
	t->timeout_ms = h->cfg.proxy_timeout_s * 1000;
	return 0;
}

/* The named server of name that rest (after /user/<name>/) begins with,
 * into server ("" when none: the default server's path). *bare: rest is
 * exactly the server's name, without its '/'. */
static void
which_server(struct hub *h, const char *name, const char *rest,
	     char *server, int *bare)
{
	size_t n = strcspn(rest, "/?");
	struct user *u;

	server[0] = '\0';
	*bare = 0;
	if (n == 0 || n > SERVER_NAME_MAX)
		return;
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	for (size_t i = 0; u && i < u->nnamed; i++) {
		if (strlen(u->named[i]->name) == n &&
		    strncmp(u->named[i]->name, rest, n) == 0) {
			memcpy(server, rest, n);
			server[n] = '\0';
			*bare = rest[n] != '/';
			break;
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
}

static void
user_route(struct hub *h, const struct edge_request *rq, struct edge_target *t)
{
	const char *p = rq->target + 6, *slash = strchr(p, '/');
	char name[USER_NAME_MAX + 1], cookie[65];
	size_t n = slash ? (size_t)(slash - p) : strcspn(p, "?");
	struct who w;
	enum srv_state st;
	const char *rest = slash ? slash + 1 : "";
	char server[SERVER_NAME_MAX + 1];
	int bare;

	if (n == 0 || n > USER_NAME_MAX) {
		page_error(h, t, 404, "Page not found", "There is no such user.");
		return;
	}
	memcpy(name, p, n);
	name[n] = '\0';
	if (slash == NULL) {	/* /user/alice → /user/alice/ */
		char *loc = xasprintf("/user/%s/%s", name, p + n);

		redirect(t, loc);
		free(loc);
		return;
	}
	if (rq->cookie && cookie_copy(rq->cookie, SESSION_COOKIE, cookie,
				      sizeof(cookie)) == 0)
		who_from(h, rq->authorization, cookie, &w);
	else	/* none, or longer than a session id */
		who_from(h, rq->authorization, NULL, &w);
	if (w.kind == WHO_NONE) {
		struct strbuf sb;

		if (is_api(rest) || rq->authorization) {
			json_error(t, 403, "not logged in: log in at /hub/login "
				   "or send an API token");
			return;
		}
		sb_init(&sb);
		sb_adds(&sb, "/hub/login?next=");
		url_escape(&sb, rq->target);
		redirect(t, sb.buf);
		sb_release(&sb);
		return;
	}
	if (strcmp(w.name, name) != 0 &&
	    !(w.admin && w.kind == WHO_USER && h->cfg.admin_access) &&
	    !(w.limit != WHO_FULL && strcmp(w.server_user, name) == 0)) {
		page_error(h, t, 403, "Not your server", "This notebook server "
			   "belongs to someone else.");
		return;
	}
	if ((rq->upgrade || state_changing(rq->method)) && !origin_ok(rq)) {
		page_error(h, t, 403, "Cross-site request refused", "This "
			   "request came from another site.");
		return;
	}
	which_server(h, name, rest, server, &bare);
	if (bare) {	/* /user/alice/gpu → /user/alice/gpu/ */
		char *loc = xasprintf("/user/%s/%s/%s", name, server,
				      rest + strlen(server));

		redirect(t, loc);
		free(loc);
		return;
	}
	{
		/* servers_url's path, without a malloc */
		char prefix[USER_NAME_MAX + SERVER_NAME_MAX + 9];
		int rc;

		snprintf(prefix, sizeof(prefix), "/user/%s/%s%s", name, server,
			 *server ? "/" : "");
		rc = to_server(h, name, server, prefix, t, &st);
		if (rc == -2)
			page_error(h, t, 502, "Bad gateway", "A header this "
				   "server's image adds is too long.");
		else if (rc < 0)
			not_running(h, t, name, server, rest, st, rq->target);
	}
}

void
proxy_route(void *ctx, const struct edge_request *rq, struct edge_target *t)
{
	struct hub *h = ctx;

	if (strncmp(rq->target, "/user/", 6) == 0) {
		user_route(h, rq, t);
		return;
	}
	t->action = EDGE_PROXY;
	snprintf(t->unix_path, sizeof(t->unix_path), "%s", h->internal_socket);
	t->timeout_ms = 600000;	/* the progress stream is long-lived */
}

/* key: "<name>" or "<name>/<server>" (set by to_server). */
void
proxy_activity(void *ctx, const char *key, int from_client)
{
	struct hub *h = ctx;
	struct user *u;
	struct server *s;
	int64_t now = time_now_ms();
	const char *slash = strchr(key, '/');
	char name[USER_NAME_MAX + 1];

	snprintf(name, sizeof(name), "%.*s", slash ? (int)(slash - key) :
		 (int)strlen(key), key);
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? user_server(u, slash ? slash + 1 : "") : NULL;
	if (s) {
		__atomic_store_n(&s->last_activity_ms, now, __ATOMIC_RELAXED);
		__atomic_store_n(&s->activity_dirty, 1, __ATOMIC_RELAXED);
		if (from_client)
			__atomic_store_n(&s->last_client_ms, now,
					 __ATOMIC_RELAXED);
		state_touch_user(u, now);
	}
	pthread_rwlock_unlock(&h->state.lock);
}

/*
 * A server that dies with many requests in flight fails them all at once:
 * one re-check with Docker (a thread each) a second per server is enough,
 * not hundreds (the periodic sweep catches what a skipped one would have).
 * 1 when key's last re-check was asked less than a second ago; else
 * notes now.
 */
#define RECHECK_SLOTS 64
static pthread_mutex_t recheck_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	const struct hub *h;
	char key[160];
	int64_t ms;
} recheck_last[RECHECK_SLOTS];

static int
recheck_recent(const struct hub *h, const char *key, int64_t now)
{
	uint32_t x = 2166136261u;
	int recent;

	for (const char *p = key; *p; p++)
		x = (x ^ (uint8_t)*p) * 16777619u;
	x %= RECHECK_SLOTS;
	pthread_mutex_lock(&recheck_lock);
	recent = recheck_last[x].h == h && now - recheck_last[x].ms < 1000 &&
	    strcmp(recheck_last[x].key, key) == 0;
	if (!recent) {
		recheck_last[x].h = h;
		recheck_last[x].ms = now;
		snprintf(recheck_last[x].key, sizeof(recheck_last[x].key),
			 "%s", key);
	}
	pthread_mutex_unlock(&recheck_lock);
	return recent;
}

void
proxy_upstream_failed(void *ctx, const char *key, int status)
{
	struct hub *h = ctx;

	log_event(LOG_WARN, "proxy.upstream_failed", "user=%s status=%d", key,
		  status);
	if (!recheck_recent(h, key, time_mono_ms()))
		servers_recheck(h, key);
}
