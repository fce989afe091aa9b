/*
 * test_spawner_cfg.c - settings that could never start a server are refused
 * by spawner_new at hub start, with the setting and the fix in the message,
 * before Docker is asked anything (the Docker host here does not exist).
 * HOME empty is allowed: servers without a home.
 */
#include "../../spawner/spawner.h"
#include "../lib/t.h"

static void
base(struct spawner_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->docker_host = "unix:///nonexistent/swarmhub-test.sock";
	c->network = "hubnet";
	c->profiles_path = "/nonexistent/profiles.json";
	c->home = "";
	c->home_mount = "bind";
	c->home_target = "/home/jovyan/work";
	c->start_timeout_s = 600;
	c->http_timeout_s = 600;
}

/* spawner_new fails with ERR_INVALID and a message containing want. */
static void
refused(const struct spawner_cfg *c, const char *want, const char *why)
{
	struct spawner *sp = NULL;
	struct err e = { 0 };
	int rc = spawner_new(c, &sp, &e);

	T_OK(rc < 0 && sp == NULL && e.code == ERR_INVALID &&
	     strstr(e.msg, want) != NULL, "%s refused at start: got '%s'", why,
	     e.msg);
	spawner_free(sp);
}

/* The settings pass: spawner_new gets as far as Docker (which is absent). */
static void
accepted(const struct spawner_cfg *c, const char *why)
{
	struct spawner *sp = NULL;
	struct err e = { 0 };
	int rc = spawner_new(c, &sp, &e);

	T_OK(rc < 0 && e.code == ERR_UNAVAILABLE, "%s passes the settings "
	     "check (then Docker is unreachable): got '%s'", why, e.msg);
	spawner_free(sp);
}

int
main(void)
{
	struct spawner_cfg c;

	base(&c);
	accepted(&c, "HOME empty (servers without a home)");
	c.home = "/srv/homes";
	accepted(&c, "a local HOME");
	c.home = "nfs://nfs/export";
	c.home_bind_root = "/mnt/homes";
	accepted(&c, "nfs:// HOME bind-mounted at HOME_BIND_ROOT");
	c.home_bind_root = NULL;
	c.home_mount = "volume";
	accepted(&c, "nfs:// HOME as NFS volumes");

	base(&c);
	c.home_mount = "nfs";
	refused(&c, "SWARMHUB_HOME_MOUNT: 'nfs' is not bind or volume",
		"HOME_MOUNT=nfs");
	base(&c);
	c.home_mount = "volume";
	refused(&c, "SWARMHUB_HOME_MOUNT=volume mounts NFS volumes and needs "
		"SWARMHUB_HOME=nfs://server/export (got '')",
		"HOME_MOUNT=volume with HOME empty");
	c.home = "/srv/homes";
	refused(&c, "(got '/srv/homes'): set it, or SWARMHUB_HOME_MOUNT=bind",
		"HOME_MOUNT=volume with a local HOME");
	base(&c);
	c.home = "nfs://nfs/export";
	refused(&c, "SWARMHUB_HOME_MOUNT=bind needs SWARMHUB_HOME_BIND_ROOT",
		"nfs:// HOME, bind, no HOME_BIND_ROOT");
	base(&c);
	c.home_bind_root = "homes";
	refused(&c, "SWARMHUB_HOME_BIND_ROOT: 'homes' is not an absolute path",
		"relative HOME_BIND_ROOT");
	base(&c);
	c.home_target = "work";
	refused(&c, "SWARMHUB_HOME_TARGET: 'work' is not an absolute path",
		"relative HOME_TARGET");
	base(&c);
	c.shared_dir = "shared";
	refused(&c, "SWARMHUB_SHARED_DIR needs homes", "SHARED_DIR, no HOME");
	base(&c);
	c.start_timeout_s = 0;
	refused(&c, "SWARMHUB_START_TIMEOUT must be at least 1 second",
		"START_TIMEOUT=0");
	base(&c);
	c.http_timeout_s = 0;
	refused(&c, "SWARMHUB_HTTP_TIMEOUT must be at least 1 second",
		"HTTP_TIMEOUT=0");
	return t_done();
}
