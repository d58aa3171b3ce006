/*
 * Logging API. One line per call, written with a single write(2) so lines from several worker
 * threads never interleave. Callers that log peer-triggerable events should rate-limit them.
 * Message bodies must never be passed here unless EnableLoggingAllMessageBodies is on.
 */
#pragma once

#include <stdarg.h>

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

/* Process-wide threshold; messages above it are dropped. Default: LOG_LVL_INFO, or $FEDGATE_LOG. */
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int log_parse_level(const char *name);

void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(log_level_t level, const char *fmt, va_list ap);

#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LVL_DEBUG)                                                      \
            log_write(LOG_LVL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)
