/* Reading series from metric files: CSV lines, headers, query limits,
 * bucket arithmetic, and the reader's binary search, tail and partial
 * last line on real files. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "csvread.h"
#include "series.h"

#define DAY_MS (86400ull * 1000)

/* Quoted fields, doubled quotes, empty fields, malformed lines. */
static void test_split(void)
{
	const char *line = "1700000000000,\"/mnt/a,b\",\"say \"\"hi\"\"\",,2.5,";
	char out[128];
	char *f[8];
	CHECK(csvread_split(line, strlen(line), out, f, 8) == 6);
	CHECK_STR(f[0], "1700000000000");
	CHECK_STR(f[1], "/mnt/a,b");
	CHECK_STR(f[2], "say \"hi\"");
	CHECK_STR(f[3], "");
	CHECK_STR(f[4], "2.5");
	CHECK_STR(f[5], "");
	CHECK(csvread_split("", 0, out, f, 8) == 1 && f[0][0] == '\0');
	CHECK(csvread_split("1,\"open", 7, out, f, 8) == -1);
	CHECK(csvread_split("1,2,3", 5, out, f, 2) == -1);
	/* The first fields only: the rest, quotes and all, is not looked at. */
	CHECK(csvread_split_first(line, strlen(line), out, f, 2) == 2 &&
	      strcmp(f[1], "/mnt/a,b") == 0);
	CHECK(csvread_split_first("1,2,\"open", 9, out, f, 2) == 2);
	CHECK(csvread_split_first("1,\"open", 7, out, f, 2) == -1);
	CHECK(csvread_split_first("1,2", 3, out, f, 8) == 2);
	/* Only len bytes count: the rest of the string is not read. */
	CHECK(csvread_split("7,8,9", 3, out, f, 8) == 2 && strcmp(f[1], "8") == 0);
}

/* A row's time: digits up to the first comma, nothing else. */
static void test_time(void)
{
	uint64_t t = 0;
	CHECK(csvread_time("123,4", 5, &t) == 0 && t == 123);
	CHECK(csvread_time("1700000000000", 13, &t) == 0 && t == 1700000000000ull);
	CHECK(csvread_time("", 0, &t) == -1);
	CHECK(csvread_time(",1", 2, &t) == -1);
	CHECK(csvread_time("12a,3", 5, &t) == -1);
	CHECK(csvread_time("time,load1", 10, &t) == -1);
	CHECK(csvread_time("-5,1", 4, &t) == -1);
	CHECK(csvread_time("12345678901234567890", 20, &t) == -1);
}

/* Headers with and without an instance key. */
static void test_columns(void)
{
	struct series_columns c;
	CHECK(series_columns_parse("time,load1,load5,load15", -1, &c) == 0);
	CHECK(c.inst_key[0] == '\0' && c.nfields == 3);
	CHECK(series_columns_find(&c, "load1") == 1);
	CHECK(series_columns_find(&c, "load15") == 3);
	CHECK(series_columns_find(&c, "time") == -1);
	CHECK(series_columns_find(&c, "nope") == -1);
	CHECK(series_columns_parse("time,mount,total_bytes,used_pct", -1, &c) == 0);
	CHECK_STR(c.inst_key, "mount");
	CHECK(c.nfields == 2 && series_columns_find(&c, "used_pct") == 3);
	CHECK(series_columns_find(&c, "mount") == -1);
	/* The caller knows better than the table of keys. */
	CHECK(series_columns_parse("time,mount,x", 0, &c) == 0 && c.nfields == 2);
	CHECK(series_columns_parse("time,port,rx", 1, &c) == 0);
	CHECK_STR(c.inst_key, "port");
	/* A lone column after time is a field, whatever its name. */
	CHECK(series_columns_parse("time,mount", -1, &c) == 0 && c.nfields == 1);
	CHECK(series_columns_parse("when,load1", -1, &c) == -1);
	CHECK(series_columns_parse("time", -1, &c) == -1);
	CHECK(series_columns_parse("time,Load1", -1, &c) == -1);
	CHECK(series_columns_parse("", -1, &c) == -1);
}

/* Defaults, and each limit of from, to and points. */
static void test_range(void)
{
	struct series_range rg;
	const char *err = NULL;
	uint64_t now = 1700000000000ull;
	CHECK(series_range_parse(NULL, NULL, NULL, now, &rg, &err) == 0);
	CHECK(rg.to == now && rg.from == now - 3600000 && rg.points == 500);
	CHECK(series_range_parse("1699999999000", NULL, "7", now, &rg, &err) == 0);
	CHECK(rg.from == now - 1000 && rg.to == now && rg.points == 7);
	CHECK(series_range_parse(NULL, "5000000", NULL, now, &rg, &err) == 0);
	CHECK(rg.from == 1400000 && rg.to == 5000000);
	CHECK(series_range_parse(NULL, "1000", NULL, now, &rg, &err) == 0 && rg.from == 0);
	CHECK(series_range_parse("5", "5", "10000", now, &rg, &err) == 0 && rg.points == 10000);
	CHECK(series_range_parse("0", "34560000000", NULL, now, &rg, &err) == 0);
	CHECK(series_range_parse("0", "34560000001", NULL, now, &rg, &err) == -1);
	CHECK(err && strstr(err, "400 days"));
	CHECK(series_range_parse("6", "5", NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse("-1", NULL, NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse("1e3", NULL, NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse("", NULL, NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse(" 1", NULL, NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse(NULL, "abc", NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse(NULL, "9999999999999999", NULL, now, &rg, &err) == -1);
	CHECK(series_range_parse(NULL, NULL, "0", now, &rg, &err) == -1);
	CHECK(series_range_parse(NULL, NULL, "10001", now, &rg, &err) == -1);
	CHECK(series_range_parse(NULL, NULL, "5x", now, &rg, &err) == -1);
}

/* Width rounds up so the buckets never outnumber points; values fold into
 * average, minimum and maximum. */
static void test_buckets(void)
{
	struct series_buckets bk;
	struct series_range rg = {0, 99, 10};
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(bk.width == 10 && bk.n == 10);
	series_buckets_add(&bk, 0, 4);
	series_buckets_add(&bk, 9, -2);
	series_buckets_add(&bk, 10, 7);
	series_buckets_add(&bk, 99, 1);
	CHECK(bk.b[0].count == 2 && bk.b[0].min == -2 && bk.b[0].max == 4);
	CHECK_NEAR(bk.b[0].sum / (double)bk.b[0].count, 1.0, 1e-12);
	CHECK(bk.b[1].count == 1 && bk.b[1].min == 7 && bk.b[1].max == 7);
	CHECK(bk.b[9].count == 1 && bk.b[2].count == 0);
	series_buckets_free(&bk);
	rg = (struct series_range){1000, 1000, 500};
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.n == 1 && bk.width == 1);
	series_buckets_free(&bk);
	int ok = 1;
	for (uint64_t span = 0; span < 3000; span += 7)
		for (unsigned p = 1; p < 60; p += 3) {
			rg = (struct series_range){5000, 5000 + span, p};
			if (series_buckets_init(&bk, &rg) < 0)
				ok = 0;
			else if (bk.n > p || bk.n * bk.width < span + 1 ||
			         (bk.n - 1) * bk.width > span)
				ok = 0;
			series_buckets_free(&bk);
		}
	CHECK(ok);
	rg = (struct series_range){0, 400 * DAY_MS, 10000};
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.n <= 10000);
	series_buckets_free(&bk);
}

/* Values: numbers and infinities; an empty field (NaN) holds none. */
static void test_value(void)
{
	double v;
	CHECK(series_value("2.5", &v) == 0 && v == 2.5);
	CHECK(series_value("-1e3", &v) == 0 && v == -1000);
	CHECK(series_value("", &v) == -1);
	CHECK(series_value("nan", &v) == -1);
	CHECK(series_value("inf", &v) == 0 && isinf(v) && v > 0);
	CHECK(series_value("-inf", &v) == 0 && isinf(v) && v < 0);
	CHECK(series_value("1x", &v) == -1);
}

/* A bucket's mean never overflows where its values do not: three samples of
 * 1e308 average 1e308; one sample is its own mean, bit for bit. */
static void test_bucket_mean(void)
{
	struct series_range rg = {0, 999, 1};
	struct series_buckets bk;
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.n == 1);
	for (int i = 0; i < 3; i++)
		series_buckets_add(&bk, (uint64_t)i, 1e308);
	CHECK(!isfinite(bk.b[0].sum));
	CHECK(series_bucket_avg(&bk.b[0]) == 1e308);
	series_buckets_add(&bk, 5, -1.7e308);
	CHECK(isfinite(series_bucket_avg(&bk.b[0])));
	CHECK_NEAR(series_bucket_avg(&bk.b[0]), 1.3e308 / 4, 1e294);
	series_buckets_free(&bk);
	CHECK(series_buckets_init(&bk, &rg) == 0);
	series_buckets_add(&bk, 1, 4.9406564584124654e-324);
	CHECK(series_bucket_avg(&bk.b[0]) == 4.9406564584124654e-324);
	series_buckets_free(&bk);
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(isnan(series_bucket_avg(&bk.b[0])));
	series_buckets_free(&bk);
}

/* Write text to a new temporary file; its path goes to path. */
static void write_file(char *path, const char *text, size_t len)
{
	snprintf(path, 64, "/tmp/pimon-test-series-XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, len) == (ssize_t)len);
	close(fd);
}

/* A load-like file of n rows at t0, t0 + 10, ... with value i % 100, and a
 * partial row (no newline) at the end. */
static char *make_rows(size_t n, uint64_t t0, size_t *len)
{
	size_t cap = 64 + n * 40, o = 0;
	char *text = malloc(cap);
	o += (size_t)snprintf(text + o, cap - o, "time,load1,load5\n");
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(text + o, cap - o, "%llu,%zu,%s\n",
		                      (unsigned long long)(t0 + 10 * i), i % 100, i % 3 ? "1" : "");
	o += (size_t)snprintf(text + o, cap - o, "%llu,5", (unsigned long long)(t0 + 10 * n));
	*len = o;
	return text;
}

/* The row index csvread_seek lands on, from its offset. */
static long row_at(struct csvread *r, off_t off)
{
	const char *line;
	size_t len;
	off_t next;
	uint64_t t;
	if (csvread_line(r, off, &line, &len, &next) <= 0 || csvread_time(line, len, &t) < 0)
		return -1;
	return (long)((t - 1000) / 10);
}

/* Binary search lands on the first row at or after from, for times on,
 * between, before and after the rows; the partial row is never read. */
static void test_seek(void)
{
	size_t n = 20000, len;
	char *text = make_rows(n, 1000, &len), path[64];
	write_file(path, text, len);
	struct csvread *r = csvread_open(AT_FDCWD, path);
	CHECK(r != NULL);
	if (!r)
		goto out;
	CHECK_STR(csvread_header(r), "time,load1,load5");
	CHECK(row_at(r, csvread_seek(r, 0)) == 0);
	CHECK(row_at(r, csvread_seek(r, 1000)) == 0);
	CHECK(row_at(r, csvread_seek(r, 1001)) == 1);
	int ok = 1;
	for (uint64_t from = 995; from < 1000 + 10 * n; from += 997)
		ok &= row_at(r, csvread_seek(r, from)) == (long)((from - 1000 + 9) / 10);
	CHECK(ok);
	CHECK(row_at(r, csvread_seek(r, 1000 + 10 * (n - 1))) == (long)(n - 1));
	/* Past the last complete row: the partial one is not a row yet. */
	off_t end = csvread_seek(r, 1000 + 10 * (n - 1) + 1);
	CHECK(row_at(r, end) == -1);
	CHECK(csvread_seek(r, 1000 + 10 * n) == end);
	CHECK(row_at(r, csvread_tail(r, 1)) == (long)(n - 1));
	CHECK(row_at(r, csvread_tail(r, 3)) == (long)(n - 3));
	CHECK(row_at(r, csvread_tail(r, n + 5)) == 0);
	CHECK(series_first(r) == 1000);
	uint64_t last;
	series_tail(r, 10, 0, &last, NULL, NULL);
	CHECK(last == 1000 + 10 * (n - 1));
	csvread_close(r);
out:
	unlink(path);
	free(text);
}

/* Reading a range: both edges included, empty values counted as rows but
 * not as values, and averages per bucket. */
static void test_read(void)
{
	size_t n = 1000, len;
	char *text = make_rows(n, 1000, &len), path[64];
	write_file(path, text, len);
	struct csvread *r = csvread_open(AT_FDCWD, path);
	CHECK(r != NULL);
	if (!r)
		goto out;
	/* Rows 10..29 (times 1100..1290) in 2 buckets of 100 ms. */
	struct series_range rg = {1100, 1290, 2};
	struct series_filter f = {2, 0, NULL, 0, 0}; /* load5: "" for every third row */
	struct series_buckets bk;
	uint64_t rows;
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.width == 96 && bk.n == 2);
	series_buckets_free(&bk);
	rg.points = 20;
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.width == 10 && bk.n == 20);
	CHECK(series_read(r, 1, &rg, &f, &bk, &rows) == 0 && rows == 20);
	uint64_t values = 0;
	for (size_t i = 0; i < bk.n; i++)
		values += bk.b[i].count;
	CHECK(values == 14); /* rows 10..29 but 12, 15, 18, 21, 24 and 27 */
	series_buckets_free(&bk);
	f.column = 1;
	rg.points = 2;
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 1, &rg, &f, &bk, &rows) == 0 && rows == 20);
	/* Bucket 0: times 1100..1195 = rows 10..19; bucket 1: rows 20..29. */
	CHECK(bk.b[0].count == 10 && bk.b[0].min == 10 && bk.b[0].max == 19);
	CHECK_NEAR(bk.b[0].sum / 10, 14.5, 1e-9);
	CHECK(bk.b[1].count == 10 && bk.b[1].min == 20 && bk.b[1].max == 29);
	series_buckets_free(&bk);
	csvread_close(r);
out:
	unlink(path);
	free(text);
}

/* Collect instance names into a string, each followed by "|". */
static void add_name(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, "|");
}

/* Instanced rows: only the asked instance's, quoted names matched
 * unquoted, instances found in the tail; a line too long for the buffer is
 * skipped; CRLF lines are read. */
static void test_instances(void)
{
	size_t cap = 200000, o = 0;
	char *text = malloc(cap), path[64];
	o += (size_t)snprintf(text + o, cap - o, "time,mount,used_pct\r\n");
	for (int i = 0; i < 50; i++) {
		o += (size_t)snprintf(text + o, cap - o, "%d,/,%d\r\n", 1000 + 10 * i, i);
		o += (size_t)snprintf(text + o, cap - o, "%d,\"/mnt/a,b\",%d\n", 1000 + 10 * i,
		                      100 + i);
		if (i == 20) {
			o += (size_t)snprintf(text + o, cap - o, "%d,/long,", 1000 + 10 * i);
			memset(text + o, '7', 70000);
			o += 70000;
			text[o++] = '\n';
		}
	}
	write_file(path, text, o);
	struct csvread *r = csvread_open(AT_FDCWD, path);
	CHECK(r != NULL);
	if (!r)
		goto out;
	CHECK_STR(csvread_header(r), "time,mount,used_pct");
	struct series_range rg = {1000, 1490, 500};
	struct series_filter f = {2, 1, "/mnt/a,b", 0, 0};
	struct series_buckets bk;
	uint64_t rows, last;
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 1, &rg, &f, &bk, &rows) == 0 && rows == 50);
	CHECK(bk.b[0].count == 1 && bk.b[0].min == 100);
	CHECK(bk.b[490].count == 1 && bk.b[490].max == 149);
	series_buckets_free(&bk);
	f.instance = "/";
	rg = (struct series_range){1200, 1200, 1};
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 1, &rg, &f, &bk, &rows) == 0 && rows == 1 && bk.b[0].sum == 20);
	series_buckets_free(&bk);
	char names[256] = "";
	series_tail(r, 4, 1, &last, add_name, names);
	CHECK_STR(names, "/|/mnt/a,b|/|/mnt/a,b|");
	CHECK(last == 1490);
	csvread_close(r);
out:
	unlink(path);
	free(text);
}

/* Files with only a header, only part of one, or nothing. */
static void test_short_files(void)
{
	const char *cases[] = {"time,load1\n", "time,lo", ""};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[64];
		write_file(path, cases[i], strlen(cases[i]));
		struct csvread *r = csvread_open(AT_FDCWD, path);
		CHECK(r != NULL);
		if (r) {
			CHECK(csvread_seek(r, 0) == csvread_data(r));
			CHECK(csvread_tail(r, 5) == csvread_data(r));
			CHECK(series_first(r) == 0);
			CHECK(i == 0 ? strcmp(csvread_header(r), "time,load1") == 0
			             : csvread_header(r)[0] == '\0');
			csvread_close(r);
		}
		unlink(path);
	}
	CHECK(csvread_open(AT_FDCWD, "/nonexistent/pimon/x.csv") == NULL);
}

/* Rows out of time order (a backlog, a clock stepped back): a file in
 * arrival order whose later rows are earlier than the ones before them.
 * The binary search lands past the early rows; a whole scan reads every
 * row of the range. */
static void test_out_of_order_rows_read_back(void)
{
	size_t cap = 400000, o = 0;
	char *text = malloc(cap), path[64];
	o += (size_t)snprintf(text + o, cap - o, "time,load1\n");
	/* 2000 rows from t 100000 at 10 ms, then the clock steps back: 500 rows
	 * from t 1000, then a backlog row far ahead and one far behind. */
	for (int i = 0; i < 2000; i++)
		o += (size_t)snprintf(text + o, cap - o, "%d,1\n", 100000 + 10 * i);
	for (int i = 0; i < 500; i++)
		o += (size_t)snprintf(text + o, cap - o, "%d,2\n", 1000 + 10 * i);
	o += (size_t)snprintf(text + o, cap - o, "900000,3\n500,4\n");
	write_file(path, text, o);
	struct csvread *r = csvread_open(AT_FDCWD, path);
	CHECK(r != NULL);
	if (!r)
		goto out;
	struct series_filter f = {1, 0, NULL, 0, 0};
	struct series_range rg = {1000, 5990, 1};
	struct series_buckets bk;
	uint64_t rows = 0;
	/* Only the stepped-back rows lie in the range. */
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 0, &rg, &f, &bk, &rows) == 0);
	CHECK(rows == 500 && bk.b[0].count == 500 && bk.b[0].min == 2 && bk.b[0].max == 2);
	series_buckets_free(&bk);
	/* Everything: every row once, the late backlog rows too. */
	rg = (struct series_range){0, 1000000, 1};
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 0, &rg, &f, &bk, &rows) == 0 && rows == 2502);
	CHECK(bk.b[0].min == 1 && bk.b[0].max == 4);
	series_buckets_free(&bk);
	/* A range from the middle of the first run: the rows before it in
	 * the file are not in it, the ones after are. */
	rg = (struct series_range){110000, 900000, 1};
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 0, &rg, &f, &bk, &rows) == 0 && rows == 1001);
	series_buckets_free(&bk);
	csvread_close(r);
out:
	unlink(path);
	free(text);
}

/* A reader over memory reads as one over a file: header, lines, seek,
 * tail; a last line without its newline is not a row. */
static void test_mem_reader(void)
{
	size_t n = 20000, len;
	char *text = make_rows(n, 1000, &len);
	struct csvread *r = csvread_mem(text, len);
	CHECK(r != NULL);
	if (!r)
		goto out;
	CHECK_STR(csvread_header(r), "time,load1,load5");
	int ok = 1;
	for (uint64_t from = 995; from < 1000 + 10 * n; from += 997)
		ok &= row_at(r, csvread_seek(r, from)) == (long)((from - 1000 + 9) / 10);
	CHECK(ok);
	CHECK(row_at(r, csvread_tail(r, 3)) == (long)(n - 3));
	struct series_range rg = {1100, 1290, 2};
	struct series_filter f = {1, 0, NULL, 0, 0};
	struct series_buckets bk;
	uint64_t rows, rows2;
	CHECK(series_buckets_init(&bk, &rg) == 0);
	CHECK(series_read(r, 1, &rg, &f, &bk, &rows) == 0 && rows == 20);
	CHECK(bk.b[0].count == 10 && bk.b[0].min == 10 && bk.b[0].max == 19);
	CHECK(series_read(r, 0, &rg, &f, &bk, &rows2) == 0 && rows2 == 20);
	CHECK(bk.b[0].count == 20);
	series_buckets_free(&bk);
	csvread_close(r);
	r = csvread_mem("", 0);
	CHECK(r && csvread_header(r)[0] == '\0' && csvread_tail(r, 2) == csvread_data(r));
	csvread_close(r);
out:
	free(text);
}

/* Rollup headers: count, then each field's min, avg and max. */
static void test_rollup_columns(void)
{
	struct series_columns c;
	struct series_filter f;
	CHECK(series_rollup_parse("time,count,load1.min,load1.avg,load1.max,load5.min,load5.avg,"
	                          "load5.max",
	                          -1, &c) == 0);
	CHECK(c.rollup && c.inst_key[0] == '\0' && c.nfields == 2);
	CHECK_STR(c.fields[1], "load5");
	CHECK(series_columns_find(&c, "load1") == 2 && series_columns_find(&c, "load5") == 5);
	CHECK(series_filter_init(&f, &c, "load5", NULL) == 0 && f.count_column == 1 &&
	      f.column == 5 && !f.instanced);
	CHECK(series_filter_init(&f, &c, "load15", NULL) == -1);
	CHECK(series_rollup_parse("time,mount,count,used.min,used.avg,used.max", -1, &c) == 0);
	CHECK_STR(c.inst_key, "mount");
	CHECK(series_filter_init(&f, &c, "used", "/") == 0 && f.count_column == 2 &&
	      f.column == 3 && f.instanced);
	CHECK(series_rollup_parse("time,count,a.min,a.max,a.avg", -1, &c) == -1);
	CHECK(series_rollup_parse("time,count,a.min,a.avg", -1, &c) == -1);
	CHECK(series_rollup_parse("time,count,a.min,b.avg,a.max", -1, &c) == -1);
	CHECK(series_rollup_parse("time,count", -1, &c) == -1);
	CHECK(series_rollup_parse("time,load1,load5", -1, &c) == -1);
	CHECK(series_rollup_parse("time,mount,a.min,a.avg,a.max", -1, &c) == -1);
	CHECK(series_rollup_parse("time,count,A.min,A.avg,A.max", -1, &c) == -1);
	/* Raw columns of the same file are not a rollup. */
	CHECK(series_columns_parse("time,load1,load5", -1, &c) == 0 && !c.rollup);
}

/* Rows of one bucket merge: counts add, min of the minimums, max of the
 * maximums, avg weighted by count; a row without a value adds its count
 * only. */
static void test_rollup_merge(void)
{
	struct series_rollup a = {2, 2, 1, 2, 3}, b = {6, 6, 0, 4, 10},
	                     none = {5, 0, NAN, NAN, NAN};
	series_rollup_merge(&a, &b);
	CHECK(a.count == 8 && a.weight == 8 && a.min == 0 && a.max == 10);
	CHECK_NEAR(a.avg, (2 * 2 + 6 * 4) / 8.0, 1e-12);
	series_rollup_merge(&a, &none);
	CHECK(a.count == 13 && a.weight == 8 && a.min == 0 && a.max == 10);
	series_rollup_merge(&none, &b);
	CHECK(none.count == 11 && none.weight == 6 && none.avg == 4 && none.min == 0);
	/* Large values: the weighted mean does not overflow. */
	struct series_rollup x = {3, 3, 1e308, 1e308, 1e308}, y = {1, 1, 1e308, 1e308, 1e308};
	series_rollup_merge(&x, &y);
	CHECK(x.avg == 1e308);
	char buf[] = "1000,/,4,1,2.5,inf";
	char *fields[8];
	char out[sizeof buf];
	struct series_filter f = {3, 1, NULL, 2, 0};
	struct series_rollup v;
	int n = csvread_split(buf, strlen(buf), out, fields, 8);
	CHECK(series_rollup_get(fields, n, &f, &v) == 1 && v.count == 4 && v.weight == 4);
	CHECK(v.min == 1 && v.avg == 2.5 && isinf(v.max));
	char empty[] = "1000,/,4,,,";
	n = csvread_split(empty, strlen(empty), out, fields, 8);
	CHECK(series_rollup_get(fields, n, &f, &v) == 0 && v.count == 4 && v.weight == 0);
	char bad[] = "1000,/,x,1,2,3";
	n = csvread_split(bad, strlen(bad), out, fields, 8);
	CHECK(series_rollup_get(fields, n, &f, &v) == -1);
	char zero[] = "1000,/,0,1,2,3";
	n = csvread_split(zero, strlen(zero), out, fields, 8);
	CHECK(series_rollup_get(fields, n, &f, &v) == -1);
	char short_row[] = "1000,/,3,1,2";
	n = csvread_split(short_row, strlen(short_row), out, fields, 8);
	CHECK(series_rollup_get(fields, n, &f, &v) == -1);
}

/* A minute file with a bucket written twice (out of order) and an
 * instance that is filtered out: the repeated bucket merges into one
 * point, and rows count the raw rows summarised. */
static void test_rollup_read(void)
{
	const char *text = "time,zone,count,c.min,c.avg,c.max\n"
	                   "60000,cpu,6,40,45,50\n"
	                   "120000,cpu,6,41,42,43\n"
	                   "60000,gpu,6,90,90,90\n"
	                   "60000,cpu,2,30,60,70\n"
	                   "180000,cpu,3,,,\n";
	struct csvread *r = csvread_mem(text, strlen(text));
	struct series_columns c;
	struct series_filter f;
	CHECK(r && series_rollup_parse(csvread_header(r), -1, &c) == 0);
	CHECK(series_filter_init(&f, &c, "c", "cpu") == 0);
	struct series_range rg = {60000, 239999, 3}; /* buckets of a minute */
	struct series_buckets bk;
	uint64_t rows;
	CHECK(series_buckets_init(&bk, &rg) == 0 && bk.width == 60000);
	CHECK(series_read(r, 0, &rg, &f, &bk, &rows) == 0 && rows == 17);
	CHECK(bk.b[0].count == 8 && bk.b[0].min == 30 && bk.b[0].max == 70);
	CHECK_NEAR(series_bucket_avg(&bk.b[0]), (6 * 45 + 2 * 60) / 8.0, 1e-12);
	CHECK(bk.b[1].count == 6 && series_bucket_avg(&bk.b[1]) == 42);
	CHECK(bk.b[2].count == 0);
	series_buckets_free(&bk);
	csvread_close(r);
}

/* Every test, then the tally. */
/* Plain decimals read back bit for bit what strtod reads, signs, zeros
 * and 15, 16 and 17 digits included. */
static void test_value_like_strtod(void)
{
	static const char *const fixed[] = {"0",
	                                    "-0",
	                                    "0.0",
	                                    "-0.000",
	                                    "5.",
	                                    "007",
	                                    "0.05",
	                                    "123456789012345",
	                                    "1234567890123456",
	                                    "0.1",
	                                    "0.3",
	                                    "0.30000000000000004",
	                                    "9007199254740993",
	                                    "1e22",
	                                    "-2.5e-3",
	                                    "0.0000000000000000000000012"};
	char buf[64];
	double a, b;
	int same = 1;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		b = strtod(fixed[i], NULL);
		same &= series_value(fixed[i], &a) == 0 && memcmp(&a, &b, sizeof a) == 0;
	}
	CHECK(same);
	unsigned seed = 12345;
	same = 1;
	for (int i = 0; i < 200000; i++) {
		seed = seed * 1103515245u + 12345u;
		int digits = 1 + (int)(seed >> 16) % 17, point = (int)(seed >> 8) % (digits + 1);
		size_t o = 0;
		if (seed & 1)
			buf[o++] = '-';
		for (int d = 0; d < digits; d++) {
			if (d == point && d > 0)
				buf[o++] = '.';
			seed = seed * 1103515245u + 12345u;
			buf[o++] = (char)('0' + (seed >> 16) % 10);
		}
		buf[o] = '\0';
		b = strtod(buf, NULL);
		if (series_value(buf, &a) != 0 || memcmp(&a, &b, sizeof a) != 0) {
			fprintf(stderr, "series_value(%s) differs from strtod\n", buf);
			same = 0;
			break;
		}
	}
	CHECK(same);
}

int main(void)
{
	test_split();
	test_value_like_strtod();
	test_time();
	test_columns();
	test_range();
	test_buckets();
	test_value();
	test_bucket_mean();
	test_seek();
	test_read();
	test_instances();
	test_short_files();
	test_out_of_order_rows_read_back();
	test_mem_reader();
	test_rollup_columns();
	test_rollup_merge();
	test_rollup_read();
	return check_report("series");
}
