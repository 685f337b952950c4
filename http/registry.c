/*
 * The registry routes under /v2/ (core/registry.h does the work): manifests
 * (PUT, GET, HEAD, DELETE), tag and repository listings with pagination,
 * referrers, and blob DELETE.
 *
 * The request arrives parsed and validated (http/route.c); the registry
 * call runs on a worker as a registry__task_t and the answer is sent from
 * the task's done callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/registry.h"
#include "http/app.h"
#include "http/error.h"
#include "http/response.h"

typedef struct registry__task {
    berth_route_task_t super;
    berth_manifest_put_t put;
    berth_manifest_t man;
    berth_page_t page;
    json_t *json;
} registry__task_t;

/* ---- worker side ------------------------------------------------------------ */

static int registry__call(berth_route_task_t *rt)
{
    registry__task_t *t = (registry__task_t *)rt;
    berth_registry_t *reg = rt->app->registry;
    const berth_route_t *r = &rt->r;
    const char *last = r->has_last ? r->last : NULL;

    switch (r->kind) {
    case BERTH_ROUTE_MANIFEST_PUT:
        return berth_manifest_put(reg, r->repo, r->reference, r->has_content_type ? r->content_type : NULL,
                                  rt->super.body.base, rt->super.body.len, &t->put);
    case BERTH_ROUTE_MANIFEST_GET:
        return berth_manifest_get(reg, r->repo, r->reference, !r->is_head, &t->man);
    case BERTH_ROUTE_MANIFEST_DELETE:
        return berth_manifest_delete(reg, r->repo, r->reference);
    case BERTH_ROUTE_TAGS:
        return berth_tags_list(reg, r->repo, last, r->n, &t->page);
    case BERTH_ROUTE_CATALOG:
        return berth_catalog_list(reg, last, r->n, &t->page);
    case BERTH_ROUTE_REFERRERS:
        return berth_referrers_list(reg, r->repo, r->reference, r->has_artifact_type ? r->artifact_type : NULL,
                                    &t->json);
    case BERTH_ROUTE_BLOB_DELETE:
        return berth_registry_blob_delete(reg, r->repo, r->digest);
    default:
        return berth_error_set(BERTH_ERR, "not a registry route");
    }
}

/* ---- loop side ---------------------------------------------------------------- */

static int registry__unreserved(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '/';
}

/* The Link header to the page after `last`: RFC 5988, as the spec shows. */
static void registry__link(h2o_req_t *req, const char *path, size_t n, const char *last)
{
    char enc[3 * BERTH_ROUTE_PARAM_MAX + 1];
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

static void registry__send_page(h2o_req_t *req, registry__task_t *t)
{
    json_t *list = json_array(), *body;
    char path[BERTH_NAME_MAX + 32];

    for (size_t i = 0; i < t->page.n; i++)
        json_array_append_new(list, json_string(t->page.items[i]));
    if (t->super.r.kind == BERTH_ROUTE_TAGS) {
        body = json_pack("{s:s, s:o}", "name", t->super.r.repo, "tags", list);
        snprintf(path, sizeof(path), "/v2/%s/tags/list", t->super.r.repo);
    } else {
        body = json_pack("{s:o}", "repositories", list);
        snprintf(path, sizeof(path), "/v2/_catalog");
    }
    /* n=0 asks for an empty page, and a Link would lead nowhere. */
    if (t->page.more && t->super.r.n != SIZE_MAX && t->super.r.n != 0 && t->page.n > 0)
        registry__link(req, path, t->super.r.n, t->page.items[t->page.n - 1]);
    berth_http_send_json(req, 200, body);
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

static void registry__send_manifest(h2o_req_t *req, registry__task_t *t)
{
    berth_http_header(req, "Docker-Content-Digest", t->man.digest);
    if (!registry__accepts(req, t->man.media_type))
        return berth_http_send_failure(req, BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_MANIFEST,
                                       "the manifest's media type is not in the Accept header",
                                       json_pack("{s:s}", "mediaType", t->man.media_type));
    berth_http_headerf(req, "ETag", "\"%s\"", t->man.digest);
    /* A HEAD gets the length of the body a GET would get (it was not read). */
    berth_http_send_text(req, 200, t->man.media_type, t->man.body != NULL ? t->man.body : "", t->man.size);
}

static void registry__send_pushed(h2o_req_t *req, registry__task_t *t)
{
    berth_http_headerf(req, "Location", "/v2/%s/manifests/%s", t->super.r.repo, t->put.digest);
    berth_http_header(req, "Docker-Content-Digest", t->put.digest);
    if (t->put.subject[0] != '\0')
        berth_http_header(req, "OCI-Subject", t->put.subject);
    berth_http_send_empty(req, 201);
}

/* What a failed call was about, for the error's code. */
static berth_subject_t registry__subject(const registry__task_t *t)
{
    switch (t->super.r.kind) {
    case BERTH_ROUTE_MANIFEST_PUT:
        return t->super.rc == BERTH_ENOTFOUND && t->put.missing[0] != '\0' ? BERTH_SUBJECT_REFERENCED
                                                                           : BERTH_SUBJECT_MANIFEST;
    case BERTH_ROUTE_TAGS:
    case BERTH_ROUTE_CATALOG:
        return BERTH_SUBJECT_REPOSITORY;
    case BERTH_ROUTE_BLOB_DELETE:
        return BERTH_SUBJECT_BLOB;
    default:
        return BERTH_SUBJECT_MANIFEST;
    }
}

static void registry__send_error(h2o_req_t *req, registry__task_t *t)
{
    berth_subject_t subject = registry__subject(t);
    json_t *detail = NULL;

    if (subject == BERTH_SUBJECT_REFERENCED)
        detail = json_pack("{s:s}", "digest", t->put.missing);
    if (t->super.r.kind == BERTH_ROUTE_MANIFEST_PUT && t->put.digest[0] != '\0' && t->super.rc != BERTH_EDIGEST)
        berth_http_header(req, "Docker-Content-Digest", t->put.digest);
    berth_http_send_failure(req, BERTH_API_OCI, t->super.rc, subject, t->super.errmsg, detail);
}

static void registry__done(berth_task_t *bt, h2o_req_t *req)
{
    registry__task_t *t = (registry__task_t *)bt;
    json_t *index;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);
    if (t->super.rc < 0)
        return registry__send_error(req, t);
    switch (t->super.r.kind) {
    case BERTH_ROUTE_MANIFEST_PUT:
        return registry__send_pushed(req, t);
    case BERTH_ROUTE_MANIFEST_GET:
        return registry__send_manifest(req, t);
    case BERTH_ROUTE_MANIFEST_DELETE:
        if (strchr(t->super.r.reference, ':') != NULL)
            berth_http_header(req, "Docker-Content-Digest", t->super.r.reference);
        return berth_http_send_empty(req, 202);
    case BERTH_ROUTE_REFERRERS:
        index = t->json;
        t->json = NULL;
        if (t->super.r.has_artifact_type)
            berth_http_header(req, "OCI-Filters-Applied", "artifactType");
        return berth_http_send_json_as(req, 200, BERTH_MT_OCI_INDEX, index);
    case BERTH_ROUTE_BLOB_DELETE:
        return berth_http_send_empty(req, 202);
    default: /* tags, catalog */
        return registry__send_page(req, t);
    }
}

static void registry__dispose(berth_task_t *bt)
{
    registry__task_t *t = (registry__task_t *)bt;

    free(t->man.body);
    berth_page_clear(&t->page);
    json_decref(t->json);
}

void berth_registry_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r)
{
    berth_route_task_t *t =
        berth_route_task_new(app, req, r, sizeof(registry__task_t), r->kind == BERTH_ROUTE_MANIFEST_PUT, registry__call,
                             registry__done, registry__dispose);

    berth_task_submit(&t->super);
}
