/* host collector: uptime and boot time as metrics (HELLO carries them
 * only once per connection). */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const char *const host_fields[HOST_NFIELDS] = {"uptime_seconds", "boot_time_seconds"};

/* Seconds since boot from a /proc/uptime buffer, fraction kept. 0 or -1. */
int host_parse_uptime(const char *buf, double *uptime_s)
{
	const char *p = buf;
	return text_next_decimal(&p, uptime_s);
}

/* The group's fields: uptime, and boot time in Unix seconds as the wall
 * clock now sees it (so it moves when NTP steps a Pi's clock at boot). */
void host_fields_of(double uptime_s, uint64_t now_ms, double out[HOST_NFIELDS])
{
	out[0] = floor(uptime_s);
	out[1] = round((double)now_ms / 1000.0 - uptime_s);
}

/* One row from /proc/uptime. */
static int host_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	double up;
	if (collect_ctx_read(ctx, ctx->proc, "uptime", 0) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	if (host_parse_uptime(ctx->buf, &up) < 0) {
		collector_fail(col, "%s: not a number", ctx->path);
		return -1;
	}
	double *row = rowset_add(&col->rows, now_ms, "");
	if (row)
		host_fields_of(up, now_ms, row);
	return 0;
}

const struct collector_ops host_ops = {
    .metric = "host",
    .inst_key = "",
    .fields = host_fields,
    .nfields = HOST_NFIELDS,
    .run = host_run,
};
