/* cpu collector: shares of CPU time between two reads of /proc/stat. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The cpu group's fields, shared with the per-core cores group. */
const char *const cpu_fields[CPU_NFIELDS] = {
    "usage", "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
};

struct cpu_prev {
	struct cpu_times times;
	int have; /* times holds a sample */
};

/* Parse the aggregate "cpu " line; old kernels may lack the last columns. */
int cpu_parse_stat(const char *buf, struct cpu_times *out)
{
	for (const char *p = buf; p; p = text_next_line(p)) {
		if (strncmp(p, "cpu ", 4) != 0)
			continue;
		p += 4;
		memset(out, 0, sizeof *out);
		int n = 0;
		while (n < CPU_NSTATES && text_next_u64(&p, &out->t[n]) == 0)
			n++;
		return n > CPU_IDLE ? 0 : -1;
	}
	return -1;
}

/* Percent of each state over the interval, counters going back count 0. */
int cpu_percent(const struct cpu_times *old, const struct cpu_times *cur, double out[CPU_NFIELDS])
{
	uint64_t d[CPU_NSTATES];
	uint64_t total = 0;
	for (int i = 0; i < CPU_NSTATES; i++) {
		d[i] = cur->t[i] >= old->t[i] ? cur->t[i] - old->t[i] : 0;
		total += d[i];
	}
	if (total == 0)
		return -1;
	for (int i = 0; i < CPU_NSTATES; i++)
		out[1 + i] = 100.0 * (double)d[i] / (double)total;
	double usage = 100.0 - out[1 + CPU_IDLE] - out[1 + CPU_IOWAIT];
	out[0] = usage < 0.0 ? 0.0 : usage;
	return 0;
}

/* Allocate the previous-sample slot. */
static int cpu_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct cpu_prev));
	return col->state ? 0 : -1;
}

/* Free the previous-sample slot. */
static void cpu_fini(struct collector *col)
{
	free(col->state);
	col->state = NULL;
}

/* Read /proc/stat and give one row from the second sample on. */
static int cpu_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	struct cpu_prev *prev = col->state;
	struct cpu_times cur;
	if (collect_ctx_read(ctx, ctx->proc, "stat", 0) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	if (cpu_parse_stat(ctx->buf, &cur) < 0) {
		collector_fail(col, "%s: no aggregate cpu line", ctx->path);
		return -1;
	}
	double v[CPU_NFIELDS];
	int ok = prev->have && cpu_percent(&prev->times, &cur, v) == 0;
	prev->times = cur;
	prev->have = 1;
	if (!ok)
		return 0;
	double *row = rowset_add(&col->rows, now_ms, "");
	if (row)
		memcpy(row, v, sizeof v);
	return 0;
}

const struct collector_ops cpu_ops = {
    .metric = "cpu",
    .inst_key = "",
    .fields = cpu_fields,
    .nfields = CPU_NFIELDS,
    .init = cpu_init,
    .fini = cpu_fini,
    .run = cpu_run,
};
