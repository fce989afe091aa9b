/*
 * wsbench.c - WebSocket helpers for tests/bench/proxy.py (RFC 6455, minimal).
 *
 *   wsbench echo PORT [ADDR]
 *       Echo server on ADDR:PORT (default 127.0.0.1; 0.0.0.0 in a container):
 *       one epoll thread, any path, answers the upgrade with 101 and echoes
 *       every text/binary message (unmasked), pong for ping, close for close.
 *       Prints "listening PORT" and runs until SIGTERM/SIGINT. A plain request
 *       for a path ending in "api/status" gets 200 "{}" (so the hub's
 *       readiness check passes when it runs as a user's server); a POST to
 *       a path ending in "upload" with a Content-Length has its body read
 *       to the last byte and dropped, then 204 (keep-alive: an upload
 *       target that answers only once it has everything); any other
 *       request: 404 and close.
 *   wsbench idle HOST:PORT PATH N
 *       Opens N WebSockets one after the other (blocking), prints
 *       "open N SECONDS", then waits for a line on stdin; closes them all
 *       (plain close(2), as a vanished browser does), prints "closed" and waits
 *       for stdin's EOF before exiting.
 *   wsbench rtt HOST:PORT PATH COUNT SIZE
 *       One WebSocket; 200 warm-up round trips, then COUNT sequential round
 *       trips of a SIZE-byte text message; prints
 *       "rtt n=COUNT p50=US p90=US p99=US max=US mean=US" (microseconds).
 *   wsbench http HOST:PORT PATH CONNS RATE SECS
 *       Open-loop HTTP/1.1 load: CONNS keep-alive connections, GET PATH at
 *       RATE requests a second in all (connection c sends its k-th request
 *       at (c + k * CONNS) / RATE seconds; one in flight per connection, a
 *       late one goes as soon as the previous answer is in), for 1 s of
 *       warm-up then SECS seconds. Each request's latency runs from the
 *       time it was due, not from when it went, so a stall shows in full.
 *       Answers must be 2xx with a Content-Length. Prints "http n=N
 *       p50=US p90=US p99=US max=US mean=US rate=SENT_PER_S" (microseconds).
 *
 * WSBENCH_HEADER="Name: value" adds one header to the client's upgrade request
 * (a token for a notebook server, a session cookie), or (http) to each
 * request; several are separated by CRLF. WSBENCH_SOURCES=N (idle
 * only): connection i comes from the loopback address 127.0.1.(1 + i % N), so
 * that per-address connection caps apply as to N different clients. The fd soft limit is raised to the hard one.
 * Client frames are masked with a fixed key (fine for a benchmark).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static volatile sig_atomic_t stop_flag;
static void on_sig(int s) { (void)s; stop_flag = 1; }

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

static int
send_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pf = { fd, POLLOUT, 0 };

			if (poll(&pf, 1, 5000) <= 0)
				return -1;
			continue;
		}
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- echo server ------------------------------------------------------ */

struct conn {
	int fd;
	int ws;			/* handshake done */
	long long discard;	/* body bytes of an upload still to drop */
	size_t len, cap;
	unsigned char *buf;
};

static void
conn_free(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c);
}

static int
handshake(struct conn *c)
{
	char *end, *k, *cl, key[128], acc[64], resp[256];
	unsigned char md[SHA_DIGEST_LENGTH];
	size_t kl;

	c->buf[c->len] = 0;
	end = strstr((char *)c->buf, "\r\n\r\n");
	if (!end)
		return c->len > 8000 ? -1 : 0;
	k = strcasestr((char *)c->buf, "\r\nSec-WebSocket-Key:");
	if (!k || k > end) {
		static const char nf[] = "HTTP/1.1 404 Not Found\r\n"
			"Content-Length: 0\r\nConnection: close\r\n\r\n";
		static const char ok[] = "HTTP/1.1 200 OK\r\n"
			"Content-Type: application/json\r\n"
			"Content-Length: 2\r\nConnection: close\r\n\r\n{}";
		char *sp = strchr((char *)c->buf, ' '), *q;
		size_t pl = sp ? strcspn(sp + 1, " ?") : 0;

		q = sp ? sp + 1 + pl : NULL;
		cl = strcasestr((char *)c->buf, "\r\nContent-Length:");
		if (q && pl >= 6 && memcmp(q - 6, "upload", 6) == 0 &&
		    strncmp((char *)c->buf, "POST ", 5) == 0 && cl && cl < end) {
			end += 4;
			c->discard = strtoll(cl + 17, NULL, 10);
			c->len -= (size_t)(end - (char *)c->buf);
			memmove(c->buf, end, c->len);
			return 2;
		}
		if (q && pl >= 10 && memcmp(q - 10, "api/status", 10) == 0)
			send_all(c->fd, ok, sizeof(ok) - 1);
		else
			send_all(c->fd, nf, sizeof(nf) - 1);
		return -1;
	}
	k += 20;
	while (*k == ' ')
		k++;
	kl = strcspn(k, "\r\n ");
	if (kl > 60)
		return -1;
	snprintf(key, sizeof(key), "%.*s%s", (int)kl, k, GUID);
	SHA1((unsigned char *)key, strlen(key), md);
	EVP_EncodeBlock((unsigned char *)acc, md, SHA_DIGEST_LENGTH);
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
	if (send_all(c->fd, resp, strlen(resp)) < 0)
		return -1;
	end += 4;
	c->len -= (size_t)(end - (char *)c->buf);
	memmove(c->buf, end, c->len);
	c->ws = 1;
	return 1;
}

/* An upload's body: drops what c->buf holds of it, then reads and drops
 * the rest straight from the socket; 204 once it is all in. 0 go on, -1
 * to close. */
static int
drop_body(struct conn *c)
{
	static const char nc[] = "HTTP/1.1 204 No Content\r\n\r\n";
	static char sink[1 << 16];
	size_t take = c->len < (size_t)c->discard ? c->len : (size_t)c->discard;
	ssize_t k;

	c->discard -= (long long)take;
	c->len -= take;
	memmove(c->buf, c->buf + take, c->len);
	while (c->discard > 0) {
		k = recv(c->fd, sink, c->discard < (long long)sizeof(sink) ?
			 (size_t)c->discard : sizeof(sink), 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k <= 0)
			return -1;
		c->discard -= k;
	}
	return send_all(c->fd, nc, sizeof(nc) - 1);
}

/* Handles whole frames in c->buf; -1 to close. */
static int
frames(struct conn *c)
{
	for (;;) {
		unsigned char *b = c->buf, hdr[10];
		size_t hl = 2, pl, i, h;
		int op, masked;

		if (c->len < 2)
			return 0;
		op = b[0] & 0x0f;
		masked = b[1] & 0x80;
		pl = b[1] & 0x7f;
		if (pl == 126) {
			if (c->len < 4)
				return 0;
			pl = (size_t)b[2] << 8 | b[3];
			hl = 4;
		} else if (pl == 127) {
			if (c->len < 10)
				return 0;
			pl = 0;
			for (i = 0; i < 8; i++)
				pl = pl << 8 | b[2 + i];
			hl = 10;
		}
		if (pl > (1u << 24))
			return -1;
		if (masked)
			hl += 4;
		if (c->len < hl + pl)
			return 0;
		if (masked)
			for (i = 0; i < pl; i++)
				b[hl + i] ^= b[hl - 4 + (i & 3)];
		if (op == 8) {
			send_all(c->fd, "\x88\x00", 2);
			return -1;
		}
		hdr[0] = (unsigned char)(0x80 | (op == 9 ? 10 : op));
		if (pl < 126) {
			hdr[1] = (unsigned char)pl;
			h = 2;
		} else if (pl < 65536) {
			hdr[1] = 126;
			hdr[2] = (unsigned char)(pl >> 8);
			hdr[3] = (unsigned char)pl;
			h = 4;
		} else {
			hdr[1] = 127;
			for (i = 0; i < 8; i++)
				hdr[2 + i] = (unsigned char)(pl >> (56 - 8 * i));
			h = 10;
		}
		if (op != 10) {	/* pongs are not answered */
			/* header right before the payload: one send */
			memmove(b + hl - h, hdr, h);
			if (send_all(c->fd, b + hl - h, h + pl) < 0)
				return -1;
		}
		c->len -= hl + pl;
		memmove(b, b + hl + pl, c->len);
	}
}

static int
echo_main(int port, const char *addr)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct epoll_event ev, evs[256];
	int one = 1, lfd, ep;
	socklen_t al = sizeof(a);

	a.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "wsbench echo: bad address '%s'\n", addr);
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 4096) < 0) {
		perror("wsbench echo: bind/listen");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&a, &al);
	printf("listening %d\n", ntohs(a.sin_port));
	fflush(stdout);
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!stop_flag) {
		int n = epoll_wait(ep, evs, 256, 500);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL,
						     SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					c->cap = 1024;
					c->buf = malloc(c->cap + 1);
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
						   &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			for (;;) {
				ssize_t k;
				int r;

				if (c->len == c->cap) {
					c->cap *= 2;
					c->buf = realloc(c->buf, c->cap + 1);
				}
				k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0 && errno == EAGAIN)
					break;
				if (k <= 0) {
					conn_free(ep, c);
					break;
				}
				c->len += (size_t)k;
				if (!c->ws && c->discard == 0) {
					r = handshake(c);
					if (r < 0) {
						conn_free(ep, c);
						break;
					}
					if (r == 0)
						continue;
				}
				if (!c->ws) {
					r = drop_body(c);
					if (r < 0) {
						conn_free(ep, c);
						break;
					}
					continue;
				}
				if (frames(c) < 0) {
					conn_free(ep, c);
					break;
				}
			}
		}
	}
	return 0;
}

/* ---- client ----------------------------------------------------------- */

/* A TCP connection to HOST:PORT (TCP_NODELAY), from 127.0.1.source when
 * source > 0; -1 on failure. */
static int
tcp_connect(const char *hostport, int source)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, one = 1;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	a.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source > 0) {
		struct sockaddr_in b = { .sin_family = AF_INET };

		b.sin_addr.s_addr = htonl(0x7f000100u + (uint32_t)source);
		if (bind(fd, (struct sockaddr *)&b, sizeof(b)) < 0)
			goto fail;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static int
ws_connect(const char *hostport, const char *path, int source)
{
	char req[1024], resp[4096];
	const char *extra = getenv("WSBENCH_HEADER");
	int fd = tcp_connect(hostport, source);
	size_t got = 0;

	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s%s\r\n", path, hostport,
		 extra ? extra : "", extra ? "\r\n" : "");
	if (send_all(fd, req, strlen(req)) < 0)
		goto fail;
	/* Read the head byte by byte-ish: stop exactly at its end. */
	while (got < sizeof(resp) - 1) {
		ssize_t k = recv(fd, resp + got, 1, 0);

		if (k <= 0)
			goto fail;
		got++;
		if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	resp[got] = 0;
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
		fprintf(stderr, "wsbench: no 101: %.80s\n", resp);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int
recv_all(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
rtt_main(const char *hp, const char *path, int count, int size)
{
	unsigned char *frame, *in, hdr[10];
	double *t;
	size_t fl;
	int fd, warm = 200;

	if (size < 1 || size > 65535 || count < 1)
		return 2;
	fd = ws_connect(hp, path, 0);
	if (fd < 0) {
		fprintf(stderr, "wsbench rtt: cannot open %s%s\n", hp, path);
		return 1;
	}
	frame = malloc((size_t)size + 8);
	in = malloc((size_t)size + 8);
	t = malloc(sizeof(double) * (size_t)count);
	frame[0] = 0x81;
	if (size < 126) {
		frame[1] = (unsigned char)(0x80 | size);
		fl = 2;
	} else {
		frame[1] = 0x80 | 126;
		frame[2] = (unsigned char)(size >> 8);
		frame[3] = (unsigned char)size;
		fl = 4;
	}
	memset(frame + fl, 0, 4);	/* mask key 0: payload sent as is */
	fl += 4;
	memset(frame + fl, 'x', (size_t)size);
	fl += (size_t)size;
	for (int i = -warm; i < count; i++) {
		double t0 = now_s();
		size_t pl;

		if (send_all(fd, frame, fl) < 0 || recv_all(fd, hdr, 2) < 0)
			goto broken;
		pl = hdr[1] & 0x7f;
		if (pl == 126) {
			if (recv_all(fd, hdr + 2, 2) < 0)
				goto broken;
			pl = (size_t)hdr[2] << 8 | hdr[3];
		}
		if (pl != (size_t)size || recv_all(fd, in, pl) < 0 ||
		    memcmp(in, frame + fl - pl, pl) != 0)
			goto broken;
		if (i >= 0)
			t[i] = (now_s() - t0) * 1e6;
	}
	{
		double sum = 0;

		for (int i = 0; i < count; i++)
			sum += t[i];
		qsort(t, (size_t)count, sizeof(double), cmp_d);
#define PCT(p) t[(int)((p) * count / 100.0 + 0.999999) > 0 ? \
		 (int)((p) * count / 100.0 + 0.999999) - 1 : 0]
		printf("rtt n=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f mean=%.1f\n",
		       count, PCT(50), PCT(90), PCT(99), t[count - 1],
		       sum / count);
	}
	send_all(fd, "\x88\x80\0\0\0\0", 6);
	close(fd);
	return 0;
broken:
	fprintf(stderr, "wsbench rtt: echo broken\n");
	close(fd);
	return 1;
}

static int
idle_main(const char *hp, const char *path, int n)
{
	int *fds = malloc(sizeof(int) * (size_t)n), i, nsrc = 0;
	char line[64];
	const char *src = getenv("WSBENCH_SOURCES");

	if (src)
		nsrc = atoi(src);
	double t0 = now_s();

	for (i = 0; i < n; i++) {
		fds[i] = ws_connect(hp, path, nsrc > 0 ? 1 + i % nsrc : 0);
		if (fds[i] < 0) {
			fprintf(stderr, "wsbench idle: connection %d failed: "
				"%s\n", i + 1, strerror(errno));
			break;
		}
	}
	printf("open %d %.2f\n", i, now_s() - t0);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;
	for (int j = 0; j < i; j++)
		close(fds[j]);
	printf("closed\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		;
	free(fds);
	return i == n ? 0 : 1;
}

/* ---- http: open-loop GETs ---------------------------------------------- */

struct hconn {
	int fd;
	double due;		/* when its next request is due */
	double sent_due;	/* the due time of the request in flight */
	int busy;
	size_t got, want;	/* bytes read; head + body when known */
	char buf[16384];
};

/* 1 when c->buf holds a whole answer (c->want set), 0 when not yet, -1
 * when it is not a 2xx with a Content-Length. */
static int
answer_done(struct hconn *c)
{
	char *end, *cl;

	if (c->want == 0) {
		c->buf[c->got < sizeof(c->buf) ? c->got : sizeof(c->buf) - 1] = 0;
		end = strstr(c->buf, "\r\n\r\n");
		if (!end)
			return c->got >= sizeof(c->buf) - 1 ? -1 : 0;
		if (strncmp(c->buf, "HTTP/1.1 2", 10) != 0)
			return -1;
		*end = 0;
		cl = strcasestr(c->buf, "\r\ncontent-length:");
		*end = '\r';
		if (!cl)
			return -1;
		c->want = (size_t)(end + 4 - c->buf) +
			  (size_t)strtoul(cl + 17, NULL, 10);
	}
	return c->got >= c->want;
}

static int
http_main(const char *hp, const char *path, int nconn, double rate,
	  double secs)
{
	const char *extra = getenv("WSBENCH_HEADER");
	struct hconn *cs;
	struct epoll_event ev, evs[64];
	char req[2048];
	size_t rl, cap = (size_t)(rate * secs * 1.2) + 16, n = 0;
	double *lat, t0, t_meas, t_end, sum = 0, gap;
	long sent = 0;
	int ep, rc = 1;

	if (nconn < 1 || nconn > 4096 || rate <= 0 || secs <= 0)
		return 2;
	rl = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s"
			      "\r\n%s%s\r\n", path, hp, extra ? extra : "",
			      extra ? "\r\n" : "");
	if (rl >= sizeof(req))
		return 2;
	lat = malloc(sizeof(double) * cap);
	cs = calloc((size_t)nconn, sizeof(*cs));
	ep = epoll_create1(0);
	gap = nconn / rate;
	t0 = now_s() + 0.05;
	t_meas = t0 + 1.0;
	t_end = t_meas + secs;
	for (int i = 0; i < nconn; i++) {
		cs[i].fd = tcp_connect(hp, 0);
		if (cs[i].fd < 0) {
			fprintf(stderr, "wsbench http: cannot connect to %s\n",
				hp);
			goto out;
		}
		cs[i].due = t0 + i / rate;
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	for (;;) {
		double now = now_s(), next = t_end + 1;
		int timeout, k;

		for (int i = 0; i < nconn; i++) {
			struct hconn *c = &cs[i];

			if (c->busy)
				continue;
			if (c->due <= now && c->due < t_end) {
				if (send_all(c->fd, req, rl) < 0) {
					fprintf(stderr, "wsbench http: send "
						"failed\n");
					goto out;
				}
				c->busy = 1;
				c->sent_due = c->due;
				c->due += gap;
				c->got = c->want = 0;
				sent += c->sent_due >= t_meas;
			} else if (c->due < next) {
				next = c->due;
			}
		}
		if (now >= t_end) {
			int any = 0;

			for (int i = 0; i < nconn; i++)
				any |= cs[i].busy;
			if (!any)
				break;
		}
		timeout = next > t_end ? 100 :
		    (int)((next - now) * 1000);
		k = epoll_wait(ep, evs, 64, timeout < 0 ? 0 : timeout);
		for (int j = 0; j < k; j++) {
			struct hconn *c = &cs[evs[j].data.u32];
			ssize_t r = recv(c->fd, c->buf + c->got,
					 sizeof(c->buf) - 1 - c->got, 0);
			int d;

			if (r <= 0 || !c->busy) {
				fprintf(stderr, "wsbench http: connection "
					"closed or unasked data\n");
				goto out;
			}
			c->got += (size_t)r;
			d = answer_done(c);
			if (d < 0) {
				fprintf(stderr, "wsbench http: bad answer: "
					"%.60s\n", c->buf);
				goto out;
			}
			if (d == 0)
				continue;
			c->busy = 0;
			if (c->sent_due >= t_meas && n < cap) {
				lat[n] = (now_s() - c->sent_due) * 1e6;
				sum += lat[n++];
			}
			if (c->got > c->want) {
				fprintf(stderr, "wsbench http: more than "
					"one answer\n");
				goto out;
			}
		}
	}
	if (n == 0)
		goto out;
	qsort(lat, n, sizeof(double), cmp_d);
#define HPCT(p) lat[(size_t)((p) * n / 100.0 + 0.999999) > 0 ? \
	(size_t)((p) * n / 100.0 + 0.999999) - 1 : 0]
	printf("http n=%zu p50=%.1f p90=%.1f p99=%.1f max=%.1f mean=%.1f "
	       "rate=%.0f\n", n, HPCT(50), HPCT(90), HPCT(99), lat[n - 1],
	       sum / (double)n, sent / secs);
	rc = 0;
out:
	for (int i = 0; i < nconn; i++)
		if (cs[i].fd > 0)
			close(cs[i].fd);
	close(ep);
	free(cs);
	free(lat);
	return rc;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	raise_nofile();
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "echo") == 0)
		return echo_main(atoi(argv[2]), argc == 4 ? argv[3] :
				 "127.0.0.1");
	if (argc == 5 && strcmp(argv[1], "idle") == 0)
		return idle_main(argv[2], argv[3], atoi(argv[4]));
	if (argc == 6 && strcmp(argv[1], "rtt") == 0)
		return rtt_main(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 7 && strcmp(argv[1], "http") == 0)
		return http_main(argv[2], argv[3], atoi(argv[4]),
				 atof(argv[5]), atof(argv[6]));
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: wsbench echo PORT [ADDR] | idle HOST:PORT PATH N "
		       "| rtt HOST:PORT PATH COUNT SIZE | http HOST:PORT PATH "
		       "CONNS RATE SECS\n(see the comment at the top of "
		       "tests/bench/wsbench.c)\n");
		return 0;
	}
	fprintf(stderr, "usage: wsbench echo PORT [ADDR] | idle HOST:PORT PATH N | "
		"rtt HOST:PORT PATH COUNT SIZE | http HOST:PORT PATH CONNS "
		"RATE SECS\n");
	return 2;
}
