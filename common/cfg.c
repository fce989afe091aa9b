/*
 * cfg.c - settings from SWARMHUB_<NAME> or the file SWARMHUB_<NAME>_FILE.
 *
 * Values read from files are kept for the life of the process (a short
 * list: settings are read at start), so callers borrow them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.h"

struct kept {
	struct kept *next;
	char *value;
};
static struct kept *kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *
keep(char *value)
{
	struct kept *k = xmalloc(sizeof(*k));

	k->value = value;
	pthread_mutex_lock(&kept_lock);
	k->next = kept;
	kept = k;
	pthread_mutex_unlock(&kept_lock);
	return value;
}

static const char *
read_file(const char *var, const char *path, struct err *e)
{
	struct strbuf sb;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		err_set(e, ERR_INVALID, "%s: cannot read '%s': %s", var, path,
			strerror(errno));
		return NULL;
	}
	sb_init(&sb);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && sb.len < 1 << 20)
		sb_add(&sb, chunk, n);
	fclose(f);
	sb_adds(&sb, "");
	while (sb.len && (sb.buf[sb.len - 1] == '\n' ||
			  sb.buf[sb.len - 1] == '\r'))
		sb.buf[--sb.len] = '\0';
	return keep(sb_detach(&sb, NULL));
}

const char *
cfg_get(const char *name, const char *def, struct err *e)
{
	char var[128], fvar[140];
	const char *v, *fv;

	snprintf(var, sizeof(var), "SWARMHUB_%s", name);
	snprintf(fvar, sizeof(fvar), "SWARMHUB_%s_FILE", name);
	v = getenv(var);
	fv = getenv(fvar);
	if (v && fv && *v && *fv) {
		err_set(e, ERR_INVALID, "set %s or %s, not both", var, fvar);
		return NULL;
	}
	if (fv && *fv)
		return read_file(fvar, fv, e);
	if (v)
		return v;
	return def;
}

/* 0 with *v set (NULL or "" when unset), -1 when the file is unreadable. */
static int
get_opt(const char *name, const char **v, struct err *e)
{
	struct err le = { ERR_OK, "" };

	*v = cfg_get(name, NULL, &le);
	if (*v == NULL && le.code != ERR_OK) {
		if (e)
			*e = le;
		return -1;
	}
	return 0;
}

int
cfg_long(const char *name, long def, long min, long max, long *out,
	 struct err *e)
{
	char what[140];
	const char *v;

	if (get_opt(name, &v, e) < 0)
		return -1;
	if (v == NULL || *v == '\0') {
		*out = def;
		return 0;
	}
	snprintf(what, sizeof(what), "SWARMHUB_%s", name);
	return str_to_long(v, min, max, out, what, e);
}

int
cfg_bool(const char *name, int def, int *out, struct err *e)
{
	const char *v;

	if (get_opt(name, &v, e) < 0)
		return -1;
	if (v == NULL || *v == '\0') {
		*out = def;
		return 0;
	}
	if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcasecmp(v, "off")) {
		*out = 0;
		return 0;
	}
	return err_set(e, ERR_INVALID, "SWARMHUB_%s: '%.40s' is not a boolean "
	    "(use true or false)", name, v);
}

int
cfg_duration(const char *name, long def_s, long *out_s, struct err *e)
{
	char what[140];
	const char *v;

	if (get_opt(name, &v, e) < 0)
		return -1;
	if (v == NULL || *v == '\0') {
		*out_s = def_s;
		return 0;
	}
	snprintf(what, sizeof(what), "SWARMHUB_%s", name);
	return str_to_duration(v, out_s, what, e);
}
