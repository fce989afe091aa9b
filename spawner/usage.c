/*
 * usage.c - what user servers actually use, from Docker's container stats.
 *
 * One GET /containers/json lists the running containers of this hub on the
 * node the hub talks to (they carry the swarmhub.* labels of the service
 * spec); one GET /containers/<id>/stats?stream=false&one-shot=true per
 * container gives a single sample without Docker's one-second wait for a
 * second one. A sample holds cumulative counters; rates are the caller's
 * business (two samples, spawner_usage_cpu).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static json_t *
object_path(json_t *o, const char *a, const char *b, const char *c)
{
	o = json_object_get(o, a);
	if (b)
		o = json_object_get(o, b);
	if (c)
		o = json_object_get(o, c);
	return o;
}

static int
counter(json_t *v, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int
usage_parse(const char *json, size_t len, struct spawner_usage *u,
	    struct err *e)
{
	json_t *j = json_loadb(json, len, 0, NULL), *mem, *stats;
	const char *read;
	int64_t cpu = 0, inactive = 0;
	int rc = -1;

	if (!json_is_object(j)) {
		err_set(e, ERR_UPSTREAM, "Docker's container stats are not a "
			"JSON object");
		goto out;
	}
	read = json_string_value(json_object_get(j, "read"));
	if (read == NULL || time_parse_iso8601(read, &u->read_ms) < 0 ||
	    u->read_ms <= 0) {
		err_set(e, ERR_UPSTREAM, "Docker's container stats have no "
			"sample time");
		goto out;
	}
	if (counter(object_path(j, "cpu_stats", "cpu_usage", "total_usage"),
		    &cpu) < 0) {
		err_set(e, ERR_UPSTREAM, "Docker's container stats have no "
			"CPU counter");
		goto out;
	}
	u->cpu_ns = cpu;
	mem = json_object_get(j, "memory_stats");
	if (counter(json_object_get(mem, "usage"), &u->mem_bytes) < 0) {
		err_set(e, ERR_UPSTREAM, "Docker's container stats have no "
			"memory usage");
		goto out;
	}
	/* page cache the kernel can drop is not "used": cgroup v2 calls it
	 * inactive_file, v1 total_inactive_file (what docker stats does) */
	stats = json_object_get(mem, "stats");
	if (counter(json_object_get(stats, "inactive_file"), &inactive) < 0 &&
	    counter(json_object_get(stats, "total_inactive_file"),
		    &inactive) < 0)
		inactive = 0;
	u->mem_bytes -= inactive < u->mem_bytes ? inactive : u->mem_bytes;
	if (counter(json_object_get(mem, "limit"), &u->mem_limit) < 0)
		u->mem_limit = 0;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* Label value of a /containers/json entry into buf (empty when absent). */
static void
label(json_t *c, const char *key, char *buf, size_t size)
{
	const char *v = json_string_value(object_path(c, "Labels", key, NULL));

	snprintf(buf, size, "%s", v ? v : "");
}

int
usage_collect(struct docker *d, const char *hub_id,
	      struct spawner_usage **out, size_t *n, struct err *e)
{
	char *f = xasprintf("{\"label\":[\"swarmhub.hub=%s\"],"
			    "\"status\":[\"running\"]}", hub_id);
	char *esc = docker_escape(d, f);
	char *path = xasprintf("/containers/json?filters=%s", esc);
	struct docker_resp r = { 0 };
	json_t *a = NULL, *c;
	size_t i;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (docker_get(d, path, &r, e) < 0)
		goto out;
	a = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	if (!json_is_array(a)) {
		err_set(e, ERR_UPSTREAM, "Docker's container list is not a "
			"JSON array");
		goto out;
	}
	*out = xcalloc(json_array_size(a) + 1, sizeof(**out));
	json_array_foreach(a, i, c) {
		struct spawner_usage *u = &(*out)[*n];
		const char *id = json_string_value(json_object_get(c, "Id"));
		struct docker_resp s = { 0 };
		struct err se = { 0 };
		char *spath;

		if (id == NULL || strlen(id) >= sizeof(u->container))
			continue;
		label(c, "swarmhub.user", u->user, sizeof(u->user));
		label(c, "swarmhub.server", u->server, sizeof(u->server));
		if (u->user[0] == '\0')
			continue;
		snprintf(u->container, sizeof(u->container), "%s", id);
		spath = xasprintf("/containers/%s/stats?stream=false&"
				  "one-shot=true", id);
		/* a container that stopped since the list: skip it */
		if (docker_get(d, spath, &s, &se) == 0 &&
		    usage_parse(s.body ? s.body : "", s.len, u, &se) == 0)
			(*n)++;
		else
			memset(u, 0, sizeof(*u));
		docker_resp_release(&s);
		free(spath);
	}
	rc = 0;
out:
	json_decref(a);
	docker_resp_release(&r);
	free(f);
	free(esc);
	free(path);
	return rc;
}

double
spawner_usage_cpu(const struct spawner_usage *prev,
		  const struct spawner_usage *cur)
{
	if (prev == NULL || strcmp(prev->container, cur->container) != 0 ||
	    cur->read_ms <= prev->read_ms || cur->cpu_ns < prev->cpu_ns)
		return -1;
	return (double)(cur->cpu_ns - prev->cpu_ns) /
	       ((double)(cur->read_ms - prev->read_ms) * 1e6);
}
