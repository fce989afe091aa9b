/*
 * usage.c - CPU and memory that running servers actually use, for the
 * admin and home pages.
 *
 * One thread asks the spawner for a sample of every running container of
 * this hub every USAGE_EVERY and keeps the last one in the server (under
 * the state's write lock, briefly: the Docker calls happen before it is
 * taken). The CPU figure is the average between the last two samples of
 * the same container, so a new server shows its memory at once and its
 * CPU one sample later; that second sample is taken after
 * USAGE_FIRST_MS rather than a whole period later.
 *
 * Where the samples come from: with USAGE_AGENTS unset, the node the hub
 * talks to (GET /containers/json and stats there: servers on other nodes
 * of a swarm are not seen); with USAGE_AGENTS=host:port, the usage agents
 * (`swarmhub agent`, one per node, agent.c), every one asked at once in
 * each pass, with a key derived from SECRET (usage_agent_key), so the
 * pass takes about as long for 10 nodes as for one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hub.h"

#define USAGE_FIRST_MS 5000
#define AGENT_TIMEOUT_MS 10000L
#define AGENT_KEY_CONTEXT "swarmhub usage agent v1"

/* The sampler of one hub (h->usage). */
struct usage {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* CLOCK_MONOTONIC */
	atomic_int stopping;
	int failing;			/* last pass failed (log once) */
	char *agents_failing;		/* which agents failed last pass, and
					 * why (logged when it changes) */
};

/* Stores the samples; 1 when a server still lacks a CPU figure. */
static int
apply(struct hub *h, const struct spawner_usage *v, size_t n)
{
	int64_t now = time_now_ms();
	int again = 0;

	pthread_rwlock_wrlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		struct user *u = state_user(&h->state, v[i].user);
		struct server *s = u ? user_server(u, v[i].server) : NULL;
		double cpu;

		if (s == NULL || s->state != SRV_RUNNING)
			continue;
		cpu = spawner_usage_cpu(&s->usage, &v[i]);
		if (cpu >= 0) {
			s->used_cpu = cpu;
		} else if (strcmp(s->usage.container, v[i].container) != 0) {
			s->used_cpu = -1;	/* a new container */
			again = 1;
		}
		s->usage = v[i];
		s->usage_at_ms = now;
	}
	pthread_rwlock_unlock(&h->state.lock);
	return again;
}

void
usage_agent_key(const char *secret, char *out)
{
	crypto_hmac_hex(secret, AGENT_KEY_CONTEXT, out);
}

/* Logs the agents that failed when that changes (a node whose agent is
 * down would otherwise log every pass); takes fails over. */
static void
agents_failing(struct usage *U, size_t asked, char *fails)
{
	char *was = U->agents_failing;

	if (fails && (was == NULL || strcmp(was, fails) != 0))
		log_event(LOG_WARN, "usage.agents_failed", "asked=%zu "
			  "failed=%s", asked, fails);
	else if (fails == NULL && was != NULL)
		log_event(LOG_INFO, "usage.agents_recovered", "asked=%zu",
			  asked);
	free(was);
	U->agents_failing = fails;
}

/* The samples of this pass: from the agents or from the local node. */
static int
sample(struct hub *h, struct spawner_usage **v, size_t *n, struct err *e)
{
	char key[65], *fails = NULL;
	size_t asked = 0;
	int rc;

	if (h->cfg.usage_agents == NULL)
		return spawner_usage(h->spawner, v, n, e);
	usage_agent_key(h->cfg.secret, key);
	rc = spawner_usage_agents(h->cfg.usage_agents, key, AGENT_TIMEOUT_MS,
				  v, n, &asked, &fails, e);
	explicit_bzero(key, sizeof(key));
	if (rc == 0) {
		agents_failing(h->usage, asked, fails);
		log_event(LOG_DEBUG, "usage.agents", "asked=%zu", asked);
	}
	return rc;
}

static int
pass(struct hub *h)
{
	struct spawner_usage *v = NULL;
	struct err e = { 0 };
	size_t n = 0;
	int again = 0;
	int64_t t0 = time_mono_ms(), cpu0 = time_thread_cpu_us();

	if (sample(h, &v, &n, &e) < 0) {
		if (!h->usage->failing)
			log_event(LOG_WARN, "usage.failed", "error=%s", e.msg);
		h->usage->failing = 1;
	} else {
		if (h->usage->failing)
			log_event(LOG_INFO, "usage.recovered", "containers=%zu",
				  n);
		h->usage->failing = 0;
		again = apply(h, v, n);
		metrics_pass(h->metrics, METRICS_PASS_USAGE,
			     time_mono_ms() - t0, time_thread_cpu_us() - cpu0,
			     n);
		log_event(LOG_DEBUG, "usage.pass", "containers=%zu ms=%ld", n,
			  (long)(time_mono_ms() - t0));
	}
	free(v);
	return again;
}

static void *
run(void *arg)
{
	struct hub *h = arg;
	struct usage *U = h->usage;

	pthread_mutex_lock(&U->lock);
	while (!atomic_load(&U->stopping)) {
		int64_t next;
		struct timespec ts;
		int again;

		pthread_mutex_unlock(&U->lock);
		again = pass(h);
		pthread_mutex_lock(&U->lock);
		next = time_mono_ms() + (again ? USAGE_FIRST_MS
					 : h->cfg.usage_every_s * 1000);
		ts.tv_sec = next / 1000;
		ts.tv_nsec = (next % 1000) * 1000000;
		while (!atomic_load(&U->stopping) && time_mono_ms() < next)
			if (pthread_cond_timedwait(&U->wake, &U->lock, &ts) ==
			    ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&U->lock);
	return NULL;
}

/* USAGE_AGENTS is host:port, checked before the hub starts. */
static int
check_agents(const char *agents, struct err *e)
{
	const char *colon = strrchr(agents, ':');
	long port;

	if (colon == NULL || colon == agents ||
	    str_to_long(colon + 1, 1, 65535, &port, "port", NULL) < 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_USAGE_AGENTS: '%.80s' "
			       "is not host:port (e.g. tasks.swarmhub_agent:"
			       "8001)", agents);
	return 0;
}

int
usage_start(struct hub *h, struct err *e)
{
	struct usage *U;
	pthread_condattr_t ca;
	int ok;

	if (h->spawner == NULL || h->cfg.usage_every_s <= 0)
		return 0;
	if (h->cfg.usage_agents && check_agents(h->cfg.usage_agents, e) < 0)
		return -1;
	if (pthread_condattr_init(&ca) != 0)
		return err_set(e, ERR_INTERNAL, "usage: no condition variable");
	U = xcalloc(1, sizeof(*U));
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&U->wake, &ca) == 0;
	pthread_condattr_destroy(&ca);
	if (!ok) {
		free(U);
		return err_set(e, ERR_INTERNAL, "usage: no condition variable");
	}
	pthread_mutex_init(&U->lock, NULL);
	h->usage = U;
	if (pthread_create(&U->thread, NULL, run, h) != 0) {
		pthread_cond_destroy(&U->wake);
		pthread_mutex_destroy(&U->lock);
		free(U);
		h->usage = NULL;
		return err_set(e, ERR_INTERNAL, "usage: cannot start its "
			       "thread");
	}
	log_event(LOG_INFO, "usage.started", "every_s=%ld from=%s",
		  h->cfg.usage_every_s, h->cfg.usage_agents
		  ? h->cfg.usage_agents : "local");
	return 0;
}

void
usage_stop(struct hub *h)
{
	struct usage *U = h->usage;

	if (U == NULL)
		return;
	pthread_mutex_lock(&U->lock);
	atomic_store(&U->stopping, 1);
	pthread_cond_broadcast(&U->wake);
	pthread_mutex_unlock(&U->lock);
	pthread_join(U->thread, NULL);
	pthread_cond_destroy(&U->wake);
	pthread_mutex_destroy(&U->lock);
	free(U->agents_failing);
	free(U);
	h->usage = NULL;
}

int
usage_get(const struct server *s, int64_t now_ms, long every_s,
	  double *cpu, int64_t *mem_bytes)
{
	/* a sample of this run of the server, recent enough to mean "now" */
	if (s == NULL || s->state != SRV_RUNNING || s->usage_at_ms <= 0 ||
	    s->usage_at_ms < s->started_ms ||
	    now_ms - s->usage_at_ms > 3 * every_s * 1000 + USAGE_FIRST_MS)
		return -1;
	*cpu = s->used_cpu;
	*mem_bytes = s->usage.mem_bytes;
	return 0;
}
