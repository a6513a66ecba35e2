/* cores collector: the cpu group's shares per core, from the "cpuN" lines
 * of /proc/stat. Off by default: one more read of /proc/stat a cycle. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two samples of every core; prev is the last one reported against. */
struct cores_state {
	struct cpu_core *prev, *cur;
	size_t nprev, cap;
};

/* Parse every "cpuN" line; returns the count, storing up to max. */
size_t cpu_parse_cores(const char *buf, struct cpu_core *out, size_t max)
{
	size_t n = 0;
	for (const char *p = buf; p; p = text_next_line(p)) {
		if (strncmp(p, "cpu", 3) != 0 || p[3] < '0' || p[3] > '9')
			continue;
		const char *q = p + 3;
		uint64_t id;
		struct cpu_core c;
		if (text_next_u64(&q, &id) < 0 || id > UINT32_MAX || *q != ' ')
			continue;
		memset(&c, 0, sizeof c);
		c.id = (unsigned)id;
		int k = 0;
		while (k < CPU_NSTATES && text_next_u64(&q, &c.times.t[k]) == 0)
			k++;
		if (k <= CPU_IDLE)
			continue;
		if (n < max)
			out[n] = c;
		n++;
	}
	return n;
}

/* Allocate the sample arrays' owner. */
static int cores_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct cores_state));
	return col->state ? 0 : -1;
}

/* Free both sample arrays. */
static void cores_fini(struct collector *col)
{
	struct cores_state *st = col->state;
	if (st) {
		free(st->prev);
		free(st->cur);
	}
	free(st);
	col->state = NULL;
}

/* Make both sample arrays hold n cores. */
static int cores_reserve(struct cores_state *st, size_t n)
{
	if (n <= st->cap)
		return 0;
	struct cpu_core *prev = realloc(st->prev, n * sizeof *prev);
	if (!prev)
		return -1;
	st->prev = prev;
	struct cpu_core *cur = realloc(st->cur, n * sizeof *cur);
	if (!cur)
		return -1;
	st->cur = cur;
	st->cap = n;
	return 0;
}

/* The previous sample of core id, or NULL (new, or back online). */
static const struct cpu_core *cores_find_prev(const struct cores_state *st, unsigned id)
{
	for (size_t i = 0; i < st->nprev; i++) {
		if (st->prev[i].id == id)
			return &st->prev[i];
	}
	return NULL;
}

/* Feed one /proc/stat buffer: rows, named "cpuN", for cores that were in
 * the previous sample too and used any time since. 0 or -1. */
int cores_sample(struct collector *col, const char *buf, uint64_t now_ms)
{
	struct cores_state *st = col->state;
	size_t n = cpu_parse_cores(buf, st->cur, st->cap);
	if (n > st->cap) {
		if (cores_reserve(st, n) < 0) {
			collector_fail(col, "out of memory for %zu cores", n);
			return -1;
		}
		cpu_parse_cores(buf, st->cur, st->cap);
	}
	for (size_t i = 0; i < n; i++) {
		const struct cpu_core *old = cores_find_prev(st, st->cur[i].id);
		double v[CPU_NFIELDS];
		if (!old || cpu_percent(&old->times, &st->cur[i].times, v) < 0)
			continue;
		char name[32];
		snprintf(name, sizeof name, "cpu%u", st->cur[i].id);
		double *row = rowset_add(&col->rows, now_ms, name);
		if (row)
			memcpy(row, v, sizeof v);
	}
	struct cpu_core *t = st->prev;
	st->prev = st->cur;
	st->cur = t;
	st->nprev = n;
	return 0;
}

/* Read /proc/stat and report per core from the second run on. */
static int cores_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	if (collect_ctx_read(ctx, ctx->proc, "stat", 0) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	return cores_sample(col, ctx->buf, now_ms);
}

const struct collector_ops cores_ops = {
    .metric = "cores",
    .inst_key = "core",
    .fields = cpu_fields,
    .nfields = CPU_NFIELDS,
    .init = cores_init,
    .fini = cores_fini,
    .run = cores_run,
};
