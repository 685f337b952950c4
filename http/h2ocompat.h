/*
 * The one place where berth's HTTP layer meets the differences between the
 * two libh2o it builds on (cmake/BerthH2O.cmake chooses):
 *
 *   BERTH_H2O_STREAMING=1  current h2o (2.3.0-DEV, the pinned commit): can
 *                          stream request bodies, has the security fixes
 *                          since 2018;
 *   BERTH_H2O_STREAMING=0  Debian 12's libh2o-evloop 2.2.5, the offline
 *                          fallback: request bodies arrive whole.
 *
 * Every other file of http/ uses only what both have in common (request,
 * response, header, socket, multithread and access-log calls are the same in
 * both, as berth uses them). Include this instead of <h2o.h> where a
 * difference matters.
 */
#ifndef BERTH_HTTP_H2OCOMPAT_H
#define BERTH_HTTP_H2OCOMPAT_H

#include <stdint.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/version.h>

#ifndef BERTH_H2O_STREAMING
#error "BERTH_H2O_STREAMING comes from cmake/BerthH2O.cmake (the berth_h2o target)"
#endif
#if BERTH_H2O_STREAMING && !(H2O_VERSION_MAJOR > 2 || (H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR >= 3))
#error "BERTH_H2O_STREAMING=1 needs h2o 2.3 or later"
#endif

/* How berth receives request bodies on this build, as `berth version` says
 * it. Both builds buffer each body whole for now. */
#define BERTH_H2O_REQUEST_BODIES "buffered whole"

/* http.timeout. On 2.2.5, HTTP/1's req_timeout covers a whole request, body
 * included, and is also the keep-alive idle timeout. Current h2o keeps that
 * meaning for req_timeout and adds req_io_timeout, a stall while reading a
 * request or writing its response (default 5 s); berth gives it the same
 * value, so that no request is cut sooner than on 2.2.5 (a slow chunk may
 * take all of http.timeout) and a stalled reader of a response is cut too.
 * HTTP/2's idle timeout is re-armed by every frame on both. */
static inline void berth_h2o_set_timeouts(h2o_globalconf_t *conf, uint64_t ms)
{
    conf->http1.req_timeout = ms;
#if BERTH_H2O_STREAMING
    conf->http1.req_io_timeout = ms;
#endif
    conf->http2.idle_timeout = ms;
}

/* http.maxchunksize: the largest request body, `max` bytes. Returns the
 * largest body an HTTP/2 client can send on this build: `max`, or less.
 *
 * Current h2o opens the receive window of a stream whose handler takes
 * bodies whole once, at its first DATA frame, to
 * http2.active_stream_window_size (16 MiB by default), and never again until
 * the body is complete (lib/http2/connection.c, handle_request_body_chunk):
 * a larger body stalls until the client gives up. 2.2.5 reopened the window
 * as bytes arrived. So the window is the whole chunk, and one byte more, so
 * that a body over the limit is still refused (REFUSED_STREAM) rather than
 * stalled; HTTP/2 windows stop at 2^31 - 1 bytes, which therefore bounds an
 * HTTP/2 body on current h2o until berth streams bodies. Memory is what it
 * was on 2.2.5: a client may send a whole chunk per stream without waiting. */
static inline uint64_t berth_h2o_set_max_body(h2o_globalconf_t *conf, uint64_t max)
{
    conf->max_request_entity_size = max;
#if BERTH_H2O_STREAMING
    const uint64_t window_max = 0x7fffffff;
    uint64_t window = max < window_max ? max + 1 : window_max;

    if (window > conf->http2.active_stream_window_size)
        conf->http2.active_stream_window_size = (uint32_t)window;
    return max < window_max ? max : window_max;
#else
    return max;
#endif
}

/* The socket whose input buffer holds the body of HTTP/1 request `req`, or
 * NULL. 2.2.5 leaves a body in the connection's input buffer and stops
 * reading until the response (see http/task.h). Current h2o moves the body
 * into a buffer of the connection's own, which it frees before the request's
 * pool (lib/http1.c, close_connection) and which berth cannot reach: there
 * the task owns a copy of the body from the start, as it does on HTTP/2. */
static inline h2o_socket_t *berth_h2o_body_socket(h2o_req_t *req)
{
#if BERTH_H2O_STREAMING
    (void)req;
    return NULL;
#else
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return NULL;
    return req->conn->callbacks->get_socket(req->conn);
#endif
}

static inline int berth_h2o__count_receiving(h2o_req_t *req, void *cbdata)
{
    if (req->input.method.len != 0)
        ++*(int *)cbdata;
    return 0;
}

/* 1 while a connection of `ctx` keeps a draining loop alive: an HTTP/2
 * connection that has not finished its graceful shutdown (GOAWAY, then its
 * streams), or an HTTP/1 request whose body is still arriving (it has a
 * method but has not reached a handler; requests being handled are counted
 * by their tasks). Idle HTTP/1 keep-alive connections do not count. */
static inline int berth_h2o_conns_busy(h2o_context_t *ctx)
{
    int receiving = 0;

#if BERTH_H2O_STREAMING
    /* Current h2o files each connection by state: HTTP/2 ones are in
     * `shutdown` from the GOAWAY on, HTTP/1 ones `active` from their first
     * request byte to the end of the response, `idle` otherwise. */
    if (ctx->_conns.num_conns.shutdown != 0)
        return 1;
    H2O_CONN_LIST_FOREACH(h2o_conn_t * conn, ({&ctx->_conns.active}), {
        if (conn->callbacks->foreach_request != NULL)
            conn->callbacks->foreach_request(conn, berth_h2o__count_receiving, &receiving);
    });
#else
    if (!h2o_linklist_is_empty(&ctx->http2._conns))
        return 1;
    H2O_HTTP1_CALLBACKS.foreach_request(ctx, berth_h2o__count_receiving, &receiving);
#endif
    return receiving != 0;
}

#endif
