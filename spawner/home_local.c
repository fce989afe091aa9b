/*
 * home_local.c - struct home_ops on a local directory (HOME=/some/dir).
 *
 * Every user directory is <root>/<user>; a user name is one path component
 * (no '/', not starting with '.', so never "..", never ".archive").
 * ensure: mkdir 0700, then chown uid:gid and chmod mode; an existing
 *   directory is left exactly as it is (owner, mode and contents: an admin
 *   may have changed them on purpose). When chown/chmod of a directory we
 *   just made fails, the directory is removed again so a retry starts clean.
 *   shared_dir is a path relative to root ("shared" -> <root>/shared;
 *   a leading '/' is ignored, ".." is refused); made when missing with
 *   group shared_gid and mode 2775 (setgid, so what users make inside
 *   keeps the group; owner stays the hub's user).
 * rename: renameat2(RENAME_NOREPLACE): an existing target is refused
 *   (ERR_CONFLICT), never overwritten.
 * chown_tree: nftw(FTW_PHYS | FTW_MOUNT) with lchown: symlinks are
 *   re-owned themselves, their targets never; other filesystems mounted
 *   inside are not entered. fix_shared: group and mode of the shared dir.
 * archive: rename to <root>/.archive/<user>-<date>[-2, -3, ...]; .archive is
 *   made 0700. renameat2(RENAME_NOREPLACE), so an existing target is never
 *   overwritten even when two archives race.
 * remove: nftw(FTW_PHYS | FTW_DEPTH | FTW_MOUNT): symlinks are unlinked,
 *   never followed, and other filesystems mounted inside are not entered.
 * list: the directory names in root, sorted; dot entries (.archive) skipped.
 * Missing user directory: archive and remove give ERR_NOTFOUND.
 * Filesystem failures are ERR_UPSTREAM with the path and strerror.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define ARCHIVE_DIR	".archive"
#define SHARED_MODE	02775
#define SUFFIX_MAX	1000

struct home_local {
	char *root;
};

static _Thread_local int rm_errno;
static _Thread_local char rm_path[256];
/* chown_tree's walk (nftw has no context argument) */
static _Thread_local struct {
	long uid, gid, changed;
	int dry_run;
} own;



static int
fs_error(const char *what, const char *path, int errnum, struct err *e)
{
	char buf[128];

	return err_set(e, errnum == ENOENT ? ERR_NOTFOUND : ERR_UPSTREAM,
		       "cannot %s '%s': %s", what, path,
		       strerror_r(errnum, buf, sizeof(buf)));
}

/* mkdir; owner and mode set only when we made it. 1: made, 0: existed. */
static int
make_dir(const char *path, long uid, long gid, long mode, struct err *e)
{
	struct stat st;
	int errnum;

	if (mkdir(path, 0700) < 0) {
		if (errno != EEXIST)
			return fs_error("create", path, errno, e);
		if (lstat(path, &st) < 0)
			return fs_error("stat", path, errno, e);
		if (!S_ISDIR(st.st_mode))
			return err_set(e, ERR_CONFLICT, "'%s' exists and is "
				       "not a directory", path);
		return 0;
	}
	if (chown(path, (uid_t)uid, (gid_t)gid) < 0 ||
	    chmod(path, (mode_t)mode) < 0) {
		errnum = errno;
		rmdir(path);
		return fs_error("set owner and mode of", path, errnum, e);
	}
	return 1;
}

static int
local_ensure(void *h, const char *user, long uid, long gid, long mode,
	     const char *shared_dir, long shared_gid, struct err *e)
{
	struct home_local *hl = h;
	char *path;
	int rc;

	if (home_name_ok("user", user, e) < 0)
		return -1;
	if (mode < 0 || mode > 07777)
		return err_set(e, ERR_INVALID, "mode %lo is not a file mode",
			       (unsigned long)mode);
	path = xasprintf("%s/%s", hl->root, user);
	rc = make_dir(path, uid, gid, mode, e);
	free(path);
	if (rc < 0)
		return -1;
	if (rc == 1)
		log_event(LOG_INFO, "home.created", "user=%s root=%s",
			  user, hl->root);
	if (shared_dir == NULL || shared_dir[0] == '\0')
		return 0;
	while (shared_dir[0] == '/')
		shared_dir++;
	if (shared_dir[0] == '\0' || home_rel_ok(shared_dir, e) < 0)
		return shared_dir[0] ? -1 : 0;
	path = xasprintf("%s/%s", hl->root, shared_dir);
	rc = make_dir(path, -1, shared_gid, SHARED_MODE, e);
	free(path);
	return rc < 0 ? -1 : 0;
}

static int
local_rename(void *h, const char *from, const char *to, struct err *e)
{
	struct home_local *hl = h;
	char *src, *dst;
	int rc = 0;

	if (home_name_ok("user", from, e) < 0 ||
	    home_name_ok("user", to, e) < 0)
		return -1;
	src = xasprintf("%s/%s", hl->root, from);
	dst = xasprintf("%s/%s", hl->root, to);
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			rc = err_set(e, ERR_CONFLICT, "a home named '%s' "
				     "exists already", to);
		else
			rc = fs_error("rename", src, errno, e);
	}
	if (rc == 0)
		log_event(LOG_INFO, "home.renamed", "from=%s to=%s root=%s",
			  from, to, hl->root);
	free(src);
	free(dst);
	return rc;
}

static int
own_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_NS || flag == FTW_DNR) {
		rm_errno = flag == FTW_NS ? ENOENT : EACCES;
		snprintf(rm_path, sizeof(rm_path), "%s", path);
		return 1;
	}
	if ((long)st->st_uid == own.uid && (long)st->st_gid == own.gid)
		return 0;
	own.changed++;
	if (!own.dry_run && lchown(path, (uid_t)own.uid, (gid_t)own.gid) < 0 &&
	    errno != ENOENT) {
		rm_errno = errno;
		snprintf(rm_path, sizeof(rm_path), "%s", path);
		return 1;
	}
	return 0;
}

static int
local_chown_tree(void *h, const char *user, long uid, long gid, int dry_run,
		 long *changed, struct err *e)
{
	struct home_local *hl = h;
	struct stat st;
	char *path;
	int r, rc = -1;

	*changed = 0;
	if (home_name_ok("user", user, e) < 0)
		return -1;
	path = xasprintf("%s/%s", hl->root, user);
	if (lstat(path, &st) < 0) {
		fs_error("re-own", path, errno, e);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		err_set(e, ERR_CONFLICT, "'%s' is not a directory", path);
		goto out;
	}
	own.uid = uid;
	own.gid = gid;
	own.changed = 0;
	own.dry_run = dry_run;
	rm_errno = 0;
	r = nftw(path, own_one, 16, FTW_PHYS | FTW_MOUNT);
	*changed = own.changed;
	if (r == 1)
		fs_error("re-own", rm_path, rm_errno, e);
	else if (r < 0)
		fs_error("walk", path, errno, e);
	else
		rc = 0;
out:
	free(path);
	return rc;
}

static int
local_fix_shared(void *h, const char *shared_dir, long gid, int dry_run,
		 long *changed, struct err *e)
{
	struct home_local *hl = h;
	struct stat st;
	char *path;
	int rc = 0;

	*changed = 0;
	while (shared_dir && shared_dir[0] == '/')
		shared_dir++;
	if (shared_dir == NULL || shared_dir[0] == '\0')
		return err_set(e, ERR_NOTFOUND, "no shared directory is "
			       "configured (SHARED_DIR)");
	if (home_rel_ok(shared_dir, e) < 0)
		return -1;
	path = xasprintf("%s/%s", hl->root, shared_dir);
	if (lstat(path, &st) < 0)
		rc = fs_error("use shared directory", path, errno, e);
	else if (!S_ISDIR(st.st_mode))
		rc = err_set(e, ERR_CONFLICT, "'%s' is not a directory", path);
	else if ((long)st.st_gid != gid || (st.st_mode & 07777) != SHARED_MODE)
		*changed = 1;
	if (rc == 0 && *changed && !dry_run &&
	    (chown(path, (uid_t)-1, (gid_t)gid) < 0 ||
	     chmod(path, SHARED_MODE) < 0))
		rc = fs_error("set group and mode of", path, errno, e);
	free(path);
	return rc;
}

static int
local_archive(void *h, const char *user, const char *date, char *final,
	      size_t size, struct err *e)
{
	struct home_local *hl = h;
	char *from = NULL, *dir = NULL, *to = NULL;
	int i, rc = -1;

	if (home_name_ok("user", user, e) < 0 || home_name_ok("date", date, e) < 0)
		return -1;
	from = xasprintf("%s/%s", hl->root, user);
	dir = xasprintf("%s/%s", hl->root, ARCHIVE_DIR);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fs_error("create", dir, errno, e);
		goto out;
	}
	for (i = 1; i <= SUFFIX_MAX; i++) {
		free(to);
		to = i == 1 ? xasprintf("%s/%s-%s", dir, user, date)
			    : xasprintf("%s/%s-%s-%d", dir, user, date, i);
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to,
			      RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST && errno != ENOTEMPTY) {
			fs_error("archive", from, errno, e);
			goto out;
		}
	}
	if (i > SUFFIX_MAX) {
		err_set(e, ERR_CONFLICT, "too many archives of '%s' on %s",
			user, date);
		goto out;
	}
	log_event(LOG_INFO, "home.archived", "user=%s to=%s", user, to);
	snprintf(final, size, "%s/%s", ARCHIVE_DIR, strrchr(to, '/') + 1);
	rc = 0;
out:
	free(from);
	free(dir);
	free(to);
	return rc;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int r;

	(void)st;
	(void)ftw;
	r = flag == FTW_DP ? rmdir(path) : unlink(path);
	if (r < 0 && errno != ENOENT) {
		rm_errno = errno;
		snprintf(rm_path, sizeof(rm_path), "%s", path);
		return 1;
	}
	return 0;
}

static int
local_remove(void *h, const char *user, struct err *e)
{
	struct home_local *hl = h;
	struct stat st;
	char *path;
	int r, rc = -1;

	if (home_name_ok("user", user, e) < 0)
		return -1;
	path = xasprintf("%s/%s", hl->root, user);
	if (lstat(path, &st) < 0) {
		fs_error("remove", path, errno, e);
		goto out;
	}
	rm_errno = 0;
	r = nftw(path, rm_one, 16, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
	if (r == 1)
		fs_error("remove", rm_path, rm_errno, e);
	else if (r < 0)
		fs_error("walk", path, errno, e);
	else
		rc = 0;
	if (rc == 0)
		log_event(LOG_INFO, "home.removed", "user=%s root=%s", user,
			  hl->root);
out:
	free(path);
	return rc;
}


static int
is_dir(const char *root, const struct dirent *de)
{
	struct stat st;
	char *p;
	int r;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	p = xasprintf("%s/%s", root, de->d_name);
	r = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return r;
}

static int
local_list(void *h, char ***names, struct err *e)
{
	struct home_local *hl = h;
	struct dirent *de;
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	DIR *dir = opendir(hl->root);

	*names = NULL;
	if (dir == NULL) {
		free(v);
		return fs_error("list", hl->root, errno, e);
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || !is_dir(hl->root, de))
			continue;
		v = xrealloc(v, (n + 2) * sizeof(*v));
		v[n++] = xstrdup(de->d_name);
		v[n] = NULL;
	}
	closedir(dir);
	qsort(v, n, sizeof(*v), home_cmp_names);
	*names = v;
	return 0;
}

static void
local_free(void *h)
{
	struct home_local *hl = h;

	if (hl == NULL)
		return;
	free(hl->root);
	free(hl);
}

static const struct home_ops local_ops = {
	.ensure = local_ensure,
	.rename = local_rename,
	.chown_tree = local_chown_tree,
	.fix_shared = local_fix_shared,
	.archive = local_archive,
	.remove = local_remove,
	.list = local_list,
	.free = local_free,
};

int
home_local_new(const char *root, const struct home_ops **ops, void **h,
	       struct err *e)
{
	struct home_local *hl;
	struct stat st;
	size_t n;

	*h = NULL;
	*ops = NULL;
	if (root == NULL || root[0] != '/')
		return err_set(e, ERR_INVALID, "HOME '%s' must be an absolute "
			       "path or nfs://server/export", root ? root : "");
	if (stat(root, &st) < 0)
		return fs_error("use home root", root, errno, e);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_INVALID, "HOME '%s' is not a directory",
			       root);
	hl = xcalloc(1, sizeof(*hl));
	hl->root = xstrdup(root);
	n = strlen(hl->root);
	while (n > 1 && hl->root[n - 1] == '/')
		hl->root[--n] = '\0';
	*ops = &local_ops;
	*h = hl;
	return 0;
}
