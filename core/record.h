/*
 * The session record: everything berth knows about an upload session,
 * stored by the engine as the object "sessions/<id>".
 *
 * The record is the truth a resume is built on. It is written only after the
 * bytes it claims are stored, and replaced atomically, so at any instant the
 * stored record describes bytes that the storage holds.
 *
 * Encoded as JSON (jansson). Decoding checks every field and its consistency
 * (for OCI sessions the hash state covers exactly `offset` bytes), so a
 * truncated or corrupted record is reported as BERTH_EINVALID rather than
 * believed.
 */
#ifndef BERTH_CORE_RECORD_H
#define BERTH_CORE_RECORD_H

#include <stdint.h>
#include <jansson.h>

#include "core/digest.h"
#include "core/range.h"
#include "core/validate.h"

#define BERTH_RECORD_VERSION 1
/* Most parts a part session may have. */
#define BERTH_RECORD_MAX_PARTS 10000

typedef enum berth_session_kind {
    BERTH_SESSION_OCI = 1,   /* OCI blob upload: bytes appended in order */
    BERTH_SESSION_PARTS = 2, /* part-numbered session: parts in any order */
} berth_session_kind_t;

typedef enum berth_session_status {
    BERTH_STATUS_INIT = 0,
    BERTH_STATUS_IN_PROGRESS = 1,
    BERTH_STATUS_COMPLETE = 2,
    BERTH_STATUS_FAILED = 3,
    BERTH_STATUS_ABORTED = 4,
} berth_session_status_t;

typedef struct berth_record {
    char id[BERTH_ID_LEN];
    berth_session_kind_t kind;
    berth_session_status_t status;
    char *repository;   /* malloc'd; NULL when the session names none */
    int64_t created_at; /* unix seconds */
    int64_t updated_at; /* unix seconds; expiry counts from here */

    /* OCI: bytes received so far, all contiguous from 0. */
    uint64_t offset;
    /* Received units: bytes [0, offset-1] for OCI, part numbers for parts. */
    berth_rangeset_t received;
    /* SHA-256 of bytes [0, offset) (OCI only). */
    berth_sha256_t hash;

    /* Part sessions (core/parts.c); zero for OCI. */
    uint64_t part_size;
    uint64_t total_parts;
    uint64_t total_size; /* 0 = not given */
    char *owner;         /* malloc'd or NULL */
    char *digest;        /* expected or final digest, malloc'd or NULL */

    /* The storage's state of the session's data (storage/storage.h): opaque
     * to the engine, malloc'd, NULL when the backend keeps none. */
    char *state;
} berth_record_t;

/* Zeroes *rec and sets up its empty members. */
void berth_record_init(berth_record_t *rec);

/* Frees what *rec owns; the struct itself is the caller's. NULL-safe. */
void berth_record_clear(berth_record_t *rec);

/* Encodes to a malloc'd JSON text (caller frees). */
int berth_record_encode(const berth_record_t *rec, char **out, size_t *len);

/* Decodes into *rec (initialised by the caller, cleared first).
 * BERTH_EINVALID for malformed JSON, a missing or mistyped field, an
 * unsupported version, or inconsistent fields; the message says which. */
int berth_record_decode(berth_record_t *rec, const char *buf, size_t len);

const char *berth_status_name(berth_session_status_t s);

#endif
