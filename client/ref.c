/*
 * References, URLs, Range headers and retry delays. See ref.h.
 */
#include "client/ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/validate.h"

void berth_ref_clear(berth_ref_t *ref)
{
    free(ref->base);
    free(ref->repo);
    memset(ref, 0, sizeof(*ref));
}

static int ref__loopback(const char *host, size_t n)
{
    if (n >= 9 && strncasecmp(host, "localhost", 9) == 0 && (n == 9 || host[9] == ':'))
        return 1;
    if (n >= 4 && strncmp(host, "127.", 4) == 0)
        return 1;
    if (n >= 5 && strncmp(host, "[::1]", 5) == 0)
        return 1;
    return 0;
}

int berth_ref_parse(berth_ref_t *ref, const char *text, int want_digest)
{
    const char *p = text, *scheme = NULL, *host, *slash, *at;
    size_t scheme_len = 0;

    memset(ref, 0, sizeof(*ref));
    if (strncmp(p, "http://", 7) == 0) {
        scheme = "http";
        scheme_len = 4;
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        scheme = "https";
        scheme_len = 5;
        p += 8;
    }
    host = p;
    slash = strchr(host, '/');
    if (slash == NULL || slash == host)
        return berth_error_set(BERTH_EINVALID, "'%s': expected REGISTRY/REPO", text);
    size_t host_len = (size_t)(slash - host);
    const char *repo = slash + 1;
    at = strchr(repo, '@');
    size_t repo_len = at != NULL ? (size_t)(at - repo) : strlen(repo);
    while (repo_len > 0 && repo[repo_len - 1] == '/')
        repo_len--;
    if (repo_len == 0 || !berth_name_valid(repo, repo_len))
        return berth_error_set(BERTH_EINVALID, "'%s': '%.*s' is not a repository name", text, (int)repo_len, repo);
    if (at != NULL) {
        if (!want_digest)
            return berth_error_set(BERTH_EINVALID, "'%s': no @DIGEST expected here", text);
        if (strlen(at + 1) + 1 > sizeof(ref->digest) || !berth_digest_valid(at + 1, strlen(at + 1)))
            return berth_error_set(BERTH_EINVALID, "'%s': '%s' is not a sha256 digest", text, at + 1);
        strcpy(ref->digest, at + 1);
    } else if (want_digest) {
        return berth_error_set(BERTH_EINVALID, "'%s': expected REGISTRY/REPO@sha256:<hex>", text);
    }
    if (scheme == NULL) {
        scheme = ref__loopback(host, host_len) ? "http" : "https";
        scheme_len = strlen(scheme);
    }
    size_t blen = scheme_len + 3 + host_len + 1;
    ref->base = malloc(blen);
    ref->repo = strndup(repo, repo_len);
    if (ref->base == NULL || ref->repo == NULL) {
        berth_ref_clear(ref);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    snprintf(ref->base, blen, "%.*s://%.*s", (int)scheme_len, scheme, (int)host_len, host);
    return 0;
}

int berth_url_split(const char *url, char **base, char **path)
{
    const char *p;

    *base = *path = NULL;
    if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return berth_error_set(BERTH_EINVALID, "'%s' is not an http:// or https:// URL", url);
    const char *slash = strchr(p, '/');
    if (slash == p)
        return berth_error_set(BERTH_EINVALID, "'%s' has no host", url);
    size_t blen = slash != NULL ? (size_t)(slash - url) : strlen(url);
    *base = strndup(url, blen);
    *path = strdup(slash != NULL ? slash : "/");
    if (*base == NULL || *path == NULL) {
        free(*base);
        free(*path);
        *base = *path = NULL;
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    return 0;
}

char *berth_url_resolve(const char *base, const char *location)
{
    char *out;
    size_t n;

    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
        return strdup(location);
    n = strlen(base) + strlen(location) + 2;
    if ((out = malloc(n)) == NULL)
        return NULL;
    snprintf(out, n, "%s%s%s", base, location[0] == '/' ? "" : "/", location);
    return out;
}

char *berth_url_add_query(const char *url, const char *query)
{
    size_t n = strlen(url) + strlen(query) + 2;
    char *out = malloc(n);

    if (out != NULL)
        snprintf(out, n, "%s%c%s", url, strchr(url, '?') != NULL ? '&' : '?', query);
    return out;
}

static int ref__u64(const char *s, const char **end, uint64_t *out)
{
    char *e;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno != 0)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

int berth_oci_range_offset(const char *range, int one_byte_known, uint64_t *offset)
{
    const char *p = range, *e;
    uint64_t first, last;

    if (range == NULL)
        return berth_error_set(BERTH_EINVALID, "no Range header");
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "bytes=", 6) == 0)
        p += 6;
    if (ref__u64(p, &e, &first) != 0 || *e != '-' || ref__u64(e + 1, &e, &last) != 0)
        return berth_error_set(BERTH_EINVALID, "malformed Range '%s'", range);
    while (*e == ' ')
        e++;
    if (*e != '\0' || first != 0 || last == UINT64_MAX)
        return berth_error_set(BERTH_EINVALID, "malformed Range '%s'", range);
    *offset = last == 0 && !one_byte_known ? 0 : last + 1;
    return 0;
}

int berth_part_range_parse(const char *text, uint64_t *first, uint64_t *last)
{
    const char *e;

    if (ref__u64(text, &e, first) != 0)
        return berth_error_set(BERTH_EINVALID, "malformed part range '%s'", text);
    if (*e == '\0') {
        *last = *first;
    } else if (*e != '-' || ref__u64(e + 1, &e, last) != 0 || *e != '\0') {
        return berth_error_set(BERTH_EINVALID, "malformed part range '%s'", text);
    }
    if (*first == 0 || *last < *first)
        return berth_error_set(BERTH_EINVALID, "malformed part range '%s'", text);
    return 0;
}

uint64_t berth_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t rnd)
{
    uint64_t bound = base_ms;

    for (unsigned i = 1; i < attempt && bound < cap_ms; i++)
        bound *= 2;
    if (bound > cap_ms)
        bound = cap_ms;
    /* "Equal jitter": never less than half the bound, so retries stay
     * spread out yet do not hammer a server that is restarting. */
    return bound / 2 + (bound - bound / 2 == 0 ? 0 : rnd % (bound - bound / 2 + 1));
}
