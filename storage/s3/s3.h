/*
 * The S3 backend: everything about a session kept in the bucket, so that
 * any berth instance on the bucket can resume any session.
 *
 * Keys under the root directory (storage.s3.rootdirectory):
 *   <key>                        object <key> (session records
 *                                "sessions/<id>", repository links, "meta/..."),
 *                                stored as it is; its ETag is its version
 *   uploads/<id>/tail/<name>     staged bytes of an append session not yet a
 *                                whole part, each written once (without the
 *                                marker below: debris of a write into data
 *                                removed or committed, for data_remove)
 *   uploads/<id>/session         the session's data exists, and blobs/data/<id>
 *                                is not (yet) a blob
 *   blobs/data/<id>              the multipart upload of session <id>, and
 *                                after completion the blob's bytes
 *   blobs/sha256/<aa>/<hex>/link {"key": "blobs/data/<id>", "size": N}:
 *                                the content address of a blob
 * "uploads/" and "blobs/" are the backend's own: no object key enters them.
 * The session state (the UploadId, the sent parts and their ETags, the
 * staged pieces) is a JSON string the engine keeps in the session record.
 *
 * Completion therefore moves no blob bytes: CompleteMultipartUpload under
 * the session's own key and a small link object naming it.
 *
 * Files: s3.c (objects, the method table, lifecycle), s3data.c (session
 * writes and reads), s3commit.c (commit, removal, listing of sessions),
 * s3state.c (the session state), s3blob.c (blobs), s3ops.c (one function
 * per S3 call), s3client.c (libcurl SigV4 requests, retries, presigned
 * URLs), s3xml.c (answers); s3int.h is internal.
 */
#ifndef BERTH_STORAGE_S3_H
#define BERTH_STORAGE_S3_H

#include <stdint.h>

#include "storage/storage.h"

#define BERTH_S3_MIN_PART ((uint64_t)5 << 20)
#define BERTH_S3_MAX_PART ((uint64_t)5 << 30)
#define BERTH_S3_MAX_PARTS 10000

typedef struct berth_s3_options {
    const char *bucket;         /* required */
    const char *region;         /* default us-east-1 */
    const char *regionendpoint; /* "http://host:port": path-style requests to it */
    const char *accesskey;      /* required (the caller applies the environment fallback) */
    const char *secretkey;
    const char *rootdirectory; /* key prefix; NULL or "" for none */
    int secure;                /* https when the endpoint names no scheme */
    uint64_t chunksize;        /* S3 part size of OCI sessions, >= 5 MiB */
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    int max_retries;
    int redirect; /* blob GETs answered with a presigned URL (blob_url) */
} berth_s3_options_t;

/* On failure *out is NULL and the thread's last error says why. Makes no
 * request: an unreachable S3 shows up as BERTH_EUNAVAILABLE on use. */
int berth_storage_s3_new(berth_storage_t **out, const berth_s3_options_t *o);

#endif
