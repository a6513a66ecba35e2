/* One field of a metric over a range, read from every file of one tier
 * (raw rows or rollups) into equal time buckets. Used by the HTTP thread. */
#ifndef PIMON_TIERSERIES_H
#define PIMON_TIERSERIES_H

#include <stdint.h>

#include "series.h"
#include "tierread.h"

/* The query: which field of which rows, and the metric's current columns. */
struct tierseries_query {
	const char *host; /* for log lines */
	const char *metric;
	const char *field;
	const char *instance; /* NULL: every row */
	int instanced;        /* the metric's rows name an instance */
	const char *header;   /* the open raw file's header: files with the same
	                       * header are read with its instance key */
};

/* The tier a series of bucket width ms reads: raw under a minute, 1m under
 * an hour, else 1h; a coarser tier without any file of the metric gives
 * way to the next finer one. */
enum tier tierseries_pick(int hostfd, const char *metric, uint64_t width);

/* Fold the rows of the range from every file of tier t in the host folder
 * hostfd into bk, and from the next finer tiers what t does not cover yet
 * (its open buckets, or all of the range when t has no row in it): files whose instances are of
 * another kind, or without the field, are left out; a file that cannot be opened is logged and left
 * out. *rows grows by the rows read (rollups: the raw rows they
 * summarise), *found is set when a file has the field. 0, or -1 (errno
 * set) when the tier cannot be listed, a file cannot be read through, or
 * out of memory. */
int tierseries_read(int hostfd, enum tier t, const struct tierseries_query *q,
                    const struct series_range *rg, struct series_buckets *bk, uint64_t *rows,
                    int *found);

#endif
