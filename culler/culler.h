/*
 * culler.h - stop idle or too old user servers; optionally delete users
 * who have been gone for long.
 *
 * The only header of culler/ that other modules include. Two halves:
 *   culler.c  decides: culler_plan() and culler_plan_users() are pure
 *             functions (servers + activity + policy + now -> actions),
 *             with no clock, no I/O and no global state.
 *   loop.c    acts: culler_pass() lists the servers, asks each one for its
 *             own activity, plans and stops, all through a struct
 *             culler_ops the hub fills in; culler_start() runs passes on
 *             a thread every CULL_EVERY seconds.
 * culler/ knows nothing of the hub, HTTP or Docker: the hub's ops do the
 * listing, the api/status probes, the stops (spawner, audit log, history,
 * metric) and the user deletions.
 * Times are milliseconds since the epoch (UTC), 0 meaning "none/unknown";
 * durations in the policy are seconds, a value <= 0 meaning "off".
 */
#ifndef SWARMHUB_CULLER_H
#define SWARMHUB_CULLER_H

#include <stddef.h>
#include <stdint.h>
#include "../common/common.h"

/* ---- inputs ---------------------------------------------------------- */

/* One running (or pending) server as the hub sees it. */
struct culler_server {
	char user[USER_NAME_MAX + 1];
	char server[64];	/* "": the default server, else its name */
	char profile[64];	/* profile it was started with, "" unknown */
	int admin;		/* its owner is an admin */
	int pending;		/* a start or stop is under way: never culled */
	int64_t started_ms;	/* when it started; the floor of activity */
	int64_t proxy_ms;	/* last proxied traffic, either direction */
	int64_t client_ms;	/* last traffic from the browser */
	int open_websockets;	/* WebSockets open through the proxy now */
	int64_t server_ms;	/* the server's api/status last_activity */
	int kernel_busy;	/* a kernel was "busy" when last asked */
	int64_t kernel_seen_ms;	/* when kernel_busy was observed */
};

/* One user, for user culling. */
struct culler_user {
	char name[USER_NAME_MAX + 1];
	int admin;		/* admins are never deleted by the culler */
	int has_server;		/* a running or pending server */
	int64_t created_ms;	/* floor of activity */
	int64_t last_activity_ms;	/* 0: never active */
};

struct culler_profile_timeout {
	const char *profile;	/* profile name (a group, or "default") */
	long timeout_s;		/* replaces timeout_s for its servers; <= 0:
				 * ignored */
};

struct culler_policy {
	long timeout_s;		/* CULL_TIMEOUT, 3000; <= 0: no idle culling */
	long max_age_s;		/* CULL_MAX_AGE, 0: off */
	int cull_admins;	/* CULL_ADMIN_SERVERS, 1 */
	int kernel_busy_counts;	/* a busy kernel is activity, 1 */
	int websockets_count;	/* browser policy, 0: only traffic from the
				 * browser counts (client_ms); 1: any proxied
				 * traffic counts (proxy_ms) and an open
				 * WebSocket keeps the server */
	const struct culler_profile_timeout *profile_timeouts;	/* borrowed */
	size_t nprofile_timeouts;
	long users_after_s;	/* CULL_USERS_AFTER, 0: no user culling */
};

/* Fills *p with the defaults above (no overrides, no user culling). */
void culler_policy_init(struct culler_policy *p);

/* ---- decisions (culler.c, pure) -------------------------------------- */

enum culler_reason {
	CULL_IDLE,		/* idle >= timeout */
	CULL_MAX_AGE,		/* running >= max age */
	CULL_USER_INACTIVE,	/* user without a server, inactive too long */
	CULL_REASON_COUNT
};

struct culler_action {
	char user[USER_NAME_MAX + 1];
	char server[64];	/* the server's name ("": default; users: "") */
	enum culler_reason reason;
	const char *label;	/* metric label (static), culler_reason_label */
	int64_t last_activity_ms;	/* what the decision used (clamped) */
	int64_t idle_s;		/* idle: now - last activity; max age: age */
	long limit_s;		/* the timeout, max age or users_after used */
	/* For people (history, home page, audit), times HH:MM UTC, with the
	 * date when not today:
	 *   "idle 52 min > timeout 50 min; last activity: kernel busy at 10:02"
	 *   "idle 3 h > timeout 50 min; no activity since start at 07:12"
	 *   "running 25 h > max age 24 h"
	 *   "no activity for 91 d > 90 d; last activity: 2026-05-03 10:02" */
	char message[192];
};

/* "idle", "max_age", "user_inactive" (metric jupyterhub_culled_total's
 * reason label); "" for a value out of range. */
const char *culler_reason_label(enum culler_reason r);

/*
 * The servers of s[0..n) to stop now, in input order. Per server:
 *   - pending: skipped; admin's server: skipped unless p->cull_admins.
 *   - age = now - started_ms: culled (CULL_MAX_AGE) when p->max_age_s > 0
 *     and age >= max_age_s, however active it is. Checked first.
 *   - last activity = the latest of: the browser (client_ms; with
 *     websockets_count, proxy_ms too, and now while a WebSocket is open),
 *     server_ms, kernel_seen_ms when kernel_busy and kernel_busy_counts,
 *     and started_ms as the floor (no activity at all: since start).
 *     Activity in the future (clock skew) counts as now: idle is never
 *     negative. A server with no started_ms and no activity is kept (the
 *     hub does not know it; nothing to measure).
 *   - timeout = the profile's override when one is > 0, else timeout_s;
 *     culled (CULL_IDLE) when timeout > 0 and idle >= timeout.
 * Returns 0 with *out a heap array of *nout actions (caller frees it with
 * free(); NULL when none). -1 (ERR_INVALID) when s, p or out is missing;
 * *out and *nout are then NULL and 0.
 */
int culler_plan(const struct culler_server *s, size_t n,
		const struct culler_policy *p, int64_t now_ms,
		struct culler_action **out, size_t *nout);

/*
 * The users of u[0..n) to delete now (CULL_USER_INACTIVE): when
 * p->users_after_s > 0, users with no server, not admins, whose last
 * activity (or, never active, creation; future times count as now) is
 * users_after_s or more ago. A user with neither time is kept.
 * Returns and frees as culler_plan().
 */
int culler_plan_users(const struct culler_user *u, size_t n,
		      const struct culler_policy *p, int64_t now_ms,
		      struct culler_action **out, size_t *nout);

/* ---- acting (loop.c) ------------------------------------------------- */

struct culler_pass_stats {
	size_t servers;		/* listed */
	size_t probed;		/* probes made (not pending, cullable) */
	size_t probe_failures;	/* failed or slower than the timeout */
	size_t culled[CULL_REASON_COUNT];	/* stops, deletions done */
	size_t stop_failures;	/* stops or deletions that failed */
	int64_t duration_ms;
	int64_t cpu_us;		/* CPU time the pass's threads used */
};

/*
 * What the hub does for the culler. Every function is called from culler
 * threads, probe and stop from several at once: they must be thread-safe.
 * Each returns 0 on success, -1 on failure (and logs why itself).
 */
struct culler_ops {
	/* The running and pending servers: *out a heap array of *n (freed
	 * by the culler with free()). Fill what the hub knows; server_ms,
	 * kernel_busy and kernel_seen_ms may stay 0 (the probe fills them). */
	int (*list)(void *ctx, struct culler_server **out, size_t *n);
	/* Asks user's server (server: its name, "" the default one) for its
	 * api/status: *server_ms its
	 * last_activity (0 unknown), *kernel_busy 1 when a kernel's
	 * execution_state is "busy". Must time out by itself (HTTP timeout
	 * near the probe_timeout_ms given to culler_pass). Optional (NULL:
	 * servers are judged on the hub's record alone). */
	int (*probe)(void *ctx, const char *user, const char *server,
		     int64_t *server_ms, int *kernel_busy);
	/* Stops a's server: spawner stop, audit log, history event with
	 * a->message, metric jupyterhub_culled_total{reason=a->label}. */
	int (*stop)(void *ctx, const struct culler_action *a);
	/* Optional (NULL: no user culling even with users_after_s). */
	int (*list_users)(void *ctx, struct culler_user **out, size_t *n);
	int (*delete_user)(void *ctx, const struct culler_action *a);
	/* Optional: called after each pass of culler_start with its stats. */
	void (*pass_done)(void *ctx, const struct culler_pass_stats *st);
	void *ctx;
};

/*
 * One pass: list; probe each server that could be culled (not pending,
 * admin's only with cull_admins) with at most concurrency probes at once
 * (threads; < 1 counts as 1), probe i starting no earlier than
 * i / probe_rate seconds into the pass (probe_rate <= 0: no limit); plan
 * with the time after probing; stop each action (same concurrency, not
 * paced); then, with users_after_s and the user ops, plan and delete
 * users. A probe that fails, or answers after
 * probe_timeout_ms (> 0), is counted in probe_failures and its result
 * dropped: the server is judged on the hub's record alone. The pass waits
 * for every probe it started (the ops' own timeout bounds it), so nothing
 * it passed to the ops outlives it. Fills *st (when not NULL) and logs
 * event=culler.pass. Returns 0, or -1 when listing failed (nothing done).
 */
int culler_pass(const struct culler_ops *ops, const struct culler_policy *p,
		int concurrency, long probe_timeout_ms, long probe_rate,
		struct culler_pass_stats *st);

/*
 * Runs culler_pass on a thread: once at start, then every every_s seconds
 * (from the start of one pass to the next; a pass that runs long delays
 * the next, passes never overlap), probes paced as by culler_pass but
 * all started within every_s / 2 (the rate rises when there are more
 * than probe_rate * every_s / 2 servers). Copies *ops and *p (profile
 * names included); ops->ctx must stay valid until culler_stop() returns.
 * Returns NULL with *e filled (ERR_INVALID: no list or stop op, no policy,
 * every_s <= 0; ERR_INTERNAL: no thread).
 */
struct culler;
struct culler *culler_start(const struct culler_ops *ops,
			    const struct culler_policy *p, long every_s,
			    int concurrency, long probe_timeout_ms,
			    long probe_rate, struct err *e);
/* Replaces the policy (copied) from the next pass on (profiles reload). */
void culler_set_policy(struct culler *c, const struct culler_policy *p);
/* The number of passes finished so far (a pass whose listing failed does
 * not count); *last (when not NULL) gets the stats of the latest one
 * (zeroed before the first). */
long culler_passes(struct culler *c, struct culler_pass_stats *last);
/* Wakes the thread, lets a pass under way end early (no new probes or
 * stops are started), joins it and frees c. culler_stop(NULL): no-op. */
void culler_stop(struct culler *c);

#endif
