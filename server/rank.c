/* A host's standing in a fleet ranking: the rows of the range of its
 * coarsest tier, each file's columns parsed as its tier writes them, each
 * row reduced to the host's best so far (per instance for avg, rows of one
 * bucket merged by count). */
#include "rank.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "safefs.h"
#include "series.h"

/* Longest since: "400d" in any unit, digits only before it. */
#define RANK_SINCE_DIGITS 12

/* Aggregate names, by enum rank_agg. */
static const char *const rank_aggs[] = {"max", "min", "avg"};

/* The aggregate's name. */
const char *rank_agg_name(enum rank_agg a)
{
	return rank_aggs[a];
}

/* Decimal digits only, 1 to max_digits of them, into *v. */
static int rank_digits(const char *s, size_t len, size_t max_digits, uint64_t *v)
{
	if (len == 0 || len > max_digits)
		return -1;
	*v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

/* "<N><unit>" into ms; -1 when malformed, zero or over the maximum. */
static int rank_since(const char *s, uint64_t *ms)
{
	size_t len = strlen(s);
	uint64_t n, unit;
	if (len < 2)
		return -1;
	switch (s[len - 1]) {
	case 's':
		unit = 1000;
		break;
	case 'm':
		unit = 60000;
		break;
	case 'h':
		unit = 3600000;
		break;
	case 'd':
		unit = 86400000;
		break;
	default:
		return -1;
	}
	if (rank_digits(s, len - 1, RANK_SINCE_DIGITS, &n) < 0 || n == 0 ||
	    n > RANK_SPAN_MAX / unit)
		return -1;
	*ms = n * unit;
	return 0;
}

/* The range: since before now, or from and to. */
static int rank_range(const char *since, const char *from, const char *to, uint64_t now,
                      struct rank_query *q, const char **err)
{
	uint64_t span = RANK_SINCE_DEFAULT;
	if (since && (from || to)) {
		*err = "since and from/to exclude each other";
		return -1;
	}
	if (since && rank_since(since, &span) < 0) {
		*err = "since must be a duration of 1 s to 400 days: <N>s, <N>m, <N>h or <N>d";
		return -1;
	}
	q->to = now;
	if (to && rank_digits(to, strlen(to), 15, &q->to) < 0) {
		*err = "to must be a time in Unix milliseconds";
		return -1;
	}
	q->from = q->to > span ? q->to - span : 0;
	if (from && rank_digits(from, strlen(from), 15, &q->from) < 0) {
		*err = "from must be a time in Unix milliseconds";
		return -1;
	}
	if (q->from > q->to) {
		*err = "from is after to";
		return -1;
	}
	if (q->to - q->from > RANK_SPAN_MAX) {
		*err = "the range spans more than 400 days";
		return -1;
	}
	return 0;
}

/* Every parameter, defaults applied, limits checked. */
int rank_query_parse(const char *since, const char *from, const char *to, const char *agg,
                     const char *top, uint64_t now, struct rank_query *q, const char **err)
{
	uint64_t n = RANK_TOP_DEFAULT;
	if (rank_range(since, from, to, now, q, err) < 0)
		return -1;
	q->agg = RANK_MAX;
	if (agg) {
		size_t i = 0;
		while (i < sizeof rank_aggs / sizeof rank_aggs[0] && strcmp(agg, rank_aggs[i]) != 0)
			i++;
		if (i == sizeof rank_aggs / sizeof rank_aggs[0]) {
			*err = "agg must be max, min or avg";
			return -1;
		}
		q->agg = (enum rank_agg)i;
	}
	if (top && (rank_digits(top, strlen(top), 4, &n) < 0 || n < 1 || n > RANK_TOP_MAX)) {
		*err = "top must be an integer from 1 to 1000";
		return -1;
	}
	q->top = (unsigned)n;
	return 0;
}

/* One instance's merged rows, for avg. */
struct rank_inst {
	char name[PROTO_INST_MAX + 1];
	struct series_rollup v;
};

/* A host's rows being reduced. */
struct rank_acc {
	enum rank_agg agg;
	struct rank_entry *e;
	int have;
	struct rank_inst *insts; /* avg: one per instance */
	size_t ninsts, cap;
	int failed; /* out of memory */
};

/* The instance's accumulator, added when new; NULL when out of memory. */
static struct rank_inst *rank_inst_get(struct rank_acc *a, const char *name)
{
	for (size_t i = 0; i < a->ninsts; i++)
		if (strcmp(a->insts[i].name, name) == 0)
			return &a->insts[i];
	if (a->ninsts == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		struct rank_inst *ni = realloc(a->insts, cap * sizeof *ni);
		if (!ni)
			return NULL;
		a->insts = ni;
		a->cap = cap;
	}
	struct rank_inst *in = &a->insts[a->ninsts++];
	snprintf(in->name, sizeof in->name, "%s", name);
	in->v = (struct series_rollup){0, 0, NAN, NAN, NAN};
	return in;
}

/* Fold a row into the host's value. */
static void rank_row(uint64_t t, const char *instance, const struct series_rollup *v, void *arg)
{
	struct rank_acc *a = arg;
	a->e->rows += v->count;
	if (v->weight == 0)
		return;
	if (a->agg == RANK_AVG) {
		struct rank_inst *in = rank_inst_get(a, instance ? instance : "");
		if (!in)
			a->failed = 1;
		else
			series_rollup_merge(&in->v, v);
		return;
	}
	double x = a->agg == RANK_MAX ? v->max : v->min;
	int better = a->agg == RANK_MAX ? x > a->e->value : x < a->e->value;
	if (a->have && !better)
		return;
	a->have = 1;
	a->e->value = x;
	a->e->time = t;
	snprintf(a->e->instance, sizeof a->e->instance, "%s", instance ? instance : "");
}

/* avg: the instance with the highest mean. */
static void rank_avg_pick(struct rank_acc *a)
{
	for (size_t i = 0; i < a->ninsts; i++) {
		const struct rank_inst *in = &a->insts[i];
		if (in->v.weight == 0 || (a->have && !(in->v.avg > a->e->value)))
			continue;
		a->have = 1;
		a->e->value = in->v.avg;
		snprintf(a->e->instance, sizeof a->e->instance, "%s", in->name);
	}
}

/* Read every file of the tier into the accumulator. */
static int rank_read(int hostfd, const char *host, const char *metric, const char *field,
                     const struct rank_query *q, struct rank_acc *a)
{
	/* The coarsest tier with files of the metric for the range. */
	struct tierread *tr = NULL;
	for (a->e->tier = TIER_1H;; a->e->tier = (enum tier)(a->e->tier - 1)) {
		tr = tierread_open(hostfd, a->e->tier, metric, q->from, q->to);
		if (!tr || tierread_count(tr) > 0 || a->e->tier == TIER_RAW)
			break;
		tierread_close(tr);
	}
	struct series_range rg = {q->from, q->to, 1};
	struct csvread *r;
	int sorted, rc, err = 0;
	char why[64];
	if (!tr)
		return -1;
	while (!a->failed && (rc = tierread_next(tr, &r, &sorted)) != 0) {
		struct series_columns cols;
		struct series_filter f;
		if (rc < 0) {
			log_warn("rank", "host %s: %s%s%s: not read", host, tierread_name(tr),
			         safefs_refused(errno) ? " " : ": ",
			         safefs_why(errno, why, sizeof why));
			continue;
		}
		const char *h = csvread_header(r);
		int ok = a->e->tier == TIER_RAW ? series_columns_parse(h, -1, &cols)
		                                : series_rollup_parse(h, -1, &cols);
		if (ok < 0 || series_filter_init(&f, &cols, field, NULL) < 0)
			continue;
		/* Of a rollup, the one value the ranking looks at. */
		f.only = a->agg == RANK_MAX ? 3 : a->agg == RANK_MIN ? 1 : 2;
		a->e->instanced |= f.instanced;
		if (series_each(r, sorted, &rg, &f, rank_row, a) < 0) {
			err = errno ? errno : EIO;
			log_warn("rank", "host %s: reading %s: %s", host, tierread_name(tr),
			         strerror(err));
			break;
		}
	}
	tierread_close(tr);
	if (a->failed)
		err = ENOMEM;
	errno = err;
	return err ? -1 : 0;
}

/* The host's value from its coarsest tier. */
int rank_host(int hostfd, const char *host, const char *metric, const char *field,
              const struct rank_query *q, struct rank_entry *e)
{
	struct rank_acc a = {q->agg, e, 0, NULL, 0, 0, 0};
	memset(e, 0, sizeof *e);
	snprintf(e->host, sizeof e->host, "%s", host);
	e->value = NAN;
	int rc = rank_read(hostfd, host, metric, field, q, &a);
	if (rc == 0 && q->agg == RANK_AVG)
		rank_avg_pick(&a);
	free(a.insts);
	return rc < 0 ? -1 : a.have;
}

/* Numbers before NaN; then by value, descending when desc; then by name. */
static int rank_cmp(const struct rank_entry *x, const struct rank_entry *y, int desc)
{
	if (isnan(x->value) != isnan(y->value))
		return isnan(x->value) ? 1 : -1;
	if (!isnan(x->value) && x->value != y->value)
		return (x->value > y->value) == desc ? -1 : 1;
	return strcmp(x->host, y->host);
}

/* Highest first. */
static int rank_cmp_desc(const void *a, const void *b)
{
	return rank_cmp(a, b, 1);
}

/* Lowest first. */
static int rank_cmp_asc(const void *a, const void *b)
{
	return rank_cmp(a, b, 0);
}

/* Sort by the aggregate's order. */
void rank_sort(struct rank_entry *e, size_t n, enum rank_agg agg)
{
	qsort(e, n, sizeof *e, agg == RANK_MIN ? rank_cmp_asc : rank_cmp_desc);
}
