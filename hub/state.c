/*
 * state.c - the hub's in-memory users, tokens and sessions.
 *
 * Maps are chained hash tables keyed by string (FNV-1a). Users are also
 * kept in an array ordered by id, which is the order the REST API lists
 * them in. Activity fields are written with relaxed atomics under the read
 * lock and collected by state_flush, which writes them to the store in one
 * statement per kind.
 * Ownership: the maps own their records; a record is freed when removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

struct map_ent {
	struct map_ent *next;
	const char *key;	/* points into the value */
	void *value;
};

struct map {
	struct map_ent **b;
	size_t nb;
	size_t n;
};

static uint64_t
fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct map *
map_new(void)
{
	struct map *m = xcalloc(1, sizeof(*m));

	m->nb = 64;
	m->b = xcalloc(m->nb, sizeof(*m->b));
	return m;
}

static void
map_grow(struct map *m)
{
	size_t nb = m->nb * 2;
	struct map_ent **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < m->nb; i++) {
		struct map_ent *e = m->b[i], *next;

		for (; e; e = next) {
			size_t j = fnv(e->key) & (nb - 1);

			next = e->next;
			e->next = b[j];
			b[j] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

static void *
map_get(const struct map *m, const char *key)
{
	struct map_ent *e = m->b[fnv(key) & (m->nb - 1)];

	for (; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e->value;
	return NULL;
}

static void
map_put(struct map *m, const char *key, void *value)
{
	struct map_ent *e;
	size_t i;

	if (m->n + 1 > m->nb)
		map_grow(m);
	i = fnv(key) & (m->nb - 1);
	e = xmalloc(sizeof(*e));
	e->key = key;
	e->value = value;
	e->next = m->b[i];
	m->b[i] = e;
	m->n++;
}

static void *
map_del(struct map *m, const char *key)
{
	struct map_ent **pp = &m->b[fnv(key) & (m->nb - 1)];

	for (; *pp; pp = &(*pp)->next) {
		struct map_ent *e = *pp;
		void *v;

		if (strcmp(e->key, key) != 0)
			continue;
		*pp = e->next;
		v = e->value;
		free(e);
		m->n--;
		return v;
	}
	return NULL;
}

/* Calls fn on every value; fn may not change the map. */
static void
map_each(struct map *m, void (*fn)(void *ctx, void *value), void *ctx)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct map_ent *e = m->b[i]; e; e = e->next)
			fn(ctx, e->value);
}

static void
map_free(struct map *m, void (*free_value)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct map_ent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			if (free_value)
				free_value(e->value);
			free(e);
		}
	}
	free(m->b);
	free(m);
}

/* ---- records --------------------------------------------------------- */
static void
user_free(void *p)
{
	struct user *u = p;

	free(u->name);
	free(u->password_hash);
	strv_free(u->groups);
	server_free(u->server);
	for (size_t i = 0; i < u->nnamed; i++)
		server_free(u->named[i]);
	free(u->named);
	free(u);
}

static void
token_free(void *p)
{
	struct token *t = p;

	free(t->user);
	free(t->note);
	free(t);
}

static void
session_free(void *p)
{
	struct session *s = p;

	free(s->user);
	free(s);
}

int
state_init(struct state *s)
{
	memset(s, 0, sizeof(*s));
	if (pthread_rwlock_init(&s->lock, NULL) != 0)
		return -1;
	s->users = map_new();
	s->tokens = map_new();
	s->sessions = map_new();
	return 0;
}

void
state_release(struct state *s)
{
	map_free(s->users, user_free);
	map_free(s->tokens, token_free);
	map_free(s->sessions, session_free);
	free(s->user_list);
	pthread_rwlock_destroy(&s->lock);
	memset(s, 0, sizeof(*s));
}

size_t
state_count_sessions(struct state *s)
{
	return s->sessions->n;
}

size_t
state_count_tokens(struct state *s)
{
	return s->tokens->n;
}

struct user *
state_user(struct state *s, const char *name)
{
	return map_get(s->users, name);
}

struct token *
state_token(struct state *s, const char *hash)
{
	return map_get(s->tokens, hash);
}

struct session *
state_session(struct state *s, const char *hash)
{
	return map_get(s->sessions, hash);
}

void
state_user_set_groups(struct user *u, const char *const *g, size_t n)
{
	strv_free(u->groups);
	u->groups = xcalloc(n + 1, sizeof(*u->groups));
	for (size_t i = 0; i < n; i++)
		u->groups[i] = xstrdup(g[i]);
	u->ngroups = n;
}

int64_t
state_next_id(struct state *s)
{
	return s->nusers ? s->user_list[s->nusers - 1]->id + 1 : 1;
}

struct user *
state_user_add(struct state *s, const struct store_user *su)
{
	struct user *u = xcalloc(1, sizeof(*u));
	size_t i;

	u->id = su->id;
	u->name = xstrdup(su->name);
	u->admin = su->admin;
	u->created_ms = su->created_ms;
	u->last_activity_ms = su->last_activity_ms;
	u->password_hash = su->password_hash ? xstrdup(su->password_hash)
					     : NULL;
	u->uid = su->uid;
	u->gid = su->gid;
	u->local_uid = su->local_uid;
	state_user_set_groups(u, su->groups, su->ngroups);
	map_put(s->users, u->name, u);
	if (s->nusers + 1 > s->cap_users) {
		s->cap_users = s->cap_users ? s->cap_users * 2 : 1024;
		s->user_list = xrealloc(s->user_list,
					s->cap_users * sizeof(*s->user_list));
	}
	/* ids grow, so this is an append except while loading out of order */
	for (i = s->nusers; i > 0 && s->user_list[i - 1]->id > u->id; i--)
		s->user_list[i] = s->user_list[i - 1];
	s->user_list[i] = u;
	s->nusers++;
	return u;
}

void
state_user_remove(struct state *s, const char *name)
{
	struct user *u = map_del(s->users, name);

	if (u == NULL)
		return;
	for (size_t i = 0; i < s->nusers; i++) {
		if (s->user_list[i] != u)
			continue;
		memmove(&s->user_list[i], &s->user_list[i + 1],
			(s->nusers - i - 1) * sizeof(*s->user_list));
		s->nusers--;
		break;
	}
	state_forget_user(s, name);
	user_free(u);
}

struct rename_ctx {
	const char *from, *to;
};

static void
rename_token(void *ctx, void *value)
{
	struct rename_ctx *c = ctx;
	struct token *t = value;

	if (strcmp(t->user, c->from) == 0) {
		free(t->user);
		t->user = xstrdup(c->to);
	}
}

static void
rename_session(void *ctx, void *value)
{
	struct rename_ctx *c = ctx;
	struct session *ss = value;

	if (strcmp(ss->user, c->from) == 0) {
		free(ss->user);
		ss->user = xstrdup(c->to);
	}
}

void
state_user_rename(struct state *s, struct user *u, const char *name)
{
	struct rename_ctx c = { u->name, name };

	map_each(s->tokens, rename_token, &c);
	map_each(s->sessions, rename_session, &c);
	map_del(s->users, u->name);
	free(u->name);
	u->name = xstrdup(name);
	map_put(s->users, u->name, u);
}

void
state_token_add(struct state *s, const struct store_token *st)
{
	struct token *t = xcalloc(1, sizeof(*t));

	t->id = st->id;
	snprintf(t->hash, sizeof(t->hash), "%s", st->hash);
	t->user = xstrdup(st->user);
	t->note = xstrdup(st->note ? st->note : "");
	t->created_ms = st->created_ms;
	t->last_used_ms = st->last_used_ms;
	t->expires_ms = st->expires_ms;
	state_token_remove(s, t->hash);
	map_put(s->tokens, t->hash, t);
}

void
state_token_remove(struct state *s, const char *hash)
{
	struct token *t = map_del(s->tokens, hash);

	if (t)
		token_free(t);
}

struct tokens_of {
	const char *user;
	int64_t id;
	struct token **v;
	size_t n, cap;
};

static void
pick_token(void *ctx, void *value)
{
	struct tokens_of *c = ctx;
	struct token *t = value;

	if ((c->user && strcmp(t->user, c->user) != 0) ||
	    (c->id && t->id != c->id))
		return;
	if (c->n == c->cap) {
		c->cap = c->cap * 2 + 8;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = t;
}

static int
cmp_token_id(const void *a, const void *b)
{
	const struct token *x = *(struct token *const *)a;
	const struct token *y = *(struct token *const *)b;

	return (x->id > y->id) - (x->id < y->id);
}

struct token **
state_tokens_of(struct state *s, const char *user, size_t *n)
{
	struct tokens_of c = { user, 0, NULL, 0, 0 };

	map_each(s->tokens, pick_token, &c);
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), cmp_token_id);
	*n = c.n;
	return c.v;
}

void
state_token_remove_id(struct state *s, int64_t id)
{
	struct tokens_of c = { NULL, id, NULL, 0, 0 };
	char hash[65];

	map_each(s->tokens, pick_token, &c);
	if (c.n) {
		memcpy(hash, c.v[0]->hash, 65);
		state_token_remove(s, hash);
	}
	free(c.v);
}

void
state_session_add(struct state *s, const struct store_session *ss)
{
	struct session *x = xcalloc(1, sizeof(*x));

	snprintf(x->hash, sizeof(x->hash), "%s", ss->hash);
	x->user = xstrdup(ss->user);
	x->created_ms = ss->created_ms;
	x->last_seen_ms = ss->last_seen_ms;
	x->expires_ms = ss->expires_ms;
	x->auth_checked_ms = ss->auth_checked_ms;
	map_put(s->sessions, x->hash, x);
}

void
state_session_remove(struct state *s, const char *hash)
{
	struct session *x = map_del(s->sessions, hash);

	if (x)
		session_free(x);
}

struct forget_ctx {
	const char *user;
	char (*hashes)[65];
	size_t n, cap;
};

static void
push_hash(struct forget_ctx *c, const char *user, const char *hash)
{
	if (strcmp(user, c->user) != 0)
		return;
	if (c->n == c->cap) {
		c->cap = c->cap * 2 + 8;
		c->hashes = xrealloc(c->hashes, c->cap * sizeof(*c->hashes));
	}
	memcpy(c->hashes[c->n++], hash, 65);
}

static void
collect_token(void *ctx, void *value)
{
	struct token *t = value;

	push_hash(ctx, t->user, t->hash);
}

static void
collect_session(void *ctx, void *value)
{
	struct session *ss = value;

	push_hash(ctx, ss->user, ss->hash);
}

void
state_forget_user(struct state *s, const char *user)
{
	struct forget_ctx c = { user, NULL, 0, 0 };

	map_each(s->tokens, collect_token, &c);
	for (size_t i = 0; i < c.n; i++)
		state_token_remove(s, c.hashes[i]);
	c.n = 0;
	map_each(s->sessions, collect_session, &c);
	for (size_t i = 0; i < c.n; i++)
		state_session_remove(s, c.hashes[i]);
	free(c.hashes);
}

/* ---- activity -------------------------------------------------------- */
static void
touch(int64_t *field, int *dirty, int64_t now_ms)
{
	int64_t old = __atomic_load_n(field, __ATOMIC_RELAXED);

	/* one-second resolution is plenty and saves cache-line traffic */
	if (now_ms - old < 1000)
		return;
	__atomic_store_n(field, now_ms, __ATOMIC_RELAXED);
	__atomic_store_n(dirty, 1, __ATOMIC_RELAXED);
}

void
state_touch_user(struct user *u, int64_t now_ms)
{
	touch(&u->last_activity_ms, &u->activity_dirty, now_ms);
}

void
state_touch_token(struct token *t, int64_t now_ms)
{
	touch(&t->last_used_ms, &t->dirty, now_ms);
}

void
state_touch_session(struct session *ss, int64_t now_ms)
{
	touch(&ss->last_seen_ms, &ss->dirty, now_ms);
}

/* ---- loading and flushing -------------------------------------------- */
static int
load_user(void *ctx, const struct store_user *u)
{
	state_user_add(ctx, u);
	return 0;
}

static int
load_token(void *ctx, const struct store_token *t)
{
	state_token_add(ctx, t);
	return 0;
}

static int
load_session(void *ctx, const struct store_session *ss)
{
	state_session_add(ctx, ss);
	return 0;
}

int
state_load(struct state *s, struct store *st, struct err *e)
{
	int rc;

	pthread_rwlock_wrlock(&s->lock);
	rc = store_users_load(st, load_user, s, e);
	if (rc == 0)
		rc = store_tokens_load(st, load_token, s, e);
	if (rc == 0)
		rc = store_sessions_load(st, load_session, s, e);
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

struct batch {
	char **keys;
	int64_t *ids;
	int64_t *ms;
	size_t n, cap;
};

static void
batch_add(struct batch *b, const char *key, int64_t id, int64_t ms)
{
	if (b->n == b->cap) {
		b->cap = b->cap * 2 + 64;
		b->keys = xrealloc(b->keys, b->cap * sizeof(*b->keys));
		b->ids = xrealloc(b->ids, b->cap * sizeof(*b->ids));
		b->ms = xrealloc(b->ms, b->cap * sizeof(*b->ms));
	}
	b->keys[b->n] = key ? xstrdup(key) : NULL;
	b->ids[b->n] = id;
	b->ms[b->n++] = ms;
}

static void
batch_release(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->keys[i]);
	free(b->keys);
	free(b->ids);
	free(b->ms);
	memset(b, 0, sizeof(*b));
}

static int
take_dirty(int *dirty)
{
	return __atomic_exchange_n(dirty, 0, __ATOMIC_RELAXED);
}

static void
dirty_token(void *ctx, void *value)
{
	struct token *t = value;

	if (take_dirty(&t->dirty))
		batch_add(ctx, NULL, t->id,
			  __atomic_load_n(&t->last_used_ms, __ATOMIC_RELAXED));
}

static void
dirty_session(void *ctx, void *value)
{
	struct session *ss = value;

	if (take_dirty(&ss->dirty))
		batch_add(ctx, ss->hash, 0, __atomic_load_n(&ss->last_seen_ms,
							    __ATOMIC_RELAXED));
}

/* key: "<user>" or "<user>/<server>" (write lock not needed: atomic). */
static void
remark_server(struct state *s, const char *key)
{
	const char *slash = strchr(key, '/');
	char *name = slash ? xstrndup(key, (size_t)(slash - key))
			   : xstrdup(key);
	struct user *u = state_user(s, name);
	struct server *sv = u ? user_server(u, slash ? slash + 1 : "") : NULL;

	if (sv)
		__atomic_store_n(&sv->activity_dirty, 1, __ATOMIC_RELAXED);
	free(name);
}

/* A failed write keeps the records dirty for the next flush. */
static int
remark(struct state *s, const struct batch *b, char kind)
{
	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < b->n; i++) {
		struct user *u;
		struct session *ss;
		struct tokens_of c = { NULL, b->ids[i], NULL, 0, 0 };

		if (kind == 'u' && (u = state_user(s, b->keys[i])))
			__atomic_store_n(&u->activity_dirty, 1,
					 __ATOMIC_RELAXED);
		if (kind == 'v')
			remark_server(s, b->keys[i]);
		if (kind == 's' && (ss = state_session(s, b->keys[i])))
			__atomic_store_n(&ss->dirty, 1, __ATOMIC_RELAXED);
		if (kind == 't') {
			map_each(s->tokens, pick_token, &c);
			if (c.n)
				__atomic_store_n(&c.v[0]->dirty, 1,
						 __ATOMIC_RELAXED);
			free(c.v);
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return -1;
}

long
state_flush(struct state *s, struct store *st, struct err *e)
{
	struct batch bu = { 0 }, bt = { 0 }, bs = { 0 }, bv = { 0 };
	long n;
	int rc = 0;

	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->nusers; i++) {
		struct user *u = s->user_list[i];

		if (take_dirty(&u->activity_dirty))
			batch_add(&bu, u->name, 0, __atomic_load_n(
			    &u->last_activity_ms, __ATOMIC_RELAXED));
		for (size_t k = 0; k < user_nservers(u); k++) {
			struct server *sv = user_server_at(u, k);
			char *key;

			if (sv == NULL || !take_dirty(&sv->activity_dirty))
				continue;
			key = *sv->name ? xasprintf("%s/%s", u->name,
						    sv->name) : NULL;
			batch_add(&bv, key ? key : u->name, 0,
				  __atomic_load_n(&sv->last_activity_ms,
						  __ATOMIC_RELAXED));
			free(key);
		}
	}
	map_each(s->tokens, dirty_token, &bt);
	map_each(s->sessions, dirty_session, &bs);
	pthread_rwlock_unlock(&s->lock);
	if (bu.n && store_users_touch(st, (const char *const *)bu.keys,
				      bu.ms, bu.n, e) < 0)
		rc = remark(s, &bu, 'u');
	if (bt.n && store_tokens_touch(st, bt.ids, bt.ms, bt.n, e) < 0)
		rc = remark(s, &bt, 't');
	if (bs.n && store_sessions_touch(st, (const char *const *)bs.keys,
					 bs.ms, bs.n, e) < 0)
		rc = remark(s, &bs, 's');
	if (bv.n && store_servers_touch(st, (const char *const *)bv.keys,
					bv.ms, bv.n, e) < 0)
		rc = remark(s, &bv, 'v');
	n = (long)(bu.n + bt.n + bs.n + bv.n);
	batch_release(&bv);
	batch_release(&bu);
	batch_release(&bt);
	batch_release(&bs);
	/* on failure the values stay in memory; the next activity re-marks */
	return rc ? -1 : n;
}

void
state_gauges(struct state *s, struct metrics_gauges *g)
{
	pthread_rwlock_rdlock(&s->lock);
	g->users = s->nusers;
	for (size_t i = 0; i < s->nusers; i++) {
		const struct user *u = s->user_list[i];

		g->admins += u->admin != 0;
		for (size_t k = 0; k < user_nservers(u); k++) {
			const struct server *sv = user_server_at(u, k);

			g->running += sv && sv->state == SRV_RUNNING;
			g->pending += sv && (sv->state == SRV_STARTING ||
					     sv->state == SRV_STOPPING);
		}
	}
	g->sessions = state_count_sessions(s);
	g->tokens = state_count_tokens(s);
	pthread_rwlock_unlock(&s->lock);
}

/* A server's memory: state owns servers (its progress is shared). */
void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	free(s->options_json);
	free(s->last_error);
	progress_unref(s->progress);
	free(s);
}

/* ---- a user's servers ------------------------------------------------ */
size_t
user_nservers(const struct user *u)
{
	return 1 + u->nnamed;
}

struct server *
user_server_at(const struct user *u, size_t i)
{
	return i == 0 ? u->server : i <= u->nnamed ? u->named[i - 1] : NULL;
}

struct server *
user_server(const struct user *u, const char *name)
{
	if (*name == '\0')
		return u->server;
	for (size_t i = 0; i < u->nnamed; i++)
		if (strcmp(u->named[i]->name, name) == 0)
			return u->named[i];
	return NULL;
}

struct server *
user_server_add(struct user *u, const char *name)
{
	struct server *s = xcalloc(1, sizeof(*s));

	snprintf(s->name, sizeof(s->name), "%s", name);
	if (*name == '\0') {
		server_free(u->server);
		u->server = s;
		return s;
	}
	u->named = xrealloc(u->named, (u->nnamed + 1) * sizeof(*u->named));
	u->named[u->nnamed++] = s;
	return s;
}

void
user_server_remove(struct user *u, const char *name)
{
	for (size_t i = 0; i < u->nnamed; i++) {
		if (strcmp(u->named[i]->name, name) != 0)
			continue;
		server_free(u->named[i]);
		memmove(&u->named[i], &u->named[i + 1],
			(u->nnamed - i - 1) * sizeof(*u->named));
		u->nnamed--;
		return;
	}
}

size_t
user_active_servers(const struct user *u)
{
	size_t n = 0;

	for (size_t i = 0; i < user_nservers(u); i++) {
		const struct server *s = user_server_at(u, i);

		n += s && s->state != SRV_STOPPED;
	}
	return n;
}

enum srv_state
user_busiest_state(const struct user *u)
{
	enum srv_state st = SRV_STOPPED;

	for (size_t i = 0; i < user_nservers(u); i++) {
		const struct server *s = user_server_at(u, i);

		if (s == NULL || s->state == SRV_STOPPED)
			continue;
		if (s->state != SRV_RUNNING || st == SRV_STOPPED)
			st = s->state;
	}
	return st;
}
