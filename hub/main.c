/*
 * main.c - the swarmhub daemon: settings, database, state, HTTP, the loop
 * that flushes activity and expires sessions, and the one that keeps
 * servers in line with Docker.
 *
 * Start: wait for PostgreSQL (DB_WAIT), apply migrations, load users,
 * tokens and sessions into memory, then listen. Stop (SIGTERM/SIGINT):
 * stop listening, flush activity, exit 0.
 */
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../edge/edge.h"
#include "web.h"

static struct hub hub;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: swarmhub [--help] [--version]\n"
"       swarmhub set-password NAME [--admin]   (local auth; password on stdin)\n"
"       swarmhub agent [--help]   (the usage agent of one node)\n"
"\n"
"Runs the swarmhub notebook hub. Settings come from SWARMHUB_* environment\n"
"variables (each secret also as SWARMHUB_<NAME>_FILE); docs/settings.md\n"
"lists them all. The essential ones:\n"
"  SWARMHUB_LISTEN   address to listen on (default 0.0.0.0:8000)\n"
"  SWARMHUB_DB       PostgreSQL URI (default postgresql:///swarmhub)\n"
"  SWARMHUB_SECRET   at least 32 random characters (openssl rand -hex 32)\n"
"  SWARMHUB_AUTH     local (default) or ldap\n"
"\n"
"set-password creates the local user NAME if needed and sets the password\n"
"read from the first line of standard input; --admin also grants admin.\n"
"Exit status: 0 on a clean stop, 1 on a startup or runtime failure,\n"
"2 on bad arguments.\n");
}

static int
wait_for_db(struct hub *h, struct err *e)
{
	int64_t deadline = time_mono_ms() + h->cfg.db_wait_s * 1000;
	int version, tries = 0;

	for (;;) {
		if (store_migrate(h->store, &version, e) == 0) {
			log_event(LOG_INFO, "db.ready", "schema_version=%d",
				  version);
			return 0;
		}
		if (e->code != ERR_UNAVAILABLE || time_mono_ms() >= deadline)
			return -1;
		if (tries++ % 5 == 0)
			log_event(LOG_WARN, "db.waiting", "err=%s wait_s=%ld",
				  e->msg, h->cfg.db_wait_s);
		sleep(1);
	}
}

/* ADMIN_USERS exist and are admins (as JupyterHub does at start). */
static int
ensure_admins(struct hub *h, struct err *e)
{
	for (char **p = h->cfg.admin_users; *p; p++) {
		struct user *u;
		int exists, admin;

		pthread_rwlock_rdlock(&h->state.lock);
		u = state_user(&h->state, *p);
		exists = u != NULL;
		admin = u && u->admin;
		pthread_rwlock_unlock(&h->state.lock);
		if (admin)
			continue;
		if (exists ? users_set_admin(h, *p, 1, NULL, e) < 0 :
		    users_create(h, (const char *const *)p, 1, 1, NULL, e) < 0)
			return -1;
		log_event(LOG_INFO, "user.admin_granted", "user=%s "
			  "reason=SWARMHUB_ADMIN_USERS", *p);
	}
	return 0;
}

static void
say_how_to_make_admin(struct hub *h)
{
	size_t admins = 0;

	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers; i++)
		admins += h->state.user_list[i]->admin != 0;
	pthread_rwlock_unlock(&h->state.lock);
	if (admins)
		return;
	if (h->ldap)
		fprintf(stderr, "swarmhub: no admin user yet. Name one with "
			"SWARMHUB_ADMIN_USERS=<name> or give a directory group "
			"admin rights with SWARMHUB_LDAP_ADMIN_GROUPS=<group>, "
			"then restart.\n");
	else
		fprintf(stderr, "swarmhub: no admin user yet. Create one with:\n"
			"  echo 'a-good-password' | swarmhub set-password "
			"<name> --admin\n(with the same SWARMHUB_DB), then sign "
			"in at /hub/login.\n");
}

/* Gives freed heap pages back: glibc keeps what was freed below the top
 * of the heap (the rows read at start-up, a large answer) in the RSS;
 * 1.1 MB with 10,000 users just after start. */
static void
release_free_heap(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* Activity and session expiry, every 5 s on a thread of their own: the
 * Docker work below takes seconds with many servers (a reconcile asks
 * about each), and what has not been flushed is what a crash loses. */
static void *
flusher(void *arg)
{
	struct hub *h = arg;
	int64_t last_expire = 0;

	while (!h->stopping) {
		struct err e = { 0 };
		long n;
		int64_t now = time_now_ms();

		for (int i = 0; i < 50 && !h->stopping; i++)
			usleep(100 * 1000);
		if (state_flush(&h->state, h->store, &e) < 0)
			log_event(LOG_WARN, "activity.flush_failed", "err=%s",
				  e.msg);
		if (now - last_expire > 600 * 1000 &&
		    store_sessions_expire(h->store, now, &n, &e) == 0) {
			last_expire = now;
			release_free_heap();
			if (n)
				log_event(LOG_INFO, "session.expired",
					  "count=%ld", n);
		}
	}
	return NULL;
}

/* Progress keep-alives, the sweep (2.5 s) and the reconcile with Docker. */
static void *
background(void *arg)
{
	struct hub *h = arg;
	int64_t last_reconcile = time_mono_ms();

	while (!h->stopping) {
		for (int i = 0; i < 50 && !h->stopping; i++) {
			usleep(100 * 1000);
			if (i % 10 == 0)
				events_keepalive();
			if (i % 25 == 24)
				servers_sweep(h);
		}
		if (time_mono_ms() - last_reconcile >=
		    h->cfg.reconcile_every_s * 1000) {
			servers_reconcile(h);
			last_reconcile = time_mono_ms();
		}
	}
	return NULL;
}

/* The hub's own cookies: users' servers may not set them. ("_xsrf" is
 * Jupyter's too, under its own path; the hub's is bound to the session.) */
static const char *const hub_cookies[] = { SESSION_COOKIE, "swarmhub-login",
	NULL };

static int
start_edge(struct hub *h, struct err *e)
{
	struct edge_cfg c = {
		.listen = h->cfg.listen,
		.threads = (int)h->cfg.edge_threads,
		.idle_timeout_ms = h->cfg.client_idle_timeout_s * 1000,
		.websocket_idle_timeout_ms =
		    h->cfg.websocket_idle_timeout_s * 1000,
		.header_timeout_ms = 30000,
		.max_header_bytes = 16384,
		.max_connections = h->cfg.max_connections,
		.max_connections_per_address =
		    h->cfg.max_connections_per_address,
		.trusted_proxies = (const char *const *)h->cfg.trusted_proxies,
		.protected_cookies = hub_cookies,
	};
	struct edge_hooks hooks = {
		proxy_route, proxy_activity, proxy_upstream_failed,
		pages_edge_error, h
	};

	h->edge = edge_start(&c, &hooks, e);
	if (h->edge == NULL)
		return err_set(e, e->code, "SWARMHUB_LISTEN=%s: %s",
			       h->cfg.listen, e->msg);
	return 0;
}

/* The start's duration and the servers it adopted, for /hub/metrics. */
static void
started_metric(struct hub *h, int64_t ms)
{
	struct metrics_gauges g = { 0 };

	state_gauges(&h->state, &g);
	metrics_started(h->metrics, ms, g.running);
}

static int
start(struct hub *h, struct err *e)
{
	static const struct http_app app = { router_admit, router_dispatch };
	int64_t t0 = time_mono_ms();

	if (state_init(&h->state) < 0)
		return err_set(e, ERR_INTERNAL, "cannot create locks");
	pthread_mutex_init(&h->health_lock, NULL);
	h->store = store_new(h->cfg.db, (int)h->cfg.db_pool);
	h->rl = ratelimit_new(h->cfg.login_max_failures,
			      h->cfg.login_window_s);
	h->metrics = metrics_new();
	progress_set_wake(events_wake);
	h->error_page = pages_error_html;
	if (h->cfg.admin_token)
		crypto_sha256_hex(h->cfg.admin_token,
				  strlen(h->cfg.admin_token),
				  h->admin_token_hash);
	if (h->cfg.auth_ldap && auth_ldap_new(&h->cfg.ldap, &h->ldap, e) < 0)
		return -1;
	if (wait_for_db(h, e) < 0 || state_load(&h->state, h->store, e) < 0 ||
	    ensure_admins(h, e) < 0)
		return -1;
	if (h->cfg.spawn_enabled &&
	    spawner_new(&h->cfg.spawn, &h->spawner, e) < 0)
		return -1;
	if (servers_load(h, e) < 0)
		return -1;
	if (hub_health_start(h, e) < 0 || sessions_start(h, e) < 0 ||
	    http_start(h, &app, e) < 0 || start_edge(h, e) < 0 ||
	    cull_start(h, e) < 0 || usage_start(h, e) < 0)
		return -1;
	h->started_ms = time_now_ms();
	started_metric(h, time_mono_ms() - t0);
	release_free_heap();
	log_event(LOG_INFO, "hub.listening", "listen=%s users=%zu auth=%s "
		  "spawner=%s ms=%ld version=%s", h->cfg.listen,
		  h->state.nusers, h->ldap ? "ldap" : "local",
		  h->spawner ? "swarm" : "off", (long)(time_mono_ms() - t0),
		  HUB_VERSION);
	say_how_to_make_admin(h);
	return 0;
}

static void
shutdown_hub(struct hub *h)
{
	struct err e = { 0 };

	cull_stop(h);
	usage_stop(h);
	edge_stop(h->edge);	/* no new requests */
	h->edge = NULL;
	servers_cancel_all(h);
	/* let stops finish and cancelled starts clean up, within the 10 s
	 * Docker gives a stopping container; libmicrohttpd stays up meanwhile
	 * since their progress events resume its suspended listeners */
	for (int i = 0; i < 80 && __atomic_load_n(&h->active_actions,
						   __ATOMIC_RELAXED) > 0; i++)
		usleep(100 * 1000);
	if (__atomic_load_n(&h->active_actions, __ATOMIC_RELAXED) > 0) {
		log_event(LOG_WARN, "hub.stop_with_actions", "count=%d",
			  h->active_actions);
		return;		/* workers still use the state: leave it */
	}
	http_stop(h);
	sessions_stop();
	spawner_free(h->spawner);
	h->spawner = NULL;
	if (h->store && state_flush(&h->state, h->store, &e) < 0)
		log_event(LOG_WARN, "activity.flush_failed", "err=%s", e.msg);
	auth_ldap_free(h->ldap);
	ratelimit_free(h->rl);
	metrics_free(h->metrics);
	state_release(&h->state);
	store_free(h->store);
	hub_cfg_release(&h->cfg);
}

/* swarmhub set-password NAME [--admin]: bootstrap without a running hub. */
static int
set_password(struct hub *h, const char *name_in, int admin, struct err *e)
{
	char name[USER_NAME_MAX + 1], line[1100];
	char *hash;
	int64_t created;
	const char *names[1] = { name };
	int rc;

	if (h->cfg.auth_ldap)
		return err_set(e, ERR_INVALID, "SWARMHUB_AUTH=ldap: passwords "
		    "are kept by the directory");
	if (user_name_normalize(name_in, name, e) < 0)
		return -1;
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "password for %s: ", name);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return err_set(e, ERR_INVALID, "no password on standard input");
	line[strcspn(line, "\r\n")] = '\0';
	hash = auth_local_hash(line, e);
	memset(line, 0, sizeof(line));
	if (hash == NULL)
		return -1;
	h->store = store_new(h->cfg.db, 1);
	rc = wait_for_db(h, e);
	if (rc == 0 && store_users_create(h->store, names, 1, admin, &created,
					  e) < 0 && e->code == ERR_CONFLICT)
		rc = admin ? store_user_update(h->store, name, NULL, 1, e) : 0;
	else if (rc == 0 && e->code != ERR_OK)
		rc = -1;
	if (rc == 0)
		rc = store_user_set_password(h->store, name, hash, e);
	if (rc == 0)
		store_audit(h->store, "swarmhub set-password", "user.password",
			    name, NULL, "", NULL);
	free(hash);
	store_free(h->store);
	h->store = NULL;
	if (rc == 0)
		fprintf(stderr, "swarmhub: password set for %s%s\n", name,
			admin ? " (admin)" : "");
	return rc;
}

static int
run(struct hub *h)
{
	sigset_t set;
	pthread_t bg, fl;
	struct err e = { 0 };
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (start(h, &e) < 0) {
		fprintf(stderr, "swarmhub: %s\n", e.msg);
		log_event(LOG_ERROR, "hub.start_failed", "err=%s", e.msg);
		shutdown_hub(h);
		return 1;
	}
	pthread_create(&bg, NULL, background, h);
	pthread_create(&fl, NULL, flusher, h);
	while (sig != SIGINT && sig != SIGTERM) {
		if (sigwait(&set, &sig) != 0)
			break;
		if (sig == SIGHUP && h->spawner) {
			struct err re = { 0 };

			if (spawner_reload_profiles(h->spawner, &re) < 0)
				log_event(LOG_ERROR, "profiles.reload_failed",
					  "err=%s", re.msg);
			else
				log_event(LOG_INFO, "profiles.reloaded", NULL);
			cull_reload(h);
		}
	}
	log_event(LOG_INFO, "hub.stopping", "signal=%d", sig);
	h->stopping = 1;
	pthread_join(bg, NULL);
	pthread_join(fl, NULL);
	hub_health_stop(h);
	shutdown_hub(h);
	log_event(LOG_INFO, "hub.stopped", NULL);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "admin", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 }
	};
	struct err e = { 0 };
	int c, admin = 0;

	if (argc > 1 && strcmp(argv[1], "agent") == 0)
		return agent_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case 'V': printf("swarmhub %s\n", HUB_VERSION); return 0;
		case 'a': admin = 1; break;
		default: usage(stderr); return 2;
		}
	}
	if (hub_cfg_load(&hub.cfg, &e) < 0) {
		fprintf(stderr, "swarmhub: %s\n", e.msg);
		return 1;
	}
	log_set_level((enum log_level)hub.cfg.log_level);
	if (optind < argc && strcmp(argv[optind], "set-password") == 0 &&
	    optind + 2 == argc) {
		c = set_password(&hub, argv[optind + 1], admin, &e);
		if (c < 0)
			fprintf(stderr, "swarmhub: %s\n", e.msg);
		hub_cfg_release(&hub.cfg);
		return c < 0 ? 1 : 0;
	}
	if (optind < argc || admin) {
		fprintf(stderr, "swarmhub: unexpected argument '%s'\n",
			optind < argc ? argv[optind] : "--admin");
		usage(stderr);
		return 2;
	}
	return run(&hub);
}
