/* Agent checks: Monitoring-Plugins style commands from the agent's own
 * config, run in child processes on the agent's event base. The Nagios
 * plugin contract: exit 0/1/2/3 is OK/WARNING/CRITICAL/UNKNOWN, the first
 * output line is the message, perfdata after '|' becomes fields.
 * Single-threaded: every function MUST be called from the thread running
 * the base. */
#ifndef PIMON_CHECKS_H
#define PIMON_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

struct event_base;

#define CHECK_OUTPUT_MAX 65536 /* bytes of output kept; the rest is read and thrown away */

/* Perfdata fields a check's group can carry besides status and duration_s. */
#define CHECK_PERF_MAX (PROTO_MAX_FIELDS - 2)

enum check_status { CHECK_OK = 0, CHECK_WARNING = 1, CHECK_CRITICAL = 2, CHECK_UNKNOWN = 3 };

/* One finished run. It and everything it points to are valid only during
 * the call that hands it over. */
struct check_result {
	const char *name; /* the check's name from the config */
	enum check_status status;
	/* First output line, at most PROTO_TEXT_MAX bytes (cut at a UTF-8
	 * boundary), never empty; says what went wrong when the check could not
	 * run, timed out ("timed out after 5.0 s") or was killed by a signal. */
	const char *message;
	uint64_t time_ms; /* Unix ms when it ended */
	/* Metric "check_<name>" (cut to PROTO_KEY_MAX), no instance key, one
	 * row stamped time_ms: fields "status" (0..3), "duration_s", then one
	 * per perfdata value. */
	const struct proto_group *group;
};

/* Called on the base for every finished run. MUST NOT call checks_destroy;
 * checks_configure is allowed. */
typedef void (*checks_result_fn)(void *arg, const struct check_result *r);

struct checks;

/* Create the runner on base; results go to fn(arg, ...). It reaps its own
 * children by pid on SIGCHLD; the rest of the process MUST NOT reap with
 * waitpid(-1), which would take their statuses. NULL on out of memory or
 * when SIGCHLD cannot be watched. */
struct checks *checks_create(struct event_base *base, checks_result_fn fn, void *arg);

/* Replace the set of checks (at start and on reload). A check that stays
 * (same name) keeps its schedule and a run in progress; removed ones are
 * killed. Each new check runs first soon after (within a second), then
 * every interval. command[0] is passed to execv as it is: no PATH search,
 * so it should be an absolute path. Entries with a bad name, no command or
 * a non-positive interval or timeout are logged and left out. 0, or -1 on
 * out of memory (the old set stays). The list is copied. */
int checks_configure(struct checks *c, const struct pimon_check *list, size_t n);

/* Kill every running check's process group, reap it, free everything. */
void checks_destroy(struct checks *c);

/* Runs left out because the check's previous run was still going. */
uint64_t checks_skipped(const struct checks *c);

/* "OK", "WARNING", "CRITICAL" or "UNKNOWN". */
const char *checks_status_name(enum check_status s);

/* A plugin's output split up by checks_parse. */
struct check_parsed {
	char message[PROTO_TEXT_MAX + 1]; /* may be empty */
	size_t nperf;
	/* Field names: unique, valid keys, never "status" or "duration_s". */
	char names[CHECK_PERF_MAX][PROTO_KEY_MAX + 1];
	double values[CHECK_PERF_MAX]; /* in seconds and bytes where converted */
	size_t nskipped; /* items that were not numbers, were malformed or were over the limit */
};

/* Pure parsing, for tests and fuzzing: split a plugin's output into the
 * message (first line, trimmed, cut as above) and its perfdata (after '|'
 * on the first line, and on later lines after a '|' as the Nagios 3+
 * long-output rule says), mapping labels to field names. out need not be
 * NUL-terminated and may hold any bytes. Returns p->nperf. */
size_t checks_parse(const char *out, size_t len, struct check_parsed *p);

#endif
