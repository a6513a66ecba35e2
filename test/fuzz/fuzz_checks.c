/* Fuzz the check output parser with any bytes: it never reads outside the
 * input, and what it gives is a message and fields a frame can carry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input, as a plugin's output, not NUL-terminated. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so reading past the end is caught. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	struct check_parsed p;
	size_t n = checks_parse(buf, size, &p);
	if (n != p.nperf || n > CHECK_PERF_MAX || strlen(p.message) > PROTO_TEXT_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (!util_valid_key(p.names[i]) || strcmp(p.names[i], "status") == 0 ||
		    strcmp(p.names[i], "duration_s") == 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(p.names[i], p.names[j]) == 0)
				abort();
	}
	free(buf);
	return 0;
}
