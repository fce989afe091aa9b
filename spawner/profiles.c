/*
 * profiles.c - the profiles file: which images and resources the members
 * of each group may choose, and the validation of a user's options.
 *
 * The file (PROFILES, see compose/profiles.md) is parsed strictly: an
 * unknown key, a wrong type or an impossible range is refused with the full
 * key path ("profiles.datascience.cpu.max: must be a number"), so a typo
 * never silently widens what users get. The parsed struct profiles is
 * immutable; spawner.c swaps it under its lock on reload.
 * A user may use the profile named like one of their groups, and
 * "default". With no profile named, the first of: their groups in the
 * order given, then "default". profiles_json lists them in that order.
 * Ownership: struct profiles owns every string it points to.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "internal.h"

#define PATH_LEN 192
#define NAME_LEN 63		/* struct spawn_opts' profile and image */

static const char *const top_keys[] = {
	"cpu_reservation_ratio", "images", "profiles", NULL
};
static const char *const image_keys[] = {
	"image", "description", "cmd", "port", "env", "kind", "default_url",
	"prefix", "headers", "ready_path", "trust_network", "pull", NULL
};
static const char *const profile_keys[] = {
	"images", "cpu", "mem_gb", "gpus", "constraints", "quota",
	"pools", "cull_timeout", NULL
};
static const char *const pool_keys[] = { "constraints", "quota", NULL };
static const char *const range_keys[] = { "min", "max", "default", NULL };
static const char *const quota_keys[] = {
	"servers", "cpu", "mem_gb", "gpus", NULL
};
static const char *const option_keys[] = {
	"profile", "image", "cpu", "mem_gb", "gpus", "pool", NULL
};
/* Set by spec.c; an image's env may not override them. */
static const char *const reserved_env[] = {
	"JUPYTER_TOKEN", "JUPYTERHUB_USER", "JUPYTERHUB_SERVICE_PREFIX",
	"JUPYTERHUB_BASE_URL", "JUPYTERHUB_SERVER_NAME",
	/* kind singleuser */
	"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_URL",
	"JUPYTERHUB_ACTIVITY_URL", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_HOST",
	"JUPYTERHUB_OAUTH_CALLBACK_URL", "JUPYTERHUB_OAUTH_SCOPES",
	"JUPYTERHUB_OAUTH_ACCESS_SCOPES",
	"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES", "JUPYTERHUB_SERVICE_URL",
	"JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", NULL
};

static int
invalid(struct err *e, const char *path, const char *what)
{
	return err_set(e, ERR_INVALID, "%s: %s", path, what);
}

static void
join(char *buf, size_t size, const char *path, const char *key)
{
	int n;

	if (*path)
		n = snprintf(buf, size, "%s.%s", path, key);
	else
		n = snprintf(buf, size, "%s", key);
	if (n < 0)
		buf[0] = '\0';
}

static void
join_index(char *buf, size_t size, const char *path, size_t i)
{
	if (snprintf(buf, size, "%s[%zu]", path, i) < 0)
		buf[0] = '\0';
}

static int
in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static int
check_object(json_t *v, const char *path, const char *const *keys,
	     struct err *e)
{
	const char *key;
	json_t *val;
	char p[PATH_LEN];

	if (!json_is_object(v))
		return invalid(e, path, "must be an object");
	json_object_foreach(v, key, val) {
		if (!in_list(key, keys)) {
			join(p, sizeof(p), path, key);
			return invalid(e, p, "unknown key");
		}
	}
	return 0;
}

/* A non-negative number; absent: *out untouched, or an error if required. */
static int
get_num(json_t *obj, const char *path, const char *key, int required,
	double *out, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	char p[PATH_LEN];

	join(p, sizeof(p), path, key);
	if (!v)
		return required ? invalid(e, p, "missing") : 0;
	if (!json_is_number(v))
		return invalid(e, p, "must be a number");
	if (json_number_value(v) < 0)
		return invalid(e, p, "must not be negative");
	*out = json_number_value(v);
	return 0;
}

/* A non-negative integer; absent: *out untouched. */
static int
get_long(json_t *obj, const char *path, const char *key, long *out,
	 struct err *e)
{
	json_t *v = json_object_get(obj, key);
	char p[PATH_LEN];

	join(p, sizeof(p), path, key);
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return invalid(e, p, "must be an integer");
	if (json_integer_value(v) < 0 || json_integer_value(v) > 1000000000)
		return invalid(e, p, "must be between 0 and 1000000000");
	*out = (long)json_integer_value(v);
	return 0;
}

/* An array of strings into a NULL-terminated heap vector. */
static int
get_strv(json_t *obj, const char *path, const char *key, char ***out,
	 size_t *n, struct err *e)
{
	json_t *v = json_object_get(obj, key), *s;
	char p[PATH_LEN], pi[PATH_LEN];
	size_t i;

	join(p, sizeof(p), path, key);
	*out = xcalloc(v ? json_array_size(v) + 1 : 1, sizeof(char *));
	*n = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return invalid(e, p, "must be an array of strings");
	json_array_foreach(v, i, s) {
		join_index(pi, sizeof(pi), p, i);
		if (!json_is_string(s))
			return invalid(e, pi, "must be a string");
		(*out)[(*n)++] = xstrdup(json_string_value(s));
	}
	return 0;
}

static int
get_env(json_t *obj, const char *path, struct image_def *im, struct err *e)
{
	json_t *v = json_object_get(obj, "env"), *val;
	const char *key;
	char p[PATH_LEN], pk[PATH_LEN];

	join(p, sizeof(p), path, "env");
	im->env = xcalloc(v ? json_object_size(v) + 1 : 1, sizeof(char *));
	if (!v)
		return 0;
	if (!json_is_object(v))
		return invalid(e, p, "must be an object of strings");
	json_object_foreach(v, key, val) {
		join(pk, sizeof(pk), p, key);
		if (!*key || strchr(key, '='))
			return invalid(e, pk, "not a valid variable name");
		if (in_list(key, reserved_env))
			return invalid(e, pk, "is set by the hub");
		if (!json_is_string(val))
			return invalid(e, pk, "must be a string");
		im->env[im->nenv++] = xasprintf("%s=%s", key,
						json_string_value(val));
	}
	return 0;
}

/* A path below the server's prefix: starts with '/', visible ASCII, no
 * "..", no '#'. */
static int
url_path_ok(const char *s)
{
	if (*s != '/' || strstr(s, "..") || strstr(s, "//"))
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 127 || *s == '#' || *s == '\\')
			return 0;
	return 1;
}

static int
get_path(json_t *obj, const char *path, const char *key, char *out,
	 size_t max, struct err *e)
{
	json_t *v = json_object_get(obj, key);
	char p[PATH_LEN];

	if (!v)
		return 0;
	join(p, sizeof(p), path, key);
	if (!json_is_string(v) || !url_path_ok(json_string_value(v)))
		return invalid(e, p, "must be a path starting with '/' "
			       "(visible ASCII, no '..', '//' or '#')");
	if (strlen(json_string_value(v)) >= max)
		return invalid(e, p, "longer than 255 characters");
	snprintf(out, max, "%s", json_string_value(v));
	return 0;
}

static int
header_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~",
							   *s)))
			return 0;
	return 1;
}

static int
get_headers(json_t *obj, const char *path, struct spawner_image *si,
	    struct err *e)
{
	json_t *v = json_object_get(obj, "headers"), *val;
	const char *key, *s;
	char p[PATH_LEN], pk[PATH_LEN];

	if (!v)
		return 0;
	join(p, sizeof(p), path, "headers");
	if (!json_is_object(v))
		return invalid(e, p, "must be an object of strings");
	if (json_object_size(v) > SPAWNER_HEADERS_MAX)
		return invalid(e, p, "at most 8 headers");
	json_object_foreach(v, key, val) {
		join(pk, sizeof(pk), p, key);
		if (!header_name_ok(key) || strlen(key) >= 64)
			return invalid(e, pk, "not a header name (a token of at "
				       "most 63 characters)");
		if (!json_is_string(val))
			return invalid(e, pk, "must be a string");
		s = json_string_value(val);
		if (strlen(s) >= 256)
			return invalid(e, pk, "longer than 255 characters");
		for (; *s; s++)
			if ((unsigned char)*s < ' ' || *s == 127)
				return invalid(e, pk, "control characters are "
					       "not allowed");
		snprintf(si->header_name[si->nheaders], 64, "%s", key);
		snprintf(si->header_value[si->nheaders], 256, "%s",
			 json_string_value(val));
		si->nheaders++;
	}
	return 0;
}

/* kind, default_url, prefix, headers, ready_path, trust_network. */
static int
parse_image_info(json_t *v, const char *path, struct spawner_image *si,
		 struct err *e)
{
	json_t *s;
	char p[PATH_LEN];
	const char *k;

	memset(si, 0, sizeof(*si));
	snprintf(si->ready_path, sizeof(si->ready_path), "/");
	s = json_object_get(v, "kind");
	join(p, sizeof(p), path, "kind");
	if (s) {
		k = json_is_string(s) ? json_string_value(s) : "";
		if (strcmp(k, "jupyter") == 0)
			si->kind = SPAWNER_KIND_JUPYTER;
		else if (strcmp(k, "singleuser") == 0)
			si->kind = SPAWNER_KIND_SINGLEUSER;
		else if (strcmp(k, "web") == 0)
			si->kind = SPAWNER_KIND_WEB;
		else
			return invalid(e, p, "must be \"jupyter\", "
				       "\"singleuser\" or \"web\"");
	}
	s = json_object_get(v, "prefix");
	join(p, sizeof(p), path, "prefix");
	if (s) {
		k = json_is_string(s) ? json_string_value(s) : "";
		if (strcmp(k, "strip") == 0)
			si->strip_prefix = 1;
		else if (strcmp(k, "keep") != 0)
			return invalid(e, p, "must be \"strip\" or \"keep\"");
		if (si->strip_prefix && si->kind != SPAWNER_KIND_WEB)
			return invalid(e, p, "\"strip\" is for images of kind "
				       "\"web\" only");
	}
	s = json_object_get(v, "trust_network");
	join(p, sizeof(p), path, "trust_network");
	if (s && !json_is_boolean(s))
		return invalid(e, p, "must be true or false");
	si->trust_network = s && json_is_true(s);
	if (get_path(v, path, "default_url", si->default_url,
		     sizeof(si->default_url), e) < 0 ||
	    get_path(v, path, "ready_path", si->ready_path,
		     sizeof(si->ready_path), e) < 0 ||
	    get_headers(v, path, si, e) < 0)
		return -1;
	return 0;
}

/* A web app must check a credential the hub gives it ("{token}" in an env
 * or header value), or its image must say it trusts the network. */
static int
check_web_credential(const struct image_def *im, const char *path,
		     struct err *e)
{
	const struct spawner_image *si = &im->info;

	if (si->kind != SPAWNER_KIND_WEB || si->trust_network)
		return 0;
	for (size_t i = 0; i < si->nheaders; i++)
		if (strstr(si->header_value[i], "{token}"))
			return 0;
	for (size_t i = 0; i < im->nenv; i++) {
		const char *val = strchr(im->env[i], '=');

		if (val && strstr(val, "{token}"))
			return 0;
	}
	return invalid(e, path, "an image of kind \"web\" must either pass "
		       "the app a credential it checks ('{token}' in an "
		       "\"env\" or \"headers\" value) or say "
		       "\"trust_network\": true (see compose/profiles.md)");
}

/* "pull": "missing" (the default), "always" or "never" (pull.c). */
static int
get_pull(json_t *obj, const char *path, enum pull_policy *out, struct err *e)
{
	json_t *v = json_object_get(obj, "pull");
	const char *s = json_string_value(v);
	char p[PATH_LEN];

	*out = PULL_MISSING;
	if (!v)
		return 0;
	join(p, sizeof(p), path, "pull");
	if (s && strcmp(s, "missing") == 0)
		return 0;
	if (s && strcmp(s, "always") == 0)
		*out = PULL_ALWAYS;
	else if (s && strcmp(s, "never") == 0)
		*out = PULL_NEVER;
	else
		return invalid(e, p, "must be \"missing\", \"always\" or "
			       "\"never\"");
	return 0;
}

static int
parse_image(json_t *v, const char *key, struct image_def *im, struct err *e)
{
	json_t *s;
	char path[PATH_LEN], p[PATH_LEN];
	long port = 8888;

	join(path, sizeof(path), "images", key);
	im->key = xstrdup(key);
	im->port = 8888;
	if (strlen(key) > NAME_LEN)
		return invalid(e, path, "key longer than 63 characters");
	if (check_object(v, path, image_keys, e) < 0)
		return -1;
	s = json_object_get(v, "image");
	join(p, sizeof(p), path, "image");
	if (!json_is_string(s) || !*json_string_value(s))
		return invalid(e, p, s ? "must be a non-empty string" :
			       "missing");
	im->image = xstrdup(json_string_value(s));
	s = json_object_get(v, "description");
	join(p, sizeof(p), path, "description");
	if (s && !json_is_string(s))
		return invalid(e, p, "must be a string");
	im->description = xstrdup(s ? json_string_value(s) : "");
	if (get_strv(v, path, "cmd", &im->cmd, &im->ncmd, e) < 0 ||
	    get_pull(v, path, &im->pull, e) < 0 ||
	    get_env(v, path, im, e) < 0 ||
	    get_long(v, path, "port", &port, e) < 0 ||
	    parse_image_info(v, path, &im->info, e) < 0 ||
	    check_web_credential(im, path, e) < 0)
		return -1;
	join(p, sizeof(p), path, "port");
	if (port < 1 || port > 65535)
		return invalid(e, p, "must be between 1 and 65535");
	im->port = (int)port;
	return 0;
}

static int
parse_range(json_t *obj, const char *path, const char *key, struct range *r,
	    struct err *e)
{
	json_t *v = json_object_get(obj, key);
	char p[PATH_LEN], pd[PATH_LEN];

	join(p, sizeof(p), path, key);
	if (!v)
		return invalid(e, p, "missing");
	if (check_object(v, p, range_keys, e) < 0 ||
	    get_num(v, p, "min", 1, &r->min, e) < 0 ||
	    get_num(v, p, "max", 1, &r->max, e) < 0)
		return -1;
	r->def = r->min;
	if (get_num(v, p, "default", 0, &r->def, e) < 0)
		return -1;
	join(pd, sizeof(pd), p, "min");
	if (r->min <= 0)
		return invalid(e, pd, "must be greater than 0");
	if (r->min > r->max)
		return err_set(e, ERR_INVALID, "%s: min (%g) is greater than "
			       "max (%g)", p, r->min, r->max);
	join(pd, sizeof(pd), p, "default");
	if (r->def < r->min || r->def > r->max)
		return err_set(e, ERR_INVALID, "%s: must be between %g and %g "
			       "(got %g)", pd, r->min, r->max, r->def);
	return 0;
}

static int
parse_quota(json_t *obj, const char *path, struct quota *q, struct err *e)
{
	json_t *v = json_object_get(obj, "quota");
	char p[PATH_LEN];

	q->servers = -1;
	q->cpu = -1;
	q->mem_gb = -1;
	q->gpus = -1;
	if (!v)
		return 0;
	join(p, sizeof(p), path, "quota");
	if (check_object(v, p, quota_keys, e) < 0 ||
	    get_long(v, p, "servers", &q->servers, e) < 0 ||
	    get_num(v, p, "cpu", 0, &q->cpu, e) < 0 ||
	    get_num(v, p, "mem_gb", 0, &q->mem_gb, e) < 0 ||
	    get_long(v, p, "gpus", &q->gpus, e) < 0)
		return -1;
	return 0;
}

/* One entry of "pools": a list of constraints, or {"constraints": [...],
 * "quota": {...}}. */
static int
parse_pool(json_t *v, const char *path, const char *name, struct pool_def *pl,
	   struct err *e)
{
	char p[PATH_LEN];
	json_t *wrap;
	int rc;

	join(p, sizeof(p), path, name);
	pl->name = xstrdup(name);
	if (!*name || strlen(name) > NAME_LEN)
		return invalid(e, p, "name must have 1 to 63 characters");
	if (json_is_array(v)) {
		/* the short form: the list is the constraints */
		wrap = json_pack("{s:O}", name, v);
		rc = get_strv(wrap, path, name, &pl->constraints,
			      &pl->nconstraints, e);
		json_decref(wrap);
		parse_quota(json_null(), p, &pl->quota, e);
		return rc;
	}
	if (!json_is_object(v))
		return invalid(e, p, "must be a list of constraints or an "
			       "object with \"constraints\" and \"quota\"");
	if (check_object(v, p, pool_keys, e) < 0)
		return -1;
	if (!json_object_get(v, "constraints"))
		return err_set(e, ERR_INVALID, "%s.constraints: missing", p);
	if (get_strv(v, p, "constraints", &pl->constraints,
		     &pl->nconstraints, e) < 0 ||
	    parse_quota(v, p, &pl->quota, e) < 0)
		return -1;
	return 0;
}

static int
parse_pools(json_t *obj, const char *path, struct profile_def *pd,
	    struct err *e)
{
	json_t *v = json_object_get(obj, "pools"), *val;
	char p[PATH_LEN];
	const char *key;

	if (!v)
		return 0;
	join(p, sizeof(p), path, "pools");
	if (!json_is_object(v))
		return invalid(e, p, "must be an object (pool name -> "
			       "constraints)");
	pd->pools = xcalloc(json_object_size(v) + 1, sizeof(*pd->pools));
	json_object_foreach(v, key, val) {
		if (parse_pool(val, p, key, &pd->pools[pd->npools++], e) < 0)
			return -1;
	}
	return 0;
}

static int
check_images(const struct profiles *p, const struct profile_def *pd,
	     const char *path, struct err *e)
{
	char p_images[PATH_LEN], pi[PATH_LEN];
	size_t i;

	join(p_images, sizeof(p_images), path, "images");
	if (pd->nimages == 0)
		return invalid(e, p_images, "must name at least one image");
	for (i = 0; i < pd->nimages; i++) {
		if (profiles_image(p, pd->images[i]))
			continue;
		join_index(pi, sizeof(pi), p_images, i);
		return err_set(e, ERR_INVALID, "%s: unknown image '%s'", pi,
			       pd->images[i]);
	}
	return 0;
}

static int
parse_profile(const struct profiles *p, json_t *v, const char *name,
	      struct profile_def *pd, struct err *e)
{
	char path[PATH_LEN];

	join(path, sizeof(path), "profiles", name);
	pd->name = xstrdup(name);
	if (!*name || strlen(name) > NAME_LEN)
		return invalid(e, path, "name must have 1 to 63 characters");
	if (check_object(v, path, profile_keys, e) < 0)
		return -1;
	if (!json_object_get(v, "images"))
		return err_set(e, ERR_INVALID, "%s.images: missing", path);
	if (get_strv(v, path, "images", &pd->images, &pd->nimages, e) < 0 ||
	    check_images(p, pd, path, e) < 0 ||
	    parse_range(v, path, "cpu", &pd->cpu, e) < 0 ||
	    parse_range(v, path, "mem_gb", &pd->mem_gb, e) < 0 ||
	    get_long(v, path, "gpus", &pd->gpus, e) < 0 ||
	    get_strv(v, path, "constraints", &pd->constraints,
		     &pd->nconstraints, e) < 0 ||
	    parse_quota(v, path, &pd->quota, e) < 0 ||
	    parse_pools(v, path, pd, e) < 0 ||
	    get_long(v, path, "cull_timeout", &pd->cull_timeout_s, e) < 0)
		return -1;
	return 0;
}

static int
parse_images(json_t *root, struct profiles *p, struct err *e)
{
	json_t *v = json_object_get(root, "images"), *val;
	const char *key;

	if (!v)
		return invalid(e, "images", "missing");
	if (!json_is_object(v))
		return invalid(e, "images", "must be an object");
	p->images = xcalloc(json_object_size(v) + 1, sizeof(*p->images));
	json_object_foreach(v, key, val) {
		if (parse_image(val, key, &p->images[p->nimages++], e) < 0)
			return -1;
	}
	return 0;
}

static int
parse_profiles(json_t *root, struct profiles *p, struct err *e)
{
	json_t *v = json_object_get(root, "profiles"), *val;
	const char *key;

	if (!v)
		return invalid(e, "profiles", "missing");
	if (!json_is_object(v))
		return invalid(e, "profiles", "must be an object");
	if (json_object_size(v) == 0)
		return invalid(e, "profiles", "must hold at least one profile");
	p->profiles = xcalloc(json_object_size(v) + 1, sizeof(*p->profiles));
	json_object_foreach(v, key, val) {
		if (parse_profile(p, val, key, &p->profiles[p->nprofiles++],
				  e) < 0)
			return -1;
	}
	return 0;
}

static int
parse_root(json_t *root, struct profiles *p, struct err *e)
{
	const char *r = "cpu_reservation_ratio";

	p->cpu_reservation_ratio = 1.0;
	if (!json_is_object(root))
		return invalid(e, "profiles file", "must be a JSON object");
	if (check_object(root, "", top_keys, e) < 0 ||
	    get_num(root, "", r, 0, &p->cpu_reservation_ratio, e) < 0)
		return -1;
	if (p->cpu_reservation_ratio > 1)
		return invalid(e, r, "must be between 0 and 1");
	if (parse_images(root, p, e) < 0 || parse_profiles(root, p, e) < 0)
		return -1;
	return 0;
}

int
profiles_parse(const char *json, size_t len, struct profiles **out,
	       struct err *e)
{
	struct profiles *p = xcalloc(1, sizeof(*p));
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		free(p);
		return err_set(e, ERR_INVALID, "profiles: line %d column %d: "
			       "%s", jerr.line, jerr.column, jerr.text);
	}
	if (parse_root(root, p, e) < 0) {
		json_decref(root);
		profiles_free(p);
		return -1;
	}
	json_decref(root);
	*out = p;
	return 0;
}

int
profiles_load(const char *path, struct profiles **out, struct err *e)
{
	struct strbuf sb;
	char buf[8192];
	size_t n;
	FILE *f;
	int rc;

	*out = NULL;
	f = fopen(path, "r");
	if (!f)
		return err_set(e, ERR_INVALID, "cannot read profiles file "
			       "'%s': %s", path, strerror(errno));
	sb_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&sb, buf, n);
	if (ferror(f)) {
		rc = err_set(e, ERR_INVALID, "cannot read profiles file '%s'",
			     path);
	} else {
		rc = profiles_parse(sb.buf ? sb.buf : "", sb.len, out, e);
	}
	fclose(f);
	sb_release(&sb);
	return rc;
}

static void
strv_free_n(char **v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
profiles_free(struct profiles *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nimages; i++) {
		free(p->images[i].key);
		free(p->images[i].image);
		free(p->images[i].description);
		strv_free_n(p->images[i].cmd, p->images[i].ncmd);
		strv_free_n(p->images[i].env, p->images[i].nenv);
	}
	for (i = 0; i < p->nprofiles; i++) {
		free(p->profiles[i].name);
		strv_free_n(p->profiles[i].images, p->profiles[i].nimages);
		strv_free_n(p->profiles[i].constraints,
			    p->profiles[i].nconstraints);
		for (size_t k = 0; k < p->profiles[i].npools; k++) {
			free(p->profiles[i].pools[k].name);
			strv_free_n(p->profiles[i].pools[k].constraints,
				    p->profiles[i].pools[k].nconstraints);
		}
		free(p->profiles[i].pools);
	}
	free(p->images);
	free(p->profiles);
	free(p);
}

const struct profile_def *
profiles_get(const struct profiles *p, const char *name)
{
	size_t i;

	for (i = 0; p && name && i < p->nprofiles; i++)
		if (p->profiles[i].name && strcmp(p->profiles[i].name, name) == 0)
			return &p->profiles[i];
	return NULL;
}

const struct image_def *
profiles_image(const struct profiles *p, const char *key)
{
	size_t i;

	for (i = 0; p && key && i < p->nimages; i++)
		if (p->images[i].key && strcmp(p->images[i].key, key) == 0)
			return &p->images[i];
	return NULL;
}

const struct pool_def *
profiles_pool(const struct profile_def *pd, const char *name)
{
	for (size_t i = 0; pd && name && *name && i < pd->npools; i++)
		if (pd->pools[i].name && strcmp(pd->pools[i].name, name) == 0)
			return &pd->pools[i];
	return NULL;
}

/* ---- user options ---------------------------------------------------- */

/* 1 when d is a whole number (no libm). */
static int
is_whole(double d)
{
	return d > -1e15 && d < 1e15 && d == (double)(long long)d;
}

static int
allowed(const char *name, const char *const *groups, size_t ngroups)
{
	size_t i;

	if (strcmp(name, "default") == 0)
		return 1;
	for (i = 0; i < ngroups; i++)
		if (groups[i] && strcmp(groups[i], name) == 0)
			return 1;
	return 0;
}

/*
 * The profiles a user may use, in the order of choice: groups as given
 * (those with a profile, no repeats), then "default". Heap array of *n.
 */
static const struct profile_def **
allowed_list(const struct profiles *p, const char *const *groups,
	     size_t ngroups, size_t *n)
{
	const struct profile_def **v, *pd;
	size_t i, j;

	v = xcalloc(ngroups + 2, sizeof(*v));
	*n = 0;
	for (i = 0; i <= ngroups; i++) {
		pd = profiles_get(p, i < ngroups ? groups[i] : "default");
		for (j = 0; pd && j < *n; j++)
			if (v[j] == pd)
				pd = NULL;
		if (pd)
			v[(*n)++] = pd;
	}
	return v;
}

static int
load_options(const char *text, json_t **out, struct err *e)
{
	json_error_t jerr;
	const char *key;
	json_t *v;

	*out = NULL;
	if (!text || !*text)
		return 0;
	*out = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out)
		return err_set(e, ERR_INVALID, "options are not valid JSON: %s",
			       jerr.text);
	if (!json_is_object(*out))
		return err_set(e, ERR_INVALID, "options must be a JSON object");
	json_object_foreach(*out, key, v) {
		if (!in_list(key, option_keys))
			return err_set(e, ERR_INVALID, "unknown option '%s'",
				       key);
	}
	return 0;
}

/* The option's value, NULL when absent or null. */
static json_t *
option(json_t *root, const char *key)
{
	json_t *v = json_object_get(root, key);

	return json_is_null(v) ? NULL : v;
}

static int
pick_profile(const struct profiles *p, const char *const *groups,
	     size_t ngroups, json_t *root, const struct profile_def **out,
	     struct err *e)
{
	json_t *v = option(root, "profile");
	const struct profile_def **list;
	const char *name;
	size_t n;

	if (v && !json_is_string(v))
		return err_set(e, ERR_INVALID, "option 'profile' must be a "
			       "string");
	if (!v) {
		list = allowed_list(p, groups, ngroups, &n);
		*out = n ? list[0] : NULL;
		free(list);
		if (!*out)
			return err_set(e, ERR_FORBIDDEN, "no profile is "
				       "available to you");
		return 0;
	}
	name = json_string_value(v);
	*out = profiles_get(p, name);
	if (!*out)
		return err_set(e, ERR_INVALID, "unknown profile '%.64s'", name);
	if (!allowed(name, groups, ngroups))
		return err_set(e, ERR_FORBIDDEN, "profile '%s' is not "
			       "available to you", name);
	return 0;
}

static int
pick_image(const struct profile_def *pd, json_t *root, struct spawn_opts *o,
	   struct err *e)
{
	json_t *v = option(root, "image");
	struct strbuf sb;
	const char *key;
	size_t i;

	if (v && !json_is_string(v))
		return err_set(e, ERR_INVALID, "option 'image' must be a "
			       "string");
	key = v ? json_string_value(v) : pd->images[0];
	for (i = 0; i < pd->nimages; i++) {
		if (strcmp(pd->images[i], key) == 0) {
			snprintf(o->image, sizeof(o->image), "%s", key);
			return 0;
		}
	}
	sb_init(&sb);
	for (i = 0; i < pd->nimages; i++) {
		sb_adds(&sb, i ? ", " : "");
		sb_adds(&sb, pd->images[i]);
	}
	err_set(e, ERR_INVALID, "image '%.64s' is not available in profile "
		"'%s' (choose one of: %s)", key, pd->name, sb.buf);
	sb_release(&sb);
	return -1;
}

static int
pick_range(json_t *root, const char *key, const struct range *r,
	   double *out, struct err *e)
{
	json_t *v = option(root, key);

	if (v && !json_is_number(v))
		return err_set(e, ERR_INVALID, "option '%s' must be a number",
			       key);
	*out = v ? json_number_value(v) : r->def;
	if (*out < r->min || *out > r->max)
		return err_set(e, ERR_INVALID, "%s must be between %g and %g "
			       "(got %g)", key, r->min, r->max, *out);
	return 0;
}

static int
pick_gpus(json_t *root, const struct profile_def *pd, int *out,
	  struct err *e)
{
	json_t *v = option(root, "gpus");
	double d;

	if (!v) {
		*out = 0;
		return 0;
	}
	d = json_is_number(v) ? json_number_value(v) : 0;
	if (!json_is_number(v) || !is_whole(d))
		return err_set(e, ERR_INVALID, "option 'gpus' must be an "
			       "integer");
	if (d > 0 && pd->gpus == 0)
		return err_set(e, ERR_INVALID, "profile '%s' offers no GPUs "
			       "(got %g)", pd->name, d);
	if (d < 0 || d > (double)pd->gpus)
		return err_set(e, ERR_INVALID, "gpus must be between 0 and %ld "
			       "(got %g)", pd->gpus, d);
	*out = (int)d;
	return 0;
}

/* "pool": absent (only the profile's constraints), or one of its pools. */
static int
pick_pool(const struct profile_def *pd, json_t *root, struct spawn_opts *o,
	  struct err *e)
{
	json_t *v = option(root, "pool");
	struct strbuf sb;
	const char *name;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return err_set(e, ERR_INVALID, "option 'pool' must be a "
			       "string");
	name = json_string_value(v);
	if (profiles_pool(pd, name)) {
		snprintf(o->pool, sizeof(o->pool), "%s", name);
		return 0;
	}
	if (pd->npools == 0)
		return err_set(e, ERR_INVALID, "pool '%.64s' is not available: "
			       "profile '%s' offers no pools", name, pd->name);
	sb_init(&sb);
	for (size_t i = 0; i < pd->npools; i++) {
		sb_adds(&sb, i ? ", " : "");
		sb_adds(&sb, pd->pools[i].name);
	}
	err_set(e, ERR_INVALID, "pool '%.64s' is not available in profile "
		"'%s' (choose one of: %s)", name, pd->name, sb.buf);
	sb_release(&sb);
	return -1;
}

int
profiles_options(const struct profiles *p, const char *const *groups,
		 size_t ngroups, const char *options_json,
		 struct spawn_opts *out, struct err *e)
{
	const struct profile_def *pd = NULL;
	json_t *root;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (load_options(options_json, &root, e) < 0)
		goto done;
	if (pick_profile(p, groups, ngroups, root, &pd, e) < 0 ||
	    pick_image(pd, root, out, e) < 0 ||
	    pick_range(root, "cpu", &pd->cpu, &out->cpu, e) < 0 ||
	    pick_range(root, "mem_gb", &pd->mem_gb, &out->mem_gb, e) < 0 ||
	    pick_gpus(root, pd, &out->gpus, e) < 0 ||
	    pick_pool(pd, root, out, e) < 0)
		goto done;
	snprintf(out->profile, sizeof(out->profile), "%s", pd->name);
	rc = 0;
done:
	json_decref(root);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- quotas ---------------------------------------------------------- */

/* used + asked over quota (< 0: no limit); asking none never fails. */
static int
over(double quota, double used, double asked)
{
	return quota >= 0 && asked > 0 && used + asked > quota + 1e-9;
}

/* q over the servers of in_use that count (pool NULL: all, else those of
 * that pool); where: "" or " in pool 'gpu'". */
static int
quota_over(const struct quota *q, const char *pool, const char *where,
	   const struct spawn_opts *o, const struct spawn_opts *in_use,
	   size_t n, struct err *e)
{
	double cpu = 0, mem = 0, gpus = 0;
	size_t i, count = 0;

	for (i = 0; i < n; i++) {
		if (pool && strcmp(in_use[i].pool, pool) != 0)
			continue;
		count++;
		cpu += in_use[i].cpu;
		mem += in_use[i].mem_gb;
		gpus += in_use[i].gpus;
	}
	if (over((double)q->servers, (double)count, 1))
		return err_set(e, ERR_TOOMANY, "your group's quota of %ld "
			       "servers%s is in use (%zu used)", q->servers,
			       where, count);
	if (over(q->cpu, cpu, o->cpu))
		return err_set(e, ERR_TOOMANY, "your group's quota of %g CPUs%s "
			       "is in use (%g used, %g asked)", q->cpu, where,
			       cpu, o->cpu);
	if (over(q->mem_gb, mem, o->mem_gb))
		return err_set(e, ERR_TOOMANY, "your group's quota of %g GiB of "
			       "memory%s is in use (%g used, %g asked)",
			       q->mem_gb, where, mem, o->mem_gb);
	if (over((double)q->gpus, gpus, o->gpus))
		return err_set(e, ERR_TOOMANY, "your group's quota of %ld "
			       "GPUs%s is in use (%g used, %d asked)", q->gpus,
			       where, gpus, o->gpus);
	return 0;
}

int
profiles_quota_check(const struct profiles *p, const struct spawn_opts *o,
		     const struct spawn_opts *in_use, size_t n,
		     struct err *e)
{
	const struct profile_def *pd = profiles_get(p, o->profile);
	const struct pool_def *pl;
	char where[96];

	if (!pd)
		return err_set(e, ERR_INVALID, "unknown profile '%s'",
			       o->profile);
	if (quota_over(&pd->quota, NULL, "", o, in_use, n, e) < 0)
		return -1;
	pl = profiles_pool(pd, o->pool);
	if (!pl)
		return 0;
	snprintf(where, sizeof(where), " in pool '%s'", pl->name);
	return quota_over(&pl->quota, pl->name, where, o, in_use, n, e);
}

/* ---- JSON out -------------------------------------------------------- */

/* 2 rather than 2.0 when the value is whole. */
static json_t *
num(double d)
{
	if (is_whole(d))
		return json_integer((json_int_t)d);
	return json_real(d);
}

static char *
dump(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER |
			     JSON_REAL_PRECISION(15));
	char *r;

	json_decref(v);
	if (!s)
		return xstrdup("{}");
	r = xstrdup(s);
	free(s);
	return r;
}

char *
spawner_options_json(const struct spawn_opts *o)
{
	json_t *v = json_object();

	json_object_set_new(v, "profile", json_string(o->profile));
	json_object_set_new(v, "image", json_string(o->image));
	json_object_set_new(v, "cpu", num(o->cpu));
	json_object_set_new(v, "mem_gb", num(o->mem_gb));
	json_object_set_new(v, "gpus", json_integer(o->gpus));
	if (*o->pool)
		json_object_set_new(v, "pool", json_string(o->pool));
	return dump(v);
}

static json_t *
range_json(const struct range *r)
{
	json_t *v = json_object();

	json_object_set_new(v, "min", num(r->min));
	json_object_set_new(v, "max", num(r->max));
	json_object_set_new(v, "default", num(r->def));
	return v;
}

static json_t *
quota_json(const struct quota *q)
{
	json_t *v = json_object();

	if (q->servers >= 0)
		json_object_set_new(v, "servers", json_integer(q->servers));
	if (q->cpu >= 0)
		json_object_set_new(v, "cpu", num(q->cpu));
	if (q->mem_gb >= 0)
		json_object_set_new(v, "mem_gb", num(q->mem_gb));
	if (q->gpus >= 0)
		json_object_set_new(v, "gpus", json_integer(q->gpus));
	return v;
}

static json_t *
pools_json(const struct profile_def *pd)
{
	json_t *a = json_array(), *cons;

	for (size_t i = 0; i < pd->npools; i++) {
		const struct pool_def *pl = &pd->pools[i];

		cons = json_array();
		for (size_t k = 0; k < pl->nconstraints; k++)
			json_array_append_new(cons,
					      json_string(pl->constraints[k]));
		json_array_append_new(a, json_pack("{s:s, s:o, s:o}", "name",
		    pl->name, "constraints", cons, "quota",
		    quota_json(&pl->quota)));
	}
	return a;
}

static const char *
kind_name(enum spawner_kind k)
{
	return k == SPAWNER_KIND_WEB ? "web" :
	    k == SPAWNER_KIND_SINGLEUSER ? "singleuser" : "jupyter";
}

static json_t *
profile_json(const struct profiles *p, const struct profile_def *pd)
{
	const struct image_def *im;
	json_t *v = json_object(), *images = json_array();
	size_t i;

	for (i = 0; i < pd->nimages; i++) {
		im = profiles_image(p, pd->images[i]);
		json_array_append_new(images, json_pack("{s:s, s:s, s:s, s:s}",
			"key", im->key, "image", im->image,
			"description", im->description,
			"kind", kind_name(im->info.kind)));
	}
	json_object_set_new(v, "name", json_string(pd->name));
	json_object_set_new(v, "images", images);
	json_object_set_new(v, "cpu", range_json(&pd->cpu));
	json_object_set_new(v, "mem_gb", range_json(&pd->mem_gb));
	json_object_set_new(v, "gpus", json_integer(pd->gpus));
	json_object_set_new(v, "quota", quota_json(&pd->quota));
	json_object_set_new(v, "pools", pools_json(pd));
	return v;
}

char *
profiles_json(const struct profiles *p, const char *const *groups,
	      size_t ngroups)
{
	const struct profile_def **list;
	json_t *v = json_object(), *arr = json_array();
	size_t i, n;

	list = allowed_list(p, groups, ngroups, &n);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, profile_json(p, list[i]));
	json_object_set_new(v, "default_profile",
			    n ? json_string(list[0]->name) : json_null());
	json_object_set_new(v, "profiles", arr);
	free(list);
	return dump(v);
}
