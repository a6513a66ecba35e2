/* Fuzz the configuration loader with any file content: it loads or names
 * a line, never crashes or leaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input as a file in memory. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("pimon-cfg", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		char path[64], err[512];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		struct pimon_config cfg;
		config_defaults(&cfg);
		config_load(&cfg, path, err, sizeof err);
		config_free(&cfg);
	}
	close(fd);
	return 0;
}
