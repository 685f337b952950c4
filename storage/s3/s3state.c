/*
 * The S3 session state (s3int.h): the string the engine keeps in a session
 * record and hands back, which only this backend reads. JSON:
 *
 *   append layouts  {"uploadId": "...", "chunk": 5242880, "size": 7340032,
 *                    "etags": ["\"<md5>\"", ...],
 *                    "pieces": [[5242880, 2097152, "<name>"], ...],
 *                    "stale": ["<name>", ...]}
 *   unit layouts    {"uploadId": "...", "unit": 8388608, "units": 12}
 *
 * and what reads the staged pieces back, which writes, reads and commits
 * all need.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "storage/s3/s3.h"
#include "storage/s3/s3int.h"

int berth__s3_data_key(const berth_s3_t *s, char *out, const char *id)
{
    return berth__s3_key(s, out, "blobs/data/%s", id);
}

int berth__s3_piece_key(const berth_s3_t *s, char *out, const char *id, const char *name)
{
    return berth__s3_key(s, out, "uploads/%s/tail/%s", id, name);
}

int berth__s3_session_key(const berth_s3_t *s, char *out, const char *id)
{
    return berth__s3_key(s, out, "uploads/%s/session", id);
}

int berth__s3_session_live(berth_s3_t *s, const char *id)
{
    char key[S3__KEY_MAX];
    int err;

    if ((err = berth__s3_session_key(s, key, id)) < 0 || (err = berth__s3_head(s->c, key, NULL, NULL)) == 0)
        return err;
    if (err == BERTH_ENOTFOUND)
        return berth_error_set(BERTH_ENOTFOUND, "session %s: its data is gone", id);
    return err;
}

void berth__s3_state_clear(berth__s3_state_t *st)
{
    json_decref(st->etags);
    free(st->pieces);
    free(st->stale);
    memset(st, 0, sizeof(*st));
}

uint64_t berth__s3_committed(const berth__s3_state_t *st)
{
    return (uint64_t)json_array_size(st->etags) * st->chunk;
}

/* Piece names become key components: plain characters only. */
static int s3__name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n >= S3__PIECE_NAME)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n && name[0] != '.';
}

int berth__s3_piece_add(berth__s3_state_t *st, uint64_t off, uint64_t len, const char *name)
{
    berth__s3_piece_t *v = realloc(st->pieces, (st->npieces + 1) * sizeof(*v));

    if (v == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    st->pieces = v;
    v[st->npieces].off = off;
    v[st->npieces].len = len;
    snprintf(v[st->npieces].name, S3__PIECE_NAME, "%s", name);
    st->npieces++;
    return 0;
}

int berth__s3_stale_add(berth__s3_state_t *st, const char *name)
{
    void *v = realloc(st->stale, (st->nstale + 1) * sizeof(*st->stale));

    if (v == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    st->stale = v;
    snprintf(st->stale[st->nstale++], S3__PIECE_NAME, "%s", name);
    return 0;
}

/* The append fields: parts, pieces, stale names. */
static int s3__load_append(berth__s3_state_t *st, json_t *j)
{
    json_t *v = json_object_get(j, "etags"), *p;
    size_t i;
    int err = 0;

    st->chunk = (uint64_t)json_integer_value(json_object_get(j, "chunk"));
    st->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    if (st->chunk < BERTH_S3_MIN_PART || !json_is_array(v))
        return BERTH_EINVALID;
    json_array_foreach(v, i, p)
    {
        if (!json_is_string(p))
            return BERTH_EINVALID;
    }
    if ((st->etags = json_deep_copy(v)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    json_array_foreach(json_object_get(j, "pieces"), i, p)
    {
        json_int_t off = json_integer_value(json_array_get(p, 0)), len = json_integer_value(json_array_get(p, 1));
        const char *name = json_string_value(json_array_get(p, 2));
        if (off < 0 || len < 0 || !s3__name_ok(name))
            return BERTH_EINVALID;
        if ((err = berth__s3_piece_add(st, (uint64_t)off, (uint64_t)len, name)) < 0)
            return err;
    }
    json_array_foreach(json_object_get(j, "stale"), i, p)
    {
        if (!s3__name_ok(json_string_value(p)))
            return BERTH_EINVALID;
        if ((err = berth__s3_stale_add(st, json_string_value(p))) < 0)
            return err;
    }
    return 0;
}

int berth__s3_state_load(berth__s3_state_t *st, const char *id, const char *text)
{
    json_t *j = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *upload_id = json_string_value(json_object_get(j, "uploadId"));
    int err = BERTH_EINVALID;

    memset(st, 0, sizeof(*st));
    if (upload_id == NULL || upload_id[0] == '\0' || strlen(upload_id) >= sizeof(st->upload_id))
        goto done;
    snprintf(st->upload_id, sizeof(st->upload_id), "%s", upload_id);
    st->unit = (uint64_t)json_integer_value(json_object_get(j, "unit"));
    st->units = (uint64_t)json_integer_value(json_object_get(j, "units"));
    if (st->unit > 0)
        err = st->units > 0 && st->units <= BERTH_S3_MAX_PARTS ? 0 : BERTH_EINVALID;
    else
        err = s3__load_append(st, j);

done:
    json_decref(j);
    if (err == BERTH_EINVALID)
        return berth_error_set(BERTH_EINVALID, "session %s: not a state of the S3 backend", id);
    return err;
}

int berth__s3_state_dump(const berth__s3_state_t *st, char **out)
{
    json_t *j, *pieces = json_array(), *stale = json_array();
    int bad;

    if (st->unit > 0)
        j = json_pack("{sssIsI}", "uploadId", st->upload_id, "unit", (json_int_t)st->unit, "units",
                      (json_int_t)st->units);
    else
        j = json_pack("{sssIsIsO}", "uploadId", st->upload_id, "chunk", (json_int_t)st->chunk, "size",
                      (json_int_t)st->size, "etags", st->etags);
    bad = j == NULL || pieces == NULL || stale == NULL;
    for (size_t i = 0; !bad && i < st->npieces; i++)
        bad = json_array_append_new(pieces, json_pack("[IIs]", (json_int_t)st->pieces[i].off,
                                                      (json_int_t)st->pieces[i].len, st->pieces[i].name)) < 0;
    for (size_t i = 0; !bad && i < st->nstale; i++)
        bad = json_array_append_new(stale, json_string(st->stale[i])) < 0;
    if (!bad && st->unit == 0)
        bad = json_object_set(j, "pieces", pieces) < 0 || json_object_set(j, "stale", stale) < 0;
    *out = bad ? NULL : json_dumps(j, JSON_COMPACT);
    json_decref(j);
    json_decref(pieces);
    json_decref(stale);
    return *out != NULL ? 0 : berth_error_set(BERTH_ERR, "out of memory");
}

uint64_t berth__s3_coverage(const berth__s3_state_t *st, uint64_t from)
{
    uint64_t e = from;
    int grew = 1;

    while (grew) {
        grew = 0;
        for (size_t i = 0; i < st->npieces; i++) {
            const berth__s3_piece_t *p = &st->pieces[i];
            if (p->len > 0 && p->off <= e && p->off + p->len > e)
                e = p->off + p->len, grew = 1;
        }
    }
    return e < st->size ? e : st->size;
}

int berth__s3_assemble(berth_s3_t *s, const char *id, const berth__s3_state_t *st, uint64_t a, uint64_t b, char *dst)
{
    char key[S3__KEY_MAX];
    int err;

    if (berth__s3_coverage(st, a) < b)
        return berth_error_set(BERTH_EIO, "session %s: staged bytes end before %" PRIu64, id, b);
    /* In write order, so that a later piece wins where two overlap. */
    for (size_t i = 0; i < st->npieces; i++) {
        const berth__s3_piece_t *p = &st->pieces[i];
        uint64_t lo = p->off > a ? p->off : a, hi = p->off + p->len < b ? p->off + p->len : b;
        size_t got = 0;
        if (lo >= hi)
            continue;
        if ((err = berth__s3_piece_key(s, key, id, p->name)) < 0 ||
            (err = berth__s3_get_range(s->c, key, lo - p->off, dst + (lo - a), (size_t)(hi - lo), &got)) < 0)
            return err == BERTH_ENOTFOUND
                       ? berth_error_set(BERTH_EIO, "session %s: staged piece %s is missing", id, key)
                       : err;
        if (got != hi - lo)
            return berth_error_set(BERTH_EIO, "session %s: staged piece %s is short", id, key);
    }
    return 0;
}

void berth__s3_drop_stale(berth_s3_t *s, const char *id, berth__s3_state_t *st)
{
    char **keys;
    size_t n = 0;

    if (st->nstale == 0 || (keys = calloc(st->nstale, sizeof(*keys))) == NULL)
        return;
    for (size_t i = 0; i < st->nstale; i++) {
        if ((keys[n] = malloc(S3__KEY_MAX)) == NULL || berth__s3_piece_key(s, keys[n], id, st->stale[i]) < 0) {
            free(keys[n]);
            continue;
        }
        n++;
    }
    /* A failure keeps them listed for the next time (and data_remove
     * deletes everything under the session anyway). */
    if (n == st->nstale && berth__s3_delete_many(s->c, keys, n) == 0)
        st->nstale = 0;
    else
        berth_log_debug("session %s: stale tail pieces kept for later: %s", id, berth_error_last());
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Checks the listed parts against the layout; *size their bytes. */
static int s3__units_check(const char *id, const berth__s3_state_t *st, uint64_t count, const uint64_t *sizes,
                           uint64_t *size)
{
    *size = 0;
    if (count != st->units)
        return berth_error_set(BERTH_EIO, "session %s: S3 holds %" PRIu64 " of %" PRIu64 " parts", id, count,
                               st->units);
    for (uint64_t i = 0; i < st->units; i++) {
        if (sizes[i] > st->unit || (i + 1 < st->units && sizes[i] != st->unit))
            return berth_error_set(BERTH_EIO, "session %s: S3 part %" PRIu64 " holds %" PRIu64 " bytes, not %" PRIu64,
                                   id, i + 1, sizes[i], st->unit);
        *size += sizes[i];
    }
    return 0;
}

/* The upload is gone: an earlier call completed it when the object is there
 * (with want_size bytes unless that is S3__ANY_SIZE). */
static int s3__completed_before(berth_s3_t *s, const char *dkey, uint64_t want_size, uint64_t *size, int err)
{
    if (berth__s3_head(s->c, dkey, size, NULL) == 0 && (want_size == S3__ANY_SIZE || *size == want_size))
        return 0;
    return err;
}

int berth__s3_complete_units(berth_s3_t *s, const char *id, const berth__s3_state_t *st, const char *dkey,
                             uint64_t want_size, uint64_t *size)
{
    char *etags = NULL;
    const char **ptrs = NULL;
    uint64_t *sizes = NULL, count = 0;
    int err;

    if ((etags = calloc(st->units, S3__ETAG_MAX)) == NULL || (sizes = calloc(st->units, sizeof(*sizes))) == NULL ||
        (ptrs = calloc(st->units, sizeof(*ptrs))) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth__s3_mpu_list_parts(s->c, dkey, st->upload_id, st->units, etags, sizes, &count)) < 0) {
        if (err == BERTH_ENOTFOUND)
            err = s3__completed_before(s, dkey, want_size, size, err);
        goto done;
    }
    if ((err = s3__units_check(id, st, count, sizes, size)) < 0)
        goto done;
    if (want_size != S3__ANY_SIZE && *size != want_size) {
        err = berth_error_set(BERTH_EIO, "session %s: S3 parts hold %" PRIu64 " bytes, not %" PRIu64, id, *size,
                              want_size);
        goto done;
    }
    for (uint64_t i = 0; i < st->units; i++)
        ptrs[i] = etags + i * S3__ETAG_MAX;
    if ((err = berth__s3_mpu_complete(s->c, dkey, st->upload_id, ptrs, st->units)) == BERTH_ENOTFOUND)
        err = s3__completed_before(s, dkey, want_size, size, err);

done:
    free(etags);
    free(sizes);
    free(ptrs);
    return err;
}
