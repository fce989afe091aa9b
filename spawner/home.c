/*
 * home.c - what both home backends (home_local.c, home_nfs.c) check and
 * share: which names may become a directory under the home root, and that
 * SHARED_DIR stays inside it.
 */
#include <string.h>
#include "internal.h"

int
home_name_ok(const char *what, const char *s, struct err *e)
{
	if (s == NULL || s[0] == '\0' || s[0] == '.' || strchr(s, '/') ||
	    strlen(s) > 255)
		return err_set(e, ERR_INVALID, "%s '%s' cannot be a directory "
			       "name", what, s ? s : "");
	return 0;
}

int
home_rel_ok(const char *s, struct err *e)
{
	const char *p = s;

	while (*p) {
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
			return err_set(e, ERR_INVALID, "shared directory '%s' "
				       "must stay inside the home root", s);
		p += n;
		p += strspn(p, "/");
	}
	return 0;
}

int
home_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
