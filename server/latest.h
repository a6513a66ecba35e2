/* Each host's latest values, kept compact: per metric a shape (metric,
 * instance key, field names) interned once for the whole server and
 * shared by every host that sends it, and the values and instances of the
 * metric's last rows. JSON is built only when asked. */
#ifndef PIMON_LATEST_H
#define PIMON_LATEST_H

#include <jansson.h>

#include "proto.h"

/* The server's interned shapes. Safe across threads: its own lock guards
 * the table and the counts; a shape never changes once published. */
struct shapes;

/* One host's latest values. Not locked: MUST be used under the host's lock. */
struct latest;

/* Create an empty shape table; NULL when out of memory. */
struct shapes *shapes_create(void);

/* Free the table. Every latest using it MUST have been freed. */
void shapes_destroy(struct shapes *s);

/* Number of distinct shapes in use, for tests. */
size_t shapes_count(struct shapes *s);

/* Replace the metric's latest values with the group's rows (the last row,
 * or every row of an instanced group); *l may be NULL (none yet) and may
 * move. A group without rows changes nothing. 0, or -1 when out of memory
 * (the metric's values are then dropped, not left half-changed). */
int latest_set(struct shapes *s, struct latest **l, const struct proto_group *g);

/* One latest value: the metric, its instance key ("" when it has none),
 * the row's instance (NULL when none), the field and its value (NaN or
 * infinite when the agent sent one). A row of a shape without fields
 * gives one call with field NULL. */
struct latest_value {
	const char *metric;
	const char *inst_key;
	const char *instance;
	const char *field;
	double value;
};

/* Called for each value; the strings live as long as the values. */
typedef void (*latest_fn)(void *arg, const struct latest_value *v);

/* Call fn for every value, metrics in the order first seen, then rows in
 * their order, then fields in the shape's order. l may be NULL (none). */
void latest_foreach(const struct latest *l, latest_fn fn, void *arg);

/* The values as metric_json_set_group would have built them for the same
 * groups: {metric: {field: v}} or {metric: {instance: {field: v}}}, metrics
 * in the order first seen, later rows winning, non-finite values null.
 * l may be NULL (an empty object). */
json_t *latest_json(const struct latest *l);

/* Drop the host's values and its references to shapes; l may be NULL. */
void latest_free(struct shapes *s, struct latest *l);

#endif
