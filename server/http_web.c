/* The dashboard: the page at "/" and its assets under /assets/, embedded
 * at build time by tools/embed.py (web_assets.c). Runs on the HTTP thread. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"
#include "web_assets.h"

/* What the page may load: only this server, no inline code. */
#define WEB_CSP                                                                                    \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The embedded file served at path, or NULL. */
static const struct web_asset *web_find(const char *path)
{
	for (size_t i = 0; i < web_assets_count; i++)
		if (strcmp(web_assets[i].path, path) == 0)
			return &web_assets[i];
	return NULL;
}

/* Whether the request names this build's version of the asset (?v=HASH). */
static int web_versioned(struct evhttp_request *req, const struct web_asset *a)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	char want[64];
	snprintf(want, sizeof want, "v=%s", a->version);
	return query && strcmp(query, want) == 0;
}

/* Whether If-None-Match lists the asset's entity tag (or is "*"). */
static int web_not_modified(struct evhttp_request *req, const struct web_asset *a)
{
	const char *inm =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (!inm)
		return 0;
	return strcmp(inm, "*") == 0 || strstr(inm, a->etag) != NULL;
}

/* GET or HEAD of "/" and /assets/...: answer, or return 0 for other paths. */
int http_web_handle(struct http *h, struct evhttp_request *req, const char *path)
{
	(void)h;
	const struct web_asset *a = web_find(path);
	if (!a)
		return 0;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		http_reply_error(req, 405, "only GET and HEAD are supported here");
		return 1;
	}
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "ETag", a->etag);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	if (strcmp(a->path, "/") == 0) {
		/* The page names this build's asset versions: always revalidate it. */
		evhttp_add_header(out, "Cache-Control", "no-cache");
		evhttp_add_header(out, "Content-Security-Policy", WEB_CSP);
		evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	} else if (web_versioned(req, a)) {
		evhttp_add_header(out, "Cache-Control", "public, max-age=31536000, immutable");
	} else {
		evhttp_add_header(out, "Cache-Control", "no-cache");
	}
	if (web_not_modified(req, a)) {
		evhttp_send_reply(req, HTTP_NOTMODIFIED, "Not Modified", NULL);
		return 1;
	}
	if (cmd == EVHTTP_REQ_HEAD) {
		/* libevent 2.1 would send a HEAD reply's body: give it none, and
		 * state the length the body of a GET would have. */
		char len[32];
		snprintf(len, sizeof len, "%zu", a->len);
		evhttp_add_header(out, "Content-Length", len);
		http_reply_bytes(req, 200, a->type, a->data, 0);
		return 1;
	}
	http_reply_bytes(req, 200, a->type, a->data, a->len);
	return 1;
}
