/* Fuzz what pimon reads back from its own disks after a crash: the agent's
 * spool image and the server's commit record slot. */
#include <stdint.h>
#include <stdlib.h>

#include "spool.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Count records; stop nowhere. */
static int count_record(void *arg, uint64_t seq, const uint8_t *d, size_t len)
{
	(void)seq;
	(void)d;
	*(size_t *)arg += len;
	return 0;
}

/* One input as a spool image and as a commit slot. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t run_id, dropped;
	size_t bytes = 0;
	if (spool_parse(data, size, &run_id, &dropped, count_record, &bytes) > size)
		abort();
	struct state s;
	state_decode(data, size, &s);
	return 0;
}
