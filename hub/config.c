/*
 * config.c - every SWARMHUB_* setting the hub core reads, with defaults.
 * docs/settings.md documents each one (make check-settings checks it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

static int
str_setting(const char *name, const char *def, const char **out,
	    struct err *e)
{
	struct err le = { ERR_OK, "" };
	const char *v = cfg_get(name, def, &le);

	if (le.code != ERR_OK) {
		if (e)
			*e = le;
		return -1;
	}
	if (v != NULL && *v == '\0')
		v = def;
	*out = v;
	return 0;
}

static int
load_ldap(struct ldap_cfg *l, struct err *e)
{
	int rc = 0;
	long t;

	rc |= str_setting("LDAP_URI", NULL, &l->uri, e);
	rc |= str_setting("LDAP_BIND_DN_TEMPLATE", NULL,
			  &l->bind_dn_templates, e);
	rc |= cfg_bool("LDAP_STARTTLS", 0, &l->starttls, e);
	rc |= str_setting("LDAP_CA_FILE", NULL, &l->ca_file, e);
	rc |= str_setting("LDAP_SEARCH_BASE", NULL, &l->search_base, e);
	rc |= str_setting("LDAP_SEARCH_FILTER", "(uid={username})",
			  &l->search_filter, e);
	rc |= str_setting("LDAP_SEARCH_USER", NULL, &l->search_user, e);
	rc |= str_setting("LDAP_SEARCH_PASSWORD", NULL,
			  &l->search_password, e);
	rc |= str_setting("LDAP_GROUP_BASE", NULL, &l->group_base, e);
	rc |= str_setting("LDAP_ALLOWED_GROUPS", NULL, &l->allowed_groups, e);
	rc |= str_setting("LDAP_ADMIN_GROUPS", NULL, &l->admin_groups, e);
	rc |= cfg_long("LDAP_TIMEOUT", 5, 1, 120, &t, e);
	rc |= str_setting("LDAP_UID_ATTRIBUTE", "uidNumber", &l->uid_attribute,
			  e);
	rc |= str_setting("LDAP_GID_ATTRIBUTE", "gidNumber", &l->gid_attribute,
			  e);
	rc |= cfg_long("LDAP_NESTED_GROUPS_DEPTH", 0, 0, AUTH_LDAP_NESTED_MAX,
		       &l->nested_depth, e);
	rc |= str_setting("LDAP_USERNAME_ATTRIBUTE", NULL,
			  &l->username_attribute, e);
	l->timeout_s = t;
	if (rc)
		return -1;
	if (l->uri == NULL)
		return err_set(e, ERR_INVALID, "SWARMHUB_AUTH=ldap needs "
		    "SWARMHUB_LDAP_URI (for example ldap://ldap.example.com)");
	if (l->bind_dn_templates == NULL && l->search_base == NULL)
		return err_set(e, ERR_INVALID, "SWARMHUB_AUTH=ldap needs "
		    "SWARMHUB_LDAP_BIND_DN_TEMPLATE or SWARMHUB_LDAP_SEARCH_BASE");
	return 0;
}

static int
load_auth(struct hub_cfg *c, struct err *e)
{
	const char *auth, *admins, *proxies, *metrics;

	if (str_setting("AUTH", "local", &auth, e) < 0 ||
	    str_setting("METRICS_AUTH", "admin", &metrics, e) < 0 ||
	    str_setting("ADMIN_USERS", "", &admins, e) < 0 ||
	    str_setting("ADMIN_TOKEN", NULL, &c->admin_token, e) < 0 ||
	    str_setting("TRUSTED_PROXIES", "", &proxies, e) < 0)
		return -1;
	if (strcmp(auth, "ldap") == 0)
		c->auth_ldap = 1;
	else if (strcmp(auth, "local") != 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_AUTH: '%.40s' is not "
		    "an authenticator (use local or ldap)", auth);
	if (strcmp(metrics, "none") == 0)
		c->metrics_open = 1;
	else if (strcmp(metrics, "admin") != 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_METRICS_AUTH: '%.40s' "
		    "is not admin or none", metrics);
	if (c->admin_token && strlen(c->admin_token) < 32)
		return err_set(e, ERR_INVALID, "SWARMHUB_ADMIN_TOKEN is shorter "
		    "than 32 characters (make one with: openssl rand -hex 32)");
	c->admin_users = str_split(admins, ',', NULL);
	for (char **p = c->admin_users; *p; p++) {
		char norm[USER_NAME_MAX + 1];

		if (user_name_normalize(*p, norm, e) < 0)
			return err_set(e, ERR_INVALID, "SWARMHUB_ADMIN_USERS: "
			    "'%.64s': %s", *p, e->msg);
		strcpy(*p, norm);
	}
	c->trusted_proxies = str_split(proxies, ',', NULL);
	return c->auth_ldap ? load_ldap(&c->ldap, e) : 0;
}

static int
load_numbers(struct hub_cfg *c, struct err *e)
{
	return cfg_duration("AUTH_RECHECK", 900, &c->auth_recheck_s, e) |
	       cfg_duration("SESSION_IDLE_TIMEOUT", 3 * 86400,
			    &c->session_idle_s, e) |
	       cfg_duration("SESSION_MAX_AGE", 14 * 86400,
			    &c->session_max_age_s, e) |
	       cfg_long("HTTP_THREADS", 4, 1, 256, &c->http_threads, e) |
	       cfg_long("MAX_BODY_BYTES", 1 << 20, 1024, 1L << 30,
			&c->max_body_bytes, e) |
	       cfg_long("DB_POOL", 4, 1, 64, &c->db_pool, e) |
	       cfg_duration("DB_WAIT", 60, &c->db_wait_s, e) |
	       cfg_long("LOGIN_MAX_FAILURES", 5, 1, 1000,
			&c->login_max_failures, e) |
	       cfg_duration("LOGIN_WINDOW", 300, &c->login_window_s, e);
}

/* HOME_UID / HOME_GID: a number, or "ldap" (*ldap set, *out = def). */
static int
id_setting(const char *name, long def, long *out, int *ldap, struct err *e)
{
	const char *v;
	char what[64];

	if (str_setting(name, "", &v, e) < 0)
		return -1;
	*ldap = strcmp(v, "ldap") == 0;
	*out = def;
	if (*v == '\0' || *ldap)
		return 0;
	snprintf(what, sizeof(what), "SWARMHUB_%s (a number or ldap)", name);
	return str_to_long(v, 0, 1L << 31, out, what, e);
}

/* LOCAL_UID_RANGE "20000-29999": uids given to users without their own. */
static int
load_uid_range(struct hub_cfg *c, struct err *e)
{
	const char *v;
	char *end;

	if (str_setting("LOCAL_UID_RANGE", "20000-29999", &v, e) < 0)
		return -1;
	c->local_uid_min = strtol(v, &end, 10);
	if (*end == '-' && end > v)
		c->local_uid_max = strtol(end + 1, &end, 10);
	if (*end != '\0' || c->local_uid_min < 1000 ||
	    c->local_uid_max < c->local_uid_min ||
	    c->local_uid_max > (1L << 31) - 2)
		return err_set(e, ERR_INVALID, "SWARMHUB_LOCAL_UID_RANGE: "
		    "'%.40s' is not a range such as 20000-29999 (at least "
		    "1000)", v);
	return 0;
}

static int
load_home(struct spawner_cfg *sc, struct err *e)
{
	const char *mode;
	long v;

	if (str_setting("HOME", "", &sc->home, e) < 0 ||
	    str_setting("HOME_MOUNT", "bind", &sc->home_mount, e) < 0 ||
	    str_setting("HOME_BIND_ROOT", NULL, &sc->home_bind_root, e) < 0 ||
	    str_setting("HOME_TARGET", "/home/jovyan/work", &sc->home_target,
			e) < 0 ||
	    str_setting("SHARED_DIR", NULL, &sc->shared_dir, e) < 0 ||
	    str_setting("HOME_MODE", "0700", &mode, e) < 0 ||
	    id_setting("HOME_UID", 1000, &sc->home_uid, &sc->home_uid_ldap,
		       e) < 0 ||
	    id_setting("HOME_GID", 100, &sc->home_gid, &sc->home_gid_ldap,
		       e) < 0)
		return -1;
	v = strtol(mode, NULL, 8);
	if (strspn(mode, "01234567") != strlen(mode) || v <= 0 || v > 07777)
		return err_set(e, ERR_INVALID, "SWARMHUB_HOME_MODE: '%.20s' is "
		    "not an octal mode such as 0700", mode);
	sc->home_mode = v;
	return 0;
}

static int
load_cull(struct hub_cfg *c, struct err *e)
{
	long probe_s;

	if (cfg_duration("CULL_TIMEOUT", 3000, &c->cull_timeout_s, e) < 0 ||
	    cfg_duration("CULL_EVERY", 300, &c->cull_every_s, e) < 0 ||
	    cfg_duration("CULL_MAX_AGE", 0, &c->cull_max_age_s, e) < 0 ||
	    cfg_duration("CULL_USERS_AFTER", 0, &c->cull_users_after_s, e) < 0 ||
	    cfg_bool("CULL_ADMIN_SERVERS", 1, &c->cull_admin_servers, e) < 0 ||
	    cfg_bool("CULL_KERNEL_BUSY", 1, &c->cull_kernel_busy, e) < 0 ||
	    cfg_bool("CULL_WEBSOCKETS", 0, &c->cull_websockets, e) < 0 ||
	    cfg_long("CULL_CONCURRENCY", 10, 1, 1000, &c->cull_concurrency,
		     e) < 0 ||
	    cfg_long("CULL_PROBE_RATE", 100, 0, 100000, &c->cull_probe_rate,
		     e) < 0 ||
	    cfg_duration("CULL_PROBE_TIMEOUT", 5, &probe_s, e) < 0 ||
	    cfg_duration("USAGE_EVERY", 30, &c->usage_every_s, e) < 0 ||
	    str_setting("USAGE_AGENTS", NULL, &c->usage_agents, e) < 0)
		return -1;
	if (c->cull_every_s < 1)
		return err_set(e, ERR_INVALID, "SWARMHUB_CULL_EVERY must be at "
		    "least 1 second");
	c->cull_probe_timeout_ms = probe_s * 1000;
	return 0;
}

/* Connection caps and client timeouts of the edge (0 caps: automatic). */
static int
load_edge_limits(struct hub_cfg *c, struct err *e)
{
	return cfg_long("MAX_CONNECTIONS", 0, 0, 1000000,
			&c->max_connections, e) |
	       cfg_long("MAX_CONNECTIONS_PER_ADDRESS", 500, 0, 1000000,
			&c->max_connections_per_address, e) |
	       cfg_duration("CLIENT_IDLE_TIMEOUT", 75,
			    &c->client_idle_timeout_s, e) |
	       cfg_duration("WEBSOCKET_IDLE_TIMEOUT", 3600,
			    &c->websocket_idle_timeout_s, e);
}

/* GPU_RESOURCE: the generic-resource kind of "gpus" ([A-Za-z0-9_.-]). */
static int
gpu_setting(struct spawner_cfg *sc, struct err *e)
{
	const char *k;

	if (str_setting("GPU_RESOURCE", "gpu", &sc->gpu_resource, e) < 0)
		return -1;
	k = sc->gpu_resource;
	if (!*k || strlen(k) > 63 || strspn(k, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(k))
		return err_set(e, ERR_INVALID, "SWARMHUB_GPU_RESOURCE: '%.64s' "
		    "is not a resource kind (1-63 of A-Z a-z 0-9 _ . -)", k);
	return 0;
}

static int
load_spawn(struct hub_cfg *c, struct err *e)
{
	struct spawner_cfg *sc = &c->spawn;
	const char *connect;
	int on_managers;

	if (str_setting("NETWORK", NULL, &sc->network, e) < 0 ||
	    str_setting("DOCKER_HOST", "unix:///var/run/docker.sock",
			&sc->docker_host, e) < 0 ||
	    str_setting("DOCKER_CERT_PATH", NULL, &sc->docker_cert_path,
			e) < 0 ||
	    str_setting("HUB_ID", "swarmhub", &sc->hub_id, e) < 0 ||
	    str_setting("SERVICE_NAME_TEMPLATE", "jupyter-{user}",
			&sc->name_template, e) < 0 ||
	    str_setting("PROFILES", "/etc/swarmhub/profiles.json",
			&sc->profiles_path, e) < 0 ||
	    str_setting("REGISTRY_AUTH", NULL, &sc->registry_auth, e) < 0 ||
	    str_setting("CONNECT", "dns", &connect, e) < 0 ||
	    gpu_setting(sc, e) < 0 ||
	    cfg_duration("START_TIMEOUT", 600, &sc->start_timeout_s, e) < 0 ||
	    cfg_duration("HTTP_TIMEOUT", 600, &sc->http_timeout_s, e) < 0 ||
	    cfg_long("CONCURRENT_SPAWN_LIMIT", 100, 1, 10000,
		     &c->concurrent_spawn_limit, e) < 0 ||
	    cfg_long("NAMED_SERVER_LIMIT_PER_USER", 0, 0, 100000,
		     &c->named_server_limit, e) < 0 ||
	    cfg_duration("RECONCILE_EVERY", 60, &c->reconcile_every_s, e) < 0 ||
	    load_home(sc, e) < 0 || load_uid_range(c, e) < 0)
		return -1;
	if (strcmp(connect, "gwbridge") == 0)
		sc->connect_gwbridge = 1;
	else if (strcmp(connect, "dns") != 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_CONNECT: '%.20s' is not "
		    "dns or gwbridge", connect);
	if (strchr(sc->hub_id, ',') || strchr(sc->hub_id, '"'))
		return err_set(e, ERR_INVALID, "SWARMHUB_HUB_ID may not contain "
		    "',' or '\"'");
	if (!strstr(sc->name_template, "{user}"))
		return err_set(e, ERR_INVALID, "SWARMHUB_SERVICE_NAME_TEMPLATE "
		    "must contain {user}");
	c->spawn_enabled = sc->network != NULL;
	if (cfg_bool("SERVERS_ON_MANAGERS", 1, &on_managers, e) < 0)
		return -1;
	sc->workers_only = !on_managers;
	return load_cull(c, e) |
	       cfg_bool("ADMIN_ACCESS", 0, &c->admin_access, e) |
	       cfg_duration("PROXY_TIMEOUT", 120, &c->proxy_timeout_s, e) |
	       cfg_long("EDGE_THREADS", 2, 1, 64, &c->edge_threads, e) |
	       load_edge_limits(c, e);
}

/* HUB_CONNECT_URL: http(s)://host[:port], no path; default the stack's
 * service name "hub" on LISTEN's port. */
static int
load_connect_url(struct hub_cfg *c, struct err *e)
{
	const char *v, *port = strrchr(c->listen, ':');
	size_t n, host;

	if (str_setting("HUB_CONNECT_URL", NULL, &v, e) < 0 ||
	    cfg_duration("OAUTH_CODE_TTL", 60, &c->oauth_code_ttl_s, e) < 0)
		return -1;
	if (c->oauth_code_ttl_s < 1)
		return err_set(e, ERR_INVALID, "SWARMHUB_OAUTH_CODE_TTL must "
		    "be at least 1 second");
	if (v == NULL) {
		snprintf(c->hub_connect_url, sizeof(c->hub_connect_url),
			 "http://hub:%s", port ? port + 1 : "8000");
		if (c->spawn_enabled && c->spawn.connect_gwbridge)
			log_event(LOG_WARN, "config.hub_connect_url", "msg=%s "
			    "url=%s", "singleuser servers reach the hub there, "
			    "which a hub off the overlay (CONNECT=gwbridge) does "
			    "not answer: set SWARMHUB_HUB_CONNECT_URL",
			    c->hub_connect_url);
		return 0;
	}
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	host = strncmp(v, "http://", 7) == 0 ? 7 :
	       strncmp(v, "https://", 8) == 0 ? 8 : 0;
	if (host == 0 || n <= host || memchr(v + host, '/', n - host) ||
	    n >= sizeof(c->hub_connect_url))
		return err_set(e, ERR_INVALID, "SWARMHUB_HUB_CONNECT_URL: "
		    "'%.100s' is not http(s)://host[:port] (no path)", v);
	memcpy(c->hub_connect_url, v, n);
	c->hub_connect_url[n] = '\0';
	return 0;
}

int
hub_cfg_load(struct hub_cfg *c, struct err *e)
{
	const char *level;

	memset(c, 0, sizeof(*c));
	if (str_setting("LISTEN", "0.0.0.0:8000", &c->listen, e) < 0 ||
	    str_setting("DB", "postgresql:///swarmhub", &c->db, e) < 0 ||
	    str_setting("SECRET", NULL, &c->secret, e) < 0 ||
	    str_setting("HUB_NAME", "swarmhub", &c->hub_name, e) < 0 ||
	    str_setting("LOG_LEVEL", "info", &level, e) < 0)
		return -1;
	if (c->secret == NULL || strlen(c->secret) < 32)
		return err_set(e, ERR_INVALID, "SWARMHUB_SECRET (or "
		    "SWARMHUB_SECRET_FILE) must be set to at least 32 "
		    "characters (make one with: openssl rand -hex 32)");
	c->log_level = log_level_parse(level);
	if (c->log_level < 0)
		return err_set(e, ERR_INVALID, "SWARMHUB_LOG_LEVEL: '%.20s' is "
		    "not debug, info, warn or error", level);
	if (load_auth(c, e) < 0 || load_numbers(c, e) != 0 ||
	    load_spawn(c, e) < 0 || load_connect_url(c, e) < 0)
		return -1;
	return 0;
}

void
hub_cfg_release(struct hub_cfg *c)
{
	strv_free(c->admin_users);
	strv_free(c->trusted_proxies);
	c->admin_users = NULL;
	c->trusted_proxies = NULL;
}
