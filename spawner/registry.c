/*
 * registry.c - private registry credentials (REGISTRY_AUTH) and image
 * references: which registry an image comes from, and the X-Registry-Auth
 * value Swarm needs to pull it on every node.
 *
 * REGISTRY_AUTH is Docker's config.json: {"auths": {"host:port": {"auth":
 * base64("user:password")}}} (or "username" and "password"; an
 * "identitytoken" is passed on as well). Keys may carry a scheme and a
 * path ("https://index.docker.io/v1/"): only the host[:port] counts.
 * Docker Hub's names (index.docker.io, registry-1.docker.io) are docker.io.
 * Pure: no I/O (tests/unit/test_registry.c). Messages name the setting and
 * the entry, never a credential.
 * Ownership: struct registry_auth owns its strings; returned strings are
 * the caller's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "internal.h"

#define SETTING "SWARMHUB_REGISTRY_AUTH"

struct registry_cred {
	char *host;		/* normalized: "reg.example.com:5000" */
	char *server;		/* the key as given */
	char *username, *password, *identitytoken;
};

struct registry_auth {
	struct registry_cred *v;
	size_t n;
};

/* ---- base64 ------------------------------------------------------------ */
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(int c)
{
	const char *p;

	if (c == '-')
		return 62;	/* base64url */
	if (c == '_')
		return 63;
	p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* Standard or URL-safe base64, padding optional: heap bytes + NUL, or
 * NULL when s is not base64. */
static char *
b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), k = 0;
	char *out = xmalloc(n / 4 * 3 + 4);
	unsigned acc = 0;
	int bits = 0, v;

	while (n > 0 && s[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++) {
		if ((v = b64_value((unsigned char)s[i])) < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[k] = '\0';
	*len = k;
	return out;
}

/* URL-safe base64 with padding, as Docker decodes X-Registry-Auth. */
static char *
b64url_encode(const char *s, size_t n)
{
	static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
				  "rstuvwxyz0123456789-_";
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = url[(v >> 18) & 63];
		*o++ = url[(v >> 12) & 63];
		*o++ = i + 1 < n ? url[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? url[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* ---- hosts ------------------------------------------------------------- */
/* A key of "auths" as host[:port], lowercased; Docker Hub as docker.io. */
static char *
norm_host(const char *key)
{
	const char *p = strstr(key, "://");
	char *h;

	if (p)
		key = p + 3;
	h = xstrndup(key, strcspn(key, "/"));
	for (char *c = h; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (!strcmp(h, "index.docker.io") || !strcmp(h, "registry-1.docker.io")
	    || !strcmp(h, "registry.hub.docker.com")) {
		free(h);
		h = xstrdup("docker.io");
	}
	return h;
}

int
registry_names_host(const char *image)
{
	size_t i = strcspn(image, "/");

	if (image[i] != '/')
		return 0;
	/* Docker's rule: the first component is a registry when it has a
	 * '.' or ':', is localhost, or has upper-case letters */
	for (size_t k = 0; k < i; k++)
		if (image[k] == '.' || image[k] == ':' ||
		    isupper((unsigned char)image[k]))
			return 1;
	return i == 9 && strncmp(image, "localhost", 9) == 0;
}

char *
registry_host(const char *image)
{
	char *h, *n;

	if (!registry_names_host(image))
		return xstrdup("docker.io");
	h = xstrndup(image, strcspn(image, "/"));
	n = norm_host(h);
	free(h);
	return n;
}

/* ---- parsing ----------------------------------------------------------- */
static void
cred_release(struct registry_cred *c)
{
	free(c->host);
	free(c->server);
	free(c->username);
	free(c->password);
	free(c->identitytoken);
}

void
registry_auth_free(struct registry_auth *ra)
{
	if (ra == NULL)
		return;
	for (size_t i = 0; i < ra->n; i++)
		cred_release(&ra->v[i]);
	free(ra->v);
	free(ra);
}

static const char *
opt_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

/* "auth": base64 of user:password into c. */
static int
parse_auth_field(const char *key, const char *auth, struct registry_cred *c,
		 struct err *e)
{
	size_t n;
	char *raw = b64_decode(auth, &n), *colon;

	colon = raw ? memchr(raw, ':', n) : NULL;
	if (colon == NULL || colon == raw) {
		free(raw);
		return err_set(e, ERR_INVALID, "%s: auths.\"%.80s\".auth is "
		    "not base64 of user:password", SETTING, key);
	}
	c->username = xstrndup(raw, (size_t)(colon - raw));
	c->password = xstrdup(colon + 1);
	memset(raw, 0, n);
	free(raw);
	return 0;
}

static int
parse_entry(const char *key, json_t *v, struct registry_cred *c,
	    struct err *e)
{
	const char *auth = opt_str(v, "auth");

	if (!json_is_object(v))
		return err_set(e, ERR_INVALID, "%s: auths.\"%.80s\" must be an "
		    "object", SETTING, key);
	c->server = xstrdup(key);
	c->host = norm_host(key);
	if (*c->host == '\0')
		return err_set(e, ERR_INVALID, "%s: auths has an entry with no "
		    "registry host (\"%.80s\"): use \"host:port\"", SETTING, key);
	if (opt_str(v, "identitytoken"))
		c->identitytoken = xstrdup(opt_str(v, "identitytoken"));
	if (auth)
		return parse_auth_field(key, auth, c, e);
	if (opt_str(v, "username") && opt_str(v, "password")) {
		c->username = xstrdup(opt_str(v, "username"));
		c->password = xstrdup(opt_str(v, "password"));
		return 0;
	}
	if (c->identitytoken)
		return 0;
	return err_set(e, ERR_INVALID, "%s: auths.\"%.80s\" has no "
	    "credentials: give \"auth\" (base64 of user:password) or "
	    "\"username\" and \"password\" (a credsStore or credHelpers "
	    "cannot run in the hub)", SETTING, key);
}

static int
parse_auths(json_t *auths, struct registry_auth *ra, struct err *e)
{
	const char *key;
	json_t *v;

	ra->v = xcalloc(json_object_size(auths) + 1, sizeof(*ra->v));
	json_object_foreach(auths, key, v) {
		struct registry_cred *c = &ra->v[ra->n++];

		if (parse_entry(key, v, c, e) < 0)
			return -1;
		for (size_t i = 0; i + 1 < ra->n; i++)
			if (strcmp(ra->v[i].host, c->host) == 0)
				return err_set(e, ERR_INVALID, "%s: registry "
				    "%.80s is given twice in auths", SETTING,
				    c->host);
	}
	return 0;
}

int
registry_auth_parse(const char *text, struct registry_auth **out,
		    struct err *e)
{
	struct registry_auth *ra;
	json_error_t je;
	json_t *j, *auths;
	int rc;

	*out = NULL;
	if (text == NULL || *text == '\0')
		return 0;
	j = json_loads(text, 0, &je);
	if (j == NULL)	/* je.text may quote the secret: only the place */
		return err_set(e, ERR_INVALID, "%s: not JSON (error at line "
		    "%d, column %d); expected Docker's config.json: "
		    "{\"auths\": {\"host:port\": {\"auth\": \"...\"}}}",
		    SETTING, je.line, je.column);
	auths = json_object_get(j, "auths");
	if (!json_is_object(auths) || json_object_size(auths) == 0) {
		json_decref(j);
		return err_set(e, ERR_INVALID, "%s: no \"auths\" object with a "
		    "registry in it; expected Docker's config.json: {\"auths\": "
		    "{\"host:port\": {\"auth\": \"...\"}}}", SETTING);
	}
	ra = xcalloc(1, sizeof(*ra));
	rc = parse_auths(auths, ra, e);
	json_decref(j);
	if (rc < 0) {
		registry_auth_free(ra);
		return -1;
	}
	*out = ra;
	return 0;
}

size_t
registry_auth_count(const struct registry_auth *ra)
{
	return ra ? ra->n : 0;
}

static const struct registry_cred *
find(const struct registry_auth *ra, const char *image)
{
	char *host;
	const struct registry_cred *c = NULL;

	if (ra == NULL)
		return NULL;
	host = registry_host(image);
	for (size_t i = 0; i < ra->n && c == NULL; i++)
		if (strcmp(ra->v[i].host, host) == 0)
			c = &ra->v[i];
	free(host);
	return c;
}

int
registry_has_cred(const struct registry_auth *ra, const char *image)
{
	return find(ra, image) != NULL;
}

char *
registry_header(const struct registry_auth *ra, const char *image)
{
	const struct registry_cred *c = find(ra, image);
	json_t *j;
	char *s, *out;

	if (c == NULL)
		return NULL;
	j = json_pack("{s:s?, s:s?, s:s}", "username", c->username,
		      "password", c->password, "serveraddress", c->host);
	if (c->identitytoken)
		json_object_set_new(j, "identitytoken",
				    json_string(c->identitytoken));
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return NULL;
	out = b64url_encode(s, strlen(s));
	memset(s, 0, strlen(s));
	free(s);
	return out;
}

char *
registry_strip_digest(const char *image)
{
	const char *at = strchr(image, '@');

	return at ? xstrndup(image, (size_t)(at - image)) : xstrdup(image);
}
