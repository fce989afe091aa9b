/*
 * nodes.c - swarmhubctl nodes [--json]: the swarm's nodes.
 *
 * GET /hub/api/swarmhub/nodes, printed as one row per node: what this
 * hub's servers reserve of the node's CPUs, memory and GPUs against its
 * total, what is free after every task's reservations, the servers on it
 * and its labels. --json prints the hub's answer as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

static double
num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* "0.2/2" into buf. */
static const char *
pair(char *buf, size_t size, double used, double total)
{
	snprintf(buf, size, "%g/%g", used, total);
	return buf;
}

/* "alice,bob/gpu" (heap). */
static char *
servers_of(const json_t *node)
{
	struct strbuf sb;
	const json_t *s;
	size_t i;

	sb_init(&sb);
	sb_adds(&sb, "");
	json_array_foreach(json_object_get(node, "servers"), i, s) {
		const char *srv = json_str(s, "server");

		sb_adds(&sb, i ? "," : "");
		sb_adds(&sb, json_str(s, "user") ? json_str(s, "user") : "?");
		if (srv && *srv) {
			sb_addc(&sb, '/');
			sb_adds(&sb, srv);
		}
	}
	if (sb.len == 0)
		sb_adds(&sb, "-");
	return sb_detach(&sb, NULL);
}

/* "pool=gpu,zone=a" (heap). */
static char *
labels_of(const json_t *node)
{
	struct strbuf sb;
	const char *key;
	json_t *v;
	int first = 1;

	sb_init(&sb);
	sb_adds(&sb, "");
	json_object_foreach(json_object_get(node, "labels"), key, v) {
		sb_addf(&sb, "%s%s=%s", first ? "" : ",", key,
			json_is_string(v) ? json_string_value(v) : "");
		first = 0;
	}
	if (sb.len == 0)
		sb_adds(&sb, "-");
	return sb_detach(&sb, NULL);
}

static void
node_row(struct table *t, const json_t *nd)
{
	const json_t *res = json_object_get(nd, "reserved");
	const json_t *fr = json_object_get(nd, "free");
	char c[48], m[48], g[48], fc[24], fm[24], fg[24];
	char *servers = servers_of(nd), *labels = labels_of(nd);
	const char *row[12];

	row[0] = json_str(nd, "hostname");
	row[1] = json_str(nd, "role");
	row[2] = json_str(nd, "availability");
	row[3] = json_str(nd, "state");
	row[4] = pair(c, sizeof(c), num(res, "cpus"), num(nd, "cpus"));
	snprintf(m, sizeof(m), "%.1f/%.1f", num(res, "mem_bytes") / 1073741824.0,
		 num(nd, "mem_bytes") / 1073741824.0);
	row[5] = m;
	row[6] = pair(g, sizeof(g), num(res, "gpus"), num(nd, "gpus"));
	snprintf(fc, sizeof(fc), "%g", num(fr, "cpus"));
	snprintf(fm, sizeof(fm), "%.1f", num(fr, "mem_bytes") / 1073741824.0);
	snprintf(fg, sizeof(fg), "%g", num(fr, "gpus"));
	row[7] = fc;
	row[8] = fm;
	row[9] = fg;
	row[10] = servers;
	row[11] = labels;
	table_add(t, row);
	free(servers);
	free(labels);
}

int
cmd_nodes(struct ctl *c, const struct args *a, struct err *e)
{
	static const char *const head[] = { "HOSTNAME", "ROLE",
	    "AVAILABILITY", "STATE", "CPUS", "MEM_GIB", "GPUS", "FREE_CPUS",
	    "FREE_MEM_GIB", "FREE_GPUS", "SERVERS", "LABELS" };
	json_t *ans = NULL, *nodes, *nd;
	struct table t;
	size_t i;

	(void)a;
	if (rest_call(c, "GET", "/hub/api/swarmhub/nodes", NULL, &ans, NULL,
		      "list nodes", e) < 0)
		return -1;
	nodes = json_object_get(ans, "nodes");
	if (!json_is_array(nodes)) {
		json_decref(ans);
		return err_set(e, ERR_UPSTREAM, "list nodes: the answer has no "
			       "\"nodes\" list");
	}
	if (c->json) {
		json_print(ans);
		json_decref(ans);
		return 0;
	}
	table_init(&t, 12, head);
	json_array_foreach(nodes, i, nd)
		node_row(&t, nd);
	table_print(&t, stdout);
	table_release(&t);
	json_decref(ans);
	return 0;
}
