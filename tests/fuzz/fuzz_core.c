/*
 * libFuzzer target for the parsers that take bytes from clients or from
 * storage: session records, compact part ranges, Content-Range and Range
 * headers, YAML config, stored manifests, names, digests, tags, saved hash
 * states and base64. The first input byte picks the parser; the rest is its
 * input. Where a parser has an inverse, what it accepts must survive a
 * round trip.
 *
 * Build and run (clang): see tests/fuzz/run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/range.h"
#include "core/record.h"
#include "core/registry.h"
#include "core/validate.h"

static int fuzz__count(void *ctx, const char *digest)
{
    (*(size_t *)ctx)++;
    if (!berth_digest_valid(digest, strlen(digest)))
        abort(); /* references are handed to storage: they must be valid */
    return 0;
}

static void fuzz__record(const char *p, size_t n)
{
    berth_record_t rec, again;
    char *out = NULL;
    size_t len;

    berth_record_init(&rec);
    berth_record_init(&again);
    if (berth_record_decode(&rec, p, n) == 0) {
        if (berth_record_encode(&rec, &out, &len) != 0 || berth_record_decode(&again, out, len) != 0)
            abort(); /* a record berth accepted must encode and decode again */
        if (again.offset != rec.offset || berth_rangeset_count(&again.received) != berth_rangeset_count(&rec.received))
            abort();
    }
    free(out);
    berth_record_clear(&rec);
    berth_record_clear(&again);
}

static void fuzz__ranges(const char *p, size_t n)
{
    berth_rangeset_t s, t;
    char *out = NULL;

    berth_rangeset_init(&s);
    berth_rangeset_init(&t);
    if (berth_rangeset_parse(&s, p, n) == 0) {
        if (berth_rangeset_format(&s, &out) != 0 || berth_rangeset_parse(&t, out, strlen(out)) != 0 ||
            berth_rangeset_count(&s) != berth_rangeset_count(&t))
            abort();
    }
    free(out);
    berth_rangeset_clear(&s);
    berth_rangeset_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t a, b;
    size_t count = 0;

    if (size < 1)
        return 0;
    /* Parsers get a NUL-terminated copy with its length, as berth gives. */
    char *p = malloc(size);
    size_t n = size - 1;
    if (p == NULL)
        return 0;
    memcpy(p, data + 1, n);
    p[n] = '\0';

    switch (data[0] % 9) {
    case 0:
        fuzz__record(p, n);
        break;
    case 1:
        fuzz__ranges(p, n);
        break;
    case 2:
        if (berth_content_range_parse(p, n, &a, &b) == 0 && a > b)
            abort();
        break;
    case 3:
        if (n >= 8) {
            uint64_t objsize;
            memcpy(&objsize, p, 8);
            objsize %= (uint64_t)1 << 40;
            if (berth_http_range_parse(p + 8, n - 8, objsize, &a, &b) == 0 && (a > b || b >= objsize))
                abort();
        }
        break;
    case 4: {
        berth_config_t cfg;
        berth_config_defaults(&cfg);
        (void)berth_config_load_string(&cfg, "fuzz.yaml", p, n);
        berth_config_clear(&cfg);
        break;
    }
    case 5:
        (void)berth_manifest_references(p, n, fuzz__count, &count);
        break;
    case 6:
        (void)berth_name_valid(p, n);
        (void)berth_digest_valid(p, n);
        (void)berth_digest_wellformed(p, n);
        (void)berth_tag_valid(p, n);
        (void)berth_id_valid(p, n);
        break;
    case 7: {
        berth_sha256_t h;
        (void)berth_sha256_restore(&h, p);
        break;
    }
    case 8: {
        unsigned char out[256];
        size_t got;
        if (berth_base64_decode(p, n, out, sizeof(out), &got) == 0 && got > sizeof(out))
            abort();
        break;
    }
    }
    free(p);
    return 0;
}
