/*
 * clients.c - the OAuth clients of jupyterhub-singleuser servers (images of
 * kind "singleuser"): one client per server, its secret the server's API
 * token; the authorization codes the hub hands out; the access tokens it
 * issues for them.
 *
 * A client is registered when its server starts (or is adopted at hub
 * start) and forgotten when a new start replaces it or the server stops.
 * Whether a server token or an access token still counts is checked
 * against the live server state on every use (clients_server_live), so a
 * server that stops by any path (stop, crash, cull, reconcile) takes its
 * tokens with it at once; the rows of its access tokens are deleted by
 * clients_revoke. Codes live in memory only: single use, OAUTH_CODE_TTL.
 * Ownership: this file owns the client and code lists (one hub per
 * process), under one mutex; never held while taking the state lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

struct client {
	struct client *next;
	char id[CLIENT_ID_MAX];
	char user[USER_NAME_MAX + 1];
	char server[64];
	char nonce[33];			/* the start it belongs to */
	char secret_hash[65];		/* SHA-256 of the server token */
	char redirect_uri[256];
};

struct code {
	struct code *next;
	char hash[65];
	char client_id[CLIENT_ID_MAX];
	char user[USER_NAME_MAX + 1];
	char redirect_uri[256];
	int64_t expires_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;
static struct code *codes;

void
clients_id(const char *user, const char *server, char *out, size_t size)
{
	struct strbuf sb;

	/* JupyterHub's: jupyterhub-user-<escaped name>[-<escaped server>] */
	sb_init(&sb);
	sb_adds(&sb, "jupyterhub-user-");
	sb_add_pct(&sb, user, NULL);
	if (server && *server)
		sb_addf(&sb, "-%s", server);
	snprintf(out, size, "%s", sb.buf);
	sb_release(&sb);
}

static void
unlink_client(struct client **pp)
{
	struct client *c = *pp;

	*pp = c->next;
	free(c);
}

void
clients_add(struct hub *h, const char *user, const char *server,
	    const char *nonce, const char *token)
{
	struct client *c = xcalloc(1, sizeof(*c)), **pp;

	clients_id(user, server, c->id, sizeof(c->id));
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->server, sizeof(c->server), "%s", server);
	snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
	crypto_sha256_hex(token, strlen(token), c->secret_hash);
	snprintf(c->redirect_uri, sizeof(c->redirect_uri),
		 "/user/%s/%s%soauth_callback", user, server,
		 *server ? "/" : "");
	pthread_mutex_lock(&lock);
	for (pp = &clients; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, c->id) == 0) {
			unlink_client(pp);
			break;
		}
	c->next = clients;
	clients = c;
	pthread_mutex_unlock(&lock);
	(void)h;
}

int
clients_server_live(struct hub *h, const char *user, const char *server,
		    const char *nonce)
{
	struct user *u;
	struct server *s;
	int live = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, user);
	s = u ? user_server(u, server) : NULL;
	if (s && (s->state == SRV_RUNNING || s->state == SRV_STARTING))
		live = nonce == NULL || strcmp(s->nonce, nonce) == 0;
	pthread_rwlock_unlock(&h->state.lock);
	return live;
}

int
clients_by_token(struct hub *h, const char *token_hash, char *user,
		 char *server)
{
	char nonce[33] = "";
	struct client *c;
	int found = 0;

	pthread_mutex_lock(&lock);
	for (c = clients; c; c = c->next)
		if (strcmp(c->secret_hash, token_hash) == 0) {
			memcpy(user, c->user, sizeof(c->user));
			memcpy(server, c->server, sizeof(c->server));
			memcpy(nonce, c->nonce, sizeof(nonce));
			found = 1;
			break;
		}
	pthread_mutex_unlock(&lock);
	return found && clients_server_live(h, user, server, nonce);
}

int
clients_get(struct hub *h, const char *client_id, struct oauth_client *out)
{
	struct client *c;
	int found = 0;

	pthread_mutex_lock(&lock);
	for (c = clients; c; c = c->next)
		if (strcmp(c->id, client_id) == 0) {
			memcpy(out->id, c->id, sizeof(out->id));
			memcpy(out->user, c->user, sizeof(out->user));
			memcpy(out->server, c->server, sizeof(out->server));
			memcpy(out->secret_hash, c->secret_hash, 65);
			memcpy(out->redirect_uri, c->redirect_uri,
			       sizeof(out->redirect_uri));
			memcpy(out->nonce, c->nonce, sizeof(out->nonce));
			found = 1;
			break;
		}
	pthread_mutex_unlock(&lock);
	return found && clients_server_live(h, out->user, out->server,
					    out->nonce);
}

/* Drops expired codes; lock held. */
static void
sweep_codes(int64_t now)
{
	struct code **pp = &codes, *c;

	while ((c = *pp) != NULL) {
		if (c->expires_ms <= now) {
			*pp = c->next;
			free(c);
		} else {
			pp = &c->next;
		}
	}
}

void
clients_code_new(struct hub *h, const struct oauth_client *cl,
		 const char *user, char *code_out)
{
	struct code *c = xcalloc(1, sizeof(*c));
	int64_t now = time_now_ms();

	crypto_token(code_out);
	crypto_sha256_hex(code_out, strlen(code_out), c->hash);
	memcpy(c->client_id, cl->id, sizeof(c->client_id));
	snprintf(c->user, sizeof(c->user), "%s", user);
	memcpy(c->redirect_uri, cl->redirect_uri, sizeof(c->redirect_uri));
	c->expires_ms = now + h->cfg.oauth_code_ttl_s * 1000;
	pthread_mutex_lock(&lock);
	sweep_codes(now);
	c->next = codes;
	codes = c;
	pthread_mutex_unlock(&lock);
}

int
clients_code_take(struct hub *h, const char *code, const char *client_id,
		  const char *redirect_uri, char *user, struct err *e)
{
	struct code **pp, *c = NULL;
	char hash[65];
	int64_t now = time_now_ms();
	int rc = -1;

	crypto_sha256_hex(code, strlen(code), hash);
	pthread_mutex_lock(&lock);
	for (pp = &codes; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->hash, hash) == 0) {
			c = *pp;
			*pp = c->next;	/* single use, whatever follows */
			break;
		}
	sweep_codes(now);
	pthread_mutex_unlock(&lock);
	if (c == NULL)
		err_set(e, ERR_AUTH, "code: unknown, used already or expired");
	else if (c->expires_ms <= now)
		err_set(e, ERR_AUTH, "code: expired");
	else if (strcmp(c->client_id, client_id) != 0)
		err_set(e, ERR_AUTH, "code: issued to another client");
	else if (strcmp(c->redirect_uri, redirect_uri) != 0)
		err_set(e, ERR_AUTH, "redirect_uri: not the one the code was "
			"issued for");
	else {
		snprintf(user, USER_NAME_MAX + 1, "%s", c->user);
		rc = 0;
	}
	free(c);
	(void)h;
	return rc;
}

void
clients_token_note(const char *user, const char *server, char *out,
		   size_t size)
{
	snprintf(out, size, "%s%s/%s", OAUTH_TOKEN_NOTE, user, server);
}

/* Ids of the tokens with this note, of user and of every admin (who may
 * have authorized with ADMIN_ACCESS); state lock held. */
static void
notes_of(struct state *st, const char *user, const char *note, int64_t **ids,
	 size_t *k, size_t *cap)
{
	struct token **v;
	size_t n;

	v = state_tokens_of(st, user, &n);
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->note || strcmp(v[i]->note, note) != 0)
			continue;
		if (*k == *cap) {
			*cap = *cap ? *cap * 2 : 8;
			*ids = xrealloc(*ids, *cap * sizeof(**ids));
		}
		(*ids)[(*k)++] = v[i]->id;
	}
	free(v);
}

/* Appends a copy of name to the heap array v of *n names. */
static char **
push_owner(char **v, size_t *n, const char *name)
{
	v = xrealloc(v, (*n + 2) * sizeof(*v));
	v[(*n)++] = xstrdup(name);
	v[*n] = NULL;
	return v;
}

/* The access tokens of the server (user's or an admin's): their ids and
 * users (heap arrays); returns how many. */
static size_t
server_tokens(struct hub *h, const char *user, const char *note,
	      int64_t **ids, char ***owners)
{
	size_t k = 0, cap = 0, n = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	notes_of(&h->state, user, note, ids, &k, &cap);
	for (size_t i = 0; i < k; i++)
		*owners = push_owner(*owners, &n, user);
	for (size_t i = 0; i < h->state.nusers; i++) {
		struct user *u = h->state.user_list[i];

		if (!u->admin || strcmp(u->name, user) == 0)
			continue;
		notes_of(&h->state, u->name, note, ids, &k, &cap);
		while (n < k)
			*owners = push_owner(*owners, &n, u->name);
	}
	pthread_rwlock_unlock(&h->state.lock);
	return k;
}

void
clients_revoke(struct hub *h, const char *user, const char *server)
{
	char note[USER_NAME_MAX + 128], id[CLIENT_ID_MAX];
	int64_t *ids = NULL;
	char **owners = NULL;
	size_t k;
	struct err e = { 0 };

	clients_token_note(user, server, note, sizeof(note));
	clients_id(user, server, id, sizeof(id));
	pthread_mutex_lock(&lock);
	for (struct client **pp = &clients; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0) {
			unlink_client(pp);
			break;
		}
	pthread_mutex_unlock(&lock);
	k = server_tokens(h, user, note, &ids, &owners);
	for (size_t i = 0; i < k; i++)
		if (users_token_delete(h, owners[i], ids[i], NULL, &e) < 0 &&
		    e.code != ERR_NOTFOUND)
			log_event(LOG_WARN, "oauth.revoke_failed",
				  "user=%s err=%s", owners[i], e.msg);
	if (k)
		log_event(LOG_INFO, "oauth.revoked", "user=%s server=%s "
			  "tokens=%zu", user, server, k);
	free(ids);
	strv_free(owners);
}
