/*
 * Internals shared by the engine's files: engine.c (claims, records,
 * writes, purge, blobs), upload.c (the OCI rules) and parts.c (the part
 * session rules). Not for use outside core/.
 *
 * Who may touch what: only engine.c takes claims, loads and stores records
 * and opens storage writers; upload.c and parts.c decide what a request
 * means and call these helpers.
 */
#ifndef BERTH_CORE_ENGINE_INT_H
#define BERTH_CORE_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/digest.h"
#include "core/engine.h"
#include "core/workq.h"

/* Bytes read back per storage call when comparing or hashing stored data. */
#define BERTH__SLICE ((size_t)4 << 20)

/* A session in use by at least one request: its claims. Fields but `mu`
 * are guarded by the engine's lock. */
typedef struct berth__claim {
    struct berth__claim *next;
    char id[BERTH_ID_LEN];
    unsigned refs;
    int whole;              /* a whole-session claim is held */
    uint64_t *parts;        /* part claims held */
    size_t nparts, capparts;
    pthread_cond_t cond;    /* a part claim was released */
    pthread_mutex_t mu;     /* serialises this process's record read-modify-writes */
} berth__claim_t;

/* Decoded part-session records kept for status, direct-mapped by id. */
#define BERTH__RCACHE 64

typedef struct berth__rslot {
    char id[BERTH_ID_LEN];
    char *bytes; /* the stored record this entry decoded; NULL when empty */
    size_t len;
    berth_record_t rec;
    uint64_t version;
} berth__rslot_t;

struct berth_engine {
    berth_storage_t *storage;
    uint64_t ttl_s;
    uint64_t max_part_size;
    berth_workq_t *hashers;    /* pieces hashed beside their write; NULL: on the writing thread */
    berth_workq_t *background; /* one thread: stored parts read back and hashed */
    atomic_int stopping;       /* the engine is being freed: background work ends early */

    pthread_mutex_t lock; /* claims */
    berth__claim_t *claims;

    pthread_mutex_t rlock; /* the status cache */
    berth__rslot_t rcache[BERTH__RCACHE];
    uint64_t next_version;
};

typedef enum berth__write_kind {
    BERTH__WRITE_OCI = 1,
    BERTH__WRITE_PART = 2,
} berth__write_kind_t;

struct berth_write {
    berth_engine_t *e;
    berth__write_kind_t kind;
    berth__claim_t *claim;
    uint64_t part;        /* part number; 0 for OCI writes */
    uint64_t claimed;     /* what `claim` holds: 0 the whole session, else a part claim */
    berth_record_t rec;   /* the record the write started from */
    berth_version_t ver;  /* its stored version */
    berth_chunk_t chunk;  /* what the request declared */
    berth_writer_t *w;    /* the storage writer; NULL when nothing is written (yet) */
    uint64_t offset;      /* where the write starts in the session's bytes */
    uint64_t taken;       /* bytes taken so far */
    int failed;           /* a piece failed: nothing more is taken */
    int gone;             /* OCI: the session's data was committed by an earlier completion */
    berth_sha256_t hash;  /* OCI: the session's hash through what was taken; parts: the prefix hash, if `chain` */
    int chain;            /* parts: this part continues the hashed prefix */
    berth_sha256_t own;   /* parts: the part's own hash (for Content-Digest) */
    int has_sha;
    unsigned char sha[32];
    char *held;           /* parts: a re-sent part, held to compare with the stored one */
    size_t heldlen, heldcap;
};

/* ---- claims (engine.c) ---- */

/* A part claim the engine takes for itself (hashing stored parts): short,
 * and a whole claim waits for it instead of being refused. */
#define BERTH__CLAIM_INTERNAL ((uint64_t)1 << 63)

/* The whole session: BERTH_EBUSY while another whole claim or a request's
 * part claim is held; waits for the engine's own part claims to be
 * released, refusing new ones meanwhile. */
int berth__claim_whole(berth_engine_t *e, const char *id, berth__claim_t **out);
/* The same without waiting: BERTH_EBUSY while any other claim is held. */
int berth__claim_whole_try(berth_engine_t *e, const char *id, berth__claim_t **out);
/* Part n: BERTH_EBUSY while the whole session is claimed; waits for an
 * earlier claim of the same part. */
int berth__claim_part(berth_engine_t *e, const char *id, uint64_t n, berth__claim_t **out);
/* Part n without waiting: BERTH_EBUSY when anything conflicts. n may carry
 * BERTH__CLAIM_INTERNAL. */
int berth__claim_part_try(berth_engine_t *e, const char *id, uint64_t n, berth__claim_t **out);
/* Releases part n's claim (n as claimed), or the whole session's when n == 0. */
void berth__unclaim(berth_engine_t *e, berth__claim_t *c, uint64_t n);

/* ---- records (engine.c) ---- */

/* The object key of session `id`: "sessions/<id>". */
void berth__record_key(char out[BERTH_OBJ_KEY_MAX], const char *id);
/* Loads and decodes; *ver (may be NULL) its version. An unreadable record
 * is logged and answered BERTH_ENOTFOUND. */
int berth__record_load(berth_engine_t *e, const char *id, berth_record_t *rec, berth_version_t *ver);
/* Stores *rec if the stored version is still *ver (NULL: unconditionally;
 * an empty tag: only if absent); *ver becomes the new version.
 * BERTH_ECONFLICT when another writer replaced it. */
int berth__record_store(berth_engine_t *e, const berth_record_t *rec, berth_version_t *ver);
/* Removes the record (if still *ver, when ver is not NULL). */
int berth__record_remove(berth_engine_t *e, const char *id, const berth_version_t *ver);
int berth__expired(const berth_engine_t *e, const berth_record_t *rec, int64_t now);
/* Moves *from into *out (both initialised); *from is left empty. */
void berth__record_move(berth_record_t *out, berth_record_t *from);
/* Deep copy into *out (initialised; cleared first). */
int berth__record_copy(berth_record_t *out, const berth_record_t *in);
/* Creates a session: data laid out as `layout`, then its first record
 * (claimed meanwhile, so that purge never takes it for debris). On success
 * rec->state is the data's state and rec->id the new id. */
int berth__session_create(berth_engine_t *e, berth_record_t *rec, const berth_layout_t *layout);
/* Frees a session's data, then its record (the reverse would leave data
 * nobody names). ENOTFOUND from the data is not an error. */
int berth__session_remove(berth_engine_t *e, const berth_record_t *rec, const berth_version_t *ver);

/* ---- writes (engine.c) ---- */

berth_write_t *berth__write_new(berth_engine_t *e, berth__write_kind_t kind);
/* Opens the storage writer at w->offset. */
int berth__write_open(berth_write_t *w, uint64_t hint);
/* Closes the storage writer: keep (1) or discard (0); *kept the bytes kept
 * and, for appends, the new state in w->rec.state. */
int berth__write_close(berth_write_t *w, int keep, uint64_t *kept);
/* Releases the claim and frees the write. */
void berth__write_free(berth_write_t *w);

/* Hashes stored session bytes [offset, offset + len) into *h. */
int berth__hash_stored(berth_engine_t *e, const berth_record_t *rec, uint64_t offset, uint64_t len,
                       berth_sha256_t *h);
/* 1 when the stored bytes at offset equal buf (0 also when unreadable). */
int berth__same_stored(berth_engine_t *e, const berth_record_t *rec, uint64_t offset, const void *buf, size_t len);

/* Publishes the session's bytes [0, size) as blob `digest` (verified) and
 * links it into `repo` (may be NULL). */
int berth__publish(berth_engine_t *e, const berth_record_t *rec, uint64_t size, const char *digest, const char *repo);

/* ---- the kinds (upload.c, parts.c) ---- */

int berth__oci_piece(berth_write_t *w, const void *buf, size_t len);
int berth__oci_commit(berth_write_t *w, int ended, berth_record_t *out);
int berth__part_piece(berth_write_t *w, const void *buf, size_t len);
int berth__part_commit(berth_write_t *w, int ended, berth_record_t *out);

#endif
