/*
 * http.c - the HTTP server (libmicrohttpd): collects a request, hands it to
 * the router, sends the answer, records metrics.
 *
 * libmicrohttpd runs its own thread pool over epoll. A request body is
 * read only once its sender may send one (a token or session, or the
 * login form): others are answered from their headers. It is collected up
 * to MAX_BODY_BYTES (the rest is read and dropped, and the handler answers
 * 413). Handlers fill r->status/resp; this file adds the
 * security headers every answer carries.
 * Requests that may wait on another service (every change: the database,
 * LDAP binds, Docker, NFS; and the admin checks under /hub/api/swarmhub/)
 * do not run on libmicrohttpd's threads, where they would hold up every
 * other connection that thread serves: the connection is suspended, one of
 * SLOW_THREADS workers runs the handler, then resumes it, and
 * libmicrohttpd calls on_request again to send the answer. Reads of memory
 * (pages, GETs of the REST API) run in place.
 * Ownership: a struct conn_ctx lives from the first callback of a request
 * to libmicrohttpd's completion callback, which frees it (and the deferred
 * request it holds, whose worker is done by then: a suspended connection is
 * never completed).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "web.h"

#define SLOW_THREADS 8

struct conn_ctx {
	struct strbuf body;
	int too_big;
	int refused;			/* answered before its body */
	struct req *deferred;		/* handed to a slow worker */
	char *url;			/* its path (a copy) */
	int done;			/* the worker answered (slow.lock) */
	struct conn_ctx *next;		/* in the queue */
};

/* Requests that may wait on another service run on these (file comment). */
struct slow {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct conn_ctx *head, *tail;
	pthread_t threads[SLOW_THREADS];	/* started when first needed */
	int nthreads;
	int idle;			/* waiting for work */
	int queued;			/* requests in the queue */
	int stopping;
};

/* The server: one per hub (h->http). */
struct http {
	struct hub *hub;
	struct http_app app;
	struct MHD_Daemon *daemon;
	char sock_dir[64];
	struct slow slow;
};

const char *
req_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
req_query(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

int
req_has_query(struct req *r, const char *name)
{
	const char *v = NULL;
	size_t n = 0;

	return MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND,
	    name, strlen(name), &v, &n) == MHD_YES;
}

const char *
req_cookie(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

void
req_reply(struct req *r, int status, const char *content_type, char *body,
	  size_t len)
{
	free(r->resp);
	r->status = status;
	r->content_type = content_type;
	r->resp = body;
	r->resp_len = len;
}

void
req_add_header(struct req *r, const char *name, const char *value)
{
	sb_adds(&r->headers, name);
	sb_addc(&r->headers, '\0');
	sb_adds(&r->headers, value);
	sb_addc(&r->headers, '\0');
}

void
req_json(struct req *r, int status, char *json)
{
	req_reply(r, status, "application/json", json, strlen(json));
}

void
req_json_error(struct req *r, int status, const char *fmt, ...)
{
	struct strbuf sb;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_init(&sb);
	sb_addf(&sb, "{\"status\": %d, \"message\": ", status);
	sb_add_json(&sb, msg);
	sb_adds(&sb, "}");
	req_json(r, status, sb_detach(&sb, NULL));
}

void
req_redirect(struct req *r, const char *location)
{
	req_add_header(r, "Location", location);
	req_reply(r, 302, "text/plain", xstrdup(""), 0);
}

int
err_http_status(enum err_code code)
{
	static const int map[] = {
		[ERR_OK] = 200, [ERR_INVALID] = 400, [ERR_NOTFOUND] = 404,
		[ERR_CONFLICT] = 409, [ERR_AUTH] = 403, [ERR_FORBIDDEN] = 403,
		[ERR_TIMEOUT] = 504, [ERR_UNAVAILABLE] = 503,
		[ERR_UPSTREAM] = 502, [ERR_INTERNAL] = 500, [ERR_TOOMANY] = 429,
	};

	if ((size_t)code >= sizeof(map) / sizeof(map[0]))
		return 500;
	return map[code];
}

/* enum method order */
static const char *const method_names[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"
};

static enum method
parse_method(const char *m)
{
	for (int i = 0; i < M_OTHER; i++)
		if (strcmp(m, method_names[i]) == 0)
			return (enum method)i;
	return M_OTHER;
}

/*
 * The client's address. Behind the edge (a unix-socket peer) it is in
 * X-Real-IP, which the edge always writes itself: the right-most
 * X-Forwarded-For entry not written by a trusted proxy (TRUSTED_PROXIES),
 * never what a client wrote. The edge's own hop never counts. The edge
 * sets X-Forwarded-Proto only from a trusted proxy's word.
 */
static void
client_address(struct req *r)
{
	const union MHD_ConnectionInfo *ci;
	const char *real, *proto;

	r->ip[0] = '\0';
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    ci->client_addr)->sin_addr, r->ip, sizeof(r->ip));
	if (ci && ci->client_addr && ci->client_addr->sa_family != AF_UNIX)
		return;		/* not through the edge: take the peer */
	real = req_header(r, "X-Real-IP");
	snprintf(r->ip, sizeof(r->ip), "%s", real ? real : "");
	proto = req_header(r, "X-Forwarded-Proto");
	r->https = proto && strcasecmp(proto, "https") == 0;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static enum MHD_Result
send_reply(struct req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *ct = r->content_type ? r->content_type : "text/plain";

	if (r->custom) {
		ret = MHD_queue_response(r->conn, (unsigned)r->status,
					 r->custom);
		MHD_destroy_response(r->custom);
		r->custom = NULL;
		return ret;
	}
	if (r->resp == NULL)
		req_json_error(r, 500, "internal error: no answer");
	resp = MHD_create_response_from_buffer(r->resp_len, r->resp,
					       MHD_RESPMEM_MUST_FREE);
	r->resp = NULL;
	MHD_add_response_header(resp, "Content-Type", ct);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
	if (strncmp(ct, "text/html", 9) == 0) {
		MHD_add_response_header(resp, "Content-Security-Policy",
		    "default-src 'self'; script-src 'self'; style-src 'self'; "
		    "img-src 'self' data:; frame-ancestors 'none'; "
		    "form-action 'self'; base-uri 'none'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (size_t i = 0; i < r->headers.len; ) {
		const char *name = r->headers.buf + i;
		const char *value = name + strlen(name) + 1;

		MHD_add_response_header(resp, name, value);
		i += strlen(name) + strlen(value) + 2;
	}
	ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Records the answered request (metrics, debug log). */
static void
record(struct req *r)
{
	if (r->status == 0 && r->custom == NULL)
		req_json_error(r, 500, "internal error: no answer");
	metrics_observe(r->hub->metrics, r->handler, r->method, r->status,
			(double)(now_us() - r->start_us) / 1e6);
	log_event(LOG_DEBUG, "http.request", "method=%s path=%s status=%d "
		  "us=%ld ip=%s", method_names[r->method], r->path, r->status,
		  (long)(now_us() - r->start_us), r->ip);
}

/* Runs the handler and records the request. */
static void
dispatch(struct req *r)
{
	r->hub->http->app.dispatch(r);
	record(r);
}

/* Whether the handler may wait on another service (file comment). */
static int
may_wait(const struct req *r)
{
	if (r->method != M_GET && r->method != M_HEAD &&
	    r->method != M_OPTIONS)
		return 1;
	return strncmp(r->path, "/hub/api/swarmhub/", 18) == 0;
}

static void *
slow_worker(void *arg)
{
	struct slow *sl = arg;

	pthread_mutex_lock(&sl->lock);
	for (;;) {
		struct conn_ctx *cc;
		int stopping;

		sl->idle++;
		while (sl->head == NULL && !sl->stopping)
			pthread_cond_wait(&sl->wake, &sl->lock);
		sl->idle--;
		if (sl->head == NULL)
			break;		/* stopping, and nothing queued */
		cc = sl->head;
		sl->head = cc->next;
		if (sl->head == NULL)
			sl->tail = NULL;
		sl->queued--;
		stopping = sl->stopping;
		pthread_mutex_unlock(&sl->lock);
		if (stopping)
			req_json_error(cc->deferred, 503, "the hub is shutting "
				       "down: try again in a moment");
		else
			dispatch(cc->deferred);
		pthread_mutex_lock(&sl->lock);
		cc->done = 1;
		pthread_mutex_unlock(&sl->lock);
		MHD_resume_connection(cc->deferred->conn);
		pthread_mutex_lock(&sl->lock);
	}
	pthread_mutex_unlock(&sl->lock);
	return NULL;
}

/* One more worker (sl->lock held); none when threads cannot be made. */
static void
add_worker(struct slow *sl)
{
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&sl->threads[sl->nthreads], &attr, slow_worker,
			   sl) == 0)
		sl->nthreads++;
	else
		log_event(LOG_WARN, "http.no_worker", "workers=%d",
			  sl->nthreads);
	pthread_attr_destroy(&attr);
}

/* Hands the request to a slow worker, starting one when all are busy
 * (up to SLOW_THREADS): 0, or -1 to run it in place (no worker could be
 * started, or the hub is stopping). */
static int
defer(struct conn_ctx *cc, const struct req *r, const char *url)
{
	struct slow *sl = &r->hub->http->slow;

	pthread_mutex_lock(&sl->lock);
	if (sl->queued >= sl->idle && sl->nthreads < SLOW_THREADS &&
	    !sl->stopping)
		add_worker(sl);
	if (sl->nthreads == 0 || sl->stopping) {
		pthread_mutex_unlock(&sl->lock);
		return -1;
	}
	cc->url = xstrdup(url);
	cc->deferred = xmalloc(sizeof(*cc->deferred));
	*cc->deferred = *r;
	cc->deferred->path = cc->url;
	cc->done = 0;
	cc->next = NULL;
	/* suspended before a worker can resume it: under the queue's lock */
	MHD_suspend_connection(r->conn);
	if (sl->tail)
		sl->tail->next = cc;
	else
		sl->head = cc;
	sl->tail = cc;
	sl->queued++;
	pthread_cond_signal(&sl->wake);
	pthread_mutex_unlock(&sl->lock);
	return 0;
}

/* The request says a body follows (Content-Length above 0, or chunked). */
static int
announces_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     "Content-Length");

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					"Transfer-Encoding") != NULL)
		return 1;
	return cl != NULL && cl[strspn(cl, "0")] != '\0';
}

static void
req_start(struct req *r, struct http *H, struct MHD_Connection *conn,
	  const char *url, const char *method)
{
	memset(r, 0, sizeof(*r));
	r->hub = H->hub;
	r->conn = conn;
	r->method = parse_method(method);
	r->path = url;
	r->body = "";
	r->start_us = now_us();
	r->handler = "other";
	r->body_announced = announces_body(conn);
	sb_init(&r->headers);
	client_address(r);
}

/* Sends r's answer and frees what it holds. */
static enum MHD_Result
finish(struct req *r)
{
	enum MHD_Result ret = send_reply(r);

	sb_release(&r->headers);
	free(r->resp);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_size, void **con_cls)
{
	struct http *H = cls;
	struct conn_ctx *cc = *con_cls;
	struct req r;
	enum MHD_Result ret;

	(void)version;
	if (cc == NULL) {
		cc = xcalloc(1, sizeof(*cc));
		sb_init(&cc->body);
		*con_cls = cc;
		req_start(&r, H, conn, url, method);
		if (H->app.admit(&r)) {
			cc->refused = 1;
			record(&r);
			return finish(&r);
		}
		sb_release(&r.headers);
		return MHD_YES;
	}
	if (cc->refused) {		/* answered already: drop the rest */
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (cc->body.len + *upload_size >
		    (size_t)H->hub->cfg.max_body_bytes)
			cc->too_big = 1;
		else
			sb_add(&cc->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (cc->deferred) {		/* resumed: the worker has answered */
		int done;

		pthread_mutex_lock(&H->slow.lock);
		done = cc->done;
		pthread_mutex_unlock(&H->slow.lock);
		if (!done)
			return MHD_YES;
		ret = send_reply(cc->deferred);
		sb_release(&cc->deferred->headers);
		free(cc->deferred->resp);
		free(cc->deferred);
		cc->deferred = NULL;
		return ret;
	}
	req_start(&r, H, conn, url, method);
	r.body = cc->body.buf ? cc->body.buf : "";
	r.body_len = cc->body.len;
	r.body_too_big = cc->too_big;
	if (may_wait(&r) && defer(cc, &r, url) == 0)
		return MHD_YES;
	dispatch(&r);
	return finish(&r);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *cc = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (cc == NULL)
		return;
	if (cc->deferred) {
		sb_release(&cc->deferred->headers);
		free(cc->deferred->resp);
		if (cc->deferred->custom)
			MHD_destroy_response(cc->deferred->custom);
		free(cc->deferred);
	}
	free(cc->url);
	sb_release(&cc->body);
	free(cc);
	*con_cls = NULL;
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	str_trim(msg);
	log_event(LOG_WARN, "http.server", "msg=%s", msg);
}

/* A unix socket in a fresh 0700 directory: only this process (and root)
 * can reach libmicrohttpd; the edge relays every hub request to it. */
static int
internal_socket(struct http *H, struct err *e)
{
	struct hub *h = H->hub;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(H->sock_dir, sizeof(H->sock_dir), "/tmp/swarmhub.XXXXXX");
	if (mkdtemp(H->sock_dir) == NULL)
		return err_set(e, ERR_INTERNAL, "cannot make a directory in "
		    "/tmp for the internal socket");
	snprintf(h->internal_socket, sizeof(h->internal_socket), "%s/hub.sock",
		 H->sock_dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->internal_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_INTERNAL, "cannot listen on %s",
			       h->internal_socket);
	}
	return fd;
}

static void
http_free(struct http *H)
{
	pthread_mutex_destroy(&H->slow.lock);
	pthread_cond_destroy(&H->slow.wake);
	if (*H->hub->internal_socket) {
		unlink(H->hub->internal_socket);
		rmdir(H->sock_dir);
	}
	H->hub->http = NULL;
	free(H);
}

int
http_start(struct hub *h, const struct http_app *app, struct err *e)
{
	struct http *H = xcalloc(1, sizeof(*H));
	int fd;

	H->hub = h;
	H->app = *app;
	h->http = H;
	pthread_mutex_init(&H->slow.lock, NULL);
	pthread_cond_init(&H->slow.wake, NULL);
	fd = internal_socket(H, e);
	if (fd < 0) {
		http_free(H);
		return -1;
	}
	H->daemon = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME,
	    0, NULL, NULL, on_request, H,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->cfg.http_threads,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)20000,
	    MHD_OPTION_END);
	if (H->daemon == NULL) {
		close(fd);
		err_set(e, ERR_INTERNAL, "cannot start the HTTP server on %s",
			h->internal_socket);
		http_free(H);
		return -1;
	}
	return 0;
}

void
http_stop(struct hub *h)
{
	struct http *H = h->http;
	int n;

	if (H == NULL)
		return;
	/* workers first: they answer what is queued with 503 and resume
	 * every connection they hold before libmicrohttpd goes */
	pthread_mutex_lock(&H->slow.lock);
	H->slow.stopping = 1;
	n = H->slow.nthreads;	/* no more are started from now on */
	pthread_cond_broadcast(&H->slow.wake);
	pthread_mutex_unlock(&H->slow.lock);
	for (int i = 0; i < n; i++)
		pthread_join(H->slow.threads[i], NULL);
	MHD_stop_daemon(H->daemon);
	http_free(H);
}

/* ---- who sent a request ------------------------------------------------ */
void
who_identify(struct req *r, struct who *w)
{
	who_from(r->hub, req_header(r, "Authorization"),
		 req_cookie(r, SESSION_COOKIE), w);
}

int
xsrf_ok(struct req *r, const struct who *w, const char *form_value)
{
	char want[65];
	const char *got = req_header(r, "X-XSRFToken");

	if (got == NULL)
		got = form_value;
	if (got == NULL || !w->by_cookie || strlen(got) != 64)
		return 0;
	xsrf_for_session(r->hub, w->session_hash, want);
	return str_ct_eq(got, want, 64);
}

/*
 * Sets the session cookie (HttpOnly) and, as JupyterHub does, an "_xsrf"
 * cookie that pages' scripts read to send X-XSRFToken. An empty value
 * clears both.
 */
void
session_cookie_header(struct req *r, const char *value, long max_age)
{
	char hash[65], xsrf[65] = "";
	char *c = xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Lax; "
			    "Max-Age=%ld%s", SESSION_COOKIE, value, max_age,
			    r->https ? "; Secure" : "");

	req_add_header(r, "Set-Cookie", c);
	free(c);
	if (*value) {
		crypto_sha256_hex(value, strlen(value), hash);
		xsrf_for_session(r->hub, hash, xsrf);
	}
	c = xasprintf("_xsrf=%s; Path=/hub/; SameSite=Lax; Max-Age=%ld%s",
		      xsrf, max_age, r->https ? "; Secure" : "");
	req_add_header(r, "Set-Cookie", c);
	free(c);
}
