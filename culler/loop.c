/*
 * loop.c - act on the culler's decisions: probe, plan, stop, on a timer.
 *
 * A pass: ops->list -> probe the servers that could be culled on up to
 * `concurrency` threads (each thread takes the next index from an atomic
 * counter; results go to a slot per server, so threads share nothing else),
 * probe i starting no earlier than i / probe_rate seconds into the pass
 * -> culler_plan() at the time probing ended -> ops->stop on the same kind
 * of threads -> users, when enabled. The pass joins every thread it starts.
 * Pacing: a pass's probes are spread out rather than fired in a burst, so
 * that a pass over hundreds of servers never takes the machine's CPU
 * (each probe is a TCP connection through the servers' overlay) from the
 * requests of people; the timer thread bounds the spread to half of
 * CULL_EVERY so passes keep their rhythm however many servers there are.
 * culler_start() runs passes on one thread, so passes never overlap; it
 * sleeps on a condition variable (monotonic clock) that culler_stop()
 * signals, and its stop flag also cancels a pass under way between probes
 * and between stops.
 * Ownership: a pass owns the listed arrays and its plans; struct culler
 * owns copies of the ops and of the policy (profile names included).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "culler.h"

/* ---- a small parallel for ------------------------------------------- */

struct pfor {
	size_t n;
	atomic_size_t next;
	const atomic_int *cancel;	/* NULL: never */
	int64_t start_us, gap_us;	/* item i starts at start + i * gap */
	atomic_llong cpu_us;		/* CPU the threads it started used */
	void (*fn)(void *arg, size_t i);
	void *arg;
};

/* Sleeps until item i's turn, in steps short enough that a cancel is
 * seen within 50 ms. */
static void
wait_turn(const struct pfor *f, size_t i)
{
	int64_t due = f->start_us + (int64_t)i * f->gap_us, now;

	while (!(f->cancel && atomic_load(f->cancel)) &&
	       (now = time_mono_us()) < due) {
		int64_t us = due - now < 50000 ? due - now : 50000;
		struct timespec ts = { .tv_sec = 0,
				       .tv_nsec = (long)(us * 1000) };

		nanosleep(&ts, NULL);
	}
}

static void *
pfor_worker(void *arg)
{
	struct pfor *f = arg;
	size_t i;

	for (;;) {
		if (f->cancel && atomic_load(f->cancel))
			break;
		i = atomic_fetch_add(&f->next, 1);
		if (i >= f->n)
			break;
		if (f->gap_us > 0) {
			wait_turn(f, i);
			if (f->cancel && atomic_load(f->cancel))
				break;
		}
		f->fn(f->arg, i);
	}
	return NULL;
}

/* A thread of pfor_run's own: pfor_worker, then what it used. */
static void *
pfor_thread(void *arg)
{
	struct pfor *f = arg;

	pfor_worker(f);
	atomic_fetch_add(&f->cpu_us, (long long)time_thread_cpu_us());
	return NULL;
}

/* fn(arg, i) for i in [0, n) on at most concurrency threads, the caller's
 * included (so a failing pthread_create only slows it down); item i
 * starts no earlier than gap_us * i after the call (0: at once). Returns
 * the CPU time (us) the threads it started used; the caller's own is
 * the caller's to count. */
static int64_t
pfor_run(size_t n, int concurrency, int64_t gap_us,
	 const atomic_int *cancel, void (*fn)(void *, size_t), void *arg)
{
	struct pfor f = { .n = n, .cancel = cancel, .fn = fn, .arg = arg,
			  .start_us = time_mono_us(),
			  .gap_us = gap_us > 0 ? gap_us : 0 };
	size_t want = concurrency < 1 ? 1 : (size_t)concurrency, started = 0;
	pthread_t *t;

	atomic_init(&f.next, 0);
	atomic_init(&f.cpu_us, 0);
	if (want > n)
		want = n;
	if (want == 0)
		return 0;
	t = xcalloc(want, sizeof(*t));
	while (started + 1 < want &&
	       pthread_create(&t[started], NULL, pfor_thread, &f) == 0)
		started++;
	pfor_worker(&f);
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
	return (int64_t)atomic_load(&f.cpu_us);
}

/* ---- probing -------------------------------------------------------- */

enum probe_state { PROBE_NONE, PROBE_OK, PROBE_FAILED };

struct probe_slot {
	struct culler_server *s;
	enum probe_state state;
	int64_t server_ms;
	int kernel_busy;
	int64_t seen_ms;
};

struct probing {
	const struct culler_ops *ops;
	long timeout_ms;
	struct probe_slot *slots;
};

/* Pacing of a pass's probes. */
struct pace {
	long rate;		/* probe starts per second at most; 0: no limit */
	int64_t window_ms;	/* but all started within this (0: no bound) */
};

/* The gap between probe starts for m probes under pc. */
static int64_t
probe_gap_us(const struct pace *pc, size_t m)
{
	int64_t gap = pc->rate > 0 ? 1000000 / pc->rate : 0;

	if (gap > 0 && pc->window_ms > 0 && m > 1 &&
	    gap * (int64_t)(m - 1) > pc->window_ms * 1000)
		gap = pc->window_ms * 1000 / (int64_t)(m - 1);
	return gap;
}

static void
probe_one(void *arg, size_t i)
{
	struct probing *pr = arg;
	struct probe_slot *sl = &pr->slots[i];
	int64_t t0 = time_mono_ms(), ms;
	int rc;

	rc = pr->ops->probe(pr->ops->ctx, sl->s->user, sl->s->server,
			    &sl->server_ms, &sl->kernel_busy);
	sl->seen_ms = time_now_ms();
	ms = time_mono_ms() - t0;
	sl->state = rc == 0 ? PROBE_OK : PROBE_FAILED;
	if (rc == 0 && pr->timeout_ms > 0 && ms > pr->timeout_ms) {
		log_event(LOG_WARN, "culler.probe_slow", "user=%s ms=%lld "
			  "timeout_ms=%ld", sl->s->user, (long long)ms,
			  pr->timeout_ms);
		sl->state = PROBE_FAILED;
	}
}

/* Could s be culled at all? Others are not worth a request. */
static int
cullable(const struct culler_server *s, const struct culler_policy *p)
{
	return !s->pending && (!s->admin || p->cull_admins);
}

/* Probes the cullable servers of s[0..n) and merges what they say. */
static void
probe_all(const struct culler_ops *ops, const struct culler_policy *p,
	  struct culler_server *s, size_t n, int concurrency,
	  long timeout_ms, const struct pace *pc, const atomic_int *cancel,
	  struct culler_pass_stats *st)
{
	struct probing pr = { .ops = ops, .timeout_ms = timeout_ms };
	size_t m = 0;

	if (!ops->probe || n == 0)
		return;
	pr.slots = xcalloc(n, sizeof(*pr.slots));
	for (size_t i = 0; i < n; i++)
		if (cullable(&s[i], p))
			pr.slots[m++].s = &s[i];
	st->cpu_us += pfor_run(m, concurrency, probe_gap_us(pc, m), cancel,
			       probe_one, &pr);
	for (size_t i = 0; i < m; i++) {
		struct probe_slot *sl = &pr.slots[i];

		if (sl->state == PROBE_NONE)
			continue;	/* cancelled before its turn */
		st->probed++;
		if (sl->state == PROBE_FAILED) {
			st->probe_failures++;
			continue;
		}
		if (sl->server_ms > sl->s->server_ms)
			sl->s->server_ms = sl->server_ms;
		if (sl->kernel_busy) {
			sl->s->kernel_busy = 1;
			sl->s->kernel_seen_ms = sl->seen_ms;
		}
	}
	free(pr.slots);
}

/* ---- stopping ------------------------------------------------------- */

struct acting {
	int (*fn)(void *ctx, const struct culler_action *a);
	void *ctx;
	const struct culler_action *a;
	int *rc;
};

static void
act_one(void *arg, size_t i)
{
	struct acting *ac = arg;

	ac->rc[i] = ac->fn(ac->ctx, &ac->a[i]);
}

/* Runs fn over a[0..n) and counts and logs the outcomes. */
static void
act_all(int (*fn)(void *, const struct culler_action *), void *ctx,
	const struct culler_action *a, size_t n, int concurrency,
	const atomic_int *cancel, struct culler_pass_stats *st)
{
	struct acting ac = { .fn = fn, .ctx = ctx, .a = a };

	if (n == 0)
		return;
	ac.rc = xmalloc(n * sizeof(*ac.rc));
	for (size_t i = 0; i < n; i++)
		ac.rc[i] = 1;	/* not attempted */
	st->cpu_us += pfor_run(n, concurrency, 0, cancel, act_one, &ac);
	for (size_t i = 0; i < n; i++) {
		if (ac.rc[i] == 1)
			continue;
		if (ac.rc[i] == 0) {
			st->culled[a[i].reason]++;
			log_event(LOG_INFO, "culler.cull", "user=%s reason=%s "
				  "why=%s", a[i].user, a[i].label,
				  a[i].message);
		} else {
			st->stop_failures++;
			log_event(LOG_WARN, "culler.cull_failed", "user=%s "
				  "reason=%s", a[i].user, a[i].label);
		}
	}
	free(ac.rc);
}

/* ---- one pass ------------------------------------------------------- */

static int
cancelled(const atomic_int *cancel)
{
	return cancel && atomic_load(cancel);
}

static void
cull_users(const struct culler_ops *ops, const struct culler_policy *p,
	   int concurrency, const atomic_int *cancel,
	   struct culler_pass_stats *st)
{
	struct culler_user *u = NULL;
	struct culler_action *a = NULL;
	size_t n = 0, na = 0;

	if (p->users_after_s <= 0 || !ops->list_users || !ops->delete_user ||
	    cancelled(cancel))
		return;
	if (ops->list_users(ops->ctx, &u, &n) < 0) {
		log_event(LOG_WARN, "culler.list_failed", "what=%s", "users");
		return;
	}
	if (culler_plan_users(u, n, p, time_now_ms(), &a, &na) == 0)
		act_all(ops->delete_user, ops->ctx, a, na, concurrency,
			cancel, st);
	free(a);
	free(u);
}

static void
log_pass(const struct culler_pass_stats *st)
{
	log_event(LOG_INFO, "culler.pass", "servers=%zu probed=%zu "
		  "probe_failures=%zu culled_idle=%zu culled_max_age=%zu "
		  "users_deleted=%zu failures=%zu ms=%lld cpu_ms=%.1f",
		  st->servers, st->probed, st->probe_failures,
		  st->culled[CULL_IDLE], st->culled[CULL_MAX_AGE],
		  st->culled[CULL_USER_INACTIVE], st->stop_failures,
		  (long long)st->duration_ms, (double)st->cpu_us / 1e3);
}

static int
pass(const struct culler_ops *ops, const struct culler_policy *p,
     int concurrency, long probe_timeout_ms, const struct pace *pc,
     const atomic_int *cancel, struct culler_pass_stats *st)
{
	struct culler_server *s = NULL;
	struct culler_action *a = NULL;
	size_t n = 0, na = 0;
	int64_t t0 = time_mono_ms(), cpu0 = time_thread_cpu_us();

	memset(st, 0, sizeof(*st));
	if (ops->list(ops->ctx, &s, &n) < 0) {
		log_event(LOG_WARN, "culler.list_failed", "what=%s", "servers");
		return -1;
	}
	st->servers = n;
	probe_all(ops, p, s, n, concurrency, probe_timeout_ms, pc, cancel, st);
	if (!cancelled(cancel) &&
	    culler_plan(s, n, p, time_now_ms(), &a, &na) == 0)
		act_all(ops->stop, ops->ctx, a, na, concurrency, cancel, st);
	free(a);
	free(s);
	cull_users(ops, p, concurrency, cancel, st);
	st->duration_ms = time_mono_ms() - t0;
	st->cpu_us += time_thread_cpu_us() - cpu0;
	log_pass(st);
	return 0;
}

int
culler_pass(const struct culler_ops *ops, const struct culler_policy *p,
	    int concurrency, long probe_timeout_ms, long probe_rate,
	    struct culler_pass_stats *st)
{
	struct culler_pass_stats local;
	struct pace pc = { .rate = probe_rate, .window_ms = 0 };

	if (!ops || !ops->list || !ops->stop || !p)
		return err_set(NULL, ERR_INVALID, "culler: missing argument");
	return pass(ops, p, concurrency, probe_timeout_ms, &pc, NULL,
		    st ? st : &local);
}

/* ---- the timer thread ---------------------------------------------- */

/* A policy with its own copies of the profile overrides. */
struct owned_policy {
	struct culler_policy p;
	struct culler_profile_timeout *o;
	char **names;
};

static void
policy_dup(struct owned_policy *d, const struct culler_policy *s)
{
	size_t n = s->profile_timeouts ? s->nprofile_timeouts : 0;

	d->p = *s;
	d->p.nprofile_timeouts = n;
	d->o = n ? xcalloc(n, sizeof(*d->o)) : NULL;
	d->names = n ? xcalloc(n, sizeof(*d->names)) : NULL;
	for (size_t i = 0; i < n; i++) {
		d->names[i] = xstrdup(s->profile_timeouts[i].profile ?
				      s->profile_timeouts[i].profile : "");
		d->o[i].profile = d->names[i];
		d->o[i].timeout_s = s->profile_timeouts[i].timeout_s;
	}
	d->p.profile_timeouts = d->o;
}

static void
policy_release(struct owned_policy *d)
{
	for (size_t i = 0; i < d->p.nprofile_timeouts; i++)
		free(d->names[i]);
	free(d->names);
	free(d->o);
	memset(d, 0, sizeof(*d));
}

struct culler {
	struct culler_ops ops;
	long every_ms;
	int concurrency;
	long probe_timeout_ms;
	struct pace pace;
	pthread_t thread;
	pthread_mutex_t lock;		/* guards what follows */
	pthread_cond_t wake;		/* CLOCK_MONOTONIC */
	atomic_int stopping;		/* also the passes' cancel flag */
	struct owned_policy policy;
	long passes;
	struct culler_pass_stats last;
};

/* Waits on c->wake until mono time next_ms or a stop (lock held). */
static void
sleep_until(struct culler *c, int64_t next_ms)
{
	struct timespec ts = { .tv_sec = next_ms / 1000,
			       .tv_nsec = (next_ms % 1000) * 1000000 };

	while (!atomic_load(&c->stopping) && time_mono_ms() < next_ms)
		if (pthread_cond_timedwait(&c->wake, &c->lock, &ts) ==
		    ETIMEDOUT)
			break;
}

static void
run_one(struct culler *c)
{
	struct owned_policy pol;
	struct culler_pass_stats st;

	pthread_mutex_lock(&c->lock);
	policy_dup(&pol, &c->policy.p);
	pthread_mutex_unlock(&c->lock);
	if (pass(&c->ops, &pol.p, c->concurrency, c->probe_timeout_ms,
		 &c->pace, &c->stopping, &st) == 0) {
		pthread_mutex_lock(&c->lock);
		c->last = st;
		c->passes++;
		pthread_mutex_unlock(&c->lock);
		if (c->ops.pass_done)
			c->ops.pass_done(c->ops.ctx, &st);
	}
	policy_release(&pol);
}

static void *
run(void *arg)
{
	struct culler *c = arg;
	int64_t next = time_mono_ms();

	while (!atomic_load(&c->stopping)) {
		run_one(c);
		next += c->every_ms;
		if (next < time_mono_ms())
			next = time_mono_ms();	/* a long pass: no catch-up */
		pthread_mutex_lock(&c->lock);
		sleep_until(c, next);
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

static int
init_sync(struct culler *c)
{
	pthread_condattr_t ca;
	int rc;

	if (pthread_condattr_init(&ca) != 0)
		return -1;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&c->wake, &ca) == 0 ? 0 : -1;
	pthread_condattr_destroy(&ca);
	if (rc == 0 && pthread_mutex_init(&c->lock, NULL) != 0) {
		pthread_cond_destroy(&c->wake);
		rc = -1;
	}
	return rc;
}

struct culler *
culler_start(const struct culler_ops *ops, const struct culler_policy *p,
	     long every_s, int concurrency, long probe_timeout_ms,
	     long probe_rate, struct err *e)
{
	struct culler *c;

	if (!ops || !ops->list || !ops->stop || !p || every_s <= 0) {
		err_set(e, ERR_INVALID, "culler: missing ops or policy, or "
			"CULL_EVERY <= 0");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->ops = *ops;
	c->every_ms = every_s * 1000;
	c->concurrency = concurrency < 1 ? 1 : concurrency;
	c->probe_timeout_ms = probe_timeout_ms;
	c->pace.rate = probe_rate > 0 ? probe_rate : 0;
	/* a pass's probes all start within half the interval, so a rate
	 * too low for the servers there are still leaves room between */
	c->pace.window_ms = every_s * 500;
	atomic_init(&c->stopping, 0);
	policy_dup(&c->policy, p);
	if (init_sync(c) < 0)
		goto fail;
	if (pthread_create(&c->thread, NULL, run, c) != 0) {
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		goto fail;
	}
	return c;
fail:
	err_set(e, ERR_INTERNAL, "culler: cannot start its thread");
	policy_release(&c->policy);
	free(c);
	return NULL;
}

void
culler_set_policy(struct culler *c, const struct culler_policy *p)
{
	struct owned_policy fresh, old;

	policy_dup(&fresh, p);
	pthread_mutex_lock(&c->lock);
	old = c->policy;
	c->policy = fresh;
	pthread_mutex_unlock(&c->lock);
	policy_release(&old);
}

long
culler_passes(struct culler *c, struct culler_pass_stats *last)
{
	long n;

	pthread_mutex_lock(&c->lock);
	n = c->passes;
	if (last)
		*last = c->last;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void
culler_stop(struct culler *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stopping, 1);
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	policy_release(&c->policy);
	free(c);
}
