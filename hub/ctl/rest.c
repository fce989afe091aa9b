/*
 * rest.c - swarmhubctl's HTTP client: one libcurl easy handle, kept for
 * the process so calls reuse the connection.
 *
 * Every request carries "Authorization: token <t>"; the token is never
 * written into an error. Answers are JSON; a non-2xx answer becomes
 * "<what>: <the hub's message>", a transport failure "<what>: <curl's
 * error>". Redirects are not followed: the API never redirects, so one
 * means --url does not point at the hub.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "ctl.h"

#define BODY_MAX	(64u << 20)
#define PAGE_LIMIT	200
#define PAGINATION_TYPE	"application/jupyterhub-pagination+json"

struct resp {
	struct strbuf body;
	int too_big;
};

int
rest_init(struct ctl *c, struct err *e)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(e, ERR_INTERNAL, "cannot initialize libcurl");
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		curl_global_cleanup();
		return err_set(e, ERR_INTERNAL, "cannot initialize libcurl");
	}
	return 0;
}

void
rest_release(struct ctl *c)
{
	if (c->curl == NULL)
		return;
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	curl_global_cleanup();
}

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	if (r->body.len + len > BODY_MAX) {
		r->too_big = 1;
		return 0;
	}
	sb_add(&r->body, p, len);
	return len;
}

static struct curl_slist *
hdr_add(struct curl_slist *list, const char *h)
{
	struct curl_slist *l = curl_slist_append(list, h);

	if (l == NULL) {
		fputs("swarmhubctl: out of memory\n", stderr);
		abort();
	}
	return l;
}

static void
setup(CURL *h, const char *method, const char *url, const char *data,
      struct curl_slist *hdr, struct resp *r, char *errbuf)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "swarmhubctl");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (data != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
}

/* Copies s into the error after "what: ", control characters as spaces. */
static int
fail_msg(struct err *e, enum err_code code, const char *what, const char *s)
{
	char *p;

	err_set(e, code, "%s: %s", what, s);
	if (e != NULL)
		for (p = e->msg; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
	return -1;
}

static enum err_code
status_code(long status)
{
	switch (status) {
	case 400: return ERR_INVALID;
	case 401: return ERR_AUTH;
	case 403: return ERR_FORBIDDEN;
	case 404: return ERR_NOTFOUND;
	case 409: return ERR_CONFLICT;
	case 429: return ERR_TOOMANY;
	case 503: return ERR_UNAVAILABLE;
	default: return ERR_UPSTREAM;
	}
}

/* Turns the answer into *out or an error; takes nothing over. */
static int
answer(long status, const struct resp *r, json_t **out, const char *what,
       struct err *e)
{
	json_t *j = NULL;
	const char *msg;
	char buf[64];
	int rc;

	if (r->body.len > 0)
		j = json_loadb(r->body.buf, r->body.len, 0, NULL);
	if (status >= 200 && status < 300) {
		if (r->body.len > 0 && j == NULL) {
			snprintf(buf, sizeof(buf), "invalid JSON in the "
			    "answer (HTTP %ld)", status);
			return fail_msg(e, ERR_UPSTREAM, what, buf);
		}
		*out = j;
		return 0;
	}
	msg = json_str(j, "message");
	if (msg == NULL || *msg == '\0') {
		snprintf(buf, sizeof(buf), "HTTP %ld%s", status,
		    status >= 300 && status < 400 ?
		    " (is --url the hub's address?)" : "");
		msg = buf;
	}
	rc = fail_msg(e, status_code(status), what, msg);
	json_decref(j);
	return rc;
}

static int
request(struct ctl *c, const char *method, const char *path, json_t *body,
	const char *accept, json_t **out, long *status, const char *what,
	struct err *e)
{
	struct curl_slist *hdr = NULL;
	struct resp r = { .too_big = 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url, *auth, *accept_h, *data = NULL;
	CURLcode cc;
	int rc = -1;

	*out = NULL;
	*status = 0;
	sb_init(&r.body);
	url = xasprintf("%s%s", c->url, path);
	auth = xasprintf("Authorization: token %s", c->token);
	accept_h = xasprintf("Accept: %s", accept);
	hdr = hdr_add(hdr, auth);
	hdr = hdr_add(hdr, accept_h);
	if (body != NULL) {
		data = json_dumps(body, JSON_COMPACT);
		hdr = hdr_add(hdr, "Content-Type: application/json");
	}
	setup(c->curl, method, url, data, hdr, &r, errbuf);
	cc = curl_easy_perform(c->curl);
	if (r.too_big)
		fail_msg(e, ERR_UPSTREAM, what, "answer larger than 64 MiB");
	else if (cc != CURLE_OK)
		fail_msg(e, cc == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT :
		    ERR_UNAVAILABLE, what,
		    *errbuf ? errbuf : curl_easy_strerror(cc));
	else {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
		rc = answer(*status, &r, out, what, e);
	}
	curl_slist_free_all(hdr);
	explicit_bzero(auth, strlen(auth));
	if (data != NULL)
		explicit_bzero(data, strlen(data));
	free(data);
	free(auth);
	free(accept_h);
	free(url);
	sb_release(&r.body);
	return rc;
}

int
rest_call(struct ctl *c, const char *method, const char *path, json_t *body,
	  json_t **out, long *status, const char *what, struct err *e)
{
	json_t *dummy = NULL;
	long st;
	int rc;

	rc = request(c, method, path, body, "application/json",
	    out ? out : &dummy, status ? status : &st, what, e);
	json_decref(dummy);
	return rc;
}

/* Appends the items of one page to all; *next the next offset or -1. */
static int
page_take(json_t *all, json_t *page, long offset, long *next,
	  const char *what, struct err *e)
{
	json_t *items, *nx, *off;

	*next = -1;
	if (json_is_array(page))	/* a hub without pagination */
		return json_array_extend(all, page) == 0 ? 0 :
		    fail_msg(e, ERR_INTERNAL, what, "out of memory");
	items = json_object_get(page, "items");
	if (!json_is_array(items))
		return fail_msg(e, ERR_UPSTREAM, what,
		    "answer is neither a list nor a page of items");
	json_array_extend(all, items);
	nx = json_object_get(json_object_get(page, "_pagination"), "next");
	if (!json_is_object(nx))
		return 0;
	off = json_object_get(nx, "offset");
	if (!json_is_integer(off) || json_integer_value(off) <= offset)
		return fail_msg(e, ERR_UPSTREAM, what,
		    "the next page's offset does not advance");
	*next = (long)json_integer_value(off);
	return 0;
}

int
rest_get_all(struct ctl *c, const char *path, const char *query,
	     json_t **items, const char *what, struct err *e)
{
	json_t *all = json_array(), *page = NULL;
	long offset = 0, status;
	char *p;
	int rc;

	*items = NULL;
	while (offset >= 0) {
		p = xasprintf("%s?%s%soffset=%ld&limit=%d", path,
		    query ? query : "", query ? "&" : "", offset, PAGE_LIMIT);
		rc = request(c, "GET", p, NULL, PAGINATION_TYPE, &page,
		    &status, what, e);
		free(p);
		if (rc == 0)
			rc = page_take(all, page, offset, &offset, what, e);
		json_decref(page);
		page = NULL;
		if (rc < 0) {
			json_decref(all);
			return -1;
		}
	}
	*items = all;
	return 0;
}

char *
rest_pathf(struct ctl *c, const char *fmt, ...)
{
	struct strbuf sb;
	va_list ap;
	const char *f;
	char *esc;

	sb_init(&sb);
	va_start(ap, fmt);
	for (f = fmt; *f != '\0'; f++) {
		if (f[0] != '%' || f[1] != 's') {
			sb_addc(&sb, *f);
			continue;
		}
		esc = curl_easy_escape(c->curl, va_arg(ap, const char *), 0);
		if (esc == NULL) {
			fputs("swarmhubctl: out of memory\n", stderr);
			abort();
		}
		sb_adds(&sb, esc);
		curl_free(esc);
		f++;
	}
	va_end(ap);
	return sb_detach(&sb, NULL);
}
