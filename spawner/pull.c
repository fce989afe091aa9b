/*
 * pull.c - images on the nodes: which reference a server runs (the
 * image's "pull" policy), why a node could not pull one, and one-shot jobs
 * that pull an image on every node or check which nodes have it.
 *
 * What Docker 20.10 does (daemon/cluster/executor/container): a node pulls
 * a task's image before every start unless the reference is an image ID
 * or a name@digest it has already; a failed pull is only logged on that
 * node, and the task is then rejected with "No such image" when the node
 * has no copy. So the policies map to references: "always" sends the tag
 * (every start pulls; a node whose pull fails runs its own copy),
 * "missing" pins name:tag@digest as the registry names it now (a node
 * that has that digest does not pull), "never" sends the image ID the
 * manager has (no node pulls). The registry is asked through the manager
 * (GET /distribution/<image>/json with X-Registry-Auth), the way the
 * docker CLI pins digests. Swarm reports no pull progress.
 * The jobs are services of mode GlobalJob (API 1.41): one task per node
 * that is ready and active, running "true"; labelled swarmhub.pull.
 * Ownership: returned strings and arrays are the caller's.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"

#define JOB_POLL_MS	300

static json_t *
get(struct docker *d, const char *path, const char *auth, struct err *e)
{
	struct docker_resp r = { 0 };
	json_t *j = NULL;

	if (docker_get_auth(d, path, auth, &r, e) == 0 &&
	    (j = json_loadb(r.body, r.len, 0, NULL)) == NULL)
		err_set(e, ERR_UPSTREAM, "Docker answered %s with something "
			"that is not JSON", path);
	docker_resp_release(&r);
	return j;
}

/* The registry's digest of image now (asked through the manager). */
static int
distribution(struct docker *d, const struct registry_auth *ra,
	     const char *image, char *digest, size_t size, struct err *e)
{
	char *auth = registry_header(ra, image);
	char *path = xasprintf("/distribution/%s/json", image);
	json_t *j = get(d, path, auth, e);
	const char *dg = json_string_value(json_object_get(
	    json_object_get(j, "Descriptor"), "digest"));
	int rc = 0;

	if (j && dg)
		snprintf(digest, size, "%s", dg);
	else if (j)
		rc = err_set(e, ERR_UPSTREAM, "the registry named no digest");
	else
		rc = -1;
	json_decref(j);
	free(path);
	free(auth);
	return rc;
}

/* The manager's image ID of image ("sha256:..."). */
static int
image_id(struct docker *d, const char *image, char *id, size_t size,
	 struct err *e)
{
	char *esc = docker_escape(d, image);
	char *path = xasprintf("/images/%s/json", esc);
	json_t *j = get(d, path, NULL, e);
	const char *v = json_string_value(json_object_get(j, "Id"));

	free(esc);
	free(path);
	if (v)
		snprintf(id, size, "%s", v);
	json_decref(j);
	return v ? 0 : -1;
}

/* Whether the hub asks the registry about image: it names its registry,
 * or REGISTRY_AUTH has credentials for it. Docker Hub names such as
 * swarmhub/notebook are often built on the nodes and in no registry. */
static int
ask_registry(const struct registry_auth *ra, const char *image)
{
	return registry_names_host(image) || registry_has_cred(ra, image);
}

char *
pull_ref(struct docker *d, const struct registry_auth *ra, const char *image,
	 enum pull_policy pull, char *why, size_t size, struct err *e)
{
	char digest[128], *base;
	struct err re = { 0 };

	why[0] = '\0';
	if (pull == PULL_NEVER) {
		if (image_id(d, image, digest, sizeof(digest), &re) == 0)
			return xstrdup(digest);
		err_set(e, ERR_UPSTREAM, "image '%.100s' has \"pull\": \"never\" "
		    "and is not on the manager node, where the hub looks up the "
		    "image ID every node must have: load it there, or use "
		    "\"pull\": \"missing\"", image);
		return NULL;
	}
	if (pull == PULL_ALWAYS || strchr(image, '@') ||
	    !ask_registry(ra, image))
		return xstrdup(image);
	if (distribution(d, ra, image, digest, sizeof(digest), &re) < 0) {
		snprintf(why, size, "%.180s", re.msg);
		return xstrdup(image);
	}
	base = registry_strip_digest(image);
	char *ref = xasprintf("%s@%s", base, digest);
	free(base);
	return ref;
}

/* Docker's text, without the request it made ("Head \"https://...\": "). */
static const char *
short_reason(const char *msg)
{
	const char *p = strstr(msg, "\": ");

	return p && (strncmp(msg, "Head ", 5) == 0 ||
		     strncmp(msg, "Get ", 4) == 0) ? p + 3 : msg;
}

static const char *
nz(const char *s)
{
	return s ? s : "";
}

static int
has(const char *s, const char *word)
{
	return strstr(s, word) != NULL;
}

char *
pull_explain(struct docker *d, const struct registry_auth *ra,
	     const char *image, const char *hostname)
{
	char digest[128], *host = registry_host(image);
	const char *why;
	struct err re = { 0 };
	char *m;

	if (!ask_registry(ra, image))	/* as pull_ref: the registry is not
					 * asked about such names */
		m = xasprintf("image '%s' not found on node %s", image,
			      hostname);
	else if (distribution(d, ra, image, digest, sizeof(digest), &re) == 0)
		m = xasprintf("image '%s' could not be pulled on node %s though "
		    "the registry has it: the node may be out of disk space or "
		    "unable to reach %s (see dockerd's log there)", image,
		    hostname, host);
	else if (why = short_reason(re.msg), has(why, "unauthorized") ||
		 has(why, "denied") || has(why, "no basic auth") ||
		 has(why, "authentication required"))
		m = xasprintf("unauthorized: image '%s' could not be pulled on "
		    "node %s (%.80s): %s", image, hostname, why,
		    registry_has_cred(ra, image) ? "check its credentials in "
		    "SWARMHUB_REGISTRY_AUTH" : "SWARMHUB_REGISTRY_AUTH has no "
		    "credentials for this registry");
	else if (has(why, "manifest unknown") || has(why, "not found") ||
		 has(why, "does not exist"))
		m = xasprintf("image '%s' not found: the registry %s has no such "
		    "image or tag (%.80s)", image, host, why);
	else	/* no answer from the registry: the image may be in none */
		m = xasprintf("image '%s' not found on node %s, and its registry "
		    "%s could not be asked (%.100s)", image, hostname, host,
		    why);
	free(host);
	return m;
}

void
pull_node_name(struct docker *d, const char *node_id, char *buf, size_t size)
{
	char *path = xasprintf("/nodes/%s", node_id);
	struct err e = { 0 };
	json_t *n = get(d, path, NULL, &e);
	const char *h = json_string_value(json_object_get(json_object_get(n,
	    "Description"), "Hostname"));

	snprintf(buf, size, "%s", h ? h : node_id);
	json_decref(n);
	free(path);
}

/* ---- jobs on every node ----------------------------------------------- */
struct job {
	struct spawner_image_nodes *out;
	char ref[300];		/* what the job runs */
	char id[80];		/* its service */
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int
job_create(struct docker *d, const struct registry_auth *ra,
	   const char *hub_id, struct job *j, int check, int i,
	   struct err *e)
{
	char *name = xasprintf("swarmhub-%s-%lx-%d", check ? "check" : "pull",
			       (unsigned long)time(NULL), i);
	char *auth = check ? NULL : registry_header(ra, j->ref);
	json_t *spec = json_pack("{s:s, s:{s:s, s:s}, s:{s:{s:s, s:[s]}, "
	    "s:{s:s}}, s:{s:{}}}", "Name", name, "Labels", "swarmhub.pull",
	    hub_id, "swarmhub.image", j->out->image, "TaskTemplate",
	    "ContainerSpec", "Image", j->ref, "Command", "true",
	    "RestartPolicy", "Condition", "none", "Mode", "GlobalJob");
	char *body = json_dumps(spec, JSON_COMPACT);
	struct docker_resp r = { 0 };
	json_t *ans = NULL;
	int rc = docker_post_auth(d, "/services/create", body, auth, &r, e);

	if (rc == 0 && (ans = json_loadb(r.body, r.len, 0, NULL)) != NULL)
		snprintf(j->id, sizeof(j->id), "%s", nz(json_string_value(
		    json_object_get(ans, "ID"))));
	json_decref(ans);
	docker_resp_release(&r);
	json_decref(spec);
	free(body);
	free(name);
	free(auth);
	return rc;
}

/* Node i of the answer of GET /nodes into o; 1 when a job runs there. */
static int
node_fill(json_t *n, struct spawner_node_image *o)
{
	const char *st = json_string_value(json_object_get(json_object_get(n,
	    "Status"), "State"));
	const char *av = json_string_value(json_object_get(json_object_get(n,
	    "Spec"), "Availability"));
	const char *h;

	snprintf(o->node_id, sizeof(o->node_id), "%s",
		 nz(json_string_value(json_object_get(n, "ID"))));
	h = json_string_value(json_object_get(json_object_get(n,
	    "Description"), "Hostname"));
	snprintf(o->hostname, sizeof(o->hostname), "%s", h ? h : o->node_id);
	if (st && strcmp(st, "ready") != 0) {
		snprintf(o->message, sizeof(o->message), "not checked: the "
			 "node is %s", st);
		return 0;
	}
	if (av && strcmp(av, "active") != 0) {
		snprintf(o->message, sizeof(o->message), "not checked: the "
			 "node is %s (no task runs there)", av);
		return 0;
	}
	snprintf(o->message, sizeof(o->message), "no answer yet");
	return 1;
}

/* The job's tasks into its nodes; 1 when every node has an outcome. */
static int
job_poll(struct docker *d, struct job *j, const int *eligible)
{
	char *f = xasprintf("{\"service\":[\"%s\"]}", j->id);
	char *esc = docker_escape(d, f);
	char *path = xasprintf("/tasks?filters=%s", esc);
	struct err e = { 0 };
	json_t *a = get(d, path, NULL, &e), *t;
	size_t i, k, left = 0;

	json_array_foreach(a, i, t) {
		const char *node = json_string_value(json_object_get(t,
		    "NodeID"));
		json_t *s = json_object_get(t, "Status");
		const char *st = json_string_value(json_object_get(s, "State"));
		const char *er = json_string_value(json_object_get(s, "Err"));

		for (k = 0; node && st && k < j->out->nnodes; k++) {
			struct spawner_node_image *o = &j->out->nodes[k];

			if (strcmp(o->node_id, node) != 0 || o->ok)
				continue;
			if (!strcmp(st, "complete") || !strcmp(st, "failed")) {
				o->ok = o->done = 1;	/* a container ran */
				snprintf(o->message, sizeof(o->message), "ok");
			} else if (!strcmp(st, "rejected")) {
				o->done = 1;
				snprintf(o->message, sizeof(o->message), "%s",
					 er ? er : "rejected");
			}
		}
	}
	for (k = 0; k < j->out->nnodes; k++)
		left += eligible[k] && !j->out->nodes[k].done;
	json_decref(a);
	free(path);
	free(esc);
	free(f);
	return left == 0;
}

/* Rejections in words: what the node lacks, and for a pull why. */
static void
job_words(struct docker *d, const struct registry_auth *ra, struct job *j,
	  int check)
{
	for (size_t k = 0; k < j->out->nnodes; k++) {
		struct spawner_node_image *o = &j->out->nodes[k];
		char *m;

		if (o->ok || !o->done || !strstr(o->message, "No such image"))
			continue;
		if (check)
			m = xasprintf("lacks %s (the manager's %.19s)",
				      j->out->image, j->ref);
		else
			m = pull_explain(d, ra, j->out->image, o->hostname);
		snprintf(o->message, sizeof(o->message), "%s", m);
		free(m);
	}
}

static void
remove_job(struct docker *d, const struct job *j)
{
	struct err e = { 0 };
	char *path;

	if (!*j->id)
		return;
	path = xasprintf("/services/%s", j->id);
	docker_delete(d, path, NULL, &e);
	free(path);
}

/* The reference a job runs for image: check: the manager's image ID;
 * pull: the registry's digest when it is asked (as pull_ref "missing"). */
static int
job_ref(struct docker *d, const struct registry_auth *ra, struct job *j,
	int check)
{
	struct spawner_image_nodes *o = j->out;
	char why[200], *ref;
	struct err e = { 0 };

	if (check) {
		if (image_id(d, o->image, j->ref, sizeof(j->ref), &e) == 0)
			return 0;
		snprintf(o->note, sizeof(o->note), "not on the manager node, "
		    "so the other nodes cannot be compared with it without "
		    "pulling");
		return -1;
	}
	ref = pull_ref(d, ra, o->image, PULL_MISSING, why, sizeof(why), &e);
	snprintf(j->ref, sizeof(j->ref), "%s", ref);
	if (strchr(ref, '@') && !strchr(o->image, '@'))
		snprintf(o->digest, sizeof(o->digest), "%s",
			 strchr(ref, '@') + 1);
	else if (*why)
		snprintf(o->note, sizeof(o->note), "the registry could not "
			 "be asked (%.150s): a node whose pull fails runs its "
			 "own copy", short_reason(why));
	free(ref);
	return 0;
}

int
pull_jobs(struct docker *d, const struct registry_auth *ra,
	  const char *hub_id, struct spawner_image_nodes *v, size_t n,
	  int check, long timeout_s, struct err *e)
{
	json_t *nodes = get(d, "/nodes", NULL, e), *it;
	struct job *jobs = xcalloc(n + 1, sizeof(*jobs));
	size_t nn = json_array_size(nodes), i, k;
	int *eligible = xcalloc(nn + 1, sizeof(*eligible));
	int64_t until = time_mono_ms() + timeout_s * 1000;
	int rc = nodes ? 0 : -1, all;

	for (i = 0; rc == 0 && i < n; i++) {
		jobs[i].out = &v[i];
		v[i].nodes = xcalloc(nn + 1, sizeof(*v[i].nodes));
		v[i].nnodes = nn;
		json_array_foreach(nodes, k, it)
			eligible[k] = node_fill(it, &v[i].nodes[k]);
		if (job_ref(d, ra, &jobs[i], check) == 0 &&
		    job_create(d, ra, hub_id, &jobs[i], check, (int)i, e) < 0)
			snprintf(v[i].error, sizeof(v[i].error), "%s", e->msg);
	}
	do {
		all = 1;
		for (i = 0; rc == 0 && i < n; i++)
			if (*jobs[i].id)
				all &= job_poll(d, &jobs[i], eligible);
		if (!all)
			sleep_ms(JOB_POLL_MS);
	} while (rc == 0 && !all && time_mono_ms() < until);
	for (i = 0; rc == 0 && i < n; i++) {
		for (k = 0; k < v[i].nnodes; k++)
			if (eligible[k] && !v[i].nodes[k].done && *jobs[i].id)
				snprintf(v[i].nodes[k].message,
				    sizeof(v[i].nodes[k].message), "no outcome "
				    "after %ld s (still pulling?)", timeout_s);
		job_words(d, ra, &jobs[i], check);
		remove_job(d, &jobs[i]);
	}
	json_decref(nodes);
	free(eligible);
	free(jobs);
	return rc;
}
