/* zstd files of the store: a buffer written as one zstd frame to a
 * temporary name, synced and renamed into place, and a whole .zst file
 * read back into memory. Everything is opened relative to a folder
 * descriptor with safefs, never through a link. */
#ifndef PIMON_ZSTDIO_H
#define PIMON_ZSTDIO_H

#include <stddef.h>

/* The compression level of closed files: zstd's default. */
#define ZSTDIO_LEVEL 3

/* The largest file zstdio_load decompresses (a day of one metric is a few
 * MB; this bounds what a damaged or hostile frame can make us allocate). */
#define ZSTDIO_MAX (256u * 1024 * 1024)

/* Compress len bytes of data into dirfd/name: written to "name.tmp",
 * fdatasync'd, renamed over name, and the folder synced. 0, or -1 with
 * errno set (the temporary file removed). */
int zstdio_save(int dirfd, const char *name, const void *data, size_t len);

/* Read dirfd/name, one or more zstd frames, into a new buffer (*buf, free
 * it; NUL-terminated for convenience, *len without the NUL). 0, or -1 with
 * errno: EILSEQ when it is not valid zstd, EFBIG past ZSTDIO_MAX, or what
 * the open or read gave (ELOOP: a link). */
int zstdio_load(int dirfd, const char *name, char **buf, size_t *len);

#endif
