/* Where a remote_write receiver is in one host's raw files: per metric,
 * the file being read (a closed "<metric>.<ms>.csv" by its ms, or the open
 * "<metric>.csv" by its inode) and the byte offset of the first row not
 * yet acked. Kept per receiver and host in one small text file, replaced
 * atomically (written aside, synced, renamed, the folder synced). */
#ifndef PIMON_RW_CURSOR_H
#define PIMON_RW_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct rw_cursor {
	char metric[PROTO_KEY_MAX + 1];
	int closed;   /* on the closed file of this ms; else on the open file */
	uint64_t ino; /* the open file's inode (closed: unused) */
	/* closed: the file's ms. Open: every closed file of a higher ms is
	 * after this one (the highest closed when the cursor moved on). */
	uint64_t ms;
	uint64_t off; /* the next row to send starts here (0: the file's start) */
};

#define RW_CURSOR_MAX 96 /* metrics of a host, as many as its commit record holds */
#define RW_CURSOR_EXT ".cursor"

/* The text of n cursors into out (size bytes): the length, or 0 when it
 * does not fit. */
size_t rw_cursor_format(const struct rw_cursor *c, size_t n, char *out, size_t size);

/* Parse a cursor file's text: 0 with *n cursors in c (max of them), or -1
 * when it is not one. */
int rw_cursor_parse(const char *text, size_t len, struct rw_cursor *c, size_t max, size_t *n);

/* Replace host's cursor file in folder dirfd with n cursors: written to a
 * temporary file, synced, renamed over it, the folder synced. 0 or -1
 * (errno). */
int rw_cursor_save(int dirfd, const char *host, const struct rw_cursor *c, size_t n);

/* Read host's cursor file of folder dirfd: 0 with *n cursors, 1 when it
 * does not exist, -1 when it cannot be read or parsed (errno). */
int rw_cursor_load(int dirfd, const char *host, struct rw_cursor *c, size_t max, size_t *n);

#endif
