/* vmstat collector: swapping, major page faults and OOM kills from
 * /proc/vmstat. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const vmstat_fields[VMSTAT_NFIELDS] = {
    "swap_in_s", "swap_out_s", "major_faults_s", "oom_kills", "oom_kills_new",
};

/* /proc/vmstat's name of each counter with a space after it, and its
 * length, in enum vmstat_counter order. */
#define VMSTAT_NAME(s)                                                                             \
	{                                                                                          \
		s " ", sizeof s                                                                    \
	}
static const struct {
	const char *name;
	size_t len;
} vmstat_names[VMSTAT_NCOUNTERS] = {
    [VMSTAT_PSWPIN] = VMSTAT_NAME("pswpin"),
    [VMSTAT_PSWPOUT] = VMSTAT_NAME("pswpout"),
    [VMSTAT_PGMAJFAULT] = VMSTAT_NAME("pgmajfault"),
    [VMSTAT_OOM_KILL] = VMSTAT_NAME("oom_kill"),
};

/* The previous sample. */
struct vmstat_state {
	struct vmstat_counters prev;
	uint64_t prev_ms; /* monotonic time of prev */
	int have;
};

/* Parse the counters the group needs; one missing (oom_kill before Linux
 * 4.13) stays unset in out->present. 0, or -1 when none is there. */
int vmstat_parse(const char *buf, struct vmstat_counters *out)
{
	memset(out, 0, sizeof *out);
	int found = 0;
	/* About 180 lines, four wanted: compare two bytes before the rest. */
	for (const char *p = buf; p; p = text_next_line(p)) {
		for (int i = 0; i < VMSTAT_NCOUNTERS; i++) {
			const char *name = vmstat_names[i].name;
			const char *v = p + vmstat_names[i].len;
			if (p[0] != name[0] || p[1] != name[1] ||
			    memcmp(p, name, vmstat_names[i].len) != 0 ||
			    text_next_u64(&v, &out->c[i]) < 0)
				continue;
			if (!(out->present & 1u << i))
				found++;
			out->present |= 1u << i;
			break;
		}
		if (found == VMSTAT_NCOUNTERS)
			break;
	}
	return found ? 0 : -1;
}

/* Growth of counter i, NaN when either sample lacks it or it went back. */
static double vmstat_delta(const struct vmstat_counters *old, const struct vmstat_counters *cur,
                           int i)
{
	unsigned bit = 1u << i;
	if (!(old->present & bit) || !(cur->present & bit) || cur->c[i] < old->c[i])
		return NAN;
	return (double)(cur->c[i] - old->c[i]);
}

/* The group's fields between two samples dt_ms (> 0) apart. */
void vmstat_fields_of(const struct vmstat_counters *old, const struct vmstat_counters *cur,
                      uint64_t dt_ms, double out[VMSTAT_NFIELDS])
{
	double per_s = 1000.0 / (double)dt_ms;
	out[0] = vmstat_delta(old, cur, VMSTAT_PSWPIN) * per_s;
	out[1] = vmstat_delta(old, cur, VMSTAT_PSWPOUT) * per_s;
	out[2] = vmstat_delta(old, cur, VMSTAT_PGMAJFAULT) * per_s;
	out[3] = cur->present & 1u << VMSTAT_OOM_KILL ? (double)cur->c[VMSTAT_OOM_KILL] : NAN;
	out[4] = vmstat_delta(old, cur, VMSTAT_OOM_KILL);
}

/* Allocate the previous-sample slot. */
static int vmstat_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct vmstat_state));
	return col->state ? 0 : -1;
}

/* Free the previous-sample slot. */
static void vmstat_fini(struct collector *col)
{
	free(col->state);
	col->state = NULL;
}

/* Feed one /proc/vmstat buffer read at mono_ms; a row from the second on. */
int vmstat_sample(struct collector *col, const char *buf, uint64_t mono_ms, uint64_t now_ms)
{
	struct vmstat_state *st = col->state;
	struct vmstat_counters cur;
	if (vmstat_parse(buf, &cur) < 0) {
		collector_fail(col, "no pswpin, pswpout, pgmajfault or oom_kill");
		return -1;
	}
	if (st->have && mono_ms <= st->prev_ms)
		return 0;
	if (st->have) {
		double *row = rowset_add(&col->rows, now_ms, "");
		if (row)
			vmstat_fields_of(&st->prev, &cur, mono_ms - st->prev_ms, row);
	}
	st->prev = cur;
	st->prev_ms = mono_ms;
	st->have = 1;
	return 0;
}

/* Read /proc/vmstat and report from the second run on. */
static int vmstat_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	if (collect_ctx_read(ctx, ctx->proc, "vmstat", COLLECT_WHOLE) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	return vmstat_sample(col, ctx->buf, util_mono_ms(), now_ms);
}

const struct collector_ops vmstat_ops = {
    .metric = "vmstat",
    .inst_key = "",
    .fields = vmstat_fields,
    .nfields = VMSTAT_NFIELDS,
    .init = vmstat_init,
    .fini = vmstat_fini,
    .run = vmstat_run,
};
