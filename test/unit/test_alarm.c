/* Unit tests for the alarm engine: rules with `for`, hysteresis and host
 * patterns against synthetic groups, host_down, agent alarms and their
 * deduplication, and the book rebuilt from the rows it wrote. */
#include "alarm.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "log.h"

/* Events the engine emitted, and the CSV file they go to. */
static struct {
	int n;
	char name[16][PROTO_KEY_MAX + 1];
	char instance[16][PROTO_INST_MAX + 1];
	int firing[16];
	int level[16];
	uint64_t time[16];
	double duration[16];
	char message[16][PROTO_TEXT_MAX + 1];
	FILE *csv;
} seen;

static void emit(void *arg, const struct alarm_event *ev)
{
	if (seen.n < 16) {
		snprintf(seen.name[seen.n], sizeof seen.name[0], "%s", ev->name);
		snprintf(seen.instance[seen.n], sizeof seen.instance[0], "%s", ev->instance);
		snprintf(seen.message[seen.n], sizeof seen.message[0], "%s", ev->message);
		seen.firing[seen.n] = ev->firing;
		seen.level[seen.n] = ev->level;
		seen.time[seen.n] = ev->time_ms;
		seen.duration[seen.n] = ev->duration_s;
	}
	seen.n++;
	if (seen.csv) {
		char line[2048];
		alarm_csv_line(ev, line, sizeof line);
		fprintf(seen.csv, "%s\n", line);
	}
}

/* Drop the default rules of cfg. */
static void drop_rules(struct pimon_config *cfg)
{
	for (size_t i = 0; i < cfg->server.nalarms; i++) {
		struct pimon_rule *r = &cfg->server.alarms[i];
		free(r->name);
		free(r->metric);
		free(r->op);
		free(r->level);
		for (size_t j = 0; j < r->nhosts; j++)
			free(r->hosts[j]);
		free(r->hosts);
	}
	free(cfg->server.alarms);
	cfg->server.alarms = NULL;
	cfg->server.nalarms = 0;
}

/* One rule of the given kind in a configuration of its own. */
static struct ruleset *one_rule(const char *op, double value, double clear, double for_s,
                                const char *host_pattern)
{
	struct pimon_config cfg;
	config_defaults(&cfg);
	drop_rules(&cfg);
	static char *hosts[1];
	struct pimon_rule rule = {
	    .name = "hot",
	    .metric = "temp.celsius",
	    .op = (char *)op,
	    .value = value,
	    .clear = clear,
	    .for_s = for_s,
	    .level = "critical",
	    .hosts = hosts,
	    .nhosts = host_pattern ? 1 : 0,
	};
	hosts[0] = (char *)host_pattern;
	cfg.server.alarms = &rule;
	cfg.server.nalarms = 1;
	struct ruleset *rs = ruleset_create(&cfg);
	cfg.server.alarms = NULL;
	cfg.server.nalarms = 0;
	config_free(&cfg);
	return rs;
}

/* Feed one temperature sample of zone at time t (seconds). */
static void feed(struct alarm_book *b, struct ruleset *rs, const char *host, const char *zone,
                 double t, double celsius)
{
	static const char *const fields[] = {"celsius"};
	double values[1] = {celsius};
	struct proto_row row = {(uint64_t)(t * 1000), zone, values};
	struct proto_group g = {"temp", "zone", 1, fields, 1, &row};
	alarm_eval_group(b, rs, host, &g, emit, NULL);
}

/* Fires once after `for`, no flapping on either threshold, resolves once
 * at clear. */
static void test_for_and_hysteresis(void)
{
	struct ruleset *rs = one_rule(">", 60, 55, 2.0, NULL);
	struct alarm_book *b = alarm_book_create();
	memset(&seen, 0, sizeof seen);
	double t = 100;
	/* Over and under the threshold, never for 2 s: nothing. */
	for (int i = 0; i < 12; i++, t += 0.5)
		feed(b, rs, "pi", "cpu", t, i % 4 < 2 ? 61 : 59);
	CHECK(seen.n == 0);
	/* Over from t: fires at the first sample 2 s later. */
	double start = t;
	for (; t < start + 3; t += 0.5)
		feed(b, rs, "pi", "cpu", t, 65);
	CHECK(seen.n == 1);
	CHECK(seen.firing[0] == 1 && seen.level[0] == PROTO_LEVEL_CRITICAL);
	CHECK(seen.time[0] == (uint64_t)((start + 2.0) * 1000));
	CHECK_STR(seen.instance[0], "cpu");
	CHECK_STR(seen.message[0], "temp.celsius [cpu] is 65 (> 60)");
	CHECK(alarm_book_active(b) == 1);
	/* Between clear and the threshold, wobbling: still one alarm. */
	for (int i = 0; i < 10; i++, t += 0.5)
		feed(b, rs, "pi", "cpu", t, i % 2 ? 58 : 62);
	CHECK(seen.n == 1);
	/* At clear: resolves once, with how long it lasted. */
	feed(b, rs, "pi", "cpu", t, 55);
	CHECK(seen.n == 2 && seen.firing[1] == 0);
	CHECK_NEAR(seen.duration[1], t - (start + 2.0), 1e-9);
	feed(b, rs, "pi", "cpu", t + 0.5, 50);
	CHECK(seen.n == 2 && alarm_book_active(b) == 0);
	/* A NaN (unreadable value) changes nothing. */
	feed(b, rs, "pi", "cpu", t + 1, NAN);
	CHECK(seen.n == 2);
	alarm_book_free(b);
	ruleset_unref(rs);
}

/* Each instance is an alarm of its own; without clear, a rule resolves
 * as soon as its comparison is false; < rules work the other way. */
static void test_instances_and_ops(void)
{
	struct ruleset *rs = one_rule("<=", 10, NAN, 0, NULL);
	struct alarm_book *b = alarm_book_create();
	memset(&seen, 0, sizeof seen);
	feed(b, rs, "pi", "a", 1, 10);
	feed(b, rs, "pi", "b", 1, 20);
	CHECK(seen.n == 1 && strcmp(seen.instance[0], "a") == 0);
	feed(b, rs, "pi", "b", 2, 5);
	CHECK(seen.n == 2 && strcmp(seen.instance[1], "b") == 0 && alarm_book_active(b) == 2);
	feed(b, rs, "pi", "a", 3, 10.5);
	CHECK(seen.n == 3 && seen.firing[2] == 0 && strcmp(seen.instance[2], "a") == 0);
	json_t *arr = json_array();
	alarm_book_json(b, "pi", arr);
	CHECK(json_array_size(arr) == 1);
	CHECK_STR(json_string_value(json_object_get(json_array_get(arr, 0), "instance")), "b");
	json_decref(arr);
	alarm_book_free(b);
	ruleset_unref(rs);
}

/* hosts patterns pick the hosts a rule applies to. */
static void test_host_patterns(void)
{
	struct ruleset *rs = one_rule(">", 60, NAN, 0, "pi-*");
	struct alarm_book *b = alarm_book_create();
	memset(&seen, 0, sizeof seen);
	feed(b, rs, "gateway", "cpu", 1, 90);
	CHECK(seen.n == 0);
	feed(b, rs, "pi-7", "cpu", 1, 90);
	CHECK(seen.n == 1);
	alarm_book_free(b);
	ruleset_unref(rs);
}

/* A removed rule resolves its alarm at the next sample of its metric. */
static void test_removed_rule(void)
{
	struct ruleset *rs = one_rule(">", 60, NAN, 0, NULL);
	struct ruleset *other = one_rule(">", 60, NAN, 0, "nobody");
	struct alarm_book *b = alarm_book_create();
	memset(&seen, 0, sizeof seen);
	feed(b, rs, "pi", "cpu", 1, 90);
	CHECK(seen.n == 1);
	struct pimon_config none;
	config_defaults(&none);
	drop_rules(&none);
	struct ruleset *empty = ruleset_create(&none);
	config_free(&none);
	feed(b, empty, "pi", "cpu", 2, 90);
	CHECK(seen.n == 2 && seen.firing[1] == 0);
	CHECK_STR(seen.message[1], "rule removed");
	CHECK(alarm_book_active(b) == 0);
	alarm_book_free(b);
	ruleset_unref(rs);
	ruleset_unref(other);
	ruleset_unref(empty);
}

/* host_down fires once and resolves with the time gone; agent alarms are
 * deduplicated by seq and by level; the book comes back from its rows. */
static void test_down_agent_and_reload(void)
{
	char path[] = "/tmp/pimon-test-alarm-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	seen.csv = fdopen(fd, "w");
	fprintf(seen.csv, "%s\n", ALARM_CSV_HEADER);
	struct alarm_book *b = alarm_book_create();
	seen.n = 0;
	alarm_host_down(b, "pi", 1000, "timeout", emit, NULL);
	alarm_host_down(b, "pi", 2000, "closed", emit, NULL);
	CHECK(seen.n == 1 && seen.firing[0] == 1);
	CHECK_STR(seen.message[0], "no heartbeat: host is not answering");
	alarm_host_up(b, "pi", 4500, emit, NULL);
	CHECK(seen.n == 2 && seen.firing[1] == 0 && seen.duration[1] == 3.5);
	CHECK_STR(seen.message[1], "back after 3.5 s");
	alarm_host_up(b, "pi", 5000, emit, NULL);
	CHECK(seen.n == 2);

	struct proto_alarm a = {1, 6000, PROTO_LEVEL_CRITICAL, PROTO_ALARM_CHECK, "disk", "full"};
	alarm_agent(b, "pi", 77, &a, emit, NULL);
	alarm_agent(b, "pi", 77, &a, emit, NULL); /* a resend */
	CHECK(seen.n == 3);
	a.seq = 2;
	alarm_agent(b, "pi", 77, &a, emit, NULL); /* the same level again */
	CHECK(seen.n == 3);
	a.seq = 3;
	a.level = PROTO_LEVEL_WARNING;
	a.message = "filling, \"slowly\"";
	alarm_agent(b, "pi", 77, &a, emit, NULL); /* a change of level: a row */
	CHECK(seen.n == 4 && seen.firing[3] == 1 && seen.level[3] == PROTO_LEVEL_WARNING);
	struct proto_alarm fan = {4, 7000, PROTO_LEVEL_CRITICAL, PROTO_ALARM_LOCAL, "fan", "stop"};
	alarm_agent(b, "pi", 77, &fan, emit, NULL);
	CHECK(seen.n == 5 && alarm_book_active(b) == 2);
	fclose(seen.csv);
	seen.csv = NULL;

	/* Read back: the same two alarms active, and run 77 seq 4 known. */
	struct alarm_book *again = alarm_book_create();
	CHECK(alarm_book_load(again, AT_FDCWD, path) == 0);
	CHECK(alarm_book_active(again) == 2);
	json_t *arr = json_array();
	alarm_book_json(again, "pi", arr);
	const char *msg = NULL;
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(arr, i), "name")),
		           "disk") == 0)
			msg = json_string_value(json_object_get(json_array_get(arr, i), "message"));
	CHECK(msg && strcmp(msg, "filling, \"slowly\"") == 0);
	json_decref(arr);
	seen.n = 0;
	alarm_agent(again, "pi", 77, &fan, emit, NULL); /* recorded before the restart */
	CHECK(seen.n == 0);
	fan.seq = 5;
	fan.level = PROTO_LEVEL_OK;
	alarm_agent(again, "pi", 77, &fan, emit, NULL);
	CHECK(seen.n == 1 && seen.firing[0] == 0 && seen.duration[0] == 0.0);
	/* A new run starts its seqs over. */
	struct proto_alarm next = {1, 9000, PROTO_LEVEL_OK, PROTO_ALARM_CHECK, "disk", "ok"};
	alarm_agent(again, "pi", 78, &next, emit, NULL);
	CHECK(seen.n == 2 && seen.firing[1] == 0 && alarm_book_active(again) == 0);

	/* A copy put back undoes what happened since. */
	struct alarm_book *saved = alarm_book_copy(again);
	alarm_host_down(again, "pi", 10000, "closed", emit, NULL);
	CHECK(alarm_book_active(again) == 1);
	alarm_book_restore(again, saved);
	CHECK(alarm_book_active(again) == 0);
	alarm_book_free(again);
	alarm_book_free(b);
	unlink(path);
}

/* A missing file is an empty book. */
static void test_missing_file(void)
{
	struct alarm_book *b = alarm_book_create();
	CHECK(alarm_book_load(b, AT_FDCWD, "/nonexistent/alarms.csv") == 0);
	CHECK(alarm_book_active(b) == 0);
	alarm_book_free(b);
}

int main(void)
{
	log_init("test-alarm", LOG_WARN);
	test_for_and_hysteresis();
	test_instances_and_ops();
	test_host_patterns();
	test_removed_rule();
	test_down_agent_and_reload();
	test_missing_file();
	return check_report("alarm");
}
