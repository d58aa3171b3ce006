#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_threshold = -1;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

log_level_t log_get_level(void)
{
    int lvl = atomic_load_explicit(&log_threshold, memory_order_relaxed);
    if (lvl < 0) {
        /* First use: the environment decides, so tests and the daemon share one switch. */
        lvl = log_parse_level(getenv("FEDGATE_LOG"));
        if (lvl < 0)
            lvl = LOG_LVL_INFO;
        atomic_store_explicit(&log_threshold, lvl, memory_order_relaxed);
    }
    return (log_level_t)lvl;
}

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
}

void log_vwrite(log_level_t level, const char *fmt, va_list ap)
{
    if (level > log_get_level())
        return;
    /* The date and time to the second, formatted once per second per thread: glibc's gmtime_r
       takes the process-wide time zone lock, and the gateway writes a line per message at info. */
    static _Thread_local struct {
        time_t sec;
        char text[80];
    } stamp = {-1, ""};
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != stamp.sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(stamp.text, sizeof(stamp.text), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        stamp.sec = ts.tv_sec;
    }
    int n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s ", stamp.text, ts.tv_nsec / 1000000,
                     log_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the newline */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_write(log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
