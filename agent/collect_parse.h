/* Buffer parsers and arithmetic behind the built-in collectors. They take
 * file contents, not paths, so unit tests feed fixtures. No I/O except
 * disk_stat, which asks statvfs about one mount point. */
#ifndef PIMON_COLLECT_PARSE_H
#define PIMON_COLLECT_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define CPU_NFIELDS  9
#define MEM_NFIELDS  11
#define DISK_NFIELDS 7
#define LOAD_NFIELDS 5
#define TEMP_NFIELDS 1
#define NET_NFIELDS  10

#define USERS_NFIELDS         2
#define USERS_SUMMARY_NFIELDS 3
#define PROCS_NFIELDS         4
#define PROCS_SUMMARY_NFIELDS 3
#define PI_NFIELDS            10
#define DISKIO_NFIELDS        7
#define VMSTAT_NFIELDS        5
#define PRESSURE_NFIELDS      6
#define CLOCK_NFIELDS         4
#define WIFI_NFIELDS          3
#define CPUFREQ_NFIELDS       3
#define HOST_NFIELDS          2

/* Jiffies of the aggregate "cpu " line of /proc/stat, in its order. */
enum cpu_state {
	CPU_USER,
	CPU_NICE,
	CPU_SYSTEM,
	CPU_IDLE,
	CPU_IOWAIT,
	CPU_IRQ,
	CPU_SOFTIRQ,
	CPU_STEAL,
	CPU_NSTATES
};

struct cpu_times {
	uint64_t t[CPU_NSTATES];
};

/* Parse the "cpu " line of a /proc/stat buffer. 0 or -1. */
int cpu_parse_stat(const char *buf, struct cpu_times *out);

/* One core's line of /proc/stat ("cpu3 ..."). */
struct cpu_core {
	unsigned id;
	struct cpu_times times;
};

/* Parse every "cpuN" line of a /proc/stat buffer. Stores at most max cores
 * and returns how many there are. */
size_t cpu_parse_cores(const char *buf, struct cpu_core *out, size_t max);

/* Percentages between two samples in the cpu group's field order (usage,
 * user, nice, system, idle, iowait, irq, softirq, steal). A counter that
 * went back counts as 0. Returns -1 (no row) when no time passed. */
int cpu_percent(const struct cpu_times *old, const struct cpu_times *cur, double out[CPU_NFIELDS]);

/* Parse a /proc/meminfo buffer into the mem group's fields. 0, or -1 when
 * MemTotal is missing. */
int mem_parse_meminfo(const char *buf, double out[MEM_NFIELDS]);

/* Parse a /proc/loadavg buffer into load1, load5, load15, running, total. */
int load_parse(const char *buf, double out[LOAD_NFIELDS]);

/* One line of /proc/mounts; the strings point into the parsed buffer. */
struct disk_mount {
	const char *device;
	const char *dir;
	const char *type;
};

/* Non-zero for a file system type that holds data on a disk or a share
 * (ext4, xfs, btrfs, vfat, nfs...), zero for pseudo and image ones. */
int disk_type_wanted(const char *type);

/* Split a /proc/mounts buffer in place into at most max mounts worth
 * reporting: wanted types only, first mount of each device only (bind
 * mounts and subvolumes dropped), octal escapes such as \040 decoded.
 * Returns how many were stored. */
size_t disk_parse_mounts(char *buf, struct disk_mount *out, size_t max);

/* statvfs one mount point into the disk group's fields. 0, or -1 when it
 * cannot be read or has no blocks. */
int disk_stat(const char *dir, double out[DISK_NFIELDS]);

/* Parse a thermal zone's "temp" file (millidegrees) into Celsius. */
int temp_parse(const char *buf, double *celsius);

/* Counters of one interface in /proc/net/dev, in the net group's order. */
enum net_counter {
	NET_RX_BYTES,
	NET_TX_BYTES,
	NET_RX_PACKETS,
	NET_TX_PACKETS,
	NET_RX_ERRORS,
	NET_TX_ERRORS,
	NET_RX_DROP,
	NET_TX_DROP,
	NET_NCOUNTERS
};

#define NET_NAME_MAX 32

struct net_iface {
	char name[NET_NAME_MAX];
	uint64_t c[NET_NCOUNTERS];
};

/* Parse a /proc/net/dev buffer, skipping "lo". Stores at most max
 * interfaces and returns how many there are, so a caller with too small an
 * array can grow it and parse again. */
size_t net_parse_dev(const char *buf, struct net_iface *out, size_t max);

/* Growth of a counter from old to cur. Going back counts as a 32-bit wrap
 * when old fits in 32 bits and the wrapped growth is under 2^31; otherwise
 * as a reset, giving 0. */
uint64_t net_delta(uint64_t old, uint64_t cur);

/* Rates per second over dt_ms (> 0) and cur's byte totals, in the net
 * group's field order. */
void net_rates(const struct net_iface *old, const struct net_iface *cur, uint64_t dt_ms,
               double out[NET_NFIELDS]);

/* Value of PRETTY_NAME (else NAME) in an os-release buffer, unquoted, into
 * out; "Linux" when neither is there. */
void sys_parse_os_release(const char *buf, char *out, size_t size);

/* Whole seconds from a /proc/uptime buffer; 0 when unreadable. */
uint64_t sys_parse_uptime(const char *buf);

/* Longest tty and user name kept from a utmp record (its field sizes). */
#define USERS_LINE_MAX 32
#define USERS_NAME_MAX 32

/* One login session: a USER_PROCESS record of utmp. */
struct users_session {
	char line[USERS_LINE_MAX + 1]; /* tty below /dev, such as "pts/0" */
	char user[USERS_NAME_MAX + 1];
	int remote;      /* the record names a remote host */
	int64_t login_s; /* Unix seconds */
};

/* Parse len bytes of utmp records (struct utmp, fixed size; a partial
 * record at the end is ignored) into at most max sessions: USER_PROCESS
 * entries with a user and a tty only, one per tty (the latest login).
 * Returns how many were stored. */
size_t users_parse_utmp(const void *buf, size_t len, struct users_session *out, size_t max);

/* The users_totals fields of n sessions: count, remote, distinct_users. */
void users_summarise(const struct users_session *s, size_t n, double out[USERS_SUMMARY_NFIELDS]);

/* Longest comm kept from /proc/<pid>/stat (the kernel's is 15 bytes). */
#define PROCS_COMM_MAX 64

/* What the procs collector needs from one /proc/<pid>/stat line. */
struct procs_stat {
	char comm[PROCS_COMM_MAX]; /* sanitised with text_sanitise */
	char state;                /* 'R' running, 'S' sleeping... */
	uint64_t ticks;            /* utime + stime, clock ticks */
	uint64_t start;            /* starttime, clock ticks after boot */
};

/* Parse a /proc/<pid>/stat buffer; comm runs to the last ')'. 0 or -1. */
int procs_parse_stat(const char *buf, struct procs_stat *out);

/* Resident pages (the second number) of a /proc/<pid>/statm buffer. 0 or -1. */
int procs_parse_statm(const char *buf, uint64_t *pages);

/* Percent of one CPU used by ticks clock ticks (hz a second) over dt_ms. */
double procs_cpu_pct(uint64_t ticks, long hz, uint64_t dt_ms);

/* A process over either limit is "flagged" (the suspicious processes of
 * the original project): percent of one CPU, and percent of MemTotal. */
#define PROCS_CPU_LIMIT 80.0
#define PROCS_MEM_LIMIT 30.0

/* Non-zero for a process worth a look: over PROCS_CPU_LIMIT percent of a
 * CPU or over PROCS_MEM_LIMIT percent of memory. NaN is never over. */
int procs_flagged(double cpu_pct, double mem_pct);

/* Parse the firmware's get_throttled text ("0x50005" or "50005"). 0 or -1. */
int pi_parse_throttled(const char *buf, uint32_t *out);

/* The pi group's fields from a get_throttled value: the eight flags and
 * raw; hwmon_under_voltage (the last field) is left alone. */
void pi_throttled_fields(uint32_t raw, double out[PI_NFIELDS]);

/* Counters of one device in /proc/diskstats that the diskio group uses. */
enum diskio_counter {
	DISKIO_READS,
	DISKIO_READ_SECTORS,
	DISKIO_READ_MS,
	DISKIO_WRITES,
	DISKIO_WRITE_SECTORS,
	DISKIO_WRITE_MS,
	DISKIO_IO_MS, /* milliseconds with I/O in flight */
	DISKIO_NCOUNTERS
};

#define DISKIO_NAME_MAX 32

struct diskio_dev {
	char name[DISKIO_NAME_MAX];
	uint64_t c[DISKIO_NCOUNTERS];
};

/* Non-zero for loop, ram and zram devices, which hold no data of their own. */
int diskio_virtual(const char *name);

/* Non-zero if a block device name is a partition (sda1, mmcblk0p2,
 * nvme0n1p1), zero for a whole device (sda, mmcblk0, nvme0n1, md0, dm-0). */
int diskio_partition(const char *name);

/* Parse a /proc/diskstats buffer: whole devices, and partitions too when
 * partitions is set; never loop, ram or zram. Stores at most max devices
 * and returns how many there are. */
size_t diskio_parse(const char *buf, int partitions, struct diskio_dev *out, size_t max);

/* The diskio group's fields between two samples dt_ms (> 0) apart: bytes
 * and operations a second, busy percent, wait per operation in seconds, and
 * cur's bytes written. -1 when any counter went back (reset or wrap). */
int diskio_rates(const struct diskio_dev *old, const struct diskio_dev *cur, uint64_t dt_ms,
                 double out[DISKIO_NFIELDS]);

/* Counters of /proc/vmstat the vmstat group uses. */
enum vmstat_counter {
	VMSTAT_PSWPIN,
	VMSTAT_PSWPOUT,
	VMSTAT_PGMAJFAULT,
	VMSTAT_OOM_KILL,
	VMSTAT_NCOUNTERS
};

struct vmstat_counters {
	uint64_t c[VMSTAT_NCOUNTERS];
	unsigned present; /* bit i: c[i] was in the file */
};

/* Parse a /proc/vmstat buffer. 0, or -1 when none of the counters is there. */
int vmstat_parse(const char *buf, struct vmstat_counters *out);

/* The vmstat group's fields between two samples dt_ms (> 0) apart: pages
 * swapped in and out and major faults a second, OOM kills so far and since
 * old. A counter missing from either sample or going back gives NaN. */
void vmstat_fields_of(const struct vmstat_counters *old, const struct vmstat_counters *cur,
                      uint64_t dt_ms, double out[VMSTAT_NFIELDS]);

/* Parse one /proc/pressure file into some_avg10, some_avg60,
 * some_stall_seconds, full_avg10, full_avg60, full_stall_seconds (NaN
 * without a "full" line). 0, or
 * -1 without a "some" line. */
int pressure_parse(const char *buf, double out[PRESSURE_NFIELDS]);

struct timex;

/* The clock group's fields from adjtimex's result: synced (0/1),
 * est_error_seconds, max_error_seconds, offset_seconds. */
void clock_fields_of(int rc, const struct timex *tx, double out[CLOCK_NFIELDS]);

/* One interface of /proc/net/wireless: link quality, signal and noise in
 * dBm (NaN when the driver does not know). */
struct wifi_iface {
	char name[NET_NAME_MAX];
	double v[WIFI_NFIELDS];
};

/* Parse a /proc/net/wireless buffer. Stores at most max interfaces and
 * returns how many there are. */
size_t wifi_parse(const char *buf, struct wifi_iface *out, size_t max);

/* Parse a cpufreq frequency file (kHz) into MHz. 0 or -1. */
int cpufreq_parse(const char *buf, double *mhz);

/* Seconds since boot, fraction kept, from a /proc/uptime buffer. 0 or -1. */
int host_parse_uptime(const char *buf, double *uptime_s);

/* The host group's fields: whole seconds of uptime, and the boot time in
 * Unix seconds as the clock at now_ms sees it. */
void host_fields_of(double uptime_s, uint64_t now_ms, double out[HOST_NFIELDS]);

#endif
