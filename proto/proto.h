/* pimon wire protocol: frame codec and message types. No I/O, no threads. */
#ifndef PIMON_PROTO_H
#define PIMON_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC       0x504du /* "PM" */
#define PROTO_VERSION     1
#define PROTO_HEADER_SIZE 8
/* Hard ceiling on a frame's payload; a peer may be configured lower. */
#define PROTO_MAX_PAYLOAD (1u << 20)

/* Limits every decoder enforces; longer fields are a bad frame. */
#define PROTO_NAME_MAX    64  /* host names, boot ids */
#define PROTO_TEXT_MAX    255 /* versions, OS, kernel, model, reasons */
#define PROTO_KEY_MAX     32  /* metric, instance key and field names */
#define PROTO_INST_MAX    128 /* instance values (mount points, ifaces) */
#define PROTO_AUTH_MAX    256 /* opaque authentication proof */
#define PROTO_MAX_FIELDS  32  /* fields per metric group */
#define PROTO_MAX_METRICS 32  /* metric names in WELCOME */
#define PROTO_MAX_PEERS   16  /* server addresses in WELCOME */
#define PROTO_ADDR_MAX    255 /* one server address, "host:port" */

enum proto_type {
	PROTO_HELLO = 1,
	PROTO_WELCOME = 2,
	PROTO_HEARTBEAT = 3,
	PROTO_METRICS = 4,
	PROTO_ACK = 5,
	PROTO_POLL = 6,
	PROTO_BYE = 7,
	PROTO_CHALLENGE = 8,
	PROTO_ALARM = 9,
	PROTO_ALARM_ACK = 10,
};

/* Result of a decode attempt. */
enum proto_status {
	PROTO_OK = 0,
	PROTO_NEED_MORE = 1, /* buffer holds a prefix of a valid frame */
	PROTO_BAD = -1,      /* not a valid frame: close the session */
};

/* Bytes of the server's nonce in CHALLENGE. */
#define PROTO_NONCE_SIZE 32

/* Capability bits an agent announces in HELLO. */
#define PROTO_CAP_POLL (1u << 0)
/* The agent reads WELCOME's peers: only then may the server send them. */
#define PROTO_CAP_PEERS (1u << 1)

struct proto_header {
	uint16_t magic;
	uint8_t version;
	uint8_t type;
	uint32_t length; /* payload bytes after the header */
};

struct proto_hello {
	const char *name;
	const char *version;
	uint32_t caps;
	const char *os;
	const char *kernel;
	const char *model; /* "" when unknown */
	const char *boot_id;
	uint64_t uptime_s;
	uint64_t run_id; /* random per agent run; seqs are unique within a run */
	uint16_t auth_len;
	const uint8_t *auth;
};

struct proto_welcome {
	uint32_t interval_ms;  /* collect and send a batch this often */
	uint32_t heartbeat_ms; /* send HEARTBEAT this often */
	uint8_t nmetrics;
	const char *const *metrics; /* names of collectors to run */
	/* Servers the agent should rank, "host:port" each; 0 (nothing on the
	 * wire) when the server names none or the agent lacks PROTO_CAP_PEERS. */
	uint8_t npeers;
	const char *const *peers;
};

struct proto_heartbeat {
	uint64_t time_ms; /* sender's wall clock, Unix ms */
};

struct proto_row {
	uint64_t time_ms;     /* Unix ms */
	const char *instance; /* "" when the group has no instance key */
	const double *values; /* group's nfields values */
};

/* One metric's rows in a batch, all with the same fields. */
struct proto_group {
	const char *metric;   /* e.g. "cpu", "disk" */
	const char *inst_key; /* e.g. "mount", "iface"; "" for none */
	uint8_t nfields;
	const char *const *fields;
	uint32_t nrows;
	const struct proto_row *rows;
};

struct proto_metrics {
	uint64_t seq; /* per-agent, increasing from 1 */
	uint32_t ngroups;
	const struct proto_group *groups;
};

struct proto_ack {
	uint64_t seq; /* highest sequence stored */
};

/* Alarm levels; a check's exit status is its level. */
enum proto_level {
	PROTO_LEVEL_OK = 0, /* resolves the alarm */
	PROTO_LEVEL_WARNING = 1,
	PROTO_LEVEL_CRITICAL = 2,
	PROTO_LEVEL_UNKNOWN = 3,
};

/* Where an agent's alarm comes from. */
enum proto_alarm_source {
	PROTO_ALARM_CHECK = 0, /* a check of agent.checks */
	PROTO_ALARM_LOCAL = 1, /* `pimon-agent alarm` on the host */
};

/* The state of one of the agent's alarms: sent when it changes, ahead of
 * queued batches, and acked by ALARM_ACK. */
struct proto_alarm {
	uint64_t seq;     /* per agent run, from 1; apart from METRICS' seqs */
	uint64_t time_ms; /* when the state was seen, Unix ms */
	uint8_t level;    /* enum proto_level */
	uint8_t source;   /* enum proto_alarm_source */
	const char *name; /* 1..PROTO_KEY_MAX bytes */
	const char *message;
};

struct proto_poll {
	uint32_t id;
};

struct proto_bye {
	const char *reason;
};

/* Sent by the server first on every connection: HELLO's auth proof is an
 * HMAC over this nonce, so a recorded HELLO is worthless. */
struct proto_challenge {
	uint8_t nonce[PROTO_NONCE_SIZE];
};

/* A decoded or to-be-encoded message. Pointers in a decoded message point
 * into storage owned by the message; proto_msg_free releases it. */
struct proto_msg {
	enum proto_type type;
	union {
		struct proto_hello hello;
		struct proto_welcome welcome;
		struct proto_heartbeat heartbeat;
		struct proto_metrics metrics;
		struct proto_ack ack; /* ACK and ALARM_ACK */
		struct proto_alarm alarm;
		struct proto_poll poll;
		struct proto_bye bye;
		struct proto_challenge challenge;
	} u;
	void *mem; /* decoder's storage, NULL for caller-built messages */
};

/* Growable output buffer for encoded frames. */
struct proto_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Parse the fixed header at buf; checks magic, version, type and that the
 * payload is at most max_payload. NEED_MORE when len < PROTO_HEADER_SIZE. */
enum proto_status proto_header_parse(const uint8_t *buf, size_t len, uint32_t max_payload,
                                     struct proto_header *hdr, const char **err);

/* Decode one frame from buf. On OK, *used is the frame's total size and msg
 * must be released with proto_msg_free. On BAD, *err says why. */
enum proto_status proto_decode(const uint8_t *buf, size_t len, uint32_t max_payload,
                               struct proto_msg *msg, size_t *used, const char **err);

/* Release what proto_decode allocated; safe on a zeroed or built message. */
void proto_msg_free(struct proto_msg *msg);

/* Append one encoded frame to out. Returns 0, or -1 with *err when a field
 * breaks a limit or the payload would exceed PROTO_MAX_PAYLOAD. */
int proto_encode(const struct proto_msg *msg, struct proto_buf *out, const char **err);

void proto_buf_reset(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);

/* The string rules (proto/names.c; PROTOCOL.md "Strings"). Every string a
 * decoded message holds has passed the rule of its field. */

/* Whether the n bytes at s are text: valid UTF-8, no C0 control or DEL. */
bool proto_text_valid(const char *s, size_t n);

/* Copy n bytes of src into dst (max + 1 bytes) as text of at most max
 * bytes, each byte breaking the text rule written as "\xNN"; cut at the
 * last whole character that fits. Returns the length written. */
size_t proto_text_clean(char *dst, size_t max, const char *src, size_t n);

/* Whether s is a host name: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. */
bool proto_host_valid(const char *s);

/* Whether s is a server address: "host:port" or "[v6]:port", the host
 * 1..253 of A-Z a-z 0-9 . _ - (or hex digits, '.' and ':' in brackets),
 * the port 1..65535 without leading zeros; at most PROTO_ADDR_MAX bytes. */
bool proto_addr_valid(const char *s);

/* Whether s is a key (metric, instance key, field, alarm name): [a-z0-9_]{1,32}. */
bool proto_key_valid(const char *s);

/* Whether metric name s is kept for the server's own files. */
bool proto_metric_reserved(const char *s);

/* The i-th reserved metric name, NULL past the last. */
const char *proto_reserved_metric(size_t i);

/* Name of a message type for logs, "unknown" for others. */
const char *proto_type_name(unsigned type);

#endif
