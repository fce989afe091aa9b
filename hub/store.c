/*
 * store.c - the hub's PostgreSQL state behind store.h (the only libpq user).
 *
 * A fixed pool of PGconn, connected lazily: a slot holds NULL until a call
 * needs it, and a connection that breaks is finished and its slot set back
 * to NULL, so the next call reconnects by itself. Each checkout first drains
 * the socket (PQconsumeInput) so a connection the server closed while idle
 * (restart, admin shutdown) is noticed before a query is sent on it.
 * Every statement goes through PQexecParams; lists travel as one JSON text
 * parameter (json_array_elements_text / json_to_recordset), so no user value
 * is ever spliced into SQL. Row callbacks run after the connection has gone
 * back to the pool, so a callback may call the store again.
 * Ownership: the store owns its PGconns; a PGresult never leaves this file.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "store.h"

struct store {
	char *conninfo;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	PGconn **idle;		/* available slots; NULL: not connected */
	int nidle;
	int size;
	int down;		/* last attempt failed (for log transitions) */
};

struct db {
	struct store *st;
	PGconn *pg;
};

/* Times cross the API as ms since the epoch; 0 is NULL. */
#define MS(col) "(date_part('epoch', " col ") * 1000)::bigint"
#define TS(p) "to_timestamp(nullif(" p "::bigint, 0) / 1000.0)"
#define MIGRATE_LOCK "7243100517"

/* ---- migrations: one statement per string, NULL-terminated --------- */
static const char *const m1[] = {
	"CREATE TABLE users ("
	" id bigserial PRIMARY KEY,"
	" name text UNIQUE NOT NULL,"
	" admin boolean NOT NULL DEFAULT false,"
	" created timestamptz NOT NULL DEFAULT now(),"
	" last_activity timestamptz,"
	" password_hash text)",
	"CREATE TABLE groups ("
	" id bigserial PRIMARY KEY,"
	" name text UNIQUE NOT NULL,"
	" created timestamptz DEFAULT now())",
	"CREATE TABLE user_groups ("
	" user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,"
	" group_id bigint NOT NULL REFERENCES groups ON DELETE CASCADE,"
	" PRIMARY KEY (user_id, group_id))",
	"CREATE INDEX user_groups_group_idx ON user_groups (group_id)",
	"CREATE TABLE servers ("
	" id bigserial PRIMARY KEY,"
	" user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,"
	" name text NOT NULL DEFAULT '',"
	" state text NOT NULL DEFAULT 'stopped',"
	" service_id text,"
	" image text,"
	" user_options jsonb NOT NULL DEFAULT '{}',"
	" started timestamptz,"
	" last_activity timestamptz,"
	" last_error text,"
	" UNIQUE (user_id, name))",
	"CREATE TABLE sessions ("
	" hash text PRIMARY KEY,"
	" user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,"
	" created timestamptz NOT NULL DEFAULT now(),"
	" last_seen timestamptz,"
	" expires timestamptz NOT NULL,"
	" auth_checked timestamptz)",
	"CREATE INDEX sessions_user_idx ON sessions (user_id)",
	"CREATE TABLE api_tokens ("
	" id bigserial PRIMARY KEY,"
	" hash text UNIQUE NOT NULL,"
	" user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,"
	" note text NOT NULL DEFAULT '',"
	" created timestamptz NOT NULL DEFAULT now(),"
	" last_used timestamptz,"
	" expires timestamptz)",
	"CREATE INDEX api_tokens_user_idx ON api_tokens (user_id)",
	"CREATE TABLE audit_log ("
	" id bigserial PRIMARY KEY,"
	" ts timestamptz NOT NULL DEFAULT now(),"
	" actor text NOT NULL DEFAULT '',"
	" action text NOT NULL,"
	" target text NOT NULL DEFAULT '',"
	" detail jsonb NOT NULL DEFAULT '{}',"
	" ip text NOT NULL DEFAULT '')",
	"CREATE INDEX audit_log_ts_idx ON audit_log (ts)",
	NULL
};

/* 2: what happened to each server, for the home page and the culler. */
static const char *const m2[] = {
	"CREATE TABLE server_events ("
	" id bigserial PRIMARY KEY,"
	" user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,"
	" server text NOT NULL DEFAULT '',"
	" ts timestamptz NOT NULL DEFAULT now(),"
	" kind text NOT NULL,"
	" message text NOT NULL DEFAULT '')",
	"CREATE INDEX server_events_user_idx ON server_events (user_id, ts)",
	NULL
};

/* 3: a server's token changes at each start (a stale route or a leaked
 * token dies with the server). */
static const char *const m3[] = {
	"ALTER TABLE servers ADD COLUMN token_nonce text",
	NULL
};

/* 4: each user's own uid/gid for homes and servers (HOME_UID=ldap): the
 * directory's numbers in users, or one allocated from LOCAL_UID_RANGE.
 * An allocated uid is never given to anyone else, not even after its user
 * is deleted (files of theirs may remain): the row stays, user_id NULL. */
static const char *const m4[] = {
	"ALTER TABLE users ADD COLUMN uid integer, ADD COLUMN gid integer",
	"CREATE TABLE local_uids ("
	" uid integer PRIMARY KEY,"
	" user_id bigint UNIQUE REFERENCES users ON DELETE SET NULL,"
	" created timestamptz NOT NULL DEFAULT now())",
	NULL
};

static const char *const *const migrations[] = { m1, m2, m3, m4 };
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int
store_schema_latest(void)
{
	return NMIGRATIONS;
}

/* ---- pool ------------------------------------------------------------ */
struct store *
store_new(const char *conninfo, int pool_size)
{
	struct store *st = xcalloc(1, sizeof(*st));

	if (pool_size < 1)
		pool_size = 1;
	st->conninfo = xstrdup(conninfo ? conninfo : "");
	st->size = pool_size;
	st->idle = xcalloc((size_t)pool_size, sizeof(*st->idle));
	st->nidle = pool_size;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	return st;
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < st->nidle; i++)
		if (st->idle[i])
			PQfinish(st->idle[i]);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->idle);
	free(st->conninfo);
	free(st);
}

/* Copies the first line of a libpq message (never holds a password). */
static void
first_line(char *out, size_t size, const char *msg)
{
	size_t n;

	if (msg == NULL || *msg == '\0')
		msg = "connection lost";
	n = strcspn(msg, "\n");
	if (n >= size)
		n = size - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

static void
mark_down(struct store *st, const char *why)
{
	int was;

	pthread_mutex_lock(&st->mu);
	was = st->down;
	st->down = 1;
	pthread_mutex_unlock(&st->mu);
	if (!was)
		log_event(LOG_WARN, "db.unavailable", "err=%s", why);
}

static void
mark_up(struct store *st, int64_t ms)
{
	int was;

	pthread_mutex_lock(&st->mu);
	was = st->down;
	st->down = 0;
	pthread_mutex_unlock(&st->mu);
	if (was)
		log_event(LOG_INFO, "db.reconnect", "ms=%lld", (long long)ms);
}

/* Finishes a broken connection: ERR_UNAVAILABLE with libpq's words. */
static int
db_lost(struct db *d, const char *msg, struct err *e)
{
	char line[200];

	first_line(line, sizeof(line), msg);
	if (d->pg) {
		PQfinish(d->pg);
		d->pg = NULL;
	}
	mark_down(d->st, line);
	return err_set(e, ERR_UNAVAILABLE, "database unavailable: %s", line);
}

/* Server notices ("relation already exists, skipping") are not news. */
static void
notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int
db_connect(struct db *d, struct err *e)
{
	static const char *const keys[] = {
		"connect_timeout", "application_name", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"tcp_user_timeout", "dbname", NULL
	};
	/* dbname last: settings in the caller's conninfo win. */
	const char *vals[] = {
		"3", "swarmhub", "1", "10", "5", "3", "10000",
		d->st->conninfo, NULL
	};
	int64_t t0 = time_mono_ms();
	PGresult *r;

	d->pg = PQconnectdbParams(keys, vals, 1);
	if (d->pg == NULL)
		return err_set(e, ERR_INTERNAL, "database: out of memory");
	if (PQstatus(d->pg) != CONNECTION_OK)
		return db_lost(d, PQerrorMessage(d->pg), e);
	PQsetNoticeProcessor(d->pg, notice_quiet, NULL);
	r = PQexecParams(d->pg, "SET statement_timeout = '10s'", 0, NULL,
			 NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return db_lost(d, PQerrorMessage(d->pg), e);
	}
	PQclear(r);
	mark_up(d->st, time_mono_ms() - t0);
	return 0;
}

/* 1 when an idle connection still looks alive. Two reads: the first may
 * only fetch the server's FATAL message, the second sees the EOF. */
static int
alive(PGconn *pg)
{
	return PQstatus(pg) == CONNECTION_OK && PQconsumeInput(pg) &&
	    PQconsumeInput(pg) && PQstatus(pg) == CONNECTION_OK &&
	    PQtransactionStatus(pg) == PQTRANS_IDLE;
}

static int
db_get(struct store *st, struct db *d, struct err *e)
{
	d->st = st;
	pthread_mutex_lock(&st->mu);
	while (st->nidle == 0)
		pthread_cond_wait(&st->cv, &st->mu);
	d->pg = st->idle[--st->nidle];
	pthread_mutex_unlock(&st->mu);
	if (d->pg && !alive(d->pg)) {
		log_event(LOG_DEBUG, "db.drop", "reason=%s",
			  "closed while idle");
		PQfinish(d->pg);
		d->pg = NULL;
	}
	if (d->pg == NULL && db_connect(d, e) < 0)
		return -1;
	return 0;
}

static void
db_put(struct db *d)
{
	struct store *st = d->st;

	if (d->pg && PQtransactionStatus(d->pg) != PQTRANS_IDLE) {
		PQclear(PQexecParams(d->pg, "ROLLBACK", 0, NULL, NULL, NULL,
				     NULL, 0));
		if (PQtransactionStatus(d->pg) != PQTRANS_IDLE) {
			PQfinish(d->pg);
			d->pg = NULL;
		}
	}
	pthread_mutex_lock(&st->mu);
	st->idle[st->nidle++] = d->pg;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	d->pg = NULL;
}

/* Maps a failed result to struct err; the result is cleared. */
static int
db_error(struct db *d, PGresult *r, struct err *e)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *prim = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
	    : NULL;
	char msg[200];
	int rc;

	first_line(msg, sizeof(msg), prim ? prim : PQerrorMessage(d->pg));
	if (PQstatus(d->pg) == CONNECTION_BAD ||
	    (state && (strncmp(state, "08", 2) == 0 ||
		       strncmp(state, "57P", 3) == 0)))
		rc = db_lost(d, msg, e);
	else if (state && strcmp(state, "23505") == 0)
		rc = err_set(e, ERR_CONFLICT, "database: %s", msg);
	else if (state && strcmp(state, "57014") == 0)
		rc = err_set(e, ERR_TIMEOUT, "database: %s", msg);
	else
		rc = err_set(e, ERR_INTERNAL, "database: %s", msg);
	PQclear(r);
	return rc;
}

/* Runs one statement; NULL with *e filled unless it succeeded. */
static PGresult *
db_exec(struct db *d, const char *sql, int n, const char *const *v,
	struct err *e)
{
	PGresult *r = PQexecParams(d->pg, sql, n, NULL, v, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(r);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return r;
	db_error(d, r, e);
	return NULL;
}

static int
db_cmd(struct db *d, const char *sql, int n, const char *const *v,
       struct err *e)
{
	PGresult *r = db_exec(d, sql, n, v, e);

	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* One statement on a pooled connection. */
static PGresult *
run(struct store *st, const char *sql, int n, const char *const *v,
    struct err *e)
{
	struct db d;
	PGresult *r = NULL;

	if (db_get(st, &d, e) == 0)
		r = db_exec(&d, sql, n, v, e);
	db_put(&d);
	return r;
}

/* One statement; *rows gets the number of rows it touched. */
static int
run_cmd(struct store *st, const char *sql, int n, const char *const *v,
	long *rows, struct err *e)
{
	PGresult *r = run(st, sql, n, v, e);

	if (r == NULL)
		return -1;
	if (rows)
		*rows = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

static int64_t
col_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *
col_str(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

struct i64buf {
	char s[24];
};

static const char *
i64(struct i64buf *b, int64_t v)
{
	snprintf(b->s, sizeof(b->s), "%" PRId64, v);
	return b->s;
}

static int
no_user(const char *name, struct err *e)
{
	return err_set(e, ERR_NOTFOUND, "user '%s' not found", name);
}

/* ---- JSON parameters ------------------------------------------------- */
static char *
json_text(json_t *j, struct err *e)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s == NULL)
		err_set(e, ERR_INVALID, "a value is not valid UTF-8");
	return s;
}

/* ["a", "b", ...] */
static char *
json_strv(const char *const *v, size_t n, struct err *e)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *s = json_string(v[i] ? v[i] : "");

		if (s == NULL) {
			json_decref(a);
			return json_text(NULL, e);
		}
		json_array_append_new(a, s);
	}
	return json_text(a, e);
}

/* [{"k": key, "ms": ms}, ...]; keys are strings or (when ids) numbers. */
static char *
json_pairs(const char *const *keys, const int64_t *ids, const int64_t *ms,
	   size_t n, struct err *e)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *k = ids ? json_integer(ids[i]) :
		    json_string(keys[i] ? keys[i] : "");

		if (k == NULL) {
			json_decref(a);
			return json_text(NULL, e);
		}
		json_array_append_new(a, json_pack("{s:o,s:I}", "k", k, "ms",
						   (json_int_t)ms[i]));
	}
	return json_text(a, e);
}

/* ---- schema ---------------------------------------------------------- */
static int
migrate_one(struct db *d, int v, struct err *e)
{
	struct i64buf b;
	const char *p[1] = { i64(&b, v) };

	for (const char *const *s = migrations[v - 1]; *s; s++)
		if (db_cmd(d, *s, 0, NULL, e) < 0)
			return -1;
	if (db_cmd(d, "INSERT INTO schema_version (version, applied) "
		   "VALUES ($1::int, now())", 1, p, e) < 0)
		return -1;
	log_event(LOG_INFO, "db.migrate", "version=%d", v);
	return 0;
}

static int
migrate_locked(struct db *d, int *version, struct err *e)
{
	PGresult *r;
	int cur;

	if (db_cmd(d, "BEGIN", 0, NULL, e) < 0 ||
	    db_cmd(d, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", 0,
		   NULL, e) < 0 ||
	    db_cmd(d, "CREATE TABLE IF NOT EXISTS schema_version ("
		   " version int PRIMARY KEY,"
		   " applied timestamptz NOT NULL DEFAULT now())", 0, NULL,
		   e) < 0)
		return -1;
	r = db_exec(d, "SELECT coalesce(max(version), 0) FROM schema_version",
		    0, NULL, e);
	if (r == NULL)
		return -1;
	cur = (int)col_i64(r, 0, 0);
	PQclear(r);
	if (cur > NMIGRATIONS)
		return err_set(e, ERR_INVALID, "database schema version %d is "
			       "newer than this swarmhub (which knows up to "
			       "%d): upgrade swarmhub or restore the database",
			       cur, NMIGRATIONS);
	for (int v = cur + 1; v <= NMIGRATIONS; v++)
		if (migrate_one(d, v, e) < 0)
			return -1;
	if (db_cmd(d, "COMMIT", 0, NULL, e) < 0)
		return -1;
	*version = cur > NMIGRATIONS ? cur : NMIGRATIONS;
	return 0;
}

int
store_migrate(struct store *st, int *version, struct err *e)
{
	struct db d;
	int v = 0, rc = -1;

	if (db_get(st, &d, e) == 0)
		rc = migrate_locked(&d, &v, e);
	db_put(&d);
	if (rc == 0 && version)
		*version = v;
	return rc;
}

int
store_ping(struct store *st, struct err *e)
{
	PGresult *r = run(st, "SELECT 1", 0, NULL, e);

	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* ---- users ----------------------------------------------------------- */
/*
 * store_users_load reads three plain result sets in one read-only snapshot
 * (groups, users, memberships ordered by user) and joins them here: with
 * 10,000 users that is a few ms, where a per-user json_agg/array_agg costs
 * tens of ms of aggregation on the server.
 */
struct user_snap {
	PGresult *groups, *users, *members;
};

static int
snap_read(struct db *d, struct user_snap *s, struct err *e)
{
	if (db_cmd(d, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
		   NULL, e) < 0)
		return -1;
	s->groups = db_exec(d, "SELECT id, name FROM groups ORDER BY id", 0,
			    NULL, e);
	if (s->groups == NULL)
		return -1;
	s->users = db_exec(d, "SELECT id, name, admin, " MS("created") ", "
			   MS("last_activity") ", password_hash, uid, gid,"
			   " (SELECT l.uid FROM local_uids l"
			   " WHERE l.user_id = users.id)"
			   " FROM users ORDER BY id", 0, NULL, e);
	if (s->users == NULL)
		return -1;
	s->members = db_exec(d, "SELECT user_id, group_id FROM user_groups"
			     " ORDER BY user_id", 0, NULL, e);
	if (s->members == NULL)
		return -1;
	return db_cmd(d, "COMMIT", 0, NULL, e);
}

struct gname {
	int64_t id;
	const char *name;
};

static int
gname_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct gname *)a)->id;
	int64_t y = ((const struct gname *)b)->id;

	return x < y ? -1 : x > y;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills gv with the sorted group names of user uid; *m walks members. */
static size_t
user_groups_of(const struct user_snap *s, const struct gname *gt, size_t ng,
	       int64_t uid, int *m, const char **gv)
{
	int nm = PQntuples(s->members);
	size_t n = 0;

	while (*m < nm && col_i64(s->members, *m, 0) < uid)
		(*m)++;
	for (; *m < nm && col_i64(s->members, *m, 0) == uid; (*m)++) {
		struct gname key = { col_i64(s->members, *m, 1), NULL };
		const struct gname *g = bsearch(&key, gt, ng, sizeof(*gt),
						gname_cmp);

		if (g && n < ng)
			gv[n++] = g->name;
	}
	qsort(gv, n, sizeof(*gv), str_cmp);
	return n;
}

static void
snap_walk(const struct user_snap *s,
	  int (*cb)(void *ctx, const struct store_user *u), void *ctx)
{
	size_t ng = (size_t)PQntuples(s->groups);
	struct gname *gt = xcalloc(ng + 1, sizeof(*gt));
	const char **gv = xcalloc(ng + 1, sizeof(*gv));
	const PGresult *r = s->users;
	struct store_user u;
	int m = 0;

	for (size_t i = 0; i < ng; i++) {
		gt[i].id = col_i64(s->groups, (int)i, 0);
		gt[i].name = PQgetvalue(s->groups, (int)i, 1);
	}
	for (int i = 0; i < PQntuples(r); i++) {
		u.id = col_i64(r, i, 0);
		u.name = PQgetvalue(r, i, 1);
		u.admin = PQgetvalue(r, i, 2)[0] == 't';
		u.created_ms = col_i64(r, i, 3);
		u.last_activity_ms = col_i64(r, i, 4);
		u.password_hash = col_str(r, i, 5);
		u.uid = col_i64(r, i, 6);
		u.gid = col_i64(r, i, 7);
		u.local_uid = col_i64(r, i, 8);
		u.ngroups = user_groups_of(s, gt, ng, u.id, &m, gv);
		u.groups = gv;
		if (cb(ctx, &u))
			break;
	}
	free(gv);
	free(gt);
}

int
store_users_load(struct store *st,
		 int (*cb)(void *ctx, const struct store_user *u),
		 void *ctx, struct err *e)
{
	struct user_snap s = { NULL, NULL, NULL };
	struct db d;
	int rc = -1;

	if (db_get(st, &d, e) == 0)
		rc = snap_read(&d, &s, e);
	db_put(&d);
	if (rc == 0)
		snap_walk(&s, cb, ctx);
	PQclear(s.groups);
	PQclear(s.users);
	PQclear(s.members);
	return rc;
}

/* After a unique violation: which of names exists (or repeats)? */
static int
users_conflict(struct store *st, const char *list, const char *const *names,
	       size_t n, struct err *e)
{
	const char *p[1] = { list };
	struct err e2;
	PGresult *r = run(st, "SELECT u.name FROM users u WHERE u.name IN"
	    " (SELECT json_array_elements_text($1::json)) LIMIT 1", 1, p, &e2);

	if (r && PQntuples(r) == 1) {
		err_set(e, ERR_CONFLICT, "user '%s' already exists",
			PQgetvalue(r, 0, 0));
		PQclear(r);
		return -1;
	}
	PQclear(r);
	for (size_t i = 0; i < n; i++)
		for (size_t k = i + 1; k < n; k++)
			if (strcmp(names[i], names[k]) == 0)
				return err_set(e, ERR_CONFLICT, "user '%s' "
					       "is listed twice", names[i]);
	return err_set(e, ERR_CONFLICT, "user already exists");
}

int
store_users_create(struct store *st, const char *const *names, size_t n,
		   int admin, int64_t *created_ms, struct err *e)
{
	char *list;
	const char *p[2];
	PGresult *r;
	int rc = -1;

	if (n == 0) {
		if (created_ms)
			*created_ms = time_now_ms();
		return 0;
	}
	list = json_strv(names, n, e);
	if (list == NULL)
		return -1;
	p[0] = list;
	p[1] = admin ? "t" : "f";
	r = run(st, "WITH ins AS (INSERT INTO users (name, admin)"
		" SELECT value, $2::boolean"
		" FROM json_array_elements_text($1::json)"
		" RETURNING created) SELECT " MS("max(created)") " FROM ins",
		2, p, e);
	if (r) {
		if (created_ms)
			*created_ms = col_i64(r, 0, 0);
		PQclear(r);
		rc = 0;
	} else if (e && e->code == ERR_CONFLICT) {
		users_conflict(st, list, names, n, e);
	}
	free(list);
	return rc;
}

int
store_user_delete(struct store *st, const char *name, struct err *e)
{
	const char *p[1] = { name };
	long rows = 0;

	if (run_cmd(st, "DELETE FROM users WHERE name = $1", 1, p, &rows,
		    e) < 0)
		return -1;
	return rows ? 0 : no_user(name, e);
}

int
store_user_update(struct store *st, const char *name, const char *new_name,
		  int admin, struct err *e)
{
	struct i64buf b;
	const char *p[3] = { name, new_name, i64(&b, admin) };
	long rows = 0;

	if (run_cmd(st, "UPDATE users SET name = coalesce($2, name),"
		    " admin = CASE WHEN $3::int < 0 THEN admin"
		    " ELSE $3::int <> 0 END WHERE name = $1", 3, p, &rows,
		    e) < 0) {
		if (e && e->code == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "user '%s' already exists",
				new_name);
		return -1;
	}
	return rows ? 0 : no_user(name, e);
}

int
store_user_set_ids(struct store *st, const char *name, int64_t uid,
		   int64_t gid, struct err *e)
{
	struct i64buf b1, b2;
	const char *p[3] = { name, i64(&b1, uid), i64(&b2, gid) };
	long rows = 0;

	if (run_cmd(st, "UPDATE users SET uid = nullif($2::int, 0),"
		    " gid = nullif($3::int, 0) WHERE name = $1", 3, p, &rows,
		    e) < 0)
		return -1;
	return rows ? 0 : no_user(name, e);
}

/* The uid given to name earlier: 1 found, 0 none, -1 error. */
static int
local_uid_of(struct store *st, const char *name, int64_t *uid,
	     struct err *e)
{
	const char *p[1] = { name };
	PGresult *r = run(st, "SELECT l.uid, u.id FROM users u LEFT JOIN"
	    " local_uids l ON l.user_id = u.id WHERE u.name = $1", 1, p, e);
	int found;

	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return no_user(name, e);
	}
	found = !PQgetisnull(r, 0, 0);
	*uid = found ? col_i64(r, 0, 0) : 0;
	PQclear(r);
	return found;
}

/*
 * One try: the lowest uid of the range that no allocation and no user's
 * directory uid holds. PRIMARY KEY (uid) and UNIQUE (user_id) make two
 * hubs or threads racing for it lose with no row (ON CONFLICT DO NOTHING)
 * rather than share it: the caller looks again.
 */
static int
local_uid_try(struct store *st, const char *name, long min, long max,
	      int64_t *uid, struct err *e)
{
	struct i64buf b1, b2;
	const char *p[3] = { name, i64(&b1, min), i64(&b2, max) };
	PGresult *r = run(st, "INSERT INTO local_uids (uid, user_id)"
	    " SELECT g, u.id FROM users u, generate_series($2::int, $3::int) g"
	    " WHERE u.name = $1"
	    " AND NOT EXISTS (SELECT 1 FROM local_uids l WHERE l.uid = g)"
	    " AND NOT EXISTS (SELECT 1 FROM users x WHERE x.uid = g)"
	    " ORDER BY g LIMIT 1 ON CONFLICT DO NOTHING RETURNING uid", 3, p,
	    e);
	int got;

	if (r == NULL)
		return -1;
	got = PQntuples(r) == 1;
	if (got)
		*uid = col_i64(r, 0, 0);
	PQclear(r);
	return got;
}

int
store_user_local_uid(struct store *st, const char *name, long min, long max,
		     int64_t *uid, struct err *e)
{
	int rc;

	for (int i = 0; i < 20; i++) {
		if ((rc = local_uid_of(st, name, uid, e)) != 0)
			return rc < 0 ? -1 : 0;
		if ((rc = local_uid_try(st, name, min, max, uid, e)) != 0)
			return rc < 0 ? -1 : 0;
		/* lost a race (or the range is used up): look again */
	}
	return err_set(e, ERR_UNAVAILABLE, "no free uid left in "
		       "LOCAL_UID_RANGE %ld-%ld for '%s'", min, max, name);
}

int
store_user_set_password(struct store *st, const char *name, const char *hash,
			struct err *e)
{
	const char *p[2] = { name, hash };
	long rows = 0;

	if (run_cmd(st, "UPDATE users SET password_hash = $2 WHERE name = $1",
		    2, p, &rows, e) < 0)
		return -1;
	return rows ? 0 : no_user(name, e);
}

static int
set_groups_tx(struct db *d, const char *name, const char *list, struct err *e)
{
	const char *p[2] = { name, list };
	PGresult *r;
	int found;

	if (db_cmd(d, "BEGIN", 0, NULL, e) < 0)
		return -1;
	r = db_exec(d, "SELECT id FROM users WHERE name = $1 FOR UPDATE", 1,
		    p, e);
	if (r == NULL)
		return -1;
	found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		return no_user(name, e);
	if (db_cmd(d, "INSERT INTO groups (name) SELECT DISTINCT value"
		   " FROM json_array_elements_text($1::json)"
		   " ON CONFLICT (name) DO NOTHING", 1, p + 1, e) < 0 ||
	    db_cmd(d, "DELETE FROM user_groups WHERE user_id ="
		   " (SELECT id FROM users WHERE name = $1)", 1, p, e) < 0 ||
	    db_cmd(d, "INSERT INTO user_groups (user_id, group_id)"
		   " SELECT u.id, g.id FROM users u, groups g"
		   " WHERE u.name = $1 AND g.name IN"
		   " (SELECT json_array_elements_text($2::json))", 2, p, e) < 0)
		return -1;
	return db_cmd(d, "COMMIT", 0, NULL, e);
}

int
store_user_set_groups(struct store *st, const char *name,
		      const char *const *groups, size_t n, struct err *e)
{
	struct db d;
	char *list = json_strv(groups, n, e);
	int rc = -1;

	if (list == NULL)
		return -1;
	if (db_get(st, &d, e) == 0)
		rc = set_groups_tx(&d, name, list, e);
	db_put(&d);
	free(list);
	return rc;
}

/* Batched greatest(old, ms) updates; sql takes the JSON as $1. */
static int
touch(struct store *st, const char *sql, const char *const *keys,
      const int64_t *ids, const int64_t *ms, size_t n, struct err *e)
{
	char *list;
	const char *p[1];
	int rc;

	if (n == 0)
		return 0;
	list = json_pairs(keys, ids, ms, n, e);
	if (list == NULL)
		return -1;
	p[0] = list;
	rc = run_cmd(st, sql, 1, p, NULL, e);
	free(list);
	return rc;
}

int
store_users_touch(struct store *st, const char *const *names,
		  const int64_t *ms, size_t n, struct err *e)
{
	return touch(st, "UPDATE users u SET last_activity ="
	    " greatest(u.last_activity, " TS("t.ms") ")"
	    " FROM (SELECT k, max(ms) AS ms FROM json_to_recordset($1::json)"
	    "  AS x(k text, ms bigint) WHERE ms > 0 GROUP BY k) t"
	    " WHERE u.name = t.k", names, NULL, ms, n, e);
}

/* ---- sessions -------------------------------------------------------- */
int
store_sessions_load(struct store *st,
		    int (*cb)(void *ctx, const struct store_session *s),
		    void *ctx, struct err *e)
{
	PGresult *r = run(st, "SELECT s.hash, u.name, " MS("s.created") ", "
	    MS("s.last_seen") ", " MS("s.expires") ", " MS("s.auth_checked")
	    " FROM sessions s JOIN users u ON u.id = s.user_id"
	    " WHERE s.expires > now()", 0, NULL, e);
	struct store_session s;

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		s.hash = PQgetvalue(r, i, 0);
		s.user = PQgetvalue(r, i, 1);
		s.created_ms = col_i64(r, i, 2);
		s.last_seen_ms = col_i64(r, i, 3);
		s.expires_ms = col_i64(r, i, 4);
		s.auth_checked_ms = col_i64(r, i, 5);
		if (cb(ctx, &s))
			break;
	}
	PQclear(r);
	return 0;
}

int
store_session_create(struct store *st, const struct store_session *s,
		     struct err *e)
{
	struct i64buf b[4];
	const char *p[6] = {
		s->hash, s->user, i64(&b[0], s->created_ms),
		i64(&b[1], s->last_seen_ms), i64(&b[2], s->expires_ms),
		i64(&b[3], s->auth_checked_ms)
	};
	long rows = 0;

	if (s->expires_ms <= 0)
		return err_set(e, ERR_INVALID, "a session needs an expiry");
	if (run_cmd(st, "INSERT INTO sessions (hash, user_id, created,"
		    " last_seen, expires, auth_checked)"
		    " SELECT $1, id, coalesce(" TS("$3") ", now()), " TS("$4")
		    ", " TS("$5") ", " TS("$6") " FROM users WHERE name = $2",
		    6, p, &rows, e) < 0) {
		if (e && e->code == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "session already exists");
		return -1;
	}
	return rows ? 0 : no_user(s->user, e);
}

int
store_session_delete(struct store *st, const char *hash, struct err *e)
{
	const char *p[1] = { hash };
	long rows = 0;

	if (run_cmd(st, "DELETE FROM sessions WHERE hash = $1", 1, p, &rows,
		    e) < 0)
		return -1;
	return rows ? 0 : err_set(e, ERR_NOTFOUND, "session not found");
}

/* DELETE FROM table for one user; ERR_NOTFOUND when the user is unknown. */
static int
delete_for_user(struct store *st, const char *sql, const char *user,
		struct err *e)
{
	const char *p[1] = { user };
	PGresult *r = run(st, sql, 1, p, e);
	int found;

	if (r == NULL)
		return -1;
	found = col_i64(r, 0, 0) > 0;
	PQclear(r);
	return found ? 0 : no_user(user, e);
}

int
store_sessions_delete_user(struct store *st, const char *user, struct err *e)
{
	return delete_for_user(st, "WITH u AS (SELECT id FROM users"
	    " WHERE name = $1), d AS (DELETE FROM sessions"
	    " WHERE user_id IN (SELECT id FROM u) RETURNING 1)"
	    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM d)",
	    user, e);
}

int
store_session_set_checked(struct store *st, const char *hash, int64_t ms,
			  struct err *e)
{
	struct i64buf b;
	const char *p[2] = { hash, i64(&b, ms) };
	long rows = 0;

	if (run_cmd(st, "UPDATE sessions SET auth_checked = " TS("$2")
		    " WHERE hash = $1", 2, p, &rows, e) < 0)
		return -1;
	return rows ? 0 : err_set(e, ERR_NOTFOUND, "session not found");
}

int
store_sessions_touch(struct store *st, const char *const *hashes,
		     const int64_t *ms, size_t n, struct err *e)
{
	return touch(st, "UPDATE sessions s SET last_seen ="
	    " greatest(s.last_seen, " TS("t.ms") ")"
	    " FROM (SELECT k, max(ms) AS ms FROM json_to_recordset($1::json)"
	    "  AS x(k text, ms bigint) WHERE ms > 0 GROUP BY k) t"
	    " WHERE s.hash = t.k", hashes, NULL, ms, n, e);
}

int
store_sessions_expire(struct store *st, int64_t now_ms, long *n,
		      struct err *e)
{
	struct i64buf b;
	const char *p[1] = { i64(&b, now_ms) };
	long rows = 0;

	if (run_cmd(st, "DELETE FROM sessions WHERE expires <= "
		    "to_timestamp($1::bigint / 1000.0)", 1, p, &rows, e) < 0)
		return -1;
	if (n)
		*n = rows;
	return 0;
}

/* ---- API tokens ------------------------------------------------------ */
int
store_tokens_load(struct store *st,
		  int (*cb)(void *ctx, const struct store_token *t),
		  void *ctx, struct err *e)
{
	PGresult *r = run(st, "SELECT t.id, t.hash, u.name, t.note, "
	    MS("t.created") ", " MS("t.last_used") ", " MS("t.expires")
	    " FROM api_tokens t JOIN users u ON u.id = t.user_id"
	    " WHERE t.expires IS NULL OR t.expires > now()"
	    " ORDER BY t.id", 0, NULL, e);
	struct store_token t;

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		t.id = col_i64(r, i, 0);
		t.hash = PQgetvalue(r, i, 1);
		t.user = PQgetvalue(r, i, 2);
		t.note = PQgetvalue(r, i, 3);
		t.created_ms = col_i64(r, i, 4);
		t.last_used_ms = col_i64(r, i, 5);
		t.expires_ms = col_i64(r, i, 6);
		if (cb(ctx, &t))
			break;
	}
	PQclear(r);
	return 0;
}

int
store_token_create(struct store *st, const char *user, const char *hash,
		   const char *note, int64_t expires_ms, int64_t *id,
		   int64_t *created_ms, struct err *e)
{
	struct i64buf b;
	const char *p[4] = {
		user, hash, note ? note : "", i64(&b, expires_ms)
	};
	PGresult *r = run(st, "INSERT INTO api_tokens (hash, user_id, note,"
	    " expires) SELECT $2, id, $3, " TS("$4") " FROM users"
	    " WHERE name = $1 RETURNING id, " MS("created"), 4, p, e);
	int found;

	if (r == NULL) {
		if (e && e->code == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "token already exists");
		return -1;
	}
	found = PQntuples(r) == 1;
	if (found && id)
		*id = col_i64(r, 0, 0);
	if (found && created_ms)
		*created_ms = col_i64(r, 0, 1);
	PQclear(r);
	return found ? 0 : no_user(user, e);
}

int
store_token_delete(struct store *st, int64_t id, const char *user,
		   struct err *e)
{
	struct i64buf b;
	const char *p[2] = { i64(&b, id), user };
	long rows = 0;

	if (run_cmd(st, "DELETE FROM api_tokens WHERE id = $1::bigint AND"
		    " user_id = (SELECT id FROM users WHERE name = $2)", 2, p,
		    &rows, e) < 0)
		return -1;
	return rows ? 0 : err_set(e, ERR_NOTFOUND, "token %" PRId64 " of user "
				  "'%s' not found", id, user);
}

int
store_tokens_delete_user(struct store *st, const char *user, struct err *e)
{
	return delete_for_user(st, "WITH u AS (SELECT id FROM users"
	    " WHERE name = $1), d AS (DELETE FROM api_tokens"
	    " WHERE user_id IN (SELECT id FROM u) RETURNING 1)"
	    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM d)",
	    user, e);
}

int
store_tokens_touch(struct store *st, const int64_t *ids, const int64_t *ms,
		   size_t n, struct err *e)
{
	return touch(st, "UPDATE api_tokens a SET last_used ="
	    " greatest(a.last_used, " TS("t.ms") ")"
	    " FROM (SELECT k, max(ms) AS ms FROM json_to_recordset($1::json)"
	    "  AS x(k bigint, ms bigint) WHERE ms > 0 GROUP BY k) t"
	    " WHERE a.id = t.k", NULL, ids, ms, n, e);
}

/* ---- audit log ------------------------------------------------------- */
int
store_audit(struct store *st, const char *actor, const char *action,
	    const char *target, const char *detail, const char *ip,
	    struct err *e)
{
	const char *p[5] = { actor, action, target, detail, ip };

	if (action == NULL || *action == '\0')
		return err_set(e, ERR_INVALID, "audit entry without action");
	return run_cmd(st, "INSERT INTO audit_log (actor, action, target,"
	    " detail, ip) VALUES (coalesce($1, ''), $2, coalesce($3, ''),"
	    " coalesce($4::jsonb, '{}'), coalesce($5, ''))", 5, p, NULL, e);
}

int
store_audit_list(struct store *st, long limit,
		 int (*cb)(void *ctx, const struct store_audit *a),
		 void *ctx, struct err *e)
{
	struct i64buf b;
	const char *p[1] = { i64(&b, limit < 0 ? 0 : limit) };
	PGresult *r = run(st, "SELECT id, " MS("ts") ", actor, action, target,"
	    " detail::text, ip FROM audit_log ORDER BY ts DESC, id DESC"
	    " LIMIT $1::bigint", 1, p, e);
	struct store_audit a;

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		a.id = col_i64(r, i, 0);
		a.ts_ms = col_i64(r, i, 1);
		a.actor = PQgetvalue(r, i, 2);
		a.action = PQgetvalue(r, i, 3);
		a.target = PQgetvalue(r, i, 4);
		a.detail = PQgetvalue(r, i, 5);
		a.ip = PQgetvalue(r, i, 6);
		if (cb(ctx, &a))
			break;
	}
	PQclear(r);
	return 0;
}

/* ---- servers --------------------------------------------------------- */
int
store_servers_load(struct store *st,
		   int (*cb)(void *ctx, const struct store_server *s),
		   void *ctx, struct err *e)
{
	PGresult *r = run(st, "SELECT u.name, s.name, s.state, s.service_id,"
	    " s.image, s.user_options::text, " MS("s.started") ", "
	    MS("s.last_activity") ", s.last_error, s.token_nonce"
	    " FROM servers s JOIN users u ON u.id = s.user_id ORDER BY s.id",
	    0, NULL, e);
	struct store_server sv;

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		sv.user = PQgetvalue(r, i, 0);
		sv.name = PQgetvalue(r, i, 1);
		sv.state = PQgetvalue(r, i, 2);
		sv.service_id = col_str(r, i, 3);
		sv.image = col_str(r, i, 4);
		sv.user_options = PQgetvalue(r, i, 5);
		sv.started_ms = col_i64(r, i, 6);
		sv.last_activity_ms = col_i64(r, i, 7);
		sv.last_error = col_str(r, i, 8);
		sv.token_nonce = col_str(r, i, 9);
		if (cb(ctx, &sv))
			break;
	}
	PQclear(r);
	return 0;
}

int
store_server_save(struct store *st, const struct store_server *sv,
		  struct err *e)
{
	struct i64buf b1, b2;
	const char *p[10] = {
		sv->user, sv->name ? sv->name : "", sv->state,
		sv->service_id, sv->image,
		sv->user_options ? sv->user_options : "{}",
		i64(&b1, sv->started_ms), i64(&b2, sv->last_activity_ms),
		sv->last_error, sv->token_nonce
	};
	PGresult *r = run(st, "INSERT INTO servers (user_id, name, state,"
	    " service_id, image, user_options, started, last_activity,"
	    " last_error, token_nonce) SELECT id, $2, $3, $4, $5, $6::jsonb, "
	    TS("$7") ", " TS("$8") ", $9, $10 FROM users WHERE name = $1"
	    " ON CONFLICT (user_id, name) DO UPDATE SET state = $3,"
	    " service_id = $4, image = $5, user_options = $6::jsonb,"
	    " started = " TS("$7") ", last_activity = greatest("
	    "servers.last_activity, " TS("$8") "), last_error = $9,"
	    " token_nonce = $10 RETURNING id", 10, p, e);
	int found;

	if (r == NULL)
		return -1;
	found = PQntuples(r) == 1;
	PQclear(r);
	return found ? 0 : no_user(sv->user, e);
}

int
store_server_event(struct store *st, const char *user, const char *server,
		   const char *kind, const char *message, struct err *e)
{
	const char *p[4] = { user, server ? server : "", kind,
			     message ? message : "" };

	return run_cmd(st, "INSERT INTO server_events (user_id, server, kind,"
	    " message) SELECT id, $2, $3, $4 FROM users WHERE name = $1",
	    4, p, NULL, e);
}

int
store_server_delete(struct store *st, const char *user, const char *server,
		    struct err *e)
{
	const char *p[2] = { user, server };

	return run_cmd(st, "DELETE FROM servers WHERE name = $2 AND user_id ="
	    " (SELECT id FROM users WHERE name = $1)", 2, p, NULL, e);
}

int
store_servers_touch(struct store *st, const char *const *users,
		    const int64_t *ms, size_t n, struct err *e)
{
	return touch(st, "UPDATE servers s SET last_activity ="
	    " greatest(s.last_activity, " TS("v.ms") ") FROM users u,"
	    " (SELECT k, max(ms) AS ms FROM json_to_recordset($1::json)"
	    " AS x(k text, ms bigint) GROUP BY k) v"
	    " WHERE u.name = split_part(v.k, '/', 1) AND s.user_id = u.id"
	    " AND s.name = split_part(v.k, '/', 2)",
	    users, NULL, ms, n, e);
}
