/* Prometheus names of the agents' metrics, after node_exporter and the
 * naming guide (https://prometheus.io/docs/practices/naming/): a family
 * per quantity with its base unit as suffix, shares as ratios 0..1,
 * counters ending "_total", modes as a label. The unit of each field comes
 * from proto/schema.c; docs/PROMETHEUS.md lists every family. Pure
 * functions: any thread. */
#include "promname.h"

#include <stdio.h>
#include <string.h>

#include "schema.h"

/* How a built-in metric's families start, and the label of its instances.
 * A metric without a row here is not exported. */
static const struct {
	const char *metric;
	const char *stem;
	const char *inst_label;
} stems[] = {
    {"cpu", "cpu", NULL},
    {"mem", "memory", NULL},
    {"disk", "filesystem", "mountpoint"},
    {"load", "load", NULL},
    {"temp", "temperature", "zone"},
    {"net", "network", "device"},
    {"users", "user", "tty"},
    {"users_totals", "users", NULL},
    /* procs: its rows are the top five processes by CPU and by memory,
     * keyed "comm:pid". Not exported: a pid label is a new series for
     * every process, and a top list summed by name would come and go as
     * processes enter and leave it. procs_totals carries the counts. */
    {"procs_totals", "processes", NULL},
    {"pi", "pi", NULL},
    {"agent", "agent", NULL},
    {"diskio", "disk", "device"},
    {"vmstat", "vmstat", NULL},
    {"pressure", "pressure", "resource"},
    {"clock", "clock", NULL},
    {"wifi", "wifi", "device"},
    {"cpufreq", "cpu_scaling_frequency", "policy"},
    {"host", "host", NULL},
    {"cores", "core", "core"},
};

/* Fields whose family the stem and unit would not name as node_exporter
 * users expect, and the CPU modes, shown as one family with a mode label. */
static const struct {
	const char *metric, *field, *family, *extra_name, *extra_value;
} special[] = {
    {"cpu", "user", "pimon_cpu_mode_ratio", "mode", "user"},
    {"cpu", "nice", "pimon_cpu_mode_ratio", "mode", "nice"},
    {"cpu", "system", "pimon_cpu_mode_ratio", "mode", "system"},
    {"cpu", "idle", "pimon_cpu_mode_ratio", "mode", "idle"},
    {"cpu", "iowait", "pimon_cpu_mode_ratio", "mode", "iowait"},
    {"cpu", "irq", "pimon_cpu_mode_ratio", "mode", "irq"},
    {"cpu", "softirq", "pimon_cpu_mode_ratio", "mode", "softirq"},
    {"cpu", "steal", "pimon_cpu_mode_ratio", "mode", "steal"},
    {"disk", "total_bytes", "pimon_filesystem_size_bytes", NULL, NULL},
    {"disk", "inodes_total", "pimon_filesystem_inodes", NULL, NULL},
    {"load", "load1", "pimon_load1", NULL, NULL},
    {"load", "load5", "pimon_load5", NULL, NULL},
    {"load", "load15", "pimon_load15", NULL, NULL},
    {"load", "running", "pimon_load_tasks_running", NULL, NULL},
    {"load", "total", "pimon_load_tasks", NULL, NULL},
    {"net", "rx_bytes_s", "pimon_network_receive_bytes_per_second", NULL, NULL},
    {"net", "tx_bytes_s", "pimon_network_transmit_bytes_per_second", NULL, NULL},
    {"net", "rx_packets_s", "pimon_network_receive_packets_per_second", NULL, NULL},
    {"net", "tx_packets_s", "pimon_network_transmit_packets_per_second", NULL, NULL},
    {"net", "rx_errors_s", "pimon_network_receive_errors_per_second", NULL, NULL},
    {"net", "tx_errors_s", "pimon_network_transmit_errors_per_second", NULL, NULL},
    {"net", "rx_drop_s", "pimon_network_receive_drop_per_second", NULL, NULL},
    {"net", "tx_drop_s", "pimon_network_transmit_drop_per_second", NULL, NULL},
    {"net", "rx_bytes", "pimon_network_receive_bytes_total", NULL, NULL},
    {"net", "tx_bytes", "pimon_network_transmit_bytes_total", NULL, NULL},
    {"users_totals", "count", "pimon_users", NULL, NULL},
    {"users_totals", "distinct_users", "pimon_users_distinct", NULL, NULL},
    {"procs_totals", "total", "pimon_processes", NULL, NULL},
    {"pi", "raw", "pimon_pi_throttled_mask", NULL, NULL},
    {"cores", "user", "pimon_core_mode_ratio", "mode", "user"},
    {"cores", "nice", "pimon_core_mode_ratio", "mode", "nice"},
    {"cores", "system", "pimon_core_mode_ratio", "mode", "system"},
    {"cores", "idle", "pimon_core_mode_ratio", "mode", "idle"},
    {"cores", "iowait", "pimon_core_mode_ratio", "mode", "iowait"},
    {"cores", "irq", "pimon_core_mode_ratio", "mode", "irq"},
    {"cores", "softirq", "pimon_core_mode_ratio", "mode", "softirq"},
    {"cores", "steal", "pimon_core_mode_ratio", "mode", "steal"},
    {"cpufreq", "cur_mhz", "pimon_cpu_scaling_frequency_hertz", NULL, NULL},
    {"diskio", "reads_s", "pimon_disk_reads_completed_per_second", NULL, NULL},
    {"diskio", "writes_s", "pimon_disk_writes_completed_per_second", NULL, NULL},
    {"diskio", "busy_pct", "pimon_disk_io_busy_ratio", NULL, NULL},
    {"diskio", "wait_seconds", "pimon_disk_io_wait_seconds", NULL, NULL},
    {"vmstat", "oom_kills_new", "pimon_vmstat_oom_kills_last_interval", NULL, NULL},
};

/* What a unit adds to a family and its HELP, and how values convert. */
struct unit_rule {
	const char *field_suffix; /* what the agent's field name ends with */
	const char *suffix;       /* what the family ends with */
	const char *phrase;       /* the unit, for HELP */
	const char *type;
	double scale;
};

/* The rule of each unit; PER_PROCESS has none (not exported). */
static const struct unit_rule *unit_rule(enum schema_unit u)
{
	static const struct unit_rule rules[] = {
	    [SCHEMA_PERCENT] = {"_pct", "_ratio", "ratio 0..1", "gauge", 0.01},
	    [SCHEMA_BYTES] = {"_bytes", "_bytes", "bytes", "gauge", 1},
	    [SCHEMA_BYTES_TOTAL] = {"_bytes", "_bytes_total", "bytes, cumulative", "counter", 1},
	    [SCHEMA_BYTES_RATE] = {"_bytes_s", "_bytes_per_second", "bytes per second", "gauge", 1},
	    [SCHEMA_EVENTS_TOTAL] = {"", "_total", "cumulative", "counter", 1},
	    [SCHEMA_EVENTS_RATE] = {"_s", "_per_second", "per second", "gauge", 1},
	    [SCHEMA_SECONDS] = {"_s", "_seconds", "seconds", "gauge", 1},
	    [SCHEMA_TIMESTAMP] = {"", "_seconds", "Unix seconds", "gauge", 1},
	    [SCHEMA_CELSIUS] = {"celsius", "_celsius", "degrees Celsius", "gauge", 1},
	    [SCHEMA_COUNT] = {"", "", "a count", "gauge", 1},
	    [SCHEMA_LOAD] = {"", "", "runnable tasks", "gauge", 1},
	    [SCHEMA_FLAG] = {"", "", "1 or 0", "gauge", 1},
	    [SCHEMA_CODE] = {"", "", "a code", "gauge", 1},
	    [SCHEMA_SECONDS_TOTAL] = {"_seconds", "_seconds_total", "seconds, cumulative",
	                              "counter", 1},
	    [SCHEMA_MHZ] = {"_mhz", "_hertz", "hertz", "gauge", 1e6},
	    [SCHEMA_DBM] = {"_dbm", "_dbm", "dBm", "gauge", 1},
	    [SCHEMA_VALUE] = {"", "", "no unit", "gauge", 1},
	};
	if (u == SCHEMA_PER_PROCESS || (size_t)u >= sizeof rules / sizeof rules[0])
		return NULL;
	return &rules[u];
}

/* Length of field without its unit's ending ("used_pct" -> "used"), with
 * a separating '_' gone too; 0 when the field is only its unit. */
static size_t field_base(const char *field, const char *ending)
{
	size_t n = strlen(field), k = strlen(ending);
	if (k == 0 || n < k || strcmp(field + n - k, ending) != 0)
		return n;
	n -= k;
	if (n > 0 && field[n - 1] == '_')
		n--;
	return n;
}

/* Fill out's family from parts: "pimon_" stem ["_" base] suffix; -1 when
 * it does not fit. */
static int family_join(struct prom_name *out, const char *stem, const char *field, size_t blen,
                       const char *suffix)
{
	int n = snprintf(out->family, sizeof out->family, "pimon_%s%s%.*s%s", stem, blen ? "_" : "",
	                 (int)blen, field, suffix);
	return n > 0 && (size_t)n < sizeof out->family ? 0 : -1;
}

/* A metric or field the schema does not describe (a newer agent's, a
 * sender's own): still exported, so that nothing stored is left out, as
 * a gauge "pimon_<stem>_<field>" (a field ending "_total", which only
 * counters may, gets "_value" after it), its instances labelled
 * inst_label (NULL: it has none). */
static int promname_other(const char *stem, const char *field, const char *inst_label,
                          struct prom_name *out)
{
	size_t n = strlen(field);
	int total = n >= 6 && strcmp(field + n - 6, "_total") == 0;
	out->type = "gauge";
	out->inst_label = inst_label;
	out->scale = 1;
	snprintf(out->help, sizeof out->help,
	         "Latest %s %s from each host's agent (not described "
	         "by pimon's schema; as sent).",
	         stem, field);
	return family_join(out, stem, field, n, total ? "_value" : "");
}

/* Name a check result's field: families of their own per check,
 * pimon_check_<name>_status, _duration_seconds, and each perfdata value
 * with its unit. */
static int promname_check(const char *metric, const char *field, struct prom_name *out)
{
	const char *check = metric + strlen(SCHEMA_CHECK_PREFIX);
	int counter;
	enum schema_unit u = schema_check_field(field, &counter);
	const struct unit_rule *rule = unit_rule(u);
	const char *ending = rule->field_suffix, *suffix = rule->suffix;
	const char *type = rule->type, *phrase = rule->phrase;
	if (counter) {
		ending = "_total";
		suffix = "_total";
		type = "counter";
		phrase = "cumulative";
	} else if (u == SCHEMA_COUNT) {
		phrase = "as the plugin reports it";
	}
	if (strcmp(field, "status") == 0)
		phrase = "0 ok, 1 warning, 2 critical, 3 unknown";
	if (!check[0])
		return -1;
	size_t blen = field_base(field, ending);
	if (blen == 0)
		return -1;
	char stem[64];
	snprintf(stem, sizeof stem, "check_%s", check);
	if (family_join(out, stem, field, blen, suffix) < 0)
		return -1;
	out->type = type;
	out->scale = rule->scale;
	snprintf(out->help, sizeof out->help, "Check %s: %s; %s.", check,
	         strcmp(field, "status") == 0       ? "its last status"
	         : strcmp(field, "duration_s") == 0 ? "how long its last run took"
	                                            : field,
	         phrase);
	return 0;
}

/* The family, type, labels and scale of metric's field. */
int promname_series(const char *metric, const char *field, struct prom_name *out)
{
	memset(out, 0, sizeof *out);
	out->scale = 1;
	if (strncmp(metric, SCHEMA_CHECK_PREFIX, strlen(SCHEMA_CHECK_PREFIX)) == 0)
		return promname_check(metric, field, out);
	const struct schema_metric *m = schema_find_metric(metric);
	const struct schema_field *f = schema_find_field(m, field);
	const struct unit_rule *rule = f ? unit_rule(f->unit) : NULL;
	size_t i;
	for (i = 0; (rule || (m && !f)) && i < sizeof stems / sizeof stems[0]; i++)
		if (strcmp(stems[i].metric, metric) == 0)
			break;
	if (!m || (!f && i < sizeof stems / sizeof stems[0]))
		return promname_other(m ? stems[i].stem : metric, field,
		                      m ? stems[i].inst_label : "instance_name", out);
	if (!rule || i == sizeof stems / sizeof stems[0])
		return -1;
	out->type = rule->type;
	out->inst_label = stems[i].inst_label;
	out->scale = rule->scale;
	snprintf(out->help, sizeof out->help, "%s; %s.", f->help, rule->phrase);
	for (size_t k = 0; k < sizeof special / sizeof special[0]; k++)
		if (strcmp(special[k].metric, metric) == 0 &&
		    strcmp(special[k].field, field) == 0) {
			snprintf(out->family, sizeof out->family, "%s", special[k].family);
			out->extra_name = special[k].extra_name;
			out->extra_value = special[k].extra_value;
			if (out->extra_name)
				snprintf(out->help, sizeof out->help, "%s time by mode; %s.",
				         strcmp(metric, "cores") == 0 ? "Each core's" : "CPU",
				         rule->phrase);
			return 0;
		}
	size_t blen = field_base(field, rule->field_suffix);
	if (blen == strlen(field))
		blen = field_base(field, rule->suffix);
	return family_join(out, stems[i].stem, field, blen, rule->suffix);
}
