/*
 * The request boundary (contract in route.h). The order of the checks is
 * part of the API: the path first (404), then the method (405), then the
 * names in the path, then the query and the headers.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/record.h"
#include "http/route.h"

/* The most entries one page of tags or repositories holds, whatever `n`
 * asks for; the Link header leads to the rest. */
#define ROUTE__PAGE_MAX 10000
#define ROUTE__SESSIONS "/uploads/sessions"

/* The shapes of /v2/ paths, before the method picks the route. */
typedef enum route__shape {
    ROUTE__NONE,
    ROUTE__BASE,      /* /v2/ */
    ROUTE__CATALOG,   /* /v2/_catalog */
    ROUTE__UPLOADS,   /* /v2/<name>/blobs/uploads/ */
    ROUTE__SESSION,   /* /v2/<name>/blobs/uploads/<last> */
    ROUTE__BLOB,      /* /v2/<name>/blobs/<last> */
    ROUTE__MANIFEST,  /* /v2/<name>/manifests/<last> */
    ROUTE__TAGS,      /* /v2/<name>/tags/list */
    ROUTE__REFERRERS, /* /v2/<name>/referrers/<last> */
} route__shape_t;

typedef struct route__ctx {
    const berth_route_input_t *in;
    h2o_iovec_t query; /* after '?'; base NULL when there is none */
    berth_route_t *r;
    berth_http_error_t *err;
} route__ctx_t;

static int route__method_is(const route__ctx_t *c, const char *m)
{
    return h2o_memis(c->in->method.base, c->in->method.len, m, strlen(m));
}

static int route__get_or_head(const route__ctx_t *c)
{
    return route__method_is(c, "GET") || route__method_is(c, "HEAD");
}

static int route__bad_method(route__ctx_t *c, const char *allow)
{
    berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_METHOD, NULL, "method not allowed");
    c->err->allow = allow;
    return BERTH_EINVALID;
}

static void route__copy(char *out, h2o_iovec_t v)
{
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
}

static int route__hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [p, end) into out of outsz bytes; -1 when malformed. */
static int route__unescape(const char *p, const char *end, char *out, size_t outsz)
{
    size_t o = 0;

    for (; p < end; p++) {
        int c = (unsigned char)*p, hi, lo;
        if (c == '%') {
            if (end - p < 3 || (hi = route__hexval(p[1])) < 0 || (lo = route__hexval(p[2])) < 0)
                return -1;
            c = hi * 16 + lo;
            p += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || o + 1 >= outsz)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int berth_route_query(h2o_iovec_t query, const char *key, char *out, size_t outsz)
{
    const char *q = query.base, *end = query.base + query.len;
    size_t klen = strlen(key);

    if (query.base == NULL)
        return 0;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        const char *kend = eq != NULL ? eq : pend;
        if ((size_t)(kend - q) == klen && memcmp(q, key, klen) == 0)
            return route__unescape(eq != NULL ? eq + 1 : pend, pend, out, outsz) == 0 ? 1 : -1;
        q = pend + 1;
    }
    return 0;
}

/* ---- /v2/ ------------------------------------------------------------------ */

static int route__ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
    size_t sl = strlen(suffix);
    if (len < sl || memcmp(s + len - sl, suffix, sl) != 0)
        return 0;
    *rest = len - sl;
    return 1;
}

/* Splits the path after "/v2/" into a shape, the repository name and the
 * last component (session id, digest or reference). */
static route__shape_t route__split(const char *rest, size_t rlen, h2o_iovec_t *name, h2o_iovec_t *last)
{
    static const struct {
        const char *suffix;
        route__shape_t shape;
    } lasts[] = {{"/blobs/uploads", ROUTE__SESSION},
                 {"/blobs", ROUTE__BLOB},
                 {"/manifests", ROUTE__MANIFEST},
                 {"/referrers", ROUTE__REFERRERS}};
    const char *slash;
    size_t n;

    if (h2o_memis(rest, rlen, H2O_STRLIT("_catalog")))
        return ROUTE__CATALOG;
    if (route__ends_with(rest, rlen, "/blobs/uploads/", &n) || route__ends_with(rest, rlen, "/blobs/uploads", &n)) {
        *name = h2o_iovec_init(rest, n);
        return ROUTE__UPLOADS;
    }
    if (route__ends_with(rest, rlen, "/tags/list", &n)) {
        *name = h2o_iovec_init(rest, n);
        return ROUTE__TAGS;
    }
    /* The rest end in "/<kind>/<last>". */
    for (slash = rest + rlen; slash > rest && slash[-1] != '/'; slash--)
        ;
    if (slash == rest)
        return ROUTE__NONE;
    *last = h2o_iovec_init(slash, rlen - (size_t)(slash - rest));
    for (size_t i = 0; i < sizeof(lasts) / sizeof(lasts[0]); i++) {
        if (route__ends_with(rest, (size_t)(slash - 1 - rest), lasts[i].suffix, &n)) {
            *name = h2o_iovec_init(rest, n);
            return lasts[i].shape;
        }
    }
    return ROUTE__NONE;
}

/* A digest query parameter: 0 when valid (copied) or absent (*present 0). */
static int route__digest_param(route__ctx_t *c, const char *key, char out[BERTH_DIGEST_LEN], int *present)
{
    char buf[BERTH_ROUTE_PARAM_MAX];
    int r = berth_route_query(c->query, key, buf, sizeof(buf));

    *present = r == 1;
    if (r == 0)
        return 0;
    if (r < 0 || !berth_digest_valid(buf, strlen(buf)))
        return berth_http_error_set(
            c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, json_pack("{s:s}", "parameter", key), "%s",
            r > 0 && berth_digest_wellformed(buf, strlen(buf)) ? "unsupported digest algorithm (berth stores sha256)"
                                                               : "invalid digest");
    memcpy(out, buf, strlen(buf) + 1);
    return 0;
}

/* The body's length against a limit (413). */
static int route__limit(route__ctx_t *c, uint64_t limit, const char *what)
{
    if (c->in->length > 0 && (uint64_t)c->in->length > limit)
        return berth_http_error_set(c->err, BERTH_ETOOLARGE, BERTH_SUBJECT_UPLOAD, NULL, "%s", what);
    return 0;
}

/* POST /v2/<name>/blobs/uploads/: a new session, a mount or a whole blob. */
static int route__uploads(route__ctx_t *c)
{
    berth_route_t *r = c->r;
    char mount[BERTH_DIGEST_LEN], from[BERTH_ROUTE_PARAM_MAX];
    int has_digest, has_mount, fr, err;

    if (!route__method_is(c, "POST"))
        return route__bad_method(c, "POST");
    if ((err = route__digest_param(c, "digest", r->digest, &has_digest)) < 0 ||
        (err = route__digest_param(c, "mount", mount, &has_mount)) < 0)
        return err;
    fr = berth_route_query(c->query, "from", from, sizeof(from));
    if (fr < 0 || (fr == 1 && !berth_name_valid(from, strlen(from))))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_NAME, NULL,
                                    "invalid repository name in 'from'");
    if (has_digest) {
        r->kind = BERTH_ROUTE_UPLOAD_MONOLITHIC;
        r->chunk.length = c->in->length;
        return route__limit(c, c->in->cfg->http_maxchunksize, "body over http.maxchunksize");
    }
    if (has_mount) {
        r->kind = BERTH_ROUTE_UPLOAD_MOUNT;
        memcpy(r->digest, mount, sizeof(mount));
        if (fr == 1)
            memcpy(r->from, from, strlen(from) + 1);
        return 0;
    }
    r->kind = BERTH_ROUTE_UPLOAD_START;
    return 0;
}

/* Content-Range of a chunk: inclusive, and covering exactly the body when
 * its length is known (else the engine checks it as the body arrives). */
static int route__content_range(route__ctx_t *c)
{
    h2o_iovec_t v = c->in->content_range;
    berth_chunk_t *ch = &c->r->chunk;

    ch->length = c->in->length;
    if (v.base == NULL)
        return 0;
    if (berth_content_range_parse(v.base, v.len, &ch->first, &ch->last) != 0)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_UPLOAD,
                                    json_pack("{s:s#}", "Content-Range", v.base, (int)(v.len > 100 ? 100 : v.len)),
                                    "malformed Content-Range");
    /* last - first + 1 overflows for 0-18446744073709551615: compare without it. */
    if (ch->length >= 0 && (ch->length == 0 || ch->last - ch->first != (uint64_t)ch->length - 1))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_UPLOAD, NULL,
                                    "Content-Range %" PRIu64 "-%" PRIu64 " does not cover the body's %" PRId64 " bytes",
                                    ch->first, ch->last, ch->length);
    ch->has_range = 1;
    return 0;
}

/* /v2/<name>/blobs/uploads/<id>: status, chunk, finish, cancel. */
static int route__upload(route__ctx_t *c, h2o_iovec_t id)
{
    berth_route_t *r = c->r;
    int has_digest = 0, err;

    if (route__get_or_head(c))
        r->kind = BERTH_ROUTE_UPLOAD_STATUS;
    else if (route__method_is(c, "PATCH"))
        r->kind = BERTH_ROUTE_UPLOAD_CHUNK;
    else if (route__method_is(c, "PUT"))
        r->kind = BERTH_ROUTE_UPLOAD_FINISH;
    else if (route__method_is(c, "DELETE"))
        r->kind = BERTH_ROUTE_UPLOAD_CANCEL;
    else
        return route__bad_method(c, "GET, HEAD, PATCH, PUT, DELETE");
    if (!berth_id_valid(id.base, id.len))
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_UPLOAD, NULL, "no such upload");
    route__copy(r->id, id);
    if (r->kind == BERTH_ROUTE_UPLOAD_FINISH) {
        if ((err = route__digest_param(c, "digest", r->digest, &has_digest)) < 0)
            return err;
        if (!has_digest)
            return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL,
                                        "the digest query parameter is required");
    }
    if (r->kind != BERTH_ROUTE_UPLOAD_CHUNK && r->kind != BERTH_ROUTE_UPLOAD_FINISH)
        return 0;
    if ((err = route__content_range(c)) < 0)
        return err;
    return route__limit(c, c->in->cfg->http_maxchunksize, "chunk over http.maxchunksize");
}

/* /v2/<name>/blobs/<digest>: read, or delete (registry). */
static int route__blob(route__ctx_t *c, h2o_iovec_t digest)
{
    berth_route_t *r = c->r;

    if (route__get_or_head(c))
        r->kind = BERTH_ROUTE_BLOB_GET;
    else if (route__method_is(c, "DELETE"))
        r->kind = BERTH_ROUTE_BLOB_DELETE;
    else
        return route__bad_method(c, "GET, HEAD, DELETE");
    if (r->kind == BERTH_ROUTE_BLOB_DELETE && !c->in->cfg->storage_delete_enabled)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DELETE, NULL, "deletes are disabled");
    if (!berth_digest_valid(digest.base, digest.len)) {
        /* A well-formed digest of another algorithm names no blob berth can hold. */
        if (berth_digest_wellformed(digest.base, digest.len))
            return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_BLOB, NULL, "no such blob");
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL, "invalid digest");
    }
    route__copy(r->digest, digest);
    return 0;
}

/* /v2/<name>/manifests/<reference>: a tag or a digest. */
static int route__manifest(route__ctx_t *c, h2o_iovec_t ref)
{
    berth_route_t *r = c->r;
    int is_digest = memchr(ref.base, ':', ref.len) != NULL;

    if (route__get_or_head(c))
        r->kind = BERTH_ROUTE_MANIFEST_GET;
    else if (route__method_is(c, "PUT"))
        r->kind = BERTH_ROUTE_MANIFEST_PUT;
    else if (route__method_is(c, "DELETE"))
        r->kind = BERTH_ROUTE_MANIFEST_DELETE;
    else
        return route__bad_method(c, "GET, HEAD, PUT, DELETE");
    if (r->kind == BERTH_ROUTE_MANIFEST_DELETE && !c->in->cfg->storage_delete_enabled)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DELETE, NULL, "deletes are disabled");
    if (is_digest && !berth_digest_wellformed(ref.base, ref.len))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_REFERENCE, NULL, "invalid digest");
    if (r->kind == BERTH_ROUTE_MANIFEST_PUT) {
        if (is_digest && !berth_digest_valid(ref.base, ref.len))
            return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL,
                                        "unsupported digest algorithm (berth stores sha256)");
        if (!is_digest && !berth_tag_valid(ref.base, ref.len))
            return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_MANIFEST,
                                        json_pack("{s:s#}", "tag", ref.base, (int)ref.len), "invalid tag");
        if (c->in->length > 0 && (uint64_t)c->in->length > c->in->cfg->validation_manifests_maxsize)
            return berth_http_error_set(c->err, BERTH_ETOOLARGE, BERTH_SUBJECT_MANIFEST, NULL,
                                        "manifest over the limit of %" PRIu64 " bytes (validation.manifests.maxsize)",
                                        c->in->cfg->validation_manifests_maxsize);
    } else if (is_digest ? !berth_digest_valid(ref.base, ref.len) : !berth_tag_valid(ref.base, ref.len)) {
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_MANIFEST, NULL, "no such manifest");
    }
    route__copy(r->reference, ref);
    if (c->in->content_type.base != NULL && r->kind == BERTH_ROUTE_MANIFEST_PUT) {
        h2o_iovec_t v = c->in->content_type;
        v.len = v.len < sizeof(r->content_type) - 1 ? v.len : sizeof(r->content_type) - 1;
        route__copy(r->content_type, v);
        r->has_content_type = 1;
    }
    return 0;
}

/* n and last of a listing. */
static int route__pagination(route__ctx_t *c)
{
    berth_route_t *r = c->r;
    char buf[BERTH_ROUTE_PARAM_MAX];
    int q;

    if (!route__get_or_head(c))
        return route__bad_method(c, "GET, HEAD");
    if ((q = berth_route_query(c->query, "n", buf, sizeof(buf))) != 0) {
        size_t len = q > 0 ? strlen(buf) : 0;
        if (q < 0 || len == 0 || len > 9 || strspn(buf, "0123456789") != len)
            return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_PAGINATION,
                                        json_pack("{s:s}", "n", q > 0 ? buf : ""), "n must be a non-negative integer");
        unsigned long long v = strtoull(buf, NULL, 10);
        r->n = v > ROUTE__PAGE_MAX ? ROUTE__PAGE_MAX : (size_t)v;
    }
    if ((q = berth_route_query(c->query, "last", r->last, sizeof(r->last))) < 0)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_PARAM, NULL, "malformed last parameter");
    r->has_last = q == 1;
    return 0;
}

static int route__referrers(route__ctx_t *c, h2o_iovec_t subject)
{
    berth_route_t *r = c->r;
    int q;

    if (!route__get_or_head(c))
        return route__bad_method(c, "GET, HEAD");
    if (!berth_digest_wellformed(subject.base, subject.len))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL, "invalid digest");
    if ((q = berth_route_query(c->query, "artifactType", r->artifact_type, sizeof(r->artifact_type))) < 0)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_PARAM, NULL,
                                    "malformed artifactType parameter");
    r->has_artifact_type = q == 1;
    route__copy(r->reference, subject);
    return 0;
}

/* Registry routes whose last component is longer than any tag or digest
 * berth could hold. */
static int route__too_long(route__ctx_t *c, route__shape_t shape)
{
    if (route__method_is(c, "HEAD") || (shape == ROUTE__MANIFEST && !route__method_is(c, "PUT")))
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_MANIFEST, NULL, "manifest unknown");
    if (shape == ROUTE__MANIFEST)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_MANIFEST, NULL, "invalid tag");
    return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL, "invalid digest");
}

static int route__named(route__ctx_t *c, route__shape_t shape, h2o_iovec_t name, h2o_iovec_t last)
{
    if (!berth_name_valid(name.base, name.len))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_NAME,
                                    json_pack("{s:s#}", "name", name.base, (int)(name.len > 255 ? 255 : name.len)),
                                    "invalid repository name");
    route__copy(c->r->repo, name);
    if (last.len >= BERTH_ROUTE_PARAM_MAX && (shape == ROUTE__MANIFEST || shape == ROUTE__REFERRERS ||
                                              (shape == ROUTE__BLOB && route__method_is(c, "DELETE"))))
        return route__too_long(c, shape);
    switch (shape) {
    case ROUTE__UPLOADS:
        return route__uploads(c);
    case ROUTE__SESSION:
        return route__upload(c, last);
    case ROUTE__BLOB:
        return route__blob(c, last);
    case ROUTE__MANIFEST:
        return route__manifest(c, last);
    case ROUTE__TAGS:
        c->r->kind = BERTH_ROUTE_TAGS;
        return route__pagination(c);
    case ROUTE__REFERRERS:
        c->r->kind = BERTH_ROUTE_REFERRERS;
        return route__referrers(c, last);
    default:
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, NULL, "no such route");
    }
}

static int route__oci(route__ctx_t *c, const char *path, size_t plen)
{
    h2o_iovec_t name = {NULL, 0}, last = {NULL, 0};
    route__shape_t shape;

    c->r->api = BERTH_API_OCI;
    if (h2o_memis(path, plen, H2O_STRLIT("/v2")) || h2o_memis(path, plen, H2O_STRLIT("/v2/")))
        shape = ROUTE__BASE;
    else if (plen > 4 && memcmp(path, "/v2/", 4) == 0)
        shape = route__split(path + 4, plen - 4, &name, &last);
    else
        shape = ROUTE__NONE;
    switch (shape) {
    case ROUTE__NONE:
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, NULL, "no such route");
    case ROUTE__BASE:
        c->r->kind = BERTH_ROUTE_BASE;
        return route__get_or_head(c) ? 0 : route__bad_method(c, "GET, HEAD");
    case ROUTE__CATALOG:
        c->r->kind = BERTH_ROUTE_CATALOG;
        return route__pagination(c);
    default:
        return route__named(c, shape, name, last);
    }
}

/* ---- /uploads/sessions ---------------------------------------------------- */

/* An optional JSON integer field >= 1 (0 when absent). -1 when present but
 * not a positive integer. */
static int route__uint_field(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* An optional JSON string field into out (outsz bytes, "" when absent). */
static int route__str_field(json_t *o, const char *key, char *out, size_t outsz)
{
    json_t *v = json_object_get(o, key);

    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= outsz || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int route__field_error(route__ctx_t *c, berth_subject_t subject, const char *field, const char *message)
{
    return berth_http_error_set(c->err, BERTH_EINVALID, subject, json_pack("{s:s}", "field", field), "%s", message);
}

/* The fields of a session description. The engine checks how they fit
 * together (total_size against the parts, part_size against the limits). */
static int route__spec(route__ctx_t *c, json_t *body)
{
    berth_route_t *r = c->r;

    if (json_object_get(body, "total_parts") == NULL || json_object_get(body, "part_size") == NULL)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_SESSION, NULL,
                                    "total_parts and part_size are required");
    if (route__uint_field(body, "total_parts", &r->total_parts) < 0 || r->total_parts == 0 ||
        r->total_parts > BERTH_RECORD_MAX_PARTS)
        return route__field_error(c, BERTH_SUBJECT_SESSION, "total_parts",
                                  "total_parts must be an integer from 1 to 10000");
    if (route__uint_field(body, "part_size", &r->part_size) < 0 || r->part_size == 0)
        return route__field_error(c, BERTH_SUBJECT_SESSION, "part_size", "part_size must be a positive integer");
    if (route__uint_field(body, "total_size", &r->total_size) < 0)
        return route__field_error(c, BERTH_SUBJECT_SESSION, "total_size", "total_size must be a positive integer");
    if (route__str_field(body, "repository", r->repo, sizeof(r->repo)) < 0 ||
        (r->repo[0] != '\0' && !berth_name_valid(r->repo, strlen(r->repo))))
        return route__field_error(c, BERTH_SUBJECT_NAME, "repository",
                                  "repository must be a valid OCI repository name");
    if (route__str_field(body, "digest", r->digest, sizeof(r->digest)) < 0 ||
        (r->digest[0] != '\0' && !berth_digest_valid(r->digest, strlen(r->digest))))
        return route__field_error(c, BERTH_SUBJECT_DIGEST, "digest",
                                  "digest must be sha256: followed by 64 lowercase hex digits");
    return 0;
}

static int route__create(route__ctx_t *c)
{
    h2o_iovec_t b = c->in->body;
    json_error_t jerr;
    json_t *body;
    int err;

    c->r->kind = BERTH_ROUTE_SESSION_CREATE;
    if (!route__method_is(c, "POST"))
        return route__bad_method(c, "POST");
    if (b.len > BERTH_ROUTE_SESSION_BODY_MAX || (c->in->length > 0 && c->in->length > BERTH_ROUTE_SESSION_BODY_MAX))
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_SESSION, NULL,
                                    "the request body is too large for a session description");
    body = json_loadb(b.base != NULL ? b.base : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_SESSION,
                                    json_pack("{s:s, s:i}", "error", jerr.text, "column", jerr.column),
                                    "the body must be a JSON object: malformed JSON");
    if (!json_is_object(body))
        err =
            berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_SESSION, NULL, "the body must be a JSON object");
    else
        err = route__spec(c, body);
    json_decref(body);
    return err;
}

/* Exactly 32 bytes of base64; -1 otherwise. */
static int route__b64_sha256(const char *in, size_t len, unsigned char sha[32])
{
    size_t n;

    return berth_base64_decode(in, len, sha, 32, &n) == 0 && n == 32 ? 0 : -1;
}

/* Content-Digest (RFC 9530), a structured-field dictionary such as
 * "sha-256=:<base64>:, sha-512=:<base64>:". 1 with sha[] set when it has a
 * sha-256 member, 0 when it has none (other algorithms are not checked),
 * -1 when malformed. */
static int route__content_digest(const char *v, size_t len, unsigned char sha[32])
{
    size_t i = 0;
    int found = 0;

    /* Indexes rather than pointers: each member is v[i, mend). */
    while (i < len) {
        size_t mend, eq = SIZE_MAX, next;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        for (mend = i; mend < len && v[mend] != ','; mend++)
            if (v[mend] == '=' && eq == SIZE_MAX)
                eq = mend;
        next = mend < len ? mend + 1 : len;
        while (mend > i && (v[mend - 1] == ' ' || v[mend - 1] == '\t'))
            mend--;
        if (eq == SIZE_MAX || eq == i || eq >= mend || mend - eq < 3 || v[eq + 1] != ':' || v[mend - 1] != ':')
            return -1;
        if (eq - i == 7 && memcmp(v + i, "sha-256", 7) == 0) {
            if (found || route__b64_sha256(v + eq + 2, mend - eq - 3, sha) < 0)
                return -1;
            found = 1;
        }
        i = next;
    }
    return found;
}

/* Part numbers as written by people and clients: decimal, no sign, no
 * leading zero, 1..BERTH_RECORD_MAX_PARTS (no session has more). */
static uint64_t route__part_number(const char *s, size_t len)
{
    uint64_t n = 0;

    if (len == 0 || len > 5 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    return n <= BERTH_RECORD_MAX_PARTS ? n : 0;
}

static int route__part(route__ctx_t *c, h2o_iovec_t n)
{
    berth_route_t *r = c->r;
    h2o_iovec_t v = c->in->content_digest;

    if ((r->part = route__part_number(n.base, n.len)) == 0)
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_PART,
                                    json_pack("{s:s#}", "part", n.base, (int)(n.len > 32 ? 32 : n.len)),
                                    "the part number must be a decimal integer from 1 to 10000");
    if (v.base != NULL && (r->has_sha256 = route__content_digest(v.base, v.len, r->sha256)) < 0) {
        r->has_sha256 = 0;
        return berth_http_error_set(c->err, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, NULL,
                                    "malformed Content-Digest (expected sha-256=:<base64>:)");
    }
    r->chunk.length = c->in->length;
    return 0;
}

/* The routes under /uploads/sessions/<id>, by the path's shape and method. */
typedef enum route__session_shape { ROUTE__S_SESSION, ROUTE__S_COMPLETE, ROUTE__S_PART } route__session_shape_t;

static const struct {
    route__session_shape_t shape;
    const char *method;
    berth_route_kind_t kind;
    const char *allow; /* the shape's methods */
} route__session_methods[] = {
    {ROUTE__S_SESSION, "GET", BERTH_ROUTE_SESSION_STATUS, "GET, DELETE"},
    {ROUTE__S_SESSION, "DELETE", BERTH_ROUTE_SESSION_ABORT, "GET, DELETE"},
    {ROUTE__S_COMPLETE, "POST", BERTH_ROUTE_SESSION_COMPLETE, "POST"},
    {ROUTE__S_PART, "PUT", BERTH_ROUTE_SESSION_PART, "PUT"},
};

/* /uploads/sessions/<id>[/complete|/parts/<n>] */
static int route__session(route__ctx_t *c, const char *rest, size_t rlen)
{
    const char *slash = memchr(rest, '/', rlen);
    h2o_iovec_t id = h2o_iovec_init(rest, slash != NULL ? (size_t)(slash - rest) : rlen);
    h2o_iovec_t tail = h2o_iovec_init(rest + id.len, rlen - id.len), n = {NULL, 0};
    route__session_shape_t shape;
    const char *allow = NULL;

    if (tail.len == 0 || h2o_memis(tail.base, tail.len, H2O_STRLIT("/")))
        shape = ROUTE__S_SESSION;
    else if (h2o_memis(tail.base, tail.len, H2O_STRLIT("/complete")))
        shape = ROUTE__S_COMPLETE;
    else if (tail.len > 7 && memcmp(tail.base, "/parts/", 7) == 0 && memchr(tail.base + 7, '/', tail.len - 7) == NULL)
        shape = ROUTE__S_PART, n = h2o_iovec_init(tail.base + 7, tail.len - 7);
    else
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, NULL, "no such endpoint");
    /* The method first, then the session: a wrong method is wrong for every id. */
    for (size_t i = 0; i < sizeof(route__session_methods) / sizeof(route__session_methods[0]); i++) {
        if (route__session_methods[i].shape != shape)
            continue;
        if (route__method_is(c, route__session_methods[i].method)) {
            c->r->kind = route__session_methods[i].kind;
            allow = NULL;
            break;
        }
        allow = route__session_methods[i].allow;
    }
    if (allow != NULL)
        return route__bad_method(c, allow);
    if (!berth_id_valid(id.base, id.len))
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_SESSION, NULL, "no such session");
    route__copy(c->r->id, id);
    return shape == ROUTE__S_PART ? route__part(c, n) : 0;
}

static int route__sessions(route__ctx_t *c, const char *path, size_t plen)
{
    const size_t pre = sizeof(ROUTE__SESSIONS) - 1;

    c->r->api = BERTH_API_SESSIONS;
    if (plen < pre || memcmp(path, ROUTE__SESSIONS, pre) != 0 || (plen > pre && path[pre] != '/'))
        return berth_http_error_set(c->err, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, NULL, "no such endpoint");
    if (plen <= pre + 1)
        return route__create(c);
    return route__session(c, path + pre + 1, plen - pre - 1);
}

/* ---- entry points ---------------------------------------------------------- */

static int route__prefix(const char *path, size_t plen, const char *prefix, int exact_component)
{
    size_t n = strlen(prefix);

    if (plen < n || memcmp(path, prefix, n) != 0)
        return 0;
    return !exact_component || plen == n || path[n] == '/';
}

int berth_route_parse(const berth_route_input_t *in, berth_route_t *r, berth_http_error_t *err)
{
    const char *path = in->path.base;
    const char *q = memchr(path, '?', in->path.len);
    size_t plen = q != NULL ? (size_t)(q - path) : in->path.len;
    route__ctx_t c = {in, {NULL, 0}, r, err};

    memset(r, 0, sizeof(*r));
    r->n = SIZE_MAX;
    r->chunk.length = -1;
    r->is_head = h2o_memis(in->method.base, in->method.len, H2O_STRLIT("HEAD"));
    if (q != NULL)
        c.query = h2o_iovec_init(q + 1, in->path.len - plen - 1);
    /* "/v2..." is the registry's, even when it names nothing there. */
    if (route__prefix(path, plen, "/v2", 0))
        return route__oci(&c, path, plen);
    if (route__prefix(path, plen, "/uploads", 1))
        return route__sessions(&c, path, plen);
    r->api = BERTH_API_NONE;
    return berth_http_error_set(err, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, NULL, "no such endpoint");
}

static h2o_iovec_t route__header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    return i != -1 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

void berth_route_input_of(h2o_req_t *req, const berth_config_t *cfg, berth_route_input_t *in)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("content-digest"), -1);

    memset(in, 0, sizeof(*in));
    in->method = req->method;
    in->path = req->path;
    in->content_range = route__header(req, H2O_TOKEN_CONTENT_RANGE);
    in->content_type = route__header(req, H2O_TOKEN_CONTENT_TYPE);
    in->content_digest = i != -1 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
    /* libh2o 2.2.5 hands a request over with its whole body. */
    in->length = req->entity.base != NULL ? (int64_t)req->entity.len : 0;
    in->body = req->entity;
    in->cfg = cfg;
}
