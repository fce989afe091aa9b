/*
 * agents.c - usage from every node: the usage agents' side of the spawner.
 *
 * Swarm has no cluster-wide stats API, so one agent per node (`swarmhub
 * agent`, a global service of the stack) samples its own node's Docker
 * with usage_collect and answers GET /usage with
 *   {"containers": [{"user", "server", "container", "read_ms", "cpu_ns",
 *                    "mem_bytes", "mem_limit"}]}
 * The hub finds the agents by DNS (all addresses of tasks.<service>, one
 * per node) and asks them all at once over one curl multi handle, each
 * with "Authorization: token <key>"; an agent that fails is left out
 * (the caller gets why), the others still count. Parsing is apart from I/O
 * (usage_agent_parse, unit-tested).
 * Ownership: struct spawner_sampler owns its Docker client and hub id.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include "internal.h"

#define AGENTS_MAX	1024		/* addresses asked in one pass */
#define ANSWER_MAX	(16u << 20)	/* refuse answers beyond 16 MiB */

struct spawner_sampler {
	struct docker *d;
	char *hub_id;
};

int
spawner_sampler_new(const char *docker_host, const char *cert_path,
		    const char *hub_id, struct spawner_sampler **out,
		    struct err *e)
{
	struct spawner_sampler *s = xcalloc(1, sizeof(*s));

	*out = NULL;
	if (docker_new(docker_host, cert_path, &s->d, e) < 0) {
		free(s);
		return -1;
	}
	s->hub_id = xstrdup(hub_id);
	*out = s;
	return 0;
}

void
spawner_sampler_free(struct spawner_sampler *s)
{
	if (s == NULL)
		return;
	docker_free(s->d);
	free(s->hub_id);
	free(s);
}

char *
usage_agent_json(const struct spawner_usage *v, size_t n)
{
	json_t *a = json_array(), *o;
	char *text;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack(
		    "{s:s, s:s, s:s, s:I, s:I, s:I, s:I}",
		    "user", v[i].user, "server", v[i].server,
		    "container", v[i].container,
		    "read_ms", (json_int_t)v[i].read_ms,
		    "cpu_ns", (json_int_t)v[i].cpu_ns,
		    "mem_bytes", (json_int_t)v[i].mem_bytes,
		    "mem_limit", (json_int_t)v[i].mem_limit));
	o = json_pack("{s:o}", "containers", a);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "json_dumps");
		abort();
	}
	return text;
}

int
spawner_sampler_json(struct spawner_sampler *s, char **json, size_t *n,
		     struct err *e)
{
	struct spawner_usage *v = NULL;
	char *text;

	*json = NULL;
	if (usage_collect(s->d, s->hub_id, &v, n, e) < 0)
		return -1;
	text = usage_agent_json(v, *n);
	free(v);
	/* jansson's allocation: hand the caller a malloc'd copy */
	*json = xstrdup(text);
	free(text);
	return 0;
}

/* A string field of at most size-1 bytes into buf. */
static int
field_str(json_t *o, const char *key, char *buf, size_t size)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (v == NULL || strlen(v) >= size)
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

static int
field_int(json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* One entry of "containers"; the name of the bad field in *bad. */
static int
entry(json_t *c, struct spawner_usage *u, const char **bad)
{
	memset(u, 0, sizeof(*u));
	if (!json_is_object(c))
		return *bad = "containers[]", -1;
	if (field_str(c, "user", u->user, sizeof(u->user)) < 0 ||
	    u->user[0] == '\0')
		return *bad = "user", -1;
	if (field_str(c, "server", u->server, sizeof(u->server)) < 0)
		return *bad = "server", -1;
	if (field_str(c, "container", u->container,
		      sizeof(u->container)) < 0 || u->container[0] == '\0')
		return *bad = "container", -1;
	if (field_int(c, "read_ms", &u->read_ms) < 0 || u->read_ms == 0)
		return *bad = "read_ms", -1;
	if (field_int(c, "cpu_ns", &u->cpu_ns) < 0)
		return *bad = "cpu_ns", -1;
	if (field_int(c, "mem_bytes", &u->mem_bytes) < 0)
		return *bad = "mem_bytes", -1;
	if (field_int(c, "mem_limit", &u->mem_limit) < 0)
		return *bad = "mem_limit", -1;
	return 0;
}

int
usage_agent_parse(const char *json, size_t len, struct spawner_usage **out,
		  size_t *n, struct err *e)
{
	json_t *j = json_loadb(json ? json : "", len, 0, NULL), *a, *c;
	struct spawner_usage *v;
	const char *bad = NULL;
	size_t i;

	*out = NULL;
	*n = 0;
	a = json_object_get(j, "containers");
	if (!json_is_array(a)) {
		json_decref(j);
		return err_set(e, ERR_UPSTREAM, "the agent's answer has no "
			       "\"containers\" array");
	}
	v = xcalloc(json_array_size(a) + 1, sizeof(*v));
	json_array_foreach(a, i, c) {
		if (entry(c, &v[i], &bad) < 0) {
			err_set(e, ERR_UPSTREAM, "the agent's answer: "
				"containers[%zu] has no valid \"%s\"", i, bad);
			free(v);
			json_decref(j);
			return -1;
		}
	}
	*out = v;
	*n = json_array_size(a);
	json_decref(j);
	return 0;
}

/* ---- the hub's side: ask every agent at once --------------------------- */
int
usage_agents_split(const char *agents, char *host, size_t hsize, char *port,
		   size_t psize, struct err *e)
{
	const char *colon = agents ? strrchr(agents, ':') : NULL;
	long p;

	if (colon == NULL || colon == agents ||
	    (size_t)(colon - agents) >= hsize || strlen(colon + 1) >= psize ||
	    str_to_long(colon + 1, 1, 65535, &p, "port", NULL) < 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_USAGE_AGENTS: '%.80s' "
			       "is not host:port (e.g. tasks.swarmhub_agent:"
			       "8001)", agents ? agents : "");
	memcpy(host, agents, (size_t)(colon - agents));
	host[colon - agents] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

/* Every IPv4 address of host (one per agent task), deduplicated. */
static char **
resolve(const char *host, size_t *n, struct err *e)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	char **v = NULL, buf[INET_ADDRSTRLEN];
	int rc;

	*n = 0;
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		err_set(e, ERR_UNAVAILABLE, "no usage agent found at '%s': %s",
			host, gai_strerror(rc));
		return NULL;
	}
	v = xcalloc(AGENTS_MAX + 1, sizeof(*v));
	for (ai = res; ai && *n < AGENTS_MAX; ai = ai->ai_next) {
		const struct sockaddr_in *sin = (void *)ai->ai_addr;
		size_t i;

		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		for (i = 0; i < *n && strcmp(v[i], buf) != 0; i++)
			;
		if (i == *n)
			v[(*n)++] = xstrdup(buf);
	}
	freeaddrinfo(res);
	return v;
}

struct ask {
	CURL *c;
	char *url;
	struct strbuf body;
	CURLcode rc;
};

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct strbuf *sb = arg;

	if (sb->len + size * nmemb > ANSWER_MAX)
		return 0;
	sb_add(sb, p, size * nmemb);
	return size * nmemb;
}

static void
ask_setup(struct ask *q, const char *ip, const char *port,
	  struct curl_slist *h, long timeout_ms)
{
	q->c = curl_easy_init();
	if (q->c == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "curl_easy_init");
		abort();
	}
	q->url = xasprintf("http://%s:%s/usage", ip, port);
	sb_init(&q->body);
	curl_easy_setopt(q->c, CURLOPT_URL, q->url);
	curl_easy_setopt(q->c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(q->c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(q->c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(q->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(q->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(q->c, CURLOPT_WRITEDATA, &q->body);
	curl_easy_setopt(q->c, CURLOPT_PRIVATE, q);
}

static void
run_multi(CURLM *m)
{
	int still = 0, left;
	CURLMsg *msg;

	for (;;) {
		if (curl_multi_perform(m, &still) != CURLM_OK)
			return;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct ask *q = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&q);
			q->rc = msg->data.result;
		}
		if (still == 0 ||
		    curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			return;
	}
}

/* One agent's answer appended to *v (n entries, cap *cap); 0, or -1
 * with why it failed added to fails ("<url>: <why>; "). */
static int
take(struct ask *q, struct spawner_usage **v, size_t *n, size_t *cap,
     struct strbuf *fails)
{
	struct spawner_usage *got = NULL;
	struct err e = { 0 };
	long status = 0;
	size_t k;

	curl_easy_getinfo(q->c, CURLINFO_RESPONSE_CODE, &status);
	if (q->rc != CURLE_OK || status != 200 ||
	    usage_agent_parse(q->body.buf, q->body.len, &got, &k, &e) < 0) {
		if (q->rc != CURLE_OK)
			sb_addf(fails, "%s: %s; ", q->url,
				curl_easy_strerror(q->rc));
		else if (status == 401 || status == 403)
			sb_addf(fails, "%s: refused the key (%ld); ", q->url,
				status);
		else if (status != 200)
			sb_addf(fails, "%s: answered %ld; ", q->url, status);
		else
			sb_addf(fails, "%s: %s; ", q->url, e.msg);
		return -1;
	}
	if (*n + k > *cap) {
		*cap = (*n + k) * 2;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	memcpy(*v + *n, got, k * sizeof(*got));
	*n += k;
	free(got);
	return 0;
}

int
spawner_usage_agents(const char *agents, const char *key, long timeout_ms,
		     struct spawner_usage **out, size_t *n, size_t *asked,
		     char **failures, struct err *e)
{
	char host[256], port[8], **ips, *auth;
	struct curl_slist *h = NULL;
	struct strbuf fails;
	struct ask *q;
	size_t k, cap = 16, failed = 0;
	CURLM *m;

	*out = NULL;
	*n = *asked = 0;
	*failures = NULL;
	if (usage_agents_split(agents, host, sizeof(host), port, sizeof(port),
			       e) < 0 || (ips = resolve(host, &k, e)) == NULL)
		return -1;
	m = curl_multi_init();
	if (m == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "curl_multi_init");
		abort();
	}
	auth = xasprintf("Authorization: token %s", key);
	h = curl_slist_append(h, auth);
	q = xcalloc(k + 1, sizeof(*q));
	for (size_t i = 0; i < k; i++) {
		ask_setup(&q[i], ips[i], port, h, timeout_ms);
		curl_multi_add_handle(m, q[i].c);
	}
	run_multi(m);
	*out = xcalloc(cap, sizeof(**out));
	sb_init(&fails);
	for (size_t i = 0; i < k; i++) {
		if (take(&q[i], out, n, &cap, &fails) < 0)
			failed++;
		curl_multi_remove_handle(m, q[i].c);
		curl_easy_cleanup(q[i].c);
		sb_release(&q[i].body);
		free(q[i].url);
		free(ips[i]);
	}
	*asked = k;
	if (failed > 0) {
		fails.len -= 2;		/* the last "; " */
		fails.buf[fails.len] = '\0';
		*failures = sb_detach(&fails, NULL);
	}
	sb_release(&fails);
	curl_multi_cleanup(m);
	curl_slist_free_all(h);
	free(auth);
	free(ips);
	free(q);
	return 0;
}
