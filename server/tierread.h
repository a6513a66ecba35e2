/* The files of one tier of a metric (raw, 1m, 1h) that may hold rows of a
 * time range, as docs/STORAGE.md lays them out: the open file, the closed
 * files not yet compressed, and the compressed segments whose day (month
 * for 1h) overlaps the range, but those whose closed file is still beside
 * them (being written). Each is handed out as a csvread, a segment
 * decompressed into memory. Everything is opened relative to the host's
 * folder without following a link. Used by the HTTP thread. */
#ifndef PIMON_TIERREAD_H
#define PIMON_TIERREAD_H

#include <stdint.h>

#include "csvread.h"

enum tier { TIER_RAW, TIER_1M, TIER_1H, TIER_COUNT };

/* Width of a tier's buckets in ms (0 for raw). */
uint64_t tier_width(enum tier t);

/* "raw", "1m" or "1h". */
const char *tier_name(enum tier t);

struct tierread;

/* List the files of metric (a valid key) in tier t of the host folder
 * hostfd that may hold rows of [from, to]. A tier without its folder has
 * no files. NULL with errno set when a folder cannot be listed (ELOOP: a
 * link) or out of memory. */
struct tierread *tierread_open(int hostfd, enum tier t, const char *metric, uint64_t from,
                               uint64_t to);

/* How many files were listed. */
int tierread_count(const struct tierread *tr);

/* Open the next file: *r (the reader's own, valid until the next call or
 * tierread_close) and *sorted (1 for a compressed segment, whose rows are
 * in time order; 0 for open and closed files, which may hold rows out of
 * order). 1; 0 when there are no more; -1 when this file cannot be read
 * (errno set, tierread_name says which), and the next call goes on. */
int tierread_next(struct tierread *tr, struct csvread **r, int *sorted);

/* The current file's path in the host folder, for log lines. */
const char *tierread_name(const struct tierread *tr);

/* Close the current file and free the reader. */
void tierread_close(struct tierread *tr);

/* Whether tier t has any file of metric at all: 1, 0, or -1 (errno set)
 * when it cannot be told. */
int tierread_any(int hostfd, enum tier t, const char *metric);

/* A reader of the newest readable file of metric in tier t (the open
 * file, else the newest closed one, else the newest segment), for its
 * header and last rows; the caller closes it. NULL with errno set (ENOENT:
 * the tier has none). */
struct csvread *tierread_newest(int hostfd, enum tier t, const char *metric);

/* The earliest row time of metric in any tier (as the first rows of the
 * files tell: a segment's first row is its earliest), 0 if none. */
uint64_t tierread_oldest(int hostfd, const char *metric);

#endif
