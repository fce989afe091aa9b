/*
 * nodes.c - the nodes of the swarm as the hub shows them, and whether any
 * of them can take a server at all (the fail-fast check before a start).
 *
 * One GET /nodes and one GET /tasks per call:
 * a node's totals are its Description.Resources (CPUs, memory, generic
 * resources of the GPU kind, named or discrete); what is reserved on it is
 * the sum of the reservations of the tasks it holds. nodes_parse and
 * nodes_fit are pure (tests/unit/test_nodes.c); nodes_collect asks Docker.
 * Placement constraints are matched as Swarm does for node.id,
 * node.hostname, node.role and node.labels.<key> with == and != (values
 * without regard to case); any other key (engine labels, platform) counts
 * as matching, so the check never refuses what Swarm might place.
 * Ownership: the node array owns its label vectors and server arrays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "internal.h"

static json_t *
jobj(json_t *o, const char *a, const char *b)
{
	return json_object_get(json_object_get(o, a), b);
}

static void
copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* Generic resources (a Docker array) of kind: discrete values summed,
 * named ones counted. */
static long
generic_count(json_t *arr, const char *kind)
{
	json_t *g, *d;
	long n = 0;
	size_t i;

	json_array_foreach(arr, i, g) {
		d = json_object_get(g, "DiscreteResourceSpec");
		if (d && strcmp(jstr(d, "Kind") ? jstr(d, "Kind") : "",
				kind) == 0)
			n += (long)json_integer_value(json_object_get(d,
								      "Value"));
		d = json_object_get(g, "NamedResourceSpec");
		if (d && strcmp(jstr(d, "Kind") ? jstr(d, "Kind") : "",
				kind) == 0)
			n++;
	}
	return n;
}

/* {NanoCPUs, MemoryBytes, GenericResources} into r. */
static void
res_of(json_t *o, const char *kind, struct spawner_res *r)
{
	r->cpus = (double)json_integer_value(json_object_get(o, "NanoCPUs"))
	    / 1e9;
	r->mem_bytes = (int64_t)json_integer_value(json_object_get(o,
	    "MemoryBytes"));
	r->gpus = generic_count(json_object_get(o, "GenericResources"), kind);
}

static void
res_add(struct spawner_res *to, const struct spawner_res *r)
{
	to->cpus += r->cpus;
	to->mem_bytes += r->mem_bytes;
	to->gpus += r->gpus;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **
labels_of(json_t *labels)
{
	char **v = xcalloc(json_object_size(labels) + 1, sizeof(char *));
	const char *key;
	json_t *val;
	size_t n = 0;

	json_object_foreach(labels, key, val)
		v[n++] = xasprintf("%s=%s", key, json_is_string(val) ?
				   json_string_value(val) : "");
	qsort(v, n, sizeof(char *), cmp_str);
	return v;
}

static void
node_of(json_t *it, const char *kind, struct spawner_node *nd)
{
	copy(nd->id, sizeof(nd->id), jstr(it, "ID"));
	copy(nd->hostname, sizeof(nd->hostname),
	     jstr(it, "Description.Hostname"));
	copy(nd->role, sizeof(nd->role), jstr(it, "Spec.Role"));
	copy(nd->availability, sizeof(nd->availability),
	     jstr(it, "Spec.Availability"));
	copy(nd->state, sizeof(nd->state), jstr(it, "Status.State"));
	copy(nd->addr, sizeof(nd->addr), jstr(it, "Status.Addr"));
	nd->labels = labels_of(jobj(it, "Spec", "Labels"));
	res_of(jobj(it, "Description", "Resources"), kind, &nd->total);
}

/* A task that holds its node's resources: on a node and not ended (as
 * Swarm's scheduler counts it: until the task has actually stopped, also
 * while Swarm is ending it, e.g. on a drained node). */
static int
task_holds(json_t *t)
{
	static const char *const holding[] = { "assigned", "accepted",
		"preparing", "ready", "starting", "running", NULL };
	const char *st = jstr(t, "Status.State");
	const char *node = jstr(t, "NodeID");

	if (!st || !node || !*node)
		return 0;
	for (int i = 0; holding[i]; i++)
		if (strcmp(st, holding[i]) == 0)
			return 1;
	return 0;
}

static struct spawner_node *
find_node(struct spawner_node *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0)
			return &v[i];
	return NULL;
}

/* A label's value (label keys have dots: no jget). */
static const char *
label(json_t *labels, const char *key)
{
	json_t *v = json_object_get(labels, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
add_server(struct spawner_node *nd, json_t *t, const char *template,
	   const struct spawner_res *r)
{
	json_t *labels = jobj(json_object_get(t, "Spec"), "ContainerSpec",
			      "Labels");
	struct spawner_node_server *s;
	const char *user = label(labels, "swarmhub.user");
	const char *server = label(labels, "swarmhub.server");
	char *name;

	nd->servers = xrealloc(nd->servers, (nd->nservers + 1) *
			       sizeof(*nd->servers));
	s = &nd->servers[nd->nservers++];
	memset(s, 0, sizeof(*s));
	copy(s->user, sizeof(s->user), user);
	copy(s->server, sizeof(s->server), server);
	name = spec_service_name(template, user ? user : "", server);
	copy(s->service, sizeof(s->service), name);
	free(name);
	copy(s->state, sizeof(s->state), jstr(t, "Status.State"));
	copy(s->desired, sizeof(s->desired), jstr(t, "DesiredState"));
	s->reserved = *r;
}

static int
is_ours(json_t *t, const char *hub_id)
{
	json_t *labels = jobj(json_object_get(t, "Spec"), "ContainerSpec",
			      "Labels");
	const char *h = label(labels, "swarmhub.hub");

	return h && strcmp(h, hub_id) == 0 && label(labels, "swarmhub.user");
}

static void
add_tasks(struct spawner_node *v, size_t n, json_t *tasks,
	  const struct nodes_ctx *c)
{
	struct spawner_node *nd;
	struct spawner_res r;
	json_t *t;
	size_t i;

	json_array_foreach(tasks, i, t) {
		if (!task_holds(t))
			continue;
		nd = find_node(v, n, jstr(t, "NodeID"));
		if (!nd)
			continue;
		res_of(jobj(json_object_get(t, "Spec"), "Resources",
			    "Reservations"), c->gpu_kind, &r);
		res_add(&nd->used, &r);
		if (!is_ours(t, c->hub_id))
			continue;
		res_add(&nd->reserved, &r);
		add_server(nd, t, c->name_template, &r);
	}
}

static int
cmp_node(const void *a, const void *b)
{
	const struct spawner_node *x = a, *y = b;
	int mx = strcmp(x->role, "manager") == 0;
	int my = strcmp(y->role, "manager") == 0;

	if (mx != my)
		return my - mx;
	return strcmp(x->hostname, y->hostname);
}

static int
cmp_server(const void *a, const void *b)
{
	const struct spawner_node_server *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	return c ? c : strcmp(x->server, y->server);
}

int
nodes_parse(const char *nodes_json, size_t nlen, const char *tasks_json,
	    size_t tlen, const struct nodes_ctx *c,
	    struct spawner_node **out, size_t *n, struct err *e)
{
	json_t *nodes = json_loadb(nodes_json, nlen, 0, NULL);
	json_t *tasks = json_loadb(tasks_json, tlen, 0, NULL), *it;
	struct spawner_node *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!json_is_array(nodes) || !json_is_array(tasks)) {
		json_decref(nodes);
		json_decref(tasks);
		return err_set(e, ERR_UPSTREAM, "Docker's node or task list "
			       "is not a JSON array");
	}
	v = xcalloc(json_array_size(nodes) + 1, sizeof(*v));
	json_array_foreach(nodes, i, it)
		node_of(it, c->gpu_kind, &v[i]);
	*n = json_array_size(nodes);
	add_tasks(v, *n, tasks, c);
	qsort(v, *n, sizeof(*v), cmp_node);
	for (i = 0; i < *n; i++)
		if (v[i].nservers > 1)
			qsort(v[i].servers, v[i].nservers,
			      sizeof(*v[i].servers), cmp_server);
	json_decref(nodes);
	json_decref(tasks);
	*out = v;
	return 0;
}

void
spawner_nodes_free(struct spawner_node *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		strv_free(v[i].labels);
		free(v[i].servers);
	}
	free(v);
}

int
nodes_collect(struct docker *d, const struct nodes_ctx *c,
	      struct spawner_node **out, size_t *n, struct err *e)
{
	struct docker_resp rn = { 0 }, rt = { 0 };
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (docker_get(d, "/nodes", &rn, e) == 0 &&
	    docker_get(d, "/tasks", &rt, e) == 0)
		rc = nodes_parse(rn.body ? rn.body : "", rn.len,
				 rt.body ? rt.body : "", rt.len, c, out, n, e);
	docker_resp_release(&rn);
	docker_resp_release(&rt);
	return rc;
}

/* ---- constraints and the fail-fast check ----------------------------- */

/* "key==value" / "key != value" into key, op ('=' or '!') and value. */
static int
split_constraint(const char *c, char *key, size_t ksize, char *op,
		 char *val, size_t vsize)
{
	const char *eq = strstr(c, "=="), *ne = strstr(c, "!=");
	const char *at = eq && (!ne || eq < ne) ? eq : ne;
	size_t kn;

	if (!at)
		return -1;
	*op = at == eq ? '=' : '!';
	while (*c == ' ')
		c++;
	kn = (size_t)(at - c);
	while (kn > 0 && c[kn - 1] == ' ')
		kn--;
	snprintf(key, ksize, "%.*s", (int)kn, c);
	at += 2;
	while (*at == ' ')
		at++;
	snprintf(val, vsize, "%s", at);
	kn = strlen(val);
	while (kn > 0 && val[kn - 1] == ' ')
		val[--kn] = '\0';
	return 0;
}

/* The node's value of key: 1 and *have set (NULL: the node has no such
 * label), or 0 when the key is not one this check knows. */
static int
node_value(const struct spawner_node *nd, const char *key, const char **have)
{
	size_t kl;

	*have = NULL;
	if (strcmp(key, "node.id") == 0)
		*have = nd->id;
	else if (strcmp(key, "node.hostname") == 0)
		*have = nd->hostname;
	else if (strcmp(key, "node.role") == 0)
		*have = nd->role;
	else if (strncmp(key, "node.labels.", 12) == 0) {
		kl = strlen(key + 12);
		for (char **l = nd->labels; l && *l; l++)
			if (strncmp(*l, key + 12, kl) == 0 && (*l)[kl] == '=')
				*have = *l + kl + 1;
	} else {
		return 0;
	}
	return 1;
}

int
nodes_match(const struct spawner_node *nd, const char *constraint)
{
	char key[128], val[256], op;
	const char *have;
	int eq;

	if (split_constraint(constraint, key, sizeof(key), &op, val,
			     sizeof(val)) < 0 || !node_value(nd, key, &have))
		return 1;
	eq = have && strcasecmp(have, val) == 0;
	return op == '=' ? eq : !eq;
}

static int
matches_all(const struct spawner_node *nd, const char *const *cons,
	    size_t ncons)
{
	for (size_t i = 0; i < ncons; i++)
		if (!nodes_match(nd, cons[i]))
			return 0;
	return 1;
}

static struct spawner_res
free_of(const struct spawner_node *nd)
{
	struct spawner_res f = {
		nd->total.cpus - nd->used.cpus,
		nd->total.mem_bytes - nd->used.mem_bytes,
		nd->total.gpus - nd->used.gpus
	};

	return f;
}

static int
fits(const struct spawner_res *f, const struct spawner_res *ask)
{
	return (ask->cpus <= 0 || f->cpus + 1e-9 >= ask->cpus) &&
	       (ask->mem_bytes <= 0 || f->mem_bytes >= ask->mem_bytes) &&
	       (ask->gpus <= 0 || f->gpus >= ask->gpus);
}

static void
add_list(struct strbuf *sb, const char *const *cons, size_t ncons)
{
	for (size_t i = 0; i < ncons; i++) {
		sb_adds(sb, i ? ", " : "");
		sb_adds(sb, cons[i]);
	}
}

/* No node matches, or none of those that match can take tasks. */
static int
no_candidate(const struct spawner_node *v, size_t n,
	     const char *const *cons, size_t ncons, struct err *e)
{
	struct strbuf sb;
	size_t i, seen = 0;

	sb_init(&sb);
	for (i = 0; i < n; i++) {
		if (!matches_all(&v[i], cons, ncons))
			continue;
		sb_adds(&sb, seen++ ? ", " : "");
		sb_addf(&sb, "%s is %s", v[i].hostname, strcmp(v[i].state,
			"ready") ? v[i].state : v[i].availability);
	}
	if (seen)
		err_set(e, ERR_UPSTREAM, "no node can take this server now "
			"(%s)", sb.buf);
	else {
		sb_release(&sb);
		sb_init(&sb);
		sb_adds(&sb, "");
		add_list(&sb, cons, ncons);
		err_set(e, ERR_UPSTREAM, "no node matches the placement "
			"constraints (%s)", sb.buf);
	}
	sb_release(&sb);
	return -1;
}

static const char *
plural(double x)
{
	return x == 1 ? "" : "s";
}

enum res_kind { RES_GPUS, RES_CPUS, RES_MEM };

/* What nd has free of one resource (memory in GiB). */
static double
free_amount(const struct spawner_node *nd, enum res_kind k)
{
	struct spawner_res f = free_of(nd);

	return k == RES_GPUS ? (double)f.gpus : k == RES_CPUS ? f.cpus :
	    (double)f.mem_bytes / SPAWNER_GIB;
}

/* The candidate with the most of k free. */
static const struct spawner_node *
best_of(const struct spawner_node *const *cand, size_t nc, enum res_kind k)
{
	const struct spawner_node *best = cand[0];

	for (size_t i = 1; i < nc; i++)
		if (free_amount(cand[i], k) > free_amount(best, k))
			best = cand[i];
	return best;
}

/* Which resource no node has enough of, said with the best node's free
 * amount ("no node has 2 free GPUs; node gpu-1 has 1 free"); GPUs first,
 * then CPUs, then memory; else none has all three at once. */
static int
short_of(const struct spawner_node *const *cand, size_t nc,
	 const struct spawner_res *ask, const char *kind, struct err *e)
{
	double want[] = { (double)ask->gpus, ask->cpus,
			  (double)ask->mem_bytes / SPAWNER_GIB };
	const struct spawner_node *b;
	char what[80] = "";

	if (strcmp(kind, "gpu") != 0)
		snprintf(what, sizeof(what), " (resource '%s')", kind);
	b = best_of(cand, nc, RES_GPUS);
	if (want[RES_GPUS] > 0 && free_amount(b, RES_GPUS) < want[RES_GPUS])
		return err_set(e, ERR_UPSTREAM, "no node has %ld free GPU%s%s; "
			       "node %s has %g free", ask->gpus,
			       plural(want[RES_GPUS]), what, b->hostname,
			       free_amount(b, RES_GPUS));
	b = best_of(cand, nc, RES_CPUS);
	if (want[RES_CPUS] > 0 &&
	    free_amount(b, RES_CPUS) + 1e-9 < want[RES_CPUS])
		return err_set(e, ERR_UPSTREAM, "no node has %g free CPU%s; "
			       "node %s has %.3g free", want[RES_CPUS],
			       plural(want[RES_CPUS]), b->hostname,
			       free_amount(b, RES_CPUS));
	b = best_of(cand, nc, RES_MEM);
	if (want[RES_MEM] > 0 && free_amount(b, RES_MEM) < want[RES_MEM])
		return err_set(e, ERR_UPSTREAM, "no node has %.3g GiB of memory "
			       "free; node %s has %.3g GiB free", want[RES_MEM],
			       b->hostname, free_amount(b, RES_MEM));
	return err_set(e, ERR_UPSTREAM, "no node has %g CPU%s, %.3g GiB of "
		       "memory and %ld GPU%s free at once", want[RES_CPUS],
		       plural(want[RES_CPUS]), want[RES_MEM], ask->gpus,
		       plural(want[RES_GPUS]));
}

int
nodes_fit(const struct spawner_node *v, size_t n,
	  const char *const *cons, size_t ncons,
	  const struct spawner_res *ask, const char *gpu_kind, struct err *e)
{
	const struct spawner_node **cand = xcalloc(n + 1, sizeof(*cand));
	size_t nc = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		struct spawner_res f = free_of(&v[i]);

		if (strcmp(v[i].state, "ready") != 0 ||
		    strcmp(v[i].availability, "active") != 0 ||
		    !matches_all(&v[i], cons, ncons))
			continue;
		if (fits(&f, ask))
			goto done;
		cand[nc++] = &v[i];
	}
	if (nc == 0)
		rc = no_candidate(v, n, cons, ncons, e);
	else
		rc = short_of(cand, nc, ask, gpu_kind, e);
done:
	free(cand);
	return rc;
}
