/*
 * ctl.h - internals of swarmhubctl, the admin CLI: a thin client of the
 * hub's REST API (JupyterHub's dialect, under /hub/api).
 *
 * swarmhubctl.c parses the command line against the command table and
 * calls one cmd_* function; rest.c is the only file that sees libcurl;
 * out.c prints tables, times and JSON; users.c, servers.c, tokens.c,
 * cleanup.c, orphans.c, doctor.c and nodes.c hold the commands. A new command is
 * one row in the table in swarmhubctl.c plus its cmd_* function.
 * Ownership: struct ctl owns the URL, the token and the curl handle for the
 * process; json_t values returned through out-parameters belong to the
 * caller (json_decref).
 */
#ifndef SWARMHUB_CTL_H
#define SWARMHUB_CTL_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "../../common/common.h"

/* Results of a cmd_* function besides 0 (ok) and -1 (failure, e filled). */
#define CTL_USAGE	(-2)	/* bad arguments, e filled: exit 2 */
#define CTL_REPORTED	(-3)	/* failures already printed: exit 1 */

struct ctl {
	char *url;		/* base URL, no trailing slash */
	char *token;		/* API token: never printed */
	int json;		/* --json: raw JSON instead of tables */
	void *curl;		/* CURL *, owned by rest.c */
};

/* An option of a command: --name, or --name ARG when arg is not NULL. */
struct opt {
	const char *name;
	const char *arg;
	const char *help;
};

#define ARGS_MAX_OPTS 8
struct args {
	char **pos;			/* positional arguments (borrowed) */
	size_t npos;
	const struct opt *opts;		/* the command's options */
	const char *val[ARGS_MAX_OPTS];	/* value per opt; "" for a flag;
					   NULL when absent */
};

/* The value of option name ("" for a set flag), or NULL when not given. */
const char *args_get(const struct args *a, const char *name);

/* Fills *e with a usage error and returns CTL_USAGE. */
int usage_err(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "swarmhubctl: <e->msg>" on one line to stderr. */
void ctl_report(const struct err *e);

/* ---- rest.c ---------------------------------------------------------- */
int rest_init(struct ctl *c, struct err *e);
void rest_release(struct ctl *c);
/*
 * Sends method to path (below the base URL, "/hub/api/..."), with body as
 * JSON when not NULL. On a 2xx answer returns 0, *status the HTTP status
 * and *out the parsed body (NULL when empty). Otherwise returns -1 with
 * *out NULL and e->msg "<what>: <the hub's message or curl's error>".
 */
int rest_call(struct ctl *c, const char *method, const char *path,
	      json_t *body, json_t **out, long *status, const char *what,
	      struct err *e);
/*
 * GETs every page of a paginated list (path, query may be NULL) and
 * returns all items as one array in *items. Same errors as rest_call.
 */
int rest_get_all(struct ctl *c, const char *path, const char *query,
		 json_t **items, const char *what, struct err *e);
/* Returns a heap path built from fmt, whose only conversion is %s; each
 * %s argument is percent-encoded as one path segment. */
char *rest_pathf(struct ctl *c, const char *fmt, ...);

/* ---- out.c ----------------------------------------------------------- */
struct table {
	size_t ncols, nrows, cap;
	char **cells;			/* (nrows + 1) * ncols, header first */
};
void table_init(struct table *t, size_t ncols, const char *const *head);
/* Adds a row of ncols strings (NULL shown as "-"); cells are copied and
 * control characters replaced. */
void table_add(struct table *t, const char *const *row);
void table_print(const struct table *t, FILE *f);
void table_release(struct table *t);

/* "2026-11-23 10:02Z" for an ISO 8601 string, "-" for null, else the
 * string as is; returns buf or a borrowed string. */
const char *fmt_time(const json_t *v, char *buf, size_t size);
/* 1 if v (ISO 8601 or null) is null or older than cutoff_ms. */
int time_older(const json_t *v, int64_t cutoff_ms);
/* Pretty-prints j and a newline on stdout (nothing for NULL). */
void json_print(const json_t *j);
/* The string member key of o, or NULL. */
const char *json_str(const json_t *o, const char *key);
/*
 * Reads a password: one line from stdin, or, when stdin is a terminal,
 * prompted twice without echo and compared. Returns a heap string (caller
 * wipes and frees with password_free) or NULL with *e filled.
 */
char *password_read(struct err *e);
void password_free(char *pw);

/* ---- users.c: helpers the other commands share --------------------- */
/* "ready", "starting", "stopping" for a server model, or NULL if none of
 * them (not running). */
const char *server_state(const json_t *s);
/* The user's default server (servers[""]) or NULL. */
json_t *user_server(const json_t *u);
/* A JSON array of the positional arguments from index from; NULL with a
 * usage error when one is not UTF-8. */
json_t *names_json(const struct args *a, size_t from, struct err *e);

/* ---- commands -------------------------------------------------------- */
int cmd_users_list(struct ctl *c, const struct args *a, struct err *e);
int cmd_users_add(struct ctl *c, const struct args *a, struct err *e);
int cmd_users_remove(struct ctl *c, const struct args *a, struct err *e);
int cmd_users_set_admin(struct ctl *c, const struct args *a, struct err *e);
int cmd_users_set_password(struct ctl *c, const struct args *a,
			   struct err *e);
int cmd_servers_list(struct ctl *c, const struct args *a, struct err *e);
int cmd_servers_start(struct ctl *c, const struct args *a, struct err *e);
int cmd_servers_stop(struct ctl *c, const struct args *a, struct err *e);
int cmd_tokens_list(struct ctl *c, const struct args *a, struct err *e);
int cmd_tokens_create(struct ctl *c, const struct args *a, struct err *e);
int cmd_tokens_revoke(struct ctl *c, const struct args *a, struct err *e);
int cmd_cleanup(struct ctl *c, const struct args *a, struct err *e);
int cmd_orphans(struct ctl *c, const struct args *a, struct err *e);
int cmd_doctor(struct ctl *c, const struct args *a, struct err *e);
int cmd_nodes(struct ctl *c, const struct args *a, struct err *e);
int cmd_images_pull(struct ctl *c, const struct args *a, struct err *e);

#endif
