/* The worker pool: N threads, each running its own event base that owns
 * its sessions. Other threads reach a worker only through typed messages. */
#ifndef PIMON_WORKER_H
#define PIMON_WORKER_H

#include <event2/util.h>
#include <stdint.h>

#include "server.h"

/* Per-worker counters: name, help. Defined once; summed on demand. */
#define WORKER_COUNTERS(X)                                                                         \
	X(sessions_opened, "sessions accepted")                                                    \
	X(sessions_closed, "sessions ended")                                                       \
	X(frames_in, "frames received")                                                            \
	X(bytes_in, "bytes received")                                                              \
	X(batches_in, "METRICS batches received")                                                  \
	X(alarms_in, "ALARM frames received")                                                      \
	X(rows_stored, "rows written to CSV files")                                                \
	X(rows_retimed, "rows stored at the server's time: their own was before 2020 or ahead")    \
	X(acks_out, "ACKs sent")                                                                   \
	X(bad_frames, "sessions closed for a bad frame")                                           \
	X(store_errors, "batches not stored (not acked)")                                          \
	X(timeouts, "heartbeat timeouts")                                                          \
	X(hello_timeouts, "connections closed for sending no HELLO in time")                       \
	X(refused, "connections refused over server.limits.max_sessions")                          \
	X(auth_failures, "HELLOs refused for a missing or wrong proof")                            \
	X(name_conflicts, "HELLOs refused: another agent of that name is connected")               \
	X(throttled, "times reading paused: output over server.limits.max_output")                 \
	X(stalled, "sessions closed: their peer read nothing for heartbeat.timeout")

enum worker_counter {
#define X(name, help) WC_##name,
	WORKER_COUNTERS(X)
#undef X
	    WC_COUNT
};

/* Start srv->nworkers threads and fill srv->workers; fatal on failure.
 * MUST be called by the main thread with signals blocked for the workers. */
void workers_start(struct server *srv);

/* Stop every worker: each closes its sessions and leaves its loop; then
 * join them. MUST be called by the main thread. */
void workers_stop(struct server *srv);

/* Give an accepted socket to the worker with the fewest sessions (ties:
 * lowest index). MUST be called by the accept thread. */
void workers_assign(struct server *srv, evutil_socket_t fd, const char *addr);

/* Ask worker w to close session sid with reason. Any thread. */
void worker_post_close(struct worker *w, uint64_t sid, const char *reason);

/* Ask worker w to send POLL on session sid. Any thread. */
void worker_post_poll(struct worker *w, uint64_t sid);

/* Sessions of every worker. Any thread. */
unsigned workers_sessions(const struct server *srv);

/* Session count of w. Any thread. */
unsigned worker_sessions(const struct worker *w);

/* Counter c of w. Any thread. */
uint64_t worker_counter(const struct worker *w, enum worker_counter c);

/* Add n to counter c. MUST be called by w's own thread. */
void worker_count(struct worker *w, enum worker_counter c, uint64_t n);

/* A session of w ended. MUST be called by w's own thread. */
void worker_session_ended(struct worker *w);

/* w's index in the pool. */
int worker_id(const struct worker *w);

/* Names and help texts of the counters, in enum order. */
extern const char *const worker_counter_names[];
extern const char *const worker_counter_help[];

#endif
