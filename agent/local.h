/* Local alarms: a Unix socket, readable and writable by its owner only,
 * where `pimon-agent alarm` hands the running agent an alarm to send.
 *
 * The exchange is one line each way:
 *   client: LEVEL TAB NAME TAB MESSAGE LF   (LEVEL: ok, warning, critical, unknown)
 *   agent:  "ok" LF, or "error: why" LF
 * Single-threaded: everything runs on the agent's event base. */
#ifndef PIMON_LOCAL_H
#define PIMON_LOCAL_H

#include <event2/event.h>
#include <stdint.h>

/* Longest request line, newline included. */
#define LOCAL_LINE_MAX 512

/* Called for each valid request; return 0 if the alarm was queued. */
typedef int (*local_alarm_fn)(void *arg, uint8_t level, const char *name, const char *message);

struct local;

/* Listen on path (a stale socket there is replaced; a live one is not);
 * NULL on error (logged). */
struct local *local_create(struct event_base *base, const char *path, local_alarm_fn fn, void *arg);

/* Close every connection, remove the socket file and free. NULL is a no-op. */
void local_destroy(struct local *l);

/* Parse a request line (without its newline) into level, name and message
 * (pointers into line, which is modified). 0, or -1 with *why set. */
int local_parse(char *line, uint8_t *level, const char **name, const char **message,
                const char **why);

/* Send one alarm to the agent listening on path and wait for its answer
 * (timeout_ms at most). 0 when the agent took it; 1 when it refused it
 * (why in answer); -1 when it could not be reached (errno kept). */
int local_send(const char *path, const char *level, const char *name, const char *message,
               int timeout_ms, char *answer, size_t size);

#endif
