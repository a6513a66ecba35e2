/* The Prometheus remote_write sender: one thread per receiver of
 * server.remote_write that reads the committed raw rows of every host
 * from its own cursors, POSTs them as WriteRequests, and moves and
 * persists the cursors after each 2xx, so a receiver gets every stored
 * row once (docs/REMOTE_WRITE.md). */
#ifndef PIMON_REMOTE_WRITE_H
#define PIMON_REMOTE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Counters per receiver: name, help. Defined once; read by /metrics and
 * /api/v1/stats. */
#define REMOTE_WRITE_COUNTERS(X)                                                                   \
	X(samples_sent, "samples the receiver accepted (2xx)")                                     \
	X(samples_failed, "samples of requests the receiver refused with a 4xx other than 429, "   \
	                  "not sent again")                                                        \
	X(samples_dropped, "samples older than max_age, not sent")                                 \
	X(stale_sent, "stale markers the receiver accepted, for series of hosts that went down")   \
	X(requests, "requests sent, retries included")                                             \
	X(bytes_sent, "bytes of requests the receiver accepted (2xx), as sent: snappy compressed") \
	X(retries, "requests sent again after a 5xx, a 429 or a network error")                    \
	X(files_lost, "raw files that went before the receiver had all of their rows")

enum remote_write_counter {
#define X(name, help) RWC_##name,
	REMOTE_WRITE_COUNTERS(X)
#undef X
	    RWC_COUNT
};

extern const char *const remote_write_counter_names[];
extern const char *const remote_write_counter_help[];

struct remote_write;

/* A sender for cfg's receivers over the data folder's hosts (data_fd and
 * hosts_fd borrowed, open while it lives; cfg too), each receiver's
 * cursors read from <data_dir>/remote_write/<name>/. NULL on a setup
 * error (logged). MUST be called before any other thread starts. */
struct remote_write *remote_write_create(const struct pimon_config *cfg, int data_fd, int hosts_fd);

/* Start the receivers' threads. 0 or -1 (logged). */
int remote_write_start(struct remote_write *rw);

/* Stop the threads (a request in flight is abandoned, to be sent again). */
void remote_write_stop(struct remote_write *rw);

/* Free a sender that is not running. NULL is fine. */
void remote_write_destroy(struct remote_write *rw);

/* Non-zero while some receiver has not sent every row of host's closed raw
 * file <metric>.<ms>.csv (also when it has not started on the metric). Any
 * thread. */
int remote_write_holds(struct remote_write *rw, const char *host, const char *metric, uint64_t ms);

/* Host went down at t_ms: each receiver sends stale markers for the
 * series of it that it sent, once it has sent the host's rows. Any thread. */
void remote_write_host_down(struct remote_write *rw, const char *host, uint64_t t_ms);

/* Receivers, their names, counters and lag (seconds between now and the
 * oldest sample not yet accepted; 0 when caught up). Any thread. */
size_t remote_write_count(const struct remote_write *rw);
const char *remote_write_name(const struct remote_write *rw, size_t i);
uint64_t remote_write_counter(const struct remote_write *rw, size_t i, enum remote_write_counter c);
double remote_write_lag(const struct remote_write *rw, size_t i);

#endif
