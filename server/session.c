/* Agent sessions: frame decoding, dispatch, heartbeat timeouts, closing. */
#include "session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "authlimit.h"
#include "log.h"
#include "pimon_version.h"
#include "proto.h"
#include "util.h"
#include "worker.h"

struct session {
	TAILQ_ENTRY(session) link;
	struct session_set *set;
	uint64_t id;
	struct bufferevent *bev;
	char addr[64];
	struct host *host;               /* NULL until HELLO */
	int closing;                     /* draining output before the free */
	int throttled;                   /* reading paused: the peer does not read its output */
	int blocked;                     /* a batch failed to store: later ones wait for a resend */
	uint64_t max_seen;               /* highest METRICS seq received on this session */
	uint64_t ack_due;                /* stored, to be acked after the next sync (0: none) */
	uint64_t alarm_blocked;          /* an ALARM failed to record: later ones wait (0: none) */
	uint64_t acked;                  /* highest ACK sent: ACKs never go down */
	uint64_t alarm_acked;            /* highest ALARM_ACK sent */
	uint8_t nonce[PROTO_NONCE_SIZE]; /* this connection's CHALLENGE */
	struct event *penalty;           /* delays the answer to a failed proof */
	struct event *deadline;          /* a closing session is freed by then */
};

/* Frames handled per read callback before others on the worker get a turn. */
#define SESSION_FRAME_BUDGET 64

TAILQ_HEAD(session_list, session);

struct session_set {
	struct server *srv;
	struct worker *w;
	struct event_base *base;
	struct session_list sessions;
	const struct timeval *timeout; /* common timeout for heartbeats */
	const struct timeval *hello_timeout;
	struct proto_buf out; /* encode scratch */
	const char **metrics; /* WELCOME's collector list */
	uint8_t nmetrics;
	int sync_interval; /* ACKs wait for the sync timer */
	struct event *sync_timer;
	struct ruleset *rules; /* the alarm rules in force, as this worker last saw them */
	uint64_t rules_gen;
};

static atomic_uint_fast64_t next_session_id = 1;

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_sync_cb(evutil_socket_t fd, short what, void *arg);
static int session_send(struct session *s, const struct proto_msg *msg);

/* An empty session set for one worker. */
struct session_set *session_set_create(struct server *srv, struct worker *w,
                                       struct event_base *base)
{
	struct session_set *set = calloc(1, sizeof *set);
	if (!set)
		return NULL;
	set->srv = srv;
	set->w = w;
	set->base = base;
	TAILQ_INIT(&set->sessions);
	double t = srv->cfg->server.heartbeat_timeout;
	struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
	set->timeout = event_base_init_common_timeout(base, &tv);
	double ht = srv->cfg->server.hello_timeout;
	struct timeval htv = {(time_t)ht, (suseconds_t)((ht - (double)(time_t)ht) * 1e6)};
	set->hello_timeout = event_base_init_common_timeout(base, &htv);
	set->nmetrics = (uint8_t)srv->cfg->server.ncollect_metrics;
	set->metrics = (const char **)srv->cfg->server.collect_metrics;
	set->sync_interval = strcmp(srv->cfg->server.sync, "interval") == 0;
	if (set->sync_interval) {
		double si = srv->cfg->server.sync_interval;
		struct timeval sv = {(time_t)si, (suseconds_t)((si - (double)(time_t)si) * 1e6)};
		set->sync_timer = event_new(base, -1, EV_PERSIST, session_sync_cb, set);
		if (!set->sync_timer || event_add(set->sync_timer, &sv) < 0) {
			free(set);
			return NULL;
		}
	}
	return set;
}

/* Send an ACK for seq and count it; never one below an ACK already sent. */
static void session_ack(struct session *s, uint64_t seq)
{
	if (seq < s->acked)
		seq = s->acked;
	s->acked = seq;
	struct proto_msg ack = {.type = PROTO_ACK, .u.ack.seq = seq};
	if (session_send(s, &ack) == 0)
		worker_count(s->set->w, WC_acks_out, 1);
}

/* The sync timer: make every session's stored batches durable, then ack. */
static void session_sync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session_set *set = arg;
	struct session *s;
	TAILQ_FOREACH(s, &set->sessions, link)
	{
		if (!s->ack_due || s->closing)
			continue;
		if (registry_sync(set->srv->registry, s->host) < 0) {
			worker_count(set->w, WC_store_errors, 1);
			continue;
		}
		session_ack(s, s->ack_due);
		s->ack_due = 0;
	}
}

/* Free a session now. The owner's thread only. */
static void session_destroy(struct session *s)
{
	struct session_set *set = s->set;
	TAILQ_REMOVE(&set->sessions, s, link);
	if (s->penalty)
		event_free(s->penalty);
	if (s->deadline)
		event_free(s->deadline);
	bufferevent_free(s->bev);
	free(s);
	worker_count(set->w, WC_sessions_closed, 1);
	worker_session_ended(set->w);
}

/* Destroy every session at once, then the set. */
void session_set_destroy(struct session_set *set)
{
	struct session *s;
	while ((s = TAILQ_FIRST(&set->sessions))) {
		if (s->host && !s->closing)
			registry_down(set->srv->registry, s->host, s->id, "shutdown");
		session_destroy(s);
	}
	if (set->sync_timer)
		event_free(set->sync_timer);
	ruleset_unref(set->rules);
	proto_buf_free(&set->out);
	free(set);
}

/* Encode msg and queue it on the session's output. */
static int session_send(struct session *s, const struct proto_msg *msg)
{
	const char *err;
	proto_buf_reset(&s->set->out);
	if (proto_encode(msg, &s->set->out, &err) < 0) {
		log_err("session", "%s: cannot encode %s: %s", s->addr, proto_type_name(msg->type),
		        err);
		return -1;
	}
	return bufferevent_write(s->bev, s->set->out.data, s->set->out.len);
}

/* Output drained while closing: free the session. */
static void session_drained_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		session_destroy(s);
}

/* Any event while closing ends the session. */
static void session_closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
	session_destroy(arg);
}

/* A closing session's output did not drain in time. */
static void session_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	session_destroy(arg);
}

/* A closing session with nothing left to send. */
static void session_deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
	session_destroy(arg);
}

/* End the session: record why, then free once the output has drained. */
static void session_close(struct session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->host)
		registry_down(s->set->srv->registry, s->host, s->id, reason);
	struct timeval tv = {2, 0};
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_setcb(s->bev, NULL, session_drained_cb, session_closing_event_cb, s);
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	/* Output that cannot drain (a TLS handshake never done, a peer that
	 * does not read) must not keep the session: free it by a deadline. */
	s->deadline = evtimer_new(s->set->base, session_deadline_cb, s);
	if (s->deadline)
		evtimer_add(s->deadline, &tv);
	/* Never free inside the caller's callback: with nothing left to send,
	 * free on the next loop turn. */
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    event_base_once(s->set->base, -1, EV_TIMEOUT, session_deferred_free_cb, s, NULL) < 0)
		log_err("session", "%s: cannot schedule the session's free", s->addr);
}

/* Send BYE with reason, then close. */
static void session_refuse(struct session *s, const char *reason)
{
	struct proto_msg bye = {.type = PROTO_BYE, .u.bye.reason = reason};
	session_send(s, &bye);
	session_close(s, reason);
}

/* A protocol violation: log it, count it, tell the peer why, close. */
static void session_fail(struct session *s, const char *why)
{
	char reason[PROTO_TEXT_MAX + 1];
	log_warn("session", "%s%s%s: bad frame: %s; closing session", s->addr,
	         s->host ? " host " : "", s->host ? host_name(s->host) : "", why);
	worker_count(s->set->w, WC_bad_frames, 1);
	/* Decoders' reasons are ASCII; cleaned anyway, BYE carries only text. */
	proto_text_clean(reason, sizeof reason - 1, why, strlen(why));
	struct proto_msg bye = {.type = PROTO_BYE, .u.bye.reason = reason};
	session_send(s, &bye);
	session_close(s, "bad frame");
}

/* Take over an accepted socket on this worker. */
void session_open(struct session_set *set, evutil_socket_t fd, const char *addr)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		goto fail;
	if (set->srv->tls_ctx) {
		SSL *ssl = SSL_new(set->srv->tls_ctx);
		if (ssl)
			s->bev = bufferevent_openssl_socket_new(
			    set->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (ssl && !s->bev)
			SSL_free(ssl);
	} else {
		s->bev = bufferevent_socket_new(set->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!s->bev)
		goto fail;
	s->set = set;
	s->id = atomic_fetch_add(&next_session_id, 1);
	snprintf(s->addr, sizeof s->addr, "%s", addr);
	TAILQ_INSERT_TAIL(&set->sessions, s, link);
	size_t high = PROTO_HEADER_SIZE + (size_t)set->srv->cfg->server.max_frame;
	bufferevent_setwatermark(s->bev, EV_READ, 0, high);
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_set_timeouts(s->bev, set->hello_timeout, set->timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	worker_count(set->w, WC_sessions_opened, 1);
	log_debug("session", "%s: session %llu on worker %d", addr, (unsigned long long)s->id,
	          worker_id(set->w));
	struct proto_msg challenge = {.type = PROTO_CHALLENGE};
	if (auth_nonce(s->nonce) < 0) {
		log_err("session", "%s: no random nonce available; closing", addr);
		session_close(s, "error");
		return;
	}
	memcpy(challenge.u.challenge.nonce, s->nonce, PROTO_NONCE_SIZE);
	session_send(s, &challenge);
	return;
fail:
	log_err("session", "%s: cannot set up a session: out of memory", addr);
	free(s);
	evutil_closesocket(fd);
	worker_session_ended(set->w);
}

/* Does HELLO prove the secret (the host's own if it has one, else the
 * shared one)? Without any secret configured everyone is welcome. */
static int session_authentic(struct session *s, const struct proto_hello *h)
{
	const struct server *srv = s->set->srv;
	if (!srv->auth_key && !srv->auth_hosts_dir)
		return 1;
	struct auth_key own;
	const struct auth_key *key = srv->auth_key;
	if (srv->auth_hosts_dir) {
		char path[4200], err[512];
		snprintf(path, sizeof path, "%s/%s", srv->auth_hosts_dir, h->name);
		if (access(path, F_OK) == 0) {
			if (auth_key_load(path, &own, err, sizeof err) < 0) {
				log_err("session", "%s", err);
				return 0;
			}
			key = &own;
		}
	}
	int ok = key && auth_check(key, s->nonce, h->name, h->run_id, h->auth, h->auth_len);
	if (key == &own)
		memset(&own, 0, sizeof own);
	if (ok)
		authlimit_ok(s->addr);
	return ok;
}

/* The penalty is served: refuse the session. */
static void session_penalty_cb(evutil_socket_t fd, short what, void *arg)
{
	session_refuse(arg, "authentication failed");
}

/* A failed proof: log it, count it, and answer only after a delay that
 * grows with the address's recent failures. */
static void session_penalize(struct session *s, const char *name)
{
	unsigned ms = authlimit_fail(s->addr);
	log_warn("session", "%s: authentication failed for host '%s'; closing in %u ms", s->addr,
	         name, ms);
	worker_count(s->set->w, WC_auth_failures, 1);
	bufferevent_disable(s->bev, EV_READ);
	s->penalty = evtimer_new(s->set->base, session_penalty_cb, s);
	struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
	if (!s->penalty || evtimer_add(s->penalty, &tv) < 0)
		session_refuse(s, "authentication failed");
}

/* HELLO: check the name and the proof, register the host, answer WELCOME. */
static void handle_hello(struct session *s, const struct proto_hello *h)
{
	struct session_set *set = s->set;
	if (s->host) {
		session_fail(s, "second HELLO");
		return;
	}
	if (!session_authentic(s, h)) {
		session_penalize(s, h->name);
		return;
	}
	struct session_ref self = {worker_id(set->w), s->id}, old;
	char refused[PROTO_TEXT_MAX + 1];
	s->host =
	    registry_attach(set->srv->registry, h, s->addr, self, &old, refused, sizeof refused);
	if (!s->host) {
		if (refused[0])
			worker_count(set->w, WC_name_conflicts, 1);
		session_refuse(s, refused[0] ? refused : "server cannot store data for this host");
		return;
	}
	if (old.id != 0)
		worker_post_close(set->srv->workers[old.worker], old.id, "replaced");
	bufferevent_set_timeouts(s->bev, set->timeout, set->timeout);
	log_info("session", "%s host %s: hello, agent %s, worker %d", s->addr, h->name, h->version,
	         worker_id(set->w));
	const struct pimon_config *cfg = set->srv->cfg;
	struct proto_msg welcome = {
	    .type = PROTO_WELCOME,
	    .u.welcome =
	        {
	            .interval_ms = (uint32_t)(cfg->server.collect_interval * 1000.0),
	            .heartbeat_ms = (uint32_t)(cfg->server.heartbeat_interval * 1000.0),
	            .nmetrics = set->nmetrics,
	            .metrics = set->metrics,
	        },
	};
	/* Only an agent that reads the peers gets them (PROTOCOL.md, WELCOME). */
	if (h->caps & PROTO_CAP_PEERS) {
		welcome.u.welcome.npeers = (uint8_t)cfg->server.npeers;
		welcome.u.welcome.peers = (const char *const *)cfg->server.peers;
	}
	session_send(s, &welcome);
}

/* METRICS: store the batch, ack it once stored (and, under the interval
 * policy, synced). After a batch fails to store, later ones are neither
 * stored nor acked until the agent goes back and resends from an older
 * seq, so the cumulative ACK never skips a batch that is not on disk. */
static void handle_metrics(struct session *s, const struct proto_metrics *m)
{
	struct worker *w = s->set->w;
	worker_count(w, WC_batches_in, 1);
	int resend = m->seq <= s->max_seen;
	if (m->seq > s->max_seen)
		s->max_seen = m->seq;
	if (s->blocked && !resend)
		return;
	s->blocked = 0;
	struct ruleset *rules = NULL;
	if (s->set->srv->rules)
		rules = rules_holder_get(s->set->srv->rules, &s->set->rules, &s->set->rules_gen);
	uint64_t stored = 0, retimed = 0;
	int rc = registry_store(s->set->srv->registry, s->host, s->id, m, rules, &stored, &retimed);
	worker_count(w, WC_rows_retimed, retimed);
	if (rc < 0) {
		worker_count(w, WC_store_errors, 1);
		s->blocked = 1;
		return;
	}
	uint64_t rows = 0;
	for (uint32_t i = 0; i < m->ngroups; i++)
		rows += m->groups[i].nrows;
	worker_count(w, WC_rows_stored, rows);
	/* The ACK names the run's highest batch stored, a resend's too. */
	if (s->set->sync_interval) {
		if (stored > s->ack_due)
			s->ack_due = stored;
		return;
	}
	session_ack(s, stored);
}

/* ALARM: record it and ack it. After one fails to record, later ones are
 * neither recorded nor acked until the agent sends it again, so the
 * cumulative ALARM_ACK never skips one that is not on disk. */
static void handle_alarm(struct session *s, const struct proto_alarm *a)
{
	struct worker *w = s->set->w;
	worker_count(w, WC_alarms_in, 1);
	if (s->alarm_blocked && a->seq > s->alarm_blocked)
		return;
	s->alarm_blocked = 0;
	if (registry_alarm(s->set->srv->registry, s->host, s->id, a) < 0) {
		worker_count(w, WC_store_errors, 1);
		s->alarm_blocked = a->seq;
		return;
	}
	if (a->seq > s->alarm_acked)
		s->alarm_acked = a->seq;
	struct proto_msg ack = {.type = PROTO_ALARM_ACK, .u.ack.seq = s->alarm_acked};
	session_send(s, &ack);
}

/* HEARTBEAT: answer with ours so the agent knows we are alive. */
static void handle_heartbeat(struct session *s)
{
	struct proto_msg hb = {.type = PROTO_HEARTBEAT, .u.heartbeat.time_ms = util_now_ms()};
	session_send(s, &hb);
}

/* Act on one decoded frame. */
static void session_dispatch(struct session *s, const struct proto_msg *msg)
{
	if (!s->host && msg->type != PROTO_HELLO) {
		session_fail(s, "expected HELLO first");
		return;
	}
	if (s->host)
		registry_seen(s->set->srv->registry, s->host, s->id);
	switch (msg->type) {
	case PROTO_HELLO:
		handle_hello(s, &msg->u.hello);
		break;
	case PROTO_HEARTBEAT:
		handle_heartbeat(s);
		break;
	case PROTO_METRICS:
		handle_metrics(s, &msg->u.metrics);
		break;
	case PROTO_ALARM:
		handle_alarm(s, &msg->u.alarm);
		break;
	case PROTO_BYE:
		log_info("session", "%s host %s: goodbye: %s", s->addr, host_name(s->host),
		         msg->u.bye.reason);
		session_close(s, "goodbye");
		break;
	default: {
		char why[64];
		snprintf(why, sizeof why, "unexpected %s from an agent",
		         proto_type_name(msg->type));
		session_fail(s, why);
		break;
	}
	}
}

/* Pause reading while the peer leaves our output unread. */
static void session_check_output(struct session *s)
{
	size_t out = evbuffer_get_length(bufferevent_get_output(s->bev));
	size_t high = (size_t)s->set->srv->cfg->server.max_output;
	if (!s->throttled && out > high) {
		s->throttled = 1;
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_setwatermark(s->bev, EV_WRITE, high / 2, 0);
		worker_count(s->set->w, WC_throttled, 1);
		log_debug("session", "%s: peer is not reading (%zu bytes queued); pausing", s->addr,
		          out);
	}
}

/* Output drained to half of server.limits.max_output: read again. */
static void session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->throttled) {
		s->throttled = 0;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_enable(bev, EV_READ);
	}
}

/* Decode and dispatch complete frames, at most SESSION_FRAME_BUDGET before
 * yielding to the other sessions of this worker. */
static void session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint32_t max = (uint32_t)s->set->srv->cfg->server.max_frame;
	for (int budget = SESSION_FRAME_BUDGET; !s->closing; budget--) {
		size_t avail = evbuffer_get_length(in);
		if (avail < PROTO_HEADER_SIZE)
			break;
		const char *err = NULL;
		struct proto_header hdr;
		const uint8_t *p = evbuffer_pullup(in, PROTO_HEADER_SIZE);
		if (proto_header_parse(p, PROTO_HEADER_SIZE, max, &hdr, &err) != PROTO_OK) {
			session_fail(s, err);
			return;
		}
		size_t total = PROTO_HEADER_SIZE + (size_t)hdr.length;
		if (avail < total)
			break;
		if (budget == 0 || s->throttled) {
			if (!s->throttled)
				bufferevent_trigger(bev, EV_READ,
				                    BEV_TRIG_IGNORE_WATERMARKS |
				                        BEV_TRIG_DEFER_CALLBACKS);
			break;
		}
		p = evbuffer_pullup(in, (ev_ssize_t)total);
		struct proto_msg msg;
		size_t used = 0;
		if (proto_decode(p, total, max, &msg, &used, &err) != PROTO_OK) {
			session_fail(s, err);
			return;
		}
		evbuffer_drain(in, used);
		worker_count(s->set->w, WC_frames_in, 1);
		worker_count(s->set->w, WC_bytes_in, used);
		session_dispatch(s, &msg);
		proto_msg_free(&msg);
		if (!s->closing)
			session_check_output(s);
	}
}

/* Timeout, end of stream or error on a live session. */
static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		log_warn("session", "%s%s%s: peer has not read for %.1f s; closing", s->addr,
		         s->host ? " host " : "", s->host ? host_name(s->host) : "",
		         s->set->srv->cfg->server.heartbeat_timeout);
		worker_count(s->set->w, WC_stalled, 1);
		session_close(s, "stalled");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!s->host) {
			log_warn("session", "%s: no HELLO in time; closing", s->addr);
			worker_count(s->set->w, WC_hello_timeouts, 1);
			session_close(s, "timeout");
			return;
		}
		worker_count(s->set->w, WC_timeouts, 1);
		registry_down(s->set->srv->registry, s->host, s->id, "timeout");
		if (!s->throttled)
			bufferevent_enable(bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		size_t left = evbuffer_get_length(bufferevent_get_input(bev));
		if (left)
			log_warn("session", "%s%s%s: closed with a truncated frame (%zu bytes)",
			         s->addr, s->host ? " host " : "",
			         s->host ? host_name(s->host) : "", left);
		session_close(s, "closed");
	} else if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		unsigned long tls = s->set->srv->tls_ctx ? bufferevent_get_openssl_error(bev) : 0;
		char why[256];
		if (tls)
			ERR_error_string_n(tls, why, sizeof why);
		else
			snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(err));
		log_info("session", "%s%s%s: %s", s->addr, s->host ? " host " : "",
		         s->host ? host_name(s->host) : "", why);
		session_close(s, tls ? "tls" : err == ECONNRESET ? "reset" : "error");
	}
}

/* Find a session by id; sessions are few per worker and lookups rare. */
static struct session *session_find(struct session_set *set, uint64_t id)
{
	struct session *s;
	TAILQ_FOREACH(s, &set->sessions, link)
	if (s->id == id)
		return s;
	return NULL;
}

/* Close session id if it is still here. */
void session_set_close(struct session_set *set, uint64_t id, const char *reason)
{
	struct session *s = session_find(set, id);
	if (s && !s->closing) {
		log_info("session", "%s host %s: closing: %s", s->addr,
		         s->host ? host_name(s->host) : "-", reason);
		session_refuse(s, reason);
	}
}

/* Ask the agent on session id for a sample now. */
void session_set_poll(struct session_set *set, uint64_t id)
{
	struct session *s = session_find(set, id);
	if (s && s->host && !s->closing) {
		struct proto_msg poll = {.type = PROTO_POLL, .u.poll.id = 0};
		session_send(s, &poll);
	}
}

/* Close all sessions with BYE; returns how many are still draining. */
unsigned session_set_close_all(struct session_set *set, const char *reason)
{
	struct session *s, *next;
	for (s = TAILQ_FIRST(&set->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->closing)
			session_refuse(s, reason);
	}
	unsigned left = 0;
	TAILQ_FOREACH(s, &set->sessions, link)
	left++;
	return left;
}
