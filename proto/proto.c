/* pimon wire protocol: frame codec. The byte layout is written down in PROTOCOL.md. */
#include "proto.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(double) == sizeof(uint64_t), "doubles travel as 64-bit patterns");

/* Smallest METRICS group on the wire: one-byte metric, empty instance key,
 * nfields, one one-byte field name, nrows. */
#define GROUP_MIN_SIZE (2 + 1 + 1 + 2 + 4)
/* A row without its values: time_ms and an empty instance. */
#define ROW_BASE_SIZE (8 + 1)
/* First allocation of an empty output buffer. */
#define BUF_MIN_CAP 256

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

/* Formatted error messages. A returned *err stays valid until the same
 * thread's next proto call fails. */
static _Thread_local char err_buf[128];

/* One pass over a payload: sizing (arena NULL) or filling the arena. */
struct dec {
	const uint8_t *p; /* payload */
	size_t len;       /* payload bytes */
	size_t off;       /* payload bytes consumed */
	uint8_t *arena;   /* decoded message storage, NULL while sizing */
	size_t cap;       /* arena bytes */
	size_t used;      /* arena bytes claimed so far */
	const char *err;  /* first failure */
};

/* One frame being appended to a buffer. */
struct enc {
	struct proto_buf *out;
	size_t start;    /* offset of the frame's header in out */
	const char *err; /* first failure */
};

/* What a string field must be besides its length (PROTOCOL.md "Strings"). */
enum str_rule {
	RULE_TEXT, /* valid UTF-8 without control characters */
	RULE_HOST, /* a host name */
	RULE_KEY,  /* a key */
	RULE_KEY0, /* a key, or empty */
	RULE_ADDR, /* a server address, "host:port" */
};

/* Format an error message from a va_list into this thread's buffer and return it. */
PRINTF_LIKE(1, 0) static const char *err_vformat(const char *fmt, va_list ap)
{
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	return err_buf;
}

/* Format an error message into this thread's buffer and return it. */
PRINTF_LIKE(1, 2) static const char *err_format(const char *fmt, ...)
{
	const char *msg;
	va_list ap;

	va_start(ap, fmt);
	msg = err_vformat(fmt, ap);
	va_end(ap);
	return msg;
}

/* Read a big-endian u16. */
static uint16_t be16_get(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

/* Read a big-endian u32. */
static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read a big-endian u64. */
static uint64_t be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

/* Write a big-endian u16. */
static void be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Write a big-endian u32. */
static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Write a big-endian u64. */
static void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

/* Length of s, or max + 1 if it is longer than max; never reads past max + 1 bytes. */
static size_t str_len_max(const char *s, size_t max)
{
	size_t n = 0;

	while (n <= max && s[n] != '\0')
		n++;
	return n;
}

/* Why the n bytes at s (NUL-terminated) break rule, or NULL when they keep it.
 * Host names and keys are ASCII, so their rules imply the text rule. */
static const char *str_rule_check(const char *s, size_t n, enum str_rule rule)
{
	switch (rule) {
	case RULE_TEXT:
		return proto_text_valid(s, n) ? NULL
		                              : "is not UTF-8 text without control characters";
	case RULE_HOST:
		return proto_host_valid(s) ? NULL
		                           : "is an invalid host name (1-64 of A-Z a-z 0-9 . _ -, "
		                             "not starting with . or -)";
	case RULE_ADDR:
		return proto_addr_valid(s) ? NULL
		                           : "is not a server address (host:port or [v6]:port)";
	case RULE_KEY0:
		if (n == 0)
			return NULL;
		/* fall through */
	case RULE_KEY:
		return proto_key_valid(s) ? NULL : "is outside [a-z0-9_]{1,32}";
	}
	return "has an unknown rule";
}

/* Why a group's names cannot all be columns of one file, or NULL: the
 * metric is not reserved, no column is "time", no two columns share a name. */
static const char *group_shape_check(const struct proto_group *g, char *buf, size_t size)
{
	if (proto_metric_reserved(g->metric)) {
		snprintf(buf, size, "metric name %s is reserved for the server's own files",
		         g->metric);
		return buf;
	}
	if (strcmp(g->inst_key, "time") == 0)
		return "instance key may not be \"time\"";
	for (unsigned i = 0; i < g->nfields; i++) {
		if (strcmp(g->fields[i], "time") == 0)
			return "field name may not be \"time\"";
		if (strcmp(g->fields[i], g->inst_key) == 0) {
			snprintf(buf, size, "field %s repeats the instance key", g->fields[i]);
			return buf;
		}
		for (unsigned j = 0; j < i; j++)
			if (strcmp(g->fields[i], g->fields[j]) == 0) {
				snprintf(buf, size, "field %s appears twice", g->fields[i]);
				return buf;
			}
	}
	return NULL;
}

/* FNV-1a of a name, for the repeated-metric check. */
static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The first metric named by two groups of a batch, or NULL (also when out
 * of memory, "?" is returned): each metric's rows of a batch are one group,
 * in one file. A hash set of group indexes keeps it linear. */
static const char *metrics_repeated(const struct proto_metrics *m)
{
	if (m->ngroups < 2)
		return NULL;
	size_t cap = 4;
	while (cap < 2 * (size_t)m->ngroups)
		cap *= 2;
	uint32_t *slot = calloc(cap, sizeof *slot); /* index + 1; 0 is empty */
	if (!slot)
		return "?";
	const char *dup = NULL;
	for (uint32_t i = 0; i < m->ngroups && !dup; i++) {
		size_t k = name_hash(m->groups[i].metric) & (cap - 1);
		for (; slot[k]; k = (k + 1) & (cap - 1))
			if (strcmp(m->groups[slot[k] - 1].metric, m->groups[i].metric) == 0) {
				dup = m->groups[i].metric;
				break;
			}
		slot[k] = i + 1;
	}
	free(slot);
	return dup;
}

/* Whether type is one of enum proto_type. */
static bool type_known(unsigned type)
{
	return type >= PROTO_HELLO && type <= PROTO_ALARM_ACK;
}

/* Why a parsed header is unacceptable, or NULL if it is fine. */
static const char *header_check(const struct proto_header *hdr, uint32_t limit)
{
	if (hdr->magic != PROTO_MAGIC)
		return err_format("bad magic 0x%04x", (unsigned)hdr->magic);
	if (hdr->version != PROTO_VERSION)
		return err_format("unsupported version %u", (unsigned)hdr->version);
	if (!type_known(hdr->type))
		return err_format("unknown message type %u", (unsigned)hdr->type);
	if (hdr->length > limit)
		return err_format("frame too large (%lu > %lu bytes)", (unsigned long)hdr->length,
		                  (unsigned long)limit);
	return NULL;
}

/* Parse and check the fixed header at the start of buf. */
enum proto_status proto_header_parse(const uint8_t *buf, size_t len, uint32_t max_payload,
                                     struct proto_header *hdr, const char **err)
{
	uint32_t limit = max_payload < PROTO_MAX_PAYLOAD ? max_payload : PROTO_MAX_PAYLOAD;
	struct proto_header h;
	const char *why;

	if (err)
		*err = NULL;
	if (len < PROTO_HEADER_SIZE)
		return PROTO_NEED_MORE;
	h.magic = be16_get(buf);
	h.version = buf[2];
	h.type = buf[3];
	h.length = be32_get(buf + 4);
	if (hdr)
		*hdr = h;
	why = header_check(&h, limit);
	if (why) {
		if (err)
			*err = why;
		return PROTO_BAD;
	}
	return PROTO_OK;
}

/* Record the first decode failure; later ones are ignored. */
PRINTF_LIKE(2, 3) static void dec_fail(struct dec *d, const char *fmt, ...)
{
	va_list ap;

	if (d->err)
		return;
	va_start(ap, fmt);
	d->err = err_vformat(fmt, ap);
	va_end(ap);
}

/* Consume n payload bytes and return where they start, or NULL past the end. */
static const uint8_t *dec_take(struct dec *d, size_t n)
{
	const uint8_t *p;

	if (d->err)
		return NULL;
	if (n > d->len - d->off) {
		dec_fail(d, "field runs past end of payload (offset %zu)", d->off);
		return NULL;
	}
	p = d->p + d->off;
	d->off += n;
	return p;
}

/* Consume a u8. */
static uint8_t dec_u8(struct dec *d)
{
	const uint8_t *p = dec_take(d, 1);

	return p ? p[0] : 0;
}

/* Consume a big-endian u16. */
static uint16_t dec_u16(struct dec *d)
{
	const uint8_t *p = dec_take(d, 2);

	return p ? be16_get(p) : 0;
}

/* Consume a big-endian u32. */
static uint32_t dec_u32(struct dec *d)
{
	const uint8_t *p = dec_take(d, 4);

	return p ? be32_get(p) : 0;
}

/* Consume a big-endian u64. */
static uint64_t dec_u64(struct dec *d)
{
	const uint8_t *p = dec_take(d, 8);

	return p ? be64_get(p) : 0;
}

/* Consume n doubles into dst (NULL while sizing), bit for bit. */
static void dec_values(struct dec *d, double *dst, size_t n)
{
	const uint8_t *p = dec_take(d, n * 8);
	uint64_t bits;
	size_t i;

	if (!p || !dst)
		return;
	for (i = 0; i < n; i++) {
		bits = be64_get(p + i * 8);
		memcpy(&dst[i], &bits, sizeof bits);
	}
}

/* Fail unless count items of at least min bytes each fit in the rest of the payload. */
static bool dec_fits(struct dec *d, uint64_t count, size_t min, const char *what)
{
	if (d->err)
		return false;
	if (count > (d->len - d->off) / min) {
		dec_fail(d, "%s count %llu exceeds payload", what, (unsigned long long)count);
		return false;
	}
	return true;
}

/* Claim n arena bytes aligned to align (a power of two); NULL while sizing or on failure. */
static void *dec_alloc(struct dec *d, size_t n, size_t align)
{
	size_t at;

	if (d->err)
		return NULL;
	at = (d->used + align - 1) & ~(align - 1);
	if (at < d->used || n > SIZE_MAX - at) {
		dec_fail(d, "message too large to decode");
		return NULL;
	}
	d->used = at + n;
	if (!d->arena)
		return NULL;
	if (d->used > d->cap) {
		dec_fail(d, "decoder arena overflow");
		return NULL;
	}
	return d->arena + at;
}

/* Claim an arena array of count elements of size bytes each. */
static void *dec_array(struct dec *d, size_t count, size_t size, size_t align)
{
	if (count > SIZE_MAX / size) {
		dec_fail(d, "message too large to decode");
		return NULL;
	}
	return dec_alloc(d, count * size, align);
}

/* Consume a u8-length string of min..max bytes keeping rule, copy it to
 * the arena NUL-terminated (*out NULL while sizing), and return its length. */
static size_t dec_str(struct dec *d, size_t min, size_t max, enum str_rule rule, const char *what,
                      const char **out)
{
	size_t n = dec_u8(d);
	const uint8_t *src;
	const char *why;
	char *dst;

	*out = NULL;
	if (d->err)
		return 0;
	if (n < min) {
		dec_fail(d, "%s is empty", what);
		return 0;
	}
	if (n > max) {
		dec_fail(d, "%s too long (%zu > %zu bytes)", what, n, max);
		return 0;
	}
	src = dec_take(d, n);
	if (!src)
		return 0;
	if (memchr(src, '\0', n)) {
		dec_fail(d, "%s contains a NUL byte", what);
		return 0;
	}
	/* Checked in the arena copy, or in a bounded copy while sizing. */
	dst = dec_alloc(d, n + 1, 1);
	char tmp[PROTO_TEXT_MAX + 1];
	char *text = dst ? dst : tmp;
	memcpy(text, src, n);
	text[n] = '\0';
	why = str_rule_check(text, n, rule);
	if (why) {
		dec_fail(d, "%s %s", what, why);
		return 0;
	}
	*out = dst;
	return n;
}

/* Consume u16-length opaque bytes of at most max, copy them to the arena, return the length. */
static uint16_t dec_bytes(struct dec *d, size_t max, const char *what, const uint8_t **out)
{
	uint16_t n = dec_u16(d);
	const uint8_t *src;
	uint8_t *dst;

	*out = NULL;
	if (d->err)
		return 0;
	if (n > max) {
		dec_fail(d, "%s too long (%u > %zu bytes)", what, (unsigned)n, max);
		return 0;
	}
	src = dec_take(d, n);
	dst = dec_alloc(d, n, 1);
	if (src && dst)
		memcpy(dst, src, n);
	*out = dst;
	return n;
}

/* HELLO: who the agent is and its proof of it. */
static void dec_hello(struct dec *d, struct proto_hello *h)
{
	dec_str(d, 0, PROTO_NAME_MAX, RULE_HOST, "name", &h->name);
	dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "version", &h->version);
	h->caps = dec_u32(d);
	dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "os", &h->os);
	dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "kernel", &h->kernel);
	dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "model", &h->model);
	dec_str(d, 0, PROTO_NAME_MAX, RULE_TEXT, "boot id", &h->boot_id);
	h->uptime_s = dec_u64(d);
	h->run_id = dec_u64(d);
	h->auth_len = dec_bytes(d, PROTO_AUTH_MAX, "auth", &h->auth);
}

/* WELCOME's optional peers: absent when the payload ends after the
 * metrics; present, 1..PROTO_MAX_PEERS server addresses. */
static void dec_peers(struct dec *d, struct proto_welcome *w)
{
	const char **peers;
	const char *peer;
	unsigned i;

	w->npeers = 0;
	w->peers = NULL;
	if (d->err || d->off == d->len)
		return;
	w->npeers = dec_u8(d);
	if (!d->err && (w->npeers == 0 || w->npeers > PROTO_MAX_PEERS))
		dec_fail(d, "peer count %u is not 1..%u", (unsigned)w->npeers, PROTO_MAX_PEERS);
	if (!dec_fits(d, w->npeers, 1, "peer"))
		return;
	peers = dec_array(d, w->npeers, sizeof *peers, _Alignof(const char *));
	for (i = 0; i < w->npeers && !d->err; i++) {
		dec_str(d, 1, PROTO_ADDR_MAX, RULE_ADDR, "peer", &peer);
		if (peers)
			peers[i] = peer;
	}
	w->peers = peers;
}

/* WELCOME: the schedule and the collectors the server wants. */
static void dec_welcome(struct dec *d, struct proto_welcome *w)
{
	const char **names;
	const char *name;
	unsigned i;

	w->interval_ms = dec_u32(d);
	w->heartbeat_ms = dec_u32(d);
	w->nmetrics = dec_u8(d);
	if (!d->err && w->nmetrics > PROTO_MAX_METRICS)
		dec_fail(d, "too many metrics (%u > %u)", (unsigned)w->nmetrics, PROTO_MAX_METRICS);
	if (!dec_fits(d, w->nmetrics, 1, "metric name"))
		return;
	names = dec_array(d, w->nmetrics, sizeof *names, _Alignof(const char *));
	for (i = 0; i < w->nmetrics && !d->err; i++) {
		dec_str(d, 0, PROTO_KEY_MAX, RULE_KEY, "metric name", &name);
		if (names)
			names[i] = name;
	}
	w->metrics = names;
	dec_peers(d, w);
}

/* The rows of one METRICS group, whose header fields are already in g. */
static void dec_rows(struct dec *d, struct proto_group *g, bool keyed)
{
	struct proto_row *rows;
	struct proto_row row;
	double *values;
	double *v;
	uint32_t i;

	if (!dec_fits(d, g->nrows, ROW_BASE_SIZE + (size_t)8 * g->nfields, "row"))
		return;
	rows = dec_array(d, g->nrows, sizeof *rows, _Alignof(struct proto_row));
	values = dec_array(d, (size_t)g->nrows * g->nfields, sizeof *values, _Alignof(double));
	for (i = 0; i < g->nrows && !d->err; i++) {
		row.time_ms = dec_u64(d);
		if (dec_str(d, 0, PROTO_INST_MAX, RULE_TEXT, "instance", &row.instance) > 0 &&
		    !keyed)
			dec_fail(d, "instance in a group without instance key");
		v = values ? values + (size_t)i * g->nfields : NULL;
		dec_values(d, v, g->nfields);
		row.values = v;
		if (rows)
			rows[i] = row;
	}
	g->rows = rows;
}

/* One METRICS group: metric, instance key, field names, rows. */
static void dec_group(struct dec *d, struct proto_group *g)
{
	const char **fields;
	const char *field;
	size_t keylen;
	unsigned i;

	memset(g, 0, sizeof *g);
	dec_str(d, 0, PROTO_KEY_MAX, RULE_KEY, "metric", &g->metric);
	keylen = dec_str(d, 0, PROTO_KEY_MAX, RULE_KEY0, "instance key", &g->inst_key);
	g->nfields = dec_u8(d);
	if (!d->err && (g->nfields < 1 || g->nfields > PROTO_MAX_FIELDS))
		dec_fail(d, "field count %u not in 1..%u", (unsigned)g->nfields, PROTO_MAX_FIELDS);
	if (!dec_fits(d, g->nfields, 2, "field"))
		return;
	fields = dec_array(d, g->nfields, sizeof *fields, _Alignof(const char *));
	for (i = 0; i < g->nfields && !d->err; i++) {
		dec_str(d, 1, PROTO_KEY_MAX, RULE_KEY, "field name", &field);
		if (fields)
			fields[i] = field;
	}
	g->fields = fields;
	/* Names are at hand only in the filling pass. */
	if (d->arena && !d->err) {
		char buf[96];
		const char *why = group_shape_check(g, buf, sizeof buf);
		if (why)
			dec_fail(d, "%s", why);
	}
	g->nrows = dec_u32(d);
	dec_rows(d, g, keylen > 0);
}

/* METRICS: one batch of groups. */
static void dec_metrics(struct dec *d, struct proto_metrics *m)
{
	struct proto_group *groups;
	struct proto_group group;
	uint32_t i;

	m->seq = dec_u64(d);
	if (!d->err && m->seq == 0)
		dec_fail(d, "seq is 0 (sequences start at 1)");
	m->ngroups = dec_u16(d);
	if (!dec_fits(d, m->ngroups, GROUP_MIN_SIZE, "group"))
		return;
	groups = dec_array(d, m->ngroups, sizeof *groups, _Alignof(struct proto_group));
	for (i = 0; i < m->ngroups && !d->err; i++) {
		dec_group(d, &group);
		if (groups)
			groups[i] = group;
	}
	m->groups = groups;
	/* Names are at hand only in the filling pass. */
	if (d->arena && !d->err) {
		const char *dup = metrics_repeated(m);
		if (dup)
			dec_fail(d, "metric %s appears twice in one batch", dup);
	}
}

/* ALARM: an agent alarm's new state. */
static void dec_alarm(struct dec *d, struct proto_alarm *a)
{
	a->seq = dec_u64(d);
	if (!d->err && a->seq == 0)
		dec_fail(d, "alarm seq is 0 (sequences start at 1)");
	a->time_ms = dec_u64(d);
	a->level = dec_u8(d);
	a->source = dec_u8(d);
	if (!d->err && a->level > PROTO_LEVEL_UNKNOWN)
		dec_fail(d, "alarm level %u is not 0..3", (unsigned)a->level);
	if (!d->err && a->source > PROTO_ALARM_LOCAL)
		dec_fail(d, "alarm source %u is not 0..1", (unsigned)a->source);
	dec_str(d, 1, PROTO_KEY_MAX, RULE_KEY, "alarm name", &a->name);
	dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "alarm message", &a->message);
}

/* Decode the payload of a msg->type message and insist it is used up exactly. */
static void dec_payload(struct dec *d, struct proto_msg *msg)
{
	switch (msg->type) {
	case PROTO_HELLO:
		dec_hello(d, &msg->u.hello);
		break;
	case PROTO_WELCOME:
		dec_welcome(d, &msg->u.welcome);
		break;
	case PROTO_HEARTBEAT:
		msg->u.heartbeat.time_ms = dec_u64(d);
		break;
	case PROTO_METRICS:
		dec_metrics(d, &msg->u.metrics);
		break;
	case PROTO_ACK:
	case PROTO_ALARM_ACK:
		msg->u.ack.seq = dec_u64(d);
		break;
	case PROTO_ALARM:
		dec_alarm(d, &msg->u.alarm);
		break;
	case PROTO_POLL:
		msg->u.poll.id = dec_u32(d);
		break;
	case PROTO_BYE:
		dec_str(d, 0, PROTO_TEXT_MAX, RULE_TEXT, "reason", &msg->u.bye.reason);
		break;
	case PROTO_CHALLENGE: {
		const uint8_t *nonce = dec_take(d, PROTO_NONCE_SIZE);
		if (nonce)
			memcpy(msg->u.challenge.nonce, nonce, PROTO_NONCE_SIZE);
		break;
	}
	default:
		dec_fail(d, "unknown message type %u", (unsigned)msg->type);
		break;
	}
	if (!d->err && d->off != d->len)
		dec_fail(d, "trailing bytes (%zu after the last field)", d->len - d->off);
}

/* Validate and size a payload, then decode it into one allocation that msg
 * owns. Returns NULL, or why the payload is bad. */
static const char *dec_frame(const uint8_t *payload, size_t len, struct proto_msg *msg)
{
	struct dec d = {.p = payload, .len = len};
	uint8_t *arena;
	size_t size;

	dec_payload(&d, msg);
	if (d.err)
		return d.err;
	size = d.used;
	if (size == 0)
		return NULL;
	arena = malloc(size);
	if (!arena)
		return "out of memory";
	d = (struct dec){.p = payload, .len = len, .arena = arena, .cap = size};
	dec_payload(&d, msg);
	if (!d.err && d.used != size)
		d.err = "decoder sizing mismatch";
	if (d.err) {
		free(arena);
		return d.err;
	}
	msg->mem = arena;
	return NULL;
}

/* Decode one frame from the start of buf. */
enum proto_status proto_decode(const uint8_t *buf, size_t len, uint32_t max_payload,
                               struct proto_msg *msg, size_t *used, const char **err)
{
	struct proto_header hdr;
	enum proto_status status;
	const char *why;

	memset(msg, 0, sizeof *msg);
	*used = 0;
	status = proto_header_parse(buf, len, max_payload, &hdr, err);
	if (status != PROTO_OK)
		return status;
	if (len - PROTO_HEADER_SIZE < hdr.length)
		return PROTO_NEED_MORE;
	msg->type = (enum proto_type)hdr.type;
	why = dec_frame(buf + PROTO_HEADER_SIZE, hdr.length, msg);
	if (why) {
		memset(msg, 0, sizeof *msg);
		if (err)
			*err = why;
		return PROTO_BAD;
	}
	*used = PROTO_HEADER_SIZE + (size_t)hdr.length;
	return PROTO_OK;
}

/* Release the decoder's storage of msg. */
void proto_msg_free(struct proto_msg *msg)
{
	if (!msg)
		return;
	free(msg->mem);
	msg->mem = NULL;
}

/* Record the first encode failure; later ones are ignored. */
PRINTF_LIKE(2, 3) static void enc_fail(struct enc *e, const char *fmt, ...)
{
	va_list ap;

	if (e->err)
		return;
	va_start(ap, fmt);
	e->err = err_vformat(fmt, ap);
	va_end(ap);
}

/* Grow the output buffer so that n more bytes fit. */
static bool enc_grow(struct enc *e, size_t n)
{
	struct proto_buf *b = e->out;
	size_t cap = b->cap > BUF_MIN_CAP ? b->cap : BUF_MIN_CAP;
	uint8_t *data;

	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			enc_fail(e, "output buffer too large");
			return false;
		}
		cap *= 2;
	}
	data = realloc(b->data, cap);
	if (!data) {
		enc_fail(e, "out of memory");
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

/* Append n bytes to the frame and return where they go, or NULL on failure. */
static uint8_t *enc_room(struct enc *e, size_t n)
{
	struct proto_buf *b = e->out;
	uint8_t *p;

	if (e->err)
		return NULL;
	if (n > PROTO_HEADER_SIZE + (size_t)PROTO_MAX_PAYLOAD - (b->len - e->start)) {
		enc_fail(e, "payload too large (> %lu bytes)", (unsigned long)PROTO_MAX_PAYLOAD);
		return NULL;
	}
	if (n > b->cap - b->len && !enc_grow(e, n))
		return NULL;
	p = b->data + b->len;
	b->len += n;
	return p;
}

/* Append a u8. */
static void enc_u8(struct enc *e, uint8_t v)
{
	uint8_t *p = enc_room(e, 1);

	if (p)
		p[0] = v;
}

/* Append a big-endian u16. */
static void enc_u16(struct enc *e, uint16_t v)
{
	uint8_t *p = enc_room(e, 2);

	if (p)
		be16_put(p, v);
}

/* Append a big-endian u32. */
static void enc_u32(struct enc *e, uint32_t v)
{
	uint8_t *p = enc_room(e, 4);

	if (p)
		be32_put(p, v);
}

/* Append a big-endian u64. */
static void enc_u64(struct enc *e, uint64_t v)
{
	uint8_t *p = enc_room(e, 8);

	if (p)
		be64_put(p, v);
}

/* Append n doubles, bit for bit. */
static void enc_values(struct enc *e, const double *src, size_t n)
{
	uint8_t *p = enc_room(e, n * 8);
	uint64_t bits;
	size_t i;

	if (!p)
		return;
	for (i = 0; i < n; i++) {
		memcpy(&bits, &src[i], sizeof bits);
		be64_put(p + i * 8, bits);
	}
}

/* Append a u8-length string of min..max bytes keeping rule. */
static void enc_str(struct enc *e, const char *s, size_t min, size_t max, enum str_rule rule,
                    const char *what)
{
	const char *why;
	uint8_t *p;
	size_t n;

	if (e->err)
		return;
	if (!s) {
		enc_fail(e, "%s is missing", what);
		return;
	}
	n = str_len_max(s, max);
	if (n < min) {
		enc_fail(e, "%s is empty", what);
		return;
	}
	if (n > max) {
		enc_fail(e, "%s too long (%zu > %zu bytes)", what, strlen(s), max);
		return;
	}
	why = str_rule_check(s, n, rule);
	if (why) {
		enc_fail(e, "%s %s", what, why);
		return;
	}
	p = enc_room(e, 1 + n);
	if (p) {
		p[0] = (uint8_t)n;
		memcpy(p + 1, s, n);
	}
}

/* Append u16-length opaque bytes of at most max. */
static void enc_bytes(struct enc *e, const uint8_t *src, size_t n, size_t max, const char *what)
{
	uint8_t *p;

	if (e->err)
		return;
	if (n > max) {
		enc_fail(e, "%s too long (%zu > %zu bytes)", what, n, max);
		return;
	}
	if (n > 0 && !src) {
		enc_fail(e, "%s is missing", what);
		return;
	}
	p = enc_room(e, 2 + n);
	if (p) {
		be16_put(p, (uint16_t)n);
		if (n > 0)
			memcpy(p + 2, src, n);
	}
}

/* HELLO: who the agent is and its proof of it. */
static void enc_hello(struct enc *e, const struct proto_hello *h)
{
	enc_str(e, h->name, 0, PROTO_NAME_MAX, RULE_HOST, "name");
	enc_str(e, h->version, 0, PROTO_TEXT_MAX, RULE_TEXT, "version");
	enc_u32(e, h->caps);
	enc_str(e, h->os, 0, PROTO_TEXT_MAX, RULE_TEXT, "os");
	enc_str(e, h->kernel, 0, PROTO_TEXT_MAX, RULE_TEXT, "kernel");
	enc_str(e, h->model, 0, PROTO_TEXT_MAX, RULE_TEXT, "model");
	enc_str(e, h->boot_id, 0, PROTO_NAME_MAX, RULE_TEXT, "boot id");
	enc_u64(e, h->uptime_s);
	enc_u64(e, h->run_id);
	enc_bytes(e, h->auth, h->auth_len, PROTO_AUTH_MAX, "auth");
}

/* WELCOME: the schedule and the collectors the server wants. */
static void enc_welcome(struct enc *e, const struct proto_welcome *w)
{
	unsigned i;

	if (w->nmetrics > PROTO_MAX_METRICS) {
		enc_fail(e, "too many metrics (%u > %u)", (unsigned)w->nmetrics, PROTO_MAX_METRICS);
		return;
	}
	if (w->nmetrics > 0 && !w->metrics) {
		enc_fail(e, "metric names are missing");
		return;
	}
	enc_u32(e, w->interval_ms);
	enc_u32(e, w->heartbeat_ms);
	enc_u8(e, w->nmetrics);
	for (i = 0; i < w->nmetrics && !e->err; i++)
		enc_str(e, w->metrics[i], 0, PROTO_KEY_MAX, RULE_KEY, "metric name");
	/* No peers: nothing on the wire, the WELCOME every agent reads. */
	if (w->npeers == 0 || e->err)
		return;
	if (w->npeers > PROTO_MAX_PEERS || !w->peers) {
		enc_fail(e, "peers: %u is not 1..%u, or missing", (unsigned)w->npeers,
		         PROTO_MAX_PEERS);
		return;
	}
	enc_u8(e, w->npeers);
	for (i = 0; i < w->npeers && !e->err; i++)
		enc_str(e, w->peers[i], 1, PROTO_ADDR_MAX, RULE_ADDR, "peer");
}

/* One row of a group with nfields values; keyed says the group has an instance key. */
static void enc_row(struct enc *e, const struct proto_row *r, unsigned nfields, bool keyed)
{
	enc_u64(e, r->time_ms);
	if (!keyed && r->instance && r->instance[0] != '\0')
		enc_fail(e, "instance in a group without instance key");
	enc_str(e, r->instance, 0, PROTO_INST_MAX, RULE_TEXT, "instance");
	if (!r->values)
		enc_fail(e, "row values are missing");
	else
		enc_values(e, r->values, nfields);
}

/* One METRICS group: metric, instance key, field names, rows. */
static void enc_group(struct enc *e, const struct proto_group *g)
{
	uint32_t i;

	enc_str(e, g->metric, 0, PROTO_KEY_MAX, RULE_KEY, "metric");
	enc_str(e, g->inst_key, 0, PROTO_KEY_MAX, RULE_KEY0, "instance key");
	if (g->nfields < 1 || g->nfields > PROTO_MAX_FIELDS)
		enc_fail(e, "field count %u not in 1..%u", (unsigned)g->nfields, PROTO_MAX_FIELDS);
	if (!g->fields)
		enc_fail(e, "field names are missing");
	if (g->nrows > 0 && !g->rows)
		enc_fail(e, "rows are missing");
	if (e->err)
		return;
	enc_u8(e, g->nfields);
	for (i = 0; i < g->nfields && !e->err; i++)
		enc_str(e, g->fields[i], 1, PROTO_KEY_MAX, RULE_KEY, "field name");
	if (!e->err) {
		char buf[96];
		const char *why = group_shape_check(g, buf, sizeof buf);
		if (why)
			enc_fail(e, "%s", why);
	}
	enc_u32(e, g->nrows);
	for (i = 0; i < g->nrows && !e->err; i++)
		enc_row(e, &g->rows[i], g->nfields, g->inst_key[0] != '\0');
}

/* METRICS: one batch of groups. */
static void enc_metrics(struct enc *e, const struct proto_metrics *m)
{
	uint32_t i;

	if (m->ngroups > UINT16_MAX) {
		enc_fail(e, "too many groups (%lu > %u)", (unsigned long)m->ngroups, UINT16_MAX);
		return;
	}
	if (m->ngroups > 0 && !m->groups) {
		enc_fail(e, "groups are missing");
		return;
	}
	if (m->seq == 0) {
		enc_fail(e, "seq is 0 (sequences start at 1)");
		return;
	}
	const char *dup = metrics_repeated(m);
	if (dup) {
		enc_fail(e, "metric %s appears twice in one batch", dup);
		return;
	}
	enc_u64(e, m->seq);
	enc_u16(e, (uint16_t)m->ngroups);
	for (i = 0; i < m->ngroups && !e->err; i++)
		enc_group(e, &m->groups[i]);
}

/* ALARM: seq, time, level, source, name, message. */
static void enc_alarm(struct enc *e, const struct proto_alarm *a)
{
	if (a->level > PROTO_LEVEL_UNKNOWN || a->source > PROTO_ALARM_LOCAL) {
		enc_fail(e, "alarm level or source out of range");
		return;
	}
	if (a->seq == 0) {
		enc_fail(e, "alarm seq is 0 (sequences start at 1)");
		return;
	}
	enc_u64(e, a->seq);
	enc_u64(e, a->time_ms);
	enc_u8(e, a->level);
	enc_u8(e, a->source);
	enc_str(e, a->name, 1, PROTO_KEY_MAX, RULE_KEY, "alarm name");
	enc_str(e, a->message, 0, PROTO_TEXT_MAX, RULE_TEXT, "alarm message");
}

/* Append the payload of msg. */
static void enc_payload(struct enc *e, const struct proto_msg *msg)
{
	switch (msg->type) {
	case PROTO_HELLO:
		enc_hello(e, &msg->u.hello);
		break;
	case PROTO_WELCOME:
		enc_welcome(e, &msg->u.welcome);
		break;
	case PROTO_HEARTBEAT:
		enc_u64(e, msg->u.heartbeat.time_ms);
		break;
	case PROTO_METRICS:
		enc_metrics(e, &msg->u.metrics);
		break;
	case PROTO_ACK:
	case PROTO_ALARM_ACK:
		enc_u64(e, msg->u.ack.seq);
		break;
	case PROTO_ALARM:
		enc_alarm(e, &msg->u.alarm);
		break;
	case PROTO_POLL:
		enc_u32(e, msg->u.poll.id);
		break;
	case PROTO_BYE:
		enc_str(e, msg->u.bye.reason, 0, PROTO_TEXT_MAX, RULE_TEXT, "reason");
		break;
	case PROTO_CHALLENGE: {
		uint8_t *p = enc_room(e, PROTO_NONCE_SIZE);
		if (p)
			memcpy(p, msg->u.challenge.nonce, PROTO_NONCE_SIZE);
		break;
	}
	default:
		enc_fail(e, "unknown message type %u", (unsigned)msg->type);
		break;
	}
}

/* Append one frame holding msg to out; out->len is unchanged on failure. */
int proto_encode(const struct proto_msg *msg, struct proto_buf *out, const char **err)
{
	struct enc e = {.out = out, .start = out->len};
	uint8_t *hdr;

	if (err)
		*err = NULL;
	enc_room(&e, PROTO_HEADER_SIZE);
	enc_payload(&e, msg);
	if (e.err) {
		out->len = e.start;
		if (err)
			*err = e.err;
		return -1;
	}
	hdr = out->data + e.start;
	be16_put(hdr, PROTO_MAGIC);
	hdr[2] = PROTO_VERSION;
	hdr[3] = (uint8_t)msg->type;
	be32_put(hdr + 4, (uint32_t)(out->len - e.start - PROTO_HEADER_SIZE));
	return 0;
}

/* Empty b for reuse, keeping its storage. */
void proto_buf_reset(struct proto_buf *b)
{
	b->len = 0;
}

/* Release b's storage and leave it empty. */
void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* Name of a message type for logs, "unknown" for others. */
const char *proto_type_name(unsigned type)
{
	switch (type) {
	case PROTO_HELLO:
		return "HELLO";
	case PROTO_WELCOME:
		return "WELCOME";
	case PROTO_HEARTBEAT:
		return "HEARTBEAT";
	case PROTO_METRICS:
		return "METRICS";
	case PROTO_ACK:
		return "ACK";
	case PROTO_POLL:
		return "POLL";
	case PROTO_BYE:
		return "BYE";
	case PROTO_CHALLENGE:
		return "CHALLENGE";
	case PROTO_ALARM:
		return "ALARM";
	case PROTO_ALARM_ACK:
		return "ALARM_ACK";
	default:
		return "unknown";
	}
}
