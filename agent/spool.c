/* The agent's spool: batches the server has not acknowledged, kept in
 * <dir>/spool.dat so they survive a restart or a power cut. Appends are
 * batched by the caller (several records per write) to spare the SD card.
 *
 * File format. Every integer is big-endian and read byte by byte, so the
 * file means the same on every CPU and no field needs alignment.
 *
 *   Header, 32 bytes, once at the start of the file:
 *     0   8  magic "PMSPOOL1" (ASCII, no NUL)
 *     8   4  version, u32 = 2 (1 is read the same way: written before
 *            records could be marks, which old readers would send as frames)
 *    12   4  reserved, u32, written 0, ignored on read
 *    16   8  run_id, u64: the agent run that created the file
 *    24   8  dropped, u64: batches lost to the size bound so far in that run
 *
 *   Then zero or more records, back to back, each 16 bytes + length:
 *     0   4  length, u32: bytes of data; more than SPOOL_RECORD_MAX is corrupt
 *     4   4  crc, u32: CRC-32/IEEE (reflected, poly 0xEDB88320, init and
 *            final xor 0xFFFFFFFF) over bytes 8..15 (seq as stored) then data
 *     8   8  seq, u64: the batch's sequence number
 *    16   n  data: one encoded frame, or a mark of the run's sequence
 *            numbers (see outbox.c); opaque here
 *
 * A reader takes records until the first one that is short, too long or
 * fails its CRC; everything from there on is a torn tail and is cut off.
 * Single-threaded: MUST be used only from the agent's event loop thread. */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SPOOL_MAGIC   "PMSPOOL1"
#define SPOOL_VERSION 2u
/* The oldest version still read. */
#define SPOOL_VERSION_MIN 1u

struct spool {
	char dir[PATH_MAX];
	char path[PATH_MAX];     /* <dir>/spool.dat */
	char tmp_path[PATH_MAX]; /* <dir>/spool.dat.tmp, for rewrites */
	char bad_path[PATH_MAX]; /* <dir>/spool.dat.bad, a file with a bad header */
	int fd;                  /* spool.dat opened for appends, or -1 */
	int dir_dirty;           /* spool.dat was created since the dir was synced */
	int failing;             /* in a streak of failed writes, already logged */
};

/* Where a load's records go, and how many were taken. */
struct spool_loader {
	spool_load_fn fn;
	void *arg;
	int count;
	int stopped;
};

/* Why the image's header is unusable, or NULL when it is fine. */
static const char *spool_header_problem(const uint8_t *buf, size_t len)
{
	if (len < SPOOL_HEADER_SIZE)
		return "short header";
	if (memcmp(buf, SPOOL_MAGIC, 8) != 0)
		return "bad magic";
	uint32_t version = util_get_be32(buf + 8);
	if (version < SPOOL_VERSION_MIN || version > SPOOL_VERSION)
		return "unknown version";
	return NULL;
}

/* Why the record at p (avail bytes left) is unusable, or NULL when it is
 * whole and its CRC matches; then *reclen is its size with its header. */
static const char *spool_record_problem(const uint8_t *p, size_t avail, size_t *reclen)
{
	if (avail < SPOOL_RECHDR_SIZE)
		return "torn record header";
	uint32_t len = util_get_be32(p);
	if (len > SPOOL_RECORD_MAX)
		return "absurd record length";
	if (len > avail - SPOOL_RECHDR_SIZE)
		return "torn record data";
	if (util_crc32(0, p + 8, 8u + len) != util_get_be32(p + 4))
		return "record CRC mismatch";
	*reclen = SPOOL_RECHDR_SIZE + len;
	return NULL;
}

/* Check the header and walk the records while they are valid. */
size_t spool_parse(const uint8_t *buf, size_t len, uint64_t *run_id, uint64_t *dropped,
                   spool_load_fn fn, void *arg)
{
	if (run_id)
		*run_id = 0;
	if (dropped)
		*dropped = 0;
	if (spool_header_problem(buf, len))
		return 0;
	if (run_id)
		*run_id = util_get_be64(buf + 16);
	if (dropped)
		*dropped = util_get_be64(buf + 24);
	size_t off = SPOOL_HEADER_SIZE;
	size_t reclen;
	while (off < len && !spool_record_problem(buf + off, len - off, &reclen)) {
		const uint8_t *p = buf + off;
		off += reclen;
		if (fn && fn(arg, util_get_be64(p + 8), p + SPOOL_RECHDR_SIZE,
		             reclen - SPOOL_RECHDR_SIZE) < 0)
			break;
	}
	return off;
}

/* Create dir with mode 0700 (its missing parents 0755); 0 or -1 with errno. */
static int spool_mkdir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0700) < 0 && errno == ENOENT) {
		char parent[PATH_MAX];
		size_t n = strlen(dir);
		if (n >= sizeof parent) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(parent, dir, n + 1);
		while (n > 1 && parent[n - 1] == '/')
			parent[--n] = '\0';
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			if (util_mkdirs(parent) < 0)
				return -1;
		}
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	if (stat(dir, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* Fill in the three file names under dir; -1 if one does not fit. */
static int spool_set_paths(struct spool *sp, const char *dir)
{
	if (strlen(dir) >= sizeof sp->dir)
		return -1;
	strcpy(sp->dir, dir);
	if (util_path_join(sp->path, sizeof sp->path, dir, "spool.dat") < 0 ||
	    util_path_join(sp->tmp_path, sizeof sp->tmp_path, dir, "spool.dat.tmp") < 0 ||
	    util_path_join(sp->bad_path, sizeof sp->bad_path, dir, "spool.dat.bad") < 0)
		return -1;
	return 0;
}

/* A spool in dir, created if missing; the file itself is opened on demand. */
struct spool *spool_open(const char *dir)
{
	struct spool *sp = calloc(1, sizeof *sp);
	if (!sp) {
		log_err("spool", "%s: out of memory", dir);
		return NULL;
	}
	sp->fd = -1;
	if (spool_set_paths(sp, dir) < 0) {
		log_err("spool", "%s: folder name too long", dir);
		goto fail;
	}
	if (spool_mkdir(dir) < 0) {
		log_err("spool", "%s: cannot create the spool folder: %s", dir, strerror(errno));
		goto fail;
	}
	if (unlink(sp->tmp_path) == 0)
		log_notice("spool", "%s: removed, left by an interrupted rewrite", sp->tmp_path);
	return sp;
fail:
	free(sp);
	return NULL;
}

/* Close the append descriptor if it is open. */
static void spool_close_fd(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}

/* Close the file and free the spool. */
void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	spool_close_fd(sp);
	free(sp);
}

/* fsync the spool folder so creations, renames and removals last; 0 or -1
 * with errno set. */
static int spool_sync_dir(struct spool *sp)
{
	int fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	if (rc == 0)
		sp->dir_dirty = 0;
	return rc;
}

/* Log the first failure of a streak, keep errno, and return -1. */
static int spool_fail(struct spool *sp, const char *what)
{
	int saved = errno;
	if (!sp->failing)
		log_warn("spool", "%s: cannot %s: %s (not logged again until spooling works)",
		         sp->path, what, strerror(saved));
	sp->failing = 1;
	errno = saved;
	return -1;
}

/* Note a successful write, ending a failure streak. */
static void spool_ok(struct spool *sp)
{
	if (sp->failing)
		log_notice("spool", "%s: spooling works again", sp->path);
	sp->failing = 0;
}

/* Read the whole open file into a new buffer; 0 or -1 with errno set. */
static int spool_read_all(int fd, uint8_t **out, size_t *outlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if ((uint64_t)st.st_size > SIZE_MAX - 1) {
		errno = EFBIG;
		return -1;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return -1;
	size_t off = 0;
	while (off < size) {
		ssize_t n = read(fd, buf + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			free(buf);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	*out = buf;
	*outlen = off;
	return 0;
}

/* Hand one loaded record to the caller's function and count it. */
static int spool_load_one(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	struct spool_loader *ld = arg;
	if (ld->fn && ld->fn(ld->arg, seq, data, len) < 0) {
		ld->stopped = 1;
		return -1;
	}
	ld->count++;
	return 0;
}

/* Move a file whose header is bad out of the way; 0 or -1 (logged). */
static int spool_set_aside(struct spool *sp, const uint8_t *buf, size_t len)
{
	const char *why = spool_header_problem(buf, len);
	if (rename(sp->path, sp->bad_path) < 0) {
		log_err("spool", "%s: %s, and cannot move it aside: %s", sp->path, why,
		        strerror(errno));
		return -1;
	}
	log_warn("spool", "%s: %s (%zu bytes), moved aside to %s", sp->path, why, len,
	         sp->bad_path);
	if (spool_sync_dir(sp) < 0)
		log_warn("spool", "%s: cannot sync the folder: %s", sp->dir, strerror(errno));
	return 0;
}

/* Cut a torn or corrupt tail off the file at valid; 0 or -1 (logged). */
static int spool_cut(struct spool *sp, int fd, const uint8_t *buf, size_t len, size_t valid,
                     int good)
{
	size_t reclen;
	const char *why = spool_record_problem(buf + valid, len - valid, &reclen);
	log_warn("spool", "%s: %s at byte %zu after %d good records; %zu bytes skipped and cut off",
	         sp->path, why ? why : "bad record", valid, good, len - valid);
	if (ftruncate(fd, (off_t)valid) < 0 || fdatasync(fd) < 0) {
		log_err("spool", "%s: cannot cut the torn tail: %s", sp->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Read the spool file, give its records to fn, and repair what is torn. */
int spool_load(struct spool *sp, uint64_t *run_id, uint64_t *dropped, spool_load_fn fn, void *arg)
{
	struct spool_loader ld = {.fn = fn, .arg = arg};
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t rid = 0, drp = 0;
	int rc = -1;
	spool_close_fd(sp);
	int fd = open(sp->path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		rc = 0;
		goto out;
	}
	if (fd < 0 || spool_read_all(fd, &buf, &len) < 0) {
		log_err("spool", "%s: cannot read: %s", sp->path, strerror(errno));
		goto out;
	}
	if (len == 0) {
		rc = 0;
		goto out;
	}
	size_t valid = spool_parse(buf, len, &rid, &drp, spool_load_one, &ld);
	if (valid == 0) {
		rc = spool_set_aside(sp, buf, len);
		goto out;
	}
	if (!ld.stopped && valid < len && spool_cut(sp, fd, buf, len, valid, ld.count) < 0)
		goto out;
	rc = ld.count;
out:
	if (run_id)
		*run_id = rid;
	if (dropped)
		*dropped = drp;
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Refuse records that a reader would take for corruption; 0 or -1 (logged). */
static int spool_check_records(const struct spool *sp, const struct spool_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (recs[i].len > SPOOL_RECORD_MAX) {
			log_err("spool", "%s: batch %llu is %zu bytes, more than %u; not spooled",
			        sp->path, (unsigned long long)recs[i].seq, recs[i].len,
			        SPOOL_RECORD_MAX);
			errno = EINVAL;
			return -1;
		}
	}
	return 0;
}

/* Encode one record at p; returns the bytes used. */
static size_t spool_encode_record(uint8_t *p, const struct spool_record *r)
{
	util_put_be32(p, (uint32_t)r->len);
	util_put_be64(p + 8, r->seq);
	if (r->len)
		memcpy(p + SPOOL_RECHDR_SIZE, r->data, r->len);
	util_put_be32(p + 4, util_crc32(0, p + 8, 8u + r->len));
	return SPOOL_RECHDR_SIZE + r->len;
}

/* Encode the header (if with_header) and the records into a new buffer;
 * NULL with errno set on failure. Lengths were checked already. */
static uint8_t *spool_build(uint64_t run_id, uint64_t dropped, int with_header,
                            const struct spool_record *recs, size_t n, size_t *outlen)
{
	size_t total = with_header ? SPOOL_HEADER_SIZE : 0;
	for (size_t i = 0; i < n; i++) {
		if (recs[i].len > SIZE_MAX - SPOOL_RECHDR_SIZE - total) {
			errno = ENOMEM;
			return NULL;
		}
		total += SPOOL_RECHDR_SIZE + recs[i].len;
	}
	uint8_t *buf = malloc(total ? total : 1);
	if (!buf)
		return NULL;
	size_t off = 0;
	if (with_header) {
		memcpy(buf, SPOOL_MAGIC, 8);
		util_put_be32(buf + 8, SPOOL_VERSION);
		util_put_be32(buf + 12, 0);
		util_put_be64(buf + 16, run_id);
		util_put_be64(buf + 24, dropped);
		off = SPOOL_HEADER_SIZE;
	}
	for (size_t i = 0; i < n; i++)
		off += spool_encode_record(buf + off, &recs[i]);
	*outlen = total;
	return buf;
}

/* Open spool.dat for appends unless it is open already; 0 or -1 with errno. */
static int spool_open_append(struct spool *sp)
{
	if (sp->fd >= 0)
		return 0;
	sp->fd = open(sp->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	return sp->fd < 0 ? -1 : 0;
}

/* One write() of the whole buffer, retried only if nothing was written
 * because of a signal. A short write to a regular file means the disk (or
 * the quota) is full: then errno is ENOSPC. 0 or -1 with errno set. */
static int spool_write_once(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

/* Cut the file back to size after a failed append, keeping errno. */
static void spool_undo(struct spool *sp, off_t size)
{
	int saved = errno;
	if (ftruncate(sp->fd, size) < 0)
		log_err("spool", "%s: cannot cut a partial append back to %lld bytes: %s", sp->path,
		        (long long)size, strerror(errno));
	errno = saved;
}

/* Append the records with one write, the header first on a new file. */
int spool_append(struct spool *sp, uint64_t run_id, uint64_t dropped,
                 const struct spool_record *recs, size_t n)
{
	struct stat st;
	size_t len;
	if (n == 0)
		return 0;
	if (spool_check_records(sp, recs, n) < 0)
		return -1;
	if (spool_open_append(sp) < 0)
		return spool_fail(sp, "open for appending");
	if (fstat(sp->fd, &st) < 0)
		return spool_fail(sp, "stat");
	uint8_t *buf = spool_build(run_id, dropped, st.st_size == 0, recs, n, &len);
	if (!buf)
		return spool_fail(sp, "build the records");
	int rc = spool_write_once(sp->fd, buf, len);
	free(buf);
	if (rc < 0) {
		spool_undo(sp, st.st_size);
		return spool_fail(sp, "append");
	}
	if (st.st_size == 0)
		sp->dir_dirty = 1;
	spool_ok(sp);
	return 0;
}

/* Write buf whole into a new spool.dat.tmp and fsync it; 0 or -1 with errno
 * (the tmp file is removed on failure). */
static int spool_write_tmp(struct spool *sp, const uint8_t *buf, size_t len)
{
	int saved;
	int fd = open(sp->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (util_write_all(fd, buf, len) < 0 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(sp->tmp_path);
	errno = saved;
	return -1;
}

/* Remove spool.dat and sync the folder; 0 or -1 with errno set. */
static int spool_remove(struct spool *sp)
{
	spool_close_fd(sp);
	if (unlink(sp->path) < 0 && errno != ENOENT)
		return -1;
	return spool_sync_dir(sp);
}

/* Replace the file with exactly these records, atomically. */
int spool_rewrite(struct spool *sp, uint64_t run_id, uint64_t dropped,
                  const struct spool_record *recs, size_t n)
{
	size_t len;
	if (spool_check_records(sp, recs, n) < 0)
		return -1;
	if (n == 0) {
		if (spool_remove(sp) < 0)
			return spool_fail(sp, "remove");
		spool_ok(sp);
		return 0;
	}
	uint8_t *buf = spool_build(run_id, dropped, 1, recs, n, &len);
	if (!buf)
		return spool_fail(sp, "build the records");
	int rc = spool_write_tmp(sp, buf, len);
	free(buf);
	if (rc < 0)
		return spool_fail(sp, "write spool.dat.tmp");
	if (rename(sp->tmp_path, sp->path) < 0) {
		int saved = errno;
		unlink(sp->tmp_path);
		errno = saved;
		return spool_fail(sp, "replace it with spool.dat.tmp");
	}
	spool_close_fd(sp);
	if (spool_sync_dir(sp) < 0)
		return spool_fail(sp, "sync its folder after a rewrite");
	spool_ok(sp);
	return 0;
}

/* Remove the spool file once everything in it was acknowledged. */
int spool_clear(struct spool *sp)
{
	if (spool_remove(sp) < 0) {
		log_err("spool", "%s: cannot remove: %s", sp->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* fdatasync what was appended, and the folder if the file is new. */
int spool_sync(struct spool *sp)
{
	if (sp->fd >= 0 && fdatasync(sp->fd) < 0) {
		log_err("spool", "%s: cannot sync: %s", sp->path, strerror(errno));
		return -1;
	}
	if (sp->dir_dirty && spool_sync_dir(sp) < 0) {
		log_err("spool", "%s: cannot sync the folder: %s", sp->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* The spool file's size now, 0 when there is none. */
uint64_t spool_bytes(const struct spool *sp)
{
	struct stat st;
	if (stat(sp->path, &st) < 0)
		return 0;
	return (uint64_t)st.st_size;
}
