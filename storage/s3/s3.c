/*
 * The S3 backend (layout in s3.h).
 *
 * OCI sessions. Bytes [0, P) are committed multipart parts of exactly
 * `chunk` bytes each (P = parts * chunk); bytes from P on are staged in
 * small "tail" objects, each written once and never rewritten, listed in
 * the record in write order (a later piece wins where two overlap). A write
 * that makes the staged bytes reach a whole part reads the staged pieces
 * back (at most chunk - 1 bytes), sends the part, and stages what is left
 * as one new piece; the pieces it replaced are only marked stale in the new
 * record and deleted by the next call, once the engine has saved that
 * record. So a crash anywhere leaves a stored record whose pieces and parts
 * all exist (tusd's s3store deletes the old tail first and can lose it).
 * Parts are cut at exactly `chunk` bytes (R2 refuses unequal parts).
 * `chunk` is storage.s3.chunksize, or the session's first chunk when that
 * is larger (up to S3__ADAPT_MAX): a client sending equal chunks of that
 * size then has each one sent as a part straight from memory, nothing
 * staged or read back, and the session can still grow to 10,000 parts of
 * at least chunksize.
 *
 * Part sessions. Part n is multipart part n, written directly. S3 cannot
 * read back the parts of an unfinished multipart upload, so upload_read
 * completes the upload first when every part is there (the engine reads at
 * completion, to hash parts it could not hash from memory) and refuses
 * while parts are missing.
 *
 * Blobs. A session completes under its own key blobs/data/<id>; a small
 * link object under the digest names that key and the size, so no byte of
 * the blob is copied (s3blob.c: blobs, links, metadata).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/error.h"
#include "core/log.h"
#include "core/validate.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3client.h"
#include "storage/s3/s3int.h"
#include "storage/s3/s3ops.h"

/* Staged pieces merged into one once there are this many (tiny chunks). */
#define S3__MERGE_PIECES 32
/* Largest part size a session takes from its first chunk: a part is
 * assembled in memory when staged pieces are read back. */
#define S3__ADAPT_MAX ((uint64_t)64 << 20)

static berth_s3_t *s3__of(berth_storage_t *b)
{
    return (berth_s3_t *)b;
}

int berth__s3_key(const berth_s3_t *s, char *out, const char *fmt, ...)
{
    va_list ap;
    size_t p = strlen(s->prefix);
    int n;

    if (p >= S3__KEY_MAX)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    memcpy(out, s->prefix, p);
    va_start(ap, fmt);
    n = vsnprintf(out + p, S3__KEY_MAX - p, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= S3__KEY_MAX - p)
        return berth_error_set(BERTH_EINVALID, "s3: key too long");
    return 0;
}

/* ---- the session state in rec->backend ------------------------------------- */

typedef struct s3__piece {
    uint64_t off, len, gen;
} s3__piece_t;

typedef struct s3__state {
    char upload_id[S3__UPLOADID_MAX];
    uint64_t chunk;
    json_t *etags; /* array of strings, part n at n-1 */
    s3__piece_t *pieces;
    size_t npieces;
    uint64_t *stale;
    size_t nstale;
    uint64_t gen;
    int gone;      /* removed, or dropped as a duplicate: writes find nothing */
    int committed; /* completed into blobs/data/<id> */
} s3__state_t;

static void s3__state_clear(s3__state_t *st)
{
    json_decref(st->etags);
    free(st->pieces);
    free(st->stale);
    memset(st, 0, sizeof(*st));
}

static int s3__state_load(const berth_record_t *rec, s3__state_t *st)
{
    json_t *j = rec->backend, *v;
    const char *id;
    size_t i;

    memset(st, 0, sizeof(*st));
    if (j == NULL || !json_is_object(j) || (id = json_string_value(json_object_get(j, "uploadId"))) == NULL ||
        strlen(id) >= sizeof(st->upload_id))
        return berth_error_set(BERTH_EINVALID, "session %s: no S3 upload in its record", rec->id);
    snprintf(st->upload_id, sizeof(st->upload_id), "%s", id);
    st->chunk = (uint64_t)json_integer_value(json_object_get(j, "chunk"));
    st->gen = (uint64_t)json_integer_value(json_object_get(j, "gen"));
    st->gone = json_is_true(json_object_get(j, "gone"));
    st->committed = json_is_true(json_object_get(j, "committed"));
    v = json_object_get(j, "etags");
    st->etags = json_is_array(v) ? json_deep_copy(v) : json_array();
    if (st->etags == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    v = json_object_get(j, "pieces");
    if (json_is_array(v) && json_array_size(v) > 0) {
        if ((st->pieces = calloc(json_array_size(v), sizeof(*st->pieces))) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        json_t *p;
        json_array_foreach(v, i, p)
        {
            if (!json_is_array(p) || json_array_size(p) != 3)
                return berth_error_set(BERTH_EINVALID, "session %s: malformed S3 piece", rec->id);
            st->pieces[st->npieces].off = (uint64_t)json_integer_value(json_array_get(p, 0));
            st->pieces[st->npieces].len = (uint64_t)json_integer_value(json_array_get(p, 1));
            st->pieces[st->npieces].gen = (uint64_t)json_integer_value(json_array_get(p, 2));
            st->npieces++;
        }
    }
    v = json_object_get(j, "stale");
    if (json_is_array(v) && json_array_size(v) > 0) {
        if ((st->stale = calloc(json_array_size(v), sizeof(*st->stale))) == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        json_t *p;
        json_array_foreach(v, i, p) st->stale[st->nstale++] = (uint64_t)json_integer_value(p);
    }
    return 0;
}

/* Replaces rec->backend with st. */
/* s3__state_load, then BERTH_ENOTFOUND when the session's data is gone
 * (removed, or with `committed_gone` already committed). *st is loaded,
 * and must be cleared, either way. */
static int s3__state_live(const berth_record_t *rec, s3__state_t *st, int committed_gone)
{
    int err;

    if ((err = s3__state_load(rec, st)) < 0)
        return err;
    if (st->gone || (committed_gone && st->committed))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: its data is gone", rec->id);
    return 0;
}

static int s3__state_save(berth_record_t *rec, const s3__state_t *st)
{
    json_t *j = json_object(), *pieces = json_array(), *stale = json_array();
    int bad = j == NULL || pieces == NULL || stale == NULL;

    for (size_t i = 0; !bad && i < st->npieces; i++)
        bad =
            json_array_append_new(pieces, json_pack("[III]", (json_int_t)st->pieces[i].off,
                                                    (json_int_t)st->pieces[i].len, (json_int_t)st->pieces[i].gen)) < 0;
    for (size_t i = 0; !bad && i < st->nstale; i++)
        bad = json_array_append_new(stale, json_integer((json_int_t)st->stale[i])) < 0;
    if (!bad)
        bad = json_object_set_new(j, "uploadId", json_string(st->upload_id)) < 0 ||
              json_object_set_new(j, "chunk", json_integer((json_int_t)st->chunk)) < 0 ||
              json_object_set_new(j, "gen", json_integer((json_int_t)st->gen)) < 0 ||
              json_object_set(j, "etags", st->etags != NULL ? st->etags : json_array()) < 0 ||
              json_object_set(j, "pieces", pieces) < 0 || json_object_set(j, "stale", stale) < 0 ||
              (st->gone && json_object_set_new(j, "gone", json_true()) < 0) ||
              (st->committed && json_object_set_new(j, "committed", json_true()) < 0);
    json_decref(pieces);
    json_decref(stale);
    if (bad) {
        json_decref(j);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    json_decref(rec->backend);
    rec->backend = j;
    return 0;
}

static int s3__piece_key(const berth_s3_t *s, char *out, const char *id, uint64_t gen)
{
    return berth__s3_key(s, out, "uploads/%s/tail/%" PRIu64, id, gen);
}

static int s3__data_key(const berth_s3_t *s, char *out, const char *id)
{
    return berth__s3_key(s, out, "blobs/data/%s", id);
}

/* Deletes the pieces the saved record no longer names. Best effort: a
 * failure leaves them listed for the next time (and upload_remove deletes
 * everything under the session anyway). */
static void s3__drop_stale(berth_s3_t *s, const char *id, s3__state_t *st)
{
    char **keys;
    size_t n = 0;

    if (st->nstale == 0 || (keys = calloc(st->nstale, sizeof(*keys))) == NULL)
        return;
    for (size_t i = 0; i < st->nstale; i++) {
        if ((keys[n] = malloc(S3__KEY_MAX)) == NULL || s3__piece_key(s, keys[n], id, st->stale[i]) < 0) {
            free(keys[n]);
            continue;
        }
        n++;
    }
    if (berth__s3_delete_many(s->c, keys, n) == 0)
        st->nstale = 0;
    else
        berth_log_debug("session %s: stale tail pieces kept for later: %s", id, berth_error_last());
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* A write's bytes, in memory, seen as the newest piece. */
typedef struct s3__seg {
    uint64_t off, len;
    const char *buf;
} s3__seg_t;

/* End of the bytes covered without a gap from `from` by the pieces and seg. */
static uint64_t s3__coverage(const s3__state_t *st, const s3__seg_t *seg, uint64_t from)
{
    uint64_t e = from;
    int grew = 1;

    while (grew) {
        grew = 0;
        for (size_t i = 0; i < st->npieces; i++) {
            const s3__piece_t *p = &st->pieces[i];
            if (p->len > 0 && p->off <= e && p->off + p->len > e)
                e = p->off + p->len, grew = 1;
        }
        if (seg != NULL && seg->len > 0 && seg->off <= e && seg->off + seg->len > e)
            e = seg->off + seg->len, grew = 1;
    }
    return e;
}

/* Fills dst with bytes [a, b) of the session from the staged pieces (read
 * back) and seg, the later winning where they overlap. The caller checked
 * that they cover the range. */
static int s3__assemble(berth_s3_t *s, const char *id, const s3__state_t *st, const s3__seg_t *seg, uint64_t a,
                        uint64_t b, char *dst)
{
    char key[S3__KEY_MAX];
    int err;

    for (size_t i = 0; i < st->npieces; i++) {
        const s3__piece_t *p = &st->pieces[i];
        uint64_t lo = p->off > a ? p->off : a, hi = p->off + p->len < b ? p->off + p->len : b;
        size_t got = 0;
        if (lo >= hi)
            continue;
        /* Bytes the newer seg replaces need not be fetched. */
        if (seg != NULL && seg->off <= lo && seg->off + seg->len >= hi)
            continue;
        if ((err = s3__piece_key(s, key, id, p->gen)) < 0 ||
            (err = berth__s3_get_range(s->c, key, lo - p->off, dst + (lo - a), (size_t)(hi - lo), &got)) < 0)
            return err == BERTH_ENOTFOUND
                       ? berth_error_set(BERTH_EIO, "session %s: staged piece %s is missing", id, key)
                       : err;
        if (got != hi - lo)
            return berth_error_set(BERTH_EIO, "session %s: staged piece %s is short", id, key);
    }
    if (seg != NULL) {
        uint64_t lo = seg->off > a ? seg->off : a, hi = seg->off + seg->len < b ? seg->off + seg->len : b;
        if (lo < hi)
            memcpy(dst + (lo - a), seg->buf + (lo - seg->off), (size_t)(hi - lo));
    }
    return 0;
}

/* ---- records ---------------------------------------------------------------- */

static int s3__record_get(berth_storage_t *b, const char *id, char **buf, size_t *len)
{
    berth_s3_t *s = s3__of(b);
    char key[S3__KEY_MAX];
    int err;

    if ((err = berth__s3_key(s, key, "uploads/%s/record.json", id)) < 0)
        return err;
    return berth__s3_get(s->c, key, buf, len);
}

static int s3__record_put(berth_storage_t *b, const char *id, const char *buf, size_t len)
{
    berth_s3_t *s = s3__of(b);
    char key[S3__KEY_MAX];
    int err;

    /* A PUT replaces an object atomically: readers see old or new, whole. */
    if ((err = berth__s3_key(s, key, "uploads/%s/record.json", id)) < 0)
        return err;
    return berth__s3_put(s->c, key, buf, len, "application/json");
}

typedef struct s3__ids {
    char (*v)[BERTH_ID_LEN];
    size_t n, cap;
    size_t skip; /* prefix length to strip */
} s3__ids_t;

static int s3__ids_add(s3__ids_t *ids, const char *name, size_t len)
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
    memcpy(ids->v[ids->n], name, len);
    ids->v[ids->n][len] = '\0';
    ids->n++;
    return 0;
}

static int s3__ids_from_prefix(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    s3__ids_t *ids = ctx;
    size_t len = strlen(key);

    /* "<root>uploads/<id>/" */
    if (len <= ids->skip + 1)
        return 0;
    return s3__ids_add(ids, key + ids->skip, len - ids->skip - 1);
}

static int s3__ids_from_upload(void *ctx, const char *key, const char *upload_id)
{
    s3__ids_t *ids = ctx;
    size_t len = strlen(key);

    if (len <= ids->skip)
        return 0;
    return s3__ids_add(ids, key + ids->skip, len - ids->skip);
}

static int s3__ids_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Every session with a record or other objects under uploads/, and every
 * multipart upload under blobs/data/ (an upload whose session never stored
 * a record: purge finds it as a session without a record and aborts it). */
static int s3__record_list(berth_storage_t *b, berth_storage_list_cb cb, void *ctx)
{
    berth_s3_t *s = s3__of(b);
    char prefix[S3__KEY_MAX];
    s3__ids_t ids = {0};
    int err;

    if ((err = berth__s3_key(s, prefix, "uploads/")) < 0)
        goto done;
    ids.skip = strlen(prefix);
    if ((err = berth__s3_list(s->c, prefix, 1, s3__ids_from_prefix, &ids)) < 0)
        goto done;
    if ((err = berth__s3_key(s, prefix, "blobs/data/")) < 0)
        goto done;
    ids.skip = strlen(prefix);
    if ((err = berth__s3_mpu_list(s->c, prefix, s3__ids_from_upload, &ids)) < 0)
        goto done;
    if (ids.n > 0)
        qsort(ids.v, ids.n, sizeof(*ids.v), s3__ids_cmp);
    for (size_t i = 0; i < ids.n; i++) {
        if (i > 0 && strcmp(ids.v[i], ids.v[i - 1]) == 0)
            continue;
        if ((err = cb(ctx, ids.v[i])) != 0)
            goto done;
    }

done:
    free(ids.v);
    return err;
}

/* ---- uploads ---------------------------------------------------------------- */

static int s3__upload_create(berth_storage_t *b, berth_record_t *rec)
{
    berth_s3_t *s = s3__of(b);
    char key[S3__KEY_MAX];
    s3__state_t st;
    int err;

    memset(&st, 0, sizeof(st));
    if ((err = s3__data_key(s, key, rec->id)) < 0 || (err = berth__s3_mpu_create(s->c, key, st.upload_id)) < 0)
        return err;
    st.chunk = s->chunk;
    st.etags = json_array();
    err = s3__state_save(rec, &st);
    s3__state_clear(&st);
    return err;
}

/* Sends bytes [from, to) of the staged region as parts of st->chunk bytes,
 * then stages what is left as one new piece, and marks the pieces it
 * replaced stale. [from, to) is covered by pieces and seg; `to` is the end
 * of that coverage. Parts wholly inside seg go out straight from it. */
static int s3__flush(berth_s3_t *s, const berth_record_t *rec, s3__state_t *st, const s3__seg_t *seg, uint64_t to,
                     int parts)
{
    char dkey[S3__KEY_MAX], pkey[S3__KEY_MAX], etag[S3__ETAG_MAX];
    uint64_t from = (uint64_t)json_array_size(st->etags) * st->chunk;
    char *tmp = NULL;
    s3__piece_t *keep = NULL;
    size_t nkeep = 0, nstale;
    uint64_t *stale = NULL;
    int err;

    if ((err = s3__data_key(s, dkey, rec->id)) < 0)
        return err;
    while (parts && to - from >= st->chunk) {
        uint64_t n = from / st->chunk + 1;
        const char *src;
        if (n > BERTH_S3_MAX_PARTS) {
            err = berth_error_set(BERTH_ETOOLARGE, "session %s: more than %d parts of %" PRIu64 " bytes", rec->id,
                                  BERTH_S3_MAX_PARTS, st->chunk);
            goto done;
        }
        if (seg->off <= from && seg->off + seg->len >= from + st->chunk) {
            src = seg->buf + (from - seg->off);
        } else {
            if (tmp == NULL && (tmp = malloc(st->chunk)) == NULL) {
                err = berth_error_set(BERTH_ERR, "out of memory");
                goto done;
            }
            if ((err = s3__assemble(s, rec->id, st, seg, from, from + st->chunk, tmp)) < 0)
                goto done;
            src = tmp;
        }
        if ((err = berth__s3_mpu_part(s->c, dkey, st->upload_id, n, src, (size_t)st->chunk, etag)) < 0)
            goto done;
        if (json_array_append_new(st->etags, json_string(etag)) < 0) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        from += st->chunk;
    }

    /* The pieces past the coverage stay; those inside it are replaced. */
    if ((keep = calloc(st->npieces + 1, sizeof(*keep))) == NULL ||
        (stale = calloc(st->nstale + st->npieces + 1, sizeof(*stale))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if (st->nstale > 0)
        memcpy(stale, st->stale, st->nstale * sizeof(*stale));
    nstale = st->nstale;
    for (size_t i = 0; i < st->npieces; i++) {
        if (st->pieces[i].off > to)
            keep[nkeep++] = st->pieces[i];
        else
            stale[nstale++] = st->pieces[i].gen;
    }
    if (to > from) {
        const char *src;
        if (seg->off <= from && seg->off + seg->len >= to) {
            src = seg->buf + (from - seg->off);
        } else {
            if (tmp == NULL && (tmp = malloc(st->chunk)) == NULL) {
                err = berth_error_set(BERTH_ERR, "out of memory");
                goto done;
            }
            if ((err = s3__assemble(s, rec->id, st, seg, from, to, tmp)) < 0)
                goto done;
            src = tmp;
        }
        if ((err = s3__piece_key(s, pkey, rec->id, st->gen)) < 0 ||
            (err = berth__s3_put(s->c, pkey, src, (size_t)(to - from), NULL)) < 0)
            goto done;
        keep[nkeep++] = (s3__piece_t){from, to - from, st->gen++};
    }
    free(st->pieces);
    free(st->stale);
    st->pieces = keep;
    st->npieces = nkeep;
    st->stale = stale;
    st->nstale = nstale;
    keep = NULL;
    stale = NULL;

done:
    free(tmp);
    free(keep);
    free(stale);
    return err;
}

static int s3__write_oci(berth_s3_t *s, berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    s3__seg_t seg = {offset, len, buf};
    char pkey[S3__KEY_MAX];
    s3__state_t st;
    uint64_t committed, end, contiguous = 0;
    int err;

    if ((err = s3__state_live(rec, &st, 1)) < 0)
        goto done;
    if (st.chunk < BERTH_S3_MIN_PART)
        st.chunk = s->chunk;
    s3__drop_stale(s, rec->id, &st);
    committed = (uint64_t)json_array_size(st.etags) * st.chunk;
    if (offset < committed) {
        err = berth_error_set(BERTH_ERANGE, "session %s: offset %" PRIu64 " is inside a part already sent to S3",
                              rec->id, offset);
        goto done;
    }
    if (len == 0)
        goto save;
    /* Nothing sent or staged yet: the first chunk may set the part size. */
    if (offset == 0 && committed == 0 && st.npieces == 0 && len > s->chunk && len <= S3__ADAPT_MAX)
        st.chunk = len;
    end = s3__coverage(&st, &seg, committed);
    for (size_t i = 0; i < st.npieces; i++)
        contiguous += st.pieces[i].off <= end;
    if (seg.off <= end && end - committed >= st.chunk) {
        err = s3__flush(s, rec, &st, &seg, end, 1);
    } else if (seg.off <= end && contiguous >= S3__MERGE_PIECES) {
        /* Tiny chunks: one piece instead of many, so that the record and the
         * reads at the next part stay small. */
        err = s3__flush(s, rec, &st, &seg, end, 0);
    } else {
        /* The common case: the chunk staged as it is, nothing read back. */
        s3__piece_t *v = realloc(st.pieces, (st.npieces + 1) * sizeof(*v));
        if (v == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        st.pieces = v;
        if ((err = s3__piece_key(s, pkey, rec->id, st.gen)) < 0 ||
            (err = berth__s3_put(s->c, pkey, buf, len, NULL)) < 0)
            goto done;
        st.pieces[st.npieces++] = (s3__piece_t){offset, len, st.gen++};
    }
    if (err < 0)
        goto done;
save:
    err = s3__state_save(rec, &st);

done:
    s3__state_clear(&st);
    return err;
}

static int s3__upload_write(berth_storage_t *b, berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    berth_s3_t *s = s3__of(b);
    char key[S3__KEY_MAX], etag[S3__ETAG_MAX];
    s3__state_t st;
    int err;

    if (rec->kind == BERTH_SESSION_OCI)
        return s3__write_oci(s, rec, offset, buf, len);
    /* Part sessions: part n is S3 part n. */
    if (rec->part_size == 0 || offset % rec->part_size != 0)
        return berth_error_set(BERTH_EINVALID, "session %s: write at %" PRIu64 " is not a part boundary", rec->id,
                               offset);
    if ((err = s3__state_live(rec, &st, 0)) < 0)
        goto done;
    if ((err = s3__data_key(s, key, rec->id)) < 0)
        goto done;
    err = berth__s3_mpu_part(s->c, key, st.upload_id, offset / rec->part_size + 1, buf, len, etag);

done:
    s3__state_clear(&st);
    return err;
}

/* Completes a part session's multipart upload from its listed parts; 0 also
 * when an earlier call did (the object is there with the session's size). */
static int s3__complete_parts(berth_s3_t *s, berth_record_t *rec, const char *upload_id, const char *key)
{
    char *etags = NULL;
    const char **ptrs = NULL;
    uint64_t *sizes = NULL, count = 0, have = 0, total = 0;
    int err;

    if (rec->total_parts == 0 || rec->total_parts > BERTH_S3_MAX_PARTS)
        return berth_error_set(BERTH_EINVALID, "session %s: %" PRIu64 " parts", rec->id, rec->total_parts);
    if ((etags = calloc(rec->total_parts, S3__ETAG_MAX)) == NULL ||
        (sizes = calloc(rec->total_parts, sizeof(*sizes))) == NULL ||
        (ptrs = calloc(rec->total_parts, sizeof(*ptrs))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth__s3_mpu_list_parts(s->c, key, upload_id, rec->total_parts, etags, sizes, &count)) < 0) {
        if (err == BERTH_ENOTFOUND && berth__s3_head(s->c, key, &have) == 0 && have == rec->offset)
            err = 0;
        goto done;
    }
    if (count != rec->total_parts) {
        err = berth_error_set(BERTH_EIO, "session %s: S3 holds %" PRIu64 " of %" PRIu64 " parts", rec->id, count,
                              rec->total_parts);
        goto done;
    }
    for (uint64_t i = 0; i < rec->total_parts; i++) {
        ptrs[i] = etags + i * S3__ETAG_MAX;
        total += sizes[i];
    }
    if (total != rec->offset) {
        err = berth_error_set(BERTH_EIO, "session %s: S3 parts hold %" PRIu64 " bytes, the record %" PRIu64, rec->id,
                              total, rec->offset);
        goto done;
    }
    if ((err = berth__s3_mpu_complete(s->c, key, upload_id, ptrs, rec->total_parts)) == BERTH_ENOTFOUND &&
        berth__s3_head(s->c, key, &have) == 0 && have == rec->offset)
        err = 0;

done:
    free(etags);
    free(sizes);
    free(ptrs);
    return err;
}

static int s3__commit_oci(berth_s3_t *s, berth_record_t *rec, const char *digest)
{
    char dkey[S3__KEY_MAX], etag[S3__ETAG_MAX];
    const char **ptrs = NULL;
    char *tail = NULL;
    s3__state_t st;
    uint64_t committed, size = rec->offset, have = 0;
    size_t nparts;
    int err;

    if ((err = s3__state_live(rec, &st, 0)) < 0)
        goto done;
    if (st.chunk < BERTH_S3_MIN_PART)
        st.chunk = s->chunk;
    if ((err = s3__data_key(s, dkey, rec->id)) < 0)
        goto done;
    if (st.committed)
        goto link;
    s3__drop_stale(s, rec->id, &st);
    /* The blob is there already: drop this copy. */
    if (berth__s3_link_fetch(s, digest, NULL, 1) == 0) {
        if ((err = berth__s3_mpu_abort(s->c, dkey, st.upload_id)) < 0 && err != BERTH_ENOTFOUND)
            goto done;
        st.gone = 1;
        err = s3__state_save(rec, &st);
        goto done;
    }
    committed = (uint64_t)json_array_size(st.etags) * st.chunk;
    if (size < committed) {
        err = berth_error_set(BERTH_EIO, "session %s: the record claims %" PRIu64 " bytes, S3 holds parts of %" PRIu64,
                              rec->id, size, committed);
        goto done;
    }
    /* The staged tail becomes the last part (S3 allows it to be short; an
     * empty object still needs one empty part). */
    if (size > committed || committed == 0) {
        uint64_t n = json_array_size(st.etags) + 1;
        if (s3__coverage(&st, NULL, committed) < size) {
            err = berth_error_set(BERTH_EIO, "session %s: staged bytes end before %" PRIu64, rec->id, size);
            goto done;
        }
        if ((tail = malloc(size > committed ? (size_t)(size - committed) : 1)) == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
        if ((err = s3__assemble(s, rec->id, &st, NULL, committed, size, tail)) < 0)
            goto done;
        if ((err = berth__s3_mpu_part(s->c, dkey, st.upload_id, n, tail, (size_t)(size - committed), etag)) < 0) {
            /* An earlier attempt completed the upload and stopped before its
             * link (kill -9): S3 says NoSuchUpload (moto: 500). The object
             * with the session's size is that completion. */
            if (berth__s3_head(s->c, dkey, &have) < 0 || have != size)
                goto done;
            goto completed;
        }
        if (json_array_append_new(st.etags, json_string(etag)) < 0) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto done;
        }
    }
    nparts = json_array_size(st.etags);
    if ((ptrs = calloc(nparts, sizeof(*ptrs))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nparts; i++)
        ptrs[i] = json_string_value(json_array_get(st.etags, i));
    if ((err = berth__s3_mpu_complete(s->c, dkey, st.upload_id, ptrs, nparts)) < 0) {
        /* Completed by an earlier attempt that stopped before its link. */
        if (berth__s3_head(s->c, dkey, &have) < 0 || have != size)
            goto done;
    }
completed:
    st.committed = 1;
link:
    if ((err = berth__s3_link_write(s, digest, dkey, size)) < 0)
        goto done;
    st.committed = 1;
    err = s3__state_save(rec, &st);

done:
    free(tail);
    free(ptrs);
    s3__state_clear(&st);
    return err;
}

static int s3__upload_commit(berth_storage_t *b, berth_record_t *rec, const char *digest)
{
    berth_s3_t *s = s3__of(b);
    char dkey[S3__KEY_MAX];
    s3__state_t st;
    int err;

    if (rec->kind == BERTH_SESSION_OCI)
        return s3__commit_oci(s, rec, digest);
    if ((err = s3__state_live(rec, &st, 0)) < 0)
        goto done;
    if ((err = s3__data_key(s, dkey, rec->id)) < 0)
        goto done;
    if (berth__s3_link_fetch(s, digest, NULL, 1) == 0) {
        /* A duplicate: the upload goes, or the object upload_read made. */
        if ((err = berth__s3_mpu_abort(s->c, dkey, st.upload_id)) == BERTH_ENOTFOUND)
            err = berth__s3_delete(s->c, dkey);
        goto done;
    }
    if ((err = s3__complete_parts(s, rec, st.upload_id, dkey)) < 0)
        goto done;
    err = berth__s3_link_write(s, digest, dkey, rec->offset);

done:
    s3__state_clear(&st);
    return err;
}

typedef struct s3__abort_ctx {
    berth_s3_t *s;
    const char *key;
    int aborted;
} s3__abort_ctx_t;

static int s3__abort_each(void *arg, const char *key, const char *upload_id)
{
    s3__abort_ctx_t *a = arg;
    int err;

    if (strcmp(key, a->key) != 0)
        return 0;
    if ((err = berth__s3_mpu_abort(a->s->c, key, upload_id)) < 0 && err != BERTH_ENOTFOUND)
        return err;
    a->aborted++;
    return 0;
}

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

static int s3__upload_remove(berth_storage_t *b, const char *id, berth_record_t *rec)
{
    berth_s3_t *s = s3__of(b);
    char dkey[S3__KEY_MAX], prefix[S3__KEY_MAX];
    s3__abort_ctx_t a = {s, dkey, 0};
    s3__keys_t keys = {0};
    s3__state_t st;
    int have_state = 0, err;

    memset(&st, 0, sizeof(st));
    if ((err = s3__data_key(s, dkey, id)) < 0 || (err = berth__s3_key(s, prefix, "uploads/%s/", id)) < 0)
        goto done;
    have_state = rec != NULL && s3__state_load(rec, &st) == 0;
    /* The multipart upload first, the record last: a failure half way
     * leaves a record, so purge tries again. */
    if (have_state && !st.gone && !st.committed) {
        if ((err = berth__s3_mpu_abort(s->c, dkey, st.upload_id)) == 0)
            a.aborted++;
        else if (err != BERTH_ENOTFOUND)
            goto done;
    } else if (!have_state) {
        if ((err = berth__s3_mpu_list(s->c, dkey, s3__abort_each, &a)) < 0)
            goto done;
    }
    /* A failed or aborted part session may have been completed for reading
     * (upload_read); that object is not a blob. */
    if (rec != NULL && rec->kind == BERTH_SESSION_PARTS &&
        (rec->status == BERTH_STATUS_FAILED || rec->status == BERTH_STATUS_ABORTED) &&
        (err = berth__s3_delete(s->c, dkey)) < 0)
        goto done;
    if ((err = berth__s3_list(s->c, prefix, 0, s3__keys_add, &keys)) < 0)
        goto done;
    if (keys.n == 0 && a.aborted == 0) {
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: nothing stored", id);
        goto done;
    }
    /* The record sorts before "tail/": move it last. */
    for (size_t i = 0; i + 1 < keys.n; i++) {
        if (strstr(keys.v[i], "/record.json") != NULL) {
            char *t = keys.v[i];
            keys.v[i] = keys.v[keys.n - 1];
            keys.v[keys.n - 1] = t;
            break;
        }
    }
    if ((err = berth__s3_delete_many(s->c, keys.v, keys.n)) < 0)
        goto done;
    if (have_state) {
        st.gone = 1;
        st.npieces = 0;
        st.nstale = 0;
        err = s3__state_save(rec, &st);
    }

done:
    s3__keys_clear(&keys);
    s3__state_clear(&st);
    return err;
}

static int s3__upload_read(berth_storage_t *b, berth_record_t *rec, uint64_t offset, void *buf, size_t len, size_t *got)
{
    berth_s3_t *s = s3__of(b);
    char dkey[S3__KEY_MAX];
    s3__state_t st;
    int err;

    *got = 0;
    if ((err = s3__state_live(rec, &st, 0)) < 0)
        goto done;
    if (len == 0 || (err = s3__data_key(s, dkey, rec->id)) < 0)
        goto done;
    if (rec->kind == BERTH_SESSION_OCI) {
        /* Only the staged bytes can be read back. */
        uint64_t committed = (uint64_t)json_array_size(st.etags) * (st.chunk ? st.chunk : s->chunk);
        uint64_t end = s3__coverage(&st, NULL, committed);
        if (offset < committed) {
            err = berth_error_set(BERTH_EIO, "session %s: bytes already sent to S3 as parts cannot be read back",
                                  rec->id);
            goto done;
        }
        if (offset >= end)
            goto done;
        if (len > end - offset)
            len = (size_t)(end - offset);
        if ((err = s3__assemble(s, rec->id, &st, NULL, offset, offset + len, buf)) == 0)
            *got = len;
        goto done;
    }
    if (rec->offset <= offset)
        goto done;
    if (len > rec->offset - offset)
        len = (size_t)(rec->offset - offset);
    err = berth__s3_get_range(s->c, dkey, offset, buf, len, got);
    if (err == BERTH_ENOTFOUND) {
        /* S3 cannot read the parts of an unfinished upload: complete it
         * first, which the engine only needs once every part is there. */
        if (berth_rangeset_count(&rec->received) != rec->total_parts) {
            err = berth_error_set(BERTH_EIO, "session %s: S3 cannot read back parts before all are stored", rec->id);
            goto done;
        }
        if ((err = s3__complete_parts(s, rec, st.upload_id, dkey)) < 0)
            goto done;
        err = berth__s3_get_range(s->c, dkey, offset, buf, len, got);
    }

done:
    s3__state_clear(&st);
    return err;
}

static int s3__upload_parts_check(berth_storage_t *b, uint64_t part_size, uint64_t total_parts)
{
    if (total_parts > 1 && part_size < BERTH_S3_MIN_PART)
        return berth_error_set(BERTH_EINVALID,
                               "part_size %" PRIu64 " is too small for S3 storage: every part but the last must be "
                               "at least 5 MiB (5242880 bytes); use a larger part_size or a single part",
                               part_size);
    if (part_size > BERTH_S3_MAX_PART)
        return berth_error_set(BERTH_EINVALID, "part_size %" PRIu64 " is too large for S3 storage: at most 5 GiB",
                               part_size);
    if (total_parts > BERTH_S3_MAX_PARTS)
        return berth_error_set(BERTH_EINVALID, "total_parts %" PRIu64 " is too many for S3 storage: at most %d",
                               total_parts, BERTH_S3_MAX_PARTS);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void s3__free(berth_storage_t *b)
{
    berth_s3_t *s = s3__of(b);

    if (s == NULL)
        return;
    berth_s3_client_free(s->c);
    pthread_mutex_destroy(&s->lock);
    free(s->prefix);
    free(s);
}

int berth_storage_s3_new(berth_storage_t **out, const berth_s3_options_t *o)
{
    berth_s3_client_options_t co;
    berth_s3_t *s;
    const char *root;
    size_t len;
    int err;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "s3_new: missing argument");
    *out = NULL;
    if (o == NULL || o->bucket == NULL)
        return berth_error_set(BERTH_EINVALID, "storage.s3.bucket is not set");
    if (o->chunksize < BERTH_S3_MIN_PART || o->chunksize > BERTH_S3_MAX_PART)
        return berth_error_set(BERTH_EINVALID, "storage.s3.chunksize must be 5 MiB to 5 GiB");
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->super.version = 4;
    s->super.name = "s3";
    s->super.free = s3__free;
    s->super.record_get = s3__record_get;
    s->super.record_put = s3__record_put;
    s->super.record_list = s3__record_list;
    s->super.upload_create = s3__upload_create;
    s->super.upload_write = s3__upload_write;
    s->super.upload_commit = s3__upload_commit;
    s->super.upload_remove = s3__upload_remove;
    s->super.upload_read = s3__upload_read;
    s->super.upload_parts_check = s3__upload_parts_check;
    berth__s3_blob_methods(&s->super);
    s->chunk = o->chunksize;
    s->redirect = o->redirect;

    /* "/a/b/" -> "a/b/": keys never start with a slash. */
    root = o->rootdirectory != NULL ? o->rootdirectory : "";
    while (*root == '/')
        root++;
    len = strlen(root);
    while (len > 0 && root[len - 1] == '/')
        len--;
    if ((s->prefix = malloc(len + 2)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    memcpy(s->prefix, root, len);
    if (len > 0)
        s->prefix[len++] = '/';
    s->prefix[len] = '\0';

    memset(&co, 0, sizeof(co));
    co.bucket = o->bucket;
    co.region = o->region;
    co.endpoint = o->regionendpoint;
    co.secure = o->secure;
    co.accesskey = o->accesskey;
    co.secretkey = o->secretkey;
    co.connect_timeout_ms = o->connect_timeout_ms;
    co.timeout_ms = o->timeout_ms;
    co.max_retries = o->max_retries;
    if ((err = berth_s3_client_new(&s->c, &co)) < 0)
        goto done;
    *out = &s->super;
    s = NULL;

done:
    if (s != NULL)
        s3__free(&s->super);
    return err;
}
