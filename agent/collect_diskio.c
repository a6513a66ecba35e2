/* diskio collector: per block device I/O rates, time busy, wait per
 * operation and bytes written so far, from /proc/diskstats. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* /proc/diskstats counts in 512-byte sectors whatever the device's own. */
#define DISKIO_SECTOR 512.0

static const char *const diskio_fields[DISKIO_NFIELDS] = {
    "read_bytes_s", "write_bytes_s", "reads_s",       "writes_s",
    "busy_pct",     "wait_seconds",  "written_bytes",
};

/* Column (after the name, from 0) of /proc/diskstats for each counter. */
static const int diskio_columns[DISKIO_NCOUNTERS] = {
    [DISKIO_READS] = 0,  [DISKIO_READ_SECTORS] = 2,  [DISKIO_READ_MS] = 3,
    [DISKIO_WRITES] = 4, [DISKIO_WRITE_SECTORS] = 6, [DISKIO_WRITE_MS] = 7,
    [DISKIO_IO_MS] = 9,
};

/* Columns every kernel since 2.6 has after the name. */
#define DISKIO_COLUMNS 11

/* Two samples of every device; prev is the last one reported against. */
struct diskio_state {
	struct diskio_dev *prev, *cur;
	size_t nprev, cap;
	uint64_t prev_ms; /* monotonic time of prev */
	int have;         /* prev holds a sample */
};

/* Non-zero if name starts with prefix and continues with a digit. */
static int diskio_named(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(name, prefix, n) == 0 && name[n] >= '0' && name[n] <= '9';
}

/* Non-zero for devices that hold no data of their own: loop, ram, zram. */
int diskio_virtual(const char *name)
{
	return diskio_named(name, "loop") || diskio_named(name, "ram") ||
	       diskio_named(name, "zram");
}

/* Non-zero for a partition by the kernel's naming: a disk whose name ends
 * in a digit (mmcblk0, nvme0n1) numbers its partitions after a "p"; sd, hd,
 * vd and xvd disks end in a letter, their partitions in the number. */
int diskio_partition(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || name[n - 1] < '0' || name[n - 1] > '9')
		return 0;
	static const char *const lettered[] = {"sd", "hd", "vd", "xvd"};
	for (size_t i = 0; i < sizeof lettered / sizeof lettered[0]; i++) {
		size_t k = strlen(lettered[i]);
		if (strncmp(name, lettered[i], k) == 0 && name[k] >= 'a' && name[k] <= 'z')
			return 1;
	}
	if (strncmp(name, "mmcblk", 6) != 0 && strncmp(name, "nvme", 4) != 0)
		return 0;
	size_t i = n;
	while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
		i--;
	return i > 1 && name[i - 1] == 'p' && name[i - 2] >= '0' && name[i - 2] <= '9';
}

/* Parse one "   8  0 sda 1 2 3 ..." line into dev; 0, or -1 to skip it
 * (judged by the name first: a Pi lists 16 ram and 8 loop devices). */
static int diskio_parse_line(const char *line, int partitions, struct diskio_dev *dev)
{
	const char *p = line;
	uint64_t major, minor;
	if (text_next_u64(&p, &major) < 0 || text_next_u64(&p, &minor) < 0)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *name = p;
	while (*p && *p != ' ' && *p != '\t' && *p != '\n')
		p++;
	size_t len = (size_t)(p - name);
	if (len == 0 || len >= DISKIO_NAME_MAX)
		return -1;
	memcpy(dev->name, name, len);
	dev->name[len] = '\0';
	if (diskio_virtual(dev->name) || (!partitions && diskio_partition(dev->name)))
		return -1;
	uint64_t col[DISKIO_COLUMNS];
	int n = 0;
	while (n < DISKIO_COLUMNS && text_next_u64(&p, &col[n]) == 0)
		n++;
	if (n < DISKIO_COLUMNS)
		return -1;
	text_sanitise(dev->name);
	for (int i = 0; i < DISKIO_NCOUNTERS; i++)
		dev->c[i] = col[diskio_columns[i]];
	return 0;
}

/* Parse the devices worth reporting; returns the count, storing up to max. */
size_t diskio_parse(const char *buf, int partitions, struct diskio_dev *out, size_t max)
{
	size_t n = 0;
	for (const char *p = buf; p; p = text_next_line(p)) {
		struct diskio_dev dev;
		if (diskio_parse_line(p, partitions, &dev) < 0)
			continue;
		if (n < max)
			out[n] = dev;
		n++;
	}
	return n;
}

/* Rates between two samples of one device over dt_ms (> 0), in the group's
 * field order. -1 (no row) when a counter went back: a reset, or a wrap at
 * the counter's width, neither of which gives a rate worth showing. */
int diskio_rates(const struct diskio_dev *old, const struct diskio_dev *cur, uint64_t dt_ms,
                 double out[DISKIO_NFIELDS])
{
	uint64_t d[DISKIO_NCOUNTERS];
	for (int i = 0; i < DISKIO_NCOUNTERS; i++) {
		if (cur->c[i] < old->c[i])
			return -1;
		d[i] = cur->c[i] - old->c[i];
	}
	double per_s = 1000.0 / (double)dt_ms;
	out[0] = (double)d[DISKIO_READ_SECTORS] * DISKIO_SECTOR * per_s;
	out[1] = (double)d[DISKIO_WRITE_SECTORS] * DISKIO_SECTOR * per_s;
	out[2] = (double)d[DISKIO_READS] * per_s;
	out[3] = (double)d[DISKIO_WRITES] * per_s;
	double busy = 100.0 * (double)d[DISKIO_IO_MS] / (double)dt_ms;
	out[4] = busy > 100.0 ? 100.0 : busy;
	double ops = (double)d[DISKIO_READS] + (double)d[DISKIO_WRITES];
	double wait = (double)d[DISKIO_READ_MS] + (double)d[DISKIO_WRITE_MS];
	out[5] = ops > 0 ? wait / ops / 1000.0 : 0.0;
	out[6] = (double)cur->c[DISKIO_WRITE_SECTORS] * DISKIO_SECTOR;
	return 0;
}

/* Allocate the sample arrays' owner. */
static int diskio_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct diskio_state));
	return col->state ? 0 : -1;
}

/* Free both sample arrays. */
static void diskio_fini(struct collector *col)
{
	struct diskio_state *st = col->state;
	if (st) {
		free(st->prev);
		free(st->cur);
	}
	free(st);
	col->state = NULL;
}

/* Make both sample arrays hold n devices. */
static int diskio_reserve(struct diskio_state *st, size_t n)
{
	if (n <= st->cap)
		return 0;
	struct diskio_dev *prev = realloc(st->prev, n * sizeof *prev);
	if (!prev)
		return -1;
	st->prev = prev;
	struct diskio_dev *cur = realloc(st->cur, n * sizeof *cur);
	if (!cur)
		return -1;
	st->cur = cur;
	st->cap = n;
	return 0;
}

/* The previous sample of the device called name, or NULL if it is new. */
static const struct diskio_dev *diskio_find_prev(const struct diskio_state *st, const char *name)
{
	for (size_t i = 0; i < st->nprev; i++) {
		if (strcmp(st->prev[i].name, name) == 0)
			return &st->prev[i];
	}
	return NULL;
}

/* Feed one /proc/diskstats sample taken at mono_ms; rows for devices seen
 * in the previous sample too whose counters did not go back. */
int diskio_sample(struct collector *col, const char *buf, int partitions, uint64_t mono_ms,
                  uint64_t now_ms)
{
	struct diskio_state *st = col->state;
	size_t n = diskio_parse(buf, partitions, st->cur, st->cap);
	if (n > st->cap) {
		if (diskio_reserve(st, n) < 0) {
			collector_fail(col, "out of memory for %zu devices", n);
			return -1;
		}
		diskio_parse(buf, partitions, st->cur, st->cap);
	}
	/* No time passed: keep the older sample so the next rate spans more. */
	if (st->have && mono_ms <= st->prev_ms)
		return 0;
	for (size_t i = 0; st->have && i < n; i++) {
		const struct diskio_dev *old = diskio_find_prev(st, st->cur[i].name);
		double v[DISKIO_NFIELDS];
		if (!old || diskio_rates(old, &st->cur[i], mono_ms - st->prev_ms, v) < 0) {
			if (old)
				log_debug("collect", "diskio: %s: a counter went back, no rate",
				          st->cur[i].name);
			continue;
		}
		double *row = rowset_add(&col->rows, now_ms, st->cur[i].name);
		if (row)
			memcpy(row, v, sizeof v);
	}
	struct diskio_dev *t = st->prev;
	st->prev = st->cur;
	st->cur = t;
	st->nprev = n;
	st->prev_ms = mono_ms;
	st->have = 1;
	return 0;
}

/* Read /proc/diskstats and report rates from the second run on. */
static int diskio_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	if (collect_ctx_read(ctx, ctx->proc, "diskstats", COLLECT_WHOLE) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	return diskio_sample(col, ctx->buf, ctx->diskio_partitions, util_mono_ms(), now_ms);
}

const struct collector_ops diskio_ops = {
    .metric = "diskio",
    .inst_key = "device",
    .fields = diskio_fields,
    .nfields = DISKIO_NFIELDS,
    .init = diskio_init,
    .fini = diskio_fini,
    .run = diskio_run,
};
