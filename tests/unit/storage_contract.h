/*
 * The storage contract suite: the behaviour every backend owes the engine
 * (storage/storage.h), written once and run unchanged against each backend.
 *
 * The including file defines, before including this header:
 *   #define CONTRACT_SUITE <suite name>       e.g. storage_fs
 *   static berth_storage_t *contract_backend_new(void);
 *       a fresh, empty backend (criterion asserts inside are fine)
 *   static void contract_backend_cleanup(void);
 *       called after the backend is freed, to drop what the factory made
 *
 * Every Test here runs against the wrappers (berth_storage_*), the way the
 * engine uses a backend.
 */
#ifndef BERTH_TESTS_STORAGE_CONTRACT_H
#define BERTH_TESTS_STORAGE_CONTRACT_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/record.h"
#include "core/validate.h"
#include "storage/storage.h"

#ifndef CONTRACT_SUITE
#error "define CONTRACT_SUITE before including storage_contract.h"
#endif

static berth_storage_t *contract_backend_new(void);
static void contract_backend_cleanup(void);

static berth_storage_t *contract_b;

static void contract_setup(void)
{
    berth_storage_fault_reset(NULL);
    contract_b = contract_backend_new();
    cr_assert_not_null(contract_b);
}

static void contract_teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_storage_free(contract_b);
    contract_b = NULL;
    contract_backend_cleanup();
}

/* A fresh OCI record with a new id, as the engine makes them. */
static void contract_record_new(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_id_generate(rec->id), 0);
    rec->kind = BERTH_SESSION_OCI;
    rec->repository = strdup("library/contract");
    berth_sha256_init(&rec->hash);
}

/* A session created and recorded, ready for writes. */
static void contract_session_new(berth_record_t *rec)
{
    contract_record_new(rec);
    cr_assert_eq(berth_storage_upload_create(contract_b, rec), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_record_put(contract_b, rec->id, "{}", 2), 0, "%s", berth_error_last());
}

/* Asserts that blob `digest` holds exactly `len` bytes equal to `want`. */
static void contract_assert_blob(const char *digest, const void *want, size_t len)
{
    uint64_t size = 0;
    size_t got = 0;
    char *buf = malloc(len + 16);

    cr_assert_eq(berth_storage_blob_stat(contract_b, digest, &size), 0, "%s", berth_error_last());
    cr_assert_eq(size, len, "blob has %llu bytes, want %zu", (unsigned long long)size, len);
    cr_assert_eq(berth_storage_blob_read(contract_b, digest, 0, buf, len + 16, &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, len);
    cr_assert(len == 0 || memcmp(buf, want, len) == 0, "blob content differs");
    free(buf);
}

TestSuite(CONTRACT_SUITE, .init = contract_setup, .fini = contract_teardown);

/* ---- records ----------------------------------------------------------------- */

Test(CONTRACT_SUITE, record_get_of_unknown_id_is_not_found)
{
    char id[BERTH_ID_LEN], *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_get(contract_b, id, &buf, &len), BERTH_ENOTFOUND);
    cr_assert_null(buf);
}

Test(CONTRACT_SUITE, record_put_then_get_returns_the_same_bytes)
{
    static const char text[] = "{\"opaque\": \"bytes\",\n\t\"x\": 1}";
    char id[BERTH_ID_LEN], *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(contract_b, id, text, sizeof(text) - 1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_record_get(contract_b, id, &buf, &len), 0, "%s", berth_error_last());
    cr_assert_eq(len, sizeof(text) - 1);
    cr_assert_eq(memcmp(buf, text, len), 0);
    free(buf);
}

Test(CONTRACT_SUITE, record_put_replaces_a_longer_record_whole)
{
    char id[BERTH_ID_LEN], *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(contract_b, id, "a much longer first record", 26), 0);
    cr_assert_eq(berth_storage_record_put(contract_b, id, "short", 5), 0);
    cr_assert_eq(berth_storage_record_get(contract_b, id, &buf, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "short", 5), 0);
    free(buf);
}

typedef struct contract_list {
    char ids[8][BERTH_ID_LEN];
    size_t n;
    int stop_at; /* return non-zero after this many, 0 = never */
} contract_list_t;

static int contract_list_cb(void *ctx, const char *id)
{
    contract_list_t *l = ctx;

    if (l->n < 8)
        snprintf(l->ids[l->n], BERTH_ID_LEN, "%s", id);
    l->n++;
    return l->stop_at != 0 && (int)l->n >= l->stop_at ? 42 : 0;
}

Test(CONTRACT_SUITE, record_list_names_every_stored_record_once)
{
    char ids[3][BERTH_ID_LEN];
    contract_list_t l = {.n = 0};

    cr_assert_eq(berth_storage_record_list(contract_b, contract_list_cb, &l), 0);
    cr_assert_eq(l.n, 0, "a new backend lists %zu records", l.n);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(berth_id_generate(ids[i]), 0);
        cr_assert_eq(berth_storage_record_put(contract_b, ids[i], "{}", 2), 0);
    }
    cr_assert_eq(berth_storage_record_put(contract_b, ids[1], "{ }", 3), 0); /* a replace is not a new record */
    cr_assert_eq(berth_storage_record_list(contract_b, contract_list_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 3);
    for (int i = 0; i < 3; i++) {
        int seen = 0;
        for (size_t j = 0; j < l.n; j++)
            seen += strcmp(l.ids[j], ids[i]) == 0;
        cr_assert_eq(seen, 1, "id %s listed %d times", ids[i], seen);
    }
}

Test(CONTRACT_SUITE, record_list_stops_when_the_callback_says_so)
{
    contract_list_t l = {.n = 0, .stop_at = 2};
    char id[BERTH_ID_LEN];

    for (int i = 0; i < 4; i++) {
        cr_assert_eq(berth_id_generate(id), 0);
        cr_assert_eq(berth_storage_record_put(contract_b, id, "{}", 2), 0);
    }
    cr_assert_eq(berth_storage_record_list(contract_b, contract_list_cb, &l), 42);
    cr_assert_eq(l.n, 2);
}

typedef struct contract_race {
    char id[BERTH_ID_LEN];
    int writer;
    volatile int *stop;
    int bad;
} contract_race_t;

static const char *const contract_versions[] = {
    "A", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCCCCCCCCCC"};

static void *contract_race_run(void *arg)
{
    contract_race_t *r = arg;

    for (int i = 0; i < 200; i++) {
        if (r->writer) {
            const char *v = contract_versions[(i + r->writer) % 3];
            if (berth_storage_record_put(contract_b, r->id, v, strlen(v)) != 0)
                r->bad++;
        } else {
            char *buf = NULL;
            size_t len = 0;
            int whole = 0;
            if (berth_storage_record_get(contract_b, r->id, &buf, &len) != 0) {
                r->bad++;
                continue;
            }
            for (int k = 0; k < 3; k++)
                whole |= len == strlen(contract_versions[k]) && memcmp(buf, contract_versions[k], len) == 0;
            r->bad += !whole;
            free(buf);
        }
    }
    return NULL;
}

Test(CONTRACT_SUITE, concurrent_record_puts_never_show_a_partial_record)
{
    contract_race_t r[4];
    pthread_t t[4];
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(contract_b, id, "A", 1), 0);
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        memcpy(r[i].id, id, BERTH_ID_LEN);
        r[i].writer = i < 2 ? i + 1 : 0;
        cr_assert_eq(pthread_create(&t[i], NULL, contract_race_run, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(r[i].bad, 0, "thread %d saw %d failures or partial records", i, r[i].bad);
    }
}

/* ---- uploads ----------------------------------------------------------------- */

Test(CONTRACT_SUITE, writes_at_offsets_in_any_order_commit_into_one_blob)
{
    static const char data[] = "0123456789abcdefghij";
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 10, data + 10, 10), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, data, 4), 0);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 4, data + 4, 6), 0);
    rec.offset = 20;
    berth_sha256_of(data, 20, digest);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, data, 20);
    cr_assert_eq(berth_storage_upload_remove(contract_b, rec.id, &rec), 0, "%s", berth_error_last());
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, a_rewrite_at_the_same_offset_replaces_the_bytes)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, "xxxxyyyy", 8), 0);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 4, "zzzz", 4), 0);
    rec.offset = 8;
    berth_sha256_of("xxxxzzzz", 8, digest);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, digest), 0);
    contract_assert_blob(digest, "xxxxzzzz", 8);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, commit_keeps_only_the_bytes_the_record_claims)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    /* A chunk stored whose record never made it: bytes past the offset. */
    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, "claimed|unclaimed tail", 22), 0);
    rec.offset = 7;
    berth_sha256_of("claimed", 7, digest);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "claimed", 7);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, commit_of_an_empty_session_makes_an_empty_blob)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    contract_session_new(&rec);
    berth_sha256_of("", 0, digest);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "", 0);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, commit_onto_an_existing_blob_keeps_it_and_drops_the_session_bytes)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t a, b;

    berth_sha256_of("same", 4, digest);
    contract_session_new(&a);
    contract_session_new(&b);
    cr_assert_eq(berth_storage_upload_write(contract_b, &a, 0, "same", 4), 0);
    cr_assert_eq(berth_storage_upload_write(contract_b, &b, 0, "same", 4), 0);
    a.offset = b.offset = 4;
    cr_assert_eq(berth_storage_upload_commit(contract_b, &a, digest), 0);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &b, digest), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "same", 4);
    /* The session's data is gone; its record stays until removed. */
    cr_assert_eq(berth_storage_upload_write(contract_b, &b, 0, "x", 1), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_upload_remove(contract_b, b.id, &b), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_remove(contract_b, a.id, &a), 0, "%s", berth_error_last());
    contract_assert_blob(digest, "same", 4);
    berth_record_clear(&a);
    berth_record_clear(&b);
}

Test(CONTRACT_SUITE, upload_remove_drops_data_and_record)
{
    berth_record_t rec;
    char *buf = NULL;
    size_t len = 0;

    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, "bytes", 5), 0);
    cr_assert_eq(berth_storage_upload_remove(contract_b, rec.id, &rec), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_record_get(contract_b, rec.id, &buf, &len), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, "x", 1), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_upload_remove(contract_b, rec.id, &rec), BERTH_ENOTFOUND);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, upload_remove_without_a_readable_record_still_removes)
{
    berth_record_t rec;
    contract_list_t l = {.n = 0};

    contract_session_new(&rec);
    cr_assert_eq(berth_storage_record_put(contract_b, rec.id, "garbage", 7), 0);
    cr_assert_eq(berth_storage_upload_remove(contract_b, rec.id, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_record_list(contract_b, contract_list_cb, &l), 0);
    cr_assert_eq(l.n, 0);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, upload_remove_of_an_unknown_session_is_not_found)
{
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_upload_remove(contract_b, id, NULL), BERTH_ENOTFOUND);
}

/* ---- blobs ------------------------------------------------------------------- */

static void contract_blob_make(const char *data, size_t len, char digest[BERTH_DIGEST_LEN])
{
    berth_record_t rec;

    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, data, len), 0);
    rec.offset = len;
    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_remove(contract_b, rec.id, &rec), 0);
    berth_record_clear(&rec);
}

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

/* ---- links ------------------------------------------------------------------- */

Test(CONTRACT_SUITE, links_are_per_repository_and_idempotent)
{
    char digest[BERTH_DIGEST_LEN];

    berth_sha256_of("linked", 6, digest);
    cr_assert_eq(berth_storage_link_get(contract_b, "library/a", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a", digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a", digest), 0, "a second put succeeds");
    cr_assert_eq(berth_storage_link_get(contract_b, "library/a", digest), 0);
    cr_assert_eq(berth_storage_link_get(contract_b, "library/b", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_get(contract_b, "library", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_remove(contract_b, "library/a", digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_link_get(contract_b, "library/a", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_remove(contract_b, "library/a", digest), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a", digest), 0, "a removed link can come back");
    cr_assert_eq(berth_storage_link_get(contract_b, "library/a", digest), 0);
}

/* ---- the wrappers' argument checks ------------------------------------------- */

Test(CONTRACT_SUITE, wrappers_reject_names_that_could_escape_the_storage)
{
    char digest[BERTH_DIGEST_LEN], *buf = NULL;
    berth_record_t rec;
    uint64_t size;
    size_t len;

    berth_sha256_of("x", 1, digest);
    cr_assert_eq(berth_storage_record_get(contract_b, "../../etc/passwd", &buf, &len), BERTH_EINVALID);
    cr_assert_eq(berth_storage_record_put(contract_b, "../x", "{}", 2), BERTH_EINVALID);
    cr_assert_eq(berth_storage_upload_remove(contract_b, "", NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_stat(contract_b, "sha256:../../x", &size), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_stat(contract_b, "sha512:00", &size), BERTH_EINVALID);
    cr_assert_eq(berth_storage_link_put(contract_b, "../evil", digest), BERTH_EINVALID);
    cr_assert_eq(berth_storage_link_put(contract_b, "Upper/Case", digest), BERTH_EINVALID);
    cr_assert_eq(berth_storage_link_get(contract_b, "ok", NULL), BERTH_EINVALID);
    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_commit(contract_b, &rec, "sha256:abc"), BERTH_EINVALID);
    cr_assert_eq(berth_storage_upload_write(contract_b, NULL, 0, "x", 1), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_read(NULL, digest, 0, buf, 0, &len), BERTH_EINVALID);
    berth_record_clear(&rec);
}

/* ---- version 3: metadata and listings ------------------------------------------ */

typedef struct contract_keys {
    char keys[16][BERTH_META_KEY_MAX + 1];
    size_t n;
} contract_keys_t;

static int contract_keys_cb(void *ctx, const char *key)
{
    contract_keys_t *k = ctx;

    if (k->n < 16)
        snprintf(k->keys[k->n], sizeof(k->keys[0]), "%s", key);
    k->n++;
    return 0;
}

static int contract_keys_has(const contract_keys_t *k, const char *key)
{
    int found = 0;

    for (size_t i = 0; i < k->n && i < 16; i++)
        found += strcmp(k->keys[i], key) == 0;
    return found;
}

Test(CONTRACT_SUITE, meta_put_get_replace_delete)
{
    char *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_storage_meta_get(contract_b, "r/a/tags/latest", &buf, &len), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_meta_put(contract_b, "r/a/tags/latest", "a longer first value", 20), 0, "%s",
                 berth_error_last());
    cr_assert_eq(berth_storage_meta_put(contract_b, "r/a/tags/latest", "v2", 2), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_meta_get(contract_b, "r/a/tags/latest", &buf, &len), 0, "%s", berth_error_last());
    cr_assert_eq(len, 2, "put replaces the value whole");
    cr_assert_eq(memcmp(buf, "v2", 2), 0);
    cr_assert_eq(buf[len], '\0', "values come back NUL-terminated");
    free(buf);
    buf = NULL;
    cr_assert_eq(berth_storage_meta_put(contract_b, "empty", "", 0), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_meta_get(contract_b, "empty", &buf, &len), 0);
    cr_assert_eq(len, 0);
    free(buf);
    cr_assert_eq(berth_storage_meta_delete(contract_b, "r/a/tags/latest"), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_meta_get(contract_b, "r/a/tags/latest", &buf, &len), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_meta_delete(contract_b, "r/a/tags/latest"), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_meta_put(contract_b, "r/a/tags/latest", "v3", 2), 0, "a deleted key can come back");
}

Test(CONTRACT_SUITE, meta_keys_may_be_prefixes_of_other_keys)
{
    char *buf = NULL;
    size_t len = 0;

    /* Repository "a" and repository "a/b" both have objects. */
    cr_assert_eq(berth_storage_meta_put(contract_b, "c/a", "1", 1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_meta_put(contract_b, "c/a/b", "2", 1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_meta_get(contract_b, "c/a", &buf, &len), 0);
    cr_assert_eq(buf[0], '1');
    free(buf);
    cr_assert_eq(berth_storage_meta_get(contract_b, "c/a/b", &buf, &len), 0);
    cr_assert_eq(buf[0], '2');
    free(buf);
    cr_assert_eq(berth_storage_meta_get(contract_b, "c", &buf, &len), BERTH_ENOTFOUND, "no object at a bare prefix");
    cr_assert_eq(berth_storage_meta_delete(contract_b, "c/a"), 0);
    cr_assert_eq(berth_storage_meta_get(contract_b, "c/a/b", &buf, &len), 0, "deleting a/ leaves a/b");
    free(buf);
}

Test(CONTRACT_SUITE, meta_list_names_every_key_under_a_prefix_once)
{
    contract_keys_t k = {.n = 0};

    cr_assert_eq(berth_storage_meta_list(contract_b, "", contract_keys_cb, &k), 0);
    cr_assert_eq(k.n, 0, "a new backend lists nothing");
    cr_assert_eq(berth_storage_meta_list(contract_b, "nothing/here/", contract_keys_cb, &k), 0,
                 "an empty prefix is not an error");
    cr_assert_eq(k.n, 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "repositories/a/_t/v1", "x", 1), 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "repositories/a/_t/V1.0-rc_1", "x", 1), 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "repositories/a/b/_t/v1", "x", 1), 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "repositories/ab/_t/v1", "x", 1), 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "other", "x", 1), 0);
    cr_assert_eq(berth_storage_meta_put(contract_b, "repositories/a/_t/v1", "y", 1), 0, "a replaced key once");

    cr_assert_eq(berth_storage_meta_list(contract_b, "repositories/a/", contract_keys_cb, &k), 0, "%s",
                 berth_error_last());
    cr_assert_eq(k.n, 3, "listed %zu keys", k.n);
    cr_assert_eq(contract_keys_has(&k, "repositories/a/_t/v1"), 1);
    cr_assert_eq(contract_keys_has(&k, "repositories/a/_t/V1.0-rc_1"), 1);
    cr_assert_eq(contract_keys_has(&k, "repositories/a/b/_t/v1"), 1, "keys at any depth");
    k.n = 0;
    cr_assert_eq(berth_storage_meta_list(contract_b, "", contract_keys_cb, &k), 0);
    cr_assert_eq(k.n, 5);
    cr_assert_eq(contract_keys_has(&k, "other"), 1);
    k.n = 0;
    cr_assert_eq(berth_storage_meta_delete(contract_b, "repositories/a/b/_t/v1"), 0);
    cr_assert_eq(berth_storage_meta_list(contract_b, "repositories/a/", contract_keys_cb, &k), 0);
    cr_assert_eq(k.n, 2, "a deleted key is not listed");
}

Test(CONTRACT_SUITE, meta_wrappers_reject_bad_keys)
{
    char *buf = NULL;
    size_t len = 0;
    contract_keys_t k = {.n = 0};
    static const char *const bad[] = {"", "/a", "a/", "a//b", "a/../b", "..", ".", "a/./b", "a b", "a:b", "a~",
                                      "a\\b", "\xc3\xa9"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(berth_storage_meta_put(contract_b, bad[i], "x", 1), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(berth_storage_meta_get(contract_b, bad[i], &buf, &len), BERTH_EINVALID);
        cr_assert_eq(berth_storage_meta_delete(contract_b, bad[i]), BERTH_EINVALID);
    }
    cr_assert_eq(berth_storage_meta_list(contract_b, "a", contract_keys_cb, &k), BERTH_EINVALID, "no slash");
    cr_assert_eq(berth_storage_meta_list(contract_b, "../", contract_keys_cb, &k), BERTH_EINVALID);
    cr_assert_eq(berth_storage_meta_list(contract_b, "/", contract_keys_cb, &k), BERTH_EINVALID);
    cr_assert(berth_meta_key_valid("a/..b/c.d/_e-f", 14));
}

typedef struct contract_blobs {
    char digests[8][BERTH_DIGEST_LEN];
    uint64_t sizes[8];
    int64_t mtimes[8];
    char repos[8][BERTH_NAME_MAX + 1];
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

static int contract_links_cb(void *ctx, const char *repo, const char *digest, int64_t mtime)
{
    contract_blobs_t *l = ctx;

    if (l->n < 8) {
        snprintf(l->repos[l->n], sizeof(l->repos[0]), "%s", repo);
        snprintf(l->digests[l->n], BERTH_DIGEST_LEN, "%s", digest);
        l->mtimes[l->n] = mtime;
    }
    l->n++;
    return 0;
}

Test(CONTRACT_SUITE, blob_list_names_committed_blobs_with_size_and_time)
{
    char d1[BERTH_DIGEST_LEN], d2[BERTH_DIGEST_LEN];
    contract_blobs_t l = {.n = 0};
    berth_record_t rec;
    int64_t now = (int64_t)time(NULL);

    cr_assert_eq(berth_storage_blob_list(contract_b, contract_blobs_cb, &l), 0);
    cr_assert_eq(l.n, 0);
    contract_blob_make("first blob", 10, d1);
    contract_blob_make("second", 6, d2);
    /* An open session's bytes are not a blob. */
    contract_session_new(&rec);
    cr_assert_eq(berth_storage_upload_write(contract_b, &rec, 0, "pending", 7), 0);
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
    berth_storage_upload_remove(contract_b, rec.id, &rec);
    berth_record_clear(&rec);
}

Test(CONTRACT_SUITE, link_list_names_every_repository_link)
{
    char d1[BERTH_DIGEST_LEN], d2[BERTH_DIGEST_LEN];
    contract_blobs_t l = {.n = 0};
    int seen = 0;

    cr_assert_eq(berth_storage_link_list(contract_b, contract_links_cb, &l), 0);
    cr_assert_eq(l.n, 0);
    berth_sha256_of("one", 3, d1);
    berth_sha256_of("two", 3, d2);
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a", d1), 0);
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a", d2), 0);
    cr_assert_eq(berth_storage_link_put(contract_b, "library", d1), 0);
    cr_assert_eq(berth_storage_link_put(contract_b, "library/a/deeper", d2), 0);
    cr_assert_eq(berth_storage_link_list(contract_b, contract_links_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 4, "listed %zu links", l.n);
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(l.repos[i], "library/a") == 0)
            seen |= strcmp(l.digests[i], d1) == 0 ? 1 : 2;
        else if (strcmp(l.repos[i], "library") == 0 && strcmp(l.digests[i], d1) == 0)
            seen |= 4;
        else if (strcmp(l.repos[i], "library/a/deeper") == 0 && strcmp(l.digests[i], d2) == 0)
            seen |= 8;
    }
    cr_assert_eq(seen, 15, "links seen: %d", seen);
    cr_assert_eq(berth_storage_link_remove(contract_b, "library/a", d1), 0);
    l.n = 0;
    cr_assert_eq(berth_storage_link_list(contract_b, contract_links_cb, &l), 0);
    cr_assert_eq(l.n, 3, "a removed link is not listed");
}

#endif
