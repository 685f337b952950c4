/*
 * A watchdog for HTTP/2 request bodies that stop arriving before berth sees
 * them, on current h2o.
 *
 * libh2o 2.2.5 re-armed an HTTP/2 connection's idle timeout (http.timeout)
 * on every frame, so a client that stalled mid-body lost its connection
 * after http.timeout. Current h2o suspends the idle timeout while a stream
 * waits on the server (h2o_http2_stream_set_blocked_by_server), and a
 * stream whose handler takes bodies whole waits so from its first DATA
 * frame: a stalled upload would hold its connection, and the part of the
 * body it buffered, forever. The watchdog gives such a connection what
 * 2.2.5 gave it: when it has bodies on their way in, nothing being answered,
 * and no byte has arrived for http.timeout, it is shut down (GOAWAY, then
 * closed after http.shutdowntimeout).
 *
 * HTTP/1 needs none of this (h2o's req_timeout and req_io_timeout cut it),
 * nor does 2.2.5: there the functions do nothing. Once berth streams
 * request bodies, h2o's own idle timeout covers the case and this goes.
 */
#ifndef BERTH_HTTP_BODYWATCH_H
#define BERTH_HTTP_BODYWATCH_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

typedef struct berth_bodywatch_entry {
    uint64_t conn_id;
    uint64_t progress; /* body bytes and requests seen on the connection */
    uint64_t since_ms; /* when progress last changed */
} berth_bodywatch_entry_t;

/* Per loop thread; zero-initialised. Loop thread only. */
typedef struct berth_bodywatch {
    berth_bodywatch_entry_t *entries;
    size_t n, cap;
    uint64_t last_sweep_ms;
} berth_bodywatch_t;

/* Looks at the connections of `ctx` at most once a second (call it from
 * the loop as often as convenient) and shuts down those whose bodies have
 * stalled for `timeout_ms`. Returns how many it shut down. */
size_t berth_bodywatch_sweep(berth_bodywatch_t *w, h2o_context_t *ctx, uint64_t now_ms, uint64_t timeout_ms);

/* Frees what the watchdog holds. */
void berth_bodywatch_dispose(berth_bodywatch_t *w);

#endif
