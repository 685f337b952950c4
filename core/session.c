/*
 * The session engine (contract in session.h).
 *
 * Concurrency: each request that changes a session first claims the
 * session's id in the engine's busy set and releases it when done. A
 * request that finds the id claimed does not wait: an append or finish
 * answers BERTH_ERANGE with the current record (the OCI rule for two
 * overlapping PATCHes is that one wins and the other gets 416), a cancel
 * BERTH_EBUSY, and purge skips the session. Reads (status) take no claim:
 * records are replaced atomically, so they always see a whole one.
 *
 * Crash safety: bytes are written before the record that claims them, and
 * the hash is computed in memory from the request's bytes, never re-read
 * from storage, so the stored record is always a true prefix of the data.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/session.h"
#include "core/validate.h"

struct berth_engine {
    berth_storage_t *storage;
    uint64_t ttl_s;

    pthread_mutex_t lock; /* guards busy */
    char (*busy)[BERTH_ID_LEN];
    size_t nbusy;
    size_t capbusy;
};

int berth_engine_new(berth_engine_t **out, const berth_engine_options_t *o)
{
    berth_engine_t *e;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "engine_new: missing argument");
    *out = NULL;
    if (o == NULL || o->storage == NULL)
        return berth_error_set(BERTH_EINVALID, "engine_new: no storage");
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    e->storage = o->storage;
    e->ttl_s = o->ttl_s;
    pthread_mutex_init(&e->lock, NULL);
    *out = e;
    return 0;
}

void berth_engine_free(berth_engine_t *e)
{
    if (e == NULL)
        return;
    pthread_mutex_destroy(&e->lock);
    free(e->busy);
    free(e);
}

int64_t berth_engine_expires_at(const berth_engine_t *e, const berth_record_t *rec)
{
    /* Saturate: a TTL of "forever" must not wrap into the past. */
    if (e->ttl_s > (uint64_t)(INT64_MAX - (rec->updated_at > 0 ? rec->updated_at : 0)))
        return INT64_MAX;
    return rec->updated_at + (int64_t)e->ttl_s;
}

/* ---- busy set -------------------------------------------------------------- */

/* Claims `id`: 0, BERTH_EBUSY if another request holds it. The set holds
 * one entry per request in flight, so a linear scan is cheap. */
static int engine__claim(berth_engine_t *e, const char *id)
{
    int err = 0;

    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->nbusy; i++) {
        if (strcmp(e->busy[i], id) == 0) {
            err = berth_error_set(BERTH_EBUSY, "session %s is busy with another request", id);
            goto done;
        }
    }
    if (e->nbusy == e->capbusy) {
        size_t cap = e->capbusy != 0 ? e->capbusy * 2 : 16;
        void *v = realloc(e->busy, cap * sizeof(*e->busy));
        if (v == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        e->busy = v;
        e->capbusy = cap;
    }
    memcpy(e->busy[e->nbusy++], id, BERTH_ID_LEN);

done:
    pthread_mutex_unlock(&e->lock);
    return err;
}

static void engine__release(berth_engine_t *e, const char *id)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->nbusy; i++) {
        if (strcmp(e->busy[i], id) == 0) {
            memcpy(e->busy[i], e->busy[--e->nbusy], BERTH_ID_LEN);
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
}

/* ---- records --------------------------------------------------------------- */

static int engine__expired(const berth_engine_t *e, const berth_record_t *rec, int64_t now)
{
    return berth_engine_expires_at(e, rec) < now;
}

/* Moves *from into *out (both initialised); *from is left empty. */
static void engine__move(berth_record_t *out, berth_record_t *from)
{
    berth_record_clear(out);
    *out = *from;
    berth_record_init(from);
}

/* Loads the stored record of `id`. A record that does not decode is, for a
 * client, a session that does not exist (purge removes it); the operator
 * learns of it from the log. */
static int engine__load(berth_engine_t *e, const char *id, berth_record_t *rec)
{
    char *buf = NULL;
    size_t len = 0;
    int err;

    if ((err = berth_storage_record_get(e->storage, id, &buf, &len)) < 0)
        goto done;
    if ((err = berth_record_decode(rec, buf, len)) < 0) {
        berth_log_warn("session %s: unreadable record: %s", id, berth_error_last());
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: unreadable record", id);
        goto done;
    }

done:
    free(buf);
    return err;
}

static int engine__store(berth_engine_t *e, const berth_record_t *rec)
{
    char *buf = NULL;
    size_t len = 0;
    int err;

    if ((err = berth_record_encode(rec, &buf, &len)) < 0)
        goto done;
    err = berth_storage_record_put(e->storage, rec->id, buf, len);

done:
    free(buf);
    return err;
}

static int engine__check_repo(const char *repo)
{
    if (repo == NULL || !berth_name_valid(repo, strlen(repo)))
        return berth_error_set(BERTH_EINVALID, "invalid repository name");
    return 0;
}

static int engine__check_digest(const char *digest)
{
    if (digest == NULL || !berth_digest_valid(digest, strlen(digest))) {
        if (digest != NULL && berth_digest_wellformed(digest, strlen(digest)))
            return berth_error_set(BERTH_EINVALID, "unsupported digest algorithm: %s", digest);
        return berth_error_set(BERTH_EINVALID, "invalid digest");
    }
    return 0;
}

/* Checks names, then loads session `id` of `repo` if it is open: the rules
 * of BERTH_ENOTFOUND in session.h. A malformed id is an unknown session. */
static int engine__check_names(const char *repo, const char *id)
{
    int err;

    if ((err = engine__check_repo(repo)) < 0)
        return err;
    if (id == NULL || !berth_id_valid(id, strlen(id)))
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    return 0;
}

static int engine__open(berth_engine_t *e, const char *repo, const char *id, berth_record_t *rec)
{
    int err;

    if ((err = engine__check_names(repo, id)) < 0)
        return err;
    if ((err = engine__load(e, id, rec)) < 0)
        return err;
    if (rec->kind != BERTH_SESSION_OCI || rec->repository == NULL || strcmp(rec->repository, repo) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: not an upload of %s", id, repo);
    if (rec->status == BERTH_STATUS_COMPLETE || rec->status == BERTH_STATUS_ABORTED ||
        rec->status == BERTH_STATUS_FAILED)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: %s", id, berth_status_name(rec->status));
    if (engine__expired(e, rec, (int64_t)time(NULL)))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: expired", id);
    return 0;
}

/* The answer to a request that found its session claimed: the current
 * record and `code`, or why there is no current record. */
static int engine__busy(berth_engine_t *e, const char *repo, const char *id, berth_record_t *out, int code)
{
    berth_record_t rec;
    int err;

    berth_record_init(&rec);
    if ((err = engine__open(e, repo, id, &rec)) == 0) {
        if (out != NULL)
            engine__move(out, &rec);
        err = berth_error_set(code, "session %s is busy with another request", id);
    }
    berth_record_clear(&rec);
    return err;
}

/* Best-effort removal of a session on a failure path: the caller's error,
 * not the cleanup's, is what the thread's last error keeps saying. */
static void engine__discard(berth_engine_t *e, const char *id, berth_record_t *rec)
{
    char msg[512];
    int code = berth_error_last_code();

    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    if (berth_storage_upload_remove(e->storage, id, rec) < 0 && berth_error_last_code() != BERTH_ENOTFOUND)
        berth_log_warn("session %s: cleanup failed: %s", id, berth_error_last());
    berth_error_set(code, "%s", msg);
}

/* ---- OCI sessions ---------------------------------------------------------- */

int berth_oci_start(berth_engine_t *e, const char *repo, berth_record_t *out)
{
    berth_record_t rec;
    char id[BERTH_ID_LEN];
    int claimed = 0, created = 0, err;

    berth_record_init(&rec);
    if (e == NULL || out == NULL) {
        err = berth_error_set(BERTH_EINVALID, "oci_start: missing argument");
        goto done;
    }
    if ((err = engine__check_repo(repo)) < 0 || (err = berth_id_generate(rec.id)) < 0)
        goto done;
    /* Claimed until its record is stored, so that purge never takes the
     * half-made session for debris. */
    if ((err = engine__claim(e, rec.id)) < 0)
        goto done;
    memcpy(id, rec.id, BERTH_ID_LEN); /* rec is emptied when moved to *out */
    claimed = 1;
    rec.kind = BERTH_SESSION_OCI;
    rec.status = BERTH_STATUS_INIT;
    rec.created_at = rec.updated_at = (int64_t)time(NULL);
    rec.offset = 0;
    berth_sha256_init(&rec.hash);
    if ((rec.repository = strdup(repo)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth_storage_upload_create(e->storage, &rec)) < 0)
        goto done;
    created = 1;
    if ((err = engine__store(e, &rec)) < 0)
        goto done;
    engine__move(out, &rec);

done:
    if (err < 0 && created)
        engine__discard(e, rec.id, &rec);
    if (claimed)
        engine__release(e, id);
    berth_record_clear(&rec);
    return err;
}

int berth_oci_status(berth_engine_t *e, const char *repo, const char *id, berth_record_t *out)
{
    berth_record_t rec;
    int err;

    if (e == NULL || out == NULL)
        return berth_error_set(BERTH_EINVALID, "oci_status: missing argument");
    berth_record_init(&rec);
    if ((err = engine__open(e, repo, id, &rec)) == 0)
        engine__move(out, &rec);
    berth_record_clear(&rec);
    return err;
}

int berth_oci_append(berth_engine_t *e, const char *repo, const char *id, int has_range, uint64_t first, uint64_t last,
                     const void *buf, size_t len, berth_record_t *out)
{
    berth_record_t rec;
    berth_sha256_t hash;
    berth_sha256_job_t job;
    int claimed = 0, err;

    berth_record_init(&rec);
    if (e == NULL || out == NULL || (buf == NULL && len != 0)) {
        err = berth_error_set(BERTH_EINVALID, "oci_append: missing argument");
        goto done;
    }
    if ((err = engine__check_names(repo, id)) < 0)
        goto done;
    if ((err = engine__claim(e, id)) < 0) {
        err = err == BERTH_EBUSY ? engine__busy(e, repo, id, out, BERTH_ERANGE) : err;
        goto done;
    }
    claimed = 1;
    /* Loaded under the claim, so no other request moves the offset until
     * this one is done with it. */
    if ((err = engine__open(e, repo, id, &rec)) < 0)
        goto done;
    if (has_range && (len == 0 || first != rec.offset || last < first || last - first != (uint64_t)len - 1)) {
        err = berth_error_set(BERTH_ERANGE, "chunk %llu-%llu (%zu bytes) does not continue session %s at offset %llu",
                              (unsigned long long)first, (unsigned long long)last, len, id,
                              (unsigned long long)rec.offset);
        engine__move(out, &rec);
        goto done;
    }
    if (len == 0) {
        engine__move(out, &rec);
        goto done;
    }
    if (rec.offset > UINT64_MAX - len) {
        err = berth_error_set(BERTH_ERANGE, "session %s: chunk overflows the offset", id);
        engine__move(out, &rec);
        goto done;
    }

    /* The chunk is hashed while it is written. Bytes first, record second:
     * if the write or the record fails, the stored record still describes
     * exactly what it did before. */
    hash = rec.hash;
    berth_sha256_update_start(&job, &hash, buf, len);
    err = berth_storage_upload_write(e->storage, &rec, rec.offset, buf, len);
    berth_sha256_update_wait(&job);
    if (err < 0)
        goto done;
    rec.offset += len;
    rec.hash = hash;
    berth_rangeset_clear(&rec.received);
    if ((err = berth_rangeset_add(&rec.received, 0, rec.offset - 1)) < 0)
        goto done;
    rec.status = BERTH_STATUS_IN_PROGRESS;
    rec.updated_at = (int64_t)time(NULL);
    if ((err = engine__store(e, &rec)) < 0)
        goto done;
    engine__move(out, &rec);

done:
    if (claimed)
        engine__release(e, id);
    berth_record_clear(&rec);
    return err;
}

/* After the session's data turned out to be gone: a previous finish of the
 * same content committed the blob and then failed (or crashed) before
 * removing the record. If the blob of the verified digest is there with the
 * expected size, the commit is done; otherwise the session lost its bytes. */
static int engine__committed_before(berth_engine_t *e, const char *id, const char *digest, uint64_t size)
{
    uint64_t have = 0;

    if (berth_storage_blob_stat(e->storage, digest, &have) == 0 && have == size)
        return 0;
    return berth_error_set(BERTH_ENOTFOUND, "session %s: its data is gone", id);
}

int berth_oci_finish(berth_engine_t *e, const char *repo, const char *id, const char *digest, const void *buf,
                     size_t len, berth_record_t *out)
{
    berth_record_t rec;
    berth_sha256_t hash;
    char actual[BERTH_DIGEST_LEN];
    uint64_t size;
    int claimed = 0, committed = 0, err;

    berth_record_init(&rec);
    if (e == NULL || out == NULL || (buf == NULL && len != 0)) {
        err = berth_error_set(BERTH_EINVALID, "oci_finish: missing argument");
        goto done;
    }
    if ((err = engine__check_digest(digest)) < 0 || (err = engine__check_names(repo, id)) < 0)
        goto done;
    if ((err = engine__claim(e, id)) < 0) {
        err = err == BERTH_EBUSY ? engine__busy(e, repo, id, out, BERTH_ERANGE) : err;
        goto done;
    }
    claimed = 1;
    if ((err = engine__open(e, repo, id, &rec)) < 0)
        goto done;
    if (rec.offset > UINT64_MAX - len) {
        err = berth_error_set(BERTH_ERANGE, "session %s: chunk overflows the offset", id);
        goto done;
    }
    size = rec.offset + len;

    /* Verify before storing anything, from the saved state and the last
     * chunk in memory: a mismatch leaves the session exactly as it was. */
    hash = rec.hash;
    berth_sha256_update(&hash, buf, len);
    berth_sha256_digest(&hash, actual);
    if (strcmp(actual, digest) != 0) {
        err = berth_error_set(BERTH_EDIGEST, "session %s: content is %s, not %s", id, actual, digest);
        goto done;
    }

    if (len > 0 && (err = berth_storage_upload_write(e->storage, &rec, rec.offset, buf, len)) < 0) {
        if (err != BERTH_ENOTFOUND || (err = engine__committed_before(e, id, digest, size)) < 0)
            goto done;
        committed = 1;
    }
    rec.offset = size;
    rec.hash = hash;
    berth_rangeset_clear(&rec.received);
    if (size > 0 && (err = berth_rangeset_add(&rec.received, 0, size - 1)) < 0)
        goto done;
    if (!committed && (err = berth_storage_upload_commit(e->storage, &rec, digest)) < 0) {
        if (err != BERTH_ENOTFOUND || (err = engine__committed_before(e, id, digest, size)) < 0)
            goto done;
    }
    if ((err = berth_storage_link_put(e->storage, repo, digest)) < 0)
        goto done;

    /* The blob is stored and linked: the upload has succeeded whatever
     * happens to the record now. One left behind has no data; a retried PUT
     * finds the blob, and purge removes the record after the TTL. */
    if (berth_storage_upload_remove(e->storage, id, &rec) < 0)
        berth_log_warn("session %s: completed, but removing it failed: %s", id, berth_error_last());
    free(rec.digest);
    if ((rec.digest = strdup(digest)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    rec.status = BERTH_STATUS_COMPLETE;
    rec.updated_at = (int64_t)time(NULL);
    engine__move(out, &rec);

done:
    if (claimed)
        engine__release(e, id);
    berth_record_clear(&rec);
    return err;
}

int berth_oci_cancel(berth_engine_t *e, const char *repo, const char *id)
{
    berth_record_t rec;
    int claimed = 0, err;

    berth_record_init(&rec);
    if (e == NULL) {
        err = berth_error_set(BERTH_EINVALID, "oci_cancel: missing argument");
        goto done;
    }
    if ((err = engine__check_names(repo, id)) < 0 || (err = engine__claim(e, id)) < 0)
        goto done;
    claimed = 1;
    if ((err = engine__open(e, repo, id, &rec)) < 0)
        goto done;
    err = berth_storage_upload_remove(e->storage, id, &rec);

done:
    if (claimed)
        engine__release(e, id);
    berth_record_clear(&rec);
    return err;
}

/* ---- blobs ----------------------------------------------------------------- */

int berth_blob_put(berth_engine_t *e, const char *repo, const char *digest, const void *buf, size_t len)
{
    berth_record_t rec;
    char actual[BERTH_DIGEST_LEN];
    uint64_t size;
    int claimed = 0, created = 0, err;

    berth_record_init(&rec);
    if (e == NULL || (buf == NULL && len != 0)) {
        err = berth_error_set(BERTH_EINVALID, "blob_put: missing argument");
        goto done;
    }
    if ((err = engine__check_repo(repo)) < 0 || (err = engine__check_digest(digest)) < 0)
        goto done;
    berth_sha256_of(buf, len, actual);
    if (strcmp(actual, digest) != 0) {
        err = berth_error_set(BERTH_EDIGEST, "content is %s, not %s", actual, digest);
        goto done;
    }
    if ((err = berth_storage_blob_stat(e->storage, digest, &size)) == 0) {
        err = berth_storage_link_put(e->storage, repo, digest);
        goto done;
    }
    if (err != BERTH_ENOTFOUND)
        goto done;

    /* The bytes go through a short-lived session, so the backend has one
     * way to make blobs, and a crash half way leaves a session with a
     * record that purge cleans up. */
    if ((err = berth_id_generate(rec.id)) < 0 || (err = engine__claim(e, rec.id)) < 0)
        goto done;
    claimed = 1;
    rec.kind = BERTH_SESSION_OCI;
    rec.status = BERTH_STATUS_INIT;
    rec.created_at = rec.updated_at = (int64_t)time(NULL);
    berth_sha256_init(&rec.hash);
    if ((rec.repository = strdup(repo)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth_storage_upload_create(e->storage, &rec)) < 0)
        goto done;
    created = 1;
    if ((err = engine__store(e, &rec)) < 0 || (err = berth_storage_upload_write(e->storage, &rec, 0, buf, len)) < 0)
        goto done;
    rec.offset = len;
    if ((err = berth_storage_upload_commit(e->storage, &rec, digest)) < 0 ||
        (err = berth_storage_link_put(e->storage, repo, digest)) < 0)
        goto done;
    if (berth_storage_upload_remove(e->storage, rec.id, &rec) < 0)
        berth_log_warn("session %s: blob stored, but removing its session failed: %s", rec.id, berth_error_last());
    created = 0;

done:
    if (err < 0 && created)
        engine__discard(e, rec.id, &rec);
    if (claimed)
        engine__release(e, rec.id);
    berth_record_clear(&rec);
    return err;
}

int berth_blob_mount(berth_engine_t *e, const char *repo, const char *from, const char *digest)
{
    uint64_t size;
    int err;

    if (e == NULL)
        return berth_error_set(BERTH_EINVALID, "blob_mount: missing argument");
    if ((err = engine__check_repo(repo)) < 0 || (err = engine__check_digest(digest)) < 0)
        return err;
    /* A source that cannot name a repository cannot have the blob: the
     * client falls back to an upload, as for any failed mount. */
    if (from != NULL && !berth_name_valid(from, strlen(from)))
        return berth_error_set(BERTH_ENOTFOUND, "invalid source repository");
    if (from != NULL && (err = berth_storage_link_get(e->storage, from, digest)) < 0)
        return err;
    if ((err = berth_storage_blob_stat(e->storage, digest, &size)) < 0)
        return err;
    return berth_storage_link_put(e->storage, repo, digest);
}

int berth_blob_stat(berth_engine_t *e, const char *repo, const char *digest, uint64_t *size)
{
    int err;

    if (e == NULL || size == NULL)
        return berth_error_set(BERTH_EINVALID, "blob_stat: missing argument");
    if ((err = engine__check_repo(repo)) < 0 || (err = engine__check_digest(digest)) < 0)
        return err;
    if ((err = berth_storage_link_get(e->storage, repo, digest)) < 0)
        return err;
    return berth_storage_blob_stat(e->storage, digest, size);
}

int berth_blob_read(berth_engine_t *e, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    if (e == NULL)
        return berth_error_set(BERTH_EINVALID, "blob_read: missing argument");
    return berth_storage_blob_read(e->storage, digest, offset, buf, len, got);
}

int berth_blob_url(berth_engine_t *e, const char *digest, char *url, size_t cap)
{
    if (e == NULL)
        return berth_error_set(BERTH_EINVALID, "blob_url: missing argument");
    return berth_storage_blob_url(e->storage, digest, url, cap);
}

/* ---- purge ----------------------------------------------------------------- */

typedef struct engine__ids {
    char (*v)[BERTH_ID_LEN];
    size_t n, cap;
} engine__ids_t;

static int engine__collect(void *ctx, const char *id)
{
    engine__ids_t *ids = ctx;

    if (ids->n == ids->cap) {
        size_t cap = ids->cap != 0 ? ids->cap * 2 : 64;
        void *v = realloc(ids->v, cap * sizeof(*ids->v));
        if (v == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        ids->v = v;
        ids->cap = cap;
    }
    snprintf(ids->v[ids->n++], BERTH_ID_LEN, "%s", id);
    return 0;
}

/* 0 when session `id` has a readable record that has not expired: nothing
 * for purge to do. Reads without a claim, which records replaced atomically
 * allow; engine__purge_one decides again under the claim. */
static int engine__purge_candidate(berth_engine_t *e, const char *id, int64_t now)
{
    berth_record_t rec;
    char *buf = NULL;
    size_t len = 0;
    int candidate = 1;

    berth_record_init(&rec);
    if (berth_storage_record_get(e->storage, id, &buf, &len) == 0 && berth_record_decode(&rec, buf, len) == 0)
        candidate = engine__expired(e, &rec, now);
    free(buf);
    berth_record_clear(&rec);
    return candidate;
}

/* Removes session `id` if it is expired or unreadable; 1 if removed. The
 * caller holds the claim. */
static int engine__purge_one(berth_engine_t *e, const char *id, int64_t now)
{
    berth_record_t rec;
    char *buf = NULL;
    size_t len = 0;
    int removed = 0, err;

    berth_record_init(&rec);
    if ((err = berth_storage_record_get(e->storage, id, &buf, &len)) < 0 && err != BERTH_ENOTFOUND) {
        berth_log_warn("purge: session %s: %s", id, berth_error_last());
        goto done;
    }
    if (err == BERTH_ENOTFOUND) {
        /* Listed but without a record: the remains of a crash between
         * creating a session and storing its first record (a live session
         * in that state is claimed, and skipped), or a session removed since
         * the listing, which the removal below finds gone. */
        removed = berth_storage_upload_remove(e->storage, id, NULL) == 0;
    } else if (berth_record_decode(&rec, buf, len) < 0) {
        berth_log_warn("purge: session %s: unreadable record, removing it: %s", id, berth_error_last());
        removed = berth_storage_upload_remove(e->storage, id, NULL) == 0;
    } else if (engine__expired(e, &rec, now)) {
        removed = berth_storage_upload_remove(e->storage, id, &rec) == 0;
    } else {
        goto done;
    }
    if (!removed && berth_error_last_code() != BERTH_ENOTFOUND)
        berth_log_warn("purge: session %s: %s", id, berth_error_last());

done:
    free(buf);
    berth_record_clear(&rec);
    return removed;
}

int berth_engine_purge(berth_engine_t *e, int64_t now, size_t *purged)
{
    engine__ids_t ids = {NULL, 0, 0};
    size_t n = 0;
    int err;

    if (purged != NULL)
        *purged = 0;
    if (e == NULL)
        return berth_error_set(BERTH_EINVALID, "engine_purge: missing argument");
    /* List first, remove after: removing entries while the backend walks
     * them is not something every backend's listing survives. */
    if ((err = berth_storage_record_list(e->storage, engine__collect, &ids)) < 0)
        goto done;
    for (size_t i = 0; i < ids.n; i++) {
        /* Look before claiming: a claim, however short, would turn away a
         * chunk arriving for a live session. A claimed session is in use
         * right now, hence not idle. */
        if (!engine__purge_candidate(e, ids.v[i], now) || engine__claim(e, ids.v[i]) < 0)
            continue;
        n += (size_t)engine__purge_one(e, ids.v[i], now);
        engine__release(e, ids.v[i]);
    }
    if (n > 0)
        berth_log_info("purge: removed %zu upload session(s)", n);
    if (purged != NULL)
        *purged = n;

done:
    free(ids.v);
    return err;
}
