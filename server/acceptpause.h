/* Accept errors on a listening socket: out of descriptors (or memory),
 * stop accepting for a second instead of spinning on the connection that
 * waits, and log at a bounded rate. The agents' listener and the HTTP
 * listener share it. */
#ifndef PIMON_ACCEPTPAUSE_H
#define PIMON_ACCEPTPAUSE_H

#include <event2/event.h>
#include <event2/listener.h>

struct acceptpause;

/* Handle lev's accept errors with timers on base, logging as module about
 * addr; NULL on error (logged). MUST be called before base's loop runs. */
struct acceptpause *acceptpause_attach(struct evconnlistener *lev, struct event_base *base,
                                       const char *module, const char *addr);

/* Stop handling the listener's errors and free; before the listener is
 * freed. MUST be called once base's loop has stopped. */
void acceptpause_detach(struct acceptpause *p);

#endif
