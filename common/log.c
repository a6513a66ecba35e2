/* Logging to stderr with a level: "<N>" prefixes under journald, a
 * timestamp on a terminal or file. */
#include "log.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_prog = "pimon";
static enum log_level log_max = LOG_INFO;
static int log_journal;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* libevent's own messages go through the same log. */
static void log_libevent(int severity, const char *msg)
{
	enum log_level level = LOG_DEBUG;
	if (severity == EVENT_LOG_ERR)
		level = LOG_ERR;
	else if (severity == EVENT_LOG_WARN)
		level = LOG_WARN;
	else if (severity == EVENT_LOG_MSG)
		level = LOG_INFO;
	log_msg(level, "libevent", "%s", msg);
}

/* Set program name, verbosity and where libevent logs. */
void log_init(const char *prog, enum log_level max)
{
	log_prog = prog;
	log_max = max;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
	event_set_log_callback(log_libevent);
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level level, const char *module,
                                                           const char *fmt, va_list ap)
{
	char line[2048];
	int n;
	if (log_journal) {
		n = snprintf(line, sizeof line, "<%d>%s: ", (int)level, module);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof line,
		             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s: ", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		             ts.tv_nsec / 1000000, log_prog, level_names[level], module);
	}
	if (n < 0)
		return;
	if ((size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s\n", line);
	pthread_mutex_unlock(&log_lock);
}

/* Print one log line if level is within the configured verbosity. */
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	if (level > log_max)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, module, fmt, ap);
	va_end(ap);
}

/* Log an error and exit 1. */
void log_fatal(const char *module, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_ERR, module, fmt, ap);
	va_end(ap);
	exit(1);
}
