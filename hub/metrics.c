/*
 * metrics.c - Prometheus text format at /hub/metrics, with JupyterHub's
 * metric names where one exists. Counters are relaxed atomics in fixed
 * tables (handler x method x status), so recording costs no lock. The
 * hub's periodic passes (culler, usage) and its start (with adoption) are
 * recorded under a mutex, since their figures belong together.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

static const char *const handlers[] = {
	"api", "api_user", "api_users", "api_user_one", "api_tokens",
	"api_token_one", "api_activity", "api_server", "api_groups", "health",
	"metrics", "login", "logout", "home", "root", "static", "notfound",
	"api_progress", "api_admin", "oauth_authorize", "oauth_token", "other"
};
#define NHANDLERS (sizeof(handlers) / sizeof(handlers[0]))
static const char *const methods[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"
};
#define NMETHODS 8
static const int statuses[] = {
	200, 201, 202, 204, 302, 400, 403, 404, 405, 409, 413, 429, 500, 501,
	502, 503, 504, 0
};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
static const double buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
	uint64_t count;
	uint64_t sum_us;
	uint64_t bucket[NBUCKETS];
};

static const char *const pass_names[METRICS_PASS_KINDS] = {
	"culler", "usage"
};
static const double pass_buckets[] = {
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
};
#define NPASS_BUCKETS (sizeof(pass_buckets) / sizeof(pass_buckets[0]))

/* One kind of pass: a histogram and the last pass's figures. */
struct pass_series {
	uint64_t count;
	int64_t sum_ms;
	uint64_t bucket[NPASS_BUCKETS];
	int64_t last_ms, last_cpu_us, last_end_ms;
	size_t last_servers;
};

struct metrics {
	struct series s[NHANDLERS][NMETHODS][NSTATUS];
	uint64_t login_ok, login_failed;
	pthread_mutex_t lock;		/* guards what follows */
	struct pass_series pass[METRICS_PASS_KINDS];
	int64_t start_ms;		/* -1: not started yet */
	size_t start_servers;
};

struct metrics *
metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(struct metrics));

	pthread_mutex_init(&m->lock, NULL);
	m->start_ms = -1;
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void
metrics_pass(struct metrics *m, enum metrics_pass kind, int64_t ms,
	     int64_t cpu_us, size_t servers)
{
	struct pass_series *p = &m->pass[kind];

	pthread_mutex_lock(&m->lock);
	p->count++;
	p->sum_ms += ms;
	for (size_t i = 0; i < NPASS_BUCKETS; i++)
		if ((double)ms / 1e3 <= pass_buckets[i]) {
			p->bucket[i]++;
			break;
		}
	p->last_ms = ms;
	p->last_cpu_us = cpu_us;
	p->last_end_ms = time_now_ms();
	p->last_servers = servers;
	pthread_mutex_unlock(&m->lock);
}

void
metrics_started(struct metrics *m, int64_t ms, size_t servers)
{
	pthread_mutex_lock(&m->lock);
	m->start_ms = ms;
	m->start_servers = servers;
	pthread_mutex_unlock(&m->lock);
}

static size_t
handler_index(const char *handler)
{
	for (size_t i = 0; i < NHANDLERS; i++)
		if (strcmp(handlers[i], handler) == 0)
			return i;
	return NHANDLERS - 1;
}

static size_t
status_index(int status)
{
	for (size_t i = 0; i + 1 < NSTATUS; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUS - 1;
}

void
metrics_observe(struct metrics *m, const char *handler, enum method meth,
		int status, double seconds)
{
	struct series *s =
	    &m->s[handler_index(handler)][meth][status_index(status)];

	__atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->sum_us, (uint64_t)(seconds * 1e6),
			   __ATOMIC_RELAXED);
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i]) {
			__atomic_add_fetch(&s->bucket[i], 1, __ATOMIC_RELAXED);
			break;
		}
}

void
metrics_login(struct metrics *m, int ok)
{
	__atomic_add_fetch(ok ? &m->login_ok : &m->login_failed, 1,
			   __ATOMIC_RELAXED);
}

static void
render_series(struct strbuf *sb, const struct series *s, const char *labels)
{
	uint64_t cum = 0;
	uint64_t count = __atomic_load_n(&s->count, __ATOMIC_RELAXED);

	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += __atomic_load_n(&s->bucket[i], __ATOMIC_RELAXED);
		sb_addf(sb, "jupyterhub_request_duration_seconds_bucket{%s,"
			"le=\"%g\"} %llu\n", labels, buckets[i],
			(unsigned long long)cum);
	}
	sb_addf(sb, "jupyterhub_request_duration_seconds_bucket{%s,le=\"+Inf\"}"
		" %llu\n", labels, (unsigned long long)count);
	sb_addf(sb, "jupyterhub_request_duration_seconds_count{%s} %llu\n",
		labels, (unsigned long long)count);
	sb_addf(sb, "jupyterhub_request_duration_seconds_sum{%s} %.6f\n",
		labels, (double)__atomic_load_n(&s->sum_us, __ATOMIC_RELAXED) /
		1e6);
}

static void
render_requests(struct strbuf *sb, struct metrics *m)
{
	char labels[160];

	sb_adds(sb, "# HELP jupyterhub_request_duration_seconds request "
		"duration for all HTTP requests\n# TYPE "
		"jupyterhub_request_duration_seconds histogram\n");
	for (size_t r = 0; r < NHANDLERS; r++)
		for (size_t k = 0; k < NMETHODS; k++)
			for (size_t c = 0; c < NSTATUS; c++) {
				const struct series *s = &m->s[r][k][c];

				if (__atomic_load_n(&s->count,
						    __ATOMIC_RELAXED) == 0)
					continue;
				snprintf(labels, sizeof(labels), "code=\"%d\","
					 "handler=\"%s\",method=\"%s\"",
					 statuses[c] ? statuses[c] : 599,
					 handlers[r], methods[k]);
				render_series(sb, s, labels);
			}
}

static void
render_pass(struct strbuf *sb, const struct pass_series *p, const char *name)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < NPASS_BUCKETS; i++) {
		cum += p->bucket[i];
		sb_addf(sb, "swarmhub_pass_duration_seconds_bucket{pass=\"%s\","
			"le=\"%g\"} %llu\n", name, pass_buckets[i],
			(unsigned long long)cum);
	}
	sb_addf(sb, "swarmhub_pass_duration_seconds_bucket{pass=\"%s\","
		"le=\"+Inf\"} %llu\nswarmhub_pass_duration_seconds_count{pass="
		"\"%s\"} %llu\nswarmhub_pass_duration_seconds_sum{pass=\"%s\"}"
		" %.3f\n", name, (unsigned long long)p->count, name,
		(unsigned long long)p->count, name, (double)p->sum_ms / 1e3);
}

static void
render_last(struct strbuf *sb, const struct pass_series *p, const char *name)
{
	sb_addf(sb, "swarmhub_pass_last_seconds{pass=\"%s\"} %.3f\n"
		"swarmhub_pass_last_cpu_seconds{pass=\"%s\"} %.4f\n"
		"swarmhub_pass_last_servers{pass=\"%s\"} %zu\n"
		"swarmhub_pass_last_end_timestamp_seconds{pass=\"%s\"} %.3f\n",
		name, (double)p->last_ms / 1e3, name,
		(double)p->last_cpu_us / 1e6, name, p->last_servers, name,
		(double)p->last_end_ms / 1e3);
}

/* The passes and the start, from one consistent copy. */
static void
render_passes(struct strbuf *sb, struct metrics *m)
{
	struct pass_series p[METRICS_PASS_KINDS];
	int64_t start_ms;
	size_t start_servers;

	pthread_mutex_lock(&m->lock);
	memcpy(p, m->pass, sizeof(p));
	start_ms = m->start_ms;
	start_servers = m->start_servers;
	pthread_mutex_unlock(&m->lock);
	sb_adds(sb, "# HELP swarmhub_pass_duration_seconds how long the "
		"hub's periodic passes take (culler: list, probe, stop; usage: "
		"Docker's container stats)\n# TYPE "
		"swarmhub_pass_duration_seconds histogram\n");
	for (int k = 0; k < METRICS_PASS_KINDS; k++)
		render_pass(sb, &p[k], pass_names[k]);
	sb_adds(sb, "# HELP swarmhub_pass_last_seconds the last pass's "
		"duration\n# TYPE swarmhub_pass_last_seconds gauge\n"
		"# HELP swarmhub_pass_last_cpu_seconds CPU time the hub's "
		"threads used in the last pass (the culler paces its probes, "
		"so its duration is mostly waiting)\n# TYPE "
		"swarmhub_pass_last_cpu_seconds gauge\n"
		"# HELP swarmhub_pass_last_servers servers (culler) or containers "
		"(usage) the last pass covered\n# TYPE swarmhub_pass_last_servers"
		" gauge\n# HELP swarmhub_pass_last_end_timestamp_seconds when the "
		"last pass ended (Unix time; 0: none yet)\n# TYPE "
		"swarmhub_pass_last_end_timestamp_seconds gauge\n");
	for (int k = 0; k < METRICS_PASS_KINDS; k++)
		render_last(sb, &p[k], pass_names[k]);
	if (start_ms < 0)
		return;
	sb_addf(sb, "# HELP swarmhub_start_seconds the hub's start, from "
		"reading its settings to listening (database, state, adoption "
		"of running servers)\n# TYPE swarmhub_start_seconds gauge\n"
		"swarmhub_start_seconds %.3f\n# HELP swarmhub_start_servers "
		"servers running after the start's adoption\n# TYPE "
		"swarmhub_start_servers gauge\nswarmhub_start_servers %zu\n",
		(double)start_ms / 1e3, start_servers);
}

void
metrics_render(struct strbuf *sb, struct metrics *m,
	       const struct metrics_gauges *g)
{
	sb_addf(sb, "# HELP jupyterhub_total_users total number of users\n"
		"# TYPE jupyterhub_total_users gauge\n"
		"jupyterhub_total_users %zu\n"
		"# HELP swarmhub_admin_users users with admin rights\n"
		"# TYPE swarmhub_admin_users gauge\nswarmhub_admin_users %zu\n"
		"# HELP jupyterhub_running_servers the number of user servers "
		"currently running\n# TYPE jupyterhub_running_servers gauge\n"
		"jupyterhub_running_servers %zu\n"
		"# HELP jupyterhub_pending_servers servers starting or "
		"stopping\n# TYPE jupyterhub_pending_servers gauge\n"
		"jupyterhub_pending_servers %zu\n"
		"# HELP swarmhub_sessions open browser sessions\n"
		"# TYPE swarmhub_sessions gauge\nswarmhub_sessions %zu\n"
		"# HELP swarmhub_api_tokens API tokens\n"
		"# TYPE swarmhub_api_tokens gauge\nswarmhub_api_tokens %zu\n",
		g->users, g->admins, g->running, g->pending, g->sessions,
		g->tokens);
	sb_addf(sb, "# HELP swarmhub_orphan_services services with this hub's "
		"labels that no running server owns\n# TYPE "
		"swarmhub_orphan_services gauge\nswarmhub_orphan_services "
		"%ld\n", g->orphans);
	sb_addf(sb, "# HELP swarmhub_logins_total login attempts by result\n"
		"# TYPE swarmhub_logins_total counter\n"
		"swarmhub_logins_total{result=\"success\"} %llu\n"
		"swarmhub_logins_total{result=\"failure\"} %llu\n",
		(unsigned long long)__atomic_load_n(&m->login_ok,
						    __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&m->login_failed,
						    __ATOMIC_RELAXED));
	sb_addf(sb, "# HELP swarmhub_database_up 1 when the last database "
		"check succeeded\n# TYPE swarmhub_database_up gauge\n"
		"swarmhub_database_up %d\n", g->db_up);
	render_requests(sb, m);
	render_passes(sb, m);
}
