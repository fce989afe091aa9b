/*
 * tiny_notebook.c - the smallest stand-in for a Jupyter notebook server, for
 * benchmarks that start hundreds of servers (tests/bench/scale.py).
 *
 * One process, one thread, one epoll loop; HTTP/1.1 with keep-alive. It
 * answers what the hub asks of a notebook server: under the base URL,
 * GET api/status (readiness and the culler), api (version) and api/kernels
 * (an empty list); anything else is 404. Every request must carry the
 * token ("Authorization: token T" or ?token=T), else 403. It takes the
 * hub's command line (--NotebookApp.base_url=..., --port=..., ...) and
 * ignores what it does not know. Logs on stderr only its start, the first
 * answered api/status (the benchmark times a spawn by it) and its end, so
 * a probe costs no log write. Exits 0 on SIGTERM or SIGINT.
 * Built static (images/test-tiny/build.sh) into an image FROM scratch.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VERSION		"6.4.12-tiny"
#define MAX_CONNS	4096
#define HEAD_MAX	16384		/* request line and headers */
#define OUT_MAX		1024		/* one answer */
#define IDLE_S		120		/* an idle connection is closed */

struct opts {
	const char *ip;
	int port;
	char base_url[1024];
	const char *token;
};

struct conn {
	int fd;
	size_t in_len;
	size_t body_left;	/* request body bytes still to discard */
	size_t out_len, out_off;
	int close_after;	/* close once the answer is written */
	time_t last;
	char in[HEAD_MAX];
	char out[OUT_MAX];
};

static struct opts opt;
static struct conn *conns[MAX_CONNS];
static char started[40], last_activity[40];
static int logged_status;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: tiny-notebook [--port=N] [--ip=ADDR] [--NotebookApp.base_url=PATH]\n"
"                     [--NotebookApp.token=T] [other words ignored]\n"
"\n"
"A fake Jupyter notebook server for benchmarks: one thread, keep-alive.\n"
"Every request needs \"Authorization: token T\" or ?token=T (else 403).\n"
"Under the base URL: GET api/status, api, api/kernels; the rest is 404.\n"
"\n"
"  --port N             listen port (default 8888); also --NotebookApp.port,\n"
"                       --ServerApp.port\n"
"  --ip ADDR            listen address (default 0.0.0.0); also\n"
"                       --NotebookApp.ip, --ServerApp.ip\n"
"  --base-url PATH      serve under PATH (default /); also\n"
"                       --NotebookApp.base_url, --ServerApp.base_url\n"
"  --NotebookApp.token T  the token (default $JUPYTER_TOKEN); also\n"
"                       --ServerApp.token, --IdentityProvider.token\n"
"  --help               this text\n"
"\n"
"Options take --opt=value or --opt value. Unknown --options and words\n"
"(\"-m notebook\", a path) are ignored. Exits 0 on SIGTERM or SIGINT.\n");
}

static void
iso_now(char *buf, size_t n)
{
	struct timeval tv;
	struct tm tm;
	char s[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%s.%06ldZ", s, (long)tv.tv_usec);
}

/* Which option a name is: 'p'ort, 'i'p, 'b'ase_url, 't'oken, 0 none. */
static int
option_key(const char *name, size_t n)
{
	static const struct { const char *name; int key; } names[] = {
		{ "port", 'p' }, { "NotebookApp.port", 'p' },
		{ "ServerApp.port", 'p' }, { "ip", 'i' },
		{ "NotebookApp.ip", 'i' }, { "ServerApp.ip", 'i' },
		{ "base-url", 'b' }, { "base_url", 'b' },
		{ "NotebookApp.base_url", 'b' }, { "ServerApp.base_url", 'b' },
		{ "NotebookApp.token", 't' }, { "ServerApp.token", 't' },
		{ "IdentityProvider.token", 't' },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n &&
		    strncmp(names[i].name, name, n) == 0)
			return names[i].key;
	return 0;
}

/* "/user/x" or "'user/x/'" -> "/user/x/" ("/" for an empty path). */
static int
set_base_url(const char *v)
{
	size_t n = strlen(v);

	if (n && (v[0] == '\'' || v[0] == '"'))
		v++, n--;
	if (n && (v[n - 1] == '\'' || v[n - 1] == '"'))
		n--;
	while (n && *v == '/')
		v++, n--;
	while (n && v[n - 1] == '/')
		n--;
	if (n + 3 > sizeof(opt.base_url))
		return -1;
	if (n == 0)
		strcpy(opt.base_url, "/");
	else
		snprintf(opt.base_url, sizeof(opt.base_url), "/%.*s/",
			 (int)n, v);
	return 0;
}

static int
set_option(int key, const char *v)
{
	char *end;
	long p;

	switch (key) {
	case 'p':
		errno = 0;
		p = strtol(v, &end, 10);
		if (errno || *end || p < 1 || p > 65535)
			return -1;
		opt.port = (int)p;
		return 0;
	case 'i':
		opt.ip = v;
		return 0;
	case 'b':
		return set_base_url(v);
	default:
		opt.token = v;
		return 0;
	}
}

static int
parse_args(int argc, char **argv)
{
	opt.ip = "0.0.0.0";
	opt.port = 8888;
	strcpy(opt.base_url, "/");
	opt.token = getenv("JUPYTER_TOKEN");
	if (opt.token == NULL)
		opt.token = "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *v;
		int key;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0)
			continue;	/* "-m", "notebook", a path */
		eq = strchr(a + 2, '=');
		key = option_key(a + 2, eq ? (size_t)(eq - a - 2)
				 : strlen(a + 2));
		if (key == 0)
			continue;	/* --no-browser, --NotebookApp.foo=... */
		if (eq)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else {
			fprintf(stderr, "tiny-notebook: %s needs a value\n", a);
			return -1;
		}
		if (set_option(key, v) < 0) {
			fprintf(stderr, "tiny-notebook: bad value for %s: "
				"'%s'\n", a, v);
			return -1;
		}
	}
	return 0;
}

static int
listen_on(void)
{
	struct sockaddr_in sa = { 0 };
	int fd, one = 1;

	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)opt.port);
	if (inet_pton(AF_INET, opt.ip, &sa.sin_addr) != 1) {
		fprintf(stderr, "tiny-notebook: not an IPv4 address: '%s'\n",
			opt.ip);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 128) < 0) {
		fprintf(stderr, "tiny-notebook: cannot listen on %s:%d: %s\n",
			opt.ip, opt.port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void
conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	conns[c->fd] = NULL;
	free(c);
}

static void
accept_all(int ep, int lfd)
{
	struct epoll_event ev = { 0 };
	struct conn *c;
	int fd, one = 1;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (fd >= MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->last = time(NULL);
		conns[fd] = c;
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(ep, c);
	}
}

/* The value of header name in the head (NUL-terminated lines end with
 * "\r\n"), copied into v; 0 when found. */
static int
header(const char *head, const char *name, char *v, size_t vn)
{
	size_t n = strlen(name);
	const char *p = strstr(head, "\r\n"), *end;

	while (p && p[2] != '\r' && p[2] != '\0') {
		p += 2;
		end = strstr(p, "\r\n");
		if (end == NULL)
			break;
		if ((size_t)(end - p) > n && p[n] == ':' &&
		    strncasecmp(p, name, n) == 0) {
			p += n + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			snprintf(v, vn, "%.*s", (int)(end - p), p);
			return 0;
		}
		p = end;
	}
	return -1;
}

/* Does the query (after '?', may be NULL) have name=value exactly? */
static int
query_has(const char *query, const char *name, const char *value)
{
	size_t n = strlen(name);
	const char *p = query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len >= n && strncmp(p, name, n) == 0 &&
		    (len == n ? value == NULL : p[n] == '=' && value &&
		     strlen(value) == len - n - 1 &&
		     strncmp(p + n + 1, value, len - n - 1) == 0))
			return 1;
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

static int
authorized(const char *head, const char *query)
{
	char v[512];

	if (*opt.token == '\0')
		return 1;	/* as the notebook with an empty token */
	if (header(head, "Authorization", v, sizeof(v)) == 0 &&
	    strncasecmp(v, "token ", 6) == 0) {
		const char *t = v + 6;

		while (*t == ' ')
			t++;
		if (strcmp(t, opt.token) == 0)
			return 1;
	}
	return query_has(query, "token", opt.token);
}

static void
answer(struct conn *c, int head_only, int status, const char *body)
{
	const char *reason = status == 200 ? "OK" : status == 403 ?
	    "Forbidden" : status == 404 ? "Not Found" : "Bad Request";
	int n;

	n = snprintf(c->out, sizeof(c->out),
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n%s\r\n%s", status, reason,
		     strlen(body) + 1, c->close_after ? "Connection: close\r\n"
		     : "", head_only ? "" : body);
	if (n < 0 || (size_t)n >= sizeof(c->out) - 1)
		n = snprintf(c->out, sizeof(c->out), "HTTP/1.1 500 Error\r\n"
			     "Content-Length: 0\r\nConnection: close\r\n\r\n");
	else if (!head_only)
		c->out[n++] = '\n';
	c->out_len = (size_t)n;
	c->out_off = 0;
}

/* The status and body of the answer to one request; body is a buffer
 * of bn bytes. */
static int
route(const char *method, char *target, const char *head, char *body,
      size_t bn)
{
	char *query = strchr(target, '?');
	size_t n = strlen(opt.base_url);
	const char *sub;

	if (query)
		*query++ = '\0';
	if (strlen(target) + 1 == n && strncmp(target, opt.base_url, n - 1) == 0)
		sub = "";
	else if (strncmp(target, opt.base_url, n) == 0)
		sub = target + n;
	else {
		snprintf(body, bn, "{\"message\": \"not under the base "
			 "URL\"}");
		return 404;
	}
	if (!authorized(head, query)) {
		snprintf(body, bn, "{\"message\": \"Forbidden\"}");
		return 403;
	}
	if (strcmp(sub, "api/status") == 0) {
		/* as Jupyter: asking is not activity */
		snprintf(body, bn, "{\"started\": \"%s\", \"last_activity\": "
			 "\"%s\", \"connections\": 0, \"kernels\": 0}",
			 started, last_activity);
		if (!logged_status) {
			logged_status = 1;
			fprintf(stderr, "tiny-notebook: \"%s %sapi/status\" "
				"200 (the first answered)\n", method,
				opt.base_url);
		}
		return 200;
	}
	if (!query_has(query, "no_track_activity", "1") &&
	    !query_has(query, "no_track_activity", NULL))
		iso_now(last_activity, sizeof(last_activity));
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		sub = "";	/* nothing here takes another method */
	if (strcmp(sub, "api") == 0) {
		snprintf(body, bn, "{\"version\": \"" VERSION "\"}");
		return 200;
	}
	if (strcmp(sub, "api/kernels") == 0) {
		snprintf(body, bn, "[]");
		return 200;
	}
	snprintf(body, bn, "{\"message\": \"not found\"}");
	return 404;
}

/* Parses the head in c->in (len bytes, ending "\r\n\r\n") and queues the
 * answer; -1 when the request cannot be understood. */
static int
request(struct conn *c, size_t len)
{
	char method[16], target[2048], version[16], v[64], body[512];
	char *head = c->in;
	int st;
	char *end;
	unsigned long long n = 0;

	head[len - 2] = '\0';	/* keeps the last header's "\r\n" */
	if (sscanf(head, "%15s %2047s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0)
		return -1;
	if (header(head, "Transfer-Encoding", v, sizeof(v)) == 0)
		return -1;	/* nothing the hub sends here has a body */
	if (header(head, "Content-Length", v, sizeof(v)) == 0) {
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || *end || v[0] == '\0')
			return -1;
	}
	c->body_left = (size_t)n;
	c->close_after = strcmp(version, "HTTP/1.0") == 0 ||
	    (header(head, "Connection", v, sizeof(v)) == 0 &&
	     strcasecmp(v, "close") == 0);
	st = route(method, target, head, body, sizeof(body));
	answer(c, strcmp(method, "HEAD") == 0, st, body);
	return 0;
}

/* Writes what is queued; -1 on an error (the connection is done). */
static int
flush_out(int ep, struct conn *c)
{
	struct epoll_event ev = { 0 };

	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off,
				  c->out_len - c->out_off);

		if (w < 0 && errno == EAGAIN) {
			ev.events = EPOLLOUT | EPOLLRDHUP;
			ev.data.fd = c->fd;
			return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
		if (w <= 0)
			return -1;
		c->out_off += (size_t)w;
	}
	c->out_len = c->out_off = 0;
	if (c->close_after)
		return -1;
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.fd = c->fd;
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Handles the buffered input: discards bodies, answers complete heads
 * one at a time (an answer must be written before the next is read). */
static int
consume(int ep, struct conn *c)
{
	while (c->out_len == 0) {
		char *e;
		size_t len;

		if (c->body_left) {
			size_t k = c->body_left < c->in_len ? c->body_left
			    : c->in_len;

			memmove(c->in, c->in + k, c->in_len - k);
			c->in_len -= k;
			c->body_left -= k;
			if (c->body_left)
				return 0;
		}
		e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
		if (e == NULL)
			return c->in_len == sizeof(c->in) ? -1 : 0;
		len = (size_t)(e - c->in) + 4;
		if (request(c, len) < 0) {
			c->close_after = 1;
			answer(c, 0, 400, "{\"message\": \"bad request\"}");
			return flush_out(ep, c);
		}
		memmove(c->in, c->in + len, c->in_len - len);
		c->in_len -= len;
		if (flush_out(ep, c) < 0)
			return -1;
	}
	return 0;
}

/* Reads and answers what c has sent; -1 when c is done. */
static int
on_event(int ep, struct conn *c, unsigned events)
{
	c->last = time(NULL);
	if (events & EPOLLOUT)
		return flush_out(ep, c) < 0 ? -1 : consume(ep, c);
	for (;;) {
		ssize_t r;

		if (c->in_len == sizeof(c->in))
			return -1;
		r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (r < 0 && errno == EAGAIN)
			break;
		if (r <= 0)
			return -1;
		c->in_len += (size_t)r;
		if (consume(ep, c) < 0)
			return -1;
		if (c->out_len)
			return 0;	/* writing; reads resume after */
	}
	return events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) ? -1 : 0;
}

static void
close_idle(int ep)
{
	time_t now = time(NULL);

	for (int fd = 0; fd < MAX_CONNS; fd++)
		if (conns[fd] && now - conns[fd]->last > IDLE_S)
			conn_close(ep, conns[fd]);
}

static int
serve(int lfd, int sfd)
{
	struct epoll_event ev = { 0 }, evs[64];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	time_t swept = time(NULL);

	if (ep < 0)
		return -1;
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, 10000);

		if (n < 0 && errno != EINTR)
			return -1;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd)
				return 0;
			if (fd == lfd)
				accept_all(ep, lfd);
			else if (fd < MAX_CONNS && conns[fd] &&
				 on_event(ep, conns[fd], evs[i].events) < 0)
				conn_close(ep, conns[fd]);
		}
		if (time(NULL) - swept >= 10) {
			close_idle(ep);
			swept = time(NULL);
		}
	}
}

int
main(int argc, char **argv)
{
	sigset_t set;
	int lfd, sfd;

	if (parse_args(argc, argv) < 0)
		return 2;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	lfd = listen_on();
	if (sfd < 0 || lfd < 0)
		return 1;
	iso_now(started, sizeof(started));
	memcpy(last_activity, started, sizeof(started));
	fprintf(stderr, "tiny-notebook: listening on http://%s:%d%s\n",
		opt.ip, opt.port, opt.base_url);
	if (serve(lfd, sfd) < 0) {
		fprintf(stderr, "tiny-notebook: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "tiny-notebook: stopped\n");
	return 0;
}
