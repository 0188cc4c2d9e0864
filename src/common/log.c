/*
 * log.c - one timestamped line per event, written with a single write(2)
 * so lines from different threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"

static sl_log_level log_level = SL_LOG_INFO;
static int log_fd = 2;
static const char *const level_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void sl_logger_set_level(sl_log_level level) { log_level = level; }
sl_log_level sl_logger_get_level(void) { return log_level; }
void sl_logger_set_fd(int fd) { log_fd = fd; }

void sl_logger_write(sl_log_level level, const char *module, const char *fmt, ...)
{
    if (level < log_level || level >= SL_LOG_OFF) return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : SL_MIN((size_t)m, sizeof line - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}

void sl_panic(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_logger_write(SL_LOG_ERROR, "panic", "%s:%d: %s", file, line, msg);
    abort();
}
