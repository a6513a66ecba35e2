/* net collector: per-interface traffic rates from /proc/net/dev. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const net_fields[NET_NFIELDS] = {
    "rx_bytes_s",  "tx_bytes_s", "rx_packets_s", "tx_packets_s", "rx_errors_s",
    "tx_errors_s", "rx_drop_s",  "tx_drop_s",    "rx_bytes",     "tx_bytes",
};

/* Column of /proc/net/dev (after the colon) for each counter. */
static const int net_columns[NET_NCOUNTERS] = {
    [NET_RX_BYTES] = 0,  [NET_TX_BYTES] = 8,   [NET_RX_PACKETS] = 1, [NET_TX_PACKETS] = 9,
    [NET_RX_ERRORS] = 2, [NET_TX_ERRORS] = 10, [NET_RX_DROP] = 3,    [NET_TX_DROP] = 11,
};

#define NET_COLUMNS 16

/* Two samples of every interface; prev is the last one reported against. */
struct net_state {
	struct net_iface *prev, *cur;
	size_t nprev, cap;
	uint64_t prev_ms; /* monotonic time of prev */
	int have;         /* prev holds a sample */
};

/* Parse one "  eth0: 123 ..." line into ifc; 0, or -1 to skip the line. */
static int net_parse_line(const char *line, struct net_iface *ifc)
{
	const char *colon = strchr(line, ':');
	const char *nl = strchr(line, '\n');
	if (!colon || (nl && colon > nl))
		return -1;
	const char *name = line;
	while (*name == ' ' || *name == '\t')
		name++;
	size_t len = (size_t)(colon - name);
	if (len == 0 || len >= NET_NAME_MAX || (len == 2 && strncmp(name, "lo", 2) == 0))
		return -1;
	uint64_t col[NET_COLUMNS];
	const char *p = colon + 1;
	int n = 0;
	while (n < NET_COLUMNS && text_next_u64(&p, &col[n]) == 0)
		n++;
	if (n < NET_COLUMNS)
		return -1;
	memcpy(ifc->name, name, len);
	ifc->name[len] = '\0';
	for (int i = 0; i < NET_NCOUNTERS; i++)
		ifc->c[i] = col[net_columns[i]];
	return 0;
}

/* Parse every interface but lo; returns the count, storing up to max. */
size_t net_parse_dev(const char *buf, struct net_iface *out, size_t max)
{
	size_t n = 0;
	for (const char *p = buf; p; p = text_next_line(p)) {
		struct net_iface ifc;
		if (net_parse_line(p, &ifc) < 0)
			continue;
		if (n < max)
			out[n] = ifc;
		n++;
	}
	return n;
}

/* Counter growth with 32-bit wrap and reset handling. */
uint64_t net_delta(uint64_t old, uint64_t cur)
{
	if (cur >= old)
		return cur - old;
	if (old <= UINT32_MAX) {
		uint64_t wrapped = cur + (UINT64_C(1) << 32) - old;
		if (wrapped < (UINT64_C(1) << 31))
			return wrapped;
	}
	return 0;
}

/* Per-second rates between two samples of one interface, then totals. */
void net_rates(const struct net_iface *old, const struct net_iface *cur, uint64_t dt_ms,
               double out[NET_NFIELDS])
{
	for (int i = 0; i < NET_NCOUNTERS; i++)
		out[i] = (double)net_delta(old->c[i], cur->c[i]) * 1000.0 / (double)dt_ms;
	out[8] = (double)cur->c[NET_RX_BYTES];
	out[9] = (double)cur->c[NET_TX_BYTES];
}

/* Allocate both sample arrays' owner. */
static int net_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct net_state));
	return col->state ? 0 : -1;
}

/* Free both sample arrays. */
static void net_fini(struct collector *col)
{
	struct net_state *st = col->state;
	if (st) {
		free(st->prev);
		free(st->cur);
	}
	free(st);
	col->state = NULL;
}

/* Make both sample arrays hold n interfaces. */
static int net_reserve(struct net_state *st, size_t n)
{
	if (n <= st->cap)
		return 0;
	struct net_iface *prev = realloc(st->prev, n * sizeof *prev);
	if (!prev)
		return -1;
	st->prev = prev;
	struct net_iface *cur = realloc(st->cur, n * sizeof *cur);
	if (!cur)
		return -1;
	st->cur = cur;
	st->cap = n;
	return 0;
}

/* The previous sample of the interface called name, or NULL if it is new. */
static const struct net_iface *net_find_prev(const struct net_state *st, const char *name)
{
	for (size_t i = 0; i < st->nprev; i++) {
		if (strcmp(st->prev[i].name, name) == 0)
			return &st->prev[i];
	}
	return NULL;
}

/* Feed one /proc/net/dev sample taken at mono_ms; rows for interfaces seen
 * in the previous sample too. */
int net_sample(struct collector *col, const char *buf, uint64_t mono_ms, uint64_t now_ms)
{
	struct net_state *st = col->state;
	size_t n = net_parse_dev(buf, st->cur, st->cap);
	if (n > st->cap) {
		if (net_reserve(st, n) < 0) {
			collector_fail(col, "out of memory for %zu interfaces", n);
			return -1;
		}
		net_parse_dev(buf, st->cur, st->cap);
	}
	/* No time passed: keep the older sample so the next rate spans more. */
	if (st->have && mono_ms <= st->prev_ms)
		return 0;
	for (size_t i = 0; st->have && i < n; i++) {
		const struct net_iface *old = net_find_prev(st, st->cur[i].name);
		double *row = old ? rowset_add(&col->rows, now_ms, st->cur[i].name) : NULL;
		if (row)
			net_rates(old, &st->cur[i], mono_ms - st->prev_ms, row);
	}
	struct net_iface *t = st->prev;
	st->prev = st->cur;
	st->cur = t;
	st->nprev = n;
	st->prev_ms = mono_ms;
	st->have = 1;
	return 0;
}

/* Read /proc/net/dev and report rates from the second run on. */
static int net_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	if (collect_ctx_read(ctx, ctx->proc, "net/dev", COLLECT_WHOLE) < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	return net_sample(col, ctx->buf, util_mono_ms(), now_ms);
}

const struct collector_ops net_ops = {
    .metric = "net",
    .inst_key = "iface",
    .fields = net_fields,
    .nfields = NET_NFIELDS,
    .init = net_init,
    .fini = net_fini,
    .run = net_run,
};
