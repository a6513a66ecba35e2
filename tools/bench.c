/* pimon-bench: simulate many agents speaking the real protocol to a
 * pimon-server (or to bench/floor.c), spread over forked processes with an
 * event base each, and print what the server sustained: sessions, frames
 * and samples sent and acked per second, ACK latency and errors; with
 * --freeze-after, how long the server took to see frozen hosts down. Given
 * several servers, each agent ranks them as pimon-agent does (rendezvous.h),
 * fails over down its ranking and, with --return-delay, goes back to its
 * first choice. SIGTERM ends the run early, with the figures so far. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "pimon_version.h"
#include "proto.h"
#include "rendezvous.h"
#include "util.h"

/* Batches in flight per agent at most (as the real agent's window). */
#define BENCH_RING 64
/* Processes at most, and agents per process at most. */
#define BENCH_MAX_PROCS 64
#define BENCH_PER_PROC  19000
/* Latency histogram: 64 sub-buckets per power of two (1.6 % resolution). */
#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  (48u * HIST_SUB)

/* A lost session is opened again (to the next server) after this many
 * milliseconds, and up to as many more at random. */
#define BENCH_FAILOVER_MS 250

struct opts {
	char host[64]; /* the first server given, for the report */
	int port;
	struct in_addr dst;
	/* Every server given, as written (the ranking hashes these). */
	char srv[RENDEZVOUS_MAX][64];
	struct sockaddr_in srv_sa[RENDEZVOUS_MAX];
	int nsrv;
	double return_delay; /* s; 0: stay on a fallback */
	int agents, procs;
	double heartbeat, interval, duration, ramp, freeze_after;
	int freeze_count;
	int window;
	int groups, rows, fields;
	char api_host[64];
	int api_port;
	const char *prefix;
	struct in_addr src;
	int per_src;
	const struct auth_key *key;
	int json;
	pid_t pid;
};

struct hist {
	uint64_t count, max_us;
	uint64_t b[HIST_BUCKETS];
};

/* Cumulative counters of one process; snapshots make the window's rates. */
struct tally {
	uint64_t established, connect_failed, refused, closed, bad_frames;
	uint64_t frames_out, frames_in, batches_out, batches_acked, hb_out, hb_in;
	uint64_t window_full;
	uint64_t cpu_us; /* this process's CPU time */
};

/* What a child sends its parent at the end. */
struct report {
	struct tally w0, w1;  /* at the window's start and end */
	uint64_t live;        /* sessions ready at the end */
	uint64_t unacked;     /* batches sent and not acked at the end */
	struct hist lat;      /* ACKs received in the window */
	struct hist lat_live; /* live sessions' ACKs from the freeze to the end */
};

enum agent_state { A_WAIT, A_CONNECTING, A_HELLO, A_READY, A_DEAD };

struct child;

struct agent {
	struct child *c;
	struct bufferevent *bev;
	struct event *hb, *batch;
	struct event *timer;       /* A_WAIT: reopen; A_READY: probe the first choice */
	struct bufferevent *probe; /* connecting to the first choice */
	uint32_t idx;              /* global index: name, source address, freeze set */
	uint8_t state;
	uint8_t pos; /* the server in use: its place in this agent's ranking */
	uint8_t frozen;
	uint64_t run_id, next_seq, acked;
	uint64_t sent_us[BENCH_RING];
};

struct child {
	const struct opts *o;
	struct event_base *base;
	struct agent *agents;
	size_t nagents, nopened;
	uint64_t t0_us; /* common start, monotonic */
	uint64_t wstart_us, wend_us, freeze_us;
	int in_window, frozen;
	struct event *ramp_timer, *wstart_timer, *freeze_timer, *end_timer;
	const struct timeval *hb_tv, *batch_tv;
	uint8_t *tmpl; /* an encoded METRICS frame, seq and times patched per send */
	size_t tmpl_len;
	size_t *row_off; /* offsets of each row's time in tmpl */
	size_t nrow_off;
	uint64_t samples; /* values per batch */
	struct proto_buf out;
	struct tally t;
	struct report rep;
};

/* Monotonic microseconds. */
static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Seconds as a timeval. */
static struct timeval sec_tv(double s)
{
	struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
	return tv;
}

/* Bucket of a latency in microseconds. */
static unsigned hist_index(uint64_t us)
{
	if (us < HIST_SUB)
		return (unsigned)us;
	unsigned msb = 63u - (unsigned)__builtin_clzll(us);
	unsigned shift = msb - HIST_SUB_BITS;
	unsigned i = (shift + 1) * HIST_SUB + (unsigned)((us >> shift) - HIST_SUB);
	return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* Middle of a bucket, in microseconds. */
static double hist_value(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned shift = i / HIST_SUB - 1;
	double lo = (double)((uint64_t)(HIST_SUB + i % HIST_SUB) << shift);
	return lo + (double)((uint64_t)1 << shift) / 2.0;
}

static void hist_add(struct hist *h, uint64_t us)
{
	h->b[hist_index(us)]++;
	h->count++;
	if (us > h->max_us)
		h->max_us = us;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	if (h->max_us > into->max_us)
		into->max_us = h->max_us;
}

/* The q-quantile in milliseconds; 0 when empty. */
static double hist_quantile_ms(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			double v = hist_value(i);
			return (v > (double)h->max_us ? (double)h->max_us : v) / 1000.0;
		}
	}
	return (double)h->max_us / 1000.0;
}

/* CPU time of this process in microseconds. */
static uint64_t self_cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* The value of field f in row r of group g: a third whole numbers (counters,
 * bytes), a third with two decimals (percentages, load), a third with no
 * short decimal form (rates), as a Pi's metrics are. */
static double sample_value(unsigned g, unsigned r, unsigned f)
{
	switch (f % 3) {
	case 0:
		return (double)(1000003ull * (r + 1) + 17ull * f + g);
	case 1:
		return (double)((r * 7 + f * 13 + g) % 10000) / 100.0;
	default:
		return (double)((r + 1) * (f + 1) + g) / 7.0 + 1.0 / 3.0;
	}
}

/* Encode the METRICS frame every batch copies, and note where its seq and
 * row times are so each send patches them. */
static void child_build_template(struct child *c)
{
	const struct opts *o = c->o;
	static char names[PROTO_MAX_FIELDS][16];
	static char metrics[PROTO_MAX_METRICS][16];
	const char *fields[PROTO_MAX_FIELDS];
	for (int f = 0; f < o->fields; f++) {
		snprintf(names[f], sizeof names[f], "f%d", f);
		fields[f] = names[f];
	}
	struct proto_group *groups = calloc((size_t)o->groups, sizeof *groups);
	struct proto_row *rows = calloc((size_t)o->groups * (size_t)o->rows, sizeof *rows);
	double *values =
	    calloc((size_t)o->groups * (size_t)o->rows * (size_t)o->fields, sizeof *values);
	c->nrow_off = (size_t)o->groups * (size_t)o->rows;
	c->row_off = calloc(c->nrow_off, sizeof *c->row_off);
	if (!groups || !rows || !values || !c->row_off) {
		fprintf(stderr, "pimon-bench: out of memory\n");
		exit(1);
	}
	size_t off = PROTO_HEADER_SIZE + 8 + 2, k = 0;
	for (int g = 0; g < o->groups; g++) {
		snprintf(metrics[g], sizeof metrics[g], "g%d", g);
		struct proto_row *gr = rows + (size_t)g * (size_t)o->rows;
		off += 1 + strlen(metrics[g]) + 1 + 1 + 4;
		for (int f = 0; f < o->fields; f++)
			off += 1 + strlen(fields[f]);
		for (int r = 0; r < o->rows; r++) {
			double *v =
			    values + ((size_t)g * (size_t)o->rows + (size_t)r) * (size_t)o->fields;
			for (int f = 0; f < o->fields; f++)
				v[f] = sample_value((unsigned)g, (unsigned)r, (unsigned)f);
			gr[r] = (struct proto_row){0, "", v};
			c->row_off[k++] = off;
			off += 8 + 1 + 8 * (size_t)o->fields;
		}
		groups[g] = (struct proto_group){metrics[g],        "", (uint8_t)o->fields, fields,
		                                 (uint32_t)o->rows, gr};
	}
	struct proto_msg m = {.type = PROTO_METRICS};
	m.u.metrics.seq = 1;
	m.u.metrics.ngroups = (uint32_t)o->groups;
	m.u.metrics.groups = groups;
	struct proto_buf b = {0};
	const char *err;
	if (proto_encode(&m, &b, &err) < 0) {
		fprintf(stderr, "pimon-bench: cannot encode a batch: %s\n", err);
		exit(2);
	}
	if (b.len != off) {
		fprintf(stderr, "pimon-bench: batch layout is %zu bytes, expected %zu\n", b.len,
		        off);
		exit(1);
	}
	c->tmpl = b.data;
	c->tmpl_len = b.len;
	c->samples = (uint64_t)o->groups * (uint64_t)o->rows * (uint64_t)o->fields;
	free(groups);
	free(rows);
	free(values);
}

/* Encode and queue one message on the agent's connection. */
static void agent_send(struct agent *a, const struct proto_msg *m)
{
	const char *err;
	proto_buf_reset(&a->c->out);
	if (proto_encode(m, &a->c->out, &err) < 0) {
		fprintf(stderr, "pimon-bench: cannot encode %s: %s\n", proto_type_name(m->type),
		        err);
		exit(1);
	}
	bufferevent_write(a->bev, a->c->out.data, a->c->out.len);
	a->c->t.frames_out++;
}

/* Send the next METRICS batch, unless BENCH_RING are unacked. */
static void agent_send_batch(struct agent *a)
{
	struct child *c = a->c;
	if (a->next_seq - 1 - a->acked >= BENCH_RING) {
		c->t.window_full++;
		return;
	}
	uint64_t seq = a->next_seq++;
	uint64_t t = util_now_ms();
	util_put_be64(c->tmpl + PROTO_HEADER_SIZE, seq);
	for (size_t i = 0; i < c->nrow_off; i++)
		util_put_be64(c->tmpl + c->row_off[i], t - (c->nrow_off - 1 - i));
	a->sent_us[seq % BENCH_RING] = now_us();
	bufferevent_write(a->bev, c->tmpl, c->tmpl_len);
	c->t.frames_out++;
	c->t.batches_out++;
}

/* Heartbeat timer. */
static void agent_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct proto_msg m = {.type = PROTO_HEARTBEAT, .u.heartbeat.time_ms = util_now_ms()};
	agent_send(a, &m);
	a->c->t.hb_out++;
}

/* Batch timer (paced mode). */
static void agent_batch_cb(evutil_socket_t fd, short what, void *arg)
{
	agent_send_batch(arg);
}

static void agent_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Drop the agent's connection and timers. */
static void agent_close(struct agent *a)
{
	if (a->timer)
		event_del(a->timer);
	if (a->probe) {
		bufferevent_free(a->probe);
		a->probe = NULL;
	}
	if (a->hb)
		event_del(a->hb);
	if (a->batch)
		event_del(a->batch);
	if (a->bev) {
		bufferevent_free(a->bev);
		a->bev = NULL;
	}
	a->state = A_DEAD;
}

static void agent_open(struct agent *a);

/* The server ranked pos for agent a (an index into o->srv). */
static size_t agent_server(const struct agent *a, size_t pos)
{
	const struct opts *o = a->c->o;
	char name[PROTO_NAME_MAX + 1];
	const char *addrs[RENDEZVOUS_MAX];
	size_t order[RENDEZVOUS_MAX];
	snprintf(name, sizeof name, "%s%u", o->prefix, (unsigned)a->idx);
	for (int i = 0; i < o->nsrv; i++)
		addrs[i] = o->srv[i];
	rendezvous_rank(name, addrs, (size_t)o->nsrv, order);
	return order[pos];
}

/* Arm the agent's timer ms milliseconds from now. */
static void agent_timer_in(struct agent *a, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	if (!a->timer)
		a->timer = evtimer_new(a->c->base, agent_timer_cb, a);
	if (a->timer)
		evtimer_add(a->timer, &tv);
}

/* The session is gone: with one server, for good; with several, open the
 * next of the ranking soon. */
static void agent_lost(struct agent *a)
{
	agent_close(a);
	if (a->c->o->nsrv < 2)
		return;
	a->pos = (uint8_t)((a->pos + 1) % a->c->o->nsrv);
	a->state = A_WAIT;
	agent_timer_in(a, BENCH_FAILOVER_MS + (uint64_t)random() % (BENCH_FAILOVER_MS + 1));
}

/* On a fallback, look at the first choice again in about --return-delay. */
static void agent_arm_return(struct agent *a)
{
	double d = a->c->o->return_delay * 1000.0;
	if (a->pos == 0 || d <= 0)
		return;
	agent_timer_in(a, (uint64_t)(d * 0.75) + (uint64_t)random() % ((uint64_t)(d * 0.5) + 1));
}

/* The probe of the first choice connected (move to it) or failed (stay). */
static void agent_probe_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent *a = arg;
	bufferevent_free(a->probe);
	a->probe = NULL;
	if (a->state != A_READY)
		return;
	if (!(what & BEV_EVENT_CONNECTED)) {
		agent_arm_return(a);
		return;
	}
	struct proto_msg bye = {.type = PROTO_BYE, .u.bye.reason = "returning to first choice"};
	agent_send(a, &bye);
	/* Out now, before the close drops it (a plain socket takes it at once). */
	evbuffer_write(bufferevent_get_output(a->bev), bufferevent_getfd(a->bev));
	agent_close(a);
	a->pos = 0;
	agent_open(a);
}

/* The agent's timer: reopen after a loss, or probe the first choice. */
static void agent_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	if (a->state == A_WAIT) {
		agent_open(a);
		return;
	}
	if (a->state != A_READY || a->pos == 0 || a->probe)
		return;
	const struct sockaddr_in *sa = &a->c->o->srv_sa[agent_server(a, 0)];
	a->probe = bufferevent_socket_new(a->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!a->probe) {
		agent_arm_return(a);
		return;
	}
	bufferevent_setcb(a->probe, NULL, NULL, agent_probe_cb, a);
	if (bufferevent_socket_connect(a->probe, (const struct sockaddr *)sa, sizeof *sa) < 0) {
		bufferevent_free(a->probe);
		a->probe = NULL;
		agent_arm_return(a);
	}
}

/* Stop sending on this session without closing it. */
static void agent_freeze(struct agent *a)
{
	a->frozen = 1;
	if (a->hb)
		event_del(a->hb);
	if (a->batch)
		event_del(a->batch);
}

/* The server's nonce: introduce ourselves, with the proof if we have a
 * secret. */
static void agent_hello(struct agent *a, const uint8_t *nonce)
{
	const struct opts *o = a->c->o;
	char name[PROTO_NAME_MAX + 1];
	snprintf(name, sizeof name, "%s%u", o->prefix, (unsigned)a->idx);
	uint8_t proof[AUTH_PROOF_SIZE];
	struct proto_msg m = {.type = PROTO_HELLO};
	struct proto_hello *h = &m.u.hello;
	h->name = name;
	h->version = "pimon-bench " PIMON_VERSION;
	h->os = "pimon-bench";
	h->kernel = "";
	h->model = "";
	h->boot_id = "bench";
	h->run_id = a->run_id;
	if (o->key) {
		auth_proof(o->key, nonce, name, a->run_id, proof);
		h->auth = proof;
		h->auth_len = AUTH_PROOF_SIZE;
	}
	agent_send(a, &m);
	a->state = A_HELLO;
}

/* WELCOME: the session is up; start the timers (the bench keeps its own
 * schedule, not the server's). */
static void agent_ready(struct agent *a)
{
	struct child *c = a->c;
	a->state = A_READY;
	c->t.established++;
	if (c->frozen && a->idx < (uint32_t)c->o->freeze_count) {
		a->frozen = 1;
		return;
	}
	agent_arm_return(a);
	if (c->hb_tv) {
		if (!a->hb)
			a->hb = event_new(c->base, -1, EV_PERSIST, agent_hb_cb, a);
		event_add(a->hb, c->hb_tv);
	}
	if (c->batch_tv) {
		if (!a->batch)
			a->batch = event_new(c->base, -1, EV_PERSIST, agent_batch_cb, a);
		event_add(a->batch, c->batch_tv);
	} else {
		for (int i = 0; i < c->o->window; i++)
			agent_send_batch(a);
	}
}

/* ACK: every batch up to seq is stored; note each one's latency. */
static void agent_ack(struct agent *a, uint64_t seq)
{
	struct child *c = a->c;
	if (seq >= a->next_seq)
		seq = a->next_seq - 1;
	if (seq <= a->acked)
		return;
	uint64_t t = now_us();
	for (uint64_t s = a->acked + 1; s <= seq; s++) {
		uint64_t lat = t - a->sent_us[s % BENCH_RING];
		if (c->in_window)
			hist_add(&c->rep.lat, lat);
		if (c->frozen && c->in_window && !a->frozen)
			hist_add(&c->rep.lat_live, lat);
		c->t.batches_acked++;
	}
	a->acked = seq;
	if (!c->batch_tv && !a->frozen)
		while (a->next_seq - 1 - a->acked < (uint64_t)c->o->window)
			agent_send_batch(a);
}

/* Act on one frame from the server. */
static void agent_dispatch(struct agent *a, const struct proto_msg *m)
{
	struct child *c = a->c;
	switch (m->type) {
	case PROTO_CHALLENGE:
		if (a->state == A_CONNECTING)
			agent_hello(a, m->u.challenge.nonce);
		break;
	case PROTO_WELCOME:
		if (a->state == A_HELLO)
			agent_ready(a);
		break;
	case PROTO_ACK:
		agent_ack(a, m->u.ack.seq);
		break;
	case PROTO_HEARTBEAT:
		c->t.hb_in++;
		break;
	case PROTO_BYE:
		if (c->t.refused++ == 0)
			fprintf(stderr, "pimon-bench: agent %u: server said goodbye: %s\n",
			        (unsigned)a->idx, m->u.bye.reason);
		agent_lost(a);
		break;
	default:
		break;
	}
}

/* Decode every complete frame. */
static void agent_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent *a = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *err = NULL;
	/* A frame may end the session (BYE): stop once this one is gone. */
	while (a->bev == bev) {
		size_t avail = evbuffer_get_length(in);
		if (avail < PROTO_HEADER_SIZE)
			return;
		struct proto_header hdr;
		const uint8_t *p = evbuffer_pullup(in, PROTO_HEADER_SIZE);
		if (proto_header_parse(p, PROTO_HEADER_SIZE, PROTO_MAX_PAYLOAD, &hdr, &err) !=
		    PROTO_OK)
			goto bad;
		size_t total = PROTO_HEADER_SIZE + (size_t)hdr.length;
		if (avail < total)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)total);
		struct proto_msg m;
		size_t used;
		if (proto_decode(p, total, PROTO_MAX_PAYLOAD, &m, &used, &err) != PROTO_OK)
			goto bad;
		evbuffer_drain(in, used);
		a->c->t.frames_in++;
		agent_dispatch(a, &m);
		proto_msg_free(&m);
	}
	return;
bad:
	if (a->c->t.bad_frames++ == 0)
		fprintf(stderr, "pimon-bench: agent %u: bad frame: %s\n", (unsigned)a->idx, err);
	agent_lost(a);
}

/* Connected, or the connection failed or ended. */
static void agent_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent *a = arg;
	struct child *c = a->c;
	if (what & BEV_EVENT_CONNECTED)
		return;
	int err = EVUTIL_SOCKET_ERROR();
	if (a->state == A_READY) {
		if (c->t.closed++ == 0)
			fprintf(stderr, "pimon-bench: agent %u: session ended: %s\n",
			        (unsigned)a->idx,
			        (what & BEV_EVENT_EOF) ? "closed by the server" : strerror(err));
	} else if (c->t.connect_failed++ == 0) {
		fprintf(stderr, "pimon-bench: agent %u: cannot connect: %s\n", (unsigned)a->idx,
		        (what & BEV_EVENT_EOF) ? "closed by the server" : strerror(err));
	}
	agent_lost(a);
}

/* Open the agent's connection from its own loopback source address. */
static void agent_open(struct agent *a)
{
	struct child *c = a->c;
	const struct opts *o = c->o;
	a->state = A_CONNECTING;
	a->next_seq = 1; /* a new run on every connection */
	a->acked = 0;
	if (getrandom(&a->run_id, sizeof a->run_id, 0) != (ssize_t)sizeof a->run_id)
		a->run_id = now_us() ^ ((uint64_t)getpid() << 32) ^ a->idx;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	struct sockaddr_in src = {.sin_family = AF_INET};
	src.sin_addr.s_addr = htonl(ntohl(o->src.s_addr) + a->idx / (uint32_t)o->per_src);
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
		close(fd);
		goto fail;
	}
	a->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!a->bev) {
		close(fd);
		goto fail;
	}
	bufferevent_setcb(a->bev, agent_read_cb, NULL, agent_event_cb, a);
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	const struct sockaddr_in *dst = &o->srv_sa[agent_server(a, a->pos)];
	if (bufferevent_socket_connect(a->bev, (const struct sockaddr *)dst, sizeof *dst) < 0) {
		bufferevent_free(a->bev);
		a->bev = NULL;
		goto fail;
	}
	return;
fail:
	if (c->t.connect_failed++ == 0)
		fprintf(stderr, "pimon-bench: agent %u: cannot open a socket: %s\n",
		        (unsigned)a->idx, strerror(errno));
	agent_lost(a);
}

/* Every few milliseconds, open the agents whose turn has come: agent i at
 * ramp * i / N seconds. */
static void child_ramp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	uint64_t t = now_us() - c->t0_us;
	double ramp_us = c->o->ramp * 1e6;
	while (c->nopened < c->nagents) {
		struct agent *a = &c->agents[c->nopened];
		double due = ramp_us * a->idx / c->o->agents;
		if ((double)t < due)
			return;
		agent_open(a);
		c->nopened++;
	}
	event_del(c->ramp_timer);
}

/* Snapshot the counters, with this process's CPU time. */
static void child_snapshot(struct child *c, struct tally *into)
{
	c->t.cpu_us = self_cpu_us();
	*into = c->t;
}

static void child_wstart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	c->in_window = 1;
	child_snapshot(c, &c->rep.w0);
}

/* Freeze the agents of the frozen set: they keep their connections and
 * send nothing more. */
static void child_freeze_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	c->frozen = 1;
	for (size_t i = 0; i < c->nagents; i++)
		if (c->agents[i].idx < (uint32_t)c->o->freeze_count)
			agent_freeze(&c->agents[i]);
}

static void child_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	child_snapshot(c, &c->rep.w1);
	c->in_window = 0;
	for (size_t i = 0; i < c->nagents; i++) {
		struct agent *a = &c->agents[i];
		if (a->state == A_READY) {
			c->rep.live++;
			c->rep.unacked += a->next_seq - 1 - a->acked;
		}
	}
	event_base_loopexit(c->base, NULL);
}

/* Raise the soft descriptor limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Write all of buf to fd. */
static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes from fd; -1 on end or error. */
static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The parent's children, and whether SIGTERM asked to stop early. */
static pid_t child_pids[BENCH_MAX_PROCS];
static int nchildren;
static volatile sig_atomic_t stopping;

/* SIGTERM in the parent: pass it on to the children, stop waiting. */
static void on_term(int sig)
{
	stopping = 1;
	for (int k = 0; k < nchildren; k++)
		kill(child_pids[k], SIGTERM);
}

/* Sleep until the monotonic time t (microseconds), or SIGTERM. */
static void sleep_until(uint64_t t)
{
	uint64_t n = now_us();
	if (t > n) {
		struct timespec ts = {(time_t)((t - n) / 1000000u),
		                      (long)((t - n) % 1000000u) * 1000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping)
			;
	}
}

/* One process: agents k, k+P, k+2P, ... on an event base of its own; the
 * report goes to fd. */
static int child_main(const struct opts *o, int k, uint64_t t0_us, int fd)
{
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	static struct child c;
	srandom((unsigned)getpid());
	c.o = o;
	c.t0_us = t0_us;
	c.base = event_base_new();
	if (!c.base) {
		fprintf(stderr, "pimon-bench: cannot create an event base\n");
		return 1;
	}
	child_build_template(&c);
	sleep_until(t0_us);
	c.nagents = (size_t)((o->agents - k + o->procs - 1) / o->procs);
	c.agents = calloc(c.nagents ? c.nagents : 1, sizeof *c.agents);
	if (!c.agents) {
		fprintf(stderr, "pimon-bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < c.nagents; i++) {
		c.agents[i].c = &c;
		c.agents[i].idx = (uint32_t)(k + (int)i * o->procs);
	}
	/* Thousands of equal timers: common timeouts, not a heap entry each. */
	struct timeval tv;
	if (o->heartbeat > 0) {
		tv = sec_tv(o->heartbeat);
		c.hb_tv = event_base_init_common_timeout(c.base, &tv);
	}
	if (o->interval > 0) {
		tv = sec_tv(o->interval);
		c.batch_tv = event_base_init_common_timeout(c.base, &tv);
	}
	uint64_t now = now_us();
	double since = (double)(now - t0_us) / 1e6;
	c.ramp_timer = event_new(c.base, -1, EV_PERSIST, child_ramp_cb, &c);
	c.wstart_timer = evtimer_new(c.base, child_wstart_cb, &c);
	c.end_timer = evtimer_new(c.base, child_end_cb, &c);
	tv = sec_tv(0.002);
	event_add(c.ramp_timer, &tv);
	tv = sec_tv(fmax(0, o->ramp - since));
	evtimer_add(c.wstart_timer, &tv);
	tv = sec_tv(fmax(0, o->ramp + o->duration - since));
	evtimer_add(c.end_timer, &tv);
	if (o->freeze_after >= 0) {
		c.freeze_timer = evtimer_new(c.base, child_freeze_cb, &c);
		tv = sec_tv(fmax(0, o->ramp + o->freeze_after - since));
		evtimer_add(c.freeze_timer, &tv);
	}
	/* The parent forwards SIGTERM: end the run now, with a report. */
	struct event *term = evsignal_new(c.base, SIGTERM, child_end_cb, &c);
	if (!term || evsignal_add(term, NULL) < 0) {
		fprintf(stderr, "pimon-bench: cannot handle SIGTERM\n");
		return 1;
	}
	event_base_dispatch(c.base);
	int rc = write_all(fd, &c.rep, sizeof c.rep) < 0 ? 1 : 0;
	close(fd);
	/* The sessions close as the process exits. */
	return rc;
}

/* Total CPU seconds of every thread of pid, from schedstat (nanoseconds);
 * -1 if it is gone. */
static double proc_cpu_s(pid_t pid)
{
	char path[300];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	double total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
		FILE *f = fopen(path, "r");
		unsigned long long ns;
		if (f && fscanf(f, "%llu", &ns) == 1)
			total += (double)ns / 1e9;
		if (f)
			fclose(f);
	}
	closedir(d);
	return total;
}

/* RSS and USS (private pages) of pid in kB; -1 if it is gone. */
static int proc_mem_kb(pid_t pid, long *rss, long *uss)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	*rss = *uss = 0;
	long v;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "Rss: %ld", &v) == 1)
			*rss = v;
		else if (sscanf(line, "Private_Clean: %ld", &v) == 1 ||
		         sscanf(line, "Private_Dirty: %ld", &v) == 1)
			*uss += v;
	}
	fclose(f);
	return 0;
}

/* GET path from the HTTP API and parse the JSON body; NULL on failure. */
static json_t *api_get(const struct opts *o, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->api_port)};
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, o->api_host);
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	json_t *j = NULL;
	if (!buf || inet_pton(AF_INET, o->api_host, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || write_all(fd, req, (size_t)n) < 0)
		goto out;
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto out;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	if (body && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0)
		j = json_loads(body + 4, 0, NULL);
out:
	free(buf);
	close(fd);
	return j;
}

/* Hosts the server counts down, from /api/v1/stats; -1 on failure. */
static long api_hosts_down(const struct opts *o)
{
	json_t *j = api_get(o, "/api/v1/stats");
	long down = -1;
	json_t *h = j ? json_object_get(j, "hosts") : NULL;
	if (h && json_is_integer(json_object_get(h, "down")))
		down = (long)json_integer_value(json_object_get(h, "down"));
	json_decref(j);
	return down;
}

/* What the parent learns about detection. */
struct detect {
	int polled;
	uint64_t freeze_ms;     /* wall clock of the freeze */
	long seen_down;         /* frozen hosts down by timeout */
	double first_s, last_s; /* from the freeze to the first and last "down" */
};

/* Read each frozen host's state and the time it went down from
 * /api/v1/hosts. */
static void detect_collect(const struct opts *o, struct detect *d)
{
	json_t *hosts = api_get(o, "/api/v1/hosts");
	size_t plen = strlen(o->prefix), i;
	json_t *h;
	d->seen_down = 0;
	d->first_s = d->last_s = -1;
	json_array_foreach(hosts, i, h)
	{
		const char *name = json_string_value(json_object_get(h, "name"));
		const char *state = json_string_value(json_object_get(h, "state"));
		const char *reason = json_string_value(json_object_get(h, "reason"));
		if (!name || !state || !reason || strncmp(name, o->prefix, plen) != 0)
			continue;
		char *end;
		long idx = strtol(name + plen, &end, 10);
		if (*end || idx < 0 || idx >= o->freeze_count)
			continue;
		if (strcmp(state, "down") != 0 || strcmp(reason, "timeout") != 0)
			continue;
		double s = ((double)json_integer_value(json_object_get(h, "since")) -
		            (double)d->freeze_ms) /
		           1000.0;
		if (d->seen_down == 0 || s < d->first_s)
			d->first_s = s;
		if (d->seen_down == 0 || s > d->last_s)
			d->last_s = s;
		d->seen_down++;
	}
	json_decref(hosts);
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: pimon-bench [options]\n"
	    "  -s, --server ADDR       server to load, IPv4 host:port (default 127.0.0.1:8080);\n"
	    "                          repeated (up to 16), each agent ranks them by\n"
	    "                          rendezvous hashing of its name, as pimon-agent does,\n"
	    "                          and fails over down its ranking when a session ends\n"
	    "      --return-delay S    on a fallback, probe the first choice after about S\n"
	    "                          seconds and move back once it answers (default 0: stay)\n"
	    "  -n, --agents N          simulated agents (default 100)\n"
	    "  -P, --procs P           processes sharing them (default: %d agents each)\n"
	    "      --heartbeat S       seconds between HEARTBEATs, 0 for none (default 1)\n"
	    "      --interval S        seconds between METRICS batches; 0 sends as fast as\n"
	    "                          they are acked, --window at a time (default 5)\n"
	    "      --window W          batches in flight with --interval 0 (default 4)\n"
	    "      --groups G          metrics per batch (default 1)\n"
	    "      --rows R            rows per metric (default 1)\n"
	    "      --fields F          values per row (default 10)\n"
	    "      --ramp S            seconds over which sessions are opened (default 5)\n"
	    "      --duration S        seconds measured after the ramp (default 10)\n"
	    "      --freeze-after S    S seconds into the measurement, stop sending on the\n"
	    "                          frozen sessions without closing them\n"
	    "      --freeze-count K    freeze agents 0..K-1 only (default: all)\n"
	    "      --api ADDR          the server's HTTP API, to time host-down detection\n"
	    "      --secret FILE       prove this secret in HELLO\n"
	    "      --prefix NAME       host names are NAME0, NAME1, ... (default bench-)\n"
	    "      --source ADDR       first loopback source address (default 127.1.0.1)\n"
	    "      --per-source N      sessions per source address (default 1000)\n"
	    "      --pid PID           report this process's CPU and memory (the server)\n"
	    "      --json              print the figures as JSON\n"
	    "  -h, --help              show this help\n",
	    BENCH_PER_PROC);
}

/* Parse a number within [lo, hi] or exit with a message. */
static double opt_num(const char *name, const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || !(v >= lo && v <= hi)) {
		fprintf(stderr, "pimon-bench: --%s: %s is not in %g..%g\n", name, s, lo, hi);
		exit(2);
	}
	return v;
}

static void opt_addr(const char *name, const char *s, char *host, size_t size, int *port,
                     struct in_addr *in);

/* Add a server (-s, repeatable; the first replaces the default). */
static void opt_server(struct opts *o, const char *s)
{
	char host[64];
	int port;
	struct in_addr in;
	if (o->nsrv == RENDEZVOUS_MAX) {
		fprintf(stderr, "pimon-bench: --server: at most %d\n", RENDEZVOUS_MAX);
		exit(2);
	}
	opt_addr("server", s, host, sizeof host, &port, &in);
	if (strlen(s) >= sizeof o->srv[0]) {
		fprintf(stderr, "pimon-bench: --server: %s is too long\n", s);
		exit(2);
	}
	if (o->nsrv == 0) {
		snprintf(o->host, sizeof o->host, "%s", host);
		o->port = port;
		o->dst = in;
	}
	snprintf(o->srv[o->nsrv], sizeof o->srv[0], "%s", s);
	o->srv_sa[o->nsrv] = (struct sockaddr_in){
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = in};
	o->nsrv++;
}

/* Split an IPv4 host:port. */
static void opt_addr(const char *name, const char *s, char *host, size_t size, int *port,
                     struct in_addr *in)
{
	if (util_split_hostport(s, host, size, port) < 0 || inet_pton(AF_INET, host, in) != 1) {
		fprintf(stderr, "pimon-bench: --%s: %s is not an IPv4 address:port\n", name, s);
		exit(2);
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		O_HB = 256,
		O_INTERVAL,
		O_WINDOW,
		O_GROUPS,
		O_ROWS,
		O_FIELDS,
		O_RAMP,
		O_DURATION,
		O_FREEZE,
		O_FREEZE_COUNT,
		O_API,
		O_SECRET,
		O_PREFIX,
		O_SOURCE,
		O_PER_SOURCE,
		O_PID,
		O_JSON,
		O_RETURN,
	};
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"agents", required_argument, NULL, 'n'},
	    {"procs", required_argument, NULL, 'P'},
	    {"heartbeat", required_argument, NULL, O_HB},
	    {"interval", required_argument, NULL, O_INTERVAL},
	    {"window", required_argument, NULL, O_WINDOW},
	    {"groups", required_argument, NULL, O_GROUPS},
	    {"rows", required_argument, NULL, O_ROWS},
	    {"fields", required_argument, NULL, O_FIELDS},
	    {"ramp", required_argument, NULL, O_RAMP},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"freeze-after", required_argument, NULL, O_FREEZE},
	    {"freeze-count", required_argument, NULL, O_FREEZE_COUNT},
	    {"api", required_argument, NULL, O_API},
	    {"secret", required_argument, NULL, O_SECRET},
	    {"prefix", required_argument, NULL, O_PREFIX},
	    {"source", required_argument, NULL, O_SOURCE},
	    {"per-source", required_argument, NULL, O_PER_SOURCE},
	    {"pid", required_argument, NULL, O_PID},
	    {"json", no_argument, NULL, O_JSON},
	    {"return-delay", required_argument, NULL, O_RETURN},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct auth_key key;
	char tmp[64], src[64];
	int tport;
	*o = (struct opts){.port = 8080,
	                   .agents = 100,
	                   .heartbeat = 1,
	                   .interval = 5,
	                   .duration = 10,
	                   .ramp = 5,
	                   .freeze_after = -1,
	                   .freeze_count = -1,
	                   .window = 4,
	                   .groups = 1,
	                   .rows = 1,
	                   .fields = 10,
	                   .prefix = "bench-",
	                   .per_src = 1000};
	snprintf(o->host, sizeof o->host, "127.0.0.1");
	inet_pton(AF_INET, "127.0.0.1", &o->dst);
	inet_pton(AF_INET, "127.1.0.1", &o->src);
	int c;
	while ((c = getopt_long(argc, argv, "s:n:P:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt_server(o, optarg);
			break;
		case O_RETURN:
			o->return_delay = opt_num("return-delay", optarg, 0, 86400);
			break;
		case 'n':
			o->agents = (int)opt_num("agents", optarg, 1, 10000000);
			break;
		case 'P':
			o->procs = (int)opt_num("procs", optarg, 1, BENCH_MAX_PROCS);
			break;
		case O_HB:
			o->heartbeat = opt_num("heartbeat", optarg, 0, 86400);
			break;
		case O_INTERVAL:
			o->interval = opt_num("interval", optarg, 0, 86400);
			break;
		case O_WINDOW:
			o->window = (int)opt_num("window", optarg, 1, BENCH_RING);
			break;
		case O_GROUPS:
			o->groups = (int)opt_num("groups", optarg, 1, PROTO_MAX_METRICS);
			break;
		case O_ROWS:
			o->rows = (int)opt_num("rows", optarg, 1, 100000);
			break;
		case O_FIELDS:
			o->fields = (int)opt_num("fields", optarg, 1, PROTO_MAX_FIELDS);
			break;
		case O_RAMP:
			o->ramp = opt_num("ramp", optarg, 0, 3600);
			break;
		case O_DURATION:
			o->duration = opt_num("duration", optarg, 0.1, 86400);
			break;
		case O_FREEZE:
			o->freeze_after = opt_num("freeze-after", optarg, 0, 86400);
			break;
		case O_FREEZE_COUNT:
			o->freeze_count = (int)opt_num("freeze-count", optarg, 0, 10000000);
			break;
		case O_API:
			opt_addr("api", optarg, o->api_host, sizeof o->api_host, &o->api_port,
			         &(struct in_addr){0});
			break;
		case O_SECRET: {
			char err[512];
			if (auth_key_load(optarg, &key, err, sizeof err) < 0) {
				fprintf(stderr, "pimon-bench: --secret: %s\n", err);
				exit(2);
			}
			o->key = &key;
			break;
		}
		case O_PREFIX:
			o->prefix = optarg;
			break;
		case O_SOURCE:
			snprintf(tmp, sizeof tmp, "%s:1", optarg);
			opt_addr("source", tmp, src, sizeof src, &tport, &o->src);
			break;
		case O_PER_SOURCE:
			o->per_src = (int)opt_num("per-source", optarg, 1, 60000);
			break;
		case O_PID:
			o->pid = (pid_t)opt_num("pid", optarg, 1, 1e9);
			break;
		case O_JSON:
			o->json = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pimon-bench: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
	if (!o->procs)
		o->procs = (o->agents + BENCH_PER_PROC - 1) / BENCH_PER_PROC;
	if (o->procs > o->agents)
		o->procs = o->agents;
	if (o->freeze_count < 0 || o->freeze_count > o->agents)
		o->freeze_count = o->agents;
	if (strlen(o->prefix) + 10 > PROTO_NAME_MAX || !util_valid_name(o->prefix)) {
		fprintf(stderr, "pimon-bench: --prefix: %s cannot start a host name\n", o->prefix);
		exit(2);
	}
	if (o->nsrv == 0)
		opt_server(o, "127.0.0.1:8080");
	if (o->freeze_after >= o->duration) {
		fprintf(stderr, "pimon-bench: --freeze-after must be less than --duration\n");
		exit(2);
	}
	uint64_t last = ntohl(o->src.s_addr) + (uint64_t)(o->agents - 1) / (uint64_t)o->per_src;
	if ((ntohl(o->src.s_addr) >> 24) != 127 || (last >> 24) != 127) {
		fprintf(stderr, "pimon-bench: --source: the source addresses must stay in "
		                "127.0.0.0/8\n");
		exit(2);
	}
	/* The bench's own sessions must not count as the ACKs of one frame. */
	if (o->interval > 0 && o->interval < 0.001) {
		fprintf(stderr, "pimon-bench: --interval: use 0 or at least 0.001\n");
		exit(2);
	}
}

/* Counter c over the window, summed over the processes. */
#define DELTA(field) ((double)(w1.field - w0.field))

/* Print the figures, as text or JSON. */
static void print_results(const struct opts *o, const struct report *all, int nrep,
                          const struct detect *d, double cpu_pct, long rss, long uss,
                          uint64_t samples)
{
	struct tally w0 = {0}, w1 = {0};
	struct hist *lat = calloc(1, sizeof *lat), *live = calloc(1, sizeof *live);
	uint64_t alive = 0, unacked = 0;
	if (!lat || !live)
		exit(1);
	for (int i = 0; i < nrep; i++) {
		const struct report *r = &all[i];
#define ADD(f)                                                                                     \
	w0.f += r->w0.f;                                                                           \
	w1.f += r->w1.f;
		ADD(established)
		ADD(connect_failed)
		ADD(refused)
		ADD(closed)
		ADD(bad_frames)
		ADD(frames_out)
		ADD(frames_in)
		ADD(batches_out)
		ADD(batches_acked)
		ADD(hb_out)
		ADD(hb_in)
		ADD(window_full)
		ADD(cpu_us)
#undef ADD
		alive += r->live;
		unacked += r->unacked;
		hist_merge(lat, &r->lat);
		hist_merge(live, &r->lat_live);
	}
	double T = o->duration;
	double bench_cpu = DELTA(cpu_us) / 1e6 / T * 100.0;
	if (o->json) {
		json_t *j = json_pack(
		    "{s:i, s:i, s:f, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:I, s:I, s:I, s:I, s:I,"
		    " s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:f}",
		    "agents", o->agents, "procs", o->procs, "heartbeat_s", o->heartbeat,
		    "interval_s", o->interval, "groups", o->groups, "rows", o->rows, "fields",
		    o->fields, "samples_per_batch", (int)samples, "ramp_s", o->ramp, "duration_s",
		    T, "established", (json_int_t)w1.established, "established_at_start",
		    (json_int_t)w0.established, "live_at_end", (json_int_t)alive, "connect_failed",
		    (json_int_t)w1.connect_failed, "refused", (json_int_t)w1.refused, "closed",
		    (json_int_t)w1.closed, "bad_frames", (json_int_t)w1.bad_frames,
		    "frames_out_per_s", DELTA(frames_out) / T, "frames_in_per_s",
		    DELTA(frames_in) / T, "batches_out_per_s", DELTA(batches_out) / T,
		    "batches_acked_per_s", DELTA(batches_acked) / T, "samples_out_per_s",
		    DELTA(batches_out) * (double)samples / T, "samples_acked_per_s",
		    DELTA(batches_acked) * (double)samples / T, "heartbeats_answered_per_s",
		    DELTA(hb_in) / T, "acks", (json_int_t)lat->count, "ack_p50_ms",
		    hist_quantile_ms(lat, 0.5), "ack_p99_ms", hist_quantile_ms(lat, 0.99),
		    "ack_max_ms", (double)lat->max_us / 1000.0, "unacked_at_end",
		    (json_int_t)unacked, "bench_cpu_pct", bench_cpu);
		json_object_set_new(j, "window_full", json_integer((json_int_t)DELTA(window_full)));
		if (o->pid) {
			json_object_set_new(j, "server_cpu_pct", json_real(cpu_pct));
			json_object_set_new(j, "server_rss_kb", json_integer(rss));
			json_object_set_new(j, "server_uss_kb", json_integer(uss));
		}
		if (o->freeze_after >= 0) {
			json_t *f = json_pack(
			    "{s:f, s:i, s:I, s:f, s:f, s:f, s:I}", "after_s", o->freeze_after,
			    "count", o->freeze_count, "down", (json_int_t)d->seen_down,
			    "first_down_s", d->first_s, "all_down_s",
			    d->seen_down >= o->freeze_count ? d->last_s : -1.0, "live_ack_p99_ms",
			    hist_quantile_ms(live, 0.99), "live_acks", (json_int_t)live->count);
			json_object_set_new(f, "polled", json_boolean(d->polled));
			json_object_set_new(j, "freeze", f);
		}
		json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
		putchar('\n');
		json_decref(j);
	} else {
		printf("pimon-bench: %d agents in %d processes to %s:%d\n", o->agents, o->procs,
		       o->host, o->port);
		if (o->interval > 0)
			printf(
			    "load: heartbeat every %g s, a batch every %g s of %d x %d x %d = %llu "
			    "values\n",
			    o->heartbeat, o->interval, o->groups, o->rows, o->fields,
			    (unsigned long long)samples);
		else
			printf(
			    "load: heartbeat every %g s, batches as fast as acked (%d in flight) "
			    "of %d x %d x %d = %llu values\n",
			    o->heartbeat, o->window, o->groups, o->rows, o->fields,
			    (unsigned long long)samples);
		printf("sessions: %llu established (%llu by the end of the %g s ramp), %llu live "
		       "at the end\n",
		       (unsigned long long)w1.established, (unsigned long long)w0.established,
		       o->ramp, (unsigned long long)alive);
		printf("window: %g s\n", T);
		printf("sent:  %.0f frames/s, %.0f batches/s, %.0f values/s\n",
		       DELTA(frames_out) / T, DELTA(batches_out) / T,
		       DELTA(batches_out) * (double)samples / T);
		printf("acked: %.0f batches/s, %.0f values/s; %.0f heartbeats/s answered; %.0f "
		       "frames/s in\n",
		       DELTA(batches_acked) / T, DELTA(batches_acked) * (double)samples / T,
		       DELTA(hb_in) / T, DELTA(frames_in) / T);
		printf("ack latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%llu acks)\n",
		       hist_quantile_ms(lat, 0.5), hist_quantile_ms(lat, 0.99),
		       (double)lat->max_us / 1000.0, (unsigned long long)lat->count);
		printf(
		    "errors: %llu could not connect, %llu refused, %llu closed, %llu bad frames; "
		    "%llu batches unacked at the end, %.0f sends skipped (%d unacked)\n",
		    (unsigned long long)w1.connect_failed, (unsigned long long)w1.refused,
		    (unsigned long long)w1.closed, (unsigned long long)w1.bad_frames,
		    (unsigned long long)unacked, DELTA(window_full), BENCH_RING);
		printf("bench CPU: %.1f %%\n", bench_cpu);
		if (o->pid)
			printf("server (pid %d): CPU %.1f %%, RSS %.1f MB, USS %.1f MB\n",
			       (int)o->pid, cpu_pct, (double)rss / 1024.0, (double)uss / 1024.0);
		if (o->freeze_after >= 0) {
			printf("freeze: %d sessions at +%g s; ", o->freeze_count, o->freeze_after);
			if (!d->polled)
				printf("no --api, down times not read\n");
			else if (d->seen_down >= o->freeze_count)
				printf("all down %.2f s after (first %.2f s)\n", d->last_s,
				       d->first_s);
			else
				printf("only %ld down by the end\n", d->seen_down);
			printf(
			    "live sessions' ack latency after the freeze: p99 %.2f ms, max %.2f ms "
			    "(%llu acks)\n",
			    hist_quantile_ms(live, 0.99), (double)live->max_us / 1000.0,
			    (unsigned long long)live->count);
		}
	}
	free(lat);
	free(live);
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	if ((o.agents + o.procs - 1) / o.procs > BENCH_PER_PROC)
		fprintf(stderr, "pimon-bench: warning: over %d agents per process\n",
		        BENCH_PER_PROC);
	uint64_t t0 = now_us() + 100000; /* all processes start together */
	int fds[BENCH_MAX_PROCS];
	pid_t pids[BENCH_MAX_PROCS];
	for (int k = 0; k < o.procs; k++) {
		int p[2];
		if (pipe(p) < 0) {
			perror("pimon-bench: pipe");
			return 1;
		}
		pids[k] = fork();
		if (pids[k] < 0) {
			perror("pimon-bench: fork");
			return 1;
		}
		if (pids[k] == 0) {
			/* A parent killed outright takes its children along. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(1);
			close(p[0]);
			for (int i = 0; i < k; i++)
				close(fds[i]);
			_exit(child_main(&o, k, t0, p[1]));
		}
		close(p[1]);
		fds[k] = p[0];
		child_pids[k] = pids[k];
		nchildren = k + 1;
	}
	struct sigaction sa = {.sa_handler = on_term};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0) {
		perror("pimon-bench: sigaction");
		return 1;
	}
	uint64_t wstart = t0 + (uint64_t)(o.ramp * 1e6);
	uint64_t wend = wstart + (uint64_t)(o.duration * 1e6);
	double cpu0 = 0, cpu1 = 0;
	long rss = -1, uss = -1;
	struct detect d = {0};
	sleep_until(wstart);
	if (o.pid)
		cpu0 = proc_cpu_s(o.pid);
	if (o.freeze_after >= 0 && o.api_port) {
		sleep_until(wstart + (uint64_t)(o.freeze_after * 1e6));
		d.freeze_ms = util_now_ms();
		d.polled = 1;
		long base = api_hosts_down(&o);
		/* Poll the cheap count until every frozen host is down or the
		 * window ends; then read each host's time of going down. */
		while (now_us() + 200000 < wend && !stopping) {
			long down = api_hosts_down(&o);
			if (base >= 0 && down >= base + o.freeze_count)
				break;
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	sleep_until(wend);
	if (o.pid) {
		cpu1 = proc_cpu_s(o.pid);
		proc_mem_kb(o.pid, &rss, &uss);
	}
	struct report *reps = calloc((size_t)o.procs, sizeof *reps);
	int failed = 0, nrep = 0;
	for (int k = 0; k < o.procs; k++) {
		struct pollfd pfd = {.fd = fds[k], .events = POLLIN};
		if (!reps || poll(&pfd, 1, (int)(o.ramp + 30) * 1000) <= 0 ||
		    read_all(fds[k], &reps[nrep], sizeof *reps) < 0) {
			fprintf(stderr, "pimon-bench: process %d gave no report\n", k);
			kill(pids[k], SIGKILL);
			failed = 1;
		} else {
			nrep++;
		}
		close(fds[k]);
	}
	for (int k = 0; k < o.procs; k++)
		waitpid(pids[k], NULL, 0);
	if (d.polled)
		detect_collect(&o, &d);
	double cpu_pct = (cpu0 >= 0 && cpu1 >= 0) ? (cpu1 - cpu0) / o.duration * 100.0 : -1;
	uint64_t samples = (uint64_t)o.groups * (uint64_t)o.rows * (uint64_t)o.fields;
	if (reps)
		print_results(&o, reps, nrep, &d, cpu_pct, rss, uss, samples);
	free(reps);
	return failed;
}
