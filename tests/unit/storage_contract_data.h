/*
 * The storage contract suite, continued (storage_contract.h says how to use
 * it): session data, in append and in unit layouts, and blobs. Included
 * right after storage_contract.h.
 */
#ifndef BERTH_TESTS_STORAGE_CONTRACT_DATA_H
#define BERTH_TESTS_STORAGE_CONTRACT_DATA_H

#include "storage_contract.h"

/* ---- writes into data that is gone ---- */

/* What a write into gone data writes: bytes found nowhere else. */
static const char contract_gone_bytes[] = "<a write into data that is gone>";

/* Asserts that every blob still holds the bytes its digest names and none
 * of the gone write's. */
typedef struct contract_digests {
    char v[16][BERTH_DIGEST_LEN];
    uint64_t sizes[16];
    size_t n;
} contract_digests_t;

static int contract_digests_cb(void *ctx, const char *digest, uint64_t size, int64_t mtime)
{
    contract_digests_t *d = ctx;

    (void)mtime;
    if (d->n < 16) {
        snprintf(d->v[d->n], BERTH_DIGEST_LEN, "%s", digest);
        d->sizes[d->n] = size;
    }
    d->n++;
    return 0;
}

static void contract_assert_blobs_intact(const char *why)
{
    contract_digests_t d = {.n = 0};

    cr_assert_eq(berth_storage_blob_list(contract_b, contract_digests_cb, &d), 0, "%s", berth_error_last());
    cr_assert_leq(d.n, 16, "%s: %zu blobs", why, d.n);
    for (size_t i = 0; i < d.n; i++) {
        char sum[BERTH_DIGEST_LEN];
        unsigned char *buf = malloc(d.sizes[i] + 1);
        size_t at = 0, got = 0;

        cr_assert_not_null(buf);
        while (at < d.sizes[i]) {
            cr_assert_eq(berth_storage_blob_read(contract_b, d.v[i], at, buf + at, d.sizes[i] - at, &got), 0, "%s",
                         berth_error_last());
            cr_assert_gt(got, 0, "%s: blob %s ends at %zu of %llu", why, d.v[i], at, (unsigned long long)d.sizes[i]);
            at += got;
        }
        berth_sha256_of(buf, at, sum);
        cr_assert_str_eq(sum, d.v[i], "%s: blob %s changed", why, d.v[i]);
        cr_assert_null(memmem(buf, at, contract_gone_bytes, sizeof(contract_gone_bytes) - 1),
                       "%s: the gone write's bytes are in blob %s", why, d.v[i]);
        free(buf);
    }
}

typedef struct contract_id_seen {
    const char *id;
    int seen;
} contract_id_seen_t;

static int contract_id_seen_cb(void *ctx, const char *id, int64_t mtime)
{
    contract_id_seen_t *s = ctx;

    (void)mtime;
    s->seen += strcmp(s->id, id) == 0;
    return 0;
}

/* 1 if data_list names session `id`. */
static int contract_data_listed(const char *id)
{
    contract_id_seen_t s = {.id = id, .seen = 0};

    cr_assert_eq(berth_storage_data_list(contract_b, contract_id_seen_cb, &s), 0, "%s", berth_error_last());
    cr_assert_leq(s.seen, 1, "data_list names session %s %d times", id, s.seen);
    return s.seen;
}

/* Asserts the rule of storage.h for a write at `off` into data that is gone
 * (committed or removed): refused as not found (at data_open, or, for a
 * backend that asks nothing there, at a piece or at the keeping close) or,
 * when the including file defines CONTRACT_GONE_WRITES_MAY_SUCCEED,
 * accepted; either way no blob changes and another session's data neither
 * (a witness session holding bytes at the same offsets). An accepted write
 * leaves only debris: data_list names the session if anything is left,
 * data_remove without a state (the purge) removes it, and afterwards
 * nothing is listed or left (CONTRACT_ASSERT_NO_DEBRIS(id), if the
 * including file defines it, looks into the store itself). */
static void contract_assert_write_gone(const char *id, const char *state, uint64_t off, const char *why)
{
    size_t n = sizeof(contract_gone_bytes) - 1, wlen = (size_t)off + 2 * n;
    unsigned char *witness = contract_bytes(wlen, 77);
    char wid[BERTH_ID_LEN], *wstate = contract_data_new(wid, 0, 0);
    berth_writer_t *w = NULL;
    uint64_t kept = 0, woff = 0;
    char *next = NULL;
    int err;

    contract_append(wid, &wstate, &woff, witness, wlen, wlen);
    if ((err = berth_storage_data_open(contract_b, id, state, off, n, &w)) == 0) {
        if ((err = berth_storage_writer_write(w, contract_gone_bytes, n)) == 0)
            err = berth_storage_writer_close(w, 1, &kept, &next);
        else
            berth_storage_writer_close(w, 0, NULL, NULL);
        free(next);
    } else {
        cr_assert_null(w, "a failed data_open hands out no writer");
    }
#ifdef CONTRACT_GONE_WRITES_MAY_SUCCEED
    cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s: a write answered %d (%s)", why, err, berth_error_last());
#else
    cr_assert_eq(err, BERTH_ENOTFOUND, "%s: a write answered %d (%s)", why, err, berth_error_last());
#endif
    contract_assert_blobs_intact(why);
    contract_assert_data(wid, wstate, 0, witness, wlen);
    if (err == 0) {
        int listed = contract_data_listed(id);

        err = berth_storage_data_remove(contract_b, id, NULL);
        cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s: removing the debris: %d (%s)", why, err,
                  berth_error_last());
        cr_assert(err != 0 || listed, "%s: data_remove found debris that data_list does not name", why);
        cr_assert_eq(contract_data_listed(id), 0, "%s: data_list names the session after data_remove", why);
        cr_assert_eq(berth_storage_data_remove(contract_b, id, NULL), BERTH_ENOTFOUND, "%s", why);
#ifdef CONTRACT_ASSERT_NO_DEBRIS
        CONTRACT_ASSERT_NO_DEBRIS(id);
#endif
        contract_assert_blobs_intact(why);
    }
    cr_assert_eq(berth_storage_data_remove(contract_b, wid, wstate), 0, "%s", berth_error_last());
    free(wstate);
    free(witness);
}

/* ---- session data: append layouts ------------------------------------------------- */

Test(CONTRACT_SUITE, appended_pieces_read_back_and_commit_into_a_blob)
{
    static const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    contract_append(id, &state, &off, text, 10, 3);
    contract_append(id, &state, &off, text + 10, 26, 7);
    cr_assert_eq(off, 36);
    contract_assert_data(id, state, 0, text, 36);
    contract_assert_data(id, state, 12, text + 12, 5);
    berth_sha256_of(text, 36, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 36, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, text, 36);
    /* The engine crashed before saving its record: the same commit again. */
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 36, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, text, 36);
    /* The session's data is gone. */
    contract_assert_write_gone(id, state, 36, "committed data");
    cr_assert_eq(berth_storage_data_remove(contract_b, id, state), BERTH_ENOTFOUND);
    free(state);
}

Test(CONTRACT_SUITE, a_discarded_write_claims_nothing)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0), *next = NULL;
    berth_writer_t *w = NULL;
    uint64_t off = 0, kept = 99;

    contract_append(id, &state, &off, "kept|", 5, 5);
    cr_assert_eq(berth_storage_data_open(contract_b, id, state, off, 0, &w), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w, "discarded bytes", 15), 0);
    cr_assert_eq(berth_storage_writer_close(w, 0, &kept, &next), 0, "%s", berth_error_last());
    cr_assert_null(next);
    /* The next write starts where the kept bytes end, over the discarded. */
    contract_append(id, &state, &off, "then", 4, 4);
    contract_assert_data(id, state, 0, "kept|then", 9);
    berth_sha256_of("kept|then", 9, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 9, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "kept|then", 9);
    free(state);
}

Test(CONTRACT_SUITE, large_appends_in_many_pieces_are_byte_exact)
{
    size_t len = 2 * CONTRACT_UNIT + 12345;
    unsigned char *data = contract_bytes(len, 3);
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    contract_append(id, &state, &off, data, 300 * 1024 + 7, 64 * 1024 + 1);
    contract_append(id, &state, &off, data + off, len - off, 1024 * 1024);
    cr_assert_eq(off, len);
    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, len, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, data, len);
    free(state);
    free(data);
}

Test(CONTRACT_SUITE, commit_keeps_only_the_bytes_it_is_given)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    /* A write stored whose record never made it: bytes past the size. */
    contract_append(id, &state, &off, "claimed|unclaimed tail", 22, 22);
    berth_sha256_of("claimed", 7, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 7, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "claimed", 7);
    free(state);
}

Test(CONTRACT_SUITE, commit_of_empty_data_makes_an_empty_blob)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0);

    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 0, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "", 0);
    free(state);
}

Test(CONTRACT_SUITE, commit_onto_an_existing_blob_keeps_it_and_drops_the_session_bytes)
{
    char a[BERTH_ID_LEN], b[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN];
    char *sa = contract_data_new(a, 0, 0), *sb = contract_data_new(b, 0, 0);
    uint64_t oa = 0, ob = 0;

    berth_sha256_of("same", 4, digest);
    contract_append(a, &sa, &oa, "same", 4, 4);
    contract_append(b, &sb, &ob, "same", 4, 4);
    cr_assert_eq(berth_storage_data_commit(contract_b, a, sa, 4, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_commit(contract_b, b, sb, 4, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "same", 4);
    contract_assert_write_gone(b, sb, 4, "the session's data is gone");
    cr_assert_eq(berth_storage_data_commit(contract_b, b, sb, 4, digest), 0, "a repeated commit answers 0");
    contract_assert_blob(digest, "same", 4);
    free(sa);
    free(sb);
}

Test(CONTRACT_SUITE, data_remove_frees_the_data_once)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    contract_append(id, &state, &off, "bytes", 5, 5);
    cr_assert_eq(berth_storage_data_remove(contract_b, id, state), 0, "%s", berth_error_last());
    contract_assert_write_gone(id, state, 5, "removed data");
    cr_assert_eq(berth_storage_data_remove(contract_b, id, state), BERTH_ENOTFOUND);
    free(state);
}

Test(CONTRACT_SUITE, data_remove_without_a_state_still_removes)
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    contract_append(id, &state, &off, "orphan", 6, 6);
    cr_assert_eq(berth_storage_data_remove(contract_b, id, NULL), 0, "%s", berth_error_last());
    contract_assert_write_gone(id, state, 6, "data removed without a state");
    free(state);
}

Test(CONTRACT_SUITE, data_remove_of_unknown_data_is_not_found)
{
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_data_remove(contract_b, id, NULL), BERTH_ENOTFOUND);
}

Test(CONTRACT_SUITE, data_remove_with_a_state_from_before_commit_keeps_the_blob)
{
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, 0, 0), *before;
    uint64_t off = 0;

    contract_append(id, &state, &off, "precious", 8, 8);
    before = state != NULL ? strdup(state) : NULL;
    berth_sha256_of("precious", 8, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, 8, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_remove(contract_b, id, before), BERTH_ENOTFOUND, "%s", berth_error_last());
    contract_assert_blob(digest, "precious", 8);
    free(before);
    free(state);
}

typedef struct contract_ids {
    char ids[8][BERTH_ID_LEN];
    int64_t mtimes[8];
    size_t n;
} contract_ids_t;

static int contract_ids_cb(void *ctx, const char *id, int64_t mtime)
{
    contract_ids_t *l = ctx;

    if (l->n < 8) {
        snprintf(l->ids[l->n], BERTH_ID_LEN, "%s", id);
        l->mtimes[l->n] = mtime;
    }
    l->n++;
    return 0;
}

static int contract_ids_has(const contract_ids_t *l, const char *id)
{
    int found = 0;

    for (size_t i = 0; i < l->n && i < 8; i++)
        found += strcmp(l->ids[i], id) == 0;
    return found;
}

Test(CONTRACT_SUITE, data_list_names_every_session_with_data)
{
    char a[BERTH_ID_LEN], b[BERTH_ID_LEN], c[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN];
    char *sa = contract_data_new(a, 0, 0), *sb = contract_data_new(b, CONTRACT_UNIT, 2), *sc;
    contract_ids_t l = {.n = 0};
    int64_t now = (int64_t)time(NULL);
    uint64_t off = 0;

    sc = contract_data_new(c, 0, 0);
    contract_append(a, &sa, &off, "a", 1, 1);
    cr_assert_eq(berth_storage_data_list(contract_b, contract_ids_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 3, "listed %zu sessions", l.n);
    cr_assert_eq(contract_ids_has(&l, a), 1);
    cr_assert_eq(contract_ids_has(&l, b), 1, "created data counts, written or not");
    for (size_t i = 0; i < 3; i++)
        cr_assert(l.mtimes[i] > 0 && l.mtimes[i] <= now + 600, "mtime %lld", (long long)l.mtimes[i]);
    cr_assert_eq(berth_storage_data_remove(contract_b, b, sb), 0);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, c, sc, 0, digest), 0);
    l.n = 0;
    cr_assert_eq(berth_storage_data_list(contract_b, contract_ids_cb, &l), 0);
    cr_assert_eq(l.n, 1, "removed and committed data are not listed");
    cr_assert_str_eq(l.ids[0], a);
    free(sa);
    free(sb);
    free(sc);
}

/* ---- session data: unit layouts --------------------------------------------------- */

Test(CONTRACT_SUITE, units_written_out_of_order_and_again_commit_into_one_blob)
{
    size_t last = 1000, len = 2 * CONTRACT_UNIT + last;
    unsigned char *data = contract_bytes(len, 5), *other = contract_bytes(CONTRACT_UNIT, 6);
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, CONTRACT_UNIT, 3);

    contract_unit_write(id, state, 2, data + 2 * CONTRACT_UNIT, last, 4096);
    contract_unit_write(id, state, 1, other, CONTRACT_UNIT, 1024 * 1024);
    contract_unit_write(id, state, 0, data, CONTRACT_UNIT, 300 * 1024 + 1);
    /* The last complete write of a unit wins. */
    contract_unit_write(id, state, 1, data + CONTRACT_UNIT, CONTRACT_UNIT, 2 * 1024 * 1024);
    contract_assert_data(id, state, 0, data, len);
    contract_assert_data(id, state, CONTRACT_UNIT - 10, data + CONTRACT_UNIT - 10, 20);
    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, len, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, data, len);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, len, digest), 0, "a repeated commit answers 0");
    free(state);
    free(data);
    free(other);
}

typedef struct contract_unit_job {
    const char *id, *state;
    uint64_t k;
    const unsigned char *buf;
    size_t len;
    int err;
} contract_unit_job_t;

/* No criterion assertions off the main thread: the outcome is returned. */
static void *contract_unit_run(void *arg)
{
    contract_unit_job_t *j = arg;
    berth_writer_t *w = NULL;
    uint64_t kept = 0;
    char *next = NULL;
    int err;

    if ((err = berth_storage_data_open(contract_b, j->id, j->state, j->k * CONTRACT_UNIT, j->len, &w)) < 0) {
        j->err = err;
        return NULL;
    }
    for (size_t at = 0; at < j->len && err == 0; at += 256 * 1024 + 3)
        err = berth_storage_writer_write(w, j->buf + at, j->len - at < 256 * 1024 + 3 ? j->len - at : 256 * 1024 + 3);
    if (err == 0)
        err = berth_storage_writer_close(w, 1, &kept, &next);
    else
        berth_storage_writer_close(w, 0, NULL, NULL);
    j->err = err != 0 ? err : kept != j->len || next != NULL ? -100 : 0;
    free(next);
    return NULL;
}

Test(CONTRACT_SUITE, units_written_in_parallel_commit_into_one_blob)
{
    enum { UNITS = 4 };
    size_t len = (UNITS - 1) * CONTRACT_UNIT + 4097;
    unsigned char *data = contract_bytes(len, 9);
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = contract_data_new(id, CONTRACT_UNIT, UNITS);
    contract_unit_job_t jobs[UNITS];
    pthread_t t[UNITS];

    for (int k = 0; k < UNITS; k++) {
        jobs[k] = (contract_unit_job_t){.id = id, .state = state, .k = (uint64_t)k, .buf = data + k * CONTRACT_UNIT};
        jobs[k].len = k == UNITS - 1 ? len - k * CONTRACT_UNIT : CONTRACT_UNIT;
        cr_assert_eq(pthread_create(&t[k], NULL, contract_unit_run, &jobs[k]), 0);
    }
    for (int k = 0; k < UNITS; k++) {
        pthread_join(t[k], NULL);
        cr_assert_eq(jobs[k].err, 0, "unit %d: %d", k, jobs[k].err);
    }
    contract_assert_data(id, state, 0, data, len);
    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, len, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, data, len);
    free(state);
    free(data);
}

Test(CONTRACT_SUITE, unit_data_is_removed_whole)
{
    unsigned char *data = contract_bytes(CONTRACT_UNIT, 4);
    char id[BERTH_ID_LEN], *state = contract_data_new(id, CONTRACT_UNIT, 2);
    contract_ids_t l = {.n = 0};

    contract_unit_write(id, state, 0, data, CONTRACT_UNIT, CONTRACT_UNIT);
    cr_assert_eq(berth_storage_data_remove(contract_b, id, state), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_list(contract_b, contract_ids_cb, &l), 0);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(berth_storage_data_remove(contract_b, id, state), BERTH_ENOTFOUND);
    free(state);
    free(data);
}

/* ---- blobs ------------------------------------------------------------------------ */

Test(CONTRACT_SUITE, blob_read_serves_ranges_and_reports_the_end)
{
    char digest[BERTH_DIGEST_LEN], buf[32];
    size_t got = 99;

    contract_blob_make("0123456789", 10, digest);
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 3, buf, 4, &got), 0);
    cr_assert_eq(got, 4);
    cr_assert_eq(memcmp(buf, "3456", 4), 0);
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 7, buf, sizeof(buf), &got), 0);
    cr_assert_eq(got, 3, "a read over the end is short");
    cr_assert_eq(memcmp(buf, "789", 3), 0);
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 10, buf, sizeof(buf), &got), 0);
    cr_assert_eq(got, 0, "a read at the end gets 0");
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 1000, buf, sizeof(buf), &got), 0);
    cr_assert_eq(got, 0, "a read past the end gets 0");
}

Test(CONTRACT_SUITE, absent_blobs_are_not_found)
{
    char digest[BERTH_DIGEST_LEN], buf[4];
    uint64_t size;
    size_t got;

    berth_sha256_of("never stored", 12, digest);
    cr_assert_eq(berth_storage_blob_stat(contract_b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 0, buf, sizeof(buf), &got), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_remove(contract_b, digest), BERTH_ENOTFOUND);
}

Test(CONTRACT_SUITE, blob_remove_removes_once)
{
    char digest[BERTH_DIGEST_LEN];
    uint64_t size;

    contract_blob_make("remove me", 9, digest);
    cr_assert_eq(berth_storage_blob_remove(contract_b, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_blob_stat(contract_b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_remove(contract_b, digest), BERTH_ENOTFOUND);
    /* The same content can be committed again afterwards. */
    contract_blob_make("remove me", 9, digest);
    contract_assert_blob(digest, "remove me", 9);
}

typedef struct contract_blobs {
    char digests[8][BERTH_DIGEST_LEN];
    uint64_t sizes[8];
    int64_t mtimes[8];
    size_t n;
} contract_blobs_t;

static int contract_blobs_cb(void *ctx, const char *digest, uint64_t size, int64_t mtime)
{
    contract_blobs_t *l = ctx;

    if (l->n < 8) {
        snprintf(l->digests[l->n], BERTH_DIGEST_LEN, "%s", digest);
        l->sizes[l->n] = size;
        l->mtimes[l->n] = mtime;
    }
    l->n++;
    return 0;
}

Test(CONTRACT_SUITE, blob_list_names_committed_blobs_with_size_and_time)
{
    char d1[BERTH_DIGEST_LEN], d2[BERTH_DIGEST_LEN], id[BERTH_ID_LEN], *state;
    contract_blobs_t l = {.n = 0};
    int64_t now = (int64_t)time(NULL);
    uint64_t off = 0;

    cr_assert_eq(berth_storage_blob_list(contract_b, contract_blobs_cb, &l), 0);
    cr_assert_eq(l.n, 0);
    contract_blob_make("first blob", 10, d1);
    contract_blob_make("second", 6, d2);
    /* Open session data is no blob, nor is an object. */
    state = contract_data_new(id, 0, 0);
    contract_append(id, &state, &off, "pending", 7, 7);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/x", "y", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_blob_list(contract_b, contract_blobs_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 2, "listed %zu blobs", l.n);
    for (size_t i = 0; i < 2; i++) {
        int first = strcmp(l.digests[i], d1) == 0;
        cr_assert(first || strcmp(l.digests[i], d2) == 0, "unexpected %s", l.digests[i]);
        cr_assert_eq(l.sizes[i], first ? 10u : 6u);
        cr_assert(l.mtimes[i] >= now - 600 && l.mtimes[i] <= now + 600, "mtime %lld", (long long)l.mtimes[i]);
    }
    cr_assert_eq(berth_storage_blob_remove(contract_b, d1), 0);
    l.n = 0;
    cr_assert_eq(berth_storage_blob_list(contract_b, contract_blobs_cb, &l), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.digests[0], d2);
    free(state);
}

Test(CONTRACT_SUITE, blob_url_names_a_url_or_answers_serve_it_yourself)
{
    char digest[BERTH_DIGEST_LEN], url[2048];
    int rc;

    contract_blob_make("served", 6, digest);
    url[0] = '\0';
    rc = berth_storage_blob_url(contract_b, digest, url, sizeof(url));
    cr_assert(rc == 0 || rc == 1, "blob_url: %d (%s)", rc, berth_error_last());
    cr_assert(rc == 1 || url[0] != '\0', "blob_url answered 0 without a URL");
}

#endif
