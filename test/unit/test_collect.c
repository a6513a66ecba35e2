/* Unit tests for the built-in collectors: buffer parsers over fixture
 * trees, counter wrap handling, and collect_run through the public API. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmp.h>

#include "check.h"
#include "collect.h"
#include "collect_int.h"
#include "collect_parse.h"
#include "log.h"
#include "util.h"

#define EPS 1e-6
/* utmp for fixture trees: none, so no users groups depend on this machine. */
#define NO_UTMP "/nonexistent/pimon/utmp"

static const char *fixtures;
static char file_buf[64 * 1024];
static char file_buf2[64 * 1024];

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

/* Path of a fixture tree's folder, in a static buffer per slot. */
static const char *fixture_path(int slot, const char *rel)
{
	static char paths[4][1024];
	snprintf(paths[slot], sizeof paths[slot], "%s/%s", fixtures, rel);
	return paths[slot];
}

/* The group called metric among n groups, or NULL. */
static const struct proto_group *find_group(const struct proto_group *g, size_t n,
                                            const char *metric)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(g[i].metric, metric) == 0)
			return &g[i];
	}
	return NULL;
}

/* The row of g whose instance is inst, or NULL. */
static const struct proto_row *find_row(const struct proto_group *g, const char *inst)
{
	for (uint32_t i = 0; g && i < g->nrows; i++) {
		if (strcmp(g->rows[i].instance, inst) == 0)
			return &g->rows[i];
	}
	return NULL;
}

/* Non-zero if g's field names are exactly names[0..n). */
static int fields_are(const struct proto_group *g, const char *const *names, size_t n)
{
	if (!g || g->nfields != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(g->fields[i], names[i]) != 0)
			return 0;
	}
	return 1;
}

/* Non-zero if field f of g may be NaN: a value that is unknown, not a bug
 * (a process new since the last run, a tty without a device, no rpi_volt,
 * no "full" CPU pressure before Linux 5.13, a driver without noise, no
 * oom_kill before 4.13). */
static int may_be_nan(const struct proto_group *g, uint8_t f)
{
	static const char *const names[] = {"cpu_pct",
	                                    "mem_pct",
	                                    "idle_s",
	                                    "hwmon_under_voltage",
	                                    "full_avg10",
	                                    "full_avg60",
	                                    "full_stall_seconds",
	                                    "noise_dbm",
	                                    "signal_dbm",
	                                    "oom_kills",
	                                    "oom_kills_new"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(g->fields[f], names[i]) == 0)
			return 1;
	}
	return 0;
}

/* Sleep a few milliseconds. */
static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Aggregate line parsing of a 4-CPU Pi's /proc/stat. */
static void test_cpu_parse(void)
{
	struct cpu_times t;
	CHECK(cpu_parse_stat(fixture_read("pi4/proc/stat", file_buf, sizeof file_buf), &t) == 0);
	CHECK(t.t[CPU_USER] == 123456);
	CHECK(t.t[CPU_NICE] == 789);
	CHECK(t.t[CPU_SYSTEM] == 45678);
	CHECK(t.t[CPU_IDLE] == 9876543);
	CHECK(t.t[CPU_IOWAIT] == 1234);
	CHECK(t.t[CPU_SOFTIRQ] == 567);
	/* An old kernel with four columns only. */
	CHECK(cpu_parse_stat("cpu  100 0 50 850\ncpu0 100 0 50 850\n", &t) == 0);
	CHECK(t.t[CPU_IDLE] == 850 && t.t[CPU_IOWAIT] == 0 && t.t[CPU_STEAL] == 0);
	/* Per-CPU lines alone, or a truncated aggregate, are not enough. */
	CHECK(cpu_parse_stat("cpu0 1 2 3 4 5 6 7 8\n", &t) < 0);
	CHECK(cpu_parse_stat("cpu  1 2\n", &t) < 0);
	CHECK(cpu_parse_stat("", &t) < 0);
}

/* Percentages from the known pi4 -> pi4-next deltas (1000 jiffies). */
static void test_cpu_percent_pi4(void)
{
	struct cpu_times a, b;
	double v[CPU_NFIELDS];
	cpu_parse_stat(fixture_read("pi4/proc/stat", file_buf, sizeof file_buf), &a);
	cpu_parse_stat(fixture_read("pi4-next/proc/stat", file_buf, sizeof file_buf), &b);
	CHECK(cpu_percent(&a, &b, v) == 0);
	CHECK_NEAR(v[0], 24.0, EPS); /* usage = 100 - idle - iowait */
	CHECK_NEAR(v[1], 15.0, EPS); /* user */
	CHECK_NEAR(v[2], 1.0, EPS);  /* nice */
	CHECK_NEAR(v[3], 6.0, EPS);  /* system */
	CHECK_NEAR(v[4], 74.0, EPS); /* idle */
	CHECK_NEAR(v[5], 2.0, EPS);  /* iowait */
	CHECK_NEAR(v[6], 0.0, EPS);  /* irq */
	CHECK_NEAR(v[7], 2.0, EPS);  /* softirq */
	CHECK_NEAR(v[8], 0.0, EPS);  /* steal */
	/* No time passed: no row. */
	CHECK(cpu_percent(&b, &b, v) < 0);
}

/* iowait going backwards counts as 0, never as a negative share. */
static void test_cpu_counter_backwards(void)
{
	struct cpu_times a, b;
	double v[CPU_NFIELDS];
	cpu_parse_stat(fixture_read("wrap/proc/stat", file_buf, sizeof file_buf), &a);
	cpu_parse_stat(fixture_read("wrap/proc/stat.2", file_buf, sizeof file_buf), &b);
	CHECK(cpu_percent(&a, &b, v) == 0);
	CHECK_NEAR(v[0], 40.0, EPS);
	CHECK_NEAR(v[1], 20.0, EPS);
	CHECK_NEAR(v[3], 10.0, EPS);
	CHECK_NEAR(v[4], 60.0, EPS);
	CHECK_NEAR(v[5], 0.0, EPS);
	CHECK_NEAR(v[7], 10.0, EPS);
	for (int i = 0; i < CPU_NFIELDS; i++)
		CHECK(v[i] >= 0.0 && v[i] <= 100.0);
	/* A counter far behind (a 64-bit glitch) is clamped, not wrapped. */
	struct cpu_times c = a;
	c.t[CPU_USER] = UINT64_C(1) << 40;
	CHECK(cpu_percent(&c, &b, v) == 0);
	for (int i = 0; i < CPU_NFIELDS; i++)
		CHECK(v[i] >= 0.0 && v[i] <= 100.0);
	/* Everything going back (a reset to zero): no time seen, no row. */
	struct cpu_times zero = {{0}};
	CHECK(cpu_percent(&b, &zero, v) < 0);
}

/* Memory fields of the pi4 fixture, in bytes and percents. */
static void test_mem_pi4(void)
{
	double v[MEM_NFIELDS];
	CHECK(mem_parse_meminfo(fixture_read("pi4/proc/meminfo", file_buf, sizeof file_buf), v) ==
	      0);
	CHECK_NEAR(v[0], 3885396.0 * 1024, EPS);
	CHECK_NEAR(v[1], 3128832.0 * 1024, EPS);
	CHECK_NEAR(v[2], (3885396.0 - 3128832.0) * 1024, EPS);
	CHECK_NEAR(v[3], 100.0 * (3885396.0 - 3128832.0) / 3885396.0, EPS);
	CHECK_NEAR(v[4], 100.0 * 3128832.0 / 3885396.0, EPS);
	CHECK_NEAR(v[3] + v[4], 100.0, EPS);
	CHECK_NEAR(v[5], 2315200.0 * 1024, EPS);
	CHECK_NEAR(v[6], 67584.0 * 1024, EPS);
	CHECK_NEAR(v[7], 845824.0 * 1024, EPS);
	CHECK_NEAR(v[8], 102400.0 * 1024, EPS);
	CHECK_NEAR(v[9], 76800.0 * 1024, EPS);
	CHECK_NEAR(v[10], 25.0, EPS);
}

/* Old kernels without MemAvailable, no swap, and a broken file. */
static void test_mem_edge_cases(void)
{
	double v[MEM_NFIELDS];
	const char *old = "MemTotal:  1000 kB\nMemFree:  200 kB\nBuffers:  100 kB\n"
	                  "Cached:  300 kB\nSwapTotal:  0 kB\nSwapFree:  0 kB\n";
	CHECK(mem_parse_meminfo(old, v) == 0);
	CHECK_NEAR(v[1], 600.0 * 1024, EPS);
	CHECK_NEAR(v[2], 400.0 * 1024, EPS);
	CHECK_NEAR(v[3], 40.0, EPS);
	CHECK_NEAR(v[10], 0.0, EPS);
	/* SwapCached must not be read as Cached. */
	CHECK(mem_parse_meminfo("MemTotal: 10 kB\nSwapCached: 7 kB\n", v) == 0);
	CHECK_NEAR(v[7], 0.0, EPS);
	CHECK(mem_parse_meminfo("MemFree: 10 kB\n", v) < 0);
	CHECK(mem_parse_meminfo("", v) < 0);
}

/* Load averages and process counts. */
static void test_load(void)
{
	double v[LOAD_NFIELDS];
	CHECK(load_parse(fixture_read("pi4/proc/loadavg", file_buf, sizeof file_buf), v) == 0);
	CHECK_NEAR(v[0], 0.52, EPS);
	CHECK_NEAR(v[1], 0.58, EPS);
	CHECK_NEAR(v[2], 0.59, EPS);
	CHECK_NEAR(v[3], 2.0, EPS);
	CHECK_NEAR(v[4], 345.0, EPS);
	CHECK(load_parse("12.75 3.00 10.5 17/1024 99\n", v) == 0);
	CHECK_NEAR(v[0], 12.75, EPS);
	CHECK_NEAR(v[2], 10.5, EPS);
	CHECK_NEAR(v[4], 1024.0, EPS);
	CHECK(load_parse("0.1 0.2\n", v) < 0);
	CHECK(load_parse("0.1 0.2 0.3 4\n", v) < 0);
}

/* Real file systems only, one per device, \040 decoded. */
static void test_disk_parse_pi4(void)
{
	struct disk_mount m[32];
	fixture_read("pi4/proc/mounts", file_buf, sizeof file_buf);
	size_t n = disk_parse_mounts(file_buf, m, 32);
	CHECK(n == 4);
	if (n != 4)
		return;
	CHECK_STR(m[0].dir, "/");
	CHECK_STR(m[0].device, "/dev/mmcblk0p2");
	CHECK_STR(m[0].type, "ext4");
	CHECK_STR(m[1].dir, "/boot/firmware");
	CHECK_STR(m[1].type, "vfat");
	CHECK_STR(m[2].dir, "/media/pi/My Passport");
	CHECK_STR(m[2].type, "exfat");
	CHECK_STR(m[3].dir, "/mnt/backup");
	CHECK_STR(m[3].device, "nas.local:/export/backup");
	CHECK_STR(m[3].type, "nfs4");
	for (size_t i = 0; i < n; i++) {
		CHECK(strcmp(m[i].type, "tmpfs") != 0 && strcmp(m[i].type, "proc") != 0);
		CHECK(strcmp(m[i].dir, "/srv/www") != 0); /* bind mount of / */
	}
}

/* Type filter, other escapes, short lines and the max bound. */
static void test_disk_parse_edge_cases(void)
{
	CHECK(disk_type_wanted("ext4") && disk_type_wanted("xfs") && disk_type_wanted("btrfs"));
	CHECK(disk_type_wanted("vfat") && disk_type_wanted("nfs") && disk_type_wanted("fuseblk"));
	CHECK(!disk_type_wanted("tmpfs") && !disk_type_wanted("proc") &&
	      !disk_type_wanted("sysfs"));
	CHECK(!disk_type_wanted("devtmpfs") && !disk_type_wanted("cgroup2") &&
	      !disk_type_wanted("overlay"));
	CHECK(!disk_type_wanted("squashfs") && !disk_type_wanted("autofs") &&
	      !disk_type_wanted("debugfs"));

	struct disk_mount m[4];
	char buf[512];
	snprintf(buf, sizeof buf, "%s",
	         "/dev/sdc1 /mnt/a\\134b\\011c ext4 rw 0 0\n"
	         "garbage\n"
	         "/dev/sdd1 /mnt/d xfs rw 0 0\n"
	         "/dev/sde1 /mnt/e btrfs rw 0 0\n"
	         "/dev/sdf1 /mnt/f ext4 rw 0 0");
	size_t n = disk_parse_mounts(buf, m, 4);
	CHECK(n == 4);
	CHECK_STR(m[0].dir, "/mnt/a\\b\tc");
	CHECK_STR(m[3].dir, "/mnt/f"); /* last line without a newline */

	snprintf(buf, sizeof buf, "%s", "/dev/a / ext4 rw 0 0\n/dev/b /b ext4 rw 0 0\n");
	CHECK(disk_parse_mounts(buf, m, 1) == 1);
	CHECK(disk_parse_mounts(buf, m, 0) == 0);
}

/* statvfs of this machine's root gives a df-like row; a missing path none. */
static void test_disk_stat(void)
{
	double v[DISK_NFIELDS];
	CHECK(disk_stat("/", v) == 0);
	CHECK(v[0] > 0.0);
	CHECK(v[1] >= 0.0 && v[2] >= 0.0 && v[1] + v[2] <= v[0] + EPS);
	CHECK(v[3] >= 0.0 && v[3] <= 100.0);
	CHECK_NEAR(v[3], v[1] + v[2] > 0 ? 100.0 * v[1] / (v[1] + v[2]) : 0.0, EPS);
	CHECK(v[5] <= v[4] && v[6] >= 0.0 && v[6] <= 100.0);
	CHECK(disk_stat("/nonexistent/pimon/mount", v) < 0);
}

/* Millidegree parsing. */
static void test_temp_parse(void)
{
	double c = 0;
	CHECK(temp_parse(fixture_read("pi4/sys/class/thermal/thermal_zone0/temp", file_buf,
	                              sizeof file_buf),
	                 &c) == 0);
	CHECK_NEAR(c, 48.686, EPS);
	CHECK(temp_parse("-5500\n", &c) == 0);
	CHECK_NEAR(c, -5.5, EPS);
	CHECK(temp_parse("\n", &c) < 0);
	CHECK(temp_parse("", &c) < 0);
}

/* Interfaces of the pi4 fixture: lo skipped, counters in order. */
static void test_net_parse(void)
{
	struct net_iface ifc[8];
	size_t n =
	    net_parse_dev(fixture_read("pi4/proc/net/dev", file_buf, sizeof file_buf), ifc, 8);
	CHECK(n == 2);
	CHECK_STR(ifc[0].name, "eth0");
	CHECK_STR(ifc[1].name, "wlan0");
	CHECK(ifc[0].c[NET_RX_BYTES] == 987654321u);
	CHECK(ifc[0].c[NET_TX_BYTES] == 123456789u);
	CHECK(ifc[0].c[NET_RX_PACKETS] == 876543u);
	CHECK(ifc[0].c[NET_TX_PACKETS] == 234567u);
	CHECK(ifc[0].c[NET_RX_DROP] == 12u);
	/* Too small an array: the count still says how many there are. */
	CHECK(net_parse_dev(file_buf, ifc, 1) == 2);
	/* Old kernels print large counters right after the colon. */
	n = net_parse_dev("eth1:4294967296 5 0 0 0 0 0 0 77 6 0 0 0 0 0 0\n"
	                  "   lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
	                  "bad: 1 2 3\n",
	                  ifc, 8);
	CHECK(n == 1);
	CHECK_STR(ifc[0].name, "eth1");
	CHECK(ifc[0].c[NET_RX_BYTES] == UINT64_C(4294967296));
	CHECK(ifc[0].c[NET_TX_BYTES] == 77u);
}

/* Rates from the known pi4 -> pi4-next deltas over 10 s. */
static void test_net_rates_pi4(void)
{
	struct net_iface a[8], b[8];
	double v[NET_NFIELDS];
	CHECK(net_parse_dev(fixture_read("pi4/proc/net/dev", file_buf, sizeof file_buf), a, 8) ==
	      2);
	CHECK(net_parse_dev(fixture_read("pi4-next/proc/net/dev", file_buf, sizeof file_buf), b,
	                    8) == 2);
	net_rates(&a[0], &b[0], 10000, v);
	CHECK_NEAR(v[0], 125000.0, EPS); /* rx_bytes_s */
	CHECK_NEAR(v[1], 25000.0, EPS);  /* tx_bytes_s */
	CHECK_NEAR(v[2], 100.0, EPS);    /* rx_packets_s */
	CHECK_NEAR(v[3], 50.0, EPS);     /* tx_packets_s */
	CHECK_NEAR(v[4], 0.0, EPS);      /* rx_errors_s */
	CHECK_NEAR(v[5], 0.1, EPS);      /* tx_errors_s */
	CHECK_NEAR(v[6], 0.2, EPS);      /* rx_drop_s */
	CHECK_NEAR(v[7], 0.0, EPS);      /* tx_drop_s */
	CHECK_NEAR(v[8], 988904321.0, EPS);
	CHECK_NEAR(v[9], 123706789.0, EPS);
	net_rates(&a[1], &b[1], 10000, v);
	CHECK_NEAR(v[0], 2048.0, EPS);
	CHECK_NEAR(v[1], 1024.0, EPS);
	CHECK_NEAR(v[2], 4.0, EPS);
	CHECK_NEAR(v[3], 2.0, EPS);
	CHECK_NEAR(v[4], 0.1, EPS);
	CHECK_NEAR(v[7], 0.1, EPS);
}

/* 32-bit wraps give the right growth; resets give 0, never huge values. */
static void test_net_wrap(void)
{
	CHECK(net_delta(100, 250) == 150);
	CHECK(net_delta(UINT32_MAX - 99, 50) == 150);
	CHECK(net_delta(UINT32_MAX, 0) == 1);
	CHECK(net_delta(UINT64_C(5000000000), 100) == 0); /* 64-bit counter reset */
	CHECK(net_delta(1000, 900) == 0);                 /* small counter reset */

	struct net_iface a[4], b[4];
	double v[NET_NFIELDS];
	CHECK(net_parse_dev(fixture_read("wrap/proc/net/dev", file_buf, sizeof file_buf), a, 4) ==
	      1);
	CHECK(net_parse_dev(fixture_read("wrap/proc/net/dev.2", file_buf, sizeof file_buf), b, 4) ==
	      1);
	net_rates(&a[0], &b[0], 10000, v);
	CHECK_NEAR(v[0], 129.6, EPS); /* 4294967000 -> 1000 across 2^32 */
	CHECK_NEAR(v[1], 0.0, EPS);   /* 5e9 -> 100: reset */
	CHECK_NEAR(v[2], 0.5, EPS);   /* 4294967295 -> 4 */
	CHECK_NEAR(v[3], 0.0, EPS);   /* 1000 -> 900: reset */
	for (int i = 0; i < 8; i++)
		CHECK(v[i] >= 0.0 && v[i] < 1e6);
}

/* The net collector's own two-sample logic with chosen times. */
static void test_net_sample(void)
{
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &net_ops) == 0);
	fixture_read("pi4/proc/net/dev", file_buf, sizeof file_buf);
	fixture_read("pi4-next/proc/net/dev", file_buf2, sizeof file_buf2);

	rowset_reset(&col.rows);
	CHECK(net_sample(&col, file_buf, 1000, 5) == 0);
	CHECK(col.rows.group.nrows == 0); /* first sample */

	rowset_reset(&col.rows);
	CHECK(net_sample(&col, file_buf2, 11000, 6) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 2);
	const struct proto_row *eth0 = find_row(&col.rows.group, "eth0");
	CHECK(eth0 && eth0->time_ms == 6);
	if (eth0)
		CHECK_NEAR(eth0->values[0], 125000.0, EPS);

	/* No time passed: no rows, and the older sample is kept. */
	rowset_reset(&col.rows);
	CHECK(net_sample(&col, file_buf2, 11000, 7) == 0);
	CHECK(col.rows.group.nrows == 0);

	/* wlan0 disappears, usb0 appears: only eth0 has two samples. */
	const char *next = "eth0: 988904321 877543 0 14 0 0 0 0 123706789 235067 1 0 0 0 0 0\n"
	                   "usb0: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n";
	rowset_reset(&col.rows);
	CHECK(net_sample(&col, next, 12000, 8) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 1);
	CHECK(find_row(&col.rows.group, "eth0") != NULL);
	eth0 = find_row(&col.rows.group, "eth0");
	if (eth0)
		CHECK_NEAR(eth0->values[0], 0.0, EPS);

	rowset_reset(&col.rows);
	CHECK(net_sample(&col, "usb0: 1010 3 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n", 14000, 9) == 0);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == 1);
	const struct proto_row *usb0 = find_row(&col.rows.group, "usb0");
	CHECK(usb0 != NULL);
	if (usb0)
		CHECK_NEAR(usb0->values[0], 500.0, EPS);
	collector_fini(&col);
}

/* Hundreds of interfaces: arrays grow, rows stop at COLLECT_MAX_ROWS. */
static void test_net_many_interfaces(void)
{
	static char big[64 * 1024];
	size_t off = 0;
	for (int i = 0; i < 600; i++)
		off += (size_t)snprintf(big + off, sizeof big - off,
		                        "veth%d: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0\n", i, i, i);
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(collector_init(&col, &net_ops) == 0);
	rowset_reset(&col.rows);
	net_sample(&col, big, 0, 1);
	rowset_reset(&col.rows);
	net_sample(&col, big, 1000, 2);
	rowset_finish(&col.rows);
	CHECK(col.rows.group.nrows == COLLECT_MAX_ROWS);
	CHECK_STR(col.rows.group.rows[511].instance, "veth511");
	collector_fini(&col);
}

/* os-release quoting, fallbacks and length limits. */
static void test_sys_os_release(void)
{
	char out[PROTO_TEXT_MAX + 1];
	sys_parse_os_release(fixture_read("pi4/etc/os-release", file_buf, sizeof file_buf), out,
	                     sizeof out);
	CHECK_STR(out, "Debian GNU/Linux 12 (bookworm)");
	sys_parse_os_release("NAME=Alpine\nPRETTY_NAME='Alpine Linux v3.20'\n", out, sizeof out);
	CHECK_STR(out, "Alpine Linux v3.20");
	sys_parse_os_release("NAME=\"Arch Linux\"\n", out, sizeof out);
	CHECK_STR(out, "Arch Linux");
	sys_parse_os_release("PRETTY_NAME=\"Say \\\"hi\\\"\"\n", out, sizeof out);
	CHECK_STR(out, "Say \"hi\"");
	sys_parse_os_release("ID=debian\n", out, sizeof out);
	CHECK_STR(out, "Linux");
	sys_parse_os_release("", out, sizeof out);
	CHECK_STR(out, "Linux");

	/* 300 two-byte characters: cut to at most 255 bytes, on a boundary. */
	char longname[700] = "PRETTY_NAME=\"";
	for (int i = 0; i < 300; i++)
		strcat(longname, "\xc3\xa9");
	strcat(longname, "\"\n");
	sys_parse_os_release(longname, out, sizeof out);
	CHECK(strlen(out) <= PROTO_TEXT_MAX);
	CHECK(strlen(out) == 254);
	CHECK(sys_parse_uptime("123456.78 456789.01\n") == 123456);
	CHECK(sys_parse_uptime("junk") == 0);
}

/* HELLO facts of the pi4 tree; name, version, caps and auth untouched. */
static void test_sysinfo_pi4(void)
{
	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), NO_UTMP};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	static const uint8_t auth[] = {1, 2, 3};
	struct proto_hello h = {
	    .name = "pi-kitchen", .version = "9.9", .caps = 7, .auth_len = 3, .auth = auth};
	collect_sysinfo(c, &h);
	CHECK_STR(h.os, "Debian GNU/Linux 12 (bookworm)");
	CHECK_STR(h.kernel, "6.6.51+rpt-rpi-v8");
	CHECK_STR(h.model, "Raspberry Pi 4 Model B Rev 1.4");
	CHECK_STR(h.boot_id, "3f1c2a9e-7b4d-4e2f-9a1b-5c6d7e8f9012");
	CHECK(h.uptime_s == 123456);
	CHECK_STR(h.name, "pi-kitchen");
	CHECK_STR(h.version, "9.9");
	CHECK(h.caps == 7 && h.auth_len == 3 && h.auth == auth);
	collect_destroy(c);
}

/* An x86 tree: no device tree model, no thermal zones, no temp group. */
static void test_nothermal(void)
{
	struct collect_roots roots = {fixture_path(0, "nothermal/proc"),
	                              fixture_path(1, "nothermal/sys"),
	                              fixture_path(2, "nothermal/etc/os-release"), NO_UTMP};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	struct proto_hello h = {0};
	collect_sysinfo(c, &h);
	CHECK_STR(h.model, "");
	CHECK_STR(h.os, "Ubuntu 24.04.1 LTS");
	CHECK_STR(h.kernel, "6.8.0-48-generic");
	const struct proto_group *g;
	for (int run = 0; run < 2; run++) {
		size_t n = collect_run(c, 1000 + (uint64_t)run, &g);
		CHECK(find_group(g, n, "temp") == NULL);
		CHECK(find_group(g, n, "mem") != NULL);
		CHECK(find_group(g, n, "load") != NULL);
	}
	collect_destroy(c);
}

/* Roots with nothing in them: no groups, no crash, empty facts. */
static void test_missing_tree(void)
{
	struct collect_roots roots = {"/nonexistent/pimon/proc", "/nonexistent/pimon/sys",
	                              "/nonexistent/pimon/os-release", NO_UTMP};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	const struct proto_group *g;
	/* Only clock, which asks the kernel rather than a file. */
	for (uint64_t now = 1; now <= 2; now++) {
		size_t n = collect_run(c, now, &g);
		CHECK(n == 1 && strcmp(g[0].metric, "clock") == 0);
	}
	struct proto_hello h = {0};
	collect_sysinfo(c, &h);
	CHECK_STR(h.os, "Linux");
	CHECK_STR(h.kernel, "");
	CHECK_STR(h.model, "");
	CHECK_STR(h.boot_id, "");
	CHECK(h.uptime_s == 0);
	collect_destroy(c);
}

/* Names, selection and the unknown-name count. */
static void test_select(void)
{
	const char *all[] = {"cpu", "mem", "disk", "load", "temp", "net"};
	for (size_t i = 0; i < 6; i++)
		CHECK(collect_known(all[i]));
	CHECK(!collect_known("gpu") && !collect_known("") && !collect_known("CPU"));
	CHECK(collect_known("users") && collect_known("procs") && collect_known("pi"));
	/* Summary groups come with their collector; they are not collectors. */
	CHECK(!collect_known("users_totals") && !collect_known("procs_totals"));

	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), NO_UTMP};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	const struct proto_group *g;
	const char *pick[] = {"mem", "bogus", "load"};
	CHECK(collect_select(c, pick, 3) == 1);
	size_t n = collect_run(c, 42, &g);
	CHECK(n == 2);
	CHECK(find_group(g, n, "mem") && find_group(g, n, "load"));
	CHECK(!find_group(g, n, "disk") && !find_group(g, n, "temp"));
	CHECK(collect_select(c, NULL, 0) == 0);
	CHECK(collect_run(c, 43, &g) == 0);
	const char *temp_only[] = {"temp"};
	CHECK(collect_select(c, temp_only, 1) == 0);
	n = collect_run(c, 44, &g);
	CHECK(n == 1 && strcmp(g[0].metric, "temp") == 0);
	CHECK(n == 1 && g[0].nrows == 1);
	if (n == 1 && g[0].nrows == 1) {
		CHECK_STR(g[0].inst_key, "zone");
		CHECK_STR(g[0].rows[0].instance, "cpu-thermal");
		CHECK_NEAR(g[0].rows[0].values[0], 48.686, EPS);
		CHECK(g[0].rows[0].time_ms == 44);
	}
	collect_destroy(c);
}

/* Copy fixture rel into dir/name. */
static int copy_fixture(const char *rel, const char *dir, const char *name)
{
	char path[1024];
	ssize_t len = util_read_file(fixture_path(3, rel), file_buf, sizeof file_buf);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (len < 0 || !f) {
		fprintf(stderr, "cannot copy %s to %s\n", rel, path);
		if (f)
			fclose(f);
		return -1;
	}
	fwrite(file_buf, 1, (size_t)len, f);
	return fclose(f);
}

static const char *const proc_files[] = {"stat",   "meminfo", "loadavg",   "mounts",      "net/dev",
                                         "uptime", "vmstat",  "diskstats", "net/wireless"};

/* Remove one entry of a temporary tree for nftw. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove a temporary tree. */
static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text to dir/rel, creating folders. 0 or -1. */
static int write_file(const char *dir, const char *rel, const char *text)
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

/* Check the first-run groups of the pi4 tree. */
static void check_pi4_first_run(const struct proto_group *g, size_t n)
{
	/* mem, disk, load, temp, pi, wifi, cpufreq, clock, host: rates need a
	 * second run, and this proc tree has no pressure folder. */
	CHECK(n == 9);
	CHECK(find_group(g, n, "cpu") == NULL && find_group(g, n, "net") == NULL);
	CHECK(find_group(g, n, "procs") == NULL && find_group(g, n, "procs_totals") == NULL);
	CHECK(find_group(g, n, "pi") != NULL);
	const struct proto_group *mem = find_group(g, n, "mem");
	CHECK(mem && mem->nrows == 1 && mem->nfields == MEM_NFIELDS);
	if (mem && mem->nrows == 1)
		CHECK_NEAR(mem->rows[0].values[0], 3885396.0 * 1024, EPS);
	const struct proto_group *disk = find_group(g, n, "disk");
	CHECK(disk && strcmp(disk->inst_key, "mount") == 0);
	const struct proto_row *root = find_row(disk, "/");
	CHECK(root != NULL);
	if (root)
		CHECK(root->values[0] > 0.0 && root->values[3] >= 0.0 && root->values[3] <= 100.0);
	CHECK(find_row(disk, "/srv/www") == NULL && find_row(disk, "/run") == NULL);
}

/* Check the second-run cpu and net groups against the known deltas. */
static void check_pi4_second_run(const struct proto_group *g, size_t n, uint64_t now)
{
	static const char *const cpu_names[] = {"usage",  "user", "nice",    "system", "idle",
	                                        "iowait", "irq",  "softirq", "steal"};
	static const char *const net_names[] = {
	    "rx_bytes_s",  "tx_bytes_s", "rx_packets_s", "tx_packets_s", "rx_errors_s",
	    "tx_errors_s", "rx_drop_s",  "tx_drop_s",    "rx_bytes",     "tx_bytes"};
	/* and cpu, cores, net, diskio, vmstat; no procs groups from a proc
	 * folder without processes */
	CHECK(n == 14);
	const struct proto_group *cores = find_group(g, n, "cores");
	CHECK(cores && cores->nrows == 4 && find_row(cores, "cpu3") != NULL);
	const struct proto_group *diskio = find_group(g, n, "diskio");
	CHECK(diskio && diskio->nrows == 1 && find_row(diskio, "mmcblk0") != NULL);
	const struct proto_group *vmstat = find_group(g, n, "vmstat");
	CHECK(vmstat && vmstat->nrows == 1);
	if (vmstat && vmstat->nrows == 1)
		CHECK(vmstat->rows[0].values[4] == 1.0);
	CHECK(find_group(g, n, "procs") == NULL && find_group(g, n, "procs_totals") == NULL);
	const struct proto_group *cpu = find_group(g, n, "cpu");
	CHECK(cpu && cpu->nrows == 1 && fields_are(cpu, cpu_names, 9));
	CHECK(cpu && strcmp(cpu->inst_key, "") == 0);
	if (cpu && cpu->nrows == 1) {
		CHECK_STR(cpu->rows[0].instance, "");
		CHECK(cpu->rows[0].time_ms == now);
		CHECK_NEAR(cpu->rows[0].values[0], 24.0, EPS);
		CHECK_NEAR(cpu->rows[0].values[1], 15.0, EPS);
		CHECK_NEAR(cpu->rows[0].values[4], 74.0, EPS);
	}
	const struct proto_group *net = find_group(g, n, "net");
	CHECK(net && net->nrows == 2 && fields_are(net, net_names, 10));
	const struct proto_row *eth0 = find_row(net, "eth0");
	CHECK(eth0 != NULL);
	if (eth0) {
		CHECK(eth0->values[0] > 0.0);
		CHECK_NEAR(eth0->values[8], 988904321.0, EPS);
		CHECK_NEAR(eth0->values[9], 123706789.0, EPS);
	}
	CHECK(find_row(net, "lo") == NULL);
	for (size_t i = 0; i < n; i++)
		for (uint32_t r = 0; r < g[i].nrows; r++)
			CHECK(g[i].rows[r].time_ms == now);
}

/* Make a temporary tree: proc/ with the pi4 files, an empty
 * sys/class/thermal. 0 or -1. */
static int make_tree(char *dir)
{
	char path[1024];
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/proc/net", dir);
	if (util_mkdirs(path) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/sys/class/thermal", dir);
	if (util_mkdirs(path) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/proc", dir);
	for (size_t i = 0; i < sizeof proc_files / sizeof proc_files[0]; i++) {
		char rel[256];
		snprintf(rel, sizeof rel, "pi4/proc/%s", proc_files[i]);
		if (copy_fixture(rel, path, proc_files[i]) < 0)
			return -1;
	}
	return 0;
}

/* collect_create/collect_run twice over pi4 then pi4-next files. */
static void test_run_pi4(void)
{
	char dir[] = "/tmp/pimon-collect-XXXXXX";
	char proc[1024];
	int ok = make_tree(dir) == 0;
	CHECK(ok);
	snprintf(proc, sizeof proc, "%s/proc", dir);
	struct collect_roots roots = {proc, fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), NO_UTMP};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	CHECK(c != NULL);
	if (c) {
		const struct proto_group *g;
		uint64_t now = UINT64_C(1700000000000);
		size_t n = collect_run(c, now, &g);
		check_pi4_first_run(g, n);
		CHECK(copy_fixture("pi4-next/proc/stat", proc, "stat") == 0);
		CHECK(copy_fixture("pi4-next/proc/net/dev", proc, "net/dev") == 0);
		CHECK(copy_fixture("pi4-next/proc/diskstats", proc, "diskstats") == 0);
		CHECK(copy_fixture("pi4-next/proc/vmstat", proc, "vmstat") == 0);
		sleep_ms(20); /* the net collector times its interval itself */
		n = collect_run(c, now + 10000, &g);
		check_pi4_second_run(g, n, now + 10000);
		/* Unchanged /proc/stat: no CPU time passed, no cpu row. */
		n = collect_run(c, now + 20000, &g);
		CHECK(find_group(g, n, "cpu") == NULL);
		CHECK(find_group(g, n, "mem") != NULL);
	}
	collect_destroy(c);
	if (ok)
		remove_tree(dir);
}

/* An empty thermal folder gives no temp group either. */
static void test_empty_thermal(void)
{
	char dir[] = "/tmp/pimon-collect-XXXXXX";
	char proc[1024], sys[1024];
	int ok = make_tree(dir) == 0;
	CHECK(ok);
	snprintf(proc, sizeof proc, "%s/proc", dir);
	snprintf(sys, sizeof sys, "%s/sys", dir);
	struct collect_roots roots = {proc, sys, fixture_path(2, "pi4/etc/os-release"), NO_UTMP};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	CHECK(c != NULL);
	if (c) {
		const struct proto_group *g;
		size_t n = collect_run(c, 1, &g);
		/* mem, disk, load, wifi, clock, host */
		CHECK(n == 6 && find_group(g, n, "temp") == NULL);
		struct proto_hello h = {0};
		collect_sysinfo(c, &h);
		CHECK_STR(h.model, "");
	}
	collect_destroy(c);
	if (ok)
		remove_tree(dir);
}

/* Zones in number order, a repeated type made unique, a dead zone skipped. */
static void test_thermal_zones(void)
{
	char dir[] = "/tmp/pimon-collect-XXXXXX";
	int ok = mkdtemp(dir) != NULL;
	ok = ok && write_file(dir, "class/thermal/thermal_zone10/type", "acpitz\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone10/temp", "-1000\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone2/type", "x86_pkg_temp\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone2/temp", "45000\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone0/type", "acpitz\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone0/temp", "27800\n") == 0;
	ok = ok && write_file(dir, "class/thermal/thermal_zone3/type", "iwlwifi_1\n") == 0;
	ok = ok && write_file(dir, "class/thermal/cooling_device0/type", "Processor\n") == 0;
	CHECK(ok);
	struct collect_roots roots = {"/nonexistent/pimon/proc", dir, "/nonexistent/os-release",
	                              NO_UTMP};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	const char *temp_only[] = {"temp"};
	if (c && collect_select(c, temp_only, 1) == 0) {
		const struct proto_group *g;
		size_t n = collect_run(c, 5, &g);
		CHECK(n == 1 && g[0].nrows == 3);
		if (n == 1 && g[0].nrows == 3) {
			CHECK_STR(g[0].rows[0].instance, "acpitz");
			CHECK_NEAR(g[0].rows[0].values[0], 27.8, EPS);
			CHECK_STR(g[0].rows[1].instance, "x86_pkg_temp");
			CHECK_NEAR(g[0].rows[1].values[0], 45.0, EPS);
			CHECK_STR(g[0].rows[2].instance, "acpitz-10");
			CHECK_NEAR(g[0].rows[2].values[0], -1.0, EPS);
		}
	}
	collect_destroy(c);
	remove_tree(dir);
}

/* Sanity over this machine's own /proc and /sys. */
static void test_run_real(void)
{
	struct collect_roots roots = {"/proc", "/sys", "/etc/os-release", "/var/run/utmp"};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	const struct proto_group *g;
	size_t n = collect_run(c, 1, &g);
	const struct proto_group *mem = find_group(g, n, "mem");
	CHECK(mem && mem->nrows == 1 && mem->rows[0].values[0] > 0.0);
	const struct proto_group *cpu = NULL;
	for (int i = 0; i < 40 && !cpu; i++) {
		sleep_ms(50);
		n = collect_run(c, UINT64_C(1700000000000) + (uint64_t)i, &g);
		cpu = find_group(g, n, "cpu");
	}
	CHECK(cpu && cpu->nrows == 1);
	for (int i = 0; cpu && i < CPU_NFIELDS; i++)
		CHECK(cpu->rows[0].values[i] >= 0.0 && cpu->rows[0].values[i] <= 100.0);
	int finite = 1;
	for (size_t i = 0; i < n; i++)
		for (uint32_t r = 0; r < g[i].nrows; r++)
			for (uint8_t f = 0; f < g[i].nfields; f++)
				finite &= (isnan(g[i].rows[r].values[f]) && may_be_nan(&g[i], f)) ||
				          (isfinite(g[i].rows[r].values[f]) &&
				           g[i].rows[r].values[f] >= -300.0);
	CHECK(finite);
	struct proto_hello h = {0};
	collect_sysinfo(c, &h);
	CHECK(h.os[0] != '\0' && h.kernel[0] != '\0');
	CHECK(strlen(h.boot_id) == 36);
	CHECK(h.uptime_s > 0);
	collect_destroy(c);
}

/* A collector context over the given roots, as collect_create makes one. */
static int ctx_open(struct collect_ctx *ctx, char *proc, char *sys, char *utmp, const char *dev)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->proc = proc;
	ctx->sys = sys;
	ctx->utmp = utmp;
	ctx->dev = dev;
	ctx->size = COLLECT_BUF_SIZE;
	ctx->buf = malloc(ctx->size);
	return ctx->buf ? 0 : -1;
}

/* Free what ctx_open allocated. */
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
	rowset_reset(&col->summary);
	int rc = col->ops->run(col, ctx, now_ms);
	rowset_finish(&col->rows);
	rowset_finish(&col->summary);
	return rc;
}

/* Whether path opens on procfs, as the kept files must (an emulator may
 * open a file of its own for it). */
static int is_procfs(const char *path)
{
	struct statfs fs;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int yes = fd >= 0 && fstatfs(fd, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
	if (fd >= 0)
		close(fd);
	return yes;
}

/* procfs and sysfs files read every run stay open and are re-read from
 * offset 0; regular files are opened each time, so one replaced by a rename
 * (as tests replace fixtures) is seen; COLLECT_ONCE keeps nothing; past
 * COLLECT_KEEP_MAX files are still read. */
static void test_ctx_kept(void)
{
	char dir[] = "/tmp/pimon-kept-XXXXXX", path[1024], tmp[1024];
	struct collect_ctx ctx;
	int ok = mkdtemp(dir) != NULL && write_file(dir, "a", "first line\nsecond\n") == 0;
	CHECK(ok && ctx_open(&ctx, "/proc", "/sys", NO_UTMP, "/dev") == 0);
	if (!ok)
		return;
	CHECK(collect_ctx_read(&ctx, dir, "a", 0) == 18 && ctx.nkept == 0);
	snprintf(path, sizeof path, "%s/a", dir);
	snprintf(tmp, sizeof tmp, "%s/a.tmp", dir);
	CHECK(write_file(dir, "a.tmp", "new\n") == 0 && rename(tmp, path) == 0);
	CHECK(collect_ctx_read(&ctx, dir, "a", 0) == 4 && ctx.nkept == 0);
	CHECK_STR(ctx.buf, "new\n");
	/* /proc/self/stat changes between reads: the kept one is read anew. */
	/* Only procfs files are kept: qemu-user serves its own /proc/self/stat
	 * from tmpfs. */
	CHECK(collect_ctx_read(&ctx, "/proc", "self/stat", 0) > 0);
	CHECK(collect_ctx_read(&ctx, "/proc", "uptime", COLLECT_ONCE) > 0);
	size_t one = (size_t)is_procfs("/proc/self/stat");
	size_t two = one + (size_t)is_procfs("/proc/uptime");
	CHECK(collect_ctx_read(&ctx, "/proc", "self/stat", 0) > 0 && ctx.nkept == one);
	CHECK(collect_ctx_read(&ctx, "/proc", "uptime", COLLECT_ONCE) > 0 && ctx.nkept == one);
	CHECK(collect_ctx_read(&ctx, "/proc", "uptime", 0) > 0 && ctx.nkept == two);
	CHECK(strchr(ctx.buf, '.') != NULL); /* read whole: "12345.67 2345.89" */
	CHECK(collect_ctx_read(&ctx, dir, "missing", 0) < 0 && errno == ENOENT);
	/* A folder opens but fails to read: not kept. */
	CHECK(collect_ctx_read(&ctx, "/proc", "self", 0) < 0 && errno == EISDIR &&
	      ctx.nkept == two);
	/* More procfs files than can be kept: those past the limit are still
	 * read. /proc/sys/kernel and vm hold well over 64 readable files. */
	int read_ok = 0;
	static const char *const dirs[] = {"sys/kernel", "sys/vm", "sys/net/core", "sys/fs"};
	for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
		snprintf(path, sizeof path, "/proc/%s", dirs[d]);
		DIR *dp = opendir(path);
		struct dirent *e;
		while (dp && (e = readdir(dp))) {
			char rel[512];
			snprintf(rel, sizeof rel, "%s/%s", dirs[d], e->d_name);
			if (e->d_type == DT_REG && collect_ctx_read(&ctx, "/proc", rel, 0) >= 0)
				read_ok++;
		}
		if (dp)
			closedir(dp);
	}
	CHECK(read_ok > COLLECT_KEEP_MAX + 4);
	CHECK(ctx.nkept == COLLECT_KEEP_MAX);
	CHECK(collect_ctx_read(&ctx, "/proc", "self/stat", 0) > 0);
	CHECK(ctx.nkept <= COLLECT_KEEP_MAX);
	/* A FIFO cannot seek: it is read to its end, and opened anew each time
	 * (tools/cross-test feeds /proc/stat through one). */
	snprintf(path, sizeof path, "%s/fifo", dir);
	CHECK(mkfifo(path, 0600) == 0);
	for (int round = 0; round < 2; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			int wfd = open(path, O_WRONLY);
			const char *text = round ? "second sample\n" : "first sample, longer\n";
			_exit(wfd >= 0 && write(wfd, text, strlen(text)) == (ssize_t)strlen(text)
			          ? 0
			          : 1);
		}
		CHECK(pid > 0);
		ssize_t n = collect_ctx_read(&ctx, dir, "fifo", 0);
		CHECK_STR(ctx.buf, round ? "second sample\n" : "first sample, longer\n");
		CHECK(n == (ssize_t)strlen(ctx.buf));
		int st = -1;
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0);
	}
	ctx_close(&ctx);
	CHECK(ctx.nkept == 0);
	remove_tree(dir);
}

/* Copy s into a utmp text field, without a NUL when it fills the field. */
static void utmp_set(char *field, size_t size, const char *s)
{
	size_t n = strlen(s);
	memcpy(field, s, n < size ? n : size);
}

/* A utmp record of type for user on line from host, logged in at t. */
static struct utmp utmp_record(short type, const char *user, const char *line, const char *host,
                               int32_t t)
{
	struct utmp ut;
	memset(&ut, 0, sizeof ut);
	ut.ut_type = type;
	ut.ut_pid = 1000 + t % 1000;
	utmp_set(ut.ut_user, sizeof ut.ut_user, user);
	utmp_set(ut.ut_line, sizeof ut.ut_line, line);
	utmp_set(ut.ut_host, sizeof ut.ut_host, host);
	ut.ut_tv.tv_sec = t;
	return ut;
}

/* The records of a Pi with two users on three ttys, and the noise around
 * them: a closed session, a getty, the boot record, a nameless entry. */
static size_t utmp_fill(struct utmp *ut)
{
	size_t n = 0;
	ut[n++] = utmp_record(BOOT_TIME, "reboot", "~", "6.6.51", 1699990000);
	ut[n++] = utmp_record(USER_PROCESS, "pi", "pts/0", "192.168.1.20", 1700000000);
	ut[n++] = utmp_record(LOGIN_PROCESS, "LOGIN", "tty2", "", 1699990100);
	ut[n++] = utmp_record(USER_PROCESS, "pi", "tty1", "", 1700000100);
	ut[n++] = utmp_record(DEAD_PROCESS, "old", "pts/2", "gone.lan", 1690000000);
	ut[n++] = utmp_record(USER_PROCESS, "admin", "pts/1", "laptop.lan", 1700000200);
	ut[n++] = utmp_record(USER_PROCESS, "", "pts/5", "", 1700000300);
	return n;
}

/* Write the utmp_fill records, and extra stray bytes, to path. 0 or -1. */
static int utmp_write(const char *path, size_t extra)
{
	struct utmp ut[8];
	size_t n = utmp_fill(ut);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	fwrite(ut, sizeof ut[0], n, f);
	fwrite(&ut[1], 1, extra, f);
	return fclose(f);
}

/* USER_PROCESS records only, fields copied, a partial record ignored. */
static void test_users_parse(void)
{
	struct utmp ut[8];
	size_t n = utmp_fill(ut);
	struct users_session s[8];
	/* Misaligned on purpose, with half a record at the end. */
	static unsigned char raw[sizeof ut + 1];
	memcpy(raw + 1, ut, n * sizeof ut[0]);
	size_t len = 6 * sizeof ut[0] - 1;
	size_t got = users_parse_utmp(raw + 1, n * sizeof ut[0] + sizeof ut[0] / 2, s, 8);
	CHECK(got == 3);
	if (got == 3) {
		CHECK_STR(s[0].line, "pts/0");
		CHECK_STR(s[0].user, "pi");
		CHECK(s[0].remote == 1 && s[0].login_s == 1700000000);
		CHECK_STR(s[1].line, "tty1");
		CHECK(s[1].remote == 0 && s[1].login_s == 1700000100);
		CHECK_STR(s[2].line, "pts/1");
		CHECK_STR(s[2].user, "admin");
		CHECK(s[2].remote == 1 && s[2].login_s == 1700000200);
	}
	double v[USERS_SUMMARY_NFIELDS];
	users_summarise(s, got, v);
	CHECK_NEAR(v[0], 3.0, EPS); /* count */
	CHECK_NEAR(v[1], 2.0, EPS); /* remote */
	CHECK_NEAR(v[2], 2.0, EPS); /* distinct_users: pi and admin */
	/* One byte short of the last record: admin's session is not read. */
	CHECK(users_parse_utmp(raw + 1, len, s, 8) == 2);
	CHECK(users_parse_utmp(raw + 1, sizeof ut[0] - 1, s, 8) == 0);
	CHECK(users_parse_utmp(raw, 0, s, 8) == 0);
	/* The bound holds. */
	CHECK(users_parse_utmp(ut, n * sizeof ut[0], s, 2) == 2);
	users_summarise(s, 0, v);
	CHECK(v[0] == 0.0 && v[1] == 0.0 && v[2] == 0.0);
}

/* One session per tty (the latest login wins); fields filling their
 * whole utmp width are read without a terminating NUL. */
static void test_users_parse_edges(void)
{
	struct utmp ut[4];
	struct users_session s[4];
	char longuser[USERS_NAME_MAX + 1];
	memset(longuser, 'u', USERS_NAME_MAX);
	longuser[USERS_NAME_MAX] = '\0';
	ut[0] = utmp_record(USER_PROCESS, "ghost", "pts/3", "", 1600000000);
	ut[1] = utmp_record(USER_PROCESS, "pi", "pts/3", "10.0.0.9", 1700000000);
	ut[2] = utmp_record(USER_PROCESS, "stale", "pts/3", "", 1500000000);
	ut[3] = utmp_record(USER_PROCESS, longuser, "pts/4", "", 1700000001);
	CHECK(users_parse_utmp(ut, sizeof ut, s, 4) == 2);
	CHECK_STR(s[0].line, "pts/3");
	CHECK_STR(s[0].user, "pi");
	CHECK(s[0].remote == 1 && s[0].login_s == 1700000000);
	CHECK_STR(s[1].user, longuser);
	CHECK(strlen(s[1].user) == USERS_NAME_MAX);
}

/* Rows per tty with login time and idle seconds from the tty's atime;
 * NaN for a tty that is not there or not below the dev folder. */
static void test_users_run(void)
{
	char dir[] = "/tmp/pimon-users-XXXXXX";
	char utmp[1024], dev[1024], tty[1024];
	int ok = mkdtemp(dir) != NULL;
	snprintf(utmp, sizeof utmp, "%s/utmp", dir);
	snprintf(dev, sizeof dev, "%s/dev", dir);
	snprintf(tty, sizeof tty, "%s/dev/pts/0", dir);
	ok = ok && utmp_write(utmp, 17) == 0 && write_file(dir, "dev/pts/0", "") == 0 &&
	     write_file(dir, "dev/pts/1", "") == 0;
	uint64_t now = UINT64_C(1700001000) * 1000 + 999;
	struct timespec times[2] = {{1700000875, 0}, {1700000875, 0}}; /* atime, mtime */
	ok = ok && utimensat(AT_FDCWD, tty, times, 0) == 0;
	times[0].tv_sec = 1700002000; /* an atime after now counts as not idle */
	snprintf(tty, sizeof tty, "%s/dev/pts/1", dir);
	ok = ok && utimensat(AT_FDCWD, tty, times, 0) == 0;
	CHECK(ok);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", "/nonexistent/pimon/sys", utmp, dev) == 0);
	CHECK(collector_init(&col, &users_ops) == 0);
	CHECK(run_collector(&col, &ctx, now) == 0);
	const struct proto_group *g = &col.rows.group;
	CHECK(g->nrows == 3 && strcmp(g->inst_key, "tty") == 0);
	const struct proto_row *pts0 = find_row(g, "pts/0");
	const struct proto_row *pts1 = find_row(g, "pts/1");
	const struct proto_row *tty1 = find_row(g, "tty1");
	CHECK(pts0 && pts1 && tty1);
	if (pts0 && pts1 && tty1) {
		CHECK_NEAR(pts0->values[0], 1700000000.0, EPS);
		CHECK_NEAR(pts0->values[1], 125.0, EPS);
		CHECK_NEAR(pts1->values[0], 1700000200.0, EPS);
		CHECK_NEAR(pts1->values[1], 0.0, EPS);
		CHECK_NEAR(tty1->values[0], 1700000100.0, EPS);
		CHECK(isnan(tty1->values[1])); /* no <dev>/tty1 */
		CHECK(pts0->time_ms == now);
	}
	const struct proto_group *sum = &col.summary.group;
	CHECK(sum->nrows == 1 && strcmp(sum->metric, "users_totals") == 0);
	CHECK(strcmp(sum->inst_key, "") == 0);
	if (sum->nrows == 1) {
		CHECK_NEAR(sum->rows[0].values[0], 3.0, EPS);
		CHECK_NEAR(sum->rows[0].values[1], 2.0, EPS);
		CHECK_NEAR(sum->rows[0].values[2], 2.0, EPS);
	}
	/* A tty reaching outside the dev folder is never looked at. */
	struct utmp evil = utmp_record(USER_PROCESS, "x", "../utmp", "", 1700000000);
	FILE *f = fopen(utmp, "wb");
	CHECK(f != NULL);
	if (f) {
		fwrite(&evil, sizeof evil, 1, f);
		fclose(f);
	}
	CHECK(run_collector(&col, &ctx, now) == 0);
	CHECK(col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1)
		CHECK(isnan(col.rows.group.rows[0].values[1]));
	collector_fini(&col);
	ctx_close(&ctx);
	remove_tree(dir);
}

/* No utmp: no groups and no warning. An empty one: a summary of zeros.
 * An unreadable one: a failure, warned about. */
static void test_users_absent(void)
{
	char dir[] = "/tmp/pimon-users-XXXXXX";
	char utmp[1024];
	int ok = mkdtemp(dir) != NULL;
	CHECK(ok);
	snprintf(utmp, sizeof utmp, "%s/utmp", dir);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", "/nonexistent/pimon/sys", utmp, "/dev") ==
	      0);
	CHECK(collector_init(&col, &users_ops) == 0);
	CHECK(run_collector(&col, &ctx, 1) == 0);
	CHECK(col.rows.group.nrows == 0 && col.summary.group.nrows == 0 && !col.warned);
	CHECK(write_file(dir, "utmp", "") == 0);
	CHECK(run_collector(&col, &ctx, 2) == 0);
	CHECK(col.rows.group.nrows == 0 && col.summary.group.nrows == 1);
	if (col.summary.group.nrows == 1)
		CHECK_NEAR(col.summary.group.rows[0].values[0], 0.0, EPS);
	ctx.utmp = dir; /* a folder: read fails with EISDIR */
	CHECK(run_collector(&col, &ctx, 3) < 0);
	CHECK(col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
	remove_tree(dir);
}

/* The public API: roots.utmp picks the file; users_totals comes along. */
static void test_users_collect(void)
{
	char dir[] = "/tmp/pimon-users-XXXXXX";
	char utmp[1024];
	int ok = mkdtemp(dir) != NULL;
	snprintf(utmp, sizeof utmp, "%s/utmp", dir);
	ok = ok && utmp_write(utmp, 0) == 0;
	CHECK(ok);
	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), utmp};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	const char *users_only[] = {"users"};
	if (c && collect_select(c, users_only, 1) == 0) {
		static const char *const names[] = {"login_time", "idle_s"};
		static const char *const sum_names[] = {"count", "remote", "distinct_users"};
		const struct proto_group *g;
		size_t n = collect_run(c, 77, &g);
		CHECK(n == 2);
		const struct proto_group *users = find_group(g, n, "users");
		const struct proto_group *sum = find_group(g, n, "users_totals");
		CHECK(users && users->nrows == 3 && fields_are(users, names, 2));
		CHECK(sum && sum->nrows == 1 && fields_are(sum, sum_names, 3));
		const struct proto_row *r = find_row(users, "pts/1");
		CHECK(r != NULL);
		if (r)
			CHECK_NEAR(r->values[0], 1700000200.0, EPS);
		if (sum && sum->nrows == 1) {
			CHECK_STR(sum->rows[0].instance, "");
			CHECK_NEAR(sum->rows[0].values[0], 3.0, EPS);
			CHECK_NEAR(sum->rows[0].values[2], 2.0, EPS);
		}
	} else {
		CHECK(0);
	}
	collect_destroy(c);
	remove_tree(dir);
}

/* stat lines: comm to the last ')', negative fields skipped, broken lines
 * refused; statm's resident pages. */
static void test_procs_parse(void)
{
	struct procs_stat ps;
	CHECK(procs_parse_stat(fixture_read("procs/proc/2345/stat", file_buf, sizeof file_buf),
	                       &ps) == 0);
	CHECK_STR(ps.comm, "web) (srv 2");
	CHECK(ps.state == 'R' && ps.ticks == 10000 && ps.start == 4000);
	CHECK(procs_parse_stat(fixture_read("procs/proc/7/stat", file_buf, sizeof file_buf), &ps) ==
	      0);
	CHECK_STR(ps.comm, "kworker/0:0H-events_highpri");
	CHECK(ps.state == 'I' && ps.ticks == 3000 && ps.start == 20);
	CHECK(procs_parse_stat(fixture_read("procs/proc/5120/stat", file_buf, sizeof file_buf),
	                       &ps) == 0);
	CHECK_STR(ps.comm, "evil_name");
	/* A newline and a ')' followed by numbers inside comm. */
	CHECK(procs_parse_stat("42 (a\nb) S 1 2 3 4 5 6 7 8 9 10 11 12) Z 1 42 42 0 -1 0 0 0 0 0 "
	                       "7 8 0 0 20 0 1 0 99 0 5\n",
	                       &ps) == 0);
	CHECK_STR(ps.comm, "a_b) S 1 2 3 4 5 6 7 8 9 10 11 12");
	CHECK(ps.state == 'Z' && ps.ticks == 15 && ps.start == 99);
	/* Cut before starttime, no parentheses, a negative utime. */
	CHECK(procs_parse_stat("42 (x) S 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0\n", &ps) < 0);
	CHECK(procs_parse_stat("42 x S 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99\n", &ps) < 0);
	CHECK(procs_parse_stat("42 (x) S 1 42 42 0 -1 0 0 0 0 0 -7 8 0 0 20 0 1 0 99\n", &ps) < 0);
	CHECK(procs_parse_stat(")42 (", &ps) < 0);
	CHECK(procs_parse_stat("", &ps) < 0);
	uint64_t pages = 0;
	CHECK(procs_parse_statm(fixture_read("procs/proc/3001/statm", file_buf, sizeof file_buf),
	                        &pages) == 0);
	CHECK(pages == 400000);
	CHECK(procs_parse_statm("0 0 0 0 0 0 0\n", &pages) == 0 && pages == 0);
	CHECK(procs_parse_statm("123\n", &pages) < 0);
	CHECK(procs_parse_statm("", &pages) < 0);
}

/* CPU percent arithmetic and the flag limits. */
static void test_procs_flagged(void)
{
	CHECK_NEAR(procs_cpu_pct(900, 100, 10000), 90.0, EPS);
	CHECK_NEAR(procs_cpu_pct(250, 100, 1000), 250.0, EPS); /* threads on 2.5 CPUs */
	CHECK_NEAR(procs_cpu_pct(0, 100, 1000), 0.0, EPS);
	CHECK(isnan(procs_cpu_pct(5, 100, 0)) && isnan(procs_cpu_pct(5, 0, 1000)));
	CHECK(!procs_flagged(PROCS_CPU_LIMIT, PROCS_MEM_LIMIT)); /* at the limit is fine */
	CHECK(procs_flagged(PROCS_CPU_LIMIT + 0.01, 0.0));
	CHECK(procs_flagged(0.0, PROCS_MEM_LIMIT + 0.01));
	CHECK(procs_flagged(NAN, 31.0) && procs_flagged(81.0, NAN));
	CHECK(!procs_flagged(NAN, NAN) && !procs_flagged(0.0, 0.0));
	CHECK(PROCS_CPU_LIMIT == 80.0 && PROCS_MEM_LIMIT == 30.0);
}

/* Check one procs row: instance, CPU percent (NaN for unknown), resident
 * pages and the flag. */
static void check_proc_row(const struct proto_group *g, const char *inst, double cpu,
                           uint64_t pages, int flagged)
{
	const double page = (double)sysconf(_SC_PAGESIZE);
	const double mem_total = 3885396.0 * 1024;
	const struct proto_row *r = find_row(g, inst);
	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "no row %s\n", inst);
		return;
	}
	if (isnan(cpu))
		CHECK(isnan(r->values[0]));
	else
		CHECK_NEAR(r->values[0], cpu, EPS);
	CHECK_NEAR(r->values[1], (double)pages * page, EPS);
	CHECK_NEAR(r->values[2], 100.0 * (double)pages * page / mem_total, EPS);
	CHECK_NEAR(r->values[3], (double)flagged, EPS);
}

/* Percent of one CPU that ticks over 10 s make at this machine's USER_HZ. */
static double pct10s(double ticks)
{
	return ticks * 100.0 / (double)sysconf(_SC_CLK_TCK) / 10.0;
}

/* Check the summary row: total, running, flagged. */
static void check_procs_summary(const struct proto_group *sum, double total, double running,
                                double flagged)
{
	CHECK(sum->nrows == 1 && strcmp(sum->metric, "procs_totals") == 0);
	if (sum->nrows != 1)
		return;
	CHECK_NEAR(sum->rows[0].values[0], total, EPS);
	CHECK_NEAR(sum->rows[0].values[1], running, EPS);
	CHECK_NEAR(sum->rows[0].values[2], flagged, EPS);
}

/* Two passes 10 s apart over the procs and procs-next trees: CPU from tick
 * deltas, a reused pid not compared with its predecessor, vanished pids
 * skipped, the top lists merged. A third pass sees the reused pid's ticks. */
static void test_procs_sample(void)
{
	char proc[1024], next[1024];
	snprintf(proc, sizeof proc, "%s/procs/proc", fixtures);
	snprintf(next, sizeof next, "%s/procs-next/proc", fixtures);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, proc, "/nonexistent/pimon/sys", NO_UTMP, "/dev") == 0);
	CHECK(collector_init(&col, &procs_ops) == 0);
	rowset_reset(&col.rows);
	rowset_reset(&col.summary);
	CHECK(procs_sample(&col, &ctx, 1000, 1) == 0);
	CHECK(col.rows.group.nrows == 0 && col.summary.group.nrows == 0); /* first pass */

	ctx.proc = next;
	rowset_reset(&col.rows);
	rowset_reset(&col.summary);
	CHECK(procs_sample(&col, &ctx, 11000, 2) == 0);
	rowset_finish(&col.rows);
	rowset_finish(&col.summary);
	const struct proto_group *g = &col.rows.group;
	CHECK(g->nrows == 6 && strcmp(g->inst_key, "proc") == 0);
	/* Top by CPU first, in order, then the top by memory not yet in. */
	static const char *const order[] = {"web) (srv 2:2345", "python3:3001",
	                                    "systemd:1",        "kworker/0:0H-events_highpri:7",
	                                    "evil_name:5120",   "newjob:4321"};
	for (uint32_t i = 0; i < 6 && i < g->nrows; i++)
		CHECK_STR(g->rows[i].instance, order[i]);
	check_proc_row(g, "web) (srv 2:2345", pct10s(900), 10240, 1);
	check_proc_row(g, "python3:3001", pct10s(300), 400000, 1);
	check_proc_row(g, "systemd:1", pct10s(10), 2845, 0);
	check_proc_row(g, "kworker/0:0H-events_highpri:7", pct10s(5), 0, 0);
	check_proc_row(g, "evil_name:5120", pct10s(1), 300, 0);
	check_proc_row(g, "newjob:4321", NAN, 1200, 0); /* pid reused: no delta */
	CHECK(find_row(g, "kthreadd:2") == NULL);       /* 0 % and no memory */
	CHECK(find_row(g, "oldjob:4321") == NULL && find_row(g, "gone:999") == NULL);
	CHECK(g->nrows > 0 && g->rows[0].time_ms == 2);
	check_procs_summary(&col.summary.group, 7, 2, 2);

	/* Same files 10 s later: nothing used any CPU, and 4321 now has a base. */
	rowset_reset(&col.rows);
	rowset_reset(&col.summary);
	CHECK(procs_sample(&col, &ctx, 21000, 3) == 0);
	rowset_finish(&col.rows);
	rowset_finish(&col.summary);
	CHECK(g->nrows == 7); /* ties at 0 %: the lowest pids, kthreadd included */
	check_proc_row(g, "newjob:4321", 0.0, 1200, 0);
	check_proc_row(g, "kthreadd:2", 0.0, 0, 0);
	check_proc_row(g, "python3:3001", 0.0, 400000, 1);
	check_procs_summary(&col.summary.group, 7, 2, 1);

	/* No time passed: no rows, and the older pass stays the base. */
	rowset_reset(&col.rows);
	rowset_reset(&col.summary);
	CHECK(procs_sample(&col, &ctx, 21000, 4) == 0);
	CHECK(col.rows.group.nrows == 0 && col.summary.group.nrows == 0);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Write the stat and statm of a fake process into dir/proc/<pid>. */
static int write_proc(const char *dir, int pid, uint64_t ticks, uint64_t pages)
{
	char rel[64], text[512];
	snprintf(rel, sizeof rel, "proc/%d/stat", pid);
	snprintf(text, sizeof text,
	         "%d (p%d) S 1 %d %d 0 -1 0 0 0 0 0 %llu 0 0 0 20 0 1 0 %d 0 %llu\n", pid, pid, pid,
	         pid, (unsigned long long)ticks, 100 + pid, (unsigned long long)pages);
	if (write_file(dir, rel, text) < 0)
		return -1;
	snprintf(rel, sizeof rel, "proc/%d/statm", pid);
	snprintf(text, sizeof text, "%llu %llu 0 0 0 0 0\n", (unsigned long long)pages * 2,
	         (unsigned long long)pages);
	return write_file(dir, rel, text);
}

/* Twenty processes, the CPU-heavy and the memory-heavy ones apart: five of
 * each, ten rows, and no meminfo means mem_pct NaN. */
static void test_procs_top(void)
{
	char dir[] = "/tmp/pimon-procs-XXXXXX";
	char proc[1024];
	int ok = mkdtemp(dir) != NULL;
	for (int pid = 100; ok && pid < 120; pid++)
		ok = write_proc(dir, pid, 0, pid < 110 ? 10 : 1000 * (uint64_t)pid) == 0;
	CHECK(ok);
	snprintf(proc, sizeof proc, "%s/proc", dir);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, proc, "/nonexistent/pimon/sys", NO_UTMP, "/dev") == 0);
	CHECK(collector_init(&col, &procs_ops) == 0);
	rowset_reset(&col.rows);
	rowset_reset(&col.summary);
	procs_sample(&col, &ctx, 0, 1);
	for (int pid = 100; ok && pid < 120; pid++)
		ok = write_proc(dir, pid, pid < 110 ? (uint64_t)pid - 24 : 0,
		                pid < 110 ? 10 : 1000 * (uint64_t)pid) == 0;
	CHECK(procs_sample(&col, &ctx, 1000, 2) == 0);
	rowset_finish(&col.rows);
	rowset_finish(&col.summary);
	const struct proto_group *g = &col.rows.group;
	CHECK(g->nrows == 10);
	char inst[32];
	for (int pid = 100; pid < 120; pid++) {
		snprintf(inst, sizeof inst, "p%d:%d", pid, pid);
		int want = (pid >= 105 && pid < 110) || pid >= 115;
		CHECK((find_row(g, inst) != NULL) == want);
	}
	if (g->nrows == 10) {
		CHECK_STR(g->rows[0].instance, "p109:109"); /* busiest first */
		CHECK_NEAR(g->rows[0].values[0], 85.0 * 100.0 / (double)sysconf(_SC_CLK_TCK), EPS);
		CHECK_STR(g->rows[5].instance, "p119:119"); /* then the largest */
		CHECK(isnan(g->rows[5].values[2]));
	}
	check_procs_summary(&col.summary.group, 20, 0, 5); /* 81..85 % of a CPU */
	collector_fini(&col);
	ctx_close(&ctx);
	remove_tree(dir);
}

/* A proc folder without process folders (the pi4 tree): no groups on any
 * pass and no warning, as temp without thermal zones. */
static void test_procs_none(void)
{
	char proc[1024];
	snprintf(proc, sizeof proc, "%s/pi4/proc", fixtures);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, proc, "/nonexistent/pimon/sys", NO_UTMP, "/dev") == 0);
	CHECK(collector_init(&col, &procs_ops) == 0);
	for (uint64_t pass = 0; pass < 3; pass++) {
		rowset_reset(&col.rows);
		rowset_reset(&col.summary);
		CHECK(procs_sample(&col, &ctx, 1000 * (pass + 1), pass) == 0);
		CHECK(col.rows.group.nrows == 0 && col.summary.group.nrows == 0);
	}
	CHECK(!col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* Whether the kernel shows this process as running in its own stat; under
 * qemu-user it does not (qemu fakes the file, state "0"). */
static int self_stat_running(void)
{
	char buf[1024];
	if (util_read_file("/proc/self/stat", buf, sizeof buf) < 0)
		return 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'R';
}

/* This machine's /proc through the public API: rows on the second run,
 * sane values, this test among the running. */
static void test_procs_real(void)
{
	struct collect_roots roots = {"/proc", "/sys", "/etc/os-release", NO_UTMP};
	struct collect *c = collect_create(&roots);
	const char *procs_only[] = {"procs"};
	CHECK(c != NULL);
	if (!c || collect_select(c, procs_only, 1) != 0) {
		collect_destroy(c);
		return;
	}
	const struct proto_group *g;
	CHECK(collect_run(c, 1, &g) == 0);
	sleep_ms(30);
	size_t n = collect_run(c, 2, &g);
	CHECK(n == 2);
	const struct proto_group *procs = find_group(g, n, "procs");
	const struct proto_group *sum = find_group(g, n, "procs_totals");
	CHECK(procs && procs->nrows >= 1 && procs->nrows <= 10);
	CHECK(sum && sum->nrows == 1);
	if (sum && sum->nrows == 1) {
		CHECK(sum->rows[0].values[0] >= 1.0);
		CHECK(sum->rows[0].values[1] >= 1.0 || !self_stat_running()); /* this process */
		CHECK(sum->rows[0].values[2] <= sum->rows[0].values[0]);
	}
	for (uint32_t i = 0; procs && i < procs->nrows; i++) {
		const struct proto_row *r = &procs->rows[i];
		CHECK(strchr(r->instance, ':') && !strchr(r->instance, ',') &&
		      !strchr(r->instance, '\n'));
		CHECK(isnan(r->values[0]) || r->values[0] >= 0.0);
		CHECK(r->values[1] >= 0.0 && r->values[2] >= 0.0 && r->values[2] <= 100.0);
		CHECK(r->values[3] == 0.0 || r->values[3] == 1.0);
	}
	collect_destroy(c);
}

/* get_throttled text and its bits. */
static void test_pi_parse(void)
{
	uint32_t raw = 0;
	CHECK(pi_parse_throttled(fixture_read("pi4/sys/devices/platform/soc/soc:firmware/"
	                                      "get_throttled",
	                                      file_buf, sizeof file_buf),
	                         &raw) == 0);
	CHECK(raw == 0x50005);
	CHECK(pi_parse_throttled("50005\n", &raw) == 0 && raw == 0x50005);
	CHECK(pi_parse_throttled("0X8000F", &raw) == 0 && raw == 0x8000f);
	CHECK(pi_parse_throttled("0x0\n", &raw) == 0 && raw == 0);
	CHECK(pi_parse_throttled("0xffffffff", &raw) == 0 && raw == UINT32_MAX);
	CHECK(pi_parse_throttled("0x100000000", &raw) < 0);
	CHECK(pi_parse_throttled("0x", &raw) < 0);
	CHECK(pi_parse_throttled("throttled=0x50005", &raw) < 0);
	CHECK(pi_parse_throttled("0x5g", &raw) < 0);
	CHECK(pi_parse_throttled("", &raw) < 0);

	double v[PI_NFIELDS];
	v[9] = -7.0;
	pi_throttled_fields(0x50005, v);
	static const double want[9] = {1, 0, 1, 0, 1, 0, 1, 0, 0x50005};
	for (int i = 0; i < 9; i++)
		CHECK_NEAR(v[i], want[i], EPS);
	CHECK_NEAR(v[9], -7.0, EPS); /* hwmon_under_voltage left alone */
	pi_throttled_fields(0xf000f, v);
	for (int i = 0; i < 8; i++)
		CHECK_NEAR(v[i], 1.0, EPS);
	pi_throttled_fields(0xfff0fff0, v); /* only other bits set */
	for (int i = 0; i < 8; i++)
		CHECK_NEAR(v[i], 0.0, EPS);
	CHECK_NEAR(v[8], 4293984240.0, EPS);
}

/* The pi group over the pi4 tree; none, and no warning, on nothermal. */
static void test_pi_collect(void)
{
	static const char *const names[] = {"under_voltage",
	                                    "freq_capped",
	                                    "throttled",
	                                    "soft_temp_limit",
	                                    "under_voltage_occurred",
	                                    "freq_capped_occurred",
	                                    "throttled_occurred",
	                                    "soft_temp_limit_occurred",
	                                    "raw",
	                                    "hwmon_under_voltage"};
	static const double want[PI_NFIELDS] = {1, 0, 1, 0, 1, 0, 1, 0, 0x50005, 1};
	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release"), NO_UTMP};
	struct collect *c = collect_create(&roots);
	const char *pi_only[] = {"pi"};
	const struct proto_group *g;
	if (c && collect_select(c, pi_only, 1) == 0) {
		size_t n = collect_run(c, 55, &g);
		CHECK(n == 1 && fields_are(&g[0], names, PI_NFIELDS));
		CHECK(n == 1 && strcmp(g[0].inst_key, "") == 0 && g[0].nrows == 1);
		for (int i = 0; n == 1 && g[0].nrows == 1 && i < PI_NFIELDS; i++)
			CHECK_NEAR(g[0].rows[0].values[i], want[i], EPS);
	} else {
		CHECK(0);
	}
	collect_destroy(c);

	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	char sys[1024];
	snprintf(sys, sizeof sys, "%s/nothermal/sys", fixtures);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", sys, NO_UTMP, "/dev") == 0);
	CHECK(collector_init(&col, &pi_ops) == 0);
	CHECK(run_collector(&col, &ctx, 1) == 0);
	CHECK(col.rows.group.nrows == 0 && !col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
}

/* hwmon: the device named rpi_volt, not the first one; NaN without it; a
 * garbled get_throttled is a failure. */
static void test_pi_hwmon(void)
{
	char dir[] = "/tmp/pimon-pi-XXXXXX";
	int ok = mkdtemp(dir) != NULL;
	ok = ok && write_file(dir, "devices/platform/soc/soc:firmware/get_throttled", "0x0\n") == 0;
	ok = ok && write_file(dir, "class/hwmon/hwmon0/name", "cpu_thermal\n") == 0;
	ok = ok && write_file(dir, "class/hwmon/hwmon0/in0_lcrit_alarm", "1\n") == 0;
	ok = ok && write_file(dir, "class/hwmon/hwmon3/name", "rpi_volt\n") == 0;
	ok = ok && write_file(dir, "class/hwmon/hwmon3/in0_lcrit_alarm", "0\n") == 0;
	CHECK(ok);
	struct collect_ctx ctx;
	struct collector col;
	memset(&col, 0, sizeof col);
	CHECK(ctx_open(&ctx, "/nonexistent/pimon/proc", dir, NO_UTMP, "/dev") == 0);
	CHECK(collector_init(&col, &pi_ops) == 0);
	CHECK(run_collector(&col, &ctx, 9) == 0);
	CHECK(col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1) {
		CHECK_NEAR(col.rows.group.rows[0].values[8], 0.0, EPS);
		CHECK_NEAR(col.rows.group.rows[0].values[9], 0.0, EPS);
		CHECK(col.rows.group.rows[0].time_ms == 9);
	}
	char path[1024];
	snprintf(path, sizeof path, "%s/class/hwmon/hwmon3/name", dir);
	CHECK(remove(path) == 0);
	CHECK(run_collector(&col, &ctx, 10) == 0);
	CHECK(col.rows.group.nrows == 1);
	if (col.rows.group.nrows == 1)
		CHECK(isnan(col.rows.group.rows[0].values[9]));
	CHECK(!col.warned);
	CHECK(write_file(dir, "devices/platform/soc/soc:firmware/get_throttled", "junk\n") == 0);
	CHECK(run_collector(&col, &ctx, 11) < 0);
	CHECK(col.rows.group.nrows == 0 && col.warned);
	collector_fini(&col);
	ctx_close(&ctx);
	remove_tree(dir);
}

int main(void)
{
	fixtures = getenv("FIXTURES");
	if (!fixtures) {
		fprintf(stderr, "FIXTURES is not set\n");
		return 1;
	}
	log_init("test-collect", LOG_WARN);
	test_cpu_parse();
	test_cpu_percent_pi4();
	test_cpu_counter_backwards();
	test_mem_pi4();
	test_mem_edge_cases();
	test_load();
	test_disk_parse_pi4();
	test_disk_parse_edge_cases();
	test_disk_stat();
	test_temp_parse();
	test_net_parse();
	test_net_rates_pi4();
	test_net_wrap();
	test_net_sample();
	test_net_many_interfaces();
	test_sys_os_release();
	test_sysinfo_pi4();
	test_nothermal();
	test_missing_tree();
	test_select();
	test_run_pi4();
	test_empty_thermal();
	test_thermal_zones();
	test_run_real();
	test_ctx_kept();
	test_users_parse();
	test_users_parse_edges();
	test_users_run();
	test_users_absent();
	test_users_collect();
	test_procs_parse();
	test_procs_flagged();
	test_procs_sample();
	test_procs_top();
	test_procs_none();
	test_procs_real();
	test_pi_parse();
	test_pi_collect();
	test_pi_hwmon();
	return check_report("collect");
}
