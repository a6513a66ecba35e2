/* mem collector: memory and swap use from /proc/meminfo. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <string.h>

static const char *const mem_fields[MEM_NFIELDS] = {
    "total_bytes",      "available_bytes", "used_bytes",    "used_pct",
    "available_pct",    "free_bytes",      "buffers_bytes", "cached_bytes",
    "swap_total_bytes", "swap_free_bytes", "swap_used_pct",
};

/* The /proc/meminfo keys read, indexed by enum mem_key. */
enum mem_key {
	MEM_TOTAL,
	MEM_FREE,
	MEM_AVAILABLE,
	MEM_BUFFERS,
	MEM_CACHED,
	MEM_SWAP_TOTAL,
	MEM_SWAP_FREE,
	MEM_NKEYS
};

static const char *const mem_keys[MEM_NKEYS] = {
    "MemTotal:", "MemFree:", "MemAvailable:", "Buffers:", "Cached:", "SwapTotal:", "SwapFree:",
};

/* Store the kB value of one meminfo line if its key is one we want. */
static void mem_parse_line(const char *line, uint64_t kb[MEM_NKEYS], int seen[MEM_NKEYS])
{
	for (int k = 0; k < MEM_NKEYS; k++) {
		size_t n = strlen(mem_keys[k]);
		if (strncmp(line, mem_keys[k], n) != 0)
			continue;
		const char *p = line + n;
		if (text_next_u64(&p, &kb[k]) == 0)
			seen[k] = 1;
		return;
	}
}

/* part as a percentage of whole, 0 when whole is 0. */
static double mem_pct(double part, double whole)
{
	return whole > 0.0 ? 100.0 * part / whole : 0.0;
}

/* Parse meminfo into the mem group's fields, in bytes and percents. */
int mem_parse_meminfo(const char *buf, double out[MEM_NFIELDS])
{
	uint64_t kb[MEM_NKEYS] = {0};
	int seen[MEM_NKEYS] = {0};
	for (const char *p = buf; p; p = text_next_line(p))
		mem_parse_line(p, kb, seen);
	if (!seen[MEM_TOTAL])
		return -1;
	/* Kernels before 3.14 have no MemAvailable: free + buffers + cached. */
	if (!seen[MEM_AVAILABLE])
		kb[MEM_AVAILABLE] = kb[MEM_FREE] + kb[MEM_BUFFERS] + kb[MEM_CACHED];
	if (kb[MEM_AVAILABLE] > kb[MEM_TOTAL])
		kb[MEM_AVAILABLE] = kb[MEM_TOTAL];
	double total = (double)kb[MEM_TOTAL] * 1024.0;
	double avail = (double)kb[MEM_AVAILABLE] * 1024.0;
	double swap_total = (double)kb[MEM_SWAP_TOTAL] * 1024.0;
	double swap_free = (double)kb[MEM_SWAP_FREE] * 1024.0;
	double swap_used = swap_total > swap_free ? swap_total - swap_free : 0.0;
	out[0] = total;
	out[1] = avail;
	out[2] = total - avail;
	out[3] = mem_pct(total - avail, total);
	out[4] = mem_pct(avail, total);
	out[5] = (double)kb[MEM_FREE] * 1024.0;
	out[6] = (double)kb[MEM_BUFFERS] * 1024.0;
	out[7] = (double)kb[MEM_CACHED] * 1024.0;
	out[8] = swap_total;
	out[9] = swap_free;
	out[10] = mem_pct(swap_used, swap_total);
	return 0;
}

/* Read /proc/meminfo into one row. */
static int mem_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	double v[MEM_NFIELDS];
	if (collect_ctx_read(ctx, ctx->proc, "meminfo", 0) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	if (mem_parse_meminfo(ctx->buf, v) < 0) {
		collector_fail(col, "%s: no MemTotal", ctx->path);
		return -1;
	}
	double *row = rowset_add(&col->rows, now_ms, "");
	if (row)
		memcpy(row, v, sizeof v);
	return 0;
}

const struct collector_ops mem_ops = {
    .metric = "mem",
    .inst_key = "",
    .fields = mem_fields,
    .nfields = MEM_NFIELDS,
    .run = mem_run,
};
