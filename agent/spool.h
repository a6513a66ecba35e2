/* The agent's spool: unacked batches on disk, append-only, a CRC per record.
 * The format is described byte by byte at the top of spool.c.
 * Single-threaded: MUST be used only from the agent's event loop thread. */
#ifndef PIMON_SPOOL_H
#define PIMON_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in the file header and in each record's header. */
#define SPOOL_HEADER_SIZE 32
#define SPOOL_RECHDR_SIZE 16

/* The largest record data (a frame's maximum); a longer length is corrupt. */
#define SPOOL_RECORD_MAX (1024u * 1024u + 64u)

/* One batch to spool. */
struct spool_record {
	uint64_t seq;
	const uint8_t *data; /* an encoded frame, opaque here */
	size_t len;
};

/* Called for each valid record on load, in file order; return 0 to go on, -1 to stop. */
typedef int (*spool_load_fn)(void *arg, uint64_t seq, const uint8_t *data, size_t len);

struct spool;

/* Use <dir>/spool.dat (creating dir, mode 0700, if missing). Does not read it;
 * removes a spool.dat.tmp left by an interrupted rewrite. NULL if dir cannot
 * be created (logged). */
struct spool *spool_open(const char *dir);

/* Close the file and free the spool; the file stays on disk. NULL is a no-op. */
void spool_close(struct spool *sp);

/* Parse a spool image in memory: check the header, then every record in turn;
 * call fn (may be NULL) for each valid record; stop at the first torn or
 * corrupt record (short length, bad CRC, length > SPOOL_RECORD_MAX) or when
 * fn returns -1. Returns the byte length of the valid prefix (header + good
 * records, including the one fn stopped at), or 0 if the header itself is
 * missing/bad. Sets *run_id and *dropped from the header (0 when bad; either
 * pointer may be NULL). Never reads past len. */
size_t spool_parse(const uint8_t *buf, size_t len, uint64_t *run_id, uint64_t *dropped,
                   spool_load_fn fn, void *arg);

/* Read the spool file and hand its records to fn. A torn tail is logged with
 * how many bytes were skipped and cut off the file (ftruncate to the valid
 * prefix) so later appends follow good records; a bad header makes the file
 * be moved aside as spool.dat.bad (logged) and counts as empty. If fn stops
 * the load, nothing is cut. Returns the number of records fn accepted (0 when
 * there is no file), -1 on an I/O error (logged). */
int spool_load(struct spool *sp, uint64_t *run_id, uint64_t *dropped, spool_load_fn fn, void *arg);

/* Append n records with one write(). A missing or empty file gets the header
 * (run_id, dropped) first in the same write; an existing header is kept. On a
 * short or failed write the file is cut back to its previous length and -1
 * returned with errno kept (ENOSPC for a full disk; EINVAL for a record longer
 * than SPOOL_RECORD_MAX). Logged once per failure streak; the next success
 * logs a notice. 0 on success. */
int spool_append(struct spool *sp, uint64_t run_id, uint64_t dropped,
                 const struct spool_record *recs, size_t n);

/* Replace the file with exactly these records: write spool.dat.tmp, fsync it,
 * rename over spool.dat, fsync the dir. n == 0 removes the file. 0 or -1
 * (logged once per streak; the old file is left intact on failure). */
int spool_rewrite(struct spool *sp, uint64_t run_id, uint64_t dropped,
                  const struct spool_record *recs, size_t n);

/* Remove the spool file (everything in it was acknowledged). 0 or -1 (logged). */
int spool_clear(struct spool *sp);

/* Make what was appended durable (fdatasync, and the dir entry of a file
 * created since the last sync); 0 or -1 (logged). */
int spool_sync(struct spool *sp);

/* Bytes the spool file holds now (0 when absent). */
uint64_t spool_bytes(const struct spool *sp);

#endif
