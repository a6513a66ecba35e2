/* An LD_PRELOAD shim for tests: while the file named by
 * PIMON_TEST_SYNC_GATE exists, fdatasync waits (after creating
 * "<gate>.held", removed once it goes on), so a test can hold the server
 * inside a sync and see what else still answers. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd);

/* Wait at the gate while it is shut, then sync as libc does. */
int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	const char *gate = getenv("PIMON_TEST_SYNC_GATE");
	if (gate && access(gate, F_OK) == 0) {
		char held[4200];
		snprintf(held, sizeof held, "%s.held", gate);
		int h = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (h >= 0)
			close(h);
		while (access(gate, F_OK) == 0)
			usleep(10000);
		unlink(held);
	}
	return real ? real(fd) : -1;
}
