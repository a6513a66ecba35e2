/* Rollups: a tier's rows folded into the next tier's, minute rows from
 * raw rows and hour rows from minute rows (docs/STORAGE.md). The store
 * calls rollup_fold on the rows past the offset its commit record says
 * the next tier covers, so each row is folded exactly once. */
#ifndef PIMON_ROLLUP_H
#define PIMON_ROLLUP_H

#include <stdint.h>
#include <sys/types.h>

#include "csvread.h"
#include "rowbuf.h"

/* Folding raw rows into minute rows, and minute rows into hour rows. */
enum { ROLLUP_MINUTE, ROLLUP_HOUR };

/* The width of a level's buckets in ms. */
uint64_t rollup_width(int level);

/* The header of the rollup files of a raw file with header raw_header
 * ("time[,inst],f1,..."): "time[,inst],count,f1.min,f1.avg,f1.max,...".
 * 0, or -1 when it does not fit. */
int rollup_header(const char *raw_header, int instanced, char *out, size_t size);

/* What a fold did: where the rows not yet folded start, the bucket they
 * belong to, and the range of buckets written. */
struct rollup_state {
	off_t rolled;         /* rows before this offset are folded */
	int open;             /* rows from rolled on form an open bucket */
	uint64_t open_bucket; /* its start, when open */
	uint64_t lo, hi;      /* first and last bucket written (when wrote) */
	int wrote;            /* rows were added to out */
};

/* Fold the rows of src (a raw file for ROLLUP_MINUTE, a minute file for
 * ROLLUP_HOUR) from offset from up to offset to into rows of the next
 * tier, appended to out. instanced: whether a raw file's rows name an
 * instance in column 1 (-1: when its header names one of the collectors'
 * instance keys); a minute file's header tells. A bucket is written once a
 * row of another bucket follows it; with final, the last one too. 0, or -1
 * on a read error, a header that is not a metric file's, or out of memory
 * (out is then as it was). */
int rollup_fold(struct csvread *src, int level, int instanced, off_t from, off_t to, int final,
                struct rowbuf *out, struct rollup_state *st);

#endif
