/* Metric groups as JSON objects: the agent's --once output, and the form
 * the server's latest values take in the API (server/latest.c). */
#include "metric_json.h"

#include <math.h>

/* One row's fields as an object. */
static json_t *row_json(const struct proto_group *g, const struct proto_row *row)
{
	json_t *o = json_object();
	for (unsigned i = 0; i < g->nfields; i++) {
		double v = row->values[i];
		json_object_set_new(o, g->fields[i], isfinite(v) ? json_real(v) : json_null());
	}
	return o;
}

/* Replace obj[metric] with this group's rows. */
void metric_json_set_group(json_t *obj, const struct proto_group *g)
{
	if (g->nrows == 0)
		return;
	if (g->inst_key[0] == '\0') {
		json_object_set_new(obj, g->metric, row_json(g, &g->rows[g->nrows - 1]));
		return;
	}
	json_t *insts = json_object();
	for (uint32_t r = 0; r < g->nrows; r++)
		json_object_set_new(insts, g->rows[r].instance, row_json(g, &g->rows[r]));
	json_object_set_new(obj, g->metric, insts);
}

/* Every group in one new object. */
json_t *metric_json_groups(const struct proto_group *groups, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		metric_json_set_group(o, &groups[i]);
	return o;
}
