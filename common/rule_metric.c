/* A rule's metric against the schema table: exact match or a suggestion
 * ("did you mean disk.used_pct?") by edit distance. No I/O. */
#include "rule_metric.h"

#include <stdio.h>
#include <string.h>

#include "schema.h"

#define NAME_MAX_LEN 64

/* The smallest of three sizes. */
static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;
	return m < c ? m : c;
}

/* Optimal string alignment distance, strings cut at NAME_MAX_LEN. */
size_t rule_metric_distance(const char *a, const char *b)
{
	size_t la = strnlen(a, NAME_MAX_LEN), lb = strnlen(b, NAME_MAX_LEN);
	size_t d[NAME_MAX_LEN + 1][NAME_MAX_LEN + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < d[i][j])
				d[i][j] = d[i - 2][j - 2] + 1;
		}
	return d[la][lb];
}

/* Whether metric is "check_<name>.<field>": a check's result, any field. */
static int rule_metric_is_check(const char *metric)
{
	size_t plen = strlen(SCHEMA_CHECK_PREFIX);
	const char *dot = strchr(metric, '.');
	return strncmp(metric, SCHEMA_CHECK_PREFIX, plen) == 0 && dot && dot > metric + plen &&
	       dot[1];
}

const char *rule_metric_suggest(const char *metric, char *buf, size_t len)
{
	size_t best = (size_t)-1;
	char name[2 * NAME_MAX_LEN + 2];
	const char *found = NULL;
	for (size_t i = 0; schema_metric_at(i); i++) {
		const struct schema_metric *m = schema_metric_at(i);
		for (size_t f = 0; f < m->nfields; f++) {
			if (m->fields[f].unit == SCHEMA_PER_PROCESS)
				continue;
			int n = snprintf(name, sizeof name, "%s.%s", m->name, m->fields[f].name);
			if (n < 0 || (size_t)n >= sizeof name)
				continue;
			size_t dist = rule_metric_distance(metric, name);
			if (dist < best && (size_t)n < len) {
				best = dist;
				memcpy(buf, name, (size_t)n + 1);
				found = buf;
			}
		}
	}
	/* Only a near name helps: at most a third of the name wrong. */
	size_t limit = strlen(metric) / 3 + 1;
	return found && best <= limit ? found : NULL;
}

const char *rule_metric_check(const char *metric)
{
	static _Thread_local char why[256];
	if (rule_metric_is_check(metric))
		return NULL;
	const char *dot = strchr(metric, '.');
	if (dot && (size_t)(dot - metric) < NAME_MAX_LEN) {
		char group[NAME_MAX_LEN + 1];
		memcpy(group, metric, (size_t)(dot - metric));
		group[dot - metric] = '\0';
		const struct schema_metric *m = schema_find_metric(group);
		const struct schema_field *f = m ? schema_find_field(m, dot + 1) : NULL;
		if (f && f->unit != SCHEMA_PER_PROCESS)
			return NULL;
	}
	char near[2 * NAME_MAX_LEN + 2];
	const char *s = rule_metric_suggest(metric, near, sizeof near);
	if (s)
		snprintf(why, sizeof why,
		         "metric \"%.64s\" is produced by no collector or check; did you mean %s?",
		         metric, s);
	else
		snprintf(why, sizeof why, "metric \"%.64s\" is produced by no collector or check",
		         metric);
	return why;
}
