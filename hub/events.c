/*
 * events.c - the progress stream, GET /hub/api/users/<name>/server/progress
 * (text/event-stream), as libmicrohttpd responses.
 *
 * A listener replays its start's progress events (progress.c) and, with
 * nothing to read, is suspended and resumed by the next event (events_wake,
 * registered with progress.c) or a keepalive tick (events_keepalive), so
 * it holds no thread.
 * Ownership: a listener holds a reference to its progress; libmicrohttpd
 * frees the listener with the response (free_listener).
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include "web.h"

/*
 * Suspended listeners: a connection is in this list only while it is
 * suspended, so a resume never touches a closed connection (libmicrohttpd
 * closes a connection only while it is being processed).
 */
#define KEEPALIVE_MS 15000

struct listener {
	struct progress *p;
	struct MHD_Connection *conn;
	size_t next;
	int64_t last_send_ms;
	int suspended;
	struct listener *next_waiting;
	char *extra;	/* a final event made up for this listener */
};

static pthread_mutex_t waiting_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listener *waiting;

/*
 * Listeners are taken off the list under the lock, and resumed after it is
 * released: a suspended connection off the list is ours alone (nobody else
 * resumes it, libmicrohttpd does not close it), and no libmicrohttpd call
 * runs under waiting_lock here, so its internal locks and ours are never
 * taken in opposite orders.
 */
static void
resume_all(int only_stale)
{
	struct listener **pp, *l;
	struct MHD_Connection *stack[64], **conns = stack;
	size_t n = 0, cap = 64;
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&waiting_lock);
	for (pp = &waiting; (l = *pp) != NULL; ) {
		if (only_stale && now - l->last_send_ms < KEEPALIVE_MS) {
			pp = &l->next_waiting;
			continue;
		}
		*pp = l->next_waiting;
		l->suspended = 0;
		if (n == cap) {
			struct MHD_Connection **more = xmalloc(2 * cap *
							       sizeof(*more));

			memcpy(more, conns, n * sizeof(*more));
			if (conns != stack)
				free(conns);
			conns = more;
			cap *= 2;
		}
		conns[n++] = l->conn;
	}
	pthread_mutex_unlock(&waiting_lock);
	for (size_t i = 0; i < n; i++)
		MHD_resume_connection(conns[i]);
	if (conns != stack)
		free(conns);
}

void
events_wake(void)
{
	resume_all(0);
}

void
events_keepalive(void)
{
	resume_all(1);
}

static void
enlist(void *arg)
{
	struct listener *l = arg;

	l->suspended = 1;
	l->next_waiting = waiting;
	waiting = l;
	MHD_suspend_connection(l->conn);
}

static ssize_t
read_events(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct listener *l = cls;
	size_t n;
	int done;

	(void)pos;
	if (l->extra) {
		n = strlen(l->extra);
		if (n > max)
			n = 0;
		memcpy(buf, l->extra, n);
		free(l->extra);
		l->extra = NULL;
		return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = progress_copy(l->p, &l->next, buf, max, &done);
	if (n > 0 || done) {
		l->last_send_ms = time_mono_ms();
		return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (time_mono_ms() - l->last_send_ms >= KEEPALIVE_MS && max > 16) {
		memcpy(buf, ": keepalive\n\n", 13);
		l->last_send_ms = time_mono_ms();
		return 13;
	}
	/* nothing new: suspended until an event or a keepalive tick */
	pthread_mutex_lock(&waiting_lock);
	progress_if_idle(l->p, l->next, enlist, l);
	pthread_mutex_unlock(&waiting_lock);
	return 0;
}

static void
free_listener(void *cls)
{
	struct listener *l = cls;
	struct listener **pp;

	pthread_mutex_lock(&waiting_lock);
	for (pp = &waiting; *pp; pp = &(*pp)->next_waiting)
		if (*pp == l) {
			*pp = l->next_waiting;
			break;
		}
	pthread_mutex_unlock(&waiting_lock);
	progress_unref(l->p);
	free(l->extra);
	free(l);
}

void
events_progress(struct req *r, const char *name, const char *server)
{
	struct listener *l;
	struct progress *p;
	int exists;

	p = servers_progress_of(r->hub, name, server, &exists);
	if (!exists && *server) {
		req_json_error(r, 404, "%s has no server '%s'", name, server);
		return;
	}
	if (!exists) {
		req_json_error(r, 404, "user %s does not exist", name);
		return;
	}
	l = xcalloc(1, sizeof(*l));
	l->p = p;
	l->conn = r->conn;
	l->last_send_ms = time_mono_ms();
	r->custom = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
	    read_events, l, free_listener);
	MHD_add_response_header(r->custom, "Content-Type", "text/event-stream");
	MHD_add_response_header(r->custom, "Cache-Control", "no-cache");
	MHD_add_response_header(r->custom, "X-Accel-Buffering", "no");
	r->status = 200;
	r->content_type = "text/event-stream";
}
