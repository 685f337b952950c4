/*
 * Part-numbered upload sessions: a client splits an object into numbered
 * parts of one size (the last may be shorter), sends them in any order and
 * in parallel, asks which ones the server holds, and completes the session
 * into a content-addressed blob.
 *
 * The same records, storage vtable and TTL purge as the OCI sessions
 * (core/session.h); the record's fields for parts:
 *   received   the part numbers stored ("1-50,52,55-100")
 *   offset     the bytes those parts hold (the object's size once complete)
 *   hash       SHA-256 of the in-order prefix: parts 1..k, for the largest k
 *              the engine could hash as parts arrived (in memory, or read
 *              back by a background hasher); completion hashes only the rest
 *   owner      the user who created the session; nobody else sees it
 *
 * Concurrency: parts of one session are written in parallel. Only the
 * record's read-modify-write is serialised (a per-session mutex, never held
 * while part bytes are written), and two writes of the same part number run
 * one after the other, so their bytes never mix and the last one wins.
 * Completion and abort wait for the writes in flight and turn new ones away
 * (BERTH_EBUSY) while they run.
 *
 * Durability, as for OCI: a part's bytes are stored before the record that
 * claims them, so after kill -9 the record never claims a part it does not
 * hold. Re-sending a part with different bytes first stores a record that
 * no longer claims it.
 *
 * Every function blocks on storage and runs on a worker thread.
 */
#ifndef BERTH_CORE_PARTS_H
#define BERTH_CORE_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/record.h"
#include "core/session.h"
#include "storage/storage.h"

typedef struct berth_parts berth_parts_t;

typedef struct berth_parts_options {
    berth_engine_t *engine;   /* borrowed: expiry (the engine's TTL) */
    berth_storage_t *storage; /* borrowed; the engine's storage */
    uint64_t max_part_size;   /* largest part a request can carry; 0 = no limit */
    int hasher;               /* 1: hash parts that arrived out of order in a background thread */
} berth_parts_options_t;

/* On failure *out is NULL. */
int berth_parts_new(berth_parts_t **out, const berth_parts_options_t *o);

/* Stops the hasher (after the part it is on) and frees. NULL-safe. */
void berth_parts_free(berth_parts_t *p);

typedef struct berth_parts_spec {
    uint64_t total_parts; /* 1..BERTH_RECORD_MAX_PARTS */
    uint64_t part_size;   /* >= 1 */
    uint64_t total_size;  /* 0 = not given; else (total_parts-1)*part_size < total_size <= total_parts*part_size */
    const char *repository; /* NULL, or an OCI repository that will see the finished blob */
    const char *digest;     /* NULL, or the expected "sha256:<hex>" of the whole */
    const char *owner;      /* the authenticated user; required */
} berth_parts_spec_t;

/* Creates a session (status INIT). *out (initialised) receives its record.
 * BERTH_EINVALID for a bad spec, with a message for the client. */
int berth_parts_create(berth_parts_t *p, const berth_parts_spec_t *spec, berth_record_t *out);

/* Loads session `id` of `owner`. BERTH_ENOTFOUND when unknown, malformed,
 * not a part session, another user's, or expired. Finished sessions
 * (COMPLETE, FAILED, ABORTED) are found, until purged. */
int berth_parts_status(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out);

/* The same, for callers that keep what they derive from a record (the
 * status JSON): *version (never 0) names the record's content, equal
 * versions meaning byte-identical records. When `known` is that version,
 * *out is left empty: the caller still has what it derived. Decoded records
 * are cached by their bytes, so a repeated status costs a read and a
 * compare, not a decode. */
int berth_parts_status_version(berth_parts_t *p, const char *owner, const char *id, uint64_t known,
                               berth_record_t *out, uint64_t *version);

/* Expected size of part n (1-based) of the session, or 0 when any size from
 * 1 to part_size is accepted (the last part when total_size is not given). */
uint64_t berth_parts_expected_size(const berth_record_t *rec, uint64_t n);

/* Result of berth_parts_put besides the error codes. */
#define BERTH_PARTS_STORED 0 /* the part is stored (new, or replacing different bytes) */
#define BERTH_PARTS_SAME 1   /* an identical part was already stored: nothing written */

/* Stores part n. `sha256` (32 bytes, or NULL) is the client's digest of the
 * part (Content-Digest), verified before anything is stored. Returns
 * BERTH_PARTS_STORED or BERTH_PARTS_SAME, with *out the record after it;
 * else BERTH_ENOTFOUND as for status, BERTH_EINVALID for a part number out
 * of range or a wrong size, BERTH_EDIGEST when the part does not match
 * `sha256`, BERTH_EEXISTS when the session is finished (COMPLETE, FAILED,
 * ABORTED), BERTH_EBUSY while it is being completed or aborted. On every
 * error the session is unchanged; *out is the current record when there is
 * one (id[0] != 0). */
int berth_parts_put(berth_parts_t *p, const char *owner, const char *id, uint64_t n, const void *buf, size_t len,
                    const unsigned char *sha256, berth_record_t *out);

/* Completes the session: every part must be there (else BERTH_ERANGE, the
 * session unchanged and *out its record, so the caller can list what is
 * missing). Hashes the parts not hashed yet, checks the expected digest if
 * one was given: on a mismatch the session becomes FAILED, its bytes are
 * freed and BERTH_EDIGEST is returned with *out the failed record (digest =
 * what the content hashed to). Otherwise the parts become blob <digest>
 * (linked into the repository when one was named) and *out is the COMPLETE
 * record (digest, offset = size). Completing a COMPLETE session again
 * answers the same; FAILED or ABORTED ones give BERTH_EEXISTS. BERTH_EBUSY
 * when another completion or abort is running. */
int berth_parts_complete(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out);

/* Aborts the session: status ABORTED, its bytes freed, the record kept
 * (until purged) so status says what happened. Aborting an ABORTED or
 * FAILED session succeeds again; a COMPLETE one gives BERTH_EEXISTS.
 * *out (may be NULL) receives the final record. */
int berth_parts_abort(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out);

/* Waits until the background hasher has nothing queued (tests). */
void berth_parts_hasher_drain(berth_parts_t *p);

#endif
