/* temp collector: one row per thermal zone under <sys>/class/thermal. */
#include "collect_int.h"
#include "collect_parse.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const char *const temp_fields[TEMP_NFIELDS] = {"celsius"};

/* Zone numbers found by the last scan, grown once. */
struct temp_state {
	unsigned *zones;
	size_t n, cap;
};

/* Parse millidegrees such as "48686" or "-5000" into Celsius. */
int temp_parse(const char *buf, double *celsius)
{
	const char *p = buf;
	while (*p == ' ' || *p == '\t')
		p++;
	int neg = *p == '-';
	if (neg)
		p++;
	uint64_t milli;
	if (text_next_u64(&p, &milli) < 0)
		return -1;
	*celsius = (neg ? -(double)milli : (double)milli) / 1000.0;
	return 0;
}

/* Allocate the zone list. */
static int temp_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct temp_state));
	return col->state ? 0 : -1;
}

/* Free the zone list. */
static void temp_fini(struct collector *col)
{
	struct temp_state *st = col->state;
	if (st)
		free(st->zones);
	free(st);
	col->state = NULL;
}

/* Order zone numbers for qsort. */
static int temp_cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* Remember one zone number, growing the list if needed. */
static int temp_push(struct temp_state *st, unsigned zone)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 8;
		unsigned *z = realloc(st->zones, cap * sizeof *z);
		if (!z)
			return -1;
		st->zones = z;
		st->cap = cap;
	}
	st->zones[st->n++] = zone;
	return 0;
}

/* Zone number of a "thermal_zoneN" entry name, or -1 for other entries. */
static int temp_zone_number(const char *name, unsigned *zone)
{
	const char *p = name + strlen("thermal_zone");
	uint64_t v;
	if (strncmp(name, "thermal_zone", strlen("thermal_zone")) != 0 ||
	    text_next_u64(&p, &v) < 0 || *p != '\0' || v > UINT32_MAX)
		return -1;
	*zone = (unsigned)v;
	return 0;
}

/* List thermal_zoneN folders in number order; -1 if the folder is absent. */
static int temp_scan(struct temp_state *st, struct collect_ctx *ctx)
{
	if (util_path_join(ctx->path, sizeof ctx->path, ctx->sys, "class/thermal") < 0)
		return -1;
	DIR *d = opendir(ctx->path);
	if (!d)
		return -1;
	st->n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned zone;
		if (temp_zone_number(e->d_name, &zone) == 0 && temp_push(st, zone) < 0)
			break;
	}
	closedir(d);
	if (st->n > 1)
		qsort(st->zones, st->n, sizeof *st->zones, temp_cmp);
	return 0;
}

/* Non-zero if an earlier row of this run already uses instance. */
static int temp_taken(const struct rowset *rs, const char *instance)
{
	for (uint32_t i = 0; i < rs->group.nrows; i++) {
		if (strcmp(rowset_instance(rs, i), instance) == 0)
			return 1;
	}
	return 0;
}

/* Read a zone's type into type and its temperature; 0 or -1. */
static int temp_read_zone(struct collect_ctx *ctx, unsigned zone, char *type, size_t size,
                          double *celsius)
{
	char rel[64];
	snprintf(rel, sizeof rel, "class/thermal/thermal_zone%u/type", zone);
	if (collect_ctx_read(ctx, ctx->sys, rel, 0) < 0)
		return -1;
	text_trim_end(ctx->buf);
	if (ctx->buf[0] == '\0')
		return -1;
	text_copy(type, size, ctx->buf);
	snprintf(rel, sizeof rel, "class/thermal/thermal_zone%u/temp", zone);
	if (collect_ctx_read(ctx, ctx->sys, rel, 0) < 0)
		return -1;
	return temp_parse(ctx->buf, celsius);
}

/* Add one zone's row, named by its type; skip it if unreadable. */
static void temp_add(struct collector *col, struct collect_ctx *ctx, unsigned zone, uint64_t now_ms)
{
	char type[PROTO_INST_MAX + 1], name[PROTO_INST_MAX + 1];
	double celsius;
	if (temp_read_zone(ctx, zone, type, sizeof type, &celsius) < 0) {
		log_debug("collect", "temp: thermal_zone%u unreadable or empty, skipped", zone);
		return;
	}
	/* Two zones of one type (acpitz twice) get "-<zone>" on the later one. */
	if (temp_taken(&col->rows, type))
		snprintf(name, sizeof name, "%.100s-%u", type, zone);
	else
		text_copy(name, sizeof name, type);
	double *row = rowset_add(&col->rows, now_ms, name);
	if (row)
		row[0] = celsius;
}

/* One row per readable thermal zone; none (and no warning) without any. */
static int temp_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	struct temp_state *st = col->state;
	if (temp_scan(st, ctx) < 0) {
		log_debug("collect", "temp: %s: %s, no thermal zones", ctx->path, strerror(errno));
		return 0;
	}
	for (size_t i = 0; i < st->n; i++)
		temp_add(col, ctx, st->zones[i], now_ms);
	return 0;
}

const struct collector_ops temp_ops = {
    .metric = "temp",
    .inst_key = "zone",
    .fields = temp_fields,
    .nfields = TEMP_NFIELDS,
    .init = temp_init,
    .fini = temp_fini,
    .run = temp_run,
};
