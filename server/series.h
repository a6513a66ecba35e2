/* One field of a metric over a time range, read from the metric's CSV files
 * (raw or rollup rows) and reduced to equal time buckets (average, minimum, maximum): the
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

/* The columns of a metric file: raw rows "time[,inst_key],field,...", or
 * rollup rows (1m, 1h) "time[,inst_key],count,field.min,field.avg,
 * field.max,...". */
struct series_columns {
	char inst_key[PROTO_KEY_MAX + 1]; /* "" when rows name no instance */
	int rollup;                       /* rollup rows */
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
	uint64_t last; /* the latest time of a value added, when seen */
	int seen;
};

/* Which rows and column to read. */
struct series_filter {
	int column;           /* the value's column in a row (rollups: the min's); time is 0 */
	int instanced;        /* rows name an instance in column 1 */
	const char *instance; /* only rows of this instance; NULL: every row */
	int count_column;     /* rollup rows: the count's column, avg and max follow
	                       * the min; 0 for raw rows */
	int only;             /* rollup rows: 0 reads min, avg and max; 1, 2 or 3
	                       * only the min, avg or max (the others NaN) */
};

/* One rollup row's values of a field: the raw rows it summarises and, for
 * those with a value, their minimum, mean and maximum. */
struct series_rollup {
	uint64_t count;  /* raw rows summarised */
	uint64_t weight; /* of those, the rows with a value: count, or 0 for none */
	double min, avg, max;
};

/* Non-zero if a header column names instances: the keys pimon's instanced
 * collectors use (proto/schema.c). */
int series_is_inst_key(const char *column);

/* Parse a header line. instanced: 1 if the second column is the instance
 * key, 0 if not, -1 to decide by series_is_inst_key. 0, or -1 when it is
 * not a metric file's header. */
int series_columns_parse(const char *header, int instanced, struct series_columns *c);

/* Parse a rollup file's header, as series_columns_parse: after time (and
 * the instance key) a count column, then each field's .min, .avg and .max
 * in that order; c->fields gets the fields' names. 0, or -1. */
int series_rollup_parse(const char *header, int instanced, struct series_columns *c);

/* The column of field in a row (time is 0), or -1 if there is none; for
 * rollup rows the column of its .min (.avg and .max follow). */
int series_columns_find(const struct series_columns *c, const char *field);

/* The filter for field of a file with columns c, rows of instance (NULL:
 * all). 0, or -1 when the file has no such field. */
int series_filter_init(struct series_filter *f, const struct series_columns *c, const char *field,
                       const char *instance);

/* Read the field's rollup values from split fields of a row of n fields:
 * 1 with a value, 0 for a row with a count but no value of the field, -1
 * for a malformed row. */
int series_rollup_get(char **fields, int n, const struct series_filter *f,
                      struct series_rollup *out);

/* Merge rollup values b into a (rows of one bucket and instance): counts
 * added, min of the minimums, max of the maximums, avg weighted by count.
 * An a without a value (weight 0) takes b's values. */
void series_rollup_merge(struct series_rollup *a, const struct series_rollup *b);

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

/* Add a rollup row's values at time t, which MUST lie in the range: the
 * bucket's count grows by the row's, avg weighted by it. */
void series_buckets_add_rollup(struct series_buckets *bk, uint64_t t,
                               const struct series_rollup *v);

/* The mean of a bucket's values: their sum over their count, or, where the
 * sum overflows, the running mean. */
double series_bucket_avg(const struct series_bucket *b);

/* Free the buckets. */
void series_buckets_free(struct series_buckets *bk);

/* Parse a value field, infinities included; -1 when it is empty (NaN) or
 * not a number. */
int series_value(const char *s, double *v);

/* A row of a range: its time, instance (NULL when rows name none) and
 * values (raw rows: a count of 1, weight 0 when the field is empty). */
typedef void series_row_fn(uint64_t t, const char *instance, const struct series_rollup *v,
                           void *arg);

/* Call fn for each row of the range that passes the filter, read as
 * series_read reads. 0, or -1 on a read error or out of memory. */
int series_each(struct csvread *r, int sorted, const struct series_range *rg,
                const struct series_filter *f, series_row_fn *fn, void *arg);

/* Read the rows of the range that pass the filter into the buckets; *rows
 * counts them (with or without a value; for rollup rows, the raw rows they
 * summarise). sorted: the rows are in time order (compressed segments), so
 * the read starts by binary search and stops past the range; otherwise
 * (open and closed files, where clocks that step put rows out of order)
 * every row is read. 0, or -1 on a read error or out of memory. */
int series_read(struct csvread *r, int sorted, const struct series_range *rg,
                const struct series_filter *f, struct series_buckets *bk, uint64_t *rows);

/* Look at the last n rows: *last gets the latest time (0 if none), and fn
 * is called for each row's instance when the rows name one. */
void series_tail(struct csvread *r, size_t n, int instanced, uint64_t *last,
                 void (*fn)(const char *instance, void *arg), void *arg);

/* Time of the first row, 0 if none. */
uint64_t series_first(struct csvread *r);

#endif
