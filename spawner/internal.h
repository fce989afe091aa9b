/*
 * internal.h - what the files of spawner/ share; never included outside spawner/.
 *
 *   profiles.c  parse and validate the profiles JSON; options and quotas
 *   spec.c      build the service-create JSON (pure), name escaping, turn
 *               Docker task errors into sentences (pure)
 *   docker.c    the Docker Engine API over libcurl (unix socket or TLS)
 *   home_local.c / home_nfs.c   struct home_ops implementations
 *   home.c                      their shared name checks
 *   spawner.c   spawner.h: start/stop/locate/list, readiness, progress
 *   usage.c     container stats: what running servers use
 *   nodes.c     the swarm's nodes, what is reserved on them, and whether
 *               any can take a server (fail fast)
 *   agents.c    usage from every node: the agent's sampler and the hub asking
 *               every agent at once
 *   registry.c  REGISTRY_AUTH and image references (pure)
 *   pull.c      which reference a server runs (pull policy), why a node
 *               could not pull, jobs that pull or check images on every node
 */
#ifndef SWARMHUB_SPAWNER_INTERNAL_H
#define SWARMHUB_SPAWNER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include "spawner.h"

/* ---- profiles.c ------------------------------------------------------ */
enum pull_policy { PULL_MISSING = 0, PULL_ALWAYS, PULL_NEVER };
struct image_def {
	char *key;		/* "scipy" */
	char *image;		/* "jupyter/scipy-notebook:2024-05-20" */
	char *description;
	char **cmd;		/* NULL-terminated; {base_url} {port} expanded by spec.c */
	size_t ncmd;
	char **env;		/* NULL-terminated "K=V" (optional "env" object) */
	size_t nenv;
	int port;		/* default 8888 */
	struct spawner_image info;	/* kind, default_url, prefix, ... */
	enum pull_policy pull;	/* "pull": missing (default), always, never */
};

struct range {
	double min, max, def;
};

struct quota {
	long servers;		/* -1: no limit (key absent) */
	double cpu, mem_gb;	/* < 0: no limit */
	long gpus;		/* -1: no limit */
};

/* "pools": a named set of constraints a user may pick, with its own quota
 * for the group (all -1 when the entry has none). */
struct pool_def {
	char *name;
	char **constraints;	/* NULL-terminated */
	size_t nconstraints;
	struct quota quota;
};

struct profile_def {
	char *name;		/* group name or "default" */
	char **images;		/* keys into images, NULL-terminated */
	size_t nimages;
	struct range cpu, mem_gb;
	long gpus;		/* max GPUs a user may ask for (0: none) */
	char **constraints;	/* placement constraints, NULL-terminated */
	size_t nconstraints;
	struct quota quota;
	struct pool_def *pools;	/* "pools", in file order */
	size_t npools;
	long cull_timeout_s;	/* optional "cull_timeout"; 0: hub default */
};

struct profiles {
	double cpu_reservation_ratio;	/* default 1.0 */
	struct image_def *images;
	size_t nimages;
	struct profile_def *profiles;
	size_t nprofiles;
};

/* Parses the file; unknown keys, wrong types, missing images, min > max,
 * default outside [min, max]: ERR_INVALID naming the key path
 * ("profiles.datascience.cpu.max: must be a number"). */
int profiles_load(const char *path, struct profiles **out, struct err *e);
int profiles_parse(const char *json, size_t len, struct profiles **out,
		   struct err *e);
void profiles_free(struct profiles *p);
const struct profile_def *profiles_get(const struct profiles *p,
				       const char *name);
const struct image_def *profiles_image(const struct profiles *p,
				       const char *key);
/* The pool of that name in pd, NULL when none (name "" or NULL: none). */
const struct pool_def *profiles_pool(const struct profile_def *pd,
				     const char *name);
/* spawner_options / spawner_quota_check / spawner_profiles_json on a
 * given set of profiles (spawner.c takes the lock and calls these). */
int profiles_options(const struct profiles *p, const char *const *groups,
		     size_t ngroups, const char *options_json,
		     struct spawn_opts *out, struct err *e);
int profiles_quota_check(const struct profiles *p, const struct spawn_opts *o,
			 const struct spawn_opts *in_use, size_t n,
			 struct err *e);
char *profiles_json(const struct profiles *p, const char *const *groups,
		    size_t ngroups);

/* ---- spec.c ---------------------------------------------------------- */
/* DockerSpawner-style escaping: [a-z0-9] kept, anything else "-xx" (hex);
 * the result fits Docker's 63-character service names. Heap string. */
char *spec_escape(const char *s);
/* The service name of user's server (server "" or NULL: the default one)
 * from SERVICE_NAME_TEMPLATE t: {user} and {server} replaced by their
 * escaped values; for the default server {server} and one '-', '_' or '.'
 * just before it are left out; a template without {server} gets
 * "-{server}" appended (jupyter-{user}: jupyter-alice, jupyter-alice-gpu).
 * Longer than 63 characters: cut to 54 plus '-' and a hash (heap). */
char *spec_service_name(const char *t, const char *user, const char *server);

struct spec_input {
	const struct spawner_cfg *cfg;
	const struct spawn_req *req;
	const struct image_def *image;
	const struct profile_def *profile;
	double cpu_reservation_ratio;
	const char *service_name;
	const char *image_ref;		/* what the service runs (pull.c);
					 * NULL: image->image */
	const char *home_source;	/* bind: host path; volume: NFS device
					 * ":<export>/<user>" with addr below */
	const char *nfs_addr;		/* volume mode: "addr=host,nfsvers=3,…" */
};
/* The body of POST /services/create (heap JSON string). */
char *spec_build(const struct spec_input *in, struct err *e);

/* A task's state and Status.Err/Message as a sentence for the user, e.g.
 * ("rejected", "No such image: x:1") -> "image 'x:1' not found on node";
 * ("pending", "no suitable node (insufficient resources on 1 node)") ->
 * "no node has the CPU or memory free that this server asks for".
 * Heap string. */
char *spec_task_message(const char *state, const char *err,
			const char *message, const struct spawn_opts *o);

/* ---- probe.c --------------------------------------------------------- */
/* GET url (a web app's ready path) with the extra header lines ("Name:
 * value", NULL-terminated; may be NULL), redirects not followed: 0 when it
 * answers 2xx or 3xx within timeout_ms, else -1 with the status or error. */
int probe_web(const char *url, char *const *headers, long timeout_ms,
	      struct err *e);

/* ---- docker.c -------------------------------------------------------- */
struct docker;

struct docker_resp {
	long status;		/* HTTP status */
	char *body;		/* NUL-terminated, owned */
	size_t len;
};
void docker_resp_release(struct docker_resp *r);

/* host: unix:///path or tcp://host:port (TLS with cert_path/{ca,cert,key}.pem
 * when cert_path is set). Negotiates the API version (>= 1.41). */
int docker_new(const char *host, const char *cert_path, struct docker **out,
	       struct err *e);
void docker_free(struct docker *d);
/* path like "/services/create" (the version prefix is added). Any non-2xx
 * is -1 with Docker's "message" in e (ERR_NOTFOUND for 404, ERR_CONFLICT
 * for 409, ERR_UPSTREAM otherwise, ERR_UNAVAILABLE when unreachable); resp
 * is filled in both cases (may be NULL). */
int docker_get(struct docker *d, const char *path, struct docker_resp *resp,
	       struct err *e);
int docker_post(struct docker *d, const char *path, const char *json,
		struct docker_resp *resp, struct err *e);
int docker_delete(struct docker *d, const char *path,
		  struct docker_resp *resp, struct err *e);
/* GETs every path, up to parallel at once, over fresh connections:
 * resps[i] and errs[i] as docker_get would fill them (errs[i].code stays
 * 0 on success). For calls that wait on Docker, such as container stats
 * (a sample comes once a second for everyone waiting). */
int docker_get_many(struct docker *d, const char *const *paths, size_t n,
		    long parallel, struct docker_resp *resps,
		    struct err *errs);
/* The same with an X-Registry-Auth header (auth NULL: none). The value is
 * never logged. */
int docker_get_auth(struct docker *d, const char *path, const char *auth,
		    struct docker_resp *resp, struct err *e);
int docker_post_auth(struct docker *d, const char *path, const char *json,
		     const char *auth, struct docker_resp *resp,
		     struct err *e);
/* URL-encodes a filters JSON for query strings (heap string). */
char *docker_escape(struct docker *d, const char *s);

/* ---- registry.c (pure) ------------------------------------------------ */
struct registry_auth;
/* REGISTRY_AUTH (Docker's config.json text; NULL or "": none, *out NULL):
 * ERR_INVALID naming SWARMHUB_REGISTRY_AUTH and the entry for bad JSON, no
 * "auths", an entry without a host or without credentials. */
int registry_auth_parse(const char *text, struct registry_auth **out,
			struct err *e);
void registry_auth_free(struct registry_auth *ra);
size_t registry_auth_count(const struct registry_auth *ra);
/* 1 when the image reference names its registry ("reg:5000/x:1"). */
int registry_names_host(const char *image);
/* The registry host[:port] of an image reference ("docker.io" when it
 * names none); heap. */
char *registry_host(const char *image);
int registry_has_cred(const struct registry_auth *ra, const char *image);
/* The X-Registry-Auth value (base64url JSON of username, password,
 * serveraddress) for the image's registry, or NULL when REGISTRY_AUTH has
 * none for it (heap; secret: never log it). */
char *registry_header(const struct registry_auth *ra, const char *image);
/* image without "@digest" (heap). */
char *registry_strip_digest(const char *image);

/* ---- pull.c ----------------------------------------------------------- */
/* The reference a server's service runs, by the image's pull policy:
 * missing: name:tag@digest as the registry names it now (asked through
 * the manager with the credentials) when the image names its registry or
 * REGISTRY_AUTH has credentials for it, else the tag; always: the tag;
 * never: the image ID the manager has (no node pulls an ID). Heap; NULL
 * with *e when never and the manager has no such image. why (size >= 200)
 * gets the registry's answer when it could not be asked. */
char *pull_ref(struct docker *d, const struct registry_auth *ra,
	       const char *image, enum pull_policy pull, char *why,
	       size_t size, struct err *e);
/* A node rejected a task with "No such image": why, as far as the
 * registry tells (asked again through the manager, for the images
 * pull_ref asks about; others: "image 'x' not found on node h"). Heap. */
char *pull_explain(struct docker *d, const struct registry_auth *ra,
		   const char *image, const char *hostname);
/* Runs one GlobalJob per image (v[i].image set by the caller) on every
 * node that is ready and active, for at most timeout_s, and fills each
 * v[i].nodes (one per node of the swarm; heap). check: the image ID the
 * manager has, so no node pulls (v[i].error when the manager has none);
 * else the tag or the registry's digest with the credentials. -1 only
 * when the nodes cannot be listed. */
int pull_jobs(struct docker *d, const struct registry_auth *ra,
	      const char *hub_id, struct spawner_image_nodes *v, size_t n,
	      int check, long timeout_s, struct err *e);
/* The hostname of a node ID ("" unknown) into buf. */
void pull_node_name(struct docker *d, const char *node_id, char *buf,
		    size_t size);

/* ---- usage.c --------------------------------------------------------- */
/* A /containers/<id>/stats answer into u's counters (user, server and
 * container are left alone). */
int usage_parse(const char *json, size_t len, struct spawner_usage *u,
		struct err *e);
/* spawner_usage on a Docker client and hub label. */
int usage_collect(struct docker *d, const char *hub_id,
		  struct spawner_usage **out, size_t *n, struct err *e);

/* ---- spawner.c ------------------------------------------------------- */
/* The string at a dotted path ("Spec.Labels.x" — keys without dots) of o,
 * or NULL. */
const char *jstr(json_t *o, const char *path);

/* ---- nodes.c --------------------------------------------------------- */
struct nodes_ctx {
	const char *hub_id;		/* whose servers count as "ours" */
	const char *name_template;	/* SERVICE_NAME_TEMPLATE */
	const char *gpu_kind;		/* GPU_RESOURCE */
};
/* A GET /nodes and a GET /tasks answer into spawner_nodes' array. */
int nodes_parse(const char *nodes_json, size_t nlen, const char *tasks_json,
		size_t tlen, const struct nodes_ctx *c,
		struct spawner_node **out, size_t *n, struct err *e);
/* spawner_nodes on a Docker client. */
int nodes_collect(struct docker *d, const struct nodes_ctx *c,
		  struct spawner_node **out, size_t *n, struct err *e);
/* 1 when the node satisfies the constraint ("node.labels.pool==gpu");
 * keys other than node.id/hostname/role/labels.* always match. */
int nodes_match(const struct spawner_node *nd, const char *constraint);
/* 0 when a ready, active node matching every constraint has ask free
 * (total minus what its tasks reserve); else ERR_UPSTREAM saying why in
 * words ("no node has 2 free GPUs; node gpu-1 has 1 free"). */
int nodes_fit(const struct spawner_node *v, size_t n,
	      const char *const *cons, size_t ncons,
	      const struct spawner_res *ask,
	      const char *gpu_kind, struct err *e);
/* ---- agents.c -------------------------------------------------------- */
/* Samples as the agent's answer {"containers": [...]} (jansson's malloc;
 * caller frees). */
char *usage_agent_json(const struct spawner_usage *v, size_t n);
/* An agent's answer into a heap array (caller frees); -1 naming the first
 * bad field. */
int usage_agent_parse(const char *json, size_t len,
		      struct spawner_usage **out, size_t *n, struct err *e);
/* "host:port" into host and port; -1 naming SWARMHUB_USAGE_AGENTS. */
int usage_agents_split(const char *agents, char *host, size_t hsize,
		       char *port, size_t psize, struct err *e);

/* ---- homes ----------------------------------------------------------- */
struct home_ops {
	/* Creates <root>/<user> when missing with uid:gid and mode; makes
	 * sure the shared dir exists (made with group shared_gid, mode
	 * 2775). */
	int (*ensure)(void *h, const char *user, long uid, long gid, long mode,
		      const char *shared_dir, long shared_gid, struct err *e);
	/* Renames <root>/<from> to <root>/<to>: ERR_NOTFOUND without from,
	 * ERR_CONFLICT when to exists (never overwritten). */
	int (*rename)(void *h, const char *from, const char *to,
		      struct err *e);
	/* <root>/<user> and all below to uid:gid (lchown, same filesystem);
	 * *changed counts entries that had another owner. */
	int (*chown_tree)(void *h, const char *user, long uid, long gid,
			  int dry_run, long *changed, struct err *e);
	/* <root>/<shared_dir> to group gid, mode 2775 (not recursive);
	 * *changed 1 when it differed. */
	int (*fix_shared)(void *h, const char *shared_dir, long gid,
			  int dry_run, long *changed, struct err *e);
	/* Renames <root>/<user> to <root>/.archive/<user>-<date> (with -2,
	 * -3... when taken); final (size >= 128) gets the path it went to
	 * relative to the root (".archive/<user>-<date>[-N]"). */
	int (*archive)(void *h, const char *user, const char *date,
		       char *final, size_t size,
		       struct err *e);
	/* Deletes <root>/<user> recursively. */
	int (*remove)(void *h, const char *user, struct err *e);
	/* Names of the directories in <root> (heap, NULL-terminated). */
	int (*list)(void *h, char ***names, struct err *e);
	void (*free)(void *h);
};
/* root: a local directory. */
/* home.c: one path component under the root (not empty, no '/', no
 * leading '.', at most 255 bytes), else ERR_INVALID naming what. */
int home_name_ok(const char *what, const char *s, struct err *e);
/* SHARED_DIR relative to the root: no "." or ".." component. */
int home_rel_ok(const char *s, struct err *e);
/* qsort comparison of char * names. */
int home_cmp_names(const void *a, const void *b);

int home_local_new(const char *root, const struct home_ops **ops, void **h,
		   struct err *e);
/* url: nfs://server/export[?nfsport=&mountport=] (NFSv3). */
int home_nfs_new(const char *url, const struct home_ops **ops, void **h,
		 struct err *e);

#endif
