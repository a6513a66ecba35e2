/* Configuration loading. One static table of keys drives the defaults, the
 * loading and validation of a libconfig file, the detection of unknown keys,
 * freeing, and the documented example file (etc/pimon.cfg). Everything here
 * works on caller-owned memory only, so it is safe to call from any thread. */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "proto.h"
#include "rendezvous.h"
#include "rule_metric.h"
#include "util.h"

const char *const config_metric_names[] = {
    "cpu",    "mem",    "disk",     "load",  "temp", "net",     "users", "procs", "pi",
    "diskio", "vmstat", "pressure", "clock", "wifi", "cpufreq", "host",  "cores", NULL};

/* What agents collect unless told otherwise: all but procs, which scans
 * every process each interval and costs the agent about three times as
 * much CPU as everything else together (docs/BENCHMARKS.md). */
static const char *const default_metrics[] = {
    "cpu",    "mem",    "disk",     "load",  "temp", "net",     "users", "pi",
    "diskio", "vmstat", "pressure", "clock", "wifi", "cpufreq", "host",  NULL};

static const char *const default_servers[] = {"127.0.0.1:8080", NULL};

static const char *const log_level_names[] = {"err", "warn", "notice", "info", "debug", NULL};
static const char *const sync_names[] = {"none", "batch", "interval", NULL};
static const int log_level_values[] = {LOG_ERR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG};

enum key_type {
	KEY_STRING, /* char * */
	KEY_INT,    /* int */
	KEY_FLOAT,  /* double; an integer literal is accepted too */
	KEY_LIST,   /* char ** plus a size_t count; [] or () of strings */
	KEY_GROUPS, /* array of structs plus a size_t count; () of groups */
};

/* Say why a string value is unacceptable, or NULL if it is fine. The caller
 * writes "path: 'value' " in front of the reason. */
typedef const char *(*key_check_fn)(const char *value);

struct key {
	const char *path; /* dotted: "server.heartbeat.timeout" */
	enum key_type type;
	size_t offset;       /* of the value in struct pimon_config */
	size_t count_offset; /* KEY_LIST: of its size_t count */
	const char *def_str;
	const char *const *def_list;
	double def_num;
	double min, max;            /* KEY_INT, KEY_FLOAT: inclusive range */
	const char *const *allowed; /* KEY_STRING, KEY_LIST items: one of these */
	key_check_fn check;         /* KEY_STRING, KEY_LIST items: more rules */
	const char *doc;            /* lines of the example file's comment */
	/* KEY_GROUPS: each item is a group of the sub keys below, whose
	 * offsets are into an item of item_size bytes. */
	const struct key *sub;
	size_t nsub;
	size_t item_size;
	const char *(*item_check)(void *item); /* rules between an item's keys */
	const char *def_groups;                /* default, as libconfig text */
	const char *example;                   /* commented-out lines shown too */
	int argv;         /* KEY_LIST: a command line, where items may repeat */
	int one_plus;     /* KEY_LIST: one string alone is a list of one; [] is refused */
	size_t max_items; /* KEY_LIST: items at most; 0 for no bound */
	int required;     /* a sub key every item must set (also: KEY_STRING
	                   * without def_str, KEY_LIST without def_list) */
};

static const char *check_hostport(const char *value);
static const char *check_hostport_or_empty(const char *value);
static const char *check_addr(const char *value);
static const char *check_path(const char *value);
static const char *check_name_or_empty(const char *value);

/* Table entries. FIELD is the struct the offsets are into: the whole
 * configuration for top keys, one list item for the sub keys of a group. */
#define FIELD(m) offsetof(struct pimon_config, m)
#define KEY_STR(p, m, def, allow, chk, d)                                                          \
	{                                                                                          \
		.path = (p), .type = KEY_STRING, .offset = FIELD(m), .def_str = (def),             \
		.allowed = (allow), .check = (chk), .doc = (d)                                     \
	}
#define KEY_INT(p, m, def, lo, hi, d)                                                              \
	{                                                                                          \
		.path = (p), .type = KEY_INT, .offset = FIELD(m), .def_num = (def), .min = (lo),   \
		.max = (hi), .doc = (d)                                                            \
	}
#define KEY_FLT(p, m, def, lo, hi, d)                                                              \
	{                                                                                          \
		.path = (p), .type = KEY_FLOAT, .offset = FIELD(m), .def_num = (def), .min = (lo), \
		.max = (hi), .doc = (d)                                                            \
	}
#define KEY_LST(p, m, n, def, allow, chk, d)                                                       \
	{                                                                                          \
		.path = (p), .type = KEY_LIST, .offset = FIELD(m), .count_offset = FIELD(n),       \
		.def_list = (def), .allowed = (allow), .check = (chk), .doc = (d)                  \
	}
#define KEY_ARGV(p, m, n, def, d)                                                                  \
	{                                                                                          \
		.path = (p), .type = KEY_LIST, .offset = FIELD(m), .count_offset = FIELD(n),       \
		.def_list = (def), .check = check_program, .argv = 1, .doc = (d)                   \
	}
#define KEY_GRP(p, m, n, subkeys, itype, ichk, def, ex, d)                                         \
	{                                                                                          \
		.path = (p), .type = KEY_GROUPS, .offset = FIELD(m), .count_offset = FIELD(n),     \
		.sub = (subkeys), .nsub = sizeof(subkeys) / sizeof(subkeys)[0],                    \
		.item_size = sizeof(itype), .item_check = (ichk), .def_groups = (def),             \
		.example = (ex), .doc = (d)                                                        \
	}
#define KEY_FLT_REQUIRED(p, m, lo, hi, d)                                                          \
	{                                                                                          \
		.path = (p), .type = KEY_FLOAT, .offset = FIELD(m), .min = (lo), .max = (hi),      \
		.required = 1, .doc = (d)                                                          \
	}

static const char *const op_names[] = {">", ">=", "<", "<=", NULL};
static const char *const level_names[] = {"warning", "critical", NULL};
static const char *const no_names[] = {NULL};

static const char *check_key(const char *value);
static const char *check_check_name(const char *value);
static const char *check_metric_path(const char *value);
static const char *check_pattern(const char *value);
static const char *check_program(const char *value);
static const char *check_rule(void *item);
static const char *check_url(const char *value);
static const char *check_header(const char *value);
static const char *check_check(void *item);

#undef FIELD
#define FIELD(m) offsetof(struct pimon_rule, m)
/* The sub keys of one server.alarms rule. */
static const struct key rule_keys[] = {
    KEY_STR("name", name, NULL, NULL, check_key,
            "Alarm name: 1..32 of a-z 0-9 _. Unique among the rules."),
    KEY_STR("metric", metric, NULL, NULL, check_metric_path,
            "What to watch, \"group.field\" as the agents report it, e.g.\n"
            "\"disk.used_pct\" (one alarm per mount), \"temp.celsius\" (per zone)."),
    KEY_STR("op", op, ">", op_names, NULL, "How the value compares with the threshold."),
    KEY_FLT_REQUIRED("value", value, -1e300, 1e300, "The threshold."),
    KEY_FLT("clear", clear, NAN, -1e300, 1e300,
            "Resolve only once the value is at or past this (below it for > and\n"
            ">=, above it for < and <=); unset, as soon as the comparison is false."),
    KEY_FLT("for", for_s, 0, 0, 604800,
            "Seconds the comparison must hold, sample after sample, before firing."),
    KEY_STR("level", level, "warning", level_names, NULL, "Severity of the alarm."),
    KEY_LST("hosts", hosts, nhosts, no_names, NULL, check_pattern,
            "Host names it applies to, shell patterns (\"pi-*\"); unset: every host."),
};

#undef FIELD
#define FIELD(m) offsetof(struct pimon_check, m)
/* The sub keys of one agent.checks entry. */
static const struct key check_keys[] = {
    KEY_STR("name", name, NULL, NULL, check_check_name,
            "Check name: 1..26 of a-z 0-9 _. Its perfdata is stored as the metric\n"
            "check_<name>, its state changes are alarms of that name."),
    KEY_ARGV("command", command, ncommand, NULL,
             "The program (an absolute path) and its arguments, run as they are:\n"
             "never through a shell."),
    KEY_FLT("interval", interval, 60.0, 1, 86400, "Seconds between runs."),
    KEY_FLT("timeout", timeout, 10.0, 0.1, 3600,
            "Seconds before the check's process group is killed; it then counts\n"
            "as UNKNOWN."),
};

#undef FIELD
#define FIELD(m) offsetof(struct pimon_remote_write, m)
/* The sub keys of one server.remote_write receiver. */
static const struct key remote_write_keys[] = {
    KEY_STR("name", name, NULL, NULL, check_key,
            "Receiver name: 1..32 of a-z 0-9 _. Unique; its cursors live in\n"
            "<data_dir>/remote_write/<name>/, so renaming it sends everything again."),
    KEY_STR("url", url, NULL, NULL, check_url,
            "Where WriteRequests are POSTed: an http:// or https:// URL, e.g.\n"
            "\"http://127.0.0.1:9090/api/v1/write\"."),
    KEY_STR("bearer_token_file", bearer_token_file, "", NULL, NULL,
            "File whose first line is sent as \"Authorization: Bearer ...\"; \"\" for none."),
    KEY_STR("basic_auth_username", basic_auth_username, "", NULL, NULL,
            "User name for HTTP basic auth; \"\" for none."),
    KEY_STR("basic_auth_password_file", basic_auth_password_file, "", NULL, NULL,
            "File whose first line is the basic auth password."),
    KEY_LST("headers", headers, nheaders, no_names, NULL, check_header,
            "Extra request headers, \"Name: value\" each, e.g. [\"X-Scope-OrgID: t1\"]."),
    KEY_STR("ca_file", ca_file, "", NULL, NULL,
            "PEM CA bundle that signed an https receiver; \"\" for the system's."),
    KEY_STR("job", job, "pimon", NULL, check_key, "Value of the job label of every series."),
    KEY_INT("max_samples_per_send", max_samples_per_send, 2000, 1, 100000,
            "Samples in one request at most (a row's samples are never split)."),
    KEY_FLT("max_age", max_age, 0, 0, 1e9,
            "Seconds: samples older than this when sent are dropped and counted\n"
            "rather than sent (a receiver refuses samples too old for it); 0 sends\n"
            "every sample."),
    KEY_FLT("timeout", timeout, 30.0, 0.1, 3600, "Seconds one request may take."),
};

static const char remote_write_example[] =
    "{ name = \"prometheus\"; url = \"http://127.0.0.1:9090/api/v1/write\"; },\n"
    "{ name = \"mimir\"; url = \"https://mimir.example:443/api/v1/push\";\n"
    "  headers = [\"X-Scope-OrgID: pis\"]; basic_auth_username = \"pimon\";\n"
    "  basic_auth_password_file = \"/etc/pimon/mimir.pass\"; max_age = 3600.0; }";

#undef FIELD
#define FIELD(m) offsetof(struct pimon_config, m)

/* The rules the server ships with: the original project's levels. */
static const char default_rules[] =
    "{ name = \"disk_warning\"; metric = \"disk.used_pct\"; value = 80.0; clear = 75.0; },\n"
    "{ name = \"disk_critical\"; metric = \"disk.used_pct\"; value = 90.0; clear = 85.0;\n"
    "  level = \"critical\"; },\n"
    "{ name = \"cpu_warning\"; metric = \"cpu.usage\"; value = 70.0; clear = 60.0; for = 60.0; },\n"
    "{ name = \"cpu_critical\"; metric = \"cpu.usage\"; value = 80.0; clear = 70.0; for = 60.0;\n"
    "  level = \"critical\"; },\n"
    "{ name = \"mem_warning\"; metric = \"mem.used_pct\"; value = 70.0; clear = 65.0; for = 30.0; "
    "},\n"
    "{ name = \"mem_critical\"; metric = \"mem.used_pct\"; value = 80.0; clear = 75.0; for = "
    "30.0;\n"
    "  level = \"critical\"; },\n"
    "{ name = \"temp_warning\"; metric = \"temp.celsius\"; value = 50.0; clear = 47.0; },\n"
    "{ name = \"temp_critical\"; metric = \"temp.celsius\"; value = 70.0; clear = 67.0;\n"
    "  level = \"critical\"; },\n"
    "{ name = \"under_voltage\"; metric = \"pi.under_voltage\"; value = 0.0; level = \"critical\"; "
    "},\n"
    "{ name = \"throttled\"; metric = \"pi.throttled\"; value = 0.0; level = \"critical\"; },\n"
    "{ name = \"disk_busy\"; metric = \"diskio.busy_pct\"; value = 90.0; clear = 80.0; for = "
    "300.0; },\n"
    "{ name = \"oom_kill\"; metric = \"vmstat.oom_kills_new\"; value = 0.0; level = "
    "\"critical\"; },\n"
    "{ name = \"clock_unsynced\"; metric = \"clock.synced\"; op = \"<\"; value = 1.0; for = "
    "600.0; },\n"
    "{ name = \"wifi_weak\"; metric = \"wifi.signal_dbm\"; op = \"<\"; value = -80.0; clear = "
    "-75.0;\n"
    "  for = 60.0; }";

static const char rules_example[] =
    "{ name = \"net_errors\"; metric = \"net.rx_errors_s\"; op = \">=\"; value = 1.0;\n"
    "  for = 120.0; hosts = [\"pi-rack1-*\", \"gateway\"]; },\n"
    "{ name = \"mem_low\"; metric = \"mem.available_pct\"; op = \"<\"; value = 10.0;\n"
    "  clear = 15.0; level = \"critical\"; }";

static const char checks_example[] =
    "{ name = \"root_disk\"; interval = 60.0; timeout = 10.0;\n"
    "  command = [\"/usr/lib/nagios/plugins/check_disk\", \"-w\", \"20%\", \"-c\", \"10%\",\n"
    "             \"-p\", \"/\"]; },\n"
    "{ name = \"load\"; interval = 30.0;\n"
    "  command = [\"/usr/lib/nagios/plugins/check_load\", \"-r\", \"-w\", \"2,1.5,1\",\n"
    "             \"-c\", \"4,3,2\"]; },\n"
    "{ name = \"sshd\"; interval = 60.0;\n"
    "  command = [\"/usr/lib/nagios/plugins/check_procs\", \"-c\", \"1:\", \"-C\", \"sshd\"]; }";

/* Keys of one group stay together: the example file is written in this order. */
static const struct key keys[] = {
    KEY_STR("server.listen", server.listen, "0.0.0.0:8080", NULL, check_hostport,
            "Address agents connect to, \"host:port\"; \"[::]:8080\" listens on IPv6."),
    KEY_INT("server.workers", server.workers, 4, 1, 256,
            "Worker threads, each owning an event base and the sessions on it."),
    KEY_STR("server.data_dir", server.data_dir, "/var/lib/pimon", NULL, check_path,
            "Directory holding the stored metrics (hosts/<name>/<metric>.csv)."),
    KEY_INT("server.max_frame", server.max_frame, 1048576, 1024, 1048576,
            "Largest frame payload accepted from an agent, in bytes."),
    KEY_FLT("server.heartbeat.timeout", server.heartbeat_timeout, 10.0, 0.2, 86400,
            "Seconds without any frame from an agent before its host is marked down."),
    KEY_FLT("server.heartbeat.interval", server.heartbeat_interval, 3.0, 0.1, 86400,
            "Seconds between agent heartbeats, sent to each agent when it connects.\n"
            "Must be less than timeout."),
    KEY_FLT("server.collect.interval", server.collect_interval, 10.0, 0.1, 86400,
            "Seconds between metric batches, sent to each agent when it connects."),
    KEY_LST("server.collect.metrics", server.collect_metrics, server.ncollect_metrics,
            default_metrics, config_metric_names, NULL,
            "Collectors the agents run, sent to each agent when it connects.\n"
            "An array [] or a list () of strings: cpu, mem, disk (per mount), load,\n"
            "temp (per thermal zone), net (per interface), users, pi (firmware\n"
            "throttling flags), diskio (per whole block device: bytes and operations\n"
            "a second, busy_pct, wait_seconds, written_bytes), vmstat (swapping, major\n"
            "faults, OOM kills), pressure (stall information per resource, none\n"
            "without PSI), clock (synced, error estimates), wifi (link quality,\n"
            "signal and noise in dBm per interface), cpufreq (MHz per policy), host\n"
            "(uptime, boot time). Add \"procs\" for the busiest processes (the\n"
            "costliest collector) and \"cores\" for the cpu fields per core."),
    KEY_STR("server.http.listen", server.http_listen, "127.0.0.1:8081", NULL,
            check_hostport_or_empty, "Address of the JSON API, \"host:port\"; \"\" disables it."),
    KEY_STR("server.http.tls.cert", server.http_tls_cert, "", NULL, NULL,
            "PEM certificate for HTTPS on server.http.listen; \"\" for plain HTTP."),
    KEY_STR("server.http.tls.key", server.http_tls_key, "", NULL, NULL,
            "PEM key of server.http.tls.cert."),
    KEY_STR("server.http.read_token_file", server.http_read_token_file, "", NULL, NULL,
            "File holding the token that reading the API and /metrics needs, as\n"
            "\"Authorization: Bearer TOKEN\" (the admin token works too); owner-only.\n"
            "\"\" leaves reading open. The dashboard's page itself is always served."),
    KEY_STR("server.http.admin_token_file", server.http_admin_token_file, "", NULL, NULL,
            "File holding the token that requests which change something (POST)\n"
            "must bring as \"Authorization: Bearer TOKEN\"; owner-only. \"\" lets\n"
            "anyone who reaches the API use them."),
    KEY_INT("server.http.max_header_bytes", server.http_max_header, 16384, 1024, 1048576,
            "Largest request head the HTTP API reads."),
    KEY_INT("server.http.max_body_bytes", server.http_max_body, 65536, 0, 16777216,
            "Largest request body the HTTP API reads."),
    KEY_FLT("server.http.timeout", server.http_timeout, 30.0, 1, 3600,
            "Seconds an HTTP connection may sit idle or be slow before it is closed."),
    KEY_GRP("server.alarms", server.alarms, server.nalarms, rule_keys, struct pimon_rule,
            check_rule, default_rules, rules_example,
            "Threshold rules, checked on every sample as it arrives. A rule fires\n"
            "once when its comparison has held for `for` seconds, and resolves once\n"
            "when it stops (or the value passes `clear`), per host and instance.\n"
            "A host whose heartbeats stop is a built-in critical alarm, host_down;\n"
            "agent checks and `pimon-agent alarm` raise alarms of their own names.\n"
            "Setting this list replaces the defaults below; () turns them off."),
    KEY_LST("server.notify.command", server.notify_command, server.nnotify_command, no_names, NULL,
            check_program,
            "Program run for every fire and resolve, with its arguments, never\n"
            "through a shell. It gets the alarm in its environment: PIMON_HOST,\n"
            "PIMON_ALARM, PIMON_INSTANCE, PIMON_LEVEL, PIMON_STATE (firing or\n"
            "resolved), PIMON_VALUE, PIMON_MESSAGE, PIMON_TIME (Unix ms),\n"
            "PIMON_DURATION_S (of a resolved alarm). [] runs nothing."),
    KEY_FLT("server.notify.timeout", server.notify_timeout, 10.0, 0.1, 3600,
            "Seconds before a notify command is killed (logged)."),
    KEY_INT("server.notify.max_running", server.notify_max_running, 4, 1, 256,
            "Notify commands running at once; the others wait their turn, 1000 at most."),
    KEY_STR("server.sync", server.sync, "interval", sync_names, NULL,
            "When stored rows are forced to disk (fdatasync) before they are acked.\n"
            "none: never; the kernel writes them back within about 30 s. A killed\n"
            "  server loses nothing, a power cut loses what was not yet written back,\n"
            "  acked or not.\n"
            "batch: every batch, before its ACK. A power cut loses nothing acked;\n"
            "  costs one fdatasync per file per batch.\n"
            "interval: every sync_interval seconds, and ACKs wait for it. A power cut\n"
            "  loses nothing acked; ACKs come up to sync_interval later."),
    KEY_FLT("server.sync_interval", server.sync_interval, 1.0, 0.01, 3600,
            "Seconds between syncs under sync = \"interval\"."),
    KEY_INT("server.storage.sweep_seconds", server.storage_sweep, 60, 1, 86400,
            "Seconds between the housekeeper's sweeps of the data folder: each\n"
            "compresses the closed files that are due and applies the retention\n"
            "below. A sweep walks every file under hosts/ (one stat each)."),
    KEY_INT("server.storage.close_delay", server.storage_close_delay, 3600, 0, 86400,
            "Seconds over which the compression of closed files is spread: a host's\n"
            "closed file is compressed this long at most after it closed (each host\n"
            "at its own offset, from a hash of its name), so that midnight is not a\n"
            "burst. Until then the closed file stays as plain CSV, which costs about\n"
            "four times its compressed size. 0 compresses at the next sweep."),
    KEY_INT("server.storage.raw_days", server.storage_raw_days, 14, 0, 36500,
            "Compressed days of raw rows kept, besides the open day: older days are\n"
            "deleted whole. At the default interval and collectors a host writes\n"
            "about 3.9 MB of raw CSV a day (53 values every 10 s, 8.4 bytes each),\n"
            "which compress to about 0.86 MB (1.9 bytes a value): 14 days cost\n"
            "about 12 MB a host (bench/storage_bench.py)."),
    KEY_INT("server.storage.minute_days", server.storage_minute_days, 30, 0, 36500,
            "Compressed days of minute rollups (count, min, avg, max per field)\n"
            "kept, besides the open day. About 0.43 MB a host a day compressed at\n"
            "the defaults: 30 days cost about 13 MB a host."),
    KEY_INT("server.storage.hour_days", server.storage_hour_days, 400, 0, 36500,
            "Days of hour rollups kept; they are compressed a month a file, and a\n"
            "month goes once its last day is older than this. About 6 kB a host\n"
            "a day compressed at the defaults: 400 days cost about 2.4 MB a host."),
    KEY_FLT("server.storage.max_bytes", server.storage_max_bytes, 0, 0, 1e18,
            "Cap on the bytes of everything under hosts/ (apparent file sizes). Past\n"
            "it, whole compressed files are deleted, oldest day first across all\n"
            "hosts, every raw day before any minute day, every minute day before any\n"
            "hour month, until the total is under the cap; open files and closed\n"
            "files not yet compressed are never deleted. Each host so cut raises the\n"
            "warning alarm storage_retention_cut, which resolves after a day without\n"
            "cuts. 0 caps at 80 % of the size of the data folder's file system.\n"
            "Write 2 GiB and more as 5e9 or 5000000000L: libconfig wraps plain\n"
            "integers past 32 bits. With the defaults a host costs about 33 MB,\n"
            "the open day's 5.8 MB of plain CSV included: 10,000 hosts about 330 GB."),
    KEY_GRP("server.remote_write", server.remote_write, server.nremote_write, remote_write_keys,
            struct pimon_remote_write, NULL, "", remote_write_example,
            "Prometheus remote_write receivers (Prometheus, Mimir, Thanos, Cortex,\n"
            "VictoriaMetrics) fed every stored raw row, each from its own cursor\n"
            "into the host files, kept across restarts: a receiver that was away\n"
            "gets what it missed, nothing twice (docs/REMOTE_WRITE.md). Closed\n"
            "files a receiver still needs are not compressed until it has them,\n"
            "unless hosts/ is over server.storage.max_bytes."),
    KEY_FLT("server.limits.hello_timeout", server.hello_timeout, 5.0, 0.1, 3600,
            "Seconds a new connection has to send HELLO before it is closed."),
    KEY_INT("server.limits.max_sessions", server.max_sessions, 100000, 1, 10000000,
            "Agent connections held at once; more are closed at accept, counted."),
    KEY_INT("server.limits.max_output", server.max_output, 65536, 4096, 67108864,
            "Bytes queued to an agent that is not reading before its session stops\n"
            "being read (counted); if it still reads nothing for heartbeat.timeout\n"
            "seconds the session is closed (counted)."),
    KEY_STR("server.tls.cert", server.tls_cert, "", NULL, NULL,
            "PEM certificate (chain) agents see; \"\" for plain TCP. TLS 1.2 or newer."),
    KEY_STR("server.tls.key", server.tls_key, "", NULL, NULL, "PEM key of server.tls.cert."),
    KEY_STR("server.tls.ca", server.tls_ca, "", NULL, NULL,
            "With a CA here, agents must present a certificate it signed."),
    KEY_STR("server.auth.token_file", server.auth_token_file, "", NULL, NULL,
            "File holding the secret every agent proves it knows (HMAC over a\n"
            "fresh nonce; the secret never crosses the wire). Readable by its owner\n"
            "only. \"\" lets any agent in, and the server says so loudly at start."),
    KEY_STR("server.auth.hosts_dir", server.auth_hosts_dir, "", NULL, NULL,
            "Folder of per-host secrets: a file named after a host holds that\n"
            "host's secret instead of the shared one (remove it to revoke one Pi)."),
    KEY_STR("server.log_level", server.log_level, "info", log_level_names, NULL,
            "Most verbose level logged."),
    {.path = "server.peers",
     .type = KEY_LIST,
     .offset = FIELD(server.peers),
     .count_offset = FIELD(server.npeers),
     .def_list = no_names,
     .check = check_addr,
     .max_items = PROTO_MAX_PEERS,
     .doc = "Every server of the fleet, \"host:port\" as agents should reach them (up\n"
            "to 16; the same list, written the same way, on every server): sent in\n"
            "WELCOME, it replaces each agent's agent.server, so an agent needs one\n"
            "bootstrap address. [] sends none and agents keep their own list."},
    {.path = "agent.server",
     .type = KEY_LIST,
     .offset = FIELD(agent.server),
     .count_offset = FIELD(agent.nserver),
     .def_list = default_servers,
     .check = check_hostport,
     .one_plus = 1,
     .max_items = RENDEZVOUS_MAX,
     .doc = "Address of pimon-server, \"host:port\" or \"[v6]:port\"; or a list of up\n"
            "to 16, which the fleet shares: each agent ranks them by rendezvous hashing\n"
            "of its name with each address, uses its first choice, fails over down its\n"
            "ranking (taking its unacknowledged batches along) and returns to its first\n"
            "choice after return_delay. A server's WELCOME may replace the list\n"
            "(server.peers), so one bootstrap address is enough."},
    KEY_FLT("agent.return_delay", agent.return_delay, 300.0, 0.5, 86400,
            "Seconds, jittered by up to a quarter either way, after which an agent\n"
            "that failed over checks its first choice (a TCP connect) and moves\n"
            "back when it answers; checked again as long as it does not."),
    KEY_STR("agent.name", agent.name, "", NULL, check_name_or_empty,
            "Name this host reports; \"\" means the machine's host name.\n"
            "Otherwise 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -."),
    KEY_STR("agent.proc_root", agent.proc_root, "/proc", NULL, check_path,
            "Where procfs is mounted (a container may see the host's elsewhere)."),
    KEY_STR("agent.sys_root", agent.sys_root, "/sys", NULL, check_path, "Where sysfs is mounted."),
    KEY_INT("agent.diskio.partitions", agent.diskio_partitions, 0, 0, 1,
            "1: the diskio collector reports each partition (mmcblk0p2) as well as\n"
            "each whole device; 0: whole devices only."),
    KEY_FLT("agent.reconnect.min", agent.reconnect_min, 0.5, 0.05, 3600,
            "Seconds before the first reconnect after the link to the server fails."),
    KEY_FLT("agent.reconnect.max", agent.reconnect_max, 30.0, 0.1, 86400,
            "Seconds the reconnect delay grows to at most; must be at least min."),
    KEY_INT("agent.queue_max", agent.queue_max, 4096, 1, 1000000,
            "Batches kept until the server acknowledges them; past this (or\n"
            "spool_max bytes) the oldest are dropped, counted and reported."),
    KEY_STR("agent.spool_dir", agent.spool_dir, "/var/lib/pimon-agent", NULL, check_path,
            "Where unacknowledged batches are written while the server is away and\n"
            "at shutdown, to be sent after a restart. Nothing is written while the\n"
            "server acknowledges."),
    KEY_INT("agent.spool_max", agent.spool_max, 4194304, 65536, 1073741824,
            "Bytes of unacknowledged batches kept, in memory and in the spool."),
    KEY_FLT("agent.spool_flush", agent.spool_flush, 10.0, 0.05, 3600,
            "While the server is away, seconds between writes to the spool (batches\n"
            "collected in between are written together)."),
    KEY_INT("agent.catchup_rate", agent.catchup_rate, 50, 1, 1000000,
            "Batches per second sent at most when catching up after an outage;\n"
            "new batches queue behind the backlog so rows stay in time order."),
    KEY_GRP("agent.checks", agent.checks, agent.nchecks, check_keys, struct pimon_check,
            check_check, "", checks_example,
            "Checks in the Monitoring-Plugins (Nagios) way: exit 0/1/2/3 is\n"
            "OK/WARNING/CRITICAL/UNKNOWN, the first output line the message, the\n"
            "performance data after '|' metrics of this host. A change of state is\n"
            "sent to the server at once as an alarm. Only this file names commands:\n"
            "nothing the server sends is ever run."),
    KEY_STR("agent.alarm_socket", agent.alarm_socket, "/run/pimon-agent/alarm.sock", NULL, NULL,
            "Unix socket (owner-only) where `pimon-agent alarm` hands the running\n"
            "agent an alarm to send; \"\" for none."),
    KEY_STR("agent.tls.ca", agent.tls_ca, "", NULL, NULL,
            "CA that signed the server's certificate: set it to speak TLS (1.2+)."),
    KEY_STR("agent.tls.cert", agent.tls_cert, "", NULL, NULL,
            "This agent's PEM certificate, for servers that require one."),
    KEY_STR("agent.tls.key", agent.tls_key, "", NULL, NULL, "PEM key of agent.tls.cert."),
    KEY_STR("agent.tls.server_name", agent.tls_server_name, "", NULL, NULL,
            "Name the server's certificate must carry; \"\" means the host of\n"
            "agent.server."),
    KEY_STR("agent.auth.token_file", agent.auth_token_file, "", NULL, NULL,
            "File holding this agent's secret (the shared one, or its own host's);\n"
            "readable by its owner only. \"\" sends no proof."),
    KEY_STR("agent.log_level", agent.log_level, "info", log_level_names, NULL,
            "Most verbose level logged."),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Rules between two float keys: lo < hi (strict) or lo <= hi. The error
 * names the line of the key in blame, or of the other if blame is unset. */
static const struct key_order {
	const char *lo;
	const char *hi;
	int strict;
	int blame_hi;
} key_orders[] = {
    {"server.heartbeat.interval", "server.heartbeat.timeout", 1, 0},
    {"agent.reconnect.min", "agent.reconnect.max", 0, 1},
};

/* State of one config_load call. */
struct load {
	const char *path;
	char *errbuf;
	size_t errlen;
	const config_setting_t *seen[NKEYS]; /* where each key was set, or NULL */
};

/* Copy a string; running out of memory while configuring is fatal. */
static char *config_strdup(const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		log_fatal("config", "out of memory");
	return copy;
}

/* Allocate an array of n string pointers plus a terminating NULL. */
static char **config_list_alloc(size_t n)
{
	char **list = calloc(n + 1, sizeof *list);
	if (!list)
		log_fatal("config", "out of memory");
	return list;
}

/* Free n strings and the array holding them. */
static void config_list_free(char **list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* Address of key k's value inside base (the configuration, or an item). */
static void *config_field(void *base, const struct key *k)
{
	return (char *)base + k->offset;
}

/* Address of list or groups key k's item count inside base. */
static size_t *config_count(void *base, const struct key *k)
{
	return (size_t *)(void *)((char *)base + k->count_offset);
}

/* Index of names[] equal to s, or -1. */
static int config_name_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* Join names[] with ", " into buf, for messages and documentation. */
static const char *config_name_join(const char *const *names, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; names[i] && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}

/* A listen or server address must split as host:port or [v6]:port. */
static const char *check_hostport(const char *value)
{
	char host[256];
	int port;
	if (util_split_hostport(value, host, sizeof host, &port) < 0)
		return "is not host:port or [v6]:port";
	return NULL;
}

/* A server address as WELCOME carries it (proto_addr_valid). */
static const char *check_addr(const char *value)
{
	return proto_addr_valid(value) ? NULL
	                               : "is not host:port or [v6]:port (port 1..65535, no "
	                                 "leading zero)";
}

/* Like check_hostport, but "" (disabled) is accepted too. */
static const char *check_hostport_or_empty(const char *value)
{
	return value[0] ? check_hostport(value) : NULL;
}

/* Directories must at least be named. */
static const char *check_path(const char *value)
{
	return value[0] ? NULL : "is not a path";
}

/* A host name becomes a folder name on the server; "" means ask the system. */
static const char *check_name_or_empty(const char *value)
{
	if (value[0] && !util_valid_name(value))
		return "is not a valid host name (1..64 of A-Z a-z 0-9 . _ -, not starting "
		       "with . or -)";
	return NULL;
}

/* Names that become file names and CSV headers. */
static const char *check_key(const char *value)
{
	return util_valid_key(value) ? NULL : "is not 1..32 of a-z 0-9 _";
}

/* A check's name, with room for its metric's "check_" prefix. */
static const char *check_check_name(const char *value)
{
	return util_valid_key(value) && strlen(value) <= 26 ? NULL : "is not 1..26 of a-z 0-9 _";
}

/* "group.field", both parts keys. */
static const char *check_metric_path(const char *value)
{
	const char *dot = strchr(value, '.');
	char group[64];
	if (!dot || (size_t)(dot - value) >= sizeof group)
		return "is not \"group.field\"";
	snprintf(group, sizeof group, "%.*s", (int)(dot - value), value);
	if (!util_valid_key(group) || !util_valid_key(dot + 1))
		return "is not \"group.field\" of a-z 0-9 _";
	return NULL;
}

/* A host name pattern. */
static const char *check_pattern(const char *value)
{
	return value[0] ? NULL : "is an empty pattern";
}

/* A program is named by its absolute path: no search, no surprises. */
static const char *check_program(const char *value)
{
	return value[0] ? NULL : "is empty";
}

/* Rules between a rule's keys: a metric the agents produce, clear on the
 * resolving side. */
static const char *check_rule(void *item)
{
	const struct pimon_rule *r = item;
	const char *bad_metric = rule_metric_check(r->metric);
	if (bad_metric)
		return bad_metric;
	if (isnan(r->clear))
		return NULL;
	int above = r->op[0] == '>';
	if (above ? r->clear > r->value : r->clear < r->value)
		return above ? "clear must be at most value for > and >="
		             : "clear must be at least value for < and <=";
	return NULL;
}

/* A receiver's URL: http:// or https://, then a host. */
static const char *check_url(const char *value)
{
	const char *rest = strncmp(value, "http://", 7) == 0    ? value + 7
	                   : strncmp(value, "https://", 8) == 0 ? value + 8
	                                                        : NULL;
	if (!rest)
		return "is not an http:// or https:// URL";
	if (!*rest || *rest == '/' || *rest == ':')
		return "names no host";
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return "holds a space or a control character";
	return NULL;
}

/* A request header: "Name: value", the name a token, no line breaks. */
static const char *check_header(const char *value)
{
	const char *colon = strchr(value, ':');
	if (!colon || colon == value)
		return "is not \"Name: value\"";
	for (const char *c = value; c < colon; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return "has a name other than letters, digits, - and _";
	for (const char *c = colon; *c; c++)
		if (*c == '\r' || *c == '\n')
			return "holds a line break";
	return NULL;
}

/* A check's program must be an absolute path. */
static const char *check_check(void *item)
{
	const struct pimon_check *c = item;
	return c->command[0][0] == '/' ? NULL : "command[0] must be an absolute path";
}

/* The table entry for a dotted path, or NULL. */
static const struct key *config_key_find(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

/* Non-zero if path names a group: some key lives below it. */
static int config_is_group(const char *path)
{
	size_t len = strlen(path);
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
			return 1;
	return 0;
}

static void config_defaults_keys(void *base, const struct key *table, size_t n);
static void config_free_keys(void *base, const struct key *table, size_t n);
static void config_default_groups(void *base, const struct key *k);

/* Set every key of table to its default inside base. */
static void config_defaults_keys(void *base, const struct key *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct key *k = &table[i];
		void *field = config_field(base, k);
		switch (k->type) {
		case KEY_STRING:
			*(char **)field = k->def_str ? config_strdup(k->def_str) : NULL;
			break;
		case KEY_INT:
			*(int *)field = (int)k->def_num;
			break;
		case KEY_FLOAT:
			*(double *)field = k->def_num;
			break;
		case KEY_LIST: {
			size_t len = 0;
			while (k->def_list && k->def_list[len])
				len++;
			char **list = config_list_alloc(len);
			for (size_t j = 0; j < len; j++)
				list[j] = config_strdup(k->def_list[j]);
			*(char ***)field = list;
			*config_count(base, k) = len;
			break;
		}
		case KEY_GROUPS:
			config_default_groups(base, k);
			break;
		}
	}
}

/* Release the strings and items of table's keys inside base. */
static void config_free_keys(void *base, const struct key *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct key *k = &table[i];
		void *field = config_field(base, k);
		if (k->type == KEY_STRING) {
			free(*(char **)field);
		} else if (k->type == KEY_LIST) {
			config_list_free(*(char ***)field, *config_count(base, k));
		} else if (k->type == KEY_GROUPS) {
			char *items = *(char **)field;
			for (size_t j = 0; items && j < *config_count(base, k); j++)
				config_free_keys(items + j * k->item_size, k->sub, k->nsub);
			free(items);
		}
	}
}

/* Fill cfg with built-in defaults. */
void config_defaults(struct pimon_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	config_defaults_keys(cfg, keys, NKEYS);
}

/* Release every string of cfg and zero it. */
void config_free(struct pimon_config *cfg)
{
	config_free_keys(cfg, keys, NKEYS);
	free(cfg->path);
	memset(cfg, 0, sizeof *cfg);
}

/* Map a level name to its LOG_* number, -1 if unknown. */
int config_log_level(const char *name)
{
	int i = name ? config_name_index(log_level_names, name) : -1;
	return i < 0 ? -1 : log_level_values[i];
}

static int config_fail(struct load *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write "FILE:LINE: message" (or "FILE: message" without a setting) to the
 * error buffer and return -1. */
static int config_fail(struct load *ld, const config_setting_t *s, const char *fmt, ...)
{
	if (!ld->errbuf || ld->errlen == 0)
		return -1;
	const char *file =
	    s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
	int n = s ? snprintf(ld->errbuf, ld->errlen, "%s:%u: ", file,
	                     (unsigned)config_setting_source_line(s))
	          : snprintf(ld->errbuf, ld->errlen, "%s: ", file);
	if (n >= 0 && (size_t)n < ld->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ld->errbuf + n, ld->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Apply key k's allowed names and validator to one string value. */
static int config_check_string(struct load *ld, const struct key *k, const config_setting_t *s,
                               const char *value)
{
	if (k->allowed && config_name_index(k->allowed, value) < 0) {
		char names[256];
		return config_fail(ld, s, "%s: '%s' is not one of %s", k->path, value,
		                   config_name_join(k->allowed, names, sizeof names));
	}
	const char *why = k->check ? k->check(value) : NULL;
	if (why)
		return config_fail(ld, s, "%s: '%s' %s", k->path, value, why);
	return 0;
}

/* Load an integer key; floats are refused, and so are int64 values out of range. */
static int config_load_int(struct load *ld, void *cfg, const struct key *k,
                           const config_setting_t *s)
{
	int type = config_setting_type(s);
	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
		return config_fail(ld, s, "%s: expected an integer", k->path);
	/* libconfig 1.5 silently wraps integer literals beyond 32 bits unless
	 * they carry an L suffix; nothing here can see the original text. */
	long long v = config_setting_get_int64(s);
	if (v < (long long)k->min || v > (long long)k->max)
		return config_fail(ld, s, "%s: %lld is out of range %lld..%lld", k->path, v,
		                   (long long)k->min, (long long)k->max);
	*(int *)config_field(cfg, k) = (int)v;
	return 0;
}

/* Load a float key; an integer value is accepted as well. */
static int config_load_float(struct load *ld, void *cfg, const struct key *k,
                             const config_setting_t *s)
{
	double v;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: {
		long long i = config_setting_get_int64(s);
		v = (double)i;
		break;
	}
	default:
		return config_fail(ld, s, "%s: expected a number", k->path);
	}
	if (!(v >= k->min && v <= k->max))
		return config_fail(ld, s, "%s: %g is out of range %g..%g", k->path, v, k->min,
		                   k->max);
	*(double *)config_field(cfg, k) = v;
	return 0;
}

/* Load a string key, copied out of libconfig's memory. */
static int config_load_string(struct load *ld, void *cfg, const struct key *k,
                              const config_setting_t *s)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(ld, s, "%s: expected a string", k->path);
	const char *value = config_setting_get_string(s);
	if (config_check_string(ld, k, s, value) < 0)
		return -1;
	char **field = config_field(cfg, k);
	char *copy = config_strdup(value);
	free(*field);
	*field = copy;
	return 0;
}

/* Load a list key: an array or list of distinct, valid strings. */
static int config_load_list(struct load *ld, void *cfg, const struct key *k,
                            const config_setting_t *s)
{
	int type = config_setting_type(s);
	if (k->one_plus && type == CONFIG_TYPE_STRING) {
		const char *value = config_setting_get_string(s);
		if (config_check_string(ld, k, s, value) < 0)
			return -1;
		config_list_free(*(char ***)config_field(cfg, k), *config_count(cfg, k));
		char **one = config_list_alloc(1);
		one[0] = config_strdup(value);
		*(char ***)config_field(cfg, k) = one;
		*config_count(cfg, k) = 1;
		return 0;
	}
	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
		return config_fail(ld, s, "%s: expected a list of strings", k->path);
	size_t n = (size_t)config_setting_length(s);
	if (k->one_plus && n == 0)
		return config_fail(ld, s, "%s: expected at least one", k->path);
	if (k->max_items && n > k->max_items)
		return config_fail(ld, s, "%s: %zu items, at most %zu", k->path, n, k->max_items);
	char **list = config_list_alloc(n);
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(item) != CONFIG_TYPE_STRING) {
			config_fail(ld, item, "%s: expected a list of strings", k->path);
			goto fail;
		}
		/* libconfig 1.5 looks past a string for another one to join, so an
		 * item ending its line is reported on the line of the next token. */
		const char *value = config_setting_get_string(item);
		if (config_check_string(ld, k, item, value) < 0)
			goto fail;
		for (size_t j = 0; j < i && !k->argv; j++) {
			if (strcmp(list[j], value) == 0) {
				config_fail(ld, item, "%s: '%s' is listed twice", k->path, value);
				goto fail;
			}
		}
		list[i] = config_strdup(value);
	}
	config_list_free(*(char ***)config_field(cfg, k), *config_count(cfg, k));
	*(char ***)config_field(cfg, k) = list;
	*config_count(cfg, k) = n;
	return 0;
fail:
	config_list_free(list, n);
	return -1;
}

static int config_load_groups(struct load *ld, void *cfg, const struct key *k,
                              const config_setting_t *s);

/* Load one setting into cfg (the configuration, or an item of a groups
 * key) as table key k says. */
static int config_load_key(struct load *ld, void *cfg, const struct key *k,
                           const config_setting_t *s)
{
	if (k >= keys && k < keys + NKEYS)
		ld->seen[k - keys] = s;
	switch (k->type) {
	case KEY_STRING:
		return config_load_string(ld, cfg, k, s);
	case KEY_INT:
		return config_load_int(ld, cfg, k, s);
	case KEY_FLOAT:
		return config_load_float(ld, cfg, k, s);
	case KEY_LIST:
		return config_load_list(ld, cfg, k, s);
	case KEY_GROUPS:
		return config_load_groups(ld, cfg, k, s);
	}
	return config_fail(ld, s, "%s: unsupported key type", k->path);
}

/* Load one item of groups key k from group s into item, which holds the
 * sub keys' defaults; path names it in messages ("server.alarms[2]"). */
static int config_load_item(struct load *ld, void *item, const struct key *k,
                            const config_setting_t *s, const char *path)
{
	if (!config_setting_is_group(s))
		return config_fail(ld, s, "%s: expected a group { ... }", path);
	int set[64] = {0};
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const struct key *sub = NULL;
		for (size_t j = 0; j < k->nsub; j++)
			if (strcmp(k->sub[j].path, config_setting_name(e)) == 0)
				sub = &k->sub[j];
		if (!sub)
			return config_fail(ld, e, "%s: unknown key '%s'", path,
			                   config_setting_name(e));
		struct key named = *sub;
		char full[256];
		snprintf(full, sizeof full, "%s.%s", path, sub->path);
		named.path = full;
		if (config_load_key(ld, item, &named, e) < 0)
			return -1;
		set[sub - k->sub] = 1;
	}
	for (size_t j = 0; j < k->nsub; j++) {
		const struct key *sub = &k->sub[j];
		int required = sub->required || (sub->type == KEY_STRING && !sub->def_str) ||
		               (sub->type == KEY_LIST && !sub->def_list);
		if (required && !set[j])
			return config_fail(ld, s, "%s: '%s' is required", path, sub->path);
		if (sub->type == KEY_LIST && !sub->def_list && *config_count(item, sub) == 0)
			return config_fail(ld, s, "%s: '%s' must not be empty", path, sub->path);
	}
	const char *why = k->item_check ? k->item_check(item) : NULL;
	if (why)
		return config_fail(ld, s, "%s: %s", path, why);
	return 0;
}

/* Load a groups key: a list () of groups, each an item of k's sub keys,
 * the first sub key (the name) unique among them. */
static int config_load_groups(struct load *ld, void *cfg, const struct key *k,
                              const config_setting_t *s)
{
	int type = config_setting_type(s);
	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return config_fail(ld, s, "%s: expected a list ( { ... }, ... )", k->path);
	size_t n = (size_t)config_setting_length(s);
	char *items = calloc(n ? n : 1, k->item_size);
	if (!items)
		log_fatal("config", "out of memory");
	size_t loaded = 0;
	for (size_t i = 0; i < n; i++, loaded++) {
		void *item = items + i * k->item_size;
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char path[160];
		snprintf(path, sizeof path, "%s[%zu]", k->path, i + 1);
		config_defaults_keys(item, k->sub, k->nsub);
		if (config_load_item(ld, item, k, e, path) < 0)
			goto fail;
		const char *name = *(char **)config_field(item, &k->sub[0]);
		for (size_t j = 0; j < i; j++) {
			void *other = items + j * k->item_size;
			if (strcmp(*(char **)config_field(other, &k->sub[0]), name) == 0) {
				config_fail(ld, e, "%s: %s '%s' is used twice", path,
				            k->sub[0].path, name);
				goto fail;
			}
		}
	}
	char **field = config_field(cfg, k);
	char *old = *field;
	for (size_t j = 0; old && j < *config_count(cfg, k); j++)
		config_free_keys(old + j * k->item_size, k->sub, k->nsub);
	free(old);
	*field = items;
	*config_count(cfg, k) = n;
	return 0;
fail:
	for (size_t j = 0; j <= loaded && j < n; j++)
		config_free_keys(items + j * k->item_size, k->sub, k->nsub);
	free(items);
	return -1;
}

/* Set groups key k inside base to its default items, parsed from the
 * table's libconfig text; a default that does not load is a bug. */
static void config_default_groups(void *base, const struct key *k)
{
	*(char **)config_field(base, k) = NULL;
	*config_count(base, k) = 0;
	size_t len = strlen(k->def_groups) + 16;
	char *text = malloc(len);
	if (!text)
		log_fatal("config", "out of memory");
	snprintf(text, len, "x = (%s);", k->def_groups);
	config_t lc;
	config_init(&lc);
	char err[256] = "";
	struct load ld = {.path = "built-in default", .errbuf = err, .errlen = sizeof err};
	if (!config_read_string(&lc, text))
		log_fatal("config", "%s: default does not parse: line %d: %s", k->path,
		          config_error_line(&lc), config_error_text(&lc));
	if (config_load_groups(&ld, base, k, config_lookup(&lc, "x")) < 0)
		log_fatal("config", "%s: default does not load: %s", k->path, err);
	config_destroy(&lc);
	free(text);
}

/* Walk group (dotted path prefix, "" for the root) in file order, loading
 * each known key and refusing anything the table does not name. */
static int config_load_group(struct load *ld, struct pimon_config *cfg,
                             const config_setting_t *group, const char *prefix)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		char path[256];
		int len = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "",
		                   config_setting_name(s));
		int fits = len >= 0 && (size_t)len < sizeof path;
		const struct key *k = fits ? config_key_find(path) : NULL;
		if (k) {
			if (config_load_key(ld, cfg, k, s) < 0)
				return -1;
			continue;
		}
		if (!fits || !config_is_group(path))
			return config_fail(ld, s, "unknown key '%s'", path);
		if (!config_setting_is_group(s))
			return config_fail(ld, s, "%s: expected a group", path);
		if (config_load_group(ld, cfg, s, path) < 0)
			return -1;
	}
	return 0;
}

/* Enforce the rules between keys once every key is loaded. */
static int config_check_orders(struct load *ld, struct pimon_config *cfg)
{
	for (size_t i = 0; i < sizeof key_orders / sizeof key_orders[0]; i++) {
		const struct key_order *o = &key_orders[i];
		const struct key *lo = config_key_find(o->lo);
		const struct key *hi = config_key_find(o->hi);
		double a = *(double *)config_field(cfg, lo);
		double b = *(double *)config_field(cfg, hi);
		if (o->strict ? a < b : a <= b)
			continue;
		const config_setting_t *slo = ld->seen[lo - keys];
		const config_setting_t *shi = ld->seen[hi - keys];
		if (o->blame_hi)
			return config_fail(ld, shi ? shi : slo, "%s: %g must be %s %s (%g)",
			                   hi->path, b, o->strict ? "greater than" : "at least",
			                   lo->path, a);
		return config_fail(ld, slo ? slo : shi, "%s: %g must be %s %s (%g)", lo->path, a,
		                   o->strict ? "less than" : "at most", hi->path, b);
	}
	return 0;
}

/* Parse the open file fp into next. */
static int config_parse(struct load *ld, struct pimon_config *next, FILE *fp)
{
	config_t lc;
	int rc = -1;
	config_init(&lc);
	if (!config_read(&lc, fp)) {
		const char *file = config_error_file(&lc) ? config_error_file(&lc) : ld->path;
		if (config_error_type(&lc) == CONFIG_ERR_PARSE)
			snprintf(ld->errbuf, ld->errlen, "%s:%d: %s", file, config_error_line(&lc),
			         config_error_text(&lc));
		else
			snprintf(ld->errbuf, ld->errlen, "%s: cannot read: %s", file,
			         config_error_text(&lc));
		goto out;
	}
	if (config_load_group(ld, next, config_root_setting(&lc), "") < 0)
		goto out;
	if (config_check_orders(ld, next) < 0)
		goto out;
	if (next->server.nnotify_command && next->server.notify_command[0][0] != '/') {
		const struct key *k = config_key_find("server.notify.command");
		config_fail(ld, ld->seen[k - keys], "%s: '%s' must be an absolute path", k->path,
		            next->server.notify_command[0]);
		goto out;
	}
	rc = 0;
out:
	config_destroy(&lc);
	return rc;
}

/* Load an open file named name (for messages) over the defaults into cfg,
 * which changes only on success; cfg MUST hold config_defaults() or an
 * earlier load. The fuzzer feeds it memory through fmemopen. */
int config_load_stream(struct pimon_config *cfg, FILE *fp, const char *name, char *errbuf,
                       size_t errlen)
{
	char dummy[1];
	struct load ld = {
	    .path = name,
	    .errbuf = errbuf && errlen ? errbuf : dummy,
	    .errlen = errbuf && errlen ? errlen : sizeof dummy,
	};
	struct pimon_config next;
	ld.errbuf[0] = '\0';
	config_defaults(&next);
	if (config_parse(&ld, &next, fp) < 0) {
		config_free(&next);
		return -1;
	}
	next.path = config_strdup(name);
	config_free(cfg);
	*cfg = next;
	return 0;
}

/* Load path over the defaults; cfg changes only on success. cfg MUST hold
 * config_defaults() or an earlier load (or be zeroed): it is freed then. */
int config_load(struct pimon_config *cfg, const char *path, char *errbuf, size_t errlen)
{
	char dummy[1];
	struct load ld = {
	    .path = path ? path : CONFIG_DEFAULT_PATH,
	    .errbuf = errbuf && errlen ? errbuf : dummy,
	    .errlen = errbuf && errlen ? errlen : sizeof dummy,
	};
	struct pimon_config next;
	struct stat st;
	char ebuf[128];
	int rc = -1;

	ld.errbuf[0] = '\0';
	config_defaults(&next);
	FILE *fp = fopen(ld.path, "r");
	if (!fp) {
		if (!path && errno == ENOENT) {
			rc = 0;
			goto out;
		}
		config_fail(&ld, NULL, "cannot open: %s", strerror_r(errno, ebuf, sizeof ebuf));
		goto out;
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		config_fail(&ld, NULL, "cannot open: %s", strerror_r(EISDIR, ebuf, sizeof ebuf));
		goto out_close;
	}
	rc = config_load_stream(&next, fp, ld.path, errbuf, errlen);
out_close:
	fclose(fp);
out:
	if (rc == 0) {
		config_free(cfg);
		*cfg = next;
	} else {
		config_free(&next);
	}
	return rc;
}

/* Write a numeric value the way libconfig reads it back as the same type. */
static int config_write_number(FILE *out, const struct key *k, double v)
{
	if (k->type == KEY_INT)
		return fprintf(out, "%lld", (long long)v);
	char buf[64];
	snprintf(buf, sizeof buf, "%g", v);
	return fprintf(out, "%s%s", buf, strpbrk(buf, ".e") ? "" : ".0");
}

static const char tabs[] = "\t\t\t\t\t\t\t\t";

/* Write text's lines, each indented by depth tabs after prefix; text that
 * is not empty starts on a new line. */
static void config_write_lines(FILE *out, const char *text, int depth, const char *prefix)
{
	if (text[0] && !prefix[0])
		fputs("\n", out);
	while (*text) {
		size_t len = strcspn(text, "\n");
		fprintf(out, "%.*s%s%.*s\n", depth, tabs, prefix, (int)len, text);
		text += len + (text[len] == '\n');
	}
}

/* Describe one sub key of a groups key in the comment above it: its
 * meaning, allowed values and default. */
static void config_write_sub(FILE *out, const struct key *k, int depth)
{
	char names[256];
	const char *doc = k->doc;
	const char *lead = "";
	fprintf(out, "%.*s#   %s:", depth, tabs, k->path);
	while (*doc) {
		size_t len = strcspn(doc, "\n");
		fprintf(out, "%s %.*s\n", lead, (int)len, doc);
		lead = "";
		doc += len + (doc[len] == '\n');
		if (*doc)
			fprintf(out, "%.*s#    ", depth, tabs);
	}
	fprintf(out, "%.*s#     ", depth, tabs);
	int required = k->required || (k->type == KEY_STRING && !k->def_str) ||
	               (k->type == KEY_LIST && !k->def_list);
	if (k->allowed)
		fprintf(out, "One of %s. ", config_name_join(k->allowed, names, sizeof names));
	if (required) {
		fputs("Required.\n", out);
		return;
	}
	fputs("Default: ", out);
	if (k->type == KEY_STRING)
		fprintf(out, "\"%s\"", k->def_str);
	else if (k->type == KEY_LIST)
		fputs("[]", out);
	else if (isnan(k->def_num))
		fputs("unset", out);
	else
		config_write_number(out, k, k->def_num);
	fputs(".\n", out);
}

/* Write one key: its comment lines, then "name = default;". */
static void config_write_key(FILE *out, const struct key *k, int depth)
{
	const char *doc = k->doc;
	char names[256];
	while (*doc) {
		size_t len = strcspn(doc, "\n");
		fprintf(out, "%.*s# %.*s\n", depth, "\t\t\t\t\t\t\t\t", (int)len, doc);
		doc += len + (doc[len] == '\n');
	}
	if (k->allowed)
		fprintf(out, "%.*s# %s: %s.\n", depth, "\t\t\t\t\t\t\t\t",
		        k->type == KEY_LIST ? "Each at most once, from" : "One of",
		        config_name_join(k->allowed, names, sizeof names));
	if (k->type == KEY_INT || k->type == KEY_FLOAT) {
		fprintf(out, "%.*s# Range: ", depth, "\t\t\t\t\t\t\t\t");
		config_write_number(out, k, k->min);
		fputs(" .. ", out);
		config_write_number(out, k, k->max);
		fputs(".\n", out);
	}
	for (size_t i = 0; k->type == KEY_GROUPS && i < k->nsub; i++)
		config_write_sub(out, &k->sub[i], depth);
	fprintf(out, "%.*s%s = ", depth, "\t\t\t\t\t\t\t\t", strrchr(k->path, '.') + 1);
	switch (k->type) {
	case KEY_STRING:
		fprintf(out, "\"%s\"", k->def_str);
		break;
	case KEY_INT:
	case KEY_FLOAT:
		config_write_number(out, k, k->def_num);
		break;
	case KEY_LIST:
		fputs("[", out);
		for (size_t i = 0; k->def_list[i]; i++)
			fprintf(out, "%s\"%s\"", i ? ", " : " ", k->def_list[i]);
		fputs(" ]", out);
		break;
	case KEY_GROUPS:
		/* With no default items the example goes inside the list, ready
		 * to be uncommented; otherwise after it. */
		fputs("(", out);
		if (k->def_groups[0])
			config_write_lines(out, k->def_groups, depth + 1, "");
		else if (k->example) {
			fputs("\n", out);
			config_write_lines(out, k->example, depth + 1, "# ");
		}
		fprintf(out, "%.*s)", k->def_groups[0] || k->example ? depth : 0, tabs);
		break;
	}
	fputs(";\n", out);
	if (k->type == KEY_GROUPS && k->def_groups[0] && k->example) {
		fprintf(out, "%.*s# More examples:\n", depth, tabs);
		config_write_lines(out, k->example, depth, "# ");
	}
}

/* Number of dot-separated parts in the first len bytes of a path. */
static int config_depth(const char *path, size_t len)
{
	int depth = len > 0;
	for (size_t i = 0; i < len; i++)
		depth += path[i] == '.';
	return depth;
}

/* Write the documented example configuration: every key of the table with
 * its meaning, allowed values and default. Returns 0, or -1 on a write error. */
int config_write_example(FILE *out)
{
	const char *open = ""; /* path of the innermost open group */
	size_t olen = 0;
	int first = 1;

	fputs("# pimon configuration, in libconfig syntax. Both daemons read this file:\n"
	      "# pimon-server the server group, pimon-agent the agent group.\n"
	      "# Every key is shown with its default value; a key left out keeps it.\n"
	      "# Generated from the key table in common/config.c; edit that, then\n"
	      "# regenerate with: test-config --print-example > etc/pimon.cfg\n",
	      out);
	for (size_t i = 0; i < NKEYS; i++) {
		const char *path = keys[i].path;
		size_t glen = (size_t)(strrchr(path, '.') - path);
		/* Close groups until the open one contains this key. */
		while (olen > 0 &&
		       !(olen <= glen && strncmp(open, path, olen) == 0 && (path[olen] == '.'))) {
			int depth = config_depth(open, olen);
			fprintf(out, "%.*s};\n", depth - 1, "\t\t\t\t\t\t\t\t");
			const char *dot = memrchr(open, '.', olen);
			olen = dot ? (size_t)(dot - open) : 0;
			first = 0;
		}
		/* Open groups down to this key's. */
		while (olen < glen) {
			size_t start = olen ? olen + 1 : 0;
			size_t end = start + strcspn(path + start, ".");
			int depth = config_depth(path, olen);
			fprintf(out, "\n%.*s%.*s:\n%.*s{\n", depth, "\t\t\t\t\t\t\t\t",
			        (int)(end - start), path + start, depth, "\t\t\t\t\t\t\t\t");
			open = path;
			olen = end;
			first = 1;
		}
		open = path;
		if (!first)
			fputs("\n", out);
		config_write_key(out, &keys[i], config_depth(path, glen));
		first = 0;
	}
	while (olen > 0) {
		fprintf(out, "%.*s};\n", config_depth(open, olen) - 1, "\t\t\t\t\t\t\t\t");
		const char *dot = memrchr(open, '.', olen);
		olen = dot ? (size_t)(dot - open) : 0;
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

/* Write len bytes of s as scdoc text: markup characters escaped, a first
 * character that would start a list, table or heading escaped, and
 * `quoted` words in bold. */
static void config_man_text(FILE *out, const char *s, size_t len)
{
	int bold = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '`' && (bold || memchr(s + i + 1, '`', len - i - 1))) {
			fputc('*', out);
			bold = !bold;
			continue;
		}
		if (s[i] == '\\' || s[i] == '*' || s[i] == '_' ||
		    (i == 0 && strchr("-[]|;#", s[i])))
			fputc('\\', out);
		fputc(s[i], out);
	}
}

/* Write doc's lines as scdoc indented by depth tabs, leading spaces
 * dropped. A line followed by an indented one (the example file's way of
 * listing choices) starts a paragraph; a line starting with '.' joins the
 * one before, as roff would take it for a request. -1 if doc is empty or
 * starts with '.'. */
static int config_man_doc(FILE *out, const char *doc, int depth)
{
	if (!doc || !doc[strspn(doc, " \n")] || doc[strspn(doc, " ")] == '.')
		return -1;
	for (int first = 1; *doc; first = 0) {
		size_t lead = strspn(doc, " ");
		size_t len = strcspn(doc, "\n");
		const char *next = doc + len + (doc[len] == '\n');
		if (first)
			fprintf(out, "%.*s", depth, tabs);
		else if (doc[lead] == '.')
			fputc(' ', out);
		else
			fprintf(out, "\n%s%.*s", lead == 0 && next[0] == ' ' ? "\n" : "", depth,
			        tabs);
		config_man_text(out, doc + lead, len - lead);
		doc = next;
	}
	fputc('\n', out);
	return 0;
}

/* Write one line of libconfig text, pad spaces in, at depth tabs in a
 * scdoc literal block, so that the page fits 80 columns: where it is wider
 * than 64 it is broken after a "; ", or else after a ", " with the rest
 * under the first item of the array it is in. */
static void config_man_code(FILE *out, const char *line, size_t len, size_t pad, int depth)
{
	size_t more = pad + strspn(line, " ") + 2; /* after a "; " */
	while (pad + len > 64) {
		size_t semi = 0, comma = 0;
		for (size_t i = 0; i + 1 < len && pad + i < 64; i++) {
			if (line[i] == ';' && line[i + 1] == ' ')
				semi = i + 1;
			if (line[i] == ',' && line[i + 1] == ' ')
				comma = i + 1;
		}
		size_t cut = semi ? semi : comma;
		if (!cut)
			break;
		const char *open = memrchr(line, '[', cut);
		size_t next = semi ? more : open ? pad + (size_t)(open - line) + 1 : pad;
		fprintf(out, "%.*s%*s%.*s\n", depth, tabs, (int)pad, "", (int)cut, line);
		line += cut + 1;
		len -= cut + 1;
		pad = next;
	}
	fprintf(out, "%.*s%*s%.*s\n", depth, tabs, (int)pad, "", (int)len, line);
}

/* Write "name = ( items );" as a scdoc literal block at depth tabs. */
static void config_man_groups(FILE *out, const char *name, const char *items, int depth)
{
	fprintf(out, "\n%.*s```\n%.*s%s = (\n", depth, tabs, depth, tabs, name);
	while (*items) {
		size_t len = strcspn(items, "\n");
		config_man_code(out, items, len, 2, depth);
		items += len + (items[len] == '\n');
	}
	fprintf(out, "%.*s);\n%.*s```\n", depth, tabs, depth, tabs);
}

/* Write the values key k takes and its default as a scdoc paragraph at
 * depth tabs; a groups key's default items follow as a literal block. */
static void config_man_values(FILE *out, const struct key *k, int depth)
{
	char names[256];
	int required = k->required || (k->type == KEY_STRING && !k->def_str) ||
	               (k->type == KEY_LIST && !k->def_list);
	fprintf(out, "\n%.*s", depth, tabs);
	if (k->allowed) {
		config_name_join(k->allowed, names, sizeof names);
		fputs(k->type == KEY_LIST ? "Each at most once, from: " : "One of: ", out);
		config_man_text(out, names, strlen(names));
		fputs(". ", out);
	}
	if ((k->type == KEY_INT || k->type == KEY_FLOAT) && (k->min > -1e300 || k->max < 1e300)) {
		fputs("Range: ", out);
		config_write_number(out, k, k->min);
		fputs(" .. ", out);
		config_write_number(out, k, k->max);
		fputs(". ", out);
	}
	if (k->one_plus)
		fputs("At least one. ", out);
	if (required) {
		fputs("Required.\n", out);
		return;
	}
	fputs("Default: ", out);
	switch (k->type) {
	case KEY_STRING:
		fputs("\"", out);
		config_man_text(out, k->def_str, strlen(k->def_str));
		fputs("\"", out);
		break;
	case KEY_INT:
	case KEY_FLOAT:
		if (isnan(k->def_num))
			fputs("unset", out);
		else
			config_write_number(out, k, k->def_num);
		break;
	case KEY_LIST:
		fputs("[", out);
		for (size_t i = 0; k->def_list[i]; i++) {
			fputs(i ? ", \"" : " \"", out);
			config_man_text(out, k->def_list[i], strlen(k->def_list[i]));
			fputs("\"", out);
		}
		fputs(k->def_list[0] ? " ]" : "]", out);
		break;
	case KEY_GROUPS:
		fputs(k->def_groups[0] ? "the items below" : "()", out);
		break;
	}
	fputs(".\n", out);
	if (k->type == KEY_GROUPS && k->def_groups[0])
		config_man_groups(out, strrchr(k->path, '.') + 1, k->def_groups, depth);
}

/* Write key k (at depth 1: a sub key of a groups key) as scdoc: its name
 * and type, its doc, the values it takes and its default, and for a groups
 * key its sub keys and example. -1 for a key (or sub key) without doc. */
static int config_man_key(FILE *out, const struct key *k, int depth)
{
	static const char *const type_names[] = {
	    [KEY_STRING] = "string",        [KEY_INT] = "integer",           [KEY_FLOAT] = "number",
	    [KEY_LIST] = "list of strings", [KEY_GROUPS] = "list of groups",
	};
	int rc = 0;
	fprintf(out, "%.*s*", depth, tabs);
	config_man_text(out, k->path, strlen(k->path));
	fprintf(out, "* (%s)\n", k->one_plus ? "string or list of strings" : type_names[k->type]);
	if (config_man_doc(out, k->doc, depth + 1) < 0) {
		fprintf(stderr, "config_write_man: %s: no doc, or it starts with '.'\n", k->path);
		rc = -1;
	}
	config_man_values(out, k, depth + 1);
	if (k->type != KEY_GROUPS)
		return rc;
	fprintf(out, "\n%.*sEach item is a group of these keys:\n", depth + 1, tabs);
	for (size_t i = 0; i < k->nsub; i++) {
		fputs("\n", out);
		if (config_man_key(out, &k->sub[i], depth + 1) < 0) {
			fprintf(stderr, "config_write_man: in %s\n", k->path);
			rc = -1;
		}
	}
	if (k->example) {
		fprintf(out, "\n%.*s%s:\n", depth + 1, tabs,
		        k->def_groups[0] ? "More examples" : "Example");
		config_man_groups(out, strrchr(k->path, '.') + 1, k->example, depth + 1);
	}
	return rc;
}

/* Write the key reference of pimon.cfg(5) as scdoc: every key of the table,
 * under a heading per top group, with its type, meaning, allowed values and
 * default, and the sub keys of the group lists. Returns 0, or -1 on a write
 * error or for a key without doc (named on stderr). */
int config_write_man(FILE *out)
{
	const char *group = "";
	size_t glen = 0;
	int rc = 0;

	fputs("; Generated from the key table in common/config.c; edit that, then\n"
	      "; regenerate with: test-config --print-man > docs/man/pimon.cfg.5.keys.scd\n",
	      out);
	for (size_t i = 0; i < NKEYS; i++) {
		const char *path = keys[i].path;
		size_t len = strcspn(path, ".");
		if (len != glen || strncmp(path, group, len) != 0) {
			fprintf(out, "\n## %.*s\n", (int)len, path);
			group = path;
			glen = len;
		}
		fputs("\n", out);
		if (config_man_key(out, &keys[i], 0) < 0)
			rc = -1;
	}
	return fflush(out) == 0 && !ferror(out) ? rc : -1;
}

/* Load for a command line: report, check-only, or go on. */
int config_load_cli(struct pimon_config *cfg, const char *prog, const char *path, int check_only)
{
	char err[512];
	config_defaults(cfg);
	if (config_load(cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		config_free(cfg);
		return 2;
	}
	if (check_only) {
		printf("%s: configuration is valid\n", cfg->path ? cfg->path : "built-in defaults");
		config_free(cfg);
		return 0;
	}
	return -1;
}

/* A list of one copy of value. */
void config_set_list(char ***list, size_t *n, const char *value)
{
	config_list_free(*list, *n);
	*list = config_list_alloc(1);
	(*list)[0] = config_strdup(value);
	*n = 1;
}

/* Swap in a copy of value; running out of memory here is fatal. */
void config_set_str(char **slot, const char *value)
{
	char *copy = strdup(value);
	if (!copy) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	free(*slot);
	*slot = copy;
}
