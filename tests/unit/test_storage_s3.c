/*
 * The S3 backend against moto (started by tests/integration/s3moto.py, with
 * the project's SigV4 verifier in front): the shared storage contract, then
 * what is particular to S3 (parts cut from small chunks, part sessions as
 * multipart parts, aborts, a session continued from an older record).
 *
 * Run through ctest, or by hand:
 *   python3 tests/integration/s3moto.py exec -- build/test_storage_s3
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/record.h"
#include "core/validate.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3client.h"
#include "storage/storage.h"

#define MIB ((size_t)1 << 20)

static char s3_root[64];

/* secret != NULL: sign with the verifier's wrong-secret access key. */
static berth_storage_t *s3_open(const char *root, uint64_t chunk, const char *secret)
{
    const char *endpoint = getenv("BERTH_TEST_S3_ENDPOINT");
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

#define CONTRACT_SUITE storage_s3_contract
#include "storage_contract.h"

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

static void oci_session(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_id_generate(rec->id), 0);
    rec->kind = BERTH_SESSION_OCI;
    rec->repository = strdup("library/s3");
    berth_sha256_init(&rec->hash);
    cr_assert_eq(berth_storage_upload_create(b, rec), 0, "%s", berth_error_last());
}

/* Appends like the engine: write at the offset, then advance it. */
static void append(berth_record_t *rec, const char *buf, size_t len)
{
    cr_assert_eq(berth_storage_upload_write(b, rec, rec->offset, buf, len), 0, "%s", berth_error_last());
    rec->offset += len;
    berth_rangeset_clear(&rec->received);
    cr_assert_eq(berth_rangeset_add(&rec->received, 0, rec->offset - 1), 0);
}

static size_t parts_of(const berth_record_t *rec)
{
    return json_array_size(json_object_get(rec->backend, "etags"));
}

static size_t pieces_of(const berth_record_t *rec)
{
    return json_array_size(json_object_get(rec->backend, "pieces"));
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

/* The number of unfinished multipart uploads under this test's root. */
static int multipart_uploads(void)
{
    berth_s3_client_options_t o = {.bucket = getenv("BERTH_TEST_S3_BUCKET"),
                                   .endpoint = getenv("BERTH_TEST_S3_ENDPOINT"),
                                   .accesskey = getenv("AWS_ACCESS_KEY_ID"),
                                   .secretkey = getenv("AWS_SECRET_ACCESS_KEY"),
                                   .connect_timeout_ms = 2000};
    char query[256];
    berth_s3_client_t *c = NULL;
    berth_s3_resp_t resp;
    int n = 0;

    cr_assert_eq(berth_s3_client_new(&c, &o), 0, "%s", berth_error_last());
    /* "/t-xxx/" is stored as "t-xxx/". */
    snprintf(query, sizeof(query), "prefix=%.*s%%2F&uploads=", (int)strlen(s3_root) - 2, s3_root + 1);
    berth_s3_req_t req = {.method = "GET", .query = query, .idempotent = 1};
    cr_assert_eq(berth_s3_do(c, &req, &resp), 0, "%s", berth_error_last());
    for (const char *p = resp.body; p != NULL && (p = strstr(p, "<Upload>")) != NULL; p++)
        n++;
    berth_s3_resp_clear(&resp);
    berth_s3_client_free(c);
    return n;
}

Test(storage_s3, one_mib_chunks_are_staged_then_cut_into_parts_of_exactly_chunksize)
{
    size_t total = 12 * MIB + 123;
    char *data = pattern(total, 7), digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    oci_session(&rec);
    for (size_t at = 0; at < total; at += MIB)
        append(&rec, data + at, total - at < MIB ? total - at : MIB);
    /* 12 MiB + 123 = two 5 MiB parts and a staged tail of 2 MiB + 123, in
     * the three pieces written after the second part. */
    cr_assert_eq(parts_of(&rec), 2, "%zu parts", parts_of(&rec));
    cr_assert_eq(pieces_of(&rec), 3);
    berth_sha256_of(data, total, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, total);
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, &rec), 0, "%s", berth_error_last());
    cr_assert_eq(multipart_uploads(), 0);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_s3, a_large_chunk_goes_out_as_parts_straight_from_memory)
{
    size_t total = 11 * MIB;
    char *data = pattern(total, 9), digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    oci_session(&rec);
    append(&rec, data, 3 * MIB);           /* staged */
    append(&rec, data + 3 * MIB, 8 * MIB); /* part 1 from staged + chunk, part 2 from the chunk, 1 MiB staged */
    cr_assert_eq(parts_of(&rec), 2);
    berth_sha256_of(data, total, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, total);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_s3, a_write_repeated_from_an_older_record_gives_the_right_blob)
{
    /* kill -9 between a write and its record: the stored record is the one
     * before the write, and the client sends the chunk again. */
    size_t total = 9 * MIB;
    char *data = pattern(total, 11), digest[BERTH_DIGEST_LEN];
    berth_record_t rec;
    json_t *before;

    oci_session(&rec);
    append(&rec, data, 4 * MIB);
    cr_assert_not_null(before = json_deep_copy(rec.backend));
    append(&rec, data + 4 * MIB, 5 * MIB); /* makes part 1, stages 4 MiB, marks the old piece stale */
    cr_assert_eq(parts_of(&rec), 1);
    json_decref(rec.backend);
    rec.backend = before;
    rec.offset = 4 * MIB;
    append(&rec, data + 4 * MIB, 5 * MIB);
    berth_sha256_of(data, total, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, total);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_s3, many_tiny_chunks_are_merged_into_one_piece)
{
    char data[100 * 64], digest[BERTH_DIGEST_LEN];
    berth_record_t rec;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    oci_session(&rec);
    for (size_t at = 0; at < sizeof(data); at += 64)
        append(&rec, data + at, 64);
    cr_assert_lt(pieces_of(&rec), 33, "%zu pieces", pieces_of(&rec));
    berth_sha256_of(data, sizeof(data), digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, sizeof(data));
    berth_record_clear(&rec);
}

Test(storage_s3, removing_a_session_aborts_its_multipart_upload)
{
    char *data = pattern(6 * MIB, 3);
    berth_record_t rec;

    oci_session(&rec);
    append(&rec, data, 6 * MIB);
    cr_assert_eq(multipart_uploads(), 1);
    cr_assert_eq(berth_storage_record_put(b, rec.id, "{}", 2), 0);
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, &rec), 0, "%s", berth_error_last());
    cr_assert_eq(multipart_uploads(), 0);
    berth_record_clear(&rec);
    free(data);
}

Test(storage_s3, an_orphaned_multipart_upload_is_listed_and_removed)
{
    berth_record_t rec;
    contract_list_t l = {.n = 0};

    /* Created, then the process died before its first record. */
    oci_session(&rec);
    cr_assert_eq(berth_storage_record_list(b, contract_list_cb, &l), 0, "%s", berth_error_last());
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.ids[0], rec.id);
    cr_assert_eq(berth_storage_upload_remove(b, rec.id, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(multipart_uploads(), 0);
    berth_record_clear(&rec);
}

Test(storage_s3, parts_under_5_mib_are_refused_unless_single)
{
    cr_assert_eq(berth_storage_upload_parts_check(b, MIB, 4), BERTH_EINVALID);
    cr_assert(strstr(berth_error_last(), "5 MiB") != NULL, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_parts_check(b, MIB, 1), 0);
    cr_assert_eq(berth_storage_upload_parts_check(b, 5 * MIB, 3), 0);
    cr_assert_eq(berth_storage_upload_parts_check(b, 5 * MIB, 10001), BERTH_EINVALID);
}

Test(storage_s3, part_sessions_map_part_n_to_s3_part_n_and_read_back_at_completion)
{
    size_t part = 5 * MIB, total = 2 * part + 1000;
    char *data = pattern(total, 5), digest[BERTH_DIGEST_LEN], *buf = malloc(MIB);
    berth_record_t rec;
    size_t got = 0;

    berth_record_init(&rec);
    cr_assert_eq(berth_id_generate(rec.id), 0);
    rec.kind = BERTH_SESSION_PARTS;
    rec.part_size = part;
    rec.total_parts = 3;
    berth_sha256_init(&rec.hash);
    cr_assert_eq(berth_storage_upload_create(b, &rec), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_write(b, &rec, 2 * part, data + 2 * part, 1000), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_upload_write(b, &rec, 0, data, part), 0);
    cr_assert_eq(berth_rangeset_add(&rec.received, 1, 1), 0);
    cr_assert_eq(berth_rangeset_add(&rec.received, 3, 3), 0);
    rec.offset = part + 1000;
    /* Not every part is there: nothing can be read back yet. */
    cr_assert_neq(berth_storage_upload_read(b, &rec, 0, buf, MIB, &got), 0);
    cr_assert_eq(berth_storage_upload_write(b, &rec, part, data + part, part), 0);
    cr_assert_eq(berth_rangeset_add(&rec.received, 2, 2), 0);
    rec.offset = total;
    cr_assert_eq(berth_storage_upload_read(b, &rec, part + 7, buf, MIB, &got), 0, "%s", berth_error_last());
    cr_assert_eq(got, MIB);
    cr_assert_eq(memcmp(buf, data + part + 7, MIB), 0);
    berth_sha256_of(data, total, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, total);
    cr_assert_eq(multipart_uploads(), 0);
    berth_record_clear(&rec);
    free(data);
    free(buf);
}

Test(storage_s3, a_wrong_secret_is_refused_by_the_signature_check)
{
    berth_storage_t *bad = s3_open(s3_root, BERTH_S3_MIN_PART, "not-the-secret");
    char id[BERTH_ID_LEN];

    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(bad, id, "{}", 2), BERTH_EIO);
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
    char id[BERTH_ID_LEN], *buf = NULL;
    size_t len;

    cr_assert_eq(berth_storage_s3_new(&down, &o), 0, "%s", berth_error_last());
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_get(down, id, &buf, &len), BERTH_EUNAVAILABLE);
    berth_storage_free(down);
}

Test(storage_s3, opened_by_name_from_yaml_with_credentials_from_the_environment)
{
    char yaml[1024], id[BERTH_ID_LEN], *buf = NULL;
    berth_storage_t *named = NULL;
    berth_config_t cfg;
    size_t len = 0;

    snprintf(yaml, sizeof(yaml), "storage:\n  s3:\n    bucket: %s\n    regionendpoint: %s\n    rootdirectory: %s\n",
             getenv("BERTH_TEST_S3_BUCKET"), getenv("BERTH_TEST_S3_ENDPOINT"), s3_root);
    berth_config_defaults(&cfg);
    cr_assert_eq(berth_config_load_string(&cfg, "s3.yaml", yaml, strlen(yaml)), 0, "%s", berth_error_last());
    cr_assert_null(cfg.storage_s3_accesskey);
    cr_assert_eq(berth_storage_open(&named, &cfg), 0, "%s", berth_error_last());
    cr_assert_str_eq(named->name, "s3");
    cr_assert_eq(berth_id_generate(id), 0);
    cr_assert_eq(berth_storage_record_put(named, id, "{}", 2), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_record_get(b, id, &buf, &len), 0, "the same bucket and prefix");
    free(buf);
    berth_storage_free(named);
    berth_config_clear(&cfg);
}

Test(storage_s3, a_blob_removed_by_another_instance_is_gone_here_too)
{
    berth_storage_t *other = s3_open(s3_root, BERTH_S3_MIN_PART, NULL);
    char digest[BERTH_DIGEST_LEN], buf[8];
    berth_record_t rec;
    uint64_t size = 0;
    size_t got = 0;

    oci_session(&rec);
    append(&rec, "shared blob", 11);
    berth_sha256_of("shared blob", 11, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_blob_read(b, digest, 0, buf, sizeof(buf), &got), 0); /* now cached here */
    cr_assert_eq(berth_storage_blob_remove(other, digest), 0, "%s", berth_error_last());
    cr_assert_eq(berth_storage_blob_stat(b, digest, &size), BERTH_ENOTFOUND);
    cr_assert_eq(berth_storage_blob_read(b, digest, 0, buf, sizeof(buf), &got), BERTH_ENOTFOUND);
    berth_storage_free(other);
    berth_record_clear(&rec);
}

Test(storage_s3, a_commit_repeated_after_a_crash_before_its_link_completes)
{
    /* kill -9 after CompleteMultipartUpload, before the link object: the
     * record still says "not committed", the upload is gone, the object is
     * there. The repeated commit must find it (S3: NoSuchUpload; moto: 500). */
    berth_s3_client_options_t o = {.bucket = getenv("BERTH_TEST_S3_BUCKET"),
                                   .endpoint = getenv("BERTH_TEST_S3_ENDPOINT"),
                                   .accesskey = getenv("AWS_ACCESS_KEY_ID"),
                                   .secretkey = getenv("AWS_SECRET_ACCESS_KEY"),
                                   .connect_timeout_ms = 2000};
    char digest[BERTH_DIGEST_LEN], key[256];
    char *data = pattern(7 * MIB, 13);
    berth_s3_client_t *c = NULL;
    berth_s3_resp_t resp;
    berth_record_t rec;
    json_t *before;

    oci_session(&rec);
    append(&rec, data, 7 * MIB);
    cr_assert_not_null(before = json_deep_copy(rec.backend));
    berth_sha256_of(data, 7 * MIB, digest);
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    /* Undo the link, and forget the commit, as the crash would have. */
    cr_assert_eq(berth_s3_client_new(&c, &o), 0, "%s", berth_error_last());
    snprintf(key, sizeof(key), "%.*s/blobs/sha256/%.2s/%s/link", (int)strlen(s3_root) - 2, s3_root + 1, digest + 7,
             digest + 7);
    berth_s3_req_t req = {.method = "DELETE", .key = key, .idempotent = 1};
    cr_assert_eq(berth_s3_do(c, &req, &resp), 0, "%s", berth_error_last());
    berth_s3_resp_clear(&resp);
    berth_s3_client_free(c);
    json_decref(rec.backend);
    rec.backend = before;
    cr_assert_eq(berth_storage_upload_commit(b, &rec, digest), 0, "%s", berth_error_last());
    assert_blob(digest, data, 7 * MIB);
    berth_record_clear(&rec);
    free(data);
}
