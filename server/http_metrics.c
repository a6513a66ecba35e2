/* /metrics: the Prometheus text exposition (format 0.0.4) of every host's
 * state and latest values, rendered from the registry's typed view
 * (registry_visit, latest_foreach) with the names of promname.c, and of
 * each worker's sessions and counters. Everything here runs on the HTTP
 * thread. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "housekeep.h"
#include "http_int.h"
#include "latest.h"
#include "log.h"
#include "promname.h"
#include "registry.h"
#include "remote_write.h"
#include "util.h"
#include "worker.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Text being written; failed is set once any append runs out of memory. */
struct text {
	struct evbuffer *buf;
	int failed;
};

/* One metric family. Its samples gather here while the hosts are walked,
 * so that each family comes out whole, after its HELP and TYPE lines. */
struct family {
	char *name;
	char *help;
	const char *type; /* "gauge" or "counter" */
	char *metric;     /* the host metric it shows; NULL for the server's own */
	char *field;      /* the first of its fields seen (others need a label of their own) */
	struct text samples;
};

/* The server's own families, created first, at these positions. The
 * worker counters follow, one per enum worker_counter, in enum order, then
 * the housekeeper's counters (FAM_STORAGE0, one per enum
 * housekeep_counter) and its two gauges. */
enum {
	FAM_HOST_UP,
	FAM_HOST_LAST_SEEN,
	FAM_HOST_INFO,
	FAM_HOST_BOOT_TIME,
	FAM_HOST_UPTIME,
	FAM_HOSTS,
	FAM_ALARM_FIRING,
	FAM_WORKER_SESSIONS,
	FAM_WORKER_COUNTER0,
};

#define FAM_STORAGE0      (FAM_WORKER_COUNTER0 + WC_COUNT)
#define FAM_STORAGE_BYTES (FAM_STORAGE0 + HKC_COUNT)
#define FAM_STORAGE_LIMIT (FAM_STORAGE_BYTES + 1)
#define FAM_RW0           (FAM_STORAGE_LIMIT + 1) /* one per enum remote_write_counter */
#define FAM_RW_LAG        (FAM_RW0 + RWC_COUNT)

/* How one host metric's field is shown: its family (-1: not exported)
 * and what promname_series said of its labels and scale. */
struct series {
	long fam;
	struct prom_name name;
};

/* The page being built. */
struct page {
	struct family *fams;
	size_t nfams;
	size_t cap;
	json_t *index; /* family name -> its position in fams */
	json_t *known; /* "metric field" -> its position in series */
	struct series *series;
	size_t nseries, series_cap;
	size_t clashes; /* host values dropped: their name is another family's */
	uint64_t hosts_up, hosts_down;
	uint64_t now_ms;
	int failed;
};

/* Append len bytes. */
static void text_add(struct text *t, const char *s, size_t len)
{
	if (len && evbuffer_add(t->buf, s, len) < 0)
		t->failed = 1;
}

/* Append a NUL-terminated string. */
static void text_add_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* Append s escaped as the format wants: backslash and newline always,
 * double quotes too when quotes is set (label values, not HELP text). */
static void text_add_escaped(struct text *t, const char *s, int quotes)
{
	const char *run = s;
	for (; *s; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quotes)
			esc = "\\\"";
		if (!esc)
			continue;
		text_add(t, run, (size_t)(s - run));
		text_add(t, esc, 2);
		run = s + 1;
	}
	text_add(t, run, (size_t)(s - run));
}

/* Spell v as the format does: NaN, +Inf, -Inf, a whole number as an
 * integer, or else the shortest %g of 15 to 17 significant digits that
 * reads back as exactly v. */
static void format_double(char *out, size_t size, double v)
{
	if (fabs(v) < 9007199254740992.0 && v == trunc(v)) { /* 2^53: exact */
		snprintf(out, size, "%" PRId64, (int64_t)v);
		return;
	}
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int digits = 15; digits <= 17; digits++) {
		snprintf(out, size, "%.*g", digits, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* Spell an unsigned count exactly (no trip through double). */
static void format_u64(char *out, size_t size, uint64_t v)
{
	snprintf(out, size, "%" PRIu64, v);
}

/* "pimon_<group>_<name><suffix>" for the server's own counters, with
 * every character outside [a-zA-Z0-9_] turned into '_'. NULL: out of
 * memory. */
static char *family_name(const char *metric, const char *field, const char *suffix)
{
	size_t len = strlen("pimon_") + strlen(metric) + 1 + strlen(field) + strlen(suffix);
	char *name = malloc(len + 1);
	if (!name)
		return NULL;
	snprintf(name, len + 1, "pimon_%s_%s%s", metric, field, suffix);
	for (char *c = name + strlen("pimon_"); *c; c++) {
		int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		         (*c >= '0' && *c <= '9') || *c == '_';
		if (!ok)
			*c = '_';
	}
	return name;
}

/* Free what one family holds. */
static void family_free(struct family *f)
{
	free(f->name);
	free(f->help);
	free(f->metric);
	free(f->field);
	if (f->samples.buf)
		evbuffer_free(f->samples.buf);
}

/* Add a sample without labels. */
static void family_sample_bare(struct family *f, const char *value)
{
	text_add_str(&f->samples, f->name);
	text_add_str(&f->samples, " ");
	text_add_str(&f->samples, value);
	text_add_str(&f->samples, "\n");
}

/* Append one sample: name{l1="v1",l2="v2"} value, with l2 optional. */
static void family_sample(struct family *f, const char *l1, const char *v1, const char *l2,
                          const char *v2, const char *value)
{
	struct text *t = &f->samples;
	text_add_str(t, f->name);
	text_add_str(t, "{");
	text_add_str(t, l1);
	text_add_str(t, "=\"");
	text_add_escaped(t, v1, 1);
	if (l2) {
		text_add_str(t, "\",");
		text_add_str(t, l2);
		text_add_str(t, "=\"");
		text_add_escaped(t, v2, 1);
	}
	text_add_str(t, "\"} ");
	text_add_str(t, value);
	text_add_str(t, "\n");
}

/* One sample with the labels of labels[] (name, value pairs, NULL ended,
 * at least one). */
static void family_sample_labels(struct family *f, const char *const *labels, const char *value)
{
	struct text *t = &f->samples;
	text_add_str(t, f->name);
	for (size_t i = 0; labels[i]; i += 2) {
		text_add_str(t, i ? "\"," : "{");
		text_add_str(t, labels[i]);
		text_add_str(t, "=\"");
		text_add_escaped(t, labels[i + 1], 1);
	}
	text_add_str(t, "\"} ");
	text_add_str(t, value);
	text_add_str(t, "\n");
}

/* Make room for one more family. */
static int page_reserve(struct page *p)
{
	if (p->nfams < p->cap)
		return 0;
	size_t cap = p->cap ? 2 * p->cap : 32;
	struct family *fams = realloc(p->fams, cap * sizeof *fams);
	if (!fams)
		return -1;
	p->fams = fams;
	p->cap = cap;
	return 0;
}

/* Add a family; name and help are taken (freed here on failure), metric
 * and field (NULL for the server's own families) copied. Its position, or
 * -1 when out of memory. */
static long page_add_family(struct page *p, char *name, char *help, const char *type,
                            const char *metric, const char *field)
{
	if (!name || !help || page_reserve(p) < 0) {
		free(name);
		free(help);
		return -1;
	}
	struct family *f = &p->fams[p->nfams];
	memset(f, 0, sizeof *f);
	f->name = name;
	f->help = help;
	f->type = type;
	f->metric = metric ? strdup(metric) : NULL;
	f->field = field ? strdup(field) : NULL;
	f->samples.buf = evbuffer_new();
	int bad = (metric && !f->metric) || (field && !f->field) || !f->samples.buf;
	if (bad || json_object_set_new(p->index, name, json_integer((json_int_t)p->nfams)) < 0) {
		family_free(f);
		return -1;
	}
	return (long)p->nfams++;
}

/* The server's own families, at the FAM_* positions. */
static int page_add_server_families(struct page *p)
{
	static const struct {
		const char *name, *type, *help;
	} fixed[] = {
	    [FAM_HOST_UP] = {"pimon_host_up", "gauge",
	                     "1 while the host's agent is connected and heartbeating, 0 once it is "
	                     "down."},
	    [FAM_HOST_LAST_SEEN] = {"pimon_host_last_seen_seconds", "gauge",
	                            "When the server last heard from the host, in Unix seconds."},
	    [FAM_HOST_INFO] = {"pimon_host_info", "gauge",
	                       "1 for each host, labelled with what its agent said in HELLO: os, "
	                       "kernel, model and agent_version."},
	    [FAM_HOST_BOOT_TIME] =
	        {"pimon_host_boot_time_seconds", "gauge",
	         "When an up host booted, in Unix seconds (its HELLO's time less "
	         "the uptime it gave)."},
	    [FAM_HOST_UPTIME] = {"pimon_host_uptime_seconds", "gauge",
	                         "Seconds since an up host booted, as of the scrape."},
	    [FAM_HOSTS] = {"pimon_hosts", "gauge", "Hosts the server knows, by state."},
	    [FAM_ALARM_FIRING] =
	        {"pimon_alarm_firing", "gauge",
	         "1 for each alarm firing now, by host, alarm, alarm_instance and level."},
	    [FAM_WORKER_SESSIONS] = {"pimon_worker_sessions", "gauge",
	                             "Agent sessions the worker owns now."},
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (page_add_family(p, strdup(fixed[i].name), strdup(fixed[i].help), fixed[i].type,
		                    NULL, NULL) < 0)
			return -1;
	for (int c = 0; c < WC_COUNT; c++) {
		char *name = family_name("worker", worker_counter_names[c], "_total");
		char *help = strdup(worker_counter_help[c]);
		if (page_add_family(p, name, help, "counter", NULL, NULL) < 0)
			return -1;
	}
	for (int c = 0; c < HKC_COUNT; c++) {
		char *name = family_name("storage", housekeep_counter_names[c], "_total");
		char *help = strdup(housekeep_counter_help[c]);
		if (page_add_family(p, name, help, "counter", NULL, NULL) < 0)
			return -1;
	}
	if (page_add_family(p, strdup("pimon_storage_bytes"),
	                    strdup("Bytes under hosts/ at the end of the last housekeeping sweep."),
	                    "gauge", NULL, NULL) < 0 ||
	    page_add_family(p, strdup("pimon_storage_max_bytes"),
	                    strdup("The cap on hosts/ the last sweep applied (0: none)."), "gauge",
	                    NULL, NULL) < 0)
		return -1;
	for (int c = 0; c < RWC_COUNT; c++) {
		char *name = family_name("remote_write", remote_write_counter_names[c], "_total");
		char *help = strdup(remote_write_counter_help[c]);
		if (page_add_family(p, name, help, "counter", NULL, NULL) < 0)
			return -1;
	}
	if (page_add_family(p, strdup("pimon_remote_write_lag_seconds"),
	                    strdup("How far behind a remote_write receiver is: now less the time "
	                           "of the oldest sample it has not accepted (0: caught up)."),
	                    "gauge", NULL, NULL) < 0)
		return -1;
	return 0;
}

/* Free everything the page holds. */
static void page_free(struct page *p)
{
	for (size_t i = 0; i < p->nfams; i++)
		family_free(&p->fams[i]);
	free(p->fams);
	free(p->series);
	json_decref(p->index);
	json_decref(p->known);
}

/* An empty page with the server's own families; -1 when out of memory. */
static int page_init(struct page *p)
{
	memset(p, 0, sizeof *p);
	p->now_ms = util_now_ms();
	p->index = json_object();
	p->known = json_object();
	if (!p->index || !p->known || page_add_server_families(p) < 0) {
		page_free(p);
		return -1;
	}
	return 0;
}

/* The family named n for metric's field, created on first use; -1 when
 * out of memory (p->failed set) or when the name is the server's, another
 * metric's, or another field's that no label tells apart (counted in
 * p->clashes): fields share a family only through an extra label, as the
 * CPU modes do. */
static long page_host_family(struct page *p, const char *metric, const char *field,
                             const struct prom_name *n)
{
	json_t *pos = json_object_get(p->index, n->family);
	if (pos) {
		long i = (long)json_integer_value(pos);
		const struct family *f = &p->fams[i];
		if (f->metric && strcmp(f->metric, metric) == 0 &&
		    (strcmp(f->field, field) == 0 || n->extra_name))
			return i;
		p->clashes++;
		return -1;
	}
	long i = page_add_family(p, strdup(n->family), strdup(n->help), n->type, metric, field);
	if (i < 0)
		p->failed = 1;
	return i;
}

/* How metric's field is shown, looked up once a page; NULL when out of
 * memory. */
static const struct series *page_series(struct page *p, const char *metric, const char *field)
{
	char key[2 * PROTO_KEY_MAX + 2];
	snprintf(key, sizeof key, "%s %s", metric, field);
	json_t *pos = json_object_get(p->known, key);
	if (pos)
		return &p->series[json_integer_value(pos)];
	if (p->nseries == p->series_cap) {
		size_t cap = p->series_cap ? 2 * p->series_cap : 64;
		struct series *grown = realloc(p->series, cap * sizeof *grown);
		if (!grown)
			goto oom;
		p->series = grown;
		p->series_cap = cap;
	}
	struct series *s = &p->series[p->nseries];
	s->fam = promname_series(metric, field, &s->name) == 0
	             ? page_host_family(p, metric, field, &s->name)
	             : -1;
	if (json_object_set_new(p->known, key, json_integer((json_int_t)p->nseries)) < 0)
		goto oom;
	p->nseries++;
	return s;
oom:
	p->failed = 1;
	return NULL;
}

/* The host a visit is writing. */
struct page_host {
	struct page *p;
	const char *host;
};

/* One latest value as a sample of its family. Fields not exported have
 * none, nor have NaN and infinite values (what the agent could not read,
 * null in the API). */
static void page_add_value(void *arg, const struct latest_value *v)
{
	struct page_host *ph = arg;
	if (!v->field || !isfinite(v->value))
		return;
	const struct series *s = page_series(ph->p, v->metric, v->field);
	if (!s || s->fam < 0)
		return;
	const char *labels[7] = {"host", ph->host};
	size_t n = 2;
	if (s->name.inst_label && v->instance) {
		labels[n++] = s->name.inst_label;
		labels[n++] = v->instance;
	}
	if (s->name.extra_name) {
		labels[n++] = s->name.extra_name;
		labels[n++] = s->name.extra_value;
	}
	labels[n] = NULL;
	char num[32];
	format_double(num, sizeof num, v->value * s->name.scale);
	family_sample_labels(&ph->p->fams[s->fam], labels, num);
}

/* One active alarm as pimon_alarm_firing 1. Its instance is labelled
 * alarm_instance: "instance" is the label Prometheus gives each target. */
static void page_add_alarm(void *arg, const struct alarm_active *a)
{
	struct page_host *ph = arg;
	const char *labels[] = {"host",      ph->host, "alarm",  a->name, "alarm_instance",
	                        a->instance, "level",  a->level, NULL};
	family_sample_labels(&ph->p->fams[FAM_ALARM_FIRING], labels, "1");
}

/* One host: up or not, when last heard from, what it said in HELLO, its
 * alarms, and, while it is up, its boot time, uptime and latest values. A
 * down host's last values are not shown: they would read as fresh. */
static int page_visit_host(void *arg, const struct host_view *v)
{
	struct page *p = arg;
	struct page_host ph = {p, v->name};
	char num[32];
	p->hosts_up += v->up != 0;
	p->hosts_down += v->up == 0;
	family_sample(&p->fams[FAM_HOST_UP], "host", v->name, NULL, NULL, v->up ? "1" : "0");
	format_double(num, sizeof num, (double)v->last_seen_ms / 1000.0);
	family_sample(&p->fams[FAM_HOST_LAST_SEEN], "host", v->name, NULL, NULL, num);
	const char *info[] = {"host",          v->name,    "os",    v->os,
	                      "kernel",        v->kernel,  "model", v->model,
	                      "agent_version", v->version, NULL};
	family_sample_labels(&p->fams[FAM_HOST_INFO], info, "1");
	if (v->alarms)
		alarm_book_foreach(v->alarms, page_add_alarm, &ph);
	if (!v->up)
		return 0;
	if (v->boot_ms) {
		format_double(num, sizeof num, (double)v->boot_ms / 1000.0);
		family_sample(&p->fams[FAM_HOST_BOOT_TIME], "host", v->name, NULL, NULL, num);
		uint64_t up_ms = p->now_ms > v->boot_ms ? p->now_ms - v->boot_ms : 0;
		format_double(num, sizeof num, (double)up_ms / 1000.0);
		family_sample(&p->fams[FAM_HOST_UPTIME], "host", v->name, NULL, NULL, num);
	}
	latest_foreach(v->latest, page_add_value, &ph);
	return 0;
}

/* Every host, and the count of hosts by state. */
static void page_add_hosts(struct page *p, struct registry *r)
{
	if (registry_visit(r, page_visit_host, p) != 0)
		p->failed = 1;
	char num[32];
	format_u64(num, sizeof num, p->hosts_up);
	family_sample(&p->fams[FAM_HOSTS], "state", "up", NULL, NULL, num);
	format_u64(num, sizeof num, p->hosts_down);
	family_sample(&p->fams[FAM_HOSTS], "state", "down", NULL, NULL, num);
}

/* Each worker's session count and counters, labelled by its index. */
static void page_add_workers(struct page *p, const struct server *srv)
{
	char id[16], num[32];
	for (int i = 0; i < srv->nworkers; i++) {
		const struct worker *w = srv->workers[i];
		snprintf(id, sizeof id, "%d", i);
		format_u64(num, sizeof num, worker_sessions(w));
		family_sample(&p->fams[FAM_WORKER_SESSIONS], "worker", id, NULL, NULL, num);
		for (int c = 0; c < WC_COUNT; c++) {
			format_u64(num, sizeof num, worker_counter(w, (enum worker_counter)c));
			family_sample(&p->fams[FAM_WORKER_COUNTER0 + c], "worker", id, NULL, NULL,
			              num);
		}
	}
}

/* The housekeeper's counters and gauges, when it runs. */
static void page_add_storage(struct page *p, const struct server *srv)
{
	char num[32];
	if (!srv->housekeep)
		return;
	for (int c = 0; c < HKC_COUNT; c++) {
		format_u64(num, sizeof num,
		           housekeep_counter(srv->housekeep, (enum housekeep_counter)c));
		family_sample_bare(&p->fams[FAM_STORAGE0 + c], num);
	}
	format_u64(num, sizeof num, housekeep_bytes(srv->housekeep));
	family_sample_bare(&p->fams[FAM_STORAGE_BYTES], num);
	format_u64(num, sizeof num, housekeep_cap(srv->housekeep));
	family_sample_bare(&p->fams[FAM_STORAGE_LIMIT], num);
}

/* Each remote_write receiver's counters and lag. */
static void page_add_remote_write(struct page *p, const struct server *srv)
{
	char num[32];
	for (size_t i = 0; i < remote_write_count(srv->remote_write); i++) {
		const char *name = remote_write_name(srv->remote_write, i);
		for (int c = 0; c < RWC_COUNT; c++) {
			format_u64(num, sizeof num,
			           remote_write_counter(srv->remote_write, i,
			                                (enum remote_write_counter)c));
			family_sample(&p->fams[FAM_RW0 + c], "receiver", name, NULL, NULL, num);
		}
		format_double(num, sizeof num, remote_write_lag(srv->remote_write, i));
		family_sample(&p->fams[FAM_RW_LAG], "receiver", name, NULL, NULL, num);
	}
}

/* Move every family that has samples into out, after its HELP and TYPE
 * lines. Returns -1 when anything on the page ran out of memory. */
static int page_assemble(struct page *p, struct text *out)
{
	for (size_t i = 0; i < p->nfams; i++) {
		struct family *f = &p->fams[i];
		p->failed |= f->samples.failed;
		if (evbuffer_get_length(f->samples.buf) == 0)
			continue;
		text_add_str(out, "# HELP ");
		text_add_str(out, f->name);
		text_add_str(out, " ");
		text_add_escaped(out, f->help, 0);
		text_add_str(out, "\n# TYPE ");
		text_add_str(out, f->name);
		text_add_str(out, " ");
		text_add_str(out, f->type);
		text_add_str(out, "\n");
		if (evbuffer_add_buffer(out->buf, f->samples.buf) < 0)
			out->failed = 1;
	}
	return p->failed || out->failed ? -1 : 0;
}

/* Build the whole exposition into out. -1 when out of memory (logged). */
static int metrics_render(struct server *srv, struct text *out)
{
	struct page p;
	if (page_init(&p) < 0) {
		log_err("metrics", "cannot start a /metrics page: out of memory");
		return -1;
	}
	page_add_hosts(&p, srv->registry);
	page_add_workers(&p, srv);
	page_add_storage(&p, srv);
	page_add_remote_write(&p, srv);
	int rc = page_assemble(&p, out);
	if (rc < 0)
		log_err("metrics", "cannot build the /metrics page: out of memory");
	if (p.clashes)
		log_debug("metrics",
		          "%zu host values left out: their names belong to other families",
		          p.clashes);
	page_free(&p);
	return rc;
}

/* The whole /metrics page appended to out: 0, or -1 (logged). */
int http_metrics_page(struct server *srv, struct evbuffer *out)
{
	struct text t = {out, 0};
	return metrics_render(srv, &t);
}

/* GET /metrics: render, then reply with the whole page. */
static void metrics_serve(struct server *srv, struct evhttp_request *req)
{
	struct text out = {evbuffer_new(), 0};
	if (!out.buf || metrics_render(srv, &out) < 0) {
		if (!out.buf)
			log_err("metrics", "cannot allocate the /metrics buffer");
		http_reply_error(req, 500, "out of memory building /metrics");
		goto done;
	}
	size_t len = evbuffer_get_length(out.buf);
	const unsigned char *body = evbuffer_pullup(out.buf, -1);
	if (!body) {
		log_err("metrics", "cannot join %zu bytes of /metrics: out of memory", len);
		http_reply_error(req, 500, "out of memory building /metrics");
		goto done;
	}
	http_reply_bytes(req, 200, METRICS_CONTENT_TYPE, body, len);
done:
	if (out.buf)
		evbuffer_free(out.buf);
}

/* /metrics: answer GET (405 for any other method) and return 1; return 0
 * for every other path. */
int http_metrics_handle(struct http *h, struct evhttp_request *req, const char *path)
{
	if (strcmp(path, "/metrics") != 0)
		return 0;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		http_reply_error(req, 405, "/metrics takes GET");
		return 1;
	}
	metrics_serve(h->srv, req);
	return 1;
}
