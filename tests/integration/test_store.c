/*
 * test_store.c - hub/store.c against a real PostgreSQL.
 *
 * Needs SWARMHUB_TEST_DB (tests/services/postgres.sh start DIR prints it).
 * Works in its own schemas t<pid> and t<pid>_c (search_path set through the
 * conninfo), dropped at the end, so reruns and parallel runs do not meet.
 * With SWARMHUB_TEST_PG_DIR set to that DIR it also stops and restarts the
 * server to check that the store reports the outage and recovers (do not
 * set it for runs that share the server with other tests).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../../hub/store.h"
#include "../lib/t.h"

static const char *db_uri;
static char schema[64], schema_c[64];

/* ---- helpers --------------------------------------------------------- */
static char *
conninfo_for(const char *sch)
{
	return xasprintf("%s%soptions=-csearch_path%%3D%s", db_uri,
			 strchr(db_uri, '?') ? "&" : "?", sch);
}

static PGconn *
admin_connect(void)
{
	PGconn *pg = PQconnectdb(db_uri);

	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	PQclear(PQexec(pg, "SET client_min_messages = warning"));
	return pg;
}

/* Runs a constant statement; returns the first value as a long, or -1. */
static long
admin_sql(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	long v = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "sql failed: %s: %s", sql, PQerrorMessage(pg));
		v = -1;
	} else if (PQntuples(r) > 0) {
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	}
	PQclear(r);
	return v;
}

static long
admin_sqlf(PGconn *pg, const char *fmt, const char *arg)
{
	char *sql = xasprintf(fmt, arg, arg, arg);
	long v = admin_sql(pg, sql);

	free(sql);
	return v;
}

struct ucopy {
	char name[256];
	int admin;
	int64_t created_ms, last_activity_ms;
	char hash[128];
	int has_hash;
	char groups[256];
};

struct ulist {
	struct ucopy *v;
	size_t n, cap;
	int stop_after;
};

static int
collect_user(void *ctx, const struct store_user *u)
{
	struct ulist *l = ctx;
	struct ucopy *c;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	c = &l->v[l->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", u->name);
	c->admin = u->admin;
	c->created_ms = u->created_ms;
	c->last_activity_ms = u->last_activity_ms;
	c->has_hash = u->password_hash != NULL;
	snprintf(c->hash, sizeof(c->hash), "%s",
		 u->password_hash ? u->password_hash : "");
	for (size_t i = 0; i < u->ngroups; i++) {
		size_t len = strlen(c->groups);

		snprintf(c->groups + len, sizeof(c->groups) - len, "%s%s",
			 i ? "," : "", u->groups[i]);
	}
	return l->stop_after && (int)l->n >= l->stop_after;
}

static void
load_users(struct store *st, struct ulist *l)
{
	struct err e = { 0 };

	l->n = 0;
	T_OK(store_users_load(st, collect_user, l, &e) == 0,
	     "users load: %s", e.msg);
}

static const struct ucopy *
find_user(const struct ulist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* ---- schema ---------------------------------------------------------- */
struct mig_arg {
	char *conninfo;
	int rc, version;
	struct err e;
};

static void *
migrate_thread(void *p)
{
	struct mig_arg *a = p;
	struct store *st = store_new(a->conninfo, 1);

	a->rc = store_migrate(st, &a->version, &a->e);
	store_free(st);
	return NULL;
}

static void
test_migrate(struct store *st, PGconn *pg)
{
	struct err e = { 0 };
	struct mig_arg a[2];
	pthread_t th[2];
	char *ci = conninfo_for(schema_c);
	char sql[256];
	int v = -1;

	T_OK(store_migrate(st, &v, &e) == 0, "migrate empty: %s", e.msg);
	T_OK(v == store_schema_latest(), "version %d is latest", v);
	v = -1;
	T_OK(store_migrate(st, &v, &e) == 0, "migrate again: %s", e.msg);
	T_OK(v == store_schema_latest(), "second migrate is a no-op");
	T_OK(admin_sqlf(pg, "SELECT count(*) FROM %s.schema_version", schema)
	     == store_schema_latest(), "one schema_version row per migration");

	/* Two hubs on an empty schema at once. */
	for (int i = 0; i < 2; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].conninfo = ci;
		pthread_create(&th[i], NULL, migrate_thread, &a[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		T_OK(a[i].rc == 0 && a[i].version == store_schema_latest(),
		     "concurrent migrate %d: %s", i, a[i].e.msg);
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM information_schema"
		 ".tables WHERE table_schema = '%s' AND table_name = 'users'",
		 schema_c);
	T_OK(admin_sql(pg, sql) == 1, "users table exists once");
	T_OK(admin_sqlf(pg, "SELECT count(*) FROM %s.schema_version",
			schema_c) == store_schema_latest(),
	     "concurrent migrations applied once");

	/* A database from a newer swarmhub. */
	snprintf(sql, sizeof(sql), "INSERT INTO %s.schema_version VALUES "
		 "(%d, now())", schema_c, store_schema_latest() + 1);
	T_OK(admin_sql(pg, sql) == 0, "fake newer schema");
	a[0].rc = 0;
	migrate_thread(&a[0]);
	T_OK(a[0].rc == -1 && a[0].e.code == ERR_INVALID,
	     "newer schema refused (code %d)", a[0].e.code);
	T_OK(strstr(a[0].e.msg, "newer than this swarmhub") != NULL,
	     "message says why: %s", a[0].e.msg);
	free(ci);
}

/* ---- users ----------------------------------------------------------- */
static void
test_users(struct store *st)
{
	const char *two[] = { "alice", "bob" };
	const char *clash[] = { "carol", "alice" };
	struct ulist l = { 0 };
	struct err e = { 0 };
	int64_t created = 0, now = time_now_ms();
	const struct ucopy *u;

	T_OK(store_users_create(st, two, 2, 0, &created, &e) == 0,
	     "create alice, bob: %s", e.msg);
	T_OK(llabs(created - now) < 60000, "created_ms is now");
	T_OK(store_users_create(st, clash, 2, 0, NULL, &e) == -1 &&
	     e.code == ERR_CONFLICT, "existing name: conflict");
	T_OK(strstr(e.msg, "'alice'") != NULL, "conflict names it: %s", e.msg);
	load_users(st, &l);
	T_OK(l.n == 2 && !find_user(&l, "carol"), "nothing created on clash");
	u = find_user(&l, "alice");
	T_OK(u && !u->admin && !u->has_hash && u->created_ms == created &&
	     u->last_activity_ms == 0, "alice loaded as created");

	T_OK(store_user_update(st, "alice", NULL, 1, &e) == 0, "make admin");
	T_OK(store_user_update(st, "alice", "alice2", -1, &e) == 0,
	     "rename: %s", e.msg);
	T_OK(store_user_update(st, "bob", "alice2", -1, &e) == -1 &&
	     e.code == ERR_CONFLICT, "rename onto existing: conflict");
	T_OK(store_user_update(st, "nobody", NULL, 1, &e) == -1 &&
	     e.code == ERR_NOTFOUND, "update unknown: notfound");
	T_STREQ(e.msg, "user 'nobody' not found", "notfound message");
	T_OK(store_user_set_password(st, "bob", "$y$hash", &e) == 0,
	     "set password");
	T_OK(store_user_set_password(st, "nobody", "x", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "password for unknown: notfound");
	load_users(st, &l);
	u = find_user(&l, "alice2");
	T_OK(u && u->admin && !find_user(&l, "alice"), "renamed, admin kept");
	u = find_user(&l, "bob");
	T_OK(u && u->has_hash && strcmp(u->hash, "$y$hash") == 0, "hash set");
	T_OK(store_user_set_password(st, "bob", NULL, &e) == 0, "clear pw");
	load_users(st, &l);
	u = find_user(&l, "bob");
	T_OK(u && !u->has_hash, "password removed");

	l.stop_after = 1;
	load_users(st, &l);
	T_OK(l.n == 1, "a callback returning non-zero stops the load");
	l.stop_after = 0;

	T_OK(store_user_delete(st, "alice2", &e) == 0, "delete");
	T_OK(store_user_delete(st, "alice2", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "delete twice: notfound");
	T_OK(store_user_delete(st, "bob", &e) == 0, "delete bob");
	load_users(st, &l);
	T_OK(l.n == 0, "no users left");
	free(l.v);
}

static void
test_weird_names(struct store *st)
{
	const char *names[] = {
		"o'brien", "back\\slash", "'; DROP TABLE users; --",
		"dq\"uote", "Zoë-名前-\xf0\x9f\x98\x80", "tab\tand,comma{}"
	};
	const char *groups[] = { "g'1", "\\g2", "'; DROP TABLE groups; --" };
	size_t n = sizeof(names) / sizeof(names[0]);
	struct ulist l = { 0 };
	struct err e = { 0 };
	const struct ucopy *u;
	int all = 1;

	T_OK(store_users_create(st, names, n, 0, NULL, &e) == 0,
	     "create odd names: %s", e.msg);
	T_OK(store_user_set_groups(st, names[2], groups, 3, &e) == 0,
	     "odd group names: %s", e.msg);
	load_users(st, &l);
	for (size_t i = 0; i < n; i++)
		all &= find_user(&l, names[i]) != NULL;
	T_OK(all && l.n == n, "odd names round-trip unchanged");
	u = find_user(&l, names[2]);
	T_STREQ(u ? u->groups : NULL, "'; DROP TABLE groups; --,\\g2,g'1",
		"odd groups round-trip, sorted");
	T_OK(store_user_update(st, names[4], "Zoë-renamed-ü", -1, &e) == 0,
	     "rename to UTF-8");
	load_users(st, &l);
	T_OK(find_user(&l, "Zoë-renamed-ü") != NULL, "UTF-8 rename kept");
	for (size_t i = 0; i < n; i++)
		store_user_delete(st, i == 4 ? "Zoë-renamed-ü" : names[i], &e);
	load_users(st, &l);
	T_OK(l.n == 0, "odd names deleted");
	free(l.v);
}

static void
test_groups_touch(struct store *st)
{
	const char *one[] = { "gina" };
	const char *g1[] = { "beta", "alpha" }, *g2[] = { "gamma" };
	const char *tn[] = { "gina", "gina", "ghost" };
	int64_t t0 = 1700000000123, ms[] = { t0, t0 + 5000, t0 + 9000 };
	struct ulist l = { 0 };
	struct err e = { 0 };
	const struct ucopy *u;

	store_users_create(st, one, 1, 0, NULL, &e);
	T_OK(store_user_set_groups(st, "gina", g1, 2, &e) == 0, "set groups");
	load_users(st, &l);
	u = find_user(&l, "gina");
	T_STREQ(u ? u->groups : NULL, "alpha,beta", "groups sorted");
	T_OK(store_user_set_groups(st, "gina", g2, 1, &e) == 0, "replace");
	load_users(st, &l);
	u = find_user(&l, "gina");
	T_STREQ(u ? u->groups : NULL, "gamma", "groups replaced");
	T_OK(store_user_set_groups(st, "gina", NULL, 0, &e) == 0, "clear");
	load_users(st, &l);
	u = find_user(&l, "gina");
	T_OK(u && u->groups[0] == '\0', "groups cleared");
	T_OK(store_user_set_groups(st, "ghost", g1, 2, &e) == -1 &&
	     e.code == ERR_NOTFOUND, "groups of unknown user: notfound");

	T_OK(store_users_touch(st, tn, ms, 3, &e) == 0, "touch: %s", e.msg);
	ms[0] = t0 + 1;
	T_OK(store_users_touch(st, tn, ms, 1, &e) == 0, "older touch");
	load_users(st, &l);
	u = find_user(&l, "gina");
	T_OK(u && u->last_activity_ms == t0 + 5000,
	     "touch keeps the max (%" PRId64 ")", u ? u->last_activity_ms : 0);
	store_user_delete(st, "gina", &e);
	free(l.v);
}

/* ---- sessions -------------------------------------------------------- */
struct slist {
	int n;
	char hashes[8][80];
	struct store_session last;
};

static int
collect_session(void *ctx, const struct store_session *s)
{
	struct slist *l = ctx;

	if (l->n < 8)
		snprintf(l->hashes[l->n], 80, "%s", s->hash);
	l->n++;
	if (strcmp(s->hash, "s1") == 0)
		l->last = *s;
	l->last.hash = NULL;
	l->last.user = NULL;
	return 0;
}

static void
test_sessions(struct store *st)
{
	const char *users[] = { "sam", "sue" };
	int64_t now = time_now_ms();
	struct store_session s1 = { "s1", "sam", now, now, now + 3600000, now };
	struct store_session s2 = { "s2", "sam", now - 7200000, 0, now - 1000,
				    0 };
	struct store_session s3 = { "s3", "sue", 0, 0, now + 3600000, 0 };
	struct store_session bad = { "sx", "ghost", 0, 0, now + 1000, 0 };
	const char *th[] = { "s1", "s1" };
	int64_t tms[] = { now + 2000, now + 1000 };
	struct slist l = { 0 };
	struct err e = { 0 };
	long n = -1;

	store_users_create(st, users, 2, 0, NULL, &e);
	T_OK(store_session_create(st, &s1, &e) == 0, "session: %s", e.msg);
	T_OK(store_session_create(st, &s2, &e) == 0, "expired session");
	T_OK(store_session_create(st, &s3, &e) == 0, "sue's session");
	T_OK(store_session_create(st, &s1, &e) == -1 &&
	     e.code == ERR_CONFLICT, "same hash twice: conflict");
	T_OK(store_session_create(st, &bad, &e) == -1 &&
	     e.code == ERR_NOTFOUND, "session of unknown user: notfound");
	T_OK(store_sessions_load(st, collect_session, &l, &e) == 0 &&
	     l.n == 2, "only live sessions load (%d)", l.n);
	T_OK(l.last.created_ms == now && l.last.expires_ms == now + 3600000 &&
	     l.last.auth_checked_ms == now, "session times round-trip");
	T_OK(store_sessions_touch(st, th, tms, 2, &e) == 0, "touch sessions");
	T_OK(store_session_set_checked(st, "s1", now + 500, &e) == 0,
	     "set checked");
	T_OK(store_session_set_checked(st, "nope", now, &e) == -1 &&
	     e.code == ERR_NOTFOUND, "check unknown session: notfound");
	memset(&l, 0, sizeof(l));
	store_sessions_load(st, collect_session, &l, &e);
	T_OK(l.last.last_seen_ms == now + 2000 &&
	     l.last.auth_checked_ms == now + 500, "touch and check stored");
	T_OK(store_sessions_expire(st, now, &n, &e) == 0 && n == 1,
	     "expire removes the expired one (%ld)", n);
	T_OK(store_session_delete(st, "s1", &e) == 0, "delete session");
	T_OK(store_session_delete(st, "s1", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "delete twice: notfound");
	T_OK(store_sessions_delete_user(st, "sue", &e) == 0, "delete sue's");
	T_OK(store_sessions_delete_user(st, "ghost", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "sessions of unknown user: notfound");
	memset(&l, 0, sizeof(l));
	store_sessions_load(st, collect_session, &l, &e);
	T_OK(l.n == 0, "no sessions left");
	store_session_create(st, &s3, &e);
	store_user_delete(st, "sue", &e);
	memset(&l, 0, sizeof(l));
	store_sessions_load(st, collect_session, &l, &e);
	T_OK(l.n == 0, "deleting a user deletes its sessions");
	store_user_delete(st, "sam", &e);
}

/* ---- tokens ---------------------------------------------------------- */
struct tlist {
	int n;
	int64_t ids[8];
	struct store_token t1;
	char note[64];
};

static int
collect_token(void *ctx, const struct store_token *t)
{
	struct tlist *l = ctx;

	if (l->n < 8)
		l->ids[l->n] = t->id;
	l->n++;
	if (strcmp(t->hash, "h1") == 0) {
		l->t1 = *t;
		snprintf(l->note, sizeof(l->note), "%s", t->note);
	}
	return 0;
}

static void
test_tokens(struct store *st)
{
	const char *users[] = { "tina", "tom" };
	int64_t now = time_now_ms(), id1 = 0, id2 = 0, id3 = 0, c = 0;
	int64_t ms[] = { now + 100, now + 50 };
	int64_t ids[2];
	struct tlist l = { 0 };
	struct err e = { 0 };

	store_users_create(st, users, 2, 0, NULL, &e);
	T_OK(store_token_create(st, "tina", "h1", "it's a note", 0, &id1, &c,
				&e) == 0 && id1 > 0, "token: %s", e.msg);
	T_OK(llabs(c - now) < 60000, "token created_ms");
	T_OK(store_token_create(st, "tina", "h2", NULL, now - 1000, &id2, NULL,
				&e) == 0, "expired token");
	T_OK(store_token_create(st, "tom", "h3", "", now + 60000, &id3, NULL,
				&e) == 0, "tom's token");
	T_OK(store_token_create(st, "tom", "h1", "", 0, NULL, NULL, &e) == -1
	     && e.code == ERR_CONFLICT, "same hash: conflict");
	T_OK(strstr(e.msg, "h1") == NULL, "conflict hides the hash");
	T_OK(store_token_create(st, "ghost", "h9", "", 0, NULL, NULL, &e) ==
	     -1 && e.code == ERR_NOTFOUND, "token of unknown user: notfound");
	T_OK(store_tokens_load(st, collect_token, &l, &e) == 0 && l.n == 2,
	     "expired tokens are not loaded (%d)", l.n);
	T_OK(l.t1.id == id1 && l.t1.expires_ms == 0 &&
	     strcmp(l.note, "it's a note") == 0, "token fields");
	ids[0] = id1;
	ids[1] = id1;
	T_OK(store_tokens_touch(st, ids, ms, 2, &e) == 0, "touch tokens");
	memset(&l, 0, sizeof(l));
	store_tokens_load(st, collect_token, &l, &e);
	T_OK(l.t1.last_used_ms == now + 100, "touch keeps the max");
	T_OK(store_token_delete(st, id1, "tom", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "delete another's token: notfound");
	T_OK(store_token_delete(st, id1, "tina", &e) == 0, "delete token");
	T_OK(store_tokens_delete_user(st, "tom", &e) == 0, "delete tom's");
	T_OK(store_tokens_delete_user(st, "ghost", &e) == -1 &&
	     e.code == ERR_NOTFOUND, "tokens of unknown user: notfound");
	memset(&l, 0, sizeof(l));
	store_tokens_load(st, collect_token, &l, &e);
	T_OK(l.n == 0, "no live tokens left");
	store_user_delete(st, "tina", &e);
	store_user_delete(st, "tom", &e);
	(void)id2;
	(void)id3;
}

/* ---- audit ----------------------------------------------------------- */
struct alist {
	int n;
	char actions[4][32];
	char detail[4][128];
	char actor[4][64];
};

static int
collect_audit(void *ctx, const struct store_audit *a)
{
	struct alist *l = ctx;

	if (l->n < 4) {
		snprintf(l->actions[l->n], 32, "%s", a->action);
		snprintf(l->detail[l->n], 128, "%s", a->detail);
		snprintf(l->actor[l->n], 64, "%s", a->actor);
	}
	l->n++;
	return 0;
}

static void
test_audit(struct store *st)
{
	struct alist l = { 0 };
	struct err e = { 0 };

	T_OK(store_audit(st, "admin", "first", "bob", "{\"a\": 1}", "::1",
			 &e) == 0, "audit: %s", e.msg);
	T_OK(store_audit(st, NULL, "second", NULL, NULL, NULL, &e) == 0,
	     "audit with defaults");
	T_OK(store_audit(st, "o'neil\\", "third", "x", "{\"q\": \"'\"}", "",
			 &e) == 0, "audit odd text");
	T_OK(store_audit(st, "a", "bad", "x", "not json", "", &e) == -1,
	     "audit detail must be JSON");
	T_OK(store_audit_list(st, 2, collect_audit, &l, &e) == 0 && l.n == 2,
	     "list honours limit");
	T_STREQ(l.actions[0], "third", "newest first");
	T_STREQ(l.actions[1], "second", "then older");
	T_STREQ(l.actor[0], "o'neil\\", "actor round-trip");
	T_STREQ(l.detail[1], "{}", "missing detail is {}");
	memset(&l, 0, sizeof(l));
	store_audit_list(st, 10, collect_audit, &l, &e);
	T_STREQ(l.detail[2], "{\"a\": 1}", "detail round-trip");
}

/* ---- pool under threads ---------------------------------------------- */
static void *
audit_thread(void *p)
{
	struct store *st = p;
	struct err e = { 0 };
	long fails = 0;

	for (int i = 0; i < 50; i++)
		if (store_audit(st, "thread", "pool", "", NULL, "", &e) < 0)
			fails++;
	return (void *)fails;
}

static void
test_pool(struct store *st)
{
	pthread_t th[4];
	long fails = 0;
	void *r;

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, audit_thread, st);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &r);
		fails += (long)r;
	}
	T_OK(fails == 0, "4 threads on a pool of 2: %ld failures", fails);
}

/* ---- bulk ------------------------------------------------------------ */
static int
count_user(void *ctx, const struct store_user *u)
{
	size_t *n = ctx;

	*n += 1 + u->ngroups * 0;
	return 0;
}

static void
test_bulk(struct store *st, PGconn *pg)
{
	char **names = xcalloc(10000, sizeof(*names));
	struct err e = { 0 };
	int64_t t0, ms_create, ms_load, ok = 1;
	size_t n = 0;

	for (int i = 0; i < 10000; i++)
		names[i] = xasprintf("bulk%05d", i);
	t0 = time_mono_ms();
	ok = store_users_create(st, (const char *const *)names, 1000, 0, NULL,
				&e) == 0;
	ms_create = time_mono_ms() - t0;
	T_OK(ok, "bulk create 1000: %s", e.msg);
	for (int b = 1; b < 10 && ok; b++)
		ok = store_users_create(st, (const char *const *)names +
					b * 1000, 1000, 0, NULL, &e) == 0;
	T_OK(ok, "bulk create 10000: %s", e.msg);
	T_OK(admin_sqlf(pg, "INSERT INTO %s.groups (name) SELECT 'grp' || i"
			" FROM generate_series(1, 20) i", schema) == 0 &&
	     admin_sqlf(pg, "INSERT INTO %s.user_groups SELECT u.id, g.id"
			" FROM %s.users u JOIN %s.groups g ON"
			" (u.id + g.id) %% 7 = 0", schema) == 0, "bulk groups");
	t0 = time_mono_ms();
	T_OK(store_users_load(st, count_user, &n, &e) == 0 && n == 10000,
	     "load 10000 users (%zu)", n);
	ms_load = time_mono_ms() - t0;
	printf("timing: users_create 1000 names %" PRId64 " ms, users_load "
	       "10000 users with groups %" PRId64 " ms\n", ms_create, ms_load);
	for (int i = 0; i < 10000; i++)
		free(names[i]);
	free(names);
	admin_sqlf(pg, "DELETE FROM %s.users", schema);
}

/* ---- outage ---------------------------------------------------------- */
static int
pg_script(const char *verb, const char *dir)
{
	const char *script = getenv("SWARMHUB_TEST_PG_SCRIPT");
	int status = -1;
	pid_t pid;

	if (script == NULL)
		script = "tests/services/postgres.sh";
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execl(script, script, verb, dir, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_outage(struct store *st, const char *dir)
{
	struct err e = { 0 };
	int64_t t0;
	int rc = -1;

	T_OK(store_ping(st, &e) == 0, "ping before outage: %s", e.msg);
	T_OK(pg_script("stop", dir) == 0, "postgres stopped");
	t0 = time_mono_ms();
	T_OK(store_ping(st, &e) == -1 && e.code == ERR_UNAVAILABLE,
	     "ping while down: unavailable (%s)", e.msg);
	T_OK(strncmp(e.msg, "database unavailable: ", 22) == 0,
	     "message: %s", e.msg);
	T_OK(store_audit(st, "x", "down", "", NULL, "", &e) == -1 &&
	     e.code == ERR_UNAVAILABLE, "write while down: unavailable");
	T_OK(store_ping(st, &e) == -1 && e.code == ERR_UNAVAILABLE,
	     "still unavailable, no hang");
	T_OK(time_mono_ms() - t0 < 5000, "reported promptly (%" PRId64 " ms)",
	     time_mono_ms() - t0);
	T_OK(pg_script("start", dir) == 0, "postgres started again");
	t0 = time_mono_ms();
	while (time_mono_ms() - t0 < 10000) {
		rc = store_ping(st, &e);
		if (rc == 0)
			break;
		usleep(200000);
	}
	T_OK(rc == 0, "ping recovers after restart (%" PRId64 " ms): %s",
	     time_mono_ms() - t0, e.msg);
	T_OK(store_audit(st, "x", "after.outage", "", NULL, "", &e) == 0,
	     "write after restart: %s", e.msg);
}

int
main(void)
{
	const char *pgdir;
	struct store *st;
	char *ci;
	PGconn *pg;

	db_uri = t_need_env("SWARMHUB_TEST_DB", "postgres",
			    "tests/services/postgres.sh start DIR");
	log_set_level(LOG_WARN);
	snprintf(schema, sizeof(schema), "t%ld", (long)getpid());
	snprintf(schema_c, sizeof(schema_c), "t%ld_c", (long)getpid());
	pg = admin_connect();
	T_OK(pg != NULL, "admin connection");
	if (pg == NULL)
		return t_done();
	T_OK(admin_sqlf(pg, "CREATE SCHEMA %s", schema) == 0 &&
	     admin_sqlf(pg, "CREATE SCHEMA %s", schema_c) == 0,
	     "fresh schemas");
	ci = conninfo_for(schema);
	st = store_new(ci, 2);
	test_migrate(st, pg);
	test_users(st);
	test_weird_names(st);
	test_groups_touch(st);
	test_sessions(st);
	test_tokens(st);
	test_audit(st);
	test_pool(st);
	test_bulk(st, pg);
	pgdir = getenv("SWARMHUB_TEST_PG_DIR");
	if (pgdir && *pgdir) {
		test_outage(st, pgdir);
		PQfinish(pg);
		pg = admin_connect();
	}
	store_free(st);
	free(ci);
	if (pg) {
		admin_sqlf(pg, "DROP SCHEMA %s CASCADE", schema);
		admin_sqlf(pg, "DROP SCHEMA %s CASCADE", schema_c);
		PQfinish(pg);
	}
	return t_done();
}
