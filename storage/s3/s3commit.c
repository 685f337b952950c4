/*
 * Session data on S3, the end of a session (layout in s3.h): commit into a
 * blob, removal, and the listing for the purge.
 *
 * A session completes under its own key blobs/data/<id>; a small link
 * object under the digest names that key and the size, so no byte of the
 * blob is copied. So the data object of a committed session is a blob, and
 * data_remove must never delete it, even given a state from before the
 * commit. The session marker uploads/<id>/session tells: data_create
 * writes it, data_commit deletes it (with the staged pieces) after
 * completing the upload and before the link that makes the object a blob,
 * and data_remove deletes the object only while the marker is there (the
 * object then is a completion made to read a unit session back, or one
 * whose commit stopped before its link). A crash between the marker's
 * deletion and the link leaves an object no link names: garbage, never a
 * lost blob; a repeated commit links it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/validate.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3int.h"

typedef struct s3__keys {
    char **v;
    size_t n, cap;
} s3__keys_t;

static int s3__keys_add(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    s3__keys_t *k = ctx;

    if (k->n == k->cap) {
        size_t cap = k->cap != 0 ? k->cap * 2 : 16;
        void *v = realloc(k->v, cap * sizeof(*k->v));
        if (v == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        k->v = v;
        k->cap = cap;
    }
    if ((k->v[k->n] = strdup(key)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    k->n++;
    return 0;
}

static void s3__keys_clear(s3__keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof(*k));
}

/* Deletes every object under uploads/<id>/ (tail pieces, also those of
 * writers that died before their state was saved, and the session
 * marker); *n how many there were. With dkey, the data object goes first
 * when the marker says it is not a blob. */
static int s3__clear_uploads(berth_s3_t *s, const char *id, const char *dkey, size_t *n)
{
    char prefix[S3__KEY_MAX], mark[S3__KEY_MAX];
    s3__keys_t keys = {0};
    int err;

    *n = 0;
    if ((err = berth__s3_key(s, prefix, "uploads/%s/", id)) < 0 || (err = berth__s3_session_key(s, mark, id)) < 0 ||
        (err = berth__s3_list(s->c, prefix, s3__keys_add, &keys)) < 0)
        goto done;
    for (size_t i = 0; i < keys.n && dkey != NULL; i++)
        if (strcmp(keys.v[i], mark) == 0 && (err = berth__s3_delete(s->c, dkey)) < 0)
            goto done;
    if ((err = berth__s3_delete_many(s->c, keys.v, keys.n)) == 0)
        *n = keys.n;

done:
    s3__keys_clear(&keys);
    return err;
}

/* ---- commit ------------------------------------------------------------------ */

/* An append session: the staged tail becomes the last part (S3 allows it
 * to be short; an empty object still needs one empty part), then the
 * upload completes. 0 also when an earlier attempt completed it. */
static int s3__complete_append(berth_s3_t *s, const char *id, berth__s3_state_t *st, const char *dkey, uint64_t size)
{
    char etag[S3__ETAG_MAX], *tail = NULL;
    const char **ptrs = NULL;
    uint64_t committed = berth__s3_committed(st), have = 0;
    size_t nparts;
    int err = 0;

    if (size < committed)
        return berth_error_set(BERTH_EIO, "session %s: %" PRIu64 " bytes, but S3 holds parts of %" PRIu64, id, size,
                               committed);
    if (size > committed || committed == 0) {
        if ((tail = malloc(size > committed ? (size_t)(size - committed) : 1)) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        if ((err = berth__s3_assemble(s, id, st, committed, size, tail)) < 0)
            goto gone;
        if ((err = berth__s3_mpu_part(s->c, dkey, st->upload_id, json_array_size(st->etags) + 1, tail,
                                      (size_t)(size - committed), etag)) < 0)
            goto gone;
        if (json_array_append_new(st->etags, json_string(etag)) < 0) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
    }
    nparts = json_array_size(st->etags);
    if ((ptrs = calloc(nparts, sizeof(*ptrs))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nparts; i++)
        ptrs[i] = json_string_value(json_array_get(st->etags, i));
    err = berth__s3_mpu_complete(s->c, dkey, st->upload_id, ptrs, nparts);
gone:
    /* An earlier attempt completed the upload and stopped before its link
     * (kill -9): S3 says NoSuchUpload (moto: 500), the pieces may be gone.
     * The object with the session's size is that completion. */
    if (err < 0 && berth__s3_head(s->c, dkey, &have, NULL) == 0 && have == size)
        err = 0;

done:
    free(tail);
    free(ptrs);
    return err;
}

/* The blob is there already, made by another session: this one's copy goes
 * (its upload, or the object a completion made: the link names another). */
static int s3__drop_copy(berth_s3_t *s, const char *id, const berth__s3_state_t *st, const char *dkey)
{
    size_t n = 0;
    int err;

    if ((err = berth__s3_mpu_abort(s->c, dkey, st->upload_id)) == BERTH_ENOTFOUND)
        err = berth__s3_delete(s->c, dkey);
    if (err < 0)
        return err;
    return s3__clear_uploads(s, id, NULL, &n);
}

/* Before the link that makes the object a blob, the session marker goes,
 * with the staged pieces of an append session (a unit session has nothing
 * else under uploads/). */
static int s3__unmark(berth_s3_t *s, const char *id, const berth__s3_state_t *st)
{
    char mark[S3__KEY_MAX];
    size_t n = 0;
    int err;

    if (st->unit == 0)
        return s3__clear_uploads(s, id, NULL, &n);
    if ((err = berth__s3_session_key(s, mark, id)) < 0)
        return err;
    return berth__s3_delete(s->c, mark);
}

int berth__s3_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest)
{
    berth_s3_t *s = berth__s3_of(b);
    char dkey[S3__KEY_MAX];
    berth__s3_link_t link;
    berth__s3_state_t st;
    uint64_t have = 0;
    int err;

    if ((err = berth__s3_state_load(&st, id, state)) < 0 || (err = berth__s3_data_key(s, dkey, id)) < 0)
        goto done;
    if ((err = berth__s3_link_fetch(s, digest, &link, 1)) != BERTH_ENOTFOUND) {
        /* Committed by an earlier call (its link names this session's
         * object), or a duplicate. */
        if (err == 0 && strcmp(link.key, dkey) != 0)
            err = s3__drop_copy(s, id, &st, dkey);
        goto done;
    }
    if (st.unit == 0)
        err = s3__complete_append(s, id, &st, dkey, size);
    else
        err = berth__s3_complete_units(s, id, &st, dkey, size, &have);
    if (err < 0) {
        if (err != BERTH_ENOTFOUND && berth__s3_session_live(s, id) == BERTH_ENOTFOUND)
            err = BERTH_ENOTFOUND; /* removed meanwhile */
        goto done;
    }
    if ((err = s3__unmark(s, id, &st)) == 0)
        err = berth__s3_link_write(s, digest, dkey, size);

done:
    berth__s3_state_clear(&st);
    return err;
}

/* ---- remove ------------------------------------------------------------------ */

typedef struct s3__abort_ctx {
    berth_s3_t *s;
    const char *key;
    size_t aborted;
} s3__abort_ctx_t;

static int s3__abort_each(void *arg, const char *key, const char *upload_id, int64_t initiated)
{
    s3__abort_ctx_t *a = arg;
    int err;

    if (strcmp(key, a->key) != 0)
        return 0;
    if ((err = berth__s3_mpu_abort(a->s->c, key, upload_id)) < 0 && err != BERTH_ENOTFOUND)
        return err;
    a->aborted += err == 0;
    return 0;
}

int berth__s3_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    berth_s3_t *s = berth__s3_of(b);
    char dkey[S3__KEY_MAX];
    s3__abort_ctx_t a = {s, dkey, 0};
    berth__s3_state_t st;
    size_t n = 0;
    int err;

    memset(&st, 0, sizeof(st));
    if ((err = berth__s3_data_key(s, dkey, id)) < 0)
        goto done;
    /* The upload first, the pieces last: a failure half way leaves
     * something listed, so the purge tries again. Without a usable state,
     * the session's uploads are found by their key. */
    if (state != NULL && berth__s3_state_load(&st, id, state) == 0) {
        if ((err = berth__s3_mpu_abort(s->c, dkey, st.upload_id)) < 0 && err != BERTH_ENOTFOUND)
            goto done;
        a.aborted += err == 0;
    } else if ((err = berth__s3_mpu_list(s->c, dkey, s3__abort_each, &a)) < 0) {
        goto done;
    }
    if ((err = s3__clear_uploads(s, id, dkey, &n)) < 0)
        goto done;
    if (n == 0 && a.aborted == 0)
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: nothing stored", id);

done:
    berth__s3_state_clear(&st);
    return err;
}

/* ---- listing ------------------------------------------------------------------ */

typedef struct s3__seen {
    char id[BERTH_ID_LEN];
    int64_t mtime;
} s3__seen_t;

typedef struct s3__ids {
    s3__seen_t *v;
    size_t n, cap;
    size_t skip; /* the length of the listed prefix */
} s3__ids_t;

static int s3__ids_add(s3__ids_t *ids, const char *name, size_t len, int64_t mtime)
{
    if (!berth_id_valid(name, len))
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap != 0 ? ids->cap * 2 : 64;
        void *v = realloc(ids->v, cap * sizeof(*ids->v));
        if (v == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        ids->v = v;
        ids->cap = cap;
    }
    memcpy(ids->v[ids->n].id, name, len);
    ids->v[ids->n].id[len] = '\0';
    ids->v[ids->n].mtime = mtime;
    ids->n++;
    return 0;
}

/* "<root>uploads/<id>/...": the session of a staged piece or marker. */
static int s3__ids_from_key(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    s3__ids_t *ids = ctx;
    const char *rest = key + ids->skip, *slash;

    if (strlen(key) <= ids->skip || (slash = strchr(rest, '/')) == NULL)
        return 0;
    return s3__ids_add(ids, rest, (size_t)(slash - rest), mtime);
}

/* "<root>blobs/data/<id>": a multipart upload, perhaps of a session that
 * never saved a record. */
static int s3__ids_from_upload(void *ctx, const char *key, const char *upload_id, int64_t initiated)
{
    s3__ids_t *ids = ctx;

    if (strlen(key) <= ids->skip)
        return 0;
    return s3__ids_add(ids, key + ids->skip, strlen(key + ids->skip), initiated);
}

static int s3__seen_cmp(const void *a, const void *b)
{
    return strcmp(((const s3__seen_t *)a)->id, ((const s3__seen_t *)b)->id);
}

/* Each session once, with the time of its newest object (for an upload, the
 * time it was started: S3 lists no later one without a request per
 * upload). */
int berth__s3_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    berth_s3_t *s = berth__s3_of(b);
    char prefix[S3__KEY_MAX];
    s3__ids_t ids = {0};
    int err;

    if ((err = berth__s3_key(s, prefix, "uploads/")) < 0)
        goto done;
    ids.skip = strlen(prefix);
    if ((err = berth__s3_list(s->c, prefix, s3__ids_from_key, &ids)) < 0)
        goto done;
    if ((err = berth__s3_key(s, prefix, "blobs/data/")) < 0)
        goto done;
    ids.skip = strlen(prefix);
    if ((err = berth__s3_mpu_list(s->c, prefix, s3__ids_from_upload, &ids)) < 0)
        goto done;
    if (ids.n > 0)
        qsort(ids.v, ids.n, sizeof(*ids.v), s3__seen_cmp);
    for (size_t i = 0, j; i < ids.n; i = j) {
        int64_t mtime = ids.v[i].mtime;
        for (j = i + 1; j < ids.n && strcmp(ids.v[j].id, ids.v[i].id) == 0; j++)
            mtime = ids.v[j].mtime > mtime ? ids.v[j].mtime : mtime;
        if ((err = cb(ctx, ids.v[i].id, mtime)) != 0)
            goto done;
    }

done:
    free(ids.v);
    return err;
}
