/*
 * home_nfs.c - struct home_ops on an NFS export (HOME=nfs://server/export).
 *
 * libnfs 4.0, NFSv3 only: its v4 client cannot chown or chmod a directory
 * (INFRA.md 3b). Each call makes its own context and mount (~1-3 ms on a
 * LAN), so calls from several threads never share state and a restarted
 * server needs no reconnect logic. URL arguments (?nfsport=&mountport=)
 * pass through nfs_parse_url_dir; the version is forced to 3 after it.
 * Semantics are home_local.c's: user names are one path component, ensure
 * sets owner and mode only on a directory it made, archive renames into
 * /.archive with -2, -3... on collision, remove never follows a symlink
 * (nfs_lstat64), list skips dot entries. The shared dir is made 2775 with
 * group shared_gid. rename looks for the target first (NFSv3 RENAME would
 * replace an empty directory) and refuses it with ERR_CONFLICT;
 * chown_tree walks with READDIRPLUS's owners and nfs_lchown, never
 * following a symlink.
 * Errors: mount failure -> ERR_UNAVAILABLE "NFS server ... unreachable"
 * (ERR_UPSTREAM "... refused the mount" when MOUNT answered MNT3ERR_*);
 * an NFS error on an operation -> ERR_UPSTREAM (ERR_NOTFOUND for ENOENT)
 * with libnfs's text.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>	/* before libnfs.h: it uses struct timeval */
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#include "internal.h"

#define ARCHIVE_DIR	"/.archive"
#define SHARED_MODE	02775
#define SUFFIX_MAX	1000
#define DEPTH_MAX	256
#define RPC_TIMEOUT_MS	10000	/* whole seconds only (libnfs) */

struct home_nfs {
	char *url;
	char *where;		/* "server:/export", for messages */
};



/* rc is libnfs's negative errno. */
static int
nfs_error(struct nfs_context *nfs, int rc, const char *what,
	  const char *path, struct err *e)
{
	const char *msg = nfs_get_error(nfs);

	return err_set(e, rc == -ENOENT ? ERR_NOTFOUND : ERR_UPSTREAM,
		       "cannot %s '%s' on NFS: %s", what, path,
		       msg && msg[0] ? msg : strerror(-rc));
}

static struct nfs_context *
mount_new(struct home_nfs *hn, struct err *e)
{
	struct nfs_context *nfs = nfs_init_context();
	struct nfs_url *u;

	if (nfs == NULL) {
		err_set(e, ERR_INTERNAL, "cannot make an NFS context");
		return NULL;
	}
	u = nfs_parse_url_dir(nfs, hn->url);
	if (u == NULL) {
		err_set(e, ERR_INVALID, "HOME '%s': %s", hn->url,
			nfs_get_error(nfs));
		nfs_destroy_context(nfs);
		return NULL;
	}
	nfs_set_version(nfs, 3);
	nfs_set_autoreconnect(nfs, 0);
	nfs_set_timeout(nfs, RPC_TIMEOUT_MS);
	if (nfs_mount(nfs, u->server, u->path) != 0) {
		const char *msg = nfs_get_error(nfs);

		/* MNT3ERR_*: the server answered and refused the export. */
		if (msg && strstr(msg, "MNT3ERR_"))
			err_set(e, ERR_UPSTREAM, "NFS server %s refused the "
				"mount: %s", hn->where, msg);
		else
			err_set(e, ERR_UNAVAILABLE, "NFS server %s "
				"unreachable: %s", hn->where, msg);
		nfs_destroy_url(u);
		nfs_destroy_context(nfs);
		return NULL;
	}
	nfs_destroy_url(u);
	return nfs;
}

static int
is_dir(struct nfs_context *nfs, const char *path, int *dir)
{
	struct nfs_stat_64 st;
	int rc = nfs_lstat64(nfs, path, &st);

	if (rc == 0)
		*dir = S_ISDIR((mode_t)st.nfs_mode);
	return rc;
}

/* mkdir; owner and mode set only when we made it. 1: made, 0: existed. */
static int
make_dir(struct nfs_context *nfs, const char *path, long uid, long gid,
	 long mode, struct err *e)
{
	int rc, dir = 0;

	rc = nfs_mkdir2(nfs, path, 0700);
	if (rc == -EEXIST) {
		rc = is_dir(nfs, path, &dir);
		if (rc < 0)
			return nfs_error(nfs, rc, "stat", path, e);
		if (!dir)
			return err_set(e, ERR_CONFLICT, "'%s' exists on NFS "
				       "and is not a directory", path);
		return 0;
	}
	if (rc < 0)
		return nfs_error(nfs, rc, "create", path, e);
	rc = nfs_chown(nfs, path, (int)uid, (int)gid);
	if (rc == 0)
		rc = nfs_chmod(nfs, path, (int)mode);
	if (rc < 0) {
		nfs_error(nfs, rc, "set owner and mode of", path, e);
		nfs_rmdir(nfs, path);
		return -1;
	}
	return 1;
}

static int
nfs_ensure(void *h, const char *user, long uid, long gid, long mode,
	   const char *shared_dir, long shared_gid, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	char *path = NULL;
	int rc = -1, made;

	if (home_name_ok("user", user, e) < 0)
		return -1;
	if (mode < 0 || mode > 07777)
		return err_set(e, ERR_INVALID, "mode %lo is not a file mode",
			       (unsigned long)mode);
	while (shared_dir && shared_dir[0] == '/')
		shared_dir++;
	if (shared_dir && shared_dir[0] && home_rel_ok(shared_dir, e) < 0)
		return -1;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	path = xasprintf("/%s", user);
	if ((made = make_dir(nfs, path, uid, gid, mode, e)) < 0)
		goto out;
	if (made)
		log_event(LOG_INFO, "home.created", "user=%s root=%s", user,
			  hn->where);
	if (shared_dir && shared_dir[0]) {
		free(path);
		path = xasprintf("/%s", shared_dir);
		if (make_dir(nfs, path, (long)getuid(), shared_gid,
			     SHARED_MODE, e) < 0)
			goto out;
	}
	rc = 0;
out:
	free(path);
	nfs_destroy_context(nfs);
	return rc;
}

static int
nfs_rename_home(void *h, const char *from, const char *to, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	struct nfs_stat_64 st;
	char *src, *dst;
	int rc;

	if (home_name_ok("user", from, e) < 0 ||
	    home_name_ok("user", to, e) < 0)
		return -1;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	src = xasprintf("/%s", from);
	dst = xasprintf("/%s", to);
	if ((rc = nfs_lstat64(nfs, src, &st)) < 0)
		rc = nfs_error(nfs, rc, "rename", src, e);
	else if (nfs_lstat64(nfs, dst, &st) == 0)
		rc = err_set(e, ERR_CONFLICT, "a home named '%s' exists "
			     "already", to);
	else if ((rc = nfs_rename(nfs, src, dst)) < 0)
		rc = nfs_error(nfs, rc, "rename", src, e);
	if (rc == 0)
		log_event(LOG_INFO, "home.renamed", "from=%s to=%s root=%s",
			  from, to, hn->where);
	free(src);
	free(dst);
	nfs_destroy_context(nfs);
	return rc < 0 ? -1 : 0;
}

struct own_walk {
	int uid, gid, dry_run;
	long changed;
};

/* One entry whose owner is known: lchown when it differs. */
static int
own_entry(struct nfs_context *nfs, const char *path, uint32_t uid,
	  uint32_t gid, struct own_walk *w, struct err *e)
{
	int rc;

	if ((int)uid == w->uid && (int)gid == w->gid)
		return 0;
	w->changed++;
	if (w->dry_run)
		return 0;
	rc = nfs_lchown(nfs, path, w->uid, w->gid);
	return rc < 0 && rc != -ENOENT ? nfs_error(nfs, rc, "re-own", path, e)
				       : 0;
}

/* The entries below the directory path (already re-owned itself). */
static int
own_below(struct nfs_context *nfs, const char *path, int depth,
	  struct own_walk *w, struct err *e)
{
	struct nfsdir *dir;
	struct nfsdirent *de;
	char *child;
	int rc;

	if (depth > DEPTH_MAX)
		return err_set(e, ERR_UPSTREAM, "'%s' is nested too deeply",
			       path);
	if ((rc = nfs_opendir(nfs, path, &dir)) < 0)
		return nfs_error(nfs, rc, "list", path, e);
	rc = 0;
	while (rc == 0 && (de = nfs_readdir(nfs, dir)) != NULL) {
		if (!strcmp(de->name, ".") || !strcmp(de->name, ".."))
			continue;
		child = xasprintf("%s/%s", path, de->name);
		rc = own_entry(nfs, child, de->uid, de->gid, w, e);
		if (rc == 0 && de->type == NF3DIR)
			rc = own_below(nfs, child, depth + 1, w, e);
		free(child);
	}
	nfs_closedir(nfs, dir);
	return rc;
}

static int
nfs_chown_tree(void *h, const char *user, long uid, long gid, int dry_run,
	       long *changed, struct err *e)
{
	struct home_nfs *hn = h;
	struct own_walk w = { (int)uid, (int)gid, dry_run, 0 };
	struct nfs_context *nfs;
	struct nfs_stat_64 st;
	char *path;
	int rc;

	*changed = 0;
	if (home_name_ok("user", user, e) < 0)
		return -1;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	path = xasprintf("/%s", user);
	if ((rc = nfs_lstat64(nfs, path, &st)) < 0)
		rc = nfs_error(nfs, rc, "re-own", path, e);
	else if (!S_ISDIR((mode_t)st.nfs_mode))
		rc = err_set(e, ERR_CONFLICT, "'%s' on NFS is not a directory",
			     path);
	else if ((rc = own_entry(nfs, path, (uint32_t)st.nfs_uid,
				 (uint32_t)st.nfs_gid, &w, e)) == 0)
		rc = own_below(nfs, path, 0, &w, e);
	*changed = w.changed;
	free(path);
	nfs_destroy_context(nfs);
	return rc < 0 ? -1 : 0;
}

static int
nfs_fix_shared(void *h, const char *shared_dir, long gid, int dry_run,
	       long *changed, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	struct nfs_stat_64 st;
	char *path;
	int rc;

	*changed = 0;
	while (shared_dir && shared_dir[0] == '/')
		shared_dir++;
	if (shared_dir == NULL || shared_dir[0] == '\0')
		return err_set(e, ERR_NOTFOUND, "no shared directory is "
			       "configured (SHARED_DIR)");
	if (home_rel_ok(shared_dir, e) < 0 || (nfs = mount_new(hn, e)) == NULL)
		return -1;
	path = xasprintf("/%s", shared_dir);
	if ((rc = nfs_lstat64(nfs, path, &st)) < 0)
		rc = nfs_error(nfs, rc, "use shared directory", path, e);
	else if (!S_ISDIR((mode_t)st.nfs_mode))
		rc = err_set(e, ERR_CONFLICT, "'%s' on NFS is not a directory",
			     path);
	else if ((long)st.nfs_gid != gid ||
		 (st.nfs_mode & 07777) != SHARED_MODE)
		*changed = 1;
	if (rc == 0 && *changed && !dry_run &&
	    ((rc = nfs_chown(nfs, path, (int)st.nfs_uid, (int)gid)) < 0 ||
	     (rc = nfs_chmod(nfs, path, SHARED_MODE)) < 0))
		rc = nfs_error(nfs, rc, "set group and mode of", path, e);
	free(path);
	nfs_destroy_context(nfs);
	return rc < 0 ? -1 : 0;
}

static int
rename_free(struct nfs_context *nfs, const char *from, const char *user,
	    const char *date, char **to, struct err *e)
{
	struct nfs_stat_64 st;
	int i, rc;

	for (i = 1; i <= SUFFIX_MAX; i++) {
		free(*to);
		*to = i == 1
		    ? xasprintf("%s/%s-%s", ARCHIVE_DIR, user, date)
		    : xasprintf("%s/%s-%s-%d", ARCHIVE_DIR, user, date, i);
		if (nfs_lstat64(nfs, *to, &st) == 0)
			continue;
		rc = nfs_rename(nfs, from, *to);
		if (rc == 0)
			return 0;
		if (rc != -EEXIST && rc != -ENOTEMPTY)
			return nfs_error(nfs, rc, "archive", from, e);
	}
	return err_set(e, ERR_CONFLICT, "too many archives of '%s' on %s",
		       user, date);
}

static int
nfs_archive(void *h, const char *user, const char *date, char *final,
	    size_t size, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	char *from, *to = NULL;
	int rc, dir = 0;

	if (home_name_ok("user", user, e) < 0 || home_name_ok("date", date, e) < 0)
		return -1;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	from = xasprintf("/%s", user);
	rc = is_dir(nfs, from, &dir);
	if (rc < 0) {
		rc = nfs_error(nfs, rc, "archive", from, e);
		goto out;
	}
	rc = nfs_mkdir2(nfs, ARCHIVE_DIR, 0700);
	if (rc < 0 && rc != -EEXIST) {
		rc = nfs_error(nfs, rc, "create", ARCHIVE_DIR, e);
		goto out;
	}
	rc = rename_free(nfs, from, user, date, &to, e);
	if (rc == 0) {
		log_event(LOG_INFO, "home.archived", "user=%s to=%s", user, to);
		snprintf(final, size, "%s", to + 1);	/* no leading '/' */
	}
out:
	free(from);
	free(to);
	nfs_destroy_context(nfs);
	return rc;
}

/* Deletes path (a directory or not) without following symlinks. */
static int
rm_tree(struct nfs_context *nfs, const char *path, int depth, struct err *e)
{
	struct nfsdir *dir;
	struct nfsdirent *de;
	char *child;
	int rc, isdir = 0;

	if ((rc = is_dir(nfs, path, &isdir)) < 0)
		return nfs_error(nfs, rc, "stat", path, e);
	if (!isdir) {
		rc = nfs_unlink(nfs, path);
		return rc < 0 ? nfs_error(nfs, rc, "remove", path, e) : 0;
	}
	if (depth > DEPTH_MAX)
		return err_set(e, ERR_UPSTREAM, "'%s' is nested too deeply",
			       path);
	if ((rc = nfs_opendir(nfs, path, &dir)) < 0)
		return nfs_error(nfs, rc, "list", path, e);
	rc = 0;
	while (rc == 0 && (de = nfs_readdir(nfs, dir)) != NULL) {
		if (!strcmp(de->name, ".") || !strcmp(de->name, ".."))
			continue;
		child = xasprintf("%s/%s", path, de->name);
		rc = rm_tree(nfs, child, depth + 1, e);
		free(child);
	}
	nfs_closedir(nfs, dir);
	if (rc < 0)
		return -1;
	rc = nfs_rmdir(nfs, path);
	return rc < 0 ? nfs_error(nfs, rc, "remove", path, e) : 0;
}

static int
nfs_remove(void *h, const char *user, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	char *path;
	int rc;

	if (home_name_ok("user", user, e) < 0)
		return -1;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	path = xasprintf("/%s", user);
	rc = rm_tree(nfs, path, 0, e);
	if (rc == 0)
		log_event(LOG_INFO, "home.removed", "user=%s root=%s", user,
			  hn->where);
	free(path);
	nfs_destroy_context(nfs);
	return rc;
}


static int
nfs_list(void *h, char ***names, struct err *e)
{
	struct home_nfs *hn = h;
	struct nfs_context *nfs;
	struct nfsdir *dir;
	struct nfsdirent *de;
	char **v;
	size_t n = 0;
	int rc;

	*names = NULL;
	if ((nfs = mount_new(hn, e)) == NULL)
		return -1;
	if ((rc = nfs_opendir(nfs, "/", &dir)) < 0) {
		nfs_error(nfs, rc, "list", "/", e);
		nfs_destroy_context(nfs);
		return -1;
	}
	v = xcalloc(1, sizeof(*v));
	while ((de = nfs_readdir(nfs, dir)) != NULL) {
		/* READDIRPLUS gives the type; NF3LNK to a dir is skipped. */
		if (de->name[0] == '.' || de->type != NF3DIR)
			continue;
		v = xrealloc(v, (n + 2) * sizeof(*v));
		v[n++] = xstrdup(de->name);
		v[n] = NULL;
	}
	nfs_closedir(nfs, dir);
	nfs_destroy_context(nfs);
	qsort(v, n, sizeof(*v), home_cmp_names);
	*names = v;
	return 0;
}

static void
nfs_free(void *h)
{
	struct home_nfs *hn = h;

	if (hn == NULL)
		return;
	free(hn->url);
	free(hn->where);
	free(hn);
}

static const struct home_ops nfs_ops = {
	.ensure = nfs_ensure,
	.rename = nfs_rename_home,
	.chown_tree = nfs_chown_tree,
	.fix_shared = nfs_fix_shared,
	.archive = nfs_archive,
	.remove = nfs_remove,
	.list = nfs_list,
	.free = nfs_free,
};

int
home_nfs_new(const char *url, const struct home_ops **ops, void **h,
	     struct err *e)
{
	struct nfs_context *nfs;
	struct nfs_url *u;
	struct home_nfs *hn;

	*ops = NULL;
	*h = NULL;
	if (url == NULL || strncmp(url, "nfs://", 6) != 0)
		return err_set(e, ERR_INVALID, "HOME '%s' is not an nfs:// URL",
			       url ? url : "");
	if ((nfs = nfs_init_context()) == NULL)
		return err_set(e, ERR_INTERNAL, "cannot make an NFS context");
	u = nfs_parse_url_dir(nfs, url);
	if (u == NULL) {
		err_set(e, ERR_INVALID, "HOME '%s': %s", url,
			nfs_get_error(nfs));
		nfs_destroy_context(nfs);
		return -1;
	}
	hn = xcalloc(1, sizeof(*hn));
	hn->url = xstrdup(url);
	hn->where = xasprintf("%s:%s", u->server, u->path);
	nfs_destroy_url(u);
	nfs_destroy_context(nfs);
	*ops = &nfs_ops;
	*h = hn;
	return 0;
}
