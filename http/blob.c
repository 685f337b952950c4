/*
 * GET and HEAD of a blob (BERTH_ROUTE_BLOB_GET): a response generator, as
 * h2o's lib/handler/file.c, that reads the blob in slices on the worker
 * pool and h2o_send()s them, one slice on the wire while the next is read.
 *
 * The first submission of the generator's task asks the engine whether
 * the repository sees the blob and how large it is (and, with
 * storage.s3.redirect, for a URL to send the client to: 307); the answer
 * honours a single Range (206, or 416 when unsatisfiable). Each following
 * submission reads one slice into a free buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/range.h"
#include "http/app.h"
#include "http/error.h"
#include "http/response.h"

/* Bytes read per slice; a GET holds at most two slices. */
#define BLOB__SLICE (2 * 1024 * 1024)

typedef struct blob__gen {
    berth_task_t super;
    h2o_generator_t gen;
    berth_http_app_t *app;
    char repo[BERTH_NAME_MAX + 1];
    char digest[BERTH_DIGEST_LEN];
    int is_head;
    int streaming; /* the response started: submissions read slices */

    /* the stat, then each read */
    int rc;
    char errmsg[256];
    uint64_t size;
    size_t got;
    char redirect[3072]; /* a URL to send the client to, or "" */

    /* Slices alternate between two buffers: read in order into bufs[rbuf],
     * sent in the same order from bufs[sbuf]. */
    uint64_t off, end; /* [off, end) still to read */
    uint64_t sent;     /* end of what was handed to h2o */
    char *bufs[2];
    size_t fill[2]; /* bytes a buffer holds; 0 = free */
    int rbuf, sbuf;
    int held;    /* the buffer h2o holds until proceed, or -1 */
    int reading; /* a read is submitted */
    int failed;  /* a read failed: 1 = to report, 2 = reported */
} blob__gen_t;

/* ---- worker side ------------------------------------------------------------ */

static void blob__work(berth_task_t *bt)
{
    blob__gen_t *g = (blob__gen_t *)bt;
    berth_engine_t *e = g->app->engine;

    berth_error_clear();
    if (g->streaming) {
        size_t want = g->end - g->off < BLOB__SLICE ? (size_t)(g->end - g->off) : BLOB__SLICE;
        g->rc = berth_blob_read(e, g->digest, g->off, g->bufs[g->rbuf], want, &g->got);
        if (g->rc == 0 && g->got == 0)
            g->rc = berth_error_set(BERTH_EIO, "blob %s ended early at %" PRIu64, g->digest, g->off);
    } else {
        g->rc = berth_blob_stat(e, g->repo, g->digest, &g->size);
        /* storage.s3.redirect: the client fetches the bytes from S3. */
        if (g->rc == 0 && !g->is_head && g->size > 0 &&
            berth_blob_url(e, g->digest, g->redirect, sizeof(g->redirect)) != 0)
            g->redirect[0] = '\0';
    }
    if (g->rc < 0)
        snprintf(g->errmsg, sizeof(g->errmsg), "%s", berth_error_last());
}

/* ---- the generator -------------------------------------------------------------- */

static void blob__read_next(blob__gen_t *g)
{
    if (!g->reading && g->off < g->end && g->bufs[g->rbuf] != NULL && g->fill[g->rbuf] == 0) {
        g->reading = 1;
        berth_task_submit(&g->super);
    }
}

/* Moves the response along: hands the next slice to h2o when it holds
 * none, and starts the next read when a buffer is free, so that the
 * storage and the socket work at the same time. */
static void blob__pump(blob__gen_t *g, h2o_req_t *req)
{
    h2o_iovec_t slice;
    int final;

    /* h2o takes one send at a time: an error waits for the slice it holds. */
    if (g->failed) {
        if (g->failed == 1 && g->held < 0) {
            g->failed = 2;
            h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        }
        return;
    }
    if (g->held >= 0 || g->fill[g->sbuf] == 0) {
        blob__read_next(g);
        return;
    }
    slice = h2o_iovec_init(g->bufs[g->sbuf], g->fill[g->sbuf]);
    g->sent += slice.len;
    final = g->sent >= g->end;
    g->held = g->sbuf;
    if (g->bufs[1] != NULL)
        g->sbuf ^= 1;
    if (!final)
        blob__read_next(g);
    h2o_send(req, &slice, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void blob__proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    blob__gen_t *g = H2O_STRUCT_FROM_MEMBER(blob__gen_t, gen, gen);

    if (g->held >= 0) {
        g->fill[g->held] = 0;
        g->held = -1;
    }
    blob__pump(g, req);
}

static void blob__stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* Nothing to cancel: a pending read finishes and finds the request gone. */
}

/* ---- the answer ------------------------------------------------------------------- */

/* The byte range to send: 200 for the whole blob, 206 for a satisfiable
 * Range, 0 after answering 416. A malformed or multi-range Range gets the
 * whole blob, as RFC 9110 allows. */
static int blob__range(blob__gen_t *g, h2o_req_t *req, uint64_t *first, uint64_t *last)
{
    ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    int r;

    *first = 0;
    *last = g->size - 1;
    if (hi == -1)
        return 200;
    r = berth_http_range_parse(req->headers.entries[hi].value.base, req->headers.entries[hi].value.len, g->size, first,
                               last);
    if (r == BERTH_ERANGE) {
        berth_http_headerf(req, "Content-Range", "bytes */%" PRIu64, g->size);
        berth_http_send_failure(req, BERTH_API_OCI, BERTH_ERANGE, BERTH_SUBJECT_BLOB, NULL, NULL);
        return 0;
    }
    if (r != 0) {
        *first = 0, *last = g->size - 1;
        return 200;
    }
    berth_http_headerf(req, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, *first, *last, g->size);
    return 206;
}

/* Starts the body: buffers for [first, last], then the first read. */
static void blob__start(blob__gen_t *g, h2o_req_t *req, uint64_t first, uint64_t last)
{
    g->streaming = 1;
    g->off = g->sent = first;
    g->end = last + 1;
    g->held = -1;
    /* A range that fits one slice needs one buffer. */
    g->bufs[0] = malloc(BLOB__SLICE);
    if (g->end - g->off > BLOB__SLICE)
        g->bufs[1] = malloc(BLOB__SLICE);
    if (g->bufs[0] == NULL || (g->end - g->off > BLOB__SLICE && g->bufs[1] == NULL)) {
        h2o_send_error_500(req, "Internal Server Error", "out of memory", 0);
        return;
    }
    g->gen.proceed = blob__proceed;
    g->gen.stop = blob__stop;
    h2o_start_response(req, &g->gen);
    blob__pump(g, req);
}

static void blob__respond(blob__gen_t *g, h2o_req_t *req)
{
    uint64_t first, last;
    int status;

    if (g->rc < 0)
        return berth_http_send_failure(req, BERTH_API_OCI, g->rc, BERTH_SUBJECT_BLOB, g->errmsg, NULL);
    berth_http_header(req, "Docker-Content-Digest", g->digest);
    if (g->redirect[0] != '\0') {
        berth_http_header(req, "Location", g->redirect);
        return berth_http_send_empty(req, 307);
    }
    berth_http_header(req, "Accept-Ranges", "bytes");
    berth_http_headerf(req, "ETag", "\"%s\"", g->digest);
    berth_http_header(req, "Cache-Control", "max-age=31536000");
    if ((status = blob__range(g, req, &first, &last)) == 0)
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/octet-stream"));
    req->res.status = status;
    req->res.reason = berth_http_reason(status);
    req->res.content_length = g->size == 0 ? 0 : last - first + 1;
    if (g->is_head || g->size == 0) {
        h2o_send_inline(req, "", 0);
        return;
    }
    blob__start(g, req, first, last);
}

static void blob__done(berth_task_t *bt, h2o_req_t *req)
{
    blob__gen_t *g = (blob__gen_t *)bt;

    if (req == NULL)
        return;
    if (!g->streaming)
        return blob__respond(g, req);
    g->reading = 0;
    if (g->rc < 0) {
        berth_log_error("reading %s: %s", g->digest, g->errmsg);
        g->failed = 1;
    } else {
        g->fill[g->rbuf] = g->got;
        g->off += g->got;
        if (g->bufs[1] != NULL)
            g->rbuf ^= 1;
    }
    blob__pump(g, req);
}

static void blob__dispose(berth_task_t *bt)
{
    blob__gen_t *g = (blob__gen_t *)bt;

    free(g->bufs[0]);
    free(g->bufs[1]);
}

void berth_blob_handle(berth_http_app_t *app, h2o_req_t *req, const berth_route_t *r)
{
    blob__gen_t *g = (blob__gen_t *)berth_task_new(berth_http_loop_of(req), req, sizeof(*g), 0, blob__work, blob__done);

    g->super.dispose = blob__dispose;
    g->app = app;
    memcpy(g->repo, r->repo, sizeof(g->repo));
    memcpy(g->digest, r->digest, sizeof(g->digest));
    g->is_head = r->is_head;
    berth_task_submit(&g->super);
}
