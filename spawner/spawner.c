/*
 * spawner.c - spawner.h: start, stop, locate and list user servers.
 *
 * A start: home (NFS or local) -> POST /services/create (spec.c) -> poll
 * the service's task until it runs (START_TIMEOUT), reporting each state in
 * words -> poll <base_url>api/status with the server token until it answers
 * 200 with JSON (HTTP_TIMEOUT), or for a web app its ready_path until it
 * answers 2xx or 3xx. Any failure removes the service, so nothing
 * is left half-started. Profiles are swapped whole under a rwlock on reload.
 * Ownership: struct spawner owns copies of its settings, the Docker client,
 * the home backend and the profiles.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

struct spawner {
	struct spawner_cfg cfg;
	char *strings[12];		/* owned copies behind cfg */
	struct docker *d;
	pthread_rwlock_t plock;
	unsigned long profiles_gen;	/* + 1 at each reload (under plock) */
	struct profiles *profiles;
	const struct home_ops *home_ops;
	void *home;
	char *nfs_host;			/* volume mode */
	char *nfs_path;
	struct registry_auth *ra;	/* REGISTRY_AUTH, parsed (or NULL) */
};

static const char *
keep(struct spawner *sp, int i, const char *s, const char *def)
{
	sp->strings[i] = xstrdup(s && *s ? s : def);
	return sp->strings[i];
}

static void
copy_cfg(struct spawner *sp, const struct spawner_cfg *c)
{
	sp->cfg = *c;
	sp->cfg.docker_host = keep(sp, 0, c->docker_host,
				   "unix:///var/run/docker.sock");
	sp->cfg.docker_cert_path = c->docker_cert_path && *c->docker_cert_path
	    ? keep(sp, 1, c->docker_cert_path, "") : NULL;
	sp->cfg.network = keep(sp, 2, c->network, "");
	sp->cfg.hub_id = keep(sp, 3, c->hub_id, "swarmhub");
	sp->cfg.name_template = keep(sp, 4, c->name_template, "jupyter-{user}");
	sp->cfg.profiles_path = keep(sp, 5, c->profiles_path, "");
	sp->cfg.home = keep(sp, 6, c->home, "");
	sp->cfg.home_mount = keep(sp, 7, c->home_mount, "bind");
	sp->cfg.home_bind_root = keep(sp, 8, c->home_bind_root,
	    strncmp(sp->cfg.home, "nfs://", 6) ? sp->cfg.home : "");
	sp->cfg.home_target = keep(sp, 9, c->home_target, "/home/jovyan/work");
	sp->cfg.shared_dir = c->shared_dir && *c->shared_dir
	    ? keep(sp, 10, c->shared_dir, "") : NULL;
	sp->cfg.gpu_resource = keep(sp, 11, c->gpu_resource, "gpu");
}

/* ---- small JSON helpers over Docker answers --------------------------- */
static json_t *
get_json(struct spawner *sp, const char *path, struct err *e)
{
	struct docker_resp r = { 0 };
	json_t *j = NULL;

	if (docker_get(sp->d, path, &r, e) == 0) {
		j = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
		if (j == NULL)
			err_set(e, ERR_UPSTREAM, "Docker answered %s with "
				"something that is not JSON", path);
	}
	docker_resp_release(&r);
	return j;
}

const char *
jstr(json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	o = json_object_get(o, path);
	return json_is_string(o) ? json_string_value(o) : NULL;
}

static int
check_swarm(struct spawner *sp, struct err *e)
{
	json_t *info = get_json(sp, "/info", e);
	json_t *sw;
	int ok;

	if (info == NULL)
		return -1;
	sw = json_object_get(info, "Swarm");
	ok = json_is_true(json_object_get(sw, "ControlAvailable"));
	json_decref(info);
	if (!ok)
		return err_set(e, ERR_INVALID, "the Docker engine at %s is not "
		    "a swarm manager: run 'docker swarm init' there, or point "
		    "SWARMHUB_DOCKER_HOST at a manager", sp->cfg.docker_host);
	return 0;
}

static int
check_network(struct spawner *sp, struct err *e)
{
	char *esc = docker_escape(sp->d, sp->cfg.network);
	char *path = xasprintf("/networks/%s", esc);
	json_t *n = get_json(sp, path, e);
	int attachable;

	free(esc);
	free(path);
	if (n == NULL && e->code == ERR_NOTFOUND)
		return err_set(e, ERR_INVALID, "network '%s' does not exist: "
		    "create it with 'docker network create -d overlay "
		    "--attachable %s'", sp->cfg.network, sp->cfg.network);
	if (n == NULL)
		return -1;
	attachable = json_is_true(json_object_get(n, "Attachable"));
	json_decref(n);
	if (!attachable)
		return err_set(e, ERR_INVALID, "network '%s' is not attachable: "
		    "recreate it with --attachable (or attachable: true in the "
		    "stack file)", sp->cfg.network);
	return 0;
}

static int
open_home(struct spawner *sp, struct err *e)
{
	const char *h = sp->cfg.home;

	if (*h == '\0')
		return 0;
	if (strncmp(h, "nfs://", 6) == 0) {
		const char *host = h + 6, *slash = strchr(host, '/');
		const char *q;

		if (slash == NULL)
			return err_set(e, ERR_INVALID, "SWARMHUB_HOME: '%s' has "
			    "no export path (nfs://server/export)", h);
		sp->nfs_host = xstrndup(host, (size_t)(slash - host));
		q = strchr(slash, '?');
		sp->nfs_path = q ? xstrndup(slash, (size_t)(q - slash))
				 : xstrdup(slash);
		return home_nfs_new(h, &sp->home_ops, &sp->home, e);
	}
	if (h[0] != '/')
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME: '%s' is neither "
		    "nfs://server/export nor an absolute directory", h);
	return home_local_new(h, &sp->home_ops, &sp->home, e);
}

/* Settings that could never start a server are refused here, at hub start,
 * with the fix, not at a user's first Start. c: after copy_cfg. */
static int
check_home_cfg(const struct spawner_cfg *c, struct err *e)
{
	int nfs = strncmp(c->home, "nfs://", 6) == 0;

	if (strcmp(c->home_mount, "bind") && strcmp(c->home_mount, "volume"))
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME_MOUNT: '%s' is "
		    "not bind or volume", c->home_mount);
	if (strcmp(c->home_mount, "volume") == 0 && !nfs)
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME_MOUNT=volume "
		    "mounts NFS volumes and needs SWARMHUB_HOME=nfs://server/"
		    "export (got '%s'): set it, or SWARMHUB_HOME_MOUNT=bind",
		    c->home);
	if (strcmp(c->home_mount, "bind") == 0 && nfs &&
	    *c->home_bind_root == '\0')
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME=nfs://... with "
		    "SWARMHUB_HOME_MOUNT=bind needs SWARMHUB_HOME_BIND_ROOT, "
		    "where every node mounts the export (or use "
		    "SWARMHUB_HOME_MOUNT=volume)");
	if (*c->home_bind_root && c->home_bind_root[0] != '/')
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME_BIND_ROOT: '%s' "
		    "is not an absolute path", c->home_bind_root);
	if (c->home_target[0] != '/')
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME_TARGET: '%s' is "
		    "not an absolute path", c->home_target);
	if (c->shared_dir && *c->home == '\0' && *c->home_bind_root == '\0')
		return err_set(e, ERR_INVALID, "SWARMHUB_SHARED_DIR needs "
		    "homes: set SWARMHUB_HOME (or SWARMHUB_HOME_BIND_ROOT), or "
		    "leave SWARMHUB_SHARED_DIR empty");
	if (c->start_timeout_s < 1 || c->http_timeout_s < 1)
		return err_set(e, ERR_INVALID, "SWARMHUB_%s_TIMEOUT must be at "
		    "least 1 second", c->start_timeout_s < 1 ? "START" :
		    "HTTP");
	return 0;
}

/* An image of the profiles missing on this node is only a warning at start:
 * on a larger swarm other nodes or a registry may have it. */
static void
warn_missing_images(struct spawner *sp)
{
	struct err ie = { 0 };
	char *esc, *path;

	for (size_t i = 0; i < sp->profiles->nimages; i++) {
		esc = docker_escape(sp->d, sp->profiles->images[i].image);
		path = xasprintf("/images/%s/json", esc);
		if (docker_get(sp->d, path, NULL, &ie) < 0 &&
		    ie.code == ERR_NOTFOUND)
			log_event(LOG_WARN, "spawner.image_missing", "image=%s "
			    "key=%s hint=%s", sp->profiles->images[i].image,
			    sp->profiles->images[i].key, "not on this node: "
			    "servers placed here cannot start until it is "
			    "built, loaded or pullable");
		free(esc);
		free(path);
	}
}

int
spawner_new(const struct spawner_cfg *cfg, struct spawner **out,
	    struct err *e)
{
	struct spawner *sp = xcalloc(1, sizeof(*sp));

	*out = NULL;
	copy_cfg(sp, cfg);
	pthread_rwlock_init(&sp->plock, NULL);
	sp->cfg.registry_auth = NULL;	/* a secret: kept parsed only */
	if (check_home_cfg(&sp->cfg, e) < 0 ||
	    registry_auth_parse(cfg->registry_auth, &sp->ra, e) < 0)
		goto fail;
	if (sp->ra)
		log_event(LOG_INFO, "spawner.registry_auth", "registries=%zu",
			  registry_auth_count(sp->ra));
	if (docker_new(sp->cfg.docker_host, sp->cfg.docker_cert_path, &sp->d,
		       e) < 0 || check_swarm(sp, e) < 0 ||
	    check_network(sp, e) < 0 ||
	    profiles_load(sp->cfg.profiles_path, &sp->profiles, e) < 0 ||
	    open_home(sp, e) < 0)
		goto fail;
	warn_missing_images(sp);
	*out = sp;
	return 0;
fail:
	spawner_free(sp);
	return -1;
}

void
spawner_free(struct spawner *sp)
{
	if (sp == NULL)
		return;
	if (sp->home_ops)
		sp->home_ops->free(sp->home);
	profiles_free(sp->profiles);
	registry_auth_free(sp->ra);
	docker_free(sp->d);
	pthread_rwlock_destroy(&sp->plock);
	for (size_t i = 0; i < sizeof(sp->strings) / sizeof(sp->strings[0]);
	     i++)
		free(sp->strings[i]);
	free(sp->nfs_host);
	free(sp->nfs_path);
	free(sp);
}

int
spawner_reload_profiles(struct spawner *sp, struct err *e)
{
	struct profiles *p, *old;

	if (profiles_load(sp->cfg.profiles_path, &p, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&sp->plock);
	old = sp->profiles;
	sp->profiles = p;
	__atomic_add_fetch(&sp->profiles_gen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&sp->plock);
	profiles_free(old);
	return 0;
}

int
spawner_ping(struct spawner *sp, struct err *e)
{
	/* /_ping is cheap; /info (check_swarm) is slow under load */
	return docker_get(sp->d, "/_ping", NULL, e);
}

/* ---- profiles under the lock ----------------------------------------- */
int
spawner_options(struct spawner *sp, const char *const *groups, size_t n,
		const char *json, struct spawn_opts *out, struct err *e)
{
	int rc;

	pthread_rwlock_rdlock(&sp->plock);
	rc = profiles_options(sp->profiles, groups, n, json, out, e);
	pthread_rwlock_unlock(&sp->plock);
	return rc;
}

int
spawner_quota_check(struct spawner *sp, const struct spawn_opts *o,
		    const struct spawn_opts *in_use, size_t n, struct err *e)
{
	int rc;

	pthread_rwlock_rdlock(&sp->plock);
	rc = profiles_quota_check(sp->profiles, o, in_use, n, e);
	pthread_rwlock_unlock(&sp->plock);
	return rc;
}

char *
spawner_profiles_json(struct spawner *sp, const char *const *groups,
		      size_t n)
{
	char *s;

	pthread_rwlock_rdlock(&sp->plock);
	s = profiles_json(sp->profiles, groups, n);
	pthread_rwlock_unlock(&sp->plock);
	return s;
}

/* Docker names are at most 63 characters: a longer one keeps its first 54
 * and gets "-" and 8 hex digits of a hash of the whole (takes name over). */
char *
spawner_service_name(const struct spawner *sp, const char *user,
		     const char *server)
{
	return spec_service_name(sp->cfg.name_template, user, server);
}

/* ---- tasks ----------------------------------------------------------- */
struct task {
	char state[32];
	char desired[32];
	char err[512];
	char message[256];
	char container[80];
	char node[80];		/* NodeID: "" while unassigned */
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int64_t
mono_ms(void)
{
	return time_mono_ms();
}

static void
copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* The newest task of the service; ERR_NOTFOUND when it has none. */
static int
newest_task(struct spawner *sp, const char *service, struct task *t,
	    struct err *e)
{
	char *f = xasprintf("{\"service\":[\"%s\"]}", service);
	char *esc = docker_escape(sp->d, f);
	char *path = xasprintf("/tasks?filters=%s", esc);
	json_t *a = get_json(sp, path, e), *it, *best = NULL;
	const char *best_at = "";
	size_t i;

	free(f);
	free(esc);
	free(path);
	if (a == NULL)
		return -1;
	json_array_foreach(a, i, it) {
		const char *at = jstr(it, "CreatedAt");

		if (at && strcmp(at, best_at) > 0) {
			best = it;
			best_at = at;
		}
	}
	if (best) {
		copy_field(t->state, sizeof(t->state), jstr(best, "Status.State"));
		copy_field(t->desired, sizeof(t->desired),
			   jstr(best, "DesiredState"));
		copy_field(t->err, sizeof(t->err), jstr(best, "Status.Err"));
		copy_field(t->message, sizeof(t->message),
			   jstr(best, "Status.Message"));
		copy_field(t->container, sizeof(t->container),
			   jstr(best, "Status.ContainerStatus.ContainerID"));
		copy_field(t->node, sizeof(t->node), jstr(best, "NodeID"));
	}
	json_decref(a);
	if (best == NULL)
		return err_set(e, ERR_NOTFOUND, "the service has no task yet");
	return 0;
}

static int
task_failed(const char *state)
{
	static const char *const bad[] = { "rejected", "failed", "shutdown",
		"complete", "orphaned", "remove", NULL };

	for (int i = 0; bad[i]; i++)
		if (strcmp(state, bad[i]) == 0)
			return 1;
	return 0;
}

static const char *
state_words(const char *state, int *progress)
{
	static const struct { const char *s; int p; const char *w; } map[] = {
		{ "new", 30, "Task created" },
		{ "pending", 30, "Waiting for a node with room for this server" },
		{ "assigned", 40, "Assigned to a node" },
		{ "accepted", 45, "The node accepted the server" },
		{ "preparing", 50, "Preparing the image on the node" },
		{ "ready", 55, "Container ready" },
		{ "starting", 60, "Starting the container" },
		{ "running", 70, "Container running; waiting for Jupyter to "
				 "answer" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].s, state) == 0) {
			*progress = map[i].p;
			return map[i].w;
		}
	*progress = 50;
	return state;
}

static void
report(spawn_progress_fn fn, void *ctx, int progress, const char *msg)
{
	if (fn)
		fn(ctx, progress, msg);
}

static int
cancelled(const struct spawn_req *req)
{
	return req->cancel && *req->cancel;
}

/* The image of a start as the nodes get it (pull.c): the profile's
 * reference, what the service runs, the credentials header. */
struct pulling {
	char image[256];
	enum pull_policy pull;
	char *ref;
	char *auth;		/* X-Registry-Auth value or NULL: a secret */
	char why[200];		/* the registry could not be asked: why */
};

static int
pulling_init(struct spawner *sp, const struct spawn_req *req,
	     struct pulling *pl, struct err *e)
{
	const struct image_def *img;

	pthread_rwlock_rdlock(&sp->plock);
	img = profiles_image(sp->profiles, req->opts->image);
	if (img) {
		snprintf(pl->image, sizeof(pl->image), "%s", img->image);
		pl->pull = img->pull;
	}
	pthread_rwlock_unlock(&sp->plock);
	if (img == NULL)
		return err_set(e, ERR_INVALID, "image '%s' is no longer "
			       "configured", req->opts->image);
	pl->ref = pull_ref(sp->d, sp->ra, pl->image, pl->pull, pl->why,
			   sizeof(pl->why), e);
	if (pl->ref == NULL)
		return -1;
	if (*pl->why)
		log_event(LOG_WARN, "spawn.registry_unasked", "image=%s err=%s",
			  pl->image, pl->why);
	if (pl->pull != PULL_NEVER)
		pl->auth = registry_header(sp->ra, pl->image);
	return 0;
}

static void
pulling_release(struct pulling *pl)
{
	free(pl->ref);
	if (pl->auth)
		memset(pl->auth, 0, strlen(pl->auth));
	free(pl->auth);
}

/* A task error as a sentence; a node without the image says why, as far
 * as the registry tells. */
static char *
pull_failure(struct spawner *sp, const struct pulling *pl,
	     const struct task *t, const char *host,
	     const struct spawn_opts *o)
{
	if (strstr(t->err, "No such image") == NULL)
		return spec_task_message(t->state, t->err, t->message, o);
	if (pl->pull == PULL_NEVER)
		return xasprintf("image '%s' is not on node %s and its \"pull\" "
				 "is \"never\": load it there", pl->image,
				 host);
	return pull_explain(sp->d, sp->ra, pl->image, host);
}

/* Waits for the task to run; reports each new state or error. */
static int
wait_running(struct spawner *sp, const char *service,
	     const struct spawn_req *req, const struct pulling *pl,
	     spawn_progress_fn fn, void *ctx, struct task *t, struct err *e)
{
	int64_t deadline = mono_ms() + sp->cfg.start_timeout_s * 1000;
	char last[600] = "", now[600], node[80] = "", host[128] = "";

	for (;;) {
		struct err te = { 0 };
		int p;

		if (cancelled(req))
			return err_set(e, ERR_UPSTREAM, "start cancelled");
		if (newest_task(sp, service, t, &te) == 0) {
			const char *w = state_words(t->state, &p);
			char *why;

			if (*t->node && strcmp(node, t->node) != 0) {
				snprintf(node, sizeof(node), "%s", t->node);
				pull_node_name(sp->d, node, host, sizeof(host));
			}
			why = *t->err ? pull_failure(sp, pl, t, host,
						     req->opts) : NULL;
			if (strcmp(t->state, "preparing") == 0 && !why &&
			    pl->pull != PULL_NEVER)
				snprintf(now, sizeof(now), "Pulling %s on node %s",
					 pl->image, host);
			else
				snprintf(now, sizeof(now), "%s%s%s", w,
					 why ? ": " : "", why ? why : "");
			if (task_failed(t->state)) {
				err_set(e, ERR_UPSTREAM, "%s", why ? why :
					"the server's task stopped");
				free(why);
				return -1;
			}
			free(why);
			if (strcmp(now, last) != 0)
				report(fn, ctx, p, now);
			snprintf(last, sizeof(last), "%s", now);
			if (strcmp(t->state, "running") == 0)
				return 0;
		} else if (te.code != ERR_NOTFOUND) {
			*e = te;
			return -1;
		}
		if (mono_ms() >= deadline)
			return err_set(e, ERR_TIMEOUT, "the server was not "
			    "running after %ld s (%s)", sp->cfg.start_timeout_s,
			    *last ? last : "no task was created");
		/* poll fast at first: every ms of delay is the user's */
		sleep_ms(mono_ms() - deadline + sp->cfg.start_timeout_s * 1000 <
			 5000 ? 50 : 250);
	}
}

/* ---- reaching a running server --------------------------------------- */
static int
gwbridge_ip(struct spawner *sp, const char *container, char *ip, size_t size,
	    struct err *e)
{
	json_t *n = get_json(sp, "/networks/docker_gwbridge", e);
	json_t *c;
	const char *addr;

	if (n == NULL)
		return -1;
	c = json_object_get(json_object_get(n, "Containers"), container);
	addr = jstr(c, "IPv4Address");
	if (addr)
		snprintf(ip, size, "%.*s", (int)strcspn(addr, "/"), addr);
	json_decref(n);
	if (addr == NULL)
		return err_set(e, ERR_NOTFOUND, "the server's container has no "
		    "docker_gwbridge address (is the hub on a swarm node? "
		    "use SWARMHUB_CONNECT=dns inside the stack)");
	return 0;
}

static int
image_port(struct spawner *sp, const char *image_key)
{
	const struct image_def *img;
	int port = 8888;

	pthread_rwlock_rdlock(&sp->plock);
	img = profiles_image(sp->profiles, image_key);
	if (img && img->port > 0)
		port = img->port;
	pthread_rwlock_unlock(&sp->plock);
	return port;
}

unsigned long
spawner_profiles_generation(struct spawner *sp)
{
	return __atomic_load_n(&sp->profiles_gen, __ATOMIC_ACQUIRE);
}

int
spawner_image_info(struct spawner *sp, const char *image_key,
		   struct spawner_image *out, struct err *e)
{
	const struct image_def *img;

	pthread_rwlock_rdlock(&sp->plock);
	img = profiles_image(sp->profiles, image_key);
	if (img)
		*out = img->info;
	pthread_rwlock_unlock(&sp->plock);
	if (!img)
		return err_set(e, ERR_NOTFOUND, "no image '%s' in the profiles",
			       image_key ? image_key : "");
	return 0;
}

/* docker_gwbridge is per node: with CONNECT=gwbridge only servers on the
 * node of the hub's Docker host are reachable. 1 (and *e) when the task
 * runs on another node, 0 otherwise (also when Docker cannot tell). */
static int
on_other_node(struct spawner *sp, const struct task *t, struct err *e)
{
	struct err ie = { 0 };
	json_t *info;
	const char *self;
	int other;

	if (*t->node == '\0' || (info = get_json(sp, "/info", &ie)) == NULL)
		return 0;
	self = jstr(info, "Swarm.NodeID");
	other = self && *self && strcmp(self, t->node) != 0;
	json_decref(info);
	if (other)
		err_set(e, ERR_UPSTREAM, "the server runs on another node (%s) "
			"than the hub's Docker host, and SWARMHUB_CONNECT="
			"gwbridge reaches only servers on that one: on a "
			"multi-node swarm run the hub on SWARMHUB_NETWORK with "
			"SWARMHUB_CONNECT=dns (as the stack does)", t->node);
	return other;
}

/* Where the server answers. With gwbridge the address appears when the
 * container joins the bridge; a container that exits at once never gets
 * one, and Docker may still say "running" for a moment: so look again
 * for a few seconds, and report the task's own error when it stopped. */
static int
address(struct spawner *sp, const char *service, const struct task *t,
	int port, struct server_addr *out, struct err *e)
{
	int64_t until = mono_ms() + 5000;
	struct task now = *t;

	snprintf(out->service_name, sizeof(out->service_name), "%s", service);
	out->port = port;
	if (!sp->cfg.connect_gwbridge) {
		snprintf(out->host, sizeof(out->host), "%s", service);
		return 0;
	}
	if (on_other_node(sp, t, e))
		return -1;
	for (;;) {
		struct err te = { 0 };

		if (gwbridge_ip(sp, now.container, out->host, sizeof(out->host),
				e) == 0)
			return 0;
		if (newest_task(sp, service, &now, &te) == 0 &&
		    strcmp(now.state, "running") != 0) {
			char *why = spec_task_message(now.state, now.err,
						      now.message, NULL);

			err_set(e, ERR_UPSTREAM, "%s", why);
			free(why);
			return -1;
		}
		if (mono_ms() >= until)
			return -1;
		sleep_ms(100);
	}
}

/* Once a second while waiting for HTTP: did the server die meanwhile? */
static int
server_died(struct spawner *sp, const char *service,
	    const struct spawn_req *req, int64_t *checked, struct err *e)
{
	struct task t;
	char *why;

	*checked = mono_ms();
	if (newest_task(sp, service, &t, e) < 0 ||
	    strcmp(t.state, "running") == 0)
		return 0;
	why = spec_task_message(t.state, t.err, t.message, req->opts);
	err_set(e, ERR_UPSTREAM, "the server stopped while starting: %s", why);
	free(why);
	return 1;
}

/* How readiness is asked: Jupyter's <base_url>api/status with the token,
 * or a web app's ready_path, below the prefix it sees, with its headers. */
struct ready {
	char *url;
	int web;
	int any;		/* singleuser: any HTTP answer will do */
	char **headers;		/* web: "Name: value", NULL-terminated */
};

static void
ready_init(struct spawner *sp, const struct spawn_req *req,
	   const struct server_addr *a, struct ready *r)
{
	struct spawner_image im;
	struct err ignore = { 0 };
	size_t n = strlen(req->base_url), k = 0;
	char v[512];

	memset(r, 0, sizeof(*r));
	if (spawner_image_info(sp, req->opts->image, &im, &ignore) == 0 &&
	    im.kind == SPAWNER_KIND_SINGLEUSER) {
		/* jupyterhub-singleuser is ready when its prefix answers HTTP
		 * at all, as JupyterHub waits for it (its API wants a token
		 * of the hub's) */
		r->any = 1;
		r->url = xasprintf("http://%s:%d%s", a->host, a->port,
				   req->base_url);
		return;
	}
	if (im.kind != SPAWNER_KIND_WEB) {
		r->url = xasprintf("http://%s:%d%sapi/status", a->host,
				   a->port, req->base_url);
		return;
	}
	r->web = 1;
	/* "/user/alice/" + "/ready" -> "/user/alice/ready"; stripped: "" */
	if (im.strip_prefix || n == 0)
		n = 1;
	r->url = xasprintf("http://%s:%d%.*s%s", a->host, a->port,
			   (int)(n - 1), req->base_url, im.ready_path);
	r->headers = xcalloc(im.nheaders + 1, sizeof(*r->headers));
	for (size_t i = 0; i < im.nheaders; i++)
		if (spawner_expand(im.header_value[i], req->base_url,
				   req->user, req->token, v, sizeof(v)) == 0)
			r->headers[k++] = xasprintf("%s: %s",
						    im.header_name[i], v);
}

static void
ready_release(struct ready *r)
{
	for (size_t i = 0; r->headers && r->headers[i]; i++)
		free(r->headers[i]);
	free(r->headers);
	free(r->url);
}

static int
ready_probe(const struct ready *r, const char *token, struct err *e)
{
	if (r->any)
		return spawner_probe_http(r->url, 1000, e);
	if (r->web)
		return probe_web(r->url, r->headers, 1000, e);
	return spawner_probe(r->url, token, 1000, e);
}

static int
wait_http(struct spawner *sp, const char *service,
	  const struct spawn_req *req, const struct server_addr *a,
	  spawn_progress_fn fn, void *ctx, struct err *e)
{
	int64_t start = mono_ms(), checked = start;
	int64_t deadline = start + sp->cfg.http_timeout_s * 1000;
	struct ready r;
	struct err pe = { 0 };
	int rc = -1, tries = 0;

	ready_init(sp, req, a, &r);
	for (;;) {
		if (cancelled(req)) {
			err_set(e, ERR_UPSTREAM, "start cancelled");
			break;
		}
		if (ready_probe(&r, req->token, &pe) == 0) {
			rc = 0;
			break;
		}
		tries++;
		if (mono_ms() - checked >= 1000 &&
		    server_died(sp, service, req, &checked, e))
			break;
		if (tries == 20)
			report(fn, ctx, 80, r.web ? "The app is starting" :
			       "Jupyter is starting");
		if (mono_ms() >= deadline) {
			err_set(e, ERR_TIMEOUT, "the server did not answer "
				"within %ld s (last answer: %s)",
				sp->cfg.http_timeout_s, pe.msg);
			break;
		}
		/* 25 ms for the first 10 s (a refused connection costs
		 * little), then 250 ms */
		sleep_ms(mono_ms() - start < 10000 ? 25 : 250);
	}
	ready_release(&r);
	return rc;
}

/* ---- start, stop, locate, list --------------------------------------- */
static char *
home_source(struct spawner *sp, const char *user)
{
	if (strcmp(sp->cfg.home_mount, "volume") == 0 && sp->nfs_path)
		return xasprintf(":%s/%s", sp->nfs_path, user);
	if (*sp->cfg.home_bind_root == '\0')
		return NULL;
	return xasprintf("%s/%s", sp->cfg.home_bind_root, user);
}

int
spawner_has_home(const struct spawner *sp)
{
	return strcmp(sp->cfg.home_mount, "volume") == 0 ||
	       *sp->cfg.home_bind_root != '\0';
}

static char *
build_spec(struct spawner *sp, const struct spawn_req *req,
	   const char *service, const char *image_ref, struct err *e)
{
	struct spec_input in = { 0 };
	char *src = home_source(sp, req->user);
	char *nfs = sp->nfs_host ? xasprintf("addr=%s,nfsvers=3,nolock,soft",
					     sp->nfs_host) : NULL;
	char *spec = NULL;

	pthread_rwlock_rdlock(&sp->plock);
	in.cfg = &sp->cfg;
	in.req = req;
	in.image = profiles_image(sp->profiles, req->opts->image);
	in.profile = profiles_get(sp->profiles, req->opts->profile);
	in.cpu_reservation_ratio = sp->profiles->cpu_reservation_ratio;
	in.service_name = service;
	in.image_ref = image_ref;
	in.home_source = src;
	in.nfs_addr = nfs;
	if (in.image == NULL || in.profile == NULL)
		err_set(e, ERR_INVALID, "profile '%s' or image '%s' is no "
			"longer configured", req->opts->profile,
			req->opts->image);
	else if (*req->opts->pool &&
		 profiles_pool(in.profile, req->opts->pool) == NULL)
		err_set(e, ERR_INVALID, "pool '%s' of profile '%s' is no "
			"longer configured", req->opts->pool,
			req->opts->profile);
	else
		spec = spec_build(&in, e);
	pthread_rwlock_unlock(&sp->plock);
	free(src);
	free(nfs);
	return spec;
}

static int
remove_service(struct spawner *sp, const char *service, struct err *e)
{
	char *esc = docker_escape(sp->d, service);
	char *path = xasprintf("/services/%s", esc);
	int rc = docker_delete(sp->d, path, NULL, e);

	free(esc);
	free(path);
	if (rc < 0 && e->code == ERR_NOTFOUND)
		rc = 0;
	return rc;
}

/* The swarmhub.hub label of an existing service ("" none); -1 gone. */
static int
service_hub(struct spawner *sp, const char *service, char *hub, size_t size,
	    struct err *e)
{
	char *esc = docker_escape(sp->d, service);
	char *path = xasprintf("/services/%s", esc);
	json_t *s = get_json(sp, path, e), *labels;

	free(esc);
	free(path);
	if (s == NULL)
		return -1;
	labels = json_object_get(json_object_get(s, "Spec"), "Labels");
	copy_field(hub, size, json_string_value(json_object_get(labels,
	    "swarmhub.hub")));
	json_decref(s);
	return 0;
}

static int
create_service(struct spawner *sp, const char *service, const char *spec,
	       const char *auth, struct err *e)
{
	struct err ce = { 0 };
	char owner[128];

	if (docker_post_auth(sp->d, "/services/create", spec, auth, NULL,
			     &ce) == 0)
		return 0;
	if (ce.code == ERR_UNAVAILABLE) {
		*e = ce;
		return -1;
	}
	if (ce.code != ERR_CONFLICT) {
		err_set(e, ce.code, "Docker refused the server: %s", ce.msg);
		return -1;
	}
	if (service_hub(sp, service, owner, sizeof(owner), &ce) == 0 &&
	    strcmp(owner, sp->cfg.hub_id) != 0)
		return err_set(e, ERR_CONFLICT, "a service named '%s' already "
		    "exists and is not this hub's (swarmhub.hub='%s'): give "
		    "each hub on a swarm its own SWARMHUB_SERVICE_NAME_TEMPLATE",
		    service, owner);
	/* a stale service of a server the hub knows is stopped */
	log_event(LOG_WARN, "spawn.stale_service", "service=%s", service);
	if (remove_service(sp, service, e) < 0)
		return -1;
	for (int i = 0; i < 40; i++) {
		if (docker_post_auth(sp->d, "/services/create", spec, auth,
				     NULL, &ce) == 0)
			return 0;
		if (ce.code != ERR_CONFLICT)
			break;
		sleep_ms(250);
	}
	return err_set(e, ce.code, "Docker refused the server: %s", ce.msg);
}

static int
ensure_home(struct spawner *sp, const struct spawn_req *req,
	    spawn_progress_fn fn, void *ctx, struct err *e)
{
	long uid = req->own_ids ? req->uid : sp->cfg.home_uid;
	long gid = req->own_ids ? req->gid : sp->cfg.home_gid;

	if (sp->home_ops == NULL)
		return 0;
	report(fn, ctx, 10, "Preparing your home directory");
	return sp->home_ops->ensure(sp->home, req->user, uid, gid,
				    sp->cfg.home_mode, sp->cfg.shared_dir,
				    sp->cfg.home_gid, e);
}

/* ---- nodes ----------------------------------------------------------- */
static void
nodes_ctx_of(const struct spawner *sp, struct nodes_ctx *c)
{
	c->hub_id = sp->cfg.hub_id;
	c->name_template = sp->cfg.name_template;
	c->gpu_kind = sp->cfg.gpu_resource;
}

int
spawner_nodes(struct spawner *sp, struct spawner_node **out, size_t *n,
	      struct err *e)
{
	struct nodes_ctx c;

	nodes_ctx_of(sp, &c);
	return nodes_collect(sp->d, &c, out, n, e);
}

const char *
spawner_gpu_kind(const struct spawner *sp)
{
	return sp->cfg.gpu_resource;
}

/* The profile's and the pool's constraints, and node.role==worker with
 * SERVERS_ON_MANAGERS=false, as the service spec has them (heap vector);
 * and what the service reserves. */
static char **
placement(struct spawner *sp, const struct spawn_opts *o, size_t *n,
	  struct spawner_res *ask)
{
	const struct profile_def *pd;
	const struct pool_def *pl;
	char **v;

	pthread_rwlock_rdlock(&sp->plock);
	pd = profiles_get(sp->profiles, o->profile);
	pl = profiles_pool(pd, o->pool);
	v = xcalloc((pd ? pd->nconstraints : 0) +
		    (pl ? pl->nconstraints : 0) + 2, sizeof(char *));
	*n = 0;
	for (size_t i = 0; pd && i < pd->nconstraints; i++)
		v[(*n)++] = xstrdup(pd->constraints[i]);
	for (size_t i = 0; pl && i < pl->nconstraints; i++)
		v[(*n)++] = xstrdup(pl->constraints[i]);
	if (sp->cfg.workers_only)
		v[(*n)++] = xstrdup("node.role==worker");
	ask->cpus = o->cpu * sp->profiles->cpu_reservation_ratio;
	pthread_rwlock_unlock(&sp->plock);
	ask->mem_bytes = (int64_t)(o->mem_gb * SPAWNER_GIB + 0.5);
	ask->gpus = o->gpus;
	return v;
}

/*
 * A server that asks for GPUs and that no node can take now fails at once
 * with the reason, instead of waiting START_TIMEOUT in "pending". Checked
 * whole (CPU, memory and GPUs on one node matching the constraints). A
 * start without GPUs waits for room as before: nodes get labels and free
 * up, and Swarm's own pending message says why meanwhile. When the nodes
 * cannot be listed the start goes on and Swarm decides.
 */
static int
fail_fast(struct spawner *sp, const struct spawn_opts *o, struct err *e)
{
	struct spawner_node *v;
	struct spawner_res ask;
	struct err le = { 0 };
	char **cons;
	size_t n, ncons;
	int rc = 0;

	if (o->gpus <= 0)
		return 0;
	if (spawner_nodes(sp, &v, &n, &le) < 0) {
		log_event(LOG_WARN, "spawn.nodes_unknown", "err=%s", le.msg);
		return 0;
	}
	cons = placement(sp, o, &ncons, &ask);
	rc = nodes_fit(v, n, (const char *const *)cons, ncons, &ask,
		       sp->cfg.gpu_resource, e);
	strv_free(cons);
	spawner_nodes_free(v, n);
	return rc;
}

int
spawner_start(struct spawner *sp, const struct spawn_req *req,
	      spawn_progress_fn fn, void *ctx, struct server_addr *out,
	      struct err *e)
{
	char *service = spawner_service_name(sp, req->user, req->server);
	char *spec = NULL;
	struct task t = { 0 };
	struct err ignore = { 0 };
	struct pulling pl = { 0 };
	int created = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	if (fail_fast(sp, req->opts, e) < 0 ||
	    ensure_home(sp, req, fn, ctx, e) < 0)
		goto out;
	if (pulling_init(sp, req, &pl, e) < 0)
		goto out;
	spec = build_spec(sp, req, service, pl.ref, e);
	if (spec == NULL || create_service(sp, service, spec, pl.auth, e) < 0)
		goto out;
	created = 1;
	report(fn, ctx, 20, "Server requested from the swarm");
	if (wait_running(sp, service, req, &pl, fn, ctx, &t, e) < 0 ||
	    address(sp, service, &t, image_port(sp, req->opts->image), out,
		    e) < 0 ||
	    wait_http(sp, service, req, out, fn, ctx, e) < 0)
		goto out;
	out->mem_limit_bytes = (int64_t)(req->opts->mem_gb * SPAWNER_GIB +
					 0.5);
	rc = 0;
out:
	if (rc < 0 && created) {
		log_event(LOG_WARN, "spawn.cleanup", "service=%s err=%s",
			  service, e->msg);
		remove_service(sp, service, &ignore);
	}
	pulling_release(&pl);
	free(spec);
	free(service);
	return rc;
}

/* ---- tasks on every node ---------------------------------------------
 * A server may run on any node of the swarm: whether it still runs is what
 * the manager says of its tasks (their Status and their node's), never
 * what the local node's containers say. */

/* NodeID -> node object for every node whose daemon is not up (Status.State
 * down, unknown or disconnected): their tasks' states are stale. */
static json_t *
nodes_down(struct spawner *sp, struct err *e)
{
	json_t *a = get_json(sp, "/nodes", e), *it, *down;
	size_t i;

	if (a == NULL)
		return NULL;
	down = json_object();
	json_array_foreach(a, i, it) {
		const char *id = jstr(it, "ID");
		const char *st = jstr(it, "Status.State");

		if (id && st && strcmp(st, "ready") != 0)
			json_object_set(down, id, it);
	}
	json_decref(a);
	return down;
}

static int
task_live(json_t *t, json_t *down)
{
	const char *st = jstr(t, "Status.State");
	const char *node = jstr(t, "NodeID");

	if (st == NULL || task_failed(st))
		return 0;
	/* a task on a node that is gone will never report again */
	return node == NULL || json_object_get(down, node) == NULL;
}

/* Tasks of the service with this ID that have not ended, on any node:
 * -1 on error. The service is removed already, so its name no longer
 * resolves in a "service" filter; its tasks keep its labels, so this
 * hub's tasks are listed by label and matched by ServiceID. Not only those
 * Swarm is ending: just after the removal the orchestrator has not yet
 * set their desired state, so a desired-state filter would miss a running
 * task. */
static long
tasks_left(struct spawner *sp, const char *service_id, struct err *e)
{
	char *f = xasprintf("{\"label\":[\"swarmhub.hub=%s\"]}",
			    sp->cfg.hub_id);
	char *esc = docker_escape(sp->d, f);
	char *path = xasprintf("/tasks?filters=%s", esc);
	json_t *a = get_json(sp, path, e), *down = NULL, *it;
	long n = 0;
	size_t i;

	free(f);
	free(esc);
	free(path);
	if (a == NULL || (down = nodes_down(sp, e)) == NULL)
		n = -1;
	else
		json_array_foreach(a, i, it) {
			const char *sid = jstr(it, "ServiceID");

			if (sid && strcmp(sid, service_id) == 0 &&
			    task_live(it, down))
				n++;
		}
	json_decref(a);
	json_decref(down);
	return n;
}

/* 0 when service carries other swarmhub.user/server labels than user and
 * server (escaped names can meet: alice's "2dx" and alice-x's default),
 * else 1 (ours, gone, or Docker cannot tell). */
static int
labels_match(struct spawner *sp, const char *service, const char *user,
	     const char *server)
{
	char *esc = docker_escape(sp->d, service);
	char *path = xasprintf("/services/%s", esc);
	struct err e = { 0 };
	json_t *s = get_json(sp, path, &e), *labels;
	const char *lu, *ls;
	int ok = 1;

	free(esc);
	free(path);
	if (s == NULL)
		return 1;
	labels = json_object_get(json_object_get(s, "Spec"), "Labels");
	lu = json_string_value(json_object_get(labels, "swarmhub.user"));
	ls = json_string_value(json_object_get(labels, "swarmhub.server"));
	if (lu && (strcmp(lu, user) != 0 || strcmp(ls ? ls : "",
						   server ? server : "") != 0))
		ok = 0;
	json_decref(s);
	return ok;
}

/* The ID of a service by name ("" when there is none). */
static int
service_id_of(struct spawner *sp, const char *service, char *id, size_t size,
	      struct err *e)
{
	char *esc = docker_escape(sp->d, service);
	char *path = xasprintf("/services/%s", esc);
	json_t *s = get_json(sp, path, e);

	free(esc);
	free(path);
	id[0] = '\0';
	if (s == NULL)
		return e->code == ERR_NOTFOUND ? 0 : -1;
	copy_field(id, size, jstr(s, "ID"));
	json_decref(s);
	return 0;
}

int
spawner_stop(struct spawner *sp, const char *user, const char *server,
	     struct err *e)
{
	char *service = spawner_service_name(sp, user, server);
	int64_t deadline = mono_ms() + 60000;
	char id[80];
	int rc;

	if (!labels_match(sp, service, user, server)) {
		log_event(LOG_WARN, "spawn.stop_skipped", "service=%s user=%s "
			  "server=%s why=%s", service, user, server,
			  "another server's service has this name");
		free(service);
		return 0;
	}
	rc = service_id_of(sp, service, id, sizeof(id), e);
	if (rc == 0 && id[0])
		rc = remove_service(sp, id, e);
	/* the service disappears at once; its task ends seconds later, on
	 * whichever node it runs */
	while (rc == 0 && id[0]) {
		struct err ce = { 0 };
		long n = tasks_left(sp, id, &ce);

		if (n == 0)
			break;
		if (n < 0) {
			rc = err_set(e, ce.code, "%s", ce.msg);
			break;
		}
		if (mono_ms() >= deadline) {
			rc = err_set(e, ERR_TIMEOUT, "the server's task was "
			    "still running 60 s after its service was removed");
			break;
		}
		sleep_ms(100);
	}
	free(service);
	return rc;
}

int
spawner_remove_id(struct spawner *sp, const char *service_id, struct err *e)
{
	if (*service_id == '\0')
		return 0;
	return remove_service(sp, service_id, e);
}

/* Spec.TaskTemplate.Resources.Limits.MemoryBytes of a service: the limit
 * it was started with, whatever unit mem_gb had then; 0 when none. */
static int64_t
limit_bytes(json_t *svc)
{
	json_t *o = json_object_get(svc, "Spec");
	const char *const keys[] = { "TaskTemplate", "Resources", "Limits",
				     "MemoryBytes" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		o = json_object_get(o, keys[i]);
	return json_is_integer(o) && json_integer_value(o) > 0 ?
	    (int64_t)json_integer_value(o) : 0;
}

/* A task Swarm still lists as running is not when its node is down (the
 * node cannot report its end) or when Swarm is ending it: ERR_NOTFOUND
 * saying which. */
static int
task_node_gone(struct spawner *sp, const struct task *t, struct err *e)
{
	char *path;
	json_t *n;
	const char *st, *host, *msg;
	int rc = 0;

	if (*t->node == '\0')
		return 0;
	path = xasprintf("/nodes/%s", t->node);
	n = get_json(sp, path, e);
	free(path);
	if (n == NULL)
		return e->code == ERR_NOTFOUND ? err_set(e, ERR_NOTFOUND,
		    "the server's node %s left the swarm", t->node) : -1;
	st = jstr(n, "Status.State");
	host = jstr(n, "Description.Hostname");
	msg = jstr(n, "Status.Message");
	if (st && strcmp(st, "ready") != 0)
		rc = err_set(e, ERR_NOTFOUND, "the server's node '%s' is %s%s%s",
			     host ? host : t->node, st, msg && *msg ? ": " : "",
			     msg ? msg : "");
	else if (strcmp(t->desired, "running") != 0)
		rc = err_set(e, ERR_NOTFOUND, "Swarm is ending the server's "
			     "task (desired state %s)", t->desired);
	json_decref(n);
	return rc;
}

/* A task that is not running because its node was drained: ERR_NOTFOUND
 * saying so; 0 otherwise (other reasons are the caller's to say). */
static int
task_drained(struct spawner *sp, const struct task *t, struct err *e)
{
	struct err ignore = { 0 };
	const char *av, *host;
	char *path;
	json_t *n;
	int rc = 0;

	if (*t->node == '\0')
		return 0;
	path = xasprintf("/nodes/%s", t->node);
	n = get_json(sp, path, &ignore);
	free(path);
	av = jstr(n, "Spec.Availability");
	host = jstr(n, "Description.Hostname");
	if (av && strcmp(av, "drain") == 0)
		rc = err_set(e, ERR_NOTFOUND, "the server's node '%s' was "
			     "drained: Swarm moved the server off it",
			     host ? host : t->node);
	json_decref(n);
	return rc;
}

int
spawner_locate(struct spawner *sp, const char *user, const char *server,
	       const struct spawn_opts *opts, struct server_addr *out,
	       struct err *e)
{
	char *service = spawner_service_name(sp, user, server);
	char *esc = docker_escape(sp->d, service);
	char *path = xasprintf("/services/%s", esc);
	json_t *s = get_json(sp, path, e);
	struct task t = { 0 };
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		goto out;
	{
		json_t *labels = json_object_get(json_object_get(s, "Spec"),
						 "Labels");
		const char *owner = json_string_value(json_object_get(labels,
		    "swarmhub.hub"));

		const char *lu = json_string_value(json_object_get(labels,
		    "swarmhub.user"));
		const char *ls = json_string_value(json_object_get(labels,
		    "swarmhub.server"));

		if (owner == NULL || strcmp(owner, sp->cfg.hub_id) != 0) {
			err_set(e, ERR_NOTFOUND, "service '%s' belongs to "
				"another hub", service);
			goto out;
		}
		if ((lu && strcmp(lu, user) != 0) ||
		    strcmp(ls ? ls : "", server ? server : "") != 0) {
			err_set(e, ERR_NOTFOUND, "service '%s' belongs to "
				"another server", service);
			goto out;
		}
	}
	copy_field(out->service_id, sizeof(out->service_id), jstr(s, "ID"));
	if (newest_task(sp, service, &t, e) < 0)
		goto out;
	if ((strcmp(t.state, "running") != 0 ||
	     strcmp(t.desired, "running") != 0) && task_drained(sp, &t, e) < 0)
		goto out;
	if (strcmp(t.state, "running") != 0) {
		err_set(e, ERR_NOTFOUND, "the server's task is %s%s%s", t.state,
			*t.err ? ": " : "", t.err);
		goto out;
	}
	if (task_node_gone(sp, &t, e) < 0)
		goto out;
	rc = address(sp, service, &t, opts ? image_port(sp, opts->image) :
		     8888, out, e);
	out->mem_limit_bytes = limit_bytes(s);
out:
	json_decref(s);
	free(esc);
	free(path);
	free(service);
	return rc;
}

static void
fill_service(json_t *svc, json_t *running_ids, struct spawner_service *o)
{
	json_t *labels = json_object_get(json_object_get(svc, "Spec"),
					 "Labels");
	const char *id = jstr(svc, "ID");

	memset(o, 0, sizeof(*o));
	/* label keys contain dots: not a path for jstr */
	copy_field(o->user, sizeof(o->user), json_string_value(
	    json_object_get(labels, "swarmhub.user")));
	copy_field(o->server, sizeof(o->server), json_string_value(
	    json_object_get(labels, "swarmhub.server")));
	copy_field(o->service_id, sizeof(o->service_id), id);
	copy_field(o->name, sizeof(o->name), jstr(svc, "Spec.Name"));
	o->running = id && json_object_get(running_ids, id) != NULL;
}

/* ServiceID -> true for every task in state running on a node that is up. */
static json_t *
running_services(struct spawner *sp, struct err *e)
{
	char *esc = docker_escape(sp->d, "{\"desired-state\":[\"running\"]}");
	char *path = xasprintf("/tasks?filters=%s", esc);
	json_t *a = get_json(sp, path, e), *it, *ids, *down = NULL;
	size_t i;

	free(esc);
	free(path);
	if (a == NULL || (down = nodes_down(sp, e)) == NULL) {
		json_decref(a);
		return NULL;
	}
	ids = json_object();
	json_array_foreach(a, i, it) {
		const char *sid = jstr(it, "ServiceID");
		const char *st = jstr(it, "Status.State");

		/* running as last reported by a node that is still up */
		if (sid && st && strcmp(st, "running") == 0 &&
		    task_live(it, down))
			json_object_set_new(ids, sid, json_true());
	}
	json_decref(a);
	json_decref(down);
	return ids;
}

int
spawner_list(struct spawner *sp, struct spawner_service **out, size_t *n,
	     struct err *e)
{
	char *f = xasprintf("{\"label\":[\"swarmhub.hub=%s\"]}",
			    sp->cfg.hub_id);
	char *esc = docker_escape(sp->d, f);
	char *path = xasprintf("/services?filters=%s", esc);
	json_t *a = get_json(sp, path, e), *ids = NULL, *it;
	size_t i;

	free(f);
	free(esc);
	free(path);
	*out = NULL;
	*n = 0;
	if (a == NULL || (ids = running_services(sp, e)) == NULL) {
		json_decref(a);
		return -1;
	}
	*out = xcalloc(json_array_size(a) + 1, sizeof(**out));
	json_array_foreach(a, i, it)
		fill_service(it, ids, &(*out)[(*n)++]);
	json_decref(a);
	json_decref(ids);
	return 0;
}

int
spawner_usage(struct spawner *sp, struct spawner_usage **out, size_t *n,
	      struct err *e)
{
	return usage_collect(sp->d, sp->cfg.hub_id, out, n, e);
}

size_t
spawner_cull_timeouts(struct spawner *sp, char ***names, long **secs)
{
	size_t n = 0;

	pthread_rwlock_rdlock(&sp->plock);
	*names = xcalloc(sp->profiles->nprofiles + 1, sizeof(**names));
	*secs = xcalloc(sp->profiles->nprofiles + 1, sizeof(**secs));
	for (size_t i = 0; i < sp->profiles->nprofiles; i++) {
		const struct profile_def *p = &sp->profiles->profiles[i];

		if (p->cull_timeout_s <= 0)
			continue;
		(*names)[n] = xstrdup(p->name);
		(*secs)[n++] = p->cull_timeout_s;
	}
	pthread_rwlock_unlock(&sp->plock);
	return n;
}

/* ---- homes and checks for admins ------------------------------------- */
static int
need_home(struct spawner *sp, struct err *e)
{
	if (sp->home_ops == NULL)
		return err_set(e, ERR_UNAVAILABLE, "no home directories are "
		    "configured (SWARMHUB_HOME)");
	return 0;
}

int
spawner_home_archive(struct spawner *sp, const char *name, char *archived_to,
		     size_t size, struct err *e)
{
	char date[32];
	time_t now = time(NULL);
	struct tm tm;

	if (need_home(sp, e) < 0)
		return -1;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%d-%H%M%S", &tm);
	return sp->home_ops->archive(sp->home, name, date, archived_to, size,
				     e);
}

int
spawner_home_delete(struct spawner *sp, const char *name, struct err *e)
{
	if (need_home(sp, e) < 0)
		return -1;
	return sp->home_ops->remove(sp->home, name, e);
}

int
spawner_home_rename(struct spawner *sp, const char *from, const char *to,
		    struct err *e)
{
	if (need_home(sp, e) < 0)
		return -1;
	return sp->home_ops->rename(sp->home, from, to, e);
}

int
spawner_home_chown(struct spawner *sp, const char *name, long uid, long gid,
		   int dry_run, long *changed, struct err *e)
{
	*changed = 0;
	if (need_home(sp, e) < 0)
		return -1;
	if (uid <= 0 || gid < 0)
		return err_set(e, ERR_INVALID, "refusing to give '%s' to "
			       "%ld:%ld", name, uid, gid);
	return sp->home_ops->chown_tree(sp->home, name, uid, gid, dry_run,
					changed, e);
}

int
spawner_shared_fix(struct spawner *sp, int dry_run, long *changed,
		   struct err *e)
{
	*changed = 0;
	if (need_home(sp, e) < 0)
		return -1;
	return sp->home_ops->fix_shared(sp->home, sp->cfg.shared_dir,
					sp->cfg.home_gid, dry_run, changed, e);
}

const char *
spawner_shared_name(const struct spawner_cfg *cfg, char *buf, size_t size)
{
	const char *s = cfg->shared_dir ? cfg->shared_dir : "";

	s += strspn(s, "/");
	snprintf(buf, size, "%.*s", (int)strcspn(s, "/"), s);
	return buf;
}

int
spawner_home_list(struct spawner *sp, char ***names, struct err *e)
{
	char **v, shared[256];
	size_t k = 0;

	*names = NULL;
	if (need_home(sp, e) < 0 || sp->home_ops->list(sp->home, &v, e) < 0)
		return -1;
	spawner_shared_name(&sp->cfg, shared, sizeof(shared));
	for (size_t i = 0; v[i]; i++) {
		if (v[i][0] == '.' || (*shared && strcmp(v[i], shared) == 0))
			free(v[i]);
		else
			v[k++] = v[i];
	}
	v[k] = NULL;
	*names = v;
	return 0;
}

int
spawner_remove_service(struct spawner *sp, const char *service,
		       struct err *e)
{
	struct spawner_service *v;
	size_t n;
	int found = 0;

	if (spawner_list(sp, &v, &n, e) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		found |= strcmp(v[i].name, service) == 0;
	free(v);
	if (!found)
		return err_set(e, ERR_NOTFOUND, "no service '%s' with this "
		    "hub's label", service);
	return remove_service(sp, service, e);
}

int
spawner_check_swarm(struct spawner *sp, struct err *e)
{
	return check_swarm(sp, e);
}

int
spawner_check_network(struct spawner *sp, struct err *e)
{
	return check_network(sp, e);
}

int
spawner_check_profiles(struct spawner *sp, struct err *e)
{
	struct profiles *p;

	if (profiles_load(sp->cfg.profiles_path, &p, e) < 0)
		return -1;
	profiles_free(p);
	return 0;
}

int
spawner_check_homes(struct spawner *sp, struct err *e)
{
	char name[64];

	if (need_home(sp, e) < 0)
		return -1;
	snprintf(name, sizeof(name), "swarmhub-doctor-%ld", (long)getpid());
	if (sp->home_ops->ensure(sp->home, name, sp->cfg.home_uid,
				 sp->cfg.home_gid, 0700, NULL, sp->cfg.home_gid,
				 e) < 0)
		return -1;
	return sp->home_ops->remove(sp->home, name, e);
}

/* ---- images on every node ---------------------------------------------- */
/* A reference as Docker takes it: visible ASCII, no spaces, not empty. */
static int
ref_ok(const char *s)
{
	if (*s == '\0' || strlen(s) >= 256 || *s == '-' || *s == '/')
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 127 || strchr("\"'\\?#%", *s))
			return 0;
	return 1;
}

/* Adds image (with the key it came from) to v unless there already. */
static void
add_image(struct spawner_image_nodes *v, size_t *n, const char *image,
	  const char *key)
{
	size_t i;

	for (i = 0; i < *n && strcmp(v[i].image, image) != 0; i++)
		;
	if (i == *n)
		snprintf(v[(*n)++].image, sizeof(v[0].image), "%s", image);
	if (key && *key) {
		size_t l = strlen(v[i].keys);

		snprintf(v[i].keys + l, sizeof(v[i].keys) - l, "%s%s",
			 l ? "," : "", key);
	}
}

/* The references to pull: the named keys or references, or every image of
 * the profiles. */
static int
images_wanted(struct spawner *sp, const char *const *images, size_t n,
	      struct spawner_image_nodes **out, size_t *nout, struct err *e)
{
	const struct profiles *p;
	struct spawner_image_nodes *v;
	size_t k = 0;
	int rc = 0;

	pthread_rwlock_rdlock(&sp->plock);
	p = sp->profiles;
	v = xcalloc((n ? n : p->nimages) + 1, sizeof(*v));
	for (size_t i = 0; i < p->nimages && n == 0; i++)
		add_image(v, &k, p->images[i].image, p->images[i].key);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct image_def *img = profiles_image(p, images[i]);

		if (img)
			add_image(v, &k, img->image, img->key);
		else if (ref_ok(images[i]))
			add_image(v, &k, images[i], NULL);
		else
			rc = err_set(e, ERR_INVALID, "images[%zu]: '%.64s' is "
			    "neither an image key of the profiles nor an image "
			    "reference", i, images[i]);
	}
	pthread_rwlock_unlock(&sp->plock);
	*out = v;
	*nout = k;
	return rc;
}

int
spawner_images_pull(struct spawner *sp, const char *const *images, size_t n,
		    int check, struct spawner_image_nodes **out, size_t *nout,
		    struct err *e)
{
	long timeout = sp->cfg.start_timeout_s < 240 ?
	    sp->cfg.start_timeout_s : 240;

	if (images_wanted(sp, images, n, out, nout, e) < 0 ||
	    pull_jobs(sp->d, sp->ra, sp->cfg.hub_id, *out, *nout, check,
		      check ? 30 : timeout, e) < 0) {
		spawner_image_nodes_free(*out, *nout);
		*out = NULL;
		*nout = 0;
		return -1;
	}
	return 0;
}

void
spawner_image_nodes_free(struct spawner_image_nodes *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].nodes);
	free(v);
}
