/* The agent's session to the server. */
#include "link.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "pimon_version.h"
#include "proto.h"
#include "spool.h"
#include "tls_client.h"
#include "util.h"

/* Batches sent and not yet acked, at most. */
#define LINK_WINDOW 64
/* No ACK progress for this long (or 3 intervals) and the unacked are resent. */
#define LINK_ACK_TIMEOUT_MS 5000
/* Unacked alarms kept, at most; past this the oldest go (logged). */
#define LINK_ALARMS_MAX 1024
/* Slots the batch queue starts with; it doubles up to agent.queue_max
 * only while the server is away, and is this small again once all is
 * acked, so a connected agent keeps 1 kB of ring, not queue_max slots. */
#define LINK_QUEUE_MIN 32

enum link_state {
	LINK_IDLE,
	LINK_CONNECTING,
	LINK_CHALLENGED, /* connected, waiting for the server's nonce */
	LINK_HELLO_SENT,
	LINK_READY,
	LINK_STOPPING,
};

/* An encoded METRICS frame waiting for its ACK. */
struct pending {
	uint64_t seq;
	uint8_t *data;
	size_t len;
	int spooled; /* also in the spool file */
};

struct link {
	struct event_base *base;
	const struct pimon_config *cfg;
	struct collect *col;
	char name[PROTO_NAME_MAX + 1];
	char host[256]; /* the server in use: agent.server[cur] */
	int port;
	size_t cur;
	struct bufferevent *bev;
	enum link_state state;
	struct event *retry_timer, *collect_timer, *heartbeat_timer, *stop_timer;
	struct event *pump_timer;  /* next send when the catch-up rate allows */
	struct event *ack_timer;   /* no ACK progress: resend */
	struct event *spool_timer; /* while away: write new batches to the spool */
	unsigned attempt;          /* failed connects since the last WELCOME */
	uint32_t interval_ms;      /* from WELCOME; 0 until the first */
	uint32_t heartbeat_ms;     /* from WELCOME */
	uint64_t run_id;
	uint64_t next_seq;
	struct pending *queue; /* ring of unacked batches, oldest first */
	size_t qhead, qlen, qcap;
	size_t qmax;      /* agent.queue_max: qcap grows up to it */
	size_t qsent;     /* of those, sent on this connection */
	size_t qbytes;    /* bytes the queue holds */
	uint64_t dropped; /* batches lost to the bounds, this run */
	double tokens;    /* catch-up rate limiter */
	uint64_t tokens_ms;
	struct pending *alarms; /* unacked ALARM frames, oldest first */
	size_t nalarms, acap;
	size_t asent;       /* of those, sent on this connection */
	uint64_t next_aseq; /* ALARM seqs, apart from the batches' */
	uint64_t dropped_alarms;
	struct spool *spool;        /* NULL: memory only */
	int spool_stale;            /* the file holds entries no longer queued */
	const struct auth_key *key; /* NULL: no proof */
	struct tls_client *tls;     /* NULL: plain TCP */
	char tls_name[256];         /* name the server's certificate must carry */
	struct proto_buf scratch;
};

static void link_event_cb(struct bufferevent *bev, short what, void *arg);
static void link_read_cb(struct bufferevent *bev, void *arg);
static void link_stop_timer_cb(evutil_socket_t fd, short what, void *arg);
static void link_pump_cb(evutil_socket_t fd, short what, void *arg);
static void link_ack_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void link_spool_timer_cb(evutil_socket_t fd, short what, void *arg);
static void link_spool_flush(struct link *l);
static void link_pop(struct link *l);
static void link_pump(struct link *l);

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

static int link_select(struct link *l, size_t i);
static void link_enqueue(struct link *l, uint64_t seq, const uint8_t *data, size_t len,
                         int spooled);
static void link_alarm_enqueue(struct link *l, uint64_t seq, const uint8_t *data, size_t len,
                               int spooled);

/* One batch or alarm from the spool of an earlier run goes back in its
 * queue; the frame's type byte tells which. */
static int link_spool_record(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	struct link *l = arg;
	if (len > 3 && data[3] == PROTO_ALARM) {
		link_alarm_enqueue(l, seq, data, len, 1);
		if (seq >= l->next_aseq)
			l->next_aseq = seq + 1;
		return 0;
	}
	link_enqueue(l, seq, data, len, 1);
	if (seq >= l->next_seq)
		l->next_seq = seq + 1;
	return 0;
}

/* Take over what an earlier run left unacked: its run id, its batches and
 * its count of lost ones, so the server can tell resends from new rows. */
static void link_spool_load(struct link *l)
{
	uint64_t run_id = 0, dropped = 0;
	int n = spool_load(l->spool, &run_id, &dropped, link_spool_record, l);
	if (n > 0) {
		l->run_id = run_id;
		l->dropped += dropped;
		log_notice("link",
		           "%zu unacked batches and %zu alarms from the spool will be sent (%llu "
		           "batches lost before)",
		           l->qlen, l->nalarms, (unsigned long long)dropped);
	}
}

/* Use agent.server[i] from the next connection on. */
static int link_select(struct link *l, size_t i)
{
	const char *addr = l->cfg->agent.server[i];
	if (util_split_hostport(addr, l->host, sizeof l->host, &l->port) < 0)
		return -1;
	l->cur = i;
	snprintf(l->tls_name, sizeof l->tls_name, "%s",
	         l->cfg->agent.tls_server_name[0] ? l->cfg->agent.tls_server_name : l->host);
	return 0;
}

/* Create the link; nothing happens until link_start. */
struct link *link_create(struct event_base *base, const struct pimon_config *cfg,
                         struct collect *col, const char *name, const struct auth_key *key,
                         struct tls_client *tls)
{
	struct link *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->base = base;
	l->key = key;
	l->tls = tls;
	l->cfg = cfg;
	l->col = col;
	snprintf(l->name, sizeof l->name, "%s", name);
	for (size_t i = cfg->agent.nserver; i-- > 0;) {
		if (link_select(l, i) < 0) {
			log_err("link", "agent.server '%s': expected host:port",
			        cfg->agent.server[i]);
			free(l);
			return NULL;
		}
	}
	l->qmax = (size_t)cfg->agent.queue_max;
	l->qcap = l->qmax < LINK_QUEUE_MIN ? l->qmax : LINK_QUEUE_MIN;
	l->queue = calloc(l->qcap, sizeof *l->queue);
	if (!l->queue) {
		free(l);
		return NULL;
	}
	l->run_id = random_u64();
	l->next_seq = 1;
	l->next_aseq = 1;
	l->tokens = cfg->agent.catchup_rate;
	/* One folder per host name, so agents of several names share a machine. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/%s", cfg->agent.spool_dir, name);
	l->spool = spool_open(dir);
	if (!l->spool)
		log_warn("link", "no spool in %s: unacked batches live in memory only", dir);
	else
		link_spool_load(l);
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
	if (l->pump_timer)
		evtimer_del(l->pump_timer);
	if (l->ack_timer)
		evtimer_del(l->ack_timer);
	l->qsent = 0;
	l->asent = 0;
}

/* Free everything. */
void link_destroy(struct link *l)
{
	if (!l)
		return;
	link_drop(l);
	link_spool_flush(l);
	spool_close(l->spool);
	struct event *timers[] = {l->retry_timer, l->collect_timer, l->heartbeat_timer,
	                          l->stop_timer,  l->pump_timer,    l->ack_timer,
	                          l->spool_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	while (l->qlen)
		link_pop(l);
	free(l->queue);
	for (size_t i = 0; i < l->nalarms; i++)
		free(l->alarms[i].data);
	free(l->alarms);
	proto_buf_free(&l->scratch);
	free(l);
}

/* Capped exponential backoff with equal jitter: half fixed, half random.
 * It grows with every round through all the servers. */
static uint64_t backoff_ms(struct link *l)
{
	double d = l->cfg->agent.reconnect_min * 1000.0;
	double cap = l->cfg->agent.reconnect_max * 1000.0;
	for (unsigned i = 0; i < l->attempt / l->cfg->agent.nserver && d < cap; i++)
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
	link_spool_flush(l);
	struct timeval sf = ms_tv((uint64_t)(l->cfg->agent.spool_flush * 1000.0));
	if (l->interval_ms)
		evtimer_add(l->spool_timer, &sf);
	uint64_t ms = backoff_ms(l);
	l->attempt++;
	char was[300];
	snprintf(was, sizeof was, "%s:%d", l->host, l->port);
	/* Fail over: the next server of the list, the first again after the last. */
	if (l->cfg->agent.nserver > 1)
		link_select(l, (l->cur + 1) % l->cfg->agent.nserver);
	log_warn("link", "%s: %s; %s in %.1f s (%zu batches queued)", was, why,
	         l->cfg->agent.nserver > 1 ? "trying the next server" : "reconnecting",
	         (double)ms / 1000.0, l->qlen);
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
	/* Over TLS, tls_name goes out as SNI and the certificate must carry it. */
	if (l->tls)
		l->bev = tls_client_bufferevent(l->tls, l->base, l->tls_name);
	else
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
	l->pump_timer = evtimer_new(l->base, link_pump_cb, l);
	l->ack_timer = evtimer_new(l->base, link_ack_timeout_cb, l);
	l->spool_timer = event_new(l->base, -1, EV_PERSIST, link_spool_timer_cb, l);
	link_connect(l);
}

/* The server's nonce arrived: introduce ourselves, with the proof. */
static void link_send_hello(struct link *l, const uint8_t nonce[PROTO_NONCE_SIZE])
{
	struct proto_msg m = {.type = PROTO_HELLO};
	struct proto_hello *h = &m.u.hello;
	uint8_t proof[AUTH_PROOF_SIZE];
	collect_sysinfo(l->col, h);
	h->name = l->name;
	h->version = PIMON_VERSION;
	h->caps = PROTO_CAP_POLL;
	h->run_id = l->run_id;
	h->auth_len = 0;
	h->auth = NULL;
	if (l->key) {
		auth_proof(l->key, nonce, l->name, l->run_id, proof);
		h->auth = proof;
		h->auth_len = AUTH_PROOF_SIZE;
	}
	link_send(l, &m);
	l->state = LINK_HELLO_SENT;
}

static void link_pop(struct link *l)
{
	struct pending *p = &l->queue[l->qhead];
	if (p->spooled)
		l->spool_stale = 1;
	l->qbytes -= p->len;
	free(p->data);
	l->qhead = (l->qhead + 1) % l->qcap;
	l->qlen--;
	if (l->qsent)
		l->qsent--;
}

/* Move the ring into cap slots, oldest first at 0; 0, or -1 (nothing
 * changed) when out of memory. */
static int link_queue_resize(struct link *l, size_t cap)
{
	struct pending *q = calloc(cap, sizeof *q);
	if (!q)
		return -1;
	for (size_t i = 0; i < l->qlen; i++)
		q[i] = l->queue[(l->qhead + i) % l->qcap];
	free(l->queue);
	l->queue = q;
	l->qcap = cap;
	l->qhead = 0;
	return 0;
}

/* Queue an encoded batch; past queue_max batches or spool_max bytes the
 * oldest go, counted. The ring doubles when full, up to queue_max. */
static void link_enqueue(struct link *l, uint64_t seq, const uint8_t *data, size_t len, int spooled)
{
	if (l->qlen == l->qcap && l->qcap < l->qmax &&
	    link_queue_resize(l, l->qcap * 2 < l->qmax ? l->qcap * 2 : l->qmax) < 0)
		log_warn("link", "out of memory: the queue stays at %zu batches", l->qcap);
	while (l->qlen &&
	       (l->qlen == l->qcap || l->qbytes + len > (size_t)l->cfg->agent.spool_max)) {
		link_pop(l);
		if (l->dropped++ % 100 == 0)
			log_warn("link",
			         "unacked batches over the bound (%zu, %zu bytes): dropping the "
			         "oldest (%llu so far)",
			         l->qlen + 1, l->qbytes, (unsigned long long)l->dropped);
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		l->dropped++;
		log_err("link", "out of memory: batch %llu lost", (unsigned long long)seq);
		return;
	}
	memcpy(copy, data, len);
	struct pending *p = &l->queue[(l->qhead + l->qlen) % l->qcap];
	p->seq = seq;
	p->data = copy;
	p->len = len;
	p->spooled = spooled;
	l->qlen++;
	l->qbytes += len;
}

/* Queue an encoded ALARM; past LINK_ALARMS_MAX the oldest goes. */
static void link_alarm_enqueue(struct link *l, uint64_t seq, const uint8_t *data, size_t len,
                               int spooled)
{
	uint8_t *copy = malloc(len);
	if (!copy) {
		log_err("link", "out of memory: alarm %llu lost", (unsigned long long)seq);
		return;
	}
	if (l->nalarms == l->acap && l->acap < LINK_ALARMS_MAX) {
		size_t cap = l->acap ? l->acap * 2 : 8;
		struct pending *a = realloc(l->alarms, cap * sizeof *a);
		if (a) {
			l->alarms = a;
			l->acap = cap;
		}
	}
	if (l->nalarms == l->acap && l->nalarms == 0) {
		free(copy);
		log_err("link", "out of memory: alarm %llu lost", (unsigned long long)seq);
		return;
	}
	if (l->nalarms == l->acap) {
		if (l->alarms[0].spooled)
			l->spool_stale = 1;
		free(l->alarms[0].data);
		memmove(l->alarms, l->alarms + 1, (l->nalarms - 1) * sizeof *l->alarms);
		l->nalarms--;
		if (l->asent)
			l->asent--;
		if (l->dropped_alarms++ % 100 == 0)
			log_warn("link", "%zu unacked alarms: dropping the oldest (%llu so far)",
			         l->acap, (unsigned long long)l->dropped_alarms);
	}
	memcpy(copy, data, len);
	l->alarms[l->nalarms++] = (struct pending){seq, copy, len, spooled};
}

/* Forget the alarms up to seq (acked). */
static int link_alarm_acked(struct link *l, uint64_t seq)
{
	size_t n = 0;
	while (n < l->nalarms && l->alarms[n].seq <= seq) {
		if (l->alarms[n].spooled)
			l->spool_stale = 1;
		free(l->alarms[n].data);
		n++;
	}
	if (n == 0)
		return 0;
	memmove(l->alarms, l->alarms + n, (l->nalarms - n) * sizeof *l->alarms);
	l->nalarms -= n;
	l->asent = l->asent > n ? l->asent - n : 0;
	return 1;
}

/* Write what the spool lacks: everything when entries left it, otherwise
 * only the alarms and batches not yet in it, with one write. */
static void link_spool_flush(struct link *l)
{
	if (!l->spool)
		return;
	if (l->qlen == 0 && l->nalarms == 0) {
		if (l->spool_stale || spool_bytes(l->spool))
			spool_clear(l->spool);
		l->spool_stale = 0;
		return;
	}
	struct spool_record *recs = calloc(l->qlen + l->nalarms, sizeof *recs);
	if (!recs)
		return;
	size_t n = 0, first = l->spool_stale ? 0 : l->qlen;
	for (size_t i = 0; i < l->nalarms; i++) {
		struct pending *p = &l->alarms[i];
		if (l->spool_stale || !p->spooled)
			recs[n++] = (struct spool_record){p->seq, p->data, p->len};
	}
	for (size_t i = 0; i < l->qlen; i++) {
		struct pending *p = &l->queue[(l->qhead + i) % l->qcap];
		if (!p->spooled && i < first)
			first = i;
	}
	for (size_t i = first; i < l->qlen; i++) {
		struct pending *p = &l->queue[(l->qhead + i) % l->qcap];
		recs[n++] = (struct spool_record){p->seq, p->data, p->len};
	}
	int rc = 0;
	if (l->spool_stale)
		rc = spool_rewrite(l->spool, l->run_id, l->dropped, recs, n);
	else if (n)
		rc = spool_append(l->spool, l->run_id, l->dropped, recs, n);
	free(recs);
	if (rc < 0)
		return;
	l->spool_stale = 0;
	for (size_t i = first; i < l->qlen; i++)
		l->queue[(l->qhead + i) % l->qcap].spooled = 1;
	for (size_t i = 0; i < l->nalarms; i++)
		l->alarms[i].spooled = 1;
}

/* While the server is away, batches reach the spool this often. */
static void link_spool_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->state == LINK_READY)
		evtimer_del(l->spool_timer);
	else
		link_spool_flush(l);
}

/* Refill the catch-up bucket: catchup_rate tokens a second, one second's
 * worth at most. */
static void link_refill(struct link *l)
{
	uint64_t now = util_mono_ms();
	double rate = l->cfg->agent.catchup_rate;
	l->tokens += (double)(now - l->tokens_ms) * rate / 1000.0;
	if (l->tokens > rate)
		l->tokens = rate;
	l->tokens_ms = now;
}

/* (Re)arm the ACK timer while batches are in flight. */
static void link_arm_ack_timer(struct link *l)
{
	if (l->qsent == 0 && l->asent == 0) {
		evtimer_del(l->ack_timer);
		return;
	}
	uint64_t ms = 3ull * l->interval_ms;
	struct timeval tv = ms_tv(ms > LINK_ACK_TIMEOUT_MS ? ms : LINK_ACK_TIMEOUT_MS);
	evtimer_add(l->ack_timer, &tv);
}

/* Send queued batches in order: at most LINK_WINDOW unacked, at most
 * catchup_rate a second, so a backlog drains steadily behind which new
 * batches wait their turn (rows stay in time order). */
static void link_pump(struct link *l)
{
	if (l->state != LINK_READY)
		return;
	/* Alarms first, all of them: they jump the queue of batches. */
	size_t abefore = l->asent;
	for (; l->asent < l->nalarms; l->asent++)
		bufferevent_write(l->bev, l->alarms[l->asent].data, l->alarms[l->asent].len);
	if (abefore == 0 && l->asent > 0 && l->qsent == 0)
		link_arm_ack_timer(l);
	link_refill(l);
	size_t before = l->qsent;
	while (l->qsent < l->qlen && l->qsent < LINK_WINDOW && l->tokens >= 1.0) {
		const struct pending *p = &l->queue[(l->qhead + l->qsent) % l->qcap];
		bufferevent_write(l->bev, p->data, p->len);
		l->qsent++;
		l->tokens -= 1.0;
	}
	if (before == 0 && l->qsent > 0 && l->asent == 0)
		link_arm_ack_timer(l);
	if (l->qsent < l->qlen && l->qsent < LINK_WINDOW) {
		double rate = l->cfg->agent.catchup_rate;
		uint64_t ms = (uint64_t)((1.0 - l->tokens) * 1000.0 / rate) + 1;
		struct timeval tv = ms_tv(ms);
		evtimer_add(l->pump_timer, &tv);
	}
}

/* The rate allows another send. */
static void link_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	link_pump(arg);
}

/* No ACK progress: the server could not store them (or lost them); send
 * every unacked batch again, oldest first. */
static void link_ack_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->state != LINK_READY || (l->qsent == 0 && l->asent == 0))
		return;
	log_warn("link", "no ACK for %zu batches and %zu alarms; sending them again", l->qsent,
	         l->asent);
	l->qsent = 0;
	l->asent = 0;
	link_pump(l);
}

/* Encode groups as the next batch, queue it and send it in turn. */
static int link_queue_batch(struct link *l, const struct proto_group *groups, size_t n)
{
	struct proto_msg m = {.type = PROTO_METRICS};
	m.u.metrics.seq = l->next_seq;
	m.u.metrics.ngroups = (uint32_t)n;
	m.u.metrics.groups = groups;
	const char *err;
	proto_buf_reset(&l->scratch);
	if (proto_encode(&m, &l->scratch, &err) < 0) {
		log_err("link", "cannot encode a batch: %s", err);
		return -1;
	}
	l->next_seq++;
	link_enqueue(l, m.u.metrics.seq, l->scratch.data, l->scratch.len, 0);
	link_pump(l);
	return 0;
}

/* A batch of its own for groups from outside the collectors (checks). */
int link_send_groups(struct link *l, const struct proto_group *groups, size_t n)
{
	return link_queue_batch(l, groups, n);
}

/* An alarm's new state: queued ahead of the batches, sent now if we can. */
int link_alarm(struct link *l, uint8_t source, const char *name, uint8_t level, const char *message,
               uint64_t time_ms)
{
	struct proto_msg m = {.type = PROTO_ALARM};
	m.u.alarm = (struct proto_alarm){l->next_aseq, time_ms, level, source, name, message};
	const char *err;
	proto_buf_reset(&l->scratch);
	if (proto_encode(&m, &l->scratch, &err) < 0) {
		log_err("link", "cannot encode alarm %s: %s", name, err);
		return -1;
	}
	l->next_aseq++;
	link_alarm_enqueue(l, m.u.alarm.seq, l->scratch.data, l->scratch.len, 0);
	link_pump(l);
	return 0;
}

/* Collect a sample now, with the agent's own delivery figures; queue it
 * and send it in turn. */
static void link_collect_now(struct link *l)
{
	const struct proto_group *groups;
	size_t n = collect_run(l->col, util_now_ms(), &groups);
	if (n == 0)
		return;
	static const char *const fields[] = {"dropped_batches", "queued_batches", "spool_bytes"};
	struct proto_group all[PROTO_MAX_METRICS + 1];
	if (n > PROTO_MAX_METRICS)
		n = PROTO_MAX_METRICS;
	memcpy(all, groups, n * sizeof *all);
	double values[3] = {(double)l->dropped, (double)l->qlen,
	                    l->spool ? (double)spool_bytes(l->spool) : 0.0};
	struct proto_row row = {groups[0].rows[0].time_ms, "", values};
	all[n] = (struct proto_group){"agent", "", 3, fields, 1, &row};
	link_queue_batch(l, all, n + 1);
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
	log_info(
	    "link", "connected to %s:%d as %s: every %.1f s, %u collectors, %zu batches to resend",
	    l->host, l->port, l->name, w->interval_ms / 1000.0, (unsigned)w->nmetrics, l->qlen);
	l->qsent = 0;
	evtimer_del(l->spool_timer);
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
	link_pump(l);
}

/* Something was acked: clear the spool once nothing is left, restart the
 * ACK timer, send on. */
static void link_acked(struct link *l)
{
	if (l->qlen == 0 && l->nalarms == 0 && l->spool &&
	    (l->spool_stale || spool_bytes(l->spool))) {
		spool_clear(l->spool);
		l->spool_stale = 0;
	}
	link_arm_ack_timer(l);
	link_pump(l);
}

/* ACK: forget every batch up to seq; the window moves on. */
static void handle_ack(struct link *l, uint64_t seq)
{
	int moved = 0;
	while (l->qlen && l->queue[l->qhead].seq <= seq) {
		link_pop(l);
		moved = 1;
	}
	if (!moved)
		return;
	/* A backlog drained: give the grown ring back. */
	if (l->qlen == 0 && l->qcap > LINK_QUEUE_MIN)
		link_queue_resize(l, LINK_QUEUE_MIN);
	link_acked(l);
}

/* ALARM_ACK: forget every alarm up to seq. */
static void handle_alarm_ack(struct link *l, uint64_t seq)
{
	if (link_alarm_acked(l, seq))
		link_acked(l);
}

/* Act on one frame from the server; -1 when the link was dropped. */
static int link_dispatch(struct link *l, const struct proto_msg *msg)
{
	if (l->state == LINK_CHALLENGED) {
		if (msg->type != PROTO_CHALLENGE) {
			link_lost(l, "server did not start with CHALLENGE");
			return -1;
		}
		link_send_hello(l, msg->u.challenge.nonce);
		return 0;
	}
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
	case PROTO_ALARM_ACK:
		handle_alarm_ack(l, msg->u.ack.seq);
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
		snprintf(why, sizeof why, "unexpected %s from the server",
		         proto_type_name(msg->type));
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
		l->state = LINK_CHALLENGED;
		return;
	}
	char why[256];
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof why, "server silent");
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof why, "server closed the connection");
	else {
		int dns = bufferevent_socket_get_dns_error(bev);
		if (!l->tls || !tls_client_error(l->tls, bev, why, sizeof why))
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
