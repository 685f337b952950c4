/*
 * The error log: leveled lines on stderr, one line per event,
 * "2026-11-22T10:00:00Z warn  message". Thread-safe (each line is one write).
 * The access log is h2o's, configured in http/server.c.
 */
#ifndef BERTH_CORE_LOG_H
#define BERTH_CORE_LOG_H

#include "core/config.h"

void berth_log_set_level(berth_log_level_t level);
berth_log_level_t berth_log_get_level(void);
void berth_log(berth_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define berth_log_error(...) berth_log(BERTH_LOG_ERROR, __VA_ARGS__)
#define berth_log_warn(...) berth_log(BERTH_LOG_WARN, __VA_ARGS__)
#define berth_log_info(...) berth_log(BERTH_LOG_INFO, __VA_ARGS__)
#define berth_log_debug(...) berth_log(BERTH_LOG_DEBUG, __VA_ARGS__)

#endif
