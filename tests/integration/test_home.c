/*
 * test_home.c - spawner/home_local.c on a temporary directory and
 * spawner/home_nfs.c against nfs-ganesha (NFSv3).
 *
 * Needs SWARMHUB_TEST_NFS_URL (nfs://127.0.0.1/export?nfsport=&mountport=)
 * and SWARMHUB_TEST_NFS_DIR (the exported directory on this machine, to
 * check results with stat); tests/services/nfs.sh start DIR prints both.
 * Names are t<pid>_..., removed at the end, so reruns do not meet. Run as
 * root (chown to 1000:100, and to per-user owners as HOME_UID=ldap does).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../spawner/internal.h"
#include "../lib/t.h"

#define UID	1000
#define GID	100

static char pfx[32];	/* "t<pid>" */

/* ---- helpers --------------------------------------------------------- */
static int
stat_is(const char *path, long uid, long gid, long mode)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		fprintf(stderr, "  stat %s: %s\n", path, strerror(errno));
		return 0;
	}
	if (!S_ISDIR(st.st_mode) || (long)st.st_uid != uid ||
	    (long)st.st_gid != gid || (long)(st.st_mode & 07777) != mode) {
		fprintf(stderr, "  %s: uid %ld gid %ld mode %lo\n", path,
			(long)st.st_uid, (long)st.st_gid,
			(unsigned long)(st.st_mode & 07777));
		return 0;
	}
	return 1;
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void
rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf -- '%s'", path);

	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", path);
	free(cmd);
}

static int
listed(char **v, const char *name)
{
	for (; v && *v; v++)
		if (strcmp(*v, name) == 0)
			return 1;
	return 0;
}

/* A tree with a file, a subdir and symlinks to a file and a dir outside. */
static void
make_tree(const char *dir, const char *outside)
{
	char *p;

	p = xasprintf("%s/notes.txt", dir);
	write_file(p, "hello\n");
	free(p);
	p = xasprintf("%s/sub", dir);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/sub/deep.txt", dir);
	write_file(p, "deep\n");
	free(p);
	p = xasprintf("%s/link-to-dir", dir);
	if (symlink(outside, p) < 0)
		fprintf(stderr, "  symlink: %s\n", strerror(errno));
	free(p);
	p = xasprintf("%s/sub/link-to-file", dir);
	{
		char *target = xasprintf("%s/precious.txt", outside);

		if (symlink(target, p) < 0)
			fprintf(stderr, "  symlink: %s\n", strerror(errno));
		free(target);
	}
	free(p);
}

/* Owner of path (lstat) is uid:gid. */
static int
owned(const char *path, long uid, long gid)
{
	struct stat st;

	return lstat(path, &st) == 0 && (long)st.st_uid == uid &&
	       (long)st.st_gid == gid;
}

/*
 * HOME_UID=ldap on local homes: a home made with the user's own owner, the
 * shared dir keeping the common group; rename with its refusals; chown_tree
 * (dry run, then for real, symlink targets untouched); fix_shared.
 */
static void
test_local_owners(const struct home_ops *ops, void *h, const char *root,
		  const char *outside)
{
	struct err e = { 0 };
	char *p, *q;
	long n = -1;

	if (geteuid() != 0) {
		T_OK(1, "local owners: not root, chown tests left out");
		return;
	}
	T_OK(ops->ensure(h, "erin", 20001, 20002, 0700, "shared", 100,
			 &e) == 0, "local: ensure erin as 20001:20002 (%s)",
	     e.msg);
	p = xasprintf("%s/erin", root);
	T_OK(stat_is(p, 20001, 20002, 0700),
	     "local: erin's home is owned 20001:20002, 0700");
	q = xasprintf("%s/shared", root);
	T_OK(stat_is(q, 0, 100, 02775) || stat_is(q, 0, GID, 02775),
	     "local: the shared dir keeps the common group, 2775");
	free(q);

	/* rename */
	T_OK(ops->rename(h, "erin", "erin2", &e) == 0,
	     "local: rename erin to erin2 (%s)", e.msg);
	q = xasprintf("%s/erin2", root);
	T_OK(!exists(p) && stat_is(q, 20001, 20002, 0700),
	     "local: the home moved with owner and mode");
	ops->ensure(h, "frank", 20003, 100, 0700, NULL, 100, &e);
	T_OK(ops->rename(h, "frank", "erin2", &e) < 0 &&
	     e.code == ERR_CONFLICT, "local: rename onto an existing home is "
	     "ERR_CONFLICT (%s)", e.msg);
	T_OK(exists(q) && owned(q, 20001, 20002),
	     "local: ... and the existing home is untouched");
	T_OK(ops->rename(h, "nobody", "nobody2", &e) < 0 &&
	     e.code == ERR_NOTFOUND, "local: rename of a missing home is "
	     "ERR_NOTFOUND (%s)", e.msg);
	T_OK(ops->rename(h, "erin2", "../x", &e) < 0 &&
	     e.code == ERR_INVALID, "local: rename to '../x' refused");
	free(p);

	/* chown_tree */
	make_tree(q, outside);
	T_OK(ops->chown_tree(h, "erin2", 20005, 100, 1, &n, &e) == 0 &&
	     n == 6, "local: dry run counts 6 entries to change (%ld, %s)", n,
	     e.msg);
	T_OK(owned(q, 20001, 20002), "local: ... and changes nothing");
	T_OK(ops->chown_tree(h, "erin2", 20005, 100, 0, &n, &e) == 0 &&
	     n == 6, "local: chown_tree changes 6 entries (%ld, %s)", n,
	     e.msg);
	p = xasprintf("%s/sub/deep.txt", q);
	T_OK(owned(q, 20005, 100) && owned(p, 20005, 100),
	     "local: the home and what is in it are 20005:100");
	free(p);
	p = xasprintf("%s/link-to-dir", q);
	T_OK(owned(p, 20005, 100) && owned(outside, 0, 0),
	     "local: a symlink is re-owned, its target is not");
	free(p);
	T_OK(ops->chown_tree(h, "erin2", 20005, 100, 0, &n, &e) == 0 && n == 0,
	     "local: a second run changes nothing (%ld)", n);
	T_OK(ops->chown_tree(h, "nobody", 1, 1, 0, &n, &e) < 0 &&
	     e.code == ERR_NOTFOUND, "local: chown_tree of a missing home is "
	     "ERR_NOTFOUND");
	free(q);

	/* fix_shared */
	q = xasprintf("%s/shared", root);
	if (chown(q, 0, 0) < 0 || chmod(q, 0755) < 0)
		fprintf(stderr, "  chown/chmod %s: %s\n", q, strerror(errno));
	T_OK(ops->fix_shared(h, "shared", 100, 1, &n, &e) == 0 && n == 1 &&
	     stat_is(q, 0, 0, 0755), "local: fix_shared dry run (%s)", e.msg);
	T_OK(ops->fix_shared(h, "shared", 100, 0, &n, &e) == 0 && n == 1 &&
	     stat_is(q, 0, 100, 02775), "local: fix_shared gives group 100, "
	     "2775 (%s)", e.msg);
	T_OK(ops->fix_shared(h, "shared", 100, 0, &n, &e) == 0 && n == 0,
	     "local: fix_shared twice changes nothing");
	free(q);
	ops->remove(h, "erin2", &e);
	ops->remove(h, "frank", &e);
}

/* ---- home_local ------------------------------------------------------ */
static void
test_local(void)
{
	char fin[128] = "";
	const struct home_ops *ops;
	void *h = NULL;
	struct err e = { 0 };
	char root[] = "/tmp/swarmhub-home.XXXXXX";
	char outside[] = "/tmp/swarmhub-outside.XXXXXX";
	char *p, *q, **names = NULL;
	long uid = geteuid() == 0 ? UID : (long)getuid();
	long gid = geteuid() == 0 ? GID : (long)getgid();

	T_OK(home_local_new("relative/dir", &ops, &h, &e) < 0 &&
	     e.code == ERR_INVALID, "local: a relative root is refused");
	T_OK(home_local_new("/no/such/dir", &ops, &h, &e) < 0,
	     "local: a missing root is refused (%s)", e.msg);
	if (mkdtemp(root) == NULL || mkdtemp(outside) == NULL) {
		T_OK(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	p = xasprintf("%s/precious.txt", outside);
	write_file(p, "keep me\n");
	free(p);
	T_OK(home_local_new(root, &ops, &h, &e) == 0, "local: new (%s)", e.msg);
	if (h == NULL)
		return;

	/* ensure: created with owner and mode; shared dir 0775 */
	T_OK(ops->ensure(h, "alice", uid, gid, 0700, "shared", gid, &e) == 0,
	     "local: ensure alice (%s)", e.msg);
	p = xasprintf("%s/alice", root);
	T_OK(stat_is(p, uid, gid, 0700), "local: alice is %ld:%ld 0700",
	     uid, gid);
	q = xasprintf("%s/shared", root);
	T_OK(stat_is(q, (long)geteuid(), gid, 02775),
	     "local: shared dir is group %ld mode 2775", gid);
	free(q);

	/* an existing dir is left alone (mode, contents) */
	chmod(p, 0755);
	q = xasprintf("%s/alice/keep.txt", root);
	write_file(q, "x");
	T_OK(ops->ensure(h, "alice", uid, gid, 0700, "shared", gid, &e) == 0,
	     "local: ensure on an existing dir succeeds (%s)", e.msg);
	T_OK(stat_is(p, uid, gid, 0755) && exists(q),
	     "local: existing dir keeps its mode and contents");
	free(q);
	free(p);

	/* refusals */
	T_OK(ops->ensure(h, "../x", uid, gid, 0700, NULL, gid, &e) < 0 &&
	     e.code == ERR_INVALID, "local: ensure '../x' refused");
	T_OK(ops->ensure(h, "a/b", uid, gid, 0700, NULL, gid, &e) < 0 &&
	     e.code == ERR_INVALID, "local: ensure 'a/b' refused");
	T_OK(ops->ensure(h, ".archive", uid, gid, 0700, NULL, gid, &e) < 0 &&
	     e.code == ERR_INVALID, "local: ensure '.archive' refused");
	T_OK(ops->ensure(h, "bob", uid, gid, 0700, "../escape", gid, &e) < 0 &&
	     e.code == ERR_INVALID, "local: shared dir '../escape' refused");
	T_OK(ops->remove(h, "../x", &e) < 0 && e.code == ERR_INVALID,
	     "local: remove '../x' refused");
	T_OK(ops->archive(h, "..", "2026-01-02", fin, sizeof(fin), &e) < 0 &&
	     e.code == ERR_INVALID, "local: archive '..' refused");
	T_OK(ops->remove(h, "nobody", &e) < 0 && e.code == ERR_NOTFOUND,
	     "local: remove of a missing home is ERR_NOTFOUND (%s)", e.msg);

	/* archive: name, collision suffixes, .archive 0700 */
	T_OK(ops->archive(h, "alice", "2026-01-02", fin, sizeof(fin), &e) == 0,
	     "local: archive alice (%s)", e.msg);
	p = xasprintf("%s/.archive/alice-2026-01-02/keep.txt", root);
	T_OK(exists(p), "local: archive lands in .archive/alice-2026-01-02");
	free(p);
	p = xasprintf("%s/.archive", root);
	T_OK(stat_is(p, (long)geteuid(), (long)getegid(), 0700),
	     "local: .archive is 0700");
	free(p);
	p = xasprintf("%s/alice", root);
	T_OK(!exists(p), "local: alice is gone after archive");
	free(p);
	ops->ensure(h, "alice", uid, gid, 0700, NULL, gid, &e);
	T_OK(ops->archive(h, "alice", "2026-01-02", fin, sizeof(fin), &e) == 0,
	     "local: second archive same day (%s)", e.msg);
	ops->ensure(h, "alice", uid, gid, 0700, NULL, gid, &e);
	T_OK(ops->archive(h, "alice", "2026-01-02", fin, sizeof(fin), &e) == 0,
	     "local: third archive same day (%s)", e.msg);
	T_STREQ(fin, ".archive/alice-2026-01-02-3",
		"local: archive reports the path it really used");
	p = xasprintf("%s/.archive/alice-2026-01-02-2", root);
	q = xasprintf("%s/.archive/alice-2026-01-02-3", root);
	T_OK(exists(p) && exists(q), "local: collisions get -2 and -3");
	free(p);
	free(q);
	T_OK(ops->archive(h, "alice", "2026-01-02", fin, sizeof(fin), &e) < 0 &&
	     e.code == ERR_NOTFOUND, "local: archive of a missing home is "
	     "ERR_NOTFOUND (%s)", e.msg);

	/* remove: recursive, symlinks not followed */
	T_OK(ops->ensure(h, "bob", uid, gid, 0700, NULL, gid, &e) == 0,
	     "local: ensure bob (%s)", e.msg);
	p = xasprintf("%s/bob", root);
	make_tree(p, outside);
	T_OK(ops->remove(h, "bob", &e) == 0, "local: remove bob (%s)", e.msg);
	T_OK(!exists(p), "local: bob is gone");
	free(p);
	p = xasprintf("%s/precious.txt", outside);
	T_OK(exists(p), "local: a symlink's target outside root survives");
	free(p);

	/* list: dirs only, sorted, no dot entries */
	ops->ensure(h, "dave", uid, gid, 0700, NULL, gid, &e);
	ops->ensure(h, "carol", uid, gid, 0700, NULL, gid, &e);
	p = xasprintf("%s/plainfile", root);
	write_file(p, "x");
	free(p);
	T_OK(ops->list(h, &names, &e) == 0, "local: list (%s)", e.msg);
	T_OK(names && names[0] && names[1] && names[2] && !names[3] &&
	     !strcmp(names[0], "carol") && !strcmp(names[1], "dave") &&
	     !strcmp(names[2], "shared"),
	     "local: list is carol, dave, shared");
	strv_free(names);

	test_local_owners(ops, h, root, outside);
	ops->free(h);
	rm_rf(root);
	rm_rf(outside);
}

/* ---- home_nfs -------------------------------------------------------- */
struct par {
	const struct home_ops *ops;
	void *h;
	char user[64];
	int rc;
	struct err e;
};

static void *
par_run(void *arg)
{
	struct par *p = arg;

	p->rc = p->ops->ensure(p->h, p->user, UID, GID, 0700, NULL, GID, &p->e);
	if (p->rc == 0)
		p->rc = p->ops->remove(p->h, p->user, &p->e);
	return NULL;
}

static void
test_nfs_parallel(const struct home_ops *ops, void *h, const char *dir)
{
	struct par p[8];
	pthread_t th[8];
	int i, ok = 1;
	int64_t t0 = time_mono_ms();

	for (i = 0; i < 8; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].ops = ops;
		p[i].h = h;
		snprintf(p[i].user, sizeof(p[i].user), "%s_par%d", pfx, i);
		pthread_create(&th[i], NULL, par_run, &p[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		if (p[i].rc != 0) {
			ok = 0;
			fprintf(stderr, "  %s: %s\n", p[i].user, p[i].e.msg);
		}
	}
	T_OK(ok, "nfs: 8 threads ensure+remove at once");
	printf("nfs: 8 parallel ensure+remove: %ld ms\n",
	       (long)(time_mono_ms() - t0));
	(void)dir;
}

/* A missing export: the server answers MNT3ERR_ACCES. */
static void
test_nfs_refused(const char *url)
{
	const struct home_ops *ops;
	const char *p = strstr(url, "/export");
	void *h = NULL;
	struct err e = { 0 };
	char **names = NULL;
	char *bad;

	if (p == NULL)
		return;
	bad = xasprintf("%.*s/no-such-export%s", (int)(p - url), url, p + 7);
	T_OK(home_nfs_new(bad, &ops, &h, &e) == 0, "nfs: new %s", bad);
	T_OK(h && ops->list(h, &names, &e) < 0 && e.code == ERR_UPSTREAM &&
	     strstr(e.msg, "refused the mount"),
	     "nfs: a missing export is ERR_UPSTREAM 'refused' (%s)", e.msg);
	if (h)
		ops->free(h);
	free(bad);
}

/* rename, chown_tree and fix_shared over NFS, checked on disk. */
static void
test_nfs_owners(const struct home_ops *ops, void *h, const char *dir,
		const char *shared)
{
	struct err e = { 0 };
	char a[64], b[64], c[64], *p, *q, *r;
	long n = -1;

	snprintf(a, sizeof(a), "%s_gina", pfx);
	snprintf(b, sizeof(b), "%s_gina2", pfx);
	snprintf(c, sizeof(c), "%s_hank", pfx);
	T_OK(ops->ensure(h, a, 20011, 20012, 0700, NULL, GID, &e) == 0,
	     "nfs: ensure gina as 20011:20012 (%s)", e.msg);
	p = xasprintf("%s/%s", dir, a);
	q = xasprintf("%s/%s", dir, b);
	T_OK(stat_is(p, 20011, 20012, 0700), "nfs: gina's own owner on disk");
	T_OK(ops->rename(h, a, b, &e) == 0, "nfs: rename (%s)", e.msg);
	T_OK(!exists(p) && stat_is(q, 20011, 20012, 0700),
	     "nfs: the home moved with owner and mode");
	ops->ensure(h, c, 20013, GID, 0700, NULL, GID, &e);
	T_OK(ops->rename(h, c, b, &e) < 0 && e.code == ERR_CONFLICT,
	     "nfs: rename onto an existing home is ERR_CONFLICT (%s)", e.msg);
	T_OK(ops->rename(h, a, c, &e) < 0 && e.code == ERR_NOTFOUND,
	     "nfs: rename of a missing home is ERR_NOTFOUND (%s)", e.msg);
	r = xasprintf("%s/sub", q);
	mkdir(r, 0755);
	free(r);
	r = xasprintf("%s/sub/f.txt", q);
	write_file(r, "x\n");
	T_OK(ops->chown_tree(h, b, 20015, GID, 1, &n, &e) == 0 && n == 3 &&
	     owned(r, 0, 0), "nfs: chown_tree dry run counts 3 (%ld, %s)", n,
	     e.msg);
	T_OK(ops->chown_tree(h, b, 20015, GID, 0, &n, &e) == 0 && n == 3 &&
	     owned(q, 20015, GID) && owned(r, 20015, GID),
	     "nfs: chown_tree re-owns the tree (%ld, %s)", n, e.msg);
	free(r);
	r = xasprintf("%s/%s", dir, shared);
	/* through NFS both times: ganesha caches what it last saw */
	T_OK(ops->fix_shared(h, shared, 0, 0, &n, &e) == 0 && n == 1 &&
	     stat_is(r, 0, 0, 02775), "nfs: fix_shared to group 0 (%ld, %s)",
	     n, e.msg);
	T_OK(ops->fix_shared(h, shared, GID, 0, &n, &e) == 0 && n == 1 &&
	     stat_is(r, 0, GID, 02775), "nfs: fix_shared (%ld, %s)", n, e.msg);
	free(r);
	ops->remove(h, b, &e);
	ops->remove(h, c, &e);
	free(p);
	free(q);
}

static void
test_nfs(void)
{
	char fin[128] = "";
	const char *url = t_need_env("SWARMHUB_TEST_NFS_URL", "nfs",
				     "tests/services/nfs.sh start DIR");
	const char *dir = t_need_env("SWARMHUB_TEST_NFS_DIR", "nfs",
				     "tests/services/nfs.sh start DIR");
	const struct home_ops *ops;
	void *h = NULL;
	struct err e = { 0 };
	char alice[64], bob[64], shared[64];
	char outside[] = "/tmp/swarmhub-o.XXXXXX";
	char *p, *q, **names = NULL;
	struct stat st1, st2;
	int64_t t0;

	snprintf(alice, sizeof(alice), "%s_alice", pfx);
	snprintf(bob, sizeof(bob), "%s_bob", pfx);
	snprintf(shared, sizeof(shared), "%s_shared", pfx);
	T_OK(home_nfs_new("http://x/y", &ops, &h, &e) < 0 &&
	     e.code == ERR_INVALID, "nfs: a non-nfs URL is refused");
	T_OK(home_nfs_new(url, &ops, &h, &e) == 0, "nfs: new (%s)", e.msg);
	if (h == NULL)
		return;

	t0 = time_mono_ms();
	T_OK(ops->ensure(h, alice, UID, GID, 0700, shared, GID, &e) == 0,
	     "nfs: ensure alice (%s)", e.msg);
	printf("nfs: ensure (mount + mkdir + chown + chmod + shared): "
	       "%ld ms\n", (long)(time_mono_ms() - t0));
	p = xasprintf("%s/%s", dir, alice);
	T_OK(stat_is(p, UID, GID, 0700), "nfs: alice is 1000:100 0700 on disk");
	q = xasprintf("%s/%s", dir, shared);
	T_OK(stat_is(q, 0, GID, 02775), "nfs: shared dir is root:100 2775");
	free(q);

	/* second ensure: a no-op */
	chmod(p, 0750);
	lstat(p, &st1);
	t0 = time_mono_ms();
	T_OK(ops->ensure(h, alice, UID, GID, 0700, shared, GID, &e) == 0,
	     "nfs: second ensure (%s)", e.msg);
	printf("nfs: ensure of an existing home: %ld ms\n",
	       (long)(time_mono_ms() - t0));
	lstat(p, &st2);
	T_OK(stat_is(p, UID, GID, 0750) && st1.st_ino == st2.st_ino,
	     "nfs: second ensure leaves the dir as it was");
	T_OK(ops->ensure(h, "../x", UID, GID, 0700, NULL, GID, &e) < 0 &&
	     e.code == ERR_INVALID, "nfs: '../x' refused");

	/* archive twice the same day */
	T_OK(ops->archive(h, alice, "2026-01-02", fin, sizeof(fin), &e) == 0,
	     "nfs: archive alice (%s)", e.msg);
	T_OK(!exists(p), "nfs: alice is gone after archive");
	ops->ensure(h, alice, UID, GID, 0700, NULL, GID, &e);
	T_OK(ops->archive(h, alice, "2026-01-02", fin, sizeof(fin), &e) == 0,
	     "nfs: second archive (%s)", e.msg);
	T_OK(strstr(fin, "-2026-01-02-2") != NULL && strncmp(fin, ".archive/",
	     9) == 0, "nfs: archive reports the path it really used (%s)",
	     fin);
	free(p);
	p = xasprintf("%s/.archive/%s-2026-01-02", dir, alice);
	q = xasprintf("%s/.archive/%s-2026-01-02-2", dir, alice);
	T_OK(stat_is(p, UID, GID, 0750) && stat_is(q, UID, GID, 0700),
	     "nfs: archives are alice-DATE and alice-DATE-2");
	rm_rf(p);
	rm_rf(q);
	free(p);
	free(q);

	/* remove: recursive, symlink target outside survives */
	if (mkdtemp(outside) == NULL) {
		T_OK(0, "mkdtemp: %s", strerror(errno));
		goto out;
	}
	p = xasprintf("%s/precious.txt", outside);
	write_file(p, "keep me\n");
	free(p);
	T_OK(ops->ensure(h, bob, UID, GID, 0700, NULL, GID, &e) == 0,
	     "nfs: ensure bob (%s)", e.msg);
	p = xasprintf("%s/%s", dir, bob);
	make_tree(p, outside);
	T_OK(ops->list(h, &names, &e) == 0 && listed(names, bob) &&
	     listed(names, shared) && !listed(names, ".archive") &&
	     !listed(names, alice), "nfs: list has bob and shared, no "
	     ".archive (%s)", e.msg);
	strv_free(names);
	t0 = time_mono_ms();
	T_OK(ops->remove(h, bob, &e) == 0, "nfs: remove bob (%s)", e.msg);
	printf("nfs: remove of a small tree: %ld ms\n",
	       (long)(time_mono_ms() - t0));
	T_OK(!exists(p), "nfs: bob is gone on disk");
	free(p);
	p = xasprintf("%s/precious.txt", outside);
	T_OK(exists(p), "nfs: symlink target outside the export survives");
	free(p);
	T_OK(ops->remove(h, bob, &e) < 0 && e.code == ERR_NOTFOUND,
	     "nfs: remove of a missing home is ERR_NOTFOUND (%s)", e.msg);
	rm_rf(outside);

	test_nfs_parallel(ops, h, dir);
	test_nfs_owners(ops, h, dir, shared);
out:
	p = xasprintf("%s/%s", dir, shared);
	rm_rf(p);
	free(p);
	p = xasprintf("%s/.archive", dir);
	rmdir(p);	/* only when empty: other runs may share the export */
	free(p);
	ops->free(h);

	/* unreachable: nothing listens on port 1 */
	T_OK(home_nfs_new("nfs://127.0.0.1/export?nfsport=1&mountport=1",
			  &ops, &h, &e) == 0, "nfs: new with a dead port");
	t0 = time_mono_ms();
	T_OK(ops->ensure(h, alice, UID, GID, 0700, NULL, GID, &e) < 0 &&
	     e.code == ERR_UNAVAILABLE && strstr(e.msg, "unreachable"),
	     "nfs: unreachable server is ERR_UNAVAILABLE (%s)", e.msg);
	T_OK(time_mono_ms() - t0 < 3000, "nfs: ... and fails within 3 s "
	     "(%ld ms)", (long)(time_mono_ms() - t0));
	ops->free(h);
	test_nfs_refused(url);
}

int
main(void)
{
	snprintf(pfx, sizeof(pfx), "t%ld", (long)getpid());
	log_set_level(LOG_WARN);
	test_local();
	test_nfs();
	return t_done();
}
