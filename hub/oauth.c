/*
 * oauth.c - the hub as the OAuth2 provider of jupyterhub-singleuser
 * servers: GET /hub/api/oauth2/authorize and POST /hub/api/oauth2/token
 * (the authorization-code grant), as JupyterHub's provider answers them.
 *
 * authorize: the signed-in owner of the client's server (or an admin,
 * with ADMIN_ACCESS) gets a redirect to the client's redirect_uri with a
 * code (consent is implied: the server is theirs); anyone else 403;
 * nobody signed in: the login page, and back here. token: client_id and client_secret (the server's API
 * token) checked, the code taken (single use, OAUTH_CODE_TTL), the
 * redirect_uri compared exactly; the answer an access token stored as an
 * API token of whoever authorized (note OAUTH_TOKEN_NOTE + owner/server),
 * limited to naming them and opening that server, revoked when it stops.
 * The clients and codes themselves are clients.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

/* RFC 6749 section 5.2: {"error": ..., "error_description": ...}, plus
 * the hub's own "status" and "message". */
static void
oauth_error(struct req *r, int status, const char *error, const char *desc)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_addf(&sb, "{\"status\": %d, \"error\": \"%s\", \"message\": ",
		status, error);
	sb_add_json(&sb, desc);
	sb_adds(&sb, ", \"error_description\": ");
	sb_add_json(&sb, desc);
	sb_adds(&sb, "}");
	req_json(r, status, sb_detach(&sb, NULL));
	req_add_header(r, "Cache-Control", "no-store");
}

/* Back to this authorize request after the login. */
static void
to_login(struct req *r)
{
	static const char *const keys[] = { "client_id", "redirect_uri",
					    "response_type", "state",
					    "scope", NULL };
	struct strbuf back, sb;
	const char *v;
	char sep = '?';

	sb_init(&back);
	sb_adds(&back, "/hub/api/oauth2/authorize");
	for (size_t i = 0; keys[i]; i++) {
		v = req_query(r, keys[i]);
		if (v == NULL)
			continue;
		sb_addf(&back, "%c%s=", sep, keys[i]);
		pages_add_urlenc(&back, v);
		sep = '&';
	}
	sb_init(&sb);
	sb_adds(&sb, "/hub/login?next=");
	pages_add_urlenc(&sb, back.buf);
	req_redirect(r, sb.buf);
	sb_release(&sb);
	sb_release(&back);
}

/* The request's client, redirect_uri and response_type: 0 with *cl, or
 * -1 with r answered 400 (never a redirect to a URI not the client's). */
static int
authorize_request(struct req *r, struct oauth_client *cl)
{
	const char *client_id = req_query(r, "client_id");
	const char *redirect_uri = req_query(r, "redirect_uri");
	const char *type = req_query(r, "response_type");

	if (client_id == NULL || !clients_get(r->hub, client_id, cl))
		pages_error(r, 400, "Unknown application", "client_id: no "
			    "running server has this OAuth client.");
	else if (redirect_uri && strcmp(redirect_uri, cl->redirect_uri) != 0)
		pages_error(r, 400, "Wrong redirect", "redirect_uri: not the "
			    "one registered for this client.");
	else if (type == NULL || strcmp(type, "code") != 0)
		pages_error(r, 400, "Unsupported request", "response_type: "
			    "only \"code\" is supported.");
	else
		return 0;
	return -1;
}

/* To the client's callback with a new code and the request's state. */
static void
redirect_with_code(struct req *r, const struct oauth_client *cl,
		   const char *user)
{
	const char *state = req_query(r, "state");
	struct strbuf sb;
	char code[65];

	clients_code_new(r->hub, cl, user, code);
	sb_init(&sb);
	sb_adds(&sb, cl->redirect_uri);
	sb_adds(&sb, "?code=");
	sb_adds(&sb, code);
	if (state) {
		sb_adds(&sb, "&state=");
		pages_add_urlenc(&sb, state);
	}
	log_event(LOG_INFO, "oauth.authorized", "user=%s client=%s", user,
		  cl->id);
	req_redirect(r, sb.buf);
	sb_release(&sb);
}

void
oauth_authorize(struct req *r)
{
	struct oauth_client cl;
	struct who w;

	r->handler = "oauth_authorize";
	if (r->method != M_GET && r->method != M_HEAD) {
		req_json_error(r, 405, "method not allowed");
		return;
	}
	if (authorize_request(r, &cl) < 0)
		return;
	who_identify(r, &w);
	if (w.kind != WHO_USER || !w.by_cookie) {
		to_login(r);
	} else if (strcmp(w.name, cl.user) != 0 &&
		   !(w.admin && r->hub->cfg.admin_access)) {
		log_event(LOG_WARN, "oauth.refused", "user=%s client=%s",
			  w.name, cl.id);
		pages_error(r, 403, "Not your server", "This server belongs to "
			    "someone else.");
	} else {
		redirect_with_code(r, &cl, w.name);
	}
}

/* The form field (application/x-www-form-urlencoded), or NULL (heap). */
static char *
field(struct req *r, const char *key)
{
	return form_value(r->body, r->body_len, key);
}

/* Client credentials in the form (RFC 6749 2.3.1, as jupyterhub-singleuser
 * sends them): 1 when id is a live server's client and secret its token. */
static int
client_ok(struct req *r, const char *id, const char *secret,
	  struct oauth_client *cl)
{
	char hash[65];

	if (id == NULL || secret == NULL || !clients_get(r->hub, id, cl))
		return 0;
	crypto_sha256_hex(secret, strlen(secret), hash);
	return str_ct_eq(hash, cl->secret_hash, 64);
}

static void
issue(struct req *r, const struct oauth_client *cl, const char *user)
{
	char token[65], hash[65], note[USER_NAME_MAX + 128];
	struct store_token out;
	struct users_by by = { user, r->ip, NULL };
	struct err e = { 0 };
	struct strbuf sb;
	char *scope;

	crypto_token(token);
	crypto_sha256_hex(token, strlen(token), hash);
	clients_token_note(cl->user, cl->server, note, sizeof(note));
	if (users_token_create(r->hub, user, hash, note, 0, &by, &out,
			       &e) < 0) {
		oauth_error(r, 500, "server_error", e.msg);
		return;
	}
	scope = xasprintf("access:servers!server=%s/%s access:servers!user=%s",
			  cl->user, cl->server, cl->user);
	sb_init(&sb);
	sb_adds(&sb, "{\"access_token\": \"");
	sb_adds(&sb, token);
	sb_adds(&sb, "\", \"token_type\": \"Bearer\", \"scope\": ");
	sb_add_json(&sb, scope);
	sb_adds(&sb, "}");
	free(scope);
	req_json(r, 200, sb_detach(&sb, NULL));
	req_add_header(r, "Cache-Control", "no-store");
	req_add_header(r, "Pragma", "no-cache");
	log_event(LOG_INFO, "oauth.token", "user=%s client=%s", user, cl->id);
}

void
oauth_token(struct req *r)
{
	char *grant = field(r, "grant_type"), *code = field(r, "code");
	char *id = field(r, "client_id"), *secret = field(r, "client_secret");
	char *redirect = field(r, "redirect_uri");
	struct oauth_client cl;
	struct err e = { 0 };
	char user[USER_NAME_MAX + 1];

	r->handler = "oauth_token";
	if (r->method != M_POST)
		oauth_error(r, 405, "invalid_request", "method: POST only");
	else if (grant == NULL || strcmp(grant, "authorization_code") != 0)
		oauth_error(r, 400, "unsupported_grant_type", "grant_type: "
			    "only authorization_code is supported");
	else if (!client_ok(r, id, secret, &cl))
		oauth_error(r, 401, "invalid_client", "client_id or "
			    "client_secret: not a running server's client");
	else if (code == NULL || redirect == NULL)
		oauth_error(r, 400, "invalid_request", code == NULL ?
			    "code: missing" : "redirect_uri: missing");
	else if (clients_code_take(r->hub, code, cl.id, redirect, user,
				   &e) < 0)
		oauth_error(r, 400, "invalid_grant", e.msg);
	else
		issue(r, &cl, user);
	free(grant);
	free(code);
	free(id);
	free(secret);
	free(redirect);
}
