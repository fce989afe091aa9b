/*
 * api_images.c - images on every node: POST /hub/api/swarmhub/images/pull
 * (swarmhubctl images pull), the doctor's "images" check, and the "Pull
 * images" block of the admin pages.
 *
 *   POST /swarmhub/images/pull   {"images": [key or reference, ...]}
 *     (absent or []: every image of the profiles) -> 200
 *     {"ok": b, "images": [{"image", "keys": [...], "digest", "note",
 *      "error", "nodes": [{"id", "hostname", "status", "message"}]}]}
 *     status "ok" (the node has the image now), "error" (it has not:
 *     message says why), "unknown" (node down or drained, or no outcome
 *     in time). ok: no node "error" and no image whose job failed.
 * The spawner runs one Swarm GlobalJob per image (spawner_images_pull);
 * the request waits for it (up to START_TIMEOUT, at most 240 s).
 * The doctor's check runs a job per image too (a few seconds): its
 * answer is kept for DOCTOR_KEEP_MS, and forgotten when images are pulled.
 * Ownership: the spawner's result arrays are freed here.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

#define DOCTOR_KEEP_MS 60000

static pthread_mutex_t doctor_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *doctor_kept;		/* the last check, or NULL */
static int64_t doctor_kept_ms;

static void
doctor_forget(void)
{
	pthread_mutex_lock(&doctor_lock);
	json_decref(doctor_kept);
	doctor_kept = NULL;
	pthread_mutex_unlock(&doctor_lock);
}

static json_t *
node_json(const struct spawner_node_image *n)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "id", n->node_id, "hostname",
	    n->hostname, "status", n->ok ? "ok" : n->done ? "error" :
	    "unknown", "message", n->message);
}

static json_t *
keys_json(const char *keys)
{
	char **v = str_split(keys, ',', NULL);
	json_t *a = json_array();

	for (char **p = v; *p; p++)
		json_array_append_new(a, json_string(*p));
	strv_free(v);
	return a;
}

/* The spawner's answer as the API's JSON; *ok cleared on any failure. */
static json_t *
images_json(const struct spawner_image_nodes *v, size_t n, int *ok)
{
	json_t *list = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *nodes = json_array();

		for (size_t k = 0; k < v[i].nnodes; k++) {
			json_array_append_new(nodes, node_json(&v[i].nodes[k]));
			if (v[i].nodes[k].done && !v[i].nodes[k].ok)
				*ok = 0;
		}
		if (*v[i].error)
			*ok = 0;
		json_array_append_new(list, json_pack("{s:s, s:o, s:s?, s:s?, "
		    "s:s?, s:o}", "image", v[i].image, "keys",
		    keys_json(v[i].keys), "digest", *v[i].digest ?
		    v[i].digest : NULL, "note", *v[i].note ? v[i].note : NULL,
		    "error", *v[i].error ? v[i].error : NULL, "nodes", nodes));
	}
	return list;
}

/* {"images": [...]}: the strings into a heap vector (borrowed from j). */
static int
wanted(struct req *r, json_t **j, const char ***names, size_t *n)
{
	static const char *const allowed[] = { "images", NULL };
	struct err e = { 0 };
	json_t *a, *it;
	size_t i;

	*names = NULL;
	*n = 0;
	if (json_parse_object(r->body_len ? r->body : "{}",
			      r->body_len ? r->body_len : 2, allowed, j,
			      &e) < 0) {
		req_json_error(r, err_http_status(e.code), "%s", e.msg);
		return -1;
	}
	a = json_object_get(*j, "images");
	if (a && !json_is_array(a)) {
		req_json_error(r, 400, "images must be a list of image keys or "
			       "references");
		return -1;
	}
	*names = xcalloc(json_array_size(a) + 1, sizeof(**names));
	json_array_foreach(a, i, it) {
		if (!json_is_string(it)) {
			req_json_error(r, 400, "images[%zu] must be a string",
				       i);
			return -1;
		}
		(*names)[(*n)++] = json_string_value(it);
	}
	return 0;
}

void
api_images_pull(struct req *r, const char *actor)
{
	struct hub *h = r->hub;
	struct spawner_image_nodes *v = NULL;
	json_t *j = NULL, *list;
	const char **names = NULL;
	struct err e = { 0 };
	size_t n = 0, nv = 0;
	int ok = 1;
	char *text;

	if (wanted(r, &j, &names, &n) < 0)
		goto out;
	doctor_forget();
	if (spawner_images_pull(h->spawner, names, n, 0, &v, &nv, &e) < 0) {
		req_json_error(r, err_http_status(e.code), "%s", e.msg);
		goto out;
	}
	list = images_json(v, nv, &ok);
	text = json_dumps(list, JSON_COMPACT);
	hub_audit(h, actor, "images.pull", "", text, r->ip);
	free(text);
	log_event(LOG_INFO, "images.pull", "images=%zu ok=%d", nv, ok);
	text = json_dumps(json_pack("{s:b, s:o}", "ok", ok, "images", list),
			  JSON_COMPACT);
	req_json(r, 200, text ? text : xstrdup("{}"));
out:
	spawner_image_nodes_free(v, nv);
	free(names);
	json_decref(j);
}

/* ---- the doctor's check ------------------------------------------------ */
/* "shc-worker2 lacks reg:5000/x:1; ..." into sb; 1 when no node lacks
 * an image the manager has (an image the manager lacks is not checked:
 * said at the end, not a failure). */
static int
lacking(const struct spawner_image_nodes *v, size_t n, struct strbuf *sb)
{
	int ok = 1, unchecked = 0;

	for (size_t i = 0; i < n; i++) {
		if (*v[i].error) {
			sb_addf(sb, "%s%s: %s", ok ? "" : "; ", v[i].image,
				v[i].error);
			ok = 0;
		}
		for (size_t k = 0; k < v[i].nnodes; k++) {
			const struct spawner_node_image *o = &v[i].nodes[k];

			if (!o->done || o->ok)
				continue;
			sb_addf(sb, "%s%s %s", ok ? "" : "; ", o->hostname,
				strncmp(o->message, "lacks ", 6) == 0 ?
				o->message : v[i].image);
			ok = 0;
		}
	}
	if (ok)
		sb_addf(sb, "no ready node lacks a profile image the manager "
			"has");
	for (size_t i = 0; i < n; i++)
		if (*v[i].note && !*v[i].error)
			sb_addf(sb, "%s%s (%s)", unchecked++ ? ", " :
				"; not checked: ", v[i].image, v[i].note);
	return ok;
}

void
api_images_doctor(struct hub *h, struct json_t *list, int *all_ok)
{
	struct spawner_image_nodes *v = NULL;
	struct strbuf sb;
	struct err e = { 0 };
	json_t *c = NULL;
	size_t n = 0;
	int ok;

	pthread_mutex_lock(&doctor_lock);
	if (doctor_kept && time_mono_ms() - doctor_kept_ms < DOCTOR_KEEP_MS)
		c = json_deep_copy(doctor_kept);
	pthread_mutex_unlock(&doctor_lock);
	if (c) {
		*all_ok &= json_is_true(json_object_get(c, "ok"));
		json_array_append_new(list, c);
		return;
	}
	sb_init(&sb);
	sb_adds(&sb, "");
	if (spawner_images_pull(h->spawner, NULL, 0, 1, &v, &n, &e) < 0) {
		sb_adds(&sb, e.msg);
		ok = 0;
	} else {
		ok = lacking(v, n, &sb);
	}
	c = json_pack("{s:s, s:b, s:s, s:s}", "name", "images", "ok", ok,
	    "detail", sb.buf, "fix", ok ? "" : "swarmhubctl images pull (pulls "
	    "the profiles' images on every node with SWARMHUB_REGISTRY_AUTH), "
	    "or load them on those nodes");
	pthread_mutex_lock(&doctor_lock);
	json_decref(doctor_kept);
	doctor_kept = json_deep_copy(c);
	doctor_kept_ms = time_mono_ms();
	pthread_mutex_unlock(&doctor_lock);
	json_array_append_new(list, c);
	*all_ok &= ok;
	sb_release(&sb);
	spawner_image_nodes_free(v, n);
}

/* ---- the admin pages' block -------------------------------------------- */
void
pages_images_block(struct strbuf *sb)
{
	sb_adds(sb, "<section class=\"card\" id=\"images-pull\" "
		"aria-labelledby=\"images-h\"><h2 id=\"images-h\">Images on "
		"the nodes</h2><p>Pulls every image of the profiles on every "
		"node of the swarm (with the registry credentials), so that "
		"servers start without waiting for a pull.</p><button "
		"type=\"button\" id=\"pull-images\">Pull images on every node"
		"</button><p id=\"pull-msg\" role=\"status\" aria-live=\"polite"
		"\" hidden></p><div class=\"table-wrap\"><table id=\"pull-"
		"result\" hidden><thead><tr><th scope=\"col\">Image</th><th "
		"scope=\"col\">Node</th><th scope=\"col\">Status</th><th scope="
		"\"col\">Message</th></tr></thead><tbody></tbody></table></div>"
		"</section>");
}
