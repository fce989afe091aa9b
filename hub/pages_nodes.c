/*
 * pages_nodes.c - /hub/admin/nodes: the swarm's nodes for admins.
 *
 * One card per node (spawner_nodes: one GET /nodes and one GET /tasks per
 * view): role, availability, state, labels; CPUs, memory and GPUs in
 * total, reserved by this hub's servers, by other tasks, and free, each
 * with a bar (<meter>: the stylesheet allows no inline styles); and the
 * servers on it. A drained node that still holds servers says so: Swarm
 * moves their tasks off, and with restart policy none they stop (the
 * reconcile reports them stopped with the reason).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

static void
add_gib(struct strbuf *sb, int64_t bytes)
{
	sb_addf(sb, "%.1f GiB", (double)bytes / SPAWNER_GIB);
}

static void
add_amount(struct strbuf *sb, int mem, double v)
{
	if (mem)
		add_gib(sb, (int64_t)v);
	else
		pages_add_num(sb, (double)(long long)(v * 100 + (v < 0 ? -0.5 :
			      0.5)) / 100);
}

/* One row: total, reserved by swarmhub, by others, free, and the bar. */
static void
res_row(struct strbuf *sb, const char *what, const char *key, int mem,
	double total, double ours, double all)
{
	double others = all - ours, left = total - all;

	sb_addf(sb, "<tr data-res=\"%s\"><th scope=\"row\">%s</th><td "
		"class=\"total\">", key, what);
	add_amount(sb, mem, total);
	sb_adds(sb, "</td><td class=\"ours\">");
	add_amount(sb, mem, ours);
	sb_adds(sb, "</td><td class=\"others\">");
	add_amount(sb, mem, others > 0 ? others : 0);
	sb_adds(sb, "</td><td class=\"free\">");
	add_amount(sb, mem, left > 0 ? left : 0);
	sb_addf(sb, "</td><td><meter class=\"bar\" min=\"0\" max=\"%.17g\" "
		"value=\"%.17g\" high=\"%.17g\" optimum=\"0\" title=\"%s: "
		"%.0f%% reserved\">%.0f%%</meter></td></tr>", total > 0 ?
		total : 1, all > 0 ? all : 0, total * 0.9, what, total > 0 ?
		100 * all / total : 0, total > 0 ? 100 * all / total : 0);
}

static void
res_table(struct strbuf *sb, const struct spawner_node *nd)
{
	sb_adds(sb, "<div class=\"table-wrap\"><table class=\"resources\">"
		"<thead><tr><td></td><th scope=\"col\">Total</th><th scope="
		"\"col\">Reserved by swarmhub&rsquo;s servers</th><th scope="
		"\"col\">Reserved by other tasks</th><th scope=\"col\">Free"
		"</th><th scope=\"col\">Reserved</th></tr></thead><tbody>");
	res_row(sb, "CPUs", "cpus", 0, nd->total.cpus, nd->reserved.cpus,
		nd->used.cpus);
	res_row(sb, "Memory", "mem_bytes", 1, (double)nd->total.mem_bytes,
		(double)nd->reserved.mem_bytes, (double)nd->used.mem_bytes);
	res_row(sb, "GPUs", "gpus", 0, (double)nd->total.gpus,
		(double)nd->reserved.gpus, (double)nd->used.gpus);
	sb_adds(sb, "</tbody></table></div>");
}

static void
servers_table(struct strbuf *sb, const struct spawner_node *nd)
{
	if (nd->nservers == 0) {
		sb_adds(sb, "<p class=\"muted no-servers\">No servers of this "
			"hub on this node.</p>");
		return;
	}
	sb_adds(sb, "<div class=\"table-wrap\"><table class=\"servers\"><thead>"
		"<tr><th scope=\"col\">User</th><th scope=\"col\">Server</th>"
		"<th scope=\"col\">Task</th><th scope=\"col\">CPUs</th><th "
		"scope=\"col\">Memory</th><th scope=\"col\">GPUs</th></tr>"
		"</thead><tbody>");
	for (size_t i = 0; i < nd->nservers; i++) {
		const struct spawner_node_server *s = &nd->servers[i];

		sb_adds(sb, "<tr class=\"server\" data-user=\"");
		sb_add_html(sb, s->user);
		sb_adds(sb, "\"><td>");
		sb_add_html(sb, s->user);
		sb_adds(sb, "</td><td>");
		sb_add_html(sb, *s->server ? s->server : "(default)");
		sb_adds(sb, "</td><td>");
		sb_add_html(sb, s->state);
		if (strcmp(s->desired, "running") != 0)
			sb_adds(sb, " (Swarm is ending it)");
		sb_adds(sb, "</td><td>");
		pages_add_num(sb, s->reserved.cpus);
		sb_adds(sb, "</td><td>");
		add_gib(sb, s->reserved.mem_bytes);
		sb_addf(sb, "</td><td>%ld</td></tr>", s->reserved.gpus);
	}
	sb_adds(sb, "</tbody></table></div>");
}

static void
node_head(struct strbuf *sb, const struct spawner_node *nd)
{
	sb_adds(sb, "<h2>");
	sb_add_html(sb, nd->hostname);
	sb_adds(sb, "</h2><p class=\"node-meta\"><span class=\"role\">");
	sb_add_html(sb, nd->role);
	sb_adds(sb, "</span> &middot; availability <strong class=\"avail\">");
	sb_add_html(sb, nd->availability);
	sb_adds(sb, "</strong> &middot; state <strong class=\"state\">");
	sb_add_html(sb, nd->state);
	sb_adds(sb, "</strong> &middot; <code>");
	sb_add_html(sb, nd->id);
	sb_adds(sb, "</code></p><p class=\"labels\">Labels: ");
	if (!nd->labels || !*nd->labels)
		sb_adds(sb, "none");
	for (char **l = nd->labels; l && *l; l++) {
		sb_adds(sb, l == nd->labels ? "<code>" : ", <code>");
		sb_add_html(sb, *l);
		sb_adds(sb, "</code>");
	}
	sb_adds(sb, "</p>");
}

static void
node_card(struct strbuf *sb, const struct spawner_node *nd)
{
	sb_adds(sb, "<section class=\"card node\" data-node=\"");
	sb_add_html(sb, nd->hostname);
	sb_adds(sb, "\" data-node-id=\"");
	sb_add_html(sb, nd->id);
	sb_adds(sb, "\">");
	node_head(sb, nd);
	if (strcmp(nd->availability, "drain") == 0 && nd->nservers > 0)
		sb_addf(sb, "<p class=\"notice drain\" role=\"status\">This node "
			"is drained: Swarm is moving its tasks off. Its %zu "
			"server%s will stop (restart policy none) and are "
			"reported stopped with the reason.</p>", nd->nservers,
			nd->nservers == 1 ? "" : "s");
	else if (strcmp(nd->availability, "drain") == 0)
		sb_adds(sb, "<p class=\"notice drain\" role=\"status\">This "
			"node is drained: no server is placed on it, and the "
			"servers that ran on it were stopped (restart policy "
			"none; each is reported stopped with the reason).</p>");
	else if (strcmp(nd->state, "ready") != 0)
		sb_adds(sb, "<p class=\"notice down\">This node is not ready: "
			"its servers are reported stopped.</p>");
	res_table(sb, nd);
	sb_adds(sb, "<h3>Servers on this node</h3>");
	servers_table(sb, nd);
	sb_adds(sb, "</section>");
}

static void
node_cards(struct strbuf *sb, struct hub *h)
{
	struct spawner_node *v;
	struct err e = { 0 };
	size_t n;

	if (spawner_nodes(h->spawner, &v, &n, &e) < 0) {
		sb_adds(sb, "<p class=\"error\" id=\"nodes-error\">Cannot list "
			"the nodes: ");
		sb_add_html(sb, e.msg);
		sb_adds(sb, "</p>");
		return;
	}
	sb_addf(sb, "<p class=\"muted\">%zu node%s. GPUs are generic resources "
		"of kind <code>", n, n == 1 ? "" : "s");
	sb_add_html(sb, spawner_gpu_kind(h->spawner));
	sb_adds(sb, "</code> (<code>SWARMHUB_GPU_RESOURCE</code>). Reserved: "
		"what the tasks on the node reserve (CPU reservations are the "
		"limit &times; <code>cpu_reservation_ratio</code>).</p>");
	for (size_t i = 0; i < n; i++)
		node_card(sb, &v[i]);
	spawner_nodes_free(v, n);
}

void
pages_nodes(struct req *r)
{
	struct strbuf sb;
	struct who w;

	r->handler = "admin_nodes";
	if (pages_signed_in_admin(r, &w) < 0)
		return;
	sb_init(&sb);
	pages_begin(&sb, r->hub, "Nodes", &w, PAGE_WIDE);
	sb_adds(&sb, "<h1>Nodes</h1><p><a href=\"/hub/admin\">Back to the "
		"administration page</a></p>");
	/* actions on every node: pulling the profiles' images */
	sb_adds(&sb, "<div id=\"node-actions\">");
	if (r->hub->spawner)
		pages_images_block(&sb);
	sb_adds(&sb, "</div>");
	if (r->hub->spawner == NULL)
		sb_adds(&sb, "<p class=\"notice\" id=\"no-spawner\">Spawning is "
			"not set up on this hub (SWARMHUB_NETWORK): there are "
			"no nodes to show.</p>");
	else
		node_cards(&sb, r->hub);
	pages_end(r, &sb, 200);
}
