/* Building JSON answers without ever keeping a failed piece: numbers JSON
 * cannot hold become null, and additions report failure. */
#ifndef PIMON_JSON_UTIL_H
#define PIMON_JSON_UTIL_H

#include <jansson.h>
#include <math.h>

/* v as a JSON number, or null when JSON has no number for it (NaN, inf). */
static inline json_t *json_number(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* Add v (a new reference, maybe NULL) to object o under key: 0, or -1
 * with v released when v is NULL or the addition fails. */
static inline int json_put(json_t *o, const char *key, json_t *v)
{
	return v ? json_object_set_new(o, key, v) : -1;
}

/* Append v (a new reference, maybe NULL) to array a: 0, or -1 with v
 * released when v is NULL or the append fails. */
static inline int json_push(json_t *a, json_t *v)
{
	return v ? json_array_append_new(a, v) : -1;
}

#endif
