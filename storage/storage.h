/*
 * The storage vtable: how the session engine stores bytes, session records,
 * blobs and repository links, whatever the backend.
 *
 * A backend is a struct whose first member is a berth_storage_t (`super`),
 * its own state following. The core never calls through these pointers
 * directly: it uses the berth_storage_*() wrappers below, which check the
 * contract and are the one place where tests inject faults.
 *
 * Methods are only ever appended; each group is marked with the version that
 * added it, and `version` says which groups a backend fills in.
 *
 * Every method returns 0 or a code from core/error.h and sets the thread's
 * last error on failure. Methods are called from worker threads, several at
 * a time: a backend must be thread-safe. The engine guarantees that at most
 * one upload_write/upload_commit/upload_remove runs per session at a time.
 *
 * Identifiers reaching a backend are validated by the engine first:
 * ids by berth_id_valid, digests by berth_digest_valid, repositories by
 * berth_name_valid.
 */
#ifndef BERTH_STORAGE_STORAGE_H
#define BERTH_STORAGE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/record.h"

#define BERTH_STORAGE_VERSION 4

typedef struct berth_storage berth_storage_t;

/* Called by list methods for each entry; a non-zero return stops the walk
 * and is returned by the list method. */
typedef int (*berth_storage_list_cb)(void *ctx, const char *id);

/* Version 3: called by blob_list for each stored blob, and by link_list for
 * each repository link. `mtime` is the unix time (seconds) the object was
 * last written (link_put of an existing link counts as a write); a
 * non-zero return stops the walk and is returned by the list method. */
typedef int (*berth_storage_blob_cb)(void *ctx, const char *digest, uint64_t size, int64_t mtime);
typedef int (*berth_storage_link_cb)(void *ctx, const char *repo, const char *digest, int64_t mtime);

/* Longest metadata key and largest metadata value (version 3). */
#define BERTH_META_KEY_MAX 512
#define BERTH_META_VALUE_MAX (1024 * 1024)

struct berth_storage {
    int version;      /* BERTH_STORAGE_VERSION the backend implements */
    const char *name; /* "filesystem", "s3" */

    /* --- version 1 --- */

    /* Frees the backend and everything it holds. Must accept a backend whose
     * constructor failed half way. */
    void (*free)(berth_storage_t *b);

    /* Session records: opaque bytes (core/record.c encodes them).
     * record_get: malloc'd copy into *buf (caller frees); BERTH_ENOTFOUND.
     * record_put: creates or atomically replaces the record: a reader (or a
     *   restart after kill -9) sees either the old or the new one, whole.
     * record_list: calls cb with the id of every stored record. */
    int (*record_get)(berth_storage_t *b, const char *id, char **buf, size_t *len);
    int (*record_put)(berth_storage_t *b, const char *id, const char *buf, size_t len);
    int (*record_list)(berth_storage_t *b, berth_storage_list_cb cb, void *ctx);

    /* Session data.
     * upload_create: makes room for a new session's bytes; may set
     *   rec->backend. Called before the first record_put.
     * upload_write: stores len bytes at byte `offset` of the session (for
     *   part sessions, offset = (n-1) * part_size). When it returns 0 the
     *   bytes are stored as durably as the backend's sync policy promises;
     *   it may update rec->backend, which the engine then saves.
     * upload_commit: makes bytes [0, rec->offset) of the session the blob
     *   `digest` (already verified by the engine); if that blob exists the
     *   session's bytes are dropped instead. Afterwards the session's data
     *   is gone; its record is removed by the engine.
     * upload_remove: frees the session's data and its record; `rec` may be
     *   NULL when the record is unreadable. BERTH_ENOTFOUND if nothing was
     *   there. */
    int (*upload_create)(berth_storage_t *b, berth_record_t *rec);
    int (*upload_write)(berth_storage_t *b, berth_record_t *rec, uint64_t offset, const void *buf, size_t len);
    int (*upload_commit)(berth_storage_t *b, berth_record_t *rec, const char *digest);
    int (*upload_remove)(berth_storage_t *b, const char *id, berth_record_t *rec);

    /* Content-addressed blobs.
     * blob_stat: BERTH_ENOTFOUND if absent.
     * blob_read: up to len bytes from `offset` into buf, *got set (0 at end).
     * blob_remove: BERTH_ENOTFOUND if absent. */
    int (*blob_stat)(berth_storage_t *b, const char *digest, uint64_t *size);
    int (*blob_read)(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);
    int (*blob_remove)(berth_storage_t *b, const char *digest);

    /* Repository links: which repositories may see which blobs.
     * link_put is idempotent; link_get answers 0 or BERTH_ENOTFOUND. */
    int (*link_put)(berth_storage_t *b, const char *repo, const char *digest);
    int (*link_get)(berth_storage_t *b, const char *repo, const char *digest);
    int (*link_remove)(berth_storage_t *b, const char *repo, const char *digest);

    /* --- version 2: part-numbered sessions (core/parts.h) --- */

    /* Part sessions (rec->kind == BERTH_SESSION_PARTS) store part n (1-based)
     * of rec->total_parts with upload_write at offset (n-1) * rec->part_size;
     * every part but the last is exactly part_size bytes. A backend derives
     * the part number from offset / part_size (S3: part n is multipart part
     * n). Parts of one session are written concurrently, at most one write
     * per part number at a time; the same part may be written again (the
     * last write wins). The engine passes each write a copy of the record:
     * changes a write makes to rec->backend are NOT saved for part sessions,
     * so a backend keeps no per-part state in the record (S3 lists its parts
     * at completion). upload_commit then gets rec->offset = the object's
     * size.
     *
     * upload_read: up to len bytes of the session's stored data from
     *   `offset` into buf, *got set (0 at the end of what is stored). The
     *   engine reads only ranges it has stored and recorded: to check a
     *   re-sent part and to hash, at completion, the bytes it could not
     *   hash as they arrived. Optional: without it re-sent parts are always
     *   rewritten and completing an out-of-order session fails.
     * upload_parts_check: optional; BERTH_EINVALID (with a message the
     *   client sees) when the backend cannot store parts of this layout (S3:
     *   parts under 5 MiB but the last). Called before upload_create. */
    int (*upload_read)(berth_storage_t *b, berth_record_t *rec, uint64_t offset, void *buf, size_t len, size_t *got);
    int (*upload_parts_check)(berth_storage_t *b, uint64_t part_size, uint64_t total_parts);

    /* --- version 3: registry metadata (core/registry.h) and listings for gc --- */

    /* Metadata: small objects (at most BERTH_META_VALUE_MAX bytes) under
     * keys. A key is 1..BERTH_META_KEY_MAX bytes of components separated by
     * single '/', each component 1+ characters of [A-Za-z0-9._-] and not
     * "." or ".."; no leading or trailing '/'. Keys are case-sensitive. A key
     * may also be a proper prefix of another ("a/b" and "a/b/c" both exist):
     * the namespace is flat, as S3's, and a backend with directories must
     * encode it (the filesystem appends '~' to the file of a key). The
     * wrappers check keys and prefixes.
     * meta_get: malloc'd copy into *buf (caller frees; NUL-terminated past
     *   *len for convenience); BERTH_ENOTFOUND if absent.
     * meta_put: creates or replaces the object whole: a reader sees the old
     *   value or the new one, never a mix or a part, also after a crash.
     * meta_delete: BERTH_ENOTFOUND if absent.
     * meta_list: calls cb with the full key of every object whose key starts
     *   with `prefix`, at any depth, each once, in no particular order.
     *   `prefix` is "" (everything) or a valid key followed by '/'. Objects
     *   put or deleted during the walk may or may not be seen. 0 (not
     *   ENOTFOUND) when nothing matches. */
    int (*meta_get)(berth_storage_t *b, const char *key, char **buf, size_t *len);
    int (*meta_put)(berth_storage_t *b, const char *key, const char *buf, size_t len);
    int (*meta_delete)(berth_storage_t *b, const char *key);
    int (*meta_list)(berth_storage_t *b, const char *prefix, berth_storage_list_cb cb, void *ctx);

    /* Listings for garbage collection, in no particular order; entries
     * created or removed during the walk may or may not be seen.
     * gc (core/gc.h) runs in its own process while servers use the same
     * storage, and removes blobs and links with blob_remove/link_remove:
     * from version 3 on, no method may answer from memory what another
     * process can change (blob_stat and link_get must see a removal made
     * elsewhere; a blob's bytes never change while it exists).
     * blob_list: every stored blob (committed, not session data).
     * link_list: every repository link (link_put not yet link_removed). */
    int (*blob_list)(berth_storage_t *b, berth_storage_blob_cb cb, void *ctx);
    int (*link_list)(berth_storage_t *b, berth_storage_link_cb cb, void *ctx);

    /* --- version 4: redirects --- */

    /* blob_url: optional; a URL (NUL-terminated, at most cap bytes) where a
     * client can GET blob `digest` itself for a while (S3: a presigned URL,
     * when storage.s3.redirect is on). 1 when the backend serves the blob
     * itself (nothing written), BERTH_ENOTFOUND when the blob is absent. */
    int (*blob_url)(berth_storage_t *b, const char *digest, char *url, size_t cap);
};

/* Creates the backend named by cfg->storage_driver with the options of its
 * config section. BERTH_EINVALID for an unknown driver. */
int berth_storage_open(berth_storage_t **out, const berth_config_t *cfg);

/* NULL-safe. */
void berth_storage_free(berth_storage_t *b);

/* The wrappers the engine calls; each checks its arguments, then calls the
 * backend. See the methods above for contracts. */
int berth_storage_record_get(berth_storage_t *b, const char *id, char **buf, size_t *len);
int berth_storage_record_put(berth_storage_t *b, const char *id, const char *buf, size_t len);
int berth_storage_record_list(berth_storage_t *b, berth_storage_list_cb cb, void *ctx);
int berth_storage_upload_create(berth_storage_t *b, berth_record_t *rec);
int berth_storage_upload_write(berth_storage_t *b, berth_record_t *rec, uint64_t offset, const void *buf, size_t len);
int berth_storage_upload_commit(berth_storage_t *b, berth_record_t *rec, const char *digest);
int berth_storage_upload_remove(berth_storage_t *b, const char *id, berth_record_t *rec);
int berth_storage_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size);
int berth_storage_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);
int berth_storage_blob_remove(berth_storage_t *b, const char *digest);
int berth_storage_link_put(berth_storage_t *b, const char *repo, const char *digest);
int berth_storage_link_get(berth_storage_t *b, const char *repo, const char *digest);
int berth_storage_link_remove(berth_storage_t *b, const char *repo, const char *digest);
/* Version 2. upload_parts_check answers 0 when the backend lacks it. */
int berth_storage_upload_read(berth_storage_t *b, berth_record_t *rec, uint64_t offset, void *buf, size_t len,
                              size_t *got);
int berth_storage_upload_parts_check(berth_storage_t *b, uint64_t part_size, uint64_t total_parts);
/* Version 3. A backend of an older version answers "not supported". */
int berth_storage_meta_get(berth_storage_t *b, const char *key, char **buf, size_t *len);
int berth_storage_meta_put(berth_storage_t *b, const char *key, const char *buf, size_t len);
int berth_storage_meta_delete(berth_storage_t *b, const char *key);
int berth_storage_meta_list(berth_storage_t *b, const char *prefix, berth_storage_list_cb cb, void *ctx);
int berth_storage_blob_list(berth_storage_t *b, berth_storage_blob_cb cb, void *ctx);
int berth_storage_link_list(berth_storage_t *b, berth_storage_link_cb cb, void *ctx);
/* Version 4. Answers 1 (serve it yourself) when the backend lacks it. */
int berth_storage_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap);

/* 1 if `key` is a valid metadata key (see meta_get), else 0. */
int berth_meta_key_valid(const char *key, size_t len);

/* Fault injection for tests: when the environment variable
 * BERTH_FAULT="<method>:<code>[:<count>]" is set at startup (for example
 * "upload_write:-6:1" or "record_put:-11"), the wrapper of <method> fails
 * with <code> instead of calling the backend, <count> times (default:
 * always). Read once by berth_storage_open. */
void berth_storage_fault_reset(const char *spec);

#endif
