/* The storage housekeeper: compression of closed files into day segments,
 * retention by age and by size, on a thread of its own. Nothing here is
 * shared with the workers but the file system: the store only renames an
 * open file to its closed name and never touches it again, and only this
 * thread writes or deletes segments. */
#include "housekeep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "safefs.h"
#include "util.h"
#include "zstdio.h"

#define DAY_MS ((uint64_t)86400000)

/* Segments are named "<label>.<ms>.csv.zst". */
#define SEG_SUFFIX ".csv.zst"

const char *const housekeep_counter_names[] = {
#define X(name, help) #name,
    HOUSEKEEP_COUNTERS(X)
#undef X
};

const char *const housekeep_counter_help[] = {
#define X(name, help) help,
    HOUSEKEEP_COUNTERS(X)
#undef X
};

/* One tier: where its closed files lie (NULL: the host folder itself),
 * where its segment folders lie, and whether a segment holds a month. */
struct tier {
	const char *name;
	const char *closed_dir;
	const char *seg_dir;
	int monthly;
};

enum { TIER_RAW, TIER_MINUTE, TIER_HOUR, NTIERS };

static const struct tier tiers[NTIERS] = {
    [TIER_RAW] = {"raw", NULL, "raw", 0},
    [TIER_MINUTE] = {"1m", "1m", "1m", 0},
    [TIER_HOUR] = {"1h", "1h", "1h", 1},
};

struct housekeep {
	int data_fd;
	int hosts_fd;
	struct housekeep_config cfg;
	struct housekeep_hooks hooks;
	_Atomic uint64_t counters[HKC_COUNT];
	_Atomic uint64_t bytes; /* under hosts/ at the end of the last sweep */
	_Atomic uint64_t cap;   /* the cap in force then */
	atomic_int stopping;    /* a sweep checks it between files */
	pthread_mutex_t lock;   /* with wake: the thread's sleep between sweeps */
	pthread_cond_t wake;
	pthread_t thread;
	int started;
};

/* Add n to counter c; only the housekeeper's thread writes. */
static void hk_count(struct housekeep *hk, enum housekeep_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&hk->counters[c], n, memory_order_relaxed);
}

/* Counter c. Any thread. */
uint64_t housekeep_counter(const struct housekeep *hk, enum housekeep_counter c)
{
	return atomic_load_explicit(&hk->counters[c], memory_order_relaxed);
}

/* Bytes under hosts/ after the last sweep. Any thread. */
uint64_t housekeep_bytes(const struct housekeep *hk)
{
	return atomic_load_explicit(&hk->bytes, memory_order_relaxed);
}

/* The cap the last sweep applied. Any thread. */
uint64_t housekeep_cap(const struct housekeep *hk)
{
	return atomic_load_explicit(&hk->cap, memory_order_relaxed);
}

/* The part a time goes to: its day, or its month as year * 12 + month. */
static int64_t part_key(uint64_t t_ms, int monthly)
{
	int64_t day = (int64_t)(t_ms / DAY_MS);
	if (!monthly)
		return day;
	int64_t y;
	unsigned m, d;
	util_civil_from_days(day, &y, &m, &d);
	return y * 12 + (int64_t)m;
}

/* "YYYY-MM-DD" or "YYYY-MM" of t_ms, UTC. */
void housekeep_label(uint64_t t_ms, int monthly, char out[16])
{
	int64_t y;
	unsigned m, d;
	util_civil_from_days((int64_t)(t_ms / DAY_MS), &y, &m, &d);
	if (monthly)
		snprintf(out, 16, "%04" PRId64 "-%02u", y, m);
	else
		snprintf(out, 16, "%04" PRId64 "-%02u-%02u", y, m, d);
}

/* FNV-1a of the name mod delay_ms. */
uint64_t housekeep_stagger(const char *host, uint64_t delay_ms)
{
	uint64_t h = 1469598103934665603ull;
	for (; *host; host++)
		h = (h ^ (unsigned char)*host) * 1099511628211ull;
	return delay_ms ? h % delay_ms : 0;
}

/* Parse 1..20 decimal digits at s (no more) into *v; the length, or 0. */
static size_t parse_u64(const char *s, size_t max, uint64_t *v)
{
	uint64_t n = 0;
	size_t i = 0;
	for (; i < max && s[i] >= '0' && s[i] <= '9'; i++) {
		uint64_t digit = (uint64_t)(s[i] - '0');
		if (i >= 20 || n > (UINT64_MAX - digit) / 10)
			return 0;
		n = n * 10 + digit;
	}
	*v = n;
	return i;
}

/* One row of a closed file being split. */
struct row {
	uint64_t t;
	size_t idx; /* in the file, for a stable order */
	const char *p;
	size_t len; /* without its newline */
	int untimed;
};

/* By time, then file order. */
static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The time of a row: its first field, all digits; -1 when it is not. */
static int row_time(const char *p, size_t len, uint64_t *t)
{
	size_t field = 0;
	while (field < len && p[field] != ',')
		field++;
	return field > 0 && parse_u64(p, field, t) == field ? 0 : -1;
}

/* Give each untimed row the time of the row before it with one, or of the
 * first row with one (it then sorts before that row), or fallback_ms. */
static void rows_place_untimed(struct row *rows, size_t n, uint64_t fallback_ms)
{
	size_t first = 0;
	while (first < n && rows[first].untimed)
		first++;
	uint64_t t = first < n ? rows[first].t : fallback_ms;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].untimed)
			rows[i].t = t;
		else
			t = rows[i].t;
	}
}

/* Cut csv into the header and rows; *rows malloc'd. -1 out of memory. */
static int rows_read(const char *csv, size_t len, const char **header, size_t *hlen,
                     struct row **out, size_t *nrows, size_t *untimed)
{
	const char *end = csv + len;
	const char *nl = memchr(csv, '\n', len);
	*header = csv;
	*hlen = nl ? (size_t)(nl - csv) : len;
	*out = NULL;
	*nrows = 0;
	*untimed = 0;
	size_t cap = 0;
	for (const char *p = nl ? nl + 1 : end; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t l = e ? (size_t)(e - p) : (size_t)(end - p);
		if (l > 0) {
			if (*nrows == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				struct row *grown = realloc(*out, ncap * sizeof *grown);
				if (!grown) {
					free(*out);
					*out = NULL;
					return -1;
				}
				*out = grown;
				cap = ncap;
			}
			struct row *r = &(*out)[*nrows];
			r->idx = *nrows;
			r->p = p;
			r->len = l;
			r->t = 0;
			r->untimed = row_time(p, l, &r->t) < 0;
			if (r->untimed) {
				r->t = 0;
				(*untimed)++;
			}
			(*nrows)++;
		}
		p += l + 1;
	}
	return 0;
}

/* Free the parts. */
void housekeep_parts_free(struct housekeep_part *parts, size_t n)
{
	for (size_t i = 0; parts && i < n; i++)
		free(parts[i].text);
	free(parts);
}

/* Make the part of rows[from, to): the header, then each row. */
static int part_make(struct housekeep_part *part, const char *header, size_t hlen,
                     const struct row *rows, size_t from, size_t to, int monthly)
{
	size_t len = hlen + 1;
	for (size_t i = from; i < to; i++)
		len += rows[i].len + 1;
	part->text = malloc(len + 1);
	if (!part->text)
		return -1;
	char *w = part->text;
	memcpy(w, header, hlen);
	w += hlen;
	*w++ = '\n';
	for (size_t i = from; i < to; i++) {
		memcpy(w, rows[i].p, rows[i].len);
		w += rows[i].len;
		*w++ = '\n';
	}
	*w = '\0';
	part->len = len;
	housekeep_label(rows[from].t, monthly, part->label);
	return 0;
}

/* Split a closed file by day (month), each part sorted. */
int housekeep_split(const char *csv, size_t len, int monthly, uint64_t fallback_ms,
                    struct housekeep_part **parts, size_t *nparts, size_t *untimed)
{
	const char *header;
	size_t hlen, n;
	struct row *rows;
	*parts = NULL;
	*nparts = 0;
	if (rows_read(csv, len, &header, &hlen, &rows, &n, untimed) < 0)
		return -1;
	rows_place_untimed(rows, n, fallback_ms);
	if (n > 1)
		qsort(rows, n, sizeof *rows, row_cmp);
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += i == 0 || part_key(rows[i].t, monthly) != part_key(rows[i - 1].t, monthly);
	struct housekeep_part *out = calloc(count ? count : 1, sizeof *out);
	if (!out) {
		free(rows);
		return -1;
	}
	size_t made = 0, from = 0;
	for (size_t i = 1; i <= n; i++) {
		if (i < n && part_key(rows[i].t, monthly) == part_key(rows[from].t, monthly))
			continue;
		if (part_make(&out[made], header, hlen, rows, from, i, monthly) < 0) {
			housekeep_parts_free(out, made);
			free(rows);
			return -1;
		}
		made++;
		from = i;
	}
	free(rows);
	*parts = out;
	*nparts = made;
	return 0;
}

/* "<metric>.<ms>.csv": a closed file. 0 with metric and *ms, or -1. */
static int closed_name(const char *name, char metric[33], uint64_t *ms)
{
	const char *dot = strchr(name, '.');
	if (!dot || dot == name || (size_t)(dot - name) > 32)
		return -1;
	memcpy(metric, name, (size_t)(dot - name));
	metric[dot - name] = '\0';
	if (!util_valid_key(metric))
		return -1;
	size_t digits = parse_u64(dot + 1, SIZE_MAX, ms);
	if (digits == 0 || strcmp(dot + 1 + digits, ".csv") != 0)
		return -1;
	return 0;
}

/* Parse exactly n digits. */
static int parse_fixed(const char *s, size_t n, unsigned *v)
{
	uint64_t x;
	if (parse_u64(s, n, &x) != n)
		return -1;
	*v = (unsigned)x;
	return 0;
}

/* "<YYYY-MM-DD>.<ms>.csv.zst" (monthly: "<YYYY-MM>..."): a segment. 0 with
 * *day (of a month: its last day) and *ms, or -1. */
static int segment_name(const char *name, int monthly, int64_t *day, uint64_t *ms)
{
	uint64_t y;
	unsigned m, d = 1;
	size_t n = parse_u64(name, 6, &y);
	if (n < 4 || name[n] != '-' || parse_fixed(name + n + 1, 2, &m) < 0 || m < 1 || m > 12)
		return -1;
	const char *p = name + n + 3;
	if (!monthly) {
		if (*p != '-' || parse_fixed(p + 1, 2, &d) < 0 || d < 1 || d > 31)
			return -1;
		p += 3;
	}
	if (*p != '.')
		return -1;
	size_t digits = parse_u64(p + 1, SIZE_MAX, ms);
	if (digits == 0 || strcmp(p + 1 + digits, SEG_SUFFIX) != 0)
		return -1;
	if (monthly)
		*day = util_days_from_civil((int64_t)y + (m == 12), m == 12 ? 1 : m + 1, 1) - 1;
	else
		*day = util_days_from_civil((int64_t)y, m, d);
	return 0;
}

/* A fresh listing of folder dirfd (its own file offset, so other threads'
 * listings of the same folder are not disturbed); NULL with errno. */
static DIR *hk_opendir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = errno;
		close(fd);
		errno = err;
	}
	return d;
}

/* Read the whole file dirfd/name into a new NUL-terminated buffer. 0, or
 * -1 with errno (EFBIG past ZSTDIO_MAX). */
static int hk_read_file(int dirfd, const char *name, char **buf, size_t *len)
{
	int fd = safefs_file_open(dirfd, name, O_RDONLY);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if ((uint64_t)st.st_size > ZSTDIO_MAX) {
		errno = EFBIG;
		goto fail;
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *b = malloc(size + 1);
	if (!b)
		goto fail;
	while (got < size) {
		ssize_t n = read(fd, b + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < size) {
		free(b);
		errno = errno ? errno : EIO;
		goto fail;
	}
	b[got] = '\0';
	close(fd);
	*buf = b;
	*len = got;
	return 0;
fail:;
	int err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* Delete what an earlier, interrupted compression of closed file ms left
 * in segfd: its segments and any temporary file. 0 (the folder synced when
 * anything went), or -1 with errno. */
static int hk_clear_leftovers(int segfd, uint64_t ms)
{
	DIR *d = hk_opendir(segfd);
	if (!d)
		return -1;
	char tail[48];
	snprintf(tail, sizeof tail, ".%" PRIu64 SEG_SUFFIX, ms);
	size_t tlen = strlen(tail);
	int removed = 0, rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		int tmp = len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0;
		int ours = len > tlen && strcmp(de->d_name + len - tlen, tail) == 0;
		if (!tmp && !ours)
			continue;
		if (unlinkat(segfd, de->d_name, 0) < 0 && errno != ENOENT) {
			rc = -1;
			break;
		}
		removed++;
	}
	int err = errno;
	closedir(d);
	if (rc == 0 && removed && fsync(segfd) < 0)
		return -1;
	errno = err;
	return rc;
}

/* Log a failure about host's path with the reason errno gives. */
static void hk_fail(struct housekeep *hk, const char *host, const char *what, const char *path,
                    int err)
{
	char why[64];
	hk_count(hk, HKC_errors, 1);
	log_err("housekeep", "host %s: %s %s: %s%s", host, what, path,
	        safefs_refused(err) ? "refused: " : "", safefs_why(err, why, sizeof why));
}

/* Write each part as a segment of closed file ms into segfd; the bytes
 * written added to *out. 0, or -1 with errno. */
static int hk_write_parts(int segfd, const struct housekeep_part *parts, size_t n, uint64_t ms,
                          uint64_t *out)
{
	for (size_t i = 0; i < n; i++) {
		char seg[64];
		struct stat st;
		snprintf(seg, sizeof seg, "%s.%" PRIu64 SEG_SUFFIX, parts[i].label, ms);
		if (zstdio_save(segfd, seg, parts[i].text, parts[i].len) < 0)
			return -1;
		if (fstatat(segfd, seg, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -1;
		*out += (uint64_t)st.st_size;
	}
	return 0;
}

/* Compress host's closed file name (metric, ms) of tier tr, lying in
 * closedfd, into segment folder segroot/<metric>/, then remove it. 0, or
 * -1 (logged, counted; the closed file stays for the next sweep). */
static int hk_compress(struct housekeep *hk, const char *host, const struct tier *tr, int closedfd,
                       int segroot, const char *name, const char *metric, uint64_t ms)
{
	char path[128];
	snprintf(path, sizeof path, "%s%s%s", tr->closed_dir ? tr->closed_dir : "",
	         tr->closed_dir ? "/" : "", name);
	char *buf = NULL;
	size_t len = 0, nparts = 0, untimed = 0;
	struct housekeep_part *parts = NULL;
	uint64_t out = 0;
	int segfd = -1, rc = -1;
	if (hk_read_file(closedfd, name, &buf, &len) < 0) {
		hk_fail(hk, host, "cannot read", path, errno);
		return -1;
	}
	if (housekeep_split(buf, len, tr->monthly, ms, &parts, &nparts, &untimed) < 0) {
		hk_fail(hk, host, "out of memory splitting", path, ENOMEM);
		goto out;
	}
	segfd = safefs_dir_open(segroot, metric, 1);
	if (segfd < 0) {
		hk_fail(hk, host, "cannot open the segment folder of", path, errno);
		goto out;
	}
	if (hk_clear_leftovers(segfd, ms) < 0) {
		hk_fail(hk, host, "cannot clear an earlier attempt at", path, errno);
		goto out;
	}
	if (hk_write_parts(segfd, parts, nparts, ms, &out) < 0) {
		hk_fail(hk, host, "cannot write the segments of", path, errno);
		goto out;
	}
	if (unlinkat(closedfd, name, 0) < 0 || fsync(closedfd) < 0) {
		hk_fail(hk, host, "cannot remove, once compressed,", path, errno);
		goto out;
	}
	if (untimed)
		log_warn("housekeep",
		         "host %s: %s: %zu rows whose time does not parse, kept after the row "
		         "before each",
		         host, path, untimed);
	log_info("housekeep",
	         "host %s: %s compressed into %zu %s segments, %zu -> %" PRIu64 " bytes", host,
	         path, nparts, tr->name, len, out);
	hk_count(hk, HKC_files_compressed, 1);
	hk_count(hk, HKC_bytes_compressed_in, len);
	hk_count(hk, HKC_bytes_compressed_out, out);
	hk_count(hk, HKC_rows_untimed, untimed);
	rc = 0;
out:
	if (segfd >= 0)
		close(segfd);
	housekeep_parts_free(parts, nparts);
	free(buf);
	return rc;
}

/* A closed file due for compression. */
struct due {
	char name[64];
	char metric[33];
	uint64_t ms;
};

/* Compress every closed file of tier tr in closedfd that is due at now. */
static void hk_compress_tier(struct housekeep *hk, const char *host, int hostfd,
                             const struct tier *tr, int closedfd, uint64_t now)
{
	DIR *d = hk_opendir(closedfd);
	if (!d) {
		hk_fail(hk, host, "cannot list", tr->closed_dir ? tr->closed_dir : ".", errno);
		return;
	}
	uint64_t stagger = housekeep_stagger(host, hk->cfg.close_delay_ms);
	struct due *due = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct due one;
		if (strlen(de->d_name) >= sizeof one.name ||
		    closed_name(de->d_name, one.metric, &one.ms) < 0 || now < one.ms + stagger)
			continue;
		if (n == cap) {
			struct due *grown = realloc(due, (cap = cap ? cap * 2 : 16) * sizeof *due);
			if (!grown)
				break;
			due = grown;
		}
		snprintf(one.name, sizeof one.name, "%s", de->d_name);
		due[n++] = one;
	}
	closedir(d);
	int segroot =
	    n ? (tr->closed_dir ? dup(closedfd) : safefs_dir_open(hostfd, tr->seg_dir, 1)) : -1;
	if (n && segroot < 0)
		hk_fail(hk, host, "cannot open segment folder", tr->seg_dir, errno);
	uint64_t limit = housekeep_cap(hk);
	int over = limit && housekeep_bytes(hk) > limit;
	for (size_t i = 0; segroot >= 0 && i < n && !atomic_load(&hk->stopping); i++) {
		if (tr == &tiers[TIER_RAW] && hk->hooks.hold &&
		    hk->hooks.hold(hk->hooks.hold_arg, host, due[i].metric, due[i].ms)) {
			if (!over) {
				hk_count(hk, HKC_files_held, 1);
				continue;
			}
			log_warn("housekeep",
			         "host %s: compressing %s though a remote_write receiver has not "
			         "sent all of it: hosts/ is over the cap",
			         host, due[i].name);
			hk_count(hk, HKC_files_forced, 1);
		}
		hk_compress(hk, host, tr, closedfd, segroot, due[i].name, due[i].metric, due[i].ms);
	}
	if (segroot >= 0)
		close(segroot);
	free(due);
}

/* Where a walk over one tier's segments of one host is. */
struct seg_walk {
	struct housekeep *hk;
	const char *host;
	const struct tier *tr;
	int closedfd; /* the tier's closed files */
	int segfd;    /* the metric's segment folder */
	const char *metric;
	int deleted; /* something in segfd was deleted */
	void *ctx;
};

/* Called for each segment (day: its day, or a month's last day). */
typedef void (*seg_fn)(struct seg_walk *w, const char *name, int64_t day, uint64_t ms);

/* Open tier tr's folder of closed files in hostfd (the host folder itself
 * for raw); -1 with errno ENOENT when the tier has none. */
static int tier_closed_open(int hostfd, const struct tier *tr)
{
	return tr->closed_dir ? safefs_dir_open(hostfd, tr->closed_dir, 0)
	                      : openat(hostfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Call fn for every segment of tier tr of the host. */
static void hk_walk_tier(struct seg_walk *w, int hostfd, seg_fn fn)
{
	w->closedfd = tier_closed_open(hostfd, w->tr);
	int segroot = w->closedfd < 0 ? -1
	              : w->tr->closed_dir
	                  ? openat(w->closedfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
	                  : safefs_dir_open(hostfd, w->tr->seg_dir, 0);
	DIR *d = segroot >= 0 ? hk_opendir(segroot) : NULL;
	if (!d && errno != ENOENT)
		hk_fail(w->hk, w->host, "cannot list", w->tr->seg_dir, errno);
	struct dirent *de;
	while (d && (de = readdir(d)) && !atomic_load(&w->hk->stopping)) {
		if (!util_valid_key(de->d_name))
			continue;
		w->segfd = safefs_dir_open(segroot, de->d_name, 0);
		if (w->segfd < 0) {
			if (errno != ENOTDIR)
				hk_fail(w->hk, w->host, "cannot open", de->d_name, errno);
			continue;
		}
		w->metric = de->d_name;
		w->deleted = 0;
		DIR *s = hk_opendir(w->segfd);
		struct dirent *se;
		int64_t day;
		uint64_t ms;
		while (s && (se = readdir(s)))
			if (segment_name(se->d_name, w->tr->monthly, &day, &ms) == 0)
				fn(w, se->d_name, day, ms);
		if (s)
			closedir(s);
		if (w->deleted && fsync(w->segfd) < 0)
			hk_fail(w->hk, w->host, "cannot sync", de->d_name, errno);
		close(w->segfd);
	}
	if (d)
		closedir(d);
	if (segroot >= 0)
		close(segroot);
	if (w->closedfd >= 0)
		close(w->closedfd);
}

/* Delete segment name (of closed file ms) of the walk's metric unless its
 * closed file is still there (it is incomplete: the next compression
 * redoes it). Its size, or 0 when it was not deleted. */
static uint64_t hk_delete_segment(struct seg_walk *w, const char *name, uint64_t ms)
{
	char closed[64];
	struct stat st;
	snprintf(closed, sizeof closed, "%s.%" PRIu64 ".csv", w->metric, ms);
	if (w->closedfd >= 0 && fstatat(w->closedfd, closed, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (fstatat(w->segfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (unlinkat(w->segfd, name, 0) < 0) {
		hk_fail(w->hk, w->host, "cannot delete segment", name, errno);
		return 0;
	}
	w->deleted = 1;
	hk_count(w->hk, HKC_bytes_deleted, (uint64_t)st.st_size);
	return st.st_size > 0 ? (uint64_t)st.st_size : 1;
}

/* What age retention deleted of one host. */
struct aged {
	int64_t keep_from; /* first day kept, of the tier walked */
	unsigned count[NTIERS];
	uint64_t bytes;
};

/* Delete a segment older than its tier keeps. */
static void hk_age_one(struct seg_walk *w, const char *name, int64_t day, uint64_t ms)
{
	struct aged *a = w->ctx;
	if (day >= a->keep_from)
		return;
	uint64_t size = hk_delete_segment(w, name, ms);
	if (!size)
		return;
	a->count[w->tr - tiers]++;
	a->bytes += size;
	hk_count(w->hk, HKC_segments_aged, 1);
}

/* The days tier t keeps. */
static int tier_days(const struct housekeep *hk, int t)
{
	return t == TIER_RAW      ? hk->cfg.raw_days
	       : t == TIER_MINUTE ? hk->cfg.minute_days
	                          : hk->cfg.hour_days;
}

/* Compress what is due and delete what is too old, of one host. */
static void hk_host(struct housekeep *hk, const char *host, int hostfd, uint64_t now)
{
	struct aged a = {0};
	for (int t = 0; t < NTIERS && !atomic_load(&hk->stopping); t++) {
		const struct tier *tr = &tiers[t];
		int closedfd = tier_closed_open(hostfd, tr);
		if (closedfd < 0) {
			if (errno != ENOENT)
				hk_fail(hk, host, "cannot open", tr->closed_dir, errno);
		} else {
			hk_compress_tier(hk, host, hostfd, tr, closedfd, now);
			close(closedfd);
		}
		a.keep_from = (int64_t)(now / DAY_MS) - tier_days(hk, t);
		struct seg_walk w = {.hk = hk, .host = host, .tr = tr, .ctx = &a};
		hk_walk_tier(&w, hostfd, hk_age_one);
	}
	if (a.count[0] + a.count[1] + a.count[2])
		log_notice(
		    "housekeep",
		    "host %s: past retention, deleted %u raw, %u 1m and %u 1h segments, %" PRIu64
		    " bytes",
		    host, a.count[0], a.count[1], a.count[2], a.bytes);
}

/* Call fn(hk, host, its folder fd, ctx) for every host folder. */
static void hk_walk_hosts(struct housekeep *hk,
                          void (*fn)(struct housekeep *, const char *, int, void *), void *ctx)
{
	DIR *d = hk_opendir(hk->hosts_fd);
	if (!d) {
		hk_fail(hk, "*", "cannot list", "hosts", errno);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) && !atomic_load(&hk->stopping)) {
		if (!util_valid_name(de->d_name))
			continue;
		int fd = safefs_dir_open(hk->hosts_fd, de->d_name, 0);
		if (fd < 0) {
			if (errno != ENOTDIR && errno != ENOENT)
				hk_fail(hk, de->d_name, "cannot open", "its folder", errno);
			continue;
		}
		fn(hk, de->d_name, fd, ctx);
		close(fd);
	}
	closedir(d);
}

/* Bytes of the regular files below dirfd, depth folders deep at most. */
static uint64_t hk_du(int dirfd, int depth)
{
	DIR *d = hk_opendir(dirfd);
	uint64_t sum = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			sum += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth > 0) {
			int sub = safefs_dir_open(dirfd, de->d_name, 0);
			if (sub >= 0) {
				sum += hk_du(sub, depth - 1);
				close(sub);
			}
		}
	}
	if (d)
		closedir(d);
	return sum;
}

/* The per-host step of a sweep. */
static void hk_host_step(struct housekeep *hk, const char *host, int hostfd, void *ctx)
{
	uint64_t *now = ctx;
	hk_host(hk, host, hostfd, *now);
}

/* Bytes a tier's segments hold, by day. */
struct day_bytes {
	int64_t day;
	uint64_t bytes;
};

/* The cap's plan and progress over one tier. */
struct cap_plan {
	struct day_bytes *days;
	size_t ndays, cap;
	int failed;
	int64_t cut_day;     /* segments before this day all go */
	uint64_t cut_need;   /* and of cut_day, this many bytes */
	uint64_t cut_done;   /* of cut_day, deleted so far */
	uint64_t total;      /* bytes under hosts/, kept current */
	unsigned host_count; /* of the host being walked */
	uint64_t host_bytes;
	int64_t host_oldest;
	uint64_t now;
	uint64_t limit;
};

/* Add a segment's bytes to its day. */
static void hk_cap_tally(struct seg_walk *w, const char *name, int64_t day, uint64_t ms)
{
	struct cap_plan *p = w->ctx;
	struct stat st;
	(void)ms;
	if (fstatat(w->segfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	size_t i = 0;
	while (i < p->ndays && p->days[i].day != day)
		i++;
	if (i == p->ndays) {
		if (p->ndays == p->cap) {
			size_t ncap = p->cap ? p->cap * 2 : 64;
			struct day_bytes *grown = realloc(p->days, ncap * sizeof *grown);
			if (!grown) {
				p->failed = 1;
				return;
			}
			p->days = grown;
			p->cap = ncap;
		}
		p->days[p->ndays++] = (struct day_bytes){day, 0};
	}
	p->days[i].bytes += (uint64_t)st.st_size;
}

/* Delete a segment the plan says goes. */
static void hk_cap_one(struct seg_walk *w, const char *name, int64_t day, uint64_t ms)
{
	struct cap_plan *p = w->ctx;
	if (day > p->cut_day || (day == p->cut_day && p->cut_done >= p->cut_need))
		return;
	uint64_t size = hk_delete_segment(w, name, ms);
	if (!size)
		return;
	if (day == p->cut_day)
		p->cut_done += size;
	p->total = p->total > size ? p->total - size : 0;
	p->host_count++;
	p->host_bytes += size;
	if (p->host_count == 1 || day < p->host_oldest)
		p->host_oldest = day;
	hk_count(w->hk, HKC_segments_capped, 1);
}

/* By day. */
static int day_cmp(const void *a, const void *b)
{
	const struct day_bytes *x = a, *y = b;
	return x->day < y->day ? -1 : x->day > y->day;
}

/* The tier being capped. */
struct cap_walk {
	struct cap_plan *plan;
	const struct tier *tr;
	seg_fn fn;
};

/* Walk one host's segments of the tier being capped; after a deleting
 * pass, log and raise the alarm for a host that lost some. */
static void hk_cap_host(struct housekeep *hk, const char *host, int hostfd, void *ctx)
{
	struct cap_walk *cw = ctx;
	struct cap_plan *p = cw->plan;
	p->host_count = 0;
	p->host_bytes = 0;
	struct seg_walk w = {.hk = hk, .host = host, .tr = cw->tr, .ctx = p};
	hk_walk_tier(&w, hostfd, cw->fn);
	if (!p->host_count)
		return;
	char oldest[16], msg[256];
	housekeep_label((uint64_t)p->host_oldest * DAY_MS, cw->tr->monthly, oldest);
	snprintf(msg, sizeof msg,
	         "storage cap of %" PRIu64 " bytes reached: %u %s segments (%" PRIu64
	         " bytes) deleted, from %s",
	         p->limit, p->host_count, cw->tr->name, p->host_bytes, oldest);
	log_warn("housekeep", "host %s: %s", host, msg);
	if (hk->hooks.cut)
		hk->hooks.cut(hk->hooks.arg, host, p->now, msg);
}

/* Delete whole segments of tier tr, oldest day first across all hosts,
 * until p->total is at most p->limit. */
static void hk_cap_tier(struct housekeep *hk, const struct tier *tr, struct cap_plan *p)
{
	p->ndays = 0;
	p->failed = 0;
	struct cap_walk cw = {p, tr, hk_cap_tally};
	hk_walk_hosts(hk, hk_cap_host, &cw);
	if (p->failed || p->ndays == 0) {
		if (p->failed)
			log_err("housekeep", "out of memory planning the storage cap");
		return;
	}
	qsort(p->days, p->ndays, sizeof *p->days, day_cmp);
	uint64_t excess = p->total - p->limit, planned = 0;
	size_t i = 0;
	while (i < p->ndays && planned + p->days[i].bytes <= excess)
		planned += p->days[i++].bytes;
	if (i == p->ndays) {
		p->cut_day = p->days[i - 1].day;
		p->cut_need = UINT64_MAX;
	} else {
		p->cut_day = p->days[i].day;
		p->cut_need = excess - planned; /* 0: the days before go, no more */
	}
	p->cut_done = 0;
	cw.fn = hk_cap_one;
	hk_walk_hosts(hk, hk_cap_host, &cw);
}

/* The cap in force: max_bytes, or a share of the data folder's file
 * system (0 when it cannot be known: no cap, logged). */
static uint64_t hk_limit(struct housekeep *hk)
{
	if (hk->cfg.max_bytes)
		return hk->cfg.max_bytes;
	struct statvfs sv;
	if (fstatvfs(hk->data_fd, &sv) < 0) {
		hk_fail(hk, "*", "cannot measure the file system of", "the data folder", errno);
		return 0;
	}
	return (uint64_t)sv.f_blocks * (uint64_t)sv.f_frsize / 100 * HOUSEKEEP_FS_SHARE;
}

/* One whole sweep. */
void housekeep_sweep(struct housekeep *hk, uint64_t now_ms)
{
	hk_walk_hosts(hk, hk_host_step, &now_ms);
	struct cap_plan p = {.now = now_ms, .limit = hk_limit(hk)};
	p.total = hk_du(hk->hosts_fd, 4);
	if (p.limit && p.total > p.limit) {
		log_notice("housekeep",
		           "hosts/ holds %" PRIu64 " bytes, over the cap of %" PRIu64
		           ": deleting the oldest segments",
		           p.total, p.limit);
		for (int t = 0; t < NTIERS && p.total > p.limit && !atomic_load(&hk->stopping); t++)
			hk_cap_tier(hk, &tiers[t], &p);
		if (p.total > p.limit)
			log_warn("housekeep",
			         "hosts/ still holds %" PRIu64 " bytes, over the cap of %" PRIu64
			         ": the rest is open or not yet compressed",
			         p.total, p.limit);
	}
	free(p.days);
	atomic_store_explicit(&hk->bytes, p.total, memory_order_relaxed);
	atomic_store_explicit(&hk->cap, p.limit, memory_order_relaxed);
	if (hk->hooks.settle)
		hk->hooks.settle(hk->hooks.arg, now_ms);
}

/* A housekeeper, not yet running. */
struct housekeep *housekeep_create(int data_fd, int hosts_fd, const struct housekeep_config *cfg,
                                   const struct housekeep_hooks *hooks)
{
	struct housekeep *hk = calloc(1, sizeof *hk);
	if (!hk) {
		log_err("housekeep", "out of memory");
		return NULL;
	}
	hk->data_fd = data_fd;
	hk->hosts_fd = hosts_fd;
	hk->cfg = *cfg;
	if (hooks)
		hk->hooks = *hooks;
	for (int c = 0; c < HKC_COUNT; c++)
		atomic_init(&hk->counters[c], 0);
	atomic_init(&hk->bytes, 0);
	atomic_init(&hk->cap, 0);
	atomic_init(&hk->stopping, 0);
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&hk->wake, &ca) != 0) {
		log_err("housekeep", "cannot make the sweep timer's condition");
		free(hk);
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&hk->lock, NULL);
	return hk;
}

/* Free a housekeeper that is not running. */
void housekeep_destroy(struct housekeep *hk)
{
	if (!hk)
		return;
	pthread_cond_destroy(&hk->wake);
	pthread_mutex_destroy(&hk->lock);
	free(hk);
}

/* The thread: a sweep, then sleep sweep_ms or until told to stop. */
static void *hk_main(void *arg)
{
	struct housekeep *hk = arg;
	pthread_mutex_lock(&hk->lock);
	while (!atomic_load(&hk->stopping)) {
		pthread_mutex_unlock(&hk->lock);
		housekeep_sweep(hk, util_now_ms());
		pthread_mutex_lock(&hk->lock);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)(hk->cfg.sweep_ms / 1000);
		until.tv_nsec += (long)(hk->cfg.sweep_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!atomic_load(&hk->stopping) &&
		       pthread_cond_timedwait(&hk->wake, &hk->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&hk->lock);
	return NULL;
}

/* Start the sweeping thread with every signal blocked. */
int housekeep_start(struct housekeep *hk)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&hk->thread, NULL, hk_main, hk);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_err("housekeep", "cannot start the housekeeping thread: %s", strerror(rc));
		return -1;
	}
	hk->started = 1;
	log_info("housekeep",
	         "sweeping every %" PRIu64 " s; keeping %d raw, %d minute and %d hour days",
	         hk->cfg.sweep_ms / 1000, hk->cfg.raw_days, hk->cfg.minute_days, hk->cfg.hour_days);
	return 0;
}

/* Tell the thread to stop and join it. */
void housekeep_stop(struct housekeep *hk)
{
	if (!hk || !hk->started)
		return;
	pthread_mutex_lock(&hk->lock);
	atomic_store(&hk->stopping, 1);
	pthread_cond_signal(&hk->wake);
	pthread_mutex_unlock(&hk->lock);
	pthread_join(hk->thread, NULL);
	hk->started = 0;
}
