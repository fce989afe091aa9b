/*
 * users.c - every change to users and their API tokens, in one order:
 * the store (PostgreSQL) first, then memory (struct state, under its write
 * lock) once the database agreed, then the audit log and the log.
 *
 * The API, the culler, logins and directory re-checks (sessions.c) and
 * start-up (main.c) call these; none of them writes users or tokens to the
 * store or the state itself. Who asked is a struct users_by (NULL: no
 * audit row, as for changes the hub makes at start).
 */
#include <stdlib.h>
#include <string.h>
#include "hub.h"

static void
audit(struct hub *h, const struct users_by *by, const char *action,
      const char *target, const char *detail)
{
	if (by)
		hub_audit(h, by->actor, action, target,
			  by->detail ? by->detail : detail, by->ip);
}

/* {"admin": true, "names": [...]} */
static char *
names_detail(const char *const *names, size_t n, int admin)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_addf(&sb, "{\"admin\": %s, \"names\": [", admin ? "true" : "false");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_adds(&sb, ", ");
		sb_add_json(&sb, names[i]);
	}
	sb_adds(&sb, "]}");
	return sb_detach(&sb, NULL);
}

int
users_create(struct hub *h, const char *const *names, size_t n, int admin,
	     const struct users_by *by, struct err *e)
{
	int64_t created;
	char *detail;

	if (store_users_create(h->store, names, n, admin, &created, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	for (size_t i = 0; i < n; i++) {
		struct store_user su = { .id = state_next_id(&h->state),
					 .name = names[i], .admin = admin,
					 .created_ms = created };

		if (state_user(&h->state, names[i]) == NULL)
			state_user_add(&h->state, &su);
	}
	pthread_rwlock_unlock(&h->state.lock);
	detail = names_detail(names, n, admin);
	audit(h, by, "user.create", n == 1 ? names[0] : "", detail);
	free(detail);
	if (by)
		log_event(LOG_INFO, "user.created", "count=%zu by=%s", n,
			  by->actor);
	return 0;
}

int
users_set_admin(struct hub *h, const char *name, int admin,
		const struct users_by *by, struct err *e)
{
	struct user *u;

	if (store_user_update(h->store, name, NULL, admin, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		u->admin = admin;
	pthread_rwlock_unlock(&h->state.lock);
	audit(h, by, admin ? "user.admin_granted" : "user.admin_revoked",
	      name, NULL);
	return 0;
}

int
users_update(struct hub *h, const char *name, const char *new_name,
	     int admin, const char *hash, const struct users_by *by,
	     struct err *e)
{
	struct store *st = h->store;
	struct user *u;

	if ((hash && store_user_set_password(st, name, hash, e) < 0) ||
	    ((new_name || admin != -1) &&
	     store_user_update(st, name, new_name, admin, e) < 0))
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u && admin != -1)
		u->admin = admin;
	if (u && hash) {
		free(u->password_hash);
		u->password_hash = xstrdup(hash);
	}
	pthread_rwlock_unlock(&h->state.lock);
	audit(h, by, hash ? "user.password" : new_name ? "user.rename" :
	      "user.update", name, NULL);
	return 0;
}

int
users_set_groups(struct hub *h, const char *name, const char *const *groups,
		 size_t n, struct err *e)
{
	struct user *u;

	if (store_user_set_groups(h->store, name, groups, n, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		state_user_set_groups(u, groups, n);
	pthread_rwlock_unlock(&h->state.lock);
	return 0;
}

int
users_delete(struct hub *h, const char *name, const struct users_by *by,
	     struct err *e)
{
	if (store_user_delete(h->store, name, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	state_user_remove(&h->state, name);
	pthread_rwlock_unlock(&h->state.lock);
	audit(h, by, "user.delete", name, NULL);
	log_event(LOG_INFO, "user.deleted", "user=%s by=%s", name,
		  by ? by->actor : "");
	return 0;
}

void
users_revoke(struct hub *h, const char *name, const struct users_by *by)
{
	struct err e = { 0 };

	/* memory first, so nothing passes meanwhile */
	pthread_rwlock_wrlock(&h->state.lock);
	state_forget_user(&h->state, name);
	pthread_rwlock_unlock(&h->state.lock);
	if (store_sessions_delete_user(h->store, name, &e) < 0 ||
	    store_tokens_delete_user(h->store, name, &e) < 0)
		log_event(LOG_WARN, "session.revoke_failed", "user=%s err=%s",
			  name, e.msg);
	audit(h, by, "session.revoked", name, NULL);
}

int
users_token_create(struct hub *h, const char *name, const char *hash,
		   const char *note, int64_t expires_ms,
		   const struct users_by *by, struct store_token *out,
		   struct err *e)
{
	*out = (struct store_token){ 0, hash, name, note, 0, 0, expires_ms };
	if (store_token_create(h->store, name, hash, note, expires_ms,
			       &out->id, &out->created_ms, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	state_token_add(&h->state, out);
	pthread_rwlock_unlock(&h->state.lock);
	audit(h, by, "token.create", name, NULL);
	return 0;
}

int
users_token_delete(struct hub *h, const char *name, int64_t id,
		   const struct users_by *by, struct err *e)
{
	if (store_token_delete(h->store, id, name, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	state_token_remove_id(&h->state, id);
	pthread_rwlock_unlock(&h->state.lock);
	audit(h, by, "token.revoke", name, NULL);
	return 0;
}
