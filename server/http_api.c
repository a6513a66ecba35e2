/* The JSON API under /api/v1/. */
#include <event2/http.h>
#include <jansson.h>
#include <string.h>

#include "http_int.h"
#include "proto.h"
#include "registry.h"
#include "util.h"
#include "worker.h"

/* GET /api/v1/workers: sessions and counters of each worker. */
static json_t *workers_json(struct server *srv)
{
	json_t *arr = json_array();
	for (int i = 0; i < srv->nworkers; i++) {
		const struct worker *w = srv->workers[i];
		json_t *o =
		    json_pack("{s:i, s:I}", "id", i, "sessions", (json_int_t)worker_sessions(w));
		for (int c = 0; c < WC_COUNT; c++)
			json_object_set_new(o, worker_counter_names[c],
			                    json_integer((json_int_t)worker_counter(w, c)));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* POST /api/v1/hosts/<name>/poll: ask the host's agent for a sample now. */
static void http_poll(struct http *h, struct evhttp_request *req, const char *name)
{
	if (!util_valid_name(name)) {
		http_reply_error(req, 400, "invalid host name");
		return;
	}
	struct session_ref ref;
	int rc = registry_session(h->srv->registry, name, &ref);
	if (rc == -1) {
		http_reply_error(req, 404, "no such host");
		return;
	}
	if (rc == -2 || ref.worker < 0 || ref.worker >= h->srv->nworkers) {
		http_reply_error(req, 409, "host is not connected");
		return;
	}
	worker_post_poll(h->srv->workers[ref.worker], ref.id);
	http_reply_json(req, 202, json_pack("{s:s, s:b}", "host", name, "polled", 1));
}

/* /api/v1/...: answer, or return 0 for a path outside the API. */
int http_api_handle(struct http *h, struct evhttp_request *req, const char *path)
{
	if (strncmp(path, "/api/", 5) != 0)
		return 0;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *poll_prefix = "/api/v1/hosts/";
	size_t plen = strlen(poll_prefix);
	if (strncmp(path, poll_prefix, plen) == 0 && strchr(path + plen, '/') &&
	    strcmp(strchr(path + plen, '/'), "/poll") == 0) {
		if (cmd != EVHTTP_REQ_POST) {
			http_reply_error(req, 405, "poll takes POST");
			return 1;
		}
		char name[PROTO_NAME_MAX + 1];
		size_t n = (size_t)(strchr(path + plen, '/') - (path + plen));
		snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : 0), path + plen);
		http_poll(h, req, name);
		return 1;
	}
	if (cmd != EVHTTP_REQ_GET) {
		http_reply_error(req, 405, "only GET is supported here");
		return 1;
	}
	if (strcmp(path, "/api/v1/hosts") == 0)
		http_reply_json(req, 200, registry_hosts_json(h->srv->registry));
	else if (strcmp(path, "/api/v1/workers") == 0)
		http_reply_json(req, 200, workers_json(h->srv));
	else
		http_reply_error(req, 404, "no such endpoint");
	return 1;
}
