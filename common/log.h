/* Logging to stderr with a level, journald-friendly. */
#ifndef PIMON_LOG_H
#define PIMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_NOTICE = 5, LOG_INFO = 6, LOG_DEBUG = 7 };

/* Set the program name and the most verbose level printed. Call once from
 * main before any thread starts. Also routes libevent's messages here. */
void log_init(const char *prog, enum log_level max);

/* Print one line: level, module and message. Safe from any thread. */
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log at LOG_ERR and exit with status 1. */
void log_fatal(const char *module, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#define log_err(mod, ...)    log_msg(LOG_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...)   log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_notice(mod, ...) log_msg(LOG_NOTICE, mod, __VA_ARGS__)
#define log_info(mod, ...)   log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...)  log_msg(LOG_DEBUG, mod, __VA_ARGS__)

#endif
