/*
 * OCI blob uploads (contract in engine.h): sessions whose bytes arrive in
 * order, one chunk at a time, hashed as they arrive so that completion
 * never reads them back.
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

int berth_oci_start(berth_engine_t *e, const char *repo, berth_record_t *out)
{
    static const berth_layout_t append = {0, 0};
    berth_record_t rec;
    int err;

    assert(repo != NULL && out != NULL);
    berth_record_init(&rec);
    rec.kind = BERTH_SESSION_OCI;
    berth_sha256_init(&rec.hash);
    if ((rec.repository = strdup(repo)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth__session_create(e, &rec, &append)) == 0)
        berth__record_move(out, &rec);

done:
    berth_record_clear(&rec);
    return err;
}

/* Loads session `id` of `repo` if it is open: the rules of BERTH_ENOTFOUND
 * in engine.h. */
static int upload__open(berth_engine_t *e, const char *repo, const char *id, berth_record_t *rec,
                        berth_version_t *ver)
{
    int err;

    if ((err = berth__record_load(e, id, rec, ver)) < 0)
        return err;
    if (rec->kind != BERTH_SESSION_OCI || rec->repository == NULL || strcmp(rec->repository, repo) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: not an upload of %s", id, repo);
    if (rec->status == BERTH_STATUS_COMPLETE || rec->status == BERTH_STATUS_ABORTED ||
        rec->status == BERTH_STATUS_FAILED)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: %s", id, berth_status_name(rec->status));
    if (berth__expired(e, rec, (int64_t)time(NULL)))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: expired", id);
    return 0;
}

int berth_oci_status(berth_engine_t *e, const char *repo, const char *id, berth_record_t *out)
{
    berth_record_t rec;
    int err;

    berth_record_init(&rec);
    if ((err = upload__open(e, repo, id, &rec, NULL)) == 0)
        berth__record_move(out, &rec);
    berth_record_clear(&rec);
    return err;
}

/* The answer to a write that cannot go on: `code`, with the session's
 * current record in *cur when it has one. */
static int upload__refuse(berth_engine_t *e, const char *repo, const char *id, berth_record_t *cur, int code)
{
    char msg[512];
    berth_record_t rec;
    int err;

    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    berth_record_init(&rec);
    if ((err = upload__open(e, repo, id, &rec, NULL)) == 0) {
        if (cur != NULL)
            berth__record_move(cur, &rec);
        err = berth_error_set(code, "%s", msg);
    }
    berth_record_clear(&rec);
    return err;
}

/* Why a chunk declared as `c` cannot continue the session at `offset`; 0
 * when it can. */
static int upload__check_chunk(const berth_chunk_t *c, const char *id, uint64_t offset)
{
    if (c->has_range && (c->first != offset || c->last < c->first ||
                         (c->length >= 0 && c->last - c->first != (uint64_t)c->length - 1) || c->length == 0))
        return berth_error_set(BERTH_ERANGE,
                               "chunk %" PRIu64 "-%" PRIu64 " does not continue session %s at offset %" PRIu64,
                               c->first, c->last, id, offset);
    if ((c->length > 0 && offset > UINT64_MAX - (uint64_t)c->length) ||
        (c->has_range && c->last == UINT64_MAX))
        return berth_error_set(BERTH_ERANGE, "session %s: chunk overflows the offset", id);
    return 0;
}

int berth_oci_write(berth_engine_t *e, const char *repo, const char *id, const berth_chunk_t *c, berth_write_t **out,
                    berth_record_t *cur)
{
    berth_write_t *w;
    int err;

    assert(repo != NULL && id != NULL && c != NULL && out != NULL);
    *out = NULL;
    if ((w = berth__write_new(e, BERTH__WRITE_OCI)) == NULL)
        return BERTH_ERR;
    w->chunk = *c;
    if ((err = berth__claim_whole(e, id, &w->claim)) < 0) {
        err = err == BERTH_EBUSY ? upload__refuse(e, repo, id, cur, BERTH_ERANGE) : err;
        goto done;
    }
    /* Loaded under the claim: no other request of this process moves the
     * offset until this one is done; another process is caught by the
     * record's compare-and-swap. */
    if ((err = upload__open(e, repo, id, &w->rec, &w->ver)) < 0)
        goto done;
    if ((err = upload__check_chunk(c, id, w->rec.offset)) < 0) {
        if (cur != NULL)
            berth__record_copy(cur, &w->rec);
        goto done;
    }
    w->offset = w->rec.offset;
    w->hash = w->rec.hash;
    *out = w;
    w = NULL;

done:
    berth__write_free(w);
    return err;
}

int berth__oci_piece(berth_write_t *w, const void *buf, size_t len)
{
    berth_sha256_t before = w->hash;
    berth_sha256_job_t job;
    int err = 0;

    if (w->offset + w->taken > UINT64_MAX - len)
        return berth_error_set(BERTH_ERANGE, "session %s: chunk overflows the offset", w->rec.id);
    /* The piece is hashed while it is written. */
    berth_sha256_update_start(&job, w->e->hashers, &w->hash, buf, len);
    if (!w->gone && w->w == NULL)
        err = berth__write_open(w, w->chunk.length > 0 ? (uint64_t)w->chunk.length : 0);
    if (err == 0 && !w->gone)
        err = berth_storage_writer_write(w->w, buf, len);
    berth_sha256_update_wait(&job);
    /* The session's data is gone: an earlier completion of this session
     * committed it and stopped before removing the record. Only a finish
     * can tell whether that was this content. */
    if (err == BERTH_ENOTFOUND) {
        w->gone = 1;
        err = 0;
    }
    if (err == 0)
        w->taken += len;
    else
        w->hash = before; /* the hash covers exactly the bytes taken */
    return err;
}

/* Stores the record that claims the `kept` bytes after the write's start;
 * *out receives it, or the current record when another writer won. */
static int upload__record(berth_write_t *w, uint64_t kept, berth_record_t *out)
{
    const char *repo = w->rec.repository;
    int err;

    w->rec.offset = w->offset + kept;
    w->rec.hash = w->hash;
    berth_rangeset_clear(&w->rec.received);
    if (w->rec.offset > 0 && (err = berth_rangeset_add(&w->rec.received, 0, w->rec.offset - 1)) < 0)
        return err;
    w->rec.status = BERTH_STATUS_IN_PROGRESS;
    w->rec.updated_at = (int64_t)time(NULL);
    if ((err = berth__record_store(w->e, &w->rec, &w->ver)) == BERTH_ECONFLICT) {
        char id[BERTH_ID_LEN], r[BERTH_NAME_MAX + 1];
        snprintf(id, sizeof(id), "%s", w->rec.id);
        snprintf(r, sizeof(r), "%s", repo);
        return upload__refuse(w->e, r, id, out, BERTH_ERANGE);
    }
    if (err == 0)
        berth__record_move(out, &w->rec);
    return err;
}

int berth__oci_commit(berth_write_t *w, int ended, berth_record_t *out)
{
    const berth_chunk_t *c = &w->chunk;
    uint64_t kept = 0;
    int err;

    if (ended && ((c->has_range && w->taken != c->last - c->first + 1) ||
                  (c->length >= 0 && w->taken != (uint64_t)c->length))) {
        berth__write_close(w, 0, NULL);
        berth__record_copy(out, &w->rec);
        return berth_error_set(BERTH_ERANGE, "session %s: the chunk's %" PRIu64 " bytes do not match its range",
                               w->rec.id, w->taken);
    }
    if (w->gone)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: its data is gone", w->rec.id);
    if (w->taken == 0) {
        berth__record_move(out, &w->rec);
        return 0;
    }
    if ((err = berth__write_close(w, 1, &kept)) < 0)
        return err;
    if (kept >= w->taken)
        return upload__record(w, w->taken, out);
    /* The storage kept only a prefix of what was taken (a piece failed half
     * way): the hash of that prefix comes from the stored bytes. */
    w->hash = w->rec.hash;
    if ((err = berth__hash_stored(w->e, &w->rec, w->offset, kept, &w->hash)) < 0)
        return err;
    return upload__record(w, kept, out);
}

int berth_write_finish(berth_write_t *w, const char *digest, berth_record_t *out)
{
    char actual[BERTH_DIGEST_LEN], repo[BERTH_NAME_MAX + 1];
    uint64_t size = w->offset + w->taken, have = 0;
    int err;

    assert(w->kind == BERTH__WRITE_OCI && digest != NULL);
    if (w->failed) {
        err = berth_error_set(BERTH_EIO, "session %s: a piece of the last chunk was not stored", w->rec.id);
        goto done;
    }
    /* Verified before anything is recorded: a mismatch leaves the session
     * exactly as it was. */
    berth_sha256_digest(&w->hash, actual);
    if (strcmp(actual, digest) != 0) {
        err = berth_error_set(BERTH_EDIGEST, "session %s: content is %s, not %s", w->rec.id, actual, digest);
        berth__record_move(out, &w->rec);
        goto done;
    }
    if (w->gone) {
        /* Committed before: done if the blob is there with this size. */
        if (berth_storage_blob_stat(w->e->storage, digest, &have) < 0 || have != size) {
            err = berth_error_set(BERTH_ENOTFOUND, "session %s: its data is gone", w->rec.id);
            goto done;
        }
    } else if ((err = berth__write_close(w, 1, NULL)) < 0) {
        goto done;
    }
    snprintf(repo, sizeof(repo), "%s", w->rec.repository);
    w->rec.offset = size;
    w->rec.hash = w->hash;
    berth_rangeset_clear(&w->rec.received);
    if (size > 0 && (err = berth_rangeset_add(&w->rec.received, 0, size - 1)) < 0)
        goto done;
    if (!w->gone && (err = berth__publish(w->e, &w->rec, size, digest, repo)) < 0)
        goto done;
    if (w->gone && (err = berth_blob_mount(w->e, repo, NULL, digest)) < 0)
        goto done;
    /* The blob is stored and linked: the upload has succeeded whatever
     * happens to the record now. One left behind has no data; a retried PUT
     * finds the blob, and purge removes the record after the TTL. */
    if (berth__record_remove(w->e, w->rec.id, &w->ver) < 0)
        berth_log_warn("session %s: completed, but removing it failed: %s", w->rec.id, berth_error_last());
    free(w->rec.digest);
    if ((w->rec.digest = strdup(digest)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    w->rec.status = BERTH_STATUS_COMPLETE;
    w->rec.updated_at = (int64_t)time(NULL);
    berth__record_move(out, &w->rec);
    err = 0;

done:
    berth__write_free(w);
    return err;
}

int berth_oci_append(berth_engine_t *e, const char *repo, const char *id, const berth_chunk_t *c, const void *buf,
                     size_t len, berth_record_t *out)
{
    berth_chunk_t chunk = *c;
    berth_write_t *w;
    int err;

    if (chunk.length < 0)
        chunk.length = (int64_t)len;
    if ((err = berth_oci_write(e, repo, id, &chunk, &w, out)) < 0)
        return err;
    if ((err = berth_write_piece(w, buf, len)) < 0) {
        berth_write_abort(w);
        return err;
    }
    return berth_write_commit(w, 1, out);
}

int berth_oci_finish(berth_engine_t *e, const char *repo, const char *id, const char *digest, const void *buf,
                     size_t len, berth_record_t *out)
{
    berth_chunk_t chunk = {0, 0, 0, (int64_t)len};
    berth_write_t *w;
    int err;

    if ((err = berth_oci_write(e, repo, id, &chunk, &w, out)) < 0)
        return err;
    if ((err = berth_write_piece(w, buf, len)) < 0) {
        berth_write_abort(w);
        return err;
    }
    return berth_write_finish(w, digest, out);
}

int berth_oci_cancel(berth_engine_t *e, const char *repo, const char *id)
{
    berth__claim_t *c;
    berth_record_t rec;
    berth_version_t ver;
    int err;

    if ((err = berth__claim_whole(e, id, &c)) < 0)
        return err;
    berth_record_init(&rec);
    if ((err = upload__open(e, repo, id, &rec, &ver)) == 0)
        err = berth__session_remove(e, &rec, &ver);
    berth_record_clear(&rec);
    berth__unclaim(e, c, 0);
    return err;
}
