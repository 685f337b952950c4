/*
 * A small S3 client on libcurl (CURLOPT_AWS_SIGV4) for the s3 backend.
 *
 * One reusable curl handle per calling thread and client (keep-alive), kept
 * in a per-client list so that berth_s3_client_free releases every handle
 * whatever thread made it. curl 7.88's SigV4 signs what it is given, as
 * written: this module writes the path percent-encoded, expects the query
 * already canonical (names sorted, values encoded, "uploads=" with its "="),
 * and sends x-amz-content-sha256 itself (see ../shared/notes/s3-backend.md).
 *
 * Idempotent requests are retried with exponential backoff on connection
 * errors, 5xx answers and throttling (429, SlowDown); what still fails is
 * BERTH_EUNAVAILABLE, so the HTTP layer answers 503.
 */
#ifndef BERTH_STORAGE_S3_CLIENT_H
#define BERTH_STORAGE_S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct berth_s3_client berth_s3_client_t;

typedef struct berth_s3_client_options {
    const char *bucket;
    const char *region;   /* "us-east-1" when NULL */
    const char *endpoint; /* "http://host:port": path-style; NULL: https://<bucket>.s3.<region>.amazonaws.com */
    int secure;           /* scheme when endpoint is NULL or has none */
    const char *accesskey;
    const char *secretkey;
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms; /* whole request; 0 = none */
    int max_retries;     /* extra attempts for idempotent requests */
} berth_s3_client_options_t;

/* On failure *out is NULL and the thread's last error says why. */
int berth_s3_client_new(berth_s3_client_t **out, const berth_s3_client_options_t *o);

/* NULL-safe. No request may be running. */
void berth_s3_client_free(berth_s3_client_t *c);

typedef struct berth_s3_req {
    const char *method; /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *key;    /* object key, not encoded; NULL for the bucket */
    const char *query;  /* canonical query string without '?', or NULL */
    const void *body;   /* request body (PUT/POST); NULL with body_len 0 for none */
    size_t body_len;
    const char *content_type; /* for bodies; default application/octet-stream */
    const char *content_md5;  /* base64 Content-MD5, or NULL */
    int has_range;            /* Range: bytes=range_first-range_last */
    uint64_t range_first, range_last;
    void *out; /* a 2xx body goes here (up to out_cap), else into resp->body */
    size_t out_cap;
    int idempotent;       /* may be retried */
    const char *if_match; /* If-Match: <ETag>, or NULL */
    int if_none_match;    /* If-None-Match: * (create only if absent) */
} berth_s3_req_t;

typedef struct berth_s3_resp {
    long status;
    char *body; /* malloc'd, NUL-terminated; NULL when empty or sent to req->out */
    size_t body_len;
    size_t out_len; /* bytes written to req->out */
    char etag[160];
    uint64_t content_length;
    int has_content_length;
    char code[64]; /* S3 error code of a non-2xx answer ("NoSuchUpload"), or "" */
    int retried;   /* attempts before the last that failed after sending (they may have taken effect) */
} berth_s3_resp_t;

/* Performs the request. 0 for a 2xx answer; otherwise BERTH_ENOTFOUND (404),
 * BERTH_ECONFLICT (412 Precondition Failed, 409 ConditionalRequestConflict),
 * BERTH_EEXISTS (any other 409), BERTH_EUNAVAILABLE (no connection, 5xx,
 * throttling, after the retries), BERTH_EIO (anything else), with *resp
 * describing the last answer and the last error naming the S3 code. The
 * caller clears resp with berth_s3_resp_clear whatever the result. */
int berth_s3_do(berth_s3_client_t *c, const berth_s3_req_t *req, berth_s3_resp_t *resp);

void berth_s3_resp_clear(berth_s3_resp_t *r);

/* Percent-encodes s the way SigV4 wants (unreserved kept; '/' kept when
 * keep_slash). Returns the bytes written (excluding NUL), or -1 when out is
 * too small. */
int berth_s3_encode(char *out, size_t cap, const char *s, int keep_slash);

/* A presigned GET URL of `key` valid for expires_s seconds (SigV4 query
 * authentication, the one signing curl cannot do), into url (cap bytes).
 * 0, or BERTH_EINVALID when it does not fit. */
int berth_s3_presign_get(berth_s3_client_t *c, const char *key, unsigned expires_s, char *url, size_t cap);

/* Requests sent and bytes sent/received by this client since it was made. */
void berth_s3_client_stats(berth_s3_client_t *c, uint64_t *requests, uint64_t *sent, uint64_t *received);

#endif
