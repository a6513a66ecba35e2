/* Per-host CSV files under <data_dir>/hosts/<name>/: one file per metric,
 * opened once and kept. A store is used by one thread at a time; the
 * caller (the host's lock) serialises access. */
#ifndef PIMON_STORE_H
#define PIMON_STORE_H

#include "proto.h"

struct store;

/* Create <data_dir>/hosts/<name>/ and an empty store for it; NULL on error
 * (logged). */
struct store *store_open(const char *data_dir, const char *name);

/* Flush and close every file. */
void store_close(struct store *st);

/* Append a group's rows to <metric>.csv with one write; a failed write
 * leaves no partial row. 0, or -1 on an error (logged at most once per
 * failure streak). */
int store_write_group(struct store *st, const struct proto_group *g);

/* Append one line (without newline) to the host's events.csv. */
int store_write_event(struct store *st, const char *line);

/* Every group of a batch was written: ends a failure streak (logged). */
void store_batch_done(struct store *st);

/* A group of the batch failed: cut the files back to where they were
 * before the batch, so it is stored whole or not at all. */
void store_batch_abort(struct store *st);

/* A shared append-only CSV file with a header, for <data_dir>/events.csv. */
struct store_log;
struct store_log *store_log_open(const char *path, const char *header);
/* Append one line and flush; safe from any thread. */
int store_log_append(struct store_log *l, const char *line);
void store_log_close(struct store_log *l);

/* Write s to out as one CSV field, quoted when needed. */
void store_csv_field(char *out, size_t size, const char *s);

#define STORE_EVENT_HEADER "time,host,state,reason,addr,detail"
#define STORE_HOST_EVENT_HEADER "time,state,reason,addr,detail"

#endif
