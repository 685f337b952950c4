/*
 * Handing a request's blocking work to the worker pool and its answer back
 * to the event loop that owns the request.
 *
 * A task is created on the loop thread for one request. Its `work` callback
 * runs on a worker thread and may touch only the task (never the h2o_req_t,
 * its pool or h2o); its `done` callback runs back on the owning loop thread,
 * where it answers the request. A task may be submitted several times (a
 * blob GET reads one slice per submission).
 *
 * Lifetime: the client may vanish while a worker runs (HTTP/2 RST_STREAM,
 * a closed connection). The task then outlives the request: `done` is called
 * with req == NULL, and the task is freed once both the request is gone and
 * no submission is pending. The request body is pinned for the worker: on
 * HTTP/2 the task maps or copies h2o's body buffer, on HTTP/1 the
 * request's disposal waits until the worker has let go of the body.
 */
#ifndef BERTH_HTTP_TASK_H
#define BERTH_HTTP_TASK_H

#include <pthread.h>
#include <h2o.h>

#include "core/workq.h"

typedef struct berth_http_loop berth_http_loop_t;
typedef struct berth_task berth_task_t;

typedef void (*berth_task_work_cb)(berth_task_t *t);
typedef void (*berth_task_done_cb)(berth_task_t *t, h2o_req_t *req);

struct berth_task {
    berth_job_t job;            /* must stay first: the worker gets a berth_job_t * */
    h2o_multithread_message_t msg;
    berth_http_loop_t *loop;
    h2o_req_t *req;             /* NULL once the request is disposed (loop thread only) */
    berth_task_work_cb work;
    berth_task_done_cb done;
    void (*dispose)(berth_task_t *t); /* frees what the handler put in its state; may be NULL */
    unsigned pending;           /* submissions not yet done (loop thread only) */

    /* The request body, readable by `work` between berth_task_body_acquire
     * and _release. */
    pthread_mutex_t body_mutex;
    const char *body;
    size_t body_len;
    int body_owned;             /* the task holds its own reference (HTTP/2) */
    void *own_map;              /* second mapping of h2o's body file, or NULL */
    size_t own_map_len;
    char *own_copy;             /* or a copy */
    int body_gone;              /* the request (and its HTTP/1 body) was disposed */

    /* Handler state follows; allocate with berth_task_new(req, sizeof(mine)). */
};

/* Per-loop-thread part of the task machinery; see http/server.c. */
struct berth_http_loop {
    h2o_context_t ctx;
    h2o_multithread_receiver_t task_receiver;
    berth_workq_t *workq;
    unsigned inflight;          /* tasks alive on this loop */
};

/* Creates a task of `size` bytes (>= sizeof(berth_task_t), zeroed past the
 * header) bound to `req` on the calling loop thread. If `with_body`, the
 * request body is pinned for the worker. Never fails (aborts on OOM like h2o). */
berth_task_t *berth_task_new(berth_http_loop_t *loop, h2o_req_t *req, size_t size, int with_body,
                             berth_task_work_cb work, berth_task_done_cb done);

/* Runs t->work on a worker, then t->done on the loop thread. */
void berth_task_submit(berth_task_t *t);

/* Releases the body early (after the worker stored it), so that memory and
 * buffer files go back before the response is sent. Loop thread only. */
void berth_task_drop_body(berth_task_t *t);

/* Worker side: pins the body for reading; returns 0 with *body and *len set, or
 * -1 when the request is already gone. Always pair with _release. */
int berth_task_body_acquire(berth_task_t *t, const char **body, size_t *len);
void berth_task_body_release(berth_task_t *t);

/* Called once per loop thread at start. */
void berth_task_loop_init(berth_http_loop_t *loop, berth_workq_t *workq);
void berth_task_loop_dispose(berth_http_loop_t *loop);

#endif
