/* Per-host CSV files under <data_dir>/hosts/<name>/: one file per metric,
 * kept open while descriptors are plenty (closed between batches once the
 * stores hold a share of the limit), and a commit record of the last whole
 * batch. A store is used by one thread at a time; the host's lock
 * serialises it. */
#ifndef PIMON_STORE_H
#define PIMON_STORE_H

#include "proto.h"

struct store;

/* Open <data_dir>/hosts/<name>/ (created if new) through hosts_fd, the
 * folder <data_dir>/hosts (kept open by the caller while the store lives),
 * read its commit record and cut off rows of any batch after it. NULL on
 * error (logged), also when the folder or its commit record is a link or
 * the folder is not owned by the server's user. */
struct store *store_open(int hosts_fd, const char *data_dir, const char *name);

/* Persist, sync and close every file. */
void store_close(struct store *st);

/* The highest seq of agent run run_id whose batch is whole in the files
 * (0: none is known); the commit record keeps it for RUNS_MAX recent runs. */
uint64_t store_run_seq(const struct store *st, uint64_t run_id);

/* Append a group's rows to <metric>.csv with one write; a failed write
 * leaves no partial row. 0, or -1 on an error (logged at most once per
 * failure streak). */
int store_write_group(struct store *st, const struct proto_group *g);

/* Append one line (without newline) to the host's events.csv. */
int store_write_event(struct store *st, const char *line);

/* Every group of batch (run_id, seq) was written: it becomes the commit
 * record (in memory until store_persist). Ends a failure streak (logged). */
void store_batch_done(struct store *st, uint64_t run_id, uint64_t seq);

/* Write the commit record to disk. With sync, fdatasync the data written
 * since the last sync first, and the record after. 0 or -1 (logged). */
int store_persist(struct store *st, int sync);

/* A group of the batch failed: cut the files back to where they were
 * before the batch, so it is stored whole or not at all. */
void store_batch_abort(struct store *st);

/* A shared append-only CSV file with a header, for <data_dir>/events.csv:
 * the file name in folder dirfd (dir, for log lines), which must not be a
 * link. NULL on error (logged). */
struct store_log;
struct store_log *store_log_open(int dirfd, const char *dir, const char *name, const char *header);
/* Append one line and flush; safe from any thread. */
int store_log_append(struct store_log *l, const char *line);
void store_log_close(struct store_log *l);

/* Rows stored at the server's receive time since the last call, because
 * their own time was implausible (before 2020, or ahead of the server's
 * clock by more than 10 minutes; docs/STORAGE.md). */
uint64_t store_take_retimed(struct store *st);

/* Write s to out as one CSV field, quoted when needed. */
void store_csv_field(char *out, size_t size, const char *s);

#define STORE_EVENT_HEADER      "time,host,state,reason,addr,detail"
#define STORE_HOST_EVENT_HEADER "time,state,reason,addr,detail"

#endif
