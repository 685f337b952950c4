/*
 * The OCI blob upload routes (BERTH_ROUTE_UPLOAD_*): start, mount and
 * monolithic POST, then PATCH chunks, GET the status, PUT to finish,
 * DELETE to cancel. The request arrives parsed and validated
 * (http/route.c); the engine call runs on a worker and the answer is sent
 * from the task's done callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "http/app.h"
#include "http/error.h"
#include "http/response.h"

typedef struct upload__task {
    berth_route_task_t super;
    int mounted;        /* a mount found the blob */
    berth_record_t rec; /* the session after the call (or, on ERANGE and EDIGEST, as it stands) */
} upload__task_t;

/* ---- worker side ------------------------------------------------------------ */

/* Completion with a Content-Range: the last chunk must start at the offset,
 * which only an open write can check without a race. */
static int upload__finish_range(upload__task_t *t, berth_engine_t *e, const berth_route_t *r, const berth_body_t *body)
{
    berth_write_t *w = NULL;
    int rc;

    if ((rc = berth_oci_write(e, r->repo, r->id, &r->chunk, &w, &t->rec)) < 0)
        return rc;
    if ((rc = berth_write_piece(w, body->base, body->len)) < 0) {
        berth_write_abort(w);
        return rc;
    }
    return berth_write_finish(w, r->digest, &t->rec);
}

static int upload__finish(upload__task_t *t, berth_engine_t *e, const berth_route_t *r, const berth_body_t *body)
{
    berth_record_t cur;
    int rc;

    if (r->chunk.has_range)
        rc = upload__finish_range(t, e, r, body);
    else
        rc = berth_oci_finish(e, r->repo, r->id, r->digest, body->base, body->len, &t->rec);
    if (rc != BERTH_EDIGEST && rc != BERTH_ERANGE)
        return rc;
    /* Answer with the session as it stands, so the client can resume. */
    snprintf(t->super.errmsg, sizeof(t->super.errmsg), "%s", berth_error_last());
    berth_record_init(&cur);
    if (berth_oci_status(e, r->repo, r->id, &cur) == 0) {
        berth_record_clear(&t->rec);
        t->rec = cur;
    } else {
        berth_record_clear(&cur);
    }
    return rc;
}

static int upload__mount(upload__task_t *t, berth_engine_t *e, const berth_route_t *r)
{
    int rc = berth_blob_mount(e, r->repo, r->from[0] != '\0' ? r->from : NULL, r->digest);

    if (rc == 0) {
        t->mounted = 1;
        return 0;
    }
    /* Not there to mount: a new session, as the spec has it. */
    return rc == BERTH_ENOTFOUND ? berth_oci_start(e, r->repo, &t->rec) : rc;
}

static int upload__call(berth_route_task_t *rt)
{
    upload__task_t *t = (upload__task_t *)rt;
    berth_engine_t *e = rt->app->engine;
    const berth_route_t *r = &rt->r;
    const berth_body_t *body = &rt->super.body;

    switch (r->kind) {
    case BERTH_ROUTE_UPLOAD_START:
        return berth_oci_start(e, r->repo, &t->rec);
    case BERTH_ROUTE_UPLOAD_MOUNT:
        return upload__mount(t, e, r);
    case BERTH_ROUTE_UPLOAD_MONOLITHIC:
        return berth_blob_put(e, r->repo, r->digest, body->base, body->len);
    case BERTH_ROUTE_UPLOAD_STATUS:
        return berth_oci_status(e, r->repo, r->id, &t->rec);
    case BERTH_ROUTE_UPLOAD_CHUNK:
        return berth_oci_append(e, r->repo, r->id, &r->chunk, body->base, body->len, &t->rec);
    case BERTH_ROUTE_UPLOAD_FINISH:
        return upload__finish(t, e, r, body);
    case BERTH_ROUTE_UPLOAD_CANCEL:
        return berth_oci_cancel(e, r->repo, r->id);
    default:
        return berth_error_set(BERTH_ERR, "not an upload route");
    }
}

/* ---- loop side ---------------------------------------------------------------- */

static void upload__session_headers(h2o_req_t *req, const upload__task_t *t)
{
    const berth_record_t *rec = &t->rec;

    berth_http_headerf(req, "Location", "/v2/%s/blobs/uploads/%s", t->super.r.repo, rec->id);
    berth_http_header(req, "Docker-Upload-UUID", rec->id);
    if (rec->offset == 0)
        berth_http_header(req, "Range", "0-0");
    else
        berth_http_headerf(req, "Range", "0-%" PRIu64, rec->offset - 1);
}

/* 201 for a blob now in the repository. */
static void upload__send_blob(h2o_req_t *req, const upload__task_t *t)
{
    berth_http_headerf(req, "Location", "/v2/%s/blobs/%s", t->super.r.repo, t->super.r.digest);
    berth_http_header(req, "Docker-Content-Digest", t->super.r.digest);
    berth_http_send_empty(req, 201);
}

static void upload__send_started(h2o_req_t *req, const upload__task_t *t)
{
    upload__session_headers(req, t);
    berth_http_header(req, "OCI-Chunk-Min-Length", "1");
    berth_http_headerf(req, "OCI-Chunk-Max-Length", "%" PRIu64, t->super.app->cfg->http_maxchunksize);
    berth_http_send_empty(req, 202);
}

static void upload__done(berth_task_t *bt, h2o_req_t *req)
{
    upload__task_t *t = (upload__task_t *)bt;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);
    if (t->super.rc < 0) {
        /* A chunk that does not fit, or content that does not match: the
         * session's state, to resume from. */
        if ((t->super.rc == BERTH_ERANGE || t->super.rc == BERTH_EDIGEST) && t->rec.id[0] != '\0')
            upload__session_headers(req, t);
        berth_http_send_failure(req, BERTH_API_OCI, t->super.rc, BERTH_SUBJECT_UPLOAD, t->super.errmsg, NULL);
        return;
    }
    switch (t->super.r.kind) {
    case BERTH_ROUTE_UPLOAD_START:
        return upload__send_started(req, t);
    case BERTH_ROUTE_UPLOAD_MOUNT:
        return t->mounted ? upload__send_blob(req, t) : upload__send_started(req, t);
    case BERTH_ROUTE_UPLOAD_STATUS:
        upload__session_headers(req, t);
        return berth_http_send_empty(req, 204);
    case BERTH_ROUTE_UPLOAD_CHUNK:
        upload__session_headers(req, t);
        return berth_http_send_empty(req, 202);
    case BERTH_ROUTE_UPLOAD_CANCEL:
        return berth_http_send_empty(req, 204);
    default: /* monolithic, finish */
        return upload__send_blob(req, t);
    }
}

static void upload__dispose(berth_task_t *bt)
{
    berth_record_clear(&((upload__task_t *)bt)->rec);
}

void berth_upload_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r)
{
    int with_body = r->kind == BERTH_ROUTE_UPLOAD_MONOLITHIC || r->kind == BERTH_ROUTE_UPLOAD_CHUNK ||
                    r->kind == BERTH_ROUTE_UPLOAD_FINISH;
    upload__task_t *t = (upload__task_t *)berth_route_task_new(app, req, r, sizeof(*t), with_body, upload__call,
                                                               upload__done, upload__dispose);

    berth_record_init(&t->rec);
    berth_task_submit(&t->super.super);
}
