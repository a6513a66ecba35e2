/* Metric groups as JSON: {"cpu": {"usage": 3.2, ...}, "disk": {"/": {...}}}. */
#ifndef PIMON_METRIC_JSON_H
#define PIMON_METRIC_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "proto.h"

/* Set obj[g->metric] to the group's latest values: an object of fields, or
 * for an instanced group an object of instances, each an object of fields.
 * Rows later in the group win. Non-finite values become null. */
void metric_json_set_group(json_t *obj, const struct proto_group *g);

/* A new object holding every group. */
json_t *metric_json_groups(const struct proto_group *groups, size_t n);

#endif
