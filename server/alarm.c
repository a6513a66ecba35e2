/* Alarm rules, alarm books and their CSV rows. */
#include "alarm.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvread.h"
#include "json_util.h"
#include "log.h"
#include "store.h"

enum rule_op { OP_GT, OP_GE, OP_LT, OP_LE };

struct rule {
	char name[PROTO_KEY_MAX + 1];
	char group[PROTO_KEY_MAX + 1];
	char field[PROTO_KEY_MAX + 1];
	char metric[2 * PROTO_KEY_MAX + 2]; /* "group.field" */
	enum rule_op op;
	double value;
	double clear; /* NAN: resolves when the comparison is false */
	uint64_t for_ms;
	int level;
	char **hosts; /* fnmatch patterns; none: every host */
	size_t nhosts;
};

struct ruleset {
	atomic_int refs;
	size_t n;
	struct rule *rules;
};

enum entry_kind { KIND_RULE, KIND_DOWN, KIND_AGENT };

/* One alarm of a host: active (level > 0), or a rule waiting out `for`. */
struct entry {
	enum entry_kind kind;
	char name[PROTO_KEY_MAX + 1];
	char instance[PROTO_INST_MAX + 1];
	char metric[2 * PROTO_KEY_MAX + 2]; /* rules: what they watch */
	char origin[80];                    /* of the fire */
	int level;                          /* 0: not fired yet */
	uint64_t since_ms;                  /* fired at */
	uint64_t pending_ms;                /* the comparison holds since */
	double value;
	char message[PROTO_TEXT_MAX + 1];
};

struct alarm_book {
	struct entry *e;
	size_t n, cap;
	uint64_t run_id; /* the last agent alarm recorded: its run and seq */
	uint64_t seq;
};

struct rules_holder {
	pthread_mutex_t lock;
	struct ruleset *rs; /* MUST hold lock */
	atomic_uint_fast64_t gen;
};

static const char *const level_names[] = {"ok", "warning", "critical", "unknown"};

/* Name of a level. */
const char *alarm_level_name(int level)
{
	return level >= 0 && level <= 3 ? level_names[level] : "unknown";
}

/* The level called name, or -1. */
static int level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(level_names[i], name) == 0)
			return i;
	return -1;
}

/* One alarms.csv line. */
void alarm_csv_line(const struct alarm_event *ev, char *buf, size_t size)
{
	char host[160], name[80], inst[300], msg[600], value[64] = "", duration[64] = "";
	char origin[160];
	store_csv_field(host, sizeof host, ev->host);
	store_csv_field(name, sizeof name, ev->name);
	store_csv_field(inst, sizeof inst, ev->instance);
	store_csv_field(msg, sizeof msg, ev->message);
	store_csv_field(origin, sizeof origin, ev->origin);
	if (!isnan(ev->value))
		snprintf(value, sizeof value, "%.10g", ev->value);
	if (!ev->firing)
		snprintf(duration, sizeof duration, "%.3f", ev->duration_s);
	snprintf(buf, size, "%" PRIu64 ",%s,%s,%s,%s,%s,%s,%s,%s,%s", ev->time_ms, host, name, inst,
	         alarm_level_name(ev->level), ev->firing ? "firing" : "resolved", value, msg,
	         duration, origin);
}

/* Compile the configuration's rules. */
struct ruleset *ruleset_create(const struct pimon_config *cfg)
{
	struct ruleset *rs = calloc(1, sizeof *rs);
	if (!rs)
		return NULL;
	atomic_init(&rs->refs, 1);
	rs->rules = calloc(cfg->server.nalarms ? cfg->server.nalarms : 1, sizeof *rs->rules);
	if (!rs->rules) {
		free(rs);
		return NULL;
	}
	for (size_t i = 0; i < cfg->server.nalarms; i++) {
		const struct pimon_rule *c = &cfg->server.alarms[i];
		struct rule *r = &rs->rules[rs->n++];
		const char *dot = strchr(c->metric, '.');
		snprintf(r->name, sizeof r->name, "%s", c->name);
		snprintf(r->metric, sizeof r->metric, "%s", c->metric);
		snprintf(r->group, sizeof r->group, "%.*s", (int)(dot - c->metric), c->metric);
		snprintf(r->field, sizeof r->field, "%s", dot + 1);
		r->op = strcmp(c->op, ">") == 0    ? OP_GT
		        : strcmp(c->op, ">=") == 0 ? OP_GE
		        : strcmp(c->op, "<") == 0  ? OP_LT
		                                   : OP_LE;
		r->value = c->value;
		r->clear = c->clear;
		r->for_ms = (uint64_t)(c->for_s * 1000.0);
		r->level = level_parse(c->level);
		r->hosts = calloc(c->nhosts + 1, sizeof *r->hosts);
		if (!r->hosts) {
			ruleset_unref(rs);
			return NULL;
		}
		for (size_t j = 0; j < c->nhosts; j++) {
			r->hosts[j] = strdup(c->hosts[j]);
			if (!r->hosts[j]) {
				ruleset_unref(rs);
				return NULL;
			}
			r->nhosts++;
		}
	}
	return rs;
}

struct ruleset *ruleset_ref(struct ruleset *rs)
{
	atomic_fetch_add(&rs->refs, 1);
	return rs;
}

/* The last reference frees the rules. */
void ruleset_unref(struct ruleset *rs)
{
	if (!rs || atomic_fetch_sub(&rs->refs, 1) != 1)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		for (size_t j = 0; j < rs->rules[i].nhosts; j++)
			free(rs->rules[i].hosts[j]);
		free(rs->rules[i].hosts);
	}
	free(rs->rules);
	free(rs);
}

size_t ruleset_count(const struct ruleset *rs)
{
	return rs->n;
}

struct rules_holder *rules_holder_create(struct ruleset *rs)
{
	struct rules_holder *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->rs = rs;
	atomic_init(&h->gen, 1);
	return h;
}

void rules_holder_destroy(struct rules_holder *h)
{
	if (!h)
		return;
	ruleset_unref(h->rs);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Swap in new rules; readers pick them up at their next batch. */
void rules_holder_set(struct rules_holder *h, struct ruleset *rs)
{
	pthread_mutex_lock(&h->lock);
	struct ruleset *old = h->rs;
	h->rs = rs;
	atomic_fetch_add(&h->gen, 1);
	pthread_mutex_unlock(&h->lock);
	ruleset_unref(old);
}

/* The caller's cached rules, refreshed when the generation moved. */
struct ruleset *rules_holder_get(struct rules_holder *h, struct ruleset **cached, uint64_t *gen)
{
	uint64_t g = atomic_load(&h->gen);
	if (*cached && *gen == g)
		return *cached;
	pthread_mutex_lock(&h->lock);
	struct ruleset *rs = ruleset_ref(h->rs);
	g = atomic_load(&h->gen);
	pthread_mutex_unlock(&h->lock);
	ruleset_unref(*cached);
	*cached = rs;
	*gen = g;
	return rs;
}

struct alarm_book *alarm_book_create(void)
{
	return calloc(1, sizeof(struct alarm_book));
}

void alarm_book_free(struct alarm_book *b)
{
	if (!b)
		return;
	free(b->e);
	free(b);
}

/* A deep copy of the book. */
struct alarm_book *alarm_book_copy(const struct alarm_book *b)
{
	struct alarm_book *c = malloc(sizeof *c);
	if (!c)
		return NULL;
	*c = *b;
	c->e = NULL;
	if (b->cap) {
		c->e = malloc(b->cap * sizeof *c->e);
		if (!c->e) {
			free(c);
			return NULL;
		}
		memcpy(c->e, b->e, b->n * sizeof *c->e);
	}
	return c;
}

/* Put a saved copy back in place. */
void alarm_book_restore(struct alarm_book *b, struct alarm_book *saved)
{
	free(b->e);
	*b = *saved;
	free(saved);
}

/* The entry of name and instance, or NULL. */
static struct entry *book_find(struct alarm_book *b, const char *name, const char *instance)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->e[i].name, name) == 0 && strcmp(b->e[i].instance, instance) == 0)
			return &b->e[i];
	return NULL;
}

/* A new, empty entry; NULL on out of memory (logged). */
static struct entry *book_add(struct alarm_book *b, enum entry_kind kind, const char *name,
                              const char *instance)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4;
		struct entry *e = realloc(b->e, cap * sizeof *e);
		if (!e) {
			log_err("alarm", "out of memory: alarm %s not tracked", name);
			return NULL;
		}
		b->e = e;
		b->cap = cap;
	}
	struct entry *e = &b->e[b->n++];
	memset(e, 0, sizeof *e);
	e->kind = kind;
	e->value = NAN;
	snprintf(e->name, sizeof e->name, "%s", name);
	snprintf(e->instance, sizeof e->instance, "%s", instance);
	return e;
}

/* Forget an entry (resolved, or no longer waiting). */
static void book_remove(struct alarm_book *b, struct entry *e)
{
	size_t i = (size_t)(e - b->e);
	b->e[i] = b->e[--b->n];
}

/* Hand a fire (or change of level) of e to emit, or its resolve with the
 * value, message and origin of what resolved it. */
static void emit_event(const struct entry *e, const char *host, uint64_t t, int firing,
                       double value, const char *message, const char *origin, alarm_emit_fn emit,
                       void *arg)
{
	struct alarm_event ev = {
	    .time_ms = t,
	    .host = host,
	    .name = e->name,
	    .instance = e->instance,
	    .level = e->level,
	    .firing = firing,
	    .value = value,
	    .message = message,
	    .duration_s = !firing && t > e->since_ms ? (double)(t - e->since_ms) / 1000.0 : 0.0,
	    .origin = origin,
	};
	emit(arg, &ev);
}

/* Hand a fire (or change of level) of e to emit. */
static void emit_fire(const struct entry *e, const char *host, uint64_t t, alarm_emit_fn emit,
                      void *arg)
{
	emit_event(e, host, t, 1, e->value, e->message, e->origin, emit, arg);
}

/* Hand the resolve of e to emit. */
static void emit_resolve(const struct entry *e, const char *host, uint64_t t, double value,
                         const char *message, const char *origin, alarm_emit_fn emit, void *arg)
{
	emit_event(e, host, t, 0, value, message, origin, emit, arg);
}

/* Does v compare true against the rule's threshold? */
static int rule_holds(const struct rule *r, double v)
{
	switch (r->op) {
	case OP_GT:
		return v > r->value;
	case OP_GE:
		return v >= r->value;
	case OP_LT:
		return v < r->value;
	case OP_LE:
		return v <= r->value;
	}
	return 0;
}

/* Has a firing rule's value come back far enough to resolve? */
static int rule_clears(const struct rule *r, double v)
{
	if (isnan(r->clear))
		return !rule_holds(r, v);
	return r->op == OP_GT || r->op == OP_GE ? v <= r->clear : v >= r->clear;
}

/* Does the rule apply to host? */
static int rule_matches(const struct rule *r, const char *host)
{
	if (r->nhosts == 0)
		return 1;
	for (size_t i = 0; i < r->nhosts; i++)
		if (fnmatch(r->hosts[i], host, 0) == 0)
			return 1;
	return 0;
}

static const char *const op_names[] = {">", ">=", "<", "<="};

/* A rule's message: what the value is against the threshold. */
static void rule_message(const struct rule *r, const char *instance, double v, char *buf,
                         size_t size)
{
	snprintf(buf, size, "%s%s%s%s is %.6g (%s %g)", r->metric, instance[0] ? " [" : "",
	         instance, instance[0] ? "]" : "", v, op_names[r->op], r->value);
}

/* One row's value against one rule. */
static void eval_value(struct alarm_book *b, const struct rule *r, const char *host,
                       const char *instance, uint64_t t, double v, alarm_emit_fn emit, void *arg)
{
	struct entry *e = book_find(b, r->name, instance);
	if (e && e->kind != KIND_RULE)
		return; /* an agent alarm of the same name owns it */
	if (e && e->level) {
		e->value = v;
		if (!rule_clears(r, v))
			return;
		char msg[PROTO_TEXT_MAX + 1];
		rule_message(r, instance, v, msg, sizeof msg);
		emit_resolve(e, host, t, v, msg, e->origin, emit, arg);
		book_remove(b, e);
		return;
	}
	if (!rule_holds(r, v)) {
		if (e)
			book_remove(b, e);
		return;
	}
	if (!e) {
		e = book_add(b, KIND_RULE, r->name, instance);
		if (!e)
			return;
		e->pending_ms = t;
		snprintf(e->metric, sizeof e->metric, "%s", r->metric);
	}
	if (t < e->pending_ms || t - e->pending_ms < r->for_ms)
		return;
	e->level = r->level;
	e->since_ms = t;
	e->value = v;
	snprintf(e->origin, sizeof e->origin, "rule:%s", r->metric);
	rule_message(r, instance, v, e->message, sizeof e->message);
	emit_fire(e, host, t, emit, arg);
}

/* Rules that are gone (a reload) resolve their alarms on this group. */
static void eval_removed(struct alarm_book *b, const struct ruleset *rs, const char *host,
                         const struct proto_group *g, alarm_emit_fn emit, void *arg)
{
	size_t glen = strlen(g->metric);
	for (size_t i = 0; i < b->n;) {
		struct entry *e = &b->e[i];
		int ours = e->kind == KIND_RULE && strncmp(e->metric, g->metric, glen) == 0 &&
		           e->metric[glen] == '.';
		int kept = 0;
		for (size_t j = 0; ours && j < rs->n && !kept; j++)
			kept = strcmp(rs->rules[j].name, e->name) == 0 &&
			       strcmp(rs->rules[j].metric, e->metric) == 0;
		if (!ours || kept) {
			i++;
			continue;
		}
		if (e->level)
			emit_resolve(e, host,
			             g->nrows ? g->rows[g->nrows - 1].time_ms : e->since_ms, NAN,
			             "rule removed", e->origin, emit, arg);
		book_remove(b, e);
	}
}

/* Check one group of a batch against every rule on its metric. */
void alarm_eval_group(struct alarm_book *b, const struct ruleset *rs, const char *host,
                      const struct proto_group *g, alarm_emit_fn emit, void *arg)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rules[i];
		if (strcmp(r->group, g->metric) != 0 || !rule_matches(r, host))
			continue;
		int f = -1;
		for (unsigned j = 0; j < g->nfields; j++)
			if (strcmp(g->fields[j], r->field) == 0)
				f = (int)j;
		if (f < 0)
			continue;
		for (uint32_t k = 0; k < g->nrows; k++) {
			double v = g->rows[k].values[f];
			if (!isnan(v))
				eval_value(b, r, host, g->rows[k].instance, g->rows[k].time_ms, v,
				           emit, arg);
		}
	}
	if (b->n)
		eval_removed(b, rs, host, g, emit, arg);
}

/* Heartbeats stopped or the session ended: host_down fires once. */
void alarm_host_down(struct alarm_book *b, const char *host, uint64_t now_ms, const char *why,
                     alarm_emit_fn emit, void *arg)
{
	char msg[PROTO_TEXT_MAX + 1];
	if (strcmp(why, "timeout") == 0)
		snprintf(msg, sizeof msg, "no heartbeat: host is not answering");
	else if (strcmp(why, "absent") == 0)
		snprintf(msg, sizeof msg,
		         "not back within the heartbeat timeout of the server's start");
	else
		snprintf(msg, sizeof msg, "session ended: %s", why);
	alarm_server_fire(b, host, ALARM_HOST_DOWN, PROTO_LEVEL_CRITICAL, now_ms, msg, emit, arg);
}

/* A server-made alarm (origin "server") fires at level with message, once
 * while it is active. */
void alarm_server_fire(struct alarm_book *b, const char *host, const char *name, uint8_t level,
                       uint64_t now_ms, const char *message, alarm_emit_fn emit, void *arg)
{
	if (book_find(b, name, ""))
		return;
	struct entry *e = book_add(b, KIND_DOWN, name, "");
	if (!e)
		return;
	e->level = level;
	e->since_ms = now_ms;
	snprintf(e->origin, sizeof e->origin, "server");
	snprintf(e->message, sizeof e->message, "%s", message);
	emit_fire(e, host, now_ms, emit, arg);
}

/* A server-made alarm resolves with message, if it is active. */
void alarm_server_resolve(struct alarm_book *b, const char *host, const char *name, uint64_t now_ms,
                          const char *message, alarm_emit_fn emit, void *arg)
{
	struct entry *e = book_find(b, name, "");
	if (!e || e->kind != KIND_DOWN)
		return;
	emit_resolve(e, host, now_ms, NAN, message, "server", emit, arg);
	book_remove(b, e);
}

/* Whether the alarm called name is active in the book. */
int alarm_book_has(const struct alarm_book *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->e[i].name, name) == 0 && b->e[i].level)
			return 1;
	return 0;
}

/* The host is back: host_down resolves with how long it was gone. */
void alarm_host_up(struct alarm_book *b, const char *host, uint64_t now_ms, alarm_emit_fn emit,
                   void *arg)
{
	struct entry *e = book_find(b, ALARM_HOST_DOWN, "");
	if (!e || e->kind != KIND_DOWN)
		return;
	char msg[128];
	snprintf(msg, sizeof msg, "back after %.1f s",
	         now_ms > e->since_ms ? (double)(now_ms - e->since_ms) / 1000.0 : 0.0);
	emit_resolve(e, host, now_ms, NAN, msg, "server", emit, arg);
	book_remove(b, e);
}

/* An agent alarm's new state. */
void alarm_agent(struct alarm_book *b, const char *host, uint64_t run_id,
                 const struct proto_alarm *a, alarm_emit_fn emit, void *arg)
{
	if (run_id == b->run_id && a->seq <= b->seq)
		return;
	b->run_id = run_id;
	b->seq = a->seq;
	char origin[64];
	snprintf(origin, sizeof origin, "%s:%016" PRIx64 ":%" PRIu64,
	         a->source == PROTO_ALARM_LOCAL ? "local" : "check", run_id, a->seq);
	struct entry *e = book_find(b, a->name, "");
	if (e && e->kind != KIND_AGENT)
		e = NULL; /* a rule of the same name: keep the two apart by instance */
	if (a->level == PROTO_LEVEL_OK) {
		if (e && e->level) {
			emit_resolve(e, host, a->time_ms, NAN, a->message, origin, emit, arg);
			book_remove(b, e);
		}
		return;
	}
	if (e && e->level == a->level)
		return;
	if (!e) {
		if (book_find(b, a->name, ""))
			return;
		e = book_add(b, KIND_AGENT, a->name, "");
		if (!e)
			return;
		e->since_ms = a->time_ms;
	}
	e->level = a->level;
	snprintf(e->origin, sizeof e->origin, "%s", origin);
	snprintf(e->message, sizeof e->message, "%s", a->message);
	emit_fire(e, host, a->time_ms, emit, arg);
}

/* Take the run and seq of an agent alarm's origin into the book. */
static void book_note_origin(struct alarm_book *b, const char *origin)
{
	uint64_t run, seq;
	if ((strncmp(origin, "check:", 6) == 0 || strncmp(origin, "local:", 6) == 0) &&
	    sscanf(origin + 6, "%" SCNx64 ":%" SCNu64, &run, &seq) == 2) {
		b->run_id = run;
		b->seq = seq;
	}
}

/* Replay one alarms.csv row. */
static void book_replay(struct alarm_book *b, char **f)
{
	uint64_t t;
	int level = level_parse(f[4]);
	if (csvread_time(f[0], strlen(f[0]), &t) < 0 || level < 0)
		return;
	book_note_origin(b, f[9]);
	struct entry *e = book_find(b, f[2], f[3]);
	if (strcmp(f[5], "resolved") == 0) {
		if (e)
			book_remove(b, e);
		return;
	}
	if (strcmp(f[5], "firing") != 0)
		return;
	if (!e) {
		enum entry_kind kind = strncmp(f[9], "rule:", 5) == 0 ? KIND_RULE
		                       : strcmp(f[9], "server") == 0  ? KIND_DOWN
		                                                      : KIND_AGENT;
		e = book_add(b, kind, f[2], f[3]);
		if (!e)
			return;
		e->since_ms = t;
		if (kind == KIND_RULE)
			snprintf(e->metric, sizeof e->metric, "%s", f[9] + 5);
	}
	e->level = level;
	e->value = f[6][0] ? strtod(f[6], NULL) : NAN;
	snprintf(e->message, sizeof e->message, "%s", f[7]);
	snprintf(e->origin, sizeof e->origin, "%s", f[9]);
}

/* Rebuild the book from the host's alarms.csv. */
int alarm_book_load(struct alarm_book *b, int dirfd, const char *name)
{
	struct csvread *r = csvread_open(dirfd, name);
	if (!r)
		return errno == ENOENT ? 0 : -1;
	const char *line;
	size_t len;
	off_t next;
	for (off_t off = csvread_data(r); csvread_line(r, off, &line, &len, &next) > 0;
	     off = next) {
		char out[2048];
		char *f[12];
		if (line && len < sizeof out && csvread_split(line, len, out, f, 12) == 10)
			book_replay(b, f);
	}
	csvread_close(r);
	return 0;
}

/* Append the active alarms to arr as JSON objects: 0, or -1 when one cannot be built. */
int alarm_book_json(const struct alarm_book *b, const char *host, json_t *arr)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct entry *e = &b->e[i];
		if (!e->level)
			continue;
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "host", host, "name",
		              e->name, "instance", e->instance, "level", alarm_level_name(e->level),
		              "state", "firing", "since", (json_int_t)e->since_ms, "message",
		              e->message, "origin", e->origin, "value", json_number(e->value));
		if (json_push(arr, o) < 0)
			return -1;
	}
	return 0;
}

/* Each active alarm, typed. */
void alarm_book_foreach(const struct alarm_book *b,
                        void (*fn)(void *arg, const struct alarm_active *a), void *arg)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct entry *e = &b->e[i];
		if (!e->level)
			continue;
		struct alarm_active a = {e->name,     e->instance, alarm_level_name(e->level),
		                         e->since_ms, e->value,    e->message,
		                         e->origin};
		fn(arg, &a);
	}
}

/* How many of the book's alarms are active. */
size_t alarm_book_active(const struct alarm_book *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		n += b->e[i].level != 0;
	return n;
}
