/*
 * Worker hand-off for requests; see http/task.h for the contract.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "http/app.h"
#include "http/h2ocompat.h"
#include "http/task.h"

typedef struct task__guard {
    berth_task_t *task;
} task__guard_t;

/* ---- the body ------------------------------------------------------------- */

/* 1 when [base, base + len) lies in the bytes of buffer b. */
static int task__in_buffer(const h2o_buffer_t *b, const char *base, size_t len)
{
    return b != NULL && b->bytes != NULL && base >= b->bytes && len <= b->size &&
           (size_t)(base - b->bytes) <= b->size - len;
}

/* A body the task holds itself: large bodies live in a shared file mapping
 * (SERVER__MMAP_THRESHOLD in http/server.c), which mremap() maps a second
 * time at no cost; anything else is copied. */
static void task__own_body(berth_body_t *b, h2o_iovec_t entity)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)entity.base;
    uintptr_t start = base & ~(page - 1);
    size_t maplen = (size_t)(((base + entity.len + page - 1) & ~(page - 1)) - start);
    void *p;

    if (entity.len >= page && (p = mremap((void *)start, 0, maplen, MREMAP_MAYMOVE)) != MAP_FAILED) {
        b->map = p;
        b->map_len = maplen;
        b->base = (const char *)p + (base - start);
    } else {
        b->copy = h2o_mem_alloc(entity.len);
        memcpy(b->copy, entity.base, entity.len);
        b->base = b->copy;
    }
    b->len = entity.len;
}

static void task__body_init(berth_body_t *b, h2o_req_t *req)
{
    h2o_socket_t *sock;

    b->base = "";
    b->len = 0;
    if (req->entity.base == NULL || req->entity.len == 0)
        return;
    /* HTTP/1 on libh2o 2.2.5: the body is a slice of the connection's input
     * buffer, which stays put until the response (see task.h). */
    if ((sock = berth_h2o_body_socket(req)) != NULL &&
        task__in_buffer(sock->input, req->entity.base, req->entity.len)) {
        b->sock = sock;
        b->base = req->entity.base;
        b->len = req->entity.len;
        return;
    }
    task__own_body(b, req->entity);
}

/* The request goes away while a worker may read its HTTP/1 body: take the
 * socket's input buffer, which h2o would free right after, and leave the
 * socket an empty one. */
static void task__take_body(berth_body_t *b)
{
    h2o_socket_t *sock = b->sock;

    b->sock = NULL;
    if (!task__in_buffer(sock->input, b->base, b->len)) {
        /* h2o moved the body although it stopped reading: nothing can keep
         * it alive for the worker, and a crash beats reading freed memory. */
        berth_log_error("request body moved under a worker; aborting");
        abort();
    }
    b->taken = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
}

static void task__body_release(berth_body_t *b)
{
    if (b->map != NULL)
        munmap(b->map, b->map_len);
    free(b->copy);
    if (b->taken != NULL)
        h2o_buffer_dispose(&b->taken);
    memset(b, 0, sizeof(*b));
    b->base = "";
}

/* ---- tasks ----------------------------------------------------------------- */

static void task__free(berth_task_t *t)
{
    berth_http_loop_t *loop = t->loop;

    if (t->dispose != NULL)
        t->dispose(t);
    task__body_release(&t->body);
    free(t);
    loop->inflight--;
}

/* The request's pool is being cleared: the client is gone or the response
 * is complete. Runs on the loop thread, and never waits for a worker. */
static void task__on_req_dispose(void *p)
{
    berth_task_t *t = ((task__guard_t *)p)->task;

    t->req = NULL;
    if (t->pending == 0) {
        task__free(t);
        return;
    }
    if (t->body.sock != NULL)
        task__take_body(&t->body);
}

static void task__run(berth_job_t *job)
{
    berth_task_t *t = (berth_task_t *)job;

    t->work(t);
    h2o_multithread_send_message(&t->loop->task_receiver, &t->msg);
}

static void task__on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        berth_task_t *t = H2O_STRUCT_FROM_MEMBER(berth_task_t, msg.link, messages->next);
        h2o_linklist_unlink(&t->msg.link);
        /* pending drops only after done returns, so that a disposal of the
         * request during done cannot free the task under it. */
        t->done(t, t->req);
        if (--t->pending == 0 && t->req == NULL)
            task__free(t);
    }
}

berth_task_t *berth_task_new(berth_http_loop_t *loop, h2o_req_t *req, size_t size, int with_body,
                             berth_task_work_cb work, berth_task_done_cb done)
{
    berth_task_t *t;
    task__guard_t *guard;

    if (size < sizeof(*t))
        size = sizeof(*t);
    t = h2o_mem_alloc(size);
    memset(t, 0, size);
    t->loop = loop;
    t->req = req;
    t->work = work;
    t->done = done;
    t->job.run = task__run;
    t->body.base = "";
    loop->inflight++;
    if (with_body)
        task__body_init(&t->body, req);

    guard = h2o_mem_alloc_shared(&req->pool, sizeof(*guard), task__on_req_dispose);
    guard->task = t;
    return t;
}

void berth_task_submit(berth_task_t *t)
{
    t->pending++;
    berth_workq_submit(t->loop->workq, &t->job);
}

void berth_task_drop_body(berth_task_t *t)
{
    task__body_release(&t->body);
}

void berth_task_loop_init(berth_http_loop_t *loop, berth_workq_t *workq)
{
    loop->workq = workq;
    loop->inflight = 0;
    h2o_multithread_register_receiver(loop->ctx.queue, &loop->task_receiver, task__on_messages);
}

void berth_task_loop_dispose(berth_http_loop_t *loop)
{
    h2o_multithread_unregister_receiver(loop->ctx.queue, &loop->task_receiver);
}

/* ---- route tasks ----------------------------------------------------------------- */

static void task__route_work(berth_task_t *bt)
{
    berth_route_task_t *t = (berth_route_task_t *)bt;

    berth_error_clear();
    t->errmsg[0] = '\0';
    if ((t->rc = t->call(t)) < 0 && t->errmsg[0] == '\0')
        snprintf(t->errmsg, sizeof(t->errmsg), "%s", berth_error_last());
}

berth_route_task_t *berth_route_task_new(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r, size_t size,
                                         int with_body, berth_route_call_cb call, berth_task_done_cb done,
                                         void (*dispose)(berth_task_t *t))
{
    berth_route_task_t *t =
        (berth_route_task_t *)berth_task_new(berth_http_loop_of(req), req, size, with_body, task__route_work, done);

    t->super.dispose = dispose;
    t->app = app;
    t->r = *r;
    t->call = call;
    return t;
}
