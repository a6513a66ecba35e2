/* procs collector: the busiest processes by CPU and by memory from one pass
 * over /proc, and a procs_totals row of counts. CPU shares come from the
 * utime+stime growth since the previous pass, so rows start on the second. */
#include "collect_int.h"
#include "collect_parse.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Rows kept per list: the top processes by CPU, and the top by memory. */
#define PROCS_TOP 5
/* Processes whose ticks are remembered between passes; ones beyond are
 * counted but get no cpu_pct (NaN) until there is room. */
#define PROCS_TRACK_MAX 2048

/* Index of the value each top list is ranked by. */
enum { PROCS_CPU_PCT, PROCS_RSS_BYTES, PROCS_MEM_PCT, PROCS_FLAGGED };

static const char *const procs_fields[PROCS_NFIELDS] = {
    "cpu_pct",
    "rss_bytes",
    "mem_pct",
    "flagged",
};

static const char *const procs_summary_fields[PROCS_SUMMARY_NFIELDS] = {
    "total",
    "running",
    "flagged",
};

/* What a pass remembers of one process for the next one's delta. */
struct procs_seen {
	uint64_t start; /* starttime: a reused pid has another one */
	uint64_t ticks; /* utime + stime */
	int32_t pid;
};

/* A process that may become a row: comm, pid and the row's values. */
struct procs_pick {
	char comm[PROCS_COMM_MAX];
	int32_t pid;
	double v[PROCS_NFIELDS];
};

/* Counts and top lists of the pass in progress. */
struct procs_scan {
	double mem_total; /* bytes, 0 when unknown */
	uint64_t dt_ms;   /* since the previous pass, 0 on the first */
	size_t total, running, flagged;
	struct procs_pick by_cpu[PROCS_TOP], by_mem[PROCS_TOP];
	size_t ncpu, nmem;
};

/* Two fixed tables, allocated once: the previous pass (sorted by pid) and
 * the one being filled; they swap after each pass. */
struct procs_state {
	struct procs_seen seen[2][PROCS_TRACK_MAX];
	struct procs_seen *prev, *cur;
	size_t nprev, ncur;
	uint64_t prev_ms; /* monotonic time of prev */
	long hz;          /* clock ticks a second */
	long page;        /* bytes a page */
	int have;         /* prev holds a pass */
};

/* Start of field number field (as proc(5) counts them, state being 3) in
 * the text after comm's ')', or NULL when the line is shorter. */
static const char *procs_field(const char *p, int field)
{
	for (int k = 3;; k++) {
		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			return NULL;
		if (k == field)
			return p;
		while (*p != '\0' && *p != ' ' && *p != '\n')
			p++;
	}
}

/* The unsigned number at field number field after comm; 0 or -1. */
static int procs_field_u64(const char *rest, int field, uint64_t *out)
{
	const char *p = procs_field(rest, field);
	return p ? text_next_u64(&p, out) : -1;
}

/* Parse one stat line: comm between the first '(' and the last ')'. */
int procs_parse_stat(const char *buf, struct procs_stat *out)
{
	const char *open = strchr(buf, '(');
	const char *close = strrchr(buf, ')');
	if (!open || !close || close < open)
		return -1;
	const char *rest = close + 1;
	const char *state = procs_field(rest, 3);
	uint64_t utime, stime;
	if (!state || procs_field_u64(rest, 14, &utime) < 0 ||
	    procs_field_u64(rest, 15, &stime) < 0 || procs_field_u64(rest, 22, &out->start) < 0)
		return -1;
	size_t len = (size_t)(close - open - 1);
	if (len >= sizeof out->comm)
		len = sizeof out->comm - 1;
	memcpy(out->comm, open + 1, len);
	out->comm[len] = '\0';
	text_sanitise(out->comm);
	out->state = *state;
	out->ticks = utime + stime;
	return 0;
}

/* Parse statm's "size resident ..." for the resident page count. */
int procs_parse_statm(const char *buf, uint64_t *pages)
{
	const char *p = buf;
	uint64_t size;
	return text_next_u64(&p, &size) < 0 || text_next_u64(&p, pages) < 0 ? -1 : 0;
}

/* Percent of one CPU that ticks over dt_ms make; NaN without a clock. */
double procs_cpu_pct(uint64_t ticks, long hz, uint64_t dt_ms)
{
	if (hz <= 0 || dt_ms == 0)
		return NAN;
	return 100000.0 * (double)ticks / ((double)hz * (double)dt_ms);
}

/* Over either limit; comparisons with NaN are false, so unknown is not. */
int procs_flagged(double cpu_pct, double mem_pct)
{
	return cpu_pct > PROCS_CPU_LIMIT || mem_pct > PROCS_MEM_LIMIT;
}

/* Allocate both tables and learn the tick rate and page size; done at the
 * first pass, not at start: procs is off unless the server asks for it, and
 * the tables are nearly 100 kB. */
static struct procs_state *procs_state_new(void)
{
	struct procs_state *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->prev = st->seen[0];
	st->cur = st->seen[1];
	st->hz = sysconf(_SC_CLK_TCK);
	if (st->hz <= 0)
		st->hz = 100;
	st->page = sysconf(_SC_PAGESIZE);
	if (st->page <= 0)
		st->page = 4096;
	return st;
}

/* Free both tables. */
static void procs_fini(struct collector *col)
{
	free(col->state);
	col->state = NULL;
}

/* The pid a /proc entry names, or -1 for entries that are not processes. */
static int procs_pid(const char *name, int32_t *pid)
{
	const char *p = name;
	uint64_t v;
	if (*name < '0' || *name > '9' || text_next_u64(&p, &v) < 0 || *p != '\0' || v == 0 ||
	    v > INT32_MAX)
		return -1;
	*pid = (int32_t)v;
	return 0;
}

/* Order remembered processes by pid for qsort and bsearch. */
static int procs_cmp_pid(const void *a, const void *b)
{
	int32_t x = ((const struct procs_seen *)a)->pid, y = ((const struct procs_seen *)b)->pid;
	return x < y ? -1 : x > y;
}

/* The previous pass's entry for pid, or NULL. */
static const struct procs_seen *procs_find(const struct procs_state *st, int32_t pid)
{
	struct procs_seen key = {.pid = pid};
	if (!st->have || st->nprev == 0)
		return NULL;
	return bsearch(&key, st->prev, st->nprev, sizeof key, procs_cmp_pid);
}

/* CPU percent since the previous pass, NaN for a process it did not see
 * (new, a reused pid with another starttime, or untracked). */
static double procs_cpu_since(const struct procs_state *st, const struct procs_scan *scan,
                              int32_t pid, const struct procs_stat *ps)
{
	const struct procs_seen *old = procs_find(st, pid);
	if (!old || old->start != ps->start)
		return NAN;
	return procs_cpu_pct(ps->ticks >= old->ticks ? ps->ticks - old->ticks : 0, st->hz,
	                     scan->dt_ms);
}

/* Remember a process for the next pass, while the table has room. */
static void procs_remember(struct procs_state *st, int32_t pid, const struct procs_stat *ps)
{
	if (st->ncur == PROCS_TRACK_MAX)
		return;
	st->cur[st->ncur].pid = pid;
	st->cur[st->ncur].start = ps->start;
	st->cur[st->ncur].ticks = ps->ticks;
	st->ncur++;
}

/* Non-zero if a ranks above b on value f: larger, then the lower pid. */
static int procs_above(const struct procs_pick *a, const struct procs_pick *b, int f)
{
	if (a->v[f] != b->v[f])
		return a->v[f] > b->v[f];
	return a->pid < b->pid;
}

/* Insert p into a top list kept in order; the last one may fall off. */
static void procs_offer(struct procs_pick *list, size_t *n, const struct procs_pick *p, int f)
{
	size_t i = *n;
	while (i > 0 && procs_above(p, &list[i - 1], f))
		i--;
	if (i >= PROCS_TOP)
		return;
	size_t last = *n < PROCS_TOP ? *n : PROCS_TOP - 1;
	memmove(&list[i + 1], &list[i], (last - i) * sizeof *list);
	list[i] = *p;
	if (*n < PROCS_TOP)
		(*n)++;
}

/* Count one process and offer it to both top lists. */
static void procs_count(struct procs_scan *scan, const struct procs_pick *p, char state)
{
	scan->total++;
	scan->running += state == 'R';
	scan->flagged += p->v[PROCS_FLAGGED] != 0.0;
	if (!isnan(p->v[PROCS_CPU_PCT]))
		procs_offer(scan->by_cpu, &scan->ncpu, p, PROCS_CPU_PCT);
	procs_offer(scan->by_mem, &scan->nmem, p, PROCS_RSS_BYTES);
}

/* Read one /proc/<pid> and count it; a process that vanished or cannot
 * be read is skipped without a word. */
static void procs_visit(struct procs_state *st, struct procs_scan *scan, struct collect_ctx *ctx,
                        int32_t pid)
{
	char rel[32];
	struct procs_stat ps;
	uint64_t pages;
	snprintf(rel, sizeof rel, "%d/stat", (int)pid);
	if (collect_ctx_read(ctx, ctx->proc, rel, COLLECT_ONCE) < 0 ||
	    procs_parse_stat(ctx->buf, &ps) < 0)
		return;
	snprintf(rel, sizeof rel, "%d/statm", (int)pid);
	if (collect_ctx_read(ctx, ctx->proc, rel, COLLECT_ONCE) < 0 ||
	    procs_parse_statm(ctx->buf, &pages) < 0)
		return;
	struct procs_pick p;
	memcpy(p.comm, ps.comm, sizeof p.comm);
	p.pid = pid;
	p.v[PROCS_CPU_PCT] = procs_cpu_since(st, scan, pid, &ps);
	p.v[PROCS_RSS_BYTES] = (double)pages * (double)st->page;
	p.v[PROCS_MEM_PCT] =
	    scan->mem_total > 0 ? 100.0 * p.v[PROCS_RSS_BYTES] / scan->mem_total : NAN;
	p.v[PROCS_FLAGGED] = procs_flagged(p.v[PROCS_CPU_PCT], p.v[PROCS_MEM_PCT]);
	procs_remember(st, pid, &ps);
	procs_count(scan, &p, ps.state);
}

/* MemTotal in bytes from <proc>/meminfo, 0 when unknown. */
static double procs_mem_total(struct collect_ctx *ctx)
{
	double v[MEM_NFIELDS];
	if (collect_ctx_read(ctx, ctx->proc, "meminfo", 0) < 0 ||
	    mem_parse_meminfo(ctx->buf, v) < 0)
		return 0;
	return v[0];
}

/* Walk <proc> once, visiting every process folder. 0 or -1. */
static int procs_walk(struct procs_state *st, struct procs_scan *scan, struct collect_ctx *ctx)
{
	DIR *d = opendir(ctx->proc);
	if (!d)
		return -1;
	st->ncur = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		int32_t pid;
		if (procs_pid(e->d_name, &pid) == 0)
			procs_visit(st, scan, ctx, pid);
	}
	closedir(d);
	if (scan->total > st->ncur)
		log_debug("collect", "procs: %zu processes, ticks kept for %zu", scan->total,
		          st->ncur);
	return 0;
}

/* Make this pass the previous one, sorted by pid for lookups. */
static void procs_keep(struct procs_state *st, uint64_t mono_ms)
{
	qsort(st->cur, st->ncur, sizeof *st->cur, procs_cmp_pid);
	struct procs_seen *t = st->prev;
	st->prev = st->cur;
	st->cur = t;
	st->nprev = st->ncur;
	st->prev_ms = mono_ms;
	st->have = 1;
}

/* Non-zero if pid is among the first n picks of list. */
static int procs_listed(const struct procs_pick *list, size_t n, int32_t pid)
{
	for (size_t i = 0; i < n; i++) {
		if (list[i].pid == pid)
			return 1;
	}
	return 0;
}

/* Add one pick's row, named "<comm>:<pid>". */
static void procs_add_row(struct rowset *rs, const struct procs_pick *p, uint64_t now_ms)
{
	char inst[PROTO_INST_MAX + 1];
	snprintf(inst, sizeof inst, "%s:%d", p->comm, (int)p->pid);
	double *row = rowset_add(rs, now_ms, inst);
	if (row)
		memcpy(row, p->v, sizeof p->v);
}

/* Rows for the top by CPU, then the top by memory not already in, and
 * the summary row. */
static void procs_report(struct collector *col, const struct procs_scan *scan, uint64_t now_ms)
{
	for (size_t i = 0; i < scan->ncpu; i++)
		procs_add_row(&col->rows, &scan->by_cpu[i], now_ms);
	for (size_t i = 0; i < scan->nmem; i++) {
		if (!procs_listed(scan->by_cpu, scan->ncpu, scan->by_mem[i].pid))
			procs_add_row(&col->rows, &scan->by_mem[i], now_ms);
	}
	double *sum = rowset_add(&col->summary, now_ms, "");
	if (!sum)
		return;
	sum[0] = (double)scan->total;
	sum[1] = (double)scan->running;
	sum[2] = (double)scan->flagged;
}

/* One pass at mono_ms; rows from the second pass on, none (and no warning)
 * when the folder holds no processes at all. */
int procs_sample(struct collector *col, struct collect_ctx *ctx, uint64_t mono_ms, uint64_t now_ms)
{
	if (!col->state && !(col->state = procs_state_new())) {
		collector_fail(col, "procs: out of memory");
		return -1;
	}
	struct procs_state *st = col->state;
	/* No time passed: keep the older pass so the next delta spans more. */
	if (st->have && mono_ms <= st->prev_ms)
		return 0;
	struct procs_scan scan;
	memset(&scan, 0, sizeof scan);
	scan.mem_total = procs_mem_total(ctx);
	scan.dt_ms = st->have ? mono_ms - st->prev_ms : 0;
	if (procs_walk(st, &scan, ctx) < 0) {
		collector_fail(col, "%s: %s", ctx->proc, strerror(errno));
		return -1;
	}
	int first = !st->have;
	procs_keep(st, mono_ms);
	if (scan.total == 0)
		log_debug("collect", "procs: %s: no processes, nothing to report", ctx->proc);
	else if (!first)
		procs_report(col, &scan, now_ms);
	return 0;
}

/* Scan /proc now; the interval is timed on the monotonic clock. */
static int procs_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	return procs_sample(col, ctx, util_mono_ms(), now_ms);
}

const struct collector_ops procs_ops = {
    .metric = "procs",
    .inst_key = "proc",
    .fields = procs_fields,
    .nfields = PROCS_NFIELDS,
    .summary_metric = "procs_totals",
    .summary_fields = procs_summary_fields,
    .summary_nfields = PROCS_SUMMARY_NFIELDS,
    .fini = procs_fini,
    .run = procs_run,
};
