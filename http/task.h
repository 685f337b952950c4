/*
 * Handing a request's blocking work to the worker pool and its answer back
 * to the event loop that owns the request.
 *
 * A task is created on the loop thread for one request. Its `work` callback
 * runs on a worker thread and may touch only the task (never the h2o_req_t,
 * its pool or h2o); its `done` callback runs back on the owning loop thread,
 * where it answers the request. A task may be submitted again from `done`
 * (a blob GET reads one slice per submission), one submission at a time.
 *
 * Lifetime: the client may vanish while a worker runs (an HTTP/2
 * RST_STREAM, a closed connection). The task then outlives the request:
 * `done` is called with req == NULL, and the task is freed once both the
 * request is gone and no submission is pending.
 *
 * The request body is the task's for as long as a worker may read it, by
 * ownership, never by a lock: nothing on the loop thread ever waits for a
 * worker. Where h2o frees the body buffer before the request (HTTP/2, and
 * HTTP/1 on current h2o), the task holds a second mapping of h2o's body file
 * or a copy from the start. On HTTP/1 with libh2o 2.2.5 the body stays in
 * the connection's input buffer (2.2.5 stops reading the socket once a body
 * is complete and disposes of the request after the response, which `done`
 * sends), and should the request go away while a worker reads it, the task
 * takes that buffer from the socket before h2o frees it (http/h2ocompat.h).
 */
#ifndef BERTH_HTTP_TASK_H
#define BERTH_HTTP_TASK_H

#include <h2o.h>

#include "core/workq.h"

typedef struct berth_http_loop berth_http_loop_t;
typedef struct berth_task berth_task_t;

typedef void (*berth_task_work_cb)(berth_task_t *t);
typedef void (*berth_task_done_cb)(berth_task_t *t, h2o_req_t *req);

/* A request body as a worker reads it. `base`/`len` are valid from the
 * task's creation until berth_task_drop_body or the task's end; the rest is
 * the loop thread's. */
typedef struct berth_body {
    const char *base; /* "" when the request has no body */
    size_t len;
    h2o_socket_t *sock;  /* HTTP/1 on 2.2.5: base lies in this socket's input buffer */
    h2o_buffer_t *taken; /* HTTP/1 on 2.2.5: that buffer, once taken from the socket */
    void *map;           /* otherwise: a second mapping of h2o's body file */
    size_t map_len;
    char *copy; /* or a copy */
} berth_body_t;

struct berth_task {
    berth_job_t job; /* must stay first: the worker gets a berth_job_t * */
    h2o_multithread_message_t msg;
    berth_http_loop_t *loop;
    h2o_req_t *req; /* NULL once the request is disposed (loop thread only) */
    berth_task_work_cb work;
    berth_task_done_cb done;
    void (*dispose)(berth_task_t *t); /* frees what the handler put in its state; may be NULL */
    unsigned pending;                 /* submissions not yet done (loop thread only) */
    berth_body_t body;                /* what `work` reads; see above */

    /* Handler state follows; allocate with berth_task_new(..., sizeof(mine), ...). */
};

/* Per-loop-thread part of the task machinery; see http/server.c. */
struct berth_http_loop {
    h2o_context_t ctx;
    h2o_multithread_receiver_t task_receiver;
    berth_workq_t *workq;
    unsigned inflight; /* tasks alive on this loop */
};

/* Creates a task of `size` bytes (>= sizeof(berth_task_t), zeroed past the
 * header) bound to `req` on the calling loop thread. With `with_body`, the
 * request body becomes readable by `work` (see above). Never fails (aborts
 * on OOM like h2o). */
berth_task_t *berth_task_new(berth_http_loop_t *loop, h2o_req_t *req, size_t size, int with_body,
                             berth_task_work_cb work, berth_task_done_cb done);

/* Runs t->work on a worker, then t->done on the loop thread. */
void berth_task_submit(berth_task_t *t);

/* Lets go of the body once the worker has stored it, so that memory and
 * buffer files go back before the response is sent. Loop thread, from
 * `done` (no submission running). */
void berth_task_drop_body(berth_task_t *t);

/* Called once per loop thread at start and at stop. */
void berth_task_loop_init(berth_http_loop_t *loop, berth_workq_t *workq);
void berth_task_loop_dispose(berth_http_loop_t *loop);

#endif
