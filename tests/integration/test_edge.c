/*
 * test_edge.c - the edge (edge/edge.c) against a real upstream over loopback.
 *
 * A forked child process is the upstream: a small thread-per-connection
 * HTTP/1.1 server on 127.0.0.1 and on a unix socket (hello, echo, chunked,
 * header echo, 204, close-delimited, reset, big, WebSocket echo), counting
 * accepts and bytes in shared memory. A second child opens idle WebSockets
 * on command, so this process's RSS and fds are the edge's own.
 * The edge runs in this process with a test router: /up/... and /sock/...
 * proxied, /redirect and /deny answered, /refused and /silent failing.
 *
 * Environment: EDGE_TEST_SMALL=1 (valgrind: smaller sizes), EDGE_WS_N
 * (idle WebSockets, default 1000), EDGE_BENCH_UPSTREAM=host:port (serve
 * mode: proxy everything there, print the port, run until killed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../../edge/edge.h"
#include "../lib/t.h"

struct shared {
	_Atomic long accepts;
	_Atomic long conn_ids;
	_Atomic long big_written;
	_Atomic long ws_eofs;
};

static struct shared *SH;
static struct edge *ED;		/* the edge under test */
static int up_port, silent_port, refused_port, edge_port;
static char sock_path[108];
static int small;
static _Atomic long act_alice, act_alice_up, failed_calls;
static char failed_key[80];
static _Atomic int failed_status;
static char seen_ip[64];
static int bench_port;
static _Atomic int seen_https;

/* ---- shared helpers --------------------------------------------------- */

static int
write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
write_str(int fd, const char *s)
{
	return write_all(fd, s, strlen(s));
}

struct rd {
	int fd;
	char *buf;
	size_t off, len, cap;
};

static void
rd_init(struct rd *r, int fd)
{
	r->fd = fd;
	r->cap = 256 * 1024;
	r->buf = malloc(r->cap);
	r->off = r->len = 0;
}

static void
rd_free(struct rd *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Reads more into r; returns bytes read, 0 EOF, -1 error. */
static ssize_t
rd_fill(struct rd *r)
{
	ssize_t n;

	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == r->cap)
		return -1;
	do
		n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->len += (size_t)n;
	return n;
}

/* A head up to its blank line, NUL-terminated (heap); NULL at EOF. */
static char *
rd_head(struct rd *r)
{
	for (;;) {
		char *e = memmem(r->buf + r->off, r->len - r->off, "\r\n\r\n",
				 4);

		if (e) {
			size_t n = (size_t)(e + 4 - (r->buf + r->off));
			char *h = malloc(n + 1);

			memcpy(h, r->buf + r->off, n);
			h[n] = '\0';
			r->off += n;
			return h;
		}
		if (rd_fill(r) <= 0)
			return NULL;
	}
}

static int
rd_exact(struct rd *r, char *out, size_t n)
{
	while (r->len - r->off < n) {
		size_t have = r->len - r->off;

		memcpy(out, r->buf + r->off, have);
		out += have;
		n -= have;
		r->off = r->len;
		if (rd_fill(r) <= 0)
			return -1;
	}
	memcpy(out, r->buf + r->off, n);
	r->off += n;
	return 0;
}

static int
rd_line(struct rd *r, char *out, size_t size)
{
	for (;;) {
		char *e = memmem(r->buf + r->off, r->len - r->off, "\r\n", 2);

		if (e) {
			size_t n = (size_t)(e - (r->buf + r->off));

			if (n >= size)
				return -1;
			memcpy(out, r->buf + r->off, n);
			out[n] = '\0';
			r->off += n + 2;
			return 0;
		}
		if (rd_fill(r) <= 0)
			return -1;
	}
}

/* Decodes a chunked body into a heap buffer. */
static char *
rd_chunked(struct rd *r, size_t *len)
{
	char line[128], *body = NULL;
	size_t n = 0;

	for (;;) {
		unsigned long sz;

		if (rd_line(r, line, sizeof(line)) < 0)
			goto fail;
		sz = strtoul(line, NULL, 16);
		if (sz == 0)
			break;
		body = realloc(body, n + sz + 1);
		if (rd_exact(r, body + n, sz) < 0 ||
		    rd_line(r, line, sizeof(line)) < 0)
			goto fail;
		n += sz;
	}
	do {
		if (rd_line(r, line, sizeof(line)) < 0)
			goto fail;
	} while (line[0]);
	body = realloc(body, n + 1);
	body[n] = '\0';
	*len = n;
	return body;
fail:
	free(body);
	return NULL;
}

/* The value of header name in head, copied to out; NULL if absent. */
static const char *
hget(const char *head, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		const char *v;
		size_t n;

		if (strncasecmp(p + 2, name, nl) != 0 || p[2 + nl] != ':')
			continue;
		v = p + 3 + nl;
		while (*v == ' ')
			v++;
		n = strcspn(v, "\r");
		if (n >= size)
			n = size - 1;
		memcpy(out, v, n);
		out[n] = '\0';
		return out;
	}
	return NULL;
}

static void
ws_accept(const char *key, char *out)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char buf[128];

	snprintf(buf, sizeof(buf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
		 key);
	SHA1((unsigned char *)buf, strlen(buf), md);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

/* Writes a WebSocket frame (masked from clients). */
static int
ws_send(int fd, int masked, const char *p, size_t n)
{
	unsigned char f[16 + 125];
	unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	size_t h = 2;

	if (n > 125)
		return -1;
	f[0] = 0x81;
	f[1] = (unsigned char)n | (masked ? 0x80 : 0);
	if (masked) {
		memcpy(f + 2, mask, 4);
		h = 6;
	}
	for (size_t i = 0; i < n; i++)
		f[h + i] = (unsigned char)p[i] ^ (masked ? mask[i % 4] : 0);
	return write_all(fd, f, h + n);
}

/* Reads a frame's payload (<= 64 KiB) into out; opcode or -1. */
static int
ws_read(struct rd *r, char *out, size_t size, size_t *len)
{
	unsigned char h[2], ext[8], mask[4] = { 0 };
	uint64_t n;

	if (rd_exact(r, (char *)h, 2) < 0)
		return -1;
	n = h[1] & 0x7f;
	if (n == 126) {
		if (rd_exact(r, (char *)ext, 2) < 0)
			return -1;
		n = (uint64_t)ext[0] << 8 | ext[1];
	} else if (n == 127) {
		return -1;
	}
	if ((h[1] & 0x80) && rd_exact(r, (char *)mask, 4) < 0)
		return -1;
	if (n >= size || rd_exact(r, out, (size_t)n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] ^= (char)mask[i % 4];
	out[n] = '\0';
	*len = (size_t)n;
	return h[0] & 0x0f;
}

/* ---- the upstream (child process) -------------------------------------- */

static void
up_ws(struct rd *r, const char *head)
{
	char key[64], acc[64], buf[200], msg[256];
	size_t n;
	int op;

	if (!hget(head, "Sec-WebSocket-Key", key, sizeof(key)))
		return;
	ws_accept(key, acc);
	n = (size_t)snprintf(msg, sizeof(msg), "HTTP/1.1 101 Switching "
	    "Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
	if (write_all(r->fd, msg, n) < 0)
		return;
	while ((op = ws_read(r, buf, sizeof(buf), &n)) >= 0) {
		if (op == 8)
			return;
		if (ws_send(r->fd, 0, buf, n) < 0)
			return;
	}
	atomic_fetch_add(&SH->ws_eofs, 1);
	ws_send(r->fd, 0, "bye", 3);
}

static void
up_big(int fd, long total)
{
	static const char chunk[65536];
	char head[128];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
	    "Content-Length: %ld\r\n\r\n", total);

	if (write_all(fd, head, (size_t)n) < 0)
		return;
	while (total > 0) {
		size_t k = total > 65536 ? 65536 : (size_t)total;
		ssize_t w = send(fd, chunk, k, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		total -= w;
		atomic_fetch_add(&SH->big_written, (long)w);
	}
}

static void
up_reply(int fd, int head_only, int status, const char *extra,
	 const char *body, size_t n)
{
	char h[512];
	int k = snprintf(h, sizeof(h), "HTTP/1.1 %d X\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\nKeep-Alive: timeout=5\r\n"
	    "%s\r\n", status, n, extra);

	write_all(fd, h, (size_t)k);
	if (!head_only && n)
		write_all(fd, body, n);
}

static void
up_chunked(int fd, const char *body, size_t n)
{
	char h[32];

	write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		  "Connection: keep-alive\r\n\r\n");
	for (size_t i = 0; i < n; i += 1000) {
		size_t k = n - i < 1000 ? n - i : 1000;
		int hl = snprintf(h, sizeof(h), "%zx;ext=1\r\n", k);

		write_all(fd, h, (size_t)hl);
		write_all(fd, body + i, k);
		write_str(fd, "\r\n");
	}
	write_str(fd, "0\r\nX-Trailer: yes\r\n\r\n");
}

/* One request; returns 0 to keep the connection, -1 to close it. */
static int
up_request(struct rd *r, long id, int nreq)
{
	char *head = rd_head(r), *body = NULL, v[64], msg[128];
	const char *path;
	size_t blen = 0;
	int head_only, rc = 0;

	if (head == NULL)
		return -1;
	head_only = strncmp(head, "HEAD ", 5) == 0;
	path = strchr(head, ' ') + 1;
	if (strncmp(path, "/up", 3) == 0)
		path += 3;
	else if (strncmp(path, "/sock", 5) == 0)
		path += 5;	/* else /app/...: the edge stripped "/app" */
	if (hget(head, "Content-Length", v, sizeof(v))) {
		blen = strtoul(v, NULL, 10);
		body = malloc(blen + 1);
		if (rd_exact(r, body, blen) < 0)
			goto close;
	} else if (hget(head, "Transfer-Encoding", v, sizeof(v))) {
		body = rd_chunked(r, &blen);
		if (body == NULL)
			goto close;
	}
	if (strncmp(path, "/hello ", 7) == 0) {
		up_reply(r->fd, head_only, 200, "", "hello world", 11);
	} else if (strncmp(path, "/1k ", 4) == 0) {
		static char k1[1024];

		memset(k1, 'x', sizeof(k1));
		up_reply(r->fd, head_only, 200, "", k1, sizeof(k1));
	} else if (strncmp(path, "/connid ", 8) == 0) {
		int n = snprintf(msg, sizeof(msg), "conn=%ld req=%d", id, nreq);

		up_reply(r->fd, 0, 200, "", msg, (size_t)n);
	} else if (strncmp(path, "/echo ", 6) == 0) {
		up_reply(r->fd, 0, 200, "", body, blen);
	} else if (strncmp(path, "/chunked ", 9) == 0) {
		up_chunked(r->fd, body ? body : "chunky", body ? blen : 6);
	} else if (strncmp(path, "/headers", 8) == 0) {
		up_reply(r->fd, 0, 200, "Connection: keep-alive, X-Up\r\n"
		    "X-Up: hop\r\n", head, strlen(head));
	} else if (strncmp(path, "/moved", 6) == 0) {
		up_reply(r->fd, 0, 302, strstr(path, "/moved/net ") ?
			 "Location: //elsewhere.test/x\r\n" :
			 "Location: /there?a=1\r\n", "", 0);
	} else if (strncmp(path, "/nocontent ", 11) == 0) {
		write_str(r->fd, "HTTP/1.1 204 No Content\r\n\r\n");
	} else if (strncmp(path, "/close ", 7) == 0) {
		write_str(r->fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain"
			  "\r\n\r\nuntil the end");
		rc = -1;
	} else if (strncmp(path, "/hangup ", 8) == 0) {
		rc = -1;	/* read the request, close without a byte */
	} else if (strncmp(path, "/reset ", 7) == 0) {
		struct linger l = { 1, 0 };
		char part[1000];

		memset(part, 'r', sizeof(part));
		write_str(r->fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000"
			  "\r\n\r\n");
		write_all(r->fd, part, sizeof(part));
		usleep(50000);
		setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		rc = -1;
	} else if (strncmp(path, "/big?", 5) == 0) {
		up_big(r->fd, strtol(path + 5, NULL, 10));
	} else if (strncmp(path, "/ws ", 4) == 0) {
		up_ws(r, head);
		rc = -1;
	} else {
		up_reply(r->fd, 0, 404, "", "nope", 4);
	}
	free(head);
	free(body);
	return rc;
close:
	free(head);
	free(body);
	return -1;
}

static void *
up_conn(void *arg)
{
	struct rd r;
	long id = atomic_fetch_add(&SH->conn_ids, 1) + 1;
	int nreq = 0;

	rd_init(&r, (int)(intptr_t)arg);
	while (up_request(&r, id, ++nreq) == 0)
		;
	close(r.fd);
	rd_free(&r);
	return NULL;
}

static void
upstream_main(int tcp, int unx)
{
	struct pollfd p[2] = { { tcp, POLLIN, 0 }, { unx, POLLIN, 0 } };
	pthread_attr_t a;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 128 * 1024);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			pthread_t th;
			int fd, one = 1;

			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept(p[i].fd, NULL, NULL);
			if (fd < 0)
				continue;
			if (i == 0)
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
			atomic_fetch_add(&SH->accepts, 1);
			if (pthread_create(&th, &a, up_conn,
					   (void *)(intptr_t)fd))
				close(fd);
		}
	}
}

/* ---- sockets ------------------------------------------------------------ */

static int
listen_tcp(int *port, int backlog)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, backlog) < 0)
		abort();
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(su.sun_path, sizeof(su.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&su, sizeof(su)) < 0 ||
	    listen(fd, 1024) < 0)
		abort();
	return fd;
}

/* A client connection to the edge, from 127.0.0.1 or bind_ip. */
static int
cli_open(const char *bind_ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind_ip) {
		inet_pton(AF_INET, bind_ip, &sa.sin_addr);
		bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	sa.sin_port = htons((uint16_t)edge_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct resp {
	int status;
	char *head;
	char *body;
	size_t blen;
};

static void
resp_free(struct resp *rs)
{
	free(rs->head);
	free(rs->body);
	memset(rs, 0, sizeof(*rs));
}

/* Reads one response; 0 ok, -1 error or early EOF. */
static int
read_resp(struct rd *r, int head_req, struct resp *rs)
{
	char v[64];

	memset(rs, 0, sizeof(*rs));
	rs->head = rd_head(r);
	if (rs->head == NULL || sscanf(rs->head, "HTTP/1.%*d %d",
	    &rs->status) != 1)
		return -1;
	if (head_req || rs->status == 204 || rs->status == 304 ||
	    rs->status == 101)
		return 0;
	if (hget(rs->head, "Transfer-Encoding", v, sizeof(v))) {
		rs->body = rd_chunked(r, &rs->blen);
		return rs->body ? 0 : -1;
	}
	if (hget(rs->head, "Content-Length", v, sizeof(v))) {
		rs->blen = strtoul(v, NULL, 10);
		rs->body = malloc(rs->blen + 1);
		rs->body[rs->blen] = '\0';
		return rd_exact(r, rs->body, rs->blen);
	}
	for (;;) {
		ssize_t n = rd_fill(r);

		if (n == 0)
			break;
		if (n < 0)
			return -1;
	}
	rs->blen = r->len - r->off;
	rs->body = malloc(rs->blen + 1);
	memcpy(rs->body, r->buf + r->off, rs->blen);
	rs->body[rs->blen] = '\0';
	r->off = r->len;
	return 0;
}

/* Sends raw on a fresh connection, reads one response. */
static int
once(const char *raw, size_t n, int head_req, struct resp *rs)
{
	struct rd r;
	int fd = cli_open(NULL), rc;

	if (fd < 0)
		return -1;
	rd_init(&r, fd);
	rc = write_all(fd, raw, n ? n : strlen(raw));
	if (rc == 0)
		rc = read_resp(&r, head_req, rs);
	close(fd);
	rd_free(&r);
	return rc;
}

static int
get_status(const char *raw)
{
	struct resp rs;
	int st = once(raw, 0, 0, &rs) == 0 ? rs.status : -1;

	resp_free(&rs);
	return st;
}

/* ---- the router and hooks ---------------------------------------------- */

static void
proxy_to(struct edge_target *t, int port, const char *act)
{
	t->action = EDGE_PROXY;
	snprintf(t->host, sizeof(t->host), "127.0.0.1");
	t->port = port;
	snprintf(t->activity, sizeof(t->activity), "%s", act);
}

static void
route(void *ctx, const struct edge_request *rq, struct edge_target *t)
{
	(void)ctx;
	if (bench_port) {
		proxy_to(t, bench_port, "");
		return;
	}
	if (strncmp(rq->target, "/up/", 4) == 0) {
		proxy_to(t, up_port, "alice");
		snprintf(t->strip_cookie, sizeof(t->strip_cookie), "hubcookie");
		if (strstr(rq->target, "strip"))
			t->strip_authorization = 1;
		else
			snprintf(t->authorization, sizeof(t->authorization),
				 "token srv");
		if (strstr(rq->target, "trusted")) {
			snprintf(seen_ip, sizeof(seen_ip), "%s", rq->client_ip);
			seen_https = rq->https;
		}
	} else if (strncmp(rq->target, "/app/", 5) == 0) {
		/* a web app served at "/": prefix stripped, headers set */
		proxy_to(t, up_port, "alice");
		snprintf(t->strip_cookie, sizeof(t->strip_cookie), "hubcookie");
		t->strip_authorization = 1;
		t->strip_target = 4;
		t->nheaders = 2;
		snprintf(t->header_name[0], 64, "X-Root");
		snprintf(t->header_value[0], 512, "/app/");
		snprintf(t->header_name[1], 64, "x-keep");
		snprintf(t->header_value[1], 512, "from the route");
	} else if (strncmp(rq->target, "/sock/", 6) == 0) {
		t->action = EDGE_PROXY;
		snprintf(t->unix_path, sizeof(t->unix_path), "%s", sock_path);
	} else if (strcmp(rq->target, "/refused") == 0) {
		proxy_to(t, refused_port, "bob");
	} else if (strcmp(rq->target, "/silent") == 0) {
		proxy_to(t, silent_port, "carol");
		t->timeout_ms = 300;
	} else if (strcmp(rq->target, "/redirect") == 0) {
		t->action = EDGE_RESPOND;
		t->status = 302;
		t->content_type = "text/plain";
		t->body = strdup("");
		snprintf(t->location, sizeof(t->location), "/hub/login?next=x");
	} else {
		t->action = EDGE_RESPOND;
		t->status = 403;
		t->content_type = "text/plain";
		t->body = strdup("denied");
		t->body_len = 6;
	}
}

static void
activity(void *ctx, const char *key, int from_client)
{
	(void)ctx;
	if (strcmp(key, "alice") == 0)
		atomic_fetch_add(from_client ? &act_alice : &act_alice_up, 1);
}

static void
upstream_failed(void *ctx, const char *key, int status)
{
	(void)ctx;
	snprintf(failed_key, sizeof(failed_key), "%s", key);
	failed_status = status;
	atomic_fetch_add(&failed_calls, 1);
}

static char *
error_page(void *ctx, int status, const char *msg, size_t *len)
{
	char *s;

	(void)ctx;
	(void)msg;
	if (asprintf(&s, "<h1>edge error %d</h1>", status) < 0)
		return NULL;
	*len = strlen(s);
	return s;
}

/* ---- process measurements ----------------------------------------------- */

static long
rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static int
count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 65536; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (access(path, F_OK) == 0)
			n++;
		else if (fd > 200 && n < fd - 10000)
			break;
	}
	return n;
}

/* 1 under valgrind (its preload is mapped): sizes shrink, RSS unchecked. */
static int
under_valgrind(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int yes = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "vgpreload"))
			yes = 1;
	if (f)
		fclose(f);
	return yes;
}

#if defined(__SANITIZE_ADDRESS__)
static const int rss_meaningful = 0;
#else
static const int rss_meaningful = 1;
#endif

static void
msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- the WebSocket client process --------------------------------------- */

static int
ws_open(struct rd *r, const char *path)
{
	char req[512], v[64];
	int fd = cli_open(NULL);
	struct resp rs;
	int ok;

	if (fd < 0)
		return -1;
	rd_init(r, fd);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: hub.test\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", path);
	if (write_all(fd, req, strlen(req)) < 0 || read_resp(r, 0, &rs) < 0) {
		close(fd);
		rd_free(r);
		return -1;
	}
	ok = rs.status == 101 && hget(rs.head, "Sec-WebSocket-Accept", v,
	    sizeof(v)) && strcmp(v, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0;
	resp_free(&rs);
	if (!ok) {
		close(fd);
		rd_free(r);
		return -1;
	}
	return fd;
}

/* Child: on "n" opens n idle WebSockets, answers their count; on "c"
 * closes them all and answers; exits at EOF. */
static void
wsclient_main(int cmd, int ans)
{
	int *fds = NULL, n = 0;
	char c;

	while (read(cmd, &c, 1) == 1) {
		if (c == 'c') {
			for (int i = 0; i < n; i++)
				close(fds[i]);
			n = 0;
		} else {
			int want;

			if (read(cmd, &want, sizeof(want)) != sizeof(want))
				break;
			fds = realloc(fds, sizeof(int) * (size_t)want);
			for (n = 0; n < want; n++) {
				struct rd r;

				fds[n] = ws_open(&r, "/up/ws");
				if (fds[n] < 0)
					break;
				rd_free(&r);
			}
		}
		if (write(ans, &n, sizeof(n)) != sizeof(n))
			break;
	}
	free(fds);
	_exit(0);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_basics(void)
{
	struct resp rs;
	char v[256];

	T_OK(once("GET /up/hello HTTP/1.1\r\nHost: hub.test\r\n\r\n", 0, 0,
		  &rs) == 0 && rs.status == 200 && rs.blen == 11 &&
	     strcmp(rs.body, "hello world") == 0, "GET through the edge");
	resp_free(&rs);
	T_OK(once("GET /redirect HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 302 && hget(rs.head, "Location", v, sizeof(v)) &&
	     strcmp(v, "/hub/login?next=x") == 0 &&
	     hget(rs.head, "Cache-Control", v, sizeof(v)) &&
	     strcmp(v, "no-store") == 0, "302 with Location from the router");
	resp_free(&rs);
	T_OK(once("GET /deny HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0 &&
	     rs.status == 403 && strcmp(rs.body, "denied") == 0,
	     "403 body from the router");
	resp_free(&rs);
	T_OK(once("GET /sock/hello HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs)
	     == 0 && rs.status == 200 && strcmp(rs.body, "hello world") == 0,
	     "unix-socket upstream");
	resp_free(&rs);
	T_OK(once("GET /up/hello HTTP/1.0\r\n\r\n", 0, 0, &rs) == 0 &&
	     rs.status == 200 && strcmp(rs.body, "hello world") == 0 &&
	     hget(rs.head, "Connection", v, sizeof(v)) &&
	     strcmp(v, "close") == 0, "HTTP/1.0 request, closed after");
	resp_free(&rs);
}

static void
test_keepalive(void)
{
	struct rd r;
	struct resp a, b, h, n;
	const char *req = "GET /up/connid HTTP/1.1\r\nHost: h\r\n\r\n";
	long acc0 = SH->accepts;
	char ida[64] = "", idb[64] = "";
	int fd = cli_open(NULL);

	rd_init(&r, fd);
	write_all(fd, req, strlen(req));
	T_OK(read_resp(&r, 0, &a) == 0 && a.status == 200, "first request");
	write_all(fd, req, strlen(req));
	T_OK(read_resp(&r, 0, &b) == 0 && b.status == 200,
	     "second request on the same client connection");
	if (a.body && b.body) {
		sscanf(a.body, "conn=%63[0-9]", ida);
		sscanf(b.body, "conn=%63[0-9]", idb);
	}
	T_OK(ida[0] && strcmp(ida, idb) == 0,
	     "upstream connection reused (%s / %s)", a.body, b.body);
	T_OK(SH->accepts - acc0 <= 1, "at most one upstream accept");
	/* HEAD and 204: no body, and the connection stays in step */
	write_str(fd, "HEAD /up/hello HTTP/1.1\r\nHost: h\r\n\r\n");
	T_OK(read_resp(&r, 1, &h) == 0 && h.status == 200 &&
	     strstr(h.head, "Content-Length: 11"), "HEAD: head only");
	write_str(fd, "GET /up/nocontent HTTP/1.1\r\nHost: h\r\n\r\n");
	T_OK(read_resp(&r, 0, &n) == 0 && n.status == 204, "204 relayed");
	resp_free(&h);
	resp_free(&n);
	/* pipelined: two requests in one write */
	write_str(fd, "GET /up/hello HTTP/1.1\r\nHost: h\r\n\r\n"
		  "GET /deny HTTP/1.1\r\nHost: h\r\n\r\n");
	T_OK(read_resp(&r, 0, &h) == 0 && h.status == 200 &&
	     read_resp(&r, 0, &n) == 0 && n.status == 403,
	     "pipelined requests answered in order");
	resp_free(&h);
	resp_free(&n);
	resp_free(&a);
	resp_free(&b);
	close(fd);
	rd_free(&r);
}

struct sender {
	int fd;
	const char *p;
	size_t n;
};

static void *
send_thread(void *arg)
{
	struct sender *s = arg;

	write_all(s->fd, s->p, s->n);
	return NULL;
}

static void
test_bodies(void)
{
	size_t n = small ? 300000 : 5 * 1024 * 1024;
	char *body = malloc(n), head[256], *chunked;
	struct sender s;
	struct resp rs;
	pthread_t th;
	struct rd r;
	size_t cl = 0;
	int fd;

	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i * 7 + i / 251);
	fd = cli_open(NULL);
	rd_init(&r, fd);
	snprintf(head, sizeof(head), "POST /up/echo HTTP/1.1\r\nHost: h\r\n"
		 "Content-Length: %zu\r\n\r\n", n);
	write_all(fd, head, strlen(head));
	s = (struct sender){ fd, body, n };
	pthread_create(&th, NULL, send_thread, &s);
	T_OK(read_resp(&r, 0, &rs) == 0 && rs.status == 200 && rs.blen == n &&
	     memcmp(rs.body, body, n) == 0, "POST %zu bytes echoed intact", n);
	pthread_join(th, NULL);
	resp_free(&rs);
	/* chunked request body, chunked response */
	chunked = malloc(n + n / 100 + 4096);
	cl = (size_t)sprintf(chunked, "POST /up/chunked HTTP/1.1\r\nHost: h\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n");
	for (size_t i = 0; i < 200000; i += 7000) {
		size_t k = 200000 - i < 7000 ? 200000 - i : 7000;

		cl += (size_t)sprintf(chunked + cl, "%zx\r\n", k);
		memcpy(chunked + cl, body + i, k);
		cl += k;
		memcpy(chunked + cl, "\r\n", 2);
		cl += 2;
	}
	memcpy(chunked + cl, "0\r\n\r\n", 5);
	cl += 5;
	write_all(fd, chunked, cl);
	T_OK(read_resp(&r, 0, &rs) == 0 && rs.status == 200 &&
	     rs.blen == 200000 && memcmp(rs.body, body, 200000) == 0 &&
	     strstr(rs.head, "Transfer-Encoding: chunked"),
	     "chunked request body echoed as a chunked response");
	resp_free(&rs);
	write_str(fd, "GET /up/hello HTTP/1.1\r\nHost: h\r\n\r\n");
	T_OK(read_resp(&r, 0, &rs) == 0 && rs.status == 200,
	     "connection usable after chunked exchange");
	resp_free(&rs);
	close(fd);
	rd_free(&r);
	free(chunked);
	free(body);
	T_OK(once("GET /up/close HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 200 && strcmp(rs.body, "until the end") == 0 &&
	     strstr(rs.head, "Connection: close"),
	     "close-delimited response relayed, client closed: %s %s",
	     rs.head, rs.body);
	resp_free(&rs);
}

static void
test_headers(void)
{
	struct resp rs;
	struct rd r;
	int fd;

	T_OK(once("GET /up/headers HTTP/1.1\r\nHost: hub.test\r\n"
		  "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
		  "Keep-Alive: 300\r\nProxy-Connection: x\r\nTE: trailers\r\n"
		  "Trailer: X\r\nUpgrade: h2c\r\nX-Keep: yes\r\n"
		  "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
		  "Authorization: Basic dXNlcjpwYXNz\r\n"
		  "Cookie: a=1; hubcookie=secret; b=2\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 200, "header echo");
	if (rs.body) {
		const char *b = rs.body;

		T_OK(!strcasestr(b, "X-Secret") && !strcasestr(b, "Keep-Alive")
		     && !strcasestr(b, "Proxy-Connection") &&
		     !strstr(b, "\r\nTE:") && !strstr(b, "\r\nTrailer:") &&
		     !strstr(b, "Upgrade:") && strstr(b, "X-Keep: yes"),
		     "hop-by-hop headers removed: %s", b);
		T_OK(strstr(b, "X-Forwarded-For: 127.0.0.1\r\n") &&
		     !strstr(b, "6.6.6.6") &&
		     strstr(b, "X-Forwarded-Proto: http\r\n") &&
		     strstr(b, "X-Forwarded-Host: hub.test\r\n") &&
		     strstr(b, "Host: hub.test\r\n"), "X-Forwarded-* set");
		T_OK(strstr(b, "Authorization: token srv\r\n") &&
		     !strstr(b, "Basic"), "Authorization replaced");
		T_OK(strstr(b, "Cookie: a=1; b=2\r\n") && !strstr(b, "secret"),
		     "strip_cookie removed, other cookies kept");
		T_OK(strncmp(b, "GET /up/headers HTTP/1.1\r\n", 26) == 0,
		     "method, target, version");
	}
	T_OK(!strstr(rs.head, "X-Up:") && !strstr(rs.head, "Keep-Alive") &&
	     strstr(rs.head, "Connection: keep-alive\r\n"),
	     "response hop-by-hop removed: %s", rs.head);
	resp_free(&rs);
	T_OK(once("GET /up/headers/strip HTTP/1.1\r\nHost: h\r\n"
		  "Authorization: token user\r\nCookie: hubcookie=s\r\n\r\n",
		  0, 0, &rs) == 0 && rs.body && !strstr(rs.body, "Authoriz")
	     && !strstr(rs.body, "Cookie"),
	     "Authorization stripped, empty Cookie dropped");
	resp_free(&rs);
	/* a web app's route: target stripped, its headers replace the
	 * client's of the same names, no Authorization, no hub cookie */
	T_OK(once("GET /app/headers?q=1 HTTP/1.1\r\nHost: h\r\n"
		  "X-Keep: forged\r\nX-ROOT: /evil/\r\nX-Other: 1\r\n"
		  "Authorization: token user\r\nCookie: a=1; hubcookie=s\r\n"
		  "\r\n", 0, 0, &rs) == 0 && rs.status == 200 && rs.body,
	     "web app route answers");
	if (rs.body) {
		const char *b = rs.body;

		T_OK(strncmp(b, "GET /headers?q=1 HTTP/1.1\r\n", 27) == 0,
		     "target stripped to /headers?q=1: %.40s", b);
		T_OK(strstr(b, "\r\nX-Root: /app/\r\n") &&
		     strstr(b, "\r\nx-keep: from the route\r\n") &&
		     !strstr(b, "forged") && !strstr(b, "/evil/") &&
		     strstr(b, "X-Other: 1\r\n"),
		     "route headers set, the client's of those names dropped");
		T_OK(!strstr(b, "Authoriz") && strstr(b, "Cookie: a=1\r\n") &&
		     !strstr(b, "hubcookie"), "no Authorization, no hub cookie");
	}
	resp_free(&rs);
	T_OK(once("GET /app/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 404, "/app/ reaches the upstream as /");
	resp_free(&rs);
	/* an absolute-path redirect of the app keeps the stripped prefix */
	T_OK(once("GET /app/moved HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 302 &&
	     strstr(rs.head, "\r\nLocation: /app/there?a=1\r\n"),
	     "Location /there?a=1 -> /app/there?a=1: %s", rs.head);
	resp_free(&rs);
	T_OK(once("GET /app/moved/net HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0,
		  &rs) == 0 && rs.status == 302 &&
	     strstr(rs.head, "\r\nLocation: //elsewhere.test/x\r\n"),
	     "a network-path Location is left alone: %s", rs.head);
	resp_free(&rs);
	T_OK(once("GET /up/moved HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 302 &&
	     strstr(rs.head, "\r\nLocation: /there?a=1\r\n"),
	     "no strip, no change: %s", rs.head);
	resp_free(&rs);
	fd = ws_open(&r, "/app/ws");
	T_OK(fd >= 0, "WebSocket upgrade on a stripped target (/ws upstream)");
	if (fd >= 0) {
		close(fd);
		rd_free(&r);
	}
	/* a trusted proxy's X-Forwarded-For and -Proto are believed */
	fd = cli_open("127.0.0.2");
	rd_init(&r, fd);
	write_str(fd, "GET /up/headers/trusted HTTP/1.1\r\nHost: h\r\n"
		  "X-Forwarded-For: 10.1.1.1, 1.2.3.4\r\nX-Forwarded-Proto: "
		  "https\r\n\r\n");
	T_OK(read_resp(&r, 0, &rs) == 0 && rs.body &&
	     strcmp(seen_ip, "1.2.3.4") == 0 && seen_https == 1 &&
	     strstr(rs.body, "X-Forwarded-For: 10.1.1.1, 1.2.3.4, "
		    "127.0.0.2\r\n") &&
	     strstr(rs.body, "X-Forwarded-Proto: https"),
	     "trusted proxy: client_ip %s https %d: %s", seen_ip, seen_https,
	     rs.body);
	resp_free(&rs);
	close(fd);
	rd_free(&r);
}

static void
test_bad_requests(void)
{
	char big[24000];
	struct resp rs;
	int n;

	T_OK(get_status("GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n") ==
	     400, "header without colon: 400");
	T_OK(get_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == 400,
	     "space before colon: 400");
	T_OK(get_status("GET /\r\nHost: h\r\n\r\n") == 400,
	     "bad request line: 400");
	T_OK(get_status("GET / HTTP/1.1\r\n\r\n") == 400,
	     "HTTP/1.1 without Host: 400");
	T_OK(get_status("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n") == 400,
	     "obs-fold: 400");
	T_OK(get_status("POST /up/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3"
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400,
	     "Content-Length with Transfer-Encoding: 400");
	T_OK(get_status("POST /up/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3"
			"\r\nContent-Length: 4\r\n\r\nabcd") == 400,
	     "conflicting Content-Length: 400");
	T_OK(get_status("POST /up/echo HTTP/1.1\r\nHost: h\r\nContent-Length: "
			"-1\r\n\r\n") == 400, "negative Content-Length: 400");
	T_OK(get_status("POST /up/echo HTTP/1.1\r\nHost: h\r\nTransfer-"
			"Encoding: gzip, chunked\r\n\r\n") == 400,
	     "a coding other than chunked: 400");
	T_OK(get_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505,
	     "HTTP/2.0 request line: 505");
	n = snprintf(big, sizeof(big), "GET /up/hello HTTP/1.1\r\nHost: h\r\n"
		     "X-Big: ");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 5);
	memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
	T_OK(once(big, sizeof(big) - 1, 0, &rs) == 0 && rs.status == 431 &&
	     strstr(rs.body, "edge error 431"), "oversized head: 431 page");
	resp_free(&rs);
}

static void
test_failures(void)
{
	struct resp rs;
	struct rd r;
	long t0;
	int fd, got = 0;

	failed_calls = 0;
	T_OK(once("GET /refused HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 502 && strstr(rs.body, "edge error 502"),
	     "refused upstream: 502 page");
	T_OK(failed_calls == 1 && strcmp(failed_key, "bob") == 0 &&
	     failed_status == 502, "upstream_failed(bob, 502) called");
	resp_free(&rs);
	t0 = (long)time_mono_ms();
	T_OK(once("GET /silent HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 504, "silent upstream: 504");
	t0 = (long)time_mono_ms() - t0;
	T_OK(t0 >= 280 && t0 < 2000, "504 after timeout_ms (%ld ms)", t0);
	T_OK(strcmp(failed_key, "carol") == 0 && failed_status == 504,
	     "upstream_failed(carol, 504) called");
	resp_free(&rs);
	t0 = (long)time_mono_ms();
	T_OK(once("GET /up/hangup HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, &rs) == 0
	     && rs.status == 502, "upstream closes without answering: 502 "
	     "(got %d)", rs.status);
	t0 = (long)time_mono_ms() - t0;
	T_OK(t0 < 2000, "the 502 comes at once (%ld ms)", t0);
	resp_free(&rs);
	fd = cli_open(NULL);
	rd_init(&r, fd);
	write_str(fd, "GET /up/reset HTTP/1.1\r\nHost: h\r\n\r\n");
	rs.head = rd_head(&r);
	for (;;) {
		ssize_t n = rd_fill(&r);

		if (n <= 0)
			break;
	}
	got = (int)(r.len - r.off);
	T_OK(rs.head && strstr(rs.head, "200") && got < 100000,
	     "upstream reset mid-response: client closed after %d bytes",
	     got);
	free(rs.head);
	close(fd);
	rd_free(&r);
}

static void
test_idle_timeout(void)
{
	int fd = cli_open(NULL);
	char c;
	long t0 = (long)time_mono_ms();
	ssize_t n = recv(fd, &c, 1, 0);

	t0 = (long)time_mono_ms() - t0;
	T_OK(n == 0 && t0 >= 900 && t0 < 5000,
	     "silent client closed after the header timeout (%ld ms)", t0);
	close(fd);
}

static void
test_websocket(void)
{
	struct rd r;
	char buf[256];
	size_t n;
	long eofs = SH->ws_eofs, a0 = act_alice, a1 = act_alice_up;
	int fd = ws_open(&r, "/up/ws"), op1, op2;
	struct edge_stats st;

	T_OK(fd >= 0, "WebSocket handshake through the edge");
	if (fd < 0)
		return;
	edge_get_stats(ED, &st);
	T_OK(st.websockets_open >= 1, "websockets_open counted");
	ws_send(fd, 1, "hello edge", 10);
	op1 = ws_read(&r, buf, sizeof(buf), &n);
	T_OK(op1 == 1 && n == 10 && strcmp(buf, "hello edge") == 0,
	     "masked text frame echoed");
	ws_send(fd, 1, "last", 4);
	shutdown(fd, SHUT_WR);
	op1 = ws_read(&r, buf, sizeof(buf), &n);
	T_OK(op1 == 1 && strcmp(buf, "last") == 0, "echo after half-close");
	op2 = ws_read(&r, buf, sizeof(buf), &n);
	T_OK(op2 == 1 && strcmp(buf, "bye") == 0 && SH->ws_eofs == eofs + 1,
	     "upstream saw EOF and its reply still arrived");
	T_OK(rd_fill(&r) == 0, "then EOF");
	T_OK(act_alice > a0 && act_alice_up > a1,
	     "activity hook called both ways (%ld %ld)", (long)act_alice,
	     (long)act_alice_up);
	close(fd);
	rd_free(&r);
}

struct loadarg {
	int nreq;
	_Atomic int *ok;
};

static void *
load_thread(void *arg)
{
	struct loadarg *a = arg;
	const char *req = "GET /up/hello HTTP/1.1\r\nHost: h\r\n\r\n";
	struct rd r;
	int fd = cli_open(NULL), good = 0;

	if (fd < 0)
		return NULL;
	rd_init(&r, fd);
	for (int i = 0; i < a->nreq; i++) {
		struct resp rs;

		if (write_all(fd, req, strlen(req)) < 0 ||
		    read_resp(&r, 0, &rs) < 0) {
			resp_free(&rs);
			break;
		}
		good += rs.status == 200 && strcmp(rs.body, "hello world") == 0;
		resp_free(&rs);
	}
	if (good == a->nreq)
		atomic_fetch_add(a->ok, 1);
	close(fd);
	rd_free(&r);
	return NULL;
}

static void
test_concurrency(void)
{
	int nc = small ? 20 : 200, nr = small ? 10 : 50;
	pthread_t *th = calloc((size_t)nc, sizeof(*th));
	_Atomic int ok = 0;
	struct loadarg a = { nr, &ok };
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (int i = 0; i < nc; i++)
		pthread_create(&th[i], &at, load_thread, &a);
	for (int i = 0; i < nc; i++)
		pthread_join(th[i], NULL);
	T_OK(ok == nc, "%d concurrent clients x %d requests: %d all correct",
	     nc, nr, (int)ok);
	free(th);
}

static void
test_slow_client(void)
{
	long total = 50L * 1024 * 1024, rss0 = rss_kb(), rss1, w;
	char req[128];
	int fd = cli_open(NULL), rcv = 65536;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	SH->big_written = 0;
	snprintf(req, sizeof(req), "GET /up/big?%ld HTTP/1.1\r\nHost: h\r\n"
		 "\r\n", total);
	write_all(fd, req, strlen(req));
	msleep(small ? 3000 : 1500);
	rss1 = rss_kb();
	w = SH->big_written;
	T_OK(w > 0 && w < total / 2, "slow client blocks the upstream "
	     "(%ld of %ld bytes written)", w, total);
	T_OK(!rss_meaningful || rss1 - rss0 < 20 * 1024, "edge RSS flat with a slow client "
	     "(+%ld KiB)", rss1 - rss0);
	close(fd);
}

/* Waits up to ms for the edge to close fd (reading and dropping data);
 * returns how long it took, -1 if it stayed open. */
static long
closed_within(int fd, long ms)
{
	long t0 = (long)time_mono_ms();
	struct pollfd p = { fd, POLLIN, 0 };
	char buf[65536];

	while ((long)time_mono_ms() - t0 < ms) {
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return (long)time_mono_ms() - t0;
	}
	return -1;
}

/* Runs with CLIENT_IDLE_TIMEOUT and WEBSOCKET_IDLE_TIMEOUT of 1 s. */
static void
test_client_timeouts(void)
{
	struct rd r;
	struct edge_stats st0, st1;
	char req[160];
	long took, w;
	int fd, rcv = 4096;

	msleep(200);
	edge_get_stats(ED, &st0);
	fd = cli_open(NULL);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	snprintf(req, sizeof(req), "GET /up/big?%ld HTTP/1.1\r\nHost: h\r\n"
		 "\r\n", 200L * 1024 * 1024);
	write_all(fd, req, strlen(req));
	msleep(3000);
	edge_get_stats(ED, &st1);
	w = SH->big_written;
	msleep(500);
	T_OK(st1.connections_open == st0.connections_open &&
	     SH->big_written == w && w < 100L * 1024 * 1024,
	     "a client that stopped reading is closed, its upstream too (open "
	     "%llu -> %llu, %ld bytes sent up)",
	     (unsigned long long)st0.connections_open,
	     (unsigned long long)st1.connections_open, w);
	close(fd);
	fd = cli_open(NULL);
	write_all(fd, "POST /up/echo HTTP/1.1\r\nHost: h\r\nContent-Length: "
		  "100\r\n\r\nabc", 56);
	took = closed_within(fd, 5000);
	T_OK(took >= 500 && took < 4000, "a client stalled in its body is "
	     "closed after the idle timeout (%ld ms)", took);
	close(fd);
	fd = ws_open(&r, "/up/ws");
	T_OK(fd >= 0, "WebSocket for the idle timeout");
	if (fd >= 0) {
		took = closed_within(fd, 5000);
		T_OK(took >= 500 && took < 4000, "an idle WebSocket is closed "
		     "after WEBSOCKET_IDLE_TIMEOUT (%ld ms)", took);
		close(fd);
		rd_free(&r);
	}
}

static void
test_idle_websockets(int cmd, int ans)
{
	int want = 1000, got = 0, fds0, fds1, fds2 = 0;
	const char *env = getenv("EDGE_WS_N");
	long rss0, rss1, rss2 = 0;
	struct edge_stats st;
	char c = 'n';

	if (env)
		want = (int)strtol(env, NULL, 10);
	if (small)
		want = 100;
	msleep(300);
	fds0 = count_fds();
	rss0 = rss_kb();
	if (write(cmd, &c, 1) != 1 || write(cmd, &want, sizeof(want)) !=
	    sizeof(want) || read(ans, &got, sizeof(got)) != sizeof(got))
		got = -1;
	msleep(200);
	fds1 = count_fds();
	rss1 = rss_kb();
	edge_get_stats(ED, &st);
	T_OK(got == want && (int)st.websockets_open == want,
	     "%d idle WebSockets open (%d, stats %llu)", want, got,
	     (unsigned long long)st.websockets_open);
	printf("idle websockets: %d, edge fds +%d, RSS +%ld KiB, %.2f KiB "
	       "each\n", got, fds1 - fds0, rss1 - rss0,
	       got > 0 ? (double)(rss1 - rss0) / got : 0.0);
	T_OK(got > 0 && (!rss_meaningful || small ||
	     (rss1 - rss0) * 1024 / got <= 8192),
	     "idle WebSocket costs <= 8 KiB RSS");
	c = 'c';
	if (write(cmd, &c, 1) != 1 || read(ans, &got, sizeof(got)) !=
	    sizeof(got))
		got = -1;
	for (int i = 0; i < 100; i++) {
		msleep(100);
		fds2 = count_fds();
		edge_get_stats(ED, &st);
		if (fds2 <= fds0 && st.websockets_open == 0)
			break;
	}
	rss2 = rss_kb();
	T_OK(fds2 <= fds0 && st.websockets_open == 0,
	     "all closed: fds back (%d -> %d -> %d)", fds0, fds1, fds2);
	printf("after close: RSS %+ld KiB from before\n", rss2 - rss0);
}

static volatile sig_atomic_t stop_flag;

static void
on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* Bench mode: proxy everything to up ("host:port") until SIGTERM. */
static int
serve(const char *up, struct edge_cfg *cfg, struct edge_hooks *hooks)
{
	const char *port = getenv("EDGE_BENCH_PORT"), *th = getenv("EDGE_THREADS");
	char listen_addr[64];
	struct err e = { 0 };

	bench_port = (int)strtol(strrchr(up, ':') + 1, NULL, 10);
	snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%s",
		 port ? port : "8800");
	cfg->listen = listen_addr;
	cfg->threads = th ? (int)strtol(th, NULL, 10) : 2;
	cfg->idle_timeout_ms = 75000;
	cfg->header_timeout_ms = 30000;
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	ED = edge_start(cfg, hooks, &e);
	if (ED == NULL) {
		fprintf(stderr, "edge_start: %s\n", e.msg);
		return 1;
	}
	printf("edge on %s -> %s\n", listen_addr, up);
	fflush(stdout);
	while (!stop_flag)
		pause();
	edge_stop(ED);
	return 0;
}

int
main(void)
{
	const char *bench = getenv("EDGE_BENCH_UPSTREAM");
	static const char *const trusted[] = { "127.0.0.2", NULL };
	struct edge_hooks hooks = { route, activity, upstream_failed,
		error_page, NULL };
	struct edge_cfg cfg = {
		.threads = 2, .idle_timeout_ms = 1000,
		.header_timeout_ms = 1000, .max_header_bytes = 16 * 1024,
		.trusted_proxies = trusted,
	};
	char listen_addr[64];
	struct err e = { 0 };
	int up_fd, unx, silent, tmp, cmd[2], ans[2];
	pid_t up_pid, ws_pid;

	signal(SIGPIPE, SIG_IGN);
	small = getenv("EDGE_TEST_SMALL") != NULL || under_valgrind();
	log_set_level(getenv("EDGE_DEBUG") ? LOG_DEBUG : LOG_WARN);
	if (bench)
		return serve(bench, &cfg, &hooks);
	SH = mmap(NULL, sizeof(*SH), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	up_fd = listen_tcp(&up_port, 4096);
	snprintf(sock_path, sizeof(sock_path), "/tmp/edge-test-%d.sock",
		 (int)getpid());
	unx = listen_unix(sock_path);
	silent = listen_tcp(&silent_port, 16);
	close(listen_tcp(&refused_port, 1));
	tmp = listen_tcp(&edge_port, 1);
	close(tmp);
	up_pid = fork();
	if (up_pid == 0) {
		upstream_main(up_fd, unx);
		_exit(0);
	}
	close(up_fd);
	close(unx);
	if (pipe(cmd) < 0 || pipe(ans) < 0)
		return 1;
	ws_pid = fork();
	if (ws_pid == 0) {
		close(cmd[1]);
		close(ans[0]);
		close(silent);
		wsclient_main(cmd[0], ans[1]);
	}
	close(cmd[0]);
	close(ans[1]);
	snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", edge_port);
	cfg.listen = listen_addr;
	ED = edge_start(&cfg, &hooks, &e);
	if (ED == NULL) {
		fprintf(stderr, "edge_start: %s\n", e.msg);
		T_OK(0, "edge starts");
	} else {
		test_basics();
		test_keepalive();
		test_bodies();
		test_headers();
		test_bad_requests();
		test_failures();
		test_idle_timeout();
		test_websocket();
		test_concurrency();
		test_slow_client();
		test_idle_websockets(cmd[1], ans[0]);
		edge_stop(ED);
		cfg.idle_timeout_ms = 1000;
		cfg.websocket_idle_timeout_ms = 1000;
		ED = edge_start(&cfg, &hooks, &e);
		if (ED != NULL) {
			test_client_timeouts();
			edge_stop(ED);
		} else {
			T_OK(0, "edge restarts: %s", e.msg);
		}
	}
	close(cmd[1]);
	close(ans[0]);
	close(silent);
	kill(up_pid, SIGKILL);
	waitpid(up_pid, NULL, 0);
	waitpid(ws_pid, NULL, 0);
	unlink(sock_path);
	munmap(SH, sizeof(*SH));
	return t_done();
}
