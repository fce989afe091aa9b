/*
 * hub.c - hub-wide helpers: the audit log and the health check, whose
 * database ping runs once a second on its own thread.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "hub.h"

void
hub_audit(struct hub *h, const char *actor, const char *action,
	  const char *target, const char *detail, const char *ip)
{
	struct err e = { 0 };

	if (store_audit(h->store, actor ? actor : "", action,
			target ? target : "", detail, ip ? ip : "", &e) < 0)
		log_event(LOG_WARN, "audit.failed", "action=%s target=%s err=%s",
			  action, target ? target : "", e.msg);
}

static void
health_ping(struct hub *h)
{
	struct err e = { 0 };
	int ok = store_ping(h->store, &e) == 0;

	pthread_mutex_lock(&h->health_lock);
	h->health_ok = ok;
	h->health_checked_ms = time_mono_ms();
	snprintf(h->health_msg, sizeof(h->health_msg), "%s", ok ? "ok" : e.msg);
	pthread_mutex_unlock(&h->health_lock);
}

/* Pings the database every second, so that /hub/health answers from
 * memory and never waits for PostgreSQL (a slow database must not make
 * the health check slow, only say so). */
static void *
health_loop(void *arg)
{
	struct hub *h = arg;

	while (!h->stopping) {
		health_ping(h);
		for (int i = 0; i < 10 && !h->stopping; i++)
			usleep(100 * 1000);
	}
	return NULL;
}

int
hub_health_start(struct hub *h, struct err *e)
{
	if (pthread_create(&h->health_thread, NULL, health_loop, h) != 0)
		return err_set(e, ERR_INTERNAL, "cannot start the health "
			       "thread");
	h->health_started = 1;
	return 0;
}

void
hub_health_stop(struct hub *h)
{
	if (h->health_started)
		pthread_join(h->health_thread, NULL);
	h->health_started = 0;
}

int
hub_health(struct hub *h, char *msg, size_t size)
{
	int ok;

	pthread_mutex_lock(&h->health_lock);
	if (h->health_checked_ms == 0) {	/* before the first ping */
		pthread_mutex_unlock(&h->health_lock);
		health_ping(h);
		pthread_mutex_lock(&h->health_lock);
	}
	ok = h->health_ok;
	snprintf(msg, size, "%s", h->health_msg);
	pthread_mutex_unlock(&h->health_lock);
	return ok;
}
