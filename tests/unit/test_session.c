/*
 * OCI upload sessions of the engine (core/engine.h) over the filesystem
 * backend: the upload rules, what failures leave behind, restarts,
 * concurrency, purging and blobs. Streamed writes and claims have their own
 * files (test_engine_write.c, test_engine_claim.c).
 *
 * Input the HTTP layer validates (malformed names, ids and digests) never
 * reaches the engine and is tested at that boundary (test_http_route.c).
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/meta.h"
#include "core/record.h"
#include "core/validate.h"
#include "storage/fs/fs.h"
#include "storage/storage.h"

#define REPO "library/app"
#define TTL 3600

static char root[64];
static berth_storage_t *st;
static berth_engine_t *eng;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static berth_storage_t *storage_open(void)
{
    berth_fs_options_t o = {.root = root, .sync = BERTH_SYNC_COMMIT};
    berth_storage_t *b = NULL;

    cr_assert_eq(berth_storage_fs_new(&b, &o), 0, "%s", berth_error_last());
    return b;
}

static berth_engine_t *engine_open(berth_storage_t *b, uint64_t ttl)
{
    berth_engine_options_t o = {.storage = b, .ttl_s = ttl};
    berth_engine_t *e = NULL;

    cr_assert_eq(berth_engine_new(&e, &o), 0, "%s", berth_error_last());
    return e;
}

static void setup(void)
{
    berth_storage_fault_reset(NULL);
    snprintf(root, sizeof(root), "/tmp/berth-session-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    st = storage_open();
    eng = engine_open(st, TTL);
}

static void teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_engine_free(eng);
    berth_storage_free(st);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(session, .init = setup, .fini = teardown);

/* Simulates a restart: a new backend and a new engine on the same root,
 * knowing only what was stored. */
static void restart(void)
{
    berth_engine_free(eng);
    berth_storage_free(st);
    st = storage_open();
    eng = engine_open(st, TTL);
}

/* What a request declares: a body of `len` bytes, with or without a
 * Content-Range. */
static berth_chunk_t body(size_t len)
{
    return (berth_chunk_t){.has_range = 0, .length = (int64_t)len};
}

static berth_chunk_t ranged(uint64_t first, uint64_t last, size_t len)
{
    return (berth_chunk_t){.has_range = 1, .first = first, .last = last, .length = (int64_t)len};
}

static int append(berth_engine_t *e, const char *id, berth_chunk_t c, const void *buf, size_t len, berth_record_t *out)
{
    return berth_oci_append(e, REPO, id, &c, buf, len, out);
}

static void start(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_oci_start(eng, REPO, rec), 0, "%s", berth_error_last());
}

static void append_ok(const char *id, const char *data, uint64_t want_offset)
{
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(append(eng, id, body(strlen(data)), data, strlen(data), &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, want_offset);
    berth_record_clear(&out);
}

static uint64_t stored_offset(const char *id)
{
    berth_record_t rec;
    uint64_t off;

    berth_record_init(&rec);
    cr_assert_eq(berth_oci_status(eng, REPO, id, &rec), 0, "%s", berth_error_last());
    off = rec.offset;
    berth_record_clear(&rec);
    return off;
}

static void finish_ok(const char *id, const char *whole, const char *last)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t out;

    berth_record_init(&out);
    berth_sha256_of(whole, strlen(whole), digest);
    cr_assert_eq(berth_oci_finish(eng, REPO, id, digest, last, last != NULL ? strlen(last) : 0, &out), 0, "%s",
                 berth_error_last());
    cr_assert_eq(out.status, BERTH_STATUS_COMPLETE);
    cr_assert_eq(out.offset, strlen(whole));
    cr_assert_str_eq(out.digest, digest);
    berth_record_clear(&out);
}

static void assert_blob(const char *repo, const char *whole)
{
    char digest[BERTH_DIGEST_LEN], buf[256];
    uint64_t size = 0;
    size_t got = 0;

    berth_sha256_of(whole, strlen(whole), digest);
    cr_assert_eq(berth_blob_stat(eng, repo, digest, &size), 0, "%s", berth_error_last());
    cr_assert_eq(size, strlen(whole));
    cr_assert_eq(berth_blob_read(eng, digest, 0, buf, sizeof(buf), &got), 0);
    cr_assert_eq(got, strlen(whole));
    cr_assert_eq(memcmp(buf, whole, got), 0);
}

static void record_key(char key[BERTH_OBJ_KEY_MAX], const char *id)
{
    snprintf(key, BERTH_OBJ_KEY_MAX, "sessions/%s", id);
}

static int count_obj_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    (*(size_t *)ctx)++;
    return 0;
}

static int count_data_cb(void *ctx, const char *id, int64_t mtime)
{
    (*(size_t *)ctx)++;
    return 0;
}

/* Session records in the store. */
static size_t stored_sessions(void)
{
    size_t n = 0;

    cr_assert_eq(berth_storage_obj_list(st, "sessions/", count_obj_cb, &n), 0, "%s", berth_error_last());
    return n;
}

/* Sessions that have data in the store. */
static size_t stored_data(void)
{
    size_t n = 0;

    cr_assert_eq(berth_storage_data_list(st, count_data_cb, &n), 0, "%s", berth_error_last());
    return n;
}

/* Replaces a stored record unconditionally, as another process could. */
static void put_record_text(const char *id, const char *text, size_t len)
{
    char key[BERTH_OBJ_KEY_MAX];

    record_key(key, id);
    cr_assert_eq(berth_storage_obj_put(st, key, text, len, NULL, NULL), 0, "%s", berth_error_last());
}

/* Rewrites a stored record's updated_at, as if it had been idle. */
static void backdate(const char *id, int64_t updated_at)
{
    char key[BERTH_OBJ_KEY_MAX];
    berth_record_t rec;
    char *buf = NULL;
    size_t len = 0;

    record_key(key, id);
    berth_record_init(&rec);
    cr_assert_eq(berth_storage_obj_get(st, key, &buf, &len, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_record_decode(&rec, buf, len), 0, "%s", berth_error_last());
    free(buf);
    rec.updated_at = updated_at;
    cr_assert_eq(berth_record_encode(&rec, &buf, &len), 0);
    put_record_text(id, buf, len);
    free(buf);
    berth_record_clear(&rec);
}

/* ---- the round trip ------------------------------------------------------------ */

Test(session, start_append_status_finish_makes_the_blob)
{
    berth_record_t rec, out;

    start(&rec);
    cr_assert(berth_id_valid(rec.id, strlen(rec.id)));
    cr_assert_eq(rec.kind, BERTH_SESSION_OCI);
    cr_assert_eq(rec.status, BERTH_STATUS_INIT);
    cr_assert_eq(rec.offset, 0);
    cr_assert_str_eq(rec.repository, REPO);
    cr_assert_eq(berth_engine_expires_at(eng, &rec), rec.updated_at + TTL);

    append_ok(rec.id, "hello ", 6);
    berth_record_init(&out);
    cr_assert_eq(append(eng, rec.id, ranged(6, 10, 5), "world", 5, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 11);
    cr_assert_eq(out.status, BERTH_STATUS_IN_PROGRESS);
    cr_assert_eq(berth_rangeset_count(&out.received), 11);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), 0);
    cr_assert_eq(out.offset, 11);
    berth_record_clear(&out);

    finish_ok(rec.id, "hello world", NULL);
    assert_blob(REPO, "hello world");
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND, "a finished session is gone");
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, finish_with_a_last_chunk_appends_it)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "first,", 6);
    finish_ok(rec.id, "first,last", "last");
    assert_blob(REPO, "first,last");
    berth_record_clear(&rec);
}

Test(session, a_monolithic_finish_on_an_empty_session_works)
{
    berth_record_t rec;

    start(&rec);
    finish_ok(rec.id, "all at once", "all at once");
    assert_blob(REPO, "all at once");
    berth_record_clear(&rec);
}

Test(session, an_empty_blob_can_be_uploaded)
{
    berth_record_t rec;

    start(&rec);
    finish_ok(rec.id, "", NULL);
    assert_blob(REPO, "");
    berth_record_clear(&rec);
}

Test(session, an_empty_append_without_a_range_changes_nothing)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_record_init(&out);
    cr_assert_eq(append(eng, rec.id, body(0), NULL, 0, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 3);
    cr_assert_eq(stored_offset(rec.id), 3);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- 416 ------------------------------------------------------------------------ */

Test(session, chunks_that_do_not_continue_the_session_are_refused_and_change_nothing)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "012345", 6);
    berth_record_init(&out);

    /* Wrong start. */
    cr_assert_eq(append(eng, rec.id, ranged(7, 9, 3), "789", 3, &out), BERTH_ERANGE);
    cr_assert_eq(out.offset, 6, "a 416 reports the current offset");
    cr_assert_str_eq(out.id, rec.id);
    /* A retry of a chunk already received. */
    cr_assert_eq(append(eng, rec.id, ranged(0, 5, 6), "012345", 6, &out), BERTH_ERANGE);
    cr_assert_eq(out.offset, 6);
    /* The range and the body disagree. */
    cr_assert_eq(append(eng, rec.id, ranged(6, 8, 4), "6789", 4, &out), BERTH_ERANGE);
    cr_assert_eq(append(eng, rec.id, ranged(6, 9, 2), "67", 2, &out), BERTH_ERANGE);
    cr_assert_eq(append(eng, rec.id, ranged(6, 6, 0), NULL, 0, &out), BERTH_ERANGE);
    cr_assert_eq(append(eng, rec.id, ranged(0, UINT64_MAX, 1), "x", 1, &out), BERTH_ERANGE);
    cr_assert_eq(out.offset, 6);
    cr_assert_eq(stored_offset(rec.id), 6);

    /* Still resumable, with its hash intact. */
    cr_assert_eq(append(eng, rec.id, ranged(6, 9, 4), "6789", 4, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 10);
    finish_ok(rec.id, "0123456789", NULL);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- digests -------------------------------------------------------------------- */

Test(session, a_wrong_digest_leaves_the_session_unchanged_and_resumable)
{
    char wrong[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "part one;", 9);
    berth_sha256_of("something else", 14, wrong);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, wrong, "tail", 4, &out), BERTH_EDIGEST);
    cr_assert_eq(stored_offset(rec.id), 9, "the last chunk of a failed finish is not stored");
    cr_assert_eq(berth_storage_blob_stat(st, wrong, &(uint64_t){0}), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, wrong, NULL, 0, &out), BERTH_EDIGEST);

    append_ok(rec.id, "part two", 17);
    finish_ok(rec.id, "part one;part two", NULL);
    assert_blob(REPO, "part one;part two");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- not found ------------------------------------------------------------------ */

Test(session, a_cancelled_session_is_gone)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "bytes", 5);
    cr_assert_eq(berth_oci_cancel(eng, REPO, rec.id), 0, "%s", berth_error_last());
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(append(eng, rec.id, body(1), "x", 1, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_cancel(eng, REPO, rec.id), BERTH_ENOTFOUND);
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0, "cancel frees the bytes");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_session_is_invisible_from_another_repository)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_chunk_t c = body(1);

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_sha256_of("abc", 3, digest);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, "library/other", rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_append(eng, "library/other", rec.id, &c, "d", 1, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_finish(eng, "library/other", rec.id, digest, NULL, 0, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_cancel(eng, "library/other", rec.id), BERTH_ENOTFOUND);
    cr_assert_eq(stored_offset(rec.id), 3);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, unknown_ids_are_not_found)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN];
    berth_write_t *w = (berth_write_t *)1;
    berth_chunk_t c = body(1);
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(berth_id_generate(id), 0);
    berth_sha256_of("x", 1, digest);
    cr_assert_eq(berth_oci_status(eng, REPO, id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(append(eng, id, body(1), "x", 1, &out), BERTH_ENOTFOUND);
    cr_assert_eq(out.id[0], '\0', "no current record to report");
    cr_assert_eq(berth_oci_write(eng, REPO, id, &c, &w, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_finish(eng, REPO, id, digest, "x", 1, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_cancel(eng, REPO, id), BERTH_ENOTFOUND);
    cr_assert_eq(stored_sessions(), 0);
    berth_record_clear(&out);
}

Test(session, an_expired_session_is_not_found)
{
    berth_record_t rec, out;

    start(&rec);
    backdate(rec.id, (int64_t)time(NULL) - TTL - 10);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(append(eng, rec.id, body(1), "x", 1, &out), BERTH_ENOTFOUND);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_corrupt_record_is_not_found)
{
    berth_record_t rec, out;

    start(&rec);
    put_record_text(rec.id, "{\"version\":1,", 13);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(append(eng, rec.id, body(1), "x", 1, &out), BERTH_ENOTFOUND);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- failures and restarts ------------------------------------------------------ */

Test(session, a_failed_write_leaves_the_record_and_the_session_resumable_after_restart)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "kept;", 5);
    berth_storage_fault_reset("writer_write:-6:1");
    berth_record_init(&out);
    cr_assert_eq(append(eng, rec.id, ranged(5, 8, 4), "lost", 4, &out), BERTH_EIO);
    cr_assert_eq(stored_offset(rec.id), 5);

    restart();
    cr_assert_eq(stored_offset(rec.id), 5);
    cr_assert_eq(append(eng, rec.id, ranged(5, 8, 4), "more", 4, &out), 0, "%s", berth_error_last());
    finish_ok(rec.id, "kept;more", NULL);
    assert_blob(REPO, "kept;more");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_failed_close_of_the_write_leaves_the_session_resumable)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "kept;", 5);
    berth_storage_fault_reset("writer_close:-6:1");
    berth_record_init(&out);
    cr_assert_eq(append(eng, rec.id, ranged(5, 8, 4), "lost", 4, &out), BERTH_EIO);
    cr_assert_eq(stored_offset(rec.id), 5);
    append_ok(rec.id, "more", 9);
    finish_ok(rec.id, "kept;more", NULL);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_failed_record_write_leaves_unclaimed_bytes_that_never_reach_the_blob)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "kept;", 5);
    berth_storage_fault_reset("obj_put@sessions/:-11:1");
    berth_record_init(&out);
    /* The bytes reach the session's data, but no record claims them. */
    cr_assert_eq(append(eng, rec.id, body(24), "a much longer lost chunk", 24, &out), BERTH_ENOSPACE);

    restart();
    cr_assert_eq(stored_offset(rec.id), 5);
    append_ok(rec.id, "new", 8);
    finish_ok(rec.id, "kept;new", NULL);
    assert_blob(REPO, "kept;new");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_failed_last_chunk_write_in_finish_changes_nothing)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "head;", 5);
    berth_sha256_of("head;tail", 9, digest);
    berth_storage_fault_reset("writer_write:-6:1");
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, "tail", 4, &out), BERTH_EIO);
    cr_assert_eq(stored_offset(rec.id), 5);
    finish_ok(rec.id, "head;tail", "tail");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_failed_commit_of_the_blob_leaves_the_session_resumable)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_sha256_of("abcdef", 6, digest);
    berth_storage_fault_reset("data_commit:-6:1");
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, "def", 3, &out), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(st, digest, &(uint64_t){0}), BERTH_ENOTFOUND);
    cr_assert_eq(stored_offset(rec.id), 3, "the last chunk of a failed finish is not recorded");
    finish_ok(rec.id, "abcdef", "def");
    assert_blob(REPO, "abcdef");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_finish_retried_after_the_commit_succeeds)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_sha256_of("abcdef", 6, digest);
    /* The blob gets committed, then linking it fails: the record stays. */
    berth_storage_fault_reset("obj_put@repositories/:-6:1");
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, "def", 3, &out), BERTH_EIO);
    cr_assert_eq(berth_storage_blob_stat(st, digest, &(uint64_t){0}), 0);

    restart();
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, "def", 3, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.status, BERTH_STATUS_COMPLETE);
    assert_blob(REPO, "abcdef");
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(session, a_finish_whose_record_removal_fails_still_succeeds)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_storage_fault_reset("obj_delete@sessions/:-6:1");
    finish_ok(rec.id, "abc", NULL);
    assert_blob(REPO, "abc");
    /* The leftover record is purged once idle, without touching the blob. */
    cr_assert_eq(stored_sessions(), 1);
    cr_assert_eq(berth_engine_purge(eng, (int64_t)time(NULL) + TTL + 10, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(stored_sessions(), 0);
    assert_blob(REPO, "abc");
    berth_record_clear(&rec);
}

/* ---- concurrency ---------------------------------------------------------------- */

#define RACE_THREADS 8
#define RACE_ROUNDS 20
#define RACE_CHUNK 4096

typedef struct race {
    const char *id;
    const unsigned char *data;
    pthread_barrier_t *barrier;
    int wins[RACE_ROUNDS];
    int other_errors;
} race_t;

static void *race_run(void *arg)
{
    race_t *r = arg;
    berth_record_t out;

    berth_record_init(&out);
    for (int k = 0; k < RACE_ROUNDS; k++) {
        uint64_t first = (uint64_t)k * RACE_CHUNK;
        int err;
        pthread_barrier_wait(r->barrier);
        err = append(eng, r->id, ranged(first, first + RACE_CHUNK - 1, RACE_CHUNK), r->data + first, RACE_CHUNK, &out);
        if (err == 0)
            r->wins[k]++;
        else if (err != BERTH_ERANGE)
            r->other_errors++;
        pthread_barrier_wait(r->barrier);
    }
    berth_record_clear(&out);
    return NULL;
}

Test(session, concurrent_appends_at_one_offset_let_exactly_one_win, .timeout = 120)
{
    static unsigned char data[RACE_ROUNDS * RACE_CHUNK];
    char digest[BERTH_DIGEST_LEN];
    pthread_barrier_t barrier;
    pthread_t t[RACE_THREADS];
    race_t r[RACE_THREADS];
    berth_record_t rec, out;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 131 + (i >> 8));
    start(&rec);
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].id = rec.id;
        r[i].data = data;
        r[i].barrier = &barrier;
        cr_assert_eq(pthread_create(&t[i], NULL, race_run, &r[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);

    for (int k = 0; k < RACE_ROUNDS; k++) {
        int wins = 0;
        for (int i = 0; i < RACE_THREADS; i++)
            wins += r[i].wins[k];
        cr_expect_eq(wins, 1, "round %d: %d appends succeeded", k, wins);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        cr_expect_eq(r[i].other_errors, 0);

    berth_sha256_of(data, sizeof(data), digest);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, NULL, 0, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, sizeof(data));
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* A request holds the session for as long as its write is open: everything
 * else that needs the session is answered at once, and would deadlock this
 * single-threaded test if it waited instead. */
Test(session, a_busy_session_answers_at_once_instead_of_waiting, .timeout = 60)
{
    berth_record_t rec, out;
    berth_chunk_t slow = body(4);
    berth_write_t *w = NULL;
    size_t purged = 99;

    start(&rec);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_write(eng, REPO, rec.id, &slow, &w, &out), 0, "%s", berth_error_last());
    cr_assert_not_null(w);
    cr_assert_eq(berth_write_piece(w, "sl", 2), 0, "%s", berth_error_last());

    cr_assert_eq(append(eng, rec.id, ranged(0, 3, 4), "fast", 4, &out), BERTH_ERANGE);
    cr_assert_eq(out.offset, 0);
    cr_assert_str_eq(out.id, rec.id);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id,
                                  "sha256:0000000000000000000000000000000000000000000000000000000000000000", NULL, 0,
                                  &out),
                 BERTH_ERANGE);
    cr_assert_eq(berth_oci_cancel(eng, REPO, rec.id), BERTH_EBUSY);
    cr_assert_eq(berth_engine_purge(eng, INT64_MAX, &purged), 0);
    cr_assert_eq(purged, 0, "purge skips a session in use");
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), 0, "status does not need the session");

    cr_assert_eq(berth_write_piece(w, "ow", 2), 0, "%s", berth_error_last());
    cr_assert_eq(berth_write_commit(w, 1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 4);
    cr_assert_eq(stored_offset(rec.id), 4);
    finish_ok(rec.id, "slow", NULL);

    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* A backend passing everything to the filesystem one, whose obj_get of a
 * session record waits at a gate in one chosen thread, to stop purge
 * half way through its look at a session. */
typedef struct gate {
    berth_storage_t super;
    berth_storage_t *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int armed, entered, open;
    pthread_t reader;
} gate_t;

static berth_storage_t *gate_inner(berth_storage_t *b)
{
    return ((gate_t *)b)->inner;
}

static void gate_free(berth_storage_t *b)
{
    /* The test owns the gate and the backend behind it. */
}

static int gate_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    gate_t *g = (gate_t *)b;

    pthread_mutex_lock(&g->lock);
    if (g->armed && strncmp(key, "sessions/", 9) == 0 && pthread_equal(g->reader, pthread_self())) {
        g->entered = 1;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
            pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return berth_storage_obj_get(gate_inner(b), key, buf, len, ver);
}

static int gate_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                        berth_version_t *ver)
{
    return berth_storage_obj_put(gate_inner(b), key, buf, len, expect, ver);
}

static int gate_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    return berth_storage_obj_delete(gate_inner(b), key, expect);
}

static int gate_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    return berth_storage_obj_list(gate_inner(b), prefix, cb, ctx);
}

static int gate_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    return berth_storage_data_create(gate_inner(b), id, layout, state);
}

/* The gate's writer wraps the filesystem backend's. */
typedef struct gate_writer {
    berth_writer_t super;
    berth_writer_t *inner;
} gate_writer_t;

static int gate_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                          berth_writer_t **out)
{
    gate_writer_t *gw;
    berth_writer_t *inner = NULL;
    int err;

    if ((err = berth_storage_data_open(gate_inner(b), id, state, offset, hint, &inner)) < 0)
        return err;
    if ((gw = calloc(1, sizeof(*gw))) == NULL) {
        berth_storage_writer_close(inner, 0, NULL, NULL);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    gw->super.storage = b;
    gw->inner = inner;
    *out = &gw->super;
    return 0;
}

static int gate_writer_write(berth_writer_t *w, const void *buf, size_t len)
{
    return berth_storage_writer_write(((gate_writer_t *)w)->inner, buf, len);
}

static int gate_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state)
{
    gate_writer_t *gw = (gate_writer_t *)w;
    int err = berth_storage_writer_close(gw->inner, keep, kept, state);

    free(gw);
    return err;
}

static int gate_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                          size_t *got)
{
    return berth_storage_data_read(gate_inner(b), id, state, offset, buf, len, got);
}

static int gate_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest)
{
    return berth_storage_data_commit(gate_inner(b), id, state, size, digest);
}

static int gate_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    return berth_storage_data_remove(gate_inner(b), id, state);
}

static int gate_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    return berth_storage_data_list(gate_inner(b), cb, ctx);
}

static int gate_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    return berth_storage_blob_stat(gate_inner(b), digest, size);
}

static int gate_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    return berth_storage_blob_read(gate_inner(b), digest, offset, buf, len, got);
}

static int gate_blob_remove(berth_storage_t *b, const char *digest)
{
    return berth_storage_blob_remove(gate_inner(b), digest);
}

static int gate_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    return berth_storage_blob_list(gate_inner(b), cb, ctx);
}

static int gate_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap)
{
    return berth_storage_blob_url(gate_inner(b), digest, url, cap);
}

static const berth_storage_methods_t gate_methods = {
    .name = "gate",
    .free = gate_free,
    .obj_get = gate_obj_get,
    .obj_put = gate_obj_put,
    .obj_delete = gate_obj_delete,
    .obj_list = gate_obj_list,
    .data_create = gate_data_create,
    .data_open = gate_data_open,
    .writer_write = gate_writer_write,
    .writer_close = gate_writer_close,
    .data_read = gate_data_read,
    .data_commit = gate_data_commit,
    .data_remove = gate_data_remove,
    .data_list = gate_data_list,
    .blob_stat = gate_blob_stat,
    .blob_read = gate_blob_read,
    .blob_remove = gate_blob_remove,
    .blob_list = gate_blob_list,
    .blob_url = gate_blob_url,
};

static void gate_init(gate_t *g)
{
    memset(g, 0, sizeof(*g));
    g->super.methods = &gate_methods;
    g->inner = st;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void gate_fini(gate_t *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

typedef struct gate_call {
    gate_t *g;
    berth_engine_t *e;
    int err, done;
    size_t purged;
} gate_call_t;

static void *gate_purge(void *arg)
{
    gate_call_t *c = arg;
    size_t purged = 0;

    pthread_mutex_lock(&c->g->lock);
    c->g->reader = pthread_self();
    c->g->armed = 1;
    pthread_mutex_unlock(&c->g->lock);
    c->err = berth_engine_purge(c->e, (int64_t)time(NULL), &purged);
    /* Wakes the test even if purge never reached the gate. */
    pthread_mutex_lock(&c->g->lock);
    c->purged = purged;
    c->done = 1;
    pthread_cond_broadcast(&c->g->cond);
    pthread_mutex_unlock(&c->g->lock);
    return NULL;
}

Test(session, purge_looking_at_a_live_session_does_not_turn_its_chunks_away, .timeout = 60)
{
    gate_t g;
    berth_engine_t *ge;
    berth_record_t rec, out;
    gate_call_t call;
    pthread_t t;
    int err;

    gate_init(&g);
    ge = engine_open(&g.super, TTL);

    berth_record_init(&rec);
    cr_assert_eq(berth_oci_start(ge, REPO, &rec), 0, "%s", berth_error_last());
    /* Purge stops inside its read of the (fresh) session's record. */
    call = (gate_call_t){.g = &g, .e = ge};
    cr_assert_eq(pthread_create(&t, NULL, gate_purge, &call), 0);
    pthread_mutex_lock(&g.lock);
    while (!g.entered && !call.done)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);

    berth_record_init(&out);
    err = append(ge, rec.id, ranged(0, 3, 4), "live", 4, &out);
    pthread_mutex_lock(&g.lock);
    g.open = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(t, NULL);
    cr_assert_eq(err, 0, "a chunk for a live session was refused while purge looked at it: %s", berth_error_last());
    cr_assert_eq(out.offset, 4);
    cr_assert_eq(call.err, 0);
    cr_assert_eq(call.purged, 0);
    cr_assert_eq(berth_oci_status(ge, REPO, rec.id, &out), 0);
    cr_assert_eq(out.offset, 4);

    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(ge);
    gate_fini(&g);
}

/* ---- purge ---------------------------------------------------------------------- */

Test(session, purge_removes_idle_and_unreadable_sessions_and_keeps_fresh_ones)
{
    berth_record_t idle, fresh, broken, out;
    int64_t now = (int64_t)time(NULL);
    size_t purged = 0;

    start(&idle);
    start(&fresh);
    start(&broken);
    append_ok(idle.id, "old bytes", 9);
    append_ok(fresh.id, "new bytes", 9);
    backdate(idle.id, now - TTL - 100);
    put_record_text(broken.id, "not json", 8);

    cr_assert_eq(berth_engine_purge(eng, now, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 2);
    cr_assert_eq(stored_sessions(), 1);
    cr_assert_eq(stored_data(), 1, "the data of the purged sessions is freed");
    cr_assert_eq(stored_offset(fresh.id), 9);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, idle.id, &out), BERTH_ENOTFOUND);

    /* Later, the fresh one expires too. */
    cr_assert_eq(berth_engine_purge(eng, now + TTL + 100, &purged), 0);
    cr_assert_eq(purged, 1);
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
    berth_record_clear(&out);
    berth_record_clear(&idle);
    berth_record_clear(&fresh);
    berth_record_clear(&broken);
}

Test(session, purge_with_a_short_ttl_and_a_later_now)
{
    berth_engine_t *short_ttl = engine_open(st, 5);
    berth_record_t rec;
    size_t purged = 0;

    berth_record_init(&rec);
    cr_assert_eq(berth_oci_start(short_ttl, REPO, &rec), 0);
    cr_assert_eq(berth_engine_purge(short_ttl, rec.updated_at + 5, &purged), 0);
    cr_assert_eq(purged, 0, "not idle for more than the ttl yet");
    cr_assert_eq(berth_engine_purge(short_ttl, rec.updated_at + 6, &purged), 0);
    cr_assert_eq(purged, 1);
    berth_record_clear(&rec);
    berth_engine_free(short_ttl);
}

/* ---- blobs ---------------------------------------------------------------------- */

Test(session, blob_put_verifies_stores_and_links)
{
    char digest[BERTH_DIGEST_LEN], wrong[BERTH_DIGEST_LEN];
    uint64_t size;

    berth_sha256_of("monolith", 8, digest);
    berth_sha256_of("other", 5, wrong);
    cr_assert_eq(berth_blob_put(eng, REPO, wrong, "monolith", 8), BERTH_EDIGEST);
    cr_assert_eq(berth_storage_blob_stat(st, wrong, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_stat(st, digest, &size), BERTH_ENOTFOUND);

    cr_assert_eq(berth_blob_put(eng, REPO, digest, "monolith", 8), 0, "%s", berth_error_last());
    assert_blob(REPO, "monolith");
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "monolith", 8), 0, "a second put is idempotent");
    cr_assert_eq(berth_blob_put(eng, "library/second", digest, "monolith", 8), 0);
    assert_blob("library/second", "monolith");
    cr_assert_eq(stored_sessions(), 0, "no session is left behind");
    cr_assert_eq(stored_data(), 0);
}

Test(session, blob_put_links_with_the_link_key)
{
    char digest[BERTH_DIGEST_LEN], key[BERTH_OBJ_KEY_MAX], want[BERTH_OBJ_KEY_MAX];
    char *buf = NULL;
    size_t len = 0;

    berth_sha256_of("linked", 6, digest);
    cr_assert_eq(berth_link_key(key, REPO, digest), 0);
    snprintf(want, sizeof(want), "repositories/" REPO "/_layers/sha256/%s/link", digest + 7);
    cr_assert_str_eq(key, want);

    cr_assert_eq(berth_storage_obj_get(st, key, &buf, &len, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "linked", 6), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_get(st, key, &buf, &len, NULL), 0, "%s", berth_error_last());
    free(buf);
}

Test(session, a_failed_blob_put_leaves_nothing_behind)
{
    char digest[BERTH_DIGEST_LEN];
    uint64_t size;

    berth_sha256_of("doomed", 6, digest);
    berth_storage_fault_reset("writer_write:-11:1");
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "doomed", 6), BERTH_ENOSPACE);
    cr_assert_not_null(strstr(berth_error_last(), "injected"), "the error is the write's: %s", berth_error_last());
    cr_assert_eq(berth_storage_blob_stat(st, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
}

Test(session, blob_stat_sees_only_blobs_the_repository_links)
{
    char digest[BERTH_DIGEST_LEN], key[BERTH_OBJ_KEY_MAX];
    uint64_t size;

    berth_sha256_of("seen", 4, digest);
    cr_assert_eq(berth_blob_put(eng, "library/a", digest, "seen", 4), 0);
    cr_assert_eq(berth_blob_stat(eng, "library/a", digest, &size), 0);
    cr_assert_eq(size, 4);
    cr_assert_eq(berth_blob_stat(eng, "library/b", digest, &size), BERTH_ENOTFOUND);
    /* Without its link the repository does not see the blob. */
    cr_assert_eq(berth_link_key(key, "library/a", digest), 0);
    cr_assert_eq(berth_storage_obj_delete(st, key, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_blob_stat(eng, "library/a", digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_put(eng, "library/a", digest, "seen", 4), 0);
    cr_assert_eq(berth_blob_stat(eng, "library/a", digest, &size), 0);
    /* A link whose blob is gone shows nothing either. */
    cr_assert_eq(berth_storage_blob_remove(st, digest), 0);
    cr_assert_eq(berth_blob_stat(eng, "library/a", digest, &size), BERTH_ENOTFOUND);
}

Test(session, blob_mount_links_from_a_repository_that_has_the_blob)
{
    char digest[BERTH_DIGEST_LEN], absent[BERTH_DIGEST_LEN];
    uint64_t size;

    berth_sha256_of("shared", 6, digest);
    berth_sha256_of("absent", 6, absent);
    cr_assert_eq(berth_blob_put(eng, "library/src", digest, "shared", 6), 0);

    cr_assert_eq(berth_blob_mount(eng, "library/dst", "library/nope", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_stat(eng, "library/dst", digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_mount(eng, "library/dst", "library/src", absent), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_mount(eng, "library/dst", "library/src", digest), 0, "%s", berth_error_last());
    assert_blob("library/dst", "shared");

    cr_assert_eq(berth_blob_mount(eng, "library/any", NULL, digest), 0);
    assert_blob("library/any", "shared");
    cr_assert_eq(berth_blob_mount(eng, "library/any", NULL, absent), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_stat(eng, "library/any", absent, &size), BERTH_ENOTFOUND);
}

Test(session, blob_url_on_the_filesystem_is_served_by_berth)
{
    char digest[BERTH_DIGEST_LEN], url[256];

    berth_sha256_of("here", 4, digest);
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "here", 4), 0);
    cr_assert_eq(berth_blob_url(eng, digest, url, sizeof(url)), 1);
}

/* ---- lifecycle ------------------------------------------------------------------ */

Test(session, engine_new_needs_a_storage_and_free_accepts_null)
{
    berth_engine_options_t o = {.storage = NULL, .ttl_s = 1};
    berth_engine_t *e = (berth_engine_t *)1;

    cr_assert_eq(berth_engine_new(&e, &o), BERTH_EINVALID);
    cr_assert_null(e);
    berth_engine_free(NULL);
}

Test(session, expires_at_saturates_for_a_huge_ttl)
{
    berth_engine_t *forever = engine_open(st, UINT64_MAX);
    berth_record_t rec;

    berth_record_init(&rec);
    rec.updated_at = 1000;
    cr_assert_eq(berth_engine_expires_at(forever, &rec), INT64_MAX);
    cr_assert_eq(berth_engine_expires_at(eng, &rec), 1000 + TTL);
    berth_engine_free(forever);
}
