/*
 * test_spec.c - the service-create JSON field by field (parsed back with
 * jansson), DockerSpawner-style escaping, and Docker's task errors of
 * INFRA.md section 4 as sentences. No network, no Docker.
 */
#include <jansson.h>
#include "../../spawner/internal.h"
#include "../lib/t.h"

static const char profiles_text[] =
	"{\"cpu_reservation_ratio\": 0.25,"
	" \"images\": {"
	"  \"scipy\": {\"image\": \"jupyter/scipy:1\","
	"   \"cmd\": [\"start.py\", \"--ServerApp.base_url={base_url}\","
	"            \"--port={port}\", \"--x={base_url}{port}{other}\"],"
	"   \"port\": 9999, \"env\": {\"PROFILE_VAR\": \"yes\","
	"    \"APP_PASSWORD\": \"{token}\","
	"    \"APP_ROOT\": \"{base_url}app-{user}{port}\"}},"
	"  \"plain\": {\"image\": \"local/nb:1\"},"
	"  \"hubsu\": {\"image\": \"local/su:1\", \"kind\": \"singleuser\","
	"   \"default_url\": \"/tree\"}},"
	" \"profiles\": {"
	"  \"ds\": {\"images\": [\"scipy\", \"plain\"],"
	"   \"cpu\": {\"min\": 0.5, \"max\": 8}, \"mem_gb\": {\"min\": 1, \"max\": 64},"
	"   \"gpus\": 2,"
	"   \"constraints\": [\"node.labels.pool==ds\", \"node.role==worker\"],"
	"   \"pools\": {\"gpu\": [\"node.labels.gpu==yes\"]}},"
	"  \"default\": {\"images\": [\"hubsu\"],"
	"   \"cpu\": {\"min\": 0.5, \"max\": 8}, \"mem_gb\": {\"min\": 1, \"max\": 64}}}}";

struct fixture {
	struct profiles *p;
	struct spawner_cfg cfg;
	struct spawn_opts opts;
	struct spawn_req req;
	struct spec_input in;
};

static void
fixture_init(struct fixture *f)
{
	struct err e = { 0 };

	memset(f, 0, sizeof(*f));
	if (profiles_parse(profiles_text, strlen(profiles_text), &f->p, &e) < 0) {
		fprintf(stderr, "profiles: %s\n", e.msg);
		exit(1);
	}
	f->cfg.network = "hubnet";
	f->cfg.hub_id = "hub1";
	f->cfg.home_mount = "bind";
	f->cfg.home_bind_root = "/srv/homes";
	f->cfg.home_uid = 1000;
	f->cfg.home_gid = 100;
	f->cfg.shared_dir = "shared";
	f->opts = (struct spawn_opts){ "ds", "scipy", 1.5, 2, 0, "" };
	f->req.user = "alice";
	f->req.server = "";
	f->req.opts = &f->opts;
	f->req.token = "tok-alice-123";
	f->req.base_url = "/user/alice/";
	f->in.cfg = &f->cfg;
	f->in.req = &f->req;
	f->in.image = profiles_image(f->p, "scipy");
	f->in.profile = profiles_get(f->p, "ds");
	f->in.cpu_reservation_ratio = f->p->cpu_reservation_ratio;
	f->in.service_name = "jupyter-alice";
	f->in.home_source = "/srv/homes/alice";
}

/* The value at a '/'-separated path of keys and array indexes. */
static json_t *
at(json_t *v, const char *path)
{
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok && v;
	     tok = strtok_r(NULL, "/", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(tok, NULL, 10));
		else
			v = json_object_get(v, tok);
	}
	return v;
}

static const char *
s_at(json_t *v, const char *path)
{
	return json_string_value(at(v, path));
}

static long long
i_at(json_t *v, const char *path)
{
	json_t *x = at(v, path);

	return json_is_integer(x) ? (long long)json_integer_value(x) : -12345;
}

static json_t *
build(const struct fixture *f)
{
	struct err e = { 0 };
	char *s = spec_build(&f->in, &e);
	json_t *v;

	if (!s) {
		fprintf(stderr, "spec_build: %s\n", e.msg);
		return NULL;
	}
	v = json_loads(s, 0, NULL);
	free(s);
	return v;
}

static int
has_env(json_t *spec, const char *want)
{
	json_t *env = at(spec, "TaskTemplate/ContainerSpec/Env"), *x;
	size_t i;

	json_array_foreach(env, i, x)
		if (strcmp(json_string_value(x), want) == 0)
			return 1;
	return 0;
}

static int
env_has_prefix(json_t *spec, const char *prefix)
{
	json_t *env = at(spec, "TaskTemplate/ContainerSpec/Env"), *x;
	size_t i;

	json_array_foreach(env, i, x)
		if (strncmp(json_string_value(x), prefix, strlen(prefix)) == 0)
			return 1;
	return 0;
}

static void
test_escape(void)
{
	static const struct { const char *in, *want; } rows[] = {
		{ "alice", "alice" },
		{ "bob42", "bob42" },
		{ "a.b@c", "a-2eb-40c" },
		{ "a-b", "a-2db" },
		{ "a_b", "a-5fb" },
		{ "Alice", "-41lice" },
		{ "../x", "-2e-2e-2fx" },
		{ "a b", "a-20b" },
		{ "caf\xc3\xa9", "caf-c3-a9" },
		{ "", "" },
	};
	size_t i;
	char *s;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		s = spec_escape(rows[i].in);
		T_STREQ(s, rows[i].want, "escape '%s'", rows[i].in);
		free(s);
	}
}

static void
test_spec_bind(void)
{
	struct fixture f;
	json_t *v, *cs;

	fixture_init(&f);
	v = build(&f);
	T_OK(v != NULL, "the spec is JSON");
	T_STREQ(s_at(v, "Name"), "jupyter-alice", "Name");
	T_STREQ(s_at(v, "Labels/swarmhub.hub"), "hub1", "hub label");
	T_STREQ(s_at(v, "Labels/swarmhub.user"), "alice", "user label");
	T_STREQ(s_at(v, "Labels/swarmhub.server"), "", "server label");
	T_OK(json_object_size(at(v, "Labels")) == 3, "three labels");
	T_STREQ(s_at(v, "EndpointSpec/Mode"), "dnsrr", "endpoint dnsrr");
	T_OK(i_at(v, "Mode/Replicated/Replicas") == 1, "one replica");
	T_STREQ(s_at(v, "TaskTemplate/RestartPolicy/Condition"), "none",
		"restart policy none");
	T_STREQ(s_at(v, "TaskTemplate/Networks/0/Target"), "hubnet",
		"network");
	T_STREQ(s_at(v, "TaskTemplate/Networks/0/Aliases/0"), "jupyter-alice",
		"alias");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/0"),
		"node.labels.pool==ds", "constraint 1");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/1"),
		"node.role==worker", "constraint 2");

	cs = at(v, "TaskTemplate/ContainerSpec");
	T_STREQ(s_at(cs, "Image"), "jupyter/scipy:1", "Image");
	T_STREQ(s_at(cs, "Labels/swarmhub.user"), "alice", "container label");
	T_STREQ(s_at(cs, "Labels/swarmhub.hub"), "hub1", "container hub label");
	T_STREQ(s_at(cs, "Command/0"), "start.py", "Command");
	T_OK(json_array_size(at(cs, "Command")) == 1, "Command: one element");
	T_STREQ(s_at(cs, "Args/0"), "--ServerApp.base_url=/user/alice/",
		"{base_url} replaced");
	T_STREQ(s_at(cs, "Args/1"), "--port=9999", "{port} replaced");
	T_STREQ(s_at(cs, "Args/2"), "--x=/user/alice/9999{other}",
		"both replaced, other braces kept");
	T_STREQ(s_at(cs, "User"), "1000:100", "User uid:gid");
	T_STREQ(s_at(cs, "Hostname"), "jupyter-alice", "Hostname");
	T_OK(i_at(cs, "StopGracePeriod") == 5000000000LL, "grace 5 s");
	T_OK(json_is_true(at(cs, "Init")), "Init");
	T_OK(has_env(v, "JUPYTER_TOKEN=tok-alice-123"), "JUPYTER_TOKEN");
	T_OK(has_env(v, "JUPYTERHUB_USER=alice"), "JUPYTERHUB_USER");
	T_OK(has_env(v, "JUPYTERHUB_SERVICE_PREFIX=/user/alice/"),
	     "JUPYTERHUB_SERVICE_PREFIX");
	T_OK(has_env(v, "JUPYTERHUB_BASE_URL=/"), "JUPYTERHUB_BASE_URL");
	T_OK(has_env(v, "PROFILE_VAR=yes"), "the image's env");
	T_OK(has_env(v, "APP_PASSWORD=tok-alice-123"), "{token} in env");
	T_OK(has_env(v, "APP_ROOT=/user/alice/app-alice{port}"),
	     "{base_url} and {user} in env, {port} kept");
	T_OK(!env_has_prefix(v, "HOME="), "HOME not overridden");

	T_OK(json_array_size(at(cs, "Mounts")) == 2, "home and shared mounts");
	T_STREQ(s_at(cs, "Mounts/0/Type"), "bind", "home: bind");
	T_STREQ(s_at(cs, "Mounts/0/Source"), "/srv/homes/alice", "home source");
	T_STREQ(s_at(cs, "Mounts/0/Target"), "/home/jovyan/work",
		"default home target");
	T_OK(json_is_false(at(cs, "Mounts/0/ReadOnly")), "home read-write");
	T_OK(at(cs, "Mounts/0/VolumeOptions") == NULL, "bind: no volume opts");
	T_STREQ(s_at(cs, "Mounts/1/Source"), "/srv/homes/shared",
		"shared under HOME_BIND_ROOT");
	T_STREQ(s_at(cs, "Mounts/1/Target"), "/home/jovyan/work/shared",
		"shared target");

	T_OK(i_at(v, "TaskTemplate/Resources/Limits/NanoCPUs") == 1500000000,
	     "cpu limit 1.5e9");
	T_OK(i_at(v, "TaskTemplate/Resources/Limits/MemoryBytes") ==
	     2147483648LL, "memory limit: mem_gb 2 is 2 GiB, 2 x 2^30 bytes");
	T_OK(i_at(v, "TaskTemplate/Resources/Reservations/NanoCPUs") ==
	     375000000, "cpu reservation = limit x 0.25");
	T_OK(i_at(v, "TaskTemplate/Resources/Reservations/MemoryBytes") ==
	     2147483648LL, "memory reservation = limit");
	T_OK(at(v, "TaskTemplate/Resources/Reservations/GenericResources") ==
	     NULL, "no GPU generic resource when gpus = 0");
	json_decref(v);
	profiles_free(f.p);
}

static void
test_spec_variants(void)
{
	struct fixture f;
	json_t *v;
	char name[128];

	fixture_init(&f);
	f.opts.gpus = 2;
	f.opts.cpu = 0.1;
	f.opts.mem_gb = 0.3;
	f.req.server = "gpu";
	f.in.image = profiles_image(f.p, "plain");
	f.cfg.shared_dir = NULL;
	f.cfg.home_target = "/home/u";
	v = build(&f);
	T_STREQ(s_at(v, "TaskTemplate/Resources/Reservations/GenericResources/"
		     "0/DiscreteResourceSpec/Kind"), "gpu", "GPU kind");
	T_OK(at(v, "TaskTemplate/Placement/Constraints/2") == NULL,
	     "no pool: the profile's constraints only");
	json_decref(v);
	/* GPU_RESOURCE and a pool */
	f.cfg.gpu_resource = "NVIDIA-GPU";
	snprintf(f.opts.pool, sizeof(f.opts.pool), "gpu");
	v = build(&f);
	T_STREQ(s_at(v, "TaskTemplate/Resources/Reservations/GenericResources/"
		     "0/DiscreteResourceSpec/Kind"), "NVIDIA-GPU",
		"GPU kind from GPU_RESOURCE");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/0"),
		"node.labels.pool==ds", "profile's constraint first");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/2"),
		"node.labels.gpu==yes", "then the pool's");
	f.cfg.gpu_resource = NULL;
	f.opts.pool[0] = '\0';
	T_OK(i_at(v, "TaskTemplate/Resources/Reservations/GenericResources/0/"
		  "DiscreteResourceSpec/Value") == 2, "GPU count");
	T_OK(i_at(v, "TaskTemplate/Resources/Limits/NanoCPUs") == 100000000,
	     "0.1 CPU is exactly 1e8 nano");
	T_OK(i_at(v, "TaskTemplate/Resources/Reservations/NanoCPUs") ==
	     25000000, "reservation of 0.1 CPU");
	T_OK(i_at(v, "TaskTemplate/Resources/Limits/MemoryBytes") ==
	     322122547, "0.3 GiB: 0.3 x 2^30 rounded to whole bytes");
	T_OK(i_at(v, "TaskTemplate/Resources/Reservations/MemoryBytes") ==
	     322122547, "reservation of 0.3 GiB = limit");
	T_STREQ(s_at(v, "Labels/swarmhub.server"), "gpu", "named server");
	T_OK(at(v, "TaskTemplate/ContainerSpec/Command") == NULL &&
	     at(v, "TaskTemplate/ContainerSpec/Args") == NULL,
	     "no cmd: the image's default command");
	T_OK(json_array_size(at(v, "TaskTemplate/ContainerSpec/Mounts")) == 1,
	     "no SHARED_DIR: only the home");
	T_STREQ(s_at(v, "TaskTemplate/ContainerSpec/Mounts/0/Target"),
		"/home/u", "HOME_TARGET");
	json_decref(v);

	snprintf(name, sizeof(name), "jupyter-%s-",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x");
	f.in.service_name = name;
	v = build(&f);
	T_STREQ(s_at(v, "TaskTemplate/ContainerSpec/Hostname"),
		"jupyter-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"hostname: a DNS label of at most 63 characters");
	json_decref(v);
	profiles_free(f.p);
}

static void
test_spec_volume(void)
{
	struct fixture f;
	json_t *v, *m;

	fixture_init(&f);
	f.cfg.home_mount = "volume";
	f.cfg.home_bind_root = NULL;
	f.in.home_source = ":/export/alice";
	f.in.nfs_addr = "addr=10.0.0.5,nfsvers=3";
	v = build(&f);
	m = at(v, "TaskTemplate/ContainerSpec/Mounts/0");
	T_STREQ(s_at(m, "Type"), "volume", "home: volume");
	T_STREQ(s_at(m, "Source"), "jupyter-alice-home", "volume name");
	T_STREQ(s_at(m, "Target"), "/home/jovyan/work", "volume target");
	T_STREQ(s_at(m, "VolumeOptions/DriverConfig/Name"), "local",
		"local driver");
	T_STREQ(s_at(m, "VolumeOptions/DriverConfig/Options/type"), "nfs",
		"type=nfs");
	T_STREQ(s_at(m, "VolumeOptions/DriverConfig/Options/o"),
		"addr=10.0.0.5,nfsvers=3", "o=addr...");
	T_STREQ(s_at(m, "VolumeOptions/DriverConfig/Options/device"),
		":/export/alice", "device=:<export>/<user>");
	m = at(v, "TaskTemplate/ContainerSpec/Mounts/1");
	T_STREQ(s_at(m, "Type"), "volume", "shared: volume");
	T_STREQ(s_at(m, "Source"), "jupyter-alice-shared", "shared volume");
	T_STREQ(s_at(m, "Target"), "/home/jovyan/work/shared", "shared target");
	T_STREQ(s_at(m, "VolumeOptions/DriverConfig/Options/device"),
		":/export/shared", "shared device=:<export>/<shared>");
	json_decref(v);
	profiles_free(f.p);
}

/* HOME empty (no home_source): a server without mounts, nothing kept. */
static void
test_spec_no_home(void)
{
	struct fixture f;
	struct err e = { 0 };
	char *s;
	json_t *v;

	fixture_init(&f);
	f.cfg.shared_dir = NULL;
	f.cfg.home_bind_root = "";
	f.in.home_source = NULL;
	s = spec_build(&f.in, &e);
	T_OK(s != NULL, "no HOME: the spec builds (%s)", e.msg);
	v = s ? json_loads(s, 0, NULL) : NULL;
	T_OK(json_is_array(at(v, "TaskTemplate/ContainerSpec/Mounts")) &&
	     json_array_size(at(v, "TaskTemplate/ContainerSpec/Mounts")) == 0,
	     "no HOME: no mounts");
	T_STREQ(s_at(v, "TaskTemplate/ContainerSpec/Image"), "jupyter/scipy:1",
		"no HOME: the image as usual");
	json_decref(v);
	free(s);
	profiles_free(f.p);
}

/* SERVERS_ON_MANAGERS=false: node.role==worker joins every server's
 * constraints, after the profile's own; off, only the profile's apply. */
static void
test_spec_workers_only(void)
{
	struct fixture f;
	json_t *v;

	fixture_init(&f);
	f.in.profile = profiles_get(f.p, "default");
	f.in.image = profiles_image(f.p, "hubsu");
	v = build(&f);
	T_OK(json_array_size(at(v, "TaskTemplate/Placement/Constraints")) == 0,
	     "servers on managers allowed: no constraint of its own");
	json_decref(v);
	f.cfg.workers_only = 1;
	v = build(&f);
	T_OK(json_array_size(at(v, "TaskTemplate/Placement/Constraints")) == 1,
	     "workers only: one constraint");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/0"),
		"node.role==worker", "workers only: node.role==worker");
	json_decref(v);
	f.in.profile = profiles_get(f.p, "ds");
	f.in.image = profiles_image(f.p, "scipy");
	v = build(&f);
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/0"),
		"node.labels.pool==ds", "workers only: the profile's first");
	T_STREQ(s_at(v, "TaskTemplate/Placement/Constraints/2"),
		"node.role==worker", "workers only: added after the profile's");
	json_decref(v);
	profiles_free(f.p);
}

static void
spec_refused(struct fixture *f, enum err_code code, const char *want)
{
	struct err e = { 0 };
	char *s = spec_build(&f->in, &e);

	T_OK(s == NULL && e.code == code, "spec refused: %s", want);
	T_STREQ(e.msg, want, "spec error message");
	free(s);
}

static void
test_spec_errors(void)
{
	struct fixture f;

	fixture_init(&f);
	f.cfg.home_mount = "nfs";
	spec_refused(&f, ERR_INVALID,
		     "HOME_MOUNT must be 'bind' or 'volume' (got 'nfs')");
	f.cfg.home_mount = "volume";
	spec_refused(&f, ERR_INVALID, "HOME_MOUNT=volume needs an nfs:// HOME");
	f.cfg.home_mount = NULL;
	f.cfg.network = NULL;
	spec_refused(&f, ERR_INVALID, "NETWORK is not set");
	f.cfg.network = "hubnet";
	f.req.token = "bad\xff";
	spec_refused(&f, ERR_INVALID, "cannot build the service spec of "
		     "'jupyter-alice' (a value is not valid UTF-8)");
	f.req.token = "t";
	f.in.home_source = NULL;
	spec_refused(&f, ERR_INVALID, "SHARED_DIR needs a HOME");
	f.in.home_source = "/srv/homes/alice";
	f.in.image = NULL;
	spec_refused(&f, ERR_INTERNAL, "incomplete service spec input");
	profiles_free(f.p);
}

static void
message(const char *state, const char *err, const struct spawn_opts *o,
	const char *want)
{
	char *m = spec_task_message(state, err, NULL, o);

	T_STREQ(m, want, "task message for '%s'", err);
	free(m);
}

static void
test_task_messages(void)
{
	struct spawn_opts o = { "ds", "scipy", 2, 8, 0, "" };
	struct spawn_opts one = { "ds", "scipy", 1, 64, 1, "" };
	char *m;

	message("rejected", "No such image: no/such-image:1", &o,
		"image 'no/such-image:1' not found on node");
	message("pending", "no suitable node (insufficient resources on 1 "
		"node)", &o, "no node has 2 CPUs and 8 GiB of memory free");
	message("pending", "no suitable node (insufficient resources on 3 "
		"nodes)", &one, "no node has 1 CPU, 64 GiB of memory and 1 GPU "
		"free");
	message("pending", "no suitable node (insufficient resources on 1 "
		"node)", NULL, "no node has the CPU or memory free that this "
		"server asks for");
	message("pending", "no suitable node (scheduling constraints not "
		"satisfied on 1 node)", &o, "no node matches the placement "
		"constraints of this profile");
	message("rejected", "invalid mount config for type \"bind\": bind "
		"source path does not exist: /srv/homes/alice", &o,
		"the home directory is missing on the node (/srv/homes/alice)");
	message("failed", "starting container failed: failed to create shim "
		"task: OCI runtime create failed: runc create failed: unable to "
		"start container process: exec: \"/no/such/binary\": stat "
		"/no/such/binary: no such file or directory: unknown", &o,
		"the image's command was not found: /no/such/binary");
	message("failed", "task: non-zero exit (3)", &o,
		"the server exited with code 3 (see its log)");
	message("failed", "starting container failed: error while mounting "
		"volume '/var/lib/docker/volumes/jupyter-alice-home/_data': "
		"failed to mount local volume: mount :/export/alice:/var/lib/"
		"docker/volumes/jupyter-alice-home/_data, data: addr=127.0.0.1,"
		"nfsvers=3: no such device", &o, "the node cannot mount NFS "
		"volumes (no NFS client): use HOME_MOUNT=bind");
	message("failed", "something new", &o, "task failed: something new");
	message("shutdown", "", &o, "task shutdown");
	m = spec_task_message("pending", NULL, "pending task scheduling", &o);
	T_STREQ(m, "task pending: pending task scheduling",
		"no Err: the Message");
	free(m);
	m = spec_task_message(NULL, NULL, NULL, NULL);
	T_STREQ(m, "task unknown", "all NULL is safe");
	free(m);
}

/* ---- container stats (usage.c) -------------------------------------- */
static const char stats_v2[] =
	"{\"read\": \"2026-11-23T10:00:30.250000000Z\","
	" \"preread\": \"0001-01-01T00:00:00Z\","
	" \"cpu_stats\": {\"cpu_usage\": {\"total_usage\": 7500000000,"
	"  \"usage_in_kernelmode\": 1, \"usage_in_usermode\": 2},"
	"  \"online_cpus\": 2},"
	" \"precpu_stats\": {\"cpu_usage\": {\"total_usage\": 0}},"
	" \"memory_stats\": {\"usage\": 52428800, \"limit\": 300000000,"
	"  \"stats\": {\"inactive_file\": 10485760, \"anon\": 30000000}}}";

static const char stats_v1[] =
	"{\"read\": \"2026-11-23T10:01:00.250+00:00\","
	" \"cpu_stats\": {\"cpu_usage\": {\"total_usage\": 22500000000}},"
	" \"memory_stats\": {\"usage\": 4000000,"
	"  \"stats\": {\"total_inactive_file\": 9000000}}}";

static void
test_usage(void)
{
	struct spawner_usage a = { 0 }, b = { 0 }, c = { 0 };
	struct err e = { 0 };

	T_OK(usage_parse(stats_v2, strlen(stats_v2), &a, &e) == 0,
	     "cgroup v2 stats parse: %s", e.msg);
	T_OK(a.cpu_ns == 7500000000LL, "CPU counter %lld",
	     (long long)a.cpu_ns);
	T_OK(a.mem_bytes == 52428800 - 10485760,
	     "page cache (inactive_file) is not counted: %lld",
	     (long long)a.mem_bytes);
	T_OK(a.mem_limit == 300000000, "limit %lld", (long long)a.mem_limit);
	T_OK(usage_parse(stats_v1, strlen(stats_v1), &b, &e) == 0,
	     "cgroup v1 stats parse: %s", e.msg);
	T_OK(b.mem_bytes == 0, "more cache than usage clamps to 0: %lld",
	     (long long)b.mem_bytes);
	T_OK(b.mem_limit == 0, "no limit: 0");
	T_OK(b.read_ms - a.read_ms == 30000, "sample times %lld",
	     (long long)(b.read_ms - a.read_ms));

	/* 15 s of CPU time in 30 s: half a CPU */
	strcpy(a.container, "c1");
	strcpy(b.container, "c1");
	T_OK(spawner_usage_cpu(&a, &b) > 0.4999 &&
	     spawner_usage_cpu(&a, &b) < 0.5001, "0.5 CPU: %f",
	     spawner_usage_cpu(&a, &b));
	T_OK(spawner_usage_cpu(NULL, &b) < 0, "one sample: unknown");
	T_OK(spawner_usage_cpu(&b, &a) < 0, "samples out of order: unknown");
	T_OK(spawner_usage_cpu(&b, &b) < 0, "same sample: unknown");
	strcpy(b.container, "c2");
	T_OK(spawner_usage_cpu(&a, &b) < 0, "another container: unknown");
	c = b;
	c.read_ms += 1000;
	c.cpu_ns -= 1;
	T_OK(spawner_usage_cpu(&b, &c) < 0, "a counter going back: unknown");

	/* what Docker must give */
	static const char *const bad[] = {
		"[]", "not json", "{}",
		"{\"read\": \"yesterday\", \"cpu_stats\": {\"cpu_usage\":"
		" {\"total_usage\": 1}}, \"memory_stats\": {\"usage\": 1}}",
		"{\"read\": \"0001-01-01T00:00:00Z\", \"cpu_stats\":"
		" {\"cpu_usage\": {\"total_usage\": 1}}, \"memory_stats\":"
		" {\"usage\": 1}}",
		"{\"read\": \"2026-11-23T10:00:00Z\", \"cpu_stats\": {},"
		" \"memory_stats\": {\"usage\": 1}}",
		"{\"read\": \"2026-11-23T10:00:00Z\", \"cpu_stats\":"
		" {\"cpu_usage\": {\"total_usage\": 1}}, \"memory_stats\": {}}",
		"{\"read\": \"2026-11-23T10:00:00Z\", \"cpu_stats\":"
		" {\"cpu_usage\": {\"total_usage\": -5}}, \"memory_stats\":"
		" {\"usage\": 1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct spawner_usage u = { 0 };
		struct err be = { 0 };

		T_OK(usage_parse(bad[i], strlen(bad[i]), &u, &be) < 0 &&
		     be.code == ERR_UPSTREAM && strstr(be.msg, "Docker"),
		     "rejected with a message: %s", bad[i]);
	}
}

/* HOME_UID=ldap: the user's own uid:gid, group 100 kept, HOME the mount. */
/* kind singleuser: the JUPYTERHUB_* environment of JupyterHub 3.0's
 * Spawner.get_env, and no JUPYTER_TOKEN. */
static void
test_spec_singleuser(void)
{
	struct fixture f;
	struct err e = { 0 };
	char *s;
	json_t *v;

	fixture_init(&f);
	f.in.image = profiles_image(f.p, "hubsu");
	f.in.profile = profiles_get(f.p, "default");
	f.req.user = "a.b@c";
	f.req.base_url = "/user/a.b@c/";
	f.req.hub_api_url = "http://hub:8000/hub/api";
	f.req.oauth_client_id = "jupyterhub-user-a.b%40c";
	s = spec_build(&f.in, &e);
	T_OK(s != NULL, "singleuser spec builds (%s)", e.msg);
	v = json_loads(s ? s : "{}", 0, NULL);
	T_OK(!env_has_prefix(v, "JUPYTER_TOKEN="), "no JUPYTER_TOKEN");
	T_OK(has_env(v, "JUPYTERHUB_API_TOKEN=tok-alice-123"), "API token");
	T_OK(has_env(v, "JPY_API_TOKEN=tok-alice-123"), "JPY_API_TOKEN");
	T_OK(has_env(v, "JUPYTERHUB_API_URL=http://hub:8000/hub/api"),
	     "API URL");
	T_OK(has_env(v, "JUPYTERHUB_ACTIVITY_URL=http://hub:8000/hub/api/"
		     "users/a.b%40c/activity"), "activity URL, name escaped");
	T_OK(has_env(v, "JUPYTERHUB_CLIENT_ID=jupyterhub-user-a.b%40c"),
	     "client id");
	T_OK(has_env(v, "JUPYTERHUB_HOST="), "host: same origin");
	T_OK(has_env(v, "JUPYTERHUB_OAUTH_CALLBACK_URL=/user/a.b@c/"
		     "oauth_callback"), "callback URL");
	T_OK(has_env(v, "JUPYTERHUB_OAUTH_ACCESS_SCOPES=[\"access:servers!"
		     "server=a.b@c/\",\"access:servers!user=a.b@c\"]"),
	     "access scopes");
	T_OK(has_env(v, "JUPYTERHUB_OAUTH_SCOPES=[\"access:servers!"
		     "server=a.b@c/\",\"access:servers!user=a.b@c\"]"),
	     "scopes (before 3.0)");
	T_OK(env_has_prefix(v, "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES=["),
	     "client allowed scopes");
	T_OK(has_env(v, "JUPYTERHUB_SERVICE_URL=http://0.0.0.0:8888/user/"
		     "a.b@c/"), "service URL");
	T_OK(has_env(v, "JUPYTERHUB_SERVICE_PREFIX=/user/a.b@c/"), "prefix");
	T_OK(has_env(v, "JUPYTERHUB_BASE_URL=/"), "base URL");
	T_OK(has_env(v, "JUPYTERHUB_USER=a.b@c"), "user");
	T_OK(has_env(v, "JUPYTERHUB_SERVER_NAME="), "server name");
	T_OK(has_env(v, "JUPYTERHUB_DEFAULT_URL=/tree"), "default URL");
	T_OK(has_env(v, "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED=0"),
	     "no __Host- cookies (4.1+)");
	json_decref(v);
	free(s);
	profiles_free(f.p);
}

static void
test_spec_own_ids(void)
{
	struct fixture f;
	json_t *v, *cs;

	fixture_init(&f);
	v = build(&f);
	cs = at(v, "TaskTemplate/ContainerSpec");
	T_OK(at(cs, "Groups") == NULL, "default: no supplementary Groups");
	json_decref(v);

	f.req.own_ids = 1;
	f.req.uid = 20001;
	f.req.gid = 20002;
	v = build(&f);
	cs = at(v, "TaskTemplate/ContainerSpec");
	T_STREQ(s_at(cs, "User"), "20001:20002", "own ids: User uid:gid");
	T_OK(json_array_size(at(cs, "Groups")) == 1, "own ids: one group");
	T_STREQ(s_at(cs, "Groups/0"), "100", "own ids: group 100 kept");
	T_OK(has_env(v, "HOME=/home/jovyan/work"),
	     "own ids: HOME is the mounted home");
	json_decref(v);

	f.cfg.home_gid = 4000;
	f.cfg.home_target = "/home/user";
	f.req.gid = 4000;
	v = build(&f);
	cs = at(v, "TaskTemplate/ContainerSpec");
	T_STREQ(s_at(cs, "User"), "20001:4000", "own ids: the common gid");
	T_STREQ(s_at(cs, "Groups/0"), "4000", "own ids: numeric HOME_GID "
		"as the supplementary group");
	T_OK(has_env(v, "HOME=/home/user"), "own ids: HOME follows "
	     "HOME_TARGET");
	json_decref(v);
	profiles_free(f.p);
}

static void
test_expand(void)
{
	char out[32];

	T_OK(spawner_expand("token {token}", "/user/a/", "a", "t0k", out,
			    sizeof(out)) == 0, "expand: fits");
	T_STREQ(out, "token t0k", "{token}");
	T_OK(spawner_expand("{base_url}|{user}|{port}|{x", "/user/a/", "a",
			    "t", out, sizeof(out)) == 0, "expand: fits 2");
	T_STREQ(out, "/user/a/|a|{port}|{x", "{base_url} {user}, others kept");
	T_OK(spawner_expand("{token}{token}", "/", "a", "0123456789abcdef",
			    out, sizeof(out)) == -1,
	     "expand: 32 bytes do not fit in 32");
	T_OK(spawner_expand("{token}{token}", "/", "a", "0123456789abcde",
			    out, sizeof(out)) == 0, "expand: 30 bytes fit");
}

/* SERVICE_NAME_TEMPLATE with and without {server}. */
static void
test_service_names(void)
{
	static const struct { const char *t, *user, *server, *want; } rows[] = {
		{ "jupyter-{user}", "alice", "", "jupyter-alice" },
		{ "jupyter-{user}", "alice", NULL, "jupyter-alice" },
		{ "jupyter-{user}", "alice", "gpu", "jupyter-alice-gpu" },
		{ "jupyter-{user}", "a.b", "proj.1", "jupyter-a-2eb-proj-2e1" },
		{ "jupyter-{user}-{server}", "alice", "", "jupyter-alice" },
		{ "jupyter-{user}-{server}", "alice", "gpu",
		  "jupyter-alice-gpu" },
		{ "lab_{server}_{user}", "bob", "", "lab_bob" },
		{ "lab_{server}_{user}", "bob", "x", "lab_x_bob" },
		{ "nb-{user}.{server}-hub2", "bob", "", "nb-bob-hub2" },
		{ "nb-{user}.{server}-hub2", "bob", "cpu", "nb-bob.cpu-hub2" },
	};
	char *s, *long_user = NULL;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		s = spec_service_name(rows[i].t, rows[i].user, rows[i].server);
		T_STREQ(s, rows[i].want, "template '%s' user '%s' server '%s'",
			rows[i].t, rows[i].user, rows[i].server ?
			rows[i].server : "(null)");
		free(s);
	}
	long_user = xasprintf("%.60s", "abcdefghijklmnopqrstuvwxyzabcdefghijklm"
			      "nopqrstuvwxyzabcdefghijklmnop");
	s = spec_service_name("jupyter-{user}", long_user, "gpu");
	T_OK(strlen(s) == 63 && strncmp(s, "jupyter-abcdefg", 15) == 0,
	     "a long name is cut to 63 with a hash (%s)", s);
	{
		char *d = spec_service_name("jupyter-{user}", long_user, "");
		char *o = spec_service_name("jupyter-{user}", long_user, "gpx");

		T_OK(strcmp(s, d) != 0 && strcmp(s, o) != 0,
		     "cut names of different servers differ");
		free(d);
		free(o);
	}
	free(s);
	free(long_user);
}

int
main(void)
{
	test_escape();
	test_expand();
	test_service_names();
	test_spec_bind();
	test_spec_variants();
	test_spec_own_ids();
	test_spec_singleuser();
	test_spec_volume();
	test_spec_errors();
	test_spec_no_home();
	test_spec_workers_only();
	test_task_messages();
	test_usage();
	return t_done();
}
