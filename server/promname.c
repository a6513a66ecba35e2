/* Prometheus names of host metrics' fields: "pimon_<metric>_<field>" with
 * every character outside [a-zA-Z0-9_] turned into '_', a rate's "_s"
 * spelled "_per_second" and "_total" (counters only) spelled "_all"; the
 * instances of disk, net and temp labelled mount, iface and zone. */
#include "promname.h"

#include <stdio.h>
#include <string.h>

/* The label naming the instances of a metric that has them. */
static const char *promname_instance(const char *metric)
{
	static const char *const labels[][2] = {
	    {"disk", "mount"},
	    {"net", "iface"},
	    {"temp", "zone"},
	};
	for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
		if (strcmp(metric, labels[i][0]) == 0)
			return labels[i][1];
	return "instance_name";
}

/* Replace a trailing from (already checked) of name by to, if it fits. */
static void promname_resuffix(char *name, size_t size, const char *from, const char *to)
{
	size_t n = strlen(name), f = strlen(from);
	if (n > f && strcmp(name + n - f, from) == 0 && n - f + strlen(to) < size)
		strcpy(name + n - f, to);
}

/* Name metric's field. */
int promname_series(const char *metric, const char *field, struct prom_name *out)
{
	memset(out, 0, sizeof *out);
	int n = snprintf(out->family, sizeof out->family, "pimon_%s_%s", metric, field);
	if (n < 0 || (size_t)n >= sizeof out->family)
		return -1;
	for (char *c = out->family + strlen("pimon_"); *c; c++) {
		int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		         (*c >= '0' && *c <= '9') || *c == '_';
		if (!ok)
			*c = '_';
	}
	size_t len = strlen(out->family);
	if (len > 2 && strcmp(out->family + len - 2, "_s") == 0)
		promname_resuffix(out->family, sizeof out->family, "_s", "_per_second");
	else if (len > 6 && strcmp(out->family + len - 6, "_total") == 0)
		promname_resuffix(out->family, sizeof out->family, "_total", "_all");
	snprintf(out->help, sizeof out->help, "Latest %s %s from each host's agent.", metric,
	         field);
	out->type = "gauge";
	out->inst_label = promname_instance(metric);
	out->scale = 1.0;
	return 0;
}
