/*
 * test_profiles.c - the profiles file: every validation rule and its
 * message, defaults, the choice of profile by group order, user options,
 * quotas at the edge, the form's JSON. No network.
 */
#include <jansson.h>
#include "../../spawner/internal.h"
#include "../lib/t.h"

/* JSON written with ' for " so the tests stay readable (heap string). */
static char *
q(const char *s)
{
	char *r = xstrdup(s), *p;

	for (p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static const char base[] =
	"{'cpu_reservation_ratio': 0.5,"
	" 'images': {"
	"  'scipy': {'image': 'jupyter/scipy:1', 'description': 'SciPy',"
	"            'cmd': ['start.py', '--base={base_url}'], 'port': 9999,"
	"            'env': {'A': '1', 'B': 'two'}},"
	"  'r': {'image': 'jupyter/r:1'},"
	"  'tiny': {'image': 'local/nb:1'}},"
	" 'profiles': {"
	"  'default': {'images': ['tiny', 'scipy'],"
	"              'cpu': {'min': 0.5, 'max': 2, 'default': 1},"
	"              'mem_gb': {'min': 1, 'max': 4, 'default': 2},"
	"              'quota': {'servers': 2, 'cpu': 4, 'mem_gb': 8}},"
	"  'ds': {'images': ['scipy', 'r'],"
	"         'cpu': {'min': 1, 'max': 8, 'default': 2},"
	"         'mem_gb': {'min': 2, 'max': 64},"
	"         'gpus': 2, 'constraints': ['node.labels.pool==ds'],"
	"         'quota': {'servers': 10, 'cpu': 40, 'mem_gb': 256, 'gpus': 2},"
	"         'cull_timeout': 7200},"
	"  'bio': {'images': ['r'],"
	"          'cpu': {'min': 1, 'max': 1},"
	"          'mem_gb': {'min': 1, 'max': 1}}}}";

static struct profiles *
parse(const char *json)
{
	struct profiles *p = NULL;
	struct err e = { 0 };
	char *s = q(json);

	if (profiles_parse(s, strlen(s), &p, &e) < 0)
		fprintf(stderr, "parse failed: %s\n", e.msg);
	free(s);
	return p;
}

/* json parses. */
static int
parse_ok(const char *json)
{
	struct profiles *p = parse(json);
	int ok = p != NULL;

	profiles_free(p);
	return ok;
}

/* Parsing json fails with ERR_INVALID and exactly want. */
static void
refused(const char *json, const char *want)
{
	struct profiles *p = (struct profiles *)1;
	struct err e = { 0 };
	char *s = q(json);
	int rc = profiles_parse(s, strlen(s), &p, &e);

	T_OK(rc == -1 && e.code == ERR_INVALID && p == NULL,
	     "refused: %s", want);
	T_STREQ(e.msg, want, "message for %s", json);
	free(s);
}

#define IMG "'images': {'a': {'image': 'x'}}"
#define RNG "'cpu': {'min': 1, 'max': 2}, 'mem_gb': {'min': 1, 'max': 2}"
#define PROF(body) "{" IMG ", 'profiles': {'p': {" body "}}}"

static void
test_validation(void)
{
	refused("[1]", "profiles file: must be a JSON object");
	refused("{", "profiles: line 1 column 1: string or '}' expected "
		"near end of file");
	refused("{" IMG ", 'profiles': {}, 'extra': 1}",
		"extra: unknown key");
	refused("{'profiles': {}}", "images: missing");
	refused("{'images': [], 'profiles': {}}", "images: must be an object");
	refused("{" IMG "}", "profiles: missing");
	refused("{" IMG ", 'profiles': {}}",
		"profiles: must hold at least one profile");
	refused("{'cpu_reservation_ratio': 'x', " IMG "}",
		"cpu_reservation_ratio: must be a number");
	refused("{'cpu_reservation_ratio': 1.5, " IMG "}",
		"cpu_reservation_ratio: must be between 0 and 1");
	refused("{'cpu_reservation_ratio': -0.1, " IMG "}",
		"cpu_reservation_ratio: must not be negative");

	/* images */
	refused("{'images': {'a': {'image': 'x', 'cmdd': []}}}",
		"images.a.cmdd: unknown key");
	refused("{'images': {'a': {}}}", "images.a.image: missing");
	refused("{'images': {'a': {'image': 3}}}",
		"images.a.image: must be a non-empty string");
	refused("{'images': {'a': {'image': ''}}}",
		"images.a.image: must be a non-empty string");
	refused("{'images': {'a': 'x'}}", "images.a: must be an object");
	refused("{'images': {'a': {'image': 'x', 'description': 1}}}",
		"images.a.description: must be a string");
	refused("{'images': {'a': {'image': 'x', 'cmd': 'start.sh'}}}",
		"images.a.cmd: must be an array of strings");
	refused("{'images': {'a': {'image': 'x', 'cmd': ['a', 2]}}}",
		"images.a.cmd[1]: must be a string");
	refused("{'images': {'a': {'image': 'x', 'port': '80'}}}",
		"images.a.port: must be an integer");
	refused("{'images': {'a': {'image': 'x', 'port': 0}}}",
		"images.a.port: must be between 1 and 65535");
	refused("{'images': {'a': {'image': 'x', 'port': 70000}}}",
		"images.a.port: must be between 1 and 65535");
	refused("{'images': {'a': {'image': 'x', 'env': ['A=1']}}}",
		"images.a.env: must be an object of strings");
	refused("{'images': {'a': {'image': 'x', 'env': {'A': 1}}}}",
		"images.a.env.A: must be a string");
	refused("{'images': {'a': {'image': 'x', 'env': {'JUPYTER_TOKEN': "
		"'t'}}}}", "images.a.env.JUPYTER_TOKEN: is set by the hub");
	refused("{'images': {'a': {'image': 'x', 'env': "
		"{'JUPYTERHUB_API_URL': 'http://x'}}}}",
		"images.a.env.JUPYTERHUB_API_URL: is set by the hub");
	refused("{'images': {'a': {'image': 'x', 'env': {'A=B': 'c'}}}}",
		"images.a.env.A=B: not a valid variable name");
	refused("{'images': {'a-very-long-key-of-sixty-four-characters-"
		"xxxxxxxxxxxxxxxxxxxxxxxxx': {'image': 'x'}}}",
		"images.a-very-long-key-of-sixty-four-characters-"
		"xxxxxxxxxxxxxxxxxxxxxxxxx: key longer than 63 characters");

	/* profiles */
	refused(PROF("'images': ['a'], " RNG ", 'cpus': 1"),
		"profiles.p.cpus: unknown key");
	refused("{" IMG ", 'profiles': {'datascience': {'images': ['a'], "
		RNG ", 'cpus': 4}}}", "profiles.datascience.cpus: unknown key");
	refused("{" IMG ", 'profiles': {'p': []}}",
		"profiles.p: must be an object");
	refused(PROF(RNG), "profiles.p.images: missing");
	refused(PROF("'images': [], " RNG),
		"profiles.p.images: must name at least one image");
	refused(PROF("'images': 'a', " RNG),
		"profiles.p.images: must be an array of strings");
	refused(PROF("'images': ['a', 'b'], " RNG),
		"profiles.p.images[1]: unknown image 'b'");
	refused(PROF("'images': ['a'], 'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu: missing");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1, 'max': 2}"),
		"profiles.p.mem_gb: missing");
	refused(PROF("'images': ['a'], 'cpu': 2, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu: must be an object");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1, 'max': '2'}, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.max: must be a number");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1}, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.max: missing");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1, 'max': 2, 'def': 1},"
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.def: unknown key");
	refused(PROF("'images': ['a'], 'cpu': {'min': 4, 'max': 2}, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu: min (4) is greater than max (2)");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1, 'max': 2}, "
		     "'mem_gb': {'min': 1, 'max': 2, 'default': 3}"),
		"profiles.p.mem_gb.default: must be between 1 and 2 (got 3)");
	refused(PROF("'images': ['a'], 'cpu': {'min': 1, 'max': 2, "
		     "'default': 0.5}, 'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.default: must be between 1 and 2 (got 0.5)");
	refused(PROF("'images': ['a'], 'cpu': {'min': -1, 'max': 2}, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.min: must not be negative");
	refused(PROF("'images': ['a'], 'cpu': {'min': 0, 'max': 2}, "
		     "'mem_gb': {'min': 1, 'max': 2}"),
		"profiles.p.cpu.min: must be greater than 0");
	refused(PROF("'images': ['a'], " RNG ", 'gpus': 1.5"),
		"profiles.p.gpus: must be an integer");
	refused(PROF("'images': ['a'], " RNG ", 'gpus': -1"),
		"profiles.p.gpus: must be between 0 and 1000000000");
	refused(PROF("'images': ['a'], " RNG ", 'constraints': 'x'"),
		"profiles.p.constraints: must be an array of strings");
	refused(PROF("'images': ['a'], " RNG ", 'constraints': [1]"),
		"profiles.p.constraints[0]: must be a string");
	refused(PROF("'images': ['a'], " RNG ", 'quota': 5"),
		"profiles.p.quota: must be an object");
	refused(PROF("'images': ['a'], " RNG ", 'quota': {'cpus': 5}"),
		"profiles.p.quota.cpus: unknown key");
	refused(PROF("'images': ['a'], " RNG ", 'quota': {'cpu': -5}"),
		"profiles.p.quota.cpu: must not be negative");
	refused(PROF("'images': ['a'], " RNG ", 'quota': {'servers': 1.5}"),
		"profiles.p.quota.servers: must be an integer");
	refused(PROF("'images': ['a'], " RNG ", 'quota': {'mem_gb': 'x'}"),
		"profiles.p.quota.mem_gb: must be a number");
	refused(PROF("'images': ['a'], " RNG ", 'quota': {'gpus': -2}"),
		"profiles.p.quota.gpus: must be between 0 and 1000000000");
	refused(PROF("'images': ['a'], " RNG ", 'cull_timeout': '1h'"),
		"profiles.p.cull_timeout: must be an integer");
	refused("{" IMG ", 'profiles': {'': {'images': ['a'], " RNG "}}}",
		"profiles.: name must have 1 to 63 characters");
	refused("{" IMG ", 'profiles': {'p': {'images': ['a'], " RNG "}, "
		"'p': {'images': ['a'], " RNG "}}}",
		"profiles: line 1 column 135: duplicate object key near "
		"'\"p\"'");
}

static void
test_defaults(void)
{
	struct profiles *p = parse(base), *p2;
	const struct profile_def *pd;
	const struct image_def *im;

	T_OK(p != NULL, "the sample parses");
	if (!p)
		return;
	T_OK(p->cpu_reservation_ratio == 0.5, "ratio read");
	T_OK(p->nimages == 3 && p->nprofiles == 3, "3 images, 3 profiles");
	im = profiles_image(p, "scipy");
	T_OK(im && im->port == 9999 && im->ncmd == 2 && im->nenv == 2,
	     "scipy image fields");
	T_STREQ(im ? im->cmd[1] : NULL, "--base={base_url}", "cmd kept as is");
	T_OK(im && im->cmd[2] == NULL && im->env[2] == NULL,
	     "cmd and env NULL-terminated");
	T_STREQ(im ? im->env[1] : NULL, "B=two", "env as K=V");
	im = profiles_image(p, "r");
	T_OK(im && im->port == 8888 && im->ncmd == 0 && im->nenv == 0 &&
	     im->cmd && im->cmd[0] == NULL, "port 8888, no cmd by default");
	T_STREQ(im ? im->description : NULL, "", "description defaults to \"\"");
	T_OK(profiles_image(p, "nope") == NULL, "unknown image: NULL");
	pd = profiles_get(p, "ds");
	T_OK(pd && pd->mem_gb.def == 2 && pd->cpu.def == 2,
	     "range default = min when absent");
	T_OK(pd && pd->gpus == 2 && pd->nconstraints == 1 &&
	     pd->cull_timeout_s == 7200 && pd->quota.gpus == 2,
	     "ds profile fields");
	pd = profiles_get(p, "bio");
	T_OK(pd && pd->gpus == 0 && pd->nconstraints == 0 &&
	     pd->constraints && pd->constraints[0] == NULL &&
	     pd->cull_timeout_s == 0, "gpus 0, no constraints by default");
	T_OK(pd && pd->quota.servers == -1 && pd->quota.cpu < 0 &&
	     pd->quota.mem_gb < 0 && pd->quota.gpus == -1,
	     "no quota: every limit off");
	pd = profiles_get(p, "default");
	T_OK(pd && pd->quota.gpus == -1 && pd->quota.servers == 2,
	     "absent quota key: no limit");
	T_OK(profiles_get(p, "nope") == NULL, "unknown profile: NULL");
	profiles_free(p);

	p2 = parse("{" IMG ", 'profiles': {'p': {'images': ['a'], " RNG "}}}");
	T_OK(p2 && p2->cpu_reservation_ratio == 1.0,
	     "ratio defaults to 1.0; a file without default is valid");
	profiles_free(p2);
	profiles_free(NULL);
}

static void
test_load(void)
{
	struct profiles *p = NULL;
	struct err e = { 0 };

	T_OK(profiles_load("compose/profiles.example.json", &p, &e) == 0,
	     "the example file loads: %s", e.msg);
	T_OK(p && profiles_get(p, "gpu-lab") && profiles_get(p, "default"),
	     "example profiles present");
	profiles_free(p);
	p = (struct profiles *)1;
	T_OK(profiles_load("/nonexistent/p.json", &p, &e) == -1 &&
	     e.code == ERR_INVALID && p == NULL, "missing file refused");
	T_STREQ(e.msg, "cannot read profiles file '/nonexistent/p.json': "
		"No such file or directory", "missing file message");
}

/* Options text (with ' for ") for groups; returns rc, fills o and e. */
static int
opts(const struct profiles *p, const char *const *groups, size_t n,
     const char *json, struct spawn_opts *o, struct err *e)
{
	char *s = json ? q(json) : NULL;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = profiles_options(p, groups, n, s, o, e);
	free(s);
	return rc;
}

static void
opt_refused(const struct profiles *p, const char *const *groups, size_t n,
	    const char *json, enum err_code code, const char *want)
{
	struct spawn_opts o;
	struct err e;

	T_OK(opts(p, groups, n, json, &o, &e) == -1 && e.code == code,
	     "refused (%s): %s", err_code_name(code), want);
	T_STREQ(e.msg, want, "message for %s", json ? json : "(null)");
}

static void
test_options(void)
{
	struct profiles *p = parse(base), *nodef;
	const char *ds[] = { "ds" }, *two[] = { "staff", "bio", "ds" };
	struct spawn_opts o;
	struct err e;

	T_OK(opts(p, NULL, 0, NULL, &o, &e) == 0, "no options: ok");
	T_OK(strcmp(o.profile, "default") == 0 && strcmp(o.image, "tiny") == 0
	     && o.cpu == 1 && o.mem_gb == 2 && o.gpus == 0,
	     "defaults from the default profile, its first image");
	T_OK(opts(p, NULL, 0, "", &o, &e) == 0 && !strcmp(o.profile,
	     "default"), "empty text: no options");
	T_OK(opts(p, ds, 1, "{}", &o, &e) == 0 && !strcmp(o.profile, "ds") &&
	     !strcmp(o.image, "scipy") && o.cpu == 2 && o.mem_gb == 2,
	     "group profile chosen before default");
	T_OK(opts(p, two, 3, NULL, &o, &e) == 0 && !strcmp(o.profile, "bio"),
	     "first group with a profile, in the order given");
	T_OK(opts(p, two, 3, "{'profile': 'default'}", &o, &e) == 0 &&
	     !strcmp(o.profile, "default"), "default named explicitly");
	T_OK(opts(p, ds, 1, "{'profile': 'ds', 'image': 'r', 'cpu': 8, "
		  "'mem_gb': 64, 'gpus': 2}", &o, &e) == 0 && o.cpu == 8 &&
	     o.mem_gb == 64 && o.gpus == 2 && !strcmp(o.image, "r"),
	     "maximum values accepted: %s", e.msg);
	T_OK(opts(p, ds, 1, "{'profile': 'ds', 'cpu': 1, 'mem_gb': 2, "
		  "'gpus': 0}", &o, &e) == 0 && o.cpu == 1 && o.mem_gb == 2,
	     "minimum values accepted");
	T_OK(opts(p, ds, 1, "{'profile': null, 'image': null, 'cpu': null}",
		  &o, &e) == 0 && !strcmp(o.profile, "ds"), "null: absent");
	T_OK(opts(p, ds, 1, "{'gpus': 1.0}", &o, &e) == 0 && o.gpus == 1,
	     "gpus 1.0 is a whole number");

	opt_refused(p, NULL, 0, "{'profile': 'ds'}", ERR_FORBIDDEN,
		    "profile 'ds' is not available to you");
	opt_refused(p, ds, 1, "{'profile': 'bio'}", ERR_FORBIDDEN,
		    "profile 'bio' is not available to you");
	opt_refused(p, ds, 1, "{'profile': 'nope'}", ERR_INVALID,
		    "unknown profile 'nope'");
	opt_refused(p, NULL, 0, "{'cpus': 1}", ERR_INVALID,
		    "unknown option 'cpus'");
	opt_refused(p, NULL, 0, "[1]", ERR_INVALID,
		    "options must be a JSON object");
	opt_refused(p, NULL, 0, "{", ERR_INVALID, "options are not valid "
		    "JSON: string or '}' expected near end of file");
	opt_refused(p, NULL, 0, "{'profile': 3}", ERR_INVALID,
		    "option 'profile' must be a string");
	opt_refused(p, NULL, 0, "{'image': ['tiny']}", ERR_INVALID,
		    "option 'image' must be a string");
	opt_refused(p, NULL, 0, "{'cpu': '2'}", ERR_INVALID,
		    "option 'cpu' must be a number");
	opt_refused(p, NULL, 0, "{'mem_gb': true}", ERR_INVALID,
		    "option 'mem_gb' must be a number");
	opt_refused(p, ds, 1, "{'gpus': 'one'}", ERR_INVALID,
		    "option 'gpus' must be an integer");
	opt_refused(p, ds, 1, "{'gpus': 1.5}", ERR_INVALID,
		    "option 'gpus' must be an integer");
	opt_refused(p, NULL, 0, "{'image': 'r'}", ERR_INVALID,
		    "image 'r' is not available in profile 'default' "
		    "(choose one of: tiny, scipy)");
	opt_refused(p, NULL, 0, "{'cpu': 8}", ERR_INVALID,
		    "cpu must be between 0.5 and 2 (got 8)");
	opt_refused(p, NULL, 0, "{'cpu': 0.25}", ERR_INVALID,
		    "cpu must be between 0.5 and 2 (got 0.25)");
	opt_refused(p, NULL, 0, "{'cpu': -1}", ERR_INVALID,
		    "cpu must be between 0.5 and 2 (got -1)");
	opt_refused(p, NULL, 0, "{'mem_gb': 4.5}", ERR_INVALID,
		    "mem_gb must be between 1 and 4 (got 4.5)");
	opt_refused(p, ds, 1, "{'gpus': 3}", ERR_INVALID,
		    "gpus must be between 0 and 2 (got 3)");
	opt_refused(p, ds, 1, "{'gpus': -1}", ERR_INVALID,
		    "gpus must be between 0 and 2 (got -1)");
	opt_refused(p, NULL, 0, "{'gpus': 1}", ERR_INVALID,
		    "profile 'default' offers no GPUs (got 1)");
	T_OK(opts(p, NULL, 0, "{'cpu': 8}", &o, &e) == -1 && o.profile[0] == 0,
	     "on failure the options are cleared");

	nodef = parse("{" IMG ", 'profiles': {'p': {'images': ['a'], "
		      RNG "}}}");
	opt_refused(nodef, ds, 1, NULL, ERR_FORBIDDEN,
		    "no profile is available to you");
	opt_refused(nodef, ds, 1, "{'profile': 'default'}", ERR_INVALID,
		    "unknown profile 'default'");
	profiles_free(nodef);
	profiles_free(p);
}

static void
test_options_json(void)
{
	struct spawn_opts o = { "ds", "scipy", 2.5, 8, 1, "" };
	char *s = spawner_options_json(&o);

	T_STREQ(s, "{\"profile\":\"ds\",\"image\":\"scipy\",\"cpu\":2.5,"
		"\"mem_gb\":8,\"gpus\":1}", "stored user_options");
	free(s);
	o.cpu = 0.1;
	s = spawner_options_json(&o);
	T_OK(s && strstr(s, "\"cpu\":0.1,"), "0.1 printed as 0.1: %s", s);
	free(s);
	snprintf(o.pool, sizeof(o.pool), "gpu");
	s = spawner_options_json(&o);
	T_OK(s && strstr(s, ",\"gpus\":1,\"pool\":\"gpu\"}"),
	     "a chosen pool is stored: %s", s);
	free(s);
}


static struct spawn_opts
mk(const char *profile, double cpu, double mem, int gpus)
{
	struct spawn_opts o;

	memset(&o, 0, sizeof(o));
	snprintf(o.profile, sizeof(o.profile), "%s", profile);
	snprintf(o.image, sizeof(o.image), "scipy");
	o.cpu = cpu;
	o.mem_gb = mem;
	o.gpus = gpus;
	return o;
}

static void
quota_refused(const struct profiles *p, struct spawn_opts o,
	      const struct spawn_opts *use, size_t n, const char *want)
{
	struct err e = { 0 };

	T_OK(profiles_quota_check(p, &o, use, n, &e) == -1 &&
	     e.code == ERR_TOOMANY, "quota refused: %s", want);
	T_STREQ(e.msg, want, "quota message");
}

static void
test_quota(void)
{
	struct profiles *p = parse(base);
	struct spawn_opts use[12], o;
	struct err e = { 0 };
	size_t i;

	/* default: servers 2, cpu 4, mem_gb 8, no gpu quota */
	use[0] = mk("default", 2, 3, 0);
	T_OK(profiles_quota_check(p, (o = mk("default", 2, 5, 0), &o), use, 1,
				  &e) == 0, "exactly at cpu and memory quota");
	T_OK(profiles_quota_check(p, &o, NULL, 0, &e) == 0, "nothing in use");
	quota_refused(p, mk("default", 2.5, 1, 0), use, 1,
		      "your group's quota of 4 CPUs is in use (2 used, 2.5 "
		      "asked)");
	quota_refused(p, mk("default", 1, 6, 0), use, 1,
		      "your group's quota of 8 GiB of memory is in use (3 used, "
		      "6 asked)");
	use[1] = mk("default", 0.5, 1, 0);
	quota_refused(p, mk("default", 0.5, 1, 0), use, 2,
		      "your group's quota of 2 servers is in use (2 used)");

	/* ds: servers 10, cpu 40, mem 256, gpus 2 */
	for (i = 0; i < 9; i++)
		use[i] = mk("ds", 4, 8, i < 1 ? 1 : 0);
	T_OK(profiles_quota_check(p, (o = mk("ds", 4, 8, 1), &o), use, 9,
				  &e) == 0, "10th server, 40 CPUs, 2 GPUs: ok");
	quota_refused(p, mk("ds", 4.5, 8, 0), use, 9,
		      "your group's quota of 40 CPUs is in use (36 used, 4.5 "
		      "asked)");
	quota_refused(p, mk("ds", 1, 2, 2), use, 9,
		      "your group's quota of 2 GPUs is in use (1 used, 2 "
		      "asked)");
	use[9] = mk("ds", 1, 1, 0);
	quota_refused(p, mk("ds", 1, 2, 0), use, 10,
		      "your group's quota of 10 servers is in use (10 used)");
	for (i = 0; i < 9; i++)
		use[i] = mk("ds", 1, 28, 0);
	quota_refused(p, mk("ds", 1, 5, 0), use, 9,
		      "your group's quota of 256 GiB of memory is in use (252 "
		      "used, 5 asked)");
	T_OK(profiles_quota_check(p, (o = mk("ds", 1, 4, 0), &o), use, 9, &e)
	     == 0, "exactly 256 GiB: ok");

	/* servers adopted from before mem_gb meant GiB count by their bytes:
	 * nine started as "29 GB" (29e9 bytes, 27.008 GiB each) use 243.08
	 * GiB of 256, where counting "29" would leave no room for 12 */
	for (i = 0; i < 9; i++)
		use[i] = mk("ds", 1, 29e9 / SPAWNER_GIB, 0);
	T_OK(profiles_quota_check(p, (o = mk("ds", 1, 12, 0), &o), use, 9,
				  &e) == 0, "adopted 10^9-byte servers: 12 GiB "
	     "more fit");
	quota_refused(p, mk("ds", 1, 13, 0), use, 9,
		      "your group's quota of 256 GiB of memory is in use "
		      "(243.075 used, 13 asked)");

	/* bio: no quota at all */
	for (i = 0; i < 12; i++)
		use[i] = mk("bio", 100, 100, 4);
	T_OK(profiles_quota_check(p, (o = mk("bio", 1, 1, 0), &o), use, 12,
				  &e) == 0, "no quota: always ok");
	o = mk("nope", 1, 1, 0);
	T_OK(profiles_quota_check(p, &o, NULL, 0, &e) == -1 &&
	     e.code == ERR_INVALID, "unknown profile refused");
	profiles_free(p);
}

static void
test_profiles_json(void)
{
	struct profiles *p = parse(base);
	const char *groups[] = { "bio", "nogroup", "ds", "bio" };
	json_t *v, *list, *ds, *img;
	char *s = profiles_json(p, groups, 4);

	v = json_loads(s, 0, NULL);
	list = json_object_get(v, "profiles");
	T_OK(json_array_size(list) == 3, "three allowed profiles: %s", s);
	T_STREQ(json_string_value(json_object_get(v, "default_profile")),
		"bio", "default_profile is the first group's");
	T_STREQ(json_string_value(json_object_get(json_array_get(list, 0),
						   "name")), "bio", "bio first");
	T_STREQ(json_string_value(json_object_get(json_array_get(list, 2),
						   "name")), "default",
		"default last");
	ds = json_array_get(list, 1);
	img = json_array_get(json_object_get(ds, "images"), 0);
	T_STREQ(json_string_value(json_object_get(img, "key")), "scipy",
		"image key");
	T_STREQ(json_string_value(json_object_get(img, "description")),
		"SciPy", "image description");
	T_STREQ(json_string_value(json_object_get(img, "kind")), "jupyter",
		"image kind (default jupyter)");
	T_OK(json_number_value(json_object_get(json_object_get(ds, "cpu"),
					       "max")) == 8, "cpu range");
	T_OK(json_integer_value(json_object_get(ds, "gpus")) == 2, "gpus");
	T_OK(json_number_value(json_object_get(json_object_get(ds, "quota"),
					       "cpu")) == 40, "quota cpu");
	T_OK(json_object_size(json_object_get(json_array_get(list, 0),
					      "quota")) == 0,
	     "no quota: empty object");
	json_decref(v);
	free(s);

	s = profiles_json(p, NULL, 0);
	v = json_loads(s, 0, NULL);
	T_OK(json_array_size(json_object_get(v, "profiles")) == 1,
	     "no groups: only default");
	json_decref(v);
	free(s);
	profiles_free(p);
	p = parse("{" IMG ", 'profiles': {'p': {'images': ['a'], " RNG "}}}");
	s = profiles_json(p, NULL, 0);
	T_STREQ(s, "{\"default_profile\":null,\"profiles\":[]}",
		"nothing allowed");
	free(s);
	profiles_free(p);
}

/* kind "web": a credential the app checks, or trust_network said out loud */
#define WEB(keys) "{'images': {'w': {'image': 'x', 'kind': 'web'" keys "}}, " \
	"'profiles': {'p': {'images': ['w'], " RNG "}}}"

static void
accepted_web(const char *json, const char *what, int strip, int trust)
{
	struct profiles *p = parse(json);
	const struct image_def *im = p ? profiles_image(p, "w") : NULL;

	T_OK(im != NULL, "web image accepted: %s", what);
	if (im) {
		T_OK(im->info.kind == SPAWNER_KIND_WEB, "kind web: %s", what);
		T_OK(im->info.strip_prefix == strip, "prefix: %s", what);
		T_OK(im->info.trust_network == trust, "trust_network: %s",
		     what);
	}
	profiles_free(p);
}

static void
test_web_credential(void)
{
	static const char want[] = "images.w: an image of kind \"web\" must "
	    "either pass the app a credential it checks ('{token}' in an "
	    "\"env\" or \"headers\" value) or say \"trust_network\": true "
	    "(see compose/profiles.md)";

	refused(WEB(""), want);
	refused(WEB(", 'trust_network': false"), want);
	refused(WEB(", 'headers': {'X-Root': '{base_url}'}, "
		    "'env': {'T': 'token'}"), want);
	refused(WEB(", 'env': {'{token}': 'x'}"), want);
	accepted_web(WEB(", 'trust_network': true, 'prefix': 'strip'"),
		     "trust_network", 1, 1);
	accepted_web(WEB(", 'headers': {'Authorization': 'token {token}'}"),
		     "{token} in a header", 0, 0);
	accepted_web(WEB(", 'env': {'PASSWORD': '{token}'}, "
			 "'prefix': 'keep'"), "{token} in env", 0, 0);
	/* other kinds need neither */
	T_OK(parse_ok("{'images': {'j': {'image': 'x', 'kind': 'jupyter'}}, "
		      "'profiles': {'p': {'images': ['j'], " RNG "}}}"),
	     "a jupyter image needs no trust_network");
}

/* ---- pools ----------------------------------------------------------- */
#define POOLS(p) PROF("'images': ['a'], " RNG ", 'gpus': 2, " \
		      "'constraints': ['node.role==worker'], 'pools': " p)

static void
test_pools(void)
{
	const struct pool_def *pl;
	const struct profile_def *pd;
	struct profiles *p;
	const char *g[] = { "p" };
	struct spawn_opts o, use[3];
	struct err e = { 0 };
	char *s;

	refused(POOLS("['x']"), "profiles.p.pools: must be an object (pool "
		"name -> constraints)");
	refused(POOLS("{'gpu': 'x'}"), "profiles.p.pools.gpu: must be a list "
		"of constraints or an object with \"constraints\" and "
		"\"quota\"");
	refused(POOLS("{'gpu': [1]}"), "profiles.p.pools.gpu[0]: must be a "
		"string");
	refused(POOLS("{'gpu': {'quota': {}}}"),
		"profiles.p.pools.gpu.constraints: missing");
	refused(POOLS("{'gpu': {'constraints': [], 'colour': 1}}"),
		"profiles.p.pools.gpu.colour: unknown key");
	refused(POOLS("{'gpu': {'constraints': [], 'quota': {'gpus': -1}}}"),
		"profiles.p.pools.gpu.quota.gpus: must be between 0 and "
		"1000000000");
	refused(POOLS("{'': []}"), "profiles.p.pools.: name must have 1 to 63 "
		"characters");
	/* both forms */
	p = parse(POOLS("{'cpu': ['node.labels.pool==cpu'], 'gpu': "
			"{'constraints': ['node.labels.pool==gpu', "
			"'node.labels.gpu==yes'], 'quota': {'gpus': 2, "
			"'servers': 1}}}"));
	T_OK(p != NULL, "pools parsed");
	if (!p)
		return;
	pd = profiles_get(p, "p");
	T_OK(pd->npools == 2, "two pools");
	pl = profiles_pool(pd, "cpu");
	T_OK(pl && pl->nconstraints == 1 && pl->quota.gpus == -1 &&
	     pl->quota.servers == -1, "short form: constraints, no quota");
	T_STREQ(pl ? pl->constraints[0] : NULL, "node.labels.pool==cpu",
		"short form constraint");
	pl = profiles_pool(pd, "gpu");
	T_OK(pl && pl->nconstraints == 2 && pl->quota.gpus == 2 &&
	     pl->quota.servers == 1 && pl->quota.cpu < 0, "object form");
	T_OK(profiles_pool(pd, "") == NULL && profiles_pool(pd, "x") == NULL,
	     "no such pool");
	/* the option */
	T_OK(opts(p, g, 1, "{'pool': 'gpu', 'gpus': 1}", &o, &e) == 0 &&
	     strcmp(o.pool, "gpu") == 0, "pool chosen");
	T_OK(opts(p, g, 1, "{'pool': null}", &o, &e) == 0 && !*o.pool,
	     "null pool: none");
	T_OK(opts(p, g, 1, "{}", &o, &e) == 0 && !*o.pool, "no pool");
	opt_refused(p, g, 1, "{'pool': 'tpu'}", ERR_INVALID, "pool 'tpu' "
		    "is not available in profile 'p' (choose one of: cpu, gpu)");
	opt_refused(p, g, 1, "{'pool': ['gpu']}", ERR_INVALID, "option "
		    "'pool' must be a string");
	/* per-pool quota: servers of that pool only */
	o = mk("p", 1, 1, 1);
	snprintf(o.pool, sizeof(o.pool), "gpu");
	use[0] = mk("p", 1, 1, 0);	/* no pool */
	use[1] = mk("p", 1, 1, 0);
	snprintf(use[1].pool, sizeof(use[1].pool), "cpu");
	T_OK(profiles_quota_check(p, &o, use, 2, &e) == 0,
	     "other pools do not count");
	use[2] = mk("p", 1, 1, 1);
	snprintf(use[2].pool, sizeof(use[2].pool), "gpu");
	quota_refused(p, o, use, 3, "your group's quota of 1 servers in pool "
		      "'gpu' is in use (1 used)");
	s = profiles_json(p, g, 1);
	T_OK(s && strstr(s, "\"pools\":[{\"name\":\"cpu\",\"constraints\":"
			 "[\"node.labels.pool==cpu\"],\"quota\":{}},{\"name\":"
			 "\"gpu\""), "pools in the form's JSON: %s", s);
	free(s);
	profiles_free(p);
	p = parse(PROF("'images': ['a'], " RNG));
	opt_refused(p, g, 1, "{'pool': 'gpu'}", ERR_INVALID, "pool 'gpu' is "
		    "not available: profile 'p' offers no pools");
	profiles_free(p);
}

int
main(void)
{
	test_validation();
	test_web_credential();
	test_defaults();
	test_load();
	test_options();
	test_options_json();
	test_quota();
	test_profiles_json();
	test_pools();
	return t_done();
}
