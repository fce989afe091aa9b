/*
 * ratelimit.c - the failed-login limiter: a bounded map from a key
 * ("u:<name>", "ip:<address>") to the failures counted in its window.
 *
 * Lookup. Keys hash with SipHash-2-4 under a 128-bit key drawn at start,
 * so nobody outside the process can choose names that share a bucket.
 * Buckets chain, and an entry matches only on the full key string (keys
 * longer than RL_KEY_MAX are cut there: two such keys share one counter,
 * which throttles more, never less). A collision therefore never touches
 * another key's counter; the old direct-mapped table reset a slot whenever
 * another key landed on it, which let failures for colliding names wipe
 * alice's count.
 *
 * Expiry. An entry lives for one window from its first failure. Entries
 * sit on an age list in the order their windows began; every call drops
 * the expired ones from its head, and a lookup that finds an expired entry
 * forgets it, so memory follows the failures of the last window.
 *
 * Bound. At most max_entries entries (RL_MAX_ENTRIES: some 7 MB with
 * typical keys, 15 MB with every key at RL_KEY_MAX). A failure for a new
 * key when the map is full, after expired entries are gone, makes room:
 *   1. evict the entry that has used the smallest share of its limit
 *      (failures / limit; ties: the oldest window), kept at the top of a
 *      min-heap, but only while that share is below 1: an entry that is
 *      throttled stays until its window ends, whatever happens;
 *   2. otherwise (every entry is throttled) count the failure on one
 *      shared overflow counter with the per-name limit; while that is over
 *      its limit, every key without an entry of its own is refused.
 * So no one can unblock a throttled name or address before its window
 * ends. Resetting a name that is not yet throttled takes as many failures
 * from other keys as the map holds, each at least at the victim's share of
 * its limit: some 65,000 failed logins, from thousands of addresses, per
 * guess regained. Dropping failures when full would give unlimited
 * guesses; evicting the oldest entry would let max_entries one-failure
 * keys reset any victim. The price of step 2: an attacker who throttles
 * max_entries keys at once (some 260,000 failed logins from 13,000
 * addresses inside one window) also refuses names and addresses that
 * failed nowhere, until the overflow window ends - a denial of login we
 * prefer to unthrottled guessing.
 *
 * Ownership: the limiter owns its entries; callers pass keys by borrowing.
 * One mutex guards everything; every operation is O(log n).
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub.h"

#define RL_MAX_ENTRIES 65536
#define RL_KEY_MAX 127		/* sessions.c builds keys in 128 bytes */

struct rl_entry {
	struct rl_entry *next;		/* bucket chain */
	struct rl_entry *older, *newer;	/* age list, by window start */
	uint64_t hash;
	int64_t start_ms;		/* window start */
	long failures;
	long limit;
	size_t heap_at;			/* index in rl->heap */
	char key[];
};

struct ratelimit {
	pthread_mutex_t lock;
	long max_failures;
	int64_t window_ms;
	unsigned char sipkey[16];
	struct rl_entry **bucket;
	size_t nbuckets;		/* a power of two */
	struct rl_entry **heap;		/* min share of limit first */
	size_t count, max_entries;
	struct rl_entry *oldest, *newest;
	int64_t overflow_start_ms;	/* the shared counter of step 2 */
	long overflow_failures;
};

/* ---- SipHash-2-4 ------------------------------------------------------ */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13) ^ v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17) ^ v[2];
	v[2] = ROTL(v[2], 32);
}

static void
sipblock(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sipround(v);
	sipround(v);
	v[0] ^= m;
}

uint64_t
ratelimit_siphash(const unsigned char key[16], const void *msg, size_t len)
{
	const unsigned char *p = msg;
	uint64_t k0 = le64(key), k1 = le64(key + 8), last;
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
			  k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
	size_t i;

	for (i = 0; i + 8 <= len; i += 8)
		sipblock(v, le64(p + i));
	last = (uint64_t)(len & 0xff) << 56;
	for (size_t j = 0; i + j < len; j++)
		last |= (uint64_t)p[i + j] << (8 * j);
	sipblock(v, last);
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the min-heap of entries by share of their limit ------------------ */
static int
below(const struct rl_entry *a, const struct rl_entry *b)
{
	/* a->failures / a->limit < b->failures / b->limit, in integers */
	long long x = (long long)a->failures * b->limit;
	long long y = (long long)b->failures * a->limit;

	return x < y || (x == y && a->start_ms < b->start_ms);
}

static void
heap_set(struct ratelimit *rl, size_t i, struct rl_entry *en)
{
	rl->heap[i] = en;
	en->heap_at = i;
}

/* Restores heap order around position i after its entry changed. */
static void
heap_fix(struct ratelimit *rl, size_t i)
{
	struct rl_entry *en = rl->heap[i];

	while (i > 0 && below(en, rl->heap[(i - 1) / 2])) {
		heap_set(rl, i, rl->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= rl->count)
			break;
		if (c + 1 < rl->count && below(rl->heap[c + 1], rl->heap[c]))
			c++;
		if (!below(rl->heap[c], en))
			break;
		heap_set(rl, i, rl->heap[c]);
		i = c;
	}
	heap_set(rl, i, en);
}

/* ---- entries ---------------------------------------------------------- */
static void
age_unlink(struct ratelimit *rl, struct rl_entry *en)
{
	if (en->older)
		en->older->newer = en->newer;
	else
		rl->oldest = en->newer;
	if (en->newer)
		en->newer->older = en->older;
	else
		rl->newest = en->older;
	en->older = en->newer = NULL;
}

static void
age_append(struct ratelimit *rl, struct rl_entry *en)
{
	en->older = rl->newest;
	en->newer = NULL;
	if (rl->newest)
		rl->newest->newer = en;
	else
		rl->oldest = en;
	rl->newest = en;
}

static struct rl_entry *
lookup(struct ratelimit *rl, const char *key, uint64_t hash)
{
	struct rl_entry *en = rl->bucket[hash & (rl->nbuckets - 1)];

	while (en && (en->hash != hash || strcmp(en->key, key) != 0))
		en = en->next;
	return en;
}

static void
forget(struct ratelimit *rl, struct rl_entry *en)
{
	struct rl_entry **pp = &rl->bucket[en->hash & (rl->nbuckets - 1)];
	size_t i = en->heap_at;

	while (*pp != en)
		pp = &(*pp)->next;
	*pp = en->next;
	age_unlink(rl, en);
	rl->count--;
	if (i < rl->count) {
		heap_set(rl, i, rl->heap[rl->count]);
		heap_fix(rl, i);
	}
	free(en);
}

static int
expired(const struct ratelimit *rl, int64_t start_ms, int64_t now_ms)
{
	return now_ms - start_ms >= rl->window_ms;
}

static void
forget_expired(struct ratelimit *rl, int64_t now_ms)
{
	while (rl->oldest && expired(rl, rl->oldest->start_ms, now_ms))
		forget(rl, rl->oldest);
}

static long
limit_for(const struct ratelimit *rl, const char *key)
{
	/* one address is many people behind a NAT or a proxy */
	return rl->max_failures * (strncmp(key, "ip:", 3) == 0 ? 4 : 1);
}

/* Room for one more entry: 0, or -1 when every entry is throttled. */
static int
make_room(struct ratelimit *rl)
{
	struct rl_entry *min;

	if (rl->count < rl->max_entries)
		return 0;
	min = rl->heap[0];
	if (min->failures >= min->limit)
		return -1;
	forget(rl, min);
	return 0;
}

static struct rl_entry *
insert(struct ratelimit *rl, const char *key, uint64_t hash, int64_t now_ms)
{
	size_t len = strnlen(key, RL_KEY_MAX);
	size_t b = hash & (rl->nbuckets - 1);
	struct rl_entry *en = xcalloc(1, sizeof(*en) + len + 1);

	memcpy(en->key, key, len);
	en->hash = hash;
	en->start_ms = now_ms;
	en->limit = limit_for(rl, key);
	en->next = rl->bucket[b];
	rl->bucket[b] = en;
	age_append(rl, en);
	rl->heap[rl->count] = en;
	en->heap_at = rl->count++;
	heap_fix(rl, en->heap_at);
	return en;
}

/* Seconds until a window that began at start_ms ends, at least 1. */
static long
seconds_left(const struct ratelimit *rl, int64_t start_ms, int64_t now_ms)
{
	int64_t ms = start_ms + rl->window_ms - now_ms;

	return ms < 1000 ? 1 : (long)((ms + 999) / 1000);
}

/* ---- the interface ---------------------------------------------------- */
struct ratelimit *
ratelimit_new_bounded(long max_failures, long window_s, size_t max_entries)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	assert(max_entries > 0 && max_failures > 0);
	pthread_mutex_init(&rl->lock, NULL);
	rl->max_failures = max_failures;
	rl->window_ms = (int64_t)window_s * 1000;
	rl->max_entries = max_entries;
	rl->nbuckets = 1;
	while (rl->nbuckets < max_entries)
		rl->nbuckets <<= 1;
	/* calloc'd pages stay untouched (and out of RSS) until used */
	rl->bucket = xcalloc(rl->nbuckets, sizeof(*rl->bucket));
	rl->heap = xcalloc(max_entries, sizeof(*rl->heap));
	crypto_random(rl->sipkey, sizeof(rl->sipkey));
	return rl;
}

struct ratelimit *
ratelimit_new(long max_failures, long window_s)
{
	return ratelimit_new_bounded(max_failures, window_s, RL_MAX_ENTRIES);
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	while (rl->oldest)
		forget(rl, rl->oldest);
	free(rl->bucket);
	free(rl->heap);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static uint64_t
hash_key(const struct ratelimit *rl, const char *key)
{
	return ratelimit_siphash(rl->sipkey, key, strnlen(key, RL_KEY_MAX));
}

/* The entry for key, or NULL; an expired entry is forgotten first. */
static struct rl_entry *
find_live(struct ratelimit *rl, const char *key, uint64_t hash,
	  int64_t now_ms)
{
	struct rl_entry *en;

	forget_expired(rl, now_ms);
	en = lookup(rl, key, hash);
	if (en && expired(rl, en->start_ms, now_ms)) {
		forget(rl, en);
		en = NULL;
	}
	return en;
}

/* The wait for key, with the lock held; *out is its live entry or NULL. */
static long
wait_locked(struct ratelimit *rl, const char *cut, uint64_t hash,
	    int64_t now_ms, struct rl_entry **out)
{
	struct rl_entry *en = find_live(rl, cut, hash, now_ms);

	*out = en;
	if (en && en->failures >= en->limit)
		return seconds_left(rl, en->start_ms, now_ms);
	if (en == NULL && rl->overflow_failures >= rl->max_failures &&
	    !expired(rl, rl->overflow_start_ms, now_ms))
		return seconds_left(rl, rl->overflow_start_ms, now_ms);
	return 0;
}

long
ratelimit_wait(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	char cut[RL_KEY_MAX + 1];
	struct rl_entry *en;
	long wait;

	snprintf(cut, sizeof(cut), "%s", key);
	pthread_mutex_lock(&rl->lock);
	wait = wait_locked(rl, cut, hash_key(rl, cut), now_ms, &en);
	pthread_mutex_unlock(&rl->lock);
	return wait;
}

static void
overflow_fail(struct ratelimit *rl, int64_t now_ms)
{
	if (rl->overflow_failures == 0 ||
	    expired(rl, rl->overflow_start_ms, now_ms)) {
		rl->overflow_start_ms = now_ms;
		rl->overflow_failures = 0;
	}
	rl->overflow_failures++;
}

/* Counts one failure for key (whose live entry is en or NULL). */
static void
fail_locked(struct ratelimit *rl, const char *cut, uint64_t hash,
	    struct rl_entry *en, int64_t now_ms)
{
	if (en == NULL && make_room(rl) == 0)
		en = insert(rl, cut, hash, now_ms);
	if (en) {
		en->failures++;
		heap_fix(rl, en->heap_at);
	} else {
		overflow_fail(rl, now_ms);
	}
}

void
ratelimit_fail(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	char cut[RL_KEY_MAX + 1];
	uint64_t hash;

	snprintf(cut, sizeof(cut), "%s", key);
	hash = hash_key(rl, cut);
	pthread_mutex_lock(&rl->lock);
	fail_locked(rl, cut, hash, find_live(rl, cut, hash, now_ms), now_ms);
	pthread_mutex_unlock(&rl->lock);
}

long
ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	char cut[RL_KEY_MAX + 1];
	struct rl_entry *en;
	uint64_t hash;
	long wait;

	snprintf(cut, sizeof(cut), "%s", key);
	hash = hash_key(rl, cut);
	pthread_mutex_lock(&rl->lock);
	wait = wait_locked(rl, cut, hash, now_ms, &en);
	if (wait == 0)
		fail_locked(rl, cut, hash, en, now_ms);
	pthread_mutex_unlock(&rl->lock);
	return wait;
}

void
ratelimit_undo(struct ratelimit *rl, const char *key)
{
	char cut[RL_KEY_MAX + 1];
	struct rl_entry *en;

	snprintf(cut, sizeof(cut), "%s", key);
	pthread_mutex_lock(&rl->lock);
	en = lookup(rl, cut, hash_key(rl, cut));
	if (en && en->failures > 1) {
		en->failures--;
		heap_fix(rl, en->heap_at);
	} else if (en) {
		forget(rl, en);
	}
	pthread_mutex_unlock(&rl->lock);
}

void
ratelimit_clear(struct ratelimit *rl, const char *key)
{
	char cut[RL_KEY_MAX + 1];
	struct rl_entry *en;

	snprintf(cut, sizeof(cut), "%s", key);
	pthread_mutex_lock(&rl->lock);
	en = lookup(rl, cut, hash_key(rl, cut));
	if (en)
		forget(rl, en);
	pthread_mutex_unlock(&rl->lock);
}

size_t
ratelimit_count(struct ratelimit *rl)
{
	size_t n;

	pthread_mutex_lock(&rl->lock);
	n = rl->count;
	pthread_mutex_unlock(&rl->lock);
	return n;
}
