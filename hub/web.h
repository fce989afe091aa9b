/*
 * web.h - the hub's web side: the HTTP server (libmicrohttpd, http.c),
 * the router, the REST API, the pages and the progress stream. Builds on
 * the core (hub.h); the core never includes this file (make check-deps).
 * A request is a struct req: handlers read it and set its answer.
 */
#ifndef SWARMHUB_WEB_H
#define SWARMHUB_WEB_H

#include "hub.h"

/* ---- HTTP (http.c): the request as handlers see it ------------------- */
struct MHD_Connection;
struct MHD_Response;

struct req {
	struct hub *hub;
	struct MHD_Connection *conn;
	enum method method;
	const char *path;		/* decoded */
	const char *body;		/* NUL-terminated, may be "" */
	size_t body_len;
	int body_too_big;
	int body_announced;		/* Content-Length > 0, or chunked */
	char ip[64];			/* client address (after trusted XFF) */
	int https;			/* arrived over HTTPS per trusted proxy */
	int64_t start_us;
	/* the response */
	int status;
	char *resp;			/* owned */
	size_t resp_len;
	const char *content_type;
	struct strbuf headers;		/* "Name: value\n" lines */
	const char *handler;		/* its name: the metrics label */
	struct MHD_Response *custom;	/* a streaming answer (SSE) */
};

const char *req_header(struct req *r, const char *name);
const char *req_query(struct req *r, const char *name);
/* 1 when the query string has name, with a value or without ("?x"). */
int req_has_query(struct req *r, const char *name);
const char *req_cookie(struct req *r, const char *name);
/* Takes body over. */
void req_reply(struct req *r, int status, const char *content_type,
	       char *body, size_t len);
void req_add_header(struct req *r, const char *name, const char *value);
/* {"status": N, "message": "..."} */
void req_json_error(struct req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void req_json(struct req *r, int status, char *json);
void req_redirect(struct req *r, const char *location);
int err_http_status(enum err_code code);

/* What the HTTP server calls: the server knows no page or endpoint. */
struct http_app {
	/* Before any of the body is read: 0 to go on, 1 when r has been
	 * answered already (a body its sender may not send). */
	int (*admit)(struct req *r);
	void (*dispatch)(struct req *r);
};
/* Starts libmicrohttpd on the hub's private unix socket (h->internal_socket)
 * with app's handlers; -1 with *e. */
int http_start(struct hub *h, const struct http_app *app, struct err *e);
void http_stop(struct hub *h);

/* Who sent r (token header first, then session cookie). */
void who_identify(struct req *r, struct who *w);
/* 1 when r carries a valid X-XSRFToken (or _xsrf) for w's session. */
int xsrf_ok(struct req *r, const struct who *w, const char *form_value);
/* Sets (an empty value: clears) the session and _xsrf cookies. */
void session_cookie_header(struct req *r, const char *value, long max_age);

/* ---- routing (router.c) ---------------------------------------------- */
int router_admit(struct req *r);
void router_dispatch(struct req *r);

/* ---- the progress stream (events.c) ---------------------------------- */
/* Answers r with the progress stream of name's server. */
void events_progress(struct req *r, const char *name, const char *server);
/* Wakes listeners: every one (a new event), or those due a keepalive. */
void events_wake(void);
void events_keepalive(void);


/* ---- API (api.c), pages (pages.c) ------------------------------------ */
/* `swarmhub agent` (agent.c): the usage agent of one node, a small HTTP
 * server of its own; returns the exit status. */
int agent_main(int argc, char **argv);
void api_handle(struct req *r, const char *sub);	/* sub: after /hub/api */
void pages_login(struct req *r);
void pages_logout(struct req *r);
void pages_home(struct req *r);
void pages_static(struct req *r);
void pages_error(struct req *r, int status, const char *title,
		 const char *message);
/* The same page as a heap string. */
char *pages_error_html(struct hub *h, int status, const char *title,
		       const char *message, size_t *len);
/* The edge's error_page hook (ctx: the hub): the page for its own 400,
 * 502, 504 answers. */
char *pages_edge_error(void *ctx, int status, const char *msg, size_t *len);
/* Pages of pages_spawn.c and pages_admin.c; name: the user acted for
 * (NULL: the signed-in user). */
void pages_spawn(struct req *r, const char *name);
void pages_spawn_pending(struct req *r, const char *name);
void pages_home_stop(struct req *r);
/* GET /hub/home/new?server=<name>: to the spawn form of that server. */
void pages_home_new(struct req *r);
void pages_admin(struct req *r);
/* /hub/admin/nodes (pages_nodes.c). */
void pages_nodes(struct req *r);
void pages_token(struct req *r);
/* What the pages_*.c files share (pages.c). */
enum page_flags { PAGE_WIDE = 1 << 0, PAGE_REFRESH = 1 << 1 };
/* Writes the head, header and navigation (w may be NULL). */
void pages_begin(struct strbuf *sb, struct hub *h, const char *title,
		 const struct who *w, int flags);
/* Closes the page and replies with it. */
void pages_end(struct req *r, struct strbuf *sb, int status);
/* Fills w with the signed-in user (session cookie); otherwise redirects
 * to the login page (with next = this page) and returns -1. */
int pages_signed_in(struct req *r, struct who *w);
/* pages_signed_in, and a 403 page for anyone but an admin: 0 for an admin */
int pages_signed_in_admin(struct req *r, struct who *w);
/* next when it is a local path ("/x", never "//x"), else dflt. */
const char *pages_local_path(const char *next, const char *dflt);
/* Appends s percent-encoded for a query value. */
void pages_add_urlenc(struct strbuf *sb, const char *s);
/* Appends "<time>2024-05-01 10:00 UTC (5 minutes ago)</time>" or
 * "never". */
void pages_add_time(struct strbuf *sb, int64_t ms, int64_t now_ms);
/* The same, short: "5 min ago" with the full time as its title. */
void pages_add_ago(struct strbuf *sb, int64_t ms, int64_t now_ms);
/* "0.42 CPU, 120 MB" ("&hellip; CPU" while the CPU is not known yet). */
void pages_add_usage(struct strbuf *sb, double cpu, int64_t mem_bytes);
/* Appends the hidden _xsrf input of w's session. */
void pages_add_xsrf(struct strbuf *sb, struct hub *h, const struct who *w);
/* "stopped", "starting", "running", "stopping". */
const char *pages_state_word(enum srv_state st);
/* Appends a number without trailing zeros ("0.5", "2"). */
void pages_add_num(struct strbuf *sb, double v);
/* The embedded stylesheet and script (assets.c). */
extern const char assets_css[];
extern const size_t assets_css_len;
extern const char assets_js[];
extern const size_t assets_js_len;

/* ---- the OAuth2 provider for singleuser servers (oauth.c) ------------ */
/* GET /hub/api/oauth2/authorize: a redirect with a code to the owner. */
void oauth_authorize(struct req *r);
/* POST /hub/api/oauth2/token: an access token for a code. */
void oauth_token(struct req *r);

/* ---- admin endpoints /hub/api/swarmhub/... (api_admin.c) ------------ */
void api_admin_handle(struct req *r, const struct who *w, const char *sub);
/* ---- images on every node (api_images.c) ------------------------------ */
/* POST /hub/api/swarmhub/images/pull (spawning on). */
void api_images_pull(struct req *r, const char *actor);
/* The doctor's "images" check: which nodes lack which profile images. */
void api_images_doctor(struct hub *h, struct json_t *list, int *all_ok);
/* The "Pull images" block of the admin pages. */
void pages_images_block(struct strbuf *sb);

#endif
