/* proto/schema.c against the agent's collectors: every collector's metric,
 * instance key and fields, in order, and nothing more. */
#include "check.h"
#include "collect_int.h"
#include "schema.h"

/* Whether the schema describes this group shape exactly. */
static void check_shape(const char *metric, const char *inst_key, const char *const *fields,
                        size_t nfields)
{
	const struct schema_metric *m = schema_find_metric(metric);
	CHECK(m != NULL);
	if (!m) {
		fprintf(stderr, "metric %s is not in proto/schema.c\n", metric);
		return;
	}
	CHECK_STR(m->inst_key, inst_key);
	CHECK(m->nfields == nfields);
	for (size_t i = 0; i < nfields && i < m->nfields; i++) {
		CHECK_STR(m->fields[i].name, fields[i]);
		CHECK(schema_find_field(m, fields[i]) == &m->fields[i]);
		CHECK(m->fields[i].help && m->fields[i].help[0]);
	}
	if (inst_key[0])
		CHECK(schema_is_inst_key(inst_key));
}

/* Every collector's groups are in the table, and the table has no metric
 * that no collector sends. */
static void test_schema_matches_collectors(void)
{
	size_t seen = 0;
	for (size_t i = 0; collect_ops_at(i); i++) {
		const struct collector_ops *ops = collect_ops_at(i);
		check_shape(ops->metric, ops->inst_key, ops->fields, ops->nfields);
		seen++;
		if (ops->summary_metric) {
			check_shape(ops->summary_metric, "", ops->summary_fields,
			            ops->summary_nfields);
			seen++;
		}
	}
	/* The agent's own figures (agent/link.c builds them from the table). */
	const struct schema_metric *agent = schema_find_metric(SCHEMA_AGENT_METRIC);
	CHECK(agent && agent->nfields == 3 && !agent->inst_key[0]);
	seen++;
	size_t n = 0;
	while (schema_metric_at(n))
		n++;
	CHECK(n == seen);
	CHECK(seen > 0);
}

/* The instance keys the server recognises in a file's header, and the ones
 * it must not take for one. */
static void test_schema_inst_keys(void)
{
	static const char *const keys[] = {"mount", "iface", "zone", "tty", "proc"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		CHECK(schema_is_inst_key(keys[i]));
	CHECK(!schema_is_inst_key("time"));
	CHECK(!schema_is_inst_key("usage"));
	CHECK(!schema_is_inst_key(""));
	CHECK(schema_find_metric("nosuch") == NULL);
	CHECK(schema_find_field(schema_find_metric("cpu"), "nosuch") == NULL);
}

/* Check results: status is a code, durations seconds, perfdata by suffix. */
static void test_schema_check_fields(void)
{
	int counter;
	CHECK(schema_check_field("status", &counter) == SCHEMA_CODE && !counter);
	CHECK(schema_check_field("duration_s", &counter) == SCHEMA_SECONDS && !counter);
	CHECK(schema_check_field("time_s", &counter) == SCHEMA_SECONDS);
	CHECK(schema_check_field("pl_pct", &counter) == SCHEMA_PERCENT);
	CHECK(schema_check_field("size_bytes", &counter) == SCHEMA_BYTES);
	CHECK(schema_check_field("hits_total", &counter) == SCHEMA_COUNT && counter);
	CHECK(schema_check_field("users", &counter) == SCHEMA_COUNT && !counter);
}

int main(void)
{
	test_schema_matches_collectors();
	test_schema_inst_keys();
	test_schema_check_fields();
	return check_report("schema");
}
