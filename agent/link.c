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
#include "outbox.h"
#include "schema.h"
#include "peers.h"
#include "pimon_version.h"
#include "proto.h"
#include "rendezvous.h"
#include "tls_client.h"
#include "util.h"

/* No ACK progress for this long (or 3 intervals) and the unacked are resent. */
#define LINK_ACK_TIMEOUT_MS 5000
/* A session up this long (or 3 heartbeats) was stable: losing it starts the
 * reconnect delay over from agent.reconnect.min. */
#define LINK_STABLE_MS 10000
/* Pump again this soon when the outbox held batches back (a mark it could
 * not write), not the catch-up rate. */
#define LINK_RETRY_SEND_MS 1000

enum link_state {
	LINK_IDLE,
	LINK_CONNECTING,
	LINK_CHALLENGED, /* connected, waiting for the server's nonce */
	LINK_HELLO_SENT,
	LINK_READY,
	LINK_MOVING, /* BYE sent to a fallback, leaving for the first choice */
	LINK_STOPPING,
};

struct link {
	struct event_base *base;
	const struct pimon_config *cfg;
	struct collect *col;
	char name[PROTO_NAME_MAX + 1];
	char host[256]; /* the server in use: servers[order[pos]] */
	int port;
	/* The servers the fleet shares (agent.server, or WELCOME's peers),
	 * ranked for this host's name; pos is the one in use, nservers when
	 * it is not in the list (a WELCOME named others). */
	char *servers[RENDEZVOUS_MAX];
	size_t nservers;
	size_t order[RENDEZVOUS_MAX];
	size_t pos;
	char addr[PROTO_ADDR_MAX + 1]; /* the one in use, as listed */
	struct event *return_timer;    /* on a fallback: probe the first choice */
	struct bufferevent *probe;     /* connecting to the first choice */
	int learned;                   /* servers from a WELCOME, not agent.server */
	size_t learned_fails;          /* of those, failed in a row since a WELCOME */
	char dir[4096];                /* this host's spool folder */
	struct bufferevent *bev;
	enum link_state state;
	struct event *retry_timer, *collect_timer, *heartbeat_timer, *stop_timer;
	struct event *pump_timer;  /* next send when the catch-up rate allows */
	struct event *ack_timer;   /* no ACK progress: resend */
	struct event *spool_timer; /* while away: write new batches to the spool */
	unsigned attempt;          /* reconnects since the last stable session */
	uint64_t ready_ms;         /* monotonic time of this session's WELCOME */
	uint32_t interval_ms;      /* from WELCOME; 0 until the first */
	uint32_t heartbeat_ms;     /* from WELCOME */
	struct outbox *ob;         /* what waits for the server's ACK */
	double tokens;             /* catch-up rate limiter */
	uint64_t tokens_ms;
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

/* Use the server ranked pos from the next connection on. */
static void link_select(struct link *l, size_t pos)
{
	const char *addr = l->servers[l->order[pos]];
	/* Every listed address was split once already (link_set_servers). */
	if (util_split_hostport(addr, l->host, sizeof l->host, &l->port) < 0)
		return;
	l->pos = pos;
	snprintf(l->addr, sizeof l->addr, "%s", addr);
	snprintf(l->tls_name, sizeof l->tls_name, "%s",
	         l->cfg->agent.tls_server_name[0] ? l->cfg->agent.tls_server_name : l->host);
}

/* Free the server list. */
static void link_free_servers(struct link *l)
{
	for (size_t i = 0; i < l->nservers; i++)
		free(l->servers[i]);
	l->nservers = 0;
}

/* Take list (n addresses) as the servers, ranked for this host, and find
 * the one in use in it; 0, or -1 (logged, nothing changed) when one is not
 * host:port or memory runs out. */
static int link_set_servers(struct link *l, const char *const *list, size_t n)
{
	char *copy[RENDEZVOUS_MAX];
	char host[256];
	int port;
	if (n == 0 || n > RENDEZVOUS_MAX) {
		log_err("link", "%zu servers: expected 1..%d", n, RENDEZVOUS_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(list[i]);
		if (!copy[i] || util_split_hostport(list[i], host, sizeof host, &port) < 0) {
			log_err("link", "server '%s': %s", list[i],
			        copy[i] ? "expected host:port" : "out of memory");
			for (size_t j = 0; j <= i; j++)
				free(copy[j]);
			return -1;
		}
	}
	link_free_servers(l);
	memcpy(l->servers, copy, n * sizeof *copy);
	l->nservers = n;
	rendezvous_rank(l->name, (const char *const *)l->servers, n, l->order);
	l->pos = n;
	for (size_t i = 0; i < n; i++)
		if (strcmp(l->servers[l->order[i]], l->addr) == 0)
			l->pos = i;
	return 0;
}

/* Whether list (n addresses) is the server list in use, in its order. */
static int link_same_servers(const struct link *l, const char *const *list, size_t n)
{
	if (n != l->nservers)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], l->servers[i]) != 0)
			return 0;
	return 1;
}

/* The servers the last WELCOME named, if the spool folder keeps them. */
static void link_load_peers(struct link *l)
{
	struct peers p;
	const char *list[RENDEZVOUS_MAX];
	if (peers_load(l->dir, &p) != 1)
		return;
	for (size_t i = 0; i < p.n; i++)
		list[i] = p.addr[i];
	if (link_set_servers(l, list, p.n) == 0)
		l->learned = 1;
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
	if (link_set_servers(l, (const char *const *)cfg->agent.server, cfg->agent.nserver) < 0) {
		free(l);
		return NULL;
	}
	l->tokens = cfg->agent.catchup_rate;
	/* One folder per host name, so agents of several names share a machine. */
	snprintf(l->dir, sizeof l->dir, "%s/%s", cfg->agent.spool_dir, name);
	l->ob = outbox_create(l->dir, (size_t)cfg->agent.queue_max, (size_t)cfg->agent.spool_max,
	                      random_u64());
	if (!l->ob) {
		link_free_servers(l);
		free(l);
		return NULL;
	}
	link_load_peers(l);
	link_select(l, 0);
	if (l->nservers > 1)
		log_info("link", "%zu servers%s; first choice for %s: %s", l->nservers,
		         l->learned ? " from the last WELCOME" : "", l->name, l->addr);
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
	if (l->return_timer)
		evtimer_del(l->return_timer);
	if (l->probe) {
		bufferevent_free(l->probe);
		l->probe = NULL;
	}
	/* Nothing is in flight on the next connection. */
	if (l->ob)
		outbox_rewind(l->ob);
}

/* Free everything. */
void link_destroy(struct link *l)
{
	if (!l)
		return;
	link_drop(l);
	outbox_flush(l->ob);
	outbox_destroy(l->ob);
	struct event *timers[] = {l->retry_timer, l->collect_timer, l->heartbeat_timer,
	                          l->stop_timer,  l->pump_timer,    l->ack_timer,
	                          l->spool_timer, l->return_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (timers[i])
			event_free(timers[i]);
	proto_buf_free(&l->scratch);
	link_free_servers(l);
	free(l);
}

/* Capped exponential backoff with equal jitter: half fixed, half random.
 * It grows with every round through all the servers. */
static uint64_t backoff_ms(struct link *l)
{
	double d = l->cfg->agent.reconnect_min * 1000.0;
	double cap = l->cfg->agent.reconnect_max * 1000.0;
	for (unsigned i = 0; i < l->attempt / l->nservers && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	uint64_t half = (uint64_t)(d / 2);
	return half + (half ? random_u64() % (half + 1) : 0);
}

static void link_connect(struct link *l);
static void link_return_cb(evutil_socket_t fd, short what, void *arg);

/* Retry timer fired. */
static void link_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	link_connect(arg);
}

/* Whether the session now ending was up long enough to call stable:
 * LINK_STABLE_MS, or three heartbeats if longer. A session the server
 * replaces soon after WELCOME (another agent with the same name) is not. */
static int link_was_stable(const struct link *l)
{
	if (l->state != LINK_READY)
		return 0;
	uint64_t need = 3ull * l->heartbeat_ms;
	if (need < LINK_STABLE_MS)
		need = LINK_STABLE_MS;
	return util_mono_ms() - l->ready_ms >= need;
}

/* Lose the session and plan the next attempt: the delay starts over only
 * after a stable session, and grows after every other loss. */
static void link_lost(struct link *l, const char *why)
{
	if (l->state == LINK_STOPPING) {
		event_base_loopexit(l->base, NULL);
		return;
	}
	if (link_was_stable(l))
		l->attempt = 0;
	link_drop(l);
	l->state = LINK_IDLE;
	outbox_flush(l->ob);
	struct timeval sf = ms_tv((uint64_t)(l->cfg->agent.spool_flush * 1000.0));
	if (l->interval_ms)
		evtimer_add(l->spool_timer, &sf);
	uint64_t ms = backoff_ms(l);
	l->attempt++;
	char was[sizeof l->addr];
	snprintf(was, sizeof was, "%s", l->addr);
	if (l->learned && l->pos < l->nservers)
		l->learned_fails++;
	/* Fail over down the ranking, the first choice again after the last
	 * (also from a server the list does not name). */
	int next = l->nservers > 1 || l->pos >= l->nservers;
	log_warn("link", "%s: %s; %s in %.1f s (%zu batches queued)", was, why,
	         next ? "trying the next server" : "reconnecting", (double)ms / 1000.0,
	         outbox_batches(l->ob));
	if (l->learned && l->learned_fails >= l->nservers) {
		/* Every server a WELCOME named failed in a row: back to the
		 * configured ones, until a WELCOME teaches a list again. */
		log_warn("link",
		         "none of the %zu servers from WELCOME answers; back to agent.server",
		         l->nservers);
		if (link_set_servers(l, (const char *const *)l->cfg->agent.server,
		                     l->cfg->agent.nserver) == 0) {
			l->learned = 0;
			link_select(l, 0);
		}
	} else if (next) {
		link_select(l, l->pos + 1 >= l->nservers ? 0 : l->pos + 1);
	}
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
	l->return_timer = evtimer_new(l->base, link_return_cb, l);
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
	h->caps = PROTO_CAP_POLL | PROTO_CAP_PEERS;
	h->run_id = outbox_run_id(l->ob);
	h->auth_len = 0;
	h->auth = NULL;
	if (l->key) {
		auth_proof(l->key, nonce, l->name, h->run_id, proof);
		h->auth = proof;
		h->auth_len = AUTH_PROOF_SIZE;
	}
	link_send(l, &m);
	l->state = LINK_HELLO_SENT;
}

/* While the server is away, batches reach the spool this often. */
static void link_spool_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->state == LINK_READY)
		evtimer_del(l->spool_timer);
	else
		outbox_flush(l->ob);
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

/* (Re)arm the ACK timer while batches or alarms are in flight. */
static void link_arm_ack_timer(struct link *l)
{
	if (outbox_in_flight(l->ob) == 0) {
		evtimer_del(l->ack_timer);
		return;
	}
	uint64_t ms = 3ull * l->interval_ms;
	struct timeval tv = ms_tv(ms > LINK_ACK_TIMEOUT_MS ? ms : LINK_ACK_TIMEOUT_MS);
	evtimer_add(l->ack_timer, &tv);
}

/* Send what the outbox hands out: every alarm first, then batches in
 * order, at most catchup_rate a second, so a backlog drains steadily
 * behind which new batches wait their turn (rows stay in time order). */
static void link_pump(struct link *l)
{
	if (l->state != LINK_READY)
		return;
	size_t before = outbox_in_flight(l->ob);
	const uint8_t *frame;
	size_t len;
	while ((frame = outbox_next_alarm(l->ob, &len)))
		bufferevent_write(l->bev, frame, len);
	link_refill(l);
	while (l->tokens >= 1.0 && (frame = outbox_next_batch(l->ob, &len))) {
		bufferevent_write(l->bev, frame, len);
		l->tokens -= 1.0;
	}
	if (before == 0 && outbox_in_flight(l->ob) > 0)
		link_arm_ack_timer(l);
	if (outbox_ready(l->ob) > 0) {
		/* Held back by the rate, or by the outbox (then try again later). */
		double rate = l->cfg->agent.catchup_rate;
		uint64_t ms = l->tokens >= 1.0 ? LINK_RETRY_SEND_MS
		                               : (uint64_t)((1.0 - l->tokens) * 1000.0 / rate) + 1;
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
 * everything unacked again, oldest first. */
static void link_ack_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	size_t n = outbox_in_flight(l->ob);
	if (l->state != LINK_READY || n == 0)
		return;
	log_warn("link", "no ACK for %zu batches and alarms; sending them again", n);
	outbox_rewind(l->ob);
	link_pump(l);
}

/* Encode groups as the next batch, queue it and send it in turn. */
static int link_queue_batch(struct link *l, const struct proto_group *groups, size_t n)
{
	if (outbox_add_batch(l->ob, groups, n) < 0)
		return -1;
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
	if (outbox_add_alarm(l->ob, source, name, level, message, time_ms) < 0)
		return -1;
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
	const struct schema_metric *m = schema_find_metric(SCHEMA_AGENT_METRIC);
	const char *fields[3];
	for (size_t i = 0; i < 3; i++)
		fields[i] = m->fields[i].name;
	struct proto_group all[PROTO_MAX_METRICS + 1];
	if (n > PROTO_MAX_METRICS)
		n = PROTO_MAX_METRICS;
	memcpy(all, groups, n * sizeof *all);
	double values[3];
	values[SCHEMA_AGENT_DROPPED] = (double)outbox_dropped(l->ob);
	values[SCHEMA_AGENT_QUEUED] = (double)outbox_batches(l->ob);
	values[SCHEMA_AGENT_SPOOL] = (double)outbox_spool_bytes(l->ob);
	struct proto_row row = {groups[0].rows[0].time_ms, "", values};
	all[n] = (struct proto_group){SCHEMA_AGENT_METRIC, "", 3, fields, 1, &row};
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

/* WELCOME's peers, when it has them and they differ from the list in use,
 * become the servers this host ranks, kept in the spool folder too. */
static void link_take_peers(struct link *l, const struct proto_welcome *w)
{
	if (w->npeers == 0 || link_same_servers(l, w->peers, w->npeers))
		return;
	if (link_set_servers(l, w->peers, w->npeers) < 0)
		return;
	l->learned = 1;
	peers_save(l->dir, w->peers, w->npeers);
	log_info("link", "%s sent %zu servers; first choice for %s: %s (this is %s)", l->addr,
	         l->nservers, l->name, l->servers[l->order[0]],
	         l->pos == 0            ? "it"
	         : l->pos < l->nservers ? "a fallback"
	                                : "not listed");
}

/* On a server other than the first choice, plan a look at the first
 * choice after agent.return_delay, jittered by a quarter either way. */
static void link_arm_return(struct link *l)
{
	if (l->pos == 0 || l->state != LINK_READY)
		return;
	double d = l->cfg->agent.return_delay * 1000.0;
	uint64_t ms = (uint64_t)(d * 0.75) + random_u64() % ((uint64_t)(d * 0.5) + 1);
	struct timeval tv = ms_tv(ms);
	evtimer_add(l->return_timer, &tv);
}

/* The session to the fallback is closed (BYE sent, or it broke): connect
 * to the first choice now. What the fallback did not ack is sent again. */
static void link_moved(struct link *l)
{
	link_drop(l);
	l->state = LINK_IDLE;
	l->attempt = 0;
	link_select(l, 0);
	link_connect(l);
}

/* Leaving the fallback: BYE has been written. */
static void link_move_drained_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		link_moved(l);
}

/* Leaving the fallback: it closed or failed before BYE was out. */
static void link_move_event_cb(struct bufferevent *bev, short what, void *arg)
{
	link_moved(arg);
}

/* The probe of the first choice connected (move back to it) or failed
 * (stay, and look again after the delay). */
static void link_probe_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	bufferevent_free(l->probe);
	l->probe = NULL;
	if (l->state != LINK_READY)
		return;
	const char *first = l->servers[l->order[0]];
	if (!(what & BEV_EVENT_CONNECTED)) {
		log_debug("link", "first choice %s still away", first);
		link_arm_return(l);
		return;
	}
	log_info("link", "first choice %s answers; leaving %s for it (%zu batches queued)", first,
	         l->addr, outbox_batches(l->ob));
	struct proto_msg bye = {.type = PROTO_BYE, .u.bye.reason = "returning to first choice"};
	l->state = LINK_MOVING;
	bufferevent_setcb(l->bev, NULL, link_move_drained_cb, link_move_event_cb, l);
	if (link_send(l, &bye) < 0)
		link_moved(l);
}

/* The return delay is over: probe the first choice with a TCP connect. */
static void link_return_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	char host[256];
	int port;
	if (l->state != LINK_READY || l->pos == 0 || l->probe)
		return;
	if (util_split_hostport(l->servers[l->order[0]], host, sizeof host, &port) < 0)
		return;
	l->probe = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!l->probe) {
		log_warn("link", "cannot create a socket to probe %s", l->servers[l->order[0]]);
		link_arm_return(l);
		return;
	}
	bufferevent_setcb(l->probe, NULL, NULL, link_probe_cb, l);
	struct timeval tv = {5, 0};
	bufferevent_set_timeouts(l->probe, &tv, &tv);
	bufferevent_enable(l->probe, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect_hostname(l->probe, NULL, AF_UNSPEC, host, port) < 0) {
		bufferevent_free(l->probe);
		l->probe = NULL;
		link_arm_return(l);
	}
}

/* WELCOME: take the server's plan, resend what is unacked, start timers. */
static void handle_welcome(struct link *l, const struct proto_welcome *w)
{
	if (w->interval_ms == 0 || w->heartbeat_ms == 0) {
		link_lost(l, "server sent a zero interval");
		return;
	}
	collect_select(l->col, w->metrics, w->nmetrics);
	link_take_peers(l, w);
	int first = l->interval_ms == 0;
	int changed = l->interval_ms != w->interval_ms;
	l->interval_ms = w->interval_ms;
	l->heartbeat_ms = w->heartbeat_ms;
	l->state = LINK_READY;
	l->ready_ms = util_mono_ms();
	l->learned_fails = 0;
	log_info("link",
	         "connected to %s:%d as %s: every %.1f s, %u collectors, %zu batches to resend",
	         l->host, l->port, l->name, w->interval_ms / 1000.0, (unsigned)w->nmetrics,
	         outbox_batches(l->ob));
	outbox_rewind(l->ob);
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
	link_arm_return(l);
	link_pump(l);
}

/* ACK or ALARM_ACK moved the window: restart the ACK timer, send on. */
static void link_acked(struct link *l)
{
	link_arm_ack_timer(l);
	link_pump(l);
}

/* ACK: the outbox forgets what it covers (never what was not sent). */
static void handle_ack(struct link *l, uint64_t seq)
{
	if (outbox_ack(l->ob, seq))
		link_acked(l);
}

/* ALARM_ACK: the same for alarms. */
static void handle_alarm_ack(struct link *l, uint64_t seq)
{
	if (outbox_alarm_ack(l->ob, seq))
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
