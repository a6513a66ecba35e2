/* The local alarm socket and its client. */
#include "local.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "util.h"

struct local {
	struct event_base *base;
	struct evconnlistener *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	local_alarm_fn fn;
	void *arg;
};

static const char *const level_names[] = {"ok", "warning", "critical", "unknown"};

/* Parse "LEVEL\tNAME\tMESSAGE". */
int local_parse(char *line, uint8_t *level, const char **name, const char **message,
                const char **why)
{
	char *tab1 = strchr(line, '\t');
	char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
	if (!tab2) {
		*why = "expected LEVEL<TAB>NAME<TAB>MESSAGE";
		return -1;
	}
	*tab1 = '\0';
	*tab2 = '\0';
	int found = -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(line, level_names[i]) == 0)
			found = i;
	if (found < 0) {
		*why = "level is not one of ok, warning, critical, unknown";
		return -1;
	}
	if (!util_valid_key(tab1 + 1)) {
		*why = "name is not 1..32 of a-z 0-9 _";
		return -1;
	}
	if (strlen(tab2 + 1) > PROTO_TEXT_MAX) {
		*why = "message is longer than 255 bytes";
		return -1;
	}
	*level = (uint8_t)found;
	*name = tab1 + 1;
	*message = tab2 + 1;
	return 0;
}

/* The answer is out: close. */
static void local_conn_drained_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

/* A client that went away or stalled. */
static void local_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

/* Answer the client, then close once it is sent. */
static void local_answer(struct bufferevent *bev, const char *text)
{
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, local_conn_drained_cb, local_conn_event_cb, NULL);
	evbuffer_add_printf(bufferevent_get_output(bev), "%s\n", text);
}

/* A request line (or a part of one) arrived. */
static void local_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct local *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) >= LOCAL_LINE_MAX)
			local_answer(bev, "error: request line too long");
		return;
	}
	uint8_t level;
	const char *name, *message, *why = NULL;
	if (len >= LOCAL_LINE_MAX)
		why = "request line too long";
	else if (local_parse(line, &level, &name, &message, &why) == 0) {
		/* The wire carries UTF-8 text only: other bytes are shown as \xNN. */
		char text[PROTO_TEXT_MAX + 1];
		proto_text_clean(text, PROTO_TEXT_MAX, message, strlen(message));
		if (l->fn(l->arg, level, name, text) < 0)
			why = "the agent could not queue it";
	}
	if (why) {
		char text[160];
		snprintf(text, sizeof text, "error: %s", why);
		log_info("local", "alarm refused: %s", why);
		local_answer(bev, text);
	} else {
		local_answer(bev, "ok");
	}
	free(line);
}

/* A client connected. */
static void local_accept_cb(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa,
                            int socklen, void *arg)
{
	struct local *l = arg;
	struct bufferevent *bev = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	struct timeval tv = {5, 0};
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0, LOCAL_LINE_MAX);
	bufferevent_setcb(bev, local_conn_read_cb, NULL, local_conn_event_cb, l);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Is an agent answering on the socket at path? */
static int local_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int alive = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
	close(fd);
	return alive;
}

/* Bind a listening socket at path, mode 0600. -1 on error (logged). */
static int local_bind(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		log_err("local", "%s: path too long for a Unix socket", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	/* The folder (systemd's RuntimeDirectory) is made if missing: owner only. */
	char dir[sizeof sun.sun_path];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			log_warn("local", "cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_err("local", "socket: %s", strerror(errno));
		return -1;
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	if (rc < 0 && errno == EADDRINUSE && !local_alive(&sun)) {
		unlink(path);
		rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	}
	int err = errno;
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		if (rc == 0)
			err = errno;
		log_warn("local", "cannot listen on %s: %s", path,
		         err == EADDRINUSE ? "another agent listens there" : strerror(err));
		close(fd);
		return -1;
	}
	return fd;
}

struct local *local_create(struct event_base *base, const char *path, local_alarm_fn fn, void *arg)
{
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->base = base;
	l->fn = fn;
	l->arg = arg;
	snprintf(l->path, sizeof l->path, "%s", path);
	int fd = local_bind(path);
	if (fd < 0) {
		free(l);
		return NULL;
	}
	l->listener = evconnlistener_new(base, local_accept_cb, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l->listener) {
		close(fd);
		unlink(path);
		free(l);
		return NULL;
	}
	log_info("local", "local alarms on %s", path);
	return l;
}

void local_destroy(struct local *l)
{
	if (!l)
		return;
	evconnlistener_free(l->listener);
	unlink(l->path);
	free(l);
}

int local_send(const char *path, const char *level, const char *name, const char *message,
               int timeout_ms, char *answer, size_t size)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	char req[LOCAL_LINE_MAX + 64];
	int n = snprintf(req, sizeof req, "%s\t%s\t%s\n", level, name, message);
	if (n < 0 || (size_t)n >= sizeof req)
		n = (int)sizeof req - 1;
	size_t got = 0;
	int rc = -1;
	if (write(fd, req, (size_t)n) == n) {
		while (got + 1 < size) {
			ssize_t r = read(fd, answer + got, size - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			if (memchr(answer, '\n', got))
				break;
		}
		answer[got] = '\0';
		answer[strcspn(answer, "\n")] = '\0';
		if (got > 0)
			rc = strcmp(answer, "ok") == 0 ? 0 : 1;
		else
			errno = errno ? errno : ECONNRESET;
	}
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}
