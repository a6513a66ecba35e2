/* The storage housekeeper on a temporary data folder: closed files split
 * by UTC day (month for 1h) and sorted, the segments' contents, the redo
 * of a compression a crash interrupted, the stagger, retention by age and
 * the order in which the size cap deletes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "housekeep.h"
#include "safefs.h"
#include "zstdio.h"

#define DAY ((uint64_t)86400000)
/* 2024-03-10 00:00:00 UTC, a day whose neighbours are in the same month. */
#define D0 ((uint64_t)1710028800000)

static char top[64];
static int data_fd = -1, hosts_fd = -1;

/* A fresh data folder with its hosts folder. */
static void data_make(void)
{
	snprintf(top, sizeof top, "/tmp/pimon-housekeep-XXXXXX");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		exit(1);
	}
	data_fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	hosts_fd = data_fd >= 0 ? safefs_dir_open(data_fd, "hosts", 1) : -1;
	if (hosts_fd < 0) {
		perror(top);
		exit(1);
	}
}

/* Remove it. */
static void data_remove(void)
{
	char cmd[128];
	close(hosts_fd);
	close(data_fd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", top);
	CHECK(system(cmd) == 0);
}

/* Write text to hosts/<rel> (folders made as needed). */
static void put(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/hosts/%s", top, rel);
	for (char *p = path + strlen(top) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

/* Write text as a zstd segment hosts/<dir>/<name>. */
static void put_segment(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/hosts/%s", top, dir);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "mkdir -p %s", path);
	CHECK(system(cmd) == 0);
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0 && zstdio_save(fd, name, text, strlen(text)) == 0);
	close(fd);
}

/* Whether hosts/<rel> exists. */
static int exists(const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/hosts/%s", top, rel);
	return lstat(path, &st) == 0;
}

/* The text of segment hosts/<dir>/<name>, or "" (free it). */
static char *segment_text(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/hosts/%s", top, dir);
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	char *buf = NULL;
	size_t len;
	if (fd < 0 || zstdio_load(fd, name, &buf, &len) < 0)
		buf = strdup("");
	if (fd >= 0)
		close(fd);
	return buf;
}

/* CHECK that a segment holds want. */
#define CHECK_SEGMENT(dir, name, want)                                                             \
	do {                                                                                       \
		char *got_ = segment_text(dir, name);                                              \
		CHECK_STR(got_, want);                                                             \
		if (strcmp(got_, want) != 0)                                                       \
			fprintf(stderr, "%s/%s:\n%s\nwant:\n%s\n", dir, name, got_, want);         \
		free(got_);                                                                        \
	} while (0)

/* What the cut hook saw. */
static char cut_hosts[256];
static int cuts, settles;

/* The cap cut host: note it. */
static void on_cut(void *arg, const char *host, uint64_t now_ms, const char *message)
{
	cuts++;
	strncat(cut_hosts, host, sizeof cut_hosts - strlen(cut_hosts) - 2);
	strcat(cut_hosts, " ");
}

/* A sweep ended. */
static void on_settle(void *arg, uint64_t now_ms)
{
	settles++;
}

/* What the hold hook holds: closed raw files of this metric. */
static const char *held_metric;

/* A reader still needs host's closed raw file (metric, ms). */
static int on_hold(void *arg, const char *host, const char *metric, uint64_t ms)
{
	return held_metric && strcmp(metric, held_metric) == 0;
}

/* A housekeeper with these settings and hooks counting into the above. */
static struct housekeep *hk_make(uint64_t close_delay_ms, int raw, int minute, int hour,
                                 uint64_t max_bytes)
{
	struct housekeep_config c = {
	    .sweep_ms = 1000,
	    .close_delay_ms = close_delay_ms,
	    .raw_days = raw,
	    .minute_days = minute,
	    .hour_days = hour,
	    .max_bytes = max_bytes,
	};
	struct housekeep_hooks hooks = {on_cut, on_settle, NULL, held_metric ? on_hold : NULL,
	                                NULL};
	cut_hosts[0] = '\0';
	cuts = settles = 0;
	struct housekeep *hk = housekeep_create(data_fd, hosts_fd, &c, &hooks);
	CHECK(hk != NULL);
	if (!hk)
		exit(1);
	return hk;
}

/* Rows of three days, out of order, split into one sorted part a day;
 * equal times keep their file order; an empty line is dropped. */
static void test_split_by_day(void)
{
	char csv[1024];
	snprintf(csv, sizeof csv,
	         "time,v\n"
	         "%" PRIu64 ",c\n"
	         "%" PRIu64 ",a\n"
	         "\n"
	         "%" PRIu64 ",b1\n"
	         "%" PRIu64 ",b2\n"
	         "%" PRIu64 ",z\n"
	         "%" PRIu64 ",y",
	         D0 + DAY + 5, D0 + 7, D0 + DAY + 1, D0 + DAY + 1, D0 + 2 * DAY - 1, D0 - 1);
	struct housekeep_part *parts;
	size_t n, untimed;
	CHECK(housekeep_split(csv, strlen(csv), 0, 0, &parts, &n, &untimed) == 0);
	CHECK(n == 3 && untimed == 0);
	if (n != 3)
		return;
	char want[3][256];
	snprintf(want[0], sizeof want[0], "time,v\n%" PRIu64 ",y\n", D0 - 1);
	snprintf(want[1], sizeof want[1], "time,v\n%" PRIu64 ",a\n", D0 + 7);
	snprintf(want[2], sizeof want[2],
	         "time,v\n%" PRIu64 ",b1\n%" PRIu64 ",b2\n%" PRIu64 ",c\n%" PRIu64 ",z\n",
	         D0 + DAY + 1, D0 + DAY + 1, D0 + DAY + 5, D0 + 2 * DAY - 1);
	CHECK_STR(parts[0].label, "2024-03-09");
	CHECK_STR(parts[1].label, "2024-03-10");
	CHECK_STR(parts[2].label, "2024-03-11");
	for (int i = 0; i < 3; i++) {
		CHECK_STR(parts[i].text, want[i]);
		CHECK(parts[i].len == strlen(want[i]));
	}
	housekeep_parts_free(parts, n);
}

/* A row whose time does not parse stays right after the row before it;
 * one before any timed row goes before the first; a file of only such
 * rows goes to the day it closed. Rows near 1970 go to their own day. */
static void test_split_untimed(void)
{
	char csv[512];
	snprintf(csv, sizeof csv,
	         "time,v\n"
	         "garbage,0\n"
	         "%" PRIu64 ",b\n"
	         ",x\n"
	         "%" PRIu64 ",a\n"
	         "12e3,y\n"
	         "5,epoch\n",
	         D0 + DAY, D0 + 3);
	struct housekeep_part *parts;
	size_t n, untimed;
	CHECK(housekeep_split(csv, strlen(csv), 0, 0, &parts, &n, &untimed) == 0);
	CHECK(n == 3 && untimed == 3);
	if (n == 3) {
		char want[256];
		CHECK_STR(parts[0].label, "1970-01-01");
		CHECK_STR(parts[0].text, "time,v\n5,epoch\n");
		snprintf(want, sizeof want, "time,v\n%" PRIu64 ",a\n12e3,y\n", D0 + 3);
		CHECK_STR(parts[1].text, want);
		snprintf(want, sizeof want, "time,v\ngarbage,0\n%" PRIu64 ",b\n,x\n", D0 + DAY);
		CHECK_STR(parts[2].text, want);
	}
	housekeep_parts_free(parts, n);

	const char *only = "time,v\nbad,1\nworse,2\n";
	CHECK(housekeep_split(only, strlen(only), 0, D0 + 5, &parts, &n, &untimed) == 0);
	CHECK(n == 1 && untimed == 2);
	if (n == 1) {
		CHECK_STR(parts[0].label, "2024-03-10");
		CHECK_STR(parts[0].text, only);
	}
	housekeep_parts_free(parts, n);

	const char *header_only = "time,v\n";
	CHECK(housekeep_split(header_only, strlen(header_only), 0, D0, &parts, &n, &untimed) == 0);
	CHECK(n == 0);
	housekeep_parts_free(parts, n);
}

/* Hour rows split by UTC month. */
static void test_split_by_month(void)
{
	char csv[512];
	/* 2024-02-29 23:00, 2024-03-01 00:00, 2024-03-31 23:00, 2024-04-01. */
	uint64_t feb29 = D0 - 10 * DAY + 23 * 3600000ull;
	uint64_t mar1 = D0 - 9 * DAY, mar31 = D0 + 21 * DAY + 23 * 3600000ull;
	uint64_t apr1 = D0 + 22 * DAY;
	snprintf(csv, sizeof csv,
	         "time,count\n%" PRIu64 ",1\n%" PRIu64 ",2\n%" PRIu64 ",3\n%" PRIu64 ",4\n", mar31,
	         apr1, feb29, mar1);
	struct housekeep_part *parts;
	size_t n, untimed;
	CHECK(housekeep_split(csv, strlen(csv), 1, 0, &parts, &n, &untimed) == 0);
	CHECK(n == 3);
	if (n == 3) {
		char want[256];
		CHECK_STR(parts[0].label, "2024-02");
		CHECK_STR(parts[1].label, "2024-03");
		CHECK_STR(parts[2].label, "2024-04");
		snprintf(want, sizeof want, "time,count\n%" PRIu64 ",4\n%" PRIu64 ",1\n", mar1,
		         mar31);
		CHECK_STR(parts[1].text, want);
	}
	housekeep_parts_free(parts, n);
}

/* A sweep compresses each tier's closed files into segments whose
 * contents are the rows of their day, removes the closed files and leaves
 * the open ones alone. */
static void test_compress_tiers(void)
{
	data_make();
	uint64_t ms = D0 + 2 * DAY + 60000;
	char csv[512], name[128], want[256];
	snprintf(csv, sizeof csv, "time,v\n%" PRIu64 ",2\n%" PRIu64 ",1\n%" PRIu64 ",3\n", D0 + DAY,
	         D0 + 10, D0 + DAY + 1);
	snprintf(name, sizeof name, "h1/cpu.%" PRIu64 ".csv", ms);
	put(name, csv);
	snprintf(name, sizeof name, "h1/1m/cpu.%" PRIu64 ".csv", ms);
	put(name, csv);
	snprintf(name, sizeof name, "h1/1h/cpu.%" PRIu64 ".csv", ms);
	put(name, csv);
	put("h1/cpu.csv", "time,v\n1,open\n");
	put("h1/1m/cpu.csv", "time,v\n1,open\n");
	put("h1/commit.state", "x");

	struct housekeep *hk = hk_make(0, 14, 30, 400, 1ull << 40);
	housekeep_sweep(hk, ms);
	CHECK(housekeep_counter(hk, HKC_files_compressed) == 3);
	CHECK(housekeep_counter(hk, HKC_bytes_compressed_in) == 3 * strlen(csv));
	CHECK(housekeep_counter(hk, HKC_bytes_compressed_out) > 0);
	CHECK(housekeep_counter(hk, HKC_errors) == 0);
	CHECK(settles == 1 && cuts == 0);
	snprintf(want, sizeof want, "time,v\n%" PRIu64 ",1\n", D0 + 10);
	snprintf(name, sizeof name, "2024-03-10.%" PRIu64 ".csv.zst", ms);
	CHECK_SEGMENT("h1/raw/cpu", name, want);
	CHECK_SEGMENT("h1/1m/cpu", name, want);
	snprintf(want, sizeof want, "time,v\n%" PRIu64 ",2\n%" PRIu64 ",3\n", D0 + DAY,
	         D0 + DAY + 1);
	snprintf(name, sizeof name, "2024-03-11.%" PRIu64 ".csv.zst", ms);
	CHECK_SEGMENT("h1/raw/cpu", name, want);
	CHECK_SEGMENT("h1/1m/cpu", name, want);
	snprintf(want, sizeof want, "time,v\n%" PRIu64 ",1\n%" PRIu64 ",2\n%" PRIu64 ",3\n",
	         D0 + 10, D0 + DAY, D0 + DAY + 1);
	snprintf(name, sizeof name, "2024-03.%" PRIu64 ".csv.zst", ms);
	CHECK_SEGMENT("h1/1h/cpu", name, want);
	snprintf(name, sizeof name, "h1/cpu.%" PRIu64 ".csv", ms);
	CHECK(!exists(name));
	snprintf(name, sizeof name, "h1/1m/cpu.%" PRIu64 ".csv", ms);
	CHECK(!exists(name));
	CHECK(exists("h1/cpu.csv") && exists("h1/1m/cpu.csv") && exists("h1/commit.state"));
	CHECK(housekeep_bytes(hk) > 0 && housekeep_cap(hk) == 1ull << 40);
	housekeep_destroy(hk);
	data_remove();
}

/* With a close delay, a host's closed file waits its stagger; at
 * close + delay every host's is due. */
static void test_stagger(void)
{
	data_make();
	uint64_t delay = 3600000, ms = D0 + DAY;
	const char *host = "pi-stagger";
	uint64_t st = housekeep_stagger(host, delay);
	CHECK(st < delay);
	CHECK(housekeep_stagger(host, 0) == 0);
	char name[128];
	snprintf(name, sizeof name, "%s/mem.%" PRIu64 ".csv", host, ms);
	char csv[128];
	snprintf(csv, sizeof csv, "time,v\n%" PRIu64 ",1\n", D0 + 5);
	put(name, csv);
	struct housekeep *hk = hk_make(delay, 14, 30, 400, 1ull << 40);
	if (st > 0) {
		housekeep_sweep(hk, ms + st - 1);
		CHECK(exists(name) && housekeep_counter(hk, HKC_files_compressed) == 0);
	}
	housekeep_sweep(hk, ms + st);
	CHECK(!exists(name) && housekeep_counter(hk, HKC_files_compressed) == 1);
	housekeep_destroy(hk);
	data_remove();
}

/* A crash in the middle of a compression leaves the closed file, a
 * partial segment of its ms and a temporary file: the next sweep deletes
 * them and writes the segments whole; a segment of another closed file
 * of the same day stays. */
static void test_redo_after_crash(void)
{
	data_make();
	uint64_t ms = D0 + DAY + 5, other = D0 + DAY + 1;
	char name[128], seg[128], csv[256], want[256];
	snprintf(csv, sizeof csv, "time,v\n%" PRIu64 ",b\n%" PRIu64 ",a\n", D0 + 20, D0 + 10);
	snprintf(name, sizeof name, "h1/load.%" PRIu64 ".csv", ms);
	put(name, csv);
	snprintf(seg, sizeof seg, "2024-03-10.%" PRIu64 ".csv.zst", ms);
	put_segment("h1/raw/load", seg, "time,v\npartial");
	snprintf(seg, sizeof seg, "2024-03-09.%" PRIu64 ".csv.zst", ms);
	put_segment("h1/raw/load", seg, "time,v\nstale day\n");
	put("h1/raw/load/x.tmp", "half");
	snprintf(seg, sizeof seg, "2024-03-10.%" PRIu64 ".csv.zst", other);
	put_segment("h1/raw/load", seg, "time,v\n1,other generation\n");

	struct housekeep *hk = hk_make(0, 14, 30, 400, 1ull << 40);
	housekeep_sweep(hk, ms);
	CHECK(!exists(name));
	snprintf(want, sizeof want, "time,v\n%" PRIu64 ",a\n%" PRIu64 ",b\n", D0 + 10, D0 + 20);
	snprintf(seg, sizeof seg, "2024-03-10.%" PRIu64 ".csv.zst", ms);
	CHECK_SEGMENT("h1/raw/load", seg, want);
	snprintf(seg, sizeof seg, "h1/raw/load/2024-03-09.%" PRIu64 ".csv.zst", ms);
	CHECK(!exists(seg));
	CHECK(!exists("h1/raw/load/x.tmp"));
	snprintf(seg, sizeof seg, "2024-03-10.%" PRIu64 ".csv.zst", other);
	CHECK_SEGMENT("h1/raw/load", seg, "time,v\n1,other generation\n");
	housekeep_destroy(hk);
	data_remove();
}

/* Age: segments of days before today - N go, per tier; a month goes once
 * its last day is that old; an incomplete segment waits for its redo. */
static void test_age_retention(void)
{
	data_make();
	char seg[128], label[16];
	uint64_t now = D0 + 12 * 3600000ull; /* 2024-03-10 12:00 */
	for (int back = 1; back <= 6; back++) {
		housekeep_label(now - (uint64_t)back * DAY, 0, label);
		snprintf(seg, sizeof seg, "%s.%" PRIu64 ".csv.zst", label, now);
		put_segment("h1/raw/cpu", seg, "time,v\n");
		put_segment("h1/1m/cpu", seg, "time,v\n");
	}
	put_segment("h1/1h/cpu", "2024-01.5.csv.zst", "time,v\n");
	put_segment("h1/1h/cpu", "2024-02.5.csv.zst", "time,v\n");
	put_segment("h1/1h/cpu", "2024-03.5.csv.zst", "time,v\n");
	/* Too old, but its closed file is not yet due: it is incomplete. */
	char wait_seg[64], wait_closed[64];
	snprintf(wait_seg, sizeof wait_seg, "2024-02-01.%" PRIu64 ".csv.zst", now + DAY);
	snprintf(wait_closed, sizeof wait_closed, "h1/cpu.%" PRIu64 ".csv", now + DAY);
	put_segment("h1/raw/cpu", wait_seg, "time,v\n");
	put(wait_closed, "time,v\n");

	/* raw 3: 03-07..03-09 stay; 1m 5: 03-05..; 1h 15 days: January's
	 * last day is older than 02-24, February's is not. */
	struct housekeep *hk = hk_make(86400000, 3, 5, 15, 1ull << 40);
	housekeep_sweep(hk, now);
	for (int back = 1; back <= 6; back++) {
		housekeep_label(now - (uint64_t)back * DAY, 0, label);
		snprintf(seg, sizeof seg, "h1/raw/cpu/%s.%" PRIu64 ".csv.zst", label, now);
		CHECK(exists(seg) == (back <= 3));
		snprintf(seg, sizeof seg, "h1/1m/cpu/%s.%" PRIu64 ".csv.zst", label, now);
		CHECK(exists(seg) == (back <= 5));
	}
	CHECK(!exists("h1/1h/cpu/2024-01.5.csv.zst"));
	CHECK(exists("h1/1h/cpu/2024-02.5.csv.zst") && exists("h1/1h/cpu/2024-03.5.csv.zst"));
	snprintf(seg, sizeof seg, "h1/raw/cpu/%s", wait_seg);
	CHECK(exists(seg) && exists(wait_closed));
	CHECK(housekeep_counter(hk, HKC_segments_aged) == 3 + 1 + 1);
	CHECK(housekeep_counter(hk, HKC_segments_capped) == 0 && cuts == 0);
	CHECK(housekeep_counter(hk, HKC_bytes_deleted) > 0);
	housekeep_destroy(hk);
	data_remove();
}

/* A segment of n bytes of text (incompressible enough to keep its size
 * roughly). */
static void put_sized(const char *dir, const char *name, size_t n, unsigned seed)
{
	char *text = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		text[i] = (char)(1 + (seed >> 16) % 255);
	}
	text[n] = '\0';
	put_segment(dir, name, text);
	free(text);
}

/* The cap deletes whole segments, the oldest day first across hosts, all
 * raw before any minute; open and uncompressed closed files stay; each
 * host cut is reported. */
static void test_cap_order(void)
{
	data_make();
	uint64_t now = D0 + 12 * 3600000ull;
	put_sized("h1/raw/cpu", "2024-03-01.1.csv.zst", 4000, 1);
	put_sized("h2/raw/cpu", "2024-03-02.1.csv.zst", 4000, 2);
	put_sized("h1/raw/mem", "2024-03-03.1.csv.zst", 4000, 3);
	put_sized("h2/raw/mem", "2024-03-04.1.csv.zst", 4000, 4);
	put_sized("h1/1m/cpu", "2024-02-01.1.csv.zst", 4000, 5);
	put_sized("h2/1h/cpu", "2023-01.1.csv.zst", 4000, 6);
	put("h1/cpu.csv", "time,v\n1,2\n");
	put("h3/cpu.csv", "time,v\n1,2\n");

	/* The total first, without a cap in the way. */
	struct housekeep *hk = hk_make(0, 100, 100, 1000, 1ull << 40);
	housekeep_sweep(hk, now);
	uint64_t total = housekeep_bytes(hk);
	housekeep_destroy(hk);
	CHECK(total > 6 * 4000);

	/* Room for all but about two and a half segments: three raw go. */
	hk = hk_make(0, 100, 100, 1000, total - 10000);
	housekeep_sweep(hk, now);
	CHECK(!exists("h1/raw/cpu/2024-03-01.1.csv.zst"));
	CHECK(!exists("h2/raw/cpu/2024-03-02.1.csv.zst"));
	CHECK(!exists("h1/raw/mem/2024-03-03.1.csv.zst"));
	CHECK(exists("h2/raw/mem/2024-03-04.1.csv.zst"));
	CHECK(exists("h1/1m/cpu/2024-02-01.1.csv.zst") && exists("h2/1h/cpu/2023-01.1.csv.zst"));
	CHECK(housekeep_counter(hk, HKC_segments_capped) == 3);
	CHECK(housekeep_counter(hk, HKC_segments_aged) == 0);
	CHECK(housekeep_bytes(hk) <= total - 10000);
	CHECK(cuts == 2 && strstr(cut_hosts, "h1 ") && strstr(cut_hosts, "h2 "));
	housekeep_destroy(hk);

	/* A cap only the open files fit: every segment goes, 1m before 1h, and
	 * the open files stay. */
	hk = hk_make(0, 100, 100, 1000, 100);
	housekeep_sweep(hk, now);
	CHECK(!exists("h2/raw/mem/2024-03-04.1.csv.zst"));
	CHECK(!exists("h1/1m/cpu/2024-02-01.1.csv.zst") && !exists("h2/1h/cpu/2023-01.1.csv.zst"));
	CHECK(exists("h1/cpu.csv") && exists("h3/cpu.csv"));
	CHECK(housekeep_counter(hk, HKC_segments_capped) == 3);
	CHECK(!strstr(cut_hosts, "h3"));
	housekeep_destroy(hk);
	data_remove();
}

/* A segment folder reached through a link is not followed. */
static void test_links_not_followed(void)
{
	data_make();
	char outside[128], cmd[512];
	snprintf(outside, sizeof outside, "%s/outside", top);
	snprintf(cmd, sizeof cmd, "mkdir -p %s/hosts/h1/raw && ln -s %s %s/hosts/h1/raw/cpu", top,
	         outside, top);
	CHECK(mkdir(outside, 0755) == 0 && system(cmd) == 0);
	put_segment("../outside", "2000-01-01.1.csv.zst", "time,v\n");
	char name[128], csv[128];
	snprintf(name, sizeof name, "h1/cpu.%" PRIu64 ".csv", D0);
	snprintf(csv, sizeof csv, "time,v\n%" PRIu64 ",1\n", D0 - 5);
	put(name, csv);
	struct housekeep *hk = hk_make(0, 1, 1, 1, 1ull << 40);
	housekeep_sweep(hk, D0 + 100 * DAY);
	CHECK(exists("../outside/2000-01-01.1.csv.zst"));
	CHECK(exists(name));
	CHECK(housekeep_counter(hk, HKC_errors) > 0);
	housekeep_destroy(hk);
	data_remove();
}

/* A closed raw file a reader holds stays uncompressed (counted), its
 * minute file does not; once hosts/ is over the cap it is compressed
 * anyway (counted). */
static void test_hold(void)
{
	data_make();
	uint64_t ms = D0 + DAY;
	char csv[128], raw[128], m1[128];
	snprintf(csv, sizeof csv, "time,v\n%" PRIu64 ",1\n", D0 + 10);
	snprintf(raw, sizeof raw, "h1/cpu.%" PRIu64 ".csv", ms);
	snprintf(m1, sizeof m1, "h1/1m/cpu.%" PRIu64 ".csv", ms);
	put(raw, csv);
	put(m1, csv);
	put("h1/mem.csv", "time,v\n");
	held_metric = "cpu";
	struct housekeep *hk = hk_make(0, 14, 30, 400, 1ull << 40);
	housekeep_sweep(hk, ms);
	CHECK(exists(raw) && !exists(m1));
	CHECK(housekeep_counter(hk, HKC_files_held) == 1);
	CHECK(housekeep_counter(hk, HKC_files_forced) == 0);
	housekeep_destroy(hk);
	hk = hk_make(0, 14, 30, 400, 10);
	housekeep_sweep(hk, ms); /* learns that hosts/ is over the cap */
	CHECK(exists(raw));
	housekeep_sweep(hk, ms);
	CHECK(!exists(raw));
	CHECK(housekeep_counter(hk, HKC_files_forced) == 1);
	housekeep_destroy(hk);
	held_metric = NULL;
	data_remove();
}

int main(void)
{
	test_split_by_day();
	test_split_untimed();
	test_split_by_month();
	test_compress_tiers();
	test_stagger();
	test_redo_after_crash();
	test_age_retention();
	test_cap_order();
	test_links_not_followed();
	test_hold();
	return check_report("housekeep");
}
