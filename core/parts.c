/*
 * Part-numbered upload sessions (contract in parts.h).
 *
 * Per-session state lives in memory only while requests use it: a
 * refcounted entry holding the mutex that serialises the record's
 * read-modify-write, the part numbers being written (a second write of the
 * same part waits for the first), the count of writes in flight and the
 * "closing" flag of a completion or abort. Nothing in it needs to survive a
 * restart: the record is the truth.
 *
 * Hashing: the record's hash covers parts 1..k. A part that continues the
 * prefix is hashed from the request's bytes (beside its write when the
 * prefix already reached it, else under the mutex at commit); parts that
 * arrived ahead of the prefix are read back by one background thread, which
 * advances the prefix while the client is still sending. Completion hashes
 * what is left, so in-order and lightly reordered uploads complete in O(1).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parts.h"
#include "core/validate.h"

/* Bytes read back per storage call when comparing or hashing stored parts. */
#define PARTS__SLICE ((size_t)4 << 20)
/* Decoded records kept for status, direct-mapped by id. */
#define PARTS__RCACHE 64

/* Parts that arrived just ahead of the hash prefix, kept in memory so the
 * prefix can pass over them without reading them back: at most this many,
 * of at most this many bytes in all, for parts at most PARTS__STASH_AHEAD
 * parts past the prefix. */
#define PARTS__STASH 16
#define PARTS__STASH_BYTES ((size_t)256 << 20)
#define PARTS__STASH_AHEAD 16

typedef struct parts__stashed {
    char id[BERTH_ID_LEN];
    uint64_t n;
    char *bytes; /* NULL: free slot */
    size_t len;
    uint64_t seq; /* age, for eviction */
    time_t at;
} parts__stashed_t;

/* A copy kept this long without its prefix reaching it may make room. */
#define PARTS__STASH_STALE_S 30

typedef struct parts__rslot {
    char id[BERTH_ID_LEN];
    char *bytes; /* the stored record this entry decoded; NULL when empty */
    size_t len;
    berth_record_t rec;
    uint64_t version;
} parts__rslot_t;

typedef struct parts__session {
    struct parts__session *next;
    char id[BERTH_ID_LEN];
    unsigned refs; /* guarded by berth_parts.lock */

    pthread_mutex_t mu;  /* the record's read-modify-write and the fields below */
    pthread_cond_t cond; /* a part was released, or inflight dropped */
    uint64_t *held;      /* part numbers being written or hashed */
    size_t nheld, capheld;
    unsigned inflight; /* writes (and hasher steps) between their checks and their commit */
    int closing;       /* a completion or abort runs */
} parts__session_t;

struct berth_parts {
    berth_engine_t *engine;
    berth_storage_t *storage;
    uint64_t max_part_size;

    pthread_mutex_t lock; /* sessions and the hasher queue */
    parts__session_t *sessions;

    int hasher_on, stop, hasher_busy;
    pthread_t hasher;
    pthread_cond_t hq_cond; /* work queued, or stop */
    pthread_cond_t hq_idle; /* the queue ran empty */
    char (*queue)[BERTH_ID_LEN];
    size_t nq, capq;

    parts__stashed_t stash[PARTS__STASH]; /* guarded by lock */
    size_t stash_bytes;
    uint64_t stash_seq;

    pthread_mutex_t rlock; /* the record cache */
    parts__rslot_t rcache[PARTS__RCACHE];
    uint64_t next_version;
};

/* ---- session entries ------------------------------------------------------ */

static parts__session_t *parts__get(berth_parts_t *p, const char *id)
{
    parts__session_t *s;

    pthread_mutex_lock(&p->lock);
    for (s = p->sessions; s != NULL; s = s->next)
        if (strcmp(s->id, id) == 0)
            break;
    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        snprintf(s->id, sizeof(s->id), "%s", id);
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->next = p->sessions;
        p->sessions = s;
    }
    if (s != NULL)
        s->refs++;
    pthread_mutex_unlock(&p->lock);
    return s;
}

static void parts__release(berth_parts_t *p, parts__session_t *s)
{
    pthread_mutex_lock(&p->lock);
    if (--s->refs == 0) {
        for (parts__session_t **pp = &p->sessions; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        }
    } else {
        s = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (s != NULL) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        free(s->held);
        free(s);
    }
}

/* The held-part set; the caller holds s->mu. A handful of entries at most
 * (one per write in flight), so a linear scan is the right structure. */
static int parts__held_has(const parts__session_t *s, uint64_t n)
{
    for (size_t i = 0; i < s->nheld; i++)
        if (s->held[i] == n)
            return 1;
    return 0;
}

static int parts__held_add(parts__session_t *s, uint64_t n)
{
    if (s->nheld == s->capheld) {
        size_t cap = s->capheld != 0 ? s->capheld * 2 : 8;
        uint64_t *v = realloc(s->held, cap * sizeof(*v));
        if (v == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        s->held = v;
        s->capheld = cap;
    }
    s->held[s->nheld++] = n;
    return 0;
}

static void parts__held_del(parts__session_t *s, uint64_t n)
{
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->held[i] == n) {
            s->held[i] = s->held[--s->nheld];
            return;
        }
    }
}

/* ---- records --------------------------------------------------------------- */

static void parts__move(berth_record_t *out, berth_record_t *from)
{
    berth_record_clear(out);
    *out = *from;
    berth_record_init(from);
}

static int parts__finished(const berth_record_t *rec)
{
    return rec->status == BERTH_STATUS_COMPLETE || rec->status == BERTH_STATUS_FAILED ||
           rec->status == BERTH_STATUS_ABORTED;
}

/* Loads the record of `id` whatever its owner; BERTH_ENOTFOUND unless it is
 * a readable part session. */
static int parts__load(berth_parts_t *p, const char *id, berth_record_t *rec)
{
    char *buf = NULL;
    size_t len = 0;
    int err;

    if ((err = berth_storage_record_get(p->storage, id, &buf, &len)) < 0)
        goto done;
    if ((err = berth_record_decode(rec, buf, len)) < 0) {
        berth_log_warn("session %s: unreadable record: %s", id, berth_error_last());
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: unreadable record", id);
        goto done;
    }
    if (rec->kind != BERTH_SESSION_PARTS)
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: not a part session", id);

done:
    free(buf);
    return err;
}

/* Loads session `id` as `owner` sees it: the rules of BERTH_ENOTFOUND in
 * parts.h. Another user's session is reported exactly like an unknown one. */
static int parts__open(berth_parts_t *p, const char *owner, const char *id, berth_record_t *rec)
{
    int err;

    if (id == NULL || !berth_id_valid(id, strlen(id)) || owner == NULL)
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if ((err = parts__load(p, id, rec)) < 0)
        return err;
    if (rec->owner == NULL || strcmp(rec->owner, owner) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if (berth_engine_expires_at(p->engine, rec) < (int64_t)time(NULL))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: expired", id);
    return 0;
}

static int parts__store(berth_parts_t *p, const berth_record_t *rec)
{
    char *buf = NULL;
    size_t len = 0;
    int err;

    if ((err = berth_record_encode(rec, &buf, &len)) == 0)
        err = berth_storage_record_put(p->storage, rec->id, buf, len);
    free(buf);
    return err;
}

/* 1 when two hash states are the same state (the same bytes hashed). */
static int parts__same_hash(const berth_sha256_t *a, const berth_sha256_t *b)
{
    char sa[BERTH_SHA256_STATE_LEN], sb[BERTH_SHA256_STATE_LEN];

    berth_sha256_save(a, sa);
    berth_sha256_save(b, sb);
    return strcmp(sa, sb) == 0;
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

static int parts__check_part(const berth_record_t *rec, uint64_t n, size_t len)
{
    uint64_t want;

    if (n < 1 || n > rec->total_parts)
        return berth_error_set(BERTH_EINVALID, "part number %llu is outside 1..%llu", (unsigned long long)n,
                               (unsigned long long)rec->total_parts);
    want = berth_parts_expected_size(rec, n);
    if (want != 0 && len != want)
        return berth_error_set(BERTH_EINVALID, "part %llu must be %llu bytes, got %zu", (unsigned long long)n,
                               (unsigned long long)want, len);
    if (want == 0 && (len > rec->part_size || (len == 0 && rec->total_parts > 1)))
        return berth_error_set(BERTH_EINVALID, "last part %llu must be 1 to %llu bytes, got %zu",
                               (unsigned long long)n, (unsigned long long)rec->part_size, len);
    return 0;
}

/* Reads stored bytes [offset, offset + len) of the session in slices, each
 * handed to fn; BERTH_EIO when the data is shorter than the record says. */
static int parts__read(berth_parts_t *p, berth_record_t *rec, uint64_t offset, uint64_t len,
                       int (*fn)(void *ctx, const char *buf, size_t n), void *ctx)
{
    size_t cap = len < PARTS__SLICE ? (size_t)len : PARTS__SLICE;
    char *buf = malloc(cap > 0 ? cap : 1);
    int err = 0;

    if (buf == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    while (len > 0) {
        size_t want = len < cap ? (size_t)len : cap, got = 0;
        if ((err = berth_storage_upload_read(p->storage, rec, offset, buf, want, &got)) < 0)
            break;
        if (got == 0) {
            err = berth_error_set(BERTH_EIO, "session %s: data ends at %llu, the record claims more", rec->id,
                                  (unsigned long long)offset);
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

/* Hashes stored bytes [offset, offset + len) into *h, reading the next
 * slice while the last one is hashed (on a thread of its own), so the cost
 * is the slower of the two rather than their sum. */
static int parts__hash_stored(berth_parts_t *p, berth_record_t *rec, uint64_t offset, uint64_t len, berth_sha256_t *h)
{
    size_t cap = len < PARTS__SLICE ? (size_t)len : PARTS__SLICE;
    char *buf[2] = {malloc(cap > 0 ? cap : 1), malloc(cap > 0 ? cap : 1)};
    berth_sha256_job_t job;
    int running = 0, cur = 0, err = 0;

    if (buf[0] == NULL || buf[1] == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    while (len > 0) {
        size_t want = len < cap ? (size_t)len : cap, got = 0;
        if ((err = berth_storage_upload_read(p->storage, rec, offset, buf[cur], want, &got)) < 0)
            break;
        if (got == 0) {
            err = berth_error_set(BERTH_EIO, "session %s: data ends at %llu, the record claims more", rec->id,
                                  (unsigned long long)offset);
            break;
        }
        if (running)
            berth_sha256_update_wait(&job);
        berth_sha256_update_start(&job, h, buf[cur], got);
        running = 1;
        cur ^= 1;
        offset += got;
        len -= got;
    }
    if (running)
        berth_sha256_update_wait(&job);

done:
    free(buf[0]);
    free(buf[1]);
    return err;
}

typedef struct parts__cmp {
    const char *want;
} parts__cmp_t;

static int parts__cmp_fn(void *ctx, const char *buf, size_t n)
{
    parts__cmp_t *c = ctx;
    int same = memcmp(c->want, buf, n) == 0;

    c->want += n;
    return same ? 0 : 1;
}

/* 1 when the stored bytes at `offset` equal buf; 0 when they differ or
 * cannot be read back (the part is then simply written again). */
static int parts__same(berth_parts_t *p, berth_record_t *rec, uint64_t offset, const void *buf, size_t len)
{
    parts__cmp_t c = {buf};
    int r = parts__read(p, rec, offset, len, parts__cmp_fn, &c);

    if (r < 0)
        berth_log_debug("session %s: re-sent part not compared: %s", rec->id, berth_error_last());
    return r == 0;
}

/* ---- stash ------------------------------------------------------------------ */

/* Drops the stashed copy of part n of `id` (n == 0: every part of it). The
 * caller holds p->lock. */
static void parts__stash_drop_locked(berth_parts_t *p, const char *id, uint64_t n)
{
    for (size_t i = 0; i < PARTS__STASH; i++) {
        parts__stashed_t *e = &p->stash[i];
        if (e->bytes != NULL && (n == 0 || e->n == n) && strcmp(e->id, id) == 0) {
            p->stash_bytes -= e->len;
            free(e->bytes);
            e->bytes = NULL;
        }
    }
}

static void parts__stash_drop(berth_parts_t *p, const char *id, uint64_t n)
{
    pthread_mutex_lock(&p->lock);
    parts__stash_drop_locked(p, id, n);
    pthread_mutex_unlock(&p->lock);
}

/* Keeps a copy of stored part n (the caller holds its part lock, so the
 * copy is what storage holds), evicting the oldest copies to make room. */
static void parts__stash_put(berth_parts_t *p, const char *id, uint64_t n, const void *buf, size_t len)
{
    char *copy;

    if (!p->hasher_on || len == 0 || len > PARTS__STASH_BYTES || (copy = malloc(len)) == NULL)
        return;
    memcpy(copy, buf, len);
    pthread_mutex_lock(&p->lock);
    parts__stash_drop_locked(p, id, n);
    for (;;) {
        parts__stashed_t *free_slot = NULL, *oldest = NULL;
        for (size_t i = 0; i < PARTS__STASH; i++) {
            parts__stashed_t *e = &p->stash[i];
            if (e->bytes == NULL)
                free_slot = free_slot != NULL ? free_slot : e;
            else if (oldest == NULL || e->seq < oldest->seq)
                oldest = e;
        }
        if (free_slot != NULL && p->stash_bytes + len <= PARTS__STASH_BYTES) {
            snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
            free_slot->n = n;
            free_slot->bytes = copy;
            free_slot->len = len;
            free_slot->seq = ++p->stash_seq;
            free_slot->at = time(NULL);
            p->stash_bytes += len;
            copy = NULL;
            break;
        }
        /* Full. The copies kept are the ones nearest their prefix, the most
         * useful: the new one goes, unless an old copy is stale (its
         * session's prefix has not reached it for a while). */
        if (oldest == NULL || time(NULL) - oldest->at < PARTS__STASH_STALE_S)
            break;
        p->stash_bytes -= oldest->len;
        free(oldest->bytes);
        oldest->bytes = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(copy);
}

/* Takes the stashed copy of part n of `id` if there is one (the caller
 * frees it). */
static char *parts__stash_take(berth_parts_t *p, const char *id, uint64_t n, size_t *len)
{
    char *bytes = NULL;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < PARTS__STASH; i++) {
        parts__stashed_t *e = &p->stash[i];
        if (e->bytes != NULL && e->n == n && strcmp(e->id, id) == 0) {
            bytes = e->bytes;
            *len = e->len;
            p->stash_bytes -= e->len;
            e->bytes = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return bytes;
}

/* ---- hasher ---------------------------------------------------------------- */

/* Queues `id` for the hasher (once). The caller holds nothing. */
static void parts__hasher_queue(berth_parts_t *p, const char *id)
{
    if (!p->hasher_on)
        return;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->nq; i++)
        if (strcmp(p->queue[i], id) == 0)
            goto done;
    if (p->nq == p->capq) {
        size_t cap = p->capq != 0 ? p->capq * 2 : 16;
        void *v = realloc(p->queue, cap * sizeof(*p->queue));
        if (v == NULL)
            goto done; /* completion hashes what the hasher could not */
        p->queue = v;
        p->capq = cap;
    }
    snprintf(p->queue[p->nq++], BERTH_ID_LEN, "%s", id);
    pthread_cond_signal(&p->hq_cond);
done:
    pthread_mutex_unlock(&p->lock);
}

/* Whether the part right after the hash prefix is stored (and so the
 * hasher has work). */
static int parts__hashable(const berth_record_t *rec)
{
    uint64_t h = berth_sha256_length(&rec->hash);

    if (h % rec->part_size != 0 || h / rec->part_size >= rec->total_parts)
        return 0;
    return berth_rangeset_contains(&rec->received, h / rec->part_size + 1);
}

/* Advances the hash prefix of session `id` over the stored parts that
 * follow it, one part at a time, each under its part lock so that no write
 * of it can interleave. Stops at a gap, at a part being written (whose
 * writer extends the hash itself or queues the session again), or when a
 * completion or abort starts. */
static void parts__catch_up(berth_parts_t *p, const char *id)
{
    parts__session_t *s = parts__get(p, id);
    berth_record_t rec, cur;

    if (s == NULL)
        return;
    berth_record_init(&rec);
    berth_record_init(&cur);
    for (;;) {
        uint64_t k, off, len;
        berth_sha256_t h;
        int ok = 0;

        pthread_mutex_lock(&s->mu);
        if (s->closing || parts__load(p, id, &rec) < 0 || parts__finished(&rec) || !parts__hashable(&rec)) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        k = berth_sha256_length(&rec.hash) / rec.part_size + 1;
        if (parts__held_has(s, k) || parts__held_add(s, k) < 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        s->inflight++;
        pthread_mutex_unlock(&s->mu);

        off = (k - 1) * rec.part_size;
        len = parts__stored_size(&rec, k);
        h = rec.hash;
        size_t slen = 0;
        char *stashed = parts__stash_take(p, id, k, &slen);
        int rr;
        if (stashed != NULL && slen == len) {
            berth_sha256_update(&h, stashed, slen);
            rr = 0;
        } else {
            rr = parts__hash_stored(p, &rec, off, len, &h);
        }
        free(stashed);
        if (rr < 0) {
            berth_log_warn("session %s: hashing part %llu: %s", id, (unsigned long long)k, berth_error_last());
        } else {
            pthread_mutex_lock(&s->mu);
            /* Same prefix state and part k still stored (it cannot have been
             * rewritten: we hold its lock): the new state is right. */
            if (parts__load(p, id, &cur) == 0 && !parts__finished(&cur) && parts__same_hash(&cur.hash, &rec.hash) &&
                berth_rangeset_contains(&cur.received, k)) {
                cur.hash = h;
                if (parts__store(p, &cur) == 0)
                    ok = 1;
                else
                    berth_log_warn("session %s: saving the hash: %s", id, berth_error_last());
            }
            pthread_mutex_unlock(&s->mu);
        }

        pthread_mutex_lock(&s->mu);
        parts__held_del(s, k);
        s->inflight--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        if (!ok)
            break;
    }
    berth_record_clear(&rec);
    berth_record_clear(&cur);
    parts__release(p, s);
}

static void *parts__hasher_main(void *arg)
{
    berth_parts_t *p = arg;
    char id[BERTH_ID_LEN];

    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        if (p->nq == 0) {
            p->hasher_busy = 0;
            pthread_cond_broadcast(&p->hq_idle);
            pthread_cond_wait(&p->hq_cond, &p->lock);
            continue;
        }
        p->hasher_busy = 1;
        memcpy(id, p->queue[0], BERTH_ID_LEN);
        memmove(&p->queue[0], &p->queue[1], (p->nq - 1) * sizeof(*p->queue));
        p->nq--;
        pthread_mutex_unlock(&p->lock);
        berth_error_clear();
        parts__catch_up(p, id);
        pthread_mutex_lock(&p->lock);
    }
    p->hasher_busy = 0;
    pthread_cond_broadcast(&p->hq_idle);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void berth_parts_hasher_drain(berth_parts_t *p)
{
    if (p == NULL || !p->hasher_on)
        return;
    pthread_mutex_lock(&p->lock);
    while (p->nq > 0 || p->hasher_busy)
        pthread_cond_wait(&p->hq_idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

/* ---- lifecycle ------------------------------------------------------------- */

int berth_parts_new(berth_parts_t **out, const berth_parts_options_t *o)
{
    berth_parts_t *p;

    if (out == NULL)
        return berth_error_set(BERTH_EINVALID, "parts_new: missing argument");
    *out = NULL;
    if (o == NULL || o->engine == NULL || o->storage == NULL)
        return berth_error_set(BERTH_EINVALID, "parts_new: no engine or storage");
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    p->engine = o->engine;
    p->storage = o->storage;
    p->max_part_size = o->max_part_size;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->rlock, NULL);
    for (size_t i = 0; i < PARTS__RCACHE; i++)
        berth_record_init(&p->rcache[i].rec);
    pthread_cond_init(&p->hq_cond, NULL);
    pthread_cond_init(&p->hq_idle, NULL);
    if (o->hasher) {
        if (pthread_create(&p->hasher, NULL, parts__hasher_main, p) != 0) {
            berth_parts_free(p);
            return berth_error_set(BERTH_ERR, "parts_new: cannot start the hasher thread");
        }
        p->hasher_on = 1;
    }
    *out = p;
    return 0;
}

void berth_parts_free(berth_parts_t *p)
{
    if (p == NULL)
        return;
    if (p->hasher_on) {
        pthread_mutex_lock(&p->lock);
        p->stop = 1;
        pthread_cond_signal(&p->hq_cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->hasher, NULL);
    }
    /* Entries exist only while a request uses them: none are left. */
    for (size_t i = 0; i < PARTS__STASH; i++)
        free(p->stash[i].bytes);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->rlock);
    for (size_t i = 0; i < PARTS__RCACHE; i++) {
        free(p->rcache[i].bytes);
        berth_record_clear(&p->rcache[i].rec);
    }
    pthread_cond_destroy(&p->hq_cond);
    pthread_cond_destroy(&p->hq_idle);
    free(p->queue);
    free(p);
}

/* ---- operations ------------------------------------------------------------ */

int berth_parts_create(berth_parts_t *p, const berth_parts_spec_t *spec, berth_record_t *out)
{
    berth_record_t rec;
    int created = 0, err;

    berth_record_init(&rec);
    if (p == NULL || spec == NULL || out == NULL) {
        err = berth_error_set(BERTH_EINVALID, "parts_create: missing argument");
        goto done;
    }
    if (spec->owner == NULL || spec->owner[0] == '\0') {
        err = berth_error_set(BERTH_EINVALID, "a part session needs an owner");
        goto done;
    }
    if (spec->total_parts < 1 || spec->total_parts > BERTH_RECORD_MAX_PARTS) {
        err = berth_error_set(BERTH_EINVALID, "total_parts must be 1 to %d", BERTH_RECORD_MAX_PARTS);
        goto done;
    }
    if (spec->part_size < 1) {
        err = berth_error_set(BERTH_EINVALID, "part_size must be at least 1");
        goto done;
    }
    if (p->max_part_size != 0 && spec->part_size > p->max_part_size) {
        err = berth_error_set(BERTH_EINVALID, "part_size is over the largest request body this server takes (%llu)",
                              (unsigned long long)p->max_part_size);
        goto done;
    }
    if (spec->part_size > (uint64_t)INT64_MAX / 4 / spec->total_parts) {
        err = berth_error_set(BERTH_EINVALID, "total_parts x part_size is too large");
        goto done;
    }
    if (spec->total_size != 0 && (spec->total_size <= (spec->total_parts - 1) * spec->part_size ||
                                  spec->total_size > spec->total_parts * spec->part_size)) {
        err = berth_error_set(BERTH_EINVALID,
                              "total_size %llu does not fit %llu parts of %llu bytes (all but the last full)",
                              (unsigned long long)spec->total_size, (unsigned long long)spec->total_parts,
                              (unsigned long long)spec->part_size);
        goto done;
    }
    if (spec->repository != NULL && !berth_name_valid(spec->repository, strlen(spec->repository))) {
        err = berth_error_set(BERTH_EINVALID, "repository is not a valid repository name");
        goto done;
    }
    if (spec->digest != NULL && !berth_digest_valid(spec->digest, strlen(spec->digest))) {
        err = berth_error_set(BERTH_EINVALID, "digest must be sha256: and 64 lowercase hex digits");
        goto done;
    }
    if ((err = berth_storage_upload_parts_check(p->storage, spec->part_size, spec->total_parts)) < 0)
        goto done;

    if ((err = berth_id_generate(rec.id)) < 0)
        goto done;
    rec.kind = BERTH_SESSION_PARTS;
    rec.status = BERTH_STATUS_INIT;
    rec.created_at = rec.updated_at = (int64_t)time(NULL);
    rec.part_size = spec->part_size;
    rec.total_parts = spec->total_parts;
    rec.total_size = spec->total_size;
    if ((rec.owner = strdup(spec->owner)) == NULL ||
        (spec->repository != NULL && (rec.repository = strdup(spec->repository)) == NULL) ||
        (spec->digest != NULL && (rec.digest = strdup(spec->digest)) == NULL)) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    if ((err = berth_storage_upload_create(p->storage, &rec)) < 0)
        goto done;
    created = 1;
    if ((err = parts__store(p, &rec)) < 0)
        goto done;
    created = 0;
    parts__move(out, &rec);

done:
    if (created && berth_storage_upload_remove(p->storage, rec.id, &rec) < 0)
        berth_log_warn("session %s: cleanup failed: %s", rec.id, berth_error_last());
    berth_record_clear(&rec);
    return err;
}

/* Deep copy of a record into *out (initialised; cleared first). */
static int parts__record_copy(berth_record_t *out, const berth_record_t *in)
{
    berth_record_clear(out);
    *out = *in;
    out->repository = out->owner = out->digest = NULL;
    out->backend = NULL;
    berth_rangeset_init(&out->received);
    if ((in->repository != NULL && (out->repository = strdup(in->repository)) == NULL) ||
        (in->owner != NULL && (out->owner = strdup(in->owner)) == NULL) ||
        (in->digest != NULL && (out->digest = strdup(in->digest)) == NULL) ||
        (in->backend != NULL && (out->backend = json_deep_copy(in->backend)) == NULL) ||
        berth_rangeset_copy(&out->received, &in->received) < 0) {
        berth_record_clear(out);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    return 0;
}

/* What parts__open checks once the record is decoded. */
static int parts__visible(berth_parts_t *p, const berth_record_t *rec, const char *owner, const char *id)
{
    if (rec->kind != BERTH_SESSION_PARTS || rec->owner == NULL || strcmp(rec->owner, owner) != 0)
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if (berth_engine_expires_at(p->engine, rec) < (int64_t)time(NULL))
        return berth_error_set(BERTH_ENOTFOUND, "session %s: expired", id);
    return 0;
}

int berth_parts_status_version(berth_parts_t *p, const char *owner, const char *id, uint64_t known,
                               berth_record_t *out, uint64_t *version)
{
    berth_record_t rec;
    parts__rslot_t *slot;
    char *buf = NULL;
    size_t len = 0;
    uint32_t h = 2166136261u;
    uint64_t v = 0;
    int err;

    if (p == NULL || out == NULL || version == NULL)
        return berth_error_set(BERTH_EINVALID, "parts_status: missing argument");
    if (id == NULL || !berth_id_valid(id, strlen(id)) || owner == NULL)
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if ((err = berth_storage_record_get(p->storage, id, &buf, &len)) < 0)
        return err;
    for (const char *c = id; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    slot = &p->rcache[h % PARTS__RCACHE];

    /* The record is a pure function of its bytes: the same bytes, the same
     * decoded record. */
    pthread_mutex_lock(&p->rlock);
    if (slot->bytes != NULL && strcmp(slot->id, id) == 0 && slot->len == len && memcmp(slot->bytes, buf, len) == 0) {
        if ((err = parts__visible(p, &slot->rec, owner, id)) == 0) {
            *version = slot->version;
            if (known != slot->version)
                err = parts__record_copy(out, &slot->rec);
        }
        pthread_mutex_unlock(&p->rlock);
        free(buf);
        return err;
    }
    pthread_mutex_unlock(&p->rlock);

    berth_record_init(&rec);
    if (berth_record_decode(&rec, buf, len) < 0) {
        berth_log_warn("session %s: unreadable record: %s", id, berth_error_last());
        err = berth_error_set(BERTH_ENOTFOUND, "session %s: unreadable record", id);
        goto done;
    }
    pthread_mutex_lock(&p->rlock);
    free(slot->bytes);
    slot->bytes = NULL;
    if (parts__record_copy(&slot->rec, &rec) == 0) {
        snprintf(slot->id, sizeof(slot->id), "%s", id);
        slot->bytes = buf;
        slot->len = len;
        slot->version = ++p->next_version;
        v = slot->version;
        buf = NULL;
    }
    pthread_mutex_unlock(&p->rlock);
    if ((err = parts__visible(p, &rec, owner, id)) < 0)
        goto done;
    /* A version only for what went into the cache (else 0: never "known"). */
    *version = v;
    parts__move(out, &rec);

done:
    free(buf);
    berth_record_clear(&rec);
    return err;
}

int berth_parts_status(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out)
{
    uint64_t version;
    return berth_parts_status_version(p, owner, id, 0, out, &version);
}

/* The state a refused request reports: the finished session's record. */
static int parts__refuse(const berth_record_t *rec, const char *id)
{
    if (parts__finished(rec))
        return berth_error_set(BERTH_EEXISTS, "session %s is %s", id, berth_status_name(rec->status));
    return 0;
}

/* Stores a record that no longer claims part n (about to be rewritten):
 * after a crash during the rewrite the record claims nothing half written.
 * The caller holds s->mu. */
static int parts__unclaim(berth_parts_t *p, const char *owner, const char *id, uint64_t n)
{
    berth_record_t cur;
    int err;

    berth_record_init(&cur);
    if ((err = parts__open(p, owner, id, &cur)) < 0 || (err = parts__refuse(&cur, id)) < 0)
        goto done;
    if (berth_rangeset_contains(&cur.received, n)) {
        uint64_t old = parts__stored_size(&cur, n);
        if ((err = berth_rangeset_remove(&cur.received, n, n)) < 0)
            goto done;
        cur.offset -= old;
        /* The prefix hash covered the old bytes: start it again. */
        if (berth_sha256_length(&cur.hash) > (n - 1) * cur.part_size)
            berth_sha256_init(&cur.hash);
        err = parts__store(p, &cur);
    }

done:
    berth_record_clear(&cur);
    return err;
}

/* Longest a part waits for the parts before it to commit, so that it can
 * be hashed from memory rather than read back later. */
#define PARTS__PREFIX_WAIT_MS 2000

/* 1 when every part in [first, last] is being written right now. */
static int parts__all_held(const parts__session_t *s, uint64_t first, uint64_t last)
{
    if (first > last || last - first + 1 > s->nheld)
        return 0;
    for (uint64_t j = first; j <= last; j++)
        if (!parts__held_has(s, j))
            return 0;
    return 1;
}

/* Loads the current record into *cur for the commit of part n. Parts of a
 * parallel upload arrive nearly in order: when the hash prefix stops just
 * short of this part and every part in between is being written right now
 * (their bytes are in memory and on their way), wait for them to commit,
 * so that this part's bytes extend the prefix from memory instead of being
 * read back. Bounded: a part in between that is not in flight, or a slow
 * one, ends the wait. The caller holds s->mu. */
static int parts__wait_prefix(berth_parts_t *p, parts__session_t *s, const char *owner, const char *id, uint64_t n,
                              uint64_t off, berth_record_t *cur)
{
    struct timespec deadline;
    int err;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += PARTS__PREFIX_WAIT_MS / 1000;
    deadline.tv_nsec += (PARTS__PREFIX_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L)
        deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    for (;;) {
        if ((err = parts__open(p, owner, id, cur)) < 0 || (err = parts__refuse(cur, id)) < 0)
            return err;
        uint64_t h = berth_sha256_length(&cur->hash);
        if (h >= off || h % cur->part_size != 0 || !parts__all_held(s, h / cur->part_size + 1, n - 1))
            return 0;
        if (pthread_cond_timedwait(&s->cond, &s->mu, &deadline) != 0)
            break;
    }
    if ((err = parts__open(p, owner, id, cur)) < 0 || (err = parts__refuse(cur, id)) < 0)
        return err;
    return 0;
}

int berth_parts_put(berth_parts_t *p, const char *owner, const char *id, uint64_t n, const void *buf, size_t len,
                    const unsigned char *sha256, berth_record_t *out)
{
    berth_record_t rec, cur;
    parts__session_t *s = NULL;
    berth_sha256_t spec_hash;
    berth_sha256_job_t job;
    uint64_t off;
    int held = 0, counted = 0, spec = 0, queue = 0, stash = 0, err;

    berth_record_init(&rec);
    berth_record_init(&cur);
    if (p == NULL || out == NULL || (buf == NULL && len != 0)) {
        err = berth_error_set(BERTH_EINVALID, "parts_put: missing argument");
        goto done;
    }
    /* Unknown sessions and bad parts are answered before any hashing. */
    if ((err = parts__open(p, owner, id, &rec)) < 0 || (err = parts__refuse(&rec, id)) < 0 ||
        (err = parts__check_part(&rec, n, len)) < 0)
        goto done;
    if (sha256 != NULL) {
        char want[BERTH_DIGEST_LEN], got[BERTH_DIGEST_LEN];
        memcpy(want, "sha256:", 7);
        for (int i = 0; i < 32; i++)
            snprintf(want + 7 + 2 * i, 3, "%02x", sha256[i]);
        berth_sha256_of(buf, len, got);
        if (strcmp(want, got) != 0) {
            err = berth_error_set(BERTH_EDIGEST, "part %llu is %s, Content-Digest says %s", (unsigned long long)n,
                                  got, want);
            goto done;
        }
    }

    if ((s = parts__get(p, id)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto done;
    }
    pthread_mutex_lock(&s->mu);
    while (parts__held_has(s, n) && !s->closing)
        pthread_cond_wait(&s->cond, &s->mu);
    if (s->closing)
        err = berth_error_set(BERTH_EBUSY, "session %s is being completed or aborted", id);
    else if ((err = parts__held_add(s, n)) == 0)
        held = counted = 1, s->inflight++;
    pthread_mutex_unlock(&s->mu);
    if (err < 0)
        goto done;

    /* A copy of an earlier version of this part must not be hashed. */
    parts__stash_drop(p, id, n);
    /* Reloaded now that the part is ours: any earlier write of it has
     * committed. */
    if ((err = parts__open(p, owner, id, &rec)) < 0 || (err = parts__refuse(&rec, id)) < 0 ||
        (err = parts__check_part(&rec, n, len)) < 0)
        goto done;
    off = (n - 1) * rec.part_size;
    if (berth_rangeset_contains(&rec.received, n)) {
        if (parts__stored_size(&rec, n) == len && parts__same(p, &rec, off, buf, len)) {
            parts__move(out, &rec);
            err = BERTH_PARTS_SAME;
            goto done;
        }
        pthread_mutex_lock(&s->mu);
        err = parts__unclaim(p, owner, id, n);
        pthread_mutex_unlock(&s->mu);
        if (err < 0)
            goto done;
    }

    /* When the prefix hash already reaches this part, hash it beside the
     * write, as an OCI chunk is. */
    if (berth_sha256_length(&rec.hash) == off && !berth_rangeset_contains(&rec.received, n)) {
        spec_hash = rec.hash;
        berth_sha256_update_start(&job, &spec_hash, buf, len);
        spec = 1;
    }
    err = berth_storage_upload_write(p->storage, &rec, off, buf, len);
    if (spec)
        berth_sha256_update_wait(&job);
    if (err < 0)
        goto done;

    pthread_mutex_lock(&s->mu);
    if ((err = parts__wait_prefix(p, s, owner, id, n, off, &cur)) < 0)
        goto unlock;
    if (berth_sha256_length(&cur.hash) == off) {
        if (spec && parts__same_hash(&cur.hash, &rec.hash)) {
            cur.hash = spec_hash;
        } else {
            /* The prefix reached this part while it was written: hash it
             * from memory now, outside the lock. Nobody else can move the
             * prefix past `off` meanwhile (this part is held), but a rewrite
             * of an earlier part may reset it: compare before using. */
            berth_sha256_t from = cur.hash;
            spec_hash = cur.hash;
            pthread_mutex_unlock(&s->mu);
            berth_sha256_update(&spec_hash, buf, len);
            pthread_mutex_lock(&s->mu);
            if ((err = parts__open(p, owner, id, &cur)) < 0 || (err = parts__refuse(&cur, id)) < 0)
                goto unlock;
            if (parts__same_hash(&cur.hash, &from))
                cur.hash = spec_hash;
        }
    }
    if (berth_rangeset_contains(&cur.received, n))
        cur.offset -= parts__stored_size(&cur, n);
    if ((err = berth_rangeset_add(&cur.received, n, n)) < 0)
        goto unlock;
    cur.offset += len;
    cur.status = BERTH_STATUS_IN_PROGRESS;
    cur.updated_at = (int64_t)time(NULL);
    if ((err = parts__store(p, &cur)) < 0)
        goto unlock;
    queue = parts__hashable(&cur);
    /* Just ahead of the prefix: keep the bytes for the hasher. */
    stash = berth_sha256_length(&cur.hash) < off &&
            off - berth_sha256_length(&cur.hash) <= (uint64_t)PARTS__STASH_AHEAD * cur.part_size;
unlock:
    pthread_mutex_unlock(&s->mu);
    if (err < 0)
        goto done;
    if (stash)
        parts__stash_put(p, id, n, buf, len);
    parts__move(out, &cur);
    err = BERTH_PARTS_STORED;

done:
    if (s != NULL) {
        pthread_mutex_lock(&s->mu);
        if (held)
            parts__held_del(s, n);
        if (counted)
            s->inflight--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        parts__release(p, s);
    }
    /* Queued once this part is released: the hasher skips parts being
     * written, and would otherwise stop at this one. */
    if (queue)
        parts__hasher_queue(p, id);
    if (err < 0 && rec.id[0] != '\0' && out->id[0] == '\0')
        parts__move(out, &rec);
    berth_record_clear(&rec);
    berth_record_clear(&cur);
    return err;
}

/* Claims the session for a completion or abort: no other one runs, new
 * writes are turned away, and the writes in flight have committed when this
 * returns 0 with s->mu held and *rec loaded. */
static int parts__close_begin(berth_parts_t *p, parts__session_t *s, const char *owner, const char *id,
                              berth_record_t *rec)
{
    int err;

    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return berth_error_set(BERTH_EBUSY, "session %s is being completed or aborted", id);
    }
    s->closing = 1;
    while (s->inflight > 0)
        pthread_cond_wait(&s->cond, &s->mu);
    if ((err = parts__open(p, owner, id, rec)) < 0) {
        s->closing = 0;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
    return err;
}

static void parts__close_end(parts__session_t *s)
{
    s->closing = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* Frees the session's bytes and leaves `rec` (which claims none) as its
 * record. The record is stored before and after the removal, so a crash in
 * between leaves either a record claiming nothing or no session at all. */
static int parts__free_bytes(berth_parts_t *p, berth_record_t *rec)
{
    int err;

    if ((err = parts__store(p, rec)) < 0)
        return err;
    if ((err = berth_storage_upload_remove(p->storage, rec->id, rec)) < 0 && err != BERTH_ENOTFOUND)
        return err;
    return parts__store(p, rec);
}

int berth_parts_complete(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out)
{
    berth_record_t rec;
    parts__session_t *s = NULL;
    char digest[BERTH_DIGEST_LEN];
    uint64_t size, h;
    int err;

    berth_record_init(&rec);
    if (p == NULL || out == NULL)
        return berth_error_set(BERTH_EINVALID, "parts_complete: missing argument");
    if (id == NULL || !berth_id_valid(id, strlen(id)))
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if ((s = parts__get(p, id)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    if ((err = parts__close_begin(p, s, owner, id, &rec)) < 0)
        goto done;
    /* From here s->mu is held: status reads do not take it, and every
     * writer is turned away by `closing`, so holding it costs nobody. */
    if (rec.status == BERTH_STATUS_COMPLETE)
        goto close;
    if ((err = parts__refuse(&rec, id)) < 0)
        goto close;
    if (berth_rangeset_count(&rec.received) != rec.total_parts) {
        err = berth_error_set(BERTH_ERANGE, "session %s: %llu of %llu parts are stored", id,
                              (unsigned long long)berth_rangeset_count(&rec.received),
                              (unsigned long long)rec.total_parts);
        goto close;
    }

    size = rec.offset;
    berth_log_debug("session %s: completing %llu bytes, %llu hashed as they arrived", id, (unsigned long long)size,
                    (unsigned long long)berth_sha256_length(&rec.hash));
    if ((h = berth_sha256_length(&rec.hash)) < size) {
        berth_sha256_t hash = rec.hash;
        /* Part by part, from memory where a copy was kept, else from
         * storage. */
        while (h < size && h % rec.part_size == 0) {
            uint64_t k = h / rec.part_size + 1, plen = parts__stored_size(&rec, k);
            size_t slen = 0;
            char *stashed = parts__stash_take(p, id, k, &slen);
            if (stashed != NULL && slen == plen)
                berth_sha256_update(&hash, stashed, slen);
            else
                err = parts__hash_stored(p, &rec, h, plen, &hash);
            free(stashed);
            if (err < 0)
                goto close;
            h += plen;
        }
        if (h < size && (err = parts__hash_stored(p, &rec, h, size - h, &hash)) < 0)
            goto close;
        parts__stash_drop(p, id, 0);
        /* Saved, so that a retry after a failure below does not hash again. */
        rec.hash = hash;
        if ((err = parts__store(p, &rec)) < 0)
            goto close;
    }
    berth_sha256_digest(&rec.hash, digest);

    if (rec.digest != NULL && strcmp(rec.digest, digest) != 0) {
        char expected[BERTH_DIGEST_LEN];
        snprintf(expected, sizeof(expected), "%s", rec.digest);
        free(rec.digest);
        if ((rec.digest = strdup(digest)) == NULL) {
            err = berth_error_set(BERTH_ERR, "out of memory");
            goto close;
        }
        rec.status = BERTH_STATUS_FAILED;
        berth_rangeset_clear(&rec.received);
        rec.updated_at = (int64_t)time(NULL);
        if ((err = parts__free_bytes(p, &rec)) < 0)
            goto close;
        err = berth_error_set(BERTH_EDIGEST, "session %s: the parts hash to %s, not %s", id, digest, expected);
        goto close;
    }

    if ((err = berth_storage_upload_commit(p->storage, &rec, digest)) < 0) {
        /* A previous completion committed the blob and stopped before
         * saving its record: the blob is there with the right size. */
        uint64_t have = 0;
        if (err != BERTH_ENOTFOUND || berth_storage_blob_stat(p->storage, digest, &have) < 0 || have != size) {
            if (err == BERTH_ENOTFOUND)
                err = berth_error_set(BERTH_EIO, "session %s: its data is gone", id);
            goto close;
        }
    }
    if (rec.repository != NULL && (err = berth_storage_link_put(p->storage, rec.repository, digest)) < 0)
        goto close;
    free(rec.digest);
    if ((rec.digest = strdup(digest)) == NULL) {
        err = berth_error_set(BERTH_ERR, "out of memory");
        goto close;
    }
    rec.status = BERTH_STATUS_COMPLETE;
    rec.updated_at = (int64_t)time(NULL);
    err = parts__store(p, &rec);

close:
    parts__close_end(s);
done:
    if (s != NULL)
        parts__release(p, s);
    if (rec.id[0] != '\0')
        parts__move(out, &rec);
    berth_record_clear(&rec);
    return err;
}

int berth_parts_abort(berth_parts_t *p, const char *owner, const char *id, berth_record_t *out)
{
    berth_record_t rec;
    parts__session_t *s = NULL;
    int err;

    berth_record_init(&rec);
    if (p == NULL)
        return berth_error_set(BERTH_EINVALID, "parts_abort: missing argument");
    if (id == NULL || !berth_id_valid(id, strlen(id)))
        return berth_error_set(BERTH_ENOTFOUND, "unknown upload session");
    if ((s = parts__get(p, id)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    if ((err = parts__close_begin(p, s, owner, id, &rec)) < 0)
        goto done;
    if (rec.status == BERTH_STATUS_COMPLETE) {
        err = berth_error_set(BERTH_EEXISTS, "session %s is COMPLETE", id);
        goto close;
    }
    parts__stash_drop(p, id, 0);
    rec.status = BERTH_STATUS_ABORTED;
    berth_rangeset_clear(&rec.received);
    rec.offset = 0;
    berth_sha256_init(&rec.hash);
    rec.updated_at = (int64_t)time(NULL);
    err = parts__free_bytes(p, &rec);

close:
    parts__close_end(s);
done:
    if (s != NULL)
        parts__release(p, s);
    if (out != NULL && rec.id[0] != '\0')
        parts__move(out, &rec);
    berth_record_clear(&rec);
    return err;
}
