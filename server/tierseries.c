/* A series from a tier: the tier picked by bucket width, then each file's
 * header parsed (raw or rollup) and its rows of the range folded in, by
 * binary search in sorted segments and by a whole scan elsewhere. */
#include "tierseries.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "safefs.h"

/* The finest tier whose buckets are no wider than width. */
static enum tier tierseries_ideal(uint64_t width)
{
	if (width < tier_width(TIER_1M))
		return TIER_RAW;
	return width < tier_width(TIER_1H) ? TIER_1M : TIER_1H;
}

/* Step down from the ideal tier while a tier has no file at all. */
enum tier tierseries_pick(int hostfd, const char *metric, uint64_t width)
{
	enum tier t = tierseries_ideal(width);
	while (t != TIER_RAW && tierread_any(hostfd, t, metric) != 1)
		t = (enum tier)(t - 1);
	return t;
}

/* Parse a file's header as its tier writes it: 0, or -1 when it is not
 * such a header or its instances are of another kind than the query's. */
static int tierseries_columns(enum tier t, const struct tierseries_query *q, const char *header,
                              struct series_columns *cols)
{
	int hint = q->header && strcmp(header, q->header) == 0 ? q->instanced : -1;
	int rc = t == TIER_RAW ? series_columns_parse(header, hint, cols)
	                       : series_rollup_parse(header, -1, cols);
	if (rc < 0 || (cols->inst_key[0] != '\0') != (q->instanced != 0))
		return -1;
	return 0;
}

/* Every file of the tier, one at a time. */
static int tierseries_read_tier(int hostfd, enum tier t, const struct tierseries_query *q,
                                const struct series_range *rg, struct series_buckets *bk,
                                uint64_t *rows, int *found)
{
	struct tierread *tr = tierread_open(hostfd, t, q->metric, rg->from, rg->to);
	if (!tr)
		return -1;
	struct csvread *r;
	int sorted, rc, err = 0;
	char why[64];
	while ((rc = tierread_next(tr, &r, &sorted)) != 0) {
		struct series_columns cols;
		struct series_filter f;
		uint64_t n = 0;
		if (rc < 0) {
			if (errno == ENOMEM) {
				err = ENOMEM;
				break;
			}
			log_warn("series", "host %s: %s%s%s: not read", q->host, tierread_name(tr),
			         safefs_refused(errno) ? " " : ": ",
			         safefs_why(errno, why, sizeof why));
			continue;
		}
		if (tierseries_columns(t, q, csvread_header(r), &cols) < 0 ||
		    series_filter_init(&f, &cols, q->field, q->instance) < 0)
			continue;
		*found = 1;
		if (series_read(r, sorted, rg, &f, bk, &n) < 0) {
			err = errno ? errno : EIO;
			log_warn("series", "host %s: reading %s: %s", q->host, tierread_name(tr),
			         strerror(err));
			break;
		}
		*rows += n;
	}
	tierread_close(tr);
	errno = err;
	return err ? -1 : 0;
}

/* The tier, then what its rollups do not cover yet from the next finer
 * one: the buckets still open (the last minute, the last hour), or the
 * whole range when the tier has no row in it. */
int tierseries_read(int hostfd, enum tier t, const struct tierseries_query *q,
                    const struct series_range *rg, struct series_buckets *bk, uint64_t *rows,
                    int *found)
{
	struct series_range part = *rg;
	for (;;) {
		bk->seen = 0;
		if (tierseries_read_tier(hostfd, t, q, &part, bk, rows, found) < 0)
			return -1;
		if (t == TIER_RAW)
			return 0;
		if (bk->seen) {
			uint64_t covered = bk->last - bk->last % tier_width(t) + tier_width(t);
			if (covered > part.to)
				return 0;
			if (covered > part.from)
				part.from = covered;
		}
		t = (enum tier)(t - 1);
	}
}
