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

void
servers_token(struct hub *h, const char *user, const char *nonce, char *out)
{
	char *msg = xasprintf("server:%s:%s:%s", h->cfg.spawn.hub_id, user,
			      nonce ? nonce : "");

	crypto_hmac_hex(h->cfg.secret, msg, out);
	free(msg);
}

/* ---- the user model's server part ------------------------------------ */
void
servers_model(struct strbuf *sb, const struct user *u, int *ready,
	      int *pending)
{
	const struct server *s = u->server;
	char ts[40];

	*ready = s && s->state == SRV_RUNNING;
	*pending = s && (s->state == SRV_STARTING || s->state == SRV_STOPPING);
	if (!*ready && !*pending) {
		sb_adds(sb, "{}");
		return;
	}
	sb_adds(sb, "{\"\": {\"name\": \"\", \"ready\": ");
	sb_adds(sb, *ready ? "true" : "false");
	sb_adds(sb, ", \"pending\": ");
	sb_adds(sb, s->state == SRV_STARTING ? "\"spawn\"" :
		s->state == SRV_STOPPING ? "\"stop\"" : "null");
	sb_adds(sb, ", \"stopped\": false, \"url\": ");
	{
		char *url = xasprintf("/user/%s/", u->name);

		sb_add_json(sb, url);
		free(url);
		url = xasprintf("/hub/api/users/%s/server/progress", u->name);
		sb_adds(sb, ", \"progress_url\": ");
		sb_add_json(sb, url);
		free(url);
	}
	time_iso8601(s->started_ms, ts, sizeof(ts));
	sb_adds(sb, ", \"started\": ");
	if (*ts)
		sb_addf(sb, "\"%s\"", ts);
	else
		sb_adds(sb, "null");
	time_iso8601(__atomic_load_n(&s->last_activity_ms, __ATOMIC_RELAXED),
		     ts, sizeof(ts));
	sb_adds(sb, ", \"last_activity\": ");
	if (*ts)
		sb_addf(sb, "\"%s\"", ts);
	else
		sb_adds(sb, "null");
	sb_adds(sb, ", \"state\": {}, \"user_options\": ");
	sb_adds(sb, s->options_json ? s->options_json : "{}");
	sb_adds(sb, "}}");
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
/* Writes the server row of name as it is in memory (caller holds no lock). */
static void
save(struct hub *h, const char *name)
{
	struct store_server row = { 0 };
	struct err e = { 0 };
	struct user *u;
	char *opts = NULL, *err = NULL, *service = NULL, *image = NULL;
	char *nonce = NULL;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u && u->server) {
		struct server *s = u->server;

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
		row.name = "";
		row.user_options = opts;
		row.last_error = err;
		row.service_id = service;
		row.image = image;
		row.token_nonce = nonce;
		if (store_server_save(h->store, &row, &e) < 0)
			log_event(LOG_WARN, "server.save_failed", "user=%s "
				  "err=%s", name, e.msg);
	}
	free(opts);
	free(err);
	free(service);
	free(image);
	free(nonce);
}

static void
event(struct hub *h, const char *name, const char *kind, const char *msg)
{
	struct err e = { 0 };

	if (store_server_event(h->store, name, "", kind, msg, &e) < 0)
		log_event(LOG_WARN, "server.event_failed", "user=%s err=%s",
			  name, e.msg);
}

/* ---- workers --------------------------------------------------------- */
struct job {
	struct hub *h;
	char name[USER_NAME_MAX + 1];
	char actor[USER_NAME_MAX + 16];
	char reason[256];
	struct spawn_opts opts;
	struct progress *progress;
	char nonce[33];
	int64_t t0;
};

static void
on_progress(void *ctx, int pct, const char *msg)
{
	struct job *j = ctx;

	progress_add(j->progress, pct, msg, 0, NULL);
	log_event(LOG_INFO, "spawn.progress", "user=%s progress=%d msg=%s",
		  j->name, pct, msg);
}

/* Under the write lock: the user's server, or NULL when the user is gone. */
static struct server *
server_of(struct hub *h, const char *name)
{
	struct user *u = state_user(&h->state, name);

	return u ? u->server : NULL;
}

/*
 * A new server answers at s's address, so any other server the hub still
 * routes to that address is gone (Docker reuses addresses): stop routing
 * there at once, before a request for it reaches the newcomer. Returns
 * their names for a re-check (heap, NULL-terminated). Write lock held.
 */
static char **
unroute_same_address(struct hub *h, const struct server *s)
{
	char **names = xcalloc(h->state.nusers + 1, sizeof(*names));
	size_t n = 0;

	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];
		struct server *o = u->server;

		if (o == NULL || o == s || o->state != SRV_RUNNING ||
		    strcmp(o->ip, s->ip) != 0 || o->addr.port != s->addr.port)
			continue;
		o->ip[0] = '\0';
		names[n++] = xstrdup(u->name);
		log_event(LOG_WARN, "server.address_reused", "user=%s ip=%s",
			  u->name, s->ip);
	}
	return names;
}

static void
start_done(struct job *j, int rc, const struct server_addr *a,
	   const struct err *e)
{
	struct hub *h = j->h;
	struct server *s;
	char *url = xasprintf("/user/%s/", j->name);
	int cancelled = 0;
	struct err ignore = { 0 };
	char ip[64] = "";
	char **stale = NULL;

	if (rc == 0)
		resolve(a->host, ip, sizeof(ip));
	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, j->name);
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
	pthread_rwlock_unlock(&h->state.lock);
	if (s == NULL || cancelled) {	/* user deleted, or stop asked */
		spawner_stop(h->spawner, j->name, "", &ignore);
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	}
	if (rc == 0 && s && !cancelled) {
		progress_add(j->progress, 100, "Server ready", 1, url);
		log_event(LOG_INFO, "spawn.ready", "user=%s service=%s ms=%ld",
			  j->name, a->service_name,
			  (long)(time_mono_ms() - j->t0));
		event(h, j->name, "ready", url);
	} else {
		char *msg = xasprintf("Spawn failed: %s",
		    *progress_cancel_flag(j->progress) ?
		    "the start was cancelled" : e->msg);

		progress_add(j->progress, 100, msg, 2, NULL);
		log_event(LOG_WARN, "spawn.failed", "user=%s err=%s", j->name,
			  e->msg);
		event(h, j->name, "failed", msg);
		hub_audit(h, j->actor, "server.start_failed", j->name, NULL, "");
		free(msg);
	}
	if (s)
		save(h, j->name);
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
	char token[65], *base = xasprintf("/user/%s/", j->name);
	struct spawn_req req = { .user = j->name, .server = "",
				 .opts = &j->opts, .token = token,
				 .base_url = base,
				 .cancel = &*progress_cancel_flag(j->progress) };
	int rc;

	servers_token(h, j->name, j->nonce, token);
	/* HOME_UID=ldap: the user's own uid:gid (a local one allocated now
	 * when they have none yet) */
	rc = ids_for(h, j->name, &req.uid, &req.gid, &req.own_ids, &e);
	if (rc == 0)
		rc = spawner_start(h->spawner, &req, on_progress, j, &a, &e);
	start_done(j, rc, &a, &e);
	progress_unref(j->progress);
	__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	free(base);
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
	int rc = spawner_stop(h->spawner, j->name, "", &e);

	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, j->name);
	if (s) {
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
		log_event(LOG_INFO, "server.stopped", "user=%s ms=%ld", j->name,
			  (long)(time_mono_ms() - j->t0));
	else
		log_event(LOG_WARN, "server.stop_failed", "user=%s err=%s",
			  j->name, e.msg);
	event(h, j->name, rc == 0 ? "stop" : "stop_failed",
	      rc == 0 ? j->reason : e.msg);
	if (s)
		save(h, j->name);
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

/* Options of active servers started with profile by its group's members;
 * caller holds the lock. */
struct spawn_opts *
servers_in_use(struct hub *h, const char *profile, size_t *n)
{
	struct spawn_opts *v = xcalloc(h->state.nusers + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];
		struct server *s = u->server;

		if (s && s->has_opts && s->state != SRV_STOPPED &&
		    strcmp(s->opts.profile, profile) == 0 &&
		    member(u, profile))
			v[(*n)++] = s->opts;
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

/* Checks and marks the server as starting (write lock held). */
static int
claim_start(struct hub *h, struct user *u, const struct spawn_opts *o,
	    const char *opts_json, struct progress *p, struct err *e)
{
	struct server *s = u->server;
	struct spawn_opts *used;
	size_t n;
	int rc;

	if (u->renaming)
		return err_set(e, ERR_CONFLICT, "%s is being renamed: try "
			       "again in a moment", u->name);
	if (s && s->state == SRV_RUNNING)
		return err_set(e, ERR_CONFLICT, "%s's server is already "
			       "running", u->name);
	if (s && s->state != SRV_STOPPED)
		return err_set(e, ERR_CONFLICT, "%s's server has a pending %s; "
		    "wait until it is done", u->name,
		    s->state == SRV_STARTING ? "start" : "stop");
	used = servers_in_use(h, o->profile, &n);
	rc = spawner_quota_check(h->spawner, o, used, n, e);
	free(used);
	if (rc < 0)
		return -1;
	if (s == NULL)
		s = u->server = xcalloc(1, sizeof(*s));
	s->state = SRV_STARTING;
	s->opts = *o;
	s->has_opts = 1;
	{
		unsigned char b[16];
		static const char hx[] = "0123456789abcdef";

		crypto_random(b, sizeof(b));
		for (int i = 0; i < 16; i++) {
			s->nonce[2 * i] = hx[b[i] >> 4];
			s->nonce[2 * i + 1] = hx[b[i] & 15];
		}
		s->nonce[32] = '\0';
	}
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

int
servers_start(struct hub *h, const char *name, const char *options_json,
	      const char *actor, struct err *e)
{
	struct spawn_opts o;
	struct progress *p;
	struct job *j;
	struct user *u;
	char *opts_json;
	int rc;

	if (h->spawner == NULL)
		return err_set(e, ERR_UNAVAILABLE, "spawning is not configured "
		    "on this hub (set SWARMHUB_NETWORK and SWARMHUB_PROFILES)");
	if (user_options(h, name, options_json, &o, e) < 0)
		return -1;
	if (spawner_ping(h->spawner, e) < 0)
		return err_set(e, ERR_UNAVAILABLE, "cannot start servers now: "
		    "%s", e->msg);
	if (__atomic_add_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED) >
	    h->cfg.concurrent_spawn_limit) {
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
		return err_set(e, ERR_TOOMANY, "too many servers are starting "
		    "or stopping right now (limit %ld): try again in a moment",
		    h->cfg.concurrent_spawn_limit);
	}
	__atomic_add_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	opts_json = spawner_options_json(&o);
	p = progress_new();
	progress_add(p, 0, "Server requested", 0, NULL);
	j = xcalloc(1, sizeof(*j));
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	rc = u ? claim_start(h, u, &o, opts_json, p, e)
	       : err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (rc == 0)
		memcpy(j->nonce, u->server->nonce, sizeof(j->nonce));
	pthread_rwlock_unlock(&h->state.lock);
	free(opts_json);
	if (rc < 0) {
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
		progress_unref(p);
		free(j);
		return -1;
	}
	j->h = h;
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->actor, sizeof(j->actor), "%s", actor);
	j->opts = o;
	j->progress = p;
	j->t0 = time_mono_ms();
	save(h, name);
	event(h, name, "spawn", actor);
	hub_audit(h, actor, "server.start", name, NULL, "");
	log_event(LOG_INFO, "spawn.requested", "user=%s profile=%s image=%s "
		  "cpu=%.2f mem_gb=%.2f by=%s", name, o.profile, o.image, o.cpu,
		  o.mem_gb, actor);
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
servers_stop(struct hub *h, const char *name, const char *actor,
	     const char *reason, struct err *e)
{
	struct user *u;
	struct server *s;
	struct job *j;
	int what = 0;	/* 0 nothing, 1 cancel a start, 2 stop */

	if (h->spawner == NULL)
		return err_set(e, ERR_UNAVAILABLE, "spawning is not configured "
		    "on this hub");
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? u->server : NULL;
	if (s && s->state == SRV_STARTING) {
		*progress_cancel_flag(s->progress) = 1;
		what = 1;
	} else if (s && s->state == SRV_STOPPING) {
		what = 1;
	} else if (s && s->state == SRV_RUNNING) {
		s->state = SRV_STOPPING;
		what = 2;
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL)
		return err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (what < 2)
		return what;
	__atomic_add_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
	j = xcalloc(1, sizeof(*j));
	j->h = h;
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->actor, sizeof(j->actor), "%s", actor);
	snprintf(j->reason, sizeof(j->reason), "%s", reason ? reason : "");
	j->t0 = time_mono_ms();
	hub_audit(h, actor, "server.stop", name, NULL, "");
	log_event(LOG_INFO, "server.stop_requested", "user=%s by=%s", name,
		  actor);
	save(h, name);
	if (launch(stop_worker, j, e) < 0) {
		__atomic_sub_fetch(&h->limited_actions, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&h->active_actions, 1, __ATOMIC_RELAXED);
		free(j);
		return -1;
	}
	return 1;
}

/* ---- progress of a start, for the event stream ----------------------- */
struct progress *
servers_progress_of(struct hub *h, const char *name, int *exists)
{
	struct progress *p = NULL;
	struct user *u;
	struct server *s;
	int running;
	char *url;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	s = u ? u->server : NULL;
	*exists = u != NULL;
	if (s && s->progress && s->state != SRV_STOPPING)
		p = progress_ref(s->progress);
	running = s && s->state == SRV_RUNNING;
	pthread_rwlock_unlock(&h->state.lock);
	if (p || !*exists)
		return p;
	/* adopted, stopped, or never started: one final event */
	url = xasprintf("/user/%s/", name);
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
	json_decref(j);
	return *o->image != '\0';
}

static int
load_row(void *ctx, const struct store_server *row)
{
	struct hub *h = ctx;
	struct user *u;
	struct server *s;

	if (*row->name)
		return 0;	/* named servers: not supported yet */
	u = state_user(&h->state, row->user);
	if (u == NULL)
		return 0;
	s = u->server ? u->server : (u->server = xcalloc(1, sizeof(*s)));
	s->state = parse_state(row->state);
	s->has_opts = opts_from_json(row->user_options, &s->opts);
	free(s->options_json);
	s->options_json = xstrdup(row->user_options);
	s->started_ms = row->started_ms;
	s->last_activity_ms = row->last_activity_ms;
	snprintf(s->nonce, sizeof(s->nonce), "%s",
		 row->token_nonce ? row->token_nonce : "");
	free(s->last_error);
	s->last_error = row->last_error ? xstrdup(row->last_error) : NULL;
	return 0;
}

/* Brings one server in line with Docker. */
static void
check_one(struct hub *h, const char *name, int at_start)
{
	struct server_addr a;
	struct spawn_opts o;
	struct err e = { 0 };
	struct server *s;
	enum srv_state before;
	int has_opts, rc, changed = 0;
	char ip[64] = "";

	pthread_rwlock_rdlock(&h->state.lock);
	s = server_of(h, name);
	before = s ? s->state : SRV_STOPPED;
	has_opts = s && s->has_opts;
	if (s)
		o = s->opts;
	pthread_rwlock_unlock(&h->state.lock);
	if (s == NULL || (!at_start && before != SRV_RUNNING) ||
	    before == SRV_STOPPED)
		return;
	rc = spawner_locate(h->spawner, name, "", has_opts ? &o : NULL, &a,
			    &e);
	if (rc < 0 && e.code != ERR_NOTFOUND) {
		log_event(LOG_WARN, "reconcile.failed", "user=%s err=%s", name,
			  e.msg);
		return;
	}
	if (rc == 0)
		resolve(a.host, ip, sizeof(ip));
	pthread_rwlock_wrlock(&h->state.lock);
	s = server_of(h, name);
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
		  "server.gone", "user=%s err=%s", name, rc ? e.msg : "");
	event(h, name, rc == 0 ? "adopted" : "gone", rc ? e.msg : "");
	save(h, name);
}

static void
count_orphans(struct hub *h)
{
	struct spawner_service *v;
	struct err e = { 0 };
	size_t n;
	long orphans = 0;

	if (spawner_list(h->spawner, &v, &n, &e) < 0) {
		log_event(LOG_WARN, "reconcile.list_failed", "err=%s", e.msg);
		return;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		struct server *s = server_of(h, v[i].user);

		if (s == NULL || s->state == SRV_STOPPED) {
			orphans++;
			log_event(LOG_WARN, "reconcile.orphan", "service=%s "
				  "user=%s", v[i].name, v[i].user);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	__atomic_store_n(&h->orphans, orphans, __ATOMIC_RELAXED);
	free(v);
}

static void
check_all(struct hub *h, int at_start)
{
	char **names;
	size_t n = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	names = xcalloc(h->state.nusers + 1, sizeof(*names));
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		if (u->server && u->server->state != SRV_STOPPED)
			names[n++] = xstrdup(u->name);
	}
	pthread_rwlock_unlock(&h->state.lock);
	for (size_t i = 0; i < n; i++)
		check_one(h, names[i], at_start);
	strv_free(names);
	count_orphans(h);
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

void
servers_reconcile(struct hub *h)
{
	if (h->spawner)
		check_all(h, 0);
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
		check_one(j->h, j->name, 0);
		pthread_rwlock_rdlock(&j->h->state.lock);
		s = server_of(j->h, j->name);
		running = s && s->state == SRV_RUNNING;
		pthread_rwlock_unlock(&j->h->state.lock);
		if (!running)
			break;
	}
	free(j);
	return NULL;
}

void
servers_recheck(struct hub *h, const char *name)
{
	struct job *j;
	struct err e = { 0 };

	if (h->spawner == NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->h = h;
	snprintf(j->name, sizeof(j->name), "%s", name);
	if (launch(recheck_worker, j, &e) < 0)
		free(j);
}

void
servers_cancel_all(struct hub *h)
{
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct server *s = h->state.user_list[i]->server;

		if (s && s->state == SRV_STARTING && s->progress)
			*progress_cancel_flag(s->progress) = 1;
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
	struct spawner_service *v;
	struct err e = { 0 };
	char **suspects;
	size_t n, k = 0;

	if (h->spawner == NULL || spawner_list(h->spawner, &v, &n, &e) < 0)
		return;
	pthread_rwlock_rdlock(&h->state.lock);
	suspects = xcalloc(h->state.nusers + 1, sizeof(*suspects));
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];
		int alive = 0;

		if (u->server == NULL || u->server->state != SRV_RUNNING)
			continue;
		for (size_t x = 0; x < n && !alive; x++)
			alive = v[x].running && !*v[x].server &&
				strcmp(v[x].user, u->name) == 0;
		if (!alive)
			suspects[k++] = xstrdup(u->name);
	}
	pthread_rwlock_unlock(&h->state.lock);
	free(v);
	for (size_t i = 0; i < k; i++)
		check_one(h, suspects[i], 0);
	strv_free(suspects);
}
