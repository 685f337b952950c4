/*
 * The filesystem backend.
 *
 * Layout under the root directory:
 *   uploads/<id>/data          the session's bytes, written in place
 *   uploads/<id>/record.json   its record, replaced by write+fsync+rename
 *   blobs/sha256/<aa>/<hex>/data          content-addressed blobs
 *   repositories/<name>/_layers/sha256/<hex>/link   "sha256:<hex>\n"
 *   meta/<key>~                metadata object <key> (version 3), replaced
 *                              by write+rename; the '~' (not allowed in
 *                              keys) lets key "a/b" (file a/b~) and key
 *                              "a/b/c" (directory a/b/) coexist
 *
 * A blob is committed by renaming the session's data file into place, so
 * completion costs the same whatever the size.
 */
#ifndef BERTH_STORAGE_FS_H
#define BERTH_STORAGE_FS_H

#include "core/config.h"
#include "storage/storage.h"

typedef struct berth_fs_options {
    const char *root;       /* created if missing */
    berth_sync_mode_t sync; /* see core/config.h */
} berth_fs_options_t;

/* On failure *out is NULL and the thread's last error says why. */
int berth_storage_fs_new(berth_storage_t **out, const berth_fs_options_t *o);

#endif
