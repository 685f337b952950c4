/*
 * The registry routes under /v2/ (core/registry.h does the work): manifests
 * (PUT, GET, HEAD, DELETE), tag and repository listings with pagination,
 * referrers, and blob DELETE.
 *
 * As in http/oci.c, the request is checked on the loop thread, the storage
 * work runs on a worker as a registry__task_t, and the answer is sent from
 * the task's done callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/validate.h"
#include "http/app.h"
#include "http/response.h"

#define REGISTRY__PARAM_MAX 256
/* The most entries one page of tags or repositories holds, whatever `n`
 * asks for; the Link header leads to the rest. */
#define REGISTRY__PAGE_MAX 10000

typedef enum registry__op {
    REGISTRY__MANIFEST_PUT,
    REGISTRY__MANIFEST_GET,
    REGISTRY__MANIFEST_DELETE,
    REGISTRY__TAGS,
    REGISTRY__CATALOG,
    REGISTRY__REFERRERS,
    REGISTRY__BLOB_DELETE,
} registry__op_t;

typedef struct registry__task {
    berth_task_t super;
    berth_http_app_t *app;
    registry__op_t op;
    int is_head;
    char repo[BERTH_NAME_MAX + 1];
    char reference[REGISTRY__PARAM_MAX];
    char content_type[REGISTRY__PARAM_MAX];
    int has_content_type;
    char last[REGISTRY__PARAM_MAX];
    int has_last;
    size_t n; /* SIZE_MAX: not given */
    char artifact_type[REGISTRY__PARAM_MAX];
    int has_artifact_type;

    /* results */
    int rc;
    char errmsg[256];
    berth_manifest_put_t put;
    berth_manifest_t man;
    berth_page_t page;
    json_t *json;
} registry__task_t;

static int registry__method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static void registry__dispose(berth_task_t *bt)
{
    registry__task_t *t = (registry__task_t *)bt;

    free(t->man.body);
    berth_page_clear(&t->page);
    json_decref(t->json);
}

/* --- worker side ------------------------------------------------------ */

static void registry__work(berth_task_t *bt)
{
    registry__task_t *t = (registry__task_t *)bt;
    berth_registry_t *r = t->app->registry;
    const char *body = NULL;
    size_t len = 0;

    berth_error_clear();
    switch (t->op) {
    case REGISTRY__MANIFEST_PUT:
        if (berth_task_body_acquire(bt, &body, &len) == 0)
            t->rc = berth_manifest_put(r, t->repo, t->reference, t->has_content_type ? t->content_type : NULL, body,
                                       len, &t->put);
        else
            t->rc = berth_error_set(BERTH_ERR, "request gone");
        berth_task_body_release(bt);
        break;
    case REGISTRY__MANIFEST_GET:
        t->rc = berth_manifest_get(r, t->repo, t->reference, !t->is_head, &t->man);
        break;
    case REGISTRY__MANIFEST_DELETE:
        t->rc = berth_manifest_delete(r, t->repo, t->reference);
        break;
    case REGISTRY__TAGS:
        t->rc = berth_tags_list(r, t->repo, t->has_last ? t->last : NULL, t->n, &t->page);
        break;
    case REGISTRY__CATALOG:
        t->rc = berth_catalog_list(r, t->has_last ? t->last : NULL, t->n, &t->page);
        break;
    case REGISTRY__REFERRERS:
        t->rc =
            berth_referrers_list(r, t->repo, t->reference, t->has_artifact_type ? t->artifact_type : NULL, &t->json);
        break;
    case REGISTRY__BLOB_DELETE:
        t->rc = berth_registry_blob_delete(r, t->repo, t->reference);
        break;
    }
    if (t->rc != 0)
        snprintf(t->errmsg, sizeof(t->errmsg), "%s", berth_error_last());
}

/* --- loop side -------------------------------------------------------- */

static void registry__log_failure(h2o_req_t *req, registry__task_t *t)
{
    if (t->rc == BERTH_ERR || t->rc == BERTH_EIO || t->rc == BERTH_ENOSPACE || t->rc == BERTH_EUNAVAILABLE)
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        t->errmsg);
}

static int registry__unreserved(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '/';
}

/* The Link header to the page after `last`: RFC 5988, as the spec shows. */
static void registry__link(h2o_req_t *req, const char *path, size_t n, const char *last)
{
    char enc[3 * REGISTRY__PARAM_MAX + 1];
    size_t o = 0;

    for (const char *p = last; *p != '\0' && o + 4 < sizeof(enc); p++) {
        if (registry__unreserved(*p))
            enc[o++] = *p;
        else
            o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%%%02X", (unsigned char)*p);
    }
    enc[o] = '\0';
    berth_http_headerf(req, "Link", "<%s?n=%zu&last=%s>; rel=\"next\"", path, n, enc);
}

static void registry__send_page(h2o_req_t *req, registry__task_t *t, const char *key)
{
    json_t *list = json_array(), *body;
    char path[BERTH_NAME_MAX + 32];

    for (size_t i = 0; i < t->page.n; i++)
        json_array_append_new(list, json_string(t->page.items[i]));
    if (t->op == REGISTRY__TAGS) {
        body = json_pack("{s:s, s:o}", "name", t->repo, key, list);
        snprintf(path, sizeof(path), "/v2/%s/tags/list", t->repo);
    } else {
        body = json_pack("{s:o}", key, list);
        snprintf(path, sizeof(path), "/v2/_catalog");
    }
    /* n=0 asks for an empty page, and a Link would lead nowhere. */
    if (t->page.more && t->n != SIZE_MAX && t->n != 0 && t->page.n > 0)
        registry__link(req, path, t->n, t->page.items[t->page.n - 1]);
    berth_http_send_json(req, 200, NULL, body);
}

/* 1 when the request's Accept headers (if any) take media type `mt`. */
static int registry__accepts(h2o_req_t *req, const char *mt)
{
    ssize_t i = -1;
    int any = 0;
    size_t mtlen = strlen(mt);

    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t p = 0;
        any = 1;
        while (p < v.len) {
            size_t start, end;
            while (p < v.len && (v.base[p] == ' ' || v.base[p] == '\t' || v.base[p] == ','))
                p++;
            start = p;
            while (p < v.len && v.base[p] != ',' && v.base[p] != ';')
                p++;
            end = p;
            while (end > start && (v.base[end - 1] == ' ' || v.base[end - 1] == '\t'))
                end--;
            while (p < v.len && v.base[p] != ',')
                p++; /* parameters */
            if (end - start == 0)
                continue;
            if ((end - start == 3 && memcmp(v.base + start, "*/*", 3) == 0) ||
                (end - start == 13 && strncasecmp(v.base + start, "application/*", 13) == 0) ||
                (end - start == mtlen && strncasecmp(v.base + start, mt, mtlen) == 0))
                return 1;
        }
    }
    return !any;
}

static void registry__done(berth_task_t *bt, h2o_req_t *req)
{
    registry__task_t *t = (registry__task_t *)bt;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);
    if (t->rc != 0)
        registry__log_failure(req, t);

    switch (t->op) {
    case REGISTRY__MANIFEST_PUT:
        if (t->rc != 0) {
            if (t->put.digest[0] != '\0' && t->rc != BERTH_EDIGEST)
                berth_http_header(req, "Docker-Content-Digest", t->put.digest);
            return berth_http_send_registry_error(req, t->rc, "MANIFEST_UNKNOWN", t->put.missing, t->errmsg);
        }
        berth_http_headerf(req, "Location", "/v2/%s/manifests/%s", t->repo, t->put.digest);
        berth_http_header(req, "Docker-Content-Digest", t->put.digest);
        if (t->put.subject[0] != '\0')
            berth_http_header(req, "OCI-Subject", t->put.subject);
        return berth_http_send_empty(req, 201, NULL);
    case REGISTRY__MANIFEST_GET:
        if (t->rc == BERTH_ENOTFOUND && t->is_head)
            return berth_http_send_empty(req, 404, NULL);
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "MANIFEST_UNKNOWN", NULL, t->errmsg);
        berth_http_header(req, "Docker-Content-Digest", t->man.digest);
        if (!registry__accepts(req, t->man.media_type)) {
            if (t->is_head)
                return berth_http_send_empty(req, 404, NULL);
            return berth_http_send_oci_error(req, 404, "MANIFEST_UNKNOWN",
                                             "the manifest's media type is not in the Accept header",
                                             json_pack("{s:s}", "mediaType", t->man.media_type));
        }
        berth_http_headerf(req, "ETag", "\"%s\"", t->man.digest);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       h2o_strdup(&req->pool, t->man.media_type, SIZE_MAX).base, strlen(t->man.media_type));
        req->res.status = 200;
        req->res.reason = berth_http_reason(200);
        req->res.content_length = t->man.size;
        if (t->is_head)
            h2o_send_inline(req, "", 0);
        else
            h2o_send_inline(req, t->man.body, t->man.size);
        return;
    case REGISTRY__MANIFEST_DELETE:
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "MANIFEST_UNKNOWN", NULL, t->errmsg);
        if (strchr(t->reference, ':') != NULL)
            berth_http_header(req, "Docker-Content-Digest", t->reference);
        return berth_http_send_empty(req, 202, NULL);
    case REGISTRY__TAGS:
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "NAME_UNKNOWN", NULL, t->errmsg);
        return registry__send_page(req, t, "tags");
    case REGISTRY__CATALOG:
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "NAME_UNKNOWN", NULL, t->errmsg);
        return registry__send_page(req, t, "repositories");
    case REGISTRY__REFERRERS: {
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "MANIFEST_UNKNOWN", NULL, t->errmsg);
        json_t *body = t->json;
        t->json = NULL;
        if (t->has_artifact_type)
            berth_http_header(req, "OCI-Filters-Applied", "artifactType");
        return berth_http_send_json_as(req, 200, BERTH_MT_OCI_INDEX, body);
    }
    case REGISTRY__BLOB_DELETE:
        if (t->rc != 0)
            return berth_http_send_registry_error(req, t->rc, "BLOB_UNKNOWN", NULL, t->errmsg);
        return berth_http_send_empty(req, 202, NULL);
    }
}

static registry__task_t *registry__task_new(berth_http_app_t *app, h2o_req_t *req, registry__op_t op, h2o_iovec_t name,
                                            h2o_iovec_t last, int with_body)
{
    registry__task_t *t = (registry__task_t *)berth_task_new(berth_http_loop_of(req), req, sizeof(*t), with_body,
                                                             registry__work, registry__done);
    t->super.dispose = registry__dispose;
    t->app = app;
    t->op = op;
    t->n = SIZE_MAX;
    if (name.len > 0)
        memcpy(t->repo, name.base, name.len);
    t->repo[name.len] = '\0';
    if (last.len > 0)
        memcpy(t->reference, last.base, last.len);
    t->reference[last.len] = '\0';
    return t;
}

static void registry__unsupported_method(h2o_req_t *req, const char *allow)
{
    berth_http_header(req, "Allow", allow);
    berth_http_send_oci_error(req, 405, "UNSUPPORTED", "the operation is unsupported", NULL);
}

static void registry__delete_disabled(h2o_req_t *req)
{
    berth_http_send_oci_error(req, 405, "UNSUPPORTED", "deletion is disabled (storage.delete.enabled)", NULL);
}

/* Reads `n` and `last` into *n, last and *has_last; answers 400 and returns
 * -1 when malformed. */
static int registry__pagination(h2o_req_t *req, size_t *n, char last[REGISTRY__PARAM_MAX], int *has_last)
{
    char buf[REGISTRY__PARAM_MAX];
    int r;

    *n = SIZE_MAX;
    if ((r = berth_http_query_param(req, "n", buf, sizeof(buf))) != 0) {
        size_t len = r > 0 ? strlen(buf) : 0;
        unsigned long long v = 0;
        if (r < 0 || len == 0 || len > 9 || strspn(buf, "0123456789") != len) {
            berth_http_send_oci_error(req, 400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer",
                                      json_pack("{s:s}", "n", r > 0 ? buf : ""));
            return -1;
        }
        v = strtoull(buf, NULL, 10);
        *n = v > REGISTRY__PAGE_MAX ? REGISTRY__PAGE_MAX : (size_t)v;
    }
    if ((r = berth_http_query_param(req, "last", last, REGISTRY__PARAM_MAX)) < 0) {
        berth_http_send_oci_error(req, 400, "UNSUPPORTED", "malformed last parameter", NULL);
        return -1;
    }
    *has_last = r == 1;
    return 0;
}

void berth_registry_handle(berth_http_app_t *app, h2o_req_t *req, berth_registry_route_t route, h2o_iovec_t name,
                           h2o_iovec_t last)
{
    int is_get = registry__method_is(req, "GET"), is_head = registry__method_is(req, "HEAD");
    int deletes = app->cfg->storage_delete_enabled;
    registry__task_t *t;

    /* Longer than any tag (128) or digest berth could hold. */
    if (last.len >= REGISTRY__PARAM_MAX) {
        if (is_head)
            berth_http_send_empty(req, 404, NULL);
        else if (route == BERTH_ROUTE_MANIFEST && registry__method_is(req, "PUT"))
            berth_http_send_oci_error(req, 400, "MANIFEST_INVALID", "invalid tag", NULL);
        else if (route == BERTH_ROUTE_MANIFEST)
            berth_http_send_oci_error(req, 404, "MANIFEST_UNKNOWN", "manifest unknown", NULL);
        else
            berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
        return;
    }

    switch (route) {
    case BERTH_ROUTE_MANIFEST: {
        int is_put = registry__method_is(req, "PUT"), is_delete = registry__method_is(req, "DELETE");
        int is_digest = memchr(last.base, ':', last.len) != NULL;
        if (!is_get && !is_head && !is_put && !is_delete)
            return registry__unsupported_method(req, "GET, HEAD, PUT, DELETE");
        if (is_delete && !deletes)
            return registry__delete_disabled(req);
        if (is_digest && !berth_digest_wellformed(last.base, last.len)) {
            if (is_head)
                return berth_http_send_empty(req, 400, NULL);
            return berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
        }
        if (is_put) {
            if (!is_digest && !berth_tag_valid(last.base, last.len))
                return berth_http_send_oci_error(req, 400, "MANIFEST_INVALID", "invalid tag",
                                                 json_pack("{s:s#}", "tag", last.base, (int)last.len));
            if (req->entity.len > app->cfg->validation_manifests_maxsize) {
                char msg[128];
                snprintf(msg, sizeof(msg),
                         "manifest over the limit of %" PRIu64 " bytes (validation.manifests.maxsize)",
                         app->cfg->validation_manifests_maxsize);
                return berth_http_send_oci_error(req, 413, "SIZE_INVALID", msg, NULL);
            }
            t = registry__task_new(app, req, REGISTRY__MANIFEST_PUT, name, last, 1);
            ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
            if (hi != -1) {
                h2o_iovec_t v = req->headers.entries[hi].value;
                size_t n = v.len < sizeof(t->content_type) - 1 ? v.len : sizeof(t->content_type) - 1;
                memcpy(t->content_type, v.base, n);
                t->content_type[n] = '\0';
                t->has_content_type = 1;
            }
        } else if (is_delete) {
            t = registry__task_new(app, req, REGISTRY__MANIFEST_DELETE, name, last, 0);
        } else {
            t = registry__task_new(app, req, REGISTRY__MANIFEST_GET, name, last, 0);
            t->is_head = is_head;
        }
        break;
    }
    case BERTH_ROUTE_TAGS:
    case BERTH_ROUTE_CATALOG: {
        char lastp[REGISTRY__PARAM_MAX];
        size_t n;
        int has_last;
        if (!is_get && !is_head)
            return registry__unsupported_method(req, "GET, HEAD");
        if (registry__pagination(req, &n, lastp, &has_last) != 0)
            return;
        t = registry__task_new(app, req, route == BERTH_ROUTE_TAGS ? REGISTRY__TAGS : REGISTRY__CATALOG, name, last, 0);
        t->n = n;
        t->has_last = has_last;
        if (has_last)
            memcpy(t->last, lastp, sizeof(t->last));
        break;
    }
    case BERTH_ROUTE_REFERRERS: {
        char at[REGISTRY__PARAM_MAX];
        int r;
        if (!is_get && !is_head)
            return registry__unsupported_method(req, "GET, HEAD");
        if (!berth_digest_wellformed(last.base, last.len))
            return berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
        if ((r = berth_http_query_param(req, "artifactType", at, sizeof(at))) < 0)
            return berth_http_send_oci_error(req, 400, "UNSUPPORTED", "malformed artifactType parameter", NULL);
        t = registry__task_new(app, req, REGISTRY__REFERRERS, name, last, 0);
        if (r == 1) {
            memcpy(t->artifact_type, at, sizeof(at));
            t->has_artifact_type = 1;
        }
        break;
    }
    case BERTH_ROUTE_BLOB_DELETE:
        if (!deletes)
            return registry__delete_disabled(req);
        if (!berth_digest_valid(last.base, last.len)) {
            if (berth_digest_wellformed(last.base, last.len))
                return berth_http_send_oci_error(req, 404, "BLOB_UNKNOWN", "blob unknown to registry", NULL);
            return berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
        }
        t = registry__task_new(app, req, REGISTRY__BLOB_DELETE, name, last, 0);
        break;
    default:
        berth_http_send_oci_error(req, 404, "NAME_UNKNOWN", "no such route", NULL);
        return;
    }
    berth_task_submit(&t->super);
}
