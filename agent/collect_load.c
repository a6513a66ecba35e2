/* load collector: load averages and process counts from /proc/loadavg. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <string.h>

static const char *const load_fields[LOAD_NFIELDS] = {
    "load1", "load5", "load15", "running", "total",
};

/* Parse "0.52 0.58 0.59 2/345 12345" into the load group's fields. */
int load_parse(const char *buf, double out[LOAD_NFIELDS])
{
	const char *p = buf;
	for (int i = 0; i < 3; i++) {
		if (text_next_decimal(&p, &out[i]) < 0)
			return -1;
	}
	uint64_t running, total;
	if (text_next_u64(&p, &running) < 0 || *p++ != '/' || text_next_u64(&p, &total) < 0)
		return -1;
	out[3] = (double)running;
	out[4] = (double)total;
	return 0;
}

/* Read /proc/loadavg into one row. */
static int load_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	double v[LOAD_NFIELDS];
	if (collect_ctx_read(ctx, ctx->proc, "loadavg", 0) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	if (load_parse(ctx->buf, v) < 0) {
		collector_fail(col, "%s: cannot parse", ctx->path);
		return -1;
	}
	double *row = rowset_add(&col->rows, now_ms, "");
	if (row)
		memcpy(row, v, sizeof v);
	return 0;
}

const struct collector_ops load_ops = {
    .metric = "load",
    .inst_key = "",
    .fields = load_fields,
    .nfields = LOAD_NFIELDS,
    .run = load_run,
};
