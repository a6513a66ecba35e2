/* cpufreq collector: current, lowest and highest allowed clock of each
 * cpufreq policy (a group of cores sharing one clock), in MHz. A Pi lowers
 * its clock when hot or short of power before the firmware flags it. */
#include "collect_int.h"
#include "collect_parse.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define CPUFREQ_DIR "devices/system/cpu/cpufreq"

static const char *const cpufreq_fields[CPUFREQ_NFIELDS] = {"cur_mhz", "min_mhz", "max_mhz"};

/* The files of one policy, in field order. */
static const char *const cpufreq_files[CPUFREQ_NFIELDS] = {"scaling_cur_freq", "scaling_min_freq",
                                                           "scaling_max_freq"};

/* Most policies reported; a board has one per cluster of cores. */
#define CPUFREQ_MAX 16
/* Longest "devices/system/cpu/cpufreq/policyN/scaling_cur_freq". */
#define CPUFREQ_REL_MAX 64

/* Policy numbers found by the last scan, and each one's folder below the
 * sys root with room for a file name; scanned again after a failure. */
struct cpufreq_state {
	unsigned policy[CPUFREQ_MAX];
	char rel[CPUFREQ_MAX][CPUFREQ_REL_MAX];
	size_t rel_len[CPUFREQ_MAX];
	size_t n;
	int scanned;
};

/* Parse a frequency file (kHz) into MHz. 0 or -1. */
int cpufreq_parse(const char *buf, double *mhz)
{
	const char *p = buf;
	uint64_t khz;
	if (text_next_u64(&p, &khz) < 0)
		return -1;
	*mhz = (double)khz / 1000.0;
	return 0;
}

/* Allocate the policy list. */
static int cpufreq_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct cpufreq_state));
	return col->state ? 0 : -1;
}

/* Free the policy list. */
static void cpufreq_fini(struct collector *col)
{
	free(col->state);
	col->state = NULL;
}

/* Order policy numbers for qsort. */
static int cpufreq_cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* List the policyN folders in number order; -1 if there is no cpufreq. */
static int cpufreq_scan(struct cpufreq_state *st, struct collect_ctx *ctx)
{
	char path[4096];
	st->n = 0;
	st->scanned = 1;
	if (util_path_join(path, sizeof path, ctx->sys, CPUFREQ_DIR) < 0)
		return -1;
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) && st->n < CPUFREQ_MAX) {
		const char *p = e->d_name + strlen("policy");
		uint64_t v;
		if (strncmp(e->d_name, "policy", strlen("policy")) == 0 &&
		    text_next_u64(&p, &v) == 0 && *p == '\0' && v <= UINT32_MAX)
			st->policy[st->n++] = (unsigned)v;
	}
	closedir(d);
	qsort(st->policy, st->n, sizeof st->policy[0], cpufreq_cmp);
	for (size_t i = 0; i < st->n; i++) {
		int len = snprintf(st->rel[i], sizeof st->rel[i], CPUFREQ_DIR "/policy%u/",
		                   st->policy[i]);
		st->rel_len[i] = (size_t)len;
	}
	return 0;
}

/* Read the three frequencies of the policy whose folder is st->rel[k]
 * (each file's name written after the folder: no formatting per run). 0
 * or -1. */
static int cpufreq_read(struct cpufreq_state *st, size_t k, struct collect_ctx *ctx,
                        double out[CPUFREQ_NFIELDS])
{
	char *rel = st->rel[k];
	for (int i = 0; i < CPUFREQ_NFIELDS; i++) {
		size_t n = strlen(cpufreq_files[i]);
		if (st->rel_len[k] + n >= CPUFREQ_REL_MAX)
			return -1;
		memcpy(rel + st->rel_len[k], cpufreq_files[i], n + 1);
		if (collect_ctx_read(ctx, ctx->sys, rel, 0) < 0 ||
		    cpufreq_parse(ctx->buf, &out[i]) < 0)
			return -1;
	}
	return 0;
}

/* One row per policy; the folder is listed once, and again after a policy
 * failed to read (a core taken offline). None without cpufreq. */
static int cpufreq_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	struct cpufreq_state *st = col->state;
	if (!st->scanned && cpufreq_scan(st, ctx) < 0)
		log_debug("collect", "cpufreq: %s: %s, no cpufreq", CPUFREQ_DIR, strerror(errno));
	for (size_t i = 0; i < st->n; i++) {
		char name[32];
		double v[CPUFREQ_NFIELDS];
		if (cpufreq_read(st, i, ctx, v) < 0) {
			log_debug("collect", "cpufreq: policy%u unreadable, listing again",
			          st->policy[i]);
			st->scanned = 0;
			continue;
		}
		snprintf(name, sizeof name, "policy%u", st->policy[i]);
		double *row = rowset_add(&col->rows, now_ms, name);
		if (row)
			memcpy(row, v, sizeof v);
	}
	return 0;
}

const struct collector_ops cpufreq_ops = {
    .metric = "cpufreq",
    .inst_key = "policy",
    .fields = cpufreq_fields,
    .nfields = CPUFREQ_NFIELDS,
    .init = cpufreq_init,
    .fini = cpufreq_fini,
    .run = cpufreq_run,
};
