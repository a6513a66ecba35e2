/* The worker pool: threads with their own event bases and a message queue
 * each. The accept thread balances sessions by count. */
#include "worker.h"

#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "session.h"

enum wmsg_type { WMSG_NEW, WMSG_CLOSE, WMSG_POLL, WMSG_STOP };

/* A typed request to a worker. */
struct wmsg {
	struct wmsg *next;
	enum wmsg_type type;
	evutil_socket_t fd;
	uint64_t sid;
	char text[64]; /* peer address or close reason */
};

struct worker {
	int id;
	struct server *srv;
	pthread_t thread;
	struct event_base *base;
	struct event *notify;     /* made active to drain the queue */
	struct event *stop_timer; /* bounds how long a stop waits for flushes */
	struct session_set *set;
	int stopping;
	pthread_mutex_t qlock;
	struct wmsg *head, *tail; /* MUST hold qlock */
	atomic_uint sessions;     /* assigned and not yet ended */
	atomic_uint_fast64_t counters[WC_COUNT];
};

const char *const worker_counter_names[] = {
#define X(name, help) #name,
    WORKER_COUNTERS(X)
#undef X
};

const char *const worker_counter_help[] = {
#define X(name, help) help,
    WORKER_COUNTERS(X)
#undef X
};

/* Queue a message and wake the worker. Any thread. */
static void worker_post(struct worker *w, struct wmsg *m)
{
	m->next = NULL;
	pthread_mutex_lock(&w->qlock);
	if (w->tail)
		w->tail->next = m;
	else
		w->head = m;
	w->tail = m;
	pthread_mutex_unlock(&w->qlock);
	event_active(w->notify, EV_READ, 0);
}

/* Leave the loop once every session has drained, or at the deadline. */
static void worker_stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	event_base_loopexit(w->base, NULL);
}

/* Begin stopping: close sessions gracefully, bounded by a timer. */
static void worker_begin_stop(struct worker *w)
{
	w->stopping = 1;
	unsigned left = session_set_close_all(w->set, "shutdown");
	struct timeval tv = {left ? 2 : 0, 0};
	evtimer_add(w->stop_timer, &tv);
}

/* Take every queued message and act on it. Runs on the worker's thread. */
static void worker_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&w->qlock);
	struct wmsg *m = w->head;
	w->head = w->tail = NULL;
	pthread_mutex_unlock(&w->qlock);
	while (m) {
		struct wmsg *next = m->next;
		switch (m->type) {
		case WMSG_NEW:
			if (w->stopping) {
				evutil_closesocket(m->fd);
				worker_session_ended(w);
			} else {
				session_open(w->set, m->fd, m->text);
			}
			break;
		case WMSG_CLOSE:
			session_set_close(w->set, m->sid, m->text);
			break;
		case WMSG_POLL:
			session_set_poll(w->set, m->sid);
			break;
		case WMSG_STOP:
			worker_begin_stop(w);
			break;
		}
		free(m);
		m = next;
	}
}

/* The worker thread: run the base until stopped. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->set = session_set_create(w->srv, w, w->base);
	if (!w->set)
		log_fatal("worker", "worker %d: cannot create its session set", w->id);
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	session_set_destroy(w->set);
	w->set = NULL;
	return NULL;
}

/* Start the pool with signals blocked in the new threads. */
void workers_start(struct server *srv)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
	if (!srv->workers)
		log_fatal("worker", "out of memory");
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = calloc(1, sizeof *w);
		if (!w)
			log_fatal("worker", "out of memory");
		w->id = i;
		w->srv = srv;
		pthread_mutex_init(&w->qlock, NULL);
		w->base = event_base_new();
		if (!w->base)
			log_fatal("worker", "worker %d: cannot create an event base", i);
		w->notify = event_new(w->base, -1, 0, worker_notify_cb, w);
		w->stop_timer = evtimer_new(w->base, worker_stop_timer_cb, w);
		if (!w->notify || !w->stop_timer)
			log_fatal("worker", "worker %d: cannot create its events", i);
		srv->workers[i] = w;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			log_fatal("worker", "worker %d: cannot start its thread", i);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_info("worker", "%d workers started", srv->nworkers);
}

/* Stop and join every worker, then free them. */
void workers_stop(struct server *srv)
{
	for (int i = 0; i < srv->nworkers; i++) {
		struct wmsg *m = calloc(1, sizeof *m);
		if (!m)
			log_fatal("worker", "out of memory");
		m->type = WMSG_STOP;
		worker_post(srv->workers[i], m);
	}
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = srv->workers[i];
		pthread_join(w->thread, NULL);
		for (struct wmsg *m = w->head; m;) {
			struct wmsg *next = m->next;
			if (m->type == WMSG_NEW)
				evutil_closesocket(m->fd);
			free(m);
			m = next;
		}
		event_free(w->notify);
		event_free(w->stop_timer);
		event_base_free(w->base);
		pthread_mutex_destroy(&w->qlock);
		free(w);
	}
	free(srv->workers);
	srv->workers = NULL;
}

/* Least-loaded worker, ties to the lowest index. */
void workers_assign(struct server *srv, evutil_socket_t fd, const char *addr)
{
	struct worker *best = srv->workers[0];
	unsigned best_n = atomic_load(&best->sessions);
	for (int i = 1; i < srv->nworkers; i++) {
		unsigned n = atomic_load(&srv->workers[i]->sessions);
		if (n < best_n) {
			best = srv->workers[i];
			best_n = n;
		}
	}
	if (workers_sessions(srv) >= (unsigned)srv->cfg->server.max_sessions) {
		/* Counted on the worker it would have gone to; logged 1 in 1000. */
		if (atomic_fetch_add(&best->counters[WC_refused], 1) % 1000 == 0)
			log_warn("worker", "%s: refused: %d sessions is server.limits.max_sessions",
			         addr, srv->cfg->server.max_sessions);
		evutil_closesocket(fd);
		return;
	}
	struct wmsg *m = calloc(1, sizeof *m);
	if (!m) {
		log_err("worker", "out of memory: dropping connection from %s", addr);
		evutil_closesocket(fd);
		return;
	}
	atomic_fetch_add(&best->sessions, 1);
	m->type = WMSG_NEW;
	m->fd = fd;
	strncpy(m->text, addr, sizeof m->text - 1);
	worker_post(best, m);
}

/* Post a close for session sid. */
void worker_post_close(struct worker *w, uint64_t sid, const char *reason)
{
	struct wmsg *m = calloc(1, sizeof *m);
	if (!m) {
		log_err("worker", "out of memory: cannot close session %llu",
		        (unsigned long long)sid);
		return;
	}
	m->type = WMSG_CLOSE;
	m->sid = sid;
	strncpy(m->text, reason, sizeof m->text - 1);
	worker_post(w, m);
}

/* Post a poll for session sid. */
void worker_post_poll(struct worker *w, uint64_t sid)
{
	struct wmsg *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->type = WMSG_POLL;
	m->sid = sid;
	worker_post(w, m);
}

/* Sessions assigned to w and not yet ended. */
unsigned worker_sessions(const struct worker *w)
{
	return atomic_load(&w->sessions);
}

/* Sum of every worker's sessions. */
unsigned workers_sessions(const struct server *srv)
{
	unsigned n = 0;
	for (int i = 0; i < srv->nworkers; i++)
		n += atomic_load(&srv->workers[i]->sessions);
	return n;
}

/* Read one counter. */
uint64_t worker_counter(const struct worker *w, enum worker_counter c)
{
	return atomic_load_explicit(&w->counters[c], memory_order_relaxed);
}

/* Bump one counter; only the owner writes, so a relaxed add suffices. */
void worker_count(struct worker *w, enum worker_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&w->counters[c], n, memory_order_relaxed);
}

/* One of w's sessions is gone; once stopping and empty, leave the loop. */
void worker_session_ended(struct worker *w)
{
	atomic_fetch_sub(&w->sessions, 1);
	if (w->stopping && atomic_load(&w->sessions) == 0)
		event_base_loopexit(w->base, NULL);
}

/* Index of w in the pool. */
int worker_id(const struct worker *w)
{
	return w->id;
}
