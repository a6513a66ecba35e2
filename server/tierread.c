/* Listing a tier's files of a metric over a range, then opening them one
 * at a time: plain files through csvread, segments through zstdio_load
 * and a reader over the decompressed bytes. */
#include "tierread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "safefs.h"
#include "series.h"
#include "util.h"
#include "zstdio.h"

#define TIERREAD_DAY_MS (86400ull * 1000)

/* What a listed file is, in the order they are read. */
enum tierread_kind { TIERREAD_SEGMENT, TIERREAD_CLOSED, TIERREAD_OPEN };

struct tierread_file {
	enum tierread_kind kind;
	uint64_t start; /* segments: the first ms of their day or month */
	uint64_t ms;    /* segments and closed files: when closed */
	int fd;         /* open and closed files: opened when listed; -1 */
	char name[NAME_MAX + 1];
};

struct tierread {
	enum tier tier;
	char metric[PROTO_KEY_MAX + 1];
	uint64_t from, to;
	int tierfd; /* the folder of the open and closed files; -1: none */
	int segfd;  /* the folder of the segments; -1: none */
	struct tierread_file *files;
	int n, cap, next;
	struct csvread *cur;
	char *mem; /* the current segment's bytes */
	char curname[PROTO_KEY_MAX + NAME_MAX + 8];
};

/* Bucket widths, by tier. */
uint64_t tier_width(enum tier t)
{
	return t == TIER_1H ? 3600000 : t == TIER_1M ? 60000 : 0;
}

/* Tier names, as folders and in replies. */
const char *tier_name(enum tier t)
{
	return t == TIER_1H ? "1h" : t == TIER_1M ? "1m" : "raw";
}

/* Days in month m of year y. */
static unsigned tierread_month_days(int64_t y, unsigned m)
{
	static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at s into *v; -1 when they are not all digits. */
static int tierread_digits(const char *s, int n, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return 0;
}

/* Digits up to end into *v (1..19 of them); -1 otherwise. */
static int tierread_ms(const char *s, const char *end, uint64_t *v)
{
	if (s >= end || end - s > 19)
		return -1;
	*v = 0;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(*s - '0');
	}
	return 0;
}

/* Parse a segment's name, "<YYYY-MM-DD>.<ms>.csv.zst" (monthly:
 * "<YYYY-MM>.<ms>.csv.zst"): the span of its day or month in ms and its
 * ms. 0, or -1 when it is not a segment's name. */
static int tierread_segment(const char *name, int monthly, uint64_t *start, uint64_t *end,
                            uint64_t *ms)
{
	size_t len = strlen(name), dl = monthly ? 7 : 10;
	const char *suffix = ".csv.zst";
	unsigned y, m, d = 1;
	if (len < dl + 2 + strlen(suffix) || strcmp(name + len - strlen(suffix), suffix) != 0 ||
	    name[4] != '-' || name[dl] != '.' || tierread_digits(name, 4, &y) < 0 ||
	    tierread_digits(name + 5, 2, &m) < 0 || m < 1 || m > 12 || y < 1970)
		return -1;
	if (!monthly && (name[7] != '-' || tierread_digits(name + 8, 2, &d) < 0 || d < 1 ||
	                 d > tierread_month_days(y, m)))
		return -1;
	if (tierread_ms(name + dl + 1, name + len - strlen(suffix), ms) < 0)
		return -1;
	int64_t first = util_days_from_civil(y, m, d), last;
	if (monthly)
		last =
		    m == 12 ? util_days_from_civil(y + 1, 1, 1) : util_days_from_civil(y, m + 1, 1);
	else
		last = first + 1;
	*start = (uint64_t)first * TIERREAD_DAY_MS;
	*end = (uint64_t)last * TIERREAD_DAY_MS - 1;
	return 0;
}

/* Add a file to the list: 0, or -1 when out of memory. */
static int tierread_add(struct tierread *tr, enum tierread_kind kind, uint64_t start, uint64_t ms,
                        const char *name)
{
	if (tr->n == tr->cap) {
		int cap = tr->cap ? tr->cap * 2 : 16;
		struct tierread_file *nf = realloc(tr->files, (size_t)cap * sizeof *nf);
		if (!nf)
			return -1;
		tr->files = nf;
		tr->cap = cap;
	}
	struct tierread_file *f = &tr->files[tr->n++];
	f->kind = kind;
	f->start = start;
	f->ms = ms;
	f->fd = -1;
	snprintf(f->name, sizeof f->name, "%s", name);
	return 0;
}

/* Add an open or closed file, opened now: a day close may rename the open
 * file and the housekeeper may compress and unlink a closed one while the
 * list is read, and a descriptor keeps the rows it had. A file gone
 * already is not listed; one that cannot be opened is opened again when
 * read, to report why. */
static int tierread_add_plain(struct tierread *tr, enum tierread_kind kind, uint64_t ms,
                              const char *name)
{
	int fd = safefs_file_open(tr->tierfd, name, O_RDONLY);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (tierread_add(tr, kind, 0, ms, name) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	tr->files[tr->n - 1].fd = fd;
	return 0;
}

/* The folder dfd's entries, each passed to fn until it fails: 0, or -1
 * (errno set). Listed through a descriptor of its own: reading moves its
 * offset. */
static int tierread_list(struct tierread *tr, int dfd,
                         int (*fn)(struct tierread *tr, const char *name))
{
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	if (!d) {
		int saved = errno;
		if (lfd >= 0)
			close(lfd);
		errno = saved;
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	errno = 0;
	while (rc == 0 && (de = readdir(d)))
		rc = fn(tr, de->d_name);
	int saved = errno;
	closedir(d);
	errno = saved;
	return rc;
}

/* An entry of the tier's folder: "<metric>.csv" or "<metric>.<ms>.csv". */
static int tierread_plain(struct tierread *tr, const char *name)
{
	size_t ml = strlen(tr->metric), len = strlen(name);
	uint64_t ms;
	if (len < ml + 4 || strncmp(name, tr->metric, ml) != 0 || name[ml] != '.' ||
	    strcmp(name + len - 4, ".csv") != 0)
		return 0;
	if (len == ml + 4)
		return tierread_add_plain(tr, TIERREAD_OPEN, 0, name);
	if (tierread_ms(name + ml + 1, name + len - 4, &ms) < 0)
		return 0;
	return tierread_add_plain(tr, TIERREAD_CLOSED, ms, name);
}

/* Whether a closed file of time ms is listed. */
static int tierread_closed(const struct tierread *tr, uint64_t ms)
{
	for (int i = 0; i < tr->n; i++)
		if (tr->files[i].kind == TIERREAD_CLOSED && tr->files[i].ms == ms)
			return 1;
	return 0;
}

/* An entry of the segments' folder: a complete segment of a day or month
 * that overlaps the range. */
static int tierread_compressed(struct tierread *tr, const char *name)
{
	uint64_t start, end, ms;
	if (tierread_segment(name, tr->tier == TIER_1H, &start, &end, &ms) < 0 || end < tr->from ||
	    start > tr->to || tierread_closed(tr, ms))
		return 0;
	return tierread_add(tr, TIERREAD_SEGMENT, start, ms, name);
}

/* Segments by day and time of closing, then closed files by time, then
 * the open file. */
static int tierread_cmp(const void *a, const void *b)
{
	const struct tierread_file *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->ms < y->ms ? -1 : x->ms > y->ms;
}

/* Open folder name of dfd (-1: none) into *out, -1 when it does not
 * exist. 0, or -1 when it cannot be opened for another reason. */
static int tierread_dir(int dfd, const char *name, int *out)
{
	*out = dfd < 0 ? -1 : safefs_dir_open(dfd, name, 0);
	return *out >= 0 || dfd < 0 || errno == ENOENT ? 0 : -1;
}

/* Open the tier's folders: the open and closed files are in the host's
 * folder (raw) or in 1m/ or 1h/; the segments in raw/<metric>/,
 * 1m/<metric>/ or 1h/<metric>/. */
static int tierread_folders(struct tierread *tr, int hostfd)
{
	if (tr->tier == TIER_RAW) {
		int rawfd;
		tr->tierfd = openat(hostfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tr->tierfd < 0 || tierread_dir(hostfd, "raw", &rawfd) < 0)
			return -1;
		int rc = tierread_dir(rawfd, tr->metric, &tr->segfd);
		if (rawfd >= 0)
			close(rawfd);
		return rc;
	}
	if (tierread_dir(hostfd, tier_name(tr->tier), &tr->tierfd) < 0)
		return -1;
	return tierread_dir(tr->tierfd, tr->metric, &tr->segfd);
}

/* Open the folders, list the plain files first (segments beside a closed
 * file are skipped), then the segments, and sort. */
struct tierread *tierread_open(int hostfd, enum tier t, const char *metric, uint64_t from,
                               uint64_t to)
{
	struct tierread *tr = calloc(1, sizeof *tr);
	if (!tr)
		return NULL;
	tr->tier = t;
	snprintf(tr->metric, sizeof tr->metric, "%s", metric);
	tr->from = from;
	tr->to = to;
	tr->tierfd = tr->segfd = -1;
	if (tierread_folders(tr, hostfd) < 0 ||
	    (tr->tierfd >= 0 && tierread_list(tr, tr->tierfd, tierread_plain) < 0) ||
	    (tr->segfd >= 0 && tierread_list(tr, tr->segfd, tierread_compressed) < 0)) {
		int saved = errno;
		tierread_close(tr);
		errno = saved;
		return NULL;
	}
	if (tr->n > 1)
		qsort(tr->files, (size_t)tr->n, sizeof *tr->files, tierread_cmp);
	return tr;
}

/* Files listed. */
int tierread_count(const struct tierread *tr)
{
	return tr->n;
}

/* Drop the current file. */
static void tierread_release(struct tierread *tr)
{
	csvread_close(tr->cur);
	tr->cur = NULL;
	free(tr->mem);
	tr->mem = NULL;
}

/* The next listed file, opened or decompressed. */
int tierread_next(struct tierread *tr, struct csvread **r, int *sorted)
{
	tierread_release(tr);
	if (tr->next == tr->n)
		return 0;
	const struct tierread_file *f = &tr->files[tr->next++];
	const char *folder = tr->tier == TIER_RAW ? "" : tier_name(tr->tier);
	*sorted = f->kind == TIERREAD_SEGMENT;
	if (*sorted) {
		size_t len;
		snprintf(tr->curname, sizeof tr->curname, "%s/%s/%s",
		         tr->tier == TIER_RAW ? "raw" : folder, tr->metric, f->name);
		if (zstdio_load(tr->segfd, f->name, &tr->mem, &len) < 0)
			return -1;
		tr->cur = csvread_mem(tr->mem, len);
	} else {
		snprintf(tr->curname, sizeof tr->curname, "%s%s%s", folder, *folder ? "/" : "",
		         f->name);
		struct stat sb;
		if (f->fd < 0)
			tr->cur = csvread_open(tr->tierfd, f->name);
		else if (fstat(f->fd, &sb) < 0)
			tr->cur = NULL;
		else
			tr->cur = csvread_fd(f->fd, sb.st_size);
	}
	if (!tr->cur) {
		int saved = errno;
		tierread_release(tr);
		errno = saved;
		return -1;
	}
	*r = tr->cur;
	return 1;
}

/* The current file's path. */
const char *tierread_name(const struct tierread *tr)
{
	return tr->curname;
}

/* Close everything. */
void tierread_close(struct tierread *tr)
{
	if (!tr)
		return;
	tierread_release(tr);
	if (tr->tierfd >= 0)
		close(tr->tierfd);
	if (tr->segfd >= 0)
		close(tr->segfd);
	for (int i = 0; i < tr->n; i++)
		if (tr->files[i].fd >= 0)
			close(tr->files[i].fd);
	free(tr->files);
	free(tr);
}

/* A listing over all time. */
int tierread_any(int hostfd, enum tier t, const char *metric)
{
	struct tierread *tr = tierread_open(hostfd, t, metric, 0, UINT64_MAX);
	if (!tr)
		return -1;
	int any = tr->n > 0;
	tierread_close(tr);
	return any;
}

/* The last file listed, the reader made its own. */
struct csvread *tierread_newest(int hostfd, enum tier t, const char *metric)
{
	struct tierread *tr = tierread_open(hostfd, t, metric, 0, UINT64_MAX);
	if (!tr)
		return NULL;
	struct csvread *r = NULL;
	int sorted, rc = 0;
	errno = ENOENT;
	/* Newest first: an unreadable one gives way to the one before. */
	for (int i = tr->n - 1; i >= 0 && rc <= 0; i--) {
		tr->next = i;
		rc = tierread_next(tr, &r, &sorted);
	}
	if (rc > 0) {
		struct tierread_file *f = &tr->files[tr->next - 1];
		if (tr->mem)
			csvread_own(r, tr->mem);
		if (f->fd >= 0) { /* the reader outlives the list: it takes the file */
			csvread_own_fd(r);
			f->fd = -1;
		}
		tr->mem = NULL;
		tr->cur = NULL;
	} else {
		r = NULL;
	}
	int saved = errno;
	tierread_close(tr);
	errno = rc > 0 ? 0 : saved;
	return r;
}

/* The first row of each tier's oldest readable file. */
uint64_t tierread_oldest(int hostfd, const char *metric)
{
	uint64_t oldest = 0;
	for (int t = 0; t < TIER_COUNT; t++) {
		struct tierread *tr = tierread_open(hostfd, (enum tier)t, metric, 0, UINT64_MAX);
		struct csvread *r;
		int sorted, rc;
		while (tr && (rc = tierread_next(tr, &r, &sorted)) != 0) {
			uint64_t first = rc > 0 ? series_first(r) : 0;
			if (first && (!oldest || first < oldest))
				oldest = first;
			/* A segment is sorted; closed and open files may not be. */
			if (rc > 0 && sorted && first)
				break;
		}
		tierread_close(tr);
	}
	return oldest;
}
