/*
 * probe.c - is a user's server answering? GET <base_url>api/status with the
 * server token must give 200 and a JSON object: any other answer (the
 * machine's outbound proxy answers unroutable addresses with a fake 404)
 * means "not yet". A web app (kind "web") is asked for its ready path
 * instead, which must answer 2xx or 3xx. A jupyterhub-singleuser server
 * (kind singleuser) is ready when it answers HTTP at all
 * (spawner_probe_http), as JupyterHub waits for it: its API takes only
 * tokens the hub knows.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <string.h>
#include "internal.h"

/* What every probe sets: the URL, headers, one timeout for connect and
 * all, no signals (threads), no proxy (servers are on our networks). */
static void
setup(CURL *c, const char *url, struct curl_slist *h, long timeout_ms)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
}

static size_t
collect(char *p, size_t size, size_t n, void *ctx)
{
	struct strbuf *sb = ctx;

	if (sb->len + size * n > 1 << 20)
		return 0;
	sb_add(sb, p, size * n);
	return size * n;
}

/* GET url with the token; the body parsed as JSON (caller decrefs). */
static json_t *
get_json_url(const char *url, const char *token, long timeout_ms,
	     struct err *e)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct strbuf sb;
	char *auth;
	long status = 0;
	json_t *j = NULL;
	CURLcode rc;

	if (c == NULL) {
		err_set(e, ERR_INTERNAL, "cannot create an HTTP client");
		return NULL;
	}
	sb_init(&sb);
	auth = xasprintf("Authorization: token %s", token);
	h = curl_slist_append(h, auth);
	setup(c, url, h, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status == 200 && sb.len)
		j = json_loadb(sb.buf, sb.len, 0, NULL);
	if (j == NULL)
		err_set(e, ERR_UPSTREAM, "%s: %s", url, rc != CURLE_OK ?
			curl_easy_strerror(rc) : "no JSON answer");
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(auth);
	sb_release(&sb);
	return j;
}

int
spawner_status(const char *base_url, const char *token, long timeout_ms,
	       int64_t *last_activity_ms, int *kernel_busy, struct err *e)
{
	char *url = xasprintf("%sapi/status", base_url);
	json_t *st = get_json_url(url, token, timeout_ms, e), *k, *it;
	const char *la;
	size_t i;

	free(url);
	*last_activity_ms = 0;
	*kernel_busy = 0;
	if (st == NULL)
		return -1;
	la = json_string_value(json_object_get(st, "last_activity"));
	if (la && time_parse_iso8601(la, last_activity_ms) < 0)
		*last_activity_ms = 0;
	k = json_object_get(st, "kernels");
	if (json_is_integer(k) && json_integer_value(k) == 0) {
		/* no kernel, so none busy: one request per server, not two */
		json_decref(st);
		return 0;
	}
	json_decref(st);
	/* asking must not count as activity (Jupyter honours this) */
	url = xasprintf("%sapi/kernels?no_track_activity=1", base_url);
	k = get_json_url(url, token, timeout_ms, NULL);
	free(url);
	json_array_foreach(k, i, it) {
		const char *s = json_string_value(json_object_get(it,
		    "execution_state"));

		if (s && strcmp(s, "busy") == 0)
			*kernel_busy = 1;
	}
	json_decref(k);
	return 0;
}

int
spawner_probe(const char *url, const char *token, long timeout_ms,
	      struct err *e)
{
	json_t *j = get_json_url(url, token, timeout_ms, e);
	int ok = json_is_object(j);

	if (j && !ok)
		err_set(e, ERR_UPSTREAM, "%s: answered JSON that is not an "
			"object", url);
	json_decref(j);
	return ok ? 0 : -1;
}

static size_t
discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

/* GET url with the headers ("Name: value", NULL-terminated; may be NULL),
 * the body thrown away: the status in *status, or -1 with *e when no HTTP
 * answer came. */
static int
http_status(const char *url, char *const *headers, long timeout_ms,
	    long *status, struct err *e)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	CURLcode rc;

	*status = 0;
	if (c == NULL)
		return err_set(e, ERR_INTERNAL, "cannot create an HTTP client");
	for (size_t i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	setup(c, url, h, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || *status < 100)
		return err_set(e, ERR_UPSTREAM, "%s: %s", url, rc != CURLE_OK ?
			       curl_easy_strerror(rc) : "no HTTP answer");
	return 0;
}

int
probe_web(const char *url, char *const *headers, long timeout_ms,
	  struct err *e)
{
	long status;

	if (http_status(url, headers, timeout_ms, &status, e) < 0)
		return -1;
	if (status < 200 || status > 399)
		return err_set(e, ERR_UPSTREAM, "%s: answered %ld", url,
			       status);
	return 0;
}

int
spawner_probe_http(const char *url, long timeout_ms, struct err *e)
{
	long status;

	return http_status(url, NULL, timeout_ms, &status, e);
}
