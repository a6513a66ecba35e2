/* The API's JSON of hosts, from the registry's typed view. */
#include "host_json.h"

#include "json_util.h"
#include "latest.h"
#include "log.h"

/* One host as JSON with a copy of its latest values; NULL when it cannot
 * be built. */
static json_t *host_json(const struct host_view *v)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:s, s:s, s:s, s:s, s:s, s:I}",
	                      "name", v->name, "addr", v->addr, "state", v->up ? "up" : "down",
	                      "reason", v->reason, "since", (json_int_t)v->since_ms, "last_seen",
	                      (json_int_t)v->last_seen_ms, "worker", v->worker, "version",
	                      v->version, "os", v->os, "kernel", v->kernel, "model", v->model,
	                      "boot_id", v->boot_id, "uptime_s", (json_int_t)v->uptime_s);
	/* Built anew, so the answer shares nothing a worker changes. */
	if (o && json_put(o, "latest", latest_json(v->latest)) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (!o)
		log_err("api", "host %s: cannot describe it as JSON", v->name);
	return o;
}

/* Append the visited host to the array; -1 stops the visit. */
static int host_json_append(void *arg, const struct host_view *v)
{
	return json_push(arg, host_json(v));
}

/* Every host, in the registry's (name) order. */
json_t *host_json_all(struct registry *r)
{
	json_t *arr = json_array();
	if (!arr || registry_visit(r, host_json_append, arr) != 0) {
		json_decref(arr);
		log_err("api", "cannot list the hosts as JSON");
		return NULL;
	}
	return arr;
}

/* Keep the visited host's JSON in *arg; -1 when it cannot be built. */
static int host_json_keep(void *arg, const struct host_view *v)
{
	json_t **out = arg;
	*out = host_json(v);
	return *out ? 0 : -1;
}

/* The named host. */
int host_json_one(struct registry *r, const char *name, json_t **out)
{
	int rc = 0;
	*out = NULL;
	if (registry_visit_host(r, name, host_json_keep, out, &rc) < 0)
		return -1;
	return rc == 0 ? 0 : -2;
}
