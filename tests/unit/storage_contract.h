/*
 * The storage contract suite: the behaviour every backend owes the engine
 * (storage/storage.h), written once and run unchanged against each backend.
 *
 * The including file defines, before including this header:
 *   #define CONTRACT_SUITE <suite name>       e.g. storage_fs_contract
 *   static berth_storage_t *contract_backend_new(void);
 *       a fresh, empty backend (criterion asserts inside are fine)
 *   static void contract_backend_cleanup(void);
 *       called after the backend is freed, to drop what the factory made
 * and may define:
 *   #define CONTRACT_UNIT <bytes>   the unit of the unit-layout tests
 *       (default 5 MiB: the smallest part S3 takes)
 *   #define CONTRACT_GONE_WRITES_MAY_SUCCEED
 *       the backend may accept a write into data that was removed or
 *       committed (storage.h, writer_close), leaving debris: the tests then
 *       check that the debris reaches no blob and no other session and that
 *       data_remove removes it, instead of a BERTH_ENOTFOUND
 *   #define CONTRACT_ASSERT_NO_DEBRIS(id)
 *       a statement asserting that the store itself holds nothing more of
 *       session `id` (run after such debris is removed)
 *
 * Every Test here runs against the wrappers (berth_storage_*), the way the
 * engine uses a backend. Helpers named contract_* may be used by the
 * including file's own tests.
 *
 * The suite is two headers, both included, in this order, right after the
 * definitions above: this one (the suite, the helpers, objects,
 * compare-and-swap, the wrappers' argument checks) and
 * storage_contract_data.h (session data and blobs).
 */
#ifndef BERTH_TESTS_STORAGE_CONTRACT_H
#define BERTH_TESTS_STORAGE_CONTRACT_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/validate.h"
#include "storage/storage.h"

#ifndef CONTRACT_SUITE
#error "define CONTRACT_SUITE before including storage_contract.h"
#endif
#ifndef CONTRACT_UNIT
#define CONTRACT_UNIT ((size_t)5 << 20)
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

TestSuite(CONTRACT_SUITE, .init = contract_setup, .fini = contract_teardown);

/* ---- helpers ------------------------------------------------------------------ */

/* Deterministic bytes that differ from offset to offset and seed to seed. */
static void contract_fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static unsigned char *contract_bytes(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n + 1);

    cr_assert_not_null(p);
    contract_fill(p, n, seed);
    return p;
}

/* Value and version of `key`; asserts that it is there. */
static char *contract_get(berth_storage_t *b, const char *key, size_t *len, berth_version_t *ver)
{
    char *buf = NULL;
    size_t n = 0;

    cr_assert_eq(berth_storage_obj_get(b, key, &buf, &n, ver), 0, "get %s: %s", key, berth_error_last());
    cr_assert_not_null(buf);
    cr_assert_eq(buf[n], '\0', "values come back NUL-terminated");
    if (len != NULL)
        *len = n;
    return buf;
}

static void contract_assert_value(berth_storage_t *b, const char *key, const char *want)
{
    size_t len;
    char *buf = contract_get(b, key, &len, NULL);

    cr_assert_eq(len, strlen(want), "%s holds %zu bytes, want %zu", key, len, strlen(want));
    cr_assert_eq(memcmp(buf, want, len), 0, "%s holds \"%s\", want \"%s\"", key, buf, want);
    free(buf);
}

/* One conditional increment of the decimal counter at `key` (absent: 0),
 * retried until no other writer got in between. 0 or the first error that
 * is not a conflict. */
static int contract_increment(berth_storage_t *b, const char *key, int *conflicts)
{
    for (int attempt = 0; attempt < 100000; attempt++) {
        berth_version_t ver;
        char *buf = NULL, text[32];
        size_t len = 0;
        long n = 0;
        int err = berth_storage_obj_get(b, key, &buf, &len, &ver);

        if (err == BERTH_ENOTFOUND)
            ver.tag[0] = '\0';
        else if (err < 0)
            return err;
        else
            n = strtol(buf, NULL, 10);
        free(buf);
        snprintf(text, sizeof(text), "%ld", n + 1);
        err = berth_storage_obj_put(b, key, text, strlen(text), &ver, NULL);
        if (err != BERTH_ECONFLICT)
            return err;
        if (conflicts != NULL)
            (*conflicts)++;
    }
    return BERTH_ERR;
}

/* Makes session data of the given layout; returns its state (may be NULL). */
static char *contract_data_new(char id[BERTH_ID_LEN], uint64_t unit, uint64_t units)
{
    berth_layout_t layout = {.unit = unit, .units = units};
    char *state = NULL;

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_data_create(contract_b, id, &layout, &state), 0, "%s", berth_error_last());
    return state;
}

/* Takes the state a keeping close hands back, if it hands one. */
static void contract_state_update(char **state, char *next)
{
    if (next != NULL) {
        free(*state);
        *state = next;
    }
}

/* One write of buf at *off in pieces of `piece` bytes, kept; the engine's
 * loop: what the backend kept is recorded, the rest sent again. */
static void contract_append(const char *id, char **state, uint64_t *off, const void *buf, size_t len, size_t piece)
{
    const unsigned char *p = buf;
    size_t done = 0;

    for (int round = 0; done < len || round == 0; round++) {
        berth_writer_t *w = NULL;
        uint64_t kept = 0;
        char *next = NULL;

        cr_assert_lt(round, 64, "the backend keeps nothing of what it is sent");
        cr_assert_eq(berth_storage_data_open(contract_b, id, *state, *off, len - done, &w), 0, "%s",
                     berth_error_last());
        for (size_t at = done; at < len; at += piece) {
            size_t n = len - at < piece ? len - at : piece;
            cr_assert_eq(berth_storage_writer_write(w, p + at, n), 0, "%s", berth_error_last());
        }
        cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), 0, "%s", berth_error_last());
        cr_assert_leq(kept, len - done, "kept %llu of %zu bytes", (unsigned long long)kept, len - done);
        contract_state_update(state, next);
        done += (size_t)kept;
        *off += kept;
        if (len == 0)
            break;
    }
}

/* Writes unit k (its bytes at buf, n of them) in pieces; asserts it is kept
 * whole and the state unchanged. */
static void contract_unit_write(const char *id, const char *state, uint64_t k, const void *buf, size_t n, size_t piece)
{
    const unsigned char *p = buf;
    berth_writer_t *w = NULL;
    uint64_t kept = 0;
    char *next = NULL;

    cr_assert_eq(berth_storage_data_open(contract_b, id, state, k * CONTRACT_UNIT, n, &w), 0, "%s",
                 berth_error_last());
    for (size_t at = 0; at < n; at += piece)
        cr_assert_eq(berth_storage_writer_write(w, p + at, n - at < piece ? n - at : piece), 0, "%s",
                     berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &next), 0, "%s", berth_error_last());
    cr_assert_eq(kept, n, "unit %llu: kept %llu of %zu", (unsigned long long)k, (unsigned long long)kept, n);
    cr_assert_null(next, "a unit write changed the state");
}

/* Asserts that session data [off, off + len) equals want. */
static void contract_assert_data(const char *id, const char *state, uint64_t off, const void *want, size_t len)
{
    unsigned char *got = malloc(len + 1);
    size_t at = 0, n = 0;

    cr_assert_not_null(got);
    while (at < len) {
        cr_assert_eq(berth_storage_data_read(contract_b, id, state, off + at, got + at, len - at, &n), 0, "%s",
                     berth_error_last());
        cr_assert_gt(n, 0, "data ends at %zu of %zu", at, len);
        at += n;
    }
    cr_assert(len == 0 || memcmp(got, want, len) == 0, "session data differs");
    free(got);
}

/* Asserts that blob `digest` holds exactly `len` bytes equal to `want`. */
static void contract_assert_blob(const char *digest, const void *want, size_t len)
{
    unsigned char *got = malloc(len + 16);
    uint64_t size = 0;
    size_t at = 0, n = 0;

    cr_assert_not_null(got);
    cr_assert_eq(berth_storage_blob_stat(contract_b, digest, &size), 0, "%s", berth_error_last());
    cr_assert_eq(size, len, "blob has %llu bytes, want %zu", (unsigned long long)size, len);
    while (at < len) {
        cr_assert_eq(berth_storage_blob_read(contract_b, digest, at, got + at, len + 16 - at, &n), 0, "%s",
                     berth_error_last());
        cr_assert_gt(n, 0, "blob ends at %zu of %zu", at, len);
        at += n;
    }
    cr_assert_eq(at, len);
    cr_assert(len == 0 || memcmp(got, want, len) == 0, "blob content differs");
    free(got);
}

/* A blob made the way the engine makes one: append data, commit. */
static void contract_blob_make(const void *data, size_t len, char digest[BERTH_DIGEST_LEN])
{
    char id[BERTH_ID_LEN], *state = contract_data_new(id, 0, 0);
    uint64_t off = 0;

    contract_append(id, &state, &off, data, len, len > 0 ? len : 1);
    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, state, len, digest), 0, "%s", berth_error_last());
    free(state);
}

/* Keys an obj_list reported, with sizes. */
#define CONTRACT_KEYS 64

typedef struct contract_keys {
    char *keys[CONTRACT_KEYS];
    uint64_t sizes[CONTRACT_KEYS];
    int64_t mtimes[CONTRACT_KEYS];
    size_t n;
    size_t stop_at; /* return 42 after this many, 0 = never */
} contract_keys_t;

static int contract_keys_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    contract_keys_t *k = ctx;

    if (k->n < CONTRACT_KEYS) {
        k->keys[k->n] = strdup(key);
        k->sizes[k->n] = size;
        k->mtimes[k->n] = mtime;
    }
    k->n++;
    return k->stop_at != 0 && k->n >= k->stop_at ? 42 : 0;
}

static void contract_keys_clear(contract_keys_t *k)
{
    for (size_t i = 0; i < k->n && i < CONTRACT_KEYS; i++)
        free(k->keys[i]);
    memset(k, 0, sizeof(*k));
}

/* How many times `key` was listed; its size into *size. */
static int contract_keys_has(const contract_keys_t *k, const char *key, uint64_t *size)
{
    int found = 0;

    for (size_t i = 0; i < k->n && i < CONTRACT_KEYS; i++) {
        if (strcmp(k->keys[i], key) == 0) {
            found++;
            if (size != NULL)
                *size = k->sizes[i];
        }
    }
    return found;
}

static void contract_list(const char *prefix, contract_keys_t *k)
{
    contract_keys_clear(k);
    cr_assert_eq(berth_storage_obj_list(contract_b, prefix, contract_keys_cb, k), 0, "list %s: %s", prefix,
                 berth_error_last());
}

/* ---- objects ------------------------------------------------------------------ */

Test(CONTRACT_SUITE, obj_get_of_an_absent_key_is_not_found)
{
    berth_version_t ver = {.tag = "junk"};
    char *buf = (char *)1;
    size_t len = 7;

    cr_assert_eq(berth_storage_obj_get(contract_b, "sessions/nothing", &buf, &len, &ver), BERTH_ENOTFOUND);
    cr_assert_null(buf);
    cr_assert_eq(berth_storage_obj_get(contract_b, "meta/nothing/here", &buf, &len, NULL), BERTH_ENOTFOUND);
}

Test(CONTRACT_SUITE, obj_put_then_get_returns_the_bytes_and_their_version)
{
    static const char text[] = "{\"opaque\": \"bytes\",\n\t\"x\": 1}";
    berth_version_t put, got;
    size_t len = 0;
    char *buf;

    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/a", text, sizeof(text) - 1, NULL, &put), 0, "%s",
                 berth_error_last());
    cr_assert_neq(put.tag[0], '\0', "a stored object has a version");
    buf = contract_get(contract_b, "sessions/a", &len, &got);
    cr_assert_eq(len, sizeof(text) - 1);
    cr_assert_eq(memcmp(buf, text, len), 0);
    cr_assert_str_eq(got.tag, put.tag, "get reports the version put made");
    free(buf);
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/b", "x", 1, NULL, NULL), 0, "ver may be NULL");
}

Test(CONTRACT_SUITE, obj_put_replaces_a_value_whole_and_changes_its_version)
{
    berth_version_t v1, v2, v3;

    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/r/a/tags/latest", "a longer first value", 20, NULL, &v1), 0,
                 "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/r/a/tags/latest", "v2", 2, NULL, &v2), 0);
    contract_assert_value(contract_b, "meta/r/a/tags/latest", "v2");
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/r/a/tags/latest", "v2", 2, NULL, &v3), 0);
    cr_assert_str_neq(v1.tag, v2.tag);
    /* A put of the same bytes may keep the version (S3's ETag is their
     * MD5): compare-and-swap then compares values, which is as safe. */
    cr_assert_neq(v3.tag[0], '\0');
    cr_assert_eq(berth_storage_obj_put(contract_b, "empty", "", 0, NULL, NULL), 0, "%s", berth_error_last());
    contract_assert_value(contract_b, "empty", "");
}

Test(CONTRACT_SUITE, obj_delete_removes_once_and_the_key_can_come_back)
{
    char *buf = NULL;
    size_t len;

    cr_assert_eq(berth_storage_obj_put(contract_b, "repositories/r/_layers/sha256/ab/link", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_delete(contract_b, "repositories/r/_layers/sha256/ab/link", NULL), 0, "%s",
                 berth_error_last());
    cr_assert_eq(berth_storage_obj_get(contract_b, "repositories/r/_layers/sha256/ab/link", &buf, &len, NULL),
                 BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_delete(contract_b, "repositories/r/_layers/sha256/ab/link", NULL),
                 BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_put(contract_b, "repositories/r/_layers/sha256/ab/link", "y", 1, NULL, NULL), 0,
                 "%s", berth_error_last());
    contract_assert_value(contract_b, "repositories/r/_layers/sha256/ab/link", "y");
}

Test(CONTRACT_SUITE, meta_keys_nest_inside_each_other)
{
    char *buf = NULL;
    size_t len;

    /* Repository "a" and repository "a/b" both have objects. */
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/c/a", "1", 1, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/c/a/b", "2", 1, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/c/a/b/c", "3", 1, NULL, NULL), 0, "%s", berth_error_last());
    contract_assert_value(contract_b, "meta/c/a", "1");
    contract_assert_value(contract_b, "meta/c/a/b", "2");
    contract_assert_value(contract_b, "meta/c/a/b/c", "3");
    cr_assert_eq(berth_storage_obj_get(contract_b, "meta/c", &buf, &len, NULL), BERTH_ENOTFOUND,
                 "no object at a bare prefix");
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/c/a/b", NULL), 0);
    contract_assert_value(contract_b, "meta/c/a", "1");
    contract_assert_value(contract_b, "meta/c/a/b/c", "3");
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/c/a/b/c", NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/c/a/b", "4", 1, NULL, NULL), 0, "%s", berth_error_last());
    contract_assert_value(contract_b, "meta/c/a/b", "4");
}

Test(CONTRACT_SUITE, obj_list_names_every_key_under_a_prefix_once)
{
    contract_keys_t k = {.n = 0};
    int64_t now = (int64_t)time(NULL);
    uint64_t size = 0;

    contract_list("", &k);
    cr_assert_eq(k.n, 0, "a new backend lists %zu objects", k.n);
    contract_list("nothing/here/", &k);
    cr_assert_eq(k.n, 0, "an empty prefix is not an error");
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/a/_t/v1", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/a/_t/V1.0-rc_1", "xy", 2, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/a/b/_t/v1", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/a", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/ab/_t/v1", "x", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/s1", "{}", 2, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "repositories/a/_layers/sha256/00/link", "l", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/repositories/a/_t/v1", "yyy", 3, NULL, NULL), 0,
                 "a replaced key once");

    contract_list("meta/repositories/a/", &k);
    cr_assert_eq(k.n, 3, "listed %zu keys", k.n);
    cr_assert_eq(contract_keys_has(&k, "meta/repositories/a/_t/v1", &size), 1);
    cr_assert_eq(size, 3, "the size of the value listed");
    cr_assert_eq(contract_keys_has(&k, "meta/repositories/a/_t/V1.0-rc_1", NULL), 1);
    cr_assert_eq(contract_keys_has(&k, "meta/repositories/a/b/_t/v1", NULL), 1, "keys at any depth");
    for (size_t i = 0; i < k.n; i++)
        cr_assert(k.mtimes[i] >= now - 600 && k.mtimes[i] <= now + 600, "mtime %lld", (long long)k.mtimes[i]);
    contract_list("", &k);
    cr_assert_eq(k.n, 7, "listed %zu keys in all", k.n);
    cr_assert_eq(contract_keys_has(&k, "meta/repositories/a", NULL), 1);
    cr_assert_eq(contract_keys_has(&k, "sessions/s1", NULL), 1);
    cr_assert_eq(contract_keys_has(&k, "repositories/a/_layers/sha256/00/link", NULL), 1);
    contract_list("sessions/", &k);
    cr_assert_eq(k.n, 1);
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/repositories/a/b/_t/v1", NULL), 0);
    contract_list("meta/repositories/a/", &k);
    cr_assert_eq(k.n, 2, "a deleted key is not listed");
    contract_keys_clear(&k);
}

Test(CONTRACT_SUITE, obj_list_stops_when_the_callback_says_so)
{
    contract_keys_t k = {.n = 0};
    char key[64];

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "sessions/s%d", i);
        cr_assert_eq(berth_storage_obj_put(contract_b, key, "{}", 2, NULL, NULL), 0);
    }
    k.stop_at = 2;
    cr_assert_eq(berth_storage_obj_list(contract_b, "sessions/", contract_keys_cb, &k), 42);
    cr_assert_eq(k.n, 2);
    contract_keys_clear(&k);
}

Test(CONTRACT_SUITE, obj_list_reaches_keys_nested_deeper_than_any_walk_limit)
{
    /* A repository name of 255 bytes has up to 128 components; its link
     * key five more. */
    char repo[BERTH_NAME_MAX + 1], key[BERTH_OBJ_KEY_MAX + 1], meta[BERTH_OBJ_KEY_MAX + 1];
    contract_keys_t k = {.n = 0};
    size_t n = 0;

    for (int i = 0; i < 127; i++)
        n += (size_t)snprintf(repo + n, sizeof(repo) - n, "%sa", i == 0 ? "" : "/");
    cr_assert(berth_name_valid(repo, strlen(repo)));
    snprintf(key, sizeof(key), "repositories/%s/_layers/sha256/%064d/link", repo, 0);
    snprintf(meta, sizeof(meta), "meta/%s/_manifests/tags/latest", repo);
    cr_assert_eq(berth_storage_obj_put(contract_b, key, "deep", 4, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(contract_b, meta, "deeper", 6, NULL, NULL), 0, "%s", berth_error_last());
    contract_assert_value(contract_b, key, "deep");
    contract_list("repositories/", &k);
    cr_assert_eq(k.n, 1, "listed %zu", k.n);
    cr_assert_eq(contract_keys_has(&k, key, NULL), 1);
    contract_list("meta/a/a/a/", &k);
    cr_assert_eq(contract_keys_has(&k, meta, NULL), 1);
    contract_list("", &k);
    cr_assert_eq(k.n, 2);
    contract_keys_clear(&k);
}

typedef struct contract_race {
    berth_storage_t *b;
    const char *key;
    int writer;
    int count;
    int bad;
    int conflicts;
} contract_race_t;

static const char *const contract_values[] = {
    "A", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCCCCCCCCCC"};

static void *contract_race_run(void *arg)
{
    contract_race_t *r = arg;

    for (int i = 0; i < r->count; i++) {
        if (r->writer) {
            const char *v = contract_values[(i + r->writer) % 3];
            r->bad += berth_storage_obj_put(r->b, r->key, v, strlen(v), NULL, NULL) != 0;
        } else {
            char *buf = NULL;
            size_t len = 0;
            int whole = 0;
            if (berth_storage_obj_get(r->b, r->key, &buf, &len, NULL) != 0) {
                r->bad++;
                continue;
            }
            for (int k = 0; k < 3; k++)
                whole |= len == strlen(contract_values[k]) && memcmp(buf, contract_values[k], len) == 0;
            r->bad += !whole;
            free(buf);
        }
    }
    return NULL;
}

Test(CONTRACT_SUITE, concurrent_puts_never_show_a_partial_value)
{
    contract_race_t r[4];
    pthread_t t[4];

    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/race", "A", 1, NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        r[i] = (contract_race_t){.b = contract_b, .key = "sessions/race", .writer = i < 2 ? i + 1 : 0, .count = 100};
        cr_assert_eq(pthread_create(&t[i], NULL, contract_race_run, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(r[i].bad, 0, "thread %d saw %d failures or partial values", i, r[i].bad);
    }
}

/* ---- compare-and-swap ------------------------------------------------------------- */

Test(CONTRACT_SUITE, a_put_if_absent_succeeds_once)
{
    berth_version_t absent = {.tag = ""}, ver;

    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/once", "first", 5, &absent, &ver), 0, "%s",
                 berth_error_last());
    cr_assert_neq(ver.tag[0], '\0');
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/once", "second", 6, &absent, NULL), BERTH_ECONFLICT);
    contract_assert_value(contract_b, "sessions/once", "first");
}

Test(CONTRACT_SUITE, a_put_with_the_version_read_succeeds_and_yields_a_new_one)
{
    berth_version_t v0, v1, v2, got;

    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/cas", "0", 1, NULL, &v0), 0);
    free(contract_get(contract_b, "meta/cas", NULL, &got));
    cr_assert_str_eq(got.tag, v0.tag);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/cas", "1", 1, &got, &v1), 0, "%s", berth_error_last());
    cr_assert_str_neq(v1.tag, v0.tag);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/cas", "2", 1, &v1, &v2), 0, "%s", berth_error_last());
    cr_assert_str_neq(v2.tag, v1.tag);
    free(contract_get(contract_b, "meta/cas", NULL, &got));
    cr_assert_str_eq(got.tag, v2.tag);
    contract_assert_value(contract_b, "meta/cas", "2");
}

Test(CONTRACT_SUITE, a_put_may_write_its_new_version_over_the_expected_one)
{
    berth_version_t ver, got;

    /* A caller keeping the version of what it last wrote. */
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/mine", "1", 1, NULL, &ver), 0);
    for (int i = 2; i <= 4; i++) {
        char text[4];
        snprintf(text, sizeof(text), "%d", i);
        cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/mine", text, 1, &ver, &ver), 0, "put %d: %s", i,
                     berth_error_last());
    }
    free(contract_get(contract_b, "sessions/mine", NULL, &got));
    cr_assert_str_eq(got.tag, ver.tag);
    contract_assert_value(contract_b, "sessions/mine", "4");
}

Test(CONTRACT_SUITE, a_put_with_a_stale_version_conflicts_and_changes_nothing)
{
    berth_version_t v0, v1, now;

    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/stale", "old", 3, NULL, &v0), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/stale", "new", 3, &v0, &v1), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/stale", "lost", 4, &v0, NULL), BERTH_ECONFLICT);
    free(contract_get(contract_b, "sessions/stale", NULL, &now));
    cr_assert_str_eq(now.tag, v1.tag, "a failed put changes no version");
    contract_assert_value(contract_b, "sessions/stale", "new");
    /* Once deleted, no version matches. */
    cr_assert_eq(berth_storage_obj_delete(contract_b, "sessions/stale", NULL), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "sessions/stale", "back", 4, &v1, NULL), BERTH_ECONFLICT);
}

Test(CONTRACT_SUITE, a_delete_with_a_stale_version_conflicts)
{
    berth_version_t v0, v1, absent = {.tag = ""};

    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/del", "a", 1, NULL, &v0), 0);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/del", "b", 1, NULL, &v1), 0);
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/del", &v0), BERTH_ECONFLICT);
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/del", &absent), BERTH_ECONFLICT);
    contract_assert_value(contract_b, "meta/del", "b");
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/del", &v1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_delete(contract_b, "meta/del", &v1), BERTH_ENOTFOUND);
}

static void *contract_increment_run(void *arg)
{
    contract_race_t *r = arg;

    for (int i = 0; i < r->count; i++)
        r->bad += contract_increment(r->b, r->key, &r->conflicts) != 0;
    return NULL;
}

Test(CONTRACT_SUITE, racing_conditional_increments_lose_none)
{
    enum { THREADS = 4, EACH = 25 };
    contract_race_t r[THREADS];
    pthread_t t[THREADS];
    char want[16];

    for (int i = 0; i < THREADS; i++) {
        r[i] = (contract_race_t){.b = contract_b, .key = "sessions/counter", .count = EACH};
        cr_assert_eq(pthread_create(&t[i], NULL, contract_increment_run, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(r[i].bad, 0, "thread %d: %d increments failed", i, r[i].bad);
    }
    snprintf(want, sizeof(want), "%d", THREADS * EACH);
    contract_assert_value(contract_b, "sessions/counter", want);
}

/* ---- the wrappers' argument checks ------------------------------------------------ */

Test(CONTRACT_SUITE, wrappers_reject_keys_outside_the_grammar)
{
    static const char *const bad[] = {"", "/a", "a/", "a//b", "a/../b", "..", ".", "a/./b", "a b", "a:b", "a~",
                                      "a\\b", "\xc3\xa9", "meta/x~"};
    char *buf = NULL, key[BERTH_OBJ_KEY_MAX + 2];
    contract_keys_t k = {.n = 0};
    size_t len = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(berth_storage_obj_put(contract_b, bad[i], "x", 1, NULL, NULL), BERTH_EINVALID, "accepted \"%s\"",
                     bad[i]);
        cr_assert_eq(berth_storage_obj_get(contract_b, bad[i], &buf, &len, NULL), BERTH_EINVALID);
        cr_assert_eq(berth_storage_obj_delete(contract_b, bad[i], NULL), BERTH_EINVALID);
    }
    cr_assert_eq(berth_storage_obj_put(contract_b, NULL, "x", 1, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_get(contract_b, "a", NULL, &len, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_list(contract_b, "a", contract_keys_cb, &k), BERTH_EINVALID, "no slash");
    cr_assert_eq(berth_storage_obj_list(contract_b, "../", contract_keys_cb, &k), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_list(contract_b, "/", contract_keys_cb, &k), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_list(contract_b, "", NULL, &k), BERTH_EINVALID);
    memset(key, 'k', sizeof(key));
    key[BERTH_OBJ_KEY_MAX] = '\0';
    cr_assert(berth_obj_key_valid(key, BERTH_OBJ_KEY_MAX));
    cr_assert(!berth_obj_key_valid(key, BERTH_OBJ_KEY_MAX + 1));
    cr_assert(berth_obj_key_valid("a/..b/c.d/_e-f", 14));
}

Test(CONTRACT_SUITE, wrappers_reject_ids_digests_and_missing_arguments)
{
    berth_layout_t append = {.unit = 0}, bad_layout = {.unit = 10, .units = 0};
    char id[BERTH_ID_LEN], digest[BERTH_DIGEST_LEN], *state = NULL, buf[4];
    berth_writer_t *w = NULL;
    uint64_t size;
    size_t got;

    cr_assert_eq(berth_id_generate(id), 0);
    berth_sha256_of("x", 1, digest);
    cr_assert_eq(berth_storage_data_create(contract_b, "../../etc", &append, &state), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_create(contract_b, id, NULL, &state), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_create(contract_b, id, &bad_layout, &state), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_create(contract_b, id, &append, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_open(contract_b, "x", NULL, 0, 0, &w), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_read(contract_b, id, NULL, 0, buf, sizeof(buf), NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_commit(contract_b, id, NULL, 0, "sha256:abc"), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_remove(contract_b, "", NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_writer_write(NULL, "x", 1), BERTH_EINVALID);
    cr_assert_eq(berth_storage_writer_close(NULL, 1, &size, &state), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_stat(contract_b, "sha256:../../x", &size), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_stat(contract_b, "sha512:00", &size), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_read(NULL, digest, 0, buf, 0, &got), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_url(contract_b, digest, NULL, 10), BERTH_EINVALID);
    cr_assert_eq(berth_storage_data_list(contract_b, NULL, NULL), BERTH_EINVALID);
    cr_assert_eq(berth_storage_blob_list(contract_b, NULL, NULL), BERTH_EINVALID);
}

Test(CONTRACT_SUITE, a_value_over_the_limit_is_refused)
{
    char *big = calloc(1, BERTH_OBJ_VALUE_MAX + 1), *buf = NULL;
    size_t len;

    cr_assert_not_null(big);
    cr_assert_eq(berth_storage_obj_put(contract_b, "meta/big", big, BERTH_OBJ_VALUE_MAX + 1, NULL, NULL),
                 BERTH_ETOOLARGE);
    cr_assert_eq(berth_storage_obj_get(contract_b, "meta/big", &buf, &len, NULL), BERTH_ENOTFOUND);
    free(big);
}

#endif
