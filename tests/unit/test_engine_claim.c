/*
 * One lock domain for every session (core/engine.h): what an open write
 * excludes and what it lets through, purge beside open writes and without
 * records, and records replaced by another process (compare-and-swap).
 * Over the filesystem backend.
 */
#include <criterion/criterion.h>

#define REPO "library/claims"
#define FIXTURE_HASH_THREADS 1
#include "engine_fixture.h"

#define FAR_FUTURE ((int64_t)time(NULL) + 100 * TTL)

TestSuite(engine_claim, .init = fixture_setup, .fini = fixture_teardown);

/* Purges as if every session were long idle: `want` sessions go, and
 * session `id` has a record and data exactly when none did. */
static void assert_purge(const char *id, size_t want)
{
    size_t purged = 99;

    cr_assert_eq(berth_engine_purge(eng, FAR_FUTURE, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, want, "purged %zu sessions, not %zu (a session in use is not idle)", purged, want);
    cr_assert_eq(has_record(id), want == 0);
    cr_assert_eq(has_data(id), want == 0);
}

/* Purge skips session `id` while the write w into it is open; w, given
 * the rest of its bytes, commits (answering `committed`, the session then
 * holding `offset` bytes); purge then removes the idle session. */
static void assert_purge_waits_for(berth_write_t *w, const char *id, const char *rest, int committed, uint64_t offset)
{
    berth_record_t out;

    assert_purge(id, 0);
    cr_assert_eq(berth_write_piece(w, rest, strlen(rest)), 0, "%s", berth_error_last());
    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), committed, "%s", berth_error_last());
    cr_assert_eq(out.offset, offset);
    assert_purge(id, 1);
    berth_record_clear(&out);
}

/* A part session of n parts of 4 bytes whose parts before n hold "1111",
 * "2222", ..., and an open write of part n, declared as `len` bytes, that
 * took the string `piece`. */
static berth_write_t *write_last_part(berth_record_t *rec, uint64_t n, int64_t len, const char *piece)
{
    berth_write_t *w;

    create(rec, n, 4, 0, NULL, NULL);
    for (uint64_t k = 1; k < n; k++) {
        char part[4];

        memset(part, '0' + (int)k, sizeof(part));
        cr_assert_eq(put(rec->id, k, part, sizeof(part)), BERTH_PARTS_STORED);
    }
    w = part_write(rec->id, n, len, NULL);
    cr_assert_eq(berth_write_piece(w, piece, strlen(piece)), 0, "%s", berth_error_last());
    return w;
}

/* ---- OCI writes -------------------------------------------------------------------- */

Test(engine_claim, a_second_oci_write_while_one_is_open_gets_416_with_the_current_record, .timeout = 30)
{
    berth_record_t rec, cur, out;
    berth_chunk_t c = ranged(3, 5, 3);
    berth_write_t *w, *w2 = (berth_write_t *)1;

    w = write_after_abc(&rec, 3, "de");

    berth_record_init(&cur);
    cr_assert_eq(berth_oci_write(eng, REPO, rec.id, &c, &w2, &cur), BERTH_ERANGE);
    cr_assert_null(w2);
    cr_assert_str_eq(cur.id, rec.id, "the 416 carries the current record");
    cr_assert_eq(cur.offset, 3);
    cr_assert_eq(append(eng, rec.id, c, "xyz", 3, &cur), BERTH_ERANGE);
    cr_assert_eq(cur.offset, 3);

    berth_record_init(&out);
    cr_assert_eq(berth_write_piece(w, "f", 1), 0);
    cr_assert_eq(berth_write_commit(w, 1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 6);
    /* The claim went with the write. */
    cr_assert_eq(append(eng, rec.id, ranged(6, 8, 3), "ghi", 3, &out), 0, "%s", berth_error_last());
    finish_ok(rec.id, "abcdefghi", NULL);
    berth_record_clear(&cur);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_claim, sessions_are_claimed_one_by_one)
{
    berth_record_t a, b;
    berth_write_t *wa, *wb;

    start(&a);
    start(&b);
    wa = oci_write(a.id, body(1));
    wb = oci_write(b.id, body(1));
    cr_assert_eq(berth_write_piece(wa, "a", 1), 0);
    cr_assert_eq(berth_write_piece(wb, "b", 1), 0);
    cr_assert_eq(berth_write_commit(wb, 1, &b), 0, "%s", berth_error_last());
    cr_assert_eq(berth_write_commit(wa, 1, &a), 0, "%s", berth_error_last());
    cr_assert_eq(stored_offset(a.id), 1);
    cr_assert_eq(stored_offset(b.id), 1);
    berth_record_clear(&a);
    berth_record_clear(&b);
}

/* ---- part writes ------------------------------------------------------------------- */

Test(engine_claim, an_open_part_write_makes_complete_and_abort_busy_but_not_other_parts, .timeout = 30)
{
    berth_record_t rec, out;
    berth_write_t *w;

    w = write_last_part(&rec, 3, 2, "c");

    berth_record_init(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), BERTH_EBUSY);
    berth_record_clear(&out);
    cr_assert_eq(berth_parts_abort(eng, "alice", rec.id, &out), BERTH_EBUSY);
    berth_record_clear(&out);
    /* Other parts and status go on meanwhile. */
    cr_assert_eq(put(rec.id, 1, "1111", 4), BERTH_PARTS_SAME);
    cr_assert_eq(put(rec.id, 2, "BBBB", 4), BERTH_PARTS_STORED);
    assert_received(rec.id, "1-2");

    cr_assert_eq(berth_write_piece(w, "c", 1), 0);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    assert_received(rec.id, "1-3");
    berth_record_clear(&out);
    complete_ok(rec.id, "1111BBBBcc", 10);
    berth_record_clear(&rec);
}

typedef struct later {
    const char *id;
    const char *data;
    pthread_mutex_t lock;
    int done, err;
} later_t;

static void *later_put(void *arg)
{
    later_t *l = arg;
    int err = put(l->id, 2, l->data, strlen(l->data));

    pthread_mutex_lock(&l->lock);
    l->err = err;
    l->done = 1;
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static int later_done(later_t *l)
{
    int d;

    pthread_mutex_lock(&l->lock);
    d = l->done;
    pthread_mutex_unlock(&l->lock);
    return d;
}

Test(engine_claim, a_part_write_waits_for_an_earlier_write_of_the_same_part, .timeout = 30)
{
    struct timespec pause = {0, 200 * 1000 * 1000};
    later_t l = {.data = "LATE", .lock = PTHREAD_MUTEX_INITIALIZER};
    berth_record_t rec, out;
    berth_write_t *w;
    pthread_t t;

    w = write_last_part(&rec, 2, 4, "EA");
    l.id = rec.id;
    cr_assert_eq(pthread_create(&t, NULL, later_put, &l), 0);
    nanosleep(&pause, NULL);
    cr_assert_not(later_done(&l), "the second write of part 2 did not wait: %d", l.err);
    cr_assert_eq(berth_write_piece(w, "RL", 2), 0);
    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    pthread_join(t, NULL);
    cr_assert_eq(l.err, BERTH_PARTS_STORED, "the waiting write went on after the first: %d", l.err);
    berth_record_clear(&out);
    /* The last write of a part wins. */
    complete_ok(rec.id, "1111LATE", 8);
    berth_record_clear(&rec);
}

/* ---- purge ------------------------------------------------------------------------- */

Test(engine_claim, purge_skips_an_oci_session_with_an_open_write_and_removes_it_after, .timeout = 30)
{
    berth_record_t rec;
    berth_write_t *w = write_after_abc(&rec, 3, "def");

    assert_purge_waits_for(w, rec.id, "", 0, 6);
    berth_record_clear(&rec);
}

Test(engine_claim, purge_skips_a_part_session_with_an_open_part_write_and_removes_it_after, .timeout = 30)
{
    berth_record_t rec;
    berth_write_t *w = write_last_part(&rec, 2, 4, "22");

    assert_purge_waits_for(w, rec.id, "22", BERTH_PARTS_STORED, 8);
    berth_record_clear(&rec);
}

Test(engine_claim, purge_removes_data_whose_record_is_missing_once_older_than_the_ttl)
{
    char key[BERTH_OBJ_KEY_MAX];
    berth_record_t rec, keep;
    size_t purged = 0;

    start(&rec);
    start(&keep);
    append_ok(rec.id, "orphaned bytes", 14);
    append_ok(keep.id, "kept bytes", 10);
    record_key(key, rec.id);
    cr_assert_eq(berth_storage_obj_delete(st, key, NULL), 0, "%s", berth_error_last());

    /* Fresh data without a record may be a session being created. */
    cr_assert_eq(berth_engine_purge(eng, (int64_t)time(NULL), &purged), 0, "%s", berth_error_last());
    cr_assert(has_data(rec.id), "data younger than the ttl stays");
    cr_assert(has_data(keep.id));

    cr_assert_eq(berth_engine_purge(eng, (int64_t)time(NULL) + TTL + 100, &purged), 0, "%s", berth_error_last());
    cr_assert_geq(purged, 1);
    cr_assert_not(has_data(rec.id), "data nobody names is freed");
    cr_assert_not(has_record(rec.id));
    berth_record_clear(&rec);
    berth_record_clear(&keep);
}

/* ---- compare-and-swap --------------------------------------------------------------- */

Test(engine_claim, an_oci_commit_never_overwrites_a_record_another_process_replaced)
{
    char *theirs = NULL, *now = NULL;
    size_t theirs_len = 0, now_len = 0;
    berth_record_t rec, other, out;
    berth_write_t *w;
    int err;

    w = write_after_abc(&rec, 3, "def");

    /* Meanwhile another berth on the same store replaces the record. */
    berth_record_init(&other);
    record_load(rec.id, &other);
    other.updated_at += 17;
    record_store(rec.id, &other);
    cr_assert_eq(berth_record_encode(&other, &theirs, &theirs_len), 0);

    berth_record_init(&out);
    err = berth_write_commit(w, 1, &out);
    cr_assert(err == BERTH_ERANGE || err == BERTH_ECONFLICT, "the commit answered %d: %s", err, berth_error_last());
    if (out.id[0] != '\0') {
        cr_assert_eq(out.offset, 3, "the current record is the other writer's");
        cr_assert_eq(out.updated_at, other.updated_at);
    }
    cr_assert_eq(record_text(rec.id, &now, &now_len), 0);
    cr_assert_eq(now_len, theirs_len);
    cr_assert_eq(memcmp(now, theirs, now_len), 0, "the other writer's record was overwritten");

    /* The session goes on from the other writer's record. */
    finish_after(rec.id, "abc", "def");
    free(theirs);
    free(now);
    berth_record_clear(&out);
    berth_record_clear(&other);
    berth_record_clear(&rec);
}

Test(engine_claim, an_oci_commit_does_not_bring_back_a_session_another_process_cancelled)
{
    berth_storage_t *st2 = fixture_storage_open();
    berth_engine_t *eng2 = fixture_engine_open(st2, TTL, FIXTURE_HASH_THREADS);
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    w = write_after_abc(&rec, 3, "def");
    /* Another berth on the same store cancels the session meanwhile (its
     * claims are its own). */
    cr_assert_eq(berth_oci_cancel(eng2, REPO, rec.id), 0, "%s", berth_error_last());
    berth_record_init(&out);
    err = berth_write_commit(w, 1, &out);
    cr_assert_lt(err, 0, "the commit of a cancelled session succeeded");
    cr_assert_not(has_record(rec.id), "the commit stored a record for a cancelled session");
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(eng2);
    berth_storage_free(st2);
}

Test(engine_claim, part_writes_from_two_instances_on_one_store_both_count)
{
    berth_storage_t *st2 = fixture_storage_open();
    berth_engine_t *eng2 = fixture_engine_open(st2, TTL, FIXTURE_HASH_THREADS);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    create(&rec, 3, 4, 0, NULL, NULL);
    w = part_write(rec.id, 1, 4, NULL);
    cr_assert_eq(berth_write_piece(w, "1111", 4), 0);
    /* The other instance stores part 2 and its record while part 1 is open
     * here: the record this write started from is stale by its commit. */
    berth_record_init(&out);
    cr_assert_eq(berth_parts_put(eng2, "alice", rec.id, 2, "2222", 4, NULL, &out), BERTH_PARTS_STORED, "%s",
                 berth_error_last());
    berth_record_clear(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    cr_assert_eq(berth_rangeset_count(&out.received), 2, "the other instance's part was lost");
    assert_received(rec.id, "1-2");
    cr_assert_eq(put(rec.id, 3, "33", 2), BERTH_PARTS_STORED);
    berth_record_clear(&out);
    /* Completing from the other instance races this one's hashing of the
     * stored parts: a test of counting parts, not of that race. */
    settle(rec.id);
    cr_assert_eq(berth_parts_complete(eng2, "alice", rec.id, &out), 0, "%s", berth_error_last());
    berth_sha256_of("1111222233", 10, digest);
    cr_assert_str_eq(out.digest, digest);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    berth_engine_free(eng2);
    berth_storage_free(st2);
}
