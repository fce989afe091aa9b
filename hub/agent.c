/*
 * agent.c - `swarmhub agent`: the usage agent of one node.
 *
 * Swarm has no cluster-wide stats API, so the stack runs this as a global
 * service (one task per node) beside the hub. It reads its own node's
 * Docker (DOCKER_HOST: the node's socket, bind-mounted) and answers
 * GET /usage on AGENT_PORT with one sample of every running container
 * labelled swarmhub.hub=HUB_ID, as the spawner's sampler gives it
 * (spawner/agents.c has the JSON; Docker is connected at start or, when
 * it does not answer then, at the first request that finds it answering,
 * 502 until then). Only a caller with
 * "Authorization: token <key>" is answered, key = usage_agent_key(SECRET)
 * (the hub holds the same secret); everyone else gets 401. The hub asks
 * once per USAGE_EVERY, so two threads are plenty.
 * Ownership: the sampler lives as long as the daemon; each answer's JSON
 * is handed to libmicrohttpd, which frees it.
 */
#include <microhttpd.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

struct agent {
	pthread_mutex_t lock;		/* connecting the sampler */
	struct spawner_sampler *sampler; /* NULL until Docker first answers */
	const char *docker_host, *cert_path, *hub_id;
	char key[65];
	struct log_limit refused_log;
};

static void
agent_usage(FILE *f)
{
	fprintf(f,
"usage: swarmhub agent [--help]\n"
"\n"
"The usage agent of one node: a global service of the stack (one task per\n"
"node) that answers the hub's GET /usage with CPU and memory samples of\n"
"this hub's containers on its node, read from the node's Docker. Callers\n"
"must send the key the hub derives from SWARMHUB_SECRET; others get 401.\n"
"Settings (environment):\n"
"  SWARMHUB_SECRET      the hub's secret (or SWARMHUB_SECRET_FILE)\n"
"  SWARMHUB_HUB_ID      the hub's label value (default swarmhub)\n"
"  SWARMHUB_DOCKER_HOST this node's Docker (default\n"
"                       unix:///var/run/docker.sock)\n"
"  SWARMHUB_AGENT_PORT  TCP port to answer on (default 8001)\n"
"Exit status: 0 on SIGTERM/SIGINT, 1 on a startup failure, 2 on bad\n"
"arguments.\n");
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    strlen(body), body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
error_reply(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_addf(&sb, "{\"status\": %u, \"message\": ", status);
	sb_add_json(&sb, msg);
	sb_addc(&sb, '}');
	return reply(c, status, sb_detach(&sb, NULL));
}

/* 1 when the Authorization header carries this agent's key. */
static int
authorized(struct agent *A, struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    "Authorization");

	if (v == NULL)
		return 0;
	if (strncmp(v, "token ", 6) == 0)
		v += 6;
	else if (strncmp(v, "Bearer ", 7) == 0)
		v += 7;
	else
		return 0;
	return strlen(v) == 64 && str_ct_eq(v, A->key, 64);
}

/* The node's Docker client, connected at the first request that finds
 * Docker answering (so the agent listens even while its Docker is slow or
 * away at start, and says why to the hub). */
static int
sampler(struct agent *A, struct err *e)
{
	int rc = 0;

	pthread_mutex_lock(&A->lock);
	if (A->sampler == NULL)
		rc = spawner_sampler_new(A->docker_host, A->cert_path,
					 A->hub_id, &A->sampler, e);
	pthread_mutex_unlock(&A->lock);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_size, void **con_cls)
{
	struct agent *A = cls;
	struct err e = { 0 };
	char *json = NULL;
	size_t n = 0;
	int64_t t0 = time_mono_ms();

	(void)version;
	(void)upload;
	if (*con_cls == NULL) {		/* headers only, first call */
		*con_cls = A;
		return MHD_YES;
	}
	*upload_size = 0;
	if (strcmp(url, "/usage") != 0)
		return error_reply(c, 404, "not found: the agent answers "
				   "GET /usage only");
	if (strcmp(method, "GET") != 0)
		return error_reply(c, 405, "the agent answers GET /usage only");
	if (!authorized(A, c)) {
		log_event_limited(&A->refused_log, LOG_WARN, "agent.refused",
				  "reason=%s", "no valid key");
		return error_reply(c, 401, "a valid token is required");
	}
	if (sampler(A, &e) < 0 ||
	    spawner_sampler_json(A->sampler, &json, &n, &e) < 0) {
		log_event(LOG_WARN, "agent.failed", "error=%s", e.msg);
		return error_reply(c, 502, e.msg);
	}
	log_event(LOG_DEBUG, "agent.answered", "containers=%zu ms=%ld", n,
		  (long)(time_mono_ms() - t0));
	return reply(c, 200, json);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	str_trim(msg);
	log_event(LOG_WARN, "agent.http", "msg=%s", msg);
}

/* The agent's settings into A and *port; -1 naming the bad one. */
static int
settings(struct agent *A, long *port, struct err *e)
{
	const char *secret, *host, *cert, *hub_id, *level;
	int lv;

	secret = cfg_get("SECRET", NULL, e);
	if (e->code != ERR_OK)
		return -1;
	if (secret == NULL || strlen(secret) < 32)
		return err_set(e, ERR_INVALID, "SWARMHUB_SECRET (or "
			       "SWARMHUB_SECRET_FILE) must be the hub's secret "
			       "(at least 32 characters)");
	usage_agent_key(secret, A->key);
	host = cfg_get("DOCKER_HOST", "unix:///var/run/docker.sock", e);
	cert = cfg_get("DOCKER_CERT_PATH", NULL, e);
	hub_id = cfg_get("HUB_ID", "swarmhub", e);
	level = cfg_get("LOG_LEVEL", "info", e);
	if (e->code != ERR_OK ||
	    cfg_long("AGENT_PORT", 8001, 1, 65535, port, e) < 0)
		return -1;
	lv = log_level_parse(level);
	if (lv < 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_LOG_LEVEL: '%.20s' is "
			       "not debug, info, warn or error", level);
	log_set_level((enum log_level)lv);
	A->docker_host = *host ? host : "unix:///var/run/docker.sock";
	A->cert_path = cert && *cert ? cert : NULL;
	A->hub_id = *hub_id ? hub_id : "swarmhub";
	return 0;
}

static int
serve(struct agent *A, long port)
{
	struct MHD_Daemon *d;
	struct err e = { 0 };
	sigset_t set;
	int sig = 0;

	/* the daemon's threads inherit the mask: signals come to sigwait */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			     MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
			     on_request, A,
			     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
			     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
			     MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "swarmhub agent: cannot listen on port %ld\n",
			port);
		return 1;
	}
	log_event(LOG_INFO, "agent.started", "port=%ld", port);
	if (sampler(A, &e) < 0)		/* early, but not required yet */
		log_event(LOG_WARN, "agent.docker_unavailable", "error=%s",
			  e.msg);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	log_event(LOG_INFO, "agent.stopped", "signal=%d", sig);
	return 0;
}

int
agent_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct agent A = { 0 };
	struct err e = { 0 };
	long port = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': agent_usage(stdout); return 0;
		default: agent_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "swarmhub agent: unexpected argument '%s'\n",
			argv[optind]);
		agent_usage(stderr);
		return 2;
	}
	if (settings(&A, &port, &e) < 0) {
		fprintf(stderr, "swarmhub agent: %s\n", e.msg);
		return 1;
	}
	pthread_mutex_init(&A.lock, NULL);
	rc = serve(&A, port);
	spawner_sampler_free(A.sampler);
	pthread_mutex_destroy(&A.lock);
	explicit_bzero(A.key, sizeof(A.key));
	return rc;
}
