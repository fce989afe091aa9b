/*
 * ids.c - the uid and gid each user's server runs as and owns its home
 * with, and the names no user may take.
 *
 * HOME_UID and HOME_GID are numbers (everyone is 1000:100, the default) or
 * "ldap": each user is then their own owner. The uid is the directory's
 * (LDAP_UID_ATTRIBUTE, read at login and at each re-check), else one of
 * LOCAL_UID_RANGE allocated once in PostgreSQL (store_user_local_uid:
 * unique, never reused). The gid is the directory's (LDAP_GID_ATTRIBUTE),
 * else the numeric group (HOME_GID when numeric, else 100), which the
 * container also keeps as a supplementary group (spec.c).
 * Memory follows the store: fields of struct user change under the write
 * lock after the database agreed.
 */
#include <stdio.h>
#include <string.h>
#include "hub.h"

/* How ADMIN_TOKEN requests are named in the audit log (sessions.c). */
#define ADMIN_TOKEN_NAME "admin-token"

int
ids_reserved(struct hub *h, const char *name, struct err *e)
{
	char shared[256];

	if (strcmp(name, ADMIN_TOKEN_NAME) == 0)
		return err_set(e, ERR_INVALID, "the name '%s' is reserved: the "
		    "audit log names requests made with ADMIN_TOKEN so", name);
	spawner_shared_name(&h->cfg.spawn, shared, sizeof(shared));
	if (*shared && strcmp(name, shared) == 0)
		return err_set(e, ERR_INVALID, "the name '%s' is reserved: it "
		    "is the shared directory among the homes (SHARED_DIR)",
		    name);
	return 0;
}

static int
per_user(const struct hub *h)
{
	return h->cfg.spawn.home_uid_ldap || h->cfg.spawn.home_gid_ldap;
}

/* Records the directory's numbers (store, then memory). */
static int
set_dir_ids(struct hub *h, const char *name, int64_t uid, int64_t gid,
	    struct err *e)
{
	struct user *u;
	int same;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	same = u && u->uid == uid && u->gid == gid;
	pthread_rwlock_unlock(&h->state.lock);
	if (same)
		return 0;
	if (store_user_set_ids(h->store, name, uid, gid, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		u->uid = uid;
		u->gid = gid;
	}
	pthread_rwlock_unlock(&h->state.lock);
	log_event(LOG_INFO, "user.ids", "user=%s uid=%ld gid=%ld", name,
		  (long)uid, (long)gid);
	return 0;
}

/* The directory's uid, else the local one (allocated when missing). */
static int
own_uid(struct hub *h, const char *name, long *uid, struct err *e)
{
	struct user *u;
	int64_t dir = 0, local = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		dir = u->uid;
		local = u->local_uid;
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL)
		return err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (dir > 0 || local > 0) {
		*uid = (long)(dir > 0 ? dir : local);
		return 0;
	}
	if (store_user_local_uid(h->store, name, h->cfg.local_uid_min,
				 h->cfg.local_uid_max, &local, e) < 0)
		return -1;
	pthread_rwlock_wrlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		u->local_uid = local;
	pthread_rwlock_unlock(&h->state.lock);
	log_event(LOG_INFO, "user.local_uid", "user=%s uid=%ld", name,
		  (long)local);
	*uid = (long)local;
	return 0;
}

void
ids_sync(struct hub *h, const char *name, const struct auth_user *au)
{
	struct err e = { 0 };
	long uid;

	if (au && set_dir_ids(h, name, au->uid, au->gid, &e) < 0)
		log_event(LOG_WARN, "user.ids_failed", "user=%s err=%s", name,
			  e.msg);
	if (h->cfg.spawn.home_uid_ldap && own_uid(h, name, &uid, &e) < 0)
		log_event(LOG_WARN, "user.ids_failed", "user=%s err=%s", name,
			  e.msg);
}

int
ids_for(struct hub *h, const char *name, long *uid, long *gid, int *own,
	struct err *e)
{
	const struct spawner_cfg *sc = &h->cfg.spawn;
	struct user *u;
	int64_t dir_gid = 0;

	*own = per_user(h);
	*uid = sc->home_uid;
	*gid = sc->home_gid;
	if (sc->home_uid_ldap && own_uid(h, name, uid, e) < 0)
		return -1;
	if (!sc->home_gid_ldap)
		return 0;
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u)
		dir_gid = u->gid;
	pthread_rwlock_unlock(&h->state.lock);
	if (u == NULL)
		return err_set(e, ERR_NOTFOUND, "user %s does not exist", name);
	if (dir_gid > 0)
		*gid = (long)dir_gid;
	return 0;
}

static void
add_id(struct strbuf *sb, int64_t v)
{
	if (v > 0)
		sb_addf(sb, "%lld", (long long)v);
	else
		sb_adds(sb, "null");
}

void
ids_model(struct strbuf *sb, const struct user *u)
{
	int64_t uid = u->uid > 0 ? u->uid : u->local_uid;

	sb_adds(sb, ", \"swarmhub\": {\"uid\": ");
	add_id(sb, uid);
	sb_adds(sb, ", \"gid\": ");
	add_id(sb, u->gid);
	sb_addf(sb, ", \"uid_source\": %s}", u->uid > 0 ? "\"ldap\"" :
		u->local_uid > 0 ? "\"local\"" : "null");
}
