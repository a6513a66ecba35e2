/* /metrics: Prometheus text exposition. */
#include "http_int.h"

/* Not served yet: leave every path to the other handlers. */
int http_metrics_handle(struct http *h, struct evhttp_request *req, const char *path)
{
	(void)h;
	(void)req;
	(void)path;
	return 0;
}
