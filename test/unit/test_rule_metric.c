/* common/rule_metric.c: edit distance, suggestions, and a config file whose
 * rule names an unknown metric failing with FILE:LINE and the nearest name. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "rule_metric.h"

/* The distance counts inserts, deletes, substitutions and swaps. */
static void test_rule_metric_distance(void)
{
	CHECK(rule_metric_distance("", "") == 0);
	CHECK(rule_metric_distance("abc", "abc") == 0);
	CHECK(rule_metric_distance("abc", "") == 3);
	CHECK(rule_metric_distance("disk.usedpct", "disk.used_pct") == 1);
	CHECK(rule_metric_distance("cpu.usgae", "cpu.usage") == 1);
	CHECK(rule_metric_distance("kitten", "sitting") == 3);
}

/* Built-in fields and check results pass; near misses get a suggestion;
 * a name near nothing gets none. */
static void test_rule_metric_check(void)
{
	CHECK(rule_metric_check("disk.used_pct") == NULL);
	CHECK(rule_metric_check("cpu.usage") == NULL);
	CHECK(rule_metric_check("check_root_disk.status") == NULL);
	CHECK(rule_metric_check("check_.status") != NULL);
	CHECK(rule_metric_check("check_x") != NULL);
	const char *why = rule_metric_check("disk.usedpct");
	CHECK(why && strstr(why, "did you mean disk.used_pct?"));
	why = rule_metric_check("cpu.usgae");
	CHECK(why && strstr(why, "did you mean cpu.usage?"));
	why = rule_metric_check("zzzzzzzzzzzzzzzzzzzz.qqqqqqqqqq");
	CHECK(why && !strstr(why, "did you mean"));
	char buf[128];
	CHECK(rule_metric_suggest("disk.used", buf, sizeof buf) != NULL);
	CHECK(rule_metric_suggest("disk.used_pct", buf, 4) == NULL);
}

/* Every shipped default rule names a real metric (the defaults load). */
static void test_rule_metric_defaults(void)
{
	struct pimon_config cfg;
	config_defaults(&cfg);
	CHECK(cfg.server.nalarms > 0);
	for (size_t i = 0; i < cfg.server.nalarms; i++)
		CHECK(rule_metric_check(cfg.server.alarms[i].metric) == NULL);
	config_free(&cfg);
}

/* A file with a misspelt metric fails to load, naming FILE:LINE. */
static void test_rule_metric_config(void)
{
	const char text[] = "server: {\n"
	                    "  alarms = (\n"
	                    "    { name = \"full\"; metric = \"disk.usedpct\"; value = 90.0; }\n"
	                    "  );\n"
	                    "};\n";
	FILE *fp = fmemopen((void *)text, sizeof text - 1, "r");
	CHECK(fp != NULL);
	if (!fp)
		return;
	struct pimon_config cfg;
	config_defaults(&cfg);
	char err[512] = "";
	CHECK(config_load_stream(&cfg, fp, "bad.cfg", err, sizeof err) == -1);
	fclose(fp);
	config_free(&cfg);
	fprintf(stderr, "expected error: %s\n", err);
	CHECK(strncmp(err, "bad.cfg:3:", 10) == 0);
	CHECK(strstr(err, "did you mean disk.used_pct?") != NULL);
}

int main(void)
{
	test_rule_metric_distance();
	test_rule_metric_check();
	test_rule_metric_defaults();
	test_rule_metric_config();
	return check_report("rule_metric");
}
