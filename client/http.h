/*
 * The client's HTTP layer: one libcurl easy handle per connection (so
 * keep-alive and HTTP/2 are reused between requests), request bodies
 * streamed from a file region (hashed as they are read) or from memory,
 * response bodies captured (small) or streamed to a file descriptor (pull).
 *
 * Not thread-safe: one berth_http_t per thread. berth_http_global_init()
 * must run once before any berth_http_new().
 */
#ifndef BERTH_CLIENT_HTTP_H
#define BERTH_CLIENT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"

typedef struct berth_http_options {
    const char *user; /* Basic credentials, sent with every request; NULL for none */
    const char *password;
    int insecure;           /* do not verify TLS certificates */
    long timeout_s;         /* a transfer moving no byte for this long fails (0: 30 s) */
    long connect_timeout_s; /* 0: 10 s */
    int verbose;            /* libcurl's own trace on stderr */
} berth_http_options_t;

typedef struct berth_http berth_http_t;

/* Request body: a file region (fd >= 0) or memory (fd < 0). When `hash` is
 * set, each byte is hashed the first time it is read, in order: bytes at
 * and past `*hash_pos` only, so a rewind (libcurl may re-send) never hashes
 * a byte twice. `sent` (optional) counts the bytes handed to libcurl;
 * `on_progress` is called after each read with the request's bytes so far. */
typedef struct berth_http_body {
    int fd;
    uint64_t off;
    uint64_t len;
    const char *mem;
    const char *content_type; /* NULL: application/octet-stream */
    berth_sha256_t *hash;
    uint64_t *hash_pos; /* file offset `hash` has reached */
    void (*on_progress)(void *ctx, uint64_t request_bytes);
    void *ctx;
    /* private */
    uint64_t pos;
    int read_error;
} berth_http_body_t;

/* Response body sink for downloads: 2xx bodies are written to fd at `off`
 * onwards (advancing `off`) and hashed into `hash` when set. Bodies of other
 * statuses are captured in the response as usual. */
typedef struct berth_http_sink {
    int fd;
    uint64_t off;
    berth_sha256_t *hash;
    void (*on_progress)(void *ctx, uint64_t request_bytes);
    void *ctx;
    /* private */
    uint64_t got;
    int write_error;
} berth_http_sink_t;

typedef struct berth_http_resp {
    long status;       /* 0 when no response arrived */
    long http_version; /* 1 or 2 */
    char *location;    /* raw header values or NULL */
    char *range;
    char *content_range;
    char *digest; /* Docker-Content-Digest */
    char *uuid;
    char *www_authenticate;
    int64_t content_length; /* -1 when absent */
    char *body;             /* captured body (up to 1 MiB), NUL-terminated, or NULL */
    size_t body_len;
    uint64_t upload_bytes; /* request body bytes sent */
} berth_http_resp_t;

/* libcurl's global state; also ignores SIGPIPE for the process. */
int berth_http_global_init(void);
void berth_http_global_cleanup(void);

/* 0, or BERTH_ERR (out of memory, libcurl refused an option). */
int berth_http_new(berth_http_t **out, const berth_http_options_t *o);
void berth_http_free(berth_http_t *h);

/* Performs one request. `headers`: NULL-terminated "Name: value" strings or
 * NULL. body and sink may be NULL. Returns 0 when a response arrived (any
 * status, in resp->status), BERTH_EUNAVAILABLE on a transport failure
 * (connection refused or cut, timeout, TLS), BERTH_EIO when the body could
 * not be read or the sink not written; the message is in berth_error_last().
 * resp is cleared first; free it with berth_http_resp_clear. */
int berth_http_request(berth_http_t *h, const char *method, const char *url, const char *const *headers,
                       berth_http_body_t *body, berth_http_sink_t *sink, berth_http_resp_t *resp);

void berth_http_resp_clear(berth_http_resp_t *r);

/* The error message of an OCI error body ("CODE: message"), or of a JSON
 * {"error": ...}, or the start of the body; "" when there is none. Writes
 * into buf and returns it. */
const char *berth_http_resp_error(const berth_http_resp_t *r, char *buf, size_t len);

#endif
