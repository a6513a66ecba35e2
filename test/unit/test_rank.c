/* Fleet ranking: the query's parameters and limits, a host's value from
 * its coarsest tier (hour rollups with a bucket written twice, minute
 * rollups, raw rows) with the instance and bucket it came from, and the
 * order for each aggregate. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "rank.h"
#include "safefs.h"
#include "zstdio.h"

#define NOW 1704067200000ull /* 2024-01-01T00:00:00Z */
#define H   3600000ull

static char top[64];

/* Defaults, units, and every refusal. */
static void test_query(void)
{
	struct rank_query q;
	const char *err = NULL;
	CHECK(rank_query_parse(NULL, NULL, NULL, NULL, NULL, NOW, &q, &err) == 0);
	CHECK(q.to == NOW && q.from == NOW - 24 * H && q.agg == RANK_MAX && q.top == 20);
	CHECK(rank_query_parse("7d", NULL, NULL, "min", "1", NOW, &q, &err) == 0);
	CHECK(q.from == NOW - 7 * 24 * H && q.agg == RANK_MIN && q.top == 1);
	CHECK(rank_query_parse("90s", NULL, NULL, "avg", "1000", NOW, &q, &err) == 0);
	CHECK(q.from == NOW - 90000 && q.agg == RANK_AVG && q.top == 1000);
	CHECK(rank_query_parse("15m", NULL, NULL, NULL, NULL, NOW, &q, &err) == 0 &&
	      q.from == NOW - 900000);
	CHECK(rank_query_parse("400d", NULL, NULL, NULL, NULL, NOW, &q, &err) == 0);
	CHECK(rank_query_parse("9600h", NULL, NULL, NULL, NULL, NOW, &q, &err) == 0);
	CHECK(rank_query_parse(NULL, "1000", "5000", NULL, NULL, NOW, &q, &err) == 0);
	CHECK(q.from == 1000 && q.to == 5000);
	CHECK(rank_query_parse(NULL, NULL, "100000000", NULL, NULL, NOW, &q, &err) == 0);
	CHECK(q.from == 100000000 - 24 * H);
	const char *bad_since[] = {"",   "d",   "0d",   "401d", "9601h", "7",
	                           "7w", "-1d", "1.5h", " 1h",  "1hh",   "9999999999999d"};
	for (size_t i = 0; i < sizeof bad_since / sizeof bad_since[0]; i++) {
		err = NULL;
		CHECK(rank_query_parse(bad_since[i], NULL, NULL, NULL, NULL, NOW, &q, &err) == -1 &&
		      err && strstr(err, "since"));
	}
	CHECK(rank_query_parse("1h", "5", NULL, NULL, NULL, NOW, &q, &err) == -1);
	CHECK(rank_query_parse(NULL, "6", "5", NULL, NULL, NOW, &q, &err) == -1);
	CHECK(rank_query_parse(NULL, "0", "34560000001", NULL, NULL, NOW, &q, &err) == -1);
	CHECK(rank_query_parse(NULL, "x", NULL, NULL, NULL, NOW, &q, &err) == -1);
	CHECK(rank_query_parse(NULL, NULL, NULL, "sum", NULL, NOW, &q, &err) == -1 &&
	      strstr(err, "agg"));
	CHECK(rank_query_parse(NULL, NULL, NULL, "MAX", NULL, NOW, &q, &err) == -1);
	const char *bad_top[] = {"0", "1001", "", "x", "-1", "10000", "1.0"};
	for (size_t i = 0; i < sizeof bad_top / sizeof bad_top[0]; i++)
		CHECK(rank_query_parse(NULL, NULL, NULL, NULL, bad_top[i], NOW, &q, &err) == -1 &&
		      strstr(err, "top"));
}

/* A host folder under top with raw rows and, when asked, rollups. */
static int host(int tfd, const char *name, const char *raw, const char *m1, const char *h1)
{
	int h = safefs_dir_open(tfd, name, 1);
	CHECK(h >= 0);
	check_put(h, "temp.csv", raw);
	if (m1) {
		int d = safefs_dir_open(h, "1m", 1);
		check_put(d, "temp.csv", m1);
		close(d);
	}
	if (h1) {
		int d = safefs_dir_open(h, "1h", 1);
		int seg = safefs_dir_open(d, "temp", 1);
		CHECK(zstdio_save(seg, "2023-12.1704067200000.csv.zst", h1, strlen(h1)) == 0);
		close(seg);
		close(d);
	}
	return h;
}

/* Each host's value by each aggregate, from its coarsest tier. */
static void test_hosts(void)
{
	int tfd = safefs_dir_open(AT_FDCWD, top, 0);
	char raw[512], hour[512];
	/* a: hour rollups, the 22:00 cpu bucket written twice; raw rows that
	 * the hour tier hides. */
	snprintf(raw, sizeof raw, "time,zone,c\n%llu,cpu,1000\n", NOW - H);
	snprintf(hour, sizeof hour,
	         "time,zone,count,c.min,c.avg,c.max\n"
	         "%llu,cpu,360,40,50,60\n%llu,gpu,360,30,35,70\n%llu,cpu,120,20,80,90\n"
	         "%llu,cpu,100,,,\n",
	         NOW - 2 * H, NOW - 2 * H, NOW - 2 * H, NOW - 3 * H);
	int a = host(tfd, "a", raw, NULL, hour);
	/* b: minute rollups only. */
	snprintf(hour, sizeof hour, "time,zone,count,c.min,c.avg,c.max\n%llu,cpu,6,10,55,65\n",
	         NOW - 60000);
	int b = host(tfd, "b", raw, hour, NULL);
	/* c: raw rows only, one of them out of order and one outside. */
	snprintf(raw, sizeof raw,
	         "time,zone,c\n%llu,cpu,50\n%llu,cpu,75\n%llu,cpu,5\n%llu,cpu,99\n", NOW - 1000,
	         NOW - 2000, NOW - 3000, NOW - 48 * H);
	int c = host(tfd, "c", raw, NULL, NULL);
	struct rank_query q;
	const char *err;
	struct rank_entry e[4];
	CHECK(rank_query_parse(NULL, NULL, NULL, NULL, NULL, NOW, &q, &err) == 0);
	CHECK(rank_host(a, "a", "temp", "c", &q, &e[0]) == 1);
	CHECK(e[0].tier == TIER_1H && e[0].value == 90 && e[0].time == NOW - 2 * H);
	CHECK(e[0].instanced && strcmp(e[0].instance, "cpu") == 0 && e[0].rows == 940);
	CHECK(rank_host(b, "b", "temp", "c", &q, &e[1]) == 1);
	CHECK(e[1].tier == TIER_1M && e[1].value == 65 && e[1].time == NOW - 60000);
	CHECK(rank_host(c, "c", "temp", "c", &q, &e[2]) == 1);
	CHECK(e[2].tier == TIER_RAW && e[2].value == 75 && e[2].time == NOW - 2000 &&
	      e[2].rows == 3);
	CHECK(rank_host(c, "c", "temp", "nope", &q, &e[3]) == 0);
	CHECK(rank_host(c, "c", "mem", "c", &q, &e[3]) == 0);
	rank_sort(e, 3, RANK_MAX);
	CHECK_STR(e[0].host, "a");
	CHECK_STR(e[1].host, "c");
	CHECK_STR(e[2].host, "b");
	/* min: the lowest minimum, ascending. */
	q.agg = RANK_MIN;
	CHECK(rank_host(a, "a", "temp", "c", &q, &e[0]) == 1 && e[0].value == 20);
	CHECK(rank_host(b, "b", "temp", "c", &q, &e[1]) == 1 && e[1].value == 10);
	CHECK(rank_host(c, "c", "temp", "c", &q, &e[2]) == 1 && e[2].value == 5);
	rank_sort(e, 3, RANK_MIN);
	CHECK_STR(e[0].host, "c");
	CHECK_STR(e[2].host, "a");
	/* avg: the instance with the highest count-weighted mean; cpu's two
	 * rows merge to (360 * 50 + 120 * 80) / 480 = 57.5. */
	q.agg = RANK_AVG;
	CHECK(rank_host(a, "a", "temp", "c", &q, &e[0]) == 1);
	CHECK_NEAR(e[0].value, 57.5, 1e-12);
	CHECK_STR(e[0].instance, "cpu");
	CHECK(rank_host(c, "c", "temp", "c", &q, &e[2]) == 1);
	CHECK_NEAR(e[2].value, 130.0 / 3, 1e-12);
	/* A range the rollups miss. */
	CHECK(rank_query_parse("1s", NULL, NULL, NULL, NULL, NOW - 10 * H, &q, &err) == 0);
	CHECK(rank_host(a, "a", "temp", "c", &q, &e[0]) == 0);
	/* Ties by name, NaN last. */
	struct rank_entry t[3] = {
	    {.host = "z", .value = 1}, {.host = "y", .value = NAN}, {.host = "x", .value = 1}};
	rank_sort(t, 3, RANK_MAX);
	CHECK_STR(t[0].host, "x");
	CHECK_STR(t[1].host, "z");
	CHECK_STR(t[2].host, "y");
	close(a);
	close(b);
	close(c);
	close(tfd);
}

/* Every test, then the tally. */
int main(void)
{
	snprintf(top, sizeof top, "/tmp/pimon-rank-XXXXXX");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	test_query();
	test_hosts();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", top);
	CHECK(system(cmd) == 0);
	return check_report("rank");
}
