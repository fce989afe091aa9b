/*
 * test_registry.c - REGISTRY_AUTH (Docker's config.json) parsed, refused
 * with the setting and entry named, the registry host of image references
 * by Docker's rule, the X-Registry-Auth value decoded back, and the
 * profiles' "pull" key. No network, no Docker.
 */
#include <jansson.h>
#include "../../spawner/internal.h"
#include "../lib/t.h"

/* base64url (padded) back to text, for checking the header. */
static char *
unb64url(const char *s)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
				"tuvwxyz0123456789-_";
	char *out = calloc(1, strlen(s) + 1);
	unsigned acc = 0;
	int bits = 0;
	size_t k = 0;

	for (; *s && *s != '='; s++) {
		const char *p = strchr(a, *s);

		if (p == NULL) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)(p - a);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[k++] = (char)((acc >> bits) & 0xff);
		}
	}
	return out;
}

static void
check_header(const struct registry_auth *ra, const char *image,
	     const char *user, const char *pw, const char *server)
{
	char *h = registry_header(ra, image), *text;
	json_t *j;

	T_OK(h != NULL, "a header for %s", image);
	if (h == NULL)
		return;
	T_OK(strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_=") == strlen(h), "base64url: %s", h);
	text = unb64url(h);
	j = json_loads(text ? text : "", 0, NULL);
	T_STREQ(json_string_value(json_object_get(j, "username")), user,
		"username for %s", image);
	T_STREQ(json_string_value(json_object_get(j, "password")), pw,
		"password for %s", image);
	T_STREQ(json_string_value(json_object_get(j, "serveraddress")), server,
		"serveraddress for %s", image);
	json_decref(j);
	free(text);
	free(h);
}

static void
test_parse_and_header(void)
{
	/* "auth" is base64("puller:s3cret:pull") */
	const char *cfg = "{\"auths\": {"
	    "\"reg.example.com:5000\": {\"auth\": \"cHVsbGVyOnMzY3JldDpwdWxs\"},"
	    "\"https://index.docker.io/v1/\": {\"username\": \"hubu\","
	    " \"password\": \"hubp\"},"
	    "\"http://Other.Example.com/v2/\": {\"auth\": \"YTpi\"}},"
	    " \"credsStore\": \"\", \"psFormat\": \"x\"}";
	struct registry_auth *ra = NULL;
	struct err e = { 0 };

	T_OK(registry_auth_parse(cfg, &ra, &e) == 0, "parses: %s", e.msg);
	T_OK(registry_auth_count(ra) == 3, "three registries");
	check_header(ra, "reg.example.com:5000/team/nb:1", "puller",
		     "s3cret:pull", "reg.example.com:5000");
	check_header(ra, "reg.example.com:5000/nb@sha256:abc", "puller",
		     "s3cret:pull", "reg.example.com:5000");
	check_header(ra, "jupyter/scipy-notebook:2024", "hubu", "hubp",
		     "docker.io");
	check_header(ra, "other.example.com/x", "a", "b", "other.example.com");
	T_OK(registry_header(ra, "reg.example.com:5001/nb:1") == NULL,
	     "no header for another port");
	T_OK(registry_header(NULL, "reg.example.com:5000/nb:1") == NULL,
	     "no header without REGISTRY_AUTH");
	registry_auth_free(ra);
	T_OK(registry_auth_parse("", &ra, &e) == 0 && ra == NULL,
	     "empty: no credentials");
}

static void
refused(const char *text, const char *want, const char *what)
{
	struct registry_auth *ra = NULL;
	struct err e = { 0 };

	T_OK(registry_auth_parse(text, &ra, &e) < 0 && ra == NULL,
	     "refused: %s", what);
	T_OK(strstr(e.msg, "SWARMHUB_REGISTRY_AUTH") != NULL,
	     "names the setting: %s", e.msg);
	T_OK(strstr(e.msg, want) != NULL, "%s: '%s' in '%s'", what, want,
	     e.msg);
	T_OK(strstr(e.msg, "s3cret") == NULL, "no secret in: %s", e.msg);
}

static void
test_refused(void)
{
	refused("{\"auths\": {\"r:5000\": {\"auth\": \"s3cret", "not JSON",
		"bad JSON");
	refused("{\"credsStore\": \"desktop\"}", "no \"auths\"", "no auths");
	refused("{\"auths\": {}}", "no \"auths\"", "empty auths");
	refused("{\"auths\": {\"\": {\"auth\": \"YTpi\"}}}", "no registry host",
		"empty host");
	refused("{\"auths\": {\"https://\": {\"auth\": \"YTpi\"}}}",
		"no registry host", "scheme only");
	refused("{\"auths\": {\"r:5000\": {}}}", "auths.\"r:5000\" has no "
		"credentials", "no credentials");
	refused("{\"auths\": {\"r:5000\": {\"auth\": \"s3cret!!\"}}}",
		"auths.\"r:5000\".auth is not base64", "bad base64");
	refused("{\"auths\": {\"r:5000\": {\"auth\": \"czNjcmV0\"}}}",
		"not base64 of user:password", "no colon");
	refused("{\"auths\": {\"r:5000\": \"s3cret\"}}", "must be an object",
		"entry not an object");
	refused("{\"auths\": {\"R:5000\": {\"auth\": \"YTpi\"}, \"https://r:5000"
		"\": {\"auth\": \"YTpi\"}}}", "given twice", "twice");
}

static void
test_hosts(void)
{
	static const char *const cases[][2] = {
		{ "swarmhub/notebook:latest", "docker.io" },
		{ "ubuntu", "docker.io" },
		{ "reg.example.com/team/nb:1", "reg.example.com" },
		{ "10.213.10.1:15003/t/nb:1", "10.213.10.1:15003" },
		{ "localhost/nb", "localhost" },
		{ "localhost:5000/nb", "localhost:5000" },
		{ "Team/nb", "team" },
		{ "team.x/nb@sha256:0", "team.x" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *h = registry_host(cases[i][0]);

		T_STREQ(h, cases[i][1], "registry of %s", cases[i][0]);
		free(h);
	}
	T_OK(!registry_names_host("swarmhub/notebook:1"), "hub name");
	T_OK(registry_names_host("r:5000/x"), "host:port");
	{
		char *s = registry_strip_digest("r:5000/x:1@sha256:ab");

		T_STREQ(s, "r:5000/x:1", "digest stripped");
		free(s);
	}
}

static void
test_pull_key(void)
{
	const char *fmt = "{\"images\": {\"a\": {\"image\": \"r:5000/a:1\"%s}},"
	    " \"profiles\": {\"default\": {\"images\": [\"a\"],"
	    " \"cpu\": {\"min\": 1, \"max\": 1}, \"mem_gb\": {\"min\": 1,"
	    " \"max\": 1}}}}";
	static const struct { const char *v; int ok; enum pull_policy p; }
	    cases[] = {
		{ "", 1, PULL_MISSING },
		{ ", \"pull\": \"missing\"", 1, PULL_MISSING },
		{ ", \"pull\": \"always\"", 1, PULL_ALWAYS },
		{ ", \"pull\": \"never\"", 1, PULL_NEVER },
		{ ", \"pull\": \"sometimes\"", 0, PULL_MISSING },
		{ ", \"pull\": true", 0, PULL_MISSING },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512];
		struct profiles *p = NULL;
		struct err e = { 0 };
		int rc;

		snprintf(text, sizeof(text), fmt, cases[i].v);
		rc = profiles_parse(text, strlen(text), &p, &e);
		T_OK((rc == 0) == cases[i].ok, "pull%s: %s", cases[i].v, e.msg);
		if (rc == 0)
			T_OK(p->images[0].pull == cases[i].p, "policy of%s",
			     cases[i].v);
		else
			T_OK(strstr(e.msg, "images.a.pull: must be") != NULL,
			     "names the key: %s", e.msg);
		profiles_free(p);
	}
}

int
main(void)
{
	test_parse_and_header();
	test_refused();
	test_hosts();
	test_pull_key();
	return t_done();
}
