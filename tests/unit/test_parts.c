/*
 * Part sessions: the part-number sets (compact ranges against a naive
 * model, updates), the part record's round trip, and the engine
 * (core/engine.h) over the filesystem backend (order, concurrency,
 * rewrites, hashing, completion, failures, restarts, owners, expiry).
 * Streamed part writes and claims: test_engine_write.c, test_engine_claim.c.
 *
 * Input the HTTP layer validates (malformed repository names, digests,
 * owners, session ids, part numbers) never reaches the engine and is tested
 * at that boundary (test_http_route.c).
 */
#include <criterion/criterion.h>

#include "core/range.h"
#include "core/validate.h"
#include "engine_fixture.h"

/* ---- compact ranges against a naive model ------------------------------------ */

#define MODEL_MAX 10000

/* The compact form of a bitmap, written the obvious way. */
static char *model_format(const unsigned char *bits, size_t n)
{
    char *out = malloc(n * 12 + 1), *p = out;

    *p = '\0';
    for (size_t i = 1; i <= n; i++) {
        if (!bits[i])
            continue;
        size_t j = i;
        while (j + 1 <= n && bits[j + 1])
            j++;
        p += sprintf(p, "%s%zu", p == out ? "" : ",", i);
        if (j > i)
            p += sprintf(p, "-%zu", j);
        i = j;
    }
    return out;
}

static void assert_matches(const berth_rangeset_t *s, const unsigned char *bits, size_t n)
{
    char *want = model_format(bits, n), *got = NULL;
    uint64_t count = 0;

    for (size_t i = 1; i <= n; i++)
        count += bits[i];
    cr_assert_eq(berth_rangeset_format(s, &got), 0);
    cr_assert_str_eq(got, want);
    cr_assert_eq(berth_rangeset_count(s), count);
    for (size_t i = 1; i + 1 < s->n; i++)
        cr_assert(s->v[i].last + 1 < s->v[i + 1].first, "ranges must be disjoint and not adjacent");

    /* parse(format(s)) is s */
    berth_rangeset_t back = BERTH_RANGESET_INIT;
    cr_assert_eq(berth_rangeset_parse(&back, got, strlen(got)), 0);
    cr_assert_eq(back.n, s->n);
    for (size_t i = 0; i < s->n; i++)
        cr_assert(back.v[i].first == s->v[i].first && back.v[i].last == s->v[i].last);

    /* missing = complement within 1..n */
    berth_rangeset_t miss = BERTH_RANGESET_INIT;
    unsigned char *inv = calloc(n + 2, 1);
    for (size_t i = 1; i <= n; i++)
        inv[i] = !bits[i];
    char *wmiss = model_format(inv, n), *gmiss = NULL;
    cr_assert_eq(berth_rangeset_missing(s, 1, n, &miss), 0);
    cr_assert_eq(berth_rangeset_format(&miss, &gmiss), 0);
    cr_assert_str_eq(gmiss, wmiss);
    for (size_t i = 1; i <= n; i += 1 + (size_t)(rand() % 50))
        cr_assert_eq(berth_rangeset_contains(s, i), bits[i]);

    free(want);
    free(got);
    free(inv);
    free(wmiss);
    free(gmiss);
    berth_rangeset_clear(&back);
    berth_rangeset_clear(&miss);
}

Test(parts_ranges, random_sets_up_to_10000_parts_match_a_naive_model)
{
    srand(4242);
    for (int round = 0; round < 60; round++) {
        size_t n = 1 + (size_t)(rand() % MODEL_MAX);
        unsigned char *bits = calloc(n + 2, 1);
        berth_rangeset_t s = BERTH_RANGESET_INIT;

        for (int op = 0; op < 400; op++) {
            size_t a = 1 + (size_t)(rand() % n);
            size_t len = rand() % 4 == 0 ? (size_t)(rand() % 200) : (size_t)(rand() % 3);
            size_t b = a + len > n ? n : a + len;
            int add = rand() % 3 != 0;
            for (size_t i = a; i <= b; i++)
                bits[i] = (unsigned char)add;
            if (add)
                cr_assert_eq(berth_rangeset_add(&s, a, b), 0);
            else
                cr_assert_eq(berth_rangeset_remove(&s, a, b), 0);
            if (op % 50 == 0)
                assert_matches(&s, bits, n);
        }
        assert_matches(&s, bits, n);
        berth_rangeset_clear(&s);
        free(bits);
    }
}

Test(parts_ranges, single_part_updates_split_and_merge)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT;
    char *f = NULL;

    for (uint64_t n = 1; n <= 100; n++)
        cr_assert_eq(berth_rangeset_add(&s, n, n), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(berth_rangeset_remove(&s, 50, 50), 0);
    cr_assert_eq(berth_rangeset_remove(&s, 1, 1), 0);
    cr_assert_eq(berth_rangeset_remove(&s, 100, 100), 0);
    cr_assert_eq(berth_rangeset_remove(&s, 200, 300), 0); /* absent: no change */
    cr_assert_eq(berth_rangeset_format(&s, &f), 0);
    cr_assert_str_eq(f, "2-49,51-99");
    free(f);
    cr_assert_eq(berth_rangeset_add(&s, 50, 50), 0);
    cr_assert_eq(berth_rangeset_format(&s, &f), 0);
    cr_assert_str_eq(f, "2-99");
    free(f);
    cr_assert_eq(berth_rangeset_remove(&s, 0, UINT64_MAX), 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(berth_rangeset_remove(&s, 5, 4), BERTH_EINVALID);
    berth_rangeset_clear(&s);
}

/* ---- the record ---------------------------------------------------------------- */

static void parts_record(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_id_generate(rec->id), 0);
    rec->kind = BERTH_SESSION_PARTS;
    rec->status = BERTH_STATUS_IN_PROGRESS;
    rec->created_at = 1700000000;
    rec->updated_at = 1700000100;
    rec->part_size = 1000;
    rec->total_parts = 1200;
    rec->total_size = 1199500;
    rec->owner = strdup("alice");
    rec->repository = strdup("library/parts");
    rec->digest = strdup("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    berth_rangeset_add(&rec->received, 1, 50);
    berth_rangeset_add(&rec->received, 52, 52);
    berth_rangeset_add(&rec->received, 55, 100);
    rec->offset = 97 * 1000;
    berth_sha256_update(&rec->hash, "x", 1); /* any state; checked only against offset */
}

Test(parts_record, round_trip_keeps_every_field)
{
    berth_record_t a, b;
    char *buf = NULL, *f = NULL;
    size_t len = 0;

    parts_record(&a);
    berth_record_init(&b);
    cr_assert_eq(berth_record_encode(&a, &buf, &len), 0, "%s", berth_error_last());
    cr_assert_eq(berth_record_decode(&b, buf, len), 0, "%s", berth_error_last());
    cr_assert_str_eq(b.id, a.id);
    cr_assert_eq(b.kind, BERTH_SESSION_PARTS);
    cr_assert_eq(b.status, BERTH_STATUS_IN_PROGRESS);
    cr_assert_eq(b.created_at, a.created_at);
    cr_assert_eq(b.updated_at, a.updated_at);
    cr_assert_eq(b.part_size, 1000);
    cr_assert_eq(b.total_parts, 1200);
    cr_assert_eq(b.total_size, 1199500);
    cr_assert_eq(b.offset, 97000);
    cr_assert_str_eq(b.owner, "alice");
    cr_assert_str_eq(b.repository, "library/parts");
    cr_assert_str_eq(b.digest, a.digest);
    cr_assert_eq(berth_sha256_length(&b.hash), 1);
    cr_assert_eq(berth_rangeset_format(&b.received, &f), 0);
    cr_assert_str_eq(f, "1-50,52,55-100");
    free(f);
    free(buf);
    berth_record_clear(&a);
    berth_record_clear(&b);
}

Test(parts_record, decode_rejects_inconsistent_part_records)
{
    berth_record_t a, b;
    char *buf = NULL;
    size_t len = 0;

    berth_record_init(&b);
    for (int c = 0; c < 5; c++) {
        parts_record(&a);
        switch (c) {
        case 0:
            berth_rangeset_add(&a.received, 1201, 1201); /* past total_parts */
            break;
        case 1:
            berth_rangeset_add(&a.received, 0, 0); /* parts count from 1 */
            break;
        case 2:
            a.part_size = 0;
            break;
        case 3:
            a.total_parts = BERTH_RECORD_MAX_PARTS + 1;
            break;
        case 4:
            a.offset = 0; /* the hash covers more than the parts hold */
            break;
        }
        cr_assert_eq(berth_record_encode(&a, &buf, &len), 0);
        cr_assert_eq(berth_record_decode(&b, buf, len), BERTH_EINVALID, "case %d decoded", c);
        free(buf);
        berth_record_clear(&a);
    }
    berth_record_clear(&b);
}

/* ---- the engine ---------------------------------------------------------------- */

TestSuite(parts, .init = fixture_setup, .fini = fixture_teardown);

/* A session of two parts of 4 bytes, of `repo` and `digest` (may be NULL),
 * that has received both: "aaaa" and "bb". */
static void create_aaaabb(berth_record_t *rec, const char *repo, const char *digest)
{
    create(rec, 2, 4, 0, repo, digest);
    cr_assert_eq(put(rec->id, 1, "aaaa", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec->id, 2, "bb", 2), BERTH_PARTS_STORED);
}

/* An ended session (`status`: COMPLETE, FAILED or ABORTED) keeps its
 * record until purged and takes no more parts; completing it again answers
 * the same only when it is COMPLETE, aborting it again only when not. */
static void assert_ended(const char *id, berth_session_status_t status)
{
    int complete = status == BERTH_STATUS_COMPLETE;
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(berth_parts_status(eng, "alice", id, 0, &out, NULL), 0, "the record stays until purged");
    cr_assert_eq(out.status, status);
    berth_record_clear(&out);
    cr_assert_eq(put(id, 1, "aaaa", 4), BERTH_EEXISTS);
    cr_assert_eq(berth_parts_complete(eng, "alice", id, &out), complete ? 0 : BERTH_EEXISTS);
    berth_record_clear(&out);
    cr_assert_eq(berth_parts_abort(eng, "alice", id, &out), complete ? BERTH_EEXISTS : 0);
    berth_record_clear(&out);
}

Test(parts, create_checks_the_layout)
{
    berth_parts_spec_t bad[] = {
        {.total_parts = 0, .part_size = 4, .owner = "a"},
        {.total_parts = 10001, .part_size = 4, .owner = "a"},
        {.total_parts = 4, .part_size = 0, .owner = "a"},
        {.total_parts = 4, .part_size = FIXTURE_MAX_PART_SIZE + 1, .owner = "a"},
        {.total_parts = 4, .part_size = 4, .total_size = 12, .owner = "a"},
        {.total_parts = 4, .part_size = 4, .total_size = 17, .owner = "a"},
    };
    berth_record_t rec;

    berth_record_init(&rec);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(berth_parts_create(eng, &bad[i], &rec), BERTH_EINVALID, "spec %zu accepted", i);
        cr_assert_neq(berth_error_last()[0], '\0', "spec %zu: no message for the client", i);
    }
    berth_record_clear(&rec);
    cr_assert_eq(stored_data(), 0, "a refused session leaves no data behind");
}

Test(parts, expected_sizes_follow_the_layout)
{
    berth_record_t rec;

    create(&rec, 3, 4, 10, NULL, NULL);
    cr_assert_eq(berth_parts_expected_size(&rec, 1), 4);
    cr_assert_eq(berth_parts_expected_size(&rec, 2), 4);
    cr_assert_eq(berth_parts_expected_size(&rec, 3), 2);
    berth_record_clear(&rec);
    create(&rec, 3, 4, 0, NULL, NULL);
    cr_assert_eq(berth_parts_expected_size(&rec, 2), 4);
    cr_assert_eq(berth_parts_expected_size(&rec, 3), 0, "without a total size the last part may be 1..part_size");
    berth_record_clear(&rec);
}

Test(parts, in_order_parts_are_hashed_as_they_arrive_and_complete_without_reading)
{
    berth_record_t rec;
    size_t ps = 1 << 20, n = 6, size = n * ps - 333;
    unsigned char *data = random_bytes(size, 1);
    char digest[BERTH_DIGEST_LEN];
    uint64_t hashed = 0, bsize = 0;

    berth_sha256_of(data, size, digest);
    create(&rec, n, ps, 0, "library/p", digest);
    for (size_t i = 1; i <= n; i++)
        cr_assert_eq(put(rec.id, i, data + (i - 1) * ps, i < n ? ps : size - (n - 1) * ps), BERTH_PARTS_STORED);
    free(received(rec.id, &hashed, NULL));
    cr_assert_eq(hashed, size, "in-order parts leave nothing to hash at completion");
    /* Nothing is read back: with data_read failing, completion still works. */
    berth_storage_fault_reset("data_read:-6");
    complete_ok(rec.id, data, size);
    cr_assert_eq(berth_blob_stat(eng, "library/p", digest, &bsize), 0);
    cr_assert_eq(bsize, size);
    cr_assert_not(has_data(rec.id), "the parts became the blob");
    berth_record_clear(&rec);
    free(data);
}

Test(parts, out_of_order_parts_complete_with_the_right_digest)
{
    berth_record_t rec;
    size_t ps = 4096, n = 40, size = n * ps;
    unsigned char *data = random_bytes(size, 2);
    uint64_t order[40];

    create(&rec, n, ps, size, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        order[i] = n - i;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(put(rec.id, order[i], data + (order[i] - 1) * ps, ps), BERTH_PARTS_STORED);
        if (i == 9)
            assert_received(rec.id, "31-40");
    }
    assert_received(rec.id, "1-40");
    complete_ok(rec.id, data, size);
    berth_record_clear(&rec);
    free(data);
}

Test(parts, the_hash_catches_up_with_parts_that_arrived_early, .timeout = 60)
{
    berth_record_t rec;
    size_t ps = 65536, n = 40;
    unsigned char *data = random_bytes(n * ps, 3);
    unsigned char *old = random_bytes(ps, 4);
    uint64_t hashed = 0;

    restart(2);
    create(&rec, n, ps, 0, NULL, NULL);
    /* Part 3 first with other bytes, then replaced: what gets hashed must be
     * the new bytes. */
    cr_assert_eq(put(rec.id, 3, old, ps), BERTH_PARTS_STORED);
    for (size_t i = 2; i <= n; i++)
        cr_assert_eq(put(rec.id, i, data + (i - 1) * ps, ps), BERTH_PARTS_STORED);
    free(received(rec.id, &hashed, NULL));
    cr_assert_eq(hashed, 0, "part 1 is missing: nothing can be hashed");
    cr_assert_eq(put(rec.id, 1, data, ps), BERTH_PARTS_STORED);
    /* The parts that waited for part 1 are hashed after it, beside the
     * requests; give that time. */
    settle(rec.id);
    free(received(rec.id, &hashed, NULL));
    cr_assert_eq(hashed, n * ps, "the hash covers parts 1..40 before completion (%llu bytes)",
                 (unsigned long long)hashed);
    berth_storage_fault_reset("data_read:-6");
    complete_ok(rec.id, data, n * ps);
    berth_record_clear(&rec);
    free(data);
    free(old);
}

Test(parts, a_part_replaced_after_arriving_early_is_hashed_with_its_new_bytes)
{
    berth_record_t rec;
    size_t ps = 4096, n = 8;
    unsigned char *data = random_bytes(n * ps, 5);
    unsigned char *old = random_bytes(ps, 6);

    create(&rec, n, ps, 0, NULL, NULL);
    cr_assert_eq(put(rec.id, 3, old, ps), BERTH_PARTS_STORED);
    for (size_t i = n; i >= 2; i--)
        cr_assert_eq(put(rec.id, i, data + (i - 1) * ps, ps), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 1, data, ps), BERTH_PARTS_STORED);
    complete_ok(rec.id, data, n * ps);
    berth_record_clear(&rec);
    free(data);
    free(old);
}

Test(parts, identical_resend_is_same_and_different_resend_replaces)
{
    berth_record_t rec;

    create(&rec, 3, 4, 0, NULL, NULL);
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_PARTS_SAME);
    cr_assert_eq(put(rec.id, 2, "bbbb", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 3, "cc", 2), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 1, "AAAA", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 3, "CCC", 3), BERTH_PARTS_STORED); /* the last part may change size */
    cr_assert_eq(put(rec.id, 3, "CCC", 3), BERTH_PARTS_SAME);
    complete_ok(rec.id, "AAAAbbbbCCC", 11);
    berth_record_clear(&rec);
}

Test(parts, bad_parts_leave_the_session_unchanged)
{
    berth_record_t rec, out;
    unsigned char sha[32] = {0};

    create(&rec, 3, 4, 10, NULL, NULL);
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_PARTS_STORED);
    cr_assert_eq(put(rec.id, 4, "aaaa", 4), BERTH_EINVALID);
    cr_assert_eq(put(rec.id, 2, "aaa", 3), BERTH_EINVALID);
    cr_assert_eq(put(rec.id, 3, "aaa", 3), BERTH_EINVALID); /* total_size says 2 */
    berth_record_init(&out);
    cr_assert_eq(berth_parts_put(eng, "alice", rec.id, 2, "bbbb", 4, sha, &out), BERTH_EDIGEST);
    berth_record_clear(&out);
    assert_received(rec.id, "1");
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), BERTH_ERANGE);
    cr_assert_eq(out.status, BERTH_STATUS_IN_PROGRESS);
    cr_assert_eq(berth_rangeset_count(&out.received), 1, "the record says what is missing");
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(parts, failed_write_or_record_leaves_no_claim)
{
    berth_record_t rec;

    create(&rec, 3, 4, 0, NULL, NULL);
    berth_storage_fault_reset("writer_write:-6:1");
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_EIO);
    assert_received(rec.id, "");
    berth_storage_fault_reset("writer_close:-6:1");
    cr_assert_eq(put(rec.id, 1, "aaaa", 4), BERTH_EIO);
    assert_received(rec.id, "");
    berth_storage_fault_reset("obj_put@sessions/:-11:1");
    cr_assert_eq(put(rec.id, 2, "bbbb", 4), BERTH_ENOSPACE);
    assert_received(rec.id, "");
    berth_storage_fault_reset(NULL);
    cr_assert_eq(put(rec.id, 2, "bbbb", 4), BERTH_PARTS_STORED);
    assert_received(rec.id, "2");
    berth_record_clear(&rec);
}

Test(parts, owners_and_unknown_ids)
{
    berth_record_t rec, out, oci;

    create(&rec, 2, 4, 0, NULL, NULL);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_status(eng, "bob", rec.id, 0, &out, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_parts_put(eng, "bob", rec.id, 1, "aaaa", 4, NULL, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_parts_complete(eng, "bob", rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_parts_abort(eng, "bob", rec.id, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_parts_status(eng, "alice", "00000000-0000-4000-8000-000000000000", 0, &out, NULL),
                 BERTH_ENOTFOUND);
    assert_received(rec.id, "");
    /* An OCI session is not a part session, and the other way round. */
    berth_record_init(&oci);
    cr_assert_eq(berth_oci_start(eng, "library/x", &oci), 0);
    cr_assert_eq(berth_parts_status(eng, "alice", oci.id, 0, &out, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(berth_parts_put(eng, "alice", oci.id, 1, "aaaa", 4, NULL, &out), BERTH_ENOTFOUND);
    cr_assert_eq(berth_oci_status(eng, "library/x", rec.id, &out), BERTH_ENOTFOUND);
    berth_record_clear(&oci);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(parts, digest_mismatch_fails_and_frees)
{
    berth_record_t rec, out;
    char d[BERTH_DIGEST_LEN], actual[BERTH_DIGEST_LEN];

    berth_sha256_of("other", 5, d);
    berth_sha256_of("aaaabb", 6, actual);
    create_aaaabb(&rec, "library/f", d);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), BERTH_EDIGEST);
    cr_assert_eq(out.status, BERTH_STATUS_FAILED);
    cr_assert_str_eq(out.digest, actual, "the failed record says what the content hashed to");
    berth_record_clear(&out);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, 0, &out, NULL), 0);
    cr_assert_eq(out.status, BERTH_STATUS_FAILED);
    cr_assert_eq(out.received.n, 0);
    berth_record_clear(&out);
    cr_assert_not(has_data(rec.id), "the bytes are freed");
    cr_assert_not(blob_exists(actual));
    assert_ended(rec.id, BERTH_STATUS_FAILED);
    berth_record_clear(&rec);
}

Test(parts, completing_twice_answers_the_same)
{
    berth_record_t rec;

    create_aaaabb(&rec, "library/c", NULL);
    complete_ok(rec.id, "aaaabb", 6);
    complete_ok(rec.id, "aaaabb", 6);
    assert_blob("library/c", "aaaabb", 6);
    assert_ended(rec.id, BERTH_STATUS_COMPLETE);
    berth_record_clear(&rec);
}

Test(parts, abort_frees_and_is_idempotent)
{
    berth_record_t rec, out;

    create(&rec, 2, 4, 0, NULL, NULL);
    put(rec.id, 1, "aaaa", 4);
    cr_assert(has_data(rec.id));
    berth_record_init(&out);
    cr_assert_eq(berth_parts_abort(eng, "alice", rec.id, &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.status, BERTH_STATUS_ABORTED);
    cr_assert_eq(berth_parts_abort(eng, "alice", rec.id, NULL), 0);
    cr_assert_not(has_data(rec.id), "the bytes are freed");
    assert_ended(rec.id, BERTH_STATUS_ABORTED);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(parts, sessions_survive_a_restart)
{
    berth_record_t rec;
    uint64_t hashed = 0;
    char *f;

    create(&rec, 5, 4, 0, NULL, NULL);
    put(rec.id, 1, "aaaa", 4);
    put(rec.id, 2, "bbbb", 4);
    put(rec.id, 4, "dddd", 4);
    restart(0);
    f = received(rec.id, &hashed, NULL);
    cr_assert_str_eq(f, "1-2,4");
    free(f);
    cr_assert_eq(hashed, 8);
    put(rec.id, 3, "cccc", 4);
    put(rec.id, 5, "e", 1);
    complete_ok(rec.id, "aaaabbbbccccdddde", 17);
    berth_record_clear(&rec);
}

Test(parts, expired_sessions_are_unknown_and_purged)
{
    berth_record_t rec, out;
    size_t purged = 0;

    create(&rec, 2, 4, 0, NULL, NULL);
    put(rec.id, 1, "aaaa", 4);
    /* Back-date the stored record (the one that claims part 1). */
    backdate(rec.id, 2 * TTL);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, 0, &out, NULL), BERTH_ENOTFOUND);
    cr_assert_eq(put(rec.id, 2, "bb", 2), BERTH_ENOTFOUND);
    cr_assert_eq(berth_engine_purge(eng, (int64_t)time(NULL), &purged), 0, "%s", berth_error_last());
    cr_assert_eq(purged, 1);
    cr_assert_not(has_record(rec.id));
    cr_assert_not(has_data(rec.id));
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

/* Eight threads send every part of one session in their own orders; one
 * part is also sent by all of them with different bytes. */
typedef struct worker_arg {
    const char *id;
    const unsigned char *data;
    size_t ps, n;
    unsigned seed;
    const unsigned char *alt; /* a version of part 1 */
    int failures;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    unsigned s = a->seed;

    for (size_t k = 0; k < a->n; k++) {
        s = s * 1103515245u + 12345u;
        size_t i = 2 + (s >> 8) % (a->n - 1);
        if (put(a->id, i, a->data + (i - 1) * a->ps, a->ps) < 0)
            a->failures++;
    }
    if (put(a->id, 1, a->alt, a->ps) < 0)
        a->failures++;
    return NULL;
}

Test(parts, concurrent_parts_and_same_part_writers_never_mix, .timeout = 120)
{
    enum { THREADS = 8 };
    berth_record_t rec, out;
    size_t ps = 32768, n = 24;
    unsigned char *data = random_bytes(n * ps, 7);
    unsigned char *alts[THREADS];
    worker_arg_t args[THREADS];
    int match = 0;

    restart(2);
    create(&rec, n, ps, 0, NULL, NULL);
    for (int t = 0; t < THREADS; t++) {
        alts[t] = random_bytes(ps, 100 + (unsigned)t);
        args[t] = (worker_arg_t){rec.id, data, ps, n, 31u * (unsigned)t + 1, alts[t], 0};
    }
    run_threads(THREADS, worker, args, sizeof(args[0]));
    for (int t = 0; t < THREADS; t++)
        cr_assert_eq(args[t].failures, 0);
    /* Whatever the threads missed at random. */
    for (size_t i = 2; i <= n; i++)
        cr_assert_geq(put(rec.id, i, data + (i - 1) * ps, ps), 0);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", rec.id, &out), 0, "%s", berth_error_last());
    for (int t = 0; t < THREADS; t++) {
        char d[BERTH_DIGEST_LEN];
        memcpy(data, alts[t], ps);
        berth_sha256_of(data, n * ps, d);
        match += strcmp(d, out.digest) == 0;
    }
    cr_assert_eq(match, 1, "part 1 is exactly one writer's bytes");
    for (int t = 0; t < THREADS; t++)
        free(alts[t]);
    berth_record_clear(&out);
    berth_record_clear(&rec);
    free(data);
}

Test(parts, status_versions_follow_the_stored_record)
{
    berth_record_t rec, out;
    uint64_t v1 = 0, v2 = 0, v3 = 0;

    create(&rec, 3, 4, 0, NULL, NULL);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, 0, &out, &v1), 0);
    cr_assert_neq(v1, 0);
    cr_assert_str_eq(out.id, rec.id);
    berth_record_clear(&out);
    /* Unchanged record, known version: nothing copied. */
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, v1, &out, &v2), 0);
    cr_assert_eq(v2, v1);
    cr_assert_eq(out.id[0], '\0');
    /* Still checked for its owner every time. */
    cr_assert_eq(berth_parts_status(eng, "bob", rec.id, v1, &out, &v2), BERTH_ENOTFOUND);
    cr_assert_eq(put(rec.id, 2, "bbbb", 4), BERTH_PARTS_STORED);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, v1, &out, &v3), 0);
    cr_assert_neq(v3, v1);
    cr_assert_eq(berth_rangeset_count(&out.received), 1);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}

Test(parts, status_versions_see_a_record_replaced_by_another_process)
{
    berth_record_t rec, out;
    uint64_t v1 = 0, v2 = 0;

    create(&rec, 3, 4, 0, NULL, NULL);
    berth_record_init(&out);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, 0, &out, &v1), 0);
    berth_record_clear(&out);
    /* Another process on the same store changes the record. */
    record_load(rec.id, &rec);
    rec.updated_at += 5;
    record_store(rec.id, &rec);
    cr_assert_eq(berth_parts_status(eng, "alice", rec.id, v1, &out, &v2), 0);
    cr_assert_neq(v2, v1, "a cached answer must not hide another process's change");
    cr_assert_eq(out.updated_at, rec.updated_at);
    berth_record_clear(&out);
    berth_record_clear(&rec);
}
