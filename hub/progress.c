/*
 * progress.c - what a server's start has said so far: "data: {...}" events
 * of the JupyterHub progress stream, kept per start in a refcounted struct
 * progress and replayed to every listener, late ones included.
 *
 * The event stream itself (listeners, suspend and resume) is the web
 * side's (events.c); it hears of new events through the wake function it
 * registers here, so this file knows nothing of HTTP.
 * Ownership: a start's job, the server and each listener hold a reference.
 */
#include <stdlib.h>
#include <string.h>
#include "hub.h"

struct progress {
	pthread_mutex_t lock;
	int refs;
	char **events;		/* "data: {...}\n\n" */
	size_t n, cap;
	int done;
	volatile int cancel;	/* a stop asked during this start */
};

static void (*wake)(void);

void
progress_set_wake(void (*fn)(void))
{
	wake = fn;
}

struct progress *
progress_new(void)
{
	struct progress *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->lock, NULL);
	p->refs = 1;
	return p;
}

struct progress *
progress_ref(struct progress *p)
{
	pthread_mutex_lock(&p->lock);
	p->refs++;
	pthread_mutex_unlock(&p->lock);
	return p;
}

void
progress_unref(struct progress *p)
{
	int left;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	left = --p->refs;
	pthread_mutex_unlock(&p->lock);
	if (left)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->events[i]);
	free(p->events);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void
progress_add(struct progress *p, int pct, const char *msg, int kind,
	     const char *url)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_addf(&sb, "data: {\"progress\": %d, \"message\": ", pct);
	sb_add_json(&sb, msg);
	if (kind == 1) {
		sb_adds(&sb, ", \"ready\": true, \"url\": ");
		sb_add_json(&sb, url);
	} else if (kind == 2) {
		sb_adds(&sb, ", \"failed\": true");
	}
	sb_adds(&sb, "}\n\n");
	pthread_mutex_lock(&p->lock);
	if (!p->done) {
		if (p->n == p->cap) {
			p->cap = p->cap * 2 + 8;
			p->events = xrealloc(p->events,
					     p->cap * sizeof(*p->events));
		}
		p->events[p->n++] = sb_detach(&sb, NULL);
		p->done = kind != 0;
	}
	pthread_mutex_unlock(&p->lock);
	sb_release(&sb);
	if (wake)
		wake();
}

volatile int *
progress_cancel_flag(struct progress *p)
{
	return &p->cancel;
}

size_t
progress_copy(struct progress *p, size_t *next, char *buf, size_t max,
	      int *done)
{
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	while (*next < p->n) {
		size_t len = strlen(p->events[*next]);

		if (len > max - n)
			break;
		memcpy(buf + n, p->events[*next], len);
		n += len;
		(*next)++;
	}
	*done = p->done && *next >= p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int
progress_if_idle(struct progress *p, size_t next, void (*fn)(void *),
		 void *arg)
{
	int idle;

	pthread_mutex_lock(&p->lock);
	idle = next >= p->n && !p->done;
	if (idle)
		fn(arg);
	pthread_mutex_unlock(&p->lock);
	return idle;
}
