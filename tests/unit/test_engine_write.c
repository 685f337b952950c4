/*
 * Streamed writes of the engine (core/engine.h): a request body taken
 * piece by piece, then committed, finished or aborted; what a declared
 * range or length, a cut body or a wrong digest leaves behind; part writes
 * streamed from several threads. Over the filesystem backend, with the
 * hashing pool on.
 */
#include <criterion/criterion.h>

#define REPO "library/stream"
#define FIXTURE_HASH_THREADS 2
#include "engine_fixture.h"

TestSuite(engine_write, .init = fixture_setup, .fini = fixture_teardown);

/* Feeds buf to w in pieces of varying sizes, the first ones tiny. */
static void pieces(berth_write_t *w, const void *buf, size_t len)
{
    static const size_t sizes[] = {1, 7, 4096, 65535, 1 << 20, 3, 300000};
    const unsigned char *p = buf;
    size_t i = 0;

    while (len > 0) {
        size_t n = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
        if (n > len)
            n = len;
        cr_assert_eq(berth_write_piece(w, p, n), 0, "%s", berth_error_last());
        p += n;
        len -= n;
    }
}

/* Feeds w the string `piece`, which the storage fails to take. */
static void failed_piece(berth_write_t *w, const char *piece)
{
    berth_storage_fault_reset("writer_write:-6:1");
    cr_assert_eq(berth_write_piece(w, piece, strlen(piece)), BERTH_EIO);
    berth_storage_fault_reset(NULL);
}

/* A session holding "abc", and a write into it, declared as `len` bytes,
 * that took "de" and then failed to store "fg". */
static berth_write_t *write_with_a_failed_piece(berth_record_t *rec, int64_t len)
{
    berth_write_t *w = write_after_abc(rec, len, "de");

    failed_piece(w, "fg");
    return w;
}

/* Writes `len` bytes `data` in pieces as a body declared as `c`, and
 * finishes the session with them: it becomes the blob of the `wlen` bytes
 * `whole`. */
static void write_finish_ok(const char *id, berth_chunk_t c, const void *data, size_t len, const void *whole,
                            size_t wlen)
{
    char digest[BERTH_DIGEST_LEN];
    berth_write_t *w = oci_write(id, c);
    berth_record_t out;

    pieces(w, data, len);
    berth_sha256_of(whole, wlen, digest);
    berth_record_init(&out);
    cr_assert_eq(berth_write_finish(w, digest, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.status, BERTH_STATUS_COMPLETE);
    cr_assert_eq(out.offset, wlen);
    cr_assert_str_eq(out.digest, digest);
    berth_record_clear(&out);
    assert_blob(REPO, whole, wlen);
}

/* The session's stored bytes [0, len) are `data` (read as the engine does,
 * through the record's state). */
static void assert_stored(const berth_record_t *rec, const void *data, size_t len)
{
    unsigned char *buf = malloc(len + 1);
    size_t off = 0;

    while (off < len) {
        size_t got = 0;
        cr_assert_eq(berth_storage_data_read(st, rec->id, rec->state, off, buf + off, len - off, &got), 0, "%s",
                     berth_error_last());
        cr_assert_gt(got, 0);
        off += got;
    }
    cr_assert_eq(memcmp(buf, data, len), 0, "the session's bytes differ from what was sent");
    free(buf);
}

/* ---- OCI writes ------------------------------------------------------------------- */

Test(engine_write, pieces_store_exactly_the_bytes_and_the_hash, .timeout = 120)
{
    size_t total = (3 << 20) + 12345, first = (5 << 19) + 17;
    unsigned char *data = random_bytes(total, 11);
    char digest[BERTH_DIGEST_LEN], part[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    start(&rec);
    /* A chunk with its Content-Range, in many pieces. */
    w = oci_write(rec.id, ranged(0, first - 1, (int64_t)first));
    pieces(w, data, first);
    berth_record_init(&out);
    cr_assert_eq(berth_write_commit(w, 1, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, first);
    cr_assert_eq(out.status, BERTH_STATUS_IN_PROGRESS);
    cr_assert_eq(berth_rangeset_count(&out.received), first);
    cr_assert_eq(berth_sha256_length(&out.hash), first);
    berth_sha256_digest(&out.hash, digest);
    berth_sha256_of(data, first, part);
    cr_assert_str_eq(digest, part, "the record's hash is the hash of the bytes sent");
    assert_stored(&out, data, first);
    cr_assert_eq(stored_offset(rec.id), first);

    /* The rest as a chunked body (length unknown), finished at once. */
    write_finish_ok(rec.id, body(-1), data + first, total - first, data, total);
    cr_assert_eq(berth_oci_status(eng, REPO, rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(stored_sessions(), 0);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    free(data);
}

Test(engine_write, a_write_of_no_bytes_can_finish_the_session)
{
    berth_record_t rec;

    start(&rec);
    append_ok(rec.id, "already here", 12);
    write_finish_ok(rec.id, body(0), "", 0, "already here", 12);
    berth_record_clear(&rec);
}

Test(engine_write, a_body_that_does_not_match_its_declared_range_or_length_records_nothing)
{
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_record_init(&out);

    /* Content-Range 3-12 and Content-Length 10, but 8 bytes arrive. */
    w = oci_write(rec.id, ranged(3, 12, 10));
    pieces(w, "dddddddd", 8);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_ERANGE);
    cr_assert_str_eq(out.id, rec.id, "a 416 reports the current record");
    cr_assert_eq(out.offset, 3);
    cr_assert_eq(stored_offset(rec.id), 3);

    /* Content-Range 3-12 with a chunked body of 4 bytes. */
    w = oci_write(rec.id, ranged(3, 12, -1));
    pieces(w, "eeee", 4);
    cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_ERANGE);
    cr_assert_eq(stored_offset(rec.id), 3);

    /* Content-Length 10, and 12 bytes arrive: refused by the piece that
     * overflows or by the commit. */
    w = oci_write(rec.id, body(10));
    err = berth_write_piece(w, "ffffffffffff", 12);
    if (err < 0) {
        cr_assert_eq(err, BERTH_ERANGE, "%s", berth_error_last());
        berth_write_abort(w);
    } else {
        cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_ERANGE);
    }

    /* None of it reached the session's content. */
    finish_after(rec.id, "abc", "defg");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_write, a_range_that_does_not_continue_the_session_is_refused_before_a_byte_is_read)
{
    berth_record_t rec, cur;
    berth_chunk_t c;
    berth_write_t *w = (berth_write_t *)1;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    berth_record_init(&cur);
    c = ranged(4, 6, 3);
    cr_assert_eq(berth_oci_write(eng, REPO, rec.id, &c, &w, &cur), BERTH_ERANGE);
    cr_assert_null(w);
    cr_assert_str_eq(cur.id, rec.id);
    cr_assert_eq(cur.offset, 3);
    c = ranged(3, 5, 4); /* the range and the length disagree */
    cr_assert_eq(berth_oci_write(eng, REPO, rec.id, &c, &w, &cur), BERTH_ERANGE);
    cr_assert_eq(cur.offset, 3);
    cr_assert_eq(stored_offset(rec.id), 3);
    /* The refusals hold no claim: the next write is accepted. */
    w = oci_write(rec.id, ranged(3, 5, 3));
    berth_write_abort(w);
    berth_record_clear(&cur);
    berth_record_clear(&rec);
}

Test(engine_write, a_cut_body_keeps_the_bytes_that_arrived_and_the_session_resumes, .timeout = 60)
{
    size_t total = 100000, cut = 40000;
    unsigned char *data = random_bytes(total, 12);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    start(&rec);
    berth_record_init(&out);
    /* Nothing arrived before the cut: nothing changes. */
    w = oci_write(rec.id, ranged(0, total - 1, (int64_t)total));
    cr_assert_eq(berth_write_commit(w, 0, &out), 0, "%s", berth_error_last());
    cr_assert_eq(stored_offset(rec.id), 0);

    /* The client declared the whole, the connection dropped after 40000. */
    w = oci_write(rec.id, ranged(0, total - 1, (int64_t)total));
    pieces(w, data, cut);
    cr_assert_eq(berth_write_commit(w, 0, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, cut, "the bytes that arrived are the session's");
    cr_assert_eq(berth_sha256_length(&out.hash), cut);
    cr_assert_eq(stored_offset(rec.id), cut);
    assert_stored(&out, data, cut);

    /* The client asks where to go on, sends the rest, finishes. */
    cr_assert_eq(append(eng, rec.id, ranged(cut, total - 1, (int64_t)(total - cut)), data + cut, total - cut, &out), 0,
                 "%s", berth_error_last());
    cr_assert_eq(out.offset, total);
    berth_sha256_of(data, total, digest);
    cr_assert_eq(berth_oci_finish(eng, REPO, rec.id, digest, NULL, 0, &out), 0, "%s", berth_error_last());
    assert_blob(REPO, data, total);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    free(data);
}

Test(engine_write, an_aborted_write_records_nothing_and_releases_the_session)
{
    berth_record_t rec;
    berth_write_t *w;

    start(&rec);
    append_ok(rec.id, "abc", 3);
    w = oci_write(rec.id, body(5));
    pieces(w, "XYZXY", 5);
    berth_write_abort(w);
    cr_assert_eq(stored_offset(rec.id), 3);
    /* An abort before any piece. */
    w = oci_write(rec.id, body(-1));
    berth_write_abort(w);
    finish_after(rec.id, "abc", "def");
    berth_record_clear(&rec);
}

Test(engine_write, a_wrong_digest_at_finish_leaves_the_offset_and_a_correct_finish_works)
{
    char wrong[BERTH_DIGEST_LEN], right[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;

    start(&rec);
    append_ok(rec.id, "part one;", 9);
    berth_sha256_of("part one;tail!", 14, wrong);
    berth_sha256_of("part one;tail", 13, right);
    berth_record_init(&out);

    w = oci_write(rec.id, body(4));
    pieces(w, "tail", 4);
    cr_assert_eq(berth_write_finish(w, wrong, &out), BERTH_EDIGEST);
    cr_assert_str_eq(out.id, rec.id, "a digest mismatch answers with the session's record");
    cr_assert_eq(out.offset, 9);
    cr_assert_eq(stored_offset(rec.id), 9, "the bytes of a failed finish are not recorded");
    cr_assert_not(blob_exists(wrong));
    cr_assert_not(blob_exists(right));

    write_finish_ok(rec.id, body(4), "tail", 4, "part one;tail", 13);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_write, a_failed_piece_fails_the_write_and_records_nothing)
{
    berth_record_t rec, out;
    berth_write_t *w;

    w = write_with_a_failed_piece(&rec, 6);
    cr_assert_neq(berth_write_piece(w, "hi", 2), 0, "a write whose piece failed takes no more");
    berth_record_init(&out);
    cr_assert_neq(berth_write_commit(w, 1, &out), 0);
    finish_after(rec.id, "abc", "def");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* What a write records after one of its pieces failed: never a hash of
 * bytes the storage did not take. */
Test(engine_write, a_cut_commit_after_a_failed_piece_leaves_a_consistent_session)
{
    berth_record_t rec, out;
    berth_write_t *w;
    uint64_t off;

    w = write_with_a_failed_piece(&rec, 4);
    berth_record_init(&out);
    (void)berth_write_commit(w, 0, &out);
    /* Whatever was recorded ("abc" or "abcde"), the session is readable
     * and its hash covers exactly its bytes. */
    off = stored_offset(rec.id);
    cr_assert(off == 3 || off == 5, "offset %llu", (unsigned long long)off);
    append_ok(rec.id, "abcdefg" + off, 7);
    finish_ok(rec.id, "abcdefg", NULL);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_write, a_finish_after_a_failed_piece_never_makes_a_blob_of_other_bytes)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec, out;
    berth_write_t *w;
    uint64_t size = 0;
    int err;

    w = write_with_a_failed_piece(&rec, 4);
    /* The digest of everything the client sent: the storage lacks "fg". */
    berth_sha256_of("abcdefg", 7, digest);
    berth_record_init(&out);
    err = berth_write_finish(w, digest, &out);
    if (berth_storage_blob_stat(st, digest, &size) == 0)
        cr_assert_eq(size, 7, "blob %s holds %llu bytes, not the 7 it names (finish answered %d)", digest,
                     (unsigned long long)size, err);
    cr_assert_neq(err, 0, "finished with bytes the storage did not take");
    cr_assert_eq(stored_offset(rec.id), 3, "a failed finish records nothing");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* A write is opened, fed and ended by whichever worker thread runs each
 * step of its request. */
typedef struct hop {
    berth_write_t *w;
    const unsigned char *buf;
    size_t len;
    const char *digest;
    int err;
    berth_record_t out;
} hop_t;

static void *hop_piece(void *arg)
{
    hop_t *h = arg;

    h->err = berth_write_piece(h->w, h->buf, h->len);
    return NULL;
}

static void *hop_finish(void *arg)
{
    hop_t *h = arg;

    h->err = berth_write_finish(h->w, h->digest, &h->out);
    return NULL;
}

Test(engine_write, a_write_may_move_between_threads_from_one_call_to_the_next, .timeout = 60)
{
    size_t total = (3 << 20) + 5;
    unsigned char *data = random_bytes(total, 15);
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;
    pthread_t t;
    hop_t h;

    start(&rec);
    berth_sha256_of(data, total, digest);
    h = (hop_t){.w = oci_write(rec.id, body((int64_t)total)), .digest = digest};
    berth_record_init(&h.out);
    for (size_t off = 0; off < total; off += 1 << 20) {
        h.buf = data + off;
        h.len = total - off < (1 << 20) ? total - off : 1 << 20;
        cr_assert_eq(pthread_create(&t, NULL, hop_piece, &h), 0);
        pthread_join(t, NULL);
        cr_assert_eq(h.err, 0);
    }
    cr_assert_eq(pthread_create(&t, NULL, hop_finish, &h), 0);
    pthread_join(t, NULL);
    cr_assert_eq(h.err, 0);
    cr_assert_eq(h.out.offset, total);
    assert_blob(REPO, data, total);
    berth_record_clear(&h.out);
    berth_record_clear(&rec);
    free(data);
}

/* ---- part writes ------------------------------------------------------------------ */

static void sha_of(const void *buf, size_t len, unsigned char out[32])
{
    char d[BERTH_DIGEST_LEN];

    berth_sha256_of(buf, len, d);
    for (int i = 0; i < 32; i++)
        sscanf(d + 7 + 2 * i, "%2hhx", &out[i]);
}

/* Writes the string `data` in pieces as part n, declared as `length` bytes
 * (-1: unknown) with the SHA-256 `sha` (may be NULL); what the commit
 * answers, `ended` saying whether the body arrived whole. */
static int write_part(const char *id, uint64_t n, int64_t length, const unsigned char *sha, const char *data, int ended)
{
    berth_write_t *w = part_write(id, n, length, sha);
    berth_record_t out;
    int err;

    pieces(w, data, strlen(data));
    berth_record_init(&out);
    err = berth_write_commit(w, ended, &out);
    berth_record_clear(&out);
    return err;
}

Test(engine_write, part_writes_take_pieces_and_check_size_and_digest_at_commit)
{
    unsigned char sha[32], bad[32] = {0};
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    create(&rec, 3, 8, 0, REPO, NULL);

    /* Part 2, declared, in pieces, with its digest. */
    sha_of("22222222", 8, sha);
    cr_assert_eq(write_part(rec.id, 2, 8, sha, "22222222", 1), BERTH_PARTS_STORED, "%s", berth_error_last());
    assert_received(rec.id, "2");

    /* A digest that does not match: nothing recorded. */
    cr_assert_eq(write_part(rec.id, 1, 8, bad, "11111111", 1), BERTH_EDIGEST);
    assert_received(rec.id, "2");

    /* Shorter than declared, or than a part must be: nothing recorded. */
    cr_assert_eq(write_part(rec.id, 1, 8, NULL, "1111", 1), BERTH_EINVALID);
    cr_assert_eq(write_part(rec.id, 1, -1, NULL, "1111", 1), BERTH_EINVALID);
    assert_received(rec.id, "2");

    /* Longer than a part can be: refused by a piece or by the commit. */
    w = part_write(rec.id, 1, -1, NULL);
    err = berth_write_piece(w, "111111111", 9);
    berth_record_init(&out);
    if (err < 0) {
        cr_assert_eq(err, BERTH_EINVALID, "%s", berth_error_last());
        berth_write_abort(w);
    } else {
        cr_assert_eq(berth_write_commit(w, 1, &out), BERTH_EINVALID);
    }
    assert_received(rec.id, "2");

    /* A cut part is not received, whatever arrived of it. */
    cr_assert_lt(write_part(rec.id, 1, 8, NULL, "111111", 0), 0);
    assert_received(rec.id, "2");
    /* Aborted: the same. */
    w = part_write(rec.id, 1, 8, NULL);
    pieces(w, "1111111", 7);
    berth_write_abort(w);
    assert_received(rec.id, "2");

    /* The last part of unknown length, chunked. */
    cr_assert_eq(write_part(rec.id, 3, -1, NULL, "333", 1), BERTH_PARTS_STORED, "%s", berth_error_last());
    cr_assert_eq(write_part(rec.id, 1, 8, NULL, "11111111", 1), BERTH_PARTS_STORED, "%s", berth_error_last());
    assert_received(rec.id, "1-3");

    complete_ok(rec.id, "1111111122222222333", 19);
    assert_blob(REPO, "1111111122222222333", 19);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(engine_write, a_part_write_refuses_what_cannot_be_the_part_before_a_byte_is_read)
{
    berth_record_t rec, cur;
    berth_write_t *w = (berth_write_t *)1;

    create(&rec, 3, 8, 20, NULL, NULL);
    berth_record_init(&cur);
    cr_assert_eq(berth_parts_write(eng, "alice", rec.id, 4, 8, NULL, &w, &cur), BERTH_EINVALID);
    cr_assert_null(w);
    cr_assert_eq(berth_parts_write(eng, "alice", rec.id, 1, 9, NULL, &w, &cur), BERTH_EINVALID);
    cr_assert_eq(berth_parts_write(eng, "alice", rec.id, 3, 8, NULL, &w, &cur), BERTH_EINVALID, "total_size says 4");
    cr_assert_eq(berth_parts_write(eng, "bob", rec.id, 1, 8, NULL, &w, &cur), BERTH_ENOTFOUND);
    w = part_write(rec.id, 3, 4, NULL);
    berth_write_abort(w);
    berth_record_clear(&cur);
    berth_record_clear(&rec);
}

Test(engine_write, a_part_whose_piece_failed_is_not_received)
{
    berth_record_t rec, out;
    berth_write_t *w;
    int err;

    create(&rec, 2, 4, 0, REPO, NULL);
    cr_assert_eq(put(rec.id, 1, "1111", 4), BERTH_PARTS_STORED);
    /* The last part, of unknown length: any size from 1 to 4 would do. */
    w = part_write(rec.id, 2, -1, NULL);
    cr_assert_eq(berth_write_piece(w, "ab", 2), 0);
    failed_piece(w, "cd");
    berth_record_init(&out);
    err = berth_write_commit(w, 1, &out);
    cr_assert_lt(err, 0, "a part whose piece failed was received (%d)", err);
    assert_received(rec.id, "1");

    cr_assert_eq(put(rec.id, 2, "xy", 2), BERTH_PARTS_STORED, "%s", berth_error_last());
    complete_ok(rec.id, "1111xy", 6);
    assert_blob(REPO, "1111xy", 6);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* Several threads stream the parts of one session, in a shuffled order,
 * each part in pieces. */
#define PW_THREADS 6
#define PW_PARTS 48
#define PW_SIZE 65536

typedef struct pw {
    const char *id;
    const unsigned char *data;
    size_t total;
    const uint64_t *order;
    pthread_mutex_t *lock;
    size_t *next;
    int failures;
    char msg[512];
} pw_t;

static void *pw_run(void *arg)
{
    pw_t *a = arg;
    berth_record_t out;

    berth_record_init(&out);
    for (;;) {
        uint64_t n;
        pthread_mutex_lock(a->lock);
        n = *a->next < PW_PARTS ? a->order[(*a->next)++] : 0;
        pthread_mutex_unlock(a->lock);
        if (n == 0)
            break;
        size_t off = (size_t)(n - 1) * PW_SIZE, len = a->total - off < PW_SIZE ? a->total - off : PW_SIZE;
        berth_write_t *w = NULL;
        int err = berth_parts_write(eng, "alice", a->id, n, n % 2 ? (int64_t)len : -1, NULL, &w, &out);
        for (size_t p = 0; err == 0 && p < len;) {
            size_t k = 1 + (size_t)((n * 7919 + p) % 20000);
            if (k > len - p)
                k = len - p;
            if ((err = berth_write_piece(w, a->data + off + p, k)) < 0)
                break;
            p += k;
        }
        if (w != NULL) {
            if (err < 0)
                berth_write_abort(w);
            else
                err = berth_write_commit(w, 1, &out);
        }
        if (err != BERTH_PARTS_STORED) {
            a->failures++;
            snprintf(a->msg, sizeof(a->msg), "part %llu: %d %s", (unsigned long long)n, err, berth_error_last());
        }
    }
    berth_record_clear(&out);
    return NULL;
}

Test(engine_write, parts_streamed_from_several_threads_out_of_order_complete_with_the_right_digest, .timeout = 120)
{
    size_t total = (size_t)PW_PARTS * PW_SIZE - 1000;
    unsigned char *data = random_bytes(total, 13);
    uint64_t order[PW_PARTS];
    pw_t a[PW_THREADS];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    berth_record_t rec;
    size_t next = 0;
    unsigned s = 99;

    for (size_t i = 0; i < PW_PARTS; i++)
        order[i] = i + 1;
    for (size_t i = PW_PARTS - 1; i > 0; i--) {
        s = s * 1103515245u + 12345u;
        size_t j = (s >> 8) % (i + 1);
        uint64_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    create(&rec, PW_PARTS, PW_SIZE, total, REPO, NULL);
    for (int i = 0; i < PW_THREADS; i++)
        a[i] = (pw_t){.id = rec.id, .data = data, .total = total, .order = order, .lock = &lock, .next = &next};
    run_threads(PW_THREADS, pw_run, a, sizeof(a[0]));
    for (int i = 0; i < PW_THREADS; i++)
        cr_assert_eq(a[i].failures, 0, "%s", a[i].msg);
    assert_received(rec.id, "1-48");
    complete_ok(rec.id, data, total);
    assert_blob(REPO, data, total);
    berth_record_clear(&rec);
    free(data);
}
