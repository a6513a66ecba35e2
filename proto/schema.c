/* The built-in metrics' table. test_schema holds it equal to the agent's
 * collectors (agent/collect_*.c), so a field added there fails the build's
 * tests until it is described here. */
#include "schema.h"

#include <string.h>

static const struct schema_field cpu_fields[] = {
    {"usage", SCHEMA_PERCENT, "CPU time not idle, over the last interval"},
    {"user", SCHEMA_PERCENT, "CPU time in user mode"},
    {"nice", SCHEMA_PERCENT, "CPU time in user mode at low priority"},
    {"system", SCHEMA_PERCENT, "CPU time in the kernel"},
    {"idle", SCHEMA_PERCENT, "CPU time idle"},
    {"iowait", SCHEMA_PERCENT, "CPU time idle waiting for I/O"},
    {"irq", SCHEMA_PERCENT, "CPU time serving interrupts"},
    {"softirq", SCHEMA_PERCENT, "CPU time serving soft interrupts"},
    {"steal", SCHEMA_PERCENT, "CPU time taken by the hypervisor"},
};

static const struct schema_field mem_fields[] = {
    {"total_bytes", SCHEMA_BYTES, "Memory the kernel manages (MemTotal)"},
    {"available_bytes", SCHEMA_BYTES, "Memory available for new work (MemAvailable)"},
    {"used_bytes", SCHEMA_BYTES, "Memory in use: total less available"},
    {"used_pct", SCHEMA_PERCENT, "Share of memory in use"},
    {"available_pct", SCHEMA_PERCENT, "Share of memory available"},
    {"free_bytes", SCHEMA_BYTES, "Memory unused (MemFree)"},
    {"buffers_bytes", SCHEMA_BYTES, "Memory in block device buffers (Buffers)"},
    {"cached_bytes", SCHEMA_BYTES, "Memory in the page cache (Cached)"},
    {"swap_total_bytes", SCHEMA_BYTES, "Swap space (SwapTotal)"},
    {"swap_free_bytes", SCHEMA_BYTES, "Swap space unused (SwapFree)"},
    {"swap_used_pct", SCHEMA_PERCENT, "Share of swap in use"},
};

static const struct schema_field disk_fields[] = {
    {"total_bytes", SCHEMA_BYTES, "Size of the filesystem"},
    {"used_bytes", SCHEMA_BYTES, "Space in use on the filesystem"},
    {"avail_bytes", SCHEMA_BYTES, "Space available to unprivileged users"},
    {"used_pct", SCHEMA_PERCENT, "Share of the filesystem in use"},
    {"inodes_total", SCHEMA_COUNT, "Inodes of the filesystem"},
    {"inodes_used", SCHEMA_COUNT, "Inodes in use"},
    {"inodes_used_pct", SCHEMA_PERCENT, "Share of inodes in use"},
};

static const struct schema_field load_fields[] = {
    {"load1", SCHEMA_LOAD, "Load average over 1 minute"},
    {"load5", SCHEMA_LOAD, "Load average over 5 minutes"},
    {"load15", SCHEMA_LOAD, "Load average over 15 minutes"},
    {"running", SCHEMA_COUNT, "Runnable kernel scheduling entities (loadavg's 4th field)"},
    {"total", SCHEMA_COUNT, "Kernel scheduling entities (loadavg's 4th field, after /)"},
};

static const struct schema_field temp_fields[] = {
    {"celsius", SCHEMA_CELSIUS, "Temperature of the thermal zone"},
};

static const struct schema_field net_fields[] = {
    {"rx_bytes_s", SCHEMA_BYTES_RATE, "Bytes received, averaged over the last interval"},
    {"tx_bytes_s", SCHEMA_BYTES_RATE, "Bytes sent, averaged over the last interval"},
    {"rx_packets_s", SCHEMA_EVENTS_RATE, "Packets received, averaged over the last interval"},
    {"tx_packets_s", SCHEMA_EVENTS_RATE, "Packets sent, averaged over the last interval"},
    {"rx_errors_s", SCHEMA_EVENTS_RATE, "Receive errors, averaged over the last interval"},
    {"tx_errors_s", SCHEMA_EVENTS_RATE, "Transmit errors, averaged over the last interval"},
    {"rx_drop_s", SCHEMA_EVENTS_RATE, "Received packets dropped, averaged over the last interval"},
    {"tx_drop_s", SCHEMA_EVENTS_RATE, "Outgoing packets dropped, averaged over the last interval"},
    {"rx_bytes", SCHEMA_BYTES_TOTAL, "Bytes received since the interface came up"},
    {"tx_bytes", SCHEMA_BYTES_TOTAL, "Bytes sent since the interface came up"},
};

static const struct schema_field users_fields[] = {
    {"login_time", SCHEMA_TIMESTAMP, "When the session on the tty logged in"},
    {"idle_s", SCHEMA_SECONDS, "Time since the tty last had input"},
};

static const struct schema_field users_totals_fields[] = {
    {"count", SCHEMA_COUNT, "Login sessions"},
    {"remote", SCHEMA_COUNT, "Login sessions from another host"},
    {"distinct_users", SCHEMA_COUNT, "Distinct users logged in"},
};

static const struct schema_field procs_fields[] = {
    {"cpu_pct", SCHEMA_PER_PROCESS, "Share of one CPU the process used"},
    {"rss_bytes", SCHEMA_PER_PROCESS, "Resident memory of the process"},
    {"mem_pct", SCHEMA_PER_PROCESS, "Share of memory the process holds"},
    {"flagged", SCHEMA_PER_PROCESS, "Whether the process is a zombie or stuck in D state"},
};

static const struct schema_field procs_totals_fields[] = {
    {"total", SCHEMA_COUNT, "Processes"},
    {"running", SCHEMA_COUNT, "Processes running"},
    {"flagged", SCHEMA_COUNT, "Processes that are zombies or stuck in D state"},
};

static const struct schema_field pi_fields[] = {
    {"under_voltage", SCHEMA_FLAG, "Raspberry Pi firmware: under-voltage now"},
    {"freq_capped", SCHEMA_FLAG, "Raspberry Pi firmware: ARM frequency capped now"},
    {"throttled", SCHEMA_FLAG, "Raspberry Pi firmware: throttled now"},
    {"soft_temp_limit", SCHEMA_FLAG, "Raspberry Pi firmware: soft temperature limit active"},
    {"under_voltage_occurred", SCHEMA_FLAG,
     "Raspberry Pi firmware: under-voltage has occurred since boot"},
    {"freq_capped_occurred", SCHEMA_FLAG,
     "Raspberry Pi firmware: frequency capping has occurred since boot"},
    {"throttled_occurred", SCHEMA_FLAG,
     "Raspberry Pi firmware: throttling has occurred since boot"},
    {"soft_temp_limit_occurred", SCHEMA_FLAG,
     "Raspberry Pi firmware: the soft temperature limit has occurred since boot"},
    {"raw", SCHEMA_CODE, "Raspberry Pi firmware: the get_throttled bit mask as read"},
    {"hwmon_under_voltage", SCHEMA_FLAG, "Under-voltage alarm of the rpi_volt hwmon sensor"},
};

static const struct schema_field diskio_fields[] = {
    {"read_bytes_s", SCHEMA_BYTES_RATE, "Bytes read from the device, over the last interval"},
    {"write_bytes_s", SCHEMA_BYTES_RATE, "Bytes written to the device, over the last interval"},
    {"reads_s", SCHEMA_EVENTS_RATE, "Reads completed, over the last interval"},
    {"writes_s", SCHEMA_EVENTS_RATE, "Writes completed, over the last interval"},
    {"busy_pct", SCHEMA_PERCENT, "Share of the interval the device had I/O in flight"},
    {"wait_seconds", SCHEMA_SECONDS, "Average time a read or write took, queue included"},
    {"written_bytes", SCHEMA_BYTES_TOTAL, "Bytes written to the device since boot (SD wear)"},
};

static const struct schema_field vmstat_fields[] = {
    {"swap_in_s", SCHEMA_EVENTS_RATE, "Pages swapped in, over the last interval"},
    {"swap_out_s", SCHEMA_EVENTS_RATE, "Pages swapped out, over the last interval"},
    {"major_faults_s", SCHEMA_EVENTS_RATE, "Major page faults, over the last interval"},
    {"oom_kills", SCHEMA_EVENTS_TOTAL, "Processes the kernel's OOM killer ended since boot"},
    {"oom_kills_new", SCHEMA_COUNT, "Processes the OOM killer ended in the last interval"},
};

static const struct schema_field pressure_fields[] = {
    {"some_avg10", SCHEMA_PERCENT, "Share of time some task stalled on the resource, 10 s"},
    {"some_avg60", SCHEMA_PERCENT, "Share of time some task stalled on the resource, 60 s"},
    {"some_stall_seconds", SCHEMA_SECONDS_TOTAL,
     "Time some task stalled on the resource since boot"},
    {"full_avg10", SCHEMA_PERCENT, "Share of time all tasks stalled on the resource, 10 s"},
    {"full_avg60", SCHEMA_PERCENT, "Share of time all tasks stalled on the resource, 60 s"},
    {"full_stall_seconds", SCHEMA_SECONDS_TOTAL,
     "Time all tasks stalled on the resource since boot"},
};

static const struct schema_field clock_fields[] = {
    {"synced", SCHEMA_FLAG, "Whether the kernel clock is synchronised (adjtimex)"},
    {"est_error_seconds", SCHEMA_SECONDS, "The kernel's estimated clock error"},
    {"max_error_seconds", SCHEMA_SECONDS, "The kernel's maximum clock error"},
    {"offset_seconds", SCHEMA_SECONDS, "The clock's offset being corrected"},
};

static const struct schema_field wifi_fields[] = {
    {"link_quality", SCHEMA_VALUE, "Wi-Fi link quality as the driver reports it"},
    {"signal_dbm", SCHEMA_DBM, "Wi-Fi signal level"},
    {"noise_dbm", SCHEMA_DBM, "Wi-Fi noise level"},
};

static const struct schema_field cpufreq_fields[] = {
    {"cur_mhz", SCHEMA_MHZ, "CPU clock of the frequency policy now"},
    {"min_mhz", SCHEMA_MHZ, "Lowest CPU clock the policy allows"},
    {"max_mhz", SCHEMA_MHZ, "Highest CPU clock the policy allows"},
};

static const struct schema_field host_fields[] = {
    {"uptime_seconds", SCHEMA_SECONDS, "Time since the host booted"},
    {"boot_time_seconds", SCHEMA_TIMESTAMP, "When the host booted"},
};

static const struct schema_field cores_fields[] = {
    {"usage", SCHEMA_PERCENT, "Core's time not idle, over the last interval"},
    {"user", SCHEMA_PERCENT, "Core's time in user mode"},
    {"nice", SCHEMA_PERCENT, "Core's time in user mode at low priority"},
    {"system", SCHEMA_PERCENT, "Core's time in the kernel"},
    {"idle", SCHEMA_PERCENT, "Core's time idle"},
    {"iowait", SCHEMA_PERCENT, "Core's time idle waiting for I/O"},
    {"irq", SCHEMA_PERCENT, "Core's time serving interrupts"},
    {"softirq", SCHEMA_PERCENT, "Core's time serving soft interrupts"},
    {"steal", SCHEMA_PERCENT, "Core's time taken by the hypervisor"},
};

/* In the order of enum schema_agent_field. */
static const struct schema_field agent_fields[] = {
    [SCHEMA_AGENT_DROPPED] = {"dropped_batches", SCHEMA_EVENTS_TOTAL,
                              "Batches the agent dropped to its queue and spool bounds"},
    [SCHEMA_AGENT_QUEUED] = {"queued_batches", SCHEMA_COUNT,
                             "Batches the agent holds, not yet acknowledged"},
    [SCHEMA_AGENT_SPOOL] = {"spool_bytes", SCHEMA_BYTES, "Size of the agent's spool file"},
};

/* A metric's row: its name, instance key and field table. */
#define METRIC(n, key, f)                                                                          \
	{                                                                                          \
		n, key, f, sizeof f / sizeof f[0]                                                  \
	}

/* clang-format off */
static const struct schema_metric metrics[] = {
    METRIC("cpu", "", cpu_fields),
    METRIC("mem", "", mem_fields),
    METRIC("disk", "mount", disk_fields),
    METRIC("load", "", load_fields),
    METRIC("temp", "zone", temp_fields),
    METRIC("net", "iface", net_fields),
    METRIC("users", "tty", users_fields),
    METRIC("users_totals", "", users_totals_fields),
    METRIC("procs", "proc", procs_fields),
    METRIC("procs_totals", "", procs_totals_fields),
    METRIC("pi", "", pi_fields),
    METRIC("diskio", "device", diskio_fields),
    METRIC("vmstat", "", vmstat_fields),
    METRIC("pressure", "resource", pressure_fields),
    METRIC("clock", "", clock_fields),
    METRIC("wifi", "iface", wifi_fields),
    METRIC("cpufreq", "policy", cpufreq_fields),
    METRIC("host", "", host_fields),
    METRIC("cores", "core", cores_fields),
    METRIC(SCHEMA_AGENT_METRIC, "", agent_fields),
};
/* clang-format on */

#define NMETRICS (sizeof metrics / sizeof metrics[0])

/* The i-th built-in metric. */
const struct schema_metric *schema_metric_at(size_t i)
{
	return i < NMETRICS ? &metrics[i] : NULL;
}

/* The built-in metric called name. */
const struct schema_metric *schema_find_metric(const char *name)
{
	for (size_t i = 0; i < NMETRICS; i++)
		if (strcmp(metrics[i].name, name) == 0)
			return &metrics[i];
	return NULL;
}

/* The metric's field called name. */
const struct schema_field *schema_find_field(const struct schema_metric *m, const char *name)
{
	for (size_t i = 0; m && i < m->nfields; i++)
		if (strcmp(m->fields[i].name, name) == 0)
			return &m->fields[i];
	return NULL;
}

/* Whether column names the instances of a built-in metric. */
int schema_is_inst_key(const char *column)
{
	for (size_t i = 0; i < NMETRICS; i++)
		if (metrics[i].inst_key[0] && strcmp(metrics[i].inst_key, column) == 0)
			return 1;
	return 0;
}

/* Whether s ends with suffix (and has something before it). */
static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

/* A check field's unit: the two fields every result has, then the suffix
 * agent/checks.c gave a perfdata value from its unit of measure. */
enum schema_unit schema_check_field(const char *field, int *counter)
{
	*counter = 0;
	if (strcmp(field, "status") == 0)
		return SCHEMA_CODE;
	if (strcmp(field, "duration_s") == 0 || ends_with(field, "_s"))
		return SCHEMA_SECONDS;
	if (ends_with(field, "_pct"))
		return SCHEMA_PERCENT;
	if (ends_with(field, "_bytes"))
		return SCHEMA_BYTES;
	if (ends_with(field, "_total")) {
		*counter = 1;
		return SCHEMA_COUNT;
	}
	return SCHEMA_COUNT;
}
