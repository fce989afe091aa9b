/*
 * api_admin.c - admin endpoints beyond JupyterHub's API, under
 * /hub/api/swarmhub/, for swarmhubctl (orphans, cleanup, doctor) and the
 * admin page. Admins only; errors {"status": N, "message": "..."}.
 *
 *   GET    /swarmhub/orphans                    services and homes nobody owns
 *   DELETE /swarmhub/orphans/services/<name>    remove an orphan service
 *   POST   /swarmhub/homes/<name>               {"action": archive|delete}
 *   POST   /swarmhub/chown/<name>               {"dry_run": b}: re-own a home
 *   POST   /swarmhub/chown-shared               {"dry_run": b}: SHARED_DIR
 *   POST   /swarmhub/ldap-check                 {"users": [...]} -> missing
 *   GET    /swarmhub/doctor                     checks with fixes
 *   GET    /swarmhub/audit?limit=N              newest audit entries
 *   GET    /swarmhub/nodes                      the swarm's nodes, what this
 *                                               hub's servers reserve there
 *   GET    /swarmhub/usage                      CPU/memory running servers use
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

static void
reply_err(struct req *r, const struct err *e)
{
	req_json_error(r, err_http_status(e->code), "%s", e->msg);
}

/* Replies with j (taken over). */
static void
reply_json(struct req *r, int status, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	req_json(r, status, text ? text : xstrdup("{}"));
}

static int
need_spawner(struct req *r)
{
	if (r->hub->spawner)
		return 0;
	req_json_error(r, 503, "spawning is not configured on this hub "
	    "(SWARMHUB_NETWORK)");
	return -1;
}

/* ---- orphans --------------------------------------------------------- */
static int
known_running(struct hub *h, const char *user, const char *server)
{
	struct user *u = state_user(&h->state, user);
	struct server *s = u ? user_server(u, server) : NULL;

	return s && s->state != SRV_STOPPED;
}

static void
orphan_services(struct hub *h, json_t *out, struct err *e, int *ok)
{
	struct spawner_service *v;
	size_t n;

	if (spawner_list(h->spawner, &v, &n, e) < 0) {
		*ok = 0;
		return;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		if (known_running(h, v[i].user, v[i].server))
			continue;
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:b}",
		    "name", v[i].name, "service_id", v[i].service_id,
		    "user", v[i].user, "server", v[i].server,
		    "running", v[i].running));
	}
	pthread_rwlock_unlock(&h->state.lock);
	free(v);
}

static void
orphan_homes(struct hub *h, json_t *out)
{
	char **names;
	struct err e = { 0 };

	if (spawner_home_list(h->spawner, &names, &e) < 0)
		return;		/* no homes configured: nothing to list */
	pthread_rwlock_rdlock(&h->state.lock);
	for (char **p = names; *p; p++)
		if (state_user(&h->state, *p) == NULL)
			json_array_append_new(out, json_string(*p));
	pthread_rwlock_unlock(&h->state.lock);
	strv_free(names);
}

static void
get_orphans(struct req *r)
{
	struct hub *h = r->hub;
	json_t *services = json_array(), *homes = json_array();
	struct err e = { 0 };
	int ok = 1;

	orphan_services(h, services, &e, &ok);
	if (!ok) {
		json_decref(services);
		json_decref(homes);
		reply_err(r, &e);
		return;
	}
	orphan_homes(h, homes);
	reply_json(r, 200, json_pack("{s:o, s:o}", "services", services,
				     "homes", homes));
}

static void
delete_orphan_service(struct req *r, const char *name)
{
	struct hub *h = r->hub;
	struct spawner_service *v;
	struct err e = { 0 };
	size_t n;
	int owned = 0, found = 0;

	if (spawner_list(h->spawner, &v, &n, &e) < 0) {
		reply_err(r, &e);
		return;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0) {
			found = 1;
			owned = known_running(h, v[i].user, v[i].server);
		}
	pthread_rwlock_unlock(&h->state.lock);
	free(v);
	if (!found)
		req_json_error(r, 404, "no service '%s' with this hub's label",
			       name);
	else if (owned)
		req_json_error(r, 409, "service '%s' belongs to a running "
		    "server: stop the server instead", name);
	else if (spawner_remove_service(h->spawner, name, &e) < 0)
		reply_err(r, &e);
	else {
		hub_audit(h, "", "orphan.remove", name, NULL, r->ip);
		req_reply(r, 204, "application/json", xstrdup(""), 0);
	}
}

/* ---- homes ----------------------------------------------------------- */
static void
home_action(struct req *r, const char *name, const char *actor)
{
	static const char *const allowed[] = { "action", NULL };
	struct hub *h = r->hub;
	struct err e = { 0 };
	json_t *j = NULL;
	const char *action;
	char to[256];
	int exists;

	if (json_parse_object(r->body_len ? r->body : "{}",
			      r->body_len ? r->body_len : 2, allowed, &j,
			      &e) < 0) {
		reply_err(r, &e);
		return;
	}
	action = json_string_value(json_object_get(j, "action"));
	pthread_rwlock_rdlock(&h->state.lock);
	exists = state_user(&h->state, name) != NULL;
	pthread_rwlock_unlock(&h->state.lock);
	if (action == NULL || (strcmp(action, "archive") &&
			       strcmp(action, "delete"))) {
		req_json_error(r, 400, "action must be \"archive\" or "
			       "\"delete\"");
	} else if (exists) {
		req_json_error(r, 409, "user %s still exists: delete the user "
			       "first (its server is stopped then)", name);
	} else if (*action == 'a' && spawner_home_archive(h->spawner, name, to,
	    sizeof(to), &e) == 0) {
		hub_audit(h, actor, "home.archive", name, NULL, r->ip);
		reply_json(r, 200, json_pack("{s:s}", "archived_to", to));
	} else if (*action == 'd' && spawner_home_delete(h->spawner, name,
							 &e) == 0) {
		hub_audit(h, actor, "home.delete", name, NULL, r->ip);
		req_reply(r, 204, "application/json", xstrdup(""), 0);
	} else {
		reply_err(r, &e);
	}
	json_decref(j);
}

/* ---- re-owning homes (swarmhubctl homes chown) ------------------------ */
static int
dry_run_of(struct req *r, int *dry_run)
{
	static const char *const allowed[] = { "dry_run", NULL };
	struct err e = { 0 };
	json_t *j = NULL, *d;

	if (json_parse_object(r->body_len ? r->body : "{}",
			      r->body_len ? r->body_len : 2, allowed, &j,
			      &e) < 0) {
		reply_err(r, &e);
		return -1;
	}
	d = json_object_get(j, "dry_run");
	*dry_run = json_is_true(d);
	json_decref(j);
	if (d && !json_is_boolean(d)) {
		req_json_error(r, 400, "dry_run must be true or false");
		return -1;
	}
	return 0;
}

/* A server runs as the owner it started with: re-own only when stopped. */
static int
server_stopped(struct req *r, const char *name)
{
	struct hub *h = r->hub;
	struct user *u;
	int exists, stopped;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	exists = u != NULL;
	stopped = !u || user_busiest_state(u) == SRV_STOPPED;
	pthread_rwlock_unlock(&h->state.lock);
	if (!exists)
		req_json_error(r, 404, "user %s does not exist", name);
	else if (!stopped)
		req_json_error(r, 409, "%s's server is running or pending: "
		    "stop it first (it keeps the owner it started with)", name);
	return exists && stopped ? 0 : -1;
}

static void
chown_home(struct req *r, const char *name, const char *actor)
{
	struct hub *h = r->hub;
	struct err e = { 0 };
	long uid, gid, changed = 0;
	int dry_run, own;
	char *detail;

	if (dry_run_of(r, &dry_run) < 0 || server_stopped(r, name) < 0)
		return;
	if (ids_for(h, name, &uid, &gid, &own, &e) < 0 ||
	    spawner_home_chown(h->spawner, name, uid, gid, dry_run, &changed,
			       &e) < 0) {
		reply_err(r, &e);
		return;
	}
	if (!dry_run && changed) {
		detail = xasprintf("{\"uid\": %ld, \"gid\": %ld, "
				   "\"changed\": %ld}", uid, gid, changed);
		hub_audit(h, actor, "home.chown", name, detail, r->ip);
		free(detail);
		log_event(LOG_INFO, "home.chown", "user=%s uid=%ld gid=%ld "
			  "changed=%ld", name, uid, gid, changed);
	}
	reply_json(r, 200, json_pack("{s:s, s:I, s:I, s:I, s:b}", "user",
	    name, "uid", (json_int_t)uid, "gid", (json_int_t)gid, "changed",
	    (json_int_t)changed, "dry_run", dry_run));
}

static void
chown_shared(struct req *r, const char *actor)
{
	struct hub *h = r->hub;
	struct err e = { 0 };
	long changed = 0;
	int dry_run;

	if (dry_run_of(r, &dry_run) < 0)
		return;
	if (spawner_shared_fix(h->spawner, dry_run, &changed, &e) < 0) {
		reply_err(r, &e);
		return;
	}
	if (!dry_run && changed)
		hub_audit(h, actor, "home.chown_shared", h->cfg.spawn.shared_dir,
			  NULL, r->ip);
	reply_json(r, 200, json_pack("{s:s, s:I, s:s, s:I, s:b}", "shared",
	    h->cfg.spawn.shared_dir, "gid", (json_int_t)h->cfg.spawn.home_gid,
	    "mode", "2775", "changed", (json_int_t)changed, "dry_run",
	    dry_run));
}

/* ---- LDAP ------------------------------------------------------------ */
static void
ldap_check(struct req *r)
{
	static const char *const allowed[] = { "users", NULL };
	struct hub *h = r->hub;
	struct err e = { 0 };
	json_t *j = NULL, *users, *it, *missing;
	size_t i;

	if (h->ldap == NULL) {
		req_json_error(r, 400, "this hub does not use LDAP "
			       "(SWARMHUB_AUTH=local)");
		return;
	}
	if (json_parse_object(r->body, r->body_len, allowed, &j, &e) < 0) {
		reply_err(r, &e);
		return;
	}
	users = json_object_get(j, "users");
	if (!json_is_array(users)) {
		json_decref(j);
		req_json_error(r, 400, "users must be a list of names");
		return;
	}
	missing = json_array();
	json_array_foreach(users, i, it) {
		struct auth_user au;
		struct err le = { 0 };

		if (!json_is_string(it))
			continue;
		memset(&au, 0, sizeof(au));
		if (auth_ldap_lookup(h->ldap, json_string_value(it), &au,
				     &le) == 0)
			auth_user_release(&au);
		else if (le.code == ERR_NOTFOUND || le.code == ERR_FORBIDDEN)
			json_array_append(missing, it);
		else {
			json_decref(missing);
			json_decref(j);
			reply_err(r, &le);
			return;
		}
	}
	json_decref(j);
	reply_json(r, 200, json_pack("{s:o}", "missing", missing));
}


/* ---- doctor ---------------------------------------------------------- */
static void
check(json_t *list, int *all_ok, const char *name, int ok, const char *detail,
      const char *fix)
{
	json_array_append_new(list, json_pack("{s:s, s:b, s:s, s:s}", "name",
	    name, "ok", ok, "detail", detail, "fix", ok ? "" : fix));
	*all_ok &= ok;
}

static void
spawner_checks(struct hub *h, json_t *l, int *all)
{
	struct err e = { 0 };
	int ok;

	ok = spawner_check_swarm(h->spawner, &e) == 0;
	check(l, all, "docker", ok, ok ? h->cfg.spawn.docker_host : e.msg,
	      "start dockerd and make this node a swarm manager, or point "
	      "SWARMHUB_DOCKER_HOST at one");
	e = (struct err){ 0 };
	ok = ok && spawner_check_network(h->spawner, &e) == 0;
	check(l, all, "network", ok, ok ? h->cfg.spawn.network : e.msg[0] ?
	      e.msg : "Docker is not reachable", "docker network create -d "
	      "overlay --attachable <SWARMHUB_NETWORK>");
	e = (struct err){ 0 };
	ok = spawner_check_profiles(h->spawner, &e) == 0;
	check(l, all, "profiles", ok, ok ? h->cfg.spawn.profiles_path : e.msg,
	      "fix the key named in the message, then send SIGHUP to the hub");
	if (*h->cfg.spawn.home) {
		e = (struct err){ 0 };
		ok = spawner_check_homes(h->spawner, &e) == 0;
		check(l, all, "homes", ok, ok ? "created and removed a test "
		      "directory" : e.msg, "check that the NFS server (or "
		      "directory) in SWARMHUB_HOME is up, exported read-write "
		      "with no_root_squash, and reachable from the hub");
	}
	api_images_doctor(h, l, all);
}

static void
doctor(struct req *r)
{
	struct hub *h = r->hub;
	json_t *list = json_array();
	struct err e = { 0 };
	int all = 1, ok;

	ok = store_ping(h->store, &e) == 0;
	check(list, &all, "database", ok, ok ? "PostgreSQL answers" : e.msg,
	      "check that PostgreSQL runs and SWARMHUB_DB is right");
	if (h->spawner)
		spawner_checks(h, list, &all);
	if (h->ldap) {
		struct auth_user au;

		memset(&au, 0, sizeof(au));
		e = (struct err){ 0 };
		ok = auth_ldap_lookup(h->ldap, "swarmhub-doctor-probe", &au,
				      &e) == 0 || e.code == ERR_NOTFOUND ||
		     e.code == ERR_FORBIDDEN;
		auth_user_release(&au);
		check(list, &all, "ldap", ok, ok ? h->cfg.ldap.uri : e.msg,
		      "check SWARMHUB_LDAP_URI, the TLS CA and the search "
		      "account (SWARMHUB_LDAP_SEARCH_USER/PASSWORD)");
	}
	reply_json(r, 200, json_pack("{s:b, s:o}", "ok", all, "checks", list));
}

/* ---- audit ----------------------------------------------------------- */
static int
audit_row(void *ctx, const struct store_audit *a)
{
	char ts[40];
	json_t *detail = json_loads(a->detail, 0, NULL);

	time_iso8601(a->ts_ms, ts, sizeof(ts));
	json_array_append_new(ctx, json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}",
	    "ts", ts, "actor", a->actor, "action", a->action, "target",
	    a->target, "detail", detail ? detail : json_object(), "ip", a->ip));
	return 0;
}

static void
audit(struct req *r)
{
	const char *q = req_query(r, "limit");
	json_t *list = json_array();
	struct err e = { 0 };
	long limit = 50;

	if (q && str_to_long(q, 1, 1000, &limit, "limit", &e) < 0) {
		json_decref(list);
		reply_err(r, &e);
		return;
	}
	if (store_audit_list(r->hub->store, limit, audit_row, list, &e) < 0) {
		json_decref(list);
		reply_err(r, &e);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "entries", list));
}

/* ---- nodes ----------------------------------------------------------- */
static json_t *
res_json(const struct spawner_res *r)
{
	return json_pack("{s:f, s:I, s:I}", "cpus", r->cpus, "mem_bytes",
			 (json_int_t)r->mem_bytes, "gpus", (json_int_t)r->gpus);
}

static json_t *
node_json(const struct spawner_node *nd)
{
	struct spawner_res f = {
		nd->total.cpus - nd->used.cpus,
		nd->total.mem_bytes - nd->used.mem_bytes,
		nd->total.gpus - nd->used.gpus
	};
	json_t *labels = json_object(), *servers = json_array(), *v;

	for (char **l = nd->labels; l && *l; l++) {
		char *eq = strchr(*l, '='), key[256];

		if (!eq)
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(eq - *l), *l);
		json_object_set_new(labels, key, json_string(eq + 1));
	}
	for (size_t i = 0; i < nd->nservers; i++) {
		const struct spawner_node_server *s = &nd->servers[i];

		json_array_append_new(servers, json_pack("{s:s, s:s, s:s, s:s, "
		    "s:s, s:f, s:I, s:I}", "user", s->user, "server",
		    s->server, "service", s->service, "state", s->state,
		    "desired_state", s->desired, "cpus",
		    s->reserved.cpus, "mem_bytes",
		    (json_int_t)s->reserved.mem_bytes, "gpus",
		    (json_int_t)s->reserved.gpus));
	}
	v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:f, s:I, s:I}",
	    "id", nd->id, "hostname", nd->hostname, "role", nd->role,
	    "availability", nd->availability, "state", nd->state, "addr",
	    nd->addr, "labels", labels, "cpus", nd->total.cpus, "mem_bytes",
	    (json_int_t)nd->total.mem_bytes, "gpus",
	    (json_int_t)nd->total.gpus);
	json_object_set_new(v, "reserved", res_json(&nd->reserved));
	json_object_set_new(v, "free", res_json(&f));
	json_object_set_new(v, "servers", servers);
	return v;
}

static void
get_nodes(struct req *r)
{
	struct spawner_node *v;
	struct err e = { 0 };
	json_t *list;
	size_t n;

	if (spawner_nodes(r->hub->spawner, &v, &n, &e) < 0) {
		reply_err(r, &e);
		return;
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, node_json(&v[i]));
	spawner_nodes_free(v, n);
	reply_json(r, 200, json_pack("{s:o, s:s}", "nodes", list,
				     "gpu_resource",
				     spawner_gpu_kind(r->hub->spawner)));
}

/* ---- usage (hub/usage.c) ---------------------------------------------- */
/* One running server's figures; nulls without a recent sample. */
static json_t *
usage_row(const struct hub *h, const struct user *u, const struct server *s,
	  int64_t now)
{
	char ts[40];
	int64_t mem;
	double cpu;

	if (h->cfg.usage_every_s <= 0 ||
	    usage_get(s, now, h->cfg.usage_every_s, &cpu, &mem) < 0)
		return json_pack("{s:s, s:s, s:n, s:n, s:n}", "user", u->name,
				 "server", s->name, "cpu", "mem_bytes",
				 "sampled");
	time_iso8601(s->usage_at_ms, ts, sizeof(ts));
	return json_pack("{s:s, s:s, s:o, s:I, s:s}", "user", u->name,
			 "server", s->name, "cpu", cpu < 0 ? json_null() :
			 json_real(cpu), "mem_bytes", (json_int_t)mem,
			 "sampled", ts);
}

static void
get_usage(struct req *r)
{
	struct hub *h = r->hub;
	int64_t now = time_now_ms();
	json_t *list = json_array();

	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers; i++) {
		const struct user *u = h->state.user_list[i];

		for (size_t k = 0; u && k < user_nservers(u); k++) {
			const struct server *s = user_server_at(u, k);

			if (s && s->state == SRV_RUNNING)
				json_array_append_new(list,
						      usage_row(h, u, s, now));
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	reply_json(r, 200, json_pack("{s:s, s:o}", "source",
				     h->cfg.usage_every_s <= 0 ? "off" :
				     h->cfg.usage_agents ? "agents" : "local",
				     "servers", list));
}

/* sub: the path after /hub/api/swarmhub */
void
api_admin_handle(struct req *r, const struct who *w, const char *sub)
{
	enum method m = r->method;

	r->handler = "api_admin";
	if (strcmp(sub, "/audit") == 0 && m == M_GET)
		audit(r);
	else if (strcmp(sub, "/doctor") == 0 && m == M_GET)
		doctor(r);
	else if (strcmp(sub, "/ldap-check") == 0 && m == M_POST)
		ldap_check(r);
	else if (need_spawner(r) < 0)
		return;
	else if (strcmp(sub, "/orphans") == 0 && m == M_GET)
		get_orphans(r);
	else if (strcmp(sub, "/nodes") == 0 && m == M_GET)
		get_nodes(r);
	else if (strcmp(sub, "/usage") == 0 && m == M_GET)
		get_usage(r);
	else if (strncmp(sub, "/orphans/services/", 18) == 0 && m == M_DELETE)
		delete_orphan_service(r, sub + 18);
	else if (strncmp(sub, "/chown/", 7) == 0 && m == M_POST)
		chown_home(r, sub + 7, w->name);
	else if (strcmp(sub, "/chown-shared") == 0 && m == M_POST)
		chown_shared(r, w->name);
	else if (strcmp(sub, "/images/pull") == 0 && m == M_POST)
		api_images_pull(r, w->name);
	else if (strncmp(sub, "/homes/", 7) == 0 && m == M_POST)
		home_action(r, sub + 7, w->name);
	else
		req_json_error(r, 404, "no such admin endpoint: %.100s", sub);
}
