/* Unit tests for the configuration loader: defaults, the example file against
 * the key table, a custom file, and one fixture per kind of error, each
 * checked for its exact "FILE:LINE: message". */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static const char *fixtures_dir;

/* Full path of fixture config/name in a static buffer of the caller's. */
static const char *fixture(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/config/%s", fixtures_dir, name);
	return buf;
}

/* Non-zero if both lists hold the same strings in the same order. */
static int list_equal(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/* Non-zero if a and b hold the same values; path is not compared. */
static int config_equal(const struct pimon_config *a, const struct pimon_config *b)
{
	return strcmp(a->server.listen, b->server.listen) == 0 &&
	       a->server.workers == b->server.workers &&
	       strcmp(a->server.data_dir, b->server.data_dir) == 0 &&
	       a->server.max_frame == b->server.max_frame &&
	       a->server.heartbeat_timeout == b->server.heartbeat_timeout &&
	       a->server.heartbeat_interval == b->server.heartbeat_interval &&
	       a->server.collect_interval == b->server.collect_interval &&
	       list_equal(a->server.collect_metrics, a->server.ncollect_metrics,
	                  b->server.collect_metrics, b->server.ncollect_metrics) &&
	       strcmp(a->server.http_listen, b->server.http_listen) == 0 &&
	       strcmp(a->server.log_level, b->server.log_level) == 0 &&
	       list_equal(a->agent.server, a->agent.nserver, b->agent.server, b->agent.nserver) &&
	       strcmp(a->agent.name, b->agent.name) == 0 &&
	       strcmp(a->agent.proc_root, b->agent.proc_root) == 0 &&
	       strcmp(a->agent.sys_root, b->agent.sys_root) == 0 &&
	       a->agent.reconnect_min == b->agent.reconnect_min &&
	       a->agent.reconnect_max == b->agent.reconnect_max &&
	       a->agent.queue_max == b->agent.queue_max &&
	       strcmp(a->agent.log_level, b->agent.log_level) == 0;
}

/* Every default as documented in the brief. */
static void test_defaults(void)
{
	struct pimon_config cfg;
	config_defaults(&cfg);
	CHECK(cfg.path == NULL);
	CHECK_STR(cfg.server.listen, "0.0.0.0:8080");
	CHECK(cfg.server.workers == 4);
	CHECK_STR(cfg.server.data_dir, "/var/lib/pimon");
	CHECK(cfg.server.max_frame == 1048576);
	CHECK(cfg.server.heartbeat_timeout == 10.0);
	CHECK(cfg.server.heartbeat_interval == 3.0);
	CHECK(cfg.server.collect_interval == 10.0);
	/* Every collector but procs, the costly one. */
	const char *metrics[] = {"cpu",      "mem",   "disk", "load",    "temp",
	                         "net",      "users", "pi",   "diskio",  "vmstat",
	                         "pressure", "clock", "wifi", "cpufreq", "host"};
	size_t nmetrics = sizeof metrics / sizeof metrics[0];
	CHECK(cfg.server.ncollect_metrics == nmetrics);
	for (size_t i = 0; i < nmetrics && i < cfg.server.ncollect_metrics; i++)
		CHECK_STR(cfg.server.collect_metrics[i], metrics[i]);
	CHECK_STR(cfg.server.http_listen, "127.0.0.1:8081");
	CHECK_STR(cfg.server.log_level, "info");
	CHECK(cfg.agent.nserver == 1);
	CHECK_STR(cfg.agent.server[0], "127.0.0.1:8080");
	CHECK_STR(cfg.agent.name, "");
	CHECK_STR(cfg.agent.proc_root, "/proc");
	CHECK_STR(cfg.agent.sys_root, "/sys");
	CHECK(cfg.agent.reconnect_min == 0.5);
	CHECK(cfg.agent.reconnect_max == 30.0);
	CHECK(cfg.agent.queue_max == 4096);
	CHECK_STR(cfg.agent.spool_dir, "/var/lib/pimon-agent");
	CHECK(cfg.agent.spool_max == 4194304);
	CHECK(cfg.agent.spool_flush == 10.0);
	CHECK(cfg.agent.catchup_rate == 50);
	CHECK_STR(cfg.server.sync, "interval");
	CHECK(cfg.server.sync_interval == 1.0);
	CHECK_STR(cfg.agent.log_level, "info");
	config_free(&cfg);
	CHECK(cfg.server.listen == NULL && cfg.server.collect_metrics == NULL);
	CHECK(cfg.server.ncollect_metrics == 0);
	config_free(&cfg); /* a freed config can be freed again */
}

/* Level names map to common/log.h's numbers. */
static void test_log_level(void)
{
	CHECK(config_log_level("err") == LOG_ERR);
	CHECK(config_log_level("warn") == LOG_WARN);
	CHECK(config_log_level("notice") == LOG_NOTICE);
	CHECK(config_log_level("info") == LOG_INFO);
	CHECK(config_log_level("debug") == 7);
	CHECK(config_log_level("err") == 3);
	CHECK(config_log_level("warning") == -1);
	CHECK(config_log_level("") == -1);
	CHECK(config_log_level("DEBUG") == -1);
	CHECK(config_log_level(NULL) == -1);
}

/* The metric names are exactly the seventeen collectors, NULL-terminated. */
static void test_metric_names(void)
{
	const char *want[] = {"cpu",   "mem",   "disk",    "load",   "temp",   "net",
	                      "users", "procs", "pi",      "diskio", "vmstat", "pressure",
	                      "clock", "wifi",  "cpufreq", "host",   "cores",  NULL};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		if (want[i])
			CHECK(config_metric_names[i] &&
			      strcmp(config_metric_names[i], want[i]) == 0);
		else
			CHECK(config_metric_names[i] == NULL);
	}
}

/* Read a whole file into a malloc'd string, NULL on failure. */
static char *read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		fwrite(chunk, 1, n, mem);
	fclose(mem);
	fclose(fp);
	return buf;
}

/* etc/pimon.cfg is exactly what the key table documents, and loading it
 * gives the defaults: the documented defaults cannot drift from the code. */
static void test_example_file(void)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/../../etc/pimon.cfg", fixtures_dir);

	char *want = NULL;
	size_t wantlen = 0;
	FILE *mem = open_memstream(&want, &wantlen);
	CHECK(config_write_example(mem) == 0);
	fclose(mem);
	char *have = read_all(path);
	CHECK(have != NULL);
	if (have && want && strcmp(have, want) != 0)
		fprintf(stderr,
		        "%s is out of date with the key table in common/config.c;\n"
		        "regenerate it with: test-config --print-example > etc/pimon.cfg\n",
		        path);
	CHECK(have && want && strcmp(have, want) == 0);
	free(have);
	free(want);

	struct pimon_config def, cfg;
	char err[512] = "";
	config_defaults(&def);
	config_defaults(&cfg);
	CHECK(config_load(&cfg, path, err, sizeof err) == 0);
	CHECK_STR(err, "");
	CHECK(cfg.path && strcmp(cfg.path, path) == 0);
	CHECK(config_equal(&cfg, &def));
	config_free(&cfg);
	config_free(&def);
}

/* lead, then key path as pimon.cfg(5) heads its entry: "*path* (" with
 * the underscores escaped the scdoc way. */
static const char *man_heading(char *buf, size_t size, const char *lead, const char *path)
{
	size_t used = (size_t)snprintf(buf, size, "%s*", lead);
	for (; *path && used + 6 < size; path++) {
		if (*path == '_')
			buf[used++] = '\\';
		buf[used++] = *path;
	}
	snprintf(buf + used, size - used, "* (");
	return buf;
}

/* Every key inside the items of list s, the example file's list of groups
 * path, has an entry in entry, the part of man from path's own on. */
static void check_man_items(const char *entry, const config_setting_t *s, const char *path)
{
	char heading[320];
	for (int i = 0; config_setting_is_list(s) && i < config_setting_length(s); i++) {
		const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
		for (int j = 0; config_setting_is_group(item) && j < config_setting_length(item);
		     j++) {
			const char *name =
			    config_setting_name(config_setting_get_elem(item, (unsigned)j));
			int found = strstr(entry, man_heading(heading, sizeof heading, "\n\t",
			                                      name)) != NULL;
			if (!found)
				fprintf(stderr, "pimon.cfg(5) has no entry for %s: %s\n", path,
				        name);
			CHECK(found);
		}
	}
}

/* Every key the example file's group sets (prefix: the group's dotted
 * path), and every key inside the items of its lists of groups, has an
 * entry in man, the scdoc text of pimon.cfg(5)'s key reference. */
static void check_man_covers(const char *man, const config_setting_t *group, const char *prefix)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		char path[256], heading[320];
		snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "",
		         config_setting_name(s));
		if (config_setting_is_group(s)) {
			check_man_covers(man, s, path);
			continue;
		}
		const char *entry = strstr(man, man_heading(heading, sizeof heading, "\n", path));
		if (!entry)
			fprintf(stderr, "pimon.cfg(5) has no entry for %s\n", path);
		CHECK(entry != NULL);
		if (entry)
			check_man_items(entry, s, path);
	}
}

/* docs/man/pimon.cfg.5.keys.scd, the key reference of pimon.cfg(5), is
 * exactly what the key table writes, every key has documentation, and
 * every key the example file sets has its entry: the manual cannot drift
 * from the code. */
static void test_man_page(void)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/../../docs/man/pimon.cfg.5.keys.scd", fixtures_dir);

	char *want = NULL;
	size_t wantlen = 0;
	FILE *mem = open_memstream(&want, &wantlen);
	CHECK(config_write_man(mem) == 0); /* fails for a key without doc */
	fclose(mem);
	char *have = read_all(path);
	CHECK(have != NULL);
	if (have && want && strcmp(have, want) != 0)
		fprintf(stderr,
		        "%s is out of date with the key table in common/config.c;\n"
		        "regenerate it with: test-config --print-man > "
		        "docs/man/pimon.cfg.5.keys.scd\n",
		        path);
	CHECK(have && want && strcmp(have, want) == 0);

	config_t lc;
	char example[1024];
	snprintf(example, sizeof example, "%s/../../etc/pimon.cfg", fixtures_dir);
	config_init(&lc);
	CHECK(config_read_file(&lc, example) == CONFIG_TRUE);
	if (want)
		check_man_covers(want, config_root_setting(&lc), "");
	config_destroy(&lc);
	free(have);
	free(want);
}

/* A file changing every key loads every value. */
static void test_custom_file(void)
{
	struct pimon_config cfg;
	char path[1024], err[512];
	fixture(path, sizeof path, "good_custom.cfg");
	config_defaults(&cfg);
	int rc = config_load(&cfg, path, err, sizeof err);
	CHECK(rc == 0);
	if (rc)
		fprintf(stderr, "unexpected error: %s\n", err);
	CHECK(cfg.path && strcmp(cfg.path, path) == 0);
	CHECK_STR(cfg.server.listen, "[::]:9000");
	CHECK(cfg.server.workers == 16);
	CHECK_STR(cfg.server.data_dir, "/srv/pimon");
	CHECK(cfg.server.max_frame == 65536);
	CHECK(cfg.server.heartbeat_timeout == 20.0);
	CHECK(cfg.server.heartbeat_interval == 2.5);
	CHECK(cfg.server.collect_interval == 5.5);
	CHECK(cfg.server.ncollect_metrics == 2);
	if (cfg.server.ncollect_metrics == 2) {
		CHECK_STR(cfg.server.collect_metrics[0], "net");
		CHECK_STR(cfg.server.collect_metrics[1], "cpu");
	}
	CHECK_STR(cfg.server.http_listen, "");
	CHECK_STR(cfg.server.log_level, "debug");
	CHECK(cfg.agent.nserver == 1); /* a string alone is a list of one */
	CHECK_STR(cfg.agent.server[0], "[::1]:9000");
	CHECK_STR(cfg.agent.name, "web-01.example");
	CHECK_STR(cfg.agent.proc_root, "/host/proc");
	CHECK_STR(cfg.agent.sys_root, "/host/sys");
	CHECK(cfg.agent.reconnect_min == 1.0);
	CHECK(cfg.agent.reconnect_max == 60.0);
	CHECK(cfg.agent.queue_max == 10);
	CHECK_STR(cfg.agent.log_level, "warn");

	/* Loading again starts over from the defaults, not from the last load. */
	fixture(path, sizeof path, "good_partial.cfg");
	CHECK(config_load(&cfg, path, err, sizeof err) == 0);
	CHECK_STR(cfg.agent.name, "db1");
	CHECK(cfg.server.workers == 4);
	CHECK_STR(cfg.server.listen, "0.0.0.0:8080");
	CHECK(cfg.server.ncollect_metrics == 0); /* an empty array is allowed */
	CHECK(cfg.agent.queue_max == 4096);
	config_free(&cfg);
}

/* Rules, notify settings and checks load item by item; unset sub keys
 * take their defaults. The built-in rules are the original levels. */
static void test_alarms_file(void)
{
	struct pimon_config cfg;
	char path[1024], err[512];
	config_defaults(&cfg);
	CHECK(cfg.server.nalarms == 14);
	if (cfg.server.nalarms == 14) {
		CHECK_STR(cfg.server.alarms[0].name, "disk_warning");
		CHECK(cfg.server.alarms[0].value == 80.0);
		CHECK_STR(cfg.server.alarms[1].level, "critical");
		CHECK(cfg.server.alarms[1].value == 90.0);
		CHECK(cfg.server.alarms[2].for_s == 60.0);
		CHECK(isnan(cfg.server.alarms[8].clear));
		/* What explains a sick Pi: a busy disk, an OOM kill, a clock
		 * never synchronised, weak Wi-Fi. */
		CHECK_STR(cfg.server.alarms[10].metric, "diskio.busy_pct");
		CHECK(cfg.server.alarms[10].value == 90.0 && cfg.server.alarms[10].for_s == 300.0);
		CHECK_STR(cfg.server.alarms[11].metric, "vmstat.oom_kills_new");
		CHECK_STR(cfg.server.alarms[11].level, "critical");
		CHECK_STR(cfg.server.alarms[12].op, "<");
		CHECK(cfg.server.alarms[12].value == 1.0 && cfg.server.alarms[12].for_s == 600.0);
		CHECK_STR(cfg.server.alarms[13].metric, "wifi.signal_dbm");
		CHECK(cfg.server.alarms[13].value == -80.0 && cfg.server.alarms[13].clear == -75.0);
	}
	CHECK(cfg.agent.nchecks == 0);
	fixture(path, sizeof path, "good_alarms.cfg");
	int rc = config_load(&cfg, path, err, sizeof err);
	CHECK(rc == 0);
	if (rc)
		fprintf(stderr, "unexpected error: %s\n", err);
	CHECK(cfg.server.nalarms == 2);
	if (cfg.server.nalarms == 2) {
		const struct pimon_rule *r = &cfg.server.alarms[0];
		CHECK_STR(r->name, "hot");
		CHECK_STR(r->metric, "temp.celsius");
		CHECK_STR(r->op, ">=");
		CHECK(r->value == 60.5 && r->clear == 55.0 && r->for_s == 30.0);
		CHECK_STR(r->level, "critical");
		CHECK(r->nhosts == 2 && strcmp(r->hosts[1], "gw") == 0);
		r = &cfg.server.alarms[1];
		CHECK_STR(r->op, "<");
		CHECK(r->value == 10.0 && isnan(r->clear) && r->for_s == 0.0);
		CHECK_STR(r->level, "warning");
		CHECK(r->nhosts == 0);
	}
	CHECK(cfg.server.nnotify_command == 3);
	CHECK(cfg.server.notify_timeout == 3.5 && cfg.server.notify_max_running == 2);
	CHECK(cfg.agent.nchecks == 2);
	if (cfg.agent.nchecks == 2) {
		CHECK_STR(cfg.agent.checks[0].name, "root_disk");
		/* A command line may repeat an argument ("10%" twice). */
		CHECK(cfg.agent.checks[0].ncommand == 7);
		CHECK(cfg.agent.checks[0].interval == 30.0 && cfg.agent.checks[0].timeout == 5.0);
		CHECK(cfg.agent.checks[1].interval == 60.0 && cfg.agent.checks[1].timeout == 10.0);
	}
	CHECK_STR(cfg.agent.alarm_socket, "/tmp/pimon-alarm.sock");
	CHECK(cfg.agent.nserver == 2);
	if (cfg.agent.nserver == 2) {
		CHECK_STR(cfg.agent.server[0], "10.0.0.1:8080");
		CHECK_STR(cfg.agent.server[1], "[fd00::2]:8080");
	}
	config_free(&cfg);
}

/* A file with only comments gives the defaults and records its path. */
static void test_empty_file(void)
{
	struct pimon_config cfg, def;
	char path[1024], err[512];
	fixture(path, sizeof path, "good_empty.cfg");
	config_defaults(&def);
	config_defaults(&cfg);
	CHECK(config_load(&cfg, path, err, sizeof err) == 0);
	CHECK(cfg.path && strcmp(cfg.path, path) == 0);
	CHECK(config_equal(&cfg, &def));
	config_free(&cfg);
	config_free(&def);
}

static const struct bad_case {
	const char *file;
	int line;
	const char *msg; /* what follows "FILE:LINE: " */
} bad_cases[] = {
    {"bad_syntax.cfg", 4, "syntax error"},
    {"bad_unknown_top.cfg", 5, "unknown key 'client'"},
    {"bad_unknown_top_scalar.cfg", 3, "unknown key 'verbose'"},
    {"bad_unknown_server.cfg", 5, "unknown key 'server.workerz'"},
    {"bad_unknown_heartbeat.cfg", 7, "unknown key 'server.heartbeat.timout'"},
    {"bad_unknown_agent_group.cfg", 5, "unknown key 'agent.backoff'"},
    {"bad_type_string_for_int.cfg", 4, "server.workers: expected an integer"},
    {"bad_type_float_for_int.cfg", 5, "server.max_frame: expected an integer"},
    {"bad_type_bool_for_int.cfg", 4, "agent.queue_max: expected an integer"},
    {"bad_type_int_for_string.cfg", 4, "server.data_dir: expected a string"},
    {"bad_type_list_for_string.cfg", 4, "server.listen: expected a string"},
    {"bad_type_group_for_scalar.cfg", 4, "server.workers: expected an integer"},
    {"bad_type_scalar_for_group.cfg", 4, "server.heartbeat: expected a group"},
    {"bad_type_top_scalar.cfg", 2, "agent: expected a group"},
    {"bad_type_string_for_float.cfg", 6, "agent.reconnect.min: expected a number"},
    {"bad_type_string_for_list.cfg", 6, "server.collect.metrics: expected a list of strings"},
    {"bad_type_metric_item.cfg", 8, "server.collect.metrics: expected a list of strings"},
    {"bad_workers_zero.cfg", 4, "server.workers: 0 is out of range 1..256"},
    {"bad_workers_257.cfg", 5, "server.workers: 257 is out of range 1..256"},
    {"bad_workers_int64.cfg", 4, "server.workers: 4294967300 is out of range 1..256"},
    {"bad_timeout_range.cfg", 6, "server.heartbeat.timeout: 0.1 is out of range 0.2..86400"},
    /* Found by fuzzing: libconfig leaks its string buffer here, see test/lsan.supp. */
    {"bad_unterminated_string.cfg", 6, "syntax error"},
    {"bad_sync.cfg", 4, "server.sync: 'sometimes' is not one of none, batch, interval"},
    {"bad_log_level.cfg", 4,
     "server.log_level: 'verbose' is not one of err, warn, notice, info, debug"},
    {"bad_agent_log_level.cfg", 4,
     "agent.log_level: 'warning' is not one of err, warn, notice, info, debug"},
    {"bad_metric.cfg", 8,
     "server.collect.metrics: 'gpu' is not one of cpu, mem, disk, load, temp, net, users, procs, "
     "pi, diskio, vmstat, pressure, clock, wifi, cpufreq, host, cores"},
    {"bad_metric_duplicate.cfg", 9, "server.collect.metrics: 'cpu' is listed twice"},
    {"bad_heartbeat_order.cfg", 7,
     "server.heartbeat.interval: 10 must be less than server.heartbeat.timeout (10)"},
    {"bad_heartbeat_order_default.cfg", 7,
     "server.heartbeat.interval: 3 must be less than server.heartbeat.timeout (2)"},
    {"bad_reconnect_order.cfg", 6,
     "agent.reconnect.max: 1 must be at least agent.reconnect.min (2)"},
    {"bad_listen.cfg", 4, "server.listen: '8080' is not host:port or [v6]:port"},
    {"bad_listen_v6.cfg", 4, "server.listen: '::1:8080' is not host:port or [v6]:port"},
    {"bad_http_listen.cfg", 6, "server.http.listen: 'localhost' is not host:port or [v6]:port"},
    {"bad_agent_server.cfg", 4, "agent.server: 'pimon.example:0' is not host:port or [v6]:port"},
    {"bad_name.cfg", 4,
     "agent.name: '../etc' is not a valid host name (1..64 of A-Z a-z 0-9 . _ -, not "
     "starting with . or -)"},
    {"bad_data_dir_empty.cfg", 4, "server.data_dir: '' is not a path"},
    {"bad_rule_clear.cfg", 4, "server.alarms[1]: clear must be at most value for > and >="},
    {"bad_rule_duplicate.cfg", 5, "server.alarms[2]: name 'a' is used twice"},
    {"bad_rule_metric.cfg", 4, "server.alarms[1].metric: 'CPU usage' is not \"group.field\""},
    {"bad_rule_missing_metric.cfg", 5, "server.alarms[2]: 'metric' is required"},
    {"bad_rule_not_group.cfg", 3, "server.alarms[1]: expected a group { ... }"},
    {"bad_rule_op.cfg", 5, "server.alarms[1].op: '==' is not one of >, >=, <, <="},
    {"bad_rule_unknown_key.cfg", 4, "server.alarms[1]: unknown key 'treshold'"},
    {"bad_check_empty_command.cfg", 4, "agent.checks[1]: 'command' must not be empty"},
    {"bad_check_name.cfg", 4,
     "agent.checks[1].name: 'a_name_that_is_far_too_long' is not 1..26 of a-z 0-9 _"},
    {"bad_check_relative.cfg", 4, "agent.checks[1]: command[0] must be an absolute path"},
    {"bad_notify_relative.cfg", 5, "server.notify.command: 'mail' must be an absolute path"},
    {"bad_agent_server_empty.cfg", 3, "agent.server: expected at least one"},
    {"bad_agent_server_item.cfg", 3, "agent.server: 'b' is not host:port or [v6]:port"},
    {"bad_peers_count.cfg", 3, "server.peers: 17 items, at most 16"},
    {"bad_peers_item.cfg", 4,
     "server.peers: '10.0.0.2:08080' is not host:port or [v6]:port (port 1..65535, no leading "
     "zero)"},
    {"bad_rw_url.cfg", 4,
     "server.remote_write[1].url: 'ftp://127.0.0.1:9090/api/v1/write' is not an http:// or "
     "https:// URL"},
    {"bad_rw_header.cfg", 5,
     "server.remote_write[1].headers: 'X-Scope-OrgID t1' is not \"Name: value\""},
    {"bad_rw_missing_url.cfg", 4, "server.remote_write[1]: 'url' is required"},
};

/* Each bad file fails with its file, line and message, and leaves the
 * previously loaded configuration untouched. */
static void test_bad_files(void)
{
	struct pimon_config cfg, before;
	char good[1024], path[1024], err[512], want[1400];
	fixture(good, sizeof good, "good_custom.cfg");
	config_defaults(&cfg);
	config_defaults(&before);
	CHECK(config_load(&cfg, good, err, sizeof err) == 0);
	CHECK(config_load(&before, good, err, sizeof err) == 0);

	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		fixture(path, sizeof path, c->file);
		snprintf(want, sizeof want, "%s:%d: %s", path, c->line, c->msg);
		strcpy(err, "untouched");
		int rc = config_load(&cfg, path, err, sizeof err);
		CHECK(rc == -1);
		CHECK(strcmp(err, want) == 0);
		if (rc != -1 || strcmp(err, want) != 0)
			fprintf(stderr, "  %s: rc %d\n    got:  %s\n    want: %s\n", c->file, rc,
			        err, want);
		CHECK(config_equal(&cfg, &before));
		CHECK(cfg.path && strcmp(cfg.path, good) == 0);
	}
	config_free(&cfg);
	config_free(&before);
}

/* A named file that does not exist is an error naming it. */
static void test_missing_file(void)
{
	struct pimon_config cfg;
	char path[1024], err[512], want[1200];
	fixture(path, sizeof path, "no_such_file.cfg");
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
	config_defaults(&cfg);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	CHECK_STR(err, want);
	CHECK(cfg.path == NULL);
	CHECK_STR(cfg.server.listen, "0.0.0.0:8080");
	config_free(&cfg);
}

/* A directory is not a configuration file. */
static void test_directory(void)
{
	struct pimon_config cfg;
	char path[1024], err[512], want[1200];
	snprintf(path, sizeof path, "%s/config", fixtures_dir);
	snprintf(want, sizeof want, "%s: cannot open: Is a directory", path);
	config_defaults(&cfg);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	CHECK_STR(err, want);
	config_free(&cfg);
}

/* path NULL with no /etc/pimon.cfg keeps the defaults. */
static void test_default_path(void)
{
	if (access(CONFIG_DEFAULT_PATH, F_OK) == 0 || errno != ENOENT) {
		printf("skip: %s exists on this machine\n", CONFIG_DEFAULT_PATH);
		return;
	}
	struct pimon_config cfg, def;
	char err[512] = "";
	config_defaults(&def);
	config_defaults(&cfg);
	CHECK(config_load(&cfg, NULL, err, sizeof err) == 0);
	CHECK(cfg.path == NULL);
	CHECK(config_equal(&cfg, &def));
	config_free(&cfg);
	config_free(&def);
}

/* A short or missing error buffer is never overrun. */
static void test_error_buffer(void)
{
	struct pimon_config cfg;
	char path[1024], err[16];
	fixture(path, sizeof path, "bad_workers_zero.cfg");
	config_defaults(&cfg);
	memset(err, 'x', sizeof err);
	CHECK(config_load(&cfg, path, err, 8) == -1);
	CHECK(strlen(err) == 7);
	CHECK(err[8] == 'x');
	CHECK(config_load(&cfg, path, NULL, 0) == -1);
	fixture(path, sizeof path, "bad_syntax.cfg");
	CHECK(config_load(&cfg, path, err, 1) == -1);
	CHECK(err[0] == '\0');
	config_free(&cfg);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--print-example") == 0)
		return config_write_example(stdout) == 0 ? 0 : 1;
	if (argc > 1 && strcmp(argv[1], "--print-man") == 0)
		return config_write_man(stdout) == 0 ? 0 : 1;
	fixtures_dir = getenv("FIXTURES");
	if (!fixtures_dir)
		fixtures_dir = "test/fixtures";

	test_defaults();
	test_log_level();
	test_metric_names();
	test_example_file();
	test_man_page();
	test_custom_file();
	test_alarms_file();
	test_empty_file();
	test_bad_files();
	test_missing_file();
	test_directory();
	test_default_path();
	test_error_buffer();
	return check_report("config");
}
