/*
 * docker.c - the Docker Engine API over libcurl (unix socket or TCP+TLS).
 *
 * docker_new parses DOCKER_HOST, asks GET /version for the engine's API
 * version (at least 1.41, capped at 1.45) and from then on prefixes every
 * path with /v<version>. Each call borrows a CURL handle from a small locked
 * pool (so concurrent calls from worker threads never share one, and
 * connections are reused), reads the whole answer into memory and turns a
 * non-2xx status into a struct err carrying Docker's {"message": ...}.
 * Ownership: struct docker owns its strings and the pooled handles;
 * struct docker_resp owns its body (docker_resp_release frees it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "internal.h"

#define POOL_MAX	8
#define CONNECT_TIMEOUT_MS	3000L
#define TOTAL_TIMEOUT_MS	30000L
#define BODY_MAX	(64u << 20)	/* refuse answers beyond 64 MiB */
#define API_MIN_MAJOR	1
#define API_MIN_MINOR	41
#define API_MAX_MINOR	45

struct docker {
	char *host;		/* as given, for messages */
	char *sock;		/* unix socket path, or NULL for tcp */
	char *base;		/* "http://localhost", "https://h:2376" */
	char *ca, *cert, *key;	/* TLS files, or NULL */
	char version[16];	/* "1.41" */
	pthread_mutex_t lock;
	CURL *idle[POOL_MAX];
	size_t nidle;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void
global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
docker_resp_release(struct docker_resp *r)
{
	if (r == NULL)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
	r->status = 0;
}

/* ---- handle pool ----------------------------------------------------- */
static CURL *
handle_take(struct docker *d)
{
	CURL *c = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->nidle > 0)
		c = d->idle[--d->nidle];
	pthread_mutex_unlock(&d->lock);
	if (c == NULL)
		c = curl_easy_init();
	if (c == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "curl_easy_init");
		abort();
	}
	return c;
}

static void
handle_give(struct docker *d, CURL *c)
{
	curl_easy_reset(c);	/* keeps the connection cache */
	pthread_mutex_lock(&d->lock);
	if (d->nidle < POOL_MAX) {
		d->idle[d->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	if (c)
		curl_easy_cleanup(c);
}

/* ---- one request ----------------------------------------------------- */
static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct strbuf *sb = arg;
	size_t n = size * nmemb;

	if (sb->len + n > BODY_MAX)
		return 0;	/* makes curl fail with CURLE_WRITE_ERROR */
	sb_add(sb, ptr, n);
	return n;
}

static void
setup(struct docker *d, CURL *c, const char *url, char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Docker's host is never reached through the machine's proxy. */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (d->sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	if (d->ca) {
		curl_easy_setopt(c, CURLOPT_CAINFO, d->ca);
		curl_easy_setopt(c, CURLOPT_SSLCERT, d->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, d->key);
	}
}

/* The transport error as a sentence: the OS error for a unix socket
 * (curl would say "localhost port 80"), curl's own text otherwise. */
static int
transport_error(struct docker *d, CURL *c, CURLcode rc, const char *errbuf,
		struct err *e)
{
	long oserr = 0;
	char buf[128];
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	if (d->sock && oserr != 0 && rc == CURLE_COULDNT_CONNECT)
		why = strerror_r((int)oserr, buf, sizeof(buf));
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return err_set(e, ERR_UNAVAILABLE,
			       "Docker at %s did not answer in time: %s",
			       d->host, why);
	if (rc == CURLE_WRITE_ERROR)
		return err_set(e, ERR_UPSTREAM,
			       "Docker's answer is larger than %u bytes",
			       BODY_MAX);
	return err_set(e, ERR_UNAVAILABLE, "Docker is not reachable at %s: %s",
		       d->host, why);
}

/* A non-2xx answer: Docker's "message", else the body, else the status. */
static int
status_error(long status, const char *body, struct err *e)
{
	enum err_code code = ERR_UPSTREAM;
	json_t *j = json_loads(body, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	char text[200];

	if (status == 404)
		code = ERR_NOTFOUND;
	else if (status == 409)
		code = ERR_CONFLICT;
	if (msg == NULL && body[0]) {
		snprintf(text, sizeof(text), "%s", body);
		msg = str_trim(text);
	}
	if (msg == NULL || msg[0] == '\0')
		err_set(e, code, "Docker answered HTTP %ld", status);
	else
		err_set(e, code, "%s", msg);
	json_decref(j);
	return -1;
}

/* One transfer: its handle, the body as it arrives, curl's outcome. */
struct transfer {
	CURL *c;
	struct strbuf sb;
	char errbuf[CURL_ERROR_SIZE];
	char *url;
	CURLcode rc;
	int done;		/* rc is curl's answer */
};

/* Points t's handle at url with the answer collected in t->sb. */
static void
transfer_setup(struct docker *d, struct transfer *t, CURL *c, char *url)
{
	t->c = c;
	t->url = url;
	t->errbuf[0] = '\0';
	sb_init(&t->sb);
	sb_add(&t->sb, "", 0);	/* the body is never NULL */
	setup(d, c, url, t->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t->sb);
}

/* The outcome into resp and e: 0, or -1 for a transport error or a
 * non-2xx answer. */
static int
transfer_finish(struct docker *d, struct transfer *t, const char *method,
		const char *path, struct docker_resp *resp, struct err *e)
{
	int ret = -1;

	resp->status = 0;
	if (t->done && t->rc == CURLE_OK)
		curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->body = sb_detach(&t->sb, &resp->len);
	if (!t->done)
		err_set(e, ERR_UNAVAILABLE, "Docker at %s: the request was not "
			"sent", d->host);
	else if (t->rc != CURLE_OK)
		transport_error(d, t->c, t->rc, t->errbuf, e);
	else if (resp->status < 200 || resp->status > 299)
		status_error(resp->status, resp->body, e);
	else
		ret = 0;
	log_event(LOG_DEBUG, "docker.call", "method=%s path=%s status=%ld",
		  method, path, resp->status);
	return ret;
}

/* Adds "X-Registry-Auth: <auth>" (a credential: the copy is wiped). */
static struct curl_slist *
auth_header(struct curl_slist *hdrs, const char *auth)
{
	char *h = xasprintf("X-Registry-Auth: %s", auth);

	hdrs = curl_slist_append(hdrs, h);
	memset(h, 0, strlen(h));
	free(h);
	return hdrs;
}

static void
wipe_headers(struct curl_slist *hdrs)
{
	for (struct curl_slist *l = hdrs; l; l = l->next)
		memset(l->data, 0, strlen(l->data));
	curl_slist_free_all(hdrs);
}

static int
request(struct docker *d, const char *method, const char *path, int versioned,
	const char *json, const char *auth, struct docker_resp *resp,
	struct err *e)
{
	struct docker_resp local = { 0 };
	struct curl_slist *hdrs = NULL;
	struct transfer t;
	CURL *c = handle_take(d);
	int ret;

	if (resp == NULL)
		resp = &local;
	transfer_setup(d, &t, c, versioned ?
	    xasprintf("%s/v%s%s", d->base, d->version, path) :
	    xasprintf("%s%s", d->base, path));
	if (strcmp(method, "POST") == 0) {
		hdrs = curl_slist_append(hdrs,
					 "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json ? json : "");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	if (auth != NULL)
		hdrs = auth_header(hdrs, auth);
	if (hdrs != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	t.rc = curl_easy_perform(c);
	t.done = 1;
	ret = transfer_finish(d, &t, method, path, resp, e);
	wipe_headers(hdrs);
	free(t.url);
	handle_give(d, c);
	docker_resp_release(&local);
	return ret;
}

int
docker_get(struct docker *d, const char *path, struct docker_resp *resp,
	   struct err *e)
{
	return request(d, "GET", path, 1, NULL, NULL, resp, e);
}

int
docker_get_auth(struct docker *d, const char *path, const char *auth,
		struct docker_resp *resp, struct err *e)
{
	return request(d, "GET", path, 1, NULL, auth, resp, e);
}

int
docker_post_auth(struct docker *d, const char *path, const char *json,
		 const char *auth, struct docker_resp *resp, struct err *e)
{
	return request(d, "POST", path, 1, json, auth, resp, e);
}

int
docker_post(struct docker *d, const char *path, const char *json,
	    struct docker_resp *resp, struct err *e)
{
	return request(d, "POST", path, 1, json, NULL, resp, e);
}

int
docker_delete(struct docker *d, const char *path, struct docker_resp *resp,
	      struct err *e)
{
	return request(d, "DELETE", path, 1, NULL, NULL, resp, e);
}

/* ---- many GETs at once (curl multi) ----------------------------------- */
int
docker_get_many(struct docker *d, const char *const *paths, size_t n,
		long parallel, struct docker_resp *resps, struct err *errs)
{
	CURLM *m = curl_multi_init();
	struct transfer *g;
	int still = 0, ok = 1;
	CURLMsg *msg;
	int left;

	if (m == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "curl_multi_init");
		abort();
	}
	/* the rest wait in curl's queue (their timeout runs meanwhile) */
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, parallel);
	g = xcalloc(n ? n : 1, sizeof(*g));
	for (size_t i = 0; i < n; i++) {
		CURL *c = curl_easy_init();

		if (c == NULL) {
			log_event(LOG_ERROR, "oom", "what=%s", "curl_easy_init");
			abort();
		}
		transfer_setup(d, &g[i], c, xasprintf("%s/v%s%s", d->base,
						      d->version, paths[i]));
		curl_easy_setopt(c, CURLOPT_PRIVATE, &g[i]);
		if (curl_multi_add_handle(m, g[i].c) != CURLM_OK)
			ok = 0;
	}
	while (ok) {
		if (curl_multi_perform(m, &still) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct transfer *one = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&one);
			one->rc = msg->data.result;
			one->done = 1;
		}
		if (still == 0 ||
		    curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		transfer_finish(d, &g[i], "GET", paths[i], &resps[i],
				&errs[i]);
		curl_multi_remove_handle(m, g[i].c);
		curl_easy_cleanup(g[i].c);
		free(g[i].url);
	}
	curl_multi_cleanup(m);
	free(g);
	return 0;
}

char *
docker_escape(struct docker *d, const char *s)
{
	CURL *c = handle_take(d);
	char *q = curl_easy_escape(c, s, 0);
	char *out;

	handle_give(d, c);
	if (q == NULL) {
		log_event(LOG_ERROR, "oom", "what=%s", "curl_easy_escape");
		abort();
	}
	out = xstrdup(q);
	curl_free(q);
	return out;
}

/* ---- setup ----------------------------------------------------------- */
static int
parse_host(struct docker *d, const char *host, const char *cert_path,
	   struct err *e)
{
	const char *p;

	if (strncmp(host, "unix://", 7) == 0) {
		if (host[7] != '/')
			return err_set(e, ERR_INVALID, "DOCKER_HOST '%s': the "
				       "socket path must be absolute", host);
		d->sock = xstrdup(host + 7);
		d->base = xstrdup("http://localhost");
		return 0;
	}
	if (strncmp(host, "tcp://", 6) != 0 || host[6] == '\0' ||
	    (p = strrchr(host + 6, ':')) == NULL || p[1] == '\0')
		return err_set(e, ERR_INVALID, "DOCKER_HOST '%s': expected "
			       "unix:///path or tcp://host:port", host);
	if (cert_path == NULL || cert_path[0] == '\0') {
		d->base = xasprintf("http://%s", host + 6);
		return 0;
	}
	d->base = xasprintf("https://%s", host + 6);
	d->ca = xasprintf("%s/ca.pem", cert_path);
	d->cert = xasprintf("%s/cert.pem", cert_path);
	d->key = xasprintf("%s/key.pem", cert_path);
	if (access(d->ca, R_OK) < 0)
		return err_set(e, ERR_INVALID, "cannot read '%s': %s", d->ca,
			       strerror(errno));
	if (access(d->cert, R_OK) < 0)
		return err_set(e, ERR_INVALID, "cannot read '%s': %s", d->cert,
			       strerror(errno));
	if (access(d->key, R_OK) < 0)
		return err_set(e, ERR_INVALID, "cannot read '%s': %s", d->key,
			       strerror(errno));
	return 0;
}

/* GET /version: ApiVersion "1.N", capped at 1.45, at least 1.41. */
static int
negotiate(struct docker *d, struct err *e)
{
	struct docker_resp r = { 0 };
	json_t *j = NULL;
	const char *v;
	int major = 0, minor = 0, rc = -1;

	if (request(d, "GET", "/version", 0, NULL, NULL, &r, e) < 0)
		goto out;
	j = json_loads(r.body, 0, NULL);
	v = json_string_value(json_object_get(j, "ApiVersion"));
	if (v == NULL || sscanf(v, "%d.%d", &major, &minor) != 2) {
		err_set(e, ERR_UPSTREAM, "Docker at %s: GET /version has no "
			"ApiVersion", d->host);
		goto out;
	}
	if (major < API_MIN_MAJOR ||
	    (major == API_MIN_MAJOR && minor < API_MIN_MINOR)) {
		err_set(e, ERR_UPSTREAM, "Docker at %s speaks API %d.%d; "
			"swarmhub needs %d.%d or newer", d->host, major, minor,
			API_MIN_MAJOR, API_MIN_MINOR);
		goto out;
	}
	if (major > API_MIN_MAJOR || minor > API_MAX_MINOR)
		minor = API_MAX_MINOR;
	snprintf(d->version, sizeof(d->version), "%d.%d", API_MIN_MAJOR, minor);
	rc = 0;
out:
	json_decref(j);
	docker_resp_release(&r);
	return rc;
}

int
docker_new(const char *host, const char *cert_path, struct docker **out,
	   struct err *e)
{
	struct docker *d;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return err_set(e, ERR_INTERNAL, "curl_global_init failed: %s",
			       curl_easy_strerror(global_rc));
	if (host == NULL || host[0] == '\0')
		host = "unix:///var/run/docker.sock";
	d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->host = xstrdup(host);
	if (parse_host(d, host, cert_path, e) < 0 || negotiate(d, e) < 0) {
		docker_free(d);
		return -1;
	}
	log_event(LOG_INFO, "docker.connected", "host=%s api=%s", d->host,
		  d->version);
	*out = d;
	return 0;
}

void
docker_free(struct docker *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nidle; i++)
		curl_easy_cleanup(d->idle[i]);
	pthread_mutex_destroy(&d->lock);
	free(d->host);
	free(d->sock);
	free(d->base);
	free(d->ca);
	free(d->cert);
	free(d->key);
	free(d);
}
