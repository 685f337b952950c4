/*
 * The session engine: the rules of resumable uploads, independent of HTTP and
 * of where bytes are stored.
 *
 * Every function here blocks on storage and must run on a worker thread,
 * never on an event loop. They are thread-safe: requests for one session are
 * serialised by the engine (a second writer finds the session busy), requests
 * for different sessions run in parallel.
 *
 * Invariant kept across crashes: a session's stored record never claims a
 * byte the storage does not hold. Bytes are stored first, the record is
 * replaced after; a crash in between leaves bytes the record does not claim,
 * which the next write overwrites.
 */
#ifndef BERTH_CORE_SESSION_H
#define BERTH_CORE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "storage/storage.h"

typedef struct berth_engine berth_engine_t;

typedef struct berth_engine_options {
    berth_storage_t *storage; /* borrowed; outlives the engine */
    uint64_t ttl_s;           /* idle seconds before a session expires */
} berth_engine_options_t;

int berth_engine_new(berth_engine_t **out, const berth_engine_options_t *o);
void berth_engine_free(berth_engine_t *e); /* NULL-safe */

/* Starts an OCI upload session in `repo`. *out (initialised by the caller)
 * receives the new record. */
int berth_oci_start(berth_engine_t *e, const char *repo, berth_record_t *out);

/* Loads session `id` of `repo` into *out. BERTH_ENOTFOUND when unknown,
 * finished, of another repository, or expired. */
int berth_oci_status(berth_engine_t *e, const char *repo, const char *id, berth_record_t *out);

/* Appends a chunk. When has_range is set, [first, last] must start at the
 * session's offset and match len. On success *out is the updated record.
 * BERTH_ERANGE when the chunk does not start at the offset (or its range
 * does not match its length), or when another request holds the session;
 * *out is then the current record, unchanged. BERTH_ENOTFOUND as above. */
int berth_oci_append(berth_engine_t *e, const char *repo, const char *id, int has_range, uint64_t first, uint64_t last,
                     const void *buf, size_t len, berth_record_t *out);

/* Completes the session with an optional last chunk (appended at the
 * offset) and makes it blob `digest`, linked into `repo`. BERTH_EDIGEST when
 * the content does not hash to `digest`: the session is unchanged (the last
 * chunk is not stored) and stays resumable. BERTH_EINVALID for a malformed
 * or unsupported digest. *out is the final record (offset = blob size). */
int berth_oci_finish(berth_engine_t *e, const char *repo, const char *id, const char *digest, const void *buf,
                     size_t len, berth_record_t *out);

/* Cancels the session and frees its bytes. BERTH_ENOTFOUND as above. */
int berth_oci_cancel(berth_engine_t *e, const char *repo, const char *id);

/* Stores a whole blob in one call (monolithic upload), verifying `digest`,
 * and links it into `repo`. BERTH_EDIGEST on mismatch (nothing stored). */
int berth_blob_put(berth_engine_t *e, const char *repo, const char *digest, const void *buf, size_t len);

/* Links blob `digest` into `repo` if repository `from` has it (or, when
 * from is NULL, if the blob is stored at all). BERTH_ENOTFOUND otherwise. */
int berth_blob_mount(berth_engine_t *e, const char *repo, const char *from, const char *digest);

/* Size of blob `digest` as seen from `repo`: BERTH_ENOTFOUND unless the
 * repository links it and the blob exists. */
int berth_blob_stat(berth_engine_t *e, const char *repo, const char *digest, uint64_t *size);

/* Reads part of a blob (after berth_blob_stat said the repository sees it). */
int berth_blob_read(berth_engine_t *e, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);

/* A URL where the client may GET the blob itself (S3 presigned, with
 * storage.s3.redirect), into url (cap bytes): 0; 1 when berth serves it. */
int berth_blob_url(berth_engine_t *e, const char *digest, char *url, size_t cap);

/* Removes every session idle for more than the TTL at time `now` (unix
 * seconds), and sessions whose record is unreadable. *purged (may be NULL)
 * receives how many were removed. */
int berth_engine_purge(berth_engine_t *e, int64_t now, size_t *purged);

/* Expiry time of a session (updated_at + ttl). */
int64_t berth_engine_expires_at(const berth_engine_t *e, const berth_record_t *rec);

#endif
