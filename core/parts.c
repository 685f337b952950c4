/*
 * Part-numbered sessions (contract in engine.h): a client splits an object
 * into numbered parts of one size (the last may be shorter), sends them in
 * any order and in parallel, asks which ones the server holds, and
 * completes the session into a content-addressed blob.
 *
 * The record's fields for parts:
 *   received   the part numbers stored ("1-50,52,55-100")
 *   offset     the bytes those parts hold (the object's size once complete)
 *   hash       SHA-256 of parts 1..k, for the largest k hashed so far
 *   owner      the user who created the session; nobody else sees it
 *
 * Hashing: a part that continues the hashed prefix is hashed as it
 * arrives; when it closes a gap, the parts stored after it are read back
 * and hashed on the engine's background thread while the client goes on
 * sending. Completion hashes only what is left.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine_int.h"
#include "core/error.h"
#include "core/log.h"

/* Retries of a record update that lost its compare-and-swap to a part
 * write of another process. */
#define PARTS__RETRIES 8

static int parts__finished(const berth_record_t *rec)
{
    return rec->status == BERTH_STATUS_COMPLETE || rec->status == BERTH_STATUS_FAILED ||
           rec->status == BERTH_STATUS_ABORTED;
}

uint64_t berth_parts_expected_size(const berth_record_t *rec, uint64_t n)
{
    if (n < rec->total_parts)
        return rec->part_size;
    if (rec->total_size != 0)
        return rec->total_size - (rec->total_parts - 1) * rec->part_size;
    return 0;
}

/* Size of stored part n (which the record claims). */
static uint64_t parts__stored_size(const berth_record_t *rec, uint64_t n)
{
    uint64_t want = berth_parts_expected_size(rec, n);

    if (want != 0)
        return want;
    /* The last part of a session without total_size: what the other parts
     * do not account for. */
    return rec->offset - (berth_rangeset_count(&rec->received) - 1) * rec->part_size;
}

static int parts__check_size(const berth_record_t *rec, uint64_t n, uint64_t len)
{
    uint64_t want = berth_parts_expected_size(rec, n);

    if (want != 0 && len != want)
        return berth_error_set(BERTH_EINVALID, "part %" PRIu64 " must be %" PRIu64 " bytes, got %" PRIu64, n, want,
                               len);
    if (want == 0 && (len > rec->part_size || (len == 0 && rec->total_parts > 1)))
        return berth_error_set(BERTH_EINVALID, "last part %" PRIu64 " must be 1 to %" PRIu64 " bytes, got %" PRIu64,
                               n, rec->part_size, len);
    return 0;
}

static int parts__check_spec(const berth_engine_t *e, const berth_parts_spec_t *spec)
{
    if (spec->owner == NULL || spec->owner[0] == '\0')
        return berth_error_set(BERTH_EINVALID, "a part session needs an owner");
    if (spec->total_parts < 1 || spec->total_parts > BERTH_RECORD_MAX_PARTS)
        return berth_error_set(BERTH_EINVALID, "total_parts must be 1 to %d", BERTH_RECORD_MAX_PARTS);
    if (spec->part_size < 1)
        return berth_error_set(BERTH_EINVALID, "part_size must be at least 1");
    if (e->max_part_size != 0 && spec->part_size > e->max_part_size)
        return berth_error_set(BERTH_EINVALID, "part_size is over the largest request body this server takes (%" PRIu64
                                               ")",
                               e->max_part_size);
    if (spec->part_size > (uint64_t)INT64_MAX / 4 / spec->total_parts)
        return berth_error_set(BERTH_EINVALID, "total_parts x part_size is too large");
    if (spec->total_size != 0 && (spec->total_size <= (spec->total_parts - 1) * spec->part_size ||
                                  spec->total_size > spec->total_parts * spec->part_size))
        return berth_error_set(BERTH_EINVALID,
                               "total_size %" PRIu64 " does not fit %" PRIu64 " parts of %" PRIu64
                               " bytes (all but the last full)",
                               spec->total_size, spec->total_parts, spec->part_size);
    return 0;
}

int berth_parts_create(berth_engine_t *e, const berth_parts_spec_t *spec, berth_record_t *out)
{
    berth_layout_t layout;
    berth_record_t rec;
    int err;

    assert(spec != NULL && out != NULL);
    if ((err = parts__check_spec(e, spec)) < 0)
        return err;
    berth_record_init(&rec);
    rec.kind = BERTH_SESSION_PARTS;
    rec.part_size = spec->part_size;
    rec.total_parts = spec->total_parts;
    rec.total_size = spec->total_size;
    berth_sha256_init(&rec.hash);
    if ((rec.owner = strdup(spec->owner)) == NULL ||
        (spec->repository != NULL && (rec.repository = strdup(spec->repository)) == NULL) ||
        (spec->digest != NULL && (rec.digest = strdup(spec->digest)) == NULL)) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    layout.unit = spec->part_size;
    layout.units = spec->total_parts;
    if ((err = berth__session_create(e, &rec, &layout)) == 0)
        berth__record_move(out, &rec);

done:
    berth_record_clear(&rec);
    return err;
}

/* Whether `owner` may see the decoded record of session `id`. */
static int parts__visible(const berth_engine_t *e, const berth_record_t *rec, const char *owner, const char *id)
{
    if (rec->kind != BERTH_SESSION_PARTS || rec->owner == NULL || strcmp(rec->owner, owner) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if (berth__expired(e, rec, (int64_t)time(NULL)))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: expired", id);
    return 0;
}

static int parts__open(berth_engine_t *e, const char *owner, const char *id, berth_record_t *rec,
                       berth_version_t *ver)
{
    int err;

    if ((err = berth__record_load(e, id, rec, ver)) < 0)
        return err;
    return parts__visible(e, rec, owner, id);
}

/* The status cache: the record is a pure function of its bytes, so the
 * same stored bytes give the same decoded record, and a repeated status
 * costs a read and a compare, not a decode. */
static berth__rslot_t *parts__slot(berth_engine_t *e, const char *id)
{
    uint32_t h = 2166136261u;

    for (const char *c = id; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return &e->rcache[h % BERTH__RCACHE];
}

/* Answers from the cache: 1 when the slot held these bytes, with err set. */
static int parts__status_cached(berth_engine_t *e, const char *owner, const char *id, const char *buf, size_t len,
                                uint64_t known, berth_record_t *out, uint64_t *version, int *err)
{
    berth__rslot_t *slot = parts__slot(e, id);
    int hit;

    pthread_mutex_lock(&e->rlock);
    hit = slot->bytes != NULL && strcmp(slot->id, id) == 0 && slot->len == len && memcmp(slot->bytes, buf, len) == 0;
    if (hit && (*err = parts__visible(e, &slot->rec, owner, id)) == 0) {
        if (version != NULL)
            *version = slot->version;
        if (known != slot->version)
            *err = berth__record_copy(out, &slot->rec);
    }
    pthread_mutex_unlock(&e->rlock);
    return hit;
}

int berth_parts_status(berth_engine_t *e, const char *owner, const char *id, uint64_t known, berth_record_t *out,
                       uint64_t *version)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    berth__rslot_t *slot;
    berth_record_t rec;
    uint64_t v = 0;
    size_t len = 0;
    int err;

    assert(owner != NULL && id != NULL && out != NULL);
    berth__record_key(key, id);
    if ((err = berth_storage_obj_get(e->storage, key, &buf, &len, NULL)) < 0)
        return err;
    if (parts__status_cached(e, owner, id, buf, len, known, out, version, &err)) {
        free(buf);
        return err;
    }
    berth_record_init(&rec);
    if (berth_record_decode(&rec, buf, len) < 0 || strcmp(rec.id, id) != 0) {
        berth_log_warn("session %s: unreadable record: %s", id, berth_error_last());
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: unreadable record", id);
        goto done;
    }
    slot = parts__slot(e, id);
    pthread_mutex_lock(&e->rlock);
    free(slot->bytes);
    slot->bytes = NULL;
    if (berth__record_copy(&slot->rec, &rec) == 0) {
        snprintf(slot->id, sizeof(slot->id), "%s", id);
        slot->bytes = buf;
        slot->len = len;
        v = slot->version = ++e->next_version;
        buf = NULL;
    }
    pthread_mutex_unlock(&e->rlock);
    if ((err = parts__visible(e, &rec, owner, id)) < 0)
        goto done;
    /* A version only for what went into the cache (else 0: never "known"). */
    if (version != NULL)
        *version = v;
    berth__record_move(out, &rec);

done:
    free(buf);
    berth_record_clear(&rec);
    return err;
}

/* ---- part writes ---------------------------------------------------------------- */

/* Why part n of `length` bytes (-1: unknown yet) cannot be written to the
 * session of *rec; 0 when it can. */
static int parts__check_write(const berth_record_t *rec, uint64_t n, int64_t length)
{
    if (parts__finished(rec))
        return berth_error_set(BERTH_EEXISTS, "session %s is %s", rec->id, berth_status_name(rec->status));
    if (n < 1 || n > rec->total_parts)
        return berth_error_set(BERTH_EINVALID, "part number %" PRIu64 " is outside 1..%" PRIu64, n, rec->total_parts);
    if (length >= 0)
        return parts__check_size(rec, n, (uint64_t)length);
    return 0;
}

int berth_parts_write(berth_engine_t *e, const char *owner, const char *id, uint64_t n, int64_t length,
                      const unsigned char *sha256, berth_write_t **out, berth_record_t *cur)
{
    berth_write_t *w;
    int err;

    assert(owner != NULL && id != NULL && out != NULL);
    *out = NULL;
    if ((w = berth__write_new(e, BERTH__WRITE_PART)) == NULL)
        return BERTH_ERR;
    w->chunk.length = length;
    if ((err = berth__claim_part(e, id, n, &w->claim)) < 0) {
        /* Only a completion or an abort holds the whole session. */
        if (err == BERTH_EBUSY && cur != NULL && parts__open(e, owner, id, cur, NULL) == 0)
            err = berth_error_set(BERTH_EBUSY, "session %s is being completed or aborted", id);
        goto done;
    }
    w->part = w->claimed = n;
    if ((err = parts__open(e, owner, id, &w->rec, &w->ver)) < 0)
        goto done;
    if ((err = parts__check_write(&w->rec, n, length)) < 0) {
        if (cur != NULL)
            berth__record_copy(cur, &w->rec);
        goto done;
    }
    w->offset = (n - 1) * w->rec.part_size;
    if ((w->has_sha = sha256 != NULL))
        memcpy(w->sha, sha256, sizeof(w->sha));
    berth_sha256_init(&w->own);
    /* A part the session holds is kept in memory until it can be compared
     * with the stored one: identical bytes change nothing. */
    if (berth_rangeset_contains(&w->rec.received, n)) {
        if ((w->held = malloc(w->rec.part_size)) == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        w->heldcap = w->rec.part_size;
    } else if (berth_sha256_length(&w->rec.hash) == w->offset) {
        w->chain = 1;
        w->hash = w->rec.hash;
    }
    *out = w;
    w = NULL;

done:
    berth__write_free(w);
    return err;
}

int berth__part_piece(berth_write_t *w, const void *buf, size_t len)
{
    berth_sha256_job_t job;
    int err = 0;

    if (w->taken + len > w->rec.part_size)
        return berth_error_set(BERTH_EINVALID, "part %" PRIu64 " is larger than part_size %" PRIu64, w->part,
                               w->rec.part_size);
    if (w->has_sha)
        berth_sha256_update(&w->own, buf, len);
    if (w->held != NULL) {
        memcpy(w->held + w->heldlen, buf, len);
        w->heldlen += len;
        w->taken += len;
        return 0;
    }
    if (w->chain)
        berth_sha256_update_start(&job, w->e->hashers, &w->hash, buf, len);
    if (w->w == NULL)
        err = berth__write_open(w, w->chunk.length > 0 ? (uint64_t)w->chunk.length : 0);
    if (err == 0)
        err = berth_storage_writer_write(w->w, buf, len);
    if (w->chain)
        berth_sha256_update_wait(&job);
    if (err == 0)
        w->taken += len;
    else
        w->chain = 0; /* the prefix hash now covers bytes not taken */
    return err;
}

/* Applies a change to the stored record of w's session: loads it, lets fn
 * change it, stores it with compare-and-swap, again when another process
 * changed it meanwhile. Under the session's mutex, so this process's part
 * writes do not lose each other's updates. *out receives the new record. */
typedef int (*parts__change_fn)(berth_write_t *w, berth_record_t *rec);

static int parts__update(berth_write_t *w, parts__change_fn fn, berth_record_t *out)
{
    berth_record_t rec;
    berth_version_t ver;
    int err = BERTH_ECONFLICT;

    berth_record_init(&rec);
    pthread_mutex_lock(&w->claim->mu);
    for (int i = 0; i < PARTS__RETRIES && err == BERTH_ECONFLICT; i++) {
        if ((err = berth__record_load(w->e, w->rec.id, &rec, &ver)) < 0)
            break;
        if (parts__finished(&rec)) {
            err = berth_error_set(BERTH_EEXISTS, "session %s is %s", rec.id, berth_status_name(rec.status));
            break;
        }
        if ((err = fn(w, &rec)) < 0)
            break;
        rec.status = BERTH_STATUS_IN_PROGRESS;
        rec.updated_at = (int64_t)time(NULL);
        err = berth__record_store(w->e, &rec, &ver);
    }
    pthread_mutex_unlock(&w->claim->mu);
    if (out != NULL && rec.id[0] != '\0')
        berth__record_move(out, &rec);
    berth_record_clear(&rec);
    return err;
}

/* The record no longer claims part w->part (before its bytes change). */
static int parts__drop_part(berth_write_t *w, berth_record_t *rec)
{
    uint64_t n = w->part;
    int err;

    if (!berth_rangeset_contains(&rec->received, n))
        return 0;
    rec->offset -= parts__stored_size(rec, n);
    if ((err = berth_rangeset_remove(&rec->received, n, n)) < 0)
        return err;
    /* The hash cannot be taken back past the part: start it again. */
    if (berth_sha256_length(&rec->hash) > w->offset)
        berth_sha256_init(&rec->hash);
    return 0;
}

/* The record claims part w->part, of w->taken bytes. */
static int parts__add_part(berth_write_t *w, berth_record_t *rec)
{
    uint64_t n = w->part;
    int err;

    if (!berth_rangeset_contains(&rec->received, n)) {
        if ((err = berth_rangeset_add(&rec->received, n, n)) < 0)
            return err;
        rec->offset += w->taken;
    }
    if (w->chain && berth_sha256_length(&rec->hash) == w->offset)
        rec->hash = w->hash;
    return 0;
}

static void parts__catch_up_job(berth_job_t *job);

typedef struct parts__catch_up {
    berth_job_t job; /* must stay first */
    berth_engine_t *e;
    char id[BERTH_ID_LEN];
} parts__catch_up_t;

/* Hashes the parts after the prefix that are stored already, one part at a
 * time under its claim, on the hashing pool (or right here without one). */
static void parts__catch_up_start(berth_engine_t *e, const berth_record_t *rec)
{
    parts__catch_up_t *c;
    uint64_t next = berth_sha256_length(&rec->hash) / rec->part_size + 1;

    if (berth_sha256_length(&rec->hash) % rec->part_size != 0 || next > rec->total_parts ||
        !berth_rangeset_contains(&rec->received, next) || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->job.run = parts__catch_up_job;
    c->e = e;
    snprintf(c->id, sizeof(c->id), "%s", rec->id);
    if (e->background != NULL)
        berth_workq_submit(e->background, &c->job);
    else
        parts__catch_up_job(&c->job);
}

/* One step: hashes part k if it is next and stored; 1 when it advanced. */
static int parts__catch_up_step(berth_engine_t *e, const char *id)
{
    berth_write_t *w = berth__write_new(e, BERTH__WRITE_PART);
    uint64_t k, plen;
    int advanced = 0;

    if (w == NULL || berth__record_load(e, id, &w->rec, NULL) < 0 || parts__finished(&w->rec) ||
        berth_sha256_length(&w->rec.hash) % w->rec.part_size != 0)
        goto done;
    k = berth_sha256_length(&w->rec.hash) / w->rec.part_size + 1;
    if (k > w->rec.total_parts || !berth_rangeset_contains(&w->rec.received, k) ||
        berth__claim_part_try(e, id, k | BERTH__CLAIM_INTERNAL, &w->claim) < 0)
        goto done;
    w->part = k;
    w->claimed = k | BERTH__CLAIM_INTERNAL;
    /* Loaded again under the claim: part k cannot change now. */
    berth_record_clear(&w->rec);
    if (berth__record_load(e, id, &w->rec, NULL) < 0 || !berth_rangeset_contains(&w->rec.received, k) ||
        berth_sha256_length(&w->rec.hash) != (k - 1) * w->rec.part_size)
        goto done;
    plen = parts__stored_size(&w->rec, k);
    w->hash = w->rec.hash;
    w->offset = (k - 1) * w->rec.part_size;
    w->taken = plen;
    w->chain = 1;
    if (berth__hash_stored(e, &w->rec, w->offset, plen, &w->hash) < 0)
        goto done;
    advanced = parts__update(w, parts__add_part, NULL) == 0;

done:
    if (!advanced && berth_error_last_code() != 0)
        berth_log_debug("session %s: hashing stored parts stopped: %s", id, berth_error_last());
    berth__write_free(w);
    return advanced;
}

static void parts__catch_up_job(berth_job_t *job)
{
    parts__catch_up_t *c = (parts__catch_up_t *)job;

    while (!atomic_load(&c->e->stopping) && parts__catch_up_step(c->e, c->id))
        ;
    free(c);
}

/* A re-sent part: nothing changes when it is identical; otherwise the
 * record first stops claiming it, then its bytes are replaced. */
static int parts__replace(berth_write_t *w, berth_record_t *out)
{
    int err;

    if (berth__same_stored(w->e, &w->rec, w->offset, w->held, w->heldlen)) {
        berth__record_move(out, &w->rec);
        return BERTH_PARTS_SAME;
    }
    if ((err = parts__update(w, parts__drop_part, NULL)) < 0)
        return err;
    if ((err = berth__write_open(w, w->heldlen)) < 0 ||
        (err = berth_storage_writer_write(w->w, w->held, w->heldlen)) < 0)
        return err;
    return 0;
}

int berth__part_commit(berth_write_t *w, int ended, berth_record_t *out)
{
    uint64_t kept = 0;
    int err;

    /* A part is all or nothing: a cut one is not received, nor one with a
     * piece the storage refused. */
    if (w->failed)
        return berth_error_set(BERTH_EIO, "session %s: part %" PRIu64 " was not stored whole", w->rec.id, w->part);
    if (!ended)
        return berth_error_set(BERTH_ERANGE, "session %s: part %" PRIu64 " was cut", w->rec.id, w->part);
    if ((err = parts__check_size(&w->rec, w->part, w->taken)) < 0 ||
        (w->chunk.length >= 0 && w->taken != (uint64_t)w->chunk.length &&
         (err = berth_error_set(BERTH_EINVALID, "part %" PRIu64 ": body shorter than declared", w->part)) < 0)) {
        berth__record_copy(out, &w->rec);
        return err;
    }
    if (w->has_sha) {
        char want[BERTH_DIGEST_LEN], got[BERTH_DIGEST_LEN];
        memcpy(want, "sha256:", 7);
        for (int i = 0; i < 32; i++)
            snprintf(want + 7 + 2 * i, 3, "%02x", w->sha[i]);
        berth_sha256_digest(&w->own, got);
        if (strcmp(want, got) != 0) {
            berth__record_copy(out, &w->rec);
            return berth_error_set(BERTH_EDIGEST, "part %" PRIu64 " is %s, Content-Digest says %s", w->part, got,
                                   want);
        }
    }
    if (w->held != NULL && (err = parts__replace(w, out)) != 0)
        return err;
    if ((err = berth__write_close(w, 1, &kept)) < 0)
        return err;
    if (kept != w->taken)
        return berth_error_set(BERTH_EIO, "session %s: storage kept %" PRIu64 " of %" PRIu64 " bytes", w->rec.id,
                               kept, w->taken);
    if ((err = parts__update(w, parts__add_part, out)) < 0)
        return err;
    if (w->chain)
        parts__catch_up_start(w->e, out);
    return BERTH_PARTS_STORED;
}

int berth_parts_put(berth_engine_t *e, const char *owner, const char *id, uint64_t n, const void *buf, size_t len,
                    const unsigned char *sha256, berth_record_t *out)
{
    berth_write_t *w;
    int err;

    if ((err = berth_parts_write(e, owner, id, n, (int64_t)len, sha256, &w, out)) < 0)
        return err;
    if ((err = berth_write_piece(w, buf, len)) < 0) {
        berth_write_abort(w);
        return err;
    }
    return berth_write_commit(w, 1, out);
}

/* ---- completion and abort ---------------------------------------------------------- */

/* Claims the whole session and loads it for a completion or an abort. */
static int parts__close_begin(berth_engine_t *e, const char *owner, const char *id, berth__claim_t **c,
                              berth_record_t *rec, berth_version_t *ver)
{
    int err;

    if ((err = berth__claim_whole(e, id, c)) < 0) {
        if (err == BERTH_EBUSY && parts__open(e, owner, id, rec, NULL) == 0)
            err = berth_error_set(BERTH_EBUSY, "session %s is busy with another request", id);
        return err;
    }
    if ((err = parts__open(e, owner, id, rec, ver)) < 0) {
        berth__unclaim(e, *c, 0);
        *c = NULL;
    }
    return err;
}

/* Frees the session's bytes, leaving `rec` (which claims none) as its
 * record: stored first, so a crash between the two leaves a record that
 * claims nothing, and purge the rest. */
static int parts__free_bytes(berth_engine_t *e, berth_record_t *rec, berth_version_t *ver)
{
    int err;

    if ((err = berth__record_store(e, rec, ver)) < 0)
        return err;
    if ((err = berth_storage_data_remove(e->storage, rec->id, rec->state)) < 0 && err != BERTH_ENOTFOUND)
        return err;
    return 0;
}

/* Hashes what was not hashed as parts arrived, and saves it so that a retry
 * after a failure does not hash again. */
static int parts__hash_rest(berth_engine_t *e, berth_record_t *rec, berth_version_t *ver)
{
    uint64_t h = berth_sha256_length(&rec->hash);
    int err;

    if (h >= rec->offset)
        return 0;
    berth_log_debug("session %s: completing %" PRIu64 " bytes, %" PRIu64 " hashed as they arrived", rec->id,
                    rec->offset, h);
    if ((err = berth__hash_stored(e, rec, h, rec->offset - h, &rec->hash)) < 0)
        return err;
    return berth__record_store(e, rec, ver);
}

/* The content does not hash to the expected digest: FAILED, bytes freed. */
static int parts__fail(berth_engine_t *e, berth_record_t *rec, berth_version_t *ver, const char *actual)
{
    char expected[BERTH_DIGEST_LEN];
    int err;

    snprintf(expected, sizeof(expected), "%s", rec->digest);
    free(rec->digest);
    if ((rec->digest = strdup(actual)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    rec->status = BERTH_STATUS_FAILED;
    berth_rangeset_clear(&rec->received);
    rec->updated_at = (int64_t)time(NULL);
    if ((err = parts__free_bytes(e, rec, ver)) < 0)
        return err;
    return berth_error_set(BERTH_EDIGEST, "session %s: the parts hash to %s, not %s", rec->id, actual, expected);
}

int berth_parts_complete(berth_engine_t *e, const char *owner, const char *id, berth_record_t *out)
{
    char digest[BERTH_DIGEST_LEN];
    berth__claim_t *c = NULL;
    berth_record_t rec;
    berth_version_t ver;
    int err;

    berth_record_init(&rec);
    if ((err = parts__close_begin(e, owner, id, &c, &rec, &ver)) < 0 || rec.status == BERTH_STATUS_COMPLETE)
        goto done;
    if (parts__finished(&rec)) {
        err = berth_error_set(BERTH_EEXISTS, "session %s is %s", id, berth_status_name(rec.status));
        goto done;
    }
    if (berth_rangeset_count(&rec.received) != rec.total_parts) {
        err = berth_error_set(BERTH_ERANGE, "session %s: %" PRIu64 " of %" PRIu64 " parts are stored", id,
                              berth_rangeset_count(&rec.received), rec.total_parts);
        goto done;
    }
    if ((err = parts__hash_rest(e, &rec, &ver)) < 0)
        goto done;
    berth_sha256_digest(&rec.hash, digest);
    if (rec.digest != NULL && strcmp(rec.digest, digest) != 0) {
        err = parts__fail(e, &rec, &ver, digest);
        goto done;
    }
    if ((err = berth__publish(e, &rec, rec.offset, digest, rec.repository)) < 0)
        goto done;
    free(rec.digest);
    if ((rec.digest = strdup(digest)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    rec.status = BERTH_STATUS_COMPLETE;
    rec.updated_at = (int64_t)time(NULL);
    err = berth__record_store(e, &rec, &ver);

done:
    if (c != NULL)
        berth__unclaim(e, c, 0);
    if (rec.id[0] != '\0')
        berth__record_move(out, &rec);
    berth_record_clear(&rec);
    return err;
}

int berth_parts_abort(berth_engine_t *e, const char *owner, const char *id, berth_record_t *out)
{
    berth__claim_t *c = NULL;
    berth_record_t rec;
    berth_version_t ver;
    int err;

    berth_record_init(&rec);
    if ((err = parts__close_begin(e, owner, id, &c, &rec, &ver)) < 0)
        goto done;
    if (rec.status == BERTH_STATUS_COMPLETE) {
        err = berth_error_set(BERTH_EEXISTS, "session %s is COMPLETE", id);
        goto done;
    }
    rec.status = BERTH_STATUS_ABORTED;
    berth_rangeset_clear(&rec.received);
    rec.offset = 0;
    berth_sha256_init(&rec.hash);
    rec.updated_at = (int64_t)time(NULL);
    err = parts__free_bytes(e, &rec, &ver);

done:
    if (c != NULL)
        berth__unclaim(e, c, 0);
    if (out != NULL && rec.id[0] != '\0')
        berth__record_move(out, &rec);
    berth_record_clear(&rec);
    return err;
}
