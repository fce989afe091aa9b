/*
 * mtrim.c - LD_PRELOAD shim for tests/bench/proxy.py: lets the benchmark ask
 * the edge about its heap without gdb (which cannot call functions here).
 *   SIGUSR1: append "mallinfo inuse=B free=B mmap=B" (mallinfo2: all arenas)
 *   SIGUSR2: the same, then malloc_trim(0), then the same line again
 * to the file $MTRIM_OUT. Not async-signal-safe in theory; the benchmark only
 * signals an idle process (no request in flight).
 */
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
report(const char *what)
{
	struct mallinfo2 mi = mallinfo2();
	const char *path = getenv("MTRIM_OUT");
	char line[200];
	int fd, n;

	if (!path)
		return;
	n = snprintf(line, sizeof(line), "%s inuse=%zu free=%zu mmap=%zu\n", what,
		     mi.uordblks, mi.fordblks, mi.hblkhd);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) < 0)
			n = 0;
		close(fd);
	}
}

static void
on_sig(int sig)
{
	report("mallinfo");
	if (sig == SIGUSR2) {
		malloc_trim(0);
		report("trimmed");
	}
}

__attribute__((constructor)) static void
init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}
