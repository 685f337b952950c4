/*
 * Progress on stderr. See progress.h.
 */
#include "client/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double progress__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

berth_progress_mode_t berth_progress_mode_for_stderr(int quiet)
{
    const char *term = getenv("TERM");

    if (quiet)
        return BERTH_PROGRESS_QUIET;
    if (isatty(STDERR_FILENO) && (term == NULL || strcmp(term, "dumb") != 0))
        return BERTH_PROGRESS_BAR;
    return BERTH_PROGRESS_LINES;
}

void berth_progress_init(berth_progress_t *p, berth_progress_mode_t mode, const char *verb, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->verb = verb;
    p->total = total;
    p->t0 = progress__now();
    atomic_init(&p->last_draw, 0);
    p->line_interval_ms = 2000;
    const char *iv = getenv("BERTH_PROGRESS_INTERVAL_MS");
    if (iv != NULL && *iv != '\0')
        p->line_interval_ms = strtoull(iv, NULL, 10);
    pthread_mutex_init(&p->mu, NULL);
}

void berth_progress_destroy(berth_progress_t *p)
{
    pthread_mutex_destroy(&p->mu);
}

const char *berth_human_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;

    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

static void progress__eta(double secs, char *buf, size_t len)
{
    if (secs < 0 || secs > 360000) {
        snprintf(buf, len, "--:--");
        return;
    }
    unsigned s = (unsigned)(secs + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%02u:%02u", s / 60, s % 60);
}

const char *berth_progress_format(const berth_progress_view_t *v, const char *verb, int bar_width, char *buf,
                                  size_t len)
{
    char done[32], total[32], rate[32], from[32], eta[32], bar[256];
    uint64_t moved = v->done > v->resumed_from ? v->done - v->resumed_from : 0;
    double bps = v->elapsed_s > 0.05 ? (double)moved / v->elapsed_s : 0;
    unsigned pct = v->total > 0 ? (unsigned)(v->done * 100 / v->total) : 100;
    size_t k = 0;

    if (pct > 100)
        pct = 100;
    bar[0] = '\0';
    if (bar_width > 0) {
        if (bar_width > (int)sizeof(bar) - 4)
            bar_width = (int)sizeof(bar) - 4;
        int fill = (int)((uint64_t)bar_width * pct / 100);
        bar[k++] = '[';
        for (int i = 0; i < bar_width; i++)
            bar[k++] = i < fill ? '#' : (i == fill ? '>' : '.');
        bar[k++] = ']';
        bar[k++] = ' ';
        bar[k] = '\0';
    }
    berth_human_bytes(v->done, done, sizeof(done));
    berth_human_bytes(v->total, total, sizeof(total));
    berth_human_bytes((uint64_t)bps, rate, sizeof(rate));
    progress__eta(bps > 0 ? (double)(v->total - (v->done < v->total ? v->done : v->total)) / bps : -1, eta,
                  sizeof(eta));
    int n = snprintf(buf, len, "%s%s %s / %s %3u%% %s/s ETA %s", bar, verb, done, total, pct, rate, eta);
    if (n > 0 && (size_t)n < len && v->resumed_from > 0)
        n += snprintf(buf + n, len - (size_t)n, " resumed at %s",
                      berth_human_bytes(v->resumed_from, from, sizeof(from)));
    if (n > 0 && (size_t)n < len && v->retries > 0)
        snprintf(buf + n, len - (size_t)n, " retries %u", v->retries);
    return buf;
}

static int progress__width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 80;
}

static void progress__view(berth_progress_t *p, berth_progress_view_t *v)
{
    v->done = atomic_load(&p->done);
    v->total = p->total;
    v->resumed_from = atomic_load(&p->resumed_from);
    v->retries = atomic_load(&p->retries);
    v->elapsed_s = progress__now() - p->t0;
}

/* Called with p->mu held. */
static void progress__draw(berth_progress_t *p, int final)
{
    berth_progress_view_t v;
    char line[512];

    progress__view(p, &v);
    if (p->mode == BERTH_PROGRESS_BAR) {
        int width = progress__width();
        /* The text takes about 70 columns with every field shown. */
        int bar = width - 75;
        if (bar < 10)
            bar = 10;
        berth_progress_format(&v, p->verb, bar, line, sizeof(line));
        line[width - 1 < (int)sizeof(line) ? width - 1 : (int)sizeof(line) - 1] = '\0';
        fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
        p->bar_drawn = !final;
    } else if (p->mode == BERTH_PROGRESS_LINES) {
        berth_progress_format(&v, p->verb, 0, line, sizeof(line));
        fprintf(stderr, "berth: %s\n", line);
    }
    fflush(stderr);
}

static void progress__maybe_draw(berth_progress_t *p)
{
    if (p->mode == BERTH_PROGRESS_QUIET)
        return;
    double now = progress__now();
    double gap = p->mode == BERTH_PROGRESS_BAR ? 0.1 : (double)p->line_interval_ms / 1000.0;
    if (now - atomic_load(&p->last_draw) < gap)
        return;
    if (pthread_mutex_trylock(&p->mu) != 0)
        return;
    if (now - atomic_load(&p->last_draw) >= gap) {
        atomic_store(&p->last_draw, now);
        progress__draw(p, 0);
    }
    pthread_mutex_unlock(&p->mu);
}

void berth_progress_set(berth_progress_t *p, uint64_t done)
{
    atomic_store(&p->done, done);
    progress__maybe_draw(p);
}

void berth_progress_resumed(berth_progress_t *p, uint64_t offset)
{
    atomic_store(&p->resumed_from, offset);
    atomic_store(&p->done, offset);
}

static void progress__line(berth_progress_t *p, const char *text)
{
    pthread_mutex_lock(&p->mu);
    if (p->mode == BERTH_PROGRESS_BAR && p->bar_drawn)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "berth: %s\n", text);
    if (p->mode == BERTH_PROGRESS_BAR && p->bar_drawn)
        progress__draw(p, 0);
    fflush(stderr);
    pthread_mutex_unlock(&p->mu);
}

void berth_progress_retry(berth_progress_t *p, const char *why)
{
    atomic_fetch_add(&p->retries, 1);
    if (p->mode != BERTH_PROGRESS_QUIET)
        progress__line(p, why);
}

void berth_progress_note(berth_progress_t *p, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    if (p->mode == BERTH_PROGRESS_QUIET)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    progress__line(p, text);
}

void berth_progress_finish(berth_progress_t *p)
{
    if (p->mode == BERTH_PROGRESS_QUIET)
        return;
    pthread_mutex_lock(&p->mu);
    progress__draw(p, 1);
    pthread_mutex_unlock(&p->mu);
}
