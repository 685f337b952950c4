/*
 * Sets of inclusive integer ranges, and Content-Range parsing.
 *
 * One type serves both APIs: the OCI flow keeps the received bytes of a
 * session (always one range 0..offset-1 today), the part-session API keeps
 * the received part numbers ("1-50,52,55-100"). A set is kept sorted with
 * its ranges disjoint and non-adjacent, so its size grows with the number of
 * gaps, never with the number of members.
 */
#ifndef BERTH_CORE_RANGE_H
#define BERTH_CORE_RANGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct berth_range {
    uint64_t first; /* inclusive */
    uint64_t last;  /* inclusive, >= first */
} berth_range_t;

typedef struct berth_rangeset {
    berth_range_t *v; /* sorted, disjoint, non-adjacent */
    size_t n;
    size_t cap;
} berth_rangeset_t;

#define BERTH_RANGESET_INIT {NULL, 0, 0}

void berth_rangeset_init(berth_rangeset_t *s);

/* Frees the ranges; the set is empty and reusable afterwards. NULL-safe. */
void berth_rangeset_clear(berth_rangeset_t *s);

/* Adds [first, last], merging with neighbours. BERTH_EINVALID if first > last,
 * BERTH_ERR on allocation failure (the set is unchanged then). */
int berth_rangeset_add(berth_rangeset_t *s, uint64_t first, uint64_t last);

/* Removes [first, last] from the set, splitting a range when needed.
 * BERTH_EINVALID if first > last, BERTH_ERR on allocation failure (the set
 * is unchanged then). */
int berth_rangeset_remove(berth_rangeset_t *s, uint64_t first, uint64_t last);

/* 1 if x is in the set, else 0. O(log n). */
int berth_rangeset_contains(const berth_rangeset_t *s, uint64_t x);

/* How many integers the set covers. */
uint64_t berth_rangeset_count(const berth_rangeset_t *s);

/* Makes *out (initialised by the caller, cleared first) the integers of
 * [first, last] that are not in s. */
int berth_rangeset_missing(const berth_rangeset_t *s, uint64_t first, uint64_t last, berth_rangeset_t *out);

/* Deep copy into *out (cleared first). */
int berth_rangeset_copy(berth_rangeset_t *out, const berth_rangeset_t *s);

/* Formats the set compactly, "1-50,52,55-100" ("" for an empty set), into a
 * malloc'd string the caller frees. */
int berth_rangeset_format(const berth_rangeset_t *s, char **out);

/* Parses the compact form back into *s (cleared first). Accepts exactly what
 * berth_rangeset_format writes, plus ranges given out of order or
 * overlapping. BERTH_EINVALID on anything else (s is left empty). */
int berth_rangeset_parse(berth_rangeset_t *s, const char *text, size_t len);

/* Parses an OCI chunk's Content-Range value: "<first>-<last>" with both
 * inclusive, optionally prefixed by "bytes " or "bytes=" and optionally
 * followed by "/<total>" or "/ *". BERTH_EINVALID when malformed, reversed
 * (first > last) or beyond UINT64_MAX. */
int berth_content_range_parse(const char *value, size_t len, uint64_t *first, uint64_t *last);

/* Parses a single-range HTTP Range request header against an object of
 * `size` bytes: "bytes=a-b", "bytes=a-", "bytes=-n". On success *first and
 * *last are clamped to the object. BERTH_EINVALID when malformed or a
 * multi-range request (the caller then serves the whole object), BERTH_ERANGE
 * when unsatisfiable (416). */
int berth_http_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last);

#endif
