/*
 * Internals shared by the S3 backend's files: the backend struct, its key
 * helper, the blob links (s3blob.c), the session state (s3state.c) and the
 * methods each file implements for the one vtable in s3.c. Not for use
 * outside storage/s3/.
 */
#ifndef BERTH_STORAGE_S3_INT_H
#define BERTH_STORAGE_S3_INT_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

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

static inline berth_s3_t *berth__s3_of(berth_storage_t *b)
{
    return (berth_s3_t *)b;
}

/* out (S3__KEY_MAX bytes) = the root prefix + the formatted rest. */
int berth__s3_key(const berth_s3_t *s, char *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- blobs (s3blob.c) ---- */

/* Blob `digest`'s link: ENOTFOUND when absent. fresh: ask S3 even when the
 * link is cached. out may be NULL. */
int berth__s3_link_fetch(berth_s3_t *s, const char *digest, berth__s3_link_t *out, int fresh);

/* Writes blob `digest`'s link naming object `datakey` of `size` bytes. */
int berth__s3_link_write(berth_s3_t *s, const char *digest, const char *datakey, uint64_t size);

int berth__s3_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size);
int berth__s3_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);
int berth__s3_blob_remove(berth_storage_t *b, const char *digest);
int berth__s3_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx);
int berth__s3_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap);

/* ---- session state (s3state.c) ---- */

/* A staged piece of an append session's tail: bytes [off, off + len) in
 * the object uploads/<id>/tail/<name>, written once by one writer. */
#define S3__PIECE_NAME 48
typedef struct berth__s3_piece {
    uint64_t off, len;
    char name[S3__PIECE_NAME];
} berth__s3_piece_t;

/* The state string, parsed. Append layouts (unit == 0): parts 1..n of
 * exactly `chunk` bytes are sent (their ETags in `etags`), the bytes from
 * n * chunk to `size` are staged pieces (a later piece wins where two
 * overlap), and `stale` names pieces no longer needed, deleted once the
 * engine has saved this state. Unit layouts: unit k is S3 part k + 1. */
typedef struct berth__s3_state {
    char upload_id[S3__UPLOADID_MAX];
    uint64_t unit, units;
    uint64_t chunk, size;
    json_t *etags;
    berth__s3_piece_t *pieces;
    size_t npieces;
    char (*stale)[S3__PIECE_NAME];
    size_t nstale;
} berth__s3_state_t;

/* Parses `text`; BERTH_EINVALID when it is not a state this backend wrote.
 * *st must be cleared whatever the result. */
int berth__s3_state_load(berth__s3_state_t *st, const char *id, const char *text);
/* A malloc'd state string of st. */
int berth__s3_state_dump(const berth__s3_state_t *st, char **out);
void berth__s3_state_clear(berth__s3_state_t *st);

/* Bytes [0, committed) are sent as parts. */
uint64_t berth__s3_committed(const berth__s3_state_t *st);
/* Appends a piece, or a stale name. */
int berth__s3_piece_add(berth__s3_state_t *st, uint64_t off, uint64_t len, const char *name);
int berth__s3_stale_add(berth__s3_state_t *st, const char *name);
/* End of the bytes the pieces cover without a gap from `from`, at most
 * st->size. */
uint64_t berth__s3_coverage(const berth__s3_state_t *st, uint64_t from);
/* Reads bytes [a, b) back from the staged pieces into dst; EIO when they
 * do not cover the range. */
int berth__s3_assemble(berth_s3_t *s, const char *id, const berth__s3_state_t *st, uint64_t a, uint64_t b, char *dst);
/* Deletes the stale pieces, best effort, and forgets those it deleted. */
void berth__s3_drop_stale(berth_s3_t *s, const char *id, berth__s3_state_t *st);

/* blobs/data/<id>: the multipart upload of a session, then its blob. */
int berth__s3_data_key(const berth_s3_t *s, char *out, const char *id);
/* uploads/<id>/tail/<name>. */
int berth__s3_piece_key(const berth_s3_t *s, char *out, const char *id, const char *name);
/* uploads/<id>/session: the session's data exists, and blobs/data/<id>,
 * if there, is not (yet) a blob. Written by data_create; deleted by
 * data_remove, and by data_commit before the link that makes a blob. */
int berth__s3_session_key(const berth_s3_t *s, char *out, const char *id);
/* 0 while session `id`'s data exists; BERTH_ENOTFOUND once it is gone
 * (committed or removed). One HEAD. */
int berth__s3_session_live(berth_s3_t *s, const char *id);
/* Completes a unit session's multipart upload from its listed parts (all
 * `units` of them, of `unit` bytes but the last), *size its bytes; 0 also
 * when an earlier call did (the object is there). want_size: the bytes
 * the session must hold, or S3__ANY_SIZE. */
#define S3__ANY_SIZE UINT64_MAX
int berth__s3_complete_units(berth_s3_t *s, const char *id, const berth__s3_state_t *st, const char *dkey,
                             uint64_t want_size, uint64_t *size);

/* ---- session data (s3data.c: writes and reads; s3commit.c: the rest) ---- */

int berth__s3_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state);
int berth__s3_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                        berth_writer_t **out);
int berth__s3_writer_write(berth_writer_t *w, const void *buf, size_t len);
int berth__s3_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state);
int berth__s3_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                        size_t *got);
int berth__s3_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest);
int berth__s3_data_remove(berth_storage_t *b, const char *id, const char *state);
int berth__s3_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx);

#endif
