/*
 * The engine (core/engine.h) over stores that behave as the storage
 * contract allows but the filesystem backend never does: reads that take
 * their time (a slow S3), writes that keep only a prefix of their bytes.
 * A shim backend in front of the filesystem one plays them.
 */
#include <criterion/criterion.h>

#define REPO "library/store"
#include "engine_fixture.h"

/* Every test's engine is on this shim, in front of st. */
static shim_t shim;

static void setup(void)
{
    fixture_storage_setup();
    shim_init(&shim);
}

static void teardown(void)
{
    /* A test that failed with the reads held must not hang freeing eng. */
    shim_hold(&shim, &shim.reads, 0);
    fixture_teardown();
    shim_fini(&shim);
}

TestSuite(engine_store, .init = setup, .fini = teardown);

/* eng, on the shim, hashing on `hash_threads` threads. */
static void shim_engine(int hash_threads)
{
    eng = fixture_engine_open(&shim.super, TTL, hash_threads);
}

Test(engine_store, a_cut_body_on_a_backend_that_keeps_a_prefix_records_that_prefix)
{
    unsigned char *data = random_bytes(10000, 21);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    shim_engine(0);
    start(&rec);
    berth_record_init(&out);

    /* The body is cut after 10000 bytes; the backend keeps 8192 of them. */
    shim.unit = 4096;
    w = oci_write(rec.id, ranged(0, 19999, 20000));
    for (size_t off = 0; off < 10000; off += 1000)
        cr_assert_eq(berth_write_piece(w, data + off, 1000), 0, "%s", berth_error_last());
    err = berth_write_commit(w, 0, &out);
    shim.unit = 0;
    cr_assert_eq(err, 0, "a cut body records what the storage kept, here %d: %s", err, berth_error_last());
    cr_assert_eq(out.offset, 8192, "the record claims exactly the bytes the storage kept");
    cr_assert_eq(berth_sha256_length(&out.hash), 8192);

    /* The client resumes at 8192 and finishes. */
    cr_assert_eq(append(eng, rec.id, ranged(8192, 9999, 1808), data + 8192, 1808, &out), 0, "%s", berth_error_last());
    berth_sha256_of(data, 10000, digest);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, NULL, 0, &out), 0, "%s", berth_error_last());
    berth_record_clear(&out);
    berth_record_clear(&rec);
    free(data);
}

/* Parts 2..4 stored, then part 1: the engine hashes the stored parts on its
 * hashing pool, reading them back. Here the read-back is held (a slow
 * store). */
static void stall_catch_up(berth_record_t *rec)
{
    static unsigned char part[4096];

    create(rec, 4, sizeof(part), 0, NULL, NULL);
    for (uint64_t n = 2; n <= 4; n++)
        cr_assert_eq(put(rec->id, n, part, sizeof(part)), BERTH_PARTS_STORED, "%s", berth_error_last());
    shim_hold(&shim, &shim.reads, 1);
    cr_assert_eq(put(rec->id, 1, part, sizeof(part)), BERTH_PARTS_STORED, "%s", berth_error_last());
    cr_assert(shim_wait(&shim, &shim.reads), "the stored parts were not read back after part 1");
}

/* Runs fn(arg) on a thread of its own, opens the held reads 200 ms later
 * and waits for the thread. */
static void run_then_open_reads(void *(*fn)(void *), void *arg)
{
    struct timespec pause = {0, 200 * 1000 * 1000};
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    nanosleep(&pause, NULL);
    shim_hold(&shim, &shim.reads, 0);
    pthread_join(t, NULL);
}

typedef struct oci_call {
    const unsigned char *data;
    size_t len;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
} oci_call_t;

static void *oci_upload(void *arg)
{
    oci_call_t *c = arg;
    berth_record_t rec;
    int err;

    berth_record_init(&rec);
    if ((err = berth_oci_start(eng, REPO, &rec)) == 0)
        err = append(eng, rec.id, body((int64_t)c->len), c->data, c->len, &rec);
    berth_record_clear(&rec);
    pthread_mutex_lock(&c->lock);
    c->err = err;
    c->done = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

Test(engine_store, an_oci_chunk_is_not_held_up_by_a_part_session_reading_back_stored_parts, .timeout = 60)
{
    size_t len = 2 << 20;
    unsigned char *data = random_bytes(len, 14);
    oci_call_t call = {.data = data, .len = len, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct timespec until;
    berth_record_t rec;
    pthread_t t;
    int done;

    shim_engine(1);
    stall_catch_up(&rec);

    /* An unrelated upload's chunk, big enough to be hashed on the pool. */
    cr_assert_eq(pthread_create(&t, NULL, oci_upload, &call), 0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&call.lock);
    while (!call.done && pthread_cond_timedwait(&call.cond, &call.lock, &until) == 0)
        ;
    done = call.done;
    pthread_mutex_unlock(&call.lock);
    shim_hold(&shim, &shim.reads, 0);
    pthread_join(t, NULL);
    cr_assert(done, "a 2 MiB chunk of another upload waited more than 5 s for a part session's read-back");
    cr_assert_eq(call.err, 0);

    berth_record_clear(&rec);
    free(data);
}

static void *engine_free_call(void *arg)
{
    berth_engine_free(arg);
    return NULL;
}

Test(engine_store, freeing_the_engine_while_it_hashes_stored_parts_waits_for_the_hashing, .timeout = 60)
{
    berth_record_t rec;

    shim_engine(1);
    stall_catch_up(&rec);
    /* No request is open; the engine's own hashing is. */
    run_then_open_reads(engine_free_call, eng);
    eng = NULL;
    berth_record_clear(&rec);
}

typedef struct complete_call {
    const char *id;
    int err;
    char msg[512];
    berth_record_t out;
} complete_call_t;

static void *complete_run(void *arg)
{
    complete_call_t *c = arg;

    c->err = berth_parts_complete(eng, "alice", c->id, &c->out);
    snprintf(c->msg, sizeof(c->msg), "%s", berth_error_last());
    return NULL;
}

Test(engine_store, part_writes_and_abort_are_busy_while_the_session_is_being_completed, .timeout = 60)
{
    complete_call_t call;
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w = (berth_write_t *)1;
    pthread_t t;

    shim_engine(0);
    create(&rec, 2, 4, 0, NULL, NULL);
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 2, "bb", 2), BERTH_PARTS_STORED);
    /* Part 1 replaced: the hash starts again, completion reads the parts. */
    cr_assert_eq(put(rec.id, 1, "AAAA", 4), BERTH_PARTS_STORED);

    shim_hold(&shim, &shim.reads, 1);
    call = (complete_call_t){.id = rec.id};
    berth_record_init(&call.out);
    cr_assert_eq(pthread_create(&t, NULL, complete_run, &call), 0);
    if (!shim_wait(&shim, &shim.reads)) {
        shim_hold(&shim, &shim.reads, 0);
        pthread_join(t, NULL);
        cr_assert_fail("completion did not read the parts back: %d", call.err);
    }
    berth_record_init(&out);
    cr_assert_eq(berth_parts_write(eng, "alice", rec.id, 2, 2, NULL, &w, &out), BERTH_EBUSY);
    cr_assert_null(w);
    cr_assert_eq(put(rec.id, 1, "AAAA", 4), BERTH_EBUSY);
    cr_assert_eq(berth_parts_abort(eng, "alice", rec.id, &out), BERTH_EBUSY);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, 0, &out, NULL), 0, "status does not need the session");
    shim_hold(&shim, &shim.reads, 0);
    pthread_join(t, NULL);
    cr_assert_eq(call.err, 0, "%s", call.msg);
    berth_sha256_of("AAAAbb", 6, digest);
    cr_assert_str_eq(call.out.digest, digest);

    berth_record_clear(&call.out);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_store, completing_right_after_the_last_part_is_not_refused_for_the_engines_own_hashing, .timeout = 60)
{
    static unsigned char whole[4 * 4096];
    char digest[BERTH_DIGEST_LEN];
    complete_call_t call;
    berth_record_t rec;

    shim_engine(1);
    /* The client has stored every part and its last PUT was answered; the
     * engine is still hashing stored parts in the background (held here). */
    stall_catch_up(&rec);
    call = (complete_call_t){.id = rec.id};
    berth_record_init(&call.out);
    run_then_open_reads(complete_run, &call);
    cr_assert_eq(call.err, 0, "the completion was refused (%d): %s", call.err, call.msg);
    berth_sha256_of(whole, sizeof(whole), digest);
    cr_assert_str_eq(call.out.digest, digest);
    berth_record_clear(&call.out);
    berth_record_clear(&rec);
}
