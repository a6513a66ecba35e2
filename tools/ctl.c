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
#include <time.h>

#include "auth.h"
#include "config.h"
#include "pimon_version.h"
#include "util.h"

/* Exit codes scripts can rely on. */
enum { EXIT_OK = 0, EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* Longest --since: what the server answers for (400 days). */
#define CTL_SINCE_MAX (400ull * 86400 * 1000)

/* The help text. */
static void usage(FILE *out)
{
	fprintf(out, "usage: pimon-ctl [options] COMMAND [ARGS] [--json]\n"
	             "commands:\n"
	             "  hosts                every host: state, address, worker, latest values\n"
	             "  show HOST            one host: details and latest values\n"
	             "  workers              every worker: sessions and counters\n"
	             "  stats                the server: version, uptime, hosts, summed counters\n"
	             "  alarms               active alarms, then recent fires and resolves\n"
	             "  series HOST METRIC   one field over time, in buckets (avg, min, max):\n"
	             "      --field F        the field (default: the metric's first)\n"
	             "      --instance I     the mount, interface or zone (needed when several)\n"
	             "      --since D        how far back: 90s, 15m, 1h, 24h, 7d (default 1h)\n"
	             "      --points N       at most N rows, 1..10000 (default 500)\n"
	             "  top METRIC.FIELD     hosts ranked by a field over a range (from rollups):\n"
	             "      --since D        how far back (default 24h)\n"
	             "      --agg A          max, min or avg (default max)\n"
	             "      --top N          at most N hosts, 1..1000 (default 20)\n"
	             "  poll HOST            ask HOST's agent for a sample now\n"
	             "  forget HOST          stop listing HOST, which is not connected, until it\n"
	             "                       reports again; its files stay\n"
	             "options:\n"
	             "  -c, --config FILE    find the server from FILE's server.http.listen\n"
	             "  -a, --addr HOST:PORT the server's HTTP API address\n"
	             "  -k, --token-file F   the token to send (default: the file's\n"
	             "                       server.http.admin_token_file for poll and\n"
	             "                       forget,\n"
	             "                       server.http.read_token_file for the rest)\n"
	             "  -j, --json           print the server's JSON as is (also after COMMAND)\n"
	             "  -h, --help           show this help\n"
	             "  -V, --version        show the version\n"
	             "exit status: 0 done, 1 the server answered an error, 2 bad usage or\n"
	             "configuration, 3 the server could not be reached\n");
}

/* A command line, parsed. */
struct ctl {
	const struct command *cmd;
	const char *args[2]; /* HOST, METRIC */
	int json;
	const char *field, *instance;
	uint64_t since_ms;
	int since_set;                /* --since given */
	unsigned points;              /* 0: the server's default */
	const char *agg;              /* top: NULL for the server's default */
	unsigned top;                 /* top: 0 for the server's default */
	const struct auth_key *admin; /* sent as a bearer token; NULL: none */
};

/* A command: its arguments, the request it makes and how it prints. */
struct command {
	const char *name;
	int nargs;
	int post;
	const char *opts; /* the options it takes, as getopt letters; --json always */
	int (*path)(const struct ctl *c, char *out, size_t size); /* 0 or an exit code */
	void (*print)(json_t *doc, const struct ctl *c);
};

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
static int http_call(const char *addr, const char *path, int post, const struct auth_key *admin,
                     struct reply *out)
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
	if (admin) {
		char bearer[AUTH_KEY_MAX + 8];
		snprintf(bearer, sizeof bearer, "Bearer %.*s", (int)admin->len,
		         (const char *)admin->bytes);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", bearer);
	}
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

/* A string from obj.key, "-" if missing or empty. */
static const char *str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? s : "-";
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

/* A value for people: whole numbers as such, others with up to three
 * decimals (three significant digits below 1), trailing zeros cut. */
static const char *fmt_value(char *buf, size_t size, json_t *v)
{
	double d = json_is_number(v) ? json_number_value(v) : NAN;
	if (isnan(d)) {
		snprintf(buf, size, "-");
	} else if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
		snprintf(buf, size, "%.0f", d);
	} else if (d > -1 && d < 1) {
		snprintf(buf, size, "%.3g", d);
	} else {
		snprintf(buf, size, "%.3f", d);
		char *end = buf + strlen(buf);
		while (end > buf && end[-1] == '0')
			*--end = '\0';
		if (end > buf && end[-1] == '.')
			end[-1] = '\0';
	}
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

/* Unix ms as local ISO 8601 time ("2026-11-27T10:33:02+01:00"), "-" for 0
 * or a missing time. */
static const char *fmt_time(char *buf, size_t size, double ms)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	char zone[8];
	if (isnan(ms) || ms <= 0 || !localtime_r(&t, &tm)) {
		snprintf(buf, size, "-");
		return buf;
	}
	strftime(zone, sizeof zone, "%z", &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (strlen(zone) == 5)
		snprintf(buf + n, size - n, "%.3s:%s", zone, zone + 3);
	return buf;
}

/* Parse a duration such as 90s, 15m, 1h, 24h, 7d or 2w (a bare number is
 * seconds) into ms; 0, or -1 if it is not one or is 0 or over 400 days. */
static int parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		char unit;
		uint64_t ms;
	} units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}, {'w', 604800000}};
	uint64_t n = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > CTL_SINCE_MAX)
			return -1;
	}
	if (p == s || (p[0] && p[1]))
		return -1;
	uint64_t scale = p[0] ? 0 : 1000;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (p[0] == units[i].unit)
			scale = units[i].ms;
	if (scale == 0 || n == 0 || n > CTL_SINCE_MAX / scale)
		return -1;
	*ms = n * scale;
	return 0;
}

/* Rows of text cells printed with each column as wide as its widest. */
struct table {
	size_t ncols, nrows, cap;
	char **cells;
};

/* Add a row of t->ncols cells (copied). */
static void table_row(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof *nc);
		if (!nc)
			return;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "-");
	t->nrows++;
}

/* Print the rows, columns separated by two spaces; columns whose bit is
 * set in right are aligned right (numbers). Frees the cells. */
static void table_print(struct table *t, unsigned right)
{
	size_t width[16] = {0};
	for (size_t i = 0; i < t->nrows * t->ncols; i++) {
		size_t n = t->cells[i] ? strlen(t->cells[i]) : 1;
		if (i % t->ncols < 16 && n > width[i % t->ncols])
			width[i % t->ncols] = n;
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			int w = (int)width[c < 16 ? c : 15];
			int last = c + 1 == t->ncols;
			if (right & (1u << c))
				printf("%*s%s", w, s ? s : "-", last ? "" : "  ");
			else
				printf("%-*s%s", last ? 0 : w, s ? s : "-", last ? "" : "  ");
		}
		putchar('\n');
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* hosts as an aligned table. */
static void print_hosts(json_t *hosts, const struct ctl *c)
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
static void print_workers(json_t *workers, const struct ctl *c)
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

/* A key/value line into a two-column table. */
static void kv(struct table *t, const char *key, const char *value)
{
	const char *cells[2] = {key, value};
	table_row(t, cells);
}

/* A time as "ISO (age ago)". */
static const char *fmt_when(char *buf, size_t size, double ms)
{
	char iso[64], age[32];
	if (isnan(ms) || ms <= 0)
		return fmt_time(buf, size, ms);
	fmt_age(age, sizeof age, (long long)util_now_ms() - (long long)ms);
	snprintf(buf, size, "%s (%s ago)", fmt_time(iso, sizeof iso, ms), age);
	return buf;
}

/* A number of seconds as "3d 4h 5m 6s", largest units first. */
static void fmt_uptime(char *buf, size_t size, double s)
{
	long long v = isnan(s) ? 0 : (long long)s;
	snprintf(buf, size, "%lldd %lldh %lldm %llds", v / 86400, v % 86400 / 3600, v % 3600 / 60,
	         v % 60);
}

/* Latest values as "metric.field" or "metric[instance].field" lines. */
static void kv_latest(struct table *t, json_t *latest)
{
	const char *metric, *k2, *k3;
	json_t *m, *v, *v3;
	char key[512], val[64];
	json_object_foreach(latest, metric, m)
	{
		json_object_foreach(m, k2, v)
		{
			if (!json_is_object(v)) {
				snprintf(key, sizeof key, "%s.%s", metric, k2);
				kv(t, key, fmt_value(val, sizeof val, v));
				continue;
			}
			json_object_foreach(v, k3, v3)
			{
				snprintf(key, sizeof key, "%s[%s].%s", metric, k2, k3);
				kv(t, key, fmt_value(val, sizeof val, v3));
			}
		}
	}
}

/* show: one host's details, then its latest values. */
static void print_show(json_t *h, const struct ctl *c)
{
	struct table t = {.ncols = 2};
	char buf[256], when[128];
	snprintf(buf, sizeof buf, "%s (%s) since %s", str(h, "state"), str(h, "reason"),
	         fmt_when(when, sizeof when, num(h, "since")));
	kv(&t, "name", str(h, "name"));
	kv(&t, "state", buf);
	kv(&t, "addr", str(h, "addr"));
	kv(&t, "last_seen", fmt_when(when, sizeof when, num(h, "last_seen")));
	snprintf(buf, sizeof buf, "%d", (int)json_integer_value(json_object_get(h, "worker")));
	kv(&t, "worker", buf);
	const char *facts[] = {"version", "os", "kernel", "model", "boot_id"};
	for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
		kv(&t, facts[i], str(h, facts[i]));
	fmt_uptime(buf, sizeof buf, num(h, "uptime_s"));
	kv(&t, "uptime", buf);
	kv_latest(&t, json_object_get(h, "latest"));
	table_print(&t, 0);
}

/* stats: the server's figures as key/value lines. */
static void print_stats(json_t *s, const struct ctl *c)
{
	struct table t = {.ncols = 2};
	char buf[128], when[128];
	json_t *hosts = json_object_get(s, "hosts");
	kv(&t, "version", str(s, "version"));
	kv(&t, "started", fmt_when(when, sizeof when, num(s, "started")));
	fmt_uptime(buf, sizeof buf, num(s, "uptime_s"));
	kv(&t, "uptime", buf);
	kv(&t, "workers", fmt_value(buf, sizeof buf, json_object_get(s, "workers")));
	snprintf(buf, sizeof buf, "%.0f (%.0f up, %.0f down)", num(hosts, "total"),
	         num(hosts, "up"), num(hosts, "down"));
	kv(&t, "hosts", buf);
	kv(&t, "sessions", fmt_value(buf, sizeof buf, json_object_get(s, "sessions")));
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(s, "counters"), k, v)
	{
		kv(&t, k, fmt_value(buf, sizeof buf, v));
	}
	table_print(&t, 0);
}

/* An alarm's name with its instance, "disk_warning /boot". */
static const char *alarm_name(char *buf, size_t size, json_t *a)
{
	const char *inst = str(a, "instance");
	if (strcmp(inst, "-") == 0 || !inst[0])
		return str(a, "name");
	snprintf(buf, size, "%s %s", str(a, "name"), inst);
	return buf;
}

/* alarms: active ones, then recent fires and resolves, each an aligned table. */
static void print_alarms(json_t *doc, const struct ctl *c)
{
	struct table t = {.ncols = 5};
	const char *head[5] = {"HOST", "ALARM", "LEVEL", "SINCE", "MESSAGE"};
	char when[128], name[256];
	size_t i;
	json_t *a;
	printf("ACTIVE\n");
	table_row(&t, head);
	json_array_foreach(json_object_get(doc, "active"), i, a)
	{
		const char *row[5] = {str(a, "host"), alarm_name(name, sizeof name, a),
		                      str(a, "level"), fmt_when(when, sizeof when, num(a, "since")),
		                      str(a, "message")};
		table_row(&t, row);
	}
	table_print(&t, 0);
	printf("\nRECENT\n");
	t.ncols = 6;
	const char *head2[6] = {"TIME", "HOST", "ALARM", "LEVEL", "STATE", "MESSAGE"};
	table_row(&t, head2);
	json_array_foreach(json_object_get(doc, "recent"), i, a)
	{
		const char *row[6] = {fmt_time(when, sizeof when, num(a, "time")),
		                      str(a, "host"),
		                      alarm_name(name, sizeof name, a),
		                      str(a, "level"),
		                      str(a, "state"),
		                      str(a, "message")};
		table_row(&t, row);
	}
	table_print(&t, 0);
}

/* series: one row per bucket: time, average, minimum, maximum. */
static void print_series(json_t *doc, const struct ctl *c)
{
	struct table t = {.ncols = 4};
	const char *head[4] = {"TIME", "AVG", "MIN", "MAX"};
	char when[64], v[3][64];
	size_t i;
	json_t *p;
	table_row(&t, head);
	json_array_foreach(json_object_get(doc, "points"), i, p)
	{
		const char *row[4] = {
		    fmt_time(when, sizeof when, json_number_value(json_array_get(p, 0))),
		    fmt_value(v[0], sizeof v[0], json_array_get(p, 1)),
		    fmt_value(v[1], sizeof v[1], json_array_get(p, 2)),
		    fmt_value(v[2], sizeof v[2], json_array_get(p, 3))};
		table_row(&t, row);
	}
	table_print(&t, 0xe);
}

/* top: rank, host, value, instance, when, tier. */
static void print_top(json_t *doc, const struct ctl *c)
{
	struct table t = {.ncols = 6};
	const char *head[6] = {"RANK", "HOST", "VALUE", "INSTANCE", "TIME", "TIER"};
	char rank[24], when[64], v[64];
	size_t i;
	json_t *e;
	table_row(&t, head);
	json_array_foreach(json_object_get(doc, "top"), i, e)
	{
		json_t *tm = json_object_get(e, "time"), *inst = json_object_get(e, "instance");
		snprintf(rank, sizeof rank, "%zu", i + 1);
		const char *row[6] = {
		    rank,
		    str(e, "host"),
		    fmt_value(v, sizeof v, json_object_get(e, "value")),
		    json_is_string(inst) ? json_string_value(inst) : "-",
		    json_is_number(tm) ? fmt_time(when, sizeof when, json_number_value(tm)) : "-",
		    str(e, "tier")};
		table_row(&t, row);
	}
	table_print(&t, 0x5);
	if (json_array_size(json_object_get(doc, "top")) == 0)
		printf("no host has %s.%s in the range\n", str(doc, "metric"), str(doc, "field"));
}

/* poll: what was asked. */
static void print_poll(json_t *doc, const struct ctl *c)
{
	printf("asked %s for a sample\n", c->args[0]);
}

/* forget: what was done. */
static void print_forget(json_t *doc, const struct ctl *c)
{
	printf("forgot %s: no longer listed until it reports again; its files stay\n", c->args[0]);
}

/* A path without arguments: the command's own name under /api/v1/. */
static int path_plain(const struct ctl *c, char *out, size_t size)
{
	snprintf(out, size, "/api/v1/%s", c->cmd->name);
	return 0;
}

/* The host argument, checked; 0 or EXIT_USAGE. */
static int check_host(const char *name)
{
	if (util_valid_name(name))
		return 0;
	fprintf(stderr, "pimon-ctl: '%s' is not a valid host name\n", name);
	return EXIT_USAGE;
}

/* show HOST: /api/v1/hosts/HOST. */
static int path_show(const struct ctl *c, char *out, size_t size)
{
	int rc = check_host(c->args[0]);
	if (rc == 0)
		snprintf(out, size, "/api/v1/hosts/%s", c->args[0]);
	return rc;
}

/* poll HOST, forget HOST: /api/v1/hosts/HOST/<command>. */
static int path_host_action(const struct ctl *c, char *out, size_t size)
{
	int rc = check_host(c->args[0]);
	if (rc == 0)
		snprintf(out, size, "/api/v1/hosts/%s/%s", c->args[0], c->cmd->name);
	return rc;
}

/* Append "&key=value" (value URI-encoded; "?" for the first) to out. */
static void add_param(char *out, size_t size, const char *key, const char *value)
{
	char *enc = evhttp_uriencode(value, -1, 0);
	size_t n = strlen(out);
	snprintf(out + n, size - n, "%c%s=%s", strchr(out, '?') ? '&' : '?', key, enc ? enc : "");
	free(enc);
}

/* series HOST METRIC: the last --since, at most --points buckets. */
static int path_series(const struct ctl *c, char *out, size_t size)
{
	int rc = check_host(c->args[0]);
	if (rc)
		return rc;
	if (!util_valid_key(c->args[1]) || (c->field && !util_valid_key(c->field))) {
		fprintf(stderr, "pimon-ctl: '%s' is not a valid metric or field name\n",
		        util_valid_key(c->args[1]) ? c->field : c->args[1]);
		return EXIT_USAGE;
	}
	uint64_t to = util_now_ms();
	snprintf(out, size, "/api/v1/hosts/%s/series/%s?from=%llu&to=%llu", c->args[0], c->args[1],
	         (unsigned long long)(to - c->since_ms), (unsigned long long)to);
	char n[16];
	if (c->points) {
		snprintf(n, sizeof n, "%u", c->points);
		add_param(out, size, "points", n);
	}
	if (c->field)
		add_param(out, size, "field", c->field);
	if (c->instance)
		add_param(out, size, "instance", c->instance);
	return 0;
}

/* top METRIC.FIELD: /api/v1/fleet/METRIC/FIELD with the options given. */
static int path_top(const struct ctl *c, char *out, size_t size)
{
	char metric[64];
	const char *dot = strchr(c->args[0], '.');
	size_t ml = dot ? (size_t)(dot - c->args[0]) : 0;
	if (dot && ml < sizeof metric)
		snprintf(metric, sizeof metric, "%.*s", (int)ml, c->args[0]);
	if (!dot || ml >= sizeof metric || !util_valid_key(metric) || !util_valid_key(dot + 1)) {
		fprintf(stderr, "pimon-ctl: '%s' is not METRIC.FIELD (such as cpu.usage)\n",
		        c->args[0]);
		return EXIT_USAGE;
	}
	snprintf(out, size, "/api/v1/fleet/%s/%s", metric, dot + 1);
	char n[32];
	if (c->since_set) {
		snprintf(n, sizeof n, "%llus", (unsigned long long)(c->since_ms / 1000));
		add_param(out, size, "since", n);
	}
	if (c->agg)
		add_param(out, size, "agg", c->agg);
	if (c->top) {
		snprintf(n, sizeof n, "%u", c->top);
		add_param(out, size, "top", n);
	}
	return 0;
}

static const struct command commands[] = {
    {.name = "hosts", .path = path_plain, .print = print_hosts},
    {.name = "show", .nargs = 1, .path = path_show, .print = print_show},
    {.name = "workers", .path = path_plain, .print = print_workers},
    {.name = "stats", .path = path_plain, .print = print_stats},
    {.name = "alarms", .path = path_plain, .print = print_alarms},
    {.name = "series", .nargs = 2, .opts = "fisn", .path = path_series, .print = print_series},
    {.name = "top", .nargs = 1, .opts = "sgt", .path = path_top, .print = print_top},
    {.name = "poll", .nargs = 1, .post = 1, .path = path_host_action, .print = print_poll},
    {.name = "forget", .nargs = 1, .post = 1, .path = path_host_action, .print = print_forget},
};

/* One option of a command; 0 or EXIT_USAGE. */
static int command_option(struct ctl *c, int opt, const char *arg)
{
	char *end;
	switch (opt) {
	case 'j':
		c->json = 1;
		return 0;
	case 'f':
		c->field = arg;
		return 0;
	case 'i':
		c->instance = arg;
		return 0;
	case 's':
		c->since_set = 1;
		if (parse_duration(arg, &c->since_ms) == 0)
			return 0;
		fprintf(stderr,
		        "pimon-ctl: --since %s: expected a duration such as 15m, 1h or "
		        "7d, up to 400d\n",
		        arg);
		return EXIT_USAGE;
	case 'n': {
		unsigned long n = strtoul(arg, &end, 10);
		if (*arg >= '0' && *arg <= '9' && !*end && n >= 1 && n <= 10000) {
			c->points = (unsigned)n;
			return 0;
		}
		fprintf(stderr, "pimon-ctl: --points %s: expected 1..10000\n", arg);
		return EXIT_USAGE;
	}
	case 'g':
		if (strcmp(arg, "max") == 0 || strcmp(arg, "min") == 0 || strcmp(arg, "avg") == 0) {
			c->agg = arg;
			return 0;
		}
		fprintf(stderr, "pimon-ctl: --agg %s: expected max, min or avg\n", arg);
		return EXIT_USAGE;
	case 't': {
		unsigned long n = strtoul(arg, &end, 10);
		if (*arg >= '0' && *arg <= '9' && !*end && n >= 1 && n <= 1000) {
			c->top = (unsigned)n;
			return 0;
		}
		fprintf(stderr, "pimon-ctl: --top %s: expected 1..1000\n", arg);
		return EXIT_USAGE;
	}
	default:
		return EXIT_USAGE;
	}
}

/* The command, its arguments and its options (which may come in any
 * order); 0 or EXIT_USAGE. */
static int parse_command(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},           {"field", required_argument, NULL, 'f'},
	    {"instance", required_argument, NULL, 'i'}, {"since", required_argument, NULL, 's'},
	    {"points", required_argument, NULL, 'n'},   {"agg", required_argument, NULL, 'g'},
	    {"top", required_argument, NULL, 't'},      {NULL, 0, NULL, 0},
	};
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			c->cmd = &commands[i];
	if (!c->cmd) {
		fprintf(stderr, "pimon-ctl: unknown command '%s'\n", argv[0]);
		usage(stderr);
		return EXIT_USAGE;
	}
	int opt, rc;
	optind = 0; /* start over on the command's own arguments */
	opterr = 0; /* getopt would name the command as the program */
	while ((opt = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (opt == '?') {
			fprintf(stderr, "pimon-ctl: %s: unknown option or missing value: %s\n",
			        c->cmd->name, argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (opt != 'j' && (!c->cmd->opts || !strchr(c->cmd->opts, opt))) {
			fprintf(stderr, "pimon-ctl: %s takes no such option\n", c->cmd->name);
			return EXIT_USAGE;
		}
		if ((rc = command_option(c, opt, optarg)) != 0)
			return rc;
	}
	if (argc - optind != c->cmd->nargs) {
		fprintf(stderr, "pimon-ctl: %s takes %d argument%s (see pimon-ctl --help)\n",
		        c->cmd->name, c->cmd->nargs, c->cmd->nargs == 1 ? "" : "s");
		return EXIT_USAGE;
	}
	for (int i = 0; i < c->cmd->nargs; i++)
		c->args[i] = argv[optind + i];
	return 0;
}

/* Ask the server and print its answer; an exit code. */
static int run(const struct ctl *c, const char *addr)
{
	char api[2048];
	int rc = c->cmd->path(c, api, sizeof api);
	struct reply r = {0};
	if (rc || (rc = http_call(addr, api, c->cmd->post, c->admin, &r)) != 0)
		return rc;
	json_error_t jerr;
	json_t *doc = r.body ? json_loads(r.body, 0, &jerr) : NULL;
	if (r.code / 100 != 2 || !doc) {
		json_t *msg = json_object_get(doc, "error");
		fprintf(stderr, "pimon-ctl: server answered %d: %s\n", r.code,
		        json_is_string(msg) ? json_string_value(msg) : "not JSON");
		rc = EXIT_SERVER;
	} else if (c->json) {
		fputs(r.body, stdout);
	} else {
		c->cmd->print(doc, c);
	}
	json_decref(doc);
	free(r.body);
	return rc;
}

/* Global options, the command, the server's address; then ask. */
int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"addr", required_argument, NULL, 'a'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"token-file", required_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *addr = NULL, *token_file = NULL;
	struct ctl ctl = {.since_ms = 3600000};
	int c;
	while ((c = getopt_long(argc, argv, "+c:a:k:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			token_file = optarg;
			break;
		case 'c':
			path = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'j':
			ctl.json = 1;
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
	if (parse_command(&ctl, argc - optind, argv + optind) != 0)
		return EXIT_USAGE;

	struct pimon_config cfg;
	char err[512];
	if (config_load_cli(&cfg, "pimon-ctl", path, 0) >= 0)
		return EXIT_USAGE;
	if (!addr && cfg.server.http_listen[0] == '\0') {
		fprintf(stderr, "pimon-ctl: server.http.listen is empty: the API is off\n");
		config_free(&cfg);
		return EXIT_USAGE;
	}
	static struct auth_key admin;
	if (!token_file && ctl.cmd->post && cfg.server.http_admin_token_file[0])
		token_file = cfg.server.http_admin_token_file;
	if (!token_file && !ctl.cmd->post && cfg.server.http_read_token_file[0])
		token_file = cfg.server.http_read_token_file;
	if (token_file) {
		if (auth_key_load(token_file, &admin, err, sizeof err) < 0) {
			fprintf(stderr, "pimon-ctl: %s\n", err);
			config_free(&cfg);
			return EXIT_USAGE;
		}
		ctl.admin = &admin;
	}
	int rc = run(&ctl, addr ? addr : cfg.server.http_listen);
	config_free(&cfg);
	return rc;
}
