/*
 * pages_spawn.c - the spawn form (GET/POST /hub/spawn[/<name>]) and the
 * progress page (/hub/spawn-pending/<name>).
 *
 * The form is built from spawner_profiles_json for the groups of the user
 * the server is for: one radio per profile, then one fieldset per profile
 * (image, CPU, memory, GPUs, node pool, the group's quota). The fieldsets of the
 * profiles not chosen are disabled, so only the chosen one is posted;
 * app.js switches them when the radio changes (without script the server
 * fills the defaults of the chosen profile). The POST builds the user
 * options, calls servers_start, and on an error renders the form again
 * with the message next to the field it names and the values kept.
 * The progress page is fed by the progress stream (EventSource, app.js).
 */
#include <jansson.h>
#include <math.h>	/* isfinite (a macro: no libm) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

/* What the user entered (NULL: not sent) and what went wrong. */
struct spawn_in {
	char *profile, *image, *cpu, *mem_gb, *gpus, *pool;
};
struct spawn_fail {
	const char *field;	/* "cpu", ...; NULL: the whole form */
	const char *msg;
};
/* Who the form is for and where to go after ready. */
struct spawn_ctx {
	struct req *r;
	struct who w;
	char target[USER_NAME_MAX + 1];
	char server[SERVER_NAME_MAX + 1];	/* "" the default server */
	const char *next;	/* a local path or NULL */
};

/* "<target>" or "<target>/<server>", URL-encoded. */
static void
add_target(struct strbuf *sb, const struct spawn_ctx *c)
{
	pages_add_urlenc(sb, c->target);
	if (*c->server) {
		sb_addc(sb, '/');
		pages_add_urlenc(sb, c->server);
	}
}

/* "your server", "alice's server", "your server 'gpu'" (HTML). */
static void
add_whose(struct strbuf *sb, const struct spawn_ctx *c)
{
	if (strcmp(c->target, c->w.name) == 0) {
		sb_adds(sb, "your server");
	} else {
		sb_add_html(sb, c->target);
		sb_adds(sb, "&rsquo;s server");
	}
	if (*c->server) {
		sb_adds(sb, " <q id=\"server-name\">");
		sb_add_html(sb, c->server);
		sb_adds(sb, "</q>");
	}
}

/* ---- quota usage ----------------------------------------------------- */
static void
quota_row(struct strbuf *sb, const char *what, double used, json_t *limit)
{
	sb_adds(sb, "<tr><th scope=\"row\">");
	sb_adds(sb, what);
	sb_adds(sb, "</th><td>");
	pages_add_num(sb, used);
	sb_adds(sb, "</td><td>");
	if (json_is_number(limit)) {
		double lim = json_number_value(limit);

		pages_add_num(sb, lim);
		sb_adds(sb, "</td><td>");
		pages_add_num(sb, lim > used ? lim - used : 0);
	} else {
		sb_adds(sb, "no limit</td><td>&mdash;");
	}
	sb_adds(sb, "</td></tr>");
}

static void
add_quota(struct strbuf *sb, struct hub *h, json_t *p)
{
	const char *name = json_string_value(json_object_get(p, "name"));
	json_t *q = json_object_get(p, "quota");
	struct servers_usage use;

	servers_usage_of(h, name, &use);
	sb_adds(sb, "<div class=\"quota\"><table><caption>");
	if (strcmp(name, "default") == 0) {
		sb_adds(sb, "Quota shared by everyone using this profile");
	} else {
		sb_adds(sb, "Quota of your group ");
		sb_add_html(sb, name);
	}
	sb_adds(sb, "</caption><thead><tr><td></td><th scope=\"col\">In use"
		"</th><th scope=\"col\">Limit</th><th scope=\"col\">Left</th>"
		"</tr></thead><tbody>");
	quota_row(sb, "Servers", (double)use.servers,
		  json_object_get(q, "servers"));
	quota_row(sb, "CPUs", use.cpu, json_object_get(q, "cpu"));
	quota_row(sb, "Memory (GiB)", use.mem_gb, json_object_get(q, "mem_gb"));
	if (json_object_get(q, "gpus") || use.gpus ||
	    json_integer_value(json_object_get(p, "gpus")) > 0)
		quota_row(sb, "GPUs", (double)use.gpus,
			  json_object_get(q, "gpus"));
	sb_adds(sb, "</tbody></table></div>");
}

/* ---- the form -------------------------------------------------------- */

static void
field_error(struct strbuf *sb, const char *id, const char *field,
	    const struct spawn_fail *f)
{
	if (f == NULL || f->field == NULL || strcmp(f->field, field) != 0)
		return;
	sb_addf(sb, "<p class=\"field-error\" id=\"%s-error\">", id);
	sb_add_html(sb, f->msg);
	sb_adds(sb, "</p>");
}

static int
has_error(const struct spawn_fail *f, const char *field)
{
	return f && f->field && strcmp(f->field, field) == 0;
}

/* A number input for range r (cpu or mem_gb); value: what was entered. */
static void
number_input(struct strbuf *sb, size_t idx, const char *field,
	     const char *label, json_t *r, const char *value,
	     const struct spawn_fail *f)
{
	double min = json_number_value(json_object_get(r, "min"));
	double max = json_number_value(json_object_get(r, "max"));
	double def = json_number_value(json_object_get(r, "default"));
	char id[48];
	int bad = has_error(f, field);

	snprintf(id, sizeof(id), "%s-%zu", field, idx);
	sb_addf(sb, "<div class=\"field%s\"><label for=\"%s\">%s</label>"
		"<input type=\"number\" id=\"%s\" name=\"%s\" min=\"%g\" "
		"max=\"%g\" step=\"%s\" required value=\"", bad ? " invalid" :
		"", id, label, id, field, min, max, "any");
	if (value)
		sb_add_html(sb, value);
	else
		pages_add_num(sb, def);
	sb_addf(sb, "\" aria-describedby=\"%s-hint%s%s%s\"%s>", id,
		bad ? " " : "", bad ? id : "", bad ? "-error" : "",
		bad ? " aria-invalid=\"true\" autofocus" : "");
	sb_addf(sb, "<p class=\"hint\" id=\"%s-hint\">From %g to %g; "
		"default %g.</p>", id, min, max, def);
	field_error(sb, id, field, f);
	sb_adds(sb, "</div>");
}

static void
gpus_input(struct strbuf *sb, size_t idx, long gpus, const char *value,
	   const struct spawn_fail *f)
{
	int bad = has_error(f, "gpus");

	sb_addf(sb, "<div class=\"field%s\"><label for=\"gpus-%zu\">GPUs"
		"</label><input type=\"number\" id=\"gpus-%zu\" name=\"gpus\" "
		"min=\"0\" max=\"%ld\" step=\"1\" value=\"", bad ? " invalid" :
		"", idx, idx, gpus);
	sb_add_html(sb, value ? value : "0");
	sb_addf(sb, "\" aria-describedby=\"gpus-%zu-hint", idx);
	if (bad)
		sb_addf(sb, " gpus-%zu-error\" aria-invalid=\"true\" autofocus",
			idx);
	sb_adds(sb, "\">");
	sb_addf(sb, "<p class=\"hint\" id=\"gpus-%zu-hint\">From 0 to %ld."
		"</p>", idx, gpus);
	if (bad) {
		char id[32];

		snprintf(id, sizeof(id), "gpus-%zu", idx);
		field_error(sb, id, "gpus", f);
	}
	sb_adds(sb, "</div>");
}

/* What the image runs, when it is not a plain Jupyter server. */
static void
kind_tag(struct strbuf *sb, const char *kind)
{
	if (kind && strcmp(kind, "web") == 0)
		sb_adds(sb, " <span class=\"kind\">web app</span>");
	else if (kind && strcmp(kind, "singleuser") == 0)
		sb_adds(sb, " <span class=\"kind\">JupyterHub single-user"
			"</span>");
}

/* The radios of the chosen profile are named "image"; the others get
 * "image-<idx>" (one radio group per profile; app.js renames them when
 * the profile changes, and disabled ones are not posted anyway). */
static void
image_choice(struct strbuf *sb, size_t idx, int chosen_profile,
	     json_t *images, const char *value, const struct spawn_fail *f)
{
	size_t i, chosen = 0;
	json_t *im;
	char id[32];

	json_array_foreach(images, i, im)
		if (value && strcmp(value, json_string_value(json_object_get(
		    im, "key"))) == 0)
			chosen = i;
	snprintf(id, sizeof(id), "image-%zu", idx);
	sb_addf(sb, "<fieldset class=\"images%s\"><legend>Image</legend>",
		has_error(f, "image") ? " invalid" : "");
	json_array_foreach(images, i, im) {
		const char *desc = json_string_value(json_object_get(im,
		    "description"));

		sb_addf(sb, "<div class=\"choice\"><input type=\"radio\" "
			"name=\"%s\" data-image=\"%s\" id=\"%s-%zu\" value=\"",
			chosen_profile ? "image" : id, id, id, i);
		sb_add_html(sb, json_string_value(json_object_get(im, "key")));
		sb_addf(sb, "\"%s><label for=\"%s-%zu\"><strong>", i == chosen ?
			" checked" : "", id, i);
		sb_add_html(sb, json_string_value(json_object_get(im, "key")));
		sb_adds(sb, "</strong> <code>");
		sb_add_html(sb, json_string_value(json_object_get(im, "image")));
		sb_adds(sb, "</code>");
		kind_tag(sb, json_string_value(json_object_get(im, "kind")));
		if (desc && *desc) {
			sb_adds(sb, "<span class=\"desc\">");
			sb_add_html(sb, desc);
			sb_adds(sb, "</span>");
		}
		sb_adds(sb, "</label></div>");
	}
	field_error(sb, id, "image", f);
	sb_adds(sb, "</fieldset>");
}

/* The profile's node pools ("pools"): none chosen means only the
 * profile's own constraints. */
static void
pool_choice(struct strbuf *sb, size_t idx, json_t *pools, const char *value,
	    const struct spawn_fail *f)
{
	int bad = has_error(f, "pool");
	size_t i;
	json_t *pl;

	if (json_array_size(pools) == 0)
		return;
	sb_addf(sb, "<div class=\"field%s\"><label for=\"pool-%zu\">Nodes"
		"</label><select id=\"pool-%zu\" name=\"pool\" "
		"aria-describedby=\"pool-%zu-hint\"%s><option value=\"\">"
		"Any node of the profile</option>", bad ? " invalid" : "", idx,
		idx, idx, bad ? " aria-invalid=\"true\" autofocus" : "");
	json_array_foreach(pools, i, pl) {
		const char *name = json_string_value(json_object_get(pl,
								     "name"));

		sb_adds(sb, "<option value=\"");
		sb_add_html(sb, name);
		sb_addf(sb, "\"%s>", value && strcmp(value, name) == 0 ?
			" selected" : "");
		sb_add_html(sb, name);
		sb_adds(sb, "</option>");
	}
	sb_addf(sb, "</select><p class=\"hint\" id=\"pool-%zu-hint\">Which "
		"nodes the server may run on.</p>", idx);
	if (bad) {
		char id[32];

		snprintf(id, sizeof(id), "pool-%zu", idx);
		field_error(sb, id, "pool", f);
	}
	sb_adds(sb, "</div>");
}

static void
profile_fields(struct strbuf *sb, struct hub *h, size_t idx, json_t *p,
	       int chosen, const struct spawn_in *in,
	       const struct spawn_fail *f)
{
	long gpus = (long)json_integer_value(json_object_get(p, "gpus"));
	const struct spawn_in none = { 0 };

	if (!chosen || in == NULL)
		in = &none;
	if (!chosen)
		f = NULL;
	sb_addf(sb, "<fieldset class=\"profile-fields\" id=\"pf-%zu\"%s>"
		"<legend>Options of profile ", idx,
		chosen ? "" : " disabled hidden");
	sb_add_html(sb, json_string_value(json_object_get(p, "name")));
	sb_adds(sb, "</legend>");
	image_choice(sb, idx, chosen, json_object_get(p, "images"), in->image,
		     f);
	sb_adds(sb, "<div class=\"row\">");
	number_input(sb, idx, "cpu", "CPU cores", json_object_get(p, "cpu"),
		     in->cpu, f);
	number_input(sb, idx, "mem_gb", "Memory (GiB)",
		     json_object_get(p, "mem_gb"), in->mem_gb, f);
	if (gpus > 0)
		gpus_input(sb, idx, gpus, in->gpus, f);
	pool_choice(sb, idx, json_object_get(p, "pools"), in->pool, f);
	sb_adds(sb, "</div>");
	if (h->spawner)
		add_quota(sb, h, p);
	sb_adds(sb, "</fieldset>");
}

static void
profile_summary(struct strbuf *sb, json_t *p)
{
	json_t *c = json_object_get(p, "cpu"), *m = json_object_get(p,
								    "mem_gb");
	long gpus = (long)json_integer_value(json_object_get(p, "gpus"));

	sb_addf(sb, "<span class=\"desc\">CPU %g&ndash;%g, memory %g&ndash;"
		"%g GiB", json_number_value(json_object_get(c, "min")),
		json_number_value(json_object_get(c, "max")),
		json_number_value(json_object_get(m, "min")),
		json_number_value(json_object_get(m, "max")));
	if (gpus > 0)
		sb_addf(sb, ", up to %ld GPU%s", gpus, gpus == 1 ? "" : "s");
	sb_adds(sb, "</span>");
}

/* The index of the chosen profile: the one entered, else the first. */
static size_t
chosen_profile(json_t *list, const struct spawn_in *in)
{
	size_t i;
	json_t *p;

	if (in && in->profile)
		json_array_foreach(list, i, p)
			if (strcmp(in->profile, json_string_value(
			    json_object_get(p, "name"))) == 0)
				return i;
	return 0;
}

static void
profile_choice(struct strbuf *sb, json_t *list, size_t chosen,
	       const struct spawn_fail *f)
{
	size_t i;
	json_t *p;

	if (json_array_size(list) == 1) {
		sb_adds(sb, "<input type=\"hidden\" name=\"profile\" value=\"");
		sb_add_html(sb, json_string_value(json_object_get(
		    json_array_get(list, 0), "name")));
		sb_adds(sb, "\">");
		return;
	}
	sb_adds(sb, "<fieldset class=\"profiles\"><legend>Profile</legend>");
	json_array_foreach(list, i, p) {
		sb_addf(sb, "<div class=\"choice\"><input type=\"radio\" "
			"name=\"profile\" id=\"profile-%zu\" data-fieldset="
			"\"pf-%zu\" value=\"", i, i);
		sb_add_html(sb, json_string_value(json_object_get(p, "name")));
		sb_addf(sb, "\"%s><label for=\"profile-%zu\"><strong>",
			i == chosen ? " checked" : "", i);
		sb_add_html(sb, json_string_value(json_object_get(p, "name")));
		sb_adds(sb, "</strong>");
		profile_summary(sb, p);
		sb_adds(sb, "</label></div>");
	}
	field_error(sb, "profile", "profile", f);
	sb_adds(sb, "</fieldset>");
}

static void
form_action(struct strbuf *sb, const struct spawn_ctx *c)
{
	sb_adds(sb, "/hub/spawn");
	if (strcmp(c->target, c->w.name) != 0 || *c->server) {
		sb_adds(sb, "/");
		add_target(sb, c);
	}
	if (c->next) {
		sb_adds(sb, "?next=");
		pages_add_urlenc(sb, c->next);
	}
}

static json_t *
load_profiles(struct hub *h, const char *name)
{
	struct user *u;
	char **groups = NULL;
	size_t n = 0;
	char *text;
	json_t *j;

	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		groups = xcalloc(u->ngroups + 1, sizeof(*groups));
		for (n = 0; n < u->ngroups; n++)
			groups[n] = xstrdup(u->groups[n]);
	}
	pthread_rwlock_unlock(&h->state.lock);
	text = spawner_profiles_json(h->spawner, (const char *const *)groups,
				     n);
	strv_free(groups);
	j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	return j;
}

static void
form_body(struct strbuf *sb, struct spawn_ctx *c, json_t *list,
	  const struct spawn_in *in, const struct spawn_fail *f)
{
	size_t chosen = chosen_profile(list, in), i;
	json_t *p;

	if (f && f->field == NULL) {
		sb_adds(sb, "<p class=\"error\" role=\"alert\" id=\"form-error\">");
		sb_add_html(sb, f->msg);
		sb_adds(sb, "</p>");
	} else if (f) {
		sb_addf(sb, "<p class=\"error\" role=\"alert\" id=\"form-error\">"
			"Please correct the marked field: <a href=\"#%s-%zu%s\">",
			f->field, strcmp(f->field, "profile") ? chosen : 0,
			strcmp(f->field, "image") ? "" : "-0");
		sb_add_html(sb, f->msg);
		sb_adds(sb, "</a></p>");
	}
	sb_adds(sb, "<form class=\"spawn\" method=\"post\" action=\"");
	form_action(sb, c);
	sb_adds(sb, "\">");
	pages_add_xsrf(sb, c->r->hub, &c->w);
	profile_choice(sb, list, chosen, f);
	json_array_foreach(list, i, p)
		profile_fields(sb, c->r->hub, i, p, i == chosen, in, f);
	sb_adds(sb, "<div class=\"actions\"><button type=\"submit\">"
		"Start server</button> <a class=\"button secondary\" "
		"href=\"/hub/home\">Cancel</a></div></form>");
}

static void
spawn_form(struct spawn_ctx *c, int status, const struct spawn_in *in,
	   const struct spawn_fail *f)
{
	struct hub *h = c->r->hub;
	struct strbuf sb;
	json_t *j = h->spawner ? load_profiles(h, c->target) : NULL;
	json_t *list = json_object_get(j, "profiles");
	int self = strcmp(c->target, c->w.name) == 0;

	sb_init(&sb);
	pages_begin(&sb, h, "Start a server", &c->w, 0);
	sb_adds(&sb, "<h1>Start ");
	add_whose(&sb, c);
	sb_adds(&sb, "</h1><section class=\"card\">");
	if (h->spawner == NULL) {
		sb_adds(&sb, "<p class=\"notice\" id=\"no-spawner\">Starting "
			"servers is not set up on this hub. An administrator "
			"must set SWARMHUB_NETWORK and SWARMHUB_PROFILES and "
			"restart it.</p>");
		status = status == 200 ? 503 : status;
	} else if (json_array_size(list) == 0) {
		sb_adds(&sb, "<p class=\"notice\" id=\"no-profile\">No profile "
			"is available to ");
		sb_adds(&sb, self ? "you" : "this user");
		sb_adds(&sb, ": none of the groups has one and there is no "
			"default profile. Ask an administrator.</p>");
		status = status == 200 ? 403 : status;
	} else {
		form_body(&sb, c, list, in, f);
	}
	sb_adds(&sb, "</section>");
	json_decref(j);
	pages_end(c->r, &sb, status);
}

/* ---- POST ------------------------------------------------------------ */
static void
spawn_in_read(struct req *r, struct spawn_in *in)
{
	in->profile = form_value(r->body, r->body_len, "profile");
	in->image = form_value(r->body, r->body_len, "image");
	in->cpu = form_value(r->body, r->body_len, "cpu");
	in->mem_gb = form_value(r->body, r->body_len, "mem_gb");
	in->gpus = form_value(r->body, r->body_len, "gpus");
	in->pool = form_value(r->body, r->body_len, "pool");
}

static void
spawn_in_free(struct spawn_in *in)
{
	free(in->profile);
	free(in->image);
	free(in->cpu);
	free(in->mem_gb);
	free(in->gpus);
	free(in->pool);
}

/* Adds a number field; -1 (message in e) when the text is not a number. */
static int
set_number(json_t *o, const char *key, const char *text, struct err *e)
{
	char *end;
	double v;

	if (text == NULL || *text == '\0')
		return 0;
	v = strtod(text, &end);
	while (*end == ' ')
		end++;
	if (end == text || *end || !isfinite(v))
		return err_set(e, ERR_INVALID, "%s must be a number", key);
	if (strcmp(key, "gpus") == 0 && v > -1e9 && v < 1e9 &&
	    v == (double)(long long)v)
		json_object_set_new(o, key, json_integer((json_int_t)v));
	else
		json_object_set_new(o, key, json_real(v));
	return 0;
}

static int
set_string(json_t *o, const char *key, const char *text, struct err *e)
{
	if (text == NULL || *text == '\0')
		return 0;
	if (!str_utf8_ok(text, strlen(text)) || strlen(text) > 200)
		return err_set(e, ERR_INVALID, "%s is not a valid choice", key);
	json_object_set_new(o, key, json_string(text));
	return 0;
}

static char *
options_json(const struct spawn_in *in, struct err *e)
{
	json_t *o = json_object();
	char *text = NULL;

	if (set_string(o, "profile", in->profile, e) == 0 &&
	    set_string(o, "image", in->image, e) == 0 &&
	    set_number(o, "cpu", in->cpu, e) == 0 &&
	    set_number(o, "mem_gb", in->mem_gb, e) == 0 &&
	    set_number(o, "gpus", in->gpus, e) == 0 &&
	    set_string(o, "pool", in->pool, e) == 0)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* The field an options error names ("cpu must be between ..."). */
static const char *
error_field(const struct err *e)
{
	static const char *const fields[] = { "mem_gb", "gpus", "cpu",
					      "image", "profile", "pool",
					      NULL };
	const char *m = e->msg;
	char quoted[24];

	if (e->code != ERR_INVALID && e->code != ERR_FORBIDDEN)
		return NULL;
	if (strstr(m, "offers no GPUs"))
		return "gpus";
	if (strncmp(m, "unknown profile", 15) == 0)
		return "profile";
	for (size_t i = 0; fields[i]; i++) {
		size_t n = strlen(fields[i]);

		snprintf(quoted, sizeof(quoted), "option '%s'", fields[i]);
		if ((strncmp(m, fields[i], n) == 0 && (m[n] == ' ' ||
		     m[n] == '\0')) || strncmp(m, quoted, strlen(quoted)) == 0)
			return fields[i];
	}
	return NULL;
}

static void
pending_redirect(struct spawn_ctx *c)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_adds(&sb, "/hub/spawn-pending/");
	add_target(&sb, c);
	if (c->next) {
		sb_adds(&sb, "?next=");
		pages_add_urlenc(&sb, c->next);
	}
	req_redirect(c->r, sb.buf);
	sb_release(&sb);
}

static void
spawn_post(struct spawn_ctx *c)
{
	struct req *r = c->r;
	struct spawn_in in = { 0 };
	struct spawn_fail f = { 0 };
	struct err e = { 0 };
	char *xsrf = form_value(r->body, r->body_len, "_xsrf");
	char *json;
	int ok = xsrf_ok(r, &c->w, xsrf);

	free(xsrf);
	if (!ok) {
		pages_error(r, 403, "Form expired", "This form expired or was "
			    "not sent by this site: reload the page and try "
			    "again.");
		return;
	}
	spawn_in_read(r, &in);
	json = options_json(&in, &e);
	if (json && servers_start_named(r->hub, c->target, c->server, json,
					c->w.name, &e) == 0) {
		pending_redirect(c);
	} else {
		int status = err_http_status(e.code);

		f.field = json ? error_field(&e) : e.msg[0] == 'c' ? "cpu" :
			  e.msg[0] == 'm' ? "mem_gb" : e.msg[0] == 'g' ?
			  "gpus" : NULL;
		f.msg = e.msg;
		spawn_form(c, status >= 400 ? status : 400, &in, &f);
	}
	free(json);
	spawn_in_free(&in);
}

/* ---- entry points ---------------------------------------------------- */
/* Signed in, allowed to act for name (self or admin), name exists; name
 * may be "<user>/<server>" (a named server, valid name). */
static int
spawn_ctx_init(struct spawn_ctx *c, struct req *r, const char *path)
{
	struct err e = { 0 };
	char name[USER_NAME_MAX + 1] = "";
	const char *slash = path ? strchr(path, '/') : NULL;
	int exists;

	c->r = r;
	if (pages_signed_in(r, &c->w) < 0)
		return -1;
	if (slash) {
		snprintf(name, sizeof(name), "%.*s", (int)(slash - path), path);
		snprintf(c->server, sizeof(c->server), "%s", slash + 1);
		if (strlen(slash + 1) > SERVER_NAME_MAX || !*c->server)
			err_set(&e, ERR_INVALID, "a server name has 1-%d "
				"characters", SERVER_NAME_MAX);
		else
			servers_name_check(c->server, &e);
		if (e.code != ERR_OK) {
			pages_error(r, 400, "Bad server name", e.msg);
			return -1;
		}
	} else if (path) {
		snprintf(name, sizeof(name), "%s", path);
	}
	if (*name == '\0')
		snprintf(name, sizeof(name), "%s", c->w.name);
	if (strcmp(name, c->w.name) != 0 && !c->w.admin) {
		pages_error(r, 403, "Not allowed", "Only administrators can "
			    "start or watch another user's server.");
		return -1;
	}
	snprintf(c->target, sizeof(c->target), "%s", name);
	pthread_rwlock_rdlock(&r->hub->state.lock);
	exists = state_user(&r->hub->state, name) != NULL;
	pthread_rwlock_unlock(&r->hub->state.lock);
	if (!exists) {
		pages_error(r, 404, "No such user", "There is no user with "
			    "this name.");
		return -1;
	}
	c->next = pages_local_path(req_query(r, "next"), NULL);
	return 0;
}

/* The state of the server; *why: its last failure or stop reason (heap,
 * NULL when none; may be NULL). */
static enum srv_state
state_of(struct hub *h, const struct spawn_ctx *c, char **why)
{
	struct user *u;
	struct server *s;
	enum srv_state st = SRV_STOPPED;

	if (why)
		*why = NULL;
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, c->target);
	s = u ? user_server(u, c->server) : NULL;
	if (s) {
		st = s->state;
		if (why && s->last_error && *s->last_error)
			*why = xstrdup(s->last_error);
	}
	pthread_rwlock_unlock(&h->state.lock);
	return st;
}

/* To next, else where the image opens (its default_url). */
static void
redirect_to_server(struct spawn_ctx *c)
{
	char *url;

	if (c->next) {
		req_redirect(c->r, c->next);
		return;
	}
	url = servers_open_url(c->r->hub, c->target, c->server);
	req_redirect(c->r, url);
	free(url);
}

void
pages_spawn(struct req *r, const char *name)
{
	struct spawn_ctx c = { 0 };
	enum srv_state st;

	r->handler = "spawn";
	if (r->method != M_GET && r->method != M_HEAD && r->method != M_POST) {
		pages_error(r, 405, "Method not allowed", "Use the form.");
		return;
	}
	if (spawn_ctx_init(&c, r, name) < 0)
		return;
	if (r->method == M_POST) {
		spawn_post(&c);
		return;
	}
	st = state_of(r->hub, &c, NULL);
	if (st == SRV_RUNNING)
		redirect_to_server(&c);
	else if (st == SRV_STARTING)
		pending_redirect(&c);
	else
		spawn_form(&c, 200, NULL, NULL);
}

/* ---- progress -------------------------------------------------------- */
/* why: NULL while starting (the stream tells), else why it is stopped. */
static void
pending_page(struct spawn_ctx *c, const char *why)
{
	struct strbuf sb;
	int self = strcmp(c->target, c->w.name) == 0;

	sb_init(&sb);
	pages_begin(&sb, c->r->hub, "Starting", &c->w, 0);
	sb_adds(&sb, "<h1>Starting ");
	add_whose(&sb, c);
	sb_adds(&sb, "</h1><section class=\"card\" id=\"progress-root\"");
	if (why == NULL) {
		/* at the end: next, else where the image opens */
		char *open = c->next ? NULL : servers_open_url(c->r->hub,
		    c->target, c->server);

		sb_adds(&sb, " data-progress-url=\"/hub/api/users/");
		sb_add_html(&sb, c->target);
		if (*c->server) {
			sb_adds(&sb, "/servers/");
			sb_add_html(&sb, c->server);
			sb_adds(&sb, "/progress\" data-next=\"");
		} else {
			sb_adds(&sb, "/server/progress\" data-next=\"");
		}
		sb_add_html(&sb, c->next ? c->next : open);
		sb_adds(&sb, "\"");
		free(open);
	}
	sb_addf(&sb, "><label for=\"bar\">Progress</label><progress id=\"bar\" "
		"max=\"100\" value=\"%d\"></progress><p id=\"status\" "
		"role=\"status\" aria-live=\"polite\">%s</p>"
		"<div id=\"failed\" class=\"error\" role=\"alert\"%s>"
		"<p><strong>The server is not running.</strong> "
		"<span id=\"failed-msg\">", why ? 100 : 0, why ? "Stopped." :
		"Waiting for the server&hellip;", why ? "" : " hidden");
	if (why)
		sb_add_html(&sb, why);
	sb_adds(&sb, "</span></p><p><a class=\"button\" id=\"retry\" "
		"href=\"");
	form_action(&sb, c);
	sb_adds(&sb, "\">Try again</a></p></div><h2>Event log</h2>"
		"<ol id=\"log\" class=\"log\" aria-live=\"polite\"></ol>");
	if (self && why == NULL) {
		sb_adds(&sb, "<form method=\"post\" action=\"/hub/home/stop\">");
		pages_add_xsrf(&sb, c->r->hub, &c->w);
		sb_adds(&sb, "<input type=\"hidden\" name=\"server\" value=\"");
		sb_add_html(&sb, c->server);
		sb_adds(&sb, "\">");
		sb_adds(&sb, "<button type=\"submit\" class=\"secondary\" "
			"id=\"cancel\">Cancel the start</button></form>");
	}
	sb_adds(&sb, "<noscript><p class=\"notice\">This page needs "
		"JavaScript to follow the start. <a href=\"/hub/home\">"
		"Your home page</a> shows the state too.</p></noscript>"
		"</section>");
	pages_end(c->r, &sb, 200);
}

void
pages_spawn_pending(struct req *r, const char *name)
{
	struct spawn_ctx c = { 0 };
	enum srv_state st;
	struct strbuf sb;
	char *why;

	r->handler = "spawn_pending";
	if (spawn_ctx_init(&c, r, name) < 0)
		return;
	st = state_of(r->hub, &c, &why);
	if (st == SRV_RUNNING) {
		redirect_to_server(&c);
	} else if (st == SRV_STARTING || (st == SRV_STOPPED && why)) {
		pending_page(&c, st == SRV_STARTING ? NULL : why);
	} else {
		sb_init(&sb);
		form_action(&sb, &c);
		req_redirect(r, sb.buf);
		sb_release(&sb);
	}
	free(why);
}
