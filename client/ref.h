/*
 * Registry references and URLs for the client.
 *
 *   REGISTRY/REPO[@DIGEST]   127.0.0.1:5000/library/demo@sha256:...
 *                            https://registry.example/library/demo
 *
 * Without a scheme, loopback registries (localhost, 127.x, [::1]) are
 * reached over http and every other one over https, as docker does.
 */
#ifndef BERTH_CLIENT_REF_H
#define BERTH_CLIENT_REF_H

#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"

typedef struct berth_ref {
    char *base;                    /* "scheme://host[:port]", no trailing slash */
    char *repo;                    /* "library/demo" */
    char digest[BERTH_DIGEST_LEN]; /* "" when none was given */
} berth_ref_t;

/* Parses text into *ref. want_digest: 1 requires "@sha256:...", 0 forbids
 * it. BERTH_EINVALID (with a message) on a malformed reference. */
int berth_ref_parse(berth_ref_t *ref, const char *text, int want_digest);
void berth_ref_clear(berth_ref_t *ref);

/* Splits an absolute URL into base ("scheme://host[:port]") and path (from
 * the first '/' after the host, query included; "/" when none). Both are
 * malloc'd. BERTH_EINVALID when url is not http(s)://. */
int berth_url_split(const char *url, char **base, char **path);

/* An absolute URL for a Location header: absolute ones are kept,
 * "/path" ones are joined to base. malloc'd, NULL when out of memory. */
char *berth_url_resolve(const char *base, const char *location);

/* url + "?" or "&" + query (query without the separator). malloc'd. */
char *berth_url_add_query(const char *url, const char *query);

/* The offset after an OCI `Range: 0-<last>` header: last+1, or 0 for
 * "0-0" unless one_byte_known (the client knows byte 0 arrived: then 1).
 * A "bytes=" prefix is accepted. BERTH_EINVALID when malformed or not
 * starting at 0. */
int berth_oci_range_offset(const char *range, int one_byte_known, uint64_t *offset);

/* Parses a compact part-range list element ("7" or "3-9") into first/last.
 * BERTH_EINVALID when malformed, reversed or zero. */
int berth_part_range_parse(const char *text, uint64_t *first, uint64_t *last);

/* Delay before retry number `attempt` (1-based): full jitter over an
 * exponential bound, base_ms * 2^(attempt-1) capped at cap_ms. `rnd` is a
 * uniform random number; the result is in [bound/2, bound]. */
uint64_t berth_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd);

#endif
