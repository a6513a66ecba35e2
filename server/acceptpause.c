/* Accept errors on a listening socket. A connection that cannot be
 * accepted for want of a descriptor stays queued, so the socket stays
 * readable and libevent would try again at once, forever: pause instead.
 * Each pause runs on its listener's base; only the list that finds a pause
 * from its listener is shared between threads. */
#include "acceptpause.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* How long accepting stops, and how often a line about it may be logged. */
#define ACCEPTPAUSE_S      1
#define ACCEPTPAUSE_LOG_MS 10000

struct acceptpause {
	struct evconnlistener *lev;
	struct event *resume; /* re-enables accepting after a pause */
	char module[16];
	char addr[128];
	int logged; /* a line was logged, at logged_ms */
	uint64_t logged_ms;
	unsigned long quiet; /* errors since that line, not logged */
	struct acceptpause *next;
};

/* Every pause, found by its listener: libevent gives the error callback
 * the listener's own argument, which for evhttp's listener is the evhttp. */
static pthread_mutex_t acceptpause_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acceptpause *acceptpause_all;

/* The pause attached to lev, or NULL. */
static struct acceptpause *acceptpause_find(struct evconnlistener *lev)
{
	pthread_mutex_lock(&acceptpause_lock);
	struct acceptpause *p = acceptpause_all;
	while (p && p->lev != lev)
		p = p->next;
	pthread_mutex_unlock(&acceptpause_lock);
	return p;
}

/* Whether err means the process or the system ran out of something that
 * closing connections gives back: the queued connection would fail again. */
static int acceptpause_exhausted(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Log the error, or count it when a line went out less than
 * ACCEPTPAUSE_LOG_MS ago; the next line says how many were not logged. */
static void acceptpause_log(struct acceptpause *p, int err, int paused)
{
	uint64_t now = util_mono_ms();
	char more[80] = "";
	if (p->logged && now - p->logged_ms < ACCEPTPAUSE_LOG_MS) {
		p->quiet++;
		return;
	}
	if (p->quiet)
		snprintf(more, sizeof more, " (%lu more accept errors since the last such line)",
		         p->quiet);
	log_warn(p->module, "%s: accept: %s%s%s", p->addr, evutil_socket_error_to_string(err),
	         paused ? "; not accepting for 1 s" : "", more);
	p->logged = 1;
	p->logged_ms = now;
	p->quiet = 0;
}

/* The pause is over: accept again (a pause that fails again comes back to
 * the error callback). */
static void acceptpause_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acceptpause *p = arg;
	if (evconnlistener_enable(p->lev) < 0)
		log_err(p->module, "%s: cannot accept again after a pause", p->addr);
}

/* Stop accepting and set the timer that starts it again; 0, or -1 when
 * accepting goes on (logged). */
static int acceptpause_pause(struct acceptpause *p)
{
	struct timeval tv = {ACCEPTPAUSE_S, 0};
	if (evconnlistener_disable(p->lev) < 0) {
		log_err(p->module, "%s: cannot pause accepting", p->addr);
		return -1;
	}
	if (evtimer_add(p->resume, &tv) < 0) {
		log_err(p->module, "%s: cannot time a pause; accepting again at once", p->addr);
		if (evconnlistener_enable(p->lev) < 0)
			log_err(p->module, "%s: cannot accept again", p->addr);
		return -1;
	}
	return 0;
}

/* accept() failed with something other than a retry: pause when the
 * queued connection would only fail again, and log. */
static void acceptpause_error_cb(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct acceptpause *p = acceptpause_find(lev);
	if (!p) {
		log_err("acceptpause", "accept: %s on a listener of no one's",
		        evutil_socket_error_to_string(err));
		return;
	}
	int paused = acceptpause_exhausted(err) && acceptpause_pause(p) == 0;
	acceptpause_log(p, err, paused);
}

/* Take over lev's accept errors. */
struct acceptpause *acceptpause_attach(struct evconnlistener *lev, struct event_base *base,
                                       const char *module, const char *addr)
{
	struct acceptpause *p = calloc(1, sizeof *p);
	if (!p) {
		log_err(module, "%s: cannot set up the listener: out of memory", addr);
		return NULL;
	}
	p->lev = lev;
	p->resume = evtimer_new(base, acceptpause_resume_cb, p);
	if (!p->resume) {
		log_err(module, "%s: cannot set up the listener's timer", addr);
		free(p);
		return NULL;
	}
	snprintf(p->module, sizeof p->module, "%s", module);
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	pthread_mutex_lock(&acceptpause_lock);
	p->next = acceptpause_all;
	acceptpause_all = p;
	pthread_mutex_unlock(&acceptpause_lock);
	evconnlistener_set_error_cb(lev, acceptpause_error_cb);
	return p;
}

/* Unlink, and give the listener back libevent's own handling. */
void acceptpause_detach(struct acceptpause *p)
{
	if (!p)
		return;
	evconnlistener_set_error_cb(p->lev, NULL);
	pthread_mutex_lock(&acceptpause_lock);
	struct acceptpause **pp = &acceptpause_all;
	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
	pthread_mutex_unlock(&acceptpause_lock);
	event_free(p->resume);
	free(p);
}
