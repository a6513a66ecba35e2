/* The agents' listener: accepts on the main base and hands each socket to
 * the least-loaded worker. */
#ifndef PIMON_LISTENER_H
#define PIMON_LISTENER_H

#include <event2/event.h>

#include "server.h"

struct listener;

/* Bind addr ("host:port", "[v6]:port") on base; NULL on error (logged). */
struct listener *listener_start(struct server *srv, struct event_base *base, const char *addr);

/* Stop accepting and close the socket. */
void listener_stop(struct listener *l);

/* Resolve "host:port" for binding or connecting into ss. 0 or -1 (err set). */
int listener_resolve(const char *addr, int passive, struct sockaddr_storage *ss, int *sslen,
                     const char **err);

#endif
