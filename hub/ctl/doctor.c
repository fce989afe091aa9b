/*
 * doctor.c - swarmhubctl doctor: is everything the hub needs working?
 *
 * Two checks run here: the URL answers GET /hub/health (else nothing
 * more can be asked), and the token is accepted and has admin rights
 * (GET /hub/api/user). The rest comes from GET /hub/api/swarmhub/doctor,
 * which checks from inside the hub: database, docker, network, profiles,
 * homes, ldap (a check that does not apply is absent). Each check is
 * printed as "✓ name  detail" or "✗ name  detail" followed by "fix: ...".
 * Exit 0 when every check passed, 1 otherwise.
 */
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

/* Adds a check in the hub's format. */
static void
check_add(json_t *list, const char *name, int ok, const char *detail,
	  const char *fix)
{
	json_array_append_new(list, json_pack("{s:s, s:b, s:s, s:s}",
	    "name", name, "ok", ok, "detail", detail, "fix", ok ? "" : fix));
}

/* 0 when the hub answered at all (even 503), -1 when unreachable. */
static int
check_health(struct ctl *c, json_t *list)
{
	struct err e;
	char detail[300];
	long status = 0;
	int rc;

	rc = rest_call(c, "GET", "/hub/health", NULL, NULL, &status,
	    "GET /hub/health", &e);
	snprintf(detail, sizeof(detail), "%s %s", c->url, rc == 0 ?
	    "answers /hub/health" : e.msg);
	check_add(list, "hub", rc == 0, detail, status == 0 ? "start the "
	    "hub, or give its address with --url or SWARMHUB_URL" : "see "
	    "the hub's log; a 503 names what it misses (usually "
	    "PostgreSQL)");
	return status == 0 ? -1 : 0;
}

static void
check_token(struct ctl *c, json_t *list)
{
	json_t *me = NULL;
	struct err e;
	char detail[300];
	int admin;

	if (rest_call(c, "GET", "/hub/api/user", NULL, &me, NULL,
	    "the token", &e) < 0) {
		check_add(list, "token", 0, e.msg, "create a token with "
		    "'swarmhubctl tokens create' as an admin (or use "
		    "SWARMHUB_ADMIN_TOKEN) and pass it with SWARMHUB_TOKEN or "
		    "--token-file");
		return;
	}
	admin = json_is_true(json_object_get(me, "admin"));
	snprintf(detail, sizeof(detail), "accepted: %s '%s'%s",
	    json_str(me, "kind") ? json_str(me, "kind") : "user",
	    json_str(me, "name") ? json_str(me, "name") : "?",
	    admin ? ", admin" : ", not an admin");
	check_add(list, "token", admin, detail, "use an admin's token: "
	    "'swarmhubctl users set-admin NAME on', or SWARMHUB_ADMIN_TOKEN");
	json_decref(me);
}

/* Appends the hub's own checks (or one failed "hub checks" entry). */
static void
check_hub(struct ctl *c, json_t *list)
{
	json_t *ans = NULL, *checks;
	struct err e;

	if (rest_call(c, "GET", "/hub/api/swarmhub/doctor", NULL, &ans, NULL,
	    "GET /hub/api/swarmhub/doctor", &e) < 0) {
		check_add(list, "hub checks", 0, e.msg, "see the hub's log; "
		    "the checks need an admin token and a hub that has "
		    "/hub/api/swarmhub/doctor");
		return;
	}
	checks = json_object_get(ans, "checks");
	if (!json_is_array(checks))
		check_add(list, "hub checks", 0, "the answer has no "
		    "\"checks\" list", "update swarmhubctl to the hub's "
		    "version");
	else
		json_array_extend(list, checks);
	json_decref(ans);
}

static int
all_ok(const json_t *list)
{
	const json_t *k;
	size_t i;

	json_array_foreach(list, i, k)
		if (!json_is_true(json_object_get(k, "ok")))
			return 0;
	return 1;
}

/* s with control characters as '?' (the hub's text must not drive the
 * terminal), in buf. */
static const char *
clean(const char *s, char *buf, size_t size)
{
	char *p;

	snprintf(buf, size, "%s", s != NULL ? s : "");
	for (p = buf; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return buf;
}

static void
checks_print(const json_t *list)
{
	const json_t *k;
	char name[64], detail[512], fix[512];
	size_t i, w = 0, n;

	json_array_foreach(list, i, k)
		if (json_str(k, "name") != NULL &&
		    (n = strlen(json_str(k, "name"))) > w)
			w = n;
	json_array_foreach(list, i, k) {
		clean(json_str(k, "name"), name, sizeof(name));
		clean(json_str(k, "detail"), detail, sizeof(detail));
		clean(json_str(k, "fix"), fix, sizeof(fix));
		printf("%s %-*s  %s\n", json_is_true(json_object_get(k, "ok")) ?
		    "\u2713" : "\u2717", (int)w, name, detail);
		if (!json_is_true(json_object_get(k, "ok")) && *fix != '\0')
			printf("  %*s  fix: %s\n", (int)w, "", fix);
	}
}

int
cmd_doctor(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *list = json_array(), *out;
	int ok;

	(void)a;
	(void)e;
	if (check_health(c, list) == 0) {
		check_token(c, list);
		check_hub(c, list);
	}
	ok = all_ok(list);
	if (c->json) {
		out = json_pack("{s:b, s:O}", "ok", ok, "checks", list);
		json_print(out);
		json_decref(out);
	} else
		checks_print(list);
	json_decref(list);
	return ok ? 0 : CTL_REPORTED;
}
