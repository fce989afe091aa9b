/*
 * pages.c - the hub's HTML pages for the core: the page frame (head,
 * header, navigation), login, logout, home, the stop button of home, error
 * pages and the static assets.
 *
 * Pages are written into a strbuf; every user-controlled value (names,
 * groups, LDAP attributes, descriptions, error messages) goes through
 * sb_add_html. No inline script or style: the CSP allows only
 * /hub/static/style.css and /hub/static/app.js (assets.c). State changes
 * are forms carrying the session's _xsrf value, or app.js calling the REST
 * API with X-XSRFToken (read from the _xsrf cookie).
 * The spawn form and progress page are in pages_spawn.c, admin and tokens
 * in pages_admin.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

#define LOGIN_COOKIE "swarmhub-login"

/* ---- small helpers shared by the pages ------------------------------- */
const char *
pages_local_path(const char *next, const char *dflt)
{
	if (next == NULL || next[0] != '/' || strlen(next) > 1000 ||
	    !str_utf8_ok(next, strlen(next)))
		return dflt;
	/* browsers drop tabs and newlines and read '\\' as '/': "/\t/x"
	 * would become "//x", another site */
	for (const char *p = next; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return dflt;
	if (next[1] == '/')
		return dflt;
	return next;
}

void
pages_add_urlenc(struct strbuf *sb, const char *s)
{
	sb_add_pct(sb, s, "/");
}

static void
add_ago(struct strbuf *sb, int64_t s)
{
	if (s < 60)
		sb_adds(sb, "just now");
	else if (s < 3600)
		sb_addf(sb, "%lld min ago", (long long)(s / 60));
	else if (s < 86400)
		sb_addf(sb, "%lld h ago", (long long)(s / 3600));
	else
		sb_addf(sb, "%lld days ago", (long long)(s / 86400));
}

void
pages_add_time(struct strbuf *sb, int64_t ms, int64_t now_ms)
{
	char iso[40];

	if (ms <= 0) {
		sb_adds(sb, "never");
		return;
	}
	time_iso8601(ms, iso, sizeof(iso));
	sb_addf(sb, "<time datetime=\"%s\">%.10s %.5s UTC", iso, iso,
		iso + 11);
	if (now_ms >= ms) {
		sb_adds(sb, " (");
		add_ago(sb, (now_ms - ms) / 1000);
		sb_adds(sb, ")");
	}
	sb_adds(sb, "</time>");
}

void
pages_add_ago(struct strbuf *sb, int64_t ms, int64_t now_ms)
{
	char iso[40];

	if (ms <= 0) {
		sb_adds(sb, "never");
		return;
	}
	time_iso8601(ms, iso, sizeof(iso));
	sb_addf(sb, "<time datetime=\"%s\" title=\"%.10s %.5s UTC\">", iso,
		iso, iso + 11);
	if (now_ms >= ms)
		add_ago(sb, (now_ms - ms) / 1000);
	else
		sb_addf(sb, "%.10s %.5s UTC", iso, iso + 11);
	sb_adds(sb, "</time>");
}

void
pages_add_num(struct strbuf *sb, double v)
{
	sb_addf(sb, "%g", v);
}

const char *
pages_state_word(enum srv_state st)
{
	static const char *const words[] = { "stopped", "starting", "running",
					     "stopping" };

	return (unsigned)st < 4 ? words[st] : "unknown";
}

void
pages_add_xsrf(struct strbuf *sb, struct hub *h, const struct who *w)
{
	char xsrf[65];

	xsrf_for_session(h, w->session_hash, xsrf);
	sb_adds(sb, "<input type=\"hidden\" name=\"_xsrf\" value=\"");
	sb_adds(sb, xsrf);
	sb_adds(sb, "\">");
}

int
pages_signed_in(struct req *r, struct who *w)
{
	struct strbuf sb, back;
	const char *next = pages_local_path(req_query(r, "next"), NULL);

	who_identify(r, w);
	if (w->kind == WHO_USER && w->by_cookie)
		return 0;
	sb_init(&back);	/* this page, with its own next kept */
	sb_adds(&back, r->path);
	if (next) {
		sb_adds(&back, "?next=");
		pages_add_urlenc(&back, next);
	}
	sb_init(&sb);
	sb_adds(&sb, "/hub/login?next=");
	pages_add_urlenc(&sb, back.buf);
	req_redirect(r, sb.buf);
	sb_release(&sb);
	sb_release(&back);
	return -1;
}

int
pages_signed_in_admin(struct req *r, struct who *w)
{
	if (pages_signed_in(r, w) < 0)
		return -1;
	if (w->admin)
		return 0;
	pages_error(r, 403, "Administrators only", "This page is for the "
		    "hub's administrators.");
	return -1;
}

/* ---- the frame ------------------------------------------------------- */
static pthread_once_t logo_once = PTHREAD_ONCE_INIT;
static const char *logo;

/* SWARMHUB_LOGO_URL: a local path or a data: image (the CSP's img-src). */
static void
logo_load(void)
{
	const char *v = cfg_get("LOGO_URL", NULL, NULL);

	if (v == NULL || *v == '\0')
		return;
	if (strncmp(v, "data:image/", 11) == 0 ||
	    pages_local_path(v, NULL) != NULL)
		logo = v;
	else
		log_event(LOG_WARN, "pages.logo_ignored", "reason=%s",
			  "SWARMHUB_LOGO_URL must be a local path (/...) or a "
			  "data:image/ URL");
}

static void
add_nav(struct strbuf *sb, struct hub *h, const struct who *w)
{
	sb_adds(sb, "<nav aria-label=\"Main\"><ul>"
		"<li><a href=\"/hub/home\">Home</a></li>"
		"<li><a href=\"/hub/token\">Tokens</a></li>");
	if (w->admin)
		sb_adds(sb, "<li><a href=\"/hub/admin\">Admin</a></li>");
	sb_adds(sb, "<li class=\"who\">");
	sb_add_html(sb, w->name);
	/* logging out changes state: a form, never a link */
	sb_adds(sb, "</li><li><form class=\"logout\" method=\"post\" "
		"action=\"/hub/logout\">");
	pages_add_xsrf(sb, h, w);
	sb_adds(sb, "<button type=\"submit\" class=\"link\">Log out</button>"
		"</form></li></ul></nav>");
}

void
pages_begin(struct strbuf *sb, struct hub *h, const char *title,
	    const struct who *w, int flags)
{
	pthread_once(&logo_once, logo_load);
	sb_adds(sb, "<!doctype html><html lang=\"en\"><head>"
		"<meta charset=\"utf-8\"><meta name=\"viewport\" "
		"content=\"width=device-width, initial-scale=1\"><title>");
	sb_add_html(sb, title);
	sb_adds(sb, " - ");
	sb_add_html(sb, h->cfg.hub_name);
	sb_adds(sb, "</title><link rel=\"stylesheet\" href=\"/hub/static/"
		"style.css\"><script src=\"/hub/static/app.js\" defer></script>"
		"</head><body");
	if (flags & PAGE_REFRESH)
		sb_adds(sb, " data-refresh=\"2\"");
	sb_adds(sb, "><a class=\"skip\" href=\"#main\">Skip to content</a>"
		"<header class=\"top\"><a class=\"brand\" href=\"/hub/home\">");
	if (logo) {
		sb_adds(sb, "<img src=\"");
		sb_add_html(sb, logo);
		sb_adds(sb, "\" alt=\"\" width=\"32\" height=\"32\">");
	}
	sb_adds(sb, "<span>");
	sb_add_html(sb, h->cfg.hub_name);
	sb_adds(sb, "</span></a>");
	if (w && w->kind == WHO_USER)
		add_nav(sb, h, w);
	sb_adds(sb, "</header><main id=\"main\"");
	if (flags & PAGE_WIDE)
		sb_adds(sb, " class=\"wide\"");
	sb_adds(sb, ">");
}

void
pages_end(struct req *r, struct strbuf *sb, int status)
{
	size_t len;
	char *html;

	sb_adds(sb, "</main></body></html>\n");
	html = sb_detach(sb, &len);
	req_reply(r, status, "text/html; charset=utf-8", html, len);
}

/* ---- error pages ----------------------------------------------------- */
static const char *
next_step(int status)
{
	switch (status) {
	case 400: return "Check what you entered and try again.";
	case 403: return "If you think you should have access, ask an "
		"administrator of this hub. You can also sign in as another "
		"user.";
	case 404: return "Check the address for typing mistakes, or start "
		"again from your home page.";
	case 405: return "Use the buttons and forms of the pages.";
	case 429: return "Wait a moment, then try again.";
	case 502: return "The notebook server did not answer. It may have "
		"stopped or crashed: open your home page to see its state "
		"and start it again.";
	case 503: return "The hub cannot do this right now. Wait a minute "
		"and reload the page; if it keeps happening, tell an "
		"administrator.";
	case 504: return "The notebook server took too long to answer. "
		"Reload the page; if it keeps happening, restart the server "
		"from your home page.";
	default: return status >= 500 ? "Reload the page in a moment; if it "
		"keeps happening, tell an administrator." :
		"Go back and try again.";
	}
}

char *
pages_error_html(struct hub *h, int status, const char *title,
		 const char *message, size_t *len)
{
	struct strbuf sb;

	sb_init(&sb);
	pages_begin(&sb, h, title, NULL, 0);
	sb_addf(&sb, "<section class=\"card error-page\"><p class=\"code\">"
		"Error %d</p><h1>", status);
	sb_add_html(&sb, title);
	sb_adds(&sb, "</h1><p>");
	sb_add_html(&sb, message);
	sb_adds(&sb, "</p><h2>What you can do</h2><p>");
	sb_adds(&sb, next_step(status));
	sb_adds(&sb, "</p><p class=\"actions\"><a class=\"button\" "
		"href=\"/hub/home\">Go to your home page</a>");
	if (status == 403)
		sb_adds(&sb, " <a class=\"button secondary\" "
			"href=\"/hub/logout\">Sign in as someone else</a>");
	sb_adds(&sb, "</p></section></main></body></html>\n");
	return sb_detach(&sb, len);
}

void
pages_error(struct req *r, int status, const char *title, const char *message)
{
	size_t len;
	char *html = pages_error_html(r->hub, status, title, message, &len);

	req_reply(r, status, "text/html; charset=utf-8", html, len);
}

void
pages_static(struct req *r)
{
	int js = strcmp(r->path, "/hub/static/app.js") == 0;

	r->handler = "static";
	req_add_header(r, "Cache-Control", "public, max-age=3600");
	if (js)
		req_reply(r, 200, "text/javascript; charset=utf-8",
			  xstrndup(assets_js, assets_js_len), assets_js_len);
	else
		req_reply(r, 200, "text/css; charset=utf-8",
			  xstrndup(assets_css, assets_css_len),
			  assets_css_len);
}

/* ---- login and logout ------------------------------------------------ */
static void
login_form(struct req *r, int status, const char *message,
	   const char *username, const char *next)
{
	struct strbuf sb;
	char nonce[65], xsrf[65], msg[80];
	char *cookie;

	crypto_token(nonce);
	snprintf(msg, sizeof(msg), "login:%s", nonce);
	crypto_hmac_hex(r->hub->cfg.secret, msg, xsrf);
	cookie = xasprintf("%s=%s; Path=/hub/; HttpOnly; SameSite=Lax; "
			   "Max-Age=3600%s", LOGIN_COOKIE, nonce,
			   r->https ? "; Secure" : "");
	req_add_header(r, "Set-Cookie", cookie);
	free(cookie);
	sb_init(&sb);
	pages_begin(&sb, r->hub, "Sign in", NULL, 0);
	sb_adds(&sb, "<section class=\"card narrow\"><h1>Sign in to ");
	sb_add_html(&sb, r->hub->cfg.hub_name);
	sb_adds(&sb, "</h1>");
	if (message) {
		sb_adds(&sb, "<p class=\"error\" role=\"alert\">");
		sb_add_html(&sb, message);
		sb_adds(&sb, "</p>");
	}
	sb_adds(&sb, "<form method=\"post\" action=\"/hub/login?next=");
	pages_add_urlenc(&sb, pages_local_path(next, "/hub/home"));
	sb_adds(&sb, "\"><input type=\"hidden\" name=\"_xsrf\" value=\"");
	sb_adds(&sb, xsrf);
	sb_adds(&sb, "\"><label for=\"username\">Username</label>"
		"<input type=\"text\" id=\"username\" name=\"username\" "
		"autocomplete=\"username\" autocapitalize=\"off\" "
		"spellcheck=\"false\" required autofocus value=\"");
	sb_add_html(&sb, username ? username : "");
	sb_adds(&sb, "\"><label for=\"password\">Password</label>"
		"<input type=\"password\" id=\"password\" name=\"password\" "
		"autocomplete=\"current-password\" required>"
		"<button type=\"submit\">Sign in</button></form></section>");
	pages_end(r, &sb, status);
}

static int
login_xsrf_ok(struct req *r, const char *form_xsrf)
{
	const char *nonce = req_cookie(r, LOGIN_COOKIE);
	char want[65], msg[80];

	if (nonce == NULL || strlen(nonce) != 64 || form_xsrf == NULL ||
	    strlen(form_xsrf) != 64)
		return 0;
	snprintf(msg, sizeof(msg), "login:%s", nonce);
	crypto_hmac_hex(r->hub->cfg.secret, msg, want);
	return str_ct_eq(want, form_xsrf, 64);
}

static void
login_post(struct req *r, const char *next)
{
	char *user = form_value(r->body, r->body_len, "username");
	char *pass = form_value(r->body, r->body_len, "password");
	char *xsrf = form_value(r->body, r->body_len, "_xsrf");
	char name[USER_NAME_MAX + 1], cookie[65];
	struct err e = { 0 };

	if (!login_xsrf_ok(r, xsrf)) {
		login_form(r, 403, "This form expired or was not sent by this "
			   "site: please sign in again.", user, next);
	} else if ((user && !str_utf8_ok(user, strlen(user))) ||
		   (pass && !str_utf8_ok(pass, strlen(pass)))) {
		login_form(r, 400, "Username and password must be text.",
			   NULL, next);
	} else if (login_check(r->hub, user, pass, r->ip, name, cookie,
			       &e) < 0) {
		int status = e.code == ERR_UNAVAILABLE ? 503 :
			     e.code == ERR_TOOMANY ? 429 :
			     e.code == ERR_INVALID ? 400 : 403;

		login_form(r, status, e.msg, user, next);
	} else {
		session_cookie_header(r, cookie, r->hub->cfg.session_max_age_s);
		req_redirect(r, pages_local_path(next, "/hub/home"));
	}
	free(user);
	if (pass)
		memset(pass, 0, strlen(pass));
	free(pass);
	free(xsrf);
}

void
pages_login(struct req *r)
{
	struct who w;
	const char *next = req_query(r, "next");

	r->handler = "login";
	if (r->method == M_POST) {
		login_post(r, next);
		return;
	}
	if (r->method != M_GET && r->method != M_HEAD) {
		pages_error(r, 405, "Method not allowed", "Use the form.");
		return;
	}
	who_identify(r, &w);
	if (w.kind == WHO_USER && w.by_cookie)
		req_redirect(r, pages_local_path(next, "/hub/home"));
	else
		login_form(r, 200, NULL, NULL, next);
}

/* GET: a page whose button posts the form (a link or an image elsewhere
 * must not be able to sign anyone out). */
static void
logout_form(struct req *r, const struct who *w)
{
	struct strbuf sb;

	sb_init(&sb);
	pages_begin(&sb, r->hub, "Log out", w, 0);
	sb_adds(&sb, "<section class=\"card narrow\"><h1>Log out</h1><p>"
		"Signed in as <strong>");
	sb_add_html(&sb, w->name);
	sb_adds(&sb, "</strong>. Your server keeps running after you log "
		"out.</p><form method=\"post\" action=\"/hub/logout\">");
	pages_add_xsrf(&sb, r->hub, w);
	sb_adds(&sb, "<button type=\"submit\">Log out</button> <a "
		"class=\"button secondary\" href=\"/hub/home\">Cancel</a>"
		"</form></section>");
	pages_end(r, &sb, 200);
}

void
pages_logout(struct req *r)
{
	struct who w;
	char *xsrf = NULL;
	int signed_in;

	r->handler = "logout";
	who_identify(r, &w);
	signed_in = w.kind == WHO_USER && w.by_cookie;
	if (r->method == M_POST) {
		xsrf = form_value(r->body, r->body_len, "_xsrf");
		if (signed_in && !xsrf_ok(r, &w, xsrf)) {
			free(xsrf);
			pages_error(r, 403, "Form expired", "This logout form "
				    "expired or was not sent by this site.");
			return;
		}
		free(xsrf);
		if (signed_in) {
			logout_session(r->hub, w.session_hash);
			hub_audit(r->hub, w.name, "logout", w.name, NULL,
				  r->ip);
		}
	} else if (r->method != M_GET && r->method != M_HEAD) {
		pages_error(r, 405, "Method not allowed", "Use the form.");
		return;
	} else if (signed_in) {
		logout_form(r, &w);
		return;
	}
	session_cookie_header(r, "", 0);
	req_redirect(r, "/hub/login");
}

/* ---- home ------------------------------------------------------------ */
/* A copy of what home shows, taken under the read lock. */
struct home_view {
	int exists;
	enum srv_state state;
	int has_opts;
	struct spawn_opts opts;
	int64_t started_ms, last_activity_ms, user_activity_ms;
	char *last_error;
	char **groups;
	long idle_timeout_s;	/* the culler's timeout for it; 0: none */
	int has_usage;		/* a recent sample from Docker's stats */
	double used_cpu;	/* -1: one sample so far */
	int64_t used_mem;
	struct named_view *named;	/* the named servers */
	size_t nnamed;
	int any_pending;	/* a server of theirs starts or stops */
};

/* A named server as the home page lists it. */
struct named_view {
	char name[SERVER_NAME_MAX + 1];
	enum srv_state state;
	int has_opts;
	struct spawn_opts opts;
	int64_t last_activity_ms;
	char *last_error;
	char *open_url;		/* prefix + the image's default_url */
};

/* The idle timeout that applies to a server of profile (the profile's
 * cull_timeout, else CULL_TIMEOUT); 0 when nothing is culled for idling. */
static long
idle_timeout(struct hub *h, const char *profile)
{
	char **names;
	long *secs, t = h->cfg.cull_timeout_s;
	size_t n;

	if (h->spawner == NULL)
		return 0;
	n = spawner_cull_timeouts(h->spawner, &names, &secs);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], profile) == 0)
			t = secs[i];
	strv_free(names);
	free(secs);
	return t > 0 ? t : 0;
}

static void
home_view_get(struct hub *h, const char *name, struct home_view *v)
{
	struct user *u;
	struct server *s;

	memset(v, 0, sizeof(*v));
	pthread_rwlock_rdlock(&h->state.lock);
	u = state_user(&h->state, name);
	if (u) {
		v->exists = 1;
		v->user_activity_ms = __atomic_load_n(&u->last_activity_ms,
						      __ATOMIC_RELAXED);
		v->groups = xcalloc(u->ngroups + 1, sizeof(*v->groups));
		for (size_t i = 0; i < u->ngroups; i++)
			v->groups[i] = xstrdup(u->groups[i]);
	}
	s = u ? u->server : NULL;
	if (u && u->nnamed)
		v->named = xcalloc(u->nnamed, sizeof(*v->named));
	for (size_t i = 0; u && i < u->nnamed; i++) {
		struct server *n = u->named[i];
		struct named_view *nv = &v->named[v->nnamed++];

		snprintf(nv->name, sizeof(nv->name), "%s", n->name);
		nv->state = n->state;
		nv->has_opts = n->has_opts;
		nv->opts = n->opts;
		nv->last_activity_ms = n->last_activity_ms;
		if (n->last_error && *n->last_error)
			nv->last_error = xstrdup(n->last_error);
	}
	v->any_pending = u && user_busiest_state(u) != SRV_RUNNING &&
			 user_busiest_state(u) != SRV_STOPPED;
	if (s) {
		v->state = s->state;
		v->has_opts = s->has_opts;
		v->opts = s->opts;
		v->started_ms = s->started_ms;
		v->last_activity_ms = s->last_activity_ms;
		if (s->last_error && *s->last_error)
			v->last_error = xstrdup(s->last_error);
		v->has_usage = h->spawner && h->cfg.usage_every_s > 0 &&
		    usage_get(s, time_now_ms(), h->cfg.usage_every_s,
			      &v->used_cpu, &v->used_mem) == 0;
	}
	pthread_rwlock_unlock(&h->state.lock);
	if (v->has_opts)
		v->idle_timeout_s = idle_timeout(h, v->opts.profile);
	for (size_t i = 0; i < v->nnamed; i++)
		v->named[i].open_url = servers_open_url(h, name,
							v->named[i].name);
}

static void
home_view_release(struct home_view *v)
{
	free(v->last_error);
	strv_free(v->groups);
	for (size_t i = 0; i < v->nnamed; i++) {
		free(v->named[i].last_error);
		free(v->named[i].open_url);
	}
	free(v->named);
}

void
pages_add_usage(struct strbuf *sb, double cpu, int64_t mem_bytes)
{
	if (cpu < 0)
		sb_adds(sb, "&hellip; CPU, ");
	else
		sb_addf(sb, "%.2f CPU, ", cpu);
	if (mem_bytes < (int64_t)SPAWNER_GIB)
		sb_addf(sb, "%.0f MiB", (double)mem_bytes / (1 << 20));
	else
		sb_addf(sb, "%.2f GiB", (double)mem_bytes / SPAWNER_GIB);
}

static void
fact(struct strbuf *sb, const char *term, const char *value)
{
	sb_adds(sb, "<div><dt>");
	sb_adds(sb, term);
	sb_adds(sb, "</dt><dd>");
	sb_add_html(sb, value);
	sb_adds(sb, "</dd></div>");
}

static void
home_facts(struct strbuf *sb, const struct home_view *v, int64_t now)
{
	char buf[64];

	sb_adds(sb, "<dl class=\"facts\">");
	fact(sb, "Profile", v->opts.profile);
	fact(sb, "Image", v->opts.image);
	snprintf(buf, sizeof(buf), "%g core%s", v->opts.cpu,
		 v->opts.cpu == 1 ? "" : "s");
	fact(sb, "CPU", buf);
	snprintf(buf, sizeof(buf), "%.4g GiB", v->opts.mem_gb);
	fact(sb, "Memory", buf);
	snprintf(buf, sizeof(buf), "%d", v->opts.gpus);
	fact(sb, "GPUs", buf);
	if (v->state == SRV_RUNNING && v->has_usage) {
		sb_adds(sb, "<div><dt>In use now</dt><dd id=\"used\">");
		pages_add_usage(sb, v->used_cpu, v->used_mem);
		sb_adds(sb, "</dd></div>");
	}
	if (v->state != SRV_STOPPED) {
		sb_adds(sb, "<div><dt>Started</dt><dd>");
		pages_add_time(sb, v->started_ms, now);
		sb_adds(sb, "</dd></div><div><dt>Last activity</dt><dd>");
		pages_add_time(sb, v->last_activity_ms, now);
		sb_adds(sb, "</dd></div>");
		if (v->idle_timeout_s >= 3600 && v->idle_timeout_s % 3600 == 0)
			snprintf(buf, sizeof(buf), "after %ld h idle",
				 v->idle_timeout_s / 3600);
		else if (v->idle_timeout_s > 0)
			snprintf(buf, sizeof(buf), "after %ld min idle",
				 (v->idle_timeout_s + 59) / 60);
		else
			snprintf(buf, sizeof(buf), "never for idling");
		fact(sb, "Stops", buf);
	}
	sb_adds(sb, "</dl>");
}

static void
home_buttons(struct strbuf *sb, struct hub *h, const struct who *w,
	     const struct home_view *v)
{
	sb_adds(sb, "<div class=\"actions\">");
	if (v->state == SRV_RUNNING) {
		char *url = servers_open_url(h, w->name, "");

		sb_adds(sb, "<a class=\"button\" id=\"open\" href=\"");
		sb_add_html(sb, url);
		sb_adds(sb, "\">Open</a>");
		free(url);
	} else if (v->state == SRV_STOPPED) {
		sb_adds(sb, "<a class=\"button\" id=\"start\" "
			"href=\"/hub/spawn\">Start</a>");
	} else if (v->state == SRV_STARTING) {
		sb_adds(sb, "<a class=\"button\" href=\"/hub/spawn-pending/");
		sb_add_html(sb, w->name);
		sb_adds(sb, "\">Show progress</a>");
	}
	if (v->state == SRV_RUNNING || v->state == SRV_STARTING) {
		sb_adds(sb, "<form method=\"post\" action=\"/hub/home/stop\">");
		pages_add_xsrf(sb, h, w);
		sb_adds(sb, "<button type=\"submit\" id=\"stop\" "
			"class=\"danger\">Stop</button></form>");
	}
	sb_adds(sb, "</div>");
}

static void
home_server(struct strbuf *sb, struct hub *h, const struct who *w,
	    const struct home_view *v)
{
	int64_t now = time_now_ms();
	const char *word = pages_state_word(v->state);

	sb_adds(sb, "<section class=\"card\" aria-labelledby=\"srv-h\">"
		"<h2 id=\"srv-h\">Your notebook server</h2>"
		"<p class=\"state-line\">State: <span id=\"state\" "
		"class=\"badge ");
	sb_adds(sb, word);
	sb_adds(sb, "\">");
	sb_adds(sb, word);
	sb_adds(sb, "</span></p>");
	if (h->spawner == NULL)
		sb_adds(sb, "<p class=\"notice\">Starting servers is not set "
			"up on this hub. An administrator must set "
			"SWARMHUB_NETWORK and SWARMHUB_PROFILES.</p>");
	else if (!spawner_has_home(h->spawner))
		sb_adds(sb, "<p class=\"notice\" id=\"no-home\">Files are "
			"not kept: this hub gives servers no home directory "
			"(SWARMHUB_HOME is empty), so what you save goes "
			"when the server stops. Download what you want to "
			"keep.</p>");
	if (v->has_opts && v->state != SRV_STOPPED)
		home_facts(sb, v, now);
	if (v->state == SRV_STOPPED && v->last_error) {
		sb_adds(sb, "<p class=\"notice\" id=\"last-error\">"
			"<strong>Why it stopped:</strong> ");
		sb_add_html(sb, v->last_error);
		sb_adds(sb, "</p>");
	}
	if (v->state == SRV_STARTING || v->state == SRV_STOPPING)
		sb_adds(sb, "<p class=\"muted\" role=\"status\">This page "
			"updates itself until the server is ready.</p>");
	if (h->spawner)
		home_buttons(sb, h, w, v);
	sb_adds(sb, "</section>");
}

/* A Stop or Remove button for a named server (POST /hub/home/stop). */
static void
named_form(struct strbuf *sb, struct hub *h, const struct who *w,
	   const char *server, int remove)
{
	sb_adds(sb, "<form method=\"post\" action=\"/hub/home/stop\" "
		"class=\"inline\">");
	pages_add_xsrf(sb, h, w);
	sb_adds(sb, "<input type=\"hidden\" name=\"server\" value=\"");
	sb_add_html(sb, server);
	sb_adds(sb, remove ? "\"><input type=\"hidden\" name=\"remove\" "
		"value=\"1\"><button type=\"submit\" class=\"secondary\" "
		"data-act=\"remove\">Remove</button></form>" :
		"\"><button type=\"submit\" class=\"danger\" "
		"data-act=\"stop\">Stop</button></form>");
}

static void
named_actions(struct strbuf *sb, struct hub *h, const struct who *w,
	      const struct named_view *n)
{
	if (n->state == SRV_RUNNING) {
		sb_adds(sb, "<a class=\"button\" data-act=\"open\" href=\"");
		sb_add_html(sb, n->open_url);
		sb_adds(sb, "\">Open</a> ");
	} else if (n->state == SRV_STOPPED) {
		sb_adds(sb, "<a class=\"button\" data-act=\"start\" "
			"href=\"/hub/spawn/");
		pages_add_urlenc(sb, w->name);
		sb_addc(sb, '/');
		pages_add_urlenc(sb, n->name);
		sb_adds(sb, "\">Start</a> ");
	} else if (n->state == SRV_STARTING) {
		sb_adds(sb, "<a class=\"button\" href=\"/hub/spawn-pending/");
		pages_add_urlenc(sb, w->name);
		sb_addc(sb, '/');
		pages_add_urlenc(sb, n->name);
		sb_adds(sb, "\">Show progress</a> ");
	}
	if (n->state == SRV_RUNNING || n->state == SRV_STARTING)
		named_form(sb, h, w, n->name, 0);
	else if (n->state == SRV_STOPPED)
		named_form(sb, h, w, n->name, 1);
}

/* The named servers: a table with start/stop/open, and the "new server"
 * form (GET /hub/home/new?server=<name>). */
static void
home_named(struct strbuf *sb, struct hub *h, const struct who *w,
	   const struct home_view *v)
{
	int64_t now = time_now_ms();

	sb_adds(sb, "<section class=\"card\" aria-labelledby=\"named-h\">"
		"<h2 id=\"named-h\">Named servers</h2>");
	if (v->nnamed == 0)
		sb_adds(sb, "<p class=\"muted\" id=\"no-named\">None yet. "
			"A named server runs next to your default one, with "
			"its own size and image, and shares your home.</p>");
	else
		sb_adds(sb, "<div class=\"table-wrap\"><table id=\"named\">"
			"<thead><tr><th scope=\"col\">Name</th>"
			"<th scope=\"col\">State</th>"
			"<th scope=\"col\">Image and size</th>"
			"<th scope=\"col\">Last activity</th>"
			"<th scope=\"col\">Actions</th></tr></thead><tbody>");
	for (size_t i = 0; i < v->nnamed; i++) {
		const struct named_view *n = &v->named[i];
		const char *word = pages_state_word(n->state);

		sb_adds(sb, "<tr data-server=\"");
		sb_add_html(sb, n->name);
		sb_adds(sb, "\"><td>");
		sb_add_html(sb, n->name);
		sb_addf(sb, "</td><td><span class=\"badge %s\">%s</span>",
			word, word);
		if (n->state == SRV_STOPPED && n->last_error) {
			sb_adds(sb, "<br><small class=\"muted\">");
			sb_add_html(sb, n->last_error);
			sb_adds(sb, "</small>");
		}
		sb_adds(sb, "</td><td>");
		if (n->has_opts) {
			sb_add_html(sb, n->opts.image);
			sb_addf(sb, "<br><small class=\"muted\">%g CPU, %.4g GiB"
				"</small>", n->opts.cpu, n->opts.mem_gb);
		}
		sb_adds(sb, "</td><td>");
		pages_add_ago(sb, n->last_activity_ms, now);
		sb_adds(sb, "</td><td class=\"named-actions\">");
		if (h->spawner)
			named_actions(sb, h, w, n);
		sb_adds(sb, "</td></tr>");
	}
	if (v->nnamed)
		sb_adds(sb, "</tbody></table></div>");
	if (h->cfg.named_server_limit > 0)
		sb_addf(sb, "<p class=\"muted\">Up to %ld named servers.</p>",
			h->cfg.named_server_limit);
	if (h->spawner)
		sb_adds(sb, "<form method=\"get\" action=\"/hub/home/new\" "
			"id=\"new-server\" class=\"inline\"><label for=\""
			"server-name-in\">New server</label> <input "
			"id=\"server-name-in\" name=\"server\" required "
			"maxlength=\"63\" pattern=\"[a-z0-9][a-z0-9._\\-]*\" "
			"placeholder=\"gpu\" aria-describedby=\"server-rule\"> "
			"<button type=\"submit\">Create</button> <small "
			"id=\"server-rule\" class=\"muted\">1&ndash;63 of "
			"a&ndash;z, 0&ndash;9, <code>.</code> <code>_</code> "
			"<code>-</code>, starting with a letter or digit"
			"</small></form>");
	sb_adds(sb, "</section>");
}

/* GET /hub/home/new?server=<name>: to that server's spawn form. */
void
pages_home_new(struct req *r)
{
	struct who w;
	struct err e = { 0 };
	const char *server = req_query(r, "server");
	struct strbuf sb;

	r->handler = "home_new";
	if (pages_signed_in(r, &w) < 0)
		return;
	if (server == NULL || *server == '\0')
		err_set(&e, ERR_INVALID, "give the new server a name");
	else if (strlen(server) > SERVER_NAME_MAX)
		err_set(&e, ERR_INVALID, "a server name has at most %d "
			"characters", SERVER_NAME_MAX);
	else
		servers_name_check(server, &e);
	if (e.code != ERR_OK) {
		pages_error(r, 400, "Bad server name", e.msg);
		return;
	}
	sb_init(&sb);
	sb_adds(&sb, "/hub/spawn/");
	pages_add_urlenc(&sb, w.name);
	sb_addc(&sb, '/');
	pages_add_urlenc(&sb, server);
	req_redirect(r, sb.buf);
	sb_release(&sb);
}

void
pages_home(struct req *r)
{
	struct strbuf sb;
	struct who w;
	struct home_view v;
	int pending;

	r->handler = "home";
	if (pages_signed_in(r, &w) < 0)
		return;
	home_view_get(r->hub, w.name, &v);
	pending = v.any_pending;
	sb_init(&sb);
	pages_begin(&sb, r->hub, "Home", &w, pending ? PAGE_REFRESH : 0);
	sb_adds(&sb, "<h1>Welcome, ");
	sb_add_html(&sb, w.name);
	sb_adds(&sb, "</h1>");
	home_server(&sb, r->hub, &w, &v);
	home_named(&sb, r->hub, &w, &v);
	sb_adds(&sb, "<section class=\"card\" aria-labelledby=\"acct-h\">"
		"<h2 id=\"acct-h\">Your account</h2><dl class=\"facts\">");
	sb_adds(&sb, "<div><dt>Groups</dt><dd id=\"groups\">");
	for (size_t i = 0; v.groups && v.groups[i]; i++) {
		sb_adds(&sb, i ? ", " : "");
		sb_add_html(&sb, v.groups[i]);
	}
	if (v.groups == NULL || v.groups[0] == NULL)
		sb_adds(&sb, "none");
	sb_adds(&sb, "</dd></div>");
	fact(&sb, "Role", w.admin ? "administrator" : "user");
	sb_adds(&sb, "</dl><p class=\"actions\"><a class=\"button secondary\" "
		"href=\"/hub/token\">Manage API tokens</a>");
	if (w.admin)
		sb_adds(&sb, " <a class=\"button secondary\" "
			"href=\"/hub/admin\">Administration</a>");
	sb_adds(&sb, "</p></section>");
	home_view_release(&v);
	pages_end(r, &sb, 200);
}

void
pages_home_stop(struct req *r)
{
	struct who w;
	struct err e = { 0 };
	char *xsrf, *server, *remove, reason[128];
	int rc;

	r->handler = "home_stop";
	if (r->method != M_POST) {
		pages_error(r, 405, "Method not allowed", "Use the Stop button "
			    "of your home page.");
		return;
	}
	if (pages_signed_in(r, &w) < 0)
		return;
	xsrf = form_value(r->body, r->body_len, "_xsrf");
	if (!xsrf_ok(r, &w, xsrf)) {
		free(xsrf);
		pages_error(r, 403, "Form expired", "This form expired or was "
			    "not sent by this site: reload the page and try "
			    "again.");
		return;
	}
	free(xsrf);
	snprintf(reason, sizeof(reason), "stopped by %s", w.name);
	server = form_value(r->body, r->body_len, "server");
	remove = form_value(r->body, r->body_len, "remove");
	rc = servers_stop_named(r->hub, w.name, server ? server : "",
				remove && server && *server, w.name, reason,
				&e);
	free(server);
	free(remove);
	if (rc < 0) {
		pages_error(r, err_http_status(e.code), "Could not stop the "
			    "server", e.msg);
		return;
	}
	req_redirect(r, "/hub/home");
}

char *
pages_edge_error(void *ctx, int status, const char *msg, size_t *len)
{
	const char *title = status == 502 ? "The server did not answer" :
			    status == 504 ? "The server is too slow" :
			    "Bad request";

	return pages_error_html(ctx, status, title, msg, len);
}
