/*
 * The client's resume state: one small JSON file per unfinished upload
 * under $XDG_CACHE_HOME/berth/uploads/ (else ~/.cache/berth/uploads/),
 * named by a hash of the upload's identity (mode, registry, repository, the
 * file's absolute path, size and mtime), holding the session URL and, in OCI
 * mode, the SHA-256 state of the bytes the server acknowledged. A changed
 * file (size or mtime) gets a new name, so a stale session is never
 * continued with other bytes.
 *
 * Beside it, digests/<hash of path, size, mtime> remembers the digest of a
 * file pushed or pulled before, so the next push can HEAD the blob without
 * reading the file first.
 */
#ifndef BERTH_CLIENT_STATE_H
#define BERTH_CLIENT_STATE_H

#include <stdint.h>

#include "core/digest.h"

typedef struct berth_upload_state {
    char *url;                         /* session URL (absolute) */
    uint64_t offset;                   /* OCI: bytes the server acknowledged */
    char hash[BERTH_SHA256_STATE_LEN]; /* OCI: berth_sha256_save of those bytes, "" when none */
    char digest[BERTH_DIGEST_LEN];     /* parts: digest of the whole file, "" when unknown */
    uint64_t part_size;                /* parts */
    uint64_t total_parts;              /* parts */
} berth_upload_state_t;

/* The directory for state files (created with its parents, mode 0700).
 * malloc'd into *out. */
int berth_state_dir(char **out, const char *sub);

/* Path of the state file of one upload: <dir>/uploads/<64 hex>.json.
 * `file` should be an absolute path. malloc'd. */
int berth_state_path(char **out, const char *mode, const char *base, const char *repo, const char *file, uint64_t size,
                     int64_t mtime_ns);

/* load, save and remove accept a NULL path (no place for state): nothing
 * is found, saved or removed. */

/* 0; BERTH_ENOTFOUND when there is no file; BERTH_EINVALID when it is
 * unreadable or malformed (the caller starts over). */
int berth_state_load(const char *path, berth_upload_state_t *st);

/* Writes atomically (temporary file, rename). */
int berth_state_save(const char *path, const berth_upload_state_t *st);

int berth_state_remove(const char *path);
void berth_upload_state_clear(berth_upload_state_t *st);

/* The digest cache: remembered digest of (file, size, mtime). get returns
 * BERTH_ENOTFOUND when none. */
int berth_digest_cache_get(const char *file, uint64_t size, int64_t mtime_ns, char out[BERTH_DIGEST_LEN]);
int berth_digest_cache_put(const char *file, uint64_t size, int64_t mtime_ns, const char *digest);

#endif
