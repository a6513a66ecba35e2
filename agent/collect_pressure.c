/* pressure collector: pressure stall information of cpu, memory and io
 * from /proc/pressure, one row each. Nothing, quietly, on kernels without
 * PSI (before 4.20, or booted with psi=0). */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "log.h"

static const char *const pressure_fields[PRESSURE_NFIELDS] = {
    "some_avg10", "some_avg60", "some_stall_seconds",
    "full_avg10", "full_avg60", "full_stall_seconds",
};

/* The resources: a row's instance and its file below <proc>. */
static const struct {
	const char *name;
	const char *rel;
} pressure_resources[] = {
    {"cpu", "pressure/cpu"},
    {"memory", "pressure/memory"},
    {"io", "pressure/io"},
};

/* Parse "avg10=0.12 avg60=0.05 avg300=0.01 total=123456" into three fields. */
static int pressure_parse_line(const char *p, double out[3])
{
	static const struct {
		const char *key;
		size_t len;
	} keys[] = {{" avg10=", 7}, {" avg60=", 7}, {" avg300=", 8}, {" total=", 7}};
	double v[4];
	for (int i = 0; i < 4; i++) {
		if (memcmp(p, keys[i].key, keys[i].len) != 0)
			return -1;
		p += keys[i].len;
		if (text_next_decimal(&p, &v[i]) < 0)
			return -1;
	}
	out[0] = v[0];
	out[1] = v[1];
	out[2] = v[3] / 1e6; /* microseconds */
	return 0;
}

/* Parse one /proc/pressure file into the group's fields; a missing "full"
 * line (cpu before Linux 5.13) leaves NaN. 0, or -1 without "some". */
int pressure_parse(const char *buf, double out[PRESSURE_NFIELDS])
{
	int some = 0;
	for (int i = 0; i < PRESSURE_NFIELDS; i++)
		out[i] = NAN;
	for (const char *p = buf; p; p = text_next_line(p)) {
		if (strncmp(p, "some", 4) == 0 && pressure_parse_line(p + 4, out) == 0)
			some = 1;
		else if (strncmp(p, "full", 4) == 0 && pressure_parse_line(p + 4, out + 3) < 0)
			out[3] = out[4] = out[5] = NAN;
	}
	return some ? 0 : -1;
}

/* One row per resource; none, logged once at debug, without PSI. */
static int pressure_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	for (size_t i = 0; i < sizeof pressure_resources / sizeof pressure_resources[0]; i++) {
		double v[PRESSURE_NFIELDS];
		if (collect_ctx_read(ctx, ctx->proc, pressure_resources[i].rel, 0) < 0) {
			if (errno != ENOENT && errno != ENOTDIR && errno != EOPNOTSUPP) {
				collector_fail(col, "%s: %s", ctx->path, strerror(errno));
				return -1;
			}
			if (!col->warned)
				log_debug("collect", "pressure: %s: %s, no PSI", ctx->path,
				          strerror(errno));
			col->warned = 1;
			return 0; /* PSI has all three files or none */
		}
		if (pressure_parse(ctx->buf, v) < 0) {
			collector_fail(col, "%s: no \"some\" line", ctx->path);
			continue;
		}
		double *row = rowset_add(&col->rows, now_ms, pressure_resources[i].name);
		if (row)
			memcpy(row, v, sizeof v);
	}
	return 0;
}

const struct collector_ops pressure_ops = {
    .metric = "pressure",
    .inst_key = "resource",
    .fields = pressure_fields,
    .nfields = PRESSURE_NFIELDS,
    .run = pressure_run,
};
