/*
 * test_culler.c - the culler's rules (culler_plan, culler_plan_users) and
 * its loop (culler_pass, culler_start/stop) against fake ops.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../../culler/culler.h"
#include "../lib/t.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static int64_t now;		/* 2026-08-22 10:54:00 UTC */

static int64_t
at(const char *iso)
{
	int64_t ms = 0;

	if (time_parse_iso8601(iso, &ms) < 0)
		abort();
	return ms;
}

static struct culler_server
srv(const char *user, int64_t started_ms)
{
	struct culler_server s;

	memset(&s, 0, sizeof(s));
	snprintf(s.user, sizeof(s.user), "%s", user);
	snprintf(s.profile, sizeof(s.profile), "default");
	s.started_ms = started_ms;
	return s;
}

/* Plans one server; returns the number of actions, *a the first one. */
static size_t
plan1(const struct culler_server *s, const struct culler_policy *p,
      struct culler_action *a)
{
	struct culler_action *out = NULL;
	size_t n = 99;

	if (culler_plan(s, 1, p, now, &out, &n) < 0)
		return 99;
	memset(a, 0, sizeof(*a));
	if (n)
		*a = out[0];
	free(out);
	return n;
}

static void
test_defaults(void)
{
	struct culler_policy p;

	memset(&p, 0xff, sizeof(p));
	culler_policy_init(&p);
	T_OK(p.timeout_s == 3000 && p.max_age_s == 0 && p.cull_admins == 1 &&
	     p.kernel_busy_counts == 1 && p.websockets_count == 0 &&
	     p.nprofile_timeouts == 0 && p.profile_timeouts == NULL &&
	     p.users_after_s == 0, "policy defaults");
	T_STREQ(culler_reason_label(CULL_IDLE), "idle", "idle label");
	T_STREQ(culler_reason_label(CULL_MAX_AGE), "max_age", "max_age label");
	T_STREQ(culler_reason_label(CULL_USER_INACTIVE), "user_inactive",
		"user label");
	T_STREQ(culler_reason_label(CULL_REASON_COUNT), "", "bad label");
}

static void
test_idle(void)
{
	struct culler_policy p;
	struct culler_server s = srv("alice", now - 3 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	s.client_ms = at("2026-08-22T10:02:00Z");
	T_OK(plan1(&s, &p, &a) == 1 && a.reason == CULL_IDLE,
	     "idle 52 min past a 50 min timeout is culled");
	T_STREQ(a.user, "alice", "action names the user");
	T_STREQ(a.label, "idle", "metric label idle");
	T_STREQ(a.message, "idle 52 min > timeout 50 min; last activity: "
		"browser at 10:02", "idle message");
	T_OK(a.idle_s == 52 * 60 && a.limit_s == 3000 &&
	     a.last_activity_ms == s.client_ms, "idle_s, limit_s, last");

	s.client_ms = now - 3000 * 1000LL + 1000;
	T_OK(plan1(&s, &p, &a) == 0, "idle 2999 s under 3000 s is kept");
	s.client_ms = now - 3000 * 1000LL;
	T_OK(plan1(&s, &p, &a) == 1, "idle exactly the timeout is culled");
	T_STREQ(a.message, "idle 50 min >= timeout 50 min; last activity: "
		"browser at 10:04", "same minutes read >=");

	p.timeout_s = 0;
	s.client_ms = now - 100 * DAY;
	T_OK(plan1(&s, &p, &a) == 0, "timeout 0: no idle culling");
}

/* A named server is judged on its own and its action names it. */
static void
test_named(void)
{
	struct culler_policy p;
	struct culler_server v[2] = { srv("alice", now - 3 * HOUR),
				      srv("alice", now - 3 * HOUR) };
	struct culler_action *out = NULL, a;
	size_t n = 0;

	culler_policy_init(&p);
	snprintf(v[1].server, sizeof(v[1].server), "gpu");
	v[0].client_ms = now - 60 * 1000;	/* the default server: active */
	T_OK(culler_plan(v, 2, &p, now, &out, &n) == 0 && n == 1,
	     "of two servers of one user only the idle one is culled");
	T_OK(n == 1 && strcmp(out[0].user, "alice") == 0 &&
	     strcmp(out[0].server, "gpu") == 0, "the action names the server");
	free(out);
	v[1].started_ms = now - 30 * DAY;
	p.max_age_s = 2 * 3600;	/* both are older than 2 h */
	v[1].client_ms = now;
	T_OK(plan1(&v[1], &p, &a) == 1 && a.reason == CULL_MAX_AGE &&
	     strcmp(a.server, "gpu") == 0, "max age names the server too");
	T_OK(plan1(&v[0], &p, &a) == 1 && a.server[0] == '\0',
	     "the default server's action has server \"\"");
}

static void
test_null_activity(void)
{
	struct culler_policy p;
	struct culler_server s = srv("bob", at("2026-08-22T09:00:00Z"));
	struct culler_action a;

	culler_policy_init(&p);
	T_OK(plan1(&s, &p, &a) == 1 && a.last_activity_ms == s.started_ms,
	     "no activity: idle since start");
	T_STREQ(a.message, "idle 114 min > timeout 50 min; no activity since "
		"start at 09:00", "no activity message");
	s.started_ms = now - 10 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "no activity, started 10 min ago: kept");
	s.started_ms = 0;
	T_OK(plan1(&s, &p, &a) == 0, "nothing known at all: kept");

	/* Long ago: the date is shown. */
	s.started_ms = at("2026-08-20T23:10:00Z");
	T_OK(plan1(&s, &p, &a) == 1, "started days ago");
	T_STREQ(a.message, "idle 35 h > timeout 50 min; no activity since "
		"start at 2026-08-20 23:10", "another day shows the date");
	s.started_ms = now - 5 * DAY;
	p.timeout_s = 2 * 86400;
	T_OK(plan1(&s, &p, &a) == 1, "5 d idle");
	T_STREQ(a.message, "idle 5 d > timeout 2 d; no activity since start "
		"at 2026-08-17 10:54", "days");
	p.timeout_s = 90;
	s.started_ms = now - 100 * 1000;
	T_OK(plan1(&s, &p, &a) == 1, "100 s idle");
	T_STREQ(a.message, "idle 100 s > timeout 90 s; no activity since start "
		"at 10:52", "seconds");
}

static void
test_clock_skew(void)
{
	struct culler_policy p;
	struct culler_server s = srv("carol", now - 5 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	s.client_ms = now + HOUR;
	T_OK(plan1(&s, &p, &a) == 0, "browser activity in the future: kept");
	s.client_ms = 0;
	s.server_ms = now + 10 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "server clock ahead: kept");
	s.server_ms = 0;
	s.started_ms = now + HOUR;
	T_OK(plan1(&s, &p, &a) == 0, "started in the future: kept");
	p.max_age_s = 1;
	T_OK(plan1(&s, &p, &a) == 0, "started in the future: age 0, kept");

	/* Future activity never gives a negative idle time: with timeout 1 s
	 * a server active "in an hour" is idle 0 s and kept. */
	p.max_age_s = 0;
	p.timeout_s = 1;
	s.started_ms = now - HOUR;
	s.client_ms = now + HOUR;
	T_OK(plan1(&s, &p, &a) == 0, "future activity counts as now");
}

static void
test_pending_admin(void)
{
	struct culler_policy p;
	struct culler_server s = srv("dave", now - 10 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	p.max_age_s = 3600;
	s.pending = 1;
	T_OK(plan1(&s, &p, &a) == 0, "pending server skipped (idle, old)");
	s.pending = 0;
	s.admin = 1;
	p.cull_admins = 0;
	T_OK(plan1(&s, &p, &a) == 0, "admin kept when cull_admins=0");
	p.cull_admins = 1;
	T_OK(plan1(&s, &p, &a) == 1, "admin culled when cull_admins=1");
}

static void
test_max_age(void)
{
	struct culler_policy p;
	struct culler_server s = srv("erin", now - 25 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	p.max_age_s = 24 * 3600;
	s.client_ms = now;
	s.kernel_busy = 1;
	s.kernel_seen_ms = now;
	T_OK(plan1(&s, &p, &a) == 1 && a.reason == CULL_MAX_AGE,
	     "max age culls an active server");
	T_STREQ(a.message, "running 25 h > max age 24 h", "max age message");
	T_STREQ(a.label, "max_age", "max age label");
	T_OK(a.idle_s == 25 * 3600 && a.limit_s == 24 * 3600,
	     "max age: idle_s holds the age");
	s.started_ms = now - 24 * HOUR + 1000;
	T_OK(plan1(&s, &p, &a) == 0, "just under max age: kept");
	s.client_ms = 0;
	s.kernel_busy = 0;
	s.started_ms = now - 30 * HOUR;
	T_OK(plan1(&s, &p, &a) == 1 && a.reason == CULL_MAX_AGE,
	     "idle and too old: max age wins");
	p.max_age_s = 0;
	s.started_ms = now - 1000 * HOUR;
	s.client_ms = now;
	T_OK(plan1(&s, &p, &a) == 0, "max age 0 is off");
}

static void
test_profile_override(void)
{
	struct culler_profile_timeout o[] = {
		{ "gpu", 1800 }, { "long", 7200 }, { "zero", 0 }, { NULL, 5 },
	};
	struct culler_policy p;
	struct culler_server s = srv("fred", now - 5 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	p.profile_timeouts = o;
	p.nprofile_timeouts = 4;
	s.client_ms = now - 40 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "40 min idle kept under default 50 min");
	snprintf(s.profile, sizeof(s.profile), "gpu");
	T_OK(plan1(&s, &p, &a) == 1 && a.limit_s == 1800,
	     "shorter profile timeout culls it");
	T_STREQ(a.message, "idle 40 min > timeout 30 min; last activity: "
		"browser at 10:14", "override in the message");
	snprintf(s.profile, sizeof(s.profile), "long");
	s.client_ms = now - 100 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "longer profile timeout keeps it");
	s.client_ms = now - 121 * MIN;
	T_OK(plan1(&s, &p, &a) == 1, "past the longer timeout");
	T_STREQ(a.message, "idle 2 h >= timeout 2 h; last activity: browser at "
		"08:53", "hours");
	snprintf(s.profile, sizeof(s.profile), "zero");
	s.client_ms = now - 40 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "override 0 means the default");
	snprintf(s.profile, sizeof(s.profile), "other");
	T_OK(plan1(&s, &p, &a) == 0, "unknown profile: default");
}

static void
test_kernel(void)
{
	struct culler_policy p;
	struct culler_server s = srv("gina", now - 5 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	s.client_ms = now - 2 * HOUR;
	s.kernel_busy = 1;
	s.kernel_seen_ms = now - MIN;
	T_OK(plan1(&s, &p, &a) == 0, "busy kernel keeps it");
	p.kernel_busy_counts = 0;
	T_OK(plan1(&s, &p, &a) == 1, "busy kernel ignored when off");
	p.kernel_busy_counts = 1;
	s.kernel_busy = 0;
	T_OK(plan1(&s, &p, &a) == 1, "idle kernel's time does not count");

	s.kernel_busy = 1;
	s.kernel_seen_ms = at("2026-08-22T10:02:00Z");
	T_OK(plan1(&s, &p, &a) == 1, "busy long ago");
	T_STREQ(a.message, "idle 52 min > timeout 50 min; last activity: "
		"kernel busy at 10:02", "the issue's example");

	s.kernel_busy = 0;
	s.server_ms = at("2026-08-22T09:30:00Z");
	T_OK(plan1(&s, &p, &a) == 1, "server activity");
	T_STREQ(a.message, "idle 84 min > timeout 50 min; last activity: "
		"notebook server at 09:30", "server message");
	s.server_ms = now - 5 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "recent server activity keeps it");
}

static void
test_websockets(void)
{
	struct culler_policy p;
	struct culler_server s = srv("hank", now - 5 * HOUR);
	struct culler_action a;

	culler_policy_init(&p);
	s.open_websockets = 2;
	s.proxy_ms = now - MIN;	/* kernel output flowing to the tab */
	s.client_ms = now - 2 * HOUR;
	T_OK(plan1(&s, &p, &a) == 1, "open websockets, no client traffic: "
	     "culled by default");
	T_STREQ(a.message, "idle 2 h > timeout 50 min; last activity: browser "
		"at 08:54", "browser message");
	p.websockets_count = 1;
	T_OK(plan1(&s, &p, &a) == 0, "kept when websockets count");
	s.open_websockets = 0;
	T_OK(plan1(&s, &p, &a) == 0, "websockets_count: proxy traffic counts");
	s.proxy_ms = now - 3 * HOUR;
	T_OK(plan1(&s, &p, &a) == 1, "nothing open, old traffic: culled");
	s.proxy_ms = now - 55 * MIN;
	s.client_ms = 0;
	T_OK(plan1(&s, &p, &a) == 1, "websockets_count, proxy record");
	T_STREQ(a.message, "idle 55 min > timeout 50 min; last activity: "
		"proxy traffic at 09:59", "proxy message");
	p.websockets_count = 0;
	s.open_websockets = 1;
	s.proxy_ms = now;
	s.client_ms = now - 10 * MIN;
	T_OK(plan1(&s, &p, &a) == 0, "client traffic keeps it by default");
}

static void
test_plan_many(void)
{
	struct culler_policy p;
	struct culler_server s[4];
	struct culler_action *a = (void *)1;
	size_t n = 7;

	culler_policy_init(&p);
	s[0] = srv("s0", now - 2 * HOUR);
	s[1] = srv("s1", now - 2 * HOUR);
	s[1].client_ms = now;
	s[2] = srv("s2", now - 2 * HOUR);
	s[3] = srv("s3", now - 2 * HOUR);
	s[3].pending = 1;
	T_OK(culler_plan(s, 4, &p, now, &a, &n) == 0 && n == 2 &&
	     strcmp(a[0].user, "s0") == 0 && strcmp(a[1].user, "s2") == 0,
	     "several servers, actions in input order");
	free(a);
	s[0].client_ms = s[2].client_ms = now;
	T_OK(culler_plan(s, 4, &p, now, &a, &n) == 0 && n == 0 && !a,
	     "nothing to do: NULL, 0");
	T_OK(culler_plan(NULL, 0, &p, now, &a, &n) == 0 && n == 0 && !a,
	     "no servers");
	a = (void *)1;
	T_OK(culler_plan(NULL, 3, &p, now, &a, &n) < 0 && !a && n == 0,
	     "missing servers: -1, out cleared");
	T_OK(culler_plan(s, 4, NULL, now, &a, &n) < 0 && !a && n == 0,
	     "missing policy: -1");
	T_OK(culler_plan(s, 4, &p, now, NULL, &n) < 0, "missing out: -1");
}

static struct culler_user
usr(const char *name, int64_t created, int64_t last)
{
	struct culler_user u;

	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "%s", name);
	u.created_ms = created;
	u.last_activity_ms = last;
	return u;
}

static void
test_users(void)
{
	struct culler_policy p;
	struct culler_user u[8];
	struct culler_action *a = NULL;
	size_t n = 0;

	culler_policy_init(&p);
	u[0] = usr("gone", now - 200 * DAY, now - 91 * DAY);
	u[1] = usr("recent", now - 200 * DAY, now - 89 * DAY);
	u[2] = usr("never", now - 95 * DAY, 0);
	u[3] = usr("running", now - 200 * DAY, now - 100 * DAY);
	u[3].has_server = 1;
	u[4] = usr("boss", now - 200 * DAY, now - 100 * DAY);
	u[4].admin = 1;
	u[5] = usr("newbie", now - DAY, 0);
	u[6] = usr("skewed", now - 200 * DAY, now + DAY);
	u[7] = usr("unknown", 0, 0);
	T_OK(culler_plan_users(u, 8, &p, now, &a, &n) == 0 && n == 0 && !a,
	     "user culling off by default");
	p.users_after_s = 90 * 86400;
	T_OK(culler_plan_users(u, 8, &p, now, &a, &n) == 0 && n == 2,
	     "two users to delete");
	if (n == 2) {
		T_STREQ(a[0].user, "gone", "inactive user deleted");
		T_OK(a[0].reason == CULL_USER_INACTIVE &&
		     a[0].limit_s == 90 * 86400, "user reason");
		T_STREQ(a[0].label, "user_inactive", "user label");
		T_STREQ(a[0].message, "no activity for 91 d > 90 d; last "
			"activity: 2026-05-23 10:54", "user message");
		T_STREQ(a[1].user, "never", "never active: creation counts");
		T_STREQ(a[1].message, "no activity for 95 d > 90 d; never "
			"active, created 2026-05-19 10:54",
			"never active message");
	}
	free(a);
	T_OK(culler_plan_users(NULL, 1, &p, now, &a, &n) < 0 && !a,
	     "users: missing input -1");
}

/* ---- culler_pass with fake ops -------------------------------------- */

struct fake {
	struct culler_server *tmpl;	/* started etc. relative to list time */
	size_t n;
	int list_fails;
	long probe_sleep_ms;
	long probe_burn_us;		/* CPU each probe uses */
	atomic_int inflight, max_inflight, probes, stops, lists;
	atomic_int in_list, max_in_list, passes_done;
	pthread_mutex_t lock;
	char stopped[64][USER_NAME_MAX + 1];
	enum culler_reason reasons[64];
	int nstopped;
	struct culler_user *users;
	size_t nusers;
	char deleted[8][USER_NAME_MAX + 1];
	int ndeleted;
	int64_t listed_us;		/* when the last list returned (mono) */
	int64_t probe_at_us[64];	/* when each probe began (mono) */
	atomic_int nprobe_at;
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int
fake_list(void *ctx, struct culler_server **out, size_t *n)
{
	struct fake *f = ctx;
	int in = atomic_fetch_add(&f->in_list, 1) + 1, max;

	max = atomic_load(&f->max_in_list);
	while (in > max &&
	       !atomic_compare_exchange_weak(&f->max_in_list, &max, in))
		;
	atomic_fetch_add(&f->lists, 1);
	sleep_ms(5);
	atomic_fetch_sub(&f->in_list, 1);
	if (f->list_fails)
		return -1;
	*out = malloc(f->n * sizeof(**out) + 1);
	memcpy(*out, f->tmpl, f->n * sizeof(**out));
	*n = f->n;
	f->listed_us = time_mono_us();
	return 0;
}

static int
fake_probe(void *ctx, const char *user, const char *server,
	   int64_t *server_ms, int *kernel_busy)
{
	struct fake *f = ctx;
	int in = atomic_fetch_add(&f->inflight, 1) + 1, max, rc = 0;
	int k = atomic_fetch_add(&f->nprobe_at, 1);

	if (k < 64)
		f->probe_at_us[k] = time_mono_us();
	max = atomic_load(&f->max_inflight);
	while (in > max &&
	       !atomic_compare_exchange_weak(&f->max_inflight, &max, in))
		;
	atomic_fetch_add(&f->probes, 1);
	if (server == NULL || *server)
		rc = -1;	/* the fake has default servers only */
	for (int64_t c0 = time_thread_cpu_us();
	     time_thread_cpu_us() - c0 < f->probe_burn_us;)
		;
	sleep_ms(strcmp(user, "slow") == 0 ? 150 : f->probe_sleep_ms);
	if (strncmp(user, "active", 6) == 0 || strcmp(user, "slow") == 0 ||
	    strcmp(user, "old") == 0)
		*server_ms = time_now_ms() - 1000;
	else if (strncmp(user, "busy", 4) == 0)
		*kernel_busy = 1;
	else if (strncmp(user, "bad", 3) == 0)
		rc = -1;
	atomic_fetch_sub(&f->inflight, 1);
	return rc;
}

static int
fake_stop(void *ctx, const struct culler_action *a)
{
	struct fake *f = ctx;

	atomic_fetch_add(&f->stops, 1);
	if (strcmp(a->user, "nostop") == 0)
		return -1;
	pthread_mutex_lock(&f->lock);
	if (f->nstopped < 64) {
		snprintf(f->stopped[f->nstopped], USER_NAME_MAX + 1, "%s",
			 a->user);
		f->reasons[f->nstopped++] = a->reason;
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int
fake_list_users(void *ctx, struct culler_user **out, size_t *n)
{
	struct fake *f = ctx;

	*out = malloc(f->nusers * sizeof(**out) + 1);
	memcpy(*out, f->users, f->nusers * sizeof(**out));
	*n = f->nusers;
	return 0;
}

static int
fake_delete_user(void *ctx, const struct culler_action *a)
{
	struct fake *f = ctx;

	pthread_mutex_lock(&f->lock);
	if (f->ndeleted < 8)
		snprintf(f->deleted[f->ndeleted++], USER_NAME_MAX + 1, "%s",
			 a->user);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void
fake_pass_done(void *ctx, const struct culler_pass_stats *st)
{
	struct fake *f = ctx;

	(void)st;
	atomic_fetch_add(&f->passes_done, 1);
}

static void
fake_init(struct fake *f, struct culler_server *tmpl, size_t n)
{
	memset(f, 0, sizeof(*f));
	f->tmpl = tmpl;
	f->n = n;
	f->probe_sleep_ms = 10;
	pthread_mutex_init(&f->lock, NULL);
}

static struct culler_ops
fake_ops(struct fake *f)
{
	struct culler_ops ops = {
		.list = fake_list, .probe = fake_probe, .stop = fake_stop,
		.ctx = f,
	};

	return ops;
}

static int
was_stopped(struct fake *f, const char *user, enum culler_reason r)
{
	for (int i = 0; i < f->nstopped; i++)
		if (strcmp(f->stopped[i], user) == 0)
			return f->reasons[i] == r;
	return 0;
}

static void
test_pass(void)
{
	struct culler_server s[32];
	struct culler_user users[2];
	struct culler_policy p;
	struct culler_pass_stats st;
	struct culler_ops ops;
	struct fake f;
	int64_t t = time_now_ms();
	size_t n = 0;
	char name[32];

	/* 20 idle for 3 h: 5 whose server says active, 3 with a busy
	 * kernel, 2 whose probe fails, 1 whose stop fails. */
	for (int i = 0; i < 20; i++) {
		const char *kind = i < 5 ? "active" : i < 8 ? "busy" :
		    i < 10 ? "bad" : "idle";

		snprintf(name, sizeof(name), "%s%02d", kind, i);
		s[n++] = srv(i == 19 ? "nostop" : name, t - 3 * HOUR);
	}
	s[n++] = srv("pending", t - 3 * HOUR);
	s[n - 1].pending = 1;
	s[n++] = srv("admin", t - 3 * HOUR);
	s[n - 1].admin = 1;
	s[n++] = srv("old", t - 30 * HOUR);	/* probe: active */
	s[n++] = srv("slow", t - 3 * HOUR);	/* answers after 150 ms */
	s[n++] = srv("fresh", t - 3 * HOUR);
	s[n - 1].client_ms = t;
	fake_init(&f, s, n);
	ops = fake_ops(&f);
	culler_policy_init(&p);
	p.max_age_s = 24 * 3600;
	p.cull_admins = 0;

	T_OK(culler_pass(&ops, &p, 4, 100, 0, &st) == 0, "pass runs");
	T_OK(atomic_load(&f.max_inflight) <= 4,
	     "never more than 4 probes at once (saw %d)",
	     atomic_load(&f.max_inflight));
	T_OK(atomic_load(&f.max_inflight) >= 2, "probes do run in parallel");
	T_OK(st.servers == n, "stats: servers %zu", st.servers);
	T_OK(atomic_load(&f.probes) == (int)n - 2 && st.probed == n - 2,
	     "pending and excluded admin not probed (%d, %zu)",
	     atomic_load(&f.probes), st.probed);
	T_OK(st.probe_failures == 3, "2 failed + 1 slow probe counted (%zu)",
	     st.probe_failures);
	/* culled idle: 10 idle (incl. nostop, failed) + 2 bad + slow. */
	T_OK(atomic_load(&f.stops) == 14, "stop called per action (%d)",
	     atomic_load(&f.stops));
	T_OK(st.culled[CULL_IDLE] == 12 && st.culled[CULL_MAX_AGE] == 1 &&
	     st.stop_failures == 1 && st.culled[CULL_USER_INACTIVE] == 0,
	     "stats by reason (%zu idle, %zu max age, %zu failures)",
	     st.culled[CULL_IDLE], st.culled[CULL_MAX_AGE], st.stop_failures);
	T_OK(was_stopped(&f, "old", CULL_MAX_AGE), "old culled by max age");
	T_OK(was_stopped(&f, "bad08", CULL_IDLE), "failed probe: judged on "
	     "the hub's record");
	T_OK(was_stopped(&f, "slow", CULL_IDLE), "late probe result dropped");
	T_OK(was_stopped(&f, "idle10", CULL_IDLE), "idle culled");
	T_OK(!was_stopped(&f, "active00", CULL_IDLE) &&
	     !was_stopped(&f, "busy05", CULL_IDLE) &&
	     !was_stopped(&f, "fresh", CULL_IDLE) &&
	     !was_stopped(&f, "pending", CULL_IDLE) &&
	     !was_stopped(&f, "admin", CULL_IDLE),
	     "active, busy, fresh, pending, admin kept");
	T_OK(st.duration_ms >= 150 && st.duration_ms < 5000,
	     "duration measured (%lld ms)", (long long)st.duration_ms);

	/* Concurrency 1: strictly one at a time. No probe op: no probes. */
	fake_init(&f, s, n);
	T_OK(culler_pass(&ops, &p, 1, 0, 0, &st) == 0 &&
	     atomic_load(&f.max_inflight) == 1, "concurrency 1");
	T_OK(st.probe_failures == 2, "no timeout: slow result kept");
	fake_init(&f, s, n);
	ops.probe = NULL;
	T_OK(culler_pass(&ops, &p, 4, 100, 0, &st) == 0 && st.probed == 0 &&
	     atomic_load(&f.probes) == 0, "no probe op: hub record only");
	ops = fake_ops(&f);

	/* Listing fails: nothing done. */
	fake_init(&f, s, n);
	f.list_fails = 1;
	T_OK(culler_pass(&ops, &p, 4, 100, 0, &st) < 0 &&
	     atomic_load(&f.stops) == 0, "list failure: -1, no stops");
	T_OK(culler_pass(NULL, &p, 4, 100, 0, &st) < 0, "no ops: -1");

	/* Users, after the servers. */
	fake_init(&f, s, 0);
	users[0] = usr("leaver", t - 400 * DAY, t - 100 * DAY);
	users[1] = usr("stayer", t - 400 * DAY, t - DAY);
	f.users = users;
	f.nusers = 2;
	ops.list_users = fake_list_users;
	ops.delete_user = fake_delete_user;
	T_OK(culler_pass(&ops, &p, 4, 100, 0, &st) == 0 &&
	     st.culled[CULL_USER_INACTIVE] == 0, "users off: none deleted");
	p.users_after_s = 90 * 86400;
	T_OK(culler_pass(&ops, &p, 4, 100, 0, &st) == 0 &&
	     st.culled[CULL_USER_INACTIVE] == 1 && f.ndeleted == 1 &&
	     strcmp(f.deleted[0], "leaver") == 0, "inactive user deleted");
}

static void
test_start_stop(void)
{
	struct culler_server s[3];
	struct culler_policy p;
	struct culler_pass_stats st;
	struct culler_ops ops;
	struct culler *c;
	struct fake f;
	struct err e;
	int64_t t = time_now_ms(), t0;
	long passes = 0;

	s[0] = srv("idle0", t - 3 * HOUR);
	s[1] = srv("active1", t - 3 * HOUR);
	s[2] = srv("idle2", t - 3 * HOUR);
	fake_init(&f, s, 3);
	ops = fake_ops(&f);
	ops.pass_done = fake_pass_done;
	culler_policy_init(&p);
	T_OK(culler_start(&ops, &p, 0, 2, 100, 0, &e) == NULL &&
	     e.code == ERR_INVALID, "every 0 refused");
	c = culler_start(&ops, &p, 1, 2, 100, 0, &e);
	T_OK(c != NULL, "culler starts");
	if (!c)
		return;
	t0 = time_mono_ms();
	while (time_mono_ms() - t0 < 4000 &&
	       (passes = culler_passes(c, &st)) < 2)
		sleep_ms(10);
	T_OK(passes >= 2, "two passes within 4 s (%ld)", passes);
	T_OK(st.servers == 3 && st.culled[CULL_IDLE] == 2,
	     "last pass stats");
	T_OK(atomic_load(&f.max_in_list) == 1, "passes never overlap");
	t0 = time_mono_ms();
	culler_stop(c);
	T_OK(time_mono_ms() - t0 < 200, "stop within 200 ms (%lld ms)",
	     (long long)(time_mono_ms() - t0));
	T_OK(atomic_load(&f.passes_done) >= 2, "pass_done called");
	culler_stop(NULL);

	/* First pass at start; stop right after it, while waiting. */
	fake_init(&f, s, 3);
	p.timeout_s = 3600 * 10;
	c = culler_start(&ops, &p, 300, 2, 100, 0, &e);
	t0 = time_mono_ms();
	while (time_mono_ms() - t0 < 2000 && culler_passes(c, NULL) < 1)
		sleep_ms(5);
	T_OK(culler_passes(c, &st) == 1 && st.culled[CULL_IDLE] == 0,
	     "first pass at start, with the policy given");
	p.timeout_s = 60;
	culler_set_policy(c, &p);
	t0 = time_mono_ms();
	culler_stop(c);
	T_OK(time_mono_ms() - t0 < 200, "stop wakes a 300 s sleep");
	T_OK(atomic_load(&f.lists) == 1, "no second pass before every_s");
}

/* s[0..n) started at started_ms, named prefix00, prefix01, ... */
static void
servers(struct culler_server *s, int n, const char *prefix,
	int64_t started_ms)
{
	char name[32];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%02d", prefix, i);
		s[i] = srv(name, started_ms);
	}
}

/* Stop during a long pass: no new probes or stops after it. */
static void
test_stop_mid_pass(void)
{
	struct culler_server s[40];
	struct culler_profile_timeout o[] = { { "x", 60 } };
	struct culler_policy p;
	struct culler_ops ops;
	struct culler *c;
	struct fake f;
	struct err e;
	int64_t t = time_now_ms(), t0;

	servers(s, 40, "idle", t - 3 * HOUR);
	fake_init(&f, s, 40);
	f.probe_sleep_ms = 50;
	ops = fake_ops(&f);
	culler_policy_init(&p);
	p.profile_timeouts = o;
	p.nprofile_timeouts = 1;
	c = culler_start(&ops, &p, 60, 1, 1000, 0, &e);
	sleep_ms(120);
	t0 = time_mono_ms();
	culler_stop(c);
	T_OK(time_mono_ms() - t0 < 200, "stop mid-pass within 200 ms");
	T_OK(atomic_load(&f.probes) < 10 && atomic_load(&f.stops) == 0,
	     "a cancelled pass stops nothing (%d probes)",
	     atomic_load(&f.probes));
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Were the probes paced gap_us apart: did the k-th to start (from 0)
 * start no earlier than k * gap_us after listing? (The promise: a late
 * probe does not push the later ones back, so two may start closer.) */
static int
paced(struct fake *f, int64_t gap_us)
{
	int n = atomic_load(&f->nprobe_at), m = n < 64 ? n : 64;

	qsort(f->probe_at_us, (size_t)m, sizeof(int64_t), cmp_i64);
	for (int k = 0; k < m; k++)
		if (f->probe_at_us[k] - f->listed_us < (int64_t)k * gap_us) {
			fprintf(stderr, "probe %d of %d started %lld us after "
				"listing, before its turn at %lld us\n", k, m,
				(long long)(f->probe_at_us[k] - f->listed_us),
				(long long)k * gap_us);
			return 0;
		}
	return m > 0;
}

/* Probes paced: at most probe_rate starts a second, whatever the
 * concurrency; the timer thread fits them into half of every_s. */
static void
test_pacing(void)
{
	struct culler_server s[40];
	struct culler_policy p;
	struct culler_pass_stats st;
	struct culler_ops ops;
	struct culler *c;
	struct fake f;
	struct err e;
	int64_t t = time_now_ms(), t0;

	servers(s, 40, "active", t - 3 * HOUR);
	/* 11 probes at 50 a second on 4 threads: 20 ms apart, 200 ms in
	 * all; unpaced they would overlap 4 at a time */
	fake_init(&f, s, 11);
	f.probe_sleep_ms = 1;
	ops = fake_ops(&f);
	culler_policy_init(&p);
	T_OK(culler_pass(&ops, &p, 4, 1000, 50, &st) == 0 && st.probed == 11,
	     "paced pass probes all 11 (%zu)", st.probed);
	T_OK(paced(&f, 20000), "probe k starts at 20 ms * k or later");
	T_OK(st.duration_ms >= 200 && st.duration_ms < 2000,
	     "pass spans the 10 gaps (%lld ms)", (long long)st.duration_ms);
	T_OK(atomic_load(&f.max_inflight) == 1, "one probe at a time when "
	     "each is shorter than the gap (%d)", atomic_load(&f.max_inflight));
	/* slow probes: the rate limits starts, concurrency what runs */
	fake_init(&f, s, 11);
	f.probe_sleep_ms = 100;
	T_OK(culler_pass(&ops, &p, 4, 1000, 50, &st) == 0 &&
	     atomic_load(&f.max_inflight) >= 3 &&
	     atomic_load(&f.max_inflight) <= 4, "slow probes overlap up to "
	     "the concurrency (%d)", atomic_load(&f.max_inflight));
	T_OK(paced(&f, 20000), "and still start 20 ms apart");
	/* rate 0: no pacing */
	fake_init(&f, s, 11);
	f.probe_sleep_ms = 20;
	T_OK(culler_pass(&ops, &p, 4, 1000, 0, &st) == 0 &&
	     atomic_load(&f.max_inflight) == 4 && st.duration_ms < 150,
	     "rate 0: a burst on 4 threads (%lld ms)",
	     (long long)st.duration_ms);
	/* the pass counts the CPU its threads use: 11 probes of 4 ms */
	fake_init(&f, s, 11);
	f.probe_sleep_ms = 0;
	f.probe_burn_us = 4000;
	T_OK(culler_pass(&ops, &p, 4, 1000, 0, &st) == 0 &&
	     st.cpu_us >= 44000 && st.cpu_us < 44000 + 200000,
	     "pass CPU: 11 x 4 ms burnt, %lld us counted",
	     (long long)st.cpu_us);
	/* the timer thread: 1 a second for 11 servers would take 10 s, but
	 * every_s = 1 fits them into 0.5 s (50 ms apart) */
	fake_init(&f, s, 11);
	f.probe_sleep_ms = 1;
	c = culler_start(&ops, &p, 1, 4, 1000, 1, &e);
	T_OK(c != NULL, "paced culler starts");
	if (!c)
		return;
	t0 = time_mono_ms();
	while (time_mono_ms() - t0 < 4000 && culler_passes(c, &st) < 1)
		sleep_ms(10);
	culler_stop(c);
	T_OK(st.probed == 11 && st.duration_ms >= 490 &&
	     st.duration_ms < 1500, "a slow rate rises to fit half of "
	     "every_s (%zu probed in %lld ms)", st.probed,
	     (long long)st.duration_ms);
	T_OK(paced(&f, 50000), "starts 50 ms apart");
	/* a stop while a paced pass waits for a probe's turn */
	fake_init(&f, s, 40);
	c = culler_start(&ops, &p, 60, 4, 1000, 1, &e);
	sleep_ms(120);
	t0 = time_mono_ms();
	culler_stop(c);
	T_OK(time_mono_ms() - t0 < 200, "stop while pacing within 200 ms "
	     "(%lld ms)", (long long)(time_mono_ms() - t0));
	T_OK(atomic_load(&f.probes) == 1 && atomic_load(&f.stops) == 0,
	     "one probe started (1 s apart), nothing stopped (%d probes)",
	     atomic_load(&f.probes));
}

int
main(void)
{
	now = at("2026-08-22T10:54:00Z");
	log_set_level(LOG_ERROR);
	test_defaults();
	test_idle();
	test_null_activity();
	test_clock_skew();
	test_pending_admin();
	test_max_age();
	test_profile_override();
	test_kernel();
	test_websockets();
	test_plan_many();
	test_named();
	test_users();
	test_pass();
	test_start_stop();
	test_stop_mid_pass();
	test_pacing();
	return t_done();
}
