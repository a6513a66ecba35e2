/* The agents' listener: accepts, balances, and survives descriptor
 * exhaustion by pausing (acceptpause.c). Runs on the main thread. */
#include "listener.h"

#include <errno.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acceptpause.h"
#include "log.h"
#include "util.h"
#include "worker.h"

struct listener {
	struct server *srv;
	struct evconnlistener *lev;
	struct acceptpause *pause; /* pauses accepting when out of descriptors */
};

/* Resolve an address with getaddrinfo; names and literals both work. */
int listener_resolve(const char *addr, int passive, struct sockaddr_storage *ss, int *sslen,
                     const char **err)
{
	char host[256], port[16];
	int p;
	if (util_split_hostport(addr, host, sizeof host, &p) < 0) {
		*err = "expected host:port or [v6addr]:port";
		return -1;
	}
	snprintf(port, sizeof port, "%d", p);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		*err = gai_strerror(rc);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Format a peer address as "ip:port" or "[ip6]:port". */
static void format_addr(const struct sockaddr *sa, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		port = ntohs(in->sin_port);
		snprintf(out, size, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		port = ntohs(in6->sin6_port);
		snprintf(out, size, "[%s]:%d", ip, port);
	} else {
		snprintf(out, size, "unknown");
	}
}

/* A new agent connection: tune it and pass it to a worker. */
static void listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
	struct listener *l = arg;
	char addr[64];
	format_addr(sa, addr, sizeof addr);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	workers_assign(l->srv, fd, addr);
}

/* Bind and start accepting. */
struct listener *listener_start(struct server *srv, struct event_base *base, const char *addr)
{
	struct sockaddr_storage ss;
	int sslen;
	const char *err;
	if (listener_resolve(addr, 1, &ss, &sslen, &err) < 0) {
		log_err("listener", "%s: %s", addr, err);
		return NULL;
	}
	struct listener *l = calloc(1, sizeof *l);
	if (!l) {
		log_err("listener", "cannot listen on %s: out of memory", addr);
		return NULL;
	}
	l->srv = srv;
	l->lev = evconnlistener_new_bind(base, listener_accept_cb, l,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                     LEV_OPT_CLOSE_ON_EXEC,
	                                 1024, (struct sockaddr *)&ss, sslen);
	if (!l->lev) {
		log_err("listener", "cannot listen on %s: %s", addr, strerror(errno));
		free(l);
		return NULL;
	}
	l->pause = acceptpause_attach(l->lev, base, "listener", addr);
	if (!l->pause) {
		evconnlistener_free(l->lev);
		free(l);
		return NULL;
	}
	log_notice("listener", "listening for agents on %s", addr);
	return l;
}

/* Close the listening socket. */
void listener_stop(struct listener *l)
{
	if (!l)
		return;
	acceptpause_detach(l->pause);
	evconnlistener_free(l->lev);
	free(l);
}
