/*
 * log.h - one line per event: "2026-11-22T02:14:22.123Z INFO  storage: msg".
 *
 * Thread-safe (one write(2) per line). Modules pass their name so a line can
 * be grepped to its source. Operating errors are logged once where they are
 * first seen, with a message a person can act on.
 */
#ifndef SL_COMMON_LOG_H
#define SL_COMMON_LOG_H

#include "common/base.h"

typedef enum { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF } sl_log_level;

void sl_logger_set_level(sl_log_level level);
sl_log_level sl_logger_get_level(void);
/* Log to this fd (default 2). */
void sl_logger_set_fd(int fd);
void sl_logger_write(sl_log_level level, const char *module, const char *fmt, ...) SL_PRINTF(3, 4);

#define SL_DEBUG(mod, ...) do { if (sl_logger_get_level() <= SL_LOG_DEBUG) sl_logger_write(SL_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define SL_INFO(mod, ...) sl_logger_write(SL_LOG_INFO, mod, __VA_ARGS__)
#define SL_WARN(mod, ...) sl_logger_write(SL_LOG_WARN, mod, __VA_ARGS__)
#define SL_ERROR(mod, ...) sl_logger_write(SL_LOG_ERROR, mod, __VA_ARGS__)

#endif
