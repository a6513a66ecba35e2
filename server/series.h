/* One field of a metric over a time range, read from the metric's CSV file
 * and reduced to equal time buckets (average, minimum, maximum): the
 * query's limits, the file's columns and the bucket arithmetic. Used by
 * the HTTP thread without any lock: files are read, never written. */
#ifndef PIMON_SERIES_H
#define PIMON_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "csvread.h"
#include "proto.h"

#define SERIES_POINTS_DEFAULT 500
#define SERIES_POINTS_MAX     10000
#define SERIES_SPAN_DEFAULT   3600000ull              /* ms: the last hour */
#define SERIES_SPAN_MAX       (400ull * 86400 * 1000) /* ms: 400 days */

/* The columns of a metric file: "time[,inst_key],field,...". */
struct series_columns {
	char inst_key[PROTO_KEY_MAX + 1]; /* "" when rows name no instance */
	int nfields;
	char fields[PROTO_MAX_FIELDS][PROTO_KEY_MAX + 1];
};

/* A time range [from, to] (Unix ms, both included) and the most points. */
struct series_range {
	uint64_t from, to;
	unsigned points;
};

/* One bucket's values. */
struct series_bucket {
	double sum, min, max;
	double mean; /* running mean: finite whenever every value is */
	uint64_t count;
};

/* [from, from + n * width) cut into n buckets of width ms. */
struct series_buckets {
	uint64_t from, width;
	size_t n;
	struct series_bucket *b;
};

/* Which rows and column to read. */
struct series_filter {
	int column;           /* the value's column in a row; time is 0 */
	int instanced;        /* rows name an instance in column 1 */
	const char *instance; /* only rows of this instance; NULL: every row */
};

/* Non-zero if a header column names instances: the keys pimon's instanced
 * collectors use (mount, iface, zone). */
int series_is_inst_key(const char *column);

/* Parse a header line. instanced: 1 if the second column is the instance
 * key, 0 if not, -1 to decide by series_is_inst_key. 0, or -1 when it is
 * not a metric file's header. */
int series_columns_parse(const char *header, int instanced, struct series_columns *c);

/* The column of field in a row (time is 0), or -1 if there is none. */
int series_columns_find(const struct series_columns *c, const char *field);

/* Parse the from, to and points parameters (NULL when absent) against the
 * time now: to defaults to now, from to an hour before to, points to
 * SERIES_POINTS_DEFAULT. 0, or -1 with *err saying what is wrong. */
int series_range_parse(const char *from, const char *to, const char *points, uint64_t now,
                       struct series_range *out, const char **err);

/* Cut the range into at most points buckets of equal width. 0 or -1
 * (out of memory). */
int series_buckets_init(struct series_buckets *bk, const struct series_range *rg);

/* Add value v at time t, which MUST lie in the range. */
void series_buckets_add(struct series_buckets *bk, uint64_t t, double v);

/* The mean of a bucket's values: their sum over their count, or, where the
 * sum overflows, the running mean. */
double series_bucket_avg(const struct series_bucket *b);

/* Free the buckets. */
void series_buckets_free(struct series_buckets *bk);

/* Parse a value field, infinities included; -1 when it is empty (NaN) or
 * not a number. */
int series_value(const char *s, double *v);

/* Read the rows of the range that pass the filter into the buckets,
 * starting by binary search; *rows counts them (with or without a value).
 * 0, or -1 on a read error or out of memory. */
int series_read(struct csvread *r, const struct series_range *rg, const struct series_filter *f,
                struct series_buckets *bk, uint64_t *rows);

/* Look at the last n rows: *last gets the latest time (0 if none), and fn
 * is called for each row's instance when the rows name one. */
void series_tail(struct csvread *r, size_t n, int instanced, uint64_t *last,
                 void (*fn)(const char *instance, void *arg), void *arg);

/* Time of the first row, 0 if none. */
uint64_t series_first(struct csvread *r);

#endif
