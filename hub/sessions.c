/*
 * sessions.c - who sent a request (API token or session cookie), logins,
 * logouts, XSRF tokens and LDAP re-checks (the failed-login limiter is
 * ratelimit.c).
 *
 * Session ids and tokens are 256-bit random values; only their SHA-256 is
 * kept (memory and database). Lookups are memory-only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "internal.h"


/* ---- identifying a request ------------------------------------------- */
void
xsrf_for_session(struct hub *h, const char *session_hash, char *out)
{
	char msg[80];

	snprintf(msg, sizeof(msg), "xsrf:%s", session_hash);
	crypto_hmac_hex(h->cfg.secret, msg, out);
}

int
xsrf_ok(struct req *r, const struct who *w, const char *form_value)
{
	char want[65];
	const char *got = req_header(r, "X-XSRFToken");

	if (got == NULL)
		got = form_value;
	if (got == NULL || !w->by_cookie || strlen(got) != 64)
		return 0;
	xsrf_for_session(r->hub, w->session_hash, want);
	return str_ct_eq(got, want, 64);
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

static void
by_token(struct hub *h, const char *tok, struct who *w)
{
	char hash[65];
	struct token *t;
	struct user *u;
	int64_t now = time_now_ms();

	while (*tok == ' ')
		tok++;
	crypto_sha256_hex(tok, strlen(tok), hash);
	if (h->admin_token_hash[0] && str_ct_eq(hash, h->admin_token_hash, 64)) {
		w->kind = WHO_SERVICE;
		w->admin = 1;
		snprintf(w->name, sizeof(w->name), "admin-token");
		return;
	}
	pthread_rwlock_rdlock(&h->state.lock);
	t = state_token(&h->state, hash);
	u = t ? state_user(&h->state, t->user) : NULL;
	if (u && (t->expires_ms == 0 || t->expires_ms > now)) {
		w->kind = WHO_USER;
		w->admin = u->admin;
		snprintf(w->name, sizeof(w->name), "%s", u->name);
		state_touch_token(t, now);
		state_touch_user(u, now);
	}
	pthread_rwlock_unlock(&h->state.lock);
}

/* 1 when the session must be re-checked with the directory. */
static int
by_cookie(struct hub *h, const char *cookie, struct who *w)
{
	struct session *ss;
	struct user *u;
	int64_t now = time_now_ms();
	int expired = 0, recheck = 0;
	char hash[65];

	crypto_sha256_hex(cookie, strlen(cookie), hash);
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
		recheck = h->ldap && now - ss->auth_checked_ms >
		    h->cfg.auth_recheck_s * 1000;
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (expired)
		logout_session(h, hash);
	return recheck;
}

void
who_from(struct hub *h, const char *authorization, const char *cookie,
	 struct who *w)
{
	const char *tok = bearer(authorization);

	memset(w, 0, sizeof(*w));
	if (tok != NULL) {
		by_token(h, tok, w);
		return;
	}
	if (cookie == NULL || strlen(cookie) != 64)
		return;
	if (by_cookie(h, cookie, w) && session_recheck(h, w->session_hash) < 0)
		memset(w, 0, sizeof(*w));
}

void
who_identify(struct req *r, struct who *w)
{
	who_from(r->hub, req_header(r, "Authorization"),
		 req_cookie(r, SESSION_COOKIE), w);
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

/*
 * Sets the session cookie (HttpOnly) and, as JupyterHub does, an "_xsrf"
 * cookie that pages' scripts read to send X-XSRFToken. An empty value
 * clears both.
 */
void
session_cookie_header(struct req *r, const char *value, long max_age)
{
	char hash[65], xsrf[65] = "";
	char *c = xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Lax; "
			    "Max-Age=%ld%s", SESSION_COOKIE, value, max_age,
			    r->https ? "; Secure" : "");

	req_add_header(r, "Set-Cookie", c);
	free(c);
	if (*value) {
		crypto_sha256_hex(value, strlen(value), hash);
		xsrf_for_session(r->hub, hash, xsrf);
	}
	c = xasprintf("_xsrf=%s; Path=/hub/; SameSite=Lax; Max-Age=%ld%s",
		      xsrf, max_age, r->https ? "; Secure" : "");
	req_add_header(r, "Set-Cookie", c);
	free(c);
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
	struct user *u;
	int exists, admin, want_admin, groups_same = 1;
	int64_t created = time_now_ms();

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
		const char *names[1] = { name };

		if (ids_reserved(h, name, e) < 0)
			return -1;
		if (store_users_create(h->store, names, 1, want_admin, &created,
				       e) < 0 && e->code != ERR_CONFLICT)
			return -1;
		hub_audit(h, name, "user.create", name,
			  "{\"reason\": \"first login\"}", "");
	} else if (admin != want_admin) {
		if (store_user_update(h->store, name, NULL, want_admin, e) < 0)
			return -1;
		hub_audit(h, "", want_admin ? "user.admin_granted" :
			  "user.admin_revoked", name,
			  "{\"reason\": \"directory groups\"}", "");
	}
	if (au && (!exists || !groups_same) &&
	    store_user_set_groups(h->store, name,
				  (const char *const *)au->groups,
				  au->ngroups, e) < 0)
		return -1;
	/* reload this one user's row into memory */
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u == NULL) {
		struct store_user su = { .id = state_next_id(&h->state),
					 .name = name, .admin = want_admin,
					 .created_ms = created };

		u = state_user_add(&h->state, &su);
	}
	u->admin = want_admin;
	if (au)
		state_user_set_groups(u, (const char *const *)au->groups,
				      au->ngroups);
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

static void
login_failed(struct hub *h, const char *name, const char *ip,
	     const struct err *e)
{
	char key[128];
	char *detail;
	struct strbuf sb;

	int64_t now = time_now_ms();

	if (e->code == ERR_AUTH || e->code == ERR_FORBIDDEN) {
		snprintf(key, sizeof(key), "u:%s", name);
		ratelimit_fail(h->rl, key, now);
		snprintf(key, sizeof(key), "ip:%s", ip);
		ratelimit_fail(h->rl, key, now);
	}
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

int
login_check(struct hub *h, const char *username, const char *password,
	    const char *ip, char *name_out, char *cookie_out, struct err *e)
{
	struct auth_user au;
	char key[128];
	long wait_u, wait_ip;
	int have_au = 0, rc = -1;
	int64_t now = time_now_ms();

	memset(&au, 0, sizeof(au));
	if (user_name_normalize(username ? username : "", name_out, e) < 0)
		return -1;
	snprintf(key, sizeof(key), "u:%s", name_out);
	wait_u = ratelimit_wait(h->rl, key, now);
	snprintf(key, sizeof(key), "ip:%s", ip);
	wait_ip = ratelimit_wait(h->rl, key, now);
	if (wait_u || wait_ip) {
		err_set(e, ERR_TOOMANY, "too many failed logins: try again in "
			"%ld seconds", wait_u > wait_ip ? wait_u : wait_ip);
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
		if (e->code != ERR_UNAVAILABLE)
			login_failed(h, name_out, ip, e);
		goto out;
	}
	if (sync_user(h, name_out, have_au ? &au : NULL, e) < 0 ||
	    open_session(h, name_out, cookie_out, e) < 0)
		goto out;
	snprintf(key, sizeof(key), "u:%s", name_out);
	ratelimit_clear(h->rl, key);
	metrics_login(h->metrics, 1);
	log_event(LOG_INFO, "auth.login", "user=%s ip=%s", name_out, ip);
	hub_audit(h, name_out, "login", name_out, NULL, ip);
	rc = 0;
out:
	if (have_au)
		auth_user_release(&au);
	return rc;
}

int
session_recheck(struct hub *h, const char *session_hash)
{
	struct auth_user au;
	struct err e = { 0 };
	struct session *ss;
	char name[USER_NAME_MAX + 1] = "";
	int64_t now = time_now_ms();

	pthread_rwlock_rdlock(&h->state.lock);
	ss = state_session(&h->state, session_hash);
	if (ss)
		snprintf(name, sizeof(name), "%s", ss->user);
	pthread_rwlock_unlock(&h->state.lock);
	if (!*name || h->ldap == NULL)
		return 0;
	memset(&au, 0, sizeof(au));
	if (auth_ldap_lookup(h->ldap, name, &au, &e) == 0) {
		int rc = sync_user(h, name, &au, &e);

		auth_user_release(&au);
		if (rc == 0)
			store_session_set_checked(h->store, session_hash, now,
						  &e);
	} else if (e.code == ERR_FORBIDDEN || e.code == ERR_NOTFOUND) {
		log_event(LOG_WARN, "session.revoked", "user=%s err=%s", name,
			  e.msg);
		hub_audit(h, name, "session.revoked", name, NULL, "");
		logout_session(h, session_hash);
		return -1;
	} else {
		log_event(LOG_WARN, "session.recheck_failed", "user=%s err=%s",
			  name, e.msg);
		now -= h->cfg.auth_recheck_s * 1000 - 60000; /* retry in 1 min */
	}
	pthread_rwlock_wrlock(&h->state.lock);
	ss = state_session(&h->state, session_hash);
	if (ss)
		ss->auth_checked_ms = now;
	pthread_rwlock_unlock(&h->state.lock);
	return 0;
}
