/* server/promname.h: how a host metric's field is named in Prometheus, in /metrics and in
 * remote_write alike. */
#ifndef PIMON_PROMNAME_H
#define PIMON_PROMNAME_H

struct prom_name {
	char family[128];        /* e.g. "pimon_cpu_usage_ratio" */
	char help[192];          /* HELP text */
	const char *type;        /* "gauge" or "counter" (static) */
	const char *inst_label;  /* label naming the metric's instances ("mountpoint", "device"...),
	                            NULL when none */
	const char *extra_name;  /* an extra constant label, e.g. "mode", or NULL (static) */
	const char *extra_value; /* its value, e.g. "user" (static) */
	double scale; /* multiply the stored value by this: 0.01 for a percentage shown as a ratio,
	                 else 1 */
};
/* Fill *out for metric's field and return 0; -1 when the field is not exported (a text field, a
 * pid...). */
int promname_series(const char *metric, const char *field, struct prom_name *out);

#endif
