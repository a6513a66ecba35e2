/* The JSON API under /api/v1/: a table of routes, one handler each.
 * Everything here runs on the HTTP thread; metric files are read with a
 * fresh descriptor per request and no registry lock held, and opened
 * relative to the host's folder without following a link (safefs), so
 * nothing planted in the data folder makes the API read elsewhere. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csvread.h"
#include "fleet.h"
#include "housekeep.h"
#include "http_int.h"
#include "json_util.h"
#include "log.h"
#include "pimon_version.h"
#include "proto.h"
#include "rank.h"
#include "host_json.h"
#include "registry.h"
#include "remote_write.h"
#include "safefs.h"
#include "series.h"
#include "tierseries.h"
#include "util.h"
#include "worker.h"

#define API_PREFIX "/api/v1/"

/* Most path segments after /api/v1/, and most "*" captures. */
#define API_SEGMENTS 4
#define API_ARGS     2

/* Rows at the end of a metric file that name its current instances. */
#define API_TAIL_ROWS 512

/* Rows of alarms.csv listed as recent alarms. */
#define API_RECENT 100

/* Most query parameters a route takes. */
#define API_PARAMS 8

/* One request being answered: the path's "*" segments and the query's
 * parameters, all decoded. */
struct api_call {
	struct http *h;
	struct evhttp_request *req;
	const char *arg[API_ARGS];
	int nparams;
	char *key[API_PARAMS];
	char *value[API_PARAMS];
};

struct api_route {
	const char *pattern; /* segments after /api/v1/; "*" matches one */
	enum evhttp_cmd_type method;
	const char *const *params; /* query parameters taken, NULL-terminated */
	void (*handle)(struct api_call *c);
};

/* A query parameter, NULL when absent. */
static const char *api_param(struct api_call *c, const char *key)
{
	for (int i = 0; i < c->nparams; i++)
		if (strcmp(c->key[i], key) == 0)
			return c->value[i];
	return NULL;
}

/* Log why a file of the host's folder ("" for the folder) was not read. */
static void api_log_unread(struct api_call *c, const char *file, int err)
{
	char why[64];
	log_warn("http", "host %s: %s/hosts/%s%s%s%s%s: not read", c->arg[0],
	         c->h->srv->cfg->server.data_dir, c->arg[0], *file ? "/" : "", file,
	         safefs_refused(err) ? " " : ": ", safefs_why(err, why, sizeof why));
}

/* The host named by the path: its JSON in *host (NULL when only its
 * folder is known: stored before this run, not yet seen) and its folder,
 * checked as the store checks it, in *dfd (-1 for a known host without
 * one). 0, or -1 after replying 400, 404 or 500. */
static int api_host_lookup(struct api_call *c, json_t **host, int *dfd)
{
	if (!util_valid_name(c->arg[0])) {
		http_reply_error(c->req, 400, "invalid host name");
		return -1;
	}
	if (host_json_one(c->h->srv->registry, c->arg[0], host) == -2) {
		http_reply_error(c->req, 500, "cannot describe the host");
		return -1;
	}
	*dfd = safefs_dir_open(registry_hosts_fd(c->h->srv->registry), c->arg[0], 0);
	if (*dfd >= 0 || (*host && errno == ENOENT))
		return 0;
	int missing = errno == ENOENT;
	if (!missing)
		api_log_unread(c, "", errno);
	json_decref(*host);
	http_reply_error(c->req, missing ? 404 : 500,
	                 missing ? "no such host" : "cannot read the host's folder");
	return -1;
}

/* Whether the host's latest values give metric instances: 1 yes, 0 no,
 * -1 when they do not say. */
static int api_instanced(json_t *host, const char *metric)
{
	json_t *m = json_object_get(json_object_get(host, "latest"), metric);
	void *it = json_is_object(m) ? json_object_iter(m) : NULL;
	if (!it)
		return -1;
	return json_is_object(json_object_iter_value(it)) ? 1 : 0;
}

/* A set of instance names (a JSON object's keys) being gathered. */
struct api_set {
	json_t *set;
	int failed;
};

/* Add an instance name to a set; a failure is remembered. */
static void api_add_instance(const char *instance, void *arg)
{
	struct api_set *s = arg;
	if (json_put(s->set, instance, json_true()) < 0)
		s->failed = 1;
}

/* Order strings for qsort. */
static int api_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A set's keys as a sorted JSON array; NULL if it cannot be built. */
static json_t *api_sorted_keys(json_t *set)
{
	size_t n = json_object_size(set), i = 0;
	const char **keys = malloc((n ? n : 1) * sizeof *keys);
	const char *k;
	json_t *v;
	json_t *arr = keys ? json_array() : NULL;
	if (!arr) {
		free(keys);
		return NULL;
	}
	json_object_foreach(set, k, v)
	{
		keys[i++] = k;
	}
	qsort(keys, n, sizeof *keys, api_cmp_str);
	for (i = 0; arr && i < n; i++)
		if (json_push(arr, json_string(keys[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	free(keys);
	return arr;
}

/* Strings of an array joined as "a, b, c" into out (cut when too long). */
static void api_join(json_t *arr, char *out, size_t size)
{
	size_t i, o = 0;
	json_t *v;
	out[0] = '\0';
	json_array_foreach(arr, i, v)
	{
		int n = snprintf(out + o, size - o, "%s%s", i ? ", " : "", json_string_value(v));
		if (n < 0 || (size_t)n >= size - o)
			break;
		o += (size_t)n;
	}
}

/* The instances a metric has now: in the host's latest values and in the
 * last rows of its file. Also gives the last row's time. NULL if the list
 * cannot be built. */
static json_t *api_instances(struct csvread *r, json_t *host, const char *metric, int instanced,
                             uint64_t *last)
{
	struct api_set set = {json_object(), 0};
	json_t *m = json_object_get(json_object_get(host, "latest"), metric);
	const char *k;
	json_t *v;
	*last = 0;
	if (!set.set)
		return NULL;
	if (instanced) {
		json_object_foreach(m, k, v)
		{
			api_add_instance(k, &set);
		}
	}
	series_tail(r, API_TAIL_ROWS, instanced, last, api_add_instance, &set);
	json_t *arr = set.failed ? NULL : api_sorted_keys(set.set);
	json_decref(set.set);
	return arr;
}

/* Open <metric>.csv of the host's folder dfd (-1: none) and parse its
 * columns. NULL with errno set (ENOENT: no such metric; EINVAL: not a
 * metric file; ELOOP: a link, not followed). */
static struct csvread *api_open_metric(int dfd, const char *metric, json_t *host,
                                       struct series_columns *cols)
{
	char name[PROTO_KEY_MAX + 8];
	snprintf(name, sizeof name, "%s.csv", metric);
	if (dfd < 0) {
		errno = ENOENT;
		return NULL;
	}
	struct csvread *r = csvread_open(dfd, name);
	/* A metric closed for the day, or no longer sent: its newest file. */
	if (!r && errno == ENOENT)
		r = tierread_newest(dfd, TIER_RAW, metric);
	if (r && series_columns_parse(csvread_header(r), api_instanced(host, metric), cols) < 0) {
		csvread_close(r);
		errno = EINVAL;
		return NULL;
	}
	return r;
}

/* A time as JSON, null for 0 (no row). */
static json_t *api_time(uint64_t t)
{
	return t ? json_integer((json_int_t)t) : json_null();
}

/* One metric file described in *out: fields, instance key, instances,
 * and the times of its first and last rows. 0; 1 (*out NULL) when it is
 * not a metric file (a link or a file that cannot be read is logged); -1
 * when the description cannot be built. */
static int api_metric_json(struct api_call *c, int dfd, const char *metric, json_t *host,
                           json_t **out)
{
	struct series_columns cols;
	struct csvread *r = api_open_metric(dfd, metric, host, &cols);
	*out = NULL;
	if (!r) {
		int e = errno;
		char name[PROTO_KEY_MAX + 8];
		snprintf(name, sizeof name, "%s.csv", metric);
		if (e != ENOENT && e != EINVAL)
			api_log_unread(c, name, e);
		return 1;
	}
	uint64_t last;
	json_t *insts = api_instances(r, host, metric, cols.inst_key[0] != '\0', &last);
	json_t *fields = json_array();
	for (int i = 0; fields && i < cols.nfields; i++)
		if (json_push(fields, json_string(cols.fields[i])) < 0) {
			json_decref(fields);
			fields = NULL;
		}
	uint64_t first = tierread_oldest(dfd, metric);
	*out =
	    json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "metric", metric, "instance_key",
	              cols.inst_key[0] ? json_string(cols.inst_key) : json_null(), "fields", fields,
	              "instances", insts, "first", api_time(first), "last", api_time(last));
	csvread_close(r);
	return *out ? 0 : -1;
}

/* The metric a name of the host's folder ("cpu.csv", a closed
 * "cpu.<ms>.csv") or of its raw/ folder ("cpu") stands for, in out; 0, or
 * -1 if none. */
static int api_metric_of(const char *file, char *out, size_t size)
{
	size_t len = strlen(file);
	if (len >= 5 && strcmp(file + len - 4, ".csv") == 0) {
		len -= 4;
		size_t dot = len;
		while (dot > 0 && file[dot - 1] >= '0' && file[dot - 1] <= '9')
			dot--;
		if (dot > 1 && dot < len && file[dot - 1] == '.')
			len = dot - 1;
	}
	if (len == 0 || len >= size)
		return -1;
	snprintf(out, size, "%.*s", (int)len, file);
	return util_valid_key(out) && !proto_metric_reserved(out) ? 0 : -1;
}

/* Add the metric of each name of folder name of dfd ("." for dfd itself)
 * to the set; -1 when out of memory. */
static int api_metric_names(int dfd, const char *name, json_t *set)
{
	int lfd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		return 0;
	}
	struct dirent *de;
	char metric[PROTO_KEY_MAX + 1];
	int rc = 0;
	while (rc == 0 && (de = readdir(d)))
		if (api_metric_of(de->d_name, metric, sizeof metric) == 0 &&
		    (strcmp(name, ".") != 0 || strcmp(de->d_name, metric) != 0))
			rc = json_object_set_new(set, metric, json_true());
	closedir(d);
	return rc;
}

/* Order metric objects by name. */
static int api_cmp_metric(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "metric")),
	              json_string_value(json_object_get(*(json_t *const *)b, "metric")));
}

/* Sort an array of objects with cmp: 0, or -1 when it cannot (arr is then
 * incomplete). */
static int api_sort_array(json_t *arr, int (*cmp)(const void *, const void *))
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n ? n : 1) * sizeof *v);
	int rc = 0;
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof *v, cmp);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, v[i]) < 0)
			rc = -1;
	free(v);
	return rc;
}

/* GET /api/v1/hosts: every host. */
static void api_hosts(struct api_call *c)
{
	http_reply_json(c->req, 200, host_json_all(c->h->srv->registry));
}

/* GET /api/v1/hosts/<name>: one host. */
static void api_host(struct api_call *c)
{
	if (!util_valid_name(c->arg[0])) {
		http_reply_error(c->req, 400, "invalid host name");
		return;
	}
	json_t *host;
	int rc = host_json_one(c->h->srv->registry, c->arg[0], &host);
	if (rc == -1)
		http_reply_error(c->req, 404, "no such host");
	else
		http_reply_json(c->req, rc == 0 ? 200 : 500, host);
}

/* GET /api/v1/hosts/<name>/metrics: the host's metric files. */
static void api_metrics(struct api_call *c)
{
	json_t *host;
	int dfd;
	char metric[PROTO_KEY_MAX + 1];
	if (api_host_lookup(c, &host, &dfd) < 0)
		return;
	json_t *arr = json_array();
	/* The metrics with an open, closed or compressed raw file. */
	json_t *set = json_object();
	int rc = arr && set ? 0 : -1;
	if (rc == 0 && dfd >= 0 &&
	    (api_metric_names(dfd, ".", set) < 0 || api_metric_names(dfd, "raw", set) < 0))
		rc = -1;
	const char *key;
	json_t *v;
	json_object_foreach(set, key, v)
	{
		json_t *m;
		if (rc < 0)
			break;
		snprintf(metric, sizeof metric, "%s", key);
		rc = api_metric_json(c, dfd, metric, host, &m);
		if (rc == 0)
			rc = json_push(arr, m);
		else if (rc == 1)
			rc = 0;
	}
	json_decref(set);
	if (dfd >= 0)
		close(dfd);
	if (rc == 0)
		rc = api_sort_array(arr, api_cmp_metric);
	if (rc < 0) {
		json_decref(arr);
		arr = NULL;
	}
	http_reply_json(c->req, 200, json_pack("{s:s, s:o}", "host", c->arg[0], "metrics", arr));
	json_decref(host);
}

/* The instance a series query reads: the one asked for, or the only one
 * there is. 0 with *out set (NULL: every row), or -1 after replying. *known
 * gets the instances there are now (a new reference, NULL for a metric
 * without instances); the caller releases it either way. */
static int api_pick_instance(struct api_call *c, struct csvread *r, json_t *host,
                             const struct series_columns *cols, const char **out, json_t **known)
{
	const char *asked = api_param(c, "instance");
	char msg[1024], list[900];
	uint64_t last;
	*known = NULL;
	*out = asked;
	if (asked && strlen(asked) > PROTO_INST_MAX) {
		http_reply_error(c->req, 400, "invalid instance name");
		return -1;
	}
	if (!cols->inst_key[0]) {
		if (!asked)
			return 0;
		snprintf(msg, sizeof msg, "no such instance: %s has none", c->arg[1]);
		http_reply_error(c->req, 404, msg);
		return -1;
	}
	*known = api_instances(r, host, c->arg[1], 1, &last);
	if (!*known) {
		http_reply_error(c->req, 500, "cannot list the metric's instances");
		return -1;
	}
	if (asked)
		return 0;
	if (json_array_size(*known) <= 1) {
		*out = json_string_value(json_array_get(*known, 0));
		return 0;
	}
	api_join(*known, list, sizeof list);
	snprintf(msg, sizeof msg, "instance required: %s has %s", cols->inst_key, list);
	http_reply_error(c->req, 400, msg);
	return -1;
}

/* Non-zero if the array of strings holds s. */
static int api_has_string(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (strcmp(json_string_value(v), s) == 0)
			return 1;
	}
	return 0;
}

/* The buckets holding values as [time, avg, min, max] points, a value
 * JSON cannot hold (an infinity) as null; NULL if it cannot be built. */
static json_t *api_points(const struct series_buckets *bk)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < bk->n; i++) {
		const struct series_bucket *b = &bk->b[i];
		if (b->count == 0)
			continue;
		json_t *pt = json_pack("[I, o, o, o]", (json_int_t)(bk->from + i * bk->width),
		                       json_number(series_bucket_avg(b)), json_number(b->min),
		                       json_number(b->max));
		if (json_push(arr, pt) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* Reply 404 for a field the metric does not have, naming those it has. */
static void api_no_field(struct api_call *c, const char *field, const struct series_columns *cols)
{
	char msg[1200];
	size_t o = (size_t)snprintf(msg, sizeof msg, "no such field: %s (fields:", field);
	for (int i = 0; i < cols->nfields && o < sizeof msg; i++)
		o += (size_t)snprintf(msg + o, sizeof msg - o, "%s %s", i ? "," : "",
		                      cols->fields[i]);
	if (o < sizeof msg)
		snprintf(msg + o, sizeof msg - o, ")");
	http_reply_error(c->req, 404, msg);
}

/* Reply with the series, from the tier the bucket width asks for, or 404
 * for an instance neither current nor in the range's rows, or a field
 * no file of the tier (nor the open raw file) has. */
static void api_series_reply(struct api_call *c, int dfd, struct csvread *r, const char *field,
                             const struct series_columns *cols, const char *instance, json_t *known,
                             const struct series_range *rg)
{
	struct series_buckets bk;
	int instanced = cols->inst_key[0] != '\0';
	int found = series_columns_find(cols, field) > 0;
	struct tierseries_query q = {c->arg[0], c->arg[1], field,
	                             instance,  instanced, csvread_header(r)};
	uint64_t rows = 0;
	char msg[1200], list[900];
	if (series_buckets_init(&bk, rg) < 0) {
		http_reply_error(c->req, 500, "out of memory");
		return;
	}
	enum tier t = tierseries_pick(dfd, c->arg[1], bk.width);
	if (tierseries_read(dfd, t, &q, rg, &bk, &rows, &found) < 0) {
		log_warn("http", "host %s: reading the %s tier of %s: %s", c->arg[0], tier_name(t),
		         c->arg[1], strerror(errno));
		series_buckets_free(&bk);
		http_reply_error(c->req, 500, "cannot read the metric's file");
		return;
	}
	if (!found) {
		api_no_field(c, field, cols);
	} else if (instance && instanced && rows == 0 && !api_has_string(known, instance)) {
		api_join(known, list, sizeof list);
		snprintf(msg, sizeof msg, "no such instance: %s (instances: %s)", instance, list);
		http_reply_error(c->req, 404, msg);
	} else {
		http_reply_json(c->req, 200,
		                json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:o, s:I}",
		                          "host", c->arg[0], "metric", c->arg[1], "field", field,
		                          "instance",
		                          instance ? json_string(instance) : json_null(), "from",
		                          (json_int_t)rg->from, "to", (json_int_t)rg->to,
		                          "bucket_ms", (json_int_t)bk.width, "tier", tier_name(t),
		                          "points", api_points(&bk), "rows", (json_int_t)rows));
	}
	series_buckets_free(&bk);
}

/* GET /api/v1/hosts/<name>/series/<metric>: one field over a range. */
static void api_series(struct api_call *c)
{
	json_t *host, *known = NULL;
	int dfd;
	struct series_range rg;
	struct series_columns cols;
	const char *err, *instance;
	if (api_host_lookup(c, &host, &dfd) < 0)
		return;
	struct csvread *r = NULL;
	if (!util_valid_key(c->arg[1])) {
		http_reply_error(c->req, 400, "invalid metric name");
		goto out;
	}
	if (series_range_parse(api_param(c, "from"), api_param(c, "to"), api_param(c, "points"),
	                       util_now_ms(), &rg, &err) < 0) {
		http_reply_error(c->req, 400, err);
		goto out;
	}
	r = api_open_metric(dfd, c->arg[1], host, &cols);
	if (!r) {
		int e = errno;
		char name[PROTO_KEY_MAX + 8];
		snprintf(name, sizeof name, "%s.csv", c->arg[1]);
		if (e == EINVAL)
			log_warn("http", "host %s: opening %s: not a metric file", c->arg[0], name);
		else if (e != ENOENT)
			api_log_unread(c, name, e);
		http_reply_error(c->req, e == ENOENT ? 404 : 500,
		                 e == ENOENT ? "no such metric" : "cannot read the metric's file");
		goto out;
	}
	const char *field = api_param(c, "field") ? api_param(c, "field") : cols.fields[0];
	if (!util_valid_key(field)) {
		http_reply_error(c->req, 400, "invalid field name");
		goto out;
	}
	if (api_pick_instance(c, r, host, &cols, &instance, &known) < 0)
		goto out;
	api_series_reply(c, dfd, r, field, &cols, instance, known, &rg);
out:
	csvread_close(r);
	if (dfd >= 0)
		close(dfd);
	json_decref(known);
	json_decref(host);
}

/* One ranked host as JSON; NULL if it cannot be built. */
static json_t *api_rank_json(const struct rank_entry *e, enum rank_agg agg)
{
	return json_pack("{s:s, s:o, s:o, s:o, s:s, s:I}", "host", e->host, "value",
	                 json_number(e->value), "instance",
	                 e->instanced ? json_string(e->instance) : json_null(), "time",
	                 agg == RANK_AVG ? json_null() : json_integer((json_int_t)e->time), "tier",
	                 tier_name(e->tier), "rows", (json_int_t)e->rows);
}

/* The first n entries as a JSON array; NULL if it cannot be built. */
static json_t *api_rank_array(const struct rank_entry *e, size_t n, enum rank_agg agg)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_push(arr, api_rank_json(&e[i], agg)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	return arr;
}

/* Hosts ranked by one thread: names[from, to) into e[from...], packed. */
struct api_rank_job {
	struct api_call *c;
	const struct rank_query *q;
	const char **names;
	size_t from, to;
	struct rank_entry *e;
	size_t n, unread; /* ranked, and hosts whose files could not be read */
};

/* Rank the job's hosts. */
static void *api_rank_run(void *arg)
{
	struct api_rank_job *j = arg;
	struct api_call *c = j->c;
	for (size_t i = j->from; i < j->to; i++) {
		const char *name = j->names[i];
		int dfd = safefs_dir_open(registry_hosts_fd(c->h->srv->registry), name, 0);
		if (dfd < 0) {
			if (errno != ENOENT) {
				char why[64];
				log_warn("http", "host %s: %s/hosts/%s%s%s: not read", name,
				         c->h->srv->cfg->server.data_dir, name,
				         safefs_refused(errno) ? " " : ": ",
				         safefs_why(errno, why, sizeof why));
				j->unread++;
			}
			continue;
		}
		int rc = rank_host(dfd, name, c->arg[0], c->arg[1], j->q, &j->e[j->from + j->n]);
		close(dfd);
		if (rc < 0)
			j->unread++;
		else
			j->n += (size_t)rc;
	}
	return NULL;
}

/* Rank every listed host with a folder into e (room for every host):
 * the count ranked; *unread counts hosts whose files could not be read
 * (logged). A large fleet is split over API_RANK_THREADS threads: the
 * work is reading files, and a query waits for all of it. */
#define API_RANK_THREADS 2
#define API_RANK_SPLIT   256
static size_t api_rank_hosts(struct api_call *c, json_t *hosts, const struct rank_query *q,
                             struct rank_entry *e, size_t *unread)
{
	size_t i, m = 0;
	json_t *h;
	*unread = 0;
	const char **names = malloc((json_array_size(hosts) + 1) * sizeof *names);
	if (!names) {
		*unread = json_array_size(hosts);
		return 0;
	}
	json_array_foreach(hosts, i, h)
	{
		const char *name = json_string_value(json_object_get(h, "name"));
		if (name && util_valid_name(name))
			names[m++] = name;
	}
	struct api_rank_job jobs[API_RANK_THREADS];
	pthread_t tid[API_RANK_THREADS];
	int started[API_RANK_THREADS] = {0};
	size_t nj = m >= API_RANK_SPLIT ? API_RANK_THREADS : 1;
	for (size_t k = 0; k < nj; k++)
		jobs[k] = (struct api_rank_job){c, q, names, m * k / nj, m * (k + 1) / nj, e, 0, 0};
	for (size_t k = 1; k < nj; k++)
		started[k] = pthread_create(&tid[k], NULL, api_rank_run, &jobs[k]) == 0;
	api_rank_run(&jobs[0]);
	size_t n = 0;
	for (size_t k = 0; k < nj; k++) {
		if (k > 0 && started[k])
			pthread_join(tid[k], NULL);
		else if (k > 0)
			api_rank_run(&jobs[k]); /* no thread: here */
		memmove(&e[n], &e[jobs[k].from], jobs[k].n * sizeof *e);
		n += jobs[k].n;
		*unread += jobs[k].unread;
	}
	free(names);
	return n;
}

/* GET /api/v1/fleet/<metric>/<field>: the hosts ranked by a field over a
 * range, from each host's coarsest tier. */
static void api_fleet(struct api_call *c)
{
	struct rank_query q;
	const char *err;
	if (!util_valid_key(c->arg[0])) {
		http_reply_error(c->req, 400, "invalid metric name");
		return;
	}
	if (!util_valid_key(c->arg[1])) {
		http_reply_error(c->req, 400, "invalid field name");
		return;
	}
	if (rank_query_parse(api_param(c, "since"), api_param(c, "from"), api_param(c, "to"),
	                     api_param(c, "agg"), api_param(c, "top"), util_now_ms(), &q,
	                     &err) < 0) {
		http_reply_error(c->req, 400, err);
		return;
	}
	json_t *hosts = host_json_all(c->h->srv->registry);
	size_t total = json_array_size(hosts), unread;
	struct rank_entry *e = hosts ? calloc(total ? total : 1, sizeof *e) : NULL;
	if (!e) {
		json_decref(hosts);
		http_reply_error(c->req, 500, "cannot list the hosts");
		return;
	}
	size_t n = api_rank_hosts(c, hosts, &q, e, &unread);
	json_decref(hosts);
	rank_sort(e, n, q.agg);
	json_t *top = api_rank_array(e, n < q.top ? n : q.top, q.agg);
	free(e);
	if (!top) {
		http_reply_error(c->req, 500, "out of memory");
		return;
	}
	http_reply_json(c->req, 200,
	                json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "metric",
	                          c->arg[0], "field", c->arg[1], "agg", rank_agg_name(q.agg),
	                          "from", (json_int_t)q.from, "to", (json_int_t)q.to, "hosts",
	                          (json_int_t)total, "ranked", (json_int_t)n, "unread",
	                          (json_int_t)unread, "top", top));
}

/* POST /api/v1/hosts/<name>/poll: ask the host's agent for a sample now. */
static void api_poll(struct api_call *c)
{
	if (!util_valid_name(c->arg[0])) {
		http_reply_error(c->req, 400, "invalid host name");
		return;
	}
	struct session_ref ref;
	int rc = registry_session(c->h->srv->registry, c->arg[0], &ref);
	if (rc == -1) {
		http_reply_error(c->req, 404, "no such host");
		return;
	}
	if (rc == -2 || ref.worker < 0 || ref.worker >= c->h->srv->nworkers) {
		http_reply_error(c->req, 409, "host is not connected");
		return;
	}
	worker_post_poll(c->h->srv->workers[ref.worker], ref.id);
	http_reply_json(c->req, 202, json_pack("{s:s, s:b}", "host", c->arg[0], "polled", 1));
}

/* POST /api/v1/hosts/<name>/forget: stop listing a host that is not
 * connected, now and at later starts, until it reports again. */
static void api_forget(struct api_call *c)
{
	if (!util_valid_name(c->arg[0])) {
		http_reply_error(c->req, 400, "invalid host name");
		return;
	}
	int rc = fleet_forget(c->h->srv->registry, c->h->srv->cfg->server.data_dir, c->arg[0]);
	if (rc == -1)
		http_reply_error(c->req, 404, "no such host");
	else if (rc == -2)
		http_reply_error(c->req, 409, "host is connected");
	else if (rc == -3)
		http_reply_error(c->req, 500,
		                 "forgotten until the server restarts: its folder "
		                 "could not be marked");
	else
		http_reply_json(c->req, 200,
		                json_pack("{s:s, s:b}", "host", c->arg[0], "forgotten", 1));
}

/* One row of alarms.csv as JSON; NULL when it is not such a row. */
static json_t *api_alarm_row_json(const char *line, size_t len)
{
	char out[4096];
	char *f[12];
	uint64_t t;
	if (len >= sizeof out || csvread_split(line, len, out, f, 12) != 10 ||
	    csvread_time(f[0], strlen(f[0]), &t) < 0)
		return NULL;
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "time",
	                 (json_int_t)t, "host", f[1], "name", f[2], "instance", f[3], "level", f[4],
	                 "state", f[5], "message", f[7], "origin", f[9], "value",
	                 f[6][0] ? json_number(strtod(f[6], NULL)) : json_null(), "duration_s",
	                 f[8][0] ? json_number(strtod(f[8], NULL)) : json_null());
}

/* The last n rows of <data_dir>/alarms.csv, newest first; NULL if the
 * list cannot be built. Rows that are not alarm rows are left out. */
static json_t *api_recent_alarms(struct api_call *c, size_t n)
{
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	char why[64];
	struct csvread *r = csvread_open(registry_data_fd(c->h->srv->registry), "alarms.csv");
	int err = errno;
	if (!r && err != ENOENT)
		log_warn("http", "%s/alarms.csv%s%s: not read", c->h->srv->cfg->server.data_dir,
		         safefs_refused(err) ? " " : ": ", safefs_why(err, why, sizeof why));
	const char *line;
	size_t len;
	off_t next;
	for (off_t off = r ? csvread_tail(r, n) : 0;
	     r && csvread_line(r, off, &line, &len, &next) > 0; off = next) {
		json_t *e = line ? api_alarm_row_json(line, len) : NULL;
		if (e && json_array_insert_new(arr, 0, e) < 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	csvread_close(r);
	return arr;
}

/* GET /api/v1/alarms: every host's active alarms, and the last fires and
 * resolves. */
static void api_alarms(struct api_call *c)
{
	http_reply_json(c->req, 200,
	                json_pack("{s:o, s:o}", "active", registry_alarms_json(c->h->srv->registry),
	                          "recent", api_recent_alarms(c, API_RECENT)));
}

/* The housekeeper's counters, the bytes under hosts/ and the cap in force;
 * null when it does not run or out of memory. */
static json_t *api_storage(const struct server *srv)
{
	if (!srv->housekeep)
		return json_null();
	json_t *o = json_pack("{s:I, s:I}", "bytes", (json_int_t)housekeep_bytes(srv->housekeep),
	                      "max_bytes", (json_int_t)housekeep_cap(srv->housekeep));
	for (int k = 0; o && k < HKC_COUNT; k++)
		if (json_put(o, housekeep_counter_names[k],
		             json_integer((json_int_t)housekeep_counter(
		                 srv->housekeep, (enum housekeep_counter)k))) < 0) {
			json_decref(o);
			o = NULL;
		}
	return o ? o : json_null();
}

/* Each remote_write receiver's counters and lag: {name: {...}}; null
 * when out of memory. */
static json_t *api_remote_write(const struct server *srv)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < remote_write_count(srv->remote_write); i++) {
		json_t *r = json_pack("{s:f}", "lag_s", remote_write_lag(srv->remote_write, i));
		for (int k = 0; r && k < RWC_COUNT; k++)
			if (json_put(r, remote_write_counter_names[k],
			             json_integer((json_int_t)remote_write_counter(
			                 srv->remote_write, i, (enum remote_write_counter)k))) <
			    0) {
				json_decref(r);
				r = NULL;
			}
		if (!r || json_put(o, remote_write_name(srv->remote_write, i), r) < 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o ? o : json_null();
}

/* GET /api/v1/stats: the server's version, uptime, hosts and the sum of
 * each worker counter. */
static void api_stats(struct api_call *c)
{
	struct server *srv = c->h->srv;
	json_t *hosts = host_json_all(srv->registry);
	if (!hosts) {
		http_reply_error(c->req, 500, "cannot list the hosts");
		return;
	}
	json_int_t up = 0, sessions = 0;
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h)
	{
		up += strcmp(json_string_value(json_object_get(h, "state")), "up") == 0;
	}
	json_int_t total = (json_int_t)json_array_size(hosts);
	json_decref(hosts);
	json_t *counters = json_object();
	for (int k = 0; counters && k < WC_COUNT; k++) {
		uint64_t sum = 0;
		for (int w = 0; w < srv->nworkers; w++)
			sum += worker_counter(srv->workers[w], k);
		if (json_put(counters, worker_counter_names[k], json_integer((json_int_t)sum)) <
		    0) {
			json_decref(counters);
			counters = NULL;
		}
	}
	for (int w = 0; w < srv->nworkers; w++)
		sessions += worker_sessions(srv->workers[w]);
	http_reply_json(
	    c->req, 200,
	    json_pack("{s:s, s:I, s:I, s:i, s:{s:I, s:I, s:I}, s:I, s:o, s:o, s:o}", "version",
	              PIMON_VERSION, "started", (json_int_t)c->h->srv->started_ms, "uptime_s",
	              (json_int_t)((util_mono_ms() - c->h->srv->started_mono_ms) / 1000), "workers",
	              srv->nworkers, "hosts", "total", total, "up", up, "down", total - up,
	              "sessions", sessions, "counters", counters, "storage", api_storage(srv),
	              "remote_write", api_remote_write(srv)));
}

/* GET /api/v1/workers: sessions and counters of each worker. */
static void api_workers(struct api_call *c)
{
	struct server *srv = c->h->srv;
	json_t *arr = json_array();
	for (int i = 0; arr && i < srv->nworkers; i++) {
		const struct worker *w = srv->workers[i];
		json_t *o =
		    json_pack("{s:i, s:I}", "id", i, "sessions", (json_int_t)worker_sessions(w));
		for (int k = 0; o && k < WC_COUNT; k++)
			if (json_put(o, worker_counter_names[k],
			             json_integer((json_int_t)worker_counter(w, k))) < 0) {
				json_decref(o);
				o = NULL;
			}
		if (json_push(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	http_reply_json(c->req, 200, arr);
}

static const char *const api_no_params[] = {NULL};
static const char *const api_series_params[] = {"field", "instance", "from", "to", "points", NULL};
static const char *const api_fleet_params[] = {"since", "from", "to", "agg", "top", NULL};

static const struct api_route api_routes[] = {
    {"hosts", EVHTTP_REQ_GET, api_no_params, api_hosts},
    {"hosts/*", EVHTTP_REQ_GET, api_no_params, api_host},
    {"hosts/*/metrics", EVHTTP_REQ_GET, api_no_params, api_metrics},
    {"hosts/*/series/*", EVHTTP_REQ_GET, api_series_params, api_series},
    {"hosts/*/poll", EVHTTP_REQ_POST, api_no_params, api_poll},
    {"hosts/*/forget", EVHTTP_REQ_POST, api_no_params, api_forget},
    {"fleet/*/*", EVHTTP_REQ_GET, api_fleet_params, api_fleet},
    {"alarms", EVHTTP_REQ_GET, api_no_params, api_alarms},
    {"stats", EVHTTP_REQ_GET, api_no_params, api_stats},
    {"workers", EVHTTP_REQ_GET, api_no_params, api_workers},
};

/* Match the path's segments against a route's pattern, "*" capturing. */
static int api_match(const char *pattern, char **seg, int nseg, const char **args)
{
	char pat[64];
	char *save, *p;
	int i = 0, a = 0;
	snprintf(pat, sizeof pat, "%s", pattern);
	for (p = strtok_r(pat, "/", &save); p; p = strtok_r(NULL, "/", &save), i++) {
		if (i >= nseg || (strcmp(p, "*") != 0 && strcmp(p, seg[i]) != 0))
			return 0;
		if (strcmp(p, "*") == 0 && a < API_ARGS)
			args[a++] = seg[i];
	}
	return i == nseg;
}

/* Split the path after /api/v1/ into decoded segments; the count, -1
 * when there are too many, -2 for a segment that decodes to a NUL or to
 * bytes that are not UTF-8, -3 when out of memory. */
static int api_split(const char *rest, char **seg)
{
	int n = 0;
	for (;;) {
		const char *end = strchr(rest, '/');
		size_t len = end ? (size_t)(end - rest) : strlen(rest);
		if (n == API_SEGMENTS)
			return -1;
		int rc = http_decode(rest, len, 0, &seg[n]);
		if (rc < 0)
			return rc == -1 ? -2 : -3;
		n++;
		if (!end)
			return n;
		rest = end + 1;
	}
}

/* Whether a route takes the parameter key, not yet given in the call. */
static int api_param_new(struct api_call *c, const char *const *params, const char *key)
{
	int known = 0;
	for (const char *const *p = params; *p; p++)
		known |= strcmp(*p, key) == 0;
	return known && !api_param(c, key);
}

/* Decode one "key=value" of len bytes at s into the call. 0, or -1 after
 * replying 400 (malformed, a NUL or bytes not UTF-8, unknown or repeated)
 * or 500. */
static int api_add_param(struct api_call *c, const char *const *params, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	char *key = NULL, *value = NULL, msg[160];
	if (!eq || eq == s) {
		http_reply_error(c->req, 400, "malformed query string");
		return -1;
	}
	int rc = http_decode(s, (size_t)(eq - s), 1, &key);
	if (rc == 0)
		rc = http_decode(eq + 1, len - (size_t)(eq - s) - 1, 1, &value);
	if (rc < 0) {
		free(key);
		http_reply_error(c->req, rc == -1 ? 400 : 500,
		                 rc == -1 ? "query parameter with a NUL byte or not UTF-8"
		                          : "out of memory");
		return -1;
	}
	if (c->nparams == API_PARAMS || !api_param_new(c, params, key)) {
		snprintf(msg, sizeof msg, "unknown or repeated parameter: %s",
		         strlen(key) <= 64 ? key : "?");
		free(key);
		free(value);
		http_reply_error(c->req, 400, msg);
		return -1;
	}
	c->key[c->nparams] = key;
	c->value[c->nparams++] = value;
	return 0;
}

/* Parse the query string ("a=1&b=2", as libevent's parser takes it); reply
 * and return -1 for a malformed one, a NUL or bytes not UTF-8 in it, an
 * unknown or a repeated parameter. */
static int api_parse_query(struct api_call *c, const char *const *params)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		if (api_add_param(c, params, q, len) < 0)
			return -1;
		q = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* Find the route and check method and query: the route to run, or NULL
 * after replying 404, 405 or 400. */
static const struct api_route *api_route_find(struct api_call *c, char **seg, int nseg)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(c->req);
	if (cmd == EVHTTP_REQ_HEAD)
		cmd = EVHTTP_REQ_GET;
	const struct api_route *path_match = NULL;
	for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
		const struct api_route *rt = &api_routes[i];
		if (nseg < 0 || !api_match(rt->pattern, seg, nseg, c->arg))
			continue;
		path_match = rt;
		if (rt->method == cmd)
			return api_parse_query(c, rt->params) == 0 ? rt : NULL;
	}
	if (!path_match) {
		http_reply_error(c->req, 404, "no such endpoint");
		return NULL;
	}
	int post = path_match->method == EVHTTP_REQ_POST;
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow",
	                  post ? "POST" : "GET, HEAD");
	http_reply_error(c->req, 405,
	                 post ? "this endpoint takes POST" : "this endpoint takes GET");
	return NULL;
}

/* /api/...: answer, or return 0 for a path outside the API. */
int http_api_handle(struct http *h, struct evhttp_request *req, const char *path)
{
	if (strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0)
		return 0;
	struct api_call c = {.h = h, .req = req};
	char *seg[API_SEGMENTS] = {NULL};
	int nseg = -1;
	if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0)
		nseg = api_split(path + strlen(API_PREFIX), seg);
	if (nseg == -2)
		http_reply_error(req, 400, "path segment with a NUL byte or not UTF-8");
	else if (nseg == -3)
		http_reply_error(req, 500, "out of memory");
	const struct api_route *rt = nseg >= -1 ? api_route_find(&c, seg, nseg) : NULL;
	if (rt)
		rt->handle(&c);
	for (int i = 0; i < c.nparams; i++) {
		free(c.key[i]);
		free(c.value[i]);
	}
	for (int i = 0; i < API_SEGMENTS; i++)
		free(seg[i]);
	return 1;
}
