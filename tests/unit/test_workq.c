/*
 * The worker pool: every job runs, on more than one thread, in FIFO order
 * for a single worker, and free() drains what is still queued.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "core/workq.h"

typedef struct test_job {
    berth_job_t job; /* first: run() gets this pointer back */
    int index;
    int *order;
    atomic_int *next_slot;
    atomic_int *ran;
    pthread_t thread;
    int sleep_us;
} test_job_t;

static void job_run(berth_job_t *j)
{
    test_job_t *t = (test_job_t *)j;

    if (t->sleep_us > 0) {
        struct timespec ts = {0, (long)t->sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
    t->thread = pthread_self();
    if (t->order != NULL)
        t->order[atomic_fetch_add(t->next_slot, 1)] = t->index;
    atomic_fetch_add(t->ran, 1);
}

Test(workq, runs_every_job_across_threads)
{
    enum { N = 2000, THREADS = 4 };
    test_job_t *jobs = calloc(N, sizeof(*jobs));
    atomic_int ran = 0;
    berth_workq_t *q = NULL;

    cr_assert_eq(berth_workq_new(&q, THREADS), 0);
    cr_assert_not_null(q);
    for (int i = 0; i < N; i++) {
        jobs[i].job.run = job_run;
        jobs[i].index = i;
        jobs[i].ran = &ran;
        jobs[i].sleep_us = i % 50 == 0 ? 2000 : 0; /* some slow jobs so others must use other workers */
        berth_workq_submit(q, &jobs[i].job);
    }
    berth_workq_free(q);
    cr_assert_eq(atomic_load(&ran), N);

    int distinct = 1;
    for (int i = 1; i < N && distinct < 2; i++)
        if (!pthread_equal(jobs[i].thread, jobs[0].thread))
            distinct++;
    cr_assert_geq(distinct, 2, "all jobs ran on one thread");
    for (int i = 0; i < N; i++)
        cr_assert(!pthread_equal(jobs[i].thread, pthread_self()), "job %d ran on the submitting thread", i);
    free(jobs);
}

typedef struct gate_job {
    berth_job_t job;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    int started;
} gate_job_t;

/* Blocks its worker until the test opens the gate, so later jobs stay queued. */
static void gate_run(berth_job_t *j)
{
    gate_job_t *g = (gate_job_t *)j;
    pthread_mutex_lock(&g->lock);
    g->started = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void *open_gate_later(void *arg)
{
    gate_job_t *g = arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

Test(workq, free_drains_the_queue_in_fifo_order)
{
    enum { N = 500 };
    gate_job_t gate = {.job = {.run = gate_run}, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    test_job_t *jobs = calloc(N, sizeof(*jobs));
    int *order = calloc(N, sizeof(*order));
    atomic_int ran = 0, slot = 0;
    berth_workq_t *q = NULL;
    pthread_t opener;

    cr_assert_eq(berth_workq_new(&q, 1), 0);
    berth_workq_submit(q, &gate.job);
    pthread_mutex_lock(&gate.lock);
    while (!gate.started)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);

    /* The only worker is held: all of these are still queued when free() starts. */
    for (int i = 0; i < N; i++) {
        jobs[i].job.run = job_run;
        jobs[i].index = i;
        jobs[i].order = order;
        jobs[i].next_slot = &slot;
        jobs[i].ran = &ran;
        berth_workq_submit(q, &jobs[i].job);
    }
    cr_assert_eq(atomic_load(&ran), 0);
    pthread_create(&opener, NULL, open_gate_later, &gate);
    berth_workq_free(q);
    pthread_join(opener, NULL);

    cr_assert_eq(atomic_load(&ran), N, "free() returned before draining the queue");
    for (int i = 0; i < N; i++)
        cr_assert_eq(order[i], i, "job %d ran in slot %d", order[i], i);
    free(order);
    free(jobs);
}

typedef struct chain_job {
    berth_job_t job;
    berth_workq_t *q;
    atomic_int left;
} chain_job_t;

/* Resubmits itself until `left` runs out: a job queuing follow-up work. */
static void chain_run(berth_job_t *j)
{
    chain_job_t *c = (chain_job_t *)j;
    if (atomic_fetch_sub(&c->left, 1) > 1)
        berth_workq_submit(c->q, &c->job);
}

Test(workq, jobs_may_submit_more_jobs_even_while_draining)
{
    berth_workq_t *q = NULL;
    chain_job_t chain = {.job = {.run = chain_run}, .left = 1000};

    cr_assert_eq(berth_workq_new(&q, 3), 0);
    chain.q = q;
    berth_workq_submit(q, &chain.job);
    berth_workq_free(q); /* the chain is still going: free() must wait for all of it */
    cr_assert_eq(atomic_load(&chain.left), 0);
}

Test(workq, bad_thread_counts_and_null_are_handled)
{
    berth_workq_free(NULL);

    berth_workq_t *q = (berth_workq_t *)1;
    cr_assert_eq(berth_workq_new(&q, 0), BERTH_EINVALID);
    cr_assert_null(q);
    cr_assert_eq(berth_workq_new(&q, -3), BERTH_EINVALID);

    /* An idle pool starts and stops cleanly, repeatedly. */
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(berth_workq_new(&q, 1 + i % 8), 0);
        berth_workq_free(q);
    }
}
