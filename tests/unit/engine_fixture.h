/*
 * The fixture the engine's unit tests share (test_upload.c, test_parts.c,
 * test_engine_*.c, test_registry.c): per test a fresh directory under /tmp
 * (root), the filesystem backend on it (st) and an engine on that (eng);
 * helpers that drive OCI and part sessions and look at what was stored;
 * and a backend in front of st that plays what the filesystem never does.
 *
 * The including file may define, before including this header:
 *   #define REPO "<name>"             the repository of the OCI helpers
 *                                     (default "library/app")
 *   #define TTL <seconds>             the engine's session ttl (default 3600)
 *   #define FIXTURE_HASH_THREADS <n>  the engine's hashing threads (default
 *                                     0: hash inline)
 *   #define FIXTURE_SYNC <mode>       the backend's sync (default
 *                                     BERTH_SYNC_COMMIT)
 * and hooks its suite up:
 *   TestSuite(name, .init = fixture_setup, .fini = fixture_teardown);
 * (fixture_storage_setup instead of fixture_setup: no engine; the file's
 * tests make their own). Part sessions belong to the owner "alice".
 *
 * Criterion runs every test in its own process, so the globals are the
 * test's own. Not every file uses every helper, hence the pragma.
 */
#ifndef BERTH_TESTS_ENGINE_FIXTURE_H
#define BERTH_TESTS_ENGINE_FIXTURE_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/record.h"
#include "storage/fs/fs.h"
#include "storage/storage.h"

#ifndef REPO
#define REPO "library/app"
#endif
#ifndef TTL
#define TTL 3600
#endif
#ifndef FIXTURE_HASH_THREADS
#define FIXTURE_HASH_THREADS 0
#endif
#ifndef FIXTURE_SYNC
#define FIXTURE_SYNC BERTH_SYNC_COMMIT
#endif

/* The largest part a fixture engine takes. */
#define FIXTURE_MAX_PART_SIZE ((uint64_t)64 << 20)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

static char root[64];
static berth_storage_t *st;
static berth_engine_t *eng;

/* ---- setup and teardown ------------------------------------------------------ */

static int fixture__rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* A filesystem backend on root. */
static berth_storage_t *fixture_storage_open(void)
{
    berth_fs_options_t fo = {.root = root, .sync = FIXTURE_SYNC};
    berth_storage_t *b = NULL;

    cr_assert_eq(berth_storage_fs_new(&b, &fo), 0, "%s", berth_error_last());
    return b;
}

/* An engine on b: sessions idle for `ttl` seconds expire, hashing on
 * `hash_threads` threads (0: inline). */
static berth_engine_t *fixture_engine_open(berth_storage_t *b, uint64_t ttl, int hash_threads)
{
    berth_engine_options_t eo = {
        .storage = b, .ttl_s = ttl, .max_part_size = FIXTURE_MAX_PART_SIZE, .hash_threads = hash_threads};
    berth_engine_t *e = NULL;

    cr_assert_eq(berth_engine_new(&e, &eo), 0, "%s", berth_error_last());
    return e;
}

/* A fresh root and st on it; no engine. */
static void fixture_storage_setup(void)
{
    berth_storage_fault_reset(NULL);
    snprintf(root, sizeof(root), "/tmp/berth-test-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    st = fixture_storage_open();
}

/* A fresh root, st on it and eng on st. */
static void fixture_setup(void)
{
    fixture_storage_setup();
    eng = fixture_engine_open(st, TTL, FIXTURE_HASH_THREADS);
}

/* Frees eng and st (either may be NULL) and removes root. */
static void fixture_teardown(void)
{
    berth_storage_fault_reset(NULL);
    berth_engine_free(eng);
    berth_storage_free(st);
    eng = NULL, st = NULL;
    nftw(root, fixture__rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Simulates a restart: a new backend and a new engine (hashing on
 * `hash_threads` threads) on the same root, knowing only what was stored. */
static void restart(int hash_threads)
{
    berth_engine_free(eng);
    berth_storage_free(st);
    st = fixture_storage_open();
    eng = fixture_engine_open(st, TTL, hash_threads);
}

/* Deterministic bytes that differ from offset to offset and seed to seed
 * (the caller frees them). */
static unsigned char *random_bytes(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);

    cr_assert_not_null(b);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (unsigned char)(seed >> 16);
    }
    return b;
}

/* Runs fn on n threads, thread i given args + i * size, and waits for
 * them all. */
static void run_threads(size_t n, void *(*fn)(void *), void *args, size_t size)
{
    pthread_t *t = calloc(n, sizeof(*t));

    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)args + i * size), 0);
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

/* ---- OCI sessions of REPO ------------------------------------------------------- */

/* What a request declares: a body of `len` bytes (-1: chunked, length
 * unknown), with or without a Content-Range. */
static berth_chunk_t body(int64_t len)
{
    return (berth_chunk_t){.has_range = 0, .length = len};
}

static berth_chunk_t ranged(uint64_t first, uint64_t last, int64_t len)
{
    return (berth_chunk_t){.has_range = 1, .first = first, .last = last, .length = len};
}

static void start(berth_record_t *rec)
{
    berth_record_init(rec);
    cr_assert_eq(berth_oci_start(eng, REPO, rec), 0, "%s", berth_error_last());
}

static int append(berth_engine_t *e, const char *id, berth_chunk_t c, const void *buf, size_t len, berth_record_t *out)
{
    return berth_oci_append(e, REPO, id, &c, buf, len, out);
}

/* Appends the string `data` as a chunk without a range; the session then
 * holds `want_offset` bytes. */
static void append_ok(const char *id, const char *data, uint64_t want_offset)
{
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(append(eng, id, body((int64_t)strlen(data)), data, strlen(data), &out), 0, "%s", berth_error_last());
    cr_assert_eq(out.offset, want_offset);
    berth_record_clear(&out);
}

/* Opens an OCI write declared as `c`; it must be accepted. */
static berth_write_t *oci_write(const char *id, berth_chunk_t c)
{
    berth_record_t cur;
    berth_write_t *w = NULL;

    berth_record_init(&cur);
    cr_assert_eq(berth_oci_write(eng, REPO, id, &c, &w, &cur), 0, "%s", berth_error_last());
    cr_assert_not_null(w);
    berth_record_clear(&cur);
    return w;
}

/* A session holding "abc", and an open write into it, declared as `len`
 * bytes, that took the string `piece`. */
static berth_write_t *write_after_abc(berth_record_t *rec, int64_t len, const char *piece)
{
    berth_write_t *w;

    start(rec);
    append_ok(rec->id, "abc", 3);
    w = oci_write(rec->id, body(len));
    cr_assert_eq(berth_write_piece(w, piece, strlen(piece)), 0, "%s", berth_error_last());
    return w;
}

/* The offset of the session's stored record, whose hash covers exactly
 * its bytes. */
static uint64_t stored_offset(const char *id)
{
    berth_record_t rec;
    uint64_t off;

    berth_record_init(&rec);
    cr_assert_eq(berth_oci_status(eng, REPO, id, &rec), 0, "%s", berth_error_last());
    off = rec.offset;
    cr_assert_eq(berth_sha256_length(&rec.hash), off, "the record's hash covers exactly its bytes");
    berth_record_clear(&rec);
    return off;
}

/* The blob `repo` sees under the digest of `data` holds exactly `data`. */
static void assert_blob(const char *repo, const void *data, size_t len)
{
    char digest[BERTH_DIGEST_LEN];
    unsigned char *buf = malloc(len + 1);
    uint64_t size = 0, off = 0;

    berth_sha256_of(data, len, digest);
    cr_assert_eq(berth_blob_stat(eng, repo, digest, &size), 0, "%s", berth_error_last());
    cr_assert_eq(size, len);
    while (off < len) {
        size_t got = 0;
        cr_assert_eq(berth_blob_read(eng, digest, off, buf + off, len - off + 1, &got), 0, "%s", berth_error_last());
        cr_assert_gt(got, 0, "the blob ends at %llu of %zu", (unsigned long long)off, len);
        off += got;
    }
    cr_assert_eq(off, len);
    cr_assert_eq(memcmp(buf, data, len), 0, "the blob's bytes differ from what was sent");
    free(buf);
}

/* Finishes the session with the optional last chunk `last`: the session
 * becomes the blob `whole` (every byte of it) of REPO. */
static void finish_ok(const char *id, const char *whole, const char *last)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t out;

    berth_record_init(&out);
    berth_sha256_of(whole, strlen(whole), digest);
    cr_assert_eq(berth_oci_finish(eng, REPO, id, digest, last, last != NULL ? strlen(last) : 0, &out), 0, "%s",
                 berth_error_last());
    cr_assert_eq(out.status, BERTH_STATUS_COMPLETE);
    cr_assert_eq(out.offset, strlen(whole));
    cr_assert_str_eq(out.digest, digest);
    berth_record_clear(&out);
    assert_blob(REPO, whole, strlen(whole));
}

/* Session `id` holds exactly `head`: it takes `tail` (a chunk without a
 * range) and finishes as the blob of head and tail. */
static void finish_after(const char *id, const char *head, const char *tail)
{
    char whole[256];

    cr_assert_eq(stored_offset(id), strlen(head));
    append_ok(id, tail, strlen(head) + strlen(tail));
    cr_assert_lt((size_t)snprintf(whole, sizeof(whole), "%s%s", head, tail), sizeof(whole));
    finish_ok(id, whole, NULL);
}

/* ---- part sessions of "alice" ---------------------------------------------------- */

static void create(berth_record_t *rec, uint64_t n, uint64_t ps, uint64_t total, const char *repo, const char *digest)
{
    berth_parts_spec_t spec = {
        .total_parts = n, .part_size = ps, .total_size = total, .repository = repo, .digest = digest, .owner = "alice"};

    berth_record_init(rec);
    cr_assert_eq(berth_parts_create(eng, &spec, rec), 0, "%s", berth_error_last());
    cr_assert_eq(rec->kind, BERTH_SESSION_PARTS);
    cr_assert_eq(rec->status, BERTH_STATUS_INIT);
}

/* Stores part n whole; what berth_parts_put answers. */
static int put(const char *id, uint64_t n, const void *buf, size_t len)
{
    berth_record_t out;
    int err;

    berth_record_init(&out);
    err = berth_parts_put(eng, "alice", id, n, buf, len, NULL, &out);
    berth_record_clear(&out);
    return err;
}

/* Opens a write of part n declared as `length` bytes (-1: unknown) with
 * the SHA-256 `sha` (may be NULL); it must be accepted. */
static berth_write_t *part_write(const char *id, uint64_t n, int64_t length, const unsigned char *sha)
{
    berth_record_t cur;
    berth_write_t *w = NULL;

    berth_record_init(&cur);
    cr_assert_eq(berth_parts_write(eng, "alice", id, n, length, sha, &w, &cur), 0, "%s", berth_error_last());
    cr_assert_not_null(w);
    berth_record_clear(&cur);
    return w;
}

/* The parts received, in compact form (the caller frees it); the bytes
 * hashed and the status into *hashed and *status unless NULL. */
static char *received(const char *id, uint64_t *hashed, berth_session_status_t *status)
{
    berth_record_t rec;
    char *f = NULL;

    berth_record_init(&rec);
    cr_assert_eq(berth_parts_status(eng, "alice", id, 0, &rec, NULL), 0, "%s", berth_error_last());
    cr_assert_eq(berth_rangeset_format(&rec.received, &f), 0);
    if (hashed != NULL)
        *hashed = berth_sha256_length(&rec.hash);
    if (status != NULL)
        *status = rec.status;
    berth_record_clear(&rec);
    return f;
}

static void assert_received(const char *id, const char *want)
{
    char *f = received(id, NULL, NULL);

    cr_assert_str_eq(f, want);
    free(f);
}

/* Completes part session `id`: the session is the `len` bytes `whole`. */
static void complete_ok(const char *id, const void *whole, size_t len)
{
    char digest[BERTH_DIGEST_LEN];
    berth_record_t out;

    berth_record_init(&out);
    cr_assert_eq(berth_parts_complete(eng, "alice", id, &out), 0, "%s", berth_error_last());
    berth_sha256_of(whole, len, digest);
    cr_assert_eq(out.status, BERTH_STATUS_COMPLETE);
    cr_assert_str_eq(out.digest, digest);
    cr_assert_eq(out.offset, len);
    berth_record_clear(&out);
}

/* Waits (a while) until the part session's hash covers every stored byte:
 * the hashing pool has nothing left to do for it. */
static void settle(const char *id)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    berth_record_t rec;

    berth_record_init(&rec);
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(berth_parts_status(eng, "alice", id, 0, &rec, NULL), 0, "%s", berth_error_last());
        if (berth_sha256_length(&rec.hash) == rec.offset)
            break;
        berth_record_clear(&rec);
        nanosleep(&pause, NULL);
    }
    berth_record_clear(&rec);
}

/* ---- what st holds ------------------------------------------------------------ */

static void record_key(char key[BERTH_OBJ_KEY_MAX], const char *id)
{
    snprintf(key, BERTH_OBJ_KEY_MAX, "sessions/%s", id);
}

/* Session `id`'s record as stored, into *buf (the caller frees it): 0, or
 * BERTH_ENOTFOUND when there is none. */
static int record_text(const char *id, char **buf, size_t *len)
{
    char key[BERTH_OBJ_KEY_MAX];
    int err;

    record_key(key, id);
    *buf = NULL, *len = 0;
    err = berth_storage_obj_get(st, key, buf, len, NULL);
    cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s", berth_error_last());
    return err;
}

/* Replaces session `id`'s stored record by `text`, unconditionally, as
 * another process could. */
static void record_put_text(const char *id, const char *text, size_t len)
{
    char key[BERTH_OBJ_KEY_MAX];

    record_key(key, id);
    cr_assert_eq(berth_storage_obj_put(st, key, text, len, NULL, NULL), 0, "%s", berth_error_last());
}

/* Decodes session `id`'s stored record into rec (initialized). */
static void record_load(const char *id, berth_record_t *rec)
{
    char *buf;
    size_t len;

    cr_assert_eq(record_text(id, &buf, &len), 0, "session %s has no record", id);
    cr_assert_eq(berth_record_decode(rec, buf, len), 0, "%s", berth_error_last());
    free(buf);
}

/* Stores rec as session `id`'s record, unconditionally. */
static void record_store(const char *id, const berth_record_t *rec)
{
    char *buf = NULL;
    size_t len = 0;

    cr_assert_eq(berth_record_encode(rec, &buf, &len), 0);
    record_put_text(id, buf, len);
    free(buf);
}

/* Sets a stored record's updated_at back by `secs`, as if it had been idle
 * that long. */
static void backdate(const char *id, int64_t secs)
{
    berth_record_t rec;

    berth_record_init(&rec);
    record_load(id, &rec);
    rec.updated_at -= secs;
    record_store(id, &rec);
    berth_record_clear(&rec);
}

/* 1 when st holds the blob `digest` (linked or not). */
static int blob_exists(const char *digest)
{
    uint64_t size;
    int err = berth_storage_blob_stat(st, digest, &size);

    cr_assert(err == 0 || err == BERTH_ENOTFOUND, "%s", berth_error_last());
    return err == 0;
}

/* 1 when session `id` has a record object. */
static int has_record(const char *id)
{
    char *buf;
    size_t len;
    int err = record_text(id, &buf, &len);

    free(buf);
    return err == 0;
}

typedef struct fixture__find {
    const char *id;
    size_t found, all;
} fixture__find_t;

static int fixture__find_data(void *ctx, const char *id, int64_t mtime)
{
    fixture__find_t *f = ctx;

    f->found += f->id != NULL && strcmp(f->id, id) == 0;
    f->all++;
    return 0;
}

static int fixture__count_obj(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
    (*(size_t *)ctx)++;
    return 0;
}

/* 1 when session `id` has data. */
static int has_data(const char *id)
{
    fixture__find_t f = {id, 0, 0};

    cr_assert_eq(berth_storage_data_list(st, fixture__find_data, &f), 0, "%s", berth_error_last());
    return f.found != 0;
}

/* Sessions that have data. */
static size_t stored_data(void)
{
    fixture__find_t f = {NULL, 0, 0};

    cr_assert_eq(berth_storage_data_list(st, fixture__find_data, &f), 0, "%s", berth_error_last());
    return f.all;
}

/* Session records. */
static size_t stored_sessions(void)
{
    size_t n = 0;

    cr_assert_eq(berth_storage_obj_list(st, "sessions/", fixture__count_obj, &n), 0, "%s", berth_error_last());
    return n;
}

/* ---- a backend in front of st ----------------------------------------------------- */

/* A gate calls wait at while it is held; `waiting` counts them. */
typedef struct shim_gate {
    int hold, waiting;
} shim_gate_t;

/* A backend passing everything to st, except that it plays what the
 * storage contract allows but the filesystem backend never does:
 *   reads    data_read waits at this gate while it is held (a slow store);
 *   records  obj_get of a session record waits at this gate while it is
 *            held, in the thread `holder` only;
 *   unit     > 0: a write keeps whole units of this many bytes, and a kept
 *            write only those (writer_close: "all of them unless the
 *            backend could keep only a prefix").
 * The test owns the shim; freeing the backend frees nothing. */
typedef struct shim {
    berth_storage_t super;
    berth_storage_t *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    shim_gate_t reads, records;
    pthread_t holder;
    uint64_t unit;
} shim_t;

typedef struct shim_writer {
    berth_writer_t super;
    berth_writer_t *inner;
    uint64_t unit;
    unsigned char *pending; /* bytes taken but not passed on (less than a unit) */
    size_t npending;
} shim_writer_t;

static berth_storage_t *shim_inner(berth_storage_t *b)
{
    return ((shim_t *)b)->inner;
}

/* Called with s->lock held. */
static void shim__pass(shim_t *s, shim_gate_t *g)
{
    g->waiting++;
    pthread_cond_broadcast(&s->cond);
    while (g->hold)
        pthread_cond_wait(&s->cond, &s->lock);
    g->waiting--;
}

static void shim_free(berth_storage_t *b)
{
}

static int shim_obj_get(berth_storage_t *b, const char *key, char **buf, size_t *len, berth_version_t *ver)
{
    shim_t *s = (shim_t *)b;

    pthread_mutex_lock(&s->lock);
    if (strncmp(key, "sessions/", 9) == 0 && pthread_equal(s->holder, pthread_self()))
        shim__pass(s, &s->records);
    pthread_mutex_unlock(&s->lock);
    return berth_storage_obj_get(s->inner, key, buf, len, ver);
}

static int shim_obj_put(berth_storage_t *b, const char *key, const void *buf, size_t len, const berth_version_t *expect,
                        berth_version_t *ver)
{
    return berth_storage_obj_put(shim_inner(b), key, buf, len, expect, ver);
}

static int shim_obj_delete(berth_storage_t *b, const char *key, const berth_version_t *expect)
{
    return berth_storage_obj_delete(shim_inner(b), key, expect);
}

static int shim_obj_list(berth_storage_t *b, const char *prefix, berth_obj_cb cb, void *ctx)
{
    return berth_storage_obj_list(shim_inner(b), prefix, cb, ctx);
}

static int shim_data_create(berth_storage_t *b, const char *id, const berth_layout_t *layout, char **state)
{
    return berth_storage_data_create(shim_inner(b), id, layout, state);
}

static int shim_data_open(berth_storage_t *b, const char *id, const char *state, uint64_t offset, uint64_t hint,
                          berth_writer_t **out)
{
    shim_t *s = (shim_t *)b;
    berth_writer_t *inner = NULL;
    shim_writer_t *sw;
    int err;

    if ((err = berth_storage_data_open(s->inner, id, state, offset, hint, &inner)) < 0)
        return err;
    if ((sw = calloc(1, sizeof(*sw))) == NULL) {
        berth_storage_writer_close(inner, 0, NULL, NULL);
        return berth_error_set(BERTH_ERR, "out of memory");
    }
    sw->super.storage = b;
    sw->inner = inner;
    pthread_mutex_lock(&s->lock);
    sw->unit = s->unit;
    pthread_mutex_unlock(&s->lock);
    *out = &sw->super;
    return 0;
}

/* With a unit, passes on only whole units; the rest waits for more bytes,
 * and is lost at close. */
static int shim_writer_write(berth_writer_t *w, const void *buf, size_t len)
{
    shim_writer_t *sw = (shim_writer_t *)w;
    const unsigned char *p = buf;
    size_t n;
    int err;

    if (sw->unit == 0)
        return berth_storage_writer_write(sw->inner, buf, len);
    if (sw->pending == NULL && (sw->pending = malloc(sw->unit)) == NULL)
        return berth_error_set(BERTH_ERR, "out of memory");
    if (sw->npending > 0) {
        n = sw->unit - sw->npending < len ? sw->unit - sw->npending : len;
        memcpy(sw->pending + sw->npending, p, n);
        sw->npending += n, p += n, len -= n;
        if (sw->npending < sw->unit)
            return 0;
        if ((err = berth_storage_writer_write(sw->inner, sw->pending, sw->unit)) < 0)
            return err;
        sw->npending = 0;
    }
    n = len - len % sw->unit;
    if (n > 0 && (err = berth_storage_writer_write(sw->inner, p, n)) < 0)
        return err;
    memcpy(sw->pending, p + n, len - n);
    sw->npending = len - n;
    return 0;
}

static int shim_writer_close(berth_writer_t *w, int keep, uint64_t *kept, char **state)
{
    shim_writer_t *sw = (shim_writer_t *)w;
    int err = berth_storage_writer_close(sw->inner, keep, kept, state);

    free(sw->pending);
    free(sw);
    return err;
}

static int shim_data_read(berth_storage_t *b, const char *id, const char *state, uint64_t offset, void *buf, size_t len,
                          size_t *got)
{
    shim_t *s = (shim_t *)b;

    pthread_mutex_lock(&s->lock);
    shim__pass(s, &s->reads);
    pthread_mutex_unlock(&s->lock);
    return berth_storage_data_read(s->inner, id, state, offset, buf, len, got);
}

static int shim_data_commit(berth_storage_t *b, const char *id, const char *state, uint64_t size, const char *digest)
{
    return berth_storage_data_commit(shim_inner(b), id, state, size, digest);
}

static int shim_data_remove(berth_storage_t *b, const char *id, const char *state)
{
    return berth_storage_data_remove(shim_inner(b), id, state);
}

static int shim_data_list(berth_storage_t *b, berth_data_cb cb, void *ctx)
{
    return berth_storage_data_list(shim_inner(b), cb, ctx);
}

static int shim_blob_stat(berth_storage_t *b, const char *digest, uint64_t *size)
{
    return berth_storage_blob_stat(shim_inner(b), digest, size);
}

static int shim_blob_read(berth_storage_t *b, const char *digest, uint64_t offset, void *buf, size_t len, size_t *got)
{
    return berth_storage_blob_read(shim_inner(b), digest, offset, buf, len, got);
}

static int shim_blob_remove(berth_storage_t *b, const char *digest)
{
    return berth_storage_blob_remove(shim_inner(b), digest);
}

static int shim_blob_list(berth_storage_t *b, berth_blob_cb cb, void *ctx)
{
    return berth_storage_blob_list(shim_inner(b), cb, ctx);
}

static int shim_blob_url(berth_storage_t *b, const char *digest, char *url, size_t cap)
{
    return berth_storage_blob_url(shim_inner(b), digest, url, cap);
}

static const berth_storage_methods_t shim_methods = {
    .name = "shim",
    .free = shim_free,
    .obj_get = shim_obj_get,
    .obj_put = shim_obj_put,
    .obj_delete = shim_obj_delete,
    .obj_list = shim_obj_list,
    .data_create = shim_data_create,
    .data_open = shim_data_open,
    .writer_write = shim_writer_write,
    .writer_close = shim_writer_close,
    .data_read = shim_data_read,
    .data_commit = shim_data_commit,
    .data_remove = shim_data_remove,
    .data_list = shim_data_list,
    .blob_stat = shim_blob_stat,
    .blob_read = shim_blob_read,
    .blob_remove = shim_blob_remove,
    .blob_list = shim_blob_list,
    .blob_url = shim_blob_url,
};

/* A shim in front of st with its gates open and no unit. */
static void shim_init(shim_t *s)
{
    memset(s, 0, sizeof(*s));
    s->super.methods = &shim_methods;
    s->inner = st;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
}

static void shim_fini(shim_t *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

/* Holds (1) or opens (0) gate g. Holding the records gate holds it for the
 * calling thread only. */
static void shim_hold(shim_t *s, shim_gate_t *g, int hold)
{
    pthread_mutex_lock(&s->lock);
    g->hold = hold;
    if (g == &s->records && hold)
        s->holder = pthread_self();
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Waits up to 5 s for a call to wait at gate g; 1 if one does. */
static int shim_wait(shim_t *s, shim_gate_t *g)
{
    struct timespec until;
    int r;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&s->lock);
    while (g->waiting == 0 && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
        ;
    r = g->waiting > 0;
    pthread_mutex_unlock(&s->lock);
    return r;
}

#pragma GCC diagnostic pop

#endif
