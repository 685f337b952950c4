/*
 * A fixed pool of worker threads running blocking jobs (storage, hashing)
 * off the event loops. Jobs are run in submission order by whichever worker
 * is free; a job reports its result itself (http/ posts it back to the loop
 * thread that owns the request).
 */
#ifndef BERTH_CORE_WORKQ_H
#define BERTH_CORE_WORKQ_H

#include <stddef.h>

typedef struct berth_workq berth_workq_t;

typedef struct berth_job berth_job_t;
struct berth_job {
    void (*run)(berth_job_t *job); /* runs on a worker thread */
    berth_job_t *_next;            /* owned by the queue */
};

/* Starts `threads` workers (>= 1). */
int berth_workq_new(berth_workq_t **out, int threads);

/* Queues a job; never blocks. The job must stay alive until run returns. */
void berth_workq_submit(berth_workq_t *q, berth_job_t *job);

/* Runs every queued job, then joins the workers and frees the pool.
 * NULL-safe. */
void berth_workq_free(berth_workq_t *q);

#endif
