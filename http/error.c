/*
 * The error table (contract in error.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "http/error.h"
#include "http/response.h"

/* Wildcards of the table's keys. */
#define ERROR__ANY_API (-1)
#define ERROR__ANY_RC 1
#define ERROR__ANY_SUBJECT BERTH_SUBJECT_NONE

typedef struct error__row {
    int api;
    int rc;
    berth_subject_t subject;
    berth_http_answer_t answer;
} error__row_t;

#define A ERROR__ANY_API
#define S_ANY ERROR__ANY_SUBJECT

/* The first row that matches answers. Client faults show the caller's
 * message; everything else shows the row's text, because engine and storage
 * messages name files and keys (they go to the error log instead). A row
 * marked bare answers a HEAD without a JSON body (a HEAD of something that
 * is not there, as registries do). */
/* clang-format off */
static const error__row_t error__rows[] = {
    /* where the request went */
    {BERTH_API_OCI, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, {404, "NAME_UNKNOWN", "no such route", 0, 0}},
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_ROUTE, {404, "NOT_FOUND", "no such endpoint", 0, 0}},
    {BERTH_API_OCI, BERTH_EINVALID, BERTH_SUBJECT_METHOD, {405, "UNSUPPORTED", "the operation is unsupported", 0, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_METHOD, {405, "UNSUPPORTED", "method not allowed here", 0, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_DELETE, {405, "UNSUPPORTED", "deletion is disabled (storage.delete.enabled)", 0, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_CREDENTIALS, {401, "UNAUTHORIZED", "authentication required", 1, 0}},

    /* malformed input */
    {A, BERTH_EINVALID, BERTH_SUBJECT_NAME, {400, "NAME_INVALID", "invalid repository name", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_DIGEST, {400, "DIGEST_INVALID", "invalid digest", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_REFERENCE, {400, "DIGEST_INVALID", "invalid digest", 1, 1}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_PAGINATION, {400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_PARAM, {400, "UNSUPPORTED", "malformed query parameter", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_MANIFEST, {400, "MANIFEST_INVALID", "manifest invalid", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_REPOSITORY, {400, "MANIFEST_INVALID", "invalid request", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_SESSION, {400, "SESSION_INVALID", "invalid session", 1, 0}},
    {A, BERTH_EINVALID, BERTH_SUBJECT_PART, {400, "PART_INVALID", "invalid part", 1, 0}},
    {A, BERTH_EINVALID, S_ANY, {400, "BLOB_UPLOAD_INVALID", "invalid request", 1, 0}},

    /* not there */
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_UPLOAD, {404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 0, 0}},
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_BLOB, {404, "BLOB_UNKNOWN", "blob unknown to registry", 0, 1}},
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_MANIFEST, {404, "MANIFEST_UNKNOWN", "manifest unknown", 0, 1}},
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_REFERENCED, {400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to the repository", 0, 0}},
    {A, BERTH_ENOTFOUND, BERTH_SUBJECT_REPOSITORY, {404, "NAME_UNKNOWN", "repository name not known to registry", 0, 0}},
    {A, BERTH_ENOTFOUND, S_ANY, {404, "SESSION_UNKNOWN", "upload session unknown", 0, 0}},

    /* the request does not fit the state */
    {A, BERTH_ERANGE, BERTH_SUBJECT_BLOB, {416, "BLOB_UNKNOWN", "requested range not satisfiable", 0, 0}},
    {BERTH_API_SESSIONS, BERTH_ERANGE, S_ANY, {409, "SESSION_INCOMPLETE", "the session misses parts", 1, 0}},
    {A, BERTH_ERANGE, S_ANY, {416, "BLOB_UPLOAD_INVALID", "range does not start at the upload's offset", 1, 0}},
    {A, BERTH_EDIGEST, S_ANY, {400, "DIGEST_INVALID", "provided digest did not match uploaded content", 1, 0}},
    {A, BERTH_ETOOLARGE, S_ANY, {413, "SIZE_INVALID", "content too large", 1, 0}},
    {BERTH_API_SESSIONS, BERTH_EEXISTS, S_ANY, {409, "SESSION_CLOSED", "the session is finished", 1, 0}},
    /* A conditional write that lost to another process is a busy session. */
    {BERTH_API_SESSIONS, BERTH_EBUSY, S_ANY, {409, "SESSION_BUSY", "the session is being completed or aborted; retry", 0, 0}},
    {BERTH_API_SESSIONS, BERTH_ECONFLICT, S_ANY, {409, "SESSION_BUSY", "the session is being completed or aborted; retry", 0, 0}},
    {A, BERTH_EBUSY, S_ANY, {409, "BLOB_UPLOAD_INVALID", "upload is busy with another request, retry", 0, 0}},
    {A, BERTH_ECONFLICT, S_ANY, {409, "BLOB_UPLOAD_INVALID", "upload is busy with another request, retry", 0, 0}},

    /* the storage */
    {A, BERTH_EUNAVAILABLE, S_ANY, {503, "UNAVAILABLE", "storage unavailable, retry later", 0, 0}},
    {A, BERTH_ENOSPACE, S_ANY, {507, "UNAVAILABLE", "storage full", 0, 0}},
    {A, ERROR__ANY_RC, S_ANY, {500, "UNKNOWN", "internal storage error", 0, 0}},
};
/* clang-format on */

#undef A
#undef S_ANY

const berth_http_answer_t *berth_http_error_answer(berth_api_t api, int rc, berth_subject_t subject)
{
    size_t n = sizeof(error__rows) / sizeof(error__rows[0]);

    for (size_t i = 0; i < n; i++) {
        const error__row_t *row = &error__rows[i];
        if ((row->api == ERROR__ANY_API || row->api == (int)api) && (row->rc == ERROR__ANY_RC || row->rc == rc) &&
            (row->subject == ERROR__ANY_SUBJECT || row->subject == subject))
            return &row->answer;
    }
    return &error__rows[n - 1].answer;
}

int berth_http_error_set(berth_http_error_t *e, int rc, berth_subject_t subject, json_t *detail, const char *fmt, ...)
{
    va_list ap;

    json_decref(e->detail);
    e->rc = rc;
    e->subject = subject;
    e->detail = detail;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return rc;
}

void berth_http_error_clear(berth_http_error_t *e)
{
    json_decref(e->detail);
    e->detail = NULL;
}

void berth_http_send_error(h2o_req_t *req, berth_api_t api, berth_http_error_t *e)
{
    const berth_http_answer_t *a = berth_http_error_answer(api, e->rc, e->subject);
    const char *message = a->client_fault && e->message[0] != '\0' ? e->message : a->text;
    json_t *err;

    if (a->status >= 500)
        berth_log_error("%.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
                        e->message[0] != '\0' ? e->message : berth_error_name(e->rc));
    if (e->allow != NULL)
        berth_http_header(req, "Allow", e->allow);
    if (a->bare_head && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        berth_http_error_clear(e);
        berth_http_send_empty(req, a->status);
        return;
    }
    err = json_pack("{s:s, s:s}", "code", a->code, "message", message);
    json_object_set_new(err, "detail", e->detail != NULL ? e->detail : json_object());
    e->detail = NULL;
    berth_http_send_json(req, a->status, json_pack("{s:[o]}", "errors", err));
}

void berth_http_send_failure(h2o_req_t *req, berth_api_t api, int rc, berth_subject_t subject, const char *message,
                             json_t *detail)
{
    berth_http_error_t e = {.rc = rc, .subject = subject, .detail = detail};

    snprintf(e.message, sizeof(e.message), "%s", message != NULL ? message : "");
    berth_http_send_error(req, api, &e);
}
