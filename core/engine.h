/*
 * The upload engine: the rules of resumable uploads, for OCI blob uploads
 * and part-numbered sessions alike, independent of HTTP and of where bytes
 * are stored (storage/storage.h).
 *
 * One engine, one kind of session. A session is a record (core/record.h)
 * stored as the object "sessions/<id>" and its bytes, stored as session
 * data. An OCI upload is a session whose bytes arrive in order (layout unit
 * 0); a part session one whose parts arrive in any order and in parallel
 * (layout unit = part size). Every request on a session claims it in one
 * place (engine.c): a whole-session claim (OCI writes, completion, abort,
 * cancel, purge) excludes every other claim; a part claim excludes the
 * whole-session claim and the same part. A request that finds its claim
 * taken is answered at once (BERTH_EBUSY, or BERTH_ERANGE for OCI writes,
 * which clients resolve by asking the status), except that a part
 * write waits for an earlier write of the same part.
 *
 * Records are replaced with compare-and-swap on the version read: a record
 * changed since (by another process on the same store) is never
 * overwritten. Bytes are stored first, the record replaced after, so the
 * stored record never claims a byte the storage does not hold, whatever
 * crash happens between.
 *
 * Writes stream: begin (every refusal happens here, before a byte is read),
 * pieces, then commit or abort. A whole request body is one piece. The
 * SHA-256 of an OCI session's bytes is updated as pieces arrive, on the
 * calling thread and the engine's hashing pool.
 *
 * Callers validate input once, where a request becomes an engine call
 * (http/route.c): repository names, session ids, digests, part numbers and
 * owners reaching the engine are well-formed; the engine asserts it.
 *
 * Every function blocks on storage and runs on a worker thread, never on an
 * event loop. All are thread-safe.
 */
#ifndef BERTH_CORE_ENGINE_H
#define BERTH_CORE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "storage/storage.h"

typedef struct berth_engine berth_engine_t;

typedef struct berth_engine_options {
    berth_storage_t *storage; /* borrowed; outlives the engine */
    uint64_t ttl_s;           /* idle seconds before a session expires */
    uint64_t max_part_size;   /* largest part a part session may declare; 0 = no limit */
    int hash_threads;         /* threads hashing beside the writer; 0 = none (hash inline) */
} berth_engine_options_t;

int berth_engine_new(berth_engine_t **out, const berth_engine_options_t *o);
void berth_engine_free(berth_engine_t *e); /* NULL-safe; no write may be open */

/* Expiry time of a session (updated_at + ttl, saturating). */
int64_t berth_engine_expires_at(const berth_engine_t *e, const berth_record_t *rec);

/* Removes every session idle for more than the TTL at `now` (unix seconds),
 * sessions whose record is unreadable, and session data without a record
 * older than the TTL. Claims each session as any request does, so a session
 * in use is never removed. *purged (may be NULL) receives the count. */
int berth_engine_purge(berth_engine_t *e, int64_t now, size_t *purged);

/* ---- writes ----------------------------------------------------------------
 *
 * An open write holds its session's claim until berth_write_commit,
 * berth_write_finish or berth_write_abort, which free it. */
typedef struct berth_write berth_write_t;

/* The bytes a request declares: `length` is the body length or -1 when
 * unknown (chunked); with has_range, [first, last] is its Content-Range. */
typedef struct berth_chunk {
    int has_range;
    uint64_t first, last;
    int64_t length;
} berth_chunk_t;

/* Takes pieces of the body, in order. */
int berth_write_piece(berth_write_t *w, const void *buf, size_t len);

/* Ends the write and records what it stored. `ended` says the body arrived
 * whole; then a declared range or length must match what arrived
 * (BERTH_ERANGE otherwise, nothing recorded). When the body was cut
 * (ended == 0), an OCI write records the bytes it stored, a part write
 * nothing. *out is the record after it (or, on an error, the current record
 * when there is one: id[0] != 0). For part writes the result is
 * BERTH_PARTS_STORED or BERTH_PARTS_SAME. */
int berth_write_commit(berth_write_t *w, int ended, berth_record_t *out);

/* Ends the write without recording anything. */
void berth_write_abort(berth_write_t *w);

/* ---- OCI uploads ------------------------------------------------------------ */

/* Starts a session in `repo`. *out (initialised) receives its record. */
int berth_oci_start(berth_engine_t *e, const char *repo, berth_record_t *out);

/* Loads session `id` of `repo`. BERTH_ENOTFOUND when unknown, finished, of
 * another repository or expired. */
int berth_oci_status(berth_engine_t *e, const char *repo, const char *id, berth_record_t *out);

/* Opens a write of a chunk at the session's offset. BERTH_ERANGE when the
 * declared range does not start at the offset or does not match the
 * declared length, when the offset would overflow, or when another request
 * holds the session: *cur is then the current record. BERTH_ENOTFOUND as
 * for status. */
int berth_oci_write(berth_engine_t *e, const char *repo, const char *id, const berth_chunk_t *c, berth_write_t **out,
                    berth_record_t *cur);

/* Ends a write opened by berth_oci_write (possibly of no bytes) by
 * completing the session into blob `digest`, linked into the session's
 * repository. BERTH_EDIGEST when the content does not hash to `digest`:
 * the session stays as it was before this write (its bytes are not
 * recorded) and resumable, and *out is its record. Otherwise *out is the
 * final record (offset = blob size). Frees w. A write whose piece failed
 * still ends with one of these calls or berth_write_abort. A write may move
 * between worker threads from one call to the next. */
int berth_write_finish(berth_write_t *w, const char *digest, berth_record_t *out);

/* A whole chunk in one call (a body held in memory). */
int berth_oci_append(berth_engine_t *e, const char *repo, const char *id, const berth_chunk_t *c, const void *buf,
                     size_t len, berth_record_t *out);

/* Completion with an optional last chunk held in memory. */
int berth_oci_finish(berth_engine_t *e, const char *repo, const char *id, const char *digest, const void *buf,
                     size_t len, berth_record_t *out);

/* Cancels the session and frees its bytes. BERTH_ENOTFOUND as for status. */
int berth_oci_cancel(berth_engine_t *e, const char *repo, const char *id);

/* ---- blobs ----------------------------------------------------------------- */

/* A whole blob in one call (monolithic upload, manifests), verified against
 * `digest` and linked into `repo`. BERTH_EDIGEST on mismatch. */
int berth_blob_put(berth_engine_t *e, const char *repo, const char *digest, const void *buf, size_t len);

/* Links blob `digest` into `repo` if repository `from` has it (or, with from
 * NULL, if the blob is stored at all). BERTH_ENOTFOUND otherwise. */
int berth_blob_mount(berth_engine_t *e, const char *repo, const char *from, const char *digest);

/* Size of blob `digest` as `repo` sees it: BERTH_ENOTFOUND unless the
 * repository links it and the blob exists. */
int berth_blob_stat(berth_engine_t *e, const char *repo, const char *digest, uint64_t *size);

/* Reads part of a blob (after berth_blob_stat said the repository sees it). */
int berth_blob_read(berth_engine_t *e, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got);

/* A URL where the client may GET the blob itself: 0; 1 when berth serves it. */
int berth_blob_url(berth_engine_t *e, const char *digest, char *url, size_t cap);

/* ---- part sessions ---------------------------------------------------------- */

typedef struct berth_parts_spec {
    uint64_t total_parts;   /* 1..BERTH_RECORD_MAX_PARTS */
    uint64_t part_size;     /* >= 1 */
    uint64_t total_size;    /* 0 = not given; else (total_parts-1)*part_size < total_size <= total_parts*part_size */
    const char *repository; /* NULL, or a repository that will see the finished blob */
    const char *digest;     /* NULL, or the expected digest of the whole */
    const char *owner;      /* the authenticated user */
} berth_parts_spec_t;

/* Creates a session (status INIT). BERTH_EINVALID for a bad spec or one the
 * storage cannot hold, with a message for the client. */
int berth_parts_create(berth_engine_t *e, const berth_parts_spec_t *spec, berth_record_t *out);

/* Loads session `id` of `owner`. BERTH_ENOTFOUND when unknown, unreadable,
 * not a part session, another user's, or expired. Finished sessions are
 * found until purged. *version (may be NULL; never 0) names the record's
 * content: equal versions, byte-identical records. When `known` is that
 * version, *out is left empty (the caller still has what it derived). */
int berth_parts_status(berth_engine_t *e, const char *owner, const char *id, uint64_t known, berth_record_t *out,
                       uint64_t *version);

/* Expected size of part n (1-based), or 0 when any size from 1 to
 * part_size is accepted (the last part when total_size is not given). */
uint64_t berth_parts_expected_size(const berth_record_t *rec, uint64_t n);

#define BERTH_PARTS_STORED 0 /* the part is stored (new, or replacing different bytes) */
#define BERTH_PARTS_SAME 1   /* an identical part was already stored: nothing changed */

/* Opens a write of part n of `length` bytes (-1: unknown). `sha256` (32
 * bytes, or NULL) is the client's digest of the part, checked at commit.
 * BERTH_ENOTFOUND as for status, BERTH_EINVALID for a part number out of
 * range or a declared length that cannot be the part's, BERTH_EEXISTS when
 * the session is finished, BERTH_EBUSY while it is being completed or
 * aborted. The commit answers BERTH_EINVALID for a wrong size and
 * BERTH_EDIGEST for a part that does not match `sha256`; nothing is
 * recorded then. */
int berth_parts_write(berth_engine_t *e, const char *owner, const char *id, uint64_t n, int64_t length,
                      const unsigned char *sha256, berth_write_t **out, berth_record_t *cur);

/* A whole part in one call. */
int berth_parts_put(berth_engine_t *e, const char *owner, const char *id, uint64_t n, const void *buf, size_t len,
                    const unsigned char *sha256, berth_record_t *out);

/* Completes the session: every part must be there (else BERTH_ERANGE, the
 * session unchanged and *out its record). Hashes what was not hashed as
 * parts arrived, checks the expected digest: on a mismatch the session is
 * FAILED, its bytes freed, BERTH_EDIGEST returned with *out the failed
 * record (digest = what the content hashed to). Otherwise the parts become
 * blob <digest> (linked into the repository, when one was named) and *out
 * is the COMPLETE record. Completing a COMPLETE session again answers the
 * same; FAILED or ABORTED ones give BERTH_EEXISTS. BERTH_EBUSY while
 * another request holds the session. */
int berth_parts_complete(berth_engine_t *e, const char *owner, const char *id, berth_record_t *out);

/* Aborts: ABORTED, bytes freed, record kept until purged. Again on an
 * ABORTED or FAILED session succeeds; a COMPLETE one gives BERTH_EEXISTS.
 * *out (may be NULL) receives the final record. */
int berth_parts_abort(berth_engine_t *e, const char *owner, const char *id, berth_record_t *out);

#endif
