/* Unit tests for the collectors that explain a sick Pi: diskio, vmstat,
 * pressure, clock, wifi, cpufreq and host, over the Pi 4 and Pi 5 fixture
 * trees, with missing files, kernels without PSI, counters at 2^64-1 and
 * counters going back. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include "check.h"
#include "collect.h"
#include "collect_int.h"
#include "collect_parse.h"
#include "log.h"
#include "util.h"

#define EPS 1e-6

static const char *fixtures;
static char buf_a[64 * 1024];
static char buf_b[64 * 1024];

/* Read FIXTURES/rel into buf; aborts the test run when it is missing. */
static const char *fixture_read(const char *rel, char *buf, size_t size)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", fixtures, rel);
	if (util_read_file(path, buf, size) < 0) {
		fprintf(stderr, "cannot read fixture %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return buf;
}

/* Path of a fixture folder, in a static buffer per slot. */
static char *fixture_path(int slot, const char *rel)
{
	static char paths[4][1024];
	snprintf(paths[slot], sizeof paths[slot], "%s/%s", fixtures, rel);
	return paths[slot];
}

/* A collector context over the given roots, as collect_create makes one. */
static int ctx_open(struct collect_ctx *ctx, char *proc, char *sys)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->proc = proc;
	ctx->sys = sys;
	ctx->size = COLLECT_BUF_SIZE;
	ctx->buf = malloc(ctx->size);
	return ctx->buf ? 0 : -1;
}

/* Close what ctx_open and the reads opened. */
static void ctx_close(struct collect_ctx *ctx)
{
	collect_ctx_close_kept(ctx);
	free(ctx->buf);
	ctx->buf = NULL;
}

/* Run one collector as collect_run does, leaving its rows finished. */
static int run_collector(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	rowset_reset(&col->rows);
	int rc = col->ops->run(col, ctx, now_ms);
	rowset_finish(&col->rows);
	return rc;
}

/* The row of col whose instance is inst, or NULL. */
static const double *row_of(const struct collector *col, const char *inst)
{
	for (uint32_t i = 0; i < col->rows.group.nrows; i++) {
		if (strcmp(col->rows.group.rows[i].instance, inst) == 0)
			return col->rows.group.rows[i].values;
	}
	return NULL;
}

/* Whole devices and partitions by the kernel's names; loop, ram, zram out. */
static void test_diskio_names(void)
{
	const char *whole[] = {"mmcblk0", "mmcblk1", "nvme0n1",     "nvme1n12", "sda",
	                       "sdab",    "vda",     "xvdb",        "md0",      "dm-0",
	                       "sr0",     "hda",     "mmcblk0boot0"};
	const char *parts[] = {"mmcblk0p1", "mmcblk0p12", "nvme0n1p1", "sda1",
	                       "sdab15",    "vda2",       "xvdb1",     "hda3"};
	for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
		CHECK(!diskio_partition(whole[i]));
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		CHECK(diskio_partition(parts[i]));
	CHECK(diskio_virtual("loop0") && diskio_virtual("ram15") && diskio_virtual("zram0"));
	CHECK(!diskio_virtual("mmcblk0") && !diskio_virtual("loopy") && !diskio_virtual("ramdisk"));
}

/* The Pi 4's SD card alone by default, its partitions when asked. */
static void test_diskio_parse_pi4(void)
{
	struct diskio_dev d[8];
	const char *buf = fixture_read("pi4/proc/diskstats", buf_a, sizeof buf_a);
	CHECK(diskio_parse(buf, 0, d, 8) == 1);
	CHECK_STR(d[0].name, "mmcblk0");
	CHECK(d[0].c[DISKIO_READS] == 52815 && d[0].c[DISKIO_READ_SECTORS] == 3312058);
	CHECK(d[0].c[DISKIO_READ_MS] == 211880 && d[0].c[DISKIO_WRITES] == 96391);
	CHECK(d[0].c[DISKIO_WRITE_SECTORS] == 4613992 && d[0].c[DISKIO_WRITE_MS] == 1124104);
	CHECK(d[0].c[DISKIO_IO_MS] == 395604);
	CHECK(diskio_parse(buf, 1, d, 8) == 3);
	CHECK_STR(d[1].name, "mmcblk0p1");
	CHECK_STR(d[2].name, "mmcblk0p2");
	/* Too small an array: the count still tells how many there are. */
	CHECK(diskio_parse(buf, 1, d, 1) == 3);
	/* Short lines, lines without a name and overlong names are skipped. */
	CHECK(diskio_parse("8 0 sda 1 2 3\n", 0, d, 8) == 0);
	CHECK(diskio_parse("8 0\n\n junk\n", 0, d, 8) == 0);
	CHECK(
	    diskio_parse("8 0 sdaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 2 3 4 5 6 7 8 9 10 11\n",
	                 0, d, 8) == 0);
	CHECK(diskio_parse("", 0, d, 8) == 0);
}

/* Rates over the Pi 4's ten seconds: SD card 90 % busy, 20.8 ms a request. */
static void test_diskio_sample_pi4(void)
{
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &diskio_ops) == 0);
	CHECK(col.rows.group.nfields == DISKIO_NFIELDS);
	CHECK_STR(col.rows.group.inst_key, "device");
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, fixture_read("pi4/proc/diskstats", buf_a, sizeof buf_a), 0, 1000,
	                    1) == 0);
	CHECK(col.rows.group.nrows == 0); /* a rate needs two samples */
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, fixture_read("pi4-next/proc/diskstats", buf_b, sizeof buf_b), 0,
	                    11000, 2) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 1);
	const double *v = row_of(&col, "mmcblk0");
	CHECK(v != NULL);
	if (v) {
		CHECK_NEAR(v[0], 1048576.0, EPS);                /* read_bytes_s */
		CHECK_NEAR(v[1], 2097152.0, EPS);                /* write_bytes_s */
		CHECK_NEAR(v[2], 10.0, EPS);                     /* reads_s */
		CHECK_NEAR(v[3], 50.0, EPS);                     /* writes_s */
		CHECK_NEAR(v[4], 90.0, EPS);                     /* busy_pct */
		CHECK_NEAR(v[5], 12500.0 / 600.0 / 1000.0, EPS); /* wait_seconds */
		CHECK_NEAR(v[6], 4654952.0 * 512.0, EPS);        /* written_bytes */
		CHECK(col.rows.group.rows[0].time_ms == 2);
	}
	/* The same sample again at the same moment: no row, prev kept. */
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, buf_b, 0, 11000, 3) == 0);
	CHECK(col.rows.group.nrows == 0);
	collector_fini(&col);
}

/* Pi 5: NVMe rates; a device at 2^64-1 that wraps to 3 and one whose
 * counters go back give no row for that interval, then rates again. */
static void test_diskio_pi5_wrap_and_backwards(void)
{
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &diskio_ops) == 0);
	const char *first = fixture_read("pi5/proc/diskstats", buf_a, sizeof buf_a);
	const char *next = fixture_read("pi5-next/proc/diskstats", buf_b, sizeof buf_b);
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, first, 0, 0, 1) == 0);
	/* Counters staying at 2^64-1: zero rates, a finite written_bytes. */
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, first, 0, 5000, 2) == 0);
	rowset_finish(&col.rows);
	const double *sda = row_of(&col, "sda");
	CHECK(sda != NULL);
	if (sda) {
		for (int i = 0; i < 6; i++)
			CHECK(sda[i] == 0.0);
		CHECK(isfinite(sda[6]) && sda[6] > 9e21);
	}
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, next, 0, 15000, 3) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 2); /* nvme0n1 and mmcblk0 */
	CHECK(row_of(&col, "sda") == NULL && row_of(&col, "dm-0") == NULL);
	CHECK(row_of(&col, "nvme0n1p1") == NULL && row_of(&col, "loop0") == NULL);
	const double *nvme = row_of(&col, "nvme0n1");
	CHECK(nvme != NULL);
	if (nvme) {
		CHECK_NEAR(nvme[0], 2048000.0, EPS);
		CHECK_NEAR(nvme[1], 10240000.0, EPS);
		CHECK_NEAR(nvme[2], 100.0, EPS);
		CHECK_NEAR(nvme[3], 500.0, EPS);
		CHECK_NEAR(nvme[4], 10.0, EPS);
		CHECK_NEAR(nvme[5], 5500.0 / 6000.0 / 1000.0, EPS);
		CHECK_NEAR(nvme[6], 37461208.0 * 512.0, EPS);
	}
	const double *sd = row_of(&col, "mmcblk0");
	CHECK(sd && sd[0] == 0.0 && sd[4] == 0.0 && sd[5] == 0.0);
	/* From the wrapped sample on, sda and dm-0 have rates again. */
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, next, 0, 25000, 4) == 0);
	rowset_finish(&col.rows);
	CHECK(row_of(&col, "sda") != NULL && row_of(&col, "dm-0") != NULL);
	collector_fini(&col);
}

/* With agent.diskio.partitions set, partitions get rows of their own. */
static void test_diskio_partitions(void)
{
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &diskio_ops) == 0);
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, fixture_read("pi4/proc/diskstats", buf_a, sizeof buf_a), 1, 0,
	                    1) == 0);
	rowset_reset(&col.rows);
	CHECK(diskio_sample(&col, fixture_read("pi4-next/proc/diskstats", buf_b, sizeof buf_b), 1,
	                    10000, 2) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 3);
	const double *p2 = row_of(&col, "mmcblk0p2");
	CHECK(p2 && row_of(&col, "mmcblk0") && row_of(&col, "mmcblk0p1"));
	if (p2)
		CHECK_NEAR(p2[1], 40960.0 * 512.0 / 10.0, EPS);
	CHECK(row_of(&col, "zram0") == NULL && row_of(&col, "loop0") == NULL);
	collector_fini(&col);
}

/* busy_pct is capped at 100 when io ticks outrun the wall clock. */
static void test_diskio_rates_cap(void)
{
	struct diskio_dev a = {"sda", {0}}, b = {"sda", {0}};
	double v[DISKIO_NFIELDS];
	b.c[DISKIO_IO_MS] = 1500;
	CHECK(diskio_rates(&a, &b, 1000, v) == 0 && v[4] == 100.0 && v[5] == 0.0);
	a.c[DISKIO_READS] = 5;
	CHECK(diskio_rates(&a, &b, 1000, v) < 0);
}

/* No /proc/diskstats: a failure, warned once. */
static void test_diskio_missing(void)
{
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", "/nonexistent/pimon/sys") == 0);
	CHECK(collector_init(&col, &diskio_ops) == 0);
	CHECK(run_collector(&col, &ctx, 1) < 0 && col.warned && col.rows.group.nrows == 0);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Swap and fault rates, OOM kills so far and new, over the Pi 4's 10 s. */
static void test_vmstat(void)
{
	struct vmstat_counters a, b;
	double v[VMSTAT_NFIELDS];
	CHECK(vmstat_parse(fixture_read("pi4/proc/vmstat", buf_a, sizeof buf_a), &a) == 0);
	CHECK(a.c[VMSTAT_PSWPIN] == 120 && a.c[VMSTAT_PSWPOUT] == 480);
	CHECK(a.c[VMSTAT_PGMAJFAULT] == 6123 && a.c[VMSTAT_OOM_KILL] == 0);
	CHECK(a.present == (1u << VMSTAT_NCOUNTERS) - 1);
	CHECK(vmstat_parse(fixture_read("pi4-next/proc/vmstat", buf_b, sizeof buf_b), &b) == 0);
	vmstat_fields_of(&a, &b, 10000, v);
	CHECK_NEAR(v[0], 5.0, EPS);
	CHECK_NEAR(v[1], 40.0, EPS);
	CHECK_NEAR(v[2], 20.0, EPS);
	CHECK(v[3] == 1.0 && v[4] == 1.0);
	/* Going back (never without a reboot): NaN, not a huge number. */
	vmstat_fields_of(&b, &a, 10000, v);
	CHECK(isnan(v[0]) && isnan(v[1]) && isnan(v[2]) && v[3] == 0.0 && isnan(v[4]));
	/* A kernel before 4.13 has no oom_kill; "pswpin_x" is not pswpin. */
	CHECK(vmstat_parse("pswpin_x 9\npswpin 3\npswpout 4\npgmajfault 5\n", &a) == 0);
	CHECK(a.c[VMSTAT_PSWPIN] == 3 && !(a.present & 1u << VMSTAT_OOM_KILL));
	vmstat_fields_of(&a, &a, 1000, v);
	CHECK(v[0] == 0.0 && isnan(v[3]) && isnan(v[4]));
	CHECK(vmstat_parse("nr_free_pages 1\n", &a) < 0);
	CHECK(vmstat_parse("", &a) < 0);
}

/* The collector: first run nothing, then one row; junk fails. */
static void test_vmstat_sample(void)
{
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &vmstat_ops) == 0);
	rowset_reset(&col.rows);
	CHECK(vmstat_sample(&col, fixture_read("pi4/proc/vmstat", buf_a, sizeof buf_a), 0, 1) == 0);
	CHECK(col.rows.group.nrows == 0);
	rowset_reset(&col.rows);
	CHECK(vmstat_sample(&col, fixture_read("pi4-next/proc/vmstat", buf_b, sizeof buf_b), 10000,
	                    2) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1)
		CHECK(col.rows.group.rows[0].values[4] == 1.0);
	rowset_reset(&col.rows);
	CHECK(vmstat_sample(&col, "junk\n", 20000, 3) < 0 && col.warned);
	collector_fini(&col);
}

/* PSI lines: avg10, avg60 and total in seconds; cpu may lack "full". */
static void test_pressure_parse(void)
{
	double v[PRESSURE_NFIELDS];
	CHECK(pressure_parse(fixture_read("pi4/proc/pressure/io", buf_a, sizeof buf_a), v) == 0);
	CHECK_NEAR(v[0], 12.40, EPS);
	CHECK_NEAR(v[1], 8.31, EPS);
	CHECK_NEAR(v[2], 250.199812, EPS);
	CHECK_NEAR(v[3], 10.95, EPS);
	CHECK_NEAR(v[4], 7.02, EPS);
	CHECK_NEAR(v[5], 221.839403, EPS);
	CHECK(pressure_parse("some avg10=0.50 avg60=0.25 avg300=0.10 total=2000000\n", v) == 0);
	CHECK_NEAR(v[0], 0.5, EPS);
	CHECK_NEAR(v[2], 2.0, EPS);
	CHECK(isnan(v[3]) && isnan(v[4]) && isnan(v[5]));
	CHECK(pressure_parse("full avg10=0.50 avg60=0.25 avg300=0.10 total=2\n", v) < 0);
	CHECK(pressure_parse("some avg10=x\n", v) < 0);
	CHECK(pressure_parse("", v) < 0);
}

/* A row per resource on the Pi 4; a kernel without PSI gives none, no
 * failure. */
static void test_pressure_run(void)
{
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys")) == 0);
	CHECK(collector_init(&col, &pressure_ops) == 0);
	CHECK(run_collector(&col, &ctx, 7) == 0);
	CHECK(col.rows.group.nrows == 3);
	CHECK_STR(col.rows.group.inst_key, "resource");
	const double *cpu = row_of(&col, "cpu"), *mem = row_of(&col, "memory");
	CHECK(cpu && mem && row_of(&col, "io"));
	if (cpu && mem) {
		CHECK_NEAR(cpu[0], 1.52, EPS);
		CHECK_NEAR(cpu[2], 18.290442, EPS);
		CHECK_NEAR(mem[4], 0.08, EPS);
	}
	ctx_close(&ctx);
	CHECK(ctx_open(&ctx, fixture_path(0, "nothermal/proc"), fixture_path(1, "nothermal/sys")) ==
	      0);
	for (int i = 0; i < 2; i++) {
		CHECK(run_collector(&col, &ctx, 8) == 0);
		CHECK(col.rows.group.nrows == 0);
	}
	collector_fini(&col);
	ctx_close(&ctx);
}

/* synced from the status bits and the return code; errors in seconds. */
static void test_clock_fields(void)
{
	struct timex tx;
	double v[CLOCK_NFIELDS];
	memset(&tx, 0, sizeof tx);
	tx.esterror = 1500;
	tx.maxerror = 250000;
	tx.offset = -320;
	clock_fields_of(TIME_OK, &tx, v);
	CHECK(v[0] == 1.0);
	CHECK_NEAR(v[1], 0.0015, EPS);
	CHECK_NEAR(v[2], 0.25, EPS);
	CHECK_NEAR(v[3], -0.00032, EPS);
	clock_fields_of(TIME_ERROR, &tx, v);
	CHECK(v[0] == 0.0);
	tx.status = STA_UNSYNC;
	tx.maxerror = 16000000; /* the kernel's "never synchronised" */
	clock_fields_of(TIME_OK, &tx, v);
	CHECK(v[0] == 0.0 && v[2] == 16.0);
	tx.status = STA_NANO | STA_PLL;
	tx.offset = 2500000;
	clock_fields_of(TIME_OK, &tx, v);
	CHECK(v[0] == 1.0);
	CHECK_NEAR(v[3], 0.0025, EPS);
}

/* The collector asks this machine's kernel: one row, synced 0 or 1. */
static void test_clock_run(void)
{
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", "/nonexistent/pimon/sys") == 0);
	CHECK(collector_init(&col, &clock_ops) == 0);
	CHECK(run_collector(&col, &ctx, 3) == 0 && col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1) {
		double s = col.rows.group.rows[0].values[0];
		CHECK(s == 0.0 || s == 1.0);
		CHECK(col.rows.group.rows[0].values[2] >= 0.0);
	}
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Quality and dBm per interface; -256 is unknown, an unsigned byte level
 * is dBm + 256. */
static void test_wifi_parse(void)
{
	struct wifi_iface w[4];
	CHECK(wifi_parse(fixture_read("pi4/proc/net/wireless", buf_a, sizeof buf_a), w, 4) == 1);
	CHECK_STR(w[0].name, "wlan0");
	CHECK(w[0].v[0] == 46.0 && w[0].v[1] == -64.0 && isnan(w[0].v[2]));
	CHECK(wifi_parse(fixture_read("pi5/proc/net/wireless", buf_a, sizeof buf_a), w, 4) == 2);
	CHECK_STR(w[0].name, "wlan0");
	CHECK(w[0].v[0] == 70.0 && w[0].v[1] == -40.0);
	CHECK_STR(w[1].name, "wlp1s0");
	CHECK(w[1].v[0] == 30.0 && w[1].v[1] == -60.0 && w[1].v[2] == -95.0);
	CHECK(wifi_parse(fixture_read("pi5/proc/net/wireless", buf_a, sizeof buf_a), w, 1) == 2);
	/* Headers only (no interface up), or junk: nothing. */
	CHECK(wifi_parse("Inter-| sta-|   Quality        |\n face | tus | link level noise |\n", w,
	                 4) == 0);
	CHECK(wifi_parse(" wlan0: 0000 x\n", w, 4) == 0);
}

/* A row per interface on the Pi 4; none, and no failure, without the file. */
static void test_wifi_run(void)
{
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys")) == 0);
	CHECK(collector_init(&col, &wifi_ops) == 0);
	CHECK(run_collector(&col, &ctx, 4) == 0 && col.rows.group.nrows == 1);
	CHECK_STR(col.rows.group.inst_key, "iface");
	const double *w = row_of(&col, "wlan0");
	CHECK(w && w[1] == -64.0);
	ctx_close(&ctx);
	CHECK(ctx_open(&ctx, fixture_path(0, "nothermal/proc"), fixture_path(1, "nothermal/sys")) ==
	      0);
	CHECK(run_collector(&col, &ctx, 5) == 0 && col.rows.group.nrows == 0 && !col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Write text to dir/rel, making folders. 0 or -1. */
static int put(const char *dir, const char *rel, const char *text)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	if (util_mkdirs(path) < 0)
		return -1;
	*slash = '/';
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* Remove one entry of a temporary tree for nftw. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Frequencies in MHz per policy, in policy order; a policy that stops
 * reading is dropped until it reads again; none without cpufreq. */
static void test_cpufreq(void)
{
	double mhz;
	CHECK(cpufreq_parse("1800000\n", &mhz) == 0 && mhz == 1800.0);
	CHECK(cpufreq_parse("<unknown>\n", &mhz) < 0);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, fixture_path(0, "pi5/proc"), fixture_path(1, "pi5/sys")) == 0);
	CHECK(collector_init(&col, &cpufreq_ops) == 0);
	CHECK(run_collector(&col, &ctx, 1) == 0 && col.rows.group.nrows == 1);
	const double *p = row_of(&col, "policy0");
	CHECK(p && p[0] == 2400.0 && p[1] == 1500.0 && p[2] == 2400.0);
	collector_fini(&col);
	ctx_close(&ctx);

	char dir[] = "/tmp/pimon-cpufreq-XXXXXX";
	const char *base = "devices/system/cpu/cpufreq";
	char rel[256];
	int ok = mkdtemp(dir) != NULL;
	static const unsigned policies[] = {4, 0};
	for (size_t i = 0; ok && i < 2; i++) {
		snprintf(rel, sizeof rel, "%s/policy%u/scaling_cur_freq", base, policies[i]);
		ok = put(dir, rel, i ? "600000\n" : "1200000\n") == 0;
		snprintf(rel, sizeof rel, "%s/policy%u/scaling_min_freq", base, policies[i]);
		ok = ok && put(dir, rel, "600000\n") == 0;
		snprintf(rel, sizeof rel, "%s/policy%u/scaling_max_freq", base, policies[i]);
		ok = ok && put(dir, rel, "2000000\n") == 0;
	}
	ok = ok && put(dir, "devices/system/cpu/cpufreq/boost", "0\n") == 0;
	CHECK(ok);
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", dir) == 0);
	CHECK(collector_init(&col, &cpufreq_ops) == 0);
	CHECK(run_collector(&col, &ctx, 2) == 0 && col.rows.group.nrows == 2);
	if (col.rows.group.nrows == 2) {
		CHECK_STR(col.rows.group.rows[0].instance, "policy0");
		CHECK_STR(col.rows.group.rows[1].instance, "policy4");
		CHECK(col.rows.group.rows[1].values[0] == 1200.0);
	}
	snprintf(rel, sizeof rel, "%s/policy4/scaling_cur_freq", base);
	CHECK(put(dir, rel, "<unknown>\n") == 0);
	CHECK(run_collector(&col, &ctx, 3) == 0 && col.rows.group.nrows == 1);
	CHECK(put(dir, rel, "1500000\n") == 0);
	CHECK(run_collector(&col, &ctx, 4) == 0 && col.rows.group.nrows == 2);
	collector_fini(&col);
	ctx_close(&ctx);
	CHECK(nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) == 0);

	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, fixture_path(0, "nothermal/proc"), fixture_path(1, "nothermal/sys")) ==
	      0);
	CHECK(collector_init(&col, &cpufreq_ops) == 0);
	CHECK(run_collector(&col, &ctx, 5) == 0 && col.rows.group.nrows == 0 && !col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Uptime in whole seconds and boot time from the wall clock. */
static void test_host(void)
{
	double up, v[HOST_NFIELDS];
	CHECK(host_parse_uptime("26211.52 100000.00\n", &up) == 0);
	CHECK_NEAR(up, 26211.52, EPS);
	CHECK(host_parse_uptime("x", &up) < 0);
	host_fields_of(up, UINT64_C(1700000000000), v);
	CHECK(v[0] == 26211.0 && v[1] == 1699973788.0);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys")) == 0);
	CHECK(collector_init(&col, &host_ops) == 0);
	CHECK(run_collector(&col, &ctx, UINT64_C(1700000000000)) == 0 && col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1) {
		CHECK(col.rows.group.rows[0].values[0] == 123456.0);
		CHECK(col.rows.group.rows[0].values[1] == 1699876543.0);
	}
	ctx_close(&ctx);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", "/nonexistent/pimon/sys") == 0);
	CHECK(run_collector(&col, &ctx, 1) < 0 && col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Per-core shares over the Pi 4's interval; a core gone offline gives no
 * row, and one back online none until its second sample. */
static void test_cores(void)
{
	struct cpu_core c[8];
	const char *first = fixture_read("pi4/proc/stat", buf_a, sizeof buf_a);
	CHECK(cpu_parse_cores(first, c, 8) == 4);
	CHECK(c[0].id == 0 && c[3].id == 3 && c[0].times.t[CPU_USER] == 30864);
	CHECK(cpu_parse_cores(first, c, 2) == 4);
	CHECK(cpu_parse_cores("cpu  1 2 3 4\ncpux 1 2 3 4\ncpu7 1 2\n", c, 8) == 0);
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &cores_ops) == 0);
	CHECK_STR(col.rows.group.inst_key, "core");
	CHECK(col.rows.group.nfields == CPU_NFIELDS);
	CHECK_STR(col.rows.group.fields[0], "usage");
	rowset_reset(&col.rows);
	CHECK(cores_sample(&col, first, 1) == 0 && col.rows.group.nrows == 0);
	rowset_reset(&col.rows);
	CHECK(cores_sample(&col, fixture_read("pi4-next/proc/stat", buf_b, sizeof buf_b), 2) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 4);
	const double *c0 = row_of(&col, "cpu0");
	CHECK(c0 != NULL);
	if (c0) {
		CHECK_NEAR(c0[0], 25.2, EPS);
		CHECK_NEAR(c0[1], 16.0, EPS);
		CHECK_NEAR(c0[4], 72.8, EPS);
	}
	/* cpu2 offline, then back: no row either time. */
	char offline[4096];
	snprintf(offline, sizeof offline,
	         "cpu  9 0 9 9 0 0 0 0\ncpu0 40000 0 0 2469317 0 0 0 0\n"
	         "cpu1 40000 0 0 2469324 0 0 0 0\ncpu3 40000 0 0 2469324 0 0 0 0\n");
	rowset_reset(&col.rows);
	CHECK(cores_sample(&col, offline, 3) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 3 && row_of(&col, "cpu2") == NULL);
	rowset_reset(&col.rows);
	CHECK(cores_sample(&col, buf_b, 4) == 0);
	rowset_finish(&col.rows);
	CHECK(row_of(&col, "cpu2") == NULL);
	collector_fini(&col);
}

/* Every new collector is known by name and runs through collect_run. */
static void test_collect_names(void)
{
	const char *names[] = {"diskio", "vmstat", "pressure", "clock", "wifi", "cpufreq", "host"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		CHECK(collect_known(names[i]));
	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), "/nonexistent/utmp"};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(collect_select(c, names, sizeof names / sizeof names[0]) == 0);
	const struct proto_group *g;
	size_t n = collect_run(c, UINT64_C(1700000000000), &g);
	/* pressure, clock, wifi, cpufreq, host; diskio and vmstat are rates. */
	CHECK(n == 5);
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(g[i].metric, "diskio") != 0 && strcmp(g[i].metric, "vmstat") != 0);
	collect_destroy(c);
}

int main(void)
{
	fixtures = getenv("FIXTURES");
	if (!fixtures) {
		fprintf(stderr, "FIXTURES is not set\n");
		return 1;
	}
	log_init("test-collect-health", LOG_ERR);
	test_diskio_names();
	test_diskio_parse_pi4();
	test_diskio_sample_pi4();
	test_diskio_pi5_wrap_and_backwards();
	test_diskio_partitions();
	test_diskio_rates_cap();
	test_diskio_missing();
	test_vmstat();
	test_vmstat_sample();
	test_pressure_parse();
	test_pressure_run();
	test_clock_fields();
	test_clock_run();
	test_wifi_parse();
	test_wifi_run();
	test_cpufreq();
	test_host();
	test_cores();
	test_collect_names();
	return check_report("collect_health");
}
