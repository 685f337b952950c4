/*
 * The HTTP/2 stalled-body watchdog; see http/bodywatch.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/bodywatch.h"
#include "http/h2ocompat.h"

#if BERTH_H2O_STREAMING

typedef struct bodywatch__scan {
    size_t receiving; /* HTTP/2 requests whose body is on its way in */
    size_t handled;   /* requests berth is handling or answering */
    size_t http1;
    uint64_t progress;
} bodywatch__scan_t;

static int bodywatch__scan_req(h2o_req_t *req, void *cbdata)
{
    bodywatch__scan_t *s = cbdata;

    if (req->version < 0x200) {
        s->http1++;
    } else if (req->process_called) {
        s->handled++;
    } else if (req->input.method.len != 0) {
        s->receiving++;
        s->progress += (uint64_t)req->req_body_bytes_received + 1;
    }
    return 0;
}

static const berth_bodywatch_entry_t *bodywatch__find(const berth_bodywatch_entry_t *e, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].conn_id == id)
            return &e[i];
    return NULL;
}

size_t berth_bodywatch_sweep(berth_bodywatch_t *w, h2o_context_t *ctx, uint64_t now_ms, uint64_t timeout_ms)
{
    berth_bodywatch_entry_t *old = w->entries;
    size_t nold = w->n, cut = 0;

    if (now_ms - w->last_sweep_ms < 1000)
        return 0;
    w->last_sweep_ms = now_ms;
    w->entries = NULL;
    w->n = w->cap = 0;

    /* A connection with a stalled stream is `active` (connections being
     * shut down already have their deadline: http2.graceful_shutdown_timeout). */
    H2O_CONN_LIST_FOREACH(h2o_conn_t * conn, ({&ctx->_conns.active}), {
        bodywatch__scan_t s = {0};
        const berth_bodywatch_entry_t *prev;
        berth_bodywatch_entry_t e;

        if (conn->callbacks->foreach_request == NULL || conn->callbacks->close_idle_connection == NULL)
            continue;
        conn->callbacks->foreach_request(conn, bodywatch__scan_req, &s);
        if (s.receiving == 0 || s.handled != 0 || s.http1 != 0)
            continue;
        e.conn_id = conn->id;
        e.progress = s.progress;
        e.since_ms = now_ms;
        if ((prev = bodywatch__find(old, nold, conn->id)) != NULL && prev->progress == s.progress)
            e.since_ms = prev->since_ms;
        if (now_ms - e.since_ms >= timeout_ms) {
            berth_log_info("HTTP/2 connection %llu: no request body byte for %llu ms: shutting it down",
                           (unsigned long long)conn->id, (unsigned long long)(now_ms - e.since_ms));
            /* On HTTP/2: GOAWAY, and the connection closes once its
             * streams are gone or graceful_shutdown_timeout passed. */
            conn->callbacks->close_idle_connection(conn);
            cut++;
            continue;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap != 0 ? 2 * w->cap : 16;
            berth_bodywatch_entry_t *p = realloc(w->entries, cap * sizeof(*p));
            if (p == NULL)
                continue; /* forgotten: its clock restarts at the next sweep */
            w->entries = p;
            w->cap = cap;
        }
        w->entries[w->n++] = e;
    });
    free(old);
    return cut;
}

#else

size_t berth_bodywatch_sweep(berth_bodywatch_t *w, h2o_context_t *ctx, uint64_t now_ms, uint64_t timeout_ms)
{
    (void)w, (void)ctx, (void)now_ms, (void)timeout_ms;
    return 0;
}

#endif

void berth_bodywatch_dispose(berth_bodywatch_t *w)
{
    free(w->entries);
    memset(w, 0, sizeof(*w));
}
