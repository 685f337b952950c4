/*
 * The S3 backend against moto (started by tests/integration/s3moto.py, with
 * the project's SigV4 verifier in front): the shared storage contract, then
 * what is particular to S3 (compare-and-swap as conditional requests, parts
 * cut from small pieces, unit sessions as multipart parts, aborts, a
 * session continued from an older state, removal with a stale state; a
 * lost answer and the requests a write costs, through a proxy, are in
 * test_storage_s3_proxy.h).
 *
 * Run through ctest, or by hand:
 *   python3 tests/integration/s3moto.py exec -- build/test_storage_s3
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/validate.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3client.h"
#include "storage/storage.h"

#define MIB ((size_t)1 << 20)

static char s3_root[64];

/* secret != NULL: sign with the verifier's wrong-secret access key. */
static berth_storage_t *s3_open_at(const char *endpoint, const char *root, uint64_t chunk, const char *secret)
{
    berth_s3_options_t o = {
        .bucket = getenv("BERTH_TEST_S3_BUCKET"),
        .region = "us-east-1",
        .regionendpoint = endpoint,
        .accesskey = secret != NULL ? "berthwrongsig" : getenv("AWS_ACCESS_KEY_ID"),
        .secretkey = secret != NULL ? secret : getenv("AWS_SECRET_ACCESS_KEY"),
        .rootdirectory = root,
        .chunksize = chunk,
        .connect_timeout_ms = 2000,
        .timeout_ms = 60000,
        .max_retries = 1,
    };
    berth_storage_t *b = NULL;

    if (endpoint == NULL || o.bucket == NULL)
        cr_assert_fail("BERTH_TEST_S3_ENDPOINT is not set: run through ctest or tests/integration/s3moto.py exec");
    cr_assert_eq(berth_storage_s3_new(&b, &o), 0, "%s", berth_error_last());
    return b;
}

static berth_storage_t *s3_open(const char *root, uint64_t chunk, const char *secret)
{
    return s3_open_at(getenv("BERTH_TEST_S3_ENDPOINT"), root, chunk, secret);
}

static void s3_new_root(void)
{
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    snprintf(s3_root, sizeof(s3_root), "/t-%.12s/", id);
}

static berth_storage_t *contract_backend_new(void)
{
    s3_new_root();
    return s3_open(s3_root, BERTH_S3_MIN_PART, NULL);
}

static void contract_backend_cleanup(void)
{
}

/* A write into data that was removed or committed may stage a tail piece
 * (no HEAD per write); s3_assert_no_debris looks into the bucket after the
 * purge's data_remove. */
static void s3_assert_no_debris(const char *id);
#define CONTRACT_SUITE storage_s3_contract
#define CONTRACT_GONE_WRITES_MAY_SUCCEED
#define CONTRACT_ASSERT_NO_DEBRIS(id) s3_assert_no_debris(id)
#include "storage_contract.h"
#include "storage_contract_data.h"

/* ---- S3 specifics ------------------------------------------------------------ */

static berth_storage_t *b;

static void s3_setup(void)
{
    berth_storage_fault_reset(NULL);
    s3_new_root();
    b = s3_open(s3_root, BERTH_S3_MIN_PART, NULL);
}

static void s3_teardown(void)
{
    berth_storage_free(b);
    b = NULL;
}

TestSuite(storage_s3, .init = s3_setup, .fini = s3_teardown);

static char *pattern(size_t len, unsigned seed)
{
    char *p = malloc(len);
    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (char)(seed >> 16);
    }
    return p;
}

/* A session as the engine keeps it: its id, the backend's state, and how
 * many bytes it recorded. */
typedef struct sess {
    char id[BERTH_ID_LEN];
    char *state;
    uint64_t size;
} sess_t;

static void sess_new(sess_t *ss, uint64_t unit, uint64_t units)
{
    berth_layout_t l = {unit, units};

    memset(ss, 0, sizeof(*ss));
    cr_assert_eq(berth_id_generate(ss->id), 0);
    cr_assert_eq(berth_storage_data_create(b, ss->id, &l, &ss->state), 0, "%s", berth_error_last());
    cr_assert_not_null(ss->state);
}

static void sess_clear(sess_t *ss)
{
    free(ss->state);
    ss->state = NULL;
}

/* One write like the engine's: at `offset`, fed in pieces of `piece`
 * bytes, all of them kept. The new state, or NULL: unchanged. */
static char *write_at(const sess_t *ss, uint64_t offset, const char *buf, size_t len, size_t piece)
{
    berth_writer_t *w = NULL;
    uint64_t kept = 0;
    char *state = NULL;

    cr_assert_eq(berth_storage_data_open(b, ss->id, ss->state, offset, len, &w), 0, "%s", berth_error_last());
    for (size_t at = 0; at < len; at += piece)
        cr_assert_eq(berth_storage_writer_write(w, buf + at, len - at < piece ? len - at : piece), 0, "%s",
                     berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w, 1, &kept, &state), 0, "%s", berth_error_last());
    cr_assert_eq(kept, len);
    return state;
}

/* Appends at the recorded end, then records the new state and size. */
static void append_in(sess_t *ss, const char *buf, size_t len, size_t piece)
{
    char *state = write_at(ss, ss->size, buf, len, piece);

    if (state != NULL) {
        free(ss->state);
        ss->state = state;
    }
    ss->size += len;
}

static void append(sess_t *ss, const char *buf, size_t len)
{
    append_in(ss, buf, len, len > 0 ? len : 1);
}

/* Writes unit k of a unit session. */
static void write_unit(sess_t *ss, uint64_t unit, uint64_t k, const char *buf, size_t len)
{
    cr_assert_null(write_at(ss, k * unit, buf, len, len), "unit writes never change the state");
}

static json_t *state_get(const char *state, const char *field)
{
    json_t *j = json_loads(state, 0, NULL), *v;

    cr_assert_not_null(j, "state is not JSON: %s", state);
    v = json_incref(json_object_get(j, field));
    json_decref(j);
    return v;
}

static size_t state_count(const char *state, const char *field)
{
    json_t *v = state_get(state, field);
    size_t n = json_array_size(v);

    json_decref(v);
    return n;
}

static size_t parts_of(const sess_t *ss)
{
    return state_count(ss->state, "etags");
}

static size_t pieces_of(const sess_t *ss)
{
    return state_count(ss->state, "pieces");
}

/* The name of the newest staged piece of a state. */
static void last_piece(const char *state, char *out, size_t cap)
{
    json_t *v = state_get(state, "pieces");

    cr_assert_gt(json_array_size(v), 0);
    snprintf(out, cap, "%s", json_string_value(json_array_get(json_array_get(v, json_array_size(v) - 1), 2)));
    json_decref(v);
}

static void assert_blob(const char *digest, const char *want, size_t len)
{
    uint64_t size = 0;
    size_t got = 0, at = 0;
    char *buf = malloc(MIB);

    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), 0, "%s", berth_error_last());
    cr_assert_eq(size, len);
    while (at < len) {
        cr_assert_eq(berth_storage_blob_read(b, digest, at, buf, MIB, &got), 0, "%s", berth_error_last());
        cr_assert_gt(got, 0);
        cr_assert_eq(memcmp(buf, want + at, got), 0, "blob differs at %zu", at);
        at += got;
    }
    free(buf);
}

static void commit(sess_t *ss, const char *data, char *digest)
{
    berth_sha256_of(data, ss->size, digest);
    cr_assert_eq(berth_storage_data_commit(b, ss->id, ss->state, ss->size, digest), 0, "%s", berth_error_last());
}

/* ---- looking into the bucket with a client of our own ---- */

static berth_s3_client_t *raw_client(void)
{
    berth_s3_client_options_t o = {.bucket = getenv("BERTH_TEST_S3_BUCKET"),
                                   .endpoint = getenv("BERTH_TEST_S3_ENDPOINT"),
                                   .accesskey = getenv("AWS_ACCESS_KEY_ID"),
                                   .secretkey = getenv("AWS_SECRET_ACCESS_KEY"),
                                   .connect_timeout_ms = 2000};
    berth_s3_client_t *c = NULL;

    cr_assert_eq(berth_s3_client_new(&c, &o), 0, "%s", berth_error_last());
    return c;
}

/* The key of `rest` under this test's root ("/t-xxx/" is stored as "t-xxx/"). */
static void raw_key(char *out, size_t cap, const char *rest)
{
    snprintf(out, cap, "%.*s/%s", (int)strlen(s3_root) - 2, s3_root + 1, rest);
}

/* How many times `tag` occurs in the answer to a bucket GET with `query`. */
static int raw_count(const char *query, const char *tag)
{
    berth_s3_client_t *c = raw_client();
    berth_s3_req_t req = {.method = "GET", .query = query, .idempotent = 1};
    berth_s3_resp_t resp;
    int n = 0;

    cr_assert_eq(berth_s3_do(c, &req, &resp), 0, "%s", berth_error_last());
    for (const char *p = resp.body; p != NULL && (p = strstr(p, tag)) != NULL; p++)
        n++;
    berth_s3_resp_clear(&resp);
    berth_s3_client_free(c);
    return n;
}

/* The number of unfinished multipart uploads whose key starts with `rest`
 * under this test's root. */
static int uploads_under(const char *rest)
{
    char key[512], enc[1024], query[1100];

    raw_key(key, sizeof(key), rest);
    cr_assert_geq(berth_s3_encode(enc, sizeof(enc), key, 0), 0);
    snprintf(query, sizeof(query), "prefix=%s&uploads=", enc);
    return raw_count(query, "<Upload>");
}

static int multipart_uploads(void)
{
    return uploads_under("");
}

/* The number of objects whose key starts with `rest` under the root. */
static int objects_under(const char *rest)
{
    char key[512], enc[1024], query[1100];

    raw_key(key, sizeof(key), rest);
    cr_assert_geq(berth_s3_encode(enc, sizeof(enc), key, 0), 0);
    snprintf(query, sizeof(query), "list-type=2&prefix=%s", enc);
    return raw_count(query, "<Key>");
}

/* Nothing of session `id` is left but, perhaps, the blob it became: no
 * object under uploads/<id>/ and no multipart upload of blobs/data/<id>. */
static void s3_assert_no_debris(const char *id)
{
    char rest[128];

    snprintf(rest, sizeof(rest), "uploads/%s/", id);
    cr_assert_eq(objects_under(rest), 0, "objects left under %s", rest);
    snprintf(rest, sizeof(rest), "blobs/data/%s", id);
    cr_assert_eq(uploads_under(rest), 0, "a multipart upload of %s is left", rest);
}

static int raw_request(const char *method, const char *rest)
{
    berth_s3_client_t *c = raw_client();
    char key[512];
    berth_s3_req_t req = {.method = method, .idempotent = 1};
    berth_s3_resp_t resp;
    int err;

    raw_key(key, sizeof(key), rest);
    req.key = key;
    err = berth_s3_do(c, &req, &resp);
    berth_s3_resp_clear(&resp);
    berth_s3_client_free(c);
    return err;
}

/* ---- objects ---- */

Test(storage_s3, objects_are_stored_under_their_key_with_the_etag_as_version)
{
    berth_version_t v1, v2, got;
    char *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_storage_obj_put(b, "meta/a/b", "one", 3, NULL, &v1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(b, "meta/a/b/c", "two", 3, NULL, &v2), 0, "%s", berth_error_last());
    /* S3's ETag of a single PUT: the MD5 of the bytes. */
    cr_assert_str_eq(v1.tag, "\"f97c5d29941bfb1b2fdab0874906ab82\"");
    cr_assert_eq(berth_storage_obj_get(b, "meta/a/b", &buf, &len, &got), 0, "%s", berth_error_last());
    cr_assert_str_eq(got.tag, v1.tag);
    free(buf);
    cr_assert_eq(raw_request("HEAD", "meta/a/b/c"), 0, "the key is the object's name under the root");
}

Test(storage_s3, creating_twice_and_replacing_a_stale_version_are_conflicts)
{
    berth_version_t absent = {""}, v1, v2, stale;
    char *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "v1", 2, &absent, &v1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "v9", 2, &absent, NULL), BERTH_ECONFLICT);
    stale = v1;
    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "v2", 2, &v1, &v2), 0, "%s", berth_error_last());
    cr_assert_str_neq(v2.tag, v1.tag);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "v3", 2, &stale, NULL), BERTH_ECONFLICT);
    cr_assert_eq(berth_storage_obj_delete(b, "sessions/x", &stale), BERTH_ECONFLICT);
    cr_assert_eq(berth_storage_obj_delete(b, "sessions/x", &absent), BERTH_ECONFLICT);
    cr_assert_eq(berth_storage_obj_get(b, "sessions/x", &buf, &len, NULL), 0);
    cr_assert_eq(memcmp(buf, "v2", 2), 0, "failed conditions change nothing");
    free(buf);
    cr_assert_eq(berth_storage_obj_delete(b, "sessions/x", &v2), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_delete(b, "sessions/x", &v2), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/x", "v4", 2, &v2, NULL), BERTH_ECONFLICT, "gone is changed");
}

#define RACERS 4
#define INCREMENTS 8

static void *increment(void *arg)
{
    int *conflicts = arg;

    for (int done = 0; done < INCREMENTS;) {
        berth_version_t ver = {""};
        char *buf = NULL, text[32];
        size_t len = 0;
        long n = 0;
        int err = berth_storage_obj_get(b, "meta/counter", &buf, &len, &ver);
        cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s", berth_error_last());
        if (err == 0)
            n = strtol(buf, NULL, 10);
        free(buf);
        snprintf(text, sizeof(text), "%ld", n + 1);
        err = berth_storage_obj_put(b, "meta/counter", text, strlen(text), &ver, NULL);
        cr_assert(err == 0 || err == BERTH_ECONFLICT, "%s", berth_error_last());
        done += err == 0;
        *conflicts += err == BERTH_ECONFLICT;
    }
    return NULL;
}

Test(storage_s3, racing_conditional_increments_lose_none)
{
    pthread_t t[RACERS];
    int conflicts[RACERS] = {0}, total = 0;
    char *buf = NULL;
    size_t len = 0;

    for (int i = 0; i < RACERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, increment, &conflicts[i]), 0);
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        total += conflicts[i];
    }
    cr_assert_eq(berth_storage_obj_get(b, "meta/counter", &buf, &len, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(strtol(buf, NULL, 10), RACERS * INCREMENTS, "counter %s after %d conflicts", buf, total);
    free(buf);
}

static int list_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    char *seen = ctx;

    cr_assert_gt(mtime, 0);
    strcat(seen, key);
    strcat(seen, size == 1 ? ";" : "?;");
    return 0;
}

Test(storage_s3, listings_name_keys_without_the_root_and_leave_the_backends_own_out)
{
    char seen[1024] = "", digest[BERTH_DIGEST_LEN], *buf = NULL;
    berth_version_t v;
    size_t len = 0;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, "blob", 4);
    commit(&ss, "blob", digest);
    cr_assert_eq(berth_storage_obj_put(b, "meta/x", "1", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_put(b, "sessions/y", "2", 1, NULL, NULL), 0);
    cr_assert_eq(berth_storage_obj_list(b, "", list_cb, seen), 0, "%s", berth_error_last());
    cr_assert_str_eq(seen, "meta/x;sessions/y;");
    seen[0] = '\0';
    cr_assert_eq(berth_storage_obj_list(b, "sessions/", list_cb, seen), 0, "%s", berth_error_last());
    cr_assert_str_eq(seen, "sessions/y;");
    cr_assert_eq(berth_storage_obj_put(b, "blobs/data/z", "3", 1, NULL, &v), BERTH_EINVALID);
    cr_assert_eq(berth_storage_obj_get(b, "uploads/z", &buf, &len, NULL), BERTH_EINVALID);
    sess_clear(&ss);
}

#include "test_storage_s3_proxy.h"

/* ---- append sessions ---- */

Test(storage_s3, one_mib_chunks_are_staged_then_cut_into_parts_of_exactly_chunksize)
{
    size_t total = 12 * MIB + 123;
    char *data = pattern(total, 7), digest[BERTH_DIGEST_LEN];
    sess_t ss;

    sess_new(&ss, 0, 0);
    for (size_t at = 0; at < total; at += MIB)
        append_in(&ss, data + at, total - at < MIB ? total - at : MIB, 64 << 10);
    /* 12 MiB + 123 = two 5 MiB parts and a staged tail of 2 MiB + 123, in
     * the three pieces written after the second part. */
    cr_assert_eq(parts_of(&ss), 2, "%zu parts", parts_of(&ss));
    cr_assert_eq(pieces_of(&ss), 3);
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    cr_assert_eq(multipart_uploads(), 0);
    cr_assert_eq(objects_under("uploads/"), 0, "a commit leaves no staged piece");
    cr_assert_eq(berth_storage_data_remove(b, ss.id, ss.state), BERTH_ENOTFOUND);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, a_large_write_goes_out_as_parts_straight_from_memory)
{
    size_t total = 11 * MIB;
    char *data = pattern(total, 9), digest[BERTH_DIGEST_LEN];
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, data, 3 * MIB);           /* staged */
    append(&ss, data + 3 * MIB, 8 * MIB); /* part 1 from staged + write, part 2 from the write, 1 MiB staged */
    cr_assert_eq(parts_of(&ss), 2);
    cr_assert_eq(pieces_of(&ss), 1);
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, the_first_write_sets_a_larger_part_size_from_its_hint)
{
    size_t part = 8 * MIB, total = 2 * part + 100;
    char *data = pattern(total, 17), digest[BERTH_DIGEST_LEN];
    json_t *chunk;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append_in(&ss, data, part, 256 << 10);
    append_in(&ss, data + part, part, 256 << 10);
    append(&ss, data + 2 * part, 100);
    chunk = state_get(ss.state, "chunk");
    cr_assert_eq(json_integer_value(chunk), (json_int_t)part);
    json_decref(chunk);
    cr_assert_eq(parts_of(&ss), 2);
    cr_assert_eq(pieces_of(&ss), 1, "only the last 100 bytes are staged");
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, a_write_repeated_from_an_older_state_gives_the_right_blob)
{
    /* kill -9 between a write and its record: the stored record holds the
     * state before the write, and the client sends the chunk again. */
    size_t total = 9 * MIB;
    char *data = pattern(total, 11), digest[BERTH_DIGEST_LEN], *before;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, data, 4 * MIB);
    cr_assert_not_null(before = strdup(ss.state));
    append(&ss, data + 4 * MIB, 5 * MIB); /* makes part 1, stages 4 MiB, marks the old piece stale */
    cr_assert_eq(parts_of(&ss), 1);
    free(ss.state);
    ss.state = before;
    ss.size = 4 * MIB;
    append(&ss, data + 4 * MIB, 5 * MIB);
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, many_tiny_writes_are_merged_into_one_piece)
{
    char data[100 * 64], digest[BERTH_DIGEST_LEN];
    sess_t ss;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    sess_new(&ss, 0, 0);
    for (size_t at = 0; at < sizeof(data); at += 64)
        append(&ss, data + at, 64);
    cr_assert_lt(pieces_of(&ss), 33, "%zu pieces", pieces_of(&ss));
    commit(&ss, data, digest);
    assert_blob(digest, data, sizeof(data));
    sess_clear(&ss);
}

Test(storage_s3, two_writers_from_one_state_stage_pieces_of_their_own)
{
    berth_writer_t *w1 = NULL, *w2 = NULL;
    char *st1 = NULL, *st2 = NULL, n1[64], n2[64], buf[8], tail[128];
    uint64_t kept = 0;
    size_t got = 0;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, "abc", 3);
    cr_assert_eq(berth_storage_data_open(b, ss.id, ss.state, 3, 3, &w1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_open(b, ss.id, ss.state, 3, 3, &w2), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w1, "XYZ", 3), 0);
    cr_assert_eq(berth_storage_writer_write(w2, "123", 3), 0);
    cr_assert_eq(berth_storage_writer_close(w1, 1, &kept, &st1), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w2, 1, &kept, &st2), 0, "%s", berth_error_last());
    last_piece(st1, n1, sizeof(n1));
    last_piece(st2, n2, sizeof(n2));
    cr_assert_str_neq(n1, n2, "two writers staged under one name");
    snprintf(tail, sizeof(tail), "uploads/%s/tail/", ss.id);
    cr_assert_eq(objects_under(tail), 3);
    cr_assert_eq(berth_storage_data_read(b, ss.id, st1, 0, buf, sizeof(buf), &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, 6);
    cr_assert_eq(memcmp(buf, "abcXYZ", 6), 0);
    cr_assert_eq(berth_storage_data_read(b, ss.id, st2, 3, buf, sizeof(buf), &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, 3);
    cr_assert_eq(memcmp(buf, "123", 3), 0);
    free(st1);
    free(st2);
    sess_clear(&ss);
}

Test(storage_s3, a_discarded_write_leaves_the_state_as_it_was)
{
    size_t total = 6 * MIB + 10;
    char *data = pattern(total, 19), digest[BERTH_DIGEST_LEN], *state = NULL;
    berth_writer_t *w = NULL;
    uint64_t kept = 1;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, data, MIB);
    cr_assert_eq(berth_storage_data_open(b, ss.id, ss.state, MIB, 0, &w), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w, data + MIB, 5 * MIB), 0, "%s", berth_error_last()); /* sends part 1 */
    cr_assert_eq(berth_storage_writer_close(w, 0, &kept, &state), 0, "%s", berth_error_last());
    cr_assert_null(state);
    cr_assert_eq(parts_of(&ss), 0);
    append_in(&ss, data + MIB, total - MIB, 100 << 10);
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, removing_a_session_aborts_its_multipart_upload)
{
    char *data = pattern(6 * MIB, 3);
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, data, 6 * MIB);
    cr_assert_eq(multipart_uploads(), 1);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, ss.state), 0, "%s", berth_error_last());
    cr_assert_eq(multipart_uploads(), 0);
    cr_assert_eq(objects_under("uploads/"), 0);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, ss.state), BERTH_ENOTFOUND);
    sess_clear(&ss);
    free(data);
}

typedef struct seen {
    char ids[4][BERTH_ID_LEN];
    size_t n;
} seen_t;

static int data_cb(void *ctx, const char *id, int64_t mtime)
{
    seen_t *s = ctx;

    cr_assert_gt(mtime, 0);
    if (s->n < 4)
        snprintf(s->ids[s->n], BERTH_ID_LEN, "%s", id);
    s->n++;
    return 0;
}

Test(storage_s3, sessions_with_data_are_listed_once_and_removed_without_a_state)
{
    seen_t l = {.n = 0};
    sess_t a, c;

    /* a: created, then the process died before its first record. c: a
     * multipart upload and a staged piece. */
    sess_new(&a, 0, 0);
    sess_new(&c, 0, 0);
    append(&c, "tail", 4);
    cr_assert_eq(berth_storage_data_list(b, data_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 2);
    cr_assert(strcmp(l.ids[0], a.id) == 0 || strcmp(l.ids[1], a.id) == 0);
    cr_assert(strcmp(l.ids[0], c.id) == 0 || strcmp(l.ids[1], c.id) == 0);
    cr_assert_eq(berth_storage_data_remove(b, a.id, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_remove(b, c.id, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(multipart_uploads(), 0);
    cr_assert_eq(objects_under("uploads/"), 0);
    sess_clear(&a);
    sess_clear(&c);
}

/* Into data that is gone a part cannot go (its upload is gone: the write
 * fails as not found), while a write that only stages a piece is accepted
 * and leaves a piece no marker vouches for, which data_list names and
 * data_remove, without a state, deletes. */
Test(storage_s3, a_write_into_gone_data_sends_no_part_and_stages_only_debris)
{
    char *data = pattern(6 * MIB, 23), digest[BERTH_DIGEST_LEN], *before, *next = NULL, rest[128];
    berth_writer_t *w = NULL;
    seen_t l = {.n = 0};
    uint64_t kept = 0;
    sess_t cs, rs;

    /* Committed: filling a part needs the staged bytes, which are gone. */
    sess_new(&cs, 0, 0);
    append(&cs, data, MIB);
    cr_assert_not_null(before = strdup(cs.state));
    commit(&cs, data, digest);
    cr_assert_eq(berth_storage_data_open(b, cs.id, before, MIB, 5 * MIB, &w), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w, data + MIB, 5 * MIB), BERTH_ENOTFOUND, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w, 0, &kept, &next), 0);
    /* Removed: a whole part at the boundary goes to an aborted upload. */
    sess_new(&rs, 0, 0);
    cr_assert_eq(berth_storage_data_remove(b, rs.id, rs.state), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_open(b, rs.id, rs.state, 0, 5 * MIB, &w), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_write(w, data, 5 * MIB), BERTH_ENOTFOUND, "%s", berth_error_last());
    cr_assert_eq(berth_storage_writer_close(w, 0, &kept, &next), 0);
    cr_assert_eq(multipart_uploads(), 0);
    /* A write that only stages a piece is accepted: debris. */
    cr_assert_not_null(next = write_at(&rs, 0, "debris", 6, 6));
    free(next);
    snprintf(rest, sizeof(rest), "uploads/%s/", rs.id);
    cr_assert_eq(objects_under(rest), 1, "the piece, and no session marker");
    cr_assert_eq(berth_storage_data_list(b, data_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], rs.id);
    cr_assert_eq(berth_storage_data_remove(b, rs.id, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(objects_under("uploads/"), 0);
    cr_assert_eq(berth_storage_data_remove(b, rs.id, NULL), BERTH_ENOTFOUND);
    assert_blob(digest, data, MIB);
    free(before);
    sess_clear(&cs);
    sess_clear(&rs);
    free(data);
}

/* ---- unit sessions ---- */

Test(storage_s3, parts_under_5_mib_are_refused_unless_single)
{
    berth_layout_t small = {MIB, 4}, single = {MIB, 1}, ok = {5 * MIB, 3}, many = {5 * MIB, 10001};
    char id[BERTH_ID_LEN], *state = NULL;

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_data_create(b, id, &small, &state), BERTH_EINVALID);
    cr_assert(strstr(berth_error_last(), "5 MiB") != NULL, "%s", berth_error_last());
    cr_assert_eq(berth_storage_data_create(b, id, &many, &state), BERTH_EINVALID);
    cr_assert_eq(multipart_uploads(), 0, "a refused layout starts nothing");
    cr_assert_eq(berth_storage_data_create(b, id, &single, &state), 0, "%s", berth_error_last());
    free(state);
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_data_create(b, id, &ok, &state), 0, "%s", berth_error_last());
    free(state);
}

Test(storage_s3, unit_k_is_s3_part_k_plus_1_and_reads_back_once_all_are_there)
{
    size_t part = 5 * MIB, total = 2 * part + 1000;
    char *data = pattern(total, 5), digest[BERTH_DIGEST_LEN], *buf = malloc(MIB);
    size_t got = 0;
    sess_t ss;

    sess_new(&ss, part, 3);
    write_unit(&ss, part, 2, data + 2 * part, 1000);
    write_unit(&ss, part, 0, data, part);
    /* Not every unit is there: nothing can be read back yet. */
    cr_assert_neq(berth_storage_data_read(b, ss.id, ss.state, 0, buf, MIB, &got), 0);
    write_unit(&ss, part, 1, data + part, part);
    cr_assert_eq(berth_storage_data_read(b, ss.id, ss.state, part + 7, buf, MIB, &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, MIB);
    cr_assert_eq(memcmp(buf, data + part + 7, MIB), 0);
    ss.size = total;
    commit(&ss, data, digest);
    assert_blob(digest, data, total);
    cr_assert_eq(multipart_uploads(), 0);
    cr_assert_eq(objects_under("uploads/"), 0);
    sess_clear(&ss);
    free(data);
    free(buf);
}

Test(storage_s3, a_unit_session_read_back_and_abandoned_leaves_nothing)
{
    char buf[16];
    size_t got = 0;
    sess_t ss;

    sess_new(&ss, 10, 1);
    write_unit(&ss, 10, 0, "0123456789", 10);
    cr_assert_eq(berth_storage_data_read(b, ss.id, ss.state, 0, buf, sizeof(buf), &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, 10);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, ss.state), 0, "%s", berth_error_last());
    cr_assert_eq(objects_under("blobs/"), 0, "the object completed for reading is not a blob");
    cr_assert_eq(objects_under("uploads/"), 0);
    sess_clear(&ss);
}

/* ---- commits and removal ---- */

Test(storage_s3, removal_with_a_state_from_before_the_commit_keeps_the_blob)
{
    char digest[BERTH_DIGEST_LEN], digest2[BERTH_DIGEST_LEN], buf[16], *pre;
    size_t got = 0;
    sess_t ss, us;

    /* An append session. */
    sess_new(&ss, 0, 0);
    append(&ss, "appended", 8);
    cr_assert_not_null(pre = strdup(ss.state));
    commit(&ss, "appended", digest);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, pre), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_data_remove(b, ss.id, NULL), BERTH_ENOTFOUND);
    assert_blob(digest, "appended", 8);
    free(pre);
    /* A unit session, completed to read it back before its commit. */
    sess_new(&us, 10, 1);
    write_unit(&us, 10, 0, "unit bytes", 10);
    cr_assert_eq(berth_storage_data_read(b, us.id, us.state, 0, buf, sizeof(buf), &got), 0, "%s", berth_error_last());
    us.size = 10;
    commit(&us, "unit bytes", digest2);
    cr_assert_eq(berth_storage_data_remove(b, us.id, us.state), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_data_remove(b, us.id, NULL), BERTH_ENOTFOUND);
    assert_blob(digest2, "unit bytes", 10);
    sess_clear(&ss);
    sess_clear(&us);
}

Test(storage_s3, a_commit_repeated_after_a_success_or_a_crash_before_its_link_answers_0)
{
    /* kill -9 after CompleteMultipartUpload, before the link object: the
     * record still holds the state before the commit, the upload is gone,
     * the object is there. The repeated commit must find it (S3:
     * NoSuchUpload; moto: 500). */
    char digest[BERTH_DIGEST_LEN], key[256], *data = pattern(7 * MIB, 13);
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, data, 7 * MIB);
    commit(&ss, data, digest);
    cr_assert_eq(berth_storage_data_commit(b, ss.id, ss.state, ss.size, digest), 0, "%s", berth_error_last());
    snprintf(key, sizeof(key), "blobs/sha256/%.2s/%s/link", digest + 7, digest + 7);
    cr_assert_eq(raw_request("DELETE", key), 0, "%s", berth_error_last());
    commit(&ss, data, digest);
    assert_blob(digest, data, 7 * MIB);
    sess_clear(&ss);
    free(data);
}

Test(storage_s3, a_second_session_of_the_same_bytes_drops_its_copy)
{
    char digest[BERTH_DIGEST_LEN];
    sess_t s1, s2;

    sess_new(&s1, 0, 0);
    sess_new(&s2, 0, 0);
    append(&s1, "same", 4);
    append(&s2, "same", 4);
    commit(&s1, "same", digest);
    commit(&s2, "same", digest);
    assert_blob(digest, "same", 4);
    cr_assert_eq(multipart_uploads(), 0);
    cr_assert_eq(objects_under("uploads/"), 0);
    sess_clear(&s1);
    sess_clear(&s2);
}

Test(storage_s3, a_blob_removed_by_another_instance_is_gone_here_too)
{
    berth_storage_t *other = s3_open(s3_root, BERTH_S3_MIN_PART, NULL);
    char digest[BERTH_DIGEST_LEN], buf[8];
    uint64_t size = 0;
    size_t got = 0;
    sess_t ss;

    sess_new(&ss, 0, 0);
    append(&ss, "shared blob", 11);
    commit(&ss, "shared blob", digest);
    cr_assert_eq(berth_storage_blob_read(b, digest, 0, buf, sizeof(buf), &got), 0); /* now cached here */
    cr_assert_eq(berth_storage_blob_remove(other, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_read(b, digest, 0, buf, sizeof(buf), &got), BERTH_ENOTFOUND);
    berth_storage_free(other);
    sess_clear(&ss);
}

/* ---- configuration and failures ---- */

Test(storage_s3, a_wrong_secret_is_refused_by_the_signature_check)
{
    berth_storage_t *bad = s3_open(s3_root, BERTH_S3_MIN_PART, "not-the-secret");

    cr_assert_eq(berth_storage_obj_put(bad, "meta/x", "{}", 2, NULL, NULL), BERTH_EIO);
    cr_assert(strstr(berth_error_last(), "403") != NULL, "%s", berth_error_last());
    berth_storage_free(bad);
}

Test(storage_s3, an_unreachable_s3_is_unavailable)
{
    berth_s3_options_t o = {.bucket = "b",
                            .regionendpoint = "http://127.0.0.1:1",
                            .accesskey = "a",
                            .secretkey = "s",
                            .chunksize = BERTH_S3_MIN_PART,
                            .connect_timeout_ms = 500,
                            .max_retries = 1};
    berth_storage_t *down = NULL;
    char *buf = NULL;
    size_t len;

    cr_assert_eq(berth_storage_s3_new(&down, &o), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_get(down, "meta/x", &buf, &len, NULL), BERTH_EUNAVAILABLE);
    berth_storage_free(down);
}

Test(storage_s3, opened_by_name_from_yaml_with_credentials_from_the_environment)
{
    char yaml[1024], *buf = NULL;
    berth_storage_t *named = NULL;
    berth_config_t cfg;
    size_t len = 0;

    snprintf(yaml, sizeof(yaml), "storage:\n  s3:\n    bucket: %s\n    regionendpoint: %s\n    rootdirectory: %s\n",
             getenv("BERTH_TEST_S3_BUCKET"), getenv("BERTH_TEST_S3_ENDPOINT"), s3_root);
    berth_config_defaults(&cfg);
    cr_assert_eq(berth_config_load_string(&cfg, "s3.yaml", yaml, strlen(yaml)), 0, "%s", berth_error_last());
    cr_assert_null(cfg.storage_s3_accesskey);
    cr_assert_eq(berth_storage_open(&named, &cfg), 0, "%s", berth_error_last());
    cr_assert_str_eq(berth_storage_name(named), "s3");
    cr_assert_eq(berth_storage_obj_put(named, "meta/named", "{}", 2, NULL, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_obj_get(b, "meta/named", &buf, &len, NULL), 0, "the same bucket and prefix");
    free(buf);
    berth_storage_free(named);
    berth_config_clear(&cfg);
}
