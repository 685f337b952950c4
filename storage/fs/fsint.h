/*
 * What the files of the filesystem backend share: the backend struct, path
 * and I/O helpers (fs.c), and the methods each file implements (objects in
 * fsobj.c, session data in fsdata.c, blobs and the table in fs.c).
 * Internal: nothing outside storage/fs/ includes it.
 */
#ifndef BERTH_STORAGE_FS_FSINT_H
#define BERTH_STORAGE_FS_FSINT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/config.h"
#include "storage/storage.h"

/* Longer than any path berth makes: a key of BERTH_OBJ_KEY_MAX bytes plus
 * its '~' and a temporary suffix. */
#define BERTH__FS_PATH_MAX 1024

typedef struct berth_fs {
    berth_storage_t super;
    char *root;
    int rootfd;
    berth_sync_mode_t sync;
    atomic_int direct; /* large writes bypass the page cache; 0 once refused */
} berth_fs_t;

static inline berth_fs_t *berth__fs_of(berth_storage_t *b)
{
    return (berth_fs_t *)b;
}

/* Maps an errno of operation `op` on `path` to a berth code, setting the
 * last error (ENOENT: BERTH_ENOTFOUND, ENOSPC/EDQUOT: BERTH_ENOSPACE, else
 * BERTH_EIO). */
int berth__fs_errno(int err, const char *op, const char *path);

/* snprintf into a BERTH__FS_PATH_MAX buffer; BERTH_EINVALID when too long. */
int berth__fs_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* mkdir -p of a path relative to the root; EEXIST is success. */
int berth__fs_mkdirs(berth_fs_t *fs, const char *rel);

/* fsync of a directory relative to the root. */
int berth__fs_sync_dir(berth_fs_t *fs, const char *rel);

/* pwrite of all len bytes at offset. */
int berth__fs_write_all(int fd, const void *buf, size_t len, uint64_t offset, const char *path);

/* pread of up to len bytes at offset, short only at the end of the file. */
int berth__fs_pread_full(int fd, void *buf, size_t len, uint64_t offset, const char *path, size_t *got);

/* A unique name for a temporary file beside `name`, in this process and
 * across processes: "<name>~tmp.<pid>.<tid>.<n>". The '~' keeps it from
 * ever being taken for an object key, or for a metadata file ("<key>~"). */
int berth__fs_tmp_name(char *out, const char *dir, const char *name);

/* Called by berth__fs_walk for each regular file under the walked
 * directory: its path relative to the root and its stat. Non-zero stops
 * the walk and is returned. */
typedef int (*berth__fs_walk_cb)(void *ctx, const char *rel, const struct stat *st);

/* Walks every regular file under directory `rel` (relative to the root),
 * at any depth ("" walks the whole root). A missing directory, or an entry
 * vanishing meanwhile, is not an error: listings race with deletes by
 * design. Directories for which `skip` (may be NULL) answers 1 are not
 * entered. */
int berth__fs_walk(berth_fs_t *fs, const char *rel, int (*skip)(const char *rel), berth__fs_walk_cb cb, void *ctx);

/* fsobj.c */
int berth__fs_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver);
int berth__fs_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                      berth_version_t *ver);
int berth__fs_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect);
int berth__fs_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx);

/* fsdata.c */
int berth__fs_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state);
int berth__fs_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                        berth_writer_t **out);
int berth__fs_writer_write(berth_writer_t *w, const void *buf, size_t len);
int berth__fs_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state);
int berth__fs_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                        size_t *got);
int berth__fs_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest);
int berth__fs_data_remove(berth_storage_t *b, const char *id, const char *state);
int berth__fs_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx);

/* fs.c: the path of blob `digest` ("blobs/sha256/<aa>/<hex>/data"). */
int berth__fs_blob_path(char *out, const char *digest);

#endif
