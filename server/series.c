/* Series from metric files: header columns (raw and rollup), query
 * limits, time buckets, rollup merging, and the read of a file's rows of a
 * range: forward from where the binary search lands in a sorted file, or
 * every row of one that may be out of order. */
#include "series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Most fields a row may have: time, instance, count and every field's
 * min, avg and max. */
#define SERIES_ROW_FIELDS (3 * PROTO_MAX_FIELDS + 3)

/* Largest accepted time: 15 digits of milliseconds, past year 30000. */
#define SERIES_TIME_MAX 999999999999999ull

/* The instance keys of pimon's collectors (disk, net and wifi, temp, diskio,
 * pressure, cpufreq, cores). */
int series_is_inst_key(const char *column)
{
	static const char *const keys[] = {"mount",    "iface",  "zone", "device",
	                                   "resource", "policy", "core"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(column, keys[i]) == 0)
			return 1;
	return 0;
}

/* Columns of a header: time first, then the instance key if any, then
 * fields, every name a valid key. */
int series_columns_parse(const char *header, int instanced, struct series_columns *c)
{
	size_t len = strlen(header);
	char *out = malloc(len + 1);
	char *cols[SERIES_ROW_FIELDS];
	int n = out ? csvread_split(header, len, out, cols, SERIES_ROW_FIELDS) : -1;
	int rc = -1;
	memset(c, 0, sizeof *c);
	if (n < 2 || strcmp(cols[0], "time") != 0)
		goto out;
	if (instanced < 0)
		instanced = n > 2 && series_is_inst_key(cols[1]);
	int first = instanced ? 2 : 1;
	if (n <= first || n - first > PROTO_MAX_FIELDS)
		goto out;
	if (instanced)
		snprintf(c->inst_key, sizeof c->inst_key, "%s", cols[1]);
	for (int i = first; i < n; i++) {
		if (!util_valid_key(cols[i]))
			goto out;
		snprintf(c->fields[c->nfields++], sizeof c->fields[0], "%s", cols[i]);
	}
	rc = instanced && !util_valid_key(c->inst_key) ? -1 : 0;
out:
	free(out);
	return rc;
}

/* Whether col is base followed by suffix (".min"), base a valid key. */
static int series_is_stat(const char *col, const char *suffix, char *base, size_t size)
{
	size_t len = strlen(col), sl = strlen(suffix);
	if (len <= sl || len - sl >= size || strcmp(col + len - sl, suffix) != 0)
		return 0;
	snprintf(base, size, "%.*s", (int)(len - sl), col);
	return util_valid_key(base);
}

/* Columns of a rollup header: time, the instance key if any, count, then
 * a .min, .avg, .max triple for each field. */
int series_rollup_parse(const char *header, int instanced, struct series_columns *c)
{
	size_t len = strlen(header);
	char *out = malloc(len + 1);
	char *cols[SERIES_ROW_FIELDS];
	int n = out ? csvread_split(header, len, out, cols, SERIES_ROW_FIELDS) : -1;
	int rc = -1;
	memset(c, 0, sizeof *c);
	c->rollup = 1;
	if (n < 3 || strcmp(cols[0], "time") != 0)
		goto out;
	if (instanced < 0)
		instanced = strcmp(cols[1], "count") != 0;
	int first = instanced ? 3 : 2;
	if (n <= first || strcmp(cols[first - 1], "count") != 0 || (n - first) % 3 != 0 ||
	    (n - first) / 3 > PROTO_MAX_FIELDS)
		goto out;
	if (instanced) {
		if (!util_valid_key(cols[1]))
			goto out;
		snprintf(c->inst_key, sizeof c->inst_key, "%s", cols[1]);
	}
	for (int i = first; i < n; i += 3) {
		char base[PROTO_KEY_MAX + 1], avg[PROTO_KEY_MAX + 1], max[PROTO_KEY_MAX + 1];
		if (!series_is_stat(cols[i], ".min", base, sizeof base) ||
		    !series_is_stat(cols[i + 1], ".avg", avg, sizeof avg) ||
		    !series_is_stat(cols[i + 2], ".max", max, sizeof max) ||
		    strcmp(base, avg) != 0 || strcmp(base, max) != 0)
			goto out;
		snprintf(c->fields[c->nfields++], sizeof c->fields[0], "%s", base);
	}
	rc = 0;
out:
	free(out);
	return rc;
}

/* Where field sits in a row: after time and the instance, and for rollup
 * rows after the count, three columns a field. */
int series_columns_find(const struct series_columns *c, const char *field)
{
	int first = c->inst_key[0] ? 2 : 1;
	for (int i = 0; i < c->nfields; i++)
		if (strcmp(c->fields[i], field) == 0)
			return c->rollup ? first + 1 + 3 * i : first + i;
	return -1;
}

/* The field's column, and for rollups the count's. */
int series_filter_init(struct series_filter *f, const struct series_columns *c, const char *field,
                       const char *instance)
{
	f->column = series_columns_find(c, field);
	f->instanced = c->inst_key[0] != '\0';
	f->instance = instance;
	f->count_column = c->rollup ? (f->instanced ? 2 : 1) : 0;
	f->only = 0;
	return f->column > 0 ? 0 : -1;
}

/* A decimal number of 1..15 digits, nothing else. */
static int series_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 15)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The query's range and point count, defaults applied, limits checked. */
int series_range_parse(const char *from, const char *to, const char *points, uint64_t now,
                       struct series_range *out, const char **err)
{
	uint64_t p = SERIES_POINTS_DEFAULT;
	if (points && series_parse_u64(points, SERIES_POINTS_MAX, &p) < 0) {
		*err = "points must be an integer from 1 to 10000";
		return -1;
	}
	if (p == 0) {
		*err = "points must be an integer from 1 to 10000";
		return -1;
	}
	out->points = (unsigned)p;
	out->to = now;
	if (to && series_parse_u64(to, SERIES_TIME_MAX, &out->to) < 0) {
		*err = "to must be a time in Unix milliseconds";
		return -1;
	}
	out->from = out->to > SERIES_SPAN_DEFAULT ? out->to - SERIES_SPAN_DEFAULT : 0;
	if (from && series_parse_u64(from, SERIES_TIME_MAX, &out->from) < 0) {
		*err = "from must be a time in Unix milliseconds";
		return -1;
	}
	if (out->from > out->to) {
		*err = "from is after to";
		return -1;
	}
	if (out->to - out->from > SERIES_SPAN_MAX) {
		*err = "the range spans more than 400 days";
		return -1;
	}
	return 0;
}

/* Width: the range's length over points, rounded up, so that the buckets
 * needed to cover it are never more than points. */
int series_buckets_init(struct series_buckets *bk, const struct series_range *rg)
{
	uint64_t span = rg->to - rg->from + 1;
	uint64_t points = rg->points ? rg->points : 1;
	bk->from = rg->from;
	bk->width = (span + points - 1) / points;
	bk->n = (size_t)((span + bk->width - 1) / bk->width);
	bk->last = 0;
	bk->seen = 0;
	bk->b = calloc(bk->n, sizeof *bk->b);
	return bk->b ? 0 : -1;
}

/* The count and the field's three values of a split rollup row. */
int series_rollup_get(char **fields, int n, const struct series_filter *f,
                      struct series_rollup *out)
{
	uint64_t count;
	if (n <= f->column + 2 || f->count_column <= 0 ||
	    series_parse_u64(fields[f->count_column], SERIES_TIME_MAX, &count) < 0 || count == 0)
		return -1;
	out->count = count;
	out->weight = 0;
	out->min = out->avg = out->max = NAN;
	const char *const *v = (const char *const *)fields + f->column;
	if (f->only) {
		double *one[] = {&out->min, &out->avg, &out->max};
		if (!v[f->only - 1][0])
			return 0;
		if (series_value(v[f->only - 1], one[f->only - 1]) < 0)
			return -1;
		out->weight = count;
		return 1;
	}
	if (!v[0][0] && !v[1][0] && !v[2][0])
		return 0;
	if (series_value(v[0], &out->min) < 0 || series_value(v[1], &out->avg) < 0 ||
	    series_value(v[2], &out->max) < 0)
		return -1;
	out->weight = count;
	return 1;
}

/* a * (wa / w) + b * (wb / w): a mean weighted by counts, each term at
 * most its value, so no overflow where the sum of products would. */
static double series_weighted(double a, uint64_t wa, double b, uint64_t wb)
{
	double w = (double)wa + (double)wb;
	return a * ((double)wa / w) + b * ((double)wb / w);
}

/* Merge two rows of one bucket and instance. */
void series_rollup_merge(struct series_rollup *a, const struct series_rollup *b)
{
	a->count += b->count;
	if (b->weight == 0)
		return;
	if (a->weight == 0) {
		a->min = b->min;
		a->avg = b->avg;
		a->max = b->max;
	} else {
		a->min = b->min < a->min ? b->min : a->min;
		a->max = b->max > a->max ? b->max : a->max;
		a->avg = series_weighted(a->avg, a->weight, b->avg, b->weight);
	}
	a->weight += b->weight;
}

/* Fold a rollup row into its bucket, as weight values of its avg. */
/* Keep the latest time a value was added at. */
static void series_buckets_seen(struct series_buckets *bk, uint64_t t)
{
	if (!bk->seen || t > bk->last)
		bk->last = t;
	bk->seen = 1;
}

void series_buckets_add_rollup(struct series_buckets *bk, uint64_t t, const struct series_rollup *v)
{
	if (v->weight == 0)
		return;
	series_buckets_seen(bk, t);
	struct series_bucket *b = &bk->b[(t - bk->from) / bk->width];
	double part = v->avg * (double)v->weight;
	if (b->count == 0 || v->min < b->min)
		b->min = v->min;
	if (b->count == 0 || v->max > b->max)
		b->max = v->max;
	b->sum = b->count == 0 ? part : b->sum + part;
	b->mean = b->count == 0 ? v->avg : series_weighted(b->mean, b->count, v->avg, v->weight);
	b->count += v->weight;
}

/* Fold a value into its bucket. */
void series_buckets_add(struct series_buckets *bk, uint64_t t, double v)
{
	series_buckets_seen(bk, t);
	struct series_bucket *b = &bk->b[(t - bk->from) / bk->width];
	if (b->count == 0 || v < b->min)
		b->min = v;
	if (b->count == 0 || v > b->max)
		b->max = v;
	b->sum = b->count == 0 ? v : b->sum + v; /* 0.0 + -0.0 would lose the sign */
	b->count++;
	/* v / n and mean / n are at most half of DBL_MAX each: no overflow. */
	b->mean = b->count == 1 ? v : b->mean + (v / (double)b->count - b->mean / (double)b->count);
}

/* The sum's quotient where the sum is finite, else the running mean. */
double series_bucket_avg(const struct series_bucket *b)
{
	if (b->count == 0)
		return NAN;
	return isfinite(b->sum) ? b->sum / (double)b->count : b->mean;
}

/* Free the bucket array. */
void series_buckets_free(struct series_buckets *bk)
{
	free(bk->b);
	bk->b = NULL;
	bk->n = 0;
}

/* A plain decimal of at most 15 significant digits ("-12.5"): its digits
 * as an integer and the power of ten below them are both exact doubles,
 * so their quotient is the correctly rounded value, as strtod gives
 * (Clinger's fast path). 0, or -1 for anything else. */
static int series_value_fast(const char *s, double *v)
{
	static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
	                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	int neg = *s == '-';
	s += neg;
	uint64_t m = 0;
	int digits = 0, frac = -1;
	for (; *s; s++) {
		if (*s == '.' && frac < 0) {
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -1;
		if (m == 0 && *s == '0') {
			if (frac >= 0)
				frac++;
			continue; /* leading zeros are not significant */
		}
		if (++digits > 15)
			return -1;
		m = m * 10 + (uint64_t)(*s - '0');
		if (frac >= 0)
			frac++;
	}
	if (frac < 0)
		frac = 0;
	if ((digits == 0 && frac == 0 && s[-1] == '.') || frac > 22)
		return -1;
	double x = (double)m / pow10[frac];
	*v = neg ? -x : x;
	return 0;
}

/* A number filling the whole field, "inf" and "-inf" included; NaN is no value. */
int series_value(const char *s, double *v)
{
	if (!*s)
		return -1;
	if ((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9'))
		if (series_value_fast(s, v) == 0)
			return 0;
	char *end;
	*v = strtod(s, &end);
	return *end == '\0' && !isnan(*v) ? 0 : -1;
}

/* A growable buffer for unquoted fields. */
struct series_scratch {
	char *buf;
	size_t cap;
};

/* Split line into fields through the scratch buffer; -1 if it cannot. */
static int series_split(struct series_scratch *s, const char *line, size_t len, char **fields,
                        int max)
{
	if (len + 1 > s->cap) {
		size_t cap = len + 1 > 1024 ? len + 1 : 1024;
		char *nb = realloc(s->buf, cap);
		if (!nb)
			return -1;
		s->buf = nb;
		s->cap = cap;
	}
	return max < SERIES_ROW_FIELDS
	           ? csvread_split_first(line, len, s->buf, fields, max)
	           : csvread_split(line, len, s->buf, fields, SERIES_ROW_FIELDS);
}

/* Hand one split row at time t to fn: its instance and values. */
static void series_visit(char **fields, int n, uint64_t t, const struct series_filter *f,
                         series_row_fn *fn, void *arg)
{
	if (n <= f->column || (f->instance && strcmp(fields[1], f->instance) != 0))
		return;
	struct series_rollup v = {1, 0, NAN, NAN, NAN};
	if (f->count_column > 0) {
		if (series_rollup_get(fields, n, f, &v) < 0)
			return;
	} else if (series_value(fields[f->column], &v.min) == 0) {
		v.avg = v.max = v.min;
		v.weight = 1;
	}
	fn(t, f->instanced ? fields[1] : NULL, &v, arg);
}

/* Read forward from the first row at or after from (by binary search when
 * sorted, else from the first row) until a row past to when sorted, else
 * to the end. */
int series_each(struct csvread *r, int sorted, const struct series_range *rg,
                const struct series_filter *f, series_row_fn *fn, void *arg)
{
	struct series_scratch s = {NULL, 0};
	char *fields[SERIES_ROW_FIELDS];
	const char *line;
	size_t len;
	off_t next;
	int rc;
	/* Only the columns up to the value's (a rollup's max) are split. */
	int need = f->column + (f->count_column > 0 ? 3 : 1);
	if (f->count_column >= need)
		need = f->count_column + 1;
	if (need < 2)
		need = 2;
	for (off_t off = sorted ? csvread_seek(r, rg->from) : csvread_data(r);
	     (rc = csvread_line(r, off, &line, &len, &next)) > 0; off = next) {
		uint64_t t;
		if (!line || csvread_time(line, len, &t) < 0 || t < rg->from)
			continue;
		if (t > rg->to) {
			if (sorted)
				break;
			continue;
		}
		int n = series_split(&s, line, len, fields, need);
		series_visit(fields, n, t, f, fn, arg);
	}
	free(s.buf);
	return rc < 0 ? -1 : 0;
}

/* Where series_read folds rows. */
struct series_fold {
	struct series_buckets *bk;
	uint64_t rows;
};

/* Fold a row into its bucket and count it. */
static void series_fold(uint64_t t, const char *instance, const struct series_rollup *v, void *arg)
{
	struct series_fold *fo = arg;
	(void)instance;
	fo->rows += v->count;
	series_buckets_add_rollup(fo->bk, t, v);
}

/* Every row of the range into the buckets. */
int series_read(struct csvread *r, int sorted, const struct series_range *rg,
                const struct series_filter *f, struct series_buckets *bk, uint64_t *rows)
{
	struct series_fold fo = {bk, 0};
	int rc = series_each(r, sorted, rg, f, series_fold, &fo);
	*rows = fo.rows;
	return rc;
}

/* Scan the last n rows for the latest time and the instances. */
void series_tail(struct csvread *r, size_t n, int instanced, uint64_t *last,
                 void (*fn)(const char *instance, void *arg), void *arg)
{
	struct series_scratch s = {NULL, 0};
	char *fields[SERIES_ROW_FIELDS];
	const char *line;
	size_t len;
	off_t next;
	*last = 0;
	for (off_t off = csvread_tail(r, n); csvread_line(r, off, &line, &len, &next) > 0;
	     off = next) {
		uint64_t t;
		if (!line || csvread_time(line, len, &t) < 0)
			continue;
		if (t > *last)
			*last = t;
		if (instanced && fn && series_split(&s, line, len, fields, 2) >= 2)
			fn(fields[1], arg);
	}
	free(s.buf);
}

/* The first row with a time. */
uint64_t series_first(struct csvread *r)
{
	const char *line;
	size_t len;
	off_t next;
	uint64_t t;
	for (off_t off = csvread_data(r); csvread_line(r, off, &line, &len, &next) > 0; off = next)
		if (line && csvread_time(line, len, &t) == 0)
			return t;
	return 0;
}
