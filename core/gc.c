/*
 * Garbage collection (rules in gc.h).
 *
 * Sets of digests and of "repo digest" pairs are sorted string arrays
 * searched with bsearch: gc runs rarely, holds one entry per blob and link,
 * and a sorted array is the smallest structure that does that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/gc.h"
#include "core/log.h"
#include "core/meta.h"
#include "core/registry.h"
#include "core/validate.h"

#define GC__MANIFEST_MAX ((uint64_t)64 << 20)

typedef struct gc__set {
    char **v;
    size_t n, cap;
} gc__set_t;

static void gc__set_clear(gc__set_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int gc__set_add(gc__set_t *s, const char *a, const char *b)
{
    size_t la = strlen(a), lb = b != NULL ? strlen(b) : 0;
    char *e;

    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 256;
        char **nv = realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        s->v = nv;
        s->cap = cap;
    }
    if ((e = malloc(la + lb + 2)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    memcpy(e, a, la);
    e[la] = '\0';
    if (b != NULL) {
        e[la] = ' ';
        memcpy(e + la + 1, b, lb + 1);
    }
    s->v[s->n++] = e;
    return 0;
}

static int gc__cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void gc__set_sort(gc__set_t *s)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), gc__cmp);
}

/* Membership of "a" or "a b" in a sorted set. */
static int gc__set_has(const gc__set_t *s, const char *a, const char *b)
{
    char buf[BERTH_NAME_MAX + BERTH_DIGEST_LEN + 2];
    const char *key = a;

    if (b != NULL) {
        snprintf(buf, sizeof(buf), "%s %s", a, b);
        key = buf;
    }
    return s->n > 0 && bsearch(&key, s->v, s->n, sizeof(*s->v), gc__cmp) != NULL;
}

/* ---- mark ------------------------------------------------------------------- */

typedef struct gc__mark {
    berth_storage_t *storage;
    gc__set_t revisions; /* "repo digest" of every manifest */
    gc__set_t kept;      /* digests kept by some manifest */
    gc__set_t kept_in;   /* "repo digest" kept by a manifest of that repo */
    const char *repo;    /* while reading one manifest */
    size_t repositories;
} gc__mark_t;

static void gc__mark_clear(gc__mark_t *m)
{
    gc__set_clear(&m->revisions);
    gc__set_clear(&m->kept);
    gc__set_clear(&m->kept_in);
}

/* "repositories/<repo>/_manifests/revisions/sha256/<hex>" */
static int gc__revision_cb(void *ctx, const char *key)
{
    static const char mid[] = "/_manifests/revisions/sha256/";
    gc__mark_t *m = ctx;
    size_t len = strlen(key), mlen = sizeof(mid) - 1;
    char repo[BERTH_NAME_MAX + 1], digest[BERTH_DIGEST_LEN];

    if (len < 13 + 1 + mlen + 64 || memcmp(key, "repositories/", 13) != 0 ||
        memcmp(key + len - 64 - mlen, mid, mlen) != 0)
        return 0;
    size_t rlen = len - 64 - mlen - 13;
    if (rlen > BERTH_NAME_MAX)
        return 0;
    memcpy(repo, key + 13, rlen);
    repo[rlen] = '\0';
    snprintf(digest, sizeof(digest), "sha256:%s", key + len - 64);
    if (!berth_name_valid(repo, rlen) || !berth_digest_valid(digest, strlen(digest)))
        return 0;
    return gc__set_add(&m->revisions, repo, digest);
}

static int gc__keep_cb(void *ctx, const char *digest)
{
    gc__mark_t *m = ctx;
    int err;

    if ((err = gc__set_add(&m->kept, digest, NULL)) < 0)
        return err;
    return gc__set_add(&m->kept_in, m->repo, digest);
}

/* Reads manifest `digest` and marks what it names. */
static int gc__mark_manifest(gc__mark_t *m, const char *repo, const char *digest)
{
    uint64_t size;
    size_t got, total = 0;
    char *body = NULL;
    int err;

    m->repo = repo;
    if ((err = gc__keep_cb(m, digest)) < 0)
        return err;
    if ((err = berth_storage_blob_stat(m->storage, digest, &size)) < 0) {
        if (err != BERTH_ENOTFOUND)
            return err;
        berth_log_warn("gc: manifest %s of %s has no blob", digest, repo);
        return 0;
    }
    if (size > GC__MANIFEST_MAX) {
        berth_log_warn("gc: manifest %s of %s is %llu bytes, not read", digest, repo, (unsigned long long)size);
        return 0;
    }
    if ((body = malloc(size + 1)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    while (total < size) {
        if ((err = berth_storage_blob_read(m->storage, digest, total, body + total, size - total, &got)) < 0)
            goto done;
        if (got == 0)
            break;
        total += got;
    }
    if (berth_manifest_references(body, total, gc__keep_cb, m) == BERTH_EINVALID)
        berth_log_warn("gc: manifest %s of %s does not parse; it keeps only itself", digest, repo);
    err = 0;

done:
    free(body);
    return err;
}

static int gc__mark(berth_storage_t *storage, gc__mark_t *m)
{
    const char *prev = NULL;
    int err;

    memset(m, 0, sizeof(*m));
    m->storage = storage;
    if ((err = berth_meta_list(storage, "repositories/", gc__revision_cb, m)) < 0)
        return err;
    gc__set_sort(&m->revisions);
    for (size_t i = 0; i < m->revisions.n; i++) {
        char *sp = strchr(m->revisions.v[i], ' ');
        *sp = '\0';
        if (prev == NULL || strcmp(prev, m->revisions.v[i]) != 0)
            m->repositories++;
        err = gc__mark_manifest(m, m->revisions.v[i], sp + 1);
        prev = m->revisions.v[i];
        if (err < 0) {
            *sp = ' ';
            return err;
        }
    }
    /* The revisions' repo names were split in place; put them back. */
    for (size_t i = 0; i < m->revisions.n; i++)
        m->revisions.v[i][strlen(m->revisions.v[i])] = ' ';
    gc__set_sort(&m->kept);
    gc__set_sort(&m->kept_in);
    return 0;
}

/* ---- sweep ------------------------------------------------------------------ */

typedef struct gc__candidate {
    char repo[BERTH_NAME_MAX + 1]; /* "" for a blob */
    char digest[BERTH_DIGEST_LEN];
    uint64_t size;
} gc__candidate_t;

typedef struct gc__sweep {
    const berth_gc_options_t *o;
    gc__mark_t *mark;
    gc__set_t young;        /* digests with a link written within the grace period */
    gc__candidate_t *links; /* links to remove */
    size_t nlinks, caplinks;
    gc__candidate_t *blobs; /* blobs to remove */
    size_t nblobs, capblobs;
    size_t listed;
} gc__sweep_t;

static int gc__push(gc__candidate_t **v, size_t *n, size_t *cap, const char *repo, const char *digest, uint64_t size)
{
    if (*n == *cap) {
        size_t c = *cap != 0 ? *cap * 2 : 64;
        gc__candidate_t *nv = realloc(*v, c * sizeof(*nv));
        if (nv == NULL)
            return berth_error_set(BERTH_ERR, "out of memory");
        *v = nv;
        *cap = c;
    }
    snprintf((*v)[*n].repo, sizeof((*v)[*n].repo), "%s", repo != NULL ? repo : "");
    snprintf((*v)[*n].digest, sizeof((*v)[*n].digest), "%s", digest);
    (*v)[*n].size = size;
    (*n)++;
    return 0;
}

static int gc__old(const berth_gc_options_t *o, int64_t mtime)
{
    return mtime <= o->now - o->grace_s;
}

static int gc__link_cb(void *ctx, const char *repo, const char *digest, int64_t mtime)
{
    gc__sweep_t *s = ctx;

    if (!gc__old(s->o, mtime))
        return gc__set_add(&s->young, digest, NULL);
    if (gc__set_has(&s->mark->kept_in, repo, digest))
        return 0;
    return gc__push(&s->links, &s->nlinks, &s->caplinks, repo, digest, 0);
}

static int gc__blob_cb(void *ctx, const char *digest, uint64_t size, int64_t mtime)
{
    gc__sweep_t *s = ctx;

    s->listed++;
    if (!gc__old(s->o, mtime) || gc__set_has(&s->mark->kept, digest, NULL))
        return 0;
    return gc__push(&s->blobs, &s->nblobs, &s->capblobs, NULL, digest, size);
}

int berth_gc_run(const berth_gc_options_t *o, berth_gc_stats_t *stats)
{
    gc__mark_t first, second;
    gc__sweep_t s;
    berth_gc_stats_t st;
    int err;

    memset(&st, 0, sizeof(st));
    memset(&s, 0, sizeof(s));
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    if (o == NULL || o->storage == NULL || o->grace_s < 0)
        return berth_error_set(BERTH_EINVALID, "gc: missing argument");
    s.o = o;

    if ((err = gc__mark(o->storage, &first)) < 0)
        goto done;
    s.mark = &first;
    if ((err = berth_link_list(o->storage, gc__link_cb, &s)) < 0 ||
        (err = berth_storage_blob_list(o->storage, gc__blob_cb, &s)) < 0)
        goto done;
    gc__set_sort(&s.young);

    /* The second mark sees manifests pushed while we listed. */
    if ((err = gc__mark(o->storage, &second)) < 0)
        goto done;
    st.repositories = second.repositories;
    st.manifests = second.revisions.n;
    st.blobs = s.listed;

    for (size_t i = 0; i < s.nlinks; i++) {
        gc__candidate_t *c = &s.links[i];
        if (gc__set_has(&second.kept_in, c->repo, c->digest))
            continue;
        if (o->report != NULL)
            o->report(o->ctx, c->repo, c->digest, 0);
        if (!o->dry_run && (err = berth_link_remove(o->storage, c->repo, c->digest)) < 0) {
            if (err != BERTH_ENOTFOUND)
                goto done;
            continue;
        }
        st.links_removed++;
    }
    for (size_t i = 0; i < s.nblobs; i++) {
        gc__candidate_t *c = &s.blobs[i];
        if (gc__set_has(&second.kept, c->digest, NULL) || gc__set_has(&s.young, c->digest, NULL))
            continue;
        if (o->report != NULL)
            o->report(o->ctx, NULL, c->digest, c->size);
        if (!o->dry_run && (err = berth_storage_blob_remove(o->storage, c->digest)) < 0) {
            if (err != BERTH_ENOTFOUND)
                goto done;
            continue;
        }
        st.blobs_removed++;
        st.bytes_removed += c->size;
    }
    err = 0;

done:
    if (stats != NULL)
        *stats = st;
    gc__mark_clear(&first);
    gc__mark_clear(&second);
    gc__set_clear(&s.young);
    free(s.links);
    free(s.blobs);
    return err;
}
