/*
 * orphans.c - swarmhubctl orphans [--remove]: what nobody owns.
 *
 * GET /hub/api/swarmhub/orphans lists the Docker services carrying this
 * hub's label that no running server owns, and the home directories under
 * SWARMHUB_HOME that no user owns. --remove deletes the services
 * (DELETE /hub/api/swarmhub/orphans/services/<name>), one by one, going on
 * after a failure. Homes are never removed here: they may hold the only
 * copy of someone's work, so the command says how to archive them with
 * 'cleanup NAME --home archive'.
 */
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

static void
orphans_table(const json_t *services, const json_t *homes)
{
	static const char *const head[] = { "KIND", "NAME", "USER",
	    "SERVER", "RUNNING" };
	struct table t;
	const json_t *s;
	const char *row[5];
	size_t i;

	table_init(&t, 5, head);
	json_array_foreach(services, i, s) {
		row[0] = "service";
		row[1] = json_str(s, "name");
		row[2] = json_str(s, "user");
		row[3] = json_str(s, "server");
		row[4] = json_is_true(json_object_get(s, "running")) ? "yes" :
		    "no";
		table_add(&t, row);
	}
	json_array_foreach(homes, i, s) {
		row[0] = "home";
		row[1] = json_string_value(s);
		row[2] = row[3] = row[4] = NULL;
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_release(&t);
}

/* Removes each service; adds {"name", "removed", "error"} to results. */
static int
remove_services(struct ctl *c, const json_t *services, json_t *results)
{
	const json_t *s;
	const char *name;
	char what[128], *path;
	struct err e;
	int failed = 0, rc;
	size_t i;

	json_array_foreach(services, i, s) {
		name = json_str(s, "name");
		if (name == NULL)
			continue;
		snprintf(what, sizeof(what), "remove service '%s'", name);
		path = rest_pathf(c,
		    "/hub/api/swarmhub/orphans/services/%s", name);
		rc = rest_call(c, "DELETE", path, NULL, NULL, NULL, what, &e);
		free(path);
		if (rc < 0) {
			ctl_report(&e);
			failed = 1;
		} else if (!c->json)
			printf("removed service %s\n", name);
		json_array_append_new(results, json_pack("{s:s, s:b, s:s?}",
		    "name", name, "removed", rc == 0, "error",
		    rc < 0 ? e.msg : NULL));
	}
	return failed ? CTL_REPORTED : 0;
}

static void
homes_hint(const json_t *homes)
{
	size_t n = json_array_size(homes);

	if (n == 0)
		return;
	printf("%zu home%s without a user kept (never removed here); to "
	    "archive: swarmhubctl cleanup NAME... --home archive\n", n,
	    n == 1 ? "" : "s");
}

int
cmd_orphans(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *ans = NULL, *services, *homes, *results;
	int rc = 0;

	if (rest_call(c, "GET", "/hub/api/swarmhub/orphans", NULL, &ans,
	    NULL, "list orphans", e) < 0)
		return -1;
	services = json_object_get(ans, "services");
	homes = json_object_get(ans, "homes");
	if (!json_is_array(services) || !json_is_array(homes)) {
		json_decref(ans);
		return err_set(e, ERR_UPSTREAM, "list orphans: the answer "
		    "has no \"services\" and \"homes\" lists");
	}
	if (!c->json && json_array_size(services) + json_array_size(homes)
	    == 0)
		printf("no orphans\n");
	else if (!c->json)
		orphans_table(services, homes);
	if (args_get(a, "remove") != NULL) {
		results = json_array();
		rc = remove_services(c, services, results);
		json_object_set_new(ans, "removed", results);
	}
	if (c->json)
		json_print(ans);
	else
		homes_hint(homes);
	json_decref(ans);
	return rc;
}
