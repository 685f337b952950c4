/*
 * Range sets and the two Range-style header parsers.
 *
 * A set is a sorted array of disjoint, non-adjacent inclusive ranges. Every
 * bound computation is written so that ranges touching 0 or UINT64_MAX
 * neither wrap nor merge wrongly: "x - 1" and "x + 1" are only ever taken
 * after checking x is not at the end it would wrap at.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/range.h"

/* "18446744073709551615-18446744073709551615," */
#define RANGE__ITEM_MAX 42

void berth_rangeset_init(berth_rangeset_t *s)
{
    s->v = NULL;
    s->n = 0;
    s->cap = 0;
}

void berth_rangeset_clear(berth_rangeset_t *s)
{
    if (s == NULL)
        return;
    free(s->v);
    berth_rangeset_init(s);
}

static int range__reserve(berth_rangeset_t *s, size_t need)
{
    if (need <= s->cap)
        return BERTH_OK;
    size_t cap = s->cap < 4 ? 4 : s->cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof(*s->v))
            return berth_error_set(BERTH_ERR, "rangeset: too many ranges");
        cap *= 2;
    }
    berth_range_t *v = realloc(s->v, cap * sizeof(*v));
    if (v == NULL)
        return berth_error_set(BERTH_ERR, "rangeset: out of memory");
    s->v = v;
    s->cap = cap;
    return BERTH_OK;
}

/* Index of the first range whose last is >= x (n if none). */
static size_t range__lower_last(const berth_rangeset_t *s, uint64_t x)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].last < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of the first range at or after `from` whose first is > x (n if none). */
static size_t range__upper_first(const berth_rangeset_t *s, size_t from, uint64_t x)
{
    size_t lo = from, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].first <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int berth_rangeset_add(berth_rangeset_t *s, uint64_t first, uint64_t last)
{
    if (first > last)
        return berth_error_set(BERTH_EINVALID, "rangeset: reversed range %llu-%llu", (unsigned long long)first,
                               (unsigned long long)last);

    /* [lo, hi) are the ranges that overlap [first, last] or touch it. A range
     * touches on the left when its last is first - 1, on the right when its
     * first is last + 1; at 0 and UINT64_MAX there is nothing to touch. */
    size_t lo = range__lower_last(s, first == 0 ? 0 : first - 1);
    size_t hi = last == UINT64_MAX ? s->n : range__upper_first(s, lo, last + 1);

    if (lo == hi) {
        int err = range__reserve(s, s->n + 1);
        if (err < 0)
            return err;
        memmove(&s->v[lo + 1], &s->v[lo], (s->n - lo) * sizeof(*s->v));
        s->v[lo].first = first;
        s->v[lo].last = last;
        s->n++;
        return BERTH_OK;
    }

    if (s->v[lo].first < first)
        first = s->v[lo].first;
    if (s->v[hi - 1].last > last)
        last = s->v[hi - 1].last;
    s->v[lo].first = first;
    s->v[lo].last = last;
    memmove(&s->v[lo + 1], &s->v[hi], (s->n - hi) * sizeof(*s->v));
    s->n -= hi - lo - 1;
    return BERTH_OK;
}

int berth_rangeset_remove(berth_rangeset_t *s, uint64_t first, uint64_t last)
{
    if (first > last)
        return berth_error_set(BERTH_EINVALID, "rangeset: reversed range %llu-%llu", (unsigned long long)first,
                               (unsigned long long)last);

    /* [lo, hi) are the ranges that overlap [first, last]. */
    size_t lo = range__lower_last(s, first);
    size_t hi = range__upper_first(s, lo, last);
    if (lo == hi)
        return BERTH_OK;

    /* What survives: the part of the first range before `first` and the
     * part of the last one after `last`; at most one more range than now. */
    int keep_head = s->v[lo].first < first, keep_tail = s->v[hi - 1].last > last;
    berth_range_t head = {s->v[lo].first, first == 0 ? 0 : first - 1};
    berth_range_t tail = {last == UINT64_MAX ? 0 : last + 1, s->v[hi - 1].last};
    size_t keep = (size_t)keep_head + (size_t)keep_tail;

    if (keep > hi - lo) {
        int err = range__reserve(s, s->n + 1);
        if (err < 0)
            return err;
    }
    memmove(&s->v[lo + keep], &s->v[hi], (s->n - hi) * sizeof(*s->v));
    s->n = s->n - (hi - lo) + keep;
    if (keep_head)
        s->v[lo++] = head;
    if (keep_tail)
        s->v[lo] = tail;
    return BERTH_OK;
}

int berth_rangeset_contains(const berth_rangeset_t *s, uint64_t x)
{
    size_t i = range__lower_last(s, x);
    return i < s->n && s->v[i].first <= x;
}

uint64_t berth_rangeset_count(const berth_rangeset_t *s)
{
    uint64_t total = 0;

    for (size_t i = 0; i < s->n; i++) {
        uint64_t width = s->v[i].last - s->v[i].first; /* one less than the count, cannot wrap */
        /* Only the full set 0..UINT64_MAX has 2^64 members; report it as UINT64_MAX. */
        if (width >= UINT64_MAX - total)
            return UINT64_MAX;
        total += width + 1;
    }
    return total;
}

/* Appends a range known to lie after every range in s and not touch it. */
static int range__append(berth_rangeset_t *s, uint64_t first, uint64_t last)
{
    int err = range__reserve(s, s->n + 1);
    if (err < 0)
        return err;
    s->v[s->n].first = first;
    s->v[s->n].last = last;
    s->n++;
    return BERTH_OK;
}

int berth_rangeset_missing(const berth_rangeset_t *s, uint64_t first, uint64_t last, berth_rangeset_t *out)
{
    int err = BERTH_OK;

    assert(out != s);
    berth_rangeset_clear(out);
    if (first > last)
        return berth_error_set(BERTH_EINVALID, "rangeset: reversed range %llu-%llu", (unsigned long long)first,
                               (unsigned long long)last);

    uint64_t cur = first;
    for (size_t i = range__lower_last(s, first); i < s->n && s->v[i].first <= last; i++) {
        if (s->v[i].first > cur && (err = range__append(out, cur, s->v[i].first - 1)) < 0)
            goto done;
        if (s->v[i].last >= last)
            goto done; /* covered to the end: no tail gap */
        cur = s->v[i].last + 1;
    }
    err = range__append(out, cur, last);

done:
    if (err < 0)
        berth_rangeset_clear(out);
    return err;
}

int berth_rangeset_copy(berth_rangeset_t *out, const berth_rangeset_t *s)
{
    int err;

    if (out == s)
        return BERTH_OK;
    berth_rangeset_clear(out);
    if ((err = range__reserve(out, s->n)) < 0)
        return err;
    if (s->n > 0)
        memcpy(out->v, s->v, s->n * sizeof(*s->v));
    out->n = s->n;
    return BERTH_OK;
}

int berth_rangeset_format(const berth_rangeset_t *s, char **out)
{
    *out = NULL;
    if (s->n > (SIZE_MAX - 1) / RANGE__ITEM_MAX)
        return berth_error_set(BERTH_ERR, "rangeset: too many ranges to format");

    size_t cap = s->n * RANGE__ITEM_MAX + 1;
    char *buf = malloc(cap);
    if (buf == NULL)
        return berth_error_set(BERTH_ERR, "rangeset: out of memory");

    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        const char *sep = i > 0 ? "," : "";
        if (s->v[i].first == s->v[i].last)
            pos += (size_t)snprintf(buf + pos, cap - pos, "%s%llu", sep, (unsigned long long)s->v[i].first);
        else
            pos += (size_t)snprintf(buf + pos, cap - pos, "%s%llu-%llu", sep, (unsigned long long)s->v[i].first,
                                    (unsigned long long)s->v[i].last);
    }
    *out = buf;
    return BERTH_OK;
}

/* Reads a run of decimal digits at *p (stopping at end). Returns the number
 * of digits read; *overflow is set when the value exceeds UINT64_MAX, and *v
 * then saturates at UINT64_MAX. */
static size_t range__digits(const char **p, const char *end, uint64_t *v, int *overflow)
{
    const char *q = *p;
    uint64_t x = 0;

    *overflow = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned)(*q - '0');
        if (x > (UINT64_MAX - d) / 10) {
            *overflow = 1;
            x = UINT64_MAX;
        } else if (!*overflow) {
            x = x * 10 + d;
        }
        q++;
    }
    size_t n = (size_t)(q - *p);
    *p = q;
    *v = x;
    return n;
}

/* A number as format writes it: digits, no sign, no leading zero, no overflow. */
static int range__number(const char **p, const char *end, uint64_t *v)
{
    const char *start = *p;
    int overflow;
    size_t n = range__digits(p, end, v, &overflow);

    if (n == 0 || overflow || (n > 1 && *start == '0'))
        return BERTH_EINVALID;
    return BERTH_OK;
}

int berth_rangeset_parse(berth_rangeset_t *s, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    int err = BERTH_OK;

    berth_rangeset_clear(s);
    if (len == 0)
        return BERTH_OK;

    for (;;) {
        uint64_t first, last;
        if (range__number(&p, end, &first) < 0)
            goto bad;
        last = first;
        if (p < end && *p == '-') {
            p++;
            if (range__number(&p, end, &last) < 0 || last < first)
                goto bad;
        }
        if ((err = berth_rangeset_add(s, first, last)) < 0)
            goto done;
        if (p == end)
            break;
        if (*p != ',')
            goto bad;
        p++;
    }
    return BERTH_OK;

bad:
    err = berth_error_set(BERTH_EINVALID, "rangeset: malformed near offset %zu of \"%.*s\"", (size_t)(p - text),
                          len > 64 ? 64 : (int)len, text);
done:
    berth_rangeset_clear(s);
    return err;
}

/* Skips a case-insensitive literal prefix; 1 if it was there. */
static int range__prefix(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || strncasecmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

int berth_content_range_parse(const char *value, size_t len, uint64_t *first, uint64_t *last)
{
    const char *p = value, *end = value + len;
    uint64_t a, b, total;
    int overflow;

    if (!range__prefix(&p, end, "bytes "))
        range__prefix(&p, end, "bytes=");
    if (range__digits(&p, end, &a, &overflow) == 0 || overflow)
        goto bad;
    if (p == end || *p++ != '-')
        goto bad;
    if (range__digits(&p, end, &b, &overflow) == 0 || overflow)
        goto bad;
    if (a > b)
        return berth_error_set(BERTH_EINVALID, "Content-Range: reversed range %llu-%llu", (unsigned long long)a,
                               (unsigned long long)b);
    if (p < end && *p == '/') {
        p++;
        if (p < end && *p == '*') {
            p++;
        } else {
            if (range__digits(&p, end, &total, &overflow) == 0 || overflow)
                goto bad;
            /* RFC 9110 14.4: a range ending at or past the complete length is invalid. */
            if (b >= total)
                return berth_error_set(BERTH_EINVALID, "Content-Range: range %llu-%llu beyond total %llu",
                                       (unsigned long long)a, (unsigned long long)b, (unsigned long long)total);
        }
    }
    if (p != end)
        goto bad;
    *first = a;
    *last = b;
    return BERTH_OK;

bad:
    return berth_error_set(BERTH_EINVALID, "Content-Range: malformed value \"%.*s\"", len > 64 ? 64 : (int)len, value);
}

int berth_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = value, *end = value + len;
    uint64_t a = 0, b = UINT64_MAX;
    int overflow, suffix = 0;

    if (!range__prefix(&p, end, "bytes="))
        goto bad;
    /* Numbers too big for 64 bits are still well-formed: they saturate, so a
     * huge first is unsatisfiable, a huge last or suffix means "to the end". */
    if (p < end && *p == '-') {
        p++;
        suffix = 1;
        if (range__digits(&p, end, &b, &overflow) == 0)
            goto bad;
    } else {
        if (range__digits(&p, end, &a, &overflow) == 0)
            goto bad;
        if (p == end || *p++ != '-')
            goto bad;
        if (p < end && *p >= '0' && *p <= '9')
            range__digits(&p, end, &b, &overflow);
        if (a > b)
            goto bad;
    }
    if (p != end)
        goto bad; /* includes multi-range "bytes=0-1,5-6": the caller serves the whole object */

    if (suffix) {
        if (b == 0 || size == 0)
            return berth_error_set(BERTH_ERANGE, "Range: unsatisfiable suffix of %llu bytes of %llu",
                                   (unsigned long long)b, (unsigned long long)size);
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return BERTH_OK;
    }
    if (a >= size)
        return berth_error_set(BERTH_ERANGE, "Range: first byte %llu not within %llu bytes", (unsigned long long)a,
                               (unsigned long long)size);
    *first = a;
    *last = b >= size ? size - 1 : b;
    return BERTH_OK;

bad:
    return berth_error_set(BERTH_EINVALID, "Range: malformed or multi-range value \"%.*s\"", len > 64 ? 64 : (int)len,
                           value);
}
