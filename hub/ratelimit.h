/*
 * ratelimit.h - the failed-login limiter: failures counted per key
 * ("u:<name>", "ip:<address>") inside a fixed window that starts at a
 * key's first failure. Bounded in memory; ratelimit.c says how it stays
 * safe when full. All functions are thread safe.
 */
#ifndef SWARMHUB_RATELIMIT_H
#define SWARMHUB_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* A limiter allowing max_failures per key (four times that for keys
 * starting "ip:") within window_s seconds. Never NULL (aborts on OOM). */
struct ratelimit *ratelimit_new(long max_failures, long window_s);
/* The same with room for at most max_entries keys (tests use small
 * ones; ratelimit_new allows 65,536). */
struct ratelimit *ratelimit_new_bounded(long max_failures, long window_s,
					size_t max_entries);
/* Frees rl; NULL is a no-op. */
void ratelimit_free(struct ratelimit *rl);
/* Seconds to wait before another try for key, 0 when allowed. */
long ratelimit_wait(struct ratelimit *rl, const char *key, int64_t now_ms);
/* Counts one failure for key at now_ms. */
void ratelimit_fail(struct ratelimit *rl, const char *key, int64_t now_ms);
/* Forgets key's failures (after a successful login). */
void ratelimit_clear(struct ratelimit *rl, const char *key);
/*
 * Checks and counts in one step, so that attempts made at the same moment
 * cannot all pass before any is counted: returns the wait like
 * ratelimit_wait, or 0 after counting one failure for key (an attempt is
 * a failure until it is known to be something else).
 */
long ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms);
/* Takes back one failure counted by ratelimit_take (the attempt turned out
 * not to be a failed guess). */
void ratelimit_undo(struct ratelimit *rl, const char *key);

/* Keys held now (expired ones may still be counted until the next call). */
size_t ratelimit_count(struct ratelimit *rl);
/* SipHash-2-4 of msg under the 128-bit key; exposed for its unit test. */
uint64_t ratelimit_siphash(const unsigned char key[16], const void *msg,
			   size_t len);

#endif
