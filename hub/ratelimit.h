/*
 * ratelimit.h - the failed-login limiter: failures counted per key
 * ("u:<name>", "ip:<address>") inside a fixed window.
 */
#ifndef SWARMHUB_RATELIMIT_H
#define SWARMHUB_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* A limiter allowing max_failures per key (four times that for keys
 * starting "ip:") within window_s seconds. Never NULL (aborts on OOM). */
struct ratelimit *ratelimit_new(long max_failures, long window_s);
/* Frees rl; NULL is a no-op. */
void ratelimit_free(struct ratelimit *rl);
/* Seconds to wait before another try for key, 0 when allowed. */
long ratelimit_wait(struct ratelimit *rl, const char *key, int64_t now_ms);
/* Counts one failure for key at now_ms. */
void ratelimit_fail(struct ratelimit *rl, const char *key, int64_t now_ms);
/* Forgets key's failures (after a successful login). */
void ratelimit_clear(struct ratelimit *rl, const char *key);

#endif
