/* Fuzz what the server does with decoded input, not only the decoder: the
 * input is a stream of frames, decoded as a session decodes them; HELLO
 * attaches its host, METRICS is stored (with the default alarm rules),
 * ALARM recorded, in the real registry and store. Then the answers of
 * /api/v1/hosts, /api/v1/hosts/<h>, /api/v1/alarms and /metrics are
 * rendered from that state in-process and must be valid JSON and valid
 * exposition text. The data folder lives under $TMPDIR (best a tmpfs) and
 * is emptied after each input. */
#include <event2/buffer.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alarm.h"
#include "config.h"
#include "http_int.h"
#include "log.h"
#include "proto.h"
#include "host_json.h"
#include "registry.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Most frames of one input acted on. */
#define FUZZ_FRAMES 64

static char data_dir[256];
static struct pimon_config cfg;
static struct ruleset *rules;

/* Remove one file or folder of the data folder (nftw's callback). */
static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	if (ftw->level > 0 && remove(path) < 0)
		abort();
	return 0;
}

/* A fresh data folder, the default configuration and its alarm rules, once. */
static void setup(void)
{
	if (data_dir[0])
		return;
	log_init("fuzz-server", (enum log_level)(LOG_ERR - 1)); /* quiet: errors are expected */
	const char *tmp = getenv("TMPDIR");
	snprintf(data_dir, sizeof data_dir, "%s/pimon-fuzz-server-XXXXXX",
	         tmp ? tmp : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"));
	if (!mkdtemp(data_dir))
		abort();
	config_defaults(&cfg);
	rules = ruleset_create(&cfg);
	if (!rules)
		abort();
}

/* Whether s is valid UTF-8 text by the protocol's rule. */
static int text_ok(const char *s)
{
	return s && proto_text_valid(s, strlen(s));
}

/* Dump v and parse it back: the answer must be valid JSON. Releases v. */
static void check_json(json_t *v)
{
	if (!v)
		abort(); /* an answer the state could not be rendered as */
	char *text = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!text)
		abort();
	json_error_t err;
	json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (!back)
		abort();
	json_decref(back);
	free(text);
	json_decref(v);
}

/* Whether c may be in a metric or label name of the exposition format. */
static int name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* One sample line: name, optional {k="v",...}, a space, a number. */
static void check_sample(const char *p, const char *end)
{
	if (p == end || !name_char(*p, 1))
		abort();
	while (p < end && name_char(*p, 0))
		p++;
	if (p < end && *p == '{') {
		p++;
		while (p < end && *p != '}') {
			if (!name_char(*p, 1))
				abort();
			while (p < end && name_char(*p, 0))
				p++;
			if (end - p < 2 || p[0] != '=' || p[1] != '"')
				abort();
			for (p += 2; p < end && *p != '"'; p++)
				if (*p == '\\') {
					p++;
					if (p == end || (*p != '\\' && *p != '"' && *p != 'n'))
						abort();
				}
			if (p == end)
				abort();
			p++;
			if (p < end && *p == ',')
				p++;
		}
		if (p == end)
			abort();
		p++;
	}
	if (p == end || *p != ' ')
		abort();
	p++;
	char num[64];
	size_t n = (size_t)(end - p);
	if (n == 0 || n >= sizeof num)
		abort();
	memcpy(num, p, n);
	num[n] = '\0';
	char *stop;
	strtod(num, &stop);
	if (*stop != '\0')
		abort();
}

/* The /metrics page: UTF-8, and every line a comment or a sample. */
static void check_exposition(struct server *srv)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf || http_metrics_page(srv, buf) < 0)
		abort();
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	if (len && !text)
		abort();
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\t' || (text[i] == '\0'))
			abort();
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			abort(); /* every line ends in a newline */
		if (!proto_text_valid(p, (size_t)(nl - p)))
			abort();
		if (*p != '#')
			check_sample(p, nl);
		p = nl + 1;
	}
	evbuffer_free(buf);
}

/* Render every answer from the registry's state. */
static void render(struct server *srv, const char *name)
{
	json_t *hosts = host_json_all(srv->registry);
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h)
	{
		if (!text_ok(json_string_value(json_object_get(h, "name"))))
			abort();
	}
	check_json(hosts);
	if (name) {
		json_t *one;
		if (host_json_one(srv->registry, name, &one) != 0)
			abort();
		check_json(one);
	}
	check_json(registry_alarms_json(srv->registry));
	check_exposition(srv);
}

/* Decode frames from the input and act on each as a session would. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	struct registry *reg = registry_create(data_dir, SYNC_NONE);
	if (!reg)
		abort();
	struct server srv = {.cfg = &cfg, .registry = reg};
	struct host *host = NULL;
	char name[PROTO_NAME_MAX + 1] = "";
	uint64_t sid = 0;
	size_t off = 0;
	for (int n = 0; n < FUZZ_FRAMES && off < size; n++) {
		struct proto_msg msg;
		size_t used = 0;
		const char *err = NULL;
		if (proto_decode(data + off, size - off, PROTO_MAX_PAYLOAD, &msg, &used, &err) !=
		    PROTO_OK)
			break;
		off += used;
		switch (msg.type) {
		case PROTO_HELLO: {
			struct session_ref self = {0, ++sid}, old;
			/* After decoding, the strings are trusted: they must hold. */
			if (!proto_host_valid(msg.u.hello.name) || !text_ok(msg.u.hello.os) ||
			    !text_ok(msg.u.hello.model) || !text_ok(msg.u.hello.boot_id))
				abort();
			if (host)
				registry_down(reg, host, sid - 1, "closed");
			char refused[PROTO_TEXT_MAX + 1];
			host = registry_attach(reg, &msg.u.hello, "127.0.0.1:1", self, &old,
			                       refused, sizeof refused);
			if (!host && !proto_text_valid(refused, strlen(refused)))
				abort(); /* a BYE must carry text */
			if (host)
				snprintf(name, sizeof name, "%s", msg.u.hello.name);
			break;
		}
		case PROTO_METRICS:
			if (host) {
				uint64_t stored = 0, retimed = 0;
				if (registry_store(reg, host, sid, &msg.u.metrics, rules, &stored,
				                   &retimed) == 0 &&
				    stored < msg.u.metrics.seq)
					abort(); /* an ACK would skip what was just taken */
			}
			break;
		case PROTO_ALARM:
			if (host)
				registry_alarm(reg, host, sid, &msg.u.alarm);
			break;
		case PROTO_HEARTBEAT:
			if (host)
				registry_down(reg, host, sid, "timeout");
			break;
		default:
			if (host)
				registry_seen(reg, host, sid);
			break;
		}
		proto_msg_free(&msg);
	}
	if (host)
		registry_down(reg, host, sid, "closed");
	render(&srv, name[0] ? name : NULL);
	registry_destroy(reg);
	if (nftw(data_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		abort();
	return 0;
}
