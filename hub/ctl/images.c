/*
 * images.c - swarmhubctl images pull [IMAGE...]: pull the profiles' images
 * on every node of the swarm.
 *
 * POST /hub/api/swarmhub/images/pull with {"images": [...]} (IMAGEs are
 * image keys of the profiles or references; none: every profile image).
 * The hub runs one Swarm job per image and answers when every node has an
 * outcome. Prints IMAGE NODE STATUS MESSAGE, one row per image and node
 * (status ok, error or unknown). Exit 0 when every node that could be
 * asked has every image, 1 otherwise.
 */
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

static void
pull_table(const json_t *images)
{
	static const char *const head[] = { "IMAGE", "NODE", "STATUS",
	    "MESSAGE" };
	const json_t *im, *n;
	const char *row[4];
	struct table t;
	size_t i, k;

	table_init(&t, 4, head);
	json_array_foreach(images, i, im) {
		row[0] = json_str(im, "image");
		if (json_str(im, "error") != NULL) {
			row[1] = "-";
			row[2] = "error";
			row[3] = json_str(im, "error");
			table_add(&t, row);
		}
		json_array_foreach(json_object_get(im, "nodes"), k, n) {
			row[1] = json_str(n, "hostname");
			row[2] = json_str(n, "status");
			row[3] = json_str(n, "message");
			table_add(&t, row);
		}
	}
	table_print(&t, stdout);
	table_release(&t);
	json_array_foreach(images, i, im)
		if (json_str(im, "note") != NULL)
			printf("note: %s: %s\n", json_str(im, "image"),
			    json_str(im, "note"));
}

int
cmd_images_pull(struct ctl *c, const struct args *a, struct err *e)
{
	json_t *names = names_json(a, 0, e), *body, *ans = NULL, *images;
	int ok;

	if (names == NULL)
		return CTL_USAGE;
	body = json_pack("{s:o}", "images", names);
	if (rest_call(c, "POST", "/hub/api/swarmhub/images/pull", body, &ans,
	    NULL, "pull images", e) < 0) {
		json_decref(body);
		return -1;
	}
	json_decref(body);
	images = json_object_get(ans, "images");
	if (!json_is_array(images)) {
		json_decref(ans);
		return err_set(e, ERR_UPSTREAM, "pull images: the answer has no "
		    "\"images\" list");
	}
	ok = json_is_true(json_object_get(ans, "ok"));
	if (c->json)
		json_print(ans);
	else
		pull_table(images);
	json_decref(ans);
	return ok ? 0 : CTL_REPORTED;
}
