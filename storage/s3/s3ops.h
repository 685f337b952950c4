/*
 * S3 operations on top of the client (s3client.h), for the backend (s3.c):
 * object get/put/head/delete, listings, and the multipart upload calls,
 * each parsing S3's XML answer. Internal to storage/s3/.
 *
 * Every function returns 0 or a code from core/error.h (as berth_s3_do:
 * BERTH_ENOTFOUND for a missing object or multipart upload, BERTH_EUNAVAILABLE
 * when S3 cannot be reached) and sets the thread's last error.
 */
#ifndef BERTH_STORAGE_S3_OPS_H
#define BERTH_STORAGE_S3_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/s3/s3client.h"

#define S3__KEY_MAX 1024
#define S3__ETAG_MAX 160
#define S3__UPLOADID_MAX 1024

/* GET of a whole (small) object: malloc'd, NUL-terminated copy in *buf;
 * etag (S3__ETAG_MAX bytes, may be NULL) its ETag. */
int berth__s3_get(berth_s3_client_t *c, const char *key, char **buf, size_t *len, char *etag);
/* Ranged GET of [first, first + len) into buf; *got 0 past the end. */
int berth__s3_get_range(berth_s3_client_t *c, const char *key, uint64_t first, void *buf, size_t len, size_t *got);
/* PUT of a whole object. expect NULL: unconditionally; "": only if absent
 * (If-None-Match: *); else only if its ETag is still `expect` (If-Match).
 * A failed condition is BERTH_ECONFLICT. etag (S3__ETAG_MAX bytes, may be
 * NULL) receives the new ETag. */
int berth__s3_put(berth_s3_client_t *c, const char *key, const void *buf, size_t len, const char *type,
                  const char *expect, char *etag);
/* HEAD; *size and etag (S3__ETAG_MAX bytes) may be NULL. */
int berth__s3_head(berth_s3_client_t *c, const char *key, uint64_t *size, char *etag);
/* DELETE; an absent key is success. */
int berth__s3_delete(berth_s3_client_t *c, const char *key);
/* DELETE with If-Match: BERTH_ENOTFOUND when absent, BERTH_ECONFLICT when
 * its ETag is not `etag`. */
int berth__s3_delete_if(berth_s3_client_t *c, const char *key, const char *etag);
/* DeleteObjects, 1,000 keys per request. */
int berth__s3_delete_many(berth_s3_client_t *c, char **keys, size_t n);

/* ListObjectsV2 of `prefix`: cb gets every key, its size and last-modified
 * time; a non-zero return stops the walk and is returned. */
typedef int (*berth__s3_list_cb)(void *ctx, const char *key, uint64_t size, int64_t mtime);
int berth__s3_list(berth_s3_client_t *c, const char *prefix, berth__s3_list_cb cb, void *ctx);

/* CreateMultipartUpload: upload_id gets S3__UPLOADID_MAX bytes at most. */
int berth__s3_mpu_create(berth_s3_client_t *c, const char *key, char *upload_id);
/* UploadPart n; etag gets S3__ETAG_MAX bytes at most. ENOTFOUND when the
 * upload is gone. */
int berth__s3_mpu_part(berth_s3_client_t *c, const char *key, const char *upload_id, uint64_t n, const void *buf,
                       size_t len, char *etag);
/* CompleteMultipartUpload of parts 1..n (a 200 carrying <Error> fails too);
 * ENOTFOUND when the upload is gone (completed or aborted before). */
int berth__s3_mpu_complete(berth_s3_client_t *c, const char *key, const char *upload_id, const char *const *etags,
                           size_t n);
int berth__s3_mpu_abort(berth_s3_client_t *c, const char *key, const char *upload_id);
/* ListParts of parts 1..total: etags[(n-1) * S3__ETAG_MAX], sizes[n-1];
 * *count how many are there. */
int berth__s3_mpu_list_parts(berth_s3_client_t *c, const char *key, const char *upload_id, uint64_t total, char *etags,
                             uint64_t *sizes, uint64_t *count);
/* ListMultipartUploads under `prefix`: cb(ctx, key, upload_id, initiated
 * as unix seconds). */
typedef int (*berth__s3_uploads_cb)(void *ctx, const char *key, const char *upload_id, int64_t initiated);
int berth__s3_mpu_list(berth_s3_client_t *c, const char *prefix, berth__s3_uploads_cb cb, void *ctx);

#endif
