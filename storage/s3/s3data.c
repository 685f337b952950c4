/*
 * Session data on S3, writes and reads (layout in s3.h, state in s3state.c).
 *
 * Append layouts. Bytes [0, P) are multipart parts of exactly `chunk` bytes
 * each (P = parts * chunk; R2 refuses unequal parts); bytes from P on are
 * staged in small "tail" objects, each written once by one writer under a
 * name no other writer uses, listed in the state in write order. A writer
 * takes pieces into a buffer of at most one part; when the staged bytes and
 * the buffer reach a part boundary it reads the staged pieces back (at most
 * chunk - 1 bytes), sends the part and goes on, so its memory stays about
 * one part. Bytes arriving at a boundary a whole part at a time go out
 * straight from the caller's buffer. At close it stages what is left as one
 * new piece; the pieces that became useless are only marked stale in the
 * new state and deleted by the next writer, once the engine has saved that
 * state: a crash anywhere leaves a saved state whose parts and pieces all
 * exist (tusd's s3store deletes the old tail first and can lose it).
 * No write asks S3 first whether the session is still there: into data
 * removed or committed meanwhile, a part fails (its upload is gone) and a
 * staged piece is debris that data_remove deletes (storage.h).
 * `chunk` is storage.s3.chunksize, or the expected size of the first write
 * when that is larger (up to S3__ADAPT_MAX): a client sending equal chunks
 * of that size then has each sent as one part, nothing staged or read back.
 *
 * Unit layouts. Unit k is multipart part k + 1: the writer buffers the unit
 * and sends it at close. S3 cannot read the parts of an unfinished upload,
 * so data_read completes the upload first once every unit is there.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/error.h"
#include "core/validate.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3int.h"

/* Staged pieces merged into one (with the new one) once there are this many. */
#define S3__MERGE_PIECES 32
/* Largest part size a session takes from its first write: a part is
 * assembled in memory. */
#define S3__ADAPT_MAX ((uint64_t)64 << 20)
/* First allocation of a writer's buffer; it doubles up to one part. */
#define S3__BUF_MIN ((size_t)64 << 10)

typedef struct s3__writer {
    berth_writer_t super;
    berth_s3_t *s;
    char id[BERTH_ID_LEN];
    char dkey[S3__KEY_MAX];
    berth__s3_state_t st; /* as given; parts sent by this writer appended */
    uint64_t start;       /* where this write began */
    uint64_t base;        /* append: the start of the part being filled */
    uint64_t pos;         /* the end of the bytes taken */
    uint64_t limit;       /* the most bytes the buffer holds: a part or the unit */
    char *buf;            /* bytes [base, pos) (append; [base, start) is read back
                             only to send a part), or the unit */
    size_t cap;
    int err; /* a write failed: the writer keeps nothing */
} s3__writer_t;

/* ---- create ----------------------------------------------------------------- */

/* What S3's multipart limits allow of a unit layout (messages the client
 * sees, in the terms of its part upload). */
static int s3__layout_check(const berth_layout_t *l)
{
    if (l->units > 1 && l->unit < BERTH_S3_MIN_PART)
        return berth_error_set(BERTH_EINVALID,
                               "part_size %" PRIu64 " is too small for S3 storage: every part but the last must be "
                               "at least 5 MiB (5242880 bytes); use a larger part_size or a single part",
                               l->unit);
    if (l->unit > BERTH_S3_MAX_PART)
        return berth_error_set(BERTH_EINVALID, "part_size %" PRIu64 " is too large for S3 storage: at most 5 GiB",
                               l->unit);
    if (l->units > BERTH_S3_MAX_PARTS || l->units == 0)
        return berth_error_set(BERTH_EINVALID, "total_parts %" PRIu64 " is not possible for S3 storage: 1 to %d",
                               l->units, BERTH_S3_MAX_PARTS);
    return 0;
}

int berth__s3_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    berth_s3_t *s = berth__s3_of(b);
    char key[S3__KEY_MAX];
    berth__s3_state_t st;
    int err;

    memset(&st, 0, sizeof(st));
    *state = NULL;
    if (layout->unit > 0 && (err = s3__layout_check(layout)) < 0)
        return err;
    st.unit = layout->unit;
    st.units = layout->units;
    st.chunk = s->chunk;
    if ((st.etags = json_array()) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    /* The marker first: a session the purge can see never lacks it. */
    if ((err = berth__s3_session_key(s, key, id)) < 0 || (err = berth__s3_put(s->c, key, "", 0, NULL, NULL, NULL)) < 0)
        goto done;
    if ((err = berth__s3_data_key(s, key, id)) < 0 || (err = berth__s3_mpu_create(s->c, key, st.upload_id)) < 0)
        goto done;
    if ((err = berth__s3_state_dump(&st, state)) < 0)
        berth__s3_mpu_abort(s->c, key, st.upload_id);

done:
    berth__s3_state_clear(&st);
    return err;
}

/* ---- writers ------------------------------------------------------------------ */

static void s3__writer_free(s3__writer_t *w)
{
    berth__s3_state_clear(&w->st);
    free(w->buf);
    free(w);
}

/* Room for `need` bytes in the buffer (at most w->limit). */
static int s3__reserve(s3__writer_t *w, uint64_t need)
{
    size_t cap = w->cap != 0 ? w->cap : S3__BUF_MIN;
    char *v;

    if (need <= w->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > w->limit)
        cap = (size_t)w->limit;
    if ((v = realloc(w->buf, cap)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    w->buf = v;
    w->cap = cap;
    return 0;
}

/* Where an append write may start: after the parts, within or at the end
 * of the staged bytes. The first write of an empty session may set the
 * part size from the size it announces. */
static int s3__open_append(s3__writer_t *w, uint64_t offset, uint64_t hint)
{
    berth__s3_state_t *st = &w->st;
    uint64_t committed = berth__s3_committed(st);

    berth__s3_drop_stale(w->s, w->id, st);
    if (offset < committed)
        return berth_error_set(BERTH_ERANGE, "session %s: offset %" PRIu64 " is inside a part already sent to S3",
                               w->id, offset);
    if (offset > berth__s3_coverage(st, committed))
        return berth_error_set(BERTH_ERANGE, "session %s: offset %" PRIu64 " is past the stored bytes", w->id, offset);
    if (offset == 0 && committed == 0 && hint > st->chunk && hint <= S3__ADAPT_MAX)
        st->chunk = hint;
    w->base = committed;
    w->limit = st->chunk;
    return 0;
}

static int s3__open_unit(s3__writer_t *w, uint64_t offset)
{
    const berth__s3_state_t *st = &w->st;

    if (offset % st->unit != 0 || offset / st->unit >= st->units)
        return berth_error_set(BERTH_ERANGE, "session %s: %" PRIu64 " is not where one of its %" PRIu64 " units starts",
                               w->id, offset, st->units);
    w->base = offset;
    w->limit = st->unit;
    return 0;
}

int berth__s3_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                        berth_writer_t **out)
{
    s3__writer_t *w;
    int err;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    w->super.storage = b;
    w->s = berth__s3_of(b);
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->start = w->pos = offset;
    if ((err = berth__s3_state_load(&w->st, id, state)) < 0 || (err = berth__s3_data_key(w->s, w->dkey, id)) < 0)
        goto done;
    err = w->st.unit > 0 ? s3__open_unit(w, offset) : s3__open_append(w, offset, hint);

done:
    if (err < 0)
        s3__writer_free(w);
    else
        *out = &w->super;
    return err;
}

/* A part that could not be sent, or staged bytes that could not be read
 * back for one: was the session's data removed or committed meanwhile? (S3
 * answers NoSuchUpload, moto a 500; the pieces are deleted.) One HEAD, on
 * failures only. */
static int s3__part_failed(s3__writer_t *w, int err)
{
    if ((err == BERTH_ENOTFOUND || err == BERTH_EUNAVAILABLE || err == BERTH_EIO) &&
        berth__s3_session_live(w->s, w->id) == BERTH_ENOTFOUND)
        return BERTH_ENOTFOUND;
    return err;
}

/* Sends the part starting at w->base from src (chunk bytes). */
static int s3__send_part(s3__writer_t *w, const void *src)
{
    char etag[S3__ETAG_MAX];
    uint64_t n = json_array_size(w->st.etags) + 1;
    int err;

    if (n > BERTH_S3_MAX_PARTS)
        return berth_error_set(BERTH_ETOOLARGE, "session %s: more than %d parts of %" PRIu64 " bytes", w->id,
                               BERTH_S3_MAX_PARTS, w->st.chunk);
    if ((err = berth__s3_mpu_part(w->s->c, w->dkey, w->st.upload_id, n, src, (size_t)w->st.chunk, etag)) < 0)
        return s3__part_failed(w, err);
    if (json_array_append_new(w->st.etags, json_string(etag)) < 0)
        return berth_error_set(BERTH_ERR, "out of memory");
    w->base += w->st.chunk;
    return 0;
}

static int s3__write_append(s3__writer_t *w, const char *p, size_t len)
{
    uint64_t chunk = w->st.chunk;
    int err;

    while (len > 0) {
        size_t n = (size_t)(w->base + chunk - w->pos) < len ? (size_t)(w->base + chunk - w->pos) : len;
        if (w->pos == w->base && len >= chunk) {
            /* A whole part at the boundary: straight from the caller. */
            if ((err = s3__send_part(w, p)) < 0)
                return err;
            w->pos += chunk;
            p += chunk;
            len -= (size_t)chunk;
            continue;
        }
        if ((err = s3__reserve(w, w->pos - w->base + n)) < 0)
            return err;
        memcpy(w->buf + (w->pos - w->base), p, n);
        w->pos += n;
        p += n;
        len -= n;
        if (w->pos < w->base + chunk)
            continue;
        /* The part is full: the staged bytes in front of this write's
         * come back from S3. */
        if (w->start > w->base && (err = berth__s3_assemble(w->s, w->id, &w->st, w->base, w->start, w->buf)) < 0)
            return s3__part_failed(w, err);
        if ((err = s3__send_part(w, w->buf)) < 0)
            return err;
    }
    return 0;
}

int berth__s3_writer_write(berth_writer_t *bw, const void *buf, size_t len)
{
    s3__writer_t *w = (s3__writer_t *)bw;
    int err;

    if (w->err < 0)
        return berth_error_set(w->err, "session %s: an earlier write failed", w->id);
    if (w->st.unit > 0) {
        if (w->pos - w->start + len > w->st.unit)
            err =
                berth_error_set(BERTH_ERANGE, "session %s: a unit holds at most %" PRIu64 " bytes", w->id, w->st.unit);
        else if ((err = s3__reserve(w, w->pos - w->start + len)) == 0) {
            memcpy(w->buf + (w->pos - w->start), buf, len);
            w->pos += len;
        }
    } else {
        err = s3__write_append(w, buf, len);
    }
    if (err < 0)
        w->err = err;
    return err;
}

/* A name for a new piece that no writer has used or will use: where it
 * starts, and 64 random bits (two writers of one session may both stage
 * the piece that starts at the same offset). */
static int s3__piece_name(char *out, uint64_t off)
{
    uint64_t r = 0;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return berth_error_set(BERTH_ERR, "getrandom failed");
    snprintf(out, S3__PIECE_NAME, "%" PRIu64 "-%016" PRIx64, off, r);
    return 0;
}

/* Keeps the pieces that still hold bytes in front of this write; the others
 * become stale. With too many left, they are merged into the new piece:
 * *from moves back to w->base and the buffer holds their bytes. */
static int s3__settle_pieces(s3__writer_t *w, uint64_t *from)
{
    berth__s3_state_t *st = &w->st;
    size_t kept = 0, n = st->npieces;
    int merge, err;

    for (size_t i = 0; i < n; i++)
        kept += st->pieces[i].off < w->start && st->pieces[i].off + st->pieces[i].len > w->base;
    merge = w->pos > *from && kept >= S3__MERGE_PIECES;
    if (merge && (err = berth__s3_assemble(w->s, w->id, st, w->base, w->start, w->buf)) < 0)
        return s3__part_failed(w, err);
    st->npieces = 0;
    for (size_t i = 0; i < n; i++) {
        berth__s3_piece_t p = st->pieces[i];
        if (!merge && p.off < w->start && p.off + p.len > w->base)
            st->pieces[st->npieces++] = p;
        else if ((err = berth__s3_stale_add(st, p.name)) < 0)
            return err;
    }
    if (merge)
        *from = w->base;
    return 0;
}

/* Stages the bytes not sent as parts as one new piece, and makes the new
 * state. Nothing asks first whether the session is still there (a HEAD
 * would double the requests of small writes): a piece staged into data
 * that was removed or committed meanwhile is debris under uploads/<id>/,
 * which no state names, data_list lists and data_remove deletes; it never
 * reaches a blob (storage.h). */
static int s3__close_append(s3__writer_t *w, char **state)
{
    char name[S3__PIECE_NAME], key[S3__KEY_MAX];
    uint64_t from = w->start > w->base ? w->start : w->base;
    int staged = 0, err;

    if ((err = s3__settle_pieces(w, &from)) < 0)
        return err;
    if (w->pos > from) {
        if ((err = s3__piece_name(name, from)) < 0 || (err = berth__s3_piece_key(w->s, key, w->id, name)) < 0 ||
            (err = berth__s3_put(w->s->c, key, w->buf + (from - w->base), (size_t)(w->pos - from), NULL, NULL, NULL)) <
                0)
            return err;
        staged = 1;
        err = berth__s3_piece_add(&w->st, from, w->pos - from, name);
    }
    w->st.size = w->pos;
    if (err == 0)
        err = berth__s3_state_dump(&w->st, state);
    /* No state names the piece: it goes (best effort). */
    if (err < 0 && staged)
        berth__s3_delete(w->s->c, key);
    return err;
}

int berth__s3_writer_close(berth_writer_t *bw, int keep, uint64_t *kept, char **state)
{
    s3__writer_t *w = (s3__writer_t *)bw;
    char etag[S3__ETAG_MAX];
    int err = 0;

    assert(kept != NULL && state != NULL); /* the wrapper's promise */
    *kept = 0;
    *state = NULL;
    /* keep == 0: this writer staged nothing yet (pieces are written only
     * here). Parts it sent are named by no state: the next write sends
     * those part numbers again, and a completion lists only named parts. */
    if (!keep)
        goto done;
    if (w->err < 0) {
        err = berth_error_set(w->err, "session %s: an earlier write failed", w->id);
        goto done;
    }
    if (w->st.unit > 0) {
        if ((err = berth__s3_mpu_part(w->s->c, w->dkey, w->st.upload_id, w->start / w->st.unit + 1, w->buf,
                                      (size_t)(w->pos - w->start), etag)) < 0)
            err = s3__part_failed(w, err);
    } else
        err = s3__close_append(w, state);
    if (err == 0)
        *kept = w->pos - w->start;

done:
    s3__writer_free(w);
    return err;
}

/* ---- reads ------------------------------------------------------------------- */

/* Only the staged bytes of an append session can be read back. */
static int s3__read_append(berth_s3_t *s, const char *id, const berth__s3_state_t *st, uint64_t offset, void *buf,
                           size_t len, size_t *got)
{
    uint64_t committed = berth__s3_committed(st), end = berth__s3_coverage(st, committed);
    int err;

    if (offset < committed)
        return berth_error_set(BERTH_EIO, "session %s: bytes already sent to S3 as parts cannot be read back", id);
    if (offset >= end)
        return 0;
    if (len > end - offset)
        len = (size_t)(end - offset);
    if ((err = berth__s3_assemble(s, id, st, offset, offset + len, buf)) == 0)
        *got = len;
    return err;
}

int berth__s3_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                        size_t *got)
{
    berth_s3_t *s = berth__s3_of(b);
    char dkey[S3__KEY_MAX];
    berth__s3_state_t st;
    uint64_t size = 0;
    int err;

    *got = 0;
    if ((err = berth__s3_state_load(&st, id, state)) < 0 || len == 0)
        goto done;
    if (st.unit == 0) {
        err = s3__read_append(s, id, &st, offset, buf, len, got);
        goto done;
    }
    if ((err = berth__s3_data_key(s, dkey, id)) < 0)
        goto done;
    if ((err = berth__s3_get_range(s->c, dkey, offset, buf, len, got)) != BERTH_ENOTFOUND)
        goto done;
    /* S3 cannot read the parts of an unfinished upload: complete it first,
     * which the engine needs only once every unit is there. (The session
     * marker says the object is no blob until a commit.) */
    if ((err = berth__s3_complete_units(s, id, &st, dkey, S3__ANY_SIZE, &size)) < 0)
        goto done;
    err = berth__s3_get_range(s->c, dkey, offset, buf, len, got);

done:
    berth__s3_state_clear(&st);
    return err;
}
