/*
 * t.h - the smallest test harness: T_OK(cond, "what it proves") counts and
 * prints failures; t_done() prints "N passed, N failed" and gives the exit
 * status. T_SKIP marks a test skipped by SWARMHUB_TEST_SKIP (counted).
 */
#ifndef SWARMHUB_T_H
#define SWARMHUB_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail, t_skip;

#define T_OK(cond, ...) do {						\
	if (cond) {							\
		t_pass++;						\
	} else {							\
		t_fail++;						\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
	}								\
} while (0)

#define T_STREQ(a, b, ...) do {						\
	const char *t_a_ = (a), *t_b_ = (b);				\
	int t_eq_ = t_a_ && t_b_ && strcmp(t_a_, t_b_) == 0;		\
	T_OK(t_eq_, __VA_ARGS__);					\
	if (!t_eq_)							\
		fprintf(stderr, "  got '%s', want '%s'\n",		\
			t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");	\
} while (0)

/* 1 when the service is listed in SWARMHUB_TEST_SKIP (comma list). */
static inline int
t_skipped(const char *service)
{
	const char *s = getenv("SWARMHUB_TEST_SKIP");
	size_t n = strlen(service);

	while (s && *s) {
		if (strncmp(s, service, n) == 0 && (s[n] == ',' || !s[n]))
			return 1;
		s = strchr(s, ',');
		s = s ? s + 1 : NULL;
	}
	return 0;
}

/* The value of an env variable a test needs; exits 1 with the script to run
 * when it is missing, or 0 counted as skipped when SWARMHUB_TEST_SKIP says. */
static inline const char *
t_need_env(const char *var, const char *service, const char *script)
{
	const char *v = getenv(var);

	if (v && *v)
		return v;
	if (t_skipped(service)) {
		printf("0 passed, 0 failed, 1 skipped\n");
		exit(0);
	}
	fprintf(stderr, "%s is not set: start the service with %s "
		"(or set SWARMHUB_TEST_SKIP=%s)\n", var, script, service);
	printf("0 passed, 1 failed\n");
	exit(1);
}

static inline int
t_done(void)
{
	if (t_skip)
		printf("%d passed, %d failed, %d skipped\n", t_pass, t_fail,
		       t_skip);
	else
		printf("%d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

#endif
