/*
 * test_ratelimit.c - the failed-login limiter (hub/ratelimit.c): its keyed
 * hash, that colliding keys keep their own counters, expiry, the memory
 * bound under a million keys, what happens when it is full, and the attack
 * on the old direct-mapped table.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/t.h"
#include "../../hub/hub.h"

#define WINDOW_S 300
#define T0 1000000

static void
test_siphash(void)
{
	unsigned char k[16], m[15];

	for (int i = 0; i < 16; i++)
		k[i] = (unsigned char)i;
	for (int i = 0; i < 15; i++)
		m[i] = (unsigned char)i;
	/* the SipHash paper's worked example and the reference's first vector */
	T_OK(ratelimit_siphash(k, m, 15) == 0xa129ca6149be45e5ULL,
	     "SipHash-2-4 of 15 bytes matches the paper");
	T_OK(ratelimit_siphash(k, m, 0) == 0x726fdb47dd0e0e31ULL,
	     "SipHash-2-4 of the empty message matches the reference");
}

/* ratelimit_take checks and counts at once; ratelimit_undo gives back. */
static void
test_take_undo(void)
{
	struct ratelimit *rl = ratelimit_new(3, 10);
	int passed = 0;

	for (int i = 0; i < 10; i++)
		passed += ratelimit_take(rl, "u:dan", 1000) == 0;
	T_OK(passed == 3, "take lets exactly the limit through (%d)", passed);
	T_OK(ratelimit_wait(rl, "u:dan", 1000) > 0, "then the name waits");
	T_OK(ratelimit_take(rl, "u:erin", 1000) == 0, "another name passes");
	ratelimit_undo(rl, "u:erin");
	for (int i = 0; i < 3; i++)
		T_OK(ratelimit_take(rl, "u:erin", 1000) == 0,
		     "an undone attempt is not counted");
	T_OK(ratelimit_take(rl, "u:erin", 1000) > 0, "the fourth waits");
	ratelimit_undo(rl, "u:nobody");
	T_OK(ratelimit_wait(rl, "u:nobody", 1000) == 0,
	     "undo of an unknown key changes nothing");
	ratelimit_free(rl);
}

static void
test_basics(void)
{
	struct ratelimit *rl = ratelimit_new(3, 10);

	for (int i = 0; i < 3; i++) {
		T_OK(ratelimit_wait(rl, "u:bob", 1000) == 0, "allowed before max");
		ratelimit_fail(rl, "u:bob", 1000);
	}
	T_OK(ratelimit_wait(rl, "u:bob", 2000) == 9, "wait after max failures");
	T_OK(ratelimit_wait(rl, "u:alice", 2000) == 0, "others unaffected");
	for (int i = 0; i < 11; i++)
		ratelimit_fail(rl, "ip:10.0.0.1", 1000);
	T_OK(ratelimit_wait(rl, "ip:10.0.0.1", 2000) == 0,
	     "an address gets four times the failures of a name");
	ratelimit_fail(rl, "ip:10.0.0.1", 1000);
	T_OK(ratelimit_wait(rl, "ip:10.0.0.1", 2000) > 0,
	     "an address is limited too");
	T_OK(ratelimit_wait(rl, "u:bob", 10999) == 1, "last second rounds up");
	T_OK(ratelimit_wait(rl, "u:bob", 11000) == 0, "window expires");
	ratelimit_fail(rl, "u:carol", 11000);
	ratelimit_clear(rl, "u:carol");
	T_OK(ratelimit_wait(rl, "u:carol", 11000) == 0, "clear resets");
	ratelimit_clear(rl, "u:nobody");
	ratelimit_free(rl);
	ratelimit_free(NULL);
}

/* Old table: FNV-1a, slot = hash % 4096, and a slot reset on a new key. */
static uint64_t
old_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h | 1;
}

static void
test_old_attack(void)
{
	struct ratelimit *rl = ratelimit_new(5, WINDOW_S);
	char c[2][32];
	int found = 0, guesses = 0;
	uint64_t slot = old_hash("u:alice") % 4096;

	for (long i = 0; found < 2 && i < 10000000; i++) {
		snprintf(c[found], sizeof(c[0]), "u:x%ld", i);
		if (old_hash(c[found]) % 4096 == slot)
			found++;
	}
	T_OK(found == 2, "two names that shared alice's old slot");
	/* guess alice, then fail once each for the colliding names: in the
	 * old table each of those reset alice's count, forever */
	for (int round = 0; round < 100; round++) {
		if (ratelimit_wait(rl, "u:alice", T0 + round) == 0) {
			guesses++;
			ratelimit_fail(rl, "u:alice", T0 + round);
		}
		ratelimit_fail(rl, c[0], T0 + round);
		ratelimit_fail(rl, c[1], T0 + round);
	}
	T_OK(guesses == 5, "interleaved colliding failures still throttle "
	     "alice after 5 guesses (got %d)", guesses);
	T_OK(ratelimit_wait(rl, c[0], T0 + 100) > 0, "and the colliders too");
	ratelimit_free(rl);
}

static void
test_collisions(void)
{
	/* 64 keys in 64 buckets: many share a bucket */
	struct ratelimit *rl = ratelimit_new_bounded(5, WINDOW_S, 64);
	char key[32];
	int exact = 0;

	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "u:user%d", i);
		for (int f = 0; f < i % 5; f++)
			ratelimit_fail(rl, key, T0);
	}
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "u:user%d", i);
		for (int f = i % 5; f < 4; f++)
			ratelimit_fail(rl, key, T0);
		/* each key is now at 4 failures, one short of its limit */
		exact += ratelimit_wait(rl, key, T0) == 0;
		ratelimit_fail(rl, key, T0);
		exact += ratelimit_wait(rl, key, T0) > 0;
	}
	T_OK(exact == 128, "64 keys sharing 64 buckets keep exact counts "
	     "(%d of 128 checks)", exact);
	ratelimit_free(rl);
}

static void
test_long_keys(void)
{
	struct ratelimit *rl = ratelimit_new(2, WINDOW_S);
	char a[400], b[400];

	memset(a, 'a', sizeof(a));
	a[0] = 'u';
	a[1] = ':';
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'b';
	ratelimit_fail(rl, a, T0);
	ratelimit_fail(rl, b, T0);
	T_OK(ratelimit_wait(rl, a, T0) > 0 && ratelimit_wait(rl, b, T0) > 0,
	     "keys cut at the same prefix share one counter (throttle more)");
	ratelimit_free(rl);
}

static void
test_expiry(void)
{
	struct ratelimit *rl = ratelimit_new(2, WINDOW_S);
	char key[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
		ratelimit_fail(rl, key, T0 + i);
	}
	ratelimit_fail(rl, "u:bob", T0 + 2000);
	ratelimit_fail(rl, "u:bob", T0 + 2000);
	T_OK(ratelimit_count(rl) == 1001, "1001 keys held");
	T_OK(ratelimit_wait(rl, "u:bob", T0 + 2000 + WINDOW_S * 1000 - 1) == 1,
	     "throttled until the window's last millisecond");
	T_OK(ratelimit_count(rl) == 1, "expired entries are dropped (%zu held)",
	     ratelimit_count(rl));
	T_OK(ratelimit_wait(rl, "u:bob", T0 + 2000 + WINDOW_S * 1000) == 0,
	     "the window ends");
	T_OK(ratelimit_count(rl) == 0, "and the entry is gone");
	ratelimit_fail(rl, "u:bob", T0 + 2000 + WINDOW_S * 1000);
	T_OK(ratelimit_wait(rl, "u:bob", T0 + 2000 + WINDOW_S * 1000) == 0,
	     "a new window counts from zero");
	ratelimit_free(rl);
}

static void
test_million_keys(void)
{
	struct ratelimit *rl = ratelimit_new(5, WINDOW_S);
	char key[32];
	size_t most = 0, n;

	for (int f = 0; f < 5; f++)
		ratelimit_fail(rl, "u:alice", T0);
	for (int f = 0; f < 3; f++)
		ratelimit_fail(rl, "u:bob", T0);
	for (int i = 0; i < 1000000; i++) {
		snprintf(key, sizeof(key), "u:k%d", i);
		ratelimit_fail(rl, key, T0 + 1 + i / 10000);
		if (i % 1000 == 0 && (n = ratelimit_count(rl)) > most)
			most = n;
	}
	n = ratelimit_count(rl);
	T_OK(most <= 65536 && n <= 65536, "at most 65536 keys held after a "
	     "million (most %zu, now %zu)", most, n);
	T_OK(ratelimit_wait(rl, "u:alice", T0 + 200) > 0,
	     "a throttled name stays throttled through a million other keys");
	ratelimit_fail(rl, "u:bob", T0 + 200);
	ratelimit_fail(rl, "u:bob", T0 + 200);
	T_OK(ratelimit_wait(rl, "u:bob", T0 + 200) > 0, "a name with more "
	     "failures than the flood's keys keeps its count");
	ratelimit_free(rl);
}

static void
test_full(void)
{
	struct ratelimit *rl = ratelimit_new_bounded(2, WINDOW_S, 4);
	const char *victims[] = { "u:a", "u:b", "u:c", "u:d" };
	int guesses = 0;

	for (int i = 0; i < 4; i++) {
		ratelimit_fail(rl, victims[i], T0);
		ratelimit_fail(rl, victims[i], T0);
	}
	/* every entry throttled: new keys go to the shared overflow counter */
	ratelimit_fail(rl, "u:new1", T0 + 1);
	T_OK(ratelimit_wait(rl, "u:new2", T0 + 1) == 0,
	     "overflow below the limit allows new keys");
	ratelimit_fail(rl, "u:new2", T0 + 1);
	T_OK(ratelimit_count(rl) == 4, "the bound holds");
	for (int i = 0; i < 4; i++)
		T_OK(ratelimit_wait(rl, victims[i], T0 + 2) > 0,
		     "a throttled entry is never evicted");
	T_OK(ratelimit_wait(rl, "u:new3", T0 + 2) > 0,
	     "overflow over the limit refuses keys without an entry");
	T_OK(ratelimit_wait(rl, "u:new3", T0 + WINDOW_S * 1000 + 1) == 0 &&
	     ratelimit_count(rl) == 0, "everything ends with the window");
	ratelimit_free(rl);

	/* not yet throttled: the flood's one-failure keys go first */
	rl = ratelimit_new_bounded(5, WINDOW_S, 8);
	for (int f = 0; f < 4; f++)
		ratelimit_fail(rl, "u:alice", T0);
	for (int i = 0; i < 1000; i++) {
		char key[32];

		snprintf(key, sizeof(key), "u:f%d", i);
		ratelimit_fail(rl, key, T0 + 1 + i);
		if (ratelimit_wait(rl, "u:alice", T0 + 1 + i) == 0) {
			guesses++;
			ratelimit_fail(rl, "u:alice", T0 + 1 + i);
		}
	}
	T_OK(guesses == 1, "cheap failures for other names do not evict a "
	     "name with more (%d guesses)", guesses);
	ratelimit_free(rl);
}

static struct ratelimit *shared;

static void *
hammer(void *arg)
{
	char key[32];
	long id = (long)(intptr_t)arg;

	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "ip:%ld.%d", id, i % 700);
		if (ratelimit_wait(shared, key, T0 + i) == 0)
			ratelimit_fail(shared, key, T0 + i);
		if (i % 7 == 0)
			ratelimit_clear(shared, key);
	}
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[4];

	shared = ratelimit_new_bounded(3, 1, 1000);
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	T_OK(ratelimit_count(shared) <= 1000, "bound holds under threads");
	ratelimit_free(shared);
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	test_siphash();
	test_basics();
	test_take_undo();
	test_old_attack();
	test_collisions();
	test_long_keys();
	test_expiry();
	test_million_keys();
	test_full();
	test_threads();
	return t_done();
}
