/* Whether a rule's metric is one the agents produce, and the nearest
 * valid name when it is not. Built on the one schema table (proto/schema.c). */
#ifndef PIMON_RULE_METRIC_H
#define PIMON_RULE_METRIC_H

#include <stddef.h>

/* Edit distance (insert, delete, substitute, swap of neighbours) between a and b. */
size_t rule_metric_distance(const char *a, const char *b);

/* The valid "group.field" nearest to metric, or NULL when none is near. */
const char *rule_metric_suggest(const char *metric, char *buf, size_t len);

/* NULL when metric names a built-in field or a check's result; else why not,
 * with a suggestion, in a buffer of the calling thread. */
const char *rule_metric_check(const char *metric);

#endif
