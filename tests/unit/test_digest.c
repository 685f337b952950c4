/*
 * Resumable SHA-256: known vectors, save/restore/continue equals one-shot,
 * and corrupt saved states are refused.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/error.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(digest, known_vectors)
{
    char out[BERTH_DIGEST_LEN];

    berth_sha256_of("", 0, out);
    cr_assert_str_eq(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    berth_sha256_of("abc", 3, out);
    cr_assert_str_eq(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    berth_sha256_of(two, strlen(two), out);
    cr_assert_str_eq(out, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a's, fed in uneven pieces. */
    berth_sha256_t h;
    char a[1000];
    memset(a, 'a', sizeof(a));
    berth_sha256_init(&h);
    for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1)
        berth_sha256_update(&h, a, done + step > 1000000 ? 1000000 - done : step);
    berth_sha256_digest(&h, out);
    cr_assert_str_eq(out, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    cr_assert_eq(berth_sha256_length(&h), 1000000);
}

Test(digest, digest_does_not_disturb_the_running_state)
{
    berth_sha256_t h;
    char mid[BERTH_DIGEST_LEN], end[BERTH_DIGEST_LEN], want[BERTH_DIGEST_LEN];

    berth_sha256_init(&h);
    cr_assert_eq(berth_sha256_length(&h), 0);
    berth_sha256_update(&h, "ab", 2);
    berth_sha256_digest(&h, mid);
    berth_sha256_digest(&h, mid); /* twice: still the same */
    berth_sha256_update(&h, "c", 1);
    berth_sha256_digest(&h, end);
    berth_sha256_of("ab", 2, want);
    cr_assert_str_eq(mid, want);
    cr_assert_str_eq(end, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(berth_sha256_length(&h), 3);
}

Test(digest, save_restore_continue_equals_one_shot_across_random_chunkings)
{
    enum { MAX = 600 * 1024 };
    unsigned char *data = malloc(MAX);

    for (size_t i = 0; i < MAX; i++)
        data[i] = (unsigned char)rng();

    for (int round = 0; round < 12; round++) {
        size_t len = 200 * 1024 + rng() % (MAX - 200 * 1024);
        if (round == 0)
            len = 64 * 1024; /* a whole number of blocks */
        char want[BERTH_DIGEST_LEN], got[BERTH_DIGEST_LEN];
        berth_sha256_of(data, len, want);

        berth_sha256_t h;
        berth_sha256_init(&h);
        size_t pos = 0;
        while (pos < len) {
            /* Small, block-aligned and large chunks all happen. */
            size_t max = (rng() % 4 == 0) ? 70000 : (rng() % 2 ? 64 : 200);
            size_t n = 1 + rng() % max;
            if (n > len - pos)
                n = len - pos;
            berth_sha256_update(&h, data + pos, n);
            pos += n;

            char saved[BERTH_SHA256_STATE_LEN];
            memset(saved, 'Z', sizeof(saved));
            berth_sha256_save(&h, saved);
            cr_assert_lt(strlen(saved), BERTH_SHA256_STATE_LEN);
            for (const char *c = saved; *c; c++)
                cr_assert(*c >= 0x21 && *c <= 0x7e, "unprintable byte in saved state");

            /* Resume in a fresh state that holds garbage first. */
            berth_sha256_t r;
            memset(&r, 0xa5, sizeof(r));
            cr_assert_eq(berth_sha256_restore(&r, saved), 0, "restore: %s", berth_error_last());
            cr_assert_eq(berth_sha256_length(&r), pos);
            char again[BERTH_SHA256_STATE_LEN];
            berth_sha256_save(&r, again);
            cr_assert_str_eq(again, saved, "save(restore(s)) != s");
            h = r;
        }
        berth_sha256_digest(&h, got);
        cr_assert_str_eq(got, want, "round %d, %zu bytes", round, len);
        cr_assert_eq(berth_sha256_length(&h), len);
    }
    free(data);
}

static void state_after(const char *text, char out[BERTH_SHA256_STATE_LEN])
{
    berth_sha256_t h;
    berth_sha256_init(&h);
    berth_sha256_update(&h, text, strlen(text));
    berth_sha256_save(&h, out);
}

Test(digest, corrupt_states_are_rejected)
{
    char good[BERTH_SHA256_STATE_LEN], bad[BERTH_SHA256_STATE_LEN + 8];
    berth_sha256_t h;
    size_t len;

    state_after("hello, berth: a state with a partial block", good);
    len = strlen(good);
    cr_assert_eq(berth_sha256_restore(&h, good), 0);

    /* Every single-character flip anywhere is caught. */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, good, len + 1);
        bad[i] = bad[i] == '0' ? '1' : '0';
        cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID, "flip at %zu accepted", i);
    }
    /* Every truncation. */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, good, i);
        bad[i] = '\0';
        cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID, "truncation to %zu accepted", i);
    }
    /* Extension, wrong version, uppercase hex. */
    snprintf(bad, sizeof(bad), "%s0", good);
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    memcpy(bad, good, len + 1);
    bad[1] = '2';
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    cr_assert_eq(berth_sha256_restore(&h, "v2:"), BERTH_EINVALID);
    cr_assert_eq(berth_sha256_restore(&h, ""), BERTH_EINVALID);
    memcpy(bad, good, len + 1);
    for (char *c = bad; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
}

/* Builds a state text with a valid checksum around a doctored payload, to
 * check the semantic checks behind the checksum. */
static void doctor(const char *good, size_t word, uint32_t value, char out[BERTH_SHA256_STATE_LEN])
{
    char payload[BERTH_SHA256_STATE_LEN], check[BERTH_DIGEST_LEN];
    const char *colon = strrchr(good, ':');
    size_t plen = (size_t)(colon - good);

    memcpy(payload, good, plen);
    payload[plen] = '\0';
    /* Words are little-endian hex after "v1:"; word index counts 4-byte words
     * where data[] occupies words 10..25. */
    char *w = payload + 3 + 8 * word;
    for (int i = 0; i < 4; i++) {
        static const char hex[] = "0123456789abcdef";
        unsigned b = (value >> (8 * i)) & 0xff;
        w[2 * i] = hex[b >> 4];
        w[2 * i + 1] = hex[b & 15];
    }
    berth_sha256_of(payload, plen, check);
    memcpy(out, payload, plen);
    out[plen] = ':';
    memcpy(out + plen + 1, check + 7, 8);
    out[plen + 9] = '\0';
}

Test(digest, states_no_stream_produces_are_rejected_despite_a_valid_checksum)
{
    char good[BERTH_SHA256_STATE_LEN], bad[BERTH_SHA256_STATE_LEN];
    berth_sha256_t h;

    state_after("0123456789", good); /* num = 10, Nl = 80 */
    doctor(good, 26, 10, bad);       /* unchanged num: the doctor itself is right */
    cr_assert_eq(berth_sha256_restore(&h, bad), 0, "%s", berth_error_last());
    cr_assert_eq(berth_sha256_length(&h), 10);

    doctor(good, 26, 65, bad); /* num > 64 would overrun the block buffer */
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    doctor(good, 26, 64, bad);
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    doctor(good, 26, 11, bad); /* num disagrees with the length */
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    doctor(good, 27, 28, bad); /* md_len of SHA-224 */
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
    doctor(good, 8, 81, bad); /* Nl not a whole number of bytes */
    cr_assert_eq(berth_sha256_restore(&h, bad), BERTH_EINVALID);
}

Test(digest, hashing_beside_other_work_equals_one_shot)
{
    /* Below and above the size that gets a thread of its own. */
    static const size_t sizes[] = {0, 1, 4096, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 17};
    size_t max = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1];
    unsigned char *buf = malloc(max + 10);

    berth_workq_t *pool = NULL;

    cr_assert_not_null(buf);
    cr_assert_eq(berth_workq_new(&pool, 2), 0);
    for (size_t i = 0; i < max + 10; i++)
        buf[i] = (unsigned char)rng();
    /* Each size inline (no pool) and on the pool. */
    for (size_t i = 0; i < 2 * (sizeof(sizes) / sizeof(sizes[0])); i++) {
        size_t k = i % (sizeof(sizes) / sizeof(sizes[0]));
        char want[BERTH_DIGEST_LEN], got[BERTH_DIGEST_LEN];
        berth_sha256_t h;
        berth_sha256_job_t job;

        berth_sha256_of(buf, 10 + sizes[k], want);
        berth_sha256_init(&h);
        berth_sha256_update(&h, buf, 10);
        berth_sha256_update_start(&job, i < sizeof(sizes) / sizeof(sizes[0]) ? NULL : pool, &h, buf + 10, sizes[k]);
        berth_sha256_update_wait(&job);
        berth_sha256_digest(&h, got);
        cr_assert_str_eq(got, want, "size %zu", sizes[k]);
        cr_assert_eq(berth_sha256_length(&h), 10 + sizes[k]);
    }
    berth_workq_free(pool);
    free(buf);
}

Test(digest, base64_decodes_padded_and_unpadded_and_refuses_the_malformed)
{
    /* RFC 4648 section 10 vectors, each with and without its padding. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    unsigned char out[16];
    size_t n;

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        size_t len = strlen(padded[i]);
        cr_assert_eq(berth_base64_decode(padded[i], len, out, sizeof(out), &n), 0, "%s", padded[i]);
        cr_assert_eq(n, strlen(plain[i]));
        cr_assert(memcmp(out, plain[i], n) == 0, "%s", padded[i]);
        while (len > 0 && padded[i][len - 1] == '=')
            len--;
        cr_assert_eq(berth_base64_decode(padded[i], len, out, sizeof(out), &n), 0, "unpadded %s", padded[i]);
        cr_assert_eq(n, strlen(plain[i]));
        cr_assert(memcmp(out, plain[i], n) == 0, "unpadded %s", padded[i]);
    }
    static const char *const bad[] = {"Z", "Zm9v!", "Zm 9v", " Zm9v", "Zm9v\n", "Zg=a", "Z===", "Zm9vY"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(berth_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -1, "'%s'", bad[i]);
    /* Too long for the room given. */
    cr_assert_eq(berth_base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
    cr_assert_eq(berth_base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
}
