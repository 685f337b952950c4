/*
 * The request boundary (http/route.c) and the error table (http/error.c):
 * which requests become which routes, and what every refusal answers.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "http/error.h"
#include "http/route.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST "sha256:" D64
#define UUID "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

static berth_config_t cfg;

static void setup(void)
{
    berth_config_defaults(&cfg);
    cfg.http_maxchunksize = 1 << 20;
    cfg.validation_manifests_maxsize = 4096;
}

static void teardown(void)
{
    berth_config_clear(&cfg);
}

TestSuite(http_route, .init = setup, .fini = teardown);

/* A request as the boundary sees it; NULL headers are absent. */
typedef struct req {
    const char *method, *path;
    const char *content_range, *content_digest, *content_type;
    const char *body;
    int64_t length; /* -1: strlen(body), or 0 without a body */
} req_t;

static h2o_iovec_t iov(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

static int parse_req(const req_t *q, berth_route_t *r, berth_http_error_t *e)
{
    berth_route_input_t in = {
        .method = iov(q->method),
        .path = iov(q->path),
        .content_range = iov(q->content_range),
        .content_digest = iov(q->content_digest),
        .content_type = iov(q->content_type),
        .body = iov(q->body),
        .cfg = &cfg,
    };

    in.length = q->length > 0 ? q->length : (q->body != NULL ? (int64_t)strlen(q->body) : 0);
    memset(e, 0, sizeof(*e));
    return berth_route_parse(&in, r, e);
}

static int parse(const char *method, const char *path, berth_route_t *r, berth_http_error_t *e)
{
    req_t q = {.method = method, .path = path};
    return parse_req(&q, r, e);
}

/* Parses a request the boundary must accept as `kind`. */
static void accept_request(const req_t *q, berth_route_kind_t kind, berth_route_t *r)
{
    berth_http_error_t e;
    int rc = parse_req(q, r, &e);

    cr_assert_eq(rc, 0, "%s %s: refused (%d %s)", q->method, q->path, rc, e.message);
    cr_assert_eq(r->kind, kind, "%s %s: kind %d, want %d", q->method, q->path, r->kind, kind);
    berth_http_error_clear(&e);
}

static void accept_path(const char *method, const char *path, berth_route_kind_t kind, berth_route_t *r)
{
    req_t q = {.method = method, .path = path};
    accept_request(&q, kind, r);
}

/* Parses a request the boundary must refuse with HTTP `status` and `code`. */
static void refuse_request(const req_t *q, int status, const char *code)
{
    berth_route_t r;
    berth_http_error_t e;
    int rc = parse_req(q, &r, &e);
    const berth_http_answer_t *a;

    cr_assert_lt(rc, 0, "%s %s: accepted as kind %d", q->method, q->path, r.kind);
    cr_assert_eq(rc, e.rc);
    a = berth_http_error_answer(r.api, e.rc, e.subject);
    cr_assert_eq(a->status, status, "%s %s: status %d, want %d (%s)", q->method, q->path, a->status, status, e.message);
    cr_assert_str_eq(a->code, code, "%s %s: code %s, want %s", q->method, q->path, a->code, code);
    berth_http_error_clear(&e);
}

static void refuse_path(const char *method, const char *path, int status, const char *code)
{
    req_t q = {.method = method, .path = path};
    refuse_request(&q, status, code);
}

/* ---- routes and methods ----------------------------------------------------- */

Test(http_route, base_answers_get_and_head_only)
{
    berth_route_t r;
    berth_http_error_t e;

    accept_path("GET", "/v2/", BERTH_ROUTE_BASE, &r);
    cr_assert_eq(r.api, BERTH_API_OCI);
    accept_path("HEAD", "/v2", BERTH_ROUTE_BASE, &r);
    cr_assert(r.is_head);
    cr_assert_lt(parse("DELETE", "/v2/", &r, &e), 0);
    cr_assert_str_eq(e.allow, "GET, HEAD");
    refuse_path("POST", "/v2/", 405, "UNSUPPORTED");
    refuse_path("BREW", "/v2/", 405, "UNSUPPORTED");
}

Test(http_route, every_route_is_found_by_method_and_path)
{
    static const struct {
        const char *method, *path;
        berth_route_kind_t kind;
    } cases[] = {
        {"GET", "/v2/_catalog", BERTH_ROUTE_CATALOG},
        {"POST", "/v2/a/b/blobs/uploads/", BERTH_ROUTE_UPLOAD_START},
        {"POST", "/v2/a/b/blobs/uploads", BERTH_ROUTE_UPLOAD_START},
        {"POST", "/v2/a/blobs/uploads/?mount=" DIGEST "&from=c/d", BERTH_ROUTE_UPLOAD_MOUNT},
        {"POST", "/v2/a/blobs/uploads/?digest=" DIGEST, BERTH_ROUTE_UPLOAD_MONOLITHIC},
        {"GET", "/v2/a/blobs/uploads/" UUID, BERTH_ROUTE_UPLOAD_STATUS},
        {"HEAD", "/v2/a/blobs/uploads/" UUID, BERTH_ROUTE_UPLOAD_STATUS},
        {"PATCH", "/v2/a/blobs/uploads/" UUID, BERTH_ROUTE_UPLOAD_CHUNK},
        {"PUT", "/v2/a/blobs/uploads/" UUID "?digest=" DIGEST, BERTH_ROUTE_UPLOAD_FINISH},
        {"DELETE", "/v2/a/blobs/uploads/" UUID, BERTH_ROUTE_UPLOAD_CANCEL},
        {"GET", "/v2/a/blobs/" DIGEST, BERTH_ROUTE_BLOB_GET},
        {"HEAD", "/v2/a/blobs/" DIGEST, BERTH_ROUTE_BLOB_GET},
        {"GET", "/v2/a/manifests/latest", BERTH_ROUTE_MANIFEST_GET},
        {"GET", "/v2/a/manifests/" DIGEST, BERTH_ROUTE_MANIFEST_GET},
        {"PUT", "/v2/a/manifests/v1.0", BERTH_ROUTE_MANIFEST_PUT},
        {"GET", "/v2/a/tags/list", BERTH_ROUTE_TAGS},
        {"GET", "/v2/a/referrers/" DIGEST, BERTH_ROUTE_REFERRERS},
        {"GET", "/uploads/sessions/" UUID, BERTH_ROUTE_SESSION_STATUS},
        {"GET", "/uploads/sessions/" UUID "/", BERTH_ROUTE_SESSION_STATUS},
        {"DELETE", "/uploads/sessions/" UUID, BERTH_ROUTE_SESSION_ABORT},
        {"POST", "/uploads/sessions/" UUID "/complete", BERTH_ROUTE_SESSION_COMPLETE},
        {"PUT", "/uploads/sessions/" UUID "/parts/7", BERTH_ROUTE_SESSION_PART},
    };
    berth_route_t r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        accept_path(cases[i].method, cases[i].path, cases[i].kind, &r);
    accept_path("POST", "/v2/x/y/blobs/uploads/?mount=" DIGEST "&from=c/d", BERTH_ROUTE_UPLOAD_MOUNT, &r);
    cr_assert_str_eq(r.repo, "x/y");
    cr_assert_str_eq(r.from, "c/d");
    cr_assert_str_eq(r.digest, DIGEST);
    accept_path("PUT", "/uploads/sessions/" UUID "/parts/10000", BERTH_ROUTE_SESSION_PART, &r);
    cr_assert_eq(r.api, BERTH_API_SESSIONS);
    cr_assert_str_eq(r.id, UUID);
    cr_assert_eq(r.part, 10000);
}

Test(http_route, unknown_paths_are_404_of_their_api)
{
    static const char *oci[] = {
        "/v2/x/unknown", "/v2/x/blobs", "/v2/x/blobs/uploads/a/b/c/d", "/v2/x/blobs/" DIGEST "/extra",
        "/v2foo",        "/v2/noslash"};
    static const char *other[] = {"/", "/v1/", "/v3/", "/favicon.ico", "/uploadsX", "/upload"};

    for (size_t i = 0; i < sizeof(oci) / sizeof(oci[0]); i++)
        refuse_path("GET", oci[i], 404, "NAME_UNKNOWN");
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        refuse_path("GET", other[i], 404, "NOT_FOUND");
    refuse_path("GET", "/uploads", 404, "NOT_FOUND");
    refuse_path("GET", "/uploads/other", 404, "NOT_FOUND");
    refuse_path("GET", "/uploads/sessions/" UUID "/whatever", 404, "NOT_FOUND");
    refuse_path("PUT", "/uploads/sessions/" UUID "/parts/", 404, "NOT_FOUND");
    refuse_path("PUT", "/uploads/sessions/" UUID "/parts/1/x", 404, "NOT_FOUND");
}

Test(http_route, a_wrong_method_is_405_with_allow)
{
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"PUT", "/v2/x/blobs/uploads/", "POST"},
        {"DELETE", "/v2/x/blobs/uploads/", "POST"},
        {"PATCH", "/v2/x/blobs/" DIGEST, "GET, HEAD, DELETE"},
        {"POST", "/v2/x/blobs/uploads/" UUID, "GET, HEAD, PATCH, PUT, DELETE"},
        {"TRACE", "/v2/x/blobs/uploads/", "POST"},
        {"POST", "/v2/x/manifests/latest", "GET, HEAD, PUT, DELETE"},
        {"POST", "/v2/x/tags/list", "GET, HEAD"},
        {"PUT", "/v2/_catalog", "GET, HEAD"},
        {"GET", "/uploads/sessions", "POST"},
        {"PATCH", "/uploads/sessions/" UUID, "GET, DELETE"},
        {"GET", "/uploads/sessions/" UUID "/parts/1", "PUT"},
        {"GET", "/uploads/sessions/" UUID "/complete", "POST"},
        /* the method is checked before the id */
        {"PATCH", "/uploads/sessions/not-an-id", "GET, DELETE"},
    };
    berth_route_t r;
    berth_http_error_t e;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_lt(parse(cases[i].method, cases[i].path, &r, &e), 0, "%s %s", cases[i].method, cases[i].path);
        cr_assert_eq(berth_http_error_answer(r.api, e.rc, e.subject)->status, 405, "%s %s", cases[i].method,
                     cases[i].path);
        cr_assert_str_eq(e.allow, cases[i].allow, "%s %s", cases[i].method, cases[i].path);
        berth_http_error_clear(&e);
    }
}

/* ---- names, ids, digests, references ------------------------------------------ */

Test(http_route, repository_names_follow_the_spec_grammar)
{
    static const char *good[] = {"a", "library/ubuntu", "a/b/c/d", "a-b", "a--b", "a_b", "a__b", "a.b", "0a9"};
    static const char *bad[] = {"UPPER",
                                "Library/ubuntu",
                                "..",
                                "a/..",
                                "../x",
                                "a/../../b",
                                ".hidden",
                                "-dash",
                                "dash-",
                                "a..b",
                                "a//b",
                                "a/",
                                "a%20b",
                                "a%00b",
                                "a___b",
                                "a/%2e%2e/%2e%2e/x",
                                "a%2F..%2F..%2Fx",
                                "a/%2E%2E%2F%2E%2E%2Fx",
                                "_catalog/x"};
    char path[1024];
    berth_route_t r;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/", good[i]);
        accept_path("POST", path, BERTH_ROUTE_UPLOAD_START, &r);
        cr_assert_str_eq(r.repo, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/", bad[i]);
        refuse_path("POST", path, 400, "NAME_INVALID");
        snprintf(path, sizeof(path), "/v2/%s/blobs/" DIGEST, bad[i]);
        refuse_path("GET", path, 400, "NAME_INVALID");
        snprintf(path, sizeof(path), "/v2/%s/manifests/latest", bad[i]);
        refuse_path("GET", path, 400, "NAME_INVALID");
    }
}

Test(http_route, names_have_a_length_limit)
{
    char name[300], path[400];
    berth_route_t r;

    memset(name, 'a', 255);
    name[255] = '\0';
    snprintf(path, sizeof(path), "/v2/%s/tags/list", name);
    accept_path("GET", path, BERTH_ROUTE_TAGS, &r);
    memset(name, 'a', 256);
    name[256] = '\0';
    snprintf(path, sizeof(path), "/v2/%s/tags/list", name);
    refuse_path("GET", path, 400, "NAME_INVALID");
}

Test(http_route, path_traversal_never_reaches_a_handler)
{
    static const char *paths[] = {
        "/v2/../../etc/blobs/uploads/",
        "/v2/a/../../../tmp/x/blobs/uploads/",
        "/v2/a/blobs/uploads/..",
        "/v2/a/blobs/uploads/..%2F..%2F..%2Fetc",
        "/v2/a/blobs/uploads/%2e%2e",
        "/v2/a/blobs/..",
        "/v2/a/blobs/sha256:..%2F..%2F" D64,
        "/v2/a/manifests/..",
        "/v2/a/manifests/..%2Fx",
        "/uploads/sessions/..",
        "/uploads/sessions/%2e%2e/complete",
    };
    berth_route_t r;
    berth_http_error_t e;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        for (int m = 0; m < 3; m++) {
            const char *method = (const char *[]){"GET", "PUT", "DELETE"}[m];
            int rc = parse(method, paths[i], &r, &e);
            cr_assert_lt(rc, 0, "%s %s accepted", method, paths[i]);
            berth_http_error_clear(&e);
        }
    }
}

Test(http_route, session_ids_must_be_lowercase_uuids)
{
    static const char *bad[] = {"not-a-uuid",
                                "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
                                "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f",
                                "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f90",
                                "0f1e2d3c4b5a49788695a4b3c2d1e0f9",
                                "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fz",
                                "0f1e2d3c_4b5a_4978_8695_a4b3c2d1e0f9",
                                UUID "%00"};
    char path[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v2/a/blobs/uploads/%s", bad[i]);
        refuse_path("GET", path, 404, "BLOB_UPLOAD_UNKNOWN");
        refuse_path("DELETE", path, 404, "BLOB_UPLOAD_UNKNOWN");
        snprintf(path, sizeof(path), "/uploads/sessions/%s", bad[i]);
        refuse_path("GET", path, 404, "SESSION_UNKNOWN");
    }
}

Test(http_route, digests_are_sha256_and_64_lowercase_hex)
{
    static const char *bad[] = {"sha256:xyz",
                                "sha256:" D64 "0",
                                "SHA256:" D64,
                                "sha256",
                                "sha256:",
                                ":" D64,
                                "sha256:%2e%2e" D64,
                                "notadigest",
                                "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"};
    char path[512];
    berth_route_t r;
    berth_http_error_t e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v2/a/blobs/uploads/" UUID "?digest=%s", bad[i]);
        refuse_path("PUT", path, 400, "DIGEST_INVALID");
        snprintf(path, sizeof(path), "/v2/a/blobs/uploads/?digest=%s", bad[i]);
        refuse_path("POST", path, 400, "DIGEST_INVALID");
        snprintf(path, sizeof(path), "/v2/a/blobs/%s", bad[i]);
        refuse_path("GET", path, 400, "DIGEST_INVALID");
    }
    /* A well-formed digest of another algorithm names no blob berth holds. */
    refuse_path("GET", "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 404, "BLOB_UNKNOWN");
    cr_assert_lt(parse("POST", "/v2/a/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", &r, &e), 0);
    cr_assert(strstr(e.message, "unsupported") != NULL, "%s", e.message);
    berth_http_error_clear(&e);
    refuse_path("PUT", "/v2/a/blobs/uploads/" UUID, 400, "DIGEST_INVALID"); /* required */
    refuse_path("POST", "/v2/a/blobs/uploads/?mount=sha256:xyz", 400, "DIGEST_INVALID");
    refuse_path("POST", "/v2/a/blobs/uploads/?mount=" DIGEST "&from=../../x", 400, "NAME_INVALID");
    accept_path("PUT", "/v2/a/blobs/uploads/" UUID "?digest=sha256%3A" D64, BERTH_ROUTE_UPLOAD_FINISH, &r);
    cr_assert_str_eq(r.digest, DIGEST);
}

Test(http_route, manifest_references_are_tags_or_digests)
{
    char ref[300], path[400];
    berth_route_t r;
    berth_http_error_t e;

    accept_path("GET", "/v2/a/manifests/v1.2_3-rc", BERTH_ROUTE_MANIFEST_GET, &r);
    cr_assert_str_eq(r.reference, "v1.2_3-rc");
    refuse_path("PUT", "/v2/a/manifests/-bad", 400, "MANIFEST_INVALID");
    refuse_path("GET", "/v2/a/manifests/-bad", 404, "MANIFEST_UNKNOWN");
    refuse_path("PUT", "/v2/a/manifests/sha256:xyz", 400, "DIGEST_INVALID");
    refuse_path("GET", "/v2/a/manifests/sha256:xyz", 400, "DIGEST_INVALID");
    refuse_path("GET", "/v2/a/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", 404, "MANIFEST_UNKNOWN");
    refuse_path("PUT", "/v2/a/manifests/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID");
    /* HEAD of a malformed digest reference answers without a body. */
    cr_assert_lt(parse("HEAD", "/v2/a/manifests/sha256:xyz", &r, &e), 0);
    cr_assert(berth_http_error_answer(r.api, e.rc, e.subject)->bare_head);
    berth_http_error_clear(&e);
    memset(ref, 't', 256);
    ref[256] = '\0';
    snprintf(path, sizeof(path), "/v2/a/manifests/%s", ref);
    refuse_path("PUT", path, 400, "MANIFEST_INVALID");
    refuse_path("GET", path, 404, "MANIFEST_UNKNOWN");
    refuse_path("HEAD", path, 404, "MANIFEST_UNKNOWN");
    snprintf(path, sizeof(path), "/v2/a/referrers/%s", ref);
    refuse_path("GET", path, 400, "DIGEST_INVALID");
    refuse_path("GET", "/v2/a/referrers/notadigest", 400, "DIGEST_INVALID");
}

Test(http_route, manifest_put_takes_content_type_and_a_size_limit)
{
    req_t q = {.method = "PUT",
               .path = "/v2/a/manifests/v1",
               .content_type = "application/vnd.oci.image.manifest.v1+json",
               .body = "{}"};
    berth_route_t r;

    accept_request(&q, BERTH_ROUTE_MANIFEST_PUT, &r);
    cr_assert(r.has_content_type);
    cr_assert_str_eq(r.content_type, "application/vnd.oci.image.manifest.v1+json");
    q.length = 4097;
    refuse_request(&q, 413, "SIZE_INVALID");
}

Test(http_route, deletes_follow_the_configuration)
{
    berth_route_t r;

    refuse_path("DELETE", "/v2/a/manifests/latest", 405, "UNSUPPORTED");
    refuse_path("DELETE", "/v2/a/blobs/" DIGEST, 405, "UNSUPPORTED");
    cfg.storage_delete_enabled = 1;
    accept_path("DELETE", "/v2/a/manifests/latest", BERTH_ROUTE_MANIFEST_DELETE, &r);
    accept_path("DELETE", "/v2/a/blobs/" DIGEST, BERTH_ROUTE_BLOB_DELETE, &r);
    cr_assert_str_eq(r.digest, DIGEST);
    refuse_path("DELETE", "/v2/a/blobs/sha256:xyz", 400, "DIGEST_INVALID");
}

/* ---- Content-Range ----------------------------------------------------------------- */

static void chunk_ok(const char *cr, int64_t length, uint64_t first, uint64_t last)
{
    req_t q = {.method = "PATCH", .path = "/v2/a/blobs/uploads/" UUID, .content_range = cr, .length = length};
    berth_route_t r;

    accept_request(&q, BERTH_ROUTE_UPLOAD_CHUNK, &r);
    cr_assert(r.chunk.has_range, "%s", cr);
    cr_assert_eq(r.chunk.first, first, "%s", cr);
    cr_assert_eq(r.chunk.last, last, "%s", cr);
    cr_assert_eq(r.chunk.length, length, "%s", cr);
}

static void chunk_bad(const char *cr, int64_t length)
{
    req_t q = {.method = "PATCH", .path = "/v2/a/blobs/uploads/" UUID, .content_range = cr, .length = length};
    refuse_request(&q, 400, "BLOB_UPLOAD_INVALID");
    q.method = "PUT";
    q.path = "/v2/a/blobs/uploads/" UUID "?digest=" DIGEST;
    refuse_request(&q, 400, "BLOB_UPLOAD_INVALID");
}

Test(http_route, content_range_forms)
{
    berth_route_t r;

    chunk_ok("0-99", 100, 0, 99);
    chunk_ok("100-149", 50, 100, 149);
    chunk_ok("bytes 100-149", 50, 100, 149);
    chunk_ok("bytes=100-149", 50, 100, 149);
    chunk_ok("150-159/*", 10, 150, 159);
    chunk_ok("150-159/1000", 10, 150, 159);
    chunk_ok("18446744073709551615-18446744073709551615", 1, UINT64_MAX, UINT64_MAX);
    /* Without a Content-Range the chunk goes at the offset. */
    accept_path("PATCH", "/v2/a/blobs/uploads/" UUID, BERTH_ROUTE_UPLOAD_CHUNK, &r);
    cr_assert_not(r.chunk.has_range);
}

Test(http_route, malformed_content_range_is_refused)
{
    static const char *bad[] = {"abc",
                                "149-100",
                                "-149",
                                "100-",
                                "100",
                                "bytes=100-x",
                                "100 - 149",
                                "0x64-0x95",
                                "18446744073709551616-18446744073709551665",
                                "100-149,150-160",
                                "",
                                "+100-149",
                                "100-149/120",
                                "100-149/"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        chunk_bad(bad[i], 50);
}

Test(http_route, content_range_must_cover_the_body_exactly)
{
    chunk_bad("0-99", 99);
    chunk_bad("0-99", 101);
    chunk_bad("5-1", 3);
    /* last - first + 1 wraps to 0 here: an empty body must not match it. */
    chunk_bad("0-18446744073709551615", 0);
    chunk_bad("0-18446744073709551615", 1);
    chunk_bad("1-18446744073709551615", 0);
    chunk_bad("0-0", 0);
}

Test(http_route, chunks_over_the_limit_are_413)
{
    req_t q = {.method = "PATCH", .path = "/v2/a/blobs/uploads/" UUID, .length = (1 << 20) + 1};

    refuse_request(&q, 413, "SIZE_INVALID");
    q.method = "POST";
    q.path = "/v2/a/blobs/uploads/?digest=" DIGEST;
    refuse_request(&q, 413, "SIZE_INVALID");
}

/* ---- the part-session API ------------------------------------------------------- */

Test(http_route, part_numbers_are_decimal_from_1_to_10000)
{
    static const char *bad[] = {"0", "01", "-1", "+1", "abc", "1a", "10001", "99999", "99999999999", "1 ", "%31"};
    char path[256];
    berth_route_t r;

    accept_path("PUT", "/uploads/sessions/" UUID "/parts/1", BERTH_ROUTE_SESSION_PART, &r);
    cr_assert_eq(r.part, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/uploads/sessions/" UUID "/parts/%s", bad[i]);
        refuse_path("PUT", path, 400, "PART_INVALID");
    }
}

Test(http_route, content_digest_of_a_part)
{
    /* sha-256 of "" */
    req_t q = {.method = "PUT",
               .path = "/uploads/sessions/" UUID "/parts/2",
               .content_digest = "sha-512=:AAAA:, sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"};
    berth_route_t r;

    accept_request(&q, BERTH_ROUTE_SESSION_PART, &r);
    cr_assert(r.has_sha256);
    cr_assert_eq(r.sha256[0], 0xe3);
    cr_assert_eq(r.sha256[31], 0x55);
    q.content_digest = "sha-512=:AAAA:";
    accept_request(&q, BERTH_ROUTE_SESSION_PART, &r);
    cr_assert_not(r.has_sha256);
    q.content_digest = "sha-256=:notbase64!:";
    refuse_request(&q, 400, "DIGEST_INVALID");
    q.content_digest = "sha-256=:c2hvcnQ=:";
    refuse_request(&q, 400, "DIGEST_INVALID");
    q.content_digest = "sha-256";
    refuse_request(&q, 400, "DIGEST_INVALID");
}

Test(http_route, session_descriptions)
{
    req_t q = {.method = "POST", .path = "/uploads/sessions"};
    berth_route_t r;
    static const struct {
        const char *body, *code;
    } bad[] = {
        {"{nope", "SESSION_INVALID"},
        {"[1,2]", "SESSION_INVALID"},
        {"{\"part_size\": 4}", "SESSION_INVALID"},
        {"{\"total_parts\": 4}", "SESSION_INVALID"},
        {"{\"total_parts\": 0, \"part_size\": 4}", "SESSION_INVALID"},
        {"{\"total_parts\": 10001, \"part_size\": 4}", "SESSION_INVALID"},
        {"{\"total_parts\": \"4\", \"part_size\": 4}", "SESSION_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": -4}", "SESSION_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4.5}", "SESSION_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4, \"total_size\": 0.5}", "SESSION_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4, \"total_parts\": 5}", "SESSION_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4, \"repository\": \"UPPER/case\"}", "NAME_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4, \"repository\": 7}", "NAME_INVALID"},
        {"{\"total_parts\": 4, \"part_size\": 4, \"digest\": \"sha256:xyz\"}", "DIGEST_INVALID"},
    };

    q.body = "{\"total_parts\": 3, \"part_size\": 8, \"total_size\": 20, \"repository\": \"a/b\", \"digest\": \"" DIGEST
             "\"}";
    accept_request(&q, BERTH_ROUTE_SESSION_CREATE, &r);
    cr_assert_eq(r.total_parts, 3);
    cr_assert_eq(r.part_size, 8);
    cr_assert_eq(r.total_size, 20);
    cr_assert_str_eq(r.repo, "a/b");
    cr_assert_str_eq(r.digest, DIGEST);
    q.path = "/uploads/sessions/";
    q.body = "{\"total_parts\": 1, \"part_size\": 1}";
    accept_request(&q, BERTH_ROUTE_SESSION_CREATE, &r);
    cr_assert_str_eq(r.repo, "");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q.body = bad[i].body;
        refuse_request(&q, 400, bad[i].code);
    }
    q.body = "{}";
    q.length = BERTH_ROUTE_SESSION_BODY_MAX + 1;
    refuse_request(&q, 400, "SESSION_INVALID");
}

/* ---- query parameters ---------------------------------------------------------- */

Test(http_route, query_parameters_are_percent_decoded)
{
    char out[16];
    h2o_iovec_t q = iov("a=1&b=x%2Fy+z&c&d=%zz&e=%00&f=0123456789abcdef&a=2");

    cr_assert_eq(berth_route_query(q, "a", out, sizeof(out)), 1);
    cr_assert_str_eq(out, "1"); /* the first one */
    cr_assert_eq(berth_route_query(q, "b", out, sizeof(out)), 1);
    cr_assert_str_eq(out, "x/y z");
    cr_assert_eq(berth_route_query(q, "c", out, sizeof(out)), 1);
    cr_assert_str_eq(out, "");
    cr_assert_eq(berth_route_query(q, "d", out, sizeof(out)), -1);
    cr_assert_eq(berth_route_query(q, "e", out, sizeof(out)), -1);
    cr_assert_eq(berth_route_query(q, "f", out, sizeof(out)), -1); /* 16 bytes do not fit with the NUL */
    cr_assert_eq(berth_route_query(q, "g", out, sizeof(out)), 0);
    cr_assert_eq(berth_route_query(q, "B", out, sizeof(out)), 0);
    cr_assert_eq(berth_route_query(iov(NULL), "a", out, sizeof(out)), 0);
}

Test(http_route, pagination)
{
    berth_route_t r;

    accept_path("GET", "/v2/a/tags/list", BERTH_ROUTE_TAGS, &r);
    cr_assert_eq(r.n, SIZE_MAX);
    cr_assert_not(r.has_last);
    accept_path("GET", "/v2/a/tags/list?n=0", BERTH_ROUTE_TAGS, &r);
    cr_assert_eq(r.n, 0);
    accept_path("GET", "/v2/_catalog?n=99999&last=a%2Fb", BERTH_ROUTE_CATALOG, &r);
    cr_assert_eq(r.n, 10000);
    cr_assert(r.has_last);
    cr_assert_str_eq(r.last, "a/b");
    refuse_path("GET", "/v2/a/tags/list?n=abc", 400, "PAGINATION_NUMBER_INVALID");
    refuse_path("GET", "/v2/a/tags/list?n=-1", 400, "PAGINATION_NUMBER_INVALID");
    refuse_path("GET", "/v2/a/tags/list?n=", 400, "PAGINATION_NUMBER_INVALID");
    refuse_path("GET", "/v2/a/tags/list?n=1234567890", 400, "PAGINATION_NUMBER_INVALID");
    refuse_path("GET", "/v2/_catalog?last=%zz", 400, "UNSUPPORTED");
    refuse_path("GET", "/v2/a/referrers/" DIGEST "?artifactType=%00", 400, "UNSUPPORTED");
    accept_path("GET", "/v2/a/referrers/" DIGEST "?artifactType=application%2Fx", BERTH_ROUTE_REFERRERS, &r);
    cr_assert_str_eq(r.artifact_type, "application/x");
}

/* ---- the error table ------------------------------------------------------------ */

Test(http_route, engine_results_map_to_todays_answers)
{
    static const struct {
        berth_api_t api;
        int rc;
        berth_subject_t subject;
        int status;
        const char *code;
    } cases[] = {
        {BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_UPLOAD, 404, "BLOB_UPLOAD_UNKNOWN"},
        {BERTH_API_OCI, BERTH_ERANGE, BERTH_SUBJECT_UPLOAD, 416, "BLOB_UPLOAD_INVALID"},
        {BERTH_API_OCI, BERTH_EDIGEST, BERTH_SUBJECT_UPLOAD, 400, "DIGEST_INVALID"},
        {BERTH_API_OCI, BERTH_EBUSY, BERTH_SUBJECT_UPLOAD, 409, "BLOB_UPLOAD_INVALID"},
        {BERTH_API_OCI, BERTH_ECONFLICT, BERTH_SUBJECT_UPLOAD, 409, "BLOB_UPLOAD_INVALID"},
        {BERTH_API_OCI, BERTH_EUNAVAILABLE, BERTH_SUBJECT_UPLOAD, 503, "UNAVAILABLE"},
        {BERTH_API_OCI, BERTH_ENOSPACE, BERTH_SUBJECT_BLOB, 507, "UNAVAILABLE"},
        {BERTH_API_OCI, BERTH_EIO, BERTH_SUBJECT_BLOB, 500, "UNKNOWN"},
        {BERTH_API_OCI, BERTH_ERR, BERTH_SUBJECT_MANIFEST, 500, "UNKNOWN"},
        {BERTH_API_OCI, BERTH_ERANGE, BERTH_SUBJECT_BLOB, 416, "BLOB_UNKNOWN"},
        {BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_REFERENCED, 400, "MANIFEST_BLOB_UNKNOWN"},
        {BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_REPOSITORY, 404, "NAME_UNKNOWN"},
        {BERTH_API_OCI, BERTH_EINVALID, BERTH_SUBJECT_MANIFEST, 400, "MANIFEST_INVALID"},
        {BERTH_API_OCI, BERTH_ETOOLARGE, BERTH_SUBJECT_MANIFEST, 413, "SIZE_INVALID"},
        {BERTH_API_OCI, BERTH_EINVALID, BERTH_SUBJECT_CREDENTIALS, 401, "UNAUTHORIZED"},
        {BERTH_API_SESSIONS, BERTH_ENOTFOUND, BERTH_SUBJECT_SESSION, 404, "SESSION_UNKNOWN"},
        {BERTH_API_SESSIONS, BERTH_EINVALID, BERTH_SUBJECT_SESSION, 400, "SESSION_INVALID"},
        {BERTH_API_SESSIONS, BERTH_EINVALID, BERTH_SUBJECT_PART, 400, "PART_INVALID"},
        {BERTH_API_SESSIONS, BERTH_EDIGEST, BERTH_SUBJECT_SESSION, 400, "DIGEST_INVALID"},
        {BERTH_API_SESSIONS, BERTH_ERANGE, BERTH_SUBJECT_SESSION, 409, "SESSION_INCOMPLETE"},
        {BERTH_API_SESSIONS, BERTH_EEXISTS, BERTH_SUBJECT_PART, 409, "SESSION_CLOSED"},
        {BERTH_API_SESSIONS, BERTH_EBUSY, BERTH_SUBJECT_PART, 409, "SESSION_BUSY"},
        {BERTH_API_SESSIONS, BERTH_ECONFLICT, BERTH_SUBJECT_SESSION, 409, "SESSION_BUSY"},
        {BERTH_API_SESSIONS, BERTH_EUNAVAILABLE, BERTH_SUBJECT_SESSION, 503, "UNAVAILABLE"},
        {BERTH_API_SESSIONS, BERTH_EIO, BERTH_SUBJECT_SESSION, 500, "UNKNOWN"},
        {BERTH_API_NONE, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, 404, "NOT_FOUND"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const berth_http_answer_t *a = berth_http_error_answer(cases[i].api, cases[i].rc, cases[i].subject);
        cr_assert_eq(a->status, cases[i].status, "case %zu: %d", i, a->status);
        cr_assert_str_eq(a->code, cases[i].code, "case %zu: %s", i, a->code);
    }
    /* Server faults never show the engine's message (it names files). */
    cr_assert_not(berth_http_error_answer(BERTH_API_OCI, BERTH_EIO, BERTH_SUBJECT_UPLOAD)->client_fault);
    cr_assert(berth_http_error_answer(BERTH_API_OCI, BERTH_EINVALID, BERTH_SUBJECT_UPLOAD)->client_fault);
    cr_assert(berth_http_error_answer(BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_BLOB)->bare_head);
    cr_assert_not(berth_http_error_answer(BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_UPLOAD)->bare_head);
}
