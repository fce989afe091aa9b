/*
 * cull.c - the culler's view of the hub (struct culler_ops) and its
 * settings. culler/ decides; this file lists servers with the proxy's
 * activity record, asks each server for its own last activity and kernel
 * states (not web apps: for them the proxy's record is all there is), and
 * stops the ones the culler picks, leaving the reason where the user sees
 * it (home page, history, audit log, metrics).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../culler/culler.h"
#include "hub.h"

/* The culler of one hub (h->cull; its counters live as long as the hub). */
struct cull {
	uint64_t culled_total[CULL_REASON_COUNT];
	struct culler *culler;
	struct culler_profile_timeout *overrides;
	size_t noverrides;
	char **override_names;
	long *override_secs;
};

/* What the culler needs of server s of u (lock held). */
static void
one_server(struct culler_server *c, const struct user *u, struct server *s)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->user, sizeof(c->user), "%s", u->name);
	snprintf(c->server, sizeof(c->server), "%s", s->name);
	snprintf(c->profile, sizeof(c->profile), "%s",
		 s->has_opts ? s->opts.profile : "");
	c->admin = u->admin;
	c->pending = s->state != SRV_RUNNING;
	c->started_ms = s->started_ms;
	c->proxy_ms = __atomic_load_n(&s->last_activity_ms, __ATOMIC_RELAXED);
	c->client_ms = __atomic_load_n(&s->last_client_ms, __ATOMIC_RELAXED);
}

/* Every running or pending server, default and named. */
static int
list_servers(void *ctx, struct culler_server **out, size_t *n)
{
	struct hub *h = ctx;
	struct culler_server *v;
	size_t cap;

	pthread_rwlock_rdlock(&h->state.lock);
	cap = h->state.nusers + 1;
	v = xcalloc(cap, sizeof(*v));
	*n = 0;
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *s = user_server_at(u, k);

			if (s == NULL || s->state == SRV_STOPPED)
				continue;
			if (*n + 1 >= cap) {
				cap *= 2;
				v = xrealloc(v, cap * sizeof(*v));
			}
			one_server(&v[(*n)++], u, s);
		}
	}
	pthread_rwlock_unlock(&h->state.lock);
	*out = v;
	return 0;
}

static int
probe(void *ctx, const char *user, const char *server, int64_t *server_ms,
      int *kernel_busy)
{
	struct hub *h = ctx;
	struct user *u;
	struct server *s;
	struct spawner_image im;
	char base[300] = "", token[65], nonce[33] = "", image[64] = "";
	struct err e = { 0 };

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, user);
	s = u ? user_server(u, server) : NULL;
	if (s && s->state == SRV_RUNNING && *s->ip) {
		char *path = servers_url(user, server);

		snprintf(base, sizeof(base), "http://%s:%d%s", s->ip,
			 s->addr.port, path);
		free(path);
		memcpy(nonce, s->nonce, sizeof(nonce));
		if (s->has_opts)
			memcpy(image, s->opts.image, sizeof(image));
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (*base == '\0')
		return -1;
	/* a web app has no api/status: what the proxy saw is its activity */
	if (*image && h->spawner &&
	    spawner_image_info(h->spawner, image, &im, NULL) == 0 &&
	    im.kind == SPAWNER_KIND_WEB) {
		*server_ms = 0;
		*kernel_busy = 0;
		return 0;
	}
	servers_token_for(h, user, server, nonce, token);
	if (spawner_status(base, token, h->cfg.cull_probe_timeout_ms,
			   server_ms, kernel_busy, &e) < 0) {
		log_event(LOG_DEBUG, "culler.probe_failed", "user=%s server=%s "
			  "err=%s", user, server, e.msg);
		return -1;
	}
	return 0;
}

static int
stop(void *ctx, const struct culler_action *a)
{
	struct hub *h = ctx;
	struct err e = { 0 };
	char *reason = xasprintf("culled: %s", a->message);
	char *detail = xasprintf("{\"reason\": \"%s\"}", a->label);
	char *target = *a->server ? xasprintf("%s/%s", a->user, a->server)
				  : xstrdup(a->user);
	int rc = servers_stop_named(h, a->user, a->server, 0, "culler",
				    reason, &e);

	if (rc >= 0) {
		__atomic_add_fetch(&h->cull->culled_total[a->reason], 1,
				   __ATOMIC_RELAXED);
		hub_audit(h, "culler", "server.cull", target, detail, "");
		log_event(LOG_INFO, "culler.stopped", "user=%s server=%s "
			  "reason=%s msg=%s", a->user, a->server, a->label,
			  a->message);
	} else {
		log_event(LOG_WARN, "culler.stop_failed", "user=%s server=%s "
			  "err=%s", a->user, a->server, e.msg);
	}
	free(target);
	free(reason);
	free(detail);
	return rc < 0 ? -1 : 0;
}

static int
list_users(void *ctx, struct culler_user **out, size_t *n)
{
	struct hub *h = ctx;
	struct culler_user *v;

	pthread_rwlock_rdlock(&h->state.lock);
	v = xcalloc(h->state.nusers + 1, sizeof(*v));
	*n = h->state.nusers;
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		snprintf(v[i].name, sizeof(v[i].name), "%s", u->name);
		v[i].admin = u->admin;
		v[i].has_server = user_active_servers(u) > 0;
		v[i].created_ms = u->created_ms;
		v[i].last_activity_ms = __atomic_load_n(&u->last_activity_ms,
							__ATOMIC_RELAXED);
	}
	pthread_rwlock_unlock(&h->state.lock);
	*out = v;
	return 0;
}

static int
delete_user(void *ctx, const struct culler_action *a)
{
	struct hub *h = ctx;
	struct users_by by = { "culler", "",
			       "{\"reason\": \"user_inactive\"}" };
	struct err e = { 0 };

	if (users_delete(h, a->user, &by, &e) < 0) {
		log_event(LOG_WARN, "culler.delete_failed", "user=%s err=%s",
			  a->user, e.msg);
		return -1;
	}
	__atomic_add_fetch(&h->cull->culled_total[a->reason], 1, __ATOMIC_RELAXED);
	return 0;
}

static void
free_overrides(struct cull *C)
{
	free(C->overrides);
	strv_free(C->override_names);
	free(C->override_secs);
	C->overrides = NULL;
	C->override_names = NULL;
	C->override_secs = NULL;
}

static void
load_overrides(struct hub *h)
{
	struct cull *C = h->cull;

	free_overrides(C);
	C->noverrides = spawner_cull_timeouts(h->spawner, &C->override_names,
					      &C->override_secs);
	C->overrides = xcalloc(C->noverrides + 1, sizeof(*C->overrides));
	for (size_t i = 0; i < C->noverrides; i++) {
		C->overrides[i].profile = C->override_names[i];
		C->overrides[i].timeout_s = C->override_secs[i];
	}
}

static void
policy(struct hub *h, struct culler_policy *p)
{
	culler_policy_init(p);
	p->timeout_s = h->cfg.cull_timeout_s;
	p->max_age_s = h->cfg.cull_max_age_s;
	p->cull_admins = h->cfg.cull_admin_servers;
	p->kernel_busy_counts = h->cfg.cull_kernel_busy;
	p->websockets_count = h->cfg.cull_websockets;
	p->users_after_s = h->cfg.cull_users_after_s;
	p->profile_timeouts = h->cull->overrides;
	p->nprofile_timeouts = h->cull->noverrides;
}

/* Each pass's duration goes to /hub/metrics (swarmhub_pass_*). */
static void
pass_done(void *ctx, const struct culler_pass_stats *st)
{
	struct hub *h = ctx;

	metrics_pass(h->metrics, METRICS_PASS_CULLER, st->duration_ms,
		     st->cpu_us, st->servers);
}

int
cull_start(struct hub *h, struct err *e)
{
	struct culler_ops ops = { list_servers, probe, stop, list_users,
				  delete_user, pass_done, h };
	struct culler_policy p;

	h->cull = xcalloc(1, sizeof(*h->cull));
	if (h->spawner == NULL || (h->cfg.cull_timeout_s <= 0 &&
				   h->cfg.cull_max_age_s <= 0))
		return 0;
	load_overrides(h);
	policy(h, &p);
	h->cull->culler = culler_start(&ops, &p, h->cfg.cull_every_s,
				       (int)h->cfg.cull_concurrency,
				       h->cfg.cull_probe_timeout_ms,
				       h->cfg.cull_probe_rate, e);
	if (h->cull->culler == NULL)
		return -1;
	log_event(LOG_INFO, "culler.started", "timeout_s=%ld every_s=%ld "
		  "max_age_s=%ld probe_rate=%ld", h->cfg.cull_timeout_s,
		  h->cfg.cull_every_s, h->cfg.cull_max_age_s,
		  h->cfg.cull_probe_rate);
	return 0;
}

void
cull_reload(struct hub *h)
{
	struct culler_policy p;

	if (h->cull == NULL || h->cull->culler == NULL)
		return;
	load_overrides(h);
	policy(h, &p);
	culler_set_policy(h->cull->culler, &p);
}

void
cull_stop(struct hub *h)
{
	if (h->cull == NULL)
		return;
	culler_stop(h->cull->culler);
	free_overrides(h->cull);
	free(h->cull);
	h->cull = NULL;
}

void
cull_metrics(struct hub *h, struct strbuf *sb)
{
	sb_adds(sb, "# HELP jupyterhub_culled_total servers (and users) "
		"culled, by reason\n# TYPE jupyterhub_culled_total counter\n");
	for (int r = 0; r < CULL_REASON_COUNT; r++)
		sb_addf(sb, "jupyterhub_culled_total{reason=\"%s\"} %llu\n",
			culler_reason_label((enum culler_reason)r),
			h->cull ? (unsigned long long)__atomic_load_n(
			    &h->cull->culled_total[r], __ATOMIC_RELAXED) : 0ULL);
}
