/*
 * The worker pool: one FIFO list of intrusive jobs under a mutex, workers
 * sleeping on a condition variable. Jobs carry their own links, so submit
 * never allocates and therefore never fails.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/workq.h"

struct berth_workq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    berth_job_t *head;
    berth_job_t *tail;
    int stopping;
    int nthreads; /* threads actually started */
    pthread_t *threads;
};

static void *workq__main(void *arg)
{
    berth_workq_t *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        /* Stopping still drains: free() promises every queued job runs. */
        if (q->head == NULL)
            break;
        berth_job_t *job = q->head;
        q->head = job->_next;
        if (q->head == NULL)
            q->tail = NULL;
        job->_next = NULL;
        pthread_mutex_unlock(&q->lock);
        job->run(job);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void workq__stop(berth_workq_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q);
}

int berth_workq_new(berth_workq_t **out, int threads)
{
    berth_workq_t *q = NULL;
    int err = BERTH_OK;

    *out = NULL;
    if (threads < 1)
        return berth_error_set(BERTH_EINVALID, "workq: need at least one thread, got %d", threads);
    if ((q = calloc(1, sizeof(*q))) == NULL)
        return berth_error_set(BERTH_ERR, "workq: out of memory");
    if ((q->threads = calloc((size_t)threads, sizeof(*q->threads))) == NULL) {
        free(q);
        return berth_error_set(BERTH_ERR, "workq: out of memory");
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&q->threads[i], NULL, workq__main, q);
        if (rc != 0) {
            err = berth_error_set(BERTH_ERR, "workq: cannot start thread %d of %d (error %d)", i + 1, threads, rc);
            goto done;
        }
        q->nthreads++;
    }
    *out = q;
    q = NULL;

done:
    if (q != NULL)
        workq__stop(q);
    return err;
}

void berth_workq_submit(berth_workq_t *q, berth_job_t *job)
{
    job->_next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail != NULL)
        q->tail->_next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void berth_workq_free(berth_workq_t *q)
{
    if (q == NULL)
        return;
    workq__stop(q);
}
