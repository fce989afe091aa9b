/*
 * ratelimit.c - the failed-login limiter (moved from sessions.c).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define RL_SLOTS 4096

struct rl_slot {
	uint64_t key;
	int64_t window_start_ms;
	long failures;
};

struct ratelimit {
	pthread_mutex_t lock;
	long max_failures;
	int64_t window_ms;
	struct rl_slot slot[RL_SLOTS];
};

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h | 1;
}

struct ratelimit *
ratelimit_new(long max_failures, long window_s)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	pthread_mutex_init(&rl->lock, NULL);
	rl->max_failures = max_failures;
	rl->window_ms = (int64_t)window_s * 1000;
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static struct rl_slot *
slot_for(struct ratelimit *rl, uint64_t k, int64_t now_ms)
{
	struct rl_slot *s = &rl->slot[k % RL_SLOTS];

	if (s->key != k || now_ms - s->window_start_ms >= rl->window_ms) {
		s->key = k;
		s->window_start_ms = now_ms;
		s->failures = 0;
	}
	return s;
}

long
ratelimit_wait(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	struct rl_slot *s;
	long wait = 0;
	/* one address is many people behind a NAT or a proxy */
	long max = rl->max_failures * (strncmp(key, "ip:", 3) == 0 ? 4 : 1);

	pthread_mutex_lock(&rl->lock);
	s = slot_for(rl, key_hash(key), now_ms);
	if (s->failures >= max)
		wait = (long)((s->window_start_ms + rl->window_ms - now_ms +
			       999) / 1000);
	pthread_mutex_unlock(&rl->lock);
	return wait;
}

void
ratelimit_fail(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	pthread_mutex_lock(&rl->lock);
	slot_for(rl, key_hash(key), now_ms)->failures++;
	pthread_mutex_unlock(&rl->lock);
}

void
ratelimit_clear(struct ratelimit *rl, const char *key)
{
	uint64_t k = key_hash(key);

	pthread_mutex_lock(&rl->lock);
	if (rl->slot[k % RL_SLOTS].key == k)
		rl->slot[k % RL_SLOTS].failures = 0;
	pthread_mutex_unlock(&rl->lock);
}
