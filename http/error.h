/*
 * Failed requests: the one mapping from a berth error code (core/error.h),
 * the API a request belongs to and what it was about, to the HTTP status,
 * the error code string and the JSON body the client gets:
 *
 *   {"errors":[{"code":"...","message":"...","detail":{...}}]}
 *
 * Both the refusals of the request boundary (http/route.c) and the results
 * of engine and registry calls come here, so a code means the same thing
 * wherever it is answered. Loop thread only (berth_http_send_error).
 */
#ifndef BERTH_HTTP_ERROR_H
#define BERTH_HTTP_ERROR_H

#include <h2o.h>
#include <jansson.h>

/* Which API a request belongs to. */
typedef enum berth_api {
    BERTH_API_NONE,     /* neither: an unknown path */
    BERTH_API_OCI,      /* /v2/... (the distribution spec's codes) */
    BERTH_API_SESSIONS, /* /uploads/... (the part-session API's codes) */
} berth_api_t;

/* What a failed request was about; it picks the code wherever the error
 * code alone does not (a 404 is BLOB_UNKNOWN for a blob, MANIFEST_UNKNOWN
 * for a manifest). */
typedef enum berth_subject {
    BERTH_SUBJECT_NONE,
    BERTH_SUBJECT_ROUTE,      /* the path names no endpoint */
    BERTH_SUBJECT_METHOD,     /* the endpoint has no such method (405, with Allow) */
    BERTH_SUBJECT_DELETE,     /* deletes are disabled (storage.delete.enabled) */
    BERTH_SUBJECT_NAME,       /* a repository name */
    BERTH_SUBJECT_DIGEST,     /* a digest */
    BERTH_SUBJECT_REFERENCE,  /* a manifest reference in digest form */
    BERTH_SUBJECT_PAGINATION, /* the n of a listing */
    BERTH_SUBJECT_PARAM,      /* another query parameter */
    BERTH_SUBJECT_UPLOAD,     /* an OCI upload session, its chunk or its Content-Range */
    BERTH_SUBJECT_BLOB,       /* a blob (for ERANGE: the Range of a blob GET) */
    BERTH_SUBJECT_MANIFEST,   /* a manifest or tag */
    BERTH_SUBJECT_REFERENCED, /* a blob or manifest a pushed manifest names */
    BERTH_SUBJECT_REPOSITORY, /* a repository's tags */
    BERTH_SUBJECT_SESSION,    /* a part session or its description */
    BERTH_SUBJECT_PART,       /* a part of a part session */
    BERTH_SUBJECT_CREDENTIALS /* missing or wrong credentials (401) */
} berth_subject_t;

typedef struct berth_http_error {
    int rc; /* a code from core/error.h */
    berth_subject_t subject;
    char message[256]; /* for the client when the code is the client's fault; else only logged */
    json_t *detail;    /* owned; NULL for {} */
    const char *allow; /* 405: the Allow header (a static string) */
} berth_http_error_t;

/* What an error becomes. */
typedef struct berth_http_answer {
    int status;
    const char *code;
    const char *text; /* the message when the caller's is not shown */
    int client_fault; /* the caller's message describes the request: shown */
    int bare_head;    /* a HEAD gets the status without a JSON body */
} berth_http_answer_t;

/* Fills *e (detail stolen) and returns rc, so that
 * `return berth_http_error_set(e, BERTH_EINVALID, BERTH_SUBJECT_NAME, NULL, "...")`
 * reads naturally. */
int berth_http_error_set(berth_http_error_t *e, int rc, berth_subject_t subject, json_t *detail, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Frees what *e owns (its detail). */
void berth_http_error_clear(berth_http_error_t *e);

/* The table lookup: what (api, rc, subject) answers. Never NULL (an
 * unexpected code is a 500). */
const berth_http_answer_t *berth_http_error_answer(berth_api_t api, int rc, berth_subject_t subject);

/* Sends the answer for *e (detail stolen). Server faults (5xx) are logged
 * with the request and e->message; the client gets the table's text. */
void berth_http_send_error(h2o_req_t *req, berth_api_t api, berth_http_error_t *e);

/* The same for a code and a message captured on a worker. */
void berth_http_send_failure(h2o_req_t *req, berth_api_t api, int rc, berth_subject_t subject, const char *message,
                             json_t *detail);

#endif
