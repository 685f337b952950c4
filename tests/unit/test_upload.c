/*
 * OCI upload sessions of the engine (core/engine.h) over the filesystem
 * backend: the upload rules, what failures leave behind, restarts,
 * concurrency, purging and blobs (core/upload.c). Streamed writes and claims
 * have their own files (test_engine_write.c, test_engine_claim.c).
 *
 * Input the HTTP layer validates (malformed names, ids and digests) never
 * reaches the engine and is tested at that boundary (test_http_route.c).
 */
#include <criterion/criterion.h>

#include "core/meta.h"
#include "core/validate.h"

#define REPO "library/app"
#include "engine_fixture.h"

TestSuite(upload, .init = fixture_setup, .fini = fixture_teardown);

/* The session or its absence as every call of REPO sees it. */
static void assert_not_found(const char *id)
{
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(append(eng, id, body(1), "x", 1, &out), BERTH_ENOTFOUND);
    berth_record_clear(&out);
}

/* A session holding "kept;" is sent the chunk `lost`, declared as `c`,
 * which the fault `fault` makes fail with `err`. The session still holds
 * "kept;" (after a restart too, when `restarted`), takes more and
 * finishes. */
static void assert_append_fails_and_resumes(const char *fault, berth_chunk_t c, const char *lost, int err,
                                            int restarted)
{
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "kept;", 5);
    berth_storage_fault_reset(fault);
    berth_record_init(&out);
    cr_assert_eq(append(eng, rec.id, c, lost, strlen(lost), &out), err, "%s", berth_error_last());
    cr_assert_eq(stored_offset(rec.id), 5);
    if (restarted)
        restart(0);
    finish_after(rec.id, "kept;", "more");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* A session holding `head` is finished with the last chunk `last`, which
 * the fault `fault` makes fail (BERTH_EIO). The session still holds `head`
 * (the last chunk of a failed finish is not recorded); the blob is there
 * exactly when `blob_left`. The same finish retried (after a restart, when
 * `restarted`) makes the blob and leaves nothing of the session. */
static void assert_finish_fails_and_resumes(const char *head, const char *last, const char *fault, int blob_left,
                                            int restarted)
{
    char whole[64], digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    snprintf(whole, sizeof(whole), "%s%s", head, last);
    berth_sha256_of(whole, strlen(whole), digest);
    start(&rec);
    append_ok(rec.id, head, strlen(head));
    berth_storage_fault_reset(fault);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, last, strlen(last), &out), BERTH_EIO, "%s",
                 berth_error_last());
    cr_assert_eq(stored_offset(rec.id), strlen(head));
    cr_assert_eq(blob_exists(digest), blob_left);
    if (restarted)
        restart(0);
    finish_ok(rec.id, whole, last);
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- the round trip ------------------------------------------------------------ */

Test(upload, start_append_status_finish_makes_the_blob)
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
    berth_record_init(&out);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND, "a finished session is gone");
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(upload, finish_with_a_last_chunk_appends_it)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "first,", 6);
    finish_ok(rec.id, "first,last", "last");
    berth_record_clear(&rec);
}

Test(upload, a_monolithic_finish_on_an_empty_session_works)
{
    berth_record_t rec;

    start(&rec);
    finish_ok(rec.id, "all at once", "all at once");
    berth_record_clear(&rec);
}

Test(upload, an_empty_blob_can_be_uploaded)
{
    berth_record_t rec;

    start(&rec);
    finish_ok(rec.id, "", NULL);
    berth_record_clear(&rec);
}

Test(upload, an_empty_append_without_a_range_changes_nothing)
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

Test(upload, chunks_that_do_not_continue_the_session_are_refused_and_change_nothing)
{
    /* A wrong start, a retry of a chunk already received, then ranges and
     * bodies that disagree. */
    struct {
        berth_chunk_t c;
        const char *buf;
    } refused[] = {
        {ranged(7, 9, 3), "789"}, {ranged(0, 5, 6), "012345"}, {ranged(6, 8, 4), "6789"},
        {ranged(6, 9, 2), "67"},  {ranged(6, 6, 0), NULL},     {ranged(0, UINT64_MAX, 1), "x"},
    };
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "012345", 6);
    berth_record_init(&out);

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const char *buf = refused[i].buf;

        cr_assert_eq(append(eng, rec.id, refused[i].c, buf, buf != NULL ? strlen(buf) : 0, &out), BERTH_ERANGE,
                     "chunk %zu was taken", i);
        cr_assert_eq(out.offset, 6, "a 416 reports the current offset");
        cr_assert_str_eq(out.id, rec.id);
    }
    cr_assert_eq(stored_offset(rec.id), 6);

    /* Still resumable, with its hash intact. */
    cr_assert_eq(append(eng, rec.id, ranged(6, 9, 4), "6789", 4, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 10);
    finish_ok(rec.id, "0123456789", NULL);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- digests -------------------------------------------------------------------- */

Test(upload, a_wrong_digest_leaves_the_session_unchanged_and_resumable)
{
    char wrong[BERTH_DIGEST_LEN];
    berth_record_t rec, out;

    start(&rec);
    append_ok(rec.id, "part one;", 9);
    berth_sha256_of("something else", 14, wrong);
    berth_record_init(&out);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, wrong, "tail", 4, &out), BERTH_EDIGEST);
    cr_assert_eq(stored_offset(rec.id), 9, "the last chunk of a failed finish is not stored");
    cr_assert_not(blob_exists(wrong));
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, wrong, NULL, 0, &out), BERTH_EDIGEST);

    finish_after(rec.id, "part one;", "part two");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- not found ------------------------------------------------------------------ */

Test(upload, a_cancelled_session_is_gone)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "bytes", 5);
    cr_assert_eq(berth_oci_cancel(eng, REPO, rec.id), 0, "%s", berth_error_last());
    assert_not_found(rec.id);
    cr_assert_eq(berth_oci_cancel(eng, REPO, rec.id), BERTH_ENOTFOUND);
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0, "cancel frees the bytes");
    berth_record_clear(&rec);
}

Test(upload, a_session_is_invisible_from_another_repository)
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

Test(upload, unknown_ids_are_not_found)
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

Test(upload, an_expired_session_is_not_found)
{
    berth_record_t rec;

    start(&rec);
    backdate(rec.id, TTL + 10);
    assert_not_found(rec.id);
    berth_record_clear(&rec);
}

Test(upload, a_corrupt_record_is_not_found)
{
    berth_record_t rec;

    start(&rec);
    record_put_text(rec.id, "{\"version\":1,", 13);
    assert_not_found(rec.id);
    berth_record_clear(&rec);
}

/* ---- failures and restarts ------------------------------------------------------ */

Test(upload, a_failed_write_leaves_the_record_and_the_session_resumable_after_restart)
{
    assert_append_fails_and_resumes("writer_write:-6:1", ranged(5, 8, 4), "lost", BERTH_EIO, 1);
}

Test(upload, a_failed_close_of_the_write_leaves_the_session_resumable)
{
    assert_append_fails_and_resumes("writer_close:-6:1", ranged(5, 8, 4), "lost", BERTH_EIO, 0);
}

Test(upload, a_failed_record_write_leaves_unclaimed_bytes_that_never_reach_the_blob)
{
    /* The bytes reach the session's data, but no record claims them. */
    assert_append_fails_and_resumes("obj_put@sessions/:-11:1", body(24), "a much longer lost chunk", BERTH_ENOSPACE, 1);
}

Test(upload, a_failed_last_chunk_write_in_finish_changes_nothing)
{
    assert_finish_fails_and_resumes("head;", "tail", "writer_write:-6:1", 0, 0);
}

Test(upload, a_failed_commit_of_the_blob_leaves_the_session_resumable)
{
    assert_finish_fails_and_resumes("abc", "def", "data_commit:-6:1", 0, 0);
}

Test(upload, a_finish_retried_after_the_commit_succeeds)
{
    /* The blob gets committed, then linking it fails: the record stays. */
    assert_finish_fails_and_resumes("abc", "def", "obj_put@repositories/:-6:1", 1, 1);
}

Test(upload, a_finish_whose_record_removal_fails_still_succeeds)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_storage_fault_reset("obj_delete@sessions/:-6:1");
    finish_ok(rec.id, "abc", NULL);
    /* The leftover record is purged once idle, without touching the blob. */
    cr_assert_eq(stored_sessions(), 1);
    cr_assert_eq(berth_engine_purge(eng, (int64_t)time(NULL) + TTL + 10, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(stored_sessions(), 0);
    assert_blob(REPO, "abc", 3);
    berth_record_clear(&rec);
}

/* ---- concurrency ---------------------------------------------------------------- */

enum { RACE_THREADS = 8, RACE_ROUNDS = 20, RACE_CHUNK = 4096 };

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

Test(upload, concurrent_appends_at_one_offset_let_exactly_one_win, .timeout = 120)
{
    static unsigned char data[RACE_ROUNDS * RACE_CHUNK];
    char digest[BERTH_DIGEST_LEN];
    pthread_barrier_t barrier;
    race_t r[RACE_THREADS];
    berth_record_t rec, out;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 131 + (i >> 8));
    start(&rec);
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++)
        r[i] = (race_t){.id = rec.id, .data = data, .barrier = &barrier};
    run_threads(RACE_THREADS, race_run, r, sizeof(r[0]));
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
Test(upload, a_busy_session_answers_at_once_instead_of_waiting, .timeout = 60)
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

typedef struct purge_call {
    shim_t *s;
    berth_engine_t *e;
    int err;
    size_t purged;
} purge_call_t;

static void *purge_run(void *arg)
{
    purge_call_t *c = arg;

    shim_hold(c->s, &c->s->records, 1);
    c->err = berth_engine_purge(c->e, (int64_t)time(NULL), &c->purged);
    return NULL;
}

Test(upload, purge_looking_at_a_live_session_does_not_turn_its_chunks_away, .timeout = 60)
{
    berth_engine_t *se;
    berth_record_t rec, out;
    purge_call_t call;
    pthread_t t;
    shim_t s;
    int err;

    shim_init(&s);
    se = fixture_engine_open(&s.super, TTL, 0);
    berth_record_init(&rec);
    cr_assert_eq(berth_oci_start(se, REPO, &rec), 0, "%s", berth_error_last());
    /* Purge stops inside its read of the (fresh) session's record. */
    call = (purge_call_t){.s = &s, .e = se};
    cr_assert_eq(pthread_create(&t, NULL, purge_run, &call), 0);
    shim_wait(&s, &s.records);

    berth_record_init(&out);
    err = append(se, rec.id, ranged(0, 3, 4), "live", 4, &out);
    shim_hold(&s, &s.records, 0);
    pthread_join(t, NULL);
    cr_assert_eq(err, 0, "a chunk for a live session was refused while purge looked at it: %s", berth_error_last());
    cr_assert_eq(out.offset, 4);
    cr_assert_eq(call.err, 0);
    cr_assert_eq(call.purged, 0);
    cr_assert_eq(berth_oci_status(se, REPO, rec.id, &out), 0);
    cr_assert_eq(out.offset, 4);

    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(se);
    shim_fini(&s);
}

/* ---- purge ---------------------------------------------------------------------- */

Test(upload, purge_removes_idle_and_unreadable_sessions_and_keeps_fresh_ones)
{
    berth_record_t idle, fresh, broken, out;
    int64_t now = (int64_t)time(NULL);
    size_t purged = 0;

    start(&idle);
    start(&fresh);
    start(&broken);
    append_ok(idle.id, "old bytes", 9);
    append_ok(fresh.id, "new bytes", 9);
    backdate(idle.id, TTL + 100);
    record_put_text(broken.id, "not json", 8);

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

Test(upload, purge_with_a_short_ttl_and_a_later_now)
{
    berth_engine_t *short_ttl = fixture_engine_open(st, 5, 0);
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

Test(upload, blob_put_verifies_stores_and_links)
{
    char digest[BERTH_DIGEST_LEN], wrong[BERTH_DIGEST_LEN];

    berth_sha256_of("monolith", 8, digest);
    berth_sha256_of("other", 5, wrong);
    cr_assert_eq(berth_blob_put(eng, REPO, wrong, "monolith", 8), BERTH_EDIGEST);
    cr_assert_not(blob_exists(wrong));
    cr_assert_not(blob_exists(digest));

    cr_assert_eq(berth_blob_put(eng, REPO, digest, "monolith", 8), 0, "%s", berth_error_last());
    assert_blob(REPO, "monolith", 8);
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "monolith", 8), 0, "a second put is idempotent");
    cr_assert_eq(berth_blob_put(eng, "library/second", digest, "monolith", 8), 0);
    assert_blob("library/second", "monolith", 8);
    cr_assert_eq(stored_sessions(), 0, "no session is left behind");
    cr_assert_eq(stored_data(), 0);
}

Test(upload, blob_put_links_with_the_link_key)
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

Test(upload, a_failed_blob_put_leaves_nothing_behind)
{
    char digest[BERTH_DIGEST_LEN];

    berth_sha256_of("doomed", 6, digest);
    berth_storage_fault_reset("writer_write:-11:1");
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "doomed", 6), BERTH_ENOSPACE);
    cr_assert_not_null(strstr(berth_error_last(), "injected"), "the error is the write's: %s", berth_error_last());
    cr_assert_not(blob_exists(digest));
    cr_assert_eq(stored_sessions(), 0);
    cr_assert_eq(stored_data(), 0);
}

Test(upload, blob_stat_sees_only_blobs_the_repository_links)
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

Test(upload, blob_mount_links_from_a_repository_that_has_the_blob)
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
    assert_blob("library/dst", "shared", 6);

    cr_assert_eq(berth_blob_mount(eng, "library/any", NULL, digest), 0);
    assert_blob("library/any", "shared", 6);
    cr_assert_eq(berth_blob_mount(eng, "library/any", NULL, absent), BERTH_ENOTFOUND);
    cr_assert_eq(berth_blob_stat(eng, "library/any", absent, &size), BERTH_ENOTFOUND);
}

Test(upload, blob_url_on_the_filesystem_is_served_by_berth)
{
    char digest[BERTH_DIGEST_LEN], url[256];

    berth_sha256_of("here", 4, digest);
    cr_assert_eq(berth_blob_put(eng, REPO, digest, "here", 4), 0);
    cr_assert_eq(berth_blob_url(eng, digest, url, sizeof(url)), 1);
}

/* ---- lifecycle ------------------------------------------------------------------ */

Test(upload, engine_new_needs_a_storage_and_free_accepts_null)
{
    berth_engine_options_t o = {.storage = NULL, .ttl_s = 1};
    berth_engine_t *e = (berth_engine_t *)1;

    cr_assert_eq(berth_engine_new(&e, &o), BERTH_EINVALID);
    cr_assert_null(e);
    berth_engine_free(NULL);
}

Test(upload, expires_at_saturates_for_a_huge_ttl)
{
    berth_engine_t *forever = fixture_engine_open(st, UINT64_MAX, 0);
    berth_record_t rec;

    berth_record_init(&rec);
    rec.updated_at = 1000;
    cr_assert_eq(berth_engine_expires_at(forever, &rec), INT64_MAX);
    cr_assert_eq(berth_engine_expires_at(eng, &rec), 1000 + TTL);
    berth_engine_free(forever);
}
