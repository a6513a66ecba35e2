/* Reading the store's CSV files while workers append to them: a reader
 * that sees the file as it was when opened, never returns a last line
 * without its newline, seeks to a time by binary search and reads the
 * tail; the same over a buffer in memory; and the line parsers it uses, which take buffers. */
#ifndef PIMON_CSVREAD_H
#define PIMON_CSVREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct csvread;

/* Open the file name of folder dirfd (AT_FDCWD: name is a path) and read
 * its header line. The file must be a regular file and name not a
 * symbolic link. NULL with errno set on error (ELOOP: a link). */
struct csvread *csvread_open(int dirfd, const char *name);

/* A reader over len bytes at buf (a decompressed file), which MUST stay
 * as they are until csvread_close. NULL when out of memory. */
struct csvread *csvread_mem(const char *buf, size_t len);

/* Hand a memory reader its buffer (malloc'd): csvread_close frees it. */
void csvread_own(struct csvread *r, char *buf);

/* Let r close its descriptor when it is closed, one csvread_fd borrowed
 * included. */
void csvread_own_fd(struct csvread *r);

/* A reader over fd (open for reading, kept open: csvread_close does not
 * close it), which holds size bytes. NULL with errno set. */
struct csvread *csvread_fd(int fd, off_t size);

/* Close the file and free the reader. */
void csvread_close(struct csvread *r);

/* The header line without its newline ("" when there is none). */
const char *csvread_header(const struct csvread *r);

/* Offset of the first row, just after the header. */
off_t csvread_data(const struct csvread *r);

/* The complete line starting at off: *line and *len (without "\n" or
 * "\r\n") and *next, where the following line starts. A line too long for
 * the reader's buffer is skipped: *line is NULL and *len 0. Returns 1, 0
 * when no complete line starts at off, -1 on a read error (errno). */
int csvread_line(struct csvread *r, off_t off, const char **line, size_t *len, off_t *next);

/* Offset of the first row whose time is at least from, found by binary
 * search (rows are in time order); the end of the rows when none is. */
off_t csvread_seek(struct csvread *r, uint64_t from);

/* Offset where the last n complete rows start (the first row when the
 * file has fewer). */
off_t csvread_tail(struct csvread *r, size_t n);

/* Split a line into at most max fields, unquoting CSV quotes. Fields are
 * written NUL-terminated to out, which must hold len + 1 bytes, and
 * fields[i] point into it. Returns the count, or -1 when the line has more
 * than max fields or an unterminated quote. */
int csvread_split(const char *line, size_t len, char *out, char **fields, int max);

/* The same for the first max fields only, the rest of the line not read:
 * the count (at most max), or -1 for an unterminated quote among them. */
int csvread_split_first(const char *line, size_t len, char *out, char **fields, int max);

/* The time at the start of a row: decimal digits up to the first comma
 * or the end. 0, or -1 when it is not a time. */
int csvread_time(const char *line, size_t len, uint64_t *t);

#endif
