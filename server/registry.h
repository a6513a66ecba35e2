/* The host registry: every host ever seen, its state and latest values.
 * Safe across threads: a registry lock guards the table, a host lock each
 * host. Hosts live until registry_destroy, so pointers to them stay valid. */
#ifndef PIMON_REGISTRY_H
#define PIMON_REGISTRY_H

#include <jansson.h>
#include <stdint.h>

#include "alarm.h"
#include "latest.h"
#include "proto.h"

struct registry;
struct host;

/* Where a host's current session lives, to post it a message. */
struct session_ref {
	int worker;
	uint64_t id; /* 0: none */
};

/* When stored rows are forced to disk (server.sync). */
enum registry_sync {
	SYNC_NONE,     /* never: the kernel writes back */
	SYNC_BATCH,    /* each batch, before its ACK */
	SYNC_INTERVAL, /* by registry_sync, called every sync_interval; ACKs wait */
};

/* Create the registry writing under data_dir; NULL on error (logged). */
struct registry *registry_create(const char *data_dir, enum registry_sync sync);

/* Hand every fire and resolve to fn as well (the notifier), after it is
 * written to alarms.csv. Set before any session starts. */
void registry_set_notify(struct registry *r, alarm_emit_fn fn, void *arg);

/* Descriptors of the data folder and of <data_dir>/hosts, for reading what
 * is stored (with safefs, never through a link). Open until
 * registry_destroy; MUST NOT be closed by the caller. */
int registry_data_fd(const struct registry *r);
int registry_hosts_fd(const struct registry *r);

/* Close every host's files and free everything. No session may be live. */
void registry_destroy(struct registry *r);

/* Attach a session that sent HELLO. Creates the host if new, records up
 * (connected, or rebooted when the boot id changed). When the host had
 * another session, *old names it (to be closed) and "replaced" is recorded;
 * otherwise old->id is 0. NULL when the host's folder cannot be made, or
 * when the name is taken by another agent (another run from another boot)
 * whose session is alive: then refused holds why (for BYE and the
 * name_conflict alarm it raised), otherwise refused is "". */
struct host *registry_attach(struct registry *r, const struct proto_hello *hello, const char *addr,
                             struct session_ref self, struct session_ref *old, char *refused,
                             size_t refused_size);

/* Agents send a frame at least every hb_ms (server.heartbeat.interval):
 * a session heard from within two of them and a second is alive. Before
 * any session. */
void registry_set_heartbeat(struct registry *r, uint64_t hb_ms);

/* A frame arrived on session sid: note the time; a down host whose current
 * session this is comes back up ("resumed"). */
void registry_seen(struct registry *r, struct host *h, uint64_t sid);

/* Session sid timed out (reason "timeout", the session stays) or ended
 * (any other reason). Only the host's current session changes its state. */
void registry_down(struct registry *r, struct host *h, uint64_t sid, const char *reason);

/* Store a METRICS batch from session sid: write each group whole or not at
 * all, commit it (and under SYNC_NONE/SYNC_BATCH persist the commit), update
 * the latest values, check the rules rs (NULL: none) on its rows. Batches
 * at or below the last stored seq of the same agent run are duplicates and
 * are not written again. Returns 0 when the batch is stored (or was
 * already), with *stored the run's highest seq stored (what to ack) and
 * *retimed the rows stored at the server's time, or -1 when it must not be
 * acked. */
int registry_store(struct registry *r, struct host *h, uint64_t sid, const struct proto_metrics *m,
                   const struct ruleset *rs, uint64_t *stored, uint64_t *retimed);

/* Record an ALARM from session sid in the host's and the server's
 * alarms.csv (a resend, or a level the alarm has, records nothing).
 * Returns 0 when it may be acked, -1 when it could not be written. */
int registry_alarm(struct registry *r, struct host *h, uint64_t sid, const struct proto_alarm *a);

/* JSON array of every host's active alarms, by host name; NULL (logged)
 * when it cannot be built. */
json_t *registry_alarms_json(struct registry *r);

/* Sync the host's files and write its commit record (SYNC_INTERVAL: acks
 * for what was stored may be sent once this returns 0). */
int registry_sync(struct registry *r, struct host *h);

/* Name of the host, for logs. */
const char *host_name(const struct host *h);

/* A host as readers see it: valid only during the visit's callback. */
struct host_view {
	const char *name;
	const char *addr;
	int up; /* connected and heard from; 0: down */
	const char *reason;
	uint64_t since_ms;     /* in this state since */
	uint64_t last_seen_ms; /* last frame from it */
	uint64_t boot_ms;      /* when it booted (HELLO's time less its uptime); 0 unknown */
	int worker;            /* of its session, -1 none */
	const char *version;   /* HELLO's facts, "" before the first */
	const char *os;
	const char *kernel;
	const char *model;
	const char *boot_id;
	uint64_t uptime_s;               /* as HELLO said */
	const struct latest *latest;     /* latest values (latest_foreach); NULL: none yet */
	const struct alarm_book *alarms; /* active alarms (alarm_book_foreach); NULL: none */
};

/* Called for a host during a visit. It MUST NOT call the registry; a
 * non-zero result ends the visit. */
typedef int (*registry_visit_fn)(void *arg, const struct host_view *v);

/* Call fn for every listed host in name order, each under its own view
 * lock, which store I/O never holds: a visit does not wait for a host's
 * disk. 0, fn's first non-zero result, or -1 (logged) when out of memory. */
int registry_visit(struct registry *r, registry_visit_fn fn, void *arg);

/* Call fn for the listed host called name, *rc set to its result: 0, or
 * -1 when there is no such host. */
int registry_visit_host(struct registry *r, const char *name, registry_visit_fn fn, void *arg,
                        int *rc);

/* Know the host called name from the data folder at start, before any
 * session: down since since_ms for reason, its active alarms read back.
 * 0, or -1 (logged). */
int registry_known(struct registry *r, const char *name, uint64_t since_ms, const char *reason);

/* Raise host_down for every host that has said no HELLO since the server
 * started: call once, heartbeat.timeout after the start. */
void registry_expect(struct registry *r);

/* Leave the host out of every listing (its files stay) until it says
 * HELLO again. 0, -1 if there is no such host, -2 while it is connected. */
int registry_forget(struct registry *r, const char *name);

/* The storage cap deleted data of the host called name at now_ms: raise
 * storage_retention_cut (warning) with message, once while active. A host
 * the registry does not know is skipped. Any thread. */
void registry_storage_cut(struct registry *r, const char *name, uint64_t now_ms,
                          const char *message);

/* Resolve storage_retention_cut of every host that had no cut for a day
 * (counted from the first call for an alarm read back from alarms.csv).
 * Any thread. */
void registry_storage_settle(struct registry *r, uint64_t now_ms);

/* The current session of the host called name. Returns 0 with *ref set,
 * -1 if there is no such host, -2 if it has no live session. */
int registry_session(struct registry *r, const char *name, struct session_ref *ref);

#endif
