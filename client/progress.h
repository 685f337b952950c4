/*
 * Progress of a transfer on stderr: a bar redrawn in place on a terminal
 * (bytes, rate, ETA, where a resumed transfer started, retries so far),
 * plain lines every few seconds otherwise, nothing with --quiet.
 *
 * berth_progress_set/add may be called from several threads (parts mode);
 * drawing is rate-limited and serialized inside.
 */
#ifndef BERTH_CLIENT_PROGRESS_H
#define BERTH_CLIENT_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { BERTH_PROGRESS_QUIET, BERTH_PROGRESS_LINES, BERTH_PROGRESS_BAR } berth_progress_mode_t;

typedef struct berth_progress {
    berth_progress_mode_t mode;
    const char *verb; /* "push", "pull" */
    uint64_t total;
    _Atomic uint64_t done;
    _Atomic uint64_t resumed_from; /* offset the current run started from */
    _Atomic unsigned retries;
    double t0; /* monotonic seconds at start */
    _Atomic double last_draw; /* read without the lock to skip it cheaply */
    uint64_t line_interval_ms; /* plain lines: at most one per interval */
    int bar_drawn;
    pthread_mutex_t mu;
} berth_progress_t;

/* A snapshot, for formatting. */
typedef struct berth_progress_view {
    uint64_t done, total, resumed_from;
    unsigned retries;
    double elapsed_s; /* since start */
} berth_progress_view_t;

/* The mode for stderr: quiet when asked, a bar when stderr is a terminal
 * (and TERM is not "dumb"), else lines. */
berth_progress_mode_t berth_progress_mode_for_stderr(int quiet);

void berth_progress_init(berth_progress_t *p, berth_progress_mode_t mode, const char *verb, uint64_t total);
void berth_progress_destroy(berth_progress_t *p);

void berth_progress_set(berth_progress_t *p, uint64_t done);
/* Marks where a resumed transfer (re)started: shown as "resumed at". */
void berth_progress_resumed(berth_progress_t *p, uint64_t offset);
/* Counts a retry and prints `why` (one line, also on a terminal). */
void berth_progress_retry(berth_progress_t *p, const char *why);
/* A message line that does not break the bar. */
void berth_progress_note(berth_progress_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Final draw (the bar at its last value, then a newline). */
void berth_progress_finish(berth_progress_t *p);

/* "1.5 GiB", "16.0 MiB", "512 B" into buf. */
const char *berth_human_bytes(uint64_t n, char *buf, size_t len);

/* Formats one progress text: with bar_width > 0 a bar of that many cells
 * "[#####.....]" comes first. Returns buf. */
const char *berth_progress_format(const berth_progress_view_t *v, const char *verb, int bar_width, char *buf,
                                  size_t len);

#endif
