/* Unit tests for the agent's spool: round trips, the byte layout, torn files
 * cut at every offset, corruption, parser robustness, rewrites, failure
 * logging, and a full disk on a small tmpfs. Real files under a mkdtemp
 * folder in /tmp. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#define MAX_RECS   32
#define MAX_GOT    1024
#define FUZZ_ITERS 20000

static char base[64];
static char capture_path[128];
static char capture_buf[256 * 1024];
static int capture_saved = -1;

/* Records handed over by a load, checked against the test data pattern. */
struct got {
	size_t n;
	uint64_t seq[MAX_GOT];
	size_t len[MAX_GOT];
	int bad_data;      /* records whose bytes or length were not what was spooled */
	int any_len;       /* do not check lengths against data_len() */
	size_t stop_after; /* return -1 once this many were taken, if non-zero */
};

/* A batch of records with their data, for spool_append and spool_rewrite. */
struct batch {
	struct spool_record recs[MAX_RECS];
	uint8_t *bufs[MAX_RECS];
	size_t n;
};

/* The usual data length of record seq (0 for some). */
static size_t data_len(uint64_t seq)
{
	return (size_t)((seq * 37u) % 300u);
}

/* Byte i of record seq's data. */
static uint8_t data_byte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + 1u);
}

/* Non-zero if data is record seq's pattern. */
static int data_matches(uint64_t seq, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (data[i] != data_byte(seq, i))
			return 0;
	return 1;
}

/* spool_load_fn that records what it gets in a struct got. */
static int got_record(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	struct got *g = arg;
	if (g->stop_after && g->n == g->stop_after)
		return -1;
	if ((!g->any_len && len != data_len(seq)) || !data_matches(seq, data, len))
		g->bad_data++;
	if (g->n < MAX_GOT) {
		g->seq[g->n] = seq;
		g->len[g->n] = len;
	}
	g->n++;
	return 0;
}

/* Non-zero if g holds exactly seqs first..first+n-1 with good data. */
static int got_range(const struct got *g, uint64_t first, size_t n)
{
	if (g->n != n || g->bad_data)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (g->seq[i] != first + i)
			return 0;
	return 1;
}

/* Fill b with n records first, first+1, ... each len bytes (or data_len when
 * len is SIZE_MAX). */
static void batch_make(struct batch *b, uint64_t first, size_t n, size_t len)
{
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = first + i;
		size_t l = len == SIZE_MAX ? data_len(seq) : len;
		b->bufs[i] = malloc(l ? l : 1);
		for (size_t j = 0; j < l; j++)
			b->bufs[i][j] = data_byte(seq, j);
		b->recs[i] = (struct spool_record){.seq = seq, .data = b->bufs[i], .len = l};
	}
}

/* Free a batch's data. */
static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->bufs[i]);
	b->n = 0;
}

/* Append records first..first+n-1 with their usual lengths in one call. */
static int append_range(struct spool *sp, uint64_t run_id, uint64_t dropped, uint64_t first,
                        size_t n)
{
	struct batch b;
	batch_make(&b, first, n, SIZE_MAX);
	int rc = spool_append(sp, run_id, dropped, b.recs, b.n);
	int saved = errno;
	batch_free(&b);
	errno = saved;
	return rc;
}

/* Load into a fresh g; returns spool_load's result. */
static int load_into(struct spool *sp, struct got *g, uint64_t *run_id, uint64_t *dropped)
{
	int any_len = g->any_len;
	size_t stop_after = g->stop_after;
	memset(g, 0, sizeof *g);
	g->any_len = any_len;
	g->stop_after = stop_after;
	return spool_load(sp, run_id, dropped, got_record, g);
}

/* base/name into out. */
static void test_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", base, name);
}

/* A file's size, or -1 when it is absent. */
static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

/* The whole file in a new buffer (*len bytes); NULL when unreadable. */
static uint8_t *file_slurp(const char *path, size_t *len)
{
	long long size = file_size(path);
	if (size < 0)
		return NULL;
	uint8_t *buf = malloc((size_t)size + 1);
	FILE *f = fopen(path, "rb");
	if (!buf || !f || fread(buf, 1, (size_t)size, f) != (size_t)size) {
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)size;
	return buf;
}

/* Write len bytes of buf as the whole file; 0 or -1. */
static int file_put(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int rc = (len && fwrite(buf, 1, len, f) != len) ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Send stderr (the log) to a file until capture_end. */
static void capture_start(void)
{
	fflush(stderr);
	capture_saved = dup(STDERR_FILENO);
	int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* Restore stderr and return what was logged since capture_start. */
static const char *capture_end(void)
{
	fflush(stderr);
	dup2(capture_saved, STDERR_FILENO);
	close(capture_saved);
	if (util_read_file(capture_path, capture_buf, sizeof capture_buf) < 0)
		capture_buf[0] = '\0';
	return capture_buf;
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Small deterministic PRNG (xorshift64) for the fuzz loops. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The CRC is CRC-32/IEEE: check value and chaining. */
static void test_crc32(void)
{
	CHECK(util_crc32(0, "123456789", 9) == 0xCBF43926u);
	CHECK(util_crc32(util_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
	CHECK(util_crc32(0, "", 0) == 0);
}

/* The file's bytes are the documented big-endian layout; folder 0700, file 0600. */
static void test_format(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "format/a/b");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(file_size(path) == -1);
	const uint8_t abc[] = {'a', 'b', 'c'};
	struct spool_record r = {.seq = 0x0102030405060708ull, .data = abc, .len = 3};
	CHECK(spool_append(sp, 0x1122334455667788ull, 5, &r, 1) == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	size_t len = 0;
	uint8_t *img = file_slurp(path, &len);
	CHECK(img && len == 32 + 16 + 3);
	if (img && len == 51) {
		static const uint8_t head[32] = {
		    'P',  'M',  'S',  'P',  'O',  'O',  'L',  '1',  0, 0, 0, 2, 0, 0, 0, 0,
		    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0, 0, 0, 0, 5,
		};
		static const uint8_t rec[] = {0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 'a', 'b', 'c'};
		uint32_t crc = util_crc32(0, rec + 4, 11);
		CHECK(memcmp(img, head, 32) == 0);
		CHECK(memcmp(img + 32, rec, 4) == 0);
		CHECK(img[36] == (uint8_t)(crc >> 24) && img[37] == (uint8_t)(crc >> 16) &&
		      img[38] == (uint8_t)(crc >> 8) && img[39] == (uint8_t)crc);
		CHECK(memcmp(img + 40, rec + 4, 11) == 0);
	}
	free(img);
	CHECK(spool_sync(sp) == 0);
	spool_close(sp);
}

/* Append in several calls, reopen (a restart), load: same records in order,
 * the header from the first append. */
static void test_roundtrip(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "roundtrip");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	struct got g = {0};
	uint64_t rid = 1, drp = 1;
	CHECK(load_into(sp, &g, &rid, &drp) == 0 && g.n == 0 && rid == 0 && drp == 0);
	CHECK(spool_bytes(sp) == 0);
	CHECK(spool_append(sp, 42, 3, NULL, 0) == 0);
	CHECK(file_size(path) == -1);
	CHECK(append_range(sp, 42, 3, 1, 5) == 0);
	CHECK(spool_bytes(sp) == (uint64_t)file_size(path));
	CHECK(append_range(sp, 99, 7, 6, 3) == 0);
	CHECK(append_range(sp, 99, 7, 9, 1) == 0);
	CHECK(spool_sync(sp) == 0);
	CHECK(spool_bytes(sp) == (uint64_t)file_size(path));
	spool_close(sp);

	sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(load_into(sp, &g, &rid, &drp) == 9);
	CHECK(got_range(&g, 1, 9));
	CHECK(rid == 42 && drp == 3);
	CHECK(load_into(sp, &g, &rid, &drp) == 9 && got_range(&g, 1, 9));
	CHECK(append_range(sp, 1, 1, 10, 2) == 0);
	CHECK(load_into(sp, &g, NULL, NULL) == 11 && got_range(&g, 1, 11));
	CHECK(spool_bytes(sp) == (uint64_t)file_size(path));
	spool_close(sp);
}

/* Extreme seqs and a zero-length record survive the trip. */
static void test_roundtrip_edges(void)
{
	char dir[256];
	test_path(dir, sizeof dir, "edges");
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	struct batch b;
	batch_make(&b, 0, 1, 0);
	struct batch c;
	batch_make(&c, UINT64_MAX - 1, 2, 5);
	CHECK(spool_append(sp, UINT64_MAX, UINT64_MAX, b.recs, b.n) == 0);
	CHECK(spool_append(sp, 0, 0, c.recs, c.n) == 0);
	struct got g = {.any_len = 1};
	uint64_t rid = 0, drp = 0;
	CHECK(load_into(sp, &g, &rid, &drp) == 3 && g.bad_data == 0);
	CHECK(g.seq[0] == 0 && g.len[0] == 0);
	CHECK(g.seq[1] == UINT64_MAX - 1 && g.seq[2] == UINT64_MAX && g.len[2] == 5);
	CHECK(rid == UINT64_MAX && drp == UINT64_MAX);
	batch_free(&b);
	batch_free(&c);
	spool_close(sp);
}

/* An empty file loads as nothing, stays in place, and takes a header on append. */
static void test_empty_file(void)
{
	char dir[256], path[300], bad[300];
	test_path(dir, sizeof dir, "empty");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	snprintf(bad, sizeof bad, "%s/spool.dat.bad", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(file_put(path, NULL, 0) == 0);
	struct got g = {0};
	uint64_t rid = 9;
	CHECK(load_into(sp, &g, &rid, NULL) == 0 && g.n == 0 && rid == 0);
	CHECK(file_size(path) == 0 && file_size(bad) == -1);
	CHECK(append_range(sp, 5, 0, 1, 1) == 0);
	CHECK(load_into(sp, &g, &rid, NULL) == 1 && got_range(&g, 1, 1) && rid == 5);
	spool_close(sp);
}

/* Build the reference image for the tear tests: records 1..4 in two appends. */
static uint8_t *torn_reference(size_t *len, size_t *ends)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "torn-ref");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	if (!sp)
		return NULL;
	int rc = append_range(sp, 42, 2, 1, 3) | append_range(sp, 42, 2, 4, 1);
	spool_close(sp);
	if (rc < 0)
		return NULL;
	ends[0] = 32;
	for (uint64_t s = 1; s <= 4; s++)
		ends[s] = ends[s - 1] + 16 + data_len(s);
	return file_slurp(path, len);
}

/* Load a file cut at cut bytes and check it against the records wholly in
 * it; then append one more and check the file is whole. 0 when all is well. */
static int torn_one(struct spool *sp, const char *path, const char *bad, const uint8_t *img,
                    size_t cut, const size_t *ends)
{
	struct got g = {0};
	uint64_t rid = 0, drp = 0;
	size_t k = 0;
	while (k < 4 && ends[k + 1] <= cut)
		k++;
	unlink(bad);
	if (file_put(path, img, cut) < 0)
		return -1;
	capture_start();
	int n = load_into(sp, &g, &rid, &drp);
	const char *log = capture_end();
	if (cut < 32) {
		if (n != 0 || g.n != 0 || file_size(path) != -1 ||
		    file_size(bad) != (long long)cut || !strstr(log, "moved aside"))
			return -1;
	} else {
		char skipped[64];
		snprintf(skipped, sizeof skipped, "%zu bytes skipped", cut - ends[k]);
		if (n != (int)k || !got_range(&g, 1, k) || rid != 42 || drp != 2 ||
		    file_size(path) != (long long)ends[k])
			return -1;
		if (cut != ends[k] ? !strstr(log, skipped) : log[0] != '\0')
			return -1;
	}
	if (append_range(sp, 7, 0, 100, 1) < 0)
		return -1;
	capture_start();
	n = load_into(sp, &g, &rid, NULL);
	log = capture_end();
	if (log[0] != '\0' || g.bad_data || n != (int)k + 1 || g.seq[k] != 100)
		return -1;
	if (rid != (cut < 32 ? 7u : 42u))
		return -1;
	for (size_t i = 0; i < k; i++)
		if (g.seq[i] != i + 1)
			return -1;
	size_t len = 0;
	uint8_t *now = file_slurp(path, &len);
	size_t valid = now ? spool_parse(now, len, NULL, NULL, NULL, NULL) : 0;
	free(now);
	return now && valid == len ? 0 : -1;
}

/* A file torn at every byte offset loads its whole records, is cut (or moved
 * aside when the header is torn), and takes good appends afterwards. */
static void test_torn_every_offset(void)
{
	char dir[256], path[300], bad[300];
	size_t ends[5], len = 0;
	uint8_t *img = torn_reference(&len, ends);
	CHECK(img != NULL && len == ends[4]);
	if (!img || len != ends[4]) {
		free(img);
		return;
	}
	test_path(dir, sizeof dir, "torn");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	snprintf(bad, sizeof bad, "%s/spool.dat.bad", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	int failures = 0, tried = 0, header_tears = 0, last_tears = 0;
	for (size_t cut = 1; sp && cut < len; cut++) {
		tried++;
		header_tears += cut < 32;
		last_tears += cut > ends[3];
		if (torn_one(sp, path, bad, img, cut, ends) < 0) {
			failures++;
			fprintf(stderr, "torn at %zu of %zu: wrong load or repair\n", cut, len);
		}
	}
	CHECK(tried == (int)len - 1);
	CHECK(header_tears == 31 && last_tears == (int)(len - ends[3] - 1));
	CHECK(failures == 0);
	spool_close(sp);
	free(img);
}

/* Load an image (after writing it to path) and return the count; g gets the records. */
static int load_image(struct spool *sp, const char *path, const uint8_t *img, size_t len,
                      struct got *g, const char **log)
{
	if (file_put(path, img, len) < 0)
		return -2;
	capture_start();
	int n = load_into(sp, g, NULL, NULL);
	*log = capture_end();
	return n;
}

/* Corruption in the middle (data, seq, absurd length) stops the load
 * before it and cuts the file there. */
static void test_corrupt_middle(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "corrupt");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 1, 0, 1, 5) == 0);
	size_t len = 0;
	uint8_t *img = file_slurp(path, &len);
	CHECK(img != NULL);
	if (!img) {
		spool_close(sp);
		return;
	}
	size_t rec3 = 32 + (16 + data_len(1)) + (16 + data_len(2));
	uint8_t *copy = malloc(len);
	struct got g = {0};
	const char *log;

	memcpy(copy, img, len);
	copy[rec3 + 16 + 5] ^= 0x01;
	CHECK(load_image(sp, path, copy, len, &g, &log) == 2 && got_range(&g, 1, 2));
	CHECK(file_size(path) == (long long)rec3 && strstr(log, "CRC mismatch"));

	memcpy(copy, img, len);
	copy[rec3 + 15] ^= 0x80;
	CHECK(load_image(sp, path, copy, len, &g, &log) == 2 && got_range(&g, 1, 2));
	CHECK(file_size(path) == (long long)rec3);

	memcpy(copy, img, len);
	memset(copy + rec3, 0xff, 4);
	CHECK(load_image(sp, path, copy, len, &g, &log) == 2 && got_range(&g, 1, 2));
	CHECK(file_size(path) == (long long)rec3 && strstr(log, "absurd record length"));

	memcpy(copy, img, len);
	copy[rec3 + 3] ^= 0x01;
	CHECK(load_image(sp, path, copy, len, &g, &log) == 2 && got_range(&g, 1, 2));

	memcpy(copy, img, len);
	copy[3] = 'X';
	CHECK(load_image(sp, path, copy, len, &g, &log) == 0 && g.n == 0);
	CHECK(file_size(path) == -1 && strstr(log, "bad magic"));

	memcpy(copy, img, len);
	copy[11] = 1; /* written before marks: still read */
	CHECK(load_image(sp, path, copy, len, &g, &log) == 5 && got_range(&g, 1, 5));

	memcpy(copy, img, len);
	copy[11] = 3;
	CHECK(load_image(sp, path, copy, len, &g, &log) == 0 && strstr(log, "unknown version"));

	memcpy(copy, img, len);
	copy[11] = 0;
	CHECK(load_image(sp, path, copy, len, &g, &log) == 0 && strstr(log, "unknown version"));

	free(copy);
	free(img);
	spool_close(sp);
}

/* A loader that says stop gets no more records, and nothing is cut. */
static void test_load_stop(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "stop");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 1, 0, 1, 6) == 0);
	long long before = file_size(path);
	struct got g = {.stop_after = 2};
	capture_start();
	int n = load_into(sp, &g, NULL, NULL);
	const char *log = capture_end();
	CHECK(n == 2 && got_range(&g, 1, 2));
	CHECK(file_size(path) == before && log[0] == '\0');
	g.stop_after = 0;
	CHECK(load_into(sp, &g, NULL, NULL) == 6 && got_range(&g, 1, 6));
	spool_close(sp);
}

/* The largest record is taken; a larger one is refused with EINVAL. */
static void test_record_max(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "max");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	struct batch b;
	batch_make(&b, 7, 1, SPOOL_RECORD_MAX);
	CHECK(spool_append(sp, 1, 0, b.recs, 1) == 0);
	batch_free(&b);
	long long before = file_size(path);
	batch_make(&b, 8, 1, SPOOL_RECORD_MAX + 1);
	capture_start();
	errno = 0;
	int rc = spool_append(sp, 1, 0, b.recs, 1);
	int err = errno;
	int rc2 = spool_rewrite(sp, 1, 0, b.recs, 1);
	int err2 = errno;
	const char *log = capture_end();
	CHECK(rc == -1 && err == EINVAL && count_of(log, "not spooled") == 2);
	CHECK(rc2 == -1 && err2 == EINVAL);
	CHECK(file_size(path) == before);
	batch_free(&b);
	struct got g = {.any_len = 1};
	CHECK(load_into(sp, &g, NULL, NULL) == 1 && g.bad_data == 0);
	CHECK(g.seq[0] == 7 && g.len[0] == SPOOL_RECORD_MAX);
	spool_close(sp);
}

/* An image of one record with the given length field, a matching CRC and
 * as much data as that length says; NULL when out of memory. */
static uint8_t *image_one_record(uint32_t reclen, size_t *len)
{
	static const uint8_t head[32] = {'P', 'M', 'S', 'P', 'O', 'O', 'L', '1', 0, 0, 0, 1};
	*len = 32 + 16 + (size_t)reclen;
	uint8_t *img = calloc(1, *len);
	if (!img)
		return NULL;
	memcpy(img, head, 32);
	img[32] = (uint8_t)(reclen >> 24);
	img[33] = (uint8_t)(reclen >> 16);
	img[34] = (uint8_t)(reclen >> 8);
	img[35] = (uint8_t)reclen;
	img[47] = 9;
	uint32_t crc = util_crc32(0, img + 40, 8u + reclen);
	img[36] = (uint8_t)(crc >> 24);
	img[37] = (uint8_t)(crc >> 16);
	img[38] = (uint8_t)(crc >> 8);
	img[39] = (uint8_t)crc;
	return img;
}

/* A record longer than SPOOL_RECORD_MAX is corrupt even with a good CRC. */
static void test_parse_length_bound(void)
{
	size_t len = 0;
	uint8_t *img = image_one_record(SPOOL_RECORD_MAX, &len);
	CHECK(img && spool_parse(img, len, NULL, NULL, NULL, NULL) == len);
	free(img);
	img = image_one_record(SPOOL_RECORD_MAX + 1, &len);
	CHECK(img && spool_parse(img, len, NULL, NULL, NULL, NULL) == 32);
	free(img);
}

/* Parse n bytes of src from an exact-size heap copy (so ASan sees any
 * over-read); returns the prefix and adds the records to g. */
static size_t parse_exact(const uint8_t *src, size_t n, struct got *g)
{
	uint8_t *copy = malloc(n ? n : 1);
	if (n)
		memcpy(copy, src, n);
	size_t valid = spool_parse(copy, n, NULL, NULL, g ? got_record : NULL, g);
	free(copy);
	return valid;
}

/* Random buffers, some with a good header and plausible record headers,
 * never crash the parser, and the prefix stays within the buffer. */
static void test_parse_random(void)
{
	static const uint8_t head[32] = {'P', 'M', 'S', 'P', 'O', 'O', 'L', '1', 0, 0, 0, 1};
	uint64_t s = 0x9E3779B97F4A7C15ull;
	uint8_t buf[640];
	int bad = 0, past_header = 0;
	for (int it = 0; it < FUZZ_ITERS; it++) {
		size_t n = (size_t)(rng_next(&s) % sizeof buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rng_next(&s);
		if (it % 2 && n >= 32)
			memcpy(buf, head, 12);
		if (it % 4 == 1 && n >= 48) {
			uint32_t l = (uint32_t)(rng_next(&s) % 700);
			buf[32] = 0;
			buf[33] = 0;
			buf[34] = (uint8_t)(l >> 8);
			buf[35] = (uint8_t)l;
		}
		size_t valid = parse_exact(buf, n, NULL);
		past_header += valid >= 32;
		if (valid > n || (valid != 0 && valid < 32))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(past_header > FUZZ_ITERS / 8);
	CHECK(spool_parse(NULL, 0, NULL, NULL, NULL, NULL) == 0);
}

/* Mutated and truncated valid images never crash the parser, the prefix
 * stays within the buffer, and every record handed over is a true one. */
static void test_parse_mutated(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "mutate");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 3, 1, 1, 6) == 0);
	spool_close(sp);
	size_t len = 0;
	uint8_t *img = file_slurp(path, &len);
	CHECK(img != NULL && parse_exact(img, len, NULL) == len);
	if (!img)
		return;
	uint8_t *work = malloc(len);
	uint64_t s = 12345;
	int bad = 0, wrong = 0;
	struct got g;
	for (int it = 0; it < FUZZ_ITERS; it++) {
		memcpy(work, img, len);
		size_t n = len;
		int muts = 1 + (int)(rng_next(&s) % 3);
		for (int m = 0; m < muts; m++) {
			uint64_t r = rng_next(&s);
			if (r % 5 == 0)
				n = (size_t)(rng_next(&s) % (n + 1));
			else if (n)
				work[rng_next(&s) % n] ^= (uint8_t)(1u << (r % 8));
			if (r % 7 == 0 && n)
				work[rng_next(&s) % n] = (uint8_t)(r >> 8);
		}
		memset(&g, 0, sizeof g);
		size_t valid = parse_exact(work, n, &g);
		if (valid > n)
			bad++;
		if (g.bad_data || g.n > 6)
			wrong++;
	}
	CHECK(bad == 0);
	CHECK(wrong == 0);
	free(work);
	free(img);
}

/* Rewrite replaces the content exactly, leaves no .tmp, later appends go
 * to the new file, and n == 0 removes it. */
static void test_rewrite(void)
{
	char dir[256], path[300], tmp[300];
	test_path(dir, sizeof dir, "rewrite");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	snprintf(tmp, sizeof tmp, "%s/spool.dat.tmp", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 1, 0, 1, 6) == 0);
	struct batch b;
	batch_make(&b, 10, 2, SIZE_MAX);
	CHECK(spool_rewrite(sp, 2, 9, b.recs, b.n) == 0);
	batch_free(&b);
	CHECK(file_size(tmp) == -1);
	CHECK(file_size(path) == (long long)(32 + 32 + data_len(10) + data_len(11)));
	CHECK(spool_bytes(sp) == (uint64_t)file_size(path));
	CHECK(append_range(sp, 5, 5, 12, 1) == 0);
	struct got g = {0};
	uint64_t rid = 0, drp = 0;
	CHECK(load_into(sp, &g, &rid, &drp) == 3 && got_range(&g, 10, 3));
	CHECK(rid == 2 && drp == 9);
	batch_make(&b, 30, 1, SIZE_MAX);
	CHECK(spool_rewrite(sp, 4, 0, b.recs, b.n) == 0);
	batch_free(&b);
	CHECK(load_into(sp, &g, &rid, &drp) == 1 && got_range(&g, 30, 1) && rid == 4 && drp == 0);

	CHECK(spool_rewrite(sp, 2, 9, NULL, 0) == 0);
	CHECK(file_size(path) == -1 && spool_bytes(sp) == 0);
	CHECK(load_into(sp, &g, NULL, NULL) == 0);
	CHECK(append_range(sp, 3, 0, 20, 1) == 0);
	CHECK(load_into(sp, &g, &rid, NULL) == 1 && got_range(&g, 20, 1) && rid == 3);
	spool_close(sp);
}

/* A failed rewrite leaves the old file intact; a stale .tmp is removed on open. */
static void test_rewrite_failure(void)
{
	char dir[256], path[300], tmp[300];
	test_path(dir, sizeof dir, "rewrite-fail");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	snprintf(tmp, sizeof tmp, "%s/spool.dat.tmp", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 1, 0, 1, 3) == 0);
	CHECK(mkdir(tmp, 0700) == 0);
	struct batch b;
	batch_make(&b, 10, 2, SIZE_MAX);
	capture_start();
	int rc = spool_rewrite(sp, 2, 0, b.recs, b.n);
	const char *log = capture_end();
	CHECK(rc == -1 && strstr(log, "spool.dat.tmp"));
	struct got g = {0};
	CHECK(load_into(sp, &g, NULL, NULL) == 3 && got_range(&g, 1, 3));
	CHECK(rmdir(tmp) == 0);
	capture_start();
	rc = spool_rewrite(sp, 2, 0, b.recs, b.n);
	log = capture_end();
	CHECK(rc == 0 && strstr(log, "works again"));
	CHECK(load_into(sp, &g, NULL, NULL) == 2 && got_range(&g, 10, 2));
	batch_free(&b);
	spool_close(sp);

	CHECK(file_put(tmp, (const uint8_t *)"junk", 4) == 0);
	capture_start();
	sp = spool_open(dir);
	capture_end();
	CHECK(sp != NULL && file_size(tmp) == -1 && file_size(path) > 0);
	spool_close(sp);
}

/* Failed appends are logged once per streak; success logs that it works again. */
static void test_failure_streak(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "streak");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(mkdir(path, 0700) == 0);
	capture_start();
	int rc1 = append_range(sp, 1, 0, 1, 1);
	int err = errno;
	int rc2 = append_range(sp, 1, 0, 1, 1);
	const char *log = capture_end();
	CHECK(rc1 == -1 && rc2 == -1 && err == EISDIR);
	CHECK(count_of(log, "cannot") == 1);
	CHECK(rmdir(path) == 0);
	capture_start();
	rc1 = append_range(sp, 1, 0, 1, 1);
	rc2 = append_range(sp, 1, 0, 2, 1);
	log = capture_end();
	CHECK(rc1 == 0 && rc2 == 0 && count_of(log, "works again") == 1);
	struct got g = {0};
	CHECK(load_into(sp, &g, NULL, NULL) == 2 && got_range(&g, 1, 2));
	spool_close(sp);
}

/* Clear removes the file (twice is fine) and appends start a new one. */
static void test_clear(void)
{
	char dir[256], path[300];
	test_path(dir, sizeof dir, "clear");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(append_range(sp, 1, 0, 1, 4) == 0);
	CHECK(spool_bytes(sp) > 0);
	CHECK(spool_clear(sp) == 0);
	CHECK(file_size(path) == -1 && spool_bytes(sp) == 0);
	CHECK(spool_clear(sp) == 0);
	CHECK(spool_sync(sp) == 0);
	CHECK(append_range(sp, 8, 1, 5, 1) == 0);
	struct got g = {0};
	uint64_t rid = 0, drp = 0;
	CHECK(load_into(sp, &g, &rid, &drp) == 1 && got_range(&g, 5, 1) && rid == 8 && drp == 1);
	CHECK(spool_bytes(sp) == (uint64_t)file_size(path));
	spool_close(sp);
}

/* spool_open fails (logged) when the folder cannot be made. */
static void test_open_failure(void)
{
	char file[256], dir[300];
	test_path(file, sizeof file, "not-a-dir");
	snprintf(dir, sizeof dir, "%s/sub", file);
	CHECK(file_put(file, (const uint8_t *)"x", 1) == 0);
	capture_start();
	struct spool *a = spool_open(file);
	struct spool *b = spool_open(dir);
	const char *log = capture_end();
	CHECK(a == NULL && b == NULL && count_of(log, "cannot create") == 2);
}

/* Append to a full disk until ENOSPC: the file keeps only whole records. */
static void full_disk_fill(const char *mnt)
{
	char dir[300], path[320];
	snprintf(dir, sizeof dir, "%s/spool", mnt);
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct spool *sp = spool_open(dir);
	CHECK(sp != NULL);
	if (!sp)
		return;
	struct batch b;
	size_t appended = 0;
	int rc = 0, err = 0;
	capture_start();
	for (uint64_t first = 0; first < 600 && rc == 0; first += 3) {
		batch_make(&b, first, 3, 1000);
		rc = spool_append(sp, 77, 0, b.recs, b.n);
		err = errno;
		batch_free(&b);
		appended += rc == 0 ? 3 : 0;
	}
	batch_make(&b, 1000, 3, 1000);
	int rc2 = spool_append(sp, 77, 0, b.recs, b.n);
	int err2 = errno;
	batch_free(&b);
	const char *log = capture_end();
	CHECK(rc == -1 && err == ENOSPC && rc2 == -1 && err2 == ENOSPC);
	CHECK(appended > 0 && count_of(log, "No space left") == 1);

	size_t len = 0;
	uint8_t *img = file_slurp(path, &len);
	struct got g = {.any_len = 1};
	CHECK(img != NULL && parse_exact(img, len, &g) == len && g.n == appended);
	CHECK(len == 32 + appended * (16 + 1000) && spool_bytes(sp) == len);
	free(img);
	capture_start();
	int n = load_into(sp, &g, NULL, NULL);
	log = capture_end();
	CHECK(n == (int)appended && got_range(&g, 0, appended) && log[0] == '\0');

	CHECK(spool_clear(sp) == 0);
	batch_make(&b, 5000, 3, 1000);
	capture_start();
	rc = spool_append(sp, 78, 0, b.recs, b.n);
	log = capture_end();
	batch_free(&b);
	CHECK(rc == 0 && strstr(log, "works again"));
	CHECK(load_into(sp, &g, NULL, NULL) == 3 && got_range(&g, 5000, 3));
	spool_close(sp);
}

/* On a 64k tmpfs (root only), a full disk gives ENOSPC and no torn record. */
static void test_full_disk(void)
{
	char mnt[256];
	test_path(mnt, sizeof mnt, "tmpfs");
	if (geteuid() != 0 || mkdir(mnt, 0700) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") < 0) {
		printf("skip: cannot mount tmpfs\n");
		return;
	}
	full_disk_fill(mnt);
	if (umount2(mnt, 0) < 0 && umount2(mnt, MNT_DETACH) < 0)
		fprintf(stderr, "cannot unmount %s: %s\n", mnt, strerror(errno));
}

/* Remove one entry of the temporary tree for nftw. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Run every spool test in a fresh folder under /tmp. */
int main(void)
{
	umask(022);
	snprintf(base, sizeof base, "/tmp/pimon-spool-XXXXXX");
	if (!mkdtemp(base)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(capture_path, sizeof capture_path, "%s/log.txt", base);
	log_init("test-spool", LOG_DEBUG);
	test_crc32();
	test_format();
	test_roundtrip();
	test_roundtrip_edges();
	test_empty_file();
	test_torn_every_offset();
	test_corrupt_middle();
	test_load_stop();
	test_record_max();
	test_parse_length_bound();
	test_parse_random();
	test_parse_mutated();
	test_rewrite();
	test_rewrite_failure();
	test_failure_streak();
	test_clear();
	test_open_failure();
	test_full_disk();
	nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return check_report("spool");
}
