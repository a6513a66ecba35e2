/* Hosts as the JSON API shows them, built from registry_visit: name, addr,
 * state, since, last_seen, worker, system facts and latest values. Any
 * thread (the HTTP thread in practice). */
#ifndef PIMON_HOST_JSON_H
#define PIMON_HOST_JSON_H

#include <jansson.h>

#include "registry.h"

/* JSON array of every host, sorted by name; NULL (logged) when it cannot
 * be built. */
json_t *host_json_all(struct registry *r);

/* The host called name as one element of host_json_all in *out: 0, -1 if
 * there is no such host, -2 (logged) if it cannot be built. */
int host_json_one(struct registry *r, const char *name, json_t **out);

#endif
