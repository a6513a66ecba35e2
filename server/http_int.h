/* What the HTTP modules share: the listener's state, replies, and each
 * module's request handler. Everything here runs on the HTTP thread. */
#ifndef PIMON_HTTP_INT_H
#define PIMON_HTTP_INT_H

#include <event2/http.h>
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>

#include "server.h"

struct http {
	struct server *srv;
	struct event_base *base;
	struct evhttp *evh;
	struct acceptpause *pause; /* the listener's pauses when out of descriptors */
	pthread_t thread;
};

/* Reply with body as JSON (the reference is taken) and status code. */
void http_reply_json(struct evhttp_request *req, int code, json_t *body);

/* Reply {"error": msg, "status": code}. */
void http_reply_error(struct evhttp_request *req, int code, const char *msg);

/* Reply with len bytes of body of the given content type. */
void http_reply_bytes(struct evhttp_request *req, int code, const char *type, const void *body,
                      size_t len);

/* Percent-decode len bytes of s (with plus, '+' too, as a space) into a
 * new string in *out, for the caller to free. 0; -1 when the decoded bytes
 * hold a NUL or are not UTF-8, and -2 when out of memory (*out NULL). */
int http_decode(const char *s, size_t len, int plus, char **out);

/* Each handler answers the request and returns 1, or returns 0 when the
 * path is not its own. */
int http_api_handle(struct http *h, struct evhttp_request *req, const char *path);
int http_metrics_handle(struct http *h, struct evhttp_request *req, const char *path);

/* Render the /metrics page of srv's state into out: 0, or -1 (logged). */
int http_metrics_page(struct server *srv, struct evbuffer *out);
int http_web_handle(struct http *h, struct evhttp_request *req, const char *path);

#endif
