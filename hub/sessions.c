/*
 * sessions.c - who sent a request (API token or session cookie), logins,
 * logouts, XSRF tokens and LDAP re-checks (the failed-login limiter is
 * ratelimit.c).
 *
 * Session ids and tokens are 256-bit random values; only their SHA-256 is
 * kept (memory and database). Lookups are memory-only and never wait: the
 * edge identifies callers on its event loops. What may wait (re-reading a
 * user's groups from the directory when a session or token was last checked
 * AUTH_RECHECK ago, deleting an expired session) is queued for BG_THREADS
 * workers; the request meanwhile goes on with the still-valid credentials.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "hub.h"

#define BG_THREADS 2		/* directory re-checks at once */
#define BG_QUEUE_MAX 1024	/* beyond: dropped, asked again later */

/* Work that may wait on the directory or the database, done off the
 * request threads (the edge's event loops above all). */
enum job_kind { JOB_RECHECK, JOB_SESSION_DELETE };
static void bg_push(enum job_kind kind, const char *key,
		    const char *session_hash);


/* ---- identifying a request ------------------------------------------- */

/*
 * SHA-256 (hex) of a 64-character token or session id, from this thread's
 * last few: a pure function, so revocation and expiry are untouched (each
 * request still looks the hash up in memory). A browser or script sends
 * the same value request after request; this saves a digest each. The
 * raw value is compared in constant time; other lengths are not kept.
 */
#define HASH_MEMO 16
static _Thread_local struct {
	char raw[64];
	char hash[65];
} hash_memo[HASH_MEMO];

static void
credential_hash(const char *s, char *out)
{
	size_t n = strlen(s);
	unsigned i;

	if (n != 64) {
		crypto_sha256_hex(s, n, out);
		return;
	}
	/* the slot from the value's bytes: a sender picking one only
	 * evicts an entry (a miss), never reads one */
	i = ((unsigned char)s[0] * 31u + (unsigned char)s[1]) % HASH_MEMO;
	if (hash_memo[i].hash[0] && str_ct_eq(hash_memo[i].raw, s, 64)) {
		memcpy(out, hash_memo[i].hash, 65);
		return;
	}
	crypto_sha256_hex(s, 64, out);
	memcpy(hash_memo[i].raw, s, 64);
	memcpy(hash_memo[i].hash, out, 65);
}
void
xsrf_for_session(struct hub *h, const char *session_hash, char *out)
{
	char msg[80];

	snprintf(msg, sizeof(msg), "xsrf:%s", session_hash);
	crypto_hmac_hex(h->cfg.secret, msg, out);
}

static const char *
bearer(const char *auth)
{
	if (auth == NULL)
		return NULL;
	if (strncasecmp(auth, "token ", 6) == 0)
		return auth + 6;
	if (strncasecmp(auth, "bearer ", 7) == 0)
		return auth + 7;
	return NULL;	/* Basic and others (a proxy in front): not ours */
}

/*
 * Whether u's groups are due for a re-read from the directory: checked_ms
 * is the session's last check (0 for a token). A user first seen by a token
 * since the start has the clock start now. Caller holds the read lock.
 */
static int
recheck_due(struct hub *h, struct user *u, int64_t checked_ms, int64_t now)
{
	int64_t user_ms = __atomic_load_n(&u->auth_checked_ms,
					  __ATOMIC_RELAXED);
	int64_t zero = 0;

	if (h->ldap == NULL)
		return 0;
	if (user_ms == 0 && checked_ms == 0) {
		__atomic_compare_exchange_n(&u->auth_checked_ms, &zero, now, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		return 0;
	}
	if (user_ms > checked_ms)
		checked_ms = user_ms;
	return now - checked_ms > h->cfg.auth_recheck_s * 1000;
}

/* An OAuth access token (its note names the server it was issued for)
 * counts only while that server runs, and only for its owner or an admin
 * with ADMIN_ACCESS (whoever else holds such a note did not get it from
 * the hub); it is limited. 1 when t counts. State lock held. */
static int
oauth_token_ok(struct hub *h, const struct token *t, const struct user *u,
	       struct who *w)
{
	size_t n = strlen(OAUTH_TOKEN_NOTE);
	const char *owner, *slash;
	const struct user *o;
	const struct server *s;

	if (t->note == NULL || strncmp(t->note, OAUTH_TOKEN_NOTE, n) != 0)
		return 1;
	owner = t->note + n;
	slash = strrchr(owner, '/');
	w->limit = WHO_OAUTH_TOKEN;
	if (slash == NULL || (size_t)(slash - owner) > USER_NAME_MAX)
		return 0;
	snprintf(w->server_user, sizeof(w->server_user), "%.*s",
		 (int)(slash - owner), owner);
	snprintf(w->server, sizeof(w->server), "%s", slash + 1);
	if (strcmp(u->name, w->server_user) != 0 &&
	    !(u->admin && h->cfg.admin_access))
		return 0;
	o = state_user(&h->state, w->server_user);
	s = o ? user_server(o, w->server) : NULL;
	return s && (s->state == SRV_RUNNING || s->state == SRV_STARTING);
}

/* The API token of a singleuser server (clients.c): limited. */
static void
by_server_token(struct hub *h, const char *hash, struct who *w)
{
	char user[USER_NAME_MAX + 1], server[64];

	if (!clients_by_token(h, hash, user, server))
		return;
	w->kind = WHO_USER;
	w->limit = WHO_SERVER_TOKEN;
	snprintf(w->name, sizeof(w->name), "%s", user);
	snprintf(w->server_user, sizeof(w->server_user), "%s", user);
	snprintf(w->server, sizeof(w->server), "%s", server);
}

/* 1 when the token's owner must be re-checked with the directory. */
static int
by_token(struct hub *h, const char *tok, struct who *w)
{
	char hash[65];
	struct token *t;
	struct user *u;
	int64_t now = time_now_ms();
	int recheck = 0;

	while (*tok == ' ')
		tok++;
	credential_hash(tok, hash);
	if (h->admin_token_hash[0] && str_ct_eq(hash, h->admin_token_hash, 64)) {
		w->kind = WHO_SERVICE;
		w->admin = 1;
		snprintf(w->name, sizeof(w->name), "admin-token");
		return 0;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	t = state_token(&h->state, hash);
	u = t ? state_user(&h->state, t->user) : NULL;
	if (u && (t->expires_ms == 0 || t->expires_ms > now) &&
	    oauth_token_ok(h, t, u, w)) {
		w->kind = WHO_USER;
		w->admin = w->limit == WHO_FULL ? u->admin : 0;
		snprintf(w->name, sizeof(w->name), "%s", u->name);
		state_touch_token(t, now);
		state_touch_user(u, now);
		recheck = recheck_due(h, u, 0, now);
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (t == NULL)
		by_server_token(h, hash, w);
	return recheck;
}

/* 1 when the session must be re-checked with the directory. An expired
 * session leaves memory at once and the database in the background. */
static int
by_cookie(struct hub *h, const char *cookie, struct who *w)
{
	struct session *ss;
	struct user *u;
	int64_t now = time_now_ms();
	int expired = 0, recheck = 0;
	char hash[65];

	credential_hash(cookie, hash);
	pthread_rwlock_rdlock(&h->state.lock);
	ss = state_session(&h->state, hash);
	u = ss ? state_user(&h->state, ss->user) : NULL;
	if (ss && (ss->expires_ms <= now || now - __atomic_load_n(
	    &ss->last_seen_ms, __ATOMIC_RELAXED) > h->cfg.session_idle_s * 1000))
		expired = 1;
	else if (u) {
		w->kind = WHO_USER;
		w->admin = u->admin;
		w->by_cookie = 1;
		snprintf(w->name, sizeof(w->name), "%s", u->name);
		memcpy(w->session_hash, hash, 65);
		state_touch_session(ss, now);
		state_touch_user(u, now);
		recheck = recheck_due(h, u, ss->auth_checked_ms, now);
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (expired) {
		pthread_rwlock_wrlock(&h->state.lock);
		state_session_remove(&h->state, hash);
		pthread_rwlock_unlock(&h->state.lock);
		bg_push(JOB_SESSION_DELETE, hash, NULL);
	}
	return recheck;
}

/*
 * Never waits on the directory or the database (the edge calls it on its
 * event loop): a due re-check is queued and the request goes on with the
 * still-valid credentials; the worker's verdict applies from then on.
 */
void
who_from(struct hub *h, const char *authorization, const char *cookie,
	 struct who *w)
{
	const char *tok = bearer(authorization);

	memset(w, 0, sizeof(*w));
	if (tok != NULL) {
		if (by_token(h, tok, w))
			bg_push(JOB_RECHECK, w->name, NULL);
		return;
	}
	if (cookie == NULL || strlen(cookie) != 64)
		return;
	if (by_cookie(h, cookie, w))
		bg_push(JOB_RECHECK, w->name, w->session_hash);
}

int
cookie_copy(const char *header, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	const char *p = header;

	while (p && *p) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1;
			size_t vl = strcspn(v, ";");

			if (vl >= size)
				return -1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 0;
		}
		p = strchr(p, ';');
	}
	return -1;
}

/* The value of cookie name in a Cookie header (heap), or NULL. */
char *
cookie_value(const char *header, const char *name)
{
	size_t n = strlen(name);
	const char *p = header;

	while (p && *p) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			const char *v = p + n + 1, *end = strchr(v, ';');

			return xstrndup(v, end ? (size_t)(end - v) : strlen(v));
		}
		p = strchr(p, ';');
	}
	return NULL;
}

void
logout_session(struct hub *h, const char *session_hash)
{
	struct err e = { 0 };

	if (store_session_delete(h->store, session_hash, &e) < 0 &&
	    e.code != ERR_NOTFOUND)
		log_event(LOG_WARN, "session.delete_failed", "err=%s", e.msg);
	pthread_rwlock_wrlock(&h->state.lock);
	state_session_remove(&h->state, session_hash);
	pthread_rwlock_unlock(&h->state.lock);
}

/* ---- logins ---------------------------------------------------------- */
static int
listed(char **list, const char *name)
{
	for (; list && *list; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

/* Creates the user when missing and brings groups and admin in line with
 * the authenticator (au NULL: local auth, nothing to sync). */
static int
sync_user(struct hub *h, const char *name, const struct auth_user *au,
	  struct err *e)
{
	static const struct users_by first = { "", "",
		"{\"reason\": \"first login\"}" };
	static const struct users_by groups = { "", "",
		"{\"reason\": \"directory groups\"}" };
	const struct users_by by_self = { name, first.ip, first.detail };
	const char *names[1] = { name };
	struct user *u;
	int exists, admin, want_admin, groups_same = 1;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	exists = u != NULL;
	admin = u ? u->admin : 0;
	if (u && au) {
		groups_same = u->ngroups == au->ngroups;
		for (size_t i = 0; groups_same && i < au->ngroups; i++)
			groups_same = strcmp(u->groups[i], au->groups[i]) == 0;
	}
	pthread_rwlock_unlock(&h->state.lock);
	want_admin = listed(h->cfg.admin_users, name) ||
	    (au && au->admin == 1) || (admin && (!au || au->admin == -1));
	if (!exists) {
		if (ids_reserved(h, name, e) < 0)
			return -1;
		/* a conflict: another login made it meanwhile */
		if (users_create(h, names, 1, want_admin, &by_self, e) < 0 &&
		    e->code != ERR_CONFLICT)
			return -1;
	} else if (admin != want_admin &&
		   users_set_admin(h, name, want_admin, &groups, e) < 0) {
		return -1;
	}
	if (au && (!exists || !groups_same) &&
	    users_set_groups(h, name, (const char *const *)au->groups,
			     au->ngroups, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u == NULL) {	/* in the store, not in memory yet */
		struct store_user su = { .id = state_next_id(&h->state),
					 .name = name, .admin = want_admin,
					 .created_ms = time_now_ms() };

		u = state_user_add(&h->state, &su);
		if (au)
			state_user_set_groups(u,
			    (const char *const *)au->groups, au->ngroups);
	}
	u->admin = want_admin;
	pthread_rwlock_unlock(&h->state.lock);
	ids_sync(h, name, au);
	return 0;
}

static int
check_password(struct hub *h, const char *name, const char *password,
	       struct auth_user *au, int *have_au, struct err *e)
{
	char *hash = NULL;
	struct user *u;
	int ok;

	if (h->ldap) {
		if (auth_ldap_login(h->ldap, name, password, au, e) < 0)
			return -1;
		*have_au = 1;
		return 0;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u && u->password_hash)
		hash = xstrdup(u->password_hash);
	pthread_rwlock_unlock(&h->state.lock);
	ok = auth_local_verify(password, hash);
	free(hash);
	if (!ok)
		return err_set(e, ERR_AUTH, "invalid username or password");
	return 0;
}

static int
open_session(struct hub *h, const char *name, char *cookie_out,
	     struct err *e)
{
	char hash[65];
	int64_t now = time_now_ms();
	struct store_session ss = { hash, name, now, now,
		now + h->cfg.session_max_age_s * 1000, now };

	crypto_token(cookie_out);
	crypto_sha256_hex(cookie_out, 64, hash);
	if (store_session_create(h->store, &ss, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	state_session_add(&h->state, &ss);
	pthread_rwlock_unlock(&h->state.lock);
	return 0;
}

/* Metrics, log and audit of a failed login (counted by login_check). */
static void
login_failed(struct hub *h, const char *name, const char *ip,
	     const struct err *e)
{
	char *detail;
	struct strbuf sb;

	metrics_login(h->metrics, 0);
	log_event(LOG_WARN, "auth.failed", "user=%s ip=%s err=%s", name, ip,
		  e->msg);
	sb_init(&sb);
	sb_adds(&sb, "{\"reason\": ");
	sb_add_json(&sb, e->msg);
	sb_adds(&sb, "}");
	detail = sb_detach(&sb, NULL);
	hub_audit(h, name, "login.failed", name, detail, ip);
	free(detail);
}

/*
 * Counts the attempt against the name and the address before the password
 * is checked (ratelimit_take: check and count in one step), so that guesses
 * sent at the same moment cannot all pass before any is counted. Returns
 * the wait when either is throttled (then nothing stays counted).
 */
static long
login_take(struct hub *h, const char *ukey, const char *ikey, int64_t now)
{
	long wait_u = ratelimit_take(h->rl, ukey, now), wait_ip;

	if (wait_u)
		return wait_u;
	wait_ip = ratelimit_take(h->rl, ikey, now);
	if (wait_ip)
		ratelimit_undo(h->rl, ukey);
	return wait_ip;
}

int
login_check(struct hub *h, const char *username, const char *password,
	    const char *ip, char *name_out, char *cookie_out, struct err *e)
{
	struct auth_user au;
	char ukey[128], ikey[128];
	long wait;
	int have_au = 0, rc = -1, guessed = 0;

	memset(&au, 0, sizeof(au));
	if (user_name_normalize(username ? username : "", name_out, e) < 0)
		return -1;
	snprintf(ukey, sizeof(ukey), "u:%s", name_out);
	snprintf(ikey, sizeof(ikey), "ip:%s", ip);
	wait = login_take(h, ukey, ikey, time_now_ms());
	if (wait) {
		err_set(e, ERR_TOOMANY, "too many failed logins: try again in "
			"%ld seconds", wait);
		log_event(LOG_WARN, "auth.throttled", "user=%s ip=%s",
			  name_out, ip);
		return -1;
	}
	if (password == NULL || *password == '\0') {
		err_set(e, ERR_AUTH, "invalid username or password");
		login_failed(h, name_out, ip, e);
		return -1;
	}
	if (check_password(h, name_out, password, &au, &have_au, e) < 0) {
		guessed = e->code == ERR_AUTH || e->code == ERR_FORBIDDEN;
		if (e->code != ERR_UNAVAILABLE)
			login_failed(h, name_out, ip, e);
		goto out;
	}
	if (have_au && *au.name)	/* LDAP_USERNAME_ATTRIBUTE: its name */
		snprintf(name_out, USER_NAME_MAX + 1, "%s", au.name);
	if (sync_user(h, name_out, have_au ? &au : NULL, e) < 0 ||
	    open_session(h, name_out, cookie_out, e) < 0)
		goto out;
	ratelimit_clear(h->rl, ukey);
	metrics_login(h->metrics, 1);
	log_event(LOG_INFO, "auth.login", "user=%s ip=%s", name_out, ip);
	hub_audit(h, name_out, "login", name_out, NULL, ip);
	rc = 0;
out:
	if (!guessed) {
		/* not a wrong guess: the directory was down, or it worked */
		if (rc < 0)
			ratelimit_undo(h->rl, ukey);
		ratelimit_undo(h->rl, ikey);
	}
	if (have_au)
		auth_user_release(&au);
	return rc;
}

/* ---- background work: directory re-checks, session deletes ---------- */
struct job {
	enum job_kind kind;
	char key[USER_NAME_MAX + 1];	/* a user, or a session's hash */
	char session[65];		/* JOB_RECHECK: the session that asked
					 * ("" for a token) */
	struct job *next;
};

/* One re-check per user at a time: a job is unique by kind and key among
 * the queued and the running ones. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *head, *tail;
	struct job *running[BG_THREADS];
	pthread_t threads[BG_THREADS];
	int queued, nthreads, stopping;
	struct hub *hub;
} bg = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .wake = PTHREAD_COND_INITIALIZER };

static int
same_job(const struct job *j, enum job_kind kind, const char *key)
{
	return j && j->kind == kind && strcmp(j->key, key) == 0;
}

/* Queued or running already (bg.lock held). */
static int
bg_has(enum job_kind kind, const char *key)
{
	for (struct job *j = bg.head; j; j = j->next)
		if (same_job(j, kind, key))
			return 1;
	for (int i = 0; i < BG_THREADS; i++)
		if (same_job(bg.running[i], kind, key))
			return 1;
	return 0;
}

static void
bg_push(enum job_kind kind, const char *key, const char *session_hash)
{
	struct job *j;

	pthread_mutex_lock(&bg.lock);
	if (bg.nthreads == 0 || bg.stopping || bg.queued >= BG_QUEUE_MAX ||
	    strlen(key) >= sizeof(j->key) || bg_has(kind, key)) {
		pthread_mutex_unlock(&bg.lock);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	snprintf(j->key, sizeof(j->key), "%s", key);
	snprintf(j->session, sizeof(j->session), "%s",
		 session_hash ? session_hash : "");
	if (bg.tail)
		bg.tail->next = j;
	else
		bg.head = j;
	bg.tail = j;
	bg.queued++;
	pthread_cond_signal(&bg.wake);
	pthread_mutex_unlock(&bg.lock);
}

/* The directory says name may no longer sign in: every session and API
 * token of theirs ends (memory first, so nothing passes meanwhile). */
static void
revoke_user(struct hub *h, const char *name, const struct err *why)
{
	static const struct users_by directory = { "", "",
		"{\"reason\": \"directory\"}" };
	const struct users_by by = { name, directory.ip, directory.detail };

	log_event(LOG_WARN, "session.revoked", "user=%s err=%s", name,
		  why->msg);
	users_revoke(h, name, &by);
}

static void
set_checked(struct hub *h, const char *name, const char *session,
	    int64_t ms)
{
	struct user *u;
	struct session *ss;

	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		__atomic_store_n(&u->auth_checked_ms, ms, __ATOMIC_RELAXED);
	ss = *session ? state_session(&h->state, session) : NULL;
	if (ss)
		ss->auth_checked_ms = ms;
	pthread_rwlock_unlock(&h->state.lock);
}

static int
still_known(struct hub *h, const char *name)
{
	int known;

	pthread_rwlock_rdlock(&h->state.lock);
	known = state_user(&h->state, name) != NULL;
	pthread_rwlock_unlock(&h->state.lock);
	return known;
}

/* Re-reads name's groups (admin rights follow them); a user who left the
 * directory or the allowed groups is revoked. A directory that does not
 * answer is asked again in a minute. */
static void
recheck_user(struct hub *h, const char *name, const char *session)
{
	struct auth_user au;
	struct err e = { 0 };
	int64_t now = time_now_ms();
	int rc;

	memset(&au, 0, sizeof(au));
	rc = auth_ldap_lookup(h->ldap, name, &au, &e);
	if (rc < 0 && (e.code == ERR_FORBIDDEN || e.code == ERR_NOTFOUND)) {
		revoke_user(h, name, &e);
		return;
	}
	if (rc == 0) {
		/* deleted while the directory was asked: not brought back */
		rc = still_known(h, name) ? sync_user(h, name, &au, &e) : 0;
		auth_user_release(&au);
	}
	if (rc == 0 && *session)
		store_session_set_checked(h->store, session, now, &e);
	if (rc < 0) {
		log_event(LOG_WARN, "session.recheck_failed", "user=%s err=%s",
			  name, e.msg);
		now -= h->cfg.auth_recheck_s * 1000 - 60000;
	}
	set_checked(h, name, session, now);
}

static void
bg_run(struct hub *h, const struct job *j)
{
	struct err e = { 0 };

	if (j->kind == JOB_RECHECK) {
		if (h->ldap)
			recheck_user(h, j->key, j->session);
		return;
	}
	if (store_session_delete(h->store, j->key, &e) < 0 &&
	    e.code != ERR_NOTFOUND)
		log_event(LOG_WARN, "session.delete_failed", "err=%s", e.msg);
}

static void *
bg_worker(void *arg)
{
	int slot = (int)(intptr_t)arg;

	pthread_mutex_lock(&bg.lock);
	for (;;) {
		struct job *j;

		while (bg.head == NULL && !bg.stopping)
			pthread_cond_wait(&bg.wake, &bg.lock);
		if (bg.stopping)
			break;
		j = bg.head;
		bg.head = j->next;
		if (bg.head == NULL)
			bg.tail = NULL;
		bg.queued--;
		bg.running[slot] = j;
		pthread_mutex_unlock(&bg.lock);
		bg_run(bg.hub, j);
		pthread_mutex_lock(&bg.lock);
		bg.running[slot] = NULL;
		free(j);
	}
	pthread_mutex_unlock(&bg.lock);
	return NULL;
}

int
sessions_start(struct hub *h, struct err *e)
{
	pthread_attr_t attr;

	bg.hub = h;
	bg.stopping = 0;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_mutex_lock(&bg.lock);
	while (bg.nthreads < BG_THREADS &&
	       pthread_create(&bg.threads[bg.nthreads], &attr, bg_worker,
			      (void *)(intptr_t)bg.nthreads) == 0)
		bg.nthreads++;
	pthread_mutex_unlock(&bg.lock);
	pthread_attr_destroy(&attr);
	if (bg.nthreads == 0)
		return err_set(e, ERR_INTERNAL, "cannot start the re-check "
			       "threads");
	return 0;
}

void
sessions_stop(void)
{
	int n;

	pthread_mutex_lock(&bg.lock);
	bg.stopping = 1;
	n = bg.nthreads;
	pthread_cond_broadcast(&bg.wake);
	pthread_mutex_unlock(&bg.lock);
	for (int i = 0; i < n; i++)
		pthread_join(bg.threads[i], NULL);
	bg.nthreads = 0;
	while (bg.head) {	/* what was not done is asked again later */
		struct job *j = bg.head;

		bg.head = j->next;
		free(j);
	}
	bg.tail = NULL;
	bg.queued = 0;
}
