/*
 * The filesystem backend.
 *
 * Layout under the root directory (registry data where earlier versions
 * kept it, so existing stores keep working):
 *   <key>                      object <key>, replaced by write + rename:
 *     sessions/<id>            a session record
 *     repositories/<name>/_layers/sha256/<hex>/link   a repository link
 *   meta/<key>~                object meta/<key>; the '~' (never in a key)
 *                              lets "meta/a/b" (file meta/a/b~) and
 *                              "meta/a/b/c" (directory meta/a/b/) coexist
 *   .lock~                     the lock file of compare-and-swap (fsobj.c)
 *   uploads/<id>/data          a session's data, written in place
 *   blobs/sha256/<aa>/<hex>/data          content-addressed blobs
 *
 * Temporary files are "<name>~tmp.<pid>.<tid>.<n>" beside their target.
 * Keys whose first component is "uploads" or "blobs", and the key "meta",
 * are refused (BERTH_EINVALID): those names are the backend's own.
 *
 * A blob is committed by renaming the session's data file into place, so
 * completion costs the same whatever the size. An uploads/<id> directory
 * may still hold the record.json of an earlier berth; data_remove removes
 * it with the rest.
 *
 * Files: fs.c (helpers, blobs, the method table), fsobj.c (objects and
 * compare-and-swap), fsdata.c (session data, direct I/O); fsint.h is
 * internal.
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
