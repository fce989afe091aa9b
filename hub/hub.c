/*
 * hub.c - hub-wide helpers: the audit log and the cached health check.
 */
#include <stdio.h>
#include <string.h>
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

int
hub_health(struct hub *h, char *msg, size_t size)
{
	struct err e = { 0 };
	int64_t now = time_mono_ms();
	int ok;

	pthread_mutex_lock(&h->health_lock);
	if (h->health_checked_ms == 0 || now - h->health_checked_ms >= 1000) {
		ok = store_ping(h->store, &e) == 0;
		h->health_ok = ok;
		h->health_checked_ms = now;
		snprintf(h->health_msg, sizeof(h->health_msg), "%s",
			 ok ? "ok" : e.msg);
	}
	ok = h->health_ok;
	snprintf(msg, size, "%s", h->health_msg);
	pthread_mutex_unlock(&h->health_lock);
	return ok;
}
