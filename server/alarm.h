/* Alarms: threshold rules checked on samples as they arrive, the built-in
 * host_down alarm, and the alarms agents send. Each host has an alarm book
 * (its active alarms, the rules waiting out their `for`, the last agent
 * alarm recorded), used under the host's lock. Every fire and resolve is
 * handed to a callback that records and notifies it. */
#ifndef PIMON_ALARM_H
#define PIMON_ALARM_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

/* Columns of alarms.csv, the server's and each host's. */
#define ALARM_CSV_HEADER "time,host,name,instance,level,state,value,message,duration_s,origin"

/* The name of the built-in alarm of a host whose heartbeats stopped. */
#define ALARM_HOST_DOWN     "host_down"
#define ALARM_NAME_CONFLICT "name_conflict"
/* The storage cap (server.storage.max_bytes), not age, deleted host data. */
#define ALARM_STORAGE_CUT "storage_retention_cut"

/* One fire or resolve. */
struct alarm_event {
	uint64_t time_ms;
	const char *host;
	const char *name;
	const char *instance; /* "" when the metric has none */
	int level;            /* enum proto_level: of the alarm, also when resolved */
	int firing;           /* 1 fired (or changed level), 0 resolved */
	double value;         /* NAN when there is none */
	const char *message;
	double duration_s; /* resolved: how long it was active; else 0 */
	const char
	    *origin; /* "rule:<metric>", "server", "check:<run>:<seq>", "local:<run>:<seq>" */
};

typedef void (*alarm_emit_fn)(void *arg, const struct alarm_event *ev);

/* Name of a level: "ok", "warning", "critical", "unknown". */
const char *alarm_level_name(int level);

/* The alarm event as one alarms.csv line (no newline) in buf. */
void alarm_csv_line(const struct alarm_event *ev, char *buf, size_t size);

/* The rules in force, compiled from server.alarms; shared by the workers
 * and replaced whole on reload. */
struct ruleset;

/* Compile the configuration's rules; NULL on out of memory. */
struct ruleset *ruleset_create(const struct pimon_config *cfg);
struct ruleset *ruleset_ref(struct ruleset *rs);
/* Drop a reference; the last frees it. Any thread. */
void ruleset_unref(struct ruleset *rs);
/* How many rules it holds. */
size_t ruleset_count(const struct ruleset *rs);

/* Where the workers find the rules in force. Replacing them takes a lock;
 * reading them costs one atomic load per batch while they are unchanged. */
struct rules_holder;
struct rules_holder *rules_holder_create(struct ruleset *rs); /* takes the reference */
void rules_holder_destroy(struct rules_holder *h);
/* Put rs (its reference taken) in force. Any thread. */
void rules_holder_set(struct rules_holder *h, struct ruleset *rs);
/* The rules in force: *cached (a reference the caller keeps, with *gen)
 * is replaced when they changed. Returns *cached. */
struct ruleset *rules_holder_get(struct rules_holder *h, struct ruleset **cached, uint64_t *gen);

struct alarm_book;

struct alarm_book *alarm_book_create(void);
void alarm_book_free(struct alarm_book *b);

/* A copy of b, to put back with alarm_book_restore when what changed it
 * could not be recorded; NULL on out of memory. */
struct alarm_book *alarm_book_copy(const struct alarm_book *b);
/* Make b what saved was, and free saved. */
void alarm_book_restore(struct alarm_book *b, struct alarm_book *saved);

/* Rebuild the book from a host's alarms.csv, the file name of folder dirfd
 * (AT_FDCWD: name is a path), never read through a link: its active alarms
 * and the last agent alarm recorded. A missing file is an empty book. 0, or
 * -1 with errno when the file cannot be read (ELOOP: a link). */
int alarm_book_load(struct alarm_book *b, int dirfd, const char *name);

/* Check a group of a batch against the rules: fire, resolve, or start or
 * stop waiting out a rule's `for`, row by row in the rows' time order. */
void alarm_eval_group(struct alarm_book *b, const struct ruleset *rs, const char *host,
                      const struct proto_group *g, alarm_emit_fn emit, void *arg);

/* A server-made alarm (origin "server", no instance): fire once while
 * active, resolve, and whether it is active. */
void alarm_server_fire(struct alarm_book *b, const char *host, const char *name, uint8_t level,
                       uint64_t now_ms, const char *message, alarm_emit_fn emit, void *arg);
void alarm_server_resolve(struct alarm_book *b, const char *host, const char *name, uint64_t now_ms,
                          const char *message, alarm_emit_fn emit, void *arg);
int alarm_book_has(const struct alarm_book *b, const char *name);

/* The host went down (why: the transition's reason) or came back. */
void alarm_host_down(struct alarm_book *b, const char *host, uint64_t now_ms, const char *why,
                     alarm_emit_fn emit, void *arg);
void alarm_host_up(struct alarm_book *b, const char *host, uint64_t now_ms, alarm_emit_fn emit,
                   void *arg);

/* An ALARM from the agent's run run_id. A seq already recorded for the
 * run, or a level the alarm already has, records nothing. */
void alarm_agent(struct alarm_book *b, const char *host, uint64_t run_id,
                 const struct proto_alarm *a, alarm_emit_fn emit, void *arg);

/* Append the book's active alarms to arr: host, name, instance, level,
 * state "firing", since, value, message, origin. 0, or -1 when one cannot
 * be built. */
int alarm_book_json(const struct alarm_book *b, const char *host, json_t *arr);

/* One active alarm as alarm_book_foreach gives it. */
struct alarm_active {
	const char *name;
	const char *instance; /* "" when the alarm has none */
	const char *level;    /* alarm_level_name */
	uint64_t since_ms;
	double value;
	const char *message;
	const char *origin;
};

/* Call fn for each of the book's active alarms, in the book's order. */
void alarm_book_foreach(const struct alarm_book *b,
                        void (*fn)(void *arg, const struct alarm_active *a), void *arg);

/* Number of active alarms. */
size_t alarm_book_active(const struct alarm_book *b);

#endif
