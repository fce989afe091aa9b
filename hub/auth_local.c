/*
 * auth_local.c - local accounts: crypt(3) with yescrypt (libcrypt).
 */
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "auth.h"

char *
auth_local_hash(const char *password, struct err *e)
{
	struct crypt_data *cd;
	char *salt, *out = NULL;
	const char *h;

	if (password == NULL || *password == '\0') {
		err_set(e, ERR_INVALID, "password is empty");
		return NULL;
	}
	if (strlen(password) > 1024) {
		err_set(e, ERR_INVALID, "password is longer than 1024 bytes");
		return NULL;
	}
	salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (salt == NULL) {
		err_set(e, ERR_INTERNAL, "cannot make a salt: %s",
			strerror(errno));
		return NULL;
	}
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(password, salt, cd);
	if (h == NULL || h[0] == '*')
		err_set(e, ERR_INTERNAL, "crypt failed");
	else
		out = xstrdup(h);
	free(salt);
	free(cd);
	return out;
}

int
auth_local_verify(const char *password, const char *hash)
{
	/* A fixed valid hash so unknown users cost the same time. */
	static const char dummy[] = "$y$j9T$jCFbCrGXDwEBSazA2fpND/"
	    "$bedMPFrBhg3g4cBCUrxOHrHjK0ARnUfhfHYOSSaPrR7";
	struct crypt_data *cd;
	const char *h;
	int ok;

	if (password == NULL || strlen(password) > 1024)
		return 0;
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(password, hash && *hash == '$' ? hash : dummy, cd);
	ok = h != NULL && h[0] != '*' && hash != NULL && *hash == '$' &&
	     strlen(h) == strlen(hash) && str_ct_eq(h, hash, strlen(hash));
	free(cd);
	return ok;
}
