/* pimon-ctl: ask pimon-server's HTTP API from a shell. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pimon_version.h"
#include "util.h"

/* Exit codes scripts can rely on. */
enum { EXIT_OK = 0, EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static void usage(FILE *out)
{
	fprintf(out, "usage: pimon-ctl [options] COMMAND\n"
	             "commands:\n"
	             "  hosts                every host: state, address, worker, latest values\n"
	             "  workers              every worker: sessions and counters\n"
	             "  poll HOST            ask HOST's agent for a sample now\n"
	             "options:\n"
	             "  -c, --config FILE    find the server from FILE's server.http.listen\n"
	             "  -a, --addr HOST:PORT the server's HTTP API address\n"
	             "  -j, --json           print the server's JSON as is\n"
	             "  -h, --help           show this help\n"
	             "  -V, --version        show the version\n"
	             "exit status: 0 done, 1 the server answered an error, 2 bad usage or\n"
	             "configuration, 3 the server could not be reached\n");
}

struct reply {
	struct event_base *base;
	int code;
	char *body;
};

/* The request finished (or failed: req NULL or code 0). */
static void reply_cb(struct evhttp_request *req, void *arg)
{
	struct reply *r = arg;
	if (req && evhttp_request_get_response_code(req)) {
		r->code = evhttp_request_get_response_code(req);
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		r->body = malloc(n + 1);
		if (r->body) {
			evbuffer_remove(in, r->body, n);
			r->body[n] = '\0';
		}
	}
	event_base_loopexit(r->base, NULL);
}

/* Ask the server (GET, or POST when post is set); 0 with *out filled, or
 * an exit code. */
static int http_call(const char *addr, const char *path, int post, struct reply *out)
{
	char host[256];
	int port;
	if (util_split_hostport(addr, host, sizeof host, &port) < 0) {
		fprintf(stderr, "pimon-ctl: '%s': expected host:port\n", addr);
		return EXIT_USAGE;
	}
	struct event_base *base = event_base_new();
	struct evhttp_connection *conn =
	    base ? evhttp_connection_base_new(base, NULL, host, (ev_uint16_t)port) : NULL;
	if (!conn) {
		fprintf(stderr, "pimon-ctl: cannot set up a connection\n");
		return EXIT_UNREACHABLE;
	}
	evhttp_connection_set_timeout(conn, 10);
	out->base = base;
	struct evhttp_request *req = evhttp_request_new(reply_cb, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	evhttp_make_request(conn, req, post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path);
	event_base_dispatch(base);
	evhttp_connection_free(conn);
	event_base_free(base);
	if (!out->code) {
		fprintf(stderr, "pimon-ctl: cannot reach pimon-server at %s\n", addr);
		return EXIT_UNREACHABLE;
	}
	return 0;
}

/* A number from obj.key, NAN if missing. */
static double num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Largest value of field over an instanced metric's instances. */
static double max_over(json_t *metric, const char *field)
{
	double best = NAN;
	const char *k;
	json_t *inst;
	json_object_foreach(metric, k, inst)
	{
		double v = num(inst, field);
		if (!isnan(v) && (isnan(best) || v > best))
			best = v;
	}
	return best;
}

/* Format a value or "-". */
static const char *fmt(char *buf, size_t size, double v, int decimals)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.*f", decimals, v);
	return buf;
}

/* A duration as "12s", "5m", "3h", "2d". */
static void fmt_age(char *buf, size_t size, long long ms)
{
	long long s = ms / 1000;
	if (s < 120)
		snprintf(buf, size, "%llds", s);
	else if (s < 7200)
		snprintf(buf, size, "%lldm", s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%lldh", s / 3600);
	else
		snprintf(buf, size, "%lldd", s / 86400);
}

/* hosts as an aligned table. */
static void print_hosts(json_t *hosts)
{
	printf("%-20s %-5s %-6s %-22s %6s %6s %6s %6s %6s %6s\n", "NAME", "STATE", "SINCE", "ADDR",
	       "WORKER", "CPU%", "MEM%", "DISK%", "LOAD1", "TEMP");
	long long now = (long long)util_now_ms();
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h)
	{
		json_t *latest = json_object_get(h, "latest");
		char since[32], cpu[32], mem[32], disk[32], load[32], temp[32];
		fmt_age(since, sizeof since, now - (long long)num(h, "since"));
		printf("%-20s %-5s %-6s %-22s %6d %6s %6s %6s %6s %6s\n",
		       json_string_value(json_object_get(h, "name")),
		       json_string_value(json_object_get(h, "state")), since,
		       json_string_value(json_object_get(h, "addr")),
		       (int)json_integer_value(json_object_get(h, "worker")),
		       fmt(cpu, sizeof cpu, num(json_object_get(latest, "cpu"), "usage"), 1),
		       fmt(mem, sizeof mem, num(json_object_get(latest, "mem"), "used_pct"), 1),
		       fmt(disk, sizeof disk, max_over(json_object_get(latest, "disk"), "used_pct"),
		           1),
		       fmt(load, sizeof load, num(json_object_get(latest, "load"), "load1"), 2),
		       fmt(temp, sizeof temp, max_over(json_object_get(latest, "temp"), "celsius"),
		           1));
	}
}

/* workers as an aligned table. */
static void print_workers(json_t *workers)
{
	printf("%-6s %8s %10s %12s %12s %8s\n", "WORKER", "SESSIONS", "FRAMES", "BATCHES", "ROWS",
	       "BAD");
	size_t i;
	json_t *w;
	json_array_foreach(workers, i, w)
	{
		printf("%-6d %8.0f %10.0f %12.0f %12.0f %8.0f\n",
		       (int)json_integer_value(json_object_get(w, "id")), num(w, "sessions"),
		       num(w, "frames_in"), num(w, "batches_in"), num(w, "rows_stored"),
		       num(w, "bad_frames"));
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"addr", required_argument, NULL, 'a'},
	    {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *addr = NULL;
	int json = 0, c;
	while ((c = getopt_long(argc, argv, "+c:a:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("pimon-ctl %s\n", PIMON_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	char api[128];
	int post = 0;
	if (strcmp(cmd, "hosts") == 0 && optind + 1 == argc) {
		snprintf(api, sizeof api, "/api/v1/hosts");
	} else if (strcmp(cmd, "workers") == 0 && optind + 1 == argc) {
		snprintf(api, sizeof api, "/api/v1/workers");
	} else if (strcmp(cmd, "poll") == 0 && optind + 2 == argc) {
		if (!util_valid_name(argv[optind + 1])) {
			fprintf(stderr, "pimon-ctl: '%s' is not a valid host name\n",
			        argv[optind + 1]);
			return EXIT_USAGE;
		}
		snprintf(api, sizeof api, "/api/v1/hosts/%s/poll", argv[optind + 1]);
		post = 1;
	} else {
		fprintf(stderr, "pimon-ctl: unknown command or wrong arguments: '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}

	struct pimon_config cfg;
	char err[512];
	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "pimon-ctl: %s\n", err);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (!addr && cfg.server.http_listen[0] == '\0') {
		fprintf(stderr, "pimon-ctl: server.http.listen is empty: the API is off\n");
		config_free(&cfg);
		return EXIT_USAGE;
	}
	struct reply r = {0};
	int rc = http_call(addr ? addr : cfg.server.http_listen, api, post, &r);
	config_free(&cfg);
	if (rc)
		return rc;
	json_error_t jerr;
	json_t *doc = r.body ? json_loads(r.body, 0, &jerr) : NULL;
	if (r.code / 100 != 2 || !doc) {
		json_t *msg = json_object_get(doc, "error");
		fprintf(stderr, "pimon-ctl: server answered %d: %s\n", r.code,
		        json_is_string(msg) ? json_string_value(msg) : "not JSON");
		json_decref(doc);
		free(r.body);
		return EXIT_SERVER;
	}
	if (json)
		fputs(r.body, stdout);
	else if (strcmp(cmd, "hosts") == 0)
		print_hosts(doc);
	else if (strcmp(cmd, "workers") == 0)
		print_workers(doc);
	else
		printf("asked %s for a sample\n", argv[optind + 1]);
	json_decref(doc);
	free(r.body);
	return EXIT_OK;
}
