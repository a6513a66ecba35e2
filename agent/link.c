/* The agent's session to the server. */
#include "link.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "pimon_version.h"
#include "proto.h"
#include "util.h"

enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_HELLO_SENT, LINK_READY, LINK_STOPPING };

/* An encoded METRICS frame waiting for its ACK. */
struct pending {
	uint64_t seq;
	uint8_t *data;
	size_t len;
};

struct link {
	struct event_base *base;
	const struct pimon_config *cfg;
	struct collect *col;
	char name[PROTO_NAME_MAX + 1];
	char host[256];
	int port;
	struct bufferevent *bev;
	enum link_state state;
	struct event *retry_timer, *collect_timer, *heartbeat_timer, *stop_timer;
	unsigned attempt;      /* failed connects since the last WELCOME */
	uint32_t interval_ms;  /* from WELCOME; 0 until the first */
	uint32_t heartbeat_ms; /* from WELCOME */
	uint64_t run_id;
	uint64_t next_seq;
	struct pending *queue; /* ring of unacked batches, oldest first */
	size_t qhead, qlen, qcap;
	uint64_t dropped;
	struct proto_buf scratch;
};

static void link_event_cb(struct bufferevent *bev, short what, void *arg);
static void link_read_cb(struct bufferevent *bev, void *arg);
static void link_stop_timer_cb(evutil_socket_t fd, short what, void *arg);

/* A random 64-bit value for the run id and jitter. */
static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
		v = util_now_ms() ^ ((uint64_t)getpid() << 32);
	return v;
}

/* Milliseconds as a timeval. */
static struct timeval ms_tv(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	return tv;
}

/* Create the link; nothing happens until link_start. */
struct link *link_create(struct event_base *base, const struct pimon_config *cfg,
                         struct collect *col, const char *name)
{
	struct link *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->base = base;
	l->cfg = cfg;
	l->col = col;
	snprintf(l->name, sizeof l->name, "%s", name);
	if (util_split_hostport(cfg->agent.server, l->host, sizeof l->host, &l->port) < 0) {
		log_err("link", "agent.server '%s': expected host:port", cfg->agent.server);
		free(l);
		return NULL;
	}
	l->qcap = (size_t)cfg->agent.queue_max;
	l->queue = calloc(l->qcap, sizeof *l->queue);
	l->run_id = random_u64();
	l->next_seq = 1;
	return l;
}

/* Drop the connection and its timers. */
static void link_drop(struct link *l)
{
	if (l->bev) {
		bufferevent_free(l->bev);
		l->bev = NULL;
	}
	if (l->heartbeat_timer)
		evtimer_del(l->heartbeat_timer);
}

/* Free everything. */
void link_destroy(struct link *l)
{
	if (!l)
		return;
	link_drop(l);
	struct event *timers[] = {l->retry_timer, l->collect_timer, l->heartbeat_timer,
	                          l->stop_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	for (size_t i = 0; i < l->qlen; i++)
		free(l->queue[(l->qhead + i) % l->qcap].data);
	free(l->queue);
	proto_buf_free(&l->scratch);
	free(l);
}

/* Capped exponential backoff with equal jitter: half fixed, half random. */
static uint64_t backoff_ms(struct link *l)
{
	double d = l->cfg->agent.reconnect_min * 1000.0;
	double cap = l->cfg->agent.reconnect_max * 1000.0;
	for (unsigned i = 0; i < l->attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	uint64_t half = (uint64_t)(d / 2);
	return half + (half ? random_u64() % (half + 1) : 0);
}

static void link_connect(struct link *l);

/* Retry timer fired. */
static void link_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	link_connect(arg);
}

/* Lose the session and plan the next attempt. */
static void link_lost(struct link *l, const char *why)
{
	if (l->state == LINK_STOPPING) {
		event_base_loopexit(l->base, NULL);
		return;
	}
	link_drop(l);
	l->state = LINK_IDLE;
	uint64_t ms = backoff_ms(l);
	l->attempt++;
	log_warn("link", "%s:%d: %s; reconnecting in %.1f s (%zu batches queued)", l->host, l->port,
	         why, (double)ms / 1000.0, l->qlen);
	struct timeval tv = ms_tv(ms);
	evtimer_add(l->retry_timer, &tv);
}

/* Encode and write one message on the live connection. */
static int link_send(struct link *l, const struct proto_msg *msg)
{
	const char *err;
	proto_buf_reset(&l->scratch);
	if (proto_encode(msg, &l->scratch, &err) < 0) {
		log_err("link", "cannot encode %s: %s", proto_type_name(msg->type), err);
		return -1;
	}
	return bufferevent_write(l->bev, l->scratch.data, l->scratch.len);
}

/* Open a connection to the server. */
static void link_connect(struct link *l)
{
	l->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!l->bev) {
		link_lost(l, "cannot create a socket");
		return;
	}
	bufferevent_setcb(l->bev, link_read_cb, NULL, link_event_cb, l);
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
	struct timeval tv = {10, 0};
	bufferevent_set_timeouts(l->bev, &tv, &tv);
	l->state = LINK_CONNECTING;
	log_debug("link", "connecting to %s:%d", l->host, l->port);
	if (bufferevent_socket_connect_hostname(l->bev, NULL, AF_UNSPEC, l->host, l->port) < 0)
		link_lost(l, "cannot connect");
}

/* Start the first connection. */
void link_start(struct link *l)
{
	l->retry_timer = evtimer_new(l->base, link_retry_cb, l);
	l->stop_timer = evtimer_new(l->base, link_stop_timer_cb, l);
	link_connect(l);
}

/* Connected: introduce ourselves. */
static void link_send_hello(struct link *l)
{
	struct proto_msg m = {.type = PROTO_HELLO};
	struct proto_hello *h = &m.u.hello;
	collect_sysinfo(l->col, h);
	h->name = l->name;
	h->version = PIMON_VERSION;
	h->caps = PROTO_CAP_POLL;
	h->run_id = l->run_id;
	h->auth_len = 0;
	h->auth = NULL;
	link_send(l, &m);
	l->state = LINK_HELLO_SENT;
}

/* Queue an encoded batch; the oldest goes when the queue is full. */
static void link_enqueue(struct link *l, uint64_t seq, const uint8_t *data, size_t len)
{
	if (l->qlen == l->qcap) {
		struct pending *old = &l->queue[l->qhead];
		free(old->data);
		l->qhead = (l->qhead + 1) % l->qcap;
		l->qlen--;
		if (l->dropped++ % 100 == 0)
			log_warn("link", "queue full (%zu batches): dropping the oldest (%llu so far)",
			         l->qcap, (unsigned long long)l->dropped);
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		log_err("link", "out of memory: batch %llu lost", (unsigned long long)seq);
		return;
	}
	memcpy(copy, data, len);
	struct pending *p = &l->queue[(l->qhead + l->qlen) % l->qcap];
	p->seq = seq;
	p->data = copy;
	p->len = len;
	l->qlen++;
}

/* Collect a sample now; queue it and send it when connected. */
static void link_collect_now(struct link *l)
{
	const struct proto_group *groups;
	size_t n = collect_run(l->col, util_now_ms(), &groups);
	if (n == 0)
		return;
	struct proto_msg m = {.type = PROTO_METRICS};
	m.u.metrics.seq = l->next_seq;
	m.u.metrics.ngroups = (uint32_t)n;
	m.u.metrics.groups = groups;
	const char *err;
	proto_buf_reset(&l->scratch);
	if (proto_encode(&m, &l->scratch, &err) < 0) {
		log_err("link", "cannot encode a batch: %s", err);
		return;
	}
	l->next_seq++;
	link_enqueue(l, m.u.metrics.seq, l->scratch.data, l->scratch.len);
	if (l->state == LINK_READY)
		bufferevent_write(l->bev, l->scratch.data, l->scratch.len);
}

/* The collect timer fired. */
static void link_collect_cb(evutil_socket_t fd, short what, void *arg)
{
	link_collect_now(arg);
}

/* The heartbeat timer fired. */
static void link_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	struct proto_msg m = {.type = PROTO_HEARTBEAT, .u.heartbeat.time_ms = util_now_ms()};
	if (l->state == LINK_READY)
		link_send(l, &m);
}

/* WELCOME: take the server's plan, resend what is unacked, start timers. */
static void handle_welcome(struct link *l, const struct proto_welcome *w)
{
	if (w->interval_ms == 0 || w->heartbeat_ms == 0) {
		link_lost(l, "server sent a zero interval");
		return;
	}
	collect_select(l->col, w->metrics, w->nmetrics);
	int first = l->interval_ms == 0;
	int changed = l->interval_ms != w->interval_ms;
	l->interval_ms = w->interval_ms;
	l->heartbeat_ms = w->heartbeat_ms;
	l->state = LINK_READY;
	l->attempt = 0;
	log_info("link", "connected to %s:%d as %s: every %.1f s, %u collectors, %zu batches to resend",
	         l->host, l->port, l->name, w->interval_ms / 1000.0, (unsigned)w->nmetrics, l->qlen);
	for (size_t i = 0; i < l->qlen; i++) {
		const struct pending *p = &l->queue[(l->qhead + i) % l->qcap];
		bufferevent_write(l->bev, p->data, p->len);
	}
	/* Silence for three heartbeats means the server is gone. */
	struct timeval rt = ms_tv(3ull * w->heartbeat_ms + 1000);
	bufferevent_set_timeouts(l->bev, &rt, &rt);
	if (!l->heartbeat_timer)
		l->heartbeat_timer = event_new(l->base, -1, EV_PERSIST, link_heartbeat_cb, l);
	struct timeval hb = ms_tv(w->heartbeat_ms);
	evtimer_add(l->heartbeat_timer, &hb);
	if (first) {
		l->collect_timer = event_new(l->base, -1, EV_PERSIST, link_collect_cb, l);
		collect_run(l->col, util_now_ms(), &(const struct proto_group *){NULL});
	}
	if (first || changed) {
		struct timeval iv = ms_tv(w->interval_ms);
		evtimer_add(l->collect_timer, &iv);
	}
}

/* ACK: forget every batch up to seq. */
static void handle_ack(struct link *l, uint64_t seq)
{
	while (l->qlen && l->queue[l->qhead].seq <= seq) {
		free(l->queue[l->qhead].data);
		l->qhead = (l->qhead + 1) % l->qcap;
		l->qlen--;
	}
}

/* Act on one frame from the server; -1 when the link was dropped. */
static int link_dispatch(struct link *l, const struct proto_msg *msg)
{
	if (l->state == LINK_HELLO_SENT && msg->type != PROTO_WELCOME && msg->type != PROTO_BYE) {
		link_lost(l, "server did not answer HELLO with WELCOME");
		return -1;
	}
	switch (msg->type) {
	case PROTO_WELCOME:
		handle_welcome(l, &msg->u.welcome);
		break;
	case PROTO_ACK:
		handle_ack(l, msg->u.ack.seq);
		break;
	case PROTO_HEARTBEAT:
		break;
	case PROTO_POLL:
		link_collect_now(l);
		break;
	case PROTO_BYE: {
		char why[PROTO_TEXT_MAX + 32];
		snprintf(why, sizeof why, "server said goodbye: %s", msg->u.bye.reason);
		link_lost(l, why);
		return -1;
	}
	default: {
		char why[64];
		snprintf(why, sizeof why, "unexpected %s from the server", proto_type_name(msg->type));
		link_lost(l, why);
		return -1;
	}
	}
	return l->state == LINK_IDLE ? -1 : 0;
}

/* Decode and handle every complete frame. */
static void link_read_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail < PROTO_HEADER_SIZE)
			return;
		const char *err = NULL;
		struct proto_header hdr;
		const uint8_t *p = evbuffer_pullup(in, PROTO_HEADER_SIZE);
		if (proto_header_parse(p, PROTO_HEADER_SIZE, PROTO_MAX_PAYLOAD, &hdr, &err) !=
		    PROTO_OK) {
			link_lost(l, err);
			return;
		}
		size_t total = PROTO_HEADER_SIZE + (size_t)hdr.length;
		if (avail < total)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)total);
		struct proto_msg msg;
		size_t used;
		if (proto_decode(p, total, PROTO_MAX_PAYLOAD, &msg, &used, &err) != PROTO_OK) {
			link_lost(l, err);
			return;
		}
		evbuffer_drain(in, used);
		int rc = link_dispatch(l, &msg);
		proto_msg_free(&msg);
		if (rc < 0)
			return;
	}
}

/* Connected, closed, failed or silent. */
static void link_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	if (what & BEV_EVENT_CONNECTED) {
		link_send_hello(l);
		return;
	}
	char why[256];
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof why, "server silent");
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof why, "server closed the connection");
	else {
		int dns = bufferevent_socket_get_dns_error(bev);
		snprintf(why, sizeof why, "%s",
		         dns ? evutil_gai_strerror(dns)
		             : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	link_lost(l, why);
}

/* All sent: leave the loop. */
static void link_stop_drained_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		event_base_loopexit(l->base, NULL);
}

/* Deadline for the goodbye. */
static void link_stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	event_base_loopexit(l->base, NULL);
}

/* Say goodbye, then leave the loop. */
void link_shutdown(struct link *l)
{
	if (l->collect_timer)
		evtimer_del(l->collect_timer);
	if (l->retry_timer)
		evtimer_del(l->retry_timer);
	if (l->state != LINK_READY) {
		event_base_loopexit(l->base, NULL);
		return;
	}
	struct proto_msg bye = {.type = PROTO_BYE, .u.bye.reason = "agent stopping"};
	link_send(l, &bye);
	l->state = LINK_STOPPING;
	bufferevent_setcb(l->bev, NULL, link_stop_drained_cb, link_event_cb, l);
	struct timeval tv = {2, 0};
	evtimer_add(l->stop_timer, &tv);
}
