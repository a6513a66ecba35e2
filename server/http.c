/* The HTTP listener: evhttp on a thread and event base of its own, so
 * serving never runs on a worker. Requests go to each module's handler in
 * turn; what none takes is a JSON 404. */
#include "http.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "acceptpause.h"
#include "http_int.h"
#include "log.h"
#include "proto.h"
#include "util.h"

/* The reason phrase of the codes this API uses. */
static const char *http_reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 401:
		return "Unauthorized";
	case 409:
		return "Conflict";
	case 500:
		return "Internal Server Error";
	default:
		return "Error";
	}
}

/* Send the reply. A HEAD reply gets the body's length and no body: libevent
 * 2.1 would send the body, breaking the next request on the connection. */
static void http_send(struct evhttp_request *req, int code, struct evbuffer *body)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char len[32];
		snprintf(len, sizeof len, "%zu", evbuffer_get_length(body));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
		evbuffer_drain(body, evbuffer_get_length(body));
	}
	evhttp_send_reply(req, code, http_reason(code), body);
}

/* Send a JSON body with status code; takes the reference to body. A NULL
 * body, an answer that could not be built, is logged and answered 500. */
void http_reply_json(struct evhttp_request *req, int code, json_t *body)
{
	if (!body) {
		static const char failed[] =
		    "{\"error\":\"cannot build the answer\",\"status\":500}\n";
		log_err("http", "%s: cannot build the answer; replying 500",
		        evhttp_request_get_uri(req));
		http_reply_bytes(req, HTTP_INTERNAL, "application/json", failed, sizeof failed - 1);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	/* 17 digits: every double reads back as the one stored. */
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(body);
	if (!buf || !text) {
		free(text);
		if (buf)
			evbuffer_free(buf);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	free(text);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	http_send(req, code, buf);
	evbuffer_free(buf);
}

/* An error as {"error": "..."} with a fitting status. */
void http_reply_error(struct evhttp_request *req, int code, const char *msg)
{
	http_reply_json(req, code, json_pack("{s:s, s:i}", "error", msg, "status", code));
}

/* Reply with raw bytes of a content type. */
void http_reply_bytes(struct evhttp_request *req, int code, const char *type, const void *body,
                      size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(buf, body, len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	http_send(req, code, buf);
	evbuffer_free(buf);
}

/* Each HTTPS connection: a TLS bufferevent that accepts. */
static struct bufferevent *http_tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	if (!ssl)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		SSL_free(ssl);
	return bev;
}

/* Does the request bring "Authorization: Bearer TOKEN" with key's token?
 * Compared in constant time. */
static int http_has_token(struct evhttp_request *req, const struct auth_key *key)
{
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!key || !auth || strncmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *token = auth + 7;
	size_t len = strlen(token);
	return len == key->len && CRYPTO_memcmp(token, key->bytes, len) == 0;
}

/* Changing requests need the admin token when one is set; reading the API
 * and /metrics needs the read (or admin) token when one is set; the
 * dashboard's page and assets hold no data and are always served. */
static int http_allowed(struct http *h, struct evhttp_request *req, const char *path)
{
	const struct server *srv = h->srv;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)
		return !srv->http_admin || http_has_token(req, srv->http_admin);
	int data = strncmp(path, "/api/", 5) == 0 || strcmp(path, "/metrics") == 0;
	if (!data || !srv->http_read)
		return 1;
	return http_has_token(req, srv->http_read) || http_has_token(req, srv->http_admin);
}

/* Percent-decode into a new string that holds no NUL and is protocol text
 * (UTF-8 without control characters, proto_text_valid). */
int http_decode(const char *s, size_t len, int plus, char **out)
{
	size_t n = 0;
	char *raw = strndup(s, len);
	*out = raw ? evhttp_uridecode(raw, plus, &n) : NULL;
	free(raw);
	if (!*out)
		return -2;
	if (memchr(*out, '\0', n) || !proto_text_valid(*out, n)) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* Whether s is a token (RFC 9110 section 5.6.2), as a header name must be:
 * "Content-Length :" is not Content-Length to libevent, but may be to a
 * proxy in front of it. */
static int http_is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return 0;
	}
	return 1;
}

/* Whether s is a Content-Length value: decimal digits alone. libevent's
 * own parse takes "+0", "-0" and " 5" too. */
static int http_is_length(const char *s)
{
	size_t n = strspn(s, "0123456789");
	return n > 0 && s[n] == '\0';
}

/* Whether every libevent 2.1 reads the body of a request with this method.
 * Before 2.1.9 only these have one; HEAD and TRACE have none in any: an
 * announced body is then left to be read as the next request. */
static int http_reads_body(enum evhttp_cmd_type cmd)
{
	return cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH;
}

/* Why the request's framing is unsound, or NULL when it is not: where two
 * readers could disagree on where the request ends (RFC 9112 section 6.3),
 * or an HTTP/1.1 request has not exactly one Host (section 3.2). */
static const char *http_framing_error(struct evhttp_request *req)
{
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *length = NULL, *coding = NULL;
	int nlength = 0, ncoding = 0, nhost = 0;
	for (const struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
		if (!http_is_token(kv->key))
			return "malformed header name";
		if (evutil_ascii_strcasecmp(kv->key, "Content-Length") == 0) {
			nlength++;
			length = kv->value;
		} else if (evutil_ascii_strcasecmp(kv->key, "Transfer-Encoding") == 0) {
			ncoding++;
			coding = kv->value;
		} else if (evutil_ascii_strcasecmp(kv->key, "Host") == 0) {
			nhost++;
		}
	}
	if (nlength > 1)
		return "more than one Content-Length header";
	if (ncoding > 1)
		return "more than one Transfer-Encoding header";
	if (length && coding)
		return "both Content-Length and Transfer-Encoding";
	if (length && !http_is_length(length))
		return "Content-Length is not a number";
	if (coding && evutil_ascii_strcasecmp(coding, "chunked") != 0)
		return "a Transfer-Encoding other than chunked";
	int body = coding || (length && length[strspn(length, "0")] != '\0');
	if (body && !http_reads_body(evhttp_request_get_command(req)))
		return "a body on a request that takes none";
	if ((req->major > 1 || (req->major == 1 && req->minor >= 1)) && nhost != 1)
		return nhost ? "more than one Host header" : "no Host header";
	return NULL;
}

/* Answer 400 and close the connection once the answer is out: whatever
 * follows on it cannot be told from this request's body. */
static void http_refuse_framing(struct evhttp_request *req, const char *why)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &peer, &port);
	int v6 = peer && strchr(peer, ':');
	log_warn("http", "%s%s%s:%u: %s; answering 400 and closing", v6 ? "[" : "",
	         peer ? peer : "?", v6 ? "]" : "", (unsigned)port, why);
	/* An HTTP/1.0 keep-alive would add "Connection: keep-alive" too. */
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	while (evhttp_remove_header(in, "Connection") == 0)
		;
	if (evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close") < 0)
		log_err("http", "cannot mark a reply to close its connection");
	char msg[128];
	snprintf(msg, sizeof msg, "malformed request: %s", why);
	http_reply_error(req, 400, msg);
}

/* Route a request to the module that owns its path, once its framing is
 * known to be sound. */
static void http_route_cb(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *bad = path ? http_framing_error(req) : "bad request URI";
	if (bad) {
		http_refuse_framing(req, bad);
		return;
	}
	if (!http_allowed(h, req, path)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                  "Bearer realm=\"pimon\"");
		http_reply_error(req, 401, "this request needs a token (Authorization: Bearer)");
		return;
	}
	if (!http_api_handle(h, req, path) && !http_metrics_handle(h, req, path) &&
	    !http_web_handle(h, req, path))
		http_reply_error(req, 404, "no such endpoint");
}

/* The HTTP thread's loop. */
static void *http_main(void *arg)
{
	struct http *h = arg;
	event_base_loop(h->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Bind and start serving. */
struct http *http_start(struct server *srv, const char *addr)
{
	char host[256];
	int port;
	if (util_split_hostport(addr, host, sizeof host, &port) < 0) {
		log_err("http", "%s: expected host:port", addr);
		return NULL;
	}
	struct http *h = calloc(1, sizeof *h);
	if (!h) {
		log_err("http", "cannot listen on %s: out of memory", addr);
		return NULL;
	}
	h->srv = srv;
	h->base = event_base_new();
	h->evh = h->base ? evhttp_new(h->base) : NULL;
	if (!h->evh)
		goto fail;
	const struct pimon_config *cfg = srv->cfg;
	struct timeval tv = {(time_t)cfg->server.http_timeout, 0};
	evhttp_set_timeout_tv(h->evh, &tv);
	evhttp_set_max_headers_size(h->evh, (ev_ssize_t)cfg->server.http_max_header);
	evhttp_set_max_body_size(h->evh, (ev_ssize_t)cfg->server.http_max_body);
	/* Every method reaches the handlers, which answer 405 in JSON. */
	evhttp_set_allowed_methods(h->evh, 0xffff);
	evhttp_set_gencb(h->evh, http_route_cb, h);
	if (srv->http_tls_ctx)
		evhttp_set_bevcb(h->evh, http_tls_bev, srv->http_tls_ctx);
	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(h->evh, host, (ev_uint16_t)port);
	if (!bound) {
		log_err("http", "cannot listen on %s", addr);
		goto fail;
	}
	/* HTTPS connections come through the same listener. */
	h->pause =
	    acceptpause_attach(evhttp_bound_socket_get_listener(bound), h->base, "http", addr);
	if (!h->pause)
		goto fail;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&h->thread, NULL, http_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_err("http", "cannot start the HTTP thread: %s", strerror(rc));
		goto fail;
	}
	log_notice("http", "JSON API on %s://%s/api/v1/", srv->http_tls_ctx ? "https" : "http",
	           addr);
	return h;
fail:
	acceptpause_detach(h->pause);
	if (h->evh)
		evhttp_free(h->evh);
	if (h->base)
		event_base_free(h->base);
	free(h);
	return NULL;
}

/* Leave the loop, join, free. */
void http_stop(struct http *h)
{
	if (!h)
		return;
	event_base_loopexit(h->base, NULL);
	pthread_join(h->thread, NULL);
	acceptpause_detach(h->pause);
	evhttp_free(h->evh);
	event_base_free(h->base);
	free(h);
}
