/* The tier reader on a real host folder: which files of a range it lists
 * (open, closed, segments by day or month), the segment beside its closed
 * file left out, links refused, the tier picked by bucket width with its
 * fallback, and a series read across files of mixed order. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "csvread.h"
#include "safefs.h"
#include "tierread.h"
#include "tierseries.h"
#include "zstdio.h"

#define DAY   (86400000ull)
#define JAN01 1704067200000ull /* 2024-01-01T00:00:00Z */

static char top[64];

/* Compress text into name of dfd. */
static void put_zst(int dfd, const char *name, const char *text)
{
	CHECK(zstdio_save(dfd, name, text, strlen(text)) == 0);
}

/* A folder made inside dfd and opened. */
static int sub(int dfd, const char *name)
{
	int fd = safefs_dir_open(dfd, name, 1);
	CHECK(fd >= 0);
	return fd;
}

/* The names a listing opens, "|"-separated, sorted ones marked "*"; and
 * the count of files that failed. */
static int names(int hfd, enum tier t, uint64_t from, uint64_t to, char *out, size_t size)
{
	struct tierread *tr = tierread_open(hfd, t, "load", from, to);
	struct csvread *r;
	int sorted, rc, failed = 0;
	out[0] = '\0';
	CHECK(tr != NULL);
	if (!tr)
		return -1;
	while ((rc = tierread_next(tr, &r, &sorted)) != 0) {
		size_t o = strlen(out);
		if (rc < 0)
			failed++;
		snprintf(out + o, size - o, "%s%s%s|", rc < 0 ? "!" : "", tierread_name(tr),
		         sorted && rc > 0 ? "*" : "");
	}
	tierread_close(tr);
	return failed;
}

/* A raw tier: the open file, two closed ones, segments of three days;
 * one segment still has its closed file, one is outside the range, and
 * names that only look like the metric's are not its files. */
static void test_raw_listing(int hfd)
{
	char got[1024];
	int rawfd = sub(hfd, "raw"), segfd = sub(rawfd, "load");
	check_put(hfd, "load.csv", "time,load1\n");
	check_put(hfd, "load.1704153600500.csv", "time,load1\n");
	check_put(hfd, "load.1704067200900.csv", "time,load1\n");
	check_put(hfd, "load5.csv", "time,x\n");
	check_put(hfd, "load.x.csv", "time,x\n");
	check_put(hfd, "loadcsv", "time,x\n");
	put_zst(segfd, "2024-01-01.1704067300000.csv.zst", "time,load1\n");
	put_zst(segfd, "2024-01-02.1704153600500.csv.zst", "time,load1\n"); /* beside its file */
	put_zst(segfd, "2023-12-31.1704067300000.csv.zst", "time,load1\n");
	put_zst(segfd, "2024-01-05.1704500000000.csv.zst", "time,load1\n");
	check_put(segfd, "2024-01-01.1704067300001.csv.zst.tmp", "partial");
	check_put(segfd, "2024-02-30.1.csv.zst", "not a day");
	check_put(segfd, "2024-01-01.csv.zst", "no ms");
	CHECK(names(hfd, TIER_RAW, JAN01, JAN01 + 3 * DAY - 1, got, sizeof got) == 0);
	CHECK_STR(got, "raw/load/2024-01-01.1704067300000.csv.zst*|load.1704067200900.csv|"
	               "load.1704153600500.csv|load.csv|");
	/* The day before is in from its last millisecond on. */
	CHECK(names(hfd, TIER_RAW, JAN01 - 1, JAN01 - 1, got, sizeof got) == 0);
	CHECK_STR(got, "raw/load/2023-12-31.1704067300000.csv.zst*|load.1704067200900.csv|"
	               "load.1704153600500.csv|load.csv|");
	/* Once its closed file is gone, the segment is complete. */
	CHECK(unlinkat(hfd, "load.1704153600500.csv", 0) == 0);
	CHECK(names(hfd, TIER_RAW, JAN01 + DAY, JAN01 + 10 * DAY, got, sizeof got) == 0);
	CHECK_STR(got, "raw/load/2024-01-02.1704153600500.csv.zst*|"
	               "raw/load/2024-01-05.1704500000000.csv.zst*|load.1704067200900.csv|"
	               "load.csv|");
	/* A damaged segment fails alone; the rest is read. */
	check_put(segfd, "2024-01-03.1704240000000.csv.zst", "not zstd");
	CHECK(names(hfd, TIER_RAW, JAN01 + 2 * DAY, JAN01 + 2 * DAY, got, sizeof got) == 1);
	CHECK_STR(got, "!raw/load/2024-01-03.1704240000000.csv.zst|load.1704067200900.csv|"
	               "load.csv|");
	CHECK(unlinkat(segfd, "2024-01-03.1704240000000.csv.zst", 0) == 0);
	close(segfd);
	close(rawfd);
}

/* Rollup tiers: files in 1m/ and 1h/, 1h segments by month. */
static void test_rollup_listing(int hfd)
{
	char got[1024];
	CHECK(tierread_any(hfd, TIER_1M, "load") == 0);
	CHECK(names(hfd, TIER_1H, 0, UINT64_MAX, got, sizeof got) == 0 && got[0] == '\0');
	int mfd = sub(hfd, "1m"), hhfd = sub(hfd, "1h"), hsegfd = sub(hhfd, "load");
	CHECK(tierread_any(hfd, TIER_1M, "load") == 0);
	check_put(mfd, "load.csv", "time,count,load1.min,load1.avg,load1.max\n");
	CHECK(tierread_any(hfd, TIER_1M, "load") == 1);
	CHECK(tierread_any(hfd, TIER_1M, "mem") == 0);
	put_zst(hsegfd, "2023-12.1704067300000.csv.zst", "time\n");
	put_zst(hsegfd, "2024-01.1706745600000.csv.zst", "time\n");
	put_zst(hsegfd, "2024-01-01.1706745600000.csv.zst", "a day is not a month\n");
	CHECK(tierread_any(hfd, TIER_1H, "load") == 1);
	CHECK(names(hfd, TIER_1H, JAN01 + 31 * DAY - 1, JAN01 + 40 * DAY, got, sizeof got) == 0);
	CHECK_STR(got, "1h/load/2024-01.1706745600000.csv.zst*|");
	CHECK(names(hfd, TIER_1H, JAN01 - 1, JAN01, got, sizeof got) == 0);
	CHECK_STR(got, "1h/load/2023-12.1704067300000.csv.zst*|"
	               "1h/load/2024-01.1706745600000.csv.zst*|");
	CHECK(names(hfd, TIER_1M, 0, UINT64_MAX, got, sizeof got) == 0);
	CHECK_STR(got, "1m/load.csv|");
	/* Buckets of a minute or more read 1m; of an hour or more 1h. */
	CHECK(tierseries_pick(hfd, "load", 59999) == TIER_RAW);
	CHECK(tierseries_pick(hfd, "load", 60000) == TIER_1M);
	CHECK(tierseries_pick(hfd, "load", 3600000) == TIER_1H);
	/* A metric without rollups reads raw rows, whatever the width. */
	CHECK(tierseries_pick(hfd, "mem", 86400000) == TIER_RAW);
	CHECK(unlinkat(hsegfd, "2023-12.1704067300000.csv.zst", 0) == 0);
	CHECK(unlinkat(hsegfd, "2024-01.1706745600000.csv.zst", 0) == 0);
	CHECK(unlinkat(hsegfd, "2024-01-01.1706745600000.csv.zst", 0) == 0);
	CHECK(tierseries_pick(hfd, "load", 3600000) == TIER_1M);
	close(hsegfd);
	CHECK(unlinkat(hhfd, "load", AT_REMOVEDIR) == 0);
	close(hhfd);
	CHECK(unlinkat(hfd, "1h", AT_REMOVEDIR) == 0);
	close(mfd);
}

/* Links are never followed: a linked file fails alone, a linked tier
 * folder fails the listing. */
static void test_links(int hfd)
{
	char target[128];
	snprintf(target, sizeof target, "%s/elsewhere.csv", top);
	check_put(AT_FDCWD, target, "time,load1\n1,1\n");
	CHECK(symlinkat(target, hfd, "cpu.csv") == 0);
	struct tierread *tr = tierread_open(hfd, TIER_RAW, "cpu", 0, UINT64_MAX);
	struct csvread *r;
	int sorted;
	CHECK(tr && tierread_next(tr, &r, &sorted) == -1 && errno == ELOOP);
	CHECK(tr && tierread_next(tr, &r, &sorted) == 0);
	tierread_close(tr);
	int other = sub(AT_FDCWD, top);
	CHECK(mkdirat(other, "away", 0755) == 0);
	snprintf(target, sizeof target, "%s/away", top);
	CHECK(symlinkat(target, hfd, "1h") == 0);
	CHECK(tierread_open(hfd, TIER_1H, "load", 0, UINT64_MAX) == NULL && errno == ELOOP);
	CHECK(tierread_any(hfd, TIER_1H, "load") == -1);
	CHECK(unlinkat(hfd, "1h", 0) == 0);
	close(other);
}

/* A series over a segment, a closed file holding rows out of order and
 * the open file; the segment beside its closed file is not read, and a
 * file of the other kind of instances is left out. */
static void test_series_across_files(int hfd)
{
	int hf = sub(AT_FDCWD, top);
	int h = sub(hf, "series-host"), rawfd = sub(h, "raw"), segfd = sub(rawfd, "temp");
	char seg[256];
	snprintf(seg, sizeof seg, "time,zone,c\n%llu,cpu,10\n%llu,cpu,20\n%llu,gpu,99\n",
	         JAN01 + 1000, JAN01 + 2000, JAN01 + 2000);
	put_zst(segfd, "2024-01-01.1704153600000.csv.zst", seg);
	put_zst(segfd, "2024-01-02.1704240000000.csv.zst", "time,zone,c\n1704153601000,cpu,1000\n");
	check_put(h, "temp.1704240000000.csv",
	          "time,zone,c\n1704153601000,cpu,30\n1704067205000,cpu,5\n");
	check_put(h, "temp.1704000000000.csv", "time,c\n1704067201000,777\n");
	check_put(h, "temp.csv", "time,zone,c\n1704153700000,cpu,40\n1704067203000,cpu,15\n");
	struct tierseries_query q = {"series-host", "temp", "c", "cpu", 1, "time,zone,c"};
	struct series_range rg = {JAN01, JAN01 + 2 * DAY - 1, 2};
	struct series_buckets bk;
	uint64_t rows = 0;
	int found = 0;
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(tierseries_read(h, TIER_RAW, &q, &rg, &bk, &rows, &found) == 0);
	CHECK(found && rows == 6);
	/* Day one: 10, 20, 5, 15; day two: 30, 40. */
	CHECK(bk.b[0].count == 4 && bk.b[0].min == 5 && bk.b[0].max == 20);
	CHECK(bk.b[1].count == 2 && bk.b[1].min == 30 && bk.b[1].max == 40);
	series_buckets_free(&bk);
	q.field = "nope";
	found = 0;
	rows = 0;
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(tierseries_read(h, TIER_RAW, &q, &rg, &bk, &rows, &found) == 0 && !found);
	series_buckets_free(&bk);
	close(segfd);
	close(rawfd);
	close(h);
	close(hf);
	(void)hfd;
}

/* Files listed, then the closed one compressed away and the open one
 * closed by a day close, before they are read: the reader still has the
 * rows each file held when it was listed. */
static void test_files_move_while_read(void)
{
	int hf = sub(AT_FDCWD, top);
	int h = sub(hf, "moving-host");
	check_put(h, "load.1704153600500.csv", "time,load1\n1704067201000,1\n1704067202000,2\n");
	check_put(h, "load.csv", "time,load1\n1704153601000,3\n");
	struct tierread *tr = tierread_open(h, TIER_RAW, "load", 0, UINT64_MAX);
	CHECK(tr != NULL && tierread_count(tr) == 2);
	int rawfd = sub(h, "raw"), segfd = sub(rawfd, "load");
	put_zst(segfd, "2024-01-01.1704153600500.csv.zst",
	        "time,load1\n1704067201000,1\n1704067202000,2\n");
	CHECK(unlinkat(h, "load.1704153600500.csv", 0) == 0);
	CHECK(renameat(h, "load.csv", h, "load.1704240000000.csv") == 0);
	check_put(h, "load.csv", "time,load1\n");
	struct csvread *r;
	int sorted, rc, files = 0;
	size_t rows = 0;
	while (tr && (rc = tierread_next(tr, &r, &sorted)) != 0) {
		CHECK(rc > 0);
		if (rc < 0)
			break;
		files++;
		const char *line;
		size_t len;
		off_t off = csvread_data(r), next;
		while (csvread_line(r, off, &line, &len, &next) > 0) {
			rows++;
			off = next;
		}
	}
	CHECK(files == 2 && rows == 3);
	tierread_close(tr);
	/* The newest file's reader outlives the listing that opened it. */
	CHECK(unlinkat(h, "load.csv", 0) == 0);
	r = tierread_newest(h, TIER_RAW, "load");
	CHECK(r != NULL);
	if (r) {
		const char *line;
		size_t len;
		off_t next;
		CHECK(csvread_line(r, csvread_data(r), &line, &len, &next) > 0 && line &&
		      len == strlen("1704153601000,3") &&
		      memcmp(line, "1704153601000,3", len) == 0);
		csvread_close(r);
	}
	close(segfd);
	close(rawfd);
	close(h);
	close(hf);
}

/* Every test, then the tally. */
int main(void)
{
	snprintf(top, sizeof top, "/tmp/pimon-tierread-XXXXXX");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	int tfd = safefs_dir_open(AT_FDCWD, top, 0);
	int hfd = tfd >= 0 ? sub(tfd, "host") : -1;
	if (hfd >= 0) {
		test_raw_listing(hfd);
		test_rollup_listing(hfd);
		test_links(hfd);
		test_series_across_files(hfd);
		test_files_move_while_read();
		close(hfd);
	}
	if (tfd >= 0)
		close(tfd);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", top);
	CHECK(system(cmd) == 0);
	return check_report("tierread");
}
