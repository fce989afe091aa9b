/*
 * sched.c - background threads give way to the ones users wait on.
 */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

/*
 * The calling thread (not the process: on Linux a nice value belongs to
 * a thread, and threads it creates inherit it) runs at nice +10: under
 * CPU contention the scheduler gives it about a tenth of the share of a
 * thread at 0. For periodic passes (culler, usage): their bursts of
 * probes then wait for the CPU instead of the API and proxy threads.
 * Raising a nice value needs no privilege; failure only leaves it as is.
 */
void
thread_background(void)
{
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), THREAD_BG_NICE);
}
