/*
 * Worker hand-off for requests; see http/task.h for the contract.
 */
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include <h2o.h>

#include "http/task.h"

typedef struct task__guard {
    berth_task_t *task;
} task__guard_t;

static void task__release_own_body(berth_task_t *t);

static void task__free(berth_task_t *t)
{
    berth_http_loop_t *loop = t->loop;

    if (t->dispose != NULL)
        t->dispose(t);
    task__release_own_body(t);
    pthread_mutex_destroy(&t->body_mutex);
    free(t);
    loop->inflight--;
}

/* The request's pool is being cleared: the client is gone or the response
 * is complete. Runs on the loop thread. */
static void task__on_req_dispose(void *p)
{
    berth_task_t *t = ((task__guard_t *)p)->task;

    /* An HTTP/1 body lives in h2o's socket buffer, freed right after this:
     * wait until a worker reading it lets go. */
    pthread_mutex_lock(&t->body_mutex);
    t->req = NULL;
    if (!t->body_owned && t->body != NULL) {
        t->body = NULL;
        t->body_len = 0;
        t->body_gone = 1;
    }
    pthread_mutex_unlock(&t->body_mutex);
    if (t->pending == 0)
        task__free(t);
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

/* HTTP/2 disposes a stream's body buffer before its request, so a reset
 * stream would free the body under a worker. The task therefore holds its own
 * reference: large bodies live in a shared file mapping (see
 * SERVER__MMAP_THRESHOLD), which mremap() maps a second time at no cost;
 * anything else is copied. */
static void task__own_body(berth_task_t *t, h2o_req_t *req)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)req->entity.base;
    uintptr_t start = base & ~(page - 1);
    size_t maplen = (size_t)(((base + req->entity.len + page - 1) & ~(page - 1)) - start);
    void *p;

    if (req->entity.len >= page && (p = mremap((void *)start, 0, maplen, MREMAP_MAYMOVE)) != MAP_FAILED) {
        t->own_map = p;
        t->own_map_len = maplen;
        t->body = (const char *)p + (base - start);
    } else {
        t->own_copy = h2o_mem_alloc(req->entity.len);
        memcpy(t->own_copy, req->entity.base, req->entity.len);
        t->body = t->own_copy;
    }
    t->body_len = req->entity.len;
    t->body_owned = 1;
}

static void task__release_own_body(berth_task_t *t)
{
    if (t->own_map != NULL)
        munmap(t->own_map, t->own_map_len);
    free(t->own_copy);
    t->own_map = NULL;
    t->own_copy = NULL;
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
    pthread_mutex_init(&t->body_mutex, NULL);
    loop->inflight++;

    if (with_body && req->entity.base != NULL && req->entity.len != 0) {
        if (req->version >= 0x200) {
            task__own_body(t, req);
        } else {
            /* HTTP/1 disposes the request before the socket buffer holding
             * the body; task__on_req_dispose waits for the worker. */
            t->body = req->entity.base;
            t->body_len = req->entity.len;
        }
    }

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
    pthread_mutex_lock(&t->body_mutex);
    task__release_own_body(t);
    t->body = NULL;
    t->body_len = 0;
    pthread_mutex_unlock(&t->body_mutex);
}

int berth_task_body_acquire(berth_task_t *t, const char **body, size_t *len)
{
    pthread_mutex_lock(&t->body_mutex);
    if (t->body_gone) {
        *body = NULL;
        *len = 0;
        return -1;
    }
    *body = t->body;
    *len = t->body_len;
    return 0;
}

void berth_task_body_release(berth_task_t *t)
{
    pthread_mutex_unlock(&t->body_mutex);
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
