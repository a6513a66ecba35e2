/* Folding rows into buckets per instance: min, max, the count of rows and,
 * per field, the mean of its values, kept as a sum (exact for a minute of
 * raw rows: the same additions in the same order as anyone summing them)
 * and, for sums that overflow, a running mean. */
#include "rollup.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "series.h"
#include "store.h"
#include "util.h"

#define ROLLUP_COLS (3 * PROTO_MAX_FIELDS + 3)

struct acc_field {
	double min, max, sum, mean;
	uint64_t n; /* samples with a value */
};

struct acc {
	char inst[PROTO_INST_MAX * 2 + 3];
	uint64_t count; /* raw rows */
	struct acc_field f[PROTO_MAX_FIELDS];
};

struct accs {
	struct acc *a;
	size_t n, cap;
};

uint64_t rollup_width(int level)
{
	return level == ROLLUP_MINUTE ? 60000 : 3600000;
}

/* Three columns a field, after the count. */
int rollup_header(const char *raw_header, int instanced, char *out, size_t size)
{
	struct series_columns cols;
	if (series_columns_parse(raw_header, instanced, &cols) < 0)
		return -1;
	size_t o = (size_t)snprintf(out, size, "time%s%s,count", cols.inst_key[0] ? "," : "",
	                            cols.inst_key);
	for (int i = 0; i < cols.nfields && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, ",%s.min,%s.avg,%s.max", cols.fields[i],
		                      cols.fields[i], cols.fields[i]);
	return o < size ? 0 : -1;
}

/* The accumulator of an instance ("" when rows name none), added if new. */
static struct acc *accs_get(struct accs *as, const char *inst)
{
	for (size_t i = as->n; i-- > 0;)
		if (strcmp(as->a[i].inst, inst) == 0)
			return &as->a[i];
	if (as->n == as->cap) {
		size_t cap = as->cap ? as->cap * 2 : 4;
		struct acc *na = realloc(as->a, cap * sizeof *na);
		if (!na)
			return NULL;
		as->a = na;
		as->cap = cap;
	}
	struct acc *a = &as->a[as->n++];
	memset(a, 0, sizeof *a);
	snprintf(a->inst, sizeof a->inst, "%s", inst);
	return a;
}

/* Fold a value of weight w (avg v, extremes lo and hi) into a field. */
static void acc_add(struct acc_field *f, double v, double lo, double hi, uint64_t w)
{
	if (f->n == 0) {
		f->min = lo;
		f->max = hi;
		f->sum = v * (double)w;
		f->mean = v;
		f->n = w;
		return;
	}
	if (lo < f->min)
		f->min = lo;
	if (hi > f->max)
		f->max = hi;
	f->sum += v * (double)w;
	f->n += w;
	double k = (double)w / (double)f->n;
	f->mean += k * v - k * f->mean;
}

/* Write one row per instance of bucket t, then forget them. */
static int accs_emit(struct accs *as, uint64_t t, int instanced, int nfields, struct rowbuf *out)
{
	int rc = 0;
	for (size_t i = 0; i < as->n && rc == 0; i++) {
		const struct acc *a = &as->a[i];
		rc = rowbuf_printf(out, "%llu", (unsigned long long)t);
		if (instanced) {
			char q[sizeof a->inst * 2 + 3];
			store_csv_field(q, sizeof q, a->inst);
			rc |= rowbuf_printf(out, ",%s", q);
		}
		rc |= rowbuf_printf(out, ",%llu", (unsigned long long)a->count);
		for (int j = 0; j < nfields && rc == 0; j++) {
			const struct acc_field *f = &a->f[j];
			if (f->n == 0) {
				rc = rowbuf_printf(out, ",,,");
				continue;
			}
			char lo[UTIL_DOUBLE_MAX], avg[UTIL_DOUBLE_MAX], hi[UTIL_DOUBLE_MAX];
			util_format_double(lo, f->min);
			util_format_double(avg, isfinite(f->sum) ? f->sum / (double)f->n : f->mean);
			util_format_double(hi, f->max);
			rc = rowbuf_printf(out, ",%s,%s,%s", lo, avg, hi);
		}
		rc |= rowbuf_printf(out, "\n");
	}
	as->n = 0;
	return rc;
}

/* Fold one row's values into its instance's accumulator. */
static int accs_row(struct accs *as, int level, int instanced, int nfields, char **cols, int n)
{
	int first = instanced ? 2 : 1;
	struct acc *a = accs_get(as, instanced ? cols[1] : "");
	if (!a)
		return -1;
	if (level == ROLLUP_MINUTE) {
		a->count++;
		for (int j = 0; j < nfields && first + j < n; j++) {
			double v;
			if (series_value(cols[first + j], &v) == 0)
				acc_add(&a->f[j], v, v, v, 1);
		}
		return 0;
	}
	uint64_t c = 0;
	if (first >= n || csvread_time(cols[first], strlen(cols[first]), &c) < 0 || c == 0)
		return 0;
	a->count += c;
	for (int j = 0; j < nfields && first + 3 + 3 * j < n; j++) {
		double lo, v, hi;
		char **p = &cols[first + 1 + 3 * j];
		if (series_value(p[0], &lo) == 0 && series_value(p[1], &v) == 0 &&
		    series_value(p[2], &hi) == 0)
			acc_add(&a->f[j], v, lo, hi, c);
	}
	return 0;
}

/* The shape of the source's rows from its header: whether they name an
 * instance and how many raw fields they summarise. -1 if not a metric's. */
static int rollup_shape(const char *header, int level, int *instanced, int *nfields)
{
	struct series_columns cols;
	if ((level == ROLLUP_MINUTE ? series_columns_parse(header, *instanced, &cols)
	                            : series_rollup_parse(header, -1, &cols)) < 0)
		return -1;
	*instanced = cols.inst_key[0] != '\0';
	*nfields = cols.nfields;
	return 0;
}

int rollup_fold(struct csvread *src, int level, int instanced, off_t from, off_t to, int final,
                struct rowbuf *out, struct rollup_state *st)
{
	int nfields;
	memset(st, 0, sizeof *st);
	st->rolled = from;
	if (rollup_shape(csvread_header(src), level, &instanced, &nfields) < 0) {
		errno = EINVAL;
		return -1;
	}
	uint64_t width = rollup_width(level);
	struct accs as = {0};
	size_t keep = out->len;
	char *scratch = NULL;
	size_t scap = 0;
	char *cols[ROLLUP_COLS];
	const char *line;
	size_t len;
	off_t off = from < csvread_data(src) ? csvread_data(src) : from, next;
	int rc = 0, r;
	st->rolled = off;
	while (rc == 0 && off < to && (r = csvread_line(src, off, &line, &len, &next)) != 0) {
		if (r < 0) {
			rc = -1;
			break;
		}
		uint64_t t;
		if (!line || csvread_time(line, len, &t) < 0) {
			if (!st->open)
				st->rolled = next; /* nothing to fold: pass it */
			off = next;
			continue;
		}
		uint64_t b = t - t % width;
		if (st->open && b != st->open_bucket) {
			if (as.n && accs_emit(&as, st->open_bucket, instanced, nfields, out) < 0) {
				rc = -1;
				break;
			}
			if (!st->wrote || st->open_bucket < st->lo)
				st->lo = st->open_bucket;
			if (!st->wrote || st->open_bucket > st->hi)
				st->hi = st->open_bucket;
			st->wrote = 1;
			st->rolled = off;
		}
		st->open = 1;
		st->open_bucket = b;
		if (len + 1 > scap) {
			size_t cap = len + 1 > 1024 ? len + 1 : 1024;
			char *nb = realloc(scratch, cap);
			if (!nb) {
				rc = -1;
				break;
			}
			scratch = nb;
			scap = cap;
		}
		int n = csvread_split(line, len, scratch, cols, ROLLUP_COLS);
		if (n > 0 && accs_row(&as, level, instanced, nfields, cols, n) < 0)
			rc = -1;
		off = next;
	}
	if (rc == 0 && final && st->open) {
		if (as.n && accs_emit(&as, st->open_bucket, instanced, nfields, out) < 0)
			rc = -1;
		if (!st->wrote || st->open_bucket < st->lo)
			st->lo = st->open_bucket;
		if (!st->wrote || st->open_bucket > st->hi)
			st->hi = st->open_bucket;
		st->wrote = 1;
		st->open = 0;
		st->rolled = off;
	}
	if (rc == 0 && !st->open)
		st->rolled = off;
	free(scratch);
	free(as.a);
	if (rc < 0) {
		out->len = keep;
		if (!errno)
			errno = ENOMEM;
	}
	return rc;
}
