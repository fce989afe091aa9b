/*
 * spawner.h - one Docker Swarm service per user server, homes, profiles.
 *
 * The only header of spawner/ that other modules include. It knows nothing
 * about HTTP sessions or HTML and exposes no libcurl or jansson type.
 * Blocking calls (spawner_start, spawner_stop, spawner_locate) are meant to
 * run on the hub's worker threads; every function is thread-safe.
 * Errors: 0 or -1 with *e filled; e->msg is written for the person who
 * pressed "start" ("image 'x' not found on node", "no node has 64 GB of
 * memory free", "your group's quota of 40 CPUs is in use (38 used)",
 * "the server did not answer within 600 s").
 *   ERR_INVALID      bad options (message names the field and the range)
 *   ERR_FORBIDDEN    profile not allowed for the user's groups
 *   ERR_TOOMANY      quota exceeded
 *   ERR_UNAVAILABLE  Docker (or NFS) cannot be reached
 *   ERR_UPSTREAM     Docker refused or the task failed (message says why)
 *   ERR_TIMEOUT      START_TIMEOUT or HTTP_TIMEOUT passed
 */
#ifndef SWARMHUB_SPAWNER_H
#define SWARMHUB_SPAWNER_H

#include <stddef.h>
#include <stdint.h>
#include "../common/common.h"

struct spawner;

struct spawner_cfg {
	const char *docker_host;	/* unix:///var/run/docker.sock, tcp://h:2376 */
	const char *docker_cert_path;	/* dir with ca.pem cert.pem key.pem (tcp) */
	const char *network;		/* overlay network of user services */
	const char *hub_id;		/* value of the swarmhub.hub label */
	const char *name_template;	/* service name, default "jupyter-{user}" */
	const char *profiles_path;	/* profiles JSON */
	const char *home;		/* nfs://server/export[?…] or /local/dir */
	const char *home_mount;		/* "bind" or "volume" */
	const char *home_bind_root;	/* bind: HOME_BIND_ROOT/<user> on nodes */
	const char *home_target;	/* default /home/jovyan/work */
	long home_uid, home_gid, home_mode;	/* 1000, 100, 0700 */
	int home_uid_ldap, home_gid_ldap;	/* HOME_UID/HOME_GID=ldap: the
					 * hub passes each user's ids in
					 * spawn_req (home_gid then stays
					 * the shared group, 100 unless
					 * numeric) */
	const char *shared_dir;		/* NULL: none; mounted read-write at
					 * <home_target>/shared */
	long start_timeout_s;		/* task scheduled and running */
	long http_timeout_s;		/* then api/status answering 200 */
	int connect_gwbridge;		/* CONNECT=gwbridge (else dns) */
	const char *gpu_resource;	/* generic-resource kind of "gpus"
					 * (GPU_RESOURCE; NULL: "gpu") */
	const char *registry_auth;	/* REGISTRY_AUTH: Docker's config.json
					 * text (credentials), or NULL */
	int workers_only;		/* SERVERS_ON_MANAGERS=false: every
					 * server also gets node.role==worker */
};

/* Refuses settings that could never start a server (HOME_MOUNT=volume
 * without an nfs:// HOME, an nfs:// HOME bind-mounted without
 * HOME_BIND_ROOT, relative HOME_BIND_ROOT or HOME_TARGET, SHARED_DIR
 * without homes, zero timeouts) before it asks Docker anything; then
 * negotiates the Docker API version (>= 1.41), checks that the engine is a
 * swarm manager and that network exists and is attachable, loads the
 * profiles. Any failure: a message that names the setting and the fix.
 * HOME and HOME_BIND_ROOT both empty is allowed: servers get no home. */
int spawner_new(const struct spawner_cfg *cfg, struct spawner **out,
		struct err *e);
void spawner_free(struct spawner *sp);
/* Reloads the profiles file; on error the old profiles stay in force and
 * the message names the offending key. */
int spawner_reload_profiles(struct spawner *sp, struct err *e);
/* Docker answers (GET /_ping): cheap enough to ask before every start. */
int spawner_ping(struct spawner *sp, struct err *e);

/* ---- profiles and options -------------------------------------------- */
/* The unit of mem_gb everywhere (profiles, options, quotas, pages): GiB,
 * 2^30 bytes, as Docker's "1g", JupyterHub's "1G" and Kubernetes' "1Gi". */
#define SPAWNER_GIB 1073741824.0
struct spawn_opts {
	char profile[64];	/* a group name or "default" */
	char image[64];		/* key in the profiles' "images" */
	double cpu;		/* CPU limit */
	double mem_gb;		/* memory limit in GiB (SPAWNER_GIB bytes) */
	int gpus;
	char pool[64];		/* a key of the profile's "pools"; "": none */
};

/*
 * Validates a user's options (JSON object text, NULL or "" for none)
 * against the profiles the user may use (the groups plus "default"),
 * filling defaults from the chosen profile (first allowed one when none is
 * named). Unknown keys, wrong types and values out of range: ERR_INVALID
 * naming the field and the allowed range; a profile of another group:
 * ERR_FORBIDDEN.
 */
int spawner_options(struct spawner *sp, const char *const *groups,
		    size_t ngroups, const char *options_json,
		    struct spawn_opts *out, struct err *e);
/* The options as the JSON object stored in user_options (heap string). */
char *spawner_options_json(const struct spawn_opts *o);

/*
 * Quota of o->profile: in_use lists the options of the running and pending
 * servers of that profile's group members started with that profile.
 * ERR_TOOMANY with what is in use when o would exceed servers, cpu, mem_gb
 * or gpus.
 */
int spawner_quota_check(struct spawner *sp, const struct spawn_opts *o,
			const struct spawn_opts *in_use, size_t n,
			struct err *e);

/* The profiles as JSON for the spawn form (heap string), limited to those
 * the groups allow. */
char *spawner_profiles_json(struct spawner *sp, const char *const *groups,
			    size_t ngroups);

/* ---- what an image is (per-image keys of the profiles) --------------- */
enum spawner_kind {
	SPAWNER_KIND_JUPYTER = 0,	/* "jupyter": a server that takes
					 * JUPYTER_TOKEN (the default) */
	SPAWNER_KIND_SINGLEUSER,	/* "singleuser": jupyterhub-singleuser,
					 * authenticates through the hub */
	SPAWNER_KIND_WEB		/* "web": an app that knows no hub,
					 * behind the hub's login alone */
};
#define SPAWNER_HEADERS_MAX 8
struct spawner_image {
	enum spawner_kind kind;
	int strip_prefix;		/* "prefix": "strip" (web only) */
	int trust_network;		/* "trust_network": true */
	char default_url[256];		/* "/lab"; "" = the server's prefix */
	char ready_path[256];		/* below the prefix the app sees; "/" */
	size_t nheaders;		/* "headers": added to each request */
	char header_name[SPAWNER_HEADERS_MAX][64];
	char header_value[SPAWNER_HEADERS_MAX][256];
};
/* What the profiles say of the image key (a key of "images"): ERR_NOTFOUND
 * when the profiles (as now loaded) have no such image. */
int spawner_image_info(struct spawner *sp, const char *image_key,
		       struct spawner_image *out, struct err *e);
/* Changes with every reload of the profiles (never with the same
 * profiles): what spawner_image_info said stays true while it is the same
 * (a caller may keep a copy). */
unsigned long spawner_profiles_generation(struct spawner *sp);

/*
 * tmpl (an "env" or "headers" value of an image) with {base_url} (the
 * server's prefix, "/user/alice/"), {user} and {token} (the server's
 * token) replaced, into out: -1 when it needs more than size - 1 bytes.
 */
int spawner_expand(const char *tmpl, const char *base_url, const char *user,
		   const char *token, char *out, size_t size);

/* ---- servers --------------------------------------------------------- */
struct spawn_req {
	const char *user;	/* normalized username */
	const char *server;	/* server name, "" for the default one */
	const struct spawn_opts *opts;
	const char *token;	/* JUPYTER_TOKEN, given by the hub; for
				 * kind singleuser JUPYTERHUB_API_TOKEN
				 * and the OAuth client secret */
	const char *base_url;	/* "/user/alice/" */
	/* kind singleuser: the hub's API as the server reaches it
	 * ("http://hub:8000/hub/api") and the server's OAuth client id */
	const char *hub_api_url;
	const char *oauth_client_id;
	const volatile int *cancel;	/* non-zero: give up and clean up */
	/* own_ids: run as uid:gid and own the home with them (HOME_UID=ldap);
	 * the container also keeps cfg home_gid as a supplementary group and
	 * HOME=<home_target>. 0: HOME_UID:HOME_GID as configured. */
	int own_ids;
	long uid, gid;
};

/* Where a running server answers. */
struct server_addr {
	char service_id[80];
	char service_name[128];
	char host[64];		/* service name (dns) or gwbridge address */
	int port;
	int64_t mem_limit_bytes;	/* the service's memory limit as Docker
					 * has it (spawner_locate; 0: none) */
};

/* progress 1..99 and a sentence ("Task pending: no suitable node ..."). */
typedef void (*spawn_progress_fn)(void *ctx, int progress, const char *msg);

/*
 * Creates the home (when missing), then the service, waits for its task to
 * run (START_TIMEOUT) and for <base_url>api/status to answer 200 with JSON
 * (HTTP_TIMEOUT; kind singleuser: for <base_url> to answer HTTP at all), reporting each task state change through fn. On any
 * failure the service is removed and *e says why in words a person reads.
 * A start asking for GPUs that no ready, active node matching the
 * profile's and pool's constraints has free fails before anything is
 * created (ERR_UPSTREAM, "no node has 2 free GPUs; node gpu-1 has 1
 * free").
 */
int spawner_start(struct spawner *sp, const struct spawn_req *req,
		  spawn_progress_fn fn, void *ctx, struct server_addr *out,
		  struct err *e);
/* Removes the service and waits (60 s at most) until its tasks have ended
 * on whichever nodes they ran, as the manager reports them; a task on a
 * node that is down counts as ended. Gone already: 0. */
int spawner_stop(struct spawner *sp, const char *user, const char *server,
		 struct err *e);
/* Removes the service with this Docker ID without waiting for its tasks
 * (for a server whose task already ended). By ID, not by name: the user
 * may have started a new service of the same name meanwhile. Gone already
 * or service_id empty: 0. */
int spawner_remove_id(struct spawner *sp, const char *service_id,
		      struct err *e);
/* Finds a running server (at start, for adoption): ERR_NOTFOUND when there
 * is no running task (a task whose node is down, or that Swarm is ending,
 * is not running; e->msg says which node), with out->service_id set when
 * the service exists.
 * opts (may be NULL) gives the image, hence the port. Does not probe HTTP. */
int spawner_locate(struct spawner *sp, const char *user, const char *server,
		   const struct spawn_opts *opts, struct server_addr *out,
		   struct err *e);

struct spawner_service {
	char user[USER_NAME_MAX + 1];	/* from the swarmhub.user label */
	char server[64];		/* swarmhub.server label */
	char service_id[80];
	char name[128];
	int running;			/* a task is in state running, on a
					 * node that is up */
};
/* Services carrying this hub's label (heap array, caller frees). */
int spawner_list(struct spawner *sp, struct spawner_service **out,
		 size_t *n, struct err *e);

/* What a running server uses, sampled by Docker on the server's node
 * (spawner_usage: the node the hub talks to only; spawner_usage_agents:
 * every node, through the usage agents). Counters are cumulative: the CPU
 * rate needs two samples of the same container. */
struct spawner_usage {
	char user[USER_NAME_MAX + 1];	/* swarmhub.user label */
	char server[64];		/* swarmhub.server label */
	char container[80];		/* container id */
	int64_t read_ms;		/* when Docker took the sample */
	int64_t cpu_ns;			/* CPU time used since it started */
	int64_t mem_bytes;		/* memory in use, reclaimable page
					 * cache left out (as docker stats) */
	int64_t mem_limit;		/* 0: unknown */
};
/* One sample per running container of this hub's services (heap array,
 * caller frees). Containers that stop meanwhile are left out. */
int spawner_usage(struct spawner *sp, struct spawner_usage **out, size_t *n,
		  struct err *e);
/* CPUs used on average between two samples (1.0 = one core busy), or -1
 * when they are not two successive samples of one container. */
double spawner_usage_cpu(const struct spawner_usage *prev,
			 const struct spawner_usage *cur);

/* ---- nodes of the swarm (spawner/nodes.c) ---------------------------- */
/* CPUs, memory and GPUs (generic resources of kind GPU_RESOURCE). */
struct spawner_res {
	double cpus;
	int64_t mem_bytes;
	long gpus;
};
/* A server of this hub with a task on a node. */
struct spawner_node_server {
	char user[USER_NAME_MAX + 1];	/* swarmhub.user label */
	char server[64];		/* swarmhub.server label */
	char service[128];		/* the service's name */
	char state[16];			/* the task's state: running, ... */
	char desired[16];		/* running; shutdown while Swarm
					 * ends it (a drained node) */
	struct spawner_res reserved;	/* what its task reserves */
};
struct spawner_node {
	char id[64];
	char hostname[128];
	char role[16];			/* manager, worker */
	char availability[16];		/* active, pause, drain */
	char state[16];			/* ready, down, unknown, ... */
	char addr[64];			/* Status.Addr */
	char **labels;			/* "key=value", sorted,
					 * NULL-terminated */
	struct spawner_res total;	/* what the node offers */
	struct spawner_res reserved;	/* by this hub's servers */
	struct spawner_res used;	/* by every task on it (others' too) */
	struct spawner_node_server *servers;
	size_t nservers;
};
/* Every node of the swarm with this hub's servers on it (one GET /nodes
 * and one GET /tasks; heap array sorted managers first, then by hostname;
 * free with spawner_nodes_free). Reservations count the tasks a node
 * holds (assigned up to running, also while Swarm ends them). */
int spawner_nodes(struct spawner *sp, struct spawner_node **out, size_t *n,
		  struct err *e);
void spawner_nodes_free(struct spawner_node *v, size_t n);
/* The generic-resource kind GPUs are asked for as (GPU_RESOURCE). */
const char *spawner_gpu_kind(const struct spawner *sp);
/* Usage from every node (spawner/agents.c). A sampler reads one node's
 * Docker (docker_host as DOCKER_HOST) for the containers labelled
 * swarmhub.hub=hub_id: what `swarmhub agent` runs on each node. */
struct spawner_sampler;
int spawner_sampler_new(const char *docker_host, const char *cert_path,
			const char *hub_id, struct spawner_sampler **out,
			struct err *e);
void spawner_sampler_free(struct spawner_sampler *s);
/* One sample of the node's containers as the agent's JSON answer
 * ({"containers": [...]}, caller frees *json; *n containers in it). */
int spawner_sampler_json(struct spawner_sampler *s, char **json, size_t *n,
			 struct err *e);
/* Asks every agent behind agents ("host:port"; every IPv4 address of host,
 * e.g. tasks.<agent service>, all at once) GET /usage with "Authorization:
 * token <key>", each within timeout_ms. The samples of those that answered
 * in *out (heap array, caller frees); *asked agents were found; those that
 * did not answer in *failures, "<url>: <why>" joined by "; " (heap string,
 * caller frees; NULL when all answered). -1 with *e when agents is not
 * host:port or the name resolves to nothing. */
int spawner_usage_agents(const char *agents, const char *key,
			 long timeout_ms, struct spawner_usage **out,
			 size_t *n, size_t *asked, char **failures,
			 struct err *e);

/* GET url with "Authorization: token <token>": 0 when it answers 200 with
 * a JSON object within timeout_ms (libcurl; spawner/probe.c). */
int spawner_probe(const char *url, const char *token, long timeout_ms,
		  struct err *e);

/* GET url: 0 when anything answers HTTP within timeout_ms (any status;
 * a refused or silent connection is -1 with *e). */
int spawner_probe_http(const char *url, long timeout_ms, struct err *e);

/* Asks a running server: GET <base>api/status (its last_activity) and,
 * unless that says "kernels": 0, <base>api/kernels (any execution_state
 * "busy"), with the token. */
int spawner_status(const char *base_url, const char *token, long timeout_ms,
		   int64_t *last_activity_ms, int *kernel_busy,
		   struct err *e);

/* Per-profile idle timeouts ("cull_timeout" in the profiles): *names and
 * *secs heap arrays of the returned count (free with strv_free / free). */
size_t spawner_cull_timeouts(struct spawner *sp, char ***names, long **secs);

/* ---- homes and checks for admins (swarmhubctl cleanup/orphans/doctor) */
/* ERR_UNAVAILABLE when no HOME is configured. archived_to (size >= 128)
 * gets ".archive/<name>-<YYYYmmdd-HHMMSS>". */
int spawner_home_archive(struct spawner *sp, const char *name,
			 char *archived_to, size_t size, struct err *e);
int spawner_home_delete(struct spawner *sp, const char *name, struct err *e);
/* Renames the home of from to to. ERR_NOTFOUND when from has no home (a
 * caller renaming a user goes on), ERR_CONFLICT when to has one already
 * (nothing changed), ERR_UNAVAILABLE when no HOME is configured. */
int spawner_home_rename(struct spawner *sp, const char *from, const char *to,
			struct err *e);
/* Gives name's home and everything in it (symlinks themselves, never
 * their targets; other filesystems mounted inside are not entered) to
 * uid:gid. *changed gets how many entries had another owner; dry_run
 * counts them without changing anything. ERR_NOTFOUND: no such home. */
int spawner_home_chown(struct spawner *sp, const char *name, long uid,
		       long gid, int dry_run, long *changed, struct err *e);
/* Makes the shared dir (SHARED_DIR) group-owned by cfg home_gid with mode
 * 2775 (setgid: files made inside keep the group). *changed: 1 when it
 * was not so (dry_run: nothing changed). ERR_NOTFOUND: no shared dir. */
int spawner_shared_fix(struct spawner *sp, int dry_run, long *changed,
		       struct err *e);
/* The first path component of SHARED_DIR ("" when none): a name no user
 * may take, as it is a directory among the homes. */
const char *spawner_shared_name(const struct spawner_cfg *cfg, char *buf,
				size_t size);
/* Directory names under the home root (heap, NULL-terminated; the shared
 * dir and dot entries left out). */
int spawner_home_list(struct spawner *sp, char ***names, struct err *e);
/* Removes a service carrying this hub's label (ERR_NOTFOUND otherwise). */
int spawner_remove_service(struct spawner *sp, const char *service,
			   struct err *e);
/* Doctor checks; each 0, or -1 with *e saying what is wrong. */
int spawner_check_swarm(struct spawner *sp, struct err *e);
int spawner_check_network(struct spawner *sp, struct err *e);
int spawner_check_profiles(struct spawner *sp, struct err *e);
/* Creates and removes a scratch directory under the home root. */
int spawner_check_homes(struct spawner *sp, struct err *e);

/* ---- images on every node (swarmhubctl images pull, doctor) ----------
 * A one-shot job per image (Swarm's GlobalJob) runs "true" on every node
 * that is ready and active: a node whose task ran has the image. */
struct spawner_node_image {
	char node_id[80];
	char hostname[128];
	int done;		/* 0: no outcome (node down or drained, or no
				 * answer in time): message says which */
	int ok;			/* the node has the image */
	char message[256];	/* "ok", or why not ("unauthorized: ...") */
};
struct spawner_image_nodes {
	char image[256];	/* the reference, as in the profiles */
	char keys[128];		/* its keys in the profiles, comma-separated */
	char digest[80];	/* pull: the registry's digest, "" unknown */
	char error[256];	/* "" or why the job could not run */
	char note[256];		/* "" or why the registry was not asked */
	struct spawner_node_image *nodes;	/* every node of the swarm */
	size_t nnodes;
};
/* images: profile image keys or image references (n 0: every image of
 * the profiles). check 0 pulls on every node with REGISTRY_AUTH's
 * credentials (the registry's current digest when the hub asks it, see
 * compose/profiles.md); 1 only checks which nodes have the manager's copy
 * (by image ID: nothing is pulled). Blocks up to START_TIMEOUT (at most
 * 240 s). ERR_INVALID naming an entry that is neither a key nor a valid
 * reference. *out: heap array of *nout, free with
 * spawner_image_nodes_free. */
int spawner_images_pull(struct spawner *sp, const char *const *images,
			size_t n, int check, struct spawner_image_nodes **out,
			size_t *nout, struct err *e);
void spawner_image_nodes_free(struct spawner_image_nodes *v, size_t n);

/* 1 when servers get a home mount (HOME or HOME_BIND_ROOT set, or NFS
 * volumes); 0: HOME is empty and files written in a server go with it. */
int spawner_has_home(const struct spawner *sp);

/* The service name for a user's server (escaped; heap string). */
char *spawner_service_name(const struct spawner *sp, const char *user,
			   const char *server);

#endif
