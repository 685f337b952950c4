/*
 * One lock domain for every session (core/engine.h): what an open write
 * excludes and what it lets through, purge beside open writes and without
 * records, and records replaced by another process (compare-and-swap).
 * Over the filesystem backend.
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
#include "core/record.h"
#include "storage/fs/fs.h"
#include "storage/storage.h"

#define REPO "library/claims"
#define TTL 3600
#define FAR_FUTURE ((int64_t)time(NULL) + 100 * TTL)

static char root[64];
static berth_storage_t *st;
static berth_engine_t *eng;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static berth_storage_t *storage_open(void)
{
    berth_fs_options_t fo = {.root = root, .sync = BERTH_SYNC_COMMIT};
    berth_storage_t *b = NULL;

    cr_assert_eq(berth_storage_fs_new(&b, &fo), 0, "%s", berth_error_last());
    return b;
}

static berth_engine_t *engine_open(berth_storage_t *b)
{
    berth_engine_options_t eo = {.storage = b, .ttl_s = TTL, .max_part_size = 1 << 20, .hash_threads = 1};
    berth_engine_t *e = NULL;

    cr_assert_eq(berth_engine_new(&e, &eo), 0, "%s", berth_error_last());
    return e;
}

static void setup(void)
{
    berth_storage_fault_reset(NULL);
    snprintf(root, sizeof(root), "/tmp/berth-claim-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    st = storage_open();
    eng = engine_open(st);
}

static void teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_engine_free(eng);
    berth_storage_free(st);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(engine_claim, .init = setup, .fini = teardown);

static berth_chunk_t body(int64_t len)
{
    return (berth_chunk_t){.has_range = 0, .length = len};
}

static berth_chunk_t ranged(uint64_t first, uint64_t last, int64_t len)
{
    return (berth_chunk_t){.has_range = 1, .first = first, .last = last, .length = len};
}

static void start(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_oci_start(eng, REPO, rec), 0, "%s", berth_error_last());
}

static void append_ok(const char *id, const char *data, uint64_t want_offset)
{
    berth_chunk_t c = body((int64_t)strlen(data));
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(berth_oci_append(eng, REPO, id, &c, data, strlen(data), &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, want_offset);
    berth_record_clear(&out);
}

static berth_write_t *oci_write(const char *id, berth_chunk_t c)
{
    berth_record_t cur;
    berth_write_t *w = NULL;

    berth_record_init(&cur);
    cr_assert_eq(berth_oci_write(eng, REPO, id, &c, &w, &cur), 0, "%s", berth_error_last());
    berth_record_clear(&cur);
    return w;
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

static void finish_ok(const char *id, const char *whole)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t out;

    berth_record_init(&out);
    berth_sha256_of(whole, strlen(whole), digest);
    cr_assert_eq(berth_oci_finish(eng, REPO, id, digest, NULL, 0, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, strlen(whole));
    berth_record_clear(&out);
}

static void record_key(char key[BERTH_OBJ_KEY_MAX], const char *id)
{
    snprintf(key, BERTH_OBJ_KEY_MAX, "sessions/%s", id);
}

/* 1 when session `id` has a record object. */
static int has_record(const char *id)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    size_t len = 0;
    int err;

    record_key(key, id);
    err = berth_storage_obj_get(st, key, &buf, &len, NULL);
    free(buf);
    cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s", berth_error_last());
    return err == 0;
}

typedef struct find_data {
    const char *id;
    int found;
} find_data_t;

static int find_data_cb(void *ctx, const char *id, int64_t mtime)
{
    find_data_t *f = ctx;
    f->found += strcmp(f->id, id) == 0;
    return 0;
}

/* 1 when session `id` has data. */
static int has_data(const char *id)
{
    find_data_t f = {id, 0};

    cr_assert_eq(berth_storage_data_list(st, find_data_cb, &f), 0, "%s", berth_error_last());
    return f.found != 0;
}

static void create(berth_record_t *rec, uint64_t n, uint64_t ps, uint64_t total)
{
    berth_parts_spec_t spec = {.total_parts = n, .part_size = ps, .total_size = total, .owner = "alice"};

    berth_record_init(rec);
    cr_assert_eq(berth_parts_create(eng, &spec, rec), 0, "%s", berth_error_last());
}

static int put(berth_engine_t *e, const char *id, uint64_t n, const char *data)
{
    berth_record_t out;
    int err;

    berth_record_init(&out);
    err = berth_parts_put(e, "alice", id, n, data, strlen(data), NULL, &out);
    berth_record_clear(&out);
    return err;
}

static berth_write_t *part_write(const char *id, uint64_t n, int64_t length)
{
    berth_record_t cur;
    berth_write_t *w = NULL;

    berth_record_init(&cur);
    cr_assert_eq(berth_parts_write(eng, "alice", id, n, length, NULL, &w, &cur), 0, "%s", berth_error_last());
    berth_record_clear(&cur);
    return w;
}

static void assert_parts(const char *id, const char *want)
{
    berth_record_t rec;
    char *f = NULL;

    berth_record_init(&rec);
    cr_assert_eq(berth_parts_status(eng, "alice", id, 0, &rec, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_rangeset_format(&rec.received, &f), 0);
    cr_assert_str_eq(f, want);
    free(f);
    berth_record_clear(&rec);
}

/* Waits (a while) until the part session's hash covers every stored byte:
 * the hashing pool has nothing left to do for it. */
static void settle(const char *id)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    berth_record_t rec;

    berth_record_init(&rec);
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(berth_parts_status(eng, "alice", id, 0, &rec, NULL), 0, "%s", berth_error_last());
        if (berth_sha256_length(&rec.hash) == rec.offset)
            break;
        berth_record_clear(&rec);
        nanosleep(&pause, NULL);
    }
    berth_record_clear(&rec);
}

/* ---- OCI writes -------------------------------------------------------------------- */

Test(engine_claim, a_second_oci_write_while_one_is_open_gets_416_with_the_current_record, .timeout = 30)
{
    berth_record_t rec, cur, out;
    berth_chunk_t c = ranged(3, 5, 3);
    berth_write_t *w, *w2 = (berth_write_t *)1;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    w = oci_write(rec.id, body(3));
    cr_assert_eq(berth_write_piece(w, "de", 2), 0, "%s", berth_error_last());

    berth_record_init(&cur);
    cr_assert_eq(berth_oci_write(eng, REPO, rec.id, &c, &w2, &cur), BERTH_ERANGE);
    cr_assert_null(w2);
    cr_assert_str_eq(cur.id, rec.id, "the 416 carries the current record");
    cr_assert_eq(cur.offset, 3);
    cr_assert_eq(berth_oci_append(eng, REPO, rec.id, &c, "xyz", 3, &cur), BERTH_ERANGE);
    cr_assert_eq(cur.offset, 3);

    berth_record_init(&out);
    cr_assert_eq(berth_write_piece(w, "f", 1), 0);
    cr_assert_eq(berth_write_commit(w, 1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 6);
    /* The claim went with the write. */
    c = ranged(6, 8, 3);
    cr_assert_eq(berth_oci_append(eng, REPO, rec.id, &c, "ghi", 3, &out), 0, "%s", berth_error_last());
    finish_ok(rec.id, "abcdefghi");
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
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    create(&rec, 3, 4, 0);
    cr_assert_eq(put(eng, rec.id, 1, "aaaa"), BERTH_PARTS_STORED);
    cr_assert_eq(put(eng, rec.id, 2, "bbbb"), BERTH_PARTS_STORED);
    w = part_write(rec.id, 3, 2);
    cr_assert_eq(berth_write_piece(w, "c", 1), 0, "%s", berth_error_last());

    berth_record_init(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), BERTH_EBUSY);
    berth_record_clear(&out);
    cr_assert_eq(berth_parts_abort(eng, "alice", rec.id, &out), BERTH_EBUSY);
    berth_record_clear(&out);
    /* Other parts and status go on meanwhile. */
    cr_assert_eq(put(eng, rec.id, 1, "aaaa"), BERTH_PARTS_SAME);
    cr_assert_eq(put(eng, rec.id, 2, "BBBB"), BERTH_PARTS_STORED);
    assert_parts(rec.id, "1-2");

    cr_assert_eq(berth_write_piece(w, "c", 1), 0);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    assert_parts(rec.id, "1-3");
    berth_record_clear(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), 0, "%s", berth_error_last());
    berth_sha256_of("aaaaBBBBcc", 10, digest);
    cr_assert_str_eq(out.digest, digest);
    berth_record_clear(&out);
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
    int err = put(eng, l->id, 2, l->data);

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
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;
    pthread_t t;

    create(&rec, 2, 4, 0);
    cr_assert_eq(put(eng, rec.id, 1, "1111"), BERTH_PARTS_STORED);
    w = part_write(rec.id, 2, 4);
    cr_assert_eq(berth_write_piece(w, "EA", 2), 0);
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
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), 0, "%s", berth_error_last());
    berth_sha256_of("1111LATE", 8, digest);
    cr_assert_str_eq(out.digest, digest, "the last write of a part wins");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* ---- purge ------------------------------------------------------------------------- */

Test(engine_claim, purge_skips_an_oci_session_with_an_open_write_and_removes_it_after, .timeout = 30)
{
    berth_record_t rec, out;
    berth_write_t *w;
    size_t purged = 99;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    w = oci_write(rec.id, body(3));
    cr_assert_eq(berth_write_piece(w, "def", 3), 0);
    cr_assert_eq(berth_engine_purge(eng, FAR_FUTURE, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 0, "a session in use is not idle");
    cr_assert(has_record(rec.id));
    cr_assert(has_data(rec.id));

    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, 6);
    cr_assert_eq(berth_engine_purge(eng, FAR_FUTURE, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 1);
    cr_assert_not(has_record(rec.id));
    cr_assert_not(has_data(rec.id));
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_claim, purge_skips_a_part_session_with_an_open_part_write_and_removes_it_after, .timeout = 30)
{
    berth_record_t rec, out;
    berth_write_t *w;
    size_t purged = 99;

    create(&rec, 2, 4, 0);
    cr_assert_eq(put(eng, rec.id, 1, "1111"), BERTH_PARTS_STORED);
    w = part_write(rec.id, 2, 4);
    cr_assert_eq(berth_write_piece(w, "22", 2), 0);
    cr_assert_eq(berth_engine_purge(eng, FAR_FUTURE, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 0);
    cr_assert(has_record(rec.id));
    cr_assert(has_data(rec.id));
    cr_assert_eq(berth_write_piece(w, "22", 2), 0);
    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    cr_assert_eq(berth_engine_purge(eng, FAR_FUTURE, &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 1);
    cr_assert_not(has_record(rec.id));
    cr_assert_not(has_data(rec.id));
    berth_record_clear(&out);
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
    char key[BERTH_OBJ_KEY_MAX], *theirs = NULL, *now = NULL;
    size_t theirs_len = 0, now_len = 0;
    berth_record_t rec, other, out;
    berth_write_t *w;
    int err;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    w = oci_write(rec.id, body(3));
    cr_assert_eq(berth_write_piece(w, "def", 3), 0, "%s", berth_error_last());

    /* Meanwhile another berth on the same store replaces the record. */
    record_key(key, rec.id);
    berth_record_init(&other);
    cr_assert_eq(berth_storage_obj_get(st, key, &theirs, &theirs_len, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_record_decode(&other, theirs, theirs_len), 0, "%s", berth_error_last());
    free(theirs);
    other.updated_at += 17;
    cr_assert_eq(berth_record_encode(&other, &theirs, &theirs_len), 0);
    cr_assert_eq(berth_storage_obj_put(st, key, theirs, theirs_len, NULL, NULL), 0, "%s", berth_error_last());

    berth_record_init(&out);
    err = berth_write_commit(w, 1, &out);
    cr_assert(err == BERTH_ERANGE || err == BERTH_ECONFLICT, "the commit answered %d: %s", err, berth_error_last());
    if (out.id[0] != '\0') {
        cr_assert_eq(out.offset, 3, "the current record is the other writer's");
        cr_assert_eq(out.updated_at, other.updated_at);
    }
    cr_assert_eq(berth_storage_obj_get(st, key, &now, &now_len, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(now_len, theirs_len);
    cr_assert_eq(memcmp(now, theirs, now_len), 0, "the other writer's record was overwritten");

    /* The session goes on from the other writer's record. */
    cr_assert_eq(stored_offset(rec.id), 3);
    append_ok(rec.id, "def", 6);
    finish_ok(rec.id, "abcdef");
    free(theirs);
    free(now);
    berth_record_clear(&out);
    berth_record_clear(&other);
    berth_record_clear(&rec);
}

Test(engine_claim, an_oci_commit_does_not_bring_back_a_session_another_process_cancelled)
{
    berth_storage_t *st2 = storage_open();
    berth_engine_t *eng2 = engine_open(st2);
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    w = oci_write(rec.id, body(3));
    cr_assert_eq(berth_write_piece(w, "def", 3), 0, "%s", berth_error_last());
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
    berth_storage_t *st2 = storage_open();
    berth_engine_t *eng2 = engine_open(st2);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    create(&rec, 3, 4, 0);
    w = part_write(rec.id, 1, 4);
    cr_assert_eq(berth_write_piece(w, "1111", 4), 0);
    /* The other instance stores part 2 and its record while part 1 is open
     * here: the record this write started from is stale by its commit. */
    cr_assert_eq(put(eng2, rec.id, 2, "2222"), BERTH_PARTS_STORED, "%s", berth_error_last());
    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_PARTS_STORED, "%s", berth_error_last());
    cr_assert_eq(berth_rangeset_count(&out.received), 2, "the other instance's part was lost");
    assert_parts(rec.id, "1-2");
    cr_assert_eq(put(eng, rec.id, 3, "33"), BERTH_PARTS_STORED);
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
