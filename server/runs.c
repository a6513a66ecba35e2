/* Per-run high-water marks of one host, most recent first. */
#include "runs.h"

#include <string.h>

/* Index of run_id in rs, or -1. */
static int runs_find(const struct runs *rs, uint64_t run_id)
{
	for (uint32_t i = 0; i < rs->n && i < RUNS_MAX; i++)
		if (rs->r[i].run_id == run_id)
			return (int)i;
	return -1;
}

/* The run's mark, 0 when the run is not remembered. */
uint64_t runs_seq(const struct runs *rs, uint64_t run_id)
{
	int i = runs_find(rs, run_id);
	return i < 0 ? 0 : rs->r[i].seq;
}

/* Raise the run's mark and move it to the front. */
void runs_stored(struct runs *rs, uint64_t run_id, uint64_t seq)
{
	int i = runs_find(rs, run_id);
	struct run_mark m = {run_id, seq};
	if (i >= 0) {
		if (rs->r[i].seq > seq)
			m.seq = rs->r[i].seq;
	} else {
		if (rs->n < RUNS_MAX)
			rs->n++;
		i = (int)rs->n - 1; /* a new run takes the last place, the oldest's */
	}
	memmove(&rs->r[1], &rs->r[0], (size_t)i * sizeof rs->r[0]);
	rs->r[0] = m;
}
