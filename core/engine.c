/*
 * The engine's core (contract in engine.h): claims, records, writes, purge
 * and blobs. upload.c and parts.c hold the rules of the two session kinds
 * on top of these.
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
#include "core/meta.h"
#include "core/validate.h"

int berth_engine_new(berth_engine_t **out, const berth_engine_options_t *o)
{
    berth_engine_t *e;

    *out = NULL;
    if (o == NULL || o->storage == NULL)
        return berth_error_set(BERTH_EINVALID, "engine: no storage");
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    e->storage = o->storage;
    e->ttl_s = o->ttl_s;
    e->max_part_size = o->max_part_size;
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->rlock, NULL);
    if ((o->hash_threads > 0 && berth_workq_new(&e->hashers, o->hash_threads) < 0) ||
        (o->hash_threads > 0 && berth_workq_new(&e->background, 1) < 0)) {
        berth_engine_free(e);
        return berth_error_set(BERTH_ERR, "engine: cannot start hashing threads");
    }
    *out = e;
    return 0;
}

void berth_engine_free(berth_engine_t *e)
{
    if (e == NULL)
        return;
    atomic_store(&e->stopping, 1);
    berth_workq_free(e->background);
    assert(e->claims == NULL);
    berth_workq_free(e->hashers);
    for (size_t i = 0; i < BERTH__RCACHE; i++) {
        free(e->rcache[i].bytes);
        berth_record_clear(&e->rcache[i].rec);
    }
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->rlock);
    free(e);
}

int64_t berth_engine_expires_at(const berth_engine_t *e, const berth_record_t *rec)
{
    /* Saturate: a TTL of "forever" must not wrap into the past. */
    if (e->ttl_s > (uint64_t)(INT64_MAX - (rec->updated_at > 0 ? rec->updated_at : 0)))
        return INT64_MAX;
    return rec->updated_at + (int64_t)e->ttl_s;
}

int berth__expired(const berth_engine_t *e, const berth_record_t *rec, int64_t now)
{
    return berth_engine_expires_at(e, rec) < now;
}

/* ---- claims -------------------------------------------------------------------
 *
 * One table for every session in use, whatever its kind: an entry lives
 * while a request holds or waits for a claim on it. The table holds one
 * entry per session in use, so a linear scan is cheap. */

static berth__claim_t *engine__entry(berth_engine_t *e, const char *id)
{
    berth__claim_t *c;

    for (c = e->claims; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    snprintf(c->id, sizeof(c->id), "%s", id);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_init(&c->mu, NULL);
    c->next = e->claims;
    e->claims = c;
    return c;
}

/* Drops a reference; the caller holds e->lock. */
static void engine__entry_put(berth_engine_t *e, berth__claim_t *c)
{
    if (--c->refs > 0)
        return;
    for (berth__claim_t **p = &e->claims; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c->parts);
    free(c);
}

static int engine__part_held(const berth__claim_t *c, uint64_t n)
{
    for (size_t i = 0; i < c->nparts; i++)
        if ((c->parts[i] & ~BERTH__CLAIM_INTERNAL) == (n & ~BERTH__CLAIM_INTERNAL))
            return 1;
    return 0;
}

/* Part claims held by requests (not the engine's own short ones). */
static size_t engine__request_parts(const berth__claim_t *c)
{
    size_t k = 0;

    for (size_t i = 0; i < c->nparts; i++)
        k += (c->parts[i] & BERTH__CLAIM_INTERNAL) == 0;
    return k;
}

/* mode 0: whole, waiting for the engine's own part claims to go (new ones
 * are refused meanwhile); 3: whole, no wait; 1: part n, waiting for the same
 * part; 2: part n, no wait. */
static int engine__claim(berth_engine_t *e, const char *id, uint64_t n, int mode, berth__claim_t **out)
{
    berth__claim_t *c;
    int err = 0;

    pthread_mutex_lock(&e->lock);
    if ((c = engine__entry(e, id)) == NULL) {
        pthread_mutex_unlock(&e->lock);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    c->refs++;
    if (mode == 0 || mode == 3) {
        if (c->whole || engine__request_parts(c) > 0 || (mode == 3 && c->nparts > 0)) {
            err = berth_error_set(BERTH_EBUSY, "session %s is busy with another request", id);
            goto done;
        }
        c->whole = 1;
        while (c->nparts > 0)
            pthread_cond_wait(&c->cond, &e->lock);
        goto done;
    }
    while (!c->whole && mode == 1 && engine__part_held(c, n))
        pthread_cond_wait(&c->cond, &e->lock);
    if (c->whole || engine__part_held(c, n)) {
        err = berth_error_set(BERTH_EBUSY, "session %s is busy with another request", id);
        goto done;
    }
    if (c->nparts == c->capparts) {
        size_t cap = c->capparts != 0 ? c->capparts * 2 : 8;
        void *v = realloc(c->parts, cap * sizeof(*c->parts));
        if (v == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        c->parts = v;
        c->capparts = cap;
    }
    c->parts[c->nparts++] = n;

done:
    if (err < 0)
        engine__entry_put(e, c);
    else
        *out = c;
    pthread_mutex_unlock(&e->lock);
    return err;
}

int berth__claim_whole(berth_engine_t *e, const char *id, berth__claim_t **out)
{
    return engine__claim(e, id, 0, 0, out);
}

int berth__claim_whole_try(berth_engine_t *e, const char *id, berth__claim_t **out)
{
    return engine__claim(e, id, 0, 3, out);
}

int berth__claim_part(berth_engine_t *e, const char *id, uint64_t n, berth__claim_t **out)
{
    return engine__claim(e, id, n, 1, out);
}

int berth__claim_part_try(berth_engine_t *e, const char *id, uint64_t n, berth__claim_t **out)
{
    return engine__claim(e, id, n, 2, out);
}

void berth__unclaim(berth_engine_t *e, berth__claim_t *c, uint64_t n)
{
    pthread_mutex_lock(&e->lock);
    if (n == 0) {
        c->whole = 0;
    } else {
        for (size_t i = 0; i < c->nparts; i++) {
            if (c->parts[i] == n) {
                c->parts[i] = c->parts[--c->nparts];
                break;
            }
        }
        pthread_cond_broadcast(&c->cond);
    }
    engine__entry_put(e, c);
    pthread_mutex_unlock(&e->lock);
}

/* ---- records ------------------------------------------------------------------ */

void berth__record_key(char out[BERTH_OBJ_KEY_MAX], const char *id)
{
    snprintf(out, BERTH_OBJ_KEY_MAX, "sessions/%s", id);
}

int berth__record_load(berth_engine_t *e, const char *id, berth_record_t *rec, berth_version_t *ver)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    size_t len = 0;
    int err;

    berth__record_key(key, id);
    if ((err = berth_storage_obj_get(e->storage, key, &buf, &len, ver)) < 0)
        goto done;
    /* A record that does not decode is, for a client, a session that does
     * not exist (purge removes it); the operator learns of it from the log. */
    if ((err = berth_record_decode(rec, buf, len)) < 0 || strcmp(rec->id, id) != 0) {
        berth_log_warn("session %s: unreadable record: %s", id, err < 0 ? berth_error_last() : "wrong id");
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: unreadable record", id);
    }

done:
    free(buf);
    return err;
}

int berth__record_store(berth_engine_t *e, const berth_record_t *rec, berth_version_t *ver)
{
    char key[BERTH_OBJ_KEY_MAX], *buf = NULL;
    berth_version_t expect;
    size_t len = 0;
    int err;

    if ((err = berth_record_encode(rec, &buf, &len)) < 0)
        return err;
    berth__record_key(key, rec->id);
    if (ver != NULL)
        expect = *ver;
    err = berth_storage_obj_put(e->storage, key, buf, len, ver != NULL ? &expect : NULL, ver);
    if (err == BERTH_ECONFLICT)
        err = berth_error_set(BERTH_ECONFLICT, "session %s was changed by another request", rec->id);
    free(buf);
    return err;
}

int berth__record_remove(berth_engine_t *e, const char *id, const berth_version_t *ver)
{
    char key[BERTH_OBJ_KEY_MAX];

    berth__record_key(key, id);
    return berth_storage_obj_delete(e->storage, key, ver);
}

void berth__record_move(berth_record_t *out, berth_record_t *from)
{
    berth_record_clear(out);
    *out = *from;
    berth_record_init(from);
}

int berth__record_copy(berth_record_t *out, const berth_record_t *in)
{
    berth_record_clear(out);
    *out = *in;
    out->repository = out->owner = out->digest = out->state = NULL;
    berth_rangeset_init(&out->received);
    if ((in->repository != NULL && (out->repository = strdup(in->repository)) == NULL) ||
        (in->owner != NULL && (out->owner = strdup(in->owner)) == NULL) ||
        (in->digest != NULL && (out->digest = strdup(in->digest)) == NULL) ||
        (in->state != NULL && (out->state = strdup(in->state)) == NULL) ||
        berth_rangeset_copy(&out->received, &in->received) < 0) {
        berth_record_clear(out);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    return 0;
}

/* Best-effort removal on a failure path: the caller's error, not the
 * cleanup's, is what the thread's last error keeps saying. */
static void engine__discard(berth_engine_t *e, const berth_record_t *rec, int stored)
{
    char msg[512];
    int code = berth_error_last_code();

    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    if (berth_storage_data_remove(e->storage, rec->id, rec->state) < 0 && berth_error_last_code() != BERTH_ENOTFOUND)
        berth_log_warn("session %s: cleanup failed: %s", rec->id, berth_error_last());
    if (stored && berth__record_remove(e, rec->id, NULL) < 0 && berth_error_last_code() != BERTH_ENOTFOUND)
        berth_log_warn("session %s: cleanup failed: %s", rec->id, berth_error_last());
    berth_error_set(code, "%s", msg);
}

int berth__session_create(berth_engine_t *e, berth_record_t *rec, const berth_layout_t *layout)
{
    berth__claim_t *c = NULL;
    berth_version_t ver = {{0}};
    int created = 0, err;

    if ((err = berth_id_generate(rec->id)) < 0 || (err = berth__claim_whole(e, rec->id, &c)) < 0)
        return err;
    rec->status = BERTH_STATUS_INIT;
    rec->created_at = rec->updated_at = (int64_t)time(NULL);
    free(rec->state);
    rec->state = NULL;
    if ((err = berth_storage_data_create(e->storage, rec->id, layout, &rec->state)) < 0)
        goto done;
    created = 1;
    /* Created only if absent: ids are random, but a collision must not take
     * over another session. */
    err = berth__record_store(e, rec, &ver);

done:
    if (err < 0 && created)
        engine__discard(e, rec, 0);
    berth__unclaim(e, c, 0);
    return err;
}

int berth__session_remove(berth_engine_t *e, const berth_record_t *rec, const berth_version_t *ver)
{
    int err;

    if ((err = berth_storage_data_remove(e->storage, rec->id, rec->state)) < 0 && err != BERTH_ENOTFOUND)
        return err;
    if ((err = berth__record_remove(e, rec->id, ver)) == BERTH_ENOTFOUND)
        err = 0;
    return err;
}

/* ---- writes ------------------------------------------------------------------- */

berth_write_t *berth__write_new(berth_engine_t *e, berth__write_kind_t kind)
{
    berth_write_t *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        berth_error_set(BERTH_ERR, "out of memory");
        return NULL;
    }
    w->e = e;
    w->kind = kind;
    berth_record_init(&w->rec);
    return w;
}

int berth__write_open(berth_write_t *w, uint64_t hint)
{
    return berth_storage_data_open(w->e->storage, w->rec.id, w->rec.state, w->offset, hint, &w->w);
}

int berth__write_close(berth_write_t *w, int keep, uint64_t *kept)
{
    char *state = NULL;
    uint64_t n = 0;
    int err;

    if (w->w == NULL) {
        if (kept != NULL)
            *kept = 0;
        return 0;
    }
    err = berth_storage_writer_close(w->w, keep, &n, keep ? &state : NULL);
    w->w = NULL;
    if (err == 0 && keep && state != NULL) {
        free(w->rec.state);
        w->rec.state = state;
    } else {
        free(state);
    }
    if (kept != NULL)
        *kept = err == 0 ? n : 0;
    return err;
}

void berth__write_free(berth_write_t *w)
{
    if (w == NULL)
        return;
    if (w->w != NULL)
        berth__write_close(w, 0, NULL);
    if (w->claim != NULL)
        berth__unclaim(w->e, w->claim, w->claimed);
    berth_record_clear(&w->rec);
    free(w->held);
    free(w);
}

int berth_write_piece(berth_write_t *w, const void *buf, size_t len)
{
    int err;

    if (len == 0)
        return 0;
    if (w->failed)
        return berth_error_set(BERTH_EIO, "session %s: an earlier piece of this request failed", w->rec.id);
    err = w->kind == BERTH__WRITE_OCI ? berth__oci_piece(w, buf, len) : berth__part_piece(w, buf, len);
    if (err < 0)
        w->failed = 1;
    return err;
}

int berth_write_commit(berth_write_t *w, int ended, berth_record_t *out)
{
    int err = w->kind == BERTH__WRITE_OCI ? berth__oci_commit(w, ended, out) : berth__part_commit(w, ended, out);

    berth__write_free(w);
    return err;
}

void berth_write_abort(berth_write_t *w)
{
    berth__write_free(w);
}

/* ---- reading session bytes back ----------------------------------------------- */

typedef int (*engine__slice_fn)(void *ctx, const char *buf, size_t n);

/* Reads stored bytes [offset, offset + len) in slices, each handed to fn;
 * BERTH_EIO when the data is shorter than the record says. */
static int engine__read(berth_engine_t *e, const berth_record_t *rec, uint64_t offset, uint64_t len, engine__slice_fn fn,
                        void *ctx)
{
    size_t cap = len < BERTH__SLICE ? (size_t)len : BERTH__SLICE;
    char *buf = malloc(cap > 0 ? cap : 1);
    int err = 0;

    if (buf == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    while (len > 0) {
        size_t want = len < cap ? (size_t)len : cap, got = 0;
        if ((err = berth_storage_data_read(e->storage, rec->id, rec->state, offset, buf, want, &got)) < 0)
            break;
        if (got == 0) {
            err = berth_error_set(BERTH_EIO, "session %s: data ends at %" PRIu64 ", the record claims more", rec->id,
                                  offset);
            break;
        }
        if ((err = fn(ctx, buf, got)) != 0)
            break;
        offset += got;
        len -= got;
    }
    free(buf);
    return err;
}

static int engine__hash_fn(void *ctx, const char *buf, size_t n)
{
    berth_sha256_update(ctx, buf, n);
    return 0;
}

int berth__hash_stored(berth_engine_t *e, const berth_record_t *rec, uint64_t offset, uint64_t len, berth_sha256_t *h)
{
    return engine__read(e, rec, offset, len, engine__hash_fn, h);
}

static int engine__cmp_fn(void *ctx, const char *buf, size_t n)
{
    const char **want = ctx;
    int same = memcmp(*want, buf, n) == 0;

    *want += n;
    return same ? 0 : 1;
}

int berth__same_stored(berth_engine_t *e, const berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    const char *p = buf;
    int r = engine__read(e, rec, offset, len, engine__cmp_fn, &p);

    if (r < 0)
        berth_log_debug("session %s: stored bytes not compared: %s", rec->id, berth_error_last());
    return r == 0;
}

/* ---- blobs ---------------------------------------------------------------------- */

int berth__publish(berth_engine_t *e, const berth_record_t *rec, uint64_t size, const char *digest, const char *repo)
{
    uint64_t have = 0;
    int err;

    if ((err = berth_storage_data_commit(e->storage, rec->id, rec->state, size, digest)) < 0) {
        /* A previous completion committed the blob and stopped before
         * saving its record: the blob is there with the right size. */
        if (err != BERTH_ENOTFOUND || berth_storage_blob_stat(e->storage, digest, &have) < 0 || have != size)
            return err == BERTH_ENOTFOUND ? berth_error_set(BERTH_EIO, "session %s: its data is gone", rec->id)
                                          : err;
    }
    return repo != NULL ? berth_link_put(e->storage, repo, digest) : 0;
}

int berth_blob_put(berth_engine_t *e, const char *repo, const char *digest, const void *buf, size_t len)
{
    char actual[BERTH_DIGEST_LEN], id[BERTH_ID_LEN];
    berth_record_t rec;
    uint64_t size;
    int err;

    assert(repo != NULL && digest != NULL && (buf != NULL || len == 0));
    berth_sha256_of(buf, len, actual);
    if (strcmp(actual, digest) != 0)
        return berth_error_set(BERTH_EDIGEST, "content is %s, not %s", actual, digest);
    if ((err = berth_storage_blob_stat(e->storage, digest, &size)) == 0)
        return berth_link_put(e->storage, repo, digest);
    if (err != BERTH_ENOTFOUND)
        return err;
    /* The bytes go through a short-lived session, so that there is one way
     * to make blobs, and a crash half way leaves a session purge removes. */
    berth_record_init(&rec);
    if ((err = berth_oci_start(e, repo, &rec)) < 0)
        goto done;
    snprintf(id, sizeof(id), "%s", rec.id);
    if ((err = berth_oci_finish(e, repo, id, digest, buf, len, &rec)) < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", berth_error_last());
        if (berth_oci_cancel(e, repo, id) < 0 && berth_error_last_code() != BERTH_ENOTFOUND)
            berth_log_warn("session %s: cleanup failed: %s", id, berth_error_last());
        berth_error_set(err, "%s", msg);
    }

done:
    berth_record_clear(&rec);
    return err;
}

int berth_blob_mount(berth_engine_t *e, const char *repo, const char *from, const char *digest)
{
    uint64_t size;
    int err;

    if (from != NULL && (err = berth_link_get(e->storage, from, digest)) < 0)
        return err;
    if ((err = berth_storage_blob_stat(e->storage, digest, &size)) < 0)
        return err;
    return berth_link_put(e->storage, repo, digest);
}

int berth_blob_stat(berth_engine_t *e, const char *repo, const char *digest, uint64_t *size)
{
    int err;

    if ((err = berth_link_get(e->storage, repo, digest)) < 0)
        return err;
    return berth_storage_blob_stat(e->storage, digest, size);
}

int berth_blob_read(berth_engine_t *e, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    return berth_storage_blob_read(e->storage, digest, offset, buf, len, got);
}

int berth_blob_url(berth_engine_t *e, const char *digest, char *url, size_t cap)
{
    return berth_storage_blob_url(e->storage, digest, url, cap);
}

/* ---- purge ---------------------------------------------------------------------- */

typedef struct engine__ids {
    char (*v)[BERTH_ID_LEN];
    int64_t *mtime;
    size_t n, cap;
} engine__ids_t;

static int engine__ids_add(engine__ids_t *ids, const char *id, int64_t mtime)
{
    if (!berth_id_valid(id, strlen(id)))
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap != 0 ? ids->cap * 2 : 64;
        void *v = realloc(ids->v, cap * sizeof(*ids->v)), *m;
        if (v == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        ids->v = v;
        if ((m = realloc(ids->mtime, cap * sizeof(*ids->mtime))) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        ids->mtime = m;
        ids->cap = cap;
    }
    snprintf(ids->v[ids->n], BERTH_ID_LEN, "%s", id);
    ids->mtime[ids->n++] = mtime;
    return 0;
}

static int engine__record_cb(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    return strncmp(key, "sessions/", 9) == 0 ? engine__ids_add(ctx, key + 9, INT64_MAX) : 0;
}

static int engine__data_cb(void *ctx, const char *id, int64_t mtime)
{
    return engine__ids_add(ctx, id, mtime);
}

/* Removes session `id` if it is expired or unreadable, or (no record) if
 * its data is older than the TTL; 1 if removed. The caller holds the
 * whole-session claim. */
static int engine__purge_one(berth_engine_t *e, const char *id, int64_t data_mtime, int64_t now)
{
    berth_record_t rec;
    berth_version_t ver;
    int removed = 0, err;

    berth_record_init(&rec);
    if ((err = berth__record_load(e, id, &rec, &ver)) == 0) {
        if (berth__expired(e, &rec, now))
            removed = berth__session_remove(e, &rec, &ver) == 0;
    } else if (err == BERTH_ENOTFOUND) {
        /* Data without a (readable) record: the remains of a crash between
         * creating a session's data and storing its first record (a live
         * session in that state is claimed, and skipped), of an unreadable
         * record, or of a removal that stopped half way. */
        if (data_mtime == INT64_MAX || data_mtime + (int64_t)e->ttl_s < now) {
            snprintf(rec.id, sizeof(rec.id), "%s", id);
            err = berth_storage_data_remove(e->storage, id, NULL);
            removed = err == 0;
            if ((err == 0 || err == BERTH_ENOTFOUND) && berth__record_remove(e, id, NULL) == 0)
                removed = 1;
        }
    }
    if (!removed && berth_error_last_code() != BERTH_ENOTFOUND && berth_error_last_code() != 0)
        berth_log_warn("purge: session %s: %s", id, berth_error_last());
    berth_record_clear(&rec);
    return removed;
}

/* 0 when session `id` has a readable record that has not expired: nothing
 * for purge to do. Reads without a claim; engine__purge_one decides again
 * under it. */
static int engine__purge_candidate(berth_engine_t *e, const char *id, int64_t now)
{
    berth_record_t rec;
    int candidate = 1;

    berth_record_init(&rec);
    if (berth__record_load(e, id, &rec, NULL) == 0)
        candidate = berth__expired(e, &rec, now);
    berth_record_clear(&rec);
    return candidate;
}

int berth_engine_purge(berth_engine_t *e, int64_t now, size_t *purged)
{
    engine__ids_t ids = {NULL, NULL, 0, 0};
    berth__claim_t *c;
    size_t n = 0;
    int err;

    if (purged != NULL)
        *purged = 0;
    /* List first, remove after: removing entries while the backend walks
     * them is not something every backend's listing survives. */
    if ((err = berth_storage_obj_list(e->storage, "sessions/", engine__record_cb, &ids)) < 0 ||
        (err = berth_storage_data_list(e->storage, engine__data_cb, &ids)) < 0)
        goto done;
    for (size_t i = 0; i < ids.n; i++) {
        /* Look before claiming: a claim, however short, would turn away a
         * chunk arriving for a live session. A claimed session is in use
         * right now, hence not idle. */
        if (!engine__purge_candidate(e, ids.v[i], now) || berth__claim_whole_try(e, ids.v[i], &c) < 0)
            continue;
        berth_error_clear();
        n += (size_t)engine__purge_one(e, ids.v[i], ids.mtime[i], now);
        berth__unclaim(e, c, 0);
    }
    if (n > 0)
        berth_log_info("purge: removed %zu upload session(s)", n);
    if (purged != NULL)
        *purged = n;

done:
    free(ids.v);
    free(ids.mtime);
    return err;
}
