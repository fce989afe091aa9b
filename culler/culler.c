/*
 * culler.c - decide which servers to stop and which users to delete.
 *
 * Pure: the inputs (servers or users with their activity, the policy, the
 * time) give the actions; no clock, no I/O, no global state, so every rule
 * is a unit test (tests/unit/test_culler.c). Each action carries a
 * sentence for people saying why, with durations in the unit a person
 * would use ("52 min", "25 h", "91 d") and times as HH:MM UTC.
 * Ownership: the caller owns the input; the returned array is the caller's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "culler.h"

/* Where the last activity came from, for the message. */
enum source { SRC_START, SRC_BROWSER, SRC_PROXY, SRC_WEBSOCKET, SRC_SERVER,
	      SRC_KERNEL };

static const char *const source_names[] = {
	[SRC_START] = "start", [SRC_BROWSER] = "browser",
	[SRC_PROXY] = "proxy traffic", [SRC_WEBSOCKET] = "open websocket",
	[SRC_SERVER] = "notebook server", [SRC_KERNEL] = "kernel busy",
};

void
culler_policy_init(struct culler_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->timeout_s = 3000;
	p->cull_admins = 1;
	p->kernel_busy_counts = 1;
}

const char *
culler_reason_label(enum culler_reason r)
{
	static const char *const labels[] = {
		[CULL_IDLE] = "idle", [CULL_MAX_AGE] = "max_age",
		[CULL_USER_INACTIVE] = "user_inactive",
	};

	if ((int)r < 0 || r >= CULL_REASON_COUNT)
		return "";
	return labels[r];
}

/* A limit as set: the largest unit that divides it, "24 h" not "1 d". */
static void
fmt_limit(char *buf, size_t size, long s)
{
	if (s >= 2 * 86400 && s % 86400 == 0)
		snprintf(buf, size, "%ld d", s / 86400);
	else if (s >= 2 * 3600 && s % 3600 == 0)
		snprintf(buf, size, "%ld h", s / 3600);
	else if (s >= 60 && s % 60 == 0)
		snprintf(buf, size, "%ld min", s / 60);
	else
		snprintf(buf, size, "%ld s", s);
}

/* A measured span, rounded down in a unit fitting its size. */
static void
fmt_span(char *buf, size_t size, int64_t s)
{
	if (s < 120)
		snprintf(buf, size, "%lld s", (long long)s);
	else if (s < 120 * 60)
		snprintf(buf, size, "%lld min", (long long)(s / 60));
	else if (s < 48 * 3600)
		snprintf(buf, size, "%lld h", (long long)(s / 3600));
	else
		snprintf(buf, size, "%lld d", (long long)(s / 86400));
}

/* "10:02" when ms falls on now's UTC day, else "2026-05-03 10:02". */
static void
fmt_at(char *buf, size_t size, int64_t ms, int64_t now_ms)
{
	time_t t = (time_t)(ms / 1000), tn = (time_t)(now_ms / 1000);
	struct tm tm, tmn;

	gmtime_r(&t, &tm);
	gmtime_r(&tn, &tmn);
	if (tm.tm_year == tmn.tm_year && tm.tm_yday == tmn.tm_yday)
		snprintf(buf, size, "%02d:%02d", tm.tm_hour, tm.tm_min);
	else
		snprintf(buf, size, "%04d-%02d-%02d %02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min);
}

/* "idle 52 min > timeout 50 min": ">=" when both read the same. */
static void
fmt_over(char *buf, size_t size, const char *what, int64_t span_s,
	 const char *limit_name, long limit_s)
{
	char span[32], limit[32];

	fmt_span(span, sizeof(span), span_s);
	fmt_limit(limit, sizeof(limit), limit_s);
	snprintf(buf, size, "%s %s %s %s%s%s", what, span,
		 strcmp(span, limit) ? ">" : ">=", limit_name,
		 *limit_name ? " " : "", limit);
}

static long
timeout_for(const struct culler_policy *p, const char *profile)
{
	const struct culler_profile_timeout *o = p->profile_timeouts;

	for (size_t i = 0; o && i < p->nprofile_timeouts; i++, o++)
		if (o->profile && o->timeout_s > 0 &&
		    strcmp(o->profile, profile) == 0)
			return o->timeout_s;
	return p->timeout_s;
}

static void
later(int64_t *best, enum source *src, int64_t ms, enum source s)
{
	if (ms > *best) {
		*best = ms;
		*src = s;
	}
}

/* The latest activity of s under p (0 when nothing is known), clamped to
 * now; *src says where it came from. */
static int64_t
last_activity(const struct culler_server *s, const struct culler_policy *p,
	      int64_t now_ms, enum source *src)
{
	int64_t best = s->started_ms;

	*src = SRC_START;
	later(&best, src, s->client_ms, SRC_BROWSER);
	if (p->websockets_count) {
		later(&best, src, s->proxy_ms, SRC_PROXY);
		if (s->open_websockets > 0)
			later(&best, src, now_ms, SRC_WEBSOCKET);
	}
	later(&best, src, s->server_ms, SRC_SERVER);
	if (p->kernel_busy_counts && s->kernel_busy)
		later(&best, src, s->kernel_seen_ms, SRC_KERNEL);
	return best > now_ms ? now_ms : best;
}

static void
action_init(struct culler_action *a, const char *user, enum culler_reason r,
	    int64_t last_ms, int64_t span_s, long limit_s)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->user, sizeof(a->user), "%s", user);
	a->reason = r;
	a->label = culler_reason_label(r);
	a->last_activity_ms = last_ms;
	a->idle_s = span_s;
	a->limit_s = limit_s;
}

/* Fills *a and returns 1 when s must be stopped now. */
static int
decide(const struct culler_server *s, const struct culler_policy *p,
       int64_t now_ms, struct culler_action *a)
{
	enum source src;
	int64_t last, started, idle_s;
	long timeout_s;
	char over[96], at[64];

	if (s->pending || (s->admin && !p->cull_admins))
		return 0;
	last = last_activity(s, p, now_ms, &src);
	started = s->started_ms > now_ms ? now_ms : s->started_ms;
	if (p->max_age_s > 0 && started > 0 &&
	    (now_ms - started) / 1000 >= p->max_age_s) {
		action_init(a, s->user, CULL_MAX_AGE, last,
			    (now_ms - started) / 1000, p->max_age_s);
		snprintf(a->server, sizeof(a->server), "%s", s->server);
		fmt_over(a->message, sizeof(a->message), "running",
			 a->idle_s, "max age", p->max_age_s);
		return 1;
	}
	timeout_s = timeout_for(p, s->profile);
	idle_s = (now_ms - last) / 1000;
	if (timeout_s <= 0 || last <= 0 || idle_s < timeout_s)
		return 0;
	action_init(a, s->user, CULL_IDLE, last, idle_s, timeout_s);
	snprintf(a->server, sizeof(a->server), "%s", s->server);
	fmt_over(over, sizeof(over), "idle", idle_s, "timeout", timeout_s);
	fmt_at(at, sizeof(at), last, now_ms);
	if (src == SRC_START)
		snprintf(a->message, sizeof(a->message),
			 "%s; no activity since start at %s", over, at);
	else
		snprintf(a->message, sizeof(a->message),
			 "%s; last activity: %s at %s", over,
			 source_names[src], at);
	return 1;
}

static int
plan_start(const void *in, size_t n, const struct culler_policy *p,
	   struct culler_action **out, size_t *nout)
{
	if (out)
		*out = NULL;
	if (nout)
		*nout = 0;
	if (!p || !out || !nout || (n && !in))
		return err_set(NULL, ERR_INVALID, "culler: missing argument");
	if (n)
		*out = xcalloc(n, sizeof(**out));
	return 0;
}

/* Frees an empty result so "none" is always NULL. */
static void
plan_end(struct culler_action **out, size_t nout)
{
	if (nout == 0) {
		free(*out);
		*out = NULL;
	}
}

int
culler_plan(const struct culler_server *s, size_t n,
	    const struct culler_policy *p, int64_t now_ms,
	    struct culler_action **out, size_t *nout)
{
	if (plan_start(s, n, p, out, nout) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (decide(&s[i], p, now_ms, &(*out)[*nout]))
			(*nout)++;
	plan_end(out, *nout);
	return 0;
}

static int
decide_user(const struct culler_user *u, const struct culler_policy *p,
	    int64_t now_ms, struct culler_action *a)
{
	int64_t last = u->last_activity_ms > 0 ? u->last_activity_ms
	    : u->created_ms;
	int64_t idle_s;
	char over[96], at[64];

	if (u->has_server || u->admin || last <= 0)
		return 0;
	if (last > now_ms)
		last = now_ms;
	idle_s = (now_ms - last) / 1000;
	if (idle_s < p->users_after_s)
		return 0;
	action_init(a, u->name, CULL_USER_INACTIVE, last, idle_s,
		    p->users_after_s);
	fmt_over(over, sizeof(over), "no activity for", idle_s, "",
		 p->users_after_s);
	fmt_at(at, sizeof(at), last, now_ms);
	snprintf(a->message, sizeof(a->message), "%s; %s %s", over,
		 u->last_activity_ms > 0 ? "last activity:" :
		 "never active, created", at);
	return 1;
}

int
culler_plan_users(const struct culler_user *u, size_t n,
		  const struct culler_policy *p, int64_t now_ms,
		  struct culler_action **out, size_t *nout)
{
	if (plan_start(u, n, p, out, nout) < 0)
		return -1;
	if (p->users_after_s <= 0)
		n = 0;
	for (size_t i = 0; i < n; i++)
		if (decide_user(&u[i], p, now_ms, &(*out)[*nout]))
			(*nout)++;
	plan_end(out, *nout);
	return 0;
}
