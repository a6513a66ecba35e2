/* Running server.notify.command for every fire and resolve: the alarm in
 * the environment (never in a shell string), at most max_running at once,
 * each killed at its timeout, failures logged. Commands run from the main
 * thread's event base; alarms are submitted from any thread. */
#ifndef PIMON_NOTIFIER_H
#define PIMON_NOTIFIER_H

#include <event2/event.h>

#include "alarm.h"
#include "config.h"

/* Alarms waiting for a free slot, at most; more are dropped (logged). */
#define NOTIFIER_QUEUE_MAX 1000

struct notifier;

/* A notifier on base (the main thread's) set up from cfg; NULL on error. */
struct notifier *notifier_create(struct event_base *base, const struct pimon_config *cfg);

/* Take the command, timeout and limit of cfg (a reload); what is queued
 * or running goes on. The main thread only. */
int notifier_configure(struct notifier *n, const struct pimon_config *cfg);

/* Queue ev for the command. Any thread. */
void notifier_submit(struct notifier *n, const struct alarm_event *ev);

/* Commands started, finished with status 0, and failed (a non-zero exit,
 * a signal, a timeout or no start), and alarms dropped. Any thread. */
void notifier_counts(struct notifier *n, uint64_t *started, uint64_t *ok, uint64_t *failed,
                     uint64_t *dropped);

/* Kill what still runs, reap it and free everything. The main thread only. */
void notifier_destroy(struct notifier *n);

#endif
