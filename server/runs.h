/* The highest batch stored of each recent agent run of one host: the owner
 * of "stored exactly once" on the server's side. A batch at or below its
 * run's mark was stored before and is acked without being written again,
 * however the runs of a host interleave (an agent restarted, two agents of
 * one name taking turns). Kept in the host's commit record. */
#ifndef PIMON_RUNS_H
#define PIMON_RUNS_H

#include <stdint.h>

/* Runs remembered per host; the least recently stored one goes first. */
#define RUNS_MAX 12

struct run_mark {
	uint64_t run_id;
	uint64_t seq; /* highest seq stored of the run */
};

/* Most recently stored first. A plain value: copied into commit records. */
struct runs {
	uint32_t n;
	struct run_mark r[RUNS_MAX];
};

/* The highest seq stored of run_id, 0 when none is known. */
uint64_t runs_seq(const struct runs *rs, uint64_t run_id);

/* Batch seq of run_id is stored: the run's mark rises to it (never falls)
 * and the run becomes the most recent, the least recent one forgotten when
 * all RUNS_MAX are taken. */
void runs_stored(struct runs *rs, uint64_t run_id, uint64_t seq);

#endif
