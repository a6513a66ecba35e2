/* Unit tests for the frame codec: exact bytes, round trips, limits, truncation, hostile input,
 * fuzzing. */
#include "proto.h"
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* Default fuzz iterations per mode; PROTO_FUZZ_ITERS overrides (e.g. lower under valgrind). */
#define FUZZ_ITERS_DEFAULT 200000
/* A decoded message may take at most this many arena bytes per frame byte (plus a constant):
 * the allocation follows the frame's size, never a count the peer claims. */
#define ARENA_PER_BYTE 10
#define ARENA_SLACK    512

/* A frame built by hand, byte by byte, independently of the encoder. */
struct raw {
	uint8_t b[8192];
	size_t n;
};

/* Why the last decode_raw or decode_copy call failed. */
static const char *last_err;

/* Append n bytes to a hand-built frame. */
static void raw_bytes(struct raw *r, const void *p, size_t n)
{
	if (n > sizeof r->b - r->n) {
		fprintf(stderr, "raw frame overflow\n");
		abort();
	}
	memcpy(r->b + r->n, p, n);
	r->n += n;
}

/* Append a u8. */
static void raw_u8(struct raw *r, unsigned v)
{
	uint8_t b = (uint8_t)v;

	raw_bytes(r, &b, 1);
}

/* Append a big-endian u16. */
static void raw_u16(struct raw *r, unsigned v)
{
	raw_u8(r, v >> 8 & 0xff);
	raw_u8(r, v & 0xff);
}

/* Append a big-endian u32. */
static void raw_u32(struct raw *r, uint32_t v)
{
	raw_u16(r, v >> 16);
	raw_u16(r, v & 0xffff);
}

/* Append a big-endian u64. */
static void raw_u64(struct raw *r, uint64_t v)
{
	raw_u32(r, (uint32_t)(v >> 32));
	raw_u32(r, (uint32_t)v);
}

/* Append a wire string: u8 length, bytes. */
static void raw_str(struct raw *r, const char *s)
{
	raw_u8(r, (unsigned)strlen(s));
	raw_bytes(r, s, strlen(s));
}

/* Append a wire string of n copies of c. */
static void raw_fill(struct raw *r, size_t n, char c)
{
	raw_u8(r, (unsigned)n);
	while (n-- > 0)
		raw_bytes(r, &c, 1);
}

/* Start a frame of the given type; raw_end fills in the length. */
static void raw_begin(struct raw *r, unsigned type)
{
	r->n = 0;
	raw_u16(r, PROTO_MAGIC);
	raw_u8(r, PROTO_VERSION);
	raw_u8(r, type);
	raw_u32(r, 0);
}

/* Write the header's payload length for what has been appended. */
static void raw_end(struct raw *r)
{
	uint32_t len = (uint32_t)(r->n - PROTO_HEADER_SIZE);

	r->b[4] = (uint8_t)(len >> 24);
	r->b[5] = (uint8_t)(len >> 16);
	r->b[6] = (uint8_t)(len >> 8);
	r->b[7] = (uint8_t)len;
}

/* Overwrite the payload length in a frame's header. */
static void frame_set_length(uint8_t *frame, uint32_t len)
{
	frame[4] = (uint8_t)(len >> 24);
	frame[5] = (uint8_t)(len >> 16);
	frame[6] = (uint8_t)(len >> 8);
	frame[7] = (uint8_t)len;
}

/* Whether msg's storage stays within ARENA_PER_BYTE per frame byte. */
static bool arena_bounded(const struct proto_msg *msg, size_t frame_len)
{
#if defined(__GLIBC__)
	return msg->mem == NULL ||
	       malloc_usable_size(msg->mem) <= ARENA_PER_BYTE * frame_len + ARENA_SLACK;
#else
	(void)msg;
	(void)frame_len;
	return true;
#endif
}

/* Decode n bytes from an exactly sized heap copy, which is freed before returning so
 * that ASan catches both over-reads and a message still pointing into the input. */
static enum proto_status decode_copy(const uint8_t *frame, size_t n, uint32_t max,
                                     struct proto_msg *msg, size_t *used)
{
	uint8_t *copy = n ? malloc(n) : NULL;
	enum proto_status st;

	if (n && !copy)
		abort();
	if (n)
		memcpy(copy, frame, n);
	st = proto_decode(copy, n, max, msg, used, &last_err);
	free(copy);
	return st;
}

/* Decode a hand-built frame and release the result; only the status matters. */
static enum proto_status decode_raw(const struct raw *r)
{
	struct proto_msg msg;
	enum proto_status st;
	size_t used;

	st = decode_copy(r->b, r->n, PROTO_MAX_PAYLOAD, &msg, &used);
	if (st == PROTO_OK && used != r->n)
		st = PROTO_NEED_MORE; /* a hand-built frame is always whole: report the mismatch */
	proto_msg_free(&msg);
	return st;
}

/* Whether the last error mentions text. */
static bool err_has(const char *text)
{
	return last_err && strstr(last_err, text) != NULL;
}

/* A double with the given IEEE-754 bits. */
static double bits_double(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof d);
	return d;
}

static const uint8_t auth_proof[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x50, 0x4d};

/* A HELLO with every field set. */
static void sample_hello(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_HELLO;
	m->u.hello.name = "pi-kitchen";
	m->u.hello.version = "pimon-agent 0.1.0";
	m->u.hello.caps = PROTO_CAP_POLL | 0x80000000u;
	m->u.hello.os = "Raspbian GNU/Linux 12 (bookworm)";
	m->u.hello.kernel = "6.1.0-rpi7-rpi-v8";
	m->u.hello.model = "";
	m->u.hello.boot_id = "0b1e2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e";
	m->u.hello.uptime_s = 0x0123456789abcdefull;
	m->u.hello.run_id = 0xfedcba9876543210ull;
	m->u.hello.auth_len = sizeof auth_proof;
	m->u.hello.auth = auth_proof;
}

static const char *const welcome_metrics[] = {"cpu", "mem", "disk", "net", "pi"};

/* A WELCOME naming a few collectors. */
static void sample_welcome(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_WELCOME;
	m->u.welcome.interval_ms = 10000;
	m->u.welcome.heartbeat_ms = 0xfedcba98u;
	m->u.welcome.nmetrics = 5;
	m->u.welcome.metrics = welcome_metrics;
}

/* A HEARTBEAT. */
static void sample_heartbeat(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_HEARTBEAT;
	m->u.heartbeat.time_ms = 1700000000123ull;
}

static const char *const cpu_fields[] = {"user", "system", "idle", "iowait"};
static const char *const disk_fields[] = {"used_bytes", "total_bytes"};
static const char *const net_fields[] = {"rx_bytes", "tx_bytes", "errors"};
static const char *const temp_fields[] = {"celsius"};
static double cpu_values[2][4];
static double disk_values[3][2];
static double net_values[2][3];
static struct proto_row cpu_rows[2];
static struct proto_row disk_rows[3];
static struct proto_row net_rows[2];
static struct proto_group sample_groups[4];

/* A METRICS batch: keyed and unkeyed groups, several rows, odd doubles, an empty group. */
static void sample_metrics(struct proto_msg *m)
{
	static const double cpu[2][4] = {{12.5, 3.25, 84.0, 0.25}, {1e-300, 0.0, 100.0, 1e300}};
	static const double disk[3][2] = {{1.5e9, 3.2e10}, {5.1e7, 5.4e8}, {0.0, 0.0}};

	memcpy(cpu_values, cpu, sizeof cpu);
	memcpy(disk_values, disk, sizeof disk);
	net_values[0][0] = bits_double(0x7ff8000000000001ull); /* quiet NaN with payload */
	net_values[0][1] = bits_double(0x8000000000000000ull); /* -0.0 */
	net_values[0][2] = bits_double(0x7ff0000000000000ull); /* +inf */
	net_values[1][0] = bits_double(0x0000000000000001ull); /* smallest denormal */
	net_values[1][1] = bits_double(0xfff0000000000000ull); /* -inf */
	net_values[1][2] = bits_double(0x7fefffffffffffffull); /* DBL_MAX */

	cpu_rows[0] = (struct proto_row){1700000000000ull, "", cpu_values[0]};
	cpu_rows[1] = (struct proto_row){1700000010000ull, "", cpu_values[1]};
	disk_rows[0] = (struct proto_row){1700000000001ull, "/", disk_values[0]};
	disk_rows[1] = (struct proto_row){1700000000002ull, "/boot/firmware", disk_values[1]};
	disk_rows[2] = (struct proto_row){1700000000003ull, "", disk_values[2]};
	net_rows[0] = (struct proto_row){UINT64_MAX, "eth0", net_values[0]};
	net_rows[1] = (struct proto_row){0, "wlan0", net_values[1]};

	sample_groups[0] = (struct proto_group){"cpu", "", 4, cpu_fields, 2, cpu_rows};
	sample_groups[1] = (struct proto_group){"disk", "mount", 2, disk_fields, 3, disk_rows};
	sample_groups[2] = (struct proto_group){"net", "iface", 3, net_fields, 2, net_rows};
	sample_groups[3] = (struct proto_group){"temp", "", 1, temp_fields, 0, NULL};

	memset(m, 0, sizeof *m);
	m->type = PROTO_METRICS;
	m->u.metrics.seq = 0x8000000000000001ull;
	m->u.metrics.ngroups = 4;
	m->u.metrics.groups = sample_groups;
}

/* An ACK. */
static void sample_ack(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_ACK;
	m->u.ack.seq = 42;
}

/* A POLL. */
static void sample_poll(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_POLL;
	m->u.poll.id = 0xdeadbeefu;
}

/* A BYE. */
static void sample_bye(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_BYE;
	m->u.bye.reason = "unsupported version";
}

/* A CHALLENGE with a nonce of every byte value pattern. */
static void sample_challenge(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_CHALLENGE;
	for (int i = 0; i < PROTO_NONCE_SIZE; i++)
		m->u.challenge.nonce[i] = (uint8_t)(i * 37 + 255);
}

/* An ALARM from a check. */
static void sample_alarm(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_ALARM;
	m->u.alarm.seq = 7;
	m->u.alarm.time_ms = 1700000000123ull;
	m->u.alarm.level = PROTO_LEVEL_CRITICAL;
	m->u.alarm.source = PROTO_ALARM_CHECK;
	m->u.alarm.name = "root_disk";
	m->u.alarm.message = "DISK CRITICAL - free space: / 10 MB (1% inode=2%);";
}

/* An ALARM_ACK. */
static void sample_alarm_ack(struct proto_msg *m)
{
	memset(m, 0, sizeof *m);
	m->type = PROTO_ALARM_ACK;
	m->u.ack.seq = UINT64_MAX;
}

/* One valid message of every type. */
static void (*const samples[])(struct proto_msg *) = {
    sample_hello, sample_welcome, sample_heartbeat, sample_metrics, sample_ack,
    sample_poll,  sample_bye,     sample_challenge, sample_alarm,   sample_alarm_ack,
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* Compare two HELLOs field by field. */
static void check_hello_same(const struct proto_hello *a, const struct proto_hello *b)
{
	CHECK_STR(a->name, b->name);
	CHECK_STR(a->version, b->version);
	CHECK(a->caps == b->caps);
	CHECK_STR(a->os, b->os);
	CHECK_STR(a->kernel, b->kernel);
	CHECK_STR(a->model, b->model);
	CHECK_STR(a->boot_id, b->boot_id);
	CHECK(a->uptime_s == b->uptime_s);
	CHECK(a->run_id == b->run_id);
	CHECK(a->auth_len == b->auth_len);
	CHECK(a->auth_len == 0 || memcmp(a->auth, b->auth, a->auth_len) == 0);
}

/* Compare two WELCOMEs field by field. */
static void check_welcome_same(const struct proto_welcome *a, const struct proto_welcome *b)
{
	unsigned i;

	CHECK(a->interval_ms == b->interval_ms);
	CHECK(a->heartbeat_ms == b->heartbeat_ms);
	CHECK(a->nmetrics == b->nmetrics);
	for (i = 0; i < a->nmetrics && i < b->nmetrics; i++)
		CHECK_STR(a->metrics[i], b->metrics[i]);
	CHECK(a->npeers == b->npeers);
	for (i = 0; i < a->npeers && i < b->npeers; i++)
		CHECK_STR(a->peers[i], b->peers[i]);
}

/* Compare two METRICS groups field by field, doubles bit for bit. */
static void check_group_same(const struct proto_group *a, const struct proto_group *b)
{
	const struct proto_row *ra, *rb;
	uint32_t i;

	CHECK_STR(a->metric, b->metric);
	CHECK_STR(a->inst_key, b->inst_key);
	CHECK(a->nfields == b->nfields);
	CHECK(a->nrows == b->nrows);
	if (a->nfields != b->nfields || a->nrows != b->nrows)
		return;
	for (i = 0; i < a->nfields; i++)
		CHECK_STR(a->fields[i], b->fields[i]);
	for (i = 0; i < a->nrows; i++) {
		ra = &a->rows[i];
		rb = &b->rows[i];
		CHECK(ra->time_ms == rb->time_ms);
		CHECK_STR(ra->instance, rb->instance);
		CHECK(memcmp(ra->values, rb->values, a->nfields * sizeof(double)) == 0);
	}
}

/* Compare two METRICS batches field by field. */
static void check_metrics_same(const struct proto_metrics *a, const struct proto_metrics *b)
{
	uint32_t i;

	CHECK(a->seq == b->seq);
	CHECK(a->ngroups == b->ngroups);
	for (i = 0; i < a->ngroups && i < b->ngroups; i++)
		check_group_same(&a->groups[i], &b->groups[i]);
}

/* Compare two messages of any type field by field. */
static void check_msg_same(const struct proto_msg *a, const struct proto_msg *b)
{
	CHECK(a->type == b->type);
	if (a->type != b->type)
		return;
	switch (a->type) {
	case PROTO_HELLO:
		check_hello_same(&a->u.hello, &b->u.hello);
		break;
	case PROTO_WELCOME:
		check_welcome_same(&a->u.welcome, &b->u.welcome);
		break;
	case PROTO_HEARTBEAT:
		CHECK(a->u.heartbeat.time_ms == b->u.heartbeat.time_ms);
		break;
	case PROTO_METRICS:
		check_metrics_same(&a->u.metrics, &b->u.metrics);
		break;
	case PROTO_ACK:
	case PROTO_ALARM_ACK:
		CHECK(a->u.ack.seq == b->u.ack.seq);
		break;
	case PROTO_ALARM:
		CHECK(a->u.alarm.seq == b->u.alarm.seq);
		CHECK(a->u.alarm.time_ms == b->u.alarm.time_ms);
		CHECK(a->u.alarm.level == b->u.alarm.level);
		CHECK(a->u.alarm.source == b->u.alarm.source);
		CHECK_STR(a->u.alarm.name, b->u.alarm.name);
		CHECK_STR(a->u.alarm.message, b->u.alarm.message);
		break;
	case PROTO_POLL:
		CHECK(a->u.poll.id == b->u.poll.id);
		break;
	case PROTO_BYE:
		CHECK_STR(a->u.bye.reason, b->u.bye.reason);
		break;
	case PROTO_CHALLENGE:
		CHECK(memcmp(a->u.challenge.nonce, b->u.challenge.nonce, PROTO_NONCE_SIZE) == 0);
		break;
	default:
		CHECK(!"unexpected message type");
		break;
	}
}

/* Encode msg into a fresh buffer, which the caller frees; aborts the test run on failure. */
static void encode_fresh(const struct proto_msg *msg, struct proto_buf *out)
{
	const char *err = NULL;

	memset(out, 0, sizeof *out);
	if (proto_encode(msg, out, &err) != 0) {
		fprintf(stderr, "encode of a valid %s failed: %s\n", proto_type_name(msg->type),
		        err ? err : "(no error)");
		abort();
	}
}

/* Encode, decode and compare one message. */
static void check_round_trip(const struct proto_msg *in)
{
	struct proto_msg out;
	struct proto_buf buf;
	size_t used;

	encode_fresh(in, &buf);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_OK);
	CHECK(used == buf.len);
	check_msg_same(in, &out);
	CHECK(arena_bounded(&out, buf.len));
	proto_msg_free(&out);
	CHECK(out.mem == NULL);
	proto_buf_free(&buf);
}

/* Every message type survives encode and decode unchanged. */
static void test_round_trip_all_types(void)
{
	struct proto_msg m;
	size_t i;

	for (i = 0; i < NSAMPLES; i++) {
		samples[i](&m);
		check_round_trip(&m);
	}
}

/* Zero, maximum and empty values round-trip too. */
static void test_round_trip_extremes(void)
{
	static const char *const none[] = {NULL};
	struct proto_msg m;

	sample_heartbeat(&m);
	m.u.heartbeat.time_ms = 0;
	check_round_trip(&m);
	m.u.heartbeat.time_ms = UINT64_MAX;
	check_round_trip(&m);
	sample_poll(&m);
	m.u.poll.id = UINT32_MAX;
	check_round_trip(&m);
	sample_bye(&m);
	m.u.bye.reason = "";
	check_round_trip(&m);
	sample_welcome(&m);
	m.u.welcome.nmetrics = 0;
	m.u.welcome.metrics = none;
	check_round_trip(&m);
	sample_metrics(&m);
	m.u.metrics.ngroups = 0;
	check_round_trip(&m);
	sample_hello(&m);
	m.u.hello.auth_len = 0;
	m.u.hello.auth = NULL;
	m.u.hello.name = "a";
	m.u.hello.version = "";
	m.u.hello.boot_id = "";
	check_round_trip(&m);
}

/* Strings, counts and auth exactly at their limits are accepted both ways. */
static void test_round_trip_at_limits(void)
{
	static char name[PROTO_NAME_MAX + 1], text[PROTO_TEXT_MAX + 1];
	static char key[PROTO_KEY_MAX + 1], inst[PROTO_INST_MAX + 1];
	static char field_names[PROTO_MAX_FIELDS][PROTO_KEY_MAX + 1];
	static uint8_t auth[PROTO_AUTH_MAX];
	static const char *names[PROTO_MAX_METRICS];
	static const char *fields[PROTO_MAX_FIELDS];
	static double values[PROTO_MAX_FIELDS];
	struct proto_row row;
	struct proto_group group;
	struct proto_msg m;
	size_t i;

	memset(name, 'n', PROTO_NAME_MAX);
	memset(text, 't', PROTO_TEXT_MAX);
	memset(key, 'k', PROTO_KEY_MAX);
	memset(inst, 'i', PROTO_INST_MAX);
	memset(auth, 0xa5, sizeof auth);
	for (i = 0; i < PROTO_MAX_METRICS; i++)
		names[i] = key;
	/* Fields are columns of one file: distinct, none the instance key. */
	for (i = 0; i < PROTO_MAX_FIELDS; i++) {
		memset(field_names[i], 'f', PROTO_KEY_MAX);
		field_names[i][PROTO_KEY_MAX - 2] = (char)('a' + i / 10);
		field_names[i][PROTO_KEY_MAX - 1] = (char)('0' + i % 10);
		fields[i] = field_names[i];
		values[i] = (double)i / 3.0;
	}

	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO;
	m.u.hello = (struct proto_hello){.name = name,
	                                 .version = text,
	                                 .caps = UINT32_MAX,
	                                 .os = text,
	                                 .kernel = text,
	                                 .model = text,
	                                 .boot_id = name,
	                                 .uptime_s = UINT64_MAX,
	                                 .run_id = UINT64_MAX,
	                                 .auth_len = PROTO_AUTH_MAX,
	                                 .auth = auth};
	check_round_trip(&m);

	m.type = PROTO_WELCOME;
	static char addr[PROTO_ADDR_MAX + 1];
	static const char *addrs[PROTO_MAX_PEERS];
	memset(addr, 'a', PROTO_ADDR_MAX - 6);
	memcpy(addr + PROTO_ADDR_MAX - 6, ":65535", 6);
	for (i = 0; i < PROTO_MAX_PEERS; i++)
		addrs[i] = addr;
	m.u.welcome =
	    (struct proto_welcome){UINT32_MAX, UINT32_MAX, PROTO_MAX_METRICS, names, 0, NULL};
	check_round_trip(&m);
	m.u.welcome.npeers = PROTO_MAX_PEERS;
	m.u.welcome.peers = addrs;
	check_round_trip(&m);

	row = (struct proto_row){UINT64_MAX, inst, values};
	group = (struct proto_group){key, key, PROTO_MAX_FIELDS, fields, 1, &row};
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){UINT64_MAX, 1, &group};
	check_round_trip(&m);

	m.type = PROTO_BYE;
	m.u.bye.reason = text;
	check_round_trip(&m);
}

/* The decoded message owns its storage: mem is set, and free clears it. */
static void test_decoded_storage_is_owned(void)
{
	struct proto_msg in, out;
	struct proto_buf buf;
	size_t used;

	sample_metrics(&in);
	encode_fresh(&in, &buf);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_OK);
	CHECK(out.mem != NULL);
	/* decode_copy freed the input, so these reads prove nothing points into it */
	CHECK_STR(out.u.metrics.groups[1].rows[1].instance, "/boot/firmware");
	CHECK(out.u.metrics.groups[3].nrows == 0);
	proto_msg_free(&out);
	CHECK(out.mem == NULL);
	proto_msg_free(&out); /* a second free is harmless */
	memset(&out, 0, sizeof out);
	proto_msg_free(&out);
	proto_msg_free(&in); /* caller-built message: mem is NULL */
	CHECK(in.mem == NULL);
	proto_msg_free(NULL);
	proto_buf_free(&buf);
	CHECK(buf.data == NULL && buf.len == 0 && buf.cap == 0);
}

/* The exact bytes of an ACK, as PROTOCOL.md shows them. */
static void test_exact_bytes_ack(void)
{
	static const uint8_t want[] = {0x50, 0x4d, 0x01, 0x05, 0x00, 0x00, 0x00, 0x08,
	                               0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
	struct proto_msg m;
	struct proto_buf buf;

	memset(&m, 0, sizeof m);
	m.type = PROTO_ACK;
	m.u.ack.seq = 0x0102030405060708ull;
	encode_fresh(&m, &buf);
	CHECK(buf.len == sizeof want);
	CHECK(buf.len == sizeof want && memcmp(buf.data, want, sizeof want) == 0);
	proto_buf_free(&buf);
}

/* The exact bytes of the METRICS example in PROTOCOL.md. */
static void test_exact_bytes_metrics_example(void)
{
	static const uint8_t want[] = {
	    0x50, 0x4d, 0x01, 0x04, 0x00, 0x00, 0x00, 0x2b, /* header */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* seq 1 */
	    0x00, 0x01,                                     /* ngroups 1 */
	    0x04, 'l',  'o',  'a',  'd',                    /* metric */
	    0x00,                                           /* inst_key "" */
	    0x01,                                           /* nfields 1 */
	    0x04, 'a',  'v',  'g',  '1',                    /* field */
	    0x00, 0x00, 0x00, 0x01,                         /* nrows 1 */
	    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* time_ms */
	    0x00,                                           /* instance "" */
	    0x3f, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0.5 */
	};
	static const char *const fields[] = {"avg1"};
	static const double value = 0.5;
	struct proto_row row = {1700000000000ull, "", &value};
	struct proto_group group = {"load", "", 1, fields, 1, &row};
	struct proto_msg m, out;
	struct proto_buf buf;
	size_t used;

	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){1, 1, &group};
	encode_fresh(&m, &buf);
	CHECK(buf.len == sizeof want);
	CHECK(buf.len == sizeof want && memcmp(buf.data, want, sizeof want) == 0);
	proto_buf_free(&buf);
	CHECK(decode_copy(want, sizeof want, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_OK);
	check_msg_same(&m, &out);
	proto_msg_free(&out);
}

/* Every proper prefix of a valid frame asks for more and reads nothing beyond it. */
static void test_every_truncation_needs_more(void)
{
	struct proto_msg m, out;
	struct proto_buf buf;
	size_t i, k, used, bad = 0;

	for (i = 0; i < NSAMPLES; i++) {
		samples[i](&m);
		encode_fresh(&m, &buf);
		for (k = 0; k < buf.len; k++) {
			if (decode_copy(buf.data, k, PROTO_MAX_PAYLOAD, &out, &used) !=
			        PROTO_NEED_MORE ||
			    out.mem != NULL || used != 0)
				bad++;
			proto_msg_free(&out);
		}
		proto_buf_free(&buf);
	}
	CHECK(bad == 0);
}

/* A header that claims less payload than the message needs is a bad frame. */
static void test_short_payload_is_bad(void)
{
	struct proto_msg m, out;
	struct proto_buf buf;
	size_t i, k, used, bad = 0;

	for (i = 0; i < NSAMPLES; i++) {
		samples[i](&m);
		encode_fresh(&m, &buf);
		for (k = PROTO_HEADER_SIZE; k < buf.len; k++) {
			frame_set_length(buf.data, (uint32_t)(k - PROTO_HEADER_SIZE));
			if (decode_copy(buf.data, k, PROTO_MAX_PAYLOAD, &out, &used) != PROTO_BAD ||
			    !last_err || out.mem != NULL)
				bad++;
			proto_msg_free(&out);
		}
		proto_buf_free(&buf);
	}
	CHECK(bad == 0);
}

/* A byte after the last field is a bad frame, for every type. */
static void test_trailing_bytes_are_bad(void)
{
	struct proto_msg m, out;
	struct proto_buf buf;
	uint8_t *longer;
	size_t i, used;

	for (i = 0; i < NSAMPLES; i++) {
		samples[i](&m);
		encode_fresh(&m, &buf);
		longer = malloc(buf.len + 1);
		if (!longer)
			abort();
		memcpy(longer, buf.data, buf.len);
		longer[buf.len] = 0;
		frame_set_length(longer, (uint32_t)(buf.len + 1 - PROTO_HEADER_SIZE));
		CHECK(decode_copy(longer, buf.len + 1, PROTO_MAX_PAYLOAD, &out, &used) ==
		      PROTO_BAD);
		/* WELCOME's optional peers start with a count, which 0 breaks. */
		CHECK(err_has(m.type == PROTO_WELCOME ? "peer count 0 is not 1..16"
		                                      : "trailing bytes (1 after the last field)"));
		CHECK(out.mem == NULL);
		free(longer);
		proto_buf_free(&buf);
	}
}

/* Header fields are parsed, and NEED_MORE comes before 8 bytes. */
static void test_header_parse(void)
{
	static const uint8_t ack[] = {0x50, 0x4d, 0x01, 0x05, 0x00, 0x00, 0x00, 0x08};
	struct proto_header hdr;
	const char *err = "unset";

	CHECK(proto_header_parse(ack, 7, PROTO_MAX_PAYLOAD, &hdr, &err) == PROTO_NEED_MORE);
	CHECK(proto_header_parse(ack, 8, PROTO_MAX_PAYLOAD, &hdr, &err) == PROTO_OK);
	CHECK(err == NULL);
	CHECK(hdr.magic == PROTO_MAGIC && hdr.version == 1 && hdr.type == PROTO_ACK);
	CHECK(hdr.length == 8);
	CHECK(proto_header_parse(ack, 8, 8, &hdr, NULL) == PROTO_OK);
	CHECK(proto_header_parse(ack, 8, 7, &hdr, &err) == PROTO_BAD);
	CHECK_STR(err, "frame too large (8 > 7 bytes)");
}

/* Decode a bare 8-byte header built from the given fields. */
static enum proto_status decode_header_only(unsigned magic, unsigned version, unsigned type,
                                            uint32_t length, uint32_t max)
{
	struct proto_msg msg;
	struct raw r = {.n = 0};
	enum proto_status st;
	size_t used;

	raw_u16(&r, magic);
	raw_u8(&r, version);
	raw_u8(&r, type);
	raw_u32(&r, length);
	st = decode_copy(r.b, r.n, max, &msg, &used);
	proto_msg_free(&msg);
	return st;
}

/* Bad magic, version, type or length are reported as soon as the header is in. */
static void test_bad_headers(void)
{
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_POLL, 4, PROTO_MAX_PAYLOAD) ==
	      PROTO_NEED_MORE);
	CHECK(decode_header_only(0x504e, 1, PROTO_POLL, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(err_has("bad magic"));
	CHECK(decode_header_only(0x4d50, 1, PROTO_POLL, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 0, PROTO_POLL, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(err_has("unsupported version"));
	CHECK(decode_header_only(PROTO_MAGIC, 2, PROTO_POLL, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 1, 0, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(err_has("unknown message type 0"));
	CHECK(decode_header_only(PROTO_MAGIC, 1, 11, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 1, 255, 4, PROTO_MAX_PAYLOAD) == PROTO_BAD);
}

/* A length beyond max_payload, or beyond PROTO_MAX_PAYLOAD whatever the caller allows, is bad. */
static void test_oversized_length_is_bad(void)
{
	char want[64];

	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, PROTO_MAX_PAYLOAD,
	                         PROTO_MAX_PAYLOAD) == PROTO_NEED_MORE);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, PROTO_MAX_PAYLOAD + 1,
	                         PROTO_MAX_PAYLOAD) == PROTO_BAD);
	snprintf(want, sizeof want, "frame too large (%lu > %lu bytes)",
	         (unsigned long)PROTO_MAX_PAYLOAD + 1, (unsigned long)PROTO_MAX_PAYLOAD);
	CHECK(last_err && strcmp(last_err, want) == 0);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, PROTO_MAX_PAYLOAD + 1,
	                         UINT32_MAX) == PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, UINT32_MAX, UINT32_MAX) ==
	      PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, 4097, 4096) == PROTO_BAD);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_METRICS, 4096, 4096) == PROTO_NEED_MORE);
	CHECK(decode_header_only(PROTO_MAGIC, 1, PROTO_HEARTBEAT, 1, 0) == PROTO_BAD);
}

/* A whole frame is accepted at exactly max_payload and refused one byte below. */
static void test_max_payload_argument(void)
{
	struct proto_msg m, out;
	struct proto_buf buf;
	uint32_t payload;
	size_t used;

	sample_metrics(&m);
	encode_fresh(&m, &buf);
	payload = (uint32_t)(buf.len - PROTO_HEADER_SIZE);
	CHECK(decode_copy(buf.data, buf.len, payload, &out, &used) == PROTO_OK);
	proto_msg_free(&out);
	CHECK(decode_copy(buf.data, buf.len, payload - 1, &out, &used) == PROTO_BAD);
	CHECK(err_has("too large"));
	proto_buf_free(&buf);
}

/* A HELLO with a name of name_len bytes and auth_len bytes of proof. */
static void raw_hello(struct raw *r, size_t name_len, size_t auth_len)
{
	size_t i;

	raw_begin(r, PROTO_HELLO);
	raw_fill(r, name_len, 'n');
	raw_str(r, "0.1.0");
	raw_u32(r, PROTO_CAP_POLL);
	raw_str(r, "Linux");
	raw_str(r, "6.1");
	raw_str(r, "");
	raw_str(r, "boot");
	raw_u64(r, 12345);
	raw_u64(r, 67890);
	raw_u16(r, (unsigned)auth_len);
	for (i = 0; i < auth_len; i++)
		raw_u8(r, (unsigned)i);
	raw_end(r);
}

/* One group of a hand-built METRICS frame. */
struct raw_group {
	size_t metric_len; /* metric is this many 'm' */
	size_t key_len;    /* instance key is this many 'k' */
	unsigned nfields;  /* each field name is field_len bytes: 'f's, then a letter of its own */
	size_t field_len;
	const char *inst; /* instance of the one row */
	size_t inst_len;  /* or, when inst is NULL, this many 'i' */
};

/* A METRICS frame with one group described by g and one row. */
static void raw_metrics(struct raw *r, const struct raw_group *g)
{
	unsigned i;

	raw_begin(r, PROTO_METRICS);
	raw_u64(r, 7);
	raw_u16(r, 1);
	raw_fill(r, g->metric_len, 'm');
	raw_fill(r, g->key_len, 'k');
	raw_u8(r, g->nfields);
	for (i = 0; i < g->nfields; i++) {
		static const char own[] = "abcdefghijlmnopqrstuvwxyz0123456789";
		raw_u8(r, (unsigned)g->field_len);
		for (size_t k = 0; k + 1 < g->field_len; k++)
			raw_u8(r, 'f');
		if (g->field_len)
			raw_u8(r, (unsigned char)own[i % (sizeof own - 1)]);
	}
	raw_u32(r, 1);
	raw_u64(r, 1700000000000ull);
	if (g->inst)
		raw_str(r, g->inst);
	else
		raw_fill(r, g->inst_len, 'i');
	for (i = 0; i < g->nfields; i++)
		raw_u64(r, 0x4059000000000000ull); /* 100.0 */
	raw_end(r);
}

/* Status of a one-group METRICS frame. */
static enum proto_status decode_group(struct raw_group g)
{
	struct raw r;

	raw_metrics(&r, &g);
	return decode_raw(&r);
}

/* Strings one byte over their limit are bad; at the limit they are fine. */
static void test_long_strings_are_bad(void)
{
	static const struct raw_group ok = {4, 5, 2, 4, "eth0", 0};
	struct raw_group g;
	struct raw r;

	raw_hello(&r, PROTO_NAME_MAX, 0);
	CHECK(decode_raw(&r) == PROTO_OK);
	raw_hello(&r, PROTO_NAME_MAX + 1, 0);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK_STR(last_err, "name too long (65 > 64 bytes)");

	CHECK(decode_group(ok) == PROTO_OK);
	g = ok;
	g.metric_len = PROTO_KEY_MAX;
	CHECK(decode_group(g) == PROTO_OK);
	g.metric_len = PROTO_KEY_MAX + 1;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("metric too long"));
	g = ok;
	g.key_len = PROTO_KEY_MAX + 1;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("instance key too long"));
	g = ok;
	g.field_len = PROTO_KEY_MAX;
	CHECK(decode_group(g) == PROTO_OK);
	g.field_len = PROTO_KEY_MAX + 1;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("field name too long"));
	g.field_len = 0;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("field name is empty"));
	g = ok;
	g.inst = NULL;
	g.inst_len = PROTO_INST_MAX;
	CHECK(decode_group(g) == PROTO_OK);
	g.inst_len = PROTO_INST_MAX + 1;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("instance too long"));
}

/* Auth proof longer than PROTO_AUTH_MAX is bad. */
static void test_long_auth_is_bad(void)
{
	struct raw r;

	raw_hello(&r, 8, PROTO_AUTH_MAX);
	CHECK(decode_raw(&r) == PROTO_OK);
	raw_hello(&r, 8, PROTO_AUTH_MAX + 1);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("auth too long"));
}

/* nfields must be 1..PROTO_MAX_FIELDS. */
static void test_field_count_range(void)
{
	static const struct raw_group ok = {3, 0, 1, 1, "", 0};
	struct raw_group g = ok;

	CHECK(decode_group(g) == PROTO_OK);
	g.nfields = PROTO_MAX_FIELDS;
	CHECK(decode_group(g) == PROTO_OK);
	g.nfields = 0;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("field count 0"));
	g.nfields = PROTO_MAX_FIELDS + 1;
	CHECK(decode_group(g) == PROTO_BAD);
	CHECK(err_has("field count 33"));
}

/* A row instance needs an instance key; a keyed group may still have an empty instance. */
static void test_instance_needs_key(void)
{
	static const struct raw_group keyed_empty = {3, 5, 1, 1, "", 0};
	static const struct raw_group unkeyed = {3, 0, 1, 1, "eth0", 0};

	CHECK(decode_group(keyed_empty) == PROTO_OK);
	CHECK(decode_group(unkeyed) == PROTO_BAD);
	CHECK(err_has("without instance key"));
}

/* A NUL byte inside a wire string is bad. */
static void test_nul_in_string_is_bad(void)
{
	static const struct raw_group ok = {3, 5, 1, 1, "et0", 0};
	struct raw r;

	raw_metrics(&r, &ok);
	CHECK(decode_raw(&r) == PROTO_OK);
	r.b[r.n - 8 - 2] = '\0'; /* the 't' of the instance, just before the value */
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("instance contains a NUL byte"));

	raw_begin(&r, PROTO_BYE);
	raw_u8(&r, 3);
	raw_bytes(&r, "a\0b", 3);
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("reason contains a NUL"));
}

static void check_encode_rejects(const struct proto_msg *msg, const char *why);

/* What counts as text: UTF-8 without control characters, shortest forms only. */
static void test_text_rule(void)
{
	static const char *const good[] = {"",
	                                   "abc",
	                                   "/mnt/usb disk",
	                                   "\xc3\xa9",
	                                   "\xe2\x82\xac",
	                                   "\xf0\x9f\x98\x80",
	                                   "\xef\xbf\xbf",
	                                   "\xf4\x8f\xbf\xbf"};
	static const char *const bad[] = {"\xff",
	                                  "a\x80",
	                                  "\xc0\x80",
	                                  "\xc1\xbf",
	                                  "\xe0\x80\x80",
	                                  "\xed\xa0\x80",
	                                  "\xf0\x80\x80\x80",
	                                  "\xf4\x90\x80\x80",
	                                  "\xf5\x80\x80\x80",
	                                  "\xc3",
	                                  "\xe2\x82",
	                                  "a\nb",
	                                  "\t",
	                                  "\r",
	                                  "\x7f",
	                                  "\x1b[0m"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(proto_text_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(!proto_text_valid(bad[i], strlen(bad[i])));
}

/* Cleaning turns every byte that is not text into \xNN and cuts whole characters only. */
static void test_text_clean(void)
{
	char out[PROTO_TEXT_MAX + 1];

	CHECK(proto_text_clean(out, 32, "eth\xff\n0", 6) == 12);
	CHECK_STR(out, "eth\\xff\\x0a0");
	CHECK(proto_text_valid(out, strlen(out)));
	CHECK(proto_text_clean(out, 4, "ab\xe2\x82\xac", 5) == 2);
	CHECK_STR(out, "ab");
	CHECK(proto_text_clean(out, 5, "ab\xe2\x82\xac", 5) == 5);
	CHECK_STR(out, "ab\xe2\x82\xac");
	CHECK(proto_text_clean(out, 5, "ab\xff", 3) == 2); /* "\xff" needs four bytes */
	CHECK_STR(out, "ab");
	CHECK(proto_text_clean(out, 8, "", 0) == 0);
	CHECK_STR(out, "");
}

/* Every text field of every message is checked when decoded and when encoded. */
static void test_text_fields_are_checked(void)
{
	static const struct raw_group ok = {3, 5, 1, 1, "et0", 0};
	struct proto_msg m;
	struct proto_buf buf = {0};
	const char *err = NULL;
	struct raw r;

	/* A bad instance byte in place of the 't' of "et0". */
	raw_metrics(&r, &ok);
	r.b[r.n - 8 - 2] = '\xff';
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("instance is not UTF-8 text"));
	r.b[r.n - 8 - 2] = '\n';
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("instance is not UTF-8 text"));

	raw_begin(&r, PROTO_BYE);
	raw_str(&r, "bye\xc0\xaf");
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("reason is not UTF-8 text"));

	/* Each HELLO text field in turn. */
	static const char *const what[] = {"version", "os", "kernel", "model", "boot id"};
	for (size_t i = 0; i < 5; i++) {
		raw_begin(&r, PROTO_HELLO);
		raw_str(&r, "pi-1");
		raw_str(&r, i == 0 ? "0.1\xfe" : "0.1");
		raw_u32(&r, 0);
		raw_str(&r, i == 1 ? "Linux\xed\xb0\x80" : "Linux");
		raw_str(&r, i == 2 ? "6.1\x01" : "6.1");
		raw_str(&r, i == 3 ? "Pi\x80" : "Pi");
		raw_str(&r, i == 4 ? "b\x7f" : "boot");
		raw_u64(&r, 1);
		raw_u64(&r, 2);
		raw_u16(&r, 0);
		raw_end(&r);
		CHECK(decode_raw(&r) == PROTO_BAD);
		char want[64];
		snprintf(want, sizeof want, "%s is not UTF-8 text", what[i]);
		CHECK(err_has(want));
	}
	raw_hello(&r, 4, 0);
	r.b[PROTO_HEADER_SIZE + 1] = '/';
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("name is an invalid host name"));

	raw_begin(&r, PROTO_ALARM);
	raw_u64(&r, 1);
	raw_u64(&r, 2);
	raw_u8(&r, 2);
	raw_u8(&r, 1);
	raw_str(&r, "fan");
	raw_str(&r, "fan \xe9tait");
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("alarm message is not UTF-8 text"));

	/* The encoder refuses the same. */
	sample_alarm(&m);
	m.u.alarm.message = "line one\nline two";
	CHECK(proto_encode(&m, &buf, &err) == -1);
	CHECK(err && strstr(err, "alarm message is not UTF-8 text"));
	sample_hello(&m);
	m.u.hello.model = "Raspberry Pi\xff";
	CHECK(proto_encode(&m, &buf, &err) == -1);
	CHECK(err && strstr(err, "model is not UTF-8 text"));
	sample_welcome(&m);
	m.u.welcome.metrics = (const char *const[]){"cpu", "Mem", "", "", ""};
	CHECK(proto_encode(&m, &buf, &err) == -1);
	CHECK(err && strstr(err, "metric name is outside"));
	CHECK(buf.len == 0);
	proto_buf_free(&buf);
}

/* A group's names must make one file's columns: no reserved metric, no
 * "time" column, no name twice. */
static void test_group_shape(void)
{
	static const char *const two[] = {"used", "free"};
	static const char *const dup[] = {"used", "used"};
	static const char *const timed[] = {"used", "time"};
	static const char *const mount[] = {"used", "mount"};
	double values[2] = {1, 2};
	struct proto_row row = {1, "/", values};
	struct proto_group g = {"disk", "mount", 2, two, 1, &row};
	struct proto_msg m, out;
	struct proto_buf buf = {0};
	const char *err = NULL;
	size_t used;

	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){1, 1, &g};
	check_round_trip(&m);
	for (size_t i = 0; proto_reserved_metric(i); i++) {
		g.metric = proto_reserved_metric(i);
		check_encode_rejects(&m, "is reserved for the server's own files");
	}
	CHECK(proto_metric_reserved("alarms") && proto_metric_reserved("events"));
	CHECK(!proto_metric_reserved("alarm") && !proto_metric_reserved("disk"));
	g.metric = "disk";
	g.fields = dup;
	check_encode_rejects(&m, "field used appears twice");
	g.fields = timed;
	check_encode_rejects(&m, "field name may not be \"time\"");
	g.fields = mount;
	check_encode_rejects(&m, "field mount repeats the instance key");
	g.fields = two;
	g.inst_key = "time";
	check_encode_rejects(&m, "instance key may not be \"time\"");

	/* One group per metric in a batch. */
	g.inst_key = "mount";
	struct proto_group pair[2] = {g, g};
	pair[0].metric = pair[1].metric = "disk";
	m.u.metrics = (struct proto_metrics){1, 2, pair};
	check_encode_rejects(&m, "metric disk appears twice in one batch");
	pair[1].metric = "disk2";
	check_round_trip(&m);
	m.u.metrics = (struct proto_metrics){1, 1, &g};

	/* The decoder refuses a reserved metric sent anyway. */
	g.inst_key = "mount";
	g.metric = "alarmz";
	CHECK(proto_encode(&m, &buf, &err) == 0);
	memcpy(buf.data + PROTO_HEADER_SIZE + 8 + 2 + 1, "alarms", 6);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_BAD);
	CHECK(err_has("metric name alarms is reserved"));
	proto_buf_free(&buf);
}

/* An ALARM's level and source have fixed ranges and its name may not be
 * empty; the encoder refuses what the decoder would. */
static void test_alarm_ranges(void)
{
	struct raw r;
	static const struct {
		uint8_t level, source;
		const char *name;
		const char *err;
	} cases[] = {
	    {3, 1, "x", NULL},
	    {4, 0, "x", "alarm level 4 is not 0..3"},
	    {0, 2, "x", "alarm source 2 is not 0..1"},
	    {0, 0, "", "alarm name is empty"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		raw_begin(&r, PROTO_ALARM);
		raw_u64(&r, 1);
		raw_u64(&r, 2);
		raw_u8(&r, cases[i].level);
		raw_u8(&r, cases[i].source);
		raw_u8(&r, (uint8_t)strlen(cases[i].name));
		raw_bytes(&r, cases[i].name, strlen(cases[i].name));
		raw_u8(&r, 0);
		raw_end(&r);
		if (!cases[i].err) {
			CHECK(decode_raw(&r) == PROTO_OK);
			continue;
		}
		CHECK(decode_raw(&r) == PROTO_BAD);
		CHECK(err_has(cases[i].err));
	}
	struct proto_msg m;
	struct proto_buf b = {0};
	const char *err;
	sample_alarm(&m);
	m.u.alarm.level = 4;
	CHECK(proto_encode(&m, &b, &err) < 0 && b.len == 0);
	sample_alarm(&m);
	m.u.alarm.name = "a_name_longer_than_thirty_two_bytes";
	CHECK(proto_encode(&m, &b, &err) < 0 && b.len == 0);
	proto_buf_free(&b);
}

/* WELCOME may name at most PROTO_MAX_METRICS collectors. */
static void test_welcome_metric_count(void)
{
	struct raw r;
	unsigned i, n;

	for (n = PROTO_MAX_METRICS; n <= PROTO_MAX_METRICS + 1; n++) {
		raw_begin(&r, PROTO_WELCOME);
		raw_u32(&r, 10000);
		raw_u32(&r, 5000);
		raw_u8(&r, n);
		for (i = 0; i < n; i++)
			raw_str(&r, "cpu");
		raw_end(&r);
		CHECK(decode_raw(&r) == (n <= PROTO_MAX_METRICS ? PROTO_OK : PROTO_BAD));
	}
	CHECK(err_has("too many metrics"));
}

/* WELCOME's peers: absent is the old WELCOME, byte for byte; present they
 * round-trip; a count of 0 or past PROTO_MAX_PEERS, or an entry that is not
 * host:port, is a bad frame, and the encoder refuses what the decoder would. */
static void test_welcome_peers(void)
{
	static const char *const peers[] = {"10.0.0.1:8080", "pimon-b.lan:8080", "[::1]:9000"};
	struct proto_buf plain = {0}, with = {0};
	struct proto_msg m;
	const char *err;
	struct raw r;
	unsigned i, n;

	sample_welcome(&m);
	CHECK(proto_encode(&m, &plain, &err) == 0);
	m.u.welcome.npeers = 3;
	m.u.welcome.peers = peers;
	check_round_trip(&m);
	CHECK(proto_encode(&m, &with, &err) == 0);
	/* The peers are a tail after the metrics: u8 count, then the strings. */
	CHECK(with.len == plain.len + 1 + (1 + 13) + (1 + 16) + (1 + 10));
	CHECK(memcmp(with.data + PROTO_HEADER_SIZE, plain.data + PROTO_HEADER_SIZE,
	             plain.len - PROTO_HEADER_SIZE) == 0);
	proto_buf_free(&plain);
	proto_buf_free(&with);

	for (n = 0; n <= PROTO_MAX_PEERS + 1; n++) {
		raw_begin(&r, PROTO_WELCOME);
		raw_u32(&r, 10000);
		raw_u32(&r, 5000);
		raw_u8(&r, 1);
		raw_str(&r, "cpu");
		raw_u8(&r, n);
		for (i = 0; i < n; i++)
			raw_str(&r, "127.0.0.1:8080");
		raw_end(&r);
		CHECK(decode_raw(&r) == (n >= 1 && n <= PROTO_MAX_PEERS ? PROTO_OK : PROTO_BAD));
	}
	CHECK(err_has("peer count 17 is not 1..16"));

	static const char *const bad[] = {"",         "host",   "host:",  "host:0",  "host:65536",
	                                  "host:080", ":80",    "a:b:80", "[::1]80", "[]:80",
	                                  "-a:80",    "a b:80", "[zz]:80"};
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		raw_begin(&r, PROTO_WELCOME);
		raw_u32(&r, 10000);
		raw_u32(&r, 5000);
		raw_u8(&r, 0);
		raw_u8(&r, 1);
		raw_str(&r, bad[i]);
		raw_end(&r);
		CHECK(decode_raw(&r) == PROTO_BAD);
		sample_welcome(&m);
		m.u.welcome.npeers = 1;
		m.u.welcome.peers = &bad[i];
		struct proto_buf b = {0};
		CHECK(proto_encode(&m, &b, &err) == -1);
		proto_buf_free(&b);
	}
	CHECK(proto_addr_valid("h:1") && proto_addr_valid("[fe80::1]:65535"));
}

/* Huge counts with a short payload fail on the count, before anything is allocated. */
static void test_hostile_counts_are_bad(void)
{
	struct raw r;

	raw_begin(&r, PROTO_METRICS); /* 65535 groups, one present */
	raw_u64(&r, 1);
	raw_u16(&r, 0xffff);
	raw_str(&r, "cpu");
	raw_str(&r, "");
	raw_u8(&r, 1);
	raw_str(&r, "u");
	raw_u32(&r, 0);
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("group count 65535 exceeds payload"));

	raw_begin(&r, PROTO_METRICS); /* 2^32-1 rows, one present */
	raw_u64(&r, 1);
	raw_u16(&r, 1);
	raw_str(&r, "cpu");
	raw_str(&r, "");
	raw_u8(&r, 1);
	raw_str(&r, "u");
	raw_u32(&r, UINT32_MAX);
	raw_u64(&r, 1);
	raw_str(&r, "");
	raw_u64(&r, 0);
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("row count 4294967295 exceeds payload"));

	raw_begin(&r, PROTO_METRICS); /* rows that would fit with 1 field, not with 2 */
	raw_u64(&r, 1);
	raw_u16(&r, 1);
	raw_str(&r, "cpu");
	raw_str(&r, "");
	raw_u8(&r, 2);
	raw_str(&r, "u");
	raw_str(&r, "s");
	raw_u32(&r, 3);
	raw_fill(&r, 50, 'x');
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("row count 3 exceeds payload"));

	raw_begin(&r, PROTO_WELCOME); /* 32 names announced, none present */
	raw_u32(&r, 1);
	raw_u32(&r, 1);
	raw_u8(&r, PROTO_MAX_METRICS);
	raw_end(&r);
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("metric name count 32 exceeds payload"));

	raw_hello(&r, 4, 0); /* auth claims 65535 bytes */
	r.b[r.n - 2] = 0xff;
	r.b[r.n - 1] = 0xff;
	CHECK(decode_raw(&r) == PROTO_BAD);
	CHECK(err_has("auth too long"));
}

/* A frame of exactly PROTO_MAX_PAYLOAD bytes is accepted both ways; one byte more is refused. */
static void test_largest_frame(void)
{
	/* 21 bytes of batch and group head, then 61679 rows of 17 bytes, 12 of them with a
	 * one-byte instance: 21 + 61679 * 17 + 12 = 1048576. */
	enum { NROWS = 61679, NLONG = 12 };
	static const char *const fields[] = {"v"};
	struct proto_row *rows = calloc(NROWS, sizeof *rows);
	double *values = calloc(NROWS, sizeof *values);
	struct proto_group group = {"m", "k", 1, fields, NROWS, rows};
	struct proto_msg m, out;
	struct proto_buf buf;
	const char *err;
	size_t i, used, before;

	if (!rows || !values)
		abort();
	for (i = 0; i < NROWS; i++)
		rows[i] = (struct proto_row){i, i < NLONG ? "x" : "", &values[i]};
	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){1, 1, &group};
	encode_fresh(&m, &buf);
	CHECK(buf.len == PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_OK);
	CHECK(out.u.metrics.groups[0].nrows == NROWS);
	CHECK(arena_bounded(&out, buf.len));
	proto_msg_free(&out);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD - 1, &out, &used) == PROTO_BAD);

	before = buf.len;
	rows[NLONG].instance = "x";
	CHECK(proto_encode(&m, &buf, &err) == -1);
	CHECK(err && strstr(err, "payload too large") != NULL);
	CHECK(buf.len == before);
	proto_buf_free(&buf);
	free(rows);
	free(values);
}

/* The most groups a batch can carry, each as small as possible: the densest frame for the
 * decoder's storage, which must still stay within its bound per frame byte. */
static void test_many_tiny_groups(void)
{
	static const char *const fields[] = {"a"};
	struct proto_group *groups = calloc(UINT16_MAX, sizeof *groups);
	struct proto_msg m, out;
	struct proto_buf buf;
	size_t i, used;

	if (!groups)
		abort();
	static char names[UINT16_MAX][8];
	size_t name_bytes = 0;
	for (i = 0; i < UINT16_MAX; i++) {
		/* Each metric once per batch: as short as distinct names get. */
		snprintf(names[i], sizeof names[i], "m%zx", i);
		name_bytes += strlen(names[i]);
		groups[i] = (struct proto_group){names[i], "", 1, fields, 0, NULL};
	}
	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){3, UINT16_MAX, groups};
	encode_fresh(&m, &buf);
	CHECK(buf.len == PROTO_HEADER_SIZE + 8 + 2 + (size_t)UINT16_MAX * 9 + name_bytes);
	CHECK(decode_copy(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used) == PROTO_OK);
	CHECK(out.u.metrics.ngroups == UINT16_MAX);
	CHECK(arena_bounded(&out, buf.len));
	check_group_same(&groups[0], &out.u.metrics.groups[0]);
	check_group_same(&groups[UINT16_MAX - 1], &out.u.metrics.groups[UINT16_MAX - 1]);
	proto_msg_free(&out);
	proto_buf_free(&buf);
	free(groups);
}

/* Two frames in one buffer decode one after the other, and a partial third waits. */
static void test_back_to_back_frames(void)
{
	struct proto_msg a, b, out;
	struct proto_buf buf;
	size_t used, off, first;
	const char *err;

	sample_hello(&a);
	sample_metrics(&b);
	encode_fresh(&a, &buf);
	first = buf.len;
	CHECK(proto_encode(&b, &buf, &err) == 0);
	CHECK(proto_encode(&a, &buf, &err) == 0);
	buf.len -= 3; /* the third frame is cut short */

	CHECK(proto_decode(buf.data, buf.len, PROTO_MAX_PAYLOAD, &out, &used, &err) == PROTO_OK);
	CHECK(used == first);
	check_msg_same(&a, &out);
	proto_msg_free(&out);
	off = used;
	CHECK(proto_decode(buf.data + off, buf.len - off, PROTO_MAX_PAYLOAD, &out, &used, &err) ==
	      PROTO_OK);
	check_msg_same(&b, &out);
	proto_msg_free(&out);
	off += used;
	CHECK(proto_decode(buf.data + off, buf.len - off, PROTO_MAX_PAYLOAD, &out, &used, &err) ==
	      PROTO_NEED_MORE);
	CHECK(buf.len - off == first - 3);
	proto_buf_free(&buf);
}

/* Encoding an invalid msg fails with a reason and leaves out exactly as it was. */
static void check_encode_rejects(const struct proto_msg *msg, const char *why)
{
	struct proto_buf buf = {0};
	struct proto_msg ack;
	uint8_t saved[PROTO_HEADER_SIZE + 8];
	const char *err = NULL;

	sample_ack(&ack);
	encode_fresh(&ack, &buf);
	memcpy(saved, buf.data, sizeof saved);
	CHECK(proto_encode(msg, &buf, &err) == -1);
	CHECK(err != NULL && strstr(err, why) != NULL);
	if (!err || !strstr(err, why))
		fprintf(stderr, "  expected \"%s\", got \"%s\"\n", why, err ? err : "(null)");
	CHECK(buf.len == sizeof saved && memcmp(buf.data, saved, sizeof saved) == 0);
	proto_buf_free(&buf);
}

/* HELLO, WELCOME and BYE fields over their limits are refused by the encoder. */
static void test_encode_rejects_bad_fields(void)
{
	static char long_name[PROTO_NAME_MAX + 2], long_text[PROTO_TEXT_MAX + 2];
	static char long_key[PROTO_KEY_MAX + 2];
	static const char *names[PROTO_MAX_METRICS + 1];
	struct proto_msg m;
	size_t i;

	memset(long_name, 'n', PROTO_NAME_MAX + 1);
	memset(long_text, 't', PROTO_TEXT_MAX + 1);
	memset(long_key, 'k', PROTO_KEY_MAX + 1);
	for (i = 0; i <= PROTO_MAX_METRICS; i++)
		names[i] = "cpu";

	sample_hello(&m);
	m.u.hello.name = long_name;
	check_encode_rejects(&m, "name too long (65 > 64 bytes)");
	sample_hello(&m);
	m.u.hello.kernel = long_text;
	check_encode_rejects(&m, "kernel too long");
	sample_hello(&m);
	m.u.hello.boot_id = long_name;
	check_encode_rejects(&m, "boot id too long");
	sample_hello(&m);
	m.u.hello.os = NULL;
	check_encode_rejects(&m, "os is missing");
	sample_hello(&m);
	m.u.hello.auth_len = PROTO_AUTH_MAX + 1;
	check_encode_rejects(&m, "auth too long");
	sample_hello(&m);
	m.u.hello.auth = NULL;
	check_encode_rejects(&m, "auth is missing");

	sample_welcome(&m);
	m.u.welcome.nmetrics = PROTO_MAX_METRICS + 1;
	m.u.welcome.metrics = names;
	check_encode_rejects(&m, "too many metrics");
	sample_welcome(&m);
	m.u.welcome.metrics = NULL;
	check_encode_rejects(&m, "missing");
	names[2] = long_key;
	sample_welcome(&m);
	m.u.welcome.metrics = names;
	check_encode_rejects(&m, "metric name too long");

	sample_bye(&m);
	m.u.bye.reason = long_text;
	check_encode_rejects(&m, "reason too long (256 > 255 bytes)");

	sample_ack(&m);
	m.type = (enum proto_type)0;
	check_encode_rejects(&m, "unknown message type 0");
	m.type = (enum proto_type)11;
	check_encode_rejects(&m, "unknown message type 11");
}

/* METRICS groups that break a rule are refused by the encoder. */
static void test_encode_rejects_bad_groups(void)
{
	static char long_key[PROTO_KEY_MAX + 2], long_inst[PROTO_INST_MAX + 2];
	static const char *fields[PROTO_MAX_FIELDS + 1];
	static double values[PROTO_MAX_FIELDS + 1];
	struct proto_row row = {1, "", values};
	struct proto_group g;
	struct proto_msg m;
	size_t i;

	memset(long_key, 'k', PROTO_KEY_MAX + 1);
	memset(long_inst, 'i', PROTO_INST_MAX + 1);
	for (i = 0; i <= PROTO_MAX_FIELDS; i++)
		fields[i] = "f";
	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){1, 1, &g};

	g = (struct proto_group){"cpu", "", 0, fields, 1, &row};
	check_encode_rejects(&m, "field count 0 not in 1..32");
	g.nfields = PROTO_MAX_FIELDS + 1;
	check_encode_rejects(&m, "field count 33 not in 1..32");
	g.nfields = 2;
	fields[1] = "";
	check_encode_rejects(&m, "field name is empty");
	fields[1] = long_key;
	check_encode_rejects(&m, "field name too long");
	fields[1] = "f";
	check_encode_rejects(&m, "field f appears twice");
	fields[1] = "g";
	g.fields = NULL;
	check_encode_rejects(&m, "field names are missing");
	g.fields = fields;
	g.metric = long_key;
	check_encode_rejects(&m, "metric too long");
	g.metric = "cpu";
	g.inst_key = long_key;
	check_encode_rejects(&m, "instance key too long");
	g.inst_key = "";
	row.instance = "eth0";
	check_encode_rejects(&m, "instance in a group without instance key");
	g.inst_key = "iface";
	row.instance = long_inst;
	check_encode_rejects(&m, "instance too long");
	row.instance = NULL;
	check_encode_rejects(&m, "instance is missing");
	row.instance = "eth0";
	row.values = NULL;
	check_encode_rejects(&m, "row values are missing");
	row.values = values;
	g.rows = NULL;
	check_encode_rejects(&m, "rows are missing");
	g.rows = &row;
	m.u.metrics.ngroups = UINT16_MAX + 1u;
	check_encode_rejects(&m, "too many groups");
	m.u.metrics.groups = NULL;
	m.u.metrics.ngroups = 1;
	check_encode_rejects(&m, "groups are missing");
}

/* The encoder refuses a batch whose payload would pass PROTO_MAX_PAYLOAD, without growing
 * its buffer far past that, even when the caller claims billions of rows. */
static void test_encode_rejects_huge_batch(void)
{
	static const char *const fields[] = {"v"};
	static const double value = 1.0;
	struct proto_row *many = calloc(70000, sizeof *many);
	struct proto_group g = {"m", "", 1, fields, 70000, many};
	struct proto_msg m;
	struct proto_buf buf = {0};
	const char *err;
	size_t i;

	if (!many)
		abort();
	for (i = 0; i < 70000; i++)
		many[i] = (struct proto_row){i, "", &value};
	memset(&m, 0, sizeof m);
	m.type = PROTO_METRICS;
	m.u.metrics = (struct proto_metrics){1, 1, &g};
	check_encode_rejects(&m, "payload too large");
	g.nrows = UINT32_MAX; /* the encoder gives up long before the 70000 real rows run out */
	check_encode_rejects(&m, "payload too large");
	CHECK(proto_encode(&m, &buf, &err) == -1);
	CHECK(buf.len == 0 && buf.cap <= 4 * (size_t)PROTO_MAX_PAYLOAD);
	proto_buf_free(&buf);
	free(many);
}

/* proto_buf_reset empties without freeing; the buffer is reused. */
static void test_buf_reset(void)
{
	struct proto_msg m;
	struct proto_buf buf;
	uint8_t *data;
	const char *err;

	sample_poll(&m);
	encode_fresh(&m, &buf);
	data = buf.data;
	proto_buf_reset(&buf);
	CHECK(buf.len == 0 && buf.data == data && buf.cap > 0);
	CHECK(proto_encode(&m, &buf, &err) == 0);
	CHECK(buf.len == PROTO_HEADER_SIZE + 4 && buf.data == data);
	proto_buf_free(&buf);
}

/* Type names for logs. */
static void test_type_names(void)
{
	CHECK_STR(proto_type_name(PROTO_HELLO), "HELLO");
	CHECK_STR(proto_type_name(PROTO_WELCOME), "WELCOME");
	CHECK_STR(proto_type_name(PROTO_HEARTBEAT), "HEARTBEAT");
	CHECK_STR(proto_type_name(PROTO_METRICS), "METRICS");
	CHECK_STR(proto_type_name(PROTO_ACK), "ACK");
	CHECK_STR(proto_type_name(PROTO_POLL), "POLL");
	CHECK_STR(proto_type_name(PROTO_BYE), "BYE");
	CHECK_STR(proto_type_name(0), "unknown");
	CHECK_STR(proto_type_name(8), "CHALLENGE");
	CHECK_STR(proto_type_name(9), "ALARM");
	CHECK_STR(proto_type_name(10), "ALARM_ACK");
	CHECK_STR(proto_type_name(11), "unknown");
	CHECK_STR(proto_type_name(0x104), "unknown");
}

/* Fixed-seed xorshift64* so that every run and every platform fuzzes the same inputs. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Next pseudo-random 64 bits. */
static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* A pseudo-random number below n (n > 0). */
static size_t rng_below(size_t n)
{
	return (size_t)(rng_next() >> 11) % n;
}

/* Tally of one fuzz mode. */
struct fuzz_stats {
	size_t ok, need_more, bad, broken;
};

/* Decode n fuzzed bytes; an OK frame must re-encode to the same bytes within the arena bound. */
static void fuzz_one(const uint8_t *bytes, size_t n, struct fuzz_stats *st)
{
	struct proto_msg msg;
	struct proto_buf again = {0};
	const char *err;
	size_t used;
	bool good;

	switch (decode_copy(bytes, n, PROTO_MAX_PAYLOAD, &msg, &used)) {
	case PROTO_OK:
		st->ok++;
		good = used >= PROTO_HEADER_SIZE && used <= n && arena_bounded(&msg, used) &&
		       proto_encode(&msg, &again, &err) == 0 && again.len == used &&
		       memcmp(again.data, bytes, used) == 0;
		break;
	case PROTO_NEED_MORE:
		st->need_more++;
		good = msg.mem == NULL && used == 0;
		break;
	case PROTO_BAD:
		st->bad++;
		good = msg.mem == NULL && last_err != NULL;
		break;
	default:
		good = false;
		break;
	}
	if (!good && st->broken++ == 0)
		fprintf(stderr, "fuzz: first broken input has %zu bytes\n", n);
	proto_msg_free(&msg);
	proto_buf_free(&again);
}

/* A random byte, biased towards small values so that counts and lengths sometimes fit. */
static uint8_t fuzz_byte(void)
{
	return (uint8_t)(rng_below(4) == 0 ? rng_next() : rng_below(5));
}

/* Fill b with a random frame, mostly behind a plausible header; returns its length. */
static size_t fuzz_random_frame(uint8_t *b, size_t cap)
{
	size_t n = rng_below(cap < 96 ? cap : 96);
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = fuzz_byte();
	if (n >= PROTO_HEADER_SIZE && rng_below(8) != 0) {
		b[0] = 0x50;
		b[1] = 0x4d;
		b[2] = PROTO_VERSION;
		b[3] = (uint8_t)rng_below(9);
		frame_set_length(b, (uint32_t)(n - PROTO_HEADER_SIZE));
	}
	return n;
}

/* Mutate frame b of n bytes in place a few times; returns the new length. */
static size_t fuzz_mutate(uint8_t *b, size_t n, size_t cap)
{
	static const uint8_t edge[] = {0x00, 0x01, 0x20, 0x7f, 0x80, 0xfe, 0xff};
	size_t k = 1 + rng_below(4), pos;

	while (k-- > 0) {
		pos = n ? rng_below(n) : 0;
		switch (rng_below(6)) {
		case 0:
			if (n)
				b[pos] ^= (uint8_t)(1u << rng_below(8));
			break;
		case 1:
			if (n)
				b[pos] = (uint8_t)rng_next();
			break;
		case 2:
			if (n)
				b[pos] = edge[rng_below(sizeof edge)];
			break;
		case 3:
			if (n < cap) {
				memmove(b + pos + 1, b + pos, n - pos);
				b[pos] = fuzz_byte();
				n++;
			}
			break;
		case 4:
			if (n) {
				memmove(b + pos, b + pos + 1, n - pos - 1);
				n--;
			}
			break;
		default:
			n = rng_below(n + 1);
			break;
		}
	}
	if (n >= PROTO_HEADER_SIZE && rng_below(2) == 0)
		frame_set_length(b, (uint32_t)(n - PROTO_HEADER_SIZE));
	return n;
}

/* Fuzz iterations per mode, from PROTO_FUZZ_ITERS or the default. */
static size_t fuzz_iterations(void)
{
	const char *s = getenv("PROTO_FUZZ_ITERS");

	return s && *s ? (size_t)strtoul(s, NULL, 10) : FUZZ_ITERS_DEFAULT;
}

/* Random buffers never crash the decoder, and whatever it accepts re-encodes identically. */
static void test_fuzz_random_buffers(size_t iters)
{
	struct fuzz_stats st = {0};
	uint8_t b[128];
	size_t i, n;

	for (i = 0; i < iters; i++) {
		n = fuzz_random_frame(b, sizeof b);
		fuzz_one(b, n, &st);
	}
	printf("fuzz random: %zu ok, %zu need more, %zu bad\n", st.ok, st.need_more, st.bad);
	CHECK(st.broken == 0);
	CHECK(iters < 1000 || (st.ok > 0 && st.bad > 0 && st.need_more > 0));
}

/* Mutated valid frames never crash the decoder, and whatever it accepts re-encodes identically. */
static void test_fuzz_mutations(size_t iters)
{
	struct proto_buf corpus[NSAMPLES];
	struct fuzz_stats st = {0};
	struct proto_msg m;
	uint8_t b[1024];
	size_t i, n, pick;

	for (i = 0; i < NSAMPLES; i++) {
		samples[i](&m);
		encode_fresh(&m, &corpus[i]);
		if (corpus[i].len > sizeof b - 16)
			abort();
	}
	for (i = 0; i < iters; i++) {
		pick = rng_below(NSAMPLES);
		memcpy(b, corpus[pick].data, corpus[pick].len);
		n = fuzz_mutate(b, corpus[pick].len, sizeof b);
		fuzz_one(b, n, &st);
	}
	printf("fuzz mutations: %zu ok, %zu need more, %zu bad\n", st.ok, st.need_more, st.bad);
	CHECK(st.broken == 0);
	CHECK(iters < 1000 || (st.ok > 0 && st.bad > 0 && st.need_more > 0));
	for (i = 0; i < NSAMPLES; i++)
		proto_buf_free(&corpus[i]);
}

/* Run every codec test; the exit status says whether all passed. */
int main(void)
{
	size_t iters = fuzz_iterations();

	test_exact_bytes_ack();
	test_exact_bytes_metrics_example();
	test_round_trip_all_types();
	test_round_trip_extremes();
	test_round_trip_at_limits();
	test_decoded_storage_is_owned();
	test_every_truncation_needs_more();
	test_short_payload_is_bad();
	test_trailing_bytes_are_bad();
	test_header_parse();
	test_bad_headers();
	test_oversized_length_is_bad();
	test_max_payload_argument();
	test_long_strings_are_bad();
	test_long_auth_is_bad();
	test_field_count_range();
	test_instance_needs_key();
	test_nul_in_string_is_bad();
	test_text_rule();
	test_text_clean();
	test_text_fields_are_checked();
	test_group_shape();
	test_welcome_metric_count();
	test_welcome_peers();
	test_alarm_ranges();
	test_hostile_counts_are_bad();
	test_largest_frame();
	test_many_tiny_groups();
	test_back_to_back_frames();
	test_encode_rejects_bad_fields();
	test_encode_rejects_bad_groups();
	test_encode_rejects_huge_batch();
	test_buf_reset();
	test_type_names();
	test_fuzz_random_buffers(iters);
	test_fuzz_mutations(iters);
	return check_report("proto");
}
