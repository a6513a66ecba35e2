/* Tests for the compact latest values: the same JSON as metric_json_set_group
 * gives for the same groups, and shapes shared and released. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "latest.h"
#include "metric_json.h"

/* Whether l gives the same text as the reference object. */
static int same_json(const struct latest *l, json_t *ref)
{
	json_t *got = latest_json(l);
	char *a = json_dumps(got, JSON_COMPACT | JSON_REAL_PRECISION(15));
	char *b = json_dumps(ref, JSON_COMPACT | JSON_REAL_PRECISION(15));
	int same = a && b && strcmp(a, b) == 0;
	if (!same)
		fprintf(stderr, "got %s\nwant %s\n", a ? a : "(null)", b ? b : "(null)");
	free(a);
	free(b);
	json_decref(got);
	return same;
}

/* Apply g to both and compare. */
static void apply(struct shapes *s, struct latest **l, json_t *ref, const struct proto_group *g)
{
	CHECK(latest_set(s, l, g) == 0);
	metric_json_set_group(ref, g);
	CHECK(same_json(*l, ref));
}

static const char *const cpu_fields[] = {"user", "system", "idle"};
static const char *const cpu_renamed[] = {"user", "sys"};
static const char *const dup_fields[] = {"a", "b", "a"};
static const char *const disk_fields[] = {"used", "free"};

/* Plain, instanced, changing shape, empty and odd groups. */
static void test_same_as_json(void)
{
	struct shapes *s = shapes_create();
	struct latest *l = NULL;
	json_t *ref = json_object();
	CHECK(same_json(l, ref));

	double v1[] = {1.5, 2, 3}, v2[] = {4, NAN, INFINITY};
	struct proto_row cpu_rows[] = {{1, "", v1}, {2, "", v2}};
	struct proto_group cpu = {"cpu", "", 3, cpu_fields, 2, cpu_rows};
	apply(s, &l, ref, &cpu);
	cpu.nrows = 1;
	apply(s, &l, ref, &cpu);

	double d1[] = {10, 20}, d2[] = {30, 40}, d3[] = {50, 60};
	struct proto_row disk_rows[] = {{1, "/", d1}, {1, "/boot", d2}, {1, "/", d3}};
	struct proto_group disk = {"disk", "mount", 2, disk_fields, 3, disk_rows};
	apply(s, &l, ref, &disk);
	disk.nrows = 1;
	apply(s, &l, ref, &disk);

	struct proto_group empty = {"cpu", "", 3, cpu_fields, 0, cpu_rows};
	apply(s, &l, ref, &empty);
	struct proto_group renamed = {"cpu", "", 2, cpu_renamed, 1, cpu_rows};
	apply(s, &l, ref, &renamed);
	struct proto_group dup = {"dup", "", 3, dup_fields, 2, cpu_rows};
	apply(s, &l, ref, &dup);
	/* The same metric, now without an instance key, then with one again. */
	struct proto_group flat = {"disk", "", 2, disk_fields, 1, disk_rows};
	apply(s, &l, ref, &flat);
	disk.nrows = 3;
	apply(s, &l, ref, &disk);
	struct proto_group none = {"none", "", 0, NULL, 1, cpu_rows};
	apply(s, &l, ref, &none);

	/* Metrics out of their usual order. */
	apply(s, &l, ref, &cpu);
	apply(s, &l, ref, &none);
	apply(s, &l, ref, &disk);

	latest_free(s, l);
	CHECK(shapes_count(s) == 0);
	json_decref(ref);
	shapes_destroy(s);
}

/* Hosts sending the same metric share one shape, released with the last. */
static void test_shared_shapes(void)
{
	struct shapes *s = shapes_create();
	struct latest *hosts[100] = {0};
	double v[] = {1, 2, 3};
	struct proto_row rows[] = {{1, "", v}};
	struct proto_group cpu = {"cpu", "", 3, cpu_fields, 1, rows};
	struct proto_group renamed = {"cpu", "", 2, cpu_renamed, 1, rows};
	for (int i = 0; i < 100; i++)
		CHECK(latest_set(s, &hosts[i], &cpu) == 0);
	CHECK(shapes_count(s) == 1);
	CHECK(latest_set(s, &hosts[0], &renamed) == 0);
	CHECK(shapes_count(s) == 2);
	for (int i = 1; i < 100; i++)
		latest_free(s, hosts[i]);
	CHECK(shapes_count(s) == 1);
	latest_free(s, hosts[0]);
	CHECK(shapes_count(s) == 0);
	shapes_destroy(s);
}

/* Many distinct shapes grow the table and all go again. */
static void test_many_shapes(void)
{
	struct shapes *s = shapes_create();
	struct latest *l = NULL;
	json_t *ref = json_object();
	double v[] = {1};
	struct proto_row rows[] = {{1, "", v}};
	char names[300][16];
	const char *fields[1] = {"x"};
	for (int i = 0; i < 300; i++) {
		snprintf(names[i], sizeof names[i], "m%d", i);
		struct proto_group g = {names[i], "", 1, fields, 1, rows};
		CHECK(latest_set(s, &l, &g) == 0);
		metric_json_set_group(ref, &g);
	}
	CHECK(shapes_count(s) == 300);
	CHECK(same_json(l, ref));
	latest_free(s, l);
	CHECK(shapes_count(s) == 0);
	json_decref(ref);
	shapes_destroy(s);
}

/* What latest_foreach gave, as text: "metric/instance/field=value;". */
struct walk {
	char text[512];
	size_t n;
};

/* Append one value to the walk's text. */
static void walk_value(void *arg, const struct latest_value *v)
{
	struct walk *w = arg;
	int k = snprintf(w->text + w->n, sizeof w->text - w->n, "%s/%s/%s/%s=%g;", v->metric,
	                 v->inst_key, v->instance ? v->instance : "-", v->field ? v->field : "-",
	                 v->field ? v->value : 0.0);
	if (k > 0 && (size_t)k < sizeof w->text - w->n)
		w->n += (size_t)k;
}

/* The typed walk: metrics in the order first seen, rows, then fields in
 * order, every row of an instanced metric with its instance, NaN as it is. */
static void test_foreach_order(void)
{
	struct shapes *s = shapes_create();
	struct latest *l = NULL;
	struct walk w = {"", 0};
	latest_foreach(l, walk_value, &w);
	CHECK_STR(w.text, "");
	double v1[] = {1.5, 2, NAN};
	struct proto_row cpu_rows[] = {{1, "", v1}};
	struct proto_group cpu = {"cpu", "", 3, cpu_fields, 1, cpu_rows};
	double d1[] = {10, 20}, d2[] = {30, 40};
	struct proto_row disk_rows[] = {{1, "/", d1}, {1, "/boot", d2}};
	struct proto_group disk = {"disk", "mount", 2, disk_fields, 2, disk_rows};
	struct proto_group none = {"none", "", 0, NULL, 1, cpu_rows};
	CHECK(latest_set(s, &l, &disk) == 0);
	CHECK(latest_set(s, &l, &cpu) == 0);
	CHECK(latest_set(s, &l, &none) == 0);
	latest_foreach(l, walk_value, &w);
	CHECK_STR(w.text,
	          "disk/mount///used=10;disk/mount///free=20;disk/mount//boot/used=30;"
	          "disk/mount//boot/free=40;cpu//-/user=1.5;cpu//-/system=2;cpu//-/idle=nan;"
	          "none//-/-=0;");
	latest_free(s, l);
	shapes_destroy(s);
}

int main(void)
{
	test_same_as_json();
	test_foreach_order();
	test_shared_shapes();
	test_many_shapes();
	return check_report("latest");
}
