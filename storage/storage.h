/*
 * The storage contract: what a backend stores for berth, and nothing more.
 *
 * A backend is a byte store, in the spirit of SQLite's sqlite3_io_methods
 * and libgit2's git_odb_backend. It keeps four kinds of things and
 * interprets none of them:
 *
 *   objects       small named values (session records, repository links,
 *                 registry metadata), each with a version for
 *                 compare-and-swap;
 *   session data  the bytes of an unfinished upload, at offsets, with an
 *                 opaque state string that only the backend reads (the
 *                 engine keeps it in the session record and hands it back);
 *   blobs         finished content, by digest;
 *   nothing else: what a record, a link or a manifest means is the
 *                 engine's business (core/), never the backend's.
 *
 * A backend is a struct whose first member is a berth_storage_t (`super`),
 * its own state following; `methods` points at one static const table
 * shared by every instance. The core never calls through the table: it
 * uses the berth_storage_*() wrappers below, which check the contract and
 * are the one place where tests inject faults.
 *
 * Every method returns 0 or a code from core/error.h and sets the calling
 * thread's last error on failure. Methods are called from worker threads,
 * several at a time, and from several processes sharing one store: a
 * backend must be thread-safe and must not answer from memory what another
 * process can change.
 *
 * storage/ includes nothing from core/ but error.h and log.h (errors and
 * logging), config.h (the options of its section), validate.h (to skip
 * strangers in listings) and digest.h (S3's content checksums).
 */
#ifndef BERTH_STORAGE_STORAGE_H
#define BERTH_STORAGE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

typedef struct berth_storage berth_storage_t;
typedef struct berth_storage_methods berth_storage_methods_t;
typedef struct berth_writer berth_writer_t;

/* ---- objects ---------------------------------------------------------------
 *
 * Keys are 1..BERTH_OBJ_KEY_MAX bytes of components separated by single '/',
 * each component 1+ characters of [A-Za-z0-9._-] and not "." or ".."; no
 * leading or trailing '/'; case-sensitive. Keys under "meta/" may nest (both
 * "meta/a/b" and "meta/a/b/c" can exist: a backend with directories encodes
 * that, as the filesystem does with a '~' suffix); elsewhere no key is a
 * proper prefix of another key followed by '/'. Keys whose first component
 * is "uploads" or "blobs" are the backends' own: BERTH_EINVALID. Values are
 * at most BERTH_OBJ_VALUE_MAX bytes; a larger one is BERTH_ETOOLARGE. */
#define BERTH_OBJ_KEY_MAX 768
#define BERTH_OBJ_VALUE_MAX (4 * 1024 * 1024)

/* The version of a stored object, as its backend names it (filesystem: the
 * file's identity; S3: the ETag). Opaque: only the backend that produced it
 * compares it. An empty tag (tag[0] == '\0') means "absent". Equal contents
 * may have equal versions (S3: the ETag is their MD5), so a put of the same
 * bytes may keep the version: compare-and-swap then compares values, which
 * is as safe. */
typedef struct berth_version {
    char tag[96];
} berth_version_t;

/* Called by obj_list for each object: its full key, size and last write
 * (unix seconds). A non-zero return stops the walk and is returned. */
typedef int (*berth_obj_cb)(void *ctx, const char *key, uint64_t size, int64_t mtime);

/* ---- session data ----------------------------------------------------------
 *
 * How a session's bytes arrive, fixed when its data is created:
 *   unit == 0  the bytes are appended in order: each write starts where the
 *              bytes the engine has recorded end, one write at a time;
 *   unit > 0   `units` units of `unit` bytes (the last may be shorter); unit
 *              k (0-based) is written whole at offset k * unit, in any order
 *              and in parallel (never two writes of one unit at a time),
 *              and may be written again: the last complete write wins. */
typedef struct berth_layout {
    uint64_t unit;
    uint64_t units;
} berth_layout_t;

/* Called by data_list for each session that has data: its id and the unix
 * time of its last write. */
typedef int (*berth_data_cb)(void *ctx, const char *id, int64_t mtime);

/* ---- blobs ---------------------------------------------------------------- */

/* Called by blob_list for each stored blob. */
typedef int (*berth_blob_cb)(void *ctx, const char *digest, uint64_t size, int64_t mtime);

/* An open write into a session's data (data_open .. writer_close). */
struct berth_writer {
    berth_storage_t *storage;
};

struct berth_storage_methods {
    const char *name; /* "filesystem", "s3" */

    /* Frees the backend. Must accept one whose constructor failed half way. */
    void (*free)(berth_storage_t *b);

    /* --- objects --- */

    /* obj_get: a malloc'd copy into *buf (NUL-terminated past *len; caller
     *   frees) and, when ver is not NULL, its version. BERTH_ENOTFOUND.
     * obj_put: stores the value whole: a reader sees the old value or the
     *   new one, never a mix, also after kill -9 or a power loss (with sync
     *   "always"). expect NULL: unconditionally. expect with an empty tag:
     *   only if the key is absent. Otherwise only if the stored version is
     *   still *expect (a key that is absent fails that condition). A failed
     *   condition is BERTH_ECONFLICT and changes nothing. The check and the
     *   write are one atomic step against every other writer of the store,
     *   in any process. ver (may be NULL, may point at *expect) receives
     *   the new version.
     * obj_delete: BERTH_ENOTFOUND if absent, with or without expect;
     *   otherwise expect as for obj_put. An expect with an empty tag means
     *   nothing useful for a delete (backends answer BERTH_ECONFLICT when
     *   the key is there).
     * obj_list: every object whose key starts with `prefix` ("" or a valid
     *   key followed by '/'), each once, in no particular order; objects
     *   put or deleted meanwhile may or may not be seen. 0 when none. */
    int (*obj_get)(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver);
    int (*obj_put)(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                   berth_version_t *ver);
    int (*obj_delete)(berth_storage_t *b, const char *key, const berth_version_t *expect);
    int (*obj_list)(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx);

    /* --- session data --- */

    /* data_create: makes room for session `id`'s bytes, laid out as
     *   `layout`; *state (malloc'd, NUL-terminated, caller frees; may be
     *   NULL when the backend keeps none) is the state to pass to every
     *   later call. BERTH_EINVALID, with a message for the client, when the
     *   backend cannot store that layout (S3: parts under 5 MiB).
     * data_open: starts a write at `offset` (see berth_layout_t) given the
     *   current state; `hint` is how many bytes the caller expects to write
     *   (0: unknown). The write then takes pieces (writer_write) and ends
     *   with writer_close, which always frees the writer.
     * writer_write: takes `len` bytes following what the writer took.
     * writer_close: keep == 0 discards the write: whatever it stored is not
     *   claimed and may be overwritten. keep == 1 makes the bytes taken
     *   durable as the sync policy promises and sets *kept to how many of
     *   them, from `offset`, are stored (all of them unless the backend
     *   could keep only a prefix); for append layouts *state (may be NULL:
     *   unchanged) is the state to pass from now on. Unit layouts never
     *   change the state (their writes run in parallel).
     *   A write into data that was removed or committed (a stale state, or
     *   a writer racing data_remove or data_commit) either fails with
     *   BERTH_ENOTFOUND, at data_open, writer_write or writer_close, or is
     *   accepted and leaves only debris: bytes no state names, under the
     *   session's id, which data_list still lists and data_remove (with or
     *   without a state) deletes, so the purge finds them. It never changes
     *   a blob, nor what data_read answers for another session. (The
     *   filesystem refuses such a write; S3 accepts one that only stages a
     *   tail piece, sparing a request per write. The engine does not need
     *   the refusal: it stores the session record with compare-and-swap
     *   after every write, so a write into removed data is never claimed.)
     * data_read: up to len bytes of stored session data from `offset`,
     *   *got set (0 at the end of what is stored). The engine reads only
     *   bytes it recorded. For a unit layout it may make the units final
     *   (S3 completes the upload to read it): the engine reads units back
     *   only once every unit is stored.
     * data_commit: makes bytes [0, size) of the session blob `digest`
     *   (verified by the engine); if that blob exists, drops the session's
     *   copy instead. Afterwards the session's data is gone. Called again
     *   with the same state after a success (a crash before the record was
     *   updated), it answers 0 when the blob is there.
     * data_remove: frees the session's data, and the debris of writes
     *   into it after a removal or commit; `state` may be NULL (record
     *   unreadable or missing). Never removes a blob data_commit made, even
     *   given a state from before that commit. BERTH_ENOTFOUND if nothing
     *   was there.
     * data_list: every session that has data (for the purge of data whose
     *   record is gone). */
    int (*data_create)(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state);
    int (*data_open)(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                     berth_writer_t **out);
    int (*writer_write)(berth_writer_t *w, const void *buf, size_t len);
    int (*writer_close)(berth_writer_t *w, int keep, uint64_t *kept, char **state);
    int (*data_read)(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                     size_t *got);
    int (*data_commit)(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest);
    int (*data_remove)(berth_storage_t *b, const char *id, const char *state);
    int (*data_list)(berth_storage_t *b, berth_data_cb cb, void *ctx);

    /* --- blobs --- */

    /* blob_stat: BERTH_ENOTFOUND if absent.
     * blob_read: up to len bytes from `offset` into buf, *got set (0 at end).
     * blob_remove: BERTH_ENOTFOUND if absent.
     * blob_list: every stored blob, in no particular order.
     * blob_url: optional; a URL (NUL-terminated, at most cap bytes) where a
     *   client can GET the blob itself for a while (S3 presigned, with
     *   storage.s3.redirect). 1 when the backend serves the blob itself
     *   (nothing written), BERTH_ENOTFOUND when absent. */
    int (*blob_stat)(berth_storage_t *b, const char *digest, uint64_t *size);
    int (*blob_read)(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);
    int (*blob_remove)(berth_storage_t *b, const char *digest);
    int (*blob_list)(berth_storage_t *b, berth_blob_cb cb, void *ctx);
    int (*blob_url)(berth_storage_t *b, const char *digest, char *url, size_t cap);
};

struct berth_storage {
    const berth_storage_methods_t *methods;
};

/* Creates the backend named by cfg->storage_driver with the options of its
 * config section. BERTH_EINVALID for an unknown driver. */
int berth_storage_open(berth_storage_t **out, const berth_config_t *cfg);

/* NULL-safe. */
void berth_storage_free(berth_storage_t *b);

/* "filesystem", "s3". */
const char *berth_storage_name(const berth_storage_t *b);

/* The wrappers the core calls; each checks the contract (keys, arguments,
 * optional methods), injects configured faults, then calls the backend. */
int berth_storage_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver);
int berth_storage_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len,
                          const berth_version_t *expect, berth_version_t *ver);
int berth_storage_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect);
int berth_storage_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx);

int berth_storage_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state);
int berth_storage_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                            berth_writer_t **out);
int berth_storage_writer_write(berth_writer_t *w, const void *buf, size_t len);
int berth_storage_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state);
int berth_storage_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf,
                            size_t len, size_t *got);
int berth_storage_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size,
                              const char *digest);
int berth_storage_data_remove(berth_storage_t *b, const char *id, const char *state);
int berth_storage_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx);

int berth_storage_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size);
int berth_storage_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len,
                            size_t *got);
int berth_storage_blob_remove(berth_storage_t *b, const char *digest);
int berth_storage_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx);
/* Answers 1 (serve it yourself) when the backend lacks blob_url. */
int berth_storage_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap);

/* 1 if `key` is a valid object key (see above), else 0. */
int berth_obj_key_valid(const char *key, size_t len);

/* Fault injection for tests: BERTH_FAULT="<method>[@<key prefix>]:<code>
 * [:<count>],..." (for example "writer_close:-6:1" or
 * "obj_put@sessions/:-11") makes the wrapper of <method> fail with <code>
 * instead of calling the backend, <count> times (default: always); with
 * @<prefix>, only for object keys starting with it. Read once by
 * berth_storage_open; berth_storage_fault_reset replaces it (tests). */
void berth_storage_fault_reset(const char *spec);

#endif
