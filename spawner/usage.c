/*
 * usage.c - what user servers actually use, from Docker's container stats.
 *
 * One GET /containers/json lists the running containers of this hub on the
 * node the hub talks to (they carry the swarmhub.* labels of the service
 * spec); one GET /containers/<id>/stats?stream=false&one-shot=true per
 * container gives a single sample (without the second one Docker would
 * otherwise wait a second for). Docker still answers each at its stats
 * collector's next tick, so they are asked all at once
 * (docker_get_many). A sample holds cumulative counters; rates are the caller's
 * business (two samples, spawner_usage_cpu).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define USAGE_PARALLEL 128L

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
	struct docker_resp r = { 0 }, *resps = NULL;
	struct spawner_usage *v = NULL;
	struct err *errs = NULL;
	char **paths = NULL;
	json_t *a = NULL, *c;
	size_t i, m = 0;
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
	v = xcalloc(json_array_size(a) + 1, sizeof(*v));
	paths = xcalloc(json_array_size(a) + 1, sizeof(*paths));
	json_array_foreach(a, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));

		if (id == NULL || strlen(id) >= sizeof(v[m].container))
			continue;
		label(c, "swarmhub.user", v[m].user, sizeof(v[m].user));
		label(c, "swarmhub.server", v[m].server, sizeof(v[m].server));
		if (v[m].user[0] == '\0')
			continue;
		snprintf(v[m].container, sizeof(v[m].container), "%s", id);
		paths[m++] = xasprintf("/containers/%s/stats?stream=false&"
				       "one-shot=true", id);
	}
	/* Docker answers a stats request at its collector's next tick (once
	 * a second), for everyone waiting: asked one after the other, 200
	 * containers would take 200 s, 32 at a time 7 ticks; up to
	 * USAGE_PARALLEL share one tick (a node of the scale benchmark
	 * holds about 170) */
	resps = xcalloc(m + 1, sizeof(*resps));
	errs = xcalloc(m + 1, sizeof(*errs));
	docker_get_many(d, (const char *const *)paths, m, USAGE_PARALLEL,
			resps, errs);
	*out = v;
	for (i = 0; i < m; i++) {
		struct err pe = { 0 };

		/* a container that stopped since the list: left out */
		if (errs[i].code == ERR_OK &&
		    usage_parse(resps[i].body, resps[i].len, &v[i], &pe) == 0)
			v[(*n)++] = v[i];
		docker_resp_release(&resps[i]);
	}
	v = NULL;
	rc = 0;
out:
	for (i = 0; paths && i < m; i++)
		free(paths[i]);
	free(paths);
	free(resps);
	free(errs);
	free(v);
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
