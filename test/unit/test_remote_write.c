/* remote_write's pure parts: cursor files round-trip (and bad ones are
 * refused), and a request decodes to series with sorted labels and
 * samples in time order. */
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "remote.pb-c.h"
#include "rw_cursor.h"
#include "rw_encode.h"
#include "safefs.h"

/* Format, parse, save and load give the cursors back; junk is refused. */
static void test_cursor_round_trip(void)
{
	struct rw_cursor c[3] = {
	    {.metric = "cpu", .closed = 1, .ms = 1764633600123ull, .off = 0},
	    {.metric = "disk", .closed = 0, .ino = 987654321ull, .ms = 17, .off = 4096},
	    {.metric = "abcdefghijklmnopqrstuvwxyz012345",
	     .closed = 0,
	     .ino = 1,
	     .ms = 0,
	     .off = UINT64_MAX},
	};
	char text[1024];
	size_t len = rw_cursor_format(c, 3, text, sizeof text);
	CHECK(len > 0);
	struct rw_cursor back[4];
	size_t n = 0;
	CHECK(rw_cursor_parse(text, len, back, 4, &n) == 0 && n == 3);
	CHECK(memcmp(back, c, sizeof c) == 0);
	CHECK(rw_cursor_parse(text, len, back, 2, &n) < 0); /* more than max */
	CHECK(rw_cursor_format(c, 3, text, 20) == 0);       /* does not fit */
	static const char *const bad[] = {
	    "pimon-rw-cursor 2\n",
	    "pimon-rw-cursor 1\ncpu closed 1\n",
	    "pimon-rw-cursor 1\ncpu closed 1 2",
	    "pimon-rw-cursor 1\ncpu shut 1 2\n",
	    "pimon-rw-cursor 1\nCPU closed 1 2\n",
	    "pimon-rw-cursor 1\ncpu open 1 2 x\n",
	    "pimon-rw-cursor 1\ncpu closed 1 99999999999999999999\n",
	    "pimon-rw-cursor 1\ncpu closed 1 2\ncpu closed 3 4\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(rw_cursor_parse(bad[i], strlen(bad[i]), back, 4, &n) < 0);
	char dir[] = "/tmp/pimon-rwcur-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	int dfd = safefs_dir_open(AT_FDCWD, dir, 0);
	CHECK(dfd >= 0);
	CHECK(rw_cursor_load(dfd, "h1", back, 4, &n) == 1 && n == 0);
	CHECK(rw_cursor_save(dfd, "h1", c, 3) == 0);
	CHECK(rw_cursor_save(dfd, "h1", c, 2) == 0); /* replaced whole */
	CHECK(rw_cursor_load(dfd, "h1", back, 4, &n) == 0 && n == 2);
	CHECK(memcmp(back, c, 2 * sizeof c[0]) == 0);
	CHECK(faccessat(dfd, "h1.cursor.tmp", F_OK, 0) < 0);
	check_put(dfd, "h2.cursor", "garbage\n");
	CHECK(rw_cursor_load(dfd, "h2", back, 4, &n) < 0);
	CHECK(unlinkat(dfd, "h1.cursor", 0) == 0 && unlinkat(dfd, "h2.cursor", 0) == 0);
	close(dfd);
	CHECK(rmdir(dir) == 0);
}

/* A batch decodes to its series: labels sorted by name, samples in time
 * order (equal times in the order added), the stale marker's bits kept. */
static void test_encode(void)
{
	struct rw_batch *b = rw_batch_new();
	CHECK(b != NULL);
	struct rw_label a[] = {{"job", "pimon"}, {"__name__", "pimon_cpu_usage"}, {"host", "h1"}};
	struct rw_label d[] = {
	    {"mount", "/"}, {"host", "h1"}, {"__name__", "pimon_disk_used"}, {"job", "pimon"}};
	struct rw_label a2[] = {{"host", "h1"}, {"__name__", "pimon_cpu_usage"}, {"job", "pimon"}};
	CHECK(rw_batch_add(b, a, 3, 3000, 3.0) == 0);
	CHECK(rw_batch_add(b, d, 4, 1000, 10.0) == 0);
	CHECK(rw_batch_add(b, a2, 3, 1000, 1.0) == 0); /* the same series, earlier */
	CHECK(rw_batch_add(b, a, 3, 1000, 1.5) == 0);  /* the same time again */
	CHECK(rw_batch_add(b, d, 4, 2000, rw_stale_nan()) == 0);
	CHECK(rw_batch_samples(b) == 5);
	int64_t first, last;
	rw_batch_span(b, &first, &last);
	CHECK(first == 1000 && last == 3000);
	char *out = NULL;
	size_t len = 0;
	CHECK(rw_batch_encode(b, &out, &len) == 0 && out && len > 0);
	size_t rawlen = 0;
	CHECK(snappy_uncompressed_length(out, len, &rawlen) == SNAPPY_OK);
	char *raw = malloc(rawlen);
	CHECK(raw && snappy_uncompress(out, len, raw, &rawlen) == SNAPPY_OK);
	Prometheus__WriteRequest *req =
	    prometheus__write_request__unpack(NULL, rawlen, (const uint8_t *)raw);
	CHECK(req && req->n_timeseries == 2);
	for (size_t i = 0; req && i < req->n_timeseries; i++) {
		Prometheus__TimeSeries *ts = req->timeseries[i];
		for (size_t j = 1; j < ts->n_labels; j++)
			CHECK(strcmp(ts->labels[j - 1]->name, ts->labels[j]->name) < 0);
		for (size_t j = 1; j < ts->n_samples; j++)
			CHECK(ts->samples[j - 1]->timestamp <= ts->samples[j]->timestamp);
	}
	if (req && req->n_timeseries == 2) {
		Prometheus__TimeSeries *cpu = req->timeseries[0], *disk = req->timeseries[1];
		CHECK(cpu->n_labels == 3 && disk->n_labels == 4);
		CHECK_STR(cpu->labels[0]->name, "__name__");
		CHECK_STR(disk->labels[2]->name, "job");
		CHECK_STR(disk->labels[3]->value, "/");
		CHECK(cpu->n_samples == 3 && cpu->samples[0]->value == 1.0 &&
		      cpu->samples[1]->value == 1.5 && cpu->samples[2]->value == 3.0);
		uint64_t bits;
		memcpy(&bits, &disk->samples[1]->value, sizeof bits);
		CHECK(disk->n_samples == 2 && bits == RW_STALE_NAN_BITS);
	}
	prometheus__write_request__free_unpacked(req, NULL);
	free(raw);
	free(out);
	rw_batch_reset(b);
	CHECK(rw_batch_samples(b) == 0);
	rw_batch_free(b);
}

int main(void)
{
	test_cursor_round_trip();
	test_encode();
	return check_report("remote_write");
}
