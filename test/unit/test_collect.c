/* Unit tests for the built-in collectors: buffer parsers over fixture
 * trees, counter wrap handling, and collect_run through the public API. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "collect.h"
#include "collect_int.h"
#include "collect_parse.h"
#include "log.h"
#include "util.h"

#define EPS 1e-6

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
	                              fixture_path(2, "pi4/etc/os-release")};
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
	                              fixture_path(2, "nothermal/etc/os-release")};
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
	                              "/nonexistent/pimon/os-release"};
	struct collect *c = collect_create(&roots);
	CHECK(c != NULL);
	if (!c)
		return;
	const struct proto_group *g;
	CHECK(collect_run(c, 1, &g) == 0);
	CHECK(collect_run(c, 2, &g) == 0);
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

	struct collect_roots roots = {fixture_path(0, "pi4/proc"), fixture_path(1, "pi4/sys"),
	                              fixture_path(2, "pi4/etc/os-release")};
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

static const char *const proc_files[] = {"stat", "meminfo", "loadavg", "mounts", "net/dev"};

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
	CHECK(n == 4); /* mem, disk, load, temp: rates need a second run */
	CHECK(find_group(g, n, "cpu") == NULL && find_group(g, n, "net") == NULL);
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
	CHECK(n == 6);
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
	                              fixture_path(2, "pi4/etc/os-release")};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	CHECK(c != NULL);
	if (c) {
		const struct proto_group *g;
		uint64_t now = UINT64_C(1700000000000);
		size_t n = collect_run(c, now, &g);
		check_pi4_first_run(g, n);
		CHECK(copy_fixture("pi4-next/proc/stat", proc, "stat") == 0);
		CHECK(copy_fixture("pi4-next/proc/net/dev", proc, "net/dev") == 0);
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
	struct collect_roots roots = {proc, sys, fixture_path(2, "pi4/etc/os-release")};
	struct collect *c = ok ? collect_create(&roots) : NULL;
	CHECK(c != NULL);
	if (c) {
		const struct proto_group *g;
		size_t n = collect_run(c, 1, &g);
		CHECK(n == 3 && find_group(g, n, "temp") == NULL);
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
	struct collect_roots roots = {"/nonexistent/pimon/proc", dir, "/nonexistent/os-release"};
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
	struct collect_roots roots = {"/proc", "/sys", "/etc/os-release"};
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
		n = collect_run(c, 2 + (uint64_t)i, &g);
		cpu = find_group(g, n, "cpu");
	}
	CHECK(cpu && cpu->nrows == 1);
	for (int i = 0; cpu && i < CPU_NFIELDS; i++)
		CHECK(cpu->rows[0].values[i] >= 0.0 && cpu->rows[0].values[i] <= 100.0);
	int finite = 1;
	for (size_t i = 0; i < n; i++)
		for (uint32_t r = 0; r < g[i].nrows; r++)
			for (uint8_t f = 0; f < g[i].nfields; f++)
				finite &= isfinite(g[i].rows[r].values[f]) &&
				          g[i].rows[r].values[f] >= -300.0;
	CHECK(finite);
	struct proto_hello h = {0};
	collect_sysinfo(c, &h);
	CHECK(h.os[0] != '\0' && h.kernel[0] != '\0');
	CHECK(strlen(h.boot_id) == 36);
	CHECK(h.uptime_s > 0);
	collect_destroy(c);
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
	return check_report("collect");
}
