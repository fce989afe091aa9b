/*
 * edge.c - the epoll HTTP/1.1 reverse proxy in front of the hub.
 *
 * Each worker thread owns an epoll set, a SO_REUSEPORT listener, its
 * client connections and a pool of idle upstream connections; nothing is
 * shared between workers but the configuration and the counters. Sockets
 * are edge-triggered: an event only sets "readable"/"writable" hints on the
 * connection and pump() then does all the work it can until a socket says
 * EAGAIN, so there is no interest juggling and no busy loop.
 *
 * A client connection (struct conn) moves through ST_HEAD (reading a request
 * head), ST_RESPOND (the edge answers itself), ST_PROXY (request streamed up,
 * response streamed down, both through fixed buffers: a full buffer stops
 * the reading side, which is the backpressure), ST_WS (a byte relay after a
 * 101) and ST_LINGER (response written, draining the client before close).
 * Bodies are framed by struct framer (Content-Length or chunked, passed
 * through unchanged) so both ends stay in step and connections are reused.
 * Ownership: the worker owns its conns; a conn owns its buffers, its
 * upstream socket and the routed body; conn_close() is the one teardown.
 * Freed structures are parked on a dead list until the end of the epoll
 * batch so that a later event of the same batch never sees freed memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include "edge.h"
#include "http1.h"

#define IN_CAP		(16 * 1024)	/* client -> upstream buffer */
#define RESP_CAP	(64 * 1024)	/* upstream -> client buffer */
#define SCRATCH_CAP	(64 * 1024)	/* per worker, WebSocket relay */
#define POOL_MAX	256		/* idle upstream conns per worker */
#define POOL_IDLE_MS	30000
#define LINGER_MS	2000
#define SWEEP_MS	100
#define ACCEPT_BACKOFF_MS 100		/* listener rest after EMFILE */
#define FD_RESERVE	256		/* fds kept for the hub's own use */
#define TAG_POOL	2		/* epoll data: pconn | TAG_POOL */
#define EV_LISTEN	((uint64_t)3)
#define EV_WAKE		((uint64_t)7)

enum cstate { ST_HEAD, ST_RESPOND, ST_PROXY, ST_WS, ST_LINGER };
enum rstate { R_HEAD, R_BODY, R_DONE };

/* [off, fwd) ready to send, [fwd, len) not yet framed (or pipelined). */
struct buf {
	char *p;
	uint32_t off, fwd, len, cap;
};

struct worker;

struct conn {
	struct conn *next, *prev;	/* worker list; next also dead list */
	struct worker *w;
	int fd, ufd;
	struct pconn *up;		/* the upstream connection (ufd) */
	uint8_t st, rst, dead;
	uint8_t crd, cwr, urd, uwr;	/* readiness hints */
	uint8_t chup, uhup;		/* peer shut down or error seen */
	uint8_t keepalive;		/* client wants keep-alive */
	uint8_t http10, head_req, upgrade, connecting, reused;
	uint8_t req_done, resp_keep, resp_dirty, resp_sent, got_byte;
	uint8_t ceof, ueof, cshut, ushut, is_ws, has_body;
	uint8_t rechunk;		/* request body re-framed as chunked */
	uint8_t untrusted_up;		/* upstream is a user's server */
	uint8_t addr_slot;		/* counted in the per-address table */
	struct h1_body rqf, rsf;
	struct buf in;			/* from client */
	struct buf rb;			/* from upstream */
	struct buf cout;		/* heads we write to the client */
	struct buf uout;		/* the request head for the upstream */
	char *body;			/* EDGE_RESPOND body */
	size_t body_len, body_off;
	int64_t deadline;
	int64_t act_sec[2];
	int64_t cmoved;			/* last byte moved to/from client */
	long timeout_ms;
	size_t hscan, rscan;		/* head scans resume here */
	uint32_t peer_ip;		/* network order */
	char peer[INET_ADDRSTRLEN];
	char ukey[116];
	char act[160];
	char loc_prefix[192];		/* the part of the target the route
					 * stripped: put back in front of a
					 * "Location: /..." answer */
};

/* An upstream connection: in use by c, or idle in the worker's pool. Its
 * epoll registration points here for its whole life (no epoll_ctl when it
 * moves between a conn and the pool). */
struct pconn {
	struct pconn *next, *prev;	/* pool list; next also dead list */
	struct conn *c;
	int fd;
	uint8_t dead, pooled;
	int64_t since;
	char key[116];
};

struct worker {
	struct edge *ed;
	pthread_t th;
	int ep, lfd, evfd;
	int started, lfd_paused;
	int64_t lfd_resume;
	int64_t now;
	int64_t last_sweep;
	struct conn *conns;
	struct pconn *pool;
	int npool;
	struct conn *dead_conns;
	struct pconn *dead_pool;
	char *scratch;
};

/* Failures an attacker can repeat at will log one line a second each. */
enum logk { LOGK_ACCEPT, LOGK_BAD_REQUEST, LOGK_COOKIE, LOGK_LIMIT,
	LOGK_ADDR_LIMIT, LOGK_N };

/* Open connections per peer address, shared by the workers (addr_*). */
struct addr_table {
	pthread_mutex_t lock;
	uint32_t *ip, *n;
	uint32_t mask, seed;
};

/* One edge: what edge_start returns. Its workers point here. */
struct edge {
	struct edge_cfg cfg;
	struct edge_hooks hooks;
	char **trusted;
	int trust_one;			/* TRUSTED_PROXIES=* */
	char **protected_cookies;
	struct worker *w;
	int nw;
	size_t in_cap;
	_Atomic uint64_t st_requests, st_upstream_errors, st_ws_open,
	    st_conns_open, st_conns_refused;
	struct log_limit log_limits[LOGK_N];
	struct addr_table a;
};

/* Needs a struct edge *E in scope. */
#define edge_log_limited(k, ev, ...) \
	log_event_limited(&E->log_limits[k], LOG_WARN, ev, __VA_ARGS__)

static int pump_step(struct conn *c);
static void conn_close(struct conn *c, const char *why);

/* ---- small helpers ---------------------------------------------------- */

static void
stat_add(_Atomic uint64_t *v, int64_t d)
{
	atomic_fetch_add_explicit(v, (uint64_t)d, memory_order_relaxed);
}

static int
val_is(const char *v, size_t vl, const char *s)
{
	return strlen(s) == vl && strncasecmp(v, s, vl) == 0;
}

/* ---- buffers ---------------------------------------------------------- */

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void
buf_reset(struct buf *b)
{
	b->off = b->fwd = b->len = 0;
}

/* Makes room at the end: allocates lazily, moves data to the front. */
static uint32_t
buf_room(struct buf *b, uint32_t cap, int force)
{
	if (b->p == NULL) {
		b->p = xmalloc(cap);
		b->cap = cap;
	}
	if (b->off == b->len) {
		buf_reset(b);
	} else if (b->len == b->cap && b->off > 0 &&
	    (force || b->off >= b->cap / 2)) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->fwd -= b->off;
		b->len -= b->off;
		b->off = 0;
	}
	return b->cap - b->len;
}

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;

		while (cap < b->len + n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = (uint32_t)cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += (uint32_t)n;
	b->fwd = b->len;
}

static void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_addf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_addf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
		    sizeof(tmp) - 1);
}

/* writev without SIGPIPE. */
static ssize_t
sendv(int fd, struct iovec *iov, int n)
{
	struct msghdr m;

	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	return sendmsg(fd, &m, MSG_NOSIGNAL);
}

/*
 * Writes a[0, alen) then b[0, blen) in one call; *sa and *sb say how much
 * of each went. 1 progress; 0 the socket is full (*ready cleared, unless
 * interrupted); -1 an error (errno).
 */
static int
write_two(int fd, uint8_t *ready, const char *a, size_t alen, const char *b,
	  size_t blen, size_t *sa, size_t *sb)
{
	struct iovec iov[2] = { { (void *)(uintptr_t)a, alen },
				{ (void *)(uintptr_t)b, blen } };
	ssize_t n = sendv(fd, iov, 2);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		*ready = errno == EINTR;
		return 0;
	}
	*sa = (size_t)n < alen ? (size_t)n : alen;
	*sb = (size_t)n - *sa;
	return 1;
}

/* The rest of a header line: the value and CRLF. */
static void
buf_hdr_value(struct buf *b, const char *v, size_t vl)
{
	buf_add(b, v, vl);
	buf_add(b, "\r\n", 2);
}

static void
buf_hdr(struct buf *b, const char *n, size_t nl, const char *v, size_t vl)
{
	buf_add(b, n, nl);
	buf_add(b, ": ", 2);
	buf_add(b, v, vl);
	buf_add(b, "\r\n", 2);
}

/* ---- connections -------------------------------------------------------- */

static void
conn_activity(struct conn *c, int from_client)
{
	struct edge *E = c->w->ed;
	int64_t sec = c->w->now / 1000;

	if (!c->act[0] || !E->hooks.activity || c->act_sec[from_client] == sec)
		return;
	c->act_sec[from_client] = sec;
	E->hooks.activity(E->hooks.ctx, c->act, from_client);
}

static void
upstream_failed(struct conn *c, int status)
{
	struct edge *E = c->w->ed;
	stat_add(&E->st_upstream_errors, 1);
	if (c->act[0] && E->hooks.upstream_failed)
		E->hooks.upstream_failed(E->hooks.ctx, c->act, status);
}

static void
up_free(struct worker *w, struct pconn *p)
{
	close(p->fd);
	p->dead = 1;
	p->c = NULL;
	p->next = w->dead_pool;
	w->dead_pool = p;
}

static void
close_ufd(struct conn *c)
{
	if (c->up)
		up_free(c->w, c->up);
	c->up = NULL;
	c->ufd = -1;
	c->urd = c->uwr = c->uhup = 0;
}

/* ---- connections per client address ------------------------------------ */

/*
 * Open connections per peer address, shared by the workers: open
 * addressing with backward-shift deletion, sized for max_connections
 * addresses (every entry holds at least one connection), seeded at start.
 */

static uint32_t
random_seed(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint32_t)time_mono_ms() * 2654435761u;
	return v;
}

static uint32_t
addr_slot(struct edge *E, uint32_t ip)
{
	uint64_t h = (uint64_t)(ip ^ E->a.seed) * 0x9e3779b97f4a7c15ULL;

	return (uint32_t)(h >> 32) & E->a.mask;
}

/* Counts one more connection from ip: 0, or -1 over the cap. */
static int
addr_take(struct edge *E, uint32_t ip)
{
	uint32_t i;
	int rc = 0;

	pthread_mutex_lock(&E->a.lock);
	for (i = addr_slot(E, ip); E->a.n[i] && E->a.ip[i] != ip;
	    i = (i + 1) & E->a.mask)
		;
	if (E->a.n[i] >= (uint32_t)E->cfg.max_connections_per_address) {
		rc = -1;
	} else {
		E->a.ip[i] = ip;
		E->a.n[i]++;
	}
	pthread_mutex_unlock(&E->a.lock);
	return rc;
}

static void
addr_release(struct edge *E, uint32_t ip)
{
	uint32_t i, j, k;

	pthread_mutex_lock(&E->a.lock);
	for (i = addr_slot(E, ip); E->a.n[i] && E->a.ip[i] != ip;
	    i = (i + 1) & E->a.mask)
		;
	if (E->a.n[i] && --E->a.n[i] == 0) {
		/* backward shift: later entries of the run move up */
		for (j = (i + 1) & E->a.mask; E->a.n[j]; j = (j + 1) & E->a.mask) {
			k = addr_slot(E, E->a.ip[j]);
			if ((j > i && (k <= i || k > j)) ||
			    (j < i && (k <= i && k > j))) {
				E->a.ip[i] = E->a.ip[j];
				E->a.n[i] = E->a.n[j];
				E->a.n[j] = 0;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&E->a.lock);
}

static void
addr_init(struct edge *E)
{
	uint32_t cap = 64;

	while (cap < 2 * (uint32_t)E->cfg.max_connections)
		cap *= 2;
	E->a.ip = xcalloc(cap, sizeof(*E->a.ip));
	E->a.n = xcalloc(cap, sizeof(*E->a.n));
	E->a.mask = cap - 1;
	E->a.seed = random_seed();
}

static void
addr_free(struct edge *E)
{
	free(E->a.ip);
	free(E->a.n);
	E->a.ip = E->a.n = NULL;
}

static void
conn_close(struct conn *c, const char *why)
{
	struct edge *E = c->w->ed;
	struct worker *w = c->w;

	if (c->dead)
		return;
	log_event(LOG_DEBUG, "edge.close", "peer=%s state=%d reason=%s",
		  c->peer, c->st, why);
	c->dead = 1;
	close(c->fd);
	close_ufd(c);
	buf_free(&c->in);
	buf_free(&c->rb);
	buf_free(&c->cout);
	buf_free(&c->uout);
	free(c->body);
	c->body = NULL;
	if (c->is_ws)
		stat_add(&E->st_ws_open, -1);
	stat_add(&E->st_conns_open, -1);
	if (c->addr_slot)
		addr_release(E, c->peer_ip);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = w->dead_conns;
	w->dead_conns = c;
}

static int
ep_add(struct worker *w, int fd, uint64_t data)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = data,
	};

	return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Ready for the next request on a keep-alive connection. */
static void
conn_next(struct conn *c)
{
	struct edge *E = c->w->ed;
	c->st = ST_HEAD;
	c->rst = R_HEAD;
	c->hscan = c->rscan = 0;
	c->rechunk = c->untrusted_up = 0;
	c->in.fwd = c->in.off;
	buf_reset(&c->rb);
	buf_reset(&c->cout);
	buf_reset(&c->uout);
	c->req_done = c->resp_keep = c->resp_dirty = c->resp_sent = 0;
	c->got_byte = c->reused = c->connecting = c->has_body = 0;
	c->upgrade = c->head_req = 0;
	c->act[0] = '\0';
	c->deadline = c->w->now + (c->in.len > c->in.off ?
	    E->cfg.header_timeout_ms : E->cfg.idle_timeout_ms);
}

/* Writes what is left of the response, then shuts down and drains. */
static void
conn_linger(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	close_ufd(c);
	c->st = ST_LINGER;
	c->deadline = c->w->now + LINGER_MS;
}

/* The edge answers itself: body is taken over. */
static void
respond(struct conn *c, int status, const char *type, char *body,
	size_t len, const char *location, int keep)
{
	buf_reset(&c->cout);
	close_ufd(c);
	free(c->body);
	c->body = c->head_req ? NULL : body;
	if (c->head_req)
		free(body);
	c->body_len = c->body ? len : 0;
	c->body_off = 0;
	c->keepalive = keep && c->keepalive;
	buf_addf(&c->cout, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		 "Content-Length: %zu\r\n", status, h1_reason(status),
		 type ? type : "text/plain", len);
	if (location && location[0] && !strpbrk(location, "\r\n")) {
		buf_adds(&c->cout, "Location: ");
		buf_adds(&c->cout, location);
		buf_adds(&c->cout, "\r\n");
	}
	buf_adds(&c->cout, "Cache-Control: no-store\r\nConnection: ");
	buf_adds(&c->cout, c->keepalive ? "keep-alive\r\n\r\n" :
	    "close\r\n\r\n");
	c->st = ST_RESPOND;
	c->deadline = 0;
}

static void
respond_error(struct conn *c, int status, const char *msg, int keep)
{
	struct edge *E = c->w->ed;
	char *body = NULL;
	size_t len = 0;

	log_event(LOG_DEBUG, "edge.error", "peer=%s status=%d msg=%s",
		  c->peer, status, msg);
	if (E->hooks.error_page)
		body = E->hooks.error_page(E->hooks.ctx, status, msg, &len);
	if (body) {
		respond(c, status, "text/html; charset=utf-8", body, len,
			NULL, keep);
		return;
	}
	body = xasprintf("%d %s\n", status, h1_reason(status));
	respond(c, status, "text/plain; charset=utf-8", body, strlen(body),
		NULL, keep);
}

/* An ambiguous or malformed request: answer and close, never forward. */
static void
bad_request(struct conn *c, int status, const char *msg)
{
	struct edge *E = c->w->ed;
	edge_log_limited(LOGK_BAD_REQUEST, "edge.bad_request",
			 "peer=%s status=%d err=%s", c->peer, status, msg);
	respond_error(c, status, msg, 0);
}

static int
step_respond(struct conn *c)
{
	size_t head = c->cout.len - c->cout.off, body = c->body_len - c->body_off;
	size_t sa, sb;
	int r;

	if (!c->cwr)
		return 0;
	if (head + body == 0) {
		free(c->body);
		c->body = NULL;
		if (!c->keepalive) {
			conn_linger(c);
		} else {
			conn_next(c);
		}
		return 1;
	}
	r = write_two(c->fd, &c->cwr, c->cout.p + c->cout.off, head,
		      c->body + c->body_off, body, &sa, &sb);
	if (r < 0) {
		conn_close(c, "client write error");
		return -1;
	}
	if (r > 0) {
		c->cmoved = c->w->now;
		c->cout.off += (uint32_t)sa;
		c->body_off += sb;
	}
	return r;
}

static int
step_linger(struct conn *c)
{
	ssize_t n;

	if (!c->crd)
		return 0;
	n = recv(c->fd, c->w->scratch, SCRATCH_CAP, 0);
	if (n > 0)
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->crd = errno == EINTR;
		return 0;
	}
	conn_close(c, "closed after response");
	return -1;
}

/* ---- upstream pool ---------------------------------------------------- */

static void
pool_unlink(struct worker *w, struct pconn *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		w->pool = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next = p->prev = NULL;
	p->pooled = 0;
	w->npool--;
}

static void
pool_drop(struct worker *w, struct pconn *p)
{
	pool_unlink(w, p);
	up_free(w, p);
}

/* Gives c an idle upstream connection to key; 0, or -1 if none. */
static int
pool_take(struct worker *w, const char *key, struct conn *c)
{
	for (struct pconn *p = w->pool; p; p = p->next) {
		if (strcmp(p->key, key) != 0)
			continue;
		pool_unlink(w, p);
		p->c = c;
		c->up = p;
		c->ufd = p->fd;
		return 0;
	}
	return -1;
}

/* Parks c's upstream connection in the pool. */
static void
pool_put(struct worker *w, struct conn *c)
{
	struct pconn *p = c->up;

	if (w->npool >= POOL_MAX) {
		close_ufd(c);
		return;
	}
	c->up = NULL;
	c->ufd = -1;
	c->urd = c->uwr = c->uhup = 0;
	p->c = NULL;
	p->pooled = 1;
	p->since = w->now;
	p->next = w->pool;
	if (w->pool)
		w->pool->prev = p;
	w->pool = p;
	w->npool++;
}

/* ---- proxying: the request up ------------------------------------------ */

static int
trusted_peer(const struct edge *E, const char *ip)
{
	for (char **t = E->trusted; t && *t; t++)
		if (strcmp(*t, ip) == 0 || strcmp(*t, "*") == 0)
			return 1;
	return 0;
}

static int
ip_literal(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/*
 * The client's address. From an untrusted peer: the peer. From a trusted
 * proxy: walk X-Forwarded-For from the right (each proxy appended the
 * address it was called from) past the trusted proxies; the first other
 * entry is the client. TRUSTED_PROXIES=* trusts only the one peer in
 * front: the right-most entry, the one it added. The left-most entries
 * are whatever the client wrote and never count.
 */
static void
client_address(const struct conn *c, const char *xff, char *out,
	       size_t size)
{
	struct edge *E = c->w->ed;
	char list[1024], *parts[64], *s, *save = NULL;
	int n = 0;

	snprintf(out, size, "%s", c->peer);
	if (!trusted_peer(E, c->peer) || xff == NULL)
		return;
	snprintf(list, sizeof(list), "%s", xff);
	for (s = strtok_r(list, ",", &save); s && n < 64;
	    s = strtok_r(NULL, ",", &save))
		parts[n++] = s;
	while (n-- > 0) {
		s = parts[n];
		s += strspn(s, " \t");
		s[strcspn(s, " \t")] = '\0';
		if (!ip_literal(s) || strlen(s) >= size)
			return;		/* keep the last trusted hop */
		snprintf(out, size, "%s", s);
		if (E->trust_one || !trusted_peer(E, s))
			return;
	}
}

/* Appends the Cookie header without the cookie named strip. */
static void
add_cookie(struct buf *b, const struct h1_hdr *h, const char *strip)
{
	size_t sl = strlen(strip), i = 0, start = b->len;
	int first = 1;

	if (!sl) {
		buf_hdr(b, h->n, h->nl, h->v, h->vl);
		return;
	}
	buf_adds(b, "Cookie: ");
	while (i < h->vl) {
		size_t s, e;

		while (i < h->vl && (h->v[i] == ';' || h->v[i] == ' '))
			i++;
		s = i;
		while (i < h->vl && h->v[i] != ';')
			i++;
		e = i;
		while (e > s && h->v[e - 1] == ' ')
			e--;
		if (e == s || (e - s > sl && h->v[s + sl] == '=' &&
		    memcmp(h->v + s, strip, sl) == 0) ||
		    (e - s == sl && memcmp(h->v + s, strip, sl) == 0))
			continue;
		if (!first)
			buf_add(b, "; ", 2);
		buf_add(b, h->v + s, e - s);
		first = 0;
	}
	if (first) {
		b->len = b->fwd = (uint32_t)start;
		return;
	}
	buf_add(b, "\r\n", 2);
}

static int
hop_by_hop(const struct h1_hdr *h, const struct h1_ctoks *ct)
{
	static const char *const hop[] = { "connection", "keep-alive",
		"proxy-connection", "te", "trailer", "upgrade",
		"proxy-authorization", "proxy-authenticate", NULL };

	for (int i = 0; hop[i]; i++)
		if (h1_name_is(h, hop[i]))
			return 1;
	for (int i = 0; i < ct->n; i++)
		if (h->nl == ct->t[i].nl &&
		    strncasecmp(h->n, ct->t[i].n, h->nl) == 0 &&
		    !val_is(h->n, h->nl, "transfer-encoding") &&
		    !val_is(h->n, h->nl, "content-length"))
			return 1;
	return 0;
}

static int
forwarding_header(const struct h1_hdr *h)
{
	return h1_name_is(h, "x-forwarded-for") ||
	    h1_name_is(h, "x-forwarded-proto") ||
	    h1_name_is(h, "x-forwarded-host") || h1_name_is(h, "x-real-ip");
}

/* One of the headers the route sets itself. */
static int
route_header(const struct h1_hdr *h, const struct edge_target *t)
{
	for (int i = 0; i < t->nheaders && i < EDGE_HEADERS_MAX; i++)
		if (h1_name_is(h, t->header_name[i]))
			return 1;
	return 0;
}

/* Headers the edge rewrites itself or never forwards. */
static int
dropped_header(const struct h1_hdr *h, const struct h1_request *ri,
	       const struct edge_target *t, int drop_auth)
{
	return (hop_by_hop(h, &ri->ct) && !h1_name_is(h, "host")) ||
	    forwarding_header(h) || h1_name_is(h, "content-length") ||
	    h1_name_is(h, "transfer-encoding") ||
	    (drop_auth && h1_name_is(h, "authorization")) ||
	    route_header(h, t);
}

/* The request-target for the upstream: the client's, less strip_target
 * leading bytes when the route asks for it and what is left is a path. */
static const char *
upstream_target(const struct h1_request *ri, const struct edge_target *t)
{
	size_t n = t->strip_target;

	if (n == 0 || n >= strlen(ri->target) || ri->target[n] != '/')
		return ri->target;
	return ri->target + n;
}

static void
add_forwarding(struct conn *c, const struct h1_request *ri,
	       const char *client)
{
	struct buf *b = &c->uout;
	int trusted = trusted_peer(c->w->ed, c->peer);

	buf_adds(b, "X-Forwarded-For: ");
	if (trusted && ri->xff) {
		buf_adds(b, ri->xff);
		buf_adds(b, ", ");
	}
	buf_adds(b, c->peer);
	buf_adds(b, "\r\nX-Real-IP: ");
	buf_adds(b, client);
	buf_adds(b, "\r\nX-Forwarded-Proto: ");
	buf_adds(b, (trusted && ri->xfp && strcasecmp(ri->xfp, "https") == 0)
	    ? "https\r\n" : "http\r\n");
	if (ri->host && ri->host[0])
		buf_hdr(b, "X-Forwarded-Host", 16, ri->host, strlen(ri->host));
}

/*
 * The request head for the upstream: the client's headers less hop-by-hop
 * and forwarding ones, then the framing the edge chose (the Content-Length
 * it checked, or chunked when it re-frames a chunked body), forwarding
 * headers it computed and the route's Authorization.
 */
static void
build_upstream_head(struct conn *c, const struct h1_request *ri,
		    const struct edge_target *t, const char *client)
{
	struct buf *b = &c->uout;
	int drop_auth = t->authorization[0] || t->strip_authorization;

	buf_reset(b);
	buf_adds(b, ri->method);
	buf_add(b, " ", 1);
	buf_adds(b, upstream_target(ri, t));
	buf_adds(b, ri->http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	for (int i = 0; i < ri->nh; i++) {
		const struct h1_hdr *h = &ri->h[i];

		if (dropped_header(h, ri, t, drop_auth))
			continue;
		if (h1_name_is(h, "cookie"))
			add_cookie(b, h, t->strip_cookie);
		else
			buf_hdr(b, h->n, h->nl, h->v, h->vl);
	}
	if (ri->mode == H1_LENGTH)
		buf_addf(b, "Content-Length: %llu\r\n",
			 (unsigned long long)ri->length);
	else if (ri->mode == H1_CHUNKED)
		buf_adds(b, "Transfer-Encoding: chunked\r\n");
	if (c->upgrade) {
		buf_adds(b, "Connection: upgrade\r\nUpgrade: ");
		buf_adds(b, ri->upg);
		buf_adds(b, "\r\n");
	} else if (ri->http10) {
		buf_adds(b, "Connection: keep-alive\r\n");
	}
	add_forwarding(c, ri, client);
	if (t->authorization[0] && !strpbrk(t->authorization, "\r\n"))
		buf_hdr(b, "Authorization", 13, t->authorization,
			strlen(t->authorization));
	for (int i = 0; i < t->nheaders && i < EDGE_HEADERS_MAX; i++)
		if (!strpbrk(t->header_name[i], "\r\n: ") &&
		    !strpbrk(t->header_value[i], "\r\n"))
			buf_hdr(b, t->header_name[i], strlen(t->header_name[i]),
				t->header_value[i], strlen(t->header_value[i]));
	buf_adds(b, "\r\n");
}

/* Starts a nonblocking connect; -1 with errno when it failed at once. */
static int
upstream_connect(struct conn *c, const struct edge_target *t)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (t->unix_path[0]) {
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;

		su->sun_family = AF_UNIX;
		snprintf(su->sun_path, sizeof(su->sun_path), "%s",
			 t->unix_path);
		sl = sizeof(*su);
	} else {
		struct sockaddr_in *si = (struct sockaddr_in *)&ss;

		si->sin_family = AF_INET;
		si->sin_port = htons((uint16_t)t->port);
		if (t->port <= 0 || t->port > 65535 ||
		    inet_pton(AF_INET, t->host, &si->sin_addr) != 1) {
			errno = EINVAL;
			return -1;
		}
		sl = sizeof(*si);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		/* an upstream that vanished (a killed container: nobody
		 * ACKs) is an error after 10 s, not after PROXY_TIMEOUT or
		 * minutes of retransmission on a pooled connection */
		unsigned int user_timeout_ms = 10000;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
			   sizeof(user_timeout_ms));
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e == EAGAIN ? ECONNREFUSED : e;
		return -1;
	}
	c->connecting = 1;
	c->up = xcalloc(1, sizeof(*c->up));
	c->up->fd = c->ufd = fd;
	c->up->c = c;
	snprintf(c->up->key, sizeof(c->up->key), "%s", c->ukey);
	c->urd = c->uwr = c->uhup = 0;
	if (ep_add(c->w, fd, (uint64_t)(uintptr_t)c->up | TAG_POOL) < 0) {
		close_ufd(c);
		errno = EMFILE;
		return -1;
	}
	return 0;
}

static void
proxy_fail(struct conn *c, int status, const char *msg)
{
	upstream_failed(c, status);
	log_event(LOG_INFO, "edge.upstream_error", "upstream=%s status=%d "
		  "err=%s", c->ukey, status, msg);
	if (c->resp_sent) {
		conn_close(c, msg);
		return;
	}
	respond_error(c, status, msg, c->req_done);
}

/* proxy_fail for the steps: 1 when the error page is now to be written
 * (the pump goes on to it: an edge-triggered socket that is writable
 * already raises no new event), -1 when the connection was closed. */
static int
proxy_failed(struct conn *c, int status, const char *msg)
{
	proxy_fail(c, status, msg);
	return c->dead ? -1 : 1;
}

static void
proxy_start(struct conn *c, const struct edge_target *t)
{
	if (t->unix_path[0])
		snprintf(c->ukey, sizeof(c->ukey), "unix:%s", t->unix_path);
	else
		snprintf(c->ukey, sizeof(c->ukey), "%s:%d", t->host, t->port);
	c->timeout_ms = t->timeout_ms > 0 ? t->timeout_ms : 30000;
	c->deadline = c->w->now + c->timeout_ms;
	c->st = ST_PROXY;
	c->rst = R_HEAD;
	c->rscan = 0;
	if (pool_take(c->w, c->ukey, c) == 0) {
		/* Idle and quiet (data or EOF would have dropped it): the
		 * answer to our request raises an event. */
		c->reused = 1;
		c->uwr = 1;
		c->urd = 0;
		return;
	}
	c->reused = 0;
	if (upstream_connect(c, t) < 0)
		proxy_fail(c, 502, strerror(errno));
}

/* A reused upstream died before answering: try once on a fresh one. */
static int
proxy_retry(struct conn *c)
{
	struct edge_target t;
	char *colon;

	if (!c->reused || c->got_byte || c->has_body)
		return 0;
	memset(&t, 0, sizeof(t));
	if (strncmp(c->ukey, "unix:", 5) == 0) {
		snprintf(t.unix_path, sizeof(t.unix_path), "%s", c->ukey + 5);
	} else {
		colon = strrchr(c->ukey, ':');
		snprintf(t.host, sizeof(t.host), "%.*s",
			 (int)(colon - c->ukey), c->ukey);
		t.port = (int)strtol(colon + 1, NULL, 10);
	}
	close_ufd(c);
	c->reused = 0;
	c->uout.off = 0;
	if (upstream_connect(c, &t) < 0) {
		proxy_fail(c, 502, strerror(errno));
		return 1;
	}
	return 1;
}

/* The target as the router finds it: zero, but for the bytes of its large
 * strings past the first (header slots, location: 6.6 of its 7.3 KiB),
 * which no one reads before the router writes them; every request pays
 * for what is cleared here. */
static void
target_clear(struct edge_target *t)
{
	memset(t, 0, offsetof(struct edge_target, header_name));
	for (int i = 0; i < EDGE_HEADERS_MAX; i++)
		t->header_name[i][0] = t->header_value[i][0] = '\0';
	memset(t->activity, 0, offsetof(struct edge_target, location) -
	       offsetof(struct edge_target, activity));
	t->location[0] = '\0';
}

static void
route_to(struct conn *c, struct h1_request *ri)
{
	struct edge *E = c->w->ed;
	struct edge_request rq;
	struct edge_target t;
	char ip[INET6_ADDRSTRLEN];

	client_address(c, ri->xff, ip, sizeof(ip));
	memset(&rq, 0, sizeof(rq));
	rq.method = ri->method;
	rq.target = ri->target;
	rq.host = ri->host ? ri->host : "";
	rq.cookie = ri->cookie;
	rq.authorization = ri->auth;
	rq.origin = ri->origin;
	rq.upgrade = c->upgrade;
	rq.https = trusted_peer(E, c->peer) && ri->xfp &&
	    strcasecmp(ri->xfp, "https") == 0;
	rq.client_ip = ip;
	target_clear(&t);
	E->hooks.route(E->hooks.ctx, &rq, &t);
	if (t.action == EDGE_RESPOND) {
		respond(c, t.status ? t.status : 500, t.content_type, t.body,
			t.body ? t.body_len : 0, t.location,
			ri->mode == H1_NONE);
		return;
	}
	free(t.body);
	if (strcmp(c->act, t.activity) != 0) {	/* another server: its own
						 * once-a-second record */
		c->act_sec[0] = c->act_sec[1] = 0;
		snprintf(c->act, sizeof(c->act), "%s", t.activity);
	}
	c->loc_prefix[0] = '\0';
	if (upstream_target(ri, &t) != ri->target &&
	    t.strip_target < sizeof(c->loc_prefix))
		snprintf(c->loc_prefix, sizeof(c->loc_prefix), "%.*s",
			 (int)t.strip_target, ri->target);
	c->untrusted_up = t.unix_path[0] == '\0';
	build_upstream_head(c, ri, &t, ip);
	h1_body_init(&c->rqf, ri->mode, ri->length);
	c->has_body = c->rqf.mode != H1_NONE;
	c->rechunk = c->rqf.mode == H1_CHUNKED;
	conn_activity(c, 1);
	proxy_start(c, &t);
}

/* A complete head sits in c->in [off, off + len): parse, check, route. */
static void
handle_request(struct conn *c, size_t len)
{
	struct edge *E = c->w->ed;
	static _Thread_local struct h1_request ri;
	char *p = c->in.p + c->in.off;
	int st;

	c->in.off += (uint32_t)len;
	c->in.fwd = c->in.off;
	stat_add(&E->st_requests, 1);
	c->keepalive = 0;
	st = h1_parse_request(p, len, &ri);
	if (st) {
		bad_request(c, st, "malformed request");
		return;
	}
	c->http10 = (uint8_t)ri.http10;
	c->keepalive = ri.http10 ? ri.ct.keep : !ri.ct.close;
	c->head_req = strcmp(ri.method, "HEAD") == 0;
	c->upgrade = ri.upg && ri.ct.upgrade && !ri.http10 &&
	    strcasecmp(ri.upg, "websocket") == 0;
	route_to(c, &ri);
}

static int
step_head(struct conn *c)
{
	struct edge *E = c->w->ed;
	struct buf *b = &c->in;
	long end;
	ssize_t n;

	if (b->len > b->off) {
		end = h1_head_end(b->p + b->off, b->len - b->off, &c->hscan);
		if (end < 0) {
			bad_request(c, 400, "malformed request head");
			return 1;
		}
		if (end > 0 && (size_t)end <= E->cfg.max_header_bytes) {
			handle_request(c, (size_t)end);
			return 1;
		}
		if (b->len - b->off >= E->cfg.max_header_bytes) {
			bad_request(c, 431, "request head too large");
			return 1;
		}
	}
	if (!c->crd)
		return 0;
	buf_room(b, (uint32_t)E->in_cap, 1);
	n = recv(c->fd, b->p + b->len, b->cap - b->len, 0);
	if (n > 0) {
		if (b->len == b->off)
			c->deadline = c->w->now + E->cfg.header_timeout_ms;
		/* A short read drained the socket; with edge triggering new
		 * data raises a new event (EOF seen in chup keeps reading). */
		if ((uint32_t)n < b->cap - b->len && !c->chup)
			c->crd = 0;
		b->len += (uint32_t)n;
		c->cmoved = c->w->now;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->crd = errno == EINTR;
		return 0;
	}
	conn_close(c, n == 0 ? (b->len > b->off ? "client eof in head" :
	    "client closed") : "client read error");
	return -1;
}

/*
 * A chunked request body is decoded here and re-chunked into uout, so the
 * upstream sees only framing the edge wrote (sizes, no extensions, no
 * trailers): whatever it would have read differently is gone.
 */
static int
req_rechunk(struct conn *c)
{
	struct buf *b = &c->in;
	size_t out;
	int done;
	long k;

	if (c->uout.len - c->uout.off >= IN_CAP)
		return 0;	/* backpressure: the upstream is slow */
	if (c->uout.off == c->uout.len)
		buf_reset(&c->uout);
	k = h1_body_decode(&c->rqf, b->p + b->fwd, b->len - b->fwd, &out,
			   &done);
	if (k < 0)
		return -1;
	if (out) {
		buf_addf(&c->uout, "%zx\r\n", out);
		buf_add(&c->uout, b->p + b->fwd, out);
		buf_add(&c->uout, "\r\n", 2);
	}
	if (done) {
		buf_adds(&c->uout, "0\r\n\r\n");
		c->rqf.mode = H1_NONE;
	}
	b->fwd += (uint32_t)k;
	b->off = b->fwd;
	return 0;
}

/* Frames what the client sent so far: -1 on bad chunked syntax. */
static int
req_scan(struct conn *c)
{
	struct buf *b = &c->in;
	int done;
	long k;

	if (c->req_done || c->rqf.mode == H1_NONE || b->len == b->fwd)
		return 0;
	if (c->rechunk)
		return req_rechunk(c);
	k = h1_body_scan(&c->rqf, b->p + b->fwd, b->len - b->fwd, &done);
	if (k < 0)
		return -1;
	b->fwd += (uint32_t)k;
	if (done)
		c->rqf.mode = H1_NONE;
	return 0;
}

/* Sends the request head and framed body bytes up; 1 progress. */
static int
req_write(struct conn *c)
{
	struct buf *b = &c->in;
	size_t sa, sb;
	int r;

	if (!c->uwr || (c->uout.off == c->uout.len && b->fwd == b->off))
		return 0;
	r = write_two(c->ufd, &c->uwr, c->uout.p + c->uout.off,
		      c->uout.len - c->uout.off, b->p + b->off,
		      b->fwd - b->off, &sa, &sb);
	if (r < 0) {
		if (proxy_retry(c))
			return 1;
		return proxy_failed(c, 502, "upstream reset");
	}
	if (r > 0) {
		c->uout.off += (uint32_t)sa;
		b->off += (uint32_t)sb;
	}
	return r;
}

/* Streams the request up: frame, send, read more body from the client. */
static int
req_step(struct conn *c)
{
	struct edge *E = c->w->ed;
	struct buf *b = &c->in;
	int prog;
	ssize_t n;

	if (req_scan(c) < 0) {
		if (c->resp_sent) {
			conn_close(c, "bad chunked request body");
			return -1;
		}
		bad_request(c, 400, "bad chunked request body");
		return 1;
	}
	if ((prog = req_write(c)) < 0 || c->st != ST_PROXY)
		return prog;
	if (!c->req_done && c->rqf.mode != H1_NONE && b->len == b->fwd &&
	    c->crd && buf_room(b, (uint32_t)E->in_cap, 0) > 0) {
		n = recv(c->fd, b->p + b->len, b->cap - b->len, 0);
		if (n > 0) {
			b->len += (uint32_t)n;
			c->cmoved = c->w->now;
			conn_activity(c, 1);
			prog = 1;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			c->crd = errno == EINTR;
		} else {
			conn_close(c, "client eof in request body");
			return -1;
		}
	}
	if (c->rqf.mode == H1_NONE && c->uout.off == c->uout.len &&
	    b->off == b->fwd && !c->req_done) {
		c->req_done = 1;
		prog = 1;
	}
	return prog;
}

/* ---- proxying: the response down ---------------------------------------- */

/* A Set-Cookie for one of the hub's own cookies (a user's server may not
 * log anybody in or out of the hub). */
static int
protected_cookie(const struct edge *E, const struct h1_hdr *h)
{
	size_t n = strcspn(h->v, "=; \t");

	for (char **p = E->protected_cookies; p && *p; p++)
		if (strlen(*p) == n && strncmp(h->v, *p, n) == 0)
			return 1;
	return 0;
}

/* Copies the response headers the client may see into cout. */
static void
resp_headers(struct conn *c, const struct h1_response *rs)
{
	struct edge *E = c->w->ed;
	for (int i = 0; i < rs->nh; i++) {
		const struct h1_hdr *h = &rs->h[i];

		if (hop_by_hop(h, &rs->ct) &&
		    !(rs->status == 101 && h1_name_is(h, "upgrade")))
			continue;
		if (rs->has_te && h1_name_is(h, "content-length"))
			continue;
		if (c->untrusted_up && h1_name_is(h, "set-cookie") &&
		    protected_cookie(E, h)) {
			edge_log_limited(LOGK_COOKIE, "edge.cookie_dropped",
					 "upstream=%s", c->ukey);
			continue;
		}
		if (c->loc_prefix[0] && h1_name_is(h, "location") &&
		    h->vl > 0 && h->v[0] == '/' &&
		    (h->vl == 1 || h->v[1] != '/')) {
			buf_adds(&c->cout, "Location: ");
			buf_adds(&c->cout, c->loc_prefix);
			buf_hdr_value(&c->cout, h->v, h->vl);
			continue;
		}
		buf_hdr(&c->cout, h->n, h->nl, h->v, h->vl);
	}
}

static void
resp_enter_ws(struct conn *c)
{
	struct edge *E = c->w->ed;
	c->st = ST_WS;
	c->is_ws = 1;
	c->in.fwd = c->in.len;
	c->rb.fwd = c->rb.len;
	c->deadline = 0;
	c->cmoved = c->w->now;
	stat_add(&E->st_ws_open, 1);
}

/* A complete response head in c->rb [off, off + len): rewrite it into
 * cout. */
static int
handle_response(struct conn *c, size_t len)
{
	static _Thread_local struct h1_response rs;
	char *p = c->rb.p + c->rb.off;
	int mode;

	if (h1_parse_response(p, len, &rs) < 0 ||
	    (rs.status == 101 && !c->upgrade))
		return -1;
	mode = rs.mode;
	if (c->head_req || rs.status == 204 || rs.status == 304 ||
	    rs.status < 200)
		mode = H1_NONE;
	c->resp_keep = (uint8_t)(rs.http10 ? rs.ct.keep : !rs.ct.close);
	buf_addf(&c->cout, "HTTP/1.1 %d %s\r\n", rs.status, rs.reason);
	resp_headers(c, &rs);
	if (rs.status == 101) {
		buf_adds(&c->cout, "Connection: upgrade\r\n\r\n");
	} else if (rs.status < 200) {
		buf_adds(&c->cout, "\r\n");
	} else {
		if (mode == H1_CLOSE || !c->resp_keep)
			c->keepalive = 0;
		if (mode == H1_CLOSE)
			c->resp_keep = 0;
		buf_adds(&c->cout, c->keepalive ? "Connection: keep-alive\r\n\r\n"
		    : "Connection: close\r\n\r\n");
	}
	c->rb.off += (uint32_t)len;
	c->rb.fwd = c->rb.off;
	c->resp_sent = 1;
	if (rs.status == 101) {
		resp_enter_ws(c);
	} else if (rs.status >= 200) {
		h1_body_init(&c->rsf, (enum h1_mode)mode, rs.length);
		c->rst = R_BODY;
		c->deadline = 0;
	}
	return 0;
}

static void
finish_response(struct conn *c)
{
	int clean = c->resp_keep && !c->resp_dirty && c->req_done &&
	    c->rb.len == c->rb.fwd && !c->ueof;

	if (clean && c->up)
		pool_put(c->w, c);
	close_ufd(c);
	if (c->keepalive && c->req_done)
		conn_next(c);
	else
		conn_linger(c);
}

/* Reads from the upstream into c->rb; 1 data, 0 nothing, -1 closed. */
static int
resp_read(struct conn *c)
{
	ssize_t n;

	if (!c->urd || c->ufd < 0 ||
	    buf_room(&c->rb, RESP_CAP, c->rst == R_HEAD) == 0)
		return 0;
	n = recv(c->ufd, c->rb.p + c->rb.len, c->rb.cap - c->rb.len, 0);
	if (n > 0) {
		if ((uint32_t)n < c->rb.cap - c->rb.len && !c->uhup)
			c->urd = 0;
		c->rb.len += (uint32_t)n;
		c->got_byte = 1;
		conn_activity(c, 0);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->urd = errno == EINTR;
		return 0;
	}
	c->ueof = 1;
	c->urd = 0;
	if (c->rst == R_BODY && c->rsf.mode == H1_CLOSE && n == 0)
		return 1;	/* resp_parse ends the body */
	if (c->rst == R_HEAD && !c->got_byte && proxy_retry(c))
		return 1;
	return proxy_failed(c, 502, n == 0 ? "upstream closed" :
			    "upstream reset");
}

static int
resp_parse(struct conn *c)
{
	struct buf *b = &c->rb;
	int done;
	long k;

	if (c->rst == R_HEAD && b->len > b->off) {
		k = h1_head_end(b->p + b->off, b->len - b->off, &c->rscan);
		if (k == 0) {
			b->fwd = b->off;
			if (b->off == 0 && b->len == b->cap) {
				return proxy_failed(c, 502,
						    "upstream head too large");
			}
			return 0;
		}
		if (k < 0 || handle_response(c, (size_t)k) < 0) {
			return proxy_failed(c, 502, "bad upstream response");
		}
		return 1;
	}
	if (c->rst == R_BODY && b->len > b->fwd) {
		k = h1_body_scan(&c->rsf, b->p + b->fwd, b->len - b->fwd,
				 &done);
		if (k < 0) {
			return proxy_failed(c, 502, "bad chunked response");
		}
		b->fwd += (uint32_t)k;
		if (done) {
			c->rst = R_DONE;
			c->resp_dirty = b->len > b->fwd;
		}
		return 1;
	}
	if (c->rst == R_BODY && (c->rsf.mode == H1_NONE ||
	    (c->rsf.mode == H1_CLOSE && c->ueof))) {
		c->rst = R_DONE;
		return 1;
	}
	return 0;
}

/* Writes cout and framed body bytes to the client. */
static int
resp_write(struct conn *c)
{
	size_t sa, sb;
	int r;

	if (!c->cwr || (c->cout.off == c->cout.len && c->rb.off == c->rb.fwd))
		return 0;
	r = write_two(c->fd, &c->cwr, c->cout.p + c->cout.off,
		      c->cout.len - c->cout.off, c->rb.p + c->rb.off,
		      c->rb.fwd - c->rb.off, &sa, &sb);
	if (r < 0) {
		conn_close(c, "client write error");
		return -1;
	}
	if (r > 0) {
		c->cmoved = c->w->now;
		c->cout.off += (uint32_t)sa;
		if (c->cout.off == c->cout.len)
			buf_reset(&c->cout);
		c->rb.off += (uint32_t)sb;
	}
	return r;
}

static int
resp_step(struct conn *c)
{
	int r, prog = 0;

	/* Head and body bytes framed first, so one write carries both. */
	while ((r = resp_parse(c)) > 0) {
		prog = 1;
		if (c->st != ST_PROXY)
			return 1;
	}
	if (r < 0)
		return -1;
	if ((r = resp_write(c)) < 0)
		return -1;
	prog |= r;
	if (c->rst != R_DONE) {
		if ((r = resp_read(c)) < 0)
			return -1;
		prog |= r;
	}
	if (c->rst == R_DONE && c->cout.off == c->cout.len &&
	    c->rb.off == c->rb.fwd) {
		finish_response(c);
		return 1;
	}
	return prog;
}

static int
step_proxy(struct conn *c)
{
	int r, prog = 0, err = 0;
	socklen_t el = sizeof(err);

	if (c->connecting) {
		if (!c->uwr)
			return 0;
		if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			proxy_fail(c, 502, strerror(err));
			return 1;
		}
		c->connecting = 0;
	}
	if ((r = req_step(c)) < 0)
		return -1;
	prog |= r;
	if (c->st != ST_PROXY)
		return 1;
	if ((r = resp_step(c)) < 0)
		return -1;
	return prog | r;
}

/* ---- WebSocket relay ---------------------------------------------------- */

/* Moves bytes one way: src -> b -> dst; frees b when drained. */
static int
relay(struct conn *c, int up)
{
	struct buf *b = up ? &c->in : &c->rb;
	int sfd = up ? c->fd : c->ufd, dfd = up ? c->ufd : c->fd;
	uint8_t *srd = up ? &c->crd : &c->urd, *dwr = up ? &c->uwr : &c->cwr;
	uint8_t *eof = up ? &c->ceof : &c->ueof;
	uint8_t *shut = up ? &c->ushut : &c->cshut;
	uint8_t hup = up ? c->chup : c->uhup;
	ssize_t n, m;
	int prog = 0;

	for (;;) {
		if (!up && c->cout.off < c->cout.len) {
			if (!*dwr)
				break;
			n = send(dfd, c->cout.p + c->cout.off,
				 c->cout.len - c->cout.off, MSG_NOSIGNAL);
			if (n < 0)
				goto werr;
			c->cout.off += (uint32_t)n;
			if (c->cout.off == c->cout.len)
				buf_free(&c->cout);
			prog = 1;
			continue;
		}
		if (b->off < b->len) {
			if (!*dwr)
				break;
			n = send(dfd, b->p + b->off, b->len - b->off,
				 MSG_NOSIGNAL);
			if (n < 0)
				goto werr;
			b->off += (uint32_t)n;
			if (b->off == b->len)
				buf_free(b);
			prog = 1;
			continue;
		}
		if (*eof) {
			if (!*shut) {
				shutdown(dfd, SHUT_WR);
				*shut = 1;
				prog = 1;
			}
			break;
		}
		if (!*srd)
			break;
		n = recv(sfd, c->w->scratch, SCRATCH_CAP, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			*srd = errno == EINTR;
			break;
		}
		if (n < 0) {
			conn_close(c, up ? "client reset" : "upstream reset");
			return -1;
		}
		prog = 1;
		if (n == 0) {
			*eof = 1;
			continue;
		}
		/* a short read drained the socket: the next message raises a
		 * new event, so no recv just to see EAGAIN (one system call
		 * per message; with the peer's EOF seen, read on to it) */
		if ((size_t)n < SCRATCH_CAP && !hup)
			*srd = 0;
		c->cmoved = c->w->now;
		conn_activity(c, up);
		m = *dwr ? send(dfd, c->w->scratch, (size_t)n, MSG_NOSIGNAL) : 0;
		if (m < 0 && errno != EAGAIN && errno != EINTR)
			goto werr;
		if (m < 0) {
			*dwr = 0;
			m = 0;
		}
		if (m < n) {
			buf_free(b);
			buf_add(b, c->w->scratch + m, (size_t)(n - m));
		}
	}
	return prog;
werr:
	if (errno == EAGAIN || errno == EINTR) {
		*dwr = errno == EINTR;
		return prog;
	}
	conn_close(c, up ? "upstream write error" : "client write error");
	return -1;
}

static int
step_ws(struct conn *c)
{
	int r, prog = 0;

	/* Idle WebSockets keep no buffers: the request head went out
	 * before the 101 came back, drained buffers go. */
	if (c->uout.p)
		buf_free(&c->uout);
	if (c->in.p && c->in.off == c->in.len)
		buf_free(&c->in);
	if (c->rb.p && c->rb.off == c->rb.len)
		buf_free(&c->rb);
	if ((r = relay(c, 1)) < 0)
		return -1;
	prog |= r;
	if ((r = relay(c, 0)) < 0)
		return -1;
	prog |= r;
	if (c->ushut && c->cshut) {
		conn_close(c, "websocket closed");
		return -1;
	}
	return prog;
}

/* ---- the worker loop ---------------------------------------------------- */

static int
pump_step(struct conn *c)
{
	switch (c->st) {
	case ST_HEAD:
		return step_head(c);
	case ST_RESPOND:
		return step_respond(c);
	case ST_PROXY:
		return step_proxy(c);
	case ST_WS:
		return step_ws(c);
	case ST_LINGER:
		return step_linger(c);
	}
	return -1;
}

static void
pump(struct conn *c)
{
	while (!c->dead && pump_step(c) > 0)
		;
}

/* Out of descriptors: stop polling the listener for a moment instead of
 * waking up for the same pending connection again and again. */
static void
accept_pause(struct worker *w, int err)
{
	struct edge *E = w->ed;
	edge_log_limited(LOGK_ACCEPT, "edge.accept_failed", "err=%s",
			 strerror(err));
	if (w->lfd_paused)
		return;
	epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd, NULL);
	w->lfd_paused = 1;
	w->lfd_resume = w->now + ACCEPT_BACKOFF_MS;
}

static void
accept_resume(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_LISTEN };

	if (!w->lfd_paused || w->now < w->lfd_resume)
		return;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) == 0)
		w->lfd_paused = 0;
}

/* Closes fd at once (a reset: no TIME_WAIT is left here) when it is over
 * a cap: 1, else 0 with the connection counted. */
static int
over_cap(struct edge *E, const struct sockaddr_in *sa, int fd,
	 int *addr_counted)
{
	struct linger lg = { 1, 0 };
	const char *why = NULL;
	char ip[INET_ADDRSTRLEN];
	uint64_t open;

	*addr_counted = 0;
	open = atomic_fetch_add(&E->st_conns_open, 1) + 1;
	if (open > (uint64_t)E->cfg.max_connections) {
		why = "MAX_CONNECTIONS";
	} else if (!E->trust_one && E->cfg.max_connections_per_address > 0) {
		inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
		if (trusted_peer(E, ip))
			return 0;
		if (addr_take(E, sa->sin_addr.s_addr) < 0)
			why = "MAX_CONNECTIONS_PER_ADDRESS";
		else
			*addr_counted = 1;
	}
	if (why == NULL)
		return 0;
	stat_add(&E->st_conns_open, -1);
	stat_add(&E->st_conns_refused, 1);
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	edge_log_limited(LOGK_LIMIT, "edge.connection_refused",
			 "peer=%s limit=%s", ip, why);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return 1;
}

static void
accept_one(struct worker *w, int fd, const struct sockaddr_in *sa)
{
	struct edge *E = w->ed;
	struct conn *c;
	int one = 1, counted;

	if (over_cap(E, sa, fd, &counted))
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = xcalloc(1, sizeof(*c));
	c->w = w;
	c->fd = fd;
	c->ufd = -1;
	c->addr_slot = (uint8_t)counted;
	c->peer_ip = sa->sin_addr.s_addr;
	inet_ntop(AF_INET, &sa->sin_addr, c->peer, sizeof(c->peer));
	c->deadline = w->now + E->cfg.header_timeout_ms;
	c->cmoved = w->now;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (ep_add(w, fd, (uint64_t)(uintptr_t)c) < 0)
		conn_close(c, "epoll add failed");
}

static void
accept_all(struct worker *w)
{
	struct edge *E = w->ed;
	struct sockaddr_in sa;
	socklen_t sl;
	int fd;

	for (;;) {
		sl = sizeof(sa);
		fd = accept4(w->lfd, (struct sockaddr *)&sa, &sl,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(w, fd, &sa);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM)
			accept_pause(w, errno);
		else if (errno != EAGAIN)
			edge_log_limited(LOGK_ACCEPT, "edge.accept_failed",
					 "err=%s", strerror(errno));
		return;
	}
}

/* Why an otherwise quiet connection must go, or NULL. */
static const char *
stalled(const struct conn *c, int64_t now)
{
	struct edge *E = c->w->ed;
	int64_t quiet = now - c->cmoved;

	if (c->st == ST_WS)
		return quiet > E->cfg.websocket_idle_timeout_ms ?
		    "websocket idle timeout" : NULL;
	if (quiet <= E->cfg.idle_timeout_ms)
		return NULL;
	if (c->st == ST_RESPOND)
		return "client stopped reading";
	if (c->st != ST_PROXY)
		return NULL;
	if (c->cout.off < c->cout.len || c->rb.off < c->rb.fwd)
		return "client stopped reading";
	if (!c->req_done && c->rqf.mode != H1_NONE && c->in.len == c->in.fwd &&
	    c->uout.off == c->uout.len && !c->connecting)
		return "client stalled in request body";
	return NULL;
}

static void
on_timeout(struct conn *c)
{
	if (c->st == ST_PROXY && c->rst == R_HEAD) {
		if (c->connecting || !c->got_byte)
			proxy_fail(c, 504, "upstream timed out");
		else
			proxy_fail(c, 504, "upstream head timed out");
		pump(c);
		return;
	}
	conn_close(c, c->st == ST_LINGER ? "linger timeout" :
	    c->in.len > c->in.off ? "header timeout" : "idle timeout");
}

static void
sweep(struct worker *w)
{
	struct conn *c, *next;
	struct pconn *p, *pn;

	w->last_sweep = w->now;
	for (c = w->conns; c; c = next) {
		const char *why;

		next = c->next;
		if (c->deadline && c->deadline <= w->now)
			on_timeout(c);
		else if ((why = stalled(c, w->now)) != NULL)
			conn_close(c, why);
	}
	accept_resume(w);
	for (p = w->pool; p; p = pn) {
		pn = p->next;
		if (w->now - p->since > POOL_IDLE_MS)
			pool_drop(w, p);
	}
}

static void
reap(struct worker *w)
{
	while (w->dead_conns) {
		struct conn *c = w->dead_conns;

		w->dead_conns = c->next;
		free(c);
	}
	while (w->dead_pool) {
		struct pconn *p = w->dead_pool;

		w->dead_pool = p->next;
		free(p);
	}
}

static void
dispatch(struct worker *w, const struct epoll_event *ev)
{
	uint64_t d = ev->data.u64;
	uint32_t e = ev->events;
	struct conn *c;
	int rd = (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	int wr = (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;

	if (d == EV_LISTEN) {
		accept_all(w);
		return;
	}
	if ((d & 7) == TAG_POOL) {
		struct pconn *p = (struct pconn *)(uintptr_t)(d & ~(uint64_t)7);

		if (p->dead)
			return;
		if (p->pooled) {
			/* Data or EOF on an idle connection: it is done. */
			if (e & ~(uint32_t)EPOLLOUT)
				pool_drop(w, p);
			return;
		}
		c = p->c;
		if (c == NULL || c->dead)
			return;
		c->urd |= (uint8_t)rd;
		c->uwr |= (uint8_t)wr;
		c->uhup |= (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	} else {
		c = (struct conn *)(uintptr_t)d;
		if (c->dead)
			return;
		c->crd |= (uint8_t)rd;
		c->cwr |= (uint8_t)wr;
		c->chup |= (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
		if ((e & (EPOLLERR | EPOLLHUP)) && c->st == ST_PROXY) {
			conn_close(c, "client reset");
			return;
		}
	}
	pump(c);
}

static void
worker_shutdown(struct worker *w)
{
	while (w->conns)
		conn_close(w->conns, "edge stopping");
	while (w->pool)
		pool_drop(w, w->pool);
	reap(w);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[256];
	int stop = 0;

	while (!stop) {
		int n = epoll_wait(w->ep, ev, 256, SWEEP_MS);

		w->now = time_mono_ms();
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == EV_WAKE)
				stop = 1;
			else
				dispatch(w, &ev[i]);
		}
		reap(w);
		if (w->now - w->last_sweep >= SWEEP_MS) {
			sweep(w);
			reap(w);
		}
	}
	worker_shutdown(w);
	return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

static int
parse_listen(const char *s, struct sockaddr_in *sa, struct err *e)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char host[64];
	long port;

	memset(sa, 0, sizeof(*sa));
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return err_set(e, ERR_INVALID, "bad listen address '%s'",
			       s ? s : "");
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (str_to_long(colon + 1, 0, 65535, &port, "listen port", e) < 0)
		return -1;
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
		return err_set(e, ERR_INVALID, "bad listen address '%s'", s);
	return 0;
}

/* SO_REUSEPORT would let a second process share a busy port without a
 * word: first make sure nobody listens there (a plain bind fails then). */
static int
port_free(const struct sockaddr_in *sa, struct err *e)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc;

	if (fd < 0)
		return err_set(e, ERR_INTERNAL, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (rc < 0)
		err_set(e, ERR_UNAVAILABLE, "cannot listen on port %d: %s",
			ntohs(sa->sin_port), strerror(errno));
	close(fd);
	return rc < 0 ? -1 : 0;
}

static int
listen_socket(struct sockaddr_in *sa, struct err *e)
{
	int fd, one = 1;
	socklen_t sl = sizeof(*sa);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, ERR_INTERNAL, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0 ||
	    listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)sa, &sl) < 0) {
		err_set(e, ERR_UNAVAILABLE, "cannot listen on port %d: %s",
			ntohs(sa->sin_port), strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
worker_init(struct worker *w, struct sockaddr_in *sa, struct err *e)
{
	struct epoll_event ev = { .events = EPOLLIN };

	w->ep = w->evfd = w->lfd = -1;
	w->lfd = listen_socket(sa, e);
	if (w->lfd < 0)
		return -1;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->ep < 0 || w->evfd < 0)
		return err_set(e, ERR_INTERNAL, "epoll: %s", strerror(errno));
	ev.data.u64 = EV_LISTEN;
	ev.events = EPOLLIN;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) < 0)
		return err_set(e, ERR_INTERNAL, "epoll: %s", strerror(errno));
	ev.data.u64 = EV_WAKE;
	ev.events = EPOLLIN;
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
		return err_set(e, ERR_INTERNAL, "epoll: %s", strerror(errno));
	w->scratch = xmalloc(SCRATCH_CAP);
	w->now = w->last_sweep = time_mono_ms();
	return 0;
}

static void
worker_release(struct worker *w)
{
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->ep >= 0)
		close(w->ep);
	if (w->evfd >= 0)
		close(w->evfd);
	free(w->scratch);
}

static void
edge_free(struct edge *E)
{
	for (int i = 0; i < E->nw; i++)
		worker_release(&E->w[i]);
	free(E->w);
	strv_free(E->trusted);
	strv_free(E->protected_cookies);
	addr_free(E);
	free(E);
}

/* Raises the soft fd limit to the hard one; returns the limit in force. */
static long
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1048576 ?
	    1048576 : (long)rl.rlim_cur;
}

static char **
strv_copy(const char *const *v)
{
	size_t n = 0;
	char **out;

	while (v && v[n])
		n++;
	out = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

/* Fills in defaults; the connection caps fit the fd limit (two fds for a
 * proxied connection). */
static void
cfg_defaults(struct edge_cfg *c)
{
	long nofile = raise_nofile(), fit = (nofile - FD_RESERVE) / 2;

	if (fit < 16)
		fit = 16;
	if (c->threads < 1)
		c->threads = 1;
	if (c->idle_timeout_ms <= 0)
		c->idle_timeout_ms = 75000;
	if (c->websocket_idle_timeout_ms <= 0)
		c->websocket_idle_timeout_ms = 3600 * 1000L;
	if (c->header_timeout_ms <= 0)
		c->header_timeout_ms = 30000;
	if (c->max_header_bytes < 1024)
		c->max_header_bytes = 16 * 1024;
	if (c->max_connections <= 0)
		c->max_connections = fit;
	else if (c->max_connections > fit)
		log_event(LOG_WARN, "edge.limit_above_fds", "max_connections=%ld "
			  "nofile=%ld fits=%ld", c->max_connections, nofile,
			  fit);
	if (c->max_connections_per_address < 0)
		c->max_connections_per_address = 0;
}

struct edge *
edge_start(const struct edge_cfg *cfg, const struct edge_hooks *hooks,
	   struct err *e)
{
	struct sockaddr_in sa;
	struct edge *E;

	if (parse_listen(cfg->listen, &sa, e) < 0 ||
	    (sa.sin_port != 0 && port_free(&sa, e) < 0))
		return NULL;
	E = xcalloc(1, sizeof(*E));
	E->cfg = *cfg;
	E->hooks = *hooks;
	cfg_defaults(&E->cfg);
	E->in_cap = E->cfg.max_header_bytes + 1 > IN_CAP ?
	    E->cfg.max_header_bytes + 1 : IN_CAP;
	E->trusted = strv_copy(cfg->trusted_proxies);
	for (char **t = E->trusted; *t; t++)
		if (strcmp(*t, "*") == 0)
			E->trust_one = 1;
	E->protected_cookies = strv_copy(cfg->protected_cookies);
	E->cfg.trusted_proxies = E->cfg.protected_cookies = NULL;
	addr_init(E);
	E->w = xcalloc((size_t)E->cfg.threads, sizeof(*E->w));
	for (int i = 0; i < E->cfg.threads; i++) {
		E->nw = i + 1;
		E->w[i].ed = E;
		if (worker_init(&E->w[i], &sa, e) < 0)
			goto fail;
	}
	for (int i = 0; i < E->nw; i++) {
		if (pthread_create(&E->w[i].th, NULL, worker_main, &E->w[i])) {
			err_set(e, ERR_INTERNAL, "cannot start edge thread");
			goto fail;
		}
		E->w[i].started = 1;
	}
	log_event(LOG_INFO, "edge.listening", "addr=%s threads=%d "
		  "max_connections=%ld max_connections_per_address=%ld",
		  cfg->listen, E->nw, E->cfg.max_connections,
		  E->cfg.max_connections_per_address);
	return E;
fail:
	for (int i = 0; i < E->nw; i++) {
		if (!E->w[i].started)
			continue;
		eventfd_write(E->w[i].evfd, 1);
		pthread_join(E->w[i].th, NULL);
	}
	edge_free(E);
	return NULL;
}

void
edge_stop(struct edge *E)
{
	if (E == NULL)
		return;
	for (int i = 0; i < E->nw; i++)
		eventfd_write(E->w[i].evfd, 1);
	for (int i = 0; i < E->nw; i++)
		pthread_join(E->w[i].th, NULL);
	edge_free(E);
}

void
edge_get_stats(struct edge *E, struct edge_stats *s)
{
	s->requests = atomic_load_explicit(&E->st_requests,
	    memory_order_relaxed);
	s->upstream_errors = atomic_load_explicit(&E->st_upstream_errors,
	    memory_order_relaxed);
	s->websockets_open = atomic_load_explicit(&E->st_ws_open,
	    memory_order_relaxed);
	s->connections_open = atomic_load_explicit(&E->st_conns_open,
	    memory_order_relaxed);
	s->connections_refused = atomic_load_explicit(&E->st_conns_refused,
	    memory_order_relaxed);
}
