/*
 * hub.h - the hub's core: settings, in-memory state, servers, progress,
 * users, sessions, the culler and usage glue, metrics, the edge's router
 * (proxy.c), and what they share. The web side (web.h: the HTTP server,
 * pages, API) builds on this; nothing here knows HTTP requests or
 * libmicrohttpd. Nothing outside hub/ includes it.
 *
 * The hub keeps users, API tokens and sessions in memory (struct state),
 * filled from PostgreSQL at start and updated after each successful write:
 * every authenticated request is answered from memory, never from a
 * database round trip. Activity (user last_activity, token last_used,
 * session last_seen) is recorded in memory and flushed in batches.
 * Locking: state.lock is a rwlock; readers hold it while they use a user,
 * token or session; writers change the maps only after the database agreed.
 */
#ifndef SWARMHUB_HUB_H
#define SWARMHUB_HUB_H

#include <pthread.h>
#include <stdint.h>
#include "../common/common.h"
#include "../spawner/spawner.h"
#include "auth.h"
#include "store.h"

#define HUB_VERSION "0.1.0"
#define HUB_API_VERSION "3.0.0"	/* the JupyterHub REST API we speak */

/* ---- configuration (config.c) --------------------------------------- */
struct hub_cfg {
	const char *listen;		/* host:port */
	const char *db;
	const char *secret;
	int auth_ldap;			/* AUTH=ldap */
	char **admin_users;		/* NULL-terminated */
	const char *admin_token;	/* NULL: none */
	struct ldap_cfg ldap;
	long auth_recheck_s;		/* re-check LDAP groups after this */
	long session_idle_s;
	long session_max_age_s;
	long http_threads;
	long max_body_bytes;
	long db_pool;
	long db_wait_s;			/* wait for the database at start */
	long login_max_failures;	/* per name or address, per window */
	long login_window_s;
	char **trusted_proxies;		/* addresses allowed to set X-Forwarded-* */
	const char *hub_name;
	int log_level;
	/* spawning (enabled when NETWORK is set) */
	struct spawner_cfg spawn;
	int spawn_enabled;
	long concurrent_spawn_limit;
	long named_server_limit;	/* NAMED_SERVER_LIMIT_PER_USER, 0 */
	long reconcile_every_s;
	long local_uid_min, local_uid_max;	/* LOCAL_UID_RANGE */
	/* culler */
	long cull_timeout_s, cull_every_s, cull_max_age_s, cull_users_after_s;
	int cull_admin_servers, cull_kernel_busy, cull_websockets;
	long cull_concurrency, cull_probe_timeout_ms, cull_probe_rate;
	long usage_every_s;		/* container stats; 0: off */
	const char *usage_agents;	/* host:port of the usage agents;
					 * NULL: the local node's stats */
	/* proxy */
	int admin_access;		/* admins may open others' servers */
	long proxy_timeout_s;		/* upstream connect + first byte */
	long edge_threads;
	long max_connections;		/* 0: what the fd limit fits */
	long max_connections_per_address;
	long client_idle_timeout_s, websocket_idle_timeout_s;
	int metrics_open;		/* METRICS_AUTH=none */
	/* kind singleuser: the hub as servers reach it (HUB_CONNECT_URL,
	 * no trailing '/'), OAuth code lifetime (OAUTH_CODE_TTL) */
	char hub_connect_url[256];
	long oauth_code_ttl_s;
};
/* Reads every SWARMHUB_* setting; -1 with a message naming the setting. */
int hub_cfg_load(struct hub_cfg *c, struct err *e);
void hub_cfg_release(struct hub_cfg *c);

/* ---- crypto (crypto.c, libcrypto) ------------------------------------ */
void crypto_random(void *buf, size_t n);
/* 32 random bytes as 64 hex characters; out >= 65 bytes. */
void crypto_token(char *out);
/* SHA-256 of s as hex; out >= 65 bytes. */
void crypto_sha256_hex(const char *s, size_t n, char *out);
/* HMAC-SHA256(key, msg) as hex; out >= 65 bytes. */
void crypto_hmac_hex(const char *key, const char *msg, char *out);

/* HTTP methods, as the metrics count them. */
enum method { M_GET, M_POST, M_PUT, M_PATCH, M_DELETE, M_HEAD, M_OPTIONS,
	      M_OTHER };

/* ---- in-memory state (state.c) --------------------------------------- */
enum srv_state { SRV_STOPPED, SRV_STARTING, SRV_RUNNING, SRV_STOPPING };

/* ---- progress of a start (progress.c) -------------------------------- */
struct progress;
struct progress *progress_new(void);
struct progress *progress_ref(struct progress *p);
void progress_unref(struct progress *p);	/* NULL: no-op */
/* Adds an event (kind: 0 progress, 1 ready with url, 2 failed); the first
 * ready or failed event is the last one kept. */
void progress_add(struct progress *p, int pct, const char *msg, int kind,
		  const char *url);
/* Set by a stop during the start (the spawner reads it). */
volatile int *progress_cancel_flag(struct progress *p);
/* Copies whole events from *next into buf (advancing *next); *done when
 * every event was taken and there will be no more. Returns bytes. */
size_t progress_copy(struct progress *p, size_t *next, char *buf, size_t max,
		     int *done);
/* Calls fn(arg) under p's lock when nothing after next was added and more
 * may come (so an add cannot slip in between); returns 1 then. */
int progress_if_idle(struct progress *p, size_t next, void (*fn)(void *),
		     void *arg);
/* fn is called after each event (the event stream wakes its listeners). */
void progress_set_wake(void (*fn)(void));

/* A user's server: the default one (name "") or a named one. Fields
 * change under state.lock (write). */
#define SERVER_NAME_MAX 63
struct server {
	char name[SERVER_NAME_MAX + 1];	/* "" for the default server */
	enum srv_state state;
	struct spawn_opts opts;
	int has_opts;
	char *options_json;		/* user_options as stored */
	int64_t started_ms;
	int64_t last_activity_ms;
	char *last_error;		/* last failure or stop reason */
	struct server_addr addr;
	char ip[64];			/* addr.host resolved (the proxy's) */
	char nonce[33];			/* new at each start: part of the
					 * server token */
	int kind;			/* enum spawner_kind of its image,
					 * as it was at the start (-1 when
					 * the profiles no longer have it) */
	int activity_dirty;		/* atomic */
	int remove_pending;		/* DELETE with remove: forget the
					 * record once stopped */
	int64_t last_client_ms;		/* atomic: traffic from the browser */
	struct progress *progress;	/* events of the last start (ref) */
	/* usage.c: the last sample of its container and the CPUs used
	 * between the last two (-1: one sample so far) */
	struct spawner_usage usage;
	double used_cpu;
	int64_t usage_at_ms;		/* 0: never sampled */
};

struct user {
	int64_t id;
	char *name;
	int admin;
	int64_t created_ms;
	int64_t last_activity_ms;	/* atomic; 0 = never */
	int activity_dirty;		/* atomic */
	char *password_hash;
	char **groups;			/* NULL-terminated, sorted */
	size_t ngroups;
	struct server *server;		/* the default server; NULL: never
					 * had one */
	struct server **named;		/* named servers, in creation order
					 * (their records stay when stopped) */
	size_t nnamed;
	int64_t uid, gid;		/* the directory's numbers; 0: none */
	int64_t local_uid;		/* from LOCAL_UID_RANGE; 0: none */
	int renaming;			/* a rename is under way: no start */
	int64_t auth_checked_ms;	/* atomic: last directory re-check
					 * (sessions.c); 0: none since start */
};

struct token {
	int64_t id;
	char hash[65];
	char *user;
	char *note;
	int64_t created_ms;
	int64_t last_used_ms;		/* atomic */
	int64_t expires_ms;
	int dirty;			/* atomic */
};

struct session {
	char hash[65];
	char *user;
	int64_t created_ms;
	int64_t last_seen_ms;		/* atomic */
	int64_t expires_ms;
	int64_t auth_checked_ms;
	int dirty;			/* atomic */
};

struct map;	/* string -> pointer (state.c) */

struct state {
	pthread_rwlock_t lock;
	struct map *users;		/* name -> struct user */
	struct user **user_list;	/* by id, for paging */
	size_t nusers, cap_users;
	struct map *tokens;		/* hash -> struct token */
	struct map *sessions;		/* hash -> struct session */
};

int state_init(struct state *s);
void state_release(struct state *s);
/* Loads users, tokens and sessions from the store (at start). */
int state_load(struct state *s, struct store *st, struct err *e);

/* Lookups: caller holds s->lock (read or write). */
struct user *state_user(struct state *s, const char *name);
struct token *state_token(struct state *s, const char *hash);
struct session *state_session(struct state *s, const char *hash);

/* Changes: caller holds s->lock for writing. */
/* An id after every known one (the database's own id is read at the next
 * start; only the order matters in memory). */
int64_t state_next_id(struct state *s);
struct user *state_user_add(struct state *s, const struct store_user *u);
void state_user_remove(struct state *s, const char *name);
void state_user_rename(struct state *s, struct user *u, const char *name);
void state_user_set_groups(struct user *u, const char *const *g, size_t n);
void state_token_add(struct state *s, const struct store_token *t);
void state_token_remove(struct state *s, const char *hash);
void state_token_remove_id(struct state *s, int64_t id);
/* The user's tokens ordered by id (heap array of borrowed pointers; the
 * caller holds the lock while using them and frees the array). */
struct token **state_tokens_of(struct state *s, const char *user, size_t *n);
void state_session_add(struct state *s, const struct store_session *ss);
void state_session_remove(struct state *s, const char *hash);
/* Removes every token and session of user (memory only). */
void state_forget_user(struct state *s, const char *user);

size_t state_count_sessions(struct state *s);
size_t state_count_tokens(struct state *s);
/* Frees a server (state owns them; its progress is unreferenced). */
void server_free(struct server *s);
/* A user's servers, the default one first: index 0 is u->server (may be
 * NULL), 1.. the named ones. Caller holds the lock. */
size_t user_nservers(const struct user *u);
struct server *user_server_at(const struct user *u, size_t i);
/* The server called name ("" the default), or NULL. */
struct server *user_server(const struct user *u, const char *name);
/* Adds an empty stopped server called name (write lock; none yet). */
struct server *user_server_add(struct user *u, const char *name);
/* Forgets the named server name (write lock). */
void user_server_remove(struct user *u, const char *name);
/* How many of u's servers are not stopped. */
size_t user_active_servers(const struct user *u);
/* A pending state (starting, stopping) of any of u's servers, else
 * SRV_RUNNING when one runs, else SRV_STOPPED. */
enum srv_state user_busiest_state(const struct user *u);

/* What /hub/metrics shows besides counters (metrics.c). */
struct metrics_gauges {
	size_t users, admins, running, pending, sessions, tokens;
	long orphans;
	int db_up;
};
/* Counts users, servers, sessions and tokens (takes the read lock). */
void state_gauges(struct state *s, struct metrics_gauges *g);

/* Activity (lock-free on the record; caller holds the read lock). */
void state_touch_user(struct user *u, int64_t now_ms);
void state_touch_token(struct token *t, int64_t now_ms);
void state_touch_session(struct session *ss, int64_t now_ms);
/* Writes dirty activity to the store in batches; returns records written. */
long state_flush(struct state *s, struct store *st, struct err *e);

/* ---- the hub --------------------------------------------------------- */
struct ratelimit;
struct metrics;
struct http;	/* the web side's server (http.c) */
struct edge;	/* the proxy on the hub's port (edge/) */
struct cull;	/* the culler's glue (cull.c) */
struct usage;	/* the usage sampler (usage.c) */

struct hub {
	struct hub_cfg cfg;
	struct store *store;
	struct state state;
	struct auth_ldap *ldap;		/* NULL with local auth */
	struct ratelimit *rl;
	struct metrics *metrics;
	struct spawner *spawner;	/* NULL when spawning is off */
	struct http *http;		/* the HTTP server, while it runs */
	struct edge *edge;		/* the hub's port, while it runs */
	struct cull *cull;		/* from cull_start to cull_stop */
	struct usage *usage;		/* the sampler, while it runs */
	/* An HTML error page (heap), from the web side (main.c sets it):
	 * the core calls pages through this pointer only. */
	char *(*error_page)(struct hub *h, int status, const char *title,
			    const char *message, size_t *len);
	int active_actions;		/* start/stop workers alive (atomic) */
	int limited_actions;		/* starts + stops not yet in their
					 * final state: what
					 * CONCURRENT_SPAWN_LIMIT counts */
	long orphans;			/* services with our label, no server */
	char admin_token_hash[65];	/* "" when none */
	char internal_socket[108];	/* libmicrohttpd's unix socket (the
					 * edge proxies hub requests there;
					 * abstract: starts with '@') */
	int64_t started_ms;
	/* health: the last database ping (hub.c's thread, every second) */
	pthread_t health_thread;
	int health_started;
	pthread_mutex_t health_lock;
	int64_t health_checked_ms;
	int health_ok;
	char health_msg[256];
	volatile int stopping;
};

/* ---- authentication of a request (sessions.c) ------------------------ */
enum who_kind { WHO_NONE, WHO_USER, WHO_SERVICE };
/* What a token may do beyond naming its owner: everything the owner may
 * (API tokens, sessions), or only what a jupyterhub-singleuser server
 * needs: its own API token (identify, report activity, open its server)
 * or an OAuth access token issued for it (identify, open the server). */
enum who_limit { WHO_FULL, WHO_SERVER_TOKEN, WHO_OAUTH_TOKEN };
struct who {
	enum who_kind kind;
	char name[USER_NAME_MAX + 1];	/* user name, or "admin-token" */
	int admin;
	int by_cookie;			/* needs XSRF for changes */
	char session_hash[65];
	enum who_limit limit;
	/* the server a limited token is for: its owner (the token's user
	 * is an admin with ADMIN_ACCESS when they differ) and name */
	char server_user[USER_NAME_MAX + 1];
	char server[64];
};
/* The same from raw values (the edge): Authorization header, the value of
 * the session cookie (either may be NULL). */
void who_from(struct hub *h, const char *authorization, const char *cookie,
	      struct who *w);
/* The value of cookie name in a Cookie header (heap string), or NULL. */
char *cookie_value(const char *header, const char *name);
/* The same into out (no allocation): 0, or -1 when there is no such cookie
 * or its value needs size bytes or more. */
int cookie_copy(const char *header, const char *name, char *out, size_t size);
#define SESSION_COOKIE "swarmhub-session"
/* XSRF token for a session (hex). */
void xsrf_for_session(struct hub *h, const char *session_hash, char *out);

/* Login: checks credentials, creates/updates the user, opens a session.
 * On success fills cookie (the raw session id, 43+ chars) and name_out
 * (USER_NAME_MAX + 1: the normalized name, or the directory's name for the
 * user with LDAP_USERNAME_ATTRIBUTE). */
int login_check(struct hub *h, const char *username, const char *password,
		const char *ip, char *name_out, char *cookie_out,
		struct err *e);
void logout_session(struct hub *h, const char *session_hash);
/* Starts (stops) the workers that re-check users with the directory
 * (sessions and API tokens older than AUTH_RECHECK, one re-check per user
 * at a time) and delete expired sessions, so that who_from never waits. */
int sessions_start(struct hub *h, struct err *e);
void sessions_stop(void);

/* ---- rate limit of failed logins: ratelimit.h ----------------------- */
#include "ratelimit.h"

/* ---- servers (servers.c) --------------------------------------------- */
/* A user has a default server ("") and any number of named ones (names of
 * 1-63 characters [a-z0-9][a-z0-9._-]*), each with its own service, token
 * and route /user/<name>/<server>/; they share the user's home. */
/* 0 when server is "" or a valid server name; ERR_INVALID naming the rule
 * otherwise. */
int servers_name_check(const char *server, struct err *e);
/* Starts name's server (server "" the default one) with the options (JSON
 * text or NULL). 0: started in the background (202); -1 with *e
 * (ERR_INVALID/ERR_FORBIDDEN 400/403, ERR_CONFLICT already running or
 * pending, ERR_TOOMANY over the concurrent-spawn limit, quota:
 * ERR_FORBIDDEN; over NAMED_SERVER_LIMIT_PER_USER: ERR_INVALID). */
int servers_start_named(struct hub *h, const char *name, const char *server,
			const char *options_json, const char *actor,
			struct err *e);
int servers_start(struct hub *h, const char *name, const char *options_json,
		  const char *actor, struct err *e);
/* 0 stopped already (204), 1 stop under way (202), -1 with *e
 * (ERR_NOTFOUND: no such user or server). remove: a named server's record
 * is deleted too, once stopped. */
int servers_stop_named(struct hub *h, const char *name, const char *server,
		       int remove, const char *actor, const char *reason,
		       struct err *e);
int servers_stop(struct hub *h, const char *name, const char *actor,
		 const char *reason, struct err *e);
/* Loads server rows, adopts running services, marks the rest stopped. */
int servers_load(struct hub *h, struct err *e);
void servers_reconcile(struct hub *h);
/* The server token: HMAC of the hub's secret, HUB_ID, the user (for a
 * named server "<user>/<server>") and the start's nonce; out >= 65 bytes. */
void servers_token_for(struct hub *h, const char *user, const char *server,
		       const char *nonce, char *out);
void servers_token(struct hub *h, const char *user, const char *nonce,
		   char *out);
/* "/user/<name>/" or "/user/<name>/<server>/" (heap). */
char *servers_url(const char *name, const char *server);
/* Where "Open" leads: the server's url plus its image's default_url
 * (heap; caller holds no lock). */
char *servers_open_url(struct hub *h, const char *name, const char *server);
/* Every few seconds: servers whose task stopped are re-checked at once. */
void servers_sweep(struct hub *h);
/* A reference to the progress of the server's last start (a made-up final
 * event when it was adopted, stopped or never started); NULL with *exists
 * 0 when there is no such user or server. */
struct progress *servers_progress_of(struct hub *h, const char *name,
				     const char *server, int *exists);
/* At shutdown: pending starts give up (and remove their services). */
void servers_cancel_all(struct hub *h);
/* Re-checks a server with Docker in the background; key is "<name>" or
 * "<name>/<server>" (the edge's activity key). */
void servers_recheck(struct hub *h, const char *key);
/* Appends the "servers" part of the user model: the active servers, and
 * with all the stopped named ones too (include_stopped_servers); *ready
 * and *pending are the default server's. */
void servers_model(struct strbuf *sb, const struct user *u, int all,
		   int *ready, int *pending);
/* The options of the servers that count against profile's quota: running
 * or pending, of members of its group, started with it (heap array; the
 * caller holds the state lock and frees it). */
struct spawn_opts *servers_in_use(struct hub *h, const char *profile,
				  size_t *n);
/* Their sum (takes the read lock). */
struct servers_usage {
	long servers;
	double cpu, mem_gb;
	long gpus;
};
void servers_usage_of(struct hub *h, const char *profile,
		      struct servers_usage *u);

/* ---- OAuth clients of singleuser servers (clients.c) ----------------- */
#define CLIENT_ID_MAX 160
/* Access tokens are API tokens of the user who authorized (the owner, or
 * an admin with ADMIN_ACCESS) whose note is this prefix and
 * "<owner>/<server>" (server "" for the default one). */
#define OAUTH_TOKEN_NOTE "oauth-client-of-server:"
struct oauth_client {
	char id[CLIENT_ID_MAX];
	char user[USER_NAME_MAX + 1];
	char server[64];
	char nonce[33];
	char secret_hash[65];
	char redirect_uri[256];		/* the only one allowed: exact */
};
/* JupyterHub's client id of a server: "jupyterhub-user-<name>" and
 * "-<server>" for a named one (the name percent-escaped). */
void clients_id(const char *user, const char *server, char *out,
		size_t size);
/* Registers the client of the server started with nonce, whose API token
 * (also the client secret) is token; replaces the previous one. */
void clients_add(struct hub *h, const char *user, const char *server,
		 const char *nonce, const char *token);
/* Forgets the server's client and deletes its access tokens (store and
 * memory); failures are logged. */
void clients_revoke(struct hub *h, const char *user, const char *server);
/* 1 when the server is starting or running (with this nonce, unless NULL):
 * its tokens count only then. Takes the state read lock. */
int clients_server_live(struct hub *h, const char *user, const char *server,
			const char *nonce);
/* 1 when token_hash is the API token of a live server (fills user and
 * server, sizes USER_NAME_MAX + 1 and 64). */
int clients_by_token(struct hub *h, const char *token_hash, char *user,
		     char *server);
/* 1 with *out when client_id names the client of a live server. */
int clients_get(struct hub *h, const char *client_id,
		struct oauth_client *out);
/* A new single-use code for user at cl (OAUTH_CODE_TTL); code_out >= 65. */
void clients_code_new(struct hub *h, const struct oauth_client *cl,
		      const char *user, char *code_out);
/* Takes the code (gone after this call, whatever the outcome): 0 with its
 * user, or -1 with ERR_AUTH saying why (unknown, used, expired, another
 * client's, another redirect_uri). */
int clients_code_take(struct hub *h, const char *code, const char *client_id,
		      const char *redirect_uri, char *user, struct err *e);
/* The note of the access tokens of a server. */
void clients_token_note(const char *user, const char *server, char *out,
			size_t size);

/* ---- the culler (cull.c) --------------------------------------------- */
int cull_start(struct hub *h, struct err *e);
void cull_reload(struct hub *h);
void cull_stop(struct hub *h);
/* The culled counters in Prometheus text. */
void cull_metrics(struct hub *h, struct strbuf *sb);

/* ---- what servers use (usage.c) ------------------------------------- */
/* Starts sampling Docker's container stats every USAGE_EVERY (nothing
 * when spawning or sampling is off). */
int usage_start(struct hub *h, struct err *e);
void usage_stop(struct hub *h);
/* A running server's recent CPUs used (-1: not known yet) and memory in
 * use; -1 when there is no recent sample of this run (state lock held). */
int usage_get(const struct server *s, int64_t now_ms, long every_s,
	      double *cpu, int64_t *mem_bytes);
/* The key the usage agents take ("Authorization: token <key>"): HMAC of
 * a fixed context with SECRET, 64 hex characters and a NUL into out; the
 * secret itself never leaves the hub. */
void usage_agent_key(const char *secret, char *out);

/* ---- the edge's router (proxy.c): the edge_hooks it gets ------------ */
struct edge_request;
struct edge_target;
/* Where a request on the hub's port goes (ctx: the hub): /user/<name>/
 * to that user's server when the caller may, else an answer; the rest to
 * the hub's own HTTP server. */
void proxy_route(void *ctx, const struct edge_request *rq,
		 struct edge_target *t);
void proxy_activity(void *ctx, const char *key, int from_client);
void proxy_upstream_failed(void *ctx, const char *key, int status);

/* ---- metrics (metrics.c): counters, and the text of a scrape --------- */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_observe(struct metrics *m, const char *handler,
		     enum method meth, int status, double seconds);
void metrics_login(struct metrics *m, int ok);
/* A periodic pass of the hub's own took ms (and cpu_us of the hub's CPU)
 * over servers (culler: servers listed; usage: containers sampled); shown
 * as a histogram and the last pass's duration, CPU, size and end time. */
enum metrics_pass { METRICS_PASS_CULLER, METRICS_PASS_USAGE,
		    METRICS_PASS_KINDS };
void metrics_pass(struct metrics *m, enum metrics_pass kind, int64_t ms,
		  int64_t cpu_us, size_t servers);
/* The start took ms (to listening, adoption included); servers running. */
void metrics_started(struct metrics *m, int64_t ms, size_t servers);
/* Appends the Prometheus text of the counters and the gauges g. */
void metrics_render(struct strbuf *sb, struct metrics *m,
		    const struct metrics_gauges *g);

/* ---- users' own ids and reserved names (ids.c) ---------------------- */
/* ERR_INVALID naming the reason when no user may be called name: the
 * shared directory's name (SHARED_DIR) or "admin-token" (how the audit
 * log names ADMIN_TOKEN requests). */
int ids_reserved(struct hub *h, const char *name, struct err *e);
/* After a login or a directory re-check: stores the directory's uid and
 * gid numbers when they changed and, with HOME_UID=ldap, gives a user
 * without one a uid of LOCAL_UID_RANGE (au NULL: a local account).
 * Failures are logged, never fatal (the start tries again). */
void ids_sync(struct hub *h, const char *name, const struct auth_user *au);
/* The uid:gid name's server runs as and owns its home with, under the
 * current settings (allocating a local uid when needed). *own: 1 when
 * they are per user (HOME_UID or HOME_GID is ldap). */
int ids_for(struct hub *h, const char *name, long *uid, long *gid, int *own,
	    struct err *e);
/* Appends , "swarmhub": {"uid": .., "gid": .., "uid_source": ..} to a
 * user model (state lock held). */
void ids_model(struct strbuf *sb, const struct user *u);

/* ---- users and API tokens (users.c): store, then state, then audit ---- */
/* Who asked for a change, for the audit log (a NULL users_by: no row). */
struct users_by {
	const char *actor;
	const char *ip;
	const char *detail;	/* JSON, or NULL for the default */
};
/* Creates names (valid, none in the store yet; else ERR_CONFLICT), then
 * adds them to memory. */
int users_create(struct hub *h, const char *const *names, size_t n, int admin,
		 const struct users_by *by, struct err *e);
int users_set_admin(struct hub *h, const char *name, int admin,
		    const struct users_by *by, struct err *e);
/* new_name NULL: same; admin -1: same; hash NULL: same password. The
 * rename of the state entry is the caller's (after its home moved). */
int users_update(struct hub *h, const char *name, const char *new_name,
		 int admin, const char *hash, const struct users_by *by,
		 struct err *e);
int users_set_groups(struct hub *h, const char *name,
		     const char *const *groups, size_t n, struct err *e);
int users_delete(struct hub *h, const char *name, const struct users_by *by,
		 struct err *e);
/* Ends every session and API token of name (memory first). */
void users_revoke(struct hub *h, const char *name, const struct users_by *by);
/* Fills *out (id, created) after storing the token. */
int users_token_create(struct hub *h, const char *name, const char *hash,
		       const char *note, int64_t expires_ms,
		       const struct users_by *by, struct store_token *out,
		       struct err *e);
int users_token_delete(struct hub *h, const char *name, int64_t id,
		       const struct users_by *by, struct err *e);

/* ---- audit (writes through the store; never fails the caller) -------- */
void hub_audit(struct hub *h, const char *actor, const char *action,
	       const char *target, const char *detail, const char *ip);
/* Health from memory: the last ping, at most a second old. */
int hub_health(struct hub *h, char *msg, size_t size);
/* The thread that pings the database every second for hub_health (it
 * ends when h->stopping is set). */
int hub_health_start(struct hub *h, struct err *e);
void hub_health_stop(struct hub *h);

/* JSON request parsing (json.c): shared by the API and the fuzz target. */
struct json_t;
/* Parses body as a JSON object whose keys are all in allowed (NULL-ended
 * list); -1 with ERR_INVALID naming the problem. Caller json_decref's. */
int json_parse_object(const char *body, size_t len,
		      const char *const *allowed, struct json_t **out,
		      struct err *e);
/* Decodes application/x-www-form-urlencoded; returns the value of key
 * (heap) or NULL. Invalid encoding → NULL. */
char *form_value(const char *body, size_t len, const char *key);

#endif
