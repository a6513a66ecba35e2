/* Fuzz the configuration loader with any file content: it loads or names
 * a line, never crashes or leaks. */
#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input as a file in memory. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	FILE *fp = fmemopen((void *)data, size, "r");
	if (!fp)
		return 0;
	char err[512];
	struct pimon_config cfg;
	config_defaults(&cfg);
	config_load_stream(&cfg, fp, "fuzz.cfg", err, sizeof err);
	config_free(&cfg);
	fclose(fp);
	return 0;
}
