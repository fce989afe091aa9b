/*
 * spec.c - the Swarm service of one user server, as JSON; name escaping;
 * Docker's task errors as sentences a person reads.
 *
 * Pure: no I/O, so tests/unit/test_spec.c checks every field. The spec
 * follows the one verified in INFRA.md section 4: dnsrr endpoint, restart
 * policy none, limits from the options and reservations derived from them
 * (CPU x cpu_reservation_ratio, memory = limit), GPUs as generic resources,
 * the home (and shared dir) as a bind mount or a local-driver NFS volume.
 * Ownership: every returned string is the caller's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "internal.h"

#define HOME_TARGET_DEFAULT "/home/jovyan/work"
#define HOSTNAME_MAX 63

char *
spec_escape(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	struct strbuf sb;
	unsigned char c;

	sb_init(&sb);
	sb_adds(&sb, "");
	for (; *s; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			sb_addc(&sb, (char)c);
			continue;
		}
		sb_addc(&sb, '-');
		sb_addc(&sb, hex[c >> 4]);
		sb_addc(&sb, hex[c & 15]);
	}
	return sb_detach(&sb, NULL);
}

/* ---- service names ------------------------------------------------- */
static char *
fit_name(char *name)
{
	uint32_t h = 2166136261u;
	char *fit;

	if (strlen(name) <= 63)
		return name;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	fit = xasprintf("%.54s-%08x", name, h);
	free(name);
	return fit;
}

/* t with each {key} replaced by value; value "" also drops one '-', '_'
 * or '.' just before {key} (heap). */
static char *
fill(const char *t, const char *key, const char *value)
{
	struct strbuf sb;
	size_t k = strlen(key);

	sb_init(&sb);
	sb_adds(&sb, "");
	while (*t) {
		if (strncmp(t, key, k) != 0) {
			sb_addc(&sb, *t++);
			continue;
		}
		if (*value == '\0' && sb.len > 0 &&
		    strchr("-_.", sb.buf[sb.len - 1]))
			sb.buf[--sb.len] = '\0';
		sb_adds(&sb, value);
		t += k;
	}
	return sb_detach(&sb, NULL);
}

char *
spec_service_name(const char *t, const char *user, const char *server)
{
	char *u = spec_escape(user), *sv = spec_escape(server ? server : "");
	char *a, *name;

	if (strstr(t, "{user}") == NULL)
		a = xasprintf("%s{user}", t);
	else
		a = xstrdup(t);
	if (strstr(a, "{server}") == NULL) {
		char *b = xasprintf("%s-{server}", a);

		free(a);
		a = b;
	}
	name = fill(a, "{user}", u);
	free(a);
	a = fill(name, "{server}", sv);
	free(name);
	free(u);
	free(sv);
	return fit_name(a);
}

static const char *
str(const char *s)
{
	return s ? s : "";
}

static const char *
home_target(const struct spawner_cfg *cfg)
{
	return cfg->home_target && *cfg->home_target ? cfg->home_target :
	    HOME_TARGET_DEFAULT;
}

/* s with every {base_url} and {port} replaced (heap string). */
static char *
expand(const char *s, const char *base_url, int port)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_adds(&sb, "");
	while (*s) {
		if (strncmp(s, "{base_url}", 10) == 0) {
			sb_adds(&sb, base_url);
			s += 10;
		} else if (strncmp(s, "{port}", 6) == 0) {
			sb_addf(&sb, "%d", port);
			s += 6;
		} else {
			sb_addc(&sb, *s++);
		}
	}
	return sb_detach(&sb, NULL);
}

/* Appends tmpl to sb with {base_url}, {user} and {token} replaced. */
static void
expand_vars(struct strbuf *sb, const char *tmpl, const char *base_url,
	    const char *user, const char *token)
{
	static const char *const names[] = { "{base_url}", "{user}",
		"{token}" };
	const char *vals[] = { base_url, user, token };

	while (*tmpl) {
		size_t i;

		for (i = 0; i < 3; i++)
			if (strncmp(tmpl, names[i], strlen(names[i])) == 0)
				break;
		if (i == 3) {
			sb_addc(sb, *tmpl++);
			continue;
		}
		sb_adds(sb, str(vals[i]));
		tmpl += strlen(names[i]);
	}
}

int
spawner_expand(const char *tmpl, const char *base_url, const char *user,
	       const char *token, char *out, size_t size)
{
	struct strbuf sb;
	int rc = -1;

	sb_init(&sb);
	sb_adds(&sb, "");
	expand_vars(&sb, tmpl, base_url, user, token);
	if (sb.len < size) {
		memcpy(out, sb.buf, sb.len + 1);
		rc = 0;
	}
	sb_release(&sb);
	return rc;
}

/* A valid DNS label from the service name: [a-z0-9-], <= 63, no edge '-'. */
static char *
hostname(const char *name)
{
	char *h = xstrndup(name, strnlen(name, HOSTNAME_MAX)), *p;
	size_t n;

	for (p = h; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			*p = '-';
	n = strlen(h);
	while (n > 0 && h[n - 1] == '-')
		h[--n] = '\0';
	n = strspn(h, "-");
	memmove(h, h + n, strlen(h + n) + 1);
	if (!*h) {
		free(h);
		h = xstrdup("jupyter");
	}
	return h;
}

/* Appends a heap string (taken over) to a JSON array; clears *ok on error. */
static void
push(json_t *arr, char *s, int *ok)
{
	if (json_array_append_new(arr, json_string(s)) < 0)
		*ok = 0;
	free(s);
}

static void
put(json_t *obj, const char *key, json_t *v, int *ok)
{
	if (json_object_set_new(obj, key, v) < 0)
		*ok = 0;
}

static json_t *
labels(const struct spec_input *in)
{
	return json_pack("{s:s, s:s, s:s}",
			 "swarmhub.hub", str(in->cfg->hub_id),
			 "swarmhub.user", str(in->req->user),
			 "swarmhub.server", str(in->req->server));
}

static void
command(const struct spec_input *in, json_t *cs, int *ok)
{
	const struct image_def *im = in->image;
	const char *base_url = str(in->req->base_url);
	json_t *cmd, *args;
	size_t i;

	if (im->ncmd == 0)
		return;
	cmd = json_array();
	args = json_array();
	push(cmd, expand(im->cmd[0], base_url, im->port), ok);
	for (i = 1; i < im->ncmd; i++)
		push(args, expand(im->cmd[i], base_url, im->port), ok);
	put(cs, "Command", cmd, ok);
	put(cs, "Args", args, ok);
}

/* s percent-encoded as one path segment (heap string). */
static char *
path_escape(const char *s)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_adds(&sb, "");
	sb_add_pct(&sb, s, NULL);
	return sb_detach(&sb, NULL);
}

/* The scopes that let the owner in, as a JSON list: JupyterHub's default
 * oauth_access_scopes of a server (heap string). */
static char *
access_scopes(const struct spawn_req *req)
{
	json_t *l = json_array();
	char *a = xasprintf("access:servers!server=%s/%s", str(req->user),
			    str(req->server));
	char *b = xasprintf("access:servers!user=%s", str(req->user));
	char *s, *r;

	json_array_append_new(l, json_string(a));
	json_array_append_new(l, json_string(b));
	s = json_dumps(l, JSON_COMPACT);
	r = xstrdup(s ? s : "[]");
	free(s);
	free(a);
	free(b);
	json_decref(l);
	return r;
}

/*
 * What jupyterhub-singleuser reads (JupyterHub's Spawner.get_env): its
 * API token (also its OAuth client secret), where the hub's API is, its
 * OAuth client and callback, the scopes that let a caller in, where to
 * report activity. JUPYTERHUB_HOST is empty: the hub is on the same
 * origin as the server, behind the same edge.
 */
static void
singleuser_env(const struct spec_input *in, json_t *v, int *ok)
{
	const struct spawn_req *req = in->req;
	const char *api = str(req->hub_api_url);
	char *scopes = access_scopes(req), *esc = path_escape(str(req->user));
	const char *dflt = in->image->info.default_url;

	push(v, xasprintf("JUPYTERHUB_API_TOKEN=%s", str(req->token)), ok);
	push(v, xasprintf("JPY_API_TOKEN=%s", str(req->token)), ok);
	push(v, xasprintf("JUPYTERHUB_API_URL=%s", api), ok);
	push(v, xasprintf("JUPYTERHUB_ACTIVITY_URL=%s/users/%s/activity", api,
			  esc), ok);
	push(v, xasprintf("JUPYTERHUB_CLIENT_ID=%s", str(req->oauth_client_id)),
	     ok);
	push(v, xstrdup("JUPYTERHUB_HOST="), ok);
	push(v, xasprintf("JUPYTERHUB_OAUTH_CALLBACK_URL=%soauth_callback",
			  str(req->base_url)), ok);
	push(v, xasprintf("JUPYTERHUB_OAUTH_SCOPES=%s", scopes), ok);
	push(v, xasprintf("JUPYTERHUB_OAUTH_ACCESS_SCOPES=%s", scopes), ok);
	push(v, xasprintf("JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES=%s", scopes),
	     ok);
	push(v, xasprintf("JUPYTERHUB_SERVICE_URL=http://0.0.0.0:%d%s",
			  in->image->port, str(req->base_url)), ok);
	/* 4.1+: no __Host- cookies, the server lives below a path */
	push(v, xstrdup("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED=0"), ok);
	if (*dflt)
		push(v, xasprintf("JUPYTERHUB_DEFAULT_URL=%s", dflt), ok);
	free(scopes);
	free(esc);
}

static json_t *
env(const struct spec_input *in, int *ok)
{
	const struct spawn_req *req = in->req;
	json_t *v = json_array();
	size_t i;

	if (in->image->info.kind == SPAWNER_KIND_SINGLEUSER)
		singleuser_env(in, v, ok);
	else
		push(v, xasprintf("JUPYTER_TOKEN=%s", str(req->token)), ok);
	push(v, xasprintf("JUPYTERHUB_USER=%s", str(req->user)), ok);
	push(v, xasprintf("JUPYTERHUB_SERVER_NAME=%s", str(req->server)), ok);
	push(v, xasprintf("JUPYTERHUB_SERVICE_PREFIX=%s", str(req->base_url)),
	     ok);
	push(v, xstrdup("JUPYTERHUB_BASE_URL=/"), ok);
	for (i = 0; i < in->image->nenv; i++) {
		struct strbuf sb;

		sb_init(&sb);
		sb_adds(&sb, "");
		expand_vars(&sb, in->image->env[i], req->base_url, req->user,
			    req->token);
		push(v, sb_detach(&sb, NULL), ok);
	}
	/* a uid the image does not know has no writable home of its own:
	 * the mounted one is (HOME_UID=ldap) */
	if (req->own_ids)
		push(v, xasprintf("HOME=%s", home_target(in->cfg)), ok);
	return v;
}

/* One mount: a bind of source, or an NFS volume <service>-<suffix> whose
 * device is source. */
static json_t *
mount(const struct spec_input *in, int volume, const char *source,
      const char *target, const char *suffix)
{
	json_t *v;
	char *name;

	if (!volume)
		return json_pack("{s:s, s:s, s:s, s:b}", "Type", "bind",
				 "Source", source, "Target", target,
				 "ReadOnly", 0);
	name = xasprintf("%s-%s", in->service_name, suffix);
	v = json_pack("{s:s, s:s, s:s, s:b, s:{s:{s:s, s:{s:s, s:s, s:s}}}}",
		      "Type", "volume", "Source", name, "Target", target,
		      "ReadOnly", 0, "VolumeOptions", "DriverConfig",
		      "Name", "local", "Options", "type", "nfs",
		      "o", in->nfs_addr, "device", source);
	free(name);
	return v;
}

/* dirname(home_source)/<shared_dir>, or home_bind_root/<shared_dir>. */
static char *
shared_source(const struct spec_input *in, int volume)
{
	const struct spawner_cfg *cfg = in->cfg;
	const char *slash = strrchr(in->home_source, '/');
	int n;

	if (!volume && cfg->home_bind_root && *cfg->home_bind_root)
		return xasprintf("%s/%s", cfg->home_bind_root,
				 cfg->shared_dir);
	n = slash ? (int)(slash - in->home_source) : 0;
	return xasprintf("%.*s/%s", n, in->home_source, cfg->shared_dir);
}

static json_t *
mounts(const struct spec_input *in, int volume, int *ok)
{
	const struct spawner_cfg *cfg = in->cfg;
	const char *target = home_target(cfg);
	json_t *v = json_array();
	char *src, *tgt;

	if (!in->home_source || !*in->home_source)
		return v;	/* no HOME: nothing is kept */
	if (json_array_append_new(v, mount(in, volume, in->home_source,
					   target, "home")) < 0)
		*ok = 0;
	if (!cfg->shared_dir || !*cfg->shared_dir)
		return v;
	src = shared_source(in, volume);
	tgt = xasprintf("%s/shared", target);
	if (json_array_append_new(v, mount(in, volume, src, tgt,
					   "shared")) < 0)
		*ok = 0;
	free(src);
	free(tgt);
	return v;
}

/* "uid:gid": the user's own (HOME_UID=ldap) or HOME_UID:HOME_GID. */
static char *
run_as(const struct spec_input *in)
{
	const struct spawn_req *req = in->req;

	if (req->own_ids)
		return xasprintf("%ld:%ld", req->uid, req->gid);
	return xasprintf("%ld:%ld", in->cfg->home_uid, in->cfg->home_gid);
}

static json_t *
container_spec(const struct spec_input *in, int volume, int *ok)
{
	const struct spawner_cfg *cfg = in->cfg;
	json_t *cs = json_object();
	char *user = run_as(in);
	char *host = hostname(in->service_name);

	put(cs, "Image", json_string(in->image_ref ? in->image_ref :
				     in->image->image), ok);
	put(cs, "Labels", labels(in), ok);
	command(in, cs, ok);
	put(cs, "Env", env(in, ok), ok);
	put(cs, "User", json_string(user), ok);
	/* docker-stacks images expect group users (100): kept beside the
	 * user's own group */
	if (in->req->own_ids) {
		json_t *groups = json_array();

		push(groups, xasprintf("%ld", cfg->home_gid), ok);
		put(cs, "Groups", groups, ok);
	}
	put(cs, "Hostname", json_string(host), ok);
	put(cs, "Mounts", mounts(in, volume, ok), ok);
	put(cs, "StopGracePeriod", json_integer(5000000000LL), ok);
	put(cs, "Init", json_true(), ok);
	free(user);
	free(host);
	return cs;
}

/* x rounded to the nearest integer (x >= 0; no libm). */
static json_int_t
whole(double x)
{
	return (json_int_t)(x + 0.5);
}

static json_t *
resources(const struct spec_input *in, int *ok)
{
	const struct spawn_opts *o = in->req->opts;
	json_int_t cpu = whole(o->cpu * 1e9);
	json_int_t mem = whole(o->mem_gb * SPAWNER_GIB);
	json_int_t rcpu = whole(o->cpu * 1e9 * in->cpu_reservation_ratio);
	json_t *res, *gen;

	res = json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}",
			"Limits", "NanoCPUs", cpu, "MemoryBytes", mem,
			"Reservations", "NanoCPUs", rcpu, "MemoryBytes", mem);
	if (!res || o->gpus <= 0)
		return res;
	gen = json_pack("[{s:{s:s, s:I}}]", "DiscreteResourceSpec",
			"Kind", in->cfg->gpu_resource && *in->cfg->gpu_resource ?
			in->cfg->gpu_resource : "gpu", "Value",
			(json_int_t)o->gpus);
	put(json_object_get(res, "Reservations"), "GenericResources", gen, ok);
	return res;
}

static json_t *
task_template(const struct spec_input *in, int volume, int *ok)
{
	const struct profile_def *pd = in->profile;
	const struct pool_def *pl = profiles_pool(pd, in->req->opts->pool);
	json_t *tt = json_object(), *cons = json_array(), *net;
	size_t i;

	put(tt, "ContainerSpec", container_spec(in, volume, ok), ok);
	put(tt, "Resources", resources(in, ok), ok);
	/* the profile's constraints, then the chosen pool's: all must hold */
	for (i = 0; i < pd->nconstraints; i++)
		push(cons, xstrdup(pd->constraints[i]), ok);
	for (i = 0; pl && i < pl->nconstraints; i++)
		push(cons, xstrdup(pl->constraints[i]), ok);
	if (in->cfg->workers_only)
		push(cons, xstrdup("node.role==worker"), ok);
	put(tt, "Placement", json_pack("{s:o}", "Constraints", cons), ok);
	put(tt, "RestartPolicy", json_pack("{s:s}", "Condition", "none"), ok);
	net = json_pack("[{s:s, s:[s]}]", "Target", in->cfg->network,
			"Aliases", in->service_name);
	put(tt, "Networks", net, ok);
	return tt;
}

static int
check_input(const struct spec_input *in, int *volume, struct err *e)
{
	const char *mode = in->cfg->home_mount;

	*volume = mode && strcmp(mode, "volume") == 0;
	if (!in->req || !in->req->opts || !in->image || !in->profile ||
	    !in->service_name)
		return err_set(e, ERR_INTERNAL, "incomplete service spec input");
	if (!in->cfg->network || !*in->cfg->network)
		return err_set(e, ERR_INVALID, "NETWORK is not set");
	if (mode && *mode && !*volume && strcmp(mode, "bind") != 0)
		return err_set(e, ERR_INVALID, "HOME_MOUNT must be 'bind' or "
			       "'volume' (got '%s')", mode);
	if (*volume && (!in->nfs_addr || !*in->nfs_addr || !in->home_source))
		return err_set(e, ERR_INVALID, "HOME_MOUNT=volume needs an "
			       "nfs:// HOME");
	if (in->cfg->shared_dir && *in->cfg->shared_dir &&
	    (!in->home_source || !*in->home_source))
		return err_set(e, ERR_INVALID, "SHARED_DIR needs a HOME");
	return 0;
}

char *
spec_build(const struct spec_input *in, struct err *e)
{
	json_t *spec;
	char *s, *r;
	int volume = 0, ok = 1;

	if (check_input(in, &volume, e) < 0)
		return NULL;
	spec = json_object();
	put(spec, "Name", json_string(in->service_name), &ok);
	put(spec, "Labels", labels(in), &ok);
	put(spec, "TaskTemplate", task_template(in, volume, &ok), &ok);
	put(spec, "Mode", json_pack("{s:{s:i}}", "Replicated", "Replicas", 1),
	    &ok);
	put(spec, "EndpointSpec", json_pack("{s:s}", "Mode", "dnsrr"), &ok);
	s = ok ? json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(spec);
	if (!s) {
		err_set(e, ERR_INVALID, "cannot build the service spec of '%s' "
			"(a value is not valid UTF-8)", in->service_name);
		return NULL;
	}
	r = xstrdup(s);
	free(s);
	return r;
}

/* ---- task errors ----------------------------------------------------- */

static char *
resources_message(const struct spawn_opts *o)
{
	if (!o)
		return xstrdup("no node has the CPU or memory free that this "
			       "server asks for");
	if (o->gpus > 0)
		return xasprintf("no node has %g CPU%s, %g GiB of memory and %d "
				 "GPU%s free", o->cpu, o->cpu == 1 ? "" : "s",
				 o->mem_gb, o->gpus, o->gpus == 1 ? "" : "s");
	return xasprintf("no node has %g CPU%s and %g GiB of memory free",
			 o->cpu, o->cpu == 1 ? "" : "s", o->mem_gb);
}

/* Docker's texts that carry a value, and the sentence around it. */
static const struct pattern {
	const char *find;	/* the value follows this */
	const char *stop;	/* and ends before one of these bytes */
	const char *also;	/* must also be in the text (or NULL) */
	const char *pre, *post;
} patterns[] = {
	{ "No such image: ", "", NULL, "image '", "' not found on node" },
	{ "bind source path does not exist: ", "", NULL,
	  "the home directory is missing on the node (", ")" },
	{ "non-zero exit (", ")", NULL, "the server exited with code ",
	  " (see its log)" },
	{ "exec: \"", "\"", "no such file",
	  "the image's command was not found: ", "" },
	{ "exec: ", ":", "no such file",
	  "the image's command was not found: ", "" },
};

static char *
pattern_message(const char *err)
{
	const struct pattern *pt;
	const char *p;
	size_t i;

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		pt = &patterns[i];
		p = strstr(err, pt->find);
		if (!p || (pt->also && !strstr(err, pt->also)))
			continue;
		p += strlen(pt->find);
		return xasprintf("%s%.*s%s", pt->pre,
				 (int)strcspn(p, pt->stop), p, pt->post);
	}
	return NULL;
}

static char *
known_message(const char *err, const struct spawn_opts *o)
{
	if (strstr(err, "no suitable node") &&
	    strstr(err, "insufficient resources"))
		return resources_message(o);
	if (strstr(err, "no suitable node") &&
	    strstr(err, "scheduling constraints not satisfied"))
		return xstrdup("no node matches the placement constraints of "
			       "this profile");
	if (strstr(err, "failed to mount local volume") &&
	    strstr(err, "no such device"))
		return xstrdup("the node cannot mount NFS volumes (no NFS "
			       "client): use HOME_MOUNT=bind");
	return pattern_message(err);
}

char *
spec_task_message(const char *state, const char *err, const char *message,
		  const struct spawn_opts *o)
{
	const char *text = err && *err ? err : message;
	const char *st = state && *state ? state : "unknown";
	char *m;

	if (!text || !*text)
		return xasprintf("task %s", st);
	m = known_message(text, o);
	if (m)
		return m;
	return xasprintf("task %s: %s", st, text);
}
