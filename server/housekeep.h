/* The storage housekeeper: a thread of its own that, every sweep, turns
 * each host's closed files into compressed day segments and deletes the
 * segments that retention (age, then the size cap) no longer keeps. The
 * layout it works on is docs/STORAGE.md's. Everything is opened with
 * safefs relative to folder descriptors, never through a link. */
#ifndef PIMON_HOUSEKEEP_H
#define PIMON_HOUSEKEEP_H

#include <stddef.h>
#include <stdint.h>

/* Counters: name, help. Defined once; read by /metrics and /api/v1/stats. */
#define HOUSEKEEP_COUNTERS(X)                                                                      \
	X(files_compressed, "closed files compressed into day segments")                           \
	X(bytes_compressed_in, "bytes of the closed files compressed")                             \
	X(bytes_compressed_out, "bytes of the segments written from them")                         \
	X(rows_untimed, "rows of closed files whose time does not parse, kept beside the row "     \
	                "before them")                                                             \
	X(segments_aged, "segments deleted: older than their tier keeps")                          \
	X(segments_capped, "segments deleted to keep hosts/ under server.storage.max_bytes")       \
	X(bytes_deleted, "bytes of the segments deleted, by age or by the cap")                    \
	X(errors, "closed files or segments that could not be handled (logged, retried)")          \
	X(files_held, "closed raw files left uncompressed in a sweep: a remote_write receiver "    \
	              "still needs them")                                                          \
	X(files_forced, "closed raw files compressed while a remote_write receiver still "         \
	                "needed them, because hosts/ was over the cap (their rest is not sent)")

enum housekeep_counter {
#define X(name, help) HKC_##name,
	HOUSEKEEP_COUNTERS(X)
#undef X
	    HKC_COUNT
};

/* Names and help texts of the counters, in enum order. */
extern const char *const housekeep_counter_names[];
extern const char *const housekeep_counter_help[];

/* What the housekeeper does; server.storage in the configuration. */
struct housekeep_config {
	uint64_t sweep_ms;       /* between sweeps */
	uint64_t close_delay_ms; /* closed files are staggered over this */
	int raw_days;            /* compressed days kept, per tier */
	int minute_days;
	int hour_days;
	uint64_t max_bytes; /* cap on hosts/; 0: HOUSEKEEP_FS_SHARE of its file system */
};

/* The share of the data folder's file system that max_bytes 0 means, in %. */
#define HOUSEKEEP_FS_SHARE 80

/* What the cap does to the hosts it cut (the storage_retention_cut alarm):
 * cut is called for each host that lost data to the cap in a sweep, settle
 * once at the end of every sweep. Both run on the housekeeper's thread. */
struct housekeep_hooks {
	void (*cut)(void *arg, const char *host, uint64_t now_ms, const char *message);
	void (*settle)(void *arg, uint64_t now_ms);
	void *arg;
	/* Non-zero while a reader (a remote_write receiver) has not passed the
	 * closed raw file <metric>.<ms>.csv of host: it is then compressed only
	 * when hosts/ was over the cap at the last sweep. Any thread may run it;
	 * NULL holds nothing. */
	int (*hold)(void *hold_arg, const char *host, const char *metric, uint64_t ms);
	void *hold_arg;
};

/* One part of a closed file: its rows of one UTC day ("YYYY-MM-DD") or
 * month ("YYYY-MM"), sorted by time, the header line first. */
struct housekeep_part {
	char label[16];
	char *text;
	size_t len;
};

/* Split the closed file csv (len bytes, the header its first line) by the
 * UTC day of each row's time (its first column; by month when monthly),
 * each part sorted by time, equal times in file order. A row whose time
 * does not parse is kept, right after the row before it in the file (its
 * day), or before the first row after it with a time, or, in a file
 * without one, in the day of fallback_ms (when the file closed); *untimed
 * counts them. Empty lines are dropped. 0 with *parts (free with
 * housekeep_parts_free) in time order, or -1 when out of memory. */
int housekeep_split(const char *csv, size_t len, int monthly, uint64_t fallback_ms,
                    struct housekeep_part **parts, size_t *nparts, size_t *untimed);
void housekeep_parts_free(struct housekeep_part *parts, size_t n);

/* The label of the UTC day (monthly: month) of t_ms, in out. */
void housekeep_label(uint64_t t_ms, int monthly, char out[16]);

/* A hash of the host's name mod delay_ms: how long after it closed a
 * closed file of this host is compressed. */
uint64_t housekeep_stagger(const char *host, uint64_t delay_ms);

struct housekeep;

/* A housekeeper for the hosts folder hosts_fd (kept open by the caller
 * until housekeep_destroy), whose data folder is data_fd (for the file
 * system's size). NULL on out of memory (logged). */
struct housekeep *housekeep_create(int data_fd, int hosts_fd, const struct housekeep_config *cfg,
                                   const struct housekeep_hooks *hooks);
void housekeep_destroy(struct housekeep *hk);

/* One whole sweep at now_ms: compress what is due, delete what age and
 * the cap no longer keep. Called by the housekeeper's thread, or by tests
 * on a housekeeper that was not started. */
void housekeep_sweep(struct housekeep *hk, uint64_t now_ms);

/* Run sweeps on a thread of its own, the first at once. -1 (logged) when
 * the thread cannot start. MUST be called by the main thread. */
int housekeep_start(struct housekeep *hk);

/* Stop the thread (a sweep under way stops between two files) and join
 * it. MUST be called by the thread that started it. */
void housekeep_stop(struct housekeep *hk);

/* Counter c. Any thread. */
uint64_t housekeep_counter(const struct housekeep *hk, enum housekeep_counter c);

/* Bytes under hosts/ at the end of the last sweep, and the cap in force
 * then. Any thread. */
uint64_t housekeep_bytes(const struct housekeep *hk);
uint64_t housekeep_cap(const struct housekeep *hk);

#endif
