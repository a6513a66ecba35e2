/* Agent sessions: one bufferevent each, framed with proto, with a
 * heartbeat timeout. All sessions of a worker form its session set, used
 * only by that worker's thread. */
#ifndef PIMON_SESSION_H
#define PIMON_SESSION_H

#include <event2/event.h>
#include <stdint.h>

#include "server.h"

struct session_set;

/* An empty set for worker w on base. MUST be called by w's thread. */
struct session_set *session_set_create(struct server *srv, struct worker *w,
                                       struct event_base *base);

/* Destroy every session at once and the set. */
void session_set_destroy(struct session_set *set);

/* Close every session gracefully (BYE, flush) with reason; returns the
 * number still draining. */
unsigned session_set_close_all(struct session_set *set, const char *reason);

/* Take over an accepted socket. On failure the socket is closed, logged,
 * and worker_session_ended is called. */
void session_open(struct session_set *set, evutil_socket_t fd, const char *addr);

/* Close session id with reason, if it is still here. */
void session_set_close(struct session_set *set, uint64_t id, const char *reason);

/* Send POLL on session id, if it is here and past HELLO. */
void session_set_poll(struct session_set *set, uint64_t id);

#endif
