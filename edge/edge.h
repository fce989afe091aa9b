/*
 * edge.h - the hub's front door: an epoll HTTP/1.1 reverse proxy.
 *
 * The edge owns the listening socket. For every request it parses the head,
 * asks the router (a callback) where the request goes, and then either
 * answers itself (redirects, 403/502/503 pages) or relays the request to an
 * upstream: a user's notebook server (TCP) or the hub's own libmicrohttpd
 * (a unix socket). Bodies stream both ways with backpressure (a slow side
 * slows the other; nothing is held whole); upstream connections are kept
 * alive and reused; a 101 answer turns both sockets into a byte relay
 * (WebSocket), half-closes included. Worker threads each run an epoll loop
 * on their own SO_REUSEPORT listener; no thread per connection.
 * Knows nothing about users, sessions or Docker: that is the router's job.
 */
#ifndef SWARMHUB_EDGE_H
#define SWARMHUB_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include "../common/common.h"

/* What the router sees of a request (borrowed, valid during the call). */
struct edge_request {
	const char *method;
	const char *target;		/* raw request-target: path and query */
	const char *host;		/* Host header, "" when absent */
	const char *cookie;		/* Cookie header, NULL when absent */
	const char *authorization;	/* Authorization header, or NULL */
	const char *origin;		/* Origin header, or NULL */
	int upgrade;			/* a WebSocket upgrade request */
	const char *client_ip;		/* the client: the peer, or the
					 * right-most X-Forwarded-For entry
					 * not written by a trusted proxy */
	int https;			/* X-Forwarded-Proto https from a
					 * trusted proxy */
};

enum edge_action { EDGE_PROXY, EDGE_RESPOND };
#define EDGE_HEADERS_MAX 8

/* What the router decides; zeroed before the call, except that of the
 * strings header_name[i], header_value[i] and location only the first
 * byte is (they read as ""; write them whole, with snprintf). */
struct edge_target {
	enum edge_action action;
	/* EDGE_PROXY: where to. Either an IPv4 literal + port, or a unix
	 * socket path (unix_path[0] != 0). */
	char host[64];
	int port;
	char unix_path[108];
	char authorization[100];	/* replaces the client's Authorization
					 * when set ("token ..."); */
	int strip_authorization;	/* drop the client's Authorization */
	char strip_cookie[64];		/* cookie name removed from Cookie */
	size_t strip_target;		/* > 0: this many leading bytes of the
					 * target are dropped (what is left
					 * must start with '/'), as for a
					 * web app served at "/"; they are
					 * put back in front of an answer's
					 * "Location: /..." (not "//...") */
	int nheaders;			/* headers set on the request: the
					 * client's own of these names are
					 * dropped */
	char header_name[EDGE_HEADERS_MAX][64];
	char header_value[EDGE_HEADERS_MAX][512];
	char activity[160];		/* key passed to the activity hook
					 * ("" = none) */
	long timeout_ms;		/* upstream connect + first byte; 0: 30 s */
	/* EDGE_RESPOND: the answer. body is heap (the edge frees it). */
	int status;
	const char *content_type;	/* static string */
	char *body;
	size_t body_len;
	char location[2048];		/* Location header when non-empty */
};

/* Decides a request's fate; runs on an edge thread, must not block long. */
typedef void (*edge_route_fn)(void *ctx, const struct edge_request *rq,
			      struct edge_target *t);
/* Traffic for an activity key: called at most about once a second per
 * connection and direction (from_client: bytes came from the browser). */
typedef void (*edge_activity_fn)(void *ctx, const char *key, int from_client);
/* Upstream refused, reset or silent (for a re-check with Docker). */
typedef void (*edge_upstream_fail_fn)(void *ctx, const char *key, int status);
/* Builds an error page for the edge's own errors (502, 504, 400, 413...):
 * heap HTML body; NULL for a plain one. */
typedef char *(*edge_error_page_fn)(void *ctx, int status, const char *msg,
				    size_t *len);

struct edge_hooks {
	edge_route_fn route;
	edge_activity_fn activity;
	edge_upstream_fail_fn upstream_failed;
	edge_error_page_fn error_page;
	void *ctx;
};

/*
 * Zero fields take defaults. edge_start raises RLIMIT_NOFILE to the hard
 * limit; max_connections 0 means what fits it: (limit - 256) / 2.
 */
struct edge_cfg {
	const char *listen;		/* "0.0.0.0:8000" */
	int threads;			/* epoll workers (SO_REUSEPORT each) */
	long idle_timeout_ms;		/* CLIENT_IDLE_TIMEOUT: an idle
					 * keep-alive client, or one that
					 * stopped reading its response or
					 * sending its body: 75 s */
	long websocket_idle_timeout_ms;	/* no traffic either way: 1 h */
	long header_timeout_ms;		/* whole request head: 30 s */
	size_t max_header_bytes;	/* 16 KiB; beyond: 431 */
	long max_connections;		/* open client connections */
	long max_connections_per_address;	/* 0: no cap; never applied
						 * to trusted proxies */
	const char *const *trusted_proxies;	/* X-Forwarded-* believed;
						 * "*": the one peer in
						 * front, whoever it is */
	const char *const *protected_cookies;	/* the hub's cookies: a
						 * Set-Cookie for them from
						 * a TCP upstream (a user's
						 * server) is dropped */
};

/* Binds and starts the workers of a new edge; NULL with *e (port in use,
 * bad address). Several edges may run in one process. */
struct edge;
struct edge *edge_start(const struct edge_cfg *cfg,
			const struct edge_hooks *hooks, struct err *e);
/* Stops accepting, closes every connection, joins the workers, frees the
 * edge (NULL: no-op). */
void edge_stop(struct edge *ed);

/* Counters for /hub/metrics (relaxed atomics). */
struct edge_stats {
	uint64_t requests;
	uint64_t upstream_errors;
	uint64_t websockets_open;
	uint64_t connections_open;
	uint64_t connections_refused;	/* closed at once: over a cap */
};
void edge_get_stats(struct edge *ed, struct edge_stats *s);

#endif
