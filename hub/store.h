/*
 * store.h - the hub's PostgreSQL state (libpq lives only in store.c).
 *
 * PostgreSQL is the source of truth; the hub keeps caches in memory that it
 * fills at start with the *_load functions and updates after each write.
 * Every function takes a connection from a small pool, runs parameterised
 * statements only (PQexecParams), and returns 0 or -1 with *e filled:
 *   ERR_UNAVAILABLE  the database cannot be reached (the connection is reset
 *                    and the next call reconnects by itself)
 *   ERR_NOTFOUND     the named row does not exist
 *   ERR_CONFLICT     a unique name already exists
 *   ERR_INVALID      the schema is newer than this binary (store_migrate)
 *   ERR_INTERNAL     anything else (the message carries PostgreSQL's words)
 * Multi-row writes run in one transaction: all or nothing.
 * Times are milliseconds since the epoch; 0 means SQL NULL.
 * All functions are thread-safe.
 */
#ifndef SWARMHUB_STORE_H
#define SWARMHUB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "../common/common.h"

struct store;

/* Does not connect yet. conninfo: a libpq URI or key=value string. */
struct store *store_new(const char *conninfo, int pool_size);
void store_free(struct store *st);

/*
 * Applies the numbered migrations that are missing, inside one transaction
 * holding a transaction-level advisory lock (two hubs starting at once on
 * an empty database serialise). A database whose schema_version is newer
 * than the binary's newest migration: ERR_INVALID, message saying so.
 * *version gets the schema version in force afterwards.
 */
int store_migrate(struct store *st, int *version, struct err *e);
/* Newest migration this binary knows. */
int store_schema_latest(void);
/* A cheap round trip (SELECT 1) with a short timeout. */
int store_ping(struct store *st, struct err *e);

/* ---- users ----------------------------------------------------------- */
struct store_user {
	int64_t id;
	const char *name;
	int admin;
	int64_t created_ms;
	int64_t last_activity_ms;
	const char *password_hash;	/* NULL when none is set */
	const char *const *groups;	/* group names, sorted */
	size_t ngroups;
	int64_t uid, gid;		/* the directory's numbers; 0: none */
	int64_t local_uid;		/* from LOCAL_UID_RANGE; 0: none */
};
/* Calls cb for every user (borrowed fields valid during the call only);
 * a cb returning non-zero stops the iteration (store_users_load returns 0). */
int store_users_load(struct store *st,
		     int (*cb)(void *ctx, const struct store_user *u),
		     void *ctx, struct err *e);
/* Creates all the names in one transaction; any existing one: ERR_CONFLICT
 * naming it, nothing created. created_ms gets the creation time. */
int store_users_create(struct store *st, const char *const *names, size_t n,
		       int admin, int64_t *created_ms, struct err *e);
/* Deletes the user with servers, sessions, tokens and memberships. */
int store_user_delete(struct store *st, const char *name, struct err *e);
/* new_name NULL keeps the name; admin -1 keeps the flag. */
int store_user_update(struct store *st, const char *name,
		      const char *new_name, int admin, struct err *e);
/* The directory's uid and gid numbers of the user (0: none, stored as
 * NULL). */
int store_user_set_ids(struct store *st, const char *name, int64_t uid,
		       int64_t gid, struct err *e);
/* The uid of LOCAL_UID_RANGE [min, max] given to name: the one it has, or
 * the lowest one that no other user has ever had and that no user has as
 * a directory uid (unique even when hubs race). ERR_UNAVAILABLE when the
 * range is used up, ERR_NOTFOUND without such a user. */
int store_user_local_uid(struct store *st, const char *name, long min,
			 long max, int64_t *uid, struct err *e);
/* hash NULL removes the password. */
int store_user_set_password(struct store *st, const char *name,
			    const char *hash, struct err *e);
/* Replaces the user's group memberships (groups created as needed). */
int store_user_set_groups(struct store *st, const char *name,
			  const char *const *groups, size_t n, struct err *e);
/* Batched activity: last_activity = greatest(old, ms[i]) for names[i]. */
int store_users_touch(struct store *st, const char *const *names,
		      const int64_t *ms, size_t n, struct err *e);

/* ---- sessions (the id is stored only as its SHA-256 hex) ------------- */
struct store_session {
	const char *hash;
	const char *user;
	int64_t created_ms;
	int64_t last_seen_ms;
	int64_t expires_ms;	/* absolute expiry */
	int64_t auth_checked_ms;	/* last time the authenticator agreed */
};
/* Only sessions not yet expired. */
int store_sessions_load(struct store *st,
			int (*cb)(void *ctx, const struct store_session *s),
			void *ctx, struct err *e);
int store_session_create(struct store *st, const struct store_session *s,
			 struct err *e);
int store_session_delete(struct store *st, const char *hash, struct err *e);
int store_sessions_delete_user(struct store *st, const char *user,
			       struct err *e);
int store_session_set_checked(struct store *st, const char *hash,
			      int64_t ms, struct err *e);
/* Batched: last_seen = greatest(old, ms[i]). */
int store_sessions_touch(struct store *st, const char *const *hashes,
			 const int64_t *ms, size_t n, struct err *e);
/* Deletes sessions with expires <= now_ms; *n gets how many. */
int store_sessions_expire(struct store *st, int64_t now_ms, long *n,
			  struct err *e);

/* ---- API tokens (stored only as their SHA-256 hex) ------------------- */
struct store_token {
	int64_t id;
	const char *hash;
	const char *user;
	const char *note;	/* "" when none */
	int64_t created_ms;
	int64_t last_used_ms;
	int64_t expires_ms;	/* 0: never */
};
/* Only tokens not yet expired. */
int store_tokens_load(struct store *st,
		      int (*cb)(void *ctx, const struct store_token *t),
		      void *ctx, struct err *e);
/* Fills *id and *created_ms. */
int store_token_create(struct store *st, const char *user, const char *hash,
		       const char *note, int64_t expires_ms, int64_t *id,
		       int64_t *created_ms, struct err *e);
/* ERR_NOTFOUND unless a token with that id belongs to user. */
int store_token_delete(struct store *st, int64_t id, const char *user,
		       struct err *e);
int store_tokens_delete_user(struct store *st, const char *user,
			     struct err *e);
/* Batched: last_used = greatest(old, ms[i]). */
int store_tokens_touch(struct store *st, const int64_t *ids,
		       const int64_t *ms, size_t n, struct err *e);

/* ---- servers (one row per user server; "" is the default one) ------- */
struct store_server {
	const char *user;
	const char *name;
	const char *state;	/* "stopped", "pending", "running", "stopping" */
	const char *service_id;	/* NULL when none */
	const char *image;	/* NULL when none */
	const char *user_options;	/* JSON object text */
	int64_t started_ms;
	int64_t last_activity_ms;
	const char *last_error;	/* last failure or cull reason, NULL: none */
	const char *token_nonce;	/* per-start part of the server token */
};
int store_servers_load(struct store *st,
		       int (*cb)(void *ctx, const struct store_server *s),
		       void *ctx, struct err *e);
/* Inserts or updates the row of (user, name); last_activity only grows. */
int store_server_save(struct store *st, const struct store_server *s,
		      struct err *e);
/* Appends to the server's history ("spawn", "ready", "failed", "stop",
 * "cull", "adopted", "gone"). */
int store_server_event(struct store *st, const char *user, const char *server,
		       const char *kind, const char *message, struct err *e);
/* Deletes the row of a named server (its history stays). */
int store_server_delete(struct store *st, const char *user,
			const char *server, struct err *e);
/* Batched activity of users' servers: keys "<user>" (the default server)
 * or "<user>/<server>". */
int store_servers_touch(struct store *st, const char *const *users,
			const int64_t *ms, size_t n, struct err *e);

/* ---- audit log ------------------------------------------------------- */
struct store_audit {
	int64_t id;
	int64_t ts_ms;
	const char *actor;	/* "" for anonymous */
	const char *action;	/* "login", "login.failed", "user.create", ... */
	const char *target;	/* "" when none */
	const char *detail;	/* JSON text, "{}" when none */
	const char *ip;		/* "" when unknown */
};
/* detail: JSON object text or NULL. */
int store_audit(struct store *st, const char *actor, const char *action,
		const char *target, const char *detail, const char *ip,
		struct err *e);
/* Newest first, at most limit entries. */
int store_audit_list(struct store *st, long limit,
		     int (*cb)(void *ctx, const struct store_audit *a),
		     void *ctx, struct err *e);

#endif
