/*
 * The error log. Each line is formatted into one buffer and written with a
 * single write(2), so lines from concurrent threads never interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define LOG__LINE_MAX 4096

static _Atomic int log__level = BERTH_LOG_INFO;

void berth_log_set_level(berth_log_level_t level)
{
    atomic_store_explicit(&log__level, (int)level, memory_order_relaxed);
}

berth_log_level_t berth_log_get_level(void)
{
    return (berth_log_level_t)atomic_load_explicit(&log__level, memory_order_relaxed);
}

static const char *log__level_name(berth_log_level_t level)
{
    switch (level) {
    case BERTH_LOG_ERROR:
        return "error";
    case BERTH_LOG_WARN:
        return "warn";
    case BERTH_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void berth_log(berth_log_level_t level, const char *fmt, ...)
{
    char line[LOG__LINE_MAX];
    struct tm tm;
    time_t now;
    size_t n;
    int saved_errno = errno; /* logging must not disturb the caller's errno */
    va_list ap;

    if ((int)level > atomic_load_explicit(&log__level, memory_order_relaxed))
        return;

    now = time(NULL);
    gmtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%-5s ", log__level_name(level));

    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += (size_t)w;
    /* A truncated message keeps its newline so the next line starts clean. */
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';

    const char *p = line;
    while (n > 0) {
        ssize_t r = write(STDERR_FILENO, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += r;
        n -= (size_t)r;
    }
    errno = saved_errno;
}
