/* server/promname.c: every built-in field gets a valid, unique Prometheus
 * name of the right type, and the names node_exporter users expect. */
#include <stdlib.h>

#include "check.h"
#include "promname.h"
#include "schema.h"

/* Whether s is a valid metric name, and a label name when label is set. */
static int prom_valid(const char *s, int label)
{
	if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (*s == ':' && !label)))
			return 0;
	return 1;
}

/* Whether s ends with suffix. */
static int ends(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every exported field: a valid name, counters and only counters ending
 * _total, no "_pct", "_all" or "_per_second" on seconds, one HELP, type
 * and label set per family, and no two fields on one series. */
static void test_promname_every_field(void)
{
	struct prom_name seen[256];
	size_t n = 0;
	for (size_t i = 0; schema_metric_at(i); i++) {
		const struct schema_metric *m = schema_metric_at(i);
		for (size_t k = 0; k < m->nfields; k++) {
			struct prom_name p;
			int rc = promname_series(m->name, m->fields[k].name, &p);
			if (m->fields[k].unit == SCHEMA_PER_PROCESS) {
				CHECK(rc == -1);
				continue;
			}
			CHECK(rc == 0);
			if (rc)
				continue;
			CHECK(prom_valid(p.family, 0));
			CHECK(strncmp(p.family, "pimon_", 6) == 0);
			CHECK(ends(p.family, "_total") == (strcmp(p.type, "counter") == 0));
			CHECK(!strstr(p.family, "_pct") && !ends(p.family, "_all"));
			CHECK(p.help[0] != '\0');
			CHECK(!p.inst_label || prom_valid(p.inst_label, 1));
			CHECK(!p.inst_label || strcmp(p.inst_label, "instance") != 0);
			CHECK((m->inst_key[0] != '\0') == (p.inst_label != NULL));
			CHECK(!p.extra_name || (prom_valid(p.extra_name, 1) && p.extra_value));
			CHECK(p.scale == (m->fields[k].unit == SCHEMA_PERCENT ? 0.01
			                  : m->fields[k].unit == SCHEMA_MHZ   ? 1e6
			                                                      : 1));
			for (size_t j = 0; j < n; j++) {
				if (strcmp(seen[j].family, p.family) != 0)
					continue;
				CHECK_STR(seen[j].help, p.help);
				CHECK_STR(seen[j].type, p.type);
				CHECK(seen[j].inst_label == p.inst_label);
				CHECK(p.extra_name && seen[j].extra_name &&
				      strcmp(seen[j].extra_value, p.extra_value) != 0);
			}
			if (n < sizeof seen / sizeof seen[0])
				seen[n++] = p;
		}
	}
	CHECK(n > 40);
}

/* Look up metric's field, expecting family, type and its labels. */
static void expect(const char *metric, const char *field, const char *family, const char *type,
                   const char *inst_label, const char *extra_value)
{
	struct prom_name p;
	CHECK(promname_series(metric, field, &p) == 0);
	CHECK_STR(p.family, family);
	CHECK_STR(p.type, type);
	CHECK(inst_label ? p.inst_label && strcmp(p.inst_label, inst_label) == 0 : !p.inst_label);
	CHECK(extra_value ? p.extra_value && strcmp(p.extra_value, extra_value) == 0
	                  : !p.extra_name);
}

/* The names docs/PROMETHEUS.md promises, each fix of the old mechanical names. */
static void test_promname_expected_names(void)
{
	expect("cpu", "usage", "pimon_cpu_usage_ratio", "gauge", NULL, NULL);
	expect("cpu", "iowait", "pimon_cpu_mode_ratio", "gauge", NULL, "iowait");
	expect("mem", "used_pct", "pimon_memory_used_ratio", "gauge", NULL, NULL);
	expect("mem", "available_bytes", "pimon_memory_available_bytes", "gauge", NULL, NULL);
	expect("disk", "avail_bytes", "pimon_filesystem_avail_bytes", "gauge", "mountpoint", NULL);
	expect("disk", "total_bytes", "pimon_filesystem_size_bytes", "gauge", "mountpoint", NULL);
	expect("load", "load1", "pimon_load1", "gauge", NULL, NULL);
	expect("load", "total", "pimon_load_tasks", "gauge", NULL, NULL);
	expect("net", "rx_bytes", "pimon_network_receive_bytes_total", "counter", "device", NULL);
	expect("net", "tx_bytes_s", "pimon_network_transmit_bytes_per_second", "gauge", "device",
	       NULL);
	expect("temp", "celsius", "pimon_temperature_celsius", "gauge", "zone", NULL);
	expect("users", "idle_s", "pimon_user_idle_seconds", "gauge", "tty", NULL);
	expect("users_totals", "count", "pimon_users", "gauge", NULL, NULL);
	expect("procs_totals", "total", "pimon_processes", "gauge", NULL, NULL);
	expect("agent", "dropped_batches", "pimon_agent_dropped_batches_total", "counter", NULL,
	       NULL);
	expect("agent", "spool_bytes", "pimon_agent_spool_bytes", "gauge", NULL, NULL);
	expect("check_web", "status", "pimon_check_web_status", "gauge", NULL, NULL);
	expect("check_web", "duration_s", "pimon_check_web_duration_seconds", "gauge", NULL, NULL);
	expect("check_web", "time_s", "pimon_check_web_time_seconds", "gauge", NULL, NULL);
	expect("check_web", "hits_total", "pimon_check_web_hits_total", "counter", NULL, NULL);
	expect("check_web", "size_bytes", "pimon_check_web_size_bytes", "gauge", NULL, NULL);
	expect("diskio", "written_bytes", "pimon_disk_written_bytes_total", "counter", "device",
	       NULL);
	expect("diskio", "wait_seconds", "pimon_disk_io_wait_seconds", "gauge", "device", NULL);
	expect("pressure", "some_stall_seconds", "pimon_pressure_some_stall_seconds_total",
	       "counter", "resource", NULL);
	expect("pressure", "some_avg10", "pimon_pressure_some_avg10_ratio", "gauge", "resource",
	       NULL);
	expect("clock", "est_error_seconds", "pimon_clock_est_error_seconds", "gauge", NULL, NULL);
	expect("cpufreq", "cur_mhz", "pimon_cpu_scaling_frequency_hertz", "gauge", "policy", NULL);
	expect("wifi", "signal_dbm", "pimon_wifi_signal_dbm", "gauge", "device", NULL);
	expect("vmstat", "oom_kills", "pimon_vmstat_oom_kills_total", "counter", NULL, NULL);
	expect("cores", "iowait", "pimon_core_mode_ratio", "gauge", "core", "iowait");
	struct prom_name p;
	CHECK(promname_series("check_web", "pl_pct", &p) == 0);
	CHECK_STR(p.family, "pimon_check_web_pl_ratio");
	CHECK(p.scale == 0.01);
	CHECK(promname_series("procs", "cpu_pct", &p) == -1);
	CHECK(promname_series("procs", "rss_bytes", &p) == -1);
	/* What the schema does not describe is still exported, as sent. */
	expect("g0", "f1", "pimon_g0_f1", "gauge", "instance_name", NULL);
	expect("g0", "seen_total", "pimon_g0_seen_total_value", "gauge", "instance_name", NULL);
	expect("cpu", "guest", "pimon_cpu_guest", "gauge", NULL, NULL);
	CHECK(promname_series("g0", "f1", &p) == 0 && strcmp(p.inst_label, "instance_name") == 0);
	CHECK(promname_series("disk", "nosuch", &p) == 0 &&
	      strcmp(p.inst_label, "mountpoint") == 0);
	CHECK(promname_series("check_", "status", &p) == -1);
}

int main(void)
{
	test_promname_every_field();
	test_promname_expected_names();
	return check_report("promname");
}
