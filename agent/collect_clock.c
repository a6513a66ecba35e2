/* clock collector: whether the kernel clock is synchronised and its error
 * estimates, from adjtimex(2). A Pi has no real-time clock: until NTP has
 * set it, its time is whatever the last shutdown saved. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <string.h>
#include <sys/timex.h>

static const char *const clock_fields[CLOCK_NFIELDS] = {
    "synced",
    "est_error_seconds",
    "max_error_seconds",
    "offset_seconds",
};

/* The group's fields from adjtimex's return code and its struct timex. */
void clock_fields_of(int rc, const struct timex *tx, double out[CLOCK_NFIELDS])
{
	out[0] = rc != TIME_ERROR && !(tx->status & STA_UNSYNC);
	out[1] = (double)tx->esterror / 1e6; /* microseconds */
	out[2] = (double)tx->maxerror / 1e6;
	out[3] = (double)tx->offset / (tx->status & STA_NANO ? 1e9 : 1e6);
}

/* One row from a read-only adjtimex (modes 0 asks, changes nothing). */
static int clock_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	(void)ctx;
	struct timex tx;
	memset(&tx, 0, sizeof tx);
	int rc = adjtimex(&tx);
	if (rc < 0) {
		collector_fail(col, "adjtimex: %s", strerror(errno));
		return -1;
	}
	double *row = rowset_add(&col->rows, now_ms, "");
	if (row)
		clock_fields_of(rc, &tx, row);
	return 0;
}

const struct collector_ops clock_ops = {
    .metric = "clock",
    .inst_key = "",
    .fields = clock_fields,
    .nfields = CLOCK_NFIELDS,
    .run = clock_run,
};
