/*
 * Range sets against a naive bitmap model, and the Content-Range / Range
 * header parsers.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/range.h"

/* A fixed-seed generator, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void assert_canonical(const berth_rangeset_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        cr_assert_leq(s->v[i].first, s->v[i].last, "range %zu reversed", i);
        if (i > 0)
            cr_assert_gt(s->v[i].first, s->v[i - 1].last + 1, "ranges %zu and %zu overlap or touch", i - 1, i);
    }
    cr_assert_leq(s->n, s->cap);
}

static char *format(const berth_rangeset_t *s)
{
    char *out = NULL;
    cr_assert_eq(berth_rangeset_format(s, &out), 0);
    cr_assert_not_null(out);
    return out;
}

static void assert_format(const berth_rangeset_t *s, const char *want)
{
    char *got = format(s);
    cr_assert_str_eq(got, want);
    free(got);
}

/* The naive model's compact form, built from the bitmap directly. */
static char *model_format(const unsigned char *bits, size_t n)
{
    size_t cap = 16, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        if (!bits[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < n && bits[j + 1])
            j++;
        char item[64];
        int w = i == j ? snprintf(item, sizeof(item), "%s%zu", len ? "," : "", i)
                       : snprintf(item, sizeof(item), "%s%zu-%zu", len ? "," : "", i, j);
        while (len + (size_t)w + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, item, (size_t)w + 1);
        len += (size_t)w;
        i = j + 1;
    }
    return out;
}

Test(range, add_merges_overlapping_and_adjacent_neighbours)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT;

    cr_assert_eq(berth_rangeset_add(&s, 10, 20), 0);
    cr_assert_eq(berth_rangeset_add(&s, 30, 40), 0);
    assert_format(&s, "10-20,30-40");
    cr_assert_eq(berth_rangeset_add(&s, 21, 29), 0); /* touches both sides */
    assert_format(&s, "10-40");
    cr_assert_eq(s.n, 1);
    cr_assert_eq(berth_rangeset_add(&s, 42, 42), 0);
    cr_assert_eq(berth_rangeset_add(&s, 9, 9), 0);
    assert_format(&s, "9-40,42");
    cr_assert_eq(berth_rangeset_add(&s, 41, 41), 0);
    assert_format(&s, "9-42");
    cr_assert_eq(berth_rangeset_add(&s, 0, 100), 0);
    assert_format(&s, "0-100");
    cr_assert_eq(berth_rangeset_count(&s), 101);
    assert_canonical(&s);
    berth_rangeset_clear(&s);
    cr_assert_eq(s.n, 0);
    cr_assert_null(s.v);
}

Test(range, add_rejects_reversed_range_and_leaves_set_unchanged)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT;

    cr_assert_eq(berth_rangeset_add(&s, 5, 6), 0);
    cr_assert_eq(berth_rangeset_add(&s, 7, 6), BERTH_EINVALID);
    assert_format(&s, "5-6");
    berth_rangeset_clear(&s);
}

Test(range, bounds_at_zero_and_uint64_max_do_not_wrap)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT, m = BERTH_RANGESET_INIT;

    cr_assert_eq(berth_rangeset_add(&s, UINT64_MAX, UINT64_MAX), 0);
    cr_assert_eq(berth_rangeset_add(&s, 0, 0), 0);
    cr_assert_eq(s.n, 2, "0 and UINT64_MAX must not be treated as adjacent");
    cr_assert(berth_rangeset_contains(&s, UINT64_MAX));
    cr_assert(berth_rangeset_contains(&s, 0));
    cr_assert_not(berth_rangeset_contains(&s, 1));
    cr_assert_not(berth_rangeset_contains(&s, UINT64_MAX - 1));
    assert_format(&s, "0,18446744073709551615");
    cr_assert_eq(berth_rangeset_count(&s), 2);

    cr_assert_eq(berth_rangeset_missing(&s, 0, UINT64_MAX, &m), 0);
    assert_format(&m, "1-18446744073709551614");

    cr_assert_eq(berth_rangeset_add(&s, 2, UINT64_MAX - 1), 0);
    assert_format(&s, "0,2-18446744073709551615");
    cr_assert_eq(berth_rangeset_add(&s, 1, 1), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.v[0].first, 0);
    cr_assert_eq(s.v[0].last, UINT64_MAX);
    /* 2^64 members do not fit a uint64_t: the count saturates. */
    cr_assert_eq(berth_rangeset_count(&s), UINT64_MAX);
    cr_assert_eq(berth_rangeset_missing(&s, 0, UINT64_MAX, &m), 0);
    cr_assert_eq(m.n, 0);

    berth_rangeset_clear(&s);
    cr_assert_eq(berth_rangeset_missing(&s, 0, UINT64_MAX, &m), 0);
    cr_assert_eq(m.n, 1);
    cr_assert_eq(m.v[0].last, UINT64_MAX);
    cr_assert_eq(berth_rangeset_missing(&s, 3, 2, &m), BERTH_EINVALID);
    berth_rangeset_clear(&m);
}

Test(range, missing_is_the_complement_within_bounds)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT, m = BERTH_RANGESET_INIT;

    cr_assert_eq(berth_rangeset_parse(&s, "1-50,52,55-100", 14), 0);
    cr_assert_eq(berth_rangeset_missing(&s, 1, 120, &m), 0);
    assert_format(&m, "51,53-54,101-120");
    cr_assert_eq(berth_rangeset_missing(&s, 0, 60, &m), 0);
    assert_format(&m, "0,51,53-54");
    cr_assert_eq(berth_rangeset_missing(&s, 20, 40, &m), 0);
    assert_format(&m, "");
    cr_assert_eq(berth_rangeset_missing(&s, 52, 52, &m), 0);
    assert_format(&m, "");
    cr_assert_eq(berth_rangeset_missing(&s, 53, 53, &m), 0);
    assert_format(&m, "53");
    berth_rangeset_clear(&s);
    berth_rangeset_clear(&m);
}

Test(range, copy_is_deep_and_independent)
{
    berth_rangeset_t s = BERTH_RANGESET_INIT, c = BERTH_RANGESET_INIT;

    cr_assert_eq(berth_rangeset_add(&c, 1000, 2000), 0); /* replaced by the copy */
    cr_assert_eq(berth_rangeset_add(&s, 1, 3), 0);
    cr_assert_eq(berth_rangeset_add(&s, 7, 9), 0);
    cr_assert_eq(berth_rangeset_copy(&c, &s), 0);
    cr_assert_neq(c.v, s.v);
    cr_assert_eq(berth_rangeset_add(&s, 4, 6), 0);
    assert_format(&s, "1-9");
    assert_format(&c, "1-3,7-9");
    berth_rangeset_clear(&s);
    cr_assert_eq(berth_rangeset_copy(&c, &s), 0);
    assert_format(&c, "");
    berth_rangeset_clear(&c);
}

Test(range, parse_accepts_format_output_and_unordered_overlapping_input)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"0", "0"},
        {"1-50,52,55-100", "1-50,52,55-100"},
        {"55-100,52,1-50", "1-50,52,55-100"},
        {"5,1-3,2-4", "1-5"},
        {"7,7,7", "7"},
        {"3-3", "3"},
        {"10-20,21-30", "10-30"},
        {"18446744073709551615", "18446744073709551615"},
        {"0-18446744073709551615", "0-18446744073709551615"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_rangeset_t s = BERTH_RANGESET_INIT;
        cr_assert_eq(berth_rangeset_parse(&s, cases[i].in, strlen(cases[i].in)), 0, "parse \"%s\"", cases[i].in);
        assert_canonical(&s);
        assert_format(&s, cases[i].want);
        berth_rangeset_clear(&s);
    }
}

Test(range, parse_rejects_anything_else_and_leaves_set_empty)
{
    static const char *const bad[] = {
        "+1",
        "-1",
        " 1",
        "1 ",
        "1,",
        ",1",
        "1,,2",
        "a",
        "1-",
        "-",
        "3-1",
        "1-2-3",
        "01",
        "1-02",
        "1;2",
        "1-+2",
        "0x10",
        "1e3",
        "1 -2",
        "1- 2",
        "１",
        "18446744073709551616",
        "0-18446744073709551616",
        "99999999999999999999999-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        berth_rangeset_t s = BERTH_RANGESET_INIT;
        cr_assert_eq(berth_rangeset_add(&s, 1, 2), 0);
        cr_assert_eq(berth_rangeset_parse(&s, bad[i], strlen(bad[i])), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(s.n, 0, "\"%s\" left members behind", bad[i]);
        berth_rangeset_clear(&s);
    }
    /* An embedded NUL is not a terminator: the explicit length rules. */
    berth_rangeset_t s = BERTH_RANGESET_INIT;
    cr_assert_eq(berth_rangeset_parse(&s, "1\0002", 3), BERTH_EINVALID);
    cr_assert_eq(berth_rangeset_parse(&s, "1-5junk", 3), 0);
    assert_format(&s, "1-5");
    berth_rangeset_clear(&s);
}

Test(range, random_sets_match_a_bitmap_model)
{
    enum { UNIVERSE = 12000 };
    unsigned char *bits = malloc(UNIVERSE);

    for (int round = 0; round < 40; round++) {
        berth_rangeset_t s = BERTH_RANGESET_INIT;
        memset(bits, 0, UNIVERSE);
        size_t target = 1 + rng() % 10000, members = 0;
        uint64_t maxlen = 1 + rng() % 64;

        while (members < target) {
            uint64_t first = rng() % UNIVERSE, len = 1 + rng() % maxlen;
            uint64_t last = first + len - 1 < UNIVERSE ? first + len - 1 : UNIVERSE - 1;
            cr_assert_eq(berth_rangeset_add(&s, first, last), 0);
            for (uint64_t x = first; x <= last; x++) {
                members += !bits[x];
                bits[x] = 1;
            }
        }
        assert_canonical(&s);
        cr_assert_eq(berth_rangeset_count(&s), members);
        for (uint64_t x = 0; x < UNIVERSE + 5; x++)
            cr_assert_eq(berth_rangeset_contains(&s, x), x < UNIVERSE && bits[x], "round %d contains(%llu)", round,
                         (unsigned long long)x);

        char *got = format(&s), *want = model_format(bits, UNIVERSE);
        cr_assert_str_eq(got, want, "round %d", round);

        berth_rangeset_t back = BERTH_RANGESET_INIT;
        cr_assert_eq(berth_rangeset_parse(&back, got, strlen(got)), 0);
        cr_assert_eq(back.n, s.n);
        cr_assert_eq(memcmp(back.v, s.v, s.n * sizeof(*s.v)), 0);

        for (int w = 0; w < 20; w++) {
            uint64_t a = rng() % UNIVERSE, b = rng() % UNIVERSE;
            if (a > b) {
                uint64_t t = a;
                a = b;
                b = t;
            }
            berth_rangeset_t m = BERTH_RANGESET_INIT;
            cr_assert_eq(berth_rangeset_missing(&s, a, b, &m), 0);
            assert_canonical(&m);
            uint64_t gaps = 0;
            for (uint64_t x = a; x <= b; x++) {
                cr_assert_eq(berth_rangeset_contains(&m, x), !bits[x], "missing(%llu, %llu) at %llu",
                             (unsigned long long)a, (unsigned long long)b, (unsigned long long)x);
                gaps += !bits[x];
            }
            cr_assert_eq(berth_rangeset_count(&m), gaps);
            if (a > 0)
                cr_assert_not(berth_rangeset_contains(&m, a - 1));
            cr_assert_not(berth_rangeset_contains(&m, b + 1));
            berth_rangeset_clear(&m);
        }
        free(got);
        free(want);
        berth_rangeset_clear(&back);
        berth_rangeset_clear(&s);
    }
    free(bits);
}

/* ---- Content-Range ---- */

static int cr(const char *v, uint64_t *a, uint64_t *b)
{
    return berth_content_range_parse(v, strlen(v), a, b);
}

Test(content_range, accepts_bare_and_prefixed_forms_with_optional_total)
{
    static const struct {
        const char *in;
        uint64_t first, last;
    } ok[] = {
        {"0-0", 0, 0},
        {"0-1023", 0, 1023},
        {"bytes 100-199", 100, 199},
        {"bytes=100-199", 100, 199},
        {"bytes 0-99/100", 0, 99},
        {"bytes 0-99/*", 0, 99},
        {"5-9/*", 5, 9},
        {"0-18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551615-18446744073709551615", UINT64_MAX, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t a = 7, b = 7;
        cr_assert_eq(cr(ok[i].in, &a, &b), 0, "rejected \"%s\": %s", ok[i].in, berth_error_last());
        cr_assert_eq(a, ok[i].first, "\"%s\"", ok[i].in);
        cr_assert_eq(b, ok[i].last, "\"%s\"", ok[i].in);
    }
}

Test(content_range, rejects_malformed_reversed_overflowing_and_trailing_garbage)
{
    static const char *const bad[] = {
        "",
        "-",
        "bytes ",
        "bytes=",
        "5",
        "5-",
        "-5",
        "a-b",
        "+1-2",
        "1-+2",
        "-1-2",
        " 0-1",
        "0-1 ",
        "0 -1",
        "0- 1",
        "10-5",
        "bytes 10-5",
        "18446744073709551616-1",
        "0-18446744073709551616",
        "99999999999999999999999999-99999999999999999999999999",
        "0-1x",
        "0-1/",
        "0-1/abc",
        "0-1/*x",
        "0-1/2/3",
        "0-1,3-4",
        "bytes  0-1",
        "byte 0-1",
        "bytes:0-1",
        "0-99/50",
        "0-1/18446744073709551616",
        "0x0-0x1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t a = 7, b = 7;
        cr_assert_eq(cr(bad[i], &a, &b), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(a, 7, "\"%s\" wrote first", bad[i]);
        cr_assert_eq(b, 7, "\"%s\" wrote last", bad[i]);
    }
    uint64_t a, b;
    cr_assert_eq(berth_content_range_parse("0-1\0002", 5, &a, &b), BERTH_EINVALID);
    cr_assert_eq(berth_content_range_parse("0-12345", 3, &a, &b), 0, "length bounds the value");
    cr_assert_eq(b, 1);
    cr_assert_eq(berth_error_last_code(), BERTH_EINVALID, "last error kept from the previous failure");
}

/* ---- HTTP Range ---- */

static int hr(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    return berth_http_range_parse(v, strlen(v), size, a, b);
}

Test(http_range, parses_and_clamps_single_ranges)
{
    static const struct {
        const char *in;
        uint64_t size, first, last;
    } ok[] = {
        {"bytes=0-0", 10, 0, 0},
        {"bytes=0-9", 10, 0, 9},
        {"bytes=2-5", 10, 2, 5},
        {"bytes=5-100", 10, 5, 9},
        {"bytes=9-", 10, 9, 9},
        {"bytes=0-", 1, 0, 0},
        {"bytes=-3", 10, 7, 9},
        {"bytes=-10", 10, 0, 9},
        {"bytes=-1000", 10, 0, 9},
        {"bytes=3-99999999999999999999999", 10, 3, 9},
        {"bytes=-99999999999999999999999", 10, 0, 9},
        {"BYTES=1-2", 10, 1, 2},
        {"bytes=0-18446744073709551615", UINT64_MAX, 0, UINT64_MAX - 1},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t a = 7, b = 7;
        cr_assert_eq(hr(ok[i].in, ok[i].size, &a, &b), 0, "rejected \"%s\": %s", ok[i].in, berth_error_last());
        cr_assert_eq(a, ok[i].first, "\"%s\" first %llu", ok[i].in, (unsigned long long)a);
        cr_assert_eq(b, ok[i].last, "\"%s\" last %llu", ok[i].in, (unsigned long long)b);
    }
}

Test(http_range, unsatisfiable_ranges_are_erange)
{
    static const struct {
        const char *in;
        uint64_t size;
    } cases[] = {
        {"bytes=10-", 10},
        {"bytes=10-20", 10},
        {"bytes=-0", 10},
        {"bytes=0-", 0},
        {"bytes=-5", 0},
        {"bytes=0-0", 0},
        {"bytes=99999999999999999999999-", 10},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t a = 7, b = 7;
        cr_assert_eq(hr(cases[i].in, cases[i].size, &a, &b), BERTH_ERANGE, "\"%s\" of %llu", cases[i].in,
                     (unsigned long long)cases[i].size);
        cr_assert_eq(a, 7);
        cr_assert_eq(b, 7);
    }
}

Test(http_range, malformed_and_multi_range_are_einvalid)
{
    static const char *const bad[] = {
        "",           "bytes=",        "bytes=-",    "0-5",         "bytes 0-5",  "bytes=5-2",
        "bytes=a-b",  "bytes=0-1,3-4", "bytes=0-1,", "bytes=+1-2",  "bytes=1-+2", "bytes= 0-1",
        "bytes=0-1 ", "bytes=--1",     "items=0-1",  "bytes=0-1-2", "bytes=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t a = 7, b = 7;
        cr_assert_eq(hr(bad[i], 100, &a, &b), BERTH_EINVALID, "accepted \"%s\"", bad[i]);
        cr_assert_eq(a, 7);
    }
}
