/* pi collector: the Raspberry Pi firmware's throttling flags and the
 * under-voltage alarm of the rpi_volt hwmon device. Nothing, quietly, on
 * machines without the firmware's get_throttled file. */
#include "collect_int.h"
#include "collect_parse.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* The firmware driver's file, below the sys root. */
#define PI_THROTTLED "devices/platform/soc/soc:firmware/get_throttled"
/* Name of the hwmon device that reports under-voltage. */
#define PI_HWMON_NAME "rpi_volt"

static const char *const pi_fields[PI_NFIELDS] = {
    "under_voltage",
    "freq_capped",
    "throttled",
    "soft_temp_limit",
    "under_voltage_occurred",
    "freq_capped_occurred",
    "throttled_occurred",
    "soft_temp_limit_occurred",
    "raw",
    "hwmon_under_voltage",
};

/* get_throttled bit of each flag field, in the group's order. */
static const unsigned pi_bits[8] = {0, 1, 2, 3, 16, 17, 18, 19};

/* Value of one hex digit, or -1. */
static int pi_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse hex digits with an optional 0x, then only whitespace, into 32 bits. */
int pi_parse_throttled(const char *buf, uint32_t *out)
{
	const char *p = buf;
	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	uint32_t v = 0;
	int n = 0;
	for (int d; (d = pi_hex_digit(*p)) >= 0; p++, n++) {
		if (v > UINT32_MAX >> 4)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (n == 0 || *p != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Spread the flags of raw over the group's first nine fields. */
void pi_throttled_fields(uint32_t raw, double out[PI_NFIELDS])
{
	for (size_t i = 0; i < sizeof pi_bits / sizeof pi_bits[0]; i++)
		out[i] = (raw >> pi_bits[i]) & 1u;
	out[8] = (double)raw;
}

/* in0_lcrit_alarm of the hwmon folder called dir (0 or 1), or NaN. */
static double pi_hwmon_alarm(struct collect_ctx *ctx, const char *dir)
{
	char rel[320];
	uint64_t v;
	snprintf(rel, sizeof rel, "class/hwmon/%s/in0_lcrit_alarm", dir);
	if (collect_ctx_read(ctx, ctx->sys, rel, 0) < 0)
		return NAN;
	const char *p = ctx->buf;
	return text_next_u64(&p, &v) < 0 ? NAN : (double)(v != 0);
}

/* Non-zero if the hwmon folder called dir is the rpi_volt device. */
static int pi_hwmon_is_volt(struct collect_ctx *ctx, const char *dir)
{
	char rel[320];
	snprintf(rel, sizeof rel, "class/hwmon/%s/name", dir);
	if (collect_ctx_read(ctx, ctx->sys, rel, 0) < 0)
		return 0;
	text_trim_end(ctx->buf);
	return strcmp(ctx->buf, PI_HWMON_NAME) == 0;
}

/* The rpi_volt device's under-voltage alarm, NaN when there is none. */
static double pi_hwmon_under_voltage(struct collect_ctx *ctx)
{
	char path[4096];
	double alarm = NAN;
	if (util_path_join(path, sizeof path, ctx->sys, "class/hwmon") < 0)
		return NAN;
	DIR *d = opendir(path);
	if (!d)
		return NAN;
	struct dirent *e;
	while (isnan(alarm) && (e = readdir(d))) {
		if (strncmp(e->d_name, "hwmon", 5) == 0 && pi_hwmon_is_volt(ctx, e->d_name))
			alarm = pi_hwmon_alarm(ctx, e->d_name);
	}
	closedir(d);
	return alarm;
}

/* One row from get_throttled and the hwmon alarm; none without the file. */
static int pi_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	uint32_t raw;
	if (collect_ctx_read(ctx, ctx->sys, PI_THROTTLED, 0) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			log_debug("collect", "pi: %s: %s, not a Raspberry Pi", ctx->path,
			          strerror(errno));
			return 0;
		}
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	if (pi_parse_throttled(ctx->buf, &raw) < 0) {
		collector_fail(col, "%s: not a hex number", ctx->path);
		return -1;
	}
	double hwmon = pi_hwmon_under_voltage(ctx);
	double *row = rowset_add(&col->rows, now_ms, "");
	if (!row)
		return 0;
	pi_throttled_fields(raw, row);
	row[9] = hwmon;
	return 0;
}

const struct collector_ops pi_ops = {
    .metric = "pi",
    .inst_key = "",
    .fields = pi_fields,
    .nfields = PI_NFIELDS,
    .run = pi_run,
};
