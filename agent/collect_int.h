/* Internals shared by the collector files: the scratch read buffer, the
 * row storage each collector fills, and the table of collectors. Not for
 * other modules; everything here runs on the agent's main thread. */
#ifndef PIMON_COLLECT_INT_H
#define PIMON_COLLECT_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* Most rows one group may carry; more are dropped with a debug line. */
#define COLLECT_MAX_ROWS 512
/* Scratch buffer: starting size, and the most a large file may grow it to. */
#define COLLECT_BUF_SIZE (64u * 1024u)
#define COLLECT_BUF_MAX  (1024u * 1024u)

/* Most files kept open between runs; later ones are opened each time. */
#define COLLECT_KEEP_MAX 64

/* A file read every run, kept open and re-read from offset 0. */
struct collect_kept {
	char *path; /* allocated once, when the file is first opened */
	uint32_t hash;
	int fd;
};

/* Roots and one scratch buffer for whole files, owned by struct collect. */
struct collect_ctx {
	char *proc; /* roots, copied at collect_create */
	char *sys;
	char *os_release;
	/* The utmp file itself, not a folder. */
	char *utmp;
	/* "/dev", where utmp's ttys live: not copied, tests point it elsewhere. */
	const char *dev;
	char *buf;   /* holds the last file read */
	size_t size; /* capacity of buf */
	char path[4096];
	struct collect_kept kept[COLLECT_KEEP_MAX];
	size_t nkept;
	int diskio_partitions; /* agent.diskio.partitions */
};

/* Flags of collect_ctx_read. */
enum {
	COLLECT_WHOLE = 1, /* grow the buffer until the file fits */
	COLLECT_ONCE = 2,  /* a file read once or per process: do not keep it open */
};

/* Read root/rel into ctx->buf, NUL-terminated. With COLLECT_WHOLE in flags
 * the buffer grows (up to COLLECT_BUF_MAX) until the file fits; a file still
 * too big, or any file without it, is cut after its last complete line. A
 * procfs or sysfs file stays open and later reads pread it from offset 0
 * (the kernel makes it anew on each read), unless flags has COLLECT_ONCE;
 * a kept file that fails to read is opened again once. Other files (a
 * fixture tree) are opened each time. Returns the length, or -1 with errno
 * set. */
ssize_t collect_ctx_read(struct collect_ctx *ctx, const char *root, const char *rel, int flags);

/* collect_ctx_read for a file named by its whole path, such as utmp; never
 * kept open, since such files are replaced rather than regenerated. */
ssize_t collect_ctx_read_file(struct collect_ctx *ctx, const char *path, int flags);

/* Close every file kept open by collect_ctx_read. */
void collect_ctx_close_kept(struct collect_ctx *ctx);

/* One metric group being built: rows, their values and instance strings,
 * grown on demand and reused across runs. */
struct rowset {
	struct proto_group group;
	struct proto_row *rows;
	double *values;
	char *inst; /* cap slots of PROTO_INST_MAX + 1 bytes, or NULL */
	uint32_t cap;
};

/* Empty the rowset for a new run, keeping its storage. */
void rowset_reset(struct rowset *rs);

/* Append a row; returns its group.nfields values to fill, or NULL when out
 * of memory or at COLLECT_MAX_ROWS. instance is cut to PROTO_INST_MAX. */
double *rowset_add(struct rowset *rs, uint64_t time_ms, const char *instance);

/* Instance string stored for row i. */
const char *rowset_instance(const struct rowset *rs, uint32_t i);

/* Point rows at their values and instances once all rows are added. */
void rowset_finish(struct rowset *rs);

struct collector;

/* What one built-in collector is: its group's shape and its functions. */
struct collector_ops {
	const char *metric;
	const char *inst_key; /* "" for groups without instances */
	const char *const *fields;
	uint8_t nfields;
	/* A second group without instances filled by the same run (totals
	 * such as "users_totals"); NULL when there is none. */
	const char *summary_metric;
	const char *const *summary_fields;
	uint8_t summary_nfields;
	/* Allocate col->state; 0 or -1. NULL when the collector is stateless. */
	int (*init)(struct collector *col);
	/* Free col->state. NULL when the collector is stateless. */
	void (*fini)(struct collector *col);
	/* Fill col->rows and col->summary (both already reset) for this run;
	 * 0, or -1 after calling collector_fail. Zero rows with 0 is "nothing
	 * to report yet". */
	int (*run)(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms);
};

/* One collector's place in struct collect. */
struct collector {
	const struct collector_ops *ops;
	int enabled;
	int warned; /* warned once already: later failures log at debug */
	struct rowset rows;
	struct rowset summary; /* stays empty without ops->summary_metric */
	void *state;
};

/* Set up col for ops: group shape, enabled, private state. 0 or -1. */
int collector_init(struct collector *col, const struct collector_ops *ops);

/* Free col's private state and row storage. */
void collector_fini(struct collector *col);

/* Log why a run failed: at warn the first time for this collector, at
 * debug afterwards, so a missing file does not spam every interval. */
void collector_fail(struct collector *col, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Read an unsigned decimal after optional blanks; advances *p. 0 or -1. */
int text_next_u64(const char **p, uint64_t *out);

/* Read an unsigned decimal such as "0.52" after optional blanks, whatever
 * the locale; advances *p. 0 or -1. */
int text_next_decimal(const char **p, double *out);

/* Strip trailing whitespace (and anything after an embedded NUL). */
void text_trim_end(char *s);

/* Copy src into dst of size bytes, cutting on a UTF-8 character boundary. */
void text_copy(char *dst, size_t size, const char *src);

/* Start of the line after the one p is on, or NULL at the end. */
const char *text_next_line(const char *p);

/* Replace commas and control characters (newlines included) with '_' so s
 * can be an instance string. */
void text_sanitise(char *s);

/* System facts for HELLO, owned by struct collect. */
struct sys_facts {
	char os[PROTO_TEXT_MAX + 1];
	char kernel[PROTO_TEXT_MAX + 1];
	char model[PROTO_TEXT_MAX + 1];
	char boot_id[PROTO_NAME_MAX + 1];
	uint64_t uptime_s;
};

/* Read os, kernel, model, boot id and uptime; missing ones become "" (os
 * "Linux", uptime 0). */
void sys_read(struct collect_ctx *ctx, struct sys_facts *f);

/* Feed the net collector one /proc/net/dev buffer read at monotonic time
 * mono_ms: rows (stamped now_ms) for interfaces also in the previous
 * sample. Lets tests choose the interval. 0 or -1. */
int net_sample(struct collector *col, const char *buf, uint64_t mono_ms, uint64_t now_ms);

/* Scan <proc> once at monotonic time mono_ms: from the second sample on,
 * rows (stamped now_ms) for the top processes by CPU and by memory, and the
 * procs_totals row. Lets tests choose the interval. 0 or -1. */
int procs_sample(struct collector *col, struct collect_ctx *ctx, uint64_t mono_ms, uint64_t now_ms);

/* The i-th entry of the table of built-in collectors, NULL past the last. */
const struct collector_ops *collect_ops_at(size_t i);

/* Feed the diskio collector one /proc/diskstats buffer read at monotonic
 * time mono_ms, as net_sample does; partitions as for diskio_parse. 0 or -1. */
int diskio_sample(struct collector *col, const char *buf, int partitions, uint64_t mono_ms,
                  uint64_t now_ms);

/* Feed the vmstat collector one /proc/vmstat buffer read at monotonic time
 * mono_ms: a row (stamped now_ms) from the second sample on. 0 or -1. */
int vmstat_sample(struct collector *col, const char *buf, uint64_t mono_ms, uint64_t now_ms);

/* Feed the cores collector one /proc/stat buffer: rows (stamped now_ms)
 * for cores also in the previous sample. 0 or -1. */
int cores_sample(struct collector *col, const char *buf, uint64_t now_ms);

/* Field names of the cpu group, which the cores group shares. */
extern const char *const cpu_fields[];

extern const struct collector_ops cpu_ops;
extern const struct collector_ops mem_ops;
extern const struct collector_ops disk_ops;
extern const struct collector_ops load_ops;
extern const struct collector_ops temp_ops;
extern const struct collector_ops net_ops;
extern const struct collector_ops users_ops;
extern const struct collector_ops procs_ops;
extern const struct collector_ops pi_ops;
extern const struct collector_ops diskio_ops;
extern const struct collector_ops vmstat_ops;
extern const struct collector_ops pressure_ops;
extern const struct collector_ops clock_ops;
extern const struct collector_ops wifi_ops;
extern const struct collector_ops cpufreq_ops;
extern const struct collector_ops host_ops;
extern const struct collector_ops cores_ops;

#endif
