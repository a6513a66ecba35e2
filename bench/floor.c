/* pimon-floor: the least a server speaking pimon's protocol can do, to show
 * what the event loop itself costs per session. One thread, one event base:
 * CHALLENGE on connect, WELCOME to any HELLO (no check), a HEARTBEAT back
 * for each HEARTBEAT, an ACK for each METRICS (its seq read, nothing
 * decoded or stored), and a read timeout per session as a common timeout. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "proto.h"
#include "util.h"

struct floor {
	struct event_base *base;
	const struct timeval *timeout;
	struct proto_buf challenge, welcome, out;
	uint64_t sessions, peak, frames, acks, timeouts;
};

/* Queue a frame of type with an 8-byte payload. */
static void send_u64(struct floor *f, struct bufferevent *bev, enum proto_type type, uint64_t v)
{
	struct proto_msg m = {.type = type};
	if (type == PROTO_ACK)
		m.u.ack.seq = v;
	else
		m.u.heartbeat.time_ms = v;
	const char *err;
	proto_buf_reset(&f->out);
	if (proto_encode(&m, &f->out, &err) == 0)
		bufferevent_write(bev, f->out.data, f->out.len);
}

static void floor_close(struct floor *f, struct bufferevent *bev)
{
	bufferevent_free(bev);
	f->sessions--;
}

/* Answer every complete frame. */
static void floor_read_cb(struct bufferevent *bev, void *arg)
{
	struct floor *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail < PROTO_HEADER_SIZE)
			return;
		struct proto_header hdr;
		const char *err;
		const uint8_t *p = evbuffer_pullup(in, PROTO_HEADER_SIZE);
		if (proto_header_parse(p, PROTO_HEADER_SIZE, PROTO_MAX_PAYLOAD, &hdr, &err) !=
		    PROTO_OK) {
			floor_close(f, bev);
			return;
		}
		size_t total = PROTO_HEADER_SIZE + (size_t)hdr.length;
		if (avail < total)
			return;
		f->frames++;
		switch (hdr.type) {
		case PROTO_HELLO:
			bufferevent_write(bev, f->welcome.data, f->welcome.len);
			break;
		case PROTO_HEARTBEAT:
			send_u64(f, bev, PROTO_HEARTBEAT, util_now_ms());
			break;
		case PROTO_METRICS:
			if (hdr.length >= 8) {
				p = evbuffer_pullup(in, PROTO_HEADER_SIZE + 8);
				send_u64(f, bev, PROTO_ACK, util_get_be64(p + PROTO_HEADER_SIZE));
				f->acks++;
			}
			break;
		case PROTO_BYE:
			floor_close(f, bev);
			return;
		default:
			break;
		}
		evbuffer_drain(in, total);
	}
}

/* End of stream, an error, or a silent peer (which stays open). */
static void floor_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct floor *f = arg;
	if (what & BEV_EVENT_TIMEOUT) {
		f->timeouts++;
		bufferevent_enable(bev, EV_READ);
		return;
	}
	floor_close(f, bev);
}

/* A new connection: CHALLENGE at once. */
static void floor_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
	struct floor *f = arg;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct bufferevent *bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, floor_read_cb, NULL, floor_event_cb, f);
	bufferevent_set_timeouts(bev, f->timeout, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_write(bev, f->challenge.data, f->challenge.len);
	if (++f->sessions > f->peak)
		f->peak = f->sessions;
}

/* Accept again after a pause. */
static void floor_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

/* accept() failed, most likely out of descriptors: pause a second. */
static void floor_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	evconnlistener_disable(lev);
	struct timeval tv = {1, 0};
	event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT, floor_resume_cb, lev, &tv);
}

static void floor_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"interval", required_argument, NULL, 'i'},
	    {"heartbeat", required_argument, NULL, 'b'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *listen = "127.0.0.1:8090";
	double interval = 5, heartbeat = 1, timeout = 10;
	int c;
	while ((c = getopt_long(argc, argv, "l:i:b:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'i':
			interval = atof(optarg);
			break;
		case 'b':
			heartbeat = atof(optarg);
			break;
		case 't':
			timeout = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: pimon-floor [--listen HOST:PORT] [--interval S] "
			                "[--heartbeat S] [--timeout S]\n");
			return 2;
		}
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	static struct floor f;
	f.base = event_base_new();
	struct timeval tv = {(time_t)timeout,
	                     (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
	f.timeout = event_base_init_common_timeout(f.base, &tv);
	const char *err;
	struct proto_msg ch = {.type = PROTO_CHALLENGE};
	struct proto_msg wm = {.type = PROTO_WELCOME};
	wm.u.welcome.interval_ms = (uint32_t)(interval * 1000);
	wm.u.welcome.heartbeat_ms = (uint32_t)(heartbeat * 1000);
	if (proto_encode(&ch, &f.challenge, &err) < 0 || proto_encode(&wm, &f.welcome, &err) < 0) {
		fprintf(stderr, "pimon-floor: %s\n", err);
		return 1;
	}
	char host[256];
	int port;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (util_split_hostport(listen, host, sizeof host, &port) < 0 ||
	    evutil_inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "pimon-floor: --listen: expected IPv4 host:port\n");
		return 2;
	}
	sa.sin_port = htons((uint16_t)port);
	struct evconnlistener *lev = evconnlistener_new_bind(
	    f.base, floor_accept_cb, &f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
	    (struct sockaddr *)&sa, sizeof sa);
	if (!lev) {
		fprintf(stderr, "pimon-floor: cannot listen on %s: %s\n", listen, strerror(errno));
		return 1;
	}
	evconnlistener_set_error_cb(lev, floor_accept_error_cb);
	struct event *sigterm = evsignal_new(f.base, SIGTERM, floor_stop_cb, f.base);
	struct event *sigint = evsignal_new(f.base, SIGINT, floor_stop_cb, f.base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	fprintf(stderr, "pimon-floor: listening on %s\n", listen);
	event_base_dispatch(f.base);
	printf("pimon-floor: peak %llu sessions, %llu frames, %llu acks, %llu timeouts\n",
	       (unsigned long long)f.peak, (unsigned long long)f.frames, (unsigned long long)f.acks,
	       (unsigned long long)f.timeouts);
	evconnlistener_free(lev);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(f.base);
	return 0;
}
