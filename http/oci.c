/*
 * The OCI distribution-spec routes under /v2/: the blob upload flow (POST,
 * PATCH, GET status, PUT, DELETE) and blob reads; manifests, tags, the
 * catalog, referrers and blob deletes go on to http/registry.c.
 *
 * Each handler parses and validates the request on the loop thread, then
 * hands the storage work to a worker as an oci__task_t and answers in the
 * task's done callback. Routing uses the raw path, never the normalised one,
 * so a dot-segment cannot change which repository a request names.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/range.h"
#include "core/validate.h"
#include "http/app.h"
#include "http/response.h"

/* Bytes read per blob slice sent to the client; a GET holds two slices,
 * one being sent while the next is read. */
#define OCI__READ_SLICE (2 * 1024 * 1024)
#define OCI__PARAM_MAX 256

typedef enum oci__op {
    OCI__START,
    OCI__MOUNT,
    OCI__MONOLITHIC,
    OCI__STATUS,
    OCI__APPEND,
    OCI__FINISH,
    OCI__CANCEL,
    OCI__BLOB_STAT,
    OCI__BLOB_READ,
} oci__op_t;

typedef struct oci__task {
    berth_task_t super;
    berth_http_app_t *app;
    oci__op_t op;
    int is_head;
    char repo[BERTH_NAME_MAX + 1];
    char id[BERTH_ID_LEN];
    char digest[BERTH_DIGEST_LEN];
    char from[BERTH_NAME_MAX + 1];
    int has_from;
    int has_range;
    uint64_t first, last;

    /* results */
    int rc;
    int mounted;
    char errmsg[256];
    berth_record_t rec;

    /* blob reads: slices alternate between two buffers, read in order into
     * bufs[rbuf] and sent in the same order from bufs[sbuf] */
    uint64_t size;
    uint64_t off, end; /* [off, end) still to read */
    uint64_t sent;     /* end of what was handed to h2o */
    char *bufs[2];
    size_t fill[2];    /* bytes a buffer holds; 0 = free */
    int rbuf, sbuf;
    int held;          /* buffer h2o holds until proceed, or -1 */
    int reading;       /* a read is submitted */
    int failed;        /* a read failed: 1 = to report, 2 = reported */
    size_t got;
    h2o_generator_t gen;
    char redirect[3072]; /* blob GET: a presigned URL to send the client to, or "" */
} oci__task_t;

typedef enum oci__route {
    OCI__ROUTE_NONE,
    OCI__ROUTE_BASE,
    OCI__ROUTE_UPLOADS,
    OCI__ROUTE_SESSION,
    OCI__ROUTE_BLOB,
    OCI__ROUTE_MANIFEST,
    OCI__ROUTE_TAGS,
    OCI__ROUTE_CATALOG,
    OCI__ROUTE_REFERRERS,
} oci__route_t;

static int oci__method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int oci__ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
    size_t sl = strlen(suffix);
    if (len < sl || memcmp(s + len - sl, suffix, sl) != 0)
        return 0;
    *rest = len - sl;
    return 1;
}

/* Splits the raw path into a route, the repository name and the last
 * component (session id, digest or reference). */
static oci__route_t oci__route(const char *path, size_t len, h2o_iovec_t *name, h2o_iovec_t *last)
{
    size_t n;
    const char *rest;
    size_t rlen;

    *name = h2o_iovec_init(NULL, 0);
    *last = h2o_iovec_init(NULL, 0);
    if (h2o_memis(path, len, H2O_STRLIT("/v2")) || h2o_memis(path, len, H2O_STRLIT("/v2/")))
        return OCI__ROUTE_BASE;
    if (len < 4 || memcmp(path, "/v2/", 4) != 0)
        return OCI__ROUTE_NONE;
    rest = path + 4;
    rlen = len - 4;
    if (h2o_memis(rest, rlen, H2O_STRLIT("_catalog")))
        return OCI__ROUTE_CATALOG;
    if (oci__ends_with(rest, rlen, "/blobs/uploads/", &n) || oci__ends_with(rest, rlen, "/blobs/uploads", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_UPLOADS;
    }
    if (oci__ends_with(rest, rlen, "/tags/list", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_TAGS;
    }
    /* The rest end in "/<kind>/<last>". */
    const char *slash = NULL;
    for (size_t i = rlen; i > 0; i--) {
        if (rest[i - 1] == '/') {
            slash = rest + i - 1;
            break;
        }
    }
    if (slash == NULL)
        return OCI__ROUTE_NONE;
    *last = h2o_iovec_init(slash + 1, rlen - (size_t)(slash + 1 - rest));
    size_t blen = (size_t)(slash - rest);
    if (oci__ends_with(rest, blen, "/blobs/uploads", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_SESSION;
    }
    if (oci__ends_with(rest, blen, "/blobs", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_BLOB;
    }
    if (oci__ends_with(rest, blen, "/manifests", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_MANIFEST;
    }
    if (oci__ends_with(rest, blen, "/referrers", &n)) {
        *name = h2o_iovec_init(rest, n);
        return OCI__ROUTE_REFERRERS;
    }
    return OCI__ROUTE_NONE;
}

static int oci__hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Declared in http/app.h. */
int berth_http_query_param(h2o_req_t *req, const char *key, char *out, size_t outsz)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    size_t klen = strlen(key);

    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        const char *kend = eq != NULL ? eq : pend;
        if ((size_t)(kend - q) == klen && memcmp(q, key, klen) == 0) {
            size_t o = 0;
            for (const char *p = eq != NULL ? eq + 1 : pend; p < pend; p++) {
                int c = (unsigned char)*p;
                if (c == '%') {
                    int hi, lo;
                    if (pend - p < 3 || (hi = oci__hexval(p[1])) < 0 || (lo = oci__hexval(p[2])) < 0)
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
            return 1;
        }
        q = pend + 1;
    }
    return 0;
}

static void oci__add_upload_headers(h2o_req_t *req, const oci__task_t *t, const berth_record_t *rec)
{
    berth_http_headerf(req, "Location", "/v2/%s/blobs/uploads/%s", t->repo, rec->id);
    berth_http_header(req, "Docker-Upload-UUID", rec->id);
    if (rec->offset == 0)
        berth_http_header(req, "Range", "0-0");
    else
        berth_http_headerf(req, "Range", "0-%" PRIu64, rec->offset - 1);
}

static void oci__task_dispose(berth_task_t *bt)
{
    oci__task_t *t = (oci__task_t *)bt;
    berth_record_clear(&t->rec);
    free(t->bufs[0]);
    free(t->bufs[1]);
}

/* --- worker side ------------------------------------------------------ */

static void oci__work(berth_task_t *bt)
{
    oci__task_t *t = (oci__task_t *)bt;
    berth_engine_t *e = t->app->engine;
    const char *body = NULL;
    size_t len = 0;

    berth_error_clear();
    switch (t->op) {
    case OCI__START:
        t->rc = berth_oci_start(e, t->repo, &t->rec);
        break;
    case OCI__MOUNT:
        t->rc = berth_blob_mount(e, t->repo, t->has_from ? t->from : NULL, t->digest);
        if (t->rc == 0) {
            t->mounted = 1;
        } else if (t->rc == BERTH_ENOTFOUND) {
            t->rc = berth_oci_start(e, t->repo, &t->rec);
        }
        break;
    case OCI__MONOLITHIC:
        if (berth_task_body_acquire(bt, &body, &len) == 0)
            t->rc = berth_blob_put(e, t->repo, t->digest, body, len);
        else
            t->rc = berth_error_set(BERTH_ERR, "request gone");
        berth_task_body_release(bt);
        break;
    case OCI__STATUS:
        t->rc = berth_oci_status(e, t->repo, t->id, &t->rec);
        break;
    case OCI__APPEND:
        if (berth_task_body_acquire(bt, &body, &len) == 0)
            t->rc = berth_oci_append(e, t->repo, t->id, t->has_range, t->first, t->last, body, len, &t->rec);
        else
            t->rc = berth_error_set(BERTH_ERR, "request gone");
        berth_task_body_release(bt);
        break;
    case OCI__FINISH:
        if (t->has_range) {
            /* A last chunk with a Content-Range must start at the offset. */
            t->rc = berth_oci_status(e, t->repo, t->id, &t->rec);
            if (t->rc == 0 && t->first != t->rec.offset)
                t->rc = berth_error_set(BERTH_ERANGE, "chunk starts at %" PRIu64 ", upload is at %" PRIu64,
                                        t->first, t->rec.offset);
            if (t->rc != 0)
                break;
        }
        if (berth_task_body_acquire(bt, &body, &len) == 0)
            t->rc = berth_oci_finish(e, t->repo, t->id, t->digest, body, len, &t->rec);
        else
            t->rc = berth_error_set(BERTH_ERR, "request gone");
        berth_task_body_release(bt);
        if (t->rc == BERTH_EDIGEST || t->rc == BERTH_ERANGE) {
            /* Answer with the session's current state. */
            berth_record_t cur;
            berth_record_init(&cur);
            if (berth_oci_status(e, t->repo, t->id, &cur) == 0) {
                berth_record_clear(&t->rec);
                t->rec = cur;
            } else {
                berth_record_clear(&cur);
            }
        }
        break;
    case OCI__CANCEL:
        t->rc = berth_oci_cancel(e, t->repo, t->id);
        break;
    case OCI__BLOB_STAT:
        t->rc = berth_blob_stat(e, t->repo, t->digest, &t->size);
        /* storage.s3.redirect: the client fetches the bytes from S3. */
        if (t->rc == 0 && !t->is_head && t->size > 0 &&
            berth_blob_url(e, t->digest, t->redirect, sizeof(t->redirect)) != 0)
            t->redirect[0] = '\0';
        break;
    case OCI__BLOB_READ: {
        size_t want = t->end - t->off < OCI__READ_SLICE ? (size_t)(t->end - t->off) : OCI__READ_SLICE;
        t->rc = berth_blob_read(e, t->digest, t->off, t->bufs[t->rbuf], want, &t->got);
        if (t->rc == 0 && t->got == 0)
            t->rc = berth_error_set(BERTH_EIO, "blob %s ended early at %" PRIu64, t->digest, t->off);
        break;
    }
    }
    if (t->rc != 0)
        snprintf(t->errmsg, sizeof(t->errmsg), "%s", berth_error_last());
}

/* --- loop side -------------------------------------------------------- */

static void oci__send_error(h2o_req_t *req, oci__task_t *t, const char *notfound_code)
{
    if (t->rc == BERTH_ERR || t->rc == BERTH_EIO || t->rc == BERTH_ENOSPACE || t->rc == BERTH_EUNAVAILABLE)
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        t->errmsg);
    berth_http_send_engine_error(req, t->rc, notfound_code, "BLOB_UPLOAD_INVALID", t->errmsg);
}

/* Moves a blob GET along: hands the next read slice to h2o when it holds
 * none, and starts the next read when a buffer is free, so that the disk
 * (or S3) and the socket work at the same time. */
static void oci__blob_pump(oci__task_t *t, h2o_req_t *req)
{
    /* h2o takes one send at a time: an error waits for the slice it holds. */
    if (t->failed) {
        if (t->failed == 1 && t->held < 0) {
            t->failed = 2;
            h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        }
        return;
    }
    if (t->held < 0 && t->fill[t->sbuf] > 0) {
        h2o_iovec_t chunk = h2o_iovec_init(t->bufs[t->sbuf], t->fill[t->sbuf]);
        int final;
        t->sent += t->fill[t->sbuf];
        final = t->sent >= t->end;
        t->held = t->sbuf;
        if (t->bufs[1] != NULL)
            t->sbuf ^= 1;
        if (!final && !t->reading && t->off < t->end && t->fill[t->rbuf] == 0 && t->bufs[t->rbuf] != NULL) {
            t->reading = 1;
            berth_task_submit(&t->super);
        }
        h2o_send(req, &chunk, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
        return;
    }
    if (!t->reading && t->off < t->end && t->fill[t->rbuf] == 0 && t->bufs[t->rbuf] != NULL) {
        t->reading = 1;
        berth_task_submit(&t->super);
    }
}

static void oci__blob_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    oci__task_t *t = H2O_STRUCT_FROM_MEMBER(oci__task_t, gen, gen);

    if (t->held >= 0) {
        t->fill[t->held] = 0;
        t->held = -1;
    }
    oci__blob_pump(t, req);
}

static void oci__blob_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* Nothing to cancel: a pending read finishes and finds the request gone. */
}

static void oci__done(berth_task_t *bt, h2o_req_t *req)
{
    oci__task_t *t = (oci__task_t *)bt;

    if (req == NULL)
        return;
    berth_task_drop_body(bt);

    switch (t->op) {
    case OCI__START:
    case OCI__MOUNT:
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        if (t->mounted) {
            berth_http_headerf(req, "Location", "/v2/%s/blobs/%s", t->repo, t->digest);
            berth_http_header(req, "Docker-Content-Digest", t->digest);
            return berth_http_send_empty(req, 201, NULL);
        }
        oci__add_upload_headers(req, t, &t->rec);
        berth_http_header(req, "OCI-Chunk-Min-Length", "1");
        berth_http_headerf(req, "OCI-Chunk-Max-Length", "%" PRIu64, t->app->cfg->http_maxchunksize);
        return berth_http_send_empty(req, 202, NULL);
    case OCI__MONOLITHIC:
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        berth_http_headerf(req, "Location", "/v2/%s/blobs/%s", t->repo, t->digest);
        berth_http_header(req, "Docker-Content-Digest", t->digest);
        return berth_http_send_empty(req, 201, NULL);
    case OCI__STATUS:
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        oci__add_upload_headers(req, t, &t->rec);
        return berth_http_send_empty(req, 204, NULL);
    case OCI__APPEND:
        if (t->rc == BERTH_ERANGE && t->rec.id[0] != '\0')
            oci__add_upload_headers(req, t, &t->rec);
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        oci__add_upload_headers(req, t, &t->rec);
        return berth_http_send_empty(req, 202, NULL);
    case OCI__FINISH:
        if ((t->rc == BERTH_ERANGE || t->rc == BERTH_EDIGEST) && t->rec.id[0] != '\0')
            oci__add_upload_headers(req, t, &t->rec);
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        berth_http_headerf(req, "Location", "/v2/%s/blobs/%s", t->repo, t->digest);
        berth_http_header(req, "Docker-Content-Digest", t->digest);
        return berth_http_send_empty(req, 201, NULL);
    case OCI__CANCEL:
        if (t->rc != 0)
            return oci__send_error(req, t, "BLOB_UPLOAD_UNKNOWN");
        return berth_http_send_empty(req, 204, NULL);
    case OCI__BLOB_STAT: {
        if (t->rc != 0) {
            if (t->is_head && t->rc == BERTH_ENOTFOUND)
                return berth_http_send_empty(req, 404, NULL);
            return oci__send_error(req, t, "BLOB_UNKNOWN");
        }
        if (t->redirect[0] != '\0') {
            berth_http_header(req, "Docker-Content-Digest", t->digest);
            berth_http_header(req, "Location", t->redirect);
            return berth_http_send_empty(req, 307, NULL);
        }
        uint64_t first = 0, last = t->size - 1;
        int status = 200;
        ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
        berth_http_header(req, "Docker-Content-Digest", t->digest);
        berth_http_header(req, "Accept-Ranges", "bytes");
        berth_http_headerf(req, "ETag", "\"%s\"", t->digest);
        berth_http_header(req, "Cache-Control", "max-age=31536000");
        if (hi != -1) {
            h2o_iovec_t v = req->headers.entries[hi].value;
            int r = berth_http_range_parse(v.base, v.len, t->size, &first, &last);
            if (r == BERTH_ERANGE) {
                berth_http_headerf(req, "Content-Range", "bytes */%" PRIu64, t->size);
                return berth_http_send_oci_error(req, 416, "BLOB_UNKNOWN", "requested range not satisfiable", NULL);
            }
            if (r == 0) {
                status = 206;
                berth_http_headerf(req, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last,
                                   t->size);
            } else {
                first = 0, last = t->size - 1;
            }
        }
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/octet-stream"));
        req->res.status = status;
        req->res.reason = berth_http_reason(status);
        req->res.content_length = t->size == 0 ? 0 : last - first + 1;
        if (t->is_head || t->size == 0) {
            h2o_send_inline(req, "", 0);
            return;
        }
        t->op = OCI__BLOB_READ;
        t->off = t->sent = first;
        t->end = last + 1;
        t->held = -1;
        /* A range that fits one slice needs one buffer. */
        t->bufs[0] = malloc(OCI__READ_SLICE);
        if (t->end - t->off > OCI__READ_SLICE)
            t->bufs[1] = malloc(OCI__READ_SLICE);
        if (t->bufs[0] == NULL || (t->end - t->off > OCI__READ_SLICE && t->bufs[1] == NULL))
            return h2o_send_error_500(req, "Internal Server Error", "out of memory", 0);
        t->gen.proceed = oci__blob_proceed;
        t->gen.stop = oci__blob_stop;
        h2o_start_response(req, &t->gen);
        oci__blob_pump(t, req);
        return;
    }
    case OCI__BLOB_READ: {
        t->reading = 0;
        if (t->rc != 0) {
            berth_log_error("reading %s: %s", t->digest, t->errmsg);
            t->failed = 1;
            oci__blob_pump(t, req);
            return;
        }
        t->fill[t->rbuf] = t->got;
        t->off += t->got;
        if (t->bufs[1] != NULL)
            t->rbuf ^= 1;
        oci__blob_pump(t, req);
        return;
    }
    }
}

static oci__task_t *oci__task_new(berth_http_app_t *app, h2o_req_t *req, oci__op_t op, h2o_iovec_t name,
                                   int with_body)
{
    oci__task_t *t = (oci__task_t *)berth_task_new(berth_http_loop_of(req), req, sizeof(*t), with_body, oci__work,
                                                   oci__done);
    t->super.dispose = oci__task_dispose;
    t->app = app;
    t->op = op;
    memcpy(t->repo, name.base, name.len);
    t->repo[name.len] = '\0';
    berth_record_init(&t->rec);
    return t;
}

static int oci__digest_param(h2o_req_t *req, const char *key, char *out, int *present)
{
    char buf[OCI__PARAM_MAX];
    int r = berth_http_query_param(req, key, buf, sizeof(buf));

    *present = r == 1;
    if (r == 0)
        return 0;
    if (r < 0 || !berth_digest_valid(buf, strlen(buf))) {
        const char *why = r > 0 && berth_digest_wellformed(buf, strlen(buf)) ? "unsupported digest algorithm (berth stores sha256)"
                                                                             : "invalid digest";
        berth_http_send_oci_error(req, 400, "DIGEST_INVALID", why, json_pack("{s:s}", "parameter", key));
        return -1;
    }
    memcpy(out, buf, strlen(buf) + 1);
    return 0;
}

static void oci__unsupported_method(h2o_req_t *req, const char *allow)
{
    berth_http_header(req, "Allow", allow);
    berth_http_send_oci_error(req, 405, "UNSUPPORTED", "the operation is unsupported", NULL);
}

int berth_oci_handle(berth_http_app_t *app, h2o_req_t *req)
{
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    h2o_iovec_t name, last;
    oci__route_t route = oci__route(req->path.base, plen, &name, &last);
    int is_get = oci__method_is(req, "GET"), is_head = oci__method_is(req, "HEAD");

    if (route == OCI__ROUTE_NONE && !(plen >= 3 && memcmp(req->path.base, "/v2", 3) == 0))
        return -1;
    berth_http_header(req, "Docker-Distribution-API-Version", "registry/2.0");

    switch (route) {
    case OCI__ROUTE_NONE:
        berth_http_send_oci_error(req, 404, "NAME_UNKNOWN", "no such route", NULL);
        return 0;
    case OCI__ROUTE_BASE:
        if (!is_get && !is_head) {
            oci__unsupported_method(req, "GET, HEAD");
            return 0;
        }
        berth_http_send_json(req, 200, NULL, json_object());
        return 0;
    case OCI__ROUTE_CATALOG:
        berth_registry_handle(app, req, BERTH_ROUTE_CATALOG, name, last);
        return 0;
    default:
        break;
    }

    if (!berth_name_valid(name.base, name.len)) {
        berth_http_send_oci_error(req, 400, "NAME_INVALID", "invalid repository name",
                                  json_pack("{s:s#}", "name", name.base, (int)(name.len > 255 ? 255 : name.len)));
        return 0;
    }

    oci__task_t *t;
    switch (route) {
    case OCI__ROUTE_MANIFEST:
        berth_registry_handle(app, req, BERTH_ROUTE_MANIFEST, name, last);
        return 0;
    case OCI__ROUTE_TAGS:
        berth_registry_handle(app, req, BERTH_ROUTE_TAGS, name, last);
        return 0;
    case OCI__ROUTE_REFERRERS:
        berth_registry_handle(app, req, BERTH_ROUTE_REFERRERS, name, last);
        return 0;
    case OCI__ROUTE_UPLOADS: {
        if (!oci__method_is(req, "POST")) {
            oci__unsupported_method(req, "POST");
            return 0;
        }
        char digest[BERTH_DIGEST_LEN], mount[BERTH_DIGEST_LEN], from[OCI__PARAM_MAX];
        int has_digest, has_mount, fr;
        if (oci__digest_param(req, "digest", digest, &has_digest) != 0 ||
            oci__digest_param(req, "mount", mount, &has_mount) != 0)
            return 0;
        fr = berth_http_query_param(req, "from", from, sizeof(from));
        if (fr < 0 || (fr == 1 && !berth_name_valid(from, strlen(from)))) {
            berth_http_send_oci_error(req, 400, "NAME_INVALID", "invalid repository name in 'from'", NULL);
            return 0;
        }
        if (has_digest) {
            if (req->entity.len > app->cfg->http_maxchunksize) {
                berth_http_send_oci_error(req, 413, "SIZE_INVALID", "body over http.maxchunksize", NULL);
                return 0;
            }
            t = oci__task_new(app, req, OCI__MONOLITHIC, name, 1);
            memcpy(t->digest, digest, sizeof(digest));
        } else if (has_mount) {
            t = oci__task_new(app, req, OCI__MOUNT, name, 0);
            memcpy(t->digest, mount, sizeof(mount));
            if (fr == 1) {
                t->has_from = 1;
                memcpy(t->from, from, strlen(from) + 1);
            }
        } else {
            t = oci__task_new(app, req, OCI__START, name, 0);
        }
        break;
    }
    case OCI__ROUTE_SESSION: {
        oci__op_t op;
        int with_body = 0;
        if (is_get || is_head) {
            op = OCI__STATUS;
        } else if (oci__method_is(req, "PATCH")) {
            op = OCI__APPEND, with_body = 1;
        } else if (oci__method_is(req, "PUT")) {
            op = OCI__FINISH, with_body = 1;
        } else if (oci__method_is(req, "DELETE")) {
            op = OCI__CANCEL;
        } else {
            oci__unsupported_method(req, "GET, HEAD, PATCH, PUT, DELETE");
            return 0;
        }
        if (!berth_id_valid(last.base, last.len)) {
            berth_http_send_oci_error(req, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", NULL);
            return 0;
        }
        char digest[BERTH_DIGEST_LEN] = "";
        int has_digest = 0;
        if (op == OCI__FINISH) {
            if (oci__digest_param(req, "digest", digest, &has_digest) != 0)
                return 0;
            if (!has_digest) {
                berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "the digest query parameter is required", NULL);
                return 0;
            }
        }
        uint64_t first = 0, lastb = 0;
        int has_range = 0;
        ssize_t hi = with_body ? h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_RANGE, -1) : -1;
        if (hi != -1) {
            h2o_iovec_t v = req->headers.entries[hi].value;
            if (berth_content_range_parse(v.base, v.len, &first, &lastb) != 0) {
                berth_http_send_oci_error(req, 400, "BLOB_UPLOAD_INVALID", "malformed Content-Range",
                                          json_pack("{s:s#}", "Content-Range", v.base, (int)(v.len > 100 ? 100 : v.len)));
                return 0;
            }
            if (lastb - first + 1 != req->entity.len) {
                char msg[160];
                snprintf(msg, sizeof(msg), "Content-Range covers %" PRIu64 " bytes but the body has %zu",
                         lastb - first + 1, req->entity.len);
                berth_http_send_oci_error(req, 400, "BLOB_UPLOAD_INVALID", msg, NULL);
                return 0;
            }
            has_range = 1;
        }
        if (req->entity.len > app->cfg->http_maxchunksize) {
            berth_http_send_oci_error(req, 413, "SIZE_INVALID", "chunk over http.maxchunksize", NULL);
            return 0;
        }
        t = oci__task_new(app, req, op, name, with_body);
        memcpy(t->id, last.base, last.len);
        t->id[last.len] = '\0';
        memcpy(t->digest, digest, sizeof(digest));
        t->has_range = has_range;
        t->first = first;
        t->last = lastb;
        break;
    }
    case OCI__ROUTE_BLOB: {
        if (!is_get && !is_head) {
            if (oci__method_is(req, "DELETE")) {
                berth_registry_handle(app, req, BERTH_ROUTE_BLOB_DELETE, name, last);
                return 0;
            }
            oci__unsupported_method(req, "GET, HEAD, DELETE");
            return 0;
        }
        if (!berth_digest_valid(last.base, last.len)) {
            if (berth_digest_wellformed(last.base, last.len)) {
                if (is_head)
                    berth_http_send_empty(req, 404, NULL);
                else
                    berth_http_send_oci_error(req, 404, "BLOB_UNKNOWN", "blob unknown to registry", NULL);
            } else {
                berth_http_send_oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
            }
            return 0;
        }
        t = oci__task_new(app, req, OCI__BLOB_STAT, name, 0);
        memcpy(t->digest, last.base, last.len);
        t->digest[last.len] = '\0';
        t->is_head = is_head;
        break;
    }
    default:
        return -1;
    }
    berth_task_submit(&t->super);
    return 0;
}
