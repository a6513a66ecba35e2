/* Ranking the fleet by one field over a range: the query's parameters,
 * one host's value from its coarsest tier (hour rollups, else minute, else
 * raw rows), and the order. No JSON: the HTTP edge renders the entries.
 * Used by the HTTP thread. */
#ifndef PIMON_RANK_H
#define PIMON_RANK_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "tierread.h"

#define RANK_TOP_DEFAULT   20
#define RANK_TOP_MAX       1000
#define RANK_SINCE_DEFAULT (24ull * 3600 * 1000)   /* ms: the last day */
#define RANK_SPAN_MAX      (400ull * 86400 * 1000) /* ms: 400 days */

/* How a host's rows make its value: the highest maximum, the lowest
 * minimum, or the highest mean of an instance (count-weighted). */
enum rank_agg { RANK_MAX, RANK_MIN, RANK_AVG };

/* The range [from, to] (Unix ms, both included), the aggregate and how
 * many hosts to give. */
struct rank_query {
	uint64_t from, to;
	enum rank_agg agg;
	unsigned top;
};

/* One host's value. */
struct rank_entry {
	char host[PROTO_NAME_MAX + 1];
	double value;
	int instanced;                     /* the metric's rows name an instance */
	char instance[PROTO_INST_MAX + 1]; /* where the value was reached */
	uint64_t time;                     /* the bucket's (raw: the row's) start; 0 for avg */
	enum tier tier;                    /* the tier read */
	uint64_t rows;                     /* raw rows of the range behind the value */
};

/* "max", "min" or "avg". */
const char *rank_agg_name(enum rank_agg a);

/* Parse the parameters (NULL when absent) against the time now: since
 * ("<N>s", "m", "h" or "d"; default 24h) or from and to (Unix ms; to
 * defaults to now, from to 24 h before to), at most 400 days; agg (max,
 * min, avg; default max); top (1 to 1000, default 20). 0, or -1 with *err
 * saying what is wrong. */
int rank_query_parse(const char *since, const char *from, const char *to, const char *agg,
                     const char *top, uint64_t now, struct rank_query *q, const char **err);

/* The value of field of metric over the range for the host folder hostfd,
 * from the hour tier, else the minute tier, else raw rows, whichever is
 * the coarsest with files of the metric. 1 with *e filled; 0 when no row
 * of the range has a value of the field; -1 (errno set) when the tier
 * cannot be listed or a file cannot be read through (logged). A file that
 * cannot be opened is logged and left out. */
int rank_host(int hostfd, const char *host, const char *metric, const char *field,
              const struct rank_query *q, struct rank_entry *e);

/* Order entries best first for agg: descending for max and avg,
 * ascending for min; a value that is no number last; ties by host name. */
void rank_sort(struct rank_entry *e, size_t n, enum rank_agg agg);

#endif
