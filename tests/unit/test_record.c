/*
 * Session records: every field survives a round trip, and corrupt or
 * inconsistent records are refused with a message naming the field.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/record.h"

#define ID "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"

static void make_oci(berth_record_t *rec, size_t nbytes)
{
    berth_record_init(rec);
    memcpy(rec->id, ID, sizeof(ID));
    rec->kind = BERTH_SESSION_OCI;
    rec->status = BERTH_STATUS_IN_PROGRESS;
    rec->repository = strdup("library/ubuntu");
    rec->created_at = 1700000000;
    rec->updated_at = 1700000123;
    rec->offset = nbytes;
    if (nbytes > 0)
        cr_assert_eq(berth_rangeset_add(&rec->received, 0, nbytes - 1), 0);
    for (size_t i = 0; i < nbytes; i++) {
        unsigned char b = (unsigned char)(i * 7);
        berth_sha256_update(&rec->hash, &b, 1);
    }
}

static char *encode(const berth_record_t *rec)
{
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(berth_record_encode(rec, &out, &len), 0, "%s", berth_error_last());
    cr_assert_eq(strlen(out), len);
    return out;
}

Test(record, round_trip_of_every_field)
{
    berth_record_t rec, back;
    char d1[BERTH_DIGEST_LEN], d2[BERTH_DIGEST_LEN];

    make_oci(&rec, 1000);
    rec.status = BERTH_STATUS_COMPLETE;
    rec.part_size = 5 * 1024 * 1024;
    rec.total_parts = 17;
    rec.total_size = 1ULL << 40;
    rec.owner = strdup("alice");
    rec.digest = strdup("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Opaque to the record: any text, including what JSON must escape. */
    rec.state = strdup("upload_id=abc/def;etags=1:\"x\",2:\\y\\;note=caf\xc3\xa9\n\ttab");
    char *text = encode(&rec);

    berth_record_init(&back);
    back.owner = strdup("stale"); /* decode clears first */
    cr_assert_eq(berth_record_decode(&back, text, strlen(text)), 0, "%s", berth_error_last());
    cr_assert_str_eq(back.id, ID);
    cr_assert_eq(back.kind, BERTH_SESSION_OCI);
    cr_assert_eq(back.status, BERTH_STATUS_COMPLETE);
    cr_assert_str_eq(back.repository, "library/ubuntu");
    cr_assert_eq(back.created_at, 1700000000);
    cr_assert_eq(back.updated_at, 1700000123);
    cr_assert_eq(back.offset, 1000);
    cr_assert_eq(back.received.n, 1);
    cr_assert_eq(back.received.v[0].first, 0);
    cr_assert_eq(back.received.v[0].last, 999);
    cr_assert_eq(berth_sha256_length(&back.hash), 1000);
    berth_sha256_digest(&rec.hash, d1);
    berth_sha256_digest(&back.hash, d2);
    cr_assert_str_eq(d1, d2);
    cr_assert_eq(back.part_size, 5 * 1024 * 1024);
    cr_assert_eq(back.total_parts, 17);
    cr_assert_eq(back.total_size, 1ULL << 40);
    cr_assert_str_eq(back.owner, "alice");
    cr_assert_str_eq(back.digest, rec.digest);
    cr_assert_str_eq(back.state, rec.state);
    cr_assert_neq(back.state, rec.state, "the decoded state must be the record's own");

    /* Encoding the decoded record gives the same text. */
    char *again = encode(&back);
    cr_assert_str_eq(again, text);

    /* Continuing the restored hash equals continuing the original, and a
     * record whose hash runs ahead of its offset is refused. */
    berth_sha256_update(&rec.hash, "tail", 4);
    berth_sha256_update(&back.hash, "tail", 4);
    berth_sha256_digest(&rec.hash, d1);
    berth_sha256_digest(&back.hash, d2);
    cr_assert_str_eq(d1, d2);
    char *ahead = encode(&back);
    berth_record_t third;
    berth_record_init(&third);
    cr_assert_eq(berth_record_decode(&third, ahead, strlen(ahead)), BERTH_EINVALID);
    free(ahead);
    free(again);
    free(text);
    berth_record_clear(&third);
    berth_record_clear(&back);
    berth_record_clear(&rec);
    cr_assert_null(rec.repository);
    cr_assert_null(rec.state);
    berth_record_clear(NULL);
}

Test(record, optional_fields_stay_absent_and_empty_session_round_trips)
{
    berth_record_t rec, back;

    make_oci(&rec, 0);
    free(rec.repository);
    rec.repository = NULL;
    rec.status = BERTH_STATUS_INIT;
    char *text = encode(&rec);
    cr_assert_null(strstr(text, "\"repository\""));
    cr_assert_null(strstr(text, "\"owner\""));
    cr_assert_null(strstr(text, "\"state\""));
    cr_assert_not_null(strstr(text, "\"received\":\"\""));

    berth_record_init(&back);
    cr_assert_eq(berth_record_decode(&back, text, strlen(text)), 0, "%s", berth_error_last());
    cr_assert_null(back.repository);
    cr_assert_null(back.owner);
    cr_assert_null(back.digest);
    cr_assert_null(back.state);
    cr_assert_eq(back.offset, 0);
    cr_assert_eq(back.received.n, 0);
    cr_assert_eq(back.status, BERTH_STATUS_INIT);
    free(text);
    berth_record_clear(&back);
    berth_record_clear(&rec);
}

Test(record, parts_sessions_keep_arbitrary_received_sets)
{
    berth_record_t rec, back;

    make_oci(&rec, 0);
    rec.kind = BERTH_SESSION_PARTS;
    rec.status = BERTH_STATUS_ABORTED;
    rec.part_size = 4; /* a part record needs a layout the parts fit in */
    rec.total_parts = 100;
    cr_assert_eq(berth_rangeset_parse(&rec.received, "1-50,52,55-100", 14), 0);
    char *text = encode(&rec);
    berth_record_init(&back);
    cr_assert_eq(berth_record_decode(&back, text, strlen(text)), 0, "%s", berth_error_last());
    cr_assert_eq(back.kind, BERTH_SESSION_PARTS);
    cr_assert_eq(back.status, BERTH_STATUS_ABORTED);
    cr_assert_eq(berth_rangeset_count(&back.received), 50 + 1 + 46);
    free(text);
    berth_record_clear(&back);
    berth_record_clear(&rec);
}

Test(record, status_names)
{
    cr_assert_str_eq(berth_status_name(BERTH_STATUS_INIT), "INIT");
    cr_assert_str_eq(berth_status_name(BERTH_STATUS_IN_PROGRESS), "IN_PROGRESS");
    cr_assert_str_eq(berth_status_name(BERTH_STATUS_COMPLETE), "COMPLETE");
    cr_assert_str_eq(berth_status_name(BERTH_STATUS_FAILED), "FAILED");
    cr_assert_str_eq(berth_status_name(BERTH_STATUS_ABORTED), "ABORTED");
}

Test(record, encode_refuses_values_json_cannot_hold)
{
    berth_record_t rec;
    char *out = (char *)1;

    make_oci(&rec, 0);
    rec.total_size = (uint64_t)INT64_MAX + 1;
    cr_assert_eq(berth_record_encode(&rec, &out, NULL), BERTH_EINVALID);
    cr_assert_null(out);
    cr_assert_not_null(strstr(berth_error_last(), "total_size"));
    berth_record_clear(&rec);
}

/* Decodes `text`, expecting BERTH_EINVALID with `field` in the message. */
static void assert_rejected(const char *text, size_t len, const char *field)
{
    berth_record_t rec;

    berth_record_init(&rec);
    cr_assert_eq(berth_record_decode(&rec, text, len), BERTH_EINVALID, "accepted: %.*s", (int)len, text);
    if (field != NULL)
        cr_assert_not_null(strstr(berth_error_last(), field), "message \"%s\" does not name %s", berth_error_last(),
                           field);
    /* A failed decode leaves nothing behind to free or believe. */
    cr_assert_null(rec.repository);
    cr_assert_null(rec.state);
    cr_assert_eq(rec.received.n, 0);
    cr_assert_eq(rec.offset, 0);
    berth_record_clear(&rec);
}

/* Encodes a good 100-byte OCI record, applies `set` (key -> new value,
 * stolen; NULL value deletes the key) and checks decode refuses it. */
static void assert_mutation_rejected(const char *key, json_t *value, const char *field)
{
    berth_record_t rec;
    json_error_t jerr;

    make_oci(&rec, 100);
    char *text = encode(&rec);
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root);
    if (value == NULL)
        json_object_del(root, key);
    else
        json_object_set_new(root, key, value);
    char *bad = json_dumps(root, JSON_COMPACT);
    assert_rejected(bad, strlen(bad), field);
    free(bad);
    free(text);
    json_decref(root);
    berth_record_clear(&rec);
}

static void hash_of(size_t n, char out[BERTH_SHA256_STATE_LEN])
{
    berth_sha256_t h;
    berth_sha256_init(&h);
    for (size_t i = 0; i < n; i++)
        berth_sha256_update(&h, "x", 1);
    berth_sha256_save(&h, out);
}

Test(record, malformed_json_and_truncation_are_rejected)
{
    berth_record_t rec;

    make_oci(&rec, 100);
    char *text = encode(&rec);
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut++)
        assert_rejected(text, cut, NULL);
    assert_rejected("", 0, NULL);
    assert_rejected("not json", 8, NULL);
    assert_rejected("[]", 2, NULL);
    assert_rejected("null", 4, NULL);
    assert_rejected("{}", 2, "version");
    free(text);
    berth_record_clear(&rec);
}

Test(record, duplicate_keys_are_rejected)
{
    berth_record_t rec;

    make_oci(&rec, 0);
    char *text = encode(&rec);
    size_t len = strlen(text);
    /* Append a second "offset" before the closing brace. */
    char *dup = malloc(len + 32);
    memcpy(dup, text, len - 1);
    strcpy(dup + len - 1, ",\"offset\":5}");
    assert_rejected(dup, strlen(dup), NULL);
    free(dup);
    free(text);
    berth_record_clear(&rec);
}

Test(record, wrong_types_and_values_name_the_field)
{
    assert_mutation_rejected("version", json_integer(2), "version");
    assert_mutation_rejected("version", json_string("1"), "version");
    assert_mutation_rejected("version", NULL, "version");
    assert_mutation_rejected("id", json_string("0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0"), "id");
    assert_mutation_rejected("id", json_string("../../etc/passwd"), "id");
    assert_mutation_rejected("id", json_integer(5), "id");
    assert_mutation_rejected("id", NULL, "id");
    assert_mutation_rejected("kind", json_string("blob"), "kind");
    assert_mutation_rejected("status", json_string("DONE"), "status");
    assert_mutation_rejected("status", json_string("in_progress"), "status");
    assert_mutation_rejected("repository", json_string("../evil"), "repository");
    assert_mutation_rejected("repository", json_integer(1), "repository");
    assert_mutation_rejected("created_at", json_string("yesterday"), "created_at");
    assert_mutation_rejected("updated_at", NULL, "updated_at");
    assert_mutation_rejected("offset", json_integer(-1), "offset");
    assert_mutation_rejected("offset", json_real(100.0), "offset");
    assert_mutation_rejected("offset", json_string("100"), "offset");
    assert_mutation_rejected("part_size", json_integer(-5), "part_size");
    assert_mutation_rejected("total_parts", json_true(), "total_parts");
    assert_mutation_rejected("received", json_string("0-99,x"), "received");
    assert_mutation_rejected("received", json_integer(99), "received");
    assert_mutation_rejected("hash", json_string("v1:00"), "hash");
    assert_mutation_rejected("hash", NULL, "hash");
    assert_mutation_rejected("owner", json_integer(3), "owner");
    assert_mutation_rejected("digest", json_string("not a digest"), "digest");
    assert_mutation_rejected("state", json_integer(7), "state");
    assert_mutation_rejected("state", json_pack("{s:s}", "upload_id", "x"), "state");
    assert_mutation_rejected("state", json_array(), "state");
}

Test(record, oci_offset_received_and_hash_must_agree)
{
    char h100[BERTH_SHA256_STATE_LEN], h99[BERTH_SHA256_STATE_LEN], h0[BERTH_SHA256_STATE_LEN];
    hash_of(100, h100);
    hash_of(99, h99);
    hash_of(0, h0);

    /* The good record has offset 100, received "0-99", a 100-byte hash. */
    assert_mutation_rejected("offset", json_integer(101), "received");
    assert_mutation_rejected("offset", json_integer(0), "received");
    assert_mutation_rejected("received", json_string("0-98"), "received");
    assert_mutation_rejected("received", json_string("1-100"), "received");
    assert_mutation_rejected("received", json_string("0-49,51-99"), "received");
    assert_mutation_rejected("received", json_string(""), "received");
    assert_mutation_rejected("hash", json_string(h99), "hash");
    assert_mutation_rejected("hash", json_string(h0), "hash");

    /* The same record with a consistent hash of a different stream is
     * accepted: the record cannot know which bytes were hashed. */
    berth_record_t rec, back;
    make_oci(&rec, 100);
    char *text = encode(&rec);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    json_object_set_new(root, "hash", json_string(h100));
    char *swapped = json_dumps(root, JSON_COMPACT);
    berth_record_init(&back);
    cr_assert_eq(berth_record_decode(&back, swapped, strlen(swapped)), 0, "%s", berth_error_last());
    free(swapped);
    free(text);
    json_decref(root);
    berth_record_clear(&back);
    berth_record_clear(&rec);
}

Test(record, null_optional_fields_are_absent)
{
    berth_record_t rec, back;

    make_oci(&rec, 3);
    char *text = encode(&rec);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    json_object_set_new(root, "repository", json_null());
    json_object_set_new(root, "state", json_null());
    json_object_set_new(root, "future_field", json_string("ignored"));
    char *t2 = json_dumps(root, JSON_COMPACT);
    berth_record_init(&back);
    cr_assert_eq(berth_record_decode(&back, t2, strlen(t2)), 0, "%s", berth_error_last());
    cr_assert_null(back.repository);
    cr_assert_null(back.state);
    free(t2);
    free(text);
    json_decref(root);
    berth_record_clear(&back);
    berth_record_clear(&rec);
}
