/*
 * tokens.c - swarmhubctl tokens list|create|revoke: a user's API tokens.
 *
 * Without NAME the user is the owner of the token in use (GET
 * /hub/api/user). A created token is printed once, alone on stdout, and
 * never in an error.
 */
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

/* *name: pos[0] when the command got more than fixed positional
 * arguments, else the token's owner. Caller frees. */
static int
owner(struct ctl *c, const struct args *a, size_t fixed, char **name,
      struct err *e)
{
	json_t *me = NULL;
	const char *n;

	*name = NULL;
	if (a->npos > fixed) {
		*name = xstrdup(a->pos[0]);
		return 0;
	}
	if (rest_call(c, "GET", "/hub/api/user", NULL, &me, NULL,
	    "find the token's owner", e) < 0)
		return -1;
	n = json_str(me, "name");
	if (n != NULL && json_str(me, "kind") != NULL &&
	    strcmp(json_str(me, "kind"), "service") == 0) {
		usage_err(e, "the token belongs to service '%s': give a "
		    "user NAME", n);
		json_decref(me);
		return CTL_USAGE;
	}
	if (n != NULL)
		*name = xstrdup(n);
	json_decref(me);
	if (n == NULL)
		return err_set(e, ERR_UPSTREAM, "find the token's owner: "
		    "the answer has no name");
	return 0;
}

static void
tokens_table(const json_t *list)
{
	static const char *const head[] = { "ID", "NOTE", "CREATED",
	    "LAST-ACTIVITY", "EXPIRES" };
	struct table t;
	const json_t *tok;
	const char *row[5];
	char id[32], created[32], last[32], expires[32];
	size_t i;

	table_init(&t, 5, head);
	json_array_foreach(list, i, tok) {
		row[0] = json_str(tok, "id");
		if (json_is_integer(json_object_get(tok, "id"))) {
			snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
			    json_integer_value(json_object_get(tok, "id")));
			row[0] = id;
		}
		row[1] = json_str(tok, "note");
		row[2] = fmt_time(json_object_get(tok, "created"), created,
		    sizeof(created));
		row[3] = fmt_time(json_object_get(tok, "last_activity"), last,
		    sizeof(last));
		row[4] = fmt_time(json_object_get(tok, "expires_at"), expires,
		    sizeof(expires));
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_release(&t);
}

int
cmd_tokens_list(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *resp = NULL;
	char *name, *path, what[128];
	int rc;

	rc = owner(c, a, 0, &name, e);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "list tokens of '%s'", name);
	path = rest_pathf(c, "/hub/api/users/%s/tokens", name);
	rc = rest_call(c, "GET", path, NULL, &resp, NULL, what, e);
	if (rc == 0 && c->json)
		json_print(resp);
	else if (rc == 0)
		tokens_table(json_object_get(resp, "api_tokens"));
	json_decref(resp);
	free(path);
	free(name);
	return rc;
}

/* The JSON body of a token creation from --note and --expires-in. */
static json_t *
token_request(const struct args *a, struct err *e)
{
	const char *note = args_get(a, "note");
	const char *expires = args_get(a, "expires-in");
	json_t *body = json_object();
	long secs;

	if (note != NULL && json_object_set_new(body, "note",
	    json_string(note)) < 0) {
		usage_err(e, "--note: not UTF-8");
		goto bad;
	}
	if (expires != NULL) {
		if (str_to_duration(expires, &secs, "--expires-in", e) < 0 ||
		    secs == 0) {
			usage_err(e, "--expires-in: '%.32s' is not a positive "
			    "duration (90m, 12h, 30d)", expires);
			goto bad;
		}
		json_object_set_new(body, "expires_in", json_integer(secs));
	}
	return body;
bad:
	json_decref(body);
	return NULL;
}

int
cmd_tokens_create(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *body, *resp = NULL;
	char *name, *path, what[128];
	const char *tok;
	int rc;

	body = token_request(a, e);
	if (body == NULL)
		return CTL_USAGE;
	rc = owner(c, a, 0, &name, e);
	if (rc < 0) {
		json_decref(body);
		return rc;
	}
	snprintf(what, sizeof(what), "create token for '%s'", name);
	path = rest_pathf(c, "/hub/api/users/%s/tokens", name);
	rc = rest_call(c, "POST", path, body, &resp, NULL, what, e);
	tok = json_str(resp, "token");
	if (rc == 0 && tok == NULL)
		rc = err_set(e, ERR_UPSTREAM, "%s: the answer has no token",
		    what);
	if (rc == 0 && c->json)
		json_print(resp);
	else if (rc == 0)
		printf("%s\n", tok);
	json_decref(resp);
	json_decref(body);
	free(path);
	free(name);
	return rc;
}

int
cmd_tokens_revoke(struct ctl *c, const struct args *a, struct err *e)
{
	const char *id = a->pos[a->npos - 1];
	char *name, *path, what[128];
	int rc;

	rc = owner(c, a, 1, &name, e);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "revoke token '%s' of '%s'", id, name);
	path = rest_pathf(c, "/hub/api/users/%s/tokens/%s", name, id);
	rc = rest_call(c, "DELETE", path, NULL, NULL, NULL, what, e);
	if (rc == 0 && !c->json)
		printf("revoked token %s of %s\n", id, name);
	free(path);
	free(name);
	return rc;
}
