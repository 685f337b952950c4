/*
 * The request boundary: where a request's method, raw path, query and
 * headers become a parsed, validated berth_route_t, or are refused.
 *
 * Everything a client sends that reaches the engine or the registry is
 * checked here, once: repository names, session ids, digests, references,
 * part numbers, Content-Range against the body's length, Content-Digest,
 * query parameters, body limits, a part session's description. Handlers
 * (http/upload.c, blob.c, registry.c, sessions.c) trust what they get; the
 * engine asserts it.
 *
 * Routing uses the raw request target, never h2o's normalised path, so a
 * dot-segment or a percent-encoded slash cannot change which repository or
 * session a request names (names, ids and digests have no '%' or '.'-only
 * component in their grammar).
 */
#ifndef BERTH_HTTP_ROUTE_H
#define BERTH_HTTP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/engine.h"
#include "core/validate.h"
#include "http/error.h"

/* Longest reference, tag listing cursor, media type or artifactType taken. */
#define BERTH_ROUTE_PARAM_MAX 256
/* Largest part session description (a few hundred bytes in practice). */
#define BERTH_ROUTE_SESSION_BODY_MAX (64 * 1024)

typedef enum berth_route_kind {
    BERTH_ROUTE_BASE,              /* GET|HEAD /v2/ */
    BERTH_ROUTE_CATALOG,           /* GET|HEAD /v2/_catalog[?n=&last=] */
    BERTH_ROUTE_UPLOAD_START,      /* POST /v2/<name>/blobs/uploads/ */
    BERTH_ROUTE_UPLOAD_MOUNT,      /*   ...?mount=<digest>[&from=<name>] */
    BERTH_ROUTE_UPLOAD_MONOLITHIC, /*   ...?digest=<digest> with the whole blob */
    BERTH_ROUTE_UPLOAD_STATUS,     /* GET|HEAD /v2/<name>/blobs/uploads/<id> */
    BERTH_ROUTE_UPLOAD_CHUNK,      /* PATCH    ... [Content-Range] */
    BERTH_ROUTE_UPLOAD_FINISH,     /* PUT      ...?digest=<digest> [last chunk] */
    BERTH_ROUTE_UPLOAD_CANCEL,     /* DELETE   ... */
    BERTH_ROUTE_BLOB_GET,          /* GET|HEAD /v2/<name>/blobs/<digest> */
    BERTH_ROUTE_BLOB_DELETE,       /* DELETE   ... */
    BERTH_ROUTE_MANIFEST_GET,      /* GET|HEAD /v2/<name>/manifests/<reference> */
    BERTH_ROUTE_MANIFEST_PUT,      /* PUT      ... */
    BERTH_ROUTE_MANIFEST_DELETE,   /* DELETE   ... */
    BERTH_ROUTE_TAGS,              /* GET|HEAD /v2/<name>/tags/list[?n=&last=] */
    BERTH_ROUTE_REFERRERS,         /* GET|HEAD /v2/<name>/referrers/<digest>[?artifactType=] */
    BERTH_ROUTE_SESSION_CREATE,    /* POST   /uploads/sessions (JSON description) */
    BERTH_ROUTE_SESSION_STATUS,    /* GET    /uploads/sessions/<id> */
    BERTH_ROUTE_SESSION_ABORT,     /* DELETE /uploads/sessions/<id> */
    BERTH_ROUTE_SESSION_PART,      /* PUT    /uploads/sessions/<id>/parts/<n> [Content-Digest] */
    BERTH_ROUTE_SESSION_COMPLETE,  /* POST   /uploads/sessions/<id>/complete */
} berth_route_kind_t;

/* What the boundary reads of a request. Header values have base == NULL
 * when the header is absent. */
typedef struct berth_route_input {
    h2o_iovec_t method;
    h2o_iovec_t path; /* the raw request target: path and query */
    h2o_iovec_t content_range;
    h2o_iovec_t content_digest;
    h2o_iovec_t content_type;
    int64_t length;            /* body bytes; -1 when not known before the body arrives */
    h2o_iovec_t body;          /* the body when it is buffered; only a session description is read from it */
    const berth_config_t *cfg; /* http.maxchunksize, validation.manifests.maxsize, storage.delete.enabled */
} berth_route_input_t;

/* A parsed request. Self-contained (no pointer into the request), so a
 * task may keep a copy past the request's end. Fields a route does not use
 * are zero. */
typedef struct berth_route {
    berth_route_kind_t kind;
    berth_api_t api;
    int is_head;
    char repo[BERTH_NAME_MAX + 1]; /* valid name; "" for the catalog and part sessions without one */
    char id[BERTH_ID_LEN];         /* upload or part session id */
    char digest[BERTH_DIGEST_LEN]; /* a sha256 digest: the blob, ?digest=, ?mount=, a part session's expected one */
    char reference[BERTH_ROUTE_PARAM_MAX]; /* manifest tag or well-formed digest; the referrers' subject */
    char from[BERTH_NAME_MAX + 1];         /* mount: the source repository, "" when not given */
    berth_chunk_t chunk; /* uploads and parts: Content-Range (inclusive, matching length) and length */
    uint64_t part;       /* 1..BERTH_RECORD_MAX_PARTS */
    int has_sha256;
    unsigned char sha256[32]; /* Content-Digest's sha-256 */
    size_t n;                 /* listings: entries asked for, capped; SIZE_MAX when not given */
    int has_last;
    char last[BERTH_ROUTE_PARAM_MAX];
    int has_artifact_type;
    char artifact_type[BERTH_ROUTE_PARAM_MAX];
    int has_content_type;
    char content_type[BERTH_ROUTE_PARAM_MAX];    /* manifest PUT: the Content-Type as sent (truncated) */
    uint64_t total_parts, part_size, total_size; /* part session description (total_size 0: not given) */
} berth_route_t;

/* The boundary's input from an h2o request (the body as h2o buffered it). */
void berth_route_input_of(h2o_req_t *req, const berth_config_t *cfg, berth_route_input_t *in);

/* Parses and validates. 0 with *r filled; else a negative code with *err
 * (initialised by the caller, detail owned by it afterwards) saying what to
 * answer, and r->api set for the answer. Never touches storage. */
int berth_route_parse(const berth_route_input_t *in, berth_route_t *r, berth_http_error_t *err);

/* Finds query parameter `key` in the query (the text after '?') and
 * percent-decodes its value ('+' is a space) into out, NUL-terminated.
 * 1 when found, 0 when absent, -1 when malformed (bad escape, NUL) or
 * longer than outsz - 1. */
int berth_route_query(h2o_iovec_t query, const char *key, char *out, size_t outsz);

#endif
