/* The agents' built-in metrics: each collector's metric name, the key of
 * its instances, and every field with its unit. One table for the whole
 * project: the server names series and recognises instance columns from
 * it, and a unit test holds it equal to the agent's collectors. No I/O. */
#ifndef PIMON_SCHEMA_H
#define PIMON_SCHEMA_H

#include <stddef.h>

/* What a field's value measures. */
enum schema_unit {
	SCHEMA_PERCENT,       /* a share, 0..100 */
	SCHEMA_BYTES,         /* a size now */
	SCHEMA_BYTES_TOTAL,   /* bytes since some start: only grows (until a reset) */
	SCHEMA_BYTES_RATE,    /* bytes a second, averaged over the interval */
	SCHEMA_EVENTS_TOTAL,  /* events since the sender started: only grows (until a restart) */
	SCHEMA_EVENTS_RATE,   /* packets, errors... a second, over the interval */
	SCHEMA_SECONDS,       /* a duration */
	SCHEMA_TIMESTAMP,     /* Unix seconds */
	SCHEMA_CELSIUS,       /* a temperature */
	SCHEMA_COUNT,         /* how many of something now */
	SCHEMA_LOAD,          /* a load average */
	SCHEMA_FLAG,          /* 0 or 1 */
	SCHEMA_CODE,          /* a code or bit mask: a value, not an amount */
	SCHEMA_SECONDS_TOTAL, /* seconds since some start: only grows (until a reset) */
	SCHEMA_MHZ,           /* a frequency in MHz */
	SCHEMA_DBM,           /* a radio level in dBm */
	SCHEMA_VALUE,         /* a reading without a unit (a quality score) */
	SCHEMA_PER_PROCESS,   /* about one process: not a host's series */
};

struct schema_field {
	const char *name;
	enum schema_unit unit;
	const char *help; /* what it is, without its unit */
};

struct schema_metric {
	const char *name;
	const char *inst_key; /* "" for a metric without instances */
	const struct schema_field *fields;
	size_t nfields;
};

/* The agent's own delivery figures, sent with each sample as this metric:
 * its fields in the order of enum schema_agent_field. */
#define SCHEMA_AGENT_METRIC "agent"
enum schema_agent_field { SCHEMA_AGENT_DROPPED, SCHEMA_AGENT_QUEUED, SCHEMA_AGENT_SPOOL };

/* Check results arrive as metrics named CHECK_PREFIX<check name>. */
#define SCHEMA_CHECK_PREFIX "check_"

/* The i-th built-in metric, NULL past the last. */
const struct schema_metric *schema_metric_at(size_t i);

/* The built-in metric called name, or NULL. */
const struct schema_metric *schema_find_metric(const char *name);

/* The metric's field called name, or NULL. */
const struct schema_field *schema_find_field(const struct schema_metric *m, const char *name);

/* Whether column is the instance key of some built-in metric. */
int schema_is_inst_key(const char *column);

/* A check result's field: its unit as the agent names it (status,
 * duration_s, then perfdata fields whose suffix the agent chose from the
 * plugin's unit of measure: _pct, _s, _bytes, _total or none). *counter is
 * set for a perfdata counter ("c"). */
enum schema_unit schema_check_field(const char *field, int *counter);

#endif
