/*
 * servers.c - users' servers as the hub sees them: start and stop on
 * worker threads, the progress stream, adoption at start and the periodic
 * reconcile with Docker.
 *
 * Each start or stop runs on its own detached thread (bounded by
 * CONCURRENT_SPAWN_LIMIT); it looks the user up by name under state.lock
 * whenever it changes the server, so a user deleted meanwhile is noticed.
 * Progress events are kept per start in a refcounted struct progress
 * (progress.c), which the event stream (events.c) replays to listeners.
 * A user has a default server ("") and named ones; every function here
 * takes the pair (user, server), and the keys handed between threads are
 * "<user>" or "<user>/<server>" (usernames have no '/').
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hub.h"

static const char *
state_name(enum srv_state st)
{
	static const char *const names[] = { "stopped", "pending", "running",
					     "stopping" };

	return names[st];
}

/* The default server's token is what it always was (running servers
 * are adopted across upgrades); a named one's identity is user/server. */
void
servers_token_for(struct hub *h, const char *user, const char *server,
		  const char *nonce, char *out)
{
	char *msg = server && *server ?
	    xasprintf("server:%s:%s/%s:%s", h->cfg.spawn.hub_id, user, server,
		      nonce ? nonce : "") :
	    xasprintf("server:%s:%s:%s", h->cfg.spawn.hub_id, user,
		      nonce ? nonce : "");

	crypto_hmac_hex(h->cfg.secret, msg, out);
	free(msg);
}

void
servers_token(struct hub *h, const char *user, const char *nonce, char *out)
{
	servers_token_for(h, user, "", nonce, out);
}

char *
servers_url(const char *name, const char *server)
{
	return server && *server ? xasprintf("/user/%s/%s/", name, server)
				 : xasprintf("/user/%s/", name);
}

/* Names a first path segment of a Jupyter server or web app would take
 * (a named server of that name would hide it on the default server). */
static const char *const reserved_names[] = {
	"api", "lab", "tree", "notebooks", "files", "edit", "view", "static",
	"terminals", "kernels", "nbconvert", "doc", "voila", "logout", "login",
	"custom", "nbextensions", "hub", "user", "rstudio", "proxy", NULL
};

int
servers_name_check(const char *server, struct err *e)
{
	size_t n = strlen(server);

	if (n == 0)
		return 0;
	if (n > SERVER_NAME_MAX || !((server[0] >= 'a' && server[0] <= 'z') ||
				     (server[0] >= '0' && server[0] <= '9')) ||
	    strspn(server, "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return err_set(e, ERR_INVALID, "server name '%.80s' is not "
		    "valid: 1-63 characters of a-z, 0-9, '.', '_', '-', "
		    "starting with a letter or digit", server);
	for (const char *const *r = reserved_names; *r; r++)
		if (strcmp(server, *r) == 0)
			return err_set(e, ERR_INVALID, "server name '%s' is "
			    "reserved: /user/<name>/%s/ belongs to the default "
			    "server", server, server);
	return 0;
}

/* "<user>" or "<user>/<server>" into its parts (server "" when none). */
static void
split_key(const char *key, char *name, size_t nsize, char *server,
	  size_t ssize)
{
	const char *slash = strchr(key, '/');

	if (slash == NULL) {
		snprintf(name, nsize, "%s", key);
		server[0] = '\0';
		return;
	}
	snprintf(name, nsize, "%.*s", (int)(slash - key), key);
	snprintf(server, ssize, "%s", slash + 1);
}

static char *
make_key(const char *name, const char *server)
{
	return *server ? xasprintf("%s/%s", name, server) : xstrdup(name);
}

/* ---- the user model's server part ------------------------------------ */
static void
add_ts(struct strbuf *sb, int64_t ms)
{
	char ts[40];

	time_iso8601(ms, ts, sizeof(ts));
	if (*ts)
		sb_addf(sb, "\"%s\"", ts);
	else
		sb_adds(sb, "null");
}

/* One server's model, as JupyterHub's (the key is added by the caller). */
static void
server_model(struct strbuf *sb, const struct user *u, const struct server *s)
{
	char *url = servers_url(u->name, s->name);
	int active = s->state != SRV_STOPPED;

	sb_adds(sb, "{\"name\": ");
	sb_add_json(sb, s->name);
	sb_addf(sb, ", \"ready\": %s, \"pending\": %s, \"stopped\": %s",
		s->state == SRV_RUNNING ? "true" : "false",
		s->state == SRV_STARTING ? "\"spawn\"" :
		s->state == SRV_STOPPING ? "\"stop\"" : "null",
		active ? "false" : "true");
	sb_adds(sb, ", \"url\": ");
	sb_add_json(sb, url);
	free(url);
	url = *s->name ? xasprintf("/hub/api/users/%s/servers/%s/progress",
				   u->name, s->name)
		       : xasprintf("/hub/api/users/%s/server/progress",
				   u->name);
	sb_adds(sb, ", \"progress_url\": ");
	sb_add_json(sb, url);
	free(url);
	sb_adds(sb, ", \"started\": ");
	add_ts(sb, active ? s->started_ms : 0);
	sb_adds(sb, ", \"last_activity\": ");
	add_ts(sb, __atomic_load_n(&s->last_activity_ms, __ATOMIC_RELAXED));
	sb_adds(sb, ", \"state\": {}, \"user_options\": ");
	sb_adds(sb, s->options_json ? s->options_json : "{}");
	sb_adds(sb, "}");
}

void
servers_model(struct strbuf *sb, const struct user *u, int all, int *ready,
	      int *pending)
{
	const struct server *d = u->server;
	int first = 1;

	*ready = d && d->state == SRV_RUNNING;
	*pending = d && (d->state == SRV_STARTING || d->state == SRV_STOPPING);
	sb_adds(sb, "{");
	for (size_t i = 0; i < user_nservers(u); i++) {
		const struct server *s = user_server_at(u, i);

		if (s == NULL || (s->state == SRV_STOPPED && !all))
			continue;
		sb_adds(sb, first ? "" : ", ");
		first = 0;
		sb_add_json(sb, s->name);
		sb_adds(sb, ": ");
		server_model(sb, u, s);
	}
	sb_adds(sb, "}");
}

/* addr.host as an IPv4 literal (service names resolve through Docker's
 * DNS on the overlay network); blocking: workers and reconcile only. */
static void
resolve(const char *host, char *ip, size_t size)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	struct in_addr a;

	ip[0] = '\0';
	if (inet_pton(AF_INET, host, &a) == 1) {
		snprintf(ip, size, "%s", host);
		return;
	}
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)
		    res->ai_addr)->sin_addr, ip, (socklen_t)size);
	} else {
		log_event(LOG_WARN, "server.resolve_failed", "host=%s", host);
	}
	if (res)
		freeaddrinfo(res);
}

/* ---- persistence ----------------------------------------------------- */
/* Under the lock: the server, or NULL when the user or server is gone. */
static struct server *
server_of(struct hub *h, const char *name, const char *server)
{
	struct user *u = state_user(&h->state, name);

	return u ? user_server(u, server) : NULL;
}

/* Writes the server row as it is in memory (caller holds no lock). */
static void
save(struct hub *h, const char *name, const char *server)
{
	struct store_server row = { 0 };
	struct err e = { 0 };
	struct user *u;
	char *opts = NULL, *err = NULL, *service = NULL, *image = NULL;
	char *nonce = NULL;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u && user_server(u, server)) {
		struct server *s = user_server(u, server);

		row.state = state_name(s->state);
		opts = xstrdup(s->options_json ? s->options_json : "{}");
		err = s->last_error ? xstrdup(s->last_error) : NULL;
		service = *s->addr.service_id ? xstrdup(s->addr.service_id)
					      : NULL;
		image = s->has_opts ? xstrdup(s->opts.image) : NULL;
		row.started_ms = s->started_ms;
		row.last_activity_ms = s->last_activity_ms;
		nonce = xstrdup(s->nonce);
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (row.state) {
		row.user = name;
		row.name = server;
		row.user_options = opts;
		row.last_error = err;
		row.service_id = service;
		row.image = image;
		row.token_nonce = nonce;
		if (store_server_save(h->store, &row, &e) < 0)
			log_event(LOG_WARN, "server.save_failed", "user=%s "
				  "server=%s err=%s", name, server, e.msg);
	}
	free(opts);
	free(err);
	free(service);
	free(image);
	free(nonce);
}

static void
event(struct hub *h, const char *name, const char *server, const char *kind,
      const char *msg)
{
	struct err e = { 0 };

	if (store_server_event(h->store, name, server, kind, msg, &e) < 0)
		log_event(LOG_WARN, "server.event_failed", "user=%s err=%s",
			  name, e.msg);
}

/* The kind of the image key (enum spawner_kind), or -1 with *e. */
static int
image_kind(struct hub *h, const char *image, struct err *e)
{
	struct spawner_image im;

	if (spawner_image_info(h->spawner, image, &im, e) < 0)
		return -1;
	return (int)im.kind;
}

/* ---- workers --------------------------------------------------------- */
struct job {
	struct hub *h;
	char name[USER_NAME_MAX + 1];
	char server[SERVER_NAME_MAX + 1];
	char actor[USER_NAME_MAX + 16];
	char reason[256];
	struct spawn_opts opts;
	struct progress *progress;
	char nonce[33];
	int64_t t0;
	char key[USER_NAME_MAX + SERVER_NAME_MAX + 2];	/* name[/server] */
};

/* Deletes a named server's record: the row, then memory. */
static void
forget(struct hub *h, const char *name, const char *server)
{
	struct err e = { 0 };
	struct user *u;

	if (*server == '\0')
		return;
	if (store_server_delete(h->store, name, server, &e) < 0) {
		log_event(LOG_WARN, "server.remove_failed", "user=%s server=%s "
			  "err=%s", name, server, e.msg);
		save(h, name, server);
		return;
	}
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		user_server_remove(u, server);
	pthread_rwlock_unlock(&h->state.lock);
	log_event(LOG_INFO, "server.removed", "user=%s server=%s", name,
		  server);
}

static void
on_progress(void *ctx, int pct, const char *msg)
{
	struct job *j = ctx;

	progress_add(j->progress, pct, msg, 0, NULL);
	log_event(LOG_INFO, "spawn.progress", "user=%s server=%s progress=%d "
		  "msg=%s", j->name, j->server, pct, msg);
}

/*
 * A new server answers at s's address, so any other server the hub still
 * routes to that address is gone (Docker reuses addresses): stop routing
 * there at once, before a request for it reaches the newcomer. Returns
 * their keys for a re-check (heap, NULL-terminated). Write lock held.
 */
static char **
unroute_same_address(struct hub *h, const struct server *s)
{
	size_t cap = h->state.nusers + 1, n = 0;
	char **names = xcalloc(cap, sizeof(*names));

	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *o = user_server_at(u, k);

			if (o == NULL || o == s || o->state != SRV_RUNNING ||
			    strcmp(o->ip, s->ip) != 0 ||
			    o->addr.port != s->addr.port)
				continue;
			o->ip[0] = '\0';
			if (n + 1 >= cap) {
				cap *= 2;
				names = xrealloc(names, cap * sizeof(*names));
			}
			names[n++] = make_key(u->name, o->name);
			names[n] = NULL;
			log_event(LOG_WARN, "server.address_reused", "user=%s "
				  "server=%s ip=%s", u->name, o->name, s->ip);
		}
	}
	return names;
}

static void
start_done(struct job *j, int rc, const struct server_addr *a,
	   const struct err *e)
{
	struct hub *h = j->h;
	struct server *s;
	char *url = servers_url(j->name, j->server);
	int cancelled = 0, removed = 0;
	struct err ignore = { 0 };
	char ip[64] = "";
	char **stale = NULL;

	if (rc == 0)
		resolve(a->host, ip, sizeof(ip));
	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, j->name, j->server);
	if (s && *progress_cancel_flag(j->progress) && rc == 0)
		cancelled = 1;
	if (s && rc == 0 && !cancelled) {
		s->state = SRV_RUNNING;
		s->addr = *a;
		snprintf(s->ip, sizeof(s->ip), "%s", ip);
		stale = unroute_same_address(h, s);
		s->started_ms = time_now_ms();
		s->last_activity_ms = s->started_ms;
		free(s->last_error);
		s->last_error = NULL;
	} else if (s) {
		s->state = SRV_STOPPED;
		free(s->last_error);
		s->last_error = xstrdup(*progress_cancel_flag(j->progress) ?
		    "the start was cancelled" : e->msg);
	}
	/* the start is over for CONCURRENT_SPAWN_LIMIT when its outcome can
	 * be seen (the worker itself still runs: active_actions) */
	if (s && !cancelled)
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	if (s && s->state == SRV_STOPPED && s->remove_pending)
		removed = 1;	/* DELETE with remove during the start */
	pthread_rwlock_unlock(&h->state.lock);
	if (s == NULL || cancelled) {	/* user deleted, or stop asked */
		spawner_stop(h->spawner, j->name, j->server, &ignore);
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	}
	if (rc == 0 && s && !cancelled) {
		progress_add(j->progress, 100, "Server ready", 1, url);
		log_event(LOG_INFO, "spawn.ready", "user=%s server=%s "
			  "service=%s ms=%ld", j->name, j->server,
			  a->service_name, (long)(time_mono_ms() - j->t0));
		event(h, j->name, j->server, "ready", url);
	} else {
		char *msg = xasprintf("Spawn failed: %s",
		    *progress_cancel_flag(j->progress) ?
		    "the start was cancelled" : e->msg);

		progress_add(j->progress, 100, msg, 2, NULL);
		log_event(LOG_WARN, "spawn.failed", "user=%s server=%s err=%s",
			  j->name, j->server, e->msg);
		event(h, j->name, j->server, "failed", msg);
		hub_audit(h, j->actor, "server.start_failed", j->key, NULL, "");
		free(msg);
	}
	if (removed)
		forget(h, j->name, j->server);
	else if (s)
		save(h, j->name, j->server);
	for (char **p = stale; p && *p; p++)
		servers_recheck(h, *p);
	strv_free(stale);
	free(url);
}

static void *
start_worker(void *arg)
{
	struct job *j = arg;
	struct hub *h = j->h;
	struct server_addr a;
	struct err e = { 0 };
	char token[65], *base = servers_url(j->name, j->server);
	char *api = xasprintf("%s/hub/api", h->cfg.hub_connect_url);
	char client_id[CLIENT_ID_MAX];
	struct spawn_req req = { .user = j->name, .server = j->server,
				 .opts = &j->opts, .token = token,
				 .base_url = base, .hub_api_url = api,
				 .oauth_client_id = client_id,
				 .cancel = &*progress_cancel_flag(j->progress) };
	int rc;

	servers_token_for(h, j->name, j->server, j->nonce, token);
	clients_id(j->name, j->server, client_id, sizeof(client_id));
	/* the server calls the hub while it starts: its client (and API
	 * token) must be known before */
	clients_revoke(h, j->name, j->server);
	if (image_kind(h, j->opts.image, NULL) == SPAWNER_KIND_SINGLEUSER)
		clients_add(h, j->name, j->server, j->nonce, token);
	/* HOME_UID=ldap: the user's own uid:gid (a local one allocated now
	 * when they have none yet) */
	rc = ids_for(h, j->name, &req.uid, &req.gid, &req.own_ids, &e);
	if (rc == 0)
		rc = spawner_start(h->spawner, &req, on_progress, j, &a, &e);
	start_done(j, rc, &a, &e);
	progress_unref(j->progress);
	__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	free(base);
	free(api);
	free(j);
	return NULL;
}

static void *
stop_worker(void *arg)
{
	struct job *j = arg;
	struct hub *h = j->h;
	struct err e = { 0 };
	struct server *s;
	int rc = spawner_stop(h->spawner, j->name, j->server, &e);
	int removed = 0;

	if (rc == 0)
		clients_revoke(h, j->name, j->server);
	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, j->name, j->server);
	if (s) {
		removed = rc == 0 && s->remove_pending;
		s->state = rc == 0 ? SRV_STOPPED : SRV_RUNNING;
		free(s->last_error);
		s->last_error = rc == 0 ? (*j->reason ? xstrdup(j->reason)
						      : NULL)
					: xasprintf("stop failed: %s", e.msg);
		if (rc == 0) {
			memset(&s->addr, 0, sizeof(s->addr));
			s->ip[0] = '\0';
		}
	}
	__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&h->state.lock);
	if (rc == 0)
		log_event(LOG_INFO, "server.stopped", "user=%s server=%s "
			  "ms=%ld", j->name, j->server,
			  (long)(time_mono_ms() - j->t0));
	else
		log_event(LOG_WARN, "server.stop_failed", "user=%s server=%s "
			  "err=%s", j->name, j->server, e.msg);
	event(h, j->name, j->server, rc == 0 ? "stop" : "stop_failed",
	      rc == 0 ? j->reason : e.msg);
	if (removed)
		forget(h, j->name, j->server);
	else if (s)
		save(h, j->name, j->server);
	__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	free(j);
	return NULL;
}

static int
launch(void *(*fn)(void *), struct job *j, struct err *e)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&t, &attr, fn, j);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		return err_set(e, ERR_INTERNAL, "cannot start a worker thread");
	return 0;
}

/* ---- start and stop -------------------------------------------------- */
static int
member(const struct user *u, const char *group)
{
	if (strcmp(group, "default") == 0)
		return 1;
	for (size_t i = 0; i < u->ngroups; i++)
		if (strcmp(u->groups[i], group) == 0)
			return 1;
	return 0;
}

/* Options of active servers started with profile by its group's members
 * (every server of each: default and named); caller holds the lock. */
struct spawn_opts *
servers_in_use(struct hub *h, const char *profile, size_t *n)
{
	size_t cap = h->state.nusers + 1;
	struct spawn_opts *v = xcalloc(cap, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		if (!member(u, profile))
			continue;
		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *s = user_server_at(u, k);

			if (s == NULL || !s->has_opts ||
			    s->state == SRV_STOPPED ||
			    strcmp(s->opts.profile, profile) != 0)
				continue;
			if (*n + 1 >= cap) {
				cap *= 2;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[(*n)++] = s->opts;
		}
	}
	return v;
}

void
servers_usage_of(struct hub *h, const char *profile,
		 struct servers_usage *use)
{
	struct spawn_opts *v;
	size_t n;

	memset(use, 0, sizeof(*use));
	pthread_rwlock_rdlock(&h->state.lock);
	v = servers_in_use(h, profile, &n);
	pthread_rwlock_unlock(&h->state.lock);
	use->servers = (long)n;
	for (size_t i = 0; i < n; i++) {
		use->cpu += v[i].cpu;
		use->mem_gb += v[i].mem_gb;
		use->gpus += v[i].gpus;
	}
	free(v);
}

/* "alice's server" or "alice's server 'gpu'" (heap). */
static char *
who_s(const char *name, const char *server)
{
	return *server ? xasprintf("%s's server '%s'", name, server)
		       : xasprintf("%s's server", name);
}

static void
new_nonce(char *nonce)
{
	unsigned char b[16];
	static const char hx[] = "0123456789abcdef";

	crypto_random(b, sizeof(b));
	for (int i = 0; i < 16; i++) {
		nonce[2 * i] = hx[b[i] >> 4];
		nonce[2 * i + 1] = hx[b[i] & 15];
	}
	nonce[32] = '\0';
}

/* May server be started now (write lock held)? 0, or -1 with *e. */
static int
may_start(struct hub *h, struct user *u, const char *server,
	  const struct spawn_opts *o, struct err *e)
{
	struct server *s = user_server(u, server);
	struct spawn_opts *used;
	char *what;
	size_t n;
	int rc = 0;

	if (u->renaming)
		return err_set(e, ERR_CONFLICT, "%s is being renamed: try "
			       "again in a moment", u->name);
	what = who_s(u->name, server);
	if (s && s->state == SRV_RUNNING)
		rc = err_set(e, ERR_CONFLICT, "%s is already running", what);
	else if (s && s->state != SRV_STOPPED)
		rc = err_set(e, ERR_CONFLICT, "%s has a pending %s; wait until "
		    "it is done", what, s->state == SRV_STARTING ? "start" :
		    "stop");
	else if (s == NULL && *server && h->cfg.named_server_limit > 0 &&
		 (long)u->nnamed >= h->cfg.named_server_limit)
		rc = err_set(e, ERR_INVALID, "%s already has the maximum of "
		    "%ld named servers (NAMED_SERVER_LIMIT_PER_USER): delete "
		    "one before creating '%s'", u->name,
		    h->cfg.named_server_limit, server);
	free(what);
	if (rc < 0)
		return -1;
	used = servers_in_use(h, o->profile, &n);
	rc = spawner_quota_check(h->spawner, o, used, n, e);
	free(used);
	return rc;
}

/* Checks and marks the server as starting (write lock held). */
static int
claim_start(struct hub *h, struct user *u, const char *server,
	    const struct spawn_opts *o, const char *opts_json,
	    struct progress *p, struct err *e)
{
	struct server *s;

	if (may_start(h, u, server, o, e) < 0)
		return -1;
	s = user_server(u, server);
	if (s == NULL)
		s = user_server_add(u, server);
	s->state = SRV_STARTING;
	s->remove_pending = 0;
	s->opts = *o;
	s->has_opts = 1;
	new_nonce(s->nonce);
	free(s->options_json);
	s->options_json = xstrdup(opts_json);
	progress_unref(s->progress);
	s->progress = progress_ref(p);
	return 0;
}

static int
user_options(struct hub *h, const char *name, const char *json,
	     struct spawn_opts *o, struct err *e)
{
	struct user *u;
	char **groups = NULL;
	size_t n = 0;
	int rc;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		groups = xcalloc(u->ngroups + 1, sizeof(*groups));
		for (n = 0; n < u->ngroups; n++)
			groups[n] = xstrdup(u->groups[n]);
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL)
		return err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	rc = spawner_options(h->spawner, (const char *const *)groups, n, json,
			     o, e);
	strv_free(groups);
	return rc;
}

static struct job *
job_new(struct hub *h, const char *name, const char *server,
	const char *actor)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->h = h;
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->server, sizeof(j->server), "%s", server);
	snprintf(j->actor, sizeof(j->actor), "%s", actor ? actor : "");
	snprintf(j->key, sizeof(j->key), "%s%s%s", name, *server ? "/" : "",
		 server);
	j->t0 = time_mono_ms();
	return j;
}

/* Takes a slot of CONCURRENT_SPAWN_LIMIT; -1 with ERR_TOOMANY. */
static int
take_slot(struct hub *h, struct err *e)
{
	if (__atomic_add_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED) >
	    h->cfg.concurrent_spawn_limit) {
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
		return err_set(e, ERR_TOOMANY, "too many servers are starting "
		    "or stopping right now (limit %ld): try again in a moment",
		    h->cfg.concurrent_spawn_limit);
	}
	__atomic_add_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	return 0;
}

static void
give_slot(struct hub *h)
{
	__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
}

int
servers_start_named(struct hub *h, const char *name, const char *server,
		    const char *options_json, const char *actor,
		    struct err *e)
{
	struct spawn_opts o;
	struct progress *p;
	struct job *j;
	struct user *u;
	char *opts_json;
	int rc, kind;

	if (h->spawner == NULL)
		return err_set(e, ERR_UNAVAILABLE, "spawning is not configured "
		    "on this hub (set SWARMHUB_NETWORK and SWARMHUB_PROFILES)");
	if (servers_name_check(server, e) < 0 ||
	    user_options(h, name, options_json, &o, e) < 0 ||
	    (kind = image_kind(h, o.image, e)) < 0)
		return -1;
	if (spawner_ping(h->spawner, e) < 0)
		return err_set(e, ERR_UNAVAILABLE, "cannot start servers now: "
		    "%s", e->msg);
	if (take_slot(h, e) < 0)
		return -1;
	opts_json = spawner_options_json(&o);
	p = progress_new();
	progress_add(p, 0, "Server requested", 0, NULL);
	j = job_new(h, name, server, actor);
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	rc = u ? claim_start(h, u, server, &o, opts_json, p, e)
	       : err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (rc == 0) {
		memcpy(j->nonce, user_server(u, server)->nonce,
		       sizeof(j->nonce));
		user_server(u, server)->kind = kind;
	}
	pthread_rwlock_unlock(&h->state.lock);
	free(opts_json);
	if (rc < 0) {
		give_slot(h);
		progress_unref(p);
		free(j);
		return -1;
	}
	j->opts = o;
	j->progress = p;
	save(h, name, server);
	event(h, name, server, "spawn", actor);
	hub_audit(h, actor, "server.start", j->key, NULL, "");
	log_event(LOG_INFO, "spawn.requested", "user=%s server=%s profile=%s "
		  "image=%s cpu=%.2f mem_gb=%.2f by=%s", name, server,
		  o.profile, o.image, o.cpu, o.mem_gb, actor);
	if (launch(start_worker, j, e) < 0) {
		struct err fe = { ERR_INTERNAL, "no worker thread" };

		j->progress = progress_ref(p);
		start_done(j, -1, NULL, &fe);
		progress_unref(j->progress);
		progress_unref(p);
		__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
		free(j);
		return -1;
	}
	return 0;
}

int
servers_start(struct hub *h, const char *name, const char *options_json,
	      const char *actor, struct err *e)
{
	return servers_start_named(h, name, "", options_json, actor, e);
}

/* What a stop does (write lock held): 0 nothing (stopped), 1 a start is
 * cancelled or a stop is under way already, 2 a stop begins. */
static int
claim_stop(struct server *s, int remove)
{
	if (remove && *s->name)
		s->remove_pending = 1;
	if (s->state == SRV_STARTING) {
		*progress_cancel_flag(s->progress) = 1;
		return 1;
	}
	if (s->state == SRV_STOPPING)
		return 1;
	if (s->state == SRV_RUNNING) {
		s->state = SRV_STOPPING;
		return 2;
	}
	return 0;
}

int
servers_stop_named(struct hub *h, const char *name, const char *server,
		   int remove, const char *actor, const char *reason,
		   struct err *e)
{
	struct user *u;
	struct server *s = NULL;
	struct job *j;
	int what = 0;

	if (h->spawner == NULL)
		return err_set(e, ERR_UNAVAILABLE, "spawning is not configured "
		    "on this hub");
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? user_server(u, server) : NULL;
	if (s)
		what = claim_stop(s, remove);
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL)
		return err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (s == NULL && *server)
		return err_set(e, ERR_NOTFOUND, "%s has no server '%s'", name,
			       server);
	if (what == 0 && remove && *server) {
		hub_audit(h, actor, "server.remove", server, NULL, "");
		forget(h, name, server);
	}
	if (what < 2)
		return what;
	__atomic_add_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	j = job_new(h, name, server, actor);
	snprintf(j->reason, sizeof(j->reason), "%s", reason ? reason : "");
	hub_audit(h, actor, "server.stop", j->key, NULL, "");
	log_event(LOG_INFO, "server.stop_requested", "user=%s server=%s by=%s",
		  name, server, actor);
	save(h, name, server);
	if (launch(stop_worker, j, e) < 0) {
		give_slot(h);
		free(j);
		return -1;
	}
	return 1;
}

int
servers_stop(struct hub *h, const char *name, const char *actor,
	     const char *reason, struct err *e)
{
	return servers_stop_named(h, name, "", 0, actor, reason, e);
}

char *
servers_open_url(struct hub *h, const char *name, const char *server)
{
	struct spawner_image info;
	struct err e = { 0 };
	struct user *u;
	struct server *s;
	char image[64] = "";
	char *url = servers_url(name, server), *full;
	const char *d;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? user_server(u, server) : NULL;
	if (s && s->has_opts)
		snprintf(image, sizeof(image), "%s", s->opts.image);
	pthread_rwlock_unlock(&h->state.lock);
	if (!*image || h->spawner == NULL ||
	    spawner_image_info(h->spawner, image, &info, &e) < 0 ||
	    !*info.default_url)
		return url;
	d = info.default_url;
	while (*d == '/')
		d++;
	full = xasprintf("%s%s", url, d);
	free(url);
	return full;
}

/* ---- progress of a start, for the event stream ----------------------- */
struct progress *
servers_progress_of(struct hub *h, const char *name, const char *server,
		    int *exists)
{
	struct progress *p = NULL;
	struct user *u;
	struct server *s;
	int running;
	char *url;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? user_server(u, server) : NULL;
	*exists = u != NULL && (s != NULL || *server == '\0');
	if (s && s->progress && s->state != SRV_STOPPING)
		p = progress_ref(s->progress);
	running = s && s->state == SRV_RUNNING;
	pthread_rwlock_unlock(&h->state.lock);
	if (p || !*exists)
		return p;
	/* adopted, stopped, or never started: one final event */
	url = servers_url(name, server);
	p = progress_new();
	progress_add(p, 100, running ? "Server ready" :
		     "the server is not running", running ? 1 : 2, url);
	free(url);
	return p;
}

/* ---- adoption and reconcile ------------------------------------------ */
static enum srv_state
parse_state(const char *s)
{
	if (strcmp(s, "running") == 0)
		return SRV_RUNNING;
	if (strcmp(s, "pending") == 0)
		return SRV_STARTING;
	if (strcmp(s, "stopping") == 0)
		return SRV_STOPPING;
	return SRV_STOPPED;
}

static int
opts_from_json(const char *json, struct spawn_opts *o)
{
	json_t *j = json_loads(json ? json : "{}", 0, NULL);
	json_t *v;

	memset(o, 0, sizeof(*o));
	if (j == NULL)
		return 0;
	if ((v = json_object_get(j, "profile")) && json_is_string(v))
		snprintf(o->profile, sizeof(o->profile), "%s",
			 json_string_value(v));
	if ((v = json_object_get(j, "image")) && json_is_string(v))
		snprintf(o->image, sizeof(o->image), "%s", json_string_value(v));
	o->cpu = json_number_value(json_object_get(j, "cpu"));
	o->mem_gb = json_number_value(json_object_get(j, "mem_gb"));
	o->gpus = (int)json_integer_value(json_object_get(j, "gpus"));
	if ((v = json_object_get(j, "pool")) && json_is_string(v))
		snprintf(o->pool, sizeof(o->pool), "%s", json_string_value(v));
	json_decref(j);
	return *o->image != '\0';
}

/* At hub start: a singleuser server that may still run keeps its OAuth
 * client (its API token is derived from the stored nonce). */
static void
adopt_client(struct hub *h, const char *name, struct server *s)
{
	char token[65];

	if (h->spawner == NULL || !s->has_opts || s->state == SRV_STOPPED)
		return;
	s->kind = image_kind(h, s->opts.image, NULL);
	if (s->kind != SPAWNER_KIND_SINGLEUSER)
		return;
	servers_token_for(h, name, s->name, s->nonce, token);
	clients_add(h, name, s->name, s->nonce, token);
}

static int
load_row(void *ctx, const struct store_server *row)
{
	struct hub *h = ctx;
	struct user *u;
	struct server *s;
	struct err e = { 0 };

	u = state_user(&h->state, row->user);
	if (u == NULL || strlen(row->name) > SERVER_NAME_MAX ||
	    (*row->name && servers_name_check(row->name, &e) < 0))
		return 0;
	s = user_server(u, row->name);
	if (s == NULL)
		s = user_server_add(u, row->name);
	s->state = parse_state(row->state);
	s->has_opts = opts_from_json(row->user_options, &s->opts);
	free(s->options_json);
	s->options_json = xstrdup(row->user_options);
	s->started_ms = row->started_ms;
	s->last_activity_ms = row->last_activity_ms;
	snprintf(s->nonce, sizeof(s->nonce), "%s",
		 row->token_nonce ? row->token_nonce : "");
	adopt_client(h, u->name, s);
	free(s->last_error);
	s->last_error = row->last_error ? xstrdup(row->last_error) : NULL;
	return 0;
}

/* Brings one server (key "<user>[/<server>]") in line with Docker. */
static void
check_one(struct hub *h, const char *key, int at_start)
{
	struct server_addr a;
	struct spawn_opts o;
	struct err e = { 0 };
	struct server *s;
	enum srv_state before;
	int has_opts, rc, changed = 0;
	char ip[64] = "", name[USER_NAME_MAX + 1];
	char server[SERVER_NAME_MAX + 1];

	split_key(key, name, sizeof(name), server, sizeof(server));
	pthread_rwlock_rdlock(&h->state.lock);
	s = server_of(h, name, server);
	before = s ? s->state : SRV_STOPPED;
	has_opts = s && s->has_opts;
	if (s)
		o = s->opts;
	pthread_rwlock_unlock(&h->state.lock);
	if (s == NULL || (!at_start && before != SRV_RUNNING) ||
	    before == SRV_STOPPED)
		return;
	rc = spawner_locate(h->spawner, name, server, has_opts ? &o : NULL,
			    &a, &e);
	if (rc < 0 && e.code != ERR_NOTFOUND) {
		log_event(LOG_WARN, "reconcile.failed", "user=%s server=%s "
			  "err=%s", name, server, e.msg);
		return;
	}
	if (rc == 0)
		resolve(a.host, ip, sizeof(ip));
	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, name, server);
	if (s && s->state == before) {
		changed = 1;
		if (rc == 0) {
			s->state = SRV_RUNNING;
			s->addr = a;
			snprintf(s->ip, sizeof(s->ip), "%s", ip);
			/* pages and quotas count the limit the server has:
			 * one started before mem_gb meant GiB has 10^9
			 * bytes per "GB" of its user_options */
			if (a.mem_limit_bytes > 0)
				s->opts.mem_gb = (double)a.mem_limit_bytes /
				    SPAWNER_GIB;
		} else {
			s->ip[0] = '\0';
			s->state = SRV_STOPPED;
			free(s->last_error);
			s->last_error = xasprintf("the server stopped on its own "
			    "(%s)", e.msg);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (rc < 0 && changed) {
		/* no running task: leave no half-started service behind. By
		 * ID and without waiting for its container: this runs on the
		 * background loop, and the user may start anew at once */
		struct err ignore = { 0 };

		spawner_remove_id(h->spawner, a.service_id, &ignore);
	}
	if (!changed || (rc == 0 && !at_start && before == SRV_RUNNING))
		return;
	log_event(rc == 0 ? LOG_INFO : LOG_WARN, rc == 0 ? "server.adopted" :
		  "server.gone", "user=%s server=%s err=%s", name, server,
		  rc ? e.msg : "");
	event(h, name, server, rc == 0 ? "adopted" : "gone", rc ? e.msg : "");
	save(h, name, server);
}

/* The services of v (n) that no server owns are counted and logged. */
static void
count_orphans(struct hub *h, const struct spawner_service *v, size_t n)
{
	long orphans = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		struct server *s = server_of(h, v[i].user, v[i].server);

		if (s == NULL || s->state == SRV_STOPPED) {
			orphans++;
			log_event(LOG_WARN, "reconcile.orphan", "service=%s "
				  "user=%s server=%s", v[i].name, v[i].user,
				  v[i].server);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	__atomic_store_n(&h->orphans, orphans, __ATOMIC_RELAXED);
}

/* This hub's services, sorted by owner (user, server) for runs(). */
static int
cmp_owner(const void *a, const void *b)
{
	const struct spawner_service *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	return c ? c : strcmp(x->server, y->server);
}

static int
list_sorted(struct hub *h, struct spawner_service **v, size_t *n, int quiet)
{
	struct err e = { 0 };

	if (spawner_list(h->spawner, v, n, &e) < 0) {
		if (!quiet)
			log_event(LOG_WARN, "reconcile.list_failed", "err=%s",
				  e.msg);
		return -1;
	}
	qsort(*v, *n, sizeof(**v), cmp_owner);
	return 0;
}

/* Whether a service of v (sorted, n) for name's server has a running
 * task: a binary search, so a pass over every server stays n log n. */
static int
runs(const struct spawner_service *v, size_t n, const char *name,
     const char *server)
{
	struct spawner_service k;
	const struct spawner_service *f;
	size_t i;

	snprintf(k.user, sizeof(k.user), "%s", name);
	snprintf(k.server, sizeof(k.server), "%s", server);
	f = bsearch(&k, v, n, sizeof(*v), cmp_owner);
	if (f == NULL)
		return 0;
	/* the same owner twice (an old service beside a new one): any */
	for (i = (size_t)(f - v); i > 0 && cmp_owner(&v[i - 1], &k) == 0; i--)
		;
	for (; i < n && cmp_owner(&v[i], &k) == 0; i++)
		if (v[i].running)
			return 1;
	return 0;
}

/* Keys of every user's servers that are not stopped (running_only: that
 * run), heap, NULL-terminated. Takes the read lock. */
static char **
server_keys(struct hub *h, int running_only)
{
	size_t cap, n = 0;
	char **keys;

	pthread_rwlock_rdlock(&h->state.lock);
	cap = h->state.nusers + 1;
	keys = xcalloc(cap, sizeof(*keys));
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *s = user_server_at(u, k);

			if (s == NULL || s->state == SRV_STOPPED ||
			    (running_only && s->state != SRV_RUNNING))
				continue;
			if (n + 1 >= cap) {
				cap *= 2;
				keys = xrealloc(keys, cap * sizeof(*keys));
			}
			keys[n++] = make_key(u->name, s->name);
			keys[n] = NULL;
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	return keys;
}

/* check_one over keys on up to ADOPT_THREADS threads (the caller's
 * included): each check waits on Docker, DNS and the database, so at a
 * start with hundreds of servers running they overlap. */
#define ADOPT_THREADS 8

struct check_many {
	struct hub *h;
	char **keys;
	size_t n;
	int at_start;
	pthread_mutex_t lock;
	size_t next;			/* guarded by lock */
};

static void *
check_worker(void *arg)
{
	struct check_many *c = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		i = c->next++;
		pthread_mutex_unlock(&c->lock);
		if (i >= c->n)
			return NULL;
		check_one(c->h, c->keys[i], c->at_start);
	}
}

static void
check_keys(struct hub *h, char **keys, int at_start)
{
	struct check_many c = { .h = h, .keys = keys, .at_start = at_start };
	pthread_t t[ADOPT_THREADS - 1];
	size_t started = 0;

	while (keys[c.n])
		c.n++;
	pthread_mutex_init(&c.lock, NULL);
	/* a thread for every 4 servers or so, up to the bound */
	while (started < ADOPT_THREADS - 1 && started * 4 + 4 < c.n &&
	       pthread_create(&t[started], NULL, check_worker, &c) == 0)
		started++;
	check_worker(&c);
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_destroy(&c.lock);
}

/* At start: every server that is not stopped is located (adopted, with
 * its address and limit, or marked stopped); then the orphans. */
static void
check_all(struct hub *h, int at_start)
{
	char **keys = server_keys(h, 0);
	struct spawner_service *v = NULL;
	size_t n = 0;

	check_keys(h, keys, at_start);
	strv_free(keys);
	if (list_sorted(h, &v, &n, 0) == 0)
		count_orphans(h, v, n);
	free(v);
}

int
servers_load(struct hub *h, struct err *e)
{
	int rc;

	pthread_rwlock_wrlock(&h->state.lock);
	rc = store_servers_load(h->store, load_row, h, e);
	pthread_rwlock_unlock(&h->state.lock);
	if (rc == 0 && h->spawner)
		check_all(h, 1);
	return rc;
}

/* Running servers without a running task are checked one by one; the
 * rest need nothing: one listing (three Docker calls) however many run. */
static void
check_dead(struct hub *h, const struct spawner_service *v, size_t n)
{
	char **keys = server_keys(h, 1);

	for (char **k = keys; *k; k++) {
		char name[USER_NAME_MAX + 1], server[SERVER_NAME_MAX + 1];

		split_key(*k, name, sizeof(name), server, sizeof(server));
		if (!runs(v, n, name, server))
			check_one(h, *k, 0);
	}
	strv_free(keys);
}

void
servers_reconcile(struct hub *h)
{
	struct spawner_service *v = NULL;
	size_t n = 0;

	if (h->spawner == NULL || list_sorted(h, &v, &n, 0) < 0)
		return;
	check_dead(h, v, n);
	count_orphans(h, v, n);
	free(v);
}

/* After a 502 Docker may still say "running" for a moment: look at 0, 1
 * and 3 s until it tells. */
static void *
recheck_worker(void *arg)
{
	struct job *j = arg;
	static const int wait_ms[] = { 0, 1000, 2000 };

	for (int i = 0; i < 3; i++) {
		struct server *s;
		int running;

		usleep((useconds_t)wait_ms[i] * 1000);
		check_one(j->h, j->key, 0);
		pthread_rwlock_rdlock(&j->h->state.lock);
		s = server_of(j->h, j->name, j->server);
		running = s && s->state == SRV_RUNNING;
		pthread_rwlock_unlock(&j->h->state.lock);
		if (!running)
			break;
	}
	free(j);
	return NULL;
}

void
servers_recheck(struct hub *h, const char *key)
{
	char name[USER_NAME_MAX + 1], server[SERVER_NAME_MAX + 1];
	struct job *j;
	struct err e = { 0 };

	if (h->spawner == NULL)
		return;
	split_key(key, name, sizeof(name), server, sizeof(server));
	j = job_new(h, name, server, NULL);
	if (launch(recheck_worker, j, &e) < 0)
		free(j);
}

void
servers_cancel_all(struct hub *h)
{
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *s = user_server_at(u, k);

			if (s && s->state == SRV_STARTING && s->progress)
				*progress_cancel_flag(s->progress) = 1;
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
}

/* Three Docker calls (services, tasks, nodes), however many servers: any
 * running server whose service has no running task on a node that is up
 * is re-checked now (a container that died
 * must not keep its route: its address may go to someone else's). */
void
servers_sweep(struct hub *h)
{
	struct spawner_service *v = NULL;
	size_t n = 0;

	if (h->spawner == NULL || list_sorted(h, &v, &n, 1) < 0)
		return;
	check_dead(h, v, n);
	free(v);
}
