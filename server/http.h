/* The HTTP API: evhttp on a thread and event base of its own, so serving
 * it never runs on a worker. */
#ifndef PIMON_HTTP_H
#define PIMON_HTTP_H

#include "server.h"

struct http;

/* Bind addr and start the HTTP thread; NULL on error (logged). MUST be
 * called by the main thread with signals blocked for the new thread. */
struct http *http_start(struct server *srv, const char *addr);

/* Stop the thread and free everything. MUST be called by the main thread. */
void http_stop(struct http *h);

#endif
