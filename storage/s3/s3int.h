/*
 * Internals shared by the S3 backend's files (s3.c: sessions; s3blob.c:
 * blobs, links, metadata). Not for use outside storage/s3/.
 */
#ifndef BERTH_STORAGE_S3_INT_H
#define BERTH_STORAGE_S3_INT_H

#include <pthread.h>
#include <stdint.h>

#include "storage/s3/s3client.h"
#include "storage/s3/s3ops.h"
#include "storage/storage.h"

#define S3__CACHE 256

typedef struct berth__s3_link {
    char hex[65];
    char key[S3__KEY_MAX];
    uint64_t size;
} berth__s3_link_t;

typedef struct berth_s3 {
    berth_storage_t super;
    berth_s3_client_t *c;
    char *prefix; /* "" or "root/" */
    uint64_t chunk;
    int redirect;

    pthread_mutex_t lock; /* cache */
    berth__s3_link_t cache[S3__CACHE];
} berth_s3_t;

/* out (S3__KEY_MAX bytes) = the root prefix + the formatted rest. */
int berth__s3_key(const berth_s3_t *s, char *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Blob `digest`'s link: ENOTFOUND when absent. fresh: ask S3 even when the
 * link is cached. out may be NULL. */
int berth__s3_link_fetch(berth_s3_t *s, const char *digest, berth__s3_link_t *out, int fresh);

/* Writes blob `digest`'s link naming object `datakey` of `size` bytes. */
int berth__s3_link_write(berth_s3_t *s, const char *digest, const char *datakey, uint64_t size);

/* Fills the blob, link, metadata, listing and redirect slots of the vtable. */
void berth__s3_blob_methods(berth_storage_t *b);

#endif
