/* wifi collector: link quality, signal and noise of each wireless
 * interface, from /proc/net/wireless. Nothing, quietly, without one. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "log.h"

static const char *const wifi_fields[WIFI_NFIELDS] = {"link_quality", "signal_dbm", "noise_dbm"};

/* A signed decimal as /proc/net/wireless prints it ("-52." or "70"): the
 * trailing dot marks a value updated since the last read. */
static int wifi_next_value(const char **p, double *out)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	int neg = *s == '-';
	if (neg)
		s++;
	double v;
	if (text_next_decimal(&s, &v) < 0)
		return -1;
	if (*s == '.')
		s++;
	*out = neg ? -v : v;
	*p = s;
	return 0;
}

/* A level in dBm: old drivers print it as an unsigned byte (196 for -60);
 * -256 and 0 are "not known". */
static double wifi_dbm(double level)
{
	if (level > 0 && level < 256)
		level -= 256;
	return level <= -256 || level == 0 ? NAN : level;
}

/* Parse one " wlan0: 0000   70.  -40.  -256 ..." line; 0 or -1. */
static int wifi_parse_line(const char *line, struct wifi_iface *out)
{
	const char *colon = strchr(line, ':');
	const char *nl = strchr(line, '\n');
	if (!colon || (nl && colon > nl))
		return -1;
	const char *name = line;
	while (*name == ' ' || *name == '\t')
		name++;
	size_t len = (size_t)(colon - name);
	if (len == 0 || len >= NET_NAME_MAX)
		return -1;
	const char *p = colon + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) /* status, hex */
		p++;
	double link, level, noise;
	if (wifi_next_value(&p, &link) < 0 || wifi_next_value(&p, &level) < 0 ||
	    wifi_next_value(&p, &noise) < 0)
		return -1;
	memcpy(out->name, name, len);
	out->name[len] = '\0';
	text_sanitise(out->name);
	out->v[0] = link;
	out->v[1] = wifi_dbm(level);
	out->v[2] = wifi_dbm(noise);
	return 0;
}

/* Parse a /proc/net/wireless buffer; returns the count, storing up to max. */
size_t wifi_parse(const char *buf, struct wifi_iface *out, size_t max)
{
	size_t n = 0;
	for (const char *p = buf; p; p = text_next_line(p)) {
		struct wifi_iface ifc;
		if (wifi_parse_line(p, &ifc) < 0)
			continue;
		if (n < max)
			out[n] = ifc;
		n++;
	}
	return n;
}

/* One row per wireless interface; none without the file. */
static int wifi_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	struct wifi_iface ifc[16];
	if (collect_ctx_read(ctx, ctx->proc, "net/wireless", 0) < 0) {
		if (errno == ENOENT) {
			log_debug("collect", "wifi: %s: %s, no wireless", ctx->path,
			          strerror(errno));
			return 0;
		}
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	size_t n = wifi_parse(ctx->buf, ifc, sizeof ifc / sizeof ifc[0]);
	for (size_t i = 0; i < n && i < sizeof ifc / sizeof ifc[0]; i++) {
		double *row = rowset_add(&col->rows, now_ms, ifc[i].name);
		if (row)
			memcpy(row, ifc[i].v, sizeof ifc[i].v);
	}
	return 0;
}

const struct collector_ops wifi_ops = {
    .metric = "wifi",
    .inst_key = "iface",
    .fields = wifi_fields,
    .nfields = WIFI_NFIELDS,
    .run = wifi_run,
};
